//! Control-flow discovery: which slots start a basic block (jump targets, fall-throughs after
//! jumps, calls and exits, function entries), how many instructions each block runs, and the
//! return sites of local calls.

use crate::error::JitError;
use crate::isa::{Insn, call_kind, class, jmp, op};

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
}

/// Where a jump-class instruction may transfer control (`None`: not a jump).
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
        let next = if insn.opc == op::LDDW { pc + 2 } else { pc + 1 };
        if let Some(target) = jump_target(pc, &insn) {
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
        pc += if insns[pc].opc == op::LDDW { 2 } else { 1 };
    }
    for &site in &return_sites {
        late_pred[site] = true;
    }
    Ok(Cfg {
        leader,
        block_len,
        return_sites,
        late_pred,
    })
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
    fn out_of_range_jumps_are_refused() {
        let insns = [Insn::new(0x05, 0, 0, 5, 0), Insn::new(0x95, 0, 0, 0, 0)];
        assert!(analyze(&insns).is_err());
    }
}
