//! Unit tests of the JIT that build programs by hand (no verifier needed).

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::path::Path;

use super::*;
use crate::isa::{self, Insn, LOCAL_FUNCTION_STACK_SIZE, op};
use crate::program::{Function, Program};

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
        .collect();
    Program {
        insns,
        functions,
        data_sections: Vec::new(),
    }
}

unsafe extern "C" fn gather_bytes(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    ((a & 0xff) << 32) | ((b & 0xff) << 24) | ((c & 0xff) << 16) | ((d & 0xff) << 8) | (e & 0xff)
}
unsafe extern "C" fn memfrob(p: u64, n: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    for i in 0..n {
        // SAFETY: test programs pass a valid buffer.
        unsafe { *((p + i) as *mut u8) ^= 42 };
    }
    0
}
unsafe extern "C" fn no_op(_: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    0
}
unsafe extern "C" fn sqrti(a: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    (a as f64).sqrt() as u64
}
unsafe extern "C" fn strcmp_ext(a: u64, b: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    // SAFETY: test programs pass NUL-terminated strings.
    unsafe { libc::strcmp(a as *const libc::c_char, b as *const libc::c_char) as i64 as u64 }
}
unsafe extern "C" fn unwind(a: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    a
}

pub(crate) fn vm_with(insns: Vec<Insn>) -> Vm {
    let mut vm = Vm::new();
    let helpers: [HelperFnT; 6] = [gather_bytes, memfrob, no_op, sqrti, strcmp_ext, unwind];
    for (i, f) in helpers.into_iter().enumerate() {
        vm.register_helper(i as u32, None, f).unwrap();
    }
    vm.set_unwind_index(5).unwrap();
    vm.install(program_from_insns(insns));
    vm
}

type HelperFnT = crate::helpers::HelperFn;

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

#[test]
fn conformance_programs_give_expected_results_in_both_modes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The repo's sibling `shared/` (CI and the main checkout), or two levels up (worktrees).
    let path = ["../shared", "../../shared"]
        .iter()
        .map(|p| root.join(p).join("bpf-conformance/assembled.tsv"))
        .find(|p| p.exists())
        .unwrap_or_else(|| root.join("../shared/bpf-conformance/assembled.tsv"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "conformance suite not found at {}; skipping",
            path.display()
        );
        return;
    };
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
