//! Runs every program of the conformance suite's `assembled.tsv` through the verifier and the
//! interpreter: `result` lines must load and return the expected r0 (with the suite's helpers
//! registered), `error` lines must be rejected at load time.

mod common;

use rbpf::Vm;
use rbpf::interpreter::SafeHelperResult;
use rbpf::vm::ExecutionProfile;

/// Parses space-separated hex bytes (`"b4 00 …"`).
fn hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).map_err(|e| format!("bad hex byte {b:?}: {e}")))
        .collect()
}

/// Parses an expected result (`0x…` hex or decimal, possibly negative).
fn parse_result(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let parsed = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if let Some(neg) = text.strip_prefix('-') {
        neg.parse::<u64>().ok().map(|v| v.wrapping_neg())
    } else {
        text.parse::<u64>().ok()
    };
    parsed.ok_or_else(|| format!("bad result {text:?}"))
}

/// Checks one TSV line; `Ok(())` on PASS, `Err(reason)` on FAIL.
fn check_line(
    kind: &str,
    code: &[u8],
    mem: &mut [u8],
    expected: &str,
    safe: bool,
) -> Result<(), String> {
    let mut vm = Vm::new();
    rbpf::conformance::register_helpers(&mut vm);
    if safe {
        // As uBPF's plugin does: the whole suite in the safe profile, the six helpers
        // registered as scalar helpers.
        vm.config_mut().profile = ExecutionProfile::Safe;
        for (index, name, f) in rbpf::conformance::HELPERS {
            vm.register_safe_helper(index, Some(name), f, SafeHelperResult::Scalar)
                .map_err(|e| e.to_string())?;
        }
    }
    vm.set_error_printer(Some(Box::new(|_| {})));
    match kind {
        "result" => {
            let want = parse_result(expected)?;
            vm.load(code).map_err(|e| format!("load failed: {e}"))?;
            let got = vm
                .execute(mem)
                .map_err(|e| format!("execution failed: {e}"))?;
            if got == want {
                Ok(())
            } else {
                Err(format!("r0 = {got:#x}, expected {want:#x}"))
            }
        }
        "error" => match vm.load(code) {
            Ok(()) => Err("loaded, expected a load error".to_owned()),
            Err(_) => Ok(()),
        },
        other => Err(format!("unknown kind {other:?}")),
    }
}

#[test]
fn assembled_tsv() {
    run_tsv(false);
}

#[test]
fn assembled_tsv_safe_profile() {
    run_tsv(true);
}

/// Runs every line of `assembled.tsv`, in the legacy or the safe profile.
fn run_tsv(safe: bool) {
    let path = common::suite_dir().join("assembled.tsv");
    let text = std::fs::read_to_string(&path).expect("read assembled.tsv");
    let (mut passed, mut failed) = (0usize, 0usize);
    let (mut result_passed, mut error_passed) = (0usize, 0usize);
    let (mut result_lines, mut error_lines) = (0usize, 0usize);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let name = fields.first().copied().unwrap_or("?");
        let outcome = match fields.as_slice() {
            [_, code, mem, kind, expected, ..] => {
                match *kind {
                    "result" => result_lines += 1,
                    "error" => error_lines += 1,
                    _ => {}
                }
                hex_bytes(code).and_then(|code| {
                    let mut mem = hex_bytes(mem)?;
                    check_line(kind, &code, &mut mem, expected, safe)
                })
            }
            _ => Err(format!("malformed line ({} fields)", fields.len())),
        };
        match outcome {
            Ok(()) => {
                passed += 1;
                match fields.get(3).copied() {
                    Some("result") => result_passed += 1,
                    Some("error") => error_passed += 1,
                    _ => {}
                }
                println!("PASS {name}");
            }
            Err(reason) => {
                failed += 1;
                println!("FAIL {name}: {reason}");
            }
        }
    }
    let profile = if safe { "safe" } else { "legacy" };
    println!("profile: {profile}");
    println!(
        "result programs: {result_passed}/{result_lines}; rejected programs: {error_passed}/{error_lines}"
    );
    println!("{passed} passed, {failed} failed");
    assert_eq!(result_lines, 313, "result lines in assembled.tsv");
    assert_eq!(error_lines, 45, "error lines in assembled.tsv");
    assert_eq!(failed, 0, "{failed} conformance programs failed");
}
