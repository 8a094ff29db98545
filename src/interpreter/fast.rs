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
//! otherwise runs the instruction it replaced; the first compare of a recovered switch becomes
//! a [`Code::Switch`] table lookup (values outside the table run the compares).

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{Env, Frame, atomic_rmw, call_helper, sdiv32, sdiv64, smod32, smod64};
use crate::error::{Access, ExecError};
use crate::exec::idiom::{CopyLoop, Switch};
use crate::exec::memory::{load, store};
use crate::exec::packet::{self, PacketLoad};
use crate::isa::{LOCAL_FUNCTION_STACK_SIZE, MAX_CALL_DEPTH};
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
    // The first compare of a recovered switch: `imm` indexes `Decoded::switches`, which
    // also holds the compare it replaced (run for values outside the table).
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
    /// Recovered switches (`crate::exec::idiom`), with the compare each root slot held.
    switches: Box<[(Switch, Op)]>,
    /// Stack bytes the main function reserves below r10 before a local call.
    main_stack_usage: u16,
}

impl Decoded {
    /// Decodes a verified program.
    pub(crate) fn new(program: &Program) -> Decoded {
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
            let k_or_x = |k: Code, x: Code| if insn.opc & 0x08 == 0 { k } else { x };
            op.code = match insn.opc {
                0x07 | 0x0f => k_or_x(Code::Add64K, Code::Add64X),
                0x17 | 0x1f => k_or_x(Code::Sub64K, Code::Sub64X),
                0x27 | 0x2f => k_or_x(Code::Mul64K, Code::Mul64X),
                0x37 | 0x3f if insn.off == 1 => k_or_x(Code::SDiv64K, Code::SDiv64X),
                0x37 | 0x3f => k_or_x(Code::Div64K, Code::Div64X),
                0x47 | 0x4f => k_or_x(Code::Or64K, Code::Or64X),
                0x57 | 0x5f => k_or_x(Code::And64K, Code::And64X),
                0x67 | 0x6f => k_or_x(Code::Lsh64K, Code::Lsh64X),
                0x77 | 0x7f => k_or_x(Code::Rsh64K, Code::Rsh64X),
                0x87 => Code::Neg64,
                0x97 | 0x9f if insn.off == 1 => k_or_x(Code::SMod64K, Code::SMod64X),
                0x97 | 0x9f => k_or_x(Code::Mod64K, Code::Mod64X),
                0xa7 | 0xaf => k_or_x(Code::Xor64K, Code::Xor64X),
                0xb7 => Code::Mov64K,
                0xbf => match insn.off {
                    8 => Code::MovSx8,
                    16 => Code::MovSx16,
                    32 => Code::MovSx32,
                    _ => Code::Mov64X,
                },
                0xc7 | 0xcf => k_or_x(Code::Arsh64K, Code::Arsh64X),
                0xd7 => match insn.imm {
                    16 => Code::Bswap16,
                    32 => Code::Bswap32,
                    _ => Code::Bswap64,
                },
                0x04 | 0x0c => k_or_x(Code::Add32K, Code::Add32X),
                0x14 | 0x1c => k_or_x(Code::Sub32K, Code::Sub32X),
                0x24 | 0x2c => k_or_x(Code::Mul32K, Code::Mul32X),
                0x34 | 0x3c if insn.off == 1 => k_or_x(Code::SDiv32K, Code::SDiv32X),
                0x34 | 0x3c => k_or_x(Code::Div32K, Code::Div32X),
                0x44 | 0x4c => k_or_x(Code::Or32K, Code::Or32X),
                0x54 | 0x5c => k_or_x(Code::And32K, Code::And32X),
                0x64 | 0x6c => k_or_x(Code::Lsh32K, Code::Lsh32X),
                0x74 | 0x7c => k_or_x(Code::Rsh32K, Code::Rsh32X),
                0x84 => Code::Neg32,
                0x94 | 0x9c if insn.off == 1 => k_or_x(Code::SMod32K, Code::SMod32X),
                0x94 | 0x9c => k_or_x(Code::Mod32K, Code::Mod32X),
                0xa4 | 0xac => k_or_x(Code::Xor32K, Code::Xor32X),
                0xb4 => Code::Mov32K,
                0xbc => match insn.off {
                    8 => Code::Mov32Sx8,
                    16 => Code::Mov32Sx16,
                    _ => Code::Mov32X,
                },
                0xc4 | 0xcc => k_or_x(Code::Arsh32K, Code::Arsh32X),
                0xd4 => match insn.imm {
                    16 => Code::Le16,
                    32 => Code::Le32,
                    _ => Code::Nop,
                },
                0xdc => match insn.imm {
                    16 => Code::Be16,
                    32 => Code::Be32,
                    _ => Code::Be64,
                },
                0x18 => {
                    let high = insns.get(pc + 1).map_or(0, |next| next.imm as u32);
                    op.imm = u64::from(insn.imm as u32) | (u64::from(high) << 32);
                    Code::Lddw
                }
                0x61 => Code::Ldx4,
                0x69 => Code::Ldx2,
                0x71 => Code::Ldx1,
                0x79 => Code::Ldx8,
                0x81 => Code::Ldxs4,
                0x89 => Code::Ldxs2,
                0x91 => Code::Ldxs1,
                0x62 => Code::St4,
                0x6a => Code::St2,
                0x72 => Code::St1,
                0x7a => Code::St8,
                0x63 => Code::Stx4,
                0x6b => Code::Stx2,
                0x73 => Code::Stx1,
                0x7b => Code::Stx8,
                0xc3 => Code::Atomic4,
                0xdb => Code::Atomic8,
                opc if crate::isa::is_packet_load(opc) => {
                    op.off = i32::from(opc);
                    Code::LdPacket
                }
                0x05 => {
                    op.off = target(i64::from(insn.off));
                    Code::Ja
                }
                0x06 => {
                    op.off = target(i64::from(insn.imm));
                    Code::Ja
                }
                0x85 if insn.src == 1 => {
                    let callee = target(i64::from(insn.imm));
                    op.off = callee;
                    op.imm = u64::from(
                        program
                            .function_at(callee as usize)
                            .map_or(LOCAL_FUNCTION_STACK_SIZE, |f| f.stack_usage),
                    );
                    Code::CallLocal
                }
                0x85 => {
                    op.imm = u64::from(insn.imm as u32);
                    Code::Call
                }
                0x8d => Code::Callx,
                0x95 => Code::Exit,
                opc if matches!(opc & 0x07, 0x05 | 0x06) => {
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
        let copies = crate::exec::idiom::find_copy_loops(insns);
        fuse(&mut ops, &copies);
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
        let mut switches = Vec::new();
        for switch in crate::exec::idiom::find_switches(insns) {
            let root = switch.root;
            let original = ops[root];
            ops[root] = Op {
                code: Code::Switch,
                dst: 0,
                src: 0,
                off: 0,
                imm: switches.len() as u64,
            };
            switches.push((switch, original));
        }
        Decoded {
            ops: ops.into_boxed_slice(),
            loops: loops.into_boxed_slice(),
            switches: switches.into_boxed_slice(),
            main_stack_usage: program.functions.first().map_or(0, |f| f.stack_usage),
        }
    }
}

/// Turns common instruction pairs and triples into one op at the first slot. The covered
/// slots keep their own ops (a jump may land on them); no fused op can fail, so error pcs
/// are unaffected. A copy loop's head is never covered, so entering it by falling through
/// still meets its bulk path.
fn fuse(ops: &mut [Op], copies: &[CopyLoop]) {
    let head = |pc: usize| copies.binary_search_by_key(&pc, |c| c.head).is_ok();
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
    let wide = opc & 0x07 == 0x05;
    let x = opc & 0x08 != 0;
    let pick = |k64: Code, x64: Code, k32: Code, x32: Code| match (wide, x) {
        (true, false) => k64,
        (true, true) => x64,
        (false, false) => k32,
        (false, true) => x32,
    };
    Some(match opc & 0xf0 {
        0x10 => pick(Jeq64K, Jeq64X, Jeq32K, Jeq32X),
        0x20 => pick(Jgt64K, Jgt64X, Jgt32K, Jgt32X),
        0x30 => pick(Jge64K, Jge64X, Jge32K, Jge32X),
        0x40 => pick(Jset64K, Jset64X, Jset32K, Jset32X),
        0x50 => pick(Jne64K, Jne64X, Jne32K, Jne32X),
        0x60 => pick(Jsgt64K, Jsgt64X, Jsgt32K, Jsgt32X),
        0x70 => pick(Jsge64K, Jsge64X, Jsge32K, Jsge32X),
        0xa0 => pick(Jlt64K, Jlt64X, Jlt32K, Jlt32X),
        0xb0 => pick(Jle64K, Jle64X, Jle32K, Jle32X),
        0xc0 => pick(Jslt64K, Jslt64X, Jslt32K, Jslt32X),
        0xd0 => pick(Jsle64K, Jsle64X, Jsle32K, Jsle32X),
        _ => return None,
    })
}

/// Runs `decoded` (the pre-decoded form of `env.program`) with no per-instruction checks.
///
/// # Safety
/// See `Vm::execute_raw`.
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

    let mut frames = [const { core::mem::MaybeUninit::<Frame>::uninit() }; MAX_CALL_DEPTH];
    let mut depth = 0usize;
    let mut stack_usage = decoded.main_stack_usage;

    let mut pc = 0usize;
    let mut refused = 0u64;

    macro_rules! d {
        ($op:expr) => {
            reg[usize::from($op.dst & 0x0f)]
        };
    }
    macro_rules! s {
        ($op:expr) => {
            reg[usize::from($op.src & 0x0f)]
        };
    }
    macro_rules! alu32 {
        ($op:expr, $v:expr) => {
            d!($op) = u64::from($v as u32)
        };
    }
    macro_rules! jump_if {
        ($op:expr, $cond:expr) => {
            if $cond {
                pc = $op.off as usize;
            }
        };
    }
    macro_rules! ldx {
        ($op:expr, $size:expr, $extend:expr) => {{
            let addr = regions.check(s!($op), $op.off as i16, $size, Access::Load, pc - 1)?;
            // SAFETY: checked above (or bounds checking is off, uBPF's raw mode).
            let value = unsafe { load(addr, $size) };
            d!($op) = $extend(value);
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
                Code::Add64K => d!(op) = d!(op).wrapping_add(op.imm),
                Code::Add64X => d!(op) = d!(op).wrapping_add(s!(op)),
                Code::Sub64K => d!(op) = d!(op).wrapping_sub(op.imm),
                Code::Sub64X => d!(op) = d!(op).wrapping_sub(s!(op)),
                Code::Mul64K => d!(op) = d!(op).wrapping_mul(op.imm),
                Code::Mul64X => d!(op) = d!(op).wrapping_mul(s!(op)),
                Code::Div64K => d!(op) = d!(op).checked_div(op.imm).unwrap_or(0),
                Code::Div64X => d!(op) = d!(op).checked_div(s!(op)).unwrap_or(0),
                Code::SDiv64K => d!(op) = sdiv64(d!(op), op.imm),
                Code::SDiv64X => d!(op) = sdiv64(d!(op), s!(op)),
                Code::Or64K => d!(op) |= op.imm,
                Code::Or64X => d!(op) |= s!(op),
                Code::And64K => d!(op) &= op.imm,
                Code::And64X => d!(op) &= s!(op),
                Code::Lsh64K => d!(op) = d!(op).wrapping_shl(op.imm as u32),
                Code::Lsh64X => d!(op) = d!(op).wrapping_shl(s!(op) as u32),
                Code::Rsh64K => d!(op) = d!(op).wrapping_shr(op.imm as u32),
                Code::Rsh64X => d!(op) = d!(op).wrapping_shr(s!(op) as u32),
                Code::Neg64 => d!(op) = d!(op).wrapping_neg(),
                Code::Mod64K => {
                    let v = d!(op);
                    d!(op) = v.checked_rem(op.imm).unwrap_or(v);
                }
                Code::Mod64X => {
                    let v = d!(op);
                    d!(op) = v.checked_rem(s!(op)).unwrap_or(v);
                }
                Code::SMod64K => d!(op) = smod64(d!(op), op.imm),
                Code::SMod64X => d!(op) = smod64(d!(op), s!(op)),
                Code::Xor64K => d!(op) ^= op.imm,
                Code::Xor64X => d!(op) ^= s!(op),
                Code::Mov64K => d!(op) = op.imm,
                Code::Mov64X => d!(op) = s!(op),
                Code::MovSx8 => d!(op) = s!(op) as i8 as i64 as u64,
                Code::MovSx16 => d!(op) = s!(op) as i16 as i64 as u64,
                Code::MovSx32 => d!(op) = s!(op) as i32 as i64 as u64,
                Code::Arsh64K => d!(op) = (d!(op) as i64).wrapping_shr(op.imm as u32) as u64,
                Code::Arsh64X => d!(op) = (d!(op) as i64).wrapping_shr(s!(op) as u32) as u64,
                Code::Bswap16 => d!(op) = u64::from((d!(op) as u16).swap_bytes()),
                Code::Bswap32 => d!(op) = u64::from((d!(op) as u32).swap_bytes()),
                Code::Bswap64 => d!(op) = d!(op).swap_bytes(),

                Code::Add32K => alu32!(op, (d!(op) as u32).wrapping_add(op.imm as u32)),
                Code::Add32X => alu32!(op, (d!(op) as u32).wrapping_add(s!(op) as u32)),
                Code::Sub32K => alu32!(op, (d!(op) as u32).wrapping_sub(op.imm as u32)),
                Code::Sub32X => alu32!(op, (d!(op) as u32).wrapping_sub(s!(op) as u32)),
                Code::Mul32K => alu32!(op, (d!(op) as u32).wrapping_mul(op.imm as u32)),
                Code::Mul32X => alu32!(op, (d!(op) as u32).wrapping_mul(s!(op) as u32)),
                Code::Div32K => alu32!(op, (d!(op) as u32).checked_div(op.imm as u32).unwrap_or(0)),
                Code::Div32X => alu32!(op, (d!(op) as u32).checked_div(s!(op) as u32).unwrap_or(0)),
                Code::SDiv32K => d!(op) = sdiv32(d!(op), op.imm),
                Code::SDiv32X => d!(op) = sdiv32(d!(op), s!(op)),
                Code::Or32K => alu32!(op, (d!(op) as u32) | op.imm as u32),
                Code::Or32X => alu32!(op, (d!(op) as u32) | s!(op) as u32),
                Code::And32K => alu32!(op, (d!(op) as u32) & op.imm as u32),
                Code::And32X => alu32!(op, (d!(op) as u32) & s!(op) as u32),
                Code::Lsh32K => alu32!(op, (d!(op) as u32).wrapping_shl(op.imm as u32)),
                Code::Lsh32X => alu32!(op, (d!(op) as u32).wrapping_shl(s!(op) as u32)),
                Code::Rsh32K => alu32!(op, (d!(op) as u32).wrapping_shr(op.imm as u32)),
                Code::Rsh32X => alu32!(op, (d!(op) as u32).wrapping_shr(s!(op) as u32)),
                Code::Neg32 => alu32!(op, (d!(op) as u32).wrapping_neg()),
                Code::Mod32K => {
                    let v = d!(op) as u32;
                    alu32!(op, v.checked_rem(op.imm as u32).unwrap_or(v));
                }
                Code::Mod32X => {
                    let v = d!(op) as u32;
                    alu32!(op, v.checked_rem(s!(op) as u32).unwrap_or(v));
                }
                Code::SMod32K => d!(op) = smod32(d!(op), op.imm),
                Code::SMod32X => d!(op) = smod32(d!(op), s!(op)),
                Code::Xor32K => alu32!(op, (d!(op) as u32) ^ op.imm as u32),
                Code::Xor32X => alu32!(op, (d!(op) as u32) ^ s!(op) as u32),
                Code::Mov32K => alu32!(op, op.imm as u32),
                Code::Mov32X => alu32!(op, s!(op) as u32),
                Code::Mov32Sx8 => alu32!(op, s!(op) as i8 as i32 as u32),
                Code::Mov32Sx16 => alu32!(op, s!(op) as i16 as i32 as u32),
                Code::Arsh32K => alu32!(op, (d!(op) as i32).wrapping_shr(op.imm as u32)),
                Code::Arsh32X => alu32!(op, (d!(op) as i32).wrapping_shr(s!(op) as u32)),
                Code::Le16 => d!(op) &= 0xffff,
                Code::Le32 => d!(op) &= 0xffff_ffff,
                Code::Be16 => d!(op) = u64::from((d!(op) as u16).to_be()),
                Code::Be32 => d!(op) = u64::from((d!(op) as u32).to_be()),
                Code::Be64 => d!(op) = d!(op).to_be(),
                Code::Nop => {}
                Code::Zext32 => {
                    d!(op) &= 0xffff_ffff;
                    pc += 1;
                }
                Code::MovZext32 => {
                    d!(op) = s!(op) & 0xffff_ffff;
                    pc += 2;
                }
                Code::MovAddX => {
                    d!(op) = s!(op).wrapping_add(reg[(op.imm & 0x0f) as usize]);
                    pc += 1;
                }
                Code::MovAddK => {
                    d!(op) = s!(op).wrapping_add(op.imm);
                    pc += 1;
                }
                Code::Lddw => {
                    d!(op) = op.imm;
                    pc += 1;
                }

                Code::Ldx1 => ldx!(op, 1, |v: u64| v),
                Code::Ldx2 => ldx!(op, 2, |v: u64| v),
                Code::Ldx4 => ldx!(op, 4, |v: u64| v),
                Code::Ldx8 => ldx!(op, 8, |v: u64| v),
                Code::Ldxs1 => ldx!(op, 1, |v: u64| v as u8 as i8 as i64 as u64),
                Code::Ldxs2 => ldx!(op, 2, |v: u64| v as u16 as i16 as i64 as u64),
                Code::Ldxs4 => ldx!(op, 4, |v: u64| v as u32 as i32 as i64 as u64),
                Code::St1 => st!(op, 1, op.imm),
                Code::St2 => st!(op, 2, op.imm),
                Code::St4 => st!(op, 4, op.imm),
                Code::St8 => st!(op, 8, op.imm),
                Code::Stx1 => st!(op, 1, s!(op)),
                Code::Stx2 => st!(op, 2, s!(op)),
                Code::Stx4 => st!(op, 4, s!(op)),
                Code::Stx8 => st!(op, 8, s!(op)),
                Code::Atomic4 | Code::Atomic8 => {
                    let size = if op.code == Code::Atomic8 { 8 } else { 4 };
                    let imm = op.imm as i32;
                    let addr = regions.check(d!(op), op.off as i16, size, Access::Store, pc - 1)?;
                    // SAFETY: checked above; eBPF memory is only accessed atomically by atomics.
                    let old = unsafe { atomic_rmw(addr, size, imm, s!(op), reg[0]) };
                    if imm & 0xf0 == crate::isa::atomic::CMPXCHG & 0xf0 {
                        reg[0] = old;
                    } else if imm & crate::isa::atomic::FETCH != 0 {
                        s!(op) = old;
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

                Code::Ja => pc = op.off as usize,
                Code::Jeq64K => jump_if!(op, d!(op) == op.imm),
                Code::Jeq64X => jump_if!(op, d!(op) == s!(op)),
                Code::Jgt64K => jump_if!(op, d!(op) > op.imm),
                Code::Jgt64X => jump_if!(op, d!(op) > s!(op)),
                Code::Jge64K => jump_if!(op, d!(op) >= op.imm),
                Code::Jge64X => jump_if!(op, d!(op) >= s!(op)),
                Code::Jset64K => jump_if!(op, d!(op) & op.imm != 0),
                Code::Jset64X => jump_if!(op, d!(op) & s!(op) != 0),
                Code::Jne64K => jump_if!(op, d!(op) != op.imm),
                Code::Jne64X => jump_if!(op, d!(op) != s!(op)),
                Code::Jsgt64K => jump_if!(op, (d!(op) as i64) > op.imm as i64),
                Code::Jsgt64X => jump_if!(op, (d!(op) as i64) > s!(op) as i64),
                Code::Jsge64K => jump_if!(op, (d!(op) as i64) >= op.imm as i64),
                Code::Jsge64X => jump_if!(op, (d!(op) as i64) >= s!(op) as i64),
                Code::Jlt64K => jump_if!(op, d!(op) < op.imm),
                Code::Jlt64X => jump_if!(op, d!(op) < s!(op)),
                Code::Jle64K => jump_if!(op, d!(op) <= op.imm),
                Code::Jle64X => jump_if!(op, d!(op) <= s!(op)),
                Code::Jslt64K => jump_if!(op, (d!(op) as i64) < op.imm as i64),
                Code::Jslt64X => jump_if!(op, (d!(op) as i64) < s!(op) as i64),
                Code::Jsle64K => jump_if!(op, (d!(op) as i64) <= op.imm as i64),
                Code::Jsle64X => jump_if!(op, (d!(op) as i64) <= s!(op) as i64),
                Code::Jeq32K => jump_if!(op, d!(op) as u32 == op.imm as u32),
                Code::Jeq32X => jump_if!(op, d!(op) as u32 == s!(op) as u32),
                Code::Jgt32K => jump_if!(op, d!(op) as u32 > op.imm as u32),
                Code::Jgt32X => jump_if!(op, d!(op) as u32 > s!(op) as u32),
                Code::Jge32K => jump_if!(op, d!(op) as u32 >= op.imm as u32),
                Code::Jge32X => jump_if!(op, d!(op) as u32 >= s!(op) as u32),
                Code::Jset32K => jump_if!(op, d!(op) as u32 & op.imm as u32 != 0),
                Code::Jset32X => jump_if!(op, d!(op) as u32 & s!(op) as u32 != 0),
                Code::Jne32K => jump_if!(op, d!(op) as u32 != op.imm as u32),
                Code::Jne32X => jump_if!(op, d!(op) as u32 != s!(op) as u32),
                Code::Jsgt32K => jump_if!(op, (d!(op) as i32) > op.imm as i32),
                Code::Jsgt32X => jump_if!(op, (d!(op) as i32) > s!(op) as i32),
                Code::Jsge32K => jump_if!(op, (d!(op) as i32) >= op.imm as i32),
                Code::Jsge32X => jump_if!(op, (d!(op) as i32) >= s!(op) as i32),
                Code::Jlt32K => jump_if!(op, (d!(op) as u32) < op.imm as u32),
                Code::Jlt32X => jump_if!(op, (d!(op) as u32) < s!(op) as u32),
                Code::Jle32K => jump_if!(op, d!(op) as u32 <= op.imm as u32),
                Code::Jle32X => jump_if!(op, d!(op) as u32 <= s!(op) as u32),
                Code::Jslt32K => jump_if!(op, (d!(op) as i32) < op.imm as i32),
                Code::Jslt32X => jump_if!(op, (d!(op) as i32) < s!(op) as i32),
                Code::Jsle32K => jump_if!(op, (d!(op) as i32) <= op.imm as i32),
                Code::Jsle32X => jump_if!(op, (d!(op) as i32) <= s!(op) as i32),

                Code::CallLocal => {
                    if depth >= MAX_CALL_DEPTH {
                        return Err(ExecError::CallDepthExceeded {
                            pc: pc - 1,
                            depth: depth + 1,
                            max: MAX_CALL_DEPTH,
                        });
                    }
                    frames[depth].write(Frame {
                        return_pc: pc,
                        saved: [reg[6], reg[7], reg[8], reg[9]],
                        stack_usage,
                        saved_mask: 0,
                    });
                    depth += 1;
                    reg[10] = reg[10].wrapping_sub(u64::from(stack_usage));
                    stack_usage = op.imm as u16;
                    pc = op.off as usize;
                }
                Code::Call | Code::Callx => {
                    let index = if op.code == Code::Call {
                        op.imm
                    } else {
                        d!(op)
                    };
                    let args = [reg[1], reg[2], reg[3], reg[4], reg[5]];
                    let value = call_helper(env, index, args, mem_len, pc - 1)?;
                    reg[0] = value;
                    if value == 0 && env.machine.config.unwind_index.map(u64::from) == Some(index) {
                        return Ok(0);
                    }
                }
                Code::Exit => {
                    if depth == 0 {
                        return Ok(reg[0]);
                    }
                    depth -= 1;
                    // SAFETY: frame `depth` was written by the call that raised `depth` above it.
                    let frame = unsafe { frames[depth].assume_init() };
                    [reg[6], reg[7], reg[8], reg[9]] = frame.saved;
                    reg[10] = reg[10].wrapping_add(u64::from(frame.stack_usage));
                    stack_usage = frame.stack_usage;
                    pc = frame.return_pc;
                }
                Code::FellOff => return Err(ExecError::FellOffEnd { pc: pc - 1 }),
                Code::Unknown => {
                    return Err(ExecError::UnknownOpcode {
                        pc: pc - 1,
                        opcode: op.imm as u8,
                    });
                }
                Code::Switch => {
                    let (switch, original) = &decoded.switches[op.imm as usize];
                    let index = reg[usize::from(switch.reg & 0x0f)].wrapping_sub(switch.low as u64);
                    let inside = switch.targets.get(index as usize);
                    match inside.filter(|_| index <= u64::from(u32::MAX)) {
                        Some(&target) => pc = target,
                        None => match switch.outside_target(reg[usize::from(switch.reg & 0x0f)]) {
                            Some(target) => pc = target,
                            None => {
                                op = *original;
                                continue 'redo;
                            }
                        },
                    }
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
