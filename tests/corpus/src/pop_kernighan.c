/* Population count of N u64 words, clearing the lowest set bit. */
#include "../corpus.h"
PROGRAM
{
    const uint64_t *w = (const uint64_t *)DATA(mem);
    uint64_t n = ARG_N(mem), total = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t x = w[i]; x; x &= x - 1)
            total++;
    return total;
}
