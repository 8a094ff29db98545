/* Population count of N u32 words, one bit per step. */
#include "../corpus.h"
PROGRAM
{
    const uint32_t *w = (const uint32_t *)DATA(mem);
    uint64_t n = ARG_N(mem), total = 0;
    (void)len;
    while (n--) {
        uint32_t x = *w++;
        while (x) {
            total += x & 1;
            x >>= 1;
        }
    }
    return total;
}
