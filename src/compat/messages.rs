//! rbpf 0.4's texts for failures that librbpf's engines report in uBPF's words: run-time
//! errors of the interpreter and of compiled code, and programs that rbpf's verifier accepts
//! but librbpf's engines cannot run (reported when they are run or compiled, as rbpf's
//! engines do). The native [`crate::vm::Vm`] and the C API keep uBPF's texts.

use alloc::format;
use alloc::string::String;

use crate::compat::ebpf;
use crate::error::{ExecError, LoadError};

/// Which of rbpf's engines a text belongs to (each has its own prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(feature = "std"),
    expect(dead_code, reason = "the compiled engines need std")
)]
pub(crate) enum Engine {
    /// `execute_program`: texts start with `Error: `.
    Interpreter,
    /// `jit_compile` / `execute_program_jit`: `[JIT] Error: ` for compile-time failures.
    Jit,
    /// `cranelift_compile` / `execute_program_cranelift`: `[CRANELIFT] Error: `.
    Cranelift,
}

impl Engine {
    /// The prefix of this engine's compile-time texts (`Error: ` for the interpreter).
    fn prefix(self) -> &'static str {
        match self {
            Engine::Interpreter => "Error: ",
            Engine::Jit => "[JIT] Error: ",
            Engine::Cranelift => "[CRANELIFT] Error: ",
        }
    }
}

/// The buffers of one run as rbpf's out-of-bounds text lists them (address, length).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Buffers {
    /// The metadata buffer (0/0 when the kind has none).
    pub mbuff: (u64, usize),
    /// The packet data (0/0 when there is none).
    pub mem: (u64, usize),
}

/// rbpf's text for helper `index` missing when a program calls it.
pub(crate) fn unknown_helper(engine: Engine, index: u32) -> String {
    format!(
        "{}unknown helper function (id: {index:#x})",
        engine.prefix()
    )
}

/// rbpf's text for a program its verifier accepted but that librbpf's validator refused
/// (`err`), reported by `engine` when the program is run or compiled.
pub(crate) fn unrunnable(engine: Engine, err: &LoadError, prog: &[u8]) -> String {
    let prefix = engine.prefix();
    let call_src = |pc: usize| {
        let at = pc.checked_mul(ebpf::INSN_SIZE)?.checked_add(1)?;
        prog.get(at).map(|regs| regs >> 4)
    };
    match err {
        LoadError::BtfCallUnsupported { pc } | LoadError::InvalidCallType { pc } => {
            let src = call_src(*pc).unwrap_or(0);
            match engine {
                Engine::Interpreter => format!("Error: unsupported call type #{src} (insn #{pc})"),
                _ => format!("{prefix}unexpected call type #{src} (insn #{pc})"),
            }
        }
        LoadError::UnknownOpcode { pc, opcode } | LoadError::FilterOpcode { pc, opcode } => {
            format!("{prefix}unknown eBPF opcode {opcode:#x} (insn #{pc})")
        }
        other => format!("{prefix}program cannot run in librbpf: {other}"),
    }
}

/// rbpf's text for a run-time failure (`insn #` is the failing slot plus one, as rbpf
/// counts it for memory errors).
pub(crate) fn exec_error(engine: Engine, err: &ExecError, buffers: Buffers) -> String {
    let out_of_bounds = |access: &dyn core::fmt::Display,
                         pc: usize,
                         addr: u64,
                         size: usize,
                         stack: (u64, usize)| {
        format!(
            "Error: out of bounds memory {access} (insn #{}), addr {addr:#x}, size {size}\n\
             mbuff: {:#x}/{:#x}, mem: {:#x}/{:#x}, stack: {:#x}/{:#x}",
            pc.saturating_add(1),
            buffers.mbuff.0,
            buffers.mbuff.1,
            buffers.mem.0,
            buffers.mem.1,
            stack.0,
            stack.1
        )
    };
    match *err {
        ExecError::OutOfBounds {
            pc,
            access,
            addr,
            size,
            stack,
            stack_len,
            ..
        } => out_of_bounds(&access, pc, addr, size, (stack, stack_len)),
        ExecError::IntegerOverflow {
            pc,
            access,
            addr,
            size,
        } => out_of_bounds(&access, pc, addr, size, (0, 0)),
        ExecError::AddressOverflow { pc, access } | ExecError::AddressUnderflow { pc, access } => {
            out_of_bounds(&access, pc, 0, 0, (0, 0))
        }
        ExecError::NonexistentFunction { index, .. } => {
            // rbpf's engines name a missing helper with the engine's prefix.
            unknown_helper(engine, index as u32)
        }
        ExecError::CallDepthExceeded { max, .. } => {
            format!("Error: too many nested calls (max: {max})")
        }
        ExecError::NotLoaded => "Error: No program set, call prog_set() to load one".into(),
        ref other => {
            let text = format!("{other}");
            if text.starts_with("Error") {
                text
            } else {
                format!("Error: {text}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Access;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    #[test]
    fn rbpf_texts() {
        let err = ExecError::OutOfBounds {
            pc: 0,
            access: Access::Store,
            addr: 0x10,
            size: 1,
            mem: 0,
            mem_len: 0,
            stack: 0x1000,
            stack_len: 4096,
        };
        let buffers = Buffers {
            mbuff: (0, 0),
            mem: (0x20, 4),
        };
        assert_eq!(
            exec_error(Engine::Interpreter, &err, buffers),
            "Error: out of bounds memory store (insn #1), addr 0x10, size 1\n\
             mbuff: 0x0/0x0, mem: 0x20/0x4, stack: 0x1000/0x1000"
        );
        let missing = ExecError::NonexistentFunction { pc: 5, index: 63 };
        assert_eq!(
            exec_error(Engine::Jit, &missing, buffers),
            "[JIT] Error: unknown helper function (id: 0x3f)"
        );
        assert_eq!(
            exec_error(Engine::Interpreter, &missing, buffers),
            "Error: unknown helper function (id: 0x3f)"
        );
        let deep = ExecError::CallDepthExceeded {
            pc: 1,
            depth: 9,
            max: 8,
        };
        assert_eq!(
            exec_error(Engine::Interpreter, &deep, buffers),
            "Error: too many nested calls (max: 8)"
        );
        let prog = [0x85, 0x20, 0, 0, 1, 0, 0, 0];
        let btf = LoadError::BtfCallUnsupported { pc: 0 };
        assert_eq!(
            unrunnable(Engine::Interpreter, &btf, &prog),
            "Error: unsupported call type #2 (insn #0)"
        );
        assert_eq!(
            unrunnable(Engine::Jit, &btf, &prog),
            "[JIT] Error: unexpected call type #2 (insn #0)"
        );
        assert_eq!(
            unrunnable(Engine::Cranelift, &btf, &prog),
            "[CRANELIFT] Error: unexpected call type #2 (insn #0)"
        );
    }
}
