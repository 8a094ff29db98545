/* IDIOM: fill. do-while, a value from the header, 32-bit counter. */
#include "../corpus.h"
PROGRAM
{
    uint32_t n = (uint32_t)ARG_N(mem), i = 0;
    uint8_t v = (uint8_t)ARG_B(mem);
    uint8_t *d = DATA(mem) + ARG_A(mem);
    (void)len;
    if (!n)
        return 0;
    do
        d[i] = v;
    while (++i < n);
    return i;
}
