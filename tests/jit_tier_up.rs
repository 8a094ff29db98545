//! Background tier-up (`src/jit/tier_up.rs`, `docs/jit-compile-time.md`): a compile whose
//! translation is large returns the first tier's code (baseline, or Cranelift's fast tier
//! where the baseline tier does not apply) behind an entry stub, and a thread of its own swaps
//! in the optimised code (translating the program too when it is very large). Every call,
//! before and after the swap, in both entry signatures and from several threads at once, gives the interpreter's result and memory; copies taken with `copy_jit`
//! are the final code and run anywhere; unloading or dropping a VM while its background
//! compile is queued or running is safe; with the setting off, nothing tiers up.

mod common;

use common::bench_object;
use common::mapping::Mapping;
use rbpf::Vm;
use rbpf::jit::JitMode;

/// The clang-built workloads that tier up (their translations are large enough), and the
/// ones too small to.
const TIERING: [&str; 7] = [
    "switch",
    "switch_value",
    "log2",
    "log2_bits",
    "primes",
    "memcpy",
    "strcmp",
];
const ONE_STEP: [&str; 1] = ["empty"];
/// Near the threshold: one step in basic mode, tiering in extended mode (whose entry adds IR).
const EITHER: [&str; 1] = ["add"];

/// Counting sort at -O3 (16 unrolled fill loops): large enough that its translation runs in
/// the background too (`TRANSLATE_IN_BACKGROUND_IR`), reading the VM's context there.
fn counting_sort() -> Vec<u8> {
    let path = format!(
        "{}/tests/corpus/obj/sort_counting-O3-v1.o",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Input memory: u32 words spread over every switch case and beyond, with zero bytes here
/// and there so the string workloads stop early; the first word, 200, is also the bound of
/// `primes`.
fn input() -> Vec<u8> {
    let mut state = 0x2545_f491_u64;
    let mut mem: Vec<u8> = (0..4096)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            if i % 4 == 0 {
                ((state >> 33) % 40) as u8
            } else if i % 97 == 0 {
                0
            } else {
                (state >> 40) as u8
            }
        })
        .collect();
    mem[..4].copy_from_slice(&200u32.to_le_bytes());
    mem
}

/// Held by every test: background compiles are bounded by the host's hardware threads (past
/// that, programs compile in one step), so tests running side by side could take each
/// other's turn and see no tier-up.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn vm_with(object: &[u8], background: bool) -> Vm {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.config_mut().background_tier_up = background;
    vm.load_elf(object, None).expect("loads");
    vm
}

/// One run's outcome: r0 (or the error, without addresses) and the final memory.
#[derive(PartialEq)]
struct Outcome(Result<u64, String>, Vec<u8>);

impl std::fmt::Debug for Outcome {
    /// The result and a digest of the memory (not its 4 KiB).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digest = self.1.iter().fold(0u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        write!(f, "{:?}, memory digest {digest:#x}", self.0)
    }
}

/// The interpreter's outcome on a copy of `mem`.
fn interpreted(vm: &Vm, mem: &[u8]) -> Outcome {
    let mut copy = mem.to_vec();
    let r = vm.execute(&mut copy).map_err(|e| common::error_key(&e));
    Outcome(r, copy)
}

/// The compiled code's outcome on a copy of `mem`.
fn jitted(vm: &Vm, mem: &[u8]) -> Outcome {
    let mut copy = mem.to_vec();
    let r = vm.execute_jit(&mut copy).map_err(|e| common::error_key(&e));
    Outcome(r, copy)
}

#[test]
fn first_and_final_code_agree_with_the_interpreter() {
    let _turn = one_at_a_time();
    let mem = input();
    let named = TIERING.iter().chain(&ONE_STEP).chain(&EITHER);
    for name in named.chain(&["sort_counting-O3-v1"]) {
        let object = if name.starts_with("sort_counting") {
            counting_sort()
        } else {
            bench_object(name)
        };
        for mode in [JitMode::Basic, JitMode::Extended] {
            let mut vm = vm_with(&object, true);
            let want = interpreted(&vm, &mem);
            vm.compile(mode).expect("compiles");
            // Straight after the compile: the first tier's code, unless the background
            // compile was quicker.
            assert_eq!(jitted(&vm, &mem), want, "{name} {mode:?}: first code");
            let tiered = vm.wait_for_tier_up();
            if !EITHER.contains(name) {
                assert_eq!(
                    tiered,
                    Some(!ONE_STEP.contains(name)),
                    "{name} {mode:?}: tiered up"
                );
            }
            assert_eq!(jitted(&vm, &mem), want, "{name} {mode:?}: final code");
            // The image a copy gets is the final, optimised code: the same size as a
            // compile in one step.
            let mut one_step = vm_with(&object, false);
            one_step.compile(mode).expect("compiles");
            assert_eq!(one_step.wait_for_tier_up(), Some(false));
            assert_eq!(vm.jit_size(), one_step.jit_size(), "{name} {mode:?}: size");
            let mut copy = vec![0u8; vm.jit_size().expect("compiled")];
            vm.copy_jit(&mut copy).expect("copies");
            let mapping = Mapping::new(&copy);
            let mut copy_mem = mem.clone();
            // SAFETY: the copy holds `mode` code compiled by `vm`, which is alive.
            let got = unsafe { mapping.run(mode, &mut copy_mem) };
            if let Ok(r0) = want.0 {
                assert_eq!(got, r0, "{name} {mode:?}: copy");
                assert!(copy_mem == want.1, "{name} {mode:?}: copy's memory");
            }
        }
    }
}

#[test]
fn copies_never_contain_the_entry_stub() {
    let _turn = one_at_a_time();
    // `copy_jit` and `jit_size` wait for the background compile, so a copy is never the
    // entry stub (whose jump would lead back into the VM).
    let object = bench_object("switch");
    let mut vm = vm_with(&object, true);
    let entry = vm.compile(JitMode::Basic).expect("compiles");
    let size = vm.jit_size().expect("compiled");
    let mut copy = vec![0u8; size];
    vm.copy_jit(&mut copy).expect("copies");
    // SAFETY: the entry stub is 16 readable bytes of the live image.
    let stub = unsafe { std::slice::from_raw_parts(entry, 16) };
    assert_eq!(&stub[..2], &[0x49, 0xbb], "movabs r11 at the entry");
    assert_ne!(&copy[..2], &stub[..2], "the copy has no stub");
    // The entry pointer stays the same after the swap.
    assert_eq!(vm.compile(JitMode::Basic).expect("cached"), entry);
}

#[test]
fn unloading_or_dropping_during_a_background_compile_is_safe() {
    let _turn = one_at_a_time();
    let mem = input();
    for name in ["switch", "memcpy", "sort_counting-O3-v1"] {
        let object = if name.starts_with("sort_counting") {
            counting_sort()
        } else {
            bench_object(name)
        };
        let want = interpreted(&vm_with(&object, true), &mem);
        for round in 0..40 {
            let mut vm = vm_with(&object, true);
            vm.compile(JitMode::Basic).expect("compiles");
            match round % 4 {
                // Dropped at once: the job is cancelled before or while it runs.
                0 => drop(vm),
                // Unloaded, reloaded and compiled again in the other mode.
                1 => {
                    vm.unload().expect("unloads");
                    vm.load_elf(&object, None).expect("reloads");
                    vm.compile(JitMode::Extended).expect("compiles");
                    assert_eq!(jitted(&vm, &mem), want, "{name}: after reload");
                }
                // Compiled again in the other mode, which replaces the image.
                2 => {
                    vm.compile(JitMode::Extended).expect("compiles");
                    assert_eq!(jitted(&vm, &mem), want, "{name}: other mode");
                }
                _ => assert_eq!(jitted(&vm, &mem), want, "{name}: first code"),
            }
        }
    }
}

#[test]
fn runs_on_other_threads_see_the_swap() {
    let _turn = one_at_a_time();
    let mem = input();
    let object = bench_object("switch");
    let mut vm = vm_with(&object, true);
    let want = interpreted(&vm, &mem);
    vm.compile(JitMode::Basic).expect("compiles");
    let vm = &vm;
    std::thread::scope(|s| {
        let runners: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..200 {
                        assert_eq!(jitted(vm, &mem), want);
                    }
                })
            })
            .collect();
        assert_eq!(vm.wait_for_tier_up(), Some(true));
        for r in runners {
            r.join().expect("runner");
        }
    });
}

#[test]
fn other_tiers_and_the_setting_off_compile_in_one_step() {
    let _turn = one_at_a_time();
    let mem = input();
    let object = bench_object("switch");
    for tier in [
        rbpf::JitTier::Optimised,
        rbpf::JitTier::Fast,
        rbpf::JitTier::Baseline,
    ] {
        let mut vm = vm_with(&object, true);
        vm.config_mut().jit_tier = tier;
        vm.compile(JitMode::Basic).expect("compiles");
        assert_eq!(vm.wait_for_tier_up(), Some(false), "{tier:?}");
    }
    let mut vm = vm_with(&object, false);
    let want = interpreted(&vm, &mem);
    assert_eq!(vm.wait_for_tier_up(), None, "nothing compiled yet");
    vm.compile(JitMode::Basic).expect("compiles");
    assert_eq!(vm.wait_for_tier_up(), Some(false));
    assert_eq!(jitted(&vm, &mem), want);
    // Translation always compiles in one step, with tier-up allowed or not.
    let mut vm = vm_with(&object, true);
    let mut buf = vec![0u8; 65536];
    let len = vm.translate(JitMode::Basic, &mut buf).expect("translates");
    let mapping = Mapping::new(&buf[..len]);
    let mut copy_mem = mem.clone();
    // SAFETY: Basic-mode code of `vm`, which is alive.
    let got = unsafe { mapping.run(JitMode::Basic, &mut copy_mem) };
    assert_eq!(Ok(got), want.0);
    assert!(copy_mem == want.1, "translated code's memory");
}
