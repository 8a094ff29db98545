//! Differential tests of switches recognised by meaning (`src/exec/switch.rs`): compare trees
//! and chains of one key, 64-bit and `jmp32`, signed and unsigned, on the key or on copies
//! of it (`r6 = r4 - c`, `w6 = w4`), with leaves that write registers before their last
//! compare, dense (a table, or a table of values) and sparse (a search). Each program runs
//! on keys below, at and above the cases' bounds, negative keys, and keys whose high 32 bits
//! are set, in the interpreter's per-instruction loop (the oracle: an instruction limit turns
//! every idiom off), its fast path, the JIT and the JIT with a limit, with bounds checks on
//! and off: same r0, same error at the same pc, same memory.

mod common;

use common::rng::Rng;
use common::{bench_object, error_key, run_object};
use rbpf::Vm;
use rbpf::jit::JitMode;

/// One engine with `text` loaded (and compiled).
fn loaded(code: &[u8], jit: bool, bounds: bool, limit: u32) -> Vm {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.config_mut().bounds_check = bounds;
    vm.config_mut().instruction_limit = limit;
    vm.load(code).expect("loads");
    if jit {
        common::compile_optimised(&mut vm, JitMode::Basic).expect("compiles");
    }
    vm
}

/// Runs `text` on every memory of `mems` in the interpreter's fast path, the JIT and the JIT
/// with a limit, bounds checks on and off, comparing each with the oracle (the interpreter
/// with a limit); the first difference.
fn compare(text: &str, mems: &[Vec<u8>]) -> Result<(), String> {
    let code = rbpf::asm::assemble_bytes(text).map_err(|e| format!("asm: {e}"))?;
    let limit = 1 << 20;
    for bounds in [true, false] {
        let oracle = loaded(&code, false, bounds, limit);
        let candidates = [
            ("interpreter fast path", loaded(&code, false, bounds, 0)),
            ("JIT", loaded(&code, true, bounds, 0)),
            ("JIT with a limit", loaded(&code, true, bounds, limit)),
        ];
        for mem in mems {
            let run = |vm: &Vm, jit: bool| {
                let mut words = [0u64; 2];
                words[0] = u64::from_le_bytes(mem[..8].try_into().expect("8 bytes"));
                // SAFETY: u64 has no padding; the slice covers the two words.
                let bytes =
                    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), 16) };
                let result = if jit {
                    vm.execute_jit(bytes)
                } else {
                    vm.execute(bytes)
                };
                result.map_err(|e| error_key(&e))
            };
            let expected = run(&oracle, false);
            for (name, vm) in &candidates {
                let got = run(vm, name.starts_with("JIT"));
                if got != expected {
                    return Err(format!(
                        "bounds {bounds}, key {:#x}: oracle {expected:x?}, {name} {got:x?}",
                        u64::from_le_bytes(mem[..8].try_into().expect("8 bytes"))
                    ));
                }
            }
        }
    }
    Ok(())
}

/// How many switches the recogniser finds in `text`.
fn switches(text: &str) -> usize {
    let code = rbpf::asm::assemble_bytes(text).expect("assembles");
    let insns = rbpf::isa::decode_slots(&code).expect("slots");
    rbpf::exec::census(&insns).switch
}

/// Keys around every interesting edge: the cases' bounds (given), zero, negative keys, the
/// 32-bit and 64-bit sign boundaries, and keys with high bits set above small low halves.
fn edge_keys(low: i64, high: i64) -> Vec<u64> {
    let mut keys: Vec<i64> = vec![
        low - 1,
        low,
        low + 1,
        high - 1,
        high,
        high + 1,
        0,
        -1,
        -2,
        -100_000,
        i64::from(i32::MIN),
        i64::from(i32::MAX),
        i64::from(u32::MAX),
        1 << 31,
        1 << 32,
        (1 << 32) + 3,
        (1 << 32) + low,
        (1 << 32) + high,
        -(1 << 32) + 5,
        i64::MIN,
        i64::MAX,
        255,
        256,
    ];
    keys.extend(low - 3..=high + 3);
    keys.into_iter().map(|k| k as u64).collect()
}

/// `mem` holding `key` in its first 8 bytes.
fn mem_with(key: u64) -> Vec<u8> {
    let mut mem = key.to_le_bytes().to_vec();
    mem.resize(16, 0);
    mem
}

/// The held-out benchmark's shape, dense over `0..cases`: a binary tree of signed compares
/// whose leaves set r0 before their last equality compare and share a default; all reach
/// one join that folds r0 into the result. `load` loads the key into r5.
fn value_tree(load: &str, cases: i64, wide: bool) -> String {
    let mut text = format!("{load}\nmov %r7, 0\n");
    let jsgt = if wide { "jsgt" } else { "jsgt32" };
    let jeq = if wide { "jeq" } else { "jeq32" };
    // Recursive halving down to pairs.
    fn emit(text: &mut String, lo: i64, hi: i64, jsgt: &str, jeq: &str) {
        if hi - lo <= 1 {
            text.push_str(&format!("mov %r0, {}\n", 1000 + lo * 7));
            text.push_str(&format!("{jeq} %r5, {lo}, join\n"));
            if hi > lo {
                text.push_str(&format!("mov %r0, {}\n", 1000 + hi * 7));
                text.push_str(&format!("{jeq} %r5, {hi}, join\n"));
            }
            text.push_str("ja dflt\n");
            return;
        }
        let mid = (lo + hi) / 2;
        text.push_str(&format!("{jsgt} %r5, {mid}, above{mid}\n"));
        emit(text, lo, mid, jsgt, jeq);
        text.push_str(&format!("above{mid}:\n"));
        emit(text, mid + 1, hi, jsgt, jeq);
    }
    emit(&mut text, 0, cases - 1, jsgt, jeq);
    text.push_str("dflt:\nmov %r0, 987654\njoin:\nxor %r0, %r7\nexit\n");
    text
}

#[test]
fn dense_value_switches_on_edge_keys() {
    for (load, wide) in [
        // A signed int, as loaded from an `int *` (zero-extended; clang compares 64-bit).
        ("ldxw %r5, [%r1+0]", true),
        // The whole 64-bit word.
        ("ldxdw %r5, [%r1+0]", true),
        // jmp32 compares of a 64-bit word: the high half is ignored.
        ("ldxdw %r5, [%r1+0]", false),
        // A byte key.
        ("ldxb %r5, [%r1+0]", true),
    ] {
        for cases in [5, 16, 64] {
            let text = value_tree(load, cases, wide);
            assert_eq!(switches(&text), 1, "{load} {cases}\n{text}");
            let mems: Vec<Vec<u8>> = edge_keys(0, cases - 1).into_iter().map(mem_with).collect();
            if let Err(why) = compare(&text, &mems) {
                panic!("{load}, {cases} cases: {why}\n{text}");
            }
        }
    }
}

#[test]
fn negative_and_sparse_keys() {
    // Signed cases around zero and far apart (a search, not a table), chained `if`s.
    let cases: [i64; 9] = [-70000, -300, -8, -1, 0, 7, 4096, 65537, 2_000_000];
    let mut text = String::from("ldxdw %r4, [%r1+0]\nmov %r0, 0\n");
    for (k, c) in cases.iter().enumerate() {
        text.push_str(&format!("jeq %r4, {c}, case{k}\n"));
    }
    text.push_str("mov %r0, 99\nexit\n");
    for k in 0..cases.len() {
        text.push_str(&format!("case{k}:\nmov %r0, {}\nexit\n", k + 1));
    }
    assert_eq!(switches(&text), 1);
    let mut keys = edge_keys(-8, 7);
    for c in cases {
        keys.extend([c - 1, c, c + 1].map(|k| k as u64));
        keys.push((c as u64 & 0xffff_ffff) | 0x5_0000_0000);
    }
    let mems: Vec<Vec<u8>> = keys.into_iter().map(mem_with).collect();
    if let Err(why) = compare(&text, &mems) {
        panic!("{why}\n{text}");
    }
}

#[test]
fn case_ranges_on_a_copy_of_the_key() {
    // `switch (c) { case 'a' ... 'f': …; case '0' ... '9': …; case 'A' ... 'Z': … }`
    // lowered with range tests on `c - base` copies, 64-bit and 32-bit, and the key's own
    // compares; one leaf reads the copy.
    let text = "ldxb %r4, [%r1+0]\nmov %r0, 0\nmov %r6, %r4\nadd %r6, -97\n\
                jgt %r6, 5, not_hex_lower\nmov %r0, 1\nja join\nnot_hex_lower:\n\
                mov32 %r6, %r4\nadd32 %r6, -48\njgt32 %r6, 9, not_digit\nmov %r0, %r6\nja join\n\
                not_digit:\njlt %r4, 65, other\njgt %r4, 90, other\nmov %r0, 3\nja join\n\
                other:\njeq %r4, 32, space\nmov %r0, 7\nja join\nspace:\nmov %r0, 5\n\
                join:\nlsh %r0, 8\nadd %r0, %r6\nexit\n";
    assert_eq!(switches(text), 1);
    // High bytes beyond the loaded one must not matter.
    let mems: Vec<Vec<u8>> = (0..=255u64)
        .flat_map(|key| [mem_with(key), mem_with(key | 0xffff_ff00)])
        .collect();
    if let Err(why) = compare(text, &mems) {
        panic!("{why}\n{text}");
    }
}

/// A random tree or chain over r4 and its copies r6 (`r4 + d`) and w6, 64-bit and 32-bit
/// compares of every kind, constants written into r0 and r7 on the way, leaves that exit or
/// meet at a join reading r0, r6 and r7.
fn random_switch(rng: &mut Rng) -> String {
    const CONDS: [&str; 10] = [
        "jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle",
    ];
    const LOADS: [&str; 4] = [
        "ldxdw %r4, [%r1+0]",
        "ldxw %r4, [%r1+0]",
        "ldxh %r4, [%r1+0]",
        "ldxb %r4, [%r1+0]",
    ];
    let nodes = 4 + rng.below(10);
    let leaves = 2 + rng.below(5);
    let d = rng.below(9) as i64 - 4;
    let mut text = format!(
        "{}\nmov %r0, 100\nmov %r7, 0\n{}\nadd %r6, {d}\n",
        rng.pick(&LOADS),
        if rng.chance(50) {
            "mov %r6, %r4"
        } else {
            "mov32 %r6, %r4"
        }
    );
    for k in 0..nodes {
        let target = if rng.chance(40) && k + 1 < nodes {
            format!("n{}", k + 1 + rng.below(nodes - k - 1))
        } else {
            format!("l{}", rng.below(leaves))
        };
        let constant = rng.below(24) as i64 - 4;
        let reg = if rng.chance(70) { "%r4" } else { "%r6" };
        let wide = if rng.chance(60) { "" } else { "32" };
        text.push_str(&format!("n{k}:\n"));
        if rng.chance(30) {
            text.push_str(&format!("mov %r0, {}\n", rng.below(1000)));
        }
        if rng.chance(15) {
            text.push_str(&format!("mov32 %r7, {}\n", rng.below(1000)));
        }
        text.push_str(&format!(
            "{}{wide} {reg}, {constant}, {target}\n",
            rng.pick(&CONDS)
        ));
        if rng.chance(10) {
            text.push_str(&format!("ja l{}\n", rng.below(leaves)));
        }
    }
    text.push_str(&format!("ja l{}\n", rng.below(leaves)));
    for l in 0..leaves {
        if rng.chance(50) {
            text.push_str(&format!("l{l}:\nadd %r0, {}\nexit\n", l + 1));
        } else {
            text.push_str(&format!("l{l}:\nmov %r0, {}\nja join\n", l * 11));
        }
    }
    text.push_str("join:\nlsh %r0, 16\nxor %r0, %r6\nadd %r0, %r7\nexit\n");
    text
}

#[test]
fn random_switches_match_the_interpreter() {
    let mut rng = Rng(0x5717_c400_0000_0031);
    let mems: Vec<Vec<u8>> = edge_keys(-4, 20).into_iter().map(mem_with).collect();
    let mut failures = Vec::new();
    let mut recognised = 0;
    for _ in 0..200 {
        let text = random_switch(&mut rng);
        recognised += usize::from(switches(&text) > 0);
        if let Err(why) = compare(&text, &mems) {
            failures.push(format!("{why}\n{text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures; first:\n{}",
        failures.len(),
        failures[0]
    );
    assert!(recognised >= 100, "only {recognised} of 200 recognised");
}

/// The clang-built benchmark `benches/c/switch_value.o` (the held-out shape) in every engine
/// on keys inside, below and above its cases, including the 32-bit extremes.
#[test]
fn clang_switch_value_matches_the_interpreter() {
    let object = bench_object("switch_value");
    let mut rng = Rng(0x5717_c400_0000_0032);
    let count = 600u32;
    let mut mem = count.to_le_bytes().to_vec();
    for k in 0..count {
        let v: i32 = match k % 8 {
            0 => rng.next() as i32,
            1 => [i32::MIN, i32::MAX, -1, 64, 63, 0][rng.below(6)],
            _ => rng.below(72) as i32 - 4,
        };
        mem.extend_from_slice(&v.to_le_bytes());
    }
    let run = |jit: bool, limit: u32| run_object(&object, jit, limit, &mut mem.clone());
    let oracle = run(false, 1 << 30);
    assert_eq!(run(false, 0), oracle);
    assert_eq!(run(true, 0), oracle);
}
