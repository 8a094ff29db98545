/*
 * Helpers and the external dispatcher, in the interpreter and in JIT-compiled code: r1..r5
 * and the original `mem` as the 6th argument (the dispatcher's cookie), the validator at load
 * time, the unwind index, and helpers or dispatchers replaced after compiling.
 */
#include "capi_test.h"

/* A helper that reads its 6th argument: the mem pointer given to the run. */
static uint64_t
args_and_mem(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, void* mem)
{
    const uint8_t* bytes = mem;
    return a + 10 * b + 100 * c + 1000 * d + 10000 * e + (mem ? 100000u * bytes[0] : 0);
}

static uint64_t
times_two(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a * 2;
}

static uint64_t
times_three(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a * 3;
}

/* The unwind helper: returns its argument (0 stops the program). */
static uint64_t
unwind(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a;
}

static const struct ubpf_vm* validated_vm;
static unsigned int validated_count;

/* Accepts helper indices 7 and 9 and remembers which VM asked. */
static bool
validate(unsigned int index, const struct ubpf_vm* vm)
{
    validated_vm = vm;
    validated_count++;
    return index == 7 || index == 9;
}

/* Encodes its arguments, the index and the cookie's first byte. */
static uint64_t
dispatch(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, unsigned int index, void* cookie)
{
    const uint8_t* bytes = cookie;
    return (a + b + c + d + e) * 1000 + index * 10 + (cookie ? bytes[0] : 0);
}

static uint64_t
dispatch_other(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, unsigned int index, void* cookie)
{
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)cookie;
    return 500 + index;
}

/* r1..r5 = 1..5 but r1 overwritten by a pointer-free value: the 6th argument must still be
   the original mem. */
static const struct test_insn call_1[] = {
    MOV64_IMM(1, 1), MOV64_IMM(2, 2), MOV64_IMM(3, 3), MOV64_IMM(4, 4), MOV64_IMM(5, 5), CALL_HELPER(1), EXIT()};
static const struct test_insn call_7[] = {
    MOV64_IMM(1, 1), MOV64_IMM(2, 2), MOV64_IMM(3, 3), MOV64_IMM(4, 4), MOV64_IMM(5, 5), CALL_HELPER(7), EXIT()};
static const struct test_insn call_8[] = {CALL_HELPER(8), EXIT()};
static const struct test_insn double_21[] = {MOV64_IMM(1, 21), CALL_HELPER(0), EXIT()};
/* r0 = 99 after the unwind call unless it returned 0. */
static const struct test_insn unwind_main[] = {MOV64_IMM(1, 0), CALL_HELPER(5), MOV64_IMM(0, 99), EXIT()};
static const struct test_insn unwind_continue[] = {MOV64_IMM(1, -1), CALL_HELPER(5), MOV64_IMM(0, 2), EXIT()};
/* The unwind call inside a local function ends the whole program. */
static const struct test_insn unwind_local[] = {
    CALL_LOCAL(2), MOV64_IMM(0, 77), EXIT(), MOV64_IMM(1, 0), CALL_HELPER(5), MOV64_IMM(0, 55), EXIT()};

/* Runs the loaded program in the interpreter and (compiled) in the JIT; both must give
   `expected`. */
static void
check_both(struct ubpf_vm* vm, void* mem, size_t len, uint64_t expected, const char* what)
{
    uint64_t ret = 0;
    int rc = ubpf_exec(vm, mem, len, &ret);
    if (rc != 0 || ret != expected) {
        fprintf(stderr, "%s (interpreter): rc %d ret %llu, expected %llu\n", what, rc, (unsigned long long)ret,
                (unsigned long long)expected);
        test_failures++;
    }
    char* errmsg = NULL;
    ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
    if (fn == NULL) {
        fprintf(stderr, "%s: ubpf_compile failed: %s\n", what, errmsg ? errmsg : "(NULL)");
        test_failures++;
    } else {
        uint64_t jit = fn(mem, len);
        if (jit != expected) {
            fprintf(stderr, "%s (JIT): ret %llu, expected %llu\n", what, (unsigned long long)jit,
                    (unsigned long long)expected);
            test_failures++;
        }
    }
    free(errmsg);
}

int
main(void)
{
    uint8_t memory[4] = {7, 0, 0, 0};
    uint64_t ret = 0;
    char message[256];

    /* Helpers get r1..r5 and mem. */
    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(ubpf_register(vm, 1, "args_and_mem", as_external_function_t((void*)args_and_mem)), 0);
    CHECK_EQ(load_program(vm, call_1, PROG_LEN(call_1), NULL, 0), 0);
    check_both(vm, memory, sizeof(memory), 54321 + 700000, "helper arguments");
    check_both(vm, NULL, 0, 54321, "helper with NULL mem");
    ubpf_destroy(vm);

    /* Replacing a helper after compiling changes what compiled code calls. */
    vm = ubpf_create();
    CHECK_EQ(ubpf_register(vm, 0, "mul", times_two), 0);
    CHECK_EQ(load_program(vm, double_21, PROG_LEN(double_21), NULL, 0), 0);
    check_both(vm, NULL, 0, 42, "times two");
    char* errmsg = NULL;
    ubpf_jit_fn compiled = ubpf_compile(vm, &errmsg);
    CHECK(compiled != NULL);
    CHECK_EQ(ubpf_register(vm, 0, "mul", times_three), 0);
    if (compiled != NULL) {
        CHECK_EQ(compiled(NULL, 0), 63);
    }
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
    CHECK_EQ(ret, 63);
    /* Removing it makes a new load of the same program fail. */
    ubpf_unload_code(vm);
    CHECK_EQ(ubpf_register(vm, 0, "mul", NULL), 0);
    CHECK_EQ(load_program(vm, double_21, PROG_LEN(double_21), message, sizeof(message)), -1);
    CHECK_STR(message, "call to nonexistent function 0 at PC 1");
    ubpf_destroy(vm);

    /* The dispatcher serves calls the validator accepts, with mem as the cookie. */
    vm = ubpf_create();
    CHECK_EQ(ubpf_register_external_dispatcher(vm, dispatch, validate), 0);
    CHECK_EQ(load_program(vm, call_8, PROG_LEN(call_8), message, sizeof(message)), -1);
    CHECK_STR(message, "call to nonexistent function 8 at PC 0");
    CHECK(validated_vm == vm);
    CHECK(validated_count > 0);
    CHECK_EQ(load_program(vm, call_7, PROG_LEN(call_7), NULL, 0), 0);
    check_both(vm, memory, sizeof(memory), 15 * 1000 + 70 + 7, "dispatcher");
    /* A new dispatcher after compiling is used by the compiled code. */
    compiled = ubpf_compile(vm, &errmsg);
    CHECK(compiled != NULL);
    CHECK_EQ(ubpf_register_external_dispatcher(vm, dispatch_other, validate), 0);
    if (compiled != NULL) {
        CHECK_EQ(compiled(memory, sizeof(memory)), 507);
    }
    CHECK_EQ(ubpf_exec(vm, memory, sizeof(memory), &ret), 0);
    CHECK_EQ(ret, 507);
    /* A NULL dispatcher returns to the helper table. */
    CHECK_EQ(ubpf_register_external_dispatcher(vm, NULL, NULL), 0);
    CHECK_EQ(ubpf_register(vm, 7, "seven", as_external_function_t((void*)args_and_mem)), 0);
    CHECK_EQ(ubpf_exec(vm, memory, sizeof(memory), &ret), 0);
    CHECK_EQ(ret, 54321 + 700000);
    ubpf_destroy(vm);

    /* A dispatcher without a validator refuses every helper call at load time. */
    vm = ubpf_create();
    CHECK_EQ(ubpf_register_external_dispatcher(vm, dispatch, NULL), 0);
    CHECK_EQ(load_program(vm, call_7, PROG_LEN(call_7), message, sizeof(message)), -1);
    CHECK_STR(message, "call to nonexistent function 7 at PC 5");
    ubpf_destroy(vm);

    /* Unwind: a zero return from the unwind helper ends the program with r0 = 0. */
    vm = ubpf_create();
    CHECK_EQ(ubpf_set_unwind_function_index(vm, 5), 0);
    CHECK_EQ(ubpf_register(vm, 5, "unwind", unwind), 0);
    CHECK_EQ(load_program(vm, unwind_main, PROG_LEN(unwind_main), NULL, 0), 0);
    check_both(vm, NULL, 0, 0, "unwind");
    ubpf_unload_code(vm);
    CHECK_EQ(load_program(vm, unwind_continue, PROG_LEN(unwind_continue), NULL, 0), 0);
    check_both(vm, NULL, 0, 2, "unwind helper returning non-zero");
    ubpf_unload_code(vm);
    CHECK_EQ(load_program(vm, unwind_local, PROG_LEN(unwind_local), NULL, 0), 0);
    check_both(vm, NULL, 0, 0, "unwind inside a local function");
    ubpf_destroy(vm);

    return TEST_RESULT();
}
