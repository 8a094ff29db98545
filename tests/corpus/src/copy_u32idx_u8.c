/* IDIOM: copy. A 32-bit counter (jmp32 / zero-extension shapes). */
#include "../corpus.h"
PROGRAM
{
    uint32_t n = (uint32_t)ARG_N(mem);
    const uint8_t *s = DATA(mem);
    uint8_t *d = DATA(mem) + (uint32_t)ARG_A(mem);
    (void)len;
    for (uint32_t i = 0; i < n; i++)
        d[i] = s[i];
    return n;
}
