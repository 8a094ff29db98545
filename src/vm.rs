//! [`Vm`]: the one virtual machine type. It holds the configuration toggles, the helper
//! registry and callbacks, the loaded [`Program`], and the JIT cache.
//!
//! This file owns configuration, registration and load/unload. Execution lives in
//! [`crate::interpreter`], compilation in [`crate::jit`], ELF loading in [`crate::kernel::elf`]; each
//! adds its methods to `Vm` in its own module.

use alloc::boxed::Box;
use alloc::string::ToString;
use core::fmt;

use crate::error::LoadError;
use crate::exec::helpers::{
    DispatcherFn, HelperFn, HelperNames, HelperTable, HelperValidator, RustHelper,
};
use crate::isa::{self, HELPER_SLOTS};
use crate::program::Program;

/// Consulted during validation for each function's frame size: gets the function's first slot,
/// returns its stack usage in bytes (must be a multiple of 16).
pub type StackUsageCalculator = Box<dyn Fn(usize) -> i32 + Send + Sync>;

/// Accepts or refuses an access `[addr, addr+size)` that is in neither `mem` nor the stack.
pub type BoundsCheckFn = Box<dyn Fn(u64, u64) -> bool + Send + Sync>;

/// Resolves an ELF `R_BPF_64_64` data relocation: gets the section bytes, the symbol name, the
/// symbol's offset and size; returns the value to place in the `lddw`.
pub type DataRelocationFn = Box<dyn Fn(&[u8], &str, u64, u64) -> u64 + Send + Sync>;

/// Receives every runtime error message (without trailing newline).
pub type ErrorPrinter = Box<dyn Fn(&str) + Send + Sync>;

/// What the debug callback sees before each interpreted instruction.
#[derive(Debug)]
pub struct DebugState<'a> {
    /// The slot about to execute.
    pub pc: usize,
    /// The register file (16 slots, as uBPF's).
    pub registers: &'a [u64; 16],
    /// The whole stack of this execution.
    pub stack: &'a [u8],
    /// Bitmap of initialised registers (0x406 unless the undefined-behaviour check is on).
    pub register_mask: u64,
    /// One bit per stack byte written, when the undefined-behaviour check is on.
    pub stack_mask: Option<&'a [u8]>,
}

/// Called before each interpreted instruction.
pub type DebugFn = Box<dyn Fn(&DebugState<'_>) + Send + Sync>;

/// Which engine profile runs programs (uBPF's `enum ubpf_execution_profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProfile {
    /// The default profile: bounds checks against mem, stack and the callback.
    #[default]
    Legacy,
    /// uBPF's provenance-tracking interpreter profile (interpreter only; `docs/semantics.md`).
    Safe,
}

/// Plain settings of a VM. Every field has uBPF's default (`docs/c-api.md`, "A new VM").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Check every load and store against the permitted regions (default on).
    pub bounds_check: bool,
    /// Track initialised registers and stack bytes in the interpreter (default off).
    pub undefined_behavior_check: bool,
    /// uBPF maps bytecode read-only; here it only selects the empty-program quirk (default on).
    pub readonly_bytecode: bool,
    /// Randomise JIT immediates (default off).
    pub constant_blinding: bool,
    /// Maximum instructions per execution; 0 means unlimited.
    pub instruction_limit: u32,
    /// uBPF's bytecode-encoding secret; stored for compatibility.
    pub pointer_secret: u64,
    /// Capacity in bytes allowed for JIT code (uBPF's scratch buffer size, default 65536).
    pub jit_code_size: usize,
    /// The helper index whose zero return ends the program (`None`: no unwind helper).
    pub unwind_index: Option<u32>,
    /// The execution profile.
    pub profile: ExecutionProfile,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bounds_check: true,
            undefined_behavior_check: false,
            readonly_bytecode: true,
            constant_blinding: false,
            instruction_limit: 0,
            pointer_secret: 0,
            jit_code_size: 65536,
            unwind_index: None,
            profile: ExecutionProfile::Legacy,
        }
    }
}

/// Why a configuration or registration call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Helper index 64 or above.
    #[error("helper index {0} is out of range (max {max})", max = HELPER_SLOTS - 1)]
    HelperIndexOutOfRange(u32),
    /// The setting can be made only once (unwind index, data relocation, bounds callback).
    #[error("{0} is already set")]
    AlreadySet(&'static str),
    /// The setting cannot change while code is loaded.
    #[error("code is loaded")]
    CodeLoaded,
    /// The debug callback can only go from none to set, or from set to none.
    #[error("debug function can only be set when unset, or cleared when set")]
    DebugFnTransition,
    /// The requested feature is not implemented by librbpf.
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// The loaded code cannot be freed: a helper called from it is running on this thread
    /// (docs/sandbox.md, "Re-entrancy").
    #[error(
        "the program is running (this call comes from one of its helpers); it cannot be unloaded now"
    )]
    CodeRunning,
}

/// An eBPF virtual machine. Configure it, register helpers, [`load`](Vm::load) a program, then
/// execute it with the interpreter or compile it with the JIT.
///
/// `&Vm` is `Sync`: any number of threads may execute the loaded program at once. Everything
/// that changes the VM takes `&mut self`.
pub struct Vm {
    pub(crate) config: Config,
    pub(crate) helpers: Box<HelperTable>,
    pub(crate) helper_names: HelperNames,
    pub(crate) helper_validator: Option<HelperValidator>,
    pub(crate) stack_usage_calculator: Option<StackUsageCalculator>,
    pub(crate) data_relocation: Option<DataRelocationFn>,
    pub(crate) bounds_check_fn: Option<BoundsCheckFn>,
    pub(crate) debug_fn: Option<DebugFn>,
    pub(crate) error_printer: Option<ErrorPrinter>,
    pub(crate) program: Option<Program>,
    /// The loaded program pre-decoded for the interpreter's fast path (empty when none).
    pub(crate) decoded: crate::interpreter::Decoded,
    /// Whether compiled code consults the per-run extra regions of
    /// `execute_jit_with_regions` (read at compile time).
    pub(crate) extra_regions: bool,
    #[cfg(feature = "std")]
    pub(crate) maps: crate::exec::maps::VmMaps,
    #[cfg(feature = "std")]
    pub(crate) jit: crate::jit::JitCache,
    pub(crate) safe: crate::interpreter::SafeRegistry,
}

impl fmt::Debug for Vm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vm")
            .field("config", &self.config)
            .field("loaded_slots", &self.program.as_ref().map(Program::len))
            .finish_non_exhaustive()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Copies of the code may outlive the VM: detach their context first.
        #[cfg(feature = "std")]
        self.release_code();
    }
}

impl Default for Vm {
    fn default() -> Self {
        Self::new()
    }
}

impl Vm {
    /// A fresh VM with uBPF's defaults: bounds checks on, nothing registered, nothing loaded.
    pub fn new() -> Self {
        Vm {
            config: Config::default(),
            helpers: Box::default(),
            helper_names: HelperNames::default(),
            helper_validator: None,
            stack_usage_calculator: None,
            data_relocation: None,
            bounds_check_fn: None,
            debug_fn: None,
            error_printer: None,
            program: None,
            decoded: crate::interpreter::Decoded::default(),
            extra_regions: false,
            #[cfg(feature = "std")]
            maps: crate::exec::maps::VmMaps::default(),
            #[cfg(feature = "std")]
            jit: crate::jit::JitCache::default(),
            safe: crate::interpreter::SafeRegistry::default(),
        }
    }

    /// The current settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Mutable access to the settings. Flags only affect later loads, executions and compiles.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Registers helper `f` at `index` under `name` (replacing any previous one).
    pub fn register_helper(
        &mut self,
        index: u32,
        name: Option<&str>,
        f: HelperFn,
    ) -> Result<(), ConfigError> {
        let slot = usize::try_from(index)
            .ok()
            .filter(|&i| i < HELPER_SLOTS)
            .ok_or(ConfigError::HelperIndexOutOfRange(index))?;
        self.helpers.set_c(slot, Some(f));
        self.helper_names.set(slot, name);
        Ok(())
    }

    /// Registers a Rust helper at `index` (0..256) under `name`, replacing any previous one: a
    /// `fn` item or a closure with captured state, called with r1..r5 in both engines.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let calls = Arc::new(AtomicU64::new(0));
    /// let seen = calls.clone();
    /// let mut vm = rbpf::Vm::new();
    /// vm.register_closure(1, Some("count"), move |a, _, _, _, _| {
    ///     seen.fetch_add(1, Ordering::Relaxed) + a
    /// })?;
    /// vm.load(&rbpf::asm::assemble_bytes("mov %r1, 10\ncall 1\nexit")?)?;
    /// assert_eq!(vm.execute(&mut [])?, 10);
    /// assert_eq!(calls.load(Ordering::Relaxed), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_closure(
        &mut self,
        index: u32,
        name: Option<&str>,
        f: impl Fn(u64, u64, u64, u64, u64) -> u64 + Send + Sync + 'static,
    ) -> Result<(), ConfigError> {
        self.register_rust_helper(index, name, RustHelper::Plain(alloc::sync::Arc::new(f)))
    }

    /// Registers a Rust helper that also receives the run's input memory (the buffer r1
    /// pointed to at entry; empty when there is none), like uBPF's context-aware helpers.
    pub fn register_closure_with_memory(
        &mut self,
        index: u32,
        name: Option<&str>,
        f: impl Fn(u64, u64, u64, u64, u64, &mut [u8]) -> u64 + Send + Sync + 'static,
    ) -> Result<(), ConfigError> {
        self.register_rust_helper(
            index,
            name,
            RustHelper::WithMemory(alloc::sync::Arc::new(f)),
        )
    }

    /// Registers `helper` at `index` (0..256, the kernel's helper numbers included) under `name`, replacing any previous one.
    pub fn register_rust_helper(
        &mut self,
        index: u32,
        name: Option<&str>,
        helper: RustHelper,
    ) -> Result<(), ConfigError> {
        if !self.helpers.set_rust(index, helper) {
            return Err(ConfigError::HelperIndexOutOfRange(index));
        }
        self.helper_names.set(index as usize, name);
        Ok(())
    }

    /// Routes every helper call through `dispatcher` (or back to the table when `None`);
    /// `validator` decides at load time which indices exist while a dispatcher is set.
    pub fn set_dispatcher(
        &mut self,
        dispatcher: Option<DispatcherFn>,
        validator: Option<HelperValidator>,
    ) {
        self.helpers.dispatcher = dispatcher;
        self.helper_validator = validator;
    }

    /// The helper table engines call through.
    pub fn helpers(&self) -> &HelperTable {
        &self.helpers
    }

    /// The lowest helper index registered under `name`.
    pub fn helper_index(&self, name: &str) -> Option<u32> {
        self.helper_names
            .index_of(name)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Whether a `call imm` to `index` is acceptable at load time: asks the validator when a
    /// dispatcher is set, otherwise looks in the table.
    pub fn helper_exists(&self, index: u32) -> bool {
        if self.helpers.dispatcher.is_some() {
            return self
                .helper_validator
                .as_ref()
                .is_some_and(|valid| valid(index));
        }
        usize::try_from(index)
            .ok()
            .and_then(|i| self.helpers.slots.get(i))
            .is_some_and(Option::is_some)
    }

    /// Sets the unwind helper index; like uBPF, only once.
    pub fn set_unwind_index(&mut self, index: u32) -> Result<(), ConfigError> {
        if self.config.unwind_index.is_some() {
            return Err(ConfigError::AlreadySet("unwind function index"));
        }
        self.config.unwind_index = Some(index);
        Ok(())
    }

    /// Installs the stack-usage calculator consulted by later loads.
    pub fn set_stack_usage_calculator(&mut self, calculator: Option<StackUsageCalculator>) {
        self.stack_usage_calculator = calculator;
    }

    /// Installs the data-relocation callback; like uBPF, only once.
    pub fn set_data_relocation(&mut self, f: DataRelocationFn) -> Result<(), ConfigError> {
        if self.data_relocation.is_some() {
            return Err(ConfigError::AlreadySet("data relocation function"));
        }
        self.data_relocation = Some(f);
        Ok(())
    }

    /// Installs the bounds callback; like uBPF, only once.
    pub fn set_bounds_check_fn(&mut self, f: BoundsCheckFn) -> Result<(), ConfigError> {
        if self.bounds_check_fn.is_some() {
            return Err(ConfigError::AlreadySet("bounds check function"));
        }
        self.bounds_check_fn = Some(f);
        Ok(())
    }

    /// Sets or clears the debug callback: allowed from none to set and from set to none.
    pub fn set_debug_fn(&mut self, f: Option<DebugFn>) -> Result<(), ConfigError> {
        match (&self.debug_fn, &f) {
            (None, Some(_)) | (Some(_), None) => {
                self.debug_fn = f;
                Ok(())
            }
            _ => Err(ConfigError::DebugFnTransition),
        }
    }

    /// Sets where runtime error messages go. Without a printer (the default) nothing is
    /// printed: the Rust API returns errors as values. The C API installs a printer writing to
    /// standard error, as uBPF does.
    pub fn set_error_printer(&mut self, printer: Option<ErrorPrinter>) {
        self.error_printer = printer;
    }

    /// Reports a runtime error through the error printer, if one is installed (silent failures
    /// are not printed).
    pub fn report(&self, err: &crate::error::ExecError) {
        if !err.is_printed() {
            return;
        }
        self.print_error(&err.to_string());
    }

    /// Makes code compiled from now on accept accesses to the extra regions a run passes to
    /// [`Vm::execute_jit_with_regions`] (the interpreter always does). Costs nothing on the
    /// fast path; an access outside mem and the stack then returns to the code after the
    /// runtime check instead of faulting at once.
    pub fn enable_extra_regions(&mut self) {
        self.extra_regions = true;
    }

    /// Stores the pointer secret; refused while code is loaded (uBPF semantics).
    pub fn set_pointer_secret(&mut self, secret: u64) -> Result<(), ConfigError> {
        if self.program.is_some() {
            return Err(ConfigError::CodeLoaded);
        }
        self.config.pointer_secret = secret;
        Ok(())
    }

    /// Validates `code` (raw little-endian bytecode) and makes it the loaded program.
    pub fn load(&mut self, code: &[u8]) -> Result<(), LoadError> {
        let program = self.verify(code)?;
        self.install(program);
        Ok(())
    }

    /// Runs uBPF's load-time checks on `code` without changing the VM.
    pub fn verify(&self, code: &[u8]) -> Result<Program, LoadError> {
        if self.program.is_some() {
            return Err(LoadError::AlreadyLoaded);
        }
        let slots = isa::decode_slots(code).ok_or(LoadError::LengthNotMultipleOf8)?;
        let helper_exists = |index: u32| self.helper_exists(index);
        let options = crate::program::verifier::VerifyOptions {
            helper_exists: &helper_exists,
            stack_usage: self
                .stack_usage_calculator
                .as_deref()
                .map(|f| f as &dyn Fn(usize) -> i32),
            register_div_ignores_imm: false,
        };
        let program = crate::program::verifier::verify(slots, &options)?;
        if program.is_empty() && self.config.readonly_bytecode {
            // uBPF maps read-only bytecode with mmap, which fails for length 0.
            return Err(LoadError::OutOfMemory);
        }
        Ok(program)
    }

    /// Makes an already verified program the loaded one (used by `load` and the ELF loader,
    /// which refuse while a program is loaded, so no running code is replaced).
    pub(crate) fn install(&mut self, program: Program) {
        self.release_all_code();
        self.decoded = crate::interpreter::Decoded::new(&program);
        self.program = Some(program);
    }

    /// Drops the loaded program and any compiled code; keeps helpers, callbacks and settings.
    /// Code copied out with [`Vm::copy_jit`] or [`Vm::translate`] keeps working.
    ///
    /// Refused with [`ConfigError::CodeRunning`] (nothing changes) when called from a helper
    /// while a run of this VM's program is in progress on this thread: the run would return
    /// into freed code.
    pub fn unload(&mut self) -> Result<(), ConfigError> {
        if self.is_running_on_this_thread() {
            return Err(ConfigError::CodeRunning);
        }
        self.release_all_code();
        self.decoded = crate::interpreter::Decoded::default();
        self.program = None;
        Ok(())
    }

    /// Drops compiled code and the loaded program's maps (both need `std`).
    fn release_all_code(&mut self) {
        #[cfg(feature = "std")]
        {
            self.release_code();
            self.maps.maps = crate::exec::maps::MapSet::default();
            self.maps.programs.clear();
        }
    }

    /// Whether a run of this VM's code (either engine) is in progress on this thread, below
    /// a helper call: then nothing may free that code (docs/sandbox.md, "Re-entrancy").
    /// Without `std` (no thread-locals) runs are not tracked and this is always `false`.
    pub fn is_running_on_this_thread(&self) -> bool {
        #[cfg(feature = "std")]
        {
            crate::exec::reentry::is_running(core::ptr::from_ref(self) as usize)
        }
        #[cfg(not(feature = "std"))]
        {
            false
        }
    }

    /// Prints `text` through the error printer, if one is installed (the Rust API prints
    /// nothing by default; the C API installs one writing to standard error).
    pub fn print_error(&self, text: &str) {
        if let Some(print) = &self.error_printer {
            print(text);
        }
    }

    /// The loaded program.
    pub fn program(&self) -> Option<&Program> {
        self.program.as_ref()
    }
}
