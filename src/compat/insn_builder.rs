//! A typed builder for eBPF programs, for tests, benchmarks and embedders that generate code.
//!
//! Registers are [`Reg`] values (`R0`..`R10`), so an out-of-range register cannot be written.
//! Source operands take either a register or an `i32` immediate through [`Operand`], and jump
//! targets either a relative offset or a label name through [`Target`]. Each method appends
//! one instruction and returns the builder, so programs read top to bottom:
//!
//! ```
//! use rbpf::insn_builder::{Builder, Cond, Size, R0, R1, R10};
//!
//! // r0 = sum of 1..=10, with a spill through the stack.
//! let prog = Builder::new()
//!     .mov64(R0, 0)
//!     .mov64(R1, 10)
//!     .label("loop")
//!     .add64(R0, R1)
//!     .sub64(R1, 1)
//!     .jump(Cond::Ne, R1, 0, "loop")
//!     .store(Size::DW, R10, -8, R0)
//!     .load(Size::DW, R0, R10, -8)
//!     .exit()
//!     .build()
//!     .unwrap();
//! assert_eq!(prog.len(), 8);
//! assert_eq!(rbpf::disasm::format_insn(&prog[4], None), "jne %r1, 0, -3");
//! ```
//!
//! Opcodes are composed from the constants in [`crate::isa`]; `build` resolves labels
//! (`lddw` counts as two slots) and reports undefined or duplicate labels and jumps that do
//! not fit their offset field.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use alloc::collections::BTreeMap as HashMap;

use crate::isa::{self, Insn, alu, atomic, call_kind, class, jmp, mode, op, size, source};

mod bpf_code;

pub use bpf_code::{
    Arch, BpfCode, Endian, Exit, FunctionCall, Instruction, IntoBytes, Jump, Load, MemSize, Move,
    Source, Store, SwapBytes,
};

/// A register, `R0`..`R10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reg(u8);

/// Return value and helper result.
pub const R0: Reg = Reg(0);
/// First argument (the memory pointer at entry).
pub const R1: Reg = Reg(1);
/// Second argument (the memory length at entry).
pub const R2: Reg = Reg(2);
/// Third argument.
pub const R3: Reg = Reg(3);
/// Fourth argument.
pub const R4: Reg = Reg(4);
/// Fifth argument.
pub const R5: Reg = Reg(5);
/// Callee-saved.
pub const R6: Reg = Reg(6);
/// Callee-saved.
pub const R7: Reg = Reg(7);
/// Callee-saved.
pub const R8: Reg = Reg(8);
/// Callee-saved.
pub const R9: Reg = Reg(9);
/// Read-only frame pointer.
pub const R10: Reg = Reg(10);

impl Reg {
    /// The register number.
    pub const fn number(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Reg {
    type Error = BuildError;

    fn try_from(n: u8) -> Result<Self, BuildError> {
        if usize::from(n) < isa::NUM_REGS {
            Ok(Reg(n))
        } else {
            Err(BuildError::InvalidRegister(n))
        }
    }
}

/// The second operand of an ALU or conditional-jump instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// A register (`…_reg` encoding, source bit set).
    Reg(Reg),
    /// A 32-bit immediate.
    Imm(i32),
}

impl From<Reg> for Operand {
    fn from(r: Reg) -> Self {
        Operand::Reg(r)
    }
}

impl From<i32> for Operand {
    fn from(v: i32) -> Self {
        Operand::Imm(v)
    }
}

/// Where a jump or local call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Relative to the next slot.
    Offset(i32),
    /// A label defined with [`Builder::label`].
    Label(String),
}

impl From<i32> for Target {
    fn from(v: i32) -> Self {
        Target::Offset(v)
    }
}

impl From<&str> for Target {
    fn from(s: &str) -> Self {
        Target::Label(s.to_owned())
    }
}

impl From<String> for Target {
    fn from(s: String) -> Self {
        Target::Label(s)
    }
}

/// ALU operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AluOp {
    /// `dst += src`
    Add,
    /// `dst -= src`
    Sub,
    /// `dst *= src`
    Mul,
    /// Unsigned `dst /= src`
    Div,
    /// Signed `dst /= src`
    SDiv,
    /// `dst |= src`
    Or,
    /// `dst &= src`
    And,
    /// `dst <<= src`
    Lsh,
    /// Logical `dst >>= src`
    Rsh,
    /// Unsigned `dst %= src`
    Mod,
    /// Signed `dst %= src`
    SMod,
    /// `dst ^= src`
    Xor,
    /// `dst = src`
    Mov,
    /// Arithmetic `dst >>= src`
    Arsh,
}

impl AluOp {
    /// (operation bits, offset field)
    fn encoding(self) -> (u8, i16) {
        match self {
            AluOp::Add => (alu::ADD, 0),
            AluOp::Sub => (alu::SUB, 0),
            AluOp::Mul => (alu::MUL, 0),
            AluOp::Div => (alu::DIV, 0),
            AluOp::SDiv => (alu::DIV, 1),
            AluOp::Or => (alu::OR, 0),
            AluOp::And => (alu::AND, 0),
            AluOp::Lsh => (alu::LSH, 0),
            AluOp::Rsh => (alu::RSH, 0),
            AluOp::Mod => (alu::MOD, 0),
            AluOp::SMod => (alu::MOD, 1),
            AluOp::Xor => (alu::XOR, 0),
            AluOp::Mov => (alu::MOV, 0),
            AluOp::Arsh => (alu::ARSH, 0),
        }
    }
}

/// Jump conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// Unsigned `>`
    Gt,
    /// Unsigned `>=`
    Ge,
    /// Unsigned `<`
    Lt,
    /// Unsigned `<=`
    Le,
    /// Signed `>`
    Sgt,
    /// Signed `>=`
    Sge,
    /// Signed `<`
    Slt,
    /// Signed `<=`
    Sle,
    /// `dst & src != 0`
    Set,
    /// Always (`ja`); only meaningful in rbpf's builder ([`BpfCode::jump_unconditional`]).
    Always,
}

/// rbpf's names of the conditions (`rbpf::insn_builder::Cond::Equals`, …).
#[allow(non_upper_case_globals)]
impl Cond {
    /// rbpf's name of [`Cond::Always`].
    pub const Abs: Cond = Cond::Always;
    /// rbpf's name of [`Cond::Eq`].
    pub const Equals: Cond = Cond::Eq;
    /// rbpf's name of [`Cond::Gt`].
    pub const Greater: Cond = Cond::Gt;
    /// rbpf's name of [`Cond::Ge`].
    pub const GreaterEquals: Cond = Cond::Ge;
    /// rbpf's name of [`Cond::Lt`].
    pub const Lower: Cond = Cond::Lt;
    /// rbpf's name of [`Cond::Le`].
    pub const LowerEquals: Cond = Cond::Le;
    /// rbpf's name of [`Cond::Set`].
    pub const BitAnd: Cond = Cond::Set;
    /// rbpf's name of [`Cond::Ne`].
    pub const NotEquals: Cond = Cond::Ne;
    /// rbpf's name of [`Cond::Sgt`].
    pub const GreaterSigned: Cond = Cond::Sgt;
    /// rbpf's name of [`Cond::Sge`].
    pub const GreaterEqualsSigned: Cond = Cond::Sge;
    /// rbpf's name of [`Cond::Slt`].
    pub const LowerSigned: Cond = Cond::Slt;
    /// rbpf's name of [`Cond::Sle`].
    pub const LowerEqualsSigned: Cond = Cond::Sle;
}

impl Cond {
    fn bits(self) -> u8 {
        match self {
            Cond::Always => jmp::JA,
            Cond::Eq => jmp::JEQ,
            Cond::Ne => jmp::JNE,
            Cond::Gt => jmp::JGT,
            Cond::Ge => jmp::JGE,
            Cond::Lt => jmp::JLT,
            Cond::Le => jmp::JLE,
            Cond::Sgt => jmp::JSGT,
            Cond::Sge => jmp::JSGE,
            Cond::Slt => jmp::JSLT,
            Cond::Sle => jmp::JSLE,
            Cond::Set => jmp::JSET,
        }
    }
}

/// Memory access widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// 1 byte.
    B,
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::B => size::B,
            Size::H => size::H,
            Size::W => size::W,
            Size::DW => size::DW,
        }
    }
}

/// Widths of byte-swap instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapWidth {
    /// 16 bits.
    B16 = 16,
    /// 32 bits.
    B32 = 32,
    /// 64 bits.
    B64 = 64,
}

/// Source widths of a sign-extending move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendFrom {
    /// From 8 bits.
    B8,
    /// From 16 bits.
    B16,
    /// From 32 bits (64-bit `movsx` only).
    B32,
}

impl ExtendFrom {
    fn bits(self) -> i16 {
        match self {
            ExtendFrom::B8 => 8,
            ExtendFrom::B16 => 16,
            ExtendFrom::B32 => 32,
        }
    }
}

/// Atomic read-modify-write operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicOp {
    /// `*addr += src` (with `fetch`, `src` receives the old value).
    Add,
    /// `*addr |= src`
    Or,
    /// `*addr &= src`
    And,
    /// `*addr ^= src`
    Xor,
    /// Exchange `*addr` and `src`.
    Xchg,
    /// If `*addr == r0` then `*addr = src`; r0 receives the old value.
    Cmpxchg,
}

/// Why [`Builder::build`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A register number above 10.
    #[error("invalid register r{0}")]
    InvalidRegister(u8),
    /// A jump or call names a label that was never defined.
    #[error("undefined label `{label}` used at slot {slot}")]
    UndefinedLabel {
        /// The label.
        label: String,
        /// The slot of the jump.
        slot: usize,
    },
    /// A label was defined twice.
    #[error("label `{0}` defined twice")]
    DuplicateLabel(String),
    /// A jump offset does not fit its field (16 bits, or 32 for `ja32` and calls).
    #[error("jump at slot {slot} needs offset {offset}, which does not fit in {bits} bits")]
    OffsetOutOfRange {
        /// The slot of the jump.
        slot: usize,
        /// The offset needed.
        offset: i64,
        /// The field width.
        bits: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Off,
    Imm,
}

/// Accumulates instructions; see the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct Builder {
    insns: Vec<Insn>,
    labels: HashMap<String, usize>,
    duplicate: Option<String>,
    /// (slot, field, target)
    targets: Vec<(usize, Field, Target)>,
}

impl Builder {
    /// An empty program.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a raw instruction slot.
    pub fn insn(mut self, insn: Insn) -> Self {
        self.insns.push(insn);
        self
    }

    /// Defines `name` at the next instruction.
    pub fn label(mut self, name: &str) -> Self {
        if self
            .labels
            .insert(name.to_owned(), self.insns.len())
            .is_some()
        {
            self.duplicate.get_or_insert_with(|| name.to_owned());
        }
        self
    }

    /// The number of slots so far.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether nothing has been added yet.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    fn alu(self, class: u8, op: AluOp, dst: Reg, src: Operand) -> Self {
        let (bits, off) = op.encoding();
        let insn = match src {
            Operand::Reg(s) => Insn::new(class | bits | source::X, dst.0, s.0, off, 0),
            Operand::Imm(imm) => Insn::new(class | bits | source::K, dst.0, 0, off, imm),
        };
        self.insn(insn)
    }

    /// A 64-bit ALU operation.
    pub fn alu64(self, op: AluOp, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu(class::ALU64, op, dst, src.into())
    }

    /// A 32-bit ALU operation (the result is zero-extended).
    pub fn alu32(self, op: AluOp, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu(class::ALU, op, dst, src.into())
    }

    /// `dst = src` (64-bit).
    pub fn mov64(self, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu64(AluOp::Mov, dst, src)
    }

    /// `dst = (u32)src`.
    pub fn mov32(self, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu32(AluOp::Mov, dst, src)
    }

    /// `dst += src` (64-bit).
    pub fn add64(self, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu64(AluOp::Add, dst, src)
    }

    /// `dst += src` (32-bit).
    pub fn add32(self, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu32(AluOp::Add, dst, src)
    }

    /// `dst -= src` (64-bit).
    pub fn sub64(self, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu64(AluOp::Sub, dst, src)
    }

    /// `dst -= src` (32-bit).
    pub fn sub32(self, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu32(AluOp::Sub, dst, src)
    }

    /// `dst *= src` (64-bit).
    pub fn mul64(self, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu64(AluOp::Mul, dst, src)
    }

    /// `dst *= src` (32-bit).
    pub fn mul32(self, dst: Reg, src: impl Into<Operand>) -> Self {
        self.alu32(AluOp::Mul, dst, src)
    }

    /// `dst = -dst` (64-bit).
    pub fn neg64(self, dst: Reg) -> Self {
        self.insn(Insn::new(class::ALU64 | alu::NEG, dst.0, 0, 0, 0))
    }

    /// `dst = -dst` (32-bit).
    pub fn neg32(self, dst: Reg) -> Self {
        self.insn(Insn::new(class::ALU | alu::NEG, dst.0, 0, 0, 0))
    }

    /// `dst = sign_extend(src, from_bits)` for `from_bits` 8, 16 or 32 (64-bit `movsx`).
    pub fn movsx64(self, dst: Reg, src: Reg, from_bits: ExtendFrom) -> Self {
        self.insn(Insn::new(
            class::ALU64 | alu::MOV | source::X,
            dst.0,
            src.0,
            from_bits.bits(),
            0,
        ))
    }

    /// `dst = (u32)sign_extend(src, from_bits)` for `from_bits` 8 or 16 (32-bit `movsx`).
    pub fn movsx32(self, dst: Reg, src: Reg, from_bits: ExtendFrom) -> Self {
        self.insn(Insn::new(
            class::ALU | alu::MOV | source::X,
            dst.0,
            src.0,
            from_bits.bits(),
            0,
        ))
    }

    /// Converts `dst` from host (little-endian) to little-endian order, truncating to `width`.
    pub fn le(self, dst: Reg, width: SwapWidth) -> Self {
        self.insn(Insn::new(
            class::ALU | alu::END | source::K,
            dst.0,
            0,
            0,
            width as i32,
        ))
    }

    /// Converts `dst` to big-endian order, truncating to `width`.
    pub fn be(self, dst: Reg, width: SwapWidth) -> Self {
        self.insn(Insn::new(
            class::ALU | alu::END | source::X,
            dst.0,
            0,
            0,
            width as i32,
        ))
    }

    /// Unconditionally byte-swaps the low `width` bits of `dst` (`bswap`).
    pub fn bswap(self, dst: Reg, width: SwapWidth) -> Self {
        self.insn(Insn::new(
            class::ALU64 | alu::END,
            dst.0,
            0,
            0,
            width as i32,
        ))
    }

    /// `dst = value` (two slots).
    pub fn lddw(self, dst: Reg, value: u64) -> Self {
        self.insn(Insn::new(op::LDDW, dst.0, 0, 0, value as u32 as i32))
            .insn(Insn::new(0, 0, 0, 0, (value >> 32) as u32 as i32))
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub fn load(self, size: Size, dst: Reg, src: Reg, off: i16) -> Self {
        self.insn(Insn::new(
            class::LDX | mode::MEM | size.bits(),
            dst.0,
            src.0,
            off,
            0,
        ))
    }

    /// `dst = *(size *)(src + off)`, sign-extended (`size` B, H or W).
    pub fn load_sx(self, size: Size, dst: Reg, src: Reg, off: i16) -> Self {
        self.insn(Insn::new(
            class::LDX | mode::MEMSX | size.bits(),
            dst.0,
            src.0,
            off,
            0,
        ))
    }

    /// `*(size *)(dst + off) = src` (register or immediate).
    pub fn store(self, size: Size, dst: Reg, off: i16, src: impl Into<Operand>) -> Self {
        let insn = match src.into() {
            Operand::Reg(s) => Insn::new(class::STX | mode::MEM | size.bits(), dst.0, s.0, off, 0),
            Operand::Imm(imm) => Insn::new(class::ST | mode::MEM | size.bits(), dst.0, 0, off, imm),
        };
        self.insn(insn)
    }

    /// An atomic operation on `*(size *)(dst + off)` with `src` (`size` W or DW). With
    /// `fetch`, `src` receives the old value (always so for `Xchg` and `Cmpxchg`).
    pub fn atomic(
        self,
        size: Size,
        op: AtomicOp,
        fetch: bool,
        dst: Reg,
        off: i16,
        src: Reg,
    ) -> Self {
        let fetch_bit = if fetch { atomic::FETCH } else { 0 };
        let imm = match op {
            AtomicOp::Add => atomic::ADD | fetch_bit,
            AtomicOp::Or => atomic::OR | fetch_bit,
            AtomicOp::And => atomic::AND | fetch_bit,
            AtomicOp::Xor => atomic::XOR | fetch_bit,
            AtomicOp::Xchg => atomic::XCHG,
            AtomicOp::Cmpxchg => atomic::CMPXCHG,
        };
        self.insn(Insn::new(
            class::STX | mode::ATOMIC | size.bits(),
            dst.0,
            src.0,
            off,
            imm,
        ))
    }

    fn with_target(mut self, insn: Insn, field: Field, target: Target) -> Self {
        self.targets.push((self.insns.len(), field, target));
        self.insn(insn)
    }

    /// Unconditional jump (16-bit offset).
    pub fn ja(self, target: impl Into<Target>) -> Self {
        self.with_target(Insn::new(op::JA, 0, 0, 0, 0), Field::Off, target.into())
    }

    /// Unconditional jump with a 32-bit offset (`ja32`, a.k.a. `gotol`).
    pub fn ja32(self, target: impl Into<Target>) -> Self {
        self.with_target(Insn::new(op::JA32, 0, 0, 0, 0), Field::Imm, target.into())
    }

    fn cond_jump(
        self,
        class: u8,
        cond: Cond,
        dst: Reg,
        src: Operand,
        target: impl Into<Target>,
    ) -> Self {
        let insn = match src {
            Operand::Reg(s) => Insn::new(class | cond.bits() | source::X, dst.0, s.0, 0, 0),
            Operand::Imm(imm) => Insn::new(class | cond.bits() | source::K, dst.0, 0, 0, imm),
        };
        self.with_target(insn, Field::Off, target.into())
    }

    /// Jumps to `target` if `cond` holds between `dst` and `src` (64-bit compare).
    pub fn jump(
        self,
        cond: Cond,
        dst: Reg,
        src: impl Into<Operand>,
        target: impl Into<Target>,
    ) -> Self {
        self.cond_jump(class::JMP, cond, dst, src.into(), target)
    }

    /// Jumps to `target` if `cond` holds between the low 32 bits of `dst` and `src`.
    pub fn jump32(
        self,
        cond: Cond,
        dst: Reg,
        src: impl Into<Operand>,
        target: impl Into<Target>,
    ) -> Self {
        self.cond_jump(class::JMP32, cond, dst, src.into(), target)
    }

    /// Calls helper `index`.
    pub fn call_helper(self, index: u32) -> Self {
        self.insn(Insn::new(op::CALL, 0, call_kind::HELPER, 0, index as i32))
    }

    /// Calls the helper whose index is in `reg` (`callx`).
    pub fn callx(self, reg: Reg) -> Self {
        self.insn(Insn::new(op::CALLX, reg.0, 0, 0, 0))
    }

    /// Calls a local function.
    pub fn call_local(self, target: impl Into<Target>) -> Self {
        self.with_target(
            Insn::new(op::CALL, 0, call_kind::LOCAL, 0, 0),
            Field::Imm,
            target.into(),
        )
    }

    /// Returns from the function (or the program) with r0.
    pub fn exit(self) -> Self {
        self.insn(Insn::new(op::EXIT, 0, 0, 0, 0))
    }

    /// Resolves labels and returns the instruction slots.
    pub fn build(mut self) -> Result<Vec<Insn>, BuildError> {
        if let Some(name) = self.duplicate {
            return Err(BuildError::DuplicateLabel(name));
        }
        for (slot, field, target) in &self.targets {
            let offset = match target {
                Target::Offset(v) => i64::from(*v),
                Target::Label(name) => {
                    let &at = self
                        .labels
                        .get(name)
                        .ok_or_else(|| BuildError::UndefinedLabel {
                            label: name.clone(),
                            slot: *slot,
                        })?;
                    // Slot counts fit in i64 with room to spare.
                    at as i64 - *slot as i64 - 1
                }
            };
            let range = |bits| BuildError::OffsetOutOfRange {
                slot: *slot,
                offset,
                bits,
            };
            let insn = &mut self.insns[*slot];
            match field {
                Field::Off => insn.off = i16::try_from(offset).map_err(|_| range(16))?,
                Field::Imm => insn.imm = i32::try_from(offset).map_err(|_| range(32))?,
            }
        }
        Ok(self.insns)
    }

    /// Resolves labels and returns little-endian bytecode.
    pub fn build_bytes(self) -> Result<Vec<u8>, BuildError> {
        self.build().map(|insns| isa::encode_slots(&insns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;
    use crate::tools::asm::assemble;

    #[test]
    fn matches_the_assembler() {
        let built = Builder::new()
            .mov64(R0, 1)
            .mov32(R1, R2)
            .alu64(AluOp::SDiv, R3, 7)
            .alu32(AluOp::SMod, R3, R4)
            .alu64(AluOp::Arsh, R3, 2)
            .neg64(R5)
            .neg32(R5)
            .movsx64(R1, R2, ExtendFrom::B32)
            .movsx32(R1, R2, ExtendFrom::B8)
            .le(R1, SwapWidth::B16)
            .be(R1, SwapWidth::B64)
            .bswap(R1, SwapWidth::B32)
            .lddw(R6, 0x1122_3344_5566_7788)
            .load(Size::H, R0, R1, 2)
            .load_sx(Size::B, R0, R1, -1)
            .store(Size::DW, R10, -8, R0)
            .store(Size::W, R10, -16, -1)
            .atomic(Size::DW, AtomicOp::Add, true, R10, -8, R1)
            .atomic(Size::W, AtomicOp::Cmpxchg, false, R10, -8, R1)
            .label("top")
            .jump(Cond::Sle, R1, R2, "top")
            .jump32(Cond::Set, R1, 0x10, 1)
            .ja32("end")
            .call_helper(5)
            .callx(R2)
            .call_local("end")
            .label("end")
            .exit()
            .build()
            .unwrap();
        let text = "mov %r0, 1\nmov32 %r1, %r2\nsdiv %r3, 7\nsmod32 %r3, %r4\narsh %r3, 2\n\
            neg %r5\nneg32 %r5\nmovsx3264 %r1, %r2\nmovsx832 %r1, %r2\nle16 %r1\nbe64 %r1\n\
            bswap32 %r1\nlddw %r6, 0x1122334455667788\nldxh %r0, [%r1+2]\nldxsb %r0, [%r1-1]\n\
            stxdw [%r10-8], %r0\nstw [%r10-16], -1\nlock fetch add [%r10-8], %r1\n\
            lock cmpxchg32 [%r10-8], %r1\ntop: jsle %r1, %r2, top\njset32 %r1, 0x10, +1\n\
            ja32 end\ncall 5\ncall %r2\ncall local end\nend: exit";
        assert_eq!(built, assemble(text).unwrap());
    }

    #[test]
    fn label_errors() {
        assert_eq!(
            Builder::new().ja("nowhere").build(),
            Err(BuildError::UndefinedLabel {
                label: "nowhere".into(),
                slot: 0
            })
        );
        assert_eq!(
            Builder::new().label("a").exit().label("a").build(),
            Err(BuildError::DuplicateLabel("a".into()))
        );
        assert!(matches!(
            Builder::new().ja(40000).build(),
            Err(BuildError::OffsetOutOfRange { bits: 16, .. })
        ));
        assert_eq!(Reg::try_from(11), Err(BuildError::InvalidRegister(11)));
        assert_eq!(Reg::try_from(10).map(Reg::number), Ok(10));
    }

    #[test]
    fn bytes() {
        let bytes = Builder::new().mov64(R0, 2).exit().build_bytes().unwrap();
        assert_eq!(
            bytes,
            [
                0xb7, 0, 0, 0, 2, 0, 0, 0, //
                0x95, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        assert!(Builder::new().is_empty());
        assert_eq!(Builder::new().lddw(R1, 1).len(), 2);
    }
}
