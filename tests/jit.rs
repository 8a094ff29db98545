//! The JIT through the public Rust API: every conformance program through the interpreter and
//! the JIT (Basic, Extended, and a `copy_jit` copy in a fresh executable mapping) with equal
//! results; faults that come back as errors; helpers re-registered after compiling.

mod common;

use std::ffi::c_void;

use common::mapping::Mapping;
use rbpf::error::{Access, ExecError, JitError};
use rbpf::isa::Insn;
use rbpf::jit::JitMode;
use rbpf::{Vm, isa};

fn parse_result(text: &str) -> u64 {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).expect("hex result")
    } else if let Some(neg) = text.strip_prefix('-') {
        neg.parse::<u64>().expect("result").wrapping_neg()
    } else {
        text.parse::<u64>().expect("result")
    }
}

fn quiet_vm() -> Vm {
    let mut vm = Vm::new();
    rbpf::conformance::register_helpers(&mut vm);
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm
}

/// Runs one conformance program through every engine; `Err` describes the first mismatch.
fn check_program(code: &[u8], mem: &[u8], want: u64) -> Result<(), String> {
    let mut vm = quiet_vm();
    vm.load(code).map_err(|e| format!("load: {e}"))?;
    let mut interp_mem = mem.to_vec();
    let interp = vm
        .execute(&mut interp_mem)
        .map_err(|e| format!("interpreter: {e}"))?;
    if interp != want {
        return Err(format!("interpreter r0 = {interp:#x}, expected {want:#x}"));
    }
    for mode in [JitMode::Basic, JitMode::Extended] {
        vm.compile(mode)
            .map_err(|e| format!("{mode:?} compile: {e}"))?;
        let mut jit_mem = mem.to_vec();
        let got = vm
            .execute_jit(&mut jit_mem)
            .map_err(|e| format!("{mode:?}: {e}"))?;
        if got != interp || jit_mem != interp_mem {
            return Err(format!(
                "{mode:?}: r0 = {got:#x} (interpreter {interp:#x}), memory equal: {}",
                jit_mem == interp_mem
            ));
        }
        let mut copy = vec![0u8; vm.jit_size().ok_or("no jit size")?];
        vm.copy_jit(&mut copy)
            .map_err(|e| format!("copy_jit: {e}"))?;
        let mapping = Mapping::new(&copy);
        let mut copy_mem = mem.to_vec();
        // SAFETY: the copy holds code compiled in `mode` by `vm`, which is alive.
        let got = unsafe { mapping.run(mode, &mut copy_mem) };
        if got != interp {
            return Err(format!(
                "{mode:?} copy: r0 = {got:#x}, expected {interp:#x}"
            ));
        }
    }
    Ok(())
}

#[test]
fn conformance_programs_agree_in_interpreter_jit_and_copies() {
    let dir = common::suite_dir();
    let refs = common::references(&dir);
    let mut passed = 0;
    let mut failures = Vec::new();
    for (name, r) in refs.iter().filter(|(_, r)| r.kind == "result") {
        match check_program(&r.bytes, &r.mem, parse_result(&r.value)) {
            Ok(()) => passed += 1,
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }
    eprintln!(
        "jit conformance (interpreter + Basic + Extended + copy_jit copies): {passed}/{} passed",
        passed + failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed, 313);
}

fn load(insns: &[Insn]) -> Vm {
    let mut vm = quiet_vm();
    vm.load(&isa::encode_slots(insns)).expect("program loads");
    vm
}

const EXIT: Insn = Insn::new(0x95, 0, 0, 0, 0);

/// Both engines fail the same way on `insns` (the JIT in both modes).
fn both_fail(vm: &mut Vm, mem: &mut [u8]) -> ExecError {
    let interp = vm
        .execute(&mut mem.to_vec())
        .expect_err("interpreter fails");
    for mode in [JitMode::Basic, JitMode::Extended] {
        vm.compile(mode).expect("compiles");
        let jit = vm.execute_jit(&mut mem.to_vec()).expect_err("jit fails");
        assert_eq!(
            std::mem::discriminant(&jit),
            std::mem::discriminant(&interp),
            "{mode:?}: {jit:?} vs {interp:?}"
        );
        match (&jit, &interp) {
            (
                ExecError::OutOfBounds {
                    pc, access, size, ..
                },
                ExecError::OutOfBounds {
                    pc: p2,
                    access: a2,
                    size: s2,
                    ..
                },
            ) => assert_eq!((pc, access, size), (p2, a2, s2)),
            _ => assert_eq!(jit, interp),
        }
    }
    interp
}

#[test]
fn faults_return_errors_instead_of_crashing() {
    // Out-of-bounds load past mem.
    let mut vm = load(&[Insn::new(0x79, 0, 1, 8, 0), EXIT]);
    let err = both_fail(&mut vm, &mut [0u8; 12]);
    assert!(matches!(
        err,
        ExecError::OutOfBounds {
            pc: 0,
            access: Access::Load,
            size: 8,
            ..
        }
    ));
    // Out-of-bounds store below the stack.
    let mut vm = load(&[Insn::new(0x7a, 10, 0, -4100, 1), EXIT]);
    both_fail(&mut vm, &mut []);
    // Store through a wild pointer (an integer, not a region).
    let mut vm = load(&[
        Insn::new(0xb7, 3, 0, 0, 0x1000),
        Insn::new(0x63, 3, 0, 0, 0),
        EXIT,
    ]);
    both_fail(&mut vm, &mut []);
    // Address wrap-around.
    let mut vm = load(&[
        Insn::new(0xb7, 3, 0, 0, -1),
        Insn::new(0x71, 0, 3, 2, 0),
        EXIT,
    ]);
    assert_eq!(
        both_fail(&mut vm, &mut []),
        ExecError::AddressOverflow {
            pc: 1,
            access: Access::Load
        }
    );
    // Runaway loop with an instruction limit.
    let mut vm = quiet_vm();
    vm.config_mut().instruction_limit = 5000;
    vm.load(&isa::encode_slots(&[
        Insn::new(0xb7, 0, 0, 0, 0),
        Insn::new(0x07, 0, 0, 0, 1),
        Insn::new(0x05, 0, 0, -2, 0),
        EXIT,
    ]))
    .expect("loads");
    assert!(matches!(
        both_fail(&mut vm, &mut []),
        ExecError::InstructionLimit { .. }
    ));
    // Unbounded recursion hits the call-depth limit.
    let mut vm = load(&[Insn::new(0x85, 0, 1, 0, -1), EXIT]);
    assert_eq!(
        both_fail(&mut vm, &mut []),
        ExecError::CallDepthExceeded {
            pc: 0,
            depth: 9,
            max: 8
        }
    );
}

#[test]
fn instruction_limit_boundary_matches_the_interpreter() {
    let insns = [
        Insn::new(0xb7, 0, 0, 0, 1),
        Insn::new(0x07, 0, 0, 0, 2),
        EXIT,
    ];
    for (limit, ok) in [(3, true), (2, false), (1, false)] {
        let mut vm = quiet_vm();
        vm.config_mut().instruction_limit = limit;
        vm.load(&isa::encode_slots(&insns)).expect("loads");
        let interp = vm.execute(&mut []);
        vm.compile(JitMode::Basic).expect("compiles");
        let jit = vm.execute_jit(&mut []);
        assert_eq!(interp.is_ok(), ok, "limit {limit}");
        assert_eq!(jit, interp, "limit {limit}");
    }
}

unsafe extern "C" fn add_one(a: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    a + 1
}

unsafe extern "C" fn square(a: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    a * a
}

#[test]
fn helpers_registered_after_compile_change_compiled_code() {
    let mut vm = quiet_vm();
    vm.register_helper(10, Some("f"), add_one)
        .expect("registers");
    vm.load(&isa::encode_slots(&[
        Insn::new(0xb7, 1, 0, 0, 9),
        Insn::new(0x85, 0, 0, 0, 10),
        EXIT,
    ]))
    .expect("loads");
    for mode in [JitMode::Basic, JitMode::Extended] {
        vm.register_helper(10, Some("f"), add_one)
            .expect("registers");
        let code = vm.compile(mode).expect("compiles");
        assert_eq!(vm.execute_jit(&mut []), Ok(10));
        vm.register_helper(10, Some("f"), square)
            .expect("registers");
        assert_eq!(vm.compile(mode), Ok(code), "cached");
        assert_eq!(vm.execute_jit(&mut []), Ok(81));
        assert_eq!(vm.execute(&mut []), Ok(81));
    }
}

#[test]
fn compile_errors_and_cache_rules() {
    let mut vm = quiet_vm();
    assert_eq!(vm.compile(JitMode::Basic), Err(JitError::NotLoaded));
    vm.load(&isa::encode_slots(&[Insn::new(0xb7, 0, 0, 0, 3), EXIT]))
        .expect("loads");
    vm.config_mut().jit_code_size = 1;
    assert_eq!(
        vm.compile(JitMode::Basic),
        Err(JitError::TargetBufferTooSmall)
    );
    vm.config_mut().jit_code_size = 65536;
    let basic = vm.compile(JitMode::Basic).expect("compiles");
    assert_eq!(vm.compile(JitMode::Basic), Ok(basic));
    vm.compile(JitMode::Extended).expect("compiles");
    assert_eq!(vm.execute_jit(&mut []), Ok(3));
    vm.unload().unwrap();
    assert_eq!(vm.jit_size(), None);
    assert_eq!(vm.execute_jit(&mut []), Err(ExecError::NotLoaded));
    vm.load(&isa::encode_slots(&[Insn::new(0xb7, 0, 0, 0, 4), EXIT]))
        .expect("reloads");
    vm.compile(JitMode::Basic).expect("compiles after reload");
    assert_eq!(vm.execute_jit(&mut []), Ok(4));
}

#[test]
fn several_threads_run_the_same_compiled_code() {
    let mut vm = quiet_vm();
    // r0 = *(u64*)mem * 3, looping 1000 times to overlap the threads.
    vm.load(&isa::encode_slots(&[
        Insn::new(0x79, 6, 1, 0, 0),
        Insn::new(0xb7, 0, 0, 0, 0),
        Insn::new(0xb7, 2, 0, 0, 1000),
        Insn::new(0x0f, 0, 6, 0, 0),
        Insn::new(0x17, 2, 0, 0, 1),
        Insn::new(0x55, 2, 0, -3, 0),
        EXIT,
    ]))
    .expect("loads");
    vm.config_mut().instruction_limit = 1_000_000;
    vm.compile(JitMode::Basic).expect("compiles");
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let vm = &vm;
            s.spawn(move || {
                for i in 0..200u64 {
                    let mut mem = (t * 1000 + i).to_le_bytes();
                    assert_eq!(vm.execute_jit(&mut mem), Ok((t * 1000 + i) * 1000));
                    // Every other run faults (mem too short): errors stay per run.
                    assert!(vm.execute_jit(&mut mem[..4]).is_err());
                }
            });
        }
    });
}
