//! The eBPF instruction set (RFC 9669): field constants, limits shared with uBPF, the 8-byte
//! [`Insn`] encoding, and (in [`opcodes`]) the table of every instruction.
//!
//! Constant names follow the Linux/uBPF `BPF_*` vocabulary so that they read like the RFC.

use alloc::vec::Vec;

pub mod opcodes;

pub use opcodes::{INSN_TABLE, InsnSpec, Operands, Variant, is_known_opcode, spec_of, specs_named};

/// A helper as the engines call it: r1..r5 (the ISA's argument registers), then the `mem`
/// pointer given to the execution; the result goes to r0.
///
/// C helpers declared with fewer parameters (uBPF's `external_function_t` has five) are
/// called through this type too; the extra arguments are ignored under the C calling convention.
pub type HelperFn = unsafe extern "C" fn(u64, u64, u64, u64, u64, *mut core::ffi::c_void) -> u64;

/// Size in bytes of one instruction slot.
pub const INSN_SIZE: usize = 8;
/// uBPF's `UBPF_MAX_INSTS`: a program must have strictly fewer slots than this.
pub const MAX_INSTS: usize = 65536;
/// uBPF's `UBPF_MAX_CALL_DEPTH`: the deepest nesting of local calls the interpreter allows.
pub const MAX_CALL_DEPTH: usize = 8;

/// librbpf's limit on program runs nested on one thread through helper calls (a helper that
/// runs a program whose helper runs a program, ...), in both engines: a run of a program that
/// calls helpers, started beyond it, fails with `ExecError::NestingTooDeep` before its first
/// instruction instead of overflowing the native stack. Each level costs a few KiB of native stack (the eBPF stack is 4 KiB), so 32 levels
/// stay far below the smallest usual thread stack (docs/sandbox.md, "Re-entrancy").
pub const MAX_NESTED_RUNS: usize = 32;
/// uBPF's `UBPF_EBPF_STACK_SIZE`: the stack `ubpf_exec` gives a program, in bytes.
pub const STACK_SIZE: usize = MAX_CALL_DEPTH * 512;
/// uBPF's `UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE`: frame size per function without a calculator.
pub const LOCAL_FUNCTION_STACK_SIZE: u16 = 256;
/// uBPF's `UBPF_MAX_EXT_FUNCS`: the number of helper slots (valid indices are 0..64).
pub const MAX_EXT_FUNCS: usize = 64;
/// Helper slots the engines can call: uBPF's 64, plus room for the kernel's helper numbers
/// that `Vm::register_linux_helpers` installs above 63 (`docs/maps.md`).
pub const HELPER_SLOTS: usize = 256;
/// Number of BPF registers r0..r10.
pub const NUM_REGS: usize = 11;
/// The read-only frame pointer register.
pub const FRAME_PTR_REG: u8 = 10;

/// Instruction classes (the low 3 bits of the opcode).
pub mod class {
    /// Non-standard loads: `lddw` and the legacy packet loads (`ldabs*`, `ldind*`).
    pub const LD: u8 = 0x00;
    /// Load from memory into a register.
    pub const LDX: u8 = 0x01;
    /// Store an immediate to memory.
    pub const ST: u8 = 0x02;
    /// Store a register to memory (and atomics).
    pub const STX: u8 = 0x03;
    /// 32-bit arithmetic.
    pub const ALU: u8 = 0x04;
    /// 64-bit jumps, calls and exit.
    pub const JMP: u8 = 0x05;
    /// 32-bit jumps.
    pub const JMP32: u8 = 0x06;
    /// 64-bit arithmetic.
    pub const ALU64: u8 = 0x07;
    /// Mask selecting the class bits of an opcode.
    pub const MASK: u8 = 0x07;
}

/// Source operand selector for ALU and jump instructions (bit 3).
pub mod source {
    /// The operand is the immediate.
    pub const K: u8 = 0x00;
    /// The operand is the source register.
    pub const X: u8 = 0x08;
    /// Mask selecting the source bit of an opcode.
    pub const MASK: u8 = 0x08;
}

/// Arithmetic operation codes (the high 4 bits of an ALU/ALU64 opcode).
pub mod alu {
    /// `dst += src`
    pub const ADD: u8 = 0x00;
    /// `dst -= src`
    pub const SUB: u8 = 0x10;
    /// `dst *= src`
    pub const MUL: u8 = 0x20;
    /// `dst /= src` (offset 1: signed)
    pub const DIV: u8 = 0x30;
    /// `dst |= src`
    pub const OR: u8 = 0x40;
    /// `dst &= src`
    pub const AND: u8 = 0x50;
    /// `dst <<= src`
    pub const LSH: u8 = 0x60;
    /// `dst >>= src` (logical)
    pub const RSH: u8 = 0x70;
    /// `dst = -dst`
    pub const NEG: u8 = 0x80;
    /// `dst %= src` (offset 1: signed)
    pub const MOD: u8 = 0x90;
    /// `dst ^= src`
    pub const XOR: u8 = 0xa0;
    /// `dst = src` (offset 8/16/32: sign-extending move)
    pub const MOV: u8 = 0xb0;
    /// `dst >>= src` (arithmetic)
    pub const ARSH: u8 = 0xc0;
    /// Byte swap / endianness conversion.
    pub const END: u8 = 0xd0;
    /// Mask selecting the operation bits of an opcode.
    pub const MASK: u8 = 0xf0;
}

/// Jump operation codes (the high 4 bits of a JMP/JMP32 opcode).
pub mod jmp {
    /// Unconditional jump.
    pub const JA: u8 = 0x00;
    /// Jump if equal.
    pub const JEQ: u8 = 0x10;
    /// Jump if greater (unsigned).
    pub const JGT: u8 = 0x20;
    /// Jump if greater or equal (unsigned).
    pub const JGE: u8 = 0x30;
    /// Jump if `dst & src != 0`.
    pub const JSET: u8 = 0x40;
    /// Jump if not equal.
    pub const JNE: u8 = 0x50;
    /// Jump if greater (signed).
    pub const JSGT: u8 = 0x60;
    /// Jump if greater or equal (signed).
    pub const JSGE: u8 = 0x70;
    /// Function call.
    pub const CALL: u8 = 0x80;
    /// Return from function / program.
    pub const EXIT: u8 = 0x90;
    /// Jump if less (unsigned).
    pub const JLT: u8 = 0xa0;
    /// Jump if less or equal (unsigned).
    pub const JLE: u8 = 0xb0;
    /// Jump if less (signed).
    pub const JSLT: u8 = 0xc0;
    /// Jump if less or equal (signed).
    pub const JSLE: u8 = 0xd0;
}

/// Memory access sizes (bits 3-4 of a load/store opcode).
pub mod size {
    /// 4 bytes.
    pub const W: u8 = 0x00;
    /// 2 bytes.
    pub const H: u8 = 0x08;
    /// 1 byte.
    pub const B: u8 = 0x10;
    /// 8 bytes.
    pub const DW: u8 = 0x18;
    /// Mask selecting the size bits of an opcode.
    pub const MASK: u8 = 0x18;

    /// Width in bytes of a size code.
    pub const fn bytes(code: u8) -> usize {
        match code & MASK {
            W => 4,
            H => 2,
            B => 1,
            _ => 8,
        }
    }
}

/// Memory access modes (bits 5-7 of a load/store opcode).
pub mod mode {
    /// 64-bit immediate (`lddw`).
    pub const IMM: u8 = 0x00;
    /// Legacy packet load at a constant offset (`ldabs*`, class LD only).
    pub const ABS: u8 = 0x20;
    /// Legacy packet load at a register plus a constant offset (`ldind*`, class LD only).
    pub const IND: u8 = 0x40;
    /// Regular memory access.
    pub const MEM: u8 = 0x60;
    /// Sign-extending load.
    pub const MEMSX: u8 = 0x80;
    /// Atomic read-modify-write.
    pub const ATOMIC: u8 = 0xc0;
    /// Mask selecting the mode bits of an opcode.
    pub const MASK: u8 = 0xe0;
}

/// Atomic operation codes (the immediate of an atomic instruction).
pub mod atomic {
    /// Atomic add.
    pub const ADD: i32 = 0x00;
    /// Atomic or.
    pub const OR: i32 = 0x40;
    /// Atomic and.
    pub const AND: i32 = 0x50;
    /// Atomic xor.
    pub const XOR: i32 = 0xa0;
    /// Flag: the old value is written back to the source register.
    pub const FETCH: i32 = 0x01;
    /// Atomic exchange (always fetches).
    pub const XCHG: i32 = 0xe0 | FETCH;
    /// Atomic compare-and-exchange against r0 (always fetches).
    pub const CMPXCHG: i32 = 0xf0 | FETCH;

    /// What an atomic instruction does, decoded from its opcode and immediate
    /// ([`super::Insn::atomic`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Atomic {
        /// A read-modify-write of memory with src.
        Rmw {
            /// One of [`ADD`], [`OR`], [`AND`], [`XOR`].
            op: i32,
            /// Whether src receives the old value.
            fetch: bool,
        },
        /// Store src; src receives the old value.
        Xchg,
        /// Store src if memory equals r0; r0 receives the old value.
        Cmpxchg,
    }
}

/// Values of the source-register field of a `call` instruction (opcode 0x85).
pub mod call_kind {
    /// Call a helper by index (`imm`).
    pub const HELPER: u8 = 0;
    /// Call a local function at `pc + imm + 1`.
    pub const LOCAL: u8 = 1;
    /// Call a kernel function by BTF id (unsupported in userspace).
    pub const BTF: u8 = 2;
}

/// Every opcode byte, by name, built from its class, operation or mode, size and source
/// fields. The instruction table (`opcodes::INSN_TABLE`) and both engines match on these names.
///
/// Names follow the table's mnemonics, upper-cased: `ADD64_IMM` is `add dst, imm` (64-bit),
/// `ADD32_REG` is `add32 dst, src`, `JEQ_IMM`/`JEQ32_REG` are `jeq`/`jeq32`, `LDXSB` is `ldxsb`.
/// Instructions that share an opcode byte (`div`/`sdiv`, `le16`/`le32`, `call`/`call local`,
/// the atomic operations) share its name; the table tells them apart by another field.
#[rustfmt::skip]
pub mod op {
    use super::{alu, class, jmp, mode, size, source};

    /// `add dst, imm`: `dst += imm`, 64-bit.
    pub const ADD64_IMM:  u8 = class::ALU64 | alu::ADD | source::K;
    /// `add dst, src`: `dst += src`, 64-bit.
    pub const ADD64_REG:  u8 = class::ALU64 | alu::ADD | source::X;
    /// `sub dst, imm`: `dst -= imm`, 64-bit.
    pub const SUB64_IMM:  u8 = class::ALU64 | alu::SUB | source::K;
    /// `sub dst, src`: `dst -= src`, 64-bit.
    pub const SUB64_REG:  u8 = class::ALU64 | alu::SUB | source::X;
    /// `mul dst, imm`: `dst *= imm`, 64-bit.
    pub const MUL64_IMM:  u8 = class::ALU64 | alu::MUL | source::K;
    /// `mul dst, src`: `dst *= src`, 64-bit.
    pub const MUL64_REG:  u8 = class::ALU64 | alu::MUL | source::X;
    /// `div dst, imm`: `dst /= imm` (offset 1: `sdiv`, signed), 64-bit.
    pub const DIV64_IMM:  u8 = class::ALU64 | alu::DIV | source::K;
    /// `div dst, src`: `dst /= src` (offset 1: `sdiv`, signed), 64-bit.
    pub const DIV64_REG:  u8 = class::ALU64 | alu::DIV | source::X;
    /// `or dst, imm`: `dst |= imm`, 64-bit.
    pub const OR64_IMM:   u8 = class::ALU64 | alu::OR | source::K;
    /// `or dst, src`: `dst |= src`, 64-bit.
    pub const OR64_REG:   u8 = class::ALU64 | alu::OR | source::X;
    /// `and dst, imm`: `dst &= imm`, 64-bit.
    pub const AND64_IMM:  u8 = class::ALU64 | alu::AND | source::K;
    /// `and dst, src`: `dst &= src`, 64-bit.
    pub const AND64_REG:  u8 = class::ALU64 | alu::AND | source::X;
    /// `lsh dst, imm`: `dst <<= imm`, 64-bit.
    pub const LSH64_IMM:  u8 = class::ALU64 | alu::LSH | source::K;
    /// `lsh dst, src`: `dst <<= src`, 64-bit.
    pub const LSH64_REG:  u8 = class::ALU64 | alu::LSH | source::X;
    /// `rsh dst, imm`: `dst >>= imm` (logical), 64-bit.
    pub const RSH64_IMM:  u8 = class::ALU64 | alu::RSH | source::K;
    /// `rsh dst, src`: `dst >>= src` (logical), 64-bit.
    pub const RSH64_REG:  u8 = class::ALU64 | alu::RSH | source::X;
    /// `mod dst, imm`: `dst %= imm` (offset 1: `smod`, signed), 64-bit.
    pub const MOD64_IMM:  u8 = class::ALU64 | alu::MOD | source::K;
    /// `mod dst, src`: `dst %= src` (offset 1: `smod`, signed), 64-bit.
    pub const MOD64_REG:  u8 = class::ALU64 | alu::MOD | source::X;
    /// `xor dst, imm`: `dst ^= imm`, 64-bit.
    pub const XOR64_IMM:  u8 = class::ALU64 | alu::XOR | source::K;
    /// `xor dst, src`: `dst ^= src`, 64-bit.
    pub const XOR64_REG:  u8 = class::ALU64 | alu::XOR | source::X;
    /// `mov dst, imm`: `dst = imm`, 64-bit.
    pub const MOV64_IMM:  u8 = class::ALU64 | alu::MOV | source::K;
    /// `mov dst, src`: `dst = src` (register form, offset 8/16/32: `movsx`, sign-extending), 64-bit.
    pub const MOV64_REG:  u8 = class::ALU64 | alu::MOV | source::X;
    /// `arsh dst, imm`: `dst >>= imm` (arithmetic), 64-bit.
    pub const ARSH64_IMM: u8 = class::ALU64 | alu::ARSH | source::K;
    /// `arsh dst, src`: `dst >>= src` (arithmetic), 64-bit.
    pub const ARSH64_REG: u8 = class::ALU64 | alu::ARSH | source::X;
    /// `neg dst`: `dst = -dst`, 64-bit.
    pub const NEG64:      u8 = class::ALU64 | alu::NEG;
    /// `add32 dst, imm`: `dst += imm`, 32-bit.
    pub const ADD32_IMM:  u8 = class::ALU | alu::ADD | source::K;
    /// `add32 dst, src`: `dst += src`, 32-bit.
    pub const ADD32_REG:  u8 = class::ALU | alu::ADD | source::X;
    /// `sub32 dst, imm`: `dst -= imm`, 32-bit.
    pub const SUB32_IMM:  u8 = class::ALU | alu::SUB | source::K;
    /// `sub32 dst, src`: `dst -= src`, 32-bit.
    pub const SUB32_REG:  u8 = class::ALU | alu::SUB | source::X;
    /// `mul32 dst, imm`: `dst *= imm`, 32-bit.
    pub const MUL32_IMM:  u8 = class::ALU | alu::MUL | source::K;
    /// `mul32 dst, src`: `dst *= src`, 32-bit.
    pub const MUL32_REG:  u8 = class::ALU | alu::MUL | source::X;
    /// `div32 dst, imm`: `dst /= imm` (offset 1: `sdiv`, signed), 32-bit.
    pub const DIV32_IMM:  u8 = class::ALU | alu::DIV | source::K;
    /// `div32 dst, src`: `dst /= src` (offset 1: `sdiv`, signed), 32-bit.
    pub const DIV32_REG:  u8 = class::ALU | alu::DIV | source::X;
    /// `or32 dst, imm`: `dst |= imm`, 32-bit.
    pub const OR32_IMM:   u8 = class::ALU | alu::OR | source::K;
    /// `or32 dst, src`: `dst |= src`, 32-bit.
    pub const OR32_REG:   u8 = class::ALU | alu::OR | source::X;
    /// `and32 dst, imm`: `dst &= imm`, 32-bit.
    pub const AND32_IMM:  u8 = class::ALU | alu::AND | source::K;
    /// `and32 dst, src`: `dst &= src`, 32-bit.
    pub const AND32_REG:  u8 = class::ALU | alu::AND | source::X;
    /// `lsh32 dst, imm`: `dst <<= imm`, 32-bit.
    pub const LSH32_IMM:  u8 = class::ALU | alu::LSH | source::K;
    /// `lsh32 dst, src`: `dst <<= src`, 32-bit.
    pub const LSH32_REG:  u8 = class::ALU | alu::LSH | source::X;
    /// `rsh32 dst, imm`: `dst >>= imm` (logical), 32-bit.
    pub const RSH32_IMM:  u8 = class::ALU | alu::RSH | source::K;
    /// `rsh32 dst, src`: `dst >>= src` (logical), 32-bit.
    pub const RSH32_REG:  u8 = class::ALU | alu::RSH | source::X;
    /// `mod32 dst, imm`: `dst %= imm` (offset 1: `smod`, signed), 32-bit.
    pub const MOD32_IMM:  u8 = class::ALU | alu::MOD | source::K;
    /// `mod32 dst, src`: `dst %= src` (offset 1: `smod`, signed), 32-bit.
    pub const MOD32_REG:  u8 = class::ALU | alu::MOD | source::X;
    /// `xor32 dst, imm`: `dst ^= imm`, 32-bit.
    pub const XOR32_IMM:  u8 = class::ALU | alu::XOR | source::K;
    /// `xor32 dst, src`: `dst ^= src`, 32-bit.
    pub const XOR32_REG:  u8 = class::ALU | alu::XOR | source::X;
    /// `mov32 dst, imm`: `dst = imm`, 32-bit.
    pub const MOV32_IMM:  u8 = class::ALU | alu::MOV | source::K;
    /// `mov32 dst, src`: `dst = src` (register form, offset 8/16/32: `movsx`, sign-extending), 32-bit.
    pub const MOV32_REG:  u8 = class::ALU | alu::MOV | source::X;
    /// `arsh32 dst, imm`: `dst >>= imm` (arithmetic), 32-bit.
    pub const ARSH32_IMM: u8 = class::ALU | alu::ARSH | source::K;
    /// `arsh32 dst, src`: `dst >>= src` (arithmetic), 32-bit.
    pub const ARSH32_REG: u8 = class::ALU | alu::ARSH | source::X;
    /// `neg32 dst`: `dst = -dst`, 32-bit.
    pub const NEG32:      u8 = class::ALU | alu::NEG;
    /// `le16`/`le32`/`le64 dst` (width in the immediate): to little-endian.
    pub const LE:         u8 = class::ALU | alu::END | source::K;
    /// `be16`/`be32`/`be64 dst` (width in the immediate): to big-endian.
    pub const BE:         u8 = class::ALU | alu::END | source::X;
    /// `bswap16`/`bswap32`/`bswap64 dst` (width in the immediate): unconditional byte swap.
    pub const BSWAP:      u8 = class::ALU64 | alu::END | source::K;
    /// `lddw dst, imm64` (first slot; the second holds the high half).
    pub const LDDW:       u8 = class::LD | mode::IMM | size::DW;
    /// `ldabsw imm`: legacy packet load into r0.
    pub const LDABSW:     u8 = class::LD | mode::ABS | size::W;
    /// `ldabsh imm`: legacy packet load into r0.
    pub const LDABSH:     u8 = class::LD | mode::ABS | size::H;
    /// `ldabsb imm`: legacy packet load into r0.
    pub const LDABSB:     u8 = class::LD | mode::ABS | size::B;
    /// `ldabsdw imm`: legacy packet load into r0.
    pub const LDABSDW:    u8 = class::LD | mode::ABS | size::DW;
    /// `ldindw src, imm`: legacy packet load into r0.
    pub const LDINDW:     u8 = class::LD | mode::IND | size::W;
    /// `ldindh src, imm`: legacy packet load into r0.
    pub const LDINDH:     u8 = class::LD | mode::IND | size::H;
    /// `ldindb src, imm`: legacy packet load into r0.
    pub const LDINDB:     u8 = class::LD | mode::IND | size::B;
    /// `ldinddw src, imm`: legacy packet load into r0.
    pub const LDINDDW:    u8 = class::LD | mode::IND | size::DW;
    /// `ldxw dst, [src+off]`: zero-extending load.
    pub const LDXW:       u8 = class::LDX | mode::MEM | size::W;
    /// `ldxh dst, [src+off]`: zero-extending load.
    pub const LDXH:       u8 = class::LDX | mode::MEM | size::H;
    /// `ldxb dst, [src+off]`: zero-extending load.
    pub const LDXB:       u8 = class::LDX | mode::MEM | size::B;
    /// `ldxdw dst, [src+off]`: zero-extending load.
    pub const LDXDW:      u8 = class::LDX | mode::MEM | size::DW;
    /// `ldxsw dst, [src+off]`: sign-extending load.
    pub const LDXSW:      u8 = class::LDX | mode::MEMSX | size::W;
    /// `ldxsh dst, [src+off]`: sign-extending load.
    pub const LDXSH:      u8 = class::LDX | mode::MEMSX | size::H;
    /// `ldxsb dst, [src+off]`: sign-extending load.
    pub const LDXSB:      u8 = class::LDX | mode::MEMSX | size::B;
    /// `stw [dst+off], imm`.
    pub const STW:        u8 = class::ST | mode::MEM | size::W;
    /// `sth [dst+off], imm`.
    pub const STH:        u8 = class::ST | mode::MEM | size::H;
    /// `stb [dst+off], imm`.
    pub const STB:        u8 = class::ST | mode::MEM | size::B;
    /// `stdw [dst+off], imm`.
    pub const STDW:       u8 = class::ST | mode::MEM | size::DW;
    /// `stxw [dst+off], src`.
    pub const STXW:       u8 = class::STX | mode::MEM | size::W;
    /// `stxh [dst+off], src`.
    pub const STXH:       u8 = class::STX | mode::MEM | size::H;
    /// `stxb [dst+off], src`.
    pub const STXB:       u8 = class::STX | mode::MEM | size::B;
    /// `stxdw [dst+off], src`.
    pub const STXDW:      u8 = class::STX | mode::MEM | size::DW;
    /// 32-bit atomic (the operation in the immediate, `atomic`).
    pub const ATOMIC32:   u8 = class::STX | mode::ATOMIC | size::W;
    /// 64-bit atomic (the operation in the immediate, `atomic`).
    pub const ATOMIC64:   u8 = class::STX | mode::ATOMIC | size::DW;
    /// `ja` with a 16-bit offset.
    pub const JA:         u8 = class::JMP | jmp::JA;
    /// `ja32` (gotol) with a 32-bit offset in the immediate.
    pub const JA32:       u8 = class::JMP32 | jmp::JA;
    /// `jeq dst, imm, +off`: jump if equal, on 64 bits.
    pub const JEQ_IMM:    u8 = class::JMP | jmp::JEQ | source::K;
    /// `jeq dst, src, +off`: jump if equal, on 64 bits.
    pub const JEQ_REG:    u8 = class::JMP | jmp::JEQ | source::X;
    /// `jgt dst, imm, +off`: jump if greater (unsigned), on 64 bits.
    pub const JGT_IMM:    u8 = class::JMP | jmp::JGT | source::K;
    /// `jgt dst, src, +off`: jump if greater (unsigned), on 64 bits.
    pub const JGT_REG:    u8 = class::JMP | jmp::JGT | source::X;
    /// `jge dst, imm, +off`: jump if greater or equal (unsigned), on 64 bits.
    pub const JGE_IMM:    u8 = class::JMP | jmp::JGE | source::K;
    /// `jge dst, src, +off`: jump if greater or equal (unsigned), on 64 bits.
    pub const JGE_REG:    u8 = class::JMP | jmp::JGE | source::X;
    /// `jset dst, imm, +off`: jump if `dst & imm != 0`, on 64 bits.
    pub const JSET_IMM:   u8 = class::JMP | jmp::JSET | source::K;
    /// `jset dst, src, +off`: jump if `dst & src != 0`, on 64 bits.
    pub const JSET_REG:   u8 = class::JMP | jmp::JSET | source::X;
    /// `jne dst, imm, +off`: jump if not equal, on 64 bits.
    pub const JNE_IMM:    u8 = class::JMP | jmp::JNE | source::K;
    /// `jne dst, src, +off`: jump if not equal, on 64 bits.
    pub const JNE_REG:    u8 = class::JMP | jmp::JNE | source::X;
    /// `jsgt dst, imm, +off`: jump if greater (signed), on 64 bits.
    pub const JSGT_IMM:   u8 = class::JMP | jmp::JSGT | source::K;
    /// `jsgt dst, src, +off`: jump if greater (signed), on 64 bits.
    pub const JSGT_REG:   u8 = class::JMP | jmp::JSGT | source::X;
    /// `jsge dst, imm, +off`: jump if greater or equal (signed), on 64 bits.
    pub const JSGE_IMM:   u8 = class::JMP | jmp::JSGE | source::K;
    /// `jsge dst, src, +off`: jump if greater or equal (signed), on 64 bits.
    pub const JSGE_REG:   u8 = class::JMP | jmp::JSGE | source::X;
    /// `jlt dst, imm, +off`: jump if less (unsigned), on 64 bits.
    pub const JLT_IMM:    u8 = class::JMP | jmp::JLT | source::K;
    /// `jlt dst, src, +off`: jump if less (unsigned), on 64 bits.
    pub const JLT_REG:    u8 = class::JMP | jmp::JLT | source::X;
    /// `jle dst, imm, +off`: jump if less or equal (unsigned), on 64 bits.
    pub const JLE_IMM:    u8 = class::JMP | jmp::JLE | source::K;
    /// `jle dst, src, +off`: jump if less or equal (unsigned), on 64 bits.
    pub const JLE_REG:    u8 = class::JMP | jmp::JLE | source::X;
    /// `jslt dst, imm, +off`: jump if less (signed), on 64 bits.
    pub const JSLT_IMM:   u8 = class::JMP | jmp::JSLT | source::K;
    /// `jslt dst, src, +off`: jump if less (signed), on 64 bits.
    pub const JSLT_REG:   u8 = class::JMP | jmp::JSLT | source::X;
    /// `jsle dst, imm, +off`: jump if less or equal (signed), on 64 bits.
    pub const JSLE_IMM:   u8 = class::JMP | jmp::JSLE | source::K;
    /// `jsle dst, src, +off`: jump if less or equal (signed), on 64 bits.
    pub const JSLE_REG:   u8 = class::JMP | jmp::JSLE | source::X;
    /// `jeq32 dst, imm, +off`: jump if equal, on the low 32 bits.
    pub const JEQ32_IMM:  u8 = class::JMP32 | jmp::JEQ | source::K;
    /// `jeq32 dst, src, +off`: jump if equal, on the low 32 bits.
    pub const JEQ32_REG:  u8 = class::JMP32 | jmp::JEQ | source::X;
    /// `jgt32 dst, imm, +off`: jump if greater (unsigned), on the low 32 bits.
    pub const JGT32_IMM:  u8 = class::JMP32 | jmp::JGT | source::K;
    /// `jgt32 dst, src, +off`: jump if greater (unsigned), on the low 32 bits.
    pub const JGT32_REG:  u8 = class::JMP32 | jmp::JGT | source::X;
    /// `jge32 dst, imm, +off`: jump if greater or equal (unsigned), on the low 32 bits.
    pub const JGE32_IMM:  u8 = class::JMP32 | jmp::JGE | source::K;
    /// `jge32 dst, src, +off`: jump if greater or equal (unsigned), on the low 32 bits.
    pub const JGE32_REG:  u8 = class::JMP32 | jmp::JGE | source::X;
    /// `jset32 dst, imm, +off`: jump if `dst & imm != 0`, on the low 32 bits.
    pub const JSET32_IMM: u8 = class::JMP32 | jmp::JSET | source::K;
    /// `jset32 dst, src, +off`: jump if `dst & src != 0`, on the low 32 bits.
    pub const JSET32_REG: u8 = class::JMP32 | jmp::JSET | source::X;
    /// `jne32 dst, imm, +off`: jump if not equal, on the low 32 bits.
    pub const JNE32_IMM:  u8 = class::JMP32 | jmp::JNE | source::K;
    /// `jne32 dst, src, +off`: jump if not equal, on the low 32 bits.
    pub const JNE32_REG:  u8 = class::JMP32 | jmp::JNE | source::X;
    /// `jsgt32 dst, imm, +off`: jump if greater (signed), on the low 32 bits.
    pub const JSGT32_IMM: u8 = class::JMP32 | jmp::JSGT | source::K;
    /// `jsgt32 dst, src, +off`: jump if greater (signed), on the low 32 bits.
    pub const JSGT32_REG: u8 = class::JMP32 | jmp::JSGT | source::X;
    /// `jsge32 dst, imm, +off`: jump if greater or equal (signed), on the low 32 bits.
    pub const JSGE32_IMM: u8 = class::JMP32 | jmp::JSGE | source::K;
    /// `jsge32 dst, src, +off`: jump if greater or equal (signed), on the low 32 bits.
    pub const JSGE32_REG: u8 = class::JMP32 | jmp::JSGE | source::X;
    /// `jlt32 dst, imm, +off`: jump if less (unsigned), on the low 32 bits.
    pub const JLT32_IMM:  u8 = class::JMP32 | jmp::JLT | source::K;
    /// `jlt32 dst, src, +off`: jump if less (unsigned), on the low 32 bits.
    pub const JLT32_REG:  u8 = class::JMP32 | jmp::JLT | source::X;
    /// `jle32 dst, imm, +off`: jump if less or equal (unsigned), on the low 32 bits.
    pub const JLE32_IMM:  u8 = class::JMP32 | jmp::JLE | source::K;
    /// `jle32 dst, src, +off`: jump if less or equal (unsigned), on the low 32 bits.
    pub const JLE32_REG:  u8 = class::JMP32 | jmp::JLE | source::X;
    /// `jslt32 dst, imm, +off`: jump if less (signed), on the low 32 bits.
    pub const JSLT32_IMM: u8 = class::JMP32 | jmp::JSLT | source::K;
    /// `jslt32 dst, src, +off`: jump if less (signed), on the low 32 bits.
    pub const JSLT32_REG: u8 = class::JMP32 | jmp::JSLT | source::X;
    /// `jsle32 dst, imm, +off`: jump if less or equal (signed), on the low 32 bits.
    pub const JSLE32_IMM: u8 = class::JMP32 | jmp::JSLE | source::K;
    /// `jsle32 dst, src, +off`: jump if less or equal (signed), on the low 32 bits.
    pub const JSLE32_REG: u8 = class::JMP32 | jmp::JSLE | source::X;
    /// `call` (helper, local or BTF, by the source field).
    pub const CALL:       u8 = class::JMP | jmp::CALL | source::K;
    /// `callx`: helper call through the register named in `dst`.
    pub const CALLX:      u8 = class::JMP | jmp::CALL | source::X;
    /// `exit`.
    pub const EXIT:       u8 = class::JMP | jmp::EXIT;
}

/// One 8-byte instruction slot, decoded into its fields.
///
/// Layout (little-endian): opcode byte, then `dst` in the low nibble and `src` in the high
/// nibble of the second byte, a signed 16-bit offset and a signed 32-bit immediate. The second
/// slot of an `lddw` is also an `Insn` (opcode 0) whose immediate holds the high 32 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Insn {
    /// The opcode byte.
    pub opc: u8,
    /// Destination register field (0..15).
    pub dst: u8,
    /// Source register field (0..15).
    pub src: u8,
    /// Signed offset field.
    pub off: i16,
    /// Signed immediate field.
    pub imm: i32,
}

impl Insn {
    /// Builds an instruction from its fields.
    pub const fn new(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Insn {
            opc,
            dst,
            src,
            off,
            imm,
        }
    }

    /// Decodes one slot from its 8 little-endian bytes.
    pub const fn from_bytes(b: [u8; INSN_SIZE]) -> Self {
        Insn {
            opc: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Encodes this slot as 8 little-endian bytes.
    pub const fn to_bytes(&self) -> [u8; INSN_SIZE] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.opc,
            (self.dst & 0x0f) | (self.src << 4),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    /// Decodes a slot from the little-endian 64-bit integer form used by `-- raw` sections.
    pub const fn from_u64(value: u64) -> Self {
        Self::from_bytes(value.to_le_bytes())
    }

    /// The little-endian 64-bit integer form of this slot.
    pub const fn to_u64(&self) -> u64 {
        u64::from_le_bytes(self.to_bytes())
    }

    /// The instruction class (low 3 bits of the opcode).
    pub const fn class(&self) -> u8 {
        self.opc & class::MASK
    }

    /// Whether this is a legacy packet load (`ldabs*` or `ldind*`: class LD, mode ABS or IND),
    /// which writes r0 from the run's packet (`docs/semantics.md`, "Legacy packet loads").
    pub const fn is_packet_load(&self) -> bool {
        is_packet_load(self.opc)
    }

    /// How many slots the instruction takes: 2 for `lddw` (its immediate's high half is in
    /// the next slot), 1 for every other.
    pub const fn slots(&self) -> usize {
        if self.opc == op::LDDW { 2 } else { 1 }
    }

    /// The 64-bit immediate of the `lddw` whose first slot is this one and whose second slot
    /// (`second`, or none at the end of a program: high half 0) holds the high half.
    pub fn lddw_value(&self, second: Option<&Insn>) -> u64 {
        let high = second.map_or(0, |i| i.imm as u32);
        u64::from(self.imm as u32) | (u64::from(high) << 32)
    }

    /// For an atomic instruction (class STX, mode ATOMIC): its width in bytes (4 or 8) and
    /// what it does; `None` for another width or an unknown operation.
    pub const fn atomic(&self) -> Option<(usize, atomic::Atomic)> {
        let bytes = match self.opc {
            op::ATOMIC64 => 8,
            op::ATOMIC32 => 4,
            _ => return None,
        };
        let what = match self.imm {
            atomic::XCHG => atomic::Atomic::Xchg,
            atomic::CMPXCHG => atomic::Atomic::Cmpxchg,
            imm => match imm & !atomic::FETCH {
                atomic::ADD | atomic::OR | atomic::AND | atomic::XOR => atomic::Atomic::Rmw {
                    op: imm & !atomic::FETCH,
                    fetch: imm & atomic::FETCH != 0,
                },
                _ => return None,
            },
        };
        Some((bytes, what))
    }

    /// For a load (class LDX): `Some(true)` when it sign-extends (mode MEMSX, 1, 2 or 4
    /// bytes), `Some(false)` when it zero-extends (mode MEM); `None` for any other mode.
    pub const fn load_sign_extends(&self) -> Option<bool> {
        match self.opc & mode::MASK {
            mode::MEM => Some(false),
            mode::MEMSX if size::bytes(self.opc) < 8 => Some(true),
            _ => None,
        }
    }
}

/// The register (0..=10) a 4-bit register field names, for indexing register files: the
/// validator refuses fields above 10; analyses that run before it see them as r10.
pub const fn reg_index(field: u8) -> usize {
    let r = (field & 0x0f) as usize;
    if r > 10 { 10 } else { r }
}

/// Whether `opcode` is a legacy packet load (`ldabs*` 0x20/0x28/0x30/0x38, `ldind*`
/// 0x40/0x48/0x50/0x58).
pub const fn is_packet_load(opcode: u8) -> bool {
    opcode & class::MASK == class::LD && matches!(opcode & mode::MASK, mode::ABS | mode::IND)
}

/// Decodes a byte buffer into instruction slots; `None` if its length is not a multiple of 8.
pub fn decode_slots(bytes: &[u8]) -> Option<Vec<Insn>> {
    if !bytes.len().is_multiple_of(INSN_SIZE) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(INSN_SIZE)
            .map(|chunk| {
                let mut slot = [0u8; INSN_SIZE];
                slot.copy_from_slice(chunk);
                Insn::from_bytes(slot)
            })
            .collect(),
    )
}

/// Encodes instruction slots back into bytes.
pub fn encode_slots(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|insn| insn.to_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    #[test]
    fn insn_round_trips_through_bytes_and_u64() {
        let insn = Insn::new(0x7b, 10, 1, -8, 0x1234_5678);
        assert_eq!(Insn::from_bytes(insn.to_bytes()), insn);
        assert_eq!(Insn::from_u64(insn.to_u64()), insn);
        assert_eq!(
            insn.to_bytes(),
            [0x7b, 0x1a, 0xf8, 0xff, 0x78, 0x56, 0x34, 0x12]
        );
    }

    #[test]
    fn lddw_raw_form_matches_the_conformance_suite() {
        // `-- raw` of tests/lddw.data: 0x5566778800000018 then 0x1122334400000000.
        let first = Insn::from_u64(0x5566_7788_0000_0018);
        assert_eq!(first.opc, op::LDDW);
        assert_eq!(first.imm as u32, 0x5566_7788);
    }

    #[test]
    fn table_rows_are_unambiguous() {
        for (i, a) in INSN_TABLE.iter().enumerate() {
            for b in &INSN_TABLE[i + 1..] {
                let same_encoding = a.opcode == b.opcode && a.variant == b.variant;
                assert!(
                    !same_encoding,
                    "{} and {} share an encoding",
                    a.mnemonic, b.mnemonic
                );
            }
        }
    }

    #[test]
    fn opcode_names_have_the_rfc_bytes() {
        let named = [
            op::ADD64_IMM,
            op::ADD32_REG,
            op::MOV64_REG,
            op::NEG64,
            op::LE,
            op::BE,
            op::BSWAP,
            op::LDDW,
            op::LDABSB,
            op::LDINDDW,
            op::LDXSB,
            op::STDW,
            op::STXW,
            op::ATOMIC32,
            op::ATOMIC64,
            op::JA,
            op::JA32,
            op::JSLE32_REG,
            op::JSET_IMM,
            op::CALL,
            op::CALLX,
            op::EXIT,
        ];
        let bytes = [
            0x07, 0x0c, 0xbf, 0x87, 0xd4, 0xdc, 0xd7, 0x18, 0x30, 0x58, 0x91, 0x7a, 0x63, 0xc3,
            0xdb, 0x05, 0x06, 0xde, 0x45, 0x85, 0x8d, 0x95,
        ];
        assert_eq!(named, bytes);
    }

    #[test]
    fn spec_of_tells_signed_division_by_offset() {
        let div = Insn::new(0x3f, 1, 2, 0, 0);
        let sdiv = Insn::new(0x3f, 1, 2, 1, 0);
        assert_eq!(spec_of(&div).map(|s| s.mnemonic), Some("div"));
        assert_eq!(spec_of(&sdiv).map(|s| s.mnemonic), Some("sdiv"));
        assert!(spec_of(&Insn::new(0x3f, 1, 2, 2, 0)).is_none());
        assert!(is_known_opcode(0x8d));
        assert!(!is_known_opcode(0x8f));
    }

    #[test]
    fn packet_loads_are_the_eight_abs_and_ind_opcodes() {
        let loads: Vec<u8> = (0..=255u8).filter(|&o| is_packet_load(o)).collect();
        assert_eq!(loads, [0x20, 0x28, 0x30, 0x38, 0x40, 0x48, 0x50, 0x58]);
        for (opc, name) in [(0x20, "ldabsw"), (0x30, "ldabsb"), (0x58, "ldinddw")] {
            let insn = Insn::new(opc, 0, 1, 0, 4);
            assert_eq!(spec_of(&insn).map(|s| s.mnemonic), Some(name));
            assert!(insn.is_packet_load());
            assert_eq!(insn.slots(), 1);
        }
        assert!(!Insn::new(op::LDDW, 0, 0, 0, 0).is_packet_load());
    }
}
