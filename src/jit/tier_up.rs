//! Background tier-up: code from a cheap tier (the one-pass baseline tier, or Cranelift's
//! fast tier) at once, the optimised tier's code a moment later (`docs/jit-compile-time.md`,
//! "Background tier-up").
//!
//! A compile that takes this path returns an image that starts with a 16-byte *entry stub*,
//! `movabs r11, &target; jmp [r11]`, followed by the first tier's code. `target` is a word of
//! a [`TierUp`] on the heap: it first holds the first tier's code's address. A thread started
//! for the job compiles the same program with the optimised tier, maps the result and stores
//! its address into `target`. Calls that start after that store run the optimised code; a run
//! already inside the first tier's code finishes there. No code is ever patched: the stub reads a
//! data word, so the mapping stays read+exec and the switch is one atomic store.
//!
//! Every tier gives the interpreter's results, errors and side effects (the tests hold each
//! tier to that separately), so which one a call runs is invisible except in time.
//!
//! The translation runs on the caller's thread, like a synchronous compile, except for
//! programs so large that translating them would keep the caller waiting (see
//! `TRANSLATE_IN_BACKGROUND_IR`): those are translated in the background too, which reads the
//! VM's boxed `JitContext`. Dropping the image's [`Pending`] joins the job's thread, before
//! the VM frees that context: no thread and no compiler memory outlive the VM (an embedder's
//! leak checker sees nothing left behind when it destroys its VMs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use cranelift_codegen::ir::Function;

use super::code::ExecutableCode;
use super::{Scratch, Tier, Translated, compile_function, cranelift_bytes, translate};
use crate::exec::idiom::Idioms;
use crate::exec::maps::SlabRegion;
use crate::program::Program;

/// Bytes in front of the first tier's code: the entry stub, padded so the code starts
/// aligned.
pub(crate) const STUB_BYTES: usize = 16;

/// The entry stub that jumps through `target` (x86-64): `movabs r11, target` (r11 is
/// neither an argument nor callee-saved in either entry signature), `jmp qword ptr [r11]`,
/// then `int3` padding.
pub(crate) fn entry_stub(target: *const AtomicUsize) -> [u8; STUB_BYTES] {
    let mut stub = [0xcc; STUB_BYTES];
    stub[..2].copy_from_slice(&[0x49, 0xbb]);
    stub[2..10].copy_from_slice(&(target as u64).to_le_bytes());
    stub[10..13].copy_from_slice(&[0x41, 0xff, 0x23]);
    stub
}

/// Where a background compile stands.
#[derive(Debug)]
enum State {
    /// Started, not finished.
    Running,
    /// Finished: the optimised code (installed in `target`), or `None` when the optimised
    /// tier failed or the code did not fit (the first tier's code stays).
    Done(Option<ExecutableCode>),
}

/// The state shared by an image and its background compile.
#[derive(Debug)]
pub(crate) struct TierUp {
    /// The address the entry stub jumps to.
    target: AtomicUsize,
    state: Mutex<State>,
    /// Signalled when the job finishes.
    finished: Condvar,
}

impl TierUp {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `job`, switches the stub to its code, records the end and wakes whoever waits
    /// for it.
    fn run(&self, job: Option<Job>) {
        // A panic (a bug) must still end here, or waiters would wait forever.
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job?.run()))
            .ok()
            .flatten();
        if let Some(code) = &code {
            self.target.store(code.as_ptr() as usize, Ordering::Release);
        }
        *self.lock() = State::Done(code);
        self.finished.notify_all();
    }
}

/// Background compiles running in this process.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Whether another background compile may start: fewer are running than the host has
/// hardware threads. A process compiling many programs at once gets no faster code sooner
/// from more threads, only more of them; past the bound, programs compile in one step.
pub(crate) fn has_capacity() -> bool {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let threads = *THREADS
        .get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    RUNNING.load(Ordering::Relaxed) < threads
}

/// An image's handle on its background compile (see the module documentation for what
/// dropping it does).
#[derive(Debug)]
pub(crate) struct Pending {
    shared: Arc<TierUp>,
    /// The job's thread, and the process that started it (a child after `fork` has no such
    /// thread, and never waits for it).
    thread: Option<(JoinHandle<()>, u32)>,
}

impl Pending {
    /// A handle whose stub target is not set yet (see [`Pending::start`]).
    pub(crate) fn new() -> Self {
        Pending {
            shared: Arc::new(TierUp {
                target: AtomicUsize::new(0),
                state: Mutex::new(State::Running),
                finished: Condvar::new(),
            }),
            thread: None,
        }
    }

    /// The word the entry stub reads.
    pub(crate) fn target(&self) -> *const AtomicUsize {
        &self.shared.target
    }

    /// Points the stub at `first` (the first tier's code) and starts `job` on a thread of
    /// its own. If no thread can be started (a sandbox that forbids them, or no resources),
    /// the job runs here instead, so the program still gets its optimised code.
    pub(crate) fn start(&mut self, first: *const u8, job: Job) {
        self.shared.target.store(first as usize, Ordering::Release);
        // The job waits here until the thread takes it, so that a failed spawn can run it.
        let slot = Arc::new(Mutex::new(Some(job)));
        let (shared, taken) = (Arc::clone(&self.shared), Arc::clone(&slot));
        RUNNING.fetch_add(1, Ordering::Relaxed);
        #[cfg(test)]
        let refused = tests::REFUSE_THREADS.with(std::cell::Cell::get);
        #[cfg(not(test))]
        let refused = false;
        let builder = std::thread::Builder::new();
        let spawned = if refused {
            Err(std::io::Error::other("threads refused"))
        } else {
            builder
                .name("rbpf-tier-up".into())
                // Cranelift's passes get the stack a main thread would give them.
                .stack_size(8 << 20)
                .spawn(move || {
                    let job = taken.lock().unwrap_or_else(PoisonError::into_inner).take();
                    shared.run(job);
                    RUNNING.fetch_sub(1, Ordering::Relaxed);
                })
        };
        match spawned {
            Ok(handle) => self.thread = Some((handle, std::process::id())),
            Err(_) => {
                RUNNING.fetch_sub(1, Ordering::Relaxed);
                let job = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                self.shared.run(job);
            }
        }
    }

    /// Waits until the background compile has finished and calls `f` with the optimised
    /// code, or `None` when there is none (it failed, or this is a child after `fork`).
    pub(crate) fn with_result<R>(&self, f: impl FnOnce(Option<&ExecutableCode>) -> R) -> R {
        if !self.started_here() {
            return f(None);
        }
        let mut state = self.shared.lock();
        while matches!(*state, State::Running) {
            state = self
                .shared
                .finished
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match &*state {
            State::Done(code) => f(code.as_ref()),
            State::Running => f(None),
        }
    }

    /// Whether the job will finish in this process: it ran in place (no thread), or its
    /// thread was started here (not in a parent before `fork`).
    fn started_here(&self) -> bool {
        self.thread
            .as_ref()
            .is_none_or(|(_, pid)| *pid == std::process::id())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Waits for the compile (it cannot be interrupted) and the thread's exit. The
        // optimised code is freed with the image: callers never run code past unloading it.
        if let Some((handle, pid)) = self.thread.take()
            && pid == std::process::id()
        {
            let _ = handle.join();
        }
    }
}

/// What a background compile starts from.
pub(crate) enum Work {
    /// A function translated on the caller's thread (which also recorded the tables the code
    /// reads in the VM's context): only Cranelift's passes run in the background.
    Compile(Box<Function>),
    /// A program so large that its translation runs in the background too.
    Translate(Box<Untranslated>),
}

/// What the translation of [`Work::Translate`] reads. The copy of the program has no data
/// sections: the code only embeds their addresses, which `opts` already carries.
pub(crate) struct Untranslated {
    pub program: Program,
    pub idioms: Idioms,
    /// The map value slabs `opts.map_slabs` is pointed at.
    pub map_slabs: Vec<SlabRegion>,
    /// The optimised tier's options.
    pub opts: translate::Options,
}

/// One optimised compile for the background.
pub(crate) struct Job {
    pub work: Work,
    /// The largest image the VM accepts.
    pub capacity: usize,
}

// SAFETY: a `Translate` job's options carry the VM's context pointer, which the translation
// reads (`JitContext::keep_table`, behind its mutex): the context is boxed, and the VM frees
// it only after dropping the image, whose `Pending` joins this job's thread first
// (`JitCache::release` and the field order of `JitCache`). The options' map slabs point into
// the job's own vector. Everything else is owned data.
unsafe impl Send for Job {}

impl Job {
    /// Translates (if needed) and compiles the program with fresh Cranelift state (dropped
    /// with the thread): the mapped code, or `None` when compiling failed, the translation
    /// came out too large for the optimised tier, or the code does not fit.
    fn run(self) -> Option<ExecutableCode> {
        let mut scratch = Scratch::new();
        let bytes = match self.work {
            Work::Compile(func) => {
                compile_function(&mut scratch, *func, Tier::Optimised, self.capacity).ok()?
            }
            Work::Translate(untranslated) => {
                let Untranslated {
                    program,
                    idioms,
                    map_slabs,
                    mut opts,
                } = *untranslated;
                opts.map_slabs = &map_slabs[..];
                let translated = cranelift_bytes(
                    &mut scratch,
                    &program,
                    &idioms,
                    opts,
                    Tier::Optimised,
                    true,
                    self.capacity,
                    // Demoted by its size: the baseline code stays.
                    |_, tier| tier != Tier::Optimised,
                )
                .ok()?;
                match translated {
                    Translated::Code(bytes) => bytes,
                    Translated::Deferred(_) => return None,
                }
            }
        };
        if bytes.len() > self.capacity {
            return None;
        }
        ExecutableCode::new(&bytes).ok()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// Makes this thread's background compiles behave as if no thread could be started.
        pub(crate) static REFUSE_THREADS: std::cell::Cell<bool> =
            const { std::cell::Cell::new(false) };
    }

    /// Where no thread can be started, the compile that would have run in the background
    /// runs in `compile` instead, and the program still gets its optimised code.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn without_threads_the_optimised_code_is_compiled_in_place() {
        let mut vm = crate::Vm::new();
        vm.load_elf(include_bytes!("../../benches/c/switch.o"), None)
            .unwrap();
        REFUSE_THREADS.with(|r| r.set(true));
        let compiled = vm.compile(crate::jit::JitMode::Basic).map(|_| ());
        REFUSE_THREADS.with(|r| r.set(false));
        compiled.unwrap();
        assert_eq!(vm.wait_for_tier_up(), Some(true));
        let mut mem = [7u8; 64];
        let mut interpreted = mem;
        assert_eq!(
            vm.execute_jit(&mut mem).unwrap(),
            vm.execute(&mut interpreted).unwrap()
        );
    }

    /// The entry stub jumps to whatever code its word names at the time of the call, and
    /// leaves the arguments alone.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_entry_stub_follows_its_word() {
        // lea rax, [rdi + 42]; ret   and   lea rax, [rdi + rsi]; ret
        let plus_42 = ExecutableCode::new(&[0x48, 0x8d, 0x47, 0x2a, 0xc3]).unwrap();
        let sum = ExecutableCode::new(&[0x48, 0x8d, 0x04, 0x37, 0xc3]).unwrap();
        let word = AtomicUsize::new(plus_42.as_ptr() as usize);
        let stub = ExecutableCode::new(&entry_stub(&word)).unwrap();
        // SAFETY: the stub jumps to code with this signature, all of which stays mapped.
        let call: extern "C" fn(u64, u64) -> u64 = unsafe { std::mem::transmute(stub.as_ptr()) };
        assert_eq!(call(1, 2), 43);
        word.store(sum.as_ptr() as usize, Ordering::Release);
        assert_eq!(call(1, 2), 3);
    }
}
