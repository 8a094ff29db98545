/*
 * uBPF's safe execution profile through the C API: selecting it, the registration rules of
 * ubpf_register_safe_helper and ubpf_register_safe_region, the JIT refusing it, and the safe
 * interpreter allowing dereferences only through pointers with provenance (the input, the
 * stack, or a registered region returned by a pointer-result helper).
 */
#include "capi_test.h"

static uint8_t table[32];

/* A pointer-result helper: the address of `table` plus r1. */
static uint64_t
table_entry(uint64_t offset, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return (uint64_t)(uintptr_t)table + offset;
}

/* A scalar helper. */
static uint64_t
twice(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    (void)b, (void)c, (void)d, (void)e;
    return a * 2;
}

static void
test_registration_rules(void)
{
    struct ubpf_vm* vm = ubpf_create();
    CHECK(vm != NULL);

    struct ubpf_safe_helper_descriptor scalar = {1, "twice", twice, UBPF_SAFE_HELPER_RESULT_SCALAR, 0, 0};
    CHECK_EQ(ubpf_register_safe_helper(vm, &scalar), 0);
    struct ubpf_safe_helper_descriptor bad = scalar;
    bad.index = 64;
    CHECK_EQ(ubpf_register_safe_helper(vm, &bad), -1);
    bad = scalar;
    bad.fn = NULL;
    CHECK_EQ(ubpf_register_safe_helper(vm, &bad), -1);
    bad = scalar;
    bad.result_kind = (enum ubpf_safe_helper_result_kind)9;
    CHECK_EQ(ubpf_register_safe_helper(vm, &bad), -1);
    bad = scalar;
    bad.result_kind = UBPF_SAFE_HELPER_RESULT_POINTER;
    bad.region_id = 7;
    bad.region_size = 0;
    CHECK_EQ(ubpf_register_safe_helper(vm, &bad), -1);
    bad.region_size = 8;
    bad.region_id = 0xFFFFFFFEu;
    CHECK_EQ(ubpf_register_safe_helper(vm, &bad), -1);

    struct ubpf_safe_region region = {7, table, sizeof(table), UBPF_SAFE_REGION_POINTER, UBPF_SAFE_REGION_READ};
    CHECK_EQ(ubpf_register_safe_region(vm, &region), 0);
    CHECK_EQ(ubpf_register_safe_region(vm, &region), 0); /* same id: replaced */
    struct ubpf_safe_region bad_region = region;
    bad_region.id = 0xFFFFFFFFu;
    CHECK_EQ(ubpf_register_safe_region(vm, &bad_region), -1);
    bad_region = region;
    bad_region.size = 0;
    CHECK_EQ(ubpf_register_safe_region(vm, &bad_region), -1);
    bad_region = region;
    bad_region.base = NULL;
    CHECK_EQ(ubpf_register_safe_region(vm, &bad_region), -1);
    bad_region = region;
    bad_region.permissions = 8;
    CHECK_EQ(ubpf_register_safe_region(vm, &bad_region), -1);
    bad_region = region;
    bad_region.kind = (enum ubpf_safe_region_kind)5;
    CHECK_EQ(ubpf_register_safe_region(vm, &bad_region), -1);
    bad_region = region;
    bad_region.base = (void*)(uintptr_t)UINT64_MAX;
    CHECK_EQ(ubpf_register_safe_region(vm, &bad_region), -1);

    ubpf_destroy(vm);
}

static void
test_pointer_helpers_and_provenance(void)
{
    struct ubpf_vm* vm = ubpf_create();
    CHECK(vm != NULL);
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_SAFE), 0);

    struct ubpf_safe_region region = {7, table, sizeof(table), UBPF_SAFE_REGION_POINTER, UBPF_SAFE_REGION_READ};
    CHECK_EQ(ubpf_register_safe_region(vm, &region), 0);
    struct ubpf_safe_helper_descriptor pointer = {0, "table_entry", table_entry, UBPF_SAFE_HELPER_RESULT_POINTER, 7, 8};
    CHECK_EQ(ubpf_register_safe_helper(vm, &pointer), 0);
    struct ubpf_safe_helper_descriptor scalar = {1, "twice", twice, UBPF_SAFE_HELPER_RESULT_SCALAR, 0, 0};
    CHECK_EQ(ubpf_register_safe_helper(vm, &scalar), 0);
    for (size_t i = 0; i < sizeof(table); i++) {
        table[i] = (uint8_t)(i + 1);
    }

    /* r0 = *(u64*)table_entry(8): a load through a pointer into the registered region. */
    const struct test_insn through_pointer[] = {
        MOV64_IMM(1, 8),
        CALL_HELPER(0),
        INSN(0x79, 0, 0, 0, 0), /* ldxdw r0, [r0] */
        EXIT(),
    };
    CHECK_EQ(load_program(vm, through_pointer, PROG_LEN(through_pointer), NULL, 0), 0);
    uint64_t ret = 0;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
    CHECK_EQ(ret, 0x100f0e0d0c0b0a09ull);

    /* The JIT does not implement the safe profile. */
    char* errmsg = NULL;
    CHECK(ubpf_compile(vm, &errmsg) == NULL);
    CHECK(errmsg != NULL && strstr(errmsg, "interpreter-only") != NULL);
    free(errmsg);

    /* The profile cannot change once code is loaded. */
    CHECK_EQ(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_LEGACY), -1);
    ubpf_unload_code(vm);

    /* A scalar helper's result is a number, not a pointer: dereferencing it fails. */
    const struct test_insn through_scalar[] = {
        LDDW(1, (uint64_t)(uintptr_t)table),
        CALL_HELPER(1),
        INSN(0x79, 0, 0, 0, 0), /* ldxdw r0, [r0] */
        EXIT(),
    };
    CHECK_EQ(load_program(vm, through_scalar, PROG_LEN(through_scalar), NULL, 0), 0);
    capture_reset();
    ret = 42;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), -1);
    CHECK_EQ(ret, 42);
    CHECK_STR(captured, "uBPF safe mode error: load requires a pointer at PC 3\n");

    ubpf_destroy(vm);
}

int
main(void)
{
    test_registration_rules();
    test_pointer_helpers_and_provenance();
    return TEST_RESULT();
}
