//! Silencing standard error around runs of code copied out of a VM, without losing reports.
//!
//! Such code reports each fault on stderr once its VM is gone; thousands of runs per second
//! would flood the fuzzer's log. While [`quiet`] runs its function, fd 2 points to /dev/null,
//! and two things give it back before anything worth reading is written: the panic hook
//! ([`install_panic_hook`]), and a handler for the signals libFuzzer reports (a crash, or its
//! timeout alarm) that restores fd 2 and libFuzzer's own handlers, then re-raises the signal.
//! With `RBPF_FUZZ_EXPLAIN` set nothing is silenced.

use std::ffi::c_int;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::harness::explaining;

/// The real stderr while silenced, else -1.
static SAVED: AtomicI32 = AtomicI32::new(-1);
/// An open /dev/null (opened on first use, kept).
static NULL: AtomicI32 = AtomicI32::new(-1);

const SIGNALS: [c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGALRM,
];

/// The handlers [`quiet`] replaced (libFuzzer's), one per entry of [`SIGNALS`].
struct Previous(std::cell::UnsafeCell<[MaybeUninit<libc::sigaction>; 5]>);
// SAFETY: written by `quiet` on the fuzzing thread before its handlers are installed, read by
// those handlers on the same thread (libFuzzer runs inputs on one thread).
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(std::cell::UnsafeCell::new(
    [const { MaybeUninit::uninit() }; 5],
));

/// Points fd 2 back to the real stderr, if it is silenced (async-signal-safe).
fn unsilence() {
    let fd = SAVED.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: plain descriptor calls.
        unsafe {
            libc::dup2(fd, 2);
            libc::close(fd);
        }
    }
}

/// Puts back the handlers [`quiet`] replaced (async-signal-safe).
fn restore_handlers() {
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: `quiet` filled every entry before installing `on_signal`.
        unsafe {
            let old = (*PREVIOUS.0.get())[i].as_ptr();
            libc::sigaction(sig, old, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_signal(sig: c_int) {
    unsilence();
    restore_handlers();
    // SAFETY: re-delivers the signal to the handler just restored.
    unsafe { libc::raise(sig) };
}

/// Makes every panic give stderr back before its message is printed.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        unsilence();
        default(info);
    }));
}

/// Runs `f` with standard error silenced (see the module documentation).
pub fn quiet<T>(f: impl FnOnce() -> T) -> T {
    if explaining() {
        return f();
    }
    let mut null = NULL.load(Ordering::Relaxed);
    if null < 0 {
        // SAFETY: opening a file.
        null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY) };
        if null < 0 {
            return f();
        }
        NULL.store(null, Ordering::Relaxed);
    }
    // SAFETY: descriptor and signal-handler calls with valid arguments; the handlers and the
    // saved descriptor are restored below (or by `on_signal`/the panic hook).
    unsafe {
        let saved = libc::dup(2);
        if saved < 0 {
            return f();
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        for (i, &sig) in SIGNALS.iter().enumerate() {
            let old = (*PREVIOUS.0.get())[i].as_mut_ptr();
            libc::sigaction(sig, &action, old);
        }
        SAVED.store(saved, Ordering::SeqCst);
        libc::dup2(null, 2);
        let out = f();
        unsilence();
        restore_handlers();
        out
    }
}
