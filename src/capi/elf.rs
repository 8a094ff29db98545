//! The ELF loader entry points (declared in the header only under `UBPF_HAS_ELF_H`, which
//! librbpf's `ubpf_config.h` defines).

use std::ffi::{c_char, c_int, c_void};

use crate::capi::{errmsg, ubpf_vm};

/// The message of both entry points until the ELF loader is part of the build.
const ELF_UNAVAILABLE: &str = "ELF loading is not available in this build yet";

/// Loads the program of an ELF relocatable object (`ubpf_load_elf_ex` with no entry name:
/// the function at offset 0 of `.text` is the entry point).
///
/// Returns as `ubpf_load_elf_ex`.
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
        let _handle = try_vm_mut!(vm, errmsg);
        let _bytes = try_slice!(elf, elf_len, errmsg, "elf");
        let _ = main_section_name;
        errmsg::set(errmsg, &ELF_UNAVAILABLE);
        -1
    })
}
