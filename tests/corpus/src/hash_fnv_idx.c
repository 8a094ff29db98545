/* FNV-1a, index form. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *s = DATA(mem);
    uint64_t n = ARG_N(mem), h = 0xcbf29ce484222325ull;
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}
