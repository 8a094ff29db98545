/* Binary search (lower bound) over N sorted u32, half-open index range. */
#include "../corpus.h"
PROGRAM
{
    const uint32_t *a = (const uint32_t *)DATA(mem);
    uint64_t lo = 0, hi = ARG_N(mem);
    uint32_t key = (uint32_t)ARG_B(mem);
    (void)len;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
