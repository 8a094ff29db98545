//! Real tail calls between the programs of one object (`docs/kernel-programs.md`, "Tail
//! calls").
//!
//! Every program of an object is its own VM, with `bpf_tail_call` registered at the kernel's
//! number 12 and made the VM's *unwind* helper (`Config::unwind_index`): when the helper
//! returns 0 both engines end the run at once, from any call depth, with r0 = 0. The helper
//! returns 0 only after it has *recorded* the target program in this thread's run driver
//! (`run_chain`, used by
//! [`ObjectProgram::run`](super::ObjectProgram::run)); the driver then runs the target with the same context on a fresh stack,
//! so the caller's frame is gone and stacks never nest. Up to [`MAX_TAIL_CALLS`] tail calls
//! succeed in one run, as in the kernel; the next one fails and the program goes on after the
//! call with a negative error in r0, as after a call whose `PROG_ARRAY` entry is empty.
//!
//! Outside a driver (a host calling `ubpf_exec` on one program's VM) there is nobody to run
//! the target: every tail call fails as for an empty entry.

use std::cell::Cell;
use std::ffi::c_void;

use crate::error::ExecError;
use crate::exec::current_run::with_run;
use crate::exec::machine::Machine;
use crate::exec::maps::Map;
use crate::kernel::helpers::neg;
use crate::vm::Vm;

/// The kernel's `MAX_TAIL_CALL_CNT`: tail calls one run may make.
pub const MAX_TAIL_CALLS: u32 = 33;

/// The kernel's number of `bpf_tail_call`.
pub(crate) const BPF_TAIL_CALL: u32 = 12;

/// What the driver running on this thread tells the helper, and what the helper records.
#[derive(Clone, Copy)]
struct Driver {
    /// The machine of the program running now (a tail call from any other run fails).
    machine: *const Machine,
    /// Which program numbers have a loaded VM (`loaded[number]`), valid during the run.
    loaded: *const bool,
    /// Length of `loaded`.
    loaded_len: usize,
    /// Tail calls made so far in this run.
    count: u32,
    /// The program the last successful `bpf_tail_call` chose.
    target: Option<u32>,
}

thread_local! {
    /// The innermost run driver on this thread (a helper may start another run).
    static DRIVER: Cell<Option<Driver>> = const { Cell::new(None) };
}

/// `long bpf_tail_call(void *ctx, void *prog_array, __u32 index)` (12): 0 after recording
/// the target (the unwind then ends the caller); `-EINVAL` when `prog_array` is not one of
/// the running program's program arrays; `-ENOENT` for an empty entry, an index out of range,
/// a program that did not load, or no driver; `-E2BIG` after [`MAX_TAIL_CALLS`] tail calls.
pub(crate) unsafe extern "C" fn bpf_tail_call(
    _ctx: u64,
    map: u64,
    index: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    let found = with_run(|machine, _| {
        let array = machine.maps.maps.by_handle(map).and_then(Map::prog_array)?;
        let entry = u32::try_from(index).ok().and_then(|i| array.get(i));
        Some((core::ptr::from_ref(machine), entry))
    })
    .flatten();
    let Some((machine, entry)) = found else {
        return neg(libc::EINVAL);
    };
    let Some(target) = entry else {
        return neg(libc::ENOENT);
    };
    DRIVER.with(|cell| {
        let Some(mut driver) = cell.get() else {
            return neg(libc::ENOENT);
        };
        if !core::ptr::eq(driver.machine, machine) {
            return neg(libc::ENOENT);
        }
        if driver.count >= MAX_TAIL_CALLS {
            return neg(libc::E2BIG);
        }
        let loaded = usize::try_from(target)
            .ok()
            .filter(|&t| t < driver.loaded_len)
            .is_some_and(|t| {
                // SAFETY: `loaded` points to `loaded_len` flags that the driver keeps alive
                // for the whole run, and `t` is below that length.
                let flag = unsafe { driver.loaded.add(t) };
                // SAFETY: as above: `flag` is one of those flags.
                unsafe { *flag }
            });
        if !loaded {
            return neg(libc::ENOENT);
        }
        driver.target = Some(target);
        cell.set(Some(driver));
        0
    })
}

/// Puts the previous driver back when a run ends, also by unwinding.
struct Restore(Option<Driver>);

impl Drop for Restore {
    fn drop(&mut self) {
        DRIVER.set(self.0);
    }
}

/// Runs program `first` and the chain of programs its tail calls choose: `vm_of(n)` is
/// program `n`'s VM (`None` when it did not load), `loaded[n]` says whether it has one, and
/// `exec` runs one VM over the context (the same for every program of the chain, each on a
/// fresh stack). The result is the last program's, or the first error.
pub(crate) fn run_chain<'v>(
    vm_of: &dyn Fn(usize) -> Option<&'v Vm>,
    loaded: &[bool],
    first: usize,
    mut exec: impl FnMut(&Vm) -> Result<u64, ExecError>,
) -> Result<u64, ExecError> {
    let mut current = vm_of(first).ok_or(ExecError::NotLoaded)?;
    let mut driver = Driver {
        machine: core::ptr::null(),
        loaded: loaded.as_ptr(),
        loaded_len: loaded.len(),
        count: 0,
        target: None,
    };
    let _restore = Restore(DRIVER.get());
    loop {
        driver.machine = &current.machine;
        driver.target = None;
        DRIVER.set(Some(driver));
        let result = exec(current)?;
        let Some(after) = DRIVER.get() else {
            return Ok(result);
        };
        driver = after;
        let Some(next) = driver.target.and_then(|t| vm_of(usize::try_from(t).ok()?)) else {
            return Ok(result);
        };
        driver.count = driver.count.saturating_add(1);
        current = next;
    }
}
