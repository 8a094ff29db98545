//! Test runs of an object's programs from C (`rbpf.h`): libbpf's `bpf_prog_test_run_opts`
//! over [`rbpf::kernel::test_run`], following tail calls (`docs/kernel-programs.md`, "Test
//! runs"), and the redirect the last run asked for.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::mem::{offset_of, size_of};

use crate::object::{program_object, program_ref, rbpf_program};
use rbpf::jit::JitMode;
use rbpf::kernel::object::ProgramVm;
use rbpf::kernel::packet::Redirect;
use rbpf::kernel::test_run::{TestRunOptions, test_run_with};

/// The options and results of `rbpf_prog_test_run_opts`: libbpf's
/// `struct bpf_test_run_opts`, same fields in the same order, plus `jit`. Set `sz` to
/// `sizeof(struct rbpf_test_run_opts)` (a struct ending at `batch_size`, as libbpf's, is
/// accepted too, and runs in the interpreter).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rbpf_test_run_opts {
    /// `sizeof` the struct as the caller knows it.
    pub sz: usize,
    /// The input frame (packet types), NULL when `data_size_in` is 0.
    pub data_in: *const c_void,
    /// Receives the frame after the run, or NULL.
    pub data_out: *mut c_void,
    /// Bytes at `data_in`.
    pub data_size_in: u32,
    /// In: the capacity of `data_out`; out: the full size of the output frame.
    pub data_size_out: u32,
    /// The input context (`struct xdp_md`, `struct __sk_buff`, or plain memory), or NULL.
    pub ctx_in: *const c_void,
    /// Receives the context after the run, or NULL.
    pub ctx_out: *mut c_void,
    /// Bytes at `ctx_in`.
    pub ctx_size_in: u32,
    /// In: the capacity of `ctx_out`; out: the full size of the output context.
    pub ctx_size_out: u32,
    /// Out: the program's return value (r0 of the last program of the chain, 32 bits).
    pub retval: u32,
    /// How many times to run (0 means 1; negative is `-EINVAL`).
    pub repeat: c_int,
    /// Out: mean nanoseconds per run.
    pub duration: u32,
    /// `BPF_F_TEST_*` flags: must be 0.
    pub flags: u32,
    /// Must be 0.
    pub cpu: u32,
    /// Must be 0.
    pub batch_size: u32,
    /// 0: run in the interpreter; 1: run compiled code (every program of the object is
    /// compiled on the first such run).
    pub jit: c_int,
}

/// `rbpf_redirect.kind`: the run asked for no redirect.
pub const RBPF_REDIRECT_NONE: u32 = 0;
/// `rbpf_redirect.kind`: to a device by index (`bpf_redirect`, a DEVMAP/DEVMAP_HASH entry);
/// `target` is the ifindex, `flags` the helper's flags.
pub const RBPF_REDIRECT_IFINDEX: u32 = 1;
/// `rbpf_redirect.kind`: to a CPU (a CPUMAP entry); `target` is the CPU.
pub const RBPF_REDIRECT_CPU: u32 = 2;
/// `rbpf_redirect.kind`: to an AF_XDP socket (an XSKMAP entry); `target` is the queue index.
pub const RBPF_REDIRECT_QUEUE: u32 = 3;

/// Where a test run's program asked its packet to go (no device exists to send it to).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rbpf_redirect {
    /// `RBPF_REDIRECT_NONE`, `RBPF_REDIRECT_IFINDEX`, `RBPF_REDIRECT_CPU` or
    /// `RBPF_REDIRECT_QUEUE`.
    pub kind: u32,
    /// The ifindex, CPU or queue.
    pub target: u32,
    /// `bpf_redirect`'s flags (`BPF_F_INGRESS`, …); 0 for the other kinds.
    pub flags: u64,
}

impl From<Option<Redirect>> for rbpf_redirect {
    fn from(redirect: Option<Redirect>) -> Self {
        match redirect {
            None => rbpf_redirect::default(),
            Some(Redirect::Ifindex { ifindex, flags }) => rbpf_redirect {
                kind: RBPF_REDIRECT_IFINDEX,
                target: ifindex,
                flags,
            },
            Some(Redirect::Cpu { cpu }) => rbpf_redirect {
                kind: RBPF_REDIRECT_CPU,
                target: cpu,
                flags: 0,
            },
            Some(Redirect::Queue { queue }) => rbpf_redirect {
                kind: RBPF_REDIRECT_QUEUE,
                target: queue,
                flags: 0,
            },
        }
    }
}

thread_local! {
    /// The last test run on this thread: its program handle's address and its redirect.
    static LAST_REDIRECT: Cell<Option<(usize, Option<Redirect>)>> = const { Cell::new(None) };
}

/// Where `jit` starts: a struct of at least this size is libbpf's whole struct.
const LIBBPF_SIZE: usize = offset_of!(rbpf_test_run_opts, jit);

/// A borrowed input buffer: empty for a zero length, `None` for NULL with a length.
fn input<'a>(ptr: *const c_void, len: u32) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a non-NULL buffer is readable for its given length during the call (API
    // contract).
    Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) })
}

/// A borrowed output buffer of `capacity` bytes, `None` for NULL.
fn output<'a>(ptr: *mut c_void, capacity: u32) -> Option<&'a mut [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a non-NULL out buffer is writable for its given capacity during the call and
    // overlaps no input (API contract).
    Some(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), capacity as usize) })
}

/// Runs an object's program once or `repeat` times as the kernel's `BPF_PROG_TEST_RUN` does
/// (libbpf's `bpf_prog_test_run_opts`), following its tail calls: the frame and context stay
/// the same across the chain, `retval` is the last program's. XDP and skb types get their
/// packet and converted context; other types take `ctx_in` as plain memory (see
/// kernel-programs.md, "Test runs"). `data_size_out`/`ctx_size_out` are the capacities of
/// `data_out`/`ctx_out` on entry (0 with a buffer: nothing is copied) and the full sizes on
/// return; a buffer too small gets a partial copy and `-ENOSPC`, as with the kernel.
///
/// With `jit` set, the first run compiles every loaded program of the object that is not
/// compiled yet (a program that does not compile then runs in the interpreter; the program
/// under test must compile); such a run must not race with any other call on the object.
/// Other runs may go on on many threads at once. The redirect the run asked for, if any, is
/// then given by `rbpf_program_last_redirect`.
///
/// Returns 0, or a negative errno: `-EINVAL` for a NULL argument, an `sz` below
/// libbpf's struct or a larger one with non-zero bytes past this one, a program that did not
/// load (or does not compile with `jit`), NULL buffers with lengths, and the options the
/// kernel refuses; `-ENOSPC`; `-E2BIG` for a non-zero `ctx_in` tail; `-EFAULT` when a program
/// faulted (the failing program's VM printer says why first, see `ubpf_set_error_print` on
/// `rbpf_program_vm`). The outputs are written on 0 and `-ENOSPC` only.
// Wraps [`rbpf::kernel::test_run::test_run_with`] driven by
// [`rbpf::kernel::object::ObjectProgram::run_with`], as
// [`rbpf::kernel::object::ObjectProgram::test_run`] does (without its `&mut`, so that runs can
// share the program), after [`rbpf::kernel::object::Object::compile_programs`] for `jit`.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_prog_test_run_opts(
    prog: *mut rbpf_program,
    opts: *mut rbpf_test_run_opts,
) -> c_int {
    ffi_boundary!({
        if prog.is_null() || opts.is_null() {
            return -libc::EINVAL;
        }
        // SAFETY: `opts` is non-NULL and its `sz` field (the first) is readable (API contract).
        let sz = unsafe { opts.cast::<usize>().read_unaligned() };
        if sz < LIBBPF_SIZE {
            return -libc::EINVAL;
        }
        let known = sz.min(size_of::<rbpf_test_run_opts>());
        if sz > known {
            let past = opts.cast::<u8>().wrapping_add(known).cast_const();
            // SAFETY: the caller's struct is `sz` bytes long (API contract), so the bytes past
            // the fields known here are readable.
            let tail = unsafe { std::slice::from_raw_parts(past, sz - known) };
            if tail.iter().any(|&b| b != 0) {
                return -libc::EINVAL;
            }
        }
        let mut o = rbpf_test_run_opts {
            sz,
            data_in: std::ptr::null(),
            data_out: std::ptr::null_mut(),
            data_size_in: 0,
            data_size_out: 0,
            ctx_in: std::ptr::null(),
            ctx_out: std::ptr::null_mut(),
            ctx_size_in: 0,
            ctx_size_out: 0,
            retval: 0,
            repeat: 0,
            duration: 0,
            flags: 0,
            cpu: 0,
            batch_size: 0,
            jit: 0,
        };
        // SAFETY: the caller's struct holds `sz >= known` readable bytes, `o` has `known`
        // writable bytes (`known` is at most its size), and every bit pattern is valid for
        // its fields (integers and raw pointers).
        unsafe {
            std::ptr::copy_nonoverlapping(
                opts.cast::<u8>(),
                std::ptr::from_mut(&mut o).cast::<u8>(),
                known,
            );
        }
        let result = run(prog, &mut o);
        if result.is_ok() || result == Err(-libc::ENOSPC) {
            // SAFETY: as above, in the other direction: `known` bytes of the caller's struct
            // are writable.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    std::ptr::from_ref(&o).cast::<u8>(),
                    opts.cast::<u8>(),
                    known,
                );
            }
        }
        result.err().unwrap_or(0)
    })
}

/// The body of `rbpf_prog_test_run_opts` over a copy of the options.
fn run(prog: *mut rbpf_program, o: &mut rbpf_test_run_opts) -> Result<(), c_int> {
    LAST_REDIRECT.set(Some((prog as usize, None)));
    let einval = -libc::EINVAL;
    let repeat = u32::try_from(o.repeat).map_err(|_| einval)?;
    let jit = o.jit != 0;
    if jit {
        let (object, index) = program_object(prog).ok_or(einval)?;
        let compiled = |p: &rbpf::kernel::object::ObjectProgram<crate::ubpf_vm>| {
            p.vm().is_none_or(|v| v.vm().jit_mode().is_some())
        };
        if !object.programs().iter().all(compiled) {
            // Programs that do not compile run in the interpreter; only this one matters.
            let _ = object.compile_programs(JitMode::Basic);
        }
        if !object.programs().get(index).is_some_and(compiled) {
            return Err(einval);
        }
    }
    let program = program_ref(prog).ok_or(einval)?;
    if program.vm().is_none() {
        return Err(einval);
    }
    let mut run = TestRunOptions {
        data_in: input(o.data_in, o.data_size_in).ok_or(einval)?,
        data_out: output(o.data_out, o.data_size_out),
        ctx_in: if o.ctx_in.is_null() && o.ctx_size_in == 0 {
            None
        } else {
            Some(input(o.ctx_in, o.ctx_size_in).ok_or(einval)?)
        },
        ctx_out: output(o.ctx_out, o.ctx_size_out),
        repeat,
        flags: o.flags,
        cpu: o.cpu,
        batch_size: o.batch_size,
        jit,
        ..TestRunOptions::default()
    };
    let result = test_run_with(program.program_type(), &mut run, &mut |each| {
        program.run_with(each)
    });
    LAST_REDIRECT.set(Some((prog as usize, run.redirect)));
    o.retval = run.retval;
    o.duration = run.duration;
    o.data_size_out = run.data_size_out;
    o.ctx_size_out = run.ctx_size_out;
    result
}

/// The redirect the last `rbpf_prog_test_run_opts` of `prog` *on the calling thread* asked
/// for (`bpf_redirect`, `bpf_redirect_map` through a DEVMAP, DEVMAP_HASH, CPUMAP or XSKMAP),
/// anywhere in its chain of tail calls; with `repeat`, the last repetition's.
///
/// Returns 1 with `*out` filled, 0 with `*out` zeroed (`RBPF_REDIRECT_NONE`) when that run
/// asked for none, failed before running, or the thread's last test run was of another
/// program, and -EINVAL for a NULL argument.
// Reads [`rbpf::kernel::test_run::TestRunOptions::redirect`] of that run.
#[unsafe(no_mangle)]
pub extern "C" fn rbpf_program_last_redirect(
    prog: *const rbpf_program,
    out: *mut rbpf_redirect,
) -> c_int {
    ffi_boundary!({
        if prog.is_null() || out.is_null() {
            return -libc::EINVAL;
        }
        let redirect = LAST_REDIRECT
            .get()
            .filter(|&(p, _)| p == prog as usize)
            .and_then(|(_, r)| r);
        // SAFETY: `out` is non-NULL and writable (API contract).
        unsafe { out.write(redirect.into()) };
        i32::from(redirect.is_some())
    })
}
