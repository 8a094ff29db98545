//! The ELF loader entry points (declared in the header only under `UBPF_HAS_ELF_H`, which
//! librbpf's `ubpf_config.h` defines).

use std::ffi::{CStr, c_char, c_int, c_void};

use crate::{errmsg, ubpf_vm};

/// Loads the program of an ELF relocatable object (`ubpf_load_elf_ex` with no entry name:
/// the function at offset 0 of `.text` is the entry point).
///
/// Returns as `ubpf_load_elf_ex`.
// Wraps [`Vm::load_elf`] (through `ubpf_load_elf_ex`, with no entry name).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_load_elf(
    vm: *mut ubpf_vm,
    elf: *const c_void,
    elf_len: usize,
    errmsg: *mut *mut c_char,
) -> c_int {
    ubpf_load_elf_ex(vm, elf, elf_len, std::ptr::null(), errmsg)
}

/// Loads the program of an ELF relocatable object (EM_BPF or EM_NONE, 64-bit little-endian):
/// links every function of its executable sections with `main_section_name` (despite uBPF's
/// parameter name, the name of the entry *function* symbol) first, applies relocations
/// (helpers by registered name, data through `ubpf_register_data_relocation`), then validates
/// the result as `ubpf_load` does.
///
/// Returns 0 on success; -1 on failure with a message in `*errmsg` (freed by the caller with
/// `free()`).
// Wraps [`Vm::load_elf`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_load_elf_ex(
    vm: *mut ubpf_vm,
    elf: *const c_void,
    elf_len: usize,
    main_section_name: *const c_char,
    errmsg: *mut *mut c_char,
) -> c_int {
    ffi_boundary!(errmsg; {
        errmsg::clear(errmsg);
        let handle = try_vm_mut!(vm, errmsg);
        let bytes = try_slice!(elf, elf_len, errmsg, "elf");
        let entry = if main_section_name.is_null() {
            None
        } else {
            // SAFETY: a non-NULL name is a NUL-terminated string (API contract).
            Some(unsafe { CStr::from_ptr(main_section_name) }.to_string_lossy())
        };
        // ELF-level errors and the final ubpf_load's errors both end up in *errmsg (docs/c-api.md, "Error messages");
        // unknown relocation types are skipped with a warning through the error printer.
        match handle.vm.load_elf(bytes, entry.as_deref()) {
            Ok(()) => 0,
            Err(err) => {
                errmsg::set(errmsg, &err);
                -1
            }
        }
    })
}
