/* Bubble sort of N u16 with an early exit when a pass swaps nothing. */
#include "../corpus.h"
PROGRAM
{
    uint16_t *a = (uint16_t *)DATA(mem);
    uint64_t n = ARG_N(mem), passes = 0;
    (void)len;
    for (int swapped = 1; swapped && n > 1; n--) {
        swapped = 0;
        for (uint64_t i = 0; i + 1 < n; i++) {
            if (a[i] > a[i + 1]) {
                uint16_t t = a[i];
                a[i] = a[i + 1];
                a[i + 1] = t;
                swapped = 1;
            }
        }
        passes++;
    }
    return passes;
}
