/* Packet parser: reads a header through a struct, then sums a length-prefixed payload. */
#include "../corpus.h"
struct hdr {
    uint8_t version;
    uint8_t flags;
    uint16_t count;
    uint32_t id;
};
PROGRAM
{
    uint8_t *p = DATA(mem);
    uint8_t *end = p + ARG_N(mem);
    (void)len;
    struct hdr *h = (struct hdr *)p;
    if ((uint8_t *)(h + 1) > end)
        return 0;
    if (h->version != 2)
        return 1;
    uint16_t *items = (uint16_t *)(h + 1);
    uint64_t sum = h->id;
    for (uint32_t i = 0; i < (h->count & 63); i++) {
        if ((uint8_t *)(items + i + 1) > end)
            return 2;
        sum += items[i];
    }
    return sum;
}
