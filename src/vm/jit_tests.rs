//! Tests of the JIT (`crate::jit`) that install hand-built programs in a VM (no verifier
//! needed).

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::path::Path;

use crate::error::Access;
use crate::error::{ExecError, JitError};
use crate::isa::{self, Insn, LOCAL_FUNCTION_STACK_SIZE, op};
use crate::jit::*;
use crate::program::{Function, Program};
use crate::vm::Vm;

/// A program with functions at slot 0 and every local-call target (no verification).
pub(crate) fn program_from_insns(insns: Vec<Insn>) -> Program {
    let mut starts = BTreeSet::from([0usize]);
    for (pc, insn) in insns.iter().enumerate() {
        if insn.opc == op::CALL && insn.src == 1 {
            starts.insert((pc as i64 + 1 + i64::from(insn.imm)) as usize);
        }
    }
    let starts: Vec<usize> = starts.into_iter().collect();
    let functions = starts
        .iter()
        .enumerate()
        .map(|(i, &start)| Function {
            start,
            end: starts.get(i + 1).copied().unwrap_or(insns.len()),
            stack_usage: LOCAL_FUNCTION_STACK_SIZE,
        })
        .collect::<Vec<_>>();
    Program {
        stack_reach: crate::program::verifier::stack_reach(&insns, &functions),
        calls_helpers: crate::program::calls_helpers(&insns),
        insns,
        functions,
        data_sections: Vec::new(),
    }
}

thread_local! {
    /// The JIT tier [`vm_with`] configures: `Auto` (these small programs compile optimised),
    /// or `Baseline` while [`the_same_tests_pass_in_the_baseline_tier`] reruns the tests.
    static TIER: std::cell::Cell<crate::JitTier> = const { std::cell::Cell::new(crate::JitTier::Auto) };
}

pub(crate) fn vm_with(insns: Vec<Insn>) -> Vm {
    let mut vm = Vm::new();
    vm.config_mut().jit_tier = TIER.with(std::cell::Cell::get);
    crate::tools::conformance::register_helpers(&mut vm);
    vm.install(program_from_insns(insns));
    vm
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn parse_result(s: &str) -> u64 {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).unwrap()
    } else {
        s.parse::<i64>().map(|v| v as u64).unwrap()
    }
}

/// The conformance suite's `assembled.tsv`: in `$RBPF_CONFORMANCE_DIR` if set, else the copy
/// vendored in `tests/bpf-conformance` (as `tests/common/mod.rs` locates it).
fn suite_tsv() -> std::path::PathBuf {
    std::env::var_os("RBPF_CONFORMANCE_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bpf-conformance"),
            std::path::PathBuf::from,
        )
        .join("assembled.tsv")
}

#[test]
fn conformance_programs_give_expected_results_in_both_modes() {
    let path = suite_tsv();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut passed = 0;
    let mut failures = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 5 || cols[3] != "result" {
            continue;
        }
        let insns = isa::decode_slots(&hex(cols[1])).unwrap();
        let expected = parse_result(cols[4]);
        for mode in [JitMode::Basic, JitMode::Extended] {
            let mut vm = vm_with(insns.clone());
            let mut mem = hex(cols[2]);
            let got = vm
                .compile(mode)
                .map_err(|e| e.to_string())
                .and_then(|_| vm.execute_jit(&mut mem).map_err(|e| e.to_string()));
            if got == Ok(expected) {
                passed += 1;
            } else {
                failures.push(format!(
                    "{} {mode:?}: got {got:x?}, want {expected:#x}",
                    cols[0]
                ));
            }
        }
    }
    eprintln!(
        "jit conformance: {passed} passed, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const EXIT: Insn = Insn::new(0x95, 0, 0, 0, 0);

fn mov64_imm(dst: u8, imm: i32) -> Insn {
    Insn::new(0xb7, dst, 0, 0, imm)
}

fn run(vm: &mut Vm, mode: JitMode, mem: &mut [u8]) -> Result<u64, ExecError> {
    vm.compile(mode).unwrap();
    vm.execute_jit(mem)
}

fn quiet(vm: &mut Vm) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    vm.set_error_printer(Some(Box::new(move |m| {
        sink.lock().unwrap().push(m.to_owned())
    })));
    log
}

#[test]
fn out_of_bounds_load_and_store_return_errors_with_ubpf_text() {
    for mode in [JitMode::Basic, JitMode::Extended] {
        // ldxdw r0, [r1+8] on an 8-byte mem.
        let mut vm = vm_with(vec![Insn::new(0x79, 0, 1, 8, 0), EXIT]);
        let log = quiet(&mut vm);
        let mut mem = [0u8; 8];
        let err = run(&mut vm, mode, &mut mem).unwrap_err();
        assert!(
            matches!(
                err,
                ExecError::OutOfBounds {
                    pc: 0,
                    access: Access::Load,
                    size: 8,
                    mem_len: 8,
                    stack_len: 4096,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            log.lock().unwrap()[0].starts_with("uBPF error: out of bounds memory load at PC 0")
        );

        // stb [r10+0], 1: one past the top of the stack.
        let mut vm = vm_with(vec![Insn::new(0x72, 10, 0, 0, 1), EXIT]);
        quiet(&mut vm);
        let err = run(&mut vm, mode, &mut []).unwrap_err();
        assert!(
            matches!(
                err,
                ExecError::OutOfBounds {
                    pc: 0,
                    access: Access::Store,
                    size: 1,
                    mem: 0,
                    ..
                }
            ),
            "{err:?}"
        );

        // Address wrap-around is reported as such.
        let mut vm = vm_with(vec![mov64_imm(2, -1), Insn::new(0x71, 0, 2, 4, 0), EXIT]);
        quiet(&mut vm);
        let err = run(&mut vm, mode, &mut []).unwrap_err();
        assert_eq!(
            err,
            ExecError::AddressOverflow {
                pc: 1,
                access: Access::Load
            }
        );
    }
}

#[test]
fn in_bounds_accesses_at_region_edges_succeed() {
    // ldxb r0, [r1+7]; stxdw [r10-8], r0; ldxdw r0, [r10-8]; exit
    let insns = vec![
        Insn::new(0x71, 0, 1, 7, 0),
        Insn::new(0x7b, 10, 0, -8, 0),
        Insn::new(0x79, 0, 10, -8, 0),
        EXIT,
    ];
    for mode in [JitMode::Basic, JitMode::Extended] {
        let mut vm = vm_with(insns.clone());
        let mut mem = [0, 0, 0, 0, 0, 0, 0, 0x5a];
        assert_eq!(run(&mut vm, mode, &mut mem), Ok(0x5a));
    }
}

#[test]
fn bounds_callback_and_disabled_checks_are_honoured() {
    let mut backing = [7u8; 16];
    let addr = backing.as_mut_ptr() as u64;
    let insns = vec![
        Insn::new(0x18, 1, 0, 0, addr as u32 as i32),
        Insn::new(0, 0, 0, 0, (addr >> 32) as u32 as i32),
        Insn::new(0x71, 0, 1, 3, 0),
        EXIT,
    ];
    let mut vm = vm_with(insns.clone());
    quiet(&mut vm);
    assert!(run(&mut vm, JitMode::Basic, &mut []).is_err());
    let mut vm = vm_with(insns.clone());
    vm.set_bounds_check_fn(Box::new(move |a, n| a >= addr && a + n <= addr + 16))
        .unwrap();
    assert_eq!(run(&mut vm, JitMode::Basic, &mut []), Ok(7));
    let mut vm = vm_with(insns);
    vm.config_mut().bounds_check = false;
    assert_eq!(run(&mut vm, JitMode::Basic, &mut []), Ok(7));
}

#[test]
fn instruction_limit_stops_runaway_loops_and_counts_exactly() {
    // A loop forever: ja -1 is rejected by the verifier, so loop over two instructions.
    let insns = vec![
        mov64_imm(0, 0),
        Insn::new(0x07, 0, 0, 0, 1),
        Insn::new(0x05, 0, 0, -2, 0),
        EXIT,
    ];
    let mut vm = vm_with(insns);
    vm.config_mut().instruction_limit = 1000;
    let log = quiet(&mut vm);
    let err = run(&mut vm, JitMode::Basic, &mut []).unwrap_err();
    assert!(matches!(err, ExecError::InstructionLimit { .. }), "{err:?}");
    assert_eq!(log.lock().unwrap()[0], "Error: Instruction limit exceeded.");

    // Three instructions: limit 3 passes, limit 2 fails at the third (pc 3, after lddw).
    let insns = vec![
        Insn::new(0x18, 0, 0, 0, 5),
        Insn::new(0, 0, 0, 0, 0),
        Insn::new(0x07, 0, 0, 0, 1),
        EXIT,
    ];
    let mut vm = vm_with(insns.clone());
    vm.config_mut().instruction_limit = 3;
    assert_eq!(run(&mut vm, JitMode::Basic, &mut []), Ok(6));
    let mut vm = vm_with(insns);
    vm.config_mut().instruction_limit = 2;
    quiet(&mut vm);
    assert_eq!(
        run(&mut vm, JitMode::Basic, &mut []),
        Err(ExecError::InstructionLimit { pc: 3 })
    );
}

#[test]
fn local_call_depth_is_limited_to_eight_frames() {
    // f(n): r1 -= 1; if r1 == 0 return; call f; exit.  main: r1 = n; call f; exit.
    let prog = |n: i32| {
        vec![
            mov64_imm(1, n),
            Insn::new(0x85, 0, 1, 0, 1), // call local +1 → pc 3
            EXIT,
            Insn::new(0x17, 1, 0, 0, 1),  // 3: sub r1, 1
            Insn::new(0x15, 1, 0, 1, 0),  // jeq r1, 0, +1
            Insn::new(0x85, 0, 1, 0, -3), // call local → pc 3
            EXIT,
        ]
    };
    let mut vm = vm_with(prog(8));
    assert!(run(&mut vm, JitMode::Basic, &mut []).is_ok());
    let mut vm = vm_with(prog(9));
    let log = quiet(&mut vm);
    let err = run(&mut vm, JitMode::Extended, &mut []).unwrap_err();
    assert_eq!(
        err,
        ExecError::CallDepthExceeded {
            pc: 5,
            depth: 9,
            max: 8
        }
    );
    assert_eq!(
        log.lock().unwrap()[0],
        "uBPF error: number of nested functions calls (9) exceeds max (8) at PC 5"
    );
}

#[test]
fn local_calls_lower_r10_by_the_callers_frame_and_restore_r6_to_r9() {
    // main: stb [r10-1], 0x55; r6 = 7; call f; r0 = [r10-1] + r6 (f's r10 is 256 lower).
    let insns = vec![
        Insn::new(0x72, 10, 0, -1, 0x55),
        mov64_imm(6, 7),
        Insn::new(0x85, 0, 1, 0, 3), // → pc 6
        Insn::new(0x71, 0, 10, -1, 0),
        Insn::new(0x0f, 0, 6, 0, 0),
        EXIT,
        mov64_imm(6, 100), // 6: f
        Insn::new(0x72, 10, 0, -1, 0x11),
        Insn::new(0x72, 10, 0, 255, 0x22), // writes main's byte [r10-1]
        EXIT,
    ];
    for mode in [JitMode::Basic, JitMode::Extended] {
        let mut vm = vm_with(insns.clone());
        assert_eq!(run(&mut vm, mode, &mut []), Ok(0x22 + 7));
    }
}

static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
unsafe extern "C" fn plus_one(a: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    a + 1
}
unsafe extern "C" fn times_two(a: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    a * 2
}
unsafe extern "C" fn dispatch(
    a: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    idx: u32,
    _mem: *mut c_void,
) -> u64 {
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    a * 1000 + u64::from(idx)
}
unsafe extern "C" fn mem_arg(_: u64, _: u64, _: u64, _: u64, _: u64, mem: *mut c_void) -> u64 {
    mem as u64
}

#[test]
fn helpers_and_dispatcher_registered_after_compile_are_used() {
    let insns = vec![mov64_imm(1, 20), Insn::new(0x85, 0, 0, 0, 7), EXIT];
    let mut vm = vm_with(insns);
    vm.register_helper(7, None, plus_one).unwrap();
    let f = vm.compile(JitMode::Basic).unwrap();
    assert_eq!(vm.execute_jit(&mut []), Ok(21));
    vm.register_helper(7, None, times_two).unwrap();
    assert_eq!(vm.compile(JitMode::Basic).unwrap(), f, "cached per mode");
    assert_eq!(vm.execute_jit(&mut []), Ok(40));
    vm.set_dispatcher(Some(dispatch), Some(Box::new(|_| true)));
    assert_eq!(vm.execute_jit(&mut []), Ok(20_007));
    vm.set_dispatcher(None, None);
    assert_eq!(vm.execute_jit(&mut []), Ok(40));
}

#[test]
fn helpers_get_the_original_mem_and_missing_helpers_fault() {
    // r1 = 0 (overwrite mem in r1), call 9 → returns its 6th argument.
    let mut vm = vm_with(vec![mov64_imm(1, 0), Insn::new(0x85, 0, 0, 0, 9), EXIT]);
    vm.register_helper(9, None, mem_arg).unwrap();
    let mut mem = [0u8; 4];
    let addr = mem.as_ptr() as u64;
    assert_eq!(run(&mut vm, JitMode::Basic, &mut mem), Ok(addr));

    let mut vm = vm_with(vec![Insn::new(0x85, 0, 0, 0, 12), EXIT]);
    quiet(&mut vm);
    assert_eq!(
        run(&mut vm, JitMode::Basic, &mut []),
        Err(ExecError::NonexistentFunction { pc: 0, index: 12 })
    );
}

#[test]
fn unwind_helper_ends_the_program_from_a_local_function() {
    let insns = vec![
        Insn::new(0x85, 0, 1, 0, 2), // call f
        mov64_imm(0, 99),
        EXIT,
        mov64_imm(1, 0), // f: unwind(0) → program returns 0
        Insn::new(0x85, 0, 0, 0, 5),
        mov64_imm(0, 1),
        EXIT,
    ];
    let mut vm = vm_with(insns);
    assert_eq!(run(&mut vm, JitMode::Basic, &mut []), Ok(0));
}

#[test]
fn compiled_code_runs_after_memcpy_and_translate() {
    let insns = vec![
        Insn::new(0x61, 0, 1, 0, 0),   // ldxw r0, [r1]
        Insn::new(0x07, 0, 0, 0, 5),   // add r0, 5
        Insn::new(0x85, 0, 0, 0, 2),   // no_op keeps r0? no: r0 = 0
        Insn::new(0x61, 0, 1, 0, 0),   // ldxw r0, [r1]
        Insn::new(0x25, 0, 0, 1, 100), // jgt r0, 100, +1
        Insn::new(0x07, 0, 0, 0, 1),
        EXIT,
    ];
    for mode in [JitMode::Basic, JitMode::Extended] {
        let mut vm = vm_with(insns.clone());
        vm.compile(mode).unwrap();
        let size = vm.jit_size().unwrap();
        let mut small = vec![0u8; size - 1];
        assert_eq!(vm.copy_jit(&mut small), Err(JitError::BufferNotBigEnough));
        let mut copy = vec![0u8; size];
        vm.copy_jit(&mut copy).unwrap();
        let mut translated = vec![0u8; 65536];
        let n = vm.translate(mode, &mut translated).unwrap();
        translated.truncate(n);
        for bytes in [copy, translated] {
            let code = crate::jit::code::ExecutableCode::new(&bytes).unwrap();
            let mut mem = 41u32.to_le_bytes();
            let r = match mode {
                JitMode::Basic => {
                    // SAFETY: the code was compiled with the Basic signature.
                    let f = unsafe { std::mem::transmute::<*const u8, JitFn>(code.as_ptr()) };
                    // SAFETY: `mem` is valid for 4 bytes; the VM is alive.
                    unsafe { f(mem.as_mut_ptr(), 4) }
                }
                JitMode::Extended => {
                    let mut stack = [0u8; 512];
                    // SAFETY: the code was compiled with the Extended signature.
                    let f = unsafe { std::mem::transmute::<*const u8, JitExFn>(code.as_ptr()) };
                    // SAFETY: `mem` and `stack` are valid for their lengths; the VM is alive.
                    unsafe { f(mem.as_mut_ptr(), 4, stack.as_mut_ptr(), 512) }
                }
            };
            assert_eq!(r, 42);
        }
    }
}

#[test]
fn compile_cache_code_size_and_errors() {
    let mut vm = vm_with(vec![mov64_imm(0, 1), EXIT]);
    let basic = vm.compile(JitMode::Basic).unwrap();
    assert_eq!(vm.compile(JitMode::Basic).unwrap(), basic);
    vm.compile(JitMode::Extended).unwrap();
    assert_eq!(vm.jit_mode(), Some(JitMode::Extended));
    vm.unload().unwrap();
    assert_eq!(vm.jit_size(), None);
    assert_eq!(vm.compile(JitMode::Basic), Err(JitError::NotLoaded));
    assert_eq!(vm.copy_jit(&mut [0; 16]), Err(JitError::CopyBeforeCompile));
    assert_eq!(vm.execute_jit(&mut []), Err(ExecError::NotLoaded));
    vm.install(program_from_insns(vec![mov64_imm(0, 1), EXIT]));
    vm.config_mut().jit_code_size = 1;
    assert_eq!(
        vm.compile(JitMode::Basic),
        Err(JitError::TargetBufferTooSmall)
    );
    assert_eq!(
        vm.translate(JitMode::Basic, &mut [0; 4]),
        Err(JitError::TargetBufferTooSmall)
    );
    vm.config_mut().jit_code_size = 65536;
    assert!(vm.compile(JitMode::Basic).is_ok());
}

#[test]
fn division_edge_cases_match_the_interpreter_rules() {
    // (op, dst, src, off, expected)
    let min = i64::MIN;
    let cases: &[(u8, i64, i64, i16, u64)] = &[
        (0x3f, 7, 0, 0, 0),                      // div64 by 0
        (0x9f, 7, 0, 0, 7),                      // mod64 by 0
        (0x3f, min, -1, 1, min as u64),          // sdiv64 INT_MIN / -1
        (0x9f, min, -1, 1, 0),                   // smod64 INT_MIN % -1
        (0x9f, -7, 2, 1, (-1i64) as u64),        // smod64 keeps the dividend's sign
        (0x3c, 0x1_0000_0007, 0, 0, 0),          // div32 by 0
        (0x9c, 0x1_0000_0007, 0, 0, 7),          // mod32 by 0 truncates the dividend
        (0x3c, 0x8000_0000, -1, 1, 0x8000_0000), // sdiv32 INT_MIN / -1
        (0x9c, 0x8000_0000, -1, 1, 0),           // smod32 INT_MIN % -1
    ];
    for &(opc, a, b, off, want) in cases {
        let lddw = |reg: u8, v: i64| {
            [
                Insn::new(0x18, reg, 0, 0, v as u32 as i32),
                Insn::new(0, 0, 0, 0, (v >> 32) as u32 as i32),
            ]
        };
        let mut insns = Vec::new();
        insns.extend(lddw(0, a));
        insns.extend(lddw(1, b));
        insns.push(Insn::new(opc, 0, 1, off, 0));
        insns.push(EXIT);
        let mut vm = vm_with(insns);
        assert_eq!(
            run(&mut vm, JitMode::Basic, &mut []),
            Ok(want),
            "opcode {opc:#x} {a} {b}"
        );
        // Same with an immediate operand (ALU imm forms: opcode without the X bit).
        if b as i32 as i64 == b {
            let mut insns = Vec::new();
            insns.extend(lddw(0, a));
            insns.push(Insn::new(opc & !0x08, 0, 0, off, b as i32));
            insns.push(EXIT);
            let mut vm = vm_with(insns);
            assert_eq!(
                run(&mut vm, JitMode::Basic, &mut []),
                Ok(want),
                "imm opcode {opc:#x} {a} {b}"
            );
        }
    }
}

/// Prints JIT compile times over the conformance programs (run in release with `--ignored`).
#[test]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
fn measure_compile_time() {
    let text = std::fs::read_to_string(suite_tsv()).unwrap();
    // Build the host ISA once outside the measurement.
    vm_with(vec![mov64_imm(0, 0), EXIT])
        .compile(JitMode::Basic)
        .unwrap();
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 5 || cols[3] != "result" {
            continue;
        }
        let insns = isa::decode_slots(&hex(cols[1])).unwrap();
        let n = insns.len();
        // Best of three, to filter out noise from other processes on the machine.
        let mut best = std::time::Duration::MAX;
        let mut vm = vm_with(insns);
        for mode in [JitMode::Basic, JitMode::Extended, JitMode::Basic] {
            let start = std::time::Instant::now();
            vm.compile(mode).unwrap();
            best = best.min(start.elapsed());
        }
        times.push((best, n));
        sizes.push(vm.jit_size().unwrap());
    }
    times.sort();
    let total: std::time::Duration = times.iter().map(|t| t.0).sum();
    eprintln!(
        "compile time over {} programs: median {:?}, p90 {:?}, max {:?} ({} slots), mean {:?}; median code size {} bytes",
        times.len(),
        times[times.len() / 2].0,
        times[times.len() * 9 / 10].0,
        times[times.len() - 1].0,
        times[times.len() - 1].1,
        total / times.len() as u32,
        {
            sizes.sort();
            sizes[sizes.len() / 2]
        },
    );
}

/// Writes the machine code of a sample loop to /tmp (inspect with objdump).
#[test]
#[ignore = "inspection aid"]
fn dump_sample_code() {
    // r0 = sum of the u32s in mem (r1, r2 = len), bounds-checked loads.
    let insns = vec![
        mov64_imm(0, 0),
        Insn::new(0xbf, 3, 1, 0, 0),  // r3 = r1
        Insn::new(0x0f, 3, 2, 0, 0),  // r3 += r2 (end)
        Insn::new(0x3d, 1, 3, 4, 0),  // jge r1, r3, +4
        Insn::new(0x61, 4, 1, 0, 0),  // ldxw r4, [r1]
        Insn::new(0x0f, 0, 4, 0, 0),  // r0 += r4
        Insn::new(0x07, 1, 0, 0, 4),  // r1 += 4
        Insn::new(0x05, 0, 0, -5, 0), // ja -5
        EXIT,
    ];
    let mut vm = vm_with(insns);
    vm.compile(JitMode::Basic).unwrap();
    let mut code = vec![0u8; vm.jit_size().unwrap()];
    vm.copy_jit(&mut code).unwrap();
    std::fs::write("/tmp/rbpf_jit_sample.bin", &code).unwrap();
    let mut mem = [1u8; 16];
    assert_eq!(vm.execute_jit(&mut mem), Ok(0x0404_0404));
}

#[test]
fn constant_blinding_hides_immediates_and_keeps_results() {
    let insns = vec![
        Insn::new(0x18, 0, 0, 0, 0x1234_5678),
        Insn::new(0, 0, 0, 0, 0x0abc_def0),
        Insn::new(0x07, 0, 0, 0, 0x7eadbeef),  // add r0, imm
        Insn::new(0x04, 0, 0, 0, 0x1111),      // add32 r0, imm
        Insn::new(0x55, 0, 0, 1, 0x3333_4444), // jne r0, imm, +1
        Insn::new(0xb7, 0, 0, 0, 0),
        Insn::new(0x7a, 10, 0, -8, 0x2468_ace0), // stdw [r10-8], imm
        Insn::new(0x79, 1, 10, -8, 0),
        Insn::new(0x0f, 0, 1, 0, 0),
        EXIT,
    ];
    let mut plain = vm_with(insns.clone());
    let want = run(&mut plain, JitMode::Basic, &mut []).unwrap();
    let mut images = Vec::new();
    for _ in 0..2 {
        let mut vm = vm_with(insns.clone());
        vm.config_mut().constant_blinding = true;
        let mut buf = vec![0u8; 65536];
        let n = vm.translate(JitMode::Basic, &mut buf).unwrap();
        buf.truncate(n);
        let imm = 0x7eadbeefu32.to_le_bytes();
        assert!(
            !buf.windows(4).any(|w| w == imm),
            "immediate visible in blinded code"
        );
        assert_eq!(run(&mut vm, JitMode::Basic, &mut []), Ok(want));
        images.push(buf);
    }
    assert_ne!(images[0], images[1], "two VMs blind with different keys");
}

/// Prints interpreter vs JIT run time of a checked loop (run in release with `--ignored`).
#[test]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
fn measure_execution_speed() {
    // r0 = sum over the u64 words of mem, 64 passes; loads are bounds-checked.
    let insns = vec![
        mov64_imm(0, 0),
        mov64_imm(5, 64),
        Insn::new(0xbf, 3, 1, 0, 0),   // 2: r3 = r1
        Insn::new(0xbf, 4, 1, 0, 0),   // r4 = r1
        Insn::new(0x0f, 4, 2, 0, 0),   // r4 += r2
        Insn::new(0x3d, 3, 4, 4, 0),   // 5: jge r3, r4, +4
        Insn::new(0x79, 6, 3, 0, 0),   // ldxdw r6, [r3]
        Insn::new(0x0f, 0, 6, 0, 0),   // r0 += r6
        Insn::new(0x07, 3, 0, 0, 8),   // r3 += 8
        Insn::new(0x05, 0, 0, -5, 0),  // ja 5
        Insn::new(0x17, 5, 0, 0, 1),   // 10: r5 -= 1
        Insn::new(0x55, 5, 0, -10, 0), // jne r5, 0, 2
        EXIT,
    ];
    let mut vm = vm_with(insns);
    let mut mem: Vec<u8> = (0..65536u32).map(|i| i as u8).collect();
    vm.compile(JitMode::Basic).unwrap();
    let t = std::time::Instant::now();
    let jit = vm.execute_jit(&mut mem).unwrap();
    let jit_time = t.elapsed();
    let t = std::time::Instant::now();
    let interp = vm.execute(&mut mem).unwrap();
    let interp_time = t.elapsed();
    assert_eq!(jit, interp);
    let iterations = 64 * 65536 / 8;
    eprintln!(
        "checked load loop, {iterations} iterations: jit {jit_time:?} ({:.2} ns/iter), interpreter {interp_time:?} ({:.1}x slower)",
        jit_time.as_nanos() as f64 / iterations as f64,
        interp_time.as_secs_f64() / jit_time.as_secs_f64()
    );
    let mut trivial = vm_with(vec![mov64_imm(0, 1), EXIT]);
    trivial.compile(JitMode::Basic).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..1_000_000 {
        let mut small = [0u8; 8];
        let _ = std::hint::black_box(trivial.execute_jit(std::hint::black_box(&mut small)));
    }
    eprintln!(
        "execute_jit round trip of `mov r0, 1; exit`: {:?} per call",
        t.elapsed() / 1_000_000
    );
    let code = trivial.compile(JitMode::Basic).unwrap();
    // SAFETY: Basic-mode code has the `JitFn` signature.
    let f: JitFn = unsafe { std::mem::transmute::<*const u8, JitFn>(code) };
    let t = std::time::Instant::now();
    for _ in 0..1_000_000 {
        let mut small = [0u8; 8];
        // SAFETY: basic-mode code of a live VM.
        let _ = std::hint::black_box(unsafe { f(std::hint::black_box(small.as_mut_ptr()), 8) });
    }
    eprintln!(
        "direct call of the same code: {:?} per call",
        t.elapsed() / 1_000_000
    );
}

/// The semantic tests above, once more with every program compiled in the one-pass baseline
/// tier (which only programs above the optimised budget reach on their own): the same
/// errors, limits, helper calls, local calls, unwinding, copies and division results.
#[test]
fn the_same_tests_pass_in_the_baseline_tier() {
    TIER.with(|t| t.set(crate::JitTier::Baseline));
    conformance_programs_give_expected_results_in_both_modes();
    out_of_bounds_load_and_store_return_errors_with_ubpf_text();
    in_bounds_accesses_at_region_edges_succeed();
    bounds_callback_and_disabled_checks_are_honoured();
    instruction_limit_stops_runaway_loops_and_counts_exactly();
    local_call_depth_is_limited_to_eight_frames();
    local_calls_lower_r10_by_the_callers_frame_and_restore_r6_to_r9();
    helpers_and_dispatcher_registered_after_compile_are_used();
    helpers_get_the_original_mem_and_missing_helpers_fault();
    unwind_helper_ends_the_program_from_a_local_function();
    compiled_code_runs_after_memcpy_and_translate();
    compile_cache_code_size_and_errors();
    division_edge_cases_match_the_interpreter_rules();
    TIER.with(|t| t.set(crate::JitTier::Auto));
}
