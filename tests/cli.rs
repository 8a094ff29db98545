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
    let o = rbpf(&["--help"], b"");
    assert_eq!(o.status.code(), Some(0));
    for word in [
        "rbpf run",
        "rbpf asm",
        "rbpf disasm",
        "rbpf test",
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

    let o = rbpf(&["disasm", "-"], &[0x95, 0, 0]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a multiple of 8"), "{}", stderr(&o));
}

#[test]
fn disasm_of_a_conformance_program_reassembles() {
    let Some(dir) = common::suite_dir() else {
        return;
    };
    let refs = common::references(&dir);
    let reference = &refs["tests/call_local.data"];
    let text = rbpf(&["disasm"], &reference.bytes);
    assert_eq!(text.status.code(), Some(0));
    let back = rbpf(&["asm"], &text.stdout);
    assert_eq!(back.stdout, reference.bytes, "{}", stdout(&text));
}
