/* Tail calls. Program p<i> (40 of them, each in its own section) jumps to p<i+1> through
 * `chain`, a PROG_ARRAY whose values are declared in BTF. Each program fills 480 bytes of
 * its stack, so frames that nested would overflow the 4096-byte stack after 8 calls.
 * Sections kprobe/p<i> make the object have well over 32 sections (tracing sections: the
 * context is plain memory, as these programs use it).
 * `sub_caller` makes a tail call from a subprogram through `jumps`, which the host fills.
 * mem = {u64 hops, u64 last_ret} (tests/object.rs). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define N 40
#define EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) \
    M(10) M(11) M(12) M(13) M(14) M(15) M(16) M(17) M(18) M(19) \
    M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) \
    M(30) M(31) M(32) M(33) M(34) M(35) M(36) M(37) M(38) M(39)

#define DECLARE(i) int p##i(__u64 *mem);
EACH(DECLARE)

#define VALUE(i) [i] = (void *)&p##i,
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, N);
    __type(key, __u32);
    __array(values, int (void *));
} chain SEC(".maps") = {
    .values = { EACH(VALUE) },
};

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} jumps SEC(".maps");

static __always_inline int body(__u64 *mem, __u32 me)
{
    volatile char buf[480];
    for (int i = 0; i < 480; i += 8)
        buf[i] = (char)me;
    mem[0] += 1 + buf[8] - (char)me;
    long ret = bpf_tail_call(mem, &chain, me + 1);
    mem[1] = (__u64)ret;
    return 1000 + me;
}

#define DEFINE(i) SEC("kprobe/p" #i) int p##i(__u64 *mem) { return body(mem, i); }
EACH(DEFINE)

/* A tail call from a subprogram (a .text function) ends the whole program. */
static __attribute__((noinline)) int from_sub(__u64 *mem)
{
    bpf_tail_call(mem, &jumps, 0);
    return 7;
}

SEC("kprobe/sub_caller")
int sub_caller(__u64 *mem)
{
    int r = from_sub(mem);
    mem[1] = 77;
    return r;
}

char LICENSE[] SEC("license") = "GPL";
