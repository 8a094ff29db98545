/* In-place transpose of an N x N u16 matrix. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem) & 15;
    uint16_t *m = (uint16_t *)DATA(mem);
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t j = i + 1; j < n; j++) {
            uint16_t t = m[i * n + j];
            m[i * n + j] = m[j * n + i];
            m[j * n + i] = t;
        }
    return n ? m[1] : 0;
}
