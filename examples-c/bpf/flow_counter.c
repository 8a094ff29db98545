/* flow_counter: per-source IPv4 traffic accounting, written as for the kernel with libbpf
 * (maps declared in SEC(".maps") with BTF, helpers from <bpf/bpf_helpers.h>).
 *
 * Called uBPF-style with r1 = the Ethernet frame and r2 = its length, it counts packets and
 * bytes per IPv4 source address (hash map `flows`), per IP protocol (array `protocols`), and
 * sends an event through the ring buffer `syn_events` for every TCP SYN (connection attempt).
 * examples-c/flow_top.c runs it over a capture and prints what it found.
 *
 * Build: clang -target bpf -O2 -g -I/usr/include/$(gcc -dumpmachine) -c flow_counter.c */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct flow_stats {
    __u64 packets;
    __u64 bytes;
};

struct syn_event {
    __u64 timestamp_ns;
    __u32 saddr; /* network byte order */
    __u32 daddr;
    __u16 sport; /* host byte order */
    __u16 dport;
    __u32 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32); /* IPv4 source address, network byte order */
    __type(value, struct flow_stats);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 256);
    __type(key, __u32); /* IP protocol number */
    __type(value, struct flow_stats);
} protocols SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} syn_events SEC(".maps");

static __always_inline void account(struct flow_stats *stats, __u64 len)
{
    __sync_fetch_and_add(&stats->packets, 1);
    __sync_fetch_and_add(&stats->bytes, len);
}

SEC("prog")
__u64 count_flows(const __u8 *frame, __u64 len)
{
    if (len < sizeof(struct ethhdr) + sizeof(struct iphdr))
        return 0;
    const struct ethhdr *eth = (const void *)frame;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return 0;
    const struct iphdr *ip = (const void *)(frame + sizeof(*eth));
    __u32 saddr = ip->saddr;

    struct flow_stats *stats = bpf_map_lookup_elem(&flows, &saddr);
    if (stats) {
        account(stats, len);
    } else {
        struct flow_stats first = {1, len};
        /* Another thread may have added it meanwhile: then count into its entry. */
        if (bpf_map_update_elem(&flows, &saddr, &first, BPF_NOEXIST) != 0) {
            stats = bpf_map_lookup_elem(&flows, &saddr);
            if (stats)
                account(stats, len);
        }
    }

    __u32 proto = ip->protocol;
    struct flow_stats *per_proto = bpf_map_lookup_elem(&protocols, &proto);
    if (per_proto)
        account(per_proto, len);

    __u64 l4 = sizeof(*eth) + ip->ihl * 4;
    if (proto != IPPROTO_TCP || len < l4 + sizeof(struct tcphdr))
        return 1;
    const struct tcphdr *tcp = (const void *)(frame + l4);
    if (!tcp->syn || tcp->ack)
        return 1;
    struct syn_event *event = bpf_ringbuf_reserve(&syn_events, sizeof(*event), 0);
    if (!event)
        return 1;
    event->timestamp_ns = bpf_ktime_get_ns();
    event->saddr = saddr;
    event->daddr = ip->daddr;
    event->sport = bpf_ntohs(tcp->source);
    event->dport = bpf_ntohs(tcp->dest);
    event->pad = 0;
    bpf_ringbuf_submit(event, 0);
    return 2;
}

char LICENSE[] SEC("license") = "GPL";
