//! Emission of hoisted bounds checks ([`crate::jit::hoist`]): at a loop's head, one test
//! decides whether an unchecked copy of the loop may run; inside the copy, each iteration
//! compares only the induction register with the limit the test computed.
//!
//! Layout of a hoisted loop:
//! * the head's own block (entered from before the loop) computes the test and branches to
//!   the copy or to the checked loop;
//! * the copy: the loop's slots translated again, covered accesses without checks; every back
//!   edge first tests the induction register and continues in the copy or, once past the
//!   limit, in the checked loop at the head;
//! * the checked loop: the ordinary translation, which every later jump to the head (its own
//!   back edges included) reaches. An iteration the test does not cover therefore runs with
//!   every check, at the interpreter's slots, with the same effects before a fault.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I8;
use cranelift_codegen::ir::{Block, InstBuilder, Value};

use super::{Translator, size_index};
use crate::error::JitError;
use crate::jit::hoist::HoistedLoop;

/// The test a hoisted loop's copy applies at each back edge: continue in the copy while the
/// induction register stays within `limit`, else in the checked loop.
#[derive(Clone, Copy)]
pub(super) struct IterationTest {
    /// The loop's head slot (back edges are jumps to it).
    pub head: usize,
    reg: u8,
    /// `limit` is an upper bound (positive step) or a lower one.
    upward: bool,
    limit: Value,
    copy: Block,
    checked: Block,
}

impl Translator<'_, '_> {
    /// Emits the test and the unchecked copy of `l` at its head (the current block), then
    /// continues in a new block where the checked translation of the loop starts.
    pub(super) fn hoisted_loop(&mut self, l: &HoistedLoop) -> Result<(), JitError> {
        // Every later jump to the head (back edges, return sites, calls) goes to the checked
        // loop, so the head's own block has all its predecessors already.
        let head_block = self.block_at(l.head)?;
        self.b.seal_block(head_block);
        let (ok, limit) = self.loop_test(l);
        let copy = self.b.create_block();
        let checked = self.b.create_block();
        self.b.ins().brif(ok, copy, &[], checked, &[]);

        // The copy gets its own blocks for the loop's slots.
        let saved = self.blocks[l.head..=l.last].to_vec();
        for pc in l.head + 1..=l.last {
            if self.cfg.leader[pc] {
                self.blocks[pc] = Some(self.b.create_block());
            }
        }
        self.blocks[l.head] = Some(copy);
        for a in &l.accesses {
            self.unchecked[a.pc] = true;
        }
        self.iterate = l.induction.map(|ind| IterationTest {
            head: l.head,
            reg: ind.reg,
            upward: ind.step > 0,
            limit,
            copy,
            checked,
        });
        self.b.switch_to_block(copy);
        self.terminated = false;
        self.forget_facts();
        // Every back edge of the copy must run the iteration test: no rotated loop test may
        // stand in for the jump to the head.
        let rotate = std::mem::replace(&mut self.rotate_back_edges, false);
        let copied = self.slots(l.head, l.last + 1, true);
        self.rotate_back_edges = rotate;
        self.iterate = None;
        for a in &l.accesses {
            self.unchecked[a.pc] = false;
        }
        self.blocks[l.head..=l.last].copy_from_slice(&saved);
        copied?;
        if !self.terminated {
            let after = self.block_at(l.last + 1)?;
            self.b.ins().jump(after, &[]);
        }
        self.b.seal_block(copy);

        // The checked loop: its back edges are translated later, so `checked` stays unsealed.
        self.b.switch_to_block(checked);
        self.blocks[l.head] = Some(checked);
        self.terminated = false;
        self.forget_facts();
        Ok(())
    }

    /// Whether the induction register has passed the limit (the next iteration must run
    /// checked).
    fn past_limit(&mut self, t: IterationTest) -> Value {
        let v = self.get(t.reg);
        let cc = if t.upward {
            IntCC::UnsignedGreaterThan
        } else {
            IntCC::UnsignedLessThan
        };
        self.b.ins().icmp(cc, v, t.limit)
    }

    /// An unconditional back edge in the copy.
    pub(super) fn iterate_jump(&mut self) {
        let Some(t) = self.iterate else { return };
        let past = self.past_limit(t);
        self.b.ins().brif(past, t.checked, &[], t.copy, &[]);
    }

    /// A conditional back edge in the copy (`cond` non-zero: jump to the head, else `next`).
    /// The limit is tested first, with the loop's own branch repeated on both sides: in
    /// the hot path the only taken branch is the one back to the head, and the rare side
    /// (past the limit, into the checked loop) is cold. Cranelift places a branch's last
    /// successor not yet placed right after it, so the hot side is named last.
    pub(super) fn iterate_if(&mut self, cond: Value, next: Block) {
        let Some(t) = self.iterate else { return };
        let beyond = self.past_limit(t);
        let hot = self.b.create_block();
        let past = self.b.create_block();
        self.b.set_cold_block(past);
        self.b.ins().brif(beyond, past, &[], hot, &[]);
        self.b.switch_to_block(past);
        self.b.seal_block(past);
        self.b.ins().brif(cond, t.checked, &[], next, &[]);
        self.b.switch_to_block(hot);
        self.b.seal_block(hot);
        self.b.ins().brif(cond, t.copy, &[], next, &[]);
    }

    /// The test before the loop: whether every covered access of the first iteration lies in
    /// mem or the stack and, with an induction register, the limit it may reach (at most, for
    /// a positive step; at least, for a negative one) with every covered access still inside
    /// the region it started in.
    ///
    /// For an access at `(r << s) + k` (`r` the induction register, or one moving with the same
    /// step) in a region where it starts `d0` bytes above the base
    /// and may start at most `lim - 1` bytes above it, `iv` may move `(lim - 1 - d0) >> s` up
    /// or `d0 >> s` down. The limit must also keep `iv` plus one step from wrapping around, so
    /// that the per-iteration comparison stays meaningful.
    fn loop_test(&mut self, l: &HoistedLoop) -> (Value, Value) {
        let mut ok = self.b.ins().iconst(I8, 1);
        let start = l.induction.map(|ind| self.get(ind.reg));
        let mut room: Option<Value> = None;
        for a in &l.accesses {
            let mut addr = self.iconst(a.offset);
            if let Some((r, s)) = a.base {
                let v = self.get(r);
                let scaled = self.b.ins().ishl_imm_s(v, i64::from(s));
                addr = self.b.ins().iadd(addr, scaled);
            }
            if let Some(r) = a.inv {
                let v = self.get(r);
                addr = self.b.ins().iadd(addr, v);
            }
            let i = size_index(usize::from(a.bytes));
            let mem = self.mem_region;
            let d_mem = self.b.ins().isub(addr, mem.base);
            let in_mem = self
                .b
                .ins()
                .icmp(IntCC::UnsignedLessThan, d_mem, mem.lim[i]);
            let (d, lim, inside) = if self.has_stack {
                let stack = self.stack_region;
                let d_stack = self.b.ins().isub(addr, stack.base);
                let in_stack = self
                    .b
                    .ins()
                    .icmp(IntCC::UnsignedLessThan, d_stack, stack.lim[i]);
                (
                    self.b.ins().select(in_mem, d_mem, d_stack),
                    self.b.ins().select(in_mem, mem.lim[i], stack.lim[i]),
                    self.b.ins().bor(in_mem, in_stack),
                )
            } else {
                (d_mem, mem.lim[i], in_mem)
            };
            ok = self.b.ins().band(ok, inside);
            if let (Some((_, s)), Some(ind)) = (a.base, l.induction) {
                // Meaningless when the access is outside, but `ok` is false then.
                let span = if ind.step > 0 {
                    let top = self.b.ins().iadd_imm_s(lim, -1);
                    self.b.ins().isub(top, d)
                } else {
                    d
                };
                let r = self.b.ins().ushr_imm_s(span, i64::from(s));
                room = Some(match room {
                    None => r,
                    Some(x) => self.b.ins().umin(x, r),
                });
            }
        }
        let limit = match (l.induction, start, room) {
            (Some(ind), Some(iv), Some(room)) => {
                let step = ind.step.unsigned_abs() as i64;
                // room <= MAX - step, so the bounds below cannot wrap.
                let fits = self.b.ins().icmp_imm_s(
                    IntCC::UnsignedLessThanOrEqual,
                    room,
                    step.wrapping_neg() - 1,
                );
                ok = self.b.ins().band(ok, fits);
                if ind.step > 0 {
                    // iv + room + step must not pass u64::MAX.
                    let most = self.iconst(step.wrapping_neg() - 1);
                    let top = self.b.ins().isub(most, room);
                    let no_wrap = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, iv, top);
                    ok = self.b.ins().band(ok, no_wrap);
                    self.b.ins().iadd(iv, room)
                } else {
                    // iv - room - step must not go below 0.
                    let least = self.b.ins().iadd_imm_s(room, step);
                    let no_wrap = self
                        .b
                        .ins()
                        .icmp(IntCC::UnsignedGreaterThanOrEqual, iv, least);
                    ok = self.b.ins().band(ok, no_wrap);
                    self.b.ins().isub(iv, room)
                }
            }
            _ => self.iconst(0),
        };
        (ok, limit)
    }
}
