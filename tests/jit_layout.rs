//! Differential tests of the JIT's loop rotation (`src/jit/translate/layout.rs`): a `ja` back
//! to a small loop test is translated as a copy of the test; and of a conditional jump whose
//! fall-through is a `ja` nothing else reaches, which branches to the `ja`'s target itself
//! (`Translator::fall_through_block`). Hand-built loops of the shapes
//! that get rotated (a test that faults, a test reached from several places, nested loops, a
//! test that jumps to itself, `jmp32` tests with `ja32` latches, local calls around), random
//! loops of those shapes, and the clang-built workloads of the benchmark. The interpreter's
//! per-instruction loop is the oracle: its fast path, the JIT with bounds checks on and off
//! (off only where every access is in bounds), with constant blinding, and with an
//! instruction limit (which rotates nothing) must give the same r0, the same error at the same
//! pc and the same final memory.

mod common;

use common::bench_object;
use common::engines::{self, Outcome, engine};
use common::rng::Rng;

/// Compares every engine with the oracle (the interpreter's per-instruction loop);
/// `in_bounds`: also run with bounds checks off. Returns the oracle's outcome.
fn compare_code(code: &[u8], elf: bool, mem: &[u8], in_bounds: bool) -> Outcome {
    let mut list = vec![
        ("interpreter fast path", engine(false)),
        ("JIT", engine(true)),
        ("JIT with a limit", engine(true).limited(1 << 24)),
        ("JIT, constants blinded", engine(true).blinded()),
    ];
    if in_bounds {
        list.push(("JIT, checks off", engine(true).bounds(false)));
    }
    engines::compare(code, elf, mem, engine(false).limited(1 << 24), &list)
        .unwrap_or_else(|why| panic!("{why}"))
}

fn compare(text: &str, mem: &[u8], in_bounds: bool) -> Outcome {
    let code = rbpf::asm::assemble_bytes(text).unwrap_or_else(|e| panic!("asm: {e}\n{text}"));
    compare_code(&code, false, mem, in_bounds)
}

/// Bytes `1..=n`, so a scan for a zero byte runs off the end.
fn counting(n: usize) -> Vec<u8> {
    (1..=n).map(|i| i as u8 | 1).collect()
}

/// A loop in clang's layout (`test: ...; if more goto body; exit; body: ...; ja test`) whose
/// test loads a byte: it sums bytes up to the first zero, storing the running sum back.
const SCAN: &str = "mov %r0, 0
mov %r2, 0
test:
mov %r4, %r1
add %r4, %r2
ldxb %r3, [%r4+0]
jne %r3, 0, body
exit
body:
add %r0, %r3
stxb [%r4+0], %r0
add %r2, 1
ja test";

#[test]
fn rotated_test_with_a_load() {
    let mut mem = counting(64);
    mem[40] = 0;
    let (r0, _) = compare(SCAN, &mem, true);
    assert!(r0.is_ok());
}

/// The copied test faults: no zero byte, so its load runs past mem. The copy reports the
/// test's slot, after the same stores.
#[test]
fn rotated_test_that_faults() {
    let (r0, mem) = compare(SCAN, &counting(48), false);
    let err = r0.expect_err("scans past the end");
    assert!(err.contains("at 4 "), "{err}");
    assert_ne!(mem, counting(48));
}

/// The test is entered by falling into it and from three latches.
#[test]
fn test_reached_from_several_places() {
    let text = "mov %r0, 1
mov %r2, 0
head:
add %r2, 1
jle %r2, 40, body
exit
body:
mov %r3, %r2
and %r3, 3
jeq %r3, 0, a
jeq %r3, 1, b
add %r0, 7
ja head
a:
mul %r0, 3
ja head
b:
xor %r0, %r2
ja head";
    let (r0, _) = compare(text, &[0; 8], true);
    assert!(r0.is_ok());
}

#[test]
fn nested_rotated_loops() {
    let text = "mov %r0, 0
mov %r6, 0
outer:
jlt %r6, 9, outer_body
exit
outer_body:
mov %r7, 0
inner:
jlt %r7, %r6, inner_body
add %r6, 1
ja outer
inner_body:
mov %r3, %r7
mul %r3, %r6
add %r0, %r3
add %r7, 1
ja inner";
    let expected: u64 = (0..9u64).map(|a| a * (a * a.saturating_sub(1) / 2)).sum();
    assert_eq!(compare(text, &[0; 8], true).0, Ok(expected));
}

/// The test's own branch goes back to the test (a loop of one block inside the rotated one).
#[test]
fn test_that_jumps_to_itself() {
    let text = "mov %r0, 0
mov %r2, 0
spin:
add %r0, 3
mov %r3, %r0
and %r3, 7
jne %r3, 0, spin
add %r2, 1
jge %r2, 20, done
ja spin
done:
exit";
    assert!(compare(text, &[0; 8], true).0.is_ok());
}

/// clang's bottom test `if i == n goto out; goto head`: the conditional jump branches back to
/// the head itself. The loop sums u32 words and stores each running sum back, so a run past
/// the end faults at the load's slot after the same stores; `n` is taken from r2's low byte.
const BOTTOM_TEST: &str = "mov %r0, 0
mov %r3, 0
mov %r4, %r1
head:
ldxw %r5, [%r4+0]
add %r0, %r5
stxw [%r4+0], %r0
add %r4, 4
add %r3, 1
jeq %r3, NN, out
ja head
out:
exit";

#[test]
fn bottom_test_then_ja_back() {
    for n in [1, 5, 16, 17, 40] {
        let text = BOTTOM_TEST.replace("NN", &n.to_string());
        let (r0, mem) = compare(&text, &counting(64), n <= 16);
        if n <= 16 {
            assert!(r0.is_ok(), "n = {n}");
        } else {
            let err = r0.expect_err("runs past the end");
            assert!(err.contains("at 3 "), "n = {n}: {err}");
            assert_ne!(mem, counting(64));
        }
    }
}

/// The `ja` after a conditional jump is also a jump target (from the loop's other path), so
/// it keeps its own block.
#[test]
fn a_ja_reached_otherwise_stays() {
    let shared = "mov %r0, 0
mov %r2, 0
head:
add %r2, 1
jgt %r2, 30, out
mov %r3, %r2
and %r3, 3
jeq %r3, 0, latch
add %r0, %r2
jeq %r2, 7, out
latch:
ja head
out:
exit";
    // 1 + 2 + 3 + 5 + 6 + 7, leaving at 7.
    assert_eq!(compare(shared, &[0; 8], true).0, Ok(24));
}

/// clang's `if cond goto +1; exit` test, with `jmp32`, `lddw` and a stack store in it, and a
/// `ja32` latch.
#[test]
fn jmp32_test_with_a_ja32_latch() {
    let text = "mov %r0, 0
mov %r2, 0
head:
lddw %r4, 0x100000003
add %r0, %r4
stxdw [%r10-8], %r0
jlt32 %r2, 10, body
ldxdw %r0, [%r10-8]
exit
body:
add %r2, 1
ja32 head";
    assert!(compare(text, &[0; 8], true).0.is_ok());
}

/// A loop around a local call: the return site and the copied test both have late
/// predecessors. (The unreachable `exit` ends the main function, as the loader requires.)
#[test]
fn rotated_loop_around_a_local_call() {
    let text = "mov %r0, 0
mov %r6, 0
head:
add %r6, 1
jle %r6, 12, body
mov %r0, %r7
exit
body:
mov %r1, %r6
call local f
ja head
exit
f:
add %r7, %r1
mov %r0, %r7
exit";
    assert!(compare(text, &[0; 8], true).0.is_ok());
}

/// A switch in a loop, as clang lays it out: every case jumps back to the loop's latch block,
/// which ends in the loop test; the default case falls into it.
#[test]
fn switch_cases_jumping_back_to_the_test() {
    let text = "mov %r0, 5
mov %r2, 0
ja body
step:
add %r0, 1
next:
add %r1, 1
add %r2, 1
jlt %r2, 24, body
exit
body:
ldxb %r5, [%r1+0]
jgt %r5, 3, high
jeq %r5, 0, c0
jeq %r5, 1, c1
jeq %r5, 2, c2
ja step
c0:
mul %r0, 3
ja next
c1:
xor %r0, 0x55
ja next
c2:
add %r0, %r5
ja next
high:
jeq %r5, 4, c4
jeq %r5, 5, c5
ja step
c4:
lsh %r0, 1
ja next
c5:
rsh %r0, 1
ja next";
    let mem: Vec<u8> = (0..32u8).map(|i| (i * 5) % 7).collect();
    assert!(compare(text, &mem, true).0.is_ok());
    // Running out of memory inside the loop: the load at slot 8 faults.
    let err = compare(text, &mem[..10], false).0.expect_err("faults");
    assert!(err.contains("at 8 "), "{err}");
}

/// Random loops in clang's layout: a test of random ALU work (and maybe a load that runs out
/// of bounds) ending in a branch that continues the loop, then cases that each update r0,
/// maybe store, count and jump back to the test (or to a block that falls into it).
#[test]
fn random_rotated_loops_match_the_interpreter() {
    const MEM: usize = 64;
    let mut rng = Rng(0x1a70_u64 << 40 | 0x0007);
    let alu = [
        "add", "sub", "xor", "mul", "or", "lsh", "rsh", "add32", "xor32",
    ];
    for case in 0..300 {
        let mut in_bounds = true;
        let mut text = format!("mov %r0, {}\nmov %r2, 0\nmov %r4, 0\n", rng.below(1000));
        let entry_jump = rng.chance(30);
        if entry_jump {
            text.push_str("ja head\npre:\nadd %r4, 1\n");
        }
        text.push_str("head:\n");
        for _ in 0..rng.below(4) {
            let op = rng.pick(&alu);
            let shift = op.ends_with("sh");
            let imm = if shift { rng.below(8) } else { rng.below(100) };
            text.push_str(&format!("{op} %r{}, {imm}\n", rng.pick(&[0, 3, 4])));
        }
        if rng.chance(40) {
            let off = rng.below(MEM + 4);
            if off + 4 > MEM {
                in_bounds = false;
            }
            text.push_str(&format!("ldxw %r3, [%r1+{off}]\nadd %r0, %r3\n"));
        }
        let trips = 1 + rng.below(30);
        // The test's branch continues the loop; falling through leaves it.
        let leave = match rng.below(4) {
            0 => format!("jlt %r2, {trips}, body\nja done\nbody:\n"),
            1 => format!("jle32 %r2, {trips}, body\nja done\nbody:\n"),
            2 => format!("jne %r2, {trips}, body\nja done\nbody:\n"),
            _ => format!("jlt %r2, {trips}, body\nadd %r0, %r4\nexit\nbody:\n"),
        };
        text.push_str(&leave);
        let cases = 1 + rng.below(4);
        text.push_str("mov %r5, %r2\n");
        text.push_str(&format!("mod %r5, {cases}\n"));
        for c in 1..cases {
            text.push_str(&format!("jeq %r5, {c}, case{c}\n"));
        }
        for c in 0..cases {
            if c > 0 {
                text.push_str(&format!("case{c}:\n"));
            }
            let op = rng.pick(&alu);
            text.push_str(&format!("{op} %r0, {}\n", rng.below(8)));
            if rng.chance(30) {
                let off = rng.below(MEM + 2);
                if off + 1 > MEM {
                    in_bounds = false;
                }
                text.push_str(&format!("stxb [%r1+{off}], %r0\n"));
            }
            text.push_str("add %r2, 1\n");
            let back = if entry_jump && rng.chance(30) {
                "pre"
            } else {
                "head"
            };
            text.push_str(&format!("ja {back}\n"));
        }
        text.push_str("done:\nadd %r0, %r4\nexit\n");
        let mem: Vec<u8> = (0..MEM).map(|_| rng.below(256) as u8).collect();
        let code = rbpf::asm::assemble_bytes(&text).unwrap_or_else(|e| panic!("asm: {e}\n{text}"));
        let outcome = std::panic::catch_unwind(|| compare_code(&code, false, &mem, in_bounds));
        assert!(outcome.is_ok(), "case {case}:\n{text}");
    }
}

/// The benchmark's clang-built workloads (`benches/c/*.o`) on random inputs.
#[test]
fn clang_workloads_match_the_interpreter() {
    let mut rng = Rng(0xc1a6_0000_0000_0009);
    for name in [
        "add", "empty", "log2", "memcpy", "primes", "strcmp", "switch",
    ] {
        let object = bench_object(name);
        for _ in 0..4 {
            let len = 8 * (1 + rng.below(64));
            let mut mem: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            match name {
                // Two halves that agree up to a random point.
                "strcmp" => {
                    let half = len / 2;
                    let same = rng.below(half + 1);
                    for i in 0..half {
                        mem[i] |= 1;
                        mem[half + i] = if i < same { mem[i] } else { mem[i] ^ 2 };
                    }
                    mem[half - 1] = 0;
                    mem[len - 1] = 0;
                }
                // A small bound for the trial division.
                "primes" => mem[..4].copy_from_slice(&(rng.below(300) as u32).to_le_bytes()),
                // Case values, mostly inside the switch.
                "switch" => {
                    for v in mem.chunks_mut(4) {
                        v[0] %= 40;
                        v[1..].fill(0);
                    }
                }
                _ => {}
            }
            let r0 = compare_code(&object, true, &mem, true).0;
            assert!(r0.is_ok(), "{name}: {r0:?}");
        }
    }
}
