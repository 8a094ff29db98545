//! Bounds-check hoisting: which loops the JIT can run as a copy whose accesses skip their
//! inline checks, because one test per iteration proves them all (`docs/performance.md`,
//! "Hoisted bounds checks").
//!
//! A loop here is a contiguous range of slots `[head, last]` entered only at `head`, whose
//! back edges all jump to `head` (inner loops may sit inside). One iteration is executed
//! symbolically: every register is an affine value of the iteration-start values — the
//! *induction* register `iv`, shifted left by a constant, plus at most one register the loop
//! never writes (an *invariant*), plus a constant — or unknown. An access whose address has
//! that form is *covered*:
//! * without `iv`, its address is the same in every iteration, so one test before the loop
//!   proves it for the whole loop;
//! * with `iv`, when every back edge leaves `iv` changed by the same constant step, the
//!   addresses move monotonically with `iv`, and the test before the loop can compute how far
//!   `iv` may go (in the direction of the step) with every covered access still inside the
//!   region it starts in. Each iteration then only compares `iv` with that limit. Other
//!   registers that every back edge moves by the same step (two pointers walking together)
//!   keep a fixed distance from `iv`, so their accesses are covered by the same comparison.
//!
//! A *counted* loop needs no per-iteration test at all. Its iterations are bounded by a test of
//! a counter register (constant step of ± a power of two) against an invariant bound: the
//! loop's only back edge, `if i < n goto head` with `i` already stepped, or a test at the head,
//! before any access, that leaves the loop (`if i >= n goto out`). The test before the loop then
//! computes how many more iterations can start, `K`, and proves every covered access for
//! iterations `0..=K` from its first and last address. There, a register that every back edge
//! moves by an invariant register (`p += stride`, a matrix column) is covered too.
//!
//! The translator (`translate/hoist.rs`) emits the test before the loop; when it passes, an
//! unchecked copy of the loop runs, and any iteration whose `iv` passes the limit (or a loop
//! the test refuses) continues in the ordinary, fully checked translation, which applies the
//! interpreter's checks at the interpreter's slots. Accesses the analysis cannot express keep
//! their checks in both copies.

use super::cfg::{self, Cfg};
use crate::exec::idiom::{Rel, relation};
use crate::exec::switch::register_effects;
use crate::isa::{Insn, alu, atomic, call_kind, class, jmp, mode, op, size, source};

/// Longest loop (in slots) that gets an unchecked copy.
const MAX_LOOP_SLOTS: usize = 64;
/// Most slots the unchecked copies of one program may add, keeping compile time in check.
const MAX_COPIED_SLOTS: usize = 512;
/// Largest induction step, in absolute value.
const MAX_STEP: i64 = 1 << 16;
/// Largest left shift of the induction register inside an address (elements of 64 bytes).
const MAX_SHIFT: u32 = 6;

/// Registers the symbolic execution tracks (`r0..r10`).
const REGS: usize = 11;

/// A register's value during the symbolic iteration.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Val {
    /// Anything.
    Unknown,
    /// `(start(iv.0) << iv.1) + start(inv) + c`, where `start(r)` is `r` at the start of the
    /// iteration (for an invariant: its value before the loop, never changed by it).
    Affine {
        iv: Option<(u8, u32)>,
        inv: Option<u8>,
        c: i64,
    },
}

impl Val {
    fn constant(c: i64) -> Val {
        Val::Affine {
            iv: None,
            inv: None,
            c,
        }
    }

    fn add(self, other: Val) -> Val {
        let (
            Val::Affine { iv, inv, c },
            Val::Affine {
                iv: iv2,
                inv: inv2,
                c: c2,
            },
        ) = (self, other)
        else {
            return Val::Unknown;
        };
        if (iv.is_some() && iv2.is_some()) || (inv.is_some() && inv2.is_some()) {
            return Val::Unknown;
        }
        Val::Affine {
            iv: iv.or(iv2),
            inv: inv.or(inv2),
            c: c.wrapping_add(c2),
        }
    }

    fn shl(self, k: u32) -> Val {
        match self {
            Val::Affine { iv, inv: None, c } if k < 64 => {
                let iv = match iv {
                    Some((r, s)) if s + k <= MAX_SHIFT => Some((r, s + k)),
                    Some(_) => return Val::Unknown,
                    None => None,
                };
                Val::Affine {
                    iv,
                    inv: None,
                    c: ((c as u64) << k) as i64,
                }
            }
            _ => Val::Unknown,
        }
    }

    fn negated_constant(self) -> Val {
        match self {
            Val::Affine {
                iv: None,
                inv: None,
                c,
            } => Val::constant(c.wrapping_neg()),
            _ => Val::Unknown,
        }
    }

    fn join(self, other: Val) -> Val {
        if self == other { self } else { Val::Unknown }
    }
}

type State = [Val; REGS];

fn join(a: Option<State>, b: &State) -> State {
    match a {
        None => *b,
        Some(a) => std::array::from_fn(|r| a[r].join(b[r])),
    }
}

/// The induction register of a hoisted loop: every back edge leaves it `step` above its value
/// at the start of the iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Induction {
    /// The register.
    pub reg: u8,
    /// Its change per iteration (non-zero).
    pub step: i64,
}

/// How a register changes per iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stride {
    /// By a constant (non-zero).
    Const(i64),
    /// By the value of a register the loop never writes, plus a constant (wrapping).
    Reg {
        /// The invariant register.
        inv: u8,
        /// The constant.
        add: i64,
    },
}

/// The test that bounds a counted loop's iterations: every iteration that reaches an access
/// (but the first, when the test is the back edge) starts with the counter at most `bound`
/// (a positive step) or at least `bound` (a negative one), compared unsigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trip {
    /// The counter register.
    pub reg: u8,
    /// `Some(r)`: the test compares the counter plus a register the loop never writes
    /// (`base + i < end`, a pointer formed from an index): the sum moves with the counter's
    /// step, so it counts the iterations as the counter would.
    pub reg_add: Option<u8>,
    /// Its change per iteration: a power of two, or its negation.
    pub step: i64,
    /// `Some(r)`: the bound is the (invariant) register's value plus `bound_add`; `None`: it
    /// is `bound_add`.
    pub bound_reg: Option<u8>,
    /// Added to the bound (wrapping): `i < n` bounds the counter at `n - 1`.
    pub bound_add: i64,
    /// The bound holds only when the counter starts on its side (a `!=` test, stepping by
    /// one: it stops at the bound only when it reaches it).
    pub start_inside: bool,
    /// The test compares the counter plus this much (`i + 4 <= n` for `i`), upward only:
    /// folded into the bound, it must not make the compared value wrap.
    pub ahead: u64,
    /// How the unchecked copy decides the test by counting, when the test compares a sum and
    /// the counter register holds a known offset from its iteration-start value there.
    pub exit: Option<CountedExit>,
}

/// The trip test of a counted loop that compares a sum (`base + i < end`, `i + 4 <= n`), as
/// the unchecked copy decides it: the test before the loop knows the iteration the test ends
/// the loop in, and so the counter's value there. Comparing the counter with that value
/// saves computing the sum in every iteration, and gives the same answer in every iteration
/// the copy runs: the counter's values in them are distinct (`K < 2^32`, steps below 2^16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CountedExit {
    /// Slot of the test (a conditional jump).
    pub slot: usize,
    /// Taking the jump leaves the loop (else it starts the next iteration).
    pub taken_leaves: bool,
    /// The test runs as the iteration starts, before its step (else after it): the loop
    /// ends in iteration `K + 1` there, or in the first when the counter starts past the
    /// bound; after the step, in iteration `K`.
    pub at_start: bool,
    /// The counter register's value at the test, less its value at the iteration's start.
    pub counter_offset: i64,
}

/// A load or store the guard proves: its address is `(reg << shift) + inv + offset` in terms of
/// the iteration-start value of `reg` (when `base` is `Some((reg, shift))`: the induction
/// register or one moving with the same step) and an invariant register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CoveredAccess {
    /// Slot of the access.
    pub pc: usize,
    /// `Some((reg, s))`: the address contains `reg` shifted left by `s`, where `reg` moves
    /// with the induction register's step (and so keeps a fixed distance from it).
    pub base: Option<(u8, u32)>,
    /// A register the loop never writes, added to the address.
    pub inv: Option<u8>,
    /// Constant part of the address (the access's offset included).
    pub offset: i64,
    /// Access width in bytes.
    pub bytes: u8,
    /// How `base`'s register changes per iteration (`None` without a base).
    pub stride: Option<Stride>,
}

impl CoveredAccess {
    /// Whether `other` touches the same bytes in every iteration (the test before the loop
    /// needs to check only one of them).
    pub fn same_element(&self, other: &CoveredAccess) -> bool {
        (self.base, self.inv, self.offset, self.bytes, self.stride)
            == (
                other.base,
                other.inv,
                other.offset,
                other.bytes,
                other.stride,
            )
    }
}

/// A loop with accesses the guard covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HoistedLoop {
    /// First slot: the only entry, and the target of every back edge.
    pub head: usize,
    /// Last slot (the last back edge).
    pub last: usize,
    /// The register each iteration compares with the limit. `None`: iterations need no test
    /// at all, because every covered access is invariant or the loop is counted (`trip`).
    pub induction: Option<Induction>,
    /// For a counted loop, the test that bounds its iterations.
    pub trip: Option<Trip>,
    /// Registers the analysis took to follow an induction register, which the test before
    /// the loop must find at their distance.
    pub followers: Vec<Follower>,
    /// The covered accesses, by slot.
    pub accesses: Vec<CoveredAccess>,
}

/// Where control enters each slot from other than the previous slot: the lowest and highest
/// jumping slot, with local-call targets and return sites counted as entered from anywhere.
struct Entries {
    lowest: Vec<usize>,
    highest: Vec<usize>,
}

impl Entries {
    fn new(insns: &[Insn]) -> Entries {
        let len = insns.len();
        let mut e = Entries {
            lowest: vec![usize::MAX; len + 1],
            highest: vec![0; len + 1],
        };
        let mut mark = |target: i64, from: usize, anywhere: bool| {
            let Some(t) = usize::try_from(target).ok().filter(|&t| t <= len) else {
                return;
            };
            let (lo, hi) = if anywhere {
                (0, usize::MAX)
            } else {
                (from, from)
            };
            e.lowest[t] = e.lowest[t].min(lo);
            e.highest[t] = e.highest[t].max(hi);
        };
        for (pc, insn) in insns.iter().enumerate() {
            if insn.opc == op::CALL && insn.src == call_kind::LOCAL {
                mark(pc as i64 + 1 + i64::from(insn.imm), pc, true);
                mark(pc as i64 + 1, pc, true);
            } else if let Some(t) = cfg::jump_target(pc, insn) {
                mark(t, pc, false);
            }
        }
        e
    }

    /// Whether every jump into `(head, last]` comes from inside `[head, last]`.
    fn only_from_inside(&self, head: usize, last: usize) -> bool {
        (head + 1..=last).all(|t| {
            self.lowest[t] == usize::MAX || (self.lowest[t] >= head && self.highest[t] <= last)
        })
    }
}

/// Finds the loops whose accesses the JIT can check once per iteration, by head slot. Loops
/// do not overlap: an inner loop that qualifies is preferred to the loop around it.
pub(crate) fn find_loops(insns: &[Insn], cfg: &Cfg) -> Vec<HoistedLoop> {
    let last_latch = cfg::last_latches(insns);
    let mut candidates: Vec<(usize, usize)> = last_latch
        .iter()
        .enumerate()
        .filter_map(|(head, l)| l.map(|last| (head, last)))
        .filter(|&(head, last)| last - head < MAX_LOOP_SLOTS)
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    candidates.sort_by_key(|&(head, last)| (last - head, head));
    let entries = Entries::new(insns);
    let mut taken: Vec<HoistedLoop> = Vec::new();
    let mut copied = 0;
    for (head, last) in candidates {
        if copied + (last - head + 1) > MAX_COPIED_SLOTS
            || taken.iter().any(|l| head <= l.last && l.head <= last)
            || !entries.only_from_inside(head, last)
        {
            continue;
        }
        if let Some(found) = analyse(insns, cfg, head, last) {
            copied += last - head + 1;
            taken.push(found);
        }
    }
    taken.sort_by_key(|l| l.head);
    taken
}

/// What one pass over a block found.
#[derive(Default)]
struct Seen {
    /// `(slot, state)` for every successor inside the loop other than the head.
    successors: Vec<(usize, State)>,
    /// States at jumps to the head, and the jumps' slots.
    back_edges: Vec<State>,
    back_edge_slots: Vec<usize>,
    /// The block's first conditional jump, with the state before it, when no access comes
    /// before it in the block.
    first_test: Option<(usize, State)>,
    /// `(slot, address, bytes)` of each access.
    accesses: Vec<(usize, Val, u8)>,
}

fn analyse(insns: &[Insn], cfg: &Cfg, head: usize, last: usize) -> Option<HoistedLoop> {
    // Registers the loop writes; calls leave the loop out (they clobber r0..r5 and, local
    // ones, the frame and r10).
    let mut written = [false; REGS];
    let mut pc = head;
    while pc <= last {
        let insn = insns[pc];
        match insn.class() {
            class::JMP if insn.opc & alu::MASK == jmp::CALL => return None,
            class::LD if insn.is_packet_load() => written[0] = true,
            class::ALU | class::ALU64 | class::LDX | class::LD => {
                written[usize::from(insn.dst).min(REGS - 1)] = true;
            }
            class::STX if insn.opc & mode::MASK == mode::ATOMIC => {
                if insn.imm == atomic::CMPXCHG {
                    written[0] = true;
                } else if insn.imm & atomic::FETCH != 0 {
                    written[usize::from(insn.src).min(REGS - 1)] = true;
                }
            }
            _ => {}
        }
        pc += insn.slots();
    }
    if written[10] {
        return None;
    }
    let start: State = std::array::from_fn(|r| {
        let r = r as u8;
        if written[usize::from(r)] {
            Val::Affine {
                iv: Some((r, 0)),
                inv: None,
                c: 0,
            }
        } else {
            Val::Affine {
                iv: None,
                inv: Some(r),
                c: 0,
            }
        }
    });

    let mut it = iteration(insns, cfg, (head, last), &start)?;
    // Registers that every back edge moves by the same constant. Those with equal steps keep
    // a fixed distance, so one of them (the induction register) bounds the accesses of all.
    let mut steps: [Option<i64>; REGS] =
        std::array::from_fn(|r| induction_step(r as u8, &it.back_edges));

    // Followers: a register every back edge leaves at another one's value (`j = i` after
    // `i += 4`) keeps that distance at every iteration start after the first; when the test
    // before the loop finds it there at the first too, it is that register plus a constant.
    let mut candidates: Vec<Follower> = (0..REGS as u8)
        .filter_map(|r| follower(r, &steps, &it.back_edges))
        .collect();
    if !candidates.is_empty() {
        // Only those whose start value the iteration reads need the test.
        let read = read_at_start(insns, head, last);
        candidates.retain(|f| read & (1 << f.reg) != 0);
    }
    let mut followers = Vec::new();
    if !candidates.is_empty() {
        let mut with = start;
        for f in &candidates {
            with[usize::from(f.reg)] = Val::Affine {
                iv: Some((f.leader, 0)),
                inv: None,
                c: f.distance,
            };
        }
        // Kept only if the iteration, run again from there, agrees: the leaders keep their
        // steps and every back edge leaves each follower at the same distance.
        if let Some(again) = iteration(insns, cfg, (head, last), &with) {
            let again_steps: [Option<i64>; REGS] =
                std::array::from_fn(|r| induction_step(r as u8, &again.back_edges));
            let consistent = candidates.iter().all(|f| {
                let step = steps[usize::from(f.leader)];
                again_steps[usize::from(f.leader)] == step
                    && step.is_some_and(|step| {
                        again.back_edges.iter().all(|b| {
                            b[usize::from(f.reg)]
                                == Val::Affine {
                                    iv: Some((f.leader, 0)),
                                    inv: None,
                                    c: f.distance.wrapping_add(step),
                                }
                        })
                    })
            });
            if consistent {
                it = again;
                steps = again_steps;
                followers = candidates;
            }
        }
    }
    let Iteration {
        back_edges,
        back_edge_slots,
        accesses,
        head_test,
        ..
    } = it;

    let mut uses = [0usize; REGS];
    for (_, v, _) in &accesses {
        if let Val::Affine {
            iv: Some((r, _)), ..
        } = v
            && steps[usize::from(*r)].is_some()
        {
            uses[usize::from(*r)] += 1;
        }
    }
    // The step most accesses move with, and the register of that step most of them use.
    let uses_of_step = |s: i64| -> usize {
        (0..REGS)
            .filter(|&r| steps[r] == Some(s))
            .map(|r| uses[r])
            .sum()
    };
    let induction = (0..REGS)
        .filter(|&r| uses[r] > 0)
        .max_by_key(|&r| {
            let s = steps[r].unwrap_or(0);
            (uses_of_step(s), uses[r], std::cmp::Reverse(r))
        })
        .and_then(|r| steps[r].map(|step| Induction { reg: r as u8, step }));

    // A counted loop. The test is the only back edge, or a test that leaves the loop right
    // before it (an unconditional back edge no other jump reaches), and sees the counter
    // after its step; or it leaves the loop from the head, before any access, and sees the
    // counter as the iteration starts.
    let leaves = |slot: usize| {
        cfg::jump_target(slot, &insns[slot])
            .and_then(|t| usize::try_from(t).ok())
            .is_some_and(|t| t < head || t > last)
    };
    let trip = match (&back_edges[..], &back_edge_slots[..]) {
        ([state], &[slot]) if insns[slot].opc != op::JA => {
            trip_test((slot, insns[slot]), state, &steps, true, true)
        }
        ([state], &[slot])
            if slot > head && only_falls_into(insns, head, slot) && leaves(slot - 1) =>
        {
            trip_test((slot - 1, insns[slot - 1]), state, &steps, false, true)
        }
        _ => None,
    }
    .or_else(|| {
        let (slot, state) = head_test?;
        leaves(slot)
            .then(|| trip_test((slot, insns[slot]), &state, &steps, false, false))
            .flatten()
    });
    let strides: [Option<Stride>; REGS] = std::array::from_fn(|r| {
        let r = r as u8;
        match (steps[usize::from(r)], trip) {
            (Some(step), _) => Some(Stride::Const(step)),
            (None, Some(_)) => register_stride(r, &back_edges),
            (None, None) => None,
        }
    });

    let covered: Vec<CoveredAccess> = accesses
        .iter()
        .filter_map(|&(pc, v, bytes)| {
            let Val::Affine { iv, inv, c } = v else {
                return None;
            };
            let (base, stride) = match (iv, trip, induction) {
                (None, _, _) => (None, None),
                // Counted: any register with a known stride (a register stride unscaled).
                (Some((r, s)), Some(_), _) => match strides[usize::from(r)] {
                    Some(Stride::Reg { .. }) if s != 0 => return None,
                    Some(stride) => (Some((r, s)), Some(stride)),
                    None => return None,
                },
                (Some((r, s)), None, Some(ind)) if steps[usize::from(r)] == Some(ind.step) => {
                    (Some((r, s)), Some(Stride::Const(ind.step)))
                }
                _ => return None,
            };
            Some(CoveredAccess {
                pc,
                base,
                inv,
                offset: c,
                bytes,
                stride,
            })
        })
        .collect();
    if covered.is_empty() {
        return None;
    }
    let moving = covered.iter().any(|a| a.base.is_some());
    let trip = trip.filter(|_| moving);
    let induction = induction.filter(|_| moving && trip.is_none());
    Some(HoistedLoop {
        head,
        last,
        induction,
        trip,
        followers,
        accesses: covered,
    })
}

/// What one symbolic iteration of a loop found.
struct Iteration {
    /// States at the jumps back to the head, and those jumps' slots.
    back_edges: Vec<State>,
    back_edge_slots: Vec<usize>,
    /// `(slot, address, bytes)` of every access.
    accesses: Vec<(usize, Val, u8)>,
    /// The head block's first conditional jump before any access, with the state before it.
    head_test: Option<(usize, State)>,
}

/// Runs one iteration of the loop `[head, last]` symbolically from `start`: a fixpoint over
/// the loop's blocks (each register can only go from one affine value to unknown, so this
/// ends quickly), where edges back to the head end the iteration. `None` when a block is
/// reached without a state.
fn iteration(
    insns: &[Insn],
    cfg: &Cfg,
    (head, last): (usize, usize),
    start: &State,
) -> Option<Iteration> {
    let mut entry: Vec<Option<State>> = vec![None; last - head + 1];
    entry[0] = Some(*start);
    let mut work = vec![head];
    while let Some(block) = work.pop() {
        let state = entry[block - head]?;
        for (t, s) in run_block(insns, cfg, (head, last), block, state).successors {
            let merged = join(entry[t - head], &s);
            if entry[t - head] != Some(merged) {
                entry[t - head] = Some(merged);
                work.push(t);
            }
        }
    }
    let mut it = Iteration {
        back_edges: Vec::new(),
        back_edge_slots: Vec::new(),
        accesses: Vec::new(),
        head_test: None,
    };
    for (i, state) in entry.iter().enumerate() {
        if let Some(state) = state {
            let seen = run_block(insns, cfg, (head, last), head + i, *state);
            it.back_edges.extend(seen.back_edges);
            it.back_edge_slots.extend(seen.back_edge_slots);
            it.accesses.extend(seen.accesses);
            if i == 0 {
                it.head_test = seen.first_test;
            }
        }
    }
    Some(it)
}

/// The registers (bit `r`) whose iteration-start value an iteration of the loop
/// `[head, last]` may read: read on some path from the head before it is written, where jumps
/// back to the head and out of the loop end the path.
fn read_at_start(insns: &[Insn], head: usize, last: usize) -> u16 {
    let mut starts = Vec::new();
    let mut pc = head;
    while pc <= last {
        starts.push(pc);
        pc += insns[pc].slots();
    }
    // `live[pc - head]`: read at or after `pc` before written, within the iteration.
    let mut live = vec![0u16; last - head + 2];
    let inside = |t: usize| t > head && t <= last;
    loop {
        let mut changed = false;
        for &pc in starts.iter().rev() {
            let insn = &insns[pc];
            let (read, written) = register_effects(insn, false);
            let next = pc + insn.slots();
            let falls = insn.opc != op::EXIT && insn.opc != op::JA && insn.opc != op::JA32;
            let mut out = if falls && inside(next) {
                live[next - head]
            } else {
                0
            };
            if let Some(t) = cfg::jump_target(pc, insn).and_then(|t| usize::try_from(t).ok())
                && inside(t)
            {
                out |= live[t - head];
            }
            let new = read | (out & !written);
            if new != live[pc - head] {
                live[pc - head] = new;
                changed = true;
            }
        }
        if !changed {
            return live[0];
        }
    }
}

/// A register that, at every iteration start, is another one (its leader, an induction
/// register) plus a constant: the test before the loop checks it for the first iteration,
/// and every back edge keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Follower {
    /// The register.
    pub reg: u8,
    /// The induction register it follows.
    pub leader: u8,
    /// `reg - leader` at every iteration start (wrapping).
    pub distance: i64,
}

/// `reg` as a [`Follower`], when every back edge leaves it at the same constant above the
/// iteration-start value of one induction register: `leader + c` at the end of an iteration
/// is `leader + c - step` at the start of the next.
fn follower(reg: u8, steps: &[Option<i64>; REGS], back_edges: &[State]) -> Option<Follower> {
    if steps[usize::from(reg)].is_some() {
        return None;
    }
    agreed(back_edges, |state| match state[usize::from(reg)] {
        Val::Affine {
            iv: Some((leader, 0)),
            inv: None,
            c,
        } if leader != reg => steps[usize::from(leader)].map(|step| Follower {
            reg,
            leader,
            distance: c.wrapping_sub(step),
        }),
        _ => None,
    })
}

/// The bound a conditional jump puts on a counted loop's counter ([`Trip`]), from the state
/// before it. `continues`: taking the jump starts the next iteration, else it leaves the
/// loop. `stepped`: the jump sees the counter after its step (at the end of an iteration),
/// else as the iteration starts.
fn trip_test(
    (slot, insn): (usize, Insn),
    state: &State,
    steps: &[Option<i64>; REGS],
    continues: bool,
    stepped: bool,
) -> Option<Trip> {
    if insn.class() != class::JMP {
        return None;
    }
    let (rel, signed) = relation(insn.opc & alu::MASK)?;
    if signed {
        return None;
    }
    let rel = if continues { rel } else { rel.negated() };
    let reg = |r: u8| state[usize::from(r).min(REGS - 1)];
    let dst = reg(insn.dst);
    let src = if insn.opc & source::MASK == source::K {
        Val::constant(i64::from(insn.imm))
    } else {
        reg(insn.src)
    };
    // The counter: a register stepped by a constant, `c` above its iteration-start value,
    // plus perhaps an invariant register.
    let counter = |v: Val| match v {
        Val::Affine {
            iv: Some((r, 0)),
            inv,
            c,
        } => steps[usize::from(r).min(REGS - 1)].map(|step| (r, inv, step, c)),
        _ => None,
    };
    let bound = |v: Val| match v {
        Val::Affine { iv: None, inv, c } => Some((inv, c)),
        _ => None,
    };
    let ((r, reg_add, step, seen_at), (bound_reg, bound_c), rel) =
        match (counter(dst), bound(src), counter(src), bound(dst)) {
            (Some(cnt), Some(b), _, _) => (cnt, b, rel),
            (_, _, Some(cnt), Some(b)) => (cnt, b, rel.swapped()),
            _ => return None,
        };
    // The compared value is the counter at the next iteration start plus `ahead` (or, seen
    // as the iteration starts, at this one).
    let ahead = seen_at.wrapping_sub(if stepped { step } else { 0 });
    if !(ahead == 0 || (step > 0 && (0..=MAX_STEP).contains(&ahead)))
        || !step.unsigned_abs().is_power_of_two()
    {
        return None;
    }
    let (add, start_inside) = match (step > 0, rel) {
        (true, Rel::Lt) => (-1, false),
        (true, Rel::Le) => (0, false),
        (true, Rel::Ne) if step == 1 => (-1, true),
        (false, Rel::Gt) => (1, false),
        (false, Rel::Ge) => (0, false),
        (false, Rel::Ne) if step == -1 => (1, true),
        _ => return None,
    };
    // Only a test of a sum needs it: one of the counter itself is as cheap as the count,
    // which would keep one more value live through the loop.
    let compares_sum = reg_add.is_some() || ahead != 0;
    let exit = match state[usize::from(r)] {
        Val::Affine {
            iv: Some((iv, 0)),
            inv: None,
            c,
        } if iv == r && compares_sum => Some(CountedExit {
            slot,
            taken_leaves: !continues,
            at_start: !stepped,
            counter_offset: c,
        }),
        _ => None,
    };
    Some(Trip {
        reg: r,
        reg_add,
        step,
        bound_reg,
        bound_add: bound_c.wrapping_add(add).wrapping_sub(ahead),
        start_inside,
        ahead: ahead as u64,
        exit,
    })
}

/// Whether no jump of the loop `[head, ..]` targets `slot` (jumps from outside cannot: see
/// [`Entries::only_from_inside`]), so that it runs only after the slot before it.
fn only_falls_into(insns: &[Insn], head: usize, slot: usize) -> bool {
    (head..slot).all(|pc| cfg::jump_target(pc, &insns[pc]) != Some(slot as i64))
}

/// The stride of `reg` when every back edge leaves it at its iteration-start value plus the
/// same invariant register and constant.
fn register_stride(reg: u8, back_edges: &[State]) -> Option<Stride> {
    agreed(back_edges, |state| match state[usize::from(reg)] {
        Val::Affine {
            iv: Some((r, 0)),
            inv: Some(inv),
            c,
        } if r == reg => Some(Stride::Reg { inv, add: c }),
        _ => None,
    })
}

/// The value `of` gives for every back edge's state, when it gives the same one for all (and
/// there is at least one).
fn agreed<T: PartialEq + Copy>(
    back_edges: &[State],
    of: impl Fn(&State) -> Option<T>,
) -> Option<T> {
    let (first, rest) = back_edges.split_first()?;
    let value = of(first)?;
    rest.iter()
        .all(|state| of(state) == Some(value))
        .then_some(value)
}

/// The common step of `reg` over all back edges, when every one leaves it at its
/// iteration-start value plus the same non-zero constant.
fn induction_step(reg: u8, back_edges: &[State]) -> Option<i64> {
    agreed(back_edges, |state| match state[usize::from(reg)] {
        Val::Affine {
            iv: Some((r, 0)),
            inv: None,
            c,
        } if r == reg && c != 0 && (-MAX_STEP..=MAX_STEP).contains(&c) => Some(c),
        _ => None,
    })
}

/// Runs the block starting at `block` of the loop `[head, last]` symbolically from `state`, up
/// to its end or the end of the loop.
fn run_block(
    insns: &[Insn],
    cfg: &Cfg,
    (head, last): (usize, usize),
    block: usize,
    mut state: State,
) -> Seen {
    let mut seen = Seen::default();
    let mut pc = block;
    let reg = |r: u8| usize::from(r).min(REGS - 1);
    loop {
        let insn = insns[pc];
        let mut next = pc + 1;
        match insn.class() {
            class::ALU64 => state[reg(insn.dst)] = alu64(&state, &insn),
            class::ALU => state[reg(insn.dst)] = Val::Unknown,
            // A legacy packet load writes r0 with a value from the packet.
            class::LD if insn.is_packet_load() => state[0] = Val::Unknown,
            class::LD => {
                let v = insn.lddw_value(insns.get(pc + 1));
                state[reg(insn.dst)] = Val::constant(v as i64);
                next = pc + 2;
            }
            class::LDX => {
                let addr = state[reg(insn.src)].add(Val::constant(i64::from(insn.off)));
                seen.accesses.push((pc, addr, size::bytes(insn.opc) as u8));
                state[reg(insn.dst)] = Val::Unknown;
            }
            class::ST | class::STX => {
                let addr = state[reg(insn.dst)].add(Val::constant(i64::from(insn.off)));
                let atomic = insn.opc & mode::MASK == mode::ATOMIC;
                seen.accesses.push((pc, addr, size::bytes(insn.opc) as u8));
                if atomic && insn.imm == atomic::CMPXCHG {
                    state[0] = Val::Unknown;
                } else if atomic && insn.imm & atomic::FETCH != 0 {
                    state[reg(insn.src)] = Val::Unknown;
                }
            }
            class::JMP | class::JMP32 => {
                if insn.opc == op::EXIT {
                    return seen;
                }
                if !cfg::is_no_op_jump(pc, &insn)
                    && let Some(t) = cfg::jump_target(pc, &insn)
                    && let Ok(t) = usize::try_from(t)
                {
                    let unconditional = insn.opc == op::JA || insn.opc == op::JA32;
                    if !unconditional && seen.accesses.is_empty() && seen.back_edges.is_empty() {
                        seen.first_test.get_or_insert((pc, state));
                    }
                    if t == head {
                        seen.back_edges.push(state);
                        seen.back_edge_slots.push(pc);
                    } else if t > head && t <= last {
                        seen.successors.push((t, state));
                    }
                    if unconditional {
                        return seen;
                    }
                }
            }
            _ => {}
        }
        if next > last {
            return seen;
        }
        if cfg.leader[next] {
            seen.successors.push((next, state));
            return seen;
        }
        pc = next;
    }
}

/// The value an `ALU64` instruction leaves in its destination.
fn alu64(state: &State, insn: &Insn) -> Val {
    let dst = state[usize::from(insn.dst).min(REGS - 1)];
    let by_imm = insn.opc & source::MASK == source::K;
    let operand = if by_imm {
        Val::constant(i64::from(insn.imm))
    } else {
        state[usize::from(insn.src).min(REGS - 1)]
    };
    match insn.opc & alu::MASK {
        // A non-zero offset is a sign-extending move.
        alu::MOV if insn.off == 0 => operand,
        alu::ADD => dst.add(operand),
        alu::SUB => dst.add(operand.negated_constant()),
        alu::LSH if by_imm => dst.shl(insn.imm as u32),
        alu::MUL if by_imm && insn.imm > 0 && insn.imm.count_ones() == 1 => {
            dst.shl(insn.imm.trailing_zeros())
        }
        _ => Val::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::asm::assemble;

    fn loops(src: &str) -> Vec<HoistedLoop> {
        let insns = assemble(src).expect("assembles");
        let cfg = cfg::analyze(&insns).expect("cfg");
        find_loops(&insns, &cfg)
    }

    #[test]
    fn strcmp_loop_has_a_unit_step_and_two_covered_loads() {
        // clang's `while (*a && *a == *b) { a++; b++; }` with `b = a + r2`.
        let found = loops(
            "mov r3, r1\nldxb r4, [r1]\n\
             mov r5, r3\nadd r5, r2\nldxb r6, [r5]\njne r4, r6, +3\n\
             ldxb r4, [r3+1]\nadd r3, 1\njne r4, 0, -7\n\
             mov r0, r3\nexit",
        );
        assert_eq!(found.len(), 1);
        let l = &found[0];
        assert_eq!((l.head, l.last), (2, 8));
        assert_eq!(l.induction, Some(Induction { reg: 3, step: 1 }));
        let shape: Vec<_> = l
            .accesses
            .iter()
            .map(|a| (a.pc, a.base, a.inv, a.offset, a.bytes))
            .collect();
        assert_eq!(
            shape,
            vec![
                (4, Some((3, 0)), Some(2), 0, 1),
                (6, Some((3, 0)), None, 1, 1)
            ]
        );
    }

    #[test]
    fn pointers_moving_together_share_one_induction_test() {
        let found = loops(
            "ldxb r4, [r1]\nldxb r5, [r3]\njne r4, r5, +4\njeq r4, 0, +3\n\
             add r1, 1\nadd r3, 1\nja -7\nexit",
        );
        assert_eq!(found.len(), 1);
        let l = &found[0];
        assert_eq!(l.induction.map(|i| i.step), Some(1));
        let bases: Vec<_> = l.accesses.iter().map(|a| a.base).collect();
        assert_eq!(bases, vec![Some((1, 0)), Some((3, 0))]);
    }

    #[test]
    fn scaled_index_and_inner_loops_are_followed() {
        // for (i = 0; i < n; i++) { v = p[i]; while (v > 3) v >>= 1; }
        let found = loops(
            "mov r3, 0\n\
             mov r5, r3\nlsh r5, 3\nmov r6, r1\nadd r6, r5\nldxdw r5, [r6]\n\
             rsh r5, 1\njgt r5, 3, -2\n\
             add r3, 1\njgt r2, r3, -9\nexit",
        );
        assert_eq!(found.len(), 1);
        let l = &found[0];
        assert_eq!((l.head, l.last), (1, 9));
        // Counted: `i + 1 < n` at the only back edge bounds i at n - 1.
        assert_eq!(l.induction, None);
        assert_eq!(
            l.trip,
            Some(Trip {
                reg: 3,
                reg_add: None,
                step: 1,
                bound_reg: Some(2),
                bound_add: -1,
                start_inside: false,
                ahead: 0,
                exit: None
            })
        );
        assert_eq!(l.accesses.len(), 1);
        assert_eq!(l.accesses[0].base, Some((3, 3)));
        assert_eq!(l.accesses[0].inv, Some(1));
        assert_eq!(l.accesses[0].stride, Some(Stride::Const(1)));
    }

    #[test]
    fn counted_loops_cover_register_strides() {
        // clang's inner loop of a matrix product: a column walked by `p += row` (r0 bytes),
        // a row by 4 bytes, counted by r9 up to r2.
        let found = loops(
            "mov r9, 0\n\
             ldxw r5, [r7]\nadd r7, r0\nldxw r6, [r3]\nmul r5, r6\nadd r5, r4\nadd r3, 4\n\
             add r9, 1\nmov r4, r5\njlt r9, r2, -9\nexit",
        );
        assert_eq!(found.len(), 1);
        let l = &found[0];
        assert_eq!(
            l.trip.map(|t| (t.reg, t.step, t.bound_add)),
            Some((9, 1, -1))
        );
        let strides: Vec<_> = l.accesses.iter().map(|a| (a.pc, a.stride)).collect();
        assert_eq!(
            strides,
            vec![
                (1, Some(Stride::Reg { inv: 0, add: 0 })),
                (3, Some(Stride::Const(4)))
            ]
        );
    }

    #[test]
    fn trip_tests_at_the_head_and_counting_down() {
        // `while (i < n) { p[i] = 0; i++; }` with the test at the head, leaving the loop.
        let head =
            loops("jge r3, r2, +5\nmov r4, r1\nadd r4, r3\nstb [r4], 0\nadd r3, 1\nja -6\nexit");
        let t = head[0].trip.expect("counted");
        assert_eq!(
            (t.reg, t.step, t.bound_reg, t.bound_add),
            (3, 1, Some(2), -1)
        );
        // The counter itself is compared: the copy keeps the loop's own test.
        assert_eq!(t.exit, None);
        // `do { *p-- = 0; } while (--n != 0)`: down to 1, from a start that must be above 0.
        let down = loops("stb [r1], 0\nadd r1, -1\nadd r2, -1\njne r2, 0, -4\nexit");
        assert_eq!(
            down[0].trip,
            Some(Trip {
                reg: 2,
                reg_add: None,
                step: -1,
                bound_reg: None,
                bound_add: 1,
                start_inside: true,
                ahead: 0,
                exit: None
            })
        );
        // `n > i` with the operands swapped, stepping by 8 (a pointer to an end pointer).
        let swapped = loops("stxdw [r1], r3\nadd r1, 8\njgt r2, r1, -3\nexit");
        let t = swapped[0].trip.expect("counted");
        assert_eq!(
            (t.reg, t.step, t.bound_reg, t.bound_add),
            (1, 8, Some(2), -1)
        );
        // An exit test right before an unconditional back edge: `i + 1 <= n` continues.
        let exit_then_jump = loops("stb [r1], 0\nadd r1, 1\njgt r1, r2, +1\nja -4\nexit");
        let t = exit_then_jump[0].trip.expect("counted");
        assert_eq!(
            (t.reg, t.step, t.bound_reg, t.bound_add),
            (1, 1, Some(2), 0)
        );
    }

    #[test]
    fn a_register_copied_from_the_counter_follows_it() {
        // clang's loop unrolled four times: `r5 = r0` after `r0 += 4` carries i into the next
        // iteration, whose addresses use r5; the exit test is `i + 8 > n` on the old i.
        let found = loops(
            "mov r5, 0\nmov r0, 0\n\
             mov r6, r4\nadd r6, r5\nmov r7, r1\nadd r7, r5\n\
             ldxb r8, [r7+32]\nstxb [r6+32], r8\nldxb r8, [r7+33]\nstxb [r6+33], r8\n\
             add r0, 4\nmov r6, r5\nadd r6, 8\nmov r5, r0\njgt r6, r2, +1\nja -14\nexit",
        );
        assert_eq!(found.len(), 1);
        let l = &found[0];
        // r6 follows r0 too, but its start value is never read: no test for it.
        assert_eq!(
            l.followers,
            vec![Follower {
                reg: 5,
                leader: 0,
                distance: 0
            }]
        );
        assert_eq!(
            l.trip,
            Some(Trip {
                reg: 0,
                reg_add: None,
                step: 4,
                bound_reg: Some(2),
                bound_add: -4,
                start_inside: false,
                ahead: 4,
                exit: Some(CountedExit {
                    slot: 14,
                    taken_leaves: true,
                    at_start: false,
                    counter_offset: 4
                })
            })
        );
        assert_eq!(l.accesses.len(), 4);
        assert!(l.accesses.iter().all(|a| a.base == Some((0, 0))));
    }

    #[test]
    fn a_pointer_formed_from_the_counter_counts() {
        // for (i = 0; row + i < end; i++) s += row[i] * x[i], the pointer recomputed from the
        // index each iteration (clang's `p < row + n` with an index induction).
        let found = loops(
            "mov r7, 0
             mov r0, r1
add r0, r7
ldxb r9, [r0]
mov r0, r3
add r0, r7
ldxb r0, [r0]
             add r7, 1
mov r9, r1
add r9, r7
jlt r9, r5, -10
exit",
        );
        assert_eq!(found.len(), 1);
        let l = &found[0];
        assert_eq!(l.induction, None);
        assert_eq!(
            l.trip,
            Some(Trip {
                reg: 7,
                reg_add: Some(1),
                step: 1,
                bound_reg: Some(5),
                bound_add: -1,
                start_inside: false,
                ahead: 0,
                exit: Some(CountedExit {
                    slot: 10,
                    taken_leaves: false,
                    at_start: false,
                    counter_offset: 1
                })
            })
        );
        let bases: Vec<_> = l.accesses.iter().map(|a| (a.base, a.inv)).collect();
        assert_eq!(
            bases,
            vec![(Some((7, 0)), Some(1)), (Some((7, 0)), Some(3))]
        );
        // The same sum tested at the head, leaving the loop.
        let head = loops(
            "mov r0, r1
add r0, r7
jge r0, r5, +4
             ldxb r9, [r0]
add r9, 1
add r7, 1
ja -7
exit",
        );
        let t = head[0].trip.expect("counted");
        assert_eq!((t.reg, t.reg_add, t.bound_add), (7, Some(1), -1));
        assert_eq!(
            t.exit,
            Some(CountedExit {
                slot: 2,
                taken_leaves: true,
                at_start: true,
                counter_offset: 0
            })
        );
    }

    #[test]
    fn a_load_and_a_store_of_one_element_are_the_same_element() {
        // A swap of p[i] and q[i]: two loads, two stores, two elements.
        let found = loops(
            "ldxh r4, [r1]\nldxh r5, [r3]\nstxh [r1], r5\nstxh [r3], r4\n\
             add r1, 2\nadd r3, 2\nadd r6, 1\njlt r6, r2, -8\nexit",
        );
        let a = &found[0].accesses;
        assert_eq!(a.len(), 4);
        let pairs: Vec<(usize, usize)> = (0..4)
            .flat_map(|i| (i + 1..4).map(move |j| (i, j)))
            .filter(|&(i, j)| a[i].same_element(&a[j]))
            .collect();
        assert_eq!(pairs, vec![(0, 2), (1, 3)]);
    }

    #[test]
    fn tests_that_do_not_count_leave_the_limit_test() {
        for src in [
            // Signed, 32-bit, a step of 3, `==` to continue, `!=` stepping by 2.
            "stb [r1], 0\nadd r1, 1\njslt r1, r2, -3\nexit",
            "stb [r1], 0\nadd r1, 1\njlt32 r1, r2, -3\nexit",
            "stb [r1], 0\nadd r1, 3\njlt r1, r2, -3\nexit",
            "stb [r1], 0\nadd r1, 1\njeq r1, r2, -3\nexit",
            "stb [r1], 0\nadd r1, 2\njne r1, r2, -3\nexit",
            // The wrong direction, a bound the loop writes, two back edges.
            "stb [r1], 0\nadd r1, 1\njgt r1, r2, -3\nexit",
            "stb [r1], 0\nadd r1, 1\nadd r2, 1\njlt r1, r2, -4\nexit",
            "stb [r1], 0\nadd r1, 1\njeq r1, 7, -3\njlt r1, r2, -4\nexit",
            // A head test after an access; an exit test another jump skips to the back edge.
            "stb [r1], 0\njge r1, r2, +2\nadd r1, 1\nja -4\nexit",
            "stb [r1], 0\nadd r1, 1\njeq r3, 0, +1\njgt r1, r2, +1\nja -5\nexit",
        ] {
            let found = loops(src);
            assert_eq!(found.len(), 1, "{src}");
            assert_eq!(found[0].trip, None, "{src}");
            assert!(found[0].induction.is_some(), "{src}");
        }
    }

    #[test]
    fn invariant_accesses_need_no_induction() {
        let found =
            loops("mov r3, 10\nldxw r4, [r1+8]\nstxw [r10-4], r4\nsub r3, 1\njne r3, 0, -4\nexit");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].induction, None);
        assert_eq!(found[0].accesses.len(), 2);
    }

    #[test]
    fn loops_that_cannot_be_covered_are_left_alone() {
        // The address is loaded (unknown), a call clobbers registers, a jump enters the body
        // from outside, and the step differs between back edges.
        for src in [
            "ldxdw r1, [r1]\njne r1, 0, -2\nexit",
            "ldxb r2, [r1]\ncall 1\nadd r1, 1\njne r2, 0, -4\nexit",
            "jeq r3, 0, +2\nldxb r2, [r1]\nadd r1, 1\njne r2, 0, -3\nexit",
            "ldxb r2, [r1]\nadd r1, 1\njeq r2, 1, -3\nadd r1, 1\njne r2, 0, -5\nexit",
        ] {
            let found = loops(src);
            assert!(
                found
                    .iter()
                    .all(|l| l.accesses.iter().all(|a| a.base.is_none())),
                "{src}: {found:?}"
            );
        }
    }
}
