/* The map benchmark's eBPF program: per packet, one hash-map lookup by IPv4 source address
 * and an in-place update of its counters (or an insert for a new address).
 * Build: clang -target bpf -O2 -g -I/usr/include/$(gcc -dumpmachine) -c hash_count.c */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct counters {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, struct counters);
} flows SEC(".maps");

SEC("prog")
__u64 count(const __u8 *packet, __u64 len)
{
    if (len < 34)
        return 0;
    __u32 saddr;
    __builtin_memcpy(&saddr, packet + 26, sizeof(saddr));
    struct counters *c = bpf_map_lookup_elem(&flows, &saddr);
    if (c) {
        c->packets += 1;
        c->bytes += len;
        return 1;
    }
    struct counters first = {1, len};
    bpf_map_update_elem(&flows, &saddr, &first, BPF_ANY);
    return 2;
}
