//! Loop idioms both engines run as one bulk operation: element-by-element copy loops.
//! (Switches, the other idiom both engines share, are in `crate::exec::switch`.)
//!
//! [`find_copy_loops`] recognises single-block loops that load one element and store it
//! unchanged, with both addresses advancing by the element width each iteration, as C
//! compilers emit for `for (i = 0; i < n; i++) dst[i] = src[i]` and pointer-increment copies.
//! The analysis is a small symbolic execution of one iteration: every register is either
//! invariant, an induction variable (`r += constant`), a temporary computed from those
//! (additions and moves only) before being read, or the loaded element.
//!
//! The JIT (`jit/translate/idioms.rs`) emits, at the loop's first instruction, a guard that
//! computes the trip count and checks that running the whole loop at once is exact (both
//! ranges inside mem or the stack, or with bounds checks off at least not wrapping, and no
//! overlap in which a forward element copy differs from `memmove`); it then copies with
//! [`bulk_move`] (`memmove`'s meaning), sets every register the loop writes to its value after the last iteration and
//! leaves the loop. When the guard fails, the loop runs instruction by instruction, so every
//! access the interpreter would refuse is refused at the same pc with the same stores done
//! before it. The interpreter's fast path does the same with [`CopyLoop::run_bulk`]. Neither
//! uses the idiom when instructions are counted (an instruction limit) or traced.

use alloc::vec;
use alloc::vec::Vec;

pub(crate) mod compare;

use crate::exec::memory::Regions;
use crate::isa::{Insn, call_kind, class, jmp, mode, op, size, source};

/// Every idiom of a program that both engines run in bulk: recognised once, when the program
/// is loaded ([`Idioms::of`]), and read by the interpreter's pre-decoding and by every JIT
/// compile (each recogniser walks the whole program; a compile of a 177-slot switch spent a
/// sixth of its time redoing them).
#[derive(Debug, Default, Clone)]
pub(crate) struct Idioms {
    /// Copy and fill loops ([`find_copy_loops`]).
    pub copies: Vec<CopyLoop>,
    /// Compare loops ([`compare::find_compare_loops`]).
    pub compares: Vec<compare::CompareLoop>,
    /// Compare trees and chains ([`crate::exec::switch::find_switches`]).
    pub switches: Vec<crate::exec::switch::Switch>,
}

impl Idioms {
    /// Runs every recogniser over `insns` (a verified program's slots).
    pub(crate) fn of(insns: &[Insn]) -> Self {
        let copies = find_copy_loops(insns);
        let compares = compare::find_compare_loops(insns, &copies);
        Idioms {
            copies,
            compares,
            switches: crate::exec::switch::find_switches(insns),
        }
    }
}

/// Longest copy a bulk operation takes on, in elements (keeps `n * width` far from overflow;
/// longer copies cannot fit any region anyway).
pub(crate) const MAX_ELEMENTS: u64 = 1 << 40;

/// A value during the symbolic iteration: the sum of the iteration-start values of `terms`,
/// plus `constant`; or the element just loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sym {
    /// `sum(start value of r for r in terms) + constant` (wrapping).
    Sum {
        /// Registers added (at most a few; order irrelevant).
        terms: Vec<u8>,
        /// Added constant.
        constant: i64,
    },
    /// The zero-extended element loaded in this iteration.
    Loaded,
}

impl Sym {
    fn reg(r: u8) -> Sym {
        Sym::Sum {
            terms: vec![r],
            constant: 0,
        }
    }

    fn constant(c: i64) -> Sym {
        Sym::Sum {
            terms: Vec::new(),
            constant: c,
        }
    }

    fn add(&self, other: &Sym) -> Option<Sym> {
        match (self, other) {
            (
                Sym::Sum { terms, constant },
                Sym::Sum {
                    terms: t2,
                    constant: c2,
                },
            ) if terms.len() + t2.len() <= 4 => Some(Sym::Sum {
                terms: terms.iter().chain(t2).copied().collect(),
                constant: constant.wrapping_add(*c2),
            }),
            _ => None,
        }
    }
}

/// How the loop decides to run again, in terms of an induction register `i` (its value after
/// the iteration's update) and the bound `b` (plus [`CopyLoop::bound_add`]), compared unsigned
/// or, with [`CopyLoop::signed`], signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continue {
    /// While `i < b` (the counter moves up).
    Below,
    /// While `i > b` (the counter moves down).
    Above,
    /// While `i != b` (either way).
    NotEqual,
}

/// The loop bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// An invariant register.
    Reg(u8),
    /// A constant (the sign-extended immediate).
    Imm(i64),
}

/// A recognised copy loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyLoop {
    /// First slot of the loop (the back edge's target); the guard goes here.
    pub head: usize,
    /// Where the loop exits: the slot after its conditional back edge, or the target of its
    /// conditional exit, which may lie after the loop or before it.
    pub exit: usize,
    /// The loop's last slot (its back edge): the body is `head..=latch`.
    pub latch: usize,
    /// Element width in bytes (1, 2, 4 or 8).
    pub width: u8,
    /// Source address at iteration 0, over iteration-start registers.
    pub src: Sym,
    /// Destination address at iteration 0.
    pub dst: Sym,
    /// The induction register the condition tests.
    pub counter: u8,
    /// How the condition continues.
    pub cond: Continue,
    /// What the counter is compared with.
    pub bound: Bound,
    /// Added (wrapping) to the bound: `i <= b` is `i < b + 1`, `i >= b` is `i > b - 1`.
    pub bound_add: i64,
    /// Whether the condition compares signed.
    pub signed: bool,
    /// `Some(value)`: a fill loop storing `value` (a constant or a sum of invariant registers,
    /// truncated to the element width) instead of a loaded element; `src` is then unused.
    pub fill: Option<Sym>,
    /// `(r, step)` for every induction register (`r += step` once per iteration, step ≠ 0).
    pub steps: Vec<(u8, i64)>,
    /// Registers the body writes, with their value at the end of an iteration in terms of that
    /// iteration's start values (induction registers included).
    pub finals: Vec<(u8, Sym)>,
}

impl CopyLoop {
    /// The per-iteration step of register `r` (0 for invariant registers).
    pub fn step(&self, r: u8) -> i64 {
        self.steps
            .iter()
            .find(|(reg, _)| *reg == r)
            .map_or(0, |&(_, s)| s)
    }

    /// How far the destination moves per iteration (± the width).
    pub fn advance(&self) -> i64 {
        match &self.dst {
            Sym::Sum { terms, .. } => terms.iter().map(|&r| self.step(r)).sum(),
            Sym::Loaded => 0,
        }
    }

    /// The number of iterations left when the loop's head is reached with counter `i0` and
    /// bound register (or immediate) `bound`, when the bulk run can know it exactly: the
    /// counter reaches the bound without wrapping (`Below`, `Above`) or hits it exactly
    /// (`NotEqual`), in at least one and at most [`MAX_ELEMENTS`] iterations.
    pub fn trips(&self, i0: u64, bound: u64) -> Option<u64> {
        let step = self.step(self.counter);
        let s = step.unsigned_abs();
        if s == 0 || !s.is_power_of_two() || s > 1 << 62 {
            return None;
        }
        let b = bound.wrapping_add(self.bound_add as u64);
        let bias = if self.signed { 1 << 63 } else { 0 };
        let (i, b) = (i0 ^ bias, b ^ bias);
        let n = match self.cond {
            // Up to the first value >= b, which must not wrap: b <= 2^64 - s.
            Continue::Below if step > 0 && i < b && b <= s.wrapping_neg() => (b - i).div_ceil(s),
            // Down to the first value <= b, which must not wrap: b >= s - 1.
            Continue::Above if step < 0 && i > b && b >= s - 1 => (i - b).div_ceil(s),
            Continue::NotEqual => {
                let diff = if step > 0 {
                    b.wrapping_sub(i)
                } else {
                    i.wrapping_sub(b)
                };
                if diff == 0 || !diff.is_multiple_of(s) {
                    return None;
                }
                diff / s
            }
            _ => return None,
        };
        (n <= MAX_ELEMENTS).then_some(n)
    }

    /// The interpreter's bulk run: from the iteration-start registers `reg`, runs the rest of
    /// the loop at once and leaves `reg` as after its last iteration, when that is provably
    /// the same as running it element by element (the same guard as the JIT's); otherwise
    /// changes nothing and returns false.
    ///
    /// # Safety
    /// `regions` describes this execution; with bounds checking off, the caller accepts raw
    /// host accesses (as for every access of such a run).
    pub(crate) unsafe fn run_bulk(&self, reg: &mut [u64; 16], regions: &Regions<'_>) -> bool {
        let bound = match self.bound {
            Bound::Reg(r) => reg[usize::from(r)],
            Bound::Imm(v) => v as u64,
        };
        let Some(n) = self.trips(reg[usize::from(self.counter)], bound) else {
            return false;
        };
        let width = u64::from(self.width);
        let bytes = n * width;
        let value = |sym: &Sym, k: u64| match sym {
            Sym::Sum { terms, constant } => terms.iter().fold(*constant as u64, |acc, &r| {
                let start = reg[usize::from(r)].wrapping_add(k.wrapping_mul(self.step(r) as u64));
                acc.wrapping_add(start)
            }),
            Sym::Loaded => 0,
        };
        // Lowest address of each range: a loop moving down touches its start address last.
        let down = self.advance() < 0;
        let low = |sym: &Sym| {
            let start = value(sym, 0);
            if down {
                start.wrapping_sub((n - 1) * width)
            } else {
                start
            }
        };
        let dst = low(&self.dst);
        let src = if self.fill.is_some() {
            dst
        } else {
            low(&self.src)
        };
        let inside = |addr: u64| {
            let Some(end) = addr.checked_add(bytes) else {
                return false;
            };
            !regions.bounds_check
                || (regions.mem_start != 0 && addr >= regions.mem_start && end <= regions.mem_end)
                || (addr >= regions.stack_start && end <= regions.stack_end)
        };
        if !inside(src) || !inside(dst) {
            return false;
        }
        let mut last = 0;
        if let Some(fill) = &self.fill {
            let v = value(fill, 0);
            let w = usize::from(self.width);
            // SAFETY: the range was checked above (or raw mode).
            let out = unsafe { core::slice::from_raw_parts_mut(dst as *mut u8, bytes as usize) };
            fill_elements(out, v, w);
        } else {
            // A forward element copy is a memmove unless dst lies inside (src, src + bytes); a
            // backward one unless src lies inside (dst, dst + bytes).
            let (from, to) = if down { (dst, src) } else { (src, dst) };
            if to > from && to < from + bytes {
                return false;
            }
            // The element the last iteration loaded (no earlier store touched it).
            let last_ptr = if down { src } else { src + bytes - width };
            // SAFETY: inside a checked region (or raw mode).
            last = unsafe { crate::exec::memory::load(last_ptr, usize::from(self.width)) };
            // SAFETY: both ranges checked above; `bulk_move` has memmove semantics.
            unsafe { bulk_move(dst, src, bytes) };
        }
        // Every final value is computed from the iteration-start registers before any is set.
        let mut finals = [None; 11];
        for (r, end) in &self.finals {
            finals[usize::from(*r)] = Some(match end {
                Sym::Loaded => last,
                sum => value(sum, n - 1),
            });
        }
        for (r, v) in finals.iter().enumerate() {
            if let Some(v) = v {
                reg[r] = *v;
            }
        }
        true
    }
}

/// The bulk store of a fill loop, in both engines: fills `out` (a whole number of elements of
/// `width` bytes: 1, 2, 4 or 8) with the low `width` bytes of `value`, little-endian.
pub(crate) fn fill_elements(out: &mut [u8], value: u64, width: usize) {
    let pattern = value.to_le_bytes();
    let pattern = &pattern[..width.clamp(1, 8)];
    if pattern.iter().all(|&b| b == pattern[0]) {
        out.fill(pattern[0]);
    } else {
        fill_pattern(out, pattern);
    }
}

/// Distances between source and destination, modulo [`PAGE`], below which (either way) a
/// disjoint bulk copy does not go through the C library's `memmove` (see [`bulk_move`]).
const SHORT_PAGE_GAP: u64 = 64;

/// The page size the short-distance test of [`bulk_move`] works modulo.
const PAGE: u64 = 4096;

/// How [`bulk_move`] copies a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MovePlan {
    /// The C library's `memmove` (`core::ptr::copy`).
    Library,
    /// Our own loop of 16-byte loads and stores, front to back (the ranges are disjoint).
    Chunks,
}

/// Which way [`bulk_move`] copies `bytes` bytes from `src` to `dst`: disjoint ranges of at
/// least 64 bytes whose addresses are within [`SHORT_PAGE_GAP`] of each other modulo the page
/// size take [`MovePlan::Chunks`]. That is where glibc's `memmove` switches to `rep movsb`,
/// which on some x86 cores runs more than ten times slower when the two addresses nearly
/// coincide within a page (a copy of 256 KiB to `src + 256 KiB + 8` took 75 µs against 5 µs
/// one cache line further on): exactly the layout of two arrays placed back to back.
fn move_plan(dst: u64, src: u64, bytes: u64) -> MovePlan {
    let disjoint = dst.wrapping_sub(src) >= bytes && src.wrapping_sub(dst) >= bytes;
    let gap = dst.wrapping_sub(src) % PAGE;
    let near = !(SHORT_PAGE_GAP..=PAGE - SHORT_PAGE_GAP).contains(&gap);
    if disjoint && near && bytes >= 64 {
        MovePlan::Chunks
    } else {
        MovePlan::Library
    }
}

/// Copies `bytes` bytes from `src` to `dst` with `memmove`'s meaning: the bulk step of every
/// copy loop, in the interpreter ([`CopyLoop::run_bulk`]) and in compiled code (which calls
/// it with `memmove`'s signature). Chooses the copy routine by [`move_plan`]. Returns 0.
/// Nothing in it can panic (no indexing, no checked arithmetic that can overflow), so no
/// unwind can reach the compiled code that calls it.
///
/// # Safety
/// Both ranges must be valid for `bytes` bytes (reads of `src`, writes of `dst`).
pub(crate) unsafe extern "C" fn bulk_move(dst: u64, src: u64, bytes: u64) -> u64 {
    let (d, s) = (dst as *mut u8, src as *const u8);
    match move_plan(dst, src, bytes) {
        // SAFETY: this function's contract; `copy` allows overlap.
        MovePlan::Library => unsafe { core::ptr::copy(s, d, bytes as usize) },
        MovePlan::Chunks => {
            let bytes = bytes as usize;
            let whole = bytes - bytes % 64;
            let mut at = 0;
            // Four 16-byte moves per step: no single store strides the whole range, so the
            // compiler does not turn the loop back into a `memcpy` call.
            while at < whole {
                for k in [0, 16, 32, 48] {
                    // SAFETY: `at + k + 16 <= bytes`, inside the readable source range.
                    let v = unsafe { s.wrapping_add(at + k).cast::<u128>().read_unaligned() };
                    // SAFETY: the same offset in the writable destination range, which is
                    // disjoint from the source (`move_plan`).
                    unsafe { d.wrapping_add(at + k).cast::<u128>().write_unaligned(v) };
                }
                at += 64;
            }
            // SAFETY: the tail `[whole, bytes)` of both (disjoint) ranges.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    s.wrapping_add(whole),
                    d.wrapping_add(whole),
                    bytes - whole,
                )
            };
        }
    }
    0
}

/// Fills `out` (a whole number of elements) with copies of the element `pattern`: the first
/// element written directly, then the filled prefix doubled with `copy_within` (a `memcpy`
/// each time), so a fill of n bytes is O(log n) bulk copies rather than one small copy per
/// element.
fn fill_pattern(out: &mut [u8], pattern: &[u8]) {
    let w = pattern.len();
    if out.len() < w {
        return;
    }
    out[..w].copy_from_slice(pattern);
    let mut filled = w;
    while filled < out.len() {
        let n = filled.min(out.len() - filled);
        out.copy_within(..n, filled);
        filled += n;
    }
}

/// Longest copy-loop body recognised, in slots.
const MAX_COPY_BODY: usize = 32;

/// `entered[pc]`: control can reach slot `pc` other than by falling through from `pc - 1`
/// (the program's start, a jump or local-call target, or a return site).
pub(crate) fn entry_points(insns: &[Insn]) -> Vec<bool> {
    let mut entered = vec![false; insns.len() + 1];
    entered[0] = true;
    let mut mark = |target: i64| {
        if let Some(slot) = usize::try_from(target)
            .ok()
            .and_then(|t| entered.get_mut(t))
        {
            *slot = true;
        }
    };
    for (pc, insn) in insns.iter().enumerate() {
        let next = pc as i64 + 1;
        match insn.class() {
            class::JMP32 if insn.opc == op::JA32 => mark(next + i64::from(insn.imm)),
            class::JMP if insn.opc == op::CALL && insn.src == call_kind::LOCAL => {
                mark(next + i64::from(insn.imm));
                mark(next);
            }
            class::JMP if matches!(insn.opc & 0xf0, jmp::CALL | jmp::EXIT) => {}
            class::JMP | class::JMP32 => mark(next + i64::from(insn.off)),
            _ => {}
        }
    }
    entered
}

/// Finds the copy loops of a program, by head slot.
pub(crate) fn find_copy_loops(insns: &[Insn]) -> Vec<CopyLoop> {
    let entered = entry_points(insns);
    let mut loops = Vec::new();
    for (latch, insn) in insns.iter().enumerate() {
        if insn.class() != class::JMP || insn.off >= 0 {
            continue;
        }
        let head = latch as i64 + 1 + i64::from(insn.off);
        let Ok(head) = usize::try_from(head) else {
            continue;
        };
        // Single block: nothing jumps into the body except at its head. (Short bodies only:
        // a copy loop has a handful of instructions, and the search stays linear.)
        if head >= latch || latch - head > MAX_COPY_BODY || (head + 1..=latch).any(|pc| entered[pc])
        {
            continue;
        }
        // `ja head` after a conditional exit, or a conditional back edge.
        let back_edge = if insn.opc == op::JA {
            let Some(test) = latch.checked_sub(1).map(|pc| insns[pc]) else {
                continue;
            };
            // The exit may lie after the loop or before it (clang puts an enclosing loop's
            // latch before an inner loop it falls out of); a target inside the body is no exit.
            let exit = latch as i64 + i64::from(test.off);
            if test.class() != class::JMP
                || test.opc == op::JA
                || (head as i64..=latch as i64).contains(&exit)
            {
                continue;
            }
            BackEdge::ExitThenJump {
                exit: exit as usize,
            }
        } else {
            BackEdge::Conditional
        };
        if let Some(found) = analyse(insns, head, latch, back_edge) {
            loops.push(found);
        }
    }
    loops.sort_by_key(|l| l.head);
    loops.dedup_by_key(|l| l.head);
    loops
}

fn analyse(insns: &[Insn], head: usize, latch: usize, back_edge: BackEdge) -> Option<CopyLoop> {
    let body_end = match back_edge {
        BackEdge::Conditional => latch,
        BackEdge::ExitThenJump { .. } => latch - 1,
    };
    if body_end <= head {
        return None;
    }
    let mut state: Vec<Sym> = (0..11).map(Sym::reg).collect();
    // Registers whose start value the body reads, and registers it writes.
    let mut read = [false; 11];
    let mut written = [false; 11];
    let mut load: Option<(Sym, u8, u8)> = None; // (address, width, destination register)
    let mut store: Option<(Sym, u8, Sym)> = None; // (address, width, value)
    let use_reg = |r: u8, state: &[Sym], read: &mut [bool; 11], written: &[bool; 11]| {
        let r = usize::from(r);
        if r > 10 {
            return None;
        }
        if !written[r] {
            read[r] = true;
        }
        Some(state[r].clone())
    };
    for insn in &insns[head..body_end] {
        let dst = usize::from(insn.dst);
        if dst > 10 {
            return None;
        }
        match insn.opc {
            // mov64 imm / reg
            0xb7 => state[dst] = Sym::constant(i64::from(insn.imm)),
            0xbf if insn.off == 0 => state[dst] = use_reg(insn.src, &state, &mut read, &written)?,
            // add64 imm / reg
            0x07 => {
                let d = use_reg(insn.dst, &state, &mut read, &written)?;
                state[dst] = d.add(&Sym::constant(i64::from(insn.imm)))?;
            }
            0x0f => {
                let d = use_reg(insn.dst, &state, &mut read, &written)?;
                let s = use_reg(insn.src, &state, &mut read, &written)?;
                state[dst] = d.add(&s)?;
            }
            // sub64 imm
            0x17 => {
                let d = use_reg(insn.dst, &state, &mut read, &written)?;
                state[dst] = d.add(&Sym::constant(i64::from(insn.imm).wrapping_neg()))?;
            }
            // ldx (zero-extending), offset 0, once, before the store.
            opc if opc & 0x07 == class::LDX && opc & mode::MASK == mode::MEM => {
                if load.is_some() || store.is_some() || insn.off != 0 {
                    return None;
                }
                let addr = use_reg(insn.src, &state, &mut read, &written)?;
                if addr == Sym::Loaded {
                    return None;
                }
                load = Some((addr, size::bytes(opc) as u8, insn.dst));
                state[dst] = Sym::Loaded;
            }
            // stx of the loaded element (a copy) or of a value that does not depend on the
            // loop (a fill), offset 0, once; st of an immediate (a fill).
            opc if (opc & 0x07 == class::STX || opc & 0x07 == class::ST)
                && opc & mode::MASK == mode::MEM =>
            {
                let width = size::bytes(opc) as u8;
                if store.is_some() || insn.off != 0 {
                    return None;
                }
                let value = if opc & 0x07 == class::ST {
                    Sym::constant(i64::from(insn.imm))
                } else {
                    use_reg(insn.src, &state, &mut read, &written)?
                };
                match (&load, &value) {
                    (Some((_, w, _)), Sym::Loaded) if *w == width => {}
                    (None, Sym::Sum { .. }) => {}
                    _ => return None,
                }
                let addr = use_reg(insn.dst, &state, &mut read, &written)?;
                if addr == Sym::Loaded {
                    return None;
                }
                store = Some((addr, width, value));
                // A store writes no register.
                continue;
            }
            _ => return None,
        }
        written[dst] = true;
    }
    let (dst, width, stored) = store?;
    let (src, fill) = match load {
        Some((src, _, _)) => (src, None),
        None => (Sym::constant(0), Some(stored)),
    };

    // Classify the written registers by their end-of-iteration value.
    let mut steps = Vec::new();
    let mut finals = Vec::new();
    for r in 0..11u8 {
        if !written[usize::from(r)] {
            continue;
        }
        let end = state[usize::from(r)].clone();
        match &end {
            // An induction register (or one the body leaves unchanged).
            Sym::Sum { terms, constant } if terms == &[r] && *constant != 0 => {
                steps.push((r, *constant));
            }
            Sym::Sum { terms, .. } if terms == &[r] => {}
            // A temporary: its start value must be dead (not read before written).
            _ if read[usize::from(r)] => return None,
            _ => {}
        }
        finals.push((r, end));
    }
    let step_of = |r: u8| {
        steps
            .iter()
            .find(|(reg, _)| *reg == r)
            .map_or(0, |&(_, s)| s)
    };
    // Both addresses must advance by exactly one element per iteration, the same way.
    let advance = |addr: &Sym| match addr {
        Sym::Sum { terms, .. } => terms
            .iter()
            .try_fold(0i64, |acc, &r| acc.checked_add(step_of(r))),
        Sym::Loaded => None,
    };
    let moved = advance(&dst)?;
    if moved.unsigned_abs() != u64::from(width) || (fill.is_none() && advance(&src) != Some(moved))
    {
        return None;
    }
    // A fill's value must be the same in every iteration.
    if let Some(Sym::Sum { terms, .. }) = &fill
        && terms.iter().any(|&r| written[usize::from(r)])
    {
        return None;
    }

    // The back edge: `if a OP b goto head`, or `if a OP b goto out` followed by `ja head`,
    // testing an induction register's new value against an invariant or a constant.
    let (test, continues) = match back_edge {
        BackEdge::Conditional => (insns[latch], true),
        BackEdge::ExitThenJump { .. } => (insns[latch - 1], false),
    };
    let invariant = |r: u8| r <= 10 && !written[usize::from(r)];
    let (rel, signed) = relation(test.opc & 0xf0)?;
    let rel = if continues { rel } else { rel.negated() };
    let (counter, bound, rel) = if test.opc & source::MASK == source::X {
        if step_of(test.dst) != 0 && invariant(test.src) {
            (test.dst, Bound::Reg(test.src), rel)
        } else if step_of(test.src) != 0 && invariant(test.dst) {
            (test.src, Bound::Reg(test.dst), rel.swapped())
        } else {
            return None;
        }
    } else if step_of(test.dst) != 0 {
        (test.dst, Bound::Imm(i64::from(test.imm)), rel)
    } else {
        return None;
    };
    let (cond, bound_add) = match rel {
        Rel::Ne => (Continue::NotEqual, 0),
        Rel::Lt => (Continue::Below, 0),
        Rel::Le => (Continue::Below, 1),
        Rel::Gt => (Continue::Above, 0),
        Rel::Ge => (Continue::Above, -1),
        Rel::Eq => return None,
    };
    let exit = match back_edge {
        BackEdge::Conditional => latch + 1,
        BackEdge::ExitThenJump { exit } => exit,
    };
    Some(CopyLoop {
        head,
        exit,
        latch,
        width,
        src,
        dst,
        counter,
        cond,
        bound,
        bound_add,
        signed,
        fill,
        steps,
        finals,
    })
}

/// How a loop's last slots send control back to its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackEdge {
    /// `if a OP b goto head` at the latch.
    Conditional,
    /// `if a OP b goto exit` just before a `ja head` at the latch.
    ExitThenJump {
        /// Where the conditional jump leaves to.
        exit: usize,
    },
}

/// A comparison of a jump, `dst OP src`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl Rel {
    /// `!(a OP b)` as `a OP' b`.
    pub(crate) fn negated(self) -> Rel {
        match self {
            Rel::Eq => Rel::Ne,
            Rel::Ne => Rel::Eq,
            Rel::Lt => Rel::Ge,
            Rel::Le => Rel::Gt,
            Rel::Gt => Rel::Le,
            Rel::Ge => Rel::Lt,
        }
    }

    /// `a OP b` as `b OP' a`.
    pub(crate) fn swapped(self) -> Rel {
        match self {
            Rel::Lt => Rel::Gt,
            Rel::Le => Rel::Ge,
            Rel::Gt => Rel::Lt,
            Rel::Ge => Rel::Le,
            other => other,
        }
    }
}

/// The comparison of a 64-bit conditional jump's operation bits, and whether it is signed.
pub(crate) fn relation(operation: u8) -> Option<(Rel, bool)> {
    Some(match operation {
        jmp::JEQ => (Rel::Eq, false),
        jmp::JNE => (Rel::Ne, false),
        jmp::JLT => (Rel::Lt, false),
        jmp::JLE => (Rel::Le, false),
        jmp::JGT => (Rel::Gt, false),
        jmp::JGE => (Rel::Ge, false),
        jmp::JSLT => (Rel::Lt, true),
        jmp::JSLE => (Rel::Le, true),
        jmp::JSGT => (Rel::Gt, true),
        jmp::JSGE => (Rel::Ge, true),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    #[test]
    fn clang_indexed_byte_copy() {
        // The shape clang gives `for (i = 0; i < n; i++) dst[i] = src[i]`.
        let insns = assembled(
            "mov %r5, 0\nloop:\nmov %r0, %r4\nadd %r0, %r5\nmov %r6, %r1\nadd %r6, %r5\n\
             ldxb %r6, [%r6+0]\nstxb [%r0+0], %r6\nadd %r5, 1\njgt %r3, %r5, loop\nexit\n",
        );
        let loops = find_copy_loops(&insns);
        assert_eq!(loops.len(), 1);
        let l = &loops[0];
        assert_eq!((l.head, l.exit, l.width, l.counter), (1, 9, 1, 5));
        assert_eq!(l.cond, Continue::Below);
        assert_eq!(l.bound, Bound::Reg(3));
        assert_eq!(l.steps, vec![(5, 1)]);
        assert_eq!(
            l.src,
            Sym::Sum {
                terms: vec![1, 5],
                constant: 0
            }
        );
    }

    #[test]
    fn pointer_increment_word_copy() {
        let insns = assembled(
            "loop:\nldxdw %r0, [%r1+0]\nstxdw [%r4+0], %r0\nadd %r1, 8\nadd %r4, 8\n\
             jlt %r1, %r5, loop\nexit\n",
        );
        let loops = find_copy_loops(&insns);
        assert_eq!(loops.len(), 1);
        assert_eq!(loops[0].width, 8);
        assert_eq!(loops[0].steps, vec![(1, 8), (4, 8)]);
    }

    #[test]
    fn fill_whose_exit_lies_before_it() {
        // The inner loop of a counting sort at -O2: its exit jumps back to the enclosing
        // loop's latch, which clang placed before it.
        let insns = assembled(
            "mov %r2, 0\nja outer\nnext:\nadd %r2, 1\njeq %r2, 16, done\nouter:\n\
             mov %r3, %r8\njeq %r3, 0, next\nmov %r4, %r2\nlsh %r4, 4\nfill:\nmov %r5, %r1\n\
             add %r5, %r0\nstxb [%r5+0], %r4\nadd %r0, 1\nadd %r3, -1\njeq %r3, 0, next\n\
             ja fill\ndone:\nexit\n",
        );
        let loops = find_copy_loops(&insns);
        assert_eq!(loops.len(), 1);
        let l = &loops[0];
        assert_eq!((l.head, l.latch, l.exit, l.width), (8, 14, 2, 1));
        assert_eq!(l.fill, Some(Sym::reg(4)));
        assert_eq!(
            (l.counter, l.cond, l.bound),
            (3, Continue::NotEqual, Bound::Imm(0))
        );
    }

    #[test]
    fn not_copies() {
        for text in [
            // The stored value is modified.
            "loop:\nldxb %r0, [%r1+0]\nadd %r0, 1\nstxb [%r4+0], %r0\nadd %r1, 1\nadd %r4, 1\n\
             jlt %r1, %r5, loop\nexit\n",
            // Strided: addresses advance by 2 for 1-byte elements.
            "loop:\nldxb %r0, [%r1+0]\nstxb [%r4+0], %r0\nadd %r1, 2\nadd %r4, 1\n\
             jlt %r1, %r5, loop\nexit\n",
            // A second exit from the body.
            "loop:\nldxb %r0, [%r1+0]\njeq %r0, 0, out\nstxb [%r4+0], %r0\nadd %r1, 1\n\
             add %r4, 1\njlt %r1, %r5, loop\nout:\nexit\n",
            // The bound changes in the loop.
            "loop:\nldxb %r0, [%r1+0]\nstxb [%r4+0], %r0\nadd %r1, 1\nadd %r4, 1\nadd %r5, 1\n\
             jlt %r1, %r5, loop\nexit\n",
            // A temporary read before it is written.
            "loop:\nldxb %r0, [%r1+0]\nstxb [%r4+0], %r0\nadd %r1, 1\nadd %r4, 1\nadd %r7, %r6\n\
             mov %r6, 3\njlt %r1, %r5, loop\nexit\n",
        ] {
            let insns = assembled(text);
            assert!(find_copy_loops(&insns).is_empty(), "{text}");
        }
    }
}

/// How many of each idiom the recognisers find in a program: what `tests/corpus.rs` reports
/// per variant (not a stable API).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// Loops that copy memory (memcpy/memmove-like).
    pub copy: usize,
    /// Loops that fill memory with one value (memset-like).
    pub fill: usize,
    /// Loops that compare two ranges or strings (memcmp/strcmp-like).
    pub compare: usize,
    /// Compare trees and chains turned into tables.
    pub switch: usize,
}

/// Runs every recogniser over `insns` (a verified program's slots).
pub fn census(insns: &[Insn]) -> Census {
    let idioms = Idioms::of(insns);
    let early_copies = idioms.compares.iter().filter(|l| l.is_copy()).count();
    Census {
        copy: idioms.copies.iter().filter(|l| l.fill.is_none()).count() + early_copies,
        fill: idioms.copies.iter().filter(|l| l.fill.is_some()).count(),
        compare: idioms.compares.len() - early_copies,
        switch: idioms.switches.len(),
    }
}

#[cfg(test)]
mod bulk_move_tests {
    use super::{MovePlan, PAGE, bulk_move, move_plan};

    /// Two arrays back to back, as the corpus benchmark lays them out (`A = bytes + 8`), take
    /// our own loop, not `memmove`: its `rep movsb` ran those copies at a fraction of the
    /// speed of the same copy one cache line further on.
    #[test]
    fn back_to_back_arrays_avoid_the_library_copy() {
        let bytes = 256 << 10;
        let src = 0x10_0020u64;
        for dst in [
            src + bytes + 8,
            src + bytes,
            src + bytes + PAGE - 8,
            src - bytes - 8,
        ] {
            assert_eq!(move_plan(dst, src, bytes), MovePlan::Chunks, "dst {dst:#x}");
        }
        // Elsewhere, and whenever the ranges overlap, the library's memmove.
        assert_eq!(move_plan(src + bytes + 200, src, bytes), MovePlan::Library);
        assert_eq!(move_plan(src + 8, src, bytes), MovePlan::Library);
        assert_eq!(move_plan(src - 8, src, bytes), MovePlan::Library);
        assert_eq!(move_plan(src + PAGE + 8, src, 32), MovePlan::Library);
    }

    /// Every plan copies exactly what `memmove` copies, at every length and distance around
    /// the chunk and page edges, overlapping or not, in both directions.
    #[test]
    fn bulk_move_is_memmove() {
        let size = 3 * PAGE as usize + 512;
        let original: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
        let base = 200usize;
        for len in [0usize, 1, 15, 16, 63, 64, 65, 127, 128, 200, 1000, 4100] {
            for gap in [
                -(PAGE as i64) - 8,
                -4104,
                -64,
                -8,
                -1,
                0,
                1,
                8,
                63,
                64,
                100,
                PAGE as i64 - 8,
                PAGE as i64 + 8,
                PAGE as i64 + 63,
            ] {
                let dst = base as i64 + (PAGE as i64 + 16) + gap;
                let src = base + PAGE as usize + 16;
                let dst = dst as usize;
                if dst + len > size || src + len > size {
                    continue;
                }
                let mut expected = original.clone();
                expected.copy_within(src..src + len, dst);
                let mut got = original.clone();
                let at = got.as_mut_ptr() as u64;
                // SAFETY: both ranges lie inside `got`.
                unsafe { bulk_move(at + dst as u64, at + src as u64, len as u64) };
                assert!(got == expected, "len {len}, gap {gap}");
            }
        }
    }
}

#[cfg(test)]
mod fill_pattern_tests {
    use super::{fill_elements, fill_pattern};

    #[test]
    fn fill_elements_writes_the_low_bytes_of_the_value() {
        let mut out = [0u8; 12];
        fill_elements(&mut out, 0x1122_3344_5566_7788, 4);
        assert_eq!(out, [0x88, 0x77, 0x66, 0x55].repeat(3).as_slice());
        fill_elements(&mut out, 0xabab, 2);
        assert_eq!(out, [0xab; 12]);
        fill_elements(&mut out, 0x01, 1);
        assert_eq!(out, [0x01; 12]);
    }

    #[test]
    fn a_pattern_fill_repeats_the_element_exactly() {
        for w in [2usize, 4, 8] {
            for elements in [0usize, 1, 2, 3, 5, 8, 13, 100, 1000] {
                let pattern: Vec<u8> = (1..=w as u8).collect();
                let mut out = vec![0xeeu8; elements * w];
                fill_pattern(&mut out, &pattern);
                let expected: Vec<u8> =
                    pattern.iter().copied().cycle().take(elements * w).collect();
                assert_eq!(out, expected, "width {w}, {elements} elements");
            }
        }
    }
}
