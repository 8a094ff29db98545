/* Reverses N bytes in place with two pointers moving towards each other. */
#include "../corpus.h"
PROGRAM
{
    uint8_t *a = DATA(mem);
    uint64_t n = ARG_N(mem);
    (void)len;
    if (!n)
        return 0;
    uint8_t *b = a + n - 1;
    while (a < b) {
        uint8_t t = *a;
        *a++ = *b;
        *b-- = t;
    }
    return DATA(mem)[0];
}
