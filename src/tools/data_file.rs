//! Parser for `.data` test files (bpf_conformance and uBPF style), shared by the conformance
//! test runner and the `rbpf test` command.
//!
//! A line starting with `--` opens a section; `#` starts a comment anywhere on a line.
//! Recognised sections:
//!
//! | section | content |
//! |---|---|
//! | `asm` | assembly text (see [`crate::tools::asm`]) |
//! | `raw` | one instruction per line: a `0x…` (or decimal) little-endian u64, or 8 hex bytes |
//! | `mem` | input memory as hex bytes over any number of lines; a `offset:` prefix is dropped |
//! | `result` | expected r0, `0x…` hex or decimal (the last non-empty line counts) |
//! | `error` | expected error text (the last non-empty line counts; may be empty) |
//! | `error pattern` | uBPF: a regular expression for the error (kept as text) |
//! | `no jit` | uBPF: the reason the JIT must not run this test |
//! | `no register offset`, `c`, `description` | informational, ignored |
//!
//! Any other section name is an error, as is a section given twice. uBPF's section links
//! (`-- asm @ prog.asm`) are resolved by [`DataFile::read`], which knows the file's folder.
//!
//! ```
//! use rbpf::data_file::{DataFile, Expected};
//! let file = DataFile::parse("-- asm\nmov %r0, 7\nexit\n-- result\n0x7\n").unwrap();
//! assert_eq!(file.program().unwrap().len(), 2);
//! assert_eq!(file.expected().unwrap(), Expected::Result(7));
//! ```

use crate::isa::Insn;
use crate::tools::asm::{self, AsmError};

/// A parsed `.data` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataFile {
    /// The `asm` section text, if present.
    pub asm: Option<String>,
    /// 1-based line number of the `-- asm` header (to report assembler errors by file line).
    pub asm_line: usize,
    /// The `raw` section, one little-endian instruction slot per entry.
    pub raw: Option<Vec<u64>>,
    /// The `mem` section (`None` if absent).
    pub mem: Option<Vec<u8>>,
    /// The expected r0.
    pub result: Option<u64>,
    /// The expected error text (last non-empty line of the section, or empty).
    pub error: Option<String>,
    /// uBPF's `error pattern` section (a regular expression, kept as text).
    pub error_pattern: Option<String>,
    /// uBPF's `no jit` section: why the JIT must not run this program.
    pub no_jit: Option<String>,
    /// The `description` section, if any.
    pub description: Option<String>,
}

/// What a `.data` file expects from running its program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// r0 at exit.
    Result(u64),
    /// The program must be rejected (by the assembler, the loader or at run time); the text
    /// is the reference tool's message, possibly empty.
    Error(String),
    /// uBPF's `error pattern`: the program must be rejected with a message matching this
    /// regular expression.
    ErrorPattern(String),
}

impl Expected {
    /// Judges an outcome against this expectation: `outcome` is r0, or the message of whichever
    /// stage failed (assembler, loader or engine). An expected error passes when the message
    /// contains the expected text (an empty text accepts any failure); a pattern accepts any
    /// failure, as no regular-expression engine is linked. `Err` explains a mismatch.
    pub fn judge(&self, outcome: Result<u64, &str>) -> Result<(), String> {
        match (self, outcome) {
            (Expected::Result(want), Ok(got)) if *want == got => Ok(()),
            (Expected::Result(want), Ok(got)) => Err(format!("expected {want:#x}, got {got:#x}")),
            (Expected::Result(want), Err(e)) => Err(format!("expected {want:#x}, got error: {e}")),
            (Expected::Error(_) | Expected::ErrorPattern(_), Ok(got)) => {
                Err(format!("expected an error, got {got:#x}"))
            }
            (Expected::Error(want), Err(e)) if e.contains(want.as_str()) => Ok(()),
            (Expected::Error(want), Err(e)) => Err(format!("expected error `{want}`, got `{e}`")),
            (Expected::ErrorPattern(_), Err(_)) => Ok(()),
        }
    }
}

/// Why a `.data` file could not be parsed or gives no program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// A `--` line names a section this parser does not know.
    #[error("line {line}: Unknown directive: {name}")]
    UnknownDirective {
        /// 1-based line number.
        line: usize,
        /// The section name as written.
        name: String,
    },
    /// The same section appears twice.
    #[error("line {line}: duplicate section: {name}")]
    DuplicateSection {
        /// 1-based line number.
        line: usize,
        /// The section name.
        name: String,
    },
    /// Non-comment text before the first section.
    #[error("line {line}: text outside any section: {text}")]
    OutsideSection {
        /// 1-based line number.
        line: usize,
        /// The text.
        text: String,
    },
    /// A `raw` line is neither a 64-bit number nor 8 hex bytes.
    #[error("line {line}: invalid raw instruction: {text} (expected 0x… or 8 hex bytes)")]
    BadRaw {
        /// 1-based line number.
        line: usize,
        /// The text.
        text: String,
    },
    /// A `mem` token is not hex bytes.
    #[error("line {line}: invalid memory byte: {text} (expected hex bytes such as `0a ff`)")]
    BadMem {
        /// 1-based line number.
        line: usize,
        /// The token.
        text: String,
    },
    /// The `result` is not a number.
    #[error("line {line}: invalid result: {text} (expected 0x… hex or decimal)")]
    BadResult {
        /// 1-based line number.
        line: usize,
        /// The text.
        text: String,
    },
    /// The file has neither an `asm` nor a `raw` section, or they contain no instructions.
    #[error("no instructions (the file needs a non-empty `-- asm` or `-- raw` section)")]
    NoProgram,
    /// The file has neither a `result` nor an `error` section.
    #[error("no expected outcome (the file needs a `-- result` or `-- error` section)")]
    NoExpectation,
    /// The `asm` section does not assemble (the line is a line of the file).
    #[error("{0}")]
    Asm(AsmError),
    /// A uBPF section link (`-- asm @ prog.asm`) in text parsed without its location.
    #[error("line {line}: section link `{name}` needs the file's location (use DataFile::read)")]
    LinkedSection {
        /// 1-based line number.
        line: usize,
        /// The header as written.
        name: String,
    },
    /// A file (the `.data` file or a linked one) could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The system's reason.
        message: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Asm,
    Raw,
    Mem,
    Result,
    Error,
    ErrorPattern,
    NoJit,
    Description,
    Ignored,
}

fn section_named(name: &str) -> Option<Section> {
    Some(match name {
        "asm" => Section::Asm,
        "raw" => Section::Raw,
        "mem" => Section::Mem,
        "result" => Section::Result,
        "error" => Section::Error,
        "error pattern" => Section::ErrorPattern,
        "no jit" => Section::NoJit,
        "description" => Section::Description,
        "no register offset" | "c" => Section::Ignored,
        _ => return None,
    })
}

fn parse_u64(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    if let Some(neg) = text.strip_prefix('-') {
        return neg
            .parse::<u64>()
            .ok()
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| v.wrapping_neg() as u64);
    }
    text.parse::<u64>().ok()
}

fn parse_raw(text: &str, line: usize) -> Result<u64, DataError> {
    let bad = || DataError::BadRaw {
        line,
        text: text.to_owned(),
    };
    let tokens: Vec<&str> = text.split_whitespace().collect();
    match tokens.as_slice() {
        [one] => parse_u64(one).ok_or_else(bad),
        bytes if bytes.len() == 8 => {
            let mut slot = [0u8; 8];
            for (b, tok) in slot.iter_mut().zip(bytes) {
                if tok.len() > 2 {
                    return Err(bad());
                }
                *b = u8::from_str_radix(tok, 16).map_err(|_| bad())?;
            }
            Ok(u64::from_le_bytes(slot))
        }
        _ => Err(bad()),
    }
}

fn parse_mem_line(text: &str, line: usize, out: &mut Vec<u8>) -> Result<(), DataError> {
    // Hexdump-style offsets (`0010: aa bb`) end at the last colon.
    let bytes = text.rsplit(':').next().unwrap_or(text);
    for tok in bytes.split_whitespace() {
        let tok = tok.strip_prefix("0x").unwrap_or(tok);
        let bad = || DataError::BadMem {
            line,
            text: tok.to_owned(),
        };
        if tok.is_empty() || tok.len() % 2 != 0 || !tok.bytes().all(|b| b.is_ascii_hexdigit()) {
            // A lone digit is one byte (`0` is 0x00), as the reference parsers read it.
            if tok.len() == 1 && tok.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(u8::from_str_radix(tok, 16).map_err(|_| bad())?);
                continue;
            }
            return Err(bad());
        }
        for pair in tok.as_bytes().chunks(2) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            out.push(u8::from_str_radix(pair, 16).map_err(|_| bad())?);
        }
    }
    Ok(())
}

impl DataFile {
    /// Parses the text of a `.data` file.
    pub fn parse(text: &str) -> Result<DataFile, DataError> {
        let mut file = DataFile::default();
        let mut current: Option<Section> = None;
        let mut seen: Vec<Section> = Vec::new();
        let mut asm = String::new();
        let mut raw = Vec::new();
        let mut mem = Vec::new();
        let mut result: Option<(usize, String)> = None;
        let mut texts: [Vec<String>; 3] = Default::default(); // error, error pattern, no jit
        let mut description = Vec::new();

        for (index, full_line) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = full_line.split('#').next().unwrap_or("").trim_end();
            if let Some(header) = line.trim_start().strip_prefix("--") {
                if header.contains(" @ ") {
                    return Err(DataError::LinkedSection {
                        line: line_no,
                        name: header.trim().to_owned(),
                    });
                }
                let name = header.trim().to_ascii_lowercase();
                let section = section_named(&name).ok_or_else(|| DataError::UnknownDirective {
                    line: line_no,
                    name: header.trim().to_owned(),
                })?;
                if section != Section::Ignored && seen.contains(&section) {
                    return Err(DataError::DuplicateSection {
                        line: line_no,
                        name,
                    });
                }
                seen.push(section);
                match section {
                    Section::Asm => {
                        file.asm_line = line_no;
                        file.asm = Some(String::new());
                    }
                    Section::Raw => file.raw = Some(Vec::new()),
                    Section::Mem => file.mem = Some(Vec::new()),
                    Section::Error => file.error = Some(String::new()),
                    _ => {}
                }
                current = Some(section);
                continue;
            }
            let content = line.trim();
            match current {
                None if content.is_empty() => {}
                None => {
                    return Err(DataError::OutsideSection {
                        line: line_no,
                        text: content.to_owned(),
                    });
                }
                Some(Section::Asm) => {
                    // Keep line structure so assembler errors map back to file lines.
                    asm.push_str(line);
                    asm.push('\n');
                }
                Some(_) if content.is_empty() => {}
                Some(Section::Raw) => raw.push(parse_raw(content, line_no)?),
                Some(Section::Mem) => parse_mem_line(content, line_no, &mut mem)?,
                Some(Section::Result) => result = Some((line_no, content.to_owned())),
                Some(Section::Error) => texts[0].push(content.to_owned()),
                Some(Section::ErrorPattern) => texts[1].push(content.to_owned()),
                Some(Section::NoJit) => texts[2].push(content.to_owned()),
                Some(Section::Description) => description.push(content.to_owned()),
                Some(Section::Ignored) => {}
            }
        }

        if file.asm.is_some() {
            file.asm = Some(asm);
        }
        if file.raw.is_some() {
            file.raw = Some(raw);
        }
        if file.mem.is_some() {
            file.mem = Some(mem);
        }
        if let Some((line, text)) = result {
            file.result = Some(parse_u64(&text).ok_or(DataError::BadResult { line, text })?);
        }
        let [error, pattern, no_jit] = texts;
        if let Some(last) = error.last() {
            file.error = Some(last.clone());
        }
        if seen.contains(&Section::ErrorPattern) {
            file.error_pattern = Some(pattern.join("\n"));
        }
        if seen.contains(&Section::NoJit) {
            file.no_jit = Some(no_jit.join("\n"));
        }
        if seen.contains(&Section::Description) {
            file.description = Some(description.join("\n"));
        }
        Ok(file)
    }

    /// Reads and parses a `.data` file, resolving uBPF's section links (`-- asm @ prog.asm`,
    /// `-- mem @ packet.hex`) relative to the file's folder. A linked file's text is inlined
    /// after its header, so line numbers in later errors count the inlined lines.
    pub fn read(path: &std::path::Path) -> Result<DataFile, DataError> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| DataError::Io {
                path: p.display().to_string(),
                message: e.to_string(),
            })
        };
        let text = read(path)?;
        let base = path.parent().unwrap_or(std::path::Path::new(""));
        let mut expanded = String::with_capacity(text.len());
        for line in text.lines() {
            let header = line
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .strip_prefix("--");
            match header.and_then(|h| h.split_once(" @ ")) {
                Some((name, linked)) => {
                    expanded.push_str("-- ");
                    expanded.push_str(name.trim());
                    expanded.push('\n');
                    expanded.push_str(&read(&base.join(linked.trim()))?);
                    expanded.push('\n');
                }
                None => {
                    expanded.push_str(line);
                    expanded.push('\n');
                }
            }
        }
        Self::parse(&expanded)
    }

    /// The program: the assembled `asm` section if there is one, else the `raw` section.
    /// Fails when the assembly is invalid or there are no instructions at all.
    pub fn program(&self) -> Result<Vec<Insn>, DataError> {
        let insns = match (&self.asm, &self.raw) {
            (Some(text), _) => asm::assemble(text).map_err(|mut e| {
                e.line += self.asm_line;
                DataError::Asm(e)
            })?,
            (None, Some(raw)) => raw.iter().map(|&v| Insn::from_u64(v)).collect(),
            (None, None) => Vec::new(),
        };
        if insns.is_empty() {
            return Err(DataError::NoProgram);
        }
        Ok(insns)
    }

    /// The `raw` section decoded, if present.
    pub fn raw_program(&self) -> Option<Vec<Insn>> {
        self.raw
            .as_ref()
            .map(|raw| raw.iter().map(|&v| Insn::from_u64(v)).collect())
    }

    /// The expected outcome: an `error` (or `error pattern`) section wins over a `result`.
    pub fn expected(&self) -> Result<Expected, DataError> {
        if let Some(error) = &self.error {
            return Ok(Expected::Error(error.clone()));
        }
        if let Some(pattern) = &self.error_pattern {
            return Ok(Expected::ErrorPattern(pattern.clone()));
        }
        self.result
            .map(Expected::Result)
            .ok_or(DataError::NoExpectation)
    }

    /// The input memory (empty when the file has no `mem` section).
    pub fn mem_bytes(&self) -> Vec<u8> {
        self.mem.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_comments() {
        let text = "# header\n-- asm\nmov %r0, 1 # one\nexit\n-- mem\n00: 0a 0b\n10: ff\n\
                    -- result\n0x10\n# trailing\n-- no register offset\ncall instruction\n";
        let file = DataFile::parse(text).unwrap();
        assert_eq!(file.mem, Some(vec![0x0a, 0x0b, 0xff]));
        assert_eq!(file.result, Some(0x10));
        assert_eq!(file.asm_line, 2);
        assert_eq!(file.program().unwrap().len(), 2);
        assert_eq!(file.expected().unwrap(), Expected::Result(0x10));
    }

    #[test]
    fn raw_accepts_u64_and_byte_lines() {
        let file =
            DataFile::parse("-- raw\n0x0000000000000095\n07 00 01 00 01 00 00 00\n149\n").unwrap();
        let prog = file.program().unwrap();
        assert_eq!(prog[0], Insn::new(0x95, 0, 0, 0, 0));
        assert_eq!(prog[1], Insn::new(0x07, 0, 0, 1, 1));
        assert_eq!(prog[2].opc, 0x95);
        assert!(matches!(
            DataFile::parse("-- raw\n07 00 01\n"),
            Err(DataError::BadRaw { line: 2, .. })
        ));
        assert!(matches!(
            DataFile::parse("-- raw\n0xzz\n"),
            Err(DataError::BadRaw { .. })
        ));
    }

    #[test]
    fn results_and_errors() {
        let file = DataFile::parse("-- asm\nexit\n-- result\n42\n").unwrap();
        assert_eq!(file.result, Some(42));
        let file = DataFile::parse("-- asm\nexit\n-- result\n-1\n").unwrap();
        assert_eq!(file.result, Some(u64::MAX));
        assert!(matches!(
            DataFile::parse("-- result\nfoo\n"),
            Err(DataError::BadResult { line: 2, .. })
        ));
        let file = DataFile::parse("-- raw\n0x95\n-- error\nfirst\nsecond\n").unwrap();
        assert_eq!(file.expected().unwrap(), Expected::Error("second".into()));
        let file = DataFile::parse("-- raw\n0x95\n-- error\n").unwrap();
        assert_eq!(file.expected().unwrap(), Expected::Error(String::new()));
        let file = DataFile::parse("-- raw\n0x95\n").unwrap();
        assert_eq!(file.expected(), Err(DataError::NoExpectation));
    }

    #[test]
    fn judging_outcomes() {
        let r = Expected::Result(3);
        assert_eq!(r.judge(Ok(3)), Ok(()));
        assert_eq!(r.judge(Ok(4)), Err("expected 0x3, got 0x4".into()));
        assert!(r.judge(Err("boom")).is_err());
        let e = Expected::Error("Invalid register".into());
        assert!(e.judge(Ok(0)).is_err());
        assert_eq!(e.judge(Err("Invalid register: %r50 at line 1")), Ok(()));
        assert!(e.judge(Err("Invalid mnemonic: x")).is_err());
        assert_eq!(
            Expected::Error(String::new()).judge(Err("anything")),
            Ok(())
        );
        assert_eq!(
            Expected::ErrorPattern("a.*b".into()).judge(Err("x")),
            Ok(())
        );
    }

    #[test]
    fn rejections() {
        assert!(matches!(
            DataFile::parse("-- asm\n-- Unknown directive\n"),
            Err(DataError::UnknownDirective { line: 2, .. })
        ));
        assert!(matches!(
            DataFile::parse("-- asm\nexit\n-- asm\nexit\n"),
            Err(DataError::DuplicateSection { line: 3, .. })
        ));
        assert!(matches!(
            DataFile::parse("exit\n"),
            Err(DataError::OutsideSection { line: 1, .. })
        ));
        assert!(matches!(
            DataFile::parse("-- mem\n0g\n"),
            Err(DataError::BadMem { .. })
        ));
        assert_eq!(
            DataFile::parse("# nothing\n").unwrap().program(),
            Err(DataError::NoProgram)
        );
        assert_eq!(
            DataFile::parse("-- asm\n# only a comment\n-- result\n0\n")
                .unwrap()
                .program(),
            Err(DataError::NoProgram)
        );
    }

    #[test]
    fn section_links_resolve_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("rbpf-data-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("prog.asm"), "ldxb %r0, [%r1+1]\nexit\n").unwrap();
        std::fs::write(dir.join("pkt.hex"), "0000: 0a 0b\n0002: 0c\n").unwrap();
        let data = dir.join("t.data");
        std::fs::write(
            &data,
            "-- asm @ prog.asm\n-- mem @ pkt.hex\n-- result\n0xb\n",
        )
        .unwrap();
        let file = DataFile::read(&data).unwrap();
        assert_eq!(file.program().unwrap().len(), 2);
        assert_eq!(file.mem, Some(vec![0x0a, 0x0b, 0x0c]));
        assert!(matches!(
            DataFile::parse("-- asm @ prog.asm\n"),
            Err(DataError::LinkedSection { line: 1, .. })
        ));
        std::fs::write(&data, "-- asm @ missing.asm\n").unwrap();
        assert!(matches!(DataFile::read(&data), Err(DataError::Io { .. })));
        assert!(matches!(
            DataFile::read(&dir.join("nope.data")),
            Err(DataError::Io { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn assembler_errors_carry_file_lines() {
        let file = DataFile::parse("# c\n-- asm\nmov %r0, 1\nor %r0, %r50\n").unwrap();
        match file.program() {
            Err(DataError::Asm(e)) => assert_eq!(e.line, 4),
            other => panic!("{other:?}"),
        }
    }
}
