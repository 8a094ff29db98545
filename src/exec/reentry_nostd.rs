//! Run levels without `std`: no thread-locals, so runs are not tracked. Without `std` there
//! is no JIT and no C API, so nothing can free code under a running program; the nesting
//! limit of `crate::exec::reentry` (docs/sandbox.md, "Re-entrancy") is then the embedder's duty.

/// A run level; tracks nothing without `std`.
pub(crate) struct RunLevel;

impl RunLevel {
    /// Always succeeds without `std`.
    pub(crate) fn enter(_owner: usize) -> Option<RunLevel> {
        Some(RunLevel)
    }
}
