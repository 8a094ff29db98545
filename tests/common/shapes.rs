//! Large programs of every control-flow shape the JIT must compile in bounded, near-linear
//! time: the regression tests (`tests/jit_large.rs`) run each through the interpreter and the
//! JIT, and the compile-time growth bench (`benches/compile_growth.rs`) times them.
//!
//! Every generator returns exactly `slots` slots (at least 8) that the validator accepts, using
//! r1 = mem (at least [`MEM_LEN`] bytes) where it loads and stores, and helper
//! [`HELPER_INDEX`] where it calls one.

use rbpf::Vm;
use rbpf::isa::{self, Insn};

/// Bytes of memory the load/store shapes read and write (r1 points to it, r2 is its length).
pub const MEM_LEN: usize = 64;
/// The helper index called by the helper-call shape.
pub const HELPER_INDEX: i32 = 1;

/// The helper the helper-call shape calls at [`HELPER_INDEX`]: its first argument plus one.
pub unsafe extern "C" fn add_one(
    a: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut std::ffi::c_void,
) -> u64 {
    a.wrapping_add(1)
}

/// A VM with `insns` loaded, [`add_one`] registered and `code_size` bytes of JIT code buffer.
pub fn loaded(insns: &[Insn], code_size: usize) -> Result<Vm, String> {
    let mut vm = Vm::new();
    vm.register_helper(HELPER_INDEX as u32, Some("add_one"), add_one)
        .map_err(|e| e.to_string())?;
    vm.config_mut().jit_code_size = code_size;
    vm.load(&isa::encode_slots(insns))
        .map_err(|e| e.to_string())?;
    Ok(vm)
}

/// One program shape: its name, what it is, and its generator.
pub struct Shape {
    /// Short name used by the table and the tests.
    pub name: &'static str,
    /// What the program does.
    pub description: &'static str,
    /// Builds a program of exactly the given number of slots.
    pub build: fn(usize) -> Vec<Insn>,
}

/// Every shape, in table order.
pub const ALL: &[Shape] = &[
    Shape {
        name: "alu",
        description: "straight-line 64-bit ALU over r0..r9, one block",
        build: alu,
    },
    Shape {
        name: "jeq-each",
        description: "65,534 × `jeq r0, i, +0`: every jump lands on the next slot",
        build: jeq_each,
    },
    Shape {
        name: "jump-each",
        description: "`jgt r3, i, +1` on every slot: a real branch per instruction",
        build: jump_each,
    },
    Shape {
        name: "jump-other",
        description: "`jgt r3, i, +1; add r0, i`: a branch every other instruction",
        build: jump_other,
    },
    Shape {
        name: "to-end",
        description: "`mov r0, i; jeq r3, i, <exit>`: every jump to the last block",
        build: to_end,
    },
    Shape {
        name: "backward",
        description: "a 3-slot counted loop repeated: a back edge every 4 slots",
        build: backward,
    },
    Shape {
        name: "ldst",
        description: "checked loads from mem and stores to mem and the stack",
        build: ldst,
    },
    Shape {
        name: "helper",
        description: "`mov r1, i; call 1` repeated (helper calls)",
        build: helper,
    },
    Shape {
        name: "local-call",
        description: "`call local` repeated, to a 2-slot function",
        build: local_call,
    },
];

const EXIT: Insn = Insn::new(0x95, 0, 0, 0, 0);

fn mov(dst: u8, imm: i32) -> Insn {
    Insn::new(0xb7, dst, 0, 0, imm)
}

fn add_imm(dst: u8, imm: i32) -> Insn {
    Insn::new(0x07, dst, 0, 0, imm)
}

/// Pads `body` with `add r0, 1` up to `slots - 1` and appends `exit`.
fn finish(mut body: Vec<Insn>, slots: usize) -> Vec<Insn> {
    while body.len() < slots - 1 {
        body.push(add_imm(0, 1));
    }
    body.truncate(slots - 1);
    body.push(EXIT);
    body
}

fn alu(slots: usize) -> Vec<Insn> {
    let mut body: Vec<Insn> = (0..10).map(|r| mov(r, i32::from(r) + 1)).collect();
    let mut i = 0usize;
    while body.len() < slots - 1 {
        let dst = (i % 10) as u8;
        let src = ((i * 7 + 3) % 10) as u8;
        body.push(match i % 5 {
            0 => Insn::new(0x0f, dst, src, 0, 0),      // add dst, src
            1 => Insn::new(0xaf, dst, src, 0, 0),      // xor dst, src
            2 => Insn::new(0x27, dst, 0, 0, 3),        // mul dst, 3
            3 => Insn::new(0x77, dst, 0, 0, 1),        // rsh dst, 1
            _ => Insn::new(0x07, dst, 0, 0, i as i32), // add dst, i
        });
        i += 1;
    }
    finish(body, slots)
}

fn jeq_each(slots: usize) -> Vec<Insn> {
    let body = (0..slots - 1)
        .map(|i| Insn::new(0x15, 0, 0, 0, i as i32))
        .collect();
    finish(body, slots)
}

fn jump_each(slots: usize) -> Vec<Insn> {
    // r3 = 1000: the first thousand jumps are taken, each skipping the next one.
    let mut body = vec![mov(3, 1000)];
    while body.len() < slots - 2 {
        body.push(Insn::new(0x25, 3, 0, 1, body.len() as i32)); // jgt r3, pc, +1
    }
    // `finish` adds one `add r0, 1`, which the last jump may skip, then `exit`.
    finish(body, slots)
}

fn to_end(slots: usize) -> Vec<Insn> {
    // r3 = 7: exactly one jump (the one comparing with 7) is taken. Jump offsets are 16 bits,
    // so the program is cut into segments of at most SEGMENT slots, each ending in
    // `ja +1; exit`: the jumps of a segment go to its `exit`, falling through skips it.
    const SEGMENT: usize = 16_384;
    let mut body = vec![mov(3, 7)];
    let mut i = 0;
    while body.len() + 2 < slots - 1 {
        let seg_end = ((body.len() / SEGMENT + 1) * SEGMENT).min(slots - 1);
        if body.len() + 4 > seg_end {
            break;
        }
        // Slots up to seg_end - 2 are pairs; seg_end - 2 is `ja +1`, seg_end - 1 is `exit`.
        while body.len() + 2 <= seg_end - 2 {
            body.push(mov(0, i));
            let pc = body.len();
            body.push(Insn::new(0x15, 3, 0, (seg_end - 1 - (pc + 1)) as i16, i));
            i += 1;
        }
        while body.len() < seg_end - 2 {
            body.push(add_imm(0, 1));
        }
        if seg_end == slots - 1 {
            // The last segment's jumps land on the program's final `exit`.
            body.push(add_imm(0, 1));
            break;
        }
        body.push(Insn::new(0x05, 0, 0, 1, 0)); // ja +1
        body.push(EXIT);
    }
    finish(body, slots)
}

fn jump_other(slots: usize) -> Vec<Insn> {
    let mut body = vec![mov(3, 1000)];
    let mut i = 0;
    while body.len() + 2 < slots {
        body.push(Insn::new(0x25, 3, 0, 1, i)); // jgt r3, i, +1
        body.push(add_imm(0, i));
        i += 1;
    }
    finish(body, slots)
}

fn backward(slots: usize) -> Vec<Insn> {
    let mut body = Vec::new();
    while body.len() + 4 < slots {
        body.push(mov(3, 3)); // r3 = 3
        body.push(add_imm(0, 1)); // loop: r0 += 1
        body.push(add_imm(3, -1)); // r3 -= 1
        body.push(Insn::new(0x55, 3, 0, -3, 0)); // jne r3, 0, loop
    }
    finish(body, slots)
}

fn ldst(slots: usize) -> Vec<Insn> {
    let mut body = Vec::new();
    let mut i = 0usize;
    while body.len() < slots - 1 {
        let off = ((i % (MEM_LEN / 8)) * 8) as i16;
        let stack_off = -8 * ((i % 64) as i16 + 1);
        body.extend([
            Insn::new(0x79, 4, 1, off, 0),        // ldxdw r4, [r1+off]
            Insn::new(0x0f, 0, 4, 0, 0),          // add r0, r4
            Insn::new(0x7b, 10, 0, stack_off, 0), // stxdw [r10+stack_off], r0
            Insn::new(0x71, 5, 1, off + 3, 0),    // ldxb r5, [r1+off+3]
            Insn::new(0x7b, 1, 0, off, 0),        // stxdw [r1+off], r0
            Insn::new(0x79, 6, 10, stack_off, 0), // ldxdw r6, [r10+stack_off]
            Insn::new(0xaf, 0, 6, 0, 0),          // xor r0, r6
            Insn::new(0x0f, 0, 5, 0, 0),          // add r0, r5
        ]);
        i += 1;
    }
    finish(body, slots)
}

fn helper(slots: usize) -> Vec<Insn> {
    let mut body = Vec::new();
    let mut i = 0;
    while body.len() + 3 < slots {
        body.push(mov(1, i)); // r1 = i
        body.push(Insn::new(0x85, 0, 0, 0, HELPER_INDEX)); // r0 = helper(r1, ...)
        body.push(Insn::new(0x0f, 6, 0, 0, 0)); // r6 += r0
        i += 1;
    }
    body.push(Insn::new(0xbf, 0, 6, 0, 0)); // r0 = r6
    finish(body, slots)
}

fn local_call(slots: usize) -> Vec<Insn> {
    // main: `call f; add r6, r0` repeated, then `mov r0, r6; exit`; f: `add r0, 1; exit`
    // (r0 carries over, so the result counts the calls).
    let main_len = slots - 2;
    let mut main = vec![mov(0, 0)];
    while main.len() + 3 < main_len {
        let pc = main.len() as i64;
        main.push(Insn::new(
            0x85,
            0,
            1,
            0,
            (main_len as i64 - (pc + 1)) as i32,
        ));
        main.push(Insn::new(0x0f, 6, 0, 0, 0)); // add r6, r0
    }
    main.push(Insn::new(0xbf, 0, 6, 0, 0)); // mov r0, r6
    let mut main = finish(main, main_len);
    main.extend([add_imm(0, 1), EXIT]);
    main
}
