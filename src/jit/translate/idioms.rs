//! The loop idioms of `crate::exec::idiom`. A copy loop gets a bulk fast path at its head: it runs
//! the whole remaining loop as one `memmove` (`crate::exec::idiom::bulk_move`, the same routine
//! the interpreter uses) when that is provably the same as running it
//! element by element, and otherwise falls through to the loop's own code. A recognised switch
//! (`crate::exec::switch`) gets a dispatch in place of its compare tree.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64};
use cranelift_codegen::ir::{
    Block, InstBuilder, JumpTableData, StackSlot, StackSlotData, StackSlotKind, Value,
};
use cranelift_frontend::FunctionBuilder;

use super::{Region, RuntimeCall, Translator, flags, trusted};
use crate::error::JitError;
use crate::exec::idiom::compare::CompareLoop;
use crate::exec::idiom::{Bound, Continue, CopyLoop, MAX_ELEMENTS, Sym, bulk_move};
use crate::exec::switch::{Lookup, Switch, Write};
use crate::isa::{Insn, call_kind, op};
use crate::jit::cfg::{self, Cfg};
use crate::jit::runtime;

/// Which slots can run when every recognised switch whose table the translation will use
/// dispatches only through it: the compares behind a table are then dead, and not
/// translating them keeps compile time down. `None` when no switch removes anything.
pub(super) fn reachable(insns: &[Insn], cfg: &Cfg, switches: &[Switch]) -> Option<Vec<bool>> {
    if !switches.iter().any(|s| table_usable(cfg, s)) {
        return None;
    }
    let len = insns.len();
    let mut seen = vec![false; len + 1];
    // Function entries and return sites are entered from calls and returns.
    let mut work: Vec<usize> = vec![0];
    work.extend(cfg.return_sites.iter().copied());
    for (pc, insn) in insns.iter().enumerate() {
        if insn.opc == op::CALL && insn.src == call_kind::LOCAL {
            let callee = pc as i64 + 1 + i64::from(insn.imm);
            work.extend(usize::try_from(callee).ok());
        }
    }
    while let Some(pc) = work.pop() {
        if pc > len || seen[pc] {
            continue;
        }
        seen[pc] = true;
        let Some(insn) = insns.get(pc) else { continue };
        if let Ok(i) = switches.binary_search_by_key(&pc, |s| s.root)
            && let s = &switches[i]
            && table_usable(cfg, s)
        {
            work.extend(s.leaves.iter().map(|l| l.pc));
            continue;
        }
        let next = pc + insn.slots();
        match cfg::jump_target(pc, insn) {
            Some(target) => {
                work.extend(usize::try_from(target).ok());
                if insn.opc != op::JA && insn.opc != op::JA32 {
                    work.push(next);
                }
            }
            None if insn.opc == op::EXIT => {}
            None => work.push(next),
        }
    }
    Some(seen)
}

/// Whether every leaf of switch `s` is a block that can still take a predecessor when the
/// root is translated (a later block, or one with late predecessors).
fn table_usable(cfg: &Cfg, s: &Switch) -> bool {
    s.leaves
        .iter()
        .all(|l| cfg.leader.get(l.pc) == Some(&true) && (l.pc > s.root || cfg.late_pred[l.pc]))
}

impl Translator<'_, '_> {
    /// Emits, at the root compare of `s` (at `pc`), the dispatch that replaces the tree: the
    /// key's leaf is found through a table (dense keys) or a binary search (sparse keys),
    /// its register writes are done and control jumps to it. A switch whose leaves only
    /// pick constants for the same registers and meet at one slot loads the values from
    /// tables instead, without a branch. Returns false (and emits nothing) when a leaf's
    /// block can no longer take a predecessor; the compares are then translated.
    pub(super) fn switch_table(&mut self, pc: usize, s: &Switch) -> Result<bool, JitError> {
        if !table_usable(&self.cfg, s) {
            return Ok(false);
        }
        let mut targets = Vec::with_capacity(s.leaves.len());
        for leaf in &s.leaves {
            let block = self.blocks.get(leaf.pc).copied().flatten();
            match block.filter(|_| leaf.pc > pc || self.cfg.late_pred[leaf.pc]) {
                Some(block) => targets.push(block),
                None => return Ok(false),
            }
        }
        let v = self.get(s.reg);
        let base = self.b.ins().iadd_imm_s(v, s.bias.wrapping_neg() as i64);
        let index = if s.narrow {
            self.b.ins().band_imm_s(base, i64::from(u32::MAX))
        } else {
            base
        };
        if let Some(values) = &s.values {
            // Row i = index - low when i < n, else row n (the outside values).
            let mut i = self
                .b
                .ins()
                .iadd_imm_s(index, values.low.wrapping_neg() as i64);
            if s.narrow {
                i = self.b.ins().band_imm_s(i, i64::from(u32::MAX));
            }
            let n = values.n as i64;
            let inside = self.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, i, n);
            let last = self.entry_const(pc, n);
            let row = self.b.ins().select(inside, i, last);
            let offset = self.b.ins().ishl_imm_s(row, 3);
            let width = values.regs.len();
            let mut loaded = Vec::with_capacity(width);
            for (k, &r) in values.regs.iter().enumerate() {
                let column: Vec<u64> = values.rows.iter().skip(k).step_by(width).copied().collect();
                // SAFETY: `opts.ctx` points to the boxed context of the cache that is
                // compiling, alive for the whole translation.
                let ctx = unsafe { &*self.opts.ctx };
                let address = ctx.keep_table(column);
                let start = self.entry_const(pc, address as i64);
                let at = self.b.ins().iadd(start, offset);
                loaded.push((r, self.b.ins().load(I64, trusted(), at, 0)));
            }
            for (r, value) in loaded {
                self.set(r, value);
            }
            let block = self.block_at(values.join)?;
            self.b.ins().jump(block, &[]);
            return Ok(true);
        }
        // One block per leaf that writes registers; leaves without writes are their targets.
        let mut entries = Vec::with_capacity(s.leaves.len());
        let mut pending = Vec::new();
        for (leaf, &target) in s.leaves.iter().zip(&targets) {
            if leaf.writes.is_empty() {
                entries.push(target);
            } else {
                let block = self.b.create_block();
                entries.push(block);
                pending.push((block, leaf.clone(), target));
            }
        }
        match &s.lookup {
            Lookup::Dense {
                low,
                table,
                outside,
            } => {
                let mut i = self.b.ins().iadd_imm_s(index, low.wrapping_neg() as i64);
                if s.narrow {
                    i = self.b.ins().band_imm_s(i, i64::from(u32::MAX));
                }
                let default = entries[*outside as usize];
                if table.is_empty() {
                    self.b.ins().jump(default, &[]);
                } else {
                    let inside =
                        self.b
                            .ins()
                            .icmp_imm_s(IntCC::UnsignedLessThan, i, table.len() as i64);
                    let lookup = self.b.create_block();
                    self.b.ins().brif(inside, lookup, &[], default, &[]);
                    self.b.switch_to_block(lookup);
                    self.b.seal_block(lookup);
                    let i = self.b.ins().ireduce(I32, i);
                    let calls: Vec<_> = table
                        .iter()
                        .map(|&n| self.b.func.dfg.block_call(entries[n as usize], &[]))
                        .collect();
                    let default = self.b.func.dfg.block_call(default, &[]);
                    let jt = self
                        .b
                        .create_jump_table(JumpTableData::new(default, &calls));
                    self.b.ins().br_table(i, jt);
                }
            }
            Lookup::Sparse { starts, leaves } => {
                let leaves: Vec<Block> = leaves.iter().map(|&n| entries[n as usize]).collect();
                self.search(index, starts, &leaves);
            }
        }
        for (block, leaf, target) in pending {
            self.b.switch_to_block(block);
            self.b.seal_block(block);
            let values: Vec<(u8, Value)> = leaf
                .writes
                .iter()
                .map(|&(r, w)| {
                    let v = match w {
                        Write::Const(c) => self.iconst(c as i64),
                        Write::Key { add, zext32 } => {
                            let v = self.b.ins().iadd_imm_s(base, add as i64);
                            if zext32 {
                                self.b.ins().band_imm_s(v, i64::from(u32::MAX))
                            } else {
                                v
                            }
                        }
                    };
                    (r, v)
                })
                .collect();
            for (r, v) in values {
                self.set(r, v);
            }
            self.b.ins().jump(target, &[]);
        }
        Ok(true)
    }

    /// A balanced binary search of `index` over interval starts `starts` (sorted, the first
    /// 0), jumping to `leaves[j]` for the interval `j` that holds it.
    fn search(&mut self, index: Value, starts: &[u64], leaves: &[Block]) {
        if leaves.len() == 1 {
            self.b.ins().jump(leaves[0], &[]);
            return;
        }
        let mid = leaves.len() / 2;
        let below = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThan, index, starts[mid] as i64);
        let left = self.b.create_block();
        let right = self.b.create_block();
        self.b.ins().brif(below, left, &[], right, &[]);
        self.b.switch_to_block(left);
        self.b.seal_block(left);
        self.search(index, &starts[..mid], &leaves[..mid]);
        self.b.switch_to_block(right);
        self.b.seal_block(right);
        self.search(index, &starts[mid..], &leaves[mid..]);
    }

    /// Emits the guard and bulk copy for `l` at its head (the current block). Control
    /// continues in a new block that runs the loop normally.
    pub(super) fn copy_loop_fast_path(&mut self, l: &CopyLoop) -> Result<(), JitError> {
        let step = l.step(l.counter);
        let s = step.unsigned_abs();
        if s == 0 || !s.is_power_of_two() || s > 1 << 62 {
            return Ok(());
        }
        let s = s as i64;
        let width = i64::from(l.width);
        let exit = self.block_at(l.exit)?;

        // Trip count from the current state, as `CopyLoop::trips` computes it: the loop runs
        // while the counter's new value compares with the bound as `l.cond` says.
        let i0 = self.get(l.counter);
        let bound = match l.bound {
            Bound::Reg(r) => self.get(r),
            Bound::Imm(v) => self.iconst(v),
        };
        let bound = self.b.ins().iadd_imm_s(bound, l.bound_add);
        let (i, b) = if l.signed {
            (
                self.b.ins().bxor_imm_s(i0, i64::MIN),
                self.b.ins().bxor_imm_s(bound, i64::MIN),
            )
        } else {
            (i0, bound)
        };
        let shift = i64::from(s.trailing_zeros());
        let (mut ok, n) = match l.cond {
            Continue::Below | Continue::Above => {
                // Up: i < b and b <= 2^64 - s; down: i > b and b >= s - 1 (no wrap before
                // the bound).
                let (order, room, cc, diff) = if l.cond == Continue::Below {
                    let diff = self.b.ins().isub(b, i);
                    (
                        IntCC::UnsignedLessThan,
                        -s,
                        IntCC::UnsignedLessThanOrEqual,
                        diff,
                    )
                } else {
                    let diff = self.b.ins().isub(i, b);
                    (
                        IntCC::UnsignedGreaterThan,
                        s - 1,
                        IntCC::UnsignedGreaterThanOrEqual,
                        diff,
                    )
                };
                let ordered = self.b.ins().icmp(order, i, b);
                let fits = self.b.ins().icmp_imm_s(cc, b, room);
                let ok = self.b.ins().band(ordered, fits);
                let up = self.b.ins().iadd_imm_s(diff, s - 1);
                (ok, self.b.ins().ushr_imm_s(up, shift))
            }
            Continue::NotEqual => {
                // The counter must hit the bound exactly, after at least one step.
                let diff = if step > 0 {
                    self.b.ins().isub(b, i)
                } else {
                    self.b.ins().isub(i, b)
                };
                let rest = self.b.ins().band_imm_s(diff, s - 1);
                let exact = self.b.ins().icmp_imm_s(IntCC::Equal, rest, 0);
                let moves = self.b.ins().icmp_imm_s(IntCC::NotEqual, diff, 0);
                let ok = self.b.ins().band(exact, moves);
                (ok, self.b.ins().ushr_imm_s(diff, shift))
            }
        };
        let small = self
            .b
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThanOrEqual, n, MAX_ELEMENTS as i64);
        ok = self.b.ins().band(ok, small);
        let bytes = self.b.ins().imul_imm_s(n, width);

        // Lowest address of each range: a loop moving down touches its start address last.
        let down = l.advance() < 0;
        let last_iteration = self.b.ins().iadd_imm_s(n, -1);
        let back = self.b.ins().imul_imm_s(last_iteration, width);
        let low = |t: &mut Self, sym: &Sym| {
            let start = t.sum_at(sym, l, None);
            if down {
                t.b.ins().isub(start, back)
            } else {
                start
            }
        };
        let dst = low(self, &l.dst);
        let src = if l.fill.is_some() {
            dst
        } else {
            low(self, &l.src)
        };
        let src_ok = self.range_ok(src, bytes, width);
        let dst_ok = self.range_ok(dst, bytes, width);
        ok = self.b.ins().band(ok, src_ok);
        ok = self.b.ins().band(ok, dst_ok);
        if l.fill.is_none() {
            // A forward element copy equals memmove unless dst lies inside (src, src + bytes),
            // a backward one unless src lies inside (dst, dst + bytes).
            let (from, to) = if down { (dst, src) } else { (src, dst) };
            let from_end = self.b.ins().iadd(from, bytes);
            let below = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, to, from);
            let after = self
                .b
                .ins()
                .icmp(IntCC::UnsignedGreaterThanOrEqual, to, from_end);
            let apart = self.b.ins().bor(below, after);
            ok = self.b.ins().band(ok, apart);
        }

        let bulk = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(ok, bulk, &[], cont, &[]);
        self.b.switch_to_block(bulk);
        self.b.seal_block(bulk);

        let last = match &l.fill {
            Some(value) => {
                let v = self.sum_at(value, l, None);
                let fill = self.signature(RuntimeCall::Memmove);
                let callee = self.iconst(rt_fill as *const () as i64);
                let packed = self.b.ins().ishl_imm_s(n, 8);
                let packed = self.b.ins().bor_imm_s(packed, width);
                self.b.ins().call_indirect(fill, callee, &[dst, v, packed]);
                self.iconst(0)
            }
            None => {
                // The last element as the last iteration loaded it: no earlier store of the
                // loop can have touched it (see the overlap test above).
                let last_addr = if down {
                    src
                } else {
                    let src_end = self.b.ins().iadd(src, bytes);
                    self.b.ins().iadd_imm_s(src_end, -width)
                };
                let f = flags();
                let last = match l.width {
                    1 => self.b.ins().uload8(I64, f, last_addr, 0),
                    2 => self.b.ins().uload16(I64, f, last_addr, 0),
                    4 => self.b.ins().uload32(f, last_addr, 0),
                    _ => self.b.ins().load(I64, f, last_addr, 0),
                };
                let memmove = self.signature(RuntimeCall::Memmove);
                let callee = self.iconst(bulk_move as *const () as i64);
                self.b
                    .ins()
                    .call_indirect(memmove, callee, &[dst, src, bytes]);
                last
            }
        };

        // Every register the loop writes gets its value after the last iteration (n - 1).
        let finals: Vec<(u8, Value)> = l
            .finals
            .iter()
            .map(|(r, end)| {
                let v = match end {
                    Sym::Loaded => last,
                    sum => self.sum_at(sum, l, Some(last_iteration)),
                };
                (*r, v)
            })
            .collect();
        for (r, v) in finals {
            self.set(r, v);
        }
        self.b.ins().jump(exit, &[]);

        // The loop's own code starts in `cont`, and its back edge (translated later) goes
        // there too: a loop that the guard refused does not re-run the guard per iteration.
        // `cont` stays unsealed until that edge exists.
        self.b.switch_to_block(cont);
        self.blocks[l.head] = Some(cont);
        self.forget_facts();
        Ok(())
    }

    /// Emits the fast-forward of compare loop `l` at its head (the current block): the
    /// registers go into the loop's `frame` (which already holds the run's mem and stack, see
    /// [`compare_frame`]), [`runtime::rt_compare_ff`], given the loop's description (kept in
    /// the context like a switch's value table), skips the
    /// iterations that provably complete and writes the registers back, and the loop's own
    /// code runs on in a new block. Its back edges (translated later) go to that block, so
    /// the call runs once per entry into the loop.
    pub(super) fn compare_fast_forward(
        &mut self,
        l: &CompareLoop,
        frame: StackSlot,
    ) -> Result<(), JitError> {
        let at = |r: u8| (usize::from(r) * 8) as i32;
        for r in 0..11u8 {
            let v = self.get(r);
            self.b.ins().stack_store(I64, v, frame, at(r));
        }
        // SAFETY: `opts.ctx` points to the boxed context of the cache that is compiling,
        // alive for the whole translation.
        let ctx = unsafe { &*self.opts.ctx };
        let description = self.iconst(ctx.keep_table(l.to_words()) as i64);
        let address = self.b.ins().stack_addr(I64, frame, 0);
        let callee = self.iconst(runtime::rt_compare_ff as *const () as i64);
        let sig = self.signature(RuntimeCall::Compare);
        self.b
            .ins()
            .call_indirect(sig, callee, &[description, address]);
        for r in l.written() {
            let v = self.b.ins().stack_load(I64, I64, frame, at(r));
            self.set(r, v);
        }
        let cont = self.b.create_block();
        self.b.ins().jump(cont, &[]);
        self.b.switch_to_block(cont);
        self.blocks[l.head as usize] = Some(cont);
        self.forget_facts();
        Ok(())
    }

    /// The value of `sum` over the start values of iteration `k` (None: iteration 0, i.e. the
    /// current values).
    fn sum_at(&mut self, sum: &Sym, l: &CopyLoop, k: Option<Value>) -> Value {
        let Sym::Sum { terms, constant } = sum else {
            return self.iconst(0);
        };
        let mut total = self.iconst(*constant);
        for &r in terms {
            let mut v = self.get(r);
            if let Some(k) = k {
                let step = l.step(r);
                if step != 0 {
                    let delta = self.b.ins().imul_imm_s(k, step);
                    v = self.b.ins().iadd(v, delta);
                }
            }
            total = self.b.ins().iadd(total, v);
        }
        total
    }

    /// Whether every access of `width` bytes within `[addr, addr + bytes)` passes the bounds
    /// check the loop would apply (inside mem or inside the stack); with bounds checks off,
    /// whether the range does not wrap the address space.
    fn range_ok(&mut self, addr: Value, bytes: Value, width: i64) -> Value {
        if !self.opts.bounds_check {
            let end = self.b.ins().iadd(addr, bytes);
            return self
                .b
                .ins()
                .icmp(IntCC::UnsignedGreaterThanOrEqual, end, addr);
        }
        let in_mem = self.range_in(self.mem_region, addr, bytes, width);
        if !self.has_stack {
            return in_mem;
        }
        let in_stack = self.range_in(self.stack_region, addr, bytes, width);
        self.b.ins().bor(in_mem, in_stack)
    }

    /// `[addr, addr + bytes)` inside `region`, using its limit for `width`-byte accesses
    /// (`len - width + 1`, or 0 when the region is shorter): with `d = addr - base`,
    /// `d < lim` and `bytes - width < lim - d`.
    fn range_in(&mut self, region: Region, addr: Value, bytes: Value, width: i64) -> Value {
        let lim = region.lim[width.trailing_zeros() as usize];
        let d = self.b.ins().isub(addr, region.base);
        let first = self.b.ins().icmp(IntCC::UnsignedLessThan, d, lim);
        let room = self.b.ins().isub(lim, d);
        let rest = self.b.ins().iadd_imm_s(bytes, -width);
        let fits = self.b.ins().icmp(IntCC::UnsignedLessThan, rest, room);
        self.b.ins().band(first, fits)
    }
}

/// The bulk store of a fill loop: `packed >> 8` elements of `packed & 0xff` bytes (1, 2, 4 or
/// 8), each the low bytes of `value`, from `dst` on. Returns 0 (the signature is memmove's).
///
/// # Safety
/// The range must be writable: the guard checked it against mem or the stack (or bounds
/// checks are off, and the range does not wrap).
unsafe extern "C" fn rt_fill(dst: *mut u8, value: u64, packed: u64) -> u64 {
    let width = (packed & 0xff) as usize;
    let bytes = (packed >> 8) as usize * width;
    // SAFETY: this function's contract.
    let out = unsafe { std::slice::from_raw_parts_mut(dst, bytes) };
    // No panic may unwind into compiled code (there is none to expect: `width` is 1, 2, 4 or 8).
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::exec::idiom::fill_elements(out, value, width);
    }));
    0
}

/// Creates the frame [`runtime::rt_compare_ff`] reads for a compare loop and fills in what
/// stays the same for a whole run (emitted in the entry block): after room for the eleven
/// registers, `regions`: mem's start and length and the stack's. (The loop's description is
/// in the context, see [`Translator::compare_fast_forward`].)
pub(super) fn compare_frame(b: &mut FunctionBuilder<'_>, regions: [Value; 4]) -> StackSlot {
    let slot = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        (runtime::COMPARE_FRAME_WORDS * 8) as u32,
        3,
    ));
    for (i, v) in regions.into_iter().enumerate() {
        b.ins().stack_store(I64, v, slot, ((11 + i) * 8) as i32);
    }
    slot
}
