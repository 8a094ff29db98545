//! Differential tests of hoisted bounds checks (`src/jit/hoist.rs`, `docs/performance.md`):
//! random loops whose accesses are affine in an induction register — pointer walks up and
//! down (alone or with a second pointer moving in step, moved by a register, or copied from
//! a register the loop steps), scaled indexes over mem and the stack, invariant accesses,
//! loads and stores of every width before and after the register's update, counters tested
//! at the back edge, before it (also with a lead, `i + k <= n`) or at the head (counted
//! loops, with bounds below the start and near `u64::MAX`; also a pointer formed from the
//! counter, `p + i < end`) or signed (not counted), early
//! exits — started inside, near the edges of and outside their region, so that many run off
//! the end after some iterations. The interpreter's per-instruction loop is the oracle; the
//! JIT (which runs such loops as an unchecked copy while its per-iteration test holds) and
//! the JIT with an instruction limit (which never hoists) must give the same r0, the same
//! error at the same pc and the same final memory. In-bounds programs are also compared with
//! bounds checks off.

mod common;

use common::engines::{self, Outcome, engine};
use common::rng::Rng;
use common::{bench_object, run_object};

/// Bytes of input memory.
const MEM_LEN: usize = 256;

/// Compares the engines on `text` with the interpreter's per-instruction loop (selected by
/// an instruction limit, which also keeps the JIT from hoisting); returns the oracle's
/// outcome, or a description of the first difference.
fn compare(text: &str, mem: &[u8]) -> Result<Outcome, String> {
    let code = rbpf::asm::assemble_bytes(text).map_err(|e| format!("asm: {e}"))?;
    let limit = 1 << 22;
    let oracle = engine(false).limited(limit);
    let expected = engines::compare(
        &code,
        false,
        mem,
        oracle,
        &[
            ("JIT", engine(true)),
            ("JIT with a limit", engine(true).limited(limit)),
            ("interpreter fast path", engine(false)),
        ],
    )?;
    if expected.0.is_ok() {
        let checks_off = [("JIT, checks off", engine(true).bounds(false))];
        engines::check(&code, false, mem, &expected, &checks_off)?;
    }
    Ok(expected)
}

/// How the loop's addresses depend on the induction register r3.
#[derive(Clone, Copy)]
enum Walk {
    /// r3 is a pointer (into mem or the stack) moved by the step.
    Pointer { stack: bool },
    /// r3 is an index: addresses are `(r3 << shift) + base`.
    Index { shift: u32, stack: bool },
}

fn width_suffix(bytes: usize) -> &'static str {
    match bytes {
        1 => "b",
        2 => "h",
        4 => "w",
        _ => "dw",
    }
}

/// How a random loop counts its iterations in r4.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Control {
    /// `r4 -= 1; if r4 != 0 goto head`.
    DownToZero,
    /// `r4 -= 1; if r4 == 0 goto out; goto head`.
    ExitThenJumpDown,
    /// `r4 += s; if r4 < r9 goto head`.
    Up,
    /// `r4 += s; if r9 >= r4 goto head`.
    UpSwappedInclusive,
    /// `r4 += s; if r4 > r9 goto out; goto head`.
    ExitThenJumpUp,
    /// `r4 += s; if r4 + k > r9 goto out; goto head`.
    AheadThenJump(i64),
    /// `head: if r4 >= r9 goto out; ...; r4 += s; goto head`.
    AtHead,
    /// `r4 += s; r0 = r6 + r4; if r0 < r9 goto head`, the bound moved by r6 too: a pointer
    /// formed from a counter.
    SumUp,
    /// `head: r0 = r6 + r4; if r0 >= r9 goto out; ...; r4 += s; goto head`.
    SumAtHead,
    /// `r4 += s; if r4 <s r9 goto head`: signed, so never a counted loop.
    Signed,
}

impl Control {
    fn counts_down(self) -> bool {
        matches!(self, Control::DownToZero | Control::ExitThenJumpDown)
    }
}

/// A random hoistable loop (see the module comment).
fn generate(rng: &mut Rng) -> String {
    let walk = if rng.chance(50) {
        Walk::Pointer {
            stack: rng.chance(30),
        }
    } else {
        Walk::Index {
            shift: rng.below(4) as u32,
            stack: rng.chance(30),
        }
    };
    let step: i64 = rng.pick(&[1, 1, 2, 4, 8, -1, -2, -4]);
    // A pointer moved by a register instead (a matrix column): r2, set below, possibly to a
    // "negative" stride.
    let by_register = matches!(walk, Walk::Pointer { .. }) && rng.chance(25);
    // Or r3 copied from r2, which the loop steps instead (clang's unrolled loops), starting
    // equal to r3 or (so the follower test fails) not.
    let follows = matches!(walk, Walk::Pointer { .. }) && !by_register && rng.chance(25);
    let trips = 1 + rng.below(90);
    let ahead = rng.pick(&[1, 4, 8]);
    let control = rng.pick(&[
        Control::DownToZero,
        Control::DownToZero,
        Control::ExitThenJumpDown,
        Control::Up,
        Control::UpSwappedInclusive,
        Control::ExitThenJumpUp,
        Control::AheadThenJump(ahead),
        Control::AtHead,
        Control::SumUp,
        Control::SumAtHead,
        Control::Signed,
    ]);
    let sum = matches!(control, Control::SumUp | Control::SumAtHead);
    // The sum's operands in either order.
    let sum_lines = if rng.chance(50) {
        ["mov r0, r6", "add r0, r4"]
    } else {
        ["mov r0, r4", "add r0, r6"]
    };
    let counter_step: i64 = rng.pick(&[1, 1, 2, 4, 3]);
    let mut lines: Vec<String> = Vec::new();
    // Start: inside, near an edge or outside the region.
    let start: i64 = match rng.below(4) {
        0 => rng.below(MEM_LEN) as i64,
        1 => rng.below(16) as i64,
        2 => MEM_LEN as i64 - rng.below(16) as i64,
        _ => rng.below(600) as i64 - 300,
    };
    match walk {
        Walk::Pointer { stack: false } => {
            lines.push("mov r3, r1".into());
            lines.push(format!("add r3, {start}"));
        }
        Walk::Pointer { stack: true } => {
            lines.push("mov r3, r10".into());
            lines.push(format!("add r3, {}", -start));
        }
        Walk::Index { .. } => lines.push(format!("mov r3, {}", start / 8)),
    }
    // A second pointer moving with r3 (two strings compared in step), possibly in the other
    // region.
    let sibling = matches!(walk, Walk::Pointer { .. }) && rng.chance(40);
    if sibling {
        if rng.chance(50) {
            lines.push("mov r8, r1".into());
            lines.push(format!("add r8, {}", rng.below(MEM_LEN + 32) as i64 - 16));
        } else {
            lines.push("mov r8, r10".into());
            lines.push(format!("add r8, {}", -(rng.below(MEM_LEN) as i64)));
        }
    }
    if by_register {
        lines.push(format!("mov r2, {}", rng.pick(&[0i64, 1, 3, 8, 24, -8])));
    }
    if follows {
        lines.push("mov r2, r3".into());
        if rng.chance(20) {
            lines.push("add r2, 1".into());
        }
    }
    if control.counts_down() {
        lines.push(format!("mov r4, {trips}"));
    } else {
        // Up from a small start to a bound near `trips` steps away or below the start, or
        // from a start near u64::MAX (which wraps to small values) to a small bound. Every
        // loop ends within a few hundred iterations: the JIT runs without a limit.
        let near_max = rng.chance(5);
        let (start, bound): (i64, i64) = if near_max {
            (
                -(1 + rng.below(4) as i64),
                rng.below(trips * counter_step as usize) as i64,
            )
        } else {
            let start = rng.below(5) as i64;
            let bound = match rng.below(6) {
                0 => (start - rng.below(3) as i64).max(0),
                _ => (start + trips as i64 * counter_step + rng.below(5) as i64 - 2).max(0),
            };
            (start, bound)
        };
        lines.push(format!("mov r4, {start}"));
        lines.push(format!("lddw r9, {bound}"));
    }
    lines.push("mov r7, 1".into());
    lines.push("mov r6, r1".into());
    lines.push(format!("add r6, {}", rng.below(MEM_LEN)));
    if sum {
        lines.push("add r9, r6".into());
    }
    let head = lines.len();
    let mut exits = Vec::new();
    if control == Control::SumAtHead {
        lines.extend(sum_lines.map(String::from));
    }
    if matches!(control, Control::AtHead | Control::SumAtHead) {
        exits.push(lines.len());
        lines.push(String::new()); // patched below: jge r4 (or r0), r9, <epilogue>
    }

    let accesses = 1 + rng.below(4);
    let update_at = rng.below(accesses + 1);
    let mut early_exit = None;
    let update = |lines: &mut Vec<String>| {
        if by_register {
            lines.push("add r3, r2".into());
        } else if follows {
            lines.push(format!("add r2, {step}"));
            lines.push("mov r3, r2".into());
        } else {
            lines.push(format!("add r3, {step}"));
        }
        if sibling {
            lines.push(format!("add r8, {step}"));
        }
    };
    for i in 0..accesses {
        if i == update_at {
            update(&mut lines);
        }
        let bytes = rng.pick(&[1usize, 2, 4, 8]);
        let off = rng.below(17) as i64 - 8;
        let base = if rng.chance(20) {
            // Invariant: the same address every iteration.
            if rng.chance(50) {
                format!("r6{:+}", off)
            } else {
                format!("r10{:+}", -8 - rng.below(64) as i64)
            }
        } else {
            match walk {
                Walk::Pointer { .. } if sibling && rng.chance(50) => format!("r8{off:+}"),
                Walk::Pointer { .. } => format!("r3{off:+}"),
                Walk::Index { shift, stack } => {
                    lines.push("mov r5, r3".into());
                    if rng.chance(50) {
                        lines.push(format!("lsh r5, {shift}"));
                    } else {
                        lines.push(format!("mul r5, {}", 1 << shift));
                    }
                    if stack {
                        lines.push("add r5, r10".into());
                        format!("r5{:+}", off - 256)
                    } else {
                        lines.push("add r5, r1".into());
                        format!("r5{off:+}")
                    }
                }
            }
        };
        let w = width_suffix(bytes);
        match rng.below(3) {
            0 => lines.push(format!("ldx{w} r7, [{base}]")),
            1 => lines.push(format!("stx{w} [{base}], r7")),
            _ => lines.push(format!("st{w} [{base}], {}", rng.below(200))),
        }
        if early_exit.is_none() && rng.chance(15) {
            early_exit = Some(lines.len());
            lines.push(String::new()); // patched below: jeq r7, k, <epilogue>
        }
        if rng.chance(20) {
            lines.push("add r7, 3".into());
        }
    }
    if update_at == accesses {
        update(&mut lines);
    }
    let back = |lines: &Vec<String>| head as i64 - lines.len() as i64 - 1;
    if control.counts_down() {
        lines.push("sub r4, 1".into());
    } else {
        lines.push(format!("add r4, {counter_step}"));
    }
    match control {
        Control::DownToZero => lines.push(format!("jne r4, 0, {}", back(&lines))),
        Control::ExitThenJumpDown => {
            lines.push("jeq r4, 0, +1".into());
            lines.push(format!("ja {}", back(&lines)));
        }
        Control::Up => lines.push(format!("jlt r4, r9, {}", back(&lines))),
        Control::UpSwappedInclusive => lines.push(format!("jge r9, r4, {}", back(&lines))),
        Control::ExitThenJumpUp => {
            lines.push("jgt r4, r9, +1".into());
            lines.push(format!("ja {}", back(&lines)));
        }
        Control::AheadThenJump(ahead) => {
            lines.push("mov r0, r4".into());
            lines.push(format!("add r0, {ahead}"));
            lines.push("jgt r0, r9, +1".into());
            lines.push(format!("ja {}", back(&lines)));
        }
        Control::AtHead | Control::SumAtHead => lines.push(format!("ja {}", back(&lines))),
        Control::SumUp => {
            lines.extend(sum_lines.map(String::from));
            lines.push(format!("jlt r0, r9, {}", back(&lines)));
        }
        Control::Signed => lines.push(format!("jslt r4, r9, {}", back(&lines))),
    }
    let epilogue = lines.len();
    let to_epilogue = |at: usize| epilogue as i64 - at as i64 - 1;
    if let Some(at) = early_exit {
        lines[at] = format!("jeq r7, {}, {:+}", rng.below(4), to_epilogue(at));
    }
    for at in exits {
        let compared = if sum { "r0" } else { "r4" };
        lines[at] = format!("jge {compared}, r9, {:+}", to_epilogue(at));
    }
    // r0: where r3 ended (relative to its region for a pointer, as addresses differ between
    // runs) mixed with the last value.
    lines.push("mov r0, r3".into());
    match walk {
        Walk::Pointer { stack: false } => lines.push("sub r0, r1".into()),
        Walk::Pointer { stack: true } => lines.push("sub r0, r10".into()),
        Walk::Index { .. } => {}
    }
    lines.push("xor r0, r7".into());
    lines.push("exit".into());
    lines.join("\n")
}

#[test]
fn random_hoisted_loops_match_the_interpreter() {
    let mut rng = Rng(0x0401_57ed_0000_0001);
    let count = std::env::var("RBPF_HOIST_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let mut failures = Vec::new();
    let mut faulted = 0;
    for _ in 0..count {
        let text = generate(&mut rng);
        let mem: Vec<u8> = (0..MEM_LEN).map(|_| rng.next() as u8).collect();
        match compare(&text, &mem) {
            Ok(expected) => faulted += usize::from(expected.0.is_err()),
            Err(why) => failures.push(format!("{why}\n{text}")),
        }
    }
    println!("random_hoisted_loops: {count} programs, {faulted} of them fault");
    // Both kinds must be exercised: loops that finish and loops that run off their region.
    assert!(
        faulted > count / 10 && faulted < count * 9 / 10,
        "{faulted}"
    );
    assert!(
        failures.is_empty(),
        "{} of {count} differ; first:\n{}",
        failures.len(),
        failures[0]
    );
}

/// The clang-built strcmp of the benchmark (`benches/c/strcmp.o`, two pointers walking up
/// together) gives the same result in both engines: equal strings, strings that differ, and
/// strings without a terminator, which walk off the end of mem and fault at the same slot.
#[test]
fn clang_strcmp_matches_the_interpreter() {
    let object = bench_object("strcmp");
    let mut rng = Rng(0x57c0_3900_0000_0001);
    let run = |jit: bool, mem: &mut Vec<u8>| run_object(&object, jit, 0, mem);
    let mut faults = 0;
    for case in 0..200 {
        let len = rng.below(300);
        let mut mem: Vec<u8> = (0..len).map(|_| 1 + rng.below(3) as u8).collect();
        let half = len / 2;
        // Equal halves: without a terminator the walk runs off the end of mem.
        for i in 0..half.min(len - half) {
            mem[half + i] = mem[i];
        }
        if case % 4 != 0 {
            // A terminator or a difference somewhere.
            if half > 0 {
                let at = rng.below(half);
                if rng.chance(50) {
                    mem[at] = 0;
                    mem[half + at] = 0;
                } else {
                    mem[half + at] = 9;
                }
            }
        }
        let interp = run(false, &mut mem.clone());
        let jit = run(true, &mut mem);
        faults += usize::from(interp.is_err());
        assert_eq!(interp, jit, "case {case}, length {len}");
    }
    assert!(faults > 10, "only {faults} runs walked off the end");
}

/// A hoisted loop whose test is also rotated (`translate/layout.rs`: two `ja` latches back to
/// a short test): the checked translation copies the test at each latch, the unchecked copy
/// must not (its back edges run the iteration test). Strings with and without a terminator,
/// so that some runs walk off the end of mem.
#[test]
fn rotated_and_hoisted_loop_matches_the_interpreter() {
    let text = "mov r3, r1\nmov r4, 0\n\
                ldxb r2, [r3]\njne r2, 0, +1\nja +6\n\
                add r4, r2\nadd r3, 1\njeq r4, 7, +1\nja -7\nadd r4, 1\nja -9\n\
                mov r0, r4\nexit";
    let mut rng = Rng(0x0707_a7ed_0000_0001);
    let mut faults = 0;
    for len in 0..120 {
        let mut mem: Vec<u8> = (0..len).map(|_| 1 + rng.below(5) as u8).collect();
        if len > 0 && rng.chance(50) {
            let at = rng.below(len);
            mem[at] = 0;
        }
        let expected = compare(text, &mem).unwrap_or_else(|why| panic!("length {len}: {why}"));
        faults += usize::from(expected.0.is_err());
    }
    assert!(faults > 10 && faults < 110, "{faults}");
}
