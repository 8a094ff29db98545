/*
 * Settings and registration rules that need no program: uBPF's defaults, toggles returning
 * the previous value, once-only setters, the debug function's two-state switch, the
 * instruction limit's previous-value out-parameter, the execution profile, helper indices.
 */
#include "capi_test.h"

static uint64_t
relocate(void* ctx, const uint8_t* data, uint64_t size, const char* name, uint64_t off, uint64_t sym_size)
{
    (void)ctx, (void)data, (void)size, (void)name, (void)off, (void)sym_size;
    return 0;
}

static bool
bounds(void* ctx, uint64_t addr, uint64_t size)
{
    (void)ctx, (void)addr, (void)size;
    return false;
}

static void
debug_a(void* ctx, int pc, const uint64_t regs[16], const uint8_t* stack, size_t len, uint64_t mask, const uint8_t* smask)
{
    (void)ctx, (void)pc, (void)regs, (void)stack, (void)len, (void)mask, (void)smask;
}

static void
debug_b(void* ctx, int pc, const uint64_t regs[16], const uint8_t* stack, size_t len, uint64_t mask, const uint8_t* smask)
{
    debug_a(ctx, pc, regs, stack, len, mask, smask);
}

static uint64_t
helper(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    return a + b + c + d + e;
}

static void
check_toggle(bool (*toggle)(struct ubpf_vm*, bool), struct ubpf_vm* vm, bool initial, const char* name)
{
    bool previous = toggle(vm, !initial);
    if (previous != initial) {
        fprintf(stderr, "%s: default is %d, expected %d\n", name, previous, initial);
        test_failures++;
    }
    CHECK(toggle(vm, !initial) == !initial);
    CHECK(toggle(vm, initial) == !initial);
    CHECK(toggle(vm, initial) == initial);
}

int
main(void)
{
    struct ubpf_vm* vm = ubpf_create();
    CHECK(vm != NULL);

    /* Defaults (uBPF: bounds check on, read-only bytecode on, the rest off). */
    check_toggle(ubpf_toggle_bounds_check, vm, true, "bounds check");
    check_toggle(ubpf_toggle_readonly_bytecode, vm, true, "readonly bytecode");
    check_toggle(ubpf_toggle_undefined_behavior_check, vm, false, "undefined behavior check");
    check_toggle(ubpf_toggle_constant_blinding, vm, false, "constant blinding");

    /* Instruction limit: 0 (unlimited) by default; the previous value comes back. */
    uint32_t previous = 12345;
    CHECK_EQ(ubpf_set_instruction_limit(vm, 100, &previous), 0);
    CHECK_EQ(previous, 0);
    CHECK_EQ(ubpf_set_instruction_limit(vm, 7, &previous), 0);
    CHECK_EQ(previous, 100);
    CHECK_EQ(ubpf_set_instruction_limit(vm, 0, NULL), 0);
    CHECK_EQ(ubpf_set_instruction_limit(vm, 0, &previous), 0);
    CHECK_EQ(previous, 0);

    /* The unwind index can be set once. */
    CHECK_EQ(ubpf_set_unwind_function_index(vm, 5), 0);
    CHECK_EQ(ubpf_set_unwind_function_index(vm, 5), -1);
    CHECK_EQ(ubpf_set_unwind_function_index(vm, 6), -1);

    /* Data relocation and bounds callbacks: once each; a NULL with nothing set is a no-op,
       a later call fails even with NULL. */
    CHECK_EQ(ubpf_register_data_relocation(vm, NULL, NULL), 0);
    CHECK_EQ(ubpf_register_data_relocation(vm, NULL, relocate), 0);
    CHECK_EQ(ubpf_register_data_relocation(vm, NULL, relocate), -1);
    CHECK_EQ(ubpf_register_data_relocation(vm, NULL, NULL), -1);
    CHECK_EQ(ubpf_register_data_bounds_check(vm, NULL, NULL), 0);
    CHECK_EQ(ubpf_register_data_bounds_check(vm, NULL, bounds), 0);
    CHECK_EQ(ubpf_register_data_bounds_check(vm, NULL, bounds), -1);
    CHECK_EQ(ubpf_register_data_bounds_check(vm, NULL, NULL), -1);

    /* Debug function: none -> set -> none works; set -> other and none -> none fail. */
    CHECK_EQ(ubpf_register_debug_fn(vm, NULL, NULL), -1);
    CHECK_EQ(ubpf_register_debug_fn(vm, NULL, debug_a), 0);
    CHECK_EQ(ubpf_register_debug_fn(vm, NULL, debug_b), -1);
    CHECK_EQ(ubpf_register_debug_fn(vm, NULL, debug_a), -1);
    CHECK_EQ(ubpf_register_debug_fn(vm, NULL, NULL), 0);
    CHECK_EQ(ubpf_register_debug_fn(vm, NULL, NULL), -1);
    CHECK_EQ(ubpf_register_debug_fn(vm, NULL, debug_b), 0);

    /* Helpers: indices 0..63. */
    CHECK_EQ(ubpf_register(vm, 0, "h0", helper), 0);
    CHECK_EQ(ubpf_register(vm, 63, "h63", helper), 0);
    CHECK_EQ(ubpf_register(vm, 64, "h64", helper), -1);
    CHECK_EQ(ubpf_register(vm, 0xffffffffu, "big", helper), -1);
    CHECK_EQ(ubpf_register(vm, 63, NULL, NULL), 0);
    CHECK(as_external_function_t((void*)helper) == helper);

    /* Dispatcher and stack-usage calculator registration always succeed. */
    CHECK_EQ(ubpf_register_external_dispatcher(vm, NULL, NULL), 0);
    CHECK_EQ(ubpf_register_stack_usage_calculator(vm, NULL, NULL), 0);

    /* Execution profile: both profiles are accepted before anything is loaded or run;
       unknown values are refused (capi-tests/safe_profile.c covers the safe profile). */
    CHECK_EQ(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_SAFE), 0);
    CHECK_EQ(ubpf_set_execution_profile(vm, UBPF_EXECUTION_PROFILE_LEGACY), 0);
    CHECK_EQ(ubpf_set_execution_profile(vm, (enum ubpf_execution_profile)7), -1);

    /* Pointer secret and JIT code size are accepted before loading. */
    CHECK_EQ(ubpf_set_pointer_secret(vm, 0x1234), 0);
    CHECK_EQ(ubpf_set_jit_code_size(vm, 1 << 20), 0);

    /* Release-build register accessors: a warning on stderr, and no registers. */
    uint64_t regs[16] = {0};
    ubpf_set_registers(vm, regs);
    CHECK(ubpf_get_registers(vm) == NULL);

    /* The error printer can be replaced and restored. */
    ubpf_set_error_print(vm, capture_printer);
    ubpf_set_error_print(vm, NULL);

    /* Unloading with nothing loaded is fine. */
    ubpf_unload_code(vm);
    ubpf_destroy(vm);
    return TEST_RESULT();
}
