/* IDIOM: switch. A dense switch over u32 keys in a loop; every case does something else. */
#include "../corpus.h"
PROGRAM
{
    const uint32_t *v = (const uint32_t *)DATA(mem);
    uint64_t n = ARG_N(mem), acc = ARG_B(mem);
    (void)len;
    for (uint64_t i = 0; i < n; i++) {
        switch (v[i] & 31) {
        case 0: acc += 0x1f3; break;
        case 1: acc ^= 0x5a5a5a; break;
        case 2: acc *= 0x1e3779b1; break;
        case 3: acc -= acc >> 3; break;
        case 4: acc += i; break;
        case 5: acc += 0x7777; break;
        case 6: acc ^= 0x13579b; break;
        case 7: acc *= 0x2545f491; break;
        case 8: acc -= acc >> 7; break;
        case 9: acc ^= i << 3; break;
        case 10: acc += i * 3; break;
        case 11: acc = ~acc; break;
        default: acc += 1; break;
        }
    }
    return acc;
}
