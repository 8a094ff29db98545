//! librbpf's map functions (declared in `include/rbpf.h`): the kernel helpers, and host access
//! to the maps a loaded ELF object declared (`docs/maps.md`). Return values follow libbpf: 0
//! or a negative errno.

use std::ffi::{CStr, c_char, c_int, c_void};

use crate::ubpf_vm;
use rbpf::exec::maps::{Map, MapError};

/// A map of a VM's loaded program. Valid until `ubpf_unload_code`, the next load or
/// `ubpf_destroy` on its VM.
pub struct rbpf_map {
    _opaque: [u8; 0],
}

/// The map behind a handle (`None` for NULL).
fn map_ref<'a>(map: *const rbpf_map) -> Option<&'a Map> {
    // SAFETY: a non-NULL handle comes from `rbpf_map_by_name` and its map lives as long as the
    // VM's loaded code (API contract).
    unsafe { map.cast::<Map>().as_ref() }
}

fn neg(e: MapError) -> c_int {
    -e.errno()
}

const EINVAL: c_int = -libc::EINVAL;

/// `len` bytes at `ptr` (NULL only when `len` is 0).
fn bytes<'a>(ptr: *const c_void, len: usize) -> Option<&'a [u8]> {
    crate::boundary::slice_from(ptr.cast::<u8>(), len)
}

fn bytes_mut<'a>(ptr: *mut c_void, len: usize) -> Option<&'a mut [u8]> {
    crate::boundary::slice_from_mut(ptr.cast::<u8>(), len)
}

/// Registers the Linux kernel helpers librbpf implements at the kernel's numbers, with
/// libbpf's prototypes (`bpf_helper_defs.h`): `bpf_map_lookup_elem` (1),
/// `bpf_map_update_elem` (2), `bpf_map_delete_elem` (3), `bpf_ktime_get_ns` (5),
/// `bpf_trace_printk` (6, printed through the error printer), `bpf_get_prandom_u32` (7),
/// `bpf_get_smp_processor_id` (8), `bpf_ktime_get_boot_ns` (125), `bpf_ringbuf_output`
/// (130), `bpf_ringbuf_reserve` (131), `bpf_ringbuf_submit` (132), `bpf_ringbuf_discard`
/// (133), `bpf_strncmp` (182), and `bpf_loop` (181) and `bpf_tail_call` (12), which
/// `ubpf_load_elf` links into the program (see docs/maps.md). Call before
/// loading; a helper registered afterwards with `ubpf_register` at the same index replaces one
/// of these. With them registered, `ubpf_load_elf` takes the first function starting a
/// section other than `.text` as the entry (libbpf-style objects; see docs/maps.md).
///
/// Returns 0, or -1 for a NULL `vm`.
// Wraps [`Vm::register_linux_helpers`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_register_linux_helpers(vm: *mut ubpf_vm) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        match handle.vm.register_linux_helpers() {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// The number under which the program `name` (a function starting a section other than
/// `.text`) of the object loaded into `vm` goes into a `PROG_ARRAY` map, as the value, for
/// `bpf_tail_call`. Objects number their programs only when they make tail calls and were
/// loaded after `rbpf_register_linux_helpers`.
///
/// Returns the number (0 or more), or -ENOENT (no such program), or -EINVAL (NULL argument).
// Wraps [`Vm::program_number`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_program_number(vm: *const ubpf_vm, name: *const c_char) -> c_int {
    ffi_boundary!({
        let Some(handle) = crate::boundary::vm_ref(vm) else {
            return EINVAL;
        };
        if name.is_null() {
            return EINVAL;
        }
        // SAFETY: a non-NULL name is a NUL-terminated string (API contract).
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
        match handle.vm.program_number(&name) {
            Some(n) => c_int::try_from(n).unwrap_or(EINVAL),
            None => -libc::ENOENT,
        }
    })
}

/// The map called `name` (its symbol) in the object loaded into `vm`.
///
/// Returns the map (owned by the VM), or NULL when there is none or an argument is NULL.
// Wraps [`Vm::map`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_by_name(vm: *mut ubpf_vm, name: *const c_char) -> *mut rbpf_map {
    ffi_boundary!({
        let handle = try_vm!(vm);
        if name.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: a non-NULL name is a NUL-terminated string (API contract).
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
        handle.vm.map(&name).map_or(std::ptr::null_mut(), |m| {
            std::sync::Arc::as_ptr(m).cast_mut().cast()
        })
    })
}

/// Copies the value of `key` (`key_size` bytes) into `value`: `value_size` bytes, or for
/// per-CPU maps `rbpf_map_value_slots(map)` values each rounded up to 8 bytes.
///
/// Returns 0, -ENOENT if the key is absent, -EINVAL for a NULL argument or a map without
/// lookups (ring buffer).
// Wraps [`Map::lookup`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_lookup_elem(
    map: *mut rbpf_map,
    key: *const c_void,
    value: *mut c_void,
) -> c_int {
    ffi_boundary!({
        let Some(m) = map_ref(map) else { return EINVAL };
        let (Some(key), Some(value)) = (
            bytes(key, m.def().key_size as usize),
            bytes_mut(value, m.host_value_size()),
        ) else {
            return EINVAL;
        };
        m.lookup(key, value).map_or_else(neg, |()| 0)
    })
}

/// Stores `value` (laid out as for `rbpf_map_lookup_elem`) for `key`. `flags`: `BPF_ANY` (0),
/// `BPF_NOEXIST` (1) or `BPF_EXIST` (2), with the kernel's semantics.
///
/// Returns 0, -EEXIST, -ENOENT, -E2BIG (map full, or array index out of range) or -EINVAL.
// Wraps [`Map::update`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_update_elem(
    map: *mut rbpf_map,
    key: *const c_void,
    value: *const c_void,
    flags: u64,
) -> c_int {
    ffi_boundary!({
        let Some(m) = map_ref(map) else { return EINVAL };
        let (Some(key), Some(value)) = (
            bytes(key, m.def().key_size as usize),
            bytes(value, m.host_value_size()),
        ) else {
            return EINVAL;
        };
        m.update(key, value, flags).map_or_else(neg, |()| 0)
    })
}

/// Deletes `key`.
///
/// Returns 0, -ENOENT if absent, -EINVAL for arrays (their elements cannot be deleted) or a
/// NULL argument.
// Wraps [`Map::delete`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_delete_elem(map: *mut rbpf_map, key: *const c_void) -> c_int {
    ffi_boundary!({
        let Some(m) = map_ref(map) else { return EINVAL };
        let Some(key) = bytes(key, m.def().key_size as usize) else {
            return EINVAL;
        };
        m.delete(key).map_or_else(neg, |()| 0)
    })
}

/// Writes the key after `key` into `next_key`; with `key` NULL (or absent from the map), the
/// first key. Safe to call while programs change the map: every key present throughout the
/// iteration is visited once.
///
/// Returns 0, -ENOENT after the last key, or -EINVAL.
// Wraps [`Map::next_key`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_get_next_key(
    map: *mut rbpf_map,
    key: *const c_void,
    next_key: *mut c_void,
) -> c_int {
    ffi_boundary!({
        let Some(m) = map_ref(map) else { return EINVAL };
        let size = m.def().key_size as usize;
        let Some(next) = bytes_mut(next_key, size) else {
            return EINVAL;
        };
        let key = if key.is_null() {
            None
        } else {
            bytes(key, size)
        };
        m.next_key(key, next).map_or_else(neg, |()| 0)
    })
}

/// The map's definition: kernel type number, key and value sizes, capacity. Any output
/// pointer may be NULL.
///
/// Returns 0, or -EINVAL for a NULL map.
// Wraps [`Map::def`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_info(
    map: *const rbpf_map,
    r#type: *mut u32,
    key_size: *mut u32,
    value_size: *mut u32,
    max_entries: *mut u32,
) -> c_int {
    ffi_boundary!({
        let Some(m) = map_ref(map) else { return EINVAL };
        let d = m.def();
        for (out, v) in [
            (r#type, d.map_type),
            (key_size, d.key_size),
            (value_size, d.value_size),
            (max_entries, d.max_entries),
        ] {
            // SAFETY: C passes NULL or a valid pointer (API contract).
            if let Some(out) = unsafe { out.as_mut() } {
                *out = v;
            }
        }
        0
    })
}

/// How many values a lookup or update buffer holds per element: 1, or for per-CPU maps the
/// number of per-CPU slots (each value then takes `value_size` rounded up to 8 bytes).
///
/// Returns the count, or -EINVAL for a NULL map.
// Wraps [`Map::value_slots`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_value_slots(map: *const rbpf_map) -> c_int {
    ffi_boundary!({
        let Some(m) = map_ref(map) else { return EINVAL };
        c_int::try_from(m.value_slots()).unwrap_or(EINVAL)
    })
}

/// Calls `cb(ctx, data, size)` for each record submitted to the ring buffer `map`, in order,
/// and frees their space. A negative return from `cb` stops after that record.
///
/// Returns the number of records passed to `cb`, the negative value `cb` returned, -EBUSY if
/// another thread is consuming, or -EINVAL (not a ring buffer, NULL `map` or `cb`).
// Wraps [`Map::ringbuf`] and `RingBuf::consume`.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_ringbuf_consume(
    map: *mut rbpf_map,
    cb: Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const c_void, size: usize) -> c_int>,
    ctx: *mut c_void,
) -> c_int {
    ffi_boundary!({
        let (Some(rb), Some(cb)) = (map_ref(map).and_then(Map::ringbuf), cb) else {
            return EINVAL;
        };
        // SAFETY: the callback is the caller's function, called with its own context and a
        // record that stays valid for the call.
        let result = rb.consume(|data| unsafe { cb(ctx, data.as_ptr().cast(), data.len()) });
        match result {
            Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
            Err(e) => neg(e),
        }
    })
}
