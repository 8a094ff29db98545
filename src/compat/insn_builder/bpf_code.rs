//! rbpf's instruction builder API ([`BpfCode`] and its chained instruction values), for
//! programs written against `rbpf::insn_builder`:
//!
//! ```
//! use rbpf::insn_builder::*;
//!
//! let mut program = BpfCode::new();
//! program
//!     .mov(Source::Imm, Arch::X64).set_dst(0).set_imm(0x2211).push()
//!     .swap_bytes(Endian::Big).set_dst(0).set_imm(16).push()
//!     .exit().push();
//! let vm = rbpf::EbpfVmNoData::new(Some(program.into_bytes())).unwrap();
//! assert_eq!(vm.execute_program().unwrap(), 0x1122);
//! ```
//!
//! Each constructor method of [`BpfCode`] returns an instruction value whose fields are set
//! with the [`Instruction`] setters; `push` appends its 8 bytes and returns the code. The
//! opcode comes from the method and its arguments; no other check is made (the VM's verifier
//! judges the result), as in rbpf.

use alloc::vec::Vec;

use super::Cond;
use crate::isa::{Insn, alu, class, jmp, mode, size, source};

/// One instruction under construction: field access and the opcode it encodes.
pub trait Instruction: Sized {
    /// The opcode byte.
    fn opt_code_byte(&self) -> u8;

    /// The instruction's fields (the opcode field is ignored: see `opt_code_byte`).
    fn get_insn(&self) -> &Insn;

    /// The instruction's fields, mutably.
    fn get_insn_mut(&mut self) -> &mut Insn;

    /// The destination register.
    fn get_dst(&self) -> u8 {
        self.get_insn().dst
    }

    /// The source register.
    fn get_src(&self) -> u8 {
        self.get_insn().src
    }

    /// The offset.
    fn get_off(&self) -> i16 {
        self.get_insn().off
    }

    /// The immediate.
    fn get_imm(&self) -> i32 {
        self.get_insn().imm
    }

    /// Sets the destination register.
    fn set_dst(mut self, dst: u8) -> Self {
        self.get_insn_mut().dst = dst;
        self
    }

    /// Sets the source register.
    fn set_src(mut self, src: u8) -> Self {
        self.get_insn_mut().src = src;
        self
    }

    /// Sets the offset.
    fn set_off(mut self, offset: i16) -> Self {
        self.get_insn_mut().off = offset;
        self
    }

    /// Sets the immediate.
    fn set_imm(mut self, imm: i32) -> Self {
        self.get_insn_mut().imm = imm;
        self
    }
}

/// Conversion into bytecode.
pub trait IntoBytes {
    /// What the conversion gives.
    type Bytes;

    /// The bytecode.
    fn into_bytes(self) -> Self::Bytes;
}

impl<I: Instruction> IntoBytes for &I {
    type Bytes = Vec<u8>;

    /// The instruction's 8 bytes.
    fn into_bytes(self) -> Vec<u8> {
        let mut insn = *self.get_insn();
        insn.opc = self.opt_code_byte();
        insn.to_bytes().to_vec()
    }
}

/// A program under construction, as bytecode.
#[derive(Debug, Default, Clone)]
pub struct BpfCode {
    instructions: Vec<u8>,
}

impl<'a> IntoBytes for &'a BpfCode {
    type Bytes = &'a [u8];

    /// The bytecode built so far.
    fn into_bytes(self) -> &'a [u8] {
        &self.instructions
    }
}

impl BpfCode {
    /// An empty program.
    pub fn new() -> Self {
        BpfCode::default()
    }

    /// The bytecode built so far.
    pub fn into_bytes(&self) -> &[u8] {
        &self.instructions
    }

    fn alu(&mut self, source: Source, arch: Arch, op: u8) -> Move<'_> {
        Move {
            opcode: arch as u8 | source as u8 | op,
            insn: Insn::default(),
            code: self,
        }
    }

    /// `add` (immediate or register, 32 or 64 bits).
    pub fn add(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::ADD)
    }

    /// `sub`.
    pub fn sub(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::SUB)
    }

    /// `mul`.
    pub fn mul(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::MUL)
    }

    /// `div`.
    pub fn div(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::DIV)
    }

    /// `or`.
    pub fn bit_or(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::OR)
    }

    /// `and`.
    pub fn bit_and(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::AND)
    }

    /// `lsh`.
    pub fn left_shift(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::LSH)
    }

    /// `rsh` (logical).
    pub fn right_shift(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::RSH)
    }

    /// `neg`.
    pub fn negate(&mut self, arch: Arch) -> Move<'_> {
        self.alu(Source::Imm, arch, alu::NEG)
    }

    /// `mod`.
    pub fn modulo(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::MOD)
    }

    /// `xor`.
    pub fn bit_xor(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::XOR)
    }

    /// `mov`.
    pub fn mov(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::MOV)
    }

    /// `arsh` (arithmetic right shift).
    pub fn signed_right_shift(&mut self, source: Source, arch: Arch) -> Move<'_> {
        self.alu(source, arch, alu::ARSH)
    }

    /// A byte swap (`le` or `be`; the width goes in the immediate: 16, 32 or 64).
    pub fn swap_bytes(&mut self, endian: Endian) -> SwapBytes<'_> {
        SwapBytes {
            opcode: endian as u8,
            insn: Insn::default(),
            code: self,
        }
    }

    fn load_with(&mut self, mem_size: MemSize, addressing: u8, class: u8) -> Load<'_> {
        Load {
            opcode: addressing | mem_size as u8 | class,
            insn: Insn::default(),
            code: self,
        }
    }

    /// A load of an immediate (`lddw` with [`MemSize::DoubleWord`]; push a second, opcode-0
    /// instruction with the high half yourself, as in rbpf).
    pub fn load(&mut self, mem_size: MemSize) -> Load<'_> {
        self.load_with(mem_size, mode::IMM, class::LD)
    }

    /// A legacy absolute packet load.
    pub fn load_abs(&mut self, mem_size: MemSize) -> Load<'_> {
        self.load_with(mem_size, mode::ABS, class::LD)
    }

    /// A legacy indirect packet load.
    pub fn load_ind(&mut self, mem_size: MemSize) -> Load<'_> {
        self.load_with(mem_size, mode::IND, class::LD)
    }

    /// A load from memory (`ldx`).
    pub fn load_x(&mut self, mem_size: MemSize) -> Load<'_> {
        self.load_with(mem_size, mode::MEM, class::LDX)
    }

    /// A store of an immediate (`st`).
    pub fn store(&mut self, mem_size: MemSize) -> Store<'_> {
        Store {
            opcode: mode::MEM | mem_size as u8 | class::ST,
            insn: Insn::default(),
            code: self,
        }
    }

    /// A store of a register (`stx`).
    pub fn store_x(&mut self, mem_size: MemSize) -> Store<'_> {
        Store {
            opcode: mode::MEM | mem_size as u8 | class::STX,
            insn: Insn::default(),
            code: self,
        }
    }

    /// `ja`.
    pub fn jump_unconditional(&mut self) -> Jump<'_> {
        self.jump_conditional(Cond::Abs, Source::Imm)
    }

    /// A conditional jump comparing dst with the immediate or src.
    pub fn jump_conditional(&mut self, cond: Cond, src_bit: Source) -> Jump<'_> {
        Jump {
            opcode: class::JMP | src_bit as u8 | cond.bits(),
            insn: Insn::default(),
            code: self,
        }
    }

    /// `call imm` (a helper call).
    pub fn call(&mut self) -> FunctionCall<'_> {
        FunctionCall {
            insn: Insn::default(),
            code: self,
        }
    }

    /// `exit`.
    pub fn exit(&mut self) -> Exit<'_> {
        Exit {
            insn: Insn::default(),
            code: self,
        }
    }
}

/// Generates an instruction value type of rbpf's builder.
macro_rules! instruction {
    ($(#[$doc:meta])* $name:ident, |$this:ident| $opcode:expr) => {
        $(#[$doc])*
        pub struct $name<'i> {
            code: &'i mut BpfCode,
            opcode: u8,
            insn: Insn,
        }

        impl<'i> $name<'i> {
            /// Appends the instruction to the program and returns the program.
            pub fn push(self) -> &'i mut BpfCode {
                let bytes = (&self).into_bytes();
                self.code.instructions.extend_from_slice(&bytes);
                self.code
            }
        }

        impl Instruction for $name<'_> {
            fn opt_code_byte(&self) -> u8 {
                let $this = self;
                $opcode
            }

            fn get_insn(&self) -> &Insn {
                &self.insn
            }

            fn get_insn_mut(&mut self) -> &mut Insn {
                &mut self.insn
            }
        }
    };
}

instruction!(
    /// An ALU instruction being built.
    Move,
    |this| this.opcode
);
instruction!(
    /// A byte swap being built.
    SwapBytes,
    |this| this.opcode
);
instruction!(
    /// A load being built.
    Load,
    |this| this.opcode
);
instruction!(
    /// A store being built.
    Store,
    |this| this.opcode
);
instruction!(
    /// A jump being built.
    Jump,
    |this| this.opcode
);

/// A helper call being built (the helper index goes in the immediate).
pub struct FunctionCall<'i> {
    code: &'i mut BpfCode,
    insn: Insn,
}

/// `exit` being built.
pub struct Exit<'i> {
    code: &'i mut BpfCode,
    insn: Insn,
}

/// Implements the fixed-opcode instruction values.
macro_rules! fixed_instruction {
    ($name:ident, $opcode:expr) => {
        impl<'i> $name<'i> {
            /// Appends the instruction to the program and returns the program.
            pub fn push(self) -> &'i mut BpfCode {
                let bytes = (&self).into_bytes();
                self.code.instructions.extend_from_slice(&bytes);
                self.code
            }
        }

        impl Instruction for $name<'_> {
            fn opt_code_byte(&self) -> u8 {
                $opcode
            }

            fn get_insn(&self) -> &Insn {
                &self.insn
            }

            fn get_insn_mut(&mut self) -> &mut Insn {
                &mut self.insn
            }
        }
    };
}

fixed_instruction!(FunctionCall, class::JMP | jmp::CALL);
fixed_instruction!(Exit, class::JMP | jmp::EXIT);

/// Where the second operand of an ALU or jump instruction comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The immediate.
    Imm = source::K as isize,
    /// The source register.
    Reg = source::X as isize,
}

/// The width of an ALU instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// 64-bit.
    X64 = class::ALU64 as isize,
    /// 32-bit.
    X32 = class::ALU as isize,
}

/// The byte order a swap converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Little-endian (`le`).
    Little = (class::ALU | source::K | alu::END) as isize,
    /// Big-endian (`be`).
    Big = (class::ALU | source::X | alu::END) as isize,
}

/// The width of a load or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemSize {
    /// 1 byte.
    Byte = size::B as isize,
    /// 2 bytes.
    HalfWord = size::H as isize,
    /// 4 bytes.
    Word = size::W as isize,
    /// 8 bytes.
    DoubleWord = size::DW as isize,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    #[test]
    fn readme_program_matches_the_assembler() {
        let mut program = BpfCode::new();
        program
            .add(Source::Imm, Arch::X64)
            .set_dst(1)
            .set_imm(0x605)
            .push()
            .mov(Source::Imm, Arch::X64)
            .set_dst(2)
            .set_imm(0x32)
            .push()
            .mov(Source::Reg, Arch::X64)
            .set_src(0)
            .set_dst(1)
            .push()
            .swap_bytes(Endian::Big)
            .set_dst(0)
            .set_imm(0x10)
            .push()
            .negate(Arch::X64)
            .set_dst(2)
            .push()
            .exit()
            .push();
        let expected = crate::compat::assembler::assemble(
            "add64 r1, 0x605\nmov64 r2, 0x32\nmov64 r1, r0\nbe16 r0\nneg64 r2\nexit",
        )
        .unwrap();
        assert_eq!(program.into_bytes(), &expected[..]);
    }

    #[test]
    fn every_constructor_encodes_its_opcode() {
        use crate::compat::ebpf;
        let mut code = BpfCode::new();
        code.load(MemSize::DoubleWord).set_dst(1).push();
        code.load_abs(MemSize::Word).push();
        code.load_ind(MemSize::Byte).push();
        code.load_x(MemSize::HalfWord).push();
        code.store(MemSize::Word).push();
        code.store_x(MemSize::DoubleWord).push();
        code.jump_unconditional().set_off(1).push();
        code.jump_conditional(Cond::Equals, Source::Reg).push();
        code.jump_conditional(Cond::LowerEqualsSigned, Source::Imm)
            .push();
        code.call().set_imm(1).push();
        code.sub(Source::Imm, Arch::X32).push();
        code.signed_right_shift(Source::Reg, Arch::X64).push();
        code.swap_bytes(Endian::Little).push();
        let ops: Vec<u8> = ebpf::to_insn_vec(code.into_bytes())
            .iter()
            .map(|i| i.opc)
            .collect();
        assert_eq!(
            ops,
            [
                ebpf::LD_DW_IMM,
                ebpf::LD_ABS_W,
                ebpf::LD_IND_B,
                ebpf::LD_H_REG,
                ebpf::ST_W_IMM,
                ebpf::ST_DW_REG,
                ebpf::JA,
                ebpf::JEQ_REG,
                ebpf::JSLE_IMM,
                ebpf::CALL,
                ebpf::SUB32_IMM,
                ebpf::ARSH64_REG,
                ebpf::LE
            ]
        );
        let call = code.call().set_imm(7);
        assert_eq!(call.get_imm(), 7);
        assert_eq!((&call).into_bytes()[0], ebpf::CALL);
    }
}
