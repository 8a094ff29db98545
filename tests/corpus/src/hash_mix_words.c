/* A murmur-style mix over u64 words, counting down, unrolled by two. */
#include "../corpus.h"
static uint64_t mix(uint64_t h, uint64_t k)
{
    k *= 0x87c37b91114253d5ull;
    k = (k << 31) | (k >> 33);
    h ^= k;
    return ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
}
PROGRAM
{
    const uint64_t *w = (const uint64_t *)DATA(mem);
    uint64_t n = ARG_N(mem), h = ARG_B(mem);
    (void)len;
    for (; n >= 2; n -= 2, w += 2)
        h = mix(mix(h, w[0]), w[1]);
    if (n)
        h = mix(h, w[0]);
    return h ^ (h >> 33);
}
