//! Emission of hoisted bounds checks ([`crate::jit::hoist`]): at a loop's head, one test
//! decides whether an unchecked copy of the loop may run; inside the copy, each iteration
//! compares only the induction register with the limit the test computed.
//!
//! Layout of a hoisted loop:
//! * the head's own block (entered from before the loop) computes the test and branches to
//!   the copy or to the checked loop; when the program can reach the stack, a cheap test that
//!   every access stays in mem comes first, and the test that lets each access lie in mem or
//!   the stack runs only when it fails;
//! * the copy: the loop's slots translated again, covered accesses without checks; every back
//!   edge first tests the induction register and continues in the copy or, once past the
//!   limit, in the checked loop at the head (a counted loop's back edges test nothing: the
//!   test before the loop covered all the iterations its trip test lets start);
//! * the checked loop: the ordinary translation, which every later jump to the head (its own
//!   back edges included) reaches. An iteration the test does not cover therefore runs with
//!   every check, at the interpreter's slots, with the same effects before a fault.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{Block, BlockArg, InstBuilder, Value};

use super::{Translator, size_index};
use crate::error::JitError;
use crate::jit::hoist::{CountedExit, HoistedLoop, Stride, Trip};

/// What the test before a loop computed, whatever region the accesses lie in
/// ([`Translator::loop_preconditions`]).
#[derive(Clone, Copy)]
struct Preconditions {
    /// For a counted loop, `K` ([`Translator::last_iteration`]).
    last_iteration: Option<Value>,
    /// For a counted loop whose copy decides its trip test by the counter, the counter's
    /// value there in the last iteration ([`Translator::exit_counter`]).
    exit_counter: Option<Value>,
}

/// Which regions a loop test lets each covered access lie in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Regions {
    /// Mem only: the cheap test, tried first.
    MemOnly,
    /// Mem or the stack, whichever the access starts in.
    MemOrStack,
}

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

/// The trip test of a counted loop's copy ([`crate::jit::hoist::CountedExit`]): taken when
/// the counter register equals (`taken_leaves`) or differs from `end`, its value in the
/// iteration the test ends the loop in.
#[derive(Clone, Copy)]
pub(super) struct CopyExit {
    slot: usize,
    reg: u8,
    taken_leaves: bool,
    end: Value,
}

impl Translator<'_, '_> {
    /// Emits the test and the unchecked copy of `l` at its head (the current block), then
    /// continues in a new block where the checked translation of the loop starts.
    pub(super) fn hoisted_loop(&mut self, l: &HoistedLoop) -> Result<(), JitError> {
        // Every later jump to the head (back edges, return sites, calls) goes to the checked
        // loop, so the head's own block has all its predecessors already.
        let head_block = self.block_at(l.head)?;
        self.b.seal_block(head_block);
        let copy = self.b.create_block();
        let checked = self.b.create_block();
        // The copy is entered through `enter`, whose parameter is the limit of the test
        // that let it run.
        let enter = self.b.create_block();
        let limit = self.b.append_block_param(enter, I64);
        // Mem first: the test for accesses that may also lie in the stack picks each access's
        // region with selects, about twice the code; it runs only when the mem-only test
        // fails (a loop over the stack, or one that leaves mem).
        let either = self.has_stack.then(|| self.b.create_block());
        // Every failed check jumps to `deny`, which alone passes the registers on to the
        // checked loop: jumping there directly would give each check the checked loop's
        // block arguments, and Cranelift would recompute the cheap ones in every check.
        let deny = self.b.create_block();
        self.b.set_cold_block(deny);
        let common = self.loop_preconditions(l, deny);
        let first_limit = self.loop_test(l, Regions::MemOnly, common, either.unwrap_or(deny));
        self.b.ins().jump(enter, &[BlockArg::Value(first_limit)]);
        if let Some(either) = either {
            self.b.set_cold_block(either);
            self.b.switch_to_block(either);
            self.b.seal_block(either);
            let either_limit = self.loop_test(l, Regions::MemOrStack, common, deny);
            self.b.ins().jump(enter, &[BlockArg::Value(either_limit)]);
        }
        self.b.switch_to_block(deny);
        self.b.seal_block(deny);
        self.b.ins().jump(checked, &[]);
        self.b.switch_to_block(enter);
        self.b.seal_block(enter);
        self.b.ins().jump(copy, &[]);

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
        self.counted_exit = l.trip.and_then(|t| {
            let e = t.exit?;
            Some(CopyExit {
                slot: e.slot,
                reg: t.reg,
                taken_leaves: e.taken_leaves,
                end: limit,
            })
        });
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
        self.counted_exit = None;
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

    /// In a counted loop's copy, the condition of the trip test at `pc`, decided by the
    /// counter; `None` elsewhere.
    pub(super) fn counted_exit_condition(&mut self, pc: usize) -> Option<Value> {
        let e = self.counted_exit.filter(|e| e.slot == pc)?;
        let counter = self.get(e.reg);
        let cc = if e.taken_leaves {
            IntCC::Equal
        } else {
            IntCC::NotEqual
        };
        Some(self.b.ins().icmp(cc, counter, e.end))
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

    /// What the test before the loop checks whatever region the accesses lie in, once for
    /// both tests, going to `fail` where a check fails: whether every follower is at its
    /// distance from its leader and, for a counted loop, `K` ([`Translator::last_iteration`])
    /// with its own conditions and the counter's value where the loop ends
    /// ([`Translator::exit_counter`]).
    fn loop_preconditions(&mut self, l: &HoistedLoop, fail: Block) -> Preconditions {
        for f in &l.followers {
            let reg = self.get(f.reg);
            let leader = self.get(f.leader);
            let expected = self.b.ins().iadd_imm_s(leader, f.distance);
            let there = self.b.ins().icmp(IntCC::Equal, reg, expected);
            self.require(there, fail);
        }
        let mut last_iteration = None;
        let mut exit_counter = None;
        if let Some(t) = l.trip {
            let (k, inside) = self.last_iteration(t, fail);
            last_iteration = Some(k);
            exit_counter = t.exit.map(|e| self.exit_counter(t, e, k, inside));
        }
        Preconditions {
            last_iteration,
            exit_counter,
        }
    }

    /// One check of the test before a loop: continues in a new block when `cond` holds, else
    /// jumps to `fail`. A chain of branches, each predicted, costs less than folding the
    /// conditions into one with `band` (a `setcc` and an `and` each).
    fn require(&mut self, cond: Value, fail: Block) {
        let next = self.b.create_block();
        self.b.ins().brif(cond, next, &[], fail, &[]);
        self.b.switch_to_block(next);
        self.b.seal_block(next);
    }

    /// The counter's value at a counted loop's trip test in the iteration that test ends the
    /// loop in: `c0 + offset + n * step`, with `n = K` for a test after the step and, for one
    /// as the iteration starts, `K + 1`, or 0 when the counter starts past the bound (the
    /// first iteration leaves). The test before the loop keeps `K < 2^32`, so the product
    /// is exact.
    fn exit_counter(&mut self, t: Trip, e: CountedExit, k: Value, inside: Value) -> Value {
        let n = if e.at_start {
            let next = self.b.ins().iadd_imm_s(k, 1);
            let zero = self.iconst(0);
            self.b.ins().select(inside, next, zero)
        } else {
            k
        };
        let shift = i64::from(t.step.unsigned_abs().trailing_zeros());
        let moved = self.b.ins().ishl_imm_s(n, shift);
        let start = self.get(t.reg);
        let start = self.b.ins().iadd_imm_s(start, e.counter_offset);
        if t.step > 0 {
            self.b.ins().iadd(start, moved)
        } else {
            self.b.ins().isub(start, moved)
        }
    }

    /// The test before the loop, after the [`Translator::loop_preconditions`] `common`: jumps to
    /// `fail` unless every covered access of the first iteration lies in mem (or, with
    /// [`Regions::MemOrStack`], in mem or the stack), and returns the limit for the copy: with
    /// an induction register, the value it may reach (at most, for a positive step; at
    /// least, for a negative one) with every covered access still inside the region it
    /// started in; for a counted loop, the counter's value at its exit.
    ///
    /// For an access at `(r << s) + k` (`r` the induction register, or one moving with the same
    /// step) in a region where it starts `d0` bytes above the base
    /// and may start at most `lim - 1` bytes above it, `iv` may move `(lim - 1 - d0) >> s` up
    /// or `d0 >> s` down. The limit must also keep `iv` plus one step from wrapping around, so
    /// that the per-iteration comparison stays meaningful.
    ///
    /// For a counted loop, with `K` the last iteration its trip test lets start, an access
    /// whose address moves by `delta` bytes per iteration stays inside its region when
    /// `K * |delta|` is at most the same span. `K` and a register `delta` are below 2^32, and a
    /// constant one below 2^23, so that product is exact.
    fn loop_test(
        &mut self,
        l: &HoistedLoop,
        regions: Regions,
        common: Preconditions,
        fail: Block,
    ) -> Value {
        let Preconditions {
            last_iteration,
            exit_counter,
        } = common;
        let start = l.induction.map(|ind| self.get(ind.reg));
        let mut room: Option<Value> = None;
        for (i, a) in l.accesses.iter().enumerate() {
            // A load and a store of the same element (`a[i] += x`, a swap) need one test.
            if l.accesses[..i].iter().any(|b| b.same_element(a)) {
                continue;
            }
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
            let (d, lim, inside) = if regions == Regions::MemOrStack {
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
            self.require(inside, fail);
            if let (Some((_, s)), Some(stride), Some(k)) = (a.base, a.stride, last_iteration) {
                let (moved, upward) = match stride {
                    Stride::Const(step) => {
                        let delta = step.wrapping_shl(s);
                        let moved = self.b.ins().imul_imm_s(k, delta.wrapping_abs());
                        (moved, delta > 0)
                    }
                    Stride::Reg { inv, add } => {
                        // Only upward, by less than 2^32 bytes.
                        let v = self.get(inv);
                        let delta = self.b.ins().iadd_imm_s(v, add);
                        let small =
                            self.b
                                .ins()
                                .icmp_imm_s(IntCC::UnsignedLessThan, delta, 1 << 32);
                        self.require(small, fail);
                        (self.b.ins().imul(k, delta), true)
                    }
                };
                let span = self.span(lim, d, upward);
                let fits = self
                    .b
                    .ins()
                    .icmp(IntCC::UnsignedLessThanOrEqual, moved, span);
                self.require(fits, fail);
            } else if let (Some((_, s)), Some(ind)) = (a.base, l.induction) {
                let span = self.span(lim, d, ind.step > 0);
                let r = self.b.ins().ushr_imm_s(span, i64::from(s));
                room = Some(match room {
                    None => r,
                    Some(x) => self.b.ins().umin(x, r),
                });
            }
        }
        match (l.induction, start, room) {
            (Some(ind), Some(iv), Some(room)) => {
                let step = ind.step.unsigned_abs() as i64;
                // room <= MAX - step, so the bounds below cannot wrap.
                let fits = self.b.ins().icmp_imm_s(
                    IntCC::UnsignedLessThanOrEqual,
                    room,
                    step.wrapping_neg() - 1,
                );
                self.require(fits, fail);
                if ind.step > 0 {
                    // iv + room + step must not pass u64::MAX.
                    let most = self.iconst(step.wrapping_neg() - 1);
                    let top = self.b.ins().isub(most, room);
                    let no_wrap = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, iv, top);
                    self.require(no_wrap, fail);
                    self.b.ins().iadd(iv, room)
                } else {
                    // iv - room - step must not go below 0.
                    let least = self.b.ins().iadd_imm_s(room, step);
                    let no_wrap = self
                        .b
                        .ins()
                        .icmp(IntCC::UnsignedGreaterThanOrEqual, iv, least);
                    self.require(no_wrap, fail);
                    self.b.ins().isub(iv, room)
                }
            }
            // A counted copy's exit test compares the counter with its value at the exit.
            _ => exit_counter.unwrap_or_else(|| self.iconst(0)),
        }
    }

    /// How many bytes an access `d` bytes into a region where it may start at most `lim - 1`
    /// bytes in can move `upward`, or down, and stay inside. Meaningless when the access is
    /// outside, but the loop test fails then.
    fn span(&mut self, lim: Value, d: Value, upward: bool) -> Value {
        if upward {
            let top = self.b.ins().iadd_imm_s(lim, -1);
            self.b.ins().isub(top, d)
        } else {
            d
        }
    }

    /// For a counted loop, `K`: how many iterations after the first its trip test lets reach
    /// an access, going to `fail` where that is not a number below 2^32.
    ///
    /// Upward (step `s > 0`, bound `B`), the counter goes `c0, c0 + s, ...` and the iterations
    /// that reach an access start at most at `B`, so `K = (B - c0) / s` (0 when `c0 > B`).
    /// That holds only while stepping cannot wrap past `u64::MAX` before passing `B`, so both
    /// `c0` and `B` must be at most `u64::MAX - s` (less the counter's lead in the test,
    /// [`Trip::ahead`], which must not wrap either). Downward, mirrored: `K = (c0 - B) / |s|`,
    /// with `c0` and `B` at least `|s|`. With [`Trip::reg_add`], `c0` is the counter's start
    /// plus that register: the compared sum moves like the counter.
    fn last_iteration(&mut self, t: Trip, fail: Block) -> (Value, Value) {
        let mut counter = self.get(t.reg);
        if let Some(r) = t.reg_add {
            let v = self.get(r);
            counter = self.b.ins().iadd(counter, v);
        }
        let bound = match t.bound_reg {
            Some(r) => {
                let v = self.get(r);
                self.b.ins().iadd_imm_s(v, t.bound_add)
            }
            None => self.iconst(t.bound_add),
        };
        let step = t.step.unsigned_abs();
        let shift = i64::from(step.trailing_zeros());
        let (no_wrap, inside, distance) = if t.step > 0 {
            let highest = self.b.ins().umax(counter, bound);
            let no_wrap = self.b.ins().icmp_imm_s(
                IntCC::UnsignedLessThanOrEqual,
                highest,
                (u64::MAX - step - t.ahead) as i64,
            );
            let inside = self
                .b
                .ins()
                .icmp(IntCC::UnsignedLessThanOrEqual, counter, bound);
            (no_wrap, inside, self.b.ins().isub(bound, counter))
        } else {
            let lowest = self.b.ins().umin(counter, bound);
            let no_wrap =
                self.b
                    .ins()
                    .icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, lowest, step as i64);
            let inside = self
                .b
                .ins()
                .icmp(IntCC::UnsignedGreaterThanOrEqual, counter, bound);
            (no_wrap, inside, self.b.ins().isub(counter, bound))
        };
        self.require(no_wrap, fail);
        if t.start_inside {
            self.require(inside, fail);
        }
        let steps = self.b.ins().ushr_imm_s(distance, shift);
        let zero = self.iconst(0);
        let k = self.b.ins().select(inside, steps, zero);
        let small = self.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, k, 1 << 32);
        self.require(small, fail);
        (k, inside)
    }
}
