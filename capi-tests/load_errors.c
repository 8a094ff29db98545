/*
 * Every load-time error through ubpf_load, with uBPF's exact texts: the programs of uBPF's
 * tests/errors .data files, the field-filter examples and the other validator messages
 * (docs/validator.md). Each message is malloc'd and freed here with free().
 */
#include "capi_test.h"

static uint64_t
helper(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    return a + b + c + d + e;
}

/* Loads `len` bytes into a fresh VM (helpers 0..62 registered; 63 is not) and checks the
   error text. */
static void
expect_error(const char* name, const void* code, uint32_t len, const char* expected)
{
    struct ubpf_vm* vm = ubpf_create();
    for (unsigned int i = 0; i < 63; i++) {
        ubpf_register(vm, i, "helper", helper);
    }
    char* errmsg = NULL;
    int rc = ubpf_load(vm, code, len, &errmsg);
    if (rc != -1 || errmsg == NULL || strcmp(errmsg, expected) != 0) {
        fprintf(
            stderr,
            "%s: ubpf_load returned %d with \"%s\", expected -1 with \"%s\"\n",
            name,
            rc,
            errmsg ? errmsg : "(NULL)",
            expected);
        test_failures++;
    }
    free(errmsg);
    ubpf_destroy(vm);
}

#define EXPECT_ERROR(prog, expected) expect_error(#prog, prog, PROG_LEN(prog), expected)

/* uBPF's tests/errors programs */
static const struct test_insn call_bad_imm[] = {
    MOV64_IMM(1, 1), MOV64_IMM(2, 2), MOV64_IMM(3, 3), MOV64_IMM(4, 4), MOV64_IMM(5, 5), CALL_HELPER(64), EXIT()};
static const struct test_insn call_unreg[] = {
    MOV64_IMM(1, 1), MOV64_IMM(2, 2), MOV64_IMM(3, 3), MOV64_IMM(4, 4), MOV64_IMM(5, 5), CALL_HELPER(63), EXIT()};
/* main calls a local function, which jumps back into main */
static const struct test_insn call_invalid_jump[] = {
    MOV64_IMM(0, 1), CALL_LOCAL(1), EXIT(), MOV64_IMM(0, 2), INSN(0x05, 0, 0, -3, 0), EXIT()};
/* main's sub-program [0, 2) ends in a call */
static const struct test_insn call0[] = {MOV64_IMM(0, 1), CALL_LOCAL(0), EXIT()};
static const struct test_insn endian_size[] = {INSN(0xdc, 1, 0, 0, 48), EXIT()};
static const struct test_insn incomplete_lddw[] = {INSN(0x18, 1, 0, 0, 1), EXIT()};
static const struct test_insn infinite_loop[] = {INSN(0x05, 0, 0, -1, 0), EXIT()};
static const struct test_insn invalid_reg_dst[] = {MOV64_IMM(11, 1), EXIT()};
static const struct test_insn invalid_reg_src[] = {MOV64_REG(0, 11), EXIT()};
static const struct test_insn jmp_lddw[] = {INSN(0x05, 0, 0, 1, 0), LDDW(0, 0x1122334455667788ull), EXIT()};
static const struct test_insn jmp_out[] = {INSN(0x05, 0, 0, 2, 0), EXIT()};
static const struct test_insn lddw_invalid_src[] = {INSN(0x18, 1, 1, 0, 1), INSN(0, 0, 0, 0, 0), EXIT()};
static const struct test_insn lddw_second_half_dst[] = {INSN(0x18, 1, 0, 0, 1), INSN(0, 1, 0, 0, 0), EXIT()};
static const struct test_insn lddw_second_half_src[] = {INSN(0x18, 1, 0, 0, 1), INSN(0, 0, 1, 0, 0), EXIT()};
static const struct test_insn lddw_second_half_offset[] = {INSN(0x18, 1, 0, 0, 1), INSN(0, 0, 0, 1, 0), EXIT()};
static const struct test_insn lddw_second_half_all[] = {INSN(0x18, 1, 0, 0, 1), INSN(0, 2, 3, 4, 5), EXIT()};
static const struct test_insn stack_store_r10_ok[] = {INSN(0x72, 10, 0, -1, 0), MOV64_IMM(0, 0), EXIT()};

/* 2.2 field filter and step A/B examples */
static const struct test_insn unknown_opcode[] = {INSN(0x8f, 0, 0, 0, 0), EXIT()};
static const struct test_insn mov64_r10[] = {MOV64_IMM(10, 1), EXIT()};
static const struct test_insn add64_imm_with_src[] = {INSN(0x07, 1, 1, 0, 1), EXIT()};
static const struct test_insn add64_reg_with_imm[] = {INSN(0x0f, 1, 2, 0, 7), EXIT()};
static const struct test_insn exit_with_dst[] = {INSN(0x95, 1, 0, 0, 0)};
static const struct test_insn atomic_validate[] = {INSN(0xb4, 0, 0, 0, 0), INSN(0xdb, 1, 0, 0, 0x42), EXIT()};
static const struct test_insn neg32_src[] = {INSN(0x84, 0, 1, 0, 0), EXIT()};
static const struct test_insn neg64_src[] = {INSN(0x87, 0, 1, 0, 0), EXIT()};
static const struct test_insn call_negative[] = {CALL_HELPER(-1), EXIT()};
static const struct test_insn call_local_out[] = {CALL_LOCAL(10), EXIT()};
static const struct test_insn call_btf[] = {INSN(0x85, 0, 2, 0, 1), EXIT()};
static const struct test_insn call_bad_type[] = {INSN(0x85, 0, 3, 0, 1), EXIT()};
static const struct test_insn xchg_without_fetch[] = {INSN(0xdb, 1, 2, 0, 0xe0), EXIT()};
static const struct test_insn atomic32_unknown[] = {INSN(0xc3, 1, 2, 0, 0x30), EXIT()};
static const struct test_insn lddw_r11[] = {INSN(0x18, 11, 0, 0, 1), INSN(0, 0, 0, 0, 0), EXIT()};
static const struct test_insn mov32_r10[] = {INSN(0xb4, 10, 0, 0, 1), EXIT()};

int
main(void)
{
    EXPECT_ERROR(call_bad_imm, "call to nonexistent function 64 at PC 5");
    EXPECT_ERROR(call_unreg, "call to nonexistent function 63 at PC 5");
    EXPECT_ERROR(call_invalid_jump, "jump out of bounds at PC 4");
    EXPECT_ERROR(call0, "sub-program does not end with EXIT or unconditional jump at PC 1");
    EXPECT_ERROR(endian_size, "invalid endian immediate at PC 0");
    EXPECT_ERROR(incomplete_lddw, "incomplete lddw at PC 0");
    EXPECT_ERROR(infinite_loop, "infinite loop at PC 0");
    EXPECT_ERROR(invalid_reg_dst, "invalid destination register at PC 0");
    EXPECT_ERROR(invalid_reg_src, "invalid source register at PC 0");
    EXPECT_ERROR(jmp_lddw, "jump to middle of lddw at PC 0");
    EXPECT_ERROR(jmp_out, "jump out of bounds at PC 0");
    EXPECT_ERROR(lddw_invalid_src, "invalid source register for LDDW at PC 0");
    EXPECT_ERROR(lddw_second_half_dst, "invalid lddw second half at PC 1");
    EXPECT_ERROR(lddw_second_half_src, "invalid lddw second half at PC 1");
    EXPECT_ERROR(lddw_second_half_offset, "invalid lddw second half at PC 1");
    EXPECT_ERROR(lddw_second_half_all, "invalid lddw second half at PC 1");

    EXPECT_ERROR(unknown_opcode, "unknown opcode 0x8f at PC 0");
    EXPECT_ERROR(mov64_r10, "Invalid destination register 10 for opcode B7.");
    EXPECT_ERROR(add64_imm_with_src, "Invalid source register 1 for opcode  7.");
    EXPECT_ERROR(add64_reg_with_imm, "Invalid immediate value 7 for opcode  F.");
    EXPECT_ERROR(exit_with_dst, "Invalid destination register 1 for opcode 95.");
    EXPECT_ERROR(atomic_validate, "Invalid immediate value 66 for opcode DB.");
    EXPECT_ERROR(neg32_src, "invalid src field for neg op at PC 0");
    EXPECT_ERROR(neg64_src, "invalid src field for neg64 op at PC 0");
    EXPECT_ERROR(call_negative, "invalid call immediate at PC 0");
    EXPECT_ERROR(call_local_out, "call to local function (at PC 0) is out of bounds (target: 11)");
    EXPECT_ERROR(call_btf, "call to external function by BTF ID (at PC 0) is not supported");
    EXPECT_ERROR(call_bad_type, "call (at PC 0) contains invalid type value");
    EXPECT_ERROR(xchg_without_fetch, "invalid atomic operation at PC 0");
    EXPECT_ERROR(atomic32_unknown, "invalid atomic operation with opcode 0xc3 at PC 0");
    EXPECT_ERROR(lddw_r11, "invalid destination register at PC 1");
    EXPECT_ERROR(mov32_r10, "invalid destination register at PC 0");

    /* Length rules. */
    static const uint8_t seven_bytes[7] = {0xb7, 0, 0, 0, 0, 0, 0};
    expect_error("seven bytes", seven_bytes, sizeof(seven_bytes), "code_len must be a multiple of 8");

    /* 65536 instructions plus exit: one slot too many. */
    uint32_t count = 65537;
    struct test_insn* big = calloc(count, sizeof(*big));
    CHECK(big != NULL);
    if (big != NULL) {
        const struct test_insn mov = MOV64_IMM(0, 1);
        const struct test_insn ex = EXIT();
        for (uint32_t i = 0; i + 1 < count; i++) {
            big[i] = mov;
        }
        big[count - 1] = ex;
        expect_error("too many instructions", big, count * 8, "too many instructions (max 65536)");
        /* 65535 slots is the most that loads. */
        big[65534] = ex;
        struct ubpf_vm* vm = ubpf_create();
        CHECK_EQ(load_program(vm, big, 65535 * 8, NULL, 0), 0);
        ubpf_destroy(vm);
        free(big);
    }

    /* Accepted programs: a store through r10, ja32 (0x06, current uBPF). */
    struct ubpf_vm* vm = ubpf_create();
    CHECK_EQ(load_program(vm, stack_store_r10_ok, PROG_LEN(stack_store_r10_ok), NULL, 0), 0);
    ubpf_unload_code(vm);
    static const struct test_insn ja32[] = {INSN(0x06, 0, 0, 0, 0), MOV64_IMM(0, 3), EXIT()};
    CHECK_EQ(load_program(vm, ja32, PROG_LEN(ja32), NULL, 0), 0);
    uint64_t ret = 0;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &ret), 0);
    CHECK_EQ(ret, 3);
    ubpf_destroy(vm);
    return TEST_RESULT();
}
