//! The typedefs, enums and structs of uBPF's `ubpf.h`, with uBPF's names and LP64 layouts.
//!
//! C enums never cross the boundary as Rust enums (an out-of-range value would be undefined
//! behaviour): functions and struct fields take them as `u32` (`*Arg` aliases, which the
//! header prints as the enum type) and convert with `TryFrom`, rejecting unknown values.

use std::ffi::{c_char, c_int, c_uint, c_void};

use rbpf::vm::ExecutionProfile;

/// A JIT-compiled program in basic mode: `r1 = mem`, `r2 = mem_len`, 4096 bytes of stack on
/// the native stack. Returns r0. Valid until the VM is unloaded, destroyed or recompiled in
/// the other mode.
pub type ubpf_jit_fn = Option<unsafe extern "C" fn(mem: *mut c_void, mem_len: usize) -> u64>;

/// A JIT-compiled program in extended mode: the caller supplies the eBPF stack
/// (`r10 = stack + stack_len`).
pub type ubpf_jit_ex_fn = Option<
    unsafe extern "C" fn(mem: *mut c_void, mem_len: usize, stack: *mut u8, stack_len: usize) -> u64,
>;

/// A helper function. The engines really call it with a sixth argument, the `mem` pointer
/// given to `ubpf_exec` (or to the JIT-compiled function); C helpers may declare it as
/// `void*` and use it, or declare fewer parameters.
pub type external_function_t =
    Option<unsafe extern "C" fn(p0: u64, p1: u64, p2: u64, p3: u64, p4: u64) -> u64>;

/// A dispatcher that serves every helper call instead of the helper table: gets r1..r5, the
/// helper index (the call's immediate) and the cookie (the `mem` pointer given to the run).
pub type external_function_dispatcher_t = Option<
    unsafe extern "C" fn(
        p0: u64,
        p1: u64,
        p2: u64,
        p3: u64,
        p4: u64,
        index: c_uint,
        cookie: *mut c_void,
    ) -> u64,
>;

/// Decides at load time whether the dispatcher serves helper `index`.
pub type external_function_validate_t =
    Option<unsafe extern "C" fn(index: c_uint, vm: *const crate::ubpf_vm) -> bool>;

/// Returns the stack usage in bytes (a multiple of 16; 0 is allowed) of the eBPF function that
/// starts at `pc`. Called during `ubpf_load` for the main function and each local-call target.
pub type stack_usage_calculator_t =
    Option<unsafe extern "C" fn(vm: *const crate::ubpf_vm, pc: u16, cookie: *mut c_void) -> c_int>;

/// Resolves an ELF `R_BPF_64_64` data relocation: gets the section's bytes (inside the
/// caller's ELF buffer), its size, the symbol name, offset and size; returns the 64-bit value
/// that the `lddw` loads.
pub type ubpf_data_relocation = Option<
    unsafe extern "C" fn(
        user_context: *mut c_void,
        data: *const u8,
        data_size: u64,
        symbol_name: *const c_char,
        symbol_offset: u64,
        symbol_size: u64,
    ) -> u64,
>;

/// Accepts (true) or refuses an access of `size` bytes at `addr` that lies neither in `mem`
/// nor in the stack. Consulted only when bounds checking is on.
pub type ubpf_bounds_check =
    Option<unsafe extern "C" fn(context: *mut c_void, addr: u64, size: u64) -> bool>;

/// Called by the interpreter before each instruction with the 16-slot register file, the
/// whole stack, the initialised-register bitmap and (with the undefined-behaviour check on)
/// the initialised-stack-byte bitmap, else NULL.
pub type ubpf_debug_fn = Option<
    unsafe extern "C" fn(
        context: *mut c_void,
        program_counter: c_int,
        registers: *const u64,
        stack_start: *const u8,
        stack_length: usize,
        register_mask: u64,
        stack_mask_start: *const u8,
    ),
>;

/// JIT compilation mode of `ubpf_compile_ex` and `ubpf_translate_ex`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitMode {
    /// `ubpf_jit_ex_fn`: the caller passes the stack.
    ExtendedJitMode = 0,
    /// `ubpf_jit_fn`: the compiled code reserves 4096 bytes of native stack.
    BasicJitMode = 1,
}

/// `enum JitMode` as passed by C.
pub type JitModeArg = c_uint;

impl TryFrom<JitModeArg> for JitMode {
    type Error = JitModeArg;

    fn try_from(value: JitModeArg) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(JitMode::ExtendedJitMode),
            1 => Ok(JitMode::BasicJitMode),
            other => Err(other),
        }
    }
}

/// Which interpreter runs programs.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ubpf_execution_profile {
    /// The default: bounds checks against mem, stack and the bounds callback.
    UBPF_EXECUTION_PROFILE_LEGACY = 0,
    /// uBPF's provenance-tracking interpreter profile: pointers carry their region, helpers
    /// and regions are declared up front (interpreter only; see docs/semantics.md).
    UBPF_EXECUTION_PROFILE_SAFE = 1,
}

/// `enum ubpf_execution_profile` as passed by C.
pub type ExecutionProfileArg = c_uint;

impl TryFrom<ExecutionProfileArg> for ubpf_execution_profile {
    type Error = ExecutionProfileArg;

    fn try_from(value: ExecutionProfileArg) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(ubpf_execution_profile::UBPF_EXECUTION_PROFILE_LEGACY),
            1 => Ok(ubpf_execution_profile::UBPF_EXECUTION_PROFILE_SAFE),
            other => Err(other),
        }
    }
}

impl From<ubpf_execution_profile> for ExecutionProfile {
    fn from(profile: ubpf_execution_profile) -> Self {
        match profile {
            ubpf_execution_profile::UBPF_EXECUTION_PROFILE_LEGACY => ExecutionProfile::Legacy,
            ubpf_execution_profile::UBPF_EXECUTION_PROFILE_SAFE => ExecutionProfile::Safe,
        }
    }
}

/// Kind of a safe-profile region.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ubpf_safe_region_kind {
    /// Memory the program may dereference.
    UBPF_SAFE_REGION_POINTER = 0,
    /// An opaque handle range.
    UBPF_SAFE_REGION_HANDLE = 1,
}

/// `enum ubpf_safe_region_kind` as stored by C.
pub type SafeRegionKindArg = c_uint;

/// Permission bits of a safe-profile region.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ubpf_safe_region_permissions {
    /// Loads are allowed.
    UBPF_SAFE_REGION_READ = 1,
    /// Stores are allowed.
    UBPF_SAFE_REGION_WRITE = 2,
    /// Atomic operations are allowed.
    UBPF_SAFE_REGION_ATOMIC = 4,
}

/// What a safe-profile helper returns.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ubpf_safe_helper_result_kind {
    /// A plain number.
    UBPF_SAFE_HELPER_RESULT_SCALAR = 0,
    /// A pointer into a registered region.
    UBPF_SAFE_HELPER_RESULT_POINTER = 1,
    /// A handle into a registered region.
    UBPF_SAFE_HELPER_RESULT_HANDLE = 2,
}

/// `enum ubpf_safe_helper_result_kind` as stored by C.
pub type SafeHelperResultKindArg = c_uint;

/// A memory or handle region for the safe execution profile (LP64: 32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ubpf_safe_region {
    /// Region id (0xFFFFFFFE and 0xFFFFFFFF are reserved).
    pub id: u32,
    /// First byte.
    pub base: *mut c_void,
    /// Length in bytes.
    pub size: u64,
    /// An `enum ubpf_safe_region_kind` value.
    pub kind: SafeRegionKindArg,
    /// `enum ubpf_safe_region_permissions` bits.
    pub permissions: u32,
}

/// Safe-profile metadata of a helper (LP64: 40 bytes).
/// cbindgen:field-names=[index, name, fn, result_kind, region_id, region_size]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ubpf_safe_helper_descriptor {
    /// Helper index (0..63).
    pub index: c_uint,
    /// Helper name (not copied by uBPF).
    pub name: *const c_char,
    /// The helper.
    pub function: external_function_t,
    /// An `enum ubpf_safe_helper_result_kind` value.
    pub result_kind: SafeHelperResultKindArg,
    /// Region of a pointer or handle result.
    pub region_id: u32,
    /// Bytes that must be available at a pointer or handle result.
    pub region_size: u64,
}

// uBPF's LP64 layouts, checked at compile time.
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<ubpf_safe_region>() == 32);
    assert!(offset_of!(ubpf_safe_region, id) == 0);
    assert!(offset_of!(ubpf_safe_region, base) == 8);
    assert!(offset_of!(ubpf_safe_region, size) == 16);
    assert!(offset_of!(ubpf_safe_region, kind) == 24);
    assert!(offset_of!(ubpf_safe_region, permissions) == 28);
    assert!(size_of::<ubpf_safe_helper_descriptor>() == 40);
    assert!(offset_of!(ubpf_safe_helper_descriptor, index) == 0);
    assert!(offset_of!(ubpf_safe_helper_descriptor, name) == 8);
    assert!(offset_of!(ubpf_safe_helper_descriptor, function) == 16);
    assert!(offset_of!(ubpf_safe_helper_descriptor, result_kind) == 24);
    assert!(offset_of!(ubpf_safe_helper_descriptor, region_id) == 28);
    assert!(offset_of!(ubpf_safe_helper_descriptor, region_size) == 32);
    assert!(size_of::<JitMode>() == size_of::<c_int>());
};
