//! The `#[repr(C)]` context that compiled code reaches through an absolute address embedded in
//! the code, and the fault codes its cold exit blocks pass to the runtime.
//!
//! The context holds only what is the same for every run of the program (the VM it belongs
//! to). Per-run state — the instruction counter, the call depth, the local-call frames and the
//! error slot — lives on the native stack of the run or in a thread-local of
//! [`super::runtime`], so several threads may run the same compiled code at once.

use std::sync::atomic::AtomicPtr;

use crate::vm::Vm;

/// What compiled code knows about its VM. Boxed by [`super::JitCache`], so its address is
/// stable for as long as the compiled code may run.
#[repr(C)]
#[derive(Debug)]
pub struct JitContext {
    /// The VM whose program was compiled: used by the slow path of the bounds check (data
    /// sections, the user's bounds callback) and to map fault positions back to slots.
    /// Refreshed by every [`Vm::execute_jit`] call, in case the `Vm` value moved.
    pub(crate) vm: AtomicPtr<Vm>,
    /// Random key of constant blinding: with `Config::constant_blinding`, every immediate of
    /// the program is embedded as `imm ^ key` and recovered with a load of this field, so the
    /// code bytes never contain the program's constants and differ between VMs.
    pub(crate) blinding_key: u64,
}

impl JitContext {
    /// A context for `vm`.
    pub(crate) fn new(vm: *const Vm) -> Self {
        JitContext {
            vm: AtomicPtr::new(vm.cast_mut()),
            blinding_key: random_key(),
        }
    }
}

/// A fresh random key (std's per-instance random hasher keys; no extra dependency).
fn random_key() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

/// Byte offset of [`JitContext::vm`] (checked by a layout test).
#[cfg(test)]
pub(crate) const VM_OFFSET: usize = std::mem::offset_of!(JitContext, vm);

/// Byte offset of [`JitContext::blinding_key`], which compiled code loads.
pub(crate) const BLINDING_KEY_OFFSET: i32 = std::mem::offset_of!(JitContext, blinding_key) as i32;

/// Fault kinds passed from a cold exit block to [`super::runtime::rt_fault`].
pub(crate) mod fault {
    /// Instruction limit: `pc` is the instruction that found the budget used up.
    pub const INSTRUCTION_LIMIT: i64 = 1;
    /// Local call nesting: `extra` is the depth the call would reach.
    pub const CALL_DEPTH: i64 = 2;
    /// No helper (and no dispatcher) serves the index in `extra`.
    pub const NONEXISTENT_HELPER: i64 = 3;
    /// Execution ran past the last slot (`pc` is the slot that does not exist).
    pub const FELL_OFF_END: i64 = 4;
    /// The `mem` argument does not fit in the address space (`extra`: its length).
    pub const INVALID_MEM: i64 = 5;
    /// The `stack` argument of extended-mode code does not fit (`extra`: its length).
    pub const INVALID_STACK: i64 = 6;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_layout_is_what_compiled_code_expects() {
        assert_eq!(VM_OFFSET, 0);
        assert_eq!(BLINDING_KEY_OFFSET, 8);
        assert_eq!(std::mem::size_of::<JitContext>(), 16);
        assert_eq!(std::mem::align_of::<JitContext>(), 8);
    }
}
