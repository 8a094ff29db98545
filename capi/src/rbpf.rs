//! librbpf's own C functions (prefix `rbpf_`), declared in `include/rbpf.h`: the version,
//! the assembler and disassembler, and a JIT runner that tells faults from results.

use std::ffi::{CStr, c_char, c_int, c_void};

use crate::{errmsg, ubpf_vm};

/// The library version, NUL-terminated.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// librbpf's version, such as "0.1.0".
///
/// Returns a static string (do not free it).
// Wraps no Rust method: the crate version, `CARGO_PKG_VERSION`.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// Copies `bytes` into a `malloc` allocation (at least one byte, so an empty result is not
/// NULL). NULL if the allocation fails.
fn malloc_bytes(bytes: &[u8]) -> *mut u8 {
    // SAFETY: plain C allocation; the result is checked for NULL before use.
    let buf = unsafe { libc::malloc(bytes.len().max(1)) }.cast::<u8>();
    if !buf.is_null() {
        // SAFETY: `buf` has room for `bytes.len()` bytes and does not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
    }
    buf
}

/// Assembles eBPF assembly `text` (the bpf_conformance / uBPF syntax, e.g. `mov %r0, 1` and
/// `exit`, one instruction per line, labels allowed) into bytecode for `ubpf_load`.
///
/// On success, `*bytes` receives a `malloc`-allocated buffer (the caller frees it with
/// `free()`) of `*len` bytes. On failure `*errmsg` receives a message (freed with `free()`).
///
/// Returns 0 on success, -1 on failure (including NULL `text`, `bytes` or `len`).
// Wraps [`rbpf::tools::asm::assemble_bytes`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_assemble(
    text: *const c_char,
    bytes: *mut *mut u8,
    len: *mut usize,
    errmsg: *mut *mut c_char,
) -> c_int {
    ffi_boundary!(errmsg; {
        errmsg::clear(errmsg);
        let out_bytes = try_mut!(bytes, errmsg, "bytes");
        let out_len = try_mut!(len, errmsg, "len");
        if text.is_null() {
            errmsg::set(errmsg, &"invalid argument: text is NULL");
            return -1;
        }
        // SAFETY: a non-NULL `text` is a NUL-terminated string (API contract).
        let Ok(text) = unsafe { CStr::from_ptr(text) }.to_str() else {
            errmsg::set(errmsg, &"invalid argument: text is not valid UTF-8");
            return -1;
        };
        match rbpf::tools::asm::assemble_bytes(text) {
            Ok(code) => {
                let buf = malloc_bytes(&code);
                if buf.is_null() {
                    errmsg::set(errmsg, &"out of memory");
                    return -1;
                }
                *out_bytes = buf;
                *out_len = code.len();
                0
            }
            Err(err) => {
                errmsg::set(errmsg, &err);
                -1
            }
        }
    })
}

/// Disassembles `len` bytes of bytecode into text, one instruction per line, in the syntax
/// `rbpf_assemble` reads (labels at jump and call targets).
///
/// On success, `*text` receives a `malloc`-allocated NUL-terminated string (the caller frees
/// it with `free()`). On failure `*errmsg` receives a message (freed with `free()`).
///
/// Returns 0 on success, -1 on failure (a length that is not a multiple of 8, or NULL
/// `bytes` with a non-zero `len`, or NULL `text`).
// Wraps [`rbpf::tools::disasm::disassemble_bytes`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_disassemble(
    bytes: *const u8,
    len: usize,
    text: *mut *mut c_char,
    errmsg: *mut *mut c_char,
) -> c_int {
    ffi_boundary!(errmsg; {
        errmsg::clear(errmsg);
        let out_text = try_mut!(text, errmsg, "text");
        let code = try_slice!(bytes, len, errmsg, "bytes");
        let Some(listing) = rbpf::tools::disasm::disassemble_bytes(code) else {
            errmsg::set(errmsg, &"bytecode length must be a multiple of 8");
            return -1;
        };
        let buf = errmsg::malloc_cstring(&listing);
        if buf.is_null() {
            errmsg::set(errmsg, &"out of memory");
            return -1;
        }
        *out_text = buf;
        0
    })
}

/// Runs the code compiled by `ubpf_compile`/`ubpf_compile_ex` on `mem` (`r1 = mem`,
/// `r2 = mem_len`; extended-mode code gets a fresh 4096-byte stack), telling faults from
/// results: calling the compiled function directly returns `UINT64_MAX` on a fault, which a
/// program can also return legitimately. Faults are reported through the error printer.
///
/// Threads: as `ubpf_exec`.
///
/// Returns 0 and writes r0 to `*bpf_return_value`, or -1 (nothing compiled, a fault, or a
/// NULL `vm` or `bpf_return_value`) leaving `*bpf_return_value` untouched.
// Wraps [`Vm::execute_jit_raw`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_exec_jit(
    vm: *const ubpf_vm,
    mem: *mut c_void,
    mem_len: usize,
    bpf_return_value: *mut u64,
) -> c_int {
    ffi_boundary!({
        let handle = try_vm!(vm);
        let ret = try_mut!(bpf_return_value);
        handle
            .execution_started
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: `mem`/`mem_len` describe the caller's buffer (API contract); a NULL stack
        // makes extended-mode code use its own.
        match unsafe {
            handle
                .vm
                .execute_jit_raw(mem.cast(), mem_len, std::ptr::null_mut(), 0)
        } {
            Ok(value) => {
                *ret = value;
                0
            }
            Err(_) => -1,
        }
    })
}

/// Which engine [`exec_mbuff`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    Interpreter,
    Jit,
}

/// The shared body of `rbpf_exec_mbuff` and `rbpf_exec_mbuff_jit`: checks every argument,
/// writes the packet bounds into `ctx` and runs `engine`.
#[allow(clippy::too_many_arguments)]
fn exec_mbuff(
    engine: Engine,
    vm: *const ubpf_vm,
    ctx: *mut c_void,
    ctx_len: usize,
    data: *mut c_void,
    data_len: usize,
    data_offset: usize,
    data_end_offset: usize,
    bpf_return_value: *mut u64,
) -> c_int {
    let handle = try_vm!(vm);
    let ret = try_mut!(bpf_return_value);
    let fits = |offset: usize| offset.checked_add(8).is_some_and(|end| end <= ctx_len);
    if ctx.is_null() || !fits(data_offset) || !fits(data_end_offset) {
        return -1;
    }
    if data.is_null() && data_len != 0 {
        return -1;
    }
    // SAFETY: `data` is the caller's writable buffer of `data_len` bytes for the call (API
    // contract; NULL only with length 0, an empty region); a length no buffer can have is
    // refused here, before `ctx` is written or anything runs, as `ubpf_exec` refuses such a
    // `mem`.
    let region = match unsafe {
        rbpf::exec::memory::MemRegion::from_raw(data.cast(), data_len, true, "data")
    } {
        Ok(region) => region,
        Err(err) => {
            handle.vm.report(&err);
            return -1;
        }
    };
    // `data` is also the packet the legacy packet loads read (docs/semantics.md), even when
    // empty.
    let extra = [region.as_packet()];
    let extra: &[rbpf::exec::memory::MemRegion<'_>] = &extra;
    let start = data as u64;
    // `from_raw` refused every length whose end wraps (and 0 cannot wrap).
    let end = start.wrapping_add(data_len as u64);
    let ctx = ctx.cast::<u8>();
    let (data_slot, data_end_slot) = (
        ctx.wrapping_add(data_offset).cast::<u64>(),
        ctx.wrapping_add(data_end_offset).cast::<u64>(),
    );
    // SAFETY: both offsets leave 8 bytes inside the caller's `ctx_len`-byte buffer (checked
    // above); unaligned writes are allowed.
    unsafe { data_slot.write_unaligned(start.to_le()) };
    // SAFETY: as for `data_slot`.
    unsafe { data_end_slot.write_unaligned(end.to_le()) };
    handle
        .execution_started
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let result = match engine {
        Engine::Interpreter => {
            let mut stack = [0u8; rbpf::isa::STACK_SIZE];
            // SAFETY: `ctx`/`ctx_len` describe the caller's buffer (API contract); the stack
            // is local.
            unsafe {
                handle.vm.execute_raw_with_regions(
                    ctx,
                    ctx_len,
                    stack.as_mut_ptr(),
                    stack.len(),
                    extra,
                )
            }
        }
        // SAFETY: as above; a NULL stack gives the run its own.
        Engine::Jit => unsafe {
            handle
                .vm
                .execute_jit_raw_with_regions(ctx, ctx_len, std::ptr::null_mut(), 0, extra)
        },
    };
    match result {
        Ok(value) => {
            *ret = value;
            0
        }
        Err(_) => -1,
    }
}

/// Runs the loaded program in the interpreter the way the kernel runs packet programs: `ctx`
/// is a context struct (`r1 = ctx`, `r2 = ctx_len`) into which librbpf first writes the
/// addresses of the packet data's start (`data`) and end (`data + data_len`) as 64-bit values
/// at `data_offset` and `data_end_offset`. The program may access `ctx`, the packet data and
/// its stack (rbpf's fixed-mbuff mode).
///
/// Threads: as `ubpf_exec` (each thread needs its own `ctx`).
///
/// Returns 0 and writes r0 to `*bpf_return_value`, or -1 (a fault reported through the error
/// printer; an offset that leaves fewer than 8 bytes in `ctx`; NULL `vm`, `ctx` or
/// `bpf_return_value`; NULL `data` with a nonzero length; a `data_len` above `PTRDIFF_MAX`
/// or passing the end of the address space, printed and refused before `ctx` is written)
/// leaving `*bpf_return_value` untouched.
// Wraps [`Vm::execute_raw_with_regions`].
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn rbpf_exec_mbuff(
    vm: *const ubpf_vm,
    ctx: *mut c_void,
    ctx_len: usize,
    data: *mut c_void,
    data_len: usize,
    data_offset: usize,
    data_end_offset: usize,
    bpf_return_value: *mut u64,
) -> c_int {
    ffi_boundary!({
        exec_mbuff(
            Engine::Interpreter,
            vm,
            ctx,
            ctx_len,
            data,
            data_len,
            data_offset,
            data_end_offset,
            bpf_return_value,
        )
    })
}

/// `rbpf_exec_mbuff` with the code compiled by `ubpf_compile`/`ubpf_compile_ex`, which checks
/// accesses against the same regions. Returns -1 as well when nothing is compiled.
// Wraps [`Vm::execute_jit_raw_with_regions`].
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn rbpf_exec_mbuff_jit(
    vm: *const ubpf_vm,
    ctx: *mut c_void,
    ctx_len: usize,
    data: *mut c_void,
    data_len: usize,
    data_offset: usize,
    data_end_offset: usize,
    bpf_return_value: *mut u64,
) -> c_int {
    ffi_boundary!({
        exec_mbuff(
            Engine::Jit,
            vm,
            ctx,
            ctx_len,
            data,
            data_len,
            data_offset,
            data_end_offset,
            bpf_return_value,
        )
    })
}

/// `rbpf_set_jit_tier`: the JIT picks per program (the default). Programs it can compile
/// quickly get Cranelift's optimiser; larger ones the one-pass baseline tier on x86-64
/// (Cranelift without its optimiser where that does not apply), so compile time stays
/// linear in the program's size.
pub const RBPF_JIT_TIER_AUTO: c_int = 0;
/// `rbpf_set_jit_tier`: always Cranelift's optimiser (fastest code; compile time grows
/// faster than the program on large ones).
pub const RBPF_JIT_TIER_OPTIMISED: c_int = 1;
/// `rbpf_set_jit_tier`: always Cranelift without its optimiser.
pub const RBPF_JIT_TIER_FAST: c_int = 2;
/// `rbpf_set_jit_tier`: the one-pass x86-64 baseline tier wherever it applies (fastest
/// compile; not with constant blinding, legacy packet loads or the kernel's helpers, and
/// only on x86-64 System V hosts), `RBPF_JIT_TIER_FAST` elsewhere.
pub const RBPF_JIT_TIER_BASELINE: c_int = 3;

/// Chooses how later `ubpf_compile`, `ubpf_compile_ex`, `ubpf_translate` and
/// `ubpf_translate_ex` calls compile (`RBPF_JIT_TIER_AUTO`, `_OPTIMISED`, `_FAST` or
/// `_BASELINE`). Every tier keeps the same sandbox and gives the interpreter's results; only
/// compile time and code speed differ. Code already compiled is kept until the program is
/// unloaded.
///
/// Returns 0, or -1 for a NULL `vm` or an unknown `tier` (nothing changes).
// Wraps [`rbpf::Vm::config_mut`] (`Config::jit_tier`).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_set_jit_tier(vm: *mut ubpf_vm, tier: c_int) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        let tier = match tier {
            RBPF_JIT_TIER_AUTO => rbpf::JitTier::Auto,
            RBPF_JIT_TIER_OPTIMISED => rbpf::JitTier::Optimised,
            RBPF_JIT_TIER_FAST => rbpf::JitTier::Fast,
            RBPF_JIT_TIER_BASELINE => rbpf::JitTier::Baseline,
            _ => return -1,
        };
        handle.vm.config_mut().jit_tier = tier;
        0
    })
}

/// Whether later `ubpf_compile` and `ubpf_compile_ex` calls may tier up in the background
/// (`enable` nonzero, the default) under `RBPF_JIT_TIER_AUTO`. A program whose optimised
/// compile would take long (about 200 µs and more) then gets code from a cheap tier at
/// once, and a background thread swaps in the optimised code when it is ready; both give
/// the same results. With 0, such programs compile optimised before the call returns.
/// `ubpf_translate` always compiles in one step.
///
/// Returns 0, or -1 for a NULL `vm`.
// Wraps [`rbpf::Vm::config_mut`] (`Config::background_tier_up`).
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_set_background_tier_up(vm: *mut ubpf_vm, enable: c_int) -> c_int {
    ffi_boundary!({
        let handle = try_vm_mut!(vm);
        handle.vm.config_mut().background_tier_up = enable != 0;
        0
    })
}

/// Waits until the compiled code runs its final tier: after a compile that tiers up in the
/// background (see `rbpf_set_background_tier_up`), until the optimised code is in place.
/// Never needed for correctness; useful before timing the code.
///
/// Returns 1 when the code now runs the optimised code of a background compile, 0 when it
/// was compiled in one step (or the background compile gave up and the first code stays),
/// and -1 for a NULL `vm` or a VM without compiled code.
// Wraps [`rbpf::Vm::wait_for_tier_up`].
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_wait_for_tier_up(vm: *mut ubpf_vm) -> c_int {
    ffi_boundary!({
        let handle = try_vm!(vm);
        match handle.vm.wait_for_tier_up() {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        }
    })
}
