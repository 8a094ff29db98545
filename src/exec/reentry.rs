//! Per-thread bookkeeping of program runs that may re-enter, shared by both engines
//! (docs/sandbox.md, "Re-entrancy").
//!
//! A helper may run a program again (the same VM or another), which may call a helper that
//! runs a program, and so on. Only runs of programs that call helpers can nest further, so
//! exactly those runs are *levels*: each one enters a level before its first instruction and
//! leaves it when it returns, whatever the engine. Bounding the levels on a thread bounds the
//! native stack the nesting can use. Each level also records which VM's code is running, so
//! that a helper cannot free that code (`Vm::unload`, a compile in the other JIT mode,
//! `ubpf_destroy`) while the run that called it still has to return into it. Runs of programs
//! without helper calls cost nothing here.
//!
//! The same per-thread state says which compiled code's faults are collected by a
//! `Vm::execute_jit` call (see `crate::jit::runtime`). `Vm::execute_jit` *offers* collection
//! to the code it calls ([`offer_collection`]); that run claims the offer when it enters its
//! level, and every other level suspends collection, so a fault inside a compiled function
//! that a helper calls directly belongs to that call, not to the run that called the helper.
//! Everything lives in one thread-local: entering and leaving a level costs one thread-local
//! lookup each (in a shared library, a call to the TLS resolver).

use std::cell::Cell;

use crate::isa::MAX_NESTED_RUNS;

/// Marks a collector value as offered by `Vm::execute_jit` but not yet claimed (context
/// addresses are 8-aligned, so bit 0 is free).
const OFFERED: usize = 1;

/// One run in progress: the VM whose code it runs (its address; 0 for code no VM owns any
/// more), and the fault collector it replaced.
#[derive(Clone, Copy)]
struct Level {
    owner: usize,
    saved_collector: usize,
}

/// This thread's record.
struct State {
    /// Number of levels in progress.
    depth: Cell<usize>,
    /// The context address of the compiled code whose faults a `Vm::execute_jit` call
    /// collects (0: none), with [`OFFERED`] set until the run claims it.
    collector: Cell<usize>,
    /// The first `depth` entries are the levels in progress, outermost first.
    levels: [Cell<Level>; MAX_NESTED_RUNS],
}

thread_local! {
    static STATE: State = const {
        State {
            depth: Cell::new(0),
            collector: Cell::new(0),
            levels: [const {
                Cell::new(Level {
                    owner: 0,
                    saved_collector: 0,
                })
            }; MAX_NESTED_RUNS],
        }
    };
}

/// Enters a level for a run of the code of the VM at `owner`, whose compiled context is
/// `ctx` (0 for the interpreter). Returns false, changing nothing, when `MAX_NESTED_RUNS`
/// levels are already in progress on this thread: the run then fails with
/// `ExecError::NestingTooDeep` before its first instruction.
#[inline]
pub(crate) fn enter_run(owner: usize, ctx: usize) -> bool {
    STATE.with(|state| {
        let depth = state.depth.get();
        let Some(level) = state.levels.get(depth) else {
            return false;
        };
        let saved_collector = state.collector.get();
        let claimed = ctx != 0 && saved_collector == ctx | OFFERED;
        state.collector.set(if claimed { ctx } else { 0 });
        level.set(Level {
            owner,
            saved_collector,
        });
        state.depth.set(depth + 1);
        true
    })
}

/// Leaves the innermost level entered with [`enter_run`].
#[inline]
pub(crate) fn leave_run() {
    STATE.with(|state| {
        let Some(depth) = state.depth.get().checked_sub(1) else {
            return;
        };
        state.depth.set(depth);
        state
            .collector
            .set(state.levels[depth].get().saved_collector);
    });
}

/// Whether code of the VM at `owner` is running in a level on this thread (so freeing that
/// code now would pull it from under the run).
pub(crate) fn is_running(owner: usize) -> bool {
    STATE.with(|state| {
        let depth = state.depth.get();
        state.levels[..depth].iter().any(|l| l.get().owner == owner)
    })
}

/// Offers fault collection to the next run of the code with context `ctx` (called by
/// `Vm::execute_jit` right before it calls the code); returns the previous collector, for
/// [`restore_collection`].
#[inline]
pub(crate) fn offer_collection(ctx: usize) -> usize {
    STATE.with(|state| state.collector.replace(ctx | OFFERED))
}

/// Restores a collector returned by [`offer_collection`].
#[inline]
pub(crate) fn restore_collection(previous: usize) {
    STATE.with(|state| state.collector.set(previous));
}

/// Whether a fault of the code with context `ctx` is collected by a `Vm::execute_jit` call
/// (rather than reported where it happens).
pub(crate) fn collects(ctx: usize) -> bool {
    ctx != 0 && STATE.with(|state| state.collector.get() & !OFFERED == ctx)
}

/// An interpreter run's level, left on drop (also if a Rust helper unwinds).
pub(crate) struct RunLevel;

impl RunLevel {
    /// [`enter_run`] for the interpreter; `None` when the nesting limit is reached.
    #[inline]
    pub(crate) fn enter(owner: usize) -> Option<RunLevel> {
        if enter_run(owner, 0) {
            Some(RunLevel)
        } else {
            None
        }
    }
}

impl Drop for RunLevel {
    #[inline]
    fn drop(&mut self) {
        leave_run();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_nest_up_to_the_limit_and_record_owners() {
        assert!(!is_running(1));
        let levels: Vec<RunLevel> = (0..MAX_NESTED_RUNS)
            .map(|i| RunLevel::enter(i + 1).expect("below the limit"))
            .collect();
        assert!(RunLevel::enter(99).is_none());
        assert!(is_running(1) && is_running(MAX_NESTED_RUNS));
        assert!(!is_running(99));
        drop(levels);
        assert!(!is_running(1));
        assert!(RunLevel::enter(99).is_some());
        assert!(!is_running(99));
    }

    #[test]
    fn only_the_offered_run_collects_faults() {
        let ctx = 0x1000;
        let previous = offer_collection(ctx);
        // Offered but not claimed: code without helper calls never enters a level.
        assert!(collects(ctx));
        assert!(enter_run(1, ctx));
        assert!(collects(ctx));
        // The same code called again from a helper, directly: not collected.
        assert!(enter_run(1, ctx));
        assert!(!collects(ctx));
        leave_run();
        assert!(collects(ctx));
        // An interpreter run in between suspends collection too.
        assert!(enter_run(1, 0));
        assert!(!collects(ctx));
        leave_run();
        leave_run();
        restore_collection(previous);
        assert!(!collects(ctx));
    }
}
