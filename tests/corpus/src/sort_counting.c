/* Counting sort of N bytes by their top nibble, counts on the stack. */
#include "../corpus.h"
PROGRAM
{
    uint8_t *a = DATA(mem);
    uint64_t n = ARG_N(mem), count[16];
    (void)len;
    for (int k = 0; k < 16; k++)
        count[k] = 0;
    for (uint64_t i = 0; i < n; i++)
        count[a[i] >> 4]++;
    uint64_t o = 0;
    for (int k = 0; k < 16; k++)
        for (uint64_t c = count[k]; c; c--)
            a[o++] = (uint8_t)(k << 4);
    return o;
}
