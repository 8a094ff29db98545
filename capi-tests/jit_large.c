/*
 * The largest programs ubpf_load accepts (65,535 slots) through the JIT entry points: with the
 * default 64 KiB code size, a program whose code cannot fit is refused with "Target buffer
 * too small" (before compiling, docs/jit-compile-time.md), also by ubpf_translate into a
 * 64 KiB buffer; with ubpf_set_jit_code_size raised, such a program compiles and returns what
 * ubpf_exec returns; a program that fits (65,534 jumps to the next slot) compiles with the
 * default size.
 */
#include "capi_test.h"

#define SLOTS 65535

int
main(void)
{
    static struct test_insn stores[SLOTS];
    static struct test_insn jumps[SLOTS];
    static uint8_t buffer[65536];
    char* errmsg = NULL;
    uint64_t interp = 0;

    /* r0 = 1, then 65,533 stores of r0 to the stack, then exit. */
    stores[0] = (struct test_insn)MOV64_IMM(0, 1);
    for (int i = 1; i < SLOTS - 1; i++) {
        stores[i] = (struct test_insn)INSN(0x7b, 10, 0, -8 * (1 + i % 64), 0); /* stxdw */
    }
    stores[SLOTS - 1] = (struct test_insn)EXIT();

    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(load_program(vm, stores, PROG_LEN(stores), NULL, 0), 0);
    CHECK(ubpf_compile(vm, &errmsg) == NULL);
    CHECK_STR(errmsg, "Target buffer too small");
    free(errmsg);
    errmsg = NULL;
    size_t size = sizeof(buffer);
    CHECK_EQ(ubpf_translate(vm, buffer, &size, &errmsg), -1);
    CHECK_STR(errmsg, "Target buffer too small");
    free(errmsg);
    errmsg = NULL;

    ubpf_destroy(vm);

    /* The same shape at 4,096 slots (quicker under valgrind): refused with a 4 KiB code
       size, compiled once the size is raised, and run as the interpreter does. */
    stores[4095] = (struct test_insn)EXIT();
    vm = ubpf_create();
    CHECK_EQ(load_program(vm, stores, 4096 * sizeof(stores[0]), NULL, 0), 0);
    CHECK_EQ(ubpf_set_jit_code_size(vm, 4096), 0);
    CHECK(ubpf_compile(vm, &errmsg) == NULL);
    CHECK_STR(errmsg, "Target buffer too small");
    free(errmsg);
    errmsg = NULL;
    CHECK_EQ(ubpf_set_jit_code_size(vm, 16u << 20), 0);
    ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL);
    CHECK(errmsg == NULL);
    free(errmsg);
    errmsg = NULL;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &interp), 0);
    CHECK_EQ(interp, 1);
    if (fn != NULL) {
        CHECK_EQ(fn(NULL, 0), interp);
    }
    ubpf_destroy(vm);

    /* 65,534 x `jeq r0, i, +0`, then exit: every jump lands on the next slot, and the code
       fits the default size. */
    for (int i = 0; i < SLOTS - 1; i++) {
        jumps[i] = (struct test_insn)INSN(0x15, 0, 0, 0, i);
    }
    jumps[SLOTS - 1] = (struct test_insn)EXIT();
    vm = ubpf_create();
    CHECK_EQ(load_program(vm, jumps, PROG_LEN(jumps), NULL, 0), 0);
    fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL);
    free(errmsg);
    errmsg = NULL;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &interp), 0);
    if (fn != NULL) {
        CHECK_EQ(fn(NULL, 0), interp);
    }
    ubpf_destroy(vm);
    return TEST_RESULT();
}
