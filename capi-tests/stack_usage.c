/*
 * The stack-usage calculator (docs/validator.md, "Stack usage",
 * and docs/semantics.md, "Calls"; also uBPF's custom tests):
 * how it is called, the "improperly sized" error, and the frame layouts it produces: a local
 * call lowers r10 by the caller's frame size (256 by default, 16 or 0 from the calculator),
 * in the interpreter (ubpf_exec_ex) and in extended-mode JIT code alike.
 */
#include "capi_test.h"

struct calculator_log
{
    const struct ubpf_vm* vm;
    int calls;
    int pcs[8];
};

static int frame_size;

static int
calculator(const struct ubpf_vm* vm, uint16_t pc, void* cookie)
{
    struct calculator_log* log = cookie;
    log->vm = vm;
    if (log->calls < 8) {
        log->pcs[log->calls] = pc;
    }
    log->calls++;
    return frame_size;
}

/* main: r6 = r10; call f; r0 = r6 - r0 (main's r10 minus f's r10); exit.
   f (PC 5): r0 = r10; exit. */
static const struct test_insn frame_distance[] = {
    MOV64_REG(6, 10), CALL_LOCAL(3), INSN(0x1f, 6, 0, 0, 0), MOV64_REG(0, 6), EXIT(), MOV64_REG(0, 10), EXIT()};

/* main: stb [r10-1], 1; stb [r10-2], 2; call f; exit.  f (PC 4): stb [r10-1], 3;
   stb [r10-2], 4; exit. */
static const struct test_insn frame_bytes[] = {
    INSN(0x72, 10, 0, -1, 1),
    INSN(0x72, 10, 0, -2, 2),
    CALL_LOCAL(1),
    EXIT(),
    INSN(0x72, 10, 0, -1, 3),
    INSN(0x72, 10, 0, -2, 4),
    EXIT()};

static const struct test_insn empty_exit[] = {EXIT()};

/* Runs the loaded program on `stack` with ubpf_exec_ex and with extended-mode JIT code. */
static void
run_both(struct ubpf_vm* vm, uint8_t* stack, size_t len, uint64_t* interpreted, uint64_t* compiled, uint8_t* jit_stack)
{
    CHECK_EQ(ubpf_exec_ex(vm, NULL, 0, interpreted, stack, len), 0);
    char* errmsg = NULL;
    ubpf_jit_ex_fn fn = ubpf_compile_ex(vm, &errmsg, ExtendedJitMode);
    CHECK(fn != NULL);
    if (fn != NULL) {
        *compiled = fn(NULL, 0, jit_stack, len);
    } else {
        fprintf(stderr, "ubpf_compile_ex: %s\n", errmsg ? errmsg : "(NULL)");
    }
    free(errmsg);
}

/* Loads `frame_distance` with a calculator returning `size` (or none when size < 0) and
   checks the distance between main's and f's r10. */
static void
check_distance(int size, uint64_t expected)
{
    struct ubpf_vm* vm = ubpf_create();
    struct calculator_log log = {0};
    if (size >= 0) {
        frame_size = size;
        CHECK_EQ(ubpf_register_stack_usage_calculator(vm, calculator, &log), 0);
    }
    CHECK_EQ(load_program(vm, frame_distance, PROG_LEN(frame_distance), NULL, 0), 0);
    if (size >= 0) {
        /* Asked once for main (PC 0) and once for the local function (PC 5). */
        CHECK_EQ(log.calls, 2);
        CHECK_EQ(log.pcs[0], 0);
        CHECK_EQ(log.pcs[1], 5);
        CHECK(log.vm == vm);
    }
    static uint8_t stack[8192];
    static uint8_t jit_stack[8192];
    uint64_t interpreted = 0, compiled = 0;
    run_both(vm, stack, sizeof(stack), &interpreted, &compiled, jit_stack);
    CHECK_EQ(interpreted, expected);
    CHECK_EQ(compiled, expected);
    uint64_t ret = 0;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
    CHECK_EQ(ret, expected);
    ubpf_destroy(vm);
}

int
main(void)
{
    /* Frame sizes: default 256, then 16 and 0 from the calculator. */
    check_distance(-1, 256);
    check_distance(16, 16);
    check_distance(0, 0);
    check_distance(48, 48);

    /* Byte layout on a 32-byte stack: with 16 the frames are apart, with 0 the callee
       overwrites its caller's bytes. */
    for (int pass = 0; pass < 2; pass++) {
        struct ubpf_vm* vm = ubpf_create();
        struct calculator_log log = {0};
        frame_size = pass == 0 ? 16 : 0;
        CHECK_EQ(ubpf_register_stack_usage_calculator(vm, calculator, &log), 0);
        CHECK_EQ(load_program(vm, frame_bytes, PROG_LEN(frame_bytes), NULL, 0), 0);
        uint8_t stack[32] = {0};
        uint8_t jit_stack[32] = {0};
        uint64_t interpreted = 0, compiled = 0;
        run_both(vm, stack, sizeof(stack), &interpreted, &compiled, jit_stack);
        if (pass == 0) {
            CHECK(stack[31] == 1 && stack[30] == 2 && stack[15] == 3 && stack[14] == 4);
        } else {
            CHECK(stack[31] == 3 && stack[30] == 4);
        }
        CHECK(memcmp(stack, jit_stack, sizeof(stack)) == 0);
        ubpf_destroy(vm);
    }

    /* A size that is not a multiple of 16 is refused at load, even for main. */
    struct ubpf_vm* vm = ubpf_create();
    struct calculator_log log = {0};
    frame_size = 17;
    CHECK_EQ(ubpf_register_stack_usage_calculator(vm, calculator, &log), 0);
    char message[256];
    CHECK_EQ(load_program(vm, empty_exit, PROG_LEN(empty_exit), message, sizeof(message)), -1);
    CHECK_STR(message, "local function (at PC 0) has improperly sized stack use (17)");
    /* An empty program too: the size is checked before any instruction. */
    CHECK_EQ(load_program(vm, empty_exit, 0, message, sizeof(message)), -1);
    CHECK_STR(message, "local function (at PC 0) has improperly sized stack use (17)");
    /* Removing the calculator restores the default. */
    CHECK_EQ(ubpf_register_stack_usage_calculator(vm, NULL, NULL), 0);
    CHECK_EQ(load_program(vm, empty_exit, PROG_LEN(empty_exit), NULL, 0), 0);
    ubpf_destroy(vm);

    return TEST_RESULT();
}
