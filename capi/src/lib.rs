//! The C API: uBPF's `ubpf.h` (and librbpf's `rbpf.h` extensions) over [`rbpf::Vm`](::rbpf::Vm).
//!
//! This crate is the only `extern "C"` code of librbpf, and it uses nothing but the public Rust
//! API of the `rbpf` crate. Every function here is thin: it turns C pointers into references
//! (NULL gives the function's failure value, never a crash), C integers into Rust enums, calls
//! one [`Vm`](::rbpf::Vm) method (a comment above each function names it), and turns the
//! `Result` into uBPF's return code plus a `malloc`-allocated `errmsg`. Bodies run inside
//! `ffi_boundary!`, so a panic becomes a failure value instead of unwinding into C.
//!
//! `cbindgen` reads this module tree (and only it) to generate `include/ubpf.h` and
//! `include/rbpf.h`; see `tests/header_up_to_date.rs`. `capi/artifact/` links this crate into
//! `librbpf.so` and `librbpf.a`. The header lists functions in the order of the modules
//! below, which follows uBPF's header. Names follow uBPF's C spelling, hence the lint
//! allowance, which only this crate has. (The module [`rbpf`](mod@rbpf) holds the `rbpf_`
//! extensions; the engine crate is spelt `::rbpf` here at the root.)
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![allow(non_camel_case_types)]
#![allow(
    clippy::not_unsafe_ptr_arg_deref,
    reason = "C entry points cannot be `unsafe fn` for C; every pointer is NULL-checked and \
              the validity contract of the rest is documented in the header"
)]

// Panic and NULL handling used by every other file; must come first (macros are textual).
#[macro_use]
pub(crate) mod boundary;
// `errmsg` out-parameters.
pub(crate) mod errmsg;
// Typedefs, enums and structs of `ubpf.h`.
pub mod types;
// ubpf_create/destroy, toggles, limits, profile.
pub mod vm;
// Helpers, dispatcher and callbacks.
pub mod register;
// ubpf_load/unload_code and load-time callbacks.
pub mod load;
// ubpf_load_elf(_ex) (declared under `UBPF_HAS_ELF_H`).
#[cfg(feature = "elf")]
pub mod elf;
// ubpf_exec(_ex).
pub mod exec;
// JIT entry points.
pub mod jit;
// librbpf's extensions (`rbpf.h`).
pub mod rbpf;
// librbpf's map extensions (`rbpf.h`).
pub mod maps;
// The object API (`rbpf.h`): objects, their programs and maps.
pub mod object;
// Test runs of an object's programs (`rbpf.h`).
pub mod test_run;

pub use types::*;
pub use vm::ubpf_vm;
