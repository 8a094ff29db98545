/* Packet parser: Ethernet, IPv4, UDP/TCP ports, with bounds checks against the end (the
 * data/data_end style of XDP programs). The packet is N bytes of DATA. */
#include "../corpus.h"
PROGRAM
{
    uint8_t *p = DATA(mem);
    uint8_t *end = p + ARG_N(mem);
    (void)len;
    if (p + 14 > end)
        return 1;
    uint16_t proto = (uint16_t)(p[12] << 8 | p[13]);
    if (proto != 0x0800)
        return 2;
    uint8_t *ip = p + 14;
    if (ip + 20 > end)
        return 3;
    uint32_t ihl = (ip[0] & 15) * 4u;
    if (ihl < 20 || ip + ihl + 4 > end)
        return 4;
    uint8_t *l4 = ip + ihl;
    uint32_t sport = (uint32_t)(l4[0] << 8 | l4[1]), dport = (uint32_t)(l4[2] << 8 | l4[3]);
    return ((uint64_t)ip[9] << 32) | (sport << 16) | dport;
}
