/* IDIOM: switch. A 32-bit key chosen among protocol numbers, value leaves and a default. */
#include "../corpus.h"
static uint32_t weight(uint32_t proto)
{
    switch (proto) {
    case 1: return 10;
    case 2: return 20;
    case 6: return 30;
    case 17: return 40;
    case 41: return 50;
    case 47: return 60;
    case 50: return 70;
    case 58: return 80;
    default: return 1;
    }
}
PROGRAM
{
    const uint8_t *p = DATA(mem);
    uint64_t n = ARG_N(mem);
    uint32_t acc = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        acc += weight(p[i] & 63);
    return acc;
}
