//! The assembler, disassembler and `.data` parser against the bpf_conformance suite:
//! exact encodings of all programs, disassembly round trips, and the malformed inputs of
//! `negative/`.

mod common;

use common::rng::Rng;

use rbpf::asm;
use rbpf::data_file::{DataError, DataFile, Expected};
use rbpf::disasm;
use rbpf::isa;

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_conformance_program_assembles_to_the_reference_bytes() {
    let dir = common::suite_dir();
    let refs = common::references(&dir);
    let files = common::data_files(&dir, "tests");
    assert_eq!(files.len(), 313, "the pinned suite has 313 programs");
    let mut failures = Vec::new();
    for path in &files {
        let key = common::key(&dir, path);
        let reference = refs
            .get(&key)
            .unwrap_or_else(|| panic!("{key} missing from assembled.tsv"));
        let file = match DataFile::parse(&read(path)) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{key}: parse: {e}"));
                continue;
            }
        };
        let insns = match file.program() {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{key}: {e}"));
                continue;
            }
        };
        if isa::encode_slots(&insns) != reference.bytes {
            failures.push(format!("{key}: encoding differs from assembled.tsv"));
        }
        if let Some(raw) = file.raw_program()
            && raw != insns
        {
            failures.push(format!("{key}: -- raw and -- asm disagree"));
        }
        if file.mem_bytes() != reference.mem {
            failures.push(format!("{key}: memory differs from assembled.tsv"));
        }
        let expected = reference.value.trim_start_matches("0x");
        match file.expected() {
            Ok(Expected::Result(r)) if u64::from_str_radix(expected, 16) == Ok(r) => {}
            other => failures.push(format!(
                "{key}: expected {other:?}, assembled.tsv says {}",
                reference.value
            )),
        }
    }
    eprintln!(
        "{} passed, {} failed",
        files.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn disassembly_round_trips_every_conformance_program() {
    let dir = common::suite_dir();
    let refs = common::references(&dir);
    let mut checked = 0;
    for (key, reference) in &refs {
        let insns = isa::decode_slots(&reference.bytes).expect("whole slots");
        let text = disasm::disassemble(&insns);
        let back = asm::assemble_bytes(&text)
            .unwrap_or_else(|e| panic!("{key}: reassembling failed: {e}\n{text}"));
        assert_eq!(back, reference.bytes, "{key}:\n{text}");
        if key.starts_with("tests/") {
            // The suite's own programs use only expressible encodings.
            assert!(!text.contains(".raw"), "{key}:\n{text}");
        }
        checked += 1;
    }
    eprintln!("round-tripped {checked} programs");
    assert_eq!(checked, 358);
}

/// Rejections of malformed assembly, with the reference assembler's message where the file
/// gives one (as a prefix of ours).
#[test]
fn malformed_inputs_in_negative_are_rejected() {
    let dir = common::suite_dir();
    let neg = dir.join("negative");
    let cases: &[(&str, &str)] = &[
        ("empty.data", "no instructions"),
        ("empty_instructions.data", "no instructions"),
        (
            "invalid_imm32_dec_range.data",
            "Immediate out of 32-bit range: 2147483648",
        ),
        (
            "invalid_imm32_hex_range.data",
            "Immediate out of 32-bit range: 0x100000000",
        ),
        ("invalid_label.data", "Invalid label: NOT_A_LABEL"),
        ("invalid_lock.data", "Invalid number of operands for lock"),
        ("invalid_lock2.data", "Invalid number of operands for lock"),
        ("invalid_mnemonic.data", "Invalid mnemonic: ldxq"),
        (
            "invalid_offset.data",
            "Failed to decode register and offset: %r1",
        ),
        (
            "invalid_offset_range.data",
            "Offset out of 16-bit range: +0x10000",
        ),
        (
            "invalid_operand_count.data",
            "Invalid number of operands for mnemonic: lddw",
        ),
        ("invalid_register.data", "Invalid register: %r50"),
        (
            "invalid_unknown_directive.data",
            "line 4: Unknown directive: Unknown directive",
        ),
    ];
    for (name, message) in cases {
        let text = read(&neg.join(name));
        let outcome = DataFile::parse(&text).and_then(|f| f.program().map(|_| f));
        let err = match outcome {
            Ok(_) => panic!("{name} was accepted"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert!(shown.starts_with(message), "{name}: got `{shown}`");
        // Where the file states the reference assembler's message, ours starts with it too.
        if let Ok(DataFile {
            error: Some(expected),
            ..
        }) = DataFile::parse(&text)
            && let DataError::Asm(asm_err) = &err
        {
            assert!(
                asm_err.kind.to_string().starts_with(expected.as_str()),
                "{name}: `{shown}` does not start with `{expected}`"
            );
        }
    }
}

/// `error.data` and `incorrect_return_value_high_bits.data` are runner self-tests: valid
/// programs whose stated outcome is wrong. They must assemble; the engines then disagree with
/// the file (checked by `tests/conformance.rs`).
#[test]
fn runner_self_tests_are_valid_programs() {
    let dir = common::suite_dir();
    let neg = dir.join("negative");
    let file = DataFile::parse(&read(&neg.join("error.data"))).unwrap();
    let prog = file.program().unwrap();
    assert_eq!(
        prog,
        vec![
            isa::Insn::new(0x4f, 0, 10, 0, 0),
            isa::Insn::new(0x95, 0, 0, 0, 0)
        ]
    );
    assert_eq!(file.expected().unwrap(), Expected::Error("Invalid".into()));

    let file = DataFile::parse(&read(&neg.join("incorrect_return_value_high_bits.data"))).unwrap();
    assert_eq!(file.program().unwrap().len(), 2);
    assert_eq!(
        file.expected().unwrap(),
        Expected::Result(0x8977665544332211)
    );
}

/// The `unused-*` files are raw programs (a loader must reject them); the parser reads their
/// byte lines exactly as assembled.tsv records them.
#[test]
fn unused_field_programs_parse_to_the_reference_bytes() {
    let dir = common::suite_dir();
    let refs = common::references(&dir);
    let files: Vec<_> = common::data_files(&dir, "negative")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("unused-"))
        })
        .collect();
    assert_eq!(files.len(), 45);
    for path in files {
        let key = common::key(&dir, &path);
        let file = DataFile::parse(&read(&path)).unwrap_or_else(|e| panic!("{key}: {e}"));
        let prog = file.program().unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(isa::encode_slots(&prog), refs[&key].bytes, "{key}");
        assert_eq!(
            file.expected().unwrap(),
            Expected::Error(String::new()),
            "{key}"
        );
        // The disassembler flags the stray field instead of hiding it.
        assert!(disasm::disassemble(&prog).contains(".raw"), "{key}");
    }
}

/// Any bytecode, valid or not, disassembles to text that reassembles to the same bytes.
#[test]
fn disassembly_of_random_bytecode_is_exact() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let opcodes: Vec<u8> = isa::INSN_TABLE.iter().map(|s| s.opcode).collect();
    for _ in 0..2000 {
        let len = 1 + rng.below(12);
        let insns: Vec<isa::Insn> = (0..len)
            .map(|_| {
                let mut insn = isa::Insn::from_u64(rng.next());
                // Mostly known opcodes with small fields, so labels and lddw pairs occur.
                if rng.below(4) != 0 {
                    insn.opc = opcodes[rng.below(opcodes.len())];
                    insn.off %= 8;
                    if rng.below(2) == 0 {
                        insn.imm %= 8;
                    }
                    if rng.below(2) == 0 {
                        insn.src = 0;
                    }
                }
                insn
            })
            .collect();
        let text = disasm::disassemble(&insns);
        let back = asm::assemble(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, insns, "{text}");
    }
}

/// Garbage in gives an error (or a program), never a panic.
#[test]
fn random_text_never_panics_the_assembler_or_the_parser() {
    let pieces = [
        "mov",
        "lock",
        "fetch",
        "call",
        "local",
        "helper",
        "runtime",
        "lddw",
        "ja",
        "jeq32",
        "%r1",
        "r10",
        "%r99",
        "[",
        "]",
        "[%r1+",
        "[%r2-0x8]",
        "+",
        "-",
        "0x",
        "0xffffffffff",
        "-2147483649",
        "99999999999999999999",
        ",",
        ":",
        "a:",
        "exit",
        "#",
        "--",
        "-- asm",
        "-- raw",
        "-- mem",
        "-- result",
        "\n",
        " ",
        "é",
        "\t",
        "0x18",
        "stxdw",
        ".raw",
    ];
    let mut rng = Rng(42);
    for _ in 0..5000 {
        let n = rng.below(16);
        let text: String = (0..n)
            .map(|_| pieces[rng.below(pieces.len())])
            .collect::<Vec<_>>()
            .join(if rng.below(2) == 0 { " " } else { "" });
        let _ = asm::assemble(&text);
        if let Ok(file) = DataFile::parse(&text) {
            let _ = file.program();
            let _ = file.expected();
        }
    }
}
