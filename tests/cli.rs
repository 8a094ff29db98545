//! Integration tests of the `rbpf` command-line tool.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn rbpf(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbpf"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rbpf");
    // The child may exit before reading its input; a broken pipe is then expected.
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    child.wait_with_output().expect("wait for rbpf")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rbpf-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.join(name)
}

#[test]
fn help_and_usage_errors() {
    let o = rbpf(&["--version"], b"");
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("rbpf "), "{}", stdout(&o));
    let o = rbpf(&["--help"], b"");
    assert_eq!(o.status.code(), Some(0));
    for word in [
        "rbpf run",
        "rbpf asm",
        "rbpf disasm",
        "rbpf test",
        "rbpf test-run",
        "EXIT STATUS",
    ] {
        assert!(stdout(&o).contains(word), "help lacks {word}");
    }
    for args in [
        &[][..],
        &["frobnicate"],
        &["run"],
        &["run", "--bogus", "x"],
        &["run", "--limit", "many", "-"],
        &["run", "--mem"],
        &["run", "--asm", "--raw", "-"],
        &["run", "--mem-hex", "zz", "-"],
        &["asm", "a", "b"],
        &["test"],
        &["disasm", "/nonexistent/file"],
    ] {
        let o = rbpf(args, b"");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("rbpf: "), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty() || args.is_empty(), "{args:?}");
    }
}

#[test]
fn asm_writes_bytes_or_hex() {
    let src = b"mov %r0, 7\nexit\n";
    let o = rbpf(&["asm"], src);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        o.stdout,
        [0xb7, 0, 0, 0, 7, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]
    );

    let o = rbpf(&["asm", "--hex", "-"], src);
    assert_eq!(
        stdout(&o),
        "b7 00 00 00 07 00 00 00\n95 00 00 00 00 00 00 00\n"
    );

    let input = temp_path("prog.asm");
    let output = temp_path("prog.bin");
    std::fs::write(&input, "mov64 r1, 0x605\nexit\n").unwrap();
    let o = rbpf(
        &[
            "asm",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert_eq!(
        std::fs::read(&output).unwrap(),
        [0xb7, 1, 0, 0, 5, 6, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn asm_errors_exit_1_with_position() {
    let o = rbpf(&["asm"], b"mov %r0, 1\nor %r0, %r50\n");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("Invalid register: %r50"), "{err}");
    assert!(err.contains("line 2, column 9"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn disasm_round_trips_through_asm() {
    let src = "mov %r0, 0\nL1:\nadd %r0, 1\njlt %r0, 10, L1\nexit\n";
    let bytes = rbpf(&["asm"], src.as_bytes()).stdout;
    let o = rbpf(&["disasm"], &bytes);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), src);

    let o = rbpf(
        &["disasm", "--hex"],
        b"b7 00 00 00 01 00 00 00\n95 00 00 00 00 00 00 00\n",
    );
    assert_eq!(stdout(&o), "mov %r0, 1\nexit\n", "{}", stderr(&o));
    let o = rbpf(&["disasm", "--hex"], b"b7 0");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not hex bytes"), "{}", stderr(&o));

    let o = rbpf(&["disasm", "-"], &[0x95, 0, 0]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a multiple of 8"), "{}", stderr(&o));
}

#[test]
fn disasm_of_a_conformance_program_reassembles() {
    let dir = common::suite_dir();
    let refs = common::references(&dir);
    let reference = &refs["tests/call_local.data"];
    let text = rbpf(&["disasm"], &reference.bytes);
    assert_eq!(text.status.code(), Some(0));
    let back = rbpf(&["asm"], &text.stdout);
    assert_eq!(back.stdout, reference.bytes, "{}", stdout(&text));
}

#[test]
fn run_detects_assembly_raw_and_elf() {
    let o = rbpf(&["run", "-"], b"mov %r0, 7\nadd %r0, %r2\nexit\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0x7\n");

    let raw = [
        0xb7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x95, 0, 0, 0, 0, 0, 0, 0,
    ];
    let o = rbpf(&["run", "-"], &raw);
    assert_eq!(stdout(&o), "0xffffffffffffffff\n", "{}", stderr(&o));

    let elf = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/return42.bpf.o");
    for jit in [false, true] {
        let mut args = vec!["run", elf];
        if jit {
            args.push("--jit");
        }
        let o = rbpf(&args, b"");
        assert_eq!(stdout(&o), "0x2a\n", "{args:?}: {}", stderr(&o));
        args.extend(["--entry", "other"]);
        let o = rbpf(&args, b"");
        assert_eq!(stdout(&o), "0x7\n", "{args:?}: {}", stderr(&o));
    }
    let o = rbpf(&["run", "--entry", "missing", elf], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Failed to load code"), "{}", stderr(&o));
    let o = rbpf(&["run", "--entry", "main", "-"], b"exit\n");
    assert_eq!(o.status.code(), Some(2));

    let o = rbpf(&["disasm", elf], b"");
    assert_eq!(
        stdout(&o),
        "mov %r0, 42\nexit\nmov %r0, 7\nexit\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn constant_blinding_from_the_environment_keeps_results() {
    let out = Command::new(env!("CARGO_BIN_EXE_rbpf"))
        .args(["run", "--jit", "--mem-hex", "01 02", "-"])
        .env("UBPF_ENABLE_CONSTANT_BLINDING", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let _ =
                child.stdin.take().expect("stdin").write_all(
                    b"lddw %r0, 0x1122334455667788\nldxh %r1, [%r1]\nadd %r0, %r1\nexit\n",
                );
            child.wait_with_output()
        })
        .expect("run rbpf");
    assert_eq!(stdout(&out), "0x1122334455667989\n", "{}", stderr(&out));
}

#[test]
fn run_with_memory_in_both_engines() {
    let prog = b"ldxh %r0, [%r1+1]\nadd %r0, %r2\nexit\n";
    let mem = temp_path("mem.bin");
    std::fs::write(&mem, [0x11, 0x22, 0x33, 0x44]).unwrap();
    for engine in [&[][..], &["--jit"]] {
        let mut args = vec!["run", "--mem-hex", "11 22 33 44", "-"];
        args.extend(engine);
        let o = rbpf(&args, prog);
        assert_eq!(stdout(&o), "0x3326\n", "{args:?}: {}", stderr(&o));
        let mut args = vec!["run", "--mem", mem.to_str().unwrap(), "-"];
        args.extend(engine);
        let o = rbpf(&args, prog);
        assert_eq!(stdout(&o), "0x3326\n", "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn run_failures_exit_1() {
    // Out-of-bounds load: a runtime error, reported with uBPF's text.
    for engine in [&[][..], &["--jit"]] {
        let mut args = vec!["run", "-"];
        args.extend(engine);
        let o = rbpf(&args, b"ldxw %r0, [%r1+8]\nexit\n");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&o).contains("out of bounds memory load at PC 0"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(o.stdout.is_empty());
    }
    // Load error.
    let o = rbpf(&["run", "-"], b"mov %r10, 1\nexit\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Failed to load code"), "{}", stderr(&o));
    // Instruction limit.
    let o = rbpf(
        &["run", "--limit", "10", "-"],
        b"l: add %r0, 1\nja l\nexit\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("Instruction limit"), "{}", stderr(&o));
    // Without bounds checks the same out-of-bounds stack read inside the 4 KiB stack is fine.
    let o = rbpf(
        &["run", "--no-bounds-check", "-"],
        b"ldxdw %r0, [%r10-8]\nexit\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The safe profile (interpreter only) runs the same programs.
    let o = rbpf(&["run", "--profile", "safe", "-"], b"mov %r0, 9\nexit\n");
    assert_eq!(stdout(&o), "0x9\n", "{}", stderr(&o));
    let o = rbpf(&["run", "-p", "fast", "-"], b"exit\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Unknown execution profile: fast"));
    // Forcing the raw format on text fails at load (not a whole number of slots, or junk).
    let o = rbpf(&["run", "--raw", "-"], b"exit\n");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn test_command_reports_each_file_and_a_summary() {
    let good = temp_path("good.data");
    let bad = temp_path("bad.data");
    let rejected = temp_path("rejected.data");
    std::fs::write(&good, "-- asm\nmov %r0, 3\nexit\n-- result\n0x3\n").unwrap();
    std::fs::write(&bad, "-- asm\nmov %r0, 3\nexit\n-- result\n0x4\n").unwrap();
    std::fs::write(
        &rejected,
        "-- asm\nor %r0, %r50\nexit\n-- error\nInvalid register\n",
    )
    .unwrap();
    let (good, bad, rejected) = (
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        rejected.to_str().unwrap(),
    );

    let o = rbpf(&["test", good, rejected], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        stdout(&o),
        format!("PASS {good}\nPASS {rejected}\n2 passed, 0 failed\n")
    );

    let o = rbpf(&["test", "--safe", good], b"");
    assert_eq!(stdout(&o), format!("PASS {good}\n1 passed, 0 failed\n"));

    let o = rbpf(&["test", "-"], b"-- asm\nmov %r0, 5\nexit\n-- result\n5\n");
    assert_eq!(stdout(&o), "PASS -\n1 passed, 0 failed\n", "{}", stderr(&o));

    let o = rbpf(&["test", good, bad], b"");
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("FAIL {bad}: interpreter: expected 0x4, got 0x3")),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 1 failed\n"), "{out}");
}

#[test]
fn test_command_passes_the_conformance_suite() {
    let dir = common::suite_dir();
    let tests = dir.join("tests");
    let args = ["test", "--safe", tests.to_str().expect("UTF-8 path")];
    let o = rbpf(&args, b"");
    let out = stdout(&o);
    assert_eq!(out.lines().filter(|l| l.starts_with("PASS ")).count(), 313);
    assert!(out.ends_with("313 passed, 0 failed\n"), "{out}");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn an_empty_program_is_named_as_such() {
    let path = temp_path("empty.bin");
    std::fs::write(&path, b"").unwrap();
    let o = rbpf(&["run", path.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("holds no instructions"),
        "{}",
        stderr(&o)
    );
    let o = rbpf(&["run", "--asm", "-"], b"# nothing\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("<stdin> holds no instructions"));
}

#[test]
fn test_of_a_missing_path_is_a_usage_error() {
    let o = rbpf(&["test", "/nonexistent/suite"], b"");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot read /nonexistent/suite"));
}

#[test]
fn run_reads_the_hex_that_asm_prints() {
    let src = b"ldxb %r0, [%r1+1]\nadd %r0, 40\nexit\n";
    let hex = rbpf(&["asm", "--hex"], src);
    assert_eq!(hex.status.code(), Some(0), "{}", stderr(&hex));
    // Detected from standard input and from a file, in both engines.
    let file = temp_path("prog.hex");
    std::fs::write(&file, &hex.stdout).unwrap();
    for engine in [&[][..], &["--jit"]] {
        let mut args = vec!["run", "--mem-hex", "01 02", "-"];
        args.extend(engine);
        let o = rbpf(&args, &hex.stdout);
        assert_eq!(stdout(&o), "0x2a\n", "{args:?}: {}", stderr(&o));
        args[3] = file.to_str().unwrap();
        let o = rbpf(&args, b"");
        assert_eq!(stdout(&o), "0x2a\n", "{args:?}: {}", stderr(&o));
    }
    // One line, or forced with --hex in the forms `disasm --hex` takes.
    let o = rbpf(
        &["run", "-"],
        b"b7 00 00 00 07 00 00 00 95 00 00 00 00 00 00 00",
    );
    assert_eq!(stdout(&o), "0x7\n", "{}", stderr(&o));
    let o = rbpf(
        &["run", "--hex", "-"],
        b"0xb7,0x00,0x00,0x00,0x09,0x00,0x00,0x00\n9500000000000000\n",
    );
    assert_eq!(stdout(&o), "0x9\n", "{}", stderr(&o));
    let o = rbpf(&["run", "--hex", "-"], b"mov %r0, 1\nexit\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("<stdin>: not hex bytes"),
        "{}",
        stderr(&o)
    );
    // Hex-looking assembly does not exist; text with any other word is still assembly.
    let o = rbpf(&["run", "-"], b"mov %r0, 0xab\nexit\n");
    assert_eq!(stdout(&o), "0xab\n", "{}", stderr(&o));
    let o = rbpf(&["run", "--hex", "--asm", "-"], b"");
    assert_eq!(o.status.code(), Some(2));
    let help = stdout(&rbpf(&["--help"], b""));
    assert!(help.contains("--asm | --raw | --elf | --hex"), "{help}");
}

#[test]
fn asm_of_an_empty_program_fails() {
    let out = temp_path("empty-asm.bin");
    let _ = std::fs::remove_file(&out);
    for src in [&b""[..], b"\n", b"# only a comment\n"] {
        let o = rbpf(&["asm", "-o", out.to_str().unwrap()], src);
        assert_eq!(o.status.code(), Some(1), "{src:?}");
        assert!(
            stderr(&o).contains("<stdin> holds no instructions"),
            "{src:?}: {}",
            stderr(&o)
        );
        assert!(!out.exists(), "{src:?} wrote an output file");
        let o = rbpf(&["asm", "--hex"], src);
        assert_eq!(o.status.code(), Some(1), "{src:?}");
        assert!(o.stdout.is_empty());
    }
}

/// `tests/data/return42.bpf.o` with its `.text` section renamed, so that no function is the
/// default entry.
fn elf_without_text() -> std::path::PathBuf {
    let elf = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/return42.bpf.o");
    let mut bytes = std::fs::read(elf).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == b".text\0")
        .expect("the section name .text");
    bytes[at + 4] = b'u';
    let path = temp_path("no-text.bpf.o");
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[test]
fn a_missing_entry_function_is_explained() {
    let path = elf_without_text();
    let bytes = std::fs::read(&path).unwrap();
    // The library (and so the C API) keeps uBPF's text.
    let err = rbpf::Vm::new().load_elf(&bytes, None).unwrap_err();
    assert_eq!(err.to_string(), "(null) function not found.");

    let path = path.to_str().unwrap();
    let o = rbpf(&["run", path], b"");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("Failed to load code: no entry function: looked for a function at offset 0 of section .text"),
        "{err}"
    );
    assert!(err.contains("its functions: entry, other"), "{err}");
    assert!(!err.contains("(null)"), "{err}");
    let o = rbpf(&["disasm", path], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no entry function"), "{}", stderr(&o));

    // Naming a function that exists runs it; another is reported by name.
    let o = rbpf(&["run", "--entry", "other", path], b"");
    assert_eq!(stdout(&o), "0x7\n", "{}", stderr(&o));
    let elf = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/return42.bpf.o");
    let o = rbpf(&["run", "--entry", "xdp_prog", elf], b"");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("function 'xdp_prog' not found; its functions: entry, other"),
        "{err}"
    );
}

/// `run --linux-helpers` runs programs written for the kernel (examples-c/bpf/flow_counter.o
/// reserves ring-buffer space with helper 131), in both engines; without it they fail to load.
#[test]
fn run_with_the_kernels_helpers() {
    let object =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-c/bpf/flow_counter.o");
    let object = object.to_str().unwrap();
    // An Ethernet frame with an IPv4 TCP SYN from 10.0.0.1 to 10.0.0.2.
    let mut frame = vec![0u8; 12];
    frame.extend([0x08, 0x00]);
    frame.extend([
        0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    frame.extend([
        0x04, 0xd2, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0,
    ]);
    let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    let o = rbpf(&["run", object, "--mem-hex", &hex], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nonexistent function 131"),
        "{}",
        stderr(&o)
    );
    for jit in [false, true] {
        let mut args = vec!["run", "--linux-helpers", object, "--mem-hex", &hex];
        if jit {
            args.push("--jit");
        }
        let o = rbpf(&args, b"");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), "0x2\n");
    }
    let o = rbpf(&["run", "--linux-helpers", "-p", "safe", object], b"");
    assert_eq!(o.status.code(), Some(2));
}

// `rbpf test-run`.

/// The records of a little-endian microsecond pcap file: (timestamp words, frame).
fn pcap_records(bytes: &[u8]) -> Vec<([u8; 8], Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let ts: [u8; 8] = bytes[at..at + 8].try_into().unwrap();
        out.push((ts, bytes[at + 16..at + 16 + len].to_vec()));
        at += 16 + len;
    }
    out
}

fn sample_pcap() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-c/data/sample.pcap")
}

fn xdp_tail() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bpf/object/xdp_tail.o")
        .display()
        .to_string()
}

/// What tests/bpf/object/xdp_tail.c does with `frame`: the verdict name, or the error.
fn xdp_tail_outcome(frame: &[u8]) -> &'static str {
    if frame.len() < 14 {
        return "-EINVAL";
    }
    if frame.len() < 15 {
        return "XDP_ABORTED";
    }
    match frame[14] {
        1 => "XDP_REDIRECT",
        2 => "XDP_TX",
        3 => "XDP_DROP",
        4 => "-EFAULT",
        _ => "XDP_PASS",
    }
}

#[test]
fn test_run_counts_verdicts_and_writes_the_frames() {
    let input = std::fs::read(sample_pcap()).unwrap();
    let records = pcap_records(&input);
    let mut expected = std::collections::BTreeMap::new();
    for (_, frame) in &records {
        *expected.entry(xdp_tail_outcome(frame)).or_insert(0) += 1;
    }
    let out = temp_path("test-run-out.pcap");
    let pcap = sample_pcap().display().to_string();
    let object = xdp_tail();
    let mut outputs = Vec::new();
    for jit in [false, true] {
        let mut args = vec![
            "test-run",
            &object,
            "--program",
            "entry",
            "--pcap",
            &pcap,
            "--out",
            out.to_str().unwrap(),
        ];
        if jit {
            args.push("--jit");
        }
        let o = rbpf(&args, b"");
        let text = stdout(&o);
        let faulted = expected.contains_key("-EFAULT");
        assert_eq!(o.status.code(), Some(i32::from(faulted)), "{}", stderr(&o));
        assert!(
            text.starts_with(&format!("packets: {}\n", records.len())),
            "{text}"
        );
        for (name, count) in &expected {
            assert!(
                text.contains(&format!("  {name}: {count}\n")),
                "{name} {count}: {text}"
            );
        }
        if let Some(n) = expected.get("XDP_REDIRECT") {
            assert!(
                text.contains(&format!("redirects:\n  ifindex 7: {n}\n")),
                "{text}"
            );
        }
        // counters[0]: every run that started; counters[1]: every run that reached verdict.
        let started = records.iter().filter(|(_, f)| f.len() >= 14).count() as u64;
        let second = records.iter().filter(|(_, f)| f.len() >= 15).count() as u64;
        assert!(
            text.contains(&format!("    00000000 = {}\n", hex_u64(started))),
            "{text}"
        );
        assert!(
            text.contains(&format!("    01000000 = {}\n", hex_u64(second))),
            "{text}"
        );
        // The output capture: same header, same timestamps, frames marked by `entry`.
        let written = std::fs::read(&out).unwrap();
        assert_eq!(written[..24], input[..24]);
        let frames = pcap_records(&written);
        assert_eq!(frames.len(), records.len());
        for ((ts_in, frame_in), (ts_out, frame_out)) in records.iter().zip(&frames) {
            assert_eq!(ts_in, ts_out);
            assert_eq!(frame_in.len(), frame_out.len());
            let ran = !xdp_tail_outcome(frame_in).starts_with('-');
            if ran {
                assert_eq!(frame_out[6], 0xee);
                assert_eq!(frame_in[7..], frame_out[7..]);
            } else {
                assert_eq!(frame_in, frame_out);
            }
        }
        outputs.push(text);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "the interpreter and the JIT disagree"
    );
}

fn hex_u64(v: u64) -> String {
    v.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn test_run_json_maps_and_other_captures() {
    // A big-endian nanosecond capture of two frames: TX and a redirect.
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_3c4du32.to_be_bytes());
    pcap.extend_from_slice(&2u16.to_be_bytes());
    pcap.extend_from_slice(&4u16.to_be_bytes());
    for w in [0u32, 0, 65535, 1] {
        pcap.extend_from_slice(&w.to_be_bytes());
    }
    for code in [2u8, 1] {
        let mut frame = vec![0u8; 60];
        frame[12] = 0x08;
        frame[14] = code;
        for w in [7u32, 999_999_999, 60, 60] {
            pcap.extend_from_slice(&w.to_be_bytes());
        }
        pcap.extend_from_slice(&frame);
    }
    let input = temp_path("test-run-be.pcap");
    let out = temp_path("test-run-be-out.pcap");
    std::fs::write(&input, &pcap).unwrap();
    let object = xdp_tail();
    let o = rbpf(
        &[
            "test-run",
            &object,
            "--program",
            "entry",
            "--pcap",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--map",
            "counters:00000000=0a00000000000000",
            "--repeat",
            "3",
            "--json",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    for part in [
        "\"packets\": 2",
        "\"verdicts\": {\"XDP_REDIRECT\": 1, \"XDP_TX\": 1}",
        "\"redirects\": {\"ifindex 7\": 1}",
        "\"errors\": {}",
        // 10 set by --map, then 2 frames × 3 repetitions.
        "{\"key\": \"00000000\", \"value\": \"1000000000000000\"}",
        "{\"key\": \"01000000\", \"value\": \"0600000000000000\"}",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    let written = std::fs::read(&out).unwrap();
    assert_eq!(written.len(), pcap.len());
    assert_eq!(written[..24], pcap[..24]);
    assert_eq!(written[24..32], pcap[24..32], "timestamps stay big-endian");
    assert_eq!(written[40 + 6], 0xee);

    // A TC program: TC_ACT_* names.
    let o = rbpf(
        &[
            "test-run",
            &object,
            "--program",
            "tc_mark",
            "--pcap",
            input.to_str().unwrap(),
        ],
        b"",
    );
    assert!(stdout(&o).contains("  TC_ACT_OK: 2\n"), "{}", stdout(&o));

    // Usage errors.
    for args in [
        &["test-run"][..],
        &["test-run", &object],
        &["test-run", &object, "--program", "nope"],
        &[
            "test-run",
            &object,
            "--program",
            "entry",
            "--map",
            "counters=00",
        ],
        &[
            "test-run",
            &object,
            "--program",
            "entry",
            "--map",
            "nope:00=00",
        ],
        &["test-run", &object, "--program", "entry", "--repeat", "0"],
        &["test-run", &object, "--program", "entry", "--pcap", &object],
    ] {
        let o = rbpf(args, b"");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
    }
}
