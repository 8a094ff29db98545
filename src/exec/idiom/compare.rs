//! Compare loops (memcmp, strcmp, strncmp and their relatives), run by *fast-forward*.
//!
//! [`find_compare_loops`] recognises a loop from its dataflow, not from one instruction
//! sequence: starting at the loop's only entry, it executes one iteration symbolically. Every
//! register is then invariant, an induction (`r += c` per iteration), a temporary written
//! before it is read (an affine value, or one masked or shifted, such as an argument byte
//! `w5 = w2; w5 &= 0xff` recomputed in every iteration), a loaded element (zero- or
//! sign-extended, masked or shifted), or a *carried* element (a value loaded for the next iteration, as clang's rotated strcmp loads
//! the next byte before its test). The loop may leave at any conditional jump whose other
//! side stays on the loop's single path; each such exit is recorded as a comparison of two
//! symbolic values. The body may not call or exit; it may store only an element it loaded
//! in the same iteration (a copy that leaves early, such as strcpy), see
//! [`CompareLoop::fast_forward`].
//!
//! At the loop's entry, [`CompareLoop::fast_forward`] computes how many whole iterations
//! would run without taking any exit and without any load leaving its region: the counter
//! exits by arithmetic (bounded also before the counter wraps), the element exits by scanning
//! memory (chunked compares for "the two elements differ", a word-at-a-time search for a
//! terminator, a per-element evaluation for anything else). It then advances the inductions
//! by that many steps, sets the carried and temporary registers to their values after the
//! last skipped iteration, and lets the loop's own code run on from its head: the iteration
//! that leaves (or faults) runs instruction by instruction, so the result, the error and its
//! pc are the interpreter's. Any smaller count would be exact too: the count only has to be
//! a lower bound of the iterations that complete.
//!
//! One plain-data description ([`CompareLoop`], integers only) serves both engines: the
//! interpreter keeps it with its decoded program, the JIT keeps its packed words in the
//! compiled program's context (which outlives the VM while any copy of the code may run) and
//! hands their address to the runtime (`jit::runtime::rt_compare_ff`).

use alloc::vec;
use alloc::vec::Vec;

use super::{Rel, relation};
use crate::isa::{Insn, class, jmp, op, source};

/// Most registers summed in one affine value.
const MAX_TERMS: usize = 4;
/// Most operations applied to a loaded element.
const MAX_OPS: usize = 3;
/// Most loads of one iteration (carried elements included).
const MAX_LOADS: usize = 4;
/// Most exits of one loop.
const MAX_EXITS: usize = 4;
/// Most registers set after a fast-forward besides the inductions.
const MAX_SETS: usize = 6;
/// Most stores of one iteration (a copy loop with a data- or counter-dependent exit).
const MAX_STORES: usize = 2;
/// Longest loop body recognised, in slots.
const MAX_BODY: usize = 48;
/// Most iterations one fast-forward skips (keeps every product far from overflow).
pub(crate) const MAX_ITERATIONS: u64 = 1 << 40;
/// "No register" in a term list.
const NO_REG: u8 = 0xff;

// The packed form's map has 128 bits.
const _: () = assert!(CompareLoop::WORDS <= 128);

#[cfg(test)]
std::thread_local! {
    /// Unit tests only: iterations skipped by fast-forwards on this thread, and elements
    /// evaluated one by one while scanning (the slow path), in both engines.
    static COUNTS: core::cell::Cell<(u64, u64)> = const { core::cell::Cell::new((0, 0)) };
}

/// Unit tests only: `(iterations skipped, elements evaluated one by one)` by the
/// fast-forwards of this thread since the last call (which resets both).
#[cfg(test)]
pub(crate) fn take_counts() -> (u64, u64) {
    COUNTS.with(|c| c.replace((0, 0)))
}

/// An affine value: the sum of the iteration-start values of `terms` plus `c` (wrapping).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Aff {
    /// Registers summed, [`NO_REG`] for unused entries (4..8 are always unused).
    terms: [u8; 8],
    /// Added constant.
    c: i64,
}

/// A value of one iteration: affine in the iteration-start registers, or a loaded element
/// after a few operations.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Val {
    /// `[kind (0: affine, 1: element), load index, operation count, register (for a set),
    /// 0, 0, 0, 0]`.
    head: [u8; 8],
    /// The affine value (kind 0).
    aff: Aff,
    /// The operations applied to the element (kind 1), packed by [`pack_op`].
    ops: [u64; MAX_OPS],
}

/// One load of an iteration.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Its address.
    addr: Aff,
    /// `[width in bytes, sign-extending, 0, ...]`.
    shape: [u8; 8],
}

/// A conditional exit: the loop leaves when `lhs REL rhs`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// Left operand.
    lhs: Val,
    /// Right operand.
    rhs: Val,
    /// `[relation (Rel as u8), signed, 32-bit, 0, ...]`.
    how: [u8; 8],
}

/// A store of an iteration: the element of load `shape[1]`, unchanged, to `addr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Store {
    /// Its address.
    addr: Aff,
    /// `[width in bytes, index of the load whose element it stores, 0, ...]`.
    shape: [u8; 8],
}

/// A recognised compare loop: plain integers only (the JIT copies its words, see
/// [`CompareLoop::words`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompareLoop {
    /// `[loads, exits, sets, carried, stores, 0, ...]`: how many entries of each array are
    /// used.
    counts: [u8; 8],
    /// The slot of the loop's entry, where the fast-forward runs.
    pub head: u64,
    /// Per register, its step per iteration (0: not an induction).
    steps: [i64; 11],
    /// The loads of an iteration; the first `carried` ones are *virtual*: the element a
    /// carried register holds at the iteration's start (the previous iteration's load).
    loads: [Load; MAX_LOADS],
    /// The exits.
    exits: [Exit; MAX_EXITS],
    /// Registers set after a fast-forward of `n` iterations (register in `head[3]`): carried
    /// registers first (their virtual element at iteration `n`), then temporaries (their value
    /// at the end of iteration `n - 1`).
    sets: [Val; MAX_SETS],
    /// Stores (a copy loop that may leave early); none in a compare loop.
    stores: [Store; MAX_STORES],
}

/// The memory a fast-forward may read: the run's input memory and stack (other regions are
/// never scanned; a loop over them runs element by element).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// First byte of mem (0: no mem).
    pub mem_start: u64,
    /// One past its last byte.
    pub mem_end: u64,
    /// First byte of the stack.
    pub stack_start: u64,
    /// One past its last byte.
    pub stack_end: u64,
}

/// What a fast-forward did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forward {
    /// Skipped this many iterations (0: none could be skipped this time).
    Skipped(u64),
    /// A load lies outside mem and the stack: this loop cannot be fast-forwarded in this run
    /// (the caller need not try again).
    Uncovered,
}

/// `opcode << 32 | imm` of an operation applied to an element.
fn pack_op(opcode: u8, imm: i32) -> u64 {
    (u64::from(opcode) << 32) | u64::from(imm as u32)
}

fn sign_extend(v: u64, bits: u32) -> u64 {
    let shift = 64 - bits;
    (((v << shift) as i64) >> shift) as u64
}

/// Applies a packed operation (one the recogniser accepted) to `x`.
fn apply(packed: u64, x: u64) -> u64 {
    let opcode = (packed >> 32) as u8;
    let imm = packed as u32;
    let k = imm & 63;
    match opcode {
        op::AND64_IMM => x & (imm as i32 as i64 as u64),
        op::LSH64_IMM => x << k,
        op::RSH64_IMM => x >> k,
        op::ARSH64_IMM => ((x as i64) >> k) as u64,
        op::AND32_IMM => u64::from(x as u32 & imm),
        op::LSH32_IMM => u64::from((x as u32) << (k & 31)),
        op::RSH32_IMM => u64::from((x as u32) >> (k & 31)),
        op::ARSH32_IMM => u64::from(((x as i32) >> (k & 31)) as u32),
        op::MOV64_REG => sign_extend(x, imm),
        op::MOV32_REG if imm == 0 => u64::from(x as u32),
        op::MOV32_REG => u64::from(sign_extend(x, imm) as u32),
        _ => x,
    }
}

/// Where a bit of a value comes from (see [`provenance`]): always zero.
const BIT_ZERO: u8 = 0xff;

/// Where each of the 64 bits of an element's value comes from, as [`CompareLoop::val_at`]
/// computes it: a `width`-byte element, loaded zero- or sign-extending (`signed`), then
/// `ops` applied. Entry `k` is `i` when bit `k` is bit `i` of the raw element, [`BIT_ZERO`]
/// when it is always 0. Two values with the same provenance are the same function of the raw
/// element, whatever instructions computed them (`w0 = w1; w0 &= 0xff` of a byte is the byte).
fn provenance(width: u8, signed: bool, ops: &[u64]) -> [u8; 64] {
    let len = usize::from(width).min(8) * 8;
    let mut bits = [BIT_ZERO; 64];
    for (k, b) in bits.iter_mut().enumerate() {
        if k < len {
            *b = k as u8;
        } else if signed {
            *b = (len - 1) as u8;
        }
    }
    for &packed in ops {
        let opcode = (packed >> 32) as u8;
        let imm = packed as u32;
        let old = bits;
        // Bit `k` of the result from bit `from(k)` of the operand (None: zero).
        let mut map = |from: &dyn Fn(usize) -> Option<usize>| {
            for (k, b) in bits.iter_mut().enumerate() {
                *b = from(k).map_or(BIT_ZERO, |i| old[i]);
            }
        };
        let k64 = (imm & 63) as usize;
        let k32 = (imm & 31) as usize;
        let mask64 = imm as i32 as i64 as u64;
        match opcode {
            op::AND64_IMM => map(&|k| (mask64 >> k & 1 == 1).then_some(k)),
            op::AND32_IMM => map(&|k| (k < 32 && imm >> k & 1 == 1).then_some(k)),
            op::LSH64_IMM => map(&|k| k.checked_sub(k64)),
            op::RSH64_IMM => map(&|k| (k + k64 < 64).then_some(k + k64)),
            op::ARSH64_IMM => map(&|k| Some((k + k64).min(63))),
            op::LSH32_IMM => map(&|k| (k < 32).then(|| k.checked_sub(k32)).flatten()),
            op::RSH32_IMM => map(&|k| (k + k32 < 32).then_some(k + k32)),
            op::ARSH32_IMM => map(&|k| (k < 32).then_some((k + k32).min(31))),
            op::MOV64_REG if (1..64).contains(&imm) => {
                map(&|k| Some(k.min(imm as usize - 1)));
            }
            op::MOV32_REG if imm == 0 => map(&|k| (k < 32).then_some(k)),
            op::MOV32_REG if (1..32).contains(&imm) => {
                map(&|k| (k < 32).then_some(k.min(imm as usize - 1)));
            }
            // `apply` leaves anything else (never recognised) unchanged.
            _ => {}
        }
    }
    bits
}

/// When the compared bits of a value (the low 32 of a 32-bit compare, else all 64) keep every
/// bit of its `width`-byte raw element: for each raw bit, a position that holds it. Then
/// equal compared values mean equal raw elements.
fn kept(bits: &[u8; 64], width: u8, narrow: bool) -> Option<[u8; 64]> {
    let compared = if narrow { &bits[..32] } else { &bits[..] };
    let mut at = [0u8; 64];
    for (i, slot) in at
        .iter_mut()
        .enumerate()
        .take(usize::from(width).min(8) * 8)
    {
        *slot = compared.iter().position(|&b| usize::from(b) == i)? as u8;
    }
    Some(at)
}

/// Whether `a REL b` holds, compared signed or not, on 32 or 64 bits.
fn holds(rel: u8, signed: bool, narrow: bool, a: u64, b: u64) -> bool {
    let (a, b) = if narrow {
        if signed {
            (i64::from(a as i32) as u64, i64::from(b as i32) as u64)
        } else {
            (u64::from(a as u32), u64::from(b as u32))
        }
    } else {
        (a, b)
    };
    let (a, b) = if signed {
        (a ^ (1 << 63), b ^ (1 << 63))
    } else {
        (a, b)
    };
    match rel {
        REL_EQ => a == b,
        REL_NE => a != b,
        REL_LT => a < b,
        REL_LE => a <= b,
        REL_GT => a > b,
        _ => a >= b,
    }
}

const REL_EQ: u8 = 0;
const REL_NE: u8 = 1;
const REL_LT: u8 = 2;
const REL_LE: u8 = 3;
const REL_GT: u8 = 4;
const REL_GE: u8 = 5;

fn rel_code(rel: Rel) -> u8 {
    match rel {
        Rel::Eq => REL_EQ,
        Rel::Ne => REL_NE,
        Rel::Lt => REL_LT,
        Rel::Le => REL_LE,
        Rel::Gt => REL_GT,
        Rel::Ge => REL_GE,
    }
}

/// The first `j` in `0..cap` at which `x0 + j * step REL b` holds (on 32 or 64 bits, signed
/// or not), or a lower bound of it: past the point where the sequence wraps, `cap` is never
/// exceeded and the answer is where the wrap would happen.
fn first_fire(x0: u64, step: u64, b: u64, rel: u8, signed: bool, narrow: bool, cap: u64) -> u64 {
    let bits = if narrow { 32 } else { 64 };
    let mask = if narrow {
        u64::from(u32::MAX)
    } else {
        u64::MAX
    };
    let bias = if signed { 1u64 << (bits - 1) } else { 0 };
    let (mut x, mut b) = ((x0 ^ bias) & mask, (b ^ bias) & mask);
    let mut step = step & mask;
    let mut rel = rel;
    if step == 0 {
        return if holds(rel, false, narrow, x, b) {
            0
        } else {
            cap
        };
    }
    // A step past half the range moves down: mirror the order so that it moves up.
    if step > mask >> 1 {
        if step == (mask >> 1) + 1 {
            // ±2^(bits-1): alternates; only the first value is known.
            return if holds(rel, false, narrow, x, b) {
                0
            } else {
                cap.min(1)
            };
        }
        x = !x & mask;
        b = !b & mask;
        step = step.wrapping_neg() & mask;
        rel = match rel {
            REL_LT => REL_GT,
            REL_LE => REL_GE,
            REL_GT => REL_LT,
            REL_GE => REL_LE,
            other => other,
        };
    }
    // Values 0..prefix of the sequence increase without wrapping.
    let prefix = ((mask - x) / step).saturating_add(1);
    let j = match rel {
        REL_EQ if b >= x && (b - x).is_multiple_of(step) => (b - x) / step,
        REL_NE if x != b => 0,
        REL_NE => 1,
        REL_LT | REL_LE if holds(rel, false, narrow, x, b) => 0,
        REL_GT if x > b => 0,
        REL_GT => ((b - x) / step).saturating_add(1),
        REL_GE if x >= b => 0,
        REL_GE => (b - x).div_ceil(step),
        _ => prefix,
    };
    j.min(prefix).min(cap)
}

/// Bytes [`mismatch_forward`] compares at once while the arrays are equal.
const MISMATCH_BLOCK: usize = 1024;

/// The first element index in `0..n` at which two arrays of `w`-byte elements differ, both
/// read forward from `a` and `b`, or `n`.
///
/// # Safety
/// Both ranges of `n * w` bytes must be readable.
unsafe fn mismatch_forward(a: u64, b: u64, n: u64, w: u64) -> u64 {
    let bytes = (n * w) as usize;
    // SAFETY: the caller's contract.
    let x = unsafe { core::slice::from_raw_parts(a as *const u8, bytes) };
    // SAFETY: the caller's contract.
    let y = unsafe { core::slice::from_raw_parts(b as *const u8, bytes) };
    let mut i = 0;
    // Equal prefixes in large blocks first (one call of the C library's vectorised compare
    // per block, instead of one per 32 bytes), then the differing block in smaller steps.
    while i + MISMATCH_BLOCK <= bytes {
        if x[i..i + MISMATCH_BLOCK] != y[i..i + MISMATCH_BLOCK] {
            break;
        }
        i += MISMATCH_BLOCK;
    }
    while i + 32 <= bytes {
        if x[i..i + 32] != y[i..i + 32] {
            break;
        }
        i += 32;
    }
    while i + 8 <= bytes {
        let u = u64::from_le_bytes(x[i..i + 8].try_into().unwrap_or_default());
        let v = u64::from_le_bytes(y[i..i + 8].try_into().unwrap_or_default());
        if u != v {
            let byte = i + ((u ^ v).trailing_zeros() / 8) as usize;
            return byte as u64 / w;
        }
        i += 8;
    }
    while i < bytes {
        if x[i] != y[i] {
            return i as u64 / w;
        }
        i += 1;
    }
    n
}

/// The first element index in `0..n` at which two arrays of `w`-byte elements differ, read
/// downward from the elements at `a` and `b`, or `n`.
///
/// # Safety
/// The `n` elements below and at each start must be readable.
unsafe fn mismatch_backward(a: u64, b: u64, n: u64, w: u64) -> u64 {
    let back = (n - 1) * w;
    let bytes = (n * w) as usize;
    // SAFETY: the caller's contract.
    let x = unsafe { core::slice::from_raw_parts((a - back) as *const u8, bytes) };
    // SAFETY: the caller's contract.
    let y = unsafe { core::slice::from_raw_parts((b - back) as *const u8, bytes) };
    let mut end = bytes;
    while end >= 8 {
        let u = u64::from_le_bytes(x[end - 8..end].try_into().unwrap_or_default());
        let v = u64::from_le_bytes(y[end - 8..end].try_into().unwrap_or_default());
        if u != v {
            let byte = end - 1 - ((u ^ v).leading_zeros() / 8) as usize;
            return (bytes - 1 - byte) as u64 / w;
        }
        end -= 8;
    }
    while end > 0 {
        end -= 1;
        if x[end] != y[end] {
            return (bytes - 1 - end) as u64 / w;
        }
    }
    n
}

/// The first index in `0..n` of a `w`-byte element equal to `raw` in the array read from `a`
/// moving by `delta` bytes per element, or `n`.
///
/// # Safety
/// Every element `a + j * delta`, `j < n`, must be readable.
unsafe fn find_element(a: u64, delta: i64, n: u64, w: u64, raw: u64) -> u64 {
    if w == 1 && delta == 1 {
        // SAFETY: the caller's contract.
        let x = unsafe { core::slice::from_raw_parts(a as *const u8, n as usize) };
        let needle = raw as u8;
        let spread = u64::from(needle) * 0x0101_0101_0101_0101;
        let mut i = 0;
        while i + 8 <= x.len() {
            let word = u64::from_le_bytes(x[i..i + 8].try_into().unwrap_or_default()) ^ spread;
            // A zero byte of `word` is a byte equal to the needle.
            let zero = word.wrapping_sub(0x0101_0101_0101_0101) & !word & 0x8080_8080_8080_8080;
            if zero != 0 {
                return (i + (zero.trailing_zeros() / 8) as usize) as u64;
            }
            i += 8;
        }
        return x[i..]
            .iter()
            .position(|&b| b == needle)
            .map_or(n, |p| (i + p) as u64);
    }
    for j in 0..n {
        let addr = a.wrapping_add(j.wrapping_mul(delta as u64));
        // SAFETY: the caller's contract.
        if unsafe { crate::exec::memory::load(addr, w as usize) } == raw {
            return j;
        }
    }
    n
}

impl CompareLoop {
    /// The description as words.
    fn words(&self) -> &[u64] {
        // SAFETY: `CompareLoop` is `repr(C)`, 8-byte aligned, made only of 8-byte integers and
        // byte arrays of 8, so it has no padding and every byte is initialised.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast::<u64>(), Self::WORDS) }
    }

    /// Size of the description in words.
    pub(crate) const WORDS: usize = core::mem::size_of::<Self>() / 8;

    /// The description as words, as compiled code keeps it for the runtime
    /// (`jit::runtime::rt_compare_ff`).
    pub(crate) fn to_words(self) -> Vec<u64> {
        self.words().to_vec()
    }

    /// The description whose word `i` is `read(i)` (the inverse of
    /// [`CompareLoop::to_words`]; `read` is called for words `0..WORDS` only).
    pub(crate) fn from_words(read: impl Fn(usize) -> u64) -> CompareLoop {
        let all: [u64; Self::WORDS] = core::array::from_fn(read);
        // SAFETY: same size (WORDS is the size in words), and every bit pattern is a valid
        // `CompareLoop` (integers and byte arrays only).
        unsafe { core::mem::transmute::<[u64; Self::WORDS], CompareLoop>(all) }
    }

    /// The registers a fast-forward may change (inductions and set registers).
    pub(crate) fn written(&self) -> Vec<u8> {
        let mut regs: Vec<u8> = (0..11u8)
            .filter(|&r| self.steps[usize::from(r)] != 0)
            .collect();
        for set in self.sets.iter().take(usize::from(self.counts[2])) {
            if !regs.contains(&set.head[3]) {
                regs.push(set.head[3]);
            }
        }
        regs
    }

    /// Whether the loop stores (a copy loop with an early exit) rather than only compares.
    pub(crate) fn is_copy(&self) -> bool {
        self.counts[4] != 0
    }

    fn step(&self, r: u8) -> u64 {
        self.steps.get(usize::from(r)).map_or(0, |&s| s as u64)
    }

    /// `a` at iteration `j` from the iteration-0 registers `reg`.
    fn aff_at(&self, a: &Aff, reg: &[u64; 11], j: u64) -> u64 {
        a.terms
            .iter()
            .filter(|&&t| usize::from(t) < 11)
            .fold(a.c as u64, |acc, &t| {
                let v = reg[usize::from(t)].wrapping_add(j.wrapping_mul(self.step(t)));
                acc.wrapping_add(v)
            })
    }

    /// Whether store `st` never writes, in any iteration, bytes that load `l` reads in the
    /// same or a later iteration: both addresses sum the same registers, so they move by the
    /// same step and stay a constant distance apart, and the store sits on the side the loop
    /// moves away from (at or past the load's end when counting down, wholly before the
    /// load's start when counting up). Each iteration then reads only bytes no earlier
    /// iteration stored, so the scans of the original memory are exact and one overlapping
    /// move per store (`memmove`'s meaning) leaves what the iterations would have.
    fn store_trails_load(&self, st: &Store, l: &Load) -> bool {
        let sorted = |a: &Aff| {
            let mut t = a.terms;
            t.sort_unstable();
            t
        };
        if sorted(&st.addr) != sorted(&l.addr) {
            return false;
        }
        let step = self.aff_step(&l.addr) as i64;
        let distance = st.addr.c.wrapping_sub(l.addr.c);
        let (load_width, store_width) = (i64::from(l.shape[0]), i64::from(st.shape[0]));
        (step < 0 && distance >= load_width) || (step > 0 && distance <= -store_width)
    }

    /// How far an affine value moves per iteration.
    fn aff_step(&self, a: &Aff) -> u64 {
        a.terms
            .iter()
            .filter(|&&t| usize::from(t) < 11)
            .fold(0u64, |acc, &t| acc.wrapping_add(self.step(t)))
    }

    fn load_of(&self, v: &Val) -> Option<&Load> {
        self.loads
            .get(usize::from(v.head[1]))
            .filter(|_| v.head[1] < self.counts[0])
    }

    /// The value `v` at iteration `j`.
    ///
    /// # Safety
    /// For an element, its address at iteration `j` must be readable.
    unsafe fn val_at(&self, v: &Val, reg: &[u64; 11], j: u64) -> u64 {
        if v.head[0] == 0 {
            return self.aff_at(&v.aff, reg, j);
        }
        if v.head[0] == 2 {
            return Self::apply_ops(v, self.aff_at(&v.aff, reg, j));
        }
        let Some(load) = self.load_of(v) else {
            return 0;
        };
        let addr = self.aff_at(&load.addr, reg, j);
        let w = usize::from(load.shape[0]);
        // SAFETY: the caller's contract.
        let raw = unsafe { crate::exec::memory::load(addr, w) };
        let x = if load.shape[1] != 0 {
            sign_extend(raw, w as u32 * 8)
        } else {
            raw
        };
        Self::apply_ops(v, x)
    }

    fn ops(v: &Val) -> &[u64] {
        &v.ops[..usize::from(v.head[2]).min(MAX_OPS)]
    }

    /// `x` after the operations of `v` (an element's or an affine value's).
    fn apply_ops(v: &Val, x: u64) -> u64 {
        Self::ops(v).iter().fold(x, |x, &packed| apply(packed, x))
    }

    /// The sides of an exit `element == other`: the element first.
    fn element_first(e: &Exit) -> (&Val, &Val) {
        if e.lhs.head[0] == 1 {
            (&e.lhs, &e.rhs)
        } else {
            (&e.rhs, &e.lhs)
        }
    }

    /// How many iterations from 0 have all their accesses to load `l` inside mem or the stack
    /// (`None`: the first one is in neither).
    fn room(&self, l: &Load, reg: &[u64; 11], bounds: &Bounds) -> Option<u64> {
        let w = u64::from(l.shape[0]);
        let a0 = self.aff_at(&l.addr, reg, 0);
        let end0 = a0.checked_add(w)?;
        let (lo, hi) = if bounds.mem_start != 0 && a0 >= bounds.mem_start && end0 <= bounds.mem_end
        {
            (bounds.mem_start, bounds.mem_end)
        } else if bounds.stack_start != 0 && a0 >= bounds.stack_start && end0 <= bounds.stack_end {
            (bounds.stack_start, bounds.stack_end)
        } else {
            return None;
        };
        let d = self.aff_step(&l.addr) as i64;
        Some(if d > 0 {
            (hi - end0) / d as u64 + 1
        } else if d < 0 {
            (a0 - lo) / d.unsigned_abs() + 1
        } else {
            MAX_ITERATIONS
        })
    }

    /// Runs the fast-forward on the loop-head registers `reg` (see the module docs): skips
    /// every iteration that provably completes, and leaves `reg` as after them.
    ///
    /// # Safety
    /// `bounds` describes this run's live mem and stack, and bounds checks are on.
    pub(crate) unsafe fn fast_forward(&self, reg: &mut [u64; 11], bounds: &Bounds) -> Forward {
        let (loads, exits, sets, carried) = (
            usize::from(self.counts[0]).min(MAX_LOADS),
            usize::from(self.counts[1]).min(MAX_EXITS),
            usize::from(self.counts[2]).min(MAX_SETS),
            usize::from(self.counts[3]),
        );
        let start = *reg;
        // Every access of iterations 0..limit is inside mem or the stack. A carried element
        // at iteration j > 0 is the previous iteration's load (covered), at 0 it is checked
        // here.
        let mut limit = MAX_ITERATIONS;
        for (i, l) in self.loads[..loads].iter().enumerate() {
            let Some(room) = self.room(l, &start, bounds) else {
                return Forward::Uncovered;
            };
            if i >= carried {
                limit = limit.min(room);
            }
        }
        // A carried register must hold its element (the loop's code before the head loaded
        // it, or it runs one ordinary iteration first).
        for set in &self.sets[..carried.min(sets)] {
            // SAFETY: the virtual load's address at 0 was found inside a region above.
            let v = unsafe { self.val_at(set, &start, 0) };
            if v != start[usize::from(set.head[3]) % 11] {
                return Forward::Skipped(0);
            }
        }
        // Counter exits, by arithmetic.
        // The exits that read elements (no allocation: this runs on every loop entry).
        let mut data = [&self.exits[0]; MAX_EXITS];
        let mut data_len = 0;
        for e in &self.exits[..exits] {
            let (rel, signed, narrow) = (e.how[0], e.how[1] != 0, e.how[2] != 0);
            if e.lhs.head[0] == 0 && e.rhs.head[0] == 0 {
                let (ls, rs) = (self.aff_step(&e.lhs.aff), self.aff_step(&e.rhs.aff));
                let (l0, r0) = (
                    self.aff_at(&e.lhs.aff, &start, 0),
                    self.aff_at(&e.rhs.aff, &start, 0),
                );
                let fire = if rs == 0 {
                    first_fire(l0, ls, r0, rel, signed, narrow, limit)
                } else if ls == 0 {
                    let swapped = match rel {
                        REL_LT => REL_GT,
                        REL_LE => REL_GE,
                        REL_GT => REL_LT,
                        REL_GE => REL_LE,
                        other => other,
                    };
                    first_fire(r0, rs, l0, swapped, signed, narrow, limit)
                } else {
                    0
                };
                limit = limit.min(fire);
            } else {
                data[data_len] = e;
                data_len += 1;
            }
        }
        // How each is scanned (the same for every block).
        let mut scans = [Scan::OneByOne; MAX_EXITS];
        for (scan, e) in scans.iter_mut().zip(&data[..data_len]) {
            *scan = self.scan_of(e);
        }
        // Element exits, block by block so that a short loop reads little past its end.
        let mut from = 0u64;
        let mut block = 32u64;
        let mut n = limit;
        'scan: while from < limit {
            let to = limit.min(from + block);
            let mut hit = to;
            for (e, scan) in data[..data_len].iter().zip(&scans) {
                // SAFETY: every load of iterations before `limit` is inside a region.
                let found = unsafe { self.first_exit(e, scan, &start, from, hit) };
                hit = hit.min(found);
            }
            if hit < to {
                n = hit;
                break 'scan;
            }
            from = to;
            block = (block * 2).min(1 << 16);
        }
        if n == 0 {
            return Forward::Skipped(0);
        }
        // Stores: every store range inside a region, and apart from every other store range
        // and from every load range (or trailing the load, see `store_trails_load`), so that
        // the skipped iterations read what was there before them (the scans above) and their
        // stores are one copy per store.
        let stores = usize::from(self.counts[4]).min(MAX_STORES);
        if stores > 0 {
            let span = |addr: &Aff, w: u64, n: u64| {
                let a0 = self.aff_at(addr, &start, 0);
                let d = self.aff_step(addr) as i64;
                let back = (n - 1).wrapping_mul(d.unsigned_abs());
                let low = if d < 0 { a0.wrapping_sub(back) } else { a0 };
                (low, low.wrapping_add(back).wrapping_add(w))
            };
            for st in &self.stores[..stores] {
                let Some(room) = self.room(
                    &Load {
                        addr: st.addr,
                        shape: st.shape,
                    },
                    &start,
                    bounds,
                ) else {
                    return Forward::Uncovered;
                };
                n = n.min(room);
            }
            if n == 0 {
                return Forward::Skipped(0);
            }
            // A load may share memory with a store that only ever overwrites what the load
            // read in an earlier iteration (an overlapping shift, `memmove`'s case).
            let overlap = |(lo1, hi1): (u64, u64), (lo2, hi2): (u64, u64)| lo1 < hi2 && lo2 < hi1;
            for (i, st) in self.stores[..stores].iter().enumerate() {
                let store_span = span(&st.addr, u64::from(st.shape[0]), n);
                for other in &self.stores[i + 1..stores] {
                    if overlap(store_span, span(&other.addr, u64::from(other.shape[0]), n)) {
                        return Forward::Uncovered;
                    }
                }
                for l in &self.loads[carried..loads] {
                    if overlap(store_span, span(&l.addr, u64::from(l.shape[0]), n))
                        && !self.store_trails_load(st, l)
                    {
                        return Forward::Uncovered;
                    }
                }
            }
            for st in &self.stores[..stores] {
                let Some(l) = self.loads.get(usize::from(st.shape[1])) else {
                    return Forward::Skipped(0);
                };
                let ((from, _), (to, _)) = (
                    span(&l.addr, u64::from(l.shape[0]), n),
                    span(&st.addr, u64::from(st.shape[0]), n),
                );
                let bytes = (n * u64::from(st.shape[0])) as usize;
                // SAFETY: both ranges lie inside mem or the stack (checked above) and are
                // apart; `bulk_move` avoids the library copy's slow short page distances.
                unsafe { super::bulk_move(to, from, bytes as u64) };
            }
        }
        // Values after iteration n - 1, from the iteration-0 registers.
        let mut values = [None; MAX_SETS];
        for (i, set) in self.sets[..sets].iter().enumerate() {
            let at = if i < carried { n } else { n - 1 };
            // SAFETY: a carried element at n is iteration n - 1's load; temporaries read
            // iteration n - 1's loads; both inside regions (n <= limit).
            values[i] = Some(unsafe { self.val_at(set, &start, at) });
        }
        for r in 0..11u8 {
            let s = self.step(r);
            if s != 0 {
                reg[usize::from(r)] = start[usize::from(r)].wrapping_add(n.wrapping_mul(s));
            }
        }
        for (set, v) in self.sets[..sets].iter().zip(values) {
            if let Some(v) = v {
                reg[usize::from(set.head[3]) % 11] = v;
            }
        }
        #[cfg(test)]
        COUNTS.with(|c| c.set((c.get().0 + n, c.get().1)));
        Forward::Skipped(n)
    }

    /// How the scans find where exit `e` (one reading an element) is first taken; it
    /// depends only on the loop, not on the run.
    fn scan_of(&self, e: &Exit) -> Scan {
        let (rel, narrow) = (e.how[0], e.how[2] != 0);
        let elem = |v: &Val| -> Option<(i64, u64)> {
            let l = self.load_of(v).filter(|_| v.head[0] == 1)?;
            Some((self.aff_step(&l.addr) as i64, u64::from(l.shape[0])))
        };
        // Two elements whose compared values are the same function of the raw element (so
        // equal raw elements give equal values) that keeps every raw bit, with an order that
        // never holds between equal values: nothing before the first raw difference.
        let bits = |v: &Val, w: u64| {
            let signed = self.load_of(v).is_some_and(|l| l.shape[1] != 0);
            provenance(w as u8, signed, Self::ops(v))
        };
        let compared = if narrow { 32 } else { 64 };
        if matches!(rel, REL_NE | REL_LT | REL_GT)
            && let (Some((da, wa)), Some((db, wb))) = (elem(&e.lhs), elem(&e.rhs))
            && wa == wb
            && da == db
            && da.unsigned_abs() == wa
            && let (lb, rb) = (bits(&e.lhs, wa), bits(&e.rhs, wb))
            && lb[..compared] == rb[..compared]
            && kept(&lb, wa as u8, narrow).is_some()
        {
            return Scan::Mismatch;
        }
        // An element equal to an invariant: search for the raw element that gives it.
        if rel == REL_EQ {
            let (el, other) = Self::element_first(e);
            if let Some((_, w)) = elem(el)
                && other.head[0] != 1
                && self.aff_step(&other.aff) == 0
                && let Some(at) = kept(&bits(el, w), w as u8, narrow)
            {
                return Scan::Find { at };
            }
        }
        Scan::OneByOne
    }

    /// Whether every exit that reads an element is found by a bulk scan (chunked compares or
    /// a search), never by evaluating elements one by one. Compiled code runs a loop whose
    /// exits need the one-by-one evaluation faster than the runtime can evaluate them, so
    /// the JIT fast-forwards only loops that scan in bulk (the interpreter, slower than that
    /// evaluation, fast-forwards every loop).
    pub(crate) fn scans_in_bulk(&self) -> bool {
        let exits = usize::from(self.counts[1]).min(MAX_EXITS);
        self.exits[..exits]
            .iter()
            .filter(|e| e.lhs.head[0] != 0 || e.rhs.head[0] != 0)
            .all(|e| self.scan_of(e) != Scan::OneByOne)
    }

    /// The first iteration in `from..to` at which exit `e` (one reading an element, scanned
    /// as `scan`, its [`Self::scan_of`]) is taken, or `to`.
    ///
    /// # Safety
    /// Every load of those iterations is readable.
    unsafe fn first_exit(&self, e: &Exit, scan: &Scan, reg: &[u64; 11], from: u64, to: u64) -> u64 {
        let (rel, signed, narrow) = (e.how[0], e.how[1] != 0, e.how[2] != 0);
        let elem = |v: &Val| -> Option<(u64, i64, u64)> {
            let l = self.load_of(v).filter(|_| v.head[0] == 1)?;
            let w = u64::from(l.shape[0]);
            let d = self.aff_step(&l.addr) as i64;
            Some((self.aff_at(&l.addr, reg, from), d, w))
        };
        match *scan {
            Scan::Mismatch => {
                if let (Some((a, da, wa)), Some((b, ..))) = (elem(&e.lhs), elem(&e.rhs)) {
                    let n = to - from;
                    let m = if da > 0 {
                        // SAFETY: the caller's contract.
                        unsafe { mismatch_forward(a, b, n, wa) }
                    } else {
                        // SAFETY: the caller's contract.
                        unsafe { mismatch_backward(a, b, n, wa) }
                    };
                    return from + m;
                }
            }
            Scan::Find { at } => {
                let (el, other) = Self::element_first(e);
                let signed_load = self.load_of(el).is_some_and(|l| l.shape[1] != 0);
                if let Some((a, d, w)) = elem(el) {
                    // SAFETY: `other` reads no element (an affine value or a function of one).
                    let target = unsafe { self.val_at(other, reg, 0) };
                    // The only raw element whose value can equal the target (every raw bit
                    // is kept): its bits read back from where the value holds them.
                    let raw = at[..(w as usize).min(8) * 8]
                        .iter()
                        .enumerate()
                        .fold(0u64, |acc, (i, &p)| acc | (target >> p & 1) << i);
                    let x = Self::apply_ops(
                        el,
                        if signed_load {
                            sign_extend(raw, w as u32 * 8)
                        } else {
                            raw
                        },
                    );
                    if !holds(REL_EQ, signed, narrow, x, target) {
                        return to;
                    }
                    // SAFETY: the caller's contract.
                    return from + unsafe { find_element(a, d, to - from, w, raw) };
                }
            }
            Scan::OneByOne => {}
        }
        #[cfg(test)]
        COUNTS.with(|c| c.set((c.get().0, c.get().1 + (to - from))));
        for j in from..to {
            // SAFETY: the caller's contract.
            let l = unsafe { self.val_at(&e.lhs, reg, j) };
            // SAFETY: the caller's contract.
            let r = unsafe { self.val_at(&e.rhs, reg, j) };
            if holds(rel, signed, narrow, l, r) {
                return j;
            }
        }
        to
    }
}

/// How a fast-forward finds the first iteration that takes an exit reading an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Two elements that differ first where their raw bytes do: chunked compares.
    Mismatch,
    /// An element equal to an invariant: a search for the one raw element that gives it.
    /// `at`: where the compared value holds each raw bit (`kept`).
    Find { at: [u8; 64] },
    /// Anything else: each element evaluated in turn.
    OneByOne,
}

/// A symbolic value during the analysis.
#[derive(Debug, Clone, PartialEq, Eq)]
enum S {
    /// Sum of iteration-start registers plus a constant.
    Aff(Vec<u8>, i64),
    /// Load `.0` after operations `.1`.
    Elem(usize, Vec<u64>),
    /// An affine value (as in `Aff`) after operations `.2`, such as `w5 = w2; w5 &= 0xff`
    /// of an invariant register.
    Fn(Vec<u8>, i64, Vec<u64>),
    /// Anything else.
    Unknown,
}

impl S {
    fn add(&self, other: &S) -> S {
        match (self, other) {
            (S::Aff(t1, c1), S::Aff(t2, c2)) if t1.len() + t2.len() <= MAX_TERMS => {
                let mut terms = t1.clone();
                terms.extend_from_slice(t2);
                terms.sort_unstable();
                S::Aff(terms, c1.wrapping_add(*c2))
            }
            _ => S::Unknown,
        }
    }

    fn with_op(&self, packed: u64) -> S {
        match self {
            S::Elem(l, ops) if ops.len() < MAX_OPS => {
                let mut ops = ops.clone();
                ops.push(packed);
                S::Elem(*l, ops)
            }
            S::Aff(terms, c) => S::Fn(terms.clone(), *c, vec![packed]),
            S::Fn(terms, c, ops) if ops.len() < MAX_OPS => {
                let mut ops = ops.clone();
                ops.push(packed);
                S::Fn(terms.clone(), *c, ops)
            }
            _ => S::Unknown,
        }
    }
}

/// One symbolic iteration.
struct Trace {
    /// Loads: (address terms, constant, width, sign-extending).
    loads: Vec<(Vec<u8>, i64, u8, bool)>,
    /// Stores: (address terms, constant, width, load whose element is stored).
    stores: Vec<(Vec<u8>, i64, u8, usize)>,
    /// Exits: taken when `lhs REL rhs` (signed, 32-bit).
    exits: Vec<(S, S, Rel, bool, bool)>,
    /// Registers at the end of the iteration.
    end: Vec<S>,
    /// Whether each register's first access was a read (Some(true)) or a write.
    first: [Option<bool>; 11],
    /// Whether each register was written before the iteration's first exit.
    early: [bool; 11],
}

/// Runs one iteration from `head` along the loop's only path. `start` gives the registers'
/// values at the iteration's start and `virtual_loads` the loads already numbered.
fn trace(
    insns: &[Insn],
    head: usize,
    in_loop: &[bool],
    start: &[S],
    virtual_loads: &[(Vec<u8>, i64, u8, bool)],
) -> Option<Trace> {
    let mut state: Vec<S> = start.to_vec();
    let mut t = Trace {
        loads: virtual_loads.to_vec(),
        stores: Vec::new(),
        exits: Vec::new(),
        end: Vec::new(),
        first: [None; 11],
        early: [false; 11],
    };
    let mut pc = head;
    let mut steps = 0;
    loop {
        steps += 1;
        if steps > MAX_BODY {
            return None;
        }
        let insn = *insns.get(pc)?;
        let (dst, src) = (usize::from(insn.dst), usize::from(insn.src));
        if dst > 10 || src > 10 {
            return None;
        }
        let read = |t: &mut Trace, r: usize| {
            if t.first[r].is_none() {
                t.first[r] = Some(true);
            }
        };
        let write = |t: &mut Trace, r: usize, state: &mut Vec<S>, v: S| {
            if t.first[r].is_none() {
                t.first[r] = Some(false);
            }
            if t.exits.is_empty() {
                t.early[r] = true;
            }
            state[r] = v;
        };
        let next = pc + 1;
        match insn.class() {
            class::ALU64 | class::ALU => {
                let wide = insn.class() == class::ALU64;
                let x = insn.opc & source::MASK == source::X;
                let operation = insn.opc & 0xf0;
                let imm = i64::from(insn.imm);
                let value = if x {
                    read(&mut t, src);
                    state[src].clone()
                } else {
                    S::Aff(Vec::new(), imm)
                };
                let is_mov = operation == 0xb0;
                if !is_mov {
                    read(&mut t, dst);
                }
                let old = state[dst].clone();
                let new = match (wide, operation) {
                    (true, 0xb0) if insn.off == 0 => value,
                    (true, 0xb0) if x && matches!(insn.off, 8 | 16 | 32) => {
                        value.with_op(pack_op(op::MOV64_REG, i32::from(insn.off)))
                    }
                    (true, 0x00) => old.add(&value),
                    (true, 0x10) if !x => old.add(&S::Aff(Vec::new(), imm.wrapping_neg())),
                    (true, 0x50 | 0x60 | 0x70 | 0xc0) if !x => {
                        let k = insn.imm;
                        let shift = operation != 0x50;
                        if shift && !(0..64).contains(&k) {
                            S::Unknown
                        } else {
                            old.with_op(pack_op(insn.opc, k))
                        }
                    }
                    (false, 0xb0) if x && matches!(insn.off, 0 | 8 | 16) => {
                        value.with_op(pack_op(op::MOV32_REG, i32::from(insn.off)))
                    }
                    (false, 0xb0) if !x => S::Aff(Vec::new(), i64::from(insn.imm as u32)),
                    (false, 0x50 | 0x60 | 0x70 | 0xc0) if !x => {
                        let k = insn.imm;
                        let shift = operation != 0x50;
                        if shift && !(0..32).contains(&k) {
                            S::Unknown
                        } else {
                            old.with_op(pack_op(insn.opc, k))
                        }
                    }
                    _ => S::Unknown,
                };
                write(&mut t, dst, &mut state, new);
                pc = next;
            }
            class::LD if insn.opc == op::LDDW => {
                let high = insns.get(pc + 1)?.imm as u32;
                let v = u64::from(insn.imm as u32) | (u64::from(high) << 32);
                write(&mut t, dst, &mut state, S::Aff(Vec::new(), v as i64));
                pc += 2;
            }
            class::STX if insn.opc & 0xe0 == 0x60 => {
                read(&mut t, dst);
                read(&mut t, src);
                let S::Aff(terms, c) = state[dst].clone() else {
                    return None;
                };
                let S::Elem(load, ops) = state[src].clone() else {
                    return None;
                };
                let width = crate::isa::size::bytes(insn.opc) as u8;
                if !ops.is_empty()
                    || t.loads.get(load).is_none_or(|l| l.2 != width || l.3)
                    || t.stores.len() >= MAX_STORES
                {
                    return None;
                }
                t.stores
                    .push((terms, c.wrapping_add(i64::from(insn.off)), width, load));
                pc = next;
            }
            class::LDX if matches!(insn.opc & 0xe0, 0x60 | 0x80) => {
                read(&mut t, src);
                let S::Aff(terms, c) = state[src].clone() else {
                    return None;
                };
                let width = crate::isa::size::bytes(insn.opc) as u8;
                let signed = insn.opc & 0xe0 == 0x80;
                if t.loads.len() >= MAX_LOADS {
                    return None;
                }
                t.loads
                    .push((terms, c.wrapping_add(i64::from(insn.off)), width, signed));
                let index = t.loads.len() - 1;
                write(&mut t, dst, &mut state, S::Elem(index, Vec::new()));
                pc = next;
            }
            class::JMP | class::JMP32 => {
                let target = pc as i64 + 1 + i64::from(insn.off);
                if insn.opc == op::JA {
                    pc = usize::try_from(target).ok()?;
                } else {
                    let (rel, signed) = relation(insn.opc & 0xf0)?;
                    let narrow = insn.class() == class::JMP32;
                    read(&mut t, dst);
                    let lhs = state[dst].clone();
                    let rhs = if insn.opc & source::MASK == source::X {
                        read(&mut t, src);
                        state[src].clone()
                    } else {
                        S::Aff(Vec::new(), i64::from(insn.imm))
                    };
                    let taken = usize::try_from(target).ok()?;
                    let stays = |s: usize| in_loop.get(s).copied().unwrap_or(false);
                    let (exit_rel, continue_at) = match (stays(taken), stays(next)) {
                        (true, false) => (rel.negated(), taken),
                        (false, true) => (rel, next),
                        _ => return None,
                    };
                    if t.exits.len() >= MAX_EXITS {
                        return None;
                    }
                    t.exits.push((lhs, rhs, exit_rel, signed, narrow));
                    pc = continue_at;
                }
            }
            _ => return None,
        }
        if pc == head {
            break;
        }
        if !in_loop.get(pc).copied().unwrap_or(false) {
            return None;
        }
    }
    t.end = state;
    Some(t)
}

/// The slots of the loop closed by the backward jump at `latch` to `top` that lie on a path
/// back to `head`, when control runs only inside `top..=latch` (calls and exits refused).
fn cycle(insns: &[Insn], top: usize, latch: usize, head: usize) -> Option<Vec<bool>> {
    let mut on = vec![false; insns.len() + 2];
    on[head] = true;
    let successors = |pc: usize| -> Option<[Option<usize>; 2]> {
        let insn = insns[pc];
        let target = usize::try_from(pc as i64 + 1 + i64::from(insn.off)).ok();
        Some(match insn.class() {
            class::JMP | class::JMP32 => match insn.opc & 0xf0 {
                jmp::CALL | jmp::EXIT => return None,
                jmp::JA if insn.class() == class::JMP => [target, None],
                jmp::JA => return None,
                _ => [target, Some(pc + 1)],
            },
            class::LD => [Some(pc + 2), None],
            _ => [Some(pc + 1), None],
        })
    };
    // Backwards, so that a slot's forward successors are decided before it: one pass settles
    // every path without a backward jump, and each further pass only follows inner loops.
    let mut changed = true;
    while changed {
        changed = false;
        for pc in (top..=latch).rev() {
            if on[pc] {
                continue;
            }
            let Some(next) = successors(pc) else { continue };
            if next
                .iter()
                .flatten()
                .any(|&s| (top..=latch).contains(&s) && on[s])
            {
                on[pc] = true;
                changed = true;
            }
        }
    }
    Some(on)
}

/// Finds the compare loops of a program, by head slot; `copies` are the program's copy loops
/// ([`super::find_copy_loops`]), which the bulk copy already takes.
pub(crate) fn find_compare_loops(insns: &[Insn], copies: &[super::CopyLoop]) -> Vec<CompareLoop> {
    // Jump sources per target, for finding where control enters a loop.
    let mut sources: Vec<Vec<usize>> = vec![Vec::new(); insns.len() + 1];
    for (pc, insn) in insns.iter().enumerate() {
        if matches!(insn.class(), class::JMP | class::JMP32)
            && !matches!(insn.opc & 0xf0, jmp::CALL | jmp::EXIT)
        {
            let off = if insn.opc == op::JA32 {
                i64::from(insn.imm)
            } else {
                i64::from(insn.off)
            };
            if let Ok(t) = usize::try_from(pc as i64 + 1 + off)
                && t <= insns.len()
            {
                sources[t].push(pc);
            }
        }
    }
    let falls_into = |pc: usize| -> bool {
        // Whether slot pc - 1 can fall through into pc.
        let Some(prev) = pc.checked_sub(1).and_then(|p| insns.get(p)) else {
            return false;
        };
        if pc >= 2 && insns[pc - 2].opc == op::LDDW {
            return true;
        }
        !(matches!(prev.class(), class::JMP | class::JMP32)
            && matches!(prev.opc & 0xf0, jmp::JA | jmp::EXIT))
    };
    // Loops the bulk copy already takes (a copy loop with only its counter exit).
    let copies: Vec<usize> = copies.iter().map(|c| c.head).collect();
    let mut found: Vec<CompareLoop> = Vec::new();
    for (latch, insn) in insns.iter().enumerate() {
        if !matches!(insn.class(), class::JMP | class::JMP32)
            || matches!(insn.opc & 0xf0, jmp::CALL | jmp::EXIT)
            || insn.opc == op::JA32
            || insn.off >= 0
        {
            continue;
        }
        let Ok(top) = usize::try_from(latch as i64 + 1 + i64::from(insn.off)) else {
            continue;
        };
        if latch - top > MAX_BODY {
            continue;
        }
        // The loop's only entry: a slot of top..=latch reached from outside.
        let region = top..=latch;
        let Some(around) = cycle(insns, top, latch, latch) else {
            continue;
        };
        let mut entries = Vec::new();
        for pc in (top..=latch).filter(|&pc| around[pc]) {
            let outside =
                sources[pc].iter().any(|s| !region.contains(s)) || (pc == top && falls_into(pc));
            if outside {
                entries.push(pc);
            }
        }
        let [head] = entries[..] else { continue };
        if copies.contains(&head) || found.iter().any(|l| l.head as usize == head) {
            continue;
        }
        if let Some(l) = recognise(insns, top, latch, head) {
            found.push(l);
        }
    }
    found.sort_by_key(|l| l.head);
    found
}

fn aff(terms: &[u8], c: i64) -> Aff {
    let mut t = [NO_REG; 8];
    t[..terms.len()].copy_from_slice(terms);
    Aff { terms: t, c }
}

fn to_val(s: &S) -> Option<Val> {
    let mut v = Val {
        head: [0; 8],
        aff: aff(&[], 0),
        ops: [0; MAX_OPS],
    };
    match s {
        S::Aff(terms, c) => v.aff = aff(terms, *c),
        S::Elem(load, ops) => {
            v.head[0] = 1;
            v.head[1] = u8::try_from(*load).ok()?;
            v.head[2] = ops.len() as u8;
            v.ops[..ops.len()].copy_from_slice(ops);
        }
        S::Fn(terms, c, ops) => {
            v.head[0] = 2;
            v.aff = aff(terms, *c);
            v.head[2] = ops.len() as u8;
            v.ops[..ops.len()].copy_from_slice(ops);
        }
        S::Unknown => return None,
    }
    Some(v)
}

fn recognise(insns: &[Insn], top: usize, latch: usize, head: usize) -> Option<CompareLoop> {
    let in_loop = cycle(insns, top, latch, head)?;
    let start: Vec<S> = (0..11u8).map(|r| S::Aff(vec![r], 0)).collect();
    let first = trace(insns, head, &in_loop, &start, &[])?;
    // Classify the registers.
    let mut steps = [0i64; 11];
    let mut invariant = [false; 11];
    for r in 0..11u8 {
        let i = usize::from(r);
        match &first.end[i] {
            S::Aff(terms, c) if terms == &[r] => {
                steps[i] = *c;
                invariant[i] = *c == 0;
            }
            _ => {}
        }
    }
    let stable = |terms: &[u8]| terms.iter().all(|&t| usize::from(t) < 11);
    let mut carried: Vec<(u8, usize, Vec<u64>)> = Vec::new();
    for r in 0..11u8 {
        let i = usize::from(r);
        if invariant[i] || steps[i] != 0 || first.first[i] != Some(true) {
            continue;
        }
        // Read before written, not an induction: the previous iteration's element.
        let S::Elem(load, ops) = &first.end[i] else {
            return None;
        };
        carried.push((r, *load, ops.clone()));
    }
    // Every address must move only with inductions and invariants.
    let moving_ok = |terms: &[u8]| {
        terms
            .iter()
            .all(|&t| invariant[usize::from(t)] || steps[usize::from(t)] != 0)
    };
    for (terms, ..) in &first.loads {
        if !moving_ok(terms) || !stable(terms) {
            return None;
        }
    }
    // Second pass: carried registers start as the previous iteration's element.
    let mut virtual_loads = Vec::new();
    let mut start2 = start.clone();
    for (r, load, ops) in &carried {
        let (terms, c, w, signed) = first.loads[*load].clone();
        let back: i64 = terms.iter().map(|&t| steps[usize::from(t)]).sum();
        virtual_loads.push((terms, c.wrapping_sub(back), w, signed));
        start2[usize::from(*r)] = S::Elem(virtual_loads.len() - 1, ops.clone());
    }
    let t = trace(insns, head, &in_loop, &start2, &virtual_loads)?;
    let nc = carried.len();
    // The carried registers end as the element the next iteration starts with.
    for (k, (r, load, ops)) in carried.iter().enumerate() {
        let S::Elem(l2, ops2) = &t.end[usize::from(*r)] else {
            return None;
        };
        if ops2 != ops || *l2 != load + nc || t.loads[*l2].0 != t.loads[k].0 {
            return None;
        }
    }
    if t.exits.is_empty() || t.loads.len() == nc {
        return None;
    }
    // A store copies a load of the same iteration, both moving one element per iteration
    // the same way, from a real (not carried) load.
    for (terms, _, w, load) in &t.stores {
        let step: i64 = terms.iter().map(|&r| steps[usize::from(r)]).sum();
        let (lterms, _, _, _) = &t.loads[*load];
        let lstep: i64 = lterms.iter().map(|&r| steps[usize::from(r)]).sum();
        if *load < nc
            || !moving_ok(terms)
            || !stable(terms)
            || step != lstep
            || step.unsigned_abs() != u64::from(*w)
        {
            return None;
        }
    }
    // Exits: affine sides move only with inductions; at least one exit reads an element.
    let mut exits = Vec::new();
    let mut reads_element = false;
    for (lhs, rhs, rel, signed, narrow) in &t.exits {
        for side in [lhs, rhs] {
            match side {
                S::Aff(terms, _) | S::Fn(terms, ..) if !moving_ok(terms) => return None,
                S::Elem(..) => reads_element = true,
                S::Unknown => return None,
                _ => {}
            }
        }
        exits.push(Exit {
            lhs: to_val(lhs)?,
            rhs: to_val(rhs)?,
            how: [
                rel_code(*rel),
                u8::from(*signed),
                u8::from(*narrow),
                0,
                0,
                0,
                0,
                0,
            ],
        });
    }
    if !reads_element && t.stores.is_empty() {
        return None;
    }
    // Registers set after a fast-forward: carried ones, then temporaries whose value the
    // exiting iteration might not recompute before leaving (or all expressible ones).
    let mut sets = Vec::new();
    for (k, (r, _, ops)) in carried.iter().enumerate() {
        let mut v = to_val(&S::Elem(k, ops.clone()))?;
        v.head[3] = *r;
        sets.push(v);
    }
    for r in 0..11u8 {
        let i = usize::from(r);
        if t.first[i] != Some(false) {
            continue;
        }
        match &t.end[i] {
            S::Aff(terms, _) | S::Fn(terms, ..) if moving_ok(terms) => {}
            S::Elem(..) => {}
            // Not expressible: the exiting iteration must recompute it before any exit.
            _ if t.early[i] => continue,
            _ => return None,
        }
        let mut v = to_val(&t.end[i])?;
        v.head[3] = r;
        sets.push(v);
    }
    if sets.len() > MAX_SETS {
        return None;
    }
    // Unused entries stay all zero (never read; the packed form skips zero words).
    let zero_aff = Aff {
        terms: [0; 8],
        c: 0,
    };
    let empty_val = Val {
        head: [0; 8],
        aff: zero_aff,
        ops: [0; MAX_OPS],
    };
    let mut l = CompareLoop {
        counts: [
            t.loads.len() as u8,
            exits.len() as u8,
            sets.len() as u8,
            nc as u8,
            t.stores.len() as u8,
            0,
            0,
            0,
        ],
        head: head as u64,
        steps,
        loads: [Load {
            addr: zero_aff,
            shape: [0; 8],
        }; MAX_LOADS],
        exits: [Exit {
            lhs: empty_val,
            rhs: empty_val,
            how: [0; 8],
        }; MAX_EXITS],
        sets: [empty_val; MAX_SETS],
        stores: [Store {
            addr: zero_aff,
            shape: [0; 8],
        }; MAX_STORES],
    };
    for (slot, (terms, c, w, load)) in l.stores.iter_mut().zip(&t.stores) {
        *slot = Store {
            addr: aff(terms, *c),
            shape: [*w, *load as u8, 0, 0, 0, 0, 0, 0],
        };
    }
    for (slot, (terms, c, w, signed)) in l.loads.iter_mut().zip(&t.loads) {
        *slot = Load {
            addr: aff(terms, *c),
            shape: [*w, u8::from(*signed), 0, 0, 0, 0, 0, 0],
        };
    }
    l.exits[..exits.len()].copy_from_slice(&exits);
    l.sets[..sets.len()].copy_from_slice(&sets);
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    #[test]
    fn first_fire_counts_to_the_bound() {
        assert_eq!(first_fire(0, 1, 10, REL_GE, false, false, 100), 10);
        assert_eq!(
            first_fire(10, (-1i64) as u64, 0, REL_EQ, false, false, 100),
            10
        );
        assert_eq!(first_fire(5, 1, 5, REL_NE, false, false, 100), 1);
        assert_eq!(first_fire(u64::MAX - 2, 1, 0, REL_EQ, false, false, 100), 3);
        // Wrapping before the bound: stop where it wraps.
        assert_eq!(first_fire(u64::MAX - 2, 1, 5, REL_GE, false, false, 100), 0);
        assert_eq!(first_fire(u64::MAX - 2, 1, 1, REL_EQ, false, false, 100), 3);
        assert_eq!(first_fire(0xffff_fffe, 1, 0, REL_EQ, false, true, 100), 2);
    }

    #[test]
    fn provenance_tracks_masks_shifts_and_extensions() {
        let byte = provenance(1, false, &[]);
        let and = pack_op(op::AND64_IMM, 0xff);
        assert_eq!(
            kept(&provenance(1, false, &[and]), 1, true),
            Some(byte_at(0))
        );
        assert_eq!(kept(&provenance(2, false, &[and]), 2, false), None);
        let l = pack_op(op::LSH64_IMM, 56);
        let r = pack_op(op::ARSH64_IMM, 56);
        assert_eq!(
            kept(&provenance(1, false, &[l, r]), 1, true),
            Some(byte_at(0))
        );
        assert_eq!(kept(&provenance(1, false, &[l]), 1, true), None);
        assert_eq!(
            kept(&provenance(1, false, &[l]), 1, false),
            Some(byte_at(56))
        );
        // `w0 = w1; w0 &= 0xff` of a zero-extended byte is the byte itself (clang's v4 code).
        let mov32 = pack_op(op::MOV32_REG, 0);
        let and32 = pack_op(op::AND32_IMM, 0xff);
        assert_eq!(provenance(1, false, &[mov32, and32]), byte);
        // `<<56 s>>56` of a zero-extended byte is the sign-extending load, and `(s8)` too.
        assert_eq!(provenance(1, false, &[l, r]), provenance(1, true, &[]));
        let sx8 = pack_op(op::MOV64_REG, 8);
        assert_eq!(provenance(1, false, &[sx8]), provenance(1, true, &[]));
        // On 32 bits a sign-extended byte and its `w` copy agree; on 64 they do not.
        let signed = provenance(1, true, &[]);
        let narrowed = provenance(1, true, &[mov32]);
        assert_eq!(signed[..32], narrowed[..32]);
        assert_ne!(signed, narrowed);
        // Every operation agrees with `apply` on every byte.
        let ops = [
            and,
            l,
            r,
            mov32,
            and32,
            sx8,
            pack_op(op::RSH64_IMM, 3),
            pack_op(op::LSH32_IMM, 4),
            pack_op(op::RSH32_IMM, 2),
            pack_op(op::ARSH32_IMM, 5),
            pack_op(op::MOV32_REG, 8),
            pack_op(op::MOV64_REG, 32),
        ];
        for &o in &ops {
            for signed in [false, true] {
                let bits = provenance(1, signed, &[l, o]);
                for x in 0..=255u64 {
                    let v = if signed { sign_extend(x, 8) } else { x };
                    let want = apply(o, apply(l, v));
                    let got = bits.iter().enumerate().fold(0u64, |acc, (k, &b)| {
                        acc | if b == BIT_ZERO { 0 } else { (x >> b & 1) << k }
                    });
                    assert_eq!(got, want, "op {o:x} signed {signed} x {x}");
                }
            }
        }
    }

    /// Positions of a byte's bits starting at `lo`.
    fn byte_at(lo: u8) -> [u8; 64] {
        let mut at = [0u8; 64];
        for (i, slot) in at.iter_mut().enumerate().take(8) {
            *slot = lo + i as u8;
        }
        at
    }

    #[test]
    fn rotated_strcmp_is_recognised() {
        // clang -O2's pointer strcmp: the next byte of `a` is loaded for the next iteration.
        let insns = assembled(
            "mov %r3, %r1\nldxb %r1, [%r1+0]\njeq %r1, 0, out\nloop:\nmov %r4, %r3\n\
             add %r4, %r2\nldxb %r5, [%r4+0]\nmov %r6, %r1\njne32 %r6, %r5, out\n\
             ldxb %r1, [%r3+1]\nadd %r3, 1\njne32 %r1, 0, loop\nout:\nmov %r0, %r1\nexit\n",
        );
        let loops = crate::exec::idiom::Idioms::of(&insns).compares;
        assert_eq!(loops.len(), 1);
        assert_eq!(loops[0].head, 3);
        assert_eq!(loops[0].counts[3], 1);
    }

    #[test]
    fn fast_forward_stops_before_the_exiting_iteration() {
        // strcmp, index form: r1 = a, r2 = b - a, r5 = i.
        let insns = assembled(
            "mov %r5, 0\nloop:\nmov %r3, %r1\nadd %r3, %r5\nldxb %r4, [%r3+0]\nadd %r3, %r2\n\
             ldxb %r6, [%r3+0]\njne %r4, %r6, out\njeq %r4, 0, out\nadd %r5, 1\nja loop\n\
             out:\nexit\n",
        );
        let loops = crate::exec::idiom::Idioms::of(&insns).compares;
        assert_eq!(loops.len(), 1);
        let l = &loops[0];
        let mut buf = vec![b'x'; 512];
        buf[100] = 0; // a's terminator at 100
        buf[256 + 100] = 0;
        buf[256 + 40] = b'y'; // but b differs at 40
        let start = buf.as_ptr() as u64;
        let bounds = Bounds {
            mem_start: start,
            mem_end: start + 512,
            stack_start: 0,
            stack_end: 0,
        };
        let mut reg = [0u64; 11];
        reg[1] = start;
        reg[2] = 256;
        // SAFETY: the bounds are `buf`, alive for the call.
        let forward = unsafe { l.fast_forward(&mut reg, &bounds) };
        assert_eq!(forward, Forward::Skipped(40));
        assert_eq!(reg[5], 40);
        buf[256 + 40] = b'x';
        let mut reg = [0u64; 11];
        reg[1] = start;
        reg[2] = 256;
        // SAFETY: as above.
        let forward = unsafe { l.fast_forward(&mut reg, &bounds) };
        assert_eq!(forward, Forward::Skipped(100));
        // From outside mem and the stack: never.
        let mut reg = [0u64; 11];
        reg[1] = 8;
        // SAFETY: nothing is read (the first access is in no region).
        let forward = unsafe { l.fast_forward(&mut reg, &bounds) };
        assert_eq!(forward, Forward::Uncovered);
    }

    #[test]
    fn a_copy_with_an_early_exit_copies_the_skipped_elements() {
        // strcpy: r1 = src, r2 = dst.
        let insns = assembled(
            "mov %r0, 0\nloop:\nldxb %r4, [%r1+0]\nstxb [%r2+0], %r4\njeq %r4, 0, out\n\
             add %r1, 1\nadd %r2, 1\nja loop\nout:\nexit\n",
        );
        let loops = crate::exec::idiom::Idioms::of(&insns).compares;
        assert_eq!(loops.len(), 1);
        assert!(loops[0].is_copy());
        let mut buf = vec![7u8; 256];
        buf[50] = 0;
        let start = buf.as_mut_ptr() as u64;
        let bounds = Bounds {
            mem_start: start,
            mem_end: start + 256,
            stack_start: 0,
            stack_end: 0,
        };
        let mut reg = [0u64; 11];
        reg[1] = start;
        reg[2] = start + 128;
        // SAFETY: the bounds are `buf`, alive for the call.
        let forward = unsafe { loops[0].fast_forward(&mut reg, &bounds) };
        assert_eq!(forward, Forward::Skipped(50));
        assert_eq!((reg[1] - start, reg[2] - start), (50, 178));
        assert!(buf[128..178].iter().all(|&b| b == 7));
        // Overlapping (dst one byte after src): an element copy smears, so never in bulk.
        let mut reg = [0u64; 11];
        reg[1] = start;
        reg[2] = start + 1;
        // SAFETY: as above.
        let forward = unsafe { loops[0].fast_forward(&mut reg, &bounds) };
        assert_eq!(forward, Forward::Uncovered);
    }

    #[test]
    fn mismatch_scans_find_the_first_differing_element_at_any_distance() {
        let len = 5000usize;
        let a: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        for w in [1u64, 2, 4, 8] {
            let n = len as u64 / w;
            for at in [
                0usize, 7, 31, 32, 1023, 1024, 1025, 2047, 2048, 4096, 4999, len,
            ] {
                let mut b = a.clone();
                if at < len {
                    b[at] ^= 0x40;
                }
                let want = (at as u64 / w).min(n);
                let (pa, pb) = (a.as_ptr() as u64, b.as_ptr() as u64);
                // SAFETY: both arrays hold `n * w <= len` bytes.
                let got = unsafe { mismatch_forward(pa, pb, n, w) };
                assert_eq!(got, want, "forward, width {w}, byte {at}");
                // Backward from the last element: the first difference seen from the top.
                let last = (n - 1) * w;
                let want_back = if at < (n * w) as usize {
                    (last / w) - at as u64 / w
                } else {
                    n
                };
                // SAFETY: as above, reading down from the last element.
                let got = unsafe { mismatch_backward(pa + last, pb + last, n, w) };
                assert_eq!(got, want_back, "backward, width {w}, byte {at}");
            }
        }
    }

    #[test]
    fn descriptions_round_trip_through_words() {
        let insns = assembled(
            "mov %r5, 0\nloop:\nldxb %r4, [%r1+0]\nldxb %r6, [%r2+0]\njne %r4, %r6, out\n\
             jeq %r4, 0, out\nadd %r1, 1\nadd %r2, 1\nja loop\nout:\nexit\n",
        );
        let loops = crate::exec::idiom::Idioms::of(&insns).compares;
        assert_eq!(loops.len(), 1);
        let words = loops[0].to_words();
        assert_eq!(words.len(), CompareLoop::WORDS);
        let back = CompareLoop::from_words(|i| words[i]);
        assert_eq!(back, loops[0]);
    }
}
