//! If-conversion: which conditional branches the JIT translates as `select`s instead of
//! branches (`docs/performance.md`, "If-conversion").
//!
//! BPF has no set-on-condition or conditional-move instruction, so a C compiler lowers
//! `x = a > b` or `x = c ? y : z` to a branch around a register move. On data-dependent
//! conditions such branches mispredict half the time, where native code would have used
//! `setcc`/`cmov`. A *hammock* is a conditional branch whose two paths are short runs of
//! instructions that only compute register values and meet again at one slot, the *join*:
//!
//! * a triangle: one path is empty (the branch jumps to the join), the other falls through
//!   into the join or ends in a `ja` to it (the join may then lie anywhere, before the branch
//!   too);
//! * a diamond: the fall-through path ends in a `ja` to the join, the taken path starts right
//!   after that `ja` and falls into the join or jumps to it.
//!
//! A path may hold ALU instructions of either width with any operand (divisions and modulos
//! included: BPF defines `x / 0` and `x % 0`, and the translation never traps), `lddw`, jumps
//! to the next slot, and hammocks nested inside it; never a load, store, atomic, call or exit.
//! None of these can fault or have an effect outside the registers, so running both paths and
//! keeping, register by register, the values of the path the condition picks, is exact: the
//! registers end as the interpreter leaves them, and no error pc, store or helper call moves.
//!
//! Every slot of a path, and the join, must be entered only through the hammock's own edges
//! (the branch, the paths' fall-throughs, their `ja`s): the translation does not emit the
//! paths as blocks, so no other jump may lead into them, and a join entered from elsewhere is
//! left to a real branch. [`find`] counts every slot's predecessors once and checks that those
//! of the hammock's slots are exactly its own edges.

use crate::isa::{self, Insn, alu, call_kind, class, jmp, op};
use crate::jit::cfg;

/// Most weight one path may carry (an instruction or a jump to the next slot weighs 1, a
/// division or modulo [`DIVIDE_WEIGHT`], a nested hammock 1 for its compare plus its paths): both paths always
/// run, so a long path would slow down branches that predict well.
pub(crate) const MAX_PATH_WEIGHT: u32 = 6;
/// Weight of a division or modulo, several times slower than other ALU instructions.
const DIVIDE_WEIGHT: u32 = 3;
/// Deepest nesting of hammocks inside paths.
const MAX_DEPTH: u32 = 3;

/// One conditional branch translated as selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hammock {
    /// Slot of the conditional jump.
    pub branch: usize,
    /// What runs when the jump is taken, in order.
    pub taken: Vec<Step>,
    /// What runs when it is not.
    pub fall: Vec<Step>,
    /// Where both paths continue.
    pub join: usize,
    /// The first slot after the hammock's slots (`branch..end`). When it is not the join,
    /// the last slot of the hammock is a `ja` (or a nested hammock ending in one).
    pub end: usize,
}

/// One element of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The ALU instruction or `lddw` at this slot.
    Insn(usize),
    /// A nested hammock, run as selects in place.
    Nested(Hammock),
}

impl Hammock {
    /// The registers (bit `r`) that some instruction of either path writes.
    pub(crate) fn written(&self, insns: &[Insn]) -> u16 {
        fn path(steps: &[Step], insns: &[Insn]) -> u16 {
            steps.iter().fold(0, |mask, s| match s {
                Step::Insn(pc) => mask | 1 << isa::reg_index(insns[*pc].dst),
                Step::Nested(h) => mask | h.written(insns),
            })
        }
        path(&self.taken, insns) | path(&self.fall, insns)
    }
}

/// The weight of `insn` when it only computes a register from registers and constants (every
/// ALU operation and `lddw`); `None` for anything else.
fn weight(insn: &Insn) -> Option<u32> {
    match insn.class() {
        class::ALU | class::ALU64 => match insn.opc & alu::MASK {
            alu::DIV | alu::MOD => Some(DIVIDE_WEIGHT),
            alu::ADD
            | alu::SUB
            | alu::MUL
            | alu::OR
            | alu::AND
            | alu::LSH
            | alu::RSH
            | alu::NEG
            | alu::XOR
            | alu::MOV
            | alu::ARSH
            | alu::END => Some(1),
            _ => None,
        },
        class::LD if insn.opc == op::LDDW => Some(1),
        _ => None,
    }
}

/// Whether `insn` at `pc` is a conditional jump with a compare the translator knows.
fn is_conditional(pc: usize, insn: &Insn) -> bool {
    matches!(insn.class(), class::JMP | class::JMP32)
        && matches!(
            insn.opc & alu::MASK,
            jmp::JEQ
                | jmp::JGT
                | jmp::JGE
                | jmp::JSET
                | jmp::JNE
                | jmp::JSGT
                | jmp::JSGE
                | jmp::JLT
                | jmp::JLE
                | jmp::JSLT
                | jmp::JSLE
        )
        && !cfg::is_no_op_jump(pc, insn)
}

/// Whether `insn` is `ja` (or `ja32`).
fn is_ja(insn: &Insn) -> bool {
    matches!(insn.class(), class::JMP | class::JMP32) && insn.opc & alu::MASK == jmp::JA
}

/// The target of the jump `insn` at `pc` as a slot, when inside `0..=len`.
fn target(pc: usize, insn: &Insn, len: usize) -> Option<usize> {
    cfg::jump_target(pc, insn)
        .and_then(|t| usize::try_from(t).ok())
        .filter(|&t| t <= len)
}

/// How many control-flow edges enter each slot (and one past the end): jumps, fall-throughs,
/// local calls and their returns, and the program's entry at slot 0. Counted as the
/// hammock parser counts its own edges, so that equal counts mean no other entry.
fn predecessors(insns: &[Insn]) -> Vec<u32> {
    let len = insns.len();
    let mut preds = vec![0u32; len + 1];
    if len > 0 {
        preds[0] = 1;
    }
    let mut pc = 0;
    while pc < len {
        let insn = insns[pc];
        let next = (pc + insn.slots()).min(len);
        let mut add = |slot: Option<usize>| {
            if let Some(p) = slot.and_then(|s| preds.get_mut(s)) {
                *p += 1;
            }
        };
        let jumps = matches!(insn.class(), class::JMP | class::JMP32);
        match insn.opc {
            _ if jumps && cfg::is_no_op_jump(pc, &insn) => add(Some(next)),
            op::EXIT => {}
            op::CALL if insn.src == call_kind::LOCAL => {
                add(usize::try_from(pc as i64 + 1 + i64::from(insn.imm)).ok());
                add(Some(next));
            }
            _ if jumps && is_ja(&insn) => add(target(pc, &insn, len)),
            _ if jumps && cfg::jump_target(pc, &insn).is_some() => {
                add(target(pc, &insn, len));
                add(Some(next));
            }
            _ => add(Some(next)),
        }
        pc += insn.slots();
    }
    preds
}

/// How a path ends.
enum PathEnd {
    /// It falls into this slot.
    Falls(usize),
    /// It jumps (a `ja`, or a nested hammock that ends in one) to `to`; its last slot is
    /// before `end`.
    Jumps { to: usize, end: usize },
}

/// Parses hammocks, collecting the edges their slots have.
struct Parser<'a> {
    insns: &'a [Insn],
    /// Targets of every edge of the hammock being parsed (with repeats).
    edges: Vec<usize>,
}

impl Parser<'_> {
    /// The hammock whose branch is at `pc` (predecessors not checked), each path within
    /// `budget`, and its cost: its compare and both paths.
    fn hammock(&mut self, pc: usize, budget: u32, depth: u32) -> Option<(Hammock, u32)> {
        let len = self.insns.len();
        let insn = *self.insns.get(pc)?;
        if depth > MAX_DEPTH || !is_conditional(pc, &insn) {
            return None;
        }
        let taken_at = target(pc, &insn, len)?;
        self.edges.extend([taken_at, pc + 1]);
        let forward = taken_at > pc;
        let mut fall_left = budget;
        let (fall, fall_end) =
            self.path(pc + 1, forward.then_some(taken_at), &mut fall_left, depth)?;
        let mut taken_left = budget;
        let (taken, join, end) = match fall_end {
            // A triangle: the jump goes straight to the join.
            PathEnd::Falls(at) if at == taken_at => (Vec::new(), taken_at, taken_at),
            PathEnd::Jumps { to, end } if to == taken_at => (Vec::new(), taken_at, end),
            // A diamond: the taken path starts right after the fall-through path's `ja`.
            PathEnd::Jumps { to, end } if forward && end == taken_at => {
                let stop = (to > taken_at).then_some(to);
                let (taken, taken_end) = self.path(taken_at, stop, &mut taken_left, depth)?;
                let end = match taken_end {
                    PathEnd::Falls(at) if at == to => at,
                    PathEnd::Jumps { to: j, end } if j == to => end,
                    _ => return None,
                };
                (taken, to, end)
            }
            _ => return None,
        };
        // The join may not be one of the hammock's own slots (a loop inside it).
        if join > pc && join < end {
            return None;
        }
        let cost = 1 + (budget - fall_left) + (budget - taken_left);
        let h = Hammock {
            branch: pc,
            taken,
            fall,
            join,
            end,
        };
        Some((h, cost))
    }

    /// The path starting at `from`, up to `stop` (the slot it may fall into) or a `ja`.
    fn path(
        &mut self,
        from: usize,
        stop: Option<usize>,
        budget: &mut u32,
        depth: u32,
    ) -> Option<(Vec<Step>, PathEnd)> {
        let len = self.insns.len();
        let mut steps = Vec::new();
        let mut pc = from;
        loop {
            if let Some(stop) = stop {
                if pc == stop {
                    return Some((steps, PathEnd::Falls(pc)));
                }
                if pc > stop {
                    return None;
                }
            }
            let insn = *self.insns.get(pc)?;
            let next = pc + insn.slots();
            if matches!(insn.class(), class::JMP | class::JMP32) && cfg::is_no_op_jump(pc, &insn) {
                // Translated to nothing, but it counts, so that paths stay short in slots.
                *budget = budget.checked_sub(1)?;
                self.edges.push(next);
                pc = next;
            } else if let Some(w) = weight(&insn) {
                *budget = budget.checked_sub(w)?;
                steps.push(Step::Insn(pc));
                self.edges.push(next);
                pc = next;
            } else if is_ja(&insn) {
                let to = target(pc, &insn, len)?;
                self.edges.push(to);
                return Some((steps, PathEnd::Jumps { to, end: next }));
            } else {
                let (h, cost) = self.hammock(pc, *budget, depth + 1)?;
                *budget = budget.checked_sub(cost)?;
                if stop.is_some_and(|s| h.end > s) {
                    return None;
                }
                let (join, end) = (h.join, h.end);
                steps.push(Step::Nested(h));
                if join != end {
                    return Some((steps, PathEnd::Jumps { to: join, end }));
                }
                pc = join;
            }
        }
    }
}

/// The hammocks of `insns` (outermost ones; nested ones are inside them), by branch slot.
pub(crate) fn find(insns: &[Insn]) -> Vec<Hammock> {
    let preds = predecessors(insns);
    let mut parser = Parser {
        insns,
        edges: Vec::new(),
    };
    let mut found = Vec::new();
    let mut pc = 0;
    while pc < insns.len() {
        let insn = insns[pc];
        if is_conditional(pc, &insn) {
            parser.edges.clear();
            if let Some((h, _)) = parser.hammock(pc, MAX_PATH_WEIGHT, 0)
                && only_own_edges(&preds, &mut parser.edges)
            {
                pc = h.end;
                found.push(h);
                continue;
            }
        }
        pc += insn.slots();
    }
    found
}

/// Longest loop (from its head to its backward jump) [`feeds_loop_load_address`] looks
/// through: the search per hammock stays bounded, so a program of many hammocks and loops
/// plans in linear time. A branch in a longer loop is converted as any other.
const MAX_LOOP_SPAN: usize = 512;

/// The backward jumps of `insns` as `(head, latch)`: the jump at `latch` goes to `head`, at
/// or before it. Sorted by head.
pub(crate) fn back_edges(insns: &[Insn]) -> Vec<(usize, usize)> {
    let mut edges: Vec<(usize, usize)> = insns
        .iter()
        .enumerate()
        .filter_map(|(pc, insn)| {
            let head = usize::try_from(cfg::jump_target(pc, insn)?).ok()?;
            (head <= pc).then_some((head, pc))
        })
        .collect();
    edges.sort_unstable();
    edges
}

/// Whether `h` chooses a value that, in the innermost loop around it, goes on to form the
/// address of a load: a binary search's `lo`/`hi`, a selection sort's index of the minimum.
/// There a select puts the load of the next iteration behind the compare of this one (the
/// loop runs at the latency of load + compare + select per step), where a predicted branch
/// lets the processor run ahead; such branches are kept (`docs/performance.md`,
/// "If-conversion"). The loop is the shortest span, of at most [`MAX_LOOP_SPAN`] slots, from
/// a backward jump's target to the jump (`back`, [`back_edges`]) that contains the hammock;
/// the registers `h` writes are followed through register moves and arithmetic, from the
/// hammock's end around the loop back to its branch.
pub(crate) fn feeds_loop_load_address(
    insns: &[Insn],
    back: &[(usize, usize)],
    h: &Hammock,
) -> bool {
    let first = back.partition_point(|&(head, _)| head + MAX_LOOP_SPAN < h.branch);
    let last = back.partition_point(|&(head, _)| head <= h.branch);
    let innermost = back[first..last]
        .iter()
        .filter(|&&(head, latch)| latch + 1 >= h.end && latch - head <= MAX_LOOP_SPAN)
        .min_by_key(|&&(head, latch)| latch - head);
    let Some(&(head, latch)) = innermost else {
        return false;
    };
    let mut tainted = h.written(insns);
    let order = (h.end..=latch).chain(head..h.branch);
    for pc in order {
        let Some(insn) = insns.get(pc) else {
            continue;
        };
        let bit = |r: u8| 1u16 << isa::reg_index(r);
        match insn.class() {
            class::LDX => {
                if tainted & bit(insn.src) != 0 {
                    return true;
                }
                tainted &= !bit(insn.dst);
            }
            class::ALU | class::ALU64 => {
                let by_reg = insn.opc & 0x08 != 0;
                let op = insn.opc & alu::MASK;
                if op == alu::MOV {
                    if by_reg && tainted & bit(insn.src) != 0 {
                        tainted |= bit(insn.dst);
                    } else {
                        tainted &= !bit(insn.dst);
                    }
                } else if by_reg && tainted & bit(insn.src) != 0 {
                    tainted |= bit(insn.dst);
                }
            }
            class::LD if insn.opc == op::LDDW => tainted &= !bit(insn.dst),
            class::JMP if insn.opc == op::CALL => tainted &= !0b11_1111,
            _ => {}
        }
        if tainted == 0 {
            return false;
        }
    }
    false
}

/// Whether every slot the hammock's edges enter is entered by those edges only.
fn only_own_edges(preds: &[u32], edges: &mut [usize]) -> bool {
    edges.sort_unstable();
    edges
        .chunk_by(|a, b| a == b)
        .all(|group| preds.get(group[0]).copied() == Some(group.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::asm::assemble;

    /// The hammocks of `text` as `(branch, join, end)`.
    fn found(text: &str) -> Vec<(usize, usize, usize)> {
        let insns = assemble(text).expect("assembles");
        find(&insns)
            .iter()
            .map(|h| (h.branch, h.join, h.end))
            .collect()
    }

    fn one(text: &str) -> Hammock {
        let insns = assemble(text).expect("assembles");
        let mut all = find(&insns);
        assert_eq!(all.len(), 1, "{text}");
        all.remove(0)
    }

    #[test]
    fn a_triangle_selects_the_moves_it_skips() {
        let h = one("mov r0, 7\njgt r1, 5, +2\nmov r0, 1\nmov r2, 3\nexit");
        assert_eq!(h.branch, 1);
        assert_eq!((h.join, h.end), (4, 4));
        assert_eq!(h.taken, vec![]);
        assert_eq!(h.fall, vec![Step::Insn(2), Step::Insn(3)]);
        let insns = assemble("mov r0, 7\njgt r1, 5, +2\nmov r0, 1\nmov r2, 3\nexit").unwrap();
        assert_eq!(h.written(&insns), 0b101);
    }

    #[test]
    fn choices_that_address_the_next_load_keep_their_branch() {
        // A binary search: `lo`/`hi` (r2/r3) pick the next `mid`, whose element is loaded.
        let search = "\
            mov r2, 0\n\
            mov r3, 64\n\
            mov r4, r2\n\
            add r4, r3\n\
            rsh r4, 1\n\
            mov r5, r4\n\
            lsh r5, 3\n\
            add r5, r1\n\
            ldxdw r6, [r5]\n\
            mov r0, r4\n\
            add r0, 1\n\
            jlt r6, 7, +2\n\
            mov r3, r4\n\
            mov r0, r2\n\
            mov r2, r0\n\
            jlt r2, r3, -14\n\
            exit";
        let insns = assemble(search).unwrap();
        let h = one(search);
        assert_eq!(h.branch, 11);
        assert!(feeds_loop_load_address(&insns, &back_edges(&insns), &h));
        // A running minimum over loaded values: the choice never forms an address.
        let minimum = "\
            mov r0, -1\n\
            mov r2, 0\n\
            mov r3, r2\n\
            lsh r3, 3\n\
            add r3, r1\n\
            ldxdw r4, [r3]\n\
            jge r4, r0, +1\n\
            mov r0, r4\n\
            add r2, 1\n\
            jlt r2, 8, -8\n\
            exit";
        let insns = assemble(minimum).unwrap();
        let h = one(minimum);
        assert!(!feeds_loop_load_address(&insns, &back_edges(&insns), &h));
        // Outside any loop there is no next iteration.
        let straight = "ldxdw r2, [r1]\njgt r2, 5, +1\nmov r1, 8\nldxdw r0, [r1]\nexit";
        let insns = assemble(straight).unwrap();
        assert!(!feeds_loop_load_address(
            &insns,
            &back_edges(&insns),
            &one(straight)
        ));
    }

    #[test]
    fn a_diamond_has_a_path_on_each_side() {
        let h = one("jslt32 r1, r2, +2\nmov r0, 1\nja +2\nlddw r0, 0x100000000\nexit");
        assert_eq!((h.branch, h.join, h.end), (0, 5, 5));
        assert_eq!(h.fall, vec![Step::Insn(1)]);
        assert_eq!(h.taken, vec![Step::Insn(3)]);
        // The taken path may also end in a jump to the join elsewhere.
        let h = one("ja +1\nexit\njset r1, 8, +2\nmov r0, 1\nja -4\nneg r0\nja -6");
        assert_eq!((h.branch, h.join, h.end), (2, 1, 7));
        assert_eq!((h.fall.len(), h.taken.len()), (1, 1));
    }

    #[test]
    fn clangs_backward_triangle_is_found() {
        // `if r6 > 3 goto J; r5 = 0; goto J`, J before the branch and reached from nowhere
        // else (the code before it jumps over it).
        let h = one("mov r0, 0\nja +2\nadd r0, r5\nexit\n\
             mov r5, 1\njgt r6, 3, -4\nmov r5, 0\nja -6");
        assert_eq!((h.branch, h.join, h.end), (5, 2, 8));
        assert_eq!((h.taken, h.fall), (vec![], vec![Step::Insn(6)]));
    }

    #[test]
    fn nested_triangles_are_one_hammock() {
        // `if (r1 <= 5) { r0 = 1; if (r2 <= 7) r0 = 2; }`: both branches jump to the join.
        let h = one("mov r0, 0\njgt r1, 5, +3\nmov r0, 1\njgt r2, 7, +1\nmov r0, 2\nexit");
        assert_eq!((h.branch, h.join, h.end), (1, 5, 5));
        let inner = Hammock {
            branch: 3,
            taken: vec![],
            fall: vec![Step::Insn(4)],
            join: 5,
            end: 5,
        };
        assert_eq!(h.fall, vec![Step::Insn(2), Step::Nested(inner)]);
        // Two triangles in a row are two hammocks.
        assert_eq!(
            found("jgt r1, 5, +1\nmov r0, 1\njgt r2, 7, +1\nmov r0, 2\nexit"),
            vec![(0, 2, 2), (2, 4, 4)]
        );
    }

    #[test]
    fn other_entries_keep_the_branch() {
        // The join is also a loop's back-edge target.
        assert_eq!(
            found("mov r0, 0\njgt r1, 5, +1\nmov r0, 1\nadd r0, 1\njlt r0, 3, -2\nexit"),
            vec![]
        );
        // A path slot is the target of another jump.
        assert_eq!(
            found("jeq r2, 1, +2\njgt r1, 5, +2\nmov r0, 1\nmov r0, 2\nexit"),
            vec![]
        );
        // The join is the program's entry.
        assert_eq!(found("mov r0, 1\njgt r1, 5, -2\nmov r0, 2\nja -4"), vec![]);
        // The join is also a local function's entry.
        assert_eq!(
            found("jgt r1, 5, +1\nmov r0, 1\nexit\ncall local -2\nexit"),
            vec![]
        );
    }

    #[test]
    fn only_register_arithmetic_is_converted() {
        for path in [
            "ldxw r0, [r1]",
            "stw [r10-4], 1",
            "call 1",
            "exit",
            "stxdw [r10-8], r0",
            "ldabsw 0",
        ] {
            assert_eq!(
                found(&format!("jgt r1, 5, +1\n{path}\nexit")),
                vec![],
                "{path}"
            );
        }
        for path in [
            "div r0, r2",
            "mod32 r0, 0",
            "be16 r0",
            "neg32 r0",
            "arsh r0, r3",
            "lddw r0, 5",
            "jeq r0, 0, +0",
        ] {
            let slots = if path.starts_with("lddw") { 2 } else { 1 };
            assert_eq!(
                found(&format!("jgt r1, 5, +{slots}\n{path}\nexit")),
                vec![(0, 1 + slots, 1 + slots)],
                "{path}"
            );
        }
    }

    #[test]
    fn paths_are_short() {
        let path = |n: usize| "add r0, 1\n".repeat(n);
        let at_most = MAX_PATH_WEIGHT as usize;
        let text = |n: usize| format!("jgt r1, 5, +{n}\n{}exit", path(n));
        assert_eq!(found(&text(at_most)).len(), 1);
        assert_eq!(found(&text(at_most + 1)), vec![]);
        // Divisions weigh more; a nested hammock weighs its compare and both its paths.
        assert_eq!(
            found("jgt r1, 5, +3\ndiv r0, r2\ndiv r0, r3\nadd r0, 1\nexit"),
            vec![]
        );
        let nested = |adds: usize| {
            format!(
                "jgt r1, 5, +{}\n{}jgt r2, 7, +1\nmov r0, 2\nexit",
                adds + 2,
                path(adds)
            )
        };
        // `adds` + 1 for the compare + 1 for the nested path: exactly the budget.
        assert_eq!(found(&nested(at_most - 2)).len(), 1);
        // One more: neither is converted (the nested one's join is also the other's target).
        assert_eq!(found(&nested(at_most - 1)), vec![]);
    }

    #[test]
    fn paths_that_do_not_meet_are_not_hammocks() {
        // The paths continue at different slots.
        assert_eq!(
            found("jgt r1, 5, +2\nmov r0, 1\nja +2\nmov r0, 2\nja +1\nexit\nexit"),
            vec![]
        );
        // A branch to itself on one side, a loop on the other.
        assert_eq!(found("jgt r1, 5, -1\nexit"), vec![]);
        // The join inside the hammock.
        assert_eq!(
            found("mov r0, 0\njgt r1, 5, +2\nmov r0, 1\nja -2\nmov r0, 2\nja -4\nexit"),
            vec![]
        );
    }
}
