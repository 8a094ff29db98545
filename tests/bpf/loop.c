/* bpf_loop with callbacks that read and write the caller's stack frame.
 * mem = {op, n, limit}; returns per op (see tests/maps.rs). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct state {
    __u64 sum;
    __u64 limit;
};

static long add_index(__u64 index, void *data)
{
    struct state *s = data;
    s->sum += index;
    return s->sum >= s->limit;
}

static long count_odd(__u64 index, void *data)
{
    struct state *s = data;
    s->sum += index & 1;
    return 0;
}

SEC("prog")
__s64 run(__u64 *mem)
{
    struct state s = {0, mem[2]};
    long n;
    switch (mem[0]) {
    case 0:
        n = bpf_loop(mem[1], add_index, &s, 0);
        return s.sum * 1000 + n;
    case 1:
        return bpf_loop(mem[1], count_odd, &s, 1);
    case 2:
        return bpf_loop(1 << 24, count_odd, &s, 0);
    case 3:
        n = bpf_loop(mem[1], count_odd, &s, 0);
        n += bpf_loop(mem[1], add_index, &s, 0);
        return s.sum * 1000 + n;
    }
    return -1;
}

char LICENSE[] SEC("license") = "GPL";
