//! Shared helpers of the integration tests: locating the conformance suite and reading
//! `assembled.tsv`; [`c`] compiles and runs C programs against `librbpf.so`.

#![allow(dead_code, reason = "each test crate uses a different subset")]

pub mod c;
pub mod engines;
pub mod mapping;
pub mod rng;
pub mod shapes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbpf::Vm;
use rbpf::error::ExecError;
use rbpf::jit::JitMode;

/// What two engines must agree on about an error: its kind, pc and access, without the
/// addresses, which differ between runs.
pub fn error_key(err: &ExecError) -> String {
    match err {
        ExecError::OutOfBounds {
            pc, access, size, ..
        } => format!("out of bounds {access} at {pc} size {size}"),
        ExecError::IntegerOverflow {
            pc, access, size, ..
        } => format!("integer overflow {access} at {pc} size {size}"),
        ExecError::InstructionLimit { pc } => format!("instruction limit at {pc}"),
        other => other.to_string(),
    }
}

/// The clang-built benchmark object `benches/c/<name>.o`.
pub fn bench_object(name: &str) -> Vec<u8> {
    let path = format!("{}/benches/c/{name}.o", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Compiles `vm`'s program in `mode` and waits for the optimised code when the program tiers
/// up in the background: the JIT tests are about the optimised tier (`tests/jit_tier_up.rs`
/// runs the first tiers' code, and forced-tier tests the tiers themselves).
pub fn compile_optimised(vm: &mut Vm, mode: JitMode) -> Result<(), rbpf::error::JitError> {
    vm.compile(mode)?;
    vm.wait_for_tier_up();
    Ok(())
}

/// Loads the ELF `object` and runs it on `mem` in the interpreter or the JIT (basic mode),
/// with `limit` as the instruction limit and quiet error reports; errors as [`error_key`].
pub fn run_object(object: &[u8], jit: bool, limit: u32, mem: &mut [u8]) -> Result<u64, String> {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.config_mut().instruction_limit = limit;
    vm.load_elf(object, None).expect("loads");
    let result = if jit {
        compile_optimised(&mut vm, JitMode::Basic).expect("compiles");
        vm.execute_jit(mem)
    } else {
        vm.execute(mem)
    };
    result.map_err(|e| error_key(&e))
}

/// The conformance suite folder: `$RBPF_CONFORMANCE_DIR` if set, else the copy vendored in
/// the repository (`tests/bpf-conformance`). It must exist: a missing suite fails the test
/// rather than skipping it.
pub fn suite_dir() -> PathBuf {
    let dir = match std::env::var_os("RBPF_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bpf-conformance"),
    };
    assert!(
        dir.join("assembled.tsv").is_file(),
        "conformance suite not found at {} (RBPF_CONFORMANCE_DIR overrides the vendored copy)",
        dir.display()
    );
    dir
}

/// Reports that part of a test could not run because `tool` is missing. When the `CI`
/// environment variable is set this is a failure (CI installs every tool the tests use, see
/// `.ci/run`). Otherwise the message goes straight to the process's standard error, past the
/// test harness's output capture, so that the skip shows in `cargo test`'s normal output.
pub fn skip(tool: &str, what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is missing, and CI is set: {what}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED ({tool} is missing): {what}");
}

/// One line of `assembled.tsv`.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Program bytes.
    pub bytes: Vec<u8>,
    /// Input memory.
    pub mem: Vec<u8>,
    /// `result` or `error`.
    pub kind: String,
    /// Expected value or message.
    pub value: String,
}

fn hex_bytes(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("assembled.tsv holds hex bytes"))
        .collect()
}

/// `assembled.tsv` keyed by relative path (`tests/add.data`).
pub type References = BTreeMap<String, Reference>;

/// Reads `assembled.tsv`.
pub fn references(dir: &Path) -> References {
    let text = std::fs::read_to_string(dir.join("assembled.tsv")).expect("read assembled.tsv");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert!(cols.len() >= 5, "malformed assembled.tsv line: {line}");
            (
                cols[0].to_owned(),
                Reference {
                    bytes: hex_bytes(cols[1]),
                    mem: hex_bytes(cols[2]),
                    kind: cols[3].to_owned(),
                    value: cols[4].to_owned(),
                },
            )
        })
        .collect()
}

/// The `.data` files of a suite subfolder, sorted.
pub fn data_files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .expect("read suite folder")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    files.sort();
    files
}

/// `tests/add.data` for a path inside the suite.
pub fn key(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .expect("path inside the suite")
        .to_string_lossy()
        .into_owned()
}
