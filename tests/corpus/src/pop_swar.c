/* Population count of N u64 words with the SWAR bit trick. */
#include "../corpus.h"
PROGRAM
{
    const uint64_t *w = (const uint64_t *)DATA(mem);
    uint64_t n = ARG_N(mem), total = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t x = w[i];
        x = x - ((x >> 1) & 0x5555555555555555ull);
        x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
        x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
        total += (x * 0x0101010101010101ull) >> 56;
    }
    return total;
}
