/* strchr: the index of the first byte equal to B, or of the terminator. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *s = DATA(mem);
    uint8_t c = (uint8_t)ARG_B(mem);
    uint64_t i = 0;
    (void)len;
    for (; s[i] != c; i++)
        if (!s[i])
            return (uint64_t)-1;
    return i;
}
