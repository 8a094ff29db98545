//! Loading and unloading code, and the load-time callbacks: data relocation (ELF) and the
//! bounds callback (consulted at run time for accesses outside mem and the stack).

use std::ffi::{CString, c_char, c_int, c_void};

use crate::boundary::UserPtr;
use crate::types::{ubpf_bounds_check, ubpf_data_relocation, ubpf_safe_region};
use crate::{errmsg, ubpf_vm};
use rbpf::interpreter::{SafeRegion, SafeRegionKind};

/// Validates `code` (`code_len` bytes of raw little-endian eBPF bytecode) and makes it the
/// VM's program. The checks, their order and their messages are uBPF's (for example
/// "unknown opcode 0x8f at PC 0").
///
/// `*errmsg` is set to NULL first; on failure it receives a message the caller frees with
/// `free()`. `errmsg` itself may be NULL. A VM holds one program: unload it with
/// `ubpf_unload_code` before loading another.
///
/// Returns 0 on success, -1 on failure (including NULL `vm`, or NULL `code` with a non-zero
/// length).
// Wraps [`Vm::load`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_load(
    vm: *mut ubpf_vm,
    code: *const c_void,
    code_len: u32,
    errmsg: *mut *mut c_char,
) -> c_int {
    ffi_boundary!(errmsg; {
        errmsg::clear(errmsg);
        let handle = try_vm_mut!(vm, errmsg);
        let len = usize::try_from(code_len).unwrap_or(usize::MAX);
        let code = try_slice!(code, len, errmsg, "code");
        match handle.vm.load(code) {
            Ok(()) => 0,
            Err(err) => {
                errmsg::set(errmsg, &err);
                -1
            }
        }
    })
}

/// Drops the loaded program and any JIT-compiled code (function pointers from `ubpf_compile`
/// become invalid; buffers filled by `ubpf_copy_jit`/`ubpf_translate` keep working). Helpers,
/// callbacks and settings stay. Safe to call when nothing is loaded; NULL is ignored.
///
/// Called from a helper while this VM's program is running on the same thread, it refuses
/// (the run would return into freed code): it reports an error through the error printer
/// and leaves everything loaded.
// Wraps [`Vm::unload`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_unload_code(vm: *mut ubpf_vm) {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        if let Err(err) = handle.vm.unload() {
            handle.vm.print_error(&format!("ubpf_unload_code: {err}"));
        }
    })
}

/// Installs the callback that resolves ELF `R_BPF_64_64` data relocations, called as
/// `relocation(user_context, section_data, section_size, symbol_name, symbol_offset,
/// symbol_size)`; its result is what the relocated `lddw` loads. Like uBPF, it can be set
/// once: a later call fails even with NULL.
///
/// Returns 0, or -1 if a callback is already set or `vm` is NULL.
// Wraps [`Vm::set_data_relocation`] (and [`Vm::has_data_relocation`] for uBPF's
// set-once rule).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_register_data_relocation(
    vm: *mut ubpf_vm,
    user_context: *mut c_void,
    relocation: ubpf_data_relocation,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        if handle.vm.has_data_relocation() {
            return -1;
        }
        let Some(relocate) = relocation else {
            return 0;
        };
        let context = UserPtr(user_context);
        let callback = Box::new(move |data: &[u8], symbol: &str, offset: u64, size: u64| {
            let symbol = CString::new(symbol.replace('\0', "")).unwrap_or_default();
            let data_size = u64::try_from(data.len()).unwrap_or(u64::MAX);
            // SAFETY: the embedder's callback; `data` and `symbol` are valid for the call.
            unsafe {
                relocate(
                    context.get(),
                    data.as_ptr(),
                    data_size,
                    symbol.as_ptr(),
                    offset,
                    size,
                )
            }
        });
        match handle.vm.set_data_relocation(callback) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// Installs the callback that may accept a memory access outside `mem` and the stack, called
/// as `bounds_check(user_context, addr, size)` only after those two regions have refused the
/// access (and only while bounds checking is on). Like uBPF, it can be set once: a later call
/// fails even with NULL.
///
/// Returns 0, or -1 if a callback is already set or `vm` is NULL.
// Wraps [`Vm::set_bounds_check_fn`] (and [`Vm::has_bounds_check_fn`] for uBPF's set-once
// rule).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_register_data_bounds_check(
    vm: *mut ubpf_vm,
    user_context: *mut c_void,
    bounds_check: ubpf_bounds_check,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        if handle.vm.has_bounds_check_fn() {
            return -1;
        }
        let Some(check) = bounds_check else {
            return 0;
        };
        let context = UserPtr(user_context);
        let callback = Box::new(move |addr: u64, size: u64| {
            // SAFETY: the embedder's callback, called with its own context.
            unsafe { check(context.get(), addr, size) }
        });
        match handle.vm.set_bounds_check_fn(callback) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// Registers (or, for an id already registered, replaces) a host region that pointer or
/// handle results of safe helpers may point into; the safe interpreter allows loads, stores
/// and atomics there according to `permissions`.
///
/// Returns 0; or -1 if `vm` or `region` is NULL, the kind is unknown, the id is reserved
/// (0xFFFFFFFE, 0xFFFFFFFF), `size` is 0, `base` is NULL, `permissions` has unknown bits,
/// `base + size` wraps, or all 64 region slots are taken.
// Wraps [`Vm::register_safe_region`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_register_safe_region(
    vm: *mut ubpf_vm,
    region: *const ubpf_safe_region,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        // SAFETY: a non-NULL region points to a valid struct (API contract).
        let Some(region) = (unsafe { region.as_ref() }) else {
            return -1;
        };
        let kind = match region.kind {
            0 => SafeRegionKind::Pointer,
            1 => SafeRegionKind::Handle,
            _ => return -1,
        };
        let region = SafeRegion {
            id: region.id,
            base: region.base as u64,
            size: region.size,
            kind,
            permissions: region.permissions,
        };
        match handle.vm.register_safe_region(region) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}
