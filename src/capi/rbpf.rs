//! librbpf's own C functions (prefix `rbpf_`), declared in `include/rbpf.h`.

use std::ffi::c_char;

/// The library version, NUL-terminated.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// librbpf's version, such as "0.1.0".
///
/// Returns a static string (do not free it).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_version() -> *const c_char {
    VERSION.as_ptr().cast()
}
