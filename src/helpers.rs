//! The helper registry: native functions eBPF code calls by index, the optional external
//! dispatcher, and their names (used by the ELF loader to resolve helpers by name).
//!
//! The table is `#[repr(C)]` and boxed by the VM, so its address is stable: JIT code reads the
//! dispatcher and helper slots through it at run time, which is why helpers registered after
//! compiling are still the ones called.

use std::ffi::c_void;

use crate::isa::MAX_EXT_FUNCS;

/// A helper as the engines call it: r1..r5, then the `mem` pointer given to the execution.
///
/// C helpers declared with fewer parameters (uBPF's `external_function_t` has five) are
/// called through this type too; the extra arguments are ignored under the C calling convention.
pub type HelperFn = unsafe extern "C" fn(u64, u64, u64, u64, u64, *mut c_void) -> u64;

/// An external dispatcher: r1..r5, the helper index (the call's immediate) and the cookie
/// (the `mem` pointer given to the execution).
pub type DispatcherFn = unsafe extern "C" fn(u64, u64, u64, u64, u64, u32, *mut c_void) -> u64;

/// Decides at load time whether a helper index is acceptable to the dispatcher.
pub type HelperValidator = Box<dyn Fn(u32) -> bool + Send + Sync>;

/// The run-time helper slots, laid out for JIT code (`dispatcher` at offset 0, then 64 slots).
#[repr(C)]
#[derive(Debug, Clone)]
pub struct HelperTable {
    /// When set, every helper call goes through it instead of `slots`.
    pub dispatcher: Option<DispatcherFn>,
    /// Helper per index; `None` is a null pointer in the C layout.
    pub slots: [Option<HelperFn>; MAX_EXT_FUNCS],
}

impl Default for HelperTable {
    fn default() -> Self {
        HelperTable {
            dispatcher: None,
            slots: [None; MAX_EXT_FUNCS],
        }
    }
}

impl HelperTable {
    /// Calls helper `index` the way both engines do: through the dispatcher if one is set,
    /// otherwise through the slot. `None` if nothing can serve the index.
    ///
    /// # Safety
    /// The registered functions must be safe to call with these arguments (they are foreign
    /// code trusted by whoever registered them).
    pub unsafe fn call(&self, index: u64, args: [u64; 5], mem: *mut c_void) -> Option<u64> {
        let [a1, a2, a3, a4, a5] = args;
        if let Some(dispatcher) = self.dispatcher {
            let index = u32::try_from(index).ok()?;
            // SAFETY: forwarded to the caller's contract.
            return Some(unsafe { dispatcher(a1, a2, a3, a4, a5, index, mem) });
        }
        let helper = (*self.slots.get(usize::try_from(index).ok()?)?)?;
        // SAFETY: forwarded to the caller's contract.
        Some(unsafe { helper(a1, a2, a3, a4, a5, mem) })
    }
}

/// Names given to helpers at registration (copied, unlike uBPF, so callers need not keep them).
#[derive(Debug, Clone, Default)]
pub struct HelperNames {
    names: Vec<Option<String>>,
}

impl HelperNames {
    /// Records `name` for `index`.
    pub fn set(&mut self, index: usize, name: Option<&str>) {
        if self.names.len() <= index {
            self.names.resize(index + 1, None);
        }
        self.names[index] = name.map(str::to_owned);
    }

    /// The name registered at `index`.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.names.get(index)?.as_deref()
    }

    /// The lowest index registered under `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.as_deref() == Some(name))
    }
}
