//! librbpf's C library. The `extern "C"` functions are defined in the C API crate
//! (`rbpf_capi`, `capi/src/`); linking it into this cdylib and staticlib exports them, and
//! `tests/capi.rs` checks the exported symbol list.

pub use capi::*;
