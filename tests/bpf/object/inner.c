/* Maps of maps whose entries are declared in BTF (`.values = { [i] = &map }`): the outer
 * array's entry 1 and the outer hash's key 7 hold inner arrays at load. `pick` looks one up
 * through the outer array by index mem[0], and returns the inner map's element 0 plus 1000
 * when the index has no inner map. mem = {u32 index} (tests/object.rs). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
};

struct inner inner_a SEC(".maps");
struct inner inner_b SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 4);
    __type(key, __u32);
    __array(values, struct inner);
} outer SEC(".maps") = {
    .values = { [1] = &inner_b, [2] = &inner_a },
};

SEC("kprobe/pick")
int pick(__u32 *mem)
{
    __u32 index = mem[0], zero = 0;
    void *inner = bpf_map_lookup_elem(&outer, &index);
    if (!inner)
        return 1000;
    __u64 *value = bpf_map_lookup_elem(inner, &zero);
    return value ? (int)*value : 2000;
}

char LICENSE[] SEC("license") = "GPL";
