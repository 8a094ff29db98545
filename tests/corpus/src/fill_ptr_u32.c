/* IDIOM: fill. An invariant register value, pointer form with an end pointer. */
#include "../corpus.h"
PROGRAM
{
    uint32_t v = (uint32_t)ARG_B(mem);
    uint32_t *d = (uint32_t *)(DATA(mem) + ARG_A(mem));
    uint32_t *end = d + ARG_N(mem);
    (void)len;
    while (d < end)
        *d++ = v;
    return v;
}
