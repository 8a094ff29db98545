/* IDIOM: compare. u16 elements: the index of the first differing element, or n. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    const uint16_t *a = (const uint16_t *)DATA(mem);
    const uint16_t *b = (const uint16_t *)(DATA(mem) + (ARG_A(mem) & ~1ull));
    uint64_t i = 0;
    (void)len;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}
