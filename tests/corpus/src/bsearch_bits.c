/* Branch-light binary search by powers of two over u64 keys. */
#include "../corpus.h"
PROGRAM
{
    const uint64_t *a = (const uint64_t *)DATA(mem);
    uint64_t n = ARG_N(mem), key = ARG_B(mem), pos = 0;
    (void)len;
    uint64_t step = 1;
    while (step <= n / 2)
        step <<= 1;
    for (; step; step >>= 1)
        if (pos + step <= n && a[pos + step - 1] < key)
            pos += step;
    return pos;
}
