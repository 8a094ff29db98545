//! Large programs of every shape (`tests/common/shapes.rs`) compile in the tier they get (the
//! one-pass baseline tier) and in Cranelift's fast tier, and give the interpreter's result and
//! memory, in both entry modes and with the instruction
//! limit on; programs that provably cannot fit the code buffer are refused before compiling,
//! and programs that fit are not. Correctness only: compile time is measured by `cargo bench
//! --bench compile_growth`, never asserted here.

mod common;

use common::shapes::{self, Shape};
use rbpf::error::{ExecError, JitError};
use rbpf::isa::{self, Insn, MAX_INSTS};
use rbpf::jit::JitMode;
use rbpf::{JitTier, Vm};

/// Above the JIT's fast-tier threshold (1,024 slots), yet quick to compile in debug builds.
const LARGE: usize = 1500;
/// The largest program the validator accepts.
const LARGEST: usize = MAX_INSTS - 1;

/// The tiers large programs are checked in: the one they get, and Cranelift's fast tier
/// (which still compiles them with constant blinding or legacy packet loads).
const TIERS: [JitTier; 2] = [JitTier::Auto, JitTier::Fast];

fn vm_with(insns: &[Insn], code_size: usize) -> Vm {
    shapes::loaded(insns, code_size).unwrap()
}

/// [`vm_with`], compiling in `tier`.
fn vm_in(insns: &[Insn], code_size: usize, tier: JitTier) -> Vm {
    let mut vm = vm_with(insns, code_size);
    vm.config_mut().jit_tier = tier;
    vm
}

fn input() -> Vec<u8> {
    (0..shapes::MEM_LEN as u8)
        .map(|i| i.wrapping_mul(37))
        .collect()
}

/// Compiles `shape` at `slots` in each mode (in `tier`) and checks result and memory against
/// the interpreter; with `limit`, also under an instruction limit that stops the run midway.
fn agrees(shape: &Shape, slots: usize, limit: bool, tier: JitTier) {
    let insns = (shape.build)(slots);
    assert_eq!(insns.len(), slots, "{}: generator length", shape.name);
    let mut vm = vm_in(&insns, usize::MAX, tier);
    let mut want_mem = input();
    let want = vm.execute(&mut want_mem);
    assert!(want.is_ok(), "{}: interpreter failed: {want:?}", shape.name);
    for mode in [JitMode::Basic, JitMode::Extended] {
        vm.compile(mode)
            .unwrap_or_else(|e| panic!("{} at {slots} ({mode:?}): {e}", shape.name));
        let mut mem = input();
        let got = vm.execute_jit(&mut mem);
        assert_eq!(got, want, "{} at {slots} ({mode:?})", shape.name);
        assert!(
            mem == want_mem,
            "{} at {slots} ({mode:?}): memory",
            shape.name
        );
    }
    // Constant blinding and unchecked accesses (the shapes stay in bounds) change the
    // translation, not the result.
    let mut vm = vm_in(&insns, usize::MAX, tier);
    vm.config_mut().constant_blinding = true;
    vm.config_mut().bounds_check = false;
    vm.compile(JitMode::Basic).unwrap();
    let mut mem = input();
    assert_eq!(
        vm.execute_jit(&mut mem),
        want,
        "{} blinded, unchecked",
        shape.name
    );
    assert!(mem == want_mem, "{} blinded, unchecked: memory", shape.name);
    if limit {
        // A limit below the run's length: both engines stop with the same error.
        let mut vm = vm_in(&insns, usize::MAX, tier);
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm.config_mut().instruction_limit = (slots / 2) as u32;
        let interp = vm.execute(&mut input());
        vm.compile(JitMode::Basic).unwrap();
        let jit = vm.execute_jit(&mut input());
        assert_eq!(jit, interp, "{} at {slots} with a limit", shape.name);
    }
}

#[test]
fn every_shape_agrees_with_the_interpreter_in_both_large_program_tiers() {
    for tier in TIERS {
        for shape in shapes::ALL {
            agrees(shape, LARGE, true, tier);
        }
    }
}

#[test]
fn the_largest_programs_compile_and_agree() {
    // The program, 65,534 `jeq r0, i, +0` then `exit` (every jump lands on the next
    // slot), at the validator's maximum size; straight-line code at a quarter of it (the
    // debug build's IR verifier makes bigger compiles slow in tests).
    let by_name = |name| shapes::ALL.iter().find(|s| s.name == name).unwrap();
    for tier in TIERS {
        agrees(by_name("jeq-each"), LARGEST, false, tier);
        agrees(by_name("alu"), 16_384, false, tier);
    }
}

#[test]
fn small_programs_compile_in_the_optimised_tier_and_agree() {
    for shape in shapes::ALL {
        agrees(shape, 300, false, JitTier::Auto);
    }
}

#[test]
fn programs_that_cannot_fit_are_refused_before_compiling() {
    // 65,535 slots of checked loads and stores need far more than the default 64 KiB.
    let ldst = shapes::ALL.iter().find(|s| s.name == "ldst").unwrap();
    let insns = (ldst.build)(LARGEST);
    let mut vm = vm_with(&insns, 65536);
    assert_eq!(
        vm.compile(JitMode::Basic),
        Err(JitError::TargetBufferTooSmall)
    );
    assert_eq!(vm.jit_size(), None);
    let mut buf = vec![0u8; 65536];
    assert_eq!(
        vm.translate(JitMode::Basic, &mut buf),
        Err(JitError::TargetBufferTooSmall)
    );
    assert_eq!(
        JitError::TargetBufferTooSmall.to_string(),
        "Target buffer too small"
    );
}

#[test]
fn programs_that_fit_are_not_refused() {
    // 65,534 no-op jumps compile to almost nothing: they fit the default 64 KiB.
    let jeq = shapes::ALL.iter().find(|s| s.name == "jeq-each").unwrap();
    let mut vm = vm_with(&(jeq.build)(LARGEST), 65536);
    vm.compile(JitMode::Basic).unwrap();
    assert!(vm.jit_size().unwrap() <= 65536);
    assert_eq!(vm.execute_jit(&mut []), vm.execute(&mut []));

    // Unreachable work does not count: a store after `exit` is never compiled.
    let mut insns = vec![Insn::new(0x95, 0, 0, 0, 0)];
    insns.resize(LARGEST, Insn::new(0x7b, 10, 0, -8, 0)); // stxdw [r10-8], r0
    let mut vm = vm_with(&insns, 4096);
    vm.compile(JitMode::Basic).unwrap();
    assert_eq!(vm.execute_jit(&mut []), Ok(0));
}

/// A dispatcher that serves every index the way the shapes' helper does, tagged with the index.
unsafe extern "C" fn dispatch(
    a: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    index: u32,
    _: *mut std::ffi::c_void,
) -> u64 {
    a.wrapping_add(1) ^ (u64::from(index) << 32)
}

#[test]
fn helper_calls_of_large_programs_match_the_interpreter() {
    let helper = shapes::ALL.iter().find(|s| s.name == "helper").unwrap();
    let insns = (helper.build)(LARGE);

    // Through a dispatcher registered before loading.
    let mut vm = Vm::new();
    vm.config_mut().jit_code_size = usize::MAX;
    vm.set_dispatcher(Some(dispatch), Some(Box::new(|_| true)));
    vm.load(&isa::encode_slots(&insns)).unwrap();
    let want = vm.execute(&mut []);
    assert!(want.is_ok());
    vm.compile(JitMode::Basic).unwrap();
    assert_eq!(vm.execute_jit(&mut []), want);

    // The dispatcher removed after compiling, and no helper in the slot: both engines fault
    // at the first call with the same error, without returning into the program.
    let mut vm = Vm::new();
    vm.config_mut().jit_code_size = usize::MAX;
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.set_dispatcher(Some(dispatch), Some(Box::new(|_| true)));
    vm.load(&isa::encode_slots(&insns)).unwrap();
    vm.compile(JitMode::Basic).unwrap();
    vm.set_dispatcher(None, None);
    let want = vm.execute(&mut []);
    assert!(want.is_err(), "{want:?}");
    assert_eq!(vm.execute_jit(&mut []), want);

    // The unwind helper: the call whose argument is u64::MAX returns 0 and ends the run.
    let mut unwinding = Vec::new();
    for i in 0..(LARGE / 3 - 1) as i32 {
        unwinding.extend([
            Insn::new(0xb7, 1, 0, 0, i - 250), // mov r1, i - 250
            Insn::new(0x85, 0, 0, 0, shapes::HELPER_INDEX),
            Insn::new(0x0f, 6, 0, 0, 0), // add r6, r0
        ]);
    }
    unwinding.extend([Insn::new(0xbf, 0, 6, 0, 0), Insn::new(0x95, 0, 0, 0, 0)]);
    let mut vm = Vm::new();
    vm.config_mut().jit_code_size = usize::MAX;
    vm.register_helper(shapes::HELPER_INDEX as u32, None, shapes::add_one)
        .unwrap();
    vm.set_unwind_index(shapes::HELPER_INDEX as u32).unwrap();
    vm.load(&isa::encode_slots(&unwinding)).unwrap();
    let want = vm.execute(&mut []);
    assert_eq!(want, Ok(0));
    vm.compile(JitMode::Basic).unwrap();
    assert_eq!(vm.execute_jit(&mut []), want);
}

#[test]
fn the_early_refusal_never_refuses_code_that_fits() {
    // A buffer of exactly the code's size must be accepted, for every shape and both modes:
    // the bound checked before compiling is never above the real size.
    for (shape, tier) in shapes::ALL.iter().flat_map(|s| TIERS.map(|t| (s, t))) {
        let insns = (shape.build)(LARGE);
        for mode in [JitMode::Basic, JitMode::Extended] {
            let mut vm = vm_in(&insns, usize::MAX, tier);
            vm.compile(mode).unwrap();
            let size = vm.jit_size().unwrap();
            let mut exact = vm_in(&insns, size, tier);
            assert!(
                exact.compile(mode).is_ok(),
                "{} ({mode:?}, {tier:?}): refused with a buffer of its own size {size}",
                shape.name
            );
            let mut buf = vec![0u8; size];
            assert_eq!(exact.translate(mode, &mut buf), Ok(size), "{}", shape.name);
        }
    }
}

#[test]
fn faults_of_large_programs_match_the_interpreter() {
    // The loads and stores shape with its last `add` replaced by a load past the end of mem,
    // and with a store below the stack: the same error, and the same memory written before
    // it, in both engines and both modes.
    let ldst = shapes::ALL.iter().find(|s| s.name == "ldst").unwrap();
    let bad_accesses = [
        Insn::new(0x79, 0, 1, shapes::MEM_LEN as i16, 0), // ldxdw r0, [r1+MEM_LEN]
        Insn::new(0x7b, 10, 0, -4104, 0),                 // stxdw [r10-4104], r0
    ];
    for (bad, tier) in bad_accesses.iter().flat_map(|&b| TIERS.map(|t| (b, t))) {
        let mut insns = (ldst.build)(LARGE);
        insns[LARGE - 2] = bad;
        let mut vm = vm_in(&insns, usize::MAX, tier);
        vm.set_error_printer(Some(Box::new(|_| {})));
        let mut want_mem = input();
        let want = vm.execute(&mut want_mem);
        assert!(want.is_err(), "{want:?}");
        for mode in [JitMode::Basic, JitMode::Extended] {
            vm.compile(mode).unwrap();
            let mut mem = input();
            let got = vm.execute_jit(&mut mem);
            assert_eq!(
                without_addresses(&got),
                without_addresses(&want),
                "{mode:?}, {tier:?}"
            );
            assert!(mem == want_mem, "{mode:?}, {tier:?}: memory");
        }
    }
}

/// An out-of-bounds error without its addresses, which differ between engines (each has its
/// own stack) and runs: the slot and the kind and size of the access.
fn without_addresses(result: &Result<u64, ExecError>) -> String {
    match result {
        Err(ExecError::OutOfBounds {
            pc, access, size, ..
        }) => format!("out of bounds at {pc}: {access:?} of {size}"),
        other => format!("{other:?}"),
    }
}

#[test]
fn translated_large_programs_run_anywhere() {
    // `translate` output of each tier, copied into a fresh mapping, gives the interpreter's
    // result and memory: the code holds no address of itself (local calls return through
    // addresses computed at run time).
    for (shape, tier) in shapes::ALL.iter().flat_map(|s| TIERS.map(|t| (s, t))) {
        let insns = (shape.build)(LARGE);
        let mut vm = vm_in(&insns, usize::MAX, tier);
        let mut want_mem = input();
        let want = vm.execute(&mut want_mem).unwrap();
        let mut buf = vec![0u8; 1 << 22];
        let n = vm.translate(JitMode::Basic, &mut buf).unwrap();
        let copy = common::mapping::Mapping::new(&buf[..n]);
        let mut mem = input();
        // SAFETY: Basic-mode code translated from this VM, which outlives the run.
        let got = unsafe { copy.run(JitMode::Basic, &mut mem) };
        assert_eq!(got, want, "{} ({tier:?})", shape.name);
        assert!(mem == want_mem, "{} ({tier:?}): memory", shape.name);
    }
}
