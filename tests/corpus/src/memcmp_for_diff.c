/* IDIOM: compare. A `for` with an index and a `!=` exit that returns the difference. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    const uint8_t *a = DATA(mem), *b = DATA(mem) + ARG_A(mem);
    (void)len;
    for (uint64_t i = 0; i != n; i++) {
        if (a[i] != b[i])
            return (uint64_t)(int64_t)(a[i] - b[i]);
    }
    return 0;
}
