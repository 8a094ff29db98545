//! [`Machine`]: the part of a VM that every run reads, whichever engine runs it — the
//! settings, the helper table, the host's callbacks, the maps and the loaded program — and
//! the types of those settings and callbacks.
//!
//! [`crate::vm::Vm`] owns one `Machine` and lends it to the engines: the interpreter and the
//! JIT take `&Machine`, compiled code reaches it through its context, and helpers reach the
//! machine of the run that called them through [`crate::exec::current_run`]. Nothing here
//! knows which engine runs.

use alloc::boxed::Box;
use alloc::string::ToString;

use crate::error::ExecError;
use crate::exec::helpers::HelperTable;
use crate::exec::packet::PacketLoads;
use crate::isa::HELPER_SLOTS;
use crate::program::Program;

/// Accepts or refuses an access `[addr, addr+size)` that is in neither `mem` nor the stack.
pub type BoundsCheckFn = Box<dyn Fn(u64, u64) -> bool + Send + Sync>;

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

/// Decides whether the kernel's probe-read helpers (`bpf_probe_read_*`) may read
/// `[addr, addr + len)` of the host's own address space when the program could not read it
/// itself (`docs/maps.md`, "Memory reads"). Accepted reads still go through the kernel's
/// fault-tolerant copy, so an unmapped address gives `-EFAULT`, never a crash.
pub type ProbeReadFn = Box<dyn Fn(u64, u64) -> bool + Send + Sync>;

/// Supplies the call stack `bpf_get_stack` reports: instruction pointers, innermost first.
/// The argument says whether the program asked for the user stack (`BPF_F_USER_STACK`).
pub type StackFn = Box<dyn Fn(bool) -> alloc::vec::Vec<u64> + Send + Sync>;

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

/// How the JIT compiles (`docs/jit-compile-time.md`): by default it picks by the program's
/// estimated compile cost; the other choices force one tier (tests, benchmarks, and hosts
/// that prefer compile speed or code speed whatever the size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JitTier {
    /// Cranelift's optimiser for programs it compiles quickly, the one-pass baseline tier
    /// (Cranelift's cheapest settings where the baseline tier does not apply) above that.
    #[default]
    Auto,
    /// Always Cranelift with its optimiser and backtracking register allocator.
    Optimised,
    /// Always Cranelift without the optimiser, with its single-pass register allocator.
    Fast,
    /// Always the one-pass x86-64 baseline tier where it applies (no constant blinding, no
    /// legacy packet loads, no kernel helpers; an x86-64 System V host), `Fast` otherwise.
    Baseline,
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
    /// The semantics of the legacy packet loads `ldabs*`/`ldind*` (default: the kernel's;
    /// the rbpf-compatible VMs select rbpf's). Read at run time by the interpreter and at
    /// compile time by the JIT (`docs/semantics.md`, "Legacy packet loads").
    pub packet_loads: PacketLoads,
    /// How the JIT compiles (default: chosen per program, [`JitTier::Auto`]).
    pub jit_tier: JitTier,
    /// With [`JitTier::Auto`], whether a program whose optimised compile would take long
    /// enough to matter gets baseline-tier code at once and its optimised code from a
    /// background thread a moment later (default on; `docs/jit-compile-time.md`,
    /// "Background tier-up"). Off: such programs compile optimised before `compile` returns.
    pub background_tier_up: bool,
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
            packet_loads: PacketLoads::Kernel,
            jit_tier: JitTier::Auto,
            background_tier_up: true,
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

/// What every run of a VM reads: its settings, helpers, callbacks, maps and loaded program.
/// Owned by [`crate::vm::Vm`]; the engines borrow it.
///
/// `&Machine` is shared by every thread running the program; nothing a run does changes it.
#[derive(Default)]
pub struct Machine {
    /// The VM's settings.
    pub(crate) config: Config,
    /// The helper table both engines call through (boxed: compiled code holds its address).
    pub(crate) helpers: Box<HelperTable>,
    /// The host's bounds callback.
    pub(crate) bounds_check_fn: Option<BoundsCheckFn>,
    /// The host's per-instruction debug callback (interpreter only).
    pub(crate) debug_fn: Option<DebugFn>,
    /// Where runtime error messages go.
    pub(crate) error_printer: Option<ErrorPrinter>,
    /// The loaded program.
    pub(crate) program: Option<Program>,
    /// The loaded program's idioms, recognised at load for both engines (empty when none).
    pub(crate) idioms: crate::exec::idiom::Idioms,
    /// Whether compiled code consults the per-run extra regions of a run (read at compile
    /// time).
    pub(crate) extra_regions: bool,
    /// The loaded program's maps.
    #[cfg(feature = "std")]
    pub(crate) maps: crate::exec::maps::VmMaps,
    /// Which host memory the probe-read helpers may read beyond the program's regions (the
    /// kernel helpers that read it need `std`).
    #[cfg_attr(
        not(feature = "std"),
        expect(dead_code, reason = "read by the kernel helpers")
    )]
    pub(crate) probe_read: Option<ProbeReadFn>,
    /// Where `bpf_get_stack` finds a call stack (none: an empty stack).
    #[cfg_attr(
        not(feature = "std"),
        expect(dead_code, reason = "read by the kernel helpers")
    )]
    pub(crate) stack_fn: Option<StackFn>,
}

impl core::fmt::Debug for Machine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Machine")
            .field("config", &self.config)
            .field("loaded_slots", &self.program.as_ref().map(Program::len))
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// The current settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The helper table engines call through.
    pub fn helpers(&self) -> &HelperTable {
        &self.helpers
    }

    /// The loaded program.
    pub fn program(&self) -> Option<&Program> {
        self.program.as_ref()
    }

    /// The loaded program's maps.
    #[cfg(feature = "std")]
    pub fn maps(&self) -> &crate::exec::maps::MapSet {
        &self.maps.maps
    }

    /// The identity under which runs of this machine are tracked on a thread
    /// ([`crate::exec::reentry`]): its address.
    pub(crate) fn run_owner(&self) -> usize {
        core::ptr::from_ref(self) as usize
    }

    /// Whether a run of this machine's code (either engine) is in progress on this thread,
    /// below a helper call: then nothing may free that code (docs/sandbox.md, "Re-entrancy").
    /// Without `std` (no thread-locals) runs are not tracked and this is always `false`.
    pub fn is_running_on_this_thread(&self) -> bool {
        #[cfg(feature = "std")]
        {
            crate::exec::reentry::is_running(self.run_owner())
        }
        #[cfg(not(feature = "std"))]
        {
            false
        }
    }

    /// Reports a runtime error through the error printer, if one is installed (silent failures
    /// are not printed).
    pub fn report(&self, err: &ExecError) {
        if !err.is_printed() {
            return;
        }
        self.print_error(&err.to_string());
    }

    /// Prints `text` through the error printer, if one is installed (the Rust API prints
    /// nothing by default; the C API installs one writing to standard error).
    pub fn print_error(&self, text: &str) {
        if let Some(print) = &self.error_printer {
            print(text);
        }
    }
}
