/*
 * The JIT through the C API (the JIT team's runtime-behaviour tests; capi-tests/jit.c
 * covers the entry points' rules): ubpf_compile / ubpf_compile_ex in both modes (cached per mode),
 * ubpf_translate(_ex) and ubpf_copy_jit output running from a fresh executable mapping,
 * helpers re-registered after compiling, faults that return instead of crashing (directly and
 * through rbpf_exec_jit), the instruction limit, ubpf_set_jit_code_size, and compiling after
 * unload and reload.
 */
#define _DEFAULT_SOURCE
#include <sys/mman.h>

#include "capi_test.h"
#include <rbpf.h>

static uint64_t
plus_one(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a + 1;
}

static uint64_t
times_two(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a * 2;
}

/* Copies `size` bytes of code into a new read+exec mapping (NULL on failure). */
static void*
executable_copy(const void* code, size_t size)
{
    void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    memcpy(p, code, size);
    if (mprotect(p, size, PROT_READ | PROT_EXEC) != 0) {
        munmap(p, size);
        return NULL;
    }
    return p;
}

int
main(void)
{
    char* errmsg = NULL;
    uint64_t ret = 0;

    /* --- compile, cache per mode, execute, helpers re-registered after compile --- */
    struct ubpf_vm* vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(ubpf_register(vm, 7, "plus_one", as_external_function_t((void*)plus_one)), 0);
    static const struct test_insn prog[] = {
        MOV64_REG(6, 1),
        LDDW(1, 20),
        CALL_HELPER(7),
        INSN(0x61, 1, 6, 0, 0), /* ldxw r1, [r6] */
        ADD64_REG(0, 1),
        EXIT(),
    };
    CHECK_EQ(load_program(vm, prog, PROG_LEN(prog), NULL, 0), 0);
    ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL);
    CHECK(errmsg == NULL);
    free(errmsg);
    errmsg = NULL;
    uint32_t mem = 100;
    if (fn != NULL) {
        CHECK_EQ(fn(&mem, sizeof(mem)), 121);
    }
    CHECK(ubpf_compile(vm, &errmsg) == fn); /* cached */
    CHECK_EQ(ubpf_register(vm, 7, "times_two", as_external_function_t((void*)times_two)), 0);
    if (fn != NULL) {
        CHECK_EQ(fn(&mem, sizeof(mem)), 140);
    }
    CHECK_EQ(rbpf_exec_jit(vm, &mem, sizeof(mem), &ret), 0);
    CHECK_EQ(ret, 140);

    /* --- copy_jit into a fresh executable mapping --- */
    uint8_t small[4];
    CHECK(ubpf_copy_jit(vm, small, sizeof(small), &errmsg) == NULL);
    CHECK_STR(errmsg, "Buffer not big enough for copy");
    free(errmsg);
    errmsg = NULL;
    static uint8_t buffer[65536];
    ubpf_jit_fn copied = ubpf_copy_jit(vm, buffer, sizeof(buffer), &errmsg);
    CHECK(copied == (ubpf_jit_fn)(void*)buffer);
    CHECK(errmsg == NULL);
    void* exec = executable_copy(buffer, sizeof(buffer));
    CHECK(exec != NULL);
    if (exec != NULL) {
        CHECK_EQ(((ubpf_jit_fn)exec)(&mem, sizeof(mem)), 140);
        munmap(exec, sizeof(buffer));
    }

    /* --- compile_ex in extended mode replaces the basic image --- */
    ubpf_jit_ex_fn ex = ubpf_compile_ex(vm, &errmsg, ExtendedJitMode);
    CHECK(ex != NULL);
    uint8_t stack[512];
    if (ex != NULL) {
        CHECK_EQ(ex(&mem, sizeof(mem), stack, sizeof(stack)), 140);
    }
    CHECK(ubpf_compile_ex(vm, &errmsg, ExtendedJitMode) == ex);
    CHECK_EQ(rbpf_exec_jit(vm, &mem, sizeof(mem), &ret), 0);
    CHECK_EQ(ret, 140);

    /* --- translate into a caller buffer, then run it --- */
    size_t size = 4;
    CHECK_EQ(ubpf_translate(vm, buffer, &size, &errmsg), -1);
    CHECK_STR(errmsg, "Target buffer too small");
    free(errmsg);
    errmsg = NULL;
    size = sizeof(buffer);
    CHECK_EQ(ubpf_translate_ex(vm, buffer, &size, &errmsg, ExtendedJitMode), 0);
    CHECK(size > 0 && size < sizeof(buffer));
    exec = executable_copy(buffer, size);
    CHECK(exec != NULL);
    if (exec != NULL) {
        CHECK_EQ(((ubpf_jit_ex_fn)exec)(&mem, sizeof(mem), stack, sizeof(stack)), 140);
        munmap(exec, size);
    }

    /* --- unload, reload, compile again; copy before compile fails --- */
    ubpf_unload_code(vm);
    CHECK(ubpf_copy_jit(vm, buffer, sizeof(buffer), &errmsg) == NULL);
    CHECK_STR(errmsg, "Cannot copy JIT'd code before compilation");
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_compile(vm, &errmsg) == NULL);
    CHECK_STR(errmsg, "code has not been loaded into this VM");
    free(errmsg);
    errmsg = NULL;
    CHECK_EQ(rbpf_exec_jit(vm, &mem, sizeof(mem), &ret), -1);
    CHECK_EQ(load_program(vm, prog, PROG_LEN(prog), NULL, 0), 0);
    fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL);
    if (fn != NULL) {
        CHECK_EQ(fn(&mem, sizeof(mem)), 140);
    }

    /* --- a fault returns an error: out-of-bounds load (mem too short) --- */
    capture_reset();
    ret = 7;
    CHECK_EQ(rbpf_exec_jit(vm, &mem, 2, &ret), -1);
    CHECK_EQ(ret, 7);
    CHECK(strstr(captured, "uBPF error: out of bounds memory load at PC 4") == captured);
    capture_reset();
    if (fn != NULL) {
        CHECK_EQ(fn(&mem, 2), UINT64_MAX); /* called directly: UINT64_MAX, message printed */
        CHECK(strstr(captured, "out of bounds memory load") != NULL);
    }
    ubpf_destroy(vm);

    /* --- the instruction limit stops a runaway loop --- */
    vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    static const struct test_insn loop[] = {
        MOV64_IMM(0, 0),
        ADD64_IMM(0, 1),
        INSN(0x05, 0, 0, -2, 0), /* ja -2 */
        EXIT(),
    };
    CHECK_EQ(ubpf_set_instruction_limit(vm, 10000, NULL), 0);
    CHECK_EQ(load_program(vm, loop, PROG_LEN(loop), NULL, 0), 0);
    CHECK(ubpf_compile(vm, &errmsg) != NULL);
    capture_reset();
    CHECK_EQ(rbpf_exec_jit(vm, NULL, 0, &ret), -1);
    CHECK_STR(captured, "Error: Instruction limit exceeded.\n");
    ubpf_destroy(vm);

    /* --- call depth: nine nested local calls fail --- */
    vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    static const struct test_insn deep[] = {
        CALL_LOCAL(-1), /* calls itself forever */
        EXIT(),
    };
    CHECK_EQ(load_program(vm, deep, PROG_LEN(deep), NULL, 0), 0);
    CHECK(ubpf_compile(vm, &errmsg) != NULL);
    capture_reset();
    CHECK_EQ(rbpf_exec_jit(vm, NULL, 0, &ret), -1);
    CHECK_STR(captured, "uBPF error: number of nested functions calls (9) exceeds max (8) at PC 0\n");

    /* --- jit code size too small --- */
    ubpf_unload_code(vm);
    CHECK_EQ(load_program(vm, deep, PROG_LEN(deep), NULL, 0), 0);
    CHECK_EQ(ubpf_set_jit_code_size(vm, 1), 0);
    CHECK(ubpf_compile(vm, &errmsg) == NULL);
    CHECK_STR(errmsg, "Target buffer too small");
    free(errmsg);
    errmsg = NULL;
    CHECK_EQ(ubpf_set_jit_code_size(vm, 65536), 0);
    CHECK(ubpf_compile(vm, &errmsg) != NULL);
    ubpf_destroy(vm);

    return TEST_RESULT();
}
