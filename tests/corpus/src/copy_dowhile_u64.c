/* IDIOM: copy. do-while with the test at the bottom, `!=` exit. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem), i = 0;
    const uint64_t *s = (const uint64_t *)DATA(mem);
    uint64_t *d = (uint64_t *)(DATA(mem) + ARG_A(mem));
    (void)len;
    if (n == 0)
        return 0;
    do {
        d[i] = s[i];
        i++;
    } while (i != n);
    return d[0];
}
