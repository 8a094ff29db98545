/* IDIOM: copy. Index counting down, the last element first (a backward copy). */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    const uint32_t *s = (const uint32_t *)DATA(mem);
    uint32_t *d = (uint32_t *)(DATA(mem) + ARG_A(mem));
    (void)len;
    while (n) {
        n--;
        d[n] = s[n];
    }
    return n;
}
