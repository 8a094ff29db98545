/* In-place upper-casing of N bytes, index form. */
#include "../corpus.h"
PROGRAM
{
    uint8_t *s = DATA(mem);
    uint64_t n = ARG_N(mem), changed = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++) {
        if (s[i] >= 'a' && s[i] <= 'z') {
            s[i] -= 32;
            changed++;
        }
    }
    return changed;
}
