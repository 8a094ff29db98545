//! Target `elf`: ELF bytes → link and load → interpreter against JIT.
//!
//! The input is an ELF file (seeds: the example objects in `examples-c/bpf/`). It is linked
//! twice, into two VMs (one per engine: `.data`/`.bss` keep their values between runs, so
//! each engine needs its own copy), which must give the same linked code. Each VM then runs
//! the program twice (basic mode, the harness's helper table registered by name, the
//! instruction limit always set) over an Ethernet/IPv4/TCP packet, and the runs must agree
//! as in the `diff` target.

use rbpf::Vm;

use crate::diff::{Start, check_compile_error, compare, reads_unwritten_stack};
use crate::harness::{LOOP_LIMIT, Outcome, fail, leaks_frame_pointer, register_helpers};
use crate::known::{Known, tolerated};

/// A TCP packet to port 80 (what `packet_filter.o` accepts), 64 bytes.
const PACKET: [u8; 64] = [
    // Ethernet: destination, source, type IPv4.
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, //
    // IPv4: version/IHL, TOS, length, id, flags, TTL, protocol TCP, checksum, addresses.
    0x45, 0, 0, 50, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, //
    // TCP: source port 1234, destination port 80, the rest zero.
    0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0, //
    // Payload.
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
];

/// A VM that loaded `bytes`, with its linked code, or `None` if the loader refused.
fn load(bytes: &[u8]) -> Option<(Vm, Vec<u8>)> {
    let mut vm = Vm::new();
    register_helpers(&mut vm, false);
    vm.config_mut().instruction_limit = LOOP_LIMIT;
    vm.set_error_printer(Some(Box::new(|_| {})));
    let linked = vm.link_elf(bytes, None).ok()?;
    let code = linked.code.clone();
    vm.load_linked(linked).ok()?;
    Some((vm, code))
}

/// Replaces addresses inside the VM's data sections (each VM has its own copies, at different
/// addresses) in r0 and helper arguments by (section, offset) markers.
fn normalize(mut outcome: Outcome, vm: &Vm) -> Outcome {
    let sections = &vm.program().expect("loaded").data_sections;
    let mark = |v: &mut u64| {
        for (i, d) in sections.iter().enumerate() {
            if *v >= d.addr() && *v - d.addr() <= d.len() as u64 {
                *v = 0xda7a_0000_0000_0000 | ((i as u64) << 32) | (*v - d.addr());
            }
        }
    };
    if let Ok(v) = &mut outcome.result {
        mark(v);
    }
    for (_, args) in &mut outcome.calls {
        args.iter_mut().for_each(mark);
    }
    outcome
}

pub fn run(data: &[u8]) {
    let Some((interp_vm, code)) = load(data) else {
        return;
    };
    let Some((mut jit_vm, code_again)) = load(data) else {
        fail(
            "the same ELF file loaded once and failed the second time",
            &[],
        );
    };
    let program = interp_vm.program().expect("loaded");
    let insns = program.insns.clone();
    // The code differs only in the addresses of each VM's own data sections.
    if code.len() != code_again.len() {
        fail("linking the same ELF file twice gave code of different lengths", &insns);
    }
    let has_rodata = program.data_sections.iter().any(|d| !d.writable());
    if let Err(err) = jit_vm.compile(rbpf::jit::JitMode::Basic) {
        check_compile_error(&err, &insns);
        return;
    }
    let comparable = !leaks_frame_pointer(&insns);
    let mut start = Start::new(&PACKET, false);
    for _ in 0..2 {
        let interp = normalize(start.interpret(&interp_vm), &interp_vm);
        let jit = normalize(start.jit(&jit_vm), &jit_vm);
        let rodata_store = has_rodata
            && tolerated(Known::RodataStore)
            && matches!(&interp.result, Err(e) if e.starts_with("out of bounds store"))
            && interp.result != jit.result;
        if rodata_store {
            return;
        }
        let replay = || load(data).is_some_and(|(vm, _)| reads_unwritten_stack(vm, &insns, &PACKET));
        compare("JIT", &interp, &jit, false, comparable, false, &insns, replay);
    }
}
