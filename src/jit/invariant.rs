//! Loop-invariant inputs: registers a loop reads but never writes, found per loop header so
//! that the translator can pin their values before the loop (`docs/performance.md`, "Pinned
//! loop inputs").
//!
//! Why: Cranelift's e-graph rematerialises every `add`, `sub`, `and`, `or` or `xor` with a
//! constant operand in each block that uses it, to save a register. When such a value is
//! computed before a loop and used inside it, the rematerialised copy lands in the loop, and
//! every value computed from it follows, so the loop recomputes an invariant chain on every
//! iteration (`n & 15`, `<< 3`, `8 - x` in a matrix walk: eight extra instructions per
//! iteration). Passing the value through an operation the e-graph treats as opaque, once on
//! the way into the loop, leaves the computation where the program put it. Once the function
//! is whole, [`drop_idle_pins`] removes the pins whose input the e-graph could not have moved.
//!
//! The other side of a loop's registers lives here too: [`accumulators_first`] orders the
//! operands of the operation that updates a loop-carried value (`docs/performance.md`,
//! "Accumulators first").

use alloc::vec;
use alloc::vec::Vec;

use cranelift_codegen::ir::{Function, Inst, InstructionData, Opcode, Value, ValueDef};

use crate::isa::{Insn, atomic, call_kind, class, jmp, mode, op, source};

use super::cfg;

/// For each slot: the registers (bit `r` for r0..r9) that the loop whose header is that slot
/// reads and never writes, or 0 when no backward jump targets the slot. A loop is the slots
/// from its header to its last backward jump there. Calls and stores count as what they are;
/// a call writes r0..r5. Skipped: loops with a local call (its callee may run anything),
/// loops that jump back to before their header (the header is not where the cycle starts),
/// and loops longer than [`MAX_LOOP_SLOTS`].
pub(crate) fn loop_inputs(insns: &[Insn]) -> Vec<u16> {
    let last_latch = cfg::last_latches(insns);
    let mut inputs = vec![0u16; insns.len() + 1];
    for (head, latch) in last_latch.iter().enumerate() {
        let Some(latch) = *latch else { continue };
        if latch - head >= MAX_LOOP_SLOTS {
            continue;
        }
        let (mut read, mut written) = (0u16, 0u16);
        let mut closed = true;
        for (pc, insn) in insns.iter().enumerate().take(latch + 1).skip(head) {
            let (r, w) = effects(insn);
            read |= r;
            written |= w;
            closed &= !(insn.opc == op::CALL && insn.src == call_kind::LOCAL);
            // A jump from the loop to before its header: the slots before the header are
            // part of a cycle through it (clang places some loops' first blocks before the
            // block its back edges target), and the slot that falls into the header may run
            // on every iteration.
            closed &= cfg::jump_target(pc, insn).is_none_or(|t| t >= head as i64);
        }
        if closed {
            inputs[head] = read & !written & 0x3ff;
        }
    }
    inputs
}

/// Longest loop analysed, in slots: pinning pays in small hot loops, and the analysis stays
/// linear in the program's length.
const MAX_LOOP_SLOTS: usize = 256;

/// `(read, written)` register masks of one instruction: a superset of what it may write,
/// and every register it names as an operand it reads.
fn effects(insn: &Insn) -> (u16, u16) {
    let bit = |r: u8| if r < 16 { 1u16 << r } else { 0 };
    let (dst, src) = (bit(insn.dst), bit(insn.src));
    let x = insn.opc & source::X != 0;
    match insn.class() {
        class::ALU | class::ALU64 => (dst | if x { src } else { 0 }, dst),
        class::LD => (0, dst),
        class::LDX => (src, dst),
        class::ST => (dst, 0),
        class::STX if insn.opc & 0xe0 == mode::ATOMIC => {
            // A fetching atomic writes its source register; compare-exchange writes r0.
            let fetch = insn.imm & atomic::FETCH != 0;
            let cmpxchg = insn.imm == atomic::CMPXCHG;
            (
                dst | src | if cmpxchg { 1 } else { 0 },
                if fetch { src } else { 0 } | if cmpxchg { 1 } else { 0 },
            )
        }
        class::STX => (dst | src, 0),
        class::JMP | class::JMP32 => match insn.opc & 0xf0 {
            // Helper calls read r1..r5 and leave r0..r5 changed.
            jmp::CALL => (0x3e, 0x3f),
            jmp::EXIT => (1, 0),
            jmp::JA => (0, 0),
            _ => (dst | if x { src } else { 0 }, 0),
        },
        _ => (0, 0x3ff),
    }
}

/// Once the function is whole, removes each pin whose input the e-graph could not have
/// moved into the loop anyway, replacing its result with the input. At pin time the input is
/// often a block parameter of a header still open; only now is it known to be a real merge,
/// a load, or a value computed elsewhere. A pin stays only when its input's computation holds
/// an operation the e-graph rematerialises (an `add`, `sub`, `and`, `or` or `xor` with a
/// constant operand, or a `not`): every other pin would cost an `add` and a `setb` for nothing,
/// on every iteration when the block that falls into the header is itself on a cycle.
pub(crate) fn drop_idle_pins(func: &mut Function, pins: &[Inst]) {
    for &pin in pins {
        if func.layout.inst_block(pin).is_none() {
            continue;
        }
        let input = func.dfg.resolve_aliases(func.dfg.inst_args(pin)[0]);
        if rematerialised(func, input, REMAT_DEPTH) {
            continue;
        }
        let result = func.dfg.first_result(pin);
        func.dfg.clear_results(pin);
        func.dfg.change_to_alias(result, input);
        func.layout.remove_inst(pin);
    }
}

/// How deep [`rematerialised`] looks into a value's computation.
const REMAT_DEPTH: u32 = 4;

/// Whether `value`'s computation, within `depth` pure single-result instructions, holds one
/// the e-graph rematerialises in each block that uses it ([`rematerialises`]). Block
/// parameters, loads, calls and two-result instructions (an earlier pin) end the search.
fn rematerialised(func: &Function, value: Value, depth: u32) -> bool {
    let ValueDef::Result(inst, _) = func.dfg.value_def(value) else {
        return false;
    };
    if depth == 0 || !pure_single_result(func, inst) || is_constant(func, value) {
        return false;
    }
    rematerialises(func, inst)
        || func
            .dfg
            .inst_args(inst)
            .iter()
            .any(|&a| rematerialised(func, func.dfg.resolve_aliases(a), depth - 1))
}

/// Whether `inst` is one the e-graph rematerialises in each block that uses it
/// (`cranelift-codegen`'s `remat.isle`): an `add`, `sub`, `and`, `or` or `xor` with a constant
/// operand, or a `not`. Constants themselves are left out: they are never worth a pin.
pub(crate) fn rematerialises(func: &Function, inst: Inst) -> bool {
    match func.dfg.insts[inst].opcode() {
        Opcode::Bnot => true,
        Opcode::Iadd | Opcode::Isub | Opcode::Band | Opcode::Bor | Opcode::Bxor => func
            .dfg
            .inst_args(inst)
            .iter()
            .any(|&a| is_constant(func, a)),
        _ => false,
    }
}

/// Whether `inst` computes one value from its operands and nothing else, which is what the
/// e-graph may move.
pub(crate) fn pure_single_result(func: &Function, inst: Inst) -> bool {
    pure(func, inst) && func.dfg.inst_results(inst).len() == 1
}

/// Whether `inst` only computes its results from its operands: no memory access, call, trap,
/// control flow or other effect.
pub(crate) fn pure(func: &Function, inst: Inst) -> bool {
    let opcode = func.dfg.insts[inst].opcode();
    !(opcode.can_load()
        || opcode.can_store()
        || opcode.is_call()
        || opcode.can_trap()
        || opcode.other_side_effects()
        || opcode.is_branch()
        || opcode.is_terminator())
}

/// Whether `value` is an integer constant (`iconst`).
pub(crate) fn is_constant(func: &Function, value: Value) -> bool {
    matches!(func.dfg.value_def(func.dfg.resolve_aliases(value)), ValueDef::Result(i, _)
        if matches!(func.dfg.insts[i], InstructionData::UnaryImm { opcode: Opcode::Iconst, .. }))
}

/// Puts a loop-carried accumulator first in the commutative operation that updates it
/// (`acc = x ^ acc` becomes `acc ^ x`). x86 writes a two-operand instruction's result over
/// its first operand, so with the accumulator second the register allocator gives the result
/// the other operand's register, and every iteration ends with a move back into the
/// accumulator's register (and, on the loop's back edge, a jump around it).
pub(crate) fn accumulators_first(func: &mut Function) {
    // Every (argument, parameter) pair a branch passes.
    let mut fed: Vec<(Value, Value)> = Vec::new();
    for block in func.layout.blocks() {
        let Some(term) = func.layout.last_inst(block) else {
            continue;
        };
        for call in func.dfg.insts[term]
            .branch_destination(&func.dfg.jump_tables, &func.dfg.exception_tables)
        {
            let target = call.block(&func.dfg.value_lists);
            for (arg, &param) in call
                .args(&func.dfg.value_lists)
                .zip(func.dfg.block_params(target))
            {
                if let Some(v) = arg.as_value() {
                    fed.push((func.dfg.resolve_aliases(v), param));
                }
            }
        }
    }
    fed.sort_unstable();
    let feeds = |arg: Value, param: Value| fed.binary_search(&(arg, param)).is_ok();
    let blocks: Vec<_> = func.layout.blocks().collect();
    for block in blocks {
        let mut at = func.layout.first_inst(block);
        while let Some(inst) = at {
            at = func.layout.next_inst(inst);
            let commutative = matches!(
                func.dfg.insts[inst].opcode(),
                Opcode::Iadd | Opcode::Imul | Opcode::Band | Opcode::Bor | Opcode::Bxor
            );
            if !commutative || func.dfg.inst_results(inst).len() != 1 {
                continue;
            }
            let result = func.dfg.first_result(inst);
            let args = func.dfg.inst_args(inst);
            let (a, b) = (
                func.dfg.resolve_aliases(args[0]),
                func.dfg.resolve_aliases(args[1]),
            );
            if a != b && feeds(result, b) && !feeds(result, a) {
                func.dfg.inst_args_mut(inst).swap(0, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_input_is_read_inside_and_never_written() {
        // r2 = r1 & 15; loop: r3 += r2; r4 += 1; if r4 < r5 goto loop; exit
        let insns = [
            Insn::new(0xbf, 2, 1, 0, 0),
            Insn::new(0x57, 2, 0, 0, 15),
            Insn::new(0x0f, 3, 2, 0, 0),
            Insn::new(0x07, 4, 0, 0, 1),
            Insn::new(0xad, 4, 5, -3, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        let inputs = loop_inputs(&insns);
        assert_eq!(inputs[2], (1 << 2) | (1 << 5));
        assert!(inputs.iter().enumerate().all(|(pc, &m)| pc == 2 || m == 0));
    }

    #[test]
    fn only_pins_of_rematerialised_computations_stay() {
        use cranelift_codegen::ir::types::I64;
        use cranelift_codegen::ir::{InstBuilder, MemFlagsData};
        use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

        // block0(a, b): x = a & 15; y = x << 3; l = load [b]; jump loop(a)
        // loop(p): pins of p (a merge), l (a load), y (built on x) and a << 3 (no remat)
        let mut func = super::super::test_ir::function(2);
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        let body = b.create_block();
        b.append_block_params_for_function_params(entry);
        let merge = b.append_block_param(body, I64);
        b.switch_to_block(entry);
        let (a, addr) = (b.block_params(entry)[0], b.block_params(entry)[1]);
        let x = b.ins().band_imm_u(a, 15);
        let y = b.ins().ishl_imm_u(x, 3);
        let shifted = b.ins().ishl_imm_u(a, 3);
        let loaded = b.ins().load(I64, MemFlagsData::trusted(), addr, 0);
        b.ins().jump(body, &[a.into()]);
        b.switch_to_block(body);
        let zero = b.ins().iconst(I64, 0);
        let mut pins = Vec::new();
        let mut pinned = Vec::new();
        for v in [merge, loaded, y, shifted] {
            let (p, _) = b.ins().uadd_overflow(v, zero);
            pins.push(b.func.dfg.value_def(p).unwrap_inst());
            pinned.push(p);
        }
        let sum = pinned
            .iter()
            .skip(1)
            .fold(pinned[0], |acc, &p| b.ins().iadd(acc, p));
        b.ins().return_(&[sum]);
        b.seal_all_blocks();
        b.finalize(super::super::test_ir::frontend());

        drop_idle_pins(&mut func, &pins);
        let kept: Vec<bool> = pins
            .iter()
            .map(|&p| func.layout.inst_block(p).is_some())
            .collect();
        assert_eq!(kept, [false, false, true, false]);
        for (&p, v) in pinned.iter().zip([merge, loaded, y, shifted]) {
            let resolved = func.dfg.resolve_aliases(p);
            assert!(resolved == p || resolved == v);
        }
        assert_eq!(func.dfg.resolve_aliases(pinned[0]), merge);
    }

    #[test]
    fn an_accumulator_goes_first_in_the_operation_that_updates_it() {
        use cranelift_codegen::ir::types::I64;
        use cranelift_codegen::ir::{InstBuilder, MemFlagsData};
        use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

        // block0(p): jump head(0)
        // head(acc): x = load [p]; r = x ^ acc; s = x + p; brif s, head(r), exit(r)
        let mut func = super::super::test_ir::function(1);
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let (entry, head, exit) = (b.create_block(), b.create_block(), b.create_block());
        b.append_block_params_for_function_params(entry);
        let acc = b.append_block_param(head, I64);
        let out = b.append_block_param(exit, I64);
        b.switch_to_block(entry);
        let p = b.block_params(entry)[0];
        let zero = b.ins().iconst(I64, 0);
        b.ins().jump(head, &[zero.into()]);
        b.switch_to_block(head);
        let x = b.ins().load(I64, MemFlagsData::trusted(), p, 0);
        let r = b.ins().bxor(x, acc);
        let s = b.ins().iadd(x, p);
        b.ins().brif(s, head, &[r.into()], exit, &[r.into()]);
        b.switch_to_block(exit);
        b.ins().return_(&[out]);
        b.seal_all_blocks();
        b.finalize(super::super::test_ir::frontend());

        accumulators_first(&mut func);
        let args_of = |v: Value| match func.dfg.value_def(v) {
            ValueDef::Result(inst, _) => func.dfg.inst_args(inst).to_vec(),
            _ => unreachable!(),
        };
        assert_eq!(args_of(r), [acc, x]);
        // `s` feeds no parameter: its operands stay in order.
        assert_eq!(args_of(s), [x, p]);
    }

    #[test]
    fn calls_and_fetching_atomics_write_registers() {
        // loop: r0 = atomic fetch_add(r1 + 0, r2); call 1; if r6 != 0 goto loop
        let insns = [
            Insn::new(0xdb, 1, 2, 0, atomic::FETCH),
            Insn::new(0x85, 0, 0, 0, 1),
            Insn::new(0x55, 6, 0, -3, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        // r1 and r2 are written by the call (r1..r5); r6 stays.
        assert_eq!(loop_inputs(&insns)[0], 1 << 6);
    }

    #[test]
    fn a_header_inside_a_larger_cycle_is_not_pinned() {
        // top: r2 += r6; mid: r3 += r6; if r3 < r7 goto mid; if r2 < r7 goto top
        // The back edge to `top` lies inside `mid`'s span: `top` falls into `mid` on every
        // outer iteration, so only `top` (whose span holds no jump before it) is a header.
        let insns = [
            Insn::new(0x0f, 2, 6, 0, 0),
            Insn::new(0x0f, 3, 6, 0, 0),
            Insn::new(0xad, 3, 7, -2, 0),
            Insn::new(0xad, 2, 7, -4, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        let inputs = loop_inputs(&insns);
        assert_eq!(inputs[0], (1 << 6) | (1 << 7));
        assert_eq!(inputs[1], (1 << 6) | (1 << 7));
        // The outer back edge inside the inner loop's span: slot 1 is not where the cycle
        // through it starts.
        let tangled = [
            Insn::new(0x0f, 2, 6, 0, 0),
            Insn::new(0x0f, 3, 6, 0, 0),
            Insn::new(0xad, 2, 7, -3, 0), // to slot 0, from inside [1, 3]
            Insn::new(0xad, 3, 7, -3, 0), // to slot 1: its last latch
            Insn::new(0x95, 0, 0, 0, 0),
        ];
        assert_eq!(loop_inputs(&tangled)[1], 0);
    }
}
