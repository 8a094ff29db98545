/* IDIOM: compare. memcmp, index form. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    const uint8_t *a = DATA(mem), *b = DATA(mem) + ARG_A(mem);
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return (uint64_t)((int64_t)a[i] - (int64_t)b[i]);
    return 0;
}
