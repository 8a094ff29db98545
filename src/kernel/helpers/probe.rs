//! The probe-read helpers: `bpf_probe_read` (4), `bpf_probe_read_str` (45) and their `_user`
//! (112, 114) and `_kernel` (113, 115) forms (`docs/maps.md`, "Memory reads").
//!
//! A userspace host has one address space, so the user and kernel forms behave alike. By
//! default they read only what the program itself may read (its regions, checked as loads).
//! A host may opt in, with [`Vm::set_probe_read`], to reads of its own address space (the
//! uprobe style): the callback decides which ranges, and an accepted range is copied with
//! `process_vm_readv` on the host's own process, so an unmapped address fails with `-EFAULT`
//! instead of crashing. A refused or failed read zero-fills the destination and returns
//! `-EFAULT`, as the kernel does.

use std::ffi::c_void;

use super::{HelperList, neg, readable, with_run, writable};
use crate::exec::machine::{Machine, ProbeReadFn};
use crate::exec::memory::Regions;
use crate::vm::Vm;

const EFAULT: u64 = neg(libc::EFAULT);

/// Copies `len` bytes of the host's address space at `src` into `dst` without faulting:
/// `false` when any of it is unmapped.
fn copy_nofault(src: u64, dst: *mut u8, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let local = libc::iovec {
        iov_base: dst.cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: src as *mut c_void,
        iov_len: len,
    };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // SAFETY: `local` describes `len` writable bytes at `dst` (checked by the caller); the
    // kernel reads `remote` on our behalf and reports unmapped memory as an error.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    n == len as isize
}

/// Reads `len` bytes at `src` into `dst`: from the program's regions, or, where the host's
/// callback accepts the range, from the host's address space.
fn read_into(machine: &Machine, regions: &Regions<'_>, src: u64, dst: *mut u8, len: usize) -> bool {
    if let Some(bytes) = readable(regions, src, len as u64) {
        // SAFETY: the program may read `bytes` and write `len` bytes at `dst`; the ranges
        // may overlap, which `copy` allows.
        unsafe { std::ptr::copy(bytes.as_ptr(), dst, len) };
        return true;
    }
    let Some(end) = src.checked_add(len as u64) else {
        return false;
    };
    let allowed = machine
        .probe_read
        .as_ref()
        .is_some_and(|allow| src != 0 && allow(src, end - src));
    allowed && copy_nofault(src, dst, len)
}

/// `long bpf_probe_read*(void *dst, __u32 size, const void *unsafe_ptr)`: 0, or `-EFAULT`
/// with `dst` zero-filled.
fn probe_read(dst: u64, size: u64, src: u64) -> u64 {
    let size = size & 0xffff_ffff;
    with_run(|machine, regions| {
        let Some(out) = writable(regions, dst, size) else {
            return EFAULT;
        };
        if read_into(machine, regions, src, out, size as usize) {
            return 0;
        }
        // SAFETY: the program may write `size` bytes at `out`.
        unsafe { std::ptr::write_bytes(out, 0, size as usize) };
        EFAULT
    })
    .unwrap_or(EFAULT)
}

/// Bytes read at once when looking for the end of a string in host memory.
const STR_CHUNK: usize = 64;

/// `long bpf_probe_read*_str(void *dst, __u32 size, const void *unsafe_ptr)`: copies the
/// NUL-terminated string at `src`, at most `size - 1` bytes and a NUL; returns the bytes
/// written including the NUL (0 for a size of 0), or `-EFAULT` with `dst` zero-filled.
fn probe_read_str(dst: u64, size: u64, src: u64) -> u64 {
    let size = (size & 0xffff_ffff) as usize;
    with_run(|machine, regions| {
        let Some(out) = writable(regions, dst, size as u64) else {
            return EFAULT;
        };
        if size == 0 {
            return 0;
        }
        let mut string = Vec::with_capacity(size.min(4096));
        let mut chunk = [0u8; STR_CHUNK];
        let limit = size - 1;
        let mut failed = false;
        'read: while string.len() < limit {
            let at = src.wrapping_add(string.len() as u64);
            let want = (limit - string.len()).min(STR_CHUNK);
            // A chunk may run into unreadable memory past the string's end: fall back to
            // single bytes then.
            let n = if read_into(machine, regions, at, chunk.as_mut_ptr(), want) {
                want
            } else if read_into(machine, regions, at, chunk.as_mut_ptr(), 1) {
                1
            } else {
                failed = true;
                break;
            };
            for &b in &chunk[..n] {
                if b == 0 {
                    break 'read;
                }
                string.push(b);
            }
        }
        if failed {
            // SAFETY: the program may write `size` bytes at `out`.
            unsafe { std::ptr::write_bytes(out, 0, size) };
            return EFAULT;
        }
        string.push(0);
        // SAFETY: the program may write `size` bytes at `out`; `string` holds at most `size`.
        unsafe { std::ptr::copy(string.as_ptr(), out, string.len()) };
        string.len() as u64
    })
    .unwrap_or(EFAULT)
}

macro_rules! probe_helper {
    ($(#[$doc:meta])* $name:ident => $f:ident) => {
        $(#[$doc])*
        unsafe extern "C" fn $name(
            dst: u64,
            size: u64,
            src: u64,
            _: u64,
            _: u64,
            _: *mut c_void,
        ) -> u64 {
            $f(dst, size, src)
        }
    };
}

probe_helper!(
    /// `long bpf_probe_read(void *dst, __u32 size, const void *unsafe_ptr)` (4).
    bpf_probe_read => probe_read
);
probe_helper!(
    /// `long bpf_probe_read_str(void *dst, __u32 size, const void *unsafe_ptr)` (45).
    bpf_probe_read_str => probe_read_str
);
probe_helper!(
    /// `long bpf_probe_read_user(void *dst, __u32 size, const void *unsafe_ptr)` (112).
    bpf_probe_read_user => probe_read
);
probe_helper!(
    /// `long bpf_probe_read_kernel(void *dst, __u32 size, const void *unsafe_ptr)` (113).
    bpf_probe_read_kernel => probe_read
);
probe_helper!(
    /// `long bpf_probe_read_user_str(void *dst, __u32 size, const void *unsafe_ptr)` (114).
    bpf_probe_read_user_str => probe_read_str
);
probe_helper!(
    /// `long bpf_probe_read_kernel_str(void *dst, __u32 size, const void *unsafe_ptr)` (115).
    bpf_probe_read_kernel_str => probe_read_str
);

/// The probe-read helpers of this file.
pub(super) const HELPERS: HelperList = &[
    (4, "bpf_probe_read", bpf_probe_read),
    (45, "bpf_probe_read_str", bpf_probe_read_str),
    (112, "bpf_probe_read_user", bpf_probe_read_user),
    (113, "bpf_probe_read_kernel", bpf_probe_read_kernel),
    (114, "bpf_probe_read_user_str", bpf_probe_read_user_str),
    (115, "bpf_probe_read_kernel_str", bpf_probe_read_kernel_str),
];

impl Vm {
    /// Lets the probe-read helpers read host memory beyond the program's own regions:
    /// `allow(addr, len)` is asked for each range the program could not read itself, and an
    /// accepted range is copied without faulting (an unmapped address gives `-EFAULT`).
    /// `None` (the default) restricts the helpers to the program's regions.
    ///
    /// Accepting a range exposes that host memory to the program: accept only what the
    /// program is meant to see (for example, the address range of a traced data structure).
    pub fn set_probe_read(&mut self, allow: Option<ProbeReadFn>) {
        self.machine.probe_read = allow;
    }
}
