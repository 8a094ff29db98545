//! Disassembler: instruction slots back to the conformance assembly syntax that
//! [`crate::tools::asm`] reads.
//!
//! [`disassemble`] names jump and local-call targets with labels (`L7:` for jumps, `fn_12:`
//! for functions) and is exact: assembling its output gives back the same bytes. A slot that
//! the syntax cannot express (unknown opcode, a non-zero field the instruction does not use,
//! a broken `lddw` pair) is written as a `.raw 0x…` directive, followed by a comment saying
//! what it would be. [`format_insn`] formats one instruction with numeric jump offsets.
//!
//! ```
//! use rbpf::{asm, disasm};
//! let prog = asm::assemble("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 10, loop\nexit").unwrap();
//! let text = disasm::disassemble(&prog);
//! assert_eq!(text, "mov %r0, 0\nL1:\nadd %r0, 1\njlt %r0, 10, L1\nexit\n");
//! assert_eq!(asm::assemble(&text).unwrap(), prog);
//! ```

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use alloc::collections::BTreeMap;
use core::fmt::Write as _;

use crate::isa::{self, Insn, InsnSpec, Operands, Variant, call_kind, op};

/// Which fields of an instruction its syntax shows.
#[derive(Clone, Copy, Default)]
struct Used {
    dst: bool,
    src: bool,
    off: bool,
    imm: bool,
}

fn used_fields(spec: &InsnSpec) -> Used {
    let mut used = match spec.operands {
        Operands::None => Used::default(),
        Operands::Dst | Operands::CallReg => Used {
            dst: true,
            ..Used::default()
        },
        Operands::DstSrc => Used {
            dst: true,
            src: true,
            ..Used::default()
        },
        Operands::DstImm | Operands::DstImm64 => Used {
            dst: true,
            imm: true,
            ..Used::default()
        },
        Operands::DstMem | Operands::MemSrc | Operands::CondReg => Used {
            dst: true,
            src: true,
            off: true,
            imm: false,
        },
        Operands::MemImm | Operands::CondImm => Used {
            dst: true,
            src: false,
            off: true,
            imm: true,
        },
        Operands::Jump => Used {
            off: true,
            ..Used::default()
        },
        Operands::Jump32 | Operands::CallImm | Operands::CallLocal | Operands::PacketAbs => Used {
            imm: true,
            ..Used::default()
        },
        Operands::PacketInd => Used {
            src: true,
            imm: true,
            ..Used::default()
        },
    };
    match spec.variant {
        Variant::Any => {}
        Variant::Off(_) => used.off = true,
        Variant::Imm(_) => used.imm = true,
        Variant::Src(_) => used.src = true,
    }
    used
}

/// The non-zero fields an instruction's syntax cannot show, as `name=value` text.
fn unused_fields(insn: &Insn, spec: &InsnSpec) -> Vec<String> {
    let used = used_fields(spec);
    let mut extra = Vec::new();
    if !used.dst && insn.dst != 0 {
        extra.push(format!("dst={}", insn.dst));
    }
    if !used.src && insn.src != 0 {
        extra.push(format!("src={}", insn.src));
    }
    if !used.off && insn.off != 0 {
        extra.push(format!("off={}", insn.off));
    }
    if !used.imm && insn.imm != 0 {
        extra.push(format!("imm={}", insn.imm));
    }
    extra
}

fn reg(n: u8) -> String {
    format!("%r{n}")
}

/// Small immediates in decimal, large ones as unsigned 32-bit hex (both read back the same).
fn imm(value: i32) -> String {
    if (-0xffff..=0xffff).contains(&value) {
        value.to_string()
    } else {
        format!("{:#x}", value as u32)
    }
}

fn mem(base: u8, off: i16) -> String {
    if off == 0 {
        format!("[%r{base}]")
    } else {
        format!("[%r{base}{off:+}]")
    }
}

fn lddw_value(first: &Insn, second: &Insn) -> u64 {
    u64::from(first.imm as u32) | (u64::from(second.imm as u32) << 32)
}

/// Whether `second` is a well-formed second slot of an `lddw`.
fn is_lddw_tail(second: &Insn) -> bool {
    second.opc == 0 && second.dst == 0 && second.src == 0 && second.off == 0
}

/// How a jump or call target is written: numerically, or with a label.
trait Target {
    fn write(&self, pc: usize, delta: i64) -> String;
}

struct Numeric;

impl Target for Numeric {
    fn write(&self, _pc: usize, delta: i64) -> String {
        format!("{delta:+}")
    }
}

struct Labels<'a>(&'a BTreeMap<usize, String>);

impl Target for Labels<'_> {
    fn write(&self, pc: usize, delta: i64) -> String {
        target_slot(pc, delta)
            .and_then(|slot| self.0.get(&slot))
            .cloned()
            .unwrap_or_else(|| format!("{delta:+}"))
    }
}

fn target_slot(pc: usize, delta: i64) -> Option<usize> {
    let pc = i64::try_from(pc).ok()?;
    usize::try_from(pc.checked_add(1)?.checked_add(delta)?).ok()
}

/// The text of the instruction at `insns[pc]`, and how many slots it covers (2 for `lddw`).
fn format_at(insns: &[Insn], pc: usize, target: &dyn Target) -> (String, usize) {
    let insn = &insns[pc];
    let raw = |why: &str| format!(".raw {:#018x} # {why}", insn.to_u64());
    let Some(spec) = isa::spec_of(insn) else {
        if insn.opc == op::CALL && insn.src == call_kind::BTF && insn.dst == 0 && insn.off == 0 {
            return (format!("call runtime {}", insn.imm), 1);
        }
        return (
            raw(&format!(
                "unknown instruction: opcode {:#04x}, dst {}, src {}, off {}, imm {}",
                insn.opc, insn.dst, insn.src, insn.off, insn.imm
            )),
            1,
        );
    };
    let text = match spec.operands {
        Operands::None => spec.mnemonic.to_owned(),
        Operands::Dst => format!("{} {}", spec.mnemonic, reg(insn.dst)),
        Operands::CallReg => format!("call {}", reg(insn.dst)),
        Operands::DstSrc => format!("{} {}, {}", spec.mnemonic, reg(insn.dst), reg(insn.src)),
        Operands::DstImm => format!("{} {}, {}", spec.mnemonic, reg(insn.dst), imm(insn.imm)),
        Operands::DstImm64 => match insns.get(pc + 1) {
            Some(second) if is_lddw_tail(second) => {
                let extra = unused_fields(insn, spec);
                if !extra.is_empty() {
                    return (raw(&format!("lddw with {}", extra.join(", "))), 1);
                }
                let value = lddw_value(insn, second);
                return (format!("lddw {}, {value:#x}", reg(insn.dst)), 2);
            }
            _ => return (raw("lddw without its second slot"), 1),
        },
        Operands::DstMem => format!(
            "{} {}, {}",
            spec.mnemonic,
            reg(insn.dst),
            mem(insn.src, insn.off)
        ),
        Operands::MemImm => format!(
            "{} {}, {}",
            spec.mnemonic,
            mem(insn.dst, insn.off),
            imm(insn.imm)
        ),
        Operands::MemSrc => format!(
            "{} {}, {}",
            spec.mnemonic,
            mem(insn.dst, insn.off),
            reg(insn.src)
        ),
        Operands::Jump => format!(
            "{} {}",
            spec.mnemonic,
            target.write(pc, i64::from(insn.off))
        ),
        Operands::Jump32 | Operands::CallLocal => format!(
            "{} {}",
            spec.mnemonic,
            target.write(pc, i64::from(insn.imm))
        ),
        Operands::CondImm => format!(
            "{} {}, {}, {}",
            spec.mnemonic,
            reg(insn.dst),
            imm(insn.imm),
            target.write(pc, i64::from(insn.off))
        ),
        Operands::CondReg => format!(
            "{} {}, {}, {}",
            spec.mnemonic,
            reg(insn.dst),
            reg(insn.src),
            target.write(pc, i64::from(insn.off))
        ),
        Operands::CallImm => format!("call {}", insn.imm),
        Operands::PacketAbs => format!("{} {}", spec.mnemonic, imm(insn.imm)),
        Operands::PacketInd => format!("{} {}, {}", spec.mnemonic, reg(insn.src), imm(insn.imm)),
    };
    let extra = unused_fields(insn, spec);
    if extra.is_empty() {
        (text, 1)
    } else {
        (raw(&format!("{text} with {}", extra.join(", "))), 1)
    }
}

/// Formats one instruction with numeric jump offsets (`ja +3`). `next` is the following slot,
/// needed to print an `lddw`'s full 64-bit value.
pub fn format_insn(insn: &Insn, next: Option<&Insn>) -> String {
    let pair: Vec<Insn> = core::iter::once(*insn).chain(next.copied()).collect();
    format_at(&pair, 0, &Numeric).0
}

/// The slots where instructions start (the second slot of an `lddw` is not one).
fn instruction_starts(insns: &[Insn]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(insns.len());
    let mut pc = 0;
    while pc < insns.len() {
        starts.push(pc);
        pc += format_at(insns, pc, &Numeric).1;
    }
    starts
}

/// Disassembles a whole program, one instruction per line, with labels at jump and call
/// targets.
pub fn disassemble(insns: &[Insn]) -> String {
    let starts = instruction_starts(insns);
    let mut is_start = vec![false; insns.len() + 1];
    for &s in &starts {
        is_start[s] = true;
    }
    // The slot just past the end may be labelled too.
    is_start[insns.len()] = true;

    let mut labels: BTreeMap<usize, String> = BTreeMap::new();
    for &pc in &starts {
        let insn = &insns[pc];
        let Some(spec) = isa::spec_of(insn) else {
            continue;
        };
        if !unused_fields(insn, spec).is_empty() {
            continue;
        }
        let (delta, call) = match spec.operands {
            Operands::Jump | Operands::CondImm | Operands::CondReg => (i64::from(insn.off), false),
            Operands::Jump32 => (i64::from(insn.imm), false),
            Operands::CallLocal => (i64::from(insn.imm), true),
            _ => continue,
        };
        let Some(slot) = target_slot(pc, delta).filter(|&s| is_start.get(s) == Some(&true)) else {
            continue;
        };
        if call {
            labels.insert(slot, format!("fn_{slot}"));
        } else {
            labels.entry(slot).or_insert_with(|| format!("L{slot}"));
        }
    }

    let mut out = String::new();
    let target = Labels(&labels);
    for &pc in &starts {
        if let Some(label) = labels.get(&pc) {
            let _ = writeln!(out, "{label}:");
        }
        let _ = writeln!(out, "{}", format_at(insns, pc, &target).0);
    }
    if let Some(label) = labels.get(&insns.len()) {
        let _ = writeln!(out, "{label}:");
    }
    out
}

/// Disassembles little-endian bytecode; `None` if its length is not a multiple of 8.
pub fn disassemble_bytes(bytes: &[u8]) -> Option<String> {
    isa::decode_slots(bytes).map(|insns| disassemble(&insns))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;
    use crate::tools::asm::assemble;

    fn round_trip(text: &str) -> String {
        let prog = assemble(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let out = disassemble(&prog);
        assert_eq!(
            assemble(&out).unwrap_or_else(|e| panic!("{out}: {e}")),
            prog,
            "{out}"
        );
        out
    }

    #[test]
    fn every_table_row_round_trips() {
        for spec in isa::INSN_TABLE {
            let mut insn = Insn::new(spec.opcode, 3, 4, 5, 6);
            let used = used_fields(spec);
            if !used.dst {
                insn.dst = 0;
            }
            if !used.src {
                insn.src = 0;
            }
            if !used.off {
                insn.off = 0;
            }
            if !used.imm {
                insn.imm = 0;
            }
            match spec.variant {
                Variant::Any => {}
                Variant::Off(v) => insn.off = v,
                Variant::Imm(v) => insn.imm = v,
                Variant::Src(v) => insn.src = v,
            }
            let prog = if spec.operands == Operands::DstImm64 {
                vec![insn, Insn::new(0, 0, 0, 0, -7)]
            } else {
                vec![insn]
            };
            let text = disassemble(&prog);
            assert_eq!(assemble(&text).unwrap(), prog, "{}: {text}", spec.mnemonic);
        }
    }

    #[test]
    fn formats() {
        let f = |i: Insn| format_insn(&i, None);
        assert_eq!(f(Insn::new(0x79, 0, 1, 2, 0)), "ldxdw %r0, [%r1+2]");
        assert_eq!(f(Insn::new(0x7b, 10, 1, -8, 0)), "stxdw [%r10-8], %r1");
        assert_eq!(f(Insn::new(0x62, 1, 0, 0, -1)), "stw [%r1], -1");
        assert_eq!(
            f(Insn::new(0xb4, 0, 0, 0, 0x12345678)),
            "mov32 %r0, 0x12345678"
        );
        assert_eq!(f(Insn::new(0x05, 0, 0, -3, 0)), "ja -3");
        assert_eq!(f(Insn::new(0x8d, 2, 0, 0, 0)), "call %r2");
        assert_eq!(f(Insn::new(0x85, 0, 0, 0, 5)), "call 5");
        assert_eq!(f(Insn::new(0x85, 0, 1, 0, 3)), "call local +3");
        assert_eq!(f(Insn::new(0x85, 0, 2, 0, 3)), "call runtime 3");
        assert_eq!(f(Insn::new(0x30, 0, 0, 0, 3)), "ldabsb 3");
        assert_eq!(f(Insn::new(0x20, 0, 0, 0, -4)), "ldabsw -4");
        assert_eq!(f(Insn::new(0x58, 0, 7, 0, 14)), "ldinddw %r7, 14");
        assert_eq!(
            f(Insn::new(0xdb, 1, 2, 0, 0x51)),
            "lock fetch and [%r1], %r2"
        );
        assert_eq!(
            format_insn(
                &Insn::new(0x18, 1, 0, 0, 0x55667788),
                Some(&Insn::new(0, 0, 0, 0, 0x11223344))
            ),
            "lddw %r1, 0x1122334455667788"
        );
    }

    #[test]
    fn inexpressible_slots_become_raw_directives() {
        let prog = vec![
            Insn::new(0x07, 0, 0, 1, 1), // unused offset
            Insn::new(0x8f, 0, 0, 0, 0), // unknown opcode
            Insn::new(0x18, 0, 0, 0, 1), // lddw …
            Insn::new(0x95, 0, 0, 0, 0), // … without a second slot
            Insn::new(0x3f, 1, 2, 2, 0), // div with offset 2
        ];
        let text = disassemble(&prog);
        assert!(
            text.starts_with(".raw 0x0000000100010007 # add %r0, 1 with off=1\n"),
            "{text}"
        );
        assert!(text.contains("unknown instruction: opcode 0x8f"), "{text}");
        assert!(text.contains("lddw without its second slot"), "{text}");
        // A packet load with a reserved field set stays exact too.
        let prog = vec![Insn::new(0x28, 1, 0, 0, 2), Insn::new(0x40, 0, 2, 3, 2)];
        let text = disassemble(&prog);
        assert!(text.contains("# ldabsh 2 with dst=1"), "{text}");
        assert!(text.contains("# ldindw %r2, 2 with off=3"), "{text}");
        assert_eq!(assemble(&text).unwrap(), prog);
        assert_eq!(assemble(&text).unwrap(), prog);
    }

    #[test]
    fn labels_for_jumps_and_calls() {
        let out = round_trip(
            "call local f\nja +0\nlddw %r0, 1\njeq %r0, 1, end\nexit\nf:\nmov %r0, 2\nexit\nend:",
        );
        assert_eq!(
            out,
            "call local fn_6\nja L2\nL2:\nlddw %r0, 0x1\njeq %r0, 1, L8\nexit\nfn_6:\nmov %r0, 2\nexit\nL8:\n"
        );
        // Targets outside the program or inside an lddw stay numeric.
        let out = round_trip("ja +5\nja +1\nlddw %r1, 2\nexit");
        assert_eq!(out, "ja +5\nja +1\nlddw %r1, 0x2\nexit\n");
    }

    #[test]
    fn bytes_entry_point() {
        assert_eq!(
            disassemble_bytes(&[0x95, 0, 0, 0, 0, 0, 0, 0]).as_deref(),
            Some("exit\n")
        );
        assert_eq!(disassemble_bytes(&[0x95]), None);
    }
}
