/* Population count of N bytes through a 16-entry nibble table on the stack. */
#include "../corpus.h"
PROGRAM
{
    uint8_t bits[16];
    for (int i = 0; i < 16; i++)
        bits[i] = (uint8_t)((i & 1) + ((i >> 1) & 1) + ((i >> 2) & 1) + ((i >> 3) & 1));
    const uint8_t *p = DATA(mem);
    uint64_t n = ARG_N(mem), total = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        total += bits[p[i] & 15] + bits[p[i] >> 4];
    return total;
}
