//! Running one program in several engine configurations and comparing each with an oracle:
//! the harness of the differential tests of the JIT's optimisations (`tests/jit_*.rs`).

use rbpf::Vm;
use rbpf::error::{ExecError, JitError};
use rbpf::jit::JitMode;

use super::error_key;

/// Which engine runs a loaded program: the interpreter, or the JIT with one entry signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Interpreter,
    Jit(JitMode),
}

/// Every mode: the interpreter and the JIT in basic and extended mode.
pub const MODES: [Mode; 3] = [
    Mode::Interpreter,
    Mode::Jit(JitMode::Basic),
    Mode::Jit(JitMode::Extended),
];

impl Mode {
    /// Compiles `vm`'s loaded program when the mode is the JIT's, to its optimised code
    /// ([`super::compile_optimised`]).
    pub fn prepare(self, vm: &mut Vm) -> Result<(), JitError> {
        if let Mode::Jit(mode) = self {
            super::compile_optimised(vm, mode)?;
        }
        Ok(())
    }

    /// Runs `vm`'s program (prepared for this mode) on `mem`.
    pub fn run(self, vm: &Vm, mem: &mut [u8]) -> Result<u64, ExecError> {
        match self {
            Mode::Interpreter => vm.execute(mem),
            Mode::Jit(_) => vm.execute_jit(mem),
        }
    }
}

/// How one engine runs: the JIT or the interpreter, bounds checks, instruction limit (a
/// non-zero limit selects the interpreter's per-instruction loop and turns the JIT's loop
/// idioms off), constant blinding.
#[derive(Clone, Copy, Debug)]
pub struct Engine {
    pub jit: bool,
    pub bounds: bool,
    pub limit: u32,
    pub blind: bool,
}

/// An engine with bounds checks on, no limit and no blinding.
pub const fn engine(jit: bool) -> Engine {
    Engine {
        jit,
        bounds: true,
        limit: 0,
        blind: false,
    }
}

impl Engine {
    /// The same engine with instruction limit `limit`.
    pub const fn limited(self, limit: u32) -> Engine {
        Engine { limit, ..self }
    }

    /// The same engine with bounds checks on or off.
    pub const fn bounds(self, bounds: bool) -> Engine {
        Engine { bounds, ..self }
    }

    /// The same engine with constants blinded.
    pub const fn blinded(self) -> Engine {
        Engine {
            blind: true,
            ..self
        }
    }
}

/// One engine's outcome: r0 or the error ([`error_key`]), and the final memory.
pub type Outcome = (Result<u64, String>, Vec<u8>);

/// Runs `code` (raw bytecode, or an ELF object when `elf`) in engine `e` on an 8-byte aligned
/// copy of `mem`. A program that fails to load or compile is an `Err`.
pub fn run(code: &[u8], elf: bool, mem: &[u8], e: Engine) -> Result<Outcome, String> {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.config_mut().bounds_check = e.bounds;
    vm.config_mut().instruction_limit = e.limit;
    vm.config_mut().constant_blinding = e.blind;
    if elf {
        vm.load_elf(code, None).map_err(|e| format!("load: {e}"))?;
    } else {
        vm.load(code).map_err(|e| format!("load: {e}"))?;
    }
    let mut words = vec![0u64; mem.len().div_ceil(8)];
    // SAFETY: u64 has no padding; the slice covers the first `mem.len()` bytes of the words.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), mem.len()) };
    bytes.copy_from_slice(mem);
    let result = if e.jit {
        super::compile_optimised(&mut vm, JitMode::Basic).map_err(|e| format!("compile: {e}"))?;
        vm.execute_jit(bytes)
    } else {
        vm.execute(bytes)
    };
    Ok((result.map_err(|e| error_key(&e)), bytes.to_vec()))
}

/// Runs `code` in `oracle` and in each named engine; returns the oracle's outcome, or a
/// description of the first engine whose result or final memory differs.
pub fn compare(
    code: &[u8],
    elf: bool,
    mem: &[u8],
    oracle: Engine,
    engines: &[(&str, Engine)],
) -> Result<Outcome, String> {
    let expected = run(code, elf, mem, oracle)?;
    check(code, elf, mem, &expected, engines)?;
    Ok(expected)
}

/// Runs assembly `text` with an instruction limit of `limit` in the interpreter, whose
/// per-instruction loop (the limit selects it; nothing runs in bulk there) is the oracle,
/// and compares the interpreter's fast path, the JIT, and the JIT with the same limit (no
/// idioms) with it, all with bounds checks `bounds`.
pub fn against_per_instruction(
    text: &str,
    bounds: bool,
    mem: &[u8],
    limit: u32,
) -> Result<Outcome, String> {
    let code = rbpf::asm::assemble_bytes(text).map_err(|e| format!("asm: {e}"))?;
    let candidates = [
        ("interpreter fast path", engine(false).bounds(bounds)),
        ("JIT", engine(true).bounds(bounds)),
        (
            "JIT with a limit",
            engine(true).bounds(bounds).limited(limit),
        ),
    ];
    let oracle = engine(false).bounds(bounds).limited(limit);
    compare(&code, false, mem, oracle, &candidates)
}

/// Runs `code` in each named engine; a description of the first whose result or final
/// memory differs from `expected` (the oracle's outcome).
pub fn check(
    code: &[u8],
    elf: bool,
    mem: &[u8],
    expected: &Outcome,
    engines: &[(&str, Engine)],
) -> Result<(), String> {
    for &(name, e) in engines {
        let other = run(code, elf, mem, e)?;
        if &other != expected {
            return Err(format!(
                "interpreter {:x?} vs {name} {:x?}; memory equal: {}",
                expected.0,
                other.0,
                expected.1 == other.1
            ));
        }
    }
    Ok(())
}
