//! Loop-invariant inputs: registers a loop reads but never writes, found per loop header so
//! that the translator can pin their values before the loop (`docs/performance.md`, "Pinned
//! loop inputs").
//!
//! Why: Cranelift's e-graph rematerialises every `add`, `sub`, `and`, `or` or `xor` with a
//! constant operand in each block that uses it, to save a register. When such a value is
//! computed before a loop and used inside it, the rematerialised copy lands in the loop, and
//! every value computed from it follows, so the loop recomputes an invariant chain on every
//! iteration (`n & 15`, `<< 3`, `8 - x` in a matrix walk: eight extra instructions per
//! iteration). Passing the value through an operation the e-graph treats as opaque, once on
//! the way into the loop, leaves the computation where the program put it.

use alloc::vec;
use alloc::vec::Vec;

use crate::isa::{Insn, atomic, call_kind, class, jmp, mode, op, source};

use super::cfg;

/// For each slot: the registers (bit `r` for r0..r9) that the loop whose header is that slot
/// reads and never writes, or 0 when no backward jump targets the slot. A loop is the slots
/// from its header to its last backward jump there. Calls and stores count as what they are;
/// a call writes r0..r5. Skipped: loops with a local call (its callee may run anything),
/// loops that jump back to before their header (the header is not where the cycle starts),
/// and loops longer than [`MAX_LOOP_SLOTS`].
pub(crate) fn loop_inputs(insns: &[Insn]) -> Vec<u16> {
    let last_latch = cfg::last_latches(insns);
    let mut inputs = vec![0u16; insns.len() + 1];
    for (head, latch) in last_latch.iter().enumerate() {
        let Some(latch) = *latch else { continue };
        if latch - head >= MAX_LOOP_SLOTS {
            continue;
        }
        let (mut read, mut written) = (0u16, 0u16);
        let mut closed = true;
        for (pc, insn) in insns.iter().enumerate().take(latch + 1).skip(head) {
            let (r, w) = effects(insn);
            read |= r;
            written |= w;
            closed &= !(insn.opc == op::CALL && insn.src == call_kind::LOCAL);
            // A jump from the loop to before its header: the slots before the header are
            // part of a cycle through it (clang places some loops' first blocks before the
            // block its back edges target), and the slot that falls into the header may run
            // on every iteration.
            closed &= cfg::jump_target(pc, insn).is_none_or(|t| t >= head as i64);
        }
        if closed {
            inputs[head] = read & !written & 0x3ff;
        }
    }
    inputs
}

/// Longest loop analysed, in slots: pinning pays in small hot loops, and the analysis stays
/// linear in the program's length.
const MAX_LOOP_SLOTS: usize = 256;

/// `(read, written)` register masks of one instruction: a superset of what it may write,
/// and every register it names as an operand it reads.
fn effects(insn: &Insn) -> (u16, u16) {
    let bit = |r: u8| if r < 16 { 1u16 << r } else { 0 };
    let (dst, src) = (bit(insn.dst), bit(insn.src));
    let x = insn.opc & source::X != 0;
    match insn.class() {
        class::ALU | class::ALU64 => (dst | if x { src } else { 0 }, dst),
        class::LD => (0, dst),
        class::LDX => (src, dst),
        class::ST => (dst, 0),
        class::STX if insn.opc & 0xe0 == mode::ATOMIC => {
            // A fetching atomic writes its source register; compare-exchange writes r0.
            let fetch = insn.imm & atomic::FETCH != 0;
            let cmpxchg = insn.imm == atomic::CMPXCHG;
            (
                dst | src | if cmpxchg { 1 } else { 0 },
                if fetch { src } else { 0 } | if cmpxchg { 1 } else { 0 },
            )
        }
        class::STX => (dst | src, 0),
        class::JMP | class::JMP32 => match insn.opc & 0xf0 {
            // Helper calls read r1..r5 and leave r0..r5 changed.
            jmp::CALL => (0x3e, 0x3f),
            jmp::EXIT => (1, 0),
            jmp::JA => (0, 0),
            _ => (dst | if x { src } else { 0 }, 0),
        },
        _ => (0, 0x3ff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_input_is_read_inside_and_never_written() {
        // r2 = r1 & 15; loop: r3 += r2; r4 += 1; if r4 < r5 goto loop; exit
        let insns = [
            Insn::new(0xbf, 2, 1, 0, 0),
            Insn::new(0x57, 2, 0, 0, 15),
            Insn::new(0x0f, 3, 2, 0, 0),
            Insn::new(0x07, 4, 0, 0, 1),
            Insn::new(0xad, 4, 5, -3, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        let inputs = loop_inputs(&insns);
        assert_eq!(inputs[2], (1 << 2) | (1 << 5));
        assert!(inputs.iter().enumerate().all(|(pc, &m)| pc == 2 || m == 0));
    }

    #[test]
    fn calls_and_fetching_atomics_write_registers() {
        // loop: r0 = atomic fetch_add(r1 + 0, r2); call 1; if r6 != 0 goto loop
        let insns = [
            Insn::new(0xdb, 1, 2, 0, atomic::FETCH),
            Insn::new(0x85, 0, 0, 0, 1),
            Insn::new(0x55, 6, 0, -3, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        // r1 and r2 are written by the call (r1..r5); r6 stays.
        assert_eq!(loop_inputs(&insns)[0], 1 << 6);
    }

    #[test]
    fn a_header_inside_a_larger_cycle_is_not_pinned() {
        // top: r2 += r6; mid: r3 += r6; if r3 < r7 goto mid; if r2 < r7 goto top
        // The back edge to `top` lies inside `mid`'s span: `top` falls into `mid` on every
        // outer iteration, so only `top` (whose span holds no jump before it) is a header.
        let insns = [
            Insn::new(0x0f, 2, 6, 0, 0),
            Insn::new(0x0f, 3, 6, 0, 0),
            Insn::new(0xad, 3, 7, -2, 0),
            Insn::new(0xad, 2, 7, -4, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        let inputs = loop_inputs(&insns);
        assert_eq!(inputs[0], (1 << 6) | (1 << 7));
        assert_eq!(inputs[1], (1 << 6) | (1 << 7));
        // The outer back edge inside the inner loop's span: slot 1 is not where the cycle
        // through it starts.
        let tangled = [
            Insn::new(0x0f, 2, 6, 0, 0),
            Insn::new(0x0f, 3, 6, 0, 0),
            Insn::new(0xad, 2, 7, -3, 0), // to slot 0, from inside [1, 3]
            Insn::new(0xad, 3, 7, -3, 0), // to slot 1: its last latch
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        assert_eq!(loop_inputs(&tangled)[1], 0);
    }
}
