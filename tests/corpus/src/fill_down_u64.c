/* IDIOM: fill. Zeroing, counting down. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    uint64_t *d = (uint64_t *)(DATA(mem) + ARG_A(mem));
    (void)len;
    while (n > 0) {
        n--;
        d[n] = 0;
    }
    return n;
}
