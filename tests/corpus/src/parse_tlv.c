/* Packet parser: a type-length-value option list (like TCP options), every read checked. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *p = DATA(mem);
    uint64_t n = ARG_N(mem), off = 0, acc = 0;
    (void)len;
    while (off < n) {
        uint8_t kind = p[off];
        if (kind == 0)
            break;
        if (kind == 1) {
            off++;
            continue;
        }
        if (off + 1 >= n)
            return (uint64_t)-1;
        uint8_t l = p[off + 1];
        if (l < 2 || off + l > n)
            return (uint64_t)-2;
        acc = acc * 131 + kind * 7 + l;
        off += l;
    }
    return acc;
}
