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
use crate::exec::machine::{DebugState, ExecutionProfile, Machine};
use crate::exec::memory::{MemRegion, Regions, load, store};
use crate::exec::packet::{self, PacketLoad};
use crate::isa::{Insn, MAX_CALL_DEPTH, STACK_SIZE, atomic};
use crate::program::Program;

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
    machine: &'a Machine,
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
    if env.machine.maps.publish_runs {
        crate::exec::current_run::publish(env.machine, &env.regions);
    }
    // SAFETY: helpers are foreign functions trusted by whoever registered them.
    let result = unsafe {
        env.machine
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

/// The interpreter over one VM's loaded program: the machine it reads, the program
/// pre-decoded for the fast path, and the safe profile's registry. [`crate::vm::Vm`] builds
/// one per call; the methods below are its `execute*` methods.
#[derive(Clone, Copy)]
pub(crate) struct Interpreter<'a> {
    /// Settings, helpers, callbacks, maps and the loaded program.
    pub(crate) machine: &'a Machine,
    /// The loaded program pre-decoded for the fast path.
    pub(crate) decoded: &'a Decoded,
    /// The safe profile's helpers and regions.
    pub(crate) safe: &'a SafeRegistry,
}

impl Interpreter<'_> {
    /// The body of [`Vm::execute`](crate::vm::Vm::execute).
    pub(crate) fn execute(&self, mem: &mut [u8]) -> Result<u64, ExecError> {
        self.execute_with_regions(mem, &[])
    }

    /// The body of [`Vm::execute_with_regions`](crate::vm::Vm::execute_with_regions).
    pub(crate) fn execute_with_regions(
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

    /// The body of [`Vm::execute_on_own_stack`](crate::vm::Vm::execute_on_own_stack).
    ///
    /// # Safety
    /// As for [`Vm::execute_on_own_stack`](crate::vm::Vm::execute_on_own_stack).
    pub(crate) unsafe fn execute_on_own_stack(
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
            let clear = match &self.machine.program {
                Some(_) if self.machine.debug_fn.is_some() => STACK_SIZE,
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

    /// The body of [`Vm::execute_raw`](crate::vm::Vm::execute_raw).
    ///
    /// # Safety
    /// As for [`Vm::execute_raw`](crate::vm::Vm::execute_raw).
    pub(crate) unsafe fn execute_raw(
        &self,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
    ) -> Result<u64, ExecError> {
        // SAFETY: forwarded to the caller's contract.
        unsafe { self.execute_raw_with_regions(mem, mem_len, stack, stack_len, &[]) }
    }

    /// The body of [`Vm::execute_raw_with_regions`](crate::vm::Vm::execute_raw_with_regions).
    ///
    /// # Safety
    /// As for [`Vm::execute_raw_with_regions`](crate::vm::Vm::execute_raw_with_regions).
    pub(crate) unsafe fn execute_raw_with_regions(
        &self,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        let Some(program) = self.machine.program.as_ref() else {
            return Err(ExecError::NotLoaded);
        };
        // A run that may call helpers is a level of `crate::exec::reentry` (nesting limit, code in
        // use), entered first, as compiled code does.
        let level = if program.calls_helpers {
            let Some(level) = crate::exec::reentry::RunLevel::enter(self.machine.run_owner())
            else {
                let err = ExecError::NestingTooDeep {
                    max: crate::isa::MAX_NESTED_RUNS,
                };
                self.machine.report(&err);
                return Err(err);
            };
            Some(level)
        } else {
            None
        };
        if let Err(err) = crate::exec::memory::check_buffers(mem, mem_len, stack, stack_len) {
            drop(level);
            self.machine.report(&err);
            return Err(err);
        }
        let env = Env {
            machine: self.machine,
            program,
            regions: Regions::new(self.machine, program, mem, mem_len, stack, stack_len)
                .with_extra(extra),
            mem,
            stack,
            stack_len,
        };
        let checked = self.machine.config.instruction_limit != 0
            || self.machine.debug_fn.is_some()
            || self.machine.config.undefined_behavior_check;
        let result = if self.machine.config.profile == ExecutionProfile::Safe {
            let mut tags = SafeState::new(
                self.safe,
                mem as u64,
                mem_len as u64,
                env.regions.stack_start,
                stack_len as u64,
            );
            // SAFETY: forwarded to the caller's contract.
            unsafe { run::<true, _>(&env, mem_len, &mut tags) }
        } else if checked {
            // SAFETY: forwarded to the caller's contract.
            unsafe { run::<true, _>(&env, mem_len, &mut NoTracking) }
        } else {
            // SAFETY: forwarded to the caller's contract.
            unsafe { fast::run(&env, self.decoded, mem_len) }
        };
        drop(level);
        if let Err(err) = &result {
            self.machine.report(err);
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
    let vm = env.machine;
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
