//! Tests of the compare-loop fast-forward (`crate::exec::idiom::compare`) through whole runs
//! of both engines, counting what the fast-forward did.

use crate::exec::idiom::compare::take_counts;
use crate::jit::JitMode;
use crate::vm::Vm;

/// Runs ELF `object` on a copy of `mem` in the interpreter or (`jit`) compiled: the result,
/// the memory after, and the fast-forward counts of the run (iterations skipped, elements
/// evaluated one by one).
fn run_counting(
    object: &[u8],
    jit: bool,
    mem: &[u8],
) -> (Result<u64, crate::ExecError>, Vec<u8>, (u64, u64)) {
    let mut vm = Vm::new();
    vm.load_elf(object, None).expect("loads");
    if jit {
        vm.compile(JitMode::Basic).expect("compiles");
        // The optimised code, whose bulk skip these tests count: a program that tiers up
        // starts in the baseline tier, which has no compare-loop fast path.
        vm.wait_for_tier_up();
    }
    let mut run = mem.to_vec();
    take_counts();
    let result = if jit {
        vm.execute_jit(&mut run)
    } else {
        vm.execute(&mut run)
    };
    (result, run, take_counts())
}

/// clang 19's `-mcpu=v4` strcmp loops compare the carried byte through `w0 = w1; w0 &= 0xff`
/// with a plain byte: the fast-forward must skip nearly every iteration of a long equal
/// string, finding the first difference with chunked compares and the terminator with a
/// search, never evaluating elements one by one, in the interpreter and in the JIT.
#[test]
fn v4_strcmp_objects_skip_in_bulk() {
    let objects: [(&str, &[u8]); 4] = [
        (
            "strcmp_ptr-O2-v4",
            include_bytes!("../../tests/corpus/obj/strcmp_ptr-O2-v4.o"),
        ),
        (
            "strcmp_ptr-O1-v4",
            include_bytes!("../../tests/corpus/obj/strcmp_ptr-O1-v4.o"),
        ),
        (
            "strcmp_while_and-O2-v4",
            include_bytes!("../../tests/corpus/obj/strcmp_while_and-O2-v4.o"),
        ),
        (
            "strcmp_while_and-Os-v4",
            include_bytes!("../../tests/corpus/obj/strcmp_while_and-Os-v4.o"),
        ),
    ];
    let len = 100_000usize;
    let a = len + 16;
    let mut mem = vec![0u8; 32 + a + len + 64];
    mem[8..16].copy_from_slice(&(a as u64).to_le_bytes());
    for i in 0..len - 1 {
        let c = b'a' + (i % 26) as u8;
        mem[32 + i] = c;
        mem[32 + a + i] = c;
    }
    for (name, object) in objects {
        for jit in [false, true] {
            let (result, _, (skipped, one_by_one)) = run_counting(object, jit, &mem);
            assert_eq!(result.ok(), Some(0), "{name} jit {jit}");
            assert!(
                skipped >= len as u64 - 2,
                "{name} jit {jit}: skipped {skipped}"
            );
            assert_eq!(
                one_by_one, 0,
                "{name} jit {jit}: elements evaluated one by one"
            );
        }
    }
}

/// Insertion sort's inner loop (clang -Os, `-mcpu=v3`/`v4`) moves elements up by one while
/// they exceed the one being inserted: its store overwrites what the previous iteration
/// loaded, and its exit compares each element with an invariant. The interpreter
/// fast-forwards it (scans the original elements, then one overlapping move); the JIT runs
/// it as compiled code, which beats evaluating each element in the runtime. Both sort.
#[test]
fn insertion_sort_shifts_skip_in_the_interpreter_only() {
    let objects: [(&str, &[u8]); 2] = [
        (
            "sort_insertion-Os-v3",
            include_bytes!("../../tests/corpus/obj/sort_insertion-Os-v3.o"),
        ),
        (
            "sort_insertion-Os-v4",
            include_bytes!("../../tests/corpus/obj/sort_insertion-Os-v4.o"),
        ),
    ];
    let n = 300u32;
    let mut mem = vec![0u8; 32 + 4 * n as usize];
    mem[..8].copy_from_slice(&u64::from(n).to_le_bytes());
    // Descending: every insertion moves all the elements before it.
    for i in 0..n {
        let at = 32 + 4 * i as usize;
        mem[at..at + 4].copy_from_slice(&(n - i).to_le_bytes());
    }
    let mut sorted = mem.clone();
    for i in 0..n {
        let at = 32 + 4 * i as usize;
        sorted[at..at + 4].copy_from_slice(&(i + 1).to_le_bytes());
    }
    let moves = u64::from(n) * u64::from(n - 1) / 2;
    for (name, object) in objects {
        for jit in [false, true] {
            let (result, run, (skipped, one_by_one)) = run_counting(object, jit, &mem);
            assert_eq!(result.ok(), Some(1), "{name} jit {jit}");
            assert!(run == sorted, "{name} jit {jit}: not sorted");
            if jit {
                assert_eq!((skipped, one_by_one), (0, 0), "{name}: JIT fast-forwarded");
            } else {
                assert!(skipped >= moves - u64::from(n), "{name}: skipped {skipped}");
            }
        }
    }
}
