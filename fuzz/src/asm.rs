//! Target `asm`: assembler ⇄ disassembler round trips.
//!
//! Every input is tried both ways:
//! * as text (when it is UTF-8): if it assembles, disassembling the result and assembling
//!   that again must give the same instructions;
//! * as bytecode (cut to whole 8-byte slots): disassembling it and assembling the text must
//!   give back exactly the same bytes (the disassembler writes fields an instruction does not
//!   use, and unknown opcodes, in a form the assembler reads back).
//!
//! Neither the assembler nor the disassembler may panic on any input.

use rbpf::{asm, disasm, isa};

use crate::harness::fail;

/// Runs one `asm` input both ways (text, then bytes).
pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(insns) = asm::assemble(text)
    {
        let listing = disasm::disassemble(&insns);
        match asm::assemble(&listing) {
            Ok(again) if again == insns => {}
            Ok(again) => fail(
                &format!(
                    "text → assemble → disassemble → assemble changed the program:\n{listing}\nreassembled to:\n{}",
                    disasm::disassemble(&again)
                ),
                &insns,
            ),
            Err(e) => fail(
                &format!("the disassembly of assembled text does not assemble: {e}\n{listing}"),
                &insns,
            ),
        }
    }

    let code = &data[..data.len() / 8 * 8];
    let insns = isa::decode_slots(code).expect("whole slots");
    let listing = disasm::disassemble(&insns);
    match asm::assemble_bytes(&listing) {
        Ok(bytes) if bytes == code => {}
        Ok(bytes) => fail(
            &format!(
                "bytes → disassemble → assemble changed the bytes:\n{listing}\nreassembled: {}\n",
                hex(&bytes)
            ),
            &insns,
        ),
        Err(e) => fail(
            &format!("a disassembly does not assemble: {e}\n{listing}"),
            &insns,
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
