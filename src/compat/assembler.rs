//! rbpf's `rbpf::assembler` module: rbpf 0.4's assembly syntax, with rbpf's rules and error
//! texts.
//!
//! The syntax: one mnemonic (letters and digits) then operands separated by `,` (a comma
//! directly after its operand); any whitespace separates instructions. Operands are
//! registers `rN`, integers (`42`, `-7`, `+3`, `0x2a`, `-0x1f`) and memory `[rN]`,
//! `[rN+off]`, `[rN-off]` (no spaces inside). Jumps take a relative offset (no labels);
//! `call imm` calls helper `imm`, `callx imm` calls the local function `imm + 1` slots ahead
//! (rbpf's bpf-to-bpf call). librbpf's own syntax (labels, `%r1`, comments, atomics) is
//! [`crate::tools::asm`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::compat::ebpf::{self, Insn};

/// An operand as rbpf's parser reads it (the names appear in rbpf's error texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operand {
    /// `rN`.
    Register(i64),
    /// An integer.
    Integer(i64),
    /// `[rN+off]`.
    Memory(i64, i64),
    /// No operand.
    Nil,
}

/// One parsed line: the mnemonic and its operands.
struct Parsed {
    name: String,
    operands: Vec<Operand>,
}

/// What each mnemonic encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AluBinary,
    AluUnary,
    LoadImm,
    LoadAbs,
    LoadInd,
    LoadReg,
    StoreImm,
    StoreReg,
    JumpUnconditional,
    JumpConditional,
    Call,
    Callx,
    Endian(i64),
    NoOperand,
}

/// rbpf's mnemonics: the kind and opcode of `name`.
fn mnemonic(name: &str) -> Option<(Kind, u8)> {
    const ALU: [(&str, u8); 12] = [
        ("add", ebpf::BPF_ADD),
        ("sub", ebpf::BPF_SUB),
        ("mul", ebpf::BPF_MUL),
        ("div", ebpf::BPF_DIV),
        ("or", ebpf::BPF_OR),
        ("and", ebpf::BPF_AND),
        ("lsh", ebpf::BPF_LSH),
        ("rsh", ebpf::BPF_RSH),
        ("mod", ebpf::BPF_MOD),
        ("xor", ebpf::BPF_XOR),
        ("mov", ebpf::BPF_MOV),
        ("arsh", ebpf::BPF_ARSH),
    ];
    const SIZES: [(&str, u8); 4] = [
        ("w", ebpf::BPF_W),
        ("h", ebpf::BPF_H),
        ("b", ebpf::BPF_B),
        ("dw", ebpf::BPF_DW),
    ];
    const JUMPS: [(&str, u8); 11] = [
        ("jeq", ebpf::BPF_JEQ),
        ("jgt", ebpf::BPF_JGT),
        ("jge", ebpf::BPF_JGE),
        ("jlt", ebpf::BPF_JLT),
        ("jle", ebpf::BPF_JLE),
        ("jset", ebpf::BPF_JSET),
        ("jne", ebpf::BPF_JNE),
        ("jsgt", ebpf::BPF_JSGT),
        ("jsge", ebpf::BPF_JSGE),
        ("jslt", ebpf::BPF_JSLT),
        ("jsle", ebpf::BPF_JSLE),
    ];
    match name {
        "exit" => return Some((Kind::NoOperand, ebpf::EXIT)),
        "ja" => return Some((Kind::JumpUnconditional, ebpf::JA)),
        "call" => return Some((Kind::Call, ebpf::CALL)),
        "callx" => return Some((Kind::Callx, ebpf::CALL)),
        "lddw" => return Some((Kind::LoadImm, ebpf::LD_DW_IMM)),
        "neg" | "neg64" => return Some((Kind::AluUnary, ebpf::NEG64)),
        "neg32" => return Some((Kind::AluUnary, ebpf::NEG32)),
        _ => {}
    }
    for (op, code) in ALU {
        if let Some(width) = name.strip_prefix(op) {
            match width {
                "" | "64" => return Some((Kind::AluBinary, ebpf::BPF_ALU64 | code)),
                "32" => return Some((Kind::AluBinary, ebpf::BPF_ALU | code)),
                _ => {}
            }
        }
    }
    for (suffix, size) in SIZES {
        let forms = [
            ("ldabs", Kind::LoadAbs, ebpf::BPF_ABS | ebpf::BPF_LD),
            ("ldind", Kind::LoadInd, ebpf::BPF_IND | ebpf::BPF_LD),
            ("ldx", Kind::LoadReg, ebpf::BPF_MEM | ebpf::BPF_LDX),
            ("st", Kind::StoreImm, ebpf::BPF_MEM | ebpf::BPF_ST),
            ("stx", Kind::StoreReg, ebpf::BPF_MEM | ebpf::BPF_STX),
        ];
        for (prefix, kind, code) in forms {
            if name.strip_prefix(prefix) == Some(suffix) {
                return Some((kind, code | size));
            }
        }
    }
    for (jump, code) in JUMPS {
        match name.strip_prefix(jump) {
            Some("") => return Some((Kind::JumpConditional, ebpf::BPF_JMP | code)),
            Some("32") => return Some((Kind::JumpConditional, ebpf::BPF_JMP32 | code)),
            _ => {}
        }
    }
    let (opc, size) = if let Some(size) = name.strip_prefix("be") {
        (ebpf::BE, size)
    } else {
        (ebpf::LE, name.strip_prefix("le")?)
    };
    match size {
        "16" => Some((Kind::Endian(16), opc)),
        "32" => Some((Kind::Endian(32), opc)),
        "64" => Some((Kind::Endian(64), opc)),
        _ => None,
    }
}

/// A reader over the text that knows rbpf's error positions (line and column, from 1).
struct Reader<'s> {
    chars: core::iter::Peekable<core::str::Chars<'s>>,
    line: usize,
    column: usize,
}

impl Reader<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// rbpf's parse error at the current position: what was found, what was expected.
    fn error(&mut self, expected: &str) -> String {
        let found = match self.peek() {
            Some(c) => format!("Unexpected `{c}`"),
            None => "Unexpected end of input".to_string(),
        };
        format!(
            "Parse error at line: {}, column: {}\n{found}\nExpected {expected}\n",
            self.line, self.column
        )
    }

    /// One or more characters accepted by `accept`.
    fn many1(&mut self, accept: impl Fn(char) -> bool, expected: &str) -> Result<String, String> {
        let mut text = String::new();
        while let Some(c) = self.peek().filter(|&c| accept(c)) {
            text.push(c);
            self.bump();
        }
        if text.is_empty() {
            return Err(self.error(expected));
        }
        Ok(text)
    }

    /// `r` and a decimal number.
    fn register(&mut self) -> Result<i64, String> {
        self.bump();
        let digits = self.many1(|c| c.is_ascii_digit(), "digit")?;
        // rbpf panics on a register number beyond i64; this is an error instead.
        digits
            .parse::<i64>()
            .map_err(|_| format!("Invalid register number r{digits}"))
    }

    /// An optional sign, then `0x` and hex digits, or decimal digits.
    fn integer(&mut self) -> Result<i64, String> {
        let sign = match self.peek() {
            Some('-') => {
                self.bump();
                -1
            }
            Some('+') => {
                self.bump();
                1
            }
            _ => 1,
        };
        let mut ahead = self.chars.clone();
        let hex = ahead.next() == Some('0')
            && ahead.next() == Some('x')
            && ahead.next().is_some_and(|c| c.is_ascii_hexdigit());
        let value = if hex {
            self.bump();
            self.bump();
            let digits = self.many1(|c| c.is_ascii_hexdigit(), "hexadecimal digit")?;
            // rbpf panics past 64 bits; this is an error instead.
            u64::from_str_radix(&digits, 16).map_err(|_| format!("Invalid integer 0x{digits}"))?
                as i64
        } else {
            let digits = self.many1(|c| c.is_ascii_digit(), "digit")?;
            digits
                .parse::<i64>()
                .map_err(|_| format!("Invalid integer {digits}"))?
        };
        Ok(value.wrapping_mul(sign))
    }

    /// An operand, or `None` when none starts here.
    fn operand(&mut self) -> Result<Option<Operand>, String> {
        Ok(Some(match self.peek() {
            Some('r') => Operand::Register(self.register()?),
            Some('-' | '+') => Operand::Integer(self.integer()?),
            Some(c) if c.is_ascii_digit() => Operand::Integer(self.integer()?),
            Some('[') => {
                self.bump();
                if self.peek() != Some('r') {
                    return Err(self.error("`r`"));
                }
                let base = self.register()?;
                let offset = match self.peek() {
                    Some('-' | '+') => self.integer()?,
                    Some(c) if c.is_ascii_digit() => self.integer()?,
                    _ => 0,
                };
                if self.peek() != Some(']') {
                    return Err(self.error("`]`"));
                }
                self.bump();
                Operand::Memory(base, offset)
            }
            _ => return Ok(None),
        }))
    }
}

/// Parses `src` into mnemonics and operands (rbpf's `asm_parser`).
fn parse(src: &str) -> Result<Vec<Parsed>, String> {
    let mut reader = Reader {
        chars: src.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut parsed = Vec::new();
    reader.skip_spaces();
    let mut after_operand = false;
    while let Some(c) = reader.peek() {
        if !c.is_alphanumeric() {
            let expected = if after_operand {
                "`,`, whitespaces, letter or digit or end of input"
            } else {
                "letter or digit, whitespaces, `r`, `-`, `+`, `[` or end of input"
            };
            return Err(reader.error(expected));
        }
        let name = reader.many1(char::is_alphanumeric, "letter or digit")?;
        reader.skip_spaces();
        let mut operands = Vec::new();
        if let Some(first) = reader.operand()? {
            operands.push(first);
            while reader.peek() == Some(',') {
                reader.bump();
                reader.skip_spaces();
                match reader.operand()? {
                    Some(next) => operands.push(next),
                    None => return Err(reader.error("`r`, `-`, `+`, digit or `[`")),
                }
            }
        }
        after_operand = !operands.is_empty();
        reader.skip_spaces();
        parsed.push(Parsed { name, operands });
    }
    Ok(parsed)
}

/// One instruction, with rbpf's range checks on each field.
fn insn(opc: u8, dst: i64, src: i64, off: i64, imm: i64) -> Result<Insn, String> {
    if !(0..16).contains(&dst) {
        return Err(format!("Invalid destination register {dst}"));
    }
    if !(0..16).contains(&src) {
        return Err(format!("Invalid source register {src}"));
    }
    let off = i16::try_from(off).map_err(|_| format!("Invalid offset {off}"))?;
    let imm = i32::try_from(imm).map_err(|_| format!("Invalid immediate {imm}"))?;
    Ok(Insn {
        opc,
        dst: dst as u8,
        src: src as u8,
        off,
        imm,
    })
}

/// Encodes one instruction of `kind` (rbpf's operand forms).
fn encode(kind: Kind, opc: u8, operands: &[Operand]) -> Result<Insn, String> {
    use Operand::{Integer, Memory, Nil, Register};
    let (a, b, c) = match *operands {
        [] => (Nil, Nil, Nil),
        [a] => (a, Nil, Nil),
        [a, b] => (a, b, Nil),
        [a, b, c] => (a, b, c),
        _ => return Err("Too many operands".into()),
    };
    match (kind, a, b, c) {
        (Kind::AluBinary, Register(dst), Register(src), Nil) => {
            insn(opc | ebpf::BPF_X, dst, src, 0, 0)
        }
        (Kind::AluBinary, Register(dst), Integer(imm), Nil) => {
            insn(opc | ebpf::BPF_K, dst, 0, 0, imm)
        }
        (Kind::AluUnary, Register(dst), Nil, Nil) => insn(opc, dst, 0, 0, 0),
        (Kind::LoadAbs, Integer(imm), Nil, Nil) => insn(opc, 0, 0, 0, imm),
        (Kind::LoadInd, Register(src), Integer(imm), Nil) => insn(opc, 0, src, 0, imm),
        (Kind::LoadReg, Register(dst), Memory(src, off), Nil)
        | (Kind::StoreReg, Memory(dst, off), Register(src), Nil) => insn(opc, dst, src, off, 0),
        (Kind::StoreImm, Memory(dst, off), Integer(imm), Nil) => insn(opc, dst, 0, off, imm),
        (Kind::NoOperand, Nil, Nil, Nil) => insn(opc, 0, 0, 0, 0),
        (Kind::JumpUnconditional, Integer(off), Nil, Nil) => insn(opc, 0, 0, off, 0),
        (Kind::JumpConditional, Register(dst), Register(src), Integer(off)) => {
            insn(opc | ebpf::BPF_X, dst, src, off, 0)
        }
        (Kind::JumpConditional, Register(dst), Integer(imm), Integer(off)) => {
            insn(opc | ebpf::BPF_K, dst, 0, off, imm)
        }
        (Kind::Call, Integer(imm), Nil, Nil) => insn(opc, 0, 0, 0, imm),
        (Kind::Callx, Integer(imm), Nil, Nil) => insn(opc, 0, 1, 0, imm),
        (Kind::Endian(size), Register(dst), Nil, Nil) => insn(opc, dst, 0, 0, size),
        // The low 32 bits, sign-extended (the high half goes into the second slot).
        (Kind::LoadImm, Register(dst), Integer(imm), Nil) => {
            insn(opc, dst, 0, 0, i64::from(imm as i32))
        }
        _ => Err(format!("Unexpected operands: {operands:?}")),
    }
}

/// Assembles `src` (rbpf's syntax) into little-endian bytecode; the error is rbpf's text.
///
/// ```
/// let code = rbpf::assembler::assemble("mov64 r0, 0x2a\nexit").unwrap();
/// assert_eq!(code[..8], [0xb7, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00]);
/// assert_eq!(
///     rbpf::assembler::assemble("jeq r2, 0x80000000, +2").unwrap_err(),
///     "Failed to encode jeq: Invalid immediate 2147483648"
/// );
/// ```
pub fn assemble(src: &str) -> Result<Vec<u8>, String> {
    let mut code = Vec::new();
    for line in parse(src)? {
        let name = line.name.as_str();
        let Some((kind, opc)) = mnemonic(name) else {
            return Err(format!("Invalid instruction {name:?}"));
        };
        let first = encode(kind, opc, &line.operands)
            .map_err(|msg| format!("Failed to encode {name}: {msg}"))?;
        code.extend_from_slice(&first.to_array());
        if let (Kind::LoadImm, Some(Operand::Integer(imm))) = (kind, line.operands.get(1)) {
            let high = Insn {
                opc: 0,
                dst: 0,
                src: 0,
                off: 0,
                imm: (imm >> 32) as i32,
            };
            code.extend_from_slice(&high.to_array());
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::assemble;
    use crate::compat::ebpf;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    #[test]
    fn rbpf_syntax() {
        let code = assemble(
            "mov64 r1, 0x605
             ldxw r0, [r1+0x4]
             stxdw [r10-8], r1
             add32 r0, r1
             neg64 r2
             be16 r0
             le32 r0
             lddw r3, 0x1122334455667788
             jeq r1, 0x3, +1
             ja -0x2
             call 0x1
             callx 0x2
             exit",
        )
        .unwrap();
        let insns = ebpf::to_insn_vec(&code);
        let ops: Vec<u8> = insns.iter().map(|i| i.opc).collect();
        assert_eq!(
            ops,
            [
                ebpf::MOV64_IMM,
                ebpf::LD_W_REG,
                ebpf::ST_DW_REG,
                ebpf::ADD32_REG,
                ebpf::NEG64,
                ebpf::BE,
                ebpf::LE,
                ebpf::LD_DW_IMM,
                0,
                ebpf::JEQ_IMM,
                ebpf::JA,
                ebpf::CALL,
                ebpf::CALL,
                ebpf::EXIT
            ]
        );
        // `callx imm` is a local call (src 1), `call imm` a helper call.
        assert_eq!((insns[11].src, insns[11].imm), (0, 1));
        assert_eq!((insns[12].src, insns[12].imm), (1, 2));
        assert_eq!((insns[7].imm, insns[8].imm), (0x55667788, 0x11223344));
    }

    #[test]
    fn rbpf_refusals_and_texts() {
        let err = |src: &str| assemble(src).unwrap_err();
        assert_eq!(err("abcd"), "Invalid instruction \"abcd\"");
        assert_eq!(
            err("add 1, 2"),
            "Failed to encode add: Unexpected operands: [Integer(1), Integer(2)]"
        );
        assert_eq!(
            err("add 1, 2, 3, 4"),
            "Failed to encode add: Too many operands"
        );
        assert_eq!(
            err("add r16, r2"),
            "Failed to encode add: Invalid destination register 16"
        );
        assert_eq!(
            err("add r1, r16"),
            "Failed to encode add: Invalid source register 16"
        );
        assert_eq!(
            err("ja -32769"),
            "Failed to encode ja: Invalid offset -32769"
        );
        assert_eq!(
            err("jeq r2, 0x80000000, +2"),
            "Failed to encode jeq: Invalid immediate 2147483648"
        );
        assert_eq!(
            err("lsh r"),
            "Parse error at line: 1, column: 6\nUnexpected end of input\nExpected digit\n"
        );
        assert_eq!(
            err("exit\n^"),
            "Parse error at line: 2, column: 1\nUnexpected `^`\nExpected letter or digit, \
             whitespaces, `r`, `-`, `+`, `[` or end of input\n"
        );
        // rbpf panics on these; they are errors here.
        assert!(assemble("mov r0, 0x11112222333344445").is_err());
        assert!(assemble("mov r99999999999999999999, 1").is_err());
        // librbpf's own syntax is not rbpf's.
        assert!(assemble("mov %r0, 1").is_err());
        assert!(assemble("ldxw r0, [r1 + 4]").is_err());
        assert!(assemble("mov r0 , 1").is_err());
        assert_eq!(assemble("  \n exit \n").unwrap().len(), 8);
        assert!(assemble("").unwrap().is_empty());
    }
}
