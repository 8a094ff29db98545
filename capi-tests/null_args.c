/*
 * NULL arguments never crash: each function returns its failure value (-1, NULL, false) and,
 * when it has an errmsg out-parameter that is not NULL, explains why there.
 */
#include "capi_test.h"
#include <rbpf.h>

static const struct test_insn ret_42[] = {MOV64_IMM(0, 42), EXIT()};

/* Checks that errmsg holds a "... is NULL" explanation, then frees it. */
static void
check_null_message(char* errmsg, const char* what)
{
    CHECK(errmsg != NULL);
    if (errmsg != NULL) {
        if (strstr(errmsg, what) == NULL || strstr(errmsg, "is NULL") == NULL) {
            fprintf(stderr, "errmsg \"%s\" does not say that %s is NULL\n", errmsg, what);
            test_failures++;
        }
        free(errmsg);
    }
}

int
main(void)
{
    char* errmsg = NULL;
    uint64_t ret = 0;
    uint8_t stack[512];
    size_t size = 64;

    /* A NULL VM everywhere. */
    ubpf_destroy(NULL);
    CHECK(!ubpf_toggle_bounds_check(NULL, true));
    CHECK(!ubpf_toggle_constant_blinding(NULL, true));
    CHECK(!ubpf_toggle_undefined_behavior_check(NULL, true));
    CHECK(!ubpf_toggle_readonly_bytecode(NULL, true));
    CHECK_EQ(ubpf_set_execution_profile(NULL, UBPF_EXECUTION_PROFILE_LEGACY), -1);
    ubpf_set_error_print(NULL, fprintf);
    CHECK_EQ(ubpf_register(NULL, 0, "x", NULL), -1);
    CHECK_EQ(ubpf_register_safe_helper(NULL, NULL), -1);
    CHECK_EQ(ubpf_register_external_dispatcher(NULL, NULL, NULL), -1);
    CHECK_EQ(ubpf_register_stack_usage_calculator(NULL, NULL, NULL), -1);
    errmsg = NULL;
    CHECK_EQ(ubpf_load(NULL, ret_42, PROG_LEN(ret_42), &errmsg), -1);
    check_null_message(errmsg, "vm");
    ubpf_unload_code(NULL);
    errmsg = NULL;
    CHECK_EQ(ubpf_load_elf(NULL, "x", 1, &errmsg), -1);
    check_null_message(errmsg, "vm");
    errmsg = NULL;
    CHECK_EQ(ubpf_load_elf_ex(NULL, "x", 1, "main", &errmsg), -1);
    check_null_message(errmsg, "vm");
    CHECK_EQ(ubpf_exec(NULL, NULL, 0, &ret), -1);
    CHECK_EQ(ubpf_exec_ex(NULL, NULL, 0, &ret, stack, sizeof(stack)), -1);
    errmsg = NULL;
    CHECK(ubpf_compile(NULL, &errmsg) == NULL);
    check_null_message(errmsg, "vm");
    errmsg = NULL;
    CHECK(ubpf_compile_ex(NULL, &errmsg, ExtendedJitMode) == NULL);
    check_null_message(errmsg, "vm");
    errmsg = NULL;
    CHECK(ubpf_copy_jit(NULL, stack, sizeof(stack), &errmsg) == NULL);
    check_null_message(errmsg, "vm");
    errmsg = NULL;
    CHECK_EQ(ubpf_translate(NULL, stack, &size, &errmsg), -1);
    check_null_message(errmsg, "vm");
    errmsg = NULL;
    CHECK_EQ(ubpf_translate_ex(NULL, stack, &size, &errmsg, BasicJitMode), -1);
    check_null_message(errmsg, "vm");
    CHECK_EQ(ubpf_set_unwind_function_index(NULL, 5), -1);
    CHECK_EQ(ubpf_set_pointer_secret(NULL, 1), -1);
    CHECK_EQ(ubpf_register_data_relocation(NULL, NULL, NULL), -1);
    CHECK_EQ(ubpf_register_data_bounds_check(NULL, NULL, NULL), -1);
    CHECK_EQ(ubpf_register_safe_region(NULL, NULL), -1);
    CHECK_EQ(ubpf_set_jit_code_size(NULL, 1), -1);
    CHECK_EQ(ubpf_set_instruction_limit(NULL, 1, NULL), -1);
    CHECK_EQ(ubpf_register_debug_fn(NULL, NULL, NULL), -1);
    CHECK(as_external_function_t(NULL) == NULL);

    /* NULL errmsg slots are allowed: the failure is still reported by the return value. */
    CHECK_EQ(ubpf_load(NULL, ret_42, PROG_LEN(ret_42), NULL), -1);
    CHECK(ubpf_compile(NULL, NULL) == NULL);
    CHECK_EQ(ubpf_translate(NULL, stack, &size, NULL), -1);
    CHECK(ubpf_copy_jit(NULL, stack, sizeof(stack), NULL) == NULL);
    CHECK_EQ(ubpf_load_elf(NULL, "x", 1, NULL), -1);

    /* NULL data and out-parameters on a real VM. */
    struct ubpf_vm* vm = ubpf_create();
    CHECK(vm != NULL);
    errmsg = NULL;
    CHECK_EQ(ubpf_load(vm, NULL, 16, &errmsg), -1);
    check_null_message(errmsg, "code");
    errmsg = NULL;
    CHECK_EQ(ubpf_load_elf(vm, NULL, 100, &errmsg), -1);
    check_null_message(errmsg, "elf");
    errmsg = NULL;
    CHECK_EQ(ubpf_translate(vm, stack, NULL, &errmsg), -1);
    check_null_message(errmsg, "size");
    CHECK_EQ(ubpf_exec(vm, NULL, 0, NULL), -1);
    CHECK_EQ(ubpf_exec_ex(vm, NULL, 0, &ret, NULL, 0), -1);
    CHECK_EQ(ubpf_register(vm, 0, NULL, NULL), 0);
    CHECK_EQ(ubpf_set_instruction_limit(vm, 10, NULL), 0);
    CHECK_EQ(ubpf_register_safe_helper(vm, NULL), -1);
    CHECK_EQ(ubpf_register_safe_region(vm, NULL), -1);
    ubpf_set_error_print(vm, NULL);
    ubpf_destroy(vm);

    CHECK(rbpf_version() != NULL);
    return TEST_RESULT();
}
