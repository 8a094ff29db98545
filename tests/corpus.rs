//! The variant corpus (`tests/corpus/`): every workload kind (copy, fill, compare, switch,
//! hashes, checksums, packet parsers, sorting, binary search, strings, matrices, popcount)
//! written in several C styles and compiled by clang at -O1/-O2/-O3/-Os for BPF v1–v4, 16
//! checked-in objects per source (v4 by clang 19: see tests/corpus/Makefile).
//!
//! - [`corpus_objects_are_current`]: every source has its 16 objects; with clang installed
//!   (required under `CI`), they are rebuilt and must match byte for byte.
//! - `differential_*`: every object runs on inputs that stay in bounds, overlap, and run off
//!   the end of memory mid-loop, in the interpreter's fast path, the JIT and the JIT with an
//!   instruction limit, bounds checks on and (when the run stays in bounds) off; the
//!   interpreter's per-instruction loop (selected by an instruction limit, where no idiom
//!   runs) is the oracle: same r0, same error at the same pc, same final memory.
//! - [`idioms_fire_on_every_qualifying_variant`]: prints, per idiom, on how many of its
//!   qualifying variants the recogniser fired, and requires all of them. A variant qualifies
//!   for an idiom when its source's first line says `IDIOM: <name>`, which the sources only say
//!   when the loop (or switch) fits the idiom's definition:
//!   - `copy`: a loop whose only memory effect is copying elements of 1, 2, 4 or 8 bytes
//!     from one array to another, advancing both by one element per iteration (or several
//!     elements, unrolled), with a trip count computable at loop entry from a counter or
//!     pointer compared with a loop-invariant bound;
//!   - `fill`: the same, storing a constant or a loop-invariant register;
//!   - `compare`: a loop that only loads one element from each of two arrays per iteration
//!     and leaves when they differ (or on a zero byte, or when a counter runs out);
//!   - `switch`: a C `switch` (or an `if`/`else if` chain) over one integer key with at
//!     least four cases.

mod common;
/// Input generation, shared with the workloads benchmark (`benches/workloads/corpus.rs`).
#[path = "corpus/inputs.rs"]
#[allow(dead_code, reason = "the bench inputs are the benchmark's")]
mod inputs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rbpf::jit::JitMode;
use rbpf::{JitTier, Vm};

/// `inputs` finds the generator as `crate::rng`.
use common::rng;
use common::{error_key, skip};

/// Optimisation levels and CPU versions of the objects (tests/corpus/Makefile).
const OPTS: [&str; 4] = ["O1", "O2", "O3", "Os"];
const CPUS: [&str; 4] = ["v1", "v2", "v3", "v4"];

/// The compiler of `cpu`'s objects, as tests/corpus/Makefile chooses it: `$CLANG` (default
/// `clang`) for v1–v3, `$CLANG_V4` (default `clang-19`) for v4, which older clangs lack.
fn clang_for(cpu: &str) -> String {
    let (var, default) = if cpu == "v4" {
        ("CLANG_V4", "clang-19")
    } else {
        ("CLANG", "clang")
    };
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}
/// The flags of every object, before `-<opt> -mcpu=<cpu>` (tests/corpus/Makefile).
const CORPUS_FLAGS: &[&str] = &[
    "-target",
    "bpf",
    "-fno-builtin",
    "-g0",
    "-Wall",
    "-Wextra",
    "-Werror",
];
/// The oracle's instruction limit (a run that reaches it is not compared further).
const LIMIT: u32 = 1 << 21;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Source stems, sorted.
fn sources() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir().join("src"))
        .expect("tests/corpus/src")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The idioms a source declares on its first line (`/* IDIOM: copy. ... */`).
fn declared_idioms(stem: &str) -> Vec<String> {
    let path = corpus_dir().join("src").join(format!("{stem}.c"));
    inputs::declared_idioms(&std::fs::read_to_string(&path).expect("source"))
}

fn object_name(stem: &str, opt: &str, cpu: &str) -> String {
    format!("{stem}-{opt}-{cpu}.o")
}

/// Every checked-in object whose name starts with one of `prefixes`: (name, bytes).
fn objects(prefixes: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for stem in sources() {
        if !prefixes.iter().any(|p| stem.starts_with(p)) {
            continue;
        }
        for opt in OPTS {
            for cpu in CPUS {
                let name = object_name(&stem, opt, cpu);
                let path = corpus_dir().join("obj").join(&name);
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
                out.push((name, bytes));
            }
        }
    }
    out
}

#[test]
fn corpus_objects_are_current() {
    let stems = sources();
    let expected: Vec<String> = stems
        .iter()
        .flat_map(|s| {
            OPTS.iter()
                .flat_map(move |o| CPUS.iter().map(move |c| (s, o, c)))
        })
        .map(|(s, o, c)| object_name(s, o, c))
        .collect();
    let mut present: Vec<String> = std::fs::read_dir(corpus_dir().join("obj"))
        .expect("tests/corpus/obj")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(
        present, wanted,
        "tests/corpus/obj differs from the sources: make -C tests/corpus"
    );
    assert!(expected.len() >= 150, "{} objects", expected.len());

    let mut cpus: Vec<&str> = Vec::new();
    for cpu in CPUS {
        let clang = clang_for(cpu);
        if Command::new(&clang).arg("--version").output().is_err() {
            skip(
                &clang,
                &format!("the -mcpu={cpu} corpus objects were not rebuilt"),
            );
        } else {
            cpus.push(cpu);
        }
    }
    if cpus.is_empty() {
        return;
    }
    // One clang per configuration, compiling every source at once (in a folder where `src`
    // links to the sources, so each object records the same file name as `make` gives it).
    let tmp = std::env::temp_dir().join(format!("rbpf-corpus-{}", std::process::id()));
    let configs: Vec<(&str, &str)> = OPTS
        .iter()
        .flat_map(|o| cpus.iter().map(move |c| (*o, *c)))
        .collect();
    let differing = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for chunk in configs.chunks(configs.len().div_ceil(2)) {
            let (tmp, stems, differing) = (&tmp, &stems, &differing);
            scope.spawn(move || {
                for (opt, cpu) in chunk {
                    let dir = tmp.join(format!("{opt}-{cpu}"));
                    std::fs::create_dir_all(&dir).expect("temporary folder");
                    let link = dir.join("src");
                    let _ = std::fs::remove_file(&link);
                    std::os::unix::fs::symlink(corpus_dir().join("src"), &link).expect("link");
                    let mut command = Command::new(clang_for(cpu));
                    command
                        .current_dir(&dir)
                        .args(CORPUS_FLAGS)
                        .arg(format!("-{opt}"))
                        .arg(format!("-mcpu={cpu}"))
                        .arg("-c")
                        .args(stems.iter().map(|s| format!("src/{s}.c")));
                    let output = command.output().expect("run clang");
                    common::c::check_output("compiling the corpus", &command, &output);
                    for stem in stems {
                        let fresh = std::fs::read(dir.join(format!("{stem}.o"))).expect("object");
                        let name = object_name(stem, opt, cpu);
                        let old = std::fs::read(corpus_dir().join("obj").join(&name));
                        if old.ok().as_deref() != Some(fresh.as_slice()) {
                            differing.lock().unwrap().push(name);
                        }
                    }
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&tmp);
    let differing = differing.into_inner().unwrap();
    assert!(
        differing.is_empty(),
        "{} objects differ from a rebuild (make -C tests/corpus): {differing:?}",
        differing.len()
    );
}

/// One engine configuration, loaded (and compiled) once for all inputs.
struct Loaded {
    vm: Vm,
    jit: bool,
}

fn load(object: &[u8], jit: bool, bounds: bool, limit: u32) -> Loaded {
    load_in(object, JitTier::Auto, jit, bounds, limit)
}

/// [`load`] with the JIT's tier forced to `tier`.
fn load_in(object: &[u8], tier: JitTier, jit: bool, bounds: bool, limit: u32) -> Loaded {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.config_mut().bounds_check = bounds;
    vm.config_mut().instruction_limit = limit;
    vm.config_mut().jit_tier = tier;
    vm.load_elf(object, None).expect("loads");
    if jit {
        common::compile_optimised(&mut vm, JitMode::Basic).expect("compiles");
    }
    Loaded { vm, jit }
}

type Outcome = (Result<u64, String>, Vec<u8>);

fn run(engine: &Loaded, mem: &[u8]) -> Outcome {
    let mut words = vec![0u64; mem.len().div_ceil(8)];
    // SAFETY: u64 has no padding; the slice covers the first `mem.len()` bytes of the words.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), mem.len()) };
    bytes.copy_from_slice(mem);
    let result = if engine.jit {
        engine.vm.execute_jit(bytes)
    } else {
        engine.vm.execute(bytes)
    };
    (result.map_err(|e| error_key(&e)), bytes.to_vec())
}

/// Runs every object whose source starts with one of `prefixes` on every input in every
/// engine and compares each with the oracle.
fn differential(prefixes: &[&str]) {
    let inputs = inputs::differential_inputs();
    let mut failures = Vec::new();
    let mut runs = 0usize;
    let mut faults = 0usize;
    for (name, object) in objects(prefixes) {
        let oracle = load(&object, false, true, LIMIT);
        let candidates = [
            ("interpreter", load(&object, false, true, 0)),
            ("JIT", load(&object, true, true, 0)),
            ("JIT with a limit", load(&object, true, true, LIMIT)),
            (
                "baseline JIT",
                load_in(&object, JitTier::Baseline, true, true, 0),
            ),
            (
                "baseline JIT with a limit",
                load_in(&object, JitTier::Baseline, true, true, LIMIT),
            ),
        ];
        let oracle_off = load(&object, false, false, LIMIT);
        let unchecked = [
            ("interpreter, bounds off", load(&object, false, false, 0)),
            ("JIT, bounds off", load(&object, true, false, 0)),
            (
                "baseline JIT, bounds off",
                load_in(&object, JitTier::Baseline, true, false, 0),
            ),
        ];
        for (k, mem) in inputs.iter().enumerate() {
            let expected = run(&oracle, mem);
            if matches!(&expected.0, Err(e) if e.starts_with("instruction limit")) {
                continue;
            }
            runs += 1;
            for (engine, loaded) in &candidates {
                let got = run(loaded, mem);
                if got != expected {
                    failures.push(format!(
                        "{name} input {k}: oracle {:x?}, {engine} {:x?} (memory equal: {})",
                        expected.0,
                        got.0,
                        got.1 == expected.1
                    ));
                }
            }
            if expected.0.is_err() {
                faults += 1;
                continue;
            }
            // In bounds: the same without checks.
            let expected_off = run(&oracle_off, mem);
            assert_eq!(
                expected_off, expected,
                "{name} input {k}: bounds off changes the oracle"
            );
            for (engine, loaded) in &unchecked {
                let got = run(loaded, mem);
                if got != expected {
                    failures.push(format!(
                        "{name} input {k}: oracle {:x?}, {engine} {:x?} (memory equal: {})",
                        expected.0,
                        got.0,
                        got.1 == expected.1
                    ));
                }
            }
        }
    }
    assert!(runs > 0);
    eprintln!("{prefixes:?}: {runs} runs compared, {faults} of them faulting");
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn differential_copy_and_fill() {
    differential(&["copy_", "fill_"]);
}

#[test]
fn differential_compare_and_strings() {
    differential(&["memcmp_", "strcmp_", "strncmp_", "str_"]);
}

#[test]
fn differential_switch() {
    differential(&["switch_"]);
}

#[test]
fn differential_hash_checksum_parse() {
    differential(&["hash_", "csum_", "parse_"]);
}

#[test]
fn differential_sort_search_matrix_popcount() {
    differential(&["sort_", "bsearch_", "mat_", "pop_"]);
}

#[test]
fn idioms_fire_on_every_qualifying_variant() {
    // idiom -> (qualifying variants, variants it fired on, names it missed)
    let mut table: BTreeMap<&str, (usize, usize, Vec<String>)> = BTreeMap::new();
    let mut elsewhere: BTreeMap<&str, usize> = BTreeMap::new();
    for stem in sources() {
        let declared = declared_idioms(&stem);
        for opt in OPTS {
            for cpu in CPUS {
                let name = object_name(&stem, opt, cpu);
                let object = std::fs::read(corpus_dir().join("obj").join(&name)).expect("object");
                let mut vm = Vm::new();
                vm.load_elf(&object, None).expect("loads");
                let census = rbpf::exec::census(&vm.program().expect("loaded").insns);
                for (idiom, found) in [
                    ("copy", census.copy),
                    ("fill", census.fill),
                    ("compare", census.compare),
                    ("switch", census.switch),
                ] {
                    if declared.iter().any(|d| d == idiom) {
                        let entry = table.entry(idiom).or_default();
                        entry.0 += 1;
                        if found > 0 {
                            entry.1 += 1;
                        } else {
                            entry.2.push(name.clone());
                        }
                    } else if found > 0 {
                        *elsewhere.entry(idiom).or_default() += 1;
                    }
                }
            }
        }
    }
    let mut report = String::from("idiom    fired/qualifying  (fired on non-qualifying)\n");
    for (idiom, (qualifying, fired, _)) in &table {
        report.push_str(&format!(
            "{idiom:8} {fired:4}/{qualifying:<4}          ({})\n",
            elsewhere.get(idiom).copied().unwrap_or(0)
        ));
    }
    eprintln!("{report}");
    // Every miss must be a known one, and every known one must still miss (so the list
    // shrinks as recognition improves).
    let known = |idiom: &str, name: &str| {
        KNOWN_MISSES.iter().any(|(i, stem, cpu)| {
            *i == idiom && name.starts_with(&format!("{stem}-")) && name.contains(cpu)
        })
    };
    let mut unexpected = Vec::new();
    let mut known_count = 0;
    for (idiom, (_, _, missed)) in &table {
        for name in missed {
            if known(idiom, name) {
                known_count += 1;
            } else {
                unexpected.push(format!("{idiom}: {name}"));
            }
        }
    }
    let listed: usize = table
        .keys()
        .flat_map(|idiom| {
            sources().into_iter().flat_map(move |stem| {
                OPTS.iter().flat_map(move |o| {
                    let stem = stem.clone();
                    CPUS.iter().map(move |c| (*idiom, object_name(&stem, o, c)))
                })
            })
        })
        .filter(|(idiom, name)| {
            known(idiom, name)
                && declared_idioms(name.split('-').next().unwrap())
                    .iter()
                    .any(|d| d == idiom)
        })
        .count();
    assert!(
        unexpected.is_empty(),
        "{report}\nmissed:\n{}",
        unexpected.join("\n")
    );
    assert_eq!(
        known_count, listed,
        "{report}\nsome variants in KNOWN_MISSES are now recognised: shorten the list"
    );
}

/// Qualifying variants the recognisers do not handle yet: (idiom, source, CPU version or "" for all).
const KNOWN_MISSES: &[(&str, &str, &str)] = &[];

/// Copies between two arrays laid out back to back (the second `A = bytes + 8` after the
/// first, as the benchmark lays them out, so the two addresses are 8 or 48 bytes apart modulo
/// the page size): the layout on which the bulk copy leaves the C library's `memmove` for its
/// own loop (`exec::idiom::bulk_move`). Every variant of the wide-element and early-exit copy
/// sources, whole arrays of 16 KiB and 16 KiB + 40 bytes (a tail shorter than one 64-byte
/// step), gives the per-instruction interpreter's result and memory in the interpreter's fast
/// path and the JIT, bounds checks on and off.
#[test]
fn back_to_back_array_copies_match_the_oracle() {
    let stems = [
        "copy_dowhile_u64",
        "copy_countdown_ptr_u32",
        "copy_down_u32",
        "copy_ptr_u16",
        "copy_break_u8",
        "copy_idx_u8",
    ];
    let mut failures = Vec::new();
    let mut runs = 0;
    for stem in stems {
        let width: usize = match stem.rsplit('_').next() {
            Some("u64") => 8,
            Some("u32") => 4,
            Some("u16") => 2,
            _ => 1,
        };
        for used in [16 << 10, (16 << 10) + 40] {
            let n = used / width;
            let a = (used + 8).div_ceil(8) * 8;
            let mut mem = vec![0u8; inputs::HEADER_LEN + 2 * a];
            inputs::write_header(&mut mem, [n as u64, a as u64, 0x80, 4]);
            for i in 0..used {
                let b = (i * 131 + i / 7) as u8 | 1;
                mem[inputs::HEADER_LEN + i] = b;
                // The second array differs in its last byte, so an early-exit copy runs on
                // to the end.
                mem[inputs::HEADER_LEN + a + i] = if i + 1 == used { b ^ 2 } else { b };
            }
            for (name, object) in objects(&[stem]) {
                for bounds in [true, false] {
                    let oracle = load(&object, false, bounds, LIMIT);
                    let expected = run(&oracle, &mem);
                    assert!(expected.0.is_ok(), "{name}: oracle {:?}", expected.0);
                    runs += 1;
                    for (engine, jit) in [("interpreter", false), ("JIT", true)] {
                        let got = run(&load(&object, jit, bounds, 0), &mem);
                        if got != expected {
                            failures.push(format!(
                                "{name} ({used} bytes, bounds {bounds}): oracle {:x?}, {engine} \
                                 {:x?} (memory equal: {})",
                                expected.0,
                                got.0,
                                got.1 == expected.1
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(runs > 0);
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
