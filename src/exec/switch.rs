//! Switches recognised by what they compute: a tree (or chain) of compares of one key, as a
//! compiler lowers a C `switch` for BPF, which has no indirect jump.
//!
//! From a root compare, [`find_switches`] follows the code for key values, evaluating every
//! instruction that only depends on the key and on constants: compares of the key or of its
//! copies (`r1 = r5`, `r1 += -48`, `w1 = w5`) with constants, 64-bit and `jmp32`, signed and
//! unsigned, `ja` chains, and register writes of constants or of the key (the leaves of a
//! switch that picks a value set it before their last compare). Control stops at the first
//! instruction it cannot evaluate (a load, a store, a call, a compare with an unknown
//! register, …): that slot is the *leaf* of the key value, with the register writes done on
//! the way. Any stopping point is exact: what was passed over only writes registers, which
//! the leaf reproduces, and cannot fault. A register the walk knows nothing of counts as a
//! constant when every write of it in the program stores that constant and none can be
//! bypassed on the way to the root (clang keeps bit-test masks in registers set before a
//! loop).
//!
//! The key space is cut into intervals on which every compare met has one outcome (for a
//! compare of `key + a` with `k`: the points `k - a`, `k - a + 1`, the wrap point `-a` and
//! the sign boundary), refined until each interval reaches one leaf; when the key is known
//! to be small (loaded as a byte, masked), every value is followed instead, which also
//! covers bit tests and other non-linear code. The result, [`Switch`], maps every key value
//! to a leaf: through a table over the dense part of the key space ([`Lookup::Dense`]) or a
//! binary search over the intervals ([`Lookup::Sparse`]). Both engines then jump to the leaf
//! after doing its writes; when every leaf writes constants into the same registers and
//! reaches the same slot, the JIT loads the values from a table without any branch.
//!
//! Neither engine uses a switch when instructions are counted (an instruction limit): the
//! compares skipped would not be counted.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use crate::isa::{self, Insn, alu, call_kind, class, jmp, op, source};

/// A register value a leaf writes, in terms of the key's base value (see [`Switch::bias`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// A constant.
    Const(u64),
    /// `base + add` (wrapping), zero-extended from its low 32 bits with `zext32`.
    Key {
        /// Added to the base.
        add: u64,
        /// Whether only the low 32 bits are kept (a 32-bit ALU result).
        zext32: bool,
    },
}

impl Write {
    /// The value written when the key's base value is `base`.
    #[inline(always)]
    pub(crate) fn value(self, base: u64) -> u64 {
        match self {
            Write::Const(c) => c,
            Write::Key { add, zext32 } => {
                let v = base.wrapping_add(add);
                if zext32 { u64::from(v as u32) } else { v }
            }
        }
    }
}

/// Where a key value leads: the slot control reaches and the registers written on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// The slot reached (a block leader: a jump target or the slot after a jump).
    pub pc: usize,
    /// Registers written on the way, each once, with its final value.
    pub writes: Vec<(u8, Write)>,
}

/// How a key's index finds its leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// `i = index - low` (wrapping in the index width): `table[i]` when `i < table.len()`,
    /// else `outside`.
    Dense {
        /// The first index of the table.
        low: u64,
        /// Leaf numbers (into [`Switch::leaves`]) of `low..low + table.len()`.
        table: Vec<u32>,
        /// The leaf of every other index.
        outside: u32,
    },
    /// Intervals: index `i` leads to `leaves[j]` for the last `j` with `starts[j] <= i`
    /// (`starts[0] == 0`).
    Sparse {
        /// Sorted first indexes of the intervals.
        starts: Vec<u64>,
        /// The leaf number of each interval.
        leaves: Vec<u32>,
    },
}

/// A recognised switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Switch {
    /// The slot of the first compare, where the dispatch replaces the tree.
    pub root: usize,
    /// The register the root compares.
    pub reg: u8,
    /// The key's base value is `reg - bias` (wrapping): `reg` holds the base plus a constant
    /// when the code computed it as `r = base; r += c` before the root.
    pub bias: u64,
    /// Whether only the low 32 bits of the base decide the leaf (the index is `base as u32`;
    /// else the whole base).
    pub narrow: bool,
    /// The distinct leaves.
    pub leaves: Vec<Leaf>,
    /// From the index to the leaf.
    pub lookup: Lookup,
    /// How many distinct compares of the key the tree has.
    pub compares: usize,
    /// For a dense switch that only picks values: the values by table row.
    pub values: Option<Values>,
}

/// The values a dense switch picks, when every leaf writes constants into the same registers
/// and reaches the same slot ([`Switch::value_table`]): row `i < n` holds the writes of the
/// table's entry `i` ([`Lookup::Dense`]), row `n` those of every other index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Values {
    /// The slot every leaf reaches.
    pub join: usize,
    /// The registers written.
    pub regs: Vec<u8>,
    /// The first index of the table.
    pub low: u64,
    /// Rows in the table (without the outside row).
    pub n: u64,
    /// `rows[i * regs.len() + k]`: the value of `regs[k]` in row `i`.
    pub rows: Vec<u64>,
}

impl Switch {
    /// The key's base value when the root's register holds `value`.
    #[inline(always)]
    pub(crate) fn base(&self, value: u64) -> u64 {
        value.wrapping_sub(self.bias)
    }

    /// The lookup index of base value `base`.
    #[inline(always)]
    pub(crate) fn index(&self, base: u64) -> u64 {
        if self.narrow {
            u64::from(base as u32)
        } else {
            base
        }
    }

    /// The leaf of base value `base`.
    #[inline(always)]
    pub(crate) fn leaf(&self, base: u64) -> &Leaf {
        let index = self.index(base);
        let n = match &self.lookup {
            Lookup::Dense {
                low,
                table,
                outside,
            } => {
                let i = self.index(index.wrapping_sub(*low));
                match table.get(i as usize) {
                    Some(&n) if i <= u64::from(u32::MAX) => n,
                    _ => *outside,
                }
            }
            Lookup::Sparse { starts, leaves } => {
                let j = starts.partition_point(|&s| s <= index);
                leaves[j.saturating_sub(1)]
            }
        };
        &self.leaves[n as usize]
    }

    /// The row of [`Values`] for base value `base`.
    #[inline(always)]
    pub(crate) fn row(&self, values: &Values, base: u64) -> usize {
        let i = self.index(self.index(base).wrapping_sub(values.low));
        i.min(values.n) as usize
    }

    /// When every leaf reaches the same slot after writing constants into the same
    /// registers: that slot and those registers (a switch that only picks values).
    pub(crate) fn value_table(&self) -> Option<(usize, Vec<u8>)> {
        let first = self.leaves.first()?;
        let regs: Vec<u8> = first.writes.iter().map(|&(r, _)| r).collect();
        let same = self.leaves.iter().all(|l| {
            l.pc == first.pc
                && l.writes.len() == regs.len()
                && l.writes
                    .iter()
                    .zip(&regs)
                    .all(|(&(r, w), &want)| r == want && matches!(w, Write::Const(_)))
        });
        (same && !regs.is_empty()).then_some((first.pc, regs))
    }
}

/// Fewest distinct compares of the key a tree needs before a dispatch pays.
const MIN_COMPARES: usize = 4;
/// Most slots one key value is followed through.
const MAX_PATH: usize = 96;
/// Most values followed one by one when the key is known to be small.
const MAX_ENUMERATED: u64 = 1024;
/// Most intervals the key space is cut into.
const MAX_INTERVALS: usize = 1024;
/// Largest table of a dense lookup.
const MAX_TABLE: u64 = 1024;
/// Slots the whole search may follow in one program (keeps loading and compiling linear in
/// the program's size).
const SEARCH_BUDGET: usize = 1 << 16;

/// What the walk knows about a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sym {
    /// Not known (a value from before the root that is not the key).
    Unknown,
    /// A constant.
    Const(u64),
    /// `base + add`, zero-extended from 32 bits with `zext32`.
    Key { add: u64, zext32: bool },
    /// Some other function of the key, whose value for the key followed is given (only when
    /// values are followed one by one).
    Other(u64),
}

/// How the key space is explored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// By intervals: only compares of `base + a` forms decide; `narrow`: the index is the
    /// low 32 bits of the base; `small32`: the base is known to be below 2^32.
    Intervals { narrow: bool, small32: bool },
    /// Value by value (the base is known to lie in a small range).
    Values,
}

/// One followed path's end.
struct Reached {
    leaf: Leaf,
}

/// The program-wide facts a walk needs.
struct Walker<'a> {
    insns: &'a [Insn],
    leaders: Vec<bool>,
    budget: usize,
    /// Set when a walk by intervals stopped at code that following values one by one
    /// would evaluate (a bit test, a non-linear function of the key, mixed widths).
    nonlinear: bool,
    /// Registers known to hold one constant, computed per register when first asked.
    consts: [Option<Constant>; 11],
    /// `seen[pc] == stamp`: the compare at `pc` is already among the current tree's nodes.
    seen: Vec<u32>,
    /// Changes with every tree looked at.
    stamp: u32,
    /// [`live_registers`] of the program, computed when the first switch is found.
    live: Option<Vec<u16>>,
}

/// What is known of one register over the whole program: the one constant every write of it
/// stores (`None` if writes differ or one is not a constant), and which slots control can
/// reach from the program's start without passing a write of it.
struct Constant {
    value: Option<u64>,
    unwritten: Vec<bool>,
}

/// How instruction `insn` writes register `r`: `None` not at all, `Some(Some(c))` the
/// constant `c`, `Some(None)` something else.
fn writes(insn: &Insn, high: Option<&Insn>, r: u8) -> Option<Option<u64>> {
    let d = insn.dst & 0x0f;
    match insn.class() {
        class::ALU64 if d == r => {
            Some((insn.opc == op::MOV64_IMM).then_some(i64::from(insn.imm) as u64))
        }
        class::ALU if d == r => {
            Some((insn.opc == op::MOV32_IMM).then_some(u64::from(insn.imm as u32)))
        }
        class::LDX if d == r => Some(None),
        class::LD if insn.opc == op::LDDW => (d == r).then(|| {
            (insn.src == 0).then(|| {
                u64::from(insn.imm as u32) | (u64::from(high.map_or(0, |h| h.imm as u32)) << 32)
            })
        }),
        // Legacy packet loads write r0 and may clobber the argument registers.
        class::LD => (r <= 5).then_some(None),
        class::STX if insn.opc & 0xe0 == 0xc0 => (r == 0 || insn.src & 0x0f == r).then_some(None),
        class::JMP if insn.opc & 0xf0 == jmp::CALL => (r <= 5).then_some(None),
        _ => None,
    }
}

impl Constant {
    /// Finds what is known of register `r` in `insns`.
    fn of(insns: &[Insn], r: u8) -> Constant {
        let mut value = None;
        let mut one = true;
        let mut written = vec![false; insns.len() + 1];
        let mut pc = 0;
        while let Some(insn) = insns.get(pc) {
            if let Some(w) = writes(insn, insns.get(pc + 1), r) {
                written[pc] = true;
                match (w, value) {
                    (Some(c), None) => value = Some(c),
                    (Some(c), Some(v)) if c == v => {}
                    _ => one = false,
                }
            }
            pc += insn.slots();
        }
        if !one || value.is_none() {
            return Constant {
                value: None,
                unwritten: Vec::new(),
            };
        }
        // Slots reachable from the start without passing a write (a call reaches both the
        // callee and the return site).
        let mut unwritten = vec![false; insns.len() + 1];
        let mut work = vec![0usize];
        while let Some(pc) = work.pop() {
            if pc > insns.len() || unwritten[pc] {
                continue;
            }
            unwritten[pc] = true;
            let Some(insn) = insns.get(pc) else { continue };
            if written[pc] {
                continue;
            }
            let next = pc + insn.slots();
            if insn.opc == op::CALL && insn.src == call_kind::LOCAL {
                work.extend(usize::try_from(pc as i64 + 1 + i64::from(insn.imm)).ok());
                work.push(next);
            } else if insn.opc == op::EXIT {
            } else if let Some(t) = jump_target(pc, insn) {
                work.extend(usize::try_from(t).ok());
                if insn.opc != op::JA && insn.opc != op::JA32 {
                    work.push(next);
                }
            } else {
                work.push(next);
            }
        }
        Constant { value, unwritten }
    }
}

/// The jump target of `insn` at `pc`, for jumps (not calls or exits).
fn jump_target(pc: usize, insn: &Insn) -> Option<i64> {
    let next = pc as i64 + 1;
    match insn.class() {
        class::JMP32 if insn.opc == op::JA32 => Some(next + i64::from(insn.imm)),
        class::JMP | class::JMP32 if matches!(insn.opc & 0xf0, jmp::CALL | jmp::EXIT) => None,
        class::JMP | class::JMP32 => Some(next + i64::from(insn.off)),
        _ => None,
    }
}

/// `leaders[pc]`: slot `pc` starts a block of the JIT's control-flow graph (the same rule as
/// `jit::cfg`: jump targets and the slots after jumps, calls to local functions and exits;
/// a jump to the next slot is no boundary).
fn leaders(insns: &[Insn]) -> Vec<bool> {
    let len = insns.len();
    let mut leader = vec![false; len + 1];
    leader[0] = true;
    leader[len] = true;
    let mut mark = |t: i64| {
        if let Some(slot) = usize::try_from(t).ok().and_then(|t| leader.get_mut(t)) {
            *slot = true;
        }
    };
    let mut pc = 0;
    while pc < len {
        let insn = insns[pc];
        let next = pc + insn.slots();
        if let Some(t) = jump_target(pc, &insn) {
            if t != pc as i64 + 1 {
                mark(t);
                mark(next as i64);
            }
        } else if insn.opc == op::CALL && insn.src == call_kind::LOCAL {
            mark(pc as i64 + 1 + i64::from(insn.imm));
            mark(next as i64);
        } else if insn.opc == op::EXIT {
            mark(next as i64);
        }
        pc = next;
    }
    leader
}

/// `(read, written)`: the registers (bit `r`) one instruction may read, and those it surely
/// writes. Conservative where an instruction's effect is not plain: helper calls read r1–r5
/// and write only r0 (both engines keep r1–r5); atomics and legacy packet loads read what they
/// may read and write nothing; with `local_calls`, `exit` and the calls read every register.
pub(crate) fn register_effects(insn: &Insn, local_calls: bool) -> (u16, u16) {
    const ALL: u16 = 0x7ff;
    let bit = |r: u8| 1u16 << isa::reg_index(r);
    let (dst, src) = (bit(insn.dst), bit(insn.src));
    match insn.class() {
        class::ALU | class::ALU64 => {
            let by_reg = insn.opc & source::MASK == source::X;
            match insn.opc & alu::MASK {
                alu::MOV if insn.off != 0 => (src, dst),
                alu::MOV if by_reg => (src, dst),
                alu::MOV => (0, dst),
                alu::NEG | alu::END => (dst, dst),
                _ if by_reg => (dst | src, dst),
                _ => (dst, dst),
            }
        }
        class::LD if insn.opc == op::LDDW => (0, dst),
        class::LD => (bit(6) | src, 0),
        class::LDX => (src, dst),
        class::ST => (dst, 0),
        class::STX => (dst | src | bit(0), 0),
        _ => match insn.opc {
            op::EXIT if local_calls => (ALL, 0),
            op::EXIT => (bit(0), 0),
            op::CALL if insn.src == call_kind::LOCAL => (ALL, 0),
            op::CALL => (0b11_1110, bit(0)),
            op::CALLX => (0b11_1110 | dst, bit(0)),
            _ if insn.opc & source::MASK == source::X => (dst | src, 0),
            _ => (dst, 0),
        },
    }
}

/// `live[pc]` (bit `r`): register `r` may be read at or after `pc` before it is written
/// again ([`register_effects`]).
/// Only used to drop a switch leaf's writes of registers nothing reads again, so that leaves
/// differing only there become one, and switches that only pick values get a value table.
fn live_registers(insns: &[Insn]) -> Vec<u16> {
    let local_calls = insns
        .iter()
        .any(|i| i.opc == op::CALL && i.src == call_kind::LOCAL);
    let effect = |pc: usize| register_effects(&insns[pc], local_calls);
    let len = insns.len();
    // Where control goes after each slot (`len`: the end, where nothing is live). A local
    // call reads every register, so what its callee needs adds nothing.
    let successors = |pc: usize| -> [Option<usize>; 2] {
        let insn = &insns[pc];
        let next = Some(pc + insn.slots()).filter(|&n| n <= len);
        let target = jump_target(pc, insn).and_then(|t| usize::try_from(t).ok());
        match target.filter(|&t| t <= len) {
            Some(t) if insn.opc == op::JA || insn.opc == op::JA32 => [Some(t), None],
            Some(t) => [Some(t), next],
            None if insn.opc == op::EXIT => [None, None],
            None => [next, None],
        }
    };
    // Predecessors in one flat array (`preds[first[s]..first[s + 1]]` lead to `s`), so that
    // a change is propagated only to the slots it can affect: each slot's set only grows,
    // at most 11 times, and the whole pass stays linear whatever the control flow.
    let mut first = vec![0u32; len + 2];
    for pc in 0..len {
        for s in successors(pc).into_iter().flatten() {
            first[s + 1] += 1;
        }
    }
    for i in 1..first.len() {
        first[i] += first[i - 1];
    }
    let mut fill = first.clone();
    let mut preds = vec![0u32; first[len + 1] as usize];
    for pc in 0..len {
        for s in successors(pc).into_iter().flatten() {
            preds[fill[s] as usize] = pc as u32;
            fill[s] += 1;
        }
    }
    let mut live = vec![0u16; len + 1];
    let mut queued = vec![true; len];
    // Popped from the end: the last slot first, so straight-line code settles in one pass.
    let mut work: Vec<usize> = (0..len).collect();
    while let Some(pc) = work.pop() {
        queued[pc] = false;
        let after = successors(pc)
            .into_iter()
            .flatten()
            .fold(0, |set, s| set | live[s]);
        let (used, defined) = effect(pc);
        let now = used | (after & !defined);
        if now != live[pc] {
            live[pc] = now;
            for &p in &preds[first[pc] as usize..first[pc + 1] as usize] {
                if !queued[p as usize] {
                    queued[p as usize] = true;
                    work.push(p as usize);
                }
            }
        }
    }
    live
}

/// Whether the conditional jump operation `operation` (its `0xf0` bits) holds for `a` and
/// `b`, compared in `bits` (32 or 64).
fn holds(operation: u8, a: u64, b: u64, bits: u32) -> Option<bool> {
    let (a, b, sa, sb) = if bits == 32 {
        let (a, b) = (u64::from(a as u32), u64::from(b as u32));
        (a, b, i64::from(a as u32 as i32), i64::from(b as u32 as i32))
    } else {
        (a, b, a as i64, b as i64)
    };
    Some(match operation {
        jmp::JEQ => a == b,
        jmp::JNE => a != b,
        jmp::JGT => a > b,
        jmp::JGE => a >= b,
        jmp::JLT => a < b,
        jmp::JLE => a <= b,
        jmp::JSGT => sa > sb,
        jmp::JSGE => sa >= sb,
        jmp::JSLT => sa < sb,
        jmp::JSLE => sa <= sb,
        jmp::JSET => a & b != 0,
        _ => return None,
    })
}

/// The result of ALU operation `operation` (its `0xf0` bits) on `a` and `b`, in 64 or 32 bits
/// (32-bit results zero-extended); `None` for operations the walk does not evaluate.
fn compute(operation: u8, a: u64, b: u64, bits: u32) -> Option<u64> {
    if bits == 32 {
        let (a, b) = (a as u32, b as u32);
        let v = match operation {
            alu::ADD => a.wrapping_add(b),
            alu::SUB => a.wrapping_sub(b),
            alu::MUL => a.wrapping_mul(b),
            alu::OR => a | b,
            alu::AND => a & b,
            alu::XOR => a ^ b,
            alu::LSH => a.wrapping_shl(b & 31),
            alu::RSH => a.wrapping_shr(b & 31),
            alu::ARSH => (a as i32).wrapping_shr(b & 31) as u32,
            alu::NEG => a.wrapping_neg(),
            alu::MOV => b,
            _ => return None,
        };
        return Some(u64::from(v));
    }
    Some(match operation {
        alu::ADD => a.wrapping_add(b),
        alu::SUB => a.wrapping_sub(b),
        alu::MUL => a.wrapping_mul(b),
        alu::OR => a | b,
        alu::AND => a & b,
        alu::XOR => a ^ b,
        alu::LSH => a.wrapping_shl((b & 63) as u32),
        alu::RSH => a.wrapping_shr((b & 63) as u32),
        alu::ARSH => (a as i64).wrapping_shr((b & 63) as u32) as u64,
        alu::NEG => a.wrapping_neg(),
        alu::MOV => b,
        _ => return None,
    })
}

impl Walker<'_> {
    /// Adds compare `pc` to the current tree's `nodes` (once).
    fn node(&mut self, pc: usize, nodes: &mut BTreeSet<usize>) {
        if let Some(seen) = self.seen.get_mut(pc)
            && *seen != self.stamp
        {
            *seen = self.stamp;
            nodes.insert(pc);
        }
    }

    /// What register `r` holds during a walk from `root`: its walk state, or for a register
    /// the walk has not written and knows nothing of, the constant it holds at `root` on
    /// every path (every write of it in the program stores that constant, and no path from
    /// the start reaches `root` without one).
    fn operand(&mut self, regs: &[Sym; 11], r: u8, root: usize) -> Sym {
        let r = (r & 0x0f).min(10);
        let s = regs[usize::from(r)];
        if s != Sym::Unknown || r == 10 {
            return s;
        }
        let insns = self.insns;
        let known = self.consts[usize::from(r)].get_or_insert_with(|| Constant::of(insns, r));
        match known.value {
            Some(c) if known.unwritten.get(root) == Some(&false) => Sym::Const(c),
            _ => Sym::Unknown,
        }
    }

    /// Follows base value `b` from `root` with the registers `init`, in `mode`. Adds to
    /// `points` the interval boundaries of every compare passed (interval mode) and to
    /// `nodes` the slots of the compares that depended on the key. `None` when the walk is
    /// useless (it stops at the root) or the budget ran out.
    fn walk(
        &mut self,
        root: usize,
        init: &[Sym; 11],
        mode: Mode,
        b: u64,
        points: &mut Vec<u64>,
        nodes: &mut BTreeSet<usize>,
    ) -> Option<Reached> {
        let insns = self.insns;
        let mut regs = *init;
        let mut written = [false; 11];
        let mut last_leader: Option<(usize, [Sym; 11], [bool; 11])> = None;
        // Whether a register was written since `last_leader` was taken.
        let mut dirty = true;
        let mut pc = root;
        let value = |s: Sym| -> Option<u64> {
            match s {
                Sym::Unknown => None,
                Sym::Const(c) | Sym::Other(c) => Some(c),
                Sym::Key { add, zext32 } => {
                    let v = b.wrapping_add(add);
                    Some(if zext32 { u64::from(v as u32) } else { v })
                }
            }
        };
        let values = mode == Mode::Values;
        for _ in 0..MAX_PATH {
            self.budget = self.budget.checked_sub(1)?;
            if pc != root && self.leaders.get(pc) == Some(&true) {
                match &mut last_leader {
                    Some(leader) if !dirty => leader.0 = pc,
                    _ => last_leader = Some((pc, regs, written)),
                }
                dirty = false;
            }
            let Some(&insn) = insns.get(pc) else { break };
            let next = pc + 1;
            let cls = insn.class();
            let operation = insn.opc & 0xf0;
            match cls {
                class::JMP | class::JMP32 => {
                    if insn.opc == op::JA || insn.opc == op::JA32 {
                        let Ok(t) = usize::try_from(jump_target(pc, &insn)?) else {
                            break;
                        };
                        pc = t;
                        continue;
                    }
                    if matches!(operation, jmp::CALL | jmp::EXIT) {
                        break;
                    }
                    let bits = if cls == class::JMP32 { 32 } else { 64 };
                    let a = self.operand(&regs, insn.dst, root);
                    let c = if insn.opc & source::MASK == source::X {
                        self.operand(&regs, insn.src, root)
                    } else {
                        Sym::Const(i64::from(insn.imm) as u64)
                    };
                    let keyed = |s: Sym| matches!(s, Sym::Key { .. } | Sym::Other(_));
                    if !values {
                        // Intervals: one side `base + a`, the other a constant.
                        let (form, k) = match (a, c) {
                            (Sym::Const(_), Sym::Const(_)) => (None, 0),
                            (Sym::Key { add, zext32 }, Sym::Const(k))
                            | (Sym::Const(k), Sym::Key { add, zext32 }) => (Some((add, zext32)), k),
                            _ => {
                                self.nonlinear |= keyed(a) || keyed(c);
                                break;
                            }
                        };
                        if let Some((add, zext32)) = form {
                            let Mode::Intervals { narrow, small32 } = mode else {
                                break;
                            };
                            let low32 = bits == 32 || zext32;
                            if operation == jmp::JSET
                                || (low32 && !(narrow || small32))
                                || (!low32 && narrow)
                            {
                                self.nonlinear = true;
                                break;
                            }
                            let (sign, mask) = if low32 {
                                (1u64 << 31, u64::from(u32::MAX))
                            } else {
                                (1u64 << 63, u64::MAX)
                            };
                            for p in [
                                k.wrapping_sub(add),
                                k.wrapping_sub(add).wrapping_add(1),
                                add.wrapping_neg(),
                                sign.wrapping_sub(add),
                            ] {
                                points.push(p & mask);
                            }
                            self.node(pc, nodes);
                        }
                    } else if keyed(a) || keyed(c) {
                        self.node(pc, nodes);
                    }
                    let (Some(x), Some(y)) = (value(a), value(c)) else {
                        break;
                    };
                    let Some(taken) = holds(operation, x, y, bits) else {
                        break;
                    };
                    let target = if taken {
                        jump_target(pc, &insn)?
                    } else {
                        next as i64
                    };
                    let Ok(t) = usize::try_from(target) else {
                        break;
                    };
                    pc = t;
                }
                class::ALU | class::ALU64 => {
                    let bits = if cls == class::ALU { 32 } else { 64 };
                    let d = isa::reg_index(insn.dst);
                    if d == 10 || operation == alu::END {
                        break;
                    }
                    let src_x = insn.opc & source::MASK == source::X;
                    // Sign-extending moves (`off` ≠ 0) and signed division are not followed.
                    if insn.off != 0 {
                        break;
                    }
                    let s = if src_x {
                        self.operand(&regs, insn.src, root)
                    } else {
                        Sym::Const(i64::from(insn.imm) as u64)
                    };
                    let old = self.operand(&regs, d as u8, root);
                    let result = match (operation, old, s) {
                        (alu::MOV, _, Sym::Unknown) => break,
                        (alu::MOV, _, s) if bits == 64 => s,
                        (alu::MOV, _, Sym::Key { add, .. }) => Sym::Key { add, zext32: true },
                        (alu::ADD | alu::SUB, Sym::Key { add, zext32 }, Sym::Const(k))
                            if bits == 32 || !zext32 =>
                        {
                            let k = if operation == alu::SUB {
                                k.wrapping_neg()
                            } else {
                                k
                            };
                            let k = if bits == 32 { u64::from(k as u32) } else { k };
                            Sym::Key {
                                add: add.wrapping_add(k),
                                zext32: bits == 32,
                            }
                        }
                        _ => {
                            let x = if operation == alu::MOV {
                                Some(0)
                            } else {
                                value(old)
                            };
                            let (Some(x), Some(y)) = (x, value(s)) else {
                                break;
                            };
                            let Some(v) = compute(operation, x, y, bits) else {
                                break;
                            };
                            let keyed = |s: Sym| matches!(s, Sym::Key { .. } | Sym::Other(_));
                            let from_key =
                                (operation != alu::MOV && keyed(old)) || (src_x && keyed(s));
                            if !from_key {
                                Sym::Const(v)
                            } else if values {
                                Sym::Other(v)
                            } else {
                                self.nonlinear = true;
                                break;
                            }
                        }
                    };
                    regs[d] = result;
                    written[d] = true;
                    dirty = true;
                    pc = next;
                }
                class::LD if insn.opc == op::LDDW && insn.src == 0 => {
                    let d = isa::reg_index(insn.dst);
                    let Some(high) = insns.get(pc + 1) else { break };
                    if d == 10 {
                        break;
                    }
                    regs[d] =
                        Sym::Const(u64::from(insn.imm as u32) | (u64::from(high.imm as u32) << 32));
                    written[d] = true;
                    dirty = true;
                    pc += 2;
                }
                _ => break,
            }
        }
        // Leaves are block leaders, so the JIT can jump to them: back up to the last one.
        if self.leaders.get(pc) != Some(&true) || pc == root {
            let (at, r, w) = last_leader?;
            pc = at;
            regs = r;
            written = w;
        }
        if pc == root {
            return None;
        }
        let mut writes = Vec::new();
        for (r, s) in regs.iter().enumerate() {
            if written[r] {
                let w = match *s {
                    Sym::Const(c) | Sym::Other(c) => Write::Const(c),
                    Sym::Key { add, zext32 } => Write::Key { add, zext32 },
                    Sym::Unknown => return None,
                };
                writes.push((r as u8, w));
            }
        }
        Some(Reached {
            leaf: Leaf { pc, writes },
        })
    }
}

/// What the straight-line code before a root says about the key: its base value (the value
/// the root's register was computed from) is `reg - bias` at the root, `init` is what each register holds then, in terms of the base
/// (constants included), and `range` is the base's known range.
struct Before {
    reg: u8,
    bias: u64,
    init: [Sym; 11],
    range: Option<(u64, u64)>,
}

/// A register during [`before_root`]: `origin + add` (wrapping), zero-extended from 32 bits
/// with `zext32`. An origin is a register's value where the straight line starts or the
/// result of an instruction the scan does not follow (with a known range for loads and
/// masks).
#[derive(Debug, Clone, Copy)]
struct Origin {
    id: usize,
    add: u64,
    zext32: bool,
}

/// Runs the straight-line code that always precedes `root` (from the nearest slot control
/// may enter), to relate the root's register `reg` to the other registers and to find the
/// range of the value it was computed from.
fn before_root(insns: &[Insn], entered: &[bool], root: usize, reg: u8) -> Before {
    let mut start = root;
    while start > 0 && !entered[start] && root - start < 32 {
        // The slot before, or the first slot of an `lddw` just before.
        let prev = if start >= 2 && insns[start - 2].opc == op::LDDW {
            start - 2
        } else {
            start - 1
        };
        let p = &insns[prev];
        // Control never falls through an unconditional jump or an exit.
        if p.opc == op::JA || p.opc == op::JA32 || p.opc == op::EXIT {
            break;
        }
        start = prev;
    }
    let plain = |id| Origin {
        id,
        add: 0,
        zext32: false,
    };
    // Origins 0..=10 are the registers' values at `start`.
    let mut origin: [Origin; 11] = core::array::from_fn(plain);
    let mut ranges: Vec<Option<(u64, u64)>> = vec![None; 11];
    let fresh = |ranges: &mut Vec<Option<(u64, u64)>>, range| {
        ranges.push(range);
        plain(ranges.len() - 1)
    };
    let mut pc = start;
    while pc < root {
        let insn = insns[pc];
        let d = isa::reg_index(insn.dst);
        let operation = insn.opc & 0xf0;
        let k = i64::from(insn.imm) as u64;
        let x = insn.opc & source::MASK == source::X;
        let src = origin[isa::reg_index(insn.src)];
        match insn.class() {
            class::ALU64 if insn.off == 0 => {
                origin[d] = match (operation, x) {
                    (alu::MOV, true) => src,
                    (alu::ADD, false) if !origin[d].zext32 => Origin {
                        add: origin[d].add.wrapping_add(k),
                        ..origin[d]
                    },
                    (alu::SUB, false) if !origin[d].zext32 => Origin {
                        add: origin[d].add.wrapping_sub(k),
                        ..origin[d]
                    },
                    (alu::AND, false) if insn.imm >= 0 => fresh(&mut ranges, Some((0, k))),
                    (alu::RSH, false) if insn.imm > 0 && insn.imm < 64 => {
                        fresh(&mut ranges, Some((0, u64::MAX >> insn.imm)))
                    }
                    _ => fresh(&mut ranges, None),
                };
            }
            class::ALU if insn.off == 0 => {
                let small = src.add == 0
                    && !src.zext32
                    && ranges[src.id].is_some_and(|(_, hi)| hi <= u64::from(u32::MAX));
                origin[d] = match (operation, x) {
                    // `w = w` of a value below 2^32 is the value itself.
                    (alu::MOV, true) if small => src,
                    (alu::MOV, true) => Origin {
                        zext32: true,
                        ..src
                    },
                    (alu::ADD, false) => Origin {
                        add: origin[d].add.wrapping_add(k),
                        zext32: true,
                        ..origin[d]
                    },
                    (alu::SUB, false) => Origin {
                        add: origin[d].add.wrapping_sub(k),
                        zext32: true,
                        ..origin[d]
                    },
                    (alu::AND, false) => fresh(&mut ranges, Some((0, u64::from(k as u32)))),
                    _ => fresh(&mut ranges, Some((0, u64::from(u32::MAX)))),
                };
            }
            class::LDX => {
                let high = match insn.opc & 0x18 {
                    0x10 => Some(u64::from(u8::MAX)),
                    0x08 => Some(u64::from(u16::MAX)),
                    0x00 => Some(u64::from(u32::MAX)),
                    _ => None,
                };
                // Sign-extending loads (mode MEMSX) have no small range.
                let range = high.filter(|_| insn.opc & 0xe0 == 0x60).map(|h| (0, h));
                origin[d] = fresh(&mut ranges, range);
            }
            class::JMP | class::JMP32 if operation == jmp::CALL => {
                for o in origin.iter_mut().take(6) {
                    *o = fresh(&mut ranges, None);
                }
            }
            class::JMP | class::JMP32 => {}
            class::ST => {}
            class::STX => {
                if insn.opc & 0xe0 == 0xc0 {
                    // Atomics with a fetch write a register (cmpxchg writes r0).
                    let s = isa::reg_index(insn.src);
                    origin[s] = fresh(&mut ranges, None);
                    origin[0] = fresh(&mut ranges, None);
                }
            }
            _ => origin[d] = fresh(&mut ranges, None),
        }
        pc += insn.slots();
    }
    let key = origin[usize::from(reg).min(10)];
    // The register the dispatch reads: one holding the origin itself plus a constant (the
    // root's own when it does), so the base can be recovered from it.
    let holder = (0..10u8)
        .filter(|&r| {
            let o = origin[usize::from(r)];
            o.id == key.id && !o.zext32
        })
        .min_by_key(|&r| r != reg);
    let (reg, key, range) = match holder {
        Some(r) => (r, origin[usize::from(r)], ranges[key.id]),
        // Only a zero-extended form: the root's register itself is the base.
        None => (
            reg,
            fresh(&mut ranges, None),
            Some((0, u64::from(u32::MAX))),
        ),
    };
    let mut init = [Sym::Unknown; 11];
    for (r, o) in origin.iter().enumerate() {
        if o.id == key.id && r != 10 {
            init[r] = Sym::Key {
                add: o.add,
                zext32: o.zext32,
            };
        }
    }
    if holder.is_none() {
        init[usize::from(reg)] = Sym::Key {
            add: 0,
            zext32: false,
        };
    }
    Before {
        reg,
        bias: key.add,
        init,
        range,
    }
}

/// Finds the switches of a program: compare trees of at least [`MIN_COMPARES`] compares of
/// one key, each rooted at a compare no earlier switch contains. The search does a bounded
/// amount of work whatever the program.
pub(crate) fn find_switches(insns: &[Insn]) -> Vec<Switch> {
    let mut walker = Walker {
        insns,
        leaders: leaders(insns),
        budget: SEARCH_BUDGET,
        nonlinear: false,
        consts: Default::default(),
        seen: vec![0; insns.len() + 1],
        stamp: 0,
        live: None,
    };
    let entered = crate::exec::idiom::entry_points(insns);
    let mut covered = vec![false; insns.len()];
    let mut switches = Vec::new();
    for (root, insn) in insns.iter().enumerate() {
        let cls = insn.class();
        if covered[root]
            || !matches!(cls, class::JMP | class::JMP32)
            || matches!(insn.opc & 0xf0, jmp::JA | jmp::CALL | jmp::EXIT | jmp::JSET)
            || insn.off == 0
        {
            continue;
        }
        if walker.budget == 0 {
            break;
        }
        let reg = insn.dst & 0x0f;
        if reg > 9 || !may_branch_enough(insns, root, reg) {
            continue;
        }
        if let Some((switch, nodes)) = recognise(&mut walker, &entered, root, reg) {
            for n in nodes {
                covered[n] = true;
            }
            if let Some(s) = switch {
                switches.push(s);
            }
        }
    }
    switches
}

/// A quick test before the walks: whether at least [`MIN_COMPARES`] compares can be reached
/// from `root` through code a walk could follow (compares, `ja`, ALU and `lddw`) without
/// loading a constant into `reg`. A walk past such a load has lost the key's register and
/// rarely meets the key again, so this skips roots, like a loop's test before the next loop
/// sets its counter, that cannot lead a switch; it looks at 64 slots at most and lets the
/// walks decide beyond.
fn may_branch_enough(insns: &[Insn], root: usize, reg: u8) -> bool {
    let mut seen: Vec<usize> = Vec::new();
    let mut work = vec![root];
    let mut compares = 0;
    while let Some(pc) = work.pop() {
        if seen.contains(&pc) {
            continue;
        }
        if seen.len() >= 64 {
            return true;
        }
        seen.push(pc);
        let Some(insn) = insns.get(pc) else { continue };
        let next = pc + insn.slots();
        match insn.class() {
            class::JMP | class::JMP32 => {
                if matches!(insn.opc & 0xf0, jmp::CALL | jmp::EXIT) {
                    continue;
                }
                let target = jump_target(pc, insn).and_then(|t| usize::try_from(t).ok());
                if insn.opc == op::JA || insn.opc == op::JA32 {
                    work.extend(target);
                    continue;
                }
                compares += 1;
                if compares >= MIN_COMPARES {
                    return true;
                }
                work.extend(target);
                work.push(next);
            }
            class::ALU | class::ALU64
                if insn.dst & 0x0f != reg || insn.opc & (0xf0 | source::MASK) != alu::MOV =>
            {
                work.push(next)
            }
            class::LD if insn.opc == op::LDDW && insn.dst & 0x0f != reg => work.push(next),
            _ => {}
        }
    }
    false
}

/// Recognises the switch rooted at `root` over `reg`: the switch if it is one, and the
/// compares it met (which are no roots of their own).
#[allow(clippy::type_complexity)]
fn recognise(
    walker: &mut Walker<'_>,
    entered: &[bool],
    root: usize,
    reg: u8,
) -> Option<(Option<Switch>, BTreeSet<usize>)> {
    walker.stamp += 1;
    let before = before_root(walker.insns, entered, root, reg);
    let init = before.init;
    let narrow_root = walker.insns[root].class() == class::JMP32;
    let small32 = before
        .range
        .is_some_and(|(_, hi)| hi <= u64::from(u32::MAX));
    let narrow = narrow_root && !small32;
    walker.nonlinear = false;
    let mut nodes = BTreeSet::new();
    let by_intervals = intervals_of(walker, root, &init, narrow, small32, &mut nodes);
    let enough = |n: &BTreeSet<usize>| n.len() >= MIN_COMPARES && n.contains(&root);
    let (intervals, narrow) = match (by_intervals, before.range) {
        (Some(found), _) if enough(&nodes) && !walker.nonlinear => (found, narrow),
        (_, Some((lo, hi))) if walker.nonlinear && hi - lo < MAX_ENUMERATED => {
            let mut points = Vec::new();
            let mut intervals: Vec<(u64, Leaf)> = Vec::new();
            for b in lo..=hi {
                let reached = walker.walk(root, &init, Mode::Values, b, &mut points, &mut nodes)?;
                let start = if b == lo { 0 } else { b };
                if intervals.last().is_none_or(|(_, l)| *l != reached.leaf) {
                    intervals.push((start, reached.leaf));
                }
            }
            (intervals, false)
        }
        (Some(found), _) => (found, narrow),
        (None, _) => return Some((None, nodes)),
    };
    if nodes.len() < MIN_COMPARES || !nodes.contains(&root) {
        return Some((None, nodes));
    }
    // Writes of registers nothing reads again are dropped; then the distinct leaves are
    // numbered.
    let live = walker
        .live
        .get_or_insert_with(|| live_registers(walker.insns));
    let mut leaves: Vec<Leaf> = Vec::new();
    let mut numbered: Vec<(u64, u32)> = Vec::with_capacity(intervals.len());
    for (s, mut leaf) in intervals {
        let keep = live.get(leaf.pc).copied().unwrap_or(u16::MAX);
        leaf.writes.retain(|&(r, _)| keep & 1 << r != 0);
        let n = match leaves.iter().position(|l| *l == leaf) {
            Some(n) => n,
            None => {
                leaves.push(leaf);
                leaves.len() - 1
            }
        };
        numbered.push((s, n as u32));
    }
    let lookup = lookup_of(&numbered, narrow);
    let mut switch = Switch {
        root,
        reg: before.reg,
        bias: before.bias,
        narrow,
        leaves,
        lookup,
        compares: nodes.len(),
        values: None,
    };
    if let (
        Some((join, regs)),
        Lookup::Dense {
            low,
            table,
            outside,
        },
    ) = (switch.value_table(), &switch.lookup)
    {
        let rows = table
            .iter()
            .chain(core::iter::once(outside))
            .flat_map(|&n| switch.leaves[n as usize].writes.iter())
            .map(|&(_, w)| w.value(0))
            .collect();
        switch.values = Some(Values {
            join,
            regs,
            low: *low,
            n: table.len() as u64,
            rows,
        });
    }
    Some((Some(switch), nodes))
}

/// Cuts the index space (2^32 values when `narrow`, else 2^64) into intervals on which the
/// switch at `root` reaches one leaf, following one value per interval and splitting where
/// a compare passed changes its outcome inside it. `None` when a walk failed or there would
/// be too many intervals.
fn intervals_of(
    walker: &mut Walker<'_>,
    root: usize,
    init: &[Sym; 11],
    narrow: bool,
    small32: bool,
    nodes: &mut BTreeSet<usize>,
) -> Option<Vec<(u64, Leaf)>> {
    let mode = Mode::Intervals { narrow, small32 };
    let end: u128 = if narrow { 1 << 32 } else { 1 << 64 };
    // Work list of [start, end) intervals still to decide.
    let mut work: Vec<(u64, u128)> = vec![(0, end)];
    let mut done: Vec<(u64, Leaf)> = Vec::new();
    let mut points = Vec::new();
    while let Some((a, e)) = work.pop() {
        points.clear();
        let reached = walker.walk(root, init, mode, a, &mut points, nodes)?;
        let mut inside: Vec<u64> = points
            .iter()
            .copied()
            .filter(|&p| p > a && u128::from(p) < e)
            .collect();
        if inside.is_empty() {
            done.push((a, reached.leaf));
            continue;
        }
        inside.sort_unstable();
        inside.dedup();
        if done.len() + work.len() + inside.len() > MAX_INTERVALS {
            return None;
        }
        let mut from = a;
        for p in inside {
            work.push((from, u128::from(p)));
            from = p;
        }
        work.push((from, e));
    }
    done.sort_by_key(|(s, _)| *s);
    let mut intervals: Vec<(u64, Leaf)> = Vec::new();
    for (s, leaf) in done {
        if intervals.last().is_none_or(|(_, l)| *l != leaf) {
            intervals.push((s, leaf));
        }
    }
    Some(intervals)
}

/// The lookup for intervals `(start, leaf)` covering the index space (`narrow`: 2^32 values,
/// else 2^64): a table over everything but the longest run of one leaf (counted around the
/// end of the space), when that is at most [`MAX_TABLE`] values; else a binary search.
fn lookup_of(intervals: &[(u64, u32)], narrow: bool) -> Lookup {
    let space: u128 = if narrow { 1 << 32 } else { 1 << 64 };
    let m = intervals.len();
    let end_of = |i: usize| -> u128 {
        if i + 1 < m {
            u128::from(intervals[i + 1].0)
        } else {
            space
        }
    };
    // The longest run: the first and last intervals join around the end when their leaves
    // are the same.
    let wraps = m > 1 && intervals[0].1 == intervals[m - 1].1;
    let mut best: (u128, usize) = (0, 0);
    for i in 0..m {
        let mut len = end_of(i) - u128::from(intervals[i].0);
        if wraps && (i == 0 || i == m - 1) {
            len = end_of(0) + (space - u128::from(intervals[m - 1].0));
        }
        if len > best.0 {
            best = (len, i);
        }
    }
    let (longest, i) = best;
    let outside = intervals[i].1;
    let span = space - longest;
    if span <= u128::from(MAX_TABLE) {
        // The table starts where the longest run ends.
        let low = if wraps && (i == 0 || i == m - 1) {
            end_of(0) as u64
        } else {
            (end_of(i) % space) as u64
        };
        let mask = (space - 1) as u64;
        let leaf_at = |v: u64| {
            let j = intervals.partition_point(|&(s, _)| s <= v);
            intervals[j.saturating_sub(1)].1
        };
        let table = (0..span as u64)
            .map(|k| leaf_at(low.wrapping_add(k) & mask))
            .collect();
        return Lookup::Dense {
            low,
            table,
            outside,
        };
    }
    Lookup::Sparse {
        starts: intervals.iter().map(|&(s, _)| s).collect(),
        leaves: intervals.iter().map(|&(_, l)| l).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    /// The leaf of root-register value `v` by following the slots one by one with the
    /// walker in value mode (an independent check of the lookup).
    fn followed(insns: &[Insn], s: &Switch, v: u64) -> Leaf {
        let mut walker = Walker {
            insns,
            leaders: leaders(insns),
            budget: usize::MAX,
            nonlinear: false,
            consts: Default::default(),
            seen: vec![0; insns.len() + 1],
            stamp: 1,
            live: None,
        };
        let mut init = [Sym::Unknown; 11];
        init[usize::from(s.reg)] = Sym::Key {
            add: s.bias,
            zext32: false,
        };
        let base = s.base(v);
        let mut leaf = walker
            .walk(
                s.root,
                &init,
                Mode::Values,
                base,
                &mut Vec::new(),
                &mut BTreeSet::new(),
            )
            .expect("a leaf")
            .leaf;
        // The switch keeps only the writes of registers read again.
        let keep = live_registers(insns)[leaf.pc];
        leaf.writes.retain(|&(r, _)| keep & 1 << r != 0);
        leaf
    }

    #[test]
    fn writes_of_dead_registers_do_not_keep_a_value_table_away() {
        // Each leaf sets r0, and some also leave a scratch value in r5, which the join
        // overwrites before reading: only r0 counts, so the switch picks values from a table.
        let text = "ldxb %r2, [%r1+0]\n\
             jeq %r2, 1, one\njeq %r2, 2, two\njeq %r2, 3, three\njeq %r2, 4, four\n\
             mov %r0, 9\nja join\n\
             one:\nmov %r5, 11\nmov %r0, 1\nja join\n\
             two:\nmov %r0, 2\nja join\n\
             three:\nmov %r5, 33\nmov %r0, 3\nja join\n\
             four:\nmov %r0, 4\n\
             join:\nmov %r5, 0\nadd %r0, %r5\nexit\n";
        let insns = assembled(text);
        let switches = find_switches(&insns);
        assert_eq!(switches.len(), 1);
        let values = switches[0].values.as_ref().expect("a value table");
        assert_eq!(values.regs, vec![0]);
        assert!(live_registers(&insns)[values.join] & 1 << 5 == 0);
        // Read at the join, the same scratch register keeps its writes and the branches.
        let read = text.replace("join:\nmov %r5, 0\n", "join:\n");
        let switches = find_switches(&assembled(&read));
        assert!(switches.iter().all(|s| s.values.is_none()));
    }

    #[test]
    fn a_binary_compare_tree_becomes_a_table() {
        let insns = assembled(
            "ldxb %r4, [%r1+0]\njsgt %r4, 3, high\njsgt %r4, 1, two\njeq %r4, 0, zero\n\
             jeq %r4, 1, one\nja other\nhigh:\njeq %r4, 4, four\njeq %r4, 5, five\nja other\n\
             two:\njeq %r4, 2, zero\nja one\nzero:\nmov %r0, 0\nexit\none:\nmov %r0, 1\nexit\n\
             four:\nmov %r0, 4\nexit\nfive:\nmov %r0, 5\nexit\nother:\nmov %r0, 9\nexit\n",
        );
        let switches = find_switches(&insns);
        assert_eq!(switches.len(), 1);
        let s = &switches[0];
        assert_eq!((s.root, s.reg), (1, 4));
        for v in 0..300u64 {
            assert_eq!(s.leaf(s.base(v)), &followed(&insns, s, v), "{v}");
        }
    }

    #[test]
    fn leaves_that_set_a_value_make_a_value_table() {
        // The held-out shape: each leaf sets r0 before its last compare; all reach `join`.
        let insns = assembled(
            "ldxw %r5, [%r1+0]\njsgt %r5, 3, high\nmov %r0, 10\njeq %r5, 0, join\n\
             jeq %r5, 1, one\nja dflt\none:\nmov %r0, 11\nja join\nhigh:\nmov %r0, 12\n\
             jeq %r5, 4, join\nmov %r0, 13\njeq %r5, 5, join\ndflt:\nmov %r0, 99\njoin:\n\
             xor %r0, %r5\nexit\n",
        );
        let switches = find_switches(&insns);
        assert_eq!(switches.len(), 1);
        let s = &switches[0];
        let (join, regs) = s.value_table().expect("a value table");
        assert_eq!((join, regs), (insns.len() - 2, vec![0]));
        let values = s.values.as_ref().expect("values");
        for v in [0u64, 1, 2, 3, 4, 5, 6, 1 << 31, u64::from(u32::MAX)] {
            let leaf = s.leaf(s.base(v));
            let row = s.row(values, s.base(v));
            assert_eq!(
                leaf.writes,
                vec![(0, Write::Const(values.rows[row]))],
                "{v}"
            );
        }
        assert!(matches!(s.lookup, Lookup::Dense { .. }));
        for v in [0, 1, 2, 3, 4, 5, 6, 1 << 31, u64::from(u32::MAX)] {
            assert_eq!(s.leaf(s.base(v)), &followed(&insns, s, v), "{v}");
        }
    }

    #[test]
    fn jmp32_keys_ignore_the_high_bits() {
        let insns = assembled(
            "jsgt32 %r2, 5, high\njeq32 %r2, 0, a\njeq32 %r2, 1, b\nja c\nhigh:\n\
             jeq32 %r2, 6, a\njeq32 %r2, 7, b\nja c\na:\nmov %r0, 1\nexit\nb:\nmov %r0, 2\nexit\n\
             c:\nmov %r0, 3\nexit\n",
        );
        let switches = find_switches(&insns);
        assert_eq!(switches.len(), 1);
        let s = &switches[0];
        assert!(s.narrow);
        for v in [
            0u64,
            1,
            5,
            6,
            7,
            8,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0007,
            u64::MAX,
        ] {
            assert_eq!(s.leaf(s.base(v)), &followed(&insns, s, v), "{v:#x}");
        }
    }

    #[test]
    fn sparse_keys_use_a_search() {
        let insns = assembled(
            "jsgt %r2, 5000, high\njeq %r2, -70000, a\njeq %r2, 10, b\njeq %r2, 5000, c\nja d\n\
             high:\njeq %r2, 90000, a\njeq %r2, 1000000, b\nja d\na:\nmov %r0, 1\nexit\n\
             b:\nmov %r0, 2\nexit\nc:\nmov %r0, 3\nexit\nd:\nmov %r0, 4\nexit\n",
        );
        let switches = find_switches(&insns);
        assert_eq!(switches.len(), 1);
        let s = &switches[0];
        assert!(matches!(s.lookup, Lookup::Sparse { .. }));
        for v in [
            0u64,
            10,
            11,
            9,
            5000,
            5001,
            90000,
            1000000,
            (-70000i64) as u64,
            (-69999i64) as u64,
            u64::MAX,
            1 << 63,
        ] {
            assert_eq!(s.leaf(s.base(v)), &followed(&insns, s, v), "{v:#x}");
        }
    }

    #[test]
    fn constants_hold_only_when_every_path_writes_them() {
        // r6 is 7 on every path into the loop; r8 only on one branch.
        let insns = assembled(
            "mov %r6, 7\njeq %r1, 0, skip\nmov %r8, 7\nskip:\nldxb %r2, [%r1+0]\n\
             jgt %r2, %r6, out\nja skip\nout:\nexit\n",
        );
        let mut walker = Walker {
            insns: &insns,
            leaders: leaders(&insns),
            budget: usize::MAX,
            nonlinear: false,
            consts: Default::default(),
            seen: vec![0; insns.len() + 1],
            stamp: 1,
            live: None,
        };
        let regs = [Sym::Unknown; 11];
        assert_eq!(walker.operand(&regs, 6, 5), Sym::Const(7));
        assert_eq!(walker.operand(&regs, 8, 5), Sym::Unknown);
        // Written by the load: not a constant.
        assert_eq!(walker.operand(&regs, 2, 5), Sym::Unknown);
    }
}
