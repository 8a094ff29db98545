/* IDIOM: copy. Pointer form, an end pointer, `!=`-style loop. */
#include "../corpus.h"
PROGRAM
{
    const uint16_t *s = (const uint16_t *)DATA(mem);
    uint16_t *d = (uint16_t *)(DATA(mem) + ARG_A(mem));
    const uint16_t *end = s + ARG_N(mem);
    (void)len;
    while (s != end)
        *d++ = *s++;
    return (uint64_t)(d - (uint16_t *)mem);
}
