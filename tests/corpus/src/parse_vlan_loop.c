/* Packet parser: skips up to four stacked VLAN tags in a loop, with bounds checks. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *p = DATA(mem);
    const uint8_t *end = p + ARG_N(mem);
    uint64_t off = 12;
    (void)len;
    for (int i = 0; i < 4; i++) {
        if (p + off + 2 > end)
            return 0;
        uint16_t t = (uint16_t)(p[off] << 8 | p[off + 1]);
        if (t != 0x8100 && t != 0x88a8)
            return ((uint64_t)i << 16) | t;
        off += 4;
    }
    return 0xffff;
}
