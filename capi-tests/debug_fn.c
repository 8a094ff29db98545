/*
 * The debug callback (docs/semantics.md, "Debug callback"): called by the interpreter before every
 * instruction with the pc, the 16-slot register file, the whole stack, register mask 0x406
 * and no stack mask (undefined-behaviour check off).
 */
#include "capi_test.h"

struct trace
{
    int calls;
    int pcs[16];
    uint64_t r0_seen[16];
    size_t stack_length;
    uint64_t mask;
    bool stack_mask_null;
    bool r10_in_stack;
};

static void
debug(void* context, int pc, const uint64_t registers[16], const uint8_t* stack, size_t stack_length,
      uint64_t register_mask, const uint8_t* stack_mask)
{
    struct trace* trace = context;
    if (trace->calls < 16) {
        trace->pcs[trace->calls] = pc;
        trace->r0_seen[trace->calls] = registers[0];
    }
    trace->calls++;
    trace->stack_length = stack_length;
    trace->mask = register_mask;
    trace->stack_mask_null = stack_mask == NULL;
    trace->r10_in_stack = registers[10] == (uint64_t)(uintptr_t)(stack + stack_length);
}

/* 0: r0 = 1; 1: lddw r0 (two slots); 3: jeq r0, 5, +1; 4: r0 = 9; 5: exit */
static const struct test_insn program[] = {
    MOV64_IMM(0, 1), LDDW(0, 5), INSN(0x15, 0, 0, 1, 5), MOV64_IMM(0, 9), EXIT()};

int
main(void)
{
    struct trace trace = {0};
    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(load_program(vm, program, PROG_LEN(program), NULL, 0), 0);
    /* Registered after load, as in uBPF's custom test. */
    CHECK_EQ(ubpf_register_debug_fn(vm, &trace, debug), 0);
    uint64_t ret = 0;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
    CHECK_EQ(ret, 5);
    CHECK_EQ(trace.calls, 4);
    CHECK(trace.pcs[0] == 0 && trace.pcs[1] == 1 && trace.pcs[2] == 3 && trace.pcs[3] == 5);
    CHECK_EQ(trace.r0_seen[1], 1);
    CHECK_EQ(trace.r0_seen[2], 5);
    CHECK_EQ(trace.stack_length, UBPF_EBPF_STACK_SIZE);
    CHECK_EQ(trace.mask, 0x406);
    CHECK(trace.stack_mask_null);
    CHECK(trace.r10_in_stack);

    /* Removed: no more calls. */
    CHECK_EQ(ubpf_register_debug_fn(vm, NULL, NULL), 0);
    trace.calls = 0;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
    CHECK_EQ(trace.calls, 0);
    ubpf_destroy(vm);
    return TEST_RESULT();
}
