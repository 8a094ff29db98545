/* IDIOM: switch. Case ranges (GNU `case a ... b`), as a character classifier. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *s = DATA(mem);
    uint64_t n = ARG_N(mem), acc = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t c;
        switch (s[i]) {
        case '0' ... '9': c = 1; break;
        case 'a' ... 'f': c = 2; break;
        case 'g' ... 'z': c = 3; break;
        case 'A' ... 'Z': c = 4; break;
        case ' ': case '\t': c = 5; break;
        case 0 ... 8: c = 6; break;
        default: c = 7; break;
        }
        acc = acc * 8 + c;
    }
    return acc;
}
