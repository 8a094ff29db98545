/* Selection sort of N u8, pointer form. */
#include "../corpus.h"
PROGRAM
{
    uint8_t *a = DATA(mem), *end = DATA(mem) + ARG_N(mem);
    (void)len;
    for (uint8_t *p = a; p < end; p++) {
        uint8_t *m = p;
        for (uint8_t *q = p + 1; q < end; q++)
            if (*q < *m)
                m = q;
        uint8_t t = *p;
        *p = *m;
        *m = t;
    }
    return a[0];
}
