//! The bpf_conformance suite end to end: every `tests/*.data` file is parsed, assembled
//! (and compared byte for byte with `assembled.tsv`), loaded with the suite's helpers and run
//! in the interpreter, the JIT, the JIT with constant blinding and the safe-profile
//! interpreter (uBPF's CTest variants); r0 must equal the expected result in all of them. The `negative/` programs must be
//! rejected, and the runner self-tests must be judged as failures.

mod common;

use std::path::Path;

use rbpf::Vm;
use rbpf::data_file::{DataFile, Expected};
use rbpf::interpreter::SafeHelperResult;
use rbpf::jit::JitMode;
use rbpf::vm::ExecutionProfile;
use rbpf::{JitTier, disasm, isa};

fn new_vm() -> Vm {
    let mut vm = Vm::new();
    rbpf::conformance::register_helpers(&mut vm);
    // Runtime errors are returned to the runner; keep the output to the summary lines.
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm
}

/// Runs a program the way the reference plugin does; the error text of whichever stage
/// failed, or r0.
fn interpret(code: &[u8], mem: &[u8]) -> Result<u64, String> {
    let mut vm = new_vm();
    vm.load(code)
        .map_err(|e| format!("Failed to load code: {e}"))?;
    let mut mem = mem.to_vec();
    vm.execute(&mut mem).map_err(|e| e.to_string())
}

/// As [`interpret`], in uBPF's safe execution profile (helpers registered as safe helpers
/// with scalar results, as uBPF's plugin does).
fn interpret_safe(code: &[u8], mem: &[u8]) -> Result<u64, String> {
    let mut vm = new_vm();
    vm.config_mut().profile = ExecutionProfile::Safe;
    for (index, name, f) in rbpf::conformance::HELPERS {
        vm.register_safe_helper(index, Some(name), f, SafeHelperResult::Scalar)
            .map_err(|e| e.to_string())?;
    }
    vm.load(code)
        .map_err(|e| format!("Failed to load code: {e}"))?;
    let mut mem = mem.to_vec();
    vm.execute(&mut mem).map_err(|e| e.to_string())
}

/// As [`interpret`], through the JIT (basic mode, on a fresh copy of the memory).
fn jit(code: &[u8], mem: &[u8]) -> Result<u64, String> {
    jit_with(code, mem, false)
}

/// As [`jit`], with constant blinding (uBPF's CI reruns its JIT tests this way).
fn jit_blinded(code: &[u8], mem: &[u8]) -> Result<u64, String> {
    jit_with(code, mem, true)
}

/// As [`jit`], in the one-pass baseline tier.
fn jit_baseline(code: &[u8], mem: &[u8]) -> Result<u64, String> {
    jit_in(code, mem, false, JitTier::Baseline)
}

fn jit_with(code: &[u8], mem: &[u8], blinding: bool) -> Result<u64, String> {
    jit_in(code, mem, blinding, JitTier::Auto)
}

fn jit_in(code: &[u8], mem: &[u8], blinding: bool, tier: JitTier) -> Result<u64, String> {
    let mut vm = new_vm();
    vm.config_mut().constant_blinding = blinding;
    vm.config_mut().jit_tier = tier;
    vm.load(code)
        .map_err(|e| format!("Failed to load code: {e}"))?;
    vm.compile(JitMode::Basic)
        .map_err(|e| format!("Failed to compile: {e}"))?;
    let mut mem = mem.to_vec();
    vm.execute_jit(&mut mem).map_err(|e| e.to_string())
}

/// One suite file through parse → assemble → compare → load → run → judge.
fn run_file(dir: &Path, path: &Path, refs: &common::References) -> Result<(), String> {
    let key = common::key(dir, path);
    let text = std::fs::read_to_string(path).map_err(|e| format!("read: {e}"))?;
    let file = DataFile::parse(&text).map_err(|e| format!("parse: {e}"))?;
    let expected = file.expected().map_err(|e| e.to_string())?;
    let insns = file.program().map_err(|e| e.to_string())?;
    let code = isa::encode_slots(&insns);
    let reference = refs
        .get(&key)
        .ok_or_else(|| "missing from assembled.tsv".to_owned())?;
    if code != reference.bytes {
        return Err("assembled bytes differ from assembled.tsv".to_owned());
    }
    let engines = [
        ("interpreter", interpret as Engine),
        ("jit", jit),
        ("jit-blinded", jit_blinded),
        ("jit-baseline", jit_baseline),
        ("safe-interpreter", interpret_safe),
    ];
    for (engine, run) in engines {
        let outcome = run(&code, &file.mem_bytes());
        expected
            .judge(outcome.as_ref().copied().map_err(String::as_str))
            .map_err(|e| {
                // Show the program as the engines saw it, to make the divergence readable.
                let listing: String = disasm::disassemble(&insns)
                    .lines()
                    .map(|l| format!("\n    {l}"))
                    .collect();
                format!("{engine}: {e}{listing}")
            })?;
    }
    Ok(())
}

type Engine = fn(&[u8], &[u8]) -> Result<u64, String>;

#[test]
fn conformance_suite_in_all_engines() {
    let dir = common::suite_dir();
    let refs = common::references(&dir);
    let files = common::data_files(&dir, "tests");
    let (mut passed, mut failed) = (0usize, 0usize);
    for path in &files {
        let key = common::key(&dir, path);
        match run_file(&dir, path, &refs) {
            Ok(()) => {
                passed += 1;
                println!("PASS {key}");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {key}: {e}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    assert_eq!((passed, failed), (313, 0), "see the FAIL lines above");
}

/// The `unused-*` programs set a field their instruction does not use; loading must fail.
#[test]
fn unused_field_programs_are_rejected_by_the_loader() {
    let dir = common::suite_dir();
    let refs = common::references(&dir);
    let mut rejected = 0;
    for (key, reference) in refs
        .iter()
        .filter(|(k, _)| k.starts_with("negative/unused-"))
    {
        assert_eq!(reference.kind, "error", "{key}");
        let mut vm = new_vm();
        match vm.load(&reference.bytes) {
            Ok(()) => panic!("{key}: the loader accepted it"),
            Err(e) => println!("REJECTED {key}: {e}"),
        }
        rejected += 1;
    }
    assert_eq!(rejected, 45);
}

/// `error.data` (`or %r0, %r10; exit` expecting an error) and
/// `incorrect_return_value_high_bits.data` are valid programs with a wrong stated outcome:
/// they run fine, and the runner must report them as failures.
#[test]
fn runner_self_tests_are_judged_as_failures() {
    let dir = common::suite_dir();
    let neg = dir.join("negative");
    let load = |name: &str| {
        let text = std::fs::read_to_string(neg.join(name)).expect("read");
        DataFile::parse(&text).expect("parse")
    };

    for run in [interpret as Engine, jit] {
        let file = load("error.data");
        let code = isa::encode_slots(&file.program().expect("valid assembly"));
        // Reading r10 is allowed: the program returns the frame pointer (a non-zero address).
        let r0 = run(&code, &[]).expect("runs");
        assert_ne!(r0, 0);
        let verdict = file.expected().expect("has an error section").judge(Ok(r0));
        assert!(
            verdict.is_err(),
            "an expected error with a result must fail"
        );

        let file = load("incorrect_return_value_high_bits.data");
        let code = isa::encode_slots(&file.program().expect("valid assembly"));
        let r0 = run(&code, &file.mem_bytes()).expect("runs");
        assert_eq!(r0, 0x8877_6655_4433_2211, "ldxdw of bytes 11..88");
        let expected = file.expected().expect("has a result");
        assert_eq!(expected, Expected::Result(0x8977_6655_4433_2211));
        assert!(expected.judge(Ok(r0)).is_err());
    }
}
