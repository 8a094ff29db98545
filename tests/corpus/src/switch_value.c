/* IDIOM: switch. Cases that only choose a value (leaves set the result), shared leaves and a
 * default. */
#include "../corpus.h"
static uint64_t class_of(uint32_t k)
{
    switch (k) {
    case 0: return 17;
    case 1: case 7: return 3;
    case 2: return 99;
    case 3: return 41;
    case 4: case 9: return 5;
    case 5: return 1000;
    case 6: return 7;
    case 8: return 12;
    case 10: return 77;
    default: return 0;
    }
}
PROGRAM
{
    const uint32_t *v = (const uint32_t *)DATA(mem);
    uint64_t n = ARG_N(mem), acc = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        acc = acc * 31 + class_of(v[i] & 15);
    return acc;
}
