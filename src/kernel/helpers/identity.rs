//! Who and when: the identity of the calling thread and the coarse clock, as the kernel's
//! helpers report them for the current task (`docs/maps.md`, "Identity and time"). In user
//! space the current task is the thread running the program: its process id, thread id,
//! user and group ids and name. A host that wants other values registers its own helper at
//! the same number after `register_linux_helpers` (a later registration replaces).
//!
//! `bpf_get_stack` (67) reports the stack a host supplies through [`Vm::set_stack_provider`];
//! without one the stack is empty.

use std::ffi::c_void;

use super::{EINVAL, HelperList, clock_ns, with_run, writable};
use crate::exec::machine::StackFn;
use crate::vm::Vm;

/// `__u64 bpf_get_current_pid_tgid(void)` (14): the process id (the kernel's tgid) in the
/// upper 32 bits, the thread id (the kernel's pid) in the lower 32.
unsafe extern "C" fn bpf_get_current_pid_tgid(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    // SAFETY: getpid has no preconditions.
    let tgid = unsafe { libc::getpid() } as u32;
    // SAFETY: gettid has no preconditions.
    let pid = unsafe { libc::gettid() } as u32;
    (u64::from(tgid) << 32) | u64::from(pid)
}

/// `__u64 bpf_get_current_uid_gid(void)` (15): the real group id in the upper 32 bits, the
/// real user id in the lower 32.
unsafe extern "C" fn bpf_get_current_uid_gid(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    // SAFETY: getgid has no preconditions.
    let gid = unsafe { libc::getgid() };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    (u64::from(gid) << 32) | u64::from(uid)
}

/// The calling thread's name (at most 15 bytes, the kernel's `TASK_COMM_LEN` less the NUL).
fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes (NUL included) into the buffer.
    let rc = unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    if rc != 0 {
        name = [0; 16];
    }
    name[15] = 0;
    name
}

/// `long bpf_get_current_comm(void *buf, __u32 size_of_buf)` (16): copies the thread's name
/// into `buf`, truncated to `size - 1` bytes, NUL-terminated and NUL-padded to `size`; 0, or
/// `-EINVAL` for a size of 0 or a buffer the program may not write (nothing is written).
unsafe extern "C" fn bpf_get_current_comm(
    buf: u64,
    size: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    let size = size & 0xffff_ffff;
    with_run(|_, regions| {
        if size == 0 {
            return EINVAL;
        }
        let Some(dst) = writable(regions, buf, size) else {
            return EINVAL;
        };
        let name = thread_name();
        let len = name.iter().position(|&b| b == 0).unwrap_or(15);
        let mut out = vec![0u8; size as usize];
        let copy = len.min(out.len() - 1);
        out[..copy].copy_from_slice(&name[..copy]);
        // SAFETY: the program may write `size` bytes at `dst`, and `out` holds `size` bytes.
        unsafe { std::ptr::copy(out.as_ptr(), dst, out.len()) };
        0
    })
    .unwrap_or(EINVAL)
}

/// `__u64 bpf_ktime_get_coarse_ns(void)` (160): `CLOCK_MONOTONIC_COARSE`.
unsafe extern "C" fn bpf_ktime_get_coarse_ns(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// `BPF_F_SKIP_FIELD_MASK`: frames to skip.
const SKIP_FIELD_MASK: u64 = 0xff;
/// `BPF_F_USER_STACK`.
const USER_STACK: u64 = 1 << 8;
/// `BPF_F_USER_BUILD_ID`.
const USER_BUILD_ID: u64 = 1 << 11;
/// `sizeof(struct bpf_stack_build_id)`.
const BUILD_ID_ENTRY: usize = 32;
/// `BPF_STACK_BUILD_ID_IP`: the entry holds an address, not a build id and offset.
const BUILD_ID_IP: i32 = 2;

/// `long bpf_get_stack(void *ctx, void *buf, __u32 size, __u64 flags)` (67): writes the
/// host-supplied stack ([`Vm::set_stack_provider`]), skipping `flags & 0xff` frames, as
/// 8-byte addresses (or 32-byte `struct bpf_stack_build_id` entries holding the address, with
/// `BPF_F_USER_BUILD_ID`), zero-fills the rest of `buf`, and returns the bytes written.
/// `-EINVAL` for unknown flags, `BPF_F_USER_BUILD_ID` without `BPF_F_USER_STACK`, a size that
/// is not a multiple of the entry size, or a buffer the program may not write.
unsafe extern "C" fn bpf_get_stack(
    _ctx: u64,
    buf: u64,
    size: u64,
    flags: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    let size = size & 0xffff_ffff;
    with_run(|machine, regions| {
        if flags & !(SKIP_FIELD_MASK | USER_STACK | USER_BUILD_ID) != 0 {
            return EINVAL;
        }
        let user = flags & USER_STACK != 0;
        let build_id = flags & USER_BUILD_ID != 0;
        if build_id && !user {
            return EINVAL;
        }
        let entry = if build_id { BUILD_ID_ENTRY } else { 8 };
        if !(size as usize).is_multiple_of(entry) {
            return EINVAL;
        }
        let Some(dst) = writable(regions, buf, size) else {
            return EINVAL;
        };
        let frames = machine
            .stack_fn
            .as_ref()
            .map(|f| f(user))
            .unwrap_or_default();
        let skip = (flags & SKIP_FIELD_MASK) as usize;
        let mut out = Vec::with_capacity(size as usize);
        for &ip in frames.iter().skip(skip).take(size as usize / entry) {
            if build_id {
                out.extend_from_slice(&BUILD_ID_IP.to_ne_bytes());
                out.extend_from_slice(&[0; 20]);
                out.extend_from_slice(&ip.to_ne_bytes());
            } else {
                out.extend_from_slice(&ip.to_ne_bytes());
            }
        }
        let written = out.len();
        out.resize(size as usize, 0);
        // SAFETY: the program may write `size` bytes at `dst`, and `out` holds `size` bytes.
        unsafe { std::ptr::copy(out.as_ptr(), dst, out.len()) };
        written as u64
    })
    .unwrap_or(EINVAL)
}

/// The identity, time and stack helpers of this file.
pub(super) const HELPERS: HelperList = &[
    (14, "bpf_get_current_pid_tgid", bpf_get_current_pid_tgid),
    (15, "bpf_get_current_uid_gid", bpf_get_current_uid_gid),
    (16, "bpf_get_current_comm", bpf_get_current_comm),
    (67, "bpf_get_stack", bpf_get_stack),
    (160, "bpf_ktime_get_coarse_ns", bpf_ktime_get_coarse_ns),
];

impl Vm {
    /// Sets (or with `None` removes) where `bpf_get_stack` finds the call stack it reports:
    /// `provider(user)` returns instruction pointers, innermost first (`user`: the program
    /// asked for `BPF_F_USER_STACK`). Without a provider the stack is empty and the helper
    /// returns 0 after zero-filling the buffer.
    pub fn set_stack_provider(&mut self, provider: Option<StackFn>) {
        self.machine.stack_fn = provider;
    }
}
