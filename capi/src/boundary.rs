//! The C boundary: what a function returns when it cannot do its job (`FailValue`), the
//! `ffi_boundary!` wrapper that stops panics at the edge, the NULL-checking macros, and the
//! one place where a `struct ubpf_vm*` becomes a reference.
//!
//! Design after rustls-ffi: the macro wraps the *body* of an ordinary
//! `#[unsafe(no_mangle)] pub extern "C" fn`, so cbindgen sees plain functions.
//!
//! NULL is a defined input everywhere in this API (it returns the failure value), unlike in
//! uBPF where it crashes; so, unlike hyper's `non_null!`, there is no `debug_assert!`: the C
//! tests pass NULL on purpose in debug builds too.

use std::any::Any;
use std::ffi::c_char;
use std::os::raw::c_int;

/// The value a C function returns when it fails before or without a result: `-1` for `int`,
/// NULL for pointers, `false` for `bool`, 0 for `uint64_t`, nothing for `void`.
pub(crate) trait FailValue {
    /// The failure value.
    fn fail_value() -> Self;
}

impl FailValue for c_int {
    fn fail_value() -> Self {
        -1
    }
}

impl FailValue for bool {
    fn fail_value() -> Self {
        false
    }
}

impl FailValue for u64 {
    fn fail_value() -> Self {
        0
    }
}

impl FailValue for u32 {
    fn fail_value() -> Self {
        0
    }
}

impl FailValue for () {
    fn fail_value() -> Self {}
}

impl<T> FailValue for *mut T {
    fn fail_value() -> Self {
        std::ptr::null_mut()
    }
}

impl<T> FailValue for *const T {
    fn fail_value() -> Self {
        std::ptr::null()
    }
}

/// Nullable C function pointers (`ubpf_jit_fn`, `external_function_t`) fail as NULL.
impl<T> FailValue for Option<T> {
    fn fail_value() -> Self {
        None
    }
}

/// The text of a panic payload, for "internal error: …" messages.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "panic"
    }
}

/// Records a caught panic in `errmsg` (when the slot is non-NULL).
pub(crate) fn set_panic_errmsg(errmsg: *mut *mut c_char, payload: &(dyn Any + Send)) {
    crate::errmsg::set(
        errmsg,
        &format_args!("internal error: {}", panic_message(payload)),
    );
}

/// Runs a C function's body, turning a panic into the return type's [`FailValue`].
///
/// `ffi_boundary!(errmsg; { … })` also writes "internal error: …" into `*errmsg`. A `return`
/// inside the body returns from the body, which is how the NULL-check macros bail out.
macro_rules! ffi_boundary {
    ($errmsg:ident; $body:block) => {{
        let errmsg_slot: *mut *mut ::std::ffi::c_char = $errmsg;
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(payload) => {
                $crate::boundary::set_panic_errmsg(errmsg_slot, &*payload);
                $crate::boundary::FailValue::fail_value()
            }
        }
    }};
    ($body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $crate::boundary::FailValue::fail_value(),
        }
    }};
}

/// `try_vm!(vm)` gives `&ubpf_vm` from a `*const ubpf_vm`, or returns the failure value when
/// it is NULL; `try_vm!(vm, errmsg)` also explains why in `*errmsg`.
macro_rules! try_vm {
    ($vm:expr) => {
        match $crate::boundary::vm_ref($vm) {
            Some(vm) => vm,
            None => return $crate::boundary::FailValue::fail_value(),
        }
    };
    ($vm:expr, $errmsg:expr) => {
        match $crate::boundary::vm_ref($vm) {
            Some(vm) => vm,
            None => {
                $crate::errmsg::set($errmsg, &"invalid argument: vm is NULL");
                return $crate::boundary::FailValue::fail_value();
            }
        }
    };
}

/// `try_vm_mut!(vm)`: as [`try_vm!`], for functions that change the VM.
macro_rules! try_vm_mut {
    ($vm:expr) => {
        match $crate::boundary::vm_mut($vm) {
            Some(vm) => vm,
            None => return $crate::boundary::FailValue::fail_value(),
        }
    };
    ($vm:expr, $errmsg:expr) => {
        match $crate::boundary::vm_mut($vm) {
            Some(vm) => vm,
            None => {
                $crate::errmsg::set($errmsg, &"invalid argument: vm is NULL");
                return $crate::boundary::FailValue::fail_value();
            }
        }
    };
}

/// `try_mut!(ptr)` gives `&mut T` from a non-NULL `*mut T`, or returns the failure value;
/// `try_mut!(ptr, errmsg, "name")` also writes "invalid argument: name is NULL".
macro_rules! try_mut {
    ($ptr:expr) => {
        // SAFETY: C passes either NULL or a valid, exclusive pointer (API contract).
        match unsafe { $ptr.as_mut() } {
            Some(r) => r,
            None => return $crate::boundary::FailValue::fail_value(),
        }
    };
    ($ptr:expr, $errmsg:expr, $name:literal) => {
        // SAFETY: C passes either NULL or a valid, exclusive pointer (API contract).
        match unsafe { $ptr.as_mut() } {
            Some(r) => r,
            None => {
                $crate::errmsg::set($errmsg, &concat!("invalid argument: ", $name, " is NULL"));
                return $crate::boundary::FailValue::fail_value();
            }
        }
    };
}

/// `try_slice!(ptr, len)` gives `&[u8]` over C memory: empty when `len` is 0 (any pointer,
/// even NULL), otherwise requires a non-NULL pointer like [`try_mut!`].
macro_rules! try_slice {
    ($ptr:expr, $len:expr, $errmsg:expr, $name:literal) => {
        match $crate::boundary::slice_from($ptr.cast::<u8>(), $len) {
            Some(s) => s,
            None => {
                $crate::errmsg::set($errmsg, &concat!("invalid argument: ", $name, " is NULL"));
                return $crate::boundary::FailValue::fail_value();
            }
        }
    };
}

/// The VM behind a handle, shared. `None` for NULL.
///
/// This and [`vm_mut`] are the only places a handle becomes a reference; the only place a
/// handle is freed is `ubpf_destroy`.
pub(crate) fn vm_ref<'a>(vm: *const crate::ubpf_vm) -> Option<&'a crate::ubpf_vm> {
    // SAFETY: a non-NULL handle comes from `ubpf_create` and is alive until `ubpf_destroy`
    // (API contract); `ubpf_exec` may share it between threads, which `ubpf_vm: Sync` allows.
    unsafe { vm.as_ref() }
}

/// The VM behind a handle, exclusive. `None` for NULL.
pub(crate) fn vm_mut<'a>(vm: *mut crate::ubpf_vm) -> Option<&'a mut crate::ubpf_vm> {
    // SAFETY: as in `vm_ref`; functions taking a non-const `struct ubpf_vm*` must not race
    // with any other call on the same VM (documented in the header and README).
    unsafe { vm.as_mut() }
}

/// `len` bytes at `ptr`: empty for `len == 0`, `None` for a NULL pointer with `len > 0`.
pub(crate) fn slice_from<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller promises `len` readable bytes at a non-NULL `ptr` (API contract).
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `len` writable bytes at `ptr`: as [`slice_from`].
pub(crate) fn slice_from_mut<'a>(ptr: *mut u8, len: usize) -> Option<&'a mut [u8]> {
    if len == 0 {
        return Some(&mut []);
    }
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller promises `len` writable bytes at a non-NULL `ptr` (API contract).
    Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A C pointer that C callbacks receive back (`user_context`, `cookie`, the VM handle).
///
/// Callback closures stored in the [`rbpf::Vm`] must be `Send + Sync`; the embedder owns what
/// the pointer points to and, as in uBPF, is responsible for its thread safety.
#[derive(Debug)]
pub struct UserPtr<T>(pub *mut T);

// SAFETY: the pointer is only handed back to the embedder's own callbacks, never dereferenced
// by Rust; thread safety of the pointee is the embedder's contract, exactly as in uBPF.
unsafe impl<T> Send for UserPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for UserPtr<T> {}

impl<T> UserPtr<T> {
    /// The pointer. (Calling a method makes closures capture the whole `Send` wrapper rather
    /// than its raw-pointer field.)
    pub fn get(&self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::{CStr, c_char, c_int};

    /// A C-style function whose body panics.
    fn panics_with_errmsg(errmsg: *mut *mut c_char) -> c_int {
        ffi_boundary!(errmsg; {
            if !errmsg.is_null() {
                panic!("boom");
            }
            0
        })
    }

    fn panics_returning_pointer() -> *mut u8 {
        ffi_boundary!({
            panic!("boom");
        })
    }

    fn panics_returning_bool() -> bool {
        ffi_boundary!({
            panic!("boom");
        })
    }

    #[test]
    fn a_panic_becomes_the_failure_value_and_an_internal_error_message() {
        let mut errmsg: *mut c_char = std::ptr::null_mut();
        assert_eq!(panics_with_errmsg(&mut errmsg), -1);
        assert!(!errmsg.is_null());
        // SAFETY: `errmsg` was just set to a NUL-terminated malloc'd string.
        let text = unsafe { CStr::from_ptr(errmsg) }
            .to_str()
            .map(str::to_owned);
        // SAFETY: allocated with `libc::malloc` by `errmsg::set`.
        unsafe { libc::free(errmsg.cast()) };
        assert_eq!(text.as_deref(), Ok("internal error: boom"));
        assert!(panics_returning_pointer().is_null());
        assert!(!panics_returning_bool());
    }

    #[test]
    fn slices_from_c_accept_null_only_when_empty() {
        assert_eq!(super::slice_from(std::ptr::null(), 0), Some(&[][..]));
        assert_eq!(super::slice_from(std::ptr::null(), 1), None);
        let bytes = [1u8, 2, 3];
        assert_eq!(super::slice_from(bytes.as_ptr(), 2), Some(&[1u8, 2][..]));
        assert!(super::slice_from_mut(std::ptr::null_mut(), 4).is_none());
    }

    #[test]
    fn errmsg_copies_drop_interior_nuls() {
        let text = crate::errmsg::malloc_cstring("a\0b");
        assert!(!text.is_null());
        // SAFETY: a NUL-terminated malloc'd string.
        let copy = unsafe { CStr::from_ptr(text) }.to_bytes().to_vec();
        // SAFETY: allocated with `libc::malloc`.
        unsafe { libc::free(text.cast()) };
        assert_eq!(copy, b"ab");
    }
}
