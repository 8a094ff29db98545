//! The error type of the rbpf-compatible API without `std` (rbpf's `no_std` replacement for
//! `std::io::Error`): a kind and a message.

use alloc::string::{String, ToString};
use core::fmt;

/// What went wrong, in `std::io::ErrorKind`'s vocabulary (the API only produces `Other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An entity was not found.
    NotFound,
    /// An argument was invalid.
    InvalidInput,
    /// Data was invalid.
    InvalidData,
    /// Any other error (every error of the rbpf-compatible API).
    Other,
}

/// An error with a kind and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new<M: ToString>(kind: ErrorKind, message: M) -> Self {
        Error {
            kind,
            message: message.to_string(),
        }
    }

    /// An `Other` error with `message`.
    pub fn other<M: ToString>(message: M) -> Self {
        Self::new(ErrorKind::Other, message)
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for Error {}
