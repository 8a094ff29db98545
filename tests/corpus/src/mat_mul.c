/* C = A x B for N x N u32 matrices (N at most 8), index form. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem) & 15;
    const uint32_t *a = (const uint32_t *)DATA(mem);
    const uint32_t *b = a + n * n;
    uint32_t *c = (uint32_t *)(DATA(mem) + ARG_A(mem));
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t j = 0; j < n; j++) {
            uint32_t s = 0;
            for (uint64_t k = 0; k < n; k++)
                s += a[i * n + k] * b[k * n + j];
            c[i * n + j] = s;
        }
    return n ? c[0] : 0;
}
