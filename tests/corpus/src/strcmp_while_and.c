/* IDIOM: compare. strcmp as `while (*a && *a == *b)` over signed chars. */
#include "../corpus.h"
PROGRAM
{
    const char *a = (const char *)DATA(mem);
    const char *b = (const char *)(DATA(mem) + ARG_A(mem));
    (void)len;
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (uint64_t)(int64_t)(*a - *b);
}
