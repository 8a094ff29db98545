/* bpf_tail_call between the programs of one object through a PROG_ARRAY.
 * mem = {index, counter}; the host puts program numbers into `jumps` (tests/maps.rs). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} jumps SEC(".maps");

SEC("prog")
__s64 entry(__u64 *mem)
{
    long ret = bpf_tail_call(mem, &jumps, mem[0]);
    /* Only reached when the tail call failed. */
    return ret * 10;
}

SEC("prog/second")
__s64 second(__u64 *mem)
{
    mem[1] += 1;
    return 2000 + mem[1];
}

SEC("prog/third")
__s64 third(__u64 *mem)
{
    mem[1] += 10;
    bpf_tail_call(mem, &jumps, 1);
    return 3000;
}

char LICENSE[] SEC("license") = "GPL";
