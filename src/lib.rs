//! librbpf: a userspace eBPF virtual machine — validator, interpreter, Cranelift JIT, ELF
//! loader, assembler and disassembler — with a C API that is a drop-in replacement for uBPF's
//! `ubpf.h`.
//!
//! The Rust API centres on [`Vm`]: configure it, register helpers, load a program (raw
//! bytecode, assembly through [`asm`], or an ELF object), then execute it with the interpreter
//! or compile it with the JIT. The C API is the `rbpf_capi` crate (`capi/`), the only
//! `extern "C"` code, built on this crate's public API alone; `capi/artifact/` links it into
//! `librbpf.so` and `librbpf.a`.
//!
//! The API of the `rbpf` crate (0.4) is here too, so rbpf users switch by changing the
//! dependency line: the VM kinds [`EbpfVmMbuff`], [`EbpfVmFixedMbuff`], [`EbpfVmRaw`] and
//! [`EbpfVmNoData`] (in [`compat`]), and the modules [`ebpf`], [`helpers`], [`assembler`],
//! [`disassembler`], [`insn_builder`] and [`lib`] (`docs/rust-api.md`).
//!
//! The modules are layers; each imports only from the ones listed before it
//! (`ARCHITECTURE.md`).
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

// The error types of every layer (loading, running, compiling, ELF).
pub mod error;
// The instruction set: encoding, the opcode table, decoding.
pub mod isa;
// Bytecode to a verified [`Program`]: the validator and its analyses.
pub mod program;
// What one run needs, engine-neutral: memory regions, helper table, maps, run context.
pub mod exec;
// The interpreter: runs a [`Program`] over an execution environment.
pub mod interpreter;
// The Cranelift JIT: translation, code memory, its runtime entry points.
#[cfg(feature = "std")]
pub mod jit;
// [`Vm`]: owns a loaded program and its configuration, and calls the engines.
pub mod vm;
// The Linux kernel's ABI: ELF objects, maps as libbpf declares them, kernel helpers.
#[cfg(feature = "std")]
pub mod kernel;
// Programs as text and test files: assembler, disassembler, `.data` files, conformance.
pub mod tools;
// rbpf 0.4's API (VM kinds, `ebpf`, `assembler`, `disassembler`, `insn_builder`, `lib`).
pub mod compat;
#[cfg(test)]
mod test_prelude;

// rbpf 0.4's module paths (`rbpf::ebpf`, …) and the VM kinds at the crate root.
pub use compat::{
    EbpfVmFixedMbuff, EbpfVmMbuff, EbpfVmNoData, EbpfVmRaw, Helper, StackUsageCalculator, Verifier,
};
pub use compat::{assembler, disassembler, ebpf, insn_builder, lib};
pub use exec::helpers;

// The native API's earlier module paths (`rbpf::asm`, `rbpf::memory`, …) keep resolving.
#[cfg(feature = "std")]
pub use exec::maps;
pub use exec::memory;
#[cfg(feature = "std")]
pub use kernel::{elf, helpers as linux_helpers};
pub use program::verifier;
#[cfg(feature = "std")]
pub use tools::data_file;
pub use tools::{asm, conformance, disasm};

pub use error::{Access, ElfError, ExecError, JitError, LoadError};
pub use exec::helpers::{DispatcherFn, HelperFn};
pub use exec::packet::PacketLoads;
pub use program::Program;
pub use vm::{Config, JitTier, Vm};
