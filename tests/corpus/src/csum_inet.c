/* The Internet checksum (RFC 1071) over u16 words, folded. */
#include "../corpus.h"
PROGRAM
{
    const uint16_t *w = (const uint16_t *)DATA(mem);
    uint64_t n = ARG_N(mem), sum = 0;
    (void)len;
    for (uint64_t i = 0; i < n; i++)
        sum += w[i];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}
