//! Differential tests of if-conversion (`src/jit/select.rs`, `docs/performance.md`,
//! "If-conversion"): conditional branches around short register computations, which the JIT
//! translates as `select`s. Triangles and diamonds in every compare form (64 and 32 bits,
//! signed and unsigned, register and immediate), paths writing several registers or the
//! compared register itself, 32-bit ALU results that must be zero-extended, divisions by zero,
//! joins before the branch, nested hammocks, joins also entered from elsewhere (left as
//! branches), random hammocks inside loops, and the clang-built `log2_bits.o` of the
//! benchmark. The interpreter's per-instruction loop is the oracle; the JIT (which converts),
//! the JIT with an instruction limit (which does not), the interpreter's fast path, the JIT
//! with blinded constants and, for runs that do not fault, the JIT without bounds checks must
//! give the same r0, the same error at the same pc and the same memory.

mod common;

use common::engines::{Engine, Outcome, engine};
use common::error_key;
use common::rng::Rng;
use common::{bench_object, run_object};
use rbpf::Vm;
use rbpf::jit::JitMode;

/// Bytes of input memory: four u64 inputs, then room for the program's stores.
const MEM_LEN: usize = 128;

/// One program loaded (and compiled) in every engine the tests compare, so that many inputs
/// cost one compile each.
struct Loaded {
    /// `(name, vm, jit)`; the first is the oracle.
    vms: Vec<(&'static str, Vm, bool)>,
}

impl Loaded {
    /// Loads `text` in the oracle (the interpreter's per-instruction loop, selected by an
    /// instruction limit) and in the JIT (which converts), the JIT with a limit (which does
    /// not), the interpreter's fast path, the JIT with blinded constants and the JIT without
    /// bounds checks.
    fn new(text: &str) -> Loaded {
        let code = rbpf::asm::assemble_bytes(text).unwrap_or_else(|e| panic!("asm: {e}\n{text}"));
        let limit = 1 << 20;
        let engines: [(&str, Engine); 6] = [
            ("interpreter", engine(false).limited(limit)),
            ("JIT", engine(true)),
            ("JIT with a limit", engine(true).limited(limit)),
            ("interpreter fast path", engine(false)),
            ("JIT, blinded", engine(true).blinded()),
            ("JIT, checks off", engine(true).bounds(false)),
        ];
        let vms = engines
            .into_iter()
            .map(|(name, e)| {
                let mut vm = Vm::new();
                vm.set_error_printer(Some(Box::new(|_| {})));
                vm.config_mut().bounds_check = e.bounds;
                vm.config_mut().instruction_limit = e.limit;
                vm.config_mut().constant_blinding = e.blind;
                vm.load(&code)
                    .unwrap_or_else(|e| panic!("load: {e}\n{text}"));
                if e.jit {
                    common::compile_optimised(&mut vm, JitMode::Basic)
                        .unwrap_or_else(|e| panic!("{name}: compile: {e}\n{text}"));
                }
                (name, vm, e.jit)
            })
            .collect();
        Loaded { vms }
    }

    /// Runs every engine on a copy of `mem`; the oracle's outcome, or the first difference.
    /// The JIT without bounds checks only runs when the oracle does not fault.
    fn compare(&self, mem: &[u8]) -> Result<Outcome, String> {
        let run = |vm: &Vm, jit: bool| -> Outcome {
            let mut words = vec![0u64; mem.len().div_ceil(8)];
            // SAFETY: u64 has no padding; the slice covers the first `mem.len()` bytes.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), mem.len())
            };
            bytes.copy_from_slice(mem);
            let r = if jit {
                vm.execute_jit(bytes)
            } else {
                vm.execute(bytes)
            };
            (r.map_err(|e| error_key(&e)), bytes.to_vec())
        };
        let (_, oracle, _) = &self.vms[0];
        let expected = run(oracle, false);
        for (name, vm, jit) in &self.vms[1..] {
            if *name == "JIT, checks off" && expected.0.is_err() {
                continue;
            }
            let other = run(vm, *jit);
            if other != expected {
                return Err(format!(
                    "interpreter {:x?} vs {name} {:x?}; memory equal: {}",
                    expected.0,
                    other.0,
                    expected.1 == other.1
                ));
            }
        }
        Ok(expected)
    }
}

/// Values where compares and 32-bit arithmetic change their minds.
const EDGES: [u64; 14] = [
    0,
    1,
    2,
    5,
    0x7f,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0005,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_8000_0000,
    u64::MAX,
];

/// Input memory: u64 `values` at offsets 0, 8, ... (the programs load r2..r5 from there),
/// then zeroes.
fn memory(values: &[u64]) -> Vec<u8> {
    let mut mem = vec![0u8; MEM_LEN];
    for (i, v) in values.iter().enumerate() {
        mem[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes());
    }
    mem
}

/// Loads r2..r5 from mem and sets r0 and r6..r9 to distinct values.
const PROLOGUE: &str = "ldxdw r2, [r1]\nldxdw r3, [r1+8]\nldxdw r4, [r1+16]\nldxdw r5, [r1+24]\n\
                        mov r0, 0x11\nmov r6, 0x66\nmov r7, 0x77\nmov r8, 0x88\nlddw r9, 0x9999999999";

/// Stores every register r0 and r2..r9 into mem (so each one's final value is compared) and
/// returns r0.
const EPILOGUE: &str = "stxdw [r1+32], r0\nstxdw [r1+40], r2\nstxdw [r1+48], r3\n\
                        stxdw [r1+56], r4\nstxdw [r1+64], r5\nstxdw [r1+72], r6\n\
                        stxdw [r1+80], r7\nstxdw [r1+88], r8\nstxdw [r1+96], r9\nexit";

/// `body` between [`PROLOGUE`] and [`EPILOGUE`], compared on every pair of edge values in r2
/// and r3 (r4 and r5 fixed, or edge values too).
fn check_all(body: &str) {
    let text = format!("{PROLOGUE}\n{body}\n{EPILOGUE}");
    let loaded = Loaded::new(&text);
    for (i, &a) in EDGES.iter().enumerate() {
        for (j, &b) in EDGES.iter().enumerate() {
            let mem = memory(&[a, b, EDGES[(i + j) % EDGES.len()], EDGES[(i * 3 + j) % 14]]);
            if let Err(why) = loaded.compare(&mem) {
                panic!("r2 = {a:#x}, r3 = {b:#x}: {why}\n{text}");
            }
        }
    }
}

/// Every conditional jump mnemonic, without the `32` suffix.
const JUMPS: [&str; 11] = [
    "jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset",
];

/// The compares of every form: 64 and 32 bits, register and immediate operands.
fn compares() -> Vec<String> {
    let mut all = Vec::new();
    for j in JUMPS {
        for wide in ["", "32"] {
            all.push(format!("{j}{wide} r2, r3"));
            for imm in ["0", "5", "-1", "0x7fffffff", "-0x80000000"] {
                all.push(format!("{j}{wide} r2, {imm}"));
            }
        }
    }
    all
}

#[test]
fn triangles_in_every_compare_form() {
    for cmp in compares() {
        // One register (clang's `x = a > b`), and several.
        check_all(&format!("mov r6, 1\n{cmp}, +1\nmov r6, 0"));
        check_all(&format!("{cmp}, +3\nmov r0, r2\nadd r6, r3\nxor r7, -1"));
    }
}

#[test]
fn diamonds_in_every_compare_form() {
    for cmp in compares() {
        check_all(&format!(
            "{cmp}, +3\nmov r0, r3\nsub r6, 9\nja +2\nmov r0, r2\nlsh r7, 3"
        ));
    }
}

#[test]
fn paths_that_write_the_compared_registers() {
    // The decision is the compare's, made before either path changes r2 or r3.
    check_all("jgt r2, r3, +2\nmov r2, r3\nadd r3, 1\nmov r0, r2");
    check_all("jslt r2, 0, +3\nneg r2\nmov r3, r2\nja +1\nmov r2, 7");
    check_all("jset32 r3, 0x80, +1\nxor r3, r3");
}

#[test]
fn thirty_two_bit_results_are_zero_extended() {
    check_all("jlt r2, r3, +3\nadd32 r4, -1\nmov32 r5, r2\nja +2\narsh32 r4, 1\nneg32 r5");
    check_all("jne32 r2, 0, +3\nlsh32 r4, r3\nbe16 r5\nle32 r2");
    check_all("jgt r2, 0x7f, +3\nmovsx3264 r6, r2\nmovsx864 r7, r3\nmovsx1632 r8, r4");
}

#[test]
fn divisions_by_zero_and_overflow_in_paths() {
    check_all("jeq r3, 0, +2\ndiv r2, r3\nmod r4, r3\nmov r0, r2");
    check_all("jsgt r2, r3, +2\nsdiv r2, r3\nja +1\nsmod32 r4, r3");
    check_all("jle r2, 5, +2\ndiv32 r5, r3\nmod32 r0, 0");
}

#[test]
fn lddw_and_no_op_jumps_in_paths() {
    check_all("jsge r2, r3, +4\nlddw r6, 0x123456789abcdef0\nja +0\nja +2\nlddw r6, -2");
}

#[test]
fn joins_before_the_branch() {
    // clang's layout: the join (the rest of the loop body) sits before the branch, which
    // jumps back to it or falls into `r5 = 0; goto J`.
    check_all(
        "mov r8, 4\nja +3\n\
         add r0, r5\nsub r8, 1\njeq r8, 0, +5\n\
         rsh r2, 1\nmov r5, 1\njgt r2, r3, -6\nmov r5, 0\nja -8",
    );
}

#[test]
fn nested_triangles() {
    check_all("jgt r2, r3, +3\nmov r0, 1\njgt32 r4, r5, +1\nmov r0, 2");
    check_all("jslt r2, r3, +4\nmov r6, 1\njset r4, 1, +1\nmov r6, 2\nmov r7, r6\nmov r8, r7");
    // A diamond inside a diamond's path.
    check_all("jne r2, r3, +5\njgt r4, 1, +2\nmov r0, 1\nja +1\nmov r0, 2\nja +1\nmov r0, 3");
}

#[test]
fn joins_entered_from_elsewhere_stay_branches() {
    // The join is also a loop's back edge target, and a path's first slot is a jump target:
    // neither is converted, and both still run as the interpreter runs them.
    check_all("mov r8, 3\njgt r2, r3, +1\nmov r0, 1\nadd r0, 1\nsub r8, 1\njne r8, 0, -3");
    check_all("mov r8, 3\njgt r2, r3, +1\nmov r0, 1\nadd r0, 1\nsub r8, 1\njne r8, 0, -4");
    check_all("jeq r4, 0, +2\njgt r2, r3, +2\nmov r0, 1\nmov r6, 2");
}

#[test]
fn faults_after_a_select_report_the_same_pc() {
    // The selected register is an offset: some runs load out of bounds, after the stores.
    let text = format!(
        "{PROLOGUE}\nmov r6, 8\njgt r2, r3, +1\nmov r6, 0x200\n\
         stxdw [r1+32], r6\nadd r6, r1\nldxdw r0, [r6]\nexit"
    );
    let loaded = Loaded::new(&text);
    let mut faults = 0;
    for &a in &EDGES {
        for &b in &EDGES {
            let expected = loaded
                .compare(&memory(&[a, b]))
                .unwrap_or_else(|why| panic!("{why}\n{text}"));
            faults += usize::from(expected.0.is_err());
        }
    }
    assert!(faults > 10 && faults < 180, "{faults}");
}

/// A random path: up to three pure instructions over r0 and r2..r9.
fn random_path(rng: &mut Rng, lines: &mut Vec<String>) {
    for _ in 0..rng.below(4) {
        let dst = rng.pick(&[0, 2, 3, 4, 5, 6, 7]);
        let src = rng.pick(&[0, 2, 3, 4, 5, 8, 9]);
        let wide = if rng.chance(30) { "32" } else { "" };
        let op = rng.pick(&[
            "mov", "add", "sub", "mul", "or", "and", "xor", "lsh", "rsh", "arsh", "div", "mod",
        ]);
        let operand = if rng.chance(50) {
            format!("r{src}")
        } else {
            format!(
                "{}",
                rng.pick(&[0i64, 1, 3, -1, 31, 63, 0x7fff_ffff, -0x8000_0000])
            )
        };
        match rng.below(12) {
            0 => lines.push(format!("neg{wide} r{dst}")),
            1 => lines.push(format!("lddw r{dst}, {:#x}", rng.next())),
            _ => lines.push(format!("{op}{wide} r{dst}, {operand}")),
        }
    }
}

/// A random hammock at the end of `lines`: a triangle (falling into the join) or a diamond,
/// sometimes with a nested one in a path, sometimes with a load in a path (not converted), or
/// with its join before the branch (clang's layout: the branch jumps back to the rest of the
/// body, which the code before it skips). Jumps go to labels `L<n>` (`next` numbers them).
fn random_hammock(rng: &mut Rng, lines: &mut Vec<String>, depth: u32, next: &mut usize) {
    let mut label = || {
        *next += 1;
        format!("L{next}")
    };
    let j = rng.pick(&JUMPS);
    let wide = if rng.chance(30) { "32" } else { "" };
    let a = rng.pick(&[2, 3, 4, 5, 0]);
    let operand = if rng.chance(50) {
        format!("r{}", rng.pick(&[2, 3, 4, 5]))
    } else {
        format!("{}", rng.pick(&[0i64, 1, 5, -1, 0x7fff_ffff, -0x8000_0000]))
    };
    let cmp = format!("{j}{wide} r{a}, {operand}");
    let (join, taken, skip) = (label(), label(), label());
    let path = |rng: &mut Rng, lines: &mut Vec<String>, next: &mut usize| {
        random_path(rng, lines);
        if depth < 2 && rng.chance(20) {
            random_hammock(rng, lines, depth + 1, next);
            random_path(rng, lines);
        }
        if rng.chance(5) {
            lines.push("ldxb r6, [r1+3]".into());
        }
    };
    match rng.below(3) {
        0 => {
            // Triangle: the branch skips the path.
            lines.push(format!("{cmp}, {join}"));
            path(rng, lines, next);
            lines.push(format!("{join}:"));
        }
        1 => {
            lines.push(format!("{cmp}, {taken}"));
            path(rng, lines, next);
            lines.push(format!("ja {join}"));
            lines.push(format!("{taken}:"));
            path(rng, lines, next);
            lines.push(format!("{join}:"));
        }
        _ => {
            // `goto branch; J: rest; goto after; branch: if cond goto J; path; goto J`.
            lines.push(format!("ja {taken}"));
            lines.push(format!("{join}:"));
            random_path(rng, lines);
            lines.push(format!("ja {skip}"));
            lines.push(format!("{taken}:"));
            lines.push(format!("{cmp}, {join}"));
            path(rng, lines, next);
            lines.push(format!("ja {join}"));
            lines.push(format!("{skip}:"));
        }
    }
}

#[test]
fn random_hammocks_in_loops_match_the_interpreter() {
    let mut rng = Rng(0x5e1e_c700_0000_0001);
    let count = std::env::var("RBPF_SELECT_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let mut failures = Vec::new();
    let mut faulted = 0;
    for _ in 0..count {
        let mut lines: Vec<String> = PROLOGUE.lines().map(str::to_owned).collect();
        let mut labels = 0;
        let looped = rng.chance(50);
        lines.push(format!("mov r9, {}", 1 + rng.below(4)));
        lines.push("head:".into());
        for _ in 0..1 + rng.below(3) {
            random_path(&mut rng, &mut lines);
            random_hammock(&mut rng, &mut lines, 0, &mut labels);
        }
        if looped {
            lines.push("sub r9, 1".into());
            lines.push("jne r9, 0, head".into());
        }
        // Sometimes a load at an offset the hammocks chose (may fault).
        if rng.chance(30) {
            // (r6 goes back to an offset: addresses differ between runs.)
            let load = [
                "and r0, 0xff",
                "mov r6, r1",
                "add r6, r0",
                "ldxb r0, [r6]",
                "sub r6, r1",
            ];
            lines.extend(load.map(str::to_owned));
        }
        lines.extend(EPILOGUE.lines().map(str::to_owned));
        let text = lines.join("\n");
        let loaded = Loaded::new(&text);
        for _ in 0..8 {
            let values: Vec<u64> = (0..4)
                .map(|_| {
                    if rng.chance(50) {
                        rng.pick(&EDGES)
                    } else {
                        rng.next() >> rng.below(64)
                    }
                })
                .collect();
            match loaded.compare(&memory(&values)) {
                Ok(expected) => faulted += usize::from(expected.0.is_err()),
                Err(why) => {
                    failures.push(format!("{why}\n{text}"));
                    break;
                }
            }
        }
    }
    println!("random_hammocks: {count} programs, 8 inputs each, {faulted} runs fault");
    assert!(faulted > 0, "no program faulted");
    assert!(
        failures.is_empty(),
        "{} of {count} differ; first:\n{}",
        failures.len(),
        failures[0]
    );
}

/// The clang-built `log2_bits.o` of the benchmark (eight branch-free halving steps, two
/// paths per value) gives the interpreter's result, on values of every magnitude and on a
/// buffer whose length is not a multiple of 8; and faults at the same pc when mem is null.
#[test]
fn clang_log2_bits_matches_the_interpreter() {
    let object = bench_object("log2_bits");
    let mut rng = Rng(0x1092_b175_0000_0001);
    for len in [0usize, 7, 8, 64, 801, 4096] {
        let mut mem: Vec<u8> = Vec::with_capacity(len);
        while mem.len() < len {
            let v = rng.next() >> rng.below(64);
            mem.extend_from_slice(&v.to_le_bytes());
        }
        mem.truncate(len);
        let interp = run_object(&object, false, 0, &mut mem.clone());
        let jit = run_object(&object, true, 0, &mut mem.clone());
        let limited = run_object(&object, true, 1 << 30, &mut mem);
        assert_eq!(interp, jit, "length {len}");
        assert_eq!(interp, limited, "length {len}");
        let expected = mem
            .chunks_exact(8)
            .map(|c| 63 - (u64::from_le_bytes(c.try_into().unwrap()) | 1).leading_zeros())
            .fold(0u64, |acc, bits| acc ^ u64::from(bits));
        assert_eq!(interp, Ok(expected), "length {len}");
    }
}

/// Found by `fuzz/run.sh diff`: a hammock whose join is also a leaf of a switch table (the
/// compare tree on r1 around it) must keep the join's own block, which the table jumps to;
/// only a join that nothing but the hammock enters goes on in the block of the selects. (The
/// fuzzer's r1 is mem's address; here it is loaded from mem, which gives every leaf.)
#[test]
fn a_join_that_a_switch_table_also_reaches_keeps_its_block() {
    let text = "ldxdw r1, [r1+0]\njle32 r1, 4, +1\njle32 r1, 6, +1\nexit\njle32 r1, 5, +1\n\
        mov32 r0, 6\njsle r0, 4, +0\njle32 r1, 5, +1\njeq r0, 0, +0\nexit";
    let loaded = Loaded::new(text);
    for &x in &EDGES {
        if let Err(why) = loaded.compare(&memory(&[x])) {
            panic!("r1 = {x:#x}: {why}\n{text}");
        }
    }
    for x in 3..=8 {
        if let Err(why) = loaded.compare(&memory(&[x])) {
            panic!("r1 = {x:#x}: {why}\n{text}");
        }
    }
}
