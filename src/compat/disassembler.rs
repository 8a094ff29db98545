//! rbpf's `rbpf::disassembler` module: a high-level view of a program ([`HLInsn`], one per
//! instruction, `lddw` merged) with rbpf's mnemonics and description format, and
//! [`disassemble`], which prints it.
//!
//! librbpf's own disassembler ([`crate::tools::disasm`]) prints the bpf_conformance syntax and is
//! what the CLI uses; this module reproduces rbpf's text (`add64 r1, 0x605`,
//! `ldxw r0, [r1+0x4]`, `jeq r1, 0x3, +0x2`).

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use core::fmt::Write as _;

use crate::compat::ebpf::{self, Insn};

/// One instruction with rbpf's mnemonic (`name`) and description (`desc`); `imm` is 64-bit so
/// that an `lddw` carries its whole value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HLInsn {
    /// The opcode byte.
    pub opc: u8,
    /// rbpf's mnemonic (`add64`, `ldxw`, `jeq`, …).
    pub name: String,
    /// The whole instruction in rbpf's syntax.
    pub desc: String,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    /// Offset.
    pub off: i16,
    /// Immediate (an `lddw`'s full 64-bit value).
    pub imm: i64,
}

/// rbpf's names of the ALU operations, by the operation bits.
fn alu_name(op: u8) -> Option<&'static str> {
    Some(match op {
        ebpf::BPF_ADD => "add",
        ebpf::BPF_SUB => "sub",
        ebpf::BPF_MUL => "mul",
        ebpf::BPF_DIV => "div",
        ebpf::BPF_OR => "or",
        ebpf::BPF_AND => "and",
        ebpf::BPF_LSH => "lsh",
        ebpf::BPF_RSH => "rsh",
        ebpf::BPF_NEG => "neg",
        ebpf::BPF_MOD => "mod",
        ebpf::BPF_XOR => "xor",
        ebpf::BPF_MOV => "mov",
        ebpf::BPF_ARSH => "arsh",
        _ => return None,
    })
}

/// rbpf's names of the conditional jumps, by the operation bits.
fn jump_name(op: u8) -> Option<&'static str> {
    Some(match op {
        ebpf::BPF_JEQ => "jeq",
        ebpf::BPF_JGT => "jgt",
        ebpf::BPF_JGE => "jge",
        ebpf::BPF_JLT => "jlt",
        ebpf::BPF_JLE => "jle",
        ebpf::BPF_JSET => "jset",
        ebpf::BPF_JNE => "jne",
        ebpf::BPF_JSGT => "jsgt",
        ebpf::BPF_JSGE => "jsge",
        ebpf::BPF_JSLT => "jslt",
        ebpf::BPF_JSLE => "jsle",
        _ => return None,
    })
}

/// The size suffix rbpf uses for loads and stores.
fn size_name(opc: u8) -> &'static str {
    match opc & 0x18 {
        ebpf::BPF_B => "b",
        ebpf::BPF_H => "h",
        ebpf::BPF_W => "w",
        _ => "dw",
    }
}

/// An offset as rbpf prints it: `+0x…` or `-0x…` (magnitude in hex, `-0x8000` included).
fn signed(off: i16) -> String {
    if off >= 0 {
        format!("+{off:#x}")
    } else {
        format!("-{:#x}", -i32::from(off))
    }
}

/// rbpf's mnemonic and description of `insn` (`next` is the second slot of an `lddw`), or
/// `None` for an opcode rbpf does not name.
fn describe(insn: &Insn, next: Option<&Insn>) -> Option<(String, String, i64)> {
    let (d, s, off, imm) = (insn.dst, insn.src, insn.off, insn.imm);
    let class = insn.opc & ebpf::BPF_CLS_MASK;
    let op = insn.opc & ebpf::BPF_ALU_OP_MASK;
    let by_reg = insn.opc & ebpf::BPF_X != 0;
    let plain = |name: String, desc: String| Some((name, desc, i64::from(imm)));
    match insn.opc {
        ebpf::LD_DW_IMM => {
            let high = next.map_or(0, |n| n.imm);
            let value = (u64::from(imm as u32) | (u64::from(high as u32) << 32)) as i64;
            let name = "lddw".to_owned();
            let desc = format!("lddw r{d}, {value:#x}");
            return Some((name, desc, value));
        }
        ebpf::EXIT => return plain("exit".into(), "exit".into()),
        ebpf::CALL => {
            // rbpf: src 1 is a local call (`callx`); other sources have no name.
            let name = match s {
                0 => "call",
                1 => "callx",
                _ => return None,
            };
            return plain(name.into(), format!("{name} {imm:#x}"));
        }
        ebpf::TAIL_CALL => return plain("tail_call".into(), "tail_call".into()),
        ebpf::JA => {
            return plain("ja".into(), format!("ja {}", signed(off)));
        }
        ebpf::LE | ebpf::BE => {
            let name = if insn.opc == ebpf::LE { "le" } else { "be" };
            return plain(name.into(), format!("{name}{imm} r{d}"));
        }
        _ => {}
    }
    match class {
        ebpf::BPF_LD => {
            let mode = insn.opc & 0xe0;
            let size = size_name(insn.opc);
            match mode {
                ebpf::BPF_ABS => plain(format!("ldabs{size}"), format!("ldabs{size} {imm:#x}")),
                ebpf::BPF_IND => plain(
                    format!("ldind{size}"),
                    format!("ldind{size} r{s}, {imm:#x}"),
                ),
                _ => None,
            }
        }
        ebpf::BPF_LDX if insn.opc & 0xe0 == ebpf::BPF_MEM => {
            let name = format!("ldx{}", size_name(insn.opc));
            let desc = format!("{name} r{d}, [r{s}{}]", signed(off));
            plain(name, desc)
        }
        ebpf::BPF_ST if insn.opc & 0xe0 == ebpf::BPF_MEM => {
            let name = format!("st{}", size_name(insn.opc));
            let desc = format!("{name} [r{d}{}], {imm:#x}", signed(off));
            plain(name, desc)
        }
        ebpf::BPF_STX => {
            let name = match (insn.opc & 0xe0, insn.opc & 0x18) {
                (ebpf::BPF_MEM, _) => format!("stx{}", size_name(insn.opc)),
                (ebpf::BPF_ATOMIC, ebpf::BPF_W) => "stxxaddw".to_owned(),
                (ebpf::BPF_ATOMIC, ebpf::BPF_DW) => "stxxadddw".to_owned(),
                _ => return None,
            };
            let desc = format!("{name} [r{d}{}], r{s}", signed(off));
            plain(name, desc)
        }
        ebpf::BPF_ALU | ebpf::BPF_ALU64 => {
            let width = if class == ebpf::BPF_ALU { "32" } else { "64" };
            let name = format!("{}{width}", alu_name(op)?);
            let desc = if op == ebpf::BPF_NEG {
                format!("{name} r{d}")
            } else if by_reg {
                format!("{name} r{d}, r{s}")
            } else {
                format!("{name} r{d}, {imm:#x}")
            };
            plain(name, desc)
        }
        ebpf::BPF_JMP | ebpf::BPF_JMP32 => {
            let suffix = if class == ebpf::BPF_JMP32 { "32" } else { "" };
            let name = format!("{}{suffix}", jump_name(op)?);
            let desc = if by_reg {
                format!("{name} r{d}, r{s}, {}", signed(off))
            } else {
                format!("{name} r{d}, {imm:#x}, {}", signed(off))
            };
            plain(name, desc)
        }
        _ => None,
    }
}

/// The instructions of `prog`, one [`HLInsn`] per instruction (an `lddw` and its second slot
/// make one). An opcode rbpf does not name gives `name` `"unknown"` (rbpf panics instead).
///
/// # Panics
/// When the length of `prog` is not a multiple of 8, as rbpf's does.
///
/// ```
/// let prog = &[
///     0x18, 0x00, 0x00, 0x00, 0x88, 0x77, 0x66, 0x55,
///     0x00, 0x00, 0x00, 0x00, 0x44, 0x33, 0x22, 0x11,
///     0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
/// ];
/// let v = rbpf::disassembler::to_insn_vec(prog);
/// assert_eq!(v[0].desc, "lddw r0, 0x1122334455667788");
/// assert_eq!(v[0].imm, 0x1122334455667788);
/// assert_eq!(v[1].name, "exit");
/// ```
pub fn to_insn_vec(prog: &[u8]) -> Vec<HLInsn> {
    let insns = ebpf::to_insn_vec(prog);
    let mut out = Vec::with_capacity(insns.len());
    let mut pc = 0;
    while let Some(insn) = insns.get(pc) {
        let next = insns.get(pc + 1);
        let (name, desc, imm) = describe(insn, next).unwrap_or_else(|| {
            (
                "unknown".to_owned(),
                format!("unknown opcode {:#04x}", insn.opc),
                i64::from(insn.imm),
            )
        });
        out.push(HLInsn {
            opc: insn.opc,
            name,
            desc,
            dst: insn.dst,
            src: insn.src,
            off: insn.off,
            imm,
        });
        pc += if insn.opc == ebpf::LD_DW_IMM { 2 } else { 1 };
    }
    out
}

/// `prog` in rbpf's syntax, one instruction per line.
pub fn to_text(prog: &[u8]) -> String {
    let mut text = String::new();
    for insn in to_insn_vec(prog) {
        let _ = writeln!(text, "{}", insn.desc);
    }
    text
}

/// Prints `prog` in rbpf's syntax to standard output, one instruction per line.
#[cfg(feature = "std")]
pub fn disassemble(prog: &[u8]) {
    print!("{}", to_text(prog));
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    #[test]
    fn rbpf_descriptions() {
        let code = crate::compat::assembler::assemble(
            "add64 r1, 0x605
             mov32 r2, 0x32
             mov64 r1, r0
             be16 r0
             neg64 r2
             add64 r1, -0x1
             ldxh r4, [r1+0xc]
             stw [r1+0x8], 0x2
             stxdw [r10-0x8], r1
             jeq r1, 0x3, +0x2
             jne r1, r2, -0x1
             ja -0x3
             lddw r0, 0x1122334455667788
             call 0x1
             exit",
        )
        .unwrap();
        let text = to_text(&code);
        assert_eq!(
            text,
            "add64 r1, 0x605\nmov32 r2, 0x32\nmov64 r1, r0\nbe16 r0\nneg64 r2\n\
             add64 r1, 0xffffffff\nldxh r4, [r1+0xc]\nstw [r1+0x8], 0x2\n\
             stxdw [r10-0x8], r1\njeq r1, 0x3, +0x2\njne r1, r2, -0x1\nja -0x3\n\
             lddw r0, 0x1122334455667788\ncall 0x1\nexit\n"
        );
        // The most negative offsets, and rbpf's local call.
        let code = [
            [0x62, 0x01, 0x00, 0x80, 0x01, 0, 0, 0],
            [0x79, 0x01, 0x00, 0x80, 0, 0, 0, 0],
            [0x1e, 0x21, 0x00, 0x80, 0, 0, 0, 0],
            [0x05, 0x00, 0x00, 0x80, 0, 0, 0, 0],
            [0x85, 0x10, 0, 0, 3, 0, 0, 0],
        ]
        .concat();
        assert_eq!(
            to_text(&code),
            "stw [r1-0x8000], 0x1\nldxdw r1, [r0-0x8000]\njeq32 r1, r2, -0x8000\n\
             ja -0x8000\ncallx 0x3\n"
        );
        let unknown = to_insn_vec(&[0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(unknown[0].name, "unknown");
    }
}
