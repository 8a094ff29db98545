//! What each instruction group does, written once for both loops: the checked loop
//! (`super::run`, over raw slots) and the fast path (`super::fast::run`, over pre-decoded ops)
//! call these with the operation as a constant, so after inlining each match arm compiles to
//! just its own operation, as the hand-written arms did.
//!
//! Operation codes are the ISA's (`isa::alu`, `isa::jmp`); operands are the register values
//! or the sign-extended immediate (`imm as i64 as u64`), as the arms read them.

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::ExecError;
use crate::exec::memory::{load, store};
use crate::isa::{MAX_CALL_DEPTH, alu, atomic, jmp};

/// 64-bit ALU operation `op` (an `isa::alu` code other than `END`) of `a` (dst) and `b` (src
/// or immediate), with uBPF's results: wrapping arithmetic, shifts by `b mod 64`, unsigned
/// `x / 0 = 0` and `x % 0 = x`. Signed division is [`sdiv64`] and [`smod64`].
#[inline(always)]
pub(super) fn alu64(op: u8, a: u64, b: u64) -> u64 {
    match op {
        alu::ADD => a.wrapping_add(b),
        alu::SUB => a.wrapping_sub(b),
        alu::MUL => a.wrapping_mul(b),
        alu::DIV => a.checked_div(b).unwrap_or(0),
        alu::OR => a | b,
        alu::AND => a & b,
        alu::LSH => a.wrapping_shl(b as u32),
        alu::RSH => a.wrapping_shr(b as u32),
        alu::NEG => a.wrapping_neg(),
        alu::MOD => a.checked_rem(b).unwrap_or(a),
        alu::XOR => a ^ b,
        alu::MOV => b,
        alu::ARSH => (a as i64).wrapping_shr(b as u32) as u64,
        // END takes a width, not an operand: see `le`, `be` and `bswap`.
        _ => a,
    }
}

/// 32-bit ALU operation `op` on the low halves of `a` and `b` (shifts by `b mod 32`), its
/// result zero-extended, as [`alu64`] does on 64 bits. Signed division is [`sdiv32`] and
/// [`smod32`].
#[inline(always)]
pub(super) fn alu32(op: u8, a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32, b as u32);
    u64::from(match op {
        alu::ADD => a.wrapping_add(b),
        alu::SUB => a.wrapping_sub(b),
        alu::MUL => a.wrapping_mul(b),
        alu::DIV => a.checked_div(b).unwrap_or(0),
        alu::OR => a | b,
        alu::AND => a & b,
        alu::LSH => a.wrapping_shl(b),
        alu::RSH => a.wrapping_shr(b),
        alu::NEG => a.wrapping_neg(),
        alu::MOD => a.checked_rem(b).unwrap_or(a),
        alu::XOR => a ^ b,
        alu::MOV => b,
        alu::ARSH => (a as i32).wrapping_shr(b) as u32,
        _ => a,
    })
}

/// Signed 64-bit division with uBPF's edge cases (÷0 → 0, MIN ÷ -1 → MIN).
#[inline(always)]
pub(super) fn sdiv64(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i64, b as i64);
    if b == 0 { 0 } else { a.wrapping_div(b) as u64 }
}

/// Signed 64-bit remainder (÷0 → dividend, MIN % -1 → 0).
#[inline(always)]
pub(super) fn smod64(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i64, b as i64);
    if b == 0 {
        a as u64
    } else {
        a.wrapping_rem(b) as u64
    }
}

/// Signed 32-bit division, zero-extended.
#[inline(always)]
pub(super) fn sdiv32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    u64::from(if b == 0 { 0 } else { a.wrapping_div(b) as u32 })
}

/// Signed 32-bit remainder, zero-extended.
#[inline(always)]
pub(super) fn smod32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    u64::from(if b == 0 {
        a as u32
    } else {
        a.wrapping_rem(b) as u32
    })
}

/// `div` (offset 0) or `sdiv` (offset 1), 64-bit.
#[inline(always)]
pub(super) fn div64(off: i16, a: u64, b: u64) -> u64 {
    if off == 1 {
        sdiv64(a, b)
    } else {
        alu64(alu::DIV, a, b)
    }
}

/// `mod` (offset 0) or `smod` (offset 1), 64-bit.
#[inline(always)]
pub(super) fn mod64(off: i16, a: u64, b: u64) -> u64 {
    if off == 1 {
        smod64(a, b)
    } else {
        alu64(alu::MOD, a, b)
    }
}

/// `div32` (offset 0) or `sdiv32` (offset 1).
#[inline(always)]
pub(super) fn div32(off: i16, a: u64, b: u64) -> u64 {
    if off == 1 {
        sdiv32(a, b)
    } else {
        alu32(alu::DIV, a, b)
    }
}

/// `mod32` (offset 0) or `smod32` (offset 1).
#[inline(always)]
pub(super) fn mod32(off: i16, a: u64, b: u64) -> u64 {
    if off == 1 {
        smod32(a, b)
    } else {
        alu32(alu::MOD, a, b)
    }
}

/// The low `bits` (8, 16 or 32) of `v`, sign-extended to 64 bits; any other `bits` leaves `v`
/// as it is. `movsx` (whose offset is `bits`, 0 for a plain `mov`) and the sign-extending
/// loads use it.
#[inline(always)]
pub(super) fn sign_extend(v: u64, bits: i16) -> u64 {
    match bits {
        8 => v as i8 as i64 as u64,
        16 => v as i16 as i64 as u64,
        32 => v as i32 as i64 as u64,
        _ => v,
    }
}

/// `le16`/`le32`/`le64` (`width` in the immediate): truncation on a little-endian host.
#[inline(always)]
pub(super) fn le(v: u64, width: i32) -> u64 {
    match width {
        16 => v & 0xffff,
        32 => v & 0xffff_ffff,
        _ => v,
    }
}

/// `be16`/`be32`/`be64`: the low `width` bits in big-endian order, the rest zeroed.
#[inline(always)]
pub(super) fn be(v: u64, width: i32) -> u64 {
    match width {
        16 => u64::from((v as u16).to_be()),
        32 => u64::from((v as u32).to_be()),
        _ => v.to_be(),
    }
}

/// `bswap16`/`bswap32`/`bswap64`: the low `width` bits byte-swapped, the rest zeroed.
#[inline(always)]
pub(super) fn bswap(v: u64, width: i32) -> u64 {
    match width {
        16 => u64::from((v as u16).swap_bytes()),
        32 => u64::from((v as u32).swap_bytes()),
        _ => v.swap_bytes(),
    }
}

/// Whether the 64-bit conditional jump `op` (an `isa::jmp` code from `JEQ` to `JSLE`) is
/// taken for `a` (dst) and `b` (src or the sign-extended immediate). `JA`, `CALL` and `EXIT`
/// are not conditions: `false`.
#[inline(always)]
pub(super) fn cond(op: u8, a: u64, b: u64) -> bool {
    match op {
        jmp::JEQ => a == b,
        jmp::JGT => a > b,
        jmp::JGE => a >= b,
        jmp::JSET => a & b != 0,
        jmp::JNE => a != b,
        jmp::JSGT => (a as i64) > b as i64,
        jmp::JSGE => (a as i64) >= b as i64,
        jmp::JLT => a < b,
        jmp::JLE => a <= b,
        jmp::JSLT => (a as i64) < b as i64,
        jmp::JSLE => (a as i64) <= b as i64,
        _ => false,
    }
}

/// [`cond`] for the 32-bit jumps: compares the low halves, extended so that the 64-bit
/// comparison orders them as `u32` (zero-extended) or `i32` (sign-extended, for the signed
/// conditions) would.
#[inline(always)]
pub(super) fn cond32(op: u8, a: u64, b: u64) -> bool {
    let signed = matches!(op, jmp::JSGT | jmp::JSGE | jmp::JSLT | jmp::JSLE);
    let low = |v: u64| {
        if signed {
            v as i32 as i64 as u64
        } else {
            u64::from(v as u32)
        }
    };
    cond(op, low(a), low(b))
}

/// Loads `size` bytes at `addr`, sign-extending them when `signed` (`ldxs*`), zero-extending
/// otherwise.
///
/// # Safety
/// `addr` must be readable for `size` bytes (it passed the run's bounds check, or the host
/// turned bounds checks off).
#[inline(always)]
pub(super) unsafe fn load_extend(addr: u64, size: usize, signed: bool) -> u64 {
    // SAFETY: the caller's contract.
    let value = unsafe { load(addr, size) };
    if signed {
        sign_extend(value, (size * 8) as i16)
    } else {
        value
    }
}

/// The operation bits of an atomic's immediate without `FETCH`: `xchg`.
const XCHG: i32 = atomic::XCHG & !atomic::FETCH;
/// The operation bits of an atomic's immediate without `FETCH`: `cmpxchg`.
const CMPXCHG: i32 = atomic::CMPXCHG & !atomic::FETCH;

/// Performs the atomic operation `imm` on the `size`-byte word at `addr` with `operand` (the
/// source register) and `expected` (r0, for cmpxchg); returns the old value.
///
/// Aligned words use host atomics (sequentially consistent); a misaligned word cannot be
/// accessed atomically on the host, so it falls back to a plain read-modify-write.
///
/// # Safety
/// `addr` must be readable and writable for `size` bytes, and any concurrent access to it
/// must be atomic too.
pub(super) unsafe fn atomic_rmw(
    addr: u64,
    size: usize,
    imm: i32,
    operand: u64,
    expected: u64,
) -> u64 {
    let operation = imm & 0xf0;
    let combine = |old: u64| -> u64 {
        match operation {
            atomic::ADD => old.wrapping_add(operand),
            atomic::OR => old | operand,
            atomic::AND => old & operand,
            atomic::XOR => old ^ operand,
            XCHG => operand,
            // cmpxchg
            _ => {
                if old == expected {
                    operand
                } else {
                    old
                }
            }
        }
    };
    const SC: Ordering = Ordering::SeqCst;
    if size == 8 {
        if addr.is_multiple_of(8) {
            // SAFETY: aligned, valid for 8 bytes (caller's contract), only accessed atomically
            // while shared.
            let a = unsafe { AtomicU64::from_ptr(addr as *mut u64) };
            match operation {
                atomic::ADD => a.fetch_add(operand, SC),
                atomic::OR => a.fetch_or(operand, SC),
                atomic::AND => a.fetch_and(operand, SC),
                atomic::XOR => a.fetch_xor(operand, SC),
                XCHG => a.swap(operand, SC),
                _ => match a.compare_exchange(expected, operand, SC, SC) {
                    Ok(old) | Err(old) => old,
                },
            }
        } else {
            // SAFETY: caller's contract.
            let old = unsafe { load(addr, 8) };
            // SAFETY: caller's contract.
            unsafe { store(addr, 8, combine(old)) };
            old
        }
    } else {
        let operand32 = operand as u32;
        let expected32 = expected as u32;
        if addr.is_multiple_of(4) {
            // SAFETY: aligned, valid for 4 bytes (caller's contract).
            let a = unsafe { AtomicU32::from_ptr(addr as *mut u32) };
            u64::from(match operation {
                atomic::ADD => a.fetch_add(operand32, SC),
                atomic::OR => a.fetch_or(operand32, SC),
                atomic::AND => a.fetch_and(operand32, SC),
                atomic::XOR => a.fetch_xor(operand32, SC),
                XCHG => a.swap(operand32, SC),
                _ => match a.compare_exchange(expected32, operand32, SC, SC) {
                    Ok(old) | Err(old) => old,
                },
            })
        } else {
            // SAFETY: caller's contract.
            let old = unsafe { load(addr, 4) };
            let new = match operation {
                CMPXCHG if old as u32 != expected32 => old,
                CMPXCHG => u64::from(operand32),
                _ => combine(old),
            };
            // SAFETY: caller's contract.
            unsafe { store(addr, 4, new) };
            old
        }
    }
}

/// Which register an atomic with immediate `imm` writes the old value to: r0 for `cmpxchg`,
/// the source register `src` for the other fetching forms, none otherwise.
#[inline(always)]
pub(super) fn atomic_fetch_reg(imm: i32, src: u8) -> Option<u8> {
    if imm & 0xf0 == CMPXCHG {
        Some(0)
    } else if imm & atomic::FETCH != 0 {
        Some(src)
    } else {
        None
    }
}

/// A local-call frame: where to return and what to restore.
#[derive(Clone, Copy)]
pub(super) struct Frame {
    /// Slot to continue at after the callee's `exit`.
    pub(super) return_pc: usize,
    /// The caller's r6..r9.
    saved: [u64; 4],
    /// Bytes r10 was lowered by (the caller's stack usage).
    stack_usage: u16,
    /// The caller's initialised-register bits for r6..r9 (undefined-behaviour check).
    pub(super) saved_mask: u16,
}

/// The local calls of one run: a fixed array of [`MAX_CALL_DEPTH`] frames (nothing
/// allocates) and the stack usage of the running function, by which r10 moves on a call.
pub(super) struct CallStack {
    /// Only frames below `depth` are ever read, and each is written before `depth` covers it.
    frames: [MaybeUninit<Frame>; MAX_CALL_DEPTH],
    /// Number of active local calls.
    depth: usize,
    /// Stack bytes the running function reserves below r10.
    stack_usage: u16,
}

impl CallStack {
    /// No calls yet; the main function reserves `stack_usage` bytes.
    #[inline(always)]
    pub(super) fn new(stack_usage: u16) -> Self {
        CallStack {
            frames: [const { MaybeUninit::uninit() }; MAX_CALL_DEPTH],
            depth: 0,
            stack_usage,
        }
    }

    /// `call local` at `pc`: saves r6..r9 (and `saved_mask`, the undefined-behaviour check's
    /// bits for them) and the return slot `pc + 1`, lowers r10 by the caller's stack usage,
    /// and makes `callee_usage` the running function's. Beyond [`MAX_CALL_DEPTH`] calls
    /// the run fails with `CallDepthExceeded` at `pc`.
    #[inline(always)]
    pub(super) fn call(
        &mut self,
        reg: &mut [u64; 16],
        pc: usize,
        callee_usage: u16,
        saved_mask: u16,
    ) -> Result<(), ExecError> {
        let Some(slot) = self.frames.get_mut(self.depth) else {
            return Err(ExecError::CallDepthExceeded {
                pc,
                depth: self.depth + 1,
                max: MAX_CALL_DEPTH,
            });
        };
        slot.write(Frame {
            return_pc: pc + 1,
            saved: [reg[6], reg[7], reg[8], reg[9]],
            stack_usage: self.stack_usage,
            saved_mask,
        });
        self.depth += 1;
        reg[10] = reg[10].wrapping_sub(u64::from(self.stack_usage));
        self.stack_usage = callee_usage;
        Ok(())
    }

    /// `exit`: `None` in the main function (the program ends with r0); otherwise returns
    /// from the innermost call, restoring r6..r9, r10 and the caller's stack usage, and gives
    /// its frame (where to continue).
    #[inline(always)]
    pub(super) fn exit(&mut self, reg: &mut [u64; 16]) -> Option<Frame> {
        self.depth = self.depth.checked_sub(1)?;
        // SAFETY: frame `depth` was written by the call that raised `depth` above it.
        let frame = unsafe { self.frames[self.depth].assume_init() };
        [reg[6], reg[7], reg[8], reg[9]] = frame.saved;
        reg[10] = reg[10].wrapping_add(u64::from(frame.stack_usage));
        self.stack_usage = frame.stack_usage;
        Some(frame)
    }
}
