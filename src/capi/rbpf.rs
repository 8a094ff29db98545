//! librbpf's own C functions (prefix `rbpf_`), declared in `include/rbpf.h`.

use std::ffi::c_char;

/// The library version, NUL-terminated.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// librbpf's version, such as "0.1.0".
///
/// Returns a static string (do not free it).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// Runs the code compiled by `ubpf_compile` / `ubpf_compile_ex` with `r1 = mem` and
/// `r2 = mem_len` (extended-mode code gets a fresh 4096-byte stack), with librbpf's JIT
/// safety: out-of-bounds accesses, the instruction limit and the call-depth limit (as
/// configured when the code was compiled) end the run with an error instead of crashing.
/// Errors are reported through the error printer, with the interpreter's messages.
///
/// Threads: several threads may run one compiled VM at once; helpers must be reentrant.
///
/// Returns 0 and writes r0 to `*bpf_return_value`; or -1, leaving `*bpf_return_value`
/// untouched, on a runtime error, when nothing is compiled, or when `vm` or
/// `bpf_return_value` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_exec_jit(
    vm: *const crate::capi::ubpf_vm,
    mem: *mut std::ffi::c_void,
    mem_len: usize,
    bpf_return_value: *mut u64,
) -> std::ffi::c_int {
    ffi_boundary!({
        let handle = try_vm!(vm);
        let ret = try_mut!(bpf_return_value);
        // SAFETY: `mem`/`mem_len` describe the caller's buffer (API contract); the JIT
        // allocates the stack itself.
        match unsafe {
            handle
                .vm
                .execute_jit_raw(mem.cast(), mem_len, std::ptr::null_mut(), 0)
        } {
            Ok(value) => {
                *ret = value;
                0
            }
            Err(_) => -1,
        }
    })
}
