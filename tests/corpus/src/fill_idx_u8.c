/* IDIOM: fill. A constant byte, index form. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    uint8_t *d = DATA(mem) + ARG_A(mem);
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        d[i] = 0x5a;
    return n;
}
