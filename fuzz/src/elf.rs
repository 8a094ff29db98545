//! Target `elf`: ELF bytes → link and load → interpreter against JIT.
//!
//! The input is an ELF file (seeds: the example objects in `examples-c/bpf/`). It is loaded
//! once (the harness's helper table registered by name, the instruction limit always set) and
//! compiled (basic mode). `.data`/`.bss` keep their values between runs, and their addresses
//! are embedded in the code, so both engines run on the same VM: the sections are restored to
//! their loaded contents before each engine's turn, each engine runs the program twice over
//! an Ethernet/IPv4/TCP packet, and the runs must agree as in the `diff` target — and so must
//! every data section's final contents.

use rbpf::Vm;

use crate::diff::{Start, check_compile_error, compare, reads_unwritten_stack};
use crate::harness::{LOOP_LIMIT, fail, leaks_frame_pointer, register_helpers};
use crate::known::{Known, tolerated};

/// A TCP packet to port 80 (what `packet_filter.o` accepts), 64 bytes.
pub const PACKET: [u8; 64] = [
    // Ethernet: destination, source, type IPv4.
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, //
    // IPv4: version/IHL, TOS, length, id, flags, TTL, protocol TCP, checksum, addresses.
    0x45, 0, 0, 50, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, //
    // TCP: source port 1234, destination port 80, the rest zero.
    0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0, //
    // Payload.
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
];

/// A VM that loaded `bytes`, or `None` if the loader refused.
fn load(bytes: &[u8]) -> Option<Vm> {
    let mut vm = Vm::new();
    register_helpers(&mut vm, false);
    vm.config_mut().instruction_limit = LOOP_LIMIT;
    vm.set_error_printer(Some(Box::new(|_| {})));
    let linked = vm.link_elf(bytes, None).ok()?;
    vm.load_linked(linked).ok()?;
    Some(vm)
}

/// The contents of every data section of the loaded program.
fn sections(vm: &Vm) -> Vec<Vec<u8>> {
    let program = vm.program().expect("loaded");
    program
        .data_sections
        .iter()
        .map(|d| {
            // SAFETY: the section's bytes live as long as the program; no run is in progress.
            unsafe { std::slice::from_raw_parts(d.addr() as *const u8, d.len()) }.to_vec()
        })
        .collect()
}

/// Puts `contents` (from [`sections`]) back into the data sections.
fn restore(vm: &Vm, contents: &[Vec<u8>]) {
    let program = vm.program().expect("loaded");
    for (d, bytes) in program.data_sections.iter().zip(contents) {
        // SAFETY: section bytes are `UnsafeCell`s meant to be written through their address;
        // no run is in progress and the lengths match.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), d.addr() as *mut u8, d.len()) };
    }
}

/// Runs one `elf` input: an ELF file.
pub fn run(data: &[u8]) {
    let Some(mut vm) = load(data) else {
        return;
    };
    let program = vm.program().expect("loaded");
    let insns = program.insns.clone();
    let has_rodata = program.data_sections.iter().any(|d| !d.writable());
    let loaded = sections(&vm);
    if let Err(err) = vm.compile(rbpf::jit::JitMode::Basic) {
        check_compile_error(&err, &insns);
        return;
    }
    let comparable = !leaks_frame_pointer(&insns);
    let mut start = Start::new(&PACKET, false);
    restore(&vm, &loaded);
    let interp = [start.interpret(&vm), start.interpret(&vm)];
    let interp_sections = sections(&vm);
    restore(&vm, &loaded);
    let jit = [start.jit(&vm), start.jit(&vm)];
    let jit_sections = sections(&vm);
    for (i, j) in interp.iter().zip(&jit) {
        let rodata_store = has_rodata
            && tolerated(Known::RodataStore)
            && matches!(&i.result, Err(e) if e.starts_with("out of bounds store"))
            && i.result != j.result;
        if rodata_store {
            return;
        }
        let replay = || load(data).is_some_and(|vm| reads_unwritten_stack(vm, &insns, &PACKET));
        compare("JIT", i, j, false, comparable, false, &insns, replay);
    }
    let limit_hit = interp.iter().chain(&jit).any(|o| o.hit_limit());
    if comparable && interp_sections != jit_sections && !(limit_hit && tolerated(Known::Limit)) {
        fail(
            "the data sections differ after the interpreter's and the JIT's runs",
            &insns,
        );
    }
}
