//! Programs as text and as test files: the assembler and disassembler of uBPF's syntax, the
//! `.data` test-file format, and the conformance suite's helpers. They sit above the VM and
//! are what the CLI, the tests and the rbpf façade use to write and read programs.

pub mod asm;
pub mod conformance;
#[cfg(feature = "std")]
pub mod data_file;
pub mod disasm;
