//! eBPF → Cranelift IR translation: one Cranelift function for the whole program.
//!
//! * `r0..r10` are `Variable`s; every basic block found by [`super::cfg`] is a Cranelift block.
//! * Local calls stay inside the function: the caller pushes `{return site, r6..r9, r10}` onto
//!   a frame array in a stack slot and jumps; `exit` in a callee pops the frame and dispatches
//!   through a `br_table` over the return sites. So the image has no calls between functions,
//!   hence no relocations, and stays position independent.
//! * Everything outside the image (helper table, context, runtime functions) is reached through
//!   absolute addresses embedded as constants; the image therefore still runs after a `memcpy`.
//! * Faults branch to cold blocks that call [`super::runtime`] and return `u64::MAX`: there is
//!   no trap instruction anywhere, and a division never traps because its divisor is guarded.
//!
//! Every opcode arm states the interpreter semantics it reproduces (`docs/semantics.md`).

#![allow(clippy::arithmetic_side_effects)]

use cranelift_codegen::cursor::{Cursor, FuncCursor};
use cranelift_codegen::dominator_tree::DominatorTree;
use cranelift_codegen::flowgraph::ControlFlowGraph;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I8, I16, I32, I64, I64X2};
use cranelift_codegen::ir::{
    AbiParam, AtomicRmwOp, Block, BlockArg, Function, Inst, InstBuilder, JumpTableData,
    MemFlagsData, SigRef, Signature, StackSlot, StackSlotData, StackSlotKind, Type, UserFuncName,
    Value,
};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};

mod hoist;
mod idioms;
mod layout;
mod select;

use super::JitMode;
use super::cfg::{self, Cfg};
use super::context::{BLINDING_KEY_OFFSET, HELPERS_OFFSET, JitContext, fault};
use super::hoist::{self as loops, HoistedLoop};
use super::invariant;
use super::range_test;
use super::runtime::{self, run_block};
use super::select::Hammock;
use super::thread;
use crate::error::{Access, JitError};
use crate::exec::helpers::HelperTable;
use crate::exec::idiom::compare::CompareLoop;
use crate::exec::idiom::{CopyLoop, Idioms};
use crate::exec::packet::PacketLoads;
use crate::exec::switch::Switch;
use crate::isa::atomic::Atomic;
use crate::isa::{
    HELPER_SLOTS, Insn, MAX_CALL_DEPTH, STACK_SIZE, alu, atomic, call_kind, class, jmp, mode, op,
    reg_index, size, source,
};
use crate::program::Program;

/// What a translation bakes into the code (read at compile time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Entry signature.
    pub mode: JitMode,
    /// Check every access (`Config::bounds_check` at compile time).
    pub bounds_check: bool,
    /// `Config::instruction_limit` at compile time (0: no counting code at all).
    pub instruction_limit: u32,
    /// `Config::unwind_index` at compile time.
    pub unwind_index: Option<u32>,
    /// The boxed context.
    pub ctx: *const JitContext,
    /// `Some(key)` (the context's key) when immediates are blinded.
    pub blinding: Option<u64>,
    /// Whether anything beyond mem and the stack can allow an access (data sections, or a
    /// bounds callback registered at compile time). When not, the out-of-line bounds check
    /// only records the fault and never returns into the code.
    pub other_regions: bool,
    /// Helper calls with a constant index go through [`runtime::rt_call_helper`]: one call
    /// site and one block each instead of two of each (large programs, see
    /// [`super::Tier::Fast`]).
    pub compact_helper_calls: bool,
    /// The optimised tier compiles this translation, so Cranelift's e-graph runs on it: loop
    /// inputs are pinned against its rematerialisation ([`Translator::pin_loop_inputs`]), and
    /// the finished IR has its settled branches threaded ([`thread::thread_known_branches`],
    /// whose dead copies the e-graph removes) and its accumulators put first
    /// ([`invariant::accumulators_first`]).
    pub optimising: bool,
    /// Whether every helper call first publishes the run to the kernel helpers
    /// (`crate::kernel::helpers::rt_publish_run`).
    pub publish_run: bool,
    /// The loaded program's map value slabs (valid while translating): accesses outside mem
    /// and the stack test them inline before calling the runtime's slow path.
    pub map_slabs: *const [crate::exec::maps::SlabRegion],
    /// `Config::packet_loads` at compile time: the flavour of the legacy packet loads.
    pub packet_loads: PacketLoads,
}

/// Bytes per local-call frame: return site, r6..r9, r10.
const FRAME_BYTES: i64 = 48;

/// One proven access: `[lo, hi)` relative to the current value of `reg`.
///
/// A proof made by a store (or an atomic) covers later loads and stores of the range. One
/// made by a load covers stores too when mem and the stack, both writable, are the only
/// regions; otherwise only loads, since the load may have been allowed by a read-only region
/// (`.rodata`): every store is checked as a store (docs/sandbox.md).
#[derive(Clone, Copy)]
struct Proof {
    reg: u8,
    lo: i64,
    hi: i64,
    writable: bool,
}

/// What the translation knows of a register's value at the current point of a block, from
/// the instructions translated since the block began (`Translator::known`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    /// Nothing.
    Unknown,
    /// An unsigned value in `lo..=hi`.
    Range(u64, u64),
    /// `r10 + d` for some `d` in `lo..=hi`, where r10 is the top of the Basic-mode stack for
    /// the whole run (no local calls).
    Stack(i64, i64),
}

/// Most a [`Known::Stack`] offset may reach either way: far enough for every real access,
/// small enough that offset arithmetic never overflows.
const MAX_STACK_DELTA: i64 = 1 << 40;

impl Known {
    /// `Range` when `lo..=hi` is a non-empty interval, else `Unknown`.
    fn range(lo: Option<u64>, hi: Option<u64>) -> Known {
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi => Known::Range(lo, hi),
            _ => Known::Unknown,
        }
    }

    /// `Stack` when both offsets stay within [`MAX_STACK_DELTA`], else `Unknown`.
    fn stack(lo: i64, hi: i64) -> Known {
        if lo <= hi && lo.abs() <= MAX_STACK_DELTA && hi.abs() <= MAX_STACK_DELTA {
            Known::Stack(lo, hi)
        } else {
            Known::Unknown
        }
    }

    /// The value after adding `lo..=hi` (a constant, or a known range of another register).
    fn plus(self, other: Known) -> Known {
        match (self, other) {
            (Known::Range(a, b), Known::Range(c, d)) => {
                Known::range(a.checked_add(c), b.checked_add(d))
            }
            (Known::Stack(a, b), Known::Range(c, d)) | (Known::Range(c, d), Known::Stack(a, b))
                if d <= MAX_STACK_DELTA as u64 =>
            {
                Known::stack(a + c as i64, b + d as i64)
            }
            _ => Known::Unknown,
        }
    }

    /// The value after adding the signed constant `k`.
    fn plus_const(self, k: i64) -> Known {
        match self {
            Known::Stack(a, b) if k.abs() <= MAX_STACK_DELTA => Known::stack(a + k, b + k),
            Known::Range(a, b) if k >= 0 => {
                Known::range(a.checked_add(k as u64), b.checked_add(k as u64))
            }
            Known::Range(a, b) => {
                let k = k.unsigned_abs();
                Known::range(a.checked_sub(k), b.checked_sub(k))
            }
            _ => Known::Unknown,
        }
    }

    /// Whether the value certainly fits in 32 bits (so its low half is the whole value).
    fn fits_u32(self) -> bool {
        matches!(self, Known::Range(_, hi) if hi <= u64::from(u32::MAX))
    }
}

/// Values describing one memory region to the inline bounds check.
#[derive(Clone, Copy)]
struct Region {
    base: Value,
    /// `-base`: `addr + neg` is one non-destructive `lea` where `addr - base` needs a copy.
    neg: Value,
    /// `lim[i]`: accesses of `1 << i` bytes are inside when `addr - base < lim[i]`.
    lim: [Value; 4],
}

struct Translator<'a, 'b> {
    b: FunctionBuilder<'b>,
    insns: &'a [Insn],
    program: &'a Program,
    opts: Options,
    cfg: Cfg,
    regs: [Variable; 11],
    depth: Variable,
    remaining: Variable,
    blocks: Vec<Option<Block>>,
    run_block: Option<StackSlot>,
    mem: Value,
    /// The caller's buffers as passed (`mem`, and the stack in Extended mode), checked at
    /// entry by [`Translator::check_buffer`]: `(base, len, fault kind)`.
    buffers: Vec<(Value, Value, i64)>,
    mem_region: Region,
    stack_region: Region,
    frames: Option<StackSlot>,
    fail: Block,
    /// The shared end of every denied inline bounds check (created on first use): params
    /// `(packed access, base register value)`; it records the fault through the runtime's
    /// check and fails. Only when nothing but mem and the stack can allow an access.
    deny: Option<Block>,
    fault: Block,
    exit: Block,
    ret_zero: Block,
    pop: Option<Block>,
    /// The calling convention of every runtime call but the bounds-check slow path.
    call_conv: CallConv,
    /// Signatures of the runtime calls, imported on first use ([`Translator::signature`]):
    /// Cranelift works out the ABI of every imported signature, used or not.
    signatures: [Option<SigRef>; RuntimeCall::COUNT],
    /// Copy loops run in bulk when their guard allows (`translate/idioms.rs`), by head slot.
    copy_loops: &'a [CopyLoop],
    /// Compare loops fast-forwarded at their entry (`translate/idioms.rs`), by head slot.
    compare_loops: Vec<CompareLoop>,
    /// The frame of each compare loop (`idioms::compare_frame`), in `compare_loops` order.
    compare_frames: Vec<StackSlot>,
    /// Compare trees dispatched through a jump table (`translate/idioms.rs`), by root slot.
    switches: &'a [Switch],
    /// `Some`: slots that can run (the rest, compares behind a switch table, are skipped).
    reachable: Option<Vec<bool>>,
    /// Loops that run an unchecked copy while one test per iteration proves their accesses
    /// (`translate/hoist.rs`), by head slot.
    hoisted: Vec<HoistedLoop>,
    /// Registers each loop reads and never writes, by header slot ([`invariant::loop_inputs`]):
    /// pinned on the way in by [`Translator::pin_loop_inputs`].
    loop_inputs: Vec<u16>,
    /// The pins [`Translator::pin_loop_inputs`] placed, reviewed once the function is whole
    /// ([`invariant::drop_idle_pins`]).
    pins: Vec<Inst>,
    /// The function's entry block, where [`Translator::entry_const`] defines its constants.
    entry: Block,
    /// Constants defined once in the entry block ([`Translator::entry_const`]), by value.
    entry_consts: Vec<(i64, Value)>,
    /// `in_loop[pc]`: some backward jump at or after `pc` goes to or before it
    /// ([`cfg::slots_in_loops`]); empty unless the optimised tier translates a switch, the
    /// only user ([`Translator::entry_const`]).
    in_loop: Vec<bool>,
    /// `unchecked[pc]`: the access at `pc` is being translated inside a hoisted loop's copy,
    /// where the loop's test proves it.
    unchecked: Vec<bool>,
    /// The per-iteration test of the hoisted loop copy being translated, applied at its back
    /// edges.
    iterate: Option<hoist::IterationTest>,
    /// The trip test of the counted loop copy being translated, decided by the counter.
    counted_exit: Option<hoist::CopyExit>,
    /// Branches translated as selects (`translate/select.rs`), by branch slot.
    selects: Vec<Hammock>,
    /// `entered[pc]`: control reaches `pc` other than by falling through, by a jump or a
    /// rewrite's edge (what
    /// [`range_test::fused_range_test`] needs); empty when instructions are counted, which
    /// keeps every jump pair apart.
    entered: Vec<bool>,
    /// `rewrite_entered[pc]`: a rewrite of this translation (a switch table, a copy loop's
    /// bulk path, a hoisted loop) jumps to `pc`'s block.
    rewrite_entered: Vec<bool>,
    /// The slot of the second jump of the range test just fused, whose block is skipped.
    fused_away: Option<usize>,
    /// The join of the hammock just if-converted, which the current block falls into: it is
    /// translated on in that block.
    falls_into: Option<usize>,
    /// Whether the code entered a `crate::exec::reentry` level (programs that call helpers): every
    /// return after the entry then leaves it.
    in_level: bool,
    proofs: Vec<Proof>,
    /// What is known of each register's value here ([`Known`]); forgotten at every block
    /// boundary, like `proofs`. A checked access through a pointer known to stay inside the
    /// static stack needs no test.
    known: [Known; 11],
    terminated: bool,
    static_stack: bool,
    /// Whether the stack is a region at all (false: Basic-mode code that never uses r10).
    has_stack: bool,
    /// Whether the back edges in `cfg.rotations` are translated as copies of their loop
    /// header (`translate/layout.rs`). Code whose back edges must reach the header block
    /// itself turns it off while it is translated.
    rotate_back_edges: bool,
}

fn flags() -> MemFlagsData {
    MemFlagsData::new()
}

fn trusted() -> MemFlagsData {
    MemFlagsData::trusted()
}

fn sig(isa: &dyn TargetIsa, params: &[Type], ret: Option<Type>) -> Signature {
    signature_in(isa.default_call_conv(), params, ret)
}

fn signature_in(call_conv: CallConv, params: &[Type], ret: Option<Type>) -> Signature {
    let mut s = Signature::new(call_conv);
    s.params.extend(params.iter().map(|&t| AbiParam::new(t)));
    s.returns.extend(ret.map(AbiParam::new));
    s
}

/// The runtime functions compiled code calls, each with its signature
/// ([`Translator::signature`]).
#[derive(Debug, Clone, Copy)]
enum RuntimeCall {
    /// A helper called directly: `(r1..r5, ctx) -> r0`.
    Helper,
    /// [`runtime`]'s helper dispatcher.
    Dispatcher,
    /// The bounds-check slow path (a register-preserving trampoline on x86-64).
    Check,
    /// [`runtime::rt_fault`].
    Fault,
    /// `memmove`-shaped bulk operations ([`crate::exec::idiom::bulk_move`], `rt_fill`).
    Memmove,
    /// [`runtime::rt_packet_load`].
    Packet,
    /// [`runtime::rt_compare_ff`].
    Compare,
    /// [`runtime::rt_call_helper`], with [`Options::compact_helper_calls`].
    CallHelper,
    /// [`runtime::rt_publish_run`].
    Publish,
    /// Entering a re-entry level.
    EnterRun,
    /// Leaving it.
    LeaveRun,
}

impl RuntimeCall {
    /// How many there are: the size of [`Translator::signatures`].
    const COUNT: usize = RuntimeCall::LeaveRun as usize + 1;

    /// The signature, in `call_conv` (the bounds-check slow path picks its own).
    fn signature(self, call_conv: CallConv) -> Signature {
        let i64s = |n: usize| vec![I64; n];
        let (params, ret) = match self {
            RuntimeCall::Helper => (i64s(6), Some(I64)),
            RuntimeCall::Dispatcher => (vec![I64, I64, I64, I64, I64, I32, I64], Some(I64)),
            RuntimeCall::Check => (i64s(3), None),
            RuntimeCall::Fault => (i64s(4), None),
            RuntimeCall::Memmove => (i64s(3), Some(I64)),
            RuntimeCall::Packet => (i64s(5), Some(I64)),
            RuntimeCall::Compare => (i64s(2), Some(I64)),
            RuntimeCall::CallHelper => (i64s(8), Some(I64)),
            RuntimeCall::Publish => (i64s(2), None),
            RuntimeCall::EnterRun => (i64s(1), Some(I64)),
            RuntimeCall::LeaveRun => (Vec::new(), None),
        };
        let mut s = signature_in(call_conv, &params, ret);
        if matches!(self, RuntimeCall::Check) && cfg!(target_arch = "x86_64") {
            // The x86-64 slow path goes through a register-preserving trampoline.
            s.call_conv = CallConv::PreserveAll;
        }
        s
    }
}

/// Translates `program`, whose idioms are `idioms` (recognised at load), into `func`
/// (cleared first, so a reused function keeps only its allocations), with the entry
/// signature of `opts.mode`.
pub(crate) fn translate<'a>(
    isa: &dyn TargetIsa,
    program: &'a Program,
    idioms: &'a Idioms,
    opts: Options,
    fctx: &mut FunctionBuilderContext,
    func: &mut Function,
) -> Result<(), JitError> {
    let insns = &program.insns[..];
    let mut cfg = cfg::analyze(insns)?;
    let params: &[Type] = match opts.mode {
        JitMode::Basic => &[I64, I64],
        JitMode::Extended => &[I64, I64, I64, I64],
    };
    func.clear();
    func.name = UserFuncName::user(0, 0);
    func.signature = sig(isa, params, Some(I64));
    let mut b = FunctionBuilder::new(func, fctx);
    // Bulk copies skip per-instruction counting, and their constants are not blinded.
    let (copy_loops, switches): (&[CopyLoop], &[Switch]) =
        if opts.instruction_limit == 0 && opts.blinding.is_none() {
            (&idioms.copies, &idioms.switches)
        } else {
            (&[], &[])
        };
    // Fast-forwards scan only mem and the stack, through the bounds model.
    let compare_loops =
        if opts.instruction_limit == 0 && opts.blinding.is_none() && opts.bounds_check {
            let mut loops = idioms.compares.clone();
            loops.retain(CompareLoop::scans_in_bulk);
            loops
        } else {
            Vec::new()
        };
    // The copies of rotated loop headers are not counted per block.
    if opts.instruction_limit == 0 {
        layout::plan_rotations(insns, &mut cfg, copy_loops, switches);
    }

    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let args = b.block_params(entry).to_vec();
    let (mem, mem_len) = (args[0], args[1]);
    // A program that never names r10 and makes no local call cannot reach its stack: Basic
    // mode then skips the 4 KiB frame (and the stack probe it needs on every entry), keeping
    // only a small slot whose address fault messages print, as an empty region.
    let needs_stack =
        !cfg.return_sites.is_empty() || insns.iter().any(|i| i.dst == 10 || i.src == 10);
    let has_stack = opts.mode == JitMode::Extended || needs_stack;
    // Only code that accesses memory needs the run block; storing it costs every entry.
    // Legacy packet loads always do: their runtime function reads the run's regions from it
    // (the kernel flavour checks the packet's bounds whatever `bounds_check` says).
    let packet_loads = insns.iter().any(Insn::is_packet_load);
    let accesses_memory = packet_loads
        || insns
            .iter()
            .any(|i| matches!(i.class(), class::LDX | class::ST | class::STX));
    let (stack, stack_len) = match opts.mode {
        // Nothing can reach or print the stack: no frame space at all.
        JitMode::Basic if !(needs_stack || (opts.bounds_check && accesses_memory)) => {
            let zero = b.ins().iconst(I64, 0);
            (zero, zero)
        }
        JitMode::Basic => {
            let size = if needs_stack { STACK_SIZE as u32 } else { 16 };
            let slot =
                b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, size, 4));
            if needs_stack {
                clear_stack_top(&mut b, isa, slot, program.stack_reach);
            }
            let base = b.ins().stack_addr(I64, slot, 0);
            let len = if needs_stack { STACK_SIZE as i64 } else { 0 };
            (base, b.ins().iconst(I64, len))
        }
        JitMode::Extended => (args[2], args[3]),
    };
    let regs: [Variable; 11] = std::array::from_fn(|_| b.declare_var(I64));
    let depth = b.declare_var(I64);
    let remaining = b.declare_var(I64);
    let zero = b.ins().iconst(I64, 0);
    for (i, &r) in regs.iter().enumerate() {
        let v = match i {
            1 => mem,
            2 => mem_len,
            10 => b.ins().iadd(stack, stack_len),
            _ => zero,
        };
        b.def_var(r, v);
    }
    b.def_var(depth, zero);
    // uBPF keeps the limit in an `int`: limits above i32::MAX are negative and fail at once.
    let limit = b
        .ins()
        .iconst(I64, i64::from(opts.instruction_limit as i32));
    b.def_var(remaining, limit);
    // Only the limits that inline checks can use are built: fewer values for Cranelift to
    // optimise away. (A missing limit would read as 0: every access goes to the slow path,
    // which applies the full check, so it could cost speed but never strictness.)
    let sizes = if opts.bounds_check {
        access_sizes(insns)
    } else {
        0
    };
    let mem_region = region(&mut b, mem, mem_len, true, sizes);
    let stack_sizes = if has_stack { sizes } else { 0 };
    // Extended-mode code may be handed a null stack directly: like a null mem, no region.
    let stack_region = region(
        &mut b,
        stack,
        stack_len,
        opts.mode == JitMode::Extended,
        stack_sizes,
    );
    // Each compare loop's frame for `runtime::rt_compare_ff`: the run's mem and stack are
    // written once per run, here; each entry into the loop adds the registers.
    let no_stack = b.ins().iconst(I64, 0);
    let compare_frames: Vec<StackSlot> = compare_loops
        .iter()
        .map(|_| {
            let stack_len = if has_stack { stack_len } else { no_stack };
            idioms::compare_frame(&mut b, [mem, mem_len, stack, stack_len])
        })
        .collect();
    // Kernel helpers check pointer arguments against the run's regions, read from the block.
    let run_block = (packet_loads || (opts.bounds_check && (accesses_memory || opts.publish_run)))
        .then(|| {
            let slot = b.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                run_block::SIZE,
                3,
            ));
            for (v, off) in [
                (mem, run_block::MEM),
                (mem_len, run_block::MEM_LEN),
                (stack, run_block::STACK),
                (stack_len, run_block::STACK_LEN),
            ] {
                b.ins().stack_store(I64, v, slot, off);
            }
            slot
        });
    let frames = (!cfg.return_sites.is_empty()).then(|| {
        b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (FRAME_BYTES as u32) * MAX_CALL_DEPTH as u32,
            3,
        ))
    });

    // Shared cold blocks.
    let fail = b.create_block();
    b.set_cold_block(fail);
    let fault_blk = b.create_block();
    b.set_cold_block(fault_blk);
    for _ in 0..3 {
        b.append_block_param(fault_blk, I64);
    }
    let exit = b.create_block();
    b.append_block_param(exit, I64);
    let ret_zero = b.create_block();
    let pop = frames.map(|_| b.create_block());

    let reachable = idioms::reachable(insns, &cfg, switches);
    let mut idiom_heads: Vec<usize> = copy_loops.iter().map(|c| c.head).collect();
    idiom_heads.extend(compare_loops.iter().map(|c| c.head as usize));
    let hoisted = hoistable_loops(insns, &cfg, &opts, &idiom_heads, switches, &reachable);
    // Both paths of an if-converted branch run, so instructions cannot be counted per block.
    let selects = if opts.instruction_limit == 0 {
        select::planned(insns, &cfg, copy_loops, switches, &reachable, &hoisted)
    } else {
        Vec::new()
    };
    let mut blocks = vec![None; insns.len() + 1];
    for (pc, &is_leader) in cfg.leader.iter().enumerate() {
        if is_leader {
            blocks[pc] = Some(b.create_block());
        }
    }
    let static_stack = opts.mode == JitMode::Basic && frames.is_none();
    let mut buffers = vec![(mem, mem_len, fault::INVALID_MEM)];
    if opts.mode == JitMode::Extended {
        buffers.push((stack, stack_len, fault::INVALID_STACK));
    }
    // Blocks this translation's own rewrites jump to: switch leaves and joins, copy-loop
    // exits, the slot after a hoisted loop.
    let mut rewrite_entered = vec![false; insns.len() + 1];
    let rewrites = switches
        .iter()
        .flat_map(|s| {
            s.leaves
                .iter()
                .map(|l| l.pc)
                .chain(s.values.as_ref().map(|v| v.join))
        })
        .chain(copy_loops.iter().map(|l| l.exit))
        .chain(hoisted.iter().map(|l| l.last + 1));
    for pc in rewrites {
        if let Some(e) = rewrite_entered.get_mut(pc) {
            *e = true;
        }
    }
    // What `range_test::fused_range_test` needs (see `Translator::entered`).
    let entered = if opts.instruction_limit == 0 {
        let mut entered = crate::exec::idiom::entry_points(insns);
        for (e, &r) in entered.iter_mut().zip(&rewrite_entered) {
            *e |= r;
        }
        entered
    } else {
        Vec::new()
    };
    let mut t = Translator {
        b,
        insns,
        program,
        opts,
        cfg,
        regs,
        depth,
        remaining,
        blocks,
        run_block,
        mem,
        buffers,
        mem_region,
        stack_region,
        frames,
        fail,
        deny: None,
        fault: fault_blk,
        exit,
        ret_zero,
        pop,
        call_conv: isa.default_call_conv(),
        signatures: [None; RuntimeCall::COUNT],
        copy_loops,
        compare_loops,
        compare_frames,
        reachable,
        switches,
        hoisted,
        loop_inputs: if opts.optimising {
            invariant::loop_inputs(insns)
        } else {
            Vec::new()
        },
        pins: Vec::new(),
        entry,
        entry_consts: Vec::new(),
        in_loop: if opts.optimising && !switches.is_empty() {
            cfg::slots_in_loops(insns)
        } else {
            Vec::new()
        },
        unchecked: vec![false; insns.len()],
        iterate: None,
        counted_exit: None,
        selects,
        rewrite_entered,
        fused_away: None,
        falls_into: None,
        entered,
        in_level: false,
        proofs: Vec::new(),
        known: [Known::Unknown; 11],
        terminated: false,
        static_stack,
        has_stack,
        rotate_back_edges: true,
    };
    t.body()?;
    t.tails();
    t.b.seal_all_blocks();
    let pins = core::mem::take(&mut t.pins);
    t.b.finalize(isa.frontend_config());
    if opts.optimising {
        // Only the optimised tier pins loop inputs and runs passes over the whole function.
        remove_unreachable_blocks(func);
        invariant::drop_idle_pins(func, &pins);
        thread::thread_known_branches(func);
        invariant::accumulators_first(func);
    }
    Ok(())
}

/// Removes the blocks no path from the entry reaches (code behind a `ja` that nothing jumps
/// into) before the passes that walk the whole function: in an unreachable cycle the SSA
/// builder may leave values that are aliases of each other, and resolving one of those
/// panics. Cranelift drops such blocks first thing anyway.
fn remove_unreachable_blocks(func: &mut Function) {
    let cfg = ControlFlowGraph::with_function(func);
    let domtree = DominatorTree::with_function(func, &cfg);
    let dead: Vec<Block> = func
        .layout
        .blocks()
        .filter(|&b| !domtree.is_reachable(b))
        .collect();
    for block in dead {
        while let Some(inst) = func.layout.first_inst(block) {
            func.layout.remove_inst(inst);
        }
        func.layout.remove_block(block);
    }
}

/// The loops whose bounds checks are hoisted ([`loops::find_loops`]): only with checks on,
/// without an instruction limit (the copy does not count) or blinding, and not where another
/// idiom (copy loop, switch table) already rewrites the code.
fn hoistable_loops(
    insns: &[Insn],
    cfg: &Cfg,
    opts: &Options,
    idiom_heads: &[usize],
    switches: &[Switch],
    reachable: &Option<Vec<bool>>,
) -> Vec<HoistedLoop> {
    if !opts.bounds_check || opts.instruction_limit != 0 || opts.blinding.is_some() {
        return Vec::new();
    }
    let mut found = loops::find_loops(insns, cfg);
    found.retain(|l| {
        let range = l.head..=l.last;
        !idiom_heads.iter().any(|h| range.contains(h))
            && !switches.iter().any(|s| range.contains(&s.root))
            && reachable
                .as_ref()
                .is_none_or(|r| r[l.head..=l.last].iter().all(|&live| live))
    });
    found
}

/// Largest stack top that entry code clears with inline 16-byte stores; above it, it calls
/// `memset`.
const INLINE_CLEAR_BYTES: usize = 512;

/// Zeroes the top `reach` bytes (rounded up to 8) of the 4096-byte Basic-mode stack `slot`,
/// so the program reads 0 from every byte it can reach before writing it, never what the
/// native stack held (docs/sandbox.md, "Stack").
fn clear_stack_top(
    b: &mut FunctionBuilder<'_>,
    isa: &dyn TargetIsa,
    slot: StackSlot,
    reach: usize,
) {
    let reach = reach.min(STACK_SIZE).next_multiple_of(8);
    if reach == 0 {
        return;
    }
    let bottom = (STACK_SIZE - reach) as i32;
    if reach <= INLINE_CLEAR_BYTES {
        let zero = b.ins().iconst(I64, 0);
        let mut off = bottom;
        if reach % 16 == 8 {
            b.ins().stack_store(I64, zero, slot, off);
            off += 8;
        }
        if off < STACK_SIZE as i32 {
            let wide = b.ins().splat(I64X2, zero);
            while off < STACK_SIZE as i32 {
                b.ins().stack_store(I64, wide, slot, off);
                off += 16;
            }
        }
        return;
    }
    // `memset` through its absolute address: no relocation, like the runtime functions.
    let memset = b.import_signature(sig(isa, &[I64, I32, I64], Some(I64)));
    let f = b.ins().iconst(I64, libc::memset as *const () as i64);
    let dest = b.ins().stack_addr(I64, slot, bottom);
    let zero = b.ins().iconst(I32, 0);
    let len = b.ins().iconst(I64, reach as i64);
    b.ins().call_indirect(memset, f, &[dest, zero, len]);
}

/// Precomputes the per-size limits of a region (a null `mem` is never a region). Only the
/// limits that checks use survive dead-code elimination.
fn region(
    b: &mut FunctionBuilder<'_>,
    base: Value,
    len: Value,
    nullable: bool,
    sizes: u8,
) -> Region {
    let zero = b.ins().iconst(I64, 0);
    if sizes == 0 {
        return Region {
            base,
            neg: zero,
            lim: [zero; 4],
        };
    }
    // A null base has no bytes at all.
    let len = if nullable {
        b.ins().select(base, len, zero)
    } else {
        len
    };
    let lim = std::array::from_fn(|i| {
        let size = 1i64 << i;
        if sizes & (1 << i) == 0 {
            return zero;
        }
        if size == 1 {
            // `addr - base < len` is exactly the one-byte test.
            return len;
        }
        let fits = b
            .ins()
            .icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, len, size);
        let l = b.ins().iadd_imm_s(len, 1 - size);
        b.ins().select(fits, l, zero)
    });
    // `select(base, -base, 0)` is `-base`, written so that the egraph does not turn
    // `addr + neg` back into `addr - base`.
    let minus = b.ins().ineg(base);
    let neg = b.ins().select(base, minus, zero);
    Region { base, neg, lim }
}

/// `addr - region.base`. When the access register is the base itself (constant offsets, which
/// the egraph folds) a subtraction; otherwise `addr + (-base)`, a single `lea`.
fn offset_in(b: &mut FunctionBuilder<'_>, reg: Value, addr: Value, region: Region) -> Value {
    if reg == region.base {
        b.ins().isub(addr, region.base)
    } else {
        b.ins().iadd(addr, region.neg)
    }
}

/// Bit `i` set: the program has a memory access of `1 << i` bytes.
fn access_sizes(insns: &[Insn]) -> u8 {
    let mut sizes = 0;
    for insn in insns {
        match insn.class() {
            // Atomics too: their size field is W (`ATOMIC32`) or DW (`ATOMIC64`).
            class::LDX | class::ST | class::STX => {
                sizes |= 1 << size_index(size::bytes(insn.opc));
            }
            _ => {}
        }
    }
    sizes
}

fn size_index(bytes: usize) -> usize {
    bytes.trailing_zeros() as usize
}

impl Translator<'_, '_> {
    fn block_at(&self, pc: usize) -> Result<Block, JitError> {
        self.blocks
            .get(pc)
            .copied()
            .flatten()
            .ok_or_else(|| JitError::Internal(format!("no block at PC {pc}")))
    }

    /// The signature of calls to `callee`, imported into the function on first use.
    fn signature(&mut self, callee: RuntimeCall) -> SigRef {
        let slot = callee as usize;
        if let Some(sig) = self.signatures[slot] {
            return sig;
        }
        let sig = self.b.import_signature(callee.signature(self.call_conv));
        self.signatures[slot] = Some(sig);
        sig
    }

    /// Falling into the loop headed at `pc`: passes each register the loop reads but never
    /// writes through an operation Cranelift's e-graph cannot see through, so that it does
    /// not rematerialise the value's computation inside the loop (see `jit/invariant.rs`).
    /// Constants stay as they are: the e-graph folds them into the loop's instructions.
    /// Costs one `add` per register each time the loop is entered this way.
    fn pin_loop_inputs(&mut self, pc: usize) {
        let inputs = self.loop_inputs.get(pc).copied().unwrap_or(0);
        if inputs == 0 {
            return;
        }
        for reg in 0..10u8 {
            if inputs & (1 << reg) == 0 {
                continue;
            }
            let v = self.get(reg);
            if !invariant::is_constant(self.b.func, v) {
                let zero = self.iconst(0);
                let (pinned, _) = self.b.ins().uadd_overflow(v, zero);
                if let Some(pin) = self.b.func.dfg.value_def(pinned).inst() {
                    self.pins.push(pin);
                }
                let var = self.regs[reg_index(reg)];
                self.b.def_var(var, pinned);
            }
        }
    }

    fn get(&mut self, reg: u8) -> Value {
        self.b.use_var(self.regs[reg_index(reg)])
    }

    /// Whether slot `pc` lies behind a switch table, which decides everything its compares
    /// did: nothing runs it, so it is not translated.
    fn untranslated(&self, pc: usize) -> bool {
        self.reachable.as_ref().is_some_and(|r| !r[pc])
    }

    /// Forgets what is known at this point (a new block, or code reached from elsewhere).
    fn forget_facts(&mut self) {
        self.proofs.clear();
        self.known = [Known::Unknown; 11];
    }

    /// Forgets what is known of `reg`'s value.
    fn forget_known(&mut self, reg: u8) {
        self.known[reg_index(reg)] = Known::Unknown;
    }

    /// What is known of `reg` here: with a static stack, r10 is its top.
    fn known_of(&self, reg: u8) -> Known {
        let reg = reg_index(reg);
        if reg == 10 && self.static_stack {
            Known::Stack(0, 0)
        } else {
            self.known[reg]
        }
    }

    /// What `insn` leaves in its destination register, from what is known of its operands
    /// before it runs (`Unknown` for anything not followed). Only ALU instructions, loads
    /// and `lddw` are followed; every other write of a register makes it unknown
    /// ([`Translator::set`]).
    fn known_result(&self, pc: usize, insn: Insn) -> Known {
        let max32 = u64::from(u32::MAX);
        match insn.class() {
            class::LDX if insn.opc & mode::MASK == mode::MEM => match size::bytes(insn.opc) {
                8 => Known::Unknown,
                n => Known::Range(0, (1u64 << (8 * n)) - 1),
            },
            class::LD if insn.opc == op::LDDW => {
                let v = insn.lddw_value(self.insns.get(pc + 1));
                Known::Range(v, v)
            }
            class::ALU64 => {
                let d = self.known_of(insn.dst);
                let by_reg = insn.opc & source::MASK == source::X;
                let k = i64::from(insn.imm);
                let s = if by_reg {
                    self.known_of(insn.src)
                } else {
                    Known::Range(k as u64, k as u64)
                };
                match insn.opc & alu::MASK {
                    alu::MOV if insn.off == 0 => s,
                    alu::ADD if by_reg => d.plus(s),
                    alu::ADD => d.plus_const(k),
                    alu::SUB if !by_reg && k != i64::MIN => d.plus_const(-k),
                    alu::AND => match (d, s) {
                        // x & m never exceeds x, nor m.
                        (Known::Range(_, a), Known::Range(_, b)) => Known::Range(0, a.min(b)),
                        (Known::Range(_, a), _) | (_, Known::Range(_, a)) => Known::Range(0, a),
                        _ => Known::Unknown,
                    },
                    alu::RSH if !by_reg => match d {
                        Known::Range(a, b) => Known::Range(a >> (k & 63), b >> (k & 63)),
                        _ => Known::Range(0, u64::MAX >> (k & 63)),
                    },
                    alu::LSH if !by_reg => match d {
                        Known::Range(a, b) if b.leading_zeros() >= (k & 63) as u32 => {
                            Known::Range(a << (k & 63), b << (k & 63))
                        }
                        _ => Known::Unknown,
                    },
                    alu::MUL if !by_reg && k >= 0 => match d {
                        Known::Range(a, b) => {
                            Known::range(a.checked_mul(k as u64), b.checked_mul(k as u64))
                        }
                        _ => Known::Unknown,
                    },
                    _ => Known::Unknown,
                }
            }
            class::ALU => {
                // Every 32-bit result is zero-extended: at most u32::MAX, and exact bounds
                // where the operands fit in 32 bits and nothing wraps.
                let d = self.known_of(insn.dst);
                let by_reg = insn.opc & source::MASK == source::X;
                let k = u64::from(insn.imm as u32);
                let s = if by_reg {
                    self.known_of(insn.src)
                } else {
                    Known::Range(k, k)
                };
                let within = |r: Known| match r {
                    Known::Range(_, hi) if hi <= max32 => r,
                    _ => Known::Range(0, max32),
                };
                let result = match insn.opc & alu::MASK {
                    alu::MOV if insn.off == 0 && s.fits_u32() => s,
                    alu::ADD if d.fits_u32() && s.fits_u32() => d.plus(s),
                    // x & m never exceeds x, nor m (their low halves when wider).
                    alu::AND => match (d, s) {
                        (Known::Range(_, a), Known::Range(_, b)) if a <= max32 => {
                            Known::Range(0, a.min(b))
                        }
                        (_, Known::Range(_, b)) => Known::Range(0, b.min(max32)),
                        _ => Known::Unknown,
                    },
                    alu::RSH if !by_reg => match d {
                        Known::Range(a, b) if b <= max32 => {
                            Known::Range(a >> (k & 31), b >> (k & 31))
                        }
                        _ => Known::Range(0, max32 >> (k & 31)),
                    },
                    alu::LSH if !by_reg => match d {
                        Known::Range(a, b) if b <= max32 && (b << (k & 31)) <= max32 => {
                            Known::Range(a << (k & 31), b << (k & 31))
                        }
                        _ => Known::Unknown,
                    },
                    alu::END => match insn.imm {
                        16 => Known::Range(0, 0xffff),
                        32 => Known::Range(0, max32),
                        // le64 keeps, be64 swaps all 64 bits.
                        _ => return Known::Unknown,
                    },
                    _ => Known::Unknown,
                };
                within(result)
            }
            _ => Known::Unknown,
        }
    }

    /// Writes `reg` and forgets the accesses proven through it, and its known value.
    fn set(&mut self, reg: u8, v: Value) {
        self.forget_known(reg);
        self.proofs.retain(|p| p.reg != reg);
        self.b.def_var(self.regs[reg_index(reg)], v);
    }

    fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(I64, v)
    }

    /// A constant of the JIT's own (a table's address, its row count) for code at `pc`: when
    /// `pc` is in a loop, in the optimised tier, defined once at the end of the entry block
    /// and pinned there (`uadd_overflow(c, 0)`, opaque to the e-graph), so that it lives in a
    /// register instead of being rematerialised on every iteration (a 10-byte `movabs` for
    /// an address). Elsewhere a plain constant. Never for the program's own immediates,
    /// which constant blinding must see.
    fn entry_const(&mut self, pc: usize, v: i64) -> Value {
        if !self.in_loop.get(pc).copied().unwrap_or(false) {
            return self.iconst(v);
        }
        if let Some(&(_, value)) = self.entry_consts.iter().find(|(c, _)| *c == v) {
            return value;
        }
        // Code still in the entry block runs once: it needs no pin.
        let Some(end) = self
            .b
            .func
            .layout
            .last_inst(self.entry)
            .filter(|_| self.b.current_block() != Some(self.entry))
        else {
            return self.iconst(v);
        };
        let mut pos = FuncCursor::new(self.b.func).at_inst(end);
        let c = pos.ins().iconst(I64, v);
        let zero = pos.ins().iconst(I64, 0);
        let (pinned, _) = pos.ins().uadd_overflow(c, zero);
        self.entry_consts.push((v, pinned));
        pinned
    }

    /// A constant that comes from the program: blinded (`(v ^ key) ^ load(key)`) when
    /// constant blinding is on, so the program's immediates never appear in the code.
    fn user_const(&mut self, ty: Type, v: i64) -> Value {
        let Some(key) = self.opts.blinding else {
            return self.b.ins().iconst(ty, v);
        };
        let ctx = self.iconst(self.opts.ctx as i64);
        let k = self.b.ins().load(I64, trusted(), ctx, BLINDING_KEY_OFFSET);
        let k = if ty == I32 {
            self.b.ins().ireduce(I32, k)
        } else {
            k
        };
        let mask = if ty == I32 { 0xffff_ffff } else { -1 };
        let blinded = self.b.ins().iconst(ty, (v ^ key as i64) & mask);
        self.b.ins().bxor(blinded, k)
    }

    fn jump_fault(&mut self, kind: i64, pc: usize, extra: Value) {
        let k = self.iconst(kind);
        let p = self.iconst(pc as i64);
        let args = [
            BlockArg::Value(k),
            BlockArg::Value(p),
            BlockArg::Value(extra),
        ];
        self.b.ins().jump(self.fault, &args);
    }

    /// Branches to the fault block when `cond` holds, then continues in a new block.
    fn fault_if(&mut self, cond: Value, kind: i64, pc: usize, extra: Value) {
        let k = self.iconst(kind);
        let p = self.iconst(pc as i64);
        let cont = self.b.create_block();
        let args = [
            BlockArg::Value(k),
            BlockArg::Value(p),
            BlockArg::Value(extra),
        ];
        self.b.ins().brif(cond, self.fault, &args, cont, &[]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
    }

    /// Refuses a run whose caller buffer does not fit in the address space, as the
    /// interpreter does (`memory::check_buffers`): non-null and (longer than `isize::MAX` or
    /// wrapping past the top).
    fn check_buffer(&mut self, base: Value, len: Value, kind: i64) {
        let too_long = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, len, 0);
        let end = self.b.ins().iadd(base, len);
        let wraps = self.b.ins().icmp(IntCC::UnsignedLessThan, end, base);
        let bad = self.b.ins().bor(too_long, wraps);
        let present = self.b.ins().icmp_imm_s(IntCC::NotEqual, base, 0);
        let bad = self.b.ins().band(bad, present);
        self.fault_if(bad, kind, 0, len);
    }

    /// Returns `v` from the compiled function, leaving the run's `crate::exec::reentry` level first
    /// when it entered one.
    fn return_value(&mut self, v: Value) {
        if self.in_level {
            let leave = self.iconst(runtime::rt_leave_run as *const () as i64);
            let sig = self.signature(RuntimeCall::LeaveRun);
            self.b.ins().call_indirect(sig, leave, &[]);
        }
        self.b.ins().return_(&[v]);
    }

    /// A program that calls helpers can nest runs: its run is a level of `crate::exec::reentry`
    /// (nesting limit, code in use), entered before anything else, as in the interpreter
    /// (docs/sandbox.md, "Re-entrancy"). Refused, it returns `u64::MAX` at once.
    fn enter_level(&mut self) {
        if !self.program.calls_helpers {
            return;
        }
        let ctx = self.iconst(self.opts.ctx as i64);
        let enter = self.iconst(runtime::rt_enter_run as *const () as i64);
        let sig = self.signature(RuntimeCall::EnterRun);
        let call = self.b.ins().call_indirect(sig, enter, &[ctx]);
        let refused = self.b.inst_results(call)[0];
        let entered = self.b.create_block();
        let refuse = self.b.create_block();
        self.b.set_cold_block(refuse);
        self.b.ins().brif(refused, refuse, &[], entered, &[]);
        self.b.switch_to_block(refuse);
        self.b.seal_block(refuse);
        let max = self.iconst(-1);
        self.b.ins().return_(&[max]);
        self.b.switch_to_block(entered);
        self.b.seal_block(entered);
        self.in_level = true;
    }

    fn body(&mut self) -> Result<(), JitError> {
        self.enter_level();
        for (base, len, kind) in std::mem::take(&mut self.buffers) {
            self.check_buffer(base, len, kind);
        }
        let len = self.insns.len();
        self.slots(0, len, false)?;
        // Running past the last slot is a (silent) failure, as in the interpreter.
        if !self.terminated {
            let end = self.block_at(len)?;
            self.b.ins().jump(end, &[]);
        }
        let end = self.block_at(len)?;
        self.b.switch_to_block(end);
        let zero = self.iconst(0);
        self.jump_fault(fault::FELL_OFF_END, len, zero);
        Ok(())
    }

    /// Translates slots `from..to`. `copy`: the unchecked copy of a hoisted loop starting at
    /// `from`, whose first block is already current (and which holds no other idiom).
    fn slots(&mut self, from: usize, to: usize, copy: bool) -> Result<(), JitError> {
        let mut pc = from;
        while pc < to {
            // Only the slot right after a fused pair is the pair's second jump (a rotated
            // loop test fused in its copy elsewhere leaves a value to forget).
            let fused_second = self.fused_away.take() == Some(pc);
            let continued = self.falls_into.take() == Some(pc);
            if self.cfg.leader[pc] && (self.untranslated(pc) || fused_second) {
                // Dead code (behind a switch table, or the second jump of a fused range
                // test): nothing jumps or falls into this block, and Cranelift's passes
                // expect every block to be reachable.
                self.terminated = true;
                pc += 1;
                while pc < to && !self.cfg.leader[pc] {
                    pc += 1;
                }
                continue;
            }
            if self.cfg.leader[pc] && !(copy && pc == from) {
                if continued {
                    // An if-converted hammock's join, entered only from the current block:
                    // no block of its own (fewer blocks for every later pass).
                    self.forget_facts();
                } else {
                    self.enter_block(pc)?;
                }
                let copy_loops = self.copy_loops;
                if let Ok(i) = copy_loops.binary_search_by_key(&pc, |l| l.head) {
                    self.copy_loop_fast_path(&copy_loops[i])?;
                }
                if let Ok(i) = self
                    .compare_loops
                    .binary_search_by_key(&(pc as u64), |l| l.head)
                {
                    let (l, frame) = (self.compare_loops[i], self.compare_frames[i]);
                    self.compare_fast_forward(&l, frame)?;
                }
                if !copy && let Ok(i) = self.hoisted.binary_search_by_key(&pc, |l| l.head) {
                    let l = self.hoisted[i].clone();
                    self.hoisted_loop(&l)?;
                }
            }
            let switches = self.switches;
            if let Ok(i) = switches.binary_search_by_key(&pc, |s| s.root)
                && self.switch_table(pc, &switches[i])?
            {
                // The table decides every value: the root compare is dead.
                self.terminated = true;
                pc += 1;
                continue;
            }
            if let Some(next) = self.if_converted(pc, to)? {
                pc = next;
                continue;
            }
            let insn = self.insns[pc];
            pc = self.insn(pc, insn)?;
        }
        Ok(())
    }

    fn enter_block(&mut self, pc: usize) -> Result<(), JitError> {
        let block = self.block_at(pc)?;
        if !self.terminated {
            self.pin_loop_inputs(pc);
            self.b.ins().jump(block, &[]);
        }
        self.b.switch_to_block(block);
        if !self.cfg.late_pred[pc] {
            // Every predecessor is already translated: sealing now lets variable reads in
            // this block see the incoming values directly instead of through block params.
            self.b.seal_block(block);
        }
        self.terminated = false;
        self.forget_facts();
        let count = self.cfg.block_len[pc];
        if self.opts.instruction_limit > 0 && count > 0 {
            // The interpreter stops before the first instruction that finds the budget used
            // up, after the earlier ones ran with all their effects. When the budget covers
            // the whole block, charging it at once is exact; otherwise the limit hits inside
            // the block, and a cold copy of it charges instruction by instruction
            // (docs/sandbox.md, "Instruction limit").
            let before = self.b.use_var(self.remaining);
            let covered =
                self.b
                    .ins()
                    .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, before, i64::from(count));
            let fast = self.b.create_block();
            let exact = self.b.create_block();
            self.b.set_cold_block(exact);
            self.b.ins().brif(covered, fast, &[], exact, &[]);
            self.b.switch_to_block(exact);
            self.b.seal_block(exact);
            self.exact_block(pc, count)?;
            self.b.switch_to_block(fast);
            self.b.seal_block(fast);
            self.terminated = false;
            self.forget_facts();
            let after = self.b.ins().iadd_imm_s(before, -i64::from(count));
            self.b.def_var(self.remaining, after);
        }
        Ok(())
    }

    /// The exact path of the block at `pc` (`count` instructions) when the budget is smaller
    /// than the block: before each instruction, fail at its slot if the budget is used up,
    /// else charge 1 and run it. The block's last instruction can then never run (the budget
    /// was below `count`), so the copy ends in the limit fault at its slot: terminators are
    /// never translated twice. All blocks of the copy are cold.
    fn exact_block(&mut self, pc: usize, count: u32) -> Result<(), JitError> {
        let first = self.b.func.dfg.num_blocks();
        let zero = self.iconst(0);
        let mut slot = pc;
        for _ in 1..count {
            let left = self.b.use_var(self.remaining);
            let out = self
                .b
                .ins()
                .icmp_imm_s(IntCC::SignedLessThanOrEqual, left, 0);
            self.fault_if(out, fault::INSTRUCTION_LIMIT, slot, zero);
            let left = self.b.ins().iadd_imm_s(left, -1);
            self.b.def_var(self.remaining, left);
            let insn = self.insns[slot];
            slot = self.insn(slot, insn)?;
        }
        self.jump_fault(fault::INSTRUCTION_LIMIT, slot, zero);
        for block in first..self.b.func.dfg.num_blocks() {
            self.b.set_cold_block(Block::from_u32(block as u32));
        }
        Ok(())
    }

    /// Emits the shared tail blocks.
    fn tails(&mut self) {
        // fail: a runtime function recorded the fault; return u64::MAX.
        self.b.switch_to_block(self.fail);
        let max = self.iconst(-1);
        self.return_value(max);

        if let (Some(deny), Some(slot)) = (self.deny, self.run_block) {
            // The runtime applies the same mem/stack test as the inline one, so it only
            // records the fault (with the access's pc, size and base value).
            self.b.switch_to_block(deny);
            let params = self.b.block_params(deny).to_vec();
            self.b
                .ins()
                .stack_store(I64, params[1], slot, run_block::BASE);
            let block = self.b.ins().stack_addr(I64, slot, 0);
            let ctx = self.iconst(self.opts.ctx as i64);
            let f = self.iconst(runtime::check_access_entry() as i64);
            let sig = self.signature(RuntimeCall::Check);
            self.b.ins().call_indirect(sig, f, &[ctx, params[0], block]);
            self.b.ins().jump(self.fail, &[]);
        }

        self.b.switch_to_block(self.fault);
        let params = self.b.block_params(self.fault).to_vec();
        let ctx = self.iconst(self.opts.ctx as i64);
        let f = self.iconst(runtime::rt_fault as *const () as i64);
        let sig = self.signature(RuntimeCall::Fault);
        self.b
            .ins()
            .call_indirect(sig, f, &[ctx, params[0], params[1], params[2]]);
        let max = self.iconst(-1);
        self.return_value(max);

        self.b.switch_to_block(self.exit);
        let r0 = self.b.block_params(self.exit)[0];
        self.return_value(r0);

        self.b.switch_to_block(self.ret_zero);
        let zero = self.iconst(0);
        self.return_value(zero);

        if let (Some(pop), Some(frames)) = (self.pop, self.frames) {
            // Return from a local call: restore r6..r9 and r10, then go to the return site.
            self.b.switch_to_block(pop);
            let depth = self.b.use_var(self.depth);
            let depth = self.b.ins().iadd_imm_s(depth, -1);
            self.b.def_var(self.depth, depth);
            let base = self.b.ins().stack_addr(I64, frames, 0);
            let off = self.b.ins().imul_imm_s(depth, FRAME_BYTES);
            let frame = self.b.ins().iadd(base, off);
            for (i, reg) in [6u8, 7, 8, 9, 10].into_iter().enumerate() {
                let v = self.b.ins().load(I64, trusted(), frame, 8 + 8 * i as i32);
                self.b.def_var(self.regs[usize::from(reg)], v);
            }
            let site = self.b.ins().load(I32, trusted(), frame, 0);
            let targets: Vec<_> = self
                .cfg
                .return_sites
                .iter()
                .filter_map(|&pc| self.blocks[pc])
                .map(|blk| self.b.func.dfg.block_call(blk, &[]))
                .collect();
            // The default needs its own BlockCall: the SSA builder appends arguments to each
            // BlockCall in place, and a shared one would be corrupted.
            let first = self.blocks[self.cfg.return_sites[0]];
            let Some(first) = first else {
                return;
            };
            let default = self.b.func.dfg.block_call(first, &[]);
            let jt = self
                .b
                .create_jump_table(JumpTableData::new(default, &targets));
            self.b.ins().br_table(site, jt);
        }
    }

    /// Translates one instruction, keeping what is known of the register it computes;
    /// returns the next slot.
    fn insn(&mut self, pc: usize, insn: Insn) -> Result<usize, JitError> {
        let computes =
            matches!(insn.class(), class::ALU | class::ALU64 | class::LDX) || insn.opc == op::LDDW;
        let known = computes.then(|| self.known_result(pc, insn));
        let next = self.translate_insn(pc, insn)?;
        if let Some(k) = known {
            self.known[reg_index(insn.dst)] = k;
        }
        Ok(next)
    }

    /// Translates one instruction; returns the next slot.
    fn translate_insn(&mut self, pc: usize, insn: Insn) -> Result<usize, JitError> {
        let unsupported = || JitError::Unsupported {
            pc,
            opcode: insn.opc,
        };
        match insn.class() {
            class::ALU | class::ALU64 => self.alu(pc, insn)?,
            class::LD if insn.is_packet_load() => {
                // ldabs/ldind: r0 = packet bytes at imm (ldind: src + imm), via
                // `exec::packet::load`; outside the packet (kernel flavour) the program ends
                // with 0, an rbpf-flavour fault fails the run.
                self.packet_load(pc, insn)?;
            }
            class::LD => {
                // lddw: dst = imm_lo | imm_hi << 32; one instruction over two slots.
                if insn.opc != op::LDDW {
                    return Err(unsupported());
                }
                let second = self.insns.get(pc + 1).ok_or_else(unsupported)?;
                let v = insn.lddw_value(Some(second));
                let v = self.user_const(I64, v as i64);
                self.set(insn.dst, v);
                return Ok(pc + 2);
            }
            class::LDX => {
                // ldx: dst = *(size*)(src + off), zero-extended; ldxs sign-extends.
                let bytes = size::bytes(insn.opc);
                let signed = insn.load_sign_extends().ok_or_else(unsupported)?;
                let addr = self.access(pc, insn.src, insn.off, bytes, Access::Load);
                let f = flags();
                let v = match (bytes, signed) {
                    (1, false) => self.b.ins().uload8(I64, f, addr, 0),
                    (2, false) => self.b.ins().uload16(I64, f, addr, 0),
                    (4, false) => self.b.ins().uload32(f, addr, 0),
                    (1, true) => self.b.ins().sload8(I64, f, addr, 0),
                    (2, true) => self.b.ins().sload16(I64, f, addr, 0),
                    (4, true) => self.b.ins().sload32(f, addr, 0),
                    _ => self.b.ins().load(I64, f, addr, 0),
                };
                self.set(insn.dst, v);
            }
            class::ST => {
                // st: *(size*)(dst + off) = imm (stdw: sign-extended imm).
                if insn.opc & mode::MASK != mode::MEM {
                    return Err(unsupported());
                }
                let bytes = size::bytes(insn.opc);
                let addr = self.access(pc, insn.dst, insn.off, bytes, Access::Store);
                let v = self.user_const(I64, i64::from(insn.imm));
                self.store(bytes, v, addr);
            }
            class::STX => match insn.opc & mode::MASK {
                mode::MEM => {
                    // stx: *(size*)(dst + off) = src (low bytes).
                    let bytes = size::bytes(insn.opc);
                    let addr = self.access(pc, insn.dst, insn.off, bytes, Access::Store);
                    let v = self.get(insn.src);
                    self.store(bytes, v, addr);
                }
                mode::ATOMIC => self.atomic(pc, insn)?,
                _ => return Err(unsupported()),
            },
            class::JMP | class::JMP32 => return self.jump(pc, insn),
            _ => return Err(unsupported()),
        }
        Ok(pc + 1)
    }

    /// A legacy packet load through [`runtime::rt_packet_load`], which runs the engine-neutral
    /// `exec::packet::load` and leaves its verdict in the run block: loaded (r0 = the call's
    /// result), fault recorded (the shared failure exit) or out of the packet (return 0).
    fn packet_load(&mut self, pc: usize, insn: Insn) -> Result<(), JitError> {
        let Some(slot) = self.run_block else {
            return Err(JitError::Internal(format!(
                "no run block for the packet load at PC {pc}"
            )));
        };
        let ctx = self.iconst(self.opts.ctx as i64);
        let packed = runtime::pack_packet_load(pc, insn.opc, self.opts.packet_loads);
        let packed = self.iconst(packed);
        let imm = self.user_const(I64, i64::from(insn.imm));
        let src = if insn.opc & mode::MASK == mode::IND {
            self.get(insn.src)
        } else {
            self.iconst(0)
        };
        let block = self.b.ins().stack_addr(I64, slot, 0);
        let f = self.iconst(runtime::rt_packet_load as *const () as i64);
        let sig = self.signature(RuntimeCall::Packet);
        let call = self
            .b
            .ins()
            .call_indirect(sig, f, &[ctx, packed, imm, src, block]);
        let value = self.b.inst_results(call)[0];
        let verdict = self.b.ins().stack_load(I64, I64, slot, run_block::VERDICT);
        let ok = self.b.create_block();
        let stop = self.b.create_block();
        self.b.set_cold_block(stop);
        self.b.ins().brif(verdict, stop, &[], ok, &[]);
        self.b.switch_to_block(stop);
        self.b.seal_block(stop);
        let fault = self
            .b
            .ins()
            .icmp_imm_s(IntCC::Equal, verdict, runtime::PACKET_FAULT as i64);
        self.b.ins().brif(fault, self.fail, &[], self.ret_zero, &[]);
        self.b.switch_to_block(ok);
        self.b.seal_block(ok);
        self.set(0, value);
        Ok(())
    }

    fn store(&mut self, bytes: usize, v: Value, addr: Value) {
        let f = flags();
        match bytes {
            1 => self.b.ins().istore8(f, v, addr, 0),
            2 => self.b.ins().istore16(f, v, addr, 0),
            4 => self.b.ins().istore32(f, v, addr, 0),
            _ => self.b.ins().store(f, v, addr, 0),
        };
    }

    /// Computes `reg + off` and, with bounds checking on, proves `[addr, addr+bytes)` lies in
    /// a permitted region: inline against mem and the stack, then through the runtime's
    /// complete model (wrap-around, data sections, bounds callback).
    fn access(&mut self, pc: usize, reg: u8, off: i16, bytes: usize, access: Access) -> Value {
        let base = self.get(reg);
        let addr = self.b.ins().iadd_imm_s(base, i64::from(off));
        if !self.opts.bounds_check {
            return addr;
        }
        let (lo, hi) = (i64::from(off), i64::from(off) + bytes as i64);
        // Without local calls, r10 is the top of the 4096-byte native stack for the whole run:
        // an access through r10, or through a pointer known to be r10 plus a bounded offset,
        // that stays inside it needs no test.
        if let Known::Stack(a, b) = self.known_of(reg)
            && a + lo >= -(STACK_SIZE as i64)
            && b + hi <= 0
        {
            return addr;
        }
        if self.unchecked[pc] {
            // Inside a hoisted loop's copy, whose test proved this access.
            return addr;
        }
        let store = access == Access::Store;
        if self
            .proofs
            .iter()
            .any(|p| p.reg == reg && p.lo <= lo && hi <= p.hi && (p.writable || !store))
        {
            return addr;
        }
        // The likelier region first; no stack region at all when the program cannot reach it.
        let stack = self.has_stack.then_some(self.stack_region);
        let (first, second) = if reg == 10 && stack.is_some() {
            (self.stack_region, Some(self.mem_region))
        } else {
            (self.mem_region, stack)
        };
        let i = size_index(bytes);
        let ok = self.b.create_block();
        let slow = self.b.create_block();
        self.b.set_cold_block(slow);

        let d = offset_in(&mut self.b, base, addr, first);
        // The last region's test, which fails to `slow`.
        let (d, lim) = match second {
            Some(second) => {
                let inside = self.b.ins().icmp(IntCC::UnsignedLessThan, d, first.lim[i]);
                let try_second = self.b.create_block();
                self.b.ins().brif(inside, ok, &[], try_second, &[]);
                self.b.switch_to_block(try_second);
                self.b.seal_block(try_second);
                (offset_in(&mut self.b, base, addr, second), second.lim[i])
            }
            None => (d, first.lim[i]),
        };
        let outside = self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, d, lim);
        self.cold_first(outside, slow, ok);

        self.b.switch_to_block(slow);
        self.b.seal_block(slow);
        self.map_value_checks(addr, bytes, ok);
        // The access's description is built in the cold block, never on the hot path.
        let packed = self.iconst(runtime::pack_access(pc, bytes, access, off));
        if !self.opts.other_regions && self.run_block.is_some() {
            // Denied for sure: one shared block records the fault. The per-access cold code
            // is then two moves and a jump instead of a call sequence, which makes the image
            // smaller and leaves Cranelift fewer calls to lower and allocate around.
            let deny = self.deny_block();
            self.b
                .ins()
                .jump(deny, &[BlockArg::Value(packed), BlockArg::Value(base)]);
            self.b.switch_to_block(ok);
            self.b.seal_block(ok);
            self.proofs.push(Proof {
                reg,
                lo,
                hi,
                // Only mem or the stack passed this test, and both are writable.
                writable: true,
            });
            return addr;
        }
        let ctx = self.iconst(self.opts.ctx as i64);
        let f = self.iconst(runtime::check_access_entry() as i64);
        match self.run_block {
            Some(slot) => {
                // `base` goes through the block, not an argument register: an argument would
                // pin the eBPF register's value to that register, and the allocator would pay
                // with moves inside hot loops.
                self.b.ins().stack_store(I64, base, slot, run_block::BASE);
                let block = self.b.ins().stack_addr(I64, slot, 0);
                let sig = self.signature(RuntimeCall::Check);
                self.b.ins().call_indirect(sig, f, &[ctx, packed, block]);
                // Other regions exist here (else the test went to the deny block): the
                // runtime's verdict decides.
                let verdict = self.b.ins().stack_load(I64, I64, slot, run_block::VERDICT);
                self.b.ins().brif(verdict, self.fail, &[], ok, &[]);
            }
            None => {
                self.b.ins().jump(self.fail, &[]);
            }
        }

        self.b.switch_to_block(ok);
        self.b.seal_block(ok);
        self.proofs.push(Proof {
            reg,
            lo,
            hi,
            // A load the runtime allowed may lie in a read-only region; mem and the stack,
            // the only regions when there are no others, are writable.
            writable: store || !self.opts.other_regions,
        });
        addr
    }

    /// Branches to `cold` when `cond` holds, else to `hot`, with `cold` as the branch's first
    /// target. Cranelift's e-graph elaborates a block's dominator-tree children in the order
    /// of their CFG post-order (the first target's subtree last), and it forgets the loop it
    /// is in at the first child outside it, hoisting nothing more out of that loop. Naming
    /// the cold block first keeps everything after a bounds test inside the loop's hoisting.
    fn cold_first(&mut self, cond: Value, cold: Block, hot: Block) {
        self.b.ins().brif(cond, cold, &[], hot, &[]);
    }

    /// The shared block that denied bounds checks jump to (see [`Translator::deny`]).
    fn deny_block(&mut self) -> Block {
        if let Some(deny) = self.deny {
            return deny;
        }
        let deny = self.b.create_block();
        self.b.set_cold_block(deny);
        self.b.append_block_param(deny, I64);
        self.b.append_block_param(deny, I64);
        self.deny = Some(deny);
        deny
    }

    /// Inline tests of an access of `bytes` bytes at `addr` against each map's value slab
    /// (`crate::exec::maps::SlabRegion`): inside one value, go to `ok`; otherwise fall through to
    /// the slow path. Map values are then as cheap to reach as any region, with no runtime
    /// call per access.
    fn map_value_checks(&mut self, addr: Value, bytes: usize, ok: Block) {
        // SAFETY: `map_slabs` points to the slabs of the VM being compiled, alive during the
        // translation (see `Options::map_slabs`).
        let slabs = unsafe { &*self.opts.map_slabs };
        for slab in slabs.iter().filter(|s| bytes as u64 <= s.value_size) {
            let off = self
                .b
                .ins()
                .iadd_imm_s(addr, (slab.base as i64).wrapping_neg());
            let inside = self
                .b
                .ins()
                .icmp_imm_s(IntCC::UnsignedLessThan, off, slab.len as i64);
            let in_slot = self.b.ins().band_imm_s(off, (slab.stride - 1) as i64);
            let fits = self.b.ins().icmp_imm_s(
                IntCC::UnsignedLessThanOrEqual,
                in_slot,
                (slab.value_size - bytes as u64) as i64,
            );
            let both = self.b.ins().band(inside, fits);
            let next = self.b.create_block();
            self.b.set_cold_block(next);
            self.b.ins().brif(both, ok, &[], next, &[]);
            self.b.switch_to_block(next);
            self.b.seal_block(next);
        }
    }

    fn alu(&mut self, pc: usize, insn: Insn) -> Result<(), JitError> {
        let is64 = insn.class() == class::ALU64;
        let operation = insn.opc & alu::MASK;
        let by_reg = insn.opc & source::MASK == source::X;
        let unsupported = JitError::Unsupported {
            pc,
            opcode: insn.opc,
        };
        if operation == alu::END {
            // le: truncate to the width (LE host); be/bswap: byte-swap the low width, zero the rest.
            let v = self.get(insn.dst);
            let swap = insn.opc != 0xd4;
            let r = match insn.imm {
                16 => {
                    let n = self.b.ins().ireduce(I16, v);
                    let n = if swap { self.b.ins().bswap(n) } else { n };
                    self.b.ins().uextend(I64, n)
                }
                32 => {
                    let n = self.b.ins().ireduce(I32, v);
                    let n = if swap { self.b.ins().bswap(n) } else { n };
                    self.b.ins().uextend(I64, n)
                }
                64 if swap => self.b.ins().bswap(v),
                64 => v,
                _ => return Err(unsupported),
            };
            self.set(insn.dst, r);
            return Ok(());
        }
        let ty = if is64 { I64 } else { I32 };
        // The operand: src register, or imm (sign-extended for ALU64, low 32 bits for ALU).
        let (bv, bconst) = if by_reg {
            let s = self.get(insn.src);
            let s = if is64 {
                s
            } else {
                self.b.ins().ireduce(I32, s)
            };
            (s, None)
        } else {
            let c = if is64 {
                i64::from(insn.imm)
            } else {
                i64::from(insn.imm as u32)
            };
            (self.user_const(ty, c), Some(i64::from(insn.imm)))
        };
        if operation == alu::MOV {
            // mov; with offset 8/16/32 movsx sign-extends the low bits of src. It never reads
            // its destination: a read would make the register live into the block, and in a
            // loop head that is a block parameter, i.e. a register move on every back edge.
            let r = match insn.off {
                0 => bv,
                8 | 16 | 32 if is64 || insn.off != 32 => {
                    let narrow = match insn.off {
                        8 => I8,
                        16 => I16,
                        _ => I32,
                    };
                    let src = self.get(insn.src);
                    let n = self.b.ins().ireduce(narrow, src);
                    self.b.ins().sextend(ty, n)
                }
                _ => return Err(unsupported),
            };
            let r = if is64 {
                r
            } else {
                self.b.ins().uextend(I64, r)
            };
            self.set(insn.dst, r);
            return Ok(());
        }
        let dst64 = self.get(insn.dst);
        let a = if is64 {
            dst64
        } else {
            self.b.ins().ireduce(I32, dst64)
        };
        let signed = insn.off == 1;
        let r = match operation {
            alu::ADD => self.b.ins().iadd(a, bv),
            alu::SUB => self.b.ins().isub(a, bv),
            alu::MUL => self.b.ins().imul(a, bv),
            alu::OR => self.b.ins().bor(a, bv),
            alu::AND => self.b.ins().band(a, bv),
            alu::XOR => self.b.ins().bxor(a, bv),
            // Shifts mask the count by the width (Cranelift's shift semantics are the same).
            alu::LSH => self.b.ins().ishl(a, bv),
            alu::RSH => self.b.ins().ushr(a, bv),
            alu::ARSH => self.b.ins().sshr(a, bv),
            alu::NEG => self.b.ins().ineg(a),
            alu::DIV | alu::MOD => self.divide(ty, a, bv, bconst, operation == alu::DIV, signed),
            _ => return Err(unsupported),
        };
        // 32-bit results are zero-extended.
        let r = if is64 {
            r
        } else {
            self.b.ins().uextend(I64, r)
        };
        self.set(insn.dst, r);
        Ok(())
    }

    /// div/mod with the interpreter's results: x/0 = 0, x%0 = x, INT_MIN/-1 = INT_MIN,
    /// INT_MIN%-1 = 0 (signed); Cranelift's own division would trap in those cases.
    fn divide(
        &mut self,
        ty: Type,
        a: Value,
        b: Value,
        bconst: Option<i64>,
        div: bool,
        signed: bool,
    ) -> Value {
        let ins_zero = |t: &mut Self| t.b.ins().iconst(ty, 0);
        if let Some(c) = bconst {
            // The divisor is the imm as the instruction width sees it.
            let c = if ty == I32 { i64::from(c as i32) } else { c };
            if c == 0 {
                return if div { ins_zero(self) } else { a };
            }
            if signed && c == -1 {
                return if div {
                    self.b.ins().ineg(a)
                } else {
                    ins_zero(self)
                };
            }
            return match (div, signed) {
                (true, false) => self.b.ins().udiv(a, b),
                (false, false) => self.b.ins().urem(a, b),
                (true, true) => self.b.ins().sdiv(a, b),
                (false, true) => self.b.ins().srem(a, b),
            };
        }
        let one = self.b.ins().iconst(ty, 1);
        let is_zero = self.b.ins().icmp_imm_s(IntCC::Equal, b, 0);
        let mut unsafe_divisor = is_zero;
        if signed {
            let min = if ty == I32 {
                i64::from(i32::MIN)
            } else {
                i64::MIN
            };
            let a_min = self.b.ins().icmp_imm_s(IntCC::Equal, a, min);
            let b_neg1 = self.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
            let overflow = self.b.ins().band(a_min, b_neg1);
            unsafe_divisor = self.b.ins().bor(is_zero, overflow);
        }
        // With the divisor replaced by 1, INT_MIN/-1 gives INT_MIN and INT_MIN%-1 gives 0.
        let safe = self.b.ins().select(unsafe_divisor, one, b);
        let q = match (div, signed) {
            (true, false) => self.b.ins().udiv(a, safe),
            (false, false) => self.b.ins().urem(a, safe),
            (true, true) => self.b.ins().sdiv(a, safe),
            (false, true) => self.b.ins().srem(a, safe),
        };
        let on_zero = if div { ins_zero(self) } else { a };
        self.b.ins().select(is_zero, on_zero, q)
    }

    fn atomic(&mut self, pc: usize, insn: Insn) -> Result<(), JitError> {
        let (bytes, what) = insn.atomic().ok_or(JitError::Unsupported {
            pc,
            opcode: insn.opc,
        })?;
        let ty = if bytes == 8 { I64 } else { I32 };
        // Atomics are checked as stores of 4 or 8 bytes at dst + off.
        let addr = self.access(pc, insn.dst, insn.off, bytes, Access::Store);
        let narrow = |t: &mut Self, v: Value| {
            if ty == I32 {
                t.b.ins().ireduce(I32, v)
            } else {
                v
            }
        };
        let widen = |t: &mut Self, v: Value| {
            if ty == I32 {
                t.b.ins().uextend(I64, v)
            } else {
                v
            }
        };
        let src = self.get(insn.src);
        let src = narrow(self, src);
        let f = flags();
        match what {
            Atomic::Cmpxchg => {
                // Compare memory with r0; store src if equal; r0 = old value (zero-extended).
                let r0 = self.get(0);
                let expected = narrow(self, r0);
                let old = self.b.ins().atomic_cas(f, addr, expected, src);
                let old = widen(self, old);
                self.set(0, old);
            }
            Atomic::Xchg => {
                // Store src; src = old value.
                let old = self.b.ins().atomic_rmw(ty, f, AtomicRmwOp::Xchg, addr, src);
                let old = widen(self, old);
                self.set(insn.src, old);
            }
            Atomic::Rmw { op, fetch } => {
                // add/or/and/xor; with FETCH, src = old value (zero-extended).
                let rmw = match op {
                    atomic::ADD => AtomicRmwOp::Add,
                    atomic::OR => AtomicRmwOp::Or,
                    atomic::AND => AtomicRmwOp::And,
                    _ => AtomicRmwOp::Xor,
                };
                let old = self.b.ins().atomic_rmw(ty, f, rmw, addr, src);
                if fetch {
                    let old = widen(self, old);
                    self.set(insn.src, old);
                }
            }
        }
        Ok(())
    }

    /// Translates the jump-class instruction at `pc`; returns the next slot to translate.
    fn jump(&mut self, pc: usize, insn: Insn) -> Result<usize, JitError> {
        let unsupported = JitError::Unsupported {
            pc,
            opcode: insn.opc,
        };
        let is32 = insn.class() == class::JMP32;
        let operation = insn.opc & alu::MASK;
        if !is32 && operation == jmp::CALL {
            self.call(pc, insn)?;
            return Ok(pc + 1);
        }
        if !is32 && operation == jmp::EXIT {
            // exit: end the program with r0, or return from a local call.
            let r0 = self.get(0);
            match self.pop {
                Some(pop) => {
                    let depth = self.b.use_var(self.depth);
                    let args = [BlockArg::Value(r0)];
                    self.b.ins().brif(depth, pop, &[], self.exit, &args);
                }
                None => {
                    self.return_value(r0);
                }
            }
            self.terminated = true;
            return Ok(pc + 1);
        }
        if cfg::is_no_op_jump(pc, &insn) {
            // Lands on the next slot whether taken or not (the CFG did not split the block).
            return Ok(pc + 1);
        }
        let target = cfg::jump_target(pc, &insn)
            .and_then(|t| usize::try_from(t).ok())
            .ok_or(unsupported.clone())?;
        // In a hoisted loop's copy, a back edge first tests the induction register.
        let back_edge_in_copy = self.iterate.is_some_and(|t| t.head == target);
        let target = self.block_at(target)?;
        if operation == jmp::JA {
            if self.rotated_back_edge(pc)? {
                return Ok(pc + 1);
            }
            // ja / ja32: unconditional.
            if back_edge_in_copy {
                self.iterate_jump();
            } else {
                self.b.ins().jump(target, &[]);
            }
            self.terminated = true;
            return Ok(pc + 1);
        }
        let next = self.fall_through_block(pc)?;
        if let Some(c) = self.counted_exit_condition(pc) {
            self.b.ins().brif(c, target, &[], next, &[]);
            self.terminated = true;
            return Ok(pc + 1);
        }
        if !back_edge_in_copy && self.fused_range_test(pc)? {
            return Ok(pc + 1);
        }
        let c = self.condition(pc, insn)?;
        if back_edge_in_copy {
            self.iterate_if(c, next);
        } else {
            self.b.ins().brif(c, target, &[], next, &[]);
        }
        self.terminated = true;
        Ok(pc + 1)
    }

    /// The block the conditional jump at `pc` continues in when not taken: the next slot's,
    /// or, when the next slot is a `ja` that only falling through reaches, the `ja`'s target,
    /// whose block the branch then enters itself (the `ja`'s own block is skipped like the
    /// second jump of a fused range test). Clang's `if i == n goto out; goto head` so becomes
    /// one branch back per iteration: left as two blocks, the e-graph sinks the loop's
    /// increments into the `ja`'s block, which then costs a taken `jmp` per iteration.
    /// Not for a `ja` that must stay as written: a hoisted copy's back edge (its iteration
    /// test), a rotated back edge, or any with instructions counted.
    fn fall_through_block(&mut self, pc: usize) -> Result<Block, JitError> {
        let next = pc + 1;
        let skip_to = self
            .insns
            .get(next)
            .filter(|insn| insn.opc == op::JA && self.entered.get(next) == Some(&false))
            .and_then(|insn| cfg::jump_target(next, insn))
            .and_then(|t| usize::try_from(t).ok())
            .filter(|&t| {
                t != next
                    && self.iterate.is_none_or(|it| it.head != t)
                    && !(self.rotate_back_edges && self.cfg.rotation_at(next).is_some())
            });
        match skip_to.map(|t| self.block_at(t)) {
            Some(Ok(target)) => {
                self.fused_away = Some(next);
                Ok(target)
            }
            _ => self.block_at(next),
        }
    }

    /// Translates the conditional jumps at `pc` and `pc + 1` as one interval test when they
    /// are one ([`range_test`]); `false` (nothing emitted) when not. The second jump's block
    /// is left without predecessors and is not translated.
    fn fused_range_test(&mut self, pc: usize) -> Result<bool, JitError> {
        let Some(test) = range_test::fused_range_test(self.insns, &self.entered, pc) else {
            return Ok(false);
        };
        // A hoisted loop's copy tests its induction register on every back edge; a second
        // jump translated as selects leaves its path without blocks to jump to, and one that
        // roots a switch table leaves code behind the table untranslated.
        if self
            .iterate
            .is_some_and(|t| t.head == test.inside || t.head == test.outside)
            || self
                .selects
                .binary_search_by_key(&(pc + 1), |h| h.branch)
                .is_ok()
            || self
                .switches
                .binary_search_by_key(&(pc + 1), |s| s.root)
                .is_ok()
            || self.untranslated(test.inside)
            || self.untranslated(test.outside)
        {
            return Ok(false);
        }
        let block = |pc: usize| self.blocks.get(pc).copied().flatten();
        let (Some(inside), Some(outside)) = (block(test.inside), block(test.outside)) else {
            return Ok(false);
        };
        let ty = if test.wide { I64 } else { I32 };
        let x = self.get(test.reg);
        let x = if test.wide {
            x
        } else {
            self.b.ins().ireduce(I32, x)
        };
        let lo = self.user_const(ty, test.lo as i64);
        let span = self.user_const(ty, test.span as i64);
        let offset = self.b.ins().isub(x, lo);
        let within = self
            .b
            .ins()
            .icmp(IntCC::UnsignedLessThanOrEqual, offset, span);
        self.b.ins().brif(within, inside, &[], outside, &[]);
        self.terminated = true;
        self.fused_away = Some(pc + 1);
        Ok(true)
    }

    /// The condition of the conditional jump `insn` at `pc`: non-zero when it is taken.
    fn condition(&mut self, pc: usize, insn: Insn) -> Result<Value, JitError> {
        let is32 = insn.class() == class::JMP32;
        let operation = insn.opc & alu::MASK;
        // JMP compares 64 bits against the sign-extended imm or src; JMP32 the low 32 bits.
        let ty = if is32 { I32 } else { I64 };
        let d = self.get(insn.dst);
        let d = if is32 {
            self.b.ins().ireduce(I32, d)
        } else {
            d
        };
        let s = if insn.opc & source::MASK == source::X {
            let s = self.get(insn.src);
            if is32 {
                self.b.ins().ireduce(I32, s)
            } else {
                s
            }
        } else {
            self.user_const(
                ty,
                i64::from(insn.imm) & if is32 { 0xffff_ffff } else { -1 },
            )
        };
        let cc = match operation {
            jmp::JEQ => IntCC::Equal,
            jmp::JNE => IntCC::NotEqual,
            jmp::JGT => IntCC::UnsignedGreaterThan,
            jmp::JGE => IntCC::UnsignedGreaterThanOrEqual,
            jmp::JLT => IntCC::UnsignedLessThan,
            jmp::JLE => IntCC::UnsignedLessThanOrEqual,
            jmp::JSGT => IntCC::SignedGreaterThan,
            jmp::JSGE => IntCC::SignedGreaterThanOrEqual,
            jmp::JSLT => IntCC::SignedLessThan,
            jmp::JSLE => IntCC::SignedLessThanOrEqual,
            // jset: dst & operand != 0.
            jmp::JSET => IntCC::NotEqual,
            _ => {
                return Err(JitError::Unsupported {
                    pc,
                    opcode: insn.opc,
                });
            }
        };
        Ok(if operation == jmp::JSET {
            self.b.ins().band(d, s)
        } else {
            self.b.ins().icmp(cc, d, s)
        })
    }

    fn call(&mut self, pc: usize, insn: Insn) -> Result<(), JitError> {
        match (insn.opc, insn.src) {
            (op::CALL, call_kind::HELPER) => {
                let idx = self.iconst(i64::from(insn.imm as u32));
                self.helper_call(pc, idx, Some(insn.imm as u32))
            }
            (op::CALL, call_kind::LOCAL) => self.local_call(pc, insn),
            (op::CALLX, _) => {
                // callx: helper call with the index taken from the register in dst.
                let idx = self.get(insn.dst);
                self.helper_call(pc, idx, None)
            }
            _ => Err(JitError::Unsupported {
                pc,
                opcode: insn.opc,
            }),
        }
    }

    /// Helper call: `r0 = dispatcher(r1..r5, idx, mem)` when a dispatcher is registered at run
    /// time, else `r0 = helpers[idx](r1..r5, mem)`; an empty slot is a runtime fault. After
    /// the unwind helper, r0 == 0 ends the program with 0.
    fn helper_call(&mut self, pc: usize, idx: Value, known: Option<u32>) -> Result<(), JitError> {
        if self.opts.publish_run {
            let ctx = self.iconst(self.opts.ctx as i64);
            let block = match self.run_block {
                Some(slot) => self.b.ins().stack_addr(I64, slot, 0),
                None => self.iconst(0),
            };
            let f = self.iconst(super::runtime::rt_publish_run as *const () as i64);
            let sig = self.signature(RuntimeCall::Publish);
            self.b.ins().call_indirect(sig, f, &[ctx, block]);
        }
        if let Some(index) = known
            && self.opts.compact_helper_calls
        {
            let sig = self.signature(RuntimeCall::CallHelper);
            return self.compact_helper_call(pc, idx, index, sig);
        }
        let args: Vec<Value> = (1..=5).map(|r| self.get(r)).collect();
        let (table, dispatcher) = self.load_helper_table();
        let via_dispatcher = self.b.create_block();
        let via_table = self.b.create_block();
        let done = self.b.create_block();
        let r0 = self.b.append_block_param(done, I64);
        self.b
            .ins()
            .brif(dispatcher, via_dispatcher, &[], via_table, &[]);

        self.b.switch_to_block(via_dispatcher);
        self.b.seal_block(via_dispatcher);
        if known.is_none() {
            let too_big =
                self.b
                    .ins()
                    .icmp_imm_s(IntCC::UnsignedGreaterThan, idx, i64::from(u32::MAX));
            self.fault_if(too_big, fault::NONEXISTENT_HELPER, pc, idx);
        }
        let idx32 = self.b.ins().ireduce(I32, idx);
        let mut call_args = args.clone();
        call_args.extend([idx32, self.mem]);
        let sig = self.signature(RuntimeCall::Dispatcher);
        let call = self.b.ins().call_indirect(sig, dispatcher, &call_args);
        let ret = self.b.inst_results(call)[0];
        self.b.ins().jump(done, &[BlockArg::Value(ret)]);

        self.b.switch_to_block(via_table);
        self.b.seal_block(via_table);
        let slots = std::mem::offset_of!(HelperTable, slots) as i64;
        let func = match known {
            Some(i) if (i as usize) >= HELPER_SLOTS => None,
            Some(i) => Some(self.b.ins().load(
                I64,
                trusted(),
                table,
                (slots + 8 * i64::from(i)) as i32,
            )),
            None => {
                let out = self.b.ins().icmp_imm_s(
                    IntCC::UnsignedGreaterThanOrEqual,
                    idx,
                    HELPER_SLOTS as i64,
                );
                self.fault_if(out, fault::NONEXISTENT_HELPER, pc, idx);
                let off = self.b.ins().ishl_imm_s(idx, 3);
                let addr = self.b.ins().iadd(table, off);
                Some(self.b.ins().load(I64, trusted(), addr, slots as i32))
            }
        };
        match func {
            None => self.jump_fault(fault::NONEXISTENT_HELPER, pc, idx),
            Some(func) => {
                let missing = self.b.ins().icmp_imm_s(IntCC::Equal, func, 0);
                self.fault_if(missing, fault::NONEXISTENT_HELPER, pc, idx);
                let mut call_args = args;
                call_args.push(self.mem);
                let sig = self.signature(RuntimeCall::Helper);
                let call = self.b.ins().call_indirect(sig, func, &call_args);
                let ret = self.b.inst_results(call)[0];
                self.b.ins().jump(done, &[BlockArg::Value(ret)]);
            }
        }

        self.b.switch_to_block(done);
        self.b.seal_block(done);
        self.after_helper_call(idx, known, r0);
        Ok(())
    }

    /// Emits the loads of the helper table and its dispatcher (0 when none). The table is
    /// read through the context at every call: the VM's own table (helpers registered after
    /// compiling are called), or a detached copy's snapshot.
    fn load_helper_table(&mut self) -> (Value, Value) {
        let ctx = self.iconst(self.opts.ctx as i64);
        let table = self.b.ins().load(I64, trusted(), ctx, HELPERS_OFFSET);
        let dispatcher = self.b.ins().load(
            I64,
            trusted(),
            table,
            std::mem::offset_of!(HelperTable, dispatcher) as i32,
        );
        (table, dispatcher)
    }

    /// [`Self::helper_call`] of constant helper `index` with one call to
    /// [`runtime::rt_call_helper`], which calls the dispatcher when one is registered at run
    /// time and the helper's slot otherwise; the code first faults when neither exists.
    fn compact_helper_call(
        &mut self,
        pc: usize,
        idx: Value,
        index: u32,
        sig: SigRef,
    ) -> Result<(), JitError> {
        let (table, dispatcher) = self.load_helper_table();
        let servable = if (index as usize) < HELPER_SLOTS {
            let slots = std::mem::offset_of!(HelperTable, slots) as i64;
            let slot = (slots + 8 * i64::from(index)) as i32;
            let func = self.b.ins().load(I64, trusted(), table, slot);
            self.b.ins().bor(dispatcher, func)
        } else {
            dispatcher
        };
        let missing = self.b.ins().icmp_imm_s(IntCC::Equal, servable, 0);
        self.fault_if(missing, fault::NONEXISTENT_HELPER, pc, idx);
        // Constants are made again after the check: a value crossing a block boundary costs
        // a spill and a reload in the fast tier.
        let mut args: Vec<Value> = (1..=5).map(|r| self.get(r)).collect();
        let idx = self.iconst(i64::from(index));
        let ctx = self.iconst(self.opts.ctx as i64);
        let table = self.b.ins().load(I64, trusted(), ctx, HELPERS_OFFSET);
        let f = self.iconst(runtime::rt_call_helper as *const () as i64);
        args.extend([idx, self.mem, table]);
        let call = self.b.ins().call_indirect(sig, f, &args);
        let r0 = self.b.inst_results(call)[0];
        self.after_helper_call(idx, Some(index), r0);
        Ok(())
    }

    /// After a helper call returned `r0`: sets r0 and, after the unwind helper, ends the
    /// program with 0 when r0 is 0.
    fn after_helper_call(&mut self, idx: Value, known: Option<u32>, r0: Value) {
        self.set(0, r0);
        // Helpers may write anywhere, but never move mem or the stack: proofs through those
        // stay valid. A proof that a data section or the bounds callback granted does not
        // survive the call (a helper may end the life of whatever the callback accepted).
        if self.opts.other_regions {
            self.forget_facts();
        }
        if let Some(unwind) = self.opts.unwind_index {
            let unwinds = match known {
                Some(i) if i == unwind => Some(self.b.ins().icmp_imm_s(IntCC::Equal, r0, 0)),
                Some(_) => None,
                None => {
                    let same = self
                        .b
                        .ins()
                        .icmp_imm_s(IntCC::Equal, idx, i64::from(unwind));
                    let zero = self.b.ins().icmp_imm_s(IntCC::Equal, r0, 0);
                    Some(self.b.ins().band(same, zero))
                }
            };
            if let Some(c) = unwinds {
                let cont = self.b.create_block();
                self.b.ins().brif(c, self.ret_zero, &[], cont, &[]);
                self.b.switch_to_block(cont);
                self.b.seal_block(cont);
            }
        }
    }

    /// Local call: at most `MAX_CALL_DEPTH` frames; save r6..r9 and r10, lower r10 by the
    /// calling function's stack usage, jump to pc + 1 + imm.
    fn local_call(&mut self, pc: usize, insn: Insn) -> Result<(), JitError> {
        let frames = self
            .frames
            .ok_or_else(|| JitError::Internal(format!("unexpected local call at PC {pc}")))?;
        let target = usize::try_from(pc as i64 + 1 + i64::from(insn.imm))
            .map_err(|_| JitError::Internal(format!("call out of bounds at PC {pc}")))?;
        let target = self.block_at(target)?;
        // Return sites are in program order: a binary search keeps many calls linear-time.
        let site = self
            .cfg
            .return_sites
            .binary_search(&(pc + 1))
            .ok()
            .ok_or_else(|| JitError::Internal(format!("no return site for PC {pc}")))?;
        let usage = self
            .program
            .function_containing(pc)
            .map_or(0, |f| i64::from(f.stack_usage));
        let depth = self.b.use_var(self.depth);
        let next_depth = self.b.ins().iadd_imm_s(depth, 1);
        let too_deep = self.b.ins().icmp_imm_s(
            IntCC::UnsignedGreaterThanOrEqual,
            depth,
            MAX_CALL_DEPTH as i64,
        );
        self.fault_if(too_deep, fault::CALL_DEPTH, pc, next_depth);
        let base = self.b.ins().stack_addr(I64, frames, 0);
        let off = self.b.ins().imul_imm_s(depth, FRAME_BYTES);
        let frame = self.b.ins().iadd(base, off);
        let site = self.b.ins().iconst(I32, site as i64);
        self.b.ins().store(trusted(), site, frame, 0);
        for (i, reg) in [6u8, 7, 8, 9, 10].into_iter().enumerate() {
            let v = self.get(reg);
            self.b.ins().store(trusted(), v, frame, 8 + 8 * i as i32);
        }
        self.b.def_var(self.depth, next_depth);
        let r10 = self.get(10);
        let r10 = self.b.ins().iadd_imm_s(r10, -usage);
        self.set(10, r10);
        self.b.ins().jump(target, &[]);
        self.terminated = true;
        Ok(())
    }
}
