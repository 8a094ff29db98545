//! Differential tests of jump threading (`src/jit/thread.rs`): random loops where a branch
//! tests the same, a swapped, an extended or a different comparison after a hammock that
//! branched on a first one, sometimes with an operand changed in between and always with the
//! operands changing from one iteration to the next (a fact from an earlier iteration must
//! not settle a later test). The per-instruction interpreter is the oracle for the fast
//! path, the JIT and the JIT with a limit, on inputs that make the comparisons equal, near,
//! signed-negative and 32-bit-equal.

mod common;

use common::engines;
use common::rng::Rng;

const CONDITIONS: [&str; 11] = [
    "jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset",
];

/// One comparison: `cond[32] left, right-or-immediate`.
fn comparison(rng: &mut Rng) -> (String, String, String) {
    let cond = format!(
        "{}{}",
        rng.pick(&CONDITIONS),
        if rng.chance(40) { "32" } else { "" }
    );
    let left = rng.pick(&["%r2", "%r3", "%r4"]).to_owned();
    let right = if rng.chance(25) {
        rng.pick(&["0", "1", "-1", "7"]).to_owned()
    } else {
        rng.pick(&["%r2", "%r3", "%r4"]).to_owned()
    };
    (cond, left, right)
}

/// A program: a four-trip loop whose body branches on a first comparison into a hammock that
/// sets r5, then on a second comparison related to the first. Each side stores a byte, so
/// that if-conversion keeps the branches.
fn program(rng: &mut Rng) -> String {
    let (cond, left, right) = comparison(rng);
    let first = format!("{cond} {left}, {right}, one");
    let second = match rng.below(5) {
        // The same test, or with its operands swapped (when both are registers).
        0 | 1 => format!("{cond} {left}, {right}, three"),
        2 if right.starts_with('%') => {
            let swapped = match cond.trim_end_matches("32") {
                "jgt" => "jlt",
                "jge" => "jle",
                "jlt" => "jgt",
                "jle" => "jge",
                "jsgt" => "jslt",
                "jsge" => "jsle",
                "jslt" => "jsgt",
                "jsle" => "jsge",
                same => same,
            };
            let width = if cond.ends_with("32") { "32" } else { "" };
            format!("{swapped}{width} {right}, {left}, three")
        }
        // A zero extension of the left operand's low half, tested in 64 bits.
        3 => format!(
            "mov32 %r7, {left}\n{} %r7, {right}, three",
            cond.trim_end_matches("32")
        ),
        // Something else.
        _ => {
            let (c, l, r) = comparison(rng);
            format!("{c} {l}, {r}, three")
        }
    };
    let between = match rng.below(4) {
        0 => format!("add {left}, 1\n"),
        1 => "lsh %r4, 32\nrsh %r4, 32\n".to_owned(),
        _ => String::new(),
    };
    format!(
        "ldxdw %r2, [%r1+0]\nldxdw %r3, [%r1+8]\nldxw %r4, [%r1+16]\nmov %r0, 0\nmov %r6, 0\n\
         loop:\n{first}\nmov %r5, 1\nstxb [%r1+21], %r6\nja two\none:\nmov %r5, 2\n\
         stxb [%r1+22], %r6\ntwo:\n{between}{second}\nadd %r0, %r5\nja four\nthree:\n\
         lsh %r0, 3\nxor %r0, %r5\nstxb [%r1+23], %r0\nfour:\nadd %r2, %r5\n\
         sub %r3, 1\nadd %r6, 1\njlt %r6, 4, loop\nexit\n"
    )
}

/// Inputs (r2, r3, the u32 r4): equal, near, negative, and equal only in the low half.
const INPUTS: [(u64, u64, u32); 7] = [
    (5, 5, 5),
    (5, 7, 6),
    (u64::MAX, 1, 0xffff_ffff),
    (0x1_0000_0005, 5, 5),
    (0x8000_0000, 0x7fff_ffff, 0x8000_0000),
    (0, 0, 0),
    (3, u64::MAX - 2, 2),
];

#[test]
fn threaded_branches_agree_with_the_interpreter() {
    let programs: usize = std::env::var("RBPF_THREAD_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut rng = Rng(0x7468_7265_6164);
    for _ in 0..programs {
        let text = program(&mut rng);
        for (a, b, c) in INPUTS {
            let mut mem = Vec::new();
            mem.extend(a.to_le_bytes());
            mem.extend(b.to_le_bytes());
            mem.extend(c.to_le_bytes());
            mem.extend([0u8; 4]);
            // The engines agree (the outcome itself, a value or a fault, may be either).
            let _agreed = engines::against_per_instruction(&text, true, &mem, 1 << 16)
                .unwrap_or_else(|e| panic!("input ({a:#x}, {b:#x}, {c:#x}): {e}\n{text}"));
        }
    }
}

/// Found by `fuzz/run.sh diff`: a loop that nothing reaches (behind a `ja` to the exit). Its
/// SSA values may be aliases of each other, and the optimised tier's passes walked it and
/// panicked resolving one; unreachable blocks are now removed before those passes run.
#[test]
fn an_unreachable_loop_compiles() {
    let text = "ja +10\nadd r2, 1\nmov r0, 1\njge r2, r1, -2\nmov r3, r1\ndiv r3, r2\n\
        lsh r3, r2\nmov r4, r1\nsub r2, r3\nmov r0, 0\njne r4, 16384, -10\nexit";
    let outcome = engines::against_per_instruction(text, true, &[0u8; 8], 1 << 16)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(outcome.0, Ok(0));
}
