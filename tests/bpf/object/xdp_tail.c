/* Test runs with tail calls (capi-tests/test_run.c, tests/cli.rs, tests/object.rs).
 * `entry` counts the frame in counters[0], marks it (source MAC's first byte := 0xee) and
 * tail-calls `verdict` through `jumps` (its value declared in BTF). `verdict` counts in
 * counters[1] and decides by the frame's byte 14 (the first byte after the Ethernet header):
 * 1 redirect to ifindex 7, 2 XDP_TX, 3 XDP_DROP, 4 a read far past the frame (a fault),
 * 5 redirect through `cpus` (a CPUMAP, entry 0 set by the host), anything else XDP_PASS.
 * If the tail call fails, `entry` returns XDP_ABORTED.
 * `tc_mark` (TC) sets skb->mark to 42 and returns TC_ACT_SHOT (2) for IPv6, else
 * TC_ACT_OK (0). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_CPUMAP);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

static __always_inline void bump(__u32 index)
{
    __u64 *count = bpf_map_lookup_elem(&counters, &index);
    if (count)
        __sync_fetch_and_add(count, 1);
}

SEC("xdp")
int verdict(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    if (data + 15 > end)
        return XDP_ABORTED;
    bump(1);
    switch (data[14]) {
    case 1:
        return bpf_redirect(7, 0);
    case 2:
        return XDP_TX;
    case 3:
        return XDP_DROP;
    case 4:
        return *(volatile unsigned char *)(data + 100000);
    case 5:
        return bpf_redirect_map(&cpus, 0, XDP_PASS);
    default:
        return XDP_PASS;
    }
}

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __array(values, int (void *));
} jumps SEC(".maps") = {
    .values = { [0] = (void *)&verdict },
};

SEC("xdp")
int entry(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    if (data + 14 > end)
        return XDP_ABORTED;
    bump(0);
    data[6] = 0xee;
    bpf_tail_call(ctx, &jumps, 0);
    return XDP_ABORTED;
}

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
    skb->mark = 42;
    return skb->protocol == (__u32)bpf_htons(0x86dd) ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
