//! The sandbox rules of docs/sandbox.md through the Rust API, each in the interpreter and the
//! JIT (Basic and Extended mode): no host byte reaches a program through the stack, caller
//! buffers that wrap the address space are refused, the instruction limit gives the
//! interpreter's exact outcome, nested runs are bounded, and code that a helper is running
//! cannot be freed under it. (The C-API side of the same rules is `capi-tests/sandbox.c`.)

mod common;

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use common::engines::{MODES as ENGINES, Mode as Engine};
use common::mapping::Mapping;
use rbpf::Vm;
use rbpf::error::ExecError;
use rbpf::isa::{self, Insn, STACK_SIZE};
use rbpf::jit::JitMode;

const EXIT: Insn = Insn::new(0x95, 0, 0, 0, 0);

fn mov(dst: u8, imm: i32) -> Insn {
    Insn::new(0xb7, dst, 0, 0, imm)
}

fn movr(dst: u8, src: u8) -> Insn {
    Insn::new(0xbf, dst, src, 0, 0)
}

fn ldxdw(dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(0x79, dst, src, off, 0)
}

fn call_local(rel: i32) -> Insn {
    Insn::new(0x85, 0, 1, 0, rel)
}

/// A VM with `insns` loaded (and compiled for `engine`), printing nothing; the returned log
/// collects the printed errors.
fn vm_for(insns: &[Insn], engine: Engine) -> (Vm, Arc<Mutex<Vec<String>>>) {
    let mut vm = Vm::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    vm.set_error_printer(Some(Box::new(move |m| {
        sink.lock().unwrap().push(m.to_owned())
    })));
    rbpf::conformance::register_helpers(&mut vm);
    vm.load(&isa::encode_slots(insns)).expect("program loads");
    engine.prepare(&mut vm).expect("program compiles");
    (vm, log)
}

fn run(vm: &Vm, engine: Engine, mem: &mut [u8]) -> Result<u64, ExecError> {
    engine.run(vm, mem)
}

/// Fills the whole stack with 0x5a bytes through a copy of r10, then returns 0.
fn dirty_the_stack() -> Vec<Insn> {
    let mut p = vec![movr(1, 10)];
    p.extend([
        Insn::new(0x18, 2, 0, 0, 0x5a5a_5a5a),
        Insn::new(0, 0, 0, 0, 0x5a5a_5a5a),
    ]);
    p.push(mov(3, (STACK_SIZE / 8) as i32));
    p.push(Insn::new(0x17, 1, 0, 0, 8)); // loop: sub r1, 8
    p.push(Insn::new(0x7b, 1, 2, 0, 0)); //       stxdw [r1], r2
    p.push(Insn::new(0x17, 3, 0, 0, 1)); //       sub r3, 1
    p.push(Insn::new(0x55, 3, 0, -4, 0)); //      jne r3, 0, loop
    p.extend([mov(0, 0), EXIT]);
    p
}

/// Leaves non-zero bytes all over this thread's native stack below the caller's frame.
#[inline(never)]
fn dirty_native_stack() -> u64 {
    let mut junk = [0u64; 2048];
    for (i, w) in junk.iter_mut().enumerate() {
        *w = 0xdead_beef_0000_0000 | i as u64;
    }
    std::hint::black_box(&mut junk);
    junk.iter().fold(0, |a, w| a ^ w)
}

/// Programs that read stack they never wrote, with what they read folded into r0.
fn readers() -> Vec<(&'static str, Vec<Insn>)> {
    let mut all = Vec::new();
    for off in [-8i16, -16, -512, -520, -4096] {
        // ldxdw r0, [r10+off]; exit: constant offsets, only the top -off bytes are cleared.
        all.push(("constant offset", vec![ldxdw(0, 10, off), EXIT]));
        // The same through a copy of r10: the whole stack is cleared.
        all.push(("r10 copied", vec![movr(1, 10), ldxdw(0, 1, off), EXIT]));
    }
    // Every 8 bytes of the stack OR-ed together through a copy of r10.
    all.push((
        "whole stack",
        vec![
            movr(1, 10),
            mov(0, 0),
            mov(3, (STACK_SIZE / 8) as i32),
            Insn::new(0x17, 1, 0, 0, 8),  // sub r1, 8
            ldxdw(2, 1, 0),               // ldxdw r2, [r1]
            Insn::new(0x4f, 0, 2, 0, 0),  // or r0, r2
            Insn::new(0x17, 3, 0, 0, 1),  // sub r3, 1
            Insn::new(0x55, 3, 0, -5, 0), // jne r3, 0, loop
            EXIT,
        ],
    ));
    // A local call: the callee reads the deepest bytes of its own frame, 256 bytes below
    // main's, then main reads its own frame.
    all.push((
        "local call",
        vec![
            call_local(3),
            ldxdw(1, 10, -256),
            Insn::new(0x0f, 0, 1, 0, 0), // add r0, r1
            EXIT,
            ldxdw(0, 10, -256),
            EXIT,
        ],
    ));
    // Local calls nested eight deep (one function calling itself until r6 runs out), reading
    // the bottom of the deepest frame.
    all.push((
        "recursion",
        vec![
            mov(6, 7),
            call_local(1),
            EXIT,
            // f: if r6 == 0 read [r10-256]; else r6 -= 1 and recurse
            Insn::new(0x15, 6, 0, 3, 0),
            Insn::new(0x17, 6, 0, 0, 1),
            call_local(-3),
            EXIT,
            ldxdw(0, 10, -256),
            EXIT,
        ],
    ));
    all
}

#[test]
fn never_written_stack_reads_zero_in_every_engine() {
    for engine in ENGINES {
        let (dirty, _) = vm_for(&dirty_the_stack(), engine);
        for (what, insns) in readers() {
            let (vm, log) = vm_for(&insns, engine);
            for round in 0..3 {
                // What an earlier run (another program) left on this thread's stack, and what
                // unrelated host code left on the native stack, must both stay invisible.
                assert_eq!(run(&dirty, engine, &mut []), Ok(0));
                std::hint::black_box(dirty_native_stack());
                assert_eq!(
                    run(&vm, engine, &mut []),
                    Ok(0),
                    "{engine:?} {what} round {round}: {insns:?} {:?}",
                    log.lock().unwrap()
                );
            }
        }
    }
}

#[test]
fn stack_reach_is_the_deepest_constant_offset_including_frames() {
    let reach = |insns: &[Insn]| {
        let mut vm = Vm::new();
        vm.load(&isa::encode_slots(insns)).unwrap();
        vm.program().unwrap().stack_reach
    };
    assert_eq!(reach(&[mov(0, 0), EXIT]), 0);
    assert_eq!(reach(&[ldxdw(0, 10, -8), EXIT]), 8);
    assert_eq!(reach(&[ldxdw(0, 10, 8), EXIT]), 0);
    assert_eq!(
        reach(&[Insn::new(0x62, 10, 0, -300, 1), mov(0, 0), EXIT]),
        300
    );
    // r10 copied, compared, or stored as a value: the whole stack.
    assert_eq!(reach(&[movr(1, 10), mov(0, 0), EXIT]), STACK_SIZE);
    assert_eq!(
        reach(&[Insn::new(0x7b, 10, 10, -8, 0), mov(0, 0), EXIT]),
        STACK_SIZE
    );
    assert_eq!(
        reach(&[mov(0, 0), Insn::new(0x1d, 1, 10, 0, 0), EXIT]),
        STACK_SIZE
    );
    // main (256-byte frame) calls f, which reads 16 bytes below its r10.
    assert_eq!(
        reach(&[call_local(1), EXIT, ldxdw(0, 10, -16), EXIT]),
        256 + 16
    );
    // Recursion: as deep as eight nested calls can go (8 frames of 256 bytes), plus the
    // deepest function's own 256 bytes.
    let recursion = readers().pop().unwrap().1;
    assert_eq!(reach(&recursion), 8 * 256 + 256);
}

#[test]
fn buffers_that_wrap_the_address_space_are_refused() {
    // Loads just below mem and at a tiny absolute address: with mem_len = SIZE_MAX a
    // wrapping bounds check would accept both.
    let below = vec![ldxdw(0, 1, -16), EXIT];
    let absolute = vec![
        Insn::new(0x18, 1, 0, 0, 0x10),
        Insn::new(0, 0, 0, 0, 0),
        Insn::new(0x71, 0, 1, 0, 0),
        EXIT,
    ];
    let empty = vec![mov(0, 7), EXIT];
    let mut mem = [0u8; 64];
    for engine in ENGINES {
        for insns in [&below, &absolute, &empty] {
            let (vm, log) = vm_for(insns, engine);
            for len in [usize::MAX, usize::MAX - 8, isize::MAX as usize + 1] {
                let got = match engine {
                    // SAFETY: the run is refused before any access; nothing reads past 64
                    // bytes.
                    Engine::Interpreter => unsafe {
                        vm.execute_on_own_stack(mem.as_mut_ptr(), len)
                    },
                    // SAFETY: as above.
                    Engine::Jit(_) => unsafe {
                        vm.execute_jit_raw(mem.as_mut_ptr(), len, std::ptr::null_mut(), 0)
                    },
                };
                assert_eq!(
                    got,
                    Err(ExecError::InvalidBuffer { buffer: "mem", len }),
                    "{engine:?} {insns:?}"
                );
            }
            assert!(log.lock().unwrap()[0].ends_with(
                "mem buffer of 18446744073709551615 bytes passes the end of the address space"
            ));
            // A null mem is no region at all, whatever its length: r2 is just a number.
            let null = match engine {
                // SAFETY: nothing can be accessed through a null mem.
                Engine::Interpreter => unsafe {
                    vm.execute_on_own_stack(std::ptr::null_mut(), usize::MAX)
                },
                // SAFETY: as above.
                Engine::Jit(_) => unsafe {
                    vm.execute_jit_raw(std::ptr::null_mut(), usize::MAX, std::ptr::null_mut(), 0)
                },
            };
            if insns == &empty {
                assert_eq!(null, Ok(7));
            } else {
                assert!(null.is_err(), "{engine:?}: {null:?}");
            }
        }
    }
}

/// Runs `vm`'s program without mem on the caller's stack `stack` of `len` bytes (extended
/// mode for the JIT).
///
/// # Safety
/// As [`Vm::execute_raw`]: the run may use `len` bytes at `stack`.
unsafe fn run_on_stack(
    vm: &Vm,
    engine: Engine,
    stack: *mut u8,
    len: usize,
) -> Result<u64, ExecError> {
    match engine {
        // SAFETY: forwarded from the caller.
        Engine::Interpreter => unsafe { vm.execute_raw(std::ptr::null_mut(), 0, stack, len) },
        // SAFETY: forwarded from the caller.
        Engine::Jit(_) => unsafe { vm.execute_jit_raw(std::ptr::null_mut(), 0, stack, len) },
    }
}

#[test]
fn a_caller_stack_that_wraps_is_refused() {
    // stb [r10-1], 1: r10 = stack + stack_len, which wraps when stack_len is SIZE_MAX.
    let store = vec![Insn::new(0x72, 10, 0, -1, 1), mov(0, 0), EXIT];
    let mut stack = [0u8; 64];
    for engine in [Engine::Interpreter, Engine::Jit(JitMode::Extended)] {
        let (vm, _) = vm_for(&store, engine);
        for len in [usize::MAX, usize::MAX - 63] {
            // SAFETY: the run is refused before any access.
            let got = unsafe { run_on_stack(&vm, engine, stack.as_mut_ptr(), len) };
            assert_eq!(
                got,
                Err(ExecError::InvalidBuffer {
                    buffer: "stack",
                    len
                }),
                "{engine:?}"
            );
        }
        // The same stack with its real length works and is used as given.
        // SAFETY: `stack` is valid for its 64 bytes.
        let got = unsafe { run_on_stack(&vm, engine, stack.as_mut_ptr(), 64) };
        assert_eq!(got, Ok(0));
        assert_eq!(stack[63], 1);
        stack[63] = 0;
    }
}

/// A helper that records its call in `mem[0]` (its cookie) and returns its argument.
unsafe extern "C" fn mark(r1: u64, _: u64, _: u64, _: u64, _: u64, mem: *mut c_void) -> u64 {
    if !mem.is_null() {
        // SAFETY: the tests below always pass at least one byte of memory.
        unsafe { *mem.cast::<u8>() += 1 };
    }
    r1
}

#[test]
fn the_limit_gives_the_interpreters_outcome_inside_a_block() {
    // One block: mark(1); stb [r1+1], 9; mark(0) via the unwind helper (5); mov r0, 3; exit.
    // r1 is mem; r6 keeps it across calls.
    let prog = vec![
        movr(6, 1),                  // 0
        Insn::new(0x85, 0, 0, 0, 9), // 1: call mark (mem[0] += 1)
        Insn::new(0x72, 6, 0, 1, 9), // 2: stb [r6+1], 9
        mov(1, 0),                   // 3
        Insn::new(0x85, 0, 0, 0, 5), // 4: call unwind(0): ends the run with 0
        mov(0, 3),                   // 5
        EXIT,                        // 6
    ];
    for limit in 0..=8u32 {
        let mut outcomes = Vec::new();
        for engine in ENGINES {
            let mut vm = Vm::new();
            vm.set_error_printer(Some(Box::new(|_| {})));
            rbpf::conformance::register_helpers(&mut vm);
            vm.register_helper(9, Some("mark"), mark).unwrap();
            vm.config_mut().instruction_limit = limit;
            vm.load(&isa::encode_slots(&prog)).unwrap();
            if let Engine::Jit(mode) = engine {
                vm.compile(mode).unwrap();
            }
            let mut mem = [0u8; 4];
            let result = run(&vm, engine, &mut mem);
            outcomes.push((result, mem));
        }
        let expected = match limit {
            // No limit, or enough for the unwind call: the unwind helper ends it with 0.
            0 | 5..=8 => (Ok(0), [1, 9, 0, 0]),
            1 => (Err(ExecError::InstructionLimit { pc: 1 }), [0; 4]),
            2 => (Err(ExecError::InstructionLimit { pc: 2 }), [1, 0, 0, 0]),
            3 => (Err(ExecError::InstructionLimit { pc: 3 }), [1, 9, 0, 0]),
            _ => (Err(ExecError::InstructionLimit { pc: 4 }), [1, 9, 0, 0]),
        };
        for (engine, got) in ENGINES.iter().zip(&outcomes) {
            assert_eq!(got, &expected, "limit {limit}, {engine:?}");
        }
    }
}

/// The VM [`run_again`] runs, and with which engine (0: interpreter, 1: JIT).
static NESTED_VM: std::sync::atomic::AtomicPtr<Vm> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
static NESTED_ENGINE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Runs the program of [`NESTED_VM`] again: nested result + 1, or 1000 when it failed.
unsafe extern "C" fn run_again(_: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    let vm = NESTED_VM.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: the test keeps the VM alive (and unmoved) while its program runs.
    let vm = unsafe { &*vm };
    let nested = if NESTED_ENGINE.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        vm.execute(&mut [])
    } else {
        vm.execute_jit(&mut [])
    };
    if !vm.is_running_on_this_thread() {
        return 5000; // fails the test's result check (no panic across extern "C")
    }
    nested.map_or(1000, |r| r + 1)
}

#[test]
fn unbounded_reentry_stops_at_the_nesting_limit() {
    for (engine, code) in [(Engine::Interpreter, 0), (Engine::Jit(JitMode::Basic), 1)] {
        let mut vm = Vm::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        vm.set_error_printer(Some(Box::new(move |m| {
            sink.lock().unwrap().push(m.to_owned())
        })));
        vm.register_helper(3, Some("run_again"), run_again).unwrap();
        vm.load(&isa::encode_slots(&[Insn::new(0x85, 0, 0, 0, 3), EXIT]))
            .unwrap();
        if let Engine::Jit(mode) = engine {
            vm.compile(mode).unwrap();
        }
        let vm = Box::new(vm);
        NESTED_VM.store(
            std::ptr::from_ref(&*vm).cast_mut(),
            std::sync::atomic::Ordering::SeqCst,
        );
        NESTED_ENGINE.store(code, std::sync::atomic::Ordering::SeqCst);
        assert!(!vm.is_running_on_this_thread());
        // 32 runs nest; the 33rd is refused before its first instruction, the helper that
        // started it returns 1000 and the 31 levels above add 1 each.
        assert_eq!(run(&vm, engine, &mut []), Ok(1000 + 31), "{engine:?}");
        assert!(!vm.is_running_on_this_thread());
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(
            log[0],
            format!(
                "uBPF error: more than {} program runs nested on this thread (through helpers)",
                isa::MAX_NESTED_RUNS
            )
        );
        NESTED_VM.store(std::ptr::null_mut(), std::sync::atomic::Ordering::SeqCst);
    }
}

unsafe extern "C" fn plus_one(a: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    a + 1
}

unsafe extern "C" fn times_ten(a: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    a * 10
}

#[test]
fn copies_keep_working_after_unload_and_drop() {
    // r2 == 0: plus_one(41); else an out-of-bounds store at [r1+r2].
    let prog = [
        Insn::new(0x55, 2, 0, 3, 0),
        mov(1, 41),
        Insn::new(0x85, 0, 0, 0, 7),
        EXIT,
        Insn::new(0x0f, 1, 2, 0, 0),
        Insn::new(0x72, 1, 0, 0, 1),
        mov(0, 0),
        EXIT,
    ];
    for (translate, drop_vm) in [(false, false), (false, true), (true, false), (true, true)] {
        let mut vm = Vm::new();
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm.register_helper(7, Some("plus_one"), plus_one).unwrap();
        vm.load(&isa::encode_slots(&prog)).unwrap();
        let mut buf = vec![0u8; 65536];
        let len = if translate {
            vm.translate(JitMode::Basic, &mut buf).unwrap()
        } else {
            vm.compile(JitMode::Basic).unwrap();
            vm.copy_jit(&mut buf).unwrap();
            vm.jit_size().unwrap()
        };
        let copy = Mapping::new(&buf[..len]);
        // The mappings hold Basic-mode code librbpf made, which `run_basic` requires.
        let run_basic = |mapping: &Mapping, mem: &mut [u8]| {
            // SAFETY: Basic-mode code librbpf made.
            unsafe { mapping.run(JitMode::Basic, mem) }
        };
        let mut mem = [0u8; 4];
        assert_eq!(run_basic(&copy, &mut []), 42);
        assert_eq!(run_basic(&copy, &mut mem), u64::MAX);
        if drop_vm {
            drop(vm);
        } else {
            vm.unload().unwrap();
            vm.register_helper(7, Some("times_ten"), times_ten).unwrap();
        }
        // The helper registered when the VM let go of the code is still called; faults
        // still return u64::MAX (reported on standard error).
        assert_eq!(run_basic(&copy, &mut []), 42);
        assert_eq!(run_basic(&copy, &mut mem), u64::MAX);
        assert_eq!(mem, [0; 4]);
        let moved = Mapping::new(&buf[..len]);
        drop(copy);
        assert_eq!(run_basic(&moved, &mut []), 42);
    }
}
