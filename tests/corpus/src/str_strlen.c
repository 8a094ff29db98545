/* strlen, pointer form. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *s = DATA(mem), *p = s;
    (void)len;
    while (*p)
        p++;
    return (uint64_t)(p - s);
}
