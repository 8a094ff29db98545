/* A program that hands a map value's address to the host and later writes through an
 * address the host passes back: the way a hostile program would try to reach a map's
 * storage from a copy of its compiled code after the VM is gone (docs/sandbox.md, "Copies").
 * mem = {op, pointer}: op 0 stores the address of values[0] in mem[1] and returns 0;
 * op 1 writes 42 through mem[1] and returns 1. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} values SEC(".maps");

SEC("prog")
__s64 run(__u64 *mem)
{
    if (mem[0] == 0) {
        __u32 key = 0;
        __u64 *value = bpf_map_lookup_elem(&values, &key);
        if (!value)
            return -1;
        mem[1] = (__u64)value;
        return 0;
    }
    *(volatile __u64 *)mem[1] = 42;
    return 1;
}
