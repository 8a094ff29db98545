//! The `diff` target's C API leg (flag bit 7): the same program through `ubpf_create`,
//! `ubpf_register` (or `ubpf_register_external_dispatcher`), `ubpf_load`, `ubpf_exec` /
//! `ubpf_exec_ex` and the function `ubpf_compile_ex` returns, called the C way (a fault is
//! `UINT64_MAX`, reported through the error printer).

use std::ffi::{CString, c_char, c_int, c_uint};
use std::ptr;

use rbpf::isa::Insn;
use rbpf_capi::{self as capi, ubpf_vm};

use crate::diff::{Setup, Start, compare};
use crate::harness::{HELPERS, Outcome, fail};

unsafe extern "C" {
    /// A printf-shaped printer that prints nothing (in `shim.c`: Rust cannot define variadic
    /// functions on the stable toolchain).
    fn rbpf_fuzz_quiet_printer(stream: *mut libc::FILE, format: *const c_char, ...) -> c_int;
}

unsafe extern "C" fn validate(index: c_uint, _vm: *const ubpf_vm) -> bool {
    HELPERS.iter().any(|h| h.0 == index)
}

/// A VM set up through the C API like `setup` describes, with `code` loaded.
fn create(setup: &Setup, code: &[u8], limit: u32, insns: &[Insn]) -> *mut ubpf_vm {
    let vm = capi::vm::ubpf_create();
    assert!(!vm.is_null(), "ubpf_create failed");
    for (index, name, f) in HELPERS {
        let name = CString::new(name).expect("no NUL");
        // SAFETY: the engines call helpers with a sixth argument (mem), which ours accept.
        let f = unsafe {
            std::mem::transmute::<
                rbpf::HelperFn,
                unsafe extern "C" fn(u64, u64, u64, u64, u64) -> u64,
            >(f)
        };
        assert_eq!(
            capi::register::ubpf_register(vm, index, name.as_ptr(), Some(f)),
            0
        );
    }
    if setup.dispatcher {
        let rc = capi::register::ubpf_register_external_dispatcher(
            vm,
            Some(crate::harness::dispatch),
            Some(validate),
        );
        assert_eq!(rc, 0);
    }
    if setup.unwind {
        assert_eq!(capi::vm::ubpf_set_unwind_function_index(vm, 5), 0);
    }
    capi::vm::ubpf_toggle_constant_blinding(vm, setup.blinding);
    let mut previous = 0u32;
    assert_eq!(
        capi::vm::ubpf_set_instruction_limit(vm, limit, &mut previous),
        0
    );
    capi::register::ubpf_set_error_print(vm, Some(rbpf_fuzz_quiet_printer));
    let mut err: *mut c_char = ptr::null_mut();
    let len = u32::try_from(code.len()).expect("short");
    if capi::load::ubpf_load(vm, code.as_ptr().cast(), len, &mut err) != 0 {
        // SAFETY: the C API's message is a malloc'd C string.
        let text = unsafe { std::ffi::CStr::from_ptr(err) }
            .to_string_lossy()
            .into_owned();
        fail(
            &format!("ubpf_load refused a program Vm::load accepted: {text}"),
            insns,
        );
    }
    vm
}

/// Runs the C API leg and compares each run with the interpreter's outcome (`jit_hit_limit`:
/// whether the Rust API's JIT run stopped at the instruction limit).
#[allow(clippy::too_many_arguments)]
pub fn run(
    setup: &Setup,
    code: &[u8],
    insns: &[Insn],
    limit: u32,
    start: &mut Start,
    interp: &Outcome,
    jit_hit_limit: bool,
    comparable: bool,
    replay: impl Fn() -> bool + Copy,
) {
    let vm = create(setup, code, limit, insns);
    let (mem, len, stack) = start.reset();
    let mut ret = 0u64;
    let rc = if setup.extended {
        capi::exec::ubpf_exec_ex(
            vm,
            mem.cast(),
            len,
            &mut ret,
            stack,
            crate::harness::STACK_LEN,
        )
    } else {
        capi::exec::ubpf_exec(vm, mem.cast(), len, &mut ret)
    };
    let exec = start.finish(if rc == 0 {
        Ok(ret)
    } else {
        Err("failed".into())
    });
    let mut expected = interp.clone();
    expected.result = interp.result.clone().map_err(|_| "failed".into());
    compare(
        "ubpf_exec",
        &expected,
        &exec,
        false,
        comparable,
        false,
        insns,
        replay,
    );

    let mut err: *mut c_char = ptr::null_mut();
    let mode = if setup.extended {
        capi::types::JitMode::ExtendedJitMode
    } else {
        capi::types::JitMode::BasicJitMode
    };
    match capi::jit::ubpf_compile_ex(vm, &mut err, mode as capi::types::JitModeArg) {
        Some(f) => {
            let (mem, len, stack) = start.reset();
            // SAFETY: compiled by this VM, which is alive; buffers live. Basic-mode code
            // ignores the stack arguments (as uBPF's callers pass them or not).
            let ret = unsafe { f(mem.cast(), len, stack, crate::harness::STACK_LEN) };
            let called = start.finish(Ok(ret));
            let limit_hit = interp.hit_limit() || jit_hit_limit;
            compare(
                "the ubpf_compile function",
                interp,
                &called,
                true,
                comparable,
                limit_hit,
                insns,
                replay,
            );
        }
        None => {
            // SAFETY: the C API's message is a malloc'd C string.
            let text = unsafe { std::ffi::CStr::from_ptr(err) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: ours to free.
            unsafe { libc::free(err.cast()) };
            let known = text.contains("Unknown instruction")
                && crate::known::tolerated(crate::known::Known::AtomicImm)
                && crate::harness::has_atomic(insns);
            if !known && !text.contains("too small") {
                fail(
                    &format!("ubpf_compile refused a loaded program: {text}"),
                    insns,
                );
            }
        }
    }
    capi::vm::ubpf_destroy(vm);
}
