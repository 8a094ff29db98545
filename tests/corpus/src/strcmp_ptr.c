/* IDIOM: compare. strcmp, pointer form. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *a = DATA(mem), *b = DATA(mem) + ARG_A(mem);
    (void)len;
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (uint64_t)((int64_t)*a - (int64_t)*b);
}
