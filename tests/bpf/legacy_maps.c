/* A map in the legacy "maps" section (struct bpf_map_def), as pre-BTF objects declare them.
 * Built with: clang -target bpf -O2 -g0 -I/usr/include/$(gcc -dumpmachine) -c legacy_maps.c */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def {
    unsigned int type;
    unsigned int key_size;
    unsigned int value_size;
    unsigned int max_entries;
    unsigned int map_flags;
};

struct bpf_map_def SEC("maps") counters = {
    .type = BPF_MAP_TYPE_HASH,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u64),
    .max_entries = 16,
};

SEC("prog")
__u64 count(__u32 *key)
{
    __u32 k = *key;
    __u64 one = 1, *v = bpf_map_lookup_elem(&counters, &k);
    if (v) {
        __sync_fetch_and_add(v, 1);
        return *v;
    }
    bpf_map_update_elem(&counters, &k, &one, BPF_NOEXIST);
    return 1;
}
