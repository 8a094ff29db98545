//! Per-thread bookkeeping of helper calls in progress, shared by both engines
//! (docs/sandbox.md, "Re-entrancy").
//!
//! A helper may run a program again (the same VM or another), which may call a helper that
//! runs a program, and so on: every level of such nesting goes through a helper call, so
//! bounding the helper calls in progress on a thread bounds the native stack the nesting can
//! use. Each level also records which VM's code is running underneath it, so that a helper
//! cannot free that code (`Vm::unload`, a compile in the other JIT mode, `ubpf_destroy`)
//! while the run that called it still has to return into it.
//!
//! Entering a level also suspends the JIT's fault collection of the calling run
//! ([`crate::jit::runtime::suspend_collection`]): a fault inside a nested, directly called
//! compiled function belongs to that call, not to the run that called the helper.

use std::cell::Cell;

use crate::isa::MAX_NESTED_RUNS;

/// One helper call in progress: the VM whose code made it (its address; 0 for code no VM
/// owns any more), and the JIT fault collection it suspended.
#[derive(Clone, Copy)]
struct Level {
    owner: usize,
    suspended: usize,
}

thread_local! {
    /// Number of helper calls in progress on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// The first `DEPTH` entries are the calls in progress, outermost first.
    static LEVELS: [Cell<Level>; MAX_NESTED_RUNS] =
        const { [const { Cell::new(Level { owner: 0, suspended: 0 }) }; MAX_NESTED_RUNS] };
}

/// Starts a helper call made by code of the VM at `owner`. Returns false, changing nothing,
/// when `MAX_NESTED_RUNS` calls are already in progress on this thread: the caller then fails
/// its run with `ExecError::NestingTooDeep` instead of calling the helper.
pub(crate) fn enter_helper(owner: usize) -> bool {
    let depth = DEPTH.get();
    if depth >= MAX_NESTED_RUNS {
        return false;
    }
    let suspended = crate::jit::runtime::suspend_collection();
    LEVELS.with(|levels| levels[depth].set(Level { owner, suspended }));
    DEPTH.set(depth + 1);
    true
}

/// Ends the innermost helper call started by [`enter_helper`].
pub(crate) fn leave_helper() {
    let Some(depth) = DEPTH.get().checked_sub(1) else {
        return;
    };
    DEPTH.set(depth);
    let level = LEVELS.with(|levels| levels[depth].get());
    crate::jit::runtime::resume_collection(level.suspended);
}

/// Whether code of the VM at `owner` is running underneath a helper call on this thread
/// (so freeing that code now would pull it from under the run).
pub(crate) fn is_running(owner: usize) -> bool {
    let depth = DEPTH.get();
    LEVELS.with(|levels| levels[..depth].iter().any(|l| l.get().owner == owner))
}

/// Ends a helper call on drop: the interpreter's calls stay balanced even if a (Rust)
/// helper unwinds.
pub(crate) struct HelperCall;

impl HelperCall {
    /// [`enter_helper`]; `None` when the nesting limit is reached.
    pub(crate) fn enter(owner: usize) -> Option<HelperCall> {
        if enter_helper(owner) {
            Some(HelperCall)
        } else {
            None
        }
    }
}

impl Drop for HelperCall {
    fn drop(&mut self) {
        leave_helper();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_nest_up_to_the_limit_and_record_owners() {
        assert!(!is_running(1));
        let calls: Vec<HelperCall> = (0..MAX_NESTED_RUNS)
            .map(|i| HelperCall::enter(i + 1).expect("below the limit"))
            .collect();
        assert!(HelperCall::enter(99).is_none());
        assert!(is_running(1) && is_running(MAX_NESTED_RUNS));
        assert!(!is_running(99));
        drop(calls);
        assert!(!is_running(1));
        assert!(HelperCall::enter(99).is_some());
        assert!(!is_running(99));
    }
}
