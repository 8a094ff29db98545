//! Switches that make the harness tolerate one known, already reported divergence each, so a
//! target can keep exploring while the fix is pending. All are OFF unless named in the
//! environment variable `RBPF_FUZZ_TOLERATE` (comma-separated), and the fuzzer prints the
//! enabled ones at start. Each tolerates exactly the outcome pattern described on its variant,
//! nothing else; a switch whose bug is fixed should simply no longer be set.

use std::sync::OnceLock;

/// One known divergence (numbers are the items of the hardening issue, "issue 8").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// `uninit-stack` (item 1): in basic mode a program that reads stack bytes it never wrote
    /// sees leftovers (native stack in the JIT, an earlier run's bytes in the interpreter).
    /// Tolerated only when a replay in the interpreter shows that the run did read an
    /// unwritten stack byte.
    UninitStack,
    /// `limit` (item 3): the JIT charges a whole basic block against the instruction limit up
    /// front. Tolerated: any difference in r0, error, memory or helper calls when at least one
    /// engine stopped with "instruction limit exceeded".
    Limit,
    /// `atomic-imm` (item 6): the JIT refuses atomic operations the validator accepts.
    /// Tolerated: a compile error "Unknown instruction" on an atomic opcode (0xc3/0xdb).
    AtomicImm,
    /// `rodata-store` (item 2): the JIT lets a store into read-only `.rodata` through when an
    /// earlier load checked the same range. Tolerated (ELF target): the interpreter faults
    /// with an out-of-bounds store and the JIT does not.
    RodataStore,
    /// `copy-needs-vm` (item 5): code from `copy_jit`/`translate` still points into the VM.
    /// With the switch, copies run while the VM is alive; without it, after it is dropped.
    CopyNeedsVm,
}

const NAMES: [(Known, &str); 5] = [
    (Known::UninitStack, "uninit-stack"),
    (Known::Limit, "limit"),
    (Known::AtomicImm, "atomic-imm"),
    (Known::RodataStore, "rodata-store"),
    (Known::CopyNeedsVm, "copy-needs-vm"),
];

fn enabled() -> &'static Vec<Known> {
    static ENABLED: OnceLock<Vec<Known>> = OnceLock::new();
    ENABLED.get_or_init(|| {
        let Ok(list) = std::env::var("RBPF_FUZZ_TOLERATE") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match NAMES.iter().find(|(_, n)| *n == word) {
                Some((k, _)) => out.push(*k),
                None => {
                    let all: Vec<&str> = NAMES.iter().map(|(_, n)| *n).collect();
                    eprintln!(
                        "rbpf-fuzz: unknown RBPF_FUZZ_TOLERATE entry {word:?} (known: {})",
                        all.join(", ")
                    );
                    std::process::exit(2);
                }
            }
        }
        out
    })
}

/// Whether divergence `k` is tolerated in this process.
pub fn tolerated(k: Known) -> bool {
    enabled().contains(&k)
}

/// Prints the enabled switches (once, at start).
pub fn announce() {
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(k, _)| tolerated(*k))
        .map(|(_, n)| *n)
        .collect();
    if !names.is_empty() {
        eprintln!(
            "rbpf-fuzz: tolerating known divergences: {}",
            names.join(", ")
        );
    }
}
