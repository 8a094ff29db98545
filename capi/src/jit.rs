//! The JIT entry points: `ubpf_compile(_ex)`, `ubpf_translate(_ex)`, `ubpf_copy_jit` and
//! `ubpf_set_jit_code_size`.

use std::ffi::{c_char, c_int, c_void};

use crate::boundary::slice_from_mut;
use crate::types::{JitMode, JitModeArg, ubpf_jit_ex_fn, ubpf_jit_fn};
use crate::{errmsg, ubpf_vm};
use rbpf::jit::JitMode as EngineMode;

impl From<JitMode> for EngineMode {
    fn from(mode: JitMode) -> Self {
        match mode {
            JitMode::BasicJitMode => EngineMode::Basic,
            JitMode::ExtendedJitMode => EngineMode::Extended,
        }
    }
}

/// The engine's mode for a C `enum JitMode`, or an "invalid JIT mode" message in `*errmsg`.
fn engine_mode(jit_mode: JitModeArg, errmsg: *mut *mut c_char) -> Option<EngineMode> {
    match JitMode::try_from(jit_mode) {
        Ok(mode) => Some(mode.into()),
        Err(value) => {
            errmsg::set(errmsg, &format_args!("invalid JIT mode {value}"));
            None
        }
    }
}

/// Compiles the loaded program in basic mode (`ubpf_compile_ex(vm, errmsg, BasicJitMode)`).
///
/// Unlike uBPF's JIT, compiled code checks memory accesses, the instruction limit and the
/// call depth as the interpreter does (with the settings in force when it was compiled). A
/// fault is reported through the error printer and the function returns `UINT64_MAX`;
/// `rbpf_exec_jit` tells faults from results.
///
/// Returns the compiled function (owned by the VM: valid until `ubpf_unload_code`,
/// `ubpf_destroy` or a compile in the other mode), or NULL with a message in `*errmsg` that
/// the caller frees with `free()`.
// Wraps [`Vm::compile`] in basic mode (through `ubpf_compile_ex`).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_compile(vm: *mut ubpf_vm, errmsg: *mut *mut c_char) -> ubpf_jit_fn {
    let compiled = ubpf_compile_ex(vm, errmsg, JitMode::BasicJitMode as JitModeArg);
    // SAFETY: in basic mode the compiled entry point has the `ubpf_jit_fn` signature; the
    // two pointer types differ only in the parameters the caller passes.
    compiled.map(|f| unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, usize, *mut u8, usize) -> u64,
            unsafe extern "C" fn(*mut c_void, usize) -> u64,
        >(f)
    })
}

/// Compiles the loaded program in `jit_mode`. A program already compiled in that mode is
/// returned again without touching `*errmsg`; otherwise `*errmsg` is set to NULL first and to
/// a message (freed by the caller with `free()`) on failure. Compiling in the other mode
/// frees the earlier code.
///
/// Returns the compiled function (for `BasicJitMode`, cast it to `ubpf_jit_fn`), or NULL.
// Wraps [`Vm::compile`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_compile_ex(
    vm: *mut ubpf_vm,
    errmsg: *mut *mut c_char,
    jit_mode: JitModeArg,
) -> ubpf_jit_ex_fn {
    ffi_boundary!(errmsg; {
        let handle = try_vm_mut!(vm, errmsg);
        let mode = engine_mode(jit_mode, errmsg)?;
        // uBPF leaves `*errmsg` alone when it returns the cached code.
        if handle.vm.jit_mode() != Some(mode) {
            errmsg::clear(errmsg);
        }
        match handle.vm.compile(mode) {
            // SAFETY: compiled code has the C signature of its mode; uBPF also returns
            // basic-mode code through this type, and `ubpf_compile` casts it back.
            Ok(code) => Some(unsafe {
                std::mem::transmute::<
                    *const u8,
                    unsafe extern "C" fn(*mut c_void, usize, *mut u8, usize) -> u64,
                >(code)
            }),
            Err(err) => {
                errmsg::set(errmsg, &err);
                None
            }
        }
    })
}

/// Copies the code compiled by `ubpf_compile` into `buffer` (`size` bytes). The copy is
/// position independent; the caller makes it executable and owns it.
///
/// Returns `buffer` as a `ubpf_jit_fn` and sets `*errmsg` to NULL, or returns NULL with a
/// message in `*errmsg` (freed by the caller with `free()`).
// Wraps [`Vm::copy_jit`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_copy_jit(
    vm: *mut ubpf_vm,
    buffer: *mut c_void,
    size: usize,
    errmsg: *mut *mut c_char,
) -> ubpf_jit_fn {
    ffi_boundary!(errmsg; {
        let handle = try_vm_mut!(vm, errmsg);
        let Some(dest) = slice_from_mut(buffer.cast::<u8>(), size) else {
            errmsg::set(errmsg, &"invalid argument: buffer is NULL");
            return None;
        };
        match handle.vm.copy_jit(dest) {
            Ok(()) => {
                errmsg::clear(errmsg);
                // SAFETY: `buffer` is non-NULL here (a zero-sized buffer cannot hold code,
                // so `copy_jit` failed above); the caller makes it executable before calling.
                Some(unsafe {
                    std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void, usize) -> u64>(
                        buffer,
                    )
                })
            }
            Err(err) => {
                errmsg::set(errmsg, &err);
                None
            }
        }
    })
}

/// Translates the loaded program to basic-mode machine code in `buffer`
/// (`ubpf_translate_ex(vm, buffer, size, errmsg, BasicJitMode)`).
///
/// Returns as `ubpf_translate_ex`.
// Wraps [`Vm::translate`] in basic mode (through `ubpf_translate_ex`).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_translate(
    vm: *mut ubpf_vm,
    buffer: *mut u8,
    size: *mut usize,
    errmsg: *mut *mut c_char,
) -> c_int {
    ubpf_translate_ex(
        vm,
        buffer,
        size,
        errmsg,
        JitMode::BasicJitMode as JitModeArg,
    )
}

/// Translates the loaded program to position-independent machine code in `buffer`. On input
/// `*size` is the buffer's capacity; on success it is the number of bytes written. The
/// caller makes the buffer executable. `*errmsg` is written only on failure (freed by the
/// caller with `free()`).
///
/// Returns 0 on success, -1 on failure.
// Wraps [`Vm::translate`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_translate_ex(
    vm: *mut ubpf_vm,
    buffer: *mut u8,
    size: *mut usize,
    errmsg: *mut *mut c_char,
    jit_mode: JitModeArg,
) -> c_int {
    ffi_boundary!(errmsg; {
        let handle = try_vm_mut!(vm, errmsg);
        let capacity = try_mut!(size, errmsg, "size");
        let Some(mode) = engine_mode(jit_mode, errmsg) else {
            return -1;
        };
        let Some(dest) = slice_from_mut(buffer, *capacity) else {
            errmsg::set(errmsg, &"invalid argument: buffer is NULL");
            return -1;
        };
        match handle.vm.translate(mode, dest) {
            Ok(written) => {
                *capacity = written;
                0
            }
            Err(err) => {
                errmsg::set(errmsg, &err);
                -1
            }
        }
    })
}

/// Sets the largest machine-code size the JIT may produce (default 65536 bytes); compiling
/// a bigger program fails with "Target buffer too small".
///
/// Returns 0 (-1 if `vm` is NULL).
// Wraps [`Vm::config_mut`] (`Config::jit_code_size`).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_set_jit_code_size(vm: *mut ubpf_vm, code_size: usize) -> c_int {
    ffi_boundary!({
        try_vm_mut!(vm).vm.config_mut().jit_code_size = code_size;
        0
    })
}
