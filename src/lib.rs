//! librbpf: a userspace eBPF virtual machine — validator, interpreter, Cranelift JIT, ELF
//! loader, assembler and disassembler — with a C API that is a drop-in replacement for uBPF's
//! `ubpf.h`.
//!
//! The Rust API centres on [`Vm`]: configure it, register helpers, load a program (raw
//! bytecode, assembly through [`asm`], or an ELF object), then execute it with the interpreter
//! or compile it with the JIT. The C API lives in `capi` and is the only `extern "C"` code.
//!
//! The API of the `rbpf` crate (0.4) is here too, so rbpf users switch by changing the
//! dependency line: the VM kinds [`EbpfVmMbuff`], [`EbpfVmFixedMbuff`], [`EbpfVmRaw`] and
//! [`EbpfVmNoData`] (in [`compat`]), and the modules [`ebpf`], [`helpers`], [`assembler`],
//! [`disassembler`], [`insn_builder`] and [`lib`] (`docs/rust-api.md`).
//!
//! ```
//! use rbpf::{Vm, asm, jit::JitMode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let code = asm::assemble_bytes("ldxw %r0, [%r1+0]\nadd %r0, 1\nexit")?;
//! let mut vm = Vm::new();
//! vm.load(&code)?; // uBPF's validator, uBPF's error texts
//! let mut mem = 41u32.to_le_bytes();
//! assert_eq!(vm.execute(&mut mem)?, 42); // interpreter
//! vm.compile(JitMode::Basic)?; // Cranelift JIT
//! assert_eq!(vm.execute_jit(&mut mem)?, 42); // bounds-checked native code
//! # Ok(())
//! # }
//! ```

#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;
// Unit tests use std (threads, collections, printing) even in the no_std configuration.
#[cfg(all(test, not(feature = "std")))]
extern crate std;

pub mod asm;
pub mod assembler;
#[cfg(feature = "capi")]
pub mod capi;
pub mod compat;
pub mod conformance;
#[cfg(feature = "std")]
pub mod data_file;
pub mod disasm;
pub mod disassembler;
pub mod ebpf;
#[cfg(feature = "std")]
pub mod elf;
pub mod error;
pub mod helpers;
pub(crate) mod idiom;
pub mod insn_builder;
pub mod interpreter;
pub mod isa;
#[cfg(feature = "std")]
pub mod jit;
#[cfg(feature = "std")]
pub mod linux_helpers;
#[cfg(feature = "std")]
pub mod maps;
pub mod memory;
pub mod program;
#[cfg(feature = "std")]
pub(crate) mod reentry;
#[cfg(not(feature = "std"))]
#[path = "reentry_nostd.rs"]
pub(crate) mod reentry;
#[cfg(test)]
mod test_prelude;
pub mod verifier;
pub mod vm;

/// rbpf's `rbpf::lib` module: the error type of the rbpf-compatible API.
pub mod lib {
    /// The error of the rbpf-compatible API (rbpf's: `std::io::Error` with `ErrorKind::Other`
    /// and a message).
    #[cfg(feature = "std")]
    pub use std::io::{Error, ErrorKind};

    #[cfg(not(feature = "std"))]
    pub use crate::compat::no_std_error::{Error, ErrorKind};
}

pub use compat::{
    EbpfVmFixedMbuff, EbpfVmMbuff, EbpfVmNoData, EbpfVmRaw, Helper, StackUsageCalculator, Verifier,
};
pub use error::{Access, ElfError, ExecError, JitError, LoadError};
pub use helpers::{DispatcherFn, HelperFn};
pub use program::Program;
pub use vm::{Config, Vm};
