/*
 * The JIT entry points (docs/c-api.md, "JIT"): compile caching per mode and its errmsg rule,
 * invalid modes, the code-size limit, ubpf_translate's capacity in/out parameter, and
 * position-independent code from ubpf_translate and ubpf_copy_jit running after a memcpy
 * into fresh executable memory.
 */
#define _DEFAULT_SOURCE
#include <sys/mman.h>

#include "capi_test.h"

static uint64_t
add_100(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a + 100;
}

/* r0 = add_100(mem[0] + r2) */
static const struct test_insn program[] = {
    INSN(0x71, 3, 1, 0, 0), /* ldxb r3, [r1] */
    ADD64_REG(3, 2),
    MOV64_REG(1, 3),
    CALL_HELPER(0),
    EXIT()};

/* Copies `len` bytes of code into fresh executable memory (NULL on failure). */
static void*
make_executable(const void* code, size_t len)
{
    void* page = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        return NULL;
    }
    memcpy(page, code, len);
    if (mprotect(page, len, PROT_READ | PROT_EXEC) != 0) {
        munmap(page, len);
        return NULL;
    }
    return page;
}

int
main(void)
{
    uint8_t mem[4] = {5};
    const uint64_t expected = 5 + sizeof(mem) + 100;
    char* errmsg = NULL;
    char* const sentinel = (char*)"untouched";

    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(ubpf_register(vm, 0, "add_100", add_100), 0);

    /* Nothing loaded. */
    size_t size = 4096;
    uint8_t scratch[4096];
    CHECK_EQ(ubpf_translate(vm, scratch, &size, &errmsg), -1);
    CHECK_STR(errmsg, "code has not been loaded into this VM");
    free(errmsg);
    errmsg = NULL;
    CHECK(ubpf_copy_jit(vm, scratch, sizeof(scratch), &errmsg) == NULL);
    CHECK_STR(errmsg, "Cannot copy JIT'd code before compilation");
    free(errmsg);

    CHECK_EQ(load_program(vm, program, PROG_LEN(program), NULL, 0), 0);

    /* Compile; a second compile in the same mode returns the cached code and leaves errmsg
       alone. */
    errmsg = sentinel;
    ubpf_jit_fn basic = ubpf_compile(vm, &errmsg);
    CHECK(basic != NULL);
    CHECK(errmsg == NULL);
    errmsg = sentinel;
    CHECK(ubpf_compile(vm, &errmsg) == basic);
    CHECK(errmsg == sentinel);
    CHECK((void*)ubpf_compile_ex(vm, &errmsg, BasicJitMode) == (void*)basic);
    CHECK(errmsg == sentinel);
    if (basic != NULL) {
        CHECK_EQ(basic(mem, sizeof(mem)), expected);
    }

    /* Invalid mode. */
    errmsg = NULL;
    CHECK(ubpf_compile_ex(vm, &errmsg, (enum JitMode)5) == NULL);
    CHECK_STR(errmsg, "invalid JIT mode 5");
    free(errmsg);

    /* Extended mode: the caller's stack. */
    errmsg = NULL;
    ubpf_jit_ex_fn extended = ubpf_compile_ex(vm, &errmsg, ExtendedJitMode);
    CHECK(extended != NULL && errmsg == NULL);
    uint8_t stack[512];
    if (extended != NULL) {
        CHECK_EQ(extended(mem, sizeof(mem), stack, sizeof(stack)), expected);
    }

    /* ubpf_copy_jit: needs a big enough buffer; the copy runs anywhere. */
    basic = ubpf_compile(vm, &errmsg);
    CHECK(basic != NULL);
    errmsg = NULL;
    CHECK(ubpf_copy_jit(vm, scratch, 1, &errmsg) == NULL);
    CHECK_STR(errmsg, "Buffer not big enough for copy");
    free(errmsg);
    errmsg = sentinel;
    CHECK(ubpf_copy_jit(vm, scratch, sizeof(scratch), &errmsg) == (ubpf_jit_fn)(void*)scratch);
    CHECK(errmsg == NULL);
    void* copy = make_executable(scratch, sizeof(scratch));
    CHECK(copy != NULL);
    if (copy != NULL) {
        ubpf_jit_fn copied = (ubpf_jit_fn)copy;
        CHECK_EQ(copied(mem, sizeof(mem)), expected);
        munmap(copy, sizeof(scratch));
    }

    /* ubpf_translate: *size is the capacity in, the code size out. */
    size = 1;
    errmsg = NULL;
    CHECK_EQ(ubpf_translate(vm, scratch, &size, &errmsg), -1);
    CHECK_STR(errmsg, "Target buffer too small");
    free(errmsg);
    size = sizeof(scratch);
    errmsg = sentinel;
    CHECK_EQ(ubpf_translate(vm, scratch, &size, &errmsg), 0);
    CHECK(errmsg == sentinel);
    CHECK(size > 0 && size < sizeof(scratch));
    void* translated = make_executable(scratch, size);
    CHECK(translated != NULL);
    if (translated != NULL) {
        ubpf_jit_fn fn = (ubpf_jit_fn)translated;
        CHECK_EQ(fn(mem, sizeof(mem)), expected);
        munmap(translated, size);
    }
    size = sizeof(scratch);
    CHECK_EQ(ubpf_translate_ex(vm, scratch, &size, NULL, ExtendedJitMode), 0);
    translated = make_executable(scratch, size);
    if (translated != NULL) {
        ubpf_jit_ex_fn fn = (ubpf_jit_ex_fn)translated;
        CHECK_EQ(fn(mem, sizeof(mem), stack, sizeof(stack)), expected);
        munmap(translated, size);
    }
    ubpf_destroy(vm);

    /* The code-size limit (custom test jit_buffer_too_small). */
    vm = ubpf_create();
    CHECK_EQ(ubpf_register(vm, 0, "add_100", add_100), 0);
    CHECK_EQ(ubpf_set_jit_code_size(vm, 1), 0);
    CHECK_EQ(load_program(vm, program, PROG_LEN(program), NULL, 0), 0);
    errmsg = NULL;
    CHECK(ubpf_compile(vm, &errmsg) == NULL);
    CHECK_STR(errmsg, "Target buffer too small");
    free(errmsg);
    ubpf_destroy(vm);
    return TEST_RESULT();
}
