/* IDIOM: fill. `while (n--) *p++ = v` with an invariant value. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    uint16_t v = (uint16_t)ARG_B(mem);
    uint16_t *d = (uint16_t *)(DATA(mem) + ARG_A(mem));
    (void)len;
    while (n--)
        *d++ = v;
    return (uint64_t)(d - (uint16_t *)mem);
}
