//! The helper registry: native functions eBPF code calls by index, the optional external
//! dispatcher, and their names (used by the ELF loader to resolve helpers by name); plus, in
//! `builtins` (re-exported here), the helper functions rbpf's `rbpf::helpers` module offers.
//!
//! The table is `#[repr(C)]` and boxed by the VM, so its address is stable: JIT code reads the
//! dispatcher and helper slots through it at run time, which is why helpers registered after
//! compiling are still the ones called.
//!
//! Helpers come in two forms, sharing the slot indices. C function pointers ([`HelperFn`], what
//! the C API registers) live in `slots`. Rust helpers ([`RustHelper`]: `fn` items or closures
//! with captured state) live in a map after the C-visible part of the table; the interpreter
//! calls them directly, and compiled code calls their slot's trampoline, which finds the table
//! of the running VM through a per-thread record set by `Vm::execute_jit*`. A dispatcher
//! (uBPF's external dispatcher) takes every call, as in uBPF.

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_void;

use crate::isa::HELPER_SLOTS;

mod builtins;

pub use builtins::*;

pub use crate::isa::HelperFn;

/// An external dispatcher: r1..r5, the helper index (the call's immediate) and the cookie
/// (the `mem` pointer given to the execution).
pub type DispatcherFn = unsafe extern "C" fn(u64, u64, u64, u64, u64, u32, *mut c_void) -> u64;

/// Decides at load time whether a helper index is acceptable to the dispatcher.
pub type HelperValidator = Box<dyn Fn(u32) -> bool + Send + Sync>;

/// A Rust helper that gets r1..r5 and returns the value for r0.
pub type PlainHelper = Arc<dyn Fn(u64, u64, u64, u64, u64) -> u64 + Send + Sync>;

/// A Rust helper that also gets the run's input memory.
pub type MemoryHelper = Arc<dyn Fn(u64, u64, u64, u64, u64, &mut [u8]) -> u64 + Send + Sync>;

/// A helper written in Rust: a plain `fn` or a closure with captured state.
#[derive(Clone)]
pub enum RustHelper {
    /// Gets r1..r5, returns the value for r0.
    Plain(PlainHelper),
    /// Gets r1..r5 and the run's input memory (the buffer r1 pointed to at entry, empty when
    /// the run has none), like uBPF's context-aware helpers; returns the value for r0.
    WithMemory(MemoryHelper),
}

impl core::fmt::Debug for RustHelper {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RustHelper::Plain(_) => "RustHelper::Plain",
            RustHelper::WithMemory(_) => "RustHelper::WithMemory",
        })
    }
}

impl RustHelper {
    /// Calls the helper with r1..r5 and the run's input memory.
    ///
    /// # Safety
    /// `mem` is null or valid for reads and writes of `mem_len` bytes, and nothing else
    /// accesses it during the call.
    unsafe fn call(&self, args: [u64; 5], mem: *mut u8, mem_len: usize) -> u64 {
        let [a1, a2, a3, a4, a5] = args;
        match self {
            RustHelper::Plain(f) => f(a1, a2, a3, a4, a5),
            RustHelper::WithMemory(f) => {
                let memory: &mut [u8] = if mem.is_null() || mem_len == 0 {
                    &mut []
                } else {
                    // SAFETY: guaranteed by the caller.
                    unsafe { core::slice::from_raw_parts_mut(mem, mem_len) }
                };
                f(a1, a2, a3, a4, a5, memory)
            }
        }
    }
}

/// The run-time helper slots, laid out for JIT code (`dispatcher` at offset 0, then
/// [`HELPER_SLOTS`] slots; the Rust-only map after them is never read by compiled code).
#[repr(C)]
#[derive(Debug, Clone)]
pub struct HelperTable {
    /// When set, every helper call goes through it instead of `slots`.
    pub dispatcher: Option<DispatcherFn>,
    /// Helper per index; `None` is a null pointer in the C layout. A Rust helper's slot holds
    /// its index's trampoline.
    pub slots: [Option<HelperFn>; HELPER_SLOTS],
    /// Rust helpers by index.
    rust: BTreeMap<u32, RustHelper>,
}

impl Default for HelperTable {
    fn default() -> Self {
        HelperTable {
            dispatcher: None,
            slots: [None; HELPER_SLOTS],
            rust: BTreeMap::new(),
        }
    }
}

impl HelperTable {
    /// Calls helper `index` the way both engines do: through the dispatcher if one is set,
    /// otherwise the Rust helper or the C helper at `index`. `None` if nothing can serve the
    /// index. `mem`/`mem_len` are the run's input memory (the cookie of C helpers).
    ///
    /// # Safety
    /// The registered functions must be safe to call with these arguments (they are foreign
    /// code trusted by whoever registered them); `mem` is null or valid for `mem_len` bytes.
    pub unsafe fn call(
        &self,
        index: u64,
        args: [u64; 5],
        mem: *mut c_void,
        mem_len: usize,
    ) -> Option<u64> {
        // A Rust helper is called directly (its slot's trampoline would look for a compiled
        // run); everything else goes the way compiled code goes.
        if self.dispatcher.is_none()
            && let Some(helper) = u32::try_from(index).ok().and_then(|i| self.rust.get(&i))
        {
            // SAFETY: forwarded to the caller's contract.
            return Some(unsafe { helper.call(args, mem.cast(), mem_len) });
        }
        // SAFETY: forwarded to the caller's contract.
        unsafe { self.call_from_compiled(index, args, mem) }
    }

    /// Calls helper `index` as compiled code does: through the dispatcher if one is set,
    /// otherwise through the slot (a Rust helper's slot is its trampoline, which finds the
    /// run's memory length in the run recorded by `Vm::execute_jit*`). `None` if nothing can
    /// serve the index.
    ///
    /// # Safety
    /// As for [`HelperTable::call`], with `mem` the run's input memory.
    pub unsafe fn call_from_compiled(
        &self,
        index: u64,
        args: [u64; 5],
        mem: *mut c_void,
    ) -> Option<u64> {
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

    /// Registers a Rust helper at slot `index` (replacing a C helper there). `false` when
    /// `index` is not below `HELPER_SLOTS`.
    pub(crate) fn set_rust(&mut self, index: u32, helper: RustHelper) -> bool {
        let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
        else {
            return false;
        };
        *slot = Some(TRAMPOLINES[index as usize]);
        self.rust.insert(index, helper);
        true
    }

    /// Registers (or clears) a C helper at slot `index`, replacing a Rust helper there.
    pub(crate) fn set_c(&mut self, index: usize, helper: Option<HelperFn>) {
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = helper;
            if let Ok(index) = u32::try_from(index) {
                self.rust.remove(&index);
            }
        }
    }

    /// Whether Rust helpers are registered (compiled code reaches them through per-slot
    /// trampolines that need the run recorded by `Vm::execute_jit*`).
    pub fn has_rust_helpers(&self) -> bool {
        !self.rust.is_empty()
    }
}

/// The helper table and input memory of the compiled-code run in progress on this thread.
#[cfg(feature = "std")]
#[derive(Clone, Copy)]
struct RunHelpers {
    table: *const HelperTable,
    mem_len: usize,
}

#[cfg(feature = "std")]
thread_local! {
    static CURRENT_RUN: std::cell::Cell<Option<RunHelpers>> = const { std::cell::Cell::new(None) };
    static HELPER_PANIC: std::cell::RefCell<Option<Box<dyn std::any::Any + Send>>> =
        const { std::cell::RefCell::new(None) };
}

/// Marks a compiled-code run on this thread for the Rust-helper trampolines; the previous
/// record (of an enclosing run) comes back when the guard drops.
#[cfg(feature = "std")]
pub(crate) struct RunGuard {
    previous: Option<RunHelpers>,
}

#[cfg(feature = "std")]
impl RunGuard {
    /// Records `table` and the length of the run's input memory until the guard drops.
    pub(crate) fn enter(table: &HelperTable, mem_len: usize) -> Self {
        let previous = CURRENT_RUN.replace(Some(RunHelpers { table, mem_len }));
        RunGuard { previous }
    }

    /// Ends the run: if a Rust helper panicked during it, the panic continues here (it could
    /// not unwind through compiled code, which saw 0 as the helper's result).
    pub(crate) fn finish(self) {
        drop(self);
        if let Some(payload) = HELPER_PANIC.with(|p| p.borrow_mut().take()) {
            std::panic::resume_unwind(payload);
        }
    }
}

#[cfg(feature = "std")]
impl Drop for RunGuard {
    fn drop(&mut self) {
        CURRENT_RUN.set(self.previous);
    }
}

/// What the trampoline of slot `index` does: calls the Rust helper of the run recorded by
/// [`RunGuard`] with the run's memory (`mem` is the cookie compiled code passes). Returns 0
/// when no run is recorded (code called directly through its raw pointer cannot reach Rust
/// helpers) and when the helper panicked (the panic resumes when the run ends).
#[cfg(feature = "std")]
fn call_from_compiled(index: u32, args: [u64; 5], mem: *mut c_void) -> u64 {
    let Some(run) = CURRENT_RUN.get() else {
        return 0;
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the record points to the table of the VM running this code, live for the run.
        let table = unsafe { &*run.table };
        match table.rust.get(&index) {
            // SAFETY: the run's memory, valid for the run.
            Some(helper) => unsafe { helper.call(args, mem.cast(), run.mem_len) },
            None => 0,
        }
    }));
    outcome.unwrap_or_else(|payload| {
        HELPER_PANIC.with(|p| *p.borrow_mut() = Some(payload));
        0
    })
}

/// Without `std` there is no compiled code, so the trampolines are never called.
#[cfg(not(feature = "std"))]
fn call_from_compiled(_: u32, _: [u64; 5], _: *mut c_void) -> u64 {
    0
}

/// The C-callable entry of the Rust helper at slot `I`.
unsafe extern "C" fn trampoline<const I: u32>(
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    mem: *mut c_void,
) -> u64 {
    call_from_compiled(I, [a1, a2, a3, a4, a5], mem)
}

macro_rules! trampolines {
    ($($i:literal)*) => { [$(trampoline::<$i> as HelperFn),*] };
}

/// One trampoline per helper slot.
static TRAMPOLINES: [HelperFn; HELPER_SLOTS] = trampolines!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
    16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47
    48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
    64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79
    80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95
    96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111
    112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127
    128 129 130 131 132 133 134 135 136 137 138 139 140 141 142 143
    144 145 146 147 148 149 150 151 152 153 154 155 156 157 158 159
    160 161 162 163 164 165 166 167 168 169 170 171 172 173 174 175
    176 177 178 179 180 181 182 183 184 185 186 187 188 189 190 191
    192 193 194 195 196 197 198 199 200 201 202 203 204 205 206 207
    208 209 210 211 212 213 214 215 216 217 218 219 220 221 222 223
    224 225 226 227 228 229 230 231 232 233 234 235 236 237 238 239
    240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255
);

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
