/* Binary search over signed i32 with inclusive bounds, returning -1 when absent. */
#include "../corpus.h"
PROGRAM
{
    const int32_t *a = (const int32_t *)DATA(mem);
    int64_t lo = 0, hi = (int64_t)(ARG_N(mem) & 0xffff) - 1;
    int32_t key = (int32_t)ARG_B(mem);
    (void)len;
    while (lo <= hi) {
        int64_t mid = (lo + hi) >> 1;
        if (a[mid] == key)
            return (uint64_t)mid;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return (uint64_t)-1;
}
