/* IDIOM: switch. Sparse keys (a compare tree no table covers densely). */
#include "../corpus.h"
PROGRAM
{
    const uint32_t *v = (const uint32_t *)DATA(mem);
    uint64_t n = ARG_N(mem), acc = 1;
    (void)len;
    for (uint64_t i = 0; i < n; i++) {
        switch (v[i] & 0xff) {
        case 1: acc += 3; break;
        case 10: acc ^= 0x55; break;
        case 30: acc *= 7; break;
        case 64: acc -= 11; break;
        case 100: acc += acc >> 2; break;
        case 128: acc ^= i; break;
        case 200: acc *= 13; break;
        case 255: acc += 1000; break;
        default: acc++; break;
        }
    }
    return acc;
}
