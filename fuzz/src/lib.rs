//! libFuzzer targets for librbpf, built on the stable toolchain.
//!
//! This crate is a static library: `build.sh` compiles it (and librbpf) with LLVM's sanitizer
//! coverage and links it with clang's libFuzzer (`-fsanitize=fuzzer`) and a three-line C shim
//! per target (`shim.c`), which forwards libFuzzer's two entry points to [`rbpf_fuzz_init`] and
//! [`rbpf_fuzz_one`]. `README.md` describes the targets, their input formats and how to run
//! them.
//!
//! A finding is a crash: a panic (the fuzz profile aborts on panic), a signal, or a
//! disagreement between engines, which the harness reports with `panic!` and a description of
//! the two outcomes and the program.

#![deny(unsafe_op_in_unsafe_fn)]

mod asm;
mod capi;
mod ctx;
mod diff;
mod elf;
mod harness;
mod known;
mod nobounds;
mod object;
mod quiet;
mod safe;
mod seeds;

use std::ffi::{CStr, c_char, c_int};
use std::sync::OnceLock;

/// One fuzz target: runs one input; its seeds are written by [`seeds`].
struct Target {
    name: &'static str,
    run: fn(&[u8]),
}

/// Every target, by the name `build.sh` compiles into the shim.
const TARGETS: [Target; 7] = [
    Target {
        name: "diff",
        run: diff::run,
    },
    Target {
        name: "elf",
        run: elf::run,
    },
    Target {
        name: "asm",
        run: asm::run,
    },
    Target {
        name: "safe",
        run: safe::run,
    },
    Target {
        name: "nobounds",
        run: nobounds::run,
    },
    Target {
        name: "object",
        run: object::run,
    },
    Target {
        name: "ctx",
        run: ctx::run,
    },
];

static SELECTED: OnceLock<&'static Target> = OnceLock::new();

/// Selects the target (called from `LLVMFuzzerInitialize`). When `RBPF_FUZZ_WRITE_SEEDS` names
/// a directory, writes the target's seed corpus there and exits instead (see `seeds.rs`).
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rbpf_fuzz_init(name: *const c_char) -> c_int {
    // SAFETY: the shim passes a string literal.
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
    let Some(target) = TARGETS.iter().find(|t| t.name == name) else {
        eprintln!("rbpf-fuzz: unknown target {name}");
        std::process::exit(2);
    };
    let _ = SELECTED.set(target);
    quiet::install_panic_hook();
    known::announce();
    if let Some(dir) = std::env::var_os("RBPF_FUZZ_WRITE_SEEDS") {
        match seeds::write(target.name, std::path::Path::new(&dir)) {
            Ok(n) => {
                eprintln!(
                    "rbpf-fuzz: wrote {n} seeds for {name} into {}",
                    dir.display()
                );
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("rbpf-fuzz: writing seeds: {e}");
                std::process::exit(2);
            }
        }
    }
    0
}

/// Runs one input through the selected target (called from `LLVMFuzzerTestOneInput`).
///
/// # Safety
/// `data` must be valid for `len` bytes (or `len` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rbpf_fuzz_one(data: *const u8, len: usize) -> c_int {
    let bytes = if len == 0 || data.is_null() {
        &[][..]
    } else {
        // SAFETY: libFuzzer passes a valid buffer.
        unsafe { std::slice::from_raw_parts(data, len) }
    };
    let target = SELECTED
        .get()
        .expect("rbpf_fuzz_init selects a target first");
    (target.run)(bytes);
    0
}
