//! The kernel's helper functions, with the kernel's numbers and libbpf's prototypes
//! (`bpf_helper_defs.h`), registered on a VM by [`Vm::register_linux_helpers`]
//! (`docs/maps.md`).
//!
//! A map helper must know which VM is running (to accept only that VM's maps) and which
//! memory the program may hand it (a key pointer must be readable by the program for the
//! key's size). On a VM with these helpers both engines publish each run before a helper
//! call ([`crate::exec::current_run`]); the helpers read it back with `with_run` and check
//! every pointer argument with the same bounds model as loads
//! ([`crate::exec::memory::Regions`]). A helper called with nothing published (from outside a
//! run) fails as for a bad argument.

mod packet;

use std::cell::Cell;
use std::ffi::c_void;

mod collections;
mod events;
mod identity;
mod probe;

use crate::error::Access;
use crate::exec::current_run::with_run;
use crate::exec::maps::{Map, MapError};
use crate::exec::memory::Regions;
use crate::vm::{ConfigError, Vm};

const _: () = assert!(crate::isa::HELPER_SLOTS > TAIL_TARGET_HELPER as usize);

/// `len` bytes at `addr` as a slice, if the running program may read all of them.
pub(super) fn readable<'a>(regions: &Regions<'_>, addr: u64, len: u64) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    let len = usize::try_from(len).ok()?;
    regions.check(addr, 0, len, Access::Load, 0).ok()?;
    // SAFETY: the bounds model accepted `[addr, addr + len)` as memory of this run (or the
    // VM runs without bounds checks, where the program is trusted, as for loads).
    Some(unsafe { std::slice::from_raw_parts(addr as *const u8, len) })
}

/// The address of `len` bytes at `addr`, if the running program may write all of them (a
/// raw pointer: the bytes may also be visible to the program through other pointers).
pub(super) fn writable(regions: &Regions<'_>, addr: u64, len: u64) -> Option<*mut u8> {
    if len == 0 {
        return Some(std::ptr::NonNull::<u8>::dangling().as_ptr());
    }
    let len = usize::try_from(len).ok()?;
    regions.check(addr, 0, len, Access::Store, 0).ok()?;
    Some(addr as *mut u8)
}

/// A map error as a helper's return value (a negative errno).
pub(super) fn errno(e: MapError) -> u64 {
    neg(e.errno())
}

/// `-errno` as a helper's return value.
pub(crate) const fn neg(errno: i32) -> u64 {
    (-(errno as i64)) as u64
}

pub(super) const EINVAL: u64 = neg(libc::EINVAL);

/// The map `handle` names in the running VM, and the run's regions.
pub(super) fn with_map<R>(handle: u64, f: impl FnOnce(&Map, &Regions<'_>) -> R) -> Option<R> {
    with_run(|machine, regions| machine.maps.maps.by_handle(handle).map(|m| f(m, regions)))
        .flatten()
}

/// `void *bpf_map_lookup_elem(void *map, const void *key)` (1).
unsafe extern "C" fn bpf_map_lookup_elem(
    map: u64,
    key: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_run(|machine, regions| {
        let m = machine.maps.maps.by_handle(map)?;
        let key = readable(regions, key, u64::from(m.def().key_size))?;
        if m.map_type().is_map_in_map() {
            // The inner map, as a handle the map helpers accept (it is one of the program's
            // maps).
            return machine.maps.maps.inner(m, key).map(|inner| inner.handle());
        }
        m.lookup_ptr(key).map(|p| p as u64)
    })
    .flatten()
    .unwrap_or(0)
}

/// `long bpf_map_update_elem(void *map, const void *key, const void *value, __u64 flags)` (2).
unsafe extern "C" fn bpf_map_update_elem(
    map: u64,
    key: u64,
    value: u64,
    flags: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_map(map, |m, regions| {
        let def = m.def();
        let (Some(key), Some(value)) = (
            readable(regions, key, u64::from(def.key_size)),
            readable(regions, value, u64::from(def.value_size)),
        ) else {
            return EINVAL;
        };
        m.update_from_program(key, value, flags)
            .map_or_else(errno, |()| 0)
    })
    .unwrap_or(EINVAL)
}

/// `long bpf_map_delete_elem(void *map, const void *key)` (3).
unsafe extern "C" fn bpf_map_delete_elem(
    map: u64,
    key: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_map(map, |m, regions| {
        let Some(key) = readable(regions, key, u64::from(m.def().key_size)) else {
            return EINVAL;
        };
        m.delete(key).map_or_else(errno, |()| 0)
    })
    .unwrap_or(EINVAL)
}

pub(super) fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// `__u64 bpf_ktime_get_ns(void)` (5): `CLOCK_MONOTONIC`.
unsafe extern "C" fn bpf_ktime_get_ns(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `__u64 bpf_ktime_get_boot_ns(void)` (125): `CLOCK_BOOTTIME`.
unsafe extern "C" fn bpf_ktime_get_boot_ns(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

/// `__u32 bpf_get_prandom_u32(void)` (7): a per-thread xorshift generator seeded randomly.
unsafe extern "C" fn bpf_get_prandom_u32(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(7);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 32) & 0xffff_ffff
    })
}

/// `__u32 bpf_get_smp_processor_id(void)` (8): the thread's per-CPU slot.
unsafe extern "C" fn bpf_get_smp_processor_id(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    crate::exec::maps::current_cpu() as u64
}

/// Longest string `%s` prints in `bpf_trace_printk`.
const MAX_PRINTK_STR: usize = 256;

/// Formats `fmt` with up to three arguments as the kernel's `bpf_trace_printk` does (`%d %i %u
/// %x %X %c %p %s %%` with `l`/`ll` modifiers); `None` for an unsupported conversion or more
/// than three arguments.
fn format_printk(fmt: &[u8], args: [u64; 3], regions: &Regions<'_>) -> Option<String> {
    let mut out = String::new();
    let mut next = args.into_iter();
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        i += 1;
        if c != b'%' {
            out.push(char::from(c));
            continue;
        }
        if fmt.get(i) == Some(&b'%') {
            out.push('%');
            i += 1;
            continue;
        }
        let mut longs = 0;
        while fmt.get(i) == Some(&b'l') {
            longs += 1;
            i += 1;
        }
        let conv = *fmt.get(i)?;
        i += 1;
        let arg = next.next()?;
        let wide = longs > 0;
        match conv {
            b'd' | b'i' if wide => out.push_str(&(arg as i64).to_string()),
            b'd' | b'i' => out.push_str(&(arg as i32).to_string()),
            b'u' if wide => out.push_str(&arg.to_string()),
            b'u' => out.push_str(&(arg as u32).to_string()),
            b'x' if wide => out.push_str(&format!("{arg:x}")),
            b'x' => out.push_str(&format!("{:x}", arg as u32)),
            b'X' if wide => out.push_str(&format!("{arg:X}")),
            b'X' => out.push_str(&format!("{:X}", arg as u32)),
            b'c' if !wide => out.push(char::from(arg as u8)),
            b'p' if !wide => out.push_str(&format!("0x{arg:x}")),
            b's' if !wide => {
                let mut s = Vec::new();
                while s.len() < MAX_PRINTK_STR {
                    let at = arg.checked_add(s.len() as u64)?;
                    match readable(regions, at, 1) {
                        Some(&[0]) => break,
                        Some(&[b]) => s.push(b),
                        _ => {
                            s = b"(invalid)".to_vec();
                            break;
                        }
                    }
                }
                out.push_str(&String::from_utf8_lossy(&s));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// `long bpf_trace_printk(const char *fmt, __u32 fmt_size, ...)` (6): formats to the VM's
/// error printer (standard error by default) and returns the length written, or `-EINVAL`.
unsafe extern "C" fn bpf_trace_printk(
    fmt: u64,
    fmt_size: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    _: *mut c_void,
) -> u64 {
    with_run(|machine, regions| {
        let Some(fmt) = readable(regions, fmt, fmt_size) else {
            return EINVAL;
        };
        // The format must be NUL-terminated within fmt_size, as the kernel requires.
        let Some(nul) = fmt.iter().position(|&b| b == 0) else {
            return EINVAL;
        };
        let Some(text) = format_printk(&fmt[..nul], [a1, a2, a3], regions) else {
            return EINVAL;
        };
        let line = text.strip_suffix('\n').unwrap_or(&text);
        match &machine.error_printer {
            Some(print) => print(line),
            None => eprintln!("{line}"),
        }
        text.len() as u64
    })
    .unwrap_or(EINVAL)
}

/// `long bpf_ringbuf_output(void *ringbuf, void *data, __u64 size, __u64 flags)` (130).
unsafe extern "C" fn bpf_ringbuf_output(
    map: u64,
    data: u64,
    size: u64,
    flags: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_map(map, |m, regions| {
        let (Some(rb), Some(bytes)) = (m.ringbuf(), readable(regions, data, size)) else {
            return EINVAL;
        };
        if flags & !3 != 0 || size == 0 {
            return EINVAL;
        }
        rb.output(bytes)
            .map_or_else(|_| (-(libc::EAGAIN as i64)) as u64, |()| 0)
    })
    .unwrap_or(EINVAL)
}

/// `void *bpf_ringbuf_reserve(void *ringbuf, __u64 size, __u64 flags)` (131).
unsafe extern "C" fn bpf_ringbuf_reserve(
    map: u64,
    size: u64,
    flags: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_map(map, |m, _| match m.ringbuf() {
        Some(rb) if flags == 0 => rb.reserve(size).unwrap_or(0),
        _ => 0,
    })
    .unwrap_or(0)
}

/// Submits or discards the reservation at `data` in whichever ring buffer of the running VM
/// holds it (a bad pointer is ignored: the helpers return nothing).
fn commit(data: u64, discard: bool) -> u64 {
    with_run(|machine, _| {
        for m in machine.maps.maps.iter() {
            if let Some(rb) = m.ringbuf()
                && rb.commit(data, discard).is_ok()
            {
                break;
            }
        }
    });
    0
}

/// `void bpf_ringbuf_submit(void *data, __u64 flags)` (132).
unsafe extern "C" fn bpf_ringbuf_submit(
    data: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    commit(data, false)
}

/// `void bpf_ringbuf_discard(void *data, __u64 flags)` (133).
unsafe extern "C" fn bpf_ringbuf_discard(
    data: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    commit(data, true)
}

/// `long bpf_strncmp(const char *s1, __u32 s1_sz, const char *s2)` (182): compares at most
/// `s1_sz` bytes of `s1` with the NUL-terminated `s2`, as `strncmp`; -1, 0 or 1.
unsafe extern "C" fn bpf_strncmp(
    s1: u64,
    s1_sz: u64,
    s2: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_run(|_, regions| {
        let Some(a) = readable(regions, s1, s1_sz) else {
            return EINVAL;
        };
        for (i, &x) in a.iter().enumerate() {
            let Some(&[y]) = s2
                .checked_add(i as u64)
                .and_then(|at| readable(regions, at, 1))
            else {
                return EINVAL;
            };
            if x != y {
                return if x < y { u64::MAX } else { 1 };
            }
            if x == 0 {
                return 0;
            }
        }
        0
    })
    .unwrap_or(EINVAL)
}

/// A table of kernel helpers: kernel number, name, function.
pub(crate) type HelperList = &'static [(u32, &'static str, crate::HelperFn)];

/// Every table [`Vm::register_linux_helpers`] installs, one per file of this folder. Kept
/// private: the helpers rely on engines that publish each run, which only that method turns
/// on.
const HELPER_TABLES: &[HelperList] = &[
    CORE_HELPERS,
    identity::HELPERS,
    probe::HELPERS,
    collections::HELPERS,
    events::HELPERS,
    packet::HELPERS,
];

/// The map, ring-buffer, time, printing and string helpers defined in this file.
const CORE_HELPERS: HelperList = &[
    (1, "bpf_map_lookup_elem", bpf_map_lookup_elem),
    (2, "bpf_map_update_elem", bpf_map_update_elem),
    (3, "bpf_map_delete_elem", bpf_map_delete_elem),
    (5, "bpf_ktime_get_ns", bpf_ktime_get_ns),
    (6, "bpf_trace_printk", bpf_trace_printk),
    (7, "bpf_get_prandom_u32", bpf_get_prandom_u32),
    (8, "bpf_get_smp_processor_id", bpf_get_smp_processor_id),
    (125, "bpf_ktime_get_boot_ns", bpf_ktime_get_boot_ns),
    (130, "bpf_ringbuf_output", bpf_ringbuf_output),
    (131, "bpf_ringbuf_reserve", bpf_ringbuf_reserve),
    (132, "bpf_ringbuf_submit", bpf_ringbuf_submit),
    (133, "bpf_ringbuf_discard", bpf_ringbuf_discard),
    (182, "bpf_strncmp", bpf_strncmp),
    (
        TAIL_TARGET_HELPER as u32,
        "rbpf_tail_call_target",
        rbpf_tail_call_target,
    ),
];

impl Vm {
    /// Registers the kernel helpers librbpf implements (listed in `docs/maps.md`) at the
    /// kernel's numbers, and makes both engines publish each run to them. Call before loading, like
    /// any registration; a helper registered later at the same number replaces one of these.
    pub fn register_linux_helpers(&mut self) -> Result<(), ConfigError> {
        for &(index, name, f) in HELPER_TABLES.iter().copied().flatten() {
            // Above uBPF's 64 slots too: the table has HELPER_SLOTS.
            let slot = index as usize;
            self.machine.helpers.set_c(slot, Some(f));
            self.helper_names.set(slot, Some(name));
        }
        self.machine.maps.publish_runs = true;
        Ok(())
    }
}

/// The kernel's number of `bpf_loop`.
pub(crate) const BPF_LOOP: i32 = 181;
/// Largest `nr_loops` `bpf_loop` accepts (the kernel's limit).
const BPF_LOOP_MAX: i32 = 1 << 23;

/// Links `bpf_loop` into ELF-loaded code without engine support: every `call 181` becomes a
/// local call to a small eBPF function appended to `code`, which runs the loop and calls the
/// callback with an ordinary local call. Callbacks are the functions starting at the linked
/// byte offsets in `callbacks`; the `lddw` that names callback `i` was given the id `i + 1`
/// (`docs/maps.md`). Both engines then run `bpf_loop` exactly as any local call, with the
/// callback's stack accesses (to the caller's frame, typically) in the same run.
///
/// The appended function (r1 = nr_loops, r2 = callback id, r3 = ctx, r4 = flags; r6..r9 are
/// saved by the local call):
///
/// ```text
///     if r4 != 0 goto einval          ; flags must be 0
///     if r1 > 1 << 23 goto e2big
///     r6 = r1; r7 = r2; r8 = r3; r9 = 0
/// loop:
///     if r9 >= r6 goto done
///     r1 = r9; r2 = r8
///     if r7 == 1 goto call_1 ... if r7 == n goto call_n
///     goto einval                     ; not a callback of this object
/// call_k:
///     call local callback_k; goto next
/// next:
///     r9 += 1
///     if r0 != 0 goto done            ; 1 stops the loop
///     goto loop
/// done:   r0 = r9; exit               ; iterations run
/// einval: r0 = -EINVAL; exit
/// e2big:  r0 = -E2BIG; exit
/// ```
pub(crate) fn link_bpf_loop(code: &mut Vec<u8>, callbacks: &[usize]) -> Result<(), String> {
    use crate::isa::{INSN_SIZE, Insn, call_kind, op};
    let read = |code: &[u8], at: usize| -> Option<Insn> {
        Some(Insn::from_bytes(
            code.get(at..at + INSN_SIZE)?.try_into().ok()?,
        ))
    };
    let mut sites = Vec::new();
    let mut at = 0;
    while let Some(insn) = read(code, at) {
        if insn.opc == op::CALL && insn.src == call_kind::HELPER && insn.imm == BPF_LOOP {
            sites.push(at);
        }
        at += insn.slots() * INSN_SIZE;
    }
    if sites.is_empty() {
        return Ok(());
    }
    let slot = |bytes: usize| (bytes / INSN_SIZE) as i64;
    let start = slot(code.len());
    let n = callbacks.len() as i64;
    // Slot numbers (relative to `start`) of the labels.
    let dispatch = 9;
    let calls = dispatch + n + 1;
    let next = calls + 2 * n;
    let done = next + 3;
    let einval = done + 2;
    let e2big = einval + 2;
    let jump = |from: i64, to: i64| -> Result<i16, String> {
        i16::try_from(to - from - 1).map_err(|_| "bpf_loop: program too large".to_string())
    };
    let insn = |opc, dst, src, off, imm| Insn {
        opc,
        dst,
        src,
        off,
        imm,
    };
    let mut lib = vec![
        insn(0x55, 4, 0, jump(0, einval)?, 0),
        insn(0x25, 1, 0, jump(1, e2big)?, BPF_LOOP_MAX),
        insn(0xbf, 6, 1, 0, 0),
        insn(0xbf, 7, 2, 0, 0),
        insn(0xbf, 8, 3, 0, 0),
        insn(0xb7, 9, 0, 0, 0),
        insn(0x3d, 9, 6, jump(6, done)?, 0),
        insn(0xbf, 1, 9, 0, 0),
        insn(0xbf, 2, 8, 0, 0),
    ];
    for k in 0..n {
        let id = i32::try_from(k + 1).map_err(|_| "bpf_loop: too many callbacks")?;
        lib.push(insn(0x15, 7, 0, jump(dispatch + k, calls + 2 * k)?, id));
    }
    lib.push(insn(0x05, 0, 0, jump(dispatch + n, einval)?, 0));
    for (k, &target) in callbacks.iter().enumerate() {
        let here = calls + 2 * k as i64;
        let displacement = i32::try_from(slot(target) - (start + here) - 1)
            .map_err(|_| "bpf_loop: program too large")?;
        lib.push(insn(op::CALL, 0, call_kind::LOCAL, 0, displacement));
        lib.push(insn(0x05, 0, 0, jump(here + 1, next)?, 0));
    }
    lib.extend([
        insn(0x07, 9, 0, 0, 1),
        insn(0x55, 0, 0, jump(next + 1, done)?, 0),
        insn(0x05, 0, 0, jump(next + 2, 6)?, 0),
        insn(0xbf, 0, 9, 0, 0),
        insn(op::EXIT, 0, 0, 0, 0),
        insn(0xb7, 0, 0, 0, -libc::EINVAL),
        insn(op::EXIT, 0, 0, 0, 0),
        insn(0xb7, 0, 0, 0, -libc::E2BIG),
        insn(op::EXIT, 0, 0, 0, 0),
    ]);
    debug_assert_eq!(lib.len() as i64, e2big + 2);
    for at in sites {
        let displacement = i32::try_from(start - slot(at) - 1)
            .map_err(|_| "bpf_loop: program too large".to_string())?;
        let call = insn(op::CALL, 0, call_kind::LOCAL, 0, displacement);
        code[at..at + INSN_SIZE].copy_from_slice(&call.to_bytes());
    }
    for i in lib {
        code.extend_from_slice(&i.to_bytes());
    }
    Ok(())
}

/// The kernel's number of `bpf_tail_call`.
pub(crate) const BPF_TAIL_CALL: i32 = 12;
/// Slots of the stub the loader leaves after a function for each of its tail calls.
pub(crate) const TAIL_STUB_SLOTS: usize = 4;
/// The internal helper the tail-call function asks for the target (above the kernel's
/// numbers; not a kernel helper).
const TAIL_TARGET_HELPER: i32 = 255;

/// Byte offsets, in a function's `bytes`, of its `call 12` (helper) instructions.
pub(crate) fn tail_call_sites(bytes: &[u8]) -> Vec<usize> {
    use crate::isa::{INSN_SIZE, Insn, call_kind, op};
    let mut sites = Vec::new();
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + INSN_SIZE) {
        let Ok(raw) = chunk.try_into() else { break };
        let insn = Insn::from_bytes(raw);
        if insn.opc == op::CALL && insn.src == call_kind::HELPER && insn.imm == BPF_TAIL_CALL {
            sites.push(at);
        }
        at += insn.slots() * INSN_SIZE;
    }
    sites
}

/// Links `bpf_tail_call` into ELF-loaded code without engine support (`docs/maps.md`).
///
/// `sites` pairs each `call 12` with the stub space the loader left after its function
/// ([`TAIL_STUB_SLOTS`] slots, inside the function); `programs` are the linked byte offsets
/// of the object's programs (program array values index it). The call becomes a jump to its
/// stub:
///
/// ```text
/// stub:   call local tail        ; r0 = the target's result, r1 = 1; or r0 = error, r1 = 0
///         if r1 != 0 goto out
///         goto after_the_call    ; failed: the caller goes on with r0 = error
/// out:    exit                   ; the caller returns what the target returned
/// ```
///
/// and one function is appended:
///
/// ```text
/// tail:   r6 = r1                ; ctx
///         call 255               ; r2 = map, r3 = index: program number + 1, or -errno
///         if r0 s> 0 goto pick
///         r1 = 0; exit
/// pick:   if r0 == 1 goto run_1 ... if r0 == n goto run_n
///         r0 = -EINVAL; r1 = 0; exit
/// run_k:  r1 = r6; call local program_k; r1 = 1; exit
/// ```
pub(crate) fn link_tail_calls(
    code: &mut Vec<u8>,
    sites: &[(usize, usize)],
    programs: &[usize],
) -> Result<(), String> {
    use crate::isa::{INSN_SIZE, Insn, call_kind, op};
    if sites.is_empty() {
        return Ok(());
    }
    let too_large = || "bpf_tail_call: program too large".to_string();
    let slot = |bytes: usize| (bytes / INSN_SIZE) as i64;
    let insn = |opc, dst, src, off, imm| Insn {
        opc,
        dst,
        src,
        off,
        imm,
    };
    let off = |from: i64, to: i64| i16::try_from(to - from - 1).map_err(|_| too_large());
    let imm = |from: i64, to: i64| i32::try_from(to - from - 1).map_err(|_| too_large());
    let start = slot(code.len());
    let n = programs.len() as i64;
    let pick = 5;
    let runs = pick + n + 3;
    let mut lib = vec![
        insn(0xbf, 6, 1, 0, 0),
        insn(op::CALL, 0, call_kind::HELPER, 0, TAIL_TARGET_HELPER),
        insn(0x65, 0, 0, off(2, pick)?, 0),
        insn(0xb7, 1, 0, 0, 0),
        insn(op::EXIT, 0, 0, 0, 0),
    ];
    for k in 0..n {
        let id = i32::try_from(k + 1).map_err(|_| too_large())?;
        lib.push(insn(0x15, 0, 0, off(pick + k, runs + 4 * k)?, id));
    }
    lib.extend([
        insn(0xb7, 0, 0, 0, -libc::EINVAL),
        insn(0xb7, 1, 0, 0, 0),
        insn(op::EXIT, 0, 0, 0, 0),
    ]);
    for (k, &program) in programs.iter().enumerate() {
        let here = start + runs + 4 * k as i64 + 1;
        lib.extend([
            insn(0xbf, 1, 6, 0, 0),
            insn(op::CALL, 0, call_kind::LOCAL, 0, imm(here, slot(program))?),
            insn(0xb7, 1, 0, 0, 1),
            insn(op::EXIT, 0, 0, 0, 0),
        ]);
    }
    let write = |code: &mut Vec<u8>, at: i64, i: Insn| {
        let at = at as usize * INSN_SIZE;
        code[at..at + INSN_SIZE].copy_from_slice(&i.to_bytes());
    };
    for &(site, stub) in sites {
        let (x, s) = (slot(site), slot(stub));
        write(code, x, insn(0x05, 0, 0, off(x, s)?, 0));
        write(
            code,
            s,
            insn(op::CALL, 0, call_kind::LOCAL, 0, imm(s, start)?),
        );
        write(code, s + 1, insn(0x55, 1, 0, 1, 0));
        write(code, s + 2, insn(0x05, 0, 0, off(s + 2, x + 1)?, 0));
        write(code, s + 3, insn(op::EXIT, 0, 0, 0, 0));
    }
    for i in lib {
        code.extend_from_slice(&i.to_bytes());
    }
    Ok(())
}

/// The internal helper of tail calls: `(_, prog_array, index)` → the program number + 1 the
/// array holds at `index`, `-ENOENT` for an empty entry or an index out of range, `-EINVAL`
/// for anything that is not one of the running VM's program arrays.
unsafe extern "C" fn rbpf_tail_call_target(
    _: u64,
    map: u64,
    index: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    const ENOENT: u64 = neg(libc::ENOENT);
    with_run(|machine, _| {
        let Some(array) = machine.maps.maps.by_handle(map).and_then(Map::prog_array) else {
            return EINVAL;
        };
        let Some(program) = u32::try_from(index).ok().and_then(|i| array.get(i)) else {
            return ENOENT;
        };
        if program as usize >= machine.maps.programs.len() {
            return ENOENT;
        }
        u64::from(program) + 1
    })
    .unwrap_or(EINVAL)
}
