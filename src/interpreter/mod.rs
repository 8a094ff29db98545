//! The interpreter: runs a verified [`Program`] with uBPF's semantics (`docs/semantics.md`).
//!
//! The loop matches on the opcode byte of the already decoded [`Insn`] slots over a 16-slot
//! register file (uBPF's layout; r11–r15 are never named by verified code). Nothing allocates
//! per step; local-call frames live in a fixed array of `MAX_CALL_DEPTH` entries. The
//! instruction limit, debug callback and undefined-behaviour check are compiled into a second
//! instance of the loop (`CHECKED = true`), so the common path pays nothing for them.
//!
//! Execution takes `&Vm` and never mutates it: several threads may run the same VM at once.

use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Access, ExecError};
use crate::exec::memory::{MemRegion, Regions};
use crate::exec::packet::{self, PacketLoad};
use crate::isa::{Insn, MAX_CALL_DEPTH, STACK_SIZE, atomic};
use crate::program::Program;
use crate::vm::{DebugState, ExecutionProfile, Vm};

mod fast;
mod safe;

pub(crate) use fast::Decoded;

pub use safe::{
    INPUT_REGION_ID, MAX_SAFE_REGIONS, PERM_ATOMIC, PERM_READ, PERM_WRITE, STACK_REGION_ID,
    SafeHelperResult, SafeRegion, SafeRegionKind, SafeRegistry,
};
use safe::{SafeAccess, SafeState};

/// The registers the undefined-behaviour check starts with as initialised: r1, r2 and r10.
const INITIAL_REGISTER_MASK: u16 = (1 << 1) | (1 << 2) | (1 << 10);

/// The stack `Vm::execute` provides: 16-byte aligned like a C `uint64_t` array on the native
/// stack, so aligned eBPF stack slots are aligned host words (real atomics, no split accesses).
#[repr(C, align(16))]
struct AlignedStack([u8; STACK_SIZE]);

/// A local-call frame: where to return and what to restore.
#[derive(Clone, Copy)]
struct Frame {
    /// Slot to continue at after the callee's `exit`.
    return_pc: usize,
    /// The caller's r6..r9.
    saved: [u64; 4],
    /// Bytes r10 was lowered by (the caller's stack usage).
    stack_usage: u16,
    /// The caller's initialised-register bits for r6..r9 (undefined-behaviour check).
    saved_mask: u16,
}

/// Shadow state of the undefined-behaviour check (`docs/semantics.md`, "Undefined-behaviour check").
struct Shadow {
    /// Bit n set: register n has been written.
    registers: u16,
    /// One bit per stack byte, bit 0 = lowest address.
    stack: Vec<u8>,
}

impl Shadow {
    fn new(stack_len: usize) -> Self {
        Shadow {
            registers: INITIAL_REGISTER_MASK,
            stack: vec![0; stack_len.div_ceil(8)],
        }
    }

    fn is_set(&self, reg: u8) -> bool {
        self.registers & (1 << (reg & 0x0f)) != 0
    }

    fn set(&mut self, reg: u8, initialised: bool) {
        let bit = 1u16 << (reg & 0x0f);
        if initialised {
            self.registers |= bit;
        } else {
            self.registers &= !bit;
        }
    }

    /// Marks stack bytes `[offset, offset + size)` as written.
    fn mark_stack(&mut self, offset: usize, size: usize) {
        for byte in offset..offset + size {
            if let Some(b) = self.stack.get_mut(byte / 8) {
                *b |= 1 << (byte % 8);
            }
        }
    }

    /// Whether every stack byte of `[offset, offset + size)` has been written.
    fn stack_written(&self, offset: usize, size: usize) -> bool {
        (offset..offset + size).all(|byte| {
            self.stack
                .get(byte / 8)
                .is_some_and(|b| b & (1 << (byte % 8)) != 0)
        })
    }
}

/// The register-use rules of the undefined-behaviour check, run before `insn` executes.
fn check_registers(shadow: &Shadow, insn: &Insn, pc: usize) -> Result<(), ExecError> {
    let need = |reg: u8, role: &'static str| {
        if shadow.is_set(reg) {
            Ok(())
        } else {
            Err(ExecError::UninitializedRegister { pc, role, reg })
        }
    };
    let class = insn.opc & 0x07;
    match class {
        // ldind*: the offset register.
        0x00 if insn.opc & 0xe0 == crate::isa::mode::IND => need(insn.src, "Source"),
        // ldx: the base register.
        0x01 => need(insn.src, "Source"),
        // st: the base register.
        0x02 => need(insn.dst, "Destination"),
        // stx and atomics: value and base (r10 as base is always fine).
        0x03 => {
            need(insn.src, "Source")?;
            if insn.dst != 10 {
                need(insn.dst, "Destination")?;
            }
            Ok(())
        }
        0x05 | 0x06 => {
            let op = insn.opc & 0xf0;
            if insn.opc == 0x95 {
                return need(0, "Return value");
            }
            if insn.opc == 0x8d {
                // callx reads the helper index from dst.
                return need(insn.dst, "Destination");
            }
            let conditional = op != 0x00 && op != 0x80 && op != 0x90;
            if conditional && insn.off != 0 {
                need(insn.dst, "Destination")?;
                if insn.opc & 0x08 != 0 {
                    need(insn.src, "Source")?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Applies the undefined-behaviour check's state changes of ALU instructions (loads, stores,
/// calls and exit are handled where they execute).
fn shadow_alu(shadow: &mut Shadow, insn: &Insn) {
    let class = insn.opc & 0x07;
    if class != 0x04 && class != 0x07 {
        if insn.opc == 0x18 {
            shadow.set(insn.dst, true);
        }
        if insn.is_packet_load() {
            // r0 is written (a load that ends the program writes it too).
            shadow.set(0, true);
        }
        return;
    }
    match insn.opc & 0xf0 {
        // neg and the byte swaps leave the state as it is.
        0x80 | 0xd0 => {}
        _ if insn.opc & 0x08 != 0 => {
            let state = shadow.is_set(insn.src);
            shadow.set(insn.dst, state);
        }
        _ => shadow.set(insn.dst, true),
    }
}

/// Loads `SIZE` bytes at `addr` zero-extended.
///
/// # Safety
/// `addr` must be readable for `size` bytes (ensured by the bounds check when it is on; with
/// it off the embedder has accepted raw host accesses, as in uBPF).
#[inline(always)]
unsafe fn load(addr: u64, size: usize) -> u64 {
    let p = addr as *const u8;
    // SAFETY: forwarded to the caller's contract; unaligned reads are allowed.
    unsafe {
        match size {
            1 => u64::from(p.read()),
            2 => u64::from(p.cast::<u16>().read_unaligned()),
            4 => u64::from(p.cast::<u32>().read_unaligned()),
            _ => p.cast::<u64>().read_unaligned(),
        }
    }
}

/// Stores the low `size` bytes of `value` at `addr`.
///
/// # Safety
/// `addr` must be writable for `size` bytes (see [`load`]).
#[inline(always)]
unsafe fn store(addr: u64, size: usize, value: u64) {
    let p = addr as *mut u8;
    // SAFETY: forwarded to the caller's contract; unaligned writes are allowed.
    unsafe {
        match size {
            1 => p.write(value as u8),
            2 => p.cast::<u16>().write_unaligned(value as u16),
            4 => p.cast::<u32>().write_unaligned(value as u32),
            _ => p.cast::<u64>().write_unaligned(value),
        }
    }
}

/// Performs the atomic operation `imm` on the `size`-byte word at `addr` with `operand` (the
/// source register) and `expected` (r0, for cmpxchg); returns the old value.
///
/// Aligned words use host atomics (sequentially consistent); a misaligned word cannot be
/// accessed atomically on the host, so it falls back to a plain read-modify-write.
///
/// # Safety
/// `addr` must be readable and writable for `size` bytes, and any concurrent access to it
/// must be atomic too.
unsafe fn atomic_rmw(addr: u64, size: usize, imm: i32, operand: u64, expected: u64) -> u64 {
    let operation = imm & 0xf0;
    let combine = |old: u64| -> u64 {
        match operation {
            atomic::ADD => old.wrapping_add(operand),
            atomic::OR => old | operand,
            atomic::AND => old & operand,
            atomic::XOR => old ^ operand,
            0xe0 => operand,
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
                0xe0 => a.swap(operand, SC),
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
                0xe0 => a.swap(operand32, SC),
                _ => match a.compare_exchange(expected32, operand32, SC, SC) {
                    Ok(old) | Err(old) => old,
                },
            })
        } else {
            // SAFETY: caller's contract.
            let old = unsafe { load(addr, 4) };
            let new = match operation {
                0xf0 if old as u32 != expected32 => old,
                0xf0 => u64::from(operand32),
                _ => combine(old),
            };
            // SAFETY: caller's contract.
            unsafe { store(addr, 4, new) };
            old
        }
    }
}

/// The per-execution environment of the loop.
struct Env<'a> {
    vm: &'a Vm,
    program: &'a Program,
    regions: Regions<'a>,
    mem: *mut u8,
    stack: *mut u8,
    stack_len: usize,
}

/// One helper call as both interpreter loops make it: publishes the run to the kernel
/// helpers when the VM registered them (`docs/maps.md`), then calls helper `index` through the
/// dispatcher, the Rust or the C helper; none there is `NonexistentFunction` at `pc`.
#[inline(always)]
fn call_helper(
    env: &Env<'_>,
    index: u64,
    args: [u64; 5],
    mem_len: usize,
    pc: usize,
) -> Result<u64, ExecError> {
    #[cfg(feature = "std")]
    if env.vm.maps.publish_runs {
        crate::kernel::helpers::publish(env.vm, &env.regions);
    }
    // SAFETY: helpers are foreign functions trusted by whoever registered them.
    let result = unsafe {
        env.vm
            .helpers()
            .call(index, args, env.mem.cast::<c_void>(), mem_len)
    };
    result.ok_or(ExecError::NonexistentFunction { pc, index })
}

/// Signed 64-bit division with uBPF's edge cases (÷0 → 0, MIN ÷ -1 → MIN).
#[inline(always)]
fn sdiv64(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i64, b as i64);
    if b == 0 { 0 } else { a.wrapping_div(b) as u64 }
}

/// Signed 64-bit remainder (÷0 → dividend, MIN % -1 → 0).
#[inline(always)]
fn smod64(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i64, b as i64);
    if b == 0 {
        a as u64
    } else {
        a.wrapping_rem(b) as u64
    }
}

/// Signed 32-bit division, zero-extended.
#[inline(always)]
fn sdiv32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    u64::from(if b == 0 { 0 } else { a.wrapping_div(b) as u32 })
}

/// Signed 32-bit remainder, zero-extended.
#[inline(always)]
fn smod32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    u64::from(if b == 0 {
        a as u32
    } else {
        a.wrapping_rem(b) as u32
    })
}

impl Vm {
    /// Runs the loaded program with the interpreter over `mem`, on a stack of `STACK_SIZE`
    /// (4096) bytes, and returns r0.
    ///
    /// r1 holds the address of `mem` (null when it is empty), r2 its length and r10 the top of
    /// the stack. Failures are also reported through the VM's error printer (except uBPF's
    /// silent ones).
    ///
    /// A program never sees bytes it did not write: every stack byte it can reach reads 0
    /// until written (docs/sandbox.md, "Stack").
    pub fn execute(&self, mem: &mut [u8]) -> Result<u64, ExecError> {
        self.execute_with_regions(mem, &[])
    }

    /// [`Vm::execute`] with extra regions the program may also access during this run (see
    /// [`MemRegion`]): rbpf's mbuff modes give the packet data this way.
    pub fn execute_with_regions(
        &self,
        mem: &mut [u8],
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        let mem_len = mem.len();
        let mem_ptr = if mem.is_empty() {
            core::ptr::null_mut()
        } else {
            mem.as_mut_ptr()
        };
        // SAFETY: `mem` is a valid, exclusively borrowed buffer of its length.
        unsafe { self.execute_on_own_stack_with_regions(mem_ptr, mem_len, extra) }
    }

    /// [`Vm::execute`] over a raw `mem` (uBPF's `ubpf_exec`; `mem` may be null).
    ///
    /// Each thread reuses one stack buffer (zeroed when the thread first runs a program);
    /// before each run the part of it the program can reach ([`Program::stack_reach`], all
    /// of it while a debug callback, which sees the whole stack, is set) is cleared, so a run
    /// never reads what an earlier one left. A nested execution on the same thread (from
    /// inside a helper) gets a fresh zeroed stack, and so does every run without `std` (no
    /// thread-locals).
    ///
    /// # Safety
    /// `mem` is null or valid for reads and writes of `mem_len` bytes for the whole call.
    pub unsafe fn execute_on_own_stack(
        &self,
        mem: *mut u8,
        mem_len: usize,
    ) -> Result<u64, ExecError> {
        // SAFETY: forwarded to the caller's contract.
        unsafe { self.execute_on_own_stack_with_regions(mem, mem_len, &[]) }
    }

    /// [`Vm::execute_on_own_stack`] with the run's extra regions.
    ///
    /// # Safety
    /// As for [`Vm::execute_on_own_stack`].
    unsafe fn execute_on_own_stack_with_regions(
        &self,
        mem: *mut u8,
        mem_len: usize,
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        #[cfg(not(feature = "std"))]
        // SAFETY: forwarded to the caller's contract.
        return unsafe { self.execute_on_fresh_stack(mem, mem_len, extra) };
        #[cfg(feature = "std")]
        {
            thread_local! {
                static STACK: std::cell::RefCell<AlignedStack> =
                    const { std::cell::RefCell::new(AlignedStack([0; STACK_SIZE])) };
            }
            let clear = match &self.program {
                Some(_) if self.debug_fn.is_some() => STACK_SIZE,
                Some(program) => program.stack_reach.min(STACK_SIZE),
                None => 0,
            };
            STACK.with(|cell| match cell.try_borrow_mut() {
                Ok(mut stack) => {
                    stack.0[STACK_SIZE - clear..].fill(0);
                    // SAFETY: the caller vouches for `mem`; the thread's stack buffer is
                    // exclusively borrowed for the whole call.
                    unsafe {
                        self.execute_raw_with_regions(
                            mem,
                            mem_len,
                            stack.0.as_mut_ptr(),
                            STACK_SIZE,
                            extra,
                        )
                    }
                }
                // SAFETY: as above.
                Err(_) => unsafe { self.execute_on_fresh_stack(mem, mem_len, extra) },
            })
        }
    }

    /// `execute` for a nested run on a thread whose stack buffer is in use: a zeroed local
    /// stack. Kept out of line so the common path does not reserve (and probe) a second 4 KiB.
    ///
    /// # Safety
    /// `mem` is null or valid for `mem_len` bytes for the whole call.
    #[cold]
    #[inline(never)]
    unsafe fn execute_on_fresh_stack(
        &self,
        mem: *mut u8,
        mem_len: usize,
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        let mut stack = AlignedStack([0; STACK_SIZE]);
        // SAFETY: the caller vouches for `mem`; the stack is local to this call.
        unsafe {
            self.execute_raw_with_regions(mem, mem_len, stack.0.as_mut_ptr(), STACK_SIZE, extra)
        }
    }

    /// Runs the loaded program over caller-provided memory and stack (uBPF's `ubpf_exec_ex`).
    /// The stack is used as given (not cleared).
    ///
    /// `mem` may be null. A buffer whose end would pass the end of the address space is
    /// refused with [`ExecError::InvalidBuffer`], and a run beyond the nesting limit with
    /// [`ExecError::NestingTooDeep`] (docs/sandbox.md). Errors are reported through
    /// [`Vm::report`] and returned.
    ///
    /// # Safety
    /// When not null, `mem` must be valid for reads and writes of `mem_len` bytes, and `stack`
    /// must be valid for `stack_len` bytes, for the whole call. With bounds checking off, the
    /// program may access any address it computes, exactly as in uBPF.
    pub unsafe fn execute_raw(
        &self,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
    ) -> Result<u64, ExecError> {
        // SAFETY: forwarded to the caller's contract.
        unsafe { self.execute_raw_with_regions(mem, mem_len, stack, stack_len, &[]) }
    }

    /// [`Vm::execute_raw`] with the run's extra regions.
    ///
    /// # Safety
    /// As [`Vm::execute_raw`].
    pub unsafe fn execute_raw_with_regions(
        &self,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        let Some(program) = self.program.as_ref() else {
            return Err(ExecError::NotLoaded);
        };
        // A run that may call helpers is a level of `crate::exec::reentry` (nesting limit, code in
        // use), entered first, as compiled code does.
        let level = if program.calls_helpers {
            let Some(level) =
                crate::exec::reentry::RunLevel::enter(core::ptr::from_ref(self) as usize)
            else {
                let err = ExecError::NestingTooDeep {
                    max: crate::isa::MAX_NESTED_RUNS,
                };
                self.report(&err);
                return Err(err);
            };
            Some(level)
        } else {
            None
        };
        if let Err(err) = crate::exec::memory::check_buffers(mem, mem_len, stack, stack_len) {
            drop(level);
            self.report(&err);
            return Err(err);
        }
        let env = Env {
            vm: self,
            program,
            regions: Regions::new(self, program, mem, mem_len, stack, stack_len).with_extra(extra),
            mem,
            stack,
            stack_len,
        };
        let checked = self.config.instruction_limit != 0
            || self.debug_fn.is_some()
            || self.config.undefined_behavior_check;
        // SAFETY: forwarded to the caller's contract.
        let result = unsafe {
            if self.config.profile == ExecutionProfile::Safe {
                let mut tags = SafeState::new(
                    &self.safe,
                    mem as u64,
                    mem_len as u64,
                    env.regions.stack_start,
                    stack_len as u64,
                );
                run::<true, _>(&env, mem_len, &mut tags)
            } else if checked {
                run::<true, _>(&env, mem_len, &mut NoTracking)
            } else {
                fast::run(&env, &self.decoded, mem_len)
            }
        };
        drop(level);
        if let Err(err) = &result {
            self.report(err);
        }
        result
    }
}

/// Hooks through which the safe profile tracks provenance. The legacy profile uses
/// [`NoTracking`], whose hooks compile to nothing (and whose accesses are the legacy bounds
/// checks), so the common loop carries no safe-profile state.
trait Tracker {
    /// Tag effects of an ALU instruction or `lddw`, before it executes.
    fn before_alu(&mut self, insn: &Insn, reg: &[u64; 16], pc: usize) -> Result<(), ExecError>;
    /// Checks a memory access through `base_reg` (holding `base`) and returns its address.
    #[expect(
        clippy::too_many_arguments,
        reason = "one hook replaces the legacy check, which needs the whole access"
    )]
    fn access(
        &self,
        regions: &Regions<'_>,
        base_reg: u8,
        base: u64,
        off: i16,
        size: usize,
        kind: SafeAccess,
        pc: usize,
    ) -> Result<u64, ExecError>;
    /// A load into `dst` completed.
    fn after_load(&mut self, dst: u8, addr: u64, size: usize);
    /// A store (of register `src`, if any) is about to be made.
    fn after_store(&mut self, addr: u64, size: usize, src: Option<u8>);
    /// `reg` now holds a number.
    fn set_scalar(&mut self, reg: u8);
    /// A local call starts.
    fn enter_call(&mut self);
    /// A local call returned.
    fn leave_call(&mut self);
    /// A helper is about to be called.
    fn before_helper(&self, index: u64, pc: usize) -> Result<Option<SafeHelperResult>, ExecError>;
    /// A helper returned `value`.
    fn after_helper(
        &mut self,
        index: u64,
        metadata: Option<SafeHelperResult>,
        value: u64,
        pc: usize,
    ) -> Result<(), ExecError>;
}

/// The legacy profile: no provenance, accesses checked by [`Regions::check`].
struct NoTracking;

impl Tracker for NoTracking {
    #[inline(always)]
    fn before_alu(&mut self, _: &Insn, _: &[u64; 16], _: usize) -> Result<(), ExecError> {
        Ok(())
    }
    #[inline(always)]
    fn access(
        &self,
        regions: &Regions<'_>,
        _: u8,
        base: u64,
        off: i16,
        size: usize,
        kind: SafeAccess,
        pc: usize,
    ) -> Result<u64, ExecError> {
        let access = if kind == SafeAccess::Load {
            Access::Load
        } else {
            Access::Store
        };
        regions.check(base, off, size, access, pc)
    }
    #[inline(always)]
    fn after_load(&mut self, _: u8, _: u64, _: usize) {}
    #[inline(always)]
    fn after_store(&mut self, _: u64, _: usize, _: Option<u8>) {}
    #[inline(always)]
    fn set_scalar(&mut self, _: u8) {}
    #[inline(always)]
    fn enter_call(&mut self) {}
    #[inline(always)]
    fn leave_call(&mut self) {}
    #[inline(always)]
    fn before_helper(&self, _: u64, _: usize) -> Result<Option<SafeHelperResult>, ExecError> {
        Ok(None)
    }
    #[inline(always)]
    fn after_helper(
        &mut self,
        _: u64,
        _: Option<SafeHelperResult>,
        _: u64,
        _: usize,
    ) -> Result<(), ExecError> {
        Ok(())
    }
}

impl Tracker for SafeState<'_> {
    fn before_alu(&mut self, insn: &Insn, reg: &[u64; 16], pc: usize) -> Result<(), ExecError> {
        SafeState::before_alu(self, insn, reg, pc)
    }
    fn access(
        &self,
        _: &Regions<'_>,
        base_reg: u8,
        base: u64,
        off: i16,
        size: usize,
        kind: SafeAccess,
        pc: usize,
    ) -> Result<u64, ExecError> {
        self.check_access(base_reg, base, off, size, kind, pc)
    }
    fn after_load(&mut self, dst: u8, addr: u64, size: usize) {
        SafeState::after_load(self, dst, addr, size);
    }
    fn after_store(&mut self, addr: u64, size: usize, src: Option<u8>) {
        SafeState::after_store(self, addr, size, src);
    }
    fn set_scalar(&mut self, reg: u8) {
        SafeState::set_scalar(self, reg);
    }
    fn enter_call(&mut self) {
        SafeState::enter_call(self);
    }
    fn leave_call(&mut self) {
        SafeState::leave_call(self);
    }
    fn before_helper(&self, index: u64, pc: usize) -> Result<Option<SafeHelperResult>, ExecError> {
        SafeState::before_helper(self, index, pc).map(Some)
    }
    fn after_helper(
        &mut self,
        index: u64,
        metadata: Option<SafeHelperResult>,
        value: u64,
        pc: usize,
    ) -> Result<(), ExecError> {
        match metadata {
            Some(metadata) => SafeState::after_helper(self, index, metadata, value, pc),
            None => Ok(()),
        }
    }
}

/// The interpreter loop. `CHECKED` enables the instruction limit, debug callback and
/// undefined-behaviour check; `tracker` is the safe profile's provenance tracking (or
/// [`NoTracking`]).
///
/// # Safety
/// See [`Vm::execute_raw`].
unsafe fn run<const CHECKED: bool, T: Tracker>(
    env: &Env<'_>,
    mem_len: usize,
    tracker: &mut T,
) -> Result<u64, ExecError> {
    let vm = env.vm;
    let insns: &[Insn] = &env.program.insns;
    let regions = env.regions;
    let unwind_index = vm.config.unwind_index.map(u64::from);

    let mut reg = [0u64; 16];
    reg[1] = env.mem as u64;
    reg[2] = mem_len as u64;
    reg[10] = regions.stack_end;

    // Only frames below `depth` are ever read, and each is written before `depth` covers it.
    let mut frames = [const { core::mem::MaybeUninit::<Frame>::uninit() }; MAX_CALL_DEPTH];
    let mut depth = 0usize;
    let mut stack_usage = env.program.functions.first().map_or(0, |f| f.stack_usage);

    // Checked-mode state. uBPF keeps the limit in an `int`: limits above i32::MAX are
    // negative and fail at once.
    let limit = vm.config.instruction_limit as i32;
    let mut remaining = limit;
    let mut shadow = if CHECKED && vm.config.undefined_behavior_check {
        Some(Shadow::new(env.stack_len))
    } else {
        None
    };

    let mut pc = 0usize;

    macro_rules! dst {
        ($insn:expr) => {
            reg[usize::from($insn.dst & 0x0f)]
        };
    }
    macro_rules! src {
        ($insn:expr) => {
            reg[usize::from($insn.src & 0x0f)]
        };
    }
    macro_rules! imm64 {
        ($insn:expr) => {
            $insn.imm as i64 as u64
        };
    }
    macro_rules! alu32 {
        ($insn:expr, $v:expr) => {
            dst!($insn) = u64::from($v as u32)
        };
    }
    macro_rules! jump_if {
        ($insn:expr, $cond:expr) => {
            if $cond {
                pc = pc.wrapping_add_signed(isize::from($insn.off));
            }
        };
    }

    loop {
        let Some(&insn) = insns.get(pc) else {
            return Err(ExecError::FellOffEnd { pc });
        };

        if CHECKED {
            if limit != 0 {
                if remaining <= 0 {
                    return Err(ExecError::InstructionLimit { pc });
                }
                remaining -= 1;
            }
            if let Some(shadow) = &shadow {
                check_registers(shadow, &insn, pc)?;
            }
            if let Some(debug) = &vm.debug_fn {
                // SAFETY: the stack is valid for `stack_len` bytes (caller's contract) and is
                // not written while this shared view exists.
                let stack = unsafe { core::slice::from_raw_parts(env.stack, env.stack_len) };
                let state = DebugState {
                    pc,
                    registers: &reg,
                    stack,
                    register_mask: shadow
                        .as_ref()
                        .map_or(u64::from(INITIAL_REGISTER_MASK), |s| u64::from(s.registers)),
                    stack_mask: shadow.as_ref().map(|s| s.stack.as_slice()),
                };
                debug(&state);
            }
            if let Some(shadow) = &mut shadow {
                shadow_alu(shadow, &insn);
            }
        }
        tracker.before_alu(&insn, &reg, pc)?;

        pc += 1;

        match insn.opc {
            // ALU64, immediate / register operand.
            0x07 => dst!(insn) = dst!(insn).wrapping_add(imm64!(insn)),
            0x0f => dst!(insn) = dst!(insn).wrapping_add(src!(insn)),
            0x17 => dst!(insn) = dst!(insn).wrapping_sub(imm64!(insn)),
            0x1f => dst!(insn) = dst!(insn).wrapping_sub(src!(insn)),
            0x27 => dst!(insn) = dst!(insn).wrapping_mul(imm64!(insn)),
            0x2f => dst!(insn) = dst!(insn).wrapping_mul(src!(insn)),
            0x37 | 0x3f => {
                let divisor = if insn.opc == 0x37 {
                    imm64!(insn)
                } else {
                    src!(insn)
                };
                let d = dst!(insn);
                dst!(insn) = if insn.off == 1 {
                    sdiv64(d, divisor)
                } else {
                    d.checked_div(divisor).unwrap_or(0)
                };
            }
            0x47 => dst!(insn) |= imm64!(insn),
            0x4f => dst!(insn) |= src!(insn),
            0x57 => dst!(insn) &= imm64!(insn),
            0x5f => dst!(insn) &= src!(insn),
            0x67 => dst!(insn) = dst!(insn).wrapping_shl(insn.imm as u32),
            0x6f => dst!(insn) = dst!(insn).wrapping_shl(src!(insn) as u32),
            0x77 => dst!(insn) = dst!(insn).wrapping_shr(insn.imm as u32),
            0x7f => dst!(insn) = dst!(insn).wrapping_shr(src!(insn) as u32),
            0x87 => dst!(insn) = dst!(insn).wrapping_neg(),
            0x97 | 0x9f => {
                let divisor = if insn.opc == 0x97 {
                    imm64!(insn)
                } else {
                    src!(insn)
                };
                let d = dst!(insn);
                dst!(insn) = if insn.off == 1 {
                    smod64(d, divisor)
                } else {
                    d.checked_rem(divisor).unwrap_or(d)
                };
            }
            0xa7 => dst!(insn) ^= imm64!(insn),
            0xaf => dst!(insn) ^= src!(insn),
            0xb7 => dst!(insn) = imm64!(insn),
            0xbf => {
                let s = src!(insn);
                dst!(insn) = match insn.off {
                    8 => s as i8 as i64 as u64,
                    16 => s as i16 as i64 as u64,
                    32 => s as i32 as i64 as u64,
                    _ => s,
                };
            }
            0xc7 => dst!(insn) = (dst!(insn) as i64).wrapping_shr(insn.imm as u32) as u64,
            0xcf => dst!(insn) = (dst!(insn) as i64).wrapping_shr(src!(insn) as u32) as u64,
            0xd7 => {
                let d = dst!(insn);
                dst!(insn) = match insn.imm {
                    16 => u64::from((d as u16).swap_bytes()),
                    32 => u64::from((d as u32).swap_bytes()),
                    _ => d.swap_bytes(),
                };
            }

            // ALU32: operate on the low 32 bits, zero-extend the result.
            0x04 => alu32!(insn, (dst!(insn) as u32).wrapping_add(insn.imm as u32)),
            0x0c => alu32!(insn, (dst!(insn) as u32).wrapping_add(src!(insn) as u32)),
            0x14 => alu32!(insn, (dst!(insn) as u32).wrapping_sub(insn.imm as u32)),
            0x1c => alu32!(insn, (dst!(insn) as u32).wrapping_sub(src!(insn) as u32)),
            0x24 => alu32!(insn, (dst!(insn) as u32).wrapping_mul(insn.imm as u32)),
            0x2c => alu32!(insn, (dst!(insn) as u32).wrapping_mul(src!(insn) as u32)),
            0x34 | 0x3c => {
                let divisor = if insn.opc == 0x34 {
                    imm64!(insn)
                } else {
                    src!(insn)
                };
                let d = dst!(insn);
                dst!(insn) = if insn.off == 1 {
                    sdiv32(d, divisor)
                } else {
                    u64::from((d as u32).checked_div(divisor as u32).unwrap_or(0))
                };
            }
            0x44 => alu32!(insn, (dst!(insn) as u32) | insn.imm as u32),
            0x4c => alu32!(insn, (dst!(insn) as u32) | src!(insn) as u32),
            0x54 => alu32!(insn, (dst!(insn) as u32) & insn.imm as u32),
            0x5c => alu32!(insn, (dst!(insn) as u32) & src!(insn) as u32),
            0x64 => alu32!(insn, (dst!(insn) as u32).wrapping_shl(insn.imm as u32)),
            0x6c => alu32!(insn, (dst!(insn) as u32).wrapping_shl(src!(insn) as u32)),
            0x74 => alu32!(insn, (dst!(insn) as u32).wrapping_shr(insn.imm as u32)),
            0x7c => alu32!(insn, (dst!(insn) as u32).wrapping_shr(src!(insn) as u32)),
            0x84 => alu32!(insn, (dst!(insn) as u32).wrapping_neg()),
            0x94 | 0x9c => {
                let divisor = if insn.opc == 0x94 {
                    imm64!(insn)
                } else {
                    src!(insn)
                };
                let d = dst!(insn);
                dst!(insn) = if insn.off == 1 {
                    smod32(d, divisor)
                } else {
                    let d = d as u32;
                    u64::from(d.checked_rem(divisor as u32).unwrap_or(d))
                };
            }
            0xa4 => alu32!(insn, (dst!(insn) as u32) ^ insn.imm as u32),
            0xac => alu32!(insn, (dst!(insn) as u32) ^ src!(insn) as u32),
            0xb4 => alu32!(insn, insn.imm as u32),
            0xbc => {
                let s = src!(insn);
                alu32!(
                    insn,
                    match insn.off {
                        8 => s as i8 as i32 as u32,
                        16 => s as i16 as i32 as u32,
                        _ => s as u32,
                    }
                );
            }
            0xc4 => alu32!(insn, (dst!(insn) as i32).wrapping_shr(insn.imm as u32)),
            0xcc => alu32!(insn, (dst!(insn) as i32).wrapping_shr(src!(insn) as u32)),
            // le: truncate on a little-endian host.
            0xd4 => {
                let d = dst!(insn);
                dst!(insn) = match insn.imm {
                    16 => d & 0xffff,
                    32 => d & 0xffff_ffff,
                    _ => d,
                };
            }
            // be: swap the low 16/32/64 bits, zero the rest.
            0xdc => {
                let d = dst!(insn);
                dst!(insn) = match insn.imm {
                    16 => u64::from((d as u16).to_be()),
                    32 => u64::from((d as u32).to_be()),
                    _ => d.to_be(),
                };
            }

            // lddw: one executed instruction covering two slots.
            0x18 => {
                let high = insns.get(pc).map_or(0, |next| next.imm as u32);
                dst!(insn) = u64::from(insn.imm as u32) | (u64::from(high) << 32);
                pc += 1;
            }

            // Loads.
            0x61 | 0x69 | 0x71 | 0x79 | 0x81 | 0x89 | 0x91 => {
                let size = crate::isa::size::bytes(insn.opc);
                let base = src!(insn);
                let addr = tracker.access(
                    &regions,
                    insn.src,
                    base,
                    insn.off,
                    size,
                    SafeAccess::Load,
                    pc - 1,
                )?;
                // SAFETY: checked above (or bounds checking is off, uBPF's raw mode).
                let value = unsafe { load(addr, size) };
                dst!(insn) = match insn.opc {
                    0x81 => value as u32 as i32 as i64 as u64,
                    0x89 => value as u16 as i16 as i64 as u64,
                    0x91 => value as u8 as i8 as i64 as u64,
                    _ => value,
                };
                tracker.after_load(insn.dst, addr, size);
                if CHECKED && let Some(shadow) = &mut shadow {
                    let written = !regions.in_stack(addr, size)
                        || shadow.stack_written((addr - regions.stack_start) as usize, size);
                    shadow.set(insn.dst, written);
                }
            }

            // Legacy packet loads: r0 = packet bytes at imm (or src + imm); outside the
            // packet the program ends with 0 (kernel flavour, `crate::exec::packet`).
            0x20 | 0x28 | 0x30 | 0x38 | 0x40 | 0x48 | 0x50 | 0x58 => {
                let flavour = vm.config.packet_loads;
                // SAFETY: `regions` are this run's (the caller's contract covers mem and the
                // extra regions; raw mode is the embedder's choice).
                let loaded = unsafe {
                    packet::load(&regions, flavour, insn.opc, insn.imm, src!(insn), pc - 1)?
                };
                match loaded {
                    PacketLoad::Value(v) => {
                        reg[0] = v;
                        tracker.set_scalar(0);
                    }
                    PacketLoad::Abort => return Ok(0),
                }
            }

            // Stores of an immediate / a register.
            0x62 | 0x6a | 0x72 | 0x7a | 0x63 | 0x6b | 0x73 | 0x7b => {
                let size = crate::isa::size::bytes(insn.opc);
                let base = dst!(insn);
                let addr = tracker.access(
                    &regions,
                    insn.dst,
                    base,
                    insn.off,
                    size,
                    SafeAccess::Store,
                    pc - 1,
                )?;
                let is_stx = insn.opc & 0x07 == 0x03;
                tracker.after_store(addr, size, is_stx.then_some(insn.src));
                let value = if !is_stx { imm64!(insn) } else { src!(insn) };
                // SAFETY: checked above (or bounds checking is off, uBPF's raw mode).
                unsafe { store(addr, size, value) };
                if CHECKED
                    && let Some(shadow) = &mut shadow
                    && regions.in_stack(addr, size)
                {
                    shadow.mark_stack((addr - regions.stack_start) as usize, size);
                }
            }

            // Atomics.
            0xdb | 0xc3 => {
                let size = if insn.opc == 0xdb { 8 } else { 4 };
                let base = dst!(insn);
                let addr = tracker.access(
                    &regions,
                    insn.dst,
                    base,
                    insn.off,
                    size,
                    SafeAccess::Atomic,
                    pc - 1,
                )?;
                tracker.after_store(addr, size, None);
                if insn.imm & 0xf0 == atomic::CMPXCHG & 0xf0 {
                    tracker.set_scalar(0);
                } else if insn.imm & atomic::FETCH != 0 {
                    tracker.set_scalar(insn.src);
                }
                let operand = src!(insn);
                // SAFETY: checked above; eBPF memory is only accessed atomically by atomics.
                let old = unsafe { atomic_rmw(addr, size, insn.imm, operand, reg[0]) };
                if insn.imm & 0xf0 == atomic::CMPXCHG & 0xf0 {
                    reg[0] = old;
                } else if insn.imm & atomic::FETCH != 0 {
                    src!(insn) = old;
                }
                if CHECKED
                    && let Some(shadow) = &mut shadow
                    && regions.in_stack(addr, size)
                {
                    shadow.mark_stack((addr - regions.stack_start) as usize, size);
                }
            }

            // Jumps.
            0x05 => pc = pc.wrapping_add_signed(isize::from(insn.off)),
            0x06 => pc = pc.wrapping_add_signed(insn.imm as isize),
            0x15 => jump_if!(insn, dst!(insn) == imm64!(insn)),
            0x1d => jump_if!(insn, dst!(insn) == src!(insn)),
            0x25 => jump_if!(insn, dst!(insn) > imm64!(insn)),
            0x2d => jump_if!(insn, dst!(insn) > src!(insn)),
            0x35 => jump_if!(insn, dst!(insn) >= imm64!(insn)),
            0x3d => jump_if!(insn, dst!(insn) >= src!(insn)),
            0x45 => jump_if!(insn, dst!(insn) & imm64!(insn) != 0),
            0x4d => jump_if!(insn, dst!(insn) & src!(insn) != 0),
            0x55 => jump_if!(insn, dst!(insn) != imm64!(insn)),
            0x5d => jump_if!(insn, dst!(insn) != src!(insn)),
            0x65 => jump_if!(insn, (dst!(insn) as i64) > insn.imm as i64),
            0x6d => jump_if!(insn, (dst!(insn) as i64) > src!(insn) as i64),
            0x75 => jump_if!(insn, (dst!(insn) as i64) >= insn.imm as i64),
            0x7d => jump_if!(insn, (dst!(insn) as i64) >= src!(insn) as i64),
            0xa5 => jump_if!(insn, dst!(insn) < imm64!(insn)),
            0xad => jump_if!(insn, dst!(insn) < src!(insn)),
            0xb5 => jump_if!(insn, dst!(insn) <= imm64!(insn)),
            0xbd => jump_if!(insn, dst!(insn) <= src!(insn)),
            0xc5 => jump_if!(insn, (dst!(insn) as i64) < insn.imm as i64),
            0xcd => jump_if!(insn, (dst!(insn) as i64) < src!(insn) as i64),
            0xd5 => jump_if!(insn, (dst!(insn) as i64) <= insn.imm as i64),
            0xdd => jump_if!(insn, (dst!(insn) as i64) <= src!(insn) as i64),

            // 32-bit jumps: compare the low 32 bits.
            0x16 => jump_if!(insn, dst!(insn) as u32 == insn.imm as u32),
            0x1e => jump_if!(insn, dst!(insn) as u32 == src!(insn) as u32),
            0x26 => jump_if!(insn, dst!(insn) as u32 > insn.imm as u32),
            0x2e => jump_if!(insn, dst!(insn) as u32 > src!(insn) as u32),
            0x36 => jump_if!(insn, dst!(insn) as u32 >= insn.imm as u32),
            0x3e => jump_if!(insn, dst!(insn) as u32 >= src!(insn) as u32),
            0x46 => jump_if!(insn, dst!(insn) as u32 & insn.imm as u32 != 0),
            0x4e => jump_if!(insn, dst!(insn) as u32 & src!(insn) as u32 != 0),
            0x56 => jump_if!(insn, dst!(insn) as u32 != insn.imm as u32),
            0x5e => jump_if!(insn, dst!(insn) as u32 != src!(insn) as u32),
            0x66 => jump_if!(insn, (dst!(insn) as i32) > insn.imm),
            0x6e => jump_if!(insn, (dst!(insn) as i32) > src!(insn) as i32),
            0x76 => jump_if!(insn, (dst!(insn) as i32) >= insn.imm),
            0x7e => jump_if!(insn, (dst!(insn) as i32) >= src!(insn) as i32),
            0xa6 => jump_if!(insn, (dst!(insn) as u32) < insn.imm as u32),
            0xae => jump_if!(insn, (dst!(insn) as u32) < src!(insn) as u32),
            0xb6 => jump_if!(insn, dst!(insn) as u32 <= insn.imm as u32),
            0xbe => jump_if!(insn, dst!(insn) as u32 <= src!(insn) as u32),
            0xc6 => jump_if!(insn, (dst!(insn) as i32) < insn.imm),
            0xce => jump_if!(insn, (dst!(insn) as i32) < src!(insn) as i32),
            0xd6 => jump_if!(insn, (dst!(insn) as i32) <= insn.imm),
            0xde => jump_if!(insn, (dst!(insn) as i32) <= src!(insn) as i32),

            // Calls.
            0x85 if insn.src == 1 => {
                if depth >= MAX_CALL_DEPTH {
                    return Err(ExecError::CallDepthExceeded {
                        pc: pc - 1,
                        depth: depth + 1,
                        max: MAX_CALL_DEPTH,
                    });
                }
                let target = pc.wrapping_add_signed(insn.imm as isize);
                frames[depth].write(Frame {
                    return_pc: pc,
                    saved: [reg[6], reg[7], reg[8], reg[9]],
                    stack_usage,
                    saved_mask: shadow.as_ref().map_or(0, |s| s.registers & 0x3c0),
                });
                depth += 1;
                tracker.enter_call();
                reg[10] = reg[10].wrapping_sub(u64::from(stack_usage));
                stack_usage = env
                    .program
                    .function_at(target)
                    .map_or(crate::isa::LOCAL_FUNCTION_STACK_SIZE, |f| f.stack_usage);
                pc = target;
            }
            0x85 | 0x8d => {
                let index = if insn.opc == 0x85 {
                    u64::from(insn.imm as u32)
                } else {
                    dst!(insn)
                };
                let metadata = tracker.before_helper(index, pc - 1)?;
                let args = [reg[1], reg[2], reg[3], reg[4], reg[5]];
                let value = call_helper(env, index, args, mem_len, pc - 1)?;
                reg[0] = value;
                tracker.after_helper(index, metadata, value, pc - 1)?;
                if CHECKED && let Some(shadow) = &mut shadow {
                    shadow.set(0, true);
                    shadow.registers &= !0x3e;
                }
                if unwind_index == Some(index) && value == 0 {
                    return Ok(0);
                }
            }
            0x95 => {
                if CHECKED && let Some(shadow) = &mut shadow {
                    shadow.registers &= !0x3e;
                }
                if depth == 0 {
                    return Ok(reg[0]);
                }
                depth -= 1;
                tracker.leave_call();
                // SAFETY: frame `depth` was written by the call that raised `depth` above it.
                let frame = unsafe { frames[depth].assume_init() };
                [reg[6], reg[7], reg[8], reg[9]] = frame.saved;
                reg[10] = reg[10].wrapping_add(u64::from(frame.stack_usage));
                stack_usage = frame.stack_usage;
                if CHECKED && let Some(shadow) = &mut shadow {
                    shadow.registers = (shadow.registers & !0x3c0) | frame.saved_mask;
                }
                pc = frame.return_pc;
            }

            // Validation rejects every other opcode; report it rather than trust that.
            opcode => return Err(ExecError::UnknownOpcode { pc: pc - 1, opcode }),
        }
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use crate::test_prelude::*;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::isa::encode_slots;

    fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn::new(opc, dst, src, off, imm)
    }
    fn mov(dst: u8, imm: i32) -> Insn {
        ins(0xb7, dst, 0, 0, imm)
    }
    fn movr(dst: u8, src: u8) -> Insn {
        ins(0xbf, dst, src, 0, 0)
    }
    fn lddw(dst: u8, value: u64) -> [Insn; 2] {
        [
            ins(0x18, dst, 0, 0, value as u32 as i32),
            ins(0, 0, 0, 0, (value >> 32) as u32 as i32),
        ]
    }
    fn exit() -> Insn {
        ins(0x95, 0, 0, 0, 0)
    }

    /// A VM with the conformance helpers whose printed errors are collected in the returned
    /// buffer.
    fn vm_with_log() -> (Vm, Arc<Mutex<Vec<String>>>) {
        let mut vm = Vm::new();
        crate::tools::conformance::register_helpers(&mut vm);
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        vm.set_error_printer(Some(Box::new(move |msg| {
            sink.lock().expect("log lock").push(msg.to_owned());
        })));
        (vm, log)
    }

    fn run(insns: &[Insn], mem: &mut [u8]) -> Result<u64, ExecError> {
        let (mut vm, _) = vm_with_log();
        vm.load(&encode_slots(insns)).expect("program loads");
        vm.execute(mem)
    }

    fn r0(insns: &[Insn]) -> u64 {
        run(insns, &mut []).expect("program runs")
    }

    #[test]
    fn entry_registers() {
        let mut mem = [0u8; 13];
        assert_eq!(run(&[movr(0, 2), exit()], &mut mem), Ok(13));
        let addr = mem.as_ptr() as u64;
        assert_eq!(run(&[movr(0, 1), exit()], &mut mem), Ok(addr));
        // Without memory r1 is null and r2 is 0.
        assert_eq!(r0(&[movr(0, 1), ins(0x0f, 0, 2, 0, 0), exit()]), 0);
    }

    #[test]
    fn nested_execution_from_a_helper_gets_its_own_stack() {
        static INNER: std::sync::OnceLock<Vm> = std::sync::OnceLock::new();
        unsafe extern "C" fn nested(_: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
            let inner = INNER.get().expect("inner VM set");
            inner.execute(&mut []).unwrap_or(u64::MAX)
        }
        let mut inner = Vm::new();
        // Clobbers the top of its stack and returns 40.
        inner
            .load(&encode_slots(&[
                ins(0x72, 10, 0, -1, 0x7f),
                mov(0, 40),
                exit(),
            ]))
            .expect("inner loads");
        let _ = INNER.set(inner);
        let mut outer = Vm::new();
        outer
            .register_helper(9, Some("nested"), nested)
            .expect("index");
        outer
            .load(&encode_slots(&[
                ins(0x72, 10, 0, -1, 2),
                ins(0x85, 0, 0, 0, 9),
                ins(0x71, 1, 10, -1, 0),
                ins(0x0f, 0, 1, 0, 0),
                exit(),
            ]))
            .expect("outer loads");
        assert_eq!(outer.execute(&mut []), Ok(42));
    }

    #[test]
    fn execute_gives_an_aligned_stack() {
        assert_eq!(r0(&[movr(0, 10), ins(0x57, 0, 0, 0, 15), exit()]), 0);
    }

    #[test]
    fn division_edge_cases() {
        // div/mod by zero (64 and 32 bit, imm and reg).
        assert_eq!(r0(&[mov(0, 7), ins(0x37, 0, 0, 0, 0), exit()]), 0);
        assert_eq!(
            r0(&[mov(0, 7), mov(1, 0), ins(0x9f, 0, 1, 0, 0), exit()]),
            7
        );
        assert_eq!(
            r0(&[
                lddw(0, 0x1_0000_0007)[0],
                lddw(0, 0x1_0000_0007)[1],
                ins(0x94, 0, 0, 0, 0),
                exit()
            ]),
            7
        );
        // Signed division: INT_MIN / -1 and INT_MIN % -1.
        let min = lddw(0, i64::MIN as u64);
        assert_eq!(
            r0(&[min[0], min[1], ins(0x37, 0, 0, 1, -1), exit()]),
            i64::MIN as u64
        );
        assert_eq!(r0(&[min[0], min[1], ins(0x97, 0, 0, 1, -1), exit()]), 0);
        assert_eq!(
            r0(&[mov(0, i32::MIN), ins(0x34, 0, 0, 1, -1), exit()]),
            u64::from(i32::MIN as u32)
        );
        // C truncating remainder keeps the dividend's sign.
        assert_eq!(
            r0(&[mov(0, -7), ins(0x97, 0, 0, 1, 2), exit()]),
            (-1i64) as u64
        );
        assert_eq!(
            r0(&[mov(0, -7), ins(0x94, 0, 0, 1, 2), exit()]),
            0xffff_ffff
        );
        // 64-bit unsigned divisor from a negative imm is sign-extended.
        assert_eq!(r0(&[mov(0, -1), ins(0x37, 0, 0, 0, -1), exit()]), 1);
    }

    #[test]
    fn shifts_moves_and_byte_swaps() {
        // arsh32-high-shift: r0 = 8, r1 = 0x100000001, arsh32 r0, r1 → 4.
        let r1 = lddw(1, 0x1_0000_0001);
        assert_eq!(
            r0(&[mov(0, 8), r1[0], r1[1], ins(0xcc, 0, 1, 0, 0), exit()]),
            4
        );
        assert_eq!(r0(&[mov(0, 1), ins(0x67, 0, 0, 0, 65), exit()]), 2);
        // 32-bit results are zero-extended.
        assert_eq!(r0(&[mov(0, -1), ins(0x04, 0, 0, 0, 1), exit()]), 0);
        assert_eq!(r0(&[mov(0, 1), ins(0x84, 0, 0, 0, 0), exit()]), 0xffff_ffff);
        // movsx.
        assert_eq!(
            r0(&[mov(1, 0x80), ins(0xbf, 0, 1, 8, 0), exit()]),
            (-128i64) as u64
        );
        assert_eq!(
            r0(&[mov(1, 0x8000), ins(0xbc, 0, 1, 16, 0), exit()]),
            0xffff_8000
        );
        // le truncates, be and bswap swap.
        let v = lddw(0, 0x1122_3344_5566_7788);
        assert_eq!(r0(&[v[0], v[1], ins(0xd4, 0, 0, 0, 16), exit()]), 0x7788);
        assert_eq!(
            r0(&[v[0], v[1], ins(0xdc, 0, 0, 0, 32), exit()]),
            0x8877_6655
        );
        assert_eq!(
            r0(&[v[0], v[1], ins(0xd7, 0, 0, 0, 64), exit()]),
            0x8877_6655_4433_2211
        );
    }

    #[test]
    fn jumps_compare_sign_extended_imm_and_low_words() {
        // jgt r0(=u64::MAX), -2 (imm sign-extended) is taken.
        assert_eq!(
            r0(&[
                mov(0, -1),
                ins(0x25, 0, 0, 1, -2),
                exit(),
                mov(0, 5),
                exit()
            ]),
            5
        );
        // jeq32 looks only at the low 32 bits.
        let v = lddw(1, 0xdead_0000_0001);
        assert_eq!(
            r0(&[
                mov(0, 0),
                v[0],
                v[1],
                ins(0x16, 1, 0, 1, 1),
                exit(),
                mov(0, 9),
                exit()
            ]),
            9
        );
        // ja32 uses the immediate.
        assert_eq!(
            r0(&[mov(0, 1), ins(0x06, 0, 0, 0, 1), exit(), mov(0, 2), exit()]),
            2
        );
    }

    #[test]
    fn runtime_memory_errors_are_reported() {
        let (mut vm, log) = vm_with_log();
        // err-stack-oob: stb [r10], 0
        vm.load(&encode_slots(&[ins(0x72, 10, 0, 0, 0), exit()]))
            .expect("loads");
        let err = vm.execute(&mut []).unwrap_err();
        assert!(matches!(
            err,
            ExecError::OutOfBounds {
                pc: 0,
                size: 1,
                stack_len: 4096,
                ..
            }
        ));
        let printed = log.lock().expect("log").clone();
        assert_eq!(printed.len(), 1);
        assert!(printed[0].starts_with("uBPF error: out of bounds memory store at PC 0, addr 0x"));
        assert!(printed[0].contains("\nmem (nil)/0 stack 0x"));

        // err-address-overflow-offset: r6 = -16; stb [r6+16], 0
        assert_eq!(
            run(&[mov(6, -16), ins(0x72, 6, 0, 16, 0), exit()], &mut []),
            Err(ExecError::AddressOverflow {
                pc: 1,
                access: Access::Store
            })
        );
        // err-address-underflow: r6 = 0; ldxb r0, [r6-1]
        assert_eq!(
            run(&[mov(6, 0), ins(0x71, 0, 6, -1, 0), exit()], &mut []),
            Err(ExecError::AddressUnderflow {
                pc: 1,
                access: Access::Load
            })
        );
        // err-integer-overflow-bounds: r6 = 0 - 1; stb [r6], 0
        let err = run(
            &[
                mov(6, 0),
                ins(0x17, 6, 0, 0, 1),
                ins(0x72, 6, 0, 0, 0),
                exit(),
            ],
            &mut [],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "uBPF error: integer overflow in store at PC 2, addr 0xffffffffffffffff, size 1"
        );
    }

    #[test]
    fn bounds_check_off_allows_host_memory() {
        let mut vm = Vm::new();
        vm.config_mut().bounds_check = false;
        let cell = Box::new(0x1234_5678u64);
        let v = lddw(1, &*cell as *const u64 as u64);
        vm.load(&encode_slots(&[v[0], v[1], ins(0x79, 0, 1, 0, 0), exit()]))
            .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(0x1234_5678));
    }

    #[test]
    fn instruction_limit_counts_exactly() {
        let (mut vm, log) = vm_with_log();
        vm.load(&encode_slots(&[mov(0, 1), mov(0, 2), exit()]))
            .expect("loads");
        vm.config_mut().instruction_limit = 3;
        assert_eq!(vm.execute(&mut []), Ok(2));
        vm.config_mut().instruction_limit = 2;
        assert_eq!(
            vm.execute(&mut []),
            Err(ExecError::InstructionLimit { pc: 2 })
        );
        assert_eq!(
            log.lock().expect("log").as_slice(),
            ["Error: Instruction limit exceeded."]
        );
        // lddw is one instruction.
        let v = lddw(0, 5);
        vm.unload().unwrap();
        vm.load(&encode_slots(&[v[0], v[1], exit()]))
            .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(5));
        vm.config_mut().instruction_limit = 1;
        assert_eq!(
            vm.execute(&mut []),
            Err(ExecError::InstructionLimit { pc: 2 })
        );
        // Limits above i32::MAX are negative in uBPF and fail at once.
        vm.config_mut().instruction_limit = u32::MAX;
        assert_eq!(
            vm.execute(&mut []),
            Err(ExecError::InstructionLimit { pc: 0 })
        );
    }

    #[test]
    fn local_calls_frames_and_depth() {
        // main writes [r10-4..-1] = 0x55, calls f, returns f's r0; f reads r10 and returns the
        // distance to main's r10 via r6 (preserved across the call).
        let prog = [
            ins(0x72, 10, 0, -1, 0x55),
            movr(6, 10),
            ins(0x85, 0, 1, 0, 3),
            ins(0x1f, 6, 0, 0, 0), // r6 -= r0 (callee's r10)
            movr(0, 6),
            exit(),
            movr(0, 10),
            mov(6, 0),
            exit(),
        ];
        assert_eq!(r0(&prog), 256);

        // With a calculator returning 0, the callee's frame is main's: it sees main's byte.
        let (mut vm, _) = vm_with_log();
        vm.set_stack_usage_calculator(Some(Box::new(|_| 0)));
        let prog = [
            ins(0x72, 10, 0, -1, 0x55),
            ins(0x85, 0, 1, 0, 1),
            exit(),
            ins(0x71, 0, 10, -1, 0),
            exit(),
        ];
        vm.load(&encode_slots(&prog)).expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(0x55));

        // Unbounded recursion hits the depth limit at the 9th nested call.
        let (mut vm, log) = vm_with_log();
        vm.set_stack_usage_calculator(Some(Box::new(|_| 16)));
        vm.load(&encode_slots(&[
            ins(0x85, 0, 1, 0, 1),
            exit(),
            ins(0x85, 0, 1, 0, -1),
            exit(),
        ]))
        .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::CallDepthExceeded {
                depth: 9,
                max: 8,
                pc: 2
            })
        ));
        assert_eq!(
            log.lock().expect("log").as_slice(),
            ["uBPF error: number of nested functions calls (9) exceeds max (8) at PC 2"]
        );
    }

    #[test]
    fn helpers_unwind_and_callx() {
        // gather_bytes(1..5)
        let args: Vec<Insn> = (1..=5).map(|r| mov(r, i32::from(r))).collect();
        let mut prog = args.clone();
        prog.extend([ins(0x85, 0, 0, 0, 0), exit()]);
        assert_eq!(r0(&prog), 0x01_0203_0405);
        // r6..r9 and r1..r5 survive a helper call in the interpreter.
        assert_eq!(
            r0(&[mov(6, 3), ins(0x85, 0, 0, 0, 2), movr(0, 6), exit()]),
            3
        );
        // call_unwind_fail: r1 = -1 continues; r1 = 0 stops with r0 = 0.
        assert_eq!(
            r0(&[mov(1, -1), ins(0x85, 0, 0, 0, 5), mov(0, 2), exit()]),
            2
        );
        assert_eq!(
            r0(&[mov(1, 0), ins(0x85, 0, 0, 0, 5), mov(0, 2), exit()]),
            0
        );
        // Unwind from inside a local function ends the whole program.
        assert_eq!(
            r0(&[
                ins(0x85, 0, 1, 0, 2),
                mov(0, 7),
                exit(),
                mov(1, 0),
                ins(0x85, 0, 0, 0, 5),
                mov(0, 9),
                exit()
            ]),
            0
        );
        // callx: index from the register named in dst.
        assert_eq!(
            r0(&[mov(1, 49), mov(2, 3), ins(0x8d, 2, 0, 0, 0), exit()]),
            7
        );
        assert_eq!(
            run(&[mov(2, 40), ins(0x8d, 2, 0, 0, 0), exit()], &mut []),
            Err(ExecError::NonexistentFunction { pc: 1, index: 40 })
        );
    }

    #[test]
    fn helpers_get_the_original_mem() {
        unsafe extern "C" fn sixth(
            _: u64,
            _: u64,
            _: u64,
            _: u64,
            _: u64,
            mem: *mut c_void,
        ) -> u64 {
            mem as u64
        }
        unsafe extern "C" fn dispatch(
            a: u64,
            _: u64,
            _: u64,
            _: u64,
            _: u64,
            index: u32,
            mem: *mut c_void,
        ) -> u64 {
            (mem as u64).wrapping_add(a).wrapping_add(u64::from(index))
        }
        let mut vm = Vm::new();
        vm.register_helper(7, Some("sixth"), sixth)
            .expect("index in range");
        // r1 is overwritten before the call: the helper still sees the original mem.
        vm.load(&encode_slots(&[mov(1, 0), ins(0x85, 0, 0, 0, 7), exit()]))
            .expect("loads");
        let mut mem = [0u8; 4];
        let addr = mem.as_ptr() as u64;
        assert_eq!(vm.execute(&mut mem), Ok(addr));
        vm.set_dispatcher(Some(dispatch), Some(Box::new(|i| i == 7)));
        vm.unload().unwrap();
        vm.load(&encode_slots(&[mov(1, 100), ins(0x85, 0, 0, 0, 7), exit()]))
            .expect("loads");
        assert_eq!(vm.execute(&mut mem), Ok(addr + 107));
    }

    #[test]
    fn atomics() {
        let mut mem = [0u8; 24];
        mem[3..11].copy_from_slice(&5u64.to_le_bytes());
        mem[16..20].copy_from_slice(&9u32.to_le_bytes());
        let prog = [
            // Misaligned 64-bit fetch-add at mem+3: r2 = old (5), memory = 7.
            mov(2, 2),
            ins(0xdb, 1, 2, 3, 0x01),
            // 32-bit cmpxchg at mem+16: r0 = 9 matches, store 1; r0 = old.
            mov(0, 9),
            mov(3, 1),
            ins(0xc3, 1, 3, 16, 0xf1),
            // 32-bit xchg at mem+16: r4 = old (1), memory = 0xffffffff.
            mov(4, -1),
            ins(0xc3, 1, 4, 16, 0xe1),
            // r0 = r0 + r2 * 16 + r4 * 256
            ins(0x27, 2, 0, 0, 16),
            ins(0x0f, 0, 2, 0, 0),
            ins(0x27, 4, 0, 0, 256),
            ins(0x0f, 0, 4, 0, 0),
            exit(),
        ];
        assert_eq!(run(&prog, &mut mem), Ok(9 + 5 * 16 + 256));
        assert_eq!(&mem[3..11], &7u64.to_le_bytes());
        assert_eq!(&mem[16..20], &u32::MAX.to_le_bytes());
        // 32-bit cmpxchg: the old value goes to r0.
        let mut word = 9u32.to_le_bytes();
        let prog = [
            mov(0, 9),
            mov(3, 1),
            ins(0xc3, 1, 3, 0, 0xf1),
            ins(0x07, 0, 0, 0, 100),
            exit(),
        ];
        assert_eq!(run(&prog, &mut word), Ok(109));
        assert_eq!(word, 1u32.to_le_bytes());
        // Atomics out of bounds report a store.
        assert!(matches!(
            run(&[mov(0, 0), ins(0xdb, 1, 0, 0, 0), exit()], &mut [0u8; 4]),
            Err(ExecError::OutOfBounds {
                access: Access::Store,
                size: 8,
                ..
            })
        ));
    }

    #[test]
    fn falling_off_the_end_and_nothing_loaded_are_silent() {
        let (mut vm, log) = vm_with_log();
        assert_eq!(vm.execute(&mut []), Err(ExecError::NotLoaded));
        vm.load(&encode_slots(&[mov(0, 1)])).expect("loads");
        assert_eq!(vm.execute(&mut []), Err(ExecError::FellOffEnd { pc: 1 }));
        assert!(log.lock().expect("log").is_empty());
    }

    #[test]
    fn undefined_behaviour_check() {
        let (mut vm, log) = vm_with_log();
        vm.config_mut().undefined_behavior_check = true;
        // exit with r0 never written.
        vm.load(&encode_slots(&[mov(3, 1), exit()])).expect("loads");
        assert_eq!(
            vm.execute(&mut []).unwrap_err().to_string(),
            "Error: 1: Return value register r0 is not initialized.\nError: Invalid register state at pc 1."
        );
        // A load from an uninitialised register.
        vm.unload().unwrap();
        vm.load(&encode_slots(&[ins(0x79, 0, 4, 0, 0), exit()]))
            .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::UninitializedRegister {
                pc: 0,
                role: "Source",
                reg: 4
            })
        ));
        // Loading unwritten stack bytes makes the destination uninitialised.
        vm.unload().unwrap();
        vm.load(&encode_slots(&[ins(0x79, 0, 10, -8, 0), exit()]))
            .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::UninitializedRegister {
                pc: 1,
                role: "Return value",
                reg: 0
            })
        ));
        // Written stack bytes are fine; helper calls clobber r1-r5.
        vm.unload().unwrap();
        vm.load(&encode_slots(&[
            ins(0x7a, 10, 0, -8, 3),
            ins(0x79, 0, 10, -8, 0),
            ins(0x85, 0, 0, 0, 2),
            ins(0x1d, 1, 0, 1, 0),
            exit(),
            exit(),
        ]))
        .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::UninitializedRegister {
                pc: 3,
                role: "Destination",
                reg: 1
            })
        ));
        assert_eq!(log.lock().expect("log").len(), 4);
    }

    #[test]
    fn debug_callback_sees_every_instruction() {
        let mut vm = Vm::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        vm.set_debug_fn(Some(Box::new(move |state| {
            sink.lock()
                .expect("lock")
                .push((state.pc, state.registers[0], state.register_mask));
            assert_eq!(state.stack.len(), STACK_SIZE);
            assert!(state.stack_mask.is_none());
        })))
        .expect("first debug fn");
        let v = lddw(0, 9);
        vm.load(&encode_slots(&[mov(0, 4), v[0], v[1], exit()]))
            .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(9));
        assert_eq!(
            seen.lock().expect("lock").as_slice(),
            [(0, 0, 0x406), (1, 4, 0x406), (3, 9, 0x406)]
        );
    }

    #[test]
    fn debug_callback_sees_the_shadow_state_under_the_ub_check() {
        let mut vm = Vm::new();
        vm.config_mut().undefined_behavior_check = true;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        vm.set_debug_fn(Some(Box::new(move |state| {
            let mask = state.stack_mask.expect("stack mask under the UB check");
            assert_eq!(mask.len(), STACK_SIZE / 8);
            sink.lock().expect("lock").push((
                state.pc,
                state.register_mask,
                mask[STACK_SIZE / 8 - 1],
            ));
        })))
        .expect("first debug fn");
        vm.load(&encode_slots(&[
            ins(0x72, 10, 0, -2, 1), // stb [r10-2], 1
            mov(0, 4),
            exit(),
        ]))
        .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(4));
        // Bit 0 of the mask is the lowest stack byte: r10-2 is bit 6 of the last byte.
        assert_eq!(
            seen.lock().expect("lock").as_slice(),
            [(0, 0x406, 0), (1, 0x406, 0x40), (2, 0x407, 0x40)]
        );
    }

    #[test]
    fn concurrent_executions_share_the_vm() {
        let (mut vm, _) = vm_with_log();
        // Sum of mem bytes in a loop.
        vm.load(&encode_slots(&[
            mov(0, 0),
            ins(0x15, 2, 0, 5, 0),
            ins(0x71, 3, 1, 0, 0),
            ins(0x0f, 0, 3, 0, 0),
            ins(0x07, 1, 0, 0, 1),
            ins(0x17, 2, 0, 0, 1),
            ins(0x05, 0, 0, -6, 0),
            exit(),
        ]))
        .expect("loads");
        let vm = &vm;
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                scope.spawn(move || {
                    let mut mem = vec![t; 100];
                    assert_eq!(vm.execute(&mut mem), Ok(u64::from(t) * 100));
                });
            }
        });
    }
}

#[cfg(test)]
mod robustness {
    use super::*;
    use crate::isa::{INSN_TABLE, Variant, encode_slots};
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    /// xorshift64*: a fixed-seed generator, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A random instruction that is well-formed often enough to pass validation.
    fn random_insn(rng: &mut Rng, len: usize) -> Vec<Insn> {
        let spec = INSN_TABLE[rng.below(INSN_TABLE.len() as u64) as usize];
        let reg = |rng: &mut Rng| rng.below(11) as u8;
        let mut insn = Insn::new(spec.opcode, reg(rng), reg(rng), 0, 0);
        insn.off = match rng.below(4) {
            0 => 0,
            1 => rng.below(len as u64 + 2) as i16 - 2,
            2 => -(rng.below(64) as i16),
            _ => rng.next() as i16,
        };
        insn.imm = match rng.below(4) {
            0 => 0,
            1 => rng.below(70) as i32,
            2 => -(rng.below(16) as i32),
            _ => rng.next() as i32,
        };
        // Mostly respect the operand form, so that many programs pass validation.
        if rng.below(8) != 0 {
            use crate::isa::Operands as O;
            let (keep_dst, keep_src, keep_off, keep_imm) = match spec.operands {
                O::DstImm => (true, false, false, true),
                O::DstSrc => (true, true, false, false),
                O::Dst => (true, false, false, false),
                O::DstImm64 => (true, false, false, true),
                O::DstMem | O::MemSrc => (true, true, true, false),
                O::MemImm | O::CondImm => (true, false, true, true),
                O::CondReg => (true, true, true, false),
                O::Jump => (false, false, true, false),
                O::Jump32 => (false, false, false, true),
                O::CallImm | O::CallLocal => (false, false, false, true),
                O::CallReg => (true, false, false, false),
                O::None => (false, false, false, false),
                O::PacketAbs => (false, false, false, true),
                O::PacketInd => (false, true, false, true),
            };
            if !keep_dst {
                insn.dst = 0;
            } else if insn.dst == 10 && !matches!(spec.operands, O::MemImm | O::MemSrc) {
                insn.dst = 9;
            }
            if !keep_src {
                insn.src = 0;
            }
            if !keep_off {
                insn.off = 0;
            }
            if !keep_imm {
                insn.imm = 0;
            }
            if matches!(spec.operands, O::Jump32 | O::CallLocal) {
                insn.imm = rng.below(len as u64 + 2) as i32 - 2;
            }
        }
        match spec.variant {
            Variant::Off(off) => insn.off = off,
            Variant::Imm(imm) => insn.imm = imm,
            Variant::Src(src) => insn.src = src,
            Variant::Any => {}
        }
        if insn.opc == 0x85 && insn.src == 0 {
            // Only helpers that take no pointers: gather_bytes, no_op, sqrti, unwind.
            insn.imm = [0, 2, 3, 5][rng.below(4) as usize];
        }
        if insn.opc == 0x18 {
            return vec![insn, Insn::new(0, 0, 0, 0, rng.next() as i32)];
        }
        vec![insn]
    }

    /// Random programs never panic the verifier or the interpreter; execution is bounded by
    /// the instruction limit and memory-safe under bounds checking.
    #[test]
    fn random_programs_never_panic() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut loaded = 0;
        for _ in 0..3000 {
            let len = 1 + rng.below(12) as usize;
            let mut slots = Vec::new();
            while slots.len() < len {
                slots.extend(random_insn(&mut rng, len));
            }
            if rng.below(2) == 0 {
                slots.push(Insn::new(0xb7, 0, 0, 0, 0));
                slots.push(Insn::new(0x95, 0, 0, 0, 0));
            }
            let mut vm = Vm::new();
            for (index, name, f) in crate::tools::conformance::HELPERS {
                if matches!(index, 0 | 2 | 3 | 5) {
                    let _ = vm.register_helper(index, Some(name), f);
                }
            }
            let _ = vm.set_unwind_index(5);
            vm.set_error_printer(Some(Box::new(|_| {})));
            vm.config_mut().instruction_limit = 200;
            vm.config_mut().undefined_behavior_check = rng.below(2) == 0;
            if vm.load(&encode_slots(&slots)).is_ok() {
                loaded += 1;
                let mut mem = [0u8; 32];
                let _ = vm.execute(&mut mem);
            }
        }
        assert!(loaded > 100, "only {loaded} random programs loaded");
    }
}

#[cfg(test)]
mod regions {
    use super::*;
    use crate::isa::encode_slots;
    use crate::program::DataSection;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    fn lddw(dst: u8, value: u64) -> [Insn; 2] {
        [
            Insn::new(0x18, dst, 0, 0, value as u32 as i32),
            Insn::new(0, 0, 0, 0, (value >> 32) as u32 as i32),
        ]
    }

    #[test]
    fn data_sections_are_accessible_and_read_only_ones_refuse_stores() {
        let mut vm = Vm::new();
        vm.set_error_printer(Some(Box::new(|_| {})));
        let mut program = vm
            .verify(&encode_slots(&[Insn::new(0x95, 0, 0, 0, 0)]))
            .expect("valid");
        program
            .data_sections
            .push(DataSection::new(".rodata", &7u64.to_le_bytes(), 8, false));
        program
            .data_sections
            .push(DataSection::new(".bss", &[], 8, true));
        let ro = program.data_sections[0].addr();
        let rw = program.data_sections[1].addr();
        let a = lddw(1, ro);
        let b = lddw(2, rw);
        program.insns = vec![
            a[0],
            a[1],
            b[0],
            b[1],
            Insn::new(0x79, 0, 1, 0, 0), // r0 = *ro
            Insn::new(0x07, 0, 0, 0, 1), // r0 += 1
            Insn::new(0x7b, 2, 0, 0, 0), // *rw = r0
            Insn::new(0x79, 0, 2, 0, 0), // r0 = *rw
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        vm.install(program);
        assert_eq!(vm.execute(&mut []), Ok(8));

        let mut program = vm.program.take().expect("installed");
        // A store into the read-only section is out of bounds.
        program.insns[6] = Insn::new(0x7b, 1, 0, 0, 0);
        vm.install(program);
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::OutOfBounds {
                pc: 6,
                access: Access::Store,
                ..
            })
        ));
    }

    #[test]
    fn bounds_callback_is_consulted_after_mem_and_stack() {
        let cell = Box::new(0u64);
        let addr = &*cell as *const u64 as u64;
        let mut vm = Vm::new();
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm.set_bounds_check_fn(Box::new(move |a, size| a == addr && size == 8))
            .expect("first callback");
        let p = lddw(1, addr);
        vm.load(&encode_slots(&[
            p[0],
            p[1],
            Insn::new(0x7a, 1, 0, 0, 42),
            Insn::new(0x79, 0, 1, 0, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ]))
        .expect("loads");
        assert_eq!(vm.execute(&mut []), Ok(42));
        vm.unload().unwrap();
        vm.load(&encode_slots(&[
            p[0],
            p[1],
            Insn::new(0x72, 1, 0, 1, 42),
            Insn::new(0x95, 0, 0, 0, 0),
        ]))
        .expect("loads");
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::OutOfBounds { pc: 2, .. })
        ));
    }

    #[test]
    fn execute_raw_with_a_small_external_stack() {
        // custom_local_function_stack_size_zero-style: a 32-byte stack given by the caller.
        let mut vm = Vm::new();
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm.set_stack_usage_calculator(Some(Box::new(|_| 0)));
        vm.load(&encode_slots(&[
            Insn::new(0x72, 10, 0, -1, 5),
            Insn::new(0x85, 0, 1, 0, 1),
            Insn::new(0x95, 0, 0, 0, 0),
            Insn::new(0x72, 10, 0, -1, 8),
            Insn::new(0x95, 0, 0, 0, 0),
        ]))
        .expect("loads");
        let mut stack = [0u8; 32];
        // SAFETY: the stack buffer is valid for 32 bytes; no memory is given.
        let result =
            unsafe { vm.execute_raw(std::ptr::null_mut(), 0, stack.as_mut_ptr(), stack.len()) };
        assert!(result.is_ok());
        assert_eq!(stack[31], 8);
        // A store below the small stack is out of bounds, and still prints 4096.
        vm.unload().unwrap();
        vm.load(&encode_slots(&[
            Insn::new(0x72, 10, 0, -33, 5),
            Insn::new(0x95, 0, 0, 0, 0),
        ]))
        .expect("loads");
        // SAFETY: as above.
        let err =
            unsafe { vm.execute_raw(std::ptr::null_mut(), 0, stack.as_mut_ptr(), stack.len()) }
                .unwrap_err();
        assert!(err.to_string().ends_with("/4096"));
    }
}
