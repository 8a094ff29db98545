/* IDIOM: compare. Equality of two word arrays, counting down. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    const uint32_t *a = (const uint32_t *)DATA(mem);
    const uint32_t *b = (const uint32_t *)(DATA(mem) + ARG_A(mem));
    (void)len;
    while (n--) {
        if (*a++ != *b++)
            return n + 1;
    }
    return 0;
}
