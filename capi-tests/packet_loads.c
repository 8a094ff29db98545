/*
 * The legacy packet loads through uBPF's API (docs/semantics.md, "Legacy packet loads"): the
 * kernel's semantics, in ubpf_exec and in code from ubpf_compile. The packet is the memory
 * passed to the run; loads read it in network byte order, and a load outside it ends the
 * program with r0 = 0 (a success, not an error). The validator's texts for reserved fields.
 */
#include <rbpf.h>

#include "capi_test.h"

#define LDABSH(imm_) INSN(0x28, 0, 0, 0, imm_)
#define LDABSW(imm_) INSN(0x20, 0, 0, 0, imm_)
#define LDINDB(src, imm_) INSN(0x50, 0, src, 0, imm_)

/* r0 = ntohs(pkt[2..4]) + ntohl(pkt[4..8]) + pkt[r2 - 1], with r2 = mem_len. */
static const struct test_insn sum[] = {
    LDABSH(2),
    MOV64_REG(6, 0),
    LDABSW(4),
    ADD64_REG(6, 0),
    LDINDB(2, -1),
    ADD64_REG(0, 6),
    EXIT()};

/* r0 = 7, then a load just past an 8-byte packet: the program ends with 0. */
static const struct test_insn past_end[] = {MOV64_IMM(0, 7), LDABSW(5), MOV64_IMM(0, 99), EXIT()};

/* Runs `vm` on `mem` in the interpreter and in compiled code; both must give `expected`. */
static void
check_both(struct ubpf_vm* vm, uint8_t* mem, size_t len, uint64_t expected)
{
    uint64_t result = 0xdead;
    CHECK_EQ(ubpf_exec(vm, mem, len, &result), 0);
    CHECK_EQ(result, expected);
    char* errmsg = NULL;
    ubpf_jit_fn fn = ubpf_compile(vm, &errmsg);
    CHECK(fn != NULL);
    free(errmsg);
    if (fn != NULL) {
        CHECK_EQ(fn(mem, len), expected);
        result = 0xdead;
        CHECK_EQ(rbpf_exec_jit(vm, mem, len, &result), 0);
        CHECK_EQ(result, expected);
    }
}

int
main(void)
{
    uint8_t mem[8] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
    capture_reset();

    struct ubpf_vm* vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(load_program(vm, sum, PROG_LEN(sum), NULL, 0), 0);
    check_both(vm, mem, sizeof(mem), 0x2233 + 0x44556677 + 0x77);
    ubpf_destroy(vm);

    vm = ubpf_create();
    ubpf_set_error_print(vm, capture_printer);
    CHECK_EQ(load_program(vm, past_end, PROG_LEN(past_end), NULL, 0), 0);
    check_both(vm, mem, sizeof(mem), 0);
    /* No packet at all. */
    check_both(vm, NULL, 0, 0);
    /* Ending the program that way is not an error: nothing was printed. */
    CHECK_STR(captured, "");
    ubpf_destroy(vm);

    /* Reserved fields must be zero, as the kernel requires. */
    char message[256];
    vm = ubpf_create();
    const struct test_insn bad_dst[] = {INSN(0x28, 1, 0, 0, 2), EXIT()};
    CHECK_EQ(load_program(vm, bad_dst, PROG_LEN(bad_dst), message, sizeof(message)), -1);
    CHECK_STR(message, "Invalid destination register 1 for opcode 28.");
    const struct test_insn bad_off[] = {INSN(0x50, 0, 3, 1, 2), EXIT()};
    CHECK_EQ(load_program(vm, bad_off, PROG_LEN(bad_off), message, sizeof(message)), -1);
    CHECK_STR(message, "Invalid offset value 1 for opcode 50.");
    ubpf_destroy(vm);

    return TEST_RESULT();
}
