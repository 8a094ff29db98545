//! Differential testing: random valid programs (fixed-seed PRNG, no dependencies) run through
//! the interpreter and the JIT must give the same r0, the same error, and the same memory.
//! The interpreter runs twice: its pre-decoded fast path and its per-instruction loop.
//!
//! Two suites:
//! * `alu_sweep`: every ALU operation (32 and 64 bits, imm and register forms, signed
//!   division/modulo and sign-extending moves included) over every pair of scratch registers,
//!   starting from edge values (0, 1, -1, INT_MIN, …);
//! * `random_programs`: ALU, loads/stores/atomics within the stack and the input memory,
//!   legacy packet loads (`ldabs*`/`ldind*`, in and out of the packet, both flavours),
//!   forward branches (JMP and JMP32), pure helper calls, with division by zero and INT_MIN
//!   cases made likely by the value pool;
//! * `random_programs_with_local_calls`: the same bodies split into local functions that
//!   call later ones (frames, r6–r9 restore, r10 lowered by the caller's frame);
//! * `random_programs_with_small_limits`: the same bodies plus helper calls with side effects
//!   and unwind calls, under an instruction limit smaller than the run, so that the limit
//!   hits inside blocks: result, error (with its PC) and memory must still agree.

use rbpf::error::ExecError;
use rbpf::isa::Insn;
use rbpf::{JitTier, Vm};
mod common;

use common::error_key;
use common::rng::Rng;
use rbpf::jit::JitMode;

/// Registers programs may freely overwrite (r1 holds mem, r10 the frame pointer).
const SCRATCH: [u8; 9] = [0, 2, 3, 4, 5, 6, 7, 8, 9];
/// Edge values that exercise division by zero, INT_MIN / -1, sign and width boundaries.
const POOL: [i64; 12] = [
    0,
    1,
    -1,
    2,
    i64::MIN,
    i64::MAX,
    i32::MIN as i64,
    i32::MAX as i64,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0001,
    -7,
];
const IMM_POOL: [i32; 8] = [0, 1, -1, 2, i32::MIN, i32::MAX, 7, -7];
/// Bytes of input memory (a multiple of 8).
const MEM_LEN: usize = 64;
/// Bytes of stack the programs use (zeroed by their prologue).
const STACK_USED: i16 = 128;

fn lddw(dst: u8, value: i64) -> [Insn; 2] {
    [
        Insn::new(0x18, dst, 0, 0, value as u32 as i32),
        Insn::new(0, 0, 0, 0, (value as u64 >> 32) as u32 as i32),
    ]
}

fn value(rng: &mut Rng) -> i64 {
    if rng.chance(70) {
        rng.pick(&POOL)
    } else {
        rng.next() as i64
    }
}

fn imm(rng: &mut Rng) -> i32 {
    if rng.chance(60) {
        rng.pick(&IMM_POOL)
    } else {
        rng.next() as i32
    }
}

/// One ALU form: (opcode without class/source bits, offset).
const ALU_FORMS: [(u8, i16); 17] = [
    (0x00, 0),  // add
    (0x10, 0),  // sub
    (0x20, 0),  // mul
    (0x30, 0),  // div
    (0x30, 1),  // sdiv
    (0x40, 0),  // or
    (0x50, 0),  // and
    (0x60, 0),  // lsh
    (0x70, 0),  // rsh
    (0x90, 0),  // mod
    (0x90, 1),  // smod
    (0xa0, 0),  // xor
    (0xb0, 0),  // mov
    (0xc0, 0),  // arsh
    (0xb0, 8),  // movsx8
    (0xb0, 16), // movsx16
    (0xb0, 32), // movsx32 (64-bit only)
];

/// An ALU instruction of `form`, or `None` when the combination does not exist.
fn alu(form: (u8, i16), is64: bool, by_reg: bool, dst: u8, src: u8, imm: i32) -> Option<Insn> {
    let (op, off) = form;
    let is_movsx = op == 0xb0 && off != 0;
    if is_movsx && (!by_reg || (!is64 && off == 32)) {
        return None;
    }
    let class = if is64 { 0x07 } else { 0x04 };
    if by_reg {
        Some(Insn::new(op | 0x08 | class, dst, src, off, 0))
    } else {
        // Division by an immediate zero is rejected at load time.
        let imm = if matches!(op, 0x30 | 0x90) && imm == 0 {
            3
        } else {
            imm
        };
        Some(Insn::new(op | class, dst, 0, off, imm))
    }
}

/// Folds every scratch register and the used stack into r0, then exits.
fn epilogue(out: &mut Vec<Insn>) {
    for &r in &SCRATCH[1..] {
        out.push(Insn::new(0x27, 0, 0, 0, 31)); // mul r0, 31
        out.push(Insn::new(0x0f, 0, r, 0, 0)); // add r0, r
    }
    for k in 1..=(STACK_USED / 8) {
        out.push(Insn::new(0x79, 2, 10, -8 * k, 0)); // ldxdw r2, [r10-8k]
        out.push(Insn::new(0x27, 0, 0, 0, 31));
        out.push(Insn::new(0xaf, 0, 2, 0, 0)); // xor r0, r2
    }
    out.push(Insn::new(0x95, 0, 0, 0, 0));
}

/// Zeroes the used stack and gives every scratch register a value.
fn prologue(rng: &mut Rng, out: &mut Vec<Insn>) {
    for k in 1..=(STACK_USED / 8) {
        out.push(Insn::new(0x7a, 10, 0, -8 * k, 0)); // stdw [r10-8k], 0
    }
    for &r in &SCRATCH {
        out.extend(lddw(r, value(rng)));
    }
}

/// Outcome of one engine: r0 or the error (addresses removed), and the memory afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    result: Result<u64, String>,
    mem: Vec<u8>,
}

/// Loads `insns` and runs them through the interpreter and the JIT in `mode`; returns a
/// description of any disagreement.
fn compare(insns: &[Insn], mem: &[u8], mode: JitMode) -> Result<(), String> {
    compare_with_limit(insns, mem, mode, 0)
}

/// A helper with a side effect visible in memory: adds 1 to the first 8 bytes of the run's
/// `mem` (its cookie) and returns its first argument plus one.
unsafe extern "C" fn record_call(
    r1: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    mem: *mut std::ffi::c_void,
) -> u64 {
    if !mem.is_null() {
        let p = mem.cast::<u64>();
        // SAFETY: the differential runs always pass MEM_LEN (>= 8) bytes of 8-aligned memory.
        let old = unsafe { p.read() };
        // SAFETY: as for the read.
        unsafe { p.write(old.wrapping_add(1)) };
    }
    r1.wrapping_add(1)
}

/// Helper index of [`record_call`].
const RECORD_CALL: i32 = 7;

/// A VM with the differential tests' helpers, `insns` loaded with instruction limit `limit`
/// and JIT tier `tier`.
fn loaded_vm(insns: &[Insn], limit: u32, tier: JitTier) -> Result<Vm, String> {
    let mut vm = Vm::new();
    rbpf::conformance::register_helpers(&mut vm);
    vm.register_helper(RECORD_CALL as u32, Some("record_call"), record_call)
        .map_err(|e| e.to_string())?;
    vm.config_mut().instruction_limit = limit;
    vm.config_mut().jit_tier = tier;
    // Both flavours of the legacy packet loads, picked by the program (deterministic).
    if insns.len().is_multiple_of(3) {
        vm.config_mut().packet_loads = rbpf::PacketLoads::Rbpf;
    }
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.load(&rbpf::isa::encode_slots(insns))
        .map_err(|e| format!("generated program does not load: {e}"))?;
    Ok(vm)
}

/// [`compare`] with `Config::instruction_limit` set to `limit` (0: none). The JIT runs in the
/// tier it picks (optimised, for these small programs) and in the baseline tier.
fn compare_with_limit(insns: &[Insn], mem: &[u8], mode: JitMode, limit: u32) -> Result<(), String> {
    let mut vm = loaded_vm(insns, limit, JitTier::Auto)?;
    // One 8-byte aligned buffer for both runs (atomics are aligned in both engines, and
    // values derived from r1 are the same), refilled before each run.
    let mut words = vec![0u64; mem.len() / 8];
    let mut run = |f: &dyn Fn(&mut [u8]) -> Result<u64, ExecError>| {
        let bytes: &mut [u8] = bytemuck_bytes(&mut words);
        bytes.copy_from_slice(mem);
        let result = f(bytes).map_err(|e| error_key(&e));
        Outcome {
            result,
            mem: bytes.to_vec(),
        }
    };
    let interp = run(&|m| vm.execute(m));
    // Without a limit, the interpreter's fast path ran; its per-instruction loop (taken when
    // an instruction limit is set) must agree with it.
    if vm.config().instruction_limit == 0 {
        vm.config_mut().instruction_limit = 1 << 30;
        let checked = run(&|m| vm.execute(m));
        vm.config_mut().instruction_limit = 0;
        agree("interpreter fast path", &interp, "checked loop", &checked)?;
    }
    for tier in [JitTier::Auto, JitTier::Baseline] {
        let vm = if tier == JitTier::Auto {
            &mut vm
        } else {
            &mut loaded_vm(insns, limit, tier)?
        };
        vm.compile(mode)
            .map_err(|e| format!("{tier:?} compile: {e}"))?;
        let jit = run(&|m| vm.execute_jit(m));
        agree(
            "interpreter",
            &interp,
            &format!("{mode:?} {tier:?} JIT"),
            &jit,
        )?;
    }
    Ok(())
}

/// `Err` describing how outcome `b` (of engine `b_name`) differs from `a`, if it does.
fn agree(a_name: &str, a: &Outcome, b_name: &str, b: &Outcome) -> Result<(), String> {
    if a == b {
        return Ok(());
    }
    Err(format!(
        "{a_name} {:x?} vs {b_name} {:x?}; memory equal: {}",
        a.result,
        b.result,
        a.mem == b.mem
    ))
}

/// The bytes of a `u64` buffer.
fn bytemuck_bytes(words: &mut [u64]) -> &mut [u8] {
    let len = std::mem::size_of_val(words);
    // SAFETY: u64 has no padding and any byte pattern is valid; the slice covers the words.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
}

fn disassemble_on_failure(insns: &[Insn], why: String) -> String {
    format!("{why}\n{}", rbpf::disasm::disassemble(insns))
}

#[test]
fn alu_sweep() {
    let mut rng = Rng(0x5eed_0001);
    let mut programs = 0;
    let mut insns_total = 0;
    let mut failures = Vec::new();
    for is64 in [false, true] {
        for by_reg in [false, true] {
            for form in ALU_FORMS {
                for round in 0..3 {
                    let mut insns = Vec::new();
                    prologue(&mut rng, &mut insns);
                    let mut any = false;
                    for &dst in &SCRATCH {
                        let sources: Vec<u8> = if by_reg { SCRATCH.to_vec() } else { vec![0; 3] };
                        for src in sources {
                            if let Some(insn) = alu(form, is64, by_reg, dst, src, imm(&mut rng)) {
                                insns.push(insn);
                                any = true;
                            }
                            // Re-seed the destination now and then so values do not collapse
                            // to zero after a run of multiplications and shifts.
                            if rng.chance(30) {
                                insns.extend(lddw(dst, value(&mut rng)));
                            }
                        }
                    }
                    if !any {
                        continue;
                    }
                    // Exercise neg and the endianness operations alongside.
                    if round == 0 {
                        for &dst in &SCRATCH {
                            insns.push(Insn::new(if is64 { 0x87 } else { 0x84 }, dst, 0, 0, 0));
                            let width = rng.pick(&[16, 32, 64]);
                            insns.push(Insn::new(rng.pick(&[0xd4, 0xdc, 0xd7]), dst, 0, 0, width));
                        }
                    }
                    epilogue(&mut insns);
                    let mode = if programs % 2 == 0 {
                        JitMode::Basic
                    } else {
                        JitMode::Extended
                    };
                    insns_total += insns.len();
                    programs += 1;
                    if let Err(why) = compare(&insns, &[0u8; MEM_LEN], mode) {
                        failures.push(disassemble_on_failure(&insns, why));
                    }
                }
            }
        }
    }
    eprintln!(
        "differential alu_sweep: {} of {programs} programs agree ({insns_total} slots)",
        programs - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(3)].join("\n\n")
    );
}

/// A unit of a random program: plain slots, or a forward branch to a later unit.
enum Unit {
    Plain(Vec<Insn>),
    Branch { insn: Insn, to_unit: usize },
}

fn random_unit(rng: &mut Rng, index: usize, count: usize) -> Unit {
    let dst = rng.pick(&SCRATCH);
    let src = rng.pick(&SCRATCH);
    match rng.below(100) {
        0..=49 => {
            let form = rng.pick(&ALU_FORMS);
            let is64 = rng.chance(50);
            let by_reg = rng.chance(50);
            match alu(form, is64, by_reg, dst, src, imm(rng)) {
                Some(insn) => Unit::Plain(vec![insn]),
                None => Unit::Plain(lddw(dst, value(rng)).to_vec()),
            }
        }
        50..=54 => Unit::Plain(lddw(dst, value(rng)).to_vec()),
        55..=56 => {
            // neg32/neg64, or le/be/bswap of a random width.
            let insn = if rng.chance(40) {
                Insn::new(rng.pick(&[0x84, 0x87]), dst, 0, 0, 0)
            } else {
                Insn::new(
                    rng.pick(&[0xd4, 0xdc, 0xd7]),
                    dst,
                    0,
                    0,
                    rng.pick(&[16, 32, 64]),
                )
            };
            Unit::Plain(vec![insn])
        }
        57..=77 => memory_unit(rng, dst, src),
        78..=79 => packet_unit(rng, src),
        80..=94 if index + 1 < count => {
            let ops = [
                0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0,
            ];
            let op = rng.pick(&ops);
            let class = if rng.chance(50) { 0x05 } else { 0x06 };
            let by_reg = rng.chance(50);
            let to_unit = index + 1 + rng.below((count - index - 1).min(8));
            let insn = if by_reg {
                Insn::new(op | 0x08 | class, dst, src, 0, 0)
            } else {
                Insn::new(op | class, dst, 0, 0, imm(rng))
            };
            Unit::Branch { insn, to_unit }
        }
        _ => {
            // Pure helpers of the conformance table: gather_bytes (0), no_op (2), sqrti (3).
            Unit::Plain(vec![Insn::new(0x85, 0, 0, 0, rng.pick(&[0, 2, 3]))])
        }
    }
}

fn memory_unit(rng: &mut Rng, dst: u8, src: u8) -> Unit {
    let (size_bits, bytes) = rng.pick(&[(0x00u8, 4i16), (0x08, 2), (0x10, 1), (0x18, 8)]);
    // Base and offset inside the stack's used part or the input memory.
    let (base, off) = if rng.chance(50) {
        let slots = STACK_USED / bytes;
        (10u8, -bytes * (1 + rng.below(slots as usize) as i16))
    } else {
        let slots = MEM_LEN as i16 / bytes;
        (1u8, bytes * rng.below(slots as usize) as i16)
    };
    // Some accesses are misaligned (not atomics): one byte up, staying inside the zeroed part
    // of the stack (reading below it would see whatever earlier runs left there).
    let skew = if bytes > 1 && rng.chance(15) && (base == 1 || off <= -2 * bytes) {
        1
    } else {
        0
    };
    match rng.below(6) {
        0 => Unit::Plain(vec![Insn::new(0x61 | size_bits, dst, base, off + skew, 0)]),
        1 if bytes < 8 => Unit::Plain(vec![Insn::new(0x81 | size_bits, dst, base, off + skew, 0)]),
        2 => Unit::Plain(vec![Insn::new(
            0x62 | size_bits,
            base,
            0,
            off + skew,
            imm(rng),
        )]),
        3 | 1 => Unit::Plain(vec![Insn::new(0x63 | size_bits, base, src, off + skew, 0)]),
        _ => {
            // Atomics: 4 or 8 bytes, aligned.
            let (opc, width) = if rng.chance(50) { (0xdb, 8) } else { (0xc3, 4) };
            let off = if base == 10 {
                -width * (1 + rng.below((STACK_USED / width) as usize) as i16)
            } else {
                width * rng.below((MEM_LEN as i16 / width) as usize) as i16
            };
            let op = rng.pick(&[0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1]);
            Unit::Plain(vec![Insn::new(opc, base, src, off, op)])
        }
    }
}

/// A legacy packet load (`ldabs*`/`ldind*`) over the input memory: mostly inside it, often
/// at its very end, sometimes one past it or at a negative or 32-bit-wrapping offset (the
/// kernel flavour then ends the program with 0, the rbpf flavour faults).
fn packet_unit(rng: &mut Rng, src: u8) -> Unit {
    let (size_bits, bytes) = rng.pick(&[(0x00u8, 4i32), (0x08, 2), (0x10, 1), (0x18, 8)]);
    let len = MEM_LEN as i32;
    let offset = match rng.below(10) {
        0..=5 => rng.below((len - bytes + 1) as usize) as i32,
        6 => len - bytes,
        7 => len - bytes + 1,
        8 => -(1 + rng.below(8) as i32),
        _ => imm(rng),
    };
    if rng.chance(50) {
        return Unit::Plain(vec![Insn::new(0x20 | size_bits, 0, 0, 0, offset)]);
    }
    // ldind: the register holds part of the offset; now and then its high half is set or
    // it is near 2^32, so that only 32-bit arithmetic lands in the packet.
    let split = rng.below(len as usize + 1) as i32;
    let high = match rng.below(4) {
        0 => 0x1_0000_0000u64,
        1 => 0xffff_ffff_0000_0000,
        _ => 0,
    };
    let mut unit = lddw(src, (high | u64::from(split as u32)) as i64).to_vec();
    if src == 0 || rng.chance(20) {
        // Some loads use whatever the register holds.
        unit.clear();
    }
    unit.push(Insn::new(
        0x40 | size_bits,
        0,
        src,
        0,
        offset.wrapping_sub(split),
    ));
    Unit::Plain(unit)
}

fn flatten(units: &[Unit]) -> Vec<Insn> {
    let mut starts = Vec::with_capacity(units.len() + 1);
    let mut pc = 0usize;
    for unit in units {
        starts.push(pc);
        pc += match unit {
            Unit::Plain(v) => v.len(),
            Unit::Branch { .. } => 1,
        };
    }
    starts.push(pc);
    let mut out = Vec::with_capacity(pc);
    for (i, unit) in units.iter().enumerate() {
        match unit {
            Unit::Plain(v) => out.extend_from_slice(v),
            Unit::Branch { insn, to_unit } => {
                let off = starts[*to_unit] as i64 - starts[i] as i64 - 1;
                let mut insn = *insn;
                insn.off = off as i16;
                out.push(insn);
            }
        }
    }
    out
}

#[test]
fn random_programs() {
    sweep(
        "random_programs",
        "RBPF_DIFF_PROGRAMS",
        2000,
        0x5eed_0002,
        |rng| {
            let mut insns = Vec::new();
            prologue(rng, &mut insns);
            let body_len = 20 + rng.below(60);
            let units: Vec<Unit> = (0..body_len)
                .map(|i| random_unit(rng, i, body_len))
                .collect();
            insns.extend(flatten(&units));
            epilogue(&mut insns);
            insns
        },
    );
}

/// Lays out a program with local functions: `main` (prologue, units, epilogue) followed by
/// each function (stack zeroing, units, a fold of its registers and stack into r0, exit).
/// A local call is written as `call` with src 1 and the callee's index in imm, and patched
/// here into the relative form.
fn layout_with_functions(prologue_insns: &[Insn], bodies: &[Vec<Unit>]) -> Vec<Insn> {
    // First pass: sizes, to know where each function starts.
    let body_insns = |units: &[Unit]| flatten(units);
    let mut starts = Vec::new();
    let mut pc = 0usize;
    let mut pieces = Vec::new();
    for (i, units) in bodies.iter().enumerate() {
        starts.push(pc);
        let mut piece = Vec::new();
        if i == 0 {
            piece.extend_from_slice(prologue_insns);
        } else {
            for k in 1..=(STACK_USED / 8) {
                piece.push(Insn::new(0x7a, 10, 0, -8 * k, 0));
            }
        }
        piece.extend(body_insns(units));
        if i == 0 {
            epilogue(&mut piece);
        } else {
            for &r in &SCRATCH[1..] {
                piece.push(Insn::new(0x27, 0, 0, 0, 31));
                piece.push(Insn::new(0x0f, 0, r, 0, 0));
            }
            for k in 1..=4 {
                piece.push(Insn::new(0x79, 2, 10, -8 * k, 0));
                piece.push(Insn::new(0xaf, 0, 2, 0, 0));
            }
            piece.push(Insn::new(0x95, 0, 0, 0, 0));
        }
        pc += piece.len();
        pieces.push(piece);
    }
    // Second pass: patch the calls (marked by opcode 0x85, src 1, imm = callee index).
    let mut out = Vec::new();
    for (i, mut piece) in pieces.into_iter().enumerate() {
        let base = starts[i];
        for (j, insn) in piece.iter_mut().enumerate() {
            if insn.opc == 0x85 && insn.src == 1 {
                let callee = insn.imm as usize;
                insn.imm = (starts[callee] as i64 - (base + j) as i64 - 1) as i32;
            }
        }
        out.extend(piece);
    }
    out
}

#[test]
fn random_programs_with_local_calls() {
    sweep(
        "random_programs_with_local_calls",
        "RBPF_DIFF_CALL_PROGRAMS",
        400,
        0x5eed_0003,
        |rng| {
            let mut pro = Vec::new();
            prologue(rng, &mut pro);
            let functions = 1 + rng.below(3);
            let mut bodies = Vec::new();
            for f in 0..=functions {
                let len = 10 + rng.below(30);
                let mut units: Vec<Unit> = (0..len).map(|i| random_unit(rng, i, len)).collect();
                // A few calls to later functions (no recursion: depth stays below the limit).
                if f < functions {
                    for _ in 0..1 + rng.below(3) {
                        let at = rng.below(len);
                        let callee = f + 1 + rng.below(functions - f);
                        units[at] = Unit::Plain(vec![Insn::new(0x85, 0, 1, 0, callee as i32)]);
                    }
                }
                bodies.push(units);
            }
            layout_with_functions(&pro, &bodies)
        },
    );
}

#[test]
fn random_programs_with_small_limits() {
    let mut rng = Rng(0x5eed_0004);
    let count: usize = std::env::var("RBPF_DIFF_LIMIT_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(800);
    let mut failures = Vec::new();
    let mut limited = 0;
    for n in 0..count {
        let mut insns = Vec::new();
        prologue(&mut rng, &mut insns);
        let body_len = 10 + rng.below(40);
        let units: Vec<Unit> = (0..body_len)
            .map(|i| match rng.below(10) {
                // A helper whose effect shows in memory.
                0 => Unit::Plain(vec![Insn::new(0x85, 0, 0, 0, RECORD_CALL)]),
                // The unwind helper (index 5 returns its argument): ends the run when 0.
                1 => Unit::Plain(vec![
                    Insn::new(0xbf, 8, 1, 0, 0),                    // mov r8, r1
                    Insn::new(0xb7, 1, 0, 0, rng.pick(&[0, 1, 1])), // mov r1, 0|1
                    Insn::new(0x85, 0, 0, 0, 5),                    // call unwind
                    Insn::new(0xbf, 1, 8, 0, 0),                    // mov r1, r8
                ]),
                _ => random_unit(&mut rng, i, body_len),
            })
            .collect();
        insns.extend(flatten(&units));
        epilogue(&mut insns);
        // Forward branches only: a run executes at most insns.len() instructions, so most
        // limits below stop it, at any position of any block.
        let limit = 1 + rng.below(insns.len()) as u32;
        let mut mem = [0u8; MEM_LEN];
        for b in &mut mem {
            *b = rng.next() as u8;
        }
        let mode = if n % 2 == 0 {
            JitMode::Basic
        } else {
            JitMode::Extended
        };
        match compare_with_limit(&insns, &mem, mode, limit) {
            Ok(()) => {}
            Err(why) => failures.push(disassemble_on_failure(
                &insns,
                format!("limit {limit}: {why}"),
            )),
        }
        if limit < insns.len() as u32 {
            limited += 1;
        }
    }
    eprintln!(
        "differential random_programs_with_small_limits: {} of {count} agree ({limited} with a limit below the program length)",
        count - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures; first:\n{}",
        failures.len(),
        failures[0]
    );
}

/// Generates `count` programs with `generate` (overridable by the environment variable
/// `count_var`), runs each in the interpreter and the JIT (alternating Basic and Extended
/// mode) on the same random memory, and requires every pair to agree.
fn sweep(
    name: &str,
    count_var: &str,
    default_count: usize,
    seed: u64,
    mut generate: impl FnMut(&mut Rng) -> Vec<Insn>,
) {
    let mut rng = Rng(seed);
    let count: usize = std::env::var(count_var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_count);
    let mut failures = Vec::new();
    let mut slots = 0;
    for n in 0..count {
        let insns = generate(&mut rng);
        let mut mem = [0u8; MEM_LEN];
        for b in &mut mem {
            *b = rng.next() as u8;
        }
        let mode = if n % 2 == 0 {
            JitMode::Basic
        } else {
            JitMode::Extended
        };
        slots += insns.len();
        if let Err(why) = compare(&insns, &mem, mode) {
            failures.push(disassemble_on_failure(&insns, why));
        }
    }
    eprintln!(
        "differential {name}: {} of {count} programs agree ({slots} slots)",
        count - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures; first:\n{}",
        failures.len(),
        failures[0]
    );
}
