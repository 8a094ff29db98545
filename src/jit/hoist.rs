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
//! The translator (`translate/hoist.rs`) emits the test before the loop; when it passes, an
//! unchecked copy of the loop runs, and any iteration whose `iv` passes the limit (or a loop
//! the test refuses) continues in the ordinary, fully checked translation, which applies the
//! interpreter's checks at the interpreter's slots. Accesses the analysis cannot express keep
//! their checks in both copies.

use super::cfg::{self, Cfg};
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
}

/// A loop with accesses the guard covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HoistedLoop {
    /// First slot: the only entry, and the target of every back edge.
    pub head: usize,
    /// Last slot (the last back edge).
    pub last: usize,
    /// `None`: every covered access is invariant, and iterations need no test at all.
    pub induction: Option<Induction>,
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
    /// States at jumps to the head.
    back_edges: Vec<State>,
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

    // Fixpoint over the loop's blocks (each register can only go from one affine value to
    // unknown, so this ends quickly); edges back to the head end an iteration.
    let mut entry: Vec<Option<State>> = vec![None; last - head + 1];
    entry[0] = Some(start);
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

    let mut back_edges = Vec::new();
    let mut accesses = Vec::new();
    for (i, state) in entry.iter().enumerate() {
        if let Some(state) = state {
            let seen = run_block(insns, cfg, (head, last), head + i, *state);
            back_edges.extend(seen.back_edges);
            accesses.extend(seen.accesses);
        }
    }

    // Registers that every back edge moves by the same constant. Those with equal steps keep
    // a fixed distance, so one of them (the induction register) bounds the accesses of all.
    let steps: [Option<i64>; REGS] = std::array::from_fn(|r| induction_step(r as u8, &back_edges));
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

    let covered: Vec<CoveredAccess> = accesses
        .iter()
        .filter_map(|&(pc, v, bytes)| {
            let Val::Affine { iv, inv, c } = v else {
                return None;
            };
            let base = match (iv, induction) {
                (None, _) => None,
                (Some((r, s)), Some(ind)) if steps[usize::from(r)] == Some(ind.step) => {
                    Some((r, s))
                }
                _ => return None,
            };
            Some(CoveredAccess {
                pc,
                base,
                inv,
                offset: c,
                bytes,
            })
        })
        .collect();
    if covered.is_empty() {
        return None;
    }
    let induction = induction.filter(|_| covered.iter().any(|a| a.base.is_some()));
    Some(HoistedLoop {
        head,
        last,
        induction,
        accesses: covered,
    })
}

/// The common step of `reg` over all back edges, when every one leaves it at its
/// iteration-start value plus the same non-zero constant.
fn induction_step(reg: u8, back_edges: &[State]) -> Option<i64> {
    let mut step = None;
    for state in back_edges {
        let Val::Affine {
            iv: Some((r, 0)),
            inv: None,
            c,
        } = state[usize::from(reg)]
        else {
            return None;
        };
        if r != reg
            || c == 0
            || !(-MAX_STEP..=MAX_STEP).contains(&c)
            || step.is_some_and(|s| s != c)
        {
            return None;
        }
        step = Some(c);
    }
    step
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
                    if t == head {
                        seen.back_edges.push(state);
                    } else if t > head && t <= last {
                        seen.successors.push((t, state));
                    }
                    let unconditional = insn.opc == op::JA || insn.opc == op::JA32;
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
        assert_eq!(l.induction, Some(Induction { reg: 3, step: 1 }));
        assert_eq!(l.accesses.len(), 1);
        assert_eq!(l.accesses[0].base, Some((3, 3)));
        assert_eq!(l.accesses[0].inv, Some(1));
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
