//! rbpf's `rbpf::ebpf` module: instruction-set constants under rbpf's names, the instruction
//! struct ([`Insn`], librbpf's own [`crate::isa::Insn`]), and rbpf's decoding functions.
//!
//! The values are the eBPF encoding (RFC 9669); [`crate::isa`] holds the same facts under the
//! RFC's grouping, which the rest of librbpf uses.

use alloc::vec::Vec;

use crate::isa::INSN_SIZE as SLOT;
pub use crate::isa::Insn;

/// Maximum number of instructions in a program, as rbpf declares it (librbpf's verifier
/// enforces uBPF's limit, [`crate::isa::MAX_INSTS`]).
pub const PROG_MAX_INSNS: usize = 1_000_000;
/// Size of an instruction slot in bytes.
pub const INSN_SIZE: usize = SLOT;
/// Maximum program size in bytes, as rbpf declares it.
pub const PROG_MAX_SIZE: usize = PROG_MAX_INSNS * INSN_SIZE;
/// rbpf's stack size per frame in bytes (librbpf's VMs give 8 frames: [`crate::isa::STACK_SIZE`]).
pub const STACK_SIZE: usize = 512;

/// Stack bytes each function gets without a stack-usage calculator.
pub const LOCAL_FUNCTION_STACK_SIZE: u16 = crate::isa::LOCAL_FUNCTION_STACK_SIZE;

/// How deep local calls may nest (rbpf's and librbpf's limit).
pub const MAX_CALL_DEPTH: usize = crate::isa::MAX_CALL_DEPTH;

/// A helper as rbpf registers it: r1..r5 in, r0 out.
pub type Helper = fn(u64, u64, u64, u64, u64) -> u64;

/// Instruction class: load (immediate, legacy packet).
pub const BPF_LD: u8 = 0x00;

/// Instruction class: load from memory.
pub const BPF_LDX: u8 = 0x01;

/// Instruction class: store immediate.
pub const BPF_ST: u8 = 0x02;

/// Instruction class: store register.
pub const BPF_STX: u8 = 0x03;

/// Instruction class: 32-bit arithmetic.
pub const BPF_ALU: u8 = 0x04;

/// Instruction class: 64-bit jumps.
pub const BPF_JMP: u8 = 0x05;

/// Instruction class: 32-bit jumps.
pub const BPF_JMP32: u8 = 0x06;

/// Instruction class: 64-bit arithmetic.
pub const BPF_ALU64: u8 = 0x07;

/// Size modifier: 4 bytes.
pub const BPF_W: u8 = 0x00;

/// Size modifier: 2 bytes.
pub const BPF_H: u8 = 0x08;

/// Size modifier: 1 byte.
pub const BPF_B: u8 = 0x10;

/// Size modifier: 8 bytes.
pub const BPF_DW: u8 = 0x18;

/// Mode modifier: immediate.
pub const BPF_IMM: u8 = 0x00;

/// Mode modifier: legacy absolute packet load.
pub const BPF_ABS: u8 = 0x20;

/// Mode modifier: legacy indirect packet load.
pub const BPF_IND: u8 = 0x40;

/// Mode modifier: memory.
pub const BPF_MEM: u8 = 0x60;

/// Mode modifier: atomic operation.
pub const BPF_ATOMIC: u8 = 0xc0;

/// Mode modifier: atomic add (legacy name of BPF_ATOMIC).
pub const BPF_XADD: u8 = 0xc0;

/// Source modifier: the immediate.
pub const BPF_K: u8 = 0x00;

/// Source modifier: the source register.
pub const BPF_X: u8 = 0x08;

/// ALU operation: add.
pub const BPF_ADD: u8 = 0x00;

/// ALU operation: subtract.
pub const BPF_SUB: u8 = 0x10;

/// ALU operation: multiply.
pub const BPF_MUL: u8 = 0x20;

/// ALU operation: divide.
pub const BPF_DIV: u8 = 0x30;

/// ALU operation: or.
pub const BPF_OR: u8 = 0x40;

/// ALU operation: and.
pub const BPF_AND: u8 = 0x50;

/// ALU operation: left shift.
pub const BPF_LSH: u8 = 0x60;

/// ALU operation: logical right shift.
pub const BPF_RSH: u8 = 0x70;

/// ALU operation: negate.
pub const BPF_NEG: u8 = 0x80;

/// ALU operation: modulo.
pub const BPF_MOD: u8 = 0x90;

/// ALU operation: exclusive or.
pub const BPF_XOR: u8 = 0xa0;

/// ALU operation: move.
pub const BPF_MOV: u8 = 0xb0;

/// ALU operation: arithmetic right shift.
pub const BPF_ARSH: u8 = 0xc0;

/// ALU operation: byte swap.
pub const BPF_END: u8 = 0xd0;

/// Jump operation: jump always.
pub const BPF_JA: u8 = 0x00;

/// Jump operation: jump if equal.
pub const BPF_JEQ: u8 = 0x10;

/// Jump operation: jump if greater.
pub const BPF_JGT: u8 = 0x20;

/// Jump operation: jump if greater or equal.
pub const BPF_JGE: u8 = 0x30;

/// Jump operation: jump if dst & src.
pub const BPF_JSET: u8 = 0x40;

/// Jump operation: jump if not equal.
pub const BPF_JNE: u8 = 0x50;

/// Jump operation: jump if greater, signed.
pub const BPF_JSGT: u8 = 0x60;

/// Jump operation: jump if greater or equal, signed.
pub const BPF_JSGE: u8 = 0x70;

/// Jump operation: call.
pub const BPF_CALL: u8 = 0x80;

/// Jump operation: exit.
pub const BPF_EXIT: u8 = 0x90;

/// Jump operation: jump if lower.
pub const BPF_JLT: u8 = 0xa0;

/// Jump operation: jump if lower or equal.
pub const BPF_JLE: u8 = 0xb0;

/// Jump operation: jump if lower, signed.
pub const BPF_JSLT: u8 = 0xc0;

/// Jump operation: jump if lower or equal, signed.
pub const BPF_JSLE: u8 = 0xd0;

/// Atomic operation (immediate): also fetch the old value.
pub const BPF_FETCH: i32 = 0x01;

/// Opcode of legacy `ldabsb imm`.
pub const LD_ABS_B: u8 = BPF_LD | BPF_ABS | BPF_B;

/// Opcode of legacy `ldabsh imm`.
pub const LD_ABS_H: u8 = BPF_LD | BPF_ABS | BPF_H;

/// Opcode of legacy `ldabsw imm`.
pub const LD_ABS_W: u8 = BPF_LD | BPF_ABS | BPF_W;

/// Opcode of legacy `ldabsdw imm`.
pub const LD_ABS_DW: u8 = BPF_LD | BPF_ABS | BPF_DW;

/// Opcode of legacy `ldindb src, imm`.
pub const LD_IND_B: u8 = BPF_LD | BPF_IND | BPF_B;

/// Opcode of legacy `ldindh src, imm`.
pub const LD_IND_H: u8 = BPF_LD | BPF_IND | BPF_H;

/// Opcode of legacy `ldindw src, imm`.
pub const LD_IND_W: u8 = BPF_LD | BPF_IND | BPF_W;

/// Opcode of legacy `ldinddw src, imm`.
pub const LD_IND_DW: u8 = BPF_LD | BPF_IND | BPF_DW;

/// Opcode of `lddw dst, imm64` (two slots).
pub const LD_DW_IMM: u8 = BPF_LD | BPF_IMM | BPF_DW;

/// Opcode of `ldxb dst, [src+off]`.
pub const LD_B_REG: u8 = BPF_LDX | BPF_MEM | BPF_B;

/// Opcode of `ldxh dst, [src+off]`.
pub const LD_H_REG: u8 = BPF_LDX | BPF_MEM | BPF_H;

/// Opcode of `ldxw dst, [src+off]`.
pub const LD_W_REG: u8 = BPF_LDX | BPF_MEM | BPF_W;

/// Opcode of `ldxdw dst, [src+off]`.
pub const LD_DW_REG: u8 = BPF_LDX | BPF_MEM | BPF_DW;

/// Opcode of `stb [dst+off], imm`.
pub const ST_B_IMM: u8 = BPF_ST | BPF_MEM | BPF_B;

/// Opcode of `sth [dst+off], imm`.
pub const ST_H_IMM: u8 = BPF_ST | BPF_MEM | BPF_H;

/// Opcode of `stw [dst+off], imm`.
pub const ST_W_IMM: u8 = BPF_ST | BPF_MEM | BPF_W;

/// Opcode of `stdw [dst+off], imm`.
pub const ST_DW_IMM: u8 = BPF_ST | BPF_MEM | BPF_DW;

/// Opcode of `stxb [dst+off], src`.
pub const ST_B_REG: u8 = BPF_STX | BPF_MEM | BPF_B;

/// Opcode of `stxh [dst+off], src`.
pub const ST_H_REG: u8 = BPF_STX | BPF_MEM | BPF_H;

/// Opcode of `stxw [dst+off], src`.
pub const ST_W_REG: u8 = BPF_STX | BPF_MEM | BPF_W;

/// Opcode of `stxdw [dst+off], src`.
pub const ST_DW_REG: u8 = BPF_STX | BPF_MEM | BPF_DW;

/// Opcode of 32-bit atomic operation (immediate selects it; 0 is add).
pub const ST_W_XADD: u8 = BPF_STX | BPF_XADD | BPF_W;

/// Opcode of 64-bit atomic operation (immediate selects it; 0 is add).
pub const ST_DW_XADD: u8 = BPF_STX | BPF_XADD | BPF_DW;

/// Opcode of 32-bit atomic operation.
pub const ST_W_ATOMIC: u8 = BPF_STX | BPF_ATOMIC | BPF_W;

/// Opcode of 64-bit atomic operation.
pub const ST_DW_ATOMIC: u8 = BPF_STX | BPF_ATOMIC | BPF_DW;

/// Opcode of `add32 dst, imm`.
pub const ADD32_IMM: u8 = BPF_ALU | BPF_K | BPF_ADD;

/// Opcode of `add32 dst, src`.
pub const ADD32_REG: u8 = BPF_ALU | BPF_X | BPF_ADD;

/// Opcode of `sub32 dst, imm`.
pub const SUB32_IMM: u8 = BPF_ALU | BPF_K | BPF_SUB;

/// Opcode of `sub32 dst, src`.
pub const SUB32_REG: u8 = BPF_ALU | BPF_X | BPF_SUB;

/// Opcode of `mul32 dst, imm`.
pub const MUL32_IMM: u8 = BPF_ALU | BPF_K | BPF_MUL;

/// Opcode of `mul32 dst, src`.
pub const MUL32_REG: u8 = BPF_ALU | BPF_X | BPF_MUL;

/// Opcode of `div32 dst, imm`.
pub const DIV32_IMM: u8 = BPF_ALU | BPF_K | BPF_DIV;

/// Opcode of `div32 dst, src`.
pub const DIV32_REG: u8 = BPF_ALU | BPF_X | BPF_DIV;

/// Opcode of `or32 dst, imm`.
pub const OR32_IMM: u8 = BPF_ALU | BPF_K | BPF_OR;

/// Opcode of `or32 dst, src`.
pub const OR32_REG: u8 = BPF_ALU | BPF_X | BPF_OR;

/// Opcode of `and32 dst, imm`.
pub const AND32_IMM: u8 = BPF_ALU | BPF_K | BPF_AND;

/// Opcode of `and32 dst, src`.
pub const AND32_REG: u8 = BPF_ALU | BPF_X | BPF_AND;

/// Opcode of `lsh32 dst, imm`.
pub const LSH32_IMM: u8 = BPF_ALU | BPF_K | BPF_LSH;

/// Opcode of `lsh32 dst, src`.
pub const LSH32_REG: u8 = BPF_ALU | BPF_X | BPF_LSH;

/// Opcode of `rsh32 dst, imm`.
pub const RSH32_IMM: u8 = BPF_ALU | BPF_K | BPF_RSH;

/// Opcode of `rsh32 dst, src`.
pub const RSH32_REG: u8 = BPF_ALU | BPF_X | BPF_RSH;

/// Opcode of `mod32 dst, imm`.
pub const MOD32_IMM: u8 = BPF_ALU | BPF_K | BPF_MOD;

/// Opcode of `mod32 dst, src`.
pub const MOD32_REG: u8 = BPF_ALU | BPF_X | BPF_MOD;

/// Opcode of `xor32 dst, imm`.
pub const XOR32_IMM: u8 = BPF_ALU | BPF_K | BPF_XOR;

/// Opcode of `xor32 dst, src`.
pub const XOR32_REG: u8 = BPF_ALU | BPF_X | BPF_XOR;

/// Opcode of `mov32 dst, imm`.
pub const MOV32_IMM: u8 = BPF_ALU | BPF_K | BPF_MOV;

/// Opcode of `mov32 dst, src`.
pub const MOV32_REG: u8 = BPF_ALU | BPF_X | BPF_MOV;

/// Opcode of `arsh32 dst, imm`.
pub const ARSH32_IMM: u8 = BPF_ALU | BPF_K | BPF_ARSH;

/// Opcode of `arsh32 dst, src`.
pub const ARSH32_REG: u8 = BPF_ALU | BPF_X | BPF_ARSH;

/// Opcode of `neg32 dst`.
pub const NEG32: u8 = BPF_ALU | BPF_NEG;

/// Opcode of `le16`/`le32`/`le64 dst` (width in the immediate).
pub const LE: u8 = BPF_ALU | BPF_K | BPF_END;

/// Opcode of `be16`/`be32`/`be64 dst` (width in the immediate).
pub const BE: u8 = BPF_ALU | BPF_X | BPF_END;

/// Opcode of `add64 dst, imm`.
pub const ADD64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_ADD;

/// Opcode of `add64 dst, src`.
pub const ADD64_REG: u8 = BPF_ALU64 | BPF_X | BPF_ADD;

/// Opcode of `sub64 dst, imm`.
pub const SUB64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_SUB;

/// Opcode of `sub64 dst, src`.
pub const SUB64_REG: u8 = BPF_ALU64 | BPF_X | BPF_SUB;

/// Opcode of `mul64 dst, imm`.
pub const MUL64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_MUL;

/// Opcode of `mul64 dst, src`.
pub const MUL64_REG: u8 = BPF_ALU64 | BPF_X | BPF_MUL;

/// Opcode of `div64 dst, imm`.
pub const DIV64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_DIV;

/// Opcode of `div64 dst, src`.
pub const DIV64_REG: u8 = BPF_ALU64 | BPF_X | BPF_DIV;

/// Opcode of `or64 dst, imm`.
pub const OR64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_OR;

/// Opcode of `or64 dst, src`.
pub const OR64_REG: u8 = BPF_ALU64 | BPF_X | BPF_OR;

/// Opcode of `and64 dst, imm`.
pub const AND64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_AND;

/// Opcode of `and64 dst, src`.
pub const AND64_REG: u8 = BPF_ALU64 | BPF_X | BPF_AND;

/// Opcode of `lsh64 dst, imm`.
pub const LSH64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_LSH;

/// Opcode of `lsh64 dst, src`.
pub const LSH64_REG: u8 = BPF_ALU64 | BPF_X | BPF_LSH;

/// Opcode of `rsh64 dst, imm`.
pub const RSH64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_RSH;

/// Opcode of `rsh64 dst, src`.
pub const RSH64_REG: u8 = BPF_ALU64 | BPF_X | BPF_RSH;

/// Opcode of `mod64 dst, imm`.
pub const MOD64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_MOD;

/// Opcode of `mod64 dst, src`.
pub const MOD64_REG: u8 = BPF_ALU64 | BPF_X | BPF_MOD;

/// Opcode of `xor64 dst, imm`.
pub const XOR64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_XOR;

/// Opcode of `xor64 dst, src`.
pub const XOR64_REG: u8 = BPF_ALU64 | BPF_X | BPF_XOR;

/// Opcode of `mov64 dst, imm`.
pub const MOV64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_MOV;

/// Opcode of `mov64 dst, src`.
pub const MOV64_REG: u8 = BPF_ALU64 | BPF_X | BPF_MOV;

/// Opcode of `arsh64 dst, imm`.
pub const ARSH64_IMM: u8 = BPF_ALU64 | BPF_K | BPF_ARSH;

/// Opcode of `arsh64 dst, src`.
pub const ARSH64_REG: u8 = BPF_ALU64 | BPF_X | BPF_ARSH;

/// Opcode of `neg64 dst`.
pub const NEG64: u8 = BPF_ALU64 | BPF_NEG;

/// Opcode of `ja +off`.
pub const JA: u8 = BPF_JMP | BPF_JA;

/// Opcode of `jeq dst, imm, +off`.
pub const JEQ_IMM: u8 = BPF_JMP | BPF_K | BPF_JEQ;

/// Opcode of `jeq dst, src, +off`.
pub const JEQ_REG: u8 = BPF_JMP | BPF_X | BPF_JEQ;

/// Opcode of `jgt dst, imm, +off`.
pub const JGT_IMM: u8 = BPF_JMP | BPF_K | BPF_JGT;

/// Opcode of `jgt dst, src, +off`.
pub const JGT_REG: u8 = BPF_JMP | BPF_X | BPF_JGT;

/// Opcode of `jge dst, imm, +off`.
pub const JGE_IMM: u8 = BPF_JMP | BPF_K | BPF_JGE;

/// Opcode of `jge dst, src, +off`.
pub const JGE_REG: u8 = BPF_JMP | BPF_X | BPF_JGE;

/// Opcode of `jlt dst, imm, +off`.
pub const JLT_IMM: u8 = BPF_JMP | BPF_K | BPF_JLT;

/// Opcode of `jlt dst, src, +off`.
pub const JLT_REG: u8 = BPF_JMP | BPF_X | BPF_JLT;

/// Opcode of `jle dst, imm, +off`.
pub const JLE_IMM: u8 = BPF_JMP | BPF_K | BPF_JLE;

/// Opcode of `jle dst, src, +off`.
pub const JLE_REG: u8 = BPF_JMP | BPF_X | BPF_JLE;

/// Opcode of `jset dst, imm, +off`.
pub const JSET_IMM: u8 = BPF_JMP | BPF_K | BPF_JSET;

/// Opcode of `jset dst, src, +off`.
pub const JSET_REG: u8 = BPF_JMP | BPF_X | BPF_JSET;

/// Opcode of `jne dst, imm, +off`.
pub const JNE_IMM: u8 = BPF_JMP | BPF_K | BPF_JNE;

/// Opcode of `jne dst, src, +off`.
pub const JNE_REG: u8 = BPF_JMP | BPF_X | BPF_JNE;

/// Opcode of `jsgt dst, imm, +off`.
pub const JSGT_IMM: u8 = BPF_JMP | BPF_K | BPF_JSGT;

/// Opcode of `jsgt dst, src, +off`.
pub const JSGT_REG: u8 = BPF_JMP | BPF_X | BPF_JSGT;

/// Opcode of `jsge dst, imm, +off`.
pub const JSGE_IMM: u8 = BPF_JMP | BPF_K | BPF_JSGE;

/// Opcode of `jsge dst, src, +off`.
pub const JSGE_REG: u8 = BPF_JMP | BPF_X | BPF_JSGE;

/// Opcode of `jslt dst, imm, +off`.
pub const JSLT_IMM: u8 = BPF_JMP | BPF_K | BPF_JSLT;

/// Opcode of `jslt dst, src, +off`.
pub const JSLT_REG: u8 = BPF_JMP | BPF_X | BPF_JSLT;

/// Opcode of `jsle dst, imm, +off`.
pub const JSLE_IMM: u8 = BPF_JMP | BPF_K | BPF_JSLE;

/// Opcode of `jsle dst, src, +off`.
pub const JSLE_REG: u8 = BPF_JMP | BPF_X | BPF_JSLE;

/// Opcode of `jeq32 dst, imm, +off` (32-bit compare).
pub const JEQ_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JEQ;

/// Opcode of `jeq32 dst, src, +off` (32-bit compare).
pub const JEQ_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JEQ;

/// Opcode of `jgt32 dst, imm, +off` (32-bit compare).
pub const JGT_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JGT;

/// Opcode of `jgt32 dst, src, +off` (32-bit compare).
pub const JGT_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JGT;

/// Opcode of `jge32 dst, imm, +off` (32-bit compare).
pub const JGE_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JGE;

/// Opcode of `jge32 dst, src, +off` (32-bit compare).
pub const JGE_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JGE;

/// Opcode of `jlt32 dst, imm, +off` (32-bit compare).
pub const JLT_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JLT;

/// Opcode of `jlt32 dst, src, +off` (32-bit compare).
pub const JLT_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JLT;

/// Opcode of `jle32 dst, imm, +off` (32-bit compare).
pub const JLE_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JLE;

/// Opcode of `jle32 dst, src, +off` (32-bit compare).
pub const JLE_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JLE;

/// Opcode of `jset32 dst, imm, +off` (32-bit compare).
pub const JSET_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JSET;

/// Opcode of `jset32 dst, src, +off` (32-bit compare).
pub const JSET_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JSET;

/// Opcode of `jne32 dst, imm, +off` (32-bit compare).
pub const JNE_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JNE;

/// Opcode of `jne32 dst, src, +off` (32-bit compare).
pub const JNE_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JNE;

/// Opcode of `jsgt32 dst, imm, +off` (32-bit compare).
pub const JSGT_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JSGT;

/// Opcode of `jsgt32 dst, src, +off` (32-bit compare).
pub const JSGT_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JSGT;

/// Opcode of `jsge32 dst, imm, +off` (32-bit compare).
pub const JSGE_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JSGE;

/// Opcode of `jsge32 dst, src, +off` (32-bit compare).
pub const JSGE_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JSGE;

/// Opcode of `jslt32 dst, imm, +off` (32-bit compare).
pub const JSLT_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JSLT;

/// Opcode of `jslt32 dst, src, +off` (32-bit compare).
pub const JSLT_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JSLT;

/// Opcode of `jsle32 dst, imm, +off` (32-bit compare).
pub const JSLE_IMM32: u8 = BPF_JMP32 | BPF_K | BPF_JSLE;

/// Opcode of `jsle32 dst, src, +off` (32-bit compare).
pub const JSLE_REG32: u8 = BPF_JMP32 | BPF_X | BPF_JSLE;

/// Opcode of `call imm` (helper, or local call when src is 1).
pub const CALL: u8 = BPF_JMP | BPF_CALL;

/// Opcode of `callx` (rbpf's tail call opcode).
pub const TAIL_CALL: u8 = BPF_JMP | BPF_X | BPF_CALL;

/// Opcode of `exit`.
pub const EXIT: u8 = BPF_JMP | BPF_EXIT;

/// Mask of the class bits of an opcode.
pub const BPF_CLS_MASK: u8 = 0x07;
/// Mask of the operation bits of an ALU or jump opcode.
pub const BPF_ALU_OP_MASK: u8 = 0xf0;

impl Insn {
    /// The 8 bytes of this slot (rbpf's name for [`Insn::to_bytes`]).
    pub fn to_array(&self) -> [u8; INSN_SIZE] {
        self.to_bytes()
    }

    /// The 8 bytes of this slot as a vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.to_bytes().to_vec()
    }
}

/// The slot at index `idx` (not a byte offset) of `prog`.
///
/// # Panics
/// When `prog` has no complete slot at `idx`, as rbpf's does.
///
/// ```
/// let prog = &[0xb7, 0x10, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
/// assert_eq!(rbpf::ebpf::get_insn(prog, 1).opc, rbpf::ebpf::EXIT);
/// ```
pub fn get_insn(prog: &[u8], idx: usize) -> Insn {
    let bytes = idx
        .checked_mul(INSN_SIZE)
        .and_then(|start| prog.get(start..start.checked_add(INSN_SIZE)?))
        .unwrap_or_else(|| {
            panic!(
                "Error: cannot reach instruction at index {idx} in program containing {} bytes",
                prog.len()
            )
        });
    let mut slot = [0u8; INSN_SIZE];
    slot.copy_from_slice(bytes);
    Insn::from_bytes(slot)
}

/// Every slot of `prog` (the two halves of an `lddw` are two entries).
///
/// # Panics
/// When the length of `prog` is not a multiple of 8, as rbpf's does.
pub fn to_insn_vec(prog: &[u8]) -> Vec<Insn> {
    crate::isa::decode_slots(prog).unwrap_or_else(|| {
        panic!("Error: eBPF program length must be a multiple of {INSN_SIZE} octets")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    #[test]
    fn opcodes_agree_with_the_instruction_table() {
        for (opc, mnemonic) in [
            (LD_DW_IMM, "lddw"),
            (LD_W_REG, "ldxw"),
            (ST_DW_IMM, "stdw"),
            (ST_B_REG, "stxb"),
            (ADD64_IMM, "add"),
            (MOV32_REG, "mov32"),
            (ARSH64_REG, "arsh"),
            (NEG64, "neg"),
            (JSLE_IMM32, "jsle32"),
            (EXIT, "exit"),
        ] {
            let known = crate::isa::specs_named(mnemonic).any(|s| s.opcode == opc);
            assert!(known, "{mnemonic} {opc:#x}");
        }
        assert_eq!(BE, 0xdc);
        assert_eq!(LE, 0xd4);
        assert_eq!(CALL, 0x85);
        assert_eq!(ST_DW_XADD, 0xdb);
    }

    #[test]
    fn slots_round_trip() {
        let prog = [0xb7, 0x12, 0x56, 0x34, 0xde, 0xbc, 0x9a, 0x78];
        let insn = get_insn(&prog, 0);
        assert_eq!(insn, Insn::new(0xb7, 2, 1, 0x3456, 0x789a_bcde));
        assert_eq!(insn.to_array(), prog);
        assert_eq!(insn.to_vec(), prog.to_vec());
        assert_eq!(to_insn_vec(&prog), vec![insn]);
    }

    #[test]
    #[should_panic(expected = "cannot reach instruction at index 1")]
    fn get_insn_panics_past_the_end() {
        get_insn(&[0x95, 0, 0, 0, 0, 0, 0], 1);
    }
}
