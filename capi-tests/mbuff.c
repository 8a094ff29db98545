/*
 * rbpf_exec_mbuff / rbpf_exec_mbuff_jit (rbpf.h): a kernel-style program reads the packet
 * bounds from its context struct, in the interpreter and in compiled code; both engines
 * allow exactly the context, the packet data and the stack.
 */
#include "capi_test.h"
#include <rbpf.h>

/* The host's context struct: the program finds the packet bounds at 0x10 and 0x18. */
struct context {
    uint64_t cookie;
    uint64_t reserved;
    uint64_t data;
    uint64_t data_end;
};

/* Assembles `text` and loads it into a fresh VM with the capture printer. */
static struct ubpf_vm*
vm_with(const char* text)
{
    uint8_t* code = NULL;
    size_t len = 0;
    char* errmsg = NULL;
    CHECK_EQ(rbpf_assemble(text, &code, &len, &errmsg), 0);
    free(errmsg);
    struct ubpf_vm* vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(load_program(vm, code, (uint32_t)len, NULL, 0), 0);
    free(code);
    errmsg = NULL;
    CHECK(ubpf_compile(vm, &errmsg) != NULL);
    free(errmsg);
    return vm;
}

/* Runs in both engines; both must succeed with the same r0, or both fail. */
static int
run_both(struct ubpf_vm* vm, struct context* ctx, uint8_t* data, size_t len, uint64_t* ret)
{
    uint64_t interp = 0, jit = 0;
    int rc = rbpf_exec_mbuff(vm, ctx, sizeof(*ctx), data, len, 0x10, 0x18, &interp);
    int rc_jit = rbpf_exec_mbuff_jit(vm, ctx, sizeof(*ctx), data, len, 0x10, 0x18, &jit);
    CHECK_EQ(rc, rc_jit);
    if (rc == 0) {
        CHECK_EQ(interp, jit);
        *ret = interp;
    }
    return rc;
}

int
main(void)
{
    /* r0 = data[data[0]] + ctx->cookie, after a bounds test against data_end; writes data[1]. */
    struct ubpf_vm* vm = vm_with("ldxdw %r2, [%r1+0x10]\n"
                                 "ldxdw %r3, [%r1+0x18]\n"
                                 "ldxdw %r6, [%r1+0]\n"
                                 "mov %r4, %r2\n"
                                 "add %r4, 2\n"
                                 "jgt %r4, %r3, +7\n"
                                 "ldxb %r5, [%r2]\n"
                                 "add %r2, %r5\n"
                                 "ldxb %r0, [%r2]\n"
                                 "add %r0, %r6\n"
                                 "stb [%r4-1], 0x5a\n"
                                 "exit\n"
                                 "mov %r0, 0\n"
                                 "exit\n");
    struct context ctx = {.cookie = 1000};
    /* On the heap, so that nothing the program may access follows it. */
    uint8_t* data = calloc(4, 1);
    CHECK(data != NULL);
    data[0] = 3;
    data[3] = 7;
    uint64_t ret = 0;
    CHECK_EQ(run_both(vm, &ctx, data, 4, &ret), 0);
    CHECK_EQ(ret, 1007);
    CHECK_EQ(data[1], 0x5a);
    CHECK_EQ(ctx.data, (uint64_t)(uintptr_t)data);
    CHECK_EQ(ctx.data_end, (uint64_t)(uintptr_t)(data + 4));

    /* Too short for the program's own test: it returns 0 without touching the data. */
    CHECK_EQ(run_both(vm, &ctx, data, 1, &ret), 0);
    CHECK_EQ(ret, 0);

    /* An index past the data: a fault in both engines, reported once each. */
    data[0] = 4;
    capture_reset();
    CHECK_EQ(run_both(vm, &ctx, data, 4, &ret), -1);
    CHECK(strstr(captured, "out of bounds memory load") != NULL);

    /* Bad arguments: offsets past the context, NULL data with a length, NULL pointers. */
    CHECK_EQ(rbpf_exec_mbuff(vm, &ctx, sizeof(ctx), data, 4, 0x10, 0x19, &ret), -1);
    CHECK_EQ(rbpf_exec_mbuff_jit(vm, &ctx, sizeof(ctx), data, 4, SIZE_MAX, 0x18, &ret), -1);
    CHECK_EQ(rbpf_exec_mbuff(vm, &ctx, sizeof(ctx), NULL, 4, 0x10, 0x18, &ret), -1);
    CHECK_EQ(rbpf_exec_mbuff(vm, NULL, sizeof(ctx), data, 4, 0x10, 0x18, &ret), -1);
    CHECK_EQ(rbpf_exec_mbuff(NULL, &ctx, sizeof(ctx), data, 4, 0x10, 0x18, &ret), -1);
    CHECK_EQ(rbpf_exec_mbuff(vm, &ctx, sizeof(ctx), data, 4, 0x10, 0x18, NULL), -1);
    ubpf_destroy(vm);
    free(data);

    /* A data_len no buffer can have (above PTRDIFF_MAX, or passing the end of the address
     * space) is refused in both engines before ctx is written or anything runs, as ubpf_exec
     * refuses such a mem; run, this program would load the byte before data_end, far
     * outside the buffer, and crash. */
    vm = vm_with("ldxdw %r2, [%r1+0x18]\n"
                 "ldxb %r0, [%r2-1]\n"
                 "exit\n");
    uint8_t small[8] = {0, 0, 0, 0, 0, 0, 0, 0x66};
    size_t too_long[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - (uintptr_t)small + 1};
    for (size_t i = 0; i < sizeof(too_long) / sizeof(too_long[0]); i++) {
        for (int jit = 0; jit < 2; jit++) {
            struct context untouched = {.cookie = 1};
            ret = 77;
            capture_reset();
            int rc = jit ? rbpf_exec_mbuff_jit(vm, &untouched, sizeof(untouched), small, too_long[i], 0x10,
                                               0x18, &ret)
                         : rbpf_exec_mbuff(vm, &untouched, sizeof(untouched), small, too_long[i], 0x10,
                                           0x18, &ret);
            CHECK_EQ(rc, -1);
            CHECK_EQ(ret, 77);
            CHECK_EQ(untouched.data, 0);
            CHECK_EQ(untouched.data_end, 0);
            char expected[96];
            snprintf(expected, sizeof(expected), "uBPF error: data buffer of %zu bytes", too_long[i]);
            CHECK(strstr(captured, expected) != NULL);
        }
    }
    capture_reset();
    CHECK_EQ(run_both(vm, &ctx, small, sizeof(small), &ret), 0);
    CHECK_EQ(ret, 0x66);
    ubpf_destroy(vm);

    /* Without ubpf_compile, the JIT entry fails and the interpreter entry works. */
    uint8_t code[] = {0xb7, 0, 0, 0, 5, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0};
    vm = ubpf_create();
    CHECK_EQ(load_program(vm, code, PROG_LEN(code), NULL, 0), 0);
    CHECK_EQ(rbpf_exec_mbuff_jit(vm, &ctx, sizeof(ctx), NULL, 0, 0x10, 0x18, &ret), -1);
    CHECK_EQ(rbpf_exec_mbuff(vm, &ctx, sizeof(ctx), NULL, 0, 0x10, 0x18, &ret), 0);
    CHECK_EQ(ret, 5);
    ubpf_destroy(vm);
    return TEST_RESULT();
}
