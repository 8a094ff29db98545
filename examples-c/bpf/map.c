/* A small array map kept by the host and reached through two helpers it registers by name:
 * `map_lookup(key)` returns the value at key (0 for a bad key) and `map_update(key, value)`
 * stores it (returning 0, or -1 for a bad key).
 *
 * Counts frames per class in slots 0..4: 0 = not IPv4, 1 = TCP, 2 = UDP, 3 = ICMP, 4 = other
 * IPv4; slot 5 counts all frames. Returns the new count of the frame's class, or 0 if an
 * update failed. */
#include "bpf_types.h"

extern s64 map_lookup(u32 key);
extern s64 map_update(u32 key, s64 value);

#define ETH_HLEN 14
#define ETH_P_IP 0x0800

enum { NOT_IPV4, TCP, UDP, ICMP, OTHER_IPV4, TOTAL };

static __attribute__((noinline)) u32 classify(const u8 *frame, u64 len)
{
    if (len < ETH_HLEN + 20 || load_be16(frame + 12) != ETH_P_IP)
        return NOT_IPV4;
    switch (frame[ETH_HLEN + 9]) {
    case 6:
        return TCP;
    case 17:
        return UDP;
    case 1:
        return ICMP;
    default:
        return OTHER_IPV4;
    }
}

s64 entry(const u8 *frame, u64 len)
{
    u32 class = classify(frame, len);
    s64 count = map_lookup(class) + 1;
    if (map_update(class, count) != 0)
        return 0;
    if (map_update(TOTAL, map_lookup(TOTAL) + 1) != 0)
        return 0;
    return count;
}
