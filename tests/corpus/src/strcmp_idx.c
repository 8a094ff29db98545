/* IDIOM: compare. strcmp, index form, for loop with a break. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *a = DATA(mem), *b = DATA(mem) + ARG_A(mem);
    uint64_t i;
    (void)len;
    for (i = 0;; i++) {
        if (a[i] != b[i] || a[i] == 0)
            break;
    }
    return (uint64_t)((int64_t)a[i] - (int64_t)b[i]);
}
