//! A small x86-64 encoder for the baseline tier: the instructions it emits, appended to a byte
//! buffer, and rel32 references to labels patched once every label is placed.
//!
//! Only the forms the baseline translation uses are here. Operands are 64-bit registers or
//! `[base + disp32]` memory; `wide` selects the 64-bit form (REX.W) of an operation, the
//! 32-bit form otherwise (which zero-extends its result on x86-64).

#![allow(clippy::arithmetic_side_effects)]

/// A general-purpose register by its encoding number (0..15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reg(pub u8);

pub(crate) const RAX: Reg = Reg(0);
pub(crate) const RCX: Reg = Reg(1);
pub(crate) const RDX: Reg = Reg(2);
pub(crate) const RBX: Reg = Reg(3);
pub(crate) const RSP: Reg = Reg(4);
pub(crate) const RBP: Reg = Reg(5);
pub(crate) const RSI: Reg = Reg(6);
pub(crate) const RDI: Reg = Reg(7);
pub(crate) const R8: Reg = Reg(8);
pub(crate) const R9: Reg = Reg(9);
pub(crate) const R10: Reg = Reg(10);
pub(crate) const R11: Reg = Reg(11);
pub(crate) const R12: Reg = Reg(12);
pub(crate) const R13: Reg = Reg(13);
pub(crate) const R14: Reg = Reg(14);
pub(crate) const R15: Reg = Reg(15);

/// Where a rel32 reference points: a label, placed later or earlier with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(pub u32);

/// Two-operand ALU operations in their `op r/m, reg` opcode and their `81 /ext` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alu {
    Add,
    Or,
    And,
    Sub,
    Xor,
    Cmp,
}

impl Alu {
    fn opcode(self) -> u8 {
        match self {
            Alu::Add => 0x01,
            Alu::Or => 0x09,
            Alu::And => 0x21,
            Alu::Sub => 0x29,
            Alu::Xor => 0x31,
            Alu::Cmp => 0x39,
        }
    }

    fn ext(self) -> u8 {
        match self {
            Alu::Add => 0,
            Alu::Or => 1,
            Alu::And => 4,
            Alu::Sub => 5,
            Alu::Xor => 6,
            Alu::Cmp => 7,
        }
    }
}

/// Shift operations by their `C1 /ext` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shift {
    Rol = 0,
    Shl = 4,
    Shr = 5,
    Sar = 7,
}

/// Condition codes, by the low nibble of `0F 8x` (jcc) and `0F 4x` (cmovcc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    Below = 0x2,
    AboveEq = 0x3,
    Eq = 0x4,
    NotEq = 0x5,
    BelowEq = 0x6,
    Above = 0x7,
    Sign = 0x8,
    Less = 0xc,
    GreaterEq = 0xd,
    LessEq = 0xe,
    Greater = 0xf,
}

/// The code being assembled.
#[derive(Debug, Default)]
pub(crate) struct Asm {
    /// The bytes so far.
    pub code: Vec<u8>,
    /// The offset of each label (`u32::MAX`: not placed yet).
    labels: Vec<u32>,
    /// `(offset of a rel32 field, label)`: patched by [`Asm::finish`].
    fixups: Vec<(u32, Label)>,
}

impl Asm {
    /// An empty buffer with room for about `bytes` bytes.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Asm {
            code: Vec::with_capacity(bytes),
            labels: Vec::new(),
            fixups: Vec::new(),
        }
    }

    /// The current offset.
    pub(crate) fn here(&self) -> u32 {
        self.code.len() as u32
    }

    /// A new label, not placed yet.
    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(u32::MAX);
        Label(self.labels.len() as u32 - 1)
    }

    /// Places `label` at the current offset.
    pub(crate) fn bind(&mut self, label: Label) {
        self.labels[label.0 as usize] = self.here();
    }

    /// Patches every rel32 reference; `None` when one names a label never placed.
    pub(crate) fn finish(mut self) -> Option<Vec<u8>> {
        for &(at, label) in &self.fixups {
            let target = *self.labels.get(label.0 as usize)?;
            if target == u32::MAX {
                return None;
            }
            let rel = target.wrapping_sub(at + 4) as i32;
            self.code[at as usize..at as usize + 4].copy_from_slice(&rel.to_le_bytes());
        }
        Some(self.code)
    }

    fn byte(&mut self, b: u8) {
        self.code.push(b);
    }

    fn imm32(&mut self, v: i32) {
        self.code.extend_from_slice(&v.to_le_bytes());
    }

    fn rel32(&mut self, label: Label) {
        let at = self.here();
        self.fixups.push((at, label));
        self.imm32(0);
    }

    /// REX prefix for a `reg` field and an `rm` (or opcode-register) field; emitted when
    /// needed, or always with `force` (byte access to spl/bpl/sil/dil).
    fn rex(&mut self, wide: bool, reg: Reg, rm: Reg, force: bool) {
        let rex = 0x40 | (u8::from(wide) << 3) | (u8::from(reg.0 >= 8) << 2) | u8::from(rm.0 >= 8);
        if rex != 0x40 || force {
            self.byte(rex);
        }
    }

    /// ModRM for a register operand.
    fn direct(&mut self, reg: Reg, rm: Reg) {
        self.byte(0xc0 | ((reg.0 & 7) << 3) | (rm.0 & 7));
    }

    /// ModRM (and SIB, displacement) for `[base + disp]`.
    fn memory(&mut self, reg: Reg, base: Reg, disp: i32) {
        let reg = (reg.0 & 7) << 3;
        let rm = base.0 & 7;
        let (mode, short) = if disp == 0 && rm != 5 {
            (0x00, None)
        } else if let Ok(d) = i8::try_from(disp) {
            (0x40, Some(d))
        } else {
            (0x80, None)
        };
        self.byte(mode | reg | rm);
        if rm == 4 {
            self.byte(0x24);
        }
        match (mode, short) {
            (0x40, Some(d)) => self.byte(d as u8),
            (0x80, _) => self.imm32(disp),
            _ => {}
        }
    }

    /// `op dst, src` (register to register).
    pub(crate) fn alu_rr(&mut self, op: Alu, wide: bool, dst: Reg, src: Reg) {
        self.rex(wide, src, dst, false);
        self.byte(op.opcode());
        self.direct(src, dst);
    }

    /// `op dst, imm` (the imm sign-extended in the 64-bit form).
    pub(crate) fn alu_ri(&mut self, op: Alu, wide: bool, dst: Reg, imm: i32) {
        self.rex(wide, Reg(0), dst, false);
        if let Ok(small) = i8::try_from(imm) {
            self.byte(0x83);
            self.direct(Reg(op.ext()), dst);
            self.byte(small as u8);
        } else {
            self.byte(0x81);
            self.direct(Reg(op.ext()), dst);
            self.imm32(imm);
        }
    }

    /// `op dst, qword [base + disp]` (reg-from-memory form of the opcode).
    pub(crate) fn alu_rm(&mut self, op: Alu, dst: Reg, base: Reg, disp: i32) {
        self.reg_mem(true, &[op.opcode() | 2], dst, base, disp);
    }

    /// `op qword [base + disp], imm`.
    pub(crate) fn alu_mi(&mut self, op: Alu, base: Reg, disp: i32, imm: i32) {
        self.rex(true, Reg(0), base, false);
        if let Ok(small) = i8::try_from(imm) {
            self.byte(0x83);
            self.memory(Reg(op.ext()), base, disp);
            self.byte(small as u8);
        } else {
            self.byte(0x81);
            self.memory(Reg(op.ext()), base, disp);
            self.imm32(imm);
        }
    }

    /// `test a, b`.
    pub(crate) fn test_rr(&mut self, wide: bool, a: Reg, b: Reg) {
        self.rex(wide, b, a, false);
        self.byte(0x85);
        self.direct(b, a);
    }

    /// `test a, imm` (sign-extended in the 64-bit form).
    pub(crate) fn test_ri(&mut self, wide: bool, a: Reg, imm: i32) {
        self.rex(wide, Reg(0), a, false);
        self.byte(0xf7);
        self.direct(Reg(0), a);
        self.imm32(imm);
    }

    /// `mov dst, src` (the 32-bit form zero-extends).
    pub(crate) fn mov_rr(&mut self, wide: bool, dst: Reg, src: Reg) {
        self.rex(wide, src, dst, false);
        self.byte(0x89);
        self.direct(src, dst);
    }

    /// `dst = imm` in the shortest form.
    pub(crate) fn mov_ri(&mut self, dst: Reg, imm: u64) {
        if imm == 0 {
            self.alu_rr(Alu::Xor, false, dst, dst);
        } else if let Ok(v) = u32::try_from(imm) {
            self.mov_ri32(dst, v);
        } else if let Ok(v) = i32::try_from(imm as i64) {
            self.rex(true, Reg(0), dst, false);
            self.byte(0xc7);
            self.direct(Reg(0), dst);
            self.imm32(v);
        } else {
            self.rex(true, Reg(0), dst, false);
            self.byte(0xb8 | (dst.0 & 7));
            self.code.extend_from_slice(&imm.to_le_bytes());
        }
    }

    /// `mov dst32, imm32` (zero-extends).
    pub(crate) fn mov_ri32(&mut self, dst: Reg, imm: u32) {
        self.rex(false, Reg(0), dst, false);
        self.byte(0xb8 | (dst.0 & 7));
        self.imm32(imm as i32);
    }

    /// `lea dst, [base + disp]`.
    pub(crate) fn lea(&mut self, dst: Reg, base: Reg, disp: i32) {
        self.reg_mem(true, &[0x8d], dst, base, disp);
    }

    /// `lea dst, [rip + label]`.
    pub(crate) fn lea_label(&mut self, dst: Reg, label: Label) {
        self.rex(true, dst, Reg(0), false);
        self.byte(0x8d);
        self.byte(((dst.0 & 7) << 3) | 5);
        self.rel32(label);
    }

    /// Load of `bytes` bytes from `[base + disp]` into `dst`, zero- or sign-extended to 64 bits.
    pub(crate) fn load(&mut self, dst: Reg, base: Reg, disp: i32, bytes: usize, signed: bool) {
        match (bytes, signed) {
            (1, false) | (2, false) => {
                self.rex(false, dst, base, false);
                self.byte(0x0f);
                self.byte(if bytes == 1 { 0xb6 } else { 0xb7 });
            }
            (1, true) | (2, true) => {
                self.rex(true, dst, base, false);
                self.byte(0x0f);
                self.byte(if bytes == 1 { 0xbe } else { 0xbf });
            }
            (4, false) => {
                self.rex(false, dst, base, false);
                self.byte(0x8b);
            }
            (4, true) => {
                self.rex(true, dst, base, false);
                self.byte(0x63);
            }
            _ => {
                self.rex(true, dst, base, false);
                self.byte(0x8b);
            }
        }
        self.memory(dst, base, disp);
    }

    /// Store of the low `bytes` bytes of `src` to `[base + disp]`.
    pub(crate) fn store(&mut self, base: Reg, disp: i32, src: Reg, bytes: usize) {
        if bytes == 2 {
            self.byte(0x66);
        }
        self.rex(bytes == 8, src, base, bytes == 1 && (4..8).contains(&src.0));
        self.byte(if bytes == 1 { 0x88 } else { 0x89 });
        self.memory(src, base, disp);
    }

    /// Store of `imm` (its low `bytes` bytes; sign-extended for 8) to `[base + disp]`.
    pub(crate) fn store_imm(&mut self, base: Reg, disp: i32, imm: i32, bytes: usize) {
        if bytes == 2 {
            self.byte(0x66);
        }
        self.rex(bytes == 8, Reg(0), base, false);
        self.byte(if bytes == 1 { 0xc6 } else { 0xc7 });
        self.memory(Reg(0), base, disp);
        match bytes {
            1 => self.byte(imm as u8),
            2 => self.code.extend_from_slice(&(imm as u16).to_le_bytes()),
            _ => self.imm32(imm),
        }
    }

    /// An instruction with a register operand `reg` and a memory operand `[base + disp]`:
    /// REX, then `opcode`, then the operands.
    fn reg_mem(&mut self, wide: bool, opcode: &[u8], reg: Reg, base: Reg, disp: i32) {
        self.rex(wide, reg, base, false);
        self.code.extend_from_slice(opcode);
        self.memory(reg, base, disp);
    }

    /// `lock op [base + disp], src` for add/or/and/xor (no result).
    pub(crate) fn lock_alu_mr(&mut self, op: Alu, wide: bool, base: Reg, disp: i32, src: Reg) {
        self.byte(0xf0);
        self.reg_mem(wide, &[op.opcode()], src, base, disp);
    }

    /// `lock xadd [base + disp], src`.
    pub(crate) fn lock_xadd(&mut self, wide: bool, base: Reg, disp: i32, src: Reg) {
        self.byte(0xf0);
        self.reg_mem(wide, &[0x0f, 0xc1], src, base, disp);
    }

    /// `lock cmpxchg [base + disp], src` (compares with rax/eax).
    pub(crate) fn lock_cmpxchg(&mut self, wide: bool, base: Reg, disp: i32, src: Reg) {
        self.byte(0xf0);
        self.reg_mem(wide, &[0x0f, 0xb1], src, base, disp);
    }

    /// `xchg [base + disp], src` (always locked).
    pub(crate) fn xchg_mr(&mut self, wide: bool, base: Reg, disp: i32, src: Reg) {
        self.reg_mem(wide, &[0x87], src, base, disp);
    }

    /// `shift dst, imm`.
    pub(crate) fn shift_ri(&mut self, op: Shift, wide: bool, dst: Reg, imm: u8) {
        self.rex(wide, Reg(0), dst, false);
        self.byte(0xc1);
        self.direct(Reg(op as u8), dst);
        self.byte(imm);
    }

    /// `shift dst, cl`.
    pub(crate) fn shift_cl(&mut self, op: Shift, wide: bool, dst: Reg) {
        self.rex(wide, Reg(0), dst, false);
        self.byte(0xd3);
        self.direct(Reg(op as u8), dst);
    }

    /// `rol dst16, 8`: swaps the two low bytes.
    pub(crate) fn rol16_8(&mut self, dst: Reg) {
        self.byte(0x66);
        self.shift_ri(Shift::Rol, false, dst, 8);
    }

    /// `imul dst, src`.
    pub(crate) fn imul_rr(&mut self, wide: bool, dst: Reg, src: Reg) {
        self.rex(wide, dst, src, false);
        self.byte(0x0f);
        self.byte(0xaf);
        self.direct(dst, src);
    }

    /// `imul dst, src, imm`.
    pub(crate) fn imul_rri(&mut self, wide: bool, dst: Reg, src: Reg, imm: i32) {
        self.rex(wide, dst, src, false);
        self.byte(0x69);
        self.direct(dst, src);
        self.imm32(imm);
    }

    /// `neg dst`.
    pub(crate) fn neg(&mut self, wide: bool, dst: Reg) {
        self.rex(wide, Reg(0), dst, false);
        self.byte(0xf7);
        self.direct(Reg(3), dst);
    }

    /// `div src` (`signed`: `idiv src`) of rdx:rax (edx:eax).
    pub(crate) fn div(&mut self, wide: bool, signed: bool, src: Reg) {
        self.rex(wide, Reg(0), src, false);
        self.byte(0xf7);
        self.direct(Reg(if signed { 7 } else { 6 }), src);
    }

    /// `cqo` (`cdq` in the 32-bit form): sign-extends rax into rdx.
    pub(crate) fn sign_extend_rax(&mut self, wide: bool) {
        if wide {
            self.byte(0x48);
        }
        self.byte(0x99);
    }

    /// `movzx dst32, src16` / `movzx dst32, src8`.
    pub(crate) fn movzx(&mut self, dst: Reg, src: Reg, bytes: usize) {
        self.rex(false, dst, src, bytes == 1 && (4..8).contains(&src.0));
        self.byte(0x0f);
        self.byte(if bytes == 1 { 0xb6 } else { 0xb7 });
        self.direct(dst, src);
    }

    /// `movsx dst, src8/src16` (`wide`: into 64 bits) or `movsxd dst, src32`.
    pub(crate) fn movsx(&mut self, wide: bool, dst: Reg, src: Reg, bytes: usize) {
        self.rex(wide, dst, src, bytes == 1 && (4..8).contains(&src.0));
        match bytes {
            1 => {
                self.byte(0x0f);
                self.byte(0xbe);
            }
            2 => {
                self.byte(0x0f);
                self.byte(0xbf);
            }
            _ => self.byte(0x63),
        }
        self.direct(dst, src);
    }

    /// `bswap dst` (32 or 64 bits).
    pub(crate) fn bswap(&mut self, wide: bool, dst: Reg) {
        self.rex(wide, Reg(0), dst, false);
        self.byte(0x0f);
        self.byte(0xc8 | (dst.0 & 7));
    }

    /// `cmovcc dst, src` (64-bit).
    pub(crate) fn cmov(&mut self, cond: Cond, dst: Reg, src: Reg) {
        self.rex(true, dst, src, false);
        self.byte(0x0f);
        self.byte(0x40 | cond as u8);
        self.direct(dst, src);
    }

    /// `mov dst, qword [base + disp]`.
    pub(crate) fn load64(&mut self, dst: Reg, base: Reg, disp: i32) {
        self.load(dst, base, disp, 8, false);
    }

    /// `mov qword [base + disp], src`.
    pub(crate) fn store64(&mut self, base: Reg, disp: i32, src: Reg) {
        self.store(base, disp, src, 8);
    }

    /// `jcc label`.
    pub(crate) fn jcc(&mut self, cond: Cond, label: Label) {
        self.byte(0x0f);
        self.byte(0x80 | cond as u8);
        self.rel32(label);
    }

    /// `jmp label`.
    pub(crate) fn jmp(&mut self, label: Label) {
        self.byte(0xe9);
        self.rel32(label);
    }

    /// `jmp qword [base + disp]`.
    pub(crate) fn jmp_mem(&mut self, base: Reg, disp: i32) {
        self.rex(false, Reg(0), base, false);
        self.byte(0xff);
        self.memory(Reg(4), base, disp);
    }

    /// `call reg`.
    pub(crate) fn call_reg(&mut self, target: Reg) {
        self.rex(false, Reg(0), target, false);
        self.byte(0xff);
        self.direct(Reg(2), target);
    }

    /// `push reg`.
    pub(crate) fn push(&mut self, r: Reg) {
        self.rex(false, Reg(0), r, false);
        self.byte(0x50 | (r.0 & 7));
    }

    /// `pop reg`.
    pub(crate) fn pop(&mut self, r: Reg) {
        self.rex(false, Reg(0), r, false);
        self.byte(0x58 | (r.0 & 7));
    }

    /// `rep stosq`: stores rax at rdi, rcx times.
    pub(crate) fn rep_stosq(&mut self) {
        self.code.extend_from_slice(&[0xf3, 0x48, 0xab]);
    }

    /// `ret`.
    pub(crate) fn ret(&mut self) {
        self.byte(0xc3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(f: impl FnOnce(&mut Asm)) -> Vec<u8> {
        let mut a = Asm::default();
        f(&mut a);
        a.finish().unwrap()
    }

    #[test]
    fn encodings_match_the_manual() {
        // Reference encodings from the Intel SDM (and objdump).
        assert_eq!(
            bytes(|a| a.alu_rr(Alu::Add, true, RAX, RDI)),
            [0x48, 0x01, 0xf8]
        );
        assert_eq!(
            bytes(|a| a.alu_rr(Alu::Sub, false, R9, R15)),
            [0x45, 0x29, 0xf9]
        );
        assert_eq!(
            bytes(|a| a.alu_ri(Alu::Cmp, true, RBX, 5)),
            [0x48, 0x83, 0xfb, 5]
        );
        assert_eq!(
            bytes(|a| a.alu_ri(Alu::And, false, R8, 0x1234)),
            [0x41, 0x81, 0xe0, 0x34, 0x12, 0, 0]
        );
        assert_eq!(
            bytes(|a| a.load64(R10, RSP, 16)),
            [0x4c, 0x8b, 0x54, 0x24, 16]
        );
        assert_eq!(bytes(|a| a.load64(RAX, RBP, 0)), [0x48, 0x8b, 0x45, 0]);
        assert_eq!(bytes(|a| a.load64(RAX, R13, 0)), [0x49, 0x8b, 0x45, 0]);
        assert_eq!(bytes(|a| a.load64(RAX, R12, 0)), [0x49, 0x8b, 0x04, 0x24]);
        assert_eq!(bytes(|a| a.store(R11, 0, RSI, 1)), [0x41, 0x88, 0x33]);
        assert_eq!(bytes(|a| a.store(RAX, 0, RDX, 2)), [0x66, 0x89, 0x10]);
        assert_eq!(bytes(|a| a.movzx(RAX, RDI, 1)), [0x40, 0x0f, 0xb6, 0xc7]);
        assert_eq!(bytes(|a| a.movsx(true, RBX, RSI, 4)), [0x48, 0x63, 0xde]);
        assert_eq!(bytes(|a| a.bswap(true, R13)), [0x49, 0x0f, 0xcd]);
        assert_eq!(bytes(|a| a.rol16_8(RDX)), [0x66, 0xc1, 0xc2, 8]);
        assert_eq!(
            bytes(|a| a.imul_rr(true, RBX, R14)),
            [0x49, 0x0f, 0xaf, 0xde]
        );
        assert_eq!(bytes(|a| a.div(true, true, RCX)), [0x48, 0xf7, 0xf9]);
        assert_eq!(
            bytes(|a| a.cmov(Cond::Below, RCX, R12)),
            [0x49, 0x0f, 0x42, 0xcc]
        );
        assert_eq!(
            bytes(|a| a.mov_ri(RAX, u64::MAX)),
            [0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(bytes(|a| a.mov_ri(R9, 7)), [0x41, 0xb9, 7, 0, 0, 0]);
        assert_eq!(bytes(|a| a.jmp_mem(R10, 8)), [0x41, 0xff, 0x62, 8]);
        assert_eq!(bytes(|a| a.call_reg(R11)), [0x41, 0xff, 0xd3]);
        assert_eq!(bytes(|a| a.push(R15)), [0x41, 0x57]);
        assert_eq!(
            bytes(|a| a.lock_cmpxchg(false, R11, 0, RCX)),
            [0xf0, 0x41, 0x0f, 0xb1, 0x0b]
        );
    }

    #[test]
    fn labels_resolve_forwards_and_backwards() {
        let code = bytes(|a| {
            let back = a.label();
            a.bind(back);
            let fwd = a.label();
            a.jmp(fwd);
            a.jcc(Cond::Eq, back);
            a.bind(fwd);
        });
        // jmp +6 (over the 6-byte jcc), then je -11 (back to offset 0 from offset 11).
        assert_eq!(code, [0xe9, 6, 0, 0, 0, 0x0f, 0x84, 0xf5, 0xff, 0xff, 0xff]);
    }
}
