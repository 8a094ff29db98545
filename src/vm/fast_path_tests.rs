//! Tests of the interpreter's fast path (`crate::interpreter`), through the VM.

use crate::isa::Insn;
#[allow(unused_imports)]
use crate::test_prelude::*;
use crate::vm::Vm;

/// Runs `insns` through the fast path and the per-instruction loop (selected by an
/// instruction limit) and returns both outcomes.
fn both(insns: &[Insn]) -> (Result<u64, String>, Result<u64, String>) {
    let code = crate::isa::encode_slots(insns);
    let run = |limit: u32| {
        let mut vm = Vm::new();
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm.config_mut().instruction_limit = limit;
        vm.load(&code).expect("loads");
        let mut mem = [7u8; 16];
        vm.execute(&mut mem).map_err(|e| e.to_string())
    };
    (run(0), run(1 << 20))
}

/// Pairs and triples the decoder fuses, with every register overlap (including the forms
/// it must not fuse), mixed with jumps into the middle of them.
#[test]
fn fused_forms_match_the_per_instruction_loop() {
    let mut seed = 0x5eed_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..400 {
        let mut insns = vec![
            Insn::new(0x18, 3, 0, 0, 0x1234_5678),
            Insn::new(0, 0, 0, 0, -0x0edc_ba98),
            Insn::new(0xb7, 4, 0, 0, -5),
            Insn::new(0xb7, 5, 0, 0, 0x7fff_0001),
        ];
        for _ in 0..12 {
            let r = |n: u64| (3 + n % 3) as u8;
            let (a, b, c) = (r(next()), r(next()), r(next()));
            match next() % 5 {
                0 => insns.extend([Insn::new(0x67, a, 0, 0, 32), Insn::new(0x77, a, 0, 0, 32)]),
                1 => insns.extend([
                    Insn::new(0xbf, a, b, 0, 0),
                    Insn::new(0x67, a, 0, 0, 32),
                    Insn::new(0x77, a, 0, 0, 32),
                ]),
                2 => insns.extend([Insn::new(0xbf, a, b, 0, 0), Insn::new(0x0f, a, c, 0, 0)]),
                3 => insns.extend([
                    Insn::new(0xbf, a, b, 0, 0),
                    Insn::new(0x07, a, 0, 0, next() as i32),
                ]),
                // Jump over one slot: lands in the middle of whatever follows.
                _ => insns.extend([
                    Insn::new(0x55, a, 0, 1, (next() % 3) as i32),
                    Insn::new(0x67, a, 0, 0, 32),
                    Insn::new(0x77, a, 0, 0, 32),
                    Insn::new(0x0f, a, b, 0, 0),
                ]),
            }
        }
        insns.extend([
            Insn::new(0xbf, 0, 3, 0, 0),
            Insn::new(0xaf, 0, 4, 0, 0),
            Insn::new(0x27, 0, 0, 0, 31),
            Insn::new(0xaf, 0, 5, 0, 0),
            Insn::new(0x95, 0, 0, 0, 0),
        ]);
        let (fast, checked) = both(&insns);
        assert_eq!(
            fast,
            checked,
            "{}",
            crate::tools::disasm::disassemble(&insns)
        );
    }
}
