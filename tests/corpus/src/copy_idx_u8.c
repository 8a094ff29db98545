/* IDIOM: copy. Index form, test at the top, counting up. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    uint8_t *s = DATA(mem), *d = DATA(mem) + ARG_A(mem);
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        d[i] = s[i];
    return n;
}
