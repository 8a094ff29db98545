/* rbpf_prog_test_run_opts and rbpf_program_last_redirect on tests/bpf/object/xdp_tail.o, in
 * the interpreter and the JIT: XDP verdicts decided after a tail call (the packet and the
 * counters are shared across the chain), redirects (ifindex and CPUMAP), repeat, a short
 * data_out (-ENOSPC with a partial copy and the full size), a runtime fault (-EFAULT and the
 * message of the faulting program's VM), a failed tail call, a TC program with ctx_in/ctx_out,
 * libbpf's struct size, and bad arguments. */
#include <errno.h>

#include "capi_test.h"
#include <rbpf.h>

#define XDP_ABORTED 0
#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_TX 3
#define XDP_REDIRECT 4

/* A 60-byte Ethernet frame: IPv4 (or IPv6) ethertype, `code` right after the header. */
static void
frame(uint8_t* buf, uint8_t code, int ipv6)
{
    memset(buf, 0, 60);
    for (int i = 0; i < 6; i++) {
        buf[i] = (uint8_t)(0x10 + i);
        buf[6 + i] = (uint8_t)(0x20 + i);
    }
    buf[12] = ipv6 ? 0x86 : 0x08;
    buf[13] = ipv6 ? 0xdd : 0x00;
    buf[14] = code;
}

static uint64_t
counter(struct rbpf_object* obj, uint32_t index)
{
    uint64_t value = 0;
    CHECK_EQ(rbpf_map_lookup_elem(rbpf_object_find_map(obj, "counters"), &index, &value), 0);
    return value;
}

static struct rbpf_test_run_opts
opts_for(const uint8_t* in, uint8_t* out, uint32_t out_size, int jit)
{
    struct rbpf_test_run_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.data_in = in;
    opts.data_size_in = 60;
    opts.data_out = out;
    opts.data_size_out = out_size;
    opts.jit = jit;
    return opts;
}

static void
test_xdp(int jit)
{
    char* errmsg = NULL;
    struct rbpf_object* obj = rbpf_object_open("tests/bpf/object/xdp_tail.o", &errmsg);
    CHECK(obj != NULL);
    if (!obj) {
        free(errmsg);
        return;
    }
    CHECK_EQ(rbpf_object_load(obj, &errmsg), 0);
    free(errmsg);
    struct rbpf_program* entry = rbpf_object_find_program(obj, "entry");
    struct rbpf_program* verdict = rbpf_object_find_program(obj, "verdict");
    CHECK(entry != NULL && verdict != NULL);
    CHECK_EQ(rbpf_program_type(entry), 6); /* BPF_PROG_TYPE_XDP */

    uint8_t in[60], out[128];
    struct rbpf_redirect redirect;
    static const uint32_t expected[] = {XDP_PASS, XDP_REDIRECT, XDP_TX, XDP_DROP};
    for (uint8_t code = 0; code < 4; code++) {
        frame(in, code, 0);
        memset(out, 0, sizeof(out));
        struct rbpf_test_run_opts opts = opts_for(in, out, sizeof(out), jit);
        CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), 0);
        CHECK_EQ(opts.retval, expected[code]);
        CHECK_EQ(opts.data_size_out, 60);
        CHECK_EQ(out[6], 0xee); /* written by entry, before the tail call */
        CHECK_EQ(out[7], 0x21);
        CHECK_EQ(out[14], code);
        int has = rbpf_program_last_redirect(entry, &redirect);
        CHECK_EQ(has, code == 1);
        CHECK_EQ(redirect.kind, code == 1 ? RBPF_REDIRECT_IFINDEX : RBPF_REDIRECT_NONE);
        CHECK_EQ(redirect.target, code == 1 ? 7 : 0);
        /* The redirect belongs to the run of `entry` on this thread. */
        CHECK_EQ(rbpf_program_last_redirect(verdict, &redirect), 0);
    }
    CHECK_EQ(counter(obj, 0), 4);
    CHECK_EQ(counter(obj, 1), 4);

    /* repeat: every repetition runs the whole chain. */
    frame(in, 0, 0);
    struct rbpf_test_run_opts opts = opts_for(in, out, sizeof(out), jit);
    opts.repeat = 3;
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), 0);
    CHECK_EQ(counter(obj, 0), 7);
    CHECK_EQ(counter(obj, 1), 7);

    /* A redirect through a CPUMAP entry set by the host: struct bpf_cpumap_val. */
    uint32_t cpu = 0;
    uint32_t cpumap_val[2] = {192, 0};
    CHECK_EQ(rbpf_map_update_elem(rbpf_object_find_map(obj, "cpus"), &cpu, cpumap_val, 0), 0);
    frame(in, 5, 0);
    opts = opts_for(in, out, sizeof(out), jit);
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), 0);
    CHECK_EQ(opts.retval, XDP_REDIRECT);
    CHECK_EQ(rbpf_program_last_redirect(entry, &redirect), 1);
    CHECK_EQ(redirect.kind, RBPF_REDIRECT_CPU);
    CHECK_EQ(redirect.target, 0);

    /* A short data_out: partial copy, full size, -ENOSPC; retval still written. */
    uint8_t small[20];
    memset(small, 0, sizeof(small));
    frame(in, 2, 0);
    opts = opts_for(in, small, sizeof(small), jit);
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), -ENOSPC);
    CHECK_EQ(opts.data_size_out, 60);
    CHECK_EQ(opts.retval, XDP_TX);
    CHECK_EQ(small[6], 0xee);
    CHECK_EQ(small[14], 2);

    /* A fault in the tail-called program: -EFAULT, said by verdict's VM. */
    ubpf_set_error_print(rbpf_program_vm(verdict), capture_printer);
    capture_reset();
    frame(in, 4, 0);
    opts = opts_for(in, out, sizeof(out), jit);
    opts.retval = 12345;
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), -EFAULT);
    CHECK_EQ(opts.retval, 12345); /* outputs untouched on failure */
    CHECK(strstr(captured, "out of bounds memory load") != NULL);

    /* libbpf's struct (no `jit` member) is accepted and runs in the interpreter. */
    frame(in, 3, 0);
    opts = opts_for(in, out, sizeof(out), 0);
    opts.sz = offsetof(struct rbpf_test_run_opts, jit);
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), 0);
    CHECK_EQ(opts.retval, XDP_DROP);

    /* An empty PROG_ARRAY entry: the tail call fails, entry goes on. */
    uint32_t zero = 0;
    CHECK_EQ(rbpf_map_delete_elem(rbpf_object_find_map(obj, "jumps"), &zero), 0);
    frame(in, 2, 0);
    opts = opts_for(in, out, sizeof(out), jit);
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), 0);
    CHECK_EQ(opts.retval, XDP_ABORTED);

    /* Bad arguments. */
    opts = opts_for(in, out, sizeof(out), jit);
    CHECK_EQ(rbpf_prog_test_run_opts(NULL, &opts), -EINVAL);
    CHECK_EQ(rbpf_prog_test_run_opts(entry, NULL), -EINVAL);
    opts.sz = 8;
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), -EINVAL);
    opts = opts_for(in, out, sizeof(out), jit);
    opts.flags = 1;
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), -EINVAL);
    opts = opts_for(NULL, out, sizeof(out), jit);
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), -EINVAL);
    opts = opts_for(in, out, sizeof(out), jit);
    opts.data_size_in = 10; /* below ETH_HLEN */
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), -EINVAL);
    opts = opts_for(in, out, sizeof(out), jit);
    opts.repeat = -1;
    CHECK_EQ(rbpf_prog_test_run_opts(entry, &opts), -EINVAL);
    CHECK_EQ(rbpf_program_last_redirect(NULL, &redirect), -EINVAL);
    CHECK_EQ(rbpf_program_last_redirect(entry, NULL), -EINVAL);

    /* TC: ctx_in/ctx_out are struct __sk_buff (mark at offset 8). */
    struct rbpf_program* tc = rbpf_object_find_program(obj, "tc_mark");
    CHECK(tc != NULL);
    CHECK_EQ(rbpf_program_type(tc), 3); /* BPF_PROG_TYPE_SCHED_CLS */
    for (int ipv6 = 0; ipv6 < 2; ipv6++) {
        uint32_t skb_in[48], skb_out[48];
        memset(skb_in, 0, sizeof(skb_in));
        memset(skb_out, 0, sizeof(skb_out));
        skb_in[2] = 7; /* mark */
        frame(in, 0, ipv6);
        opts = opts_for(in, out, sizeof(out), jit);
        opts.ctx_in = skb_in;
        opts.ctx_size_in = sizeof(skb_in);
        opts.ctx_out = skb_out;
        opts.ctx_size_out = sizeof(skb_out);
        CHECK_EQ(rbpf_prog_test_run_opts(tc, &opts), 0);
        CHECK_EQ(opts.retval, ipv6 ? 2 : 0); /* TC_ACT_SHOT, TC_ACT_OK */
        CHECK_EQ(skb_out[2], 42);
        CHECK_EQ(opts.ctx_size_out, sizeof(skb_out));
    }
    rbpf_object_close(obj);
}

int
main(void)
{
    test_xdp(0);
    test_xdp(1);
    return TEST_RESULT();
}
