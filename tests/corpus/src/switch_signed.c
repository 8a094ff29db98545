/* IDIOM: switch. Signed keys around zero. */
#include "../corpus.h"
PROGRAM
{
    const int8_t *v = (const int8_t *)DATA(mem);
    uint64_t n = ARG_N(mem), acc = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++) {
        int32_t k = v[i] >> 3;
        switch (k) {
        case -8: acc += 1; break;
        case -6: acc ^= 0x99; break;
        case -5: acc *= 3; break;
        case -3: acc -= 7; break;
        case -1: acc += 0x100; break;
        case 0: acc ^= i; break;
        case 2: acc *= 5; break;
        case 3: acc += acc >> 1; break;
        case 5: acc -= 1; break;
        case 7: acc ^= 0xabc; break;
        default: acc += 2; break;
        }
    }
    return acc;
}
