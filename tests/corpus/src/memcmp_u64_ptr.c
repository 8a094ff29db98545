/* IDIOM: compare. u64 elements, pointer form with an end pointer, ordered result. */
#include "../corpus.h"
PROGRAM
{
    const uint64_t *a = (const uint64_t *)DATA(mem);
    const uint64_t *b = (const uint64_t *)(DATA(mem) + (ARG_A(mem) & ~7ull));
    const uint64_t *end = a + ARG_N(mem);
    (void)len;
    for (; a != end; a++, b++) {
        if (*a != *b)
            return *a < *b ? 1 : 2;
    }
    return 0;
}
