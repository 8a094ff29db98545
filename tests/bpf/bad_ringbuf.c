/* A ring buffer whose size is not a power of two: the load must fail. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1000);
} events SEC(".maps");

SEC("prog")
long run(void *ctx)
{
    return bpf_ringbuf_output(&events, ctx, 8, 0);
}
