//! The single table of every instruction of RFC 9669, as the assembler, the disassembler and
//! the verifier see them.
//!
//! One row per (opcode, discriminator) pair: instructions that share an opcode byte and are told
//! apart by another field (`div`/`sdiv` by the offset, `le16`/`le32` by the immediate, `call` /
//! `call local` by the source register, the atomic operations by the immediate) get one row
//! each. The mnemonics are those of the bpf_conformance assembler (`add` is 64-bit, `add32` is
//! 32-bit). Adding an instruction means adding a row here; the assembler, disassembler and the
//! verifier's known-opcode check all derive from this table. The opcode bytes are the named
//! constants of [`super::op`].

use super::op;

/// The operands an instruction takes, in assembly order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operands {
    /// No operands (`exit`).
    None,
    /// A destination register (`neg %r0`, `be16 %r0`).
    Dst,
    /// Destination and source registers (`add %r0, %r1`).
    DstSrc,
    /// Destination register and a 32-bit immediate (`add %r0, 1`).
    DstImm,
    /// Destination register and a 64-bit immediate spanning two slots (`lddw %r0, 0x...`).
    DstImm64,
    /// Destination register and a memory operand based on the source register (`ldxw %r0, [%r1+2]`).
    DstMem,
    /// Memory operand based on the destination register and an immediate (`stw [%r1+2], 3`).
    MemImm,
    /// Memory operand based on the destination register and a source register
    /// (`stxw [%r1+2], %r3`, `lock add [%r1], %r2`).
    MemSrc,
    /// A 16-bit jump offset or label (`ja +2`).
    Jump,
    /// A 32-bit jump offset or label, carried in the immediate (`ja32 +2`).
    Jump32,
    /// Register, immediate and jump target (`jeq %r0, 1, +2`).
    CondImm,
    /// Register, register and jump target (`jeq %r0, %r1, +2`).
    CondReg,
    /// Helper call by index (`call 1`).
    CallImm,
    /// Local (bpf-to-bpf) call to a label or relative offset (`call local f`).
    CallLocal,
    /// Helper call through a register (`call %r2`, opcode 0x8d with the register in `dst`).
    CallReg,
    /// Legacy packet load at a constant offset, carried in the immediate (`ldabsw 12`; r0 is
    /// the implicit destination).
    PacketAbs,
    /// Legacy packet load at a source register plus the immediate (`ldindw %r1, 12`; r0 is
    /// the implicit destination).
    PacketInd,
}

/// Which additional field tells this row apart from other rows with the same opcode byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The opcode byte alone identifies the instruction.
    Any,
    /// The offset field must equal this value (signed division, `movsx`).
    Off(i16),
    /// The immediate must equal this value (byte swaps, atomic operations).
    Imm(i32),
    /// The source-register field must equal this value (`call` vs `call local`).
    Src(u8),
}

/// One row of the instruction table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsnSpec {
    /// Conformance-syntax mnemonic (may contain a space: `lock fetch add`, `call local`).
    pub mnemonic: &'static str,
    /// The opcode byte.
    pub opcode: u8,
    /// The operand form.
    pub operands: Operands,
    /// The discriminating field, if several rows share `opcode`.
    pub variant: Variant,
}

impl InsnSpec {
    const fn new(mnemonic: &'static str, opcode: u8, operands: Operands, variant: Variant) -> Self {
        InsnSpec {
            mnemonic,
            opcode,
            operands,
            variant,
        }
    }

    /// Whether `insn` is an instance of this row (opcode and discriminator match).
    pub fn matches(&self, insn: &super::Insn) -> bool {
        self.opcode == insn.opc
            && match self.variant {
                Variant::Any => true,
                Variant::Off(off) => insn.off == off,
                Variant::Imm(imm) => insn.imm == imm,
                Variant::Src(src) => insn.src == src,
            }
    }
}

/// Every instruction of RFC 9669 (plus uBPF's `callx` encoding and the legacy packet loads,
/// spelled as rbpf spells them), one row per mnemonic form.
#[rustfmt::skip]
pub static INSN_TABLE: &[InsnSpec] = &[
    InsnSpec::new("add",              op::ADD64_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("add",              op::ADD64_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("add32",            op::ADD32_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("add32",            op::ADD32_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("sub",              op::SUB64_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("sub",              op::SUB64_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("sub32",            op::SUB32_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("sub32",            op::SUB32_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("mul",              op::MUL64_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("mul",              op::MUL64_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("mul32",            op::MUL32_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("mul32",            op::MUL32_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("div",              op::DIV64_IMM,  Operands::DstImm,    Variant::Off(0)),
    InsnSpec::new("div",              op::DIV64_REG,  Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("sdiv",             op::DIV64_IMM,  Operands::DstImm,    Variant::Off(1)),
    InsnSpec::new("sdiv",             op::DIV64_REG,  Operands::DstSrc,    Variant::Off(1)),
    InsnSpec::new("div32",            op::DIV32_IMM,  Operands::DstImm,    Variant::Off(0)),
    InsnSpec::new("div32",            op::DIV32_REG,  Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("sdiv32",           op::DIV32_IMM,  Operands::DstImm,    Variant::Off(1)),
    InsnSpec::new("sdiv32",           op::DIV32_REG,  Operands::DstSrc,    Variant::Off(1)),
    InsnSpec::new("or",               op::OR64_IMM,   Operands::DstImm,    Variant::Any),
    InsnSpec::new("or",               op::OR64_REG,   Operands::DstSrc,    Variant::Any),
    InsnSpec::new("or32",             op::OR32_IMM,   Operands::DstImm,    Variant::Any),
    InsnSpec::new("or32",             op::OR32_REG,   Operands::DstSrc,    Variant::Any),
    InsnSpec::new("and",              op::AND64_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("and",              op::AND64_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("and32",            op::AND32_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("and32",            op::AND32_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("lsh",              op::LSH64_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("lsh",              op::LSH64_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("lsh32",            op::LSH32_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("lsh32",            op::LSH32_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("rsh",              op::RSH64_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("rsh",              op::RSH64_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("rsh32",            op::RSH32_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("rsh32",            op::RSH32_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("mod",              op::MOD64_IMM,  Operands::DstImm,    Variant::Off(0)),
    InsnSpec::new("mod",              op::MOD64_REG,  Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("smod",             op::MOD64_IMM,  Operands::DstImm,    Variant::Off(1)),
    InsnSpec::new("smod",             op::MOD64_REG,  Operands::DstSrc,    Variant::Off(1)),
    InsnSpec::new("mod32",            op::MOD32_IMM,  Operands::DstImm,    Variant::Off(0)),
    InsnSpec::new("mod32",            op::MOD32_REG,  Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("smod32",           op::MOD32_IMM,  Operands::DstImm,    Variant::Off(1)),
    InsnSpec::new("smod32",           op::MOD32_REG,  Operands::DstSrc,    Variant::Off(1)),
    InsnSpec::new("xor",              op::XOR64_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("xor",              op::XOR64_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("xor32",            op::XOR32_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("xor32",            op::XOR32_REG,  Operands::DstSrc,    Variant::Any),
    InsnSpec::new("mov",              op::MOV64_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("mov",              op::MOV64_REG,  Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("mov32",            op::MOV32_IMM,  Operands::DstImm,    Variant::Any),
    InsnSpec::new("mov32",            op::MOV32_REG,  Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("arsh",             op::ARSH64_IMM, Operands::DstImm,    Variant::Any),
    InsnSpec::new("arsh",             op::ARSH64_REG, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("arsh32",           op::ARSH32_IMM, Operands::DstImm,    Variant::Any),
    InsnSpec::new("arsh32",           op::ARSH32_REG, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("movsx864",         op::MOV64_REG,  Operands::DstSrc,    Variant::Off(8)),
    InsnSpec::new("movsx1664",        op::MOV64_REG,  Operands::DstSrc,    Variant::Off(16)),
    InsnSpec::new("movsx3264",        op::MOV64_REG,  Operands::DstSrc,    Variant::Off(32)),
    InsnSpec::new("movsx832",         op::MOV32_REG,  Operands::DstSrc,    Variant::Off(8)),
    InsnSpec::new("movsx1632",        op::MOV32_REG,  Operands::DstSrc,    Variant::Off(16)),
    InsnSpec::new("neg",              op::NEG64,      Operands::Dst,       Variant::Any),
    InsnSpec::new("neg32",            op::NEG32,      Operands::Dst,       Variant::Any),
    InsnSpec::new("le16",             op::LE,         Operands::Dst,       Variant::Imm(16)),
    InsnSpec::new("le32",             op::LE,         Operands::Dst,       Variant::Imm(32)),
    InsnSpec::new("le64",             op::LE,         Operands::Dst,       Variant::Imm(64)),
    InsnSpec::new("be16",             op::BE,         Operands::Dst,       Variant::Imm(16)),
    InsnSpec::new("be32",             op::BE,         Operands::Dst,       Variant::Imm(32)),
    InsnSpec::new("be64",             op::BE,         Operands::Dst,       Variant::Imm(64)),
    InsnSpec::new("bswap16",          op::BSWAP,      Operands::Dst,       Variant::Imm(16)),
    InsnSpec::new("bswap32",          op::BSWAP,      Operands::Dst,       Variant::Imm(32)),
    InsnSpec::new("bswap64",          op::BSWAP,      Operands::Dst,       Variant::Imm(64)),
    InsnSpec::new("lddw",             op::LDDW,       Operands::DstImm64,  Variant::Any),
    InsnSpec::new("ldabsw",           op::LDABSW,     Operands::PacketAbs, Variant::Any),
    InsnSpec::new("ldabsh",           op::LDABSH,     Operands::PacketAbs, Variant::Any),
    InsnSpec::new("ldabsb",           op::LDABSB,     Operands::PacketAbs, Variant::Any),
    InsnSpec::new("ldabsdw",          op::LDABSDW,    Operands::PacketAbs, Variant::Any),
    InsnSpec::new("ldindw",           op::LDINDW,     Operands::PacketInd, Variant::Any),
    InsnSpec::new("ldindh",           op::LDINDH,     Operands::PacketInd, Variant::Any),
    InsnSpec::new("ldindb",           op::LDINDB,     Operands::PacketInd, Variant::Any),
    InsnSpec::new("ldinddw",          op::LDINDDW,    Operands::PacketInd, Variant::Any),
    InsnSpec::new("ldxw",             op::LDXW,       Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxh",             op::LDXH,       Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxb",             op::LDXB,       Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxdw",            op::LDXDW,      Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxsw",            op::LDXSW,      Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxsh",            op::LDXSH,      Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxsb",            op::LDXSB,      Operands::DstMem,    Variant::Any),
    InsnSpec::new("stw",              op::STW,        Operands::MemImm,    Variant::Any),
    InsnSpec::new("sth",              op::STH,        Operands::MemImm,    Variant::Any),
    InsnSpec::new("stb",              op::STB,        Operands::MemImm,    Variant::Any),
    InsnSpec::new("stdw",             op::STDW,       Operands::MemImm,    Variant::Any),
    InsnSpec::new("stxw",             op::STXW,       Operands::MemSrc,    Variant::Any),
    InsnSpec::new("stxh",             op::STXH,       Operands::MemSrc,    Variant::Any),
    InsnSpec::new("stxb",             op::STXB,       Operands::MemSrc,    Variant::Any),
    InsnSpec::new("stxdw",            op::STXDW,      Operands::MemSrc,    Variant::Any),
    InsnSpec::new("ja",               op::JA,         Operands::Jump,      Variant::Any),
    InsnSpec::new("ja32",             op::JA32,       Operands::Jump32,    Variant::Any),
    InsnSpec::new("jeq",              op::JEQ_IMM,    Operands::CondImm,   Variant::Any),
    InsnSpec::new("jeq",              op::JEQ_REG,    Operands::CondReg,   Variant::Any),
    InsnSpec::new("jeq32",            op::JEQ32_IMM,  Operands::CondImm,   Variant::Any),
    InsnSpec::new("jeq32",            op::JEQ32_REG,  Operands::CondReg,   Variant::Any),
    InsnSpec::new("jgt",              op::JGT_IMM,    Operands::CondImm,   Variant::Any),
    InsnSpec::new("jgt",              op::JGT_REG,    Operands::CondReg,   Variant::Any),
    InsnSpec::new("jgt32",            op::JGT32_IMM,  Operands::CondImm,   Variant::Any),
    InsnSpec::new("jgt32",            op::JGT32_REG,  Operands::CondReg,   Variant::Any),
    InsnSpec::new("jge",              op::JGE_IMM,    Operands::CondImm,   Variant::Any),
    InsnSpec::new("jge",              op::JGE_REG,    Operands::CondReg,   Variant::Any),
    InsnSpec::new("jge32",            op::JGE32_IMM,  Operands::CondImm,   Variant::Any),
    InsnSpec::new("jge32",            op::JGE32_REG,  Operands::CondReg,   Variant::Any),
    InsnSpec::new("jset",             op::JSET_IMM,   Operands::CondImm,   Variant::Any),
    InsnSpec::new("jset",             op::JSET_REG,   Operands::CondReg,   Variant::Any),
    InsnSpec::new("jset32",           op::JSET32_IMM, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jset32",           op::JSET32_REG, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jne",              op::JNE_IMM,    Operands::CondImm,   Variant::Any),
    InsnSpec::new("jne",              op::JNE_REG,    Operands::CondReg,   Variant::Any),
    InsnSpec::new("jne32",            op::JNE32_IMM,  Operands::CondImm,   Variant::Any),
    InsnSpec::new("jne32",            op::JNE32_REG,  Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsgt",             op::JSGT_IMM,   Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsgt",             op::JSGT_REG,   Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsgt32",           op::JSGT32_IMM, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsgt32",           op::JSGT32_REG, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsge",             op::JSGE_IMM,   Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsge",             op::JSGE_REG,   Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsge32",           op::JSGE32_IMM, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsge32",           op::JSGE32_REG, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jlt",              op::JLT_IMM,    Operands::CondImm,   Variant::Any),
    InsnSpec::new("jlt",              op::JLT_REG,    Operands::CondReg,   Variant::Any),
    InsnSpec::new("jlt32",            op::JLT32_IMM,  Operands::CondImm,   Variant::Any),
    InsnSpec::new("jlt32",            op::JLT32_REG,  Operands::CondReg,   Variant::Any),
    InsnSpec::new("jle",              op::JLE_IMM,    Operands::CondImm,   Variant::Any),
    InsnSpec::new("jle",              op::JLE_REG,    Operands::CondReg,   Variant::Any),
    InsnSpec::new("jle32",            op::JLE32_IMM,  Operands::CondImm,   Variant::Any),
    InsnSpec::new("jle32",            op::JLE32_REG,  Operands::CondReg,   Variant::Any),
    InsnSpec::new("jslt",             op::JSLT_IMM,   Operands::CondImm,   Variant::Any),
    InsnSpec::new("jslt",             op::JSLT_REG,   Operands::CondReg,   Variant::Any),
    InsnSpec::new("jslt32",           op::JSLT32_IMM, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jslt32",           op::JSLT32_REG, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsle",             op::JSLE_IMM,   Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsle",             op::JSLE_REG,   Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsle32",           op::JSLE32_IMM, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsle32",           op::JSLE32_REG, Operands::CondReg,   Variant::Any),
    InsnSpec::new("call",             op::CALL,       Operands::CallImm,   Variant::Src(0)),
    InsnSpec::new("call local",       op::CALL,       Operands::CallLocal, Variant::Src(1)),
    InsnSpec::new("callx",            op::CALLX,      Operands::CallReg,   Variant::Any),
    InsnSpec::new("exit",             op::EXIT,       Operands::None,      Variant::Any),
    InsnSpec::new("lock add",         op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0x00)),
    InsnSpec::new("lock fetch add",   op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0x01)),
    InsnSpec::new("lock or",          op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0x40)),
    InsnSpec::new("lock fetch or",    op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0x41)),
    InsnSpec::new("lock and",         op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0x50)),
    InsnSpec::new("lock fetch and",   op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0x51)),
    InsnSpec::new("lock xor",         op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0xa0)),
    InsnSpec::new("lock fetch xor",   op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0xa1)),
    InsnSpec::new("lock xchg",        op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0xe1)),
    InsnSpec::new("lock cmpxchg",     op::ATOMIC64,   Operands::MemSrc,    Variant::Imm(0xf1)),
    InsnSpec::new("lock add32",       op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0x00)),
    InsnSpec::new("lock fetch add32", op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0x01)),
    InsnSpec::new("lock or32",        op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0x40)),
    InsnSpec::new("lock fetch or32",  op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0x41)),
    InsnSpec::new("lock and32",       op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0x50)),
    InsnSpec::new("lock fetch and32", op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0x51)),
    InsnSpec::new("lock xor32",       op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0xa0)),
    InsnSpec::new("lock fetch xor32", op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0xa1)),
    InsnSpec::new("lock xchg32",      op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0xe1)),
    InsnSpec::new("lock cmpxchg32",   op::ATOMIC32,   Operands::MemSrc,    Variant::Imm(0xf1)),
];

/// The table row describing `insn`, or `None` when no row matches (unknown opcode, or a known
/// opcode with a discriminator no instruction uses, such as `div` with offset 2).
pub fn spec_of(insn: &super::Insn) -> Option<&'static InsnSpec> {
    INSN_TABLE.iter().find(|spec| spec.matches(insn))
}

/// Whether some row of the table uses this opcode byte.
pub fn is_known_opcode(opcode: u8) -> bool {
    INSN_TABLE.iter().any(|spec| spec.opcode == opcode)
}

/// All rows spelled with `mnemonic`.
pub fn specs_named(mnemonic: &str) -> impl Iterator<Item = &'static InsnSpec> + '_ {
    INSN_TABLE
        .iter()
        .filter(move |spec| spec.mnemonic == mnemonic)
}
