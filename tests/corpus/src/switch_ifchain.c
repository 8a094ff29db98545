/* IDIOM: switch. An if/else-if chain over one key (what switches become by hand). */
#include "../corpus.h"
PROGRAM
{
    const uint16_t *v = (const uint16_t *)DATA(mem);
    uint64_t n = ARG_N(mem), acc = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t k = v[i] & 15;
        if (k == 0)
            acc += 1;
        else if (k == 1)
            acc *= 3;
        else if (k == 2)
            acc ^= 0x77;
        else if (k == 3)
            acc -= 5;
        else if (k == 4)
            acc += acc >> 3;
        else if (k == 5)
            acc ^= i;
        else
            acc += 2;
    }
    return acc;
}
