//! rbpf's `rbpf::assembler` module: assembly text to bytecode with rbpf's signature.
//!
//! The text is read by librbpf's assembler ([`crate::tools::asm`]), which accepts rbpf's syntax
//! (`mov64 r0, 1`, `ldxw r1, [r2+4]`, `be16 r0`, `jeq r1, 3, +2`) as well as the
//! bpf_conformance syntax.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Assembles `src` into little-endian bytecode; the error is the assembler's message
/// (with line and column).
///
/// ```
/// let code = rbpf::assembler::assemble("mov64 r0, 0x2a\nexit").unwrap();
/// assert_eq!(code[..8], [0xb7, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00]);
/// ```
pub fn assemble(src: &str) -> Result<Vec<u8>, String> {
    crate::tools::asm::assemble_bytes(src).map_err(|e| e.to_string())
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
             exit",
        )
        .unwrap();
        let ops: Vec<u8> = ebpf::to_insn_vec(&code).iter().map(|i| i.opc).collect();
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
                ebpf::EXIT
            ]
        );
        assert!(assemble("frobnicate r1, 1").is_err());
    }
}
