//! rbpf 0.4's API, so that a user of the `rbpf` crate switches by changing only the
//! dependency line (`docs/rust-api.md`). Everything here translates to the native API below
//! it ([`crate::vm::Vm`], [`crate::tools`], [`crate::isa`]) and holds no engine logic of its
//! own. The crate root re-exports these modules under rbpf's paths (`rbpf::ebpf`,
//! `rbpf::assembler`, …).

pub mod assembler;
pub mod disassembler;
pub mod ebpf;
pub mod insn_builder;
pub mod lib;
mod messages;
#[cfg(not(feature = "std"))]
pub mod no_std_error;
pub mod verifier;
mod vm_kinds;

pub use vm_kinds::*;
