/* Insertion sort of N u32 in place, index form. */
#include "../corpus.h"
PROGRAM
{
    uint32_t *a = (uint32_t *)DATA(mem);
    uint64_t n = ARG_N(mem);
    (void)len;
    for (uint64_t i = 1; i < n; i++) {
        uint32_t x = a[i];
        uint64_t j = i;
        while (j > 0 && a[j - 1] > x) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
    return n ? a[0] : 0;
}
