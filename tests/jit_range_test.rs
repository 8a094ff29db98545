//! Differential tests of fused range tests (`src/jit/range_test.rs`): two conditional jumps
//! on one register that together test an interval compile to one unsigned compare. Each
//! program runs on values at and around its bounds (in both widths, with high bits set that
//! a 32-bit compare ignores) in the per-instruction interpreter, the fast path, the JIT and
//! the JIT with a limit (which keeps the jumps apart).

mod common;

use common::engines;

/// Values at and around `bounds`, each also with bits above 32 set and as a negative number.
fn values(bounds: &[i64]) -> Vec<u64> {
    let mut out = vec![
        0,
        u64::MAX,
        1 << 63,
        (1 << 63) - 1,
        1 << 32,
        u64::from(u32::MAX),
    ];
    for &b in bounds {
        for d in -2..=2 {
            let v = b.wrapping_add(d) as u64;
            out.extend([v, v ^ (7 << 40), u64::from(v as u32)]);
        }
    }
    out
}

/// Runs `text` on each value (the program reads it from mem[0..8]) in every engine; returns
/// the results.
fn results(text: &str, xs: &[u64]) -> Vec<u64> {
    xs.iter()
        .map(|&x| {
            let mut mem = x.to_le_bytes().to_vec();
            mem.resize(16, 0);
            engines::against_per_instruction(text, true, &mem, 1 << 20)
                .unwrap_or_else(|e| panic!("x = {x:#x}: {e}\n{text}"))
                .0
                .unwrap_or_else(|e| panic!("x = {x:#x}: {e}\n{text}"))
        })
        .collect()
}

/// Both jumps to one place (`c < lo || c > hi` skips), as clang -O1 writes `if (c >= lo &&
/// c <= hi)`; `first` and `second` are the two jump mnemonics with their constants.
fn same_target(first: &str, second: &str) -> String {
    format!(
        "ldxdw %r5, [%r1+0]\nmov %r0, 1\n{first}, skip\n{second}, skip\nmov %r0, 2\n\
         skip:\nexit\n"
    )
}

/// The first jump past the second, the second to the inside.
fn to_inside(first: &str, second: &str) -> String {
    format!(
        "ldxdw %r5, [%r1+0]\nmov %r0, 1\n{first}, out\n{second}, inside\nout:\nexit\n\
         inside:\nmov %r0, 2\nexit\n"
    )
}

/// Two jumps (mnemonic and operands, without the target) and the bounds of their interval.
type Pair<'a> = (&'a str, &'a str, &'a [i64]);

/// A program around a pair of jumps ([`same_target`] or [`to_inside`]).
type Shape = fn(&str, &str) -> String;

#[test]
fn interval_tests_agree_in_every_width_and_signedness() {
    let pairs: &[Pair] = &[
        ("jlt32 %r5, 97", "jgt32 %r5, 122", &[97, 122]),
        ("jgt32 %r5, 122", "jlt32 %r5, 97", &[97, 122]),
        ("jle %r5, 96", "jge %r5, 123", &[96, 123]),
        ("jslt %r5, -10", "jsgt %r5, 10", &[-10, 10]),
        ("jslt32 %r5, -10", "jsgt32 %r5, 10", &[-10, 10]),
        ("jsle %r5, -1", "jsge %r5, 0x7fffffff", &[-1, 0x7fff_ffff]),
        ("jlt %r5, 1", "jgt %r5, 0xffffffff", &[1, 0xffff_ffff]),
        (
            "jslt32 %r5, 0x80000001",
            "jsgt32 %r5, -2",
            &[i64::from(i32::MIN), -2],
        ),
    ];
    let inside: &[Pair] = &[
        ("jlt32 %r5, 97", "jle32 %r5, 122", &[97, 122]),
        ("jgt %r5, 122", "jge %r5, 97", &[97, 122]),
        ("jslt %r5, -5", "jslt %r5, 6", &[-5, 6]),
        ("jsgt32 %r5, 5", "jsgt32 %r5, -6", &[-6, 5]),
    ];
    let shapes: [(&[Pair], Shape); 2] = [(pairs, same_target), (inside, to_inside)];
    let mut tested = 0;
    for (pairs, shape) in shapes {
        for (first, second, bounds) in pairs {
            let xs = values(bounds);
            let outcomes = results(&shape(first, second), &xs);
            // The interval is neither empty nor everything: both outcomes occur.
            assert!(
                outcomes.contains(&1) && outcomes.contains(&2),
                "{first}; {second}"
            );
            tested += xs.len();
        }
    }
    assert!(tested > 300);
}

#[test]
fn pairs_that_are_no_interval_keep_their_meaning() {
    // Both bounds on one side, different registers, and a jump that lands on the second
    // compare: none fuses, and all still agree.
    let programs = [
        same_target("jlt %r5, 97", "jlt %r5, 122"),
        "ldxdw %r5, [%r1+0]\nmov %r4, %r5\nrsh %r4, 1\nmov %r0, 1\njlt %r5, 97, skip\n\
         jgt %r4, 60, skip\nmov %r0, 2\nskip:\nexit\n"
            .to_owned(),
        "ldxdw %r5, [%r1+0]\nmov %r0, 1\njeq %r5, 7, second\njlt %r5, 97, skip\nsecond:\n\
         jgt %r5, 122, skip\nmov %r0, 2\nskip:\nexit\n"
            .to_owned(),
    ];
    for text in &programs {
        let outcomes = results(text, &values(&[7, 97, 122, 200]));
        assert!(outcomes.contains(&1) && outcomes.contains(&2), "{text}");
    }
    // Interval tests whose inside only computes registers, which if-conversion may turn into
    // selects, one or both jumps of the pair.
    let selected = [
        "ldxdw %r5, [%r1+0]
mov %r0, 1
jlt32 %r5, 97, skip
jgt32 %r5, 122, skip
         add %r0, 1
skip:
exit
",
        "ldxdw %r5, [%r1+0]
mov %r0, 1
mov %r3, 0
jlt32 %r5, 97, skip
jgt32 %r5, 122, skip
         add %r0, 1
mov %r3, %r5
add %r3, 7
mul %r3, 3
add %r3, 5
lsh %r3, 2
rsh %r3, 1
         skip:
mul %r0, %r3
add %r0, 1
exit
",
    ];
    for text in selected {
        let outcomes = results(text, &values(&[97, 122]));
        assert!(outcomes.iter().any(|&o| o != outcomes[0]), "{text}");
    }
    // Rays that cover everything between them: every value skips.
    let everything = same_target("jgt %r5, 122", "jlt %r5, 200");
    assert!(
        results(&everything, &values(&[122, 200]))
            .iter()
            .all(|&r| r == 1)
    );
}

/// Found by `fuzz/run.sh diff`: the second jump of a fusable pair roots a compare tree that
/// becomes a switch table, behind which the code the fused compare would jump to is not
/// translated (Cranelift then met a branch to an empty block). Such pairs stay apart.
#[test]
fn a_pair_whose_second_jump_roots_a_switch_compiles() {
    const PROGRAM: &str = "mov32 %r0, 0x3b000000\n\
         mov %r0, -2\n\
         jsgt %r1, -1, L7\n\
         mov32 %r0, 1\n\
         jge32 %r8, 0, L5\n\
         L5:\n\
         jsgt %r1, -1, L7\n\
         jsgt %r1, -37633, L11\n\
         L7:\n\
         mov32 %r0, 64255\n\
         mov32 %r0, 0\n\
         mov %r1, -2\n\
         jsgt %r1, -1, L15\n\
         L11:\n\
         mov32 %r0, 1\n\
         jge32 %r0, 0, L13\n\
         L13:\n\
         jsgt %r1, -1, L15\n\
         jsgt %r1, -1, L19\n\
         L15:\n\
         mov32 %r0, 1\n\
         jge %r0, 0, L17\n\
         L17:\n\
         jsgt %r1, -2, L18\n\
         L18:\n\
         jsgt %r1, -1, L23\n\
         L19:\n\
         mov32 %r0, 1\n\
         jge32 %r0, 0, L21\n\
         L21:\n\
         jsgt %r1, -1, L23\n\
         jsgt %r5, 0xffffff, L27\n\
         L23:\n\
         jsgt %r1, -1, L25\n\
         jsgt %r1, -37633, L29\n\
         L25:\n\
         mov32 %r0, 64255\n\
         mov32 %r0, 0\n\
         L27:\n\
         mov %r1, -2\n\
         jsgt %r1, -1, L33\n\
         L29:\n\
         jsgt %r1, -1, L31\n\
         jsgt %r1, -1, L35\n\
         L31:\n\
         mov32 %r0, 1\n\
         jge %r0, 0, L33\n\
         L33:\n\
         jsgt %r1, -1, L35\n\
         mov32 %r0, 2\n\
         L35:\n\
         exit\n\
         exit\n\
         div32 %r0, 0\n\
         jsgt %r1, -1, L40\n\
         mov32 %r0, 2\n\
         L40:\n\
         exit\n";
    for x in [0u64, 1, 5, u64::MAX, (-37633i64) as u64, (-37634i64) as u64] {
        let mut mem = x.to_le_bytes().to_vec();
        mem.resize(16, 0);
        let text = format!("ldxdw %r1, [%r1+0]\n{PROGRAM}");
        // Any outcome will do, as long as every engine gives it.
        let _agreed = engines::against_per_instruction(&text, true, &mem, 1 << 20)
            .unwrap_or_else(|e| panic!("x = {x:#x}: {e}"));
    }
    // As the fuzzer ran it: r1 is the (empty) input's address.
    let _agreed = engines::against_per_instruction(PROGRAM, true, &[], 1 << 20).unwrap();
}
