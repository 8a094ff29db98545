/* djb2 over a zero-terminated string. */
#include "../corpus.h"
PROGRAM
{
    const uint8_t *s = DATA(mem);
    uint64_t h = 5381;
    uint8_t c;
    (void)len;
    while ((c = *s++))
        h = h * 33 + c;
    return h;
}
