//! Load-time validation (uBPF's `ubpf_load` checks, in uBPF's order and with its texts):
//! turns decoded slots into a [`Program`].

use crate::error::LoadError;
use crate::isa::Insn;
use crate::program::Program;

/// What the verifier needs to know about the VM.
pub struct VerifyOptions<'a> {
    /// Whether a helper call `call imm` (src = 0) to this index is acceptable.
    pub helper_exists: &'a dyn Fn(u32) -> bool,
    /// The stack-usage calculator (function start slot → bytes), if one is registered.
    pub stack_usage: Option<&'a (dyn Fn(usize) -> i32 + Send + Sync)>,
}

/// Validates `slots` and builds the program (SKELETON: implemented by the core work).
pub fn verify(slots: Vec<Insn>, options: &VerifyOptions<'_>) -> Result<Program, LoadError> {
    let _ = (slots, options);
    todo!("verifier")
}
