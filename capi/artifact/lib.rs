//! librbpf's C library. The `extern "C"` functions are defined in the root crate's `capi`
//! module (enabled by its `capi` feature); linking that crate into this cdylib and staticlib
//! exports them, and `tests/capi.rs` checks the exported symbol list.

pub use engine::capi;
