//! The interpreter's fast path: the program pre-decoded at load into [`Decoded`], run by a
//! loop with one specialised operation per instruction form.
//!
//! It runs whenever nothing per-instruction is asked for (no instruction limit, debug
//! callback or undefined-behaviour check, legacy profile); `run` in the parent module handles
//! everything else from the raw slots. Both give the same results, errors (text and pc) and
//! side effects; `tests/differential.rs` compares them on random programs.
//!
//! What decoding buys, per executed instruction:
//! * the opcode byte and its variants (`off` selecting signed division or a sign-extending
//!   move, `imm` selecting a byte-swap width, `src` selecting a local call) become one
//!   [`Code`], so each arm does only its own work;
//! * jump and local-call targets are absolute slot indices; the callee's stack usage is
//!   looked up once, at decode;
//! * `lddw` carries its whole 64-bit value; immediates are pre-sign-extended;
//! * register fields are masked once, and a sentinel op after the last slot turns "fell off
//!   the end" into an ordinary operation, so fetching needs no bounds check.
//!
//! One op per slot (the second slot of `lddw` is a never-executed filler), so an op's index is
//! its pc in every error message. The head of a copy loop (`crate::exec::idiom`) becomes a
//! [`Code::CopyLoop`] op that runs the whole loop at once when its guard allows, and
//! otherwise runs the instruction it replaced; the entry of a compare loop becomes a
//! [`Code::CompareLoop`] op that fast-forwards over the iterations that provably complete
//! (`crate::exec::idiom::compare`) and then runs the instruction it replaced; the first
//! compare of a recognised switch (`crate::exec::switch`) becomes a [`Code::Switch`] lookup
//! that does the register writes of the key's leaf and jumps there.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::ops::{CallStack, alu32, alu64, atomic_fetch_reg, atomic_rmw, be, bswap, cond, cond32};
use super::ops::{le, load_extend, sdiv32, sdiv64, sign_extend, smod32, smod64};
use super::{Env, call_helper};
use crate::error::{Access, ExecError};
use crate::exec::idiom::CopyLoop;
use crate::exec::idiom::compare::{Bounds, CompareLoop, Forward};
use crate::exec::memory::store;
use crate::exec::packet::{self, PacketLoad};
use crate::exec::switch::Switch;
use crate::isa::op::*;
use crate::isa::{LOCAL_FUNCTION_STACK_SIZE, alu, call_kind, class, jmp, source};
use crate::program::Program;

macro_rules! codes {
    ($($name:ident),* $(,)?) => {
        /// A specialised operation: one instruction form with its variant fields resolved.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum Code { $($name),* }
    };
}

codes! {
    // ALU64, immediate (K) and register (X) forms.
    Add64K, Add64X, Sub64K, Sub64X, Mul64K, Mul64X, Div64K, Div64X, SDiv64K, SDiv64X,
    Or64K, Or64X, And64K, And64X, Lsh64K, Lsh64X, Rsh64K, Rsh64X, Neg64, Mod64K, Mod64X,
    SMod64K, SMod64X, Xor64K, Xor64X, Mov64K, Mov64X, MovSx8, MovSx16, MovSx32, Arsh64K,
    Arsh64X, Bswap16, Bswap32, Bswap64,
    // ALU32.
    Add32K, Add32X, Sub32K, Sub32X, Mul32K, Mul32X, Div32K, Div32X, SDiv32K, SDiv32X,
    Or32K, Or32X, And32K, And32X, Lsh32K, Lsh32X, Rsh32K, Rsh32X, Neg32, Mod32K, Mod32X,
    SMod32K, SMod32X, Xor32K, Xor32X, Mov32K, Mov32X, Mov32Sx8, Mov32Sx16, Arsh32K, Arsh32X,
    Le16, Le32, Be16, Be32, Be64,
    // A no-op (`le64`, the second slot of `lddw`).
    Nop,
    Lddw,
    // Loads (zero- and sign-extending), stores of an immediate and of a register, atomics.
    Ldx1, Ldx2, Ldx4, Ldx8, Ldxs1, Ldxs2, Ldxs4,
    St1, St2, St4, St8, Stx1, Stx2, Stx4, Stx8,
    Atomic4, Atomic8,
    // A legacy packet load (`crate::exec::packet`): the opcode in `off`, the immediate in
    // `imm`, the IND register in `src`.
    LdPacket,
    // Jumps: `off` holds the absolute target.
    Ja,
    Jeq64K, Jeq64X, Jgt64K, Jgt64X, Jge64K, Jge64X, Jset64K, Jset64X, Jne64K, Jne64X,
    Jsgt64K, Jsgt64X, Jsge64K, Jsge64X, Jlt64K, Jlt64X, Jle64K, Jle64X, Jslt64K, Jslt64X,
    Jsle64K, Jsle64X,
    Jeq32K, Jeq32X, Jgt32K, Jgt32X, Jge32K, Jge32X, Jset32K, Jset32X, Jne32K, Jne32X,
    Jsgt32K, Jsgt32X, Jsge32K, Jsge32X, Jlt32K, Jlt32X, Jle32K, Jle32X, Jslt32K, Jslt32X,
    Jsle32K, Jsle32X,
    // Calls: helper by `imm`, helper by register `dst`, local at `off` (callee stack usage
    // in `imm`); exit.
    Call, Callx, CallLocal, Exit,
    // Fused pairs and triples of common compiler output (see `fuse`): `lsh r, 32; rsh r, 32`;
    // `mov r, s; lsh r, 32; rsh r, 32`; `mov r, s; add r, t` (t in `imm`); `mov r, s;
    // add r, imm`. Each runs all its instructions and skips the slots it covered.
    Zext32, MovZext32, MovAddX, MovAddK,
    // The head of a copy loop: `imm` indexes `Decoded::loops`, which also holds the
    // instruction the op replaced (run when the bulk copy's guard refuses).
    CopyLoop,
    // The entry of a compare loop: `imm` indexes `Decoded::compares`, which also holds the
    // instruction the op replaced (always run after the fast-forward).
    CompareLoop,
    // The first compare of a recognised switch: `imm` indexes `Decoded::switches`.
    Switch,
    // After the last slot: the program fell off its end.
    FellOff,
    // An opcode the validator should have refused (original opcode in `imm`).
    Unknown,
}

/// One decoded instruction (16 bytes).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct Op {
    code: Code,
    /// Destination register, 0..15.
    dst: u8,
    /// Source register, 0..15.
    src: u8,
    /// Memory offset, or absolute jump/call target.
    off: i32,
    /// Sign-extended immediate, `lddw` value, or the callee's stack usage.
    imm: u64,
}

/// A program in the fast path's form: one [`Op`] per slot plus the [`Code::FellOff`] sentinel.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    ops: Box<[Op]>,
    /// Copy loops run in bulk (`crate::exec::idiom`), with the op each head slot held.
    loops: Box<[(CopyLoop, Op)]>,
    /// Compare loops fast-forwarded at their entry (`crate::exec::idiom::compare`), with the
    /// op each entry slot held.
    compares: Box<[(CompareLoop, Op)]>,
    /// Recognised switches (`crate::exec::switch`), by the `imm` of their root's op.
    switches: Box<[Switch]>,
    /// Stack bytes the main function reserves below r10 before a local call.
    main_stack_usage: u16,
}

impl Decoded {
    /// Decodes a verified program whose idioms are `idioms` (recognised once at load).
    pub(crate) fn new(program: &Program, idioms: &crate::exec::idiom::Idioms) -> Decoded {
        let insns = &program.insns;
        let mut ops = Vec::with_capacity(insns.len() + 1);
        let mut pc = 0;
        while pc < insns.len() {
            let insn = insns[pc];
            let mut op = Op {
                code: Code::Unknown,
                dst: insn.dst & 0x0f,
                src: insn.src & 0x0f,
                off: i32::from(insn.off),
                imm: insn.imm as i64 as u64,
            };
            let target = |distance: i64| (pc as i64 + 1 + distance) as i32;
            let k_or_x = |k: Code, x: Code| {
                if insn.opc & source::MASK == source::K {
                    k
                } else {
                    x
                }
            };
            op.code = match insn.opc {
                ADD64_IMM | ADD64_REG => k_or_x(Code::Add64K, Code::Add64X),
                SUB64_IMM | SUB64_REG => k_or_x(Code::Sub64K, Code::Sub64X),
                MUL64_IMM | MUL64_REG => k_or_x(Code::Mul64K, Code::Mul64X),
                DIV64_IMM | DIV64_REG if insn.off == 1 => k_or_x(Code::SDiv64K, Code::SDiv64X),
                DIV64_IMM | DIV64_REG => k_or_x(Code::Div64K, Code::Div64X),
                OR64_IMM | OR64_REG => k_or_x(Code::Or64K, Code::Or64X),
                AND64_IMM | AND64_REG => k_or_x(Code::And64K, Code::And64X),
                LSH64_IMM | LSH64_REG => k_or_x(Code::Lsh64K, Code::Lsh64X),
                RSH64_IMM | RSH64_REG => k_or_x(Code::Rsh64K, Code::Rsh64X),
                NEG64 => Code::Neg64,
                MOD64_IMM | MOD64_REG if insn.off == 1 => k_or_x(Code::SMod64K, Code::SMod64X),
                MOD64_IMM | MOD64_REG => k_or_x(Code::Mod64K, Code::Mod64X),
                XOR64_IMM | XOR64_REG => k_or_x(Code::Xor64K, Code::Xor64X),
                MOV64_IMM => Code::Mov64K,
                MOV64_REG => match insn.off {
                    8 => Code::MovSx8,
                    16 => Code::MovSx16,
                    32 => Code::MovSx32,
                    _ => Code::Mov64X,
                },
                ARSH64_IMM | ARSH64_REG => k_or_x(Code::Arsh64K, Code::Arsh64X),
                BSWAP => match insn.imm {
                    16 => Code::Bswap16,
                    32 => Code::Bswap32,
                    _ => Code::Bswap64,
                },
                ADD32_IMM | ADD32_REG => k_or_x(Code::Add32K, Code::Add32X),
                SUB32_IMM | SUB32_REG => k_or_x(Code::Sub32K, Code::Sub32X),
                MUL32_IMM | MUL32_REG => k_or_x(Code::Mul32K, Code::Mul32X),
                DIV32_IMM | DIV32_REG if insn.off == 1 => k_or_x(Code::SDiv32K, Code::SDiv32X),
                DIV32_IMM | DIV32_REG => k_or_x(Code::Div32K, Code::Div32X),
                OR32_IMM | OR32_REG => k_or_x(Code::Or32K, Code::Or32X),
                AND32_IMM | AND32_REG => k_or_x(Code::And32K, Code::And32X),
                LSH32_IMM | LSH32_REG => k_or_x(Code::Lsh32K, Code::Lsh32X),
                RSH32_IMM | RSH32_REG => k_or_x(Code::Rsh32K, Code::Rsh32X),
                NEG32 => Code::Neg32,
                MOD32_IMM | MOD32_REG if insn.off == 1 => k_or_x(Code::SMod32K, Code::SMod32X),
                MOD32_IMM | MOD32_REG => k_or_x(Code::Mod32K, Code::Mod32X),
                XOR32_IMM | XOR32_REG => k_or_x(Code::Xor32K, Code::Xor32X),
                MOV32_IMM => Code::Mov32K,
                MOV32_REG => match insn.off {
                    8 => Code::Mov32Sx8,
                    16 => Code::Mov32Sx16,
                    _ => Code::Mov32X,
                },
                ARSH32_IMM | ARSH32_REG => k_or_x(Code::Arsh32K, Code::Arsh32X),
                LE => match insn.imm {
                    16 => Code::Le16,
                    32 => Code::Le32,
                    _ => Code::Nop,
                },
                BE => match insn.imm {
                    16 => Code::Be16,
                    32 => Code::Be32,
                    _ => Code::Be64,
                },
                LDDW => {
                    let high = insns.get(pc + 1).map_or(0, |next| next.imm as u32);
                    op.imm = u64::from(insn.imm as u32) | (u64::from(high) << 32);
                    Code::Lddw
                }
                LDXW => Code::Ldx4,
                LDXH => Code::Ldx2,
                LDXB => Code::Ldx1,
                LDXDW => Code::Ldx8,
                LDXSW => Code::Ldxs4,
                LDXSH => Code::Ldxs2,
                LDXSB => Code::Ldxs1,
                STW => Code::St4,
                STH => Code::St2,
                STB => Code::St1,
                STDW => Code::St8,
                STXW => Code::Stx4,
                STXH => Code::Stx2,
                STXB => Code::Stx1,
                STXDW => Code::Stx8,
                ATOMIC32 => Code::Atomic4,
                ATOMIC64 => Code::Atomic8,
                opc if crate::isa::is_packet_load(opc) => {
                    op.off = i32::from(opc);
                    Code::LdPacket
                }
                JA => {
                    op.off = target(i64::from(insn.off));
                    Code::Ja
                }
                JA32 => {
                    op.off = target(i64::from(insn.imm));
                    Code::Ja
                }
                CALL if insn.src == call_kind::LOCAL => {
                    let callee = target(i64::from(insn.imm));
                    op.off = callee;
                    op.imm = u64::from(
                        program
                            .function_at(callee as usize)
                            .map_or(LOCAL_FUNCTION_STACK_SIZE, |f| f.stack_usage),
                    );
                    Code::CallLocal
                }
                CALL => {
                    op.imm = u64::from(insn.imm as u32);
                    Code::Call
                }
                CALLX => Code::Callx,
                EXIT => Code::Exit,
                opc if matches!(opc & class::MASK, class::JMP | class::JMP32) => {
                    let Some(code) = conditional_jump(opc) else {
                        op.imm = u64::from(opc);
                        ops.push(op);
                        pc += 1;
                        continue;
                    };
                    op.off = target(i64::from(insn.off));
                    code
                }
                opc => {
                    op.imm = u64::from(opc);
                    Code::Unknown
                }
            };
            let is_lddw = op.code == Code::Lddw;
            ops.push(op);
            pc += 1;
            if is_lddw && pc < insns.len() {
                ops.push(Op {
                    code: Code::Nop,
                    dst: 0,
                    src: 0,
                    off: 0,
                    imm: 0,
                });
                pc += 1;
            }
        }
        ops.push(Op {
            code: Code::FellOff,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        });
        let copies = idioms.copies.clone();
        let compare_loops = idioms.compares.clone();
        let mut heads: Vec<usize> = copies.iter().map(|c| c.head).collect();
        heads.extend(compare_loops.iter().map(|c| c.head as usize));
        heads.sort_unstable();
        fuse(&mut ops, &heads);
        let mut loops = Vec::new();
        {
            for copy in copies {
                let head = copy.head;
                let original = ops[head];
                ops[head] = Op {
                    code: Code::CopyLoop,
                    dst: 0,
                    src: 0,
                    off: 0,
                    imm: loops.len() as u64,
                };
                loops.push((copy, original));
            }
        }
        let mut compares = Vec::new();
        for l in compare_loops {
            let head = l.head as usize;
            let original = ops[head];
            ops[head] = Op {
                code: Code::CompareLoop,
                dst: 0,
                src: 0,
                off: 0,
                imm: compares.len() as u64,
            };
            compares.push((l, original));
        }
        let mut switches = Vec::new();
        for switch in idioms.switches.iter().cloned() {
            let root = switch.root;
            ops[root] = Op {
                code: Code::Switch,
                dst: 0,
                src: 0,
                off: 0,
                imm: switches.len() as u64,
            };
            switches.push(switch);
        }
        Decoded {
            ops: ops.into_boxed_slice(),
            loops: loops.into_boxed_slice(),
            compares: compares.into_boxed_slice(),
            switches: switches.into_boxed_slice(),
            main_stack_usage: program.functions.first().map_or(0, |f| f.stack_usage),
        }
    }
}

/// Turns common instruction pairs and triples into one op at the first slot. The covered
/// slots keep their own ops (a jump may land on them); no fused op can fail, so error pcs
/// are unaffected. A loop idiom's head (`heads`, sorted) is never covered, so entering it by
/// falling through still meets its fast path.
fn fuse(ops: &mut [Op], heads: &[usize]) {
    let head = |pc: usize| heads.binary_search(&pc).is_ok();
    let is = |op: &Op, code: Code| op.code == code;
    let shift32 = |op: &Op, code: Code| op.code == code && op.imm == 32;
    for pc in 0..ops.len() {
        let (first, second) = (ops[pc], ops.get(pc + 1).copied());
        let third = ops.get(pc + 2).copied();
        let Some(second) = second else { break };
        if head(pc + 1) {
            continue;
        }
        let same = second.dst == first.dst;
        let fused = if shift32(&first, Code::Lsh64K) && shift32(&second, Code::Rsh64K) && same {
            Some(Code::Zext32)
        } else if is(&first, Code::Mov64X) && same {
            match (second.code, third) {
                (Code::Lsh64K, Some(t))
                    if second.imm == 32
                        && shift32(&t, Code::Rsh64K)
                        && t.dst == first.dst
                        && !head(pc + 2) =>
                {
                    Some(Code::MovZext32)
                }
                // `mov r, s; add r, r` doubles s: not the fused form.
                (Code::Add64X, _) if second.src != first.dst => {
                    ops[pc].imm = u64::from(second.src);
                    Some(Code::MovAddX)
                }
                (Code::Add64K, _) => {
                    ops[pc].imm = second.imm;
                    Some(Code::MovAddK)
                }
                _ => None,
            }
        } else {
            None
        };
        if let Some(code) = fused {
            ops[pc].code = code;
        }
    }
}

/// The code of a conditional jump opcode (JMP or JMP32 class).
fn conditional_jump(opc: u8) -> Option<Code> {
    use Code::*;
    let wide = opc & class::MASK == class::JMP;
    let x = opc & source::MASK == source::X;
    let pick = |k64: Code, x64: Code, k32: Code, x32: Code| match (wide, x) {
        (true, false) => k64,
        (true, true) => x64,
        (false, false) => k32,
        (false, true) => x32,
    };
    Some(match opc & alu::MASK {
        jmp::JEQ => pick(Jeq64K, Jeq64X, Jeq32K, Jeq32X),
        jmp::JGT => pick(Jgt64K, Jgt64X, Jgt32K, Jgt32X),
        jmp::JGE => pick(Jge64K, Jge64X, Jge32K, Jge32X),
        jmp::JSET => pick(Jset64K, Jset64X, Jset32K, Jset32X),
        jmp::JNE => pick(Jne64K, Jne64X, Jne32K, Jne32X),
        jmp::JSGT => pick(Jsgt64K, Jsgt64X, Jsgt32K, Jsgt32X),
        jmp::JSGE => pick(Jsge64K, Jsge64X, Jsge32K, Jsge32X),
        jmp::JLT => pick(Jlt64K, Jlt64X, Jlt32K, Jlt32X),
        jmp::JLE => pick(Jle64K, Jle64X, Jle32K, Jle32X),
        jmp::JSLT => pick(Jslt64K, Jslt64X, Jslt32K, Jslt32X),
        jmp::JSLE => pick(Jsle64K, Jsle64X, Jsle32K, Jsle32X),
        _ => return None,
    })
}

/// Runs `decoded` (the pre-decoded form of `env.program`) with no per-instruction checks.
/// Each arm runs the operation of `super::ops` that the checked loop runs for its opcode.
///
/// Inlined into its one caller, the interpreter's run entry, so that a short program pays no
/// second call and reads the run's environment where the entry built it.
///
/// # Safety
/// See `Vm::execute_raw`.
#[rustfmt::skip]
#[inline(always)]
pub(super) unsafe fn run(
    env: &Env<'_>,
    decoded: &Decoded,
    mem_len: usize,
) -> Result<u64, ExecError> {
    let ops: &[Op] = &decoded.ops;
    let regions = &env.regions;

    let mut reg = [0u64; 16];
    reg[1] = env.mem as u64;
    reg[2] = mem_len as u64;
    reg[10] = regions.stack_end;
    let mut calls = CallStack::new(decoded.main_stack_usage);

    let mut pc = 0usize;
    let mut refused = 0u64;
    // Compare loops whose loads lie outside mem and the stack in this run (one bit per loop).
    let mut uncovered = 0u64;

    macro_rules! d { ($op:expr) => { reg[usize::from($op.dst & 0x0f)] }; }
    macro_rules! s { ($op:expr) => { reg[usize::from($op.src & 0x0f)] }; }
    macro_rules! jump_if { ($op:expr, $cond:expr) => { if $cond { pc = $op.off as usize } }; }
    macro_rules! ldx {
        ($op:expr, $size:expr, $signed:expr) => {{
            let addr = regions.check(s!($op), $op.off as i16, $size, Access::Load, pc - 1)?;
            // SAFETY: checked above (or bounds checking is off, uBPF's raw mode).
            d!($op) = unsafe { load_extend(addr, $size, $signed) };
        }};
    }
    macro_rules! st {
        ($op:expr, $size:expr, $value:expr) => {{
            let addr = regions.check(d!($op), $op.off as i16, $size, Access::Store, pc - 1)?;
            // SAFETY: checked above (or bounds checking is off, uBPF's raw mode).
            unsafe { store(addr, $size, $value) };
        }};
    }

    loop {
        // SAFETY: `pc` is always a slot index or the sentinel's: it starts at 0, moves to the
        // next op only from a non-final op (the sentinel ends the run), and jump/call targets
        // and return addresses were verified to be slot indices.
        let mut op = *unsafe { ops.get_unchecked(pc) };
        pc += 1;
        // Runs `op`; only a copy loop's head comes back here, with the op it replaced.
        'redo: loop {
            match op.code {
                Code::Add64K    => d!(op) = alu64(alu::ADD,  d!(op), op.imm),
                Code::Add64X    => d!(op) = alu64(alu::ADD,  d!(op), s!(op)),
                Code::Sub64K    => d!(op) = alu64(alu::SUB,  d!(op), op.imm),
                Code::Sub64X    => d!(op) = alu64(alu::SUB,  d!(op), s!(op)),
                Code::Mul64K    => d!(op) = alu64(alu::MUL,  d!(op), op.imm),
                Code::Mul64X    => d!(op) = alu64(alu::MUL,  d!(op), s!(op)),
                Code::Div64K    => d!(op) = alu64(alu::DIV,  d!(op), op.imm),
                Code::Div64X    => d!(op) = alu64(alu::DIV,  d!(op), s!(op)),
                Code::SDiv64K   => d!(op) = sdiv64(d!(op), op.imm),
                Code::SDiv64X   => d!(op) = sdiv64(d!(op), s!(op)),
                Code::Or64K     => d!(op) = alu64(alu::OR,   d!(op), op.imm),
                Code::Or64X     => d!(op) = alu64(alu::OR,   d!(op), s!(op)),
                Code::And64K    => d!(op) = alu64(alu::AND,  d!(op), op.imm),
                Code::And64X    => d!(op) = alu64(alu::AND,  d!(op), s!(op)),
                Code::Lsh64K    => d!(op) = alu64(alu::LSH,  d!(op), op.imm),
                Code::Lsh64X    => d!(op) = alu64(alu::LSH,  d!(op), s!(op)),
                Code::Rsh64K    => d!(op) = alu64(alu::RSH,  d!(op), op.imm),
                Code::Rsh64X    => d!(op) = alu64(alu::RSH,  d!(op), s!(op)),
                Code::Neg64     => d!(op) = alu64(alu::NEG,  d!(op), 0),
                Code::Mod64K    => d!(op) = alu64(alu::MOD,  d!(op), op.imm),
                Code::Mod64X    => d!(op) = alu64(alu::MOD,  d!(op), s!(op)),
                Code::SMod64K   => d!(op) = smod64(d!(op), op.imm),
                Code::SMod64X   => d!(op) = smod64(d!(op), s!(op)),
                Code::Xor64K    => d!(op) = alu64(alu::XOR,  d!(op), op.imm),
                Code::Xor64X    => d!(op) = alu64(alu::XOR,  d!(op), s!(op)),
                Code::Mov64K    => d!(op) = op.imm,
                Code::Mov64X    => d!(op) = s!(op),
                Code::MovSx8    => d!(op) = sign_extend(s!(op), 8),
                Code::MovSx16   => d!(op) = sign_extend(s!(op), 16),
                Code::MovSx32   => d!(op) = sign_extend(s!(op), 32),
                Code::Arsh64K   => d!(op) = alu64(alu::ARSH, d!(op), op.imm),
                Code::Arsh64X   => d!(op) = alu64(alu::ARSH, d!(op), s!(op)),
                Code::Bswap16   => d!(op) = bswap(d!(op), 16),
                Code::Bswap32   => d!(op) = bswap(d!(op), 32),
                Code::Bswap64   => d!(op) = bswap(d!(op), 64),

                Code::Add32K    => d!(op) = alu32(alu::ADD,  d!(op), op.imm),
                Code::Add32X    => d!(op) = alu32(alu::ADD,  d!(op), s!(op)),
                Code::Sub32K    => d!(op) = alu32(alu::SUB,  d!(op), op.imm),
                Code::Sub32X    => d!(op) = alu32(alu::SUB,  d!(op), s!(op)),
                Code::Mul32K    => d!(op) = alu32(alu::MUL,  d!(op), op.imm),
                Code::Mul32X    => d!(op) = alu32(alu::MUL,  d!(op), s!(op)),
                Code::Div32K    => d!(op) = alu32(alu::DIV,  d!(op), op.imm),
                Code::Div32X    => d!(op) = alu32(alu::DIV,  d!(op), s!(op)),
                Code::SDiv32K   => d!(op) = sdiv32(d!(op), op.imm),
                Code::SDiv32X   => d!(op) = sdiv32(d!(op), s!(op)),
                Code::Or32K     => d!(op) = alu32(alu::OR,   d!(op), op.imm),
                Code::Or32X     => d!(op) = alu32(alu::OR,   d!(op), s!(op)),
                Code::And32K    => d!(op) = alu32(alu::AND,  d!(op), op.imm),
                Code::And32X    => d!(op) = alu32(alu::AND,  d!(op), s!(op)),
                Code::Lsh32K    => d!(op) = alu32(alu::LSH,  d!(op), op.imm),
                Code::Lsh32X    => d!(op) = alu32(alu::LSH,  d!(op), s!(op)),
                Code::Rsh32K    => d!(op) = alu32(alu::RSH,  d!(op), op.imm),
                Code::Rsh32X    => d!(op) = alu32(alu::RSH,  d!(op), s!(op)),
                Code::Neg32     => d!(op) = alu32(alu::NEG,  d!(op), 0),
                Code::Mod32K    => d!(op) = alu32(alu::MOD,  d!(op), op.imm),
                Code::Mod32X    => d!(op) = alu32(alu::MOD,  d!(op), s!(op)),
                Code::SMod32K   => d!(op) = smod32(d!(op), op.imm),
                Code::SMod32X   => d!(op) = smod32(d!(op), s!(op)),
                Code::Xor32K    => d!(op) = alu32(alu::XOR,  d!(op), op.imm),
                Code::Xor32X    => d!(op) = alu32(alu::XOR,  d!(op), s!(op)),
                Code::Mov32K    => d!(op) = alu32(alu::MOV,  d!(op), op.imm),
                Code::Mov32X    => d!(op) = alu32(alu::MOV,  d!(op), s!(op)),
                Code::Mov32Sx8  => d!(op) = alu32(alu::MOV,  d!(op), sign_extend(s!(op), 8)),
                Code::Mov32Sx16 => d!(op) = alu32(alu::MOV,  d!(op), sign_extend(s!(op), 16)),
                Code::Arsh32K   => d!(op) = alu32(alu::ARSH, d!(op), op.imm),
                Code::Arsh32X   => d!(op) = alu32(alu::ARSH, d!(op), s!(op)),
                Code::Le16      => d!(op) = le(d!(op), 16),
                Code::Le32      => d!(op) = le(d!(op), 32),
                Code::Be16      => d!(op) = be(d!(op), 16),
                Code::Be32      => d!(op) = be(d!(op), 32),
                Code::Be64      => d!(op) = be(d!(op), 64),
                Code::Nop       => {}
                // Fused forms: each runs its instructions and skips the slots it covered.
                Code::Zext32    => { d!(op) = u64::from(d!(op) as u32); pc += 1; }
                Code::MovZext32 => { d!(op) = u64::from(s!(op) as u32); pc += 2; }
                Code::MovAddX   => {
                    d!(op) = alu64(alu::ADD, s!(op), reg[(op.imm & 0x0f) as usize]);
                    pc += 1;
                }
                Code::MovAddK   => { d!(op) = alu64(alu::ADD, s!(op), op.imm); pc += 1; }
                Code::Lddw      => { d!(op) = op.imm; pc += 1; }

                Code::Ldx1      => ldx!(op, 1, false),
                Code::Ldx2      => ldx!(op, 2, false),
                Code::Ldx4      => ldx!(op, 4, false),
                Code::Ldx8      => ldx!(op, 8, false),
                Code::Ldxs1     => ldx!(op, 1, true),
                Code::Ldxs2     => ldx!(op, 2, true),
                Code::Ldxs4     => ldx!(op, 4, true),
                Code::St1       => st!(op, 1, op.imm),
                Code::St2       => st!(op, 2, op.imm),
                Code::St4       => st!(op, 4, op.imm),
                Code::St8       => st!(op, 8, op.imm),
                Code::Stx1      => st!(op, 1, s!(op)),
                Code::Stx2      => st!(op, 2, s!(op)),
                Code::Stx4      => st!(op, 4, s!(op)),
                Code::Stx8      => st!(op, 8, s!(op)),
                Code::Atomic4 | Code::Atomic8 => {
                    let size = if op.code == Code::Atomic8 { 8 } else { 4 };
                    let imm = op.imm as i32;
                    let addr = regions.check(d!(op), op.off as i16, size, Access::Store, pc - 1)?;
                    // SAFETY: checked above; eBPF memory is only accessed atomically by atomics.
                    let old = unsafe { atomic_rmw(addr, size, imm, s!(op), reg[0]) };
                    if let Some(fetch) = atomic_fetch_reg(imm, op.src) {
                        reg[usize::from(fetch & 0x0f)] = old;
                    }
                }
                Code::LdPacket => {
                    let flavour = env.machine.config.packet_loads;
                    let (opc, imm) = (op.off as u8, op.imm as i32);
                    // SAFETY: `regions` are this run's (the caller's contract covers mem and
                    // the extra regions; raw mode is the embedder's choice).
                    let loaded =
                        unsafe { packet::load(regions, flavour, opc, imm, s!(op), pc - 1)? };
                    match loaded {
                        PacketLoad::Value(v) => reg[0] = v,
                        PacketLoad::Abort => return Ok(0),
                    }
                }

                Code::Ja        => pc = op.off as usize,
                Code::Jeq64K    => jump_if!(op, cond(jmp::JEQ,  d!(op), op.imm)),
                Code::Jeq64X    => jump_if!(op, cond(jmp::JEQ,  d!(op), s!(op))),
                Code::Jgt64K    => jump_if!(op, cond(jmp::JGT,  d!(op), op.imm)),
                Code::Jgt64X    => jump_if!(op, cond(jmp::JGT,  d!(op), s!(op))),
                Code::Jge64K    => jump_if!(op, cond(jmp::JGE,  d!(op), op.imm)),
                Code::Jge64X    => jump_if!(op, cond(jmp::JGE,  d!(op), s!(op))),
                Code::Jset64K   => jump_if!(op, cond(jmp::JSET, d!(op), op.imm)),
                Code::Jset64X   => jump_if!(op, cond(jmp::JSET, d!(op), s!(op))),
                Code::Jne64K    => jump_if!(op, cond(jmp::JNE,  d!(op), op.imm)),
                Code::Jne64X    => jump_if!(op, cond(jmp::JNE,  d!(op), s!(op))),
                Code::Jsgt64K   => jump_if!(op, cond(jmp::JSGT, d!(op), op.imm)),
                Code::Jsgt64X   => jump_if!(op, cond(jmp::JSGT, d!(op), s!(op))),
                Code::Jsge64K   => jump_if!(op, cond(jmp::JSGE, d!(op), op.imm)),
                Code::Jsge64X   => jump_if!(op, cond(jmp::JSGE, d!(op), s!(op))),
                Code::Jlt64K    => jump_if!(op, cond(jmp::JLT,  d!(op), op.imm)),
                Code::Jlt64X    => jump_if!(op, cond(jmp::JLT,  d!(op), s!(op))),
                Code::Jle64K    => jump_if!(op, cond(jmp::JLE,  d!(op), op.imm)),
                Code::Jle64X    => jump_if!(op, cond(jmp::JLE,  d!(op), s!(op))),
                Code::Jslt64K   => jump_if!(op, cond(jmp::JSLT, d!(op), op.imm)),
                Code::Jslt64X   => jump_if!(op, cond(jmp::JSLT, d!(op), s!(op))),
                Code::Jsle64K   => jump_if!(op, cond(jmp::JSLE, d!(op), op.imm)),
                Code::Jsle64X   => jump_if!(op, cond(jmp::JSLE, d!(op), s!(op))),
                Code::Jeq32K    => jump_if!(op, cond32(jmp::JEQ,  d!(op), op.imm)),
                Code::Jeq32X    => jump_if!(op, cond32(jmp::JEQ,  d!(op), s!(op))),
                Code::Jgt32K    => jump_if!(op, cond32(jmp::JGT,  d!(op), op.imm)),
                Code::Jgt32X    => jump_if!(op, cond32(jmp::JGT,  d!(op), s!(op))),
                Code::Jge32K    => jump_if!(op, cond32(jmp::JGE,  d!(op), op.imm)),
                Code::Jge32X    => jump_if!(op, cond32(jmp::JGE,  d!(op), s!(op))),
                Code::Jset32K   => jump_if!(op, cond32(jmp::JSET, d!(op), op.imm)),
                Code::Jset32X   => jump_if!(op, cond32(jmp::JSET, d!(op), s!(op))),
                Code::Jne32K    => jump_if!(op, cond32(jmp::JNE,  d!(op), op.imm)),
                Code::Jne32X    => jump_if!(op, cond32(jmp::JNE,  d!(op), s!(op))),
                Code::Jsgt32K   => jump_if!(op, cond32(jmp::JSGT, d!(op), op.imm)),
                Code::Jsgt32X   => jump_if!(op, cond32(jmp::JSGT, d!(op), s!(op))),
                Code::Jsge32K   => jump_if!(op, cond32(jmp::JSGE, d!(op), op.imm)),
                Code::Jsge32X   => jump_if!(op, cond32(jmp::JSGE, d!(op), s!(op))),
                Code::Jlt32K    => jump_if!(op, cond32(jmp::JLT,  d!(op), op.imm)),
                Code::Jlt32X    => jump_if!(op, cond32(jmp::JLT,  d!(op), s!(op))),
                Code::Jle32K    => jump_if!(op, cond32(jmp::JLE,  d!(op), op.imm)),
                Code::Jle32X    => jump_if!(op, cond32(jmp::JLE,  d!(op), s!(op))),
                Code::Jslt32K   => jump_if!(op, cond32(jmp::JSLT, d!(op), op.imm)),
                Code::Jslt32X   => jump_if!(op, cond32(jmp::JSLT, d!(op), s!(op))),
                Code::Jsle32K   => jump_if!(op, cond32(jmp::JSLE, d!(op), op.imm)),
                Code::Jsle32X   => jump_if!(op, cond32(jmp::JSLE, d!(op), s!(op))),

                Code::CallLocal => {
                    calls.call(&mut reg, pc - 1, op.imm as u16, 0)?;
                    pc = op.off as usize;
                }
                Code::Call | Code::Callx => {
                    let index = if op.code == Code::Call { op.imm } else { d!(op) };
                    let args = [reg[1], reg[2], reg[3], reg[4], reg[5]];
                    let value = call_helper(env, index, args, mem_len, pc - 1)?;
                    reg[0] = value;
                    if value == 0 && env.machine.config.unwind_index.map(u64::from) == Some(index) {
                        return Ok(0);
                    }
                }
                Code::Exit => match calls.exit(&mut reg) {
                    Some(frame) => pc = frame.return_pc,
                    None => return Ok(reg[0]),
                },
                Code::FellOff => return Err(ExecError::FellOffEnd { pc: pc - 1 }),
                Code::Unknown => {
                    return Err(ExecError::UnknownOpcode { pc: pc - 1, opcode: op.imm as u8 });
                }
                Code::Switch => {
                    // The compares and writes up to the key's leaf, at once: none can fail.
                    let switch = &decoded.switches[op.imm as usize];
                    let base = switch.base(reg[usize::from(switch.reg & 0x0f)]);
                    if let Some(values) = &switch.values {
                        // Only values picked: one row of constants, then the join.
                        let width = values.regs.len();
                        let row = switch.row(values, base) * width;
                        for (k, &r) in values.regs.iter().enumerate() {
                            reg[usize::from(r & 0x0f)] = values.rows[row + k];
                        }
                        pc = values.join;
                        break;
                    }
                    let leaf = switch.leaf(base);
                    for &(r, write) in &leaf.writes {
                        reg[usize::from(r & 0x0f)] = write.value(base);
                    }
                    pc = leaf.pc;
                }
                Code::CompareLoop => {
                    let index = op.imm as usize;
                    let (compare, original) = &decoded.compares[index];
                    let skip = !regions.bounds_check || (index < 64 && uncovered & (1 << index) != 0);
                    if !skip && let Ok(regs) = <&mut [u64; 11]>::try_from(&mut reg[..11]) {
                        let bounds = Bounds {
                            mem_start: regions.mem_start,
                            mem_end: regions.mem_end,
                            stack_start: regions.stack_start,
                            stack_end: regions.stack_end,
                        };
                        // SAFETY: `bounds` are this run's live mem and stack, bounds checks
                        // are on.
                        let forward = unsafe { compare.fast_forward(regs, &bounds) };
                        if forward == Forward::Uncovered && index < 64 {
                            uncovered |= 1 << index;
                        }
                    }
                    // The loop's own code runs on from its head (the iteration that leaves).
                    op = *original;
                    continue 'redo;
                }
                Code::CopyLoop => {
                    let index = op.imm as usize;
                    let (copy, original) = &decoded.loops[index];
                    // A loop whose guard refused once runs element by element for the rest of
                    // the run (one bit per loop; loops past the 64th retry each time).
                    let refused_before = index < 64 && refused & (1 << index) != 0;
                    // SAFETY: `regions` is this run's; raw mode is the caller's choice.
                    if !refused_before && unsafe { copy.run_bulk(&mut reg, regions) } {
                        pc = copy.exit;
                    } else {
                        if index < 64 {
                            refused |= 1 << index;
                        }
                        op = *original;
                        continue 'redo;
                    }
                }
            }
            break;
        }
    }
}
