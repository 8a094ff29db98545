//! The JIT: compiles a loaded [`Program`] into native code (with Cranelift, or for programs
//! above the optimised tier's budget with the one-pass `baseline` tier, see `Tier`) with
//! exactly the interpreter's semantics, plus the VM's bounds checks, instruction limit and
//! call-depth limit (uBPF's JIT has none of these).
//!
//! Design (see `translate.rs` for the code shape):
//! * one Cranelift function per program, compiled with [`Context::compile`] straight into bytes
//!   that are checked to contain **no relocations**; the bytes are the whole image, so
//!   [`Vm::copy_jit`](crate::Vm::copy_jit) and [`Vm::translate`](crate::Vm::translate) output runs after a plain `memcpy`;
//! * helper calls load the dispatcher and the helper slot from the VM's boxed
//!   [`HelperTable`](crate::exec::helpers::HelperTable) at run time, so helpers registered after
//!   compiling are the ones called;
//! * settings are read **at compile time**: `bounds_check`, `instruction_limit` and
//!   `unwind_index` are baked into the code (like uBPF, a cached image is returned unchanged
//!   after a setting changes; recompile after unloading to pick up new settings); so is
//!   whether a bounds callback is registered: without one (and without data sections), an
//!   access outside mem and the stack faults without returning into the code;
//! * faults return `u64::MAX` from the compiled function after recording the error in a
//!   thread-local; [`Vm::execute_jit`](crate::Vm::execute_jit) turns it into the same [`ExecError`] the interpreter
//!   produces and reports it through [`Vm::report`](crate::Vm::report).

pub(crate) mod align;
pub(crate) mod cfg;
pub(crate) mod code;

pub(crate) mod baseline;
pub(crate) mod context;
pub(crate) mod hoist;
pub(crate) mod invariant;
pub(crate) mod range_test;
pub(crate) mod runtime;
pub(crate) mod select;
pub(crate) mod thread;
pub(crate) mod tier_up;
pub(crate) mod translate;

use std::sync::{Arc, OnceLock};

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;

use crate::error::{ExecError, JitError};
use crate::exec::machine::{ExecutionProfile, JitTier, Machine};
use crate::isa::{self, Insn, STACK_SIZE};
use crate::program::Program;
use code::ExecutableCode;
use context::JitContext;

/// Which C entry signature compiled code has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JitMode {
    /// uBPF's `ubpf_jit_fn`: `u64 fn(void *mem, size_t mem_len)`; the eBPF stack (4096 bytes)
    /// is on the native stack.
    Basic,
    /// uBPF's `ubpf_jit_ex_fn`: `u64 fn(void *mem, size_t mem_len, uint8_t *stack, size_t
    /// stack_len)`; r10 starts at `stack + stack_len`.
    Extended,
}

/// The C signature of [`JitMode::Basic`] code.
pub type JitFn = unsafe extern "C" fn(*mut u8, usize) -> u64;
/// The C signature of [`JitMode::Extended`] code.
pub type JitExFn = unsafe extern "C" fn(*mut u8, usize, *mut u8, usize) -> u64;

/// The stack `execute_jit` gives Extended-mode code: 16-byte aligned, like Basic mode's.
#[repr(C, align(16))]
struct OwnStack([u8; STACK_SIZE]);

/// One compiled image owned by the VM.
#[derive(Debug)]
struct Image {
    mode: JitMode,
    /// The code `compile` returned: with background tier-up, the entry stub in front of the
    /// baseline code.
    code: ExecutableCode,
    /// The background compile whose code the entry stub switches to (`tier_up.rs`).
    tier_up: Option<tier_up::Pending>,
}

impl Image {
    /// Calls `f` with the image as code that runs wherever it is copied: the optimised code
    /// once the background compile has finished (waiting for it), else the baseline code
    /// without the entry stub, whose jump would lead back into this VM.
    fn with_portable_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match &self.tier_up {
            None => f(self.code.bytes()),
            Some(pending) => pending.with_result(|optimised| match optimised {
                Some(code) => f(code.bytes()),
                None => f(&self.code.bytes()[tier_up::STUB_BYTES..]),
            }),
        }
    }
}

/// Compiled code cached per JIT mode; dropped on unload.
///
/// Holds the boxed `JitContext` that compiled and translated code points to, so its address
/// is stable for as long as the cache lives.
#[derive(Debug, Default)]
pub struct JitCache {
    image: Option<Image>,
    ctx: Option<Box<JitContext>>,
}

/// Cranelift's compilation state, kept per thread between compiles so that each compile
/// reuses the previous one's allocations (function, CFG, dominator tree, register allocator).
pub(crate) struct Scratch {
    context: Context,
    builder: FunctionBuilderContext,
    /// Whether `builder` was left empty by a finished translation (an error or a panic in
    /// the middle of one leaves it dirty, and it is then replaced).
    clean: bool,
}

impl Scratch {
    /// Empty state.
    pub(crate) fn new() -> Self {
        Scratch {
            context: Context::new(),
            builder: FunctionBuilderContext::new(),
            clean: true,
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::new());
}

/// How hard Cranelift works on a program: chosen from an estimate of what the optimised tier
/// would cost on it, so that compile time stays near-linear and bounded (see
/// `docs/jit-compile-time.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Cheap programs (the common case): Cranelift's optimiser (`opt_level=speed`) and its
    /// backtracking register allocator, for the fastest code.
    Optimised,
    /// Programs above the optimised budget that the baseline tier does not cover: no
    /// optimiser and the single-pass register allocator. Both optimised passes cost several
    /// times more per slot, and grow faster than linearly on some program shapes (the
    /// backtracking allocator took 21 s on 8,192 slots of helper calls); these settings stay
    /// linear.
    Fast,
    /// Programs for [`Tier::Fast`] that the one-pass x86-64 emitter covers
    /// ([`baseline::supports`]): no Cranelift at all, tens of nanoseconds per slot.
    Baseline,
}

/// Estimated cost, in units of about a microsecond of optimised-tier compile time, of each
/// slot; of each conditional jump (a block boundary, with edge moves and liveness work);
/// of each call (the backtracking allocator's work around calls grows fastest); of each
/// memory access (a bounds check adds two or three blocks). Fitted to `cargo bench --bench
/// compile_growth` at 128–1,024 slots: within a factor of two on every shape.
const COST_SLOT: u64 = 1;
/// See [`COST_SLOT`].
const COST_BRANCH: u64 = 4;
/// See [`COST_SLOT`].
const COST_CALL: u64 = 40;
/// See [`COST_SLOT`].
const COST_ACCESS: u64 = 2;

/// Programs whose estimated optimised-tier cost (see [`COST_SLOT`]) exceeds this compile in
/// [`Tier::Fast`]. About a millisecond: the benchmark's workloads (100–300 slots, 200–600
/// units) stay optimised, and no optimised compile costs much more than the fast tier does on
/// a program four times larger (straight-line ALU code: 1,024 slots optimised took longer
/// than 4,096 in the fast tier when the choice was a slot count).
pub(crate) const OPTIMISED_TIER_BUDGET: u64 = 1000;

impl Tier {
    /// The tier for `insns`: a single linear pass.
    pub(crate) fn for_program(insns: &[Insn]) -> Tier {
        if optimised_cost(insns) > OPTIMISED_TIER_BUDGET {
            Tier::Fast
        } else {
            Tier::Optimised
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests compile the same program in both tiers: `Some` overrides the choice.
    static FORCED_TIER: std::cell::Cell<Option<Tier>> = const { std::cell::Cell::new(None) };
    /// The tier of this thread's last compile, for tests of the choice.
    static LAST_TIER: std::cell::Cell<Option<Tier>> = const { std::cell::Cell::new(None) };
    /// `Some` asks the next optimised compile on this thread to leave a copy of its function
    /// as Cranelift's optimiser leaves it, for tests of what that optimiser does with it.
    static OPTIMISED_IR: std::cell::RefCell<Option<Option<cranelift_codegen::ir::Function>>> =
        const { std::cell::RefCell::new(None) };
}

/// The tier `program` compiles in with `opts`: the configured one ([`JitTier`]), or by
/// [`Tier::for_program`], where the fast tier becomes the baseline tier if it applies (in
/// unit tests, a forced tier overrides both).
fn choose_tier(setting: JitTier, program: &Program, opts: &translate::Options) -> Tier {
    let baseline_or_fast = || {
        if baseline::supports(program, opts) {
            Tier::Baseline
        } else {
            Tier::Fast
        }
    };
    #[cfg(test)]
    if let Some(tier) = FORCED_TIER.with(std::cell::Cell::get) {
        return match tier {
            Tier::Baseline => baseline_or_fast(),
            other => other,
        };
    }
    match setting {
        JitTier::Optimised => Tier::Optimised,
        JitTier::Fast => Tier::Fast,
        JitTier::Baseline => baseline_or_fast(),
        JitTier::Auto => match Tier::for_program(&program.insns) {
            Tier::Optimised => Tier::Optimised,
            _ => baseline_or_fast(),
        },
    }
}

/// Weight of a block against an instruction in [`ir_cost`]: each block adds liveness,
/// lowering-order and edge-move work to every later pass.
const IR_BLOCK_WEIGHT: usize = 4;

/// Translated programs whose [`ir_cost`] exceeds this compile in [`Tier::Fast`], whatever
/// the slot estimate said: about 3 ms of optimised-tier compile time (60 µs plus about
/// 0.75 µs per unit on c_switch, c_strcmp, c_log2 and sort_counting). The slot estimate
/// cannot see what the translation adds (a hoisted loop is emitted twice, a recognised fill
/// or copy loop keeps an exact fallback loop beside its bulk call), which turned 182 slots of
/// counting sort at -O3 into 2,466 IR instructions (3,114 units) and a 2.3 ms compile. That
/// program stays optimised: in the fast tier it compiled in 1.1 ms but ran 2-3x slower
/// (8.7x native instead of 3.2-4.5x), so the budget only stops growth beyond it.
pub(crate) const OPTIMISED_IR_BUDGET: usize = 4000;

/// The size of translated IR as the optimised passes see it: instructions in the layout
/// plus [`IR_BLOCK_WEIGHT`] per block.
fn ir_cost(func: &cranelift_codegen::ir::Function) -> usize {
    func.layout
        .blocks()
        .map(|b| IR_BLOCK_WEIGHT + func.layout.block_insts(b).count())
        .sum()
}

/// The tier translated IR compiles in: `planned`, demoted to [`Tier::Fast`] when the IR came
/// out larger than [`OPTIMISED_IR_BUDGET`] (never in tests that force a tier).
fn tier_after_translation(planned: Tier, func: &cranelift_codegen::ir::Function) -> Tier {
    #[cfg(test)]
    if FORCED_TIER.with(std::cell::Cell::get).is_some() {
        return planned;
    }
    if planned == Tier::Optimised && ir_cost(func) > OPTIMISED_IR_BUDGET {
        Tier::Fast
    } else {
        planned
    }
}

/// The estimated optimised-tier compile cost of `insns` (see [`COST_SLOT`]).
pub(crate) fn optimised_cost(insns: &[Insn]) -> u64 {
    let mut cost = 0u64;
    for (pc, insn) in insns.iter().enumerate() {
        let op = insn.opc & isa::alu::MASK;
        cost += COST_SLOT
            + match insn.class() {
                isa::class::JMP | isa::class::JMP32 => {
                    if op == isa::jmp::CALL {
                        COST_CALL
                    } else if op == isa::jmp::EXIT
                        || op == isa::jmp::JA
                        || cfg::is_no_op_jump(pc, insn)
                    {
                        0
                    } else {
                        COST_BRANCH
                    }
                }
                isa::class::LDX | isa::class::ST | isa::class::STX => COST_ACCESS,
                _ => 0,
            };
    }
    cost
}

/// The host ISA with librbpf's flags for `tier`, built once per process.
fn host_isa(tier: Tier) -> Result<Arc<dyn TargetIsa>, JitError> {
    static OPTIMISED: OnceLock<Result<Arc<dyn TargetIsa>, String>> = OnceLock::new();
    static FAST: OnceLock<Result<Arc<dyn TargetIsa>, String>> = OnceLock::new();
    let (cell, opt_level, regalloc) = match tier {
        Tier::Optimised => (&OPTIMISED, "speed", "backtracking"),
        Tier::Fast | Tier::Baseline => (&FAST, "none", "single_pass"),
    };
    cell.get_or_init(|| {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v).map_err(|e| format!("setting {k}: {e}"))
        };
        set(&mut flags, "opt_level", opt_level)?;
        set(&mut flags, "regalloc_algorithm", regalloc)?;
        set(&mut flags, "enable_probestack", "true")?;
        set(&mut flags, "probestack_strategy", "inline")?;
        set(&mut flags, "unwind_info", "false")?;
        // Block offsets of the finished code, for the loop placement (`align.rs`) of
        // the optimised tier on x86-64 (the other tiers are for programs too large for it to
        // matter).
        set(
            &mut flags,
            "machine_code_cfg_info",
            if tier == Tier::Optimised && cfg!(target_arch = "x86_64") {
                "true"
            } else {
                "false"
            },
        )?;
        // Debug builds (and so the tests) check the translator's IR; release builds skip
        // the cost.
        set(
            &mut flags,
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        )?;
        let builder = cranelift_native::builder().map_err(str::to_owned)?;
        builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| format!("cranelift ISA: {e}"))
    })
    .clone()
    .map_err(JitError::Internal)
}

/// What [`cranelift_bytes`] produced.
pub(crate) enum Translated {
    /// Position-independent code.
    Code(Vec<u8>),
    /// The translated function, left for a background compile (`defer` said so).
    Deferred(Box<cranelift_codegen::ir::Function>),
}

/// With `scratch`'s Cranelift state, translates `program` and compiles it with Cranelift in
/// `tier` (demoted by [`tier_after_translation`] when `auto`) into position-independent bytes
/// of at most `capacity` (padding is dropped beyond it). When `defer` returns true for the
/// translated function (in the tier it would compile in), the function is returned
/// uncompiled instead.
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs of one compile, each distinct"
)]
pub(crate) fn cranelift_bytes(
    scratch: &mut Scratch,
    program: &Program,
    idioms: &crate::exec::idiom::Idioms,
    opts: translate::Options,
    tier: Tier,
    auto: bool,
    capacity: usize,
    defer: impl FnOnce(&cranelift_codegen::ir::Function, Tier) -> bool,
) -> Result<Translated, JitError> {
    with_scratch_in(scratch, |context, builder| {
        let isa = host_isa(tier)?;
        translate::translate(&*isa, program, idioms, opts, builder, &mut context.func)?;
        // The IR is target-specific but not tier-specific: either tier's ISA compiles it.
        // Only the automatic choice looks at the translated size: a configured tier is what
        // the embedder asked for.
        let tier = if auto {
            tier_after_translation(tier, &context.func)
        } else {
            tier
        };
        if defer(&context.func, tier) {
            return Ok(Translated::Deferred(Box::new(context.func.clone())));
        }
        compile_translated(context, tier, capacity).map(Translated::Code)
    })
}

/// Compiles an already translated `func` in `tier` with `scratch` (the background half of
/// [`Translated::Deferred`], and the fast tier's first code).
pub(crate) fn compile_function(
    scratch: &mut Scratch,
    func: cranelift_codegen::ir::Function,
    tier: Tier,
    capacity: usize,
) -> Result<Vec<u8>, JitError> {
    with_scratch_in(scratch, |context, _| {
        context.func = func;
        compile_translated(context, tier, capacity)
    })
}

/// [`compile_function`] with this thread's Cranelift scratch state.
fn compile_function_here(
    func: cranelift_codegen::ir::Function,
    tier: Tier,
    capacity: usize,
) -> Result<Vec<u8>, JitError> {
    with_thread_scratch(|scratch| compile_function(scratch, func, tier, capacity))
}

/// Runs `f` with this thread's Cranelift scratch state.
fn with_thread_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        // Not expected (compiling never re-enters), but stay correct if it does.
        Err(_) => f(&mut Scratch::new()),
    })
}

/// Runs `f` with `scratch`'s Cranelift state (cleared), turning a panic inside Cranelift or
/// the translator (a bug) into an error, never an unwind into the caller.
fn with_scratch_in<R>(
    scratch: &mut Scratch,
    f: impl FnOnce(&mut Context, &mut FunctionBuilderContext) -> Result<R, JitError>,
) -> Result<R, JitError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Scratch {
            context,
            builder,
            clean,
        } = scratch;
        if !*clean {
            *builder = FunctionBuilderContext::new();
        }
        context.clear();
        *clean = false;
        let result = f(context, builder);
        // A failed translation (or a panic, which skips this) may leave the builder
        // half-used; a successful one leaves it empty.
        *clean = result.is_ok();
        result
    }))
    .unwrap_or_else(|_| {
        Err(JitError::Internal(
            "compile failed: translator panic".into(),
        ))
    })
}

/// Compiles `context.func` in `tier`: position-independent bytes, with the loop placement's
/// entry padding when it fits in `capacity`.
fn compile_translated(
    context: &mut Context,
    tier: Tier,
    capacity: usize,
) -> Result<Vec<u8>, JitError> {
    #[cfg(test)]
    LAST_TIER.with(|t| t.set(Some(tier)));
    let isa = host_isa(tier)?;
    #[cfg(test)]
    if tier == Tier::Optimised && OPTIMISED_IR.with(|ir| ir.borrow().is_some()) {
        let mut copy = Context::for_function(context.func.clone());
        copy.optimize(&*isa, &mut ControlPlane::default())
            .map_err(|e| JitError::Internal(format!("optimize failed: {e:?}")))?;
        OPTIMISED_IR.with(|ir| *ir.borrow_mut() = Some(Some(copy.func)));
    }
    let compiled = context
        .compile(&*isa, &mut ControlPlane::default())
        .map_err(|e| JitError::Internal(format!("compile failed: {:?}", e.inner)))?;
    if !compiled.buffer.relocs().is_empty() {
        return Err(JitError::Internal(
            "compiled code needs relocations".to_owned(),
        ));
    }
    let code = compiled.code_buffer();
    // The placement decodes and pads with x86-64 instructions.
    let pad = if cfg!(target_arch = "x86_64") {
        align::entry_pad(code, &compiled.bb_starts)
    } else {
        0
    };
    if pad == 0 || code.len() + pad > capacity {
        return Ok(code.to_vec());
    }
    let mut bytes = align::nops(pad);
    bytes.extend_from_slice(code);
    Ok(bytes)
}

/// Compiles `program` with the one-pass baseline tier (which must support it).
fn baseline_bytes(program: &Program, opts: &translate::Options) -> Result<Vec<u8>, JitError> {
    #[cfg(test)]
    LAST_TIER.with(|t| t.set(Some(Tier::Baseline)));
    // A panic in the emitter (a bug) becomes an error, never an unwind into the caller.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        baseline::compile(program, opts)
    }))
    .unwrap_or_else(|_| Err(JitError::Internal("compile failed: baseline panic".into())))
}

/// Translations whose [`ir_cost`] is below this compile optimised at once even where
/// background tier-up applies: at most about 210 µs of optimised compile (60 µs plus up to
/// 1 µs per unit on the corpus's small programs; value switches of 177 units took 250 µs),
/// so no program waits much longer than that for its code, and small programs (whose runs
/// are short enough that the entry stub's extra jump would show) never get a stub.
pub(crate) const TIER_UP_MIN_IR: usize = 150;

/// Whether `Vm::compile` may return code of a cheap tier at once and tier up in the
/// background (`tier_up.rs`) if the translation turns out large (see [`TIER_UP_MIN_IR`]):
/// only by the automatic choice, only on x86-64 (the entry stub's encoding), and only while
/// fewer background compiles run than the host has hardware threads.
fn wants_tier_up(machine: &Machine) -> bool {
    #[cfg(test)]
    if FORCED_TIER.with(std::cell::Cell::get).is_some() {
        return false;
    }
    cfg!(target_arch = "x86_64")
        && machine.config.background_tier_up
        && machine.config.jit_tier == JitTier::Auto
        && tier_up::has_capacity()
}

/// Programs whose [`predicted_ir`] reaches this, and that tier up, start in the baseline tier
/// without being translated first: the translation moves to the background too. Translation
/// costs about 0.07 µs per IR unit, and IR came out at 1.1-7 times the slot cost, so a
/// program below the bound translates in at most about 250 µs; counting sort at -O3 (slot
/// cost 422, 16 fill loops, 2,800 IR units) spent 200-350 µs translating before its baseline
/// code could be returned.
pub(crate) const TRANSLATE_IN_BACKGROUND_IR: u64 = 500;

/// An estimate of a program's [`ir_cost`] before translating it (it decides only which large
/// programs skip the caller-side translation): the slot cost (see [`COST_SLOT`];
/// translations measured 1.1-7 times it) plus [`IR_PER_LOOP_IDIOM`] for each copy, fill or
/// compare loop, whose bulk path and exact fallback the translation emits beside each other.
/// `None` for a program with a recognised switch: a table dispatch removes its compare tree
/// (c_switch_value's slot cost of 665 became 181 IR units), so the slots say nothing.
fn predicted_ir(machine: &Machine, program: &Program) -> Option<u64> {
    let idioms = &machine.idioms;
    let loops = (idioms.copies.len() + idioms.compares.len()) as u64;
    idioms
        .switches
        .is_empty()
        .then(|| optimised_cost(&program.insns) + IR_PER_LOOP_IDIOM * loops)
}

/// IR units each copy, fill or compare loop adds in [`predicted_ir`] (counting sort's fill
/// loops: about 150 each).
const IR_PER_LOOP_IDIOM: u64 = 140;

/// The baseline tier's options for a program translated with `opts`.
fn baseline_options(opts: translate::Options) -> translate::Options {
    translate::Options {
        compact_helper_calls: true,
        optimising: false,
        ..opts
    }
}

/// What [`JitCache::bytes`] produced.
enum Output {
    /// The finished image.
    Code(Vec<u8>),
    /// The first tier's code to run at once, and the job that compiles the optimised code.
    TierUp(Vec<u8>, tier_up::Job),
}

impl Output {
    /// The bytes of a synchronous compile (the caller did not allow tier-up).
    fn into_code(self) -> Vec<u8> {
        match self {
            Output::Code(bytes) | Output::TierUp(bytes, _) => bytes,
        }
    }
}

impl JitCache {
    /// The context compiled code of `machine` points to (created on first use, kept until
    /// unload), refreshed to `machine`'s current address.
    fn context(&mut self, machine: &Machine) -> *const JitContext {
        let owner: *const Machine = machine;
        let ctx = self
            .ctx
            .get_or_insert_with(|| Box::new(JitContext::new(owner, &*machine.helpers)));
        ctx.machine
            .store(owner.cast_mut(), std::sync::atomic::Ordering::Relaxed);
        &**ctx
    }

    /// Translates the loaded program into position-independent machine code of at most
    /// `capacity` bytes ([`JitError::TargetBufferTooSmall`] otherwise: before compiling when
    /// the program provably cannot fit, see [`cfg::min_fast_tier_code_bytes`]).
    ///
    /// With `allow_tier_up`, a large program that [`wants_tier_up`] gets the first tier's code
    /// and the job that compiles its optimised code instead (`tier_up.rs`).
    fn bytes(
        &mut self,
        machine: &Machine,
        mode: JitMode,
        capacity: usize,
        allow_tier_up: bool,
    ) -> Result<Output, JitError> {
        if machine.config.profile == ExecutionProfile::Safe {
            return Err(JitError::SafeProfile);
        }
        if machine.program.is_none() {
            return Err(JitError::NotLoaded);
        }
        let ctx = self.context(machine);
        let program = machine.program.as_ref().ok_or(JitError::NotLoaded)?;
        let map_slabs = machine.maps.maps.slab_regions();
        let mut opts = translate::Options {
            map_slabs: &map_slabs[..],
            mode,
            bounds_check: machine.config.bounds_check,
            instruction_limit: machine.config.instruction_limit,
            unwind_index: machine.config.unwind_index,
            other_regions: !program.data_sections.is_empty()
                || machine.bounds_check_fn.is_some()
                || machine.extra_regions
                || !machine.maps.maps.is_empty(),
            publish_run: machine.maps.publish_runs,
            ctx,
            blinding: self
                .ctx
                .as_ref()
                .filter(|_| machine.config.constant_blinding)
                .map(|c| c.blinding_key),
            // Set below, once the tier is known.
            compact_helper_calls: false,
            optimising: false,
            packet_loads: machine.config.packet_loads,
        };
        let tier = choose_tier(machine.config.jit_tier, program, &opts);
        // The bound holds for the baseline tier too: its encodings are never shorter.
        if tier != Tier::Optimised && cfg::min_fast_tier_code_bytes(&program.insns) > capacity {
            return Err(JitError::TargetBufferTooSmall);
        }
        opts.compact_helper_calls = tier != Tier::Optimised;
        opts.optimising = tier == Tier::Optimised;
        if tier == Tier::Baseline {
            return baseline_bytes(program, &opts).map(Output::Code);
        }
        let may_defer = allow_tier_up && tier == Tier::Optimised && wants_tier_up(machine);
        if may_defer
            && predicted_ir(machine, program).is_some_and(|ir| ir >= TRANSLATE_IN_BACKGROUND_IR)
            && baseline::supports(program, &opts)
        {
            // So large that even translating it would keep the caller waiting: baseline code
            // now, translation and optimised compile in the background.
            let first = baseline_bytes(program, &baseline_options(opts))?;
            if first.len() + tier_up::STUB_BYTES <= capacity {
                let work = tier_up::Work::Translate(Box::new(tier_up::Untranslated {
                    program: Program {
                        insns: program.insns.clone(),
                        functions: program.functions.clone(),
                        data_sections: Vec::new(),
                        stack_reach: program.stack_reach,
                        calls_helpers: program.calls_helpers,
                    },
                    idioms: machine.idioms.clone(),
                    map_slabs,
                    opts,
                }));
                return Ok(Output::TierUp(first, tier_up::Job { work, capacity }));
            }
        }
        let translated = with_thread_scratch(|scratch| {
            cranelift_bytes(
                scratch,
                program,
                &machine.idioms,
                opts,
                tier,
                machine.config.jit_tier == JitTier::Auto,
                capacity,
                |func, tier| {
                    may_defer && tier == Tier::Optimised && ir_cost(func) >= TIER_UP_MIN_IR
                },
            )
        })?;
        let func = match translated {
            Translated::Code(bytes) => return Ok(Output::Code(bytes)),
            Translated::Deferred(func) => func,
        };
        // The first code: the baseline tier's wherever it applies, else Cranelift's fast tier
        // on a copy of the same translation. The baseline tier runs copy and fill loops and
        // value-table switches slot by slot (c_memcpy 40x native, c_switch_value 17x) until
        // the optimised code lands, a few hundred µs later; the fast tier would keep those
        // idioms, but it costs about ten times as much to compile (c_memcpy 190-270 µs,
        // corpus copy loops 260-330 µs), which is the caller's wait: compile latency wins
        // (`docs/jit-compile-time.md`, "Background tier-up").
        let first = if baseline::supports(program, &opts) {
            baseline_bytes(program, &baseline_options(opts))?
        } else {
            compile_function_here((*func).clone(), Tier::Fast, capacity)?
        };
        if first.len() + tier_up::STUB_BYTES > capacity {
            return compile_function_here(*func, Tier::Optimised, capacity).map(Output::Code);
        }
        let work = tier_up::Work::Compile(func);
        Ok(Output::TierUp(first, tier_up::Job { work, capacity }))
    }

    /// The body of [`Vm::compile`](crate::vm::Vm::compile).
    pub(crate) fn compile(
        &mut self,
        machine: &Machine,
        mode: JitMode,
    ) -> Result<*const u8, JitError> {
        if machine.config.profile == ExecutionProfile::Safe {
            return Err(JitError::SafeProfile);
        }
        if let Some(image) = &self.image
            && image.mode == mode
        {
            return Ok(image.code.as_ptr());
        }
        if self.image.is_some() && machine.is_running_on_this_thread() {
            // Replacing the image would free code a helper's caller returns into.
            return Err(JitError::CodeRunning);
        }
        self.image = None;
        let capacity = machine.config.jit_code_size;
        let image = match self.bytes(machine, mode, capacity, true)? {
            Output::Code(bytes) => {
                if bytes.len() > capacity {
                    return Err(JitError::TargetBufferTooSmall);
                }
                Image {
                    mode,
                    code: ExecutableCode::new(&bytes)?,
                    tier_up: None,
                }
            }
            Output::TierUp(baseline, job) => {
                let mut pending = tier_up::Pending::new();
                let mut bytes = tier_up::entry_stub(pending.target()).to_vec();
                bytes.extend_from_slice(&baseline);
                let code = ExecutableCode::new(&bytes)?;
                pending.start(code.as_ptr().wrapping_add(tier_up::STUB_BYTES), job);
                Image {
                    mode,
                    code,
                    tier_up: Some(pending),
                }
            }
        };
        let ptr = image.code.as_ptr();
        self.image = Some(image);
        Ok(ptr)
    }

    /// Waits for the background compile of the current image, if any (see `tier_up.rs`):
    /// whether the optimised tier's code now runs, `None` without an image.
    pub(crate) fn wait_for_tier_up(&self) -> Option<bool> {
        let image = self.image.as_ref()?;
        Some(match &image.tier_up {
            Some(pending) => pending.with_result(|code| code.is_some()),
            None => false,
        })
    }

    /// The body of [`Vm::translate`](crate::vm::Vm::translate).
    pub(crate) fn translate(
        &mut self,
        machine: &Machine,
        mode: JitMode,
        buf: &mut [u8],
    ) -> Result<usize, JitError> {
        let bytes = self.bytes(machine, mode, buf.len(), false)?.into_code();
        let dest = buf
            .get_mut(..bytes.len())
            .ok_or(JitError::TargetBufferTooSmall)?;
        dest.copy_from_slice(&bytes);
        self.mark_code_escaped();
        Ok(bytes.len())
    }

    /// The body of [`Vm::copy_jit`](crate::vm::Vm::copy_jit).
    pub(crate) fn copy(&self, buf: &mut [u8]) -> Result<(), JitError> {
        let image = self.image.as_ref().ok_or(JitError::CopyBeforeCompile)?;
        image.with_portable_bytes(|bytes| {
            let dest = buf
                .get_mut(..bytes.len())
                .ok_or(JitError::BufferNotBigEnough)?;
            dest.copy_from_slice(bytes);
            Ok(())
        })?;
        self.mark_code_escaped();
        Ok(())
    }

    /// Records that code using the current context now lives outside the VM, so that
    /// releasing the code detaches the context instead of freeing it.
    fn mark_code_escaped(&self) {
        if let Some(ctx) = &self.ctx {
            ctx.escaped
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Frees the compiled image and lets go of the context (detaching it when copies may
    /// still use it). Called when the program is unloaded or replaced and when the VM drops.
    pub(crate) fn release(&mut self, machine: &Machine) {
        self.image = None;
        if let Some(ctx) = self.ctx.take() {
            ctx.release(&machine.helpers, &machine.maps.maps);
        }
    }

    /// The body of [`Vm::jit_size`](crate::vm::Vm::jit_size).
    pub(crate) fn size(&self) -> Option<usize> {
        self.image
            .as_ref()
            .map(|i| i.with_portable_bytes(<[u8]>::len))
    }

    /// The body of [`Vm::jit_mode`](crate::vm::Vm::jit_mode).
    pub(crate) fn mode(&self) -> Option<JitMode> {
        self.image.as_ref().map(|i| i.mode)
    }

    /// The body of [`Vm::execute_jit_raw_with_regions`](crate::vm::Vm::execute_jit_raw_with_regions).
    ///
    /// # Safety
    /// As for `Vm::execute_jit_raw`.
    pub(crate) unsafe fn execute_raw_with_regions(
        &self,
        machine: &Machine,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
        extra: &[crate::exec::memory::MemRegion<'_>],
    ) -> Result<u64, ExecError> {
        let _regions = runtime::ExtraRegionsGuard::enter(extra);
        // SAFETY: forwarded to the caller's contract.
        unsafe { self.execute_raw(machine, mem, mem_len, stack, stack_len) }
    }

    /// The body of [`Vm::execute_jit_raw`](crate::vm::Vm::execute_jit_raw).
    ///
    /// # Safety
    /// As for `Vm::execute_jit_raw`.
    pub(crate) unsafe fn execute_raw(
        &self,
        machine: &Machine,
        mem: *mut u8,
        mem_len: usize,
        stack: *mut u8,
        stack_len: usize,
    ) -> Result<u64, ExecError> {
        let image = self.image.as_ref().ok_or(ExecError::NotLoaded)?;
        if let Some(ctx) = &self.ctx {
            // Only written when the VM moved since the last run, so threads running the same
            // code do not fight over the cache line; all writers store the same value.
            let me = std::ptr::from_ref(machine).cast_mut();
            if ctx.machine.load(std::sync::atomic::Ordering::Relaxed) != me {
                ctx.machine.store(me, std::sync::atomic::Ordering::Relaxed);
            }
        }
        // Only VMs with Rust helpers need the per-thread record their trampolines read.
        let helpers = machine
            .helpers
            .has_rust_helpers()
            .then(|| crate::exec::helpers::RunGuard::enter(&machine.helpers, mem_len));
        let ctx: *const JitContext = self.ctx.as_deref().map_or(std::ptr::null(), |c| c);
        let previous = runtime::arm(ctx);
        let ret = match image.mode {
            JitMode::Basic => {
                // SAFETY: the image was compiled with the Basic signature and is live while
                // `self` is borrowed.
                let f: JitFn = unsafe { std::mem::transmute(image.code.as_ptr()) };
                // SAFETY: the caller guarantees `mem`; the code checks its accesses.
                unsafe { f(mem, mem_len) }
            }
            JitMode::Extended => {
                let f: JitExFn =
                    // SAFETY: the image was compiled with the Extended signature.
                    unsafe { std::mem::transmute(image.code.as_ptr()) };
                if stack.is_null() {
                    let mut own = std::mem::MaybeUninit::<OwnStack>::uninit();
                    let base: *mut u8 = own.as_mut_ptr().cast();
                    // Only the top the program can reach is cleared: it never reaches (or
                    // reads) the rest (docs/sandbox.md, "Stack").
                    let reach = machine
                        .program
                        .as_ref()
                        .map_or(STACK_SIZE, |p| p.stack_reach.min(STACK_SIZE));
                    // SAFETY: the top `reach` bytes lie inside the local buffer.
                    unsafe { base.wrapping_add(STACK_SIZE - reach).write_bytes(0, reach) };
                    // SAFETY: the stack is raw memory for eBPF code, valid for its length.
                    unsafe { f(mem, mem_len, base, STACK_SIZE) }
                } else {
                    // SAFETY: the caller guarantees `mem` and `stack`.
                    unsafe { f(mem, mem_len, stack, stack_len) }
                }
            }
        };
        let fault = runtime::disarm(previous);
        if let Some(helpers) = helpers {
            helpers.finish();
        }
        match fault {
            Some(err) => {
                machine.report(&err);
                Err(err)
            }
            None => Ok(ret),
        }
    }
}

/// Scaffolding for the unit tests that build Cranelift IR by hand.
#[cfg(test)]
pub(crate) mod test_ir {
    use cranelift_codegen::ir::types::I64;
    use cranelift_codegen::ir::{AbiParam, Function, Signature};
    use cranelift_codegen::isa::{CallConv, TargetFrontendConfig};

    /// An empty function taking `params` i64 values and returning one.
    pub(crate) fn function(params: usize) -> Function {
        let mut func = Function::new();
        func.signature = Signature::new(CallConv::SystemV);
        func.signature
            .params
            .extend((0..params).map(|_| AbiParam::new(I64)));
        func.signature.returns.push(AbiParam::new(I64));
        func
    }

    /// The host's frontend configuration, for `FunctionBuilder::finalize`.
    pub(crate) fn frontend() -> TargetFrontendConfig {
        super::host_isa(super::Tier::Fast)
            .unwrap()
            .frontend_config()
    }
}

#[cfg(test)]
mod tests {
    //! The tier boundary: programs just below and just above [`OPTIMISED_TIER_BUDGET`] get
    //! the tier the cost model says, and each gives the interpreter's result, error and memory
    //! when compiled in either tier.

    use super::*;
    use crate::Vm;
    use crate::isa::encode_slots;

    const MEM_LEN: usize = 64;

    /// The helper the programs call: its first argument plus one.
    unsafe extern "C" fn add_one(
        a: u64,
        _: u64,
        _: u64,
        _: u64,
        _: u64,
        _: *mut std::ffi::c_void,
    ) -> u64 {
        a.wrapping_add(1)
    }

    /// Builds a program of the given number of slots ending in the given instructions.
    type Generator = fn(usize, &[Insn]) -> Vec<Insn>;

    /// Straight-line ALU code: 1 unit per slot.
    fn alu(n: usize, end: &[Insn]) -> Vec<Insn> {
        let mut v: Vec<Insn> = (0..10)
            .map(|r| Insn::new(0xb7, r, 0, 0, i32::from(r) + 1))
            .collect();
        let mut i = 0usize;
        while v.len() < n - end.len() {
            let (dst, src) = ((i % 10) as u8, ((i * 7 + 3) % 10) as u8);
            v.push(match i % 4 {
                0 => Insn::new(0x0f, dst, src, 0, 0), // add dst, src
                1 => Insn::new(0xaf, dst, src, 0, 0), // xor dst, src
                2 => Insn::new(0x27, dst, 0, 0, 3),   // mul dst, 3
                _ => Insn::new(0x77, dst, 0, 0, 1),   // rsh dst, 1
            });
            i += 1;
        }
        v.extend_from_slice(end);
        v
    }

    /// A real branch every other slot (`jgt r3, i, +1; add r0, i`).
    fn branchy(n: usize, end: &[Insn]) -> Vec<Insn> {
        let mut v = vec![Insn::new(0xb7, 3, 0, 0, 300), Insn::new(0xb7, 0, 0, 0, 0)];
        while v.len() < n - end.len() {
            let pc = v.len() as i32;
            if pc % 2 == 0 {
                v.push(Insn::new(0x25, 3, 0, 1, pc)); // jgt r3, pc, +1
            } else {
                v.push(Insn::new(0x07, 0, 0, 0, pc)); // add r0, pc
            }
        }
        // The last jump may skip one slot: keep the end whole.
        if v.len() % 2 == 1 {
            v.pop();
            v.push(Insn::new(0x07, 0, 0, 0, 1));
        }
        v.extend_from_slice(end);
        v
    }

    /// Loads and stores inside mem and the stack, with helper calls among them.
    fn ldst(n: usize, end: &[Insn]) -> Vec<Insn> {
        let mut v = vec![Insn::new(0xbf, 6, 1, 0, 0)]; // mov r6, r1
        let mut i = 0i16;
        while v.len() < n - end.len() {
            let off = (i % 8) * 8;
            v.push(match i % 6 {
                0 => Insn::new(0x79, 0, 6, off, 0),       // ldxdw r0, [r6+off]
                1 => Insn::new(0x7b, 6, 0, off, 0),       // stxdw [r6+off], r0
                2 => Insn::new(0x7b, 10, 0, -8 - off, 0), // stxdw [r10-8-off], r0
                3 => Insn::new(0x71, 2, 10, -8 - off, 0), // ldxb r2, [r10-8-off]
                4 => Insn::new(0x0f, 0, 2, 0, 0),         // add r0, r2
                _ => Insn::new(0x07, 0, 0, 0, 1),         // add r0, 1
            });
            if i % 50 == 49 && v.len() + 2 < n - end.len() {
                v.push(Insn::new(0xbf, 1, 0, 0, 0)); // mov r1, r0
                v.push(Insn::new(0x85, 0, 0, 0, 1)); // call 1
            }
            i += 1;
        }
        v.truncate(n - end.len());
        v.extend_from_slice(end);
        v
    }

    /// The largest `n` for which `build(n)` stays within the budget.
    fn last_optimised(build: &dyn Fn(usize) -> Vec<Insn>) -> usize {
        let mut n = 16;
        while optimised_cost(&build(n + 1)) <= OPTIMISED_TIER_BUDGET {
            n += 1;
        }
        n
    }

    /// An error with the stack's address cleared: the interpreter's stack and the JIT's are
    /// different buffers (mem is the same buffer in every run).
    fn normalised(r: Result<u64, ExecError>) -> Result<u64, ExecError> {
        r.map_err(|e| match e {
            ExecError::OutOfBounds {
                pc,
                access,
                addr,
                size,
                mem,
                mem_len,
                stack_len,
                ..
            } => ExecError::OutOfBounds {
                pc,
                access,
                addr,
                size,
                mem,
                mem_len,
                stack: 0,
                stack_len,
            },
            e => e,
        })
    }

    /// Runs `insns` in the interpreter and, compiled in each tier, in the JIT: same result
    /// (or error) and same memory.
    fn agrees(insns: &[Insn]) {
        let mut vm = Vm::new();
        vm.register_helper(1, Some("add_one"), add_one).unwrap();
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm.load(&encode_slots(insns)).unwrap();
        let input: Vec<u8> = (0..MEM_LEN as u8).map(|i| i.wrapping_mul(37)).collect();
        let mut buf = input.clone();
        let want = normalised(vm.execute(&mut buf));
        let want_mem = buf.clone();
        for tier in [Tier::Optimised, Tier::Fast, Tier::Baseline] {
            let mut vm = Vm::new();
            vm.register_helper(1, Some("add_one"), add_one).unwrap();
            vm.set_error_printer(Some(Box::new(|_| {})));
            vm.config_mut().jit_code_size = usize::MAX;
            vm.load(&encode_slots(insns)).unwrap();
            FORCED_TIER.with(|f| f.set(Some(tier)));
            let compiled = vm.compile(JitMode::Basic).map(|_| ());
            FORCED_TIER.with(|f| f.set(None));
            compiled.unwrap_or_else(|e| panic!("{} slots, {tier:?}: {e}", insns.len()));
            assert_eq!(LAST_TIER.with(std::cell::Cell::get), Some(tier));
            buf.copy_from_slice(&input);
            let got = normalised(vm.execute_jit(&mut buf));
            assert_eq!(got, want, "{} slots, {tier:?}", insns.len());
            assert!(buf == want_mem, "{} slots, {tier:?}: memory", insns.len());
        }
    }

    /// A configured tier is used as set: only the automatic choice demotes IR over the
    /// budget.
    #[test]
    fn a_configured_optimised_tier_is_not_demoted() {
        // 1,200 checked loads of different words: far over the IR budget once translated.
        let mut insns = Vec::new();
        for k in 0..1200 {
            insns.push(Insn::new(0x79, 2, 1, (k % 512) * 8, 0));
            insns.push(Insn::new(0x0f, 0, 2, 0, 0));
        }
        insns.push(Insn::new(0x95, 0, 0, 0, 0));
        for (setting, want) in [
            (JitTier::Optimised, Tier::Optimised),
            (JitTier::Fast, Tier::Fast),
        ] {
            let mut vm = Vm::new();
            vm.config_mut().jit_tier = setting;
            vm.config_mut().jit_code_size = usize::MAX;
            vm.load(&encode_slots(&insns)).unwrap();
            vm.compile(JitMode::Basic).unwrap();
            assert_eq!(LAST_TIER.with(std::cell::Cell::get), Some(want));
            let mut mem = [0u8; 4096];
            assert_eq!(vm.execute_jit(&mut mem).unwrap(), 0);
        }
    }

    /// Counting sort at -O3 (16 unrolled fill loops, each keeping an exact loop beside its
    /// bulk call) grows to 3,114 IR units from 182 slots and still compiles optimised; IR
    /// past the budget (here: the same blocks repeated) is demoted to the fast tier, and the
    /// cost counts the blocks and instructions Cranelift will see.
    #[test]
    fn translations_over_the_ir_budget_compile_in_the_fast_tier() {
        let mut vm = Vm::new();
        // One step, so that this thread compiles the optimised code.
        vm.config_mut().background_tier_up = false;
        vm.load_elf(
            include_bytes!("../../tests/corpus/obj/sort_counting-O3-v3.o"),
            None,
        )
        .unwrap();
        let insns = &vm.program().unwrap().insns;
        assert_eq!(Tier::for_program(insns), Tier::Optimised);
        vm.compile(JitMode::Basic).unwrap();
        assert_eq!(LAST_TIER.with(std::cell::Cell::get), Some(Tier::Optimised));

        use cranelift_codegen::ir::{Function, InstBuilder, types::I64};
        let function_of = |blocks: usize| {
            let mut func = Function::new();
            let mut ctx = FunctionBuilderContext::new();
            let mut b = cranelift_frontend::FunctionBuilder::new(&mut func, &mut ctx);
            let all: Vec<_> = (0..blocks).map(|_| b.create_block()).collect();
            for (i, &block) in all.iter().enumerate() {
                b.switch_to_block(block);
                let v = b.ins().iconst(I64, i as i64);
                let w = b.ins().iadd(v, v);
                match all.get(i + 1) {
                    Some(&next) => {
                        b.ins().brif(w, next, &[], next, &[]);
                    }
                    None => {
                        b.ins().return_(&[]);
                    }
                }
            }
            b.seal_all_blocks();
            b.finalize(host_isa(Tier::Fast).unwrap().frontend_config());
            func
        };
        // 3 instructions and one block weight each.
        let per_block = 3 + IR_BLOCK_WEIGHT;
        let small = function_of(OPTIMISED_IR_BUDGET / per_block);
        let large = function_of(OPTIMISED_IR_BUDGET / per_block + 1);
        assert!(ir_cost(&small) <= OPTIMISED_IR_BUDGET);
        assert!(ir_cost(&large) > OPTIMISED_IR_BUDGET);
        assert_eq!(
            tier_after_translation(Tier::Optimised, &small),
            Tier::Optimised
        );
        assert_eq!(tier_after_translation(Tier::Optimised, &large), Tier::Fast);
        assert_eq!(tier_after_translation(Tier::Fast, &small), Tier::Fast);
    }

    #[test]
    fn every_shape_at_the_tier_boundary_agrees_in_both_tiers() {
        let exit = [Insn::new(0x95, 0, 0, 0, 0)];
        // Ends in a fault: a load one byte past mem (after the earlier effects).
        let oob = [
            Insn::new(0x71, 0, 1, MEM_LEN as i16, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        // Ends in a division by a zero register, then returns the (defined) quotient.
        let div = [
            Insn::new(0xb7, 4, 0, 0, 0),
            Insn::new(0x3f, 0, 4, 0, 0), // div r0, r4
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        let shapes: [Generator; 3] = [alu, branchy, ldst];
        for build in shapes {
            for end in [&exit[..], &oob[..], &div[..]] {
                let n = last_optimised(&|n| build(n, end));
                let below = build(n, end);
                let above = build(n + 1, end);
                assert_eq!(below.len(), n);
                assert_eq!(above.len(), n + 1);
                assert_eq!(Tier::for_program(&below), Tier::Optimised);
                assert_eq!(Tier::for_program(&above), Tier::Fast);
                agrees(&below);
                agrees(&above);
            }
        }
    }

    #[test]
    fn jumps_over_one_alu_instruction_agree_taken_and_not_taken() {
        // `j<cc> r3, k, +1` over one ALU instruction becomes a select; every operation kind,
        // 64- and 32-bit compares, taken (k below r3) and not taken.
        let skipped = [
            Insn::new(0x07, 0, 0, 0, 5),  // add r0, 5
            Insn::new(0x04, 0, 0, 0, -1), // add32 r0, -1
            Insn::new(0x3f, 0, 6, 0, 0),  // div r0, r6 (r6 = 0)
            Insn::new(0x9f, 0, 6, 0, 0),  // mod r0, r6
            Insn::new(0x3c, 0, 3, 1, 0),  // sdiv32 r0, r3
            Insn::new(0x87, 0, 0, 0, 0),  // neg r0
            Insn::new(0xdc, 0, 0, 0, 16), // be16 r0
            Insn::new(0xb4, 0, 0, 0, -7), // mov32 r0, -7
            Insn::new(0xbf, 0, 3, 8, 0),  // movsx8 r0, r3
            Insn::new(0x6f, 0, 3, 0, 0),  // lsh r0, r3
            Insn::new(0xb7, 5, 0, 0, 9),  // mov r5, 9 (another register)
        ];
        let jumps = [0x25, 0x2d, 0x45, 0x65, 0xa6, 0x16]; // jgt, jgt reg, jset, jsgt, jlt32, jeq32
        for skip in skipped {
            for opc in jumps {
                for k in [-2, 1000, 1300] {
                    let insns = [
                        Insn::new(0xb7, 3, 0, 0, 1200),        // mov r3, 1200
                        Insn::new(0xb7, 4, 0, 0, k),           // mov r4, k
                        Insn::new(0x18, 0, 0, 0, 0x1234_5678), // lddw r0, ...
                        Insn::new(0x00, 0, 0, 0, -0x7654_3211),
                        Insn::new(0xb7, 5, 0, 0, 1), // mov r5, 1
                        Insn::new(0xb7, 6, 0, 0, 0), // mov r6, 0
                        if opc & 0x08 != 0 {
                            Insn::new(opc, 3, 4, 1, 0)
                        } else {
                            Insn::new(opc, 3, 0, 1, k)
                        }, // j<cc> r3, k / r4, +1
                        skip,
                        Insn::new(0x0f, 0, 5, 0, 0), // add r0, r5
                        Insn::new(0x95, 0, 0, 0, 0),
                    ];
                    agrees(&insns);
                }
            }
        }
        // The skipped slot is also a jump target: the jump stays a branch, with the same result.
        let insns = [
            Insn::new(0xb7, 0, 0, 0, 1),
            Insn::new(0x15, 0, 0, 2, 1),  // jeq r0, 1, +2
            Insn::new(0x25, 0, 0, 1, 5),  // jgt r0, 5, +1
            Insn::new(0x07, 0, 0, 0, 10), // add r0, 10 (entered from slot 1 too)
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        agrees(&insns);
    }

    #[test]
    fn the_cost_model_counts_branches_calls_and_accesses() {
        let exit = Insn::new(0x95, 0, 0, 0, 0);
        assert_eq!(optimised_cost(&[exit]), COST_SLOT);
        // A jump to the next slot is no branch.
        assert_eq!(
            optimised_cost(&[Insn::new(0x15, 0, 0, 0, 0), exit]),
            2 * COST_SLOT
        );
        assert_eq!(
            optimised_cost(&[Insn::new(0x15, 0, 0, 1, 0), exit, exit]),
            3 * COST_SLOT + COST_BRANCH
        );
        assert_eq!(
            optimised_cost(&[Insn::new(0x85, 0, 0, 0, 1), exit]),
            2 * COST_SLOT + COST_CALL
        );
        assert_eq!(
            optimised_cost(&[Insn::new(0x79, 0, 1, 0, 0), exit]),
            2 * COST_SLOT + COST_ACCESS
        );
        // Straight-line code of 1,024 slots (optimised before the cost model) is fast-tier.
        let long = vec![Insn::new(0x07, 0, 0, 0, 1); 1024];
        assert_eq!(Tier::for_program(&long), Tier::Fast);
    }

    /// After a bounds test inside a loop, loop-invariant work still leaves the loop: no pure
    /// instruction (other than those the e-graph rematerialises on purpose) is left in a
    /// loop block with every operand defined outside the loop. The key's 32-bit extensions
    /// (for `jeq32` and `jslt32`) come after the test of the loop's load; they used to stay
    /// inside because Cranelift's e-graph forgets the loop at a cold child block it visits
    /// first (see `Translator::cold_first`).
    #[test]
    fn invariant_work_after_a_bounds_test_leaves_the_loop() {
        use cranelift_codegen::dominator_tree::DominatorTree;
        use cranelift_codegen::flowgraph::ControlFlowGraph;
        use cranelift_codegen::ir::ValueDef;
        use cranelift_codegen::loop_analysis::LoopAnalysis;

        // The index comes from the loaded value, so no loop-level proof covers the load.
        let text = "ldxdw %r3, [%r1+0]\nmov %r4, 0\nmov %r7, 0\nmov %r0, 0\n\
            loop:\nmov %r5, %r7\nlsh %r5, 2\nadd %r5, %r1\nldxw %r6, [%r5+8]\n\
            jeq32 %r6, %r3, found\njslt32 %r6, %r3, +1\nadd %r0, 1\n\
            mov %r7, %r6\nand %r7, 7\nadd %r4, 1\njlt %r4, 8, loop\nexit\n\
            found:\nmov %r0, 99\nexit";
        let insns = crate::tools::asm::assemble(text).unwrap();
        let mut vm = Vm::new();
        vm.load(&encode_slots(&insns)).unwrap();
        FORCED_TIER.with(|f| f.set(Some(Tier::Optimised)));
        OPTIMISED_IR.with(|ir| *ir.borrow_mut() = Some(None));
        let compiled = vm.compile(JitMode::Basic).map(|_| ());
        FORCED_TIER.with(|f| f.set(None));
        let func = OPTIMISED_IR.with(|ir| ir.borrow_mut().take()).flatten();
        compiled.unwrap();
        let func = func.expect("the optimised compile left its function");

        let cfg = ControlFlowGraph::with_function(&func);
        let domtree = DominatorTree::with_function(&func, &cfg);
        let mut loops = LoopAnalysis::new();
        loops.compute(&func, &cfg, &domtree);
        let defined_in = |v| match func.dfg.value_def(v) {
            ValueDef::Result(inst, _) => func.layout.inst_block(inst),
            ValueDef::Param(block, _) => Some(block),
            _ => None,
        };
        let mut in_loops = 0;
        for block in func.layout.blocks() {
            let Some(lp) = loops.innermost_loop(block) else {
                continue;
            };
            for inst in func.layout.block_insts(block) {
                in_loops += 1;
                let args = func.dfg.inst_args(inst);
                if !invariant::pure_single_result(&func, inst)
                    || invariant::rematerialises(&func, inst)
                    || args.is_empty()
                {
                    continue;
                }
                let hoistable = args
                    .iter()
                    .all(|&a| defined_in(a).is_some_and(|b| !loops.is_in_loop(b, lp)));
                assert!(
                    !hoistable,
                    "{} stays in loop block {block}:\n{}",
                    func.dfg.display_inst(inst),
                    func.display()
                );
            }
        }
        assert!(
            in_loops > 10,
            "the loop was translated as a loop:\n{}",
            func.display()
        );
    }
}
