//! Differential tests of the JIT's known values and proofs (`src/jit/translate.rs`, `Known`
//! and `Proof`): an access through a pointer known to be r10 plus a bounded offset inside the
//! static stack skips its bounds test, and so does a store to bytes a load through the same
//! register already proved when mem and the stack are the only regions; every pointer that
//! may leave the stack keeps its test. Each program runs on inputs that stay inside and,
//! where the program can leave, inputs that leave; the interpreter's per-instruction loop is
//! the oracle for its fast path, the JIT and the JIT with a limit.

mod common;

use common::engines;
use rbpf::Vm;
use rbpf::jit::JitMode;

/// The input: bytes 0 and 1 hold the value the programs index with (byte 1 is 0, so a
/// 16-bit load reads `first` too).
fn input(first: u8) -> Vec<u8> {
    let mut mem = vec![0u8; 64];
    mem[0] = first;
    for (i, b) in mem.iter_mut().enumerate().skip(2) {
        *b = (i * 37) as u8;
    }
    mem
}

/// Runs `text` on each input against the per-instruction interpreter; returns the outcomes.
fn agree(text: &str, firsts: &[u8]) -> Vec<Result<u64, String>> {
    firsts
        .iter()
        .map(|&first| {
            engines::against_per_instruction(text, true, &input(first), 1 << 20)
                .unwrap_or_else(|e| panic!("first byte {first}: {e}\n{text}"))
                .0
        })
        .collect()
}

/// A histogram of byte 0's top nibble in 16 u64 counters at r10 - 128, as clang writes
/// `count[a[i] >> 4]++`: the counter's address is r10 plus 8 x (0..15) minus 128.
const HISTOGRAM: &str = "ldxb %r4, [%r1+0]\nrsh32 %r4, 4\nlsh %r4, 3\nmov %r5, %r10\n\
    add %r5, -128\nadd %r5, %r4\nstdw [%r5+0], 5\nldxdw %r0, [%r5+0]\nadd %r0, 1\n\
    stxdw [%r5+0], %r0\nldxdw %r0, [%r5+0]\nadd %r0, %r4\nexit\n";

/// 16-byte slots from the bottom of the stack, indexed by a value loaded with `load` and
/// masked with `mask`: these decide whether the slot surely stays in the stack.
fn masked(load: &str, mask: u32) -> String {
    format!(
        "{load} %r4, [%r1+0]\nand %r4, {mask}\nlsh %r4, 4\nmov %r5, %r10\nadd %r5, -4096\n\
         add %r5, %r4\nstxdw [%r5+8], %r4\nldxdw %r0, [%r5+8]\nexit\n"
    )
}

/// Bytes of the JIT's code for assembly `text`.
fn size(text: &str) -> usize {
    let mut vm = Vm::new();
    vm.load(&rbpf::asm::assemble_bytes(text).unwrap()).unwrap();
    vm.compile(JitMode::Basic).unwrap();
    vm.jit_size().unwrap()
}

#[test]
fn bounded_stack_pointers_agree_everywhere() {
    let all: Vec<u8> = (0..=255).step_by(17).collect();
    assert!(agree(HISTOGRAM, &all).iter().all(Result::is_ok));
    // 255 x 16 + 8 + 8 = 4096: the largest slot ends exactly at the top.
    assert!(agree(&masked("ldxb", 255), &all).iter().all(Result::is_ok));
    assert!(agree(&masked("ldxh", 255), &all).iter().all(Result::is_ok));
}

#[test]
fn pointers_that_may_leave_the_stack_stay_checked() {
    // A 16-bit index masked to 9 bits reaches past the top (from 256 on).
    let wide = masked("ldxh", 511);
    assert!(agree(&wide, &[0, 1, 255]).iter().all(Result::is_ok));
    let mut mem = input(0);
    mem[1] = 1; // 256 x 16 + 8: the slot starts at the top
    let out = engines::against_per_instruction(&wide, true, &mem, 1 << 20).unwrap();
    assert!(out.0.is_err(), "{:?}", out.0);

    // A 32-bit add that wraps: w5 = (x & 15) + 0xfffffff0 is below 2^32 only for x = 0..15,
    // and then lands far above the stack.
    let wraps = "ldxb %r4, [%r1+0]\nand %r4, 15\nmov32 %r5, %r4\nadd32 %r5, -16\n\
        mov %r6, %r10\nadd %r6, %r5\nldxb %r0, [%r6-8]\nexit\n";
    assert!(agree(wraps, &[0, 7, 15]).iter().all(Result::is_err));

    // A 64-bit byte swap is not a 32-bit value.
    let swapped = "mov %r3, 8\nbe64 %r3\nmov %r4, %r10\nadd %r4, %r3\nldxb %r0, [%r4-8]\nexit\n";
    assert!(agree(swapped, &[0]).iter().all(Result::is_err));

    // A choice made by selects: one path puts the offset out of the stack.
    let chosen = "ldxb %r2, [%r1+0]\nmov %r3, 8\njgt %r2, 100, +1\nmov %r3, 5000\n\
        mov %r4, %r10\nsub %r4, %r3\nstdw [%r4+0], 1\nldxdw %r0, [%r4+0]\nexit\n";
    let outcomes = agree(chosen, &[0, 200]);
    assert!(outcomes[0].is_err() && outcomes[1].is_ok(), "{outcomes:?}");

    // Below the bottom, through a constant that only looks small as a 32-bit value.
    let below = "mov %r4, %r10\nlddw %r3, 0xfffffffffffff000\nadd %r4, %r3\nldxb %r0, [%r4-8]\n\
        exit\n";
    assert!(agree(below, &[0]).iter().all(Result::is_err));
}

#[test]
fn the_test_is_skipped_only_where_the_stack_is_certain() {
    // The same program with a mask that keeps the slot inside compiles to less code than
    // with one that may not (one bounds test per access fewer).
    let inside = size(&masked("ldxh", 255));
    let maybe_outside = size(&masked("ldxh", 511));
    // A byte never exceeds 255, whatever the mask.
    assert_eq!(size(&masked("ldxb", 511)), size(&masked("ldxb", 255)));
    assert!(
        inside < maybe_outside,
        "inside {inside} bytes, maybe outside {maybe_outside}"
    );
}

/// `p[i] += 1` on 8-byte slots of mem, indexed by byte 0: the load's test, then a store to
/// `store_off` (the load's slot, or the next one).
fn increment(store_off: i16) -> String {
    format!(
        "ldxb %r4, [%r1+0]\nlsh %r4, 3\nmov %r5, %r1\nadd %r5, %r4\nldxdw %r0, [%r5+8]\n\
         add %r0, 1\nstxdw [%r5+{store_off}], %r0\nexit\n"
    )
}

#[test]
fn a_store_to_bytes_a_load_proved_reuses_the_test_when_all_regions_are_writable() {
    // Slots 1..=7 are inside the 64-byte input: from index 7 on the load faults, and at
    // index 6 the store to the next slot does.
    for off in [8, 16] {
        let outcomes = agree(&increment(off), &[0, 5, 6, 7, 200]);
        let ok: Vec<bool> = outcomes.iter().map(Result::is_ok).collect();
        assert_eq!(
            ok,
            [true, true, off == 8, false, false],
            "{off}: {outcomes:?}"
        );
    }
    // Without other regions (no data sections, maps or callback) mem and the stack are the
    // only regions, both writable: the store to the loaded bytes needs no test of its own.
    // A test is a compare, a branch and a cold exit recording the fault: well over 16
    // bytes. (Were the store tested, the two programs would differ by its offset only.)
    let same = size(&increment(8));
    let next = size(&increment(16));
    assert!(same + 16 < next, "same slot {same} bytes, next slot {next}");
}
