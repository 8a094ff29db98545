//! Running the loaded program in the interpreter: `ubpf_exec` and `ubpf_exec_ex`.

use std::ffi::{c_int, c_void};
use std::sync::atomic::Ordering;

use crate::ubpf_vm;

/// Records that the VM has run (some settings are refused afterwards). Written only the first
/// time: threads that run one VM at once then only read the flag, and do not pull its cache
/// line back and forth on every call.
#[inline(always)]
fn mark_started(handle: &ubpf_vm) {
    if !handle.execution_started.load(Ordering::Relaxed) {
        handle.execution_started.store(true, Ordering::Relaxed);
    }
}

/// Runs the loaded program in the interpreter with `r1 = mem`, `r2 = mem_len` and 4096 bytes
/// of stack that read 0 until the program writes them. `mem` may be NULL (with any length;
/// accesses through it then fail); a non-NULL `mem` whose end would pass the end of the
/// address space (such as a length of `SIZE_MAX`) is refused with a runtime error.
/// Runtime errors (out-of-bounds access, instruction limit, call depth…) are reported through
/// the error printer (see `ubpf_set_error_print`).
///
/// Threads: several threads may run one loaded VM at once; helpers must be reentrant.
///
/// Returns 0 and writes r0 to `*bpf_return_value` on success; returns -1 and leaves
/// `*bpf_return_value` untouched on failure (also when nothing is loaded, or `vm` or
/// `bpf_return_value` is NULL).
// Wraps [`Vm::execute_on_own_stack`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_exec(
    vm: *const ubpf_vm,
    mem: *mut c_void,
    mem_len: usize,
    bpf_return_value: *mut u64,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm!(vm);
        let ret = try_mut!(bpf_return_value);
        mark_started(handle);
        // SAFETY: `mem`/`mem_len` describe the caller's buffer (API contract).
        match unsafe { handle.vm.execute_on_own_stack(mem.cast(), mem_len) } {
            Ok(value) => {
                *ret = value;
                0
            }
            Err(_) => -1,
        }
    })
}

/// Runs the loaded program like `ubpf_exec`, on the caller's stack: `r10 = stack +
/// stack_len` (the stack grows down). The stack is used as given (not cleared). A `mem` or
/// `stack` whose end would pass the end of the address space is refused with a runtime error.
///
/// Returns as `ubpf_exec`; also -1 if `stack` is NULL.
// Wraps [`Vm::execute_raw`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_exec_ex(
    vm: *const ubpf_vm,
    mem: *mut c_void,
    mem_len: usize,
    bpf_return_value: *mut u64,
    stack: *mut u8,
    stack_len: usize,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm!(vm);
        let ret = try_mut!(bpf_return_value);
        if stack.is_null() {
            return -1;
        }
        mark_started(handle);
        // SAFETY: `mem`/`mem_len` and `stack`/`stack_len` describe the caller's buffers (API
        // contract), which it does not touch during the run.
        match unsafe { handle.vm.execute_raw(mem.cast(), mem_len, stack, stack_len) } {
            Ok(value) => {
                *ret = value;
                0
            }
            Err(_) => -1,
        }
    })
}
