//! Helpers, the external dispatcher, and the callbacks C code installs: the error printer,
//! the stack-usage calculator and the debug function. Each C callback is wrapped into the
//! boxed Rust closure that the matching [`rbpf::Vm`] setter takes.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};

use crate::boundary::UserPtr;
use crate::types::{
    external_function_dispatcher_t, external_function_t, external_function_validate_t,
    stack_usage_calculator_t, ubpf_debug_fn, ubpf_safe_helper_descriptor,
};
use crate::ubpf_vm;
use rbpf::exec::helpers::HelperFn;
use rbpf::interpreter::SafeHelperResult;
use rbpf::isa::MAX_EXT_FUNCS;
use rbpf::vm::DebugState;

unsafe extern "C" {
    /// The C library's standard error stream (the stream uBPF passes to the error printer).
    static stderr: *mut libc::FILE;
}

/// Routes runtime error messages (out-of-bounds accesses, instruction limit, call depth…)
/// through `error_printf`. Each message is printed with one call,
/// `error_printf(stderr, "%s\n", message)`; the message itself may span two lines. NULL
/// restores the default, which prints to `stderr`. The printer may be called from every
/// thread that runs `ubpf_exec`.
// Wraps [`Vm::set_error_printer`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_set_error_print(
    vm: *mut ubpf_vm,
    error_printf: Option<
        unsafe extern "C" fn(stream: *mut libc::FILE, format: *const c_char, ...) -> c_int,
    >,
) {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        let printer = error_printf.map(|print| {
            Box::new(move |message: &str| {
                let text = CString::new(message.replace('\0', "")).unwrap_or_default();
                // SAFETY: `print` is the embedder's printf-like function; the format "%s\n"
                // consumes exactly the one NUL-terminated string passed. `stderr` is the C
                // library's stream, initialised before any library code runs.
                unsafe {
                    print(stderr, c"%s\n".as_ptr(), text.as_ptr());
                }
            }) as rbpf::vm::ErrorPrinter
        });
        handle
            .vm
            .set_error_printer(Some(printer.unwrap_or_else(stderr_printer)));
    })
}

/// The C API's default error printer: one line per message on standard error, as uBPF prints
/// (the Rust API prints nothing unless a printer is installed).
pub(crate) fn stderr_printer() -> rbpf::vm::ErrorPrinter {
    Box::new(|message: &str| eprintln!("{message}"))
}

/// Casts a function pointer of any type to `external_function_t` (for C++ callers, and for C
/// helpers whose declared parameters differ from the five `uint64_t`).
///
/// Returns `f` unchanged (NULL stays NULL).
// Wraps no Rust method (a pointer cast).
#[unsafe(no_mangle)]
pub extern "C" fn as_external_function_t(f: *mut c_void) -> external_function_t {
    if f.is_null() {
        return None;
    }
    // SAFETY: `f` is a non-NULL function address (API contract); data and function pointers
    // have the same size and representation on every platform librbpf supports.
    Some(unsafe {
        std::mem::transmute::<*mut c_void, unsafe extern "C" fn(u64, u64, u64, u64, u64) -> u64>(f)
    })
}

/// Registers helper `fn` at `index` (0..63) under `name`, replacing what was there; a NULL
/// `fn` removes the helper. eBPF `call index` then calls `fn(r1, r2, r3, r4, r5, mem)`, where
/// `mem` is the pointer given to `ubpf_exec`. The name (used by the ELF loader to resolve
/// helpers by name) is copied, so unlike uBPF the string need not outlive the call. Code
/// already compiled by `ubpf_compile` sees the new helper.
///
/// Returns 0, or -1 if `index >= 64` or `vm` is NULL.
// Wraps [`Vm::register_helper`], or [`Vm::clear_helper`] for a NULL `fn`.
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_register(
    vm: *mut ubpf_vm,
    index: c_uint,
    name: *const c_char,
    r#fn: external_function_t,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        if !usize::try_from(index).is_ok_and(|i| i < MAX_EXT_FUNCS) {
            return -1;
        }
        let name = if name.is_null() {
            None
        } else {
            // SAFETY: a non-NULL `name` is a NUL-terminated string (API contract).
            Some(unsafe { CStr::from_ptr(name) }.to_string_lossy())
        };
        let Some(helper) = r#fn else {
            return match handle.vm.clear_helper(index, name.as_deref()) {
                Ok(()) => 0,
                Err(_) => -1,
            };
        };
        match handle
            .vm
            .register_helper(index, name.as_deref(), six_argument_helper(helper))
        {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// The helper as the engines call it: `external_function_t` takes five arguments, but uBPF
/// calls every helper with six (r1..r5, mem).
pub(crate) fn six_argument_helper(
    helper: unsafe extern "C" fn(u64, u64, u64, u64, u64) -> u64,
) -> HelperFn {
    // SAFETY: under the C calling conventions librbpf supports (SysV x86-64, AAPCS64) the six
    // integer-class arguments travel in registers, so a function declaring fewer parameters
    // simply ignores the extra ones; this is exactly how uBPF calls helpers.
    unsafe {
        std::mem::transmute::<unsafe extern "C" fn(u64, u64, u64, u64, u64) -> u64, HelperFn>(
            helper,
        )
    }
}

/// Registers a helper for the safe execution profile: like `ubpf_register` (under
/// `descriptor->name`, which is copied), plus what its result is — a scalar, or a pointer or
/// handle into the region `region_id` with `region_size` bytes available — which the safe
/// interpreter checks after every call.
///
/// Returns 0; or -1 if `vm` or `descriptor` is NULL, `index >= 64`, `fn` is NULL, the result
/// kind is unknown, or a pointer/handle result has `region_size == 0` or a reserved region id.
// Wraps [`Vm::register_safe_helper`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_register_safe_helper(
    vm: *mut ubpf_vm,
    descriptor: *const ubpf_safe_helper_descriptor,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        // SAFETY: a non-NULL descriptor points to a valid struct (API contract).
        let Some(descriptor) = (unsafe { descriptor.as_ref() }) else {
            return -1;
        };
        let Some(helper) = descriptor.function else {
            return -1;
        };
        let (region_id, region_size) = (descriptor.region_id, descriptor.region_size);
        let result = match descriptor.result_kind {
            0 => SafeHelperResult::Scalar,
            1 => SafeHelperResult::Pointer {
                region_id,
                region_size,
            },
            2 => SafeHelperResult::Handle {
                region_id,
                region_size,
            },
            _ => return -1,
        };
        let name = if descriptor.name.is_null() {
            None
        } else {
            // SAFETY: a non-NULL name is a NUL-terminated string (API contract).
            Some(unsafe { CStr::from_ptr(descriptor.name) }.to_string_lossy())
        };
        let helper = six_argument_helper(helper);
        match handle
            .vm
            .register_safe_helper(descriptor.index, name.as_deref(), helper, result)
        {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// Routes every helper call through `dispatcher(r1..r5, index, mem)` instead of the helper
/// table; `validater(index, vm)` then decides at load time which indices exist (without a
/// validator every helper call is refused at load). A NULL `dispatcher` returns to the helper
/// table. Code already compiled by `ubpf_compile` uses the new dispatcher.
///
/// Returns 0 (-1 if `vm` is NULL).
// Wraps [`Vm::set_dispatcher`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_register_external_dispatcher(
    vm: *mut ubpf_vm,
    dispatcher: external_function_dispatcher_t,
    validater: external_function_validate_t,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        let vm_ptr = UserPtr(vm);
        let validator = validater.map(|validate| {
            Box::new(move |index: u32| {
                // SAFETY: the embedder's validator, called with the VM it was registered on.
                unsafe { validate(index, vm_ptr.get().cast_const()) }
            }) as rbpf::exec::helpers::HelperValidator
        });
        handle.vm.set_dispatcher(dispatcher, validator);
        0
    })
}

/// Registers the function `ubpf_load` asks for each eBPF function's stack usage, as
/// `calculator(vm, pc, cookie)` for the main function (pc 0) and every local-call target. The
/// result must be a multiple of 16 (0 is allowed); without a calculator every function uses
/// 256 bytes. Takes effect at the next load. NULL removes the calculator.
///
/// Returns 0 (-1 if `vm` is NULL).
// Wraps [`Vm::set_stack_usage_calculator`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_register_stack_usage_calculator(
    vm: *mut ubpf_vm,
    calculator: stack_usage_calculator_t,
    cookie: *mut c_void,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        let vm_ptr = UserPtr(vm);
        let cookie = UserPtr(cookie);
        let calculator = calculator.map(|calculate| {
            Box::new(move |pc: usize| {
                let pc = u16::try_from(pc).unwrap_or(u16::MAX);
                // SAFETY: the embedder's calculator, called with its own VM and cookie.
                unsafe { calculate(vm_ptr.get().cast_const(), pc, cookie.get()) }
            }) as rbpf::vm::StackUsageCalculator
        });
        handle.vm.set_stack_usage_calculator(calculator);
        0
    })
}

/// Installs (or, with NULL, removes) the function the interpreter calls before each
/// instruction as `debug_function(context, pc, registers[16], stack, stack_length,
/// register_mask, stack_mask)`. Like uBPF this is a two-state switch: setting works only
/// when none is set, and clearing only when one is set.
///
/// Returns 0, or -1 when replacing one function with another, clearing when none is set, or
/// if `vm` is NULL.
// Wraps [`Vm::set_debug_fn`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_register_debug_fn(
    vm: *mut ubpf_vm,
    context: *mut c_void,
    debug_function: ubpf_debug_fn,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        let context = UserPtr(context);
        let debug = debug_function.map(|debug| {
            Box::new(move |state: &DebugState<'_>| {
                let pc = c_int::try_from(state.pc).unwrap_or(c_int::MAX);
                let stack_mask = state.stack_mask.map_or(std::ptr::null(), <[u8]>::as_ptr);
                // SAFETY: the embedder's debug function; every pointer is valid for the
                // duration of the call (registers: 16 slots; stack: `stack.len()` bytes).
                unsafe {
                    debug(
                        context.get(),
                        pc,
                        state.registers.as_ptr(),
                        state.stack.as_ptr(),
                        state.stack.len(),
                        state.register_mask,
                        stack_mask,
                    );
                }
            }) as rbpf::vm::DebugFn
        });
        match handle.vm.set_debug_fn(debug) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}
