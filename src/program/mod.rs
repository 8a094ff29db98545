//! A verified, pre-decoded program: what `ubpf_load` produces and both engines run, and the
//! validator that makes one from bytecode ([`verifier`]).

pub mod verifier;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::isa::Insn;

/// One eBPF function (sub-program): main at slot 0, or a local-call target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// First slot.
    pub start: usize,
    /// One past the last slot (the next function's start, or the program's end).
    pub end: usize,
    /// Bytes of stack the function reserves below r10 before it makes a local call
    /// (from the stack-usage calculator, or `LOCAL_FUNCTION_STACK_SIZE`).
    pub stack_usage: u16,
}

/// A memory section that a loaded program owns for its whole life (ELF `.data`, `.rodata`,
/// `.bss`, ...). Its address never changes, so `lddw` immediates may embed it, and both engines
/// accept accesses inside it (stores only when `writable`).
#[derive(Debug)]
pub struct DataSection {
    name: String,
    bytes: Box<[core::cell::UnsafeCell<u8>]>,
    writable: bool,
}

// SAFETY: the section is shared memory for eBPF code, like a BPF map. Rust code never forms
// references to its bytes after construction; eBPF programs access it only through raw
// addresses, exactly as they access the caller's `mem` buffer from several threads.
unsafe impl Sync for DataSection {}

impl DataSection {
    /// Copies `contents` into a new section (zero-filled to `size` if `size` is larger, as for
    /// `.bss`).
    pub fn new(name: impl Into<String>, contents: &[u8], size: usize, writable: bool) -> Self {
        let len = size.max(contents.len());
        let bytes: Box<[core::cell::UnsafeCell<u8>]> = (0..len)
            .map(|i| core::cell::UnsafeCell::new(contents.get(i).copied().unwrap_or(0)))
            .collect();
        DataSection {
            name: name.into(),
            bytes,
            writable,
        }
    }

    /// The section name (`.rodata`, `.data`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Host address of the first byte.
    pub fn addr(&self) -> u64 {
        self.bytes.as_ptr() as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the section is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether eBPF code may store into it.
    pub fn writable(&self) -> bool {
        self.writable
    }
}

/// A program that passed validation.
#[derive(Debug)]
pub struct Program {
    /// Every slot, in order, including the second halves of `lddw` (so PCs match the bytecode).
    pub insns: Vec<Insn>,
    /// Functions in ascending `start` order; `functions[0]` is main.
    pub functions: Vec<Function>,
    /// Sections owned by the program (filled by the ELF loader; empty for raw bytecode).
    pub data_sections: Vec<DataSection>,
    /// How many bytes below the top of the stack a run can touch: the engines zero exactly
    /// these before each run on a stack they provide (docs/sandbox.md, "Stack"). Computed by
    /// [`crate::program::verifier::stack_reach`]; `STACK_SIZE` when r10 escapes.
    pub stack_reach: usize,
    /// Whether the program calls helpers (`call imm` or `callx`): only such runs can nest
    /// another run, so only they count toward the nesting limit (docs/sandbox.md,
    /// "Re-entrancy").
    pub calls_helpers: bool,
}

/// Whether `insns` contain a helper call (`call imm` with src 0, or `callx`).
pub fn calls_helpers(insns: &[crate::isa::Insn]) -> bool {
    let mut pc = 0;
    while let Some(insn) = insns.get(pc) {
        if (insn.opc == crate::isa::op::CALL && insn.src == crate::isa::call_kind::HELPER)
            || insn.opc == crate::isa::op::CALLX
        {
            return true;
        }
        pc += insn.slots();
    }
    false
}

impl Program {
    /// The function starting exactly at `start`.
    pub fn function_at(&self, start: usize) -> Option<&Function> {
        self.functions
            .binary_search_by_key(&start, |f| f.start)
            .ok()
            .map(|i| &self.functions[i])
    }

    /// The function containing slot `pc`.
    pub fn function_containing(&self, pc: usize) -> Option<&Function> {
        let i = self.functions.partition_point(|f| f.start <= pc);
        i.checked_sub(1).map(|i| &self.functions[i])
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether the program has no slots.
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }
}
