/* IDIOM: compare. strncmp, do-while. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *a = DATA(mem), *b = DATA(mem) + ARG_A(mem);
    uint64_t n = ARG_N(mem);
    uint8_t x, y;
    (void)len;
    if (!n)
        return 0;
    do {
        x = *a++;
        y = *b++;
        if (x != y)
            return x < y ? 1 : 2;
    } while (x && --n);
    return 0;
}
