//! `extern "C"` functions that compiled code calls on its cold paths, and the thread-local slot
//! where a run's fault is recorded.
//!
//! Each function catches panics: unwinding through Cranelift frames is never allowed. Faults go
//! into a thread-local rather than into the shared [`JitContext`], because the same compiled
//! code may run on several threads at once; a run executes entirely on its caller's thread
//! (helpers included), so the slot read after the call is the one this run wrote.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use super::context::{JitContext, fault};
use crate::error::{Access, ExecError};
use crate::exec::helpers::HelperTable;
use crate::exec::idiom::compare::{Bounds, CompareLoop, Forward};
use crate::exec::machine::Machine;
use crate::exec::memory::{MemRegion, Regions};
use crate::exec::packet::{self, PacketLoad, PacketLoads};
use crate::isa::{MAX_CALL_DEPTH, MAX_NESTED_RUNS};

thread_local! {
    /// The fault recorded by the current run on this thread.
    static FAULT: RefCell<Option<ExecError>> = const { RefCell::new(None) };
    /// Whether [`FAULT`] holds this run's fault (checked first: the common case is cheap).
    static FAULTED: Cell<bool> = const { Cell::new(false) };
    /// The extra regions of the run in progress on this thread (address and length of a
    /// `[MemRegion]` that outlives the run).
    static EXTRA_REGIONS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Records a run's extra regions for [`rt_check_access`] until dropped (the enclosing run's
/// come back then).
pub(crate) struct ExtraRegionsGuard {
    previous: (usize, usize),
}

impl ExtraRegionsGuard {
    /// Records `extra`, which must outlive the guard.
    pub(crate) fn enter(extra: &[MemRegion<'_>]) -> Self {
        ExtraRegionsGuard {
            previous: EXTRA_REGIONS.replace((extra.as_ptr() as usize, extra.len())),
        }
    }
}

impl Drop for ExtraRegionsGuard {
    fn drop(&mut self) {
        EXTRA_REGIONS.set(self.previous);
    }
}

/// The extra regions recorded for the run in progress on this thread.
fn current_extra_regions<'a>() -> &'a [MemRegion<'a>] {
    let (ptr, len) = EXTRA_REGIONS.get();
    if ptr == 0 || len == 0 {
        return &[];
    }
    // SAFETY: recorded by an `ExtraRegionsGuard` whose slice outlives the run, which is the
    // only caller of the runtime functions using it.
    unsafe { std::slice::from_raw_parts(ptr as *const MemRegion<'a>, len) }
}

/// Prepares this thread for a run of the code of `ctx`, whose faults the caller
/// (`Vm::execute_jit`) collects: clears the fault flag and offers collection to the run
/// (`crate::exec::reentry`); returns the previous collector, to be given back to [`disarm`].
#[inline]
pub(crate) fn arm(ctx: *const JitContext) -> usize {
    FAULTED.set(false);
    crate::exec::reentry::offer_collection(ctx as usize)
}

/// Ends a run started with [`arm`]: returns the fault it recorded, if any.
#[inline]
pub(crate) fn disarm(previous: usize) -> Option<ExecError> {
    crate::exec::reentry::restore_collection(previous);
    if FAULTED.replace(false) {
        FAULT.with(|f| f.borrow_mut().take())
    } else {
        None
    }
}

/// Records `err` for the `Vm::execute_jit` call running the code of `ctx`, or reports it at
/// once when nobody collects it (code called directly through a function pointer from C has
/// no other way to show the error): through the VM's error printer, or on standard error when
/// no VM owns the code any more.
fn record(ctx: *const JitContext, machine: Option<&Machine>, err: ExecError) {
    if crate::exec::reentry::collects(ctx as usize) {
        FAULT.with(|f| *f.borrow_mut() = Some(err));
        FAULTED.set(true);
    } else if let Some(machine) = machine {
        machine.report(&err);
    } else if err.is_printed() {
        eprintln!("{err}");
    }
}

/// The VM a context belongs to (`None` once detached).
///
/// # Safety
/// `ctx` must be null or point to a live `JitContext` whose VM pointer is null or valid (the
/// compiled code's owner guarantees both while the code may run; detached contexts live
/// forever and point to no VM).
unsafe fn machine_of<'a>(ctx: *const JitContext) -> Option<&'a Machine> {
    // SAFETY: guaranteed by the caller.
    let ctx = unsafe { ctx.as_ref() }?;
    let machine = ctx.machine.load(Ordering::Acquire);
    // SAFETY: guaranteed by the caller.
    unsafe { machine.cast_const().as_ref() }
}

/// Enters the `crate::exec::reentry` level of a run of compiled code that calls helpers (called
/// first thing on entry): returns 0, or 1 after recording [`ExecError::NestingTooDeep`] when
/// this thread already has `MAX_NESTED_RUNS` levels (the code then returns `u64::MAX` at
/// once, without [`rt_leave_run`]).
///
/// # Safety
/// `ctx` must be the context the calling code was compiled with (see [`machine_of`]).
pub(crate) unsafe extern "C" fn rt_enter_run(ctx: *const JitContext) -> u64 {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from this function's contract.
        let machine = unsafe { machine_of(ctx) };
        let owner = machine.map_or(0, Machine::run_owner);
        if crate::exec::reentry::enter_run(owner, ctx as usize) {
            return 0;
        }
        let err = ExecError::NestingTooDeep {
            max: MAX_NESTED_RUNS,
        };
        record(ctx, machine, err);
        1
    }))
    .unwrap_or(1)
}

/// Leaves the level entered by [`rt_enter_run`] (called on every return after it).
pub(crate) extern "C" fn rt_leave_run() {
    let _ = catch_unwind(crate::exec::reentry::leave_run);
}

/// Packs the constant description of an access into one argument of [`rt_check_access`]:
/// pc in bits 0–31, size in bits 32–39, store flag in bit 40, offset in bits 48–63.
pub(crate) fn pack_access(pc: usize, size: usize, access: Access, off: i16) -> i64 {
    let store = u64::from(access == Access::Store);
    ((pc as u64 & 0xffff_ffff)
        | ((size as u64) << 32)
        | (store << 40)
        | (u64::from(off as u16) << 48)) as i64
}

/// Per-run data the compiled code keeps in a stack slot for its slow path: the regions of the
/// run, the base register of the access being checked and the slow path's verdict (0:
/// allowed, 1: fault recorded).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RunBlock {
    /// The access's base register value (written by the code just before the call).
    pub base: u64,
    /// Start of the input memory (0 if none).
    pub mem: u64,
    /// Its length.
    pub mem_len: u64,
    /// Lowest byte of the stack.
    pub stack: u64,
    /// Its length.
    pub stack_len: u64,
    /// Written by [`rt_check_access`].
    pub verdict: u64,
}

/// Byte offsets of [`RunBlock`] fields, for the translator.
pub(crate) mod run_block {
    use super::RunBlock;
    /// `base`.
    pub const BASE: i32 = std::mem::offset_of!(RunBlock, base) as i32;
    /// `mem`.
    pub const MEM: i32 = std::mem::offset_of!(RunBlock, mem) as i32;
    /// `mem_len`.
    pub const MEM_LEN: i32 = std::mem::offset_of!(RunBlock, mem_len) as i32;
    /// `stack`.
    pub const STACK: i32 = std::mem::offset_of!(RunBlock, stack) as i32;
    /// `stack_len`.
    pub const STACK_LEN: i32 = std::mem::offset_of!(RunBlock, stack_len) as i32;
    /// `verdict`.
    pub const VERDICT: i32 = std::mem::offset_of!(RunBlock, verdict) as i32;
    /// Size of the block.
    pub const SIZE: u32 = std::mem::size_of::<RunBlock>() as u32;
}

/// The regions of the run whose [`RunBlock`] is `run`, for code of `machine` (a copy whose VM is
/// gone: mem and the stack only), with the extra regions recorded for this thread's run.
fn run_regions<'a>(machine: Option<&'a Machine>, run: &RunBlock) -> Regions<'a> {
    let mem = if run.mem == 0 {
        std::ptr::null()
    } else {
        run.mem as *const u8
    };
    let (mem_len, stack, stack_len) = (
        run.mem_len as usize,
        run.stack as *const u8,
        run.stack_len as usize,
    );
    match machine.and_then(|machine| machine.program.as_ref().map(|p| (machine, p))) {
        Some((machine, program)) => Regions::new(machine, program, mem, mem_len, stack, stack_len)
            .with_extra(current_extra_regions()),
        // A copy whose VM is gone: mem and the stack only.
        None => Regions::without_vm(mem, mem_len, stack, stack_len),
    }
}

/// Words of the frame [`rt_compare_ff`] reads: the eleven registers, then mem's start and
/// length and the stack's.
pub(crate) const COMPARE_FRAME_WORDS: usize = 15;

/// The fast-forward of a compare loop (`crate::exec::idiom::compare`), shared with the
/// interpreter: `description` is the loop's description ([`CompareLoop::to_words`], kept in
/// the program's `JitContext`), `frame` holds the registers at the loop's head (updated in
/// place) and then the run's mem and stack (start, length each).
/// Returns the number of iterations skipped.
///
/// # Safety
/// `description` must point to a description's words and `frame` to such a frame (8-byte
/// aligned, written by the compiled code of a run with bounds checks on), whose mem and stack
/// are the run's live buffers.
pub(crate) unsafe extern "C" fn rt_compare_ff(description: *const u64, frame: *mut u64) -> u64 {
    catch_unwind(AssertUnwindSafe(|| {
        let l = CompareLoop::from_words(|i| {
            // SAFETY: this function's contract: `description` is a description's words, and
            // `from_words` reads only those.
            unsafe { description.wrapping_add(i).read() }
        });
        // SAFETY: the frame starts with the eleven registers.
        let regs = unsafe { &mut *frame.cast::<[u64; 11]>() };
        let at = frame.wrapping_add(11);
        // SAFETY: the four region words follow the registers.
        let r = unsafe { std::slice::from_raw_parts(at, 4) };
        let bounds = Bounds {
            mem_start: r[0],
            mem_end: r[0].wrapping_add(r[1]),
            stack_start: r[2],
            stack_end: r[2].wrapping_add(r[3]),
        };
        // SAFETY: the bounds are the run's live mem and stack; bounds checks are on (the
        // translator emits the call only then).
        match unsafe { l.fast_forward(regs, &bounds) } {
            Forward::Skipped(n) => n,
            Forward::Uncovered => 0,
        }
    }))
    .unwrap_or(0)
}

/// Packs the constant description of a legacy packet load into one argument of
/// [`rt_packet_load`]: pc in bits 0–31, opcode in bits 32–39, the rbpf flavour in bit 40.
pub(crate) fn pack_packet_load(pc: usize, opcode: u8, flavour: PacketLoads) -> i64 {
    let rbpf = u64::from(flavour == PacketLoads::Rbpf);
    ((pc as u64 & 0xffff_ffff) | (u64::from(opcode) << 32) | (rbpf << 40)) as i64
}

/// [`RunBlock::verdict`] after [`rt_packet_load`]: the value was loaded.
pub(crate) const PACKET_LOADED: u64 = 0;
/// [`RunBlock::verdict`] after [`rt_packet_load`]: a fault was recorded (rbpf flavour).
pub(crate) const PACKET_FAULT: u64 = 1;
/// [`RunBlock::verdict`] after [`rt_packet_load`]: out of the packet, the program ends with 0.
pub(crate) const PACKET_ABORT: u64 = 2;

/// A legacy packet load (`crate::exec::packet::load`, shared with the interpreter): returns
/// the value for r0 and writes the verdict into `block` ([`PACKET_LOADED`], [`PACKET_FAULT`]
/// after recording the fault, or [`PACKET_ABORT`]). `imm` is the instruction's immediate
/// (sign-extended) and `src` the IND register's value.
///
/// # Safety
/// `ctx` must be the context the calling code was compiled with (see [`vm_of`]) and `block`
/// must point to the run's [`RunBlock`], whose mem and stack are the run's live buffers.
pub(crate) unsafe extern "C" fn rt_packet_load(
    ctx: *const JitContext,
    packed: i64,
    imm: i64,
    src: u64,
    block: *mut RunBlock,
) -> u64 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from this function's contract.
        let machine = unsafe { machine_of(ctx) };
        // SAFETY: forwarded from this function's contract.
        let Some(run) = (unsafe { block.as_ref() }) else {
            return (0, PACKET_FAULT);
        };
        let packed = packed as u64;
        let pc = (packed & 0xffff_ffff) as usize;
        let opcode = (packed >> 32) as u8;
        let flavour = if packed >> 40 & 1 == 1 {
            PacketLoads::Rbpf
        } else {
            PacketLoads::Kernel
        };
        let regions = run_regions(machine, run);
        // SAFETY: the regions are this run's: its live mem and stack (this function's
        // contract) and the extra regions recorded for it.
        match unsafe { packet::load(&regions, flavour, opcode, imm as i32, src, pc) } {
            Ok(PacketLoad::Value(v)) => (v, PACKET_LOADED),
            Ok(PacketLoad::Abort) => (0, PACKET_ABORT),
            Err(err) => {
                record(ctx, machine, err);
                (0, PACKET_FAULT)
            }
        }
    }));
    // A panic (a bug) ends the run as a fault that nobody recorded: the code returns u64::MAX.
    let (value, verdict) = result.unwrap_or((0, PACKET_FAULT));
    // SAFETY: forwarded from this function's contract.
    if let Some(run) = unsafe { block.as_mut() } {
        run.verdict = verdict;
    }
    value
}

/// Slow path of a bounds check, called when the inline mem/stack test failed: runs the full
/// memory model and writes the verdict into `block` (0: allowed, 1: fault recorded).
///
/// # Safety
/// `ctx` must be the context the calling code was compiled with (see [`machine_of`]) and `block`
/// must point to the run's [`RunBlock`].
pub(crate) unsafe extern "C" fn rt_check_access(
    ctx: *const JitContext,
    packed: i64,
    block: *mut RunBlock,
) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from this function's contract.
        let machine = unsafe { machine_of(ctx) };
        // SAFETY: forwarded from this function's contract.
        let Some(run) = (unsafe { block.as_ref() }) else {
            return 1;
        };
        let packed = packed as u64;
        let pc = (packed & 0xffff_ffff) as usize;
        let size = ((packed >> 32) & 0xff) as usize;
        let access = if packed >> 40 & 1 == 1 {
            Access::Store
        } else {
            Access::Load
        };
        let off = (packed >> 48) as u16 as i16;
        let regions = run_regions(machine, run);
        match regions.check(run.base, off, size, access, pc) {
            Ok(_) => 0,
            Err(err) => {
                record(ctx, machine, err);
                1
            }
        }
    }));
    // A panic inside the bounds callback denies the access.
    let verdict = result.unwrap_or(1);
    // SAFETY: forwarded from this function's contract.
    if let Some(run) = unsafe { block.as_mut() } {
        run.verdict = verdict;
    }
}

/// [`rt_check_access`] behind a trampoline that preserves every general-purpose register, so
/// compiled code can call it with Cranelift's `preserve_all` convention and keep eBPF
/// registers in caller-saved registers across its bounds checks.
///
/// # Safety
/// As [`rt_check_access`]; must be called with the `preserve_all` convention (SysV argument
/// registers, no return value).
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn rt_check_access_preserving() {
    // Nine pushes and 256 bytes of vector registers keep the stack 16-byte aligned for the
    // call (at entry rsp = 8 mod 16). `preserve_all` callers assume vector registers survive
    // too, so save them although compiled eBPF code does not use them.
    std::arch::naked_asm!(
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "sub rsp, 256",
        "movdqu [rsp], xmm0",
        "movdqu [rsp + 16], xmm1",
        "movdqu [rsp + 32], xmm2",
        "movdqu [rsp + 48], xmm3",
        "movdqu [rsp + 64], xmm4",
        "movdqu [rsp + 80], xmm5",
        "movdqu [rsp + 96], xmm6",
        "movdqu [rsp + 112], xmm7",
        "movdqu [rsp + 128], xmm8",
        "movdqu [rsp + 144], xmm9",
        "movdqu [rsp + 160], xmm10",
        "movdqu [rsp + 176], xmm11",
        "movdqu [rsp + 192], xmm12",
        "movdqu [rsp + 208], xmm13",
        "movdqu [rsp + 224], xmm14",
        "movdqu [rsp + 240], xmm15",
        "call {check}",
        "movdqu xmm0, [rsp]",
        "movdqu xmm1, [rsp + 16]",
        "movdqu xmm2, [rsp + 32]",
        "movdqu xmm3, [rsp + 48]",
        "movdqu xmm4, [rsp + 64]",
        "movdqu xmm5, [rsp + 80]",
        "movdqu xmm6, [rsp + 96]",
        "movdqu xmm7, [rsp + 112]",
        "movdqu xmm8, [rsp + 128]",
        "movdqu xmm9, [rsp + 144]",
        "movdqu xmm10, [rsp + 160]",
        "movdqu xmm11, [rsp + 176]",
        "movdqu xmm12, [rsp + 192]",
        "movdqu xmm13, [rsp + 208]",
        "movdqu xmm14, [rsp + 224]",
        "movdqu xmm15, [rsp + 240]",
        "add rsp, 256",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "ret",
        check = sym rt_check_access,
    )
}

/// The address compiled code calls for the slow path of a bounds check: on x86-64 the
/// trampoline that preserves every register ([`rt_check_access_preserving`]), elsewhere
/// [`rt_check_access`] itself.
pub(crate) fn check_access_entry() -> u64 {
    #[cfg(target_arch = "x86_64")]
    let f = rt_check_access_preserving as *const () as u64;
    #[cfg(not(target_arch = "x86_64"))]
    let f = rt_check_access as *const () as u64;
    f
}

/// Records a fault detected inline by compiled code (see [`fault`] for the kinds). The code
/// returns `u64::MAX` right after.
///
/// # Safety
/// `ctx` must be the context the calling code was compiled with (see [`machine_of`]).
pub(crate) unsafe extern "C" fn rt_fault(ctx: *const JitContext, kind: i64, pc: u64, extra: u64) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from this function's contract.
        let machine = unsafe { machine_of(ctx) };
        let pc = pc as usize;
        let err = match kind {
            fault::INSTRUCTION_LIMIT => ExecError::InstructionLimit { pc },
            fault::CALL_DEPTH => ExecError::CallDepthExceeded {
                pc,
                depth: extra as usize,
                max: MAX_CALL_DEPTH,
            },
            fault::NONEXISTENT_HELPER => ExecError::NonexistentFunction { pc, index: extra },
            fault::INVALID_MEM => ExecError::InvalidBuffer {
                buffer: "mem",
                len: extra as usize,
            },
            fault::INVALID_STACK => ExecError::InvalidBuffer {
                buffer: "stack",
                len: extra as usize,
            },

            _ => ExecError::FellOffEnd { pc },
        };
        record(ctx, machine, err);
    }));
}

/// Calls helper `index` for code compiled with compact helper calls: through the dispatcher
/// when one is registered, else through the helper's slot (the code checked, before calling,
/// that one of them exists). `args` are r1..r5 and `mem` the run's memory pointer.
///
/// # Safety
/// `table` is the VM's boxed helper table, alive while its code runs; the registered
/// functions are trusted with these arguments, as for a direct call.
pub(crate) unsafe extern "C" fn rt_call_helper(
    r1: u64,
    r2: u64,
    r3: u64,
    r4: u64,
    r5: u64,
    index: u64,
    mem: *mut std::ffi::c_void,
    table: *const HelperTable,
) -> u64 {
    // SAFETY: guaranteed by the caller (the compiled code embeds the VM's table).
    let table = unsafe { &*table };
    // SAFETY: forwarded to the caller's contract. `None` cannot happen after the code's check.
    unsafe { table.call_from_compiled(index, [r1, r2, r3, r4, r5], mem) }.unwrap_or(0)
}

/// Publishes the run to helpers that act on the VM ([`crate::exec::current_run`]): called by
/// compiled code before a helper call with its context and its run block (null when the code
/// was compiled without bounds checks).
///
/// # Safety
/// `ctx` must be the context the calling code was compiled with; `block` null or the run's
/// [`RunBlock`].
pub(crate) unsafe extern "C" fn rt_publish_run(ctx: *const JitContext, block: *const RunBlock) {
    // SAFETY: forwarded from this function's contract.
    let Some(ctx) = (unsafe { ctx.as_ref() }) else {
        return;
    };
    let machine = ctx.machine.load(Ordering::Relaxed).cast_const();
    // SAFETY: forwarded from this function's contract.
    let (mem, stack) = match unsafe { block.as_ref() } {
        Some(b) => ((b.mem, b.mem_len), (b.stack, b.stack_len)),
        None => ((0, 0), (0, 0)),
    };
    crate::exec::current_run::publish_parts(machine, mem, stack);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        let p = pack_access(65535, 8, Access::Store, -4100) as u64;
        assert_eq!(p & 0xffff_ffff, 65535);
        assert_eq!((p >> 32) & 0xff, 8);
        assert_eq!(p >> 40 & 1, 1);
        assert_eq!((p >> 48) as u16 as i16, -4100);
        let p = pack_packet_load(70000, 0x58, PacketLoads::Rbpf) as u64;
        assert_eq!(
            (p & 0xffff_ffff, (p >> 32) as u8, p >> 40 & 1),
            (70000, 0x58, 1)
        );
        assert_eq!(pack_packet_load(1, 0x20, PacketLoads::Kernel) >> 40, 0);
    }
}
