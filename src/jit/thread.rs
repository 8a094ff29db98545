//! Jump threading: a branch whose outcome is already known on one of the edges into its
//! block is skipped on that edge (`docs/performance.md`, "Known branches").
//!
//! Why: clang's output often tests a condition twice on one path. At -O1 a binary search
//! jumps back to a block that compares `a[mid]` with the key again right after the same
//! comparison failed, and an if-converted hammock is followed by a branch on the very
//! condition it just chose by. Cranelift's e-graph merges equal computations but knows
//! nothing about which way an earlier branch went, so each such test runs.
//!
//! How: once the function is whole, each edge into a small block that ends in a `brif` is
//! checked against the comparisons that decided the branches dominating the edge. When they
//! settle the `brif`, the edge goes to a copy of the block that jumps straight to the
//! settled target. Values the block defines and other blocks use get block parameters where
//! the copies' paths meet the original's ([`repair`]).

use alloc::vec;
use alloc::vec::Vec;

use cranelift_codegen::cursor::{Cursor, FuncCursor};
use cranelift_codegen::dominator_tree::DominatorTree;
use cranelift_codegen::entity::packed_option::{PackedOption, ReservedValue};
use cranelift_codegen::entity::{EntityRef, EntitySet, SecondaryMap};
use cranelift_codegen::flowgraph::ControlFlowGraph;
use cranelift_codegen::ir::condcodes::{CondCode, IntCC};
use cranelift_codegen::ir::{
    Block, BlockArg, Function, Inst, InstBuilder, InstructionData, Opcode, Value, ValueDef,
};

use super::invariant;

/// Largest block body (instructions before its `brif`) copied onto an edge.
const MAX_COPIED: usize = 8;

/// Most values a threaded block may define that other blocks use: each needs its SSA form
/// repaired once the copies exist ([`repair`]).
const MAX_REPAIRED: usize = 4;

/// Most edges threaded in one function: a bound on the work of [`repair`].
const MAX_THREADED: usize = 256;

/// How many dominating blocks an edge's facts are gathered from.
const MAX_FACT_DEPTH: usize = 48;

/// An operand of a comparison, up to equalities the translator's code leaves implicit: a
/// 32-bit zero extension of a value whose upper half is known zero is the value itself; an
/// extension or truncation of a 32-bit extension only depends on the inner value's low half;
/// equal constants are equal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Operand {
    /// The value itself.
    Value(Value),
    /// The low 32 bits of the value: zero-extended in a 64-bit comparison, as they are in a
    /// 32-bit one.
    Low32(Value),
    /// An integer constant.
    Const(i64),
    /// A value the entered block itself computes: it is computed afresh on the edge, so no
    /// earlier fact is about it.
    Fresh,
}

/// A comparison `a cond b` of two operands, 64 bits wide or, for `jmp32`, 32.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Comparison {
    wide: bool,
    cond: IntCC,
    a: Operand,
    b: Operand,
}

/// What an edge learns: `comparison` holds when `holds`, fails otherwise.
#[derive(Clone, Copy, Debug)]
struct Fact {
    comparison: Comparison,
    holds: bool,
}

/// One edge to thread: the branch `from` that enters `block`, and which of the block's
/// `brif` targets (0: taken, 1: not taken) that edge always reaches.
struct Threading {
    from: Inst,
    block: Block,
    target: usize,
}

/// Threads every edge whose block's `brif` is settled by the facts dominating the edge.
/// Returns how many edges it threaded.
pub(crate) fn thread_known_branches(func: &mut Function) -> usize {
    let cfg = ControlFlowGraph::with_function(func);
    let domtree = DominatorTree::with_function(func, &cfg);
    let outside = used_outside_definition(func);
    let plan = plan(func, &cfg, &domtree, &outside);
    let threaded = plan.len();
    apply(func, plan, &outside);
    threaded
}

/// The edges to thread, decided on the function as it is (every decision stays valid after
/// the others are applied: each copy runs exactly what the original path ran).
fn plan(
    func: &Function,
    cfg: &ControlFlowGraph,
    domtree: &DominatorTree,
    outside: &[bool],
) -> Vec<Threading> {
    let mut plan = Vec::new();
    for block in func.layout.blocks() {
        if !domtree.is_reachable(block) || Some(block) == func.layout.entry_block() {
            continue;
        }
        let Some(term) = func.layout.last_inst(block) else {
            continue;
        };
        let InstructionData::Brif { arg, blocks, .. } = func.dfg.insts[term] else {
            continue;
        };
        if blocks[0].block(&func.dfg.value_lists) == blocks[1].block(&func.dfg.value_lists)
            || !copyable(func, block, term)
            || escaping(func, block, outside) > MAX_REPAIRED
        {
            continue;
        }
        for pred in cfg.pred_iter(block) {
            if pred.block == block
                || !domtree.is_reachable(pred.block)
                || destinations_to(func, pred.inst, block) != 1
            {
                continue;
            }
            let tested = View::on_edge(func, pred.inst, block).condition(arg);
            let known = edge_facts(func, cfg, domtree, pred.block, pred.inst, block)
                .iter()
                .find_map(|fact| settles(fact, &tested));
            if let Some(taken) = known {
                plan.push(Threading {
                    from: pred.inst,
                    block,
                    target: if taken { 0 } else { 1 },
                });
                if plan.len() == MAX_THREADED {
                    return plan;
                }
            }
        }
    }
    plan
}

/// Whether `block`'s body (everything before its terminator `term`) is short and free of
/// effects, so that a copy on one edge computes the same values and nothing else.
fn copyable(func: &Function, block: Block, term: Inst) -> bool {
    let mut count = 0;
    for inst in func.layout.block_insts(block) {
        if inst == term {
            break;
        }
        count += 1;
        if count > MAX_COPIED || !invariant::pure(func, inst) {
            return false;
        }
    }
    true
}

/// The values `block` defines (its parameters, then its results).
fn definitions(func: &Function, block: Block) -> impl Iterator<Item = Value> + '_ {
    let results = func
        .layout
        .block_insts(block)
        .flat_map(|inst| func.dfg.inst_results(inst).iter().copied());
    func.dfg.block_params(block).iter().copied().chain(results)
}

/// How many values `block` defines that other blocks use.
fn escaping(func: &Function, block: Block, outside: &[bool]) -> usize {
    definitions(func, block)
        .filter(|v| outside[v.index()])
        .count()
}

/// How many of `inst`'s destinations are `block`.
fn destinations_to(func: &Function, inst: Inst, block: Block) -> usize {
    func.dfg.insts[inst]
        .branch_destination(&func.dfg.jump_tables, &func.dfg.exception_tables)
        .iter()
        .filter(|call| call.block(&func.dfg.value_lists) == block)
        .count()
}

/// The facts that hold on the edge `inst` from `pred` into `block`: the edge's own, and those
/// of every edge that is the only way into a block dominating `pred`.
fn edge_facts(
    func: &Function,
    cfg: &ControlFlowGraph,
    domtree: &DominatorTree,
    pred: Block,
    inst: Inst,
    block: Block,
) -> Vec<Fact> {
    let mut facts = Vec::new();
    facts.extend(branch_fact(func, inst, block));
    let mut at = pred;
    for _ in 0..MAX_FACT_DEPTH {
        let mut preds = cfg.pred_iter(at);
        if let (Some(only), None) = (preds.next(), preds.next())
            && destinations_to(func, only.inst, at) == 1
        {
            facts.extend(branch_fact(func, only.inst, at));
        }
        match domtree.idom(at) {
            Some(up) => at = up,
            None => break,
        }
    }
    facts
}

/// What taking `inst`'s edge into `to` says, when `inst` is a `brif` with `to` on one side.
fn branch_fact(func: &Function, inst: Inst, to: Block) -> Option<Fact> {
    let InstructionData::Brif { arg, blocks, .. } = func.dfg.insts[inst] else {
        return None;
    };
    let taken = blocks[0].block(&func.dfg.value_lists) == to;
    Some(Fact {
        comparison: View::plain(func).condition(arg),
        holds: taken,
    })
}

/// The function's values as seen on one edge: the entered block's parameters stand for the
/// edge's arguments (a parameter that every edge fills with the same value is that value).
struct View<'a> {
    func: &'a Function,
    /// The entered block, if any.
    entered: Option<Block>,
    params: &'a [Value],
    args: Vec<Value>,
}

impl<'a> View<'a> {
    /// Values as they are.
    fn plain(func: &'a Function) -> Self {
        Self {
            func,
            entered: None,
            params: &[],
            args: Vec::new(),
        }
    }

    /// Values on the edge `inst` into `block` (which `inst` names once).
    fn on_edge(func: &'a Function, inst: Inst, block: Block) -> Self {
        let call = func.dfg.insts[inst]
            .branch_destination(&func.dfg.jump_tables, &func.dfg.exception_tables)
            .iter()
            .find(|call| call.block(&func.dfg.value_lists) == block)
            .expect("the edge names its block");
        let args = call
            .args(&func.dfg.value_lists)
            .map(|arg| arg.as_value().unwrap_or(Value::reserved_value()))
            .collect();
        Self {
            func,
            entered: Some(block),
            params: func.dfg.block_params(block),
            args,
        }
    }

    /// `value` with aliases resolved and the edge's substitution made.
    fn value(&self, value: Value) -> Value {
        let value = self.func.dfg.resolve_aliases(value);
        match self.params.iter().position(|&p| p == value) {
            Some(i) if self.args[i] != Value::reserved_value() => {
                self.func.dfg.resolve_aliases(self.args[i])
            }
            _ => value,
        }
    }

    /// The instruction defining `value` (after [`Self::value`]), with its opcode.
    fn def(&self, value: Value) -> Option<(Inst, Opcode)> {
        match self.func.dfg.value_def(value) {
            ValueDef::Result(inst, _) => Some((inst, self.func.dfg.insts[inst].opcode())),
            _ => None,
        }
    }

    /// Argument `i` of `inst`, through [`Self::value`].
    fn arg(&self, inst: Inst, i: usize) -> Value {
        self.value(self.func.dfg.inst_args(inst)[i])
    }

    /// The comparison a `brif` on `value` tests: an `icmp`'s, or `value != 0`.
    fn condition(&self, value: Value) -> Comparison {
        let value = self.value(value);
        if let Some((inst, _)) = self.def(value)
            && let InstructionData::IntCompare { cond, args, .. } = self.func.dfg.insts[inst]
        {
            return Comparison {
                wide: self.func.dfg.value_type(args[0]).bits() == 64,
                cond,
                a: self.operand(args[0]),
                b: self.operand(args[1]),
            };
        }
        Comparison {
            wide: self.func.dfg.value_type(value).bits() == 64,
            cond: IntCC::NotEqual,
            a: self.operand(value),
            b: Operand::Const(0),
        }
    }

    /// `value` as a comparison operand ([`Operand`]).
    fn operand(&self, value: Value) -> Operand {
        match self.operand_of(value) {
            Operand::Value(v) | Operand::Low32(v) if self.computed_in_entered(v) => Operand::Fresh,
            other => other,
        }
    }

    /// Whether the entered block defines `value` (a parameter no edge argument stands for,
    /// or a result of its body): such a value is new on every entry.
    fn computed_in_entered(&self, value: Value) -> bool {
        self.entered.is_some()
            && match self.func.dfg.value_def(value) {
                ValueDef::Result(inst, _) => self.func.layout.inst_block(inst) == self.entered,
                ValueDef::Param(block, _) => Some(block) == self.entered,
                ValueDef::Union(..) => true,
            }
    }

    /// [`Self::operand`] before the check for values computed on the edge.
    fn operand_of(&self, value: Value) -> Operand {
        let value = self.value(value);
        if let Some(c) = self.constant(value) {
            return Operand::Const(c);
        }
        if let Some((inst, Opcode::Ireduce)) = self.def(value)
            && self.func.dfg.value_type(value).bits() == 32
        {
            return Operand::Low32(self.low_half_source(self.arg(inst, 0)));
        }
        match self.extension(value) {
            Some((Extension::Zero, inner)) => {
                let inner = self.low_half_source(inner);
                if self.upper_half_zero(inner) {
                    self.operand_of(inner)
                } else {
                    Operand::Low32(inner)
                }
            }
            _ => Operand::Value(value),
        }
    }

    /// `Some((kind, x))` when `value` is `x`'s low 32 bits extended to 64: `(x << 32) >> 32`
    /// (logical or arithmetic), or `x & 0xffff_ffff`.
    fn extension(&self, value: Value) -> Option<(Extension, Value)> {
        let (inst, opcode) = self.def(value)?;
        if self.func.dfg.inst_args(inst).len() != 2 {
            return None;
        }
        match opcode {
            Opcode::Band if self.constant(self.arg(inst, 1)) == Some(0xffff_ffff) => {
                Some((Extension::Zero, self.arg(inst, 0)))
            }
            Opcode::Ushr | Opcode::Sshr if self.constant(self.arg(inst, 1)) == Some(32) => {
                let (shl, Opcode::Ishl) = self.def(self.arg(inst, 0))? else {
                    return None;
                };
                if self.constant(self.arg(shl, 1)) != Some(32) {
                    return None;
                }
                let kind = if opcode == Opcode::Ushr {
                    Extension::Zero
                } else {
                    Extension::Sign
                };
                Some((kind, self.arg(shl, 0)))
            }
            _ => None,
        }
    }

    /// The value whose low half `value`'s low half is: extensions of a low half keep it.
    fn low_half_source(&self, mut value: Value) -> Value {
        while let Some((_, inner)) = self.extension(value) {
            value = inner;
        }
        value
    }

    /// Whether `value`'s upper 32 bits are known to be zero: a load of at most 32 bits, a
    /// zero extension, or a constant that fits.
    fn upper_half_zero(&self, value: Value) -> bool {
        if let Some(c) = self.constant(value) {
            return (0..=0xffff_ffff).contains(&c);
        }
        matches!(
            self.def(value),
            Some((_, Opcode::Uload8 | Opcode::Uload16 | Opcode::Uload32))
        ) || matches!(self.extension(value), Some((Extension::Zero, _)))
    }

    /// The value of an `iconst`.
    fn constant(&self, value: Value) -> Option<i64> {
        let (inst, _) = self.def(value)?;
        match self.func.dfg.insts[inst] {
            InstructionData::UnaryImm {
                opcode: Opcode::Iconst,
                imm,
            } => Some(imm.bits()),
            _ => None,
        }
    }
}

/// The two ways the translator extends a value's low 32 bits to 64.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Extension {
    Zero,
    Sign,
}

/// Whether `fact` decides `tested`: `Some(outcome)` when it does.
fn settles(fact: &Fact, tested: &Comparison) -> Option<bool> {
    let known = &fact.comparison;
    if known.wide != tested.wide || tested.a == Operand::Fresh || tested.b == Operand::Fresh {
        return None;
    }
    let cond = if (known.a, known.b) == (tested.a, tested.b) {
        tested.cond
    } else if (known.a, known.b) == (tested.b, tested.a) {
        tested.cond.swap_args()
    } else {
        return None;
    };
    // The orders two integers can be in, as (signed, unsigned) outcomes; a condition holds in
    // a subset of them.
    let possible = if fact.holds {
        orders(known.cond)
    } else {
        !orders(known.cond) & ALL_ORDERS
    };
    let holds_in = orders(cond);
    if possible & !holds_in == 0 {
        Some(true)
    } else if possible & holds_in == 0 {
        Some(false)
    } else {
        None
    }
}

/// Every order of two integers (bits of [`orders`]).
const ALL_ORDERS: u8 = 0b11111;

/// The orders of `a` and `b` in which `a cond b` holds, one bit each: equal; signed less and
/// unsigned less; signed less and unsigned greater; signed greater and unsigned less; signed
/// greater and unsigned greater.
fn orders(cond: IntCC) -> u8 {
    const EQ: u8 = 1;
    const SLT_ULT: u8 = 2;
    const SLT_UGT: u8 = 4;
    const SGT_ULT: u8 = 8;
    const SGT_UGT: u8 = 16;
    match cond {
        IntCC::Equal => EQ,
        IntCC::NotEqual => ALL_ORDERS & !EQ,
        IntCC::SignedLessThan => SLT_ULT | SLT_UGT,
        IntCC::SignedLessThanOrEqual => SLT_ULT | SLT_UGT | EQ,
        IntCC::SignedGreaterThan => SGT_ULT | SGT_UGT,
        IntCC::SignedGreaterThanOrEqual => SGT_ULT | SGT_UGT | EQ,
        IntCC::UnsignedLessThan => SLT_ULT | SGT_ULT,
        IntCC::UnsignedLessThanOrEqual => SLT_ULT | SGT_ULT | EQ,
        IntCC::UnsignedGreaterThan => SLT_UGT | SGT_UGT,
        IntCC::UnsignedGreaterThanOrEqual => SLT_UGT | SGT_UGT | EQ,
    }
}

/// Makes the copies, points the threaded edges at them, and repairs the SSA form of the
/// values the copied blocks define and other blocks use (`outside`: as
/// [`used_outside_definition`] found them before any copy).
fn apply(func: &mut Function, plan: Vec<Threading>, outside: &[bool]) {
    let mut variables: Vec<Variable> = Vec::new();
    for threading in &plan {
        let escaping: Vec<Value> = definitions(func, threading.block)
            .filter(|v| outside[v.index()])
            .collect();
        let (copy, renamed) = copy_onto_edge(func, threading);
        for v in escaping {
            let copied = renamed
                .iter()
                .find(|&&(from, _)| from == v)
                .map(|&(_, to)| to)
                .expect("every definition is renamed in the copy");
            match variables.iter_mut().find(|var| var.original == v) {
                Some(var) => var.defs.push((copy, copied)),
                None => variables.push(Variable {
                    original: v,
                    defs: vec![(threading.block, v), (copy, copied)],
                }),
            }
        }
    }
    if !variables.is_empty() {
        repair(func, &variables);
    }
}

/// A value a threaded block defines and other blocks use, with its definitions once the
/// block has copies: `(block, value)` for the block and for each copy.
struct Variable {
    original: Value,
    defs: Vec<(Block, Value)>,
}

/// Restores SSA form for `variables`: each use outside a defining block now takes the
/// definition that reaches it, through new block parameters where definitions meet (pruned
/// to blocks where the value is live, placed on the iterated dominance frontier).
fn repair(func: &mut Function, variables: &[Variable]) {
    let cfg = ControlFlowGraph::with_function(func);
    let domtree = DominatorTree::with_function(func, &cfg);
    let frontiers = dominance_frontiers(func, &cfg, &domtree);
    let mut which: SecondaryMap<Value, Option<u32>> = SecondaryMap::new();
    for (i, var) in variables.iter().enumerate() {
        which[var.original] = Some(i as u32);
    }
    let mut uses: Vec<Vec<(Block, Inst)>> = vec![Vec::new(); variables.len()];
    for block in func.layout.blocks() {
        if !domtree.is_reachable(block) {
            continue;
        }
        for inst in func.layout.block_insts(block) {
            for v in func.dfg.inst_values(inst) {
                if let Some(i) = which[func.dfg.resolve_aliases(v)] {
                    let var = &variables[i as usize];
                    let at = (block, inst);
                    if !var.defs.iter().any(|&(b, _)| b == block)
                        && uses[i as usize].last() != Some(&at)
                    {
                        uses[i as usize].push(at);
                    }
                }
            }
        }
    }
    for (var, uses) in variables.iter().zip(&uses) {
        if !uses.is_empty() {
            repair_variable(func, &cfg, &domtree, &frontiers, var, uses);
        }
    }
}

/// [`repair`] for one variable.
fn repair_variable(
    func: &mut Function,
    cfg: &ControlFlowGraph,
    domtree: &DominatorTree,
    frontiers: &SecondaryMap<Block, Vec<Block>>,
    var: &Variable,
    uses: &[(Block, Inst)],
) {
    let def_at = |block: Block| var.defs.iter().find(|&&(b, _)| b == block).map(|&(_, v)| v);
    // Blocks the value is live into: backwards from the uses, up to the definitions.
    let mut live: EntitySet<Block> = EntitySet::new();
    let mut work: Vec<Block> = uses.iter().map(|&(b, _)| b).collect();
    while let Some(block) = work.pop() {
        if def_at(block).is_some() || !live.insert(block) {
            continue;
        }
        work.extend(cfg.pred_iter(block).map(|p| p.block));
    }
    // Where definitions meet: the iterated dominance frontier, pruned to live blocks.
    let ty = func.dfg.value_type(var.original);
    let mut reaching: SecondaryMap<Block, PackedOption<Value>> = SecondaryMap::new();
    let mut merges: Vec<Block> = Vec::new();
    let mut work: Vec<Block> = var
        .defs
        .iter()
        .map(|&(b, _)| b)
        .filter(|&b| domtree.is_reachable(b))
        .collect();
    while let Some(block) = work.pop() {
        for &frontier in &frontiers[block] {
            if live.contains(frontier) && reaching[frontier].is_none() {
                let param = func.dfg.append_block_param(frontier, ty);
                reaching[frontier] = param.into();
                merges.push(frontier);
                work.push(frontier);
            }
        }
    }
    for &merge in &merges {
        let mut preds: Vec<_> = cfg.pred_iter(merge).collect();
        preds.sort_by_key(|p| p.inst);
        preds.dedup_by_key(|p| p.inst);
        for pred in preds {
            let arg = match def_at(pred.block) {
                Some(v) => v,
                None => reaching_into(domtree, &mut reaching, &def_at, pred.block, var),
            };
            let dfg = &mut func.dfg;
            for call in dfg.insts[pred.inst]
                .branch_destination_mut(&mut dfg.jump_tables, &mut dfg.exception_tables)
            {
                if call.block(&dfg.value_lists) == merge {
                    call.append_argument(arg, &mut dfg.value_lists);
                }
            }
        }
    }
    for &(block, inst) in uses {
        let value = reaching_into(domtree, &mut reaching, &def_at, block, var);
        let original = var.original;
        let dfg = &mut func.dfg;
        let resolved: Vec<Value> = dfg
            .inst_values(inst)
            .map(|v| {
                if dfg.resolve_aliases(v) == original {
                    value
                } else {
                    v
                }
            })
            .collect();
        dfg.overwrite_inst_values(inst, resolved.into_iter());
    }
}

/// The definition of `var` reaching the start of `block`: the merge parameter there, or the
/// definition reaching the end of its immediate dominator. Memoised in `reaching`.
fn reaching_into(
    domtree: &DominatorTree,
    reaching: &mut SecondaryMap<Block, PackedOption<Value>>,
    def_at: &dyn Fn(Block) -> Option<Value>,
    block: Block,
    var: &Variable,
) -> Value {
    let mut chain = Vec::new();
    let mut at = block;
    let found = loop {
        if let Some(v) = reaching[at].expand() {
            break v;
        }
        chain.push(at);
        match domtree.idom(at) {
            Some(up) => match def_at(up) {
                Some(v) => break v,
                None => at = up,
            },
            // Only unreachable code gets here: no definition reaches it.
            None => break var.original,
        }
    };
    for b in chain {
        reaching[b] = found.into();
    }
    found
}

/// Each reachable block's dominance frontier: the blocks where a path from it first meets
/// paths that do not pass through it.
fn dominance_frontiers(
    func: &Function,
    cfg: &ControlFlowGraph,
    domtree: &DominatorTree,
) -> SecondaryMap<Block, Vec<Block>> {
    let mut frontiers: SecondaryMap<Block, Vec<Block>> = SecondaryMap::new();
    for block in func.layout.blocks() {
        if !domtree.is_reachable(block) {
            continue;
        }
        let preds: Vec<Block> = cfg
            .pred_iter(block)
            .map(|p| p.block)
            .filter(|&p| domtree.is_reachable(p))
            .collect();
        if preds.len() < 2 {
            continue;
        }
        let idom = domtree.idom(block);
        for pred in preds {
            let mut runner = Some(pred);
            while runner.is_some() && runner != idom {
                let r = runner.expect("checked");
                if !frontiers[r].contains(&block) {
                    frontiers[r].push(block);
                }
                runner = domtree.idom(r);
            }
        }
    }
    frontiers
}

/// Copies `threading.block`'s body into a new block that jumps to the settled target, and
/// points the edge at the copy. The copy takes the same parameters, so the edge's arguments
/// stay as they are.
fn copy_onto_edge(func: &mut Function, threading: &Threading) -> (Block, Vec<(Value, Value)>) {
    let block = threading.block;
    let copy = func.dfg.make_block();
    func.layout.insert_block(copy, block);
    let mut renamed: Vec<(Value, Value)> = Vec::new();
    for i in 0..func.dfg.num_block_params(block) {
        let param = func.dfg.block_params(block)[i];
        let ty = func.dfg.value_type(param);
        renamed.push((param, func.dfg.append_block_param(copy, ty)));
    }
    let rename = |renamed: &[(Value, Value)], v: Value| {
        renamed
            .iter()
            .find(|&&(from, _)| from == v)
            .map_or(v, |&(_, to)| to)
    };
    let insts: Vec<Inst> = func.layout.block_insts(block).collect();
    let (term, body) = insts
        .split_last()
        .expect("a threaded block ends in its brif");
    for &inst in body {
        let cloned = func.dfg.clone_inst(inst);
        let dfg = &mut func.dfg;
        let resolved: Vec<Value> = dfg
            .inst_values(cloned)
            .map(|v| rename(&renamed, dfg.resolve_aliases(v)))
            .collect();
        dfg.overwrite_inst_values(cloned, resolved.into_iter());
        func.layout.append_inst(cloned, copy);
        for (&from, &to) in func
            .dfg
            .inst_results(inst)
            .iter()
            .zip(func.dfg.inst_results(cloned))
        {
            renamed.push((from, to));
        }
    }
    let InstructionData::Brif { blocks, .. } = func.dfg.insts[*term] else {
        unreachable!("planned only for blocks ending in a brif")
    };
    let call = blocks[threading.target];
    let target = call.block(&func.dfg.value_lists);
    let args: Vec<BlockArg> = call
        .args(&func.dfg.value_lists)
        .map(|arg| match arg {
            BlockArg::Value(v) => BlockArg::Value(rename(&renamed, func.dfg.resolve_aliases(v))),
            other => other,
        })
        .collect();
    FuncCursor::new(func)
        .at_bottom(copy)
        .ins()
        .jump(target, &args);
    func.rewrite_branch_destination(threading.from, block, copy);
    (copy, renamed)
}

/// For every value: whether an instruction outside the block defining it uses it (its
/// defining block's own terminator counts as inside).
fn used_outside_definition(func: &Function) -> Vec<bool> {
    let mut outside = vec![false; func.dfg.num_values()];
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            for v in func.dfg.inst_values(inst) {
                let v = func.dfg.resolve_aliases(v);
                let defined_in = match func.dfg.value_def(v) {
                    ValueDef::Result(i, _) => func.layout.inst_block(i),
                    ValueDef::Param(b, _) => Some(b),
                    ValueDef::Union(..) => None,
                };
                if defined_in != Some(block) {
                    outside[v.index()] = true;
                }
            }
        }
    }
    outside
}

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift_codegen::ir::types::I64;
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

    fn fact(cond: IntCC, holds: bool) -> Fact {
        Fact {
            comparison: comparison(cond, 0, 1),
            holds,
        }
    }

    fn comparison(cond: IntCC, a: u32, b: u32) -> Comparison {
        Comparison {
            wide: true,
            cond,
            a: Operand::Value(Value::from_u32(a)),
            b: Operand::Value(Value::from_u32(b)),
        }
    }

    #[test]
    fn a_fact_settles_only_the_comparisons_it_implies() {
        use IntCC::*;
        let less = fact(SignedLessThan, true);
        let not_equal = fact(Equal, false);
        let not_below = fact(UnsignedLessThan, false);
        let cases = [
            (&less, SignedLessThanOrEqual, 0, 1, Some(true)),
            (&less, SignedGreaterThan, 1, 0, Some(true)),
            (&less, Equal, 0, 1, Some(false)),
            (&less, NotEqual, 1, 0, Some(true)),
            (&less, UnsignedLessThan, 0, 1, None),
            (&less, SignedLessThan, 0, 2, None),
            (&not_equal, NotEqual, 0, 1, Some(true)),
            (&not_equal, SignedLessThan, 0, 1, None),
            (&not_below, UnsignedGreaterThanOrEqual, 0, 1, Some(true)),
        ];
        for (known, cond, a, b, expected) in cases {
            let tested = comparison(cond, a, b);
            assert_eq!(
                settles(known, &tested),
                expected,
                "{known:?} then {tested:?}"
            );
        }
        // A 32-bit test learns nothing from a 64-bit fact.
        let mut narrow = comparison(UnsignedGreaterThanOrEqual, 0, 1);
        narrow.wide = false;
        assert_eq!(settles(&not_below, &narrow), None);
    }

    /// block0(a, b): brif a < b, block1, block2
    /// block1: jump merge(1)       block2: jump merge(2)
    /// merge(p): brif a < b (again), block4, block5
    /// block4: return p + 10       block5: return p + 20
    /// Both edges into `merge` know the second test's outcome, and `p` is used past it.
    #[test]
    fn a_hammock_then_the_same_test_threads_both_edges_and_keeps_ssa() {
        let mut func = super::super::test_ir::function(2);
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let blocks: Vec<Block> = (0..6).map(|_| b.create_block()).collect();
        b.append_block_params_for_function_params(blocks[0]);
        let p = b.append_block_param(blocks[3], I64);
        b.switch_to_block(blocks[0]);
        let (x, y) = (b.block_params(blocks[0])[0], b.block_params(blocks[0])[1]);
        let less = b.ins().icmp(IntCC::SignedLessThan, x, y);
        b.ins().brif(less, blocks[1], &[], blocks[2], &[]);
        for (block, value) in [(blocks[1], 1), (blocks[2], 2)] {
            b.switch_to_block(block);
            let v = b.ins().iconst(I64, value);
            b.ins().jump(blocks[3], &[v.into()]);
        }
        b.switch_to_block(blocks[3]);
        let again = b.ins().icmp(IntCC::SignedGreaterThan, y, x);
        b.ins().brif(again, blocks[4], &[], blocks[5], &[]);
        for (block, add) in [(blocks[4], 10), (blocks[5], 20)] {
            b.switch_to_block(block);
            let sum = b.ins().iadd_imm_s(p, add);
            b.ins().return_(&[sum]);
        }
        b.seal_all_blocks();
        b.finalize(super::super::test_ir::frontend());

        assert_eq!(thread_known_branches(&mut func), 2);
        let flags = cranelift_codegen::settings::Flags::new(cranelift_codegen::settings::builder());
        cranelift_codegen::verify_function(&func, &flags)
            .unwrap_or_else(|e| panic!("{e}\n{}", func.display()));
        let cfg = ControlFlowGraph::with_function(&func);
        let domtree = DominatorTree::with_function(&func, &cfg);
        assert!(!domtree.is_reachable(blocks[3]), "{}", func.display());
        // Each return adds to the constant its own path chose, through the copy's parameter.
        for (block, constant) in [(blocks[4], 1), (blocks[5], 2)] {
            let ret = func.layout.last_inst(block).unwrap();
            let ValueDef::Result(add, _) = func.dfg.value_def(func.dfg.inst_args(ret)[0]) else {
                panic!("{}", func.display());
            };
            let operand = func.dfg.resolve_aliases(func.dfg.inst_args(add)[0]);
            let ValueDef::Param(copy, _) = func.dfg.value_def(operand) else {
                panic!("{}", func.display());
            };
            let pred = cfg.pred_iter(copy).next().unwrap();
            let arg = func.dfg.insts[pred.inst]
                .branch_destination(&func.dfg.jump_tables, &func.dfg.exception_tables)[0]
                .args(&func.dfg.value_lists)
                .next()
                .and_then(|a| a.as_value())
                .unwrap();
            assert_eq!(
                View::plain(&func).constant(func.dfg.resolve_aliases(arg)),
                Some(constant)
            );
        }
    }
}
