/*
 * include/ebpf.h, as a uBPF client uses it: every macro and enumerator appears below (the
 * header drift test checks that), each opcode is checked against its composition from the
 * field macros, and one program built from every accepted opcode loads and gives the same
 * result in the interpreter and the JIT.
 */
#include "capi_test.h"
#include <ebpf.h>

#define SAME(a, b) _Static_assert((a) == (b), #a " == " #b)

/* Field masks and the enumeration. */
_Static_assert(sizeof(struct ebpf_inst) == 8, "an instruction is 8 bytes");
SAME(_BPF_REG_MAX, 11);
SAME(EBPF_OP_ADD64_IMM & EBPF_CLS_MASK, EBPF_CLS_ALU64);
SAME(EBPF_OP_SUB_REG & EBPF_ALU_OP_MASK, EBPF_ALU_OP_SUB);
SAME(EBPF_OP_JSLE_REG & EBPF_JMP_OP_MASK, EBPF_MODE_JSLE);
SAME(EBPF_ATOMIC_OP_XCHG & EBPF_ATOMIC_OP_FETCH, EBPF_ATOMIC_OP_FETCH);
SAME(EBPF_ATOMIC_OP_CMPXCHG & EBPF_ATOMIC_OP_FETCH, EBPF_ATOMIC_OP_FETCH);

/* Every two-operand arithmetic operation: its four opcodes (32-bit immediate and register,
 * 64-bit immediate and register), its operation field, and an immediate for the test program. */
#define ALU_OPS(X) \
    X(EBPF_OP_MOV_IMM, EBPF_OP_MOV_REG, EBPF_OP_MOV64_IMM, EBPF_OP_MOV64_REG, EBPF_ALU_OP_MOV, 9) \
    X(EBPF_OP_ADD_IMM, EBPF_OP_ADD_REG, EBPF_OP_ADD64_IMM, EBPF_OP_ADD64_REG, EBPF_ALU_OP_ADD, 11) \
    X(EBPF_OP_SUB_IMM, EBPF_OP_SUB_REG, EBPF_OP_SUB64_IMM, EBPF_OP_SUB64_REG, EBPF_ALU_OP_SUB, 3) \
    X(EBPF_OP_MUL_IMM, EBPF_OP_MUL_REG, EBPF_OP_MUL64_IMM, EBPF_OP_MUL64_REG, EBPF_ALU_OP_MUL, 5) \
    X(EBPF_OP_DIV_IMM, EBPF_OP_DIV_REG, EBPF_OP_DIV64_IMM, EBPF_OP_DIV64_REG, EBPF_ALU_OP_DIV, 2) \
    X(EBPF_OP_OR_IMM, EBPF_OP_OR_REG, EBPF_OP_OR64_IMM, EBPF_OP_OR64_REG, EBPF_ALU_OP_OR, 0x1010) \
    X(EBPF_OP_AND_IMM, EBPF_OP_AND_REG, EBPF_OP_AND64_IMM, EBPF_OP_AND64_REG, EBPF_ALU_OP_AND, 0x7fff) \
    X(EBPF_OP_LSH_IMM, EBPF_OP_LSH_REG, EBPF_OP_LSH64_IMM, EBPF_OP_LSH64_REG, EBPF_ALU_OP_LSH, 3) \
    X(EBPF_OP_RSH_IMM, EBPF_OP_RSH_REG, EBPF_OP_RSH64_IMM, EBPF_OP_RSH64_REG, EBPF_ALU_OP_RSH, 1) \
    X(EBPF_OP_MOD_IMM, EBPF_OP_MOD_REG, EBPF_OP_MOD64_IMM, EBPF_OP_MOD64_REG, EBPF_ALU_OP_MOD, 100000) \
    X(EBPF_OP_XOR_IMM, EBPF_OP_XOR_REG, EBPF_OP_XOR64_IMM, EBPF_OP_XOR64_REG, EBPF_ALU_OP_XOR, 0x5a5a) \
    X(EBPF_OP_ARSH_IMM, EBPF_OP_ARSH_REG, EBPF_OP_ARSH64_IMM, EBPF_OP_ARSH64_REG, EBPF_ALU_OP_ARSH, 2)

/* Arithmetic: class | source | operation. */
#define ALU_SAME(imm32, reg32, imm64, reg64, op, value)   \
    SAME(imm32, EBPF_CLS_ALU | EBPF_SRC_IMM | op);     \
    SAME(reg32, EBPF_CLS_ALU | EBPF_SRC_REG | op);     \
    SAME(imm64, EBPF_CLS_ALU64 | EBPF_SRC_IMM | op);   \
    SAME(reg64, EBPF_CLS_ALU64 | EBPF_SRC_REG | op);
ALU_OPS(ALU_SAME)
SAME(EBPF_OP_NEG, EBPF_CLS_ALU | EBPF_ALU_OP_NEG);
SAME(EBPF_OP_NEG64, EBPF_CLS_ALU64 | EBPF_ALU_OP_NEG);
SAME(EBPF_OP_LE, EBPF_CLS_ALU | EBPF_SRC_IMM | EBPF_ALU_OP_END);
SAME(EBPF_OP_BE, EBPF_CLS_ALU | EBPF_SRC_REG | EBPF_ALU_OP_END);
SAME(EBPF_OP_BSWAP, EBPF_CLS_ALU64 | EBPF_SRC_IMM | EBPF_ALU_OP_END);

/* Memory: class | mode | size. */
SAME(EBPF_OP_LDDW, EBPF_CLS_LD | EBPF_MODE_IMM | EBPF_SIZE_DW);
SAME(EBPF_OP_LDXW, EBPF_CLS_LDX | EBPF_MODE_MEM | EBPF_SIZE_W);
SAME(EBPF_OP_LDXH, EBPF_CLS_LDX | EBPF_MODE_MEM | EBPF_SIZE_H);
SAME(EBPF_OP_LDXB, EBPF_CLS_LDX | EBPF_MODE_MEM | EBPF_SIZE_B);
SAME(EBPF_OP_LDXDW, EBPF_CLS_LDX | EBPF_MODE_MEM | EBPF_SIZE_DW);
SAME(EBPF_OP_LDXWSX, EBPF_CLS_LDX | EBPF_MODE_MEMSX | EBPF_SIZE_W);
SAME(EBPF_OP_LDXHSX, EBPF_CLS_LDX | EBPF_MODE_MEMSX | EBPF_SIZE_H);
SAME(EBPF_OP_LDXBSX, EBPF_CLS_LDX | EBPF_MODE_MEMSX | EBPF_SIZE_B);
SAME(EBPF_OP_STW, EBPF_CLS_ST | EBPF_MODE_MEM | EBPF_SIZE_W);
SAME(EBPF_OP_STH, EBPF_CLS_ST | EBPF_MODE_MEM | EBPF_SIZE_H);
SAME(EBPF_OP_STB, EBPF_CLS_ST | EBPF_MODE_MEM | EBPF_SIZE_B);
SAME(EBPF_OP_STDW, EBPF_CLS_ST | EBPF_MODE_MEM | EBPF_SIZE_DW);
SAME(EBPF_OP_STXW, EBPF_CLS_STX | EBPF_MODE_MEM | EBPF_SIZE_W);
SAME(EBPF_OP_STXH, EBPF_CLS_STX | EBPF_MODE_MEM | EBPF_SIZE_H);
SAME(EBPF_OP_STXB, EBPF_CLS_STX | EBPF_MODE_MEM | EBPF_SIZE_B);
SAME(EBPF_OP_STXDW, EBPF_CLS_STX | EBPF_MODE_MEM | EBPF_SIZE_DW);
SAME(EBPF_OP_ATOMIC32_STORE, EBPF_CLS_STX | EBPF_MODE_ATOMIC | EBPF_SIZE_W);
SAME(EBPF_OP_ATOMIC_STORE, EBPF_CLS_STX | EBPF_MODE_ATOMIC | EBPF_SIZE_DW);

/* Every condition: its four opcodes (64-bit immediate and register, 32-bit immediate and
 * register) and its operation field. */
#define JMP_OPS(X) \
    X(EBPF_OP_JEQ_IMM, EBPF_OP_JEQ_REG, EBPF_OP_JEQ32_IMM, EBPF_OP_JEQ32_REG, EBPF_MODE_JEQ) \
    X(EBPF_OP_JGT_IMM, EBPF_OP_JGT_REG, EBPF_OP_JGT32_IMM, EBPF_OP_JGT32_REG, EBPF_MODE_JGT) \
    X(EBPF_OP_JGE_IMM, EBPF_OP_JGE_REG, EBPF_OP_JGE32_IMM, EBPF_OP_JGE32_REG, EBPF_MODE_JGE) \
    X(EBPF_OP_JSET_IMM, EBPF_OP_JSET_REG, EBPF_OP_JSET32_IMM, EBPF_OP_JSET32_REG, EBPF_MODE_JSET) \
    X(EBPF_OP_JNE_IMM, EBPF_OP_JNE_REG, EBPF_OP_JNE32_IMM, EBPF_OP_JNE32_REG, EBPF_MODE_JNE) \
    X(EBPF_OP_JSGT_IMM, EBPF_OP_JSGT_REG, EBPF_OP_JSGT32_IMM, EBPF_OP_JSGT32_REG, EBPF_MODE_JSGT) \
    X(EBPF_OP_JSGE_IMM, EBPF_OP_JSGE_REG, EBPF_OP_JSGE32_IMM, EBPF_OP_JSGE32_REG, EBPF_MODE_JSGE) \
    X(EBPF_OP_JLT_IMM, EBPF_OP_JLT_REG, EBPF_OP_JLT32_IMM, EBPF_OP_JLT32_REG, EBPF_MODE_JLT) \
    X(EBPF_OP_JLE_IMM, EBPF_OP_JLE_REG, EBPF_OP_JLE32_IMM, EBPF_OP_JLE32_REG, EBPF_MODE_JLE) \
    X(EBPF_OP_JSLT_IMM, EBPF_OP_JSLT_REG, EBPF_OP_JSLT32_IMM, EBPF_OP_JSLT32_REG, EBPF_MODE_JSLT) \
    X(EBPF_OP_JSLE_IMM, EBPF_OP_JSLE_REG, EBPF_OP_JSLE32_IMM, EBPF_OP_JSLE32_REG, EBPF_MODE_JSLE)

/* Jumps: class | source | condition. */
#define JMP_SAME(imm, reg, imm32, reg32, mode)          \
    SAME(imm, EBPF_CLS_JMP | EBPF_SRC_IMM | mode);     \
    SAME(reg, EBPF_CLS_JMP | EBPF_SRC_REG | mode);     \
    SAME(imm32, EBPF_CLS_JMP32 | EBPF_SRC_IMM | mode); \
    SAME(reg32, EBPF_CLS_JMP32 | EBPF_SRC_REG | mode);
JMP_OPS(JMP_SAME)
SAME(EBPF_OP_JA, EBPF_CLS_JMP | EBPF_MODE_JA);
SAME(EBPF_OP_JA32, EBPF_CLS_JMP32 | EBPF_MODE_JA);
SAME(EBPF_OP_CALL, EBPF_CLS_JMP | EBPF_MODE_CALL);
SAME(EBPF_OP_EXIT, EBPF_CLS_JMP | EBPF_MODE_EXIT);

/* An instruction from its fields, through struct ebpf_inst's named members. */
#define I(op, d, s, off, value) {.opcode = (op), .dst = (d), .src = (s), .offset = (off), .imm = (value)}

/* Each arithmetic operation on r0, with its immediate and with r3 (= 7) as the source. */
#define ALU_INSNS(imm32, reg32, imm64, reg64, op, value)                             \
    I(imm32, BPF_REG_0, 0, 0, value), I(reg32, BPF_REG_0, BPF_REG_3, 0, 0),          \
        I(imm64, BPF_REG_0, 0, 0, value), I(reg64, BPF_REG_0, BPF_REG_3, 0, 0),

/* Each condition on r0, against an immediate and against r3, in both widths, jumping to the
 * next instruction whatever the outcome. */
#define JMP_INSNS(imm, reg, imm32, reg32, mode)                                      \
    I(imm, BPF_REG_0, 0, 0, 5), I(reg, BPF_REG_0, BPF_REG_3, 0, 0),                  \
        I(imm32, BPF_REG_0, 0, 0, 5), I(reg32, BPF_REG_0, BPF_REG_3, 0, 0),

static const struct ebpf_inst program[] = {
    I(EBPF_OP_MOV64_IMM, BPF_REG_3, 0, 0, 7),
    I(EBPF_OP_MOV64_IMM, BPF_REG_0, 0, 0, 1000),
    ALU_OPS(ALU_INSNS)
    I(EBPF_OP_NEG, BPF_REG_0, 0, 0, 0),
    I(EBPF_OP_NEG64, BPF_REG_0, 0, 0, 0),
    I(EBPF_OP_LE, BPF_REG_0, 0, 0, 64),
    I(EBPF_OP_BE, BPF_REG_0, 0, 0, 32),
    I(EBPF_OP_BSWAP, BPF_REG_0, 0, 0, 16),
    I(EBPF_OP_MOV64_REG, BPF_REG_9, BPF_REG_0, 0, 0),
    I(EBPF_OP_MOV64_REG, BPF_REG_6, BPF_REG_9, 0, 0),
    I(EBPF_OP_MOV_REG, BPF_REG_7, BPF_REG_0, 0, 0),
    /* Memory, on the stack. */
    I(EBPF_OP_STDW, BPF_REG_10, 0, -8, -2),
    I(EBPF_OP_STW, BPF_REG_10, 0, -12, 0x1234),
    I(EBPF_OP_STH, BPF_REG_10, 0, -14, 0x8765),
    I(EBPF_OP_STB, BPF_REG_10, 0, -15, 0x99),
    I(EBPF_OP_STXDW, BPF_REG_10, BPF_REG_6, -24, 0),
    I(EBPF_OP_STXW, BPF_REG_10, BPF_REG_6, -28, 0),
    I(EBPF_OP_STXH, BPF_REG_10, BPF_REG_6, -30, 0),
    I(EBPF_OP_STXB, BPF_REG_10, BPF_REG_6, -31, 0),
    I(EBPF_OP_LDXDW, BPF_REG_4, BPF_REG_10, -8, 0),
    I(EBPF_OP_LDXW, BPF_REG_5, BPF_REG_10, -28, 0),
    I(EBPF_OP_ADD64_REG, BPF_REG_4, BPF_REG_5, 0, 0),
    I(EBPF_OP_LDXH, BPF_REG_5, BPF_REG_10, -14, 0),
    I(EBPF_OP_ADD64_REG, BPF_REG_4, BPF_REG_5, 0, 0),
    I(EBPF_OP_LDXB, BPF_REG_5, BPF_REG_10, -15, 0),
    I(EBPF_OP_ADD64_REG, BPF_REG_4, BPF_REG_5, 0, 0),
    I(EBPF_OP_LDXWSX, BPF_REG_5, BPF_REG_10, -12, 0),
    I(EBPF_OP_ADD64_REG, BPF_REG_4, BPF_REG_5, 0, 0),
    I(EBPF_OP_LDXHSX, BPF_REG_5, BPF_REG_10, -14, 0),
    I(EBPF_OP_ADD64_REG, BPF_REG_4, BPF_REG_5, 0, 0),
    I(EBPF_OP_LDXBSX, BPF_REG_5, BPF_REG_10, -15, 0),
    I(EBPF_OP_ADD64_REG, BPF_REG_4, BPF_REG_5, 0, 0),
    /* Atomics: plain and fetching operations, exchange, compare-and-exchange (r0 compares). */
    I(EBPF_OP_ATOMIC_STORE, BPF_REG_10, BPF_REG_4, -24, EBPF_ALU_OP_ADD),
    I(EBPF_OP_ATOMIC_STORE, BPF_REG_10, BPF_REG_4, -24, EBPF_ALU_OP_OR | EBPF_ATOMIC_OP_FETCH),
    I(EBPF_OP_ATOMIC_STORE, BPF_REG_10, BPF_REG_4, -8, EBPF_ATOMIC_OP_XCHG),
    I(EBPF_OP_ATOMIC_STORE, BPF_REG_10, BPF_REG_7, -8, EBPF_ATOMIC_OP_CMPXCHG),
    I(EBPF_OP_ATOMIC32_STORE, BPF_REG_10, BPF_REG_4, -12, EBPF_ALU_OP_AND),
    I(EBPF_OP_ATOMIC32_STORE, BPF_REG_10, BPF_REG_4, -12, EBPF_ALU_OP_XOR | EBPF_ATOMIC_OP_FETCH),
    I(EBPF_OP_LDXDW, BPF_REG_5, BPF_REG_10, -24, 0),
    I(EBPF_OP_XOR64_REG, BPF_REG_0, BPF_REG_5, 0, 0),
    I(EBPF_OP_LDXDW, BPF_REG_5, BPF_REG_10, -8, 0),
    I(EBPF_OP_XOR64_REG, BPF_REG_0, BPF_REG_5, 0, 0),
    I(EBPF_OP_LDXW, BPF_REG_5, BPF_REG_10, -12, 0),
    I(EBPF_OP_XOR64_REG, BPF_REG_0, BPF_REG_5, 0, 0),
    I(EBPF_OP_XOR64_REG, BPF_REG_0, BPF_REG_4, 0, 0),
    /* A 64-bit immediate. */
    I(EBPF_OP_LDDW, BPF_REG_8, 0, 0, 0x76543210),
    I(0, 0, 0, 0, 0x0fedcba9),
    I(EBPF_OP_ADD64_REG, BPF_REG_0, BPF_REG_8, 0, 0),
    /* Jumps and calls. */
    JMP_OPS(JMP_INSNS)
    I(EBPF_OP_JA, 0, 0, 0, 0),
    I(EBPF_OP_JA32, 0, 0, 0, 0),
    I(EBPF_OP_MOV64_REG, BPF_REG_1, BPF_REG_0, 0, 0),
    I(EBPF_OP_MOV64_IMM, BPF_REG_2, 0, 0, 0x3c),
    I(EBPF_OP_CALL, 0, 0, 0, 0),
    I(EBPF_OP_EXIT, 0, 0, 0, 0),
};

/* Helper 0: r1 rotated left by r2 bits. */
static uint64_t
rotate(uint64_t value, uint64_t bits, uint64_t a3, uint64_t a4, uint64_t a5)
{
    (void)a3;
    (void)a4;
    (void)a5;
    bits &= 63;
    return bits == 0 ? value : (value << bits) | (value >> (64 - bits));
}

int
main(void)
{
    struct ubpf_vm* vm = ubpf_create();
    CHECK(vm != NULL);
    CHECK_EQ(ubpf_register(vm, 0, "rotate", as_external_function_t((void*)rotate)), 0);
    char message[256];
    int loaded = load_program(vm, program, PROG_LEN(program), message, sizeof message);
    CHECK_EQ(loaded, 0);
    if (loaded != 0) {
        fprintf(stderr, "ubpf_load: %s\n", message);
        ubpf_destroy(vm);
        return TEST_RESULT();
    }
    uint64_t interpreted = 0;
    CHECK_EQ(ubpf_exec(vm, NULL, 0, &interpreted), 0);
    char* errmsg = NULL;
    ubpf_jit_fn compiled = ubpf_compile(vm, &errmsg);
    CHECK(compiled != NULL);
    free(errmsg);
    if (compiled != NULL) {
        CHECK_EQ(compiled(NULL, 0), interpreted);
    }
    ubpf_destroy(vm);
    return TEST_RESULT();
}
