//! The single table of every instruction of RFC 9669, as the assembler, the disassembler and
//! the verifier see them.
//!
//! One row per (opcode, discriminator) pair: instructions that share an opcode byte and are told
//! apart by another field (`div`/`sdiv` by the offset, `le16`/`le32` by the immediate, `call` /
//! `call local` by the source register, the atomic operations by the immediate) get one row
//! each. The mnemonics are those of the bpf_conformance assembler (`add` is 64-bit, `add32` is
//! 32-bit). Adding an instruction means adding a row here; the assembler, disassembler and the
//! verifier's known-opcode check all derive from this table.

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
    InsnSpec::new("add",              0x07, Operands::DstImm,    Variant::Any),
    InsnSpec::new("add",              0x0f, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("add32",            0x04, Operands::DstImm,    Variant::Any),
    InsnSpec::new("add32",            0x0c, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("sub",              0x17, Operands::DstImm,    Variant::Any),
    InsnSpec::new("sub",              0x1f, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("sub32",            0x14, Operands::DstImm,    Variant::Any),
    InsnSpec::new("sub32",            0x1c, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("mul",              0x27, Operands::DstImm,    Variant::Any),
    InsnSpec::new("mul",              0x2f, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("mul32",            0x24, Operands::DstImm,    Variant::Any),
    InsnSpec::new("mul32",            0x2c, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("div",              0x37, Operands::DstImm,    Variant::Off(0)),
    InsnSpec::new("div",              0x3f, Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("sdiv",             0x37, Operands::DstImm,    Variant::Off(1)),
    InsnSpec::new("sdiv",             0x3f, Operands::DstSrc,    Variant::Off(1)),
    InsnSpec::new("div32",            0x34, Operands::DstImm,    Variant::Off(0)),
    InsnSpec::new("div32",            0x3c, Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("sdiv32",           0x34, Operands::DstImm,    Variant::Off(1)),
    InsnSpec::new("sdiv32",           0x3c, Operands::DstSrc,    Variant::Off(1)),
    InsnSpec::new("or",               0x47, Operands::DstImm,    Variant::Any),
    InsnSpec::new("or",               0x4f, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("or32",             0x44, Operands::DstImm,    Variant::Any),
    InsnSpec::new("or32",             0x4c, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("and",              0x57, Operands::DstImm,    Variant::Any),
    InsnSpec::new("and",              0x5f, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("and32",            0x54, Operands::DstImm,    Variant::Any),
    InsnSpec::new("and32",            0x5c, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("lsh",              0x67, Operands::DstImm,    Variant::Any),
    InsnSpec::new("lsh",              0x6f, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("lsh32",            0x64, Operands::DstImm,    Variant::Any),
    InsnSpec::new("lsh32",            0x6c, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("rsh",              0x77, Operands::DstImm,    Variant::Any),
    InsnSpec::new("rsh",              0x7f, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("rsh32",            0x74, Operands::DstImm,    Variant::Any),
    InsnSpec::new("rsh32",            0x7c, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("mod",              0x97, Operands::DstImm,    Variant::Off(0)),
    InsnSpec::new("mod",              0x9f, Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("smod",             0x97, Operands::DstImm,    Variant::Off(1)),
    InsnSpec::new("smod",             0x9f, Operands::DstSrc,    Variant::Off(1)),
    InsnSpec::new("mod32",            0x94, Operands::DstImm,    Variant::Off(0)),
    InsnSpec::new("mod32",            0x9c, Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("smod32",           0x94, Operands::DstImm,    Variant::Off(1)),
    InsnSpec::new("smod32",           0x9c, Operands::DstSrc,    Variant::Off(1)),
    InsnSpec::new("xor",              0xa7, Operands::DstImm,    Variant::Any),
    InsnSpec::new("xor",              0xaf, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("xor32",            0xa4, Operands::DstImm,    Variant::Any),
    InsnSpec::new("xor32",            0xac, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("mov",              0xb7, Operands::DstImm,    Variant::Any),
    InsnSpec::new("mov",              0xbf, Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("mov32",            0xb4, Operands::DstImm,    Variant::Any),
    InsnSpec::new("mov32",            0xbc, Operands::DstSrc,    Variant::Off(0)),
    InsnSpec::new("arsh",             0xc7, Operands::DstImm,    Variant::Any),
    InsnSpec::new("arsh",             0xcf, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("arsh32",           0xc4, Operands::DstImm,    Variant::Any),
    InsnSpec::new("arsh32",           0xcc, Operands::DstSrc,    Variant::Any),
    InsnSpec::new("movsx864",         0xbf, Operands::DstSrc,    Variant::Off(8)),
    InsnSpec::new("movsx1664",        0xbf, Operands::DstSrc,    Variant::Off(16)),
    InsnSpec::new("movsx3264",        0xbf, Operands::DstSrc,    Variant::Off(32)),
    InsnSpec::new("movsx832",         0xbc, Operands::DstSrc,    Variant::Off(8)),
    InsnSpec::new("movsx1632",        0xbc, Operands::DstSrc,    Variant::Off(16)),
    InsnSpec::new("neg",              0x87, Operands::Dst,       Variant::Any),
    InsnSpec::new("neg32",            0x84, Operands::Dst,       Variant::Any),
    InsnSpec::new("le16",             0xd4, Operands::Dst,       Variant::Imm(16)),
    InsnSpec::new("le32",             0xd4, Operands::Dst,       Variant::Imm(32)),
    InsnSpec::new("le64",             0xd4, Operands::Dst,       Variant::Imm(64)),
    InsnSpec::new("be16",             0xdc, Operands::Dst,       Variant::Imm(16)),
    InsnSpec::new("be32",             0xdc, Operands::Dst,       Variant::Imm(32)),
    InsnSpec::new("be64",             0xdc, Operands::Dst,       Variant::Imm(64)),
    InsnSpec::new("bswap16",          0xd7, Operands::Dst,       Variant::Imm(16)),
    InsnSpec::new("bswap32",          0xd7, Operands::Dst,       Variant::Imm(32)),
    InsnSpec::new("bswap64",          0xd7, Operands::Dst,       Variant::Imm(64)),
    InsnSpec::new("lddw",             0x18, Operands::DstImm64,  Variant::Any),
    InsnSpec::new("ldabsw",           0x20, Operands::PacketAbs, Variant::Any),
    InsnSpec::new("ldabsh",           0x28, Operands::PacketAbs, Variant::Any),
    InsnSpec::new("ldabsb",           0x30, Operands::PacketAbs, Variant::Any),
    InsnSpec::new("ldabsdw",          0x38, Operands::PacketAbs, Variant::Any),
    InsnSpec::new("ldindw",           0x40, Operands::PacketInd, Variant::Any),
    InsnSpec::new("ldindh",           0x48, Operands::PacketInd, Variant::Any),
    InsnSpec::new("ldindb",           0x50, Operands::PacketInd, Variant::Any),
    InsnSpec::new("ldinddw",          0x58, Operands::PacketInd, Variant::Any),
    InsnSpec::new("ldxw",             0x61, Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxh",             0x69, Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxb",             0x71, Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxdw",            0x79, Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxsw",            0x81, Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxsh",            0x89, Operands::DstMem,    Variant::Any),
    InsnSpec::new("ldxsb",            0x91, Operands::DstMem,    Variant::Any),
    InsnSpec::new("stw",              0x62, Operands::MemImm,    Variant::Any),
    InsnSpec::new("sth",              0x6a, Operands::MemImm,    Variant::Any),
    InsnSpec::new("stb",              0x72, Operands::MemImm,    Variant::Any),
    InsnSpec::new("stdw",             0x7a, Operands::MemImm,    Variant::Any),
    InsnSpec::new("stxw",             0x63, Operands::MemSrc,    Variant::Any),
    InsnSpec::new("stxh",             0x6b, Operands::MemSrc,    Variant::Any),
    InsnSpec::new("stxb",             0x73, Operands::MemSrc,    Variant::Any),
    InsnSpec::new("stxdw",            0x7b, Operands::MemSrc,    Variant::Any),
    InsnSpec::new("ja",               0x05, Operands::Jump,      Variant::Any),
    InsnSpec::new("ja32",             0x06, Operands::Jump32,    Variant::Any),
    InsnSpec::new("jeq",              0x15, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jeq",              0x1d, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jeq32",            0x16, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jeq32",            0x1e, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jgt",              0x25, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jgt",              0x2d, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jgt32",            0x26, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jgt32",            0x2e, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jge",              0x35, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jge",              0x3d, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jge32",            0x36, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jge32",            0x3e, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jset",             0x45, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jset",             0x4d, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jset32",           0x46, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jset32",           0x4e, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jne",              0x55, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jne",              0x5d, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jne32",            0x56, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jne32",            0x5e, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsgt",             0x65, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsgt",             0x6d, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsgt32",           0x66, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsgt32",           0x6e, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsge",             0x75, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsge",             0x7d, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsge32",           0x76, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsge32",           0x7e, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jlt",              0xa5, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jlt",              0xad, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jlt32",            0xa6, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jlt32",            0xae, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jle",              0xb5, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jle",              0xbd, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jle32",            0xb6, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jle32",            0xbe, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jslt",             0xc5, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jslt",             0xcd, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jslt32",           0xc6, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jslt32",           0xce, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsle",             0xd5, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsle",             0xdd, Operands::CondReg,   Variant::Any),
    InsnSpec::new("jsle32",           0xd6, Operands::CondImm,   Variant::Any),
    InsnSpec::new("jsle32",           0xde, Operands::CondReg,   Variant::Any),
    InsnSpec::new("call",             0x85, Operands::CallImm,   Variant::Src(0)),
    InsnSpec::new("call local",       0x85, Operands::CallLocal, Variant::Src(1)),
    InsnSpec::new("callx",            0x8d, Operands::CallReg,   Variant::Any),
    InsnSpec::new("exit",             0x95, Operands::None,      Variant::Any),
    InsnSpec::new("lock add",         0xdb, Operands::MemSrc,    Variant::Imm(0x00)),
    InsnSpec::new("lock fetch add",   0xdb, Operands::MemSrc,    Variant::Imm(0x01)),
    InsnSpec::new("lock or",          0xdb, Operands::MemSrc,    Variant::Imm(0x40)),
    InsnSpec::new("lock fetch or",    0xdb, Operands::MemSrc,    Variant::Imm(0x41)),
    InsnSpec::new("lock and",         0xdb, Operands::MemSrc,    Variant::Imm(0x50)),
    InsnSpec::new("lock fetch and",   0xdb, Operands::MemSrc,    Variant::Imm(0x51)),
    InsnSpec::new("lock xor",         0xdb, Operands::MemSrc,    Variant::Imm(0xa0)),
    InsnSpec::new("lock fetch xor",   0xdb, Operands::MemSrc,    Variant::Imm(0xa1)),
    InsnSpec::new("lock xchg",        0xdb, Operands::MemSrc,    Variant::Imm(0xe1)),
    InsnSpec::new("lock cmpxchg",     0xdb, Operands::MemSrc,    Variant::Imm(0xf1)),
    InsnSpec::new("lock add32",       0xc3, Operands::MemSrc,    Variant::Imm(0x00)),
    InsnSpec::new("lock fetch add32", 0xc3, Operands::MemSrc,    Variant::Imm(0x01)),
    InsnSpec::new("lock or32",        0xc3, Operands::MemSrc,    Variant::Imm(0x40)),
    InsnSpec::new("lock fetch or32",  0xc3, Operands::MemSrc,    Variant::Imm(0x41)),
    InsnSpec::new("lock and32",       0xc3, Operands::MemSrc,    Variant::Imm(0x50)),
    InsnSpec::new("lock fetch and32", 0xc3, Operands::MemSrc,    Variant::Imm(0x51)),
    InsnSpec::new("lock xor32",       0xc3, Operands::MemSrc,    Variant::Imm(0xa0)),
    InsnSpec::new("lock fetch xor32", 0xc3, Operands::MemSrc,    Variant::Imm(0xa1)),
    InsnSpec::new("lock xchg32",      0xc3, Operands::MemSrc,    Variant::Imm(0xe1)),
    InsnSpec::new("lock cmpxchg32",   0xc3, Operands::MemSrc,    Variant::Imm(0xf1)),
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
