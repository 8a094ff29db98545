/*
 * c_strcmp_*: strcmp of the NUL-terminated string at the start of the buffer with the one at
 * its middle. Returns the difference of the first differing bytes in the high 32 bits and
 * the index where the walk stopped in the low 32 bits.
 */
#include "workload.h"

EXPORT uint64_t bench_c_strcmp(uint8_t *mem, uint64_t len)
{
    const uint8_t *a = mem;
    const uint8_t *b = mem + len / 2;
    while (*a != 0 && *a == *b) {
        a++;
        b++;
    }
    uint32_t diff = (uint32_t)((int32_t)*a - (int32_t)*b);
    return ((uint64_t)diff << 32) | (uint32_t)(a - mem);
}
