//! Loop rotation: an unconditional backward jump (`ja`) to a small block that ends in a
//! conditional jump is translated as a copy of that block, so each iteration's back edge is
//! the conditional jump itself and the loop runs no jump to its test.
//!
//! Clang lays loops out as `body; goto test` or `test: ...; if cond goto body` entered from a
//! `goto` at the bottom of the body (the `cases; goto latch` of a switch in a loop, too).
//! Cranelift lowers blocks in reverse post-order, which already lets most loop tails fall
//! through, but a test block reached by `goto` from several places (every case of a switch)
//! can fall through from only one of them: the others pay an extra `jmp` per iteration.
//!
//! The copy runs exactly the instructions the jump would have led to, with the same slots
//! (so a fault inside it reports the same pc, after the same side effects), and branches to
//! the same two successors. It is decided before translation ([`plan_rotations`]) because it
//! gives those successors new predecessors that may come late in the program
//! ([`Cfg::rotate`] keeps `late_pred` right, which the early sealing of blocks relies on).
//! It is planned only when no instruction limit is compiled in (the copy would need the
//! counting code of its own block), and skipped whenever [`Translator::rotate_back_edges`] is
//! off (code that must send every back edge through the jump as written).

use super::Translator;
use crate::error::JitError;
use crate::exec::idiom::CopyLoop;
use crate::exec::switch::Switch;
use crate::isa::{Insn, class, jmp};
use crate::jit::cfg::{self, Cfg, Rotation};

/// Longest header block (in instructions) copied at a back edge: a loop test, not a body.
const MAX_HEADER_INSNS: u32 = 8;

/// Instructions all copies together may add, on top of an eighth of the program's slots.
/// Every copied instruction costs compile time like an original one, and the gain is one
/// jump per iteration: rotating the benchmark's `c_switch` (32 cases jumping back to a
/// four-instruction latch) made it 7% faster but its compile 70% slower (400 → 700 µs, over
/// the 500 µs goal), so such a header stays as it is.
const COPY_BUDGET: usize = 16;

/// Picks the back edges to rotate and records them in `cfg`. A header qualifies when it is a
/// block of at most [`MAX_HEADER_INSNS`] instructions without calls or exits, ending in a
/// conditional jump, that is neither the head of a bulk copy loop (whose fast path sits at
/// the head) nor holds the root of a recovered switch (whose table sits at the root), and
/// that is entered unconditionally (by `ja` or by falling into it) from at least two places:
/// with one such entry, Cranelift's block order already lets that entry fall through into
/// it, so a copy would only cost compile time. Its branch must go back into the loop when
/// taken (clang's `if cond goto body; exit`). All backward `ja`s to a header are rotated, or
/// none when their copies do not fit in what is left of the budget.
pub(super) fn plan_rotations(
    insns: &[Insn],
    cfg: &mut Cfg,
    copy_loops: &[CopyLoop],
    switches: &[Switch],
) {
    let len = insns.len();
    // Per slot: unconditional entries into it, and the backward `ja`s to it.
    let mut entries = vec![0u32; len + 1];
    let mut latches: Vec<(usize, usize)> = Vec::new();
    let mut pc = 0;
    let mut falls_through = false;
    while pc < len {
        let insn = insns[pc];
        let next = pc + insn.slots();
        if cfg.leader[pc] && falls_through {
            entries[pc] += 1;
        }
        falls_through = true;
        if matches!(insn.class(), class::JMP | class::JMP32) && !cfg::is_no_op_jump(pc, &insn) {
            let op = insn.opc & 0xf0;
            if op == jmp::JA
                && let Some(target) =
                    cfg::jump_target(pc, &insn).and_then(|t| usize::try_from(t).ok())
                && target <= len
            {
                entries[target] += 1;
                if target <= pc {
                    latches.push((target, pc));
                }
            }
            // Calls return to the next slot, and conditional jumps fall into it.
            falls_through = op != jmp::JA && op != jmp::EXIT;
        }
        pc = next;
    }
    latches.sort_unstable();
    let mut budget = COPY_BUDGET + len / 8;
    let mut chosen = Vec::new();
    for group in latches.chunk_by(|a, b| a.0 == b.0) {
        let header = group[0].0;
        if entries[header] < 2 {
            continue;
        }
        let Some(branch) = rotatable(insns, cfg, header, copy_loops, switches) else {
            continue;
        };
        // The copy's branch must be the back edge: taken, it goes back into the loop (to a
        // slot before the first latch). A test that leaves the loop when taken and continues
        // by falling through would make its fall-through block a new merge point of the
        // values the test computes (measured: the hand-written strcmp loop got two moves and
        // a jump more per iteration).
        let taken = cfg::jump_target(branch, &insns[branch]).and_then(|t| usize::try_from(t).ok());
        if taken.is_none_or(|t| t > group[0].1) {
            continue;
        }
        let cost = group.len() * cfg.block_len[header] as usize;
        let Some(left) = budget.checked_sub(cost) else {
            continue;
        };
        budget = left;
        chosen.extend(group.iter().map(|&(header, latch)| Rotation {
            latch,
            header,
            branch,
        }));
    }
    chosen.sort_unstable_by_key(|r| r.latch);
    for r in chosen {
        cfg.rotate(insns, r);
    }
}

/// The slot of the conditional jump that ends the block at `header`, when the block can be
/// copied to a back edge (see [`plan_rotations`]).
fn rotatable(
    insns: &[Insn],
    cfg: &Cfg,
    header: usize,
    copy_loops: &[CopyLoop],
    switches: &[Switch],
) -> Option<usize> {
    if !cfg.leader.get(header).copied().unwrap_or(false)
        || cfg.block_len[header] > MAX_HEADER_INSNS
        || copy_loops.binary_search_by_key(&header, |l| l.head).is_ok()
    {
        return None;
    }
    let mut slot = header;
    let branch = loop {
        let insn = *insns.get(slot)?;
        let next = slot + insn.slots();
        match insn.class() {
            class::JMP | class::JMP32 if cfg::is_no_op_jump(slot, &insn) => {}
            class::JMP | class::JMP32 => {
                let conditional = !matches!(insn.opc & 0xf0, jmp::JA | jmp::CALL | jmp::EXIT);
                if !conditional || cfg::jump_target(slot, &insn).is_none() {
                    return None;
                }
                break slot;
            }
            _ => {}
        }
        // A block that falls into the next one has no branch to copy.
        if cfg.leader.get(next).copied().unwrap_or(true) {
            return None;
        }
        slot = next;
    };
    let first_root = switches.partition_point(|s| s.root < header);
    if switches.get(first_root).is_some_and(|s| s.root <= branch) {
        return None;
    }
    Some(branch)
}

impl Translator<'_, '_> {
    /// Translates the `ja` at `pc` as a copy of its loop header when it is a planned rotation
    /// and rotation is on; returns whether it did (the copy ends in the header's conditional
    /// jump, which terminates the current block).
    pub(super) fn rotated_back_edge(&mut self, pc: usize) -> Result<bool, JitError> {
        if !self.rotate_back_edges {
            return Ok(false);
        }
        let Some(r) = self.cfg.rotation_at(pc) else {
            return Ok(false);
        };
        let mut slot = r.header;
        while slot <= r.branch {
            let insn = self.insns[slot];
            slot = self.insn(slot, insn)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rotations planned for `text` (no idioms), as `(latch, header, branch)`.
    fn plan(text: &str) -> (Vec<(usize, usize, usize)>, Cfg) {
        let insns = crate::tools::asm::assemble(text).expect("assembles");
        let mut cfg = cfg::analyze(&insns).expect("analyses");
        plan_rotations(&insns, &mut cfg, &[], &[]);
        let r = cfg
            .rotations
            .iter()
            .map(|r| (r.latch, r.header, r.branch))
            .collect();
        (r, cfg)
    }

    #[test]
    fn bottom_test_reached_by_a_jump_is_rotated() {
        let (r, cfg) = plan(
            "mov %r0, 0
             mov %r2, 0
             ldxb %r3, [%r1+0]
             jne %r3, 0, +1
             exit
             add %r0, %r3
             add %r2, 1
             ja -6",
        );
        assert_eq!(r, vec![(7, 2, 3)]);
        // Both successors of the copy (the body at 5, the exit at 4) come before the latch.
        assert!(cfg.late_pred[4] && cfg.late_pred[5]);
    }

    #[test]
    fn every_latch_of_a_header_is_rotated() {
        let (r, _) = plan(
            "mov %r2, 0
             add %r2, 1
             jlt %r2, 40, +1
             exit
             jeq %r2, 3, +2
             add %r0, 7
             ja -6
             mul %r0, 3
             ja -8",
        );
        assert_eq!(r, vec![(6, 1, 2), (8, 1, 2)]);
    }

    #[test]
    fn headers_that_do_not_qualify_stay() {
        // Entered only by the `ja` (and a conditional jump): Cranelift's block order already
        // lets the latch fall into it.
        let single = "mov %r2, 0
             jeq %r2, 0, +1
             exit
             add %r2, 1
             jlt %r2, 40, +1
             exit
             add %r0, 2
             ja -5";
        // A header with a helper call.
        let call = "mov %r2, 0
             call 1
             jlt %r2, 40, +1
             exit
             add %r2, 1
             ja -5";
        // A header that falls into the next block instead of branching.
        let falls = "mov %r2, 0
             add %r2, 1
             add %r3, 1
             jeq %r3, 5, -2
             jlt %r2, 40, +1
             exit
             ja -6";
        // A test that leaves the loop when taken.
        let leaves = "mov %r2, 0
             add %r2, 1
             jgt %r2, 40, +2
             add %r0, 1
             ja -4
             exit";
        // A header of nine instructions.
        let mut long = String::from("mov %r2, 0\n");
        long.push_str(&"add %r3, 1\n".repeat(8));
        long.push_str("jlt %r2, 40, +1\nexit\nadd %r2, 1\nja -12");
        for text in [single, call, falls, leaves, &long] {
            assert_eq!(plan(text).0, vec![], "{text}");
        }
        // The same long loop with an eight-instruction header is rotated.
        let short = long
            .replacen("add %r3, 1\n", "", 1)
            .replace("ja -12", "ja -11");
        assert_eq!(plan(&short).0, vec![(11, 1, 8)]);
    }

    #[test]
    fn the_budget_keeps_or_drops_a_header_whole() {
        // 40 cases jumping back to a two-instruction test: 80 copied instructions exceed
        // the budget (16 + 1/8 of the program), so none is rotated; with 4 cases, all five
        // jumps back (the cases' and the default's) are.
        for (cases, rotated) in [(40, 0), (4, 5)] {
            let mut text =
                String::from("mov %r2, 0\nhead:\nadd %r2, 1\njlt %r2, 400, body\nexit\nbody:\n");
            for c in 0..cases {
                text.push_str(&format!("jeq %r2, {c}, c{c}\n"));
            }
            text.push_str("ja head\n");
            for c in 0..cases {
                text.push_str(&format!("c{c}:\nadd %r0, {c}\nja head\n"));
            }
            assert_eq!(plan(&text).0.len(), rotated, "{cases} cases");
        }
    }
}
