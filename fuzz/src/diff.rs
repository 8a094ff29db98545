//! Target `diff`: bytecode → load → interpreter against JIT.
//!
//! Input: `flags, limit, mem_len, mem[mem_len], program…` (the program is cut to whole
//! 8-byte slots). Flag bits: 0 extended mode (the caller's stack, the same buffer for both
//! engines), 1 constant blinding, 2 unwind helper (index 5), 3 helpers behind the external
//! dispatcher, 4 also run a `copy_jit` copy, 5 also run `translate` output, 6 a bounds
//! callback that permits the 64 bytes after `mem`, 7 also through the C API (`capi.rs`; not
//! with bit 6, which the C API has no equivalent of here). `limit`: 0 none (64 Ki
//! instructions when the program has a backward jump or a local call, so a loop is never a
//! hang), 1–127 that many, 128–255 (n−127)×512.
//!
//! Every engine must give the same r0 or error, the same memory (including the slack after
//! it), the same final stack (extended mode) and the same helper calls with the same
//! arguments. In basic mode the engines' stacks are at different host addresses, so programs
//! whose r10 value can escape (see [`leaks_frame_pointer`]) are only run, not compared.

use rbpf::Vm;
use rbpf::error::JitError;
use rbpf::isa::{Insn, class, mode as addr_mode};
use rbpf::jit::{JitExFn, JitFn, JitMode};

use crate::harness::{
    Aligned, ExecBuf, LOOP_LIMIT, Outcome, Reader, SLACK, STACK_LEN, begin_run, error_key,
    explaining, fail, has_atomic, leaks_frame_pointer, may_loop, register_helpers, slack_permits,
    take_log,
};
use crate::known::{Known, tolerated};

/// How a program is set up and run (decoded from the input's first bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// Extended mode: the caller's stack, the same buffer for every engine.
    pub extended: bool,
    /// Constant blinding in the JIT.
    pub blinding: bool,
    /// Helper 5 is the unwind helper.
    pub unwind: bool,
    /// Helpers are reached through the external dispatcher.
    pub dispatcher: bool,
    /// Also run a `copy_jit` copy.
    pub copy: bool,
    /// Also run `translate` output.
    pub translate: bool,
    /// A bounds callback permits the slack after `mem`.
    pub bounds_fn: bool,
    /// Also run through the C API (`capi.rs`).
    pub capi: bool,
    /// The instruction limit selector (see the module documentation).
    pub limit: u8,
    /// Bounds checks (off only in the `nobounds` target).
    pub unchecked: bool,
}

impl Setup {
    /// Decodes the flag and limit bytes.
    pub fn decode(flags: u8, limit: u8) -> Self {
        Setup {
            extended: flags & 1 != 0,
            blinding: flags & 2 != 0,
            unwind: flags & 4 != 0,
            dispatcher: flags & 8 != 0,
            copy: flags & 16 != 0,
            translate: flags & 32 != 0,
            bounds_fn: flags & 64 != 0,
            capi: flags & 128 != 0,
            limit,
            unchecked: false,
        }
    }

    /// The instruction limit for `insns`: never unlimited when the program can loop.
    pub fn instruction_limit(&self, insns: &[Insn]) -> u32 {
        match self.limit {
            0 if may_loop(insns) => LOOP_LIMIT,
            0 => 0,
            n @ 1..=127 => u32::from(n),
            n => (u32::from(n) - 127) * 512,
        }
    }

    /// A VM with this setup and `code` loaded, or `None` if the validator refuses it.
    pub fn vm(&self, code: &[u8], insns: &[Insn]) -> Option<Vm> {
        let mut vm = Vm::new();
        register_helpers(&mut vm, self.dispatcher);
        if self.unwind {
            vm.set_unwind_index(5).expect("first unwind index");
        }
        if self.bounds_fn {
            vm.set_bounds_check_fn(Box::new(slack_permits))
                .expect("first bounds callback");
        }
        let config = vm.config_mut();
        config.constant_blinding = self.blinding;
        config.instruction_limit = self.instruction_limit(insns);
        config.bounds_check = !self.unchecked;
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm.load(code).ok()?;
        Some(vm)
    }

    /// Why the validator refuses `code` under this setup.
    pub fn vm_error(&self, code: &[u8]) -> Option<String> {
        let mut vm = Vm::new();
        register_helpers(&mut vm, self.dispatcher);
        vm.load(code).err().map(|e| e.to_string())
    }

    fn jit_mode(&self) -> JitMode {
        if self.extended {
            JitMode::Extended
        } else {
            JitMode::Basic
        }
    }
}

/// The state a run starts from: the memory buffer (mem plus slack) and, in extended mode,
/// the stack. Reset before every engine's run.
pub struct Start {
    mem_len: usize,
    init_mem: Vec<u8>,
    init_stack: Option<Vec<u8>>,
    mem: Aligned,
    stack: Aligned,
}

impl Start {
    /// `mem` as the program's memory, followed by patterned slack; a patterned stack when
    /// `extended`.
    pub fn new(mem: &[u8], extended: bool) -> Self {
        let mut init_mem = mem.to_vec();
        init_mem.extend((0..SLACK).map(|i| 0xa5 ^ i as u8));
        let init_stack = extended.then(|| (0..STACK_LEN).map(|i| (i * 13) as u8).collect());
        Start {
            mem_len: mem.len(),
            mem: Aligned::new(init_mem.len()),
            stack: Aligned::new(STACK_LEN),
            init_mem,
            init_stack,
        }
    }

    /// The address of the memory buffer.
    pub fn mem_addr(&mut self) -> u64 {
        self.mem.bytes().as_ptr() as u64
    }

    /// Resets the buffers and the helpers' state; returns (mem, mem_len, stack) pointers for
    /// a run (mem is null when empty, as C callers pass it).
    pub(crate) fn reset(&mut self) -> (*mut u8, usize, *mut u8) {
        self.mem.bytes().copy_from_slice(&self.init_mem);
        if let Some(init) = &self.init_stack {
            self.stack.bytes().copy_from_slice(init);
        }
        let stack = self.init_stack.as_ref().map(|_| &*self.stack.bytes());
        begin_run(self.mem.bytes(), self.mem_len, stack);
        let mem = if self.mem_len == 0 {
            std::ptr::null_mut()
        } else {
            self.mem.bytes().as_mut_ptr()
        };
        (mem, self.mem_len, self.stack.bytes().as_mut_ptr())
    }

    /// The outcome of a run that ended with `result`.
    pub(crate) fn finish(&mut self, result: Result<u64, String>) -> Outcome {
        Outcome {
            result,
            mem: self.mem.bytes().to_vec(),
            stack: self
                .init_stack
                .as_ref()
                .map(|_| self.stack.bytes().to_vec()),
            calls: take_log(),
        }
    }

    /// Runs the interpreter.
    pub fn interpret(&mut self, vm: &Vm) -> Outcome {
        let (mem, len, stack) = self.reset();
        let result = if self.init_stack.is_some() {
            // SAFETY: both buffers are live and of the given lengths.
            unsafe { vm.execute_raw(mem, len, stack, STACK_LEN) }
        } else {
            let slice: &mut [u8] = if mem.is_null() {
                &mut []
            } else {
                // SAFETY: `mem` points to `len` bytes of the buffer.
                unsafe { std::slice::from_raw_parts_mut(mem, len) }
            };
            vm.execute(slice)
        };
        self.finish(result.map_err(|e| error_key(&e)))
    }

    /// Runs the VM's compiled code.
    pub fn jit(&mut self, vm: &Vm) -> Outcome {
        let (mem, len, stack) = self.reset();
        let stack = if self.init_stack.is_some() {
            stack
        } else {
            std::ptr::null_mut()
        };
        // SAFETY: both buffers are live and of the given lengths.
        let result = unsafe { vm.execute_jit_raw(mem, len, stack, STACK_LEN) };
        self.finish(result.map_err(|e| error_key(&e)))
    }

    /// Calls code copied out of a VM directly; a fault is `u64::MAX` (as from C).
    fn call_copy(&mut self, code: &ExecBuf, extended: bool) -> Outcome {
        let (mem, len, stack) = self.reset();
        let ret = crate::quiet::quiet(|| {
            if extended {
                // SAFETY: extended-mode code, whole and executable; buffers live.
                let f: JitExFn = unsafe { std::mem::transmute(code.ptr()) };
                // SAFETY: as above.
                unsafe { f(mem, len, stack, STACK_LEN) }
            } else {
                // SAFETY: basic-mode code, whole and executable; `mem` live.
                let f: JitFn = unsafe { std::mem::transmute(code.ptr()) };
                // SAFETY: as above.
                unsafe { f(mem, len) }
            }
        });
        self.finish(Ok(ret))
    }
}

/// Whether two outcomes may differ only by a tolerated known divergence; `replay` answers
/// whether the run read stack bytes it never wrote.
fn tolerated_difference(a: &Outcome, b: &Outcome, replay: impl FnOnce() -> bool) -> bool {
    if tolerated(Known::Limit) && (a.hit_limit() || b.hit_limit()) {
        return true;
    }
    tolerated(Known::UninitStack) && a.stack.is_none() && replay()
}

/// Compares the interpreter's outcome with an engine's; panics on an untolerated difference.
/// `copied`: the engine is a copy called directly, whose faults are `u64::MAX`.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    what: &str,
    interp: &Outcome,
    other: &Outcome,
    copied: bool,
    comparable: bool,
    limit_hit_elsewhere: bool,
    insns: &[Insn],
    replay: impl FnOnce() -> bool,
) {
    if !comparable {
        return;
    }
    let mut expected = interp.clone();
    if copied {
        expected.result = Ok(interp.result.clone().unwrap_or(u64::MAX));
    }
    if expected == *other {
        return;
    }
    if limit_hit_elsewhere && tolerated(Known::Limit) {
        return;
    }
    if tolerated_difference(interp, other, replay) {
        return;
    }
    fail(
        &format!(
            "interpreter and {what} disagree:\n  interpreter: {:x?}, calls {:x?}\n  {what}: {:x?}, calls {:x?}\n  memory equal: {}, stack equal: {}",
            interp.result,
            interp.calls,
            other.result,
            other.calls,
            interp.mem == other.mem,
            interp.stack == other.stack
        ),
        insns,
    );
}

/// Accepts the compile errors that are legitimate (the code is too large) or tolerated.
pub fn check_compile_error(err: &JitError, insns: &[Insn]) {
    match err {
        JitError::TargetBufferTooSmall => {}
        JitError::Unsupported { opcode, .. }
            if tolerated(Known::AtomicImm)
                && has_atomic(insns)
                && matches!(*opcode, 0xc3 | 0xdb) => {}
        other => fail(
            &format!("the JIT refuses a program the validator accepted: {other}"),
            insns,
        ),
    }
}

/// Runs one `diff` input (format in the module documentation).
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let setup = Setup::decode(input.byte(), input.byte());
    let mem_len = usize::from(input.byte());
    let mut mem = input.take(mem_len).to_vec();
    mem.resize(mem_len, 0);
    let code = input.rest();
    let code = &code[..code.len() / 8 * 8];
    run_program(setup, &mem, code);
}

/// Loads `code` with `setup` and runs it in every engine the setup asks for.
pub fn run_program(setup: Setup, mem: &[u8], code: &[u8]) {
    let insns = rbpf::isa::decode_slots(code).expect("whole slots");
    if explaining() {
        eprintln!(
            "setup: {setup:?} (instruction limit {})\nmem ({} bytes): {mem:02x?}\nprogram:\n{}",
            setup.instruction_limit(&insns),
            mem.len(),
            rbpf::disasm::disassemble(&insns)
        );
    }
    let Some(mut vm) = setup.vm(code, &insns) else {
        if explaining() {
            eprintln!("refused at load: {:?}", setup.vm_error(code));
        }
        return;
    };
    let mut start = Start::new(mem, setup.extended);
    let comparable = setup.extended || !leaks_frame_pointer(&insns);
    let interp = start.interpret(&vm);
    let replay = || {
        setup
            .vm(code, &insns)
            .is_some_and(|vm| reads_unwritten_stack(vm, &insns, mem))
    };

    let mode = setup.jit_mode();
    if let Err(err) = vm.compile(mode) {
        check_compile_error(&err, &insns);
        return;
    }
    // The optimised code, when a large program tiered up in the background (its first tier
    // is the baseline tier below, or the fast tier).
    vm.wait_for_tier_up();
    let jit = start.jit(&vm);
    compare(
        "JIT", &interp, &jit, false, comparable, false, &insns, replay,
    );
    // The one-pass baseline tier, which programs this small never reach on their own.
    if let Some(mut baseline) = setup.vm(code, &insns) {
        baseline.config_mut().jit_tier = rbpf::JitTier::Baseline;
        match baseline.compile(mode) {
            Ok(_) => {
                let got = start.jit(&baseline);
                compare(
                    "baseline JIT",
                    &interp,
                    &got,
                    false,
                    comparable,
                    false,
                    &insns,
                    replay,
                );
            }
            Err(err) => check_compile_error(&err, &insns),
        }
    }
    if setup.capi && !setup.bounds_fn {
        let limit = setup.instruction_limit(&insns);
        crate::capi::run(
            &setup,
            code,
            &insns,
            limit,
            &mut start,
            &interp,
            jit.hit_limit(),
            comparable,
            replay,
        );
    }

    // Copies: `translate` output and a `copy_jit` copy, run after the VM is gone.
    let mut copies = Vec::new();
    if setup.translate {
        let mut buf = vec![0u8; vm.config().jit_code_size];
        match vm.translate(mode, &mut buf) {
            Ok(n) => copies.push(("translate output", ExecBuf::new(&buf[..n]))),
            Err(err) => check_compile_error(&err, &insns),
        }
    }
    if setup.copy {
        let mut buf = vec![0u8; vm.jit_size().expect("compiled")];
        vm.copy_jit(&mut buf).expect("buffer of the image's size");
        copies.push(("copy_jit copy", ExecBuf::new(&buf)));
    }
    // Dropped in place: a move would leave the VM-pointing copies (the known bug) at a stale
    // address rather than a live one.
    if !tolerated(Known::CopyNeedsVm) {
        drop(vm);
    }
    // A copy that outlives its VM keeps mem and the stack as its only regions: a bounds
    // callback is the VM's and goes with it (docs/sandbox.md, "Copies"). With one set, what
    // the callback granted faults in the copy by design, so such copies are not compared.
    if setup.bounds_fn && !tolerated(Known::CopyNeedsVm) {
        return;
    }
    for (what, code_buf) in &copies {
        let copy = start.call_copy(code_buf, setup.extended);
        let limit_hit = interp.hit_limit() || jit.hit_limit();
        compare(
            what, &interp, &copy, true, comparable, limit_hit, &insns, replay,
        );
    }
}

/// Replays the program loaded in `vm` (a fresh VM set up as the compared one) in the
/// interpreter, in basic mode, with a debug callback that tracks which stack bytes were
/// written; true if a load (or atomic) read a byte no store had written.
pub fn reads_unwritten_stack(mut vm: Vm, insns: &[Insn], mem: &[u8]) -> bool {
    use std::cell::RefCell;
    #[derive(Default)]
    struct Trace {
        insns: Vec<Insn>,
        written: Vec<bool>,
        read_unwritten: bool,
    }
    thread_local! {
        static TRACE: RefCell<Trace> = RefCell::new(Trace::default());
    }
    TRACE.with(|t| {
        *t.borrow_mut() = Trace {
            insns: insns.to_vec(),
            written: vec![false; STACK_LEN],
            read_unwritten: false,
        }
    });
    let debug = |state: &rbpf::vm::DebugState<'_>| {
        TRACE.with(|t| {
            let mut t = t.borrow_mut();
            let Some(&insn) = t.insns.get(state.pc) else {
                return;
            };
            let base = state.stack.as_ptr() as u64;
            let size = match (insn.opc >> 3) & 3 {
                0 => 4,
                1 => 2,
                2 => 1,
                _ => 8,
            };
            let reg = |r: u8| state.registers[usize::from(r & 15)];
            let (addr, reads, writes) = match (insn.class(), insn.opc & 0xe0) {
                (class::LDX, addr_mode::MEM | addr_mode::MEMSX) => (
                    reg(insn.src).wrapping_add_signed(insn.off.into()),
                    true,
                    false,
                ),
                (class::ST, addr_mode::MEM) | (class::STX, addr_mode::MEM) => (
                    reg(insn.dst).wrapping_add_signed(insn.off.into()),
                    false,
                    true,
                ),
                (class::STX, 0xc0) => (
                    reg(insn.dst).wrapping_add_signed(insn.off.into()),
                    true,
                    true,
                ),
                _ => return,
            };
            for byte in addr..addr.saturating_add(size) {
                let Some(i) = byte.checked_sub(base).map(|i| i as usize) else {
                    continue;
                };
                if i >= t.written.len() {
                    continue;
                }
                if reads && !t.written[i] {
                    t.read_unwritten = true;
                }
                if writes {
                    t.written[i] = true;
                }
            }
        })
    };
    vm.set_debug_fn(Some(Box::new(debug)))
        .expect("no debug function yet");
    let mut start = Start::new(mem, false);
    let _ = start.interpret(&vm);
    TRACE.with(|t| t.borrow().read_unwritten)
}
