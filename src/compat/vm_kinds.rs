//! rbpf's four VM kinds ([`EbpfVmMbuff`], [`EbpfVmFixedMbuff`], [`EbpfVmRaw`],
//! [`EbpfVmNoData`]) with rbpf 0.4's constructors, methods, argument and result types, built
//! on [`Vm`]: a program written against rbpf compiles against librbpf with only the
//! dependency line changed. `docs/rust-api.md` describes the choices where librbpf differs.
//!
//! What each kind gives the program:
//!
//! | kind | r1 at entry | the program may access |
//! |---|---|---|
//! | [`EbpfVmMbuff`] | the metadata buffer | the metadata buffer, the packet data, the stack |
//! | [`EbpfVmFixedMbuff`] | the VM's metadata buffer (data / data_end written at the given offsets) | the same (the packet is copied right after the buffer) |
//! | [`EbpfVmRaw`] | the packet data | the packet data, the stack |
//! | [`EbpfVmNoData`] | 0 | the stack |
//!
//! plus, in every kind, the addresses given to `register_allowed_memory`. Both engines check
//! every access against exactly these regions (the JIT included: `execute_program_jit` is
//! safe). Buffers passed as `&[u8]` are read-only for the program; `&mut [u8]` ones writable.
//! The stack is librbpf's 4096 bytes (rbpf's 512 per frame × 8 frames).
//!
//! Beyond rbpf: helpers may be closures ([`EbpfVmRaw::register_helper_closure`]) or receive
//! the input memory ([`EbpfVmRaw::register_helper_with_memory`]); errors are returned, never
//! printed; and [`vm`](EbpfVmRaw::vm_mut) gives the underlying [`Vm`] for librbpf's settings
//! (instruction limit, error printer, …).

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::any::Any;
use core::cell::RefCell;
use core::marker::PhantomData;

use core::ops::Range;

use crate::compat::lib::{Error, ErrorKind};
use crate::compat::messages::{self, Buffers, Engine};
use crate::error::LoadError;
#[cfg(feature = "std")]
use crate::jit::JitMode;

use crate::exec::memory::MemRegion;
use crate::vm::Vm;

/// A program verifier as rbpf takes it: rejects a program with an [`Error`].
pub type Verifier = fn(prog: &[u8]) -> Result<(), Error>;

/// A helper as rbpf registers it: r1..r5 in, r0 out.
pub type Helper = fn(u64, u64, u64, u64, u64) -> u64;

/// rbpf's stack-usage calculator: gets the program, the first slot of a function and the
/// data given to `set_stack_usage_calculator`; returns the bytes of stack the function uses
/// (a multiple of 16, as librbpf's validator requires).
pub type StackUsageCalculator = fn(prog: &[u8], pc: usize, data: &mut dyn Any) -> u16;

/// A calculator and its data.
type Calculator = (StackUsageCalculator, Box<dyn Any + Send + Sync>);

/// The error of a failed call, as rbpf reports it (`ErrorKind::Other` and a message).
#[allow(
    clippy::io_other_error,
    reason = "the no_std Error has `new`, as rbpf's"
)]
fn error(message: impl core::fmt::Display) -> Error {
    Error::new(ErrorKind::Other, message.to_string())
}

/// rbpf's message when nothing is loaded.
const NO_PROGRAM: &str = "Error: No program set, call prog_set() to load one";
/// rbpf's message when `execute_program_jit` runs before `jit_compile`.
#[cfg(feature = "std")]
const NOT_JITTED: &str = "Error: program has not been JIT-compiled";
/// rbpf's message when `execute_program_cranelift` runs before `cranelift_compile`.
#[cfg(feature = "std")]
const NOT_CRANELIFTED: &str = "Error: program has not been compiled with cranelift";
/// The message of a compiled-code run without the `std` feature (no JIT).
#[cfg(not(feature = "std"))]
const NOT_COMPILED: &str = "Error: program has not been JIT-compiled";

/// rbpf 0.4's verifier ([`crate::compat::verifier::check`], rbpf's checks and texts): the
/// verifier a VM starts with. librbpf's validator runs after it on every program.
pub fn default_verifier(prog: &[u8]) -> Result<(), Error> {
    crate::compat::verifier::check(prog)
}

/// Validates `prog` for librbpf's engines, with the stack usage of each function from
/// `calculator` (256 bytes each without one), under rbpf's rules where they are wider than
/// uBPF's (a register `div`/`mod` ignores its immediate) and with every helper index
/// accepted (rbpf programs are loaded before their helpers are registered).
fn verify(prog: &[u8], calculator: Option<&mut Calculator>) -> Result<crate::Program, LoadError> {
    let slots = crate::isa::decode_slots(prog).ok_or(LoadError::LengthNotMultipleOf8)?;
    let calculator = calculator.map(|(f, data)| (*f, RefCell::new(data)));
    let usage = |pc: usize| match &calculator {
        Some((f, data)) => {
            let mut data = data.borrow_mut();
            let data: &mut dyn Any = &mut ***data;
            i32::from(f(prog, pc, data))
        }
        None => i32::from(crate::isa::LOCAL_FUNCTION_STACK_SIZE),
    };
    let options = crate::program::verifier::VerifyOptions {
        helper_exists: &|_| true,
        stack_usage: Some(&usage),
        rbpf_ignored_fields: true,
    };
    crate::program::verifier::verify(slots, &options)
}

/// Why a program the verifier accepted cannot run in librbpf's engines (rbpf's engines fail
/// on such programs when they run or compile them; so does this layer).
enum Unrunnable {
    /// librbpf's validator refused it.
    Refused(LoadError),
    /// It is empty (rbpf's default verifier refuses that; a custom one may not).
    Empty,
}

/// What the four kinds share: the engine, the program bytes, the verifier, the allowed memory.
struct Core<'a> {
    vm: Vm,
    prog: Option<&'a [u8]>,
    /// Set when the verifier accepted `prog` but librbpf's validator did not.
    unrunnable: Option<Unrunnable>,
    verifier: Verifier,
    calculator: Option<Calculator>,
    /// Every range registered with `register_allowed_memory`.
    allowed: Vec<Range<u64>>,
}

impl<'a> Core<'a> {
    fn new(prog: Option<&'a [u8]>) -> Result<Self, Error> {
        let mut vm = Vm::new();
        vm.enable_extra_regions();
        // rbpf's ldabs/ldind: host byte order, out of bounds is an error (docs/rust-api.md).
        vm.config_mut().packet_loads = crate::exec::packet::PacketLoads::Rbpf;
        let mut core = Core {
            vm,
            prog: None,
            unrunnable: None,
            verifier: default_verifier,
            calculator: None,
            allowed: Vec::new(),
        };
        if let Some(prog) = prog {
            core.set_program(prog)?;
        }
        Ok(core)
    }

    /// Validates `prog` for the engines and installs it, or records why it cannot run.
    fn install(&mut self, prog: &'a [u8], calculator: Option<&mut Calculator>) {
        self.prog = Some(prog);
        let result = if prog.is_empty() {
            Err(Unrunnable::Empty)
        } else {
            verify(prog, calculator).map_err(Unrunnable::Refused)
        };
        match result {
            Ok(program) => {
                // `install` drops the previous program's code and maps.
                self.vm.install(program);
                self.unrunnable = None;
            }
            Err(why) => {
                // Nothing runs: unloading only fails while the program runs, which `&mut
                // self` excludes.
                let _ = self.vm.unload();
                self.unrunnable = Some(why);
            }
        }
    }

    fn set_program(&mut self, prog: &'a [u8]) -> Result<(), Error> {
        (self.verifier)(prog)?;
        // librbpf's own checks always run too: the engines rely on them.
        let mut calculator = self.calculator.take();
        self.install(prog, calculator.as_mut());
        self.calculator = calculator;
        Ok(())
    }

    fn set_verifier(&mut self, verifier: Verifier) -> Result<(), Error> {
        if let Some(prog) = self.prog {
            verifier(prog)?;
        }
        self.verifier = verifier;
        Ok(())
    }

    fn set_stack_usage_calculator(
        &mut self,
        calculator: StackUsageCalculator,
        data: Box<dyn Any + Send + Sync>,
    ) -> Result<(), Error> {
        let mut new = (calculator, data);
        if let Some(prog) = self.prog.filter(|prog| !prog.is_empty()) {
            // A frame librbpf cannot give is refused here, and the previous calculator stays.
            let program =
                verify(prog, Some(&mut new)).map_err(|e| error(format_args!("Error: {e}")))?;
            self.vm.install(program);
            self.unrunnable = None;
        }
        self.calculator = Some(new);
        Ok(())
    }

    fn register(
        &mut self,
        key: u32,
        helper: crate::exec::helpers::RustHelper,
    ) -> Result<(), Error> {
        self.vm
            .register_rust_helper(key, None, helper)
            .map_err(error)
    }

    fn register_allowed_memory(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        self.allowed.push(range);
        // Merge the ranges into sorted, disjoint [start, end) pairs for the bounds callback.
        let mut sorted: Vec<(u64, u64)> = self.allowed.iter().map(|r| (r.start, r.end)).collect();
        sorted.sort_unstable();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for (start, end) in sorted {
            match ranges.last_mut() {
                Some((_, last)) if start <= *last => *last = (*last).max(end),
                _ => ranges.push((start, end)),
            }
        }
        let ranges: Arc<[(u64, u64)]> = ranges.into();
        // An access is allowed when every byte of it is in a registered range (rbpf only
        // looks at the first byte).
        self.vm
            .replace_bounds_check_fn(Some(Box::new(move |addr, size| {
                let i = ranges.partition_point(|&(start, _)| start <= addr);
                i > 0 && {
                    let (_, end) = ranges[i - 1];
                    addr.checked_add(size).is_some_and(|last| last <= end)
                }
            })));
    }

    /// Whether a program is loaded and runnable by `engine` (else rbpf's text for it).
    fn runnable(&self, engine: Engine) -> Result<(), Error> {
        let Some(prog) = self.prog else {
            return Err(error(NO_PROGRAM));
        };
        match &self.unrunnable {
            None => Ok(()),
            Some(Unrunnable::Refused(why)) => Err(error(messages::unrunnable(engine, why, prog))),
            Some(Unrunnable::Empty) => Err(error(format_args!(
                "{}program is empty",
                match engine {
                    Engine::Interpreter => "Error: ",
                    Engine::Jit => "[JIT] Error: ",
                    Engine::Cranelift => "[CRANELIFT] Error: ",
                }
            ))),
        }
    }

    /// Interpreter run with r1 = `mem` (its address; 0 when empty) and the extra regions.
    fn run(&self, mem: &mut [u8], extra: &[MemRegion<'_>], buffers: Buffers) -> Result<u64, Error> {
        self.runnable(Engine::Interpreter)?;
        self.vm
            .execute_with_regions(mem, extra)
            .map_err(|e| error(messages::exec_error(Engine::Interpreter, &e, buffers)))
    }

    /// Compiles for `engine`, refusing (as rbpf's compilers do) a call to a helper that is
    /// not registered yet.
    #[cfg(feature = "std")]
    fn compile(&mut self, engine: Engine) -> Result<(), Error> {
        self.runnable(engine)?;
        if let Some(program) = self.vm.program() {
            for insn in &program.insns {
                let helper = insn.opc == crate::compat::ebpf::CALL && insn.src == 0;
                if helper && !self.vm.helper_exists(insn.imm as u32) {
                    return Err(error(messages::unknown_helper(engine, insn.imm as u32)));
                }
            }
        }
        self.vm
            .compile(JitMode::Basic)
            .map(drop)
            .map_err(|e| error(format_args!("{}", e)))
    }

    /// Compiled-code run, like [`Core::run`].
    #[cfg(feature = "std")]
    fn run_jit(
        &self,
        mem: &mut [u8],
        extra: &[MemRegion<'_>],
        buffers: Buffers,
        engine: Engine,
    ) -> Result<u64, Error> {
        self.runnable(engine)?;
        if self.vm.jit_mode().is_none() {
            return Err(error(match engine {
                Engine::Cranelift => NOT_CRANELIFTED,
                _ => NOT_JITTED,
            }));
        }
        self.vm
            .execute_jit_with_regions(mem, extra)
            .map_err(|e| error(messages::exec_error(engine, &e, buffers)))
    }

    /// rbpf's mbuff convention: r1 = `mbuff` (the packet data then an extra region, which the
    /// packet loads read), or
    /// r1 = `mem` when `mbuff` is empty; `engine` is `None` for the interpreter.
    fn run_mbuff(
        &self,
        mem: &mut [u8],
        mbuff: &mut [u8],
        engine: Option<Engine>,
    ) -> Result<u64, Error> {
        let buffers = Buffers {
            mbuff: span(mbuff),
            mem: span(mem),
        };
        let (r1, extra): (&mut [u8], &[MemRegion<'_>]) = if mbuff.is_empty() {
            (mem, &[])
        } else {
            (mbuff, &[MemRegion::writable(mem).as_packet()])
        };
        match engine {
            None => self.run(r1, extra, buffers),
            #[cfg(feature = "std")]
            Some(engine) => self.run_jit(r1, extra, buffers, engine),
            #[cfg(not(feature = "std"))]
            Some(_) => Err(error(NOT_COMPILED)),
        }
    }
}

/// A buffer's address and length as rbpf's texts print them.
fn span(buffer: &[u8]) -> (u64, usize) {
    (buffer.as_ptr() as u64, buffer.len())
}

/// Generates the methods every kind forwards to its [`Core`] unchanged.
macro_rules! common_methods {
    ($kind:ident, $($core:ident).+) => {
        /// Sets a new verifier, run on every program loaded from now on instead of the
        /// default one; if a program is loaded, the verifier runs on it at once and is only
        /// installed when it accepts it (rbpf's semantics). librbpf's own load-time checks
        /// still run on every program, after the verifier.
        pub fn set_verifier(&mut self, verifier: Verifier) -> Result<(), Error> {
            self.$($core).+.set_verifier(verifier)
        }

        /// Sets rbpf's stack-usage calculator: called with the program, the first slot of each
        /// function and `data`, it gives each function's stack frame (a multiple of 16; 256
        /// bytes each without a calculator). If a program is loaded, it is validated again
        /// with the calculator at once (and compiled code is dropped); the calculator is only
        /// installed when that succeeds.
        pub fn set_stack_usage_calculator(
            &mut self,
            calculator: StackUsageCalculator,
            data: Box<dyn Any + Send + Sync>,
        ) -> Result<(), Error> {
            self.$($core).+.set_stack_usage_calculator(calculator, data)
        }

        /// Registers `function` as helper `key` (0..256), replacing any previous one. Helpers
        /// may be registered before or after loading and compiling.
        pub fn register_helper(&mut self, key: u32, function: Helper) -> Result<(), Error> {
            self.$($core).+.register(
                key,
                crate::exec::helpers::RustHelper::Plain(Arc::new(function)),
            )
        }

        /// Registers a closure (with captured state) as helper `key` (0..256).
        pub fn register_helper_closure(
            &mut self,
            key: u32,
            function: impl Fn(u64, u64, u64, u64, u64) -> u64 + Send + Sync + 'static,
        ) -> Result<(), Error> {
            self.$($core).+.register(
                key,
                crate::exec::helpers::RustHelper::Plain(Arc::new(function)),
            )
        }

        /// Registers a closure as helper `key` (0..256) that also receives the buffer r1
        /// pointed to at entry (empty when there is none).
        pub fn register_helper_with_memory(
            &mut self,
            key: u32,
            function: impl Fn(u64, u64, u64, u64, u64, &mut [u8]) -> u64 + Send + Sync + 'static,
        ) -> Result<(), Error> {
            self.$($core).+.register(
                key,
                crate::exec::helpers::RustHelper::WithMemory(Arc::new(function)),
            )
        }

        /// Adds a range of addresses the program may load from and store to (typically
        /// memory that helpers hand out). Each call adds to the set; an access is allowed
        /// when every byte of it is in a registered range (rbpf only checks the first byte).
        pub fn register_allowed_memory(&mut self, addrs_range: Range<u64>) {
            self.$($core).+.register_allowed_memory(addrs_range)
        }

        /// Compiles the loaded program with the JIT (Cranelift). As in rbpf, every helper
        /// the program calls must be registered first; helpers registered afterwards
        /// replace the ones compiled code calls. Needs the `std` feature.
        #[cfg(feature = "std")]
        pub fn jit_compile(&mut self) -> Result<(), Error> {
            self.$($core).+.compile(Engine::Jit)
        }

        /// Compiles the loaded program with Cranelift: librbpf's JIT is Cranelift, so this is
        /// [`jit_compile`](Self::jit_compile) under rbpf's `cranelift` feature name.
        #[cfg(feature = "std")]
        pub fn cranelift_compile(&mut self) -> Result<(), Error> {
            self.$($core).+.compile(Engine::Cranelift)
        }

        /// The underlying [`Vm`], for librbpf's settings and queries.
        pub fn vm(&self) -> &Vm {
            &self.$($core).+.vm
        }

        /// The underlying [`Vm`], mutably (instruction limit, error printer, …). Loading a
        /// program through it bypasses this type's verifier.
        pub fn vm_mut(&mut self) -> &mut Vm {
            &mut self.$($core).+.vm
        }
    };
}

/// A VM for programs that get a metadata buffer in r1 holding pointers to the packet data
/// (rbpf's `EbpfVmMbuff`). Both buffers are the caller's.
///
/// ```
/// let prog = &[
///     0x79, 0x11, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // r1 = *(u64 *)(r1 + 8): data
///     0x69, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, // r0 = *(u16 *)(r1 + 2)
///     0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
/// ];
/// let mem = &mut [0xaa, 0xbb, 0x11, 0x22, 0xcc, 0xdd];
/// let mut mbuff = [0u8; 32];
/// mbuff[8..16].copy_from_slice(&(mem.as_ptr() as u64).to_le_bytes());
/// mbuff[24..32].copy_from_slice(&(mem.as_ptr() as u64 + mem.len() as u64).to_le_bytes());
///
/// let mut vm = rbpf::EbpfVmMbuff::new(Some(prog))?;
/// assert_eq!(vm.execute_program(mem, &mbuff)?, 0x2211);
/// vm.jit_compile()?;
/// assert_eq!(vm.execute_program_jit(mem, &mut mbuff)?, 0x2211);
/// # Ok::<(), rbpf::lib::Error>(())
/// ```
pub struct EbpfVmMbuff<'a> {
    core: Core<'a>,
}

impl<'a> EbpfVmMbuff<'a> {
    /// A VM with `prog` loaded (checked by the verifier) or nothing loaded.
    pub fn new(prog: Option<&'a [u8]>) -> Result<EbpfVmMbuff<'a>, Error> {
        Ok(EbpfVmMbuff {
            core: Core::new(prog)?,
        })
    }

    /// Loads `prog` (checked by the verifier), replacing the program and any compiled code.
    pub fn set_program(&mut self, prog: &'a [u8]) -> Result<(), Error> {
        self.core.set_program(prog)
    }

    common_methods!(EbpfVmMbuff, core);

    /// Runs the program in the interpreter with r1 = `mbuff` (or r1 = `mem` when `mbuff` is
    /// empty). Both buffers are read-only for the program (they are shared borrows): it runs
    /// on a private copy of the buffer r1 points to; use
    /// [`execute_program_mut`](Self::execute_program_mut) to let it write.
    pub fn execute_program(&self, mem: &[u8], mbuff: &[u8]) -> Result<u64, Error> {
        let buffers = Buffers {
            mbuff: span(mbuff),
            mem: span(mem),
        };
        if mbuff.is_empty() {
            return self.core.run(&mut mem.to_vec(), &[], buffers);
        }
        self.core.run(
            &mut mbuff.to_vec(),
            &[MemRegion::read_only(mem).as_packet()],
            buffers,
        )
    }

    /// [`execute_program`](Self::execute_program) on writable buffers, in place.
    pub fn execute_program_mut(&self, mem: &mut [u8], mbuff: &mut [u8]) -> Result<u64, Error> {
        self.core.run_mbuff(mem, mbuff, None)
    }

    /// Runs the compiled program like [`execute_program_mut`](Self::execute_program_mut).
    /// Safe: compiled code checks every access as the interpreter does (rbpf's is `unsafe`;
    /// calls inside `unsafe` blocks still compile).
    #[cfg(feature = "std")]
    pub fn execute_program_jit(&self, mem: &mut [u8], mbuff: &mut [u8]) -> Result<u64, Error> {
        self.core.run_mbuff(mem, mbuff, Some(Engine::Jit))
    }

    /// [`execute_program_jit`](Self::execute_program_jit) under rbpf's `cranelift` name.
    #[cfg(feature = "std")]
    pub fn execute_program_cranelift(
        &self,
        mem: &mut [u8],
        mbuff: &mut [u8],
    ) -> Result<u64, Error> {
        self.core.run_mbuff(mem, mbuff, Some(Engine::Cranelift))
    }
}

/// A VM that owns the metadata buffer (rbpf's `EbpfVmFixedMbuff`): before each run it writes
/// the packet data's start and end addresses as little-endian `u64`s at the two offsets given
/// to [`new`](Self::new), then runs the program with r1 = the buffer — the shape of kernel
/// programs that read `data` / `data_end` from their context.
///
/// The VM runs the program on a copy of the packet placed right after its metadata buffer
/// (written back to the caller's slice after the run, also after a fault), so both are one
/// region and compiled code checks packet accesses inline; the addresses the program sees
/// are the copy's.
///
/// ```
/// let prog = &[
///     0xb7, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // r0 = 0
///     0x79, 0x12, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // r2 = data (mbuff + 0x40)
///     0x07, 0x02, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, // r2 += 5
///     0x79, 0x11, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, // r1 = data_end (mbuff + 0x50)
///     0x2d, 0x12, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // if r2 > r1 goto +1
///     0x71, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // r0 = *(u8 *)r2
///     0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
/// ];
/// let mem = &mut [0xaa, 0xbb, 0x11, 0x22, 0xcc, 0xdd];
/// let mut vm = rbpf::EbpfVmFixedMbuff::new(Some(prog), 0x40, 0x50)?;
/// assert_eq!(vm.execute_program(mem)?, 0xdd);
/// vm.jit_compile()?;
/// assert_eq!(vm.execute_program_jit(mem)?, 0xdd);
/// # Ok::<(), rbpf::lib::Error>(())
/// ```
pub struct EbpfVmFixedMbuff<'a> {
    parent: EbpfVmMbuff<'a>,
    /// The metadata buffer (`meta_len` bytes, kept between runs), then the packet's copy.
    buffer: Vec<u8>,
    meta_len: usize,
    data_offset: usize,
    data_end_offset: usize,
}

impl<'a> EbpfVmFixedMbuff<'a> {
    /// A VM with `prog` loaded (or none) whose metadata buffer gets the packet data's start
    /// at `data_offset` and its end at `data_end_offset`.
    pub fn new(
        prog: Option<&'a [u8]>,
        data_offset: usize,
        data_end_offset: usize,
    ) -> Result<EbpfVmFixedMbuff<'a>, Error> {
        let buffer = metadata_buffer(data_offset, data_end_offset);
        Ok(EbpfVmFixedMbuff {
            parent: EbpfVmMbuff::new(prog)?,
            meta_len: buffer.len(),
            buffer,
            data_offset,
            data_end_offset,
        })
    }

    /// Loads `prog` with new offsets for the packet pointers.
    pub fn set_program(
        &mut self,
        prog: &'a [u8],
        data_offset: usize,
        data_end_offset: usize,
    ) -> Result<(), Error> {
        self.parent.set_program(prog)?;
        self.buffer = metadata_buffer(data_offset, data_end_offset);
        self.meta_len = self.buffer.len();
        self.data_offset = data_offset;
        self.data_end_offset = data_end_offset;
        Ok(())
    }

    common_methods!(EbpfVmFixedMbuff, parent.core);

    /// Runs the program on the metadata buffer followed by a copy of `mem`, then writes the
    /// copy back: `engine` is `None` for the interpreter.
    fn run_on_copy(&mut self, mem: &mut [u8], engine: Option<Engine>) -> Result<u64, Error> {
        let meta = self.meta_len;
        self.buffer.truncate(meta);
        self.buffer.extend_from_slice(mem);
        let start = self.buffer[meta..].as_ptr() as u64;
        let end = start + mem.len() as u64;
        self.buffer[self.data_offset..self.data_offset + 8].copy_from_slice(&start.to_le_bytes());
        self.buffer[self.data_end_offset..self.data_end_offset + 8]
            .copy_from_slice(&end.to_le_bytes());
        let core = &self.parent.core;
        // The packet loads read the packet's copy, inside the buffer (rbpf reads `mem`).
        // SAFETY: `[start, end)` is the tail of `self.buffer`, which outlives the run and is
        // not reallocated during it; the region only describes it to the bounds model.
        let packet = unsafe { MemRegion::from_raw(start as *const u8, mem.len(), true, "data") }
            .map_err(error)?;
        let packet = [packet.as_packet()];
        let buffers = Buffers {
            mbuff: (self.buffer.as_ptr() as u64, meta),
            mem: (start, mem.len()),
        };
        let result = match engine {
            None => core.run(&mut self.buffer, &packet, buffers),
            #[cfg(feature = "std")]
            Some(engine) => core.run_jit(&mut self.buffer, &packet, buffers, engine),
            #[cfg(not(feature = "std"))]
            Some(_) => Err(error(NOT_COMPILED)),
        };
        mem.copy_from_slice(&self.buffer[meta..]);
        result
    }

    /// Runs the program in the interpreter on packet data `mem` (writable by the program).
    pub fn execute_program(&mut self, mem: &mut [u8]) -> Result<u64, Error> {
        self.run_on_copy(mem, None)
    }

    /// Runs the compiled program like [`execute_program`](Self::execute_program). Safe:
    /// compiled code checks every access.
    #[cfg(feature = "std")]
    pub fn execute_program_jit(&mut self, mem: &mut [u8]) -> Result<u64, Error> {
        self.run_on_copy(mem, Some(Engine::Jit))
    }

    /// [`execute_program_jit`](Self::execute_program_jit) under rbpf's `cranelift` name.
    #[cfg(feature = "std")]
    pub fn execute_program_cranelift(&mut self, mem: &mut [u8]) -> Result<u64, Error> {
        self.run_on_copy(mem, Some(Engine::Cranelift))
    }
}

/// A zeroed metadata buffer just large enough for both pointers (rbpf's sizing).
fn metadata_buffer(data_offset: usize, data_end_offset: usize) -> Vec<u8> {
    vec![0; data_offset.max(data_end_offset) + 8]
}

/// A VM for programs that work directly on the packet data, r1 = its address (rbpf's
/// `EbpfVmRaw`; uBPF's mode).
///
/// ```
/// let prog = &[
///     0x71, 0x11, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, // r1 = *(u8 *)(r1 + 4)
///     0x07, 0x01, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, // r1 += 0x2200
///     0xbf, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // r0 = r1
///     0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
/// ];
/// let mem = &mut [0xaa, 0xbb, 0x11, 0x22, 0xcc, 0xdd];
/// let mut vm = rbpf::EbpfVmRaw::new(Some(prog))?;
/// assert_eq!(vm.execute_program(mem)?, 0x22cc);
/// vm.jit_compile()?;
/// assert_eq!(vm.execute_program_jit(mem)?, 0x22cc);
/// # Ok::<(), rbpf::lib::Error>(())
/// ```
pub struct EbpfVmRaw<'a> {
    core: Core<'a>,
}

impl<'a> EbpfVmRaw<'a> {
    /// A VM with `prog` loaded (checked by the verifier) or nothing loaded.
    pub fn new(prog: Option<&'a [u8]>) -> Result<EbpfVmRaw<'a>, Error> {
        Ok(EbpfVmRaw {
            core: Core::new(prog)?,
        })
    }

    /// Loads `prog` (checked by the verifier), replacing the program and any compiled code.
    pub fn set_program(&mut self, prog: &'a [u8]) -> Result<(), Error> {
        self.core.set_program(prog)
    }

    common_methods!(EbpfVmRaw, core);

    /// Runs the program in the interpreter with r1 = `mem` (0 when empty) and r2 = its length.
    pub fn execute_program(&self, mem: &mut [u8]) -> Result<u64, Error> {
        let buffers = Buffers {
            mbuff: (0, 0),
            mem: span(mem),
        };
        self.core.run(mem, &[], buffers)
    }

    /// Runs the compiled program like [`execute_program`](Self::execute_program). Safe:
    /// compiled code checks every access.
    #[cfg(feature = "std")]
    pub fn execute_program_jit(&self, mem: &mut [u8]) -> Result<u64, Error> {
        let buffers = Buffers {
            mbuff: (0, 0),
            mem: span(mem),
        };
        self.core.run_jit(mem, &[], buffers, Engine::Jit)
    }

    /// [`execute_program_jit`](Self::execute_program_jit) under rbpf's `cranelift` name.
    #[cfg(feature = "std")]
    pub fn execute_program_cranelift(&self, mem: &mut [u8]) -> Result<u64, Error> {
        let buffers = Buffers {
            mbuff: (0, 0),
            mem: span(mem),
        };
        self.core.run_jit(mem, &[], buffers, Engine::Cranelift)
    }
}

/// A VM for programs that take no input at all (rbpf's `EbpfVmNoData`): r1 = 0.
///
/// ```
/// let prog = &[
///     0xb7, 0x00, 0x00, 0x00, 0x11, 0x22, 0x00, 0x00, // r0 = 0x2211
///     0xdc, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, // r0 = be16(r0)
///     0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
/// ];
/// let mut vm = rbpf::EbpfVmNoData::new(Some(prog))?;
/// assert_eq!(vm.execute_program()?, 0x1122);
/// vm.jit_compile()?;
/// assert_eq!(vm.execute_program_jit()?, 0x1122);
/// # Ok::<(), rbpf::lib::Error>(())
/// ```
pub struct EbpfVmNoData<'a> {
    core: Core<'a>,
    _prog: PhantomData<&'a [u8]>,
}

impl<'a> EbpfVmNoData<'a> {
    /// A VM with `prog` loaded (checked by the verifier) or nothing loaded.
    pub fn new(prog: Option<&'a [u8]>) -> Result<EbpfVmNoData<'a>, Error> {
        Ok(EbpfVmNoData {
            core: Core::new(prog)?,
            _prog: PhantomData,
        })
    }

    /// Loads `prog` (checked by the verifier), replacing the program and any compiled code.
    pub fn set_program(&mut self, prog: &'a [u8]) -> Result<(), Error> {
        self.core.set_program(prog)
    }

    common_methods!(EbpfVmNoData, core);

    /// Runs the program in the interpreter with no input memory.
    pub fn execute_program(&self) -> Result<u64, Error> {
        self.core.run(&mut [], &[], Buffers::default())
    }

    /// Runs the compiled program with no input memory. Safe: compiled code checks every
    /// access.
    #[cfg(feature = "std")]
    pub fn execute_program_jit(&self) -> Result<u64, Error> {
        self.core
            .run_jit(&mut [], &[], Buffers::default(), Engine::Jit)
    }

    /// [`execute_program_jit`](Self::execute_program_jit) under rbpf's `cranelift` name.
    #[cfg(feature = "std")]
    pub fn execute_program_cranelift(&self) -> Result<u64, Error> {
        self.core
            .run_jit(&mut [], &[], Buffers::default(), Engine::Cranelift)
    }
}

/// The four kinds in the interpreter, in both configurations (the `std` one also runs
/// `tests/rbpf_compat.rs`, which compares with the JIT).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::assembler::assemble;

    #[test]
    fn four_kinds_in_the_interpreter() {
        let prog = assemble("mov64 r0, 0x2211\nbe16 r0\nexit").unwrap();
        let vm = EbpfVmNoData::new(Some(&prog)).unwrap();
        assert_eq!(vm.execute_program().unwrap(), 0x1122);

        let prog = assemble("ldxh r0, [r1+2]\nexit").unwrap();
        let vm = EbpfVmRaw::new(Some(&prog)).unwrap();
        assert_eq!(vm.execute_program(&mut [1, 2, 3, 4]).unwrap(), 0x0403);
        assert!(vm.execute_program(&mut [1, 2, 3]).is_err());

        let prog = assemble("ldxdw r1, [r1+8]\nldxb r0, [r1+1]\nexit").unwrap();
        let data = [7u8, 9];
        let mut mbuff = [0u8; 16];
        mbuff[8..].copy_from_slice(&(data.as_ptr() as u64).to_le_bytes());
        let vm = EbpfVmMbuff::new(Some(&prog)).unwrap();
        assert_eq!(vm.execute_program(&data, &mbuff).unwrap(), 9);

        let prog =
            assemble("ldxdw r2, [r1]\nldxdw r3, [r1+8]\nsub64 r3, r2\nmov64 r0, r3\nexit").unwrap();
        let mut vm = EbpfVmFixedMbuff::new(Some(&prog), 0, 8).unwrap();
        assert_eq!(vm.execute_program(&mut [0; 5]).unwrap(), 5);
    }

    fn no_exit_first(prog: &[u8]) -> Result<(), Error> {
        if prog.first() == Some(&crate::compat::ebpf::EXIT) {
            return Err(error("exit first"));
        }
        Ok(())
    }

    #[test]
    fn verifier_helpers_and_allowed_memory() {
        let exit = assemble("exit").unwrap();
        let prog = assemble("mov64 r1, 3\ncall 2\nexit").unwrap();
        let mut vm = EbpfVmNoData::new(Some(&exit)).unwrap();
        assert!(vm.set_verifier(no_exit_first).is_err());
        vm.set_program(&prog).unwrap();
        vm.set_verifier(no_exit_first).unwrap();
        assert!(vm.set_program(&exit).is_err());
        assert!(vm.execute_program().is_err());
        let offset = 100;
        vm.register_helper_closure(2, move |a, _, _, _, _| a + offset)
            .unwrap();
        assert_eq!(vm.execute_program().unwrap(), 103);
        vm.register_helper(2, crate::exec::helpers::sqrti).unwrap();
        assert_eq!(vm.execute_program().unwrap(), 1);

        let value = [5u8; 4];
        let addr = value.as_ptr() as u64;
        let text = alloc::format!("lddw r1, {addr:#x}\nldxw r0, [r1]\nexit");
        let prog = assemble(&text).unwrap();
        let mut vm = EbpfVmNoData::new(Some(&prog)).unwrap();
        assert!(vm.execute_program().is_err());
        vm.register_allowed_memory(addr..addr + 3);
        assert!(vm.execute_program().is_err());
        vm.register_allowed_memory(addr + 3..addr + 4);
        assert_eq!(vm.execute_program().unwrap(), 0x0505_0505);
    }
}
