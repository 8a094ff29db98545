/* A map type librbpf does not implement: the load must fail. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, 99);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} weird SEC(".maps");

SEC("prog")
long run(void *ctx)
{
    return bpf_map_lookup_elem(&weird, ctx) != 0;
}
