//! librbpf: a userspace eBPF virtual machine — validator, interpreter, Cranelift JIT, ELF
//! loader, assembler and disassembler — with a C API that is a drop-in replacement for uBPF's
//! `ubpf.h`.
//!
//! The Rust API centres on [`Vm`]: configure it, register helpers, load a program (raw
//! bytecode, assembly through [`asm`], or an ELF object), then execute it with the interpreter
//! or compile it with the JIT. The C API lives in `capi` and is the only `extern "C"` code.
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

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod asm;
#[cfg(feature = "capi")]
pub mod capi;
pub mod conformance;
pub mod data_file;
pub mod disasm;
pub mod elf;
pub mod error;
pub mod helpers;
pub mod insn_builder;
pub mod interpreter;
pub mod isa;
pub mod jit;
pub mod memory;
pub mod program;
pub mod verifier;
pub mod vm;

pub use error::{Access, ElfError, ExecError, JitError, LoadError};
pub use helpers::{DispatcherFn, HelperFn};
pub use program::Program;
pub use vm::{Config, Vm};
