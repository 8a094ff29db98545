/*
 * The sandbox rules of docs/sandbox.md through the C API (the Rust side is tests/sandbox.rs):
 *
 * - stack a program never wrote reads 0 from ubpf_exec, the ubpf_compile function and
 *   rbpf_exec_jit, whatever ran before on the thread;
 * - a mem (or ubpf_exec_ex stack) whose end would pass the end of the address space is
 *   refused: -1 / UINT64_MAX and an error, never a crash;
 * - ubpf_copy_jit and ubpf_translate copies keep working after ubpf_unload_code and
 *   ubpf_destroy (helpers called, faults return UINT64_MAX), and after a memcpy;
 * - a helper that runs the program again without bound: the run beyond the nesting limit
 *   fails with an error instead of overflowing the native stack, in both engines;
 * - ubpf_unload_code, ubpf_destroy and a compile in the other mode, called from a helper
 *   while the program runs, are refused with an error and the run finishes normally;
 * - atomics of both widths load only with RFC 9669's operations, so the validator and the
 *   JIT accept the same programs.
 */
#define _DEFAULT_SOURCE
#include <sys/mman.h>

#include "capi_test.h"
#include <rbpf.h>

/* --- helpers --------------------------------------------------------------------------- */

static uint64_t
plus_one(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a + 1;
}

static uint64_t
times_ten(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a * 10;
}

/* Fills this thread's native stack below the caller with non-zero bytes. */
static __attribute__((noinline)) uint64_t
dirty_native_stack(void)
{
    volatile uint64_t junk[1024];
    for (int i = 0; i < 1024; i++) {
        junk[i] = 0xdeadbeef00000000ull | (uint64_t)i;
    }
    return junk[17];
}

/* A writable, then executable, anonymous mapping of `size` bytes. */
static uint8_t*
map_rw(size_t size)
{
    void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : (uint8_t*)p;
}

static int
make_exec(uint8_t* p, size_t size)
{
    return mprotect(p, size, PROT_READ | PROT_EXEC);
}

/* --- 1. never-written stack reads 0 ------------------------------------------------------ */

static void
stack_reads_zero(void)
{
    /* Fills the whole stack with 0x5a through a copy of r10. */
    static const struct test_insn dirty[] = {
        MOV64_REG(1, 10),
        LDDW(2, 0x5a5a5a5a5a5a5a5aull),
        MOV64_IMM(3, 512),
        INSN(0x17, 1, 0, 0, 8),  /* sub r1, 8 */
        INSN(0x7b, 1, 2, 0, 0),  /* stxdw [r1], r2 */
        INSN(0x17, 3, 0, 0, 1),  /* sub r3, 1 */
        INSN(0x55, 3, 0, -4, 0), /* jne r3, 0, -4 */
        MOV64_IMM(0, 0),
        EXIT(),
    };
    static const int16_t offsets[] = {-8, -64, -512, -4096};
    struct ubpf_vm* dirty_vm = ubpf_create();
    CHECK_EQ(load_program(dirty_vm, dirty, PROG_LEN(dirty), NULL, 0), 0);
    char* errmsg = NULL;
    ubpf_jit_fn dirty_fn = ubpf_compile(dirty_vm, &errmsg);
    CHECK(dirty_fn != NULL);
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        for (int copied = 0; copied < 2; copied++) {
            /* ldxdw r0, [r10+off] (only the top -off bytes are cleared) or, through a copy
             * of r10, ldxdw r0, [r1+off] (the whole stack is cleared) */
            struct test_insn direct[3] = {MOV64_IMM(1, 0), INSN(0x79, 0, 10, offsets[i], 0), EXIT()};
            struct test_insn through_copy[3] = {MOV64_REG(1, 10), INSN(0x79, 0, 1, offsets[i], 0), EXIT()};
            struct test_insn* prog = copied ? through_copy : direct;
            struct ubpf_vm* vm = ubpf_create();
            CHECK_EQ(load_program(vm, prog, PROG_LEN(direct), NULL, 0), 0);
            ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
            CHECK(fn != NULL);
            for (int round = 0; round < 3; round++) {
                uint64_t ret = 1;
                CHECK_EQ(ubpf_exec(dirty_vm, NULL, 0, &ret), 0);
                CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
                CHECK_EQ(ret, 0);
                if (dirty_fn && fn) {
                    CHECK_EQ(dirty_fn(NULL, 0), 0);
                    dirty_native_stack();
                    CHECK_EQ(fn(NULL, 0), 0);
                }
                ret = 1;
                dirty_native_stack();
                CHECK_EQ(rbpf_exec_jit(vm, NULL, 0, &ret), 0);
                CHECK_EQ(ret, 0);
            }
            /* Extended mode with rbpf_exec_jit: librbpf's own stack, cleared as well. */
            ubpf_jit_ex_fn ex = ubpf_compile_ex(vm, &errmsg, ExtendedJitMode);
            CHECK(ex != NULL);
            uint64_t ret = 1;
            dirty_native_stack();
            CHECK_EQ(rbpf_exec_jit(vm, NULL, 0, &ret), 0);
            CHECK_EQ(ret, 0);
            ubpf_destroy(vm);
        }
    }
    ubpf_destroy(dirty_vm);
}

/* --- 4. buffers that wrap the address space ---------------------------------------------- */

static void
wrapping_buffers_are_refused(void)
{
    /* ldxb r0, [r1-16] (just below mem) and ldxb r0, [0x10] (a tiny absolute address). */
    static const struct test_insn below[] = {INSN(0x71, 0, 1, -16, 0), EXIT()};
    static const struct test_insn absolute[] = {LDDW(1, 0x10), INSN(0x71, 0, 1, 0, 0), EXIT()};
    const struct test_insn* programs[] = {below, absolute};
    const uint32_t lengths[] = {PROG_LEN(below), PROG_LEN(absolute)};
    uint8_t mem[64] = {0};
    uint8_t stack[512] = {0};
    for (int p = 0; p < 2; p++) {
        struct ubpf_vm* vm = ubpf_create();
        ubpf_set_error_print(vm, capture_printer);
        CHECK_EQ(load_program(vm, programs[p], lengths[p], NULL, 0), 0);
        uint64_t ret = 77;
        capture_reset();
        CHECK_EQ(ubpf_exec(vm, mem, SIZE_MAX, &ret), -1);
        CHECK_EQ(ret, 77);
        CHECK(strstr(captured, "mem buffer of 18446744073709551615 bytes passes the end of the address space") != NULL);
        CHECK_EQ(ubpf_exec_ex(vm, mem, SIZE_MAX, &ret, stack, sizeof(stack)), -1);
        CHECK_EQ(ubpf_exec_ex(vm, mem, sizeof(mem), &ret, stack, SIZE_MAX), -1);
        CHECK_EQ(ret, 77);
        char* errmsg = NULL;
        ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
        CHECK(fn != NULL);
        if (fn) {
            capture_reset();
            CHECK_EQ(fn(mem, SIZE_MAX), UINT64_MAX);
            CHECK(strstr(captured, "mem buffer of 18446744073709551615 bytes") != NULL);
            CHECK_EQ(rbpf_exec_jit(vm, mem, SIZE_MAX, &ret), -1);
        }
        ubpf_jit_ex_fn ex = ubpf_compile_ex(vm, &errmsg, ExtendedJitMode);
        CHECK(ex != NULL);
        if (ex) {
            capture_reset();
            CHECK_EQ(ex(mem, SIZE_MAX, stack, sizeof(stack)), UINT64_MAX);
            CHECK_EQ(ex(mem, sizeof(mem), stack, SIZE_MAX), UINT64_MAX);
            CHECK(strstr(captured, "stack buffer of 18446744073709551615 bytes") != NULL);
        }
        ubpf_destroy(vm);
    }
    /* stb [r10-1], 1 on a stack whose end wraps: the interpreter crashed here. */
    static const struct test_insn store[] = {INSN(0x72, 10, 0, -1, 1), MOV64_IMM(0, 0), EXIT()};
    struct ubpf_vm* vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(load_program(vm, store, PROG_LEN(store), NULL, 0), 0);
    uint64_t ret = 5;
    CHECK_EQ(ubpf_exec_ex(vm, NULL, 0, &ret, stack, SIZE_MAX), -1);
    CHECK_EQ(ubpf_exec_ex(vm, NULL, 0, &ret, stack, sizeof(stack)), 0);
    CHECK_EQ(ret, 0);
    CHECK_EQ(stack[sizeof(stack) - 1], 1);
    ubpf_destroy(vm);
}

/* --- 5. copies outlive the VM ------------------------------------------------------------ */

/* r2 == 0: return plus_one(41) = 42 (a helper call); else store at [r1+r2] (out of bounds). */
static const struct test_insn copy_prog[] = {
    INSN(0x55, 2, 0, 3, 0), /* jne r2, 0, +3 */
    MOV64_IMM(1, 41),
    CALL_HELPER(7),
    EXIT(),
    ADD64_REG(1, 2),
    INSN(0x72, 1, 0, 0, 1), /* stb [r1], 1 */
    MOV64_IMM(0, 0),
    EXIT(),
};

static void
copies_outlive_the_vm(void)
{
    const size_t size = 65536;
    for (int how = 0; how < 4; how++) {
        /* how: 0 copy_jit + destroy, 1 copy_jit + unload, 2 translate + destroy,
         * 3 translate + unload. */
        struct ubpf_vm* vm = ubpf_create();
        ubpf_set_error_print(vm, capture_printer);
        CHECK_EQ(ubpf_register(vm, 7, "plus_one", as_external_function_t((void*)plus_one)), 0);
        CHECK_EQ(load_program(vm, copy_prog, PROG_LEN(copy_prog), NULL, 0), 0);
        char* errmsg = NULL;
        uint8_t* code = map_rw(size);
        CHECK(code != NULL);
        if (code == NULL) {
            ubpf_destroy(vm);
            continue;
        }
        size_t len = size;
        if (how < 2) {
            CHECK(ubpf_compile(vm, &errmsg) != NULL);
            CHECK(ubpf_copy_jit(vm, code, size, &errmsg) != NULL);
        } else {
            CHECK_EQ(ubpf_translate(vm, code, &len, &errmsg), 0);
        }
        free(errmsg);
        errmsg = NULL;
        CHECK_EQ(make_exec(code, size), 0);
        ubpf_jit_fn fn = (ubpf_jit_fn)(void*)code;
        uint8_t mem[4] = {0};
        CHECK_EQ(fn(NULL, 0), 42);
        capture_reset();
        CHECK_EQ(fn(mem, sizeof(mem)), UINT64_MAX);
        CHECK(strstr(captured, "out of bounds memory store") != NULL);
        if (how % 2 == 0) {
            ubpf_destroy(vm);
            vm = NULL;
        } else {
            ubpf_unload_code(vm);
            /* A helper registered after the VM let go of the code is not seen by the copy. */
            CHECK_EQ(ubpf_register(vm, 7, "times_ten", as_external_function_t((void*)times_ten)), 0);
        }
        /* The copy keeps calling the helper registered when the VM let go of it, and a
         * fault returns UINT64_MAX (reported on stderr: no VM remains to print it). */
        CHECK_EQ(fn(NULL, 0), 42);
        CHECK_EQ(fn(mem, sizeof(mem)), UINT64_MAX);
        CHECK_EQ(mem[0] + mem[1] + mem[2] + mem[3], 0);
        /* ... also after a memcpy to another address. */
        uint8_t* moved = map_rw(size);
        CHECK(moved != NULL);
        if (moved) {
            memcpy(moved, code, size);
            CHECK_EQ(make_exec(moved, size), 0);
            ubpf_jit_fn moved_fn = (ubpf_jit_fn)(void*)moved;
            CHECK_EQ(moved_fn(NULL, 0), 42);
            CHECK_EQ(moved_fn(mem, sizeof(mem)), UINT64_MAX);
            munmap(moved, size);
        }
        munmap(code, size);
        ubpf_destroy(vm);
    }
}

/* --- 7. re-entrancy ------------------------------------------------------------------------ */

static struct ubpf_vm* reentry_vm;
static ubpf_jit_fn reentry_fn;
static int reentry_mode; /* 0: ubpf_exec, 1: the compiled function, 2: rbpf_exec_jit */

/* Runs the program again from inside its own helper: r0 = nested result + 1, or 1000 when
 * the nested run failed. */
static uint64_t
run_again(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)a, (void)b, (void)c, (void)d, (void)e;
    uint64_t ret = 0;
    int rc = 0;
    switch (reentry_mode) {
    case 0:
        rc = ubpf_exec(reentry_vm, NULL, 0, &ret);
        break;
    case 1:
        ret = reentry_fn(NULL, 0);
        rc = ret == UINT64_MAX ? -1 : 0;
        break;
    default:
        rc = rbpf_exec_jit(reentry_vm, NULL, 0, &ret);
        break;
    }
    return rc == 0 ? ret + 1 : 1000;
}

static void
nesting_is_bounded(void)
{
    static const struct test_insn prog[] = {CALL_HELPER(3), EXIT()};
    for (int mode = 0; mode < 3; mode++) {
        reentry_vm = ubpf_create();
        ubpf_set_error_print(reentry_vm, capture_printer);
        CHECK_EQ(ubpf_register(reentry_vm, 3, "run_again", as_external_function_t((void*)run_again)), 0);
        CHECK_EQ(load_program(reentry_vm, prog, PROG_LEN(prog), NULL, 0), 0);
        char* errmsg = NULL;
        reentry_fn = ubpf_compile(reentry_vm, &errmsg);
        CHECK(reentry_fn != NULL);
        reentry_mode = mode;
        capture_reset();
        uint64_t ret = 0;
        if (mode == 1) {
            ret = reentry_fn(NULL, 0);
        } else {
            CHECK_EQ(mode == 0 ? ubpf_exec(reentry_vm, NULL, 0, &ret) : rbpf_exec_jit(reentry_vm, NULL, 0, &ret), 0);
        }
        /* 32 runs nest; the 33rd is refused before its first instruction, the helper that
         * started it returns 1000, and each of the 31 levels above adds 1. */
        CHECK_EQ(ret, 1000 + 31);
        CHECK(strstr(captured, "more than 32 program runs nested on this thread (through helpers)") != NULL);
        ubpf_destroy(reentry_vm);
    }
}

static struct ubpf_vm* freeing_vm;
static int freeing_what; /* 0: unload, 1: destroy, 2: compile in the other mode */

/* Tries to free the running program's code from inside its helper; returns a + 1. */
static uint64_t
free_running_code(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    if (freeing_what == 0) {
        ubpf_unload_code(freeing_vm);
    } else if (freeing_what == 1) {
        ubpf_destroy(freeing_vm);
    } else {
        char* errmsg = NULL;
        ubpf_jit_ex_fn other = ubpf_compile_ex(freeing_vm, &errmsg, ExtendedJitMode);
        if (other != NULL || errmsg == NULL ||
            strstr(errmsg, "compiled code is running") == NULL) {
            fprintf(stderr, "compile_ex from a helper: %p %s\n", (void*)other, errmsg ? errmsg : "(null)");
            test_failures++;
        }
        free(errmsg);
    }
    return a + 1;
}

static void
running_code_is_not_freed(void)
{
    /* r0 = helper(r1 = 5) via local state that lives in the stack and the code after it. */
    static const struct test_insn prog[] = {
        INSN(0x7a, 10, 0, -8, 100), /* stdw [r10-8], 100 */
        MOV64_IMM(1, 5),
        CALL_HELPER(4),
        INSN(0x79, 1, 10, -8, 0), /* ldxdw r1, [r10-8] */
        ADD64_REG(0, 1),
        EXIT(),
    };
    for (int what = 0; what < 3; what++) {
        for (int engine = 0; engine < 3; engine++) {
            freeing_vm = ubpf_create();
            freeing_what = what;
            ubpf_set_error_print(freeing_vm, capture_printer);
            CHECK_EQ(ubpf_register(freeing_vm, 4, "free_running_code", as_external_function_t((void*)free_running_code)), 0);
            CHECK_EQ(load_program(freeing_vm, prog, PROG_LEN(prog), NULL, 0), 0);
            char* errmsg = NULL;
            ubpf_jit_fn fn = ubpf_compile(freeing_vm, &errmsg);
            CHECK(fn != NULL);
            capture_reset();
            uint64_t ret = 0;
            if (engine == 0) {
                CHECK_EQ(ubpf_exec(freeing_vm, NULL, 0, &ret), 0);
            } else if (engine == 1 && fn) {
                ret = fn(NULL, 0);
            } else {
                CHECK_EQ(rbpf_exec_jit(freeing_vm, NULL, 0, &ret), 0);
            }
            CHECK_EQ(ret, 106);
            if (what < 2) {
                CHECK(strstr(captured, "cannot be unloaded now") != NULL || strstr(captured, "the VM is not destroyed") != NULL);
            }
            /* After the run, the same calls work. */
            ubpf_unload_code(freeing_vm);
            CHECK_EQ(ubpf_exec(freeing_vm, NULL, 0, &ret), -1);
            ubpf_destroy(freeing_vm);
        }
    }
}

/* --- 6. atomics: what loads also compiles and runs the same ------------------------------ */

static void
atomics_load_only_with_rfc_operations(void)
{
    static const int valid[] = {0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1};
    for (int width = 0; width < 2; width++) {
        uint8_t opcode = width ? 0xdb : 0xc3;
        for (int imm = 0; imm < 0x100; imm++) {
            /* stdw [r10-8], 3; mov r1, 5; mov r0, 3; atomic [r10-8] op r1; ldxdw r0, [r10-8]; exit */
            struct test_insn prog[] = {
                INSN(0x7a, 10, 0, -8, 3), MOV64_IMM(1, 5), MOV64_IMM(0, 3),
                INSN(opcode, 10, 1, -8, imm), INSN(0x79, 0, 10, -8, 0), EXIT(),
            };
            int is_valid = 0;
            for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
                is_valid |= valid[i] == imm;
            }
            struct ubpf_vm* vm = ubpf_create();
            char message[256];
            int rc = load_program(vm, prog, PROG_LEN(prog), message, sizeof(message));
            CHECK_EQ(rc, is_valid ? 0 : -1);
            if (rc != 0 && (imm & 0xf0) == 0x00 && imm != 0x01) {
                /* A valid operation with stray bits: the field filter's text. */
                char expected[64];
                snprintf(expected, sizeof(expected), "Invalid immediate value %d for opcode %s.", imm,
                         width ? "DB" : "C3");
                CHECK_STR(message, expected);
            }
            if (rc == 0) {
                uint64_t interp = 0;
                CHECK_EQ(ubpf_exec(vm, NULL, 0, &interp), 0);
                char* errmsg = NULL;
                ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
                CHECK(fn != NULL);
                free(errmsg);
                if (fn) {
                    CHECK_EQ(fn(NULL, 0), interp);
                }
            }
            ubpf_destroy(vm);
        }
    }
}

int
main(void)
{
    atomics_load_only_with_rfc_operations();
    stack_reads_zero();
    wrapping_buffers_are_refused();
    copies_outlive_the_vm();
    nesting_is_bounded();
    running_code_is_not_freed();
    return TEST_RESULT();
}
