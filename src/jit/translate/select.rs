//! Emission of if-converted branches ([`crate::jit::select`]): a hammock's compare, both of
//! its paths translated in the current block, one `select` per register the paths write, and
//! a jump to the join (or a fall into it), with no branch on the condition.
//!
//! Both paths are translated through the same per-instruction code as anywhere else (the
//! registers are Cranelift variables): the taken path first, from the registers' values at the
//! branch; its results are put aside and the registers reset to their values at the branch;
//! then the fall-through path; then each written register becomes `select(cond, taken,
//! fall-through)`. The compare is computed before either path, so a path that writes the
//! compared register does not change the decision.

use cranelift_codegen::ir::{InstBuilder, SourceLoc, Value};

use super::Translator;
use crate::error::JitError;
use crate::exec::idiom::CopyLoop;
use crate::exec::switch::Switch;
use crate::isa::Insn;
use crate::jit::cfg::Cfg;
use crate::jit::hoist::HoistedLoop;
use crate::jit::select::{self, Hammock, Step};

/// The hammocks [`select::find`] finds that no other rewrite of the code touches, by branch
/// slot. A hammock's slots (the branch and its paths, `branch..end`) and its join must stay
/// clear of: compares behind a switch table and a switch's root or targets (the table jumps to
/// them directly); copy loops (their guard and exit); rotated back edges (which copy a loop
/// test and its branch elsewhere); and the boundary of a loop with hoisted checks (its copy
/// translates the loop's slots again, so a hammock is either wholly inside it, and converted in
/// both translations, or wholly outside). The join may not be a loop's head: a back edge in a
/// hoisted loop's copy must run the iteration test.
pub(super) fn planned(
    insns: &[Insn],
    cfg: &Cfg,
    copy_loops: &[CopyLoop],
    switches: &[Switch],
    reachable: &Option<Vec<bool>>,
    hoisted: &[HoistedLoop],
) -> Vec<Hammock> {
    let mut found = select::find(insns);
    if found.is_empty() {
        return found;
    }
    let mut switch_target = vec![false; insns.len() + 1];
    for s in switches {
        let join = s.values.as_ref().map(|v| v.join);
        for t in s.leaves.iter().map(|l| l.pc).chain(join) {
            if let Some(slot) = switch_target.get_mut(t) {
                *slot = true;
            }
        }
    }
    let back = select::back_edges(insns);
    found.retain(|h| {
        if select::feeds_loop_load_address(insns, &back, h) {
            return false;
        }
        let slots = h.branch..h.end;
        let overlaps = |lo: usize, hi: usize| lo < h.end && h.branch <= hi;
        reachable
            .as_ref()
            .is_none_or(|r| r[slots.clone()].iter().all(|&live| live))
            && !switches.iter().any(|s| slots.contains(&s.root))
            && !switch_target[h.branch + 1..h.end].iter().any(|&t| t)
            && !copy_loops
                .iter()
                .any(|l| overlaps(l.head, l.latch) || overlaps(l.exit, l.exit) || l.head == h.join)
            && !cfg.rotations.iter().any(|r| {
                slots.contains(&r.latch)
                    || slots.contains(&r.branch)
                    || slots.contains(&r.header)
                    || r.header == h.join
            })
            && !hoisted.iter().any(|l| {
                let inside = l.head <= h.branch && h.end <= l.last + 1;
                (overlaps(l.head, l.last) && !inside) || l.head == h.join
            })
    });
    found
}

impl Translator<'_, '_> {
    /// When the conditional jump at `pc` is a planned hammock, translates it as selects and
    /// returns the slot where translation goes on (the hammock's end; the current block then
    /// goes on with the join, or has jumped to it). `to` is the end of the slots being
    /// translated.
    pub(super) fn if_converted(&mut self, pc: usize, to: usize) -> Result<Option<usize>, JitError> {
        let Ok(i) = self.selects.binary_search_by_key(&pc, |h| h.branch) else {
            return Ok(None);
        };
        let h = self.selects[i].clone();
        if h.end > to {
            // `planned` keeps hammocks inside or outside every hoisted loop.
            return Err(JitError::Internal(format!(
                "if-converted branch at PC {pc} crosses the end of a loop copy"
            )));
        }
        self.select_values(&h)?;
        if h.join == h.end && !self.rewrite_entered[h.join] {
            // Only the hammock's own edges enter the join (see `planned`; it counts jumps and
            // fall-throughs, and no rewrite jumps there either), and both are now this
            // block's fall-through: the join goes on in this block.
            self.falls_into = Some(h.join);
        } else {
            let join = self.block_at(h.join)?;
            self.b.ins().jump(join, &[]);
            self.terminated = true;
        }
        Ok(Some(h.end))
    }

    /// Runs both paths of `h` in the current block and selects each written register.
    fn select_values(&mut self, h: &Hammock) -> Result<(), JitError> {
        self.b.set_srcloc(SourceLoc::new(h.branch as u32));
        let cond = self.condition(h.branch, self.insns[h.branch])?;
        let written = h.written(self.insns);
        let regs = (0..11u8).filter(|r| written & (1 << r) != 0);
        let before: Vec<(u8, Value)> = regs.map(|r| (r, self.get(r))).collect();
        // Both paths start from what is known at the branch; after them, a written register
        // holds one path's value or the other's, so nothing is known of it.
        let known = self.known;
        self.steps(&h.taken)?;
        let taken: Vec<Value> = before.iter().map(|&(r, _)| self.get(r)).collect();
        for &(r, v) in &before {
            self.b.def_var(self.regs[usize::from(r)], v);
        }
        self.known = known;
        self.steps(&h.fall)?;
        for (&(r, _), &t) in before.iter().zip(&taken) {
            let f = self.get(r);
            if t != f {
                let v = self.b.ins().select(cond, t, f);
                self.set(r, v);
            }
            self.forget_known(r);
        }
        Ok(())
    }

    /// Translates the steps of one path into the current block.
    fn steps(&mut self, steps: &[Step]) -> Result<(), JitError> {
        for step in steps {
            match step {
                Step::Insn(pc) => {
                    self.b.set_srcloc(SourceLoc::new(*pc as u32));
                    let insn = self.insns[*pc];
                    self.insn(*pc, insn)?;
                }
                Step::Nested(h) => self.select_values(h)?,
            }
        }
        Ok(())
    }
}
