//! Control-flow discovery: which slots start a basic block (jump targets, fall-throughs after
//! jumps, calls and exits, function entries), how many instructions each block runs, and the
//! return sites of local calls.

use crate::error::JitError;
use crate::isa::{Insn, call_kind, class, jmp, mode, op};

/// The block structure of a program.
#[derive(Debug)]
pub(crate) struct Cfg {
    /// `leader[pc]`: slot `pc` starts a block. Has one extra entry for "one past the end".
    pub leader: Vec<bool>,
    /// For a leader slot: how many instructions the block executes (`lddw` counts once).
    pub block_len: Vec<u32>,
    /// Slots right after each local call, in order: the call's return site index is its
    /// position here.
    pub return_sites: Vec<usize>,
    /// `late_pred[pc]`: a block at `pc` may be entered from a slot at or after `pc` (a
    /// backward jump or local call, or a return site). Other blocks have all their
    /// predecessors translated before them and can be sealed on entry.
    pub late_pred: Vec<bool>,
    /// Back edges translated as a copy of the loop header (`translate/layout.rs`), sorted by
    /// latch slot. Empty unless [`Cfg::rotate`] added some.
    pub rotations: Vec<Rotation>,
}

/// An unconditional backward jump at `latch` that is translated as a copy of the block it
/// jumps to (`header`, ending in the conditional jump at `branch`), so that the loop's back
/// edge is that conditional jump instead of a jump to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rotation {
    /// Slot of the `ja`.
    pub latch: usize,
    /// First slot of the copied block (the jump's target).
    pub header: usize,
    /// Slot of the copied block's last instruction, a conditional jump.
    pub branch: usize,
}

impl Cfg {
    /// Records `r` (latches in increasing order). Its copy of the header branches from the
    /// latch to both successors of `r.branch`: those at or before the latch become blocks
    /// with late predecessors. Bits are only ever added: the header may lose its predecessor
    /// at the latch, but leaving it unsealed until the end is merely conservative.
    pub(crate) fn rotate(&mut self, insns: &[Insn], r: Rotation) {
        debug_assert!(self.rotations.last().is_none_or(|l| l.latch < r.latch));
        let taken = jump_target(r.branch, &insns[r.branch]).and_then(|t| usize::try_from(t).ok());
        for succ in taken.into_iter().chain([r.branch + 1]) {
            if succ <= r.latch
                && let Some(late) = self.late_pred.get_mut(succ)
            {
                *late = true;
            }
        }
        self.rotations.push(r);
    }

    /// The rotation whose latch is `pc`, if any.
    pub(crate) fn rotation_at(&self, pc: usize) -> Option<Rotation> {
        self.rotations
            .binary_search_by_key(&pc, |r| r.latch)
            .ok()
            .map(|i| self.rotations[i])
    }
}

/// Where a jump-class instruction may transfer control (`None`: not a jump).
///
/// A jump to the very next slot (offset 0) changes nothing whether taken or not, so it is
/// [`is_no_op_jump`]: it neither ends a block nor starts one, and is translated to nothing.
pub(crate) fn jump_target(pc: usize, insn: &Insn) -> Option<i64> {
    let pc = pc as i64;
    match insn.class() {
        class::JMP32 if insn.opc == op::JA32 => Some(pc + 1 + i64::from(insn.imm)),
        class::JMP32 => Some(pc + 1 + i64::from(insn.off)),
        class::JMP => match insn.opc & 0xf0 {
            jmp::CALL | jmp::EXIT => None,
            _ => Some(pc + 1 + i64::from(insn.off)),
        },
        _ => None,
    }
}

/// For each slot (and one past the end): the last slot whose jump goes back to it, at or
/// before itself (`None` where no backward jump lands). A loop headed there runs to it.
pub(crate) fn last_latches(insns: &[Insn]) -> Vec<Option<usize>> {
    let mut last_latch = vec![None::<usize>; insns.len() + 1];
    for (pc, insn) in insns.iter().enumerate() {
        if let Some(t) = jump_target(pc, insn).and_then(|t| usize::try_from(t).ok())
            && t <= pc
        {
            last_latch[t] = Some(last_latch[t].map_or(pc, |l: usize| l.max(pc)));
        }
    }
    last_latch
}

/// Which slots lie inside a loop: between a backward jump's target and the jump, inclusive.
pub(crate) fn slots_in_loops(insns: &[Insn]) -> Vec<bool> {
    let mut depth = vec![0i64; insns.len() + 1];
    for (head, latch) in last_latches(insns).iter().enumerate() {
        if let Some(latch) = *latch {
            depth[head] += 1;
            depth[latch + 1] -= 1;
        }
    }
    let mut open = 0;
    depth[..insns.len()]
        .iter()
        .map(|d| {
            open += d;
            open > 0
        })
        .collect()
}

/// Whether `insn` at `pc` is a jump whose only destination is the next slot.
pub(crate) fn is_no_op_jump(pc: usize, insn: &Insn) -> bool {
    jump_target(pc, insn) == Some(pc as i64 + 1)
}

/// Builds the block structure, rejecting control transfers outside the program.
pub(crate) fn analyze(insns: &[Insn]) -> Result<Cfg, JitError> {
    let len = insns.len();
    let mut leader = vec![false; len + 1];
    let mut return_sites = Vec::new();
    let mut late_pred = vec![false; len + 1];
    if len > 0 {
        leader[0] = true;
    }
    leader[len] = true;
    let mut mark = |target: i64, pc: usize| -> Result<(), JitError> {
        let t = usize::try_from(target)
            .ok()
            .filter(|&t| t <= len)
            .ok_or_else(|| JitError::Internal(format!("jump out of bounds at PC {pc}")))?;
        leader[t] = true;
        if t <= pc {
            late_pred[t] = true;
        }
        Ok(())
    };
    let mut pc = 0;
    while pc < len {
        let insn = insns[pc];
        let next = pc + insn.slots();
        if is_no_op_jump(pc, &insn) {
            // Falls through either way: not a block boundary.
        } else if let Some(target) = jump_target(pc, &insn) {
            mark(target, pc)?;
            mark(next as i64, pc)?;
        } else if insn.opc == op::CALL && insn.src == call_kind::LOCAL {
            mark(pc as i64 + 1 + i64::from(insn.imm), pc)?;
            mark(next as i64, pc)?;
            return_sites.push(next);
        } else if insn.opc == op::EXIT {
            mark(next as i64, pc)?;
        }
        pc = next;
    }
    let mut block_len = vec![0u32; len + 1];
    let mut current = 0;
    let mut pc = 0;
    while pc < len {
        if leader[pc] {
            current = pc;
        }
        block_len[current] += 1;
        pc += insns[pc].slots();
    }
    for &site in &return_sites {
        late_pred[site] = true;
    }
    Ok(Cfg {
        leader,
        block_len,
        return_sites,
        late_pred,
        rotations: Vec::new(),
    })
}

/// A lower bound on the machine-code bytes of `insns` compiled in [`super::Tier::Fast`], for
/// refusing a program that cannot fit the code buffer before spending any time compiling it
/// (uBPF refuses such programs too, only later). See `docs/jit-compile-time.md`.
///
/// Only what the fast tier can never drop is counted: Cranelift then runs no optimiser, only
/// removes blocks unreachable in the control-flow graph, and skips instructions whose results
/// are unused. So only slots reachable from slot 0 count (following every jump, call and
/// return site, as the translation's graph does), each for the smallest x86-64 encodings of
/// the work it must keep (AArch64 instructions are all 4 bytes, so the bound holds there too):
/// * a load or store (may fault, so never dropped): 2 bytes; an atomic: 3;
/// * a conditional jump: its compare, 3 bytes for 64 bits (REX.W), 2 for 32 (the branch
///   itself may fold away when both ways lead to the same code);
/// * `call imm` to a helper: the call (2), and the check before it that a helper exists (a
///   load, a test and a branch to the fault block: 2 + 2 + 2);
/// * `callx`: the call (2);
/// * a local call: the depth check (a compare and a branch to the fault block: 2 + 2) and the
///   six stores of its frame (2 each);
/// * `exit`: 1. Everything else (ALU, `lddw`, `ja`) may vanish and counts 0.
pub(crate) fn min_fast_tier_code_bytes(insns: &[Insn]) -> usize {
    let reached = reachable_slots(insns);
    let mut bytes = 0usize;
    for (pc, insn) in insns.iter().enumerate().filter(|&(pc, _)| reached[pc]) {
        bytes += match insn.class() {
            class::LDX | class::ST => 2,
            // A runtime call and the test of its verdict.
            class::LD if insn.is_packet_load() => 4,
            class::STX if insn.opc & mode::MASK == mode::ATOMIC => 3,
            class::STX => 2,
            class::JMP if insn.opc == op::EXIT => 1,
            class::JMP if insn.opc == op::CALL && insn.src == call_kind::LOCAL => 2 + 2 + 6 * 2,
            class::JMP if insn.opc == op::CALL => 2 + 2 + 2 + 2,
            class::JMP if insn.opc == op::CALLX => 2,
            class::JMP | class::JMP32 if insn.opc & 0xf0 == jmp::JA || is_no_op_jump(pc, insn) => 0,
            class::JMP => 3,
            class::JMP32 => 2,
            _ => 0,
        };
    }
    bytes
}

/// `reached[pc]`: slot `pc` starts an instruction that control can reach from slot 0,
/// following every edge a translation can create (jumps both ways, local calls into the
/// callee and back to their return site). The second slot of an `lddw` is never reached.
pub(crate) fn reachable_slots(insns: &[Insn]) -> Vec<bool> {
    let len = insns.len();
    let mut reached = vec![false; len];
    let mut work = Vec::new();
    let mut visit = |pc: i64, work: &mut Vec<usize>| {
        if let Some(pc) = usize::try_from(pc).ok().filter(|&pc| pc < len)
            && !reached[pc]
        {
            reached[pc] = true;
            work.push(pc);
        }
    };
    visit(0, &mut work);
    while let Some(pc) = work.pop() {
        let insn = insns[pc];
        let next = (pc + insn.slots()) as i64;
        if insn.opc == op::EXIT {
            continue;
        }
        if insn.opc == op::CALL && insn.src == call_kind::LOCAL {
            visit(pc as i64 + 1 + i64::from(insn.imm), &mut work);
            visit(next, &mut work);
        } else if let Some(target) = jump_target(pc, &insn) {
            visit(target, &mut work);
            if insn.opc & 0xf0 != jmp::JA {
                visit(next, &mut work);
            }
        } else {
            visit(next, &mut work);
        }
    }
    reached
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_start_at_targets_and_after_branches() {
        let insns = [
            Insn::new(0xb7, 0, 0, 0, 1), // 0: mov r0, 1
            Insn::new(0x15, 0, 0, 2, 0), // 1: jeq r0, 0, +2
            Insn::new(0x18, 0, 0, 0, 1), // 2: lddw
            Insn::new(0x00, 0, 0, 0, 0), // 3
            Insn::new(0x95, 0, 0, 0, 0), // 4: exit
        ];
        let cfg = analyze(&insns).unwrap();
        assert_eq!(cfg.leader, vec![true, false, true, false, true, true]);
        assert_eq!(cfg.block_len[0], 2);
        assert_eq!(cfg.block_len[2], 1);
        assert_eq!(cfg.block_len[4], 1);
    }

    #[test]
    fn slots_between_a_backward_jump_and_its_target_are_in_a_loop() {
        let insns = [
            Insn::new(0xb7, 0, 0, 0, 1),   // 0: mov r0, 1
            Insn::new(0x07, 0, 0, 0, 1),   // 1: add r0, 1 (inner and outer head)
            Insn::new(0xa5, 0, 0, -2, 9),  // 2: jlt r0, 9, -2 (back to 1)
            Insn::new(0x07, 0, 0, 0, 1),   // 3: add r0, 1
            Insn::new(0xa5, 0, 0, -4, 20), // 4: jlt r0, 20, -4 (back to 1)
            Insn::new(0x95, 0, 0, 0, 0),   // 5: exit
        ];
        assert_eq!(
            slots_in_loops(&insns),
            vec![false, true, true, true, true, false]
        );
    }

    #[test]
    fn jumps_to_the_next_slot_do_not_split_blocks() {
        let insns = [
            Insn::new(0x15, 0, 0, 0, 1), // 0: jeq r0, 1, +0
            Insn::new(0x05, 0, 0, 0, 0), // 1: ja +0
            Insn::new(0x06, 0, 0, 0, 0), // 2: ja32 +0 (target in imm)
            Insn::new(0x16, 0, 0, 0, 7), // 3: jeq32 w0, 7, +0
            Insn::new(0x95, 0, 0, 0, 0), // 4: exit
        ];
        let cfg = analyze(&insns).unwrap();
        assert_eq!(cfg.leader, vec![true, false, false, false, false, true]);
        assert_eq!(cfg.block_len[0], 5);
        assert!(
            insns[..4]
                .iter()
                .enumerate()
                .all(|(pc, i)| is_no_op_jump(pc, i))
        );
        assert!(!is_no_op_jump(4, &insns[4]));
    }

    #[test]
    fn code_size_bound_counts_only_reachable_work() {
        let insns = [
            Insn::new(0xb7, 0, 0, 0, 1), // 0: mov r0, 1 (0)
            Insn::new(0x61, 0, 1, 0, 0), // 1: ldxw r0, [r1] (2)
            Insn::new(0x15, 0, 0, 2, 0), // 2: jeq r0, 0, +2 (3)
            Insn::new(0x63, 1, 0, 0, 0), // 3: stxw [r1], r0 (2)
            Insn::new(0x85, 0, 0, 0, 1), // 4: call 1 (8)
            Insn::new(0x95, 0, 0, 0, 0), // 5: exit (1)
            Insn::new(0x63, 1, 0, 0, 0), // 6: unreachable store (0)
            Insn::new(0x95, 0, 0, 0, 0), // 7: unreachable exit (0)
        ];
        assert_eq!(min_fast_tier_code_bytes(&insns), 2 + 3 + 2 + 8 + 1);
        // An unconditional jump over the rest leaves only its target.
        let skip = [
            Insn::new(0x05, 0, 0, 2, 0), // 0: ja +2
            Insn::new(0x63, 1, 0, 0, 0), // 1: unreachable
            Insn::new(0x63, 1, 0, 0, 0), // 2: unreachable
            Insn::new(0x95, 0, 0, 0, 0), // 3: exit
        ];
        assert_eq!(min_fast_tier_code_bytes(&skip), 1);
    }

    #[test]
    fn out_of_range_jumps_are_refused() {
        let insns = [Insn::new(0x05, 0, 0, 5, 0), Insn::new(0x95, 0, 0, 0, 0)];
        assert!(analyze(&insns).is_err());
    }
}
