//! `examples-c/bpf_conformance_plugin.c`, driven the way the bpf_conformance runner drives a
//! plugin: compiled against the real `librbpf.so`, given the memory as its first argument and
//! the program on standard input (both as two lowercase hex digits and two spaces per byte),
//! and judged as the runner judges (docs/data-format.md, "The runner's verdict"): exit 0 →
//! standard output parsed as hex and compared with the expected result; any other exit → the
//! output (standard output, or standard error when that is empty) up to the first `\r`,
//! trailing whitespace stripped, compared exactly with the expected error.
//!
//! Every program of `assembled.tsv` runs in `--interpret` and `--jit` mode; a few runs go
//! under valgrind's memcheck.

mod common;

use common::Reference;
use common::c::{VALGRIND_ERROR_EXIT, compile_with, paths, valgrind_available, valgrind_command};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Programs in `tests/` of the conformance suite (the `result` lines of `assembled.tsv`).
const SUITE_PROGRAMS: usize = 313;

/// How long one plugin run may take before it counts as hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The compiled plugin (built once per test process).
fn plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let source = paths()
            .root
            .join("examples-c")
            .join("bpf_conformance_plugin.c");
        compile_with(&source, false, &["-lm"], "")
    })
}

/// Bytes as the runner writes them: two lowercase hex digits and two spaces per byte.
fn runner_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}  ")).collect()
}

/// What one plugin run produced.
#[derive(Debug)]
struct Outcome {
    /// Exit code (`None`: killed by a signal).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// The output as a failure report shows it.
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n    stdout: {:?}\n    stderr: {:?}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `command` with `stdin` as its standard input; kills it after [`RUN_TIMEOUT`].
fn run_command(mut command: Command, stdin: &str) -> Outcome {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start the plugin");
    let mut input = child.stdin.take().expect("piped stdin");
    let text = stdin.to_owned();
    // The writer runs on its own thread so that a plugin that does not read its input (or
    // fills its output pipes first) cannot block this one.
    let writer = std::thread::spawn(move || {
        // A plugin that exits without reading closes the pipe: that is not an error here.
        let _ = input.write_all(text.as_bytes());
    });
    let mut stdout_pipe = child.stdout.take().expect("piped stdout");
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut text);
        text
    });
    let started = Instant::now();
    let mut stdout = Vec::new();
    let _ = stdout_pipe.read_to_end(&mut stdout);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the plugin") {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            break child.wait().expect("wait for the killed plugin");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let stderr = stderr_reader.join().expect("stderr reader");
    let _ = writer.join();
    Outcome {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The plugin's arguments for `memory` and `options`, as the runner builds them.
fn runner_args(memory: &[u8], options: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    if !memory.is_empty() {
        args.push(runner_hex(memory));
    }
    args.extend(options.iter().map(|o| (*o).to_owned()));
    args
}

/// Runs the plugin like the runner: memory argument (if any), options, program on stdin.
fn invoke(program: &[u8], memory: &[u8], options: &[&str]) -> Outcome {
    let mut command = Command::new(plugin());
    command.args(runner_args(memory, options));
    run_command(command, &format!("{}\n", runner_hex(program)))
}

/// `std::stoull(text, nullptr, 16)` as the runner calls it: leading whitespace, an optional
/// `0x`, then at least one hex digit; anything after the digits is ignored.
fn parse_runner_hex(text: &str) -> Option<u64> {
    let text = text.trim_start();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let digits: &str = &text[..text
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(text.len())];
    u64::from_str_radix(digits, 16).ok()
}

/// An expected `-- result` value: `0x…` hex or decimal.
fn parse_expected(value: &str) -> Option<u64> {
    let value = value.trim();
    match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// The text the runner compares with an expected error: standard output (standard error if
/// that is empty) up to the first `\r`, trailing whitespace stripped.
fn runner_error_text(outcome: &Outcome) -> &str {
    let text = if outcome.stdout.is_empty() {
        &outcome.stderr
    } else {
        &outcome.stdout
    };
    text.split('\r').next().unwrap_or("").trim_end()
}

/// The runner's verdict on one run: `Ok` for PASS, `Err(reason)` for FAIL or ERROR.
fn judge(expected: &Reference, outcome: &Outcome) -> Result<(), String> {
    if outcome.code == Some(0) {
        let Some(got) = parse_runner_hex(&outcome.stdout) else {
            return Err(format!(
                "ERROR: unparsable output\n    {}",
                outcome.describe()
            ));
        };
        if expected.kind != "result" {
            return Err(format!(
                "expected error {:?}, got result 0x{got:x}",
                expected.value
            ));
        }
        let want = parse_expected(&expected.value)
            .ok_or_else(|| format!("bad expected result {:?}", expected.value))?;
        if got == want {
            Ok(())
        } else {
            Err(format!("expected 0x{want:x}, got 0x{got:x}"))
        }
    } else if expected.kind != "error" {
        Err(format!(
            "ERROR: plugin failed but no error was expected\n    {}",
            outcome.describe()
        ))
    } else if runner_error_text(outcome) == expected.value {
        Ok(())
    } else {
        Err(format!(
            "expected error {:?}\n    {}",
            expected.value,
            outcome.describe()
        ))
    }
}

/// Runs `job` on every item with a few worker threads; results keep the items' order.
fn parallel_map<T: Sync, R: Send>(items: &[T], job: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = job(item);
                    results.lock().expect("results lock")[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every item was run"))
        .collect()
}

/// The suite's `result` programs, by file name.
fn suite_programs() -> Vec<(String, Reference)> {
    common::references(&common::suite_dir())
        .into_iter()
        .filter(|(_, r)| r.kind == "result")
        .collect()
}

/// Runs every `stride`-th suite program in `mode` (with `env` set), prints PASS/FAIL lines
/// and a summary, and requires all of them to pass.
fn run_suite(options: &[&str], env: &[(&str, &str)], stride: usize) {
    let mode = options.join(" ");
    let programs = suite_programs();
    assert_eq!(
        programs.len(),
        SUITE_PROGRAMS,
        "assembled.tsv should list {SUITE_PROGRAMS} programs of tests/"
    );
    let programs: Vec<(String, Reference)> = programs.into_iter().step_by(stride).collect();
    plugin();
    let started = Instant::now();
    let verdicts = parallel_map(&programs, |(_, reference)| {
        let mut command = Command::new(plugin());
        command.args(runner_args(&reference.mem, options));
        for (key, value) in env {
            command.env(key, value);
        }
        let outcome = run_command(command, &format!("{}\n", runner_hex(&reference.bytes)));
        judge(reference, &outcome)
    });
    let mut failed = Vec::new();
    for ((name, _), verdict) in programs.iter().zip(&verdicts) {
        match verdict {
            Ok(()) => println!("PASS {mode} {name}"),
            Err(reason) => {
                println!("FAIL {mode} {name}: {reason}");
                failed.push(name.as_str());
            }
        }
    }
    let passed = verdicts.len() - failed.len();
    let label = if env.is_empty() {
        mode.clone()
    } else {
        let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{mode} ({})", vars.join(" "))
    };
    println!(
        "plugin {label}: {passed} passed, {} failed ({:.1} s)",
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{label}: failed {failed:?}");
}

#[test]
fn suite_interpreter() {
    run_suite(&["--interpret"], &[], 1);
}

#[test]
fn suite_jit() {
    run_suite(&["--jit"], &[], 1);
}

/// uBPF runs the whole suite in its safe (provenance-tracking) interpreter too.
#[test]
fn suite_safe_interpreter() {
    run_suite(&["--profile", "safe", "--interpret"], &[], 1);
}

/// bpf_conformance's CI reruns the JIT tests with constant blinding on; results must not
/// move. A sample (every 8th program) keeps the run short.
#[test]
fn suite_jit_with_constant_blinding() {
    run_suite(&["--jit"], &[("UBPF_ENABLE_CONSTANT_BLINDING", "1")], 8);
}

/// Assembles conformance-syntax text with the crate's assembler.
fn assemble(text: &str) -> Vec<u8> {
    rbpf::asm::assemble_bytes(text).expect("test program assembles")
}

/// Requires `outcome` to be a successful run printing `expected` as the runner reads it.
fn assert_result(what: &str, outcome: &Outcome, expected: u64) {
    let reference = Reference {
        bytes: Vec::new(),
        mem: Vec::new(),
        kind: "result".to_owned(),
        value: format!("0x{expected:x}"),
    };
    if let Err(reason) = judge(&reference, outcome) {
        panic!("{what}: {reason}\n    {}", outcome.describe());
    }
    assert_eq!(
        outcome.stdout,
        format!("{expected:x}\n"),
        "{what}: lowercase hex without 0x and a newline"
    );
}

/// Requires `outcome` to be a failed run that the runner would match with `expected`.
fn assert_error(what: &str, outcome: &Outcome, expected: &str) {
    assert_eq!(outcome.code, Some(1), "{what}: {}", outcome.describe());
    assert_eq!(
        runner_error_text(outcome),
        expected,
        "{what}: {}",
        outcome.describe()
    );
}

const MODES: [&str; 2] = ["--interpret", "--jit"];

#[test]
fn load_error_is_printed_to_stdout() {
    let program = [0x8f, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    for mode in MODES {
        let outcome = invoke(&program, &[], &[mode]);
        assert_eq!(outcome.code, Some(1), "{mode}: {}", outcome.describe());
        assert_eq!(
            outcome.stdout, "Failed to load code: unknown opcode 0x8f at PC 0\n",
            "{mode}"
        );
    }
    // The validator admits exactly the table's indices 0..=5.
    let outcome = invoke(&assemble("call 6\nexit"), &[], &["--interpret"]);
    assert_error(
        "call 6",
        &outcome,
        "Failed to load code: call to nonexistent function 6 at PC 0",
    );
}

/// Every `negative/unused-*` program (an unused field set) is refused at load time.
#[test]
fn negative_programs_fail_to_load() {
    let dir = common::suite_dir();
    let cases: Vec<(String, Reference)> = common::references(&dir)
        .into_iter()
        .filter(|(_, r)| r.kind == "error")
        .collect();
    assert!(!cases.is_empty(), "assembled.tsv has error lines");
    let jobs: Vec<(&str, &Reference, &str)> = cases
        .iter()
        .flat_map(|(name, r)| MODES.map(|mode| (name.as_str(), r, mode)))
        .collect();
    let outcomes = parallel_map(&jobs, |(_, r, mode)| invoke(&r.bytes, &r.mem, &[mode]));
    let mut failed = Vec::new();
    for ((name, _, mode), outcome) in jobs.iter().zip(&outcomes) {
        let first = outcome.stdout.lines().next().unwrap_or("");
        let refused = outcome.code == Some(1)
            && first.starts_with("Failed to load code: ")
            && first.len() > "Failed to load code: ".len();
        if refused {
            println!("PASS {mode} {name}: {first}");
        } else {
            println!("FAIL {mode} {name}: {}", outcome.describe());
            failed.push(format!("{mode} {name}"));
        }
    }
    println!(
        "plugin load errors: {} passed, {} failed",
        jobs.len() - failed.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "accepted: {failed:?}");
}

/// Every helper of the table, through the dispatcher and the indexed table (both modes).
#[test]
fn helpers() {
    let gather = assemble(
        "mov %r1, 0x101\nmov %r2, 0x202\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 0\nexit",
    );
    // memfrob 4 bytes at mem+2, then read the whole buffer big-endian.
    let memfrob =
        assemble("mov %r6, %r1\nadd %r1, 2\nmov %r2, 4\ncall 1\nldxdw %r0, [%r6]\nbe64 %r0\nexit");
    let no_op = assemble("mov %r0, 7\ncall 2\nexit");
    let sqrti = assemble("lddw %r1, 0x10000000000\ncall 3\nexit");
    // strcmp("ab", "ac") < 0, sign-extended.
    let strcmp = assemble("mov %r2, %r1\nadd %r2, 3\ncall 4\nexit");
    // A zero from the unwind helper ends the program with r0 = 0.
    let unwind = assemble("mov %r1, 0\ncall 5\nmov %r0, 7\nexit");
    let keep_going = assemble("mov %r1, 9\ncall 5\nmov %r0, 7\nexit");
    // r6..r9 survive helper calls.
    let saved = assemble(
        "mov %r6, 0x4000\nmov %r7, 0x300\nmov %r8, 0x20\nmov %r9, 1\n\
         mov %r1, 1\ncall 0\ncall 2\ncall 3\n\
         mov %r0, %r6\nor %r0, %r7\nor %r0, %r8\nor %r0, %r9\nexit",
    );
    let frob_mem: Vec<u8> = (1..=8).collect();
    let strings = b"ab\0ac\0".to_vec();
    let cases: [(&str, &[u8], &[u8], u64); 8] = [
        ("gather_bytes", &gather, &[], 0x01_0203_0405),
        ("memfrob", &memfrob, &frob_mem, 0x0102_292e_2f2c_0708),
        ("no_op", &no_op, &[], 0),
        ("sqrti", &sqrti, &[], 0x10_0000),
        ("strcmp_ext", &strcmp, &strings, u64::MAX),
        ("unwind", &unwind, &[], 0),
        ("unwind (non-zero)", &keep_going, &[], 7),
        ("callee-saved", &saved, &[], 0x4321),
    ];
    for (name, program, memory, expected) in cases {
        for mode in MODES {
            let outcome = invoke(program, memory, &[mode]);
            assert_result(&format!("{name} {mode}"), &outcome, expected);
        }
    }
}

/// Each engine run starts from a fresh copy of the input memory: a program that increments
/// a byte and returns it gives the same result on every entry point.
#[test]
fn every_run_gets_fresh_memory() {
    let program = assemble("ldxb %r0, [%r1]\nadd %r0, 1\nstxb [%r1], %r0\nexit");
    for mode in MODES {
        let outcome = invoke(&program, &[5], &[mode]);
        assert_result(&format!("increment {mode}"), &outcome, 6);
    }
}

/// A runtime fault in the interpreter fails the run.
#[test]
fn runtime_error_fails_the_run() {
    let program = assemble("ldxb %r0, [%r1+100]\nexit");
    let outcome = invoke(&program, &[1, 2], &["--interpret"]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.describe());
    assert!(outcome.stdout.is_empty(), "{}", outcome.describe());
    assert!(
        outcome
            .stderr
            .contains("uBPF error: out of bounds memory load")
            && outcome.stderr.ends_with("Failed to execute program\n"),
        "{}",
        outcome.describe()
    );
}

/// Argument handling (docs/data-format.md, "Plugin options").
#[test]
fn arguments() {
    let program = assemble("mov %r0, 0x2a\nexit");
    let hex = runner_hex(&program);
    let reads_memory = assemble("ldxh %r0, [%r1+1]\nexit");

    let plugin_with = |args: &[&str], stdin: &str| {
        let mut command = Command::new(plugin());
        command.args(args);
        run_command(command, stdin)
    };

    // Default mode, and every option the plugin accepts.
    assert_result("no options", &plugin_with(&[], &hex), 0x2a);
    for options in [
        &["--debug", "--interpret"][..],
        &["--jit", "--profile", "legacy"],
        &["--profile", "legacy", "--debug", "--jit", "--interpret"],
    ] {
        assert_result(&format!("{options:?}"), &plugin_with(options, &hex), 0x2a);
    }

    // --program instead of standard input (which is then not read).
    for mode in MODES {
        assert_result(
            &format!("--program {mode}"),
            &plugin_with(&["--program", &hex, mode], ""),
            0x2a,
        );
    }

    // Hex with single spaces, tabs or trailing newlines is read the same.
    let single: Vec<String> = reads_memory.iter().map(|b| format!("{b:02x}")).collect();
    let single = single.join(" ");
    for mode in MODES {
        let outcome = plugin_with(&["0a 0b\t0c  0d\n", mode], &format!("{single}\n"));
        assert_result(&format!("single-spaced hex {mode}"), &outcome, 0x0c0b);
    }

    assert_error(
        "unknown option",
        &plugin_with(&["--elf"], &hex),
        "Invalid arguments: --elf",
    );
    assert_error(
        "leftover argument",
        &plugin_with(&["--jit", "extra"], &hex),
        "Invalid arguments: extra",
    );
    assert_error(
        "memory after an option",
        &plugin_with(&["--interpret", "01  02  "], &hex),
        "Invalid arguments: 01  02",
    );
    assert_error(
        "bad profile",
        &plugin_with(&["--profile", "fast"], &hex),
        "Invalid profile: fast",
    );
    assert_error(
        "missing profile",
        &plugin_with(&["--profile"], &hex),
        "Missing profile argument",
    );
    assert_error(
        "missing program",
        &plugin_with(&["--program"], ""),
        "Missing program argument",
    );
}

/// `--profile safe` with a helper: the plugin registers safe-helper metadata and the safe
/// interpreter's two entry points agree.
#[test]
fn safe_profile() {
    let program =
        assemble("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 0\nexit");
    let outcome = invoke(&program, &[], &["--profile", "safe", "--interpret"]);
    assert_result("safe profile", &outcome, 0x01_0203_0405);
}

/// A handful of runs under valgrind's memcheck: no memory errors and no leaks on the success
/// paths of both engines (with memory, with helpers, with local calls) and on error paths.
#[test]
fn valgrind_clean() {
    if !valgrind_available() {
        common::skip("valgrind", "the plugin ran without memcheck");
        return;
    }
    let dir = common::suite_dir();
    let references = common::references(&dir);
    let suite = |name: &str| {
        references
            .get(name)
            .unwrap_or_else(|| panic!("{name} is in assembled.tsv"))
            .clone()
    };
    let memfrob = Reference {
        bytes: assemble(
            "mov %r6, %r1\nadd %r1, 2\nmov %r2, 4\ncall 1\nldxdw %r0, [%r6]\nbe64 %r0\nexit",
        ),
        mem: (1..=8).collect(),
        kind: "result".to_owned(),
        value: "0x102292e2f2c0708".to_owned(),
    };
    let load_error = Reference {
        bytes: vec![0x8f, 0, 0, 0, 0, 0, 0, 0],
        mem: vec![1, 2, 3],
        kind: "error".to_owned(),
        value: "Failed to load code: unknown opcode 0x8f at PC 0".to_owned(),
    };
    let fault = Reference {
        bytes: assemble("ldxb %r0, [%r1+100]\nexit"),
        mem: vec![1],
        kind: "error".to_owned(),
        value: String::new(),
    };
    // Each run costs valgrind many seconds (it reads librbpf's debug information), so only
    // five: every JIT entry point with memory and a helper; the interpreter with the unwind
    // helper, and with local calls; a load error; a runtime fault.
    let jobs: Vec<(String, Reference, &str)> = vec![
        ("memfrob".to_owned(), memfrob, "--jit"),
        (
            "tests/call_unwind_fail.data".to_owned(),
            suite("tests/call_unwind_fail.data"),
            "--interpret",
        ),
        (
            "tests/call_local.data".to_owned(),
            suite("tests/call_local.data"),
            "--interpret",
        ),
        ("unknown opcode".to_owned(), load_error, "--jit"),
        ("runtime fault".to_owned(), fault, "--interpret"),
    ];

    let outcomes = parallel_map(&jobs, |(_, reference, mode)| {
        let mut command = valgrind_command(plugin());
        command.args(runner_args(&reference.mem, &[mode]));
        run_command(command, &format!("{}\n", runner_hex(&reference.bytes)))
    });
    let mut failed = Vec::new();
    for ((name, reference, mode), outcome) in jobs.iter().zip(&outcomes) {
        let clean = outcome.code != Some(VALGRIND_ERROR_EXIT);
        let verdict = if reference.value.is_empty() {
            // The runtime fault: the plugin itself fails, valgrind finds nothing.
            if outcome.code == Some(1) {
                Ok(())
            } else {
                Err("expected exit 1".to_owned())
            }
        } else {
            judge(reference, outcome)
        };
        if clean && verdict.is_ok() {
            println!("PASS valgrind {mode} {name}");
        } else {
            println!(
                "FAIL valgrind {mode} {name}: {}\n    {}",
                verdict
                    .err()
                    .unwrap_or_else(|| "memcheck errors".to_owned()),
                outcome.describe()
            );
            failed.push(format!("{mode} {name}"));
        }
    }
    println!(
        "plugin under valgrind: {} passed, {} failed",
        jobs.len() - failed.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "valgrind failures: {failed:?}");
}
