//! The Cranelift JIT: compiles a loaded [`Program`](crate::Program) into native code with
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

pub(crate) mod cfg;
pub(crate) mod code;

pub(crate) mod context;
pub(crate) mod hoist;
pub(crate) mod runtime;
pub(crate) mod select;
pub(crate) mod translate;

use std::sync::{Arc, OnceLock};

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;

use crate::error::{ExecError, JitError};
use crate::exec::machine::{ExecutionProfile, Machine};
use crate::isa::STACK_SIZE;
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
    code: ExecutableCode,
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
struct Scratch {
    context: Context,
    builder: FunctionBuilderContext,
    /// Whether `builder` was left empty by a finished translation (an error or a panic in
    /// the middle of one leaves it dirty, and it is then replaced).
    clean: bool,
}

impl Scratch {
    fn new() -> Self {
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

/// How hard Cranelift works on a program: chosen by program size so that compile time stays
/// near-linear and bounded (see `docs/jit-compile-time.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Small programs (the common case): Cranelift's optimiser (`opt_level=speed`) and its
    /// backtracking register allocator, for the fastest code.
    Optimised,
    /// Large programs: no optimiser and the single-pass register allocator. Both optimised
    /// passes grow faster than linearly on some program shapes (the backtracking allocator
    /// took 21 s on 8,192 slots of helper calls); these settings stay linear.
    Fast,
}

/// Programs of more slots than this compile in [`Tier::Fast`]. Real eBPF programs and the
/// benchmark's workloads (100–300 slots) are far below; at this size the optimised tier
/// takes at most a few tens of milliseconds whatever the shape.
pub(crate) const FAST_TIER_SLOTS: usize = 1024;

impl Tier {
    /// The tier for a program of `slots` slots.
    pub(crate) fn for_program(slots: usize) -> Tier {
        if slots > FAST_TIER_SLOTS {
            Tier::Fast
        } else {
            Tier::Optimised
        }
    }
}

/// The host ISA with librbpf's flags for `tier`, built once per process.
fn host_isa(tier: Tier) -> Result<Arc<dyn TargetIsa>, JitError> {
    static OPTIMISED: OnceLock<Result<Arc<dyn TargetIsa>, String>> = OnceLock::new();
    static FAST: OnceLock<Result<Arc<dyn TargetIsa>, String>> = OnceLock::new();
    let (cell, opt_level, regalloc) = match tier {
        Tier::Optimised => (&OPTIMISED, "speed", "backtracking"),
        Tier::Fast => (&FAST, "none", "single_pass"),
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
    fn bytes(
        &mut self,
        machine: &Machine,
        mode: JitMode,
        capacity: usize,
    ) -> Result<Vec<u8>, JitError> {
        if machine.config.profile == ExecutionProfile::Safe {
            return Err(JitError::SafeProfile);
        }
        if machine.program.is_none() {
            return Err(JitError::NotLoaded);
        }
        let ctx = self.context(machine);
        let program = machine.program.as_ref().ok_or(JitError::NotLoaded)?;
        let tier = Tier::for_program(program.len());
        if tier == Tier::Fast && cfg::min_fast_tier_code_bytes(&program.insns) > capacity {
            return Err(JitError::TargetBufferTooSmall);
        }
        let isa = host_isa(tier)?;
        let map_slabs = machine.maps.maps.slab_regions();
        let opts = translate::Options {
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
            compact_helper_calls: tier == Tier::Fast,
            packet_loads: machine.config.packet_loads,
        };
        // A panic inside Cranelift (a translator bug) becomes an error, never an unwind into
        // the caller.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let run = |scratch: &mut Scratch| -> Result<Vec<u8>, JitError> {
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
                translate::translate(&*isa, program, opts, builder, &mut context.func)?;
                *clean = true;
                let compiled = context
                    .compile(&*isa, &mut ControlPlane::default())
                    .map_err(|e| JitError::Internal(format!("compile failed: {:?}", e.inner)))?;
                if !compiled.buffer.relocs().is_empty() {
                    return Err(JitError::Internal(
                        "compiled code needs relocations".to_owned(),
                    ));
                }
                Ok(compiled.code_buffer().to_vec())
            };
            SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => run(&mut scratch),
                // Not expected (compiling never re-enters), but stay correct if it does.
                Err(_) => run(&mut Scratch::new()),
            })
        }))
        .unwrap_or_else(|_| {
            Err(JitError::Internal(
                "compile failed: translator panic".into(),
            ))
        })
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
        let bytes = self.bytes(machine, mode, machine.config.jit_code_size)?;
        if bytes.len() > machine.config.jit_code_size {
            return Err(JitError::TargetBufferTooSmall);
        }
        let code = ExecutableCode::new(&bytes)?;
        let ptr = code.as_ptr();
        self.image = Some(Image { mode, code });
        Ok(ptr)
    }

    /// The body of [`Vm::translate`](crate::vm::Vm::translate).
    pub(crate) fn translate(
        &mut self,
        machine: &Machine,
        mode: JitMode,
        buf: &mut [u8],
    ) -> Result<usize, JitError> {
        let bytes = self.bytes(machine, mode, buf.len())?;
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
        let bytes = image.code.bytes();
        let dest = buf
            .get_mut(..bytes.len())
            .ok_or(JitError::BufferNotBigEnough)?;
        dest.copy_from_slice(bytes);
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
        self.image.as_ref().map(|i| i.code.bytes().len())
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
