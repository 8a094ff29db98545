/* Packet filter: accepts IPv4 TCP segments to port 80, in plain Ethernet frames or inside one
 * 802.1Q VLAN tag.
 *
 * Called with r1 = the frame, r2 = its captured length (uBPF's mem/mem_len). Every header
 * read is checked against the length first, so truncated frames are dropped rather than read
 * past their end. Returns 1 to accept, 0 to drop. */
#include "bpf_types.h"

#define ETH_TYPE_OFFSET 12
#define ETH_P_IP 0x0800
#define ETH_P_8021Q 0x8100
#define VLAN_TAG_LEN 4
#define IPV4_MIN_HLEN 20
#define IPPROTO_TCP 6
#define IP_FRAG_OFFSET_MASK 0x1fff
#define HTTP_PORT 80

u64 filter(const u8 *frame, u64 len)
{
    u64 off = ETH_TYPE_OFFSET;
    if (len < off + 2)
        return 0;
    u16 ethertype = load_be16(frame + off);
    off += 2;
    if (ethertype == ETH_P_8021Q) {
        /* The tag's TCI comes first, then the real EtherType. */
        if (len < off + VLAN_TAG_LEN)
            return 0;
        ethertype = load_be16(frame + off + 2);
        off += VLAN_TAG_LEN;
    }
    if (ethertype != ETH_P_IP)
        return 0;

    if (len < off + IPV4_MIN_HLEN)
        return 0;
    const u8 *ip = frame + off;
    if ((ip[0] >> 4) != 4)
        return 0;
    u64 ihl = (u64)(ip[0] & 0x0f) * 4;
    if (ihl < IPV4_MIN_HLEN || len < off + ihl)
        return 0;
    if (ip[9] != IPPROTO_TCP)
        return 0;
    /* Later fragments carry no TCP header. */
    if (load_be16(ip + 6) & IP_FRAG_OFFSET_MASK)
        return 0;

    off += ihl;
    /* Source port, then destination port. */
    if (len < off + 4)
        return 0;
    return load_be16(frame + off + 2) == HTTP_PORT;
}
