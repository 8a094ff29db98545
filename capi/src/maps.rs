//! librbpf's map functions (declared in `include/rbpf.h`): the kernel helpers, and host access
//! to the maps a loaded ELF object declared (`docs/maps.md`). Return values follow libbpf: 0
//! or a negative errno.

use std::ffi::{CStr, c_char, c_int, c_void};

use crate::boundary::UserPtr;
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
/// `bpf_map_update_elem` (2), `bpf_map_delete_elem` (3), `bpf_probe_read` (4),
/// `bpf_ktime_get_ns` (5), `bpf_trace_printk` (6, printed through the error printer),
/// `bpf_get_prandom_u32` (7), `bpf_get_smp_processor_id` (8), `bpf_get_current_pid_tgid`
/// (14), `bpf_get_current_uid_gid` (15), `bpf_get_current_comm` (16),
/// `bpf_perf_event_output` (25), `bpf_probe_read_str` (45), `bpf_redirect_map` (51),
/// `bpf_get_stack` (67), `bpf_map_push_elem` (87), `bpf_map_pop_elem` (88),
/// `bpf_map_peek_elem` (89), `bpf_spin_lock` (93), `bpf_spin_unlock` (94),
/// `bpf_probe_read_user`/`_kernel`/`_user_str`/`_kernel_str` (112-115),
/// `bpf_ktime_get_boot_ns` (125), `bpf_ringbuf_output` (130), `bpf_ringbuf_reserve` (131),
/// `bpf_ringbuf_submit` (132), `bpf_ringbuf_discard` (133), `bpf_ktime_get_coarse_ns`
/// (160), `bpf_strncmp` (182), and `bpf_loop` (181) and `bpf_tail_call` (12), which
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

/// Pushes `value` (`value_size` bytes) onto a `QUEUE` or `STACK` map, or adds it to a
/// `BLOOM_FILTER` (libbpf: `bpf_map_update_elem(fd, NULL, value, flags)`). `flags`:
/// `BPF_ANY` (0), or `BPF_EXIST` (2) to drop the oldest element of a full queue or stack.
///
/// Returns 0, -E2BIG when full, or -EINVAL (other flags, another map type, NULL argument).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_push_elem(
    map: *mut rbpf_map,
    value: *const c_void,
    flags: u64,
) -> c_int {
    ffi_boundary!({
        let Some(m) = map_ref(map) else { return EINVAL };
        let Some(value) = bytes(value, m.def().value_size as usize) else {
            return EINVAL;
        };
        m.push(value, flags).map_or_else(neg, |()| 0)
    })
}

/// Removes the next element of a `QUEUE` (the oldest) or `STACK` (the newest) into `value`
/// (libbpf: `bpf_map_lookup_and_delete_elem(fd, NULL, value)`).
///
/// Returns 0, -ENOENT when empty, -EOPNOTSUPP for a bloom filter, or -EINVAL.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_pop_elem(map: *mut rbpf_map, value: *mut c_void) -> c_int {
    ffi_boundary!({
        let Some(m) = map_ref(map) else { return EINVAL };
        let Some(value) = bytes_mut(value, m.def().value_size as usize) else {
            return EINVAL;
        };
        m.pop(value).map_or_else(neg, |()| 0)
    })
}

/// Copies the next element of a `QUEUE` or `STACK` into `value` without removing it; for a
/// `BLOOM_FILTER`, tests the `value_size` bytes at `value` (which are only read).
///
/// Returns 0 (for a bloom filter: maybe present), -ENOENT (empty; certainly absent), or
/// -EINVAL.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_peek_elem(map: *mut rbpf_map, value: *mut c_void) -> c_int {
    ffi_boundary!({
        let Some(m) = map_ref(map) else { return EINVAL };
        let Some(value) = bytes_mut(value, m.def().value_size as usize) else {
            return EINVAL;
        };
        m.peek(value).map_or_else(neg, |()| 0)
    })
}

/// The map's id: unique in the process, never 0. An `ARRAY_OF_MAPS` or `HASH_OF_MAPS` stores
/// inner maps by id (`rbpf_map_update_elem(outer, &key, &id, flags)`, where the kernel takes
/// a map fd), and its lookups give the id back.
///
/// Returns the id, or 0 for a NULL map.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_id(map: *const rbpf_map) -> u32 {
    ffi_boundary!({ map_ref(map).map_or(0, Map::id) })
}

/// The inner map that the map of maps `outer` holds for `key`, if it is a map of the program
/// loaded into `vm` (only those are reachable from programs).
///
/// Returns the map (owned by the VM), or NULL (no inner map, not a map of maps, NULL
/// argument).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_map_inner(
    vm: *const ubpf_vm,
    outer: *const rbpf_map,
    key: *const c_void,
) -> *mut rbpf_map {
    ffi_boundary!({
        let (Some(handle), Some(outer)) = (crate::boundary::vm_ref(vm), map_ref(outer)) else {
            return std::ptr::null_mut();
        };
        let Some(key) = bytes(key, outer.def().key_size as usize) else {
            return std::ptr::null_mut();
        };
        handle
            .vm
            .maps()
            .inner(outer, key)
            .map_or(std::ptr::null_mut(), |m| {
                std::sync::Arc::as_ptr(m).cast_mut().cast()
            })
    })
}

/// Calls `sample_cb(ctx, slot, data, size)` for each record `bpf_perf_event_output` wrote to
/// the `PERF_EVENT_ARRAY` `map`, slot by slot (slot = the CPU slot or explicit index), oldest
/// first, and frees their space; before a slot's records, `lost_cb(ctx, slot, count)` (if
/// not NULL) for the records dropped there because its buffer was full. A negative return
/// from `sample_cb` stops after that record.
///
/// Returns the number of records passed to `sample_cb`, the negative value it returned, or
/// -EINVAL (not a perf event array, NULL `map` or `sample_cb`).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_perf_buffer_consume(
    map: *mut rbpf_map,
    sample_cb: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            slot: u32,
            data: *const c_void,
            size: usize,
        ) -> c_int,
    >,
    lost_cb: Option<unsafe extern "C" fn(ctx: *mut c_void, slot: u32, count: u64)>,
    ctx: *mut c_void,
) -> c_int {
    ffi_boundary!({
        let (Some(perf), Some(sample)) = (map_ref(map).and_then(Map::perf_events), sample_cb)
        else {
            return EINVAL;
        };
        let n = perf.consume(
            // SAFETY: the caller's callback, with its context and a record valid for the call.
            |slot, data| unsafe { sample(ctx, slot, data.as_ptr().cast(), data.len()) },
            |slot, count| {
                if let Some(lost) = lost_cb {
                    // SAFETY: the caller's callback, with its context.
                    unsafe { lost(ctx, slot, count) }
                }
            },
        );
        c_int::try_from(n).unwrap_or(c_int::MAX)
    })
}

/// Lets the probe-read helpers (`bpf_probe_read*`, 4, 45, 112-115) read host memory beyond
/// the program's own regions: `allow(ctx, addr, len)` is asked for each range the program
/// could not read itself; an accepted range is copied without faulting (an unmapped address
/// gives -EFAULT). NULL `allow` restores the default: only the program's regions. Accept only
/// memory the program is meant to see.
///
/// Returns 0, or -1 for a NULL `vm`.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_set_probe_read(
    vm: *mut ubpf_vm,
    allow: Option<unsafe extern "C" fn(ctx: *mut c_void, addr: u64, len: u64) -> bool>,
    ctx: *mut c_void,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        let context = UserPtr(ctx);
        handle.vm.set_probe_read(allow.map(|allow| {
            Box::new(move |addr: u64, len: u64| {
                // SAFETY: the embedder's callback, called with its own context.
                unsafe { allow(context.get(), addr, len) }
            }) as rbpf::exec::machine::ProbeReadFn
        }));
        0
    })
}

/// Most frames `bpf_get_stack` asks a host's stack provider for (the kernel's default
/// `kernel.perf_event_max_stack`).
const MAX_STACK_FRAMES: usize = 127;

/// Sets where `bpf_get_stack` (67) finds the stack it reports: `provider(ctx, user, ips,
/// max)` writes at most `max` instruction pointers, innermost first, into `ips` and returns
/// how many (`user` is 1 when the program asked for `BPF_F_USER_STACK`). NULL: an empty stack
/// (the default).
///
/// Returns 0, or -1 for a NULL `vm`.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_set_stack_provider(
    vm: *mut ubpf_vm,
    provider: Option<
        unsafe extern "C" fn(ctx: *mut c_void, user: c_int, ips: *mut u64, max: usize) -> usize,
    >,
    ctx: *mut c_void,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        let context = UserPtr(ctx);
        handle.vm.set_stack_provider(provider.map(|provider| {
            Box::new(move |user: bool| {
                let mut ips = vec![0u64; MAX_STACK_FRAMES];
                // SAFETY: the embedder's callback, with its context and room for `max` ips.
                let n = unsafe {
                    provider(
                        context.get(),
                        c_int::from(user),
                        ips.as_mut_ptr(),
                        ips.len(),
                    )
                };
                ips.truncate(n.min(MAX_STACK_FRAMES));
                ips
            }) as rbpf::exec::machine::StackFn
        }));
        0
    })
}
