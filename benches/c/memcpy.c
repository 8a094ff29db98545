/*
 * c_memcpy: copies the first half of the buffer into the second half, one byte at a time,
 * and returns the last byte copied.
 */
#include "workload.h"

EXPORT uint64_t bench_c_memcpy(uint8_t *mem, uint64_t len)
{
    uint64_t half = len / 2;
    const uint8_t *src = mem;
    uint8_t *dst = mem + half;
    for (uint64_t i = 0; i < half; i++)
        dst[i] = src[i];
    return half ? dst[half - 1] : 0;
}
