/* c_primes: counts the primes below the u32 limit at the start of memory by trial division. */
#include "workload.h"

EXPORT uint64_t bench_c_primes(uint8_t *mem, uint64_t len)
{
    uint32_t limit = *(const uint32_t *)mem;
    uint64_t count = 0;
    (void)len;
    for (uint32_t n = 2; n < limit; n++) {
        uint32_t d = 2;
        while (d * d <= n && n % d != 0)
            d++;
        count += d * d > n;
    }
    return count;
}
