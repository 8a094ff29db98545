/* IDIOM: copy. An exit test in the middle of an endless loop (a `jeq` exit, `ja` back). */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem), i = 0;
    const uint8_t *s = DATA(mem);
    uint8_t *d = DATA(mem) + ARG_A(mem);
    (void)len;
    for (;;) {
        d[i] = s[i];
        i++;
        if (i == n)
            break;
        if (i >= 1000000)
            return 1;
    }
    return i;
}
