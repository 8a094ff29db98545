//! Differential tests of the JIT's bulk copy-loop fast path (`src/jit/idiom.rs`): random copy
//! loops in the shapes the recogniser accepts — clang's indexed loop and pointer-increment
//! loops, every element width, `<`, `>` and `!=` back edges — over sources and destinations in
//! memory and on the stack, disjoint, overlapping both ways, partly or wholly out of bounds,
//! and with trip counts of zero (a do-while body still runs once). The interpreter's
//! per-instruction loop is the oracle: its fast path (which runs copy loops in bulk too), the
//! JIT, and the JIT with an instruction limit (no bulk path) must give the same r0, the same
//! error at the same pc and the same final memory, with bounds checks on and (for in-bounds
//! loops) off.

mod common;

use common::engines;
use common::rng::Rng;
use common::{bench_object, run_object};

/// Bytes of input memory.
const MEM_LEN: i64 = 256;

/// One generated loop and whether all its accesses stay in bounds.
struct Case {
    text: String,
    in_bounds: bool,
}

/// Runs `text` in the interpreter and the JIT (and the JIT with a limit, which has no fast
/// path) on the same memory; returns the outcomes' description when they differ.
fn compare(text: &str, bounds: bool, mem: &[u8]) -> Result<(), String> {
    engines::against_per_instruction(text, bounds, mem, 1 << 20)
        .map(|_| ())
        .map_err(|why| format!("bounds {bounds}: {why}"))
}

fn load_store(width: i64) -> (&'static str, &'static str) {
    match width {
        1 => ("ldxb", "stxb"),
        2 => ("ldxh", "stxh"),
        4 => ("ldxw", "stxw"),
        _ => ("ldxdw", "stxdw"),
    }
}

/// A random copy loop. r3/r4 are source/destination, each in mem (r1-relative) or on the
/// stack (r10-relative); the program returns a hash of every register the loop touched,
/// with addresses made relative to their base so both engines' stacks compare equal.
fn generate(rng: &mut Rng) -> Case {
    let width = rng.pick(&[1i64, 1, 2, 4, 8]);
    let (ld, st) = load_store(width);
    let count = rng.pick(&[0i64, 1, 2, 3, 7, 16, 31, 40]);
    let on_stack = [rng.chance(25), rng.chance(25)];
    let mut in_bounds = true;
    // Give the top of the stack known contents (neither engine promises what a program that
    // reads unwritten stack sees).
    let mut setup = String::from(
        "mov %r7, %r10\nadd %r7, -528\nmov %r9, 0x1234567\nfill:\nstxdw [%r7+0], %r9\n\
         mul %r9, 0x5851f42d\nadd %r9, 1\nadd %r7, 8\njlt %r7, %r10, fill\n",
    );
    let mut bases = ["%r1", "%r1"];
    for (k, reg) in ["%r3", "%r4"].iter().enumerate() {
        let bytes = count.max(1) * width;
        let start = if on_stack[k] {
            bases[k] = "%r10";
            // Somewhere in the top 512 bytes of the stack, sometimes past its top.
            let start = -(rng.below(512) as i64) - 1;
            if start + bytes > 0 {
                in_bounds = false;
            }
            start
        } else {
            let start = match rng.below(10) {
                0 => -(rng.below(16) as i64) - 1,
                1 => MEM_LEN - rng.below(24) as i64,
                _ => rng.below((MEM_LEN / 2) as usize) as i64,
            };
            if start < 0 || start + bytes > MEM_LEN {
                in_bounds = false;
            }
            start
        };
        setup.push_str(&format!("mov {reg}, {}\nadd {reg}, {start}\n", bases[k]));
    }
    // Overlap often: sometimes point the destination just past or before the source.
    if !on_stack[0] && !on_stack[1] && rng.chance(30) {
        let shift = rng.pick(&[-8i64, -3, -1, 1, 2, 5, 8]);
        setup.push_str(&format!("mov %r4, %r3\nadd %r4, {shift}\n"));
        // Recompute bounds conservatively: treat as possibly out of bounds.
        in_bounds = false;
    }
    let mut text = setup;
    let shape = rng.below(3);
    let back_edge = rng.below(3);
    match shape {
        // Pointer increments; the bound is the source's end.
        0 | 1 => {
            text.push_str(&format!("mov %r6, %r3\nadd %r6, {}\n", count * width));
            let (first, second) = if shape == 0 {
                ("%r3", "%r4")
            } else {
                ("%r4", "%r3")
            };
            let cond = match back_edge {
                0 => "jlt %r3, %r6, loop".to_owned(),
                1 => "jgt %r6, %r3, loop".to_owned(),
                _ => "jne %r3, %r6, loop".to_owned(),
            };
            text.push_str(&format!(
                "loop:\n{ld} %r0, [%r3+0]\n{st} [%r4+0], %r0\nadd {first}, {width}\n\
                 add {second}, {width}\n{cond}\n"
            ));
        }
        // clang's indexed form.
        _ => {
            text.push_str(&format!("mov %r5, 0\nmov %r7, {}\n", count * width));
            let cond = match back_edge {
                0 => "jgt %r7, %r5, loop",
                1 => "jlt %r5, %r7, loop",
                _ => "jne %r5, %r7, loop",
            };
            text.push_str(&format!(
                "loop:\nmov %r0, %r4\nadd %r0, %r5\nmov %r8, %r3\nadd %r8, %r5\n\
                 {ld} %r8, [%r8+0]\n{st} [%r0+0], %r8\nadd %r5, {width}\n{cond}\n"
            ));
        }
    }
    if count == 0 {
        // The body runs once; a != loop that starts equal then walks until it faults.
        in_bounds = false;
    }
    // In the indexed shape r0 is a destination address.
    let r0_base = if shape == 2 { bases[1] } else { "0" };
    // Hash r0, r5, r8 and the pointers relative to their bases.
    text.push_str(&format!(
        "sub %r3, {}\nsub %r4, {}\nsub %r0, {r0_base}\nmov %r9, %r0\nlsh %r9, 7\nxor %r9, %r3\n\
         lsh %r9, 7\nxor %r9, %r4\nlsh %r9, 7\nxor %r9, %r5\nlsh %r9, 7\nxor %r9, %r8\n\
         mov %r0, %r9\nexit\n",
        bases[0], bases[1]
    ));
    Case { text, in_bounds }
}

#[test]
fn random_copy_loops_match_the_interpreter() {
    let mut rng = Rng(0xc09_1005_feed_0001);
    let mut failures = Vec::new();
    let count = std::env::var("RBPF_IDIOM_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for _ in 0..count {
        let case = generate(&mut rng);
        let mut mem = vec![0u8; MEM_LEN as usize];
        for b in &mut mem {
            *b = rng.next() as u8;
        }
        for bounds in [true, false] {
            if !bounds && !case.in_bounds {
                continue;
            }
            if let Err(why) = compare(&case.text, bounds, &mem) {
                failures.push(format!("{why}\n{}", case.text));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures; first:\n{}",
        failures.len(),
        failures[0]
    );
}

/// The clang-built byte-copy loop of the benchmark (`benches/c/memcpy.o`) gives the same
/// result and memory in both engines, in bounds and when the buffer is cut short (the copy
/// then faults part-way, after the same stores).
#[test]
fn clang_byte_copy_matches_the_interpreter() {
    let object = bench_object("memcpy");
    let mut rng = Rng(0xc1a9_0000_0000_0001);
    for len in [0usize, 1, 2, 3, 64, 255, 1024] {
        let mut mem: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let run = |jit: bool, mem: &mut Vec<u8>| run_object(&object, jit, 0, mem);
        let mut jit_mem = mem.clone();
        let interp = run(false, &mut mem);
        let jit = run(true, &mut jit_mem);
        // (The interpreter here runs the loop in bulk too; the random sweep above compares
        // both with the per-instruction loop.)
        assert_eq!(interp, jit, "length {len}");
        assert_eq!(mem, jit_mem, "length {len}");
    }
}

/// A random compare tree over r4 (every 64-bit compare with an immediate, forward jumps to
/// later compares or to leaves, `ja` chains), as a compiler lowers a `switch`.
fn switch_program(rng: &mut Rng) -> String {
    const CONDS: [&str; 10] = [
        "jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle",
    ];
    let nodes = 4 + rng.below(9);
    let leaves = 2 + rng.below(5);
    let mut text = String::from("ldxdw %r4, [%r1+0]\nmov %r0, 100\n");
    for k in 0..nodes {
        let target = if rng.chance(40) && k + 1 < nodes {
            format!("n{}", k + 1 + rng.below(nodes - k - 1))
        } else {
            format!("l{}", rng.below(leaves))
        };
        let constant = rng.below(24) as i64 - 4;
        text.push_str(&format!(
            "n{k}:\n{} %r4, {constant}, {target}\n",
            rng.pick(&CONDS)
        ));
        if rng.chance(15) {
            // A ja in the middle of the tree (its fall-through slot is then dead).
            text.push_str(&format!("ja l{}\n", rng.below(leaves)));
        }
    }
    text.push_str(&format!("ja l{}\n", rng.below(leaves)));
    for l in 0..leaves {
        text.push_str(&format!("l{l}:\nadd %r0, {}\nexit\n", l + 1));
    }
    text
}

#[test]
fn random_switches_match_the_interpreter() {
    let mut rng = Rng(0x5717_c400_0000_0003);
    let values: Vec<i64> = (-6..26)
        .chain([
            i64::MIN,
            i64::MAX,
            -1 << 32,
            1 << 32,
            0x1_0000_0003,
            -100_000,
        ])
        .collect();
    let mut failures = Vec::new();
    for _ in 0..150 {
        let text = switch_program(&mut rng);
        for &v in &values {
            let mut mem = v.to_le_bytes().to_vec();
            mem.resize(16, 0);
            if let Err(why) = compare(&text, true, &mem) {
                failures.push(format!("value {v}: {why}\n{text}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures; first:\n{}",
        failures.len(),
        failures[0]
    );
}

/// The clang-built switch of the benchmark (`benches/c/switch.o`) in both engines, on values
/// inside and outside its cases.
#[test]
fn clang_switch_matches_the_interpreter() {
    let object = bench_object("switch");
    let mut rng = Rng(0x5717_c400_0000_0004);
    let mut mem = Vec::new();
    for _ in 0..512 {
        let v: u32 = match rng.below(4) {
            0 => rng.next() as u32,
            _ => (rng.below(40) as u32).wrapping_sub(4),
        };
        mem.extend_from_slice(&v.to_le_bytes());
    }
    let run = |jit: bool, limit: u32| run_object(&object, jit, limit, &mut mem.clone());
    let oracle = run(false, 1 << 30);
    assert_eq!(run(false, 0), oracle);
    assert_eq!(run(true, 0), oracle);
}

/// Fuzzer finding (`fuzz/` diff target): a compare tree whose first compare jumps to the next
/// slot. That jump does not end its block, so taking it as the tree's root left the slots
/// after the table in a terminated block and the translator panicked ("translator panic":
/// the JIT refused a program the interpreter runs). Jumps to the next slot are leaves now.
#[test]
fn compare_tree_through_a_jump_to_the_next_slot() {
    let text = "mov32 %r1, 3
jgt %r1, 3, +0
jgt %r1, 126, +2
jgt %r1, 4, +1
jgt %r1, 4, +1
jgt32 %r0, 0x950000, +0
exit";
    for bounds in [true, false] {
        compare(text, bounds, &[0; 8]).unwrap();
    }
}

/// Loops the generalised recogniser takes (counters moving down, `<=`/`>=`/signed tests, a
/// conditional exit followed by `ja` back, fills with an immediate or an invariant register),
/// started in bounds, overlapping and running off either end of memory.
#[test]
fn general_copy_and_fill_loops_match_the_interpreter() {
    let bodies = [
        // Copy down: a count moving down to zero, pointers moving up.
        "mov %r5, %r8\nadd %r5, %r8\nloop:\nldxh %r0, [%r3+0]\nstxh [%r4+0], %r0\nadd %r3, 2\n\
         add %r4, 2\nadd %r5, -1\njne %r5, %r8, loop\nexit\n",
        // Backward copy: addresses and count moving down, `>` test.
        "mov %r5, %r8\nlsh %r5, 2\nadd %r3, %r5\nadd %r4, %r5\nloop:\nadd %r3, -4\nadd %r4, -4\n\
         ldxw %r0, [%r3+0]\nstxw [%r4+0], %r0\nadd %r8, -1\njgt %r8, 0, loop\nexit\n",
        // A `jeq` exit then `ja` back (the test at the bottom, clang's endless-loop shape).
        "mov %r5, 0\nloop:\nmov %r6, %r3\nadd %r6, %r5\nldxb %r0, [%r6+0]\nmov %r6, %r4\n\
         add %r6, %r5\nstxb [%r6+0], %r0\nadd %r5, 1\njeq %r5, %r8, out\nja loop\nout:\nexit\n",
        // Signed `<=` bound, index form, words.
        "mov %r5, 1\nmov %r7, %r8\nlsh %r7, 3\nloop:\nmov %r6, %r3\nadd %r6, %r5\n\
         ldxdw %r0, [%r6+0]\nmov %r6, %r4\nadd %r6, %r5\nstxdw [%r6+0], %r0\nadd %r5, 8\n\
         jsle %r5, %r7, loop\nexit\n",
        // Fill with an immediate, count down with `>=`.
        "loop:\nstb [%r4+0], 0x5a\nadd %r4, 1\nadd %r8, -1\njge %r8, 1, loop\nexit\n",
        // A copy placed after its exit: entered by a jump, leaving backward.
        "mov %r5, 0\nja loop\nout:\nmov %r0, %r5\nexit\nloop:\nmov %r6, %r3\nadd %r6, %r5\n\
         ldxb %r0, [%r6+0]\nmov %r6, %r4\nadd %r6, %r5\nstxb [%r6+0], %r0\nadd %r5, 1\n\
         jeq %r5, %r8, out\nja loop\n",
        // A fill inside an enclosing loop whose latch lies before it (a counting sort's
        // output pass at -O2): four runs of `count` bytes.
        "mov %r2, 0\nmov %r0, 0\nja outer\nnext:\nadd %r2, 1\njeq %r2, 4, done\nouter:\n\
         mov %r7, %r8\njeq %r7, 0, next\nmov %r9, %r2\nlsh %r9, 4\nfill:\nmov %r6, %r4\n\
         add %r6, %r0\nstxb [%r6+0], %r9\nadd %r0, 1\nadd %r7, -1\njeq %r7, 0, next\n\
         ja fill\ndone:\nexit\n",
        // Fill with an invariant register, half words, a `jge` exit then `ja` back.
        "mov %r9, 0x1234\nmov %r5, %r4\nmov %r7, %r8\nlsh %r7, 1\nadd %r5, %r7\nloop:\n\
         stxh [%r4+0], %r9\nadd %r4, 2\njge %r4, %r5, out\nja loop\nout:\nmov %r0, %r4\n\
         sub %r0, %r1\nexit\n",
    ];
    let mut rng = Rng(0xfeed_beef);
    let mem: Vec<u8> = (0..MEM_LEN as usize).map(|_| rng.next() as u8).collect();
    for body in bodies {
        for (src, dst, count) in [
            (0i64, 128i64, 16i64),
            (8, 9, 20),
            (9, 8, 20),
            (64, 64, 3),
            (200, 0, 40),
            (0, 230, 30),
            (-16, 40, 10),
            (100, 150, 1),
        ] {
            let text = format!(
                "mov %r3, %r1\nadd %r3, {src}\nmov %r4, %r1\nadd %r4, {dst}\nmov %r8, {count}\n\
                 {body}"
            );
            let code = rbpf::asm::assemble_bytes(&text).expect("assembles");
            let insns = rbpf::isa::decode_slots(&code).expect("slots");
            let census = rbpf::exec::census(&insns);
            assert_eq!(census.copy + census.fill, 1, "not recognised:\n{text}");
            for bounds in [true, false] {
                let in_bounds = src >= 0
                    && dst >= 0
                    && src + count * 8 + 16 <= MEM_LEN
                    && dst + count * 8 + 16 <= MEM_LEN;
                if !bounds && !in_bounds {
                    continue;
                }
                if let Err(why) = compare(&text, bounds, &mem) {
                    panic!("{why}\n{text}");
                }
            }
        }
    }
}
