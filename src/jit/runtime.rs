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
use crate::isa::{MAX_CALL_DEPTH, op};
use crate::memory::Regions;
use crate::vm::Vm;

thread_local! {
    /// The fault recorded by the current run on this thread.
    static FAULT: RefCell<Option<ExecError>> = const { RefCell::new(None) };
    /// Whether a [`Vm::execute_jit`] call on this thread will collect and report the fault.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

/// Prepares this thread for a run: clears the fault slot and returns the previous arming
/// state, to be given back to [`disarm`].
pub(crate) fn arm() -> bool {
    FAULT.with(|f| f.borrow_mut().take());
    ARMED.with(|a| a.replace(true))
}

/// Ends a run started with [`arm`]: returns the fault it recorded, if any.
pub(crate) fn disarm(previous: bool) -> Option<ExecError> {
    ARMED.with(|a| a.set(previous));
    FAULT.with(|f| f.borrow_mut().take())
}

/// Records `err`, or reports it at once when nobody armed the slot (code called directly
/// through a function pointer from C has no other way to show the error).
fn record(vm: Option<&Vm>, err: ExecError) {
    if ARMED.with(Cell::get) {
        FAULT.with(|f| *f.borrow_mut() = Some(err));
    } else if let Some(vm) = vm {
        vm.report(&err);
    }
}

/// The VM a context belongs to.
///
/// # Safety
/// `ctx` must be null or point to a live `JitContext` whose VM pointer is valid (the compiled
/// code's owner guarantees both while the code may run).
unsafe fn vm_of<'a>(ctx: *const JitContext) -> Option<&'a Vm> {
    // SAFETY: guaranteed by the caller.
    let ctx = unsafe { ctx.as_ref() }?;
    let vm = ctx.vm.load(Ordering::Relaxed);
    // SAFETY: guaranteed by the caller.
    unsafe { vm.cast_const().as_ref() }
}

/// Packs the constant description of an access into one argument of [`rt_check_access`].
pub(crate) fn pack_access(pc: usize, size: usize, access: Access) -> i64 {
    let store = u64::from(access == Access::Store);
    ((pc as u64) | ((size as u64) << 32) | (store << 40)) as i64
}

/// Slow path of a bounds check, called when the inline mem/stack test failed. `args` points
/// to five words written by the code: the base register's value, then mem, mem_len, stack
/// and stack_len of this run. Returns 0 when the access is allowed, 1 after recording the
/// fault.
///
/// # Safety
/// `ctx` must be the context the calling code was compiled with (see [`vm_of`]); `args` must
/// be valid for reading five `u64`.
pub(crate) unsafe extern "C" fn rt_check_access(
    ctx: *const JitContext,
    packed: i64,
    off: i64,
    args: *const u64,
) -> u64 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from this function's contract.
        let vm = unsafe { vm_of(ctx) };
        // SAFETY: forwarded from this function's contract; the slot is 8-byte aligned.
        let [base, mem, mem_len, stack, stack_len] = unsafe { args.cast::<[u64; 5]>().read() };
        let packed = packed as u64;
        let pc = (packed & 0xffff_ffff) as usize;
        let size = ((packed >> 32) & 0xff) as usize;
        let access = if packed >> 40 & 1 == 1 {
            Access::Store
        } else {
            Access::Load
        };
        let Some(program) = vm.and_then(|vm| vm.program.as_ref().map(|p| (vm, p))) else {
            return 1;
        };
        let (vm, program) = program;
        let regions = Regions::new(
            vm,
            program,
            mem as *const u8,
            mem_len as usize,
            stack as *const u8,
            stack_len as usize,
        );
        match regions.check(base, off as i16, size, access, pc) {
            Ok(_) => 0,
            Err(err) => {
                record(Some(vm), err);
                1
            }
        }
    }));
    // A panic inside the bounds callback denies the access.
    result.unwrap_or(1)
}

/// The slot that the `n`-th instruction (0-based, `lddw` counting once) from `start` occupies.
fn nth_slot(vm: Option<&Vm>, start: usize, n: u64) -> usize {
    let Some(program) = vm.and_then(|vm| vm.program.as_ref()) else {
        return start;
    };
    let mut pc = start;
    for _ in 0..n {
        match program.insns.get(pc) {
            Some(insn) if insn.opc == op::LDDW => pc += 2,
            Some(_) => pc += 1,
            None => break,
        }
    }
    pc
}

/// Records a fault detected inline by compiled code (see [`fault`] for the kinds). The code
/// returns `u64::MAX` right after.
///
/// # Safety
/// `ctx` must be the context the calling code was compiled with (see [`vm_of`]).
pub(crate) unsafe extern "C" fn rt_fault(ctx: *const JitContext, kind: i64, pc: u64, extra: u64) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: forwarded from this function's contract.
        let vm = unsafe { vm_of(ctx) };
        let pc = pc as usize;
        let err = match kind {
            fault::INSTRUCTION_LIMIT => ExecError::InstructionLimit {
                // A negative count (limits above i32::MAX, as in uBPF) fails at once.
                pc: nth_slot(vm, pc, (extra as i64).max(0) as u64),
            },
            fault::CALL_DEPTH => ExecError::CallDepthExceeded {
                pc,
                depth: extra as usize,
                max: MAX_CALL_DEPTH,
            },
            fault::NONEXISTENT_HELPER => ExecError::NonexistentFunction { pc, index: extra },
            _ => ExecError::FellOffEnd { pc },
        };
        record(vm, err);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        let p = pack_access(65535, 8, Access::Store) as u64;
        assert_eq!(p & 0xffff_ffff, 65535);
        assert_eq!((p >> 32) & 0xff, 8);
        assert_eq!(p >> 40 & 1, 1);
    }
}
