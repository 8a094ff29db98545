/* Binary search with a base pointer and a shrinking length. */
#include "../corpus.h"
PROGRAM
{
    const uint32_t *base = (const uint32_t *)DATA(mem);
    uint64_t n = ARG_N(mem);
    uint32_t key = (uint32_t)ARG_B(mem);
    (void)len;
    while (n > 1) {
        uint64_t half = n / 2;
        if (base[half] <= key)
            base += half;
        n -= half;
    }
    return (uint64_t)(base - (const uint32_t *)mem);
}
