//! Target `nobounds`: bounds checks off, with programs that are in bounds by construction.
//!
//! The input is not bytecode but a recipe: its first byte is the `diff` target's flag byte,
//! the second its limit byte; every following unit of bytes picks one fragment (ALU, loads
//! and stores at constant or masked offsets of `mem` and the stack, atomics, byte swaps,
//! forward and backward jumps, helper calls with in-range pointers, exit) until the input
//! ends. Every memory access stays inside the 256-byte `mem` (whose address lives in r9,
//! which no fragment writes) or the 256 stack bytes below r10 (zeroed by the prologue), so the
//! program is valid with bounds checks off.
//!
//! Checks: the interpreter gives the same outcome with bounds checks on and off (no false
//! fault, no different result), and the `diff` target's interpreter-against-JIT comparison
//! (with every setup the flag byte selects) holds with bounds checks off.

use rbpf::isa::Insn;

use crate::diff::{Setup, Start, run_program};
use crate::harness::{Reader, fail};

/// Bytes of input memory.
const MEM_LEN: i16 = 256;
/// Bytes of stack the programs use, below r10.
const STACK_USED: i16 = 256;
/// The register holding `mem` (never written by fragments).
const MEM_REG: u8 = 9;
/// The register address computations use.
const ADDR_REG: u8 = 8;
/// Most fragments in a program.
const MAX_FRAGMENTS: usize = 160;

/// ALU operations: (opcode bits, offset) — offset 1 is the signed division/modulo form,
/// 8/16/32 the sign-extending moves.
const ALU_OPS: [(u8, i16); 17] = [
    (0x00, 0),
    (0x10, 0),
    (0x20, 0),
    (0x30, 0),
    (0x30, 1),
    (0x40, 0),
    (0x50, 0),
    (0x60, 0),
    (0x70, 0),
    (0x80, 0),
    (0x90, 0),
    (0x90, 1),
    (0xa0, 0),
    (0xb0, 0),
    (0xc0, 0),
    (0xb0, 8),
    (0xb0, 16),
];

/// Conditional jump operations (opcode bits).
const JUMP_OPS: [u8; 11] = [
    0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0,
];

/// Atomic operations (the immediate): add, or, and, xor (each also with fetch), xchg, cmpxchg.
const ATOMIC_OPS: [i32; 10] = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];

/// Memory access sizes: (size bits of the opcode, bytes).
const SIZES: [(u8, i16); 4] = [(0x18, 8), (0x00, 4), (0x08, 2), (0x10, 1)];

/// A fragment, with jumps still pointing at fragment indices.
enum Fragment {
    Plain(Vec<Insn>),
    /// A jump instruction whose offset is set once fragment positions are known.
    Jump(Insn, usize),
}

fn scratch(b: u8) -> u8 {
    b % 8
}

fn imm32(input: &mut Reader<'_>) -> i32 {
    i32::from_le_bytes([input.byte(), input.byte(), input.byte(), input.byte()])
}

fn lddw(dst: u8, value: u64) -> [Insn; 2] {
    [
        Insn::new(0x18, dst, 0, 0, value as u32 as i32),
        Insn::new(0, 0, 0, 0, (value >> 32) as u32 as i32),
    ]
}

/// `(base register, offset)` of an in-bounds access of `size` bytes aligned to `align`:
/// `mem` or the used stack.
fn place(input: &mut Reader<'_>, size: i16, align: i16) -> (u8, i16) {
    let b = input.byte();
    let slots = (if b & 1 == 0 { MEM_LEN } else { STACK_USED }) / align;
    let k = i16::from(input.byte()) % slots * align;
    if b & 1 == 0 {
        (MEM_REG, k.min(MEM_LEN - size))
    } else {
        (10, -STACK_USED + k.min(STACK_USED - size))
    }
}

/// One fragment from the input; `count` is the number of fragments so far.
fn fragment(input: &mut Reader<'_>, count: usize) -> Fragment {
    let kind = input.byte();
    let b = input.byte();
    let (dst, src) = (scratch(b), scratch(b >> 4));
    let is64 = kind & 0x80 != 0;
    let target = |input: &mut Reader<'_>| usize::from(input.byte()) % (count + 8);
    let variant = kind % 16;
    let insns = match variant {
        0 | 1 => {
            let (op, off) = ALU_OPS[usize::from(input.byte()) % ALU_OPS.len()];
            let class = if is64 { 0x07 } else { 0x04 };
            if op == 0x80 {
                vec![Insn::new(op | class, dst, 0, 0, 0)] // neg
            } else if variant == 0 && off < 8 {
                let mut imm = imm32(input);
                if op == 0x30 || op == 0x90 {
                    imm |= 1; // a zero immediate divisor is refused at load
                }
                vec![Insn::new(op | class, dst, 0, off, imm)]
            } else {
                let src = if b & 8 != 0 { MEM_REG } else { src };
                vec![Insn::new(op | 0x08 | class, dst, src, off, 0)]
            }
        }
        2 => lddw(
            dst,
            u64::from(imm32(input) as u32) << 32 | u64::from(imm32(input) as u32),
        )
        .to_vec(),
        3 => {
            // Load at a constant offset (plain or sign-extending).
            let (bits, size) = SIZES[usize::from(b >> 4) % 4];
            let (base, off) = place(input, size, 1);
            let mode = if kind & 0x40 != 0 && size < 8 {
                0x80
            } else {
                0x60
            };
            vec![Insn::new(mode | bits | 0x01, dst, base, off, 0)]
        }
        4 => {
            // Store of a register or an immediate at a constant offset.
            let (bits, size) = SIZES[usize::from(b >> 4) % 4];
            let (base, off) = place(input, size, 1);
            if kind & 0x40 != 0 {
                vec![Insn::new(0x60 | bits | 0x02, base, 0, off, imm32(input))]
            } else {
                vec![Insn::new(0x60 | bits | 0x03, base, dst, off, 0)]
            }
        }
        5 => {
            // Load or store at a register-derived offset of mem: ADDR = mem + (reg & mask).
            let (bits, size) = SIZES[usize::from(b >> 4) % 4];
            let mask = i32::from(MEM_LEN - size);
            // `and` with MEM_LEN - size (all ones below the size's alignment) keeps the offset
            // aligned and at most MEM_LEN - size.
            let mut out = vec![
                Insn::new(0xbf, ADDR_REG, src, 0, 0),
                Insn::new(0x57, ADDR_REG, 0, 0, mask),
            ];
            out.push(Insn::new(0x0f, ADDR_REG, MEM_REG, 0, 0));
            if kind & 0x40 != 0 {
                out.push(Insn::new(0x60 | bits | 0x03, ADDR_REG, dst, 0, 0));
            } else {
                out.push(Insn::new(0x60 | bits | 0x01, dst, ADDR_REG, 0, 0));
            }
            out
        }
        6 => {
            // Atomic at an aligned constant offset.
            let size = if is64 { 8 } else { 4 };
            let (base, off) = place(input, size, size);
            let op = ATOMIC_OPS[usize::from(input.byte()) % ATOMIC_OPS.len()];
            let opc = if is64 { 0xdb } else { 0xc3 };
            vec![Insn::new(opc, base, dst, off, op)]
        }
        7 => {
            // Byte swaps.
            let width = [16, 32, 64][usize::from(input.byte()) % 3];
            let opc = [0xd4, 0xdc, 0xd7][usize::from(b >> 4) % 3];
            vec![Insn::new(opc, dst, 0, 0, width)]
        }
        8 | 9 => {
            // Conditional jump (JMP or JMP32, register or immediate) to any fragment.
            let op = JUMP_OPS[usize::from(input.byte()) % JUMP_OPS.len()];
            let class = if is64 { 0x05 } else { 0x06 };
            let insn = if variant == 8 {
                Insn::new(op | class, dst, 0, 0, imm32(input))
            } else {
                Insn::new(op | 0x08 | class, dst, src, 0, 0)
            };
            return Fragment::Jump(insn, target(input));
        }
        10 => return Fragment::Jump(Insn::new(0x05, 0, 0, 0, 0), target(input)),
        11 => {
            // A pure helper (gather_bytes, no_op, sqrti, unwind, map_lookup, map_update).
            let index = [0, 2, 3, 5, 9, 12][usize::from(b) % 6];
            let mut out: Vec<Insn> = (1..=5)
                .map(|r| Insn::new(0xbf, r, scratch(input.byte()), 0, 0))
                .collect();
            out.push(Insn::new(0x85, 0, 0, 0, index));
            out
        }
        12 => {
            // A pointer helper on a range of mem: memfrob or checksum.
            let start = i32::from(input.byte());
            let len = i32::from(input.byte()) % (i32::from(MEM_LEN) - start + 1);
            vec![
                Insn::new(0xbf, 1, MEM_REG, 0, 0),
                Insn::new(0x07, 1, 0, 0, start),
                Insn::new(0xb7, 2, 0, 0, len),
                Insn::new(0x85, 0, 0, 0, if b & 1 == 0 { 1 } else { 6 }),
            ]
        }
        13 => vec![Insn::new(0x95, 0, 0, 0, 0)],
        14 => vec![Insn::new(
            0xb7 ^ if is64 { 0 } else { 0x03 },
            dst,
            0,
            0,
            imm32(input),
        )],
        _ => {
            // Movsx from a 32-bit value, and a 32-bit move of a register.
            vec![
                Insn::new(0xbf, dst, src, 32, 0),
                Insn::new(0xbc, src, dst, 0, 0),
            ]
        }
    };
    Fragment::Plain(insns)
}

/// The program an input describes: prologue, fragments, epilogue.
fn generate(input: &mut Reader<'_>) -> Vec<Insn> {
    let mut prologue = vec![Insn::new(0xbf, MEM_REG, 1, 0, 0)];
    for k in 1..=STACK_USED / 8 {
        prologue.push(Insn::new(0x7a, 10, 0, -8 * k, 0));
    }
    for r in 0..8 {
        prologue.extend(lddw(
            r,
            0x0101_0101_0101_0101u64.wrapping_mul(u64::from(r) + 3),
        ));
    }
    let mut fragments = Vec::new();
    while !input.is_empty() && fragments.len() < MAX_FRAGMENTS {
        fragments.push(fragment(input, fragments.len()));
    }
    // Slot where each fragment starts; fragment `n` (= the count) is the epilogue.
    let mut starts = Vec::with_capacity(fragments.len() + 1);
    let mut pc = prologue.len();
    for f in &fragments {
        starts.push(pc);
        pc += match f {
            Fragment::Plain(v) => v.len(),
            Fragment::Jump(..) => 1,
        };
    }
    starts.push(pc);
    let mut insns = prologue;
    for f in fragments {
        match f {
            Fragment::Plain(v) => insns.extend(v),
            Fragment::Jump(mut insn, target) => {
                let to = starts[target.min(starts.len() - 1)];
                // A jump to itself is refused at load (uBPF's "infinite loop"): fall through.
                let off = match to as i64 - insns.len() as i64 - 1 {
                    -1 => 0,
                    off => off,
                };
                insn.off = i16::try_from(off).expect("programs are short");
                insns.push(insn);
            }
        }
    }
    // Epilogue: fold the registers into r0.
    for r in 1..=8 {
        insns.push(Insn::new(0x27, 0, 0, 0, 31));
        insns.push(Insn::new(0x0f, 0, r, 0, 0));
    }
    insns.push(Insn::new(0x95, 0, 0, 0, 0));
    insns
}

/// Runs one `nobounds` recipe.
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let mut setup = Setup::decode(input.byte(), input.byte());
    if setup.limit == 0 {
        // Generated loops spin until the limit: 4096 instructions (limit byte 135) keep the
        // eight runs of an input short.
        setup.limit = 135;
    }
    let seed = input.byte();
    let insns = generate(&mut input);
    let code = rbpf::isa::encode_slots(&insns);
    let mem: Vec<u8> = (0..MEM_LEN as usize)
        .map(|i| (i as u8).wrapping_mul(seed | 1))
        .collect();

    // Interpreter: bounds checks on against off.
    let Some(checked_vm) = setup.vm(&code, &insns) else {
        let why = setup.vm_error(&code).unwrap_or_default();
        fail(
            &format!("the validator refused a generated program: {why}"),
            &insns,
        );
    };
    let mut start = Start::new(&mem, setup.extended);
    let checked = start.interpret(&checked_vm);
    setup.unchecked = true;
    let unchecked_vm = setup.vm(&code, &insns).expect("loaded once");
    let unchecked = start.interpret(&unchecked_vm);
    if checked != unchecked {
        fail(
            &format!(
                "bounds checks change the interpreter's outcome of an in-bounds program: on {:x?}, off {:x?}",
                checked.result, unchecked.result
            ),
            &insns,
        );
    }
    if matches!(&checked.result, Err(e) if e.contains("out of bounds")) {
        fail("an in-bounds program faulted", &insns);
    }
    run_program(setup, &mem, &code);
}
