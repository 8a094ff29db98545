//! Load-time validation (uBPF's `ubpf_load` checks, in uBPF's order and with its texts):
//! turns decoded slots into a [`Program`].
//!
//! The pass follows `docs/validator.md`:
//!
//! 1. the slot count and main's stack usage;
//! 2. per slot, in order: opcode-specific checks (Step A), register sanity (Step B) and the
//!    field filter (Step C);
//! 3. sub-program containment, only when the program makes a local call;
//! 4. the function list with each function's frame size.
//!
//! Which opcodes exist, and how each one's fields may be used, is derived from
//! [`crate::isa::INSN_TABLE`]. Beyond uBPF, `callx` (0x8d) and the legacy packet loads
//! (`ldabs*`, `ldind*`) are accepted.

use alloc::vec;
use alloc::vec::Vec;

use alloc::collections::BTreeMap;

use crate::error::LoadError;
use crate::isa::{
    self, INSN_TABLE, Insn, LOCAL_FUNCTION_STACK_SIZE, MAX_INSTS, Operands, Variant, atomic,
    call_kind, class, op,
};
use crate::program::{Function, Program};

/// What the verifier needs to know about the VM.
pub struct VerifyOptions<'a> {
    /// Whether a helper call `call imm` (src = 0) to this index is acceptable.
    pub helper_exists: &'a dyn Fn(u32) -> bool,
    /// The stack-usage calculator (function start slot → bytes), if one is registered.
    pub stack_usage: Option<&'a dyn Fn(usize) -> i32>,
    /// rbpf's rule for fields its engines ignore, which may then hold anything: the
    /// immediate of a register-source `div`/`mod` (0x3c, 0x3f, 0x9c, 0x9f) and the source
    /// register of `ldabs*` (0x20, 0x28, 0x30, 0x38). uBPF and the kernel (`false`) require 0.
    pub rbpf_ignored_fields: bool,
}

/// The operand form of each opcode byte, from the first table row using it (`None`: unknown).
///
/// Rows sharing an opcode byte share a form, except `call`/`call local` (0x85), which the
/// verifier handles by opcode.
#[cfg(feature = "std")]
fn forms() -> &'static [Option<Operands>; 256] {
    static FORMS: std::sync::OnceLock<[Option<Operands>; 256]> = std::sync::OnceLock::new();
    FORMS.get_or_init(|| core::array::from_fn(|op| first_form(op as u8)))
}

/// The form of the first table row using `opcode`.
fn first_form(opcode: u8) -> Option<Operands> {
    INSN_TABLE
        .iter()
        .find(|spec| spec.opcode == opcode)
        .map(|spec| spec.operands)
}

/// The operand form of `opcode`, or `None` if no instruction uses it.
fn form_of(opcode: u8) -> Option<Operands> {
    #[cfg(feature = "std")]
    return forms()[usize::from(opcode)];
    // Without `std` there is no lazy static: scan the table.
    #[cfg(not(feature = "std"))]
    return first_form(opcode);
}

/// Whether `opcode` is a jump that stays inside its function (`ja`, `ja32`, conditional).
fn is_jump(opcode: u8) -> bool {
    matches!(
        form_of(opcode),
        Some(Operands::Jump | Operands::Jump32 | Operands::CondImm | Operands::CondReg)
    )
}

/// The jump distance of a jump instruction: the immediate for `ja32`, else the offset.
fn jump_distance(insn: &Insn) -> i64 {
    if insn.opc == op::JA32 {
        i64::from(insn.imm)
    } else {
        i64::from(insn.off)
    }
}

/// Allowed values of a field in the field filter (Step C).
#[derive(Clone, Copy)]
enum Allowed {
    /// Only zero.
    Zero,
    /// An inclusive range.
    Range(i64, i64),
    /// Any value of the field's type.
    Any,
    /// Exactly the values the table's rows for this opcode use as discriminators.
    TableOffsets,
    /// Exactly the immediates the table's rows for this opcode use as discriminators.
    TableImmediates,
}

/// Field-filter row of one opcode: allowed dst, src, offset and immediate.
#[derive(Clone, Copy)]
struct Filter {
    dst: Allowed,
    src: Allowed,
    off: Allowed,
    imm: Allowed,
}

/// The field-filter row of `opcode`, computed once per opcode byte.
fn filter_of(opcode: u8) -> Option<Filter> {
    #[cfg(feature = "std")]
    {
        static FILTERS: std::sync::OnceLock<[Option<Filter>; 256]> = std::sync::OnceLock::new();
        FILTERS.get_or_init(|| core::array::from_fn(|op| derive_filter(op as u8)))
            [usize::from(opcode)]
    }
    // Without `std` there is no lazy static: derive it each time.
    #[cfg(not(feature = "std"))]
    derive_filter(opcode)
}

/// The field-filter row of `opcode` (`docs/validator.md`, "Field filter"), derived from its operand form.
fn derive_filter(opcode: u8) -> Option<Filter> {
    use Allowed::{Any, Range, TableImmediates, TableOffsets, Zero};
    const DST_ALU: Allowed = Range(0, 9);
    const REG: Allowed = Range(0, 10);
    let has_offset_variants = INSN_TABLE
        .iter()
        .any(|s| s.opcode == opcode && matches!(s.variant, Variant::Off(_)));
    let alu_off = if has_offset_variants {
        TableOffsets
    } else {
        Zero
    };
    let (dst, src, off, imm) = match form_of(opcode)? {
        Operands::DstImm => (DST_ALU, Zero, alu_off, Any),
        Operands::DstSrc => (DST_ALU, REG, alu_off, Zero),
        Operands::Dst if opcode & 0xf0 == isa::alu::END => (DST_ALU, Zero, Zero, Range(0, 64)),
        Operands::Dst => (DST_ALU, Zero, Zero, Zero),
        Operands::DstImm64 => (REG, Range(0, 6), Zero, Any),
        Operands::DstMem => (REG, REG, Any, Zero),
        Operands::MemImm => (REG, Zero, Any, Any),
        // Both atomic widths accept exactly RFC 9669's ten operations (uBPF is laxer for
        // atomic32 and lets the interpreter ignore stray bits, which no JIT can mirror
        // honestly: docs/sandbox.md, "Atomics").
        Operands::MemSrc if opcode == op::ATOMIC32 || opcode == op::ATOMIC64 => {
            (REG, REG, Any, TableImmediates)
        }
        Operands::MemSrc => (REG, REG, Any, Zero),
        Operands::Jump => (Zero, Zero, Any, Zero),
        Operands::Jump32 => (Zero, Zero, Zero, Any),
        Operands::CondImm => (REG, Zero, Any, Any),
        Operands::CondReg => (REG, REG, Any, Zero),
        Operands::CallImm | Operands::CallLocal => (Zero, Range(0, 1), Zero, Any),
        Operands::CallReg => (REG, Zero, Zero, Zero),
        Operands::None => (Zero, Zero, Zero, Zero),
        // The kernel requires the fields the legacy packet loads do not use to be zero
        // (r0 is their implicit destination).
        Operands::PacketAbs => (Zero, Zero, Zero, Any),
        Operands::PacketInd => (Zero, REG, Zero, Any),
    };
    Some(Filter { dst, src, off, imm })
}

/// Whether `value` is allowed for a field of an instruction with `opcode`.
fn allowed(rule: Allowed, opcode: u8, value: i64) -> bool {
    match rule {
        Allowed::Zero => value == 0,
        Allowed::Range(lo, hi) => (lo..=hi).contains(&value),
        Allowed::Any => true,
        Allowed::TableOffsets => INSN_TABLE.iter().any(|s| {
            s.opcode == opcode && matches!(s.variant, Variant::Off(off) if i64::from(off) == value)
        }),
        Allowed::TableImmediates => INSN_TABLE.iter().any(|s| {
            s.opcode == opcode && matches!(s.variant, Variant::Imm(imm) if i64::from(imm) == value)
        }),
    }
}

/// Step C: uBPF's `ubpf_is_valid_instruction` (dst, src, immediate, offset, in that order).
fn field_filter(insn: &Insn, pc: usize, options: &VerifyOptions<'_>) -> Result<(), LoadError> {
    let opcode = insn.opc;
    let imm_ignored = options.rbpf_ignored_fields
        // div32/div64/mod32/mod64 with a register source.
        && matches!(opcode, 0x3c | 0x3f | 0x9c | 0x9f);
    let Some(filter) = filter_of(opcode) else {
        return Err(LoadError::FilterOpcode { pc, opcode });
    };
    if !allowed(filter.dst, opcode, i64::from(insn.dst)) {
        return Err(LoadError::FilterDestination {
            pc,
            opcode,
            value: insn.dst,
        });
    }
    let src_ignored = options.rbpf_ignored_fields && matches!(opcode, 0x20 | 0x28 | 0x30 | 0x38);
    if !src_ignored && !allowed(filter.src, opcode, i64::from(insn.src)) {
        return Err(LoadError::FilterSource {
            pc,
            opcode,
            value: insn.src,
        });
    }
    if !imm_ignored && !allowed(filter.imm, opcode, i64::from(insn.imm)) {
        return Err(LoadError::FilterImmediate {
            pc,
            opcode,
            value: insn.imm,
        });
    }
    if !allowed(filter.off, opcode, i64::from(insn.off)) {
        return Err(LoadError::FilterOffset {
            pc,
            opcode,
            value: insn.off,
        });
    }
    Ok(())
}

/// Stack usage of the function starting at `pc` (`docs/validator.md`, "Stack usage"): the calculator's result truncated to
/// 16 bits (0 included), or 256 without a calculator; it must be a multiple of 16.
fn stack_usage_at(options: &VerifyOptions<'_>, pc: usize) -> Result<u16, LoadError> {
    let usage = match options.stack_usage {
        // uBPF stores the calculator's `int` in a `uint16_t`: truncation is the semantics.
        Some(calculator) => calculator(pc) as u16,
        None => LOCAL_FUNCTION_STACK_SIZE,
    };
    if !usage.is_multiple_of(16) {
        return Err(LoadError::ImproperStackSize {
            pc,
            size: i64::from(usage),
        });
    }
    Ok(usage)
}

/// Step A for a jump: self-loops, targets outside the program, targets inside an `lddw`.
fn check_jump(slots: &[Insn], insn: &Insn, pc: usize) -> Result<(), LoadError> {
    let distance = jump_distance(insn);
    if distance == -1 {
        return Err(LoadError::InfiniteLoop { pc });
    }
    let target = slot_target(pc, distance, slots.len()).ok_or(LoadError::JumpOutOfBounds { pc })?;
    if slots[target].opc == 0 {
        return Err(LoadError::JumpToMiddleOfLddw { pc });
    }
    Ok(())
}

/// `pc + 1 + distance` if it is a slot index of a program of `len` slots.
fn slot_target(pc: usize, distance: i64, len: usize) -> Option<usize> {
    let pc = i64::try_from(pc).ok()?;
    let target = pc.checked_add(1)?.checked_add(distance)?;
    usize::try_from(target).ok().filter(|&t| t < len)
}

/// Step A for an atomic: the operation in `imm & 0xf0`, with the fetch bit where required.
///
/// A fetching operation other than CMPXCHG writes the old value into `src`, so `src` may not
/// be r10, which is read-only (librbpf is stricter than uBPF here: the engines rely on r10
/// only moving at local calls; docs/validator.md, "Step A").
fn check_atomic(insn: &Insn, pc: usize) -> Result<(), LoadError> {
    let operation = insn.imm & 0xf0;
    let fetch = insn.imm & atomic::FETCH != 0;
    if fetch && insn.imm != atomic::CMPXCHG && insn.src == 10 {
        return Err(LoadError::InvalidSourceRegister { pc });
    }
    match operation {
        atomic::ADD | atomic::OR | atomic::AND | atomic::XOR => Ok(()),
        o if o == atomic::XCHG & !atomic::FETCH || o == atomic::CMPXCHG & !atomic::FETCH => {
            if fetch {
                Ok(())
            } else {
                Err(LoadError::InvalidAtomic { pc })
            }
        }
        _ if insn.opc == op::ATOMIC32 => Err(LoadError::InvalidAtomic32 {
            pc,
            opcode: insn.opc,
        }),
        _ => Err(LoadError::InvalidAtomic { pc }),
    }
}

/// Whether Step B treats `insn` as a store (allowed to name r10 as dst): ST, STX (including
/// atomics) and, as in uBPF, `mov64` imm/reg.
fn counts_as_store(opcode: u8) -> bool {
    let cls = opcode & class::MASK;
    cls == class::ST || cls == class::STX || opcode == 0xb7 || opcode == 0xbf
}

/// Validates `slots` and builds the program.
///
/// The checks, their order and the error texts are uBPF's (`docs/validator.md`); the
/// first failure wins. The empty program is valid here (the VM applies the read-only quirk).
pub fn verify(slots: Vec<Insn>, options: &VerifyOptions<'_>) -> Result<Program, LoadError> {
    let len = slots.len();
    if len >= MAX_INSTS {
        return Err(LoadError::TooManyInstructions { max: MAX_INSTS });
    }
    // Function start → stack usage, filled for main now and for each local-call target when
    // the validation first meets it.
    let mut usage: BTreeMap<usize, u16> = BTreeMap::new();
    usage.insert(0, stack_usage_at(options, 0)?);
    let mut has_local_call = false;

    let mut i = 0;
    while i < len {
        let insn = slots[i];
        let pc = i;

        // Step A: opcode-specific checks.
        match insn.opc {
            0x84 if insn.src != 0 => return Err(LoadError::InvalidNegSource { pc }),
            0x87 if insn.src != 0 => return Err(LoadError::InvalidNeg64Source { pc }),
            0xd4 | 0xdc | 0xd7 if !matches!(insn.imm, 16 | 32 | 64) => {
                return Err(LoadError::InvalidEndianImmediate { pc });
            }
            op::LDDW => {
                if insn.src != 0 {
                    return Err(LoadError::InvalidLddwSource { pc });
                }
                let second = slots
                    .get(pc + 1)
                    .filter(|next| next.opc == 0)
                    .ok_or(LoadError::IncompleteLddw { pc })?;
                if second.dst != 0 || second.src != 0 || second.off != 0 {
                    return Err(LoadError::InvalidLddwSecondHalf { pc: pc + 1 });
                }
                // The second slot gets no other checks; Steps B and C report `i` = pc + 1.
                i += 1;
            }
            op::CALL => match insn.src {
                call_kind::HELPER => {
                    if insn.imm < 0 {
                        return Err(LoadError::InvalidCallImmediate { pc });
                    }
                    let index = insn.imm as u32;
                    if !(options.helper_exists)(index) {
                        return Err(LoadError::NonexistentFunction { pc, index });
                    }
                }
                call_kind::LOCAL => {
                    let target = slot_target(pc, i64::from(insn.imm), len).ok_or(
                        LoadError::LocalCallOutOfBounds {
                            pc,
                            target: (pc as i64) + 1 + i64::from(insn.imm),
                        },
                    )?;
                    if let alloc::collections::btree_map::Entry::Vacant(entry) = usage.entry(target)
                    {
                        entry.insert(stack_usage_at(options, target)?);
                    }
                    has_local_call = true;
                }
                call_kind::BTF => return Err(LoadError::BtfCallUnsupported { pc }),
                _ => return Err(LoadError::InvalidCallType { pc }),
            },
            op::ATOMIC64 | op::ATOMIC32 => check_atomic(&insn, pc)?,
            opcode if is_jump(opcode) => check_jump(&slots, &insn, pc)?,
            opcode if form_of(opcode).is_none() => {
                return Err(LoadError::UnknownOpcode { pc, opcode });
            }
            _ => {}
        }

        // Step B: register sanity (for lddw, `i` already names the second slot).
        if insn.src > 10 {
            return Err(LoadError::InvalidSourceRegister { pc: i });
        }
        let dst_ok = insn.dst <= 9
            || (insn.dst == 10 && (counts_as_store(insn.opc) || insn.opc == op::CALLX));
        if !dst_ok {
            return Err(LoadError::InvalidDestinationRegister { pc: i });
        }

        // Step C: the field filter.
        field_filter(&insn, i, options)?;

        i += 1;
    }

    if has_local_call {
        check_containment(&slots, usage.keys().copied())?;
    }

    let starts: Vec<(usize, u16)> = usage.into_iter().collect();
    let functions = starts
        .iter()
        .enumerate()
        .map(|(n, &(start, stack_usage))| Function {
            start,
            end: starts.get(n + 1).map_or(len, |&(next, _)| next),
            stack_usage,
        })
        .collect();
    let functions: Vec<Function> = functions;
    Ok(Program {
        stack_reach: stack_reach(&slots, &functions),
        calls_helpers: crate::program::calls_helpers(&slots),
        insns: slots,
        functions,
        data_sections: Vec::new(),
    })
}

/// How many bytes below the top of the stack any run of the program can touch, for the
/// engines' stack clearing (docs/sandbox.md, "Stack"): `STACK_SIZE` unless r10 is only ever
/// the base register of loads, stores and atomics with constant offsets. Then a function
/// reached with r10 lowered by `c` bytes (the stack usage of each caller on the way, over at
/// most `MAX_CALL_DEPTH` nested local calls, recursion included) touches bytes down to
/// `c - off` for its most negative offset `off`; the result is the maximum, capped at
/// `STACK_SIZE`.
pub fn stack_reach(insns: &[Insn], functions: &[Function]) -> usize {
    let full = isa::STACK_SIZE;
    // The most negative r10 offset per function, and the local calls (caller, callee start).
    let mut lowest = vec![0i64; functions.len()];
    let mut calls: Vec<(usize, usize)> = Vec::new();
    let function_of = |pc: usize| functions.partition_point(|f| f.start <= pc).checked_sub(1);
    let mut pc = 0;
    while pc < insns.len() {
        let insn = insns[pc];
        let cls = insn.opc & class::MASK;
        let is_memory = matches!(cls, class::LDX | class::ST | class::STX);
        // The register used as the access's base, and whether r10 appears anywhere else.
        let base = match cls {
            class::LDX => Some(insn.src),
            class::ST | class::STX => Some(insn.dst),
            _ => None,
        };
        let r10_elsewhere = if is_memory {
            // stx/atomics read src as a value; ldx writes dst.
            (cls == class::STX && insn.src == 10) || (cls == class::LDX && insn.dst == 10)
        } else {
            let uses_src = insn.opc & crate::isa::source::MASK == crate::isa::source::X
                && !(insn.opc == op::CALL || insn.opc == op::LDDW);
            insn.dst == 10 || (uses_src && insn.src == 10)
        };
        if r10_elsewhere {
            return full;
        }
        if base == Some(10)
            && let Some(f) = function_of(pc)
        {
            lowest[f] = lowest[f].min(i64::from(insn.off));
        }
        if insn.opc == op::CALL
            && insn.src == call_kind::LOCAL
            && let (Some(f), Some(target)) = (
                function_of(pc),
                slot_target(pc, i64::from(insn.imm), insns.len()),
            )
            && let Ok(g) = functions.binary_search_by_key(&target, |f| f.start)
        {
            calls.push((f, g));
        }
        pc += insn.slots();
    }
    // depth[f]: the deepest r10 lowering with which f can run (None: not reached yet).
    let mut depth: Vec<Option<i64>> = vec![None; functions.len()];
    if functions.is_empty() {
        return usize::try_from(-lowest.first().copied().unwrap_or(0)).unwrap_or(0);
    }
    depth[0] = Some(0);
    let mut frontier = depth.clone();
    for _ in 0..crate::isa::MAX_CALL_DEPTH {
        let mut next: Vec<Option<i64>> = vec![None; functions.len()];
        for &(f, g) in &calls {
            if let Some(c) = frontier[f] {
                let c = (c + i64::from(functions[f].stack_usage)).min(full as i64);
                next[g] = Some(next[g].map_or(c, |d: i64| d.max(c)));
            }
        }
        for (d, n) in depth.iter_mut().zip(&next) {
            if let Some(n) = *n {
                *d = Some(d.map_or(n, |d| d.max(n)));
            }
        }
        if next.iter().all(Option::is_none) {
            break;
        }
        frontier = next;
    }
    let reach = depth
        .iter()
        .zip(&lowest)
        .filter_map(|(d, &low)| d.map(|d| d - low))
        .max()
        .unwrap_or(0);
    usize::try_from(reach).unwrap_or(0).min(full)
}

/// `docs/validator.md`, "Sub-programs": every jump stays inside its sub-program, and every sub-program ends with `exit` or
/// has `ja`/`ja32` as its second-to-last instruction.
fn check_containment(slots: &[Insn], starts: impl Iterator<Item = usize>) -> Result<(), LoadError> {
    let starts: Vec<usize> = starts.collect();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(slots.len());
        for (pc, insn) in slots.iter().enumerate().take(end).skip(start) {
            if !is_jump(insn.opc) {
                continue;
            }
            let inside = i64::try_from(pc)
                .ok()
                .and_then(|p| p.checked_add(1)?.checked_add(jump_distance(insn)))
                .and_then(|t| usize::try_from(t).ok())
                .is_some_and(|t| (start..end).contains(&t));
            if !inside {
                return Err(LoadError::JumpOutOfBounds { pc });
            }
        }
        let last = end - 1;
        let ends_with_exit = slots[last].opc == op::EXIT;
        let ends_with_jump = end >= start + 2 && matches!(slots[end - 2].opc, op::JA | op::JA32);
        if !ends_with_exit && !ends_with_jump {
            return Err(LoadError::SubProgramEnd { pc: last });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn::new(opc, dst, src, off, imm)
    }

    fn exit() -> Insn {
        ins(op::EXIT, 0, 0, 0, 0)
    }

    fn mov(dst: u8, imm: i32) -> Insn {
        ins(0xb7, dst, 0, 0, imm)
    }

    /// Verifies with helpers 0..=5 registered and no calculator.
    fn check(slots: &[Insn]) -> Result<Program, LoadError> {
        let exists = |i: u32| i <= 5;
        let options = VerifyOptions {
            helper_exists: &exists,
            stack_usage: None,
            rbpf_ignored_fields: false,
        };
        verify(slots.to_vec(), &options)
    }

    fn message(slots: &[Insn]) -> String {
        match check(slots) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_program_verifies() {
        let program = check(&[]).expect("empty program");
        assert!(program.is_empty());
        assert_eq!(program.functions.len(), 1);
    }

    #[test]
    fn too_many_instructions() {
        let mut slots = vec![mov(0, 1); MAX_INSTS];
        slots.push(exit());
        assert_eq!(message(&slots), "too many instructions (max 65536)");
        let mut slots = vec![mov(0, 1); MAX_INSTS - 2];
        slots.push(exit());
        assert_eq!(message(&slots), "ok");
    }

    #[test]
    fn unknown_opcodes() {
        assert_eq!(
            message(&[ins(0x8f, 0, 0, 0, 0), exit()]),
            "unknown opcode 0x8f at PC 0"
        );
        assert_eq!(
            message(&[mov(0, 0), ins(0x00, 0, 0, 0, 0), exit()]),
            "unknown opcode 0x00 at PC 1"
        );
        // The ABS/IND modes exist only in class LD (0x21 is LDX|ABS, 0x42 ST|IND), and class
        // LD has no MEM mode.
        for opcode in [0x21u8, 0x42, 0x60, 0x80] {
            assert_eq!(
                message(&[ins(opcode, 0, 0, 0, 0), exit()]),
                format!("unknown opcode {opcode:#04x} at PC 0")
            );
        }
    }

    #[test]
    fn legacy_packet_loads_are_accepted_with_reserved_fields_zero() {
        for opcode in [0x20u8, 0x28, 0x30, 0x38] {
            assert_eq!(message(&[ins(opcode, 0, 0, 0, -7), exit()]), "ok");
            let byte = format!("{opcode:2X}");
            assert_eq!(
                message(&[ins(opcode, 1, 0, 0, 0), exit()]),
                format!("Invalid destination register 1 for opcode {byte}.")
            );
            assert_eq!(
                message(&[ins(opcode, 0, 2, 0, 0), exit()]),
                format!("Invalid source register 2 for opcode {byte}.")
            );
            assert_eq!(
                message(&[ins(opcode, 0, 0, 4, 0), exit()]),
                format!("Invalid offset value 4 for opcode {byte}.")
            );
        }
        for opcode in [0x40u8, 0x48, 0x50, 0x58] {
            for src in 0..=10 {
                assert_eq!(message(&[ins(opcode, 0, src, 0, 1 << 20), exit()]), "ok");
            }
            let byte = format!("{opcode:2X}");
            assert_eq!(
                message(&[ins(opcode, 9, 1, 0, 0), exit()]),
                format!("Invalid destination register 9 for opcode {byte}.")
            );
            assert_eq!(
                message(&[ins(opcode, 0, 1, -1, 0), exit()]),
                format!("Invalid offset value -1 for opcode {byte}.")
            );
            // Step B comes first for registers outside the file.
            assert_eq!(
                message(&[ins(opcode, 0, 11, 0, 0), exit()]),
                "invalid source register at PC 0"
            );
            assert_eq!(
                message(&[ins(opcode, 10, 1, 0, 0), exit()]),
                "invalid destination register at PC 0"
            );
        }
        // One slot each: a jump may land right after one.
        assert_eq!(
            message(&[ins(0x05, 0, 0, 1, 0), ins(0x20, 0, 0, 0, 0), exit()]),
            "ok"
        );
    }

    #[test]
    fn ja32_and_callx_are_accepted() {
        assert_eq!(message(&[ins(op::JA32, 0, 0, 0, 0), exit()]), "ok");
        assert_eq!(
            message(&[mov(2, 1), ins(op::CALLX, 2, 0, 0, 0), exit()]),
            "ok"
        );
        assert_eq!(
            message(&[ins(op::CALLX, 2, 0, 0, 1), exit()]),
            "Invalid immediate value 1 for opcode 8D."
        );
        assert_eq!(
            message(&[ins(op::CALLX, 2, 1, 0, 0), exit()]),
            "Invalid source register 1 for opcode 8D."
        );
        assert_eq!(
            message(&[ins(op::CALLX, 11, 0, 0, 0), exit()]),
            "invalid destination register at PC 0"
        );
    }

    #[test]
    fn step_a_messages() {
        assert_eq!(
            message(&[ins(0x84, 0, 1, 0, 0), exit()]),
            "invalid src field for neg op at PC 0"
        );
        assert_eq!(
            message(&[ins(0x87, 0, 1, 0, 0), exit()]),
            "invalid src field for neg64 op at PC 0"
        );
        // err-endian-size
        assert_eq!(
            message(&[ins(0xdc, 0, 0, 0, 0x30), exit()]),
            "invalid endian immediate at PC 0"
        );
        // err-lddw-invalid-src
        assert_eq!(
            message(&[ins(0x18, 1, 1, 0, 0), ins(0, 0, 0, 0, 0), exit()]),
            "invalid source register for LDDW at PC 0"
        );
        // err-incomplete-lddw
        assert_eq!(
            message(&[ins(0x18, 0, 0, 0, 1), exit()]),
            "incomplete lddw at PC 0"
        );
        assert_eq!(message(&[ins(0x18, 0, 0, 0, 1)]), "incomplete lddw at PC 0");
        // err-lddw-second-half-invalid*
        for (dst, src, off) in [
            (1, 0, 0),
            (0, 1, 0),
            (0, 0, 1),
            (1, 0, 1),
            (0, 1, 1),
            (1, 1, 1),
        ] {
            assert_eq!(
                message(&[ins(0x18, 0, 0, 0, 1), ins(0, dst, src, off, 7), exit()]),
                "invalid lddw second half at PC 1"
            );
        }
        // err-infinite-loop
        assert_eq!(
            message(&[ins(0x05, 0, 0, -1, 0), exit()]),
            "infinite loop at PC 0"
        );
        assert_eq!(
            message(&[ins(0x06, 0, 0, 0, -1), exit()]),
            "infinite loop at PC 0"
        );
        // err-jmp-out
        assert_eq!(
            message(&[ins(0x05, 0, 0, 2, 0), exit()]),
            "jump out of bounds at PC 0"
        );
        assert_eq!(
            message(&[mov(0, 0), ins(0x15, 0, 0, -3, 0), exit()]),
            "jump out of bounds at PC 1"
        );
        // err-jmp-lddw
        assert_eq!(
            message(&[
                ins(0x05, 0, 0, 1, 0),
                ins(0x18, 0, 0, 0, 1),
                ins(0, 0, 0, 0, 2),
                exit()
            ]),
            "jump to middle of lddw at PC 0"
        );
        assert_eq!(
            message(&[ins(0x85, 0, 0, 0, -1), exit()]),
            "invalid call immediate at PC 0"
        );
        // err-call-unreg and err-call-bad-imm
        let args: Vec<Insn> = (1..=5).map(|r| mov(r, i32::from(r))).collect();
        for index in [63, 64] {
            let mut slots = args.clone();
            slots.extend([ins(0x85, 0, 0, 0, index), exit()]);
            assert_eq!(
                message(&slots),
                format!("call to nonexistent function {index} at PC 5")
            );
        }
        assert_eq!(
            message(&[ins(0x85, 0, 1, 0, 5), exit()]),
            "call to local function (at PC 0) is out of bounds (target: 6)"
        );
        assert_eq!(
            message(&[ins(0x85, 0, 1, 0, -2), exit()]),
            "call to local function (at PC 0) is out of bounds (target: -1)"
        );
        assert_eq!(
            message(&[ins(0x85, 0, 2, 0, 1), exit()]),
            "call to external function by BTF ID (at PC 0) is not supported"
        );
        assert_eq!(
            message(&[ins(0x85, 0, 3, 0, 1), exit()]),
            "call (at PC 0) contains invalid type value"
        );
        assert_eq!(
            message(&[ins(0xdb, 10, 1, -8, 0xe0), exit()]),
            "invalid atomic operation at PC 0"
        );
        assert_eq!(
            message(&[ins(0xdb, 10, 1, -8, 0x30), exit()]),
            "invalid atomic operation at PC 0"
        );
        assert_eq!(
            message(&[ins(0xc3, 10, 1, -8, 0x30), exit()]),
            "invalid atomic operation with opcode 0xc3 at PC 0"
        );
        // Stray bits next to a valid operation are refused for both widths by the field
        // filter, in its uBPF-style text.
        assert_eq!(
            message(&[ins(0xc3, 10, 1, -8, 0x02), exit()]),
            "Invalid immediate value 2 for opcode C3."
        );
        assert_eq!(
            message(&[ins(0xdb, 10, 1, -8, 0x03), exit()]),
            "Invalid immediate value 3 for opcode DB."
        );
        // A fetch into r10 would move the stack pointer (fuzzer finding: the JIT, which
        // relies on r10 moving only at calls, then stored to the moved address unchecked).
        for (opc, imm) in [(0xdb, 0xa1), (0xc3, 0x01), (0xdb, 0xe1)] {
            assert_eq!(
                message(&[ins(opc, 10, 10, -8, imm), exit()]),
                "invalid source register at PC 0"
            );
        }
        // Without the fetch bit, and for CMPXCHG (which writes r0), r10 as src is a value.
        assert_eq!(message(&[ins(0xdb, 10, 10, -8, 0xa0), exit()]), "ok");
        assert_eq!(message(&[ins(0xdb, 10, 10, -8, 0xf1), exit()]), "ok");
    }

    #[test]
    fn atomics_accept_exactly_rfc9669_operations() {
        const VALID: [i32; 10] = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];
        for opc in [0xc3u8, 0xdb] {
            for imm in 0..=0x1ff {
                let ok = message(&[ins(opc, 10, 1, -8, imm), exit()]) == "ok";
                assert_eq!(ok, VALID.contains(&imm), "opcode {opc:#x} imm {imm:#x}");
            }
        }
    }

    #[test]
    fn step_b_messages() {
        // err-invalid-reg-dst (mov32) and err-invalid-reg-src
        assert_eq!(
            message(&[ins(0xb4, 11, 0, 0, 1), exit()]),
            "invalid destination register at PC 0"
        );
        assert_eq!(
            message(&[ins(0xbf, 0, 11, 0, 0), exit()]),
            "invalid source register at PC 0"
        );
        assert_eq!(
            message(&[ins(0xb4, 10, 0, 0, 1), exit()]),
            "invalid destination register at PC 0"
        );
        // lddw reports the second slot.
        assert_eq!(
            message(&[ins(0x18, 11, 0, 0, 1), ins(0, 0, 0, 0, 0), exit()]),
            "invalid destination register at PC 1"
        );
        assert_eq!(
            message(&[ins(0x18, 10, 0, 0, 1), ins(0, 0, 0, 0, 0), exit()]),
            "invalid destination register at PC 1"
        );
        // Stores may name r10.
        assert_eq!(message(&[ins(0x72, 10, 0, -1, 0), mov(0, 0), exit()]), "ok");
        // ldx to r10 is refused by Step B.
        assert_eq!(
            message(&[ins(0x61, 10, 1, 0, 0), exit()]),
            "invalid destination register at PC 0"
        );
    }

    #[test]
    fn step_c_verified_examples() {
        assert_eq!(
            message(&[mov(10, 1), exit()]),
            "Invalid destination register 10 for opcode B7."
        );
        assert_eq!(
            message(&[ins(0x07, 1, 1, 0, 1), exit()]),
            "Invalid source register 1 for opcode  7."
        );
        assert_eq!(
            message(&[ins(0x0f, 1, 2, 0, 7), exit()]),
            "Invalid immediate value 7 for opcode  F."
        );
        assert_eq!(
            message(&[ins(0x95, 1, 0, 0, 0)]),
            "Invalid destination register 1 for opcode 95."
        );
        assert_eq!(
            message(&[ins(0xdb, 10, 1, -8, 0x42), exit()]),
            "Invalid immediate value 66 for opcode DB."
        );
        assert_eq!(
            message(&[ins(0x07, 1, 0, 3, 1), exit()]),
            "Invalid offset value 3 for opcode  7."
        );
        // Signed division and movsx offsets are accepted; others are not.
        assert_eq!(message(&[ins(0x3f, 1, 2, 1, 0), mov(0, 0), exit()]), "ok");
        assert_eq!(
            message(&[ins(0x3f, 1, 2, 2, 0), exit()]),
            "Invalid offset value 2 for opcode 3F."
        );
        assert_eq!(message(&[ins(0xbf, 1, 2, 32, 0), mov(0, 0), exit()]), "ok");
        assert_eq!(
            message(&[ins(0xbc, 1, 2, 32, 0), exit()]),
            "Invalid offset value 32 for opcode BC."
        );
        assert_eq!(
            message(&[ins(0xc3, 10, 1, 0, 0x100), exit()]),
            "Invalid immediate value 256 for opcode C3."
        );
        assert_eq!(
            message(&[ins(0x05, 1, 0, 0, 0), exit()]),
            "Invalid destination register 1 for opcode  5."
        );
    }

    #[test]
    fn sub_program_containment() {
        // err-call0: main's sub-program [0, 2) ends in a call.
        assert_eq!(
            message(&[mov(0, 1), ins(0x85, 0, 1, 0, 0), exit()]),
            "sub-program does not end with EXIT or unconditional jump at PC 1"
        );
        // err-call-invalid-jump: the callee jumps back into main.
        assert_eq!(
            message(&[
                mov(0, 0),
                ins(0x85, 0, 1, 0, 1),
                exit(),
                mov(0, 1),
                ins(0x05, 0, 0, -4, 0),
                exit(),
            ]),
            "jump out of bounds at PC 4"
        );
        // The second-to-last `ja` rule.
        assert_eq!(
            message(&[
                ins(0x85, 0, 1, 0, 2),
                ins(0x05, 0, 0, 0, 0),
                mov(0, 0),
                exit()
            ]),
            "ok"
        );
    }

    #[test]
    fn functions_and_stack_usage() {
        let slots = [mov(0, 0), ins(0x85, 0, 1, 0, 1), exit(), mov(0, 1), exit()];
        let program = check(&slots).expect("valid");
        assert_eq!(
            program.functions,
            vec![
                Function {
                    start: 0,
                    end: 3,
                    stack_usage: 256
                },
                Function {
                    start: 3,
                    end: 5,
                    stack_usage: 256
                },
            ]
        );
        let exists = |_: u32| false;
        let calc = |pc: usize| if pc == 0 { 32 } else { 0 };
        let options = VerifyOptions {
            helper_exists: &exists,
            stack_usage: Some(&calc),
            rbpf_ignored_fields: false,
        };
        let program = verify(slots.to_vec(), &options).expect("valid");
        assert_eq!(program.functions[0].stack_usage, 32);
        assert_eq!(program.functions[1].stack_usage, 0);

        let calc17 = |_: usize| 17;
        let options = VerifyOptions {
            helper_exists: &exists,
            stack_usage: Some(&calc17),
            rbpf_ignored_fields: false,
        };
        assert_eq!(
            verify(Vec::new(), &options)
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            "local function (at PC 0) has improperly sized stack use (17)"
        );
        let calc_callee = |pc: usize| if pc == 3 { 24 } else { 16 };
        let options = VerifyOptions {
            helper_exists: &exists,
            stack_usage: Some(&calc_callee),
            rbpf_ignored_fields: false,
        };
        assert_eq!(
            verify(slots.to_vec(), &options)
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            "local function (at PC 3) has improperly sized stack use (24)"
        );
    }

    #[test]
    fn rbpf_leaves_the_source_of_ldabs_unchecked() {
        // ldabsdw 0x33 with src = 1 (rbpf's own tests build it so), then exit.
        let slots = vec![Insn::new(0x38, 0, 1, 0, 0x33), Insn::new(0x95, 0, 0, 0, 0)];
        let exists = |_: u32| false;
        let options = |rbpf| VerifyOptions {
            helper_exists: &exists,
            stack_usage: None,
            rbpf_ignored_fields: rbpf,
        };
        assert!(verify(slots.clone(), &options(true)).is_ok());
        assert_eq!(
            verify(slots.clone(), &options(false))
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            "Invalid source register 1 for opcode 38."
        );
        // ldindb keeps its source register check either way (r11 does not exist).
        let ind = vec![Insn::new(0x50, 0, 11, 0, 0), Insn::new(0x95, 0, 0, 0, 0)];
        assert!(verify(ind, &options(true)).is_err());
    }
}
