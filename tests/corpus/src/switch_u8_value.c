/* IDIOM: switch. A u8 key with scattered cases that each pick a value (hex digit values,
 * written case by case), default 255, summed with a shift. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *s = DATA(mem);
    uint64_t n = ARG_N(mem), acc = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t v;
        switch (s[i]) {
        case '0': v = 0; break;
        case '1': v = 1; break;
        case '2': v = 2; break;
        case '3': v = 3; break;
        case '4': v = 4; break;
        case '5': v = 5; break;
        case '6': v = 6; break;
        case '7': v = 7; break;
        case '8': v = 8; break;
        case '9': v = 9; break;
        case 'a': case 'A': v = 10; break;
        case 'b': case 'B': v = 11; break;
        case 'c': case 'C': v = 12; break;
        case 'd': case 'D': v = 13; break;
        case 'e': case 'E': v = 14; break;
        case 'f': case 'F': v = 15; break;
        default: v = 255; break;
        }
        acc = (acc << 3) + v;
    }
    return acc;
}
