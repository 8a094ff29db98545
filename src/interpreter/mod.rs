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

use crate::error::{Access, ExecError};
use crate::exec::machine::{DebugState, ExecutionProfile, Machine};
use crate::exec::memory::{MemRegion, Regions, store};
use crate::exec::packet::{self, PacketLoad};
use crate::isa::op::*;
use crate::isa::{Insn, LOCAL_FUNCTION_STACK_SIZE, STACK_SIZE, alu, call_kind, class, jmp, mode};
use crate::isa::{size, source};
use crate::program::Program;

mod fast;
mod ops;
mod safe;

use ops::{CallStack, alu32, alu64, atomic_fetch_reg, atomic_rmw, be, bswap, cond};
use ops::{cond32, div32, div64, le, load_extend, mod32, mod64, sign_extend};

pub(crate) use fast::Decoded;

pub use safe::{
    INPUT_REGION_ID, MAX_SAFE_REGIONS, PERM_ATOMIC, PERM_READ, PERM_WRITE, STACK_REGION_ID,
    SafeHelperResult, SafeRegion, SafeRegionKind, SafeRegistry,
};
use safe::{SafeAccess, SafeState};

/// The registers the undefined-behaviour check starts with as initialised: r1, r2 and r10.
const INITIAL_REGISTER_MASK: u16 = (1 << 1) | (1 << 2) | (1 << 10);
/// r1..r5 in a register mask: a helper call leaves them uninitialised.
const ARGUMENT_REGISTERS: u16 = 0b11_1110;
/// r6..r9 in a register mask: a local call saves and restores them.
const CALLEE_SAVED_REGISTERS: u16 = 0b11_1100_0000;

/// The stack `Vm::execute` provides: 16-byte aligned like a C `uint64_t` array on the native
/// stack, so aligned eBPF stack slots are aligned host words (real atomics, no split accesses).
#[repr(C, align(16))]
struct AlignedStack([u8; STACK_SIZE]);

/// This thread's stack buffer for runs on their own stack (`Vm::execute`, `ubpf_exec`), and
/// whether a run holds it. Const-initialised and without a destructor, so a thread-local of
/// it is a plain slot in the thread's TLS block: no lazy initialisation, no registration.
#[cfg(feature = "std")]
struct ThreadStack {
    /// The buffer; while a run holds it, the program writes it through raw pointers.
    bytes: core::cell::UnsafeCell<AlignedStack>,
    /// Whether a run on this thread holds the buffer (a run nested inside a helper then gets
    /// a fresh one).
    in_use: core::cell::Cell<bool>,
}

#[cfg(feature = "std")]
std::thread_local! {
    /// The stack buffer of runs on this thread (zeroed when the thread first runs a program).
    static THREAD_STACK: ThreadStack = const {
        ThreadStack {
            bytes: core::cell::UnsafeCell::new(AlignedStack([0; STACK_SIZE])),
            in_use: core::cell::Cell::new(false),
        }
    };
}

/// One run's hold on [`THREAD_STACK`], taken with a single thread-local lookup (in a shared
/// library each lookup is a call to the TLS resolver) and released on drop, also when a
/// Rust helper unwinds through the run.
#[cfg(feature = "std")]
struct StackHold<'a> {
    /// This thread's buffer.
    stack: &'a ThreadStack,
}

#[cfg(feature = "std")]
impl StackHold<'_> {
    /// Takes this thread's buffer, or `None` while an outer run on this thread holds it.
    #[inline(always)]
    fn take() -> Option<Self> {
        let ptr = THREAD_STACK.with(core::ptr::from_ref);
        // SAFETY: a thread-local without a destructor is never torn down while its thread
        // runs, so its address stays valid for this whole call on this thread; only shared
        // references to it exist (its contents are behind `Cell`/`UnsafeCell`).
        let stack = unsafe { &*ptr };
        if stack.in_use.replace(true) {
            return None;
        }
        Some(StackHold { stack })
    }

    /// Zeroes the top `clear` bytes (at most `STACK_SIZE`) of the held buffer and returns
    /// its lowest address.
    #[inline(always)]
    fn cleared(&self, clear: usize) -> *mut u8 {
        // SAFETY: this hold set `in_use`, so no other reference into the buffer is live on
        // this thread (an outer run would have refused the hold) and other threads have their
        // own buffers; the `&mut` ends before the run writes through the returned pointer.
        let bytes = unsafe { &mut *self.stack.bytes.get() };
        if clear != 0 {
            bytes.0[STACK_SIZE - clear.min(STACK_SIZE)..].fill(0);
        }
        bytes.0.as_mut_ptr()
    }
}

/// Whether a run on this thread holds its stack buffer (for tests of the release paths).
#[cfg(all(test, feature = "std"))]
pub(crate) fn thread_stack_held() -> bool {
    THREAD_STACK.with(|stack| stack.in_use.get())
}

#[cfg(feature = "std")]
impl Drop for StackHold<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.stack.in_use.set(false);
    }
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
    match insn.class() {
        // ldind*: the offset register.
        class::LD if insn.opc & mode::MASK == mode::IND => need(insn.src, "Source"),
        // ldx: the base register.
        class::LDX => need(insn.src, "Source"),
        // st: the base register.
        class::ST => need(insn.dst, "Destination"),
        // stx and atomics: value and base (r10 as base is always fine).
        class::STX => {
            need(insn.src, "Source")?;
            if insn.dst != 10 {
                need(insn.dst, "Destination")?;
            }
            Ok(())
        }
        class::JMP | class::JMP32 => {
            if insn.opc == EXIT {
                return need(0, "Return value");
            }
            if insn.opc == CALLX {
                // callx reads the helper index from dst.
                return need(insn.dst, "Destination");
            }
            let conditional = !matches!(insn.opc & alu::MASK, jmp::JA | jmp::CALL | jmp::EXIT);
            if conditional && insn.off != 0 {
                need(insn.dst, "Destination")?;
                if insn.opc & source::MASK == source::X {
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
    if !matches!(insn.class(), class::ALU | class::ALU64) {
        if insn.opc == LDDW {
            shadow.set(insn.dst, true);
        }
        if insn.is_packet_load() {
            // r0 is written (a load that ends the program writes it too).
            shadow.set(0, true);
        }
        return;
    }
    match insn.opc & alu::MASK {
        // neg and the byte swaps leave the state as it is.
        alu::NEG | alu::END => {}
        _ if insn.opc & source::MASK == source::X => {
            let state = shadow.is_set(insn.src);
            shadow.set(insn.dst, state);
        }
        _ => shadow.set(insn.dst, true),
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
    #[inline]
    pub(crate) fn execute(&self, mem: &mut [u8]) -> Result<u64, ExecError> {
        self.execute_with_regions(mem, &[])
    }

    /// The body of [`Vm::execute_with_regions`](crate::vm::Vm::execute_with_regions).
    #[inline]
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
    #[inline]
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
    #[inline]
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
        // SAFETY: forwarded to the caller's contract.
        unsafe {
            self.run_entry(mem, mem_len, None, extra)
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
    #[inline]
    pub(crate) unsafe fn execute_raw_with_regions(
        &self,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        // SAFETY: forwarded to the caller's contract.
        unsafe { self.run_entry(mem, mem_len, Some((stack, stack_len)), extra) }
    }

    /// Every interpreter run starts here: on the caller's `stack` (`(base, len)`), or, for
    /// `None`, on this thread's stack buffer, whose top `Program::stack_reach` bytes (all of
    /// it while a debug callback is set) are cleared first (docs/sandbox.md, "Stack"). One
    /// function for both, with the fast loop inlined, so that a short program's run is one
    /// call from the public entry points (and from `ubpf_exec`): the thread's buffer is taken
    /// with one thread-local lookup, and nothing the program cannot need is set up (no
    /// re-entrancy level without helper calls, no state of the per-instruction loop).
    ///
    /// # Safety
    /// `mem` as for [`Vm::execute_raw`](crate::vm::Vm::execute_raw), and a given stack must
    /// be valid for its length, for the whole call.
    #[inline(never)]
    unsafe fn run_entry(
        &self,
        mem: *mut u8,
        mem_len: usize,
        given_stack: Option<(*mut u8, usize)>,
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        let Some(program) = self.machine.program.as_ref() else {
            return Err(ExecError::NotLoaded);
        };
        #[cfg(feature = "std")]
        let hold;
        let (stack, stack_len) = match given_stack {
            Some(given) => given,
            #[cfg(not(feature = "std"))]
            // SAFETY: forwarded to the caller's contract.
            None => return unsafe { self.execute_on_fresh_stack(mem, mem_len, extra) },
            #[cfg(feature = "std")]
            None => {
                let Some(taken) = StackHold::take() else {
                    // A run nested inside a helper on this thread: the buffer is in use.
                    // SAFETY: forwarded to the caller's contract.
                    return unsafe { self.execute_on_fresh_stack(mem, mem_len, extra) };
                };
                hold = taken;
                // The debug callback sees the whole stack; otherwise only what the program
                // can reach must read 0.
                let clear = if self.machine.debug_fn.is_some() {
                    STACK_SIZE
                } else {
                    program.stack_reach
                };
                (hold.cleared(clear), STACK_SIZE)
            }
        };
        // A run that may call helpers is a level of `crate::exec::reentry` (nesting limit, code in
        // use), entered first, as compiled code does.
        let level = if program.calls_helpers {
            let Some(level) = crate::exec::reentry::RunLevel::enter(self.machine.run_owner())
            else {
                return Err(self.failed(ExecError::NestingTooDeep {
                    max: crate::isa::MAX_NESTED_RUNS,
                }));
            };
            Some(level)
        } else {
            None
        };
        // The thread's own buffer always fits; only a caller's stack needs the test.
        let caller_stack = if given_stack.is_some() {
            stack
        } else {
            core::ptr::null_mut()
        };
        if let Err(err) = crate::exec::memory::check_buffers(mem, mem_len, caller_stack, stack_len)
        {
            drop(level);
            return Err(self.failed(err));
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
        let config = &self.machine.config;
        let per_instruction = config.instruction_limit != 0
            || self.machine.debug_fn.is_some()
            || config.undefined_behavior_check
            || config.profile == ExecutionProfile::Safe;
        let result = if per_instruction {
            // SAFETY: forwarded to the caller's contract.
            unsafe { self.run_per_instruction(&env, mem_len) }
        } else {
            // SAFETY: forwarded to the caller's contract.
            unsafe { fast::run(&env, self.decoded, mem_len) }
        };
        drop(level);
        match result {
            Ok(value) => Ok(value),
            Err(err) => Err(self.failed(err)),
        }
    }

    /// The per-instruction loop, for the safe profile or when an instruction limit, a debug
    /// callback or the undefined-behaviour check is set. Out of line, so that the fast path's
    /// entry (which inlines the fast loop) carries none of its state.
    ///
    /// # Safety
    /// As for [`Vm::execute_raw_with_regions`](crate::vm::Vm::execute_raw_with_regions), over
    /// `env`'s buffers.
    #[inline(never)]
    unsafe fn run_per_instruction(&self, env: &Env<'_>, mem_len: usize) -> Result<u64, ExecError> {
        if self.machine.config.profile == ExecutionProfile::Safe {
            let mut tags = SafeState::new(
                self.safe,
                env.mem as u64,
                mem_len as u64,
                env.regions.stack_start,
                env.stack_len as u64,
            );
            // SAFETY: forwarded to the caller's contract.
            unsafe { run::<true, _>(env, mem_len, &mut tags) }
        } else {
            // SAFETY: forwarded to the caller's contract.
            unsafe { run::<true, _>(env, mem_len, &mut NoTracking) }
        }
    }

    /// Reports `err` through the VM's error printer and gives it back: the failure path of a
    /// run, kept out of the fast path's way.
    #[cold]
    #[inline(never)]
    fn failed(&self, err: ExecError) -> ExecError {
        self.machine.report(&err);
        err
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

/// The checked loop's state besides the pc: the register file, the safe profile's tracker and
/// the undefined-behaviour check's shadow (`None` when the check is off).
struct Cpu<'t, T> {
    reg: [u64; 16],
    tracker: &'t mut T,
    shadow: Option<Shadow>,
}

impl<T: Tracker> Cpu<'_, T> {
    /// `ldx*` at `pc`: `dst = *(size *)(src + off)`, zero- or (`ldxs*`) sign-extended.
    ///
    /// # Safety
    /// `regions` are this run's (see [`Vm::execute_raw`]).
    #[inline(always)]
    unsafe fn load(
        &mut self,
        regions: &Regions<'_>,
        insn: Insn,
        pc: usize,
    ) -> Result<(), ExecError> {
        let size = size::bytes(insn.opc);
        let base = self.reg[usize::from(insn.src & 0x0f)];
        let access = SafeAccess::Load;
        let addr = self
            .tracker
            .access(regions, insn.src, base, insn.off, size, access, pc)?;
        let signed = insn.opc & mode::MASK == mode::MEMSX;
        // SAFETY: checked above (or bounds checking is off, uBPF's raw mode).
        self.reg[usize::from(insn.dst & 0x0f)] = unsafe { load_extend(addr, size, signed) };
        self.tracker.after_load(insn.dst, addr, size);
        if let Some(shadow) = &mut self.shadow {
            let written = !regions.in_stack(addr, size)
                || shadow.stack_written((addr - regions.stack_start) as usize, size);
            shadow.set(insn.dst, written);
        }
        Ok(())
    }

    /// `st*` / `stx*` at `pc`: `*(size *)(dst + off) = imm` (sign-extended) or `src`.
    ///
    /// # Safety
    /// As for [`Cpu::load`].
    #[inline(always)]
    unsafe fn store(
        &mut self,
        regions: &Regions<'_>,
        insn: Insn,
        pc: usize,
    ) -> Result<(), ExecError> {
        let size = size::bytes(insn.opc);
        let base = self.reg[usize::from(insn.dst & 0x0f)];
        let access = SafeAccess::Store;
        let addr = self
            .tracker
            .access(regions, insn.dst, base, insn.off, size, access, pc)?;
        let is_stx = insn.class() == class::STX;
        self.tracker
            .after_store(addr, size, is_stx.then_some(insn.src));
        let value = if is_stx {
            self.reg[usize::from(insn.src & 0x0f)]
        } else {
            insn.imm as i64 as u64
        };
        // SAFETY: checked above (or bounds checking is off, uBPF's raw mode).
        unsafe { store(addr, size, value) };
        self.mark_stack(regions, addr, size);
        Ok(())
    }

    /// An atomic at `pc` (`lock` operation in the immediate) on the word at `dst + off`.
    ///
    /// # Safety
    /// As for [`Cpu::load`].
    #[inline(always)]
    unsafe fn atomic(
        &mut self,
        regions: &Regions<'_>,
        insn: Insn,
        pc: usize,
    ) -> Result<(), ExecError> {
        let size = if insn.opc == ATOMIC64 { 8 } else { 4 };
        let base = self.reg[usize::from(insn.dst & 0x0f)];
        let access = SafeAccess::Atomic;
        let addr = self
            .tracker
            .access(regions, insn.dst, base, insn.off, size, access, pc)?;
        self.tracker.after_store(addr, size, None);
        let fetch = atomic_fetch_reg(insn.imm, insn.src);
        if let Some(reg) = fetch {
            self.tracker.set_scalar(reg);
        }
        let operand = self.reg[usize::from(insn.src & 0x0f)];
        // SAFETY: checked above; eBPF memory is only accessed atomically by atomics.
        let old = unsafe { atomic_rmw(addr, size, insn.imm, operand, self.reg[0]) };
        if let Some(reg) = fetch {
            self.reg[usize::from(reg & 0x0f)] = old;
        }
        self.mark_stack(regions, addr, size);
        Ok(())
    }

    /// Marks a store's bytes as written for the undefined-behaviour check.
    #[inline(always)]
    fn mark_stack(&mut self, regions: &Regions<'_>, addr: u64, size: usize) {
        if let Some(shadow) = &mut self.shadow
            && regions.in_stack(addr, size)
        {
            shadow.mark_stack((addr - regions.stack_start) as usize, size);
        }
    }

    /// A call of helper `index` at `pc` with r1..r5; r0 gets (and this returns) its result.
    #[inline(always)]
    fn call_helper(
        &mut self,
        env: &Env<'_>,
        index: u64,
        mem_len: usize,
        pc: usize,
    ) -> Result<u64, ExecError> {
        let metadata = self.tracker.before_helper(index, pc)?;
        let reg = &mut self.reg;
        let args = [reg[1], reg[2], reg[3], reg[4], reg[5]];
        let value = call_helper(env, index, args, mem_len, pc)?;
        reg[0] = value;
        self.tracker.after_helper(index, metadata, value, pc)?;
        if let Some(shadow) = &mut self.shadow {
            shadow.set(0, true);
            shadow.registers &= !ARGUMENT_REGISTERS;
        }
        Ok(value)
    }

    /// `call local` at `pc` to `target`, whose stack usage the program knows.
    #[inline(always)]
    fn call_local(
        &mut self,
        env: &Env<'_>,
        calls: &mut CallStack,
        pc: usize,
        target: usize,
    ) -> Result<(), ExecError> {
        let usage = env
            .program
            .function_at(target)
            .map_or(LOCAL_FUNCTION_STACK_SIZE, |f| f.stack_usage);
        let saved_mask = self
            .shadow
            .as_ref()
            .map_or(0, |s| s.registers & CALLEE_SAVED_REGISTERS);
        calls.call(&mut self.reg, pc, usage, saved_mask)?;
        self.tracker.enter_call();
        Ok(())
    }

    /// `exit`: the slot to return to, or `None` when the program ends (with r0).
    #[inline(always)]
    fn exit(&mut self, calls: &mut CallStack) -> Option<usize> {
        if let Some(shadow) = &mut self.shadow {
            shadow.registers &= !ARGUMENT_REGISTERS;
        }
        let frame = calls.exit(&mut self.reg)?;
        self.tracker.leave_call();
        if let Some(shadow) = &mut self.shadow {
            shadow.registers = (shadow.registers & !CALLEE_SAVED_REGISTERS) | frame.saved_mask;
        }
        Some(frame.return_pc)
    }
}

/// The interpreter loop. `CHECKED` enables the instruction limit, debug callback and
/// undefined-behaviour check; `tracker` is the safe profile's provenance tracking (or
/// [`NoTracking`]). Each arm names its opcode (`isa::op`) and runs the operation of `ops`
/// that the fast path runs too.
///
/// # Safety
/// See [`Vm::execute_raw`].
#[rustfmt::skip]
unsafe fn run<const CHECKED: bool, T: Tracker>(
    env: &Env<'_>,
    mem_len: usize,
    tracker: &mut T,
) -> Result<u64, ExecError> {
    let vm = env.machine;
    let insns: &[Insn] = &env.program.insns;
    let regions = env.regions;
    let unwind_index = vm.config.unwind_index.map(u64::from);

    let mut cpu = Cpu {
        reg: [0u64; 16],
        tracker,
        shadow: if CHECKED && vm.config.undefined_behavior_check {
            Some(Shadow::new(env.stack_len))
        } else {
            None
        },
    };
    cpu.reg[1] = env.mem as u64;
    cpu.reg[2] = mem_len as u64;
    cpu.reg[10] = regions.stack_end;
    let mut calls = CallStack::new(env.program.functions.first().map_or(0, |f| f.stack_usage));

    // uBPF keeps the instruction limit in an `int`: limits above i32::MAX are negative and
    // fail at once.
    let limit = vm.config.instruction_limit as i32;
    let mut remaining = limit;
    let mut pc = 0usize;

    macro_rules! dst { ($insn:expr) => { cpu.reg[usize::from($insn.dst & 0x0f)] }; }
    macro_rules! src { ($insn:expr) => { cpu.reg[usize::from($insn.src & 0x0f)] }; }
    macro_rules! imm { ($insn:expr) => { $insn.imm as i64 as u64 }; }
    macro_rules! jump_if {
        ($insn:expr, $cond:expr) => {
            if $cond { pc = pc.wrapping_add_signed(isize::from($insn.off)) }
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
            if let Some(shadow) = &cpu.shadow {
                check_registers(shadow, &insn, pc)?;
            }
            if let Some(debug) = &vm.debug_fn {
                // SAFETY: the stack is valid for `stack_len` bytes (caller's contract) and is
                // not written while this shared view exists.
                let stack = unsafe { core::slice::from_raw_parts(env.stack, env.stack_len) };
                let shadow = cpu.shadow.as_ref();
                let registers = shadow.map_or(INITIAL_REGISTER_MASK, |s| s.registers);
                debug(&DebugState {
                    pc,
                    registers: &cpu.reg,
                    stack,
                    register_mask: u64::from(registers),
                    stack_mask: shadow.map(|s| s.stack.as_slice()),
                });
            }
            if let Some(shadow) = &mut cpu.shadow {
                shadow_alu(shadow, &insn);
            }
        }
        cpu.tracker.before_alu(&insn, &cpu.reg, pc)?;
        let at = pc;
        pc += 1;

        match insn.opc {
            ADD64_IMM  => dst!(insn) = alu64(alu::ADD,  dst!(insn), imm!(insn)),
            ADD64_REG  => dst!(insn) = alu64(alu::ADD,  dst!(insn), src!(insn)),
            SUB64_IMM  => dst!(insn) = alu64(alu::SUB,  dst!(insn), imm!(insn)),
            SUB64_REG  => dst!(insn) = alu64(alu::SUB,  dst!(insn), src!(insn)),
            MUL64_IMM  => dst!(insn) = alu64(alu::MUL,  dst!(insn), imm!(insn)),
            MUL64_REG  => dst!(insn) = alu64(alu::MUL,  dst!(insn), src!(insn)),
            DIV64_IMM  => dst!(insn) = div64(insn.off,  dst!(insn), imm!(insn)),
            DIV64_REG  => dst!(insn) = div64(insn.off,  dst!(insn), src!(insn)),
            OR64_IMM   => dst!(insn) = alu64(alu::OR,   dst!(insn), imm!(insn)),
            OR64_REG   => dst!(insn) = alu64(alu::OR,   dst!(insn), src!(insn)),
            AND64_IMM  => dst!(insn) = alu64(alu::AND,  dst!(insn), imm!(insn)),
            AND64_REG  => dst!(insn) = alu64(alu::AND,  dst!(insn), src!(insn)),
            LSH64_IMM  => dst!(insn) = alu64(alu::LSH,  dst!(insn), imm!(insn)),
            LSH64_REG  => dst!(insn) = alu64(alu::LSH,  dst!(insn), src!(insn)),
            RSH64_IMM  => dst!(insn) = alu64(alu::RSH,  dst!(insn), imm!(insn)),
            RSH64_REG  => dst!(insn) = alu64(alu::RSH,  dst!(insn), src!(insn)),
            NEG64      => dst!(insn) = alu64(alu::NEG,  dst!(insn), 0),
            MOD64_IMM  => dst!(insn) = mod64(insn.off,  dst!(insn), imm!(insn)),
            MOD64_REG  => dst!(insn) = mod64(insn.off,  dst!(insn), src!(insn)),
            XOR64_IMM  => dst!(insn) = alu64(alu::XOR,  dst!(insn), imm!(insn)),
            XOR64_REG  => dst!(insn) = alu64(alu::XOR,  dst!(insn), src!(insn)),
            MOV64_IMM  => dst!(insn) = imm!(insn),
            MOV64_REG  => dst!(insn) = sign_extend(src!(insn), insn.off),
            ARSH64_IMM => dst!(insn) = alu64(alu::ARSH, dst!(insn), imm!(insn)),
            ARSH64_REG => dst!(insn) = alu64(alu::ARSH, dst!(insn), src!(insn)),
            BSWAP      => dst!(insn) = bswap(dst!(insn), insn.imm),

            ADD32_IMM  => dst!(insn) = alu32(alu::ADD,  dst!(insn), imm!(insn)),
            ADD32_REG  => dst!(insn) = alu32(alu::ADD,  dst!(insn), src!(insn)),
            SUB32_IMM  => dst!(insn) = alu32(alu::SUB,  dst!(insn), imm!(insn)),
            SUB32_REG  => dst!(insn) = alu32(alu::SUB,  dst!(insn), src!(insn)),
            MUL32_IMM  => dst!(insn) = alu32(alu::MUL,  dst!(insn), imm!(insn)),
            MUL32_REG  => dst!(insn) = alu32(alu::MUL,  dst!(insn), src!(insn)),
            DIV32_IMM  => dst!(insn) = div32(insn.off,  dst!(insn), imm!(insn)),
            DIV32_REG  => dst!(insn) = div32(insn.off,  dst!(insn), src!(insn)),
            OR32_IMM   => dst!(insn) = alu32(alu::OR,   dst!(insn), imm!(insn)),
            OR32_REG   => dst!(insn) = alu32(alu::OR,   dst!(insn), src!(insn)),
            AND32_IMM  => dst!(insn) = alu32(alu::AND,  dst!(insn), imm!(insn)),
            AND32_REG  => dst!(insn) = alu32(alu::AND,  dst!(insn), src!(insn)),
            LSH32_IMM  => dst!(insn) = alu32(alu::LSH,  dst!(insn), imm!(insn)),
            LSH32_REG  => dst!(insn) = alu32(alu::LSH,  dst!(insn), src!(insn)),
            RSH32_IMM  => dst!(insn) = alu32(alu::RSH,  dst!(insn), imm!(insn)),
            RSH32_REG  => dst!(insn) = alu32(alu::RSH,  dst!(insn), src!(insn)),
            NEG32      => dst!(insn) = alu32(alu::NEG,  dst!(insn), 0),
            MOD32_IMM  => dst!(insn) = mod32(insn.off,  dst!(insn), imm!(insn)),
            MOD32_REG  => dst!(insn) = mod32(insn.off,  dst!(insn), src!(insn)),
            XOR32_IMM  => dst!(insn) = alu32(alu::XOR,  dst!(insn), imm!(insn)),
            XOR32_REG  => dst!(insn) = alu32(alu::XOR,  dst!(insn), src!(insn)),
            MOV32_IMM  => dst!(insn) = alu32(alu::MOV,  dst!(insn), imm!(insn)),
            MOV32_REG  => dst!(insn) = alu32(alu::MOV,  0, sign_extend(src!(insn), insn.off)),
            ARSH32_IMM => dst!(insn) = alu32(alu::ARSH, dst!(insn), imm!(insn)),
            ARSH32_REG => dst!(insn) = alu32(alu::ARSH, dst!(insn), src!(insn)),
            LE         => dst!(insn) = le(dst!(insn), insn.imm),
            BE         => dst!(insn) = be(dst!(insn), insn.imm),

            // lddw: one executed instruction covering two slots.
            LDDW => {
                let high = insns.get(pc).map_or(0, |next| next.imm as u32);
                dst!(insn) = u64::from(insn.imm as u32) | (u64::from(high) << 32);
                pc += 1;
            }
            // SAFETY: `regions` are this run's (the caller's contract covers mem and the
            // extra regions; raw mode is the embedder's choice).
            LDXW | LDXH | LDXB | LDXDW => unsafe { cpu.load(&regions, insn, at)? },
            // SAFETY: as above.
            LDXSW | LDXSH | LDXSB => unsafe { cpu.load(&regions, insn, at)? },
            // SAFETY: as above.
            STW | STH | STB | STDW => unsafe { cpu.store(&regions, insn, at)? },
            // SAFETY: as above.
            STXW | STXH | STXB | STXDW => unsafe { cpu.store(&regions, insn, at)? },
            // SAFETY: as above.
            ATOMIC32 | ATOMIC64 => unsafe { cpu.atomic(&regions, insn, at)? },
            // Legacy packet loads: r0 = packet bytes at imm (or src + imm); outside the
            // packet the program ends with 0 (kernel flavour, `crate::exec::packet`).
            LDABSW | LDABSH | LDABSB | LDABSDW | LDINDW | LDINDH | LDINDB | LDINDDW => {
                let flavour = vm.config.packet_loads;
                let (opc, imm) = (insn.opc, insn.imm);
                // SAFETY: as for the loads above.
                let loaded = unsafe { packet::load(&regions, flavour, opc, imm, src!(insn), at)? };
                match loaded {
                    PacketLoad::Value(v) => cpu.reg[0] = v,
                    PacketLoad::Abort => return Ok(0),
                }
                cpu.tracker.set_scalar(0);
            }

            JA         => pc = pc.wrapping_add_signed(isize::from(insn.off)),
            JA32       => pc = pc.wrapping_add_signed(insn.imm as isize),
            JEQ_IMM    => jump_if!(insn, cond(jmp::JEQ,  dst!(insn), imm!(insn))),
            JEQ_REG    => jump_if!(insn, cond(jmp::JEQ,  dst!(insn), src!(insn))),
            JGT_IMM    => jump_if!(insn, cond(jmp::JGT,  dst!(insn), imm!(insn))),
            JGT_REG    => jump_if!(insn, cond(jmp::JGT,  dst!(insn), src!(insn))),
            JGE_IMM    => jump_if!(insn, cond(jmp::JGE,  dst!(insn), imm!(insn))),
            JGE_REG    => jump_if!(insn, cond(jmp::JGE,  dst!(insn), src!(insn))),
            JSET_IMM   => jump_if!(insn, cond(jmp::JSET, dst!(insn), imm!(insn))),
            JSET_REG   => jump_if!(insn, cond(jmp::JSET, dst!(insn), src!(insn))),
            JNE_IMM    => jump_if!(insn, cond(jmp::JNE,  dst!(insn), imm!(insn))),
            JNE_REG    => jump_if!(insn, cond(jmp::JNE,  dst!(insn), src!(insn))),
            JSGT_IMM   => jump_if!(insn, cond(jmp::JSGT, dst!(insn), imm!(insn))),
            JSGT_REG   => jump_if!(insn, cond(jmp::JSGT, dst!(insn), src!(insn))),
            JSGE_IMM   => jump_if!(insn, cond(jmp::JSGE, dst!(insn), imm!(insn))),
            JSGE_REG   => jump_if!(insn, cond(jmp::JSGE, dst!(insn), src!(insn))),
            JLT_IMM    => jump_if!(insn, cond(jmp::JLT,  dst!(insn), imm!(insn))),
            JLT_REG    => jump_if!(insn, cond(jmp::JLT,  dst!(insn), src!(insn))),
            JLE_IMM    => jump_if!(insn, cond(jmp::JLE,  dst!(insn), imm!(insn))),
            JLE_REG    => jump_if!(insn, cond(jmp::JLE,  dst!(insn), src!(insn))),
            JSLT_IMM   => jump_if!(insn, cond(jmp::JSLT, dst!(insn), imm!(insn))),
            JSLT_REG   => jump_if!(insn, cond(jmp::JSLT, dst!(insn), src!(insn))),
            JSLE_IMM   => jump_if!(insn, cond(jmp::JSLE, dst!(insn), imm!(insn))),
            JSLE_REG   => jump_if!(insn, cond(jmp::JSLE, dst!(insn), src!(insn))),

            JEQ32_IMM  => jump_if!(insn, cond32(jmp::JEQ,  dst!(insn), imm!(insn))),
            JEQ32_REG  => jump_if!(insn, cond32(jmp::JEQ,  dst!(insn), src!(insn))),
            JGT32_IMM  => jump_if!(insn, cond32(jmp::JGT,  dst!(insn), imm!(insn))),
            JGT32_REG  => jump_if!(insn, cond32(jmp::JGT,  dst!(insn), src!(insn))),
            JGE32_IMM  => jump_if!(insn, cond32(jmp::JGE,  dst!(insn), imm!(insn))),
            JGE32_REG  => jump_if!(insn, cond32(jmp::JGE,  dst!(insn), src!(insn))),
            JSET32_IMM => jump_if!(insn, cond32(jmp::JSET, dst!(insn), imm!(insn))),
            JSET32_REG => jump_if!(insn, cond32(jmp::JSET, dst!(insn), src!(insn))),
            JNE32_IMM  => jump_if!(insn, cond32(jmp::JNE,  dst!(insn), imm!(insn))),
            JNE32_REG  => jump_if!(insn, cond32(jmp::JNE,  dst!(insn), src!(insn))),
            JSGT32_IMM => jump_if!(insn, cond32(jmp::JSGT, dst!(insn), imm!(insn))),
            JSGT32_REG => jump_if!(insn, cond32(jmp::JSGT, dst!(insn), src!(insn))),
            JSGE32_IMM => jump_if!(insn, cond32(jmp::JSGE, dst!(insn), imm!(insn))),
            JSGE32_REG => jump_if!(insn, cond32(jmp::JSGE, dst!(insn), src!(insn))),
            JLT32_IMM  => jump_if!(insn, cond32(jmp::JLT,  dst!(insn), imm!(insn))),
            JLT32_REG  => jump_if!(insn, cond32(jmp::JLT,  dst!(insn), src!(insn))),
            JLE32_IMM  => jump_if!(insn, cond32(jmp::JLE,  dst!(insn), imm!(insn))),
            JLE32_REG  => jump_if!(insn, cond32(jmp::JLE,  dst!(insn), src!(insn))),
            JSLT32_IMM => jump_if!(insn, cond32(jmp::JSLT, dst!(insn), imm!(insn))),
            JSLT32_REG => jump_if!(insn, cond32(jmp::JSLT, dst!(insn), src!(insn))),
            JSLE32_IMM => jump_if!(insn, cond32(jmp::JSLE, dst!(insn), imm!(insn))),
            JSLE32_REG => jump_if!(insn, cond32(jmp::JSLE, dst!(insn), src!(insn))),

            CALL if insn.src == call_kind::LOCAL => {
                let target = pc.wrapping_add_signed(insn.imm as isize);
                cpu.call_local(env, &mut calls, at, target)?;
                pc = target;
            }
            CALL | CALLX => {
                let index = if insn.opc == CALL { u64::from(insn.imm as u32) } else { dst!(insn) };
                let value = cpu.call_helper(env, index, mem_len, at)?;
                if unwind_index == Some(index) && value == 0 {
                    return Ok(0);
                }
            }
            EXIT => match cpu.exit(&mut calls) {
                Some(return_pc) => pc = return_pc,
                None => return Ok(cpu.reg[0]),
            },

            // Validation rejects every other opcode; report it rather than trust that.
            opcode => return Err(ExecError::UnknownOpcode { pc: at, opcode }),
        }
    }
}
