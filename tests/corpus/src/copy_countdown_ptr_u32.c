/* IDIOM: copy. Pointers moving up, a separate count moving down (`while (n--)`). */
#include "../corpus.h"
PROGRAM
{
    uint64_t n = ARG_N(mem);
    const uint32_t *s = (const uint32_t *)DATA(mem);
    uint32_t *d = (uint32_t *)(DATA(mem) + ARG_A(mem));
    (void)len;
    while (n--)
        *d++ = *s++;
    return (uint64_t)(d - (uint32_t *)mem);
}
