//! `char** errmsg` out-parameters: messages are allocated with the C allocator
//! (`libc::malloc`), because callers release them with `free()`, as with uBPF.

use std::ffi::c_char;
use std::fmt::Display;

/// Allocates a NUL-terminated copy of `text` with `malloc` (interior NULs are dropped).
/// NULL if the allocation fails.
pub(crate) fn malloc_cstring(text: &str) -> *mut c_char {
    let bytes: Vec<u8> = text.bytes().filter(|&b| b != 0).collect();
    let Some(size) = bytes.len().checked_add(1) else {
        return std::ptr::null_mut();
    };
    // SAFETY: plain C allocation; the result is checked for NULL before use.
    let buf = unsafe { libc::malloc(size) }.cast::<u8>();
    if buf.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `buf` has `size = bytes.len() + 1` writable bytes and does not overlap `bytes`.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
    let terminator = buf.wrapping_add(bytes.len());
    // SAFETY: the last of the `size` bytes.
    unsafe { terminator.write(0) };
    buf.cast::<c_char>()
}

/// Writes a `malloc`-allocated copy of `message` to `*errmsg` (nothing if `errmsg` is NULL).
///
/// Any message already in the slot is overwritten, not freed, as in uBPF: the slot is an
/// out-parameter, and callers free what they received.
pub(crate) fn set(errmsg: *mut *mut c_char, message: &dyn Display) {
    if errmsg.is_null() {
        return;
    }
    let text = message.to_string();
    // SAFETY: `errmsg` is non-NULL and, by the API contract, points to a writable `char*`.
    unsafe { errmsg.write(malloc_cstring(&text)) };
}

/// Writes NULL to `*errmsg` (nothing if `errmsg` is NULL).
pub(crate) fn clear(errmsg: *mut *mut c_char) {
    if errmsg.is_null() {
        return;
    }
    // SAFETY: `errmsg` is non-NULL and, by the API contract, points to a writable `char*`.
    unsafe { errmsg.write(std::ptr::null_mut()) };
}
