/* IDIOM: compare. memcmp, pointer form with an end pointer. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *a = DATA(mem), *b = DATA(mem) + ARG_A(mem);
    const uint8_t *end = a + ARG_N(mem);
    (void)len;
    while (a != end) {
        if (*a != *b)
            return *a < *b ? (uint64_t)-1 : 1;
        a++;
        b++;
    }
    return 0;
}
