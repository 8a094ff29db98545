/*
 * Memory access rules (docs/semantics.md, "Memory"): accesses inside mem or the stack never reach the
 * bounds callback; other addresses are refused unless the callback accepts them; with
 * bounds checking off, accesses go straight to memory without the callback. The interpreter
 * and JIT-compiled code behave the same.
 */
#include "capi_test.h"
#include <rbpf.h>

static uint64_t global_value = 0x1122334455667788ull;

struct bounds_log
{
    int calls;
    uint64_t addr;
    uint64_t size;
    bool allow;
};

static bool
bounds(void* context, uint64_t addr, uint64_t size)
{
    struct bounds_log* log = context;
    log->calls++;
    log->addr = addr;
    log->size = size;
    return log->allow;
}

/* Reads mem[0] and writes/reads the stack: never consults the callback. */
static const struct test_insn inside[] = {
    INSN(0x71, 0, 1, 0, 0),   /* ldxb r0, [r1] */
    INSN(0x7b, 10, 0, -8, 0), /* stxdw [r10-8], r0 */
    INSN(0x79, 0, 10, -8, 0), /* ldxdw r0, [r10-8] */
    EXIT()};

/* Runs the loaded program with the interpreter and the JIT; returns the number of engines
   that succeeded, checking each success against `expected`. */
static int
run_both(struct ubpf_vm* vm, void* mem, size_t len, uint64_t expected)
{
    int ok = 0;
    uint64_t ret = 0;
    if (ubpf_exec(vm, mem, len, &ret) == 0) {
        CHECK_EQ(ret, expected);
        ok++;
    }
    char* errmsg = NULL;
    if (ubpf_compile(vm, &errmsg) == NULL) {
        fprintf(stderr, "ubpf_compile: %s\n", errmsg ? errmsg : "(NULL)");
        test_failures++;
    }
    free(errmsg);
    ret = 0;
    if (rbpf_exec_jit(vm, mem, len, &ret) == 0) {
        CHECK_EQ(ret, expected);
        ok++;
    }
    return ok;
}

int
main(void)
{
    /* lddw r1, &global_value; ldxdw r0, [r1]; exit */
    const struct test_insn outside[] = {LDDW(1, (uintptr_t)&global_value), INSN(0x79, 0, 1, 0, 0), EXIT()};
    uint8_t mem[16] = {42};

    struct bounds_log log = {0, 0, 0, true};
    struct ubpf_vm* vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(ubpf_register_data_bounds_check(vm, &log, bounds), 0);
    CHECK_EQ(load_program(vm, inside, PROG_LEN(inside), NULL, 0), 0);
    CHECK_EQ(run_both(vm, mem, sizeof(mem), 42), 2);
    CHECK_EQ(log.calls, 0);

    /* Outside mem and the stack: the callback decides, with the access's address and size. */
    ubpf_unload_code(vm);
    CHECK_EQ(load_program(vm, outside, PROG_LEN(outside), NULL, 0), 0);
    CHECK_EQ(run_both(vm, mem, sizeof(mem), global_value), 2);
    CHECK_EQ(log.calls, 2);
    CHECK(log.addr == (uint64_t)(uintptr_t)&global_value);
    CHECK_EQ(log.size, 8);
    log.allow = false;
    capture_reset();
    CHECK_EQ(run_both(vm, mem, sizeof(mem), global_value), 0);
    CHECK_EQ(log.calls, 4);
    CHECK(strncmp(captured, "uBPF error: out of bounds memory load at PC 2", 45) == 0);
    ubpf_destroy(vm);

    /* Without a callback the access is refused. */
    vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(load_program(vm, outside, PROG_LEN(outside), NULL, 0), 0);
    CHECK_EQ(run_both(vm, mem, sizeof(mem), global_value), 0);
    ubpf_destroy(vm);

    /* Bounds checking off: straight to memory, no callback. */
    struct bounds_log off_log = {0, 0, 0, false};
    vm = ubpf_create();
    CHECK(ubpf_toggle_bounds_check(vm, false));
    CHECK_EQ(ubpf_register_data_bounds_check(vm, &off_log, bounds), 0);
    CHECK_EQ(load_program(vm, outside, PROG_LEN(outside), NULL, 0), 0);
    CHECK_EQ(run_both(vm, mem, sizeof(mem), global_value), 2);
    CHECK_EQ(off_log.calls, 0);
    ubpf_destroy(vm);

    return TEST_RESULT();
}
