//! rbpf 0.4's load-time checks, with rbpf's error texts (`[Verifier] Error: …`): the verifier
//! the rbpf-compatible VM kinds start with ([`check`], which `default_verifier` runs).
//!
//! rbpf checks less than uBPF does (no field filter, no stack rules, no helper indices, up
//! to 1,000,000 instructions); librbpf's validator still runs on every program the verifier
//! accepts, because both engines rely on it, and what it refuses is reported when the
//! program is run or compiled (`docs/rust-api.md`, "Verification").

use alloc::format;
use alloc::string::String;

use crate::compat::ebpf::{self, Insn};
use crate::compat::lib::{Error, ErrorKind};

/// An rbpf verifier error: `[Verifier] Error: ` and `message`.
#[allow(
    clippy::io_other_error,
    reason = "the no_std Error has `new`, as rbpf's"
)]
fn reject(message: String) -> Error {
    Error::new(ErrorKind::Other, format!("[Verifier] Error: {message}"))
}

/// What rbpf's verifier does with an opcode.
enum Rule {
    /// Nothing beyond the register checks.
    Plain,
    /// A store (dst may be r10).
    Store,
    /// `lddw`: its second slot must have opcode 0; it is a store for the register check
    /// (rbpf's quirk: dst r10 passes).
    LoadDouble,
    /// `le`/`be`: the immediate must be 16, 32 or 64.
    Endian,
    /// A jump: the target must exist and not be an `lddw`'s second slot.
    Jump,
    /// `call`: src 0 is a helper, src 1 a local call whose target must exist.
    Call,
    /// Refused with this message.
    Refused(&'static str),
    /// Not an rbpf opcode.
    Unknown,
}

/// rbpf's rule for `opc`.
fn rule(opc: u8) -> Rule {
    let op = opc & ebpf::BPF_ALU_OP_MASK;
    let by_reg = opc & ebpf::BPF_X != 0;
    match opc & ebpf::BPF_CLS_MASK {
        ebpf::BPF_LD => match opc {
            ebpf::LD_DW_IMM => Rule::LoadDouble,
            ebpf::LD_ABS_B | ebpf::LD_ABS_H | ebpf::LD_ABS_W | ebpf::LD_ABS_DW => Rule::Plain,
            ebpf::LD_IND_B | ebpf::LD_IND_H | ebpf::LD_IND_W | ebpf::LD_IND_DW => Rule::Plain,
            _ => Rule::Unknown,
        },
        ebpf::BPF_LDX if opc & 0xe0 == ebpf::BPF_MEM => Rule::Plain,
        ebpf::BPF_ST if opc & 0xe0 == ebpf::BPF_MEM => Rule::Store,
        ebpf::BPF_STX => match opc & 0xe0 {
            ebpf::BPF_MEM => Rule::Store,
            ebpf::BPF_XADD if matches!(opc, ebpf::ST_W_XADD | ebpf::ST_DW_XADD) => {
                Rule::Refused("XADD instructions are not supported")
            }
            _ => Rule::Unknown,
        },
        class @ (ebpf::BPF_ALU | ebpf::BPF_ALU64) => match op {
            ebpf::BPF_NEG if !by_reg => Rule::Plain,
            ebpf::BPF_END if class == ebpf::BPF_ALU => Rule::Endian,
            ebpf::BPF_ADD
            | ebpf::BPF_SUB
            | ebpf::BPF_MUL
            | ebpf::BPF_DIV
            | ebpf::BPF_OR
            | ebpf::BPF_AND
            | ebpf::BPF_LSH
            | ebpf::BPF_RSH
            | ebpf::BPF_MOD
            | ebpf::BPF_XOR
            | ebpf::BPF_MOV
            | ebpf::BPF_ARSH => Rule::Plain,
            _ => Rule::Unknown,
        },
        class @ (ebpf::BPF_JMP | ebpf::BPF_JMP32) => match op {
            ebpf::BPF_JA if class == ebpf::BPF_JMP && !by_reg => Rule::Jump,
            ebpf::BPF_JEQ
            | ebpf::BPF_JGT
            | ebpf::BPF_JGE
            | ebpf::BPF_JLT
            | ebpf::BPF_JLE
            | ebpf::BPF_JSET
            | ebpf::BPF_JNE
            | ebpf::BPF_JSGT
            | ebpf::BPF_JSGE
            | ebpf::BPF_JSLT
            | ebpf::BPF_JSLE => Rule::Jump,
            _ if opc == ebpf::CALL => Rule::Call,
            _ if opc == ebpf::TAIL_CALL => Rule::Refused("TAIL_CALL is not supported"),
            _ if opc == ebpf::EXIT => Rule::Plain,
            _ => Rule::Unknown,
        },
        _ => Rule::Unknown,
    }
}

/// The slot at `pc` (the caller makes sure it exists).
fn slot(prog: &[u8], pc: usize) -> Insn {
    ebpf::get_insn(prog, pc)
}

/// The length rules, then the last slot's class (rbpf requires a jump-class instruction).
fn check_length(prog: &[u8]) -> Result<(), Error> {
    if !prog.len().is_multiple_of(ebpf::INSN_SIZE) {
        return Err(reject(format!(
            "eBPF program length must be a multiple of {} octets",
            ebpf::INSN_SIZE
        )));
    }
    if prog.len() > ebpf::PROG_MAX_SIZE {
        return Err(reject(format!(
            "eBPF program length limited to {}, here {}",
            ebpf::PROG_MAX_INSNS,
            prog.len() / ebpf::INSN_SIZE
        )));
    }
    let Some(last) = (prog.len() / ebpf::INSN_SIZE).checked_sub(1) else {
        return Err(reject(
            "no program set, call set_program() to load one".into(),
        ));
    };
    if slot(prog, last).opc & ebpf::BPF_CLS_MASK != ebpf::BPF_JMP {
        return Err(reject(
            "program does not end with “EXIT” instruction".into(),
        ));
    }
    Ok(())
}

/// A jump's target: inside the program, and not an `lddw`'s second slot.
fn check_jump(prog: &[u8], insn: &Insn, pc: usize, count: usize) -> Result<(), Error> {
    if insn.off == -1 {
        return Err(reject(format!("infinite loop (insn #{pc})")));
    }
    // pc < 1,000,000 and |off| ≤ 32768: no overflow in i64.
    let target = pc as i64 + 1 + i64::from(insn.off);
    if target < 0 || target >= count as i64 {
        return Err(reject(format!(
            "jump out of code to #{target} (insn #{pc})"
        )));
    }
    if slot(prog, target as usize).opc == 0 {
        return Err(reject(format!(
            "jump to middle of LD_DW at #{target} (insn #{pc})"
        )));
    }
    Ok(())
}

/// The register fields: src ≤ 10; dst ≤ 9, or r10 for a store.
fn check_registers(insn: &Insn, store: bool, pc: usize) -> Result<(), Error> {
    if insn.src > 10 {
        return Err(reject(format!("invalid source register (insn #{pc})")));
    }
    match (insn.dst, store) {
        (0..=9, _) | (10, true) => Ok(()),
        (10, false) => Err(reject(format!(
            "cannot write into register r10 (insn #{pc})"
        ))),
        _ => Err(reject(format!("invalid destination register (insn #{pc})"))),
    }
}

/// rbpf 0.4's verifier: the program's length and last instruction, then each instruction's
/// opcode, operands and jump or call target, with rbpf's texts.
///
/// ```
/// let bad = [0xb7, 0x0a, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
/// let err = rbpf::compat::verifier::check(&bad).unwrap_err();
/// assert_eq!(err.to_string(), "[Verifier] Error: cannot write into register r10 (insn #0)");
/// ```
pub fn check(prog: &[u8]) -> Result<(), Error> {
    check_length(prog)?;
    let count = prog.len() / ebpf::INSN_SIZE;
    let mut pc = 0;
    while pc < count {
        let insn = slot(prog, pc);
        let mut store = false;
        let mut next = pc + 1;
        match rule(insn.opc) {
            Rule::Plain => {}
            Rule::Store => store = true,
            Rule::LoadDouble => {
                store = true;
                // The last slot is a jump-class instruction, so pc + 1 exists.
                if slot(prog, pc + 1).opc != 0 {
                    return Err(reject(format!("incomplete LD_DW instruction (insn #{pc})")));
                }
                next = pc + 2;
            }
            Rule::Endian => {
                if !matches!(insn.imm, 16 | 32 | 64) {
                    return Err(reject(format!(
                        "unsupported argument for LE/BE (insn #{pc})"
                    )));
                }
            }
            Rule::Jump => check_jump(prog, &insn, pc, count)?,
            Rule::Call => match insn.src {
                0 => {}
                1 => {
                    let target = pc as i64 + 1 + i64::from(insn.imm);
                    if target < 0 || target >= count as i64 {
                        return Err(reject(format!(
                            "call out of code to #{target} (insn #{pc})"
                        )));
                    }
                }
                src => {
                    return Err(reject(format!("unsupported call type #{src} (insn #{pc})")));
                }
            },
            Rule::Refused(what) => return Err(reject(format!("{what} (insn #{pc})"))),
            Rule::Unknown => {
                return Err(reject(format!(
                    "unknown eBPF opcode {:#x} (insn #{pc})",
                    insn.opc
                )));
            }
        }
        check_registers(&insn, store, pc)?;
        pc = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    fn text(prog: &[u8]) -> String {
        check(prog).unwrap_err().to_string()
    }

    const EXIT: [u8; 8] = [0x95, 0, 0, 0, 0, 0, 0, 0];

    fn with_exit(first: [u8; 8]) -> Vec<u8> {
        [first, EXIT].concat()
    }

    #[test]
    fn rbpf_texts() {
        let v = "[Verifier] Error: ";
        assert_eq!(
            text(&[]),
            format!("{v}no program set, call set_program() to load one")
        );
        assert_eq!(
            text(&[0; 4]),
            format!("{v}eBPF program length must be a multiple of 8 octets")
        );
        assert_eq!(
            text(&[0xb7, 0, 0, 0, 0, 0, 0, 0]),
            format!("{v}program does not end with “EXIT” instruction")
        );
        assert_eq!(
            text(&with_exit([0x05, 0, 0xff, 0xff, 0, 0, 0, 0])),
            format!("{v}infinite loop (insn #0)")
        );
        assert_eq!(
            text(&with_exit([0x05, 0, 2, 0, 0, 0, 0, 0])),
            format!("{v}jump out of code to #3 (insn #0)")
        );
        assert_eq!(
            text(&with_exit([0xdc, 0, 0, 0, 48, 0, 0, 0])),
            format!("{v}unsupported argument for LE/BE (insn #0)")
        );
        assert_eq!(
            text(&with_exit([0x85, 0x20, 0, 0, 1, 0, 0, 0])),
            format!("{v}unsupported call type #2 (insn #0)")
        );
        assert_eq!(
            text(&with_exit([0x85, 0x10, 0, 0, 1, 0, 0, 0])),
            format!("{v}call out of code to #2 (insn #0)")
        );
        assert_eq!(
            text(&with_exit([0xbf, 0xb0, 0, 0, 0, 0, 0, 0])),
            format!("{v}invalid source register (insn #0)")
        );
        assert_eq!(
            text(&with_exit([0xbf, 0x0b, 0, 0, 0, 0, 0, 0])),
            format!("{v}invalid destination register (insn #0)")
        );
        assert_eq!(
            text(&with_exit([0x06, 0, 0, 0, 0, 0, 0, 0])),
            format!("{v}unknown eBPF opcode 0x6 (insn #0)")
        );
        assert_eq!(
            text(&with_exit([0xdb, 0x01, 0, 0, 0, 0, 0, 0])),
            format!("{v}XADD instructions are not supported (insn #0)")
        );
        // lddw then a jump into its second slot.
        let prog = [
            [0x05, 0, 1, 0, 0, 0, 0, 0],
            [0x18, 0, 0, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            EXIT,
        ]
        .concat();
        assert_eq!(
            text(&prog),
            format!("{v}jump to middle of LD_DW at #2 (insn #0)")
        );
        // What rbpf accepts and uBPF refuses: a register division with an immediate, a store
        // with dst r10 through lddw.
        check(&with_exit([0x3f, 0x10, 0, 0, 0x99, 0x99, 0x99, 0x99])).unwrap();
        check(&[[0x18, 0x0a, 0, 0, 0, 0, 0, 0], [0; 8], EXIT].concat()).unwrap();
    }
}
