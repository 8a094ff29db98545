//! The `#[repr(C)]` context that compiled code reaches through an absolute address embedded in
//! the code, and the fault codes its cold exit blocks pass to the runtime.
//!
//! The context holds only what is the same for every run of the program: the helper table
//! the code calls through, the blinding key, and the VM it belongs to. Per-run state — the
//! instruction counter, the call depth, the local-call frames and the error slot — lives on
//! the native stack of the run or in a thread-local of [`super::runtime`], so several threads
//! may run the same compiled code at once.
//!
//! Code copied out of the VM (`Vm::copy_jit`, `Vm::translate`) points to the same context.
//! When the VM lets go of its code (unload, reload, drop) after such a copy, the context is
//! *detached* instead of freed: it gets its own snapshot of the helper table, forgets the VM,
//! and is kept for the rest of the process (docs/sandbox.md, "Copies").

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::exec::helpers::HelperTable;
use crate::exec::machine::Machine;

/// What compiled code knows about its VM. Boxed by [`super::JitCache`], so its address is
/// stable for as long as the compiled code may run.
#[repr(C)]
#[derive(Debug)]
pub struct JitContext {
    /// The helper table helper calls read at run time: the VM's own (so helpers registered
    /// after compiling are called) until the context is detached, then the snapshot.
    pub(crate) helpers: AtomicPtr<HelperTable>,
    /// Random key of constant blinding: with `Config::constant_blinding`, every immediate of
    /// the program is embedded as `imm ^ key` and recovered with a load of this field, so the
    /// code bytes never contain the program's constants and differ between VMs.
    pub(crate) blinding_key: u64,
    /// The machine of the VM whose program was compiled: used by the slow path of the bounds
    /// check (data sections, the user's bounds callback), to report faults through its error
    /// printer, and as the owner of helper calls in progress. Refreshed by every run through
    /// `Vm::execute_jit*`, in case the `Vm` value moved; null once detached.
    pub(crate) machine: AtomicPtr<Machine>,
    /// Whether code using this context left the VM (`copy_jit`, `translate`).
    pub(crate) escaped: AtomicBool,
    /// The helper table as it was when the context was detached.
    snapshot: OnceLock<Box<HelperTable>>,
    /// The program's maps, kept alive once the context is detached: the code embeds the
    /// addresses of their value slabs in its inline bounds checks, so a copy must never see
    /// that memory freed (docs/sandbox.md, "Copies").
    kept_maps: OnceLock<crate::exec::maps::MapSet>,
    /// The value tables of switches and the descriptions of compare loops
    /// (`jit/translate/idioms.rs`), whose addresses compiled code embeds: kept as long as the
    /// context, so every copy of the code can read them.
    tables: Mutex<Vec<Box<[u64]>>>,
}

impl JitContext {
    /// A context for `machine`, calling helpers through `helpers` (its boxed table).
    pub(crate) fn new(machine: *const Machine, helpers: *const HelperTable) -> Self {
        JitContext {
            helpers: AtomicPtr::new(helpers.cast_mut()),
            blinding_key: random_key(),
            machine: AtomicPtr::new(machine.cast_mut()),
            escaped: AtomicBool::new(false),
            snapshot: OnceLock::new(),
            kept_maps: OnceLock::new(),
            tables: Mutex::new(Vec::new()),
        }
    }

    /// The address of a table holding `values`, alive as long as this context. A table
    /// with the same values is shared, so compiling a program again adds nothing.
    pub(crate) fn keep_table(&self, values: Vec<u64>) -> *const u64 {
        let mut tables = self
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = tables.iter().find(|t| ***t == values[..]) {
            return t.as_ptr();
        }
        let table = values.into_boxed_slice();
        let address = table.as_ptr();
        tables.push(table);
        address
    }

    /// Ends this context's tie to its VM, which is about to free its code (or itself). A
    /// context that no copy escaped with is simply dropped. Otherwise copies may still run:
    /// the context keeps a snapshot of `helpers` (the VM's table right now), forgets the VM
    /// and is kept alive, reachable, until the process exits — one context and one helper
    /// table (about 600 bytes) per compiled program that was copied or translated — together
    /// with the program's `maps`, whose value slabs the code's inline checks name.
    pub(crate) fn release(
        self: Box<Self>,
        helpers: &HelperTable,
        maps: &crate::exec::maps::MapSet,
    ) {
        if !self.escaped.load(Ordering::Acquire) {
            return;
        }
        let snapshot = self.snapshot.get_or_init(|| Box::new(helpers.clone()));
        self.kept_maps.get_or_init(|| maps.clone());
        let table: *const HelperTable = &**snapshot;
        self.helpers.store(table.cast_mut(), Ordering::Release);
        self.machine.store(std::ptr::null_mut(), Ordering::Release);
        // Boxed on purpose: compiled code holds each context's address, which must not move
        // when the list grows.
        #[expect(clippy::vec_box, reason = "the boxes' addresses are embedded in code")]
        static DETACHED: Mutex<Vec<Box<JitContext>>> = Mutex::new(Vec::new());
        DETACHED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self);
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

/// Byte offset of [`JitContext::helpers`], which helper calls load.
pub(crate) const HELPERS_OFFSET: i32 = std::mem::offset_of!(JitContext, helpers) as i32;

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
        assert_eq!(HELPERS_OFFSET, 0);
        assert_eq!(BLINDING_KEY_OFFSET, 8);
        assert_eq!(std::mem::align_of::<JitContext>(), 8);
    }
}
