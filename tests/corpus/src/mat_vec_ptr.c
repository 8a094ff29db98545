/* y = M x for an N x N u8 matrix, row pointers. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem) & 31;
    const uint8_t *row = DATA(mem);
    const uint8_t *x = row + n * n;
    uint64_t acc = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++, row += n) {
        uint64_t s = 0;
        for (const uint8_t *p = row, *q = x; p < row + n; p++, q++)
            s += (uint64_t)*p * *q;
        acc = acc * 3 + s;
    }
    return acc;
}
