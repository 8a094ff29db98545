//! Text assembler for eBPF.
//!
//! Accepts the syntax of the bpf_conformance suite (`mov %r0, 1`, `ldxdw %r0, [%r1+2]`,
//! `lock fetch add [%r10-8], %r1`, `call local f`, `ja label`) and rbpf's spelling of the same
//! instructions (`mov64 r1, 0x605`, `add32 r1, r2`, `neg64 r2`, registers without `%`).
//! Mnemonics are looked up in [`isa::INSN_TABLE`], so every instruction the table knows can be
//! assembled.
//!
//! The numeric rules are the conformance assembler's:
//! - `mov`, `add`, … are 64-bit; the `…32` forms are 32-bit (`mov64`/`add64` are accepted too);
//! - a 32-bit immediate written in hex is unsigned and at most `0xffffffff` (so `0xffffffff`
//!   is −1), a decimal one must fit in `i32`;
//! - an offset must fit in `i16` (hex up to `0xffff` is reinterpreted as `i16`);
//! - a jump target starting with `+` or `-` is a relative offset, anything else is a label;
//! - a label resolves to `label_slot − insn_slot − 1`, `lddw` counting two slots;
//! - the first `exit` instruction defines an implicit label `exit` (unless one is declared).
//!
//! It is more tolerant than the reference where that costs nothing: commas may be written with
//! or without spaces, memory operands may contain spaces (`[%r1 + 2]`), and an instruction may
//! follow a label on the same line (`done: exit`).
//!
//! One extension: `.raw 0x…` emits one slot given as its little-endian 64-bit value. The
//! disassembler uses it for slots the syntax cannot express (unknown opcodes, non-zero unused
//! fields), so that disassembling and reassembling any bytecode is exact.
//!
//! ```
//! use rbpf::asm::assemble;
//! let prog = assemble("mov %r0, 1\nadd32 r0, 2\nexit").unwrap();
//! assert_eq!(prog.len(), 3);
//! assert_eq!(prog[1].opc, 0x04);
//! ```

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use alloc::collections::BTreeMap as HashMap;
use core::fmt;

use crate::isa::{self, Insn, InsnSpec, Operands, Variant, call_kind, class, op};

/// Why a source text could not be assembled, and where (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at line {line}, column {column}")]
pub struct AsmError {
    /// 1-based line number in the source text.
    pub line: usize,
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
    /// What went wrong.
    pub kind: AsmErrorKind,
}

/// The kinds of assembly errors. The leading words of each message are those of the
/// bpf_conformance assembler, so expected-error texts of the suite match as prefixes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsmErrorKind {
    /// The mnemonic is not an instruction.
    #[error("Invalid mnemonic: {0}")]
    InvalidMnemonic(String),
    /// A register operand is not `%r0`..`%r15` (or `r0`..`r15`).
    #[error("Invalid register: {0} (expected %r0 to %r15)")]
    InvalidRegister(String),
    /// A jump or call names a label that is not defined.
    #[error("Invalid label: {0}")]
    InvalidLabel(String),
    /// The same label is defined twice.
    #[error(
        "Duplicate label ({name}) detected at line {line} (previous declaration at line {previous})"
    )]
    DuplicateLabel {
        /// The label.
        name: String,
        /// The line of the second definition.
        line: usize,
        /// The line of the first definition.
        previous: usize,
    },
    /// A 32-bit immediate does not fit.
    #[error("Immediate out of 32-bit range: {0} (expected a decimal i32 or hex up to 0xffffffff)")]
    ImmediateOutOfRange(String),
    /// A 64-bit immediate does not fit.
    #[error("Immediate out of 64-bit range: {0}")]
    Immediate64OutOfRange(String),
    /// An offset does not fit in 16 bits.
    #[error("Offset out of 16-bit range: {0} (expected -32768..32767 or hex up to 0xffff)")]
    OffsetOutOfRange(String),
    /// A label is too far away for the jump's offset field.
    #[error("Jump to label {label} out of range: offset {distance} does not fit in {bits} bits")]
    JumpOutOfRange {
        /// The label.
        label: String,
        /// The offset that would be needed.
        distance: i64,
        /// The width of the offset field.
        bits: u32,
    },
    /// A number could not be parsed at all.
    #[error("Invalid number: {0} (expected decimal or 0x-prefixed hex)")]
    InvalidNumber(String),
    /// The instruction has the wrong number of operands.
    #[error(
        "Invalid number of operands for mnemonic: {mnemonic} (expected {expected}, found {found})"
    )]
    OperandCount {
        /// The mnemonic.
        mnemonic: String,
        /// The expected operands, spelled out.
        expected: &'static str,
        /// How many operands were given.
        found: usize,
    },
    /// A `lock` instruction without an operation or without its two operands.
    #[error("Invalid number of operands for lock (expected lock [fetch] OP [%rD+off], %rS)")]
    LockOperands,
    /// A memory operand is malformed (not `[%rN]`, `[%rN+off]` or `[%rN-off]`).
    #[error("Failed to decode register and offset: {0} (expected [%rN+off])")]
    BadMemoryOperand(String),
    /// `call` with an unknown mode word.
    #[error(
        "Invalid call mode: {0} (expected call IMM, call local LABEL, call runtime IMM or call %rN)"
    )]
    InvalidCallMode(String),
    /// A `[` without its `]`.
    #[error("Unterminated memory operand: {0}")]
    UnterminatedBracket(String),
}

/// Assembles `text` into instruction slots (an `lddw` gives two).
///
/// Comments start with `#` or `;`. An empty text (or one with only comments and labels) gives
/// an empty program.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    Assembler::default().run(text)
}

/// Assembles `text` into little-endian bytecode, 8 bytes per slot.
pub fn assemble_bytes(text: &str) -> Result<Vec<u8>, AsmError> {
    assemble(text).map(|insns| isa::encode_slots(&insns))
}

/// A token of one source line, with its 1-based column.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    column: usize,
    /// A bracketed memory operand; `text` is then the inside, without the brackets.
    memory: bool,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.memory {
            write!(f, "[{}]", self.text)
        } else {
            f.write_str(self.text)
        }
    }
}

/// Which field a pending label reference patches.
#[derive(Debug, Clone, Copy)]
enum Field {
    Off,
    Imm,
}

/// A label use waiting for all labels to be known.
#[derive(Debug)]
struct Fixup {
    slot: usize,
    field: Field,
    label: String,
    line: usize,
    column: usize,
}

#[derive(Debug, Default)]
struct Assembler {
    insns: Vec<Insn>,
    /// label → (slot, line of definition)
    labels: HashMap<String, (usize, usize)>,
    fixups: Vec<Fixup>,
    first_exit: Option<usize>,
}

/// Splits a line (comment already removed) into tokens. Commas separate operands and are
/// dropped; a `[ … ]` group is one token even if it contains spaces.
fn tokenize(line: &str, line_no: usize) -> Result<Vec<Token<'_>>, AsmError> {
    let mut tokens = Vec::new();
    let mut chars = line.char_indices().enumerate().peekable();
    while let Some(&(col, (start, c))) = chars.peek() {
        let column = col + 1;
        if c.is_whitespace() || c == ',' {
            chars.next();
            continue;
        }
        if c == '[' {
            chars.next();
            let inner_start = start + 1;
            let mut end = None;
            for (_, (i, ch)) in chars.by_ref() {
                if ch == ']' {
                    end = Some(i);
                    break;
                }
            }
            let Some(end) = end else {
                return Err(AsmError {
                    line: line_no,
                    column,
                    kind: AsmErrorKind::UnterminatedBracket(line[start..].trim().to_owned()),
                });
            };
            tokens.push(Token {
                text: &line[inner_start..end],
                column,
                memory: true,
            });
            continue;
        }
        let mut end = line.len();
        while let Some(&(_, (i, ch))) = chars.peek() {
            if ch.is_whitespace() || ch == ',' || ch == '[' {
                end = i;
                break;
            }
            chars.next();
        }
        tokens.push(Token {
            text: &line[start..end],
            column,
            memory: false,
        });
    }
    Ok(tokens)
}

/// The operands a form expects, spelled out for error messages.
fn describe(form: Operands) -> &'static str {
    match form {
        Operands::None => "no operands",
        Operands::Dst => "1 operand: %rD",
        Operands::DstSrc | Operands::DstImm => "2 operands: %rD, %rS or imm32",
        Operands::DstImm64 => "2 operands: %rD, imm64",
        Operands::DstMem => "2 operands: %rD, [%rS+off]",
        Operands::MemImm => "2 operands: [%rD+off], imm32",
        Operands::MemSrc => "2 operands: [%rD+off], %rS",
        Operands::Jump | Operands::Jump32 => "1 operand: +off, -off or label",
        Operands::CondImm | Operands::CondReg => "3 operands: %rD, %rS or imm32, +off or label",
        Operands::CallImm => "1 operand: imm32",
        Operands::CallLocal => "1 operand: label, +off or -off",
        Operands::CallReg => "1 operand: %rN",
        Operands::PacketAbs => "1 operand: imm32",
        Operands::PacketInd => "2 operands: %rS, imm32",
    }
}

fn operand_count(form: Operands) -> usize {
    match form {
        Operands::None => 0,
        Operands::Dst
        | Operands::Jump
        | Operands::Jump32
        | Operands::CallImm
        | Operands::CallLocal
        | Operands::CallReg
        | Operands::PacketAbs => 1,
        Operands::DstSrc
        | Operands::DstImm
        | Operands::DstImm64
        | Operands::DstMem
        | Operands::MemImm
        | Operands::MemSrc
        | Operands::PacketInd => 2,
        Operands::CondImm | Operands::CondReg => 3,
    }
}

/// Whether a token is meant as a register (`%…` or `r` followed by digits).
fn looks_like_register(text: &str) -> bool {
    text.starts_with('%')
        || text
            .strip_prefix(['r', 'R'])
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses an unsigned magnitude written in decimal or `0x` hex; `None` on syntax errors,
/// `Some(None)` on overflow. The flag tells whether it was hex.
fn parse_magnitude(digits: &str) -> Option<(Option<u64>, bool)> {
    let (body, radix) = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => (hex, 16),
        None => (digits, 10),
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some((u64::from_str_radix(body, radix).ok(), radix == 16))
}

/// Splits a leading sign off a number token: (negative, rest).
fn split_sign(text: &str) -> (bool, &str) {
    if let Some(rest) = text.strip_prefix('-') {
        (true, rest)
    } else {
        (false, text.strip_prefix('+').unwrap_or(text))
    }
}

/// A line's context for building errors.
#[derive(Clone, Copy)]
struct Ctx {
    line: usize,
}

impl Ctx {
    fn err(self, column: usize, kind: AsmErrorKind) -> AsmError {
        AsmError {
            line: self.line,
            column,
            kind,
        }
    }

    fn register(self, tok: &Token<'_>) -> Result<u8, AsmError> {
        let text = tok.text.trim().to_ascii_lowercase();
        let bad = || self.err(tok.column, AsmErrorKind::InvalidRegister(tok.to_string()));
        if tok.memory {
            return Err(bad());
        }
        let digits = text
            .strip_prefix("%r")
            .or_else(|| text.strip_prefix('r'))
            .ok_or_else(bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 2 {
            return Err(bad());
        }
        match digits.parse::<u8>() {
            Ok(n) if n <= 15 => Ok(n),
            _ => Err(bad()),
        }
    }

    /// A 32-bit immediate: hex ≤ 0xffffffff (unsigned), or decimal in the i32 range.
    fn imm32(self, tok: &Token<'_>) -> Result<i32, AsmError> {
        let text = tok.text;
        let (negative, digits) = split_sign(text);
        let (magnitude, hex) = parse_magnitude(digits)
            .ok_or_else(|| self.err(tok.column, AsmErrorKind::InvalidNumber(tok.to_string())))?;
        let range = || {
            self.err(
                tok.column,
                AsmErrorKind::ImmediateOutOfRange(text.to_owned()),
            )
        };
        let magnitude = i64::try_from(magnitude.ok_or_else(range)?).map_err(|_| range())?;
        let value = match (hex, negative) {
            (true, false) => u32::try_from(magnitude).map(|v| v as i32).ok(),
            (_, true) => i32::try_from(-magnitude).ok(),
            (false, false) => i32::try_from(magnitude).ok(),
        };
        value.ok_or_else(range)
    }

    /// A 16-bit offset: decimal in the i16 range, or hex ≤ 0xffff reinterpreted as i16.
    fn offset(self, text: &str, column: usize) -> Result<i16, AsmError> {
        let (negative, digits) = split_sign(text);
        let (magnitude, hex) = parse_magnitude(digits)
            .ok_or_else(|| self.err(column, AsmErrorKind::InvalidNumber(text.to_owned())))?;
        let range = || self.err(column, AsmErrorKind::OffsetOutOfRange(text.to_owned()));
        let magnitude = i64::try_from(magnitude.ok_or_else(range)?).map_err(|_| range())?;
        let value = match (hex, negative) {
            (true, false) => u16::try_from(magnitude).map(|v| v as i16).ok(),
            (_, true) => i16::try_from(-magnitude).ok(),
            (false, false) => i16::try_from(magnitude).ok(),
        };
        value.ok_or_else(range)
    }

    /// A 64-bit immediate: hex (unsigned), negative decimal (i64) or unsigned decimal.
    fn imm64(self, tok: &Token<'_>) -> Result<u64, AsmError> {
        let text = tok.text;
        let (negative, digits) = split_sign(text);
        let (magnitude, _) = parse_magnitude(digits)
            .ok_or_else(|| self.err(tok.column, AsmErrorKind::InvalidNumber(text.to_owned())))?;
        let range = || {
            self.err(
                tok.column,
                AsmErrorKind::Immediate64OutOfRange(text.to_owned()),
            )
        };
        let magnitude = magnitude.ok_or_else(range)?;
        if negative {
            let value = i128::from(magnitude);
            i64::try_from(-value).map(|v| v as u64).map_err(|_| range())
        } else {
            Ok(magnitude)
        }
    }

    /// A `[%rN±off]` operand.
    fn memory(self, tok: &Token<'_>) -> Result<(u8, i16), AsmError> {
        let bad = || self.err(tok.column, AsmErrorKind::BadMemoryOperand(tok.to_string()));
        if !tok.memory {
            return Err(bad());
        }
        let inner: String = tok.text.chars().filter(|c| !c.is_whitespace()).collect();
        let split = inner.find(['+', '-']).unwrap_or(inner.len());
        let (reg, off) = inner.split_at(split);
        if reg.is_empty() {
            return Err(bad());
        }
        let reg_tok = Token {
            text: reg,
            column: tok.column + 1,
            memory: false,
        };
        let reg = self.register(&reg_tok)?;
        let off = if off.is_empty() {
            0
        } else {
            self.offset(off, tok.column)?
        };
        Ok((reg, off))
    }
}

/// The table rows an assembly mnemonic may stand for, accepting rbpf's spellings.
fn lookup(mnemonic: &str) -> Vec<&'static InsnSpec> {
    let find = |name: &str| -> Vec<&'static InsnSpec> { isa::specs_named(name).collect() };
    let rows = find(mnemonic);
    if !rows.is_empty() {
        return rows;
    }
    // `swap16` is the suite's other name for `bswap16`.
    if let Some(width) = mnemonic.strip_prefix("swap") {
        let rows = find(&format!("bswap{width}"));
        if !rows.is_empty() {
            return rows;
        }
    }
    // rbpf writes the 64-bit ALU forms with a `64` suffix (`add64`, `neg64`, `mov64`).
    if let Some(base) = mnemonic.strip_suffix("64") {
        let rows: Vec<_> = find(base)
            .into_iter()
            .filter(|s| s.opcode & class::MASK == class::ALU64)
            .collect();
        if !rows.is_empty() {
            return rows;
        }
    }
    Vec::new()
}

impl Assembler {
    fn run(mut self, text: &str) -> Result<Vec<Insn>, AsmError> {
        for (index, raw_line) in text.lines().enumerate() {
            let line_no = index + 1;
            // `#` (bpf_conformance) and `;` (rbpf, llvm-objdump) start a comment.
            let line = raw_line.split(['#', ';']).next().unwrap_or("");
            let tokens = tokenize(line, line_no)?;
            self.line(&tokens, Ctx { line: line_no })?;
        }
        if let Some(slot) = self.first_exit {
            self.labels.entry("exit".to_owned()).or_insert((slot, 0));
        }
        self.resolve()?;
        Ok(self.insns)
    }

    fn line(&mut self, mut tokens: &[Token<'_>], ctx: Ctx) -> Result<(), AsmError> {
        // Leading `name:` tokens define labels at the current slot.
        while let Some((first, rest)) = tokens.split_first() {
            let Some(name) = first.text.strip_suffix(':').filter(|_| !first.memory) else {
                break;
            };
            if name.is_empty() {
                return Err(ctx.err(
                    first.column,
                    AsmErrorKind::InvalidLabel(first.text.to_owned()),
                ));
            }
            if let Some(&(_, previous)) = self.labels.get(name) {
                return Err(ctx.err(
                    first.column,
                    AsmErrorKind::DuplicateLabel {
                        name: name.to_owned(),
                        line: ctx.line,
                        previous,
                    },
                ));
            }
            self.labels
                .insert(name.to_owned(), (self.insns.len(), ctx.line));
            tokens = rest;
        }
        let Some((first, operands)) = tokens.split_first() else {
            return Ok(());
        };
        if first.memory {
            return Err(ctx.err(
                first.column,
                AsmErrorKind::InvalidMnemonic(first.to_string()),
            ));
        }
        let mnemonic = first.text.to_ascii_lowercase();
        match mnemonic.as_str() {
            ".raw" => {
                let [value] = operands else {
                    return Err(ctx.err(
                        first.column,
                        AsmErrorKind::OperandCount {
                            mnemonic: ".raw".to_owned(),
                            expected: "1 operand: a 64-bit slot value",
                            found: operands.len(),
                        },
                    ));
                };
                let value = ctx.imm64(value)?;
                self.insns.push(Insn::from_u64(value));
                Ok(())
            }
            "lock" => self.lock(first, operands, ctx),
            "call" => self.call(first, operands, ctx),
            _ => {
                let rows = lookup(&mnemonic);
                if rows.is_empty() {
                    return Err(ctx.err(
                        first.column,
                        AsmErrorKind::InvalidMnemonic(first.text.to_owned()),
                    ));
                }
                self.instruction(first, &rows, operands, ctx)
            }
        }
    }

    /// `lock [fetch] OP[32] [%rD±off], %rS`
    fn lock(&mut self, first: &Token<'_>, rest: &[Token<'_>], ctx: Ctx) -> Result<(), AsmError> {
        let mut words = vec!["lock".to_owned()];
        let mut rest = rest;
        while let Some((tok, tail)) = rest.split_first() {
            if tok.memory || looks_like_register(tok.text) {
                break;
            }
            words.push(tok.text.to_ascii_lowercase());
            rest = tail;
        }
        if words.len() < 2 || rest.len() != 2 {
            return Err(ctx.err(first.column, AsmErrorKind::LockOperands));
        }
        let mnemonic = words.join(" ");
        let rows = lookup(&mnemonic);
        if rows.is_empty() {
            return Err(ctx.err(first.column, AsmErrorKind::InvalidMnemonic(mnemonic)));
        }
        self.instruction(first, &rows, rest, ctx)
    }

    /// `call IMM`, `call helper IMM`, `call helper %rN`, `call %rN`, `call local TARGET`,
    /// `call runtime IMM`.
    fn call(&mut self, first: &Token<'_>, rest: &[Token<'_>], ctx: Ctx) -> Result<(), AsmError> {
        let mode = rest.first().map(|t| t.text.to_ascii_lowercase());
        let (name, operands) = match mode.as_deref() {
            Some("local") => ("call local", &rest[1..]),
            Some("helper") => {
                let operands = &rest[1..];
                match operands.first() {
                    Some(t) if looks_like_register(t.text) => ("callx", operands),
                    _ => ("call", operands),
                }
            }
            Some("runtime") => {
                let operands = &rest[1..];
                let [imm] = operands else {
                    return Err(ctx.err(
                        first.column,
                        AsmErrorKind::OperandCount {
                            mnemonic: "call runtime".to_owned(),
                            expected: "1 operand: imm32",
                            found: operands.len(),
                        },
                    ));
                };
                let imm = ctx.imm32(imm)?;
                self.insns
                    .push(Insn::new(op::CALL, 0, call_kind::BTF, 0, imm));
                return Ok(());
            }
            Some(word)
                if rest.len() > 1
                    && !looks_like_register(word)
                    && parse_magnitude(split_sign(word).1).is_none() =>
            {
                return Err(ctx.err(
                    rest[0].column,
                    AsmErrorKind::InvalidCallMode(rest[0].text.to_owned()),
                ));
            }
            Some(word) if looks_like_register(word) => ("callx", rest),
            _ => ("call", rest),
        };
        let rows = lookup(name);
        self.instruction(first, &rows, operands, ctx)
    }

    /// Encodes one instruction given the candidate rows of its mnemonic.
    fn instruction(
        &mut self,
        first: &Token<'_>,
        rows: &[&'static InsnSpec],
        operands: &[Token<'_>],
        ctx: Ctx,
    ) -> Result<(), AsmError> {
        let Some(&default) = rows.first() else {
            return Err(ctx.err(
                first.column,
                AsmErrorKind::InvalidMnemonic(first.text.to_owned()),
            ));
        };
        let expected = operand_count(default.operands);
        if operands.len() != expected {
            return Err(ctx.err(
                first.column,
                AsmErrorKind::OperandCount {
                    mnemonic: default.mnemonic.to_owned(),
                    expected: describe(default.operands),
                    found: operands.len(),
                },
            ));
        }
        // Rows sharing a mnemonic differ in whether the second operand is a register.
        let second_is_reg = operands
            .get(1)
            .is_some_and(|t| !t.memory && looks_like_register(t.text));
        let spec = rows
            .iter()
            .copied()
            .find(|s| matches!(s.operands, Operands::DstSrc | Operands::CondReg) == second_is_reg)
            .filter(|_| rows.len() > 1)
            .unwrap_or(default);

        let mut insn = Insn::new(spec.opcode, 0, 0, 0, 0);
        let slot = self.insns.len();
        let mut second_slot = None;
        match (spec.operands, operands) {
            (Operands::None, []) => {
                if spec.opcode == op::EXIT && self.first_exit.is_none() {
                    self.first_exit = Some(slot);
                }
            }
            (Operands::Dst | Operands::CallReg, [d]) => insn.dst = ctx.register(d)?,
            (Operands::DstSrc, [d, s]) => {
                insn.dst = ctx.register(d)?;
                insn.src = ctx.register(s)?;
            }
            (Operands::DstImm, [d, i]) => {
                insn.dst = ctx.register(d)?;
                insn.imm = ctx.imm32(i)?;
            }
            (Operands::DstImm64, [d, i]) => {
                insn.dst = ctx.register(d)?;
                let value = ctx.imm64(i)?;
                insn.imm = value as u32 as i32;
                second_slot = Some(Insn::new(0, 0, 0, 0, (value >> 32) as u32 as i32));
            }
            (Operands::DstMem, [d, m]) => {
                insn.dst = ctx.register(d)?;
                (insn.src, insn.off) = ctx.memory(m)?;
            }
            (Operands::MemImm, [m, i]) => {
                (insn.dst, insn.off) = ctx.memory(m)?;
                insn.imm = ctx.imm32(i)?;
            }
            (Operands::MemSrc, [m, s]) => {
                (insn.dst, insn.off) = ctx.memory(m)?;
                insn.src = ctx.register(s)?;
            }
            (Operands::Jump, [t]) => insn.off = self.target16(t, slot, ctx)?,
            (Operands::Jump32 | Operands::CallLocal, [t]) => {
                insn.imm = self.target32(t, slot, ctx)?;
            }
            (Operands::CondImm, [d, i, t]) => {
                insn.dst = ctx.register(d)?;
                insn.imm = ctx.imm32(i)?;
                insn.off = self.target16(t, slot, ctx)?;
            }
            (Operands::CondReg, [d, s, t]) => {
                insn.dst = ctx.register(d)?;
                insn.src = ctx.register(s)?;
                insn.off = self.target16(t, slot, ctx)?;
            }
            (Operands::CallImm | Operands::PacketAbs, [i]) => insn.imm = ctx.imm32(i)?,
            (Operands::PacketInd, [s, i]) => {
                insn.src = ctx.register(s)?;
                insn.imm = ctx.imm32(i)?;
            }
            _ => {
                return Err(ctx.err(
                    first.column,
                    AsmErrorKind::OperandCount {
                        mnemonic: spec.mnemonic.to_owned(),
                        expected: describe(spec.operands),
                        found: operands.len(),
                    },
                ));
            }
        }
        match spec.variant {
            Variant::Any => {}
            Variant::Off(off) => insn.off = off,
            Variant::Imm(imm) => insn.imm = imm,
            Variant::Src(src) => insn.src = src,
        }
        self.insns.push(insn);
        if let Some(second) = second_slot {
            self.insns.push(second);
        }
        Ok(())
    }

    /// A 16-bit jump target: `+N`/`-N`, or a label resolved later.
    fn target16(&mut self, tok: &Token<'_>, slot: usize, ctx: Ctx) -> Result<i16, AsmError> {
        if tok.text.starts_with(['+', '-']) {
            return ctx.offset(tok.text, tok.column);
        }
        self.label_use(tok, slot, Field::Off, ctx)?;
        Ok(0)
    }

    /// A 32-bit jump or call target: `+N`/`-N`, or a label resolved later.
    fn target32(&mut self, tok: &Token<'_>, slot: usize, ctx: Ctx) -> Result<i32, AsmError> {
        if tok.text.starts_with(['+', '-']) {
            return ctx.imm32(tok);
        }
        self.label_use(tok, slot, Field::Imm, ctx)?;
        Ok(0)
    }

    fn label_use(
        &mut self,
        tok: &Token<'_>,
        slot: usize,
        field: Field,
        ctx: Ctx,
    ) -> Result<(), AsmError> {
        if tok.memory || tok.text.is_empty() {
            return Err(ctx.err(tok.column, AsmErrorKind::InvalidLabel(tok.to_string())));
        }
        self.fixups.push(Fixup {
            slot,
            field,
            label: tok.text.to_owned(),
            line: ctx.line,
            column: tok.column,
        });
        Ok(())
    }

    fn resolve(&mut self) -> Result<(), AsmError> {
        for fixup in &self.fixups {
            let err = |kind| AsmError {
                line: fixup.line,
                column: fixup.column,
                kind,
            };
            let &(target, _) = self
                .labels
                .get(&fixup.label)
                .ok_or_else(|| err(AsmErrorKind::InvalidLabel(fixup.label.clone())))?;
            // Slot counts are bounded by the text length, far below i64::MAX.
            let distance = target as i64 - fixup.slot as i64 - 1;
            let out_of_range = |bits| {
                err(AsmErrorKind::JumpOutOfRange {
                    label: fixup.label.clone(),
                    distance,
                    bits,
                })
            };
            let insn = &mut self.insns[fixup.slot];
            match fixup.field {
                Field::Off => insn.off = i16::try_from(distance).map_err(|_| out_of_range(16))?,
                Field::Imm => insn.imm = i32::try_from(distance).map_err(|_| out_of_range(32))?,
            }
        }
        Ok(())
    }
}

/// Whether `mnemonic` (possibly several words, such as `lock fetch add`) names an instruction
/// the assembler accepts.
pub fn is_mnemonic(mnemonic: &str) -> bool {
    let mnemonic = mnemonic.to_ascii_lowercase();
    !lookup(&mnemonic).is_empty() || matches!(mnemonic.as_str(), "call helper" | "call runtime")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::INSN_TABLE;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    fn one(text: &str) -> Insn {
        let insns = assemble(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(insns.len(), 1, "{text}");
        insns[0]
    }

    fn err(text: &str) -> AsmError {
        match assemble(text) {
            Ok(insns) => panic!("{text} assembled to {insns:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_table_row_assembles_from_its_mnemonic() {
        for spec in INSN_TABLE {
            let operands = match spec.operands {
                Operands::None => "",
                Operands::Dst | Operands::CallReg => "%r3",
                Operands::DstSrc => "%r3, %r4",
                Operands::DstImm => "%r3, 7",
                Operands::DstImm64 => "%r3, 7",
                Operands::DstMem => "%r3, [%r4+2]",
                Operands::MemImm => "[%r3+2], 7",
                Operands::MemSrc => "[%r3+2], %r4",
                Operands::Jump | Operands::Jump32 | Operands::CallLocal => "+0",
                Operands::CondImm => "%r3, 7, +0",
                Operands::CondReg => "%r3, %r4, +0",
                Operands::CallImm | Operands::PacketAbs => "7",
                Operands::PacketInd => "%r4, 7",
            };
            let mnemonic = if spec.mnemonic == "callx" {
                "call"
            } else {
                spec.mnemonic
            };
            let text = format!("{mnemonic} {operands}");
            let insns = assemble(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(spec.matches(&insns[0]), "{text} gave {:?}", insns[0]);
        }
    }

    #[test]
    fn conformance_encodings() {
        assert_eq!(one("mov %r0, 1"), Insn::new(0xb7, 0, 0, 0, 1));
        assert_eq!(one("mov32 %r0, 0xffffffff"), Insn::new(0xb4, 0, 0, 0, -1));
        assert_eq!(one("add %r0, %r1"), Insn::new(0x0f, 0, 1, 0, 0));
        assert_eq!(one("ldxdw %r0, [%r1+2]"), Insn::new(0x79, 0, 1, 2, 0));
        assert_eq!(one("stxdw [%r10-8], %r0"), Insn::new(0x7b, 10, 0, -8, 0));
        assert_eq!(one("stb [%r1], 0x7f"), Insn::new(0x72, 1, 0, 0, 0x7f));
        assert_eq!(
            one("lock fetch add [%r10-8], %r1"),
            Insn::new(0xdb, 10, 1, -8, 1)
        );
        assert_eq!(
            one("lock cmpxchg32 [%r10-8], %r1"),
            Insn::new(0xc3, 10, 1, -8, 0xf1)
        );
        assert_eq!(one("call 1"), Insn::new(0x85, 0, 0, 0, 1));
        assert_eq!(one("call helper 1"), Insn::new(0x85, 0, 0, 0, 1));
        assert_eq!(one("call %r2"), Insn::new(0x8d, 2, 0, 0, 0));
        assert_eq!(one("callx r2"), Insn::new(0x8d, 2, 0, 0, 0));
        assert_eq!(one("call runtime 3"), Insn::new(0x85, 0, 2, 0, 3));
        assert_eq!(one("sdiv32 %r1, 3"), Insn::new(0x34, 1, 0, 1, 3));
        assert_eq!(one("movsx1664 %r1, %r2"), Insn::new(0xbf, 1, 2, 16, 0));
        assert_eq!(one("swap16 %r1"), Insn::new(0xd7, 1, 0, 0, 16));
        assert_eq!(one("be64 %r1"), Insn::new(0xdc, 1, 0, 0, 64));
        assert_eq!(one("ja32 -1"), Insn::new(0x06, 0, 0, 0, -1));
        assert_eq!(one("jeq %r1, 0x10, -3"), Insn::new(0x15, 1, 0, -3, 0x10));
        assert_eq!(one("jslt32 %r1, %r2, +3"), Insn::new(0xce, 1, 2, 3, 0));
    }

    #[test]
    fn rbpf_spellings() {
        assert_eq!(one("mov64 r1, 0x605"), Insn::new(0xb7, 1, 0, 0, 0x605));
        assert_eq!(one("add32 r1, r2"), Insn::new(0x0c, 1, 2, 0, 0));
        assert_eq!(one("ldxh r0, [r1+2]"), Insn::new(0x69, 0, 1, 2, 0));
        assert_eq!(one("be16 r0"), Insn::new(0xdc, 0, 0, 0, 16));
        assert_eq!(one("neg64 r2"), Insn::new(0x87, 2, 0, 0, 0));
        assert_eq!(one("ja +2"), Insn::new(0x05, 0, 0, 2, 0));
        assert_eq!(one("MOV64 R1,2").opc, 0xb7);
    }

    #[test]
    fn legacy_packet_loads_in_both_spellings() {
        assert_eq!(one("ldabsb 0x3"), Insn::new(0x30, 0, 0, 0, 3));
        assert_eq!(one("ldabsh 12"), Insn::new(0x28, 0, 0, 0, 12));
        assert_eq!(one("ldabsw -4"), Insn::new(0x20, 0, 0, 0, -4));
        assert_eq!(one("ldabsdw 0xffffffff"), Insn::new(0x38, 0, 0, 0, -1));
        assert_eq!(one("ldindb r1, 0x3"), Insn::new(0x50, 0, 1, 0, 3));
        assert_eq!(one("ldindh %r9, -2"), Insn::new(0x48, 0, 9, 0, -2));
        assert_eq!(one("ldindw r10, 0"), Insn::new(0x40, 0, 10, 0, 0));
        assert_eq!(one("ldinddw r2, 8"), Insn::new(0x58, 0, 2, 0, 8));
        let e = err("ldabsw r1, 2");
        assert!(
            e.to_string()
                .starts_with("Invalid number of operands for mnemonic: ldabsw"),
            "{e}"
        );
        assert!(matches!(
            err("ldindw 2, 2").kind,
            AsmErrorKind::InvalidRegister(_)
        ));
        assert!(matches!(
            err("ldindb r1").kind,
            AsmErrorKind::OperandCount { .. }
        ));
    }

    #[test]
    fn tolerant_spacing_and_labels() {
        assert_eq!(one("mov %r0,%r1"), Insn::new(0xbf, 0, 1, 0, 0));
        assert_eq!(one("ldxw %r0 , [ %r1 + 4 ]"), Insn::new(0x61, 0, 1, 4, 0));
        let prog = assemble("ja done\nmov %r0, 1\ndone: exit").unwrap();
        assert_eq!(prog.len(), 3);
        assert_eq!(prog[0].off, 1);
        assert_eq!(prog[2].opc, 0x95);
    }

    #[test]
    fn labels_count_lddw_as_two_slots() {
        let prog =
            assemble("ja end\nlddw %r0, 0x1122334455667788\nend:\nexit\nback: ja back").unwrap();
        assert_eq!(prog.len(), 5);
        assert_eq!(prog[0].off, 2);
        assert_eq!(prog[1].imm as u32, 0x5566_7788);
        assert_eq!(prog[2].imm as u32, 0x1122_3344);
        assert_eq!(prog[4].off, -1);
        let prog = assemble("lddw %r1, -2\nexit").unwrap();
        assert_eq!((prog[0].imm, prog[1].imm), (-2, -1));
    }

    #[test]
    fn implicit_exit_label_is_the_first_exit() {
        let prog = assemble("jne %r0, 0, exit\nmov %r0, 1\nexit\nexit").unwrap();
        assert_eq!(prog[0].off, 1);
        // A declared label named `exit` takes precedence.
        let prog = assemble("ja exit\nexit\nexit:\nexit").unwrap();
        assert_eq!(prog[0].off, 1);
    }

    #[test]
    fn local_calls_resolve_to_relative_immediates() {
        let prog = assemble("call local f\nexit\nf:\nmov %r0, 3\nexit").unwrap();
        assert_eq!(prog[0], Insn::new(0x85, 0, 1, 0, 1));
        let prog = assemble("call local -1").unwrap();
        assert_eq!(prog[0], Insn::new(0x85, 0, 1, 0, -1));
    }

    #[test]
    fn immediate_ranges() {
        assert_eq!(one("mov32 %r0, -2147483648").imm, i32::MIN);
        assert_eq!(one("mov32 %r0, 2147483647").imm, i32::MAX);
        assert!(matches!(
            err("mov32 %r0, 2147483648").kind,
            AsmErrorKind::ImmediateOutOfRange(_)
        ));
        assert!(matches!(
            err("mov32 %r0, 0x100000000").kind,
            AsmErrorKind::ImmediateOutOfRange(_)
        ));
        assert!(matches!(
            err("mov32 %r0, 99999999999999999999999").kind,
            AsmErrorKind::ImmediateOutOfRange(_)
        ));
        assert!(matches!(
            err("mov %r0, 1x").kind,
            AsmErrorKind::InvalidNumber(_)
        ));
        assert_eq!(one("ldxb %r0, [%r1+0xffff]").off, -1);
        assert_eq!(one("ldxb %r0, [%r1-32768]").off, i16::MIN);
        assert!(matches!(
            err("ldxb %r0, [%r1+0x10000]").kind,
            AsmErrorKind::OffsetOutOfRange(_)
        ));
        assert!(matches!(
            err("ldxb %r0, [%r1+32768]").kind,
            AsmErrorKind::OffsetOutOfRange(_)
        ));
        assert!(matches!(
            err("lddw %r0, 0x10000000000000000").kind,
            AsmErrorKind::Immediate64OutOfRange(_)
        ));
    }

    #[test]
    fn errors_name_the_problem_and_the_place() {
        let e = err("mov %r0, 1\nor %r0, %r50");
        assert_eq!((e.line, e.column), (2, 9));
        assert!(e.to_string().starts_with("Invalid register: %r50"), "{e}");
        let e = err("ldxq %r0, %r1");
        assert_eq!(e.to_string(), "Invalid mnemonic: ldxq at line 1, column 1");
        let e = err("ja NOT_A_LABEL\nexit");
        assert!(e.to_string().starts_with("Invalid label: NOT_A_LABEL"));
        assert_eq!((e.line, e.column), (1, 4));
        assert!(matches!(err("ja 2").kind, AsmErrorKind::InvalidLabel(l) if l == "2"));
        let e = err("lddw %r0");
        assert!(
            e.to_string()
                .starts_with("Invalid number of operands for mnemonic: lddw"),
            "{e}"
        );
        assert!(
            err("lock or [%r10-8]")
                .to_string()
                .starts_with("Invalid number of operands for lock")
        );
        assert!(
            err("lock")
                .to_string()
                .starts_with("Invalid number of operands for lock")
        );
        assert!(matches!(
            err("lock nand [%r1], %r2").kind,
            AsmErrorKind::InvalidMnemonic(_)
        ));
        assert!(
            err("ldxb %r0, %r1")
                .to_string()
                .starts_with("Failed to decode register and offset: %r1")
        );
        assert!(matches!(
            err("ldxb %r0, [%r1+2").kind,
            AsmErrorKind::UnterminatedBracket(_)
        ));
        assert!(matches!(
            err("call foo 2").kind,
            AsmErrorKind::InvalidCallMode(_)
        ));
        assert!(matches!(
            err("add %r0, [%r1]").kind,
            AsmErrorKind::InvalidNumber(_)
        ));
        let e = err("a:\nexit\na:");
        assert_eq!(
            e.kind,
            AsmErrorKind::DuplicateLabel {
                name: "a".into(),
                line: 3,
                previous: 1
            }
        );
        assert!(matches!(
            err("mov %r16, 1").kind,
            AsmErrorKind::InvalidRegister(_)
        ));
        assert!(matches!(
            err("mov %x1, 1").kind,
            AsmErrorKind::InvalidRegister(_)
        ));
        assert!(matches!(
            err("exit 1").kind,
            AsmErrorKind::OperandCount { .. }
        ));
    }

    #[test]
    fn jump_range_is_checked() {
        let mut text = String::from("ja far\n");
        for _ in 0..40000 {
            text.push_str("mov %r0, 0\n");
        }
        text.push_str("far: exit\n");
        assert!(matches!(
            err(&text).kind,
            AsmErrorKind::JumpOutOfRange { bits: 16, .. }
        ));
        assert!(assemble(&text.replacen("ja far", "ja32 far", 1)).is_ok());
    }

    #[test]
    fn raw_directive_emits_one_slot() {
        assert_eq!(one(".raw 0x0000000100010007"), Insn::new(0x07, 0, 0, 1, 1));
        assert!(matches!(
            err(".raw").kind,
            AsmErrorKind::OperandCount { .. }
        ));
    }

    #[test]
    fn empty_and_comment_only_text_gives_no_instructions() {
        assert_eq!(assemble("").unwrap(), vec![]);
        assert_eq!(assemble("# nothing\n\n   # here\nlabel:").unwrap(), vec![]);
        assert_eq!(one("exit # done").opc, 0x95);
        assert_eq!(one("exit ; done").opc, 0x95);
        assert_eq!(one("mov %r0, 1 ; r0 = 1").imm, 1);
        assert_eq!(assemble("; nothing").unwrap(), vec![]);
    }

    #[test]
    fn registers_up_to_r15_assemble_and_r16_is_refused_with_that_range() {
        // r11..r15 fit the 4-bit field (the disassembler prints them), the verifier refuses them.
        assert_eq!(one("mov %r15, 1").dst, 15);
        let err = assemble("mov %r16, 1").unwrap_err();
        assert!(err.to_string().contains("expected %r0 to %r15"), "{err}");
    }

    #[test]
    fn is_mnemonic_knows_the_table_and_aliases() {
        assert!(is_mnemonic("lock fetch add"));
        assert!(is_mnemonic("add64"));
        assert!(is_mnemonic("swap32"));
        assert!(is_mnemonic("Call Runtime"));
        assert!(!is_mnemonic("ldxq"));
        assert!(!is_mnemonic("jeq64"));
    }
}
