//! The rbpf-compatible API (`src/compat`, `ebpf`, `assembler`, `disassembler`,
//! `insn_builder`, `helpers`): programs written against rbpf 0.4, in the shapes of rbpf's
//! README "Example uses", compile unchanged and give the same results — in the interpreter
//! and the JIT, for all four VM kinds — plus the methods one by one and librbpf's additions
//! (closures as helpers, errors as values, checked JIT).
//!
//! The examples call `execute_program_jit` inside `unsafe` blocks as rbpf requires; librbpf's
//! is safe, hence the `unused_unsafe` allowances. Errors are built with `Error::new` as rbpf
//! users write them (clippy would prefer `Error::other`).
#![allow(clippy::io_other_error)]
// The README shapes keep rbpf's bare `unsafe` blocks, as its users write them.
#![allow(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    reason = "the examples are written as rbpf's README writes them"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rbpf::assembler::assemble;
use rbpf::helpers;
use rbpf::lib::{Error, ErrorKind};

/// A packet: Ethernet, IPv4, TCP from port 0x9999 to port `dst_port`.
fn tcp_packet(dst_port: u16) -> Vec<u8> {
    let mut p = vec![
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, // MACs
        0x08, 0x00, // IPv4
        0x45, 0x00, 0x00, 0x3b, 0xa6, 0xab, 0x40, 0x00, 0x40, 0x06, 0x96, 0x0f, // IP, TCP
        0x7f, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, // addresses
        0x99, 0x99, 0x00, 0x00, // ports
        0xd1, 0xe5, 0xc4, 0x9d, 0xd4, 0x30, 0xb5, 0xd2, 0x80, 0x18, 0x01, 0x56,
    ];
    p[36..38].copy_from_slice(&dst_port.to_be_bytes());
    p
}

/// The first line of an error (the second names the stack, which differs between engines).
fn first_line(err: &Error) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Writes the start and end addresses of `mem` at offsets 8 and 24 of `mbuff`.
fn fill_mbuff(mbuff: &mut [u8], mem: &[u8]) {
    let start = mem.as_ptr() as u64;
    mbuff[8..16].copy_from_slice(&start.to_le_bytes());
    mbuff[24..32].copy_from_slice(&(start + mem.len() as u64).to_le_bytes());
}

#[test]
fn readme_simple_example_no_data() {
    // mov32 r0, 0; mov32 r1, 2; add32 r0, 1; add32 r0, r1; exit
    let prog = &[
        0xb4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb4, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x10, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let mut vm = rbpf::EbpfVmNoData::new(Some(prog)).unwrap();
    assert_eq!(vm.execute_program().unwrap(), 3);
    vm.jit_compile().unwrap();
    #[allow(unused_unsafe)]
    let res = unsafe { vm.execute_program_jit().unwrap() };
    assert_eq!(res, 3);
}

#[test]
#[allow(unused_unsafe)]
fn readme_jit_on_packet_data_raw() {
    let prog = &[
        0x71, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, // r0 = *(u8 *)(r1 + 2)
        0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
    ];
    let mem = &mut [0xaa, 0xbb, 0x11, 0xcc, 0xdd];
    let mut vm = rbpf::EbpfVmRaw::new(Some(prog)).unwrap();
    assert_eq!(vm.execute_program(mem).unwrap(), 0x11);
    vm.jit_compile().unwrap();
    unsafe {
        assert_eq!(vm.execute_program_jit(mem).unwrap(), 0x11);
    }
}

#[test]
#[allow(unused_unsafe)]
fn readme_metadata_buffer_mbuff() {
    let prog = &[
        0x79, 0x11, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // r1 = data (mbuff + 8)
        0x69, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, // r0 = *(u16 *)(r1 + 2)
        0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
    ];
    let mem = &mut [0xaa, 0xbb, 0x11, 0x22, 0xcc, 0xdd];
    let mbuff = &mut [0u8; 32];
    // rbpf's README writes the pointers through raw pointers; so does this test.
    unsafe {
        let data = mbuff.as_ptr().offset(8) as *mut u64;
        let data_end = mbuff.as_ptr().offset(24) as *mut u64;
        data.write_unaligned(mem.as_ptr() as u64);
        data_end.write_unaligned(mem.as_ptr() as u64 + mem.len() as u64);
    }
    let mut vm = rbpf::EbpfVmMbuff::new(Some(prog)).unwrap();
    assert_eq!(vm.execute_program(mem, mbuff).unwrap(), 0x2211);
    vm.jit_compile().unwrap();
    unsafe {
        assert_eq!(vm.execute_program_jit(mem, mbuff).unwrap(), 0x2211);
    }
}

/// The `.classifier` section of `tests/data/block_port.o` (clang-built from `block_port.c`).
/// rbpf's README reads it with the `elf` crate; `object` (a librbpf dependency) does the same.
fn classifier_section() -> Vec<u8> {
    use object::{Object, ObjectSection};
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/block_port.o"
    ))
    .expect("tests/data/block_port.o");
    let file = object::File::parse(&*bytes).expect("an ELF object");
    let section = file
        .section_by_name(".classifier")
        .expect("a .classifier section");
    section.data().expect("section bytes").to_vec()
}

#[test]
fn readme_object_file_with_fixed_mbuff() {
    let prog = classifier_section();
    let mut vm = rbpf::EbpfVmFixedMbuff::new(Some(&prog), 0x40, 0x50).unwrap();
    vm.register_helper(helpers::BPF_TRACE_PRINTK_IDX, helpers::bpf_trace_printf)
        .unwrap();
    let blocked = &mut tcp_packet(9999);
    let passed = &mut tcp_packet(80);
    let short = &mut tcp_packet(9999)[..30].to_vec();
    assert_eq!(vm.execute_program(blocked).unwrap(), 0);
    assert_eq!(vm.execute_program(passed).unwrap(), u64::MAX);
    assert_eq!(vm.execute_program(short).unwrap(), 0xffff_ffff);
    vm.jit_compile().unwrap();
    assert_eq!(vm.execute_program_jit(blocked).unwrap(), 0);
    assert_eq!(vm.execute_program_jit(passed).unwrap(), u64::MAX);
    assert_eq!(vm.execute_program_jit(short).unwrap(), 0xffff_ffff);
    vm.cranelift_compile().unwrap();
    assert_eq!(vm.execute_program_cranelift(blocked).unwrap(), 0);
}

#[test]
fn readme_assembler_disassembler_builder() {
    let text = "add64 r1, 0x605\nmov64 r2, 0x32\nmov64 r1, r0\nbe16 r0\nneg64 r2\nexit";
    let prog = assemble(text).unwrap();
    assert_eq!(
        prog,
        [
            0x07, 0x01, 0x00, 0x00, 0x05, 0x06, 0x00, 0x00, 0xb7, 0x02, 0x00, 0x00, 0x32, 0x00,
            0x00, 0x00, 0xbf, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xdc, 0x00, 0x00, 0x00,
            0x10, 0x00, 0x00, 0x00, 0x87, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x95, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00
        ]
    );
    rbpf::disassembler::disassemble(&prog);
    assert_eq!(rbpf::disassembler::to_text(&prog), format!("{text}\n"));
    let names: Vec<String> = rbpf::disassembler::to_insn_vec(&prog)
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["add64", "mov64", "mov64", "be", "neg64", "exit"]);

    use rbpf::insn_builder::*;
    let mut program = BpfCode::new();
    program
        .add(Source::Imm, Arch::X64)
        .set_dst(1)
        .set_imm(0x605)
        .push()
        .mov(Source::Imm, Arch::X64)
        .set_dst(2)
        .set_imm(0x32)
        .push()
        .mov(Source::Reg, Arch::X64)
        .set_src(0)
        .set_dst(1)
        .push()
        .swap_bytes(Endian::Big)
        .set_dst(0)
        .set_imm(0x10)
        .push()
        .negate(Arch::X64)
        .set_dst(2)
        .push()
        .exit()
        .push();
    assert_eq!(program.into_bytes(), &prog[..]);
    assert_eq!(rbpf::ebpf::to_insn_vec(&prog)[3].opc, rbpf::ebpf::BE);
    assert_eq!(rbpf::ebpf::get_insn(&prog, 5).opc, rbpf::ebpf::EXIT);
}

/// A verifier in rbpf's style: refuses programs whose last instruction is not `exit`.
fn ends_with_exit(prog: &[u8]) -> Result<(), Error> {
    let last = rbpf::ebpf::get_insn(prog, prog.len() / rbpf::ebpf::INSN_SIZE - 1);
    if last.opc != rbpf::ebpf::EXIT {
        return Err(Error::new(ErrorKind::Other, "custom: no final exit"));
    }
    Ok(())
}

/// Refuses every program.
fn refuse_all(_: &[u8]) -> Result<(), Error> {
    Err(Error::new(ErrorKind::Other, "custom: refused"))
}

#[test]
fn set_program_and_set_verifier_follow_rbpf() {
    let ret1 = assemble("mov64 r0, 1\nexit").unwrap();
    let ret2 = assemble("mov64 r0, 2\nexit").unwrap();
    let jumps_last = assemble("mov64 r0, 3\nexit\nja -2").unwrap();
    let mut vm = rbpf::EbpfVmRaw::new(None).unwrap();
    // Nothing loaded: rbpf's message, in both engines.
    let err = vm.execute_program(&mut []).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(err.to_string().contains("No program set"), "{err}");
    assert!(vm.jit_compile().is_err());

    vm.set_program(&ret1).unwrap();
    assert_eq!(vm.execute_program(&mut []).unwrap(), 1);
    // The JIT needs jit_compile first; set_program drops compiled code.
    assert_eq!(
        vm.execute_program_jit(&mut []).unwrap_err().to_string(),
        "Error: program has not been JIT-compiled"
    );
    assert_eq!(
        vm.execute_program_cranelift(&mut [])
            .unwrap_err()
            .to_string(),
        "Error: program has not been compiled with cranelift"
    );
    vm.jit_compile().unwrap();
    assert_eq!(vm.execute_program_jit(&mut []).unwrap(), 1);
    vm.set_program(&ret2).unwrap();
    assert!(vm.execute_program_jit(&mut []).is_err());
    assert_eq!(vm.execute_program(&mut []).unwrap(), 2);

    // The default verifier accepts a program ending with a backward jump; the custom one
    // does not, and a verifier refusing the loaded program is not installed.
    vm.set_program(&jumps_last).unwrap();
    assert_eq!(vm.execute_program(&mut []).unwrap(), 3);
    let err = vm.set_verifier(ends_with_exit).unwrap_err();
    assert_eq!(err.to_string(), "custom: no final exit");
    vm.set_program(&ret1).unwrap();
    vm.set_verifier(ends_with_exit).unwrap();
    assert_eq!(
        vm.set_program(&jumps_last).unwrap_err().to_string(),
        "custom: no final exit"
    );
    // The previous program stays loaded after a refusal.
    assert_eq!(vm.execute_program(&mut []).unwrap(), 1);
    assert!(vm.set_verifier(refuse_all).is_err());
    // A program the verifier accepts is loaded, as in rbpf; one librbpf's engines cannot run
    // fails when it is run or compiled, with the text of rbpf's engine.
    let bad = [0x8f, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    vm.set_program(&bad).unwrap();
    let err = vm.execute_program(&mut []).unwrap_err();
    assert_eq!(err.to_string(), "Error: unknown eBPF opcode 0x8f (insn #0)");
    let err = vm.jit_compile().unwrap_err();
    assert_eq!(
        err.to_string(),
        "[JIT] Error: unknown eBPF opcode 0x8f (insn #0)"
    );
    // rbpf's default verifier refuses it at once.
    let err = rbpf::EbpfVmNoData::new(Some(&bad)).err().unwrap();
    assert_eq!(
        err.to_string(),
        "[Verifier] Error: unknown eBPF opcode 0x8f (insn #0)"
    );
    assert!(rbpf::EbpfVmNoData::new(Some(&bad[..7])).is_err());
}

#[test]
fn rbpf_helpers_by_their_indices_in_both_engines() {
    let prog = assemble(
        "mov64 r1, 0x11\nmov64 r2, 0x22\nmov64 r3, 0x33\nmov64 r4, 0x44\nmov64 r5, 0x55
         call 3
         mov64 r6, r0
         mov64 r1, 81
         call 1
         add64 r0, r6
         exit",
    )
    .unwrap();
    // Helpers may be registered after loading; as in rbpf, compiling needs them all.
    let mut vm = rbpf::EbpfVmNoData::new(Some(&prog)).unwrap();
    vm.register_helper(3, helpers::gather_bytes).unwrap();
    assert_eq!(
        vm.jit_compile().unwrap_err().to_string(),
        "[JIT] Error: unknown helper function (id: 0x1)"
    );
    assert_eq!(
        vm.cranelift_compile().unwrap_err().to_string(),
        "[CRANELIFT] Error: unknown helper function (id: 0x1)"
    );
    assert_eq!(
        vm.execute_program().unwrap_err().to_string(),
        "Error: unknown helper function (id: 0x1)"
    );
    vm.register_helper(1, helpers::gather_bytes).unwrap();
    vm.jit_compile().unwrap();
    // A helper registered after compiling replaces the one compiled code calls.
    vm.register_helper(1, helpers::sqrti).unwrap();
    let expected = 0x1122334455 + 9;
    assert_eq!(vm.execute_program().unwrap(), expected);
    assert_eq!(vm.execute_program_jit().unwrap(), expected);
    // rbpf's keys are u32; librbpf's helper table has 256 slots (the kernel's helper numbers
    // fit), so a high key works in both engines and 256 is refused.
    assert!(vm.register_helper(256, helpers::sqrti).is_err());
    let calls_200 = assemble("mov r1, 81\ncall 200\nexit").unwrap();
    let mut vm = rbpf::EbpfVmNoData::new(Some(&calls_200)).unwrap();
    vm.register_helper(200, helpers::sqrti).unwrap();
    vm.jit_compile().unwrap();
    assert_eq!(vm.execute_program().unwrap(), 9);
    assert_eq!(vm.execute_program_jit().unwrap(), 9);

    // An unregistered helper is a run-time error in the interpreter and refuses compiling,
    // with rbpf's texts; never a crash.
    let calls_7 = assemble("call 7\nexit").unwrap();
    let mut vm = rbpf::EbpfVmNoData::new(Some(&calls_7)).unwrap();
    let interp = vm.execute_program().unwrap_err().to_string();
    assert_eq!(interp, "Error: unknown helper function (id: 0x7)");
    let jit = vm.jit_compile().unwrap_err().to_string();
    assert_eq!(jit, "[JIT] Error: unknown helper function (id: 0x7)");
}

#[test]
fn closures_as_helpers_with_state_and_memory() {
    let prog = assemble("mov64 r1, 5\ncall 2\nmov64 r6, r0\ncall 4\nadd64 r0, r6\nexit").unwrap();
    let mut mem = vec![1u8, 2, 3, 4];
    for jit in [false, true] {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let mut vm = rbpf::EbpfVmRaw::new(Some(&prog)).unwrap();
        vm.register_helper_closure(2, move |a, _, _, _, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            a * 100
        })
        .unwrap();
        // Sums the input memory and then rewrites it.
        vm.register_helper_with_memory(4, |_, _, _, _, _, mem| {
            let sum: u64 = mem.iter().map(|&b| u64::from(b)).sum();
            mem.fill(9);
            sum
        })
        .unwrap();
        mem.copy_from_slice(&[1, 2, 3, 4]);
        let res = if jit {
            vm.jit_compile().unwrap();
            vm.execute_program_jit(&mut mem).unwrap()
        } else {
            vm.execute_program(&mut mem).unwrap()
        };
        assert_eq!(res, 510, "jit={jit}");
        assert_eq!(mem, [9, 9, 9, 9]);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}

#[test]
fn allowed_memory_in_both_engines() {
    static VALUE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    let addr = VALUE.as_ptr() as u64;
    let text = |off: i64, size: &str| {
        format!(
            "lddw r1, {addr:#x}\nldx{size} r0, [r1{off:+}]\nexit",
            addr = addr
        )
    };
    let ok = assemble(&text(4, "w")).unwrap();
    let past_end = assemble(&text(6, "w")).unwrap();
    let mut vm = rbpf::EbpfVmNoData::new(Some(&ok)).unwrap();
    // Not registered: refused in both engines.
    vm.jit_compile().unwrap();
    assert!(vm.execute_program().is_err());
    assert!(vm.execute_program_jit().is_err());
    vm.register_allowed_memory(addr..addr + 8);
    let expected = u64::from(u32::from_le_bytes([5, 6, 7, 8]));
    assert_eq!(vm.execute_program().unwrap(), expected);
    assert_eq!(vm.execute_program_jit().unwrap(), expected);
    // Every byte must be registered.
    vm.set_program(&past_end).unwrap();
    vm.jit_compile().unwrap();
    let interp = first_line(&vm.execute_program().unwrap_err());
    assert_eq!(interp, first_line(&vm.execute_program_jit().unwrap_err()));
    assert!(interp.contains("out of bounds memory load"), "{interp}");
}

#[test]
fn mbuff_kinds_allow_exactly_mbuff_data_and_stack() {
    // r0 = data[idx]; the index comes from the first data byte so one program probes both.
    let prog = assemble(
        "ldxdw r2, [r1+8]
         ldxdw r3, [r1+24]
         ldxb r4, [r2]
         add64 r2, r4
         ldxb r0, [r2]
         stxb [r2], r0
         exit",
    )
    .unwrap();
    let mut data = vec![3u8, 10, 20, 30, 40];
    let mut mbuff = vec![0u8; 32];
    fill_mbuff(&mut mbuff, &data);
    let mut vm = rbpf::EbpfVmMbuff::new(Some(&prog)).unwrap();
    vm.jit_compile().unwrap();
    assert_eq!(vm.execute_program_mut(&mut data, &mut mbuff).unwrap(), 30);
    assert_eq!(vm.execute_program_jit(&mut data, &mut mbuff).unwrap(), 30);
    // Shared borrows are read-only for the program: the store faults.
    let err = vm.execute_program(&data, &mbuff).unwrap_err().to_string();
    assert!(err.contains("out of bounds memory store"), "{err}");
    // One past the data: refused in both engines, with the same error.
    data[0] = 5;
    let interp = vm.execute_program_mut(&mut data, &mut mbuff).unwrap_err();
    let jit = vm.execute_program_jit(&mut data, &mut mbuff).unwrap_err();
    assert_eq!(first_line(&interp), first_line(&jit));
    assert!(interp.to_string().contains("out of bounds memory load"));

    // The fixed mbuff: the VM's own buffer, writable packet data.
    let prog = assemble(
        "ldxdw r2, [r1+0x10]
         ldxdw r3, [r1+0x18]
         mov64 r0, r3
         sub64 r0, r2
         stb [r2], 0x7f
         exit",
    )
    .unwrap();
    let mut vm = rbpf::EbpfVmFixedMbuff::new(Some(&prog), 0x10, 0x18).unwrap();
    vm.jit_compile().unwrap();
    let mut packet = vec![0u8; 6];
    assert_eq!(vm.execute_program(&mut packet).unwrap(), 6);
    assert_eq!(packet[0], 0x7f);
    packet[0] = 0;
    assert_eq!(vm.execute_program_jit(&mut packet).unwrap(), 6);
    assert_eq!(packet[0], 0x7f);
    vm.set_program(&prog, 0x20, 0x28).unwrap();
    // The program still reads the old offsets, now zero: the store through 0 faults.
    assert!(vm.execute_program(&mut packet).is_err());
}

#[test]
fn errors_are_values_and_nothing_is_printed() {
    let prog = assemble("ldxdw r0, [r1+64]\nexit").unwrap();
    let mut vm = rbpf::EbpfVmRaw::new(Some(&prog)).unwrap();
    vm.jit_compile().unwrap();
    let mut mem = [0u8; 8];
    let interp = vm.execute_program(&mut mem).unwrap_err();
    let jit = vm.execute_program_jit(&mut mem).unwrap_err();
    assert_eq!(first_line(&interp), first_line(&jit));
    // A printer, when installed, sees each error once.
    let seen = Arc::new(AtomicU64::new(0));
    let count = seen.clone();
    vm.vm_mut().set_error_printer(Some(Box::new(move |_| {
        count.fetch_add(1, Ordering::Relaxed);
    })));
    assert!(vm.execute_program(&mut mem).is_err());
    assert!(vm.execute_program_jit(&mut mem).is_err());
    assert_eq!(seen.load(Ordering::Relaxed), 2);
}

#[test]
fn differential_over_the_four_kinds() {
    // Programs mixing ALU, stack, branches and a helper; each kind runs them in both engines.
    let sources = [
        "mov64 r0, 0\nmov64 r1, 10\nadd64 r0, r1\nsub64 r1, 1\njne r1, 0, -3\nexit",
        "mov64 r0, -7\narsh64 r0, 1\nstxdw [r10-8], r0\nldxw r0, [r10-8]\nexit",
        "mov32 r0, 0x12345678\nbe32 r0\nmov64 r1, 3\nmod64 r0, r1\nexit",
        "mov64 r1, 1000000\ncall 1\nexit",
        "lddw r0, 0x8000000000000000\nmov64 r1, -1\ndiv64 r0, r1\nexit",
    ];
    for text in sources {
        let prog = assemble(text).unwrap();
        let mut nodata = rbpf::EbpfVmNoData::new(Some(&prog)).unwrap();
        let mut raw = rbpf::EbpfVmRaw::new(Some(&prog)).unwrap();
        let mut mbuff = rbpf::EbpfVmMbuff::new(Some(&prog)).unwrap();
        let mut fixed = rbpf::EbpfVmFixedMbuff::new(Some(&prog), 8, 24).unwrap();
        nodata.register_helper(1, helpers::sqrti).unwrap();
        raw.register_helper(1, helpers::sqrti).unwrap();
        mbuff.register_helper(1, helpers::sqrti).unwrap();
        fixed.register_helper(1, helpers::sqrti).unwrap();
        nodata.jit_compile().unwrap();
        raw.jit_compile().unwrap();
        mbuff.jit_compile().unwrap();
        fixed.jit_compile().unwrap();
        let mut mem = vec![1u8; 16];
        let mut meta = vec![0u8; 32];
        fill_mbuff(&mut meta, &mem);
        let expected = nodata.execute_program().unwrap();
        let results = [
            nodata.execute_program_jit().unwrap(),
            raw.execute_program(&mut mem).unwrap(),
            raw.execute_program_jit(&mut mem).unwrap(),
            mbuff.execute_program(&mem, &meta).unwrap(),
            mbuff.execute_program_jit(&mut mem, &mut meta).unwrap(),
            fixed.execute_program(&mut mem).unwrap(),
            fixed.execute_program_jit(&mut mem).unwrap(),
        ];
        assert!(
            results.iter().all(|&r| r == expected),
            "{text}: {results:?}"
        );
    }
}

#[path = "common/rng.rs"]
mod rng;

/// The four kinds, for the random sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    NoData,
    Raw,
    Mbuff,
    FixedMbuff,
}

/// One random program: r2 = the packet data (from the metadata buffer for the mbuff kinds,
/// r1 otherwise), r3 = the allowed buffer, 128 zeroed stack bytes, then loads and stores of
/// random widths at random offsets around each region (some out of bounds), loaded values
/// summed into r0.
fn random_access_program(rng: &mut rng::Rng, kind: Kind, allowed: u64) -> String {
    let mut text = String::from("mov64 r0, 0\n");
    text += match kind {
        Kind::Mbuff | Kind::FixedMbuff => "ldxdw r2, [r1+8]\n",
        Kind::Raw | Kind::NoData => "mov64 r2, r1\n",
    };
    text += &format!("lddw r3, {allowed:#x}\n");
    for off in (8..=128).step_by(8) {
        text += &format!("stdw [r10-{off}], 0\n");
    }
    for _ in 0..4 {
        let (base, lo, hi) = rng.pick(&[
            ("r1", -12i64, 44i64),
            ("r2", -12, 28),
            ("r3", -12, 28),
            ("r10", -128, 16),
            ("r10", -4110, -4096),
        ]);
        // Mostly inside the region (8 bytes from its start, or the zeroed stack slots),
        // sometimes anywhere around it.
        let off = if rng.chance(90) {
            if base == "r10" {
                -128 + rng.below(121) as i64
            } else {
                rng.below(9) as i64
            }
        } else {
            lo + rng.below((hi - lo) as usize) as i64
        };
        let size = rng.pick(&["b", "h", "w", "dw"]);
        let sign = if off < 0 { "-" } else { "+" };
        let at = format!("[{base}{sign}{}]", off.abs());
        // The fixed mbuff keeps its metadata buffer between runs (as rbpf's does): no stores
        // into it, so that the second engine starts from the same state.
        let into_metadata = kind == Kind::FixedMbuff && (base == "r1" || off < 0);
        let op = if into_metadata { 0 } else { rng.below(3) };
        text += &match op {
            0 => format!("ldx{size} r4, {at}\nadd64 r0, r4\n"),
            1 => format!("stx{size} {at}, r0\n"),
            _ => format!("st{size} {at}, {}\n", rng.below(200)),
        };
    }
    text + "exit\n"
}

/// The first line of an error without its address (stack addresses differ between the
/// engines' stacks).
fn without_address(err: &Error) -> String {
    let line = first_line(err);
    match line.split_once(", addr ") {
        Some((head, tail)) => {
            let rest = tail.split_once(',').map_or("", |(_, rest)| rest);
            format!("{head},{rest}")
        }
        None => line,
    }
}

/// What a run gave: r0 or the first line of the error, and the buffers afterwards.
type Outcome = (Result<u64, String>, Vec<u8>, Vec<u8>, Vec<u8>);

#[test]
fn random_accesses_agree_between_engines_for_every_kind() {
    let mut rng = rng::Rng(0x5eed_cafe_f00d_0001);
    let mut data = vec![0u8; 16];
    let mut mbuff = vec![0u8; 32];
    let mut allowed = vec![0u8; 16];
    let allowed_addr = allowed.as_mut_ptr() as u64;
    let allowed_addrs = allowed_addr..allowed_addr + 16;
    let mut faults = 0;
    for round in 0..400 {
        let kind = [Kind::NoData, Kind::Raw, Kind::Mbuff, Kind::FixedMbuff][round % 4];
        let text = random_access_program(&mut rng, kind, allowed_addr);
        let prog = assemble(&text).unwrap();
        let initial: Vec<u8> = (0..16).map(|_| rng.below(256) as u8).collect();
        let mut outcomes: Vec<Outcome> = Vec::new();
        // One VM per program, run by both engines (a fixed mbuff's buffer keeps its address).
        let mut nodata = rbpf::EbpfVmNoData::new(Some(&prog)).unwrap();
        let mut raw = rbpf::EbpfVmRaw::new(Some(&prog)).unwrap();
        let mut mbuff_vm = rbpf::EbpfVmMbuff::new(Some(&prog)).unwrap();
        let mut fixed = rbpf::EbpfVmFixedMbuff::new(Some(&prog), 8, 24).unwrap();
        nodata.register_allowed_memory(allowed_addrs.clone());
        raw.register_allowed_memory(allowed_addrs.clone());
        mbuff_vm.register_allowed_memory(allowed_addrs.clone());
        fixed.register_allowed_memory(allowed_addrs.clone());
        nodata.jit_compile().unwrap();
        raw.jit_compile().unwrap();
        mbuff_vm.jit_compile().unwrap();
        fixed.jit_compile().unwrap();
        for jit in [false, true] {
            data.copy_from_slice(&initial);
            allowed.copy_from_slice(&initial);
            mbuff.fill(0);
            fill_mbuff(&mut mbuff, &data);
            let result = match (kind, jit) {
                (Kind::NoData, false) => nodata.execute_program(),
                (Kind::NoData, true) => nodata.execute_program_jit(),
                (Kind::Raw, false) => raw.execute_program(&mut data),
                (Kind::Raw, true) => raw.execute_program_jit(&mut data),
                (Kind::Mbuff, false) => mbuff_vm.execute_program_mut(&mut data, &mut mbuff),
                (Kind::Mbuff, true) => mbuff_vm.execute_program_jit(&mut data, &mut mbuff),
                (Kind::FixedMbuff, false) => fixed.execute_program(&mut data),
                (Kind::FixedMbuff, true) => fixed.execute_program_jit(&mut data),
            };
            outcomes.push((
                result.map_err(|e| without_address(&e)),
                data.clone(),
                allowed.clone(),
                mbuff.clone(),
            ));
        }
        faults += usize::from(outcomes[0].0.is_err());
        assert_eq!(outcomes[0], outcomes[1], "{kind:?}, program:\n{text}");
    }
    // The sweep exercises both outcomes.
    assert!((40..360).contains(&faults), "{faults} faults in 400 runs");
}

/// rbpf's calculator shape: main (slot 0) gets the frame stored in `data`, others 16 bytes.
fn frame_from_data(_prog: &[u8], pc: usize, data: &mut dyn std::any::Any) -> u16 {
    let frame = data.downcast_mut::<u16>().expect("a u16");
    if pc == 0 { *frame } else { 16 }
}

#[test]
fn stack_usage_calculator_sets_each_frame() {
    // r0 = main's r10 minus the callee's r10: main's frame size.
    let prog = assemble(
        "mov64 r6, r10
         callx 3
         sub64 r6, r0
         mov64 r0, r6
         exit
         mov64 r0, r10
         exit",
    )
    .unwrap();
    let mut vm = rbpf::EbpfVmNoData::new(Some(&prog)).unwrap();
    assert_eq!(vm.execute_program().unwrap(), 256);
    vm.set_stack_usage_calculator(frame_from_data, Box::new(64u16))
        .unwrap();
    assert_eq!(vm.execute_program().unwrap(), 64);
    vm.jit_compile().unwrap();
    assert_eq!(vm.execute_program_jit().unwrap(), 64);
    // A frame that is not a multiple of 16 is refused, and the previous calculator stays.
    let err = vm
        .set_stack_usage_calculator(frame_from_data, Box::new(17u16))
        .unwrap_err();
    assert!(err.to_string().contains("17"), "{err}");
    vm.set_program(&prog).unwrap();
    assert_eq!(vm.execute_program().unwrap(), 64);
}

/// Sixteen bytes 0x00, 0x11, …, 0xff: the memory rbpf's own ldabs/ldind expectations use.
fn ramp() -> Vec<u8> {
    (0..16u8).map(|i| i * 0x11).collect()
}

/// rbpf's `ldabs*`/`ldind*` through `EbpfVmRaw`, interpreter and JIT: host byte order from
/// the packet, r0 zero-extended (the values rbpf 0.4 gives).
#[test]
fn legacy_packet_loads_in_the_raw_kind_follow_rbpf() {
    let cases: [(&str, u64); 8] = [
        ("ldabsb 0x3", 0x33),
        ("ldabsh 0x3", 0x4433),
        ("ldabsw 0x3", 0x6655_4433),
        ("ldabsdw 0x3", 0xaa99_8877_6655_4433),
        ("mov64 r1, 0x5\nldindb r1, 0x3", 0x88),
        ("mov64 r1, 0x5\nldindh r1, 0x3", 0x9988),
        ("mov64 r1, 0x4\nldindw r1, 0x1", 0x8877_6655),
        ("mov64 r1, 0x2\nldinddw r1, 0x6", 0xffee_ddcc_bbaa_9988),
    ];
    for (body, expected) in cases {
        let prog = assemble(&format!("{body}\nexit")).expect("assemble");
        let mut vm = rbpf::EbpfVmRaw::new(Some(&prog)).expect("load");
        let mut mem = ramp();
        assert_eq!(
            vm.execute_program(&mut mem).expect(body),
            expected,
            "{body}"
        );
        vm.jit_compile().expect("compile");
        #[allow(unused_unsafe)]
        let jit = unsafe { vm.execute_program_jit(&mut mem) }.expect(body);
        assert_eq!(jit, expected, "jit: {body}");
    }
}

/// Out of the packet is an error in rbpf (not r0 = 0 as in the kernel), in both engines, and
/// a VM without data has no packet at all.
#[test]
fn legacy_packet_loads_out_of_bounds_are_errors_as_in_rbpf() {
    let prog = assemble("ldabsdw 0x33\nexit").expect("assemble");
    let mut vm = rbpf::EbpfVmRaw::new(Some(&prog)).expect("load");
    let err = vm.execute_program(&mut ramp()).expect_err("out of bounds");
    // rbpf's text through the façade: the instruction counted from 1.
    assert!(
        first_line(&err).contains("out of bounds memory load (insn #1)"),
        "{err}"
    );
    vm.jit_compile().expect("compile");
    let err = vm
        .execute_program_jit(&mut ramp())
        .expect_err("out of bounds");
    assert!(
        first_line(&err).contains("out of bounds memory load"),
        "{err}"
    );
    // The last byte is in, the next one is not.
    let edge = assemble("ldabsb 0xf\nexit").expect("assemble");
    let vm = rbpf::EbpfVmRaw::new(Some(&edge)).expect("load");
    assert_eq!(vm.execute_program(&mut ramp()).expect("last byte"), 0xff);
    let past = assemble("mov64 r2, 0x10\nldindb r2, 0x0\nexit").expect("assemble");
    let vm = rbpf::EbpfVmRaw::new(Some(&past)).expect("load");
    assert!(vm.execute_program(&mut ramp()).is_err());

    let prog = assemble("ldabsdw 0x3\nexit").expect("assemble");
    let mut vm = rbpf::EbpfVmNoData::new(Some(&prog)).expect("load");
    assert!(vm.execute_program().is_err());
    vm.jit_compile().expect("compile");
    assert!(vm.execute_program_jit().is_err());
}

/// In the mbuff kinds the loads read the packet data (rbpf's `mem`), not the metadata buffer
/// r1 points to.
#[test]
fn legacy_packet_loads_in_the_mbuff_kinds_read_the_packet() {
    let prog = assemble("ldabsh 0x2\nexit").expect("assemble");
    let mut mem = ramp();
    let mut mbuff = [0x5au8; 32];
    let mut vm = rbpf::EbpfVmMbuff::new(Some(&prog)).expect("load");
    assert_eq!(vm.execute_program(&mem, &mbuff).expect("run"), 0x3322);
    assert_eq!(
        vm.execute_program_mut(&mut mem, &mut mbuff).expect("run"),
        0x3322
    );
    vm.jit_compile().expect("compile");
    assert_eq!(
        vm.execute_program_jit(&mut mem, &mut mbuff).expect("jit"),
        0x3322
    );

    let prog = assemble("mov64 r3, 0xe\nldindh r3, 0x0\nexit").expect("assemble");
    let mut vm = rbpf::EbpfVmFixedMbuff::new(Some(&prog), 0x40, 0x50).expect("load");
    assert_eq!(vm.execute_program(&mut mem).expect("run"), 0xffee);
    vm.jit_compile().expect("compile");
    assert_eq!(vm.execute_program_jit(&mut mem).expect("jit"), 0xffee);
    // One byte further runs past the packet's copy (into nothing the program may read).
    let prog = assemble("mov64 r3, 0xf\nldindh r3, 0x0\nexit").expect("assemble");
    let mut vm = rbpf::EbpfVmFixedMbuff::new(Some(&prog), 0x40, 0x50).expect("load");
    assert!(vm.execute_program(&mut mem).is_err());
    vm.jit_compile().expect("compile");
    assert!(vm.execute_program_jit(&mut mem).is_err());
}

/// rbpf's assembler and disassembler spell the packet loads `ldabsX imm` and
/// `ldindX rS, imm`, and print the immediate in hex.
#[test]
fn legacy_packet_loads_assemble_and_disassemble_as_in_rbpf() {
    let text = "ldabsb 0x3\nldabsh 0x3\nldabsw 0x3\nldabsdw 0x3\n\
                ldindb r1, 0x3\nldindh r1, 0x3\nldindw r1, 0x3\nldinddw r1, 0x3\nexit\n";
    let prog = assemble(text).expect("assemble");
    let opcodes: Vec<u8> = prog.chunks(8).map(|slot| slot[0]).collect();
    assert_eq!(
        opcodes,
        [
            rbpf::ebpf::LD_ABS_B,
            rbpf::ebpf::LD_ABS_H,
            rbpf::ebpf::LD_ABS_W,
            rbpf::ebpf::LD_ABS_DW,
            rbpf::ebpf::LD_IND_B,
            rbpf::ebpf::LD_IND_H,
            rbpf::ebpf::LD_IND_W,
            rbpf::ebpf::LD_IND_DW,
            rbpf::ebpf::EXIT
        ]
    );
    // The register is the source field; dst and offset stay 0.
    assert_eq!(&prog[32..40], &[0x50, 0x10, 0, 0, 3, 0, 0, 0]);
    assert_eq!(rbpf::disassembler::to_text(&prog), text);
    let insns = rbpf::disassembler::to_insn_vec(&prog);
    assert_eq!(insns[3].name, "ldabsdw");
    assert_eq!(insns[7].name, "ldinddw");
    assert_eq!(
        rbpf::disassembler::to_insn_vec(&assemble("ldabsw -4\nexit").expect("assemble"))[0].desc,
        "ldabsw 0xfffffffc"
    );
}

#[test]
fn register_div_and_mod_ignore_their_immediate_through_the_facade_only() {
    // div64 r0, r1 / mod32 r0, r1 with an immediate field of 0x99999999.
    let prog = [
        [0xb7, 0x00, 0, 0, 100, 0, 0, 0],
        [0xb7, 0x01, 0, 0, 6, 0, 0, 0],
        [0x3f, 0x10, 0, 0, 0x99, 0x99, 0x99, 0x99],
        [0x9c, 0x10, 0, 0, 0x99, 0x99, 0x99, 0x99],
        [0x95, 0, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let mut vm = rbpf::EbpfVmNoData::new(Some(&prog)).unwrap();
    assert_eq!(vm.execute_program().unwrap(), (100 / 6) % 6);
    vm.jit_compile().unwrap();
    assert_eq!(vm.execute_program_jit().unwrap(), (100 / 6) % 6);
    // uBPF's validator (the native API and the C API) refuses it.
    let err = rbpf::Vm::new().load(&prog).unwrap_err();
    assert!(
        err.to_string().starts_with("Invalid immediate value"),
        "{err}"
    );
}

/// Every signature rbpf 0.4.1's examples call, written as rbpf declares it: a function
/// pointer of rbpf's exact type must accept ours, so a signature that drifts stops this file
/// compiling. The examples themselves (allowed memory, date, disassembler, ELF loading, a
/// plugin, JSON output) use exactly these items.
#[test]
fn the_signatures_rbpf_examples_use() {
    use rbpf::disassembler::HLInsn;
    use rbpf::lib::Error;
    use rbpf::{EbpfVmFixedMbuff, EbpfVmMbuff, EbpfVmNoData, EbpfVmRaw};
    use std::ops::Range;
    type Res<T> = Result<T, Error>;
    type NoData = EbpfVmNoData<'static>;
    type Raw = EbpfVmRaw<'static>;
    type Fixed = EbpfVmFixedMbuff<'static>;
    type Mbuff = EbpfVmMbuff<'static>;
    type Prog = &'static [u8];
    type Mem = &'static mut [u8];

    let _: fn(Option<Prog>) -> Res<NoData> = EbpfVmNoData::new;
    let _: fn(Option<Prog>) -> Res<Raw> = EbpfVmRaw::new;
    let _: fn(Option<Prog>, usize, usize) -> Res<Fixed> = EbpfVmFixedMbuff::new;
    let _: fn(Option<Prog>) -> Res<Mbuff> = EbpfVmMbuff::new;
    let _: fn(&mut Raw, Prog) -> Res<()> = EbpfVmRaw::set_program;
    let _: fn(&mut Fixed, Prog, usize, usize) -> Res<()> = EbpfVmFixedMbuff::set_program;
    let _: fn(&mut NoData, u32, rbpf::Helper) -> Res<()> = EbpfVmNoData::register_helper;
    let _: fn(&mut Raw, u32, rbpf::Helper) -> Res<()> = EbpfVmRaw::register_helper;
    let _: fn(&mut Fixed, u32, rbpf::Helper) -> Res<()> = EbpfVmFixedMbuff::register_helper;
    let _: fn(&mut NoData, Range<u64>) = EbpfVmNoData::register_allowed_memory;
    let _: fn(&mut Raw, Range<u64>) = EbpfVmRaw::register_allowed_memory;
    let _: fn(&mut Mbuff, Range<u64>) = EbpfVmMbuff::register_allowed_memory;
    let _: fn(&mut Fixed, Range<u64>) = EbpfVmFixedMbuff::register_allowed_memory;
    let _: fn(&NoData) -> Res<u64> = EbpfVmNoData::execute_program;
    let _: fn(&Raw, Mem) -> Res<u64> = EbpfVmRaw::execute_program;
    let _: fn(&mut Fixed, Mem) -> Res<u64> = EbpfVmFixedMbuff::execute_program;
    let _: fn(&Mbuff, &[u8], &[u8]) -> Res<u64> = EbpfVmMbuff::execute_program;
    let _: fn(&mut NoData) -> Res<()> = EbpfVmNoData::jit_compile;
    let _: fn(&mut Raw) -> Res<()> = EbpfVmRaw::jit_compile;
    let _: fn(&mut Fixed) -> Res<()> = EbpfVmFixedMbuff::jit_compile;
    // rbpf's are `unsafe fn`; ours are safe, which an `unsafe fn` pointer accepts.
    let _: unsafe fn(&NoData) -> Res<u64> = EbpfVmNoData::execute_program_jit;
    let _: unsafe fn(&Raw, Mem) -> Res<u64> = EbpfVmRaw::execute_program_jit;
    let _: unsafe fn(&mut Fixed, Mem) -> Res<u64> = EbpfVmFixedMbuff::execute_program_jit;
    let _: unsafe fn(&Mbuff, &mut [u8], Mem) -> Res<u64> = EbpfVmMbuff::execute_program_jit;
    let _: fn(&mut Raw) -> Res<()> = EbpfVmRaw::cranelift_compile;
    let _: fn(&Raw, Mem) -> Res<u64> = EbpfVmRaw::execute_program_cranelift;
    let _: fn(&[u8]) = rbpf::disassembler::disassemble;
    let _: fn(&[u8]) -> Vec<HLInsn> = rbpf::disassembler::to_insn_vec;
    let _: fn(&str) -> Result<Vec<u8>, String> = rbpf::assembler::assemble;
    let _: u32 = rbpf::helpers::BPF_TRACE_PRINTK_IDX;
    let _: u32 = rbpf::helpers::BPF_KTIME_GETNS_IDX;
    let _: rbpf::Helper = rbpf::helpers::bpf_trace_printf;
    let _: rbpf::Helper = rbpf::helpers::bpf_time_getns;
    let _: usize = rbpf::ebpf::MAX_CALL_DEPTH;

    // HLInsn's fields with rbpf's types (the JSON example prints each).
    let code = rbpf::assembler::assemble("lddw r1, 0x1122334455667788\nexit").unwrap();
    let insn = rbpf::disassembler::to_insn_vec(&code).remove(0);
    let HLInsn {
        opc,
        name,
        desc,
        dst,
        src,
        off,
        imm,
    } = insn;
    let fields: (u8, String, String, u8, u8, i16, i64) = (opc, name, desc, dst, src, off, imm);
    assert_eq!(fields.2, "lddw r1, 0x1122334455667788");
    assert_eq!(fields.6, 0x1122334455667788);

    // The allowed-memory example's shape: a helper hands out an address the program then
    // reads, allowed as a range.
    static VALUE: [u8; 4] = [1, 0, 0, 0];
    fn lookup(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
        VALUE.as_ptr() as u64
    }
    let prog = rbpf::assembler::assemble("call 1\nldxw r0, [r0]\nexit").unwrap();
    let mut vm = EbpfVmRaw::new(Some(&prog)).unwrap();
    vm.register_helper(1, lookup).unwrap();
    let start = VALUE.as_ptr() as u64;
    assert!(vm.execute_program(&mut []).is_err());
    vm.register_allowed_memory(start..start + VALUE.len() as u64);
    assert_eq!(vm.execute_program(&mut []).unwrap(), 1);
    vm.jit_compile().unwrap();
    assert_eq!(vm.execute_program_jit(&mut []).unwrap(), 1);
}

/// rbpf leaves the source register of `ldabs*` unchecked, and its engines ignore it: a
/// program that sets it loads and runs through the façade (in both engines), where the C API
/// refuses it.
#[test]
fn ldabs_with_a_source_register_runs_through_the_facade() {
    // mov r1, 5; ldabsdw 0x33 with src = 1; exit.
    let prog: [u8; 24] = [
        0xb7, 0x01, 0, 0, 0x05, 0, 0, 0, //
        0x38, 0x10, 0, 0, 0x33, 0, 0, 0, //
        0x95, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut vm = rbpf::EbpfVmRaw::new(Some(&prog)).expect("rbpf's verifier accepts it");
    let mut mem = ramp();
    let err = vm
        .execute_program(&mut mem)
        .expect_err("0x33 + 8 is past 16 bytes");
    assert!(
        err.to_string()
            .starts_with("Error: out of bounds memory load (insn #2)"),
        "{err}"
    );
    vm.jit_compile().expect("compile");
    let err = vm
        .execute_program_jit(&mut mem)
        .expect_err("the JIT agrees");
    assert!(
        err.to_string().contains("out of bounds memory load"),
        "{err}"
    );
    // In bounds, the source register changes nothing.
    let mut low = prog;
    low[12] = 0x03;
    let mut vm = rbpf::EbpfVmRaw::new(Some(&low)).expect("load");
    assert_eq!(vm.execute_program(&mut mem).unwrap(), 0xaa99_8877_6655_4433);
    vm.jit_compile().expect("compile");
    assert_eq!(
        vm.execute_program_jit(&mut mem).unwrap(),
        0xaa99_8877_6655_4433
    );
    // The native API keeps the kernel's rule.
    let mut native = rbpf::Vm::new();
    assert!(native.load(&prog).is_err());
}
