//! [`Vm`]: the one virtual machine type. It holds the configuration toggles, the helper
//! registry and callbacks, the loaded [`Program`], and the JIT cache.
//!
//! This file owns configuration, registration and load/unload. Execution lives in
//! [`crate::interpreter`], compilation in [`crate::jit`], ELF loading in [`crate::kernel::elf`]; each
//! adds its methods to `Vm` in its own module.

use alloc::boxed::Box;
use core::fmt;

use crate::error::ExecError;
#[cfg(feature = "std")]
use crate::error::JitError;
use crate::error::LoadError;
use crate::exec::helpers::{
    DispatcherFn, HelperFn, HelperNames, HelperTable, HelperValidator, RustHelper,
};
pub use crate::exec::machine::{
    BoundsCheckFn, Config, ConfigError, DebugFn, DebugState, ErrorPrinter, ExecutionProfile,
    JitTier, Machine,
};
use crate::exec::memory::MemRegion;
use crate::interpreter::{Interpreter, SafeHelperResult, SafeRegion, SafeRegistry};
use crate::isa::{self, HELPER_SLOTS};
#[cfg(feature = "std")]
use crate::jit::JitMode;
use crate::program::Program;

/// Consulted during validation for each function's frame size: gets the function's first slot,
/// returns its stack usage in bytes (must be a multiple of 16).
pub type StackUsageCalculator = Box<dyn Fn(usize) -> i32 + Send + Sync>;

/// Resolves an ELF `R_BPF_64_64` data relocation: gets the section bytes, the symbol name, the
/// symbol's offset and size; returns the value to place in the `lddw`.
pub type DataRelocationFn = Box<dyn Fn(&[u8], &str, u64, u64) -> u64 + Send + Sync>;

/// An eBPF virtual machine. Configure it, register helpers, [`load`](Vm::load) a program, then
/// execute it with the interpreter or compile it with the JIT.
///
/// `&Vm` is `Sync`: any number of threads may execute the loaded program at once. Everything
/// that changes the VM takes `&mut self`.
pub struct Vm {
    /// What every run reads: settings, helpers, callbacks, maps, the loaded program.
    pub(crate) machine: Machine,
    pub(crate) helper_names: HelperNames,
    pub(crate) helper_validator: Option<HelperValidator>,
    pub(crate) stack_usage_calculator: Option<StackUsageCalculator>,
    pub(crate) data_relocation: Option<DataRelocationFn>,
    /// The loaded program pre-decoded for the interpreter's fast path (empty when none).
    pub(crate) decoded: crate::interpreter::Decoded,
    #[cfg(feature = "std")]
    pub(crate) jit: crate::jit::JitCache,
    pub(crate) safe: crate::interpreter::SafeRegistry,
}

impl fmt::Debug for Vm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vm")
            .field("config", &self.machine.config)
            .field(
                "loaded_slots",
                &self.machine.program.as_ref().map(Program::len),
            )
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
            machine: Machine::default(),
            helper_names: HelperNames::default(),
            helper_validator: None,
            stack_usage_calculator: None,
            data_relocation: None,
            decoded: crate::interpreter::Decoded::default(),
            #[cfg(feature = "std")]
            jit: crate::jit::JitCache::default(),
            safe: crate::interpreter::SafeRegistry::default(),
        }
    }

    /// The current settings.
    pub fn config(&self) -> &Config {
        &self.machine.config
    }

    /// Mutable access to the settings. Flags only affect later loads, executions and compiles.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.machine.config
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
        self.machine.helpers.set_c(slot, Some(f));
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
        if !self.machine.helpers.set_rust(index, helper) {
            return Err(ConfigError::HelperIndexOutOfRange(index));
        }
        self.helper_names.set(index as usize, name);
        Ok(())
    }

    /// Empties helper slot `index` (0..256), dropping the C or Rust helper there, and records
    /// `name` for it, as uBPF's `ubpf_register` does when given a NULL function: the name
    /// still resolves through [`Vm::helper_index`], but a program calling the slot is refused
    /// at load time (unless a dispatcher is set).
    pub fn clear_helper(&mut self, index: u32, name: Option<&str>) -> Result<(), ConfigError> {
        let slot = usize::try_from(index)
            .ok()
            .filter(|&i| i < HELPER_SLOTS)
            .ok_or(ConfigError::HelperIndexOutOfRange(index))?;
        self.machine.helpers.set_c(slot, None);
        self.helper_names.set(slot, name);
        Ok(())
    }

    /// Routes every helper call through `dispatcher` (or back to the table when `None`);
    /// `validator` decides at load time which indices exist while a dispatcher is set.
    pub fn set_dispatcher(
        &mut self,
        dispatcher: Option<DispatcherFn>,
        validator: Option<HelperValidator>,
    ) {
        self.machine.helpers.dispatcher = dispatcher;
        self.helper_validator = validator;
    }

    /// The helper table engines call through.
    pub fn helpers(&self) -> &HelperTable {
        &self.machine.helpers
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
        if self.machine.helpers.dispatcher.is_some() {
            return self
                .helper_validator
                .as_ref()
                .is_some_and(|valid| valid(index));
        }
        usize::try_from(index)
            .ok()
            .and_then(|i| self.machine.helpers.slots.get(i))
            .is_some_and(Option::is_some)
    }

    /// Sets the unwind helper index; like uBPF, only once.
    pub fn set_unwind_index(&mut self, index: u32) -> Result<(), ConfigError> {
        if self.machine.config.unwind_index.is_some() {
            return Err(ConfigError::AlreadySet("unwind function index"));
        }
        self.machine.config.unwind_index = Some(index);
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

    /// Whether a data-relocation callback is installed ([`Vm::set_data_relocation`] then
    /// fails): uBPF's `ubpf_register_data_relocation` refuses a second call even with NULL.
    pub fn has_data_relocation(&self) -> bool {
        self.data_relocation.is_some()
    }

    /// Installs the bounds callback; like uBPF, only once.
    pub fn set_bounds_check_fn(&mut self, f: BoundsCheckFn) -> Result<(), ConfigError> {
        if self.machine.bounds_check_fn.is_some() {
            return Err(ConfigError::AlreadySet("bounds check function"));
        }
        self.machine.bounds_check_fn = Some(f);
        Ok(())
    }

    /// Installs or removes the bounds callback, replacing any earlier one (what rbpf's
    /// `register_allowed_memory` needs; [`Vm::set_bounds_check_fn`] keeps uBPF's set-once
    /// rule).
    pub fn replace_bounds_check_fn(&mut self, f: Option<BoundsCheckFn>) {
        self.machine.bounds_check_fn = f;
    }

    /// Whether a bounds callback is installed ([`Vm::set_bounds_check_fn`] then fails):
    /// uBPF's `ubpf_register_data_bounds_check` refuses a second call even with NULL.
    pub fn has_bounds_check_fn(&self) -> bool {
        self.machine.bounds_check_fn.is_some()
    }

    /// Sets or clears the debug callback: allowed from none to set and from set to none.
    pub fn set_debug_fn(&mut self, f: Option<DebugFn>) -> Result<(), ConfigError> {
        match (&self.machine.debug_fn, &f) {
            (None, Some(_)) | (Some(_), None) => {
                self.machine.debug_fn = f;
                Ok(())
            }
            _ => Err(ConfigError::DebugFnTransition),
        }
    }

    /// Sets where runtime error messages go. Without a printer (the default) nothing is
    /// printed: the Rust API returns errors as values. The C API installs a printer writing to
    /// standard error, as uBPF does.
    pub fn set_error_printer(&mut self, printer: Option<ErrorPrinter>) {
        self.machine.error_printer = printer;
    }

    /// Reports a runtime error through the error printer, if one is installed (silent failures
    /// are not printed).
    pub fn report(&self, err: &crate::error::ExecError) {
        self.machine.report(err);
    }

    /// Makes code compiled from now on accept accesses to the extra regions a run passes to
    /// [`Vm::execute_jit_with_regions`] (the interpreter always does). Costs nothing on the
    /// fast path; an access outside mem and the stack then returns to the code after the
    /// runtime check instead of faulting at once.
    pub fn enable_extra_regions(&mut self) {
        self.machine.extra_regions = true;
    }

    /// Stores the pointer secret; refused while code is loaded (uBPF semantics).
    pub fn set_pointer_secret(&mut self, secret: u64) -> Result<(), ConfigError> {
        if self.machine.program.is_some() {
            return Err(ConfigError::CodeLoaded);
        }
        self.machine.config.pointer_secret = secret;
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
        if self.machine.program.is_some() {
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
            rbpf_ignored_fields: false,
        };
        let program = crate::program::verifier::verify(slots, &options)?;
        if program.is_empty() && self.machine.config.readonly_bytecode {
            // uBPF maps read-only bytecode with mmap, which fails for length 0.
            return Err(LoadError::OutOfMemory);
        }
        Ok(program)
    }

    /// Makes an already verified program the loaded one (used by `load` and the ELF loader,
    /// which refuse while a program is loaded, so no running code is replaced).
    pub(crate) fn install(&mut self, program: Program) {
        self.release_all_code();
        let idioms = crate::exec::idiom::Idioms::of(&program.insns);
        self.decoded = crate::interpreter::Decoded::new(&program, &idioms);
        self.machine.program = Some(program);
        self.machine.idioms = idioms;
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
        self.machine.program = None;
        self.machine.idioms = crate::exec::idiom::Idioms::default();
        Ok(())
    }

    /// Drops compiled code and the loaded program's maps (both need `std`).
    fn release_all_code(&mut self) {
        #[cfg(feature = "std")]
        {
            self.release_code();
            self.machine.maps.maps = crate::exec::maps::MapSet::default();
            self.machine.maps.programs.clear();
        }
    }

    /// Whether a run of this VM's code (either engine) is in progress on this thread, below
    /// a helper call: then nothing may free that code (docs/sandbox.md, "Re-entrancy").
    /// Without `std` (no thread-locals) runs are not tracked and this is always `false`.
    pub fn is_running_on_this_thread(&self) -> bool {
        self.machine.is_running_on_this_thread()
    }

    /// Prints `text` through the error printer, if one is installed (the Rust API prints
    /// nothing by default; the C API installs one writing to standard error).
    pub fn print_error(&self, text: &str) {
        self.machine.print_error(text);
    }

    /// The maps of the loaded program (empty when it declares none or nothing is loaded).
    #[cfg(feature = "std")]
    pub fn maps(&self) -> &crate::exec::maps::MapSet {
        &self.machine.maps.maps
    }

    /// The loaded program's map called `name`.
    #[cfg(feature = "std")]
    pub fn map(&self, name: &str) -> Option<&std::sync::Arc<crate::exec::maps::Map>> {
        self.machine.maps.maps.by_name(name)
    }

    /// The number under which a program of the loaded object (the function that starts a
    /// section other than `.text`, by name) goes into a `PROG_ARRAY` for `bpf_tail_call`.
    /// Only objects that make tail calls, loaded with the kernel's helpers, number programs.
    #[cfg(feature = "std")]
    pub fn program_number(&self, name: &str) -> Option<u32> {
        let i = self.machine.maps.programs.iter().position(|p| p == name)?;
        u32::try_from(i).ok()
    }

    /// The loaded program.
    pub fn program(&self) -> Option<&Program> {
        self.machine.program.as_ref()
    }
}

/// Running the loaded program with the interpreter (`crate::interpreter`).
impl Vm {
    /// The interpreter over this VM's loaded program.
    #[inline]
    fn interpreter(&self) -> Interpreter<'_> {
        Interpreter {
            machine: &self.machine,
            decoded: &self.decoded,
            safe: &self.safe,
        }
    }

    /// Runs the loaded program with the interpreter over `mem`, on a stack of `STACK_SIZE`
    /// (4096) bytes, and returns r0.
    ///
    /// r1 holds the address of `mem` (null when it is empty), r2 its length and r10 the top of
    /// the stack. Failures are also reported through the VM's error printer (except uBPF's
    /// silent ones).
    ///
    /// A program never sees bytes it did not write: every stack byte it can reach reads 0
    /// until written (docs/sandbox.md, "Stack").
    #[inline]
    pub fn execute(&self, mem: &mut [u8]) -> Result<u64, ExecError> {
        self.interpreter().execute(mem)
    }

    /// [`Vm::execute`] with extra regions the program may also access during this run (see
    /// [`MemRegion`]): rbpf's mbuff modes give the packet data this way.
    #[inline]
    pub fn execute_with_regions(
        &self,
        mem: &mut [u8],
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        self.interpreter().execute_with_regions(mem, extra)
    }

    /// [`Vm::execute`] over a raw `mem` (uBPF's `ubpf_exec`; `mem` may be null).
    ///
    /// Each thread reuses one stack buffer (zeroed when the thread first runs a program);
    /// before each run the part of it the program can reach ([`Program::stack_reach`], all
    /// of it while a debug callback, which sees the whole stack, is set) is cleared, so a run
    /// never reads what an earlier one left. A nested execution on the same thread (from
    /// inside a helper) gets a fresh zeroed stack, and so does every run without `std` (no
    /// thread-locals).
    ///
    /// # Safety
    /// `mem` is null or valid for reads and writes of `mem_len` bytes for the whole call.
    #[inline]
    pub unsafe fn execute_on_own_stack(
        &self,
        mem: *mut u8,
        mem_len: usize,
    ) -> Result<u64, ExecError> {
        // SAFETY: forwarded to the caller's contract.
        unsafe { self.interpreter().execute_on_own_stack(mem, mem_len) }
    }

    /// Runs the loaded program over caller-provided memory and stack (uBPF's `ubpf_exec_ex`).
    /// The stack is used as given (not cleared).
    ///
    /// `mem` may be null. A buffer whose end would pass the end of the address space is
    /// refused with [`ExecError::InvalidBuffer`], and a run beyond the nesting limit with
    /// [`ExecError::NestingTooDeep`] (docs/sandbox.md). Errors are reported through
    /// [`Vm::report`] and returned.
    ///
    /// # Safety
    /// When not null, `mem` must be valid for reads and writes of `mem_len` bytes, and `stack`
    /// must be valid for `stack_len` bytes, for the whole call. With bounds checking off, the
    /// program may access any address it computes, exactly as in uBPF.
    pub unsafe fn execute_raw(
        &self,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
    ) -> Result<u64, ExecError> {
        // SAFETY: forwarded to the caller's contract.
        unsafe {
            self.interpreter()
                .execute_raw(mem, mem_len, stack, stack_len)
        }
    }

    /// [`Vm::execute_raw`] with the run's extra regions.
    ///
    /// # Safety
    /// As [`Vm::execute_raw`].
    pub unsafe fn execute_raw_with_regions(
        &self,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        // SAFETY: forwarded to the caller's contract.
        unsafe {
            self.interpreter()
                .execute_raw_with_regions(mem, mem_len, stack, stack_len, extra)
        }
    }

    /// Registers helper `f` at `index` for the safe profile, with what its result is
    /// (uBPF's `ubpf_register_safe_helper`). The helper is also registered in the ordinary
    /// table under `name`.
    ///
    /// Refused for an index of 64 or more, and for pointer/handle results with
    /// `region_size == 0` or a reserved region id.
    pub fn register_safe_helper(
        &mut self,
        index: u32,
        name: Option<&str>,
        f: HelperFn,
        result: SafeHelperResult,
    ) -> Result<(), ConfigError> {
        SafeRegistry::check_helper(index, result)?;
        self.register_helper(index, name, f)?;
        self.safe.set_helper(index, result);
        Ok(())
    }

    /// Registers (or, for a known id, replaces) a host region that safe helpers' results may
    /// point into (uBPF's `ubpf_register_safe_region`).
    ///
    /// Refused for a reserved id, `size == 0`, `base == 0`, unknown permission bits, a region
    /// that wraps the address space, or when all 64 slots are taken.
    pub fn register_safe_region(&mut self, region: SafeRegion) -> Result<(), ConfigError> {
        self.safe.add_region(region)
    }
}

/// Compiling the loaded program and running the compiled code (`crate::jit`).
#[cfg(feature = "std")]
impl Vm {
    /// Compiles the loaded program (uBPF's `ubpf_compile_ex`). A second call in the same mode
    /// returns the same pointer; compiling in the other mode replaces (and invalidates) the
    /// previous code. The code lives until [`Vm::unload`], a reload, or the VM's drop.
    ///
    /// The returned pointer is a [`JitFn`](crate::jit::JitFn) for [`JitMode::Basic`] and a
    /// [`JitExFn`](crate::jit::JitExFn) for [`JitMode::Extended`]. Code larger than `config.jit_code_size` is refused with
    /// [`JitError::TargetBufferTooSmall`].
    ///
    /// Called directly, the code returns `u64::MAX` on a fault and prints the error through
    /// the VM's error printer. Its slow paths find the VM through the address recorded at
    /// compile time (refreshed by every [`Vm::execute_jit`]): call the pointer directly only
    /// while the `Vm` stays where it was (as behind the C API's boxed handle).
    pub fn compile(&mut self, mode: JitMode) -> Result<*const u8, JitError> {
        self.jit.compile(&self.machine, mode)
    }

    /// Writes machine code for the loaded program into `buf` (uBPF's `ubpf_translate_ex`) and
    /// returns its length. The caller makes `buf` executable and owns the code: it runs
    /// wherever the bytes are copied, also after this VM unloads the program or is dropped
    /// (then with the helpers registered at that moment, mem and the stack as its only
    /// regions, and faults reported on standard error: docs/sandbox.md, "Copies").
    pub fn translate(&mut self, mode: JitMode, buf: &mut [u8]) -> Result<usize, JitError> {
        self.jit.translate(&self.machine, mode, buf)
    }

    /// Copies the compiled image into `buf` (uBPF's `ubpf_copy_jit`). The copy is the
    /// caller's, as with [`Vm::translate`].
    pub fn copy_jit(&self, buf: &mut [u8]) -> Result<(), JitError> {
        self.jit.copy(buf)
    }

    /// Size in bytes of the compiled image, if any.
    pub fn jit_size(&self) -> Option<usize> {
        self.jit.size()
    }

    /// Waits until the compiled image runs its final code: when [`Vm::compile`] returned
    /// baseline-tier code and handed the optimised compile to a background thread
    /// (`Config::background_tier_up`), until that compile has finished. Returns whether the
    /// image runs code from a background compile (`false` for code compiled in one step, or
    /// when the background compile gave up and the baseline code stays), `None` without an
    /// image. Never needed for correctness: both tiers give the same results.
    pub fn wait_for_tier_up(&self) -> Option<bool> {
        self.jit.wait_for_tier_up()
    }

    /// The mode of the compiled image, if any.
    pub fn jit_mode(&self) -> Option<JitMode> {
        self.jit.mode()
    }

    /// Frees the compiled image and lets go of its context (detaching it when copies may
    /// still use it). Called when the program is unloaded or replaced and when the VM drops.
    pub(crate) fn release_code(&mut self) {
        self.jit.release(&self.machine);
    }

    /// Runs the compiled code on `mem` (r1 = mem, r2 = its length). Extended-mode code gets a
    /// fresh 4096-byte stack; in both modes every stack byte the program can reach reads 0
    /// until written. Faults come back as the [`ExecError`] the interpreter would give,
    /// and are reported through [`Vm::report`].
    pub fn execute_jit(&self, mem: &mut [u8]) -> Result<u64, ExecError> {
        // An empty buffer is passed as NULL, as C callers without memory do.
        let ptr = if mem.is_empty() {
            std::ptr::null_mut()
        } else {
            mem.as_mut_ptr()
        };
        // SAFETY: `mem` is a valid buffer of its length; the stack is allocated by the callee.
        unsafe { self.execute_jit_raw(ptr, mem.len(), std::ptr::null_mut(), 0) }
    }

    /// [`Vm::execute_jit`] with extra regions the program may also access during this run
    /// (see [`MemRegion`]). The code must have been compiled after
    /// [`Vm::enable_extra_regions`]; otherwise accesses to them fault as out of bounds.
    pub fn execute_jit_with_regions(
        &self,
        mem: &mut [u8],
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        let ptr = if mem.is_empty() {
            std::ptr::null_mut()
        } else {
            mem.as_mut_ptr()
        };
        // SAFETY: `mem` is a valid buffer of its length; the regions borrow their buffers.
        unsafe { self.execute_jit_raw_with_regions(ptr, mem.len(), std::ptr::null_mut(), 0, extra) }
    }

    /// [`Vm::execute_jit_raw`] with the run's extra regions.
    ///
    /// # Safety
    /// As [`Vm::execute_jit_raw`].
    pub unsafe fn execute_jit_raw_with_regions(
        &self,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
        extra: &[MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        // SAFETY: forwarded to the caller's contract.
        unsafe {
            self.jit
                .execute_raw_with_regions(&self.machine, mem, mem_len, stack, stack_len, extra)
        }
    }

    /// [`Vm::execute_jit`] over raw pointers (for the C API). `mem` may be null. A null `stack`
    /// gives Extended-mode code a fresh 4096-byte stack; Basic-mode code ignores `stack`.
    /// Returns [`ExecError::NotLoaded`] when nothing is compiled.
    ///
    /// # Safety
    /// `mem` must be valid for `mem_len` bytes and `stack` (when non-null) for `stack_len`
    /// bytes of reads and writes, for the whole run. With bounds checking off, the program
    /// must only access memory that is valid.
    pub unsafe fn execute_jit_raw(
        &self,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
    ) -> Result<u64, ExecError> {
        // SAFETY: forwarded to the caller's contract.
        unsafe {
            self.jit
                .execute_raw(&self.machine, mem, mem_len, stack, stack_len)
        }
    }
}

/// The conformance suite's helper table registers on a VM like any other helpers.
impl crate::tools::conformance::HelperRegistry for Vm {
    fn register_suite_helper(&mut self, index: u32, name: &str, f: HelperFn) {
        // The suite's indices (0..=5) are below the 64-slot limit: this cannot fail.
        let _ = self.register_helper(index, Some(name), f);
    }

    fn set_suite_unwind_index(&mut self, index: u32) {
        // `AlreadySet` just means an unwind index is in place; keep it.
        let _ = self.set_unwind_index(index);
    }
}

#[cfg(all(test, feature = "std", feature = "elf"))]
mod compare_tests;
#[cfg(all(test, feature = "std"))]
mod entry_tests;
#[cfg(test)]
mod fast_path_tests;
#[cfg(all(test, feature = "std"))]
mod jit_tests;
#[cfg(test)]
mod safe_profile_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Access;
    use crate::isa::{Insn, encode_slots};
    use crate::program::DataSection;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    fn lddw(dst: u8, value: u64) -> [Insn; 2] {
        [
            Insn::new(0x18, dst, 0, 0, value as u32 as i32),
            Insn::new(0, 0, 0, 0, (value >> 32) as u32 as i32),
        ]
    }

    #[test]
    fn data_sections_are_accessible_and_read_only_ones_refuse_stores() {
        let mut vm = Vm::new();
        vm.set_error_printer(Some(Box::new(|_| {})));
        let mut program = vm
            .verify(&encode_slots(&[Insn::new(0x95, 0, 0, 0, 0)]))
            .expect("valid");
        program
            .data_sections
            .push(DataSection::new(".rodata", &7u64.to_le_bytes(), 8, false));
        program
            .data_sections
            .push(DataSection::new(".bss", &[], 8, true));
        let ro = program.data_sections[0].addr();
        let rw = program.data_sections[1].addr();
        let a = lddw(1, ro);
        let b = lddw(2, rw);
        program.insns = vec![
            a[0],
            a[1],
            b[0],
            b[1],
            Insn::new(0x79, 0, 1, 0, 0), // r0 = *ro
            Insn::new(0x07, 0, 0, 0, 1), // r0 += 1
            Insn::new(0x7b, 2, 0, 0, 0), // *rw = r0
            Insn::new(0x79, 0, 2, 0, 0), // r0 = *rw
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        vm.install(program);
        assert_eq!(vm.execute(&mut []), Ok(8));

        let mut program = vm.machine.program.take().expect("installed");
        // A store into the read-only section is out of bounds.
        program.insns[6] = Insn::new(0x7b, 1, 0, 0, 0);
        vm.install(program);
        assert!(matches!(
            vm.execute(&mut []),
            Err(ExecError::OutOfBounds {
                pc: 6,
                access: Access::Store,
                ..
            })
        ));
    }

    #[test]
    fn registration_sets_names_and_unwind() {
        let mut vm = Vm::new();
        crate::tools::conformance::register_helpers(&mut vm);
        assert_eq!(vm.helper_index("sqrti"), Some(3));
        assert_eq!(
            vm.config().unwind_index,
            Some(crate::tools::conformance::UNWIND_INDEX)
        );
        // Registering twice keeps working (the unwind index is already set).
        crate::tools::conformance::register_helpers(&mut vm);
        assert!(vm.helper_exists(5));
    }
}
