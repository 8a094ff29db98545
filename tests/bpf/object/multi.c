/* Several programs of one object sharing maps and global data; one program calls a helper
 * librbpf does not implement (number 240, which the host may provide) and must fail alone.
 * Tracing sections: their context is plain memory, as these programs use it.
 * mem = {u64 in, u64 out} (tests/object.rs). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 0); /* sized by the host before load */
    __type(key, __u64);
    __type(value, __u64);
} seen SEC(".maps");

const volatile __u64 factor = 3;  /* .rodata: set by the host before load */
__u64 total = 100;                 /* .data */
__u64 calls;                       /* .bss */

static __attribute__((noinline)) __u64 bump(__u32 slot, __u64 by)
{
    __u64 *v = bpf_map_lookup_elem(&counters, &slot);
    if (!v)
        return 0;
    __sync_fetch_and_add(v, by);
    return *v;
}

SEC("kprobe/sys_count")
int count_kprobe(__u64 *mem)
{
    calls++;
    total += mem[0];
    mem[1] = bump(0, mem[0] * factor);
    return 2; /* XDP_PASS */
}

SEC("tracepoint/sys/count")
int count_tp(__u64 *mem)
{
    calls++;
    __u64 one = 1;
    bpf_map_update_elem(&seen, &mem[0], &one, BPF_ANY);
    mem[1] = bump(1, 1) + total;
    return 0;
}

/* A helper number no kernel has: only a host registration makes the program load. */
static __u64 (*host_value)(void) = (void *)240;

SEC("kprobe/sys_nothing")
int uses_pid(__u64 *mem)
{
    mem[1] = host_value();
    return bump(2, 1);
}

char LICENSE[] SEC("license") = "GPL";
