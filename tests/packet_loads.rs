//! The legacy packet loads (`ldabs*`, `ldind*`) in every engine: the interpreter's fast path
//! and per-instruction loop, the safe profile, and the JIT (basic, extended, with constant
//! blinding, with bounds checks off), in both flavours (`docs/semantics.md`, "Legacy packet
//! loads"). Each case states the expected r0 (or error), so a wrong engine fails on its own,
//! not only when it disagrees with another.

use rbpf::asm::assemble;
use rbpf::error::ExecError;
use rbpf::isa::{Insn, encode_slots};
use rbpf::jit::JitMode;
use rbpf::vm::ExecutionProfile;
use rbpf::{PacketLoads, Vm};

/// The packet every case runs on: byte `i` is `0x10 + i` (16 bytes).
fn packet() -> Vec<u8> {
    (0..16).map(|i| 0x10 + i as u8).collect()
}

/// The engines a program runs in.
#[derive(Debug, Clone, Copy)]
enum Engine {
    /// The interpreter's pre-decoded fast path.
    Fast,
    /// The interpreter's per-instruction loop (selected by an instruction limit).
    Checked,
    /// The safe profile (kernel flavour only: the rbpf flavour's accesses go through the
    /// legacy bounds model).
    Safe,
    Jit(JitMode),
    JitBlinded,
    /// The JIT with bounds checks off (kernel flavour only: it checks the packet anyway).
    JitUnchecked,
}

const ENGINES: [Engine; 7] = [
    Engine::Fast,
    Engine::Checked,
    Engine::Safe,
    Engine::Jit(JitMode::Basic),
    Engine::Jit(JitMode::Extended),
    Engine::JitBlinded,
    Engine::JitUnchecked,
];

/// Runs `text` on a copy of `mem` in `engine`; the error is reduced to its kind and pc.
fn run_in(text: &str, mem: &[u8], flavour: PacketLoads, engine: Engine) -> Result<u64, String> {
    let code = encode_slots(&assemble(text).unwrap_or_else(|e| panic!("{text}: {e}")));
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.config_mut().packet_loads = flavour;
    match engine {
        Engine::Checked => vm.config_mut().instruction_limit = 1000,
        Engine::Safe => vm.config_mut().profile = ExecutionProfile::Safe,
        Engine::JitBlinded => vm.config_mut().constant_blinding = true,
        Engine::JitUnchecked => vm.config_mut().bounds_check = false,
        _ => {}
    }
    vm.load(&code).unwrap_or_else(|e| panic!("{text}: {e}"));
    let mut mem = mem.to_vec();
    let result = match engine {
        Engine::Fast | Engine::Checked | Engine::Safe => vm.execute(&mut mem),
        Engine::Jit(mode) => {
            vm.compile(mode).expect("compile");
            vm.execute_jit(&mut mem)
        }
        Engine::JitBlinded | Engine::JitUnchecked => {
            vm.compile(JitMode::Basic).expect("compile");
            vm.execute_jit(&mut mem)
        }
    };
    result.map_err(|e| match e {
        ExecError::OutOfBounds { pc, size, .. } => format!("out of bounds at {pc} size {size}"),
        other => other.to_string(),
    })
}

/// Asserts that `text` gives `expected` in every engine that applies to `flavour`.
fn expect(text: &str, mem: &[u8], flavour: PacketLoads, expected: Result<u64, &str>) {
    let expected = expected.map_err(str::to_owned);
    for engine in ENGINES {
        let rbpf_only_unsafe = matches!(engine, Engine::Safe | Engine::JitUnchecked);
        if flavour == PacketLoads::Rbpf && rbpf_only_unsafe {
            continue;
        }
        let got = run_in(text, mem, flavour, engine);
        assert_eq!(got, expected, "{engine:?}, {flavour:?}:\n{text}");
    }
}

/// `text` in the kernel flavour on [`packet`] gives r0 = `expected` everywhere. Cases that
/// go out of the packet set r0 before and after the load, so that only an abort gives 0.
fn kernel(text: &str, expected: u64) {
    expect(text, &packet(), PacketLoads::Kernel, Ok(expected));
}

#[test]
fn abs_loads_read_network_order_inside_the_packet() {
    kernel("ldabsb 0\nexit", 0x10);
    kernel("ldabsb 15\nexit", 0x1f);
    kernel("ldabsh 3\nexit", 0x1314);
    kernel("ldabsh 14\nexit", 0x1e1f);
    kernel("ldabsw 4\nexit", 0x1415_1617);
    kernel("ldabsw 12\nexit", 0x1c1d_1e1f);
    kernel("ldabsdw 1\nexit", 0x1112_1314_1516_1718);
    kernel("ldabsdw 8\nexit", 0x1819_1a1b_1c1d_1e1f);
}

#[test]
fn abs_loads_outside_the_packet_end_the_program_with_zero() {
    // One past the end for each size, a negative offset, and the largest offset; the `mov`
    // after the load must not run.
    for text in [
        "ldabsb 16",
        "ldabsh 15",
        "ldabsw 13",
        "ldabsdw 9",
        "ldabsb -1",
        "ldabsw -4",
        "ldabsdw 0x7fffffff",
        "ldabsb 0x80000000",
    ] {
        kernel(&format!("mov r0, 7\n{text}\nmov r0, 99\nexit"), 0);
    }
}

#[test]
fn ind_loads_add_the_register_in_32_bits() {
    kernel("mov r3, 5\nldindb r3, 2\nexit", 0x17);
    kernel("mov r3, 16\nldindb r3, -1\nexit", 0x1f);
    kernel("mov r3, 20\nldindh r3, -6\nexit", 0x1e1f);
    kernel("mov r9, 0\nldindw r9, 12\nexit", 0x1c1d_1e1f);
    kernel("mov r1, 8\nldinddw r1, 0\nexit", 0x1819_1a1b_1c1d_1e1f);
    // src + imm wraps in 32 bits: 0xffffffff + 3 = 2; 0x1_0000_0004 + 0 = 4.
    kernel("mov32 r4, -1\nldindb r4, 3\nexit", 0x12);
    kernel("lddw r4, 0x100000004\nldindb r4, 0\nexit", 0x14);
    // r10 is a register like any other for the offset (its low 32 bits).
    // (a stack address: outside a 16-byte packet at offset 0).
    kernel("ldindb r10, 0\nmov r0, 1\nexit", 0);
}

#[test]
fn ind_loads_outside_the_packet_end_the_program_with_zero() {
    for text in [
        "mov r3, 0\nldindb r3, -1",
        "mov r3, 16\nldindb r3, 0",
        "mov r3, 15\nldindh r3, 0",
        "mov r3, 10\nldindw r3, 3",
        "mov r3, 1\nldinddw r3, 8",
        // Negative as a 32-bit int, though in bounds in 64 bits minus 2^32.
        "lddw r3, 0x80000000\nldindb r3, 0",
        "mov32 r3, -2\nldindb r3, 1",
    ] {
        kernel(&format!("mov r0, 7\n{text}\nmov r0, 99\nexit"), 0);
    }
}

#[test]
fn a_load_in_a_local_function_ends_the_whole_program() {
    let text = "mov r6, 5\ncall local f\nmov r0, 99\nexit\nf:\nldindb r6, 100\nmov r0, 3\nexit";
    kernel(text, 0);
    let text = "mov r6, 5\ncall local f\nadd r0, 1\nexit\nf:\nldindb r6, 1\nexit";
    kernel(text, 0x17);
}

#[test]
fn no_packet_means_every_load_is_outside() {
    expect("mov r0, 7\nldabsb 0\nexit", &[], PacketLoads::Kernel, Ok(0));
}

#[test]
fn a_load_inside_a_loop_and_after_memory_accesses() {
    // Sums the packet's 16 bytes with ldind over a counted loop (a loop the JIT may hoist
    // the checks of): 0x10 + … + 0x1f = 0x178; the stack access keeps r10 in use.
    let text = "mov r6, 0\nmov r7, 0\nstdw [r10-8], 0\nloop:\nldindb r6, 0\nadd r7, r0\n\
                ldxdw r2, [r10-8]\nadd r2, 1\nstxdw [r10-8], r2\nadd r6, 1\njlt r6, 16, loop\n\
                mov r0, r7\nexit";
    kernel(text, 0x178);
    // The same loop running one byte too far stops with 0 at the 17th load.
    kernel(&text.replace("jlt r6, 16", "jlt r6, 17"), 0);
}

#[test]
fn rbpf_flavour_reads_host_order_and_faults_outside() {
    let rbpf = |text: &str, expected: Result<u64, &str>| {
        expect(text, &packet(), PacketLoads::Rbpf, expected);
    };
    rbpf("ldabsh 3\nexit", Ok(0x1413));
    rbpf("ldabsw 12\nexit", Ok(0x1f1e_1d1c));
    rbpf("ldabsdw 0\nexit", Ok(0x1716_1514_1312_1110));
    rbpf("mov r3, 7\nldindb r3, 8\nexit", Ok(0x1f));
    rbpf("ldabsb 16\nexit", Err("out of bounds at 0 size 1"));
    rbpf("ldabsdw 9\nexit", Err("out of bounds at 0 size 8"));
    // The immediate is unsigned in rbpf (-1 is 4 GiB past the packet); IND adds in 64 bits.
    rbpf("ldabsb -1\nexit", Err("out of bounds at 0 size 1"));
    rbpf(
        "mov32 r4, -1\nldindb r4, 3\nexit",
        Err("out of bounds at 1 size 1"),
    );
    expect(
        "ldabsb 0\nexit",
        &[],
        PacketLoads::Rbpf,
        Err("out of bounds at 0 size 1"),
    );
}

#[test]
fn the_undefined_behaviour_check_needs_the_ind_register() {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.config_mut().undefined_behavior_check = true;
    let code = encode_slots(&assemble("ldindb r3, 0\nexit").expect("assemble"));
    vm.load(&code).expect("load");
    let err = vm.execute(&mut packet()).expect_err("r3 is unwritten");
    assert!(
        matches!(err, ExecError::UninitializedRegister { pc: 0, reg: 3, .. }),
        "{err}"
    );
    // r0 counts as written by the load (the exit reads it).
    let code = encode_slots(&assemble("ldabsb 2\nexit").expect("assemble"));
    vm.unload().expect("unload");
    vm.load(&code).expect("load");
    assert_eq!(vm.execute(&mut packet()), Ok(0x12));
}

#[test]
fn every_opcode_round_trips_through_the_assembler_and_disassembler() {
    let text = "ldabsw 4\nldabsh -2\nldabsb 0x7fffffff\nldabsdw 0\n\
                ldindw %r1, 4\nldindh %r10, -2\nldindb %r0, 3\nldinddw %r9, 0\nexit\n";
    let prog = assemble(text).expect("assemble");
    let ops: Vec<u8> = prog.iter().map(|i| i.opc).collect();
    assert_eq!(ops, [0x20, 0x28, 0x30, 0x38, 0x40, 0x48, 0x50, 0x58, 0x95]);
    assert_eq!(prog[5], Insn::new(0x48, 0, 10, 0, -2));
    let out = rbpf::disasm::disassemble(&prog);
    assert_eq!(out, text);
    assert_eq!(assemble(&out).expect("reassemble"), prog);
}
