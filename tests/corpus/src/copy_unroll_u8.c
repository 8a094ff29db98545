/* IDIOM: copy. Unrolled by hand: four elements per iteration, then the rest one by one. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem), i = 0;
    const uint8_t *s = DATA(mem);
    uint8_t *d = DATA(mem) + ARG_A(mem);
    (void)len;
    for (; i + 4 <= n; i += 4) {
        d[i] = s[i];
        d[i + 1] = s[i + 1];
        d[i + 2] = s[i + 2];
        d[i + 3] = s[i + 3];
    }
    for (; i < n; i++)
        d[i] = s[i];
    return i;
}
