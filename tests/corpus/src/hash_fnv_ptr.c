/* FNV-1a 32-bit, pointer form with an end pointer. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *s = DATA(mem), *end = DATA(mem) + ARG_N(mem);
    uint32_t h = 2166136261u;
    (void)len;
    while (s < end)
        h = (h ^ *s++) * 16777619u;
    return h;
}
