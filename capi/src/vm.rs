//! The VM handle and its settings: `ubpf_create`/`ubpf_destroy`, the `ubpf_toggle_*`
//! switches, limits, the execution profile, the pointer secret, the unwind index and the
//! (release-build) register accessors.

use std::ffi::{c_int, c_uint};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::types::{ExecutionProfileArg, ubpf_execution_profile};
use rbpf::vm::{ExecutionProfile, Vm};

/// An eBPF virtual machine (opaque). Create it with `ubpf_create`, free it with
/// `ubpf_destroy`.
///
/// Methods:
/// - lifetime: `ubpf_create`, `ubpf_destroy`
/// - settings: `ubpf_toggle_bounds_check`, `ubpf_toggle_undefined_behavior_check`,
///   `ubpf_toggle_readonly_bytecode`, `ubpf_toggle_constant_blinding`,
///   `ubpf_set_instruction_limit`, `ubpf_set_pointer_secret`, `ubpf_set_unwind_function_index`,
///   `ubpf_set_execution_profile`, `ubpf_set_jit_code_size`, `ubpf_set_error_print`
/// - helpers and callbacks: `ubpf_register`, `ubpf_register_external_dispatcher`,
///   `ubpf_register_stack_usage_calculator`, `ubpf_register_data_relocation`,
///   `ubpf_register_data_bounds_check`, `ubpf_register_debug_fn`
/// - code: `ubpf_load`, `ubpf_load_elf`, `ubpf_load_elf_ex`, `ubpf_unload_code`
/// - running: `ubpf_exec`, `ubpf_exec_ex`, `ubpf_compile`, `ubpf_compile_ex`,
///   `ubpf_translate`, `ubpf_translate_ex`, `ubpf_copy_jit`
///
/// Threads: functions taking a `const struct ubpf_vm*` (`ubpf_exec`, `ubpf_exec_ex`) may run
/// on one VM from many threads at once; every other function changes the VM and must not race
/// with any other call on it.
pub struct ubpf_vm {
    /// The engine-side VM.
    pub(crate) vm: Vm,
    /// Set by the first `ubpf_exec`; after that the execution profile can no longer change.
    pub(crate) execution_started: AtomicBool,
}

/// Creates a VM with uBPF's defaults: bounds checking on, read-only bytecode on, no helpers,
/// unlimited instructions, errors printed to `stderr`.
///
/// Returns the VM (free it with `ubpf_destroy`), or NULL on failure.
// Wraps [`Vm::new`], then installs the C API's stderr printer ([`Vm::set_error_printer`])
// and turns on [`Vm::enable_extra_regions`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_create() -> *mut ubpf_vm {
    ffi_boundary!({
        let mut vm = Vm::new();
        vm.set_error_printer(Some(crate::register::stderr_printer()));
        // `rbpf_exec_mbuff_jit` gives compiled code the packet data as an extra region.
        vm.enable_extra_regions();
        Box::into_raw(Box::new(ubpf_vm {
            vm,
            execution_started: AtomicBool::new(false),
        }))
    })
}

/// Frees a VM and everything it owns, including JIT-compiled code: function pointers from
/// `ubpf_compile`/`ubpf_compile_ex` are invalid afterwards (buffers filled by `ubpf_copy_jit`
/// and `ubpf_translate` belong to the caller and keep working). NULL is ignored.
///
/// Called from a helper while this VM's program is running on the same thread, it refuses
/// (the run still uses the VM): it reports an error through the error printer and the VM
/// stays allocated — destroy it again once the run has returned.
// Wraps dropping the [`Vm`]; refused while [`Vm::is_running_on_this_thread`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_destroy(vm: *mut ubpf_vm) {
    ffi_boundary!({
        // SAFETY: a non-NULL handle comes from `ubpf_create` (API contract).
        if let Some(handle) = unsafe { vm.as_ref() }
            && handle.vm.is_running_on_this_thread()
        {
            handle
                .vm
                .print_error("ubpf_destroy: the VM's program is running (this call comes from one of its helpers); the VM is not destroyed");
            return;
        }
        if !vm.is_null() {
            // SAFETY: a non-NULL handle was made by `Box::into_raw` in `ubpf_create` and, by
            // the API contract, is destroyed once and not used afterwards.
            drop(unsafe { Box::from_raw(vm) });
        }
    })
}

/// Turns checking of every load and store against mem, the stack and the bounds callback on
/// or off (default on). Address wrap-around is always checked.
///
/// Returns the previous setting (false if `vm` is NULL).
// Wraps [`Vm::config_mut`] (`Config::bounds_check`).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_toggle_bounds_check(vm: *mut ubpf_vm, enable: bool) -> bool {
    ffi_boundary!({
        let config = try_vm_mut!(vm).vm.config_mut();
        std::mem::replace(&mut config.bounds_check, enable)
    })
}

/// Turns constant blinding of later JIT translations on or off (default off).
///
/// Returns the previous setting (false if `vm` is NULL).
// Wraps [`Vm::config_mut`] (`Config::constant_blinding`).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_toggle_constant_blinding(vm: *mut ubpf_vm, enable: bool) -> bool {
    ffi_boundary!({
        let config = try_vm_mut!(vm).vm.config_mut();
        std::mem::replace(&mut config.constant_blinding, enable)
    })
}

/// Turns the interpreter's tracking of uninitialised registers and stack bytes on or off
/// (default off).
///
/// Returns the previous setting (false if `vm` is NULL).
// Wraps [`Vm::config_mut`] (`Config::undefined_behavior_check`).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_toggle_undefined_behavior_check(vm: *mut ubpf_vm, enable: bool) -> bool {
    ffi_boundary!({
        let config = try_vm_mut!(vm).vm.config_mut();
        std::mem::replace(&mut config.undefined_behavior_check, enable)
    })
}

/// Selects read-only bytecode for later loads (default on). librbpf never writes bytecode
/// either way; the setting only keeps uBPF's rule that an empty program fails to load with
/// "out of memory" while it is on.
///
/// Returns the previous setting (false if `vm` is NULL).
// Wraps [`Vm::config_mut`] (`Config::readonly_bytecode`).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_toggle_readonly_bytecode(vm: *mut ubpf_vm, enable: bool) -> bool {
    ffi_boundary!({
        let config = try_vm_mut!(vm).vm.config_mut();
        std::mem::replace(&mut config.readonly_bytecode, enable)
    })
}

/// Selects the execution profile: `UBPF_EXECUTION_PROFILE_LEGACY` (the default) or
/// `UBPF_EXECUTION_PROFILE_SAFE`, uBPF's provenance-tracking interpreter (helpers need
/// `ubpf_register_safe_helper` metadata; `ubpf_compile` and `ubpf_translate` then fail with
/// "safe execution profile is interpreter-only").
///
/// Returns 0; or -1 for an unknown value, a NULL `vm`, loaded or compiled code, or a VM that
/// has already executed a program.
// Wraps [`Vm::config_mut`] (`Config::profile`); refused once [`Vm::program`] is set or a
// run has started.
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_set_execution_profile(
    vm: *mut ubpf_vm,
    profile: ExecutionProfileArg,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        let Ok(profile) = ubpf_execution_profile::try_from(profile) else {
            return -1;
        };
        if handle.vm.program().is_some() || handle.execution_started.load(Ordering::Relaxed) {
            return -1;
        }
        handle.vm.config_mut().profile = ExecutionProfile::from(profile);
        0
    })
}

/// Sets the helper index whose zero return ends the program at once (`ubpf_exec` then
/// succeeds with result 0). Like uBPF, it can be set only once and must be set before
/// compiling.
///
/// Returns 0, or -1 if an index is already set or `vm` is NULL.
// Wraps [`Vm::set_unwind_index`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_set_unwind_function_index(vm: *mut ubpf_vm, idx: c_uint) -> c_int {
    ffi_boundary!({
        match try_vm_mut!(vm).vm.set_unwind_index(idx) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// uBPF's debug-build register override. librbpf behaves like a uBPF release build: it
/// prints a warning to `stderr` and ignores `regs`.
// Wraps no Rust method: like a uBPF release build, there are no registers to set.
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_set_registers(vm: *mut ubpf_vm, regs: *mut u64) {
    ffi_boundary!({
        let _ = (vm, regs);
        eprint!("{REGISTERS_WARNING}");
    })
}

/// uBPF's debug-build register accessor. librbpf behaves like a uBPF release build: it prints
/// a warning to `stderr`.
///
/// Returns NULL.
// Wraps no Rust method: like a uBPF release build, there are no registers to read.
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_get_registers(vm: *const ubpf_vm) -> *mut u64 {
    ffi_boundary!({
        let _ = vm;
        eprint!("{REGISTERS_WARNING}");
        std::ptr::null_mut()
    })
}

/// The text uBPF's release build prints from the register accessors.
const REGISTERS_WARNING: &str =
    "uBPF warning: registers are not exposed in release mode. Please recompile in debug mode\n";

/// Stores the secret uBPF mixes into its stored bytecode. librbpf keeps decoded instructions
/// and has no use for it, but keeps uBPF's rule that it cannot change while code is loaded.
///
/// Returns 0, or -1 if code is loaded or `vm` is NULL.
// Wraps [`Vm::set_pointer_secret`].
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_set_pointer_secret(vm: *mut ubpf_vm, secret: u64) -> c_int {
    ffi_boundary!({
        match try_vm_mut!(vm).vm.set_pointer_secret(secret) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// Limits how many instructions one interpreted execution may run (0: unlimited, the
/// default); a run that reaches the limit fails with "Error: Instruction limit exceeded.".
/// Writes the previous limit to `*previous_limit` when it is not NULL.
///
/// Returns 0 (-1 if `vm` is NULL).
// Wraps [`Vm::config_mut`] (`Config::instruction_limit`).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_set_instruction_limit(
    vm: *mut ubpf_vm,
    limit: u32,
    previous_limit: *mut u32,
) -> c_int {
    ffi_boundary!({
        let config = try_vm_mut!(vm).vm.config_mut();
        let previous = std::mem::replace(&mut config.instruction_limit, limit);
        // SAFETY: NULL or a valid `uint32_t*` (API contract).
        if let Some(out) = unsafe { previous_limit.as_mut() } {
            *out = previous;
        }
        0
    })
}

/// uBPF's internal x86-64 register-map knob, used by its `ubpf_test -r`. Exported for link
/// compatibility (not declared in the header); it has no effect in librbpf.
// Wraps no Rust method (link compatibility only).
#[unsafe(no_mangle)]
pub extern "C" fn ubpf_set_register_offset(x: c_int) {
    let _ = x;
}
