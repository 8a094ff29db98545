/* Adler-32, do-while counting down. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *p = DATA(mem);
    uint64_t n = ARG_N(mem);
    uint32_t a = 1, b = 0;
    (void)len;
    if (n) {
        do {
            a = (a + *p++) % 65521;
            b = (b + a) % 65521;
        } while (--n);
    }
    return ((uint64_t)b << 16) | a;
}
