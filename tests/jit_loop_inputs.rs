//! Differential tests of pinned loop inputs (`src/jit/invariant.rs`): registers a loop reads
//! and never writes pass through an opaque identity on the way in, so that Cranelift does not
//! recompute them inside the loop. Each program runs in the per-instruction interpreter, the
//! fast path, the JIT and the JIT with a limit, on several inputs, including ones that make
//! the loop fault part-way.

mod common;

use common::engines;

/// Runs `text` on mem holding `n` at offset 0 and 64 bytes of data after it, in every
/// engine; returns the result (or the fault text).
fn result(text: &str, n: u64) -> String {
    let mut mem = n.to_le_bytes().to_vec();
    mem.extend((0..64u8).map(|b| b.wrapping_mul(29)));
    match engines::against_per_instruction(text, true, &mem, 1 << 20)
        .unwrap_or_else(|e| panic!("n = {n}: {e}\n{text}"))
        .0
    {
        Ok(v) => format!("{v:#x}"),
        Err(e) => format!("fault: {e}"),
    }
}

/// The loop of each program: walks mem[8..] with a stride computed from `n` before the loop
/// (`((n & 3) + 1) << 3`: 8, 16, 24 or 32 bytes), summing bytes until `r4` reaches the count
/// (`((n >> 2) & 3) + 1`). Long strides with three or four trips run off the end of mem.
const LOOP: &str = "loop:\n\
    ldxb %r7, [%r3+0]\n\
    add %r0, %r7\n\
    xor %r0, %r6\n\
    add %r3, %r2\n\
    add %r4, 1\n\
    jlt %r4, %r5, loop\n";

/// The set-up shared by every program: r2 = stride, r6 = an invariant from `n` combined
/// with a constant, r5 = trip count, r3 = the data's address.
const SETUP: &str = "ldxdw %r2, [%r1+0]\n\
    mov %r6, %r2\n\
    or %r6, 0x40\n\
    mov %r5, %r2\n\
    rsh %r5, 2\n\
    and %r5, 3\n\
    add %r5, 1\n\
    and %r2, 3\n\
    add %r2, 1\n\
    lsh %r2, 3\n\
    mov %r3, %r1\n\
    add %r3, 8\n\
    mov %r4, 0\n\
    mov %r0, 0\n";

#[test]
fn loops_agree_however_they_are_entered() {
    let programs = [
        // Falls into the loop: its inputs are pinned on the way in.
        format!("{SETUP}{LOOP}exit\n"),
        // Jumps into the loop, skipping a block: only the fall-through entry is pinned.
        format!("{SETUP}ja loop\nmov %r2, 1\n{LOOP}exit\n"),
        // Entered from two places with different strides: the loop sees a merge of a pinned
        // value and a plain one.
        format!("{SETUP}jeq %r5, 2, loop\nmov %r2, 8\n{LOOP}exit\n"),
        // An input that is a constant (not pinned) beside computed ones.
        format!("{SETUP}mov %r6, 0x55\n{LOOP}exit\n"),
        // A register written on one path of the loop is not an input.
        format!(
            "{SETUP}loop:\nldxb %r7, [%r3+0]\nadd %r0, %r7\njne %r7, 0, keep\nmov %r6, 1\n\
             keep:\nxor %r0, %r6\nadd %r3, %r2\nadd %r4, 1\njlt %r4, %r5, loop\nexit\n"
        ),
        // Nested loops: the inner one's inputs include the outer one's counter.
        format!(
            "{SETUP}mov %r8, 0\nouter:\nmov %r4, 0\nmov %r3, %r1\nadd %r3, 8\n{LOOP}\
             add %r8, 1\njlt %r8, 3, outer\nexit\n"
        ),
        // Inputs stored to and reloaded from the stack inside the loop.
        format!(
            "{SETUP}loop:\nldxb %r7, [%r3+0]\nstxdw [%r10-8], %r6\nldxdw %r8, [%r10-8]\n\
             add %r0, %r7\nxor %r0, %r8\nadd %r3, %r2\nadd %r4, 1\njlt %r4, %r5, loop\nexit\n"
        ),
    ];
    let mut faults = 0;
    for text in &programs {
        for n in [0, 1, 2, 4, 6, 7, 9, 12, 14, 15, 0x102, u64::MAX] {
            faults += usize::from(result(text, n).starts_with("fault"));
        }
    }
    // Some inputs run each loop off the end of mem: the pinned values reach the faulting
    // access too.
    assert!(faults > 0);
}
