//! Tests of the interpreter's run entry (`crate::interpreter`, "run_entry"): the thread's
//! stack buffer taken and released around every run on its own stack, the part a program can
//! reach cleared before it runs, nested runs from helpers on a fresh stack, and failures
//! before the first instruction, through every entry point that uses the thread's buffer.

use alloc::sync::Arc;

use crate::error::ExecError;
#[allow(unused_imports)]
use crate::test_prelude::*;
use crate::tools::asm::assemble_bytes;
use crate::vm::Vm;

/// A VM with `text` loaded and a silent error printer.
fn vm_with(text: &str) -> Vm {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.load(&assemble_bytes(text).expect("assembles"))
        .expect("loads");
    vm
}

/// Runs `vm` on the thread's stack buffer through `Vm::execute` (`how == 0`) or
/// `Vm::execute_on_own_stack` (`ubpf_exec`'s path), without memory.
fn run_own(vm: &Vm, how: u32) -> Result<u64, ExecError> {
    if how == 0 {
        vm.execute(&mut [])
    } else {
        // SAFETY: no memory is passed.
        unsafe { vm.execute_on_own_stack(core::ptr::null_mut(), 0) }
    }
}

/// Writes 0xff bytes into the top 64 bytes of its stack, then (when `fault`) faults on a
/// load from address 8, which is no region.
fn scribbler(fault: bool) -> Vm {
    let mut text = String::new();
    for slot in 1..=8 {
        text.push_str(&format!("stdw [%r10-{}], -1\n", slot * 8));
    }
    if fault {
        text.push_str("mov %r1, 8\nldxdw %r0, [%r1]\n");
    }
    text.push_str("mov %r0, 0\nexit");
    vm_with(&text)
}

/// ORs together the top 64 bytes of its stack, none of which it writes.
fn reader() -> Vm {
    let mut text = String::from("mov %r0, 0\n");
    for slot in 1..=8 {
        text.push_str(&format!("ldxdw %r1, [%r10-{}]\nor %r0, %r1\n", slot * 8));
    }
    text.push_str("exit");
    vm_with(&text)
}

#[test]
fn what_an_earlier_run_left_on_the_threads_stack_reads_zero() {
    let reader = reader();
    for how in [0, 1] {
        for fault in [false, true] {
            let scribbler = scribbler(fault);
            for _ in 0..3 {
                let outcome = run_own(&scribbler, how);
                assert_eq!(outcome.is_err(), fault, "{outcome:?}");
                assert_eq!(run_own(&reader, how), Ok(0), "entry {how}, fault {fault}");
            }
        }
        // A program that reaches no stack runs in between and clears nothing; the next
        // reader still reads zero.
        let empty = vm_with("mov %r0, 7\nexit");
        assert_eq!(empty.program().map(|p| p.stack_reach), Some(0));
        assert_eq!(run_own(&scribbler(false), how), Ok(0));
        assert_eq!(run_own(&empty, how), Ok(7));
        assert_eq!(run_own(&reader, how), Ok(0));
    }
    assert!(!crate::interpreter::thread_stack_held());
}

#[test]
fn a_run_nested_in_a_helper_gets_a_fresh_stack_and_leaves_the_outer_one_alone() {
    // The inner program returns what it finds 16 bytes below r10 (which the outer program
    // wrote on its own stack) and scribbles over the slot the outer program reads back.
    let inner = Arc::new(vm_with("ldxdw %r0, [%r10-16]\nstdw [%r10-8], -1\nexit"));
    for how in [0, 1] {
        let mut outer = Vm::new();
        outer.set_error_printer(Some(Box::new(|_| {})));
        let nested = inner.clone();
        outer
            .register_closure(1, Some("run_inner"), move |_, _, _, _, _| {
                let held = crate::interpreter::thread_stack_held();
                match run_own(&nested, how) {
                    Ok(found) if held => found + 1,
                    _ => u64::MAX,
                }
            })
            .expect("registers");
        let text = "stdw [%r10-8], 0x55\nstdw [%r10-16], 0x77\ncall 1\nmov %r6, %r0\n\
                    ldxdw %r0, [%r10-8]\nadd %r0, %r6\nexit";
        outer
            .load(&assemble_bytes(text).expect("assembles"))
            .expect("loads");
        // The inner run read 0 (a fresh stack), the helper added 1, and the outer run's
        // slot still holds 0x55.
        for _ in 0..3 {
            assert_eq!(run_own(&outer, how), Ok(0x55 + 1), "entry {how}");
            assert!(!crate::interpreter::thread_stack_held());
        }
        // Run on its own, the inner program gets the (cleared) thread stack.
        assert_eq!(run_own(&inner, how), Ok(0));
    }
}

#[test]
fn a_panicking_helper_releases_the_threads_stack() {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.register_closure(2, Some("panics"), |r1, _, _, _, _| {
        assert_eq!(r1, 0, "helper asked to panic");
        r1
    })
    .expect("registers");
    // Stores on the stack, then calls the helper with r1 = what it read from mem.
    let text = "stdw [%r10-8], -1\nldxdw %r1, [%r1]\ncall 2\nldxdw %r0, [%r10-8]\nexit";
    vm.load(&assemble_bytes(text).expect("assembles"))
        .expect("loads");
    let mut panics = 1u64.to_le_bytes();
    let unwound = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        let _ = vm.execute(&mut panics);
    }));
    assert!(unwound.is_err());
    assert!(!crate::interpreter::thread_stack_held());
    let mut calm = 0u64.to_le_bytes();
    assert_eq!(vm.execute(&mut calm), Ok(u64::MAX));
    // The thread's buffer is in use again (not a fresh one per run): a reader sees zeros.
    assert_eq!(run_own(&reader(), 1), Ok(0));
}

#[test]
fn failures_before_the_first_instruction_keep_their_order_and_release_the_stack() {
    // Nothing loaded: `NotLoaded`, never printed.
    let printed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut vm = Vm::new();
    let sink = printed.clone();
    vm.set_error_printer(Some(Box::new(move |m| sink.lock().unwrap().push(m.into()))));
    for how in [0, 1] {
        assert_eq!(run_own(&vm, how), Err(ExecError::NotLoaded));
    }
    assert!(printed.lock().unwrap().is_empty());
    // A mem that wraps the address space: refused and reported, before any level is entered
    // or the program runs; the thread's buffer is released.
    vm.load(&assemble_bytes("mov %r0, 1\nexit").unwrap())
        .unwrap();
    // SAFETY: the buffer is refused before anything reads it.
    let refused = unsafe { vm.execute_on_own_stack(core::ptr::dangling_mut(), usize::MAX) };
    assert!(
        matches!(refused, Err(ExecError::InvalidBuffer { buffer: "mem", .. })),
        "{refused:?}"
    );
    assert_eq!(printed.lock().unwrap().len(), 1);
    assert!(!crate::interpreter::thread_stack_held());
    assert_eq!(run_own(&vm, 1), Ok(1));
}

#[test]
fn the_per_instruction_loop_still_runs_when_asked_for() {
    // An instruction limit selects the per-instruction loop, which stops at the limit; the
    // fast path (no limit) runs the same program to its end.
    let mut vm = vm_with("mov %r0, 1\nadd %r0, 1\nadd %r0, 1\nexit");
    assert_eq!(run_own(&vm, 1), Ok(3));
    vm.config_mut().instruction_limit = 2;
    assert!(matches!(
        run_own(&vm, 1),
        Err(ExecError::InstructionLimit { .. })
    ));
    assert!(!crate::interpreter::thread_stack_held());
}
