//! Target `safe`: the safe execution profile, the debug callback and the
//! undefined-behaviour check, each against a plain interpreter run.
//!
//! Input: as the `diff` target (`flags, limit, mem_len, mem, program`; only the
//! unwind, bounds-callback and limit settings apply). Every run is on the caller's stack
//! (extended style), so all runs see the same addresses. Properties:
//! * a debug callback does not change the outcome; it sees every executed instruction (a
//!   valid pc, r1 = mem, r10 = the stack's end at the first one, the run's stack), exactly
//!   `limit` of them when the limit stops the run;
//! * with the undefined-behaviour check, a run either ends as the plain one or fails with an
//!   uninitialised-register error;
//! * the safe profile is stricter, never different: when it succeeds, the plain run ends the
//!   same (r0, memory, stack, helper calls); when the plain run fails, so does the safe one.
//!   The JIT refuses the safe profile.

use std::cell::RefCell;

use rbpf::error::JitError;
use rbpf::interpreter::SafeHelperResult;
use rbpf::vm::{DebugState, ExecutionProfile};

use crate::diff::{Setup, Start};
use crate::harness::{HELPERS, Reader, STACK_LEN, fail};

#[derive(Default)]
struct Seen {
    count: u64,
    first: Option<(u64, u64)>,
    bad: Option<String>,
}

thread_local! {
    static SEEN: RefCell<Seen> = RefCell::new(Seen::default());
}

/// Runs one `safe` input (format as the `diff` target's).
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let mut setup = Setup::decode(input.byte(), input.byte());
    setup.extended = true;
    setup.dispatcher = false;
    let mem_len = usize::from(input.byte());
    let mut mem = input.take(mem_len).to_vec();
    mem.resize(mem_len, 0);
    let code = input.rest();
    let code = &code[..code.len() / 8 * 8];
    let insns = rbpf::isa::decode_slots(code).expect("whole slots");
    let Some(plain_vm) = setup.vm(code, &insns) else {
        return;
    };
    let limit = plain_vm.config().instruction_limit;
    let mut start = Start::new(&mem, true);
    let plain = start.interpret(&plain_vm);

    // The debug callback.
    let mut debug_vm = setup.vm(code, &insns).expect("loaded once");
    let len = insns.len();
    debug_vm
        .set_debug_fn(Some(Box::new(move |state: &DebugState<'_>| {
            SEEN.with(|s| {
                let mut s = s.borrow_mut();
                s.count += 1;
                let stack_end = state.stack.as_ptr() as u64 + state.stack.len() as u64;
                s.first
                    .get_or_insert((state.registers[1], state.registers[10] ^ stack_end));
                if state.pc >= len || state.stack.len() != STACK_LEN {
                    s.bad.get_or_insert(format!(
                        "debug callback at pc {} of {len} with a {}-byte stack",
                        state.pc,
                        state.stack.len()
                    ));
                }
            })
        })))
        .expect("no debug function yet");
    SEEN.with(|s| *s.borrow_mut() = Seen::default());
    let debugged = start.interpret(&debug_vm);
    let seen = SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if debugged != plain {
        fail(
            &format!(
                "a debug callback changed the outcome: {:x?} vs {:x?}",
                plain.result, debugged.result
            ),
            &insns,
        );
    }
    if let Some(bad) = seen.bad {
        fail(&bad, &insns);
    }
    let mem_addr = if mem_len == 0 { 0 } else { start.mem_addr() };
    if let Some((r1, r10_delta)) = seen.first
        && (r1 != mem_addr || r10_delta != 0)
    {
        fail(
            &format!(
                "first debug state: r1 {r1:#x} (mem {mem_addr:#x}), r10 off by {r10_delta:#x}"
            ),
            &insns,
        );
    }
    if plain.hit_limit() && seen.count != u64::from(limit) {
        fail(
            &format!("limit {limit} hit after {} debug callbacks", seen.count),
            &insns,
        );
    }

    // The undefined-behaviour check.
    let mut ub_vm = setup.vm(code, &insns).expect("loaded once");
    ub_vm.config_mut().undefined_behavior_check = true;
    let checked = start.interpret(&ub_vm);
    let uninitialised = matches!(&checked.result, Err(e) if e.contains("is not initialized"));
    if checked != plain && !uninitialised {
        fail(
            &format!(
                "the undefined-behaviour check changed the outcome: {:x?} vs {:x?}",
                plain.result, checked.result
            ),
            &insns,
        );
    }

    // The safe profile.
    let Some(mut safe_vm) = setup.vm(code, &insns) else {
        return;
    };
    safe_vm.unload().expect("no run in progress");
    for (index, name, f) in HELPERS {
        safe_vm
            .register_safe_helper(index, Some(name), f, SafeHelperResult::Scalar)
            .expect("scalar helper");
    }
    safe_vm.config_mut().profile = ExecutionProfile::Safe;
    if safe_vm.load(code).is_err() {
        fail("the safe profile refused to load a program", &insns);
    }
    match safe_vm.compile(rbpf::jit::JitMode::Basic) {
        Err(JitError::SafeProfile) => {}
        other => fail(
            &format!("the JIT did not refuse the safe profile: {other:?}"),
            &insns,
        ),
    }
    let safe = start.interpret(&safe_vm);
    let consistent = match &safe.result {
        Ok(_) => safe == plain,
        Err(_) => true,
    };
    if !consistent {
        fail(
            &format!(
                "the safe profile succeeded differently: plain {:x?}, calls {:x?}; safe {:x?}, calls {:x?}; memory equal {}, stack equal {}",
                plain.result,
                plain.calls,
                safe.result,
                safe.calls,
                plain.mem == safe.mem,
                plain.stack == safe.stack
            ),
            &insns,
        );
    }
}
