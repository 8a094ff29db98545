/* The trace and the anti-diagonal sum of an N x N u64 matrix, counting down. */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem) & 15;
    const uint64_t *m = (const uint64_t *)DATA(mem);
    uint64_t t = 0, u = 0;
    (void)len;
    for (uint64_t i = n; i-- > 0;) {
        t += m[i * n + i];
        u ^= m[i * n + (n - 1 - i)];
    }
    return t ^ (u << 1);
}
