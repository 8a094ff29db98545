//! The Cranelift JIT (SKELETON: implemented by the JIT work).

/// Compiled code cached per JIT mode; dropped on unload.
#[derive(Debug, Default)]
pub struct JitCache {}
