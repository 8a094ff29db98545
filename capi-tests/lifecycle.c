/*
 * A VM's life cycle: running before loading, loading twice, unload and reload (in a loop, so
 * that valgrind sees any leak), the rules tied to loaded code (pointer secret, execution
 * profile), the empty-program quirk, and errmsg ownership (malloc'd, freed with free()).
 */
#include "capi_test.h"

static const struct test_insn ret_1[] = {MOV64_IMM(0, 1), EXIT()};
static const struct test_insn ret_2[] = {MOV64_IMM(0, 2), EXIT()};

int
main(void)
{
    uint64_t ret = 0;
    char message[256];
    struct ubpf_vm* vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);

    /* Nothing loaded: exec fails silently, compile explains. */
    capture_reset();
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), -1);
    CHECK_STR(captured, "");
    char* errmsg = NULL;
    CHECK(ubpf_compile(vm, &errmsg) == NULL);
    CHECK_STR(errmsg, "code has not been loaded into this VM");
    free(errmsg);

    /* errmsg is reset to NULL by a successful load, whatever it held. */
    errmsg = (char*)"not a heap pointer";
    CHECK_EQ(ubpf_load(vm, ret_1, PROG_LEN(ret_1), &errmsg), 0);
    CHECK(errmsg == NULL);

    /* Loading twice. */
    CHECK_EQ(load_program(vm, ret_2, PROG_LEN(ret_2), message, sizeof(message)), -1);
    CHECK_STR(
        message, "code has already been loaded into this VM. Use ubpf_unload_code() if you need to reuse this VM");
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
    CHECK_EQ(ret, 1);

    /* The pointer secret and the profile cannot change while code is loaded. */
    CHECK_EQ(ubpf_set_pointer_secret(vm, 42), -1);
    CHECK_EQ(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_LEGACY), -1);

    /* Reload after unload, many times, with compiled code in between. */
    for (int i = 0; i < 50; i++) {
        ubpf_unload_code(vm);
        const struct test_insn* code = i % 2 ? ret_2 : ret_1;
        CHECK_EQ(load_program(vm, code, PROG_LEN(ret_1), NULL, 0), 0);
        CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
        CHECK_EQ(ret, (uint64_t)(i % 2 ? 2 : 1));
        if (i % 10 == 0) {
            errmsg = NULL;
            ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
            CHECK(fn != NULL && errmsg == NULL);
            if (fn != NULL) {
                CHECK_EQ(fn(NULL, 0), (uint64_t)(i % 2 ? 2 : 1));
            }
            free(errmsg);
        }
    }
    ubpf_unload_code(vm);
    ubpf_unload_code(vm);
    CHECK_EQ(ubpf_set_pointer_secret(vm, 42), 0);
    /* The profile stays fixed once a program has run, even after unloading. */
    CHECK_EQ(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_LEGACY), -1);
    ubpf_destroy(vm);

    /* A fresh VM accepts the legacy profile. */
    vm = ubpf_create();
    CHECK_EQ(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_LEGACY), 0);

    /* Empty program: "out of memory" with read-only bytecode (the default), otherwise it
       loads and running it fails. */
    CHECK_EQ(load_program(vm, ret_1, 0, message, sizeof(message)), -1);
    CHECK_STR(message, "out of memory");
    CHECK(ubpf_toggle_readonly_bytecode(vm, false));
    CHECK_EQ(load_program(vm, ret_1, 0, NULL, 0), 0);
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), -1);
    ubpf_unload_code(vm);

    /* Destroying a VM with loaded and compiled code frees everything (valgrind checks). */
    CHECK_EQ(load_program(vm, ret_2, PROG_LEN(ret_2), NULL, 0), 0);
    errmsg = NULL;
    CHECK(ubpf_compile(vm, &errmsg) != NULL);
    free(errmsg);
    ubpf_destroy(vm);
    return TEST_RESULT();
}
