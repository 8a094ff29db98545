/* c_log2: sum of floor(log2 x) over an array of u64, each by a shift loop (0 and 1 give 0). */
#include "workload.h"

EXPORT uint64_t bench_c_log2(uint8_t *mem, uint64_t len)
{
    const uint64_t *values = (const uint64_t *)mem;
    uint64_t count = len / 8;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t x = values[i];
        while (x >>= 1)
            sum++;
    }
    return sum;
}
