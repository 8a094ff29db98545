/*
 * Runtime errors (docs/semantics.md, "Runtime errors") as a custom error printer receives them, in the
 * interpreter and in JIT-compiled code: uBPF's texts, one printer call per error, and a
 * failed run that leaves the result untouched.
 */
#include "capi_test.h"
#include <rbpf.h>

/* r6 = -16; stb [r6+16], 0: the effective address wraps past 2^64. */
static const struct test_insn address_overflow[] = {MOV64_IMM(6, -16), INSN(0x72, 6, 0, 16, 0), EXIT()};
/* r6 = 0; ldxb r0, [r6-1]: the effective address goes below 0. */
static const struct test_insn address_underflow[] = {MOV64_IMM(6, 0), INSN(0x71, 0, 6, -1, 0), EXIT()};
/* r6 = 0 - 1; stb [r6], 0: the access's end wraps. */
static const struct test_insn integer_overflow[] = {
    MOV64_IMM(6, 0), INSN(0x17, 6, 0, 0, 1), INSN(0x72, 6, 0, 0, 0), EXIT()};
/* stb [r10], 0: one byte past the top of the stack. */
static const struct test_insn stack_oob[] = {INSN(0x72, 10, 0, 0, 0), EXIT()};
/* ldxdw r0, [r1+8] on an 8-byte buffer. */
static const struct test_insn mem_oob[] = {INSN(0x79, 0, 1, 8, 0), EXIT()};
/* main calls f, which calls itself forever. */
static const struct test_insn call_depth[] = {CALL_LOCAL(1), EXIT(), CALL_LOCAL(-1), EXIT()};
/* Three instructions. */
static const struct test_insn three[] = {MOV64_IMM(0, 1), ADD64_IMM(0, 1), EXIT()};
/* No exit: execution falls off the end (a silent failure in uBPF). */
static const struct test_insn no_exit[] = {MOV64_IMM(0, 1)};

/* Loads `code` into a fresh VM that prints into `captured`. */
static struct ubpf_vm*
vm_with(const struct test_insn* code, uint32_t len)
{
    struct ubpf_vm* vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(load_program(vm, code, len, NULL, 0), 0);
    return vm;
}

/* Runs the interpreter, expecting failure with exactly `expected` printed. */
static void
expect_exec_error(struct ubpf_vm* vm, void* mem, size_t len, const char* expected, const char* what)
{
    uint64_t ret = 0x5a5a;
    capture_reset();
    int rc = ubpf_exec(vm, mem, len, &ret);
    if (rc != -1 || ret != 0x5a5a || strcmp(captured, expected) != 0) {
        fprintf(
            stderr,
            "%s (interpreter): rc %d, ret 0x%llx, printed \"%s\"; expected -1, untouched, \"%s\"\n",
            what,
            rc,
            (unsigned long long)ret,
            captured,
            expected);
        test_failures++;
    }
}

/* Runs JIT-compiled code through rbpf_exec_jit and directly, expecting the same error. */
static void
expect_jit_error(struct ubpf_vm* vm, void* mem, size_t len, const char* expected, const char* what)
{
    char* errmsg = NULL;
    ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
    if (fn == NULL) {
        fprintf(stderr, "%s: ubpf_compile failed: %s\n", what, errmsg ? errmsg : "(NULL)");
        free(errmsg);
        test_failures++;
        return;
    }
    uint64_t ret = 0x5a5a;
    capture_reset();
    int rc = rbpf_exec_jit(vm, mem, len, &ret);
    if (rc != -1 || ret != 0x5a5a || strcmp(captured, expected) != 0) {
        fprintf(stderr, "%s (rbpf_exec_jit): rc %d, printed \"%s\"; expected \"%s\"\n", what, rc, captured, expected);
        test_failures++;
    }
    capture_reset();
    uint64_t direct = fn(mem, len);
    if (direct != UINT64_MAX || strcmp(captured, expected) != 0) {
        fprintf(
            stderr,
            "%s (direct call): returned 0x%llx, printed \"%s\"; expected UINT64_MAX, \"%s\"\n",
            what,
            (unsigned long long)direct,
            captured,
            expected);
        test_failures++;
    }
}

/* Checks the two-line out-of-bounds message: prefix, second line and stack size. */
static void
check_oob_message(const char* text, const char* prefix, const char* second_line_start, const char* what)
{
    const char* newline = strchr(text, '\n');
    bool ok = strncmp(text, prefix, strlen(prefix)) == 0 && newline != NULL &&
              strncmp(newline + 1, second_line_start, strlen(second_line_start)) == 0;
    size_t n = strlen(text);
    ok = ok && n > 6 && strcmp(text + n - 6, "/4096\n") == 0 && strchr(newline + 1, '\n') == text + n - 1;
    if (!ok) {
        fprintf(stderr, "%s: unexpected out-of-bounds message \"%s\"\n", what, text);
        test_failures++;
    }
}

int
main(void)
{
    struct ubpf_vm* vm;

    vm = vm_with(address_overflow, PROG_LEN(address_overflow));
    expect_exec_error(vm, NULL, 0, "uBPF error: address overflow in store at PC 1\n", "address overflow");
    expect_jit_error(vm, NULL, 0, "uBPF error: address overflow in store at PC 1\n", "address overflow");
    /* Wrap-around is an error even with bounds checking off. */
    ubpf_unload_code(vm);
    ubpf_toggle_bounds_check(vm, false);
    CHECK_EQ(load_program(vm, address_overflow, PROG_LEN(address_overflow), NULL, 0), 0);
    expect_exec_error(vm, NULL, 0, "uBPF error: address overflow in store at PC 1\n", "overflow, no bounds check");
    ubpf_destroy(vm);

    vm = vm_with(address_underflow, PROG_LEN(address_underflow));
    expect_exec_error(vm, NULL, 0, "uBPF error: address underflow in load at PC 1\n", "address underflow");
    expect_jit_error(vm, NULL, 0, "uBPF error: address underflow in load at PC 1\n", "address underflow");
    ubpf_destroy(vm);

    vm = vm_with(integer_overflow, PROG_LEN(integer_overflow));
    expect_exec_error(
        vm, NULL, 0, "uBPF error: integer overflow in store at PC 2, addr 0xffffffffffffffff, size 1\n", "integer overflow");
    expect_jit_error(
        vm, NULL, 0, "uBPF error: integer overflow in store at PC 2, addr 0xffffffffffffffff, size 1\n", "integer overflow");
    ubpf_destroy(vm);

    /* Out of bounds: two lines, "mem %p/%zd stack %p/4096". */
    vm = vm_with(stack_oob, PROG_LEN(stack_oob));
    uint64_t ret = 0;
    capture_reset();
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), -1);
    check_oob_message(
        captured, "uBPF error: out of bounds memory store at PC 0, addr 0x", "mem (nil)/0 stack 0x", "stack oob");
    capture_reset();
    CHECK_EQ(rbpf_exec_jit(vm, NULL, 0, &ret), -1); /* not compiled yet */
    CHECK_STR(captured, "");
    char* errmsg = NULL;
    CHECK(ubpf_compile(vm, &errmsg) != NULL);
    free(errmsg);
    capture_reset();
    CHECK_EQ(rbpf_exec_jit(vm, NULL, 0, &ret), -1);
    check_oob_message(
        captured, "uBPF error: out of bounds memory store at PC 0, addr 0x", "mem (nil)/0 stack 0x", "stack oob (JIT)");
    ubpf_destroy(vm);

    vm = vm_with(mem_oob, PROG_LEN(mem_oob));
    uint8_t buffer[8] = {0};
    char expected_second[64];
    snprintf(expected_second, sizeof(expected_second), "mem %p/8 stack 0x", (void*)buffer);
    capture_reset();
    CHECK_EQ(ubpf_exec(vm, buffer, sizeof(buffer), &ret), -1);
    check_oob_message(captured, "uBPF error: out of bounds memory load at PC 0, addr 0x", expected_second, "mem oob");
    char expected_first[96];
    snprintf(
        expected_first,
        sizeof(expected_first),
        "uBPF error: out of bounds memory load at PC 0, addr %p, size 8\n",
        (void*)(buffer + 8));
    CHECK(strncmp(captured, expected_first, strlen(expected_first)) == 0);
    ubpf_destroy(vm);

    vm = vm_with(call_depth, PROG_LEN(call_depth));
    expect_exec_error(
        vm, NULL, 0, "uBPF error: number of nested functions calls (9) exceeds max (8) at PC 2\n", "call depth");
    expect_jit_error(
        vm, NULL, 0, "uBPF error: number of nested functions calls (9) exceeds max (8) at PC 2\n", "call depth (JIT)");
    ubpf_destroy(vm);

    /* Instruction limit: with limit N exactly N instructions run. */
    vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(ubpf_set_instruction_limit(vm, 3, NULL), 0);
    CHECK_EQ(load_program(vm, three, PROG_LEN(three), NULL, 0), 0);
    capture_reset();
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
    CHECK_EQ(ret, 2);
    CHECK_STR(captured, "");
    ubpf_unload_code(vm);
    CHECK_EQ(ubpf_set_instruction_limit(vm, 2, NULL), 0);
    CHECK_EQ(load_program(vm, three, PROG_LEN(three), NULL, 0), 0);
    expect_exec_error(vm, NULL, 0, "Error: Instruction limit exceeded.\n", "instruction limit");
    expect_jit_error(vm, NULL, 0, "Error: Instruction limit exceeded.\n", "instruction limit (JIT)");
    ubpf_destroy(vm);

    /* Falling off the end fails silently; so does running with nothing loaded. */
    vm = vm_with(no_exit, PROG_LEN(no_exit));
    expect_exec_error(vm, NULL, 0, "", "no exit");
    ubpf_unload_code(vm);
    expect_exec_error(vm, NULL, 0, "", "nothing loaded");
    ubpf_destroy(vm);

    return TEST_RESULT();
}
