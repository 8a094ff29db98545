//! The run that called the current helper: how helpers that act on the VM (the kernel's map,
//! ring-buffer and tail-call helpers in [`crate::kernel::helpers`]) learn which machine is
//! running and which memory the program may hand them.
//!
//! Helpers get only r1..r5 (and the run's `mem` pointer). So, on a VM whose maps ask for it
//! (`VmMaps::publish_runs`), both engines *publish the run* into a thread-local right before
//! every helper call: the interpreter with `publish`, compiled code through a runtime
//! function of the JIT that calls `publish_parts`. A helper reads it back with
//! `with_run` and checks every pointer argument with the same bounds model as loads
//! ([`Regions`]). A publication serves exactly one helper call; a helper called with nothing
//! published (from outside a run) gets `None`.

use std::cell::Cell;

use crate::exec::machine::Machine;
use crate::exec::memory::Regions;

/// What a helper needs to know about the run that called it.
#[derive(Debug, Clone, Copy)]
struct Run {
    machine: *const Machine,
    mem: u64,
    mem_len: u64,
    stack: u64,
    stack_len: u64,
}

thread_local! {
    /// The run that made the last helper call on this thread.
    static CURRENT: Cell<Option<Run>> = const { Cell::new(None) };
}

/// Records the run of `machine` over `regions` as the caller of the next helper (the
/// interpreter's side). Out of line: inlined, the address of the thread-local would be
/// computed (in a shared library: the TLS resolver called) when the interpreter's loop
/// starts, for every run, including runs of programs that call no helper.
#[inline(never)]
pub(crate) fn publish(machine: &Machine, regions: &Regions<'_>) {
    CURRENT.set(Some(Run {
        machine,
        mem: regions.mem_start,
        mem_len: regions.mem_len as u64,
        stack: regions.stack_start,
        stack_len: regions.stack_end - regions.stack_start,
    }));
}

/// Records a run from its parts (compiled code's side): the machine (null when the code's VM
/// is gone, which makes every helper fail as for a bad argument), mem and the stack.
#[inline]
pub(crate) fn publish_parts(
    machine: *const Machine,
    (mem, mem_len): (u64, u64),
    (stack, stack_len): (u64, u64),
) {
    CURRENT.set(Some(Run {
        machine,
        mem,
        mem_len,
        stack,
        stack_len,
    }));
}

/// Calls `f` with the machine and regions of the run that called the current helper. The
/// publication is consumed: each one serves exactly the helper call it was made for, so a
/// helper can never act on a run that has ended.
pub(crate) fn with_run<R>(f: impl FnOnce(&Machine, &Regions<'_>) -> R) -> Option<R> {
    let run = CURRENT.take()?;
    // SAFETY: the run was published by an engine right before calling this helper, on this
    // thread; the machine outlives its runs.
    let machine = unsafe { run.machine.as_ref() }?;
    let mem = run.mem as *const u8;
    let regions = Regions::of_loaded(
        machine,
        if run.mem == 0 { std::ptr::null() } else { mem },
        run.mem_len as usize,
        run.stack as *const u8,
        run.stack_len as usize,
    )?;
    Some(f(machine, &regions))
}
