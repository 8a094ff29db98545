//! rbpf's `rbpf::lib` module: the error type of the rbpf-compatible API.

/// The error of the rbpf-compatible API (rbpf's: `std::io::Error` with `ErrorKind::Other`
/// and a message).
#[cfg(feature = "std")]
pub use std::io::{Error, ErrorKind};

#[cfg(not(feature = "std"))]
pub use crate::compat::no_std_error::{Error, ErrorKind};
