//! Target `object`: ELF bytes → `Object` → load → a short test run of every program that
//! loaded.
//!
//! The input is an ELF object (seeds: the checked-in objects of `tests/bpf/object/`,
//! `tests/kernel_corpus/` and `examples-c/bpf/`). It goes through the object API as a host
//! would use it: `Object::from_bytes`, a size for every map declared with `max_entries = 0`,
//! `load()`, then one `ObjectProgram::test_run` per loaded program over a small frame (or a
//! small plain context for types without a packet) in the interpreter and, for one input in
//! four, once more with every program compiled. Every VM has the instruction limit set, so no run hangs.
//! Errors anywhere are fine; a panic, a crash, a hang or a leak (libFuzzer's RSS limit) is a
//! finding. There is no oracle here: the programs share maps, so an earlier run legitimately
//! changes what a later one sees.

use rbpf::Vm;
use rbpf::jit::JitMode;
use rbpf::kernel::context::ContextKind;
use rbpf::kernel::object::Object;
use rbpf::kernel::test_run::TestRunOptions;

use crate::elf::PACKET;
use crate::harness::{LOOP_LIMIT, explaining};

/// The size given to maps declared with `max_entries = 0` (small: every run stays cheap).
const SIZED_ENTRIES: u32 = 16;
/// The context of a test run for types without a packet (`pt_regs` and the like fit in it).
const PLAIN_CTX_LEN: usize = 256;

/// Whether this input also runs compiled code: one in four, chosen by a hash of the whole
/// input so that a mutation anywhere may flip it.
fn use_jit(data: &[u8]) -> bool {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % 4 == 0
}

/// Runs one `object` input: an ELF object.
pub fn run(data: &[u8]) {
    let Ok(mut object) = Object::<Vm>::from_bytes(data.to_vec(), "fuzz") else {
        return;
    };
    let needs_size: Vec<usize> = (0..object.maps().len())
        .filter(|&i| {
            object.maps()[i]
                .error()
                .is_some_and(|e| e.contains("max_entries 0"))
        })
        .collect();
    for i in needs_size {
        // A map that cannot have this size (its type forbids it) keeps its error.
        let _ = object.set_max_entries_at(i, SIZED_ENTRIES);
    }
    let loaded = object.load();
    if explaining() {
        eprintln!("rbpf-fuzz: object load: {loaded:?}");
    }
    for program in object.programs_mut() {
        if let Some(vm) = program.vm_mut() {
            vm.config_mut().instruction_limit = LOOP_LIMIT;
            vm.set_error_printer(Some(Box::new(|_| {})));
        }
    }
    let jit = use_jit(data);
    if jit {
        // Programs that do not compile keep running in the interpreter.
        let _ = object.compile_programs(JitMode::Basic);
    }
    let engines: &[bool] = if jit { &[false, true] } else { &[false] };
    for program in object.programs_mut() {
        if program.vm().is_none() {
            continue;
        }
        let plain = ContextKind::of(program.program_type()) == ContextKind::Plain;
        for &jit in engines {
            let mut data_out = [0u8; 256];
            let mut ctx_out = [0u8; PLAIN_CTX_LEN];
            let ctx_in = [0u8; PLAIN_CTX_LEN];
            let mut opts = TestRunOptions {
                data_in: if plain { &[] } else { &PACKET },
                data_out: (!plain).then_some(&mut data_out[..]),
                ctx_in: plain.then_some(&ctx_in[..]),
                ctx_out: Some(&mut ctx_out[..]),
                jit,
                ..Default::default()
            };
            let result = program.test_run(&mut opts);
            if explaining() {
                eprintln!(
                    "rbpf-fuzz: {} ({:?}, jit {jit}): {result:?}, retval {}",
                    program.name(),
                    program.program_type(),
                    opts.retval
                );
            }
        }
    }
}
