/*
 * ebpf.h: the eBPF instruction encoding under uBPF's names (struct ebpf_inst and the
 * EBPF_* macros of uBPF's vm/ebpf.h), for C code written against uBPF.
 *
 * GENERATED from src/isa by tests/header_up_to_date.rs: do not edit.
 */

#ifndef EBPF_H
#define EBPF_H

#include <stdint.h>

/** One 8-byte instruction slot (register fields as on a little-endian host). */
struct ebpf_inst
{
    uint8_t opcode;
    uint8_t dst : 4;
    uint8_t src : 4;
    int16_t offset;
    int32_t imm;
};

/** Register numbers (r10 is the read-only frame pointer). */
enum bpf_register
{
    BPF_REG_0,
    BPF_REG_1,
    BPF_REG_2,
    BPF_REG_3,
    BPF_REG_4,
    BPF_REG_5,
    BPF_REG_6,
    BPF_REG_7,
    BPF_REG_8,
    BPF_REG_9,
    BPF_REG_10,
    _BPF_REG_MAX,
};

/* Instruction fields. */
#define EBPF_CLS_MASK 0x07
#define EBPF_ALU_OP_MASK 0xf0
#define EBPF_JMP_OP_MASK 0xf0
#define EBPF_CLS_LD 0x00
#define EBPF_CLS_LDX 0x01
#define EBPF_CLS_ST 0x02
#define EBPF_CLS_STX 0x03
#define EBPF_CLS_ALU 0x04
#define EBPF_CLS_JMP 0x05
#define EBPF_CLS_JMP32 0x06
#define EBPF_CLS_ALU64 0x07
#define EBPF_SRC_IMM 0x00
#define EBPF_SRC_REG 0x08
#define EBPF_SIZE_W 0x00
#define EBPF_SIZE_H 0x08
#define EBPF_SIZE_B 0x10
#define EBPF_SIZE_DW 0x18
#define EBPF_MODE_IMM 0x00
#define EBPF_MODE_MEM 0x60
#define EBPF_MODE_MEMSX 0x80
#define EBPF_MODE_ATOMIC 0xc0
#define EBPF_ATOMIC_OP_FETCH 0x01
#define EBPF_ATOMIC_OP_XCHG 0xe1
#define EBPF_ATOMIC_OP_CMPXCHG 0xf1
#define EBPF_ALU_OP_ADD 0x00
#define EBPF_ALU_OP_SUB 0x10
#define EBPF_ALU_OP_MUL 0x20
#define EBPF_ALU_OP_DIV 0x30
#define EBPF_ALU_OP_OR 0x40
#define EBPF_ALU_OP_AND 0x50
#define EBPF_ALU_OP_LSH 0x60
#define EBPF_ALU_OP_RSH 0x70
#define EBPF_ALU_OP_NEG 0x80
#define EBPF_ALU_OP_MOD 0x90
#define EBPF_ALU_OP_XOR 0xa0
#define EBPF_ALU_OP_MOV 0xb0
#define EBPF_ALU_OP_ARSH 0xc0
#define EBPF_ALU_OP_END 0xd0
#define EBPF_MODE_JA 0x00
#define EBPF_MODE_JEQ 0x10
#define EBPF_MODE_JGT 0x20
#define EBPF_MODE_JGE 0x30
#define EBPF_MODE_JSET 0x40
#define EBPF_MODE_JNE 0x50
#define EBPF_MODE_JSGT 0x60
#define EBPF_MODE_JSGE 0x70
#define EBPF_MODE_CALL 0x80
#define EBPF_MODE_EXIT 0x90
#define EBPF_MODE_JLT 0xa0
#define EBPF_MODE_JLE 0xb0
#define EBPF_MODE_JSLT 0xc0
#define EBPF_MODE_JSLE 0xd0

/* Opcodes. */
#define EBPF_OP_ADD_IMM 0x04
#define EBPF_OP_ADD_REG 0x0c
#define EBPF_OP_SUB_IMM 0x14
#define EBPF_OP_SUB_REG 0x1c
#define EBPF_OP_MUL_IMM 0x24
#define EBPF_OP_MUL_REG 0x2c
#define EBPF_OP_DIV_IMM 0x34
#define EBPF_OP_DIV_REG 0x3c
#define EBPF_OP_OR_IMM 0x44
#define EBPF_OP_OR_REG 0x4c
#define EBPF_OP_AND_IMM 0x54
#define EBPF_OP_AND_REG 0x5c
#define EBPF_OP_LSH_IMM 0x64
#define EBPF_OP_LSH_REG 0x6c
#define EBPF_OP_RSH_IMM 0x74
#define EBPF_OP_RSH_REG 0x7c
#define EBPF_OP_NEG 0x84
#define EBPF_OP_MOD_IMM 0x94
#define EBPF_OP_MOD_REG 0x9c
#define EBPF_OP_XOR_IMM 0xa4
#define EBPF_OP_XOR_REG 0xac
#define EBPF_OP_MOV_IMM 0xb4
#define EBPF_OP_MOV_REG 0xbc
#define EBPF_OP_ARSH_IMM 0xc4
#define EBPF_OP_ARSH_REG 0xcc
#define EBPF_OP_ADD64_IMM 0x07
#define EBPF_OP_ADD64_REG 0x0f
#define EBPF_OP_SUB64_IMM 0x17
#define EBPF_OP_SUB64_REG 0x1f
#define EBPF_OP_MUL64_IMM 0x27
#define EBPF_OP_MUL64_REG 0x2f
#define EBPF_OP_DIV64_IMM 0x37
#define EBPF_OP_DIV64_REG 0x3f
#define EBPF_OP_OR64_IMM 0x47
#define EBPF_OP_OR64_REG 0x4f
#define EBPF_OP_AND64_IMM 0x57
#define EBPF_OP_AND64_REG 0x5f
#define EBPF_OP_LSH64_IMM 0x67
#define EBPF_OP_LSH64_REG 0x6f
#define EBPF_OP_RSH64_IMM 0x77
#define EBPF_OP_RSH64_REG 0x7f
#define EBPF_OP_NEG64 0x87
#define EBPF_OP_MOD64_IMM 0x97
#define EBPF_OP_MOD64_REG 0x9f
#define EBPF_OP_XOR64_IMM 0xa7
#define EBPF_OP_XOR64_REG 0xaf
#define EBPF_OP_MOV64_IMM 0xb7
#define EBPF_OP_MOV64_REG 0xbf
#define EBPF_OP_ARSH64_IMM 0xc7
#define EBPF_OP_ARSH64_REG 0xcf
#define EBPF_OP_LE 0xd4
#define EBPF_OP_BE 0xdc
#define EBPF_OP_BSWAP 0xd7
#define EBPF_OP_LDXW 0x61
#define EBPF_OP_LDXH 0x69
#define EBPF_OP_LDXB 0x71
#define EBPF_OP_LDXDW 0x79
#define EBPF_OP_LDXWSX 0x81
#define EBPF_OP_LDXHSX 0x89
#define EBPF_OP_LDXBSX 0x91
#define EBPF_OP_STW 0x62
#define EBPF_OP_STH 0x6a
#define EBPF_OP_STB 0x72
#define EBPF_OP_STDW 0x7a
#define EBPF_OP_STXW 0x63
#define EBPF_OP_STXH 0x6b
#define EBPF_OP_STXB 0x73
#define EBPF_OP_STXDW 0x7b
#define EBPF_OP_LDDW 0x18
#define EBPF_OP_JA 0x05
#define EBPF_OP_JEQ_IMM 0x15
#define EBPF_OP_JEQ_REG 0x1d
#define EBPF_OP_JGT_IMM 0x25
#define EBPF_OP_JGT_REG 0x2d
#define EBPF_OP_JGE_IMM 0x35
#define EBPF_OP_JGE_REG 0x3d
#define EBPF_OP_JSET_IMM 0x45
#define EBPF_OP_JSET_REG 0x4d
#define EBPF_OP_JNE_IMM 0x55
#define EBPF_OP_JNE_REG 0x5d
#define EBPF_OP_JSGT_IMM 0x65
#define EBPF_OP_JSGT_REG 0x6d
#define EBPF_OP_JSGE_IMM 0x75
#define EBPF_OP_JSGE_REG 0x7d
#define EBPF_OP_CALL 0x85
#define EBPF_OP_EXIT 0x95
#define EBPF_OP_JLT_IMM 0xa5
#define EBPF_OP_JLT_REG 0xad
#define EBPF_OP_JLE_IMM 0xb5
#define EBPF_OP_JLE_REG 0xbd
#define EBPF_OP_JSLT_IMM 0xc5
#define EBPF_OP_JSLT_REG 0xcd
#define EBPF_OP_JSLE_IMM 0xd5
#define EBPF_OP_JSLE_REG 0xdd
#define EBPF_OP_JEQ32_IMM 0x16
#define EBPF_OP_JEQ32_REG 0x1e
#define EBPF_OP_JGT32_IMM 0x26
#define EBPF_OP_JGT32_REG 0x2e
#define EBPF_OP_JGE32_IMM 0x36
#define EBPF_OP_JGE32_REG 0x3e
#define EBPF_OP_JSET32_IMM 0x46
#define EBPF_OP_JSET32_REG 0x4e
#define EBPF_OP_JNE32_IMM 0x56
#define EBPF_OP_JNE32_REG 0x5e
#define EBPF_OP_JSGT32_IMM 0x66
#define EBPF_OP_JSGT32_REG 0x6e
#define EBPF_OP_JSGE32_IMM 0x76
#define EBPF_OP_JSGE32_REG 0x7e
#define EBPF_OP_JLT32_IMM 0xa6
#define EBPF_OP_JLT32_REG 0xae
#define EBPF_OP_JLE32_IMM 0xb6
#define EBPF_OP_JLE32_REG 0xbe
#define EBPF_OP_JSLT32_IMM 0xc6
#define EBPF_OP_JSLT32_REG 0xce
#define EBPF_OP_JSLE32_IMM 0xd6
#define EBPF_OP_JSLE32_REG 0xde
#define EBPF_OP_JA32 0x06
#define EBPF_OP_ATOMIC32_STORE 0xc3
#define EBPF_OP_ATOMIC_STORE 0xdb

#endif /* EBPF_H */
