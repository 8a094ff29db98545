//! What the targets share: a sandboxed helper table that logs its calls, the buffers a run
//! sees, one engine run's [`Outcome`], program properties the comparison depends on, and
//! executable memory for copied code.

use std::cell::RefCell;
use std::ffi::c_void;

use rbpf::error::ExecError;
use rbpf::isa::{Insn, class, op};
use rbpf::{HelperFn, Vm};

/// Bytes of readable slack after `mem` that the bounds callback (when registered) permits.
pub const SLACK: usize = 64;
/// Stack length of extended-mode runs (the caller's stack, the same buffer in both engines).
pub const STACK_LEN: usize = rbpf::isa::STACK_SIZE;
/// The instruction limit used when the input asks for none but the program can loop.
pub const LOOP_LIMIT: u32 = 1 << 16;

/// The per-thread state of the current run that the helpers see.
#[derive(Default)]
struct RunState {
    /// `[start, end)` of the input memory and of the stack when known (extended mode).
    regions: Vec<(u64, u64)>,
    /// `[start, end)` of the bytes after `mem` that the bounds callback permits.
    slack: (u64, u64),
    /// Every helper call: (index, r1..r5).
    log: Vec<(u32, [u64; 5])>,
    /// The array behind `map_lookup`/`map_update`.
    map: [u64; 16],
}

thread_local! {
    static RUN: RefCell<RunState> = RefCell::new(RunState::default());
}

/// Prepares the helpers' state for a run over the first `mem_len` bytes of `buf` (the rest is
/// slack for the bounds callback), and over `stack` when the caller owns it.
pub fn begin_run(buf: &[u8], mem_len: usize, stack: Option<&[u8]>) {
    RUN.with(|r| {
        let mut r = r.borrow_mut();
        r.regions.clear();
        let start = buf.as_ptr() as u64;
        r.regions.push((start, start + mem_len as u64));
        r.slack = (start + mem_len as u64, start + buf.len() as u64);
        if let Some(stack) = stack {
            let start = stack.as_ptr() as u64;
            r.regions.push((start, start + stack.len() as u64));
        }
        r.log.clear();
        r.map = [0; 16];
    });
}

/// The bounds callback: permits exactly the slack after `mem`.
pub fn slack_permits(addr: u64, size: u64) -> bool {
    RUN.with(|r| {
        let (start, end) = r.borrow().slack;
        addr >= start && addr.checked_add(size).is_some_and(|e| e <= end)
    })
}

/// The helper calls of the run since [`begin_run`].
pub fn take_log() -> Vec<(u32, [u64; 5])> {
    RUN.with(|r| std::mem::take(&mut r.borrow_mut().log))
}

fn log(index: u32, args: [u64; 5]) {
    RUN.with(|r| r.borrow_mut().log.push((index, args)));
}

/// `ptr` as a pointer to `len` bytes inside a known region of this run, if it is one.
fn in_region(ptr: u64, len: u64) -> Option<*mut u8> {
    RUN.with(|r| {
        let r = r.borrow();
        let end = ptr.checked_add(len)?;
        r.regions
            .iter()
            .any(|&(s, e)| ptr >= s && end <= e)
            .then_some(ptr as *mut u8)
    })
}

/// The NUL-terminated string at `ptr` if it lies inside a known region.
fn c_string(ptr: u64) -> Option<Vec<u8>> {
    RUN.with(|r| {
        let r = r.borrow();
        let &(_, end) = r.regions.iter().find(|&&(s, e)| ptr >= s && ptr < e)?;
        // SAFETY: [ptr, end) is inside one of this run's live buffers.
        let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, (end - ptr) as usize) };
        let nul = bytes.iter().position(|&b| b == 0)?;
        Some(bytes[..nul].to_vec())
    })
}

/// The value a helper returns when it refuses a pointer it cannot check.
const REFUSED: u64 = 0xbad0_bad0;

unsafe extern "C" fn gather_bytes(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    log(0, [a, b, c, d, e]);
    ((a & 0xff) << 32) | ((b & 0xff) << 24) | ((c & 0xff) << 16) | ((d & 0xff) << 8) | (e & 0xff)
}

/// `memfrob` of the suite, but only inside this run's buffers.
unsafe extern "C" fn memfrob(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    log(1, [a, b, c, d, e]);
    let Some(p) = in_region(a, b) else {
        return REFUSED;
    };
    for i in 0..b as usize {
        // SAFETY: checked to lie inside a live buffer of the run.
        unsafe { *p.add(i) ^= 42 };
    }
    0
}

unsafe extern "C" fn no_op(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    log(2, [a, b, c, d, e]);
    0
}

unsafe extern "C" fn sqrti(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    log(3, [a, b, c, d, e]);
    (a as f64).sqrt() as u64
}

/// `strcmp_ext` of the suite, but only on strings inside this run's buffers.
unsafe extern "C" fn strcmp_ext(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    log(4, [a, b, c, d, e]);
    match (c_string(a), c_string(b)) {
        (Some(x), Some(y)) => x.cmp(&y) as i64 as u64,
        _ => REFUSED,
    }
}

unsafe extern "C" fn unwind(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    log(5, [a, b, c, d, e]);
    a
}

/// The sum of `len` bytes at `ptr` (the example objects' `checksum`).
unsafe extern "C" fn checksum(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    log(6, [a, b, c, d, e]);
    let Some(p) = in_region(a, b) else {
        return REFUSED;
    };
    // SAFETY: checked to lie inside a live buffer of the run.
    let bytes = unsafe { std::slice::from_raw_parts(p, b as usize) };
    bytes.iter().map(|&x| u64::from(x)).sum()
}

unsafe extern "C" fn map_lookup(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    log(9, [a, b, c, d, e]);
    RUN.with(|r| r.borrow().map[(a % 16) as usize])
}

unsafe extern "C" fn map_update(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut c_void) -> u64 {
    log(12, [a, b, c, d, e]);
    RUN.with(|r| r.borrow_mut().map[(a % 16) as usize] = b);
    0
}

/// The helper table of every target: the conformance suite's indices 0–5 (with pointer
/// helpers confined to the run's buffers), and the example objects' `checksum` and map
/// helpers. All are deterministic and record their calls.
pub const HELPERS: [(u32, &str, HelperFn); 9] = [
    (0, "gather_bytes", gather_bytes),
    (1, "memfrob", memfrob),
    (2, "no_op", no_op),
    (3, "sqrti", sqrti),
    (4, "strcmp_ext", strcmp_ext),
    (5, "unwind", unwind),
    (6, "checksum", checksum),
    (9, "map_lookup", map_lookup),
    (12, "map_update", map_update),
];

/// The helper at `index`, if the table has one.
fn helper(index: u32) -> Option<HelperFn> {
    HELPERS.iter().find(|h| h.0 == index).map(|h| h.2)
}

/// The external dispatcher: the same table, reached through one function.
pub unsafe extern "C" fn dispatch(
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    e: u64,
    index: u32,
    cookie: *mut c_void,
) -> u64 {
    match helper(index) {
        // SAFETY: the helpers check every pointer they use.
        Some(f) => unsafe { f(a, b, c, d, e, cookie) },
        None => {
            log(index, [a, b, c, d, e]);
            REFUSED
        }
    }
}

/// Registers the helper table on `vm`, directly or behind the dispatcher.
pub fn register_helpers(vm: &mut Vm, through_dispatcher: bool) {
    for (index, name, f) in HELPERS {
        vm.register_helper(index, Some(name), f)
            .expect("indices are below 64");
    }
    if through_dispatcher {
        vm.set_dispatcher(
            Some(dispatch),
            Some(Box::new(|index| helper(index).is_some())),
        );
    }
}

/// One engine's run: r0 or the error (keyed without host addresses), the memory and stack
/// afterwards, and the helper calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// r0, or the error's [`error_key`].
    pub result: Result<u64, String>,
    /// The memory buffer afterwards (mem and the slack after it).
    pub mem: Vec<u8>,
    /// The stack afterwards, when the caller provided it (extended mode).
    pub stack: Option<Vec<u8>>,
    /// The helper calls: (index, r1..r5).
    pub calls: Vec<(u32, [u64; 5])>,
}

impl Outcome {
    /// Whether the run stopped at the instruction limit.
    pub fn hit_limit(&self) -> bool {
        matches!(&self.result, Err(e) if e.starts_with("instruction limit"))
    }
}

/// The comparable part of an error: its kind and where it happened, not the host addresses in
/// its text (the JIT's stack is not the interpreter's).
pub fn error_key(err: &ExecError) -> String {
    match err {
        ExecError::OutOfBounds {
            pc, access, size, ..
        } => format!("out of bounds {access} at PC {pc} size {size}"),
        ExecError::IntegerOverflow {
            pc, access, size, ..
        } => format!("integer overflow {access} at PC {pc} size {size}"),
        ExecError::InstructionLimit { pc } => format!("instruction limit at PC {pc}"),
        other => other.to_string(),
    }
}

/// A buffer of 8-byte aligned bytes (atomics need alignment in both engines alike).
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    /// `len` bytes (rounded up to whole words in storage), zeroed.
    pub fn new(len: usize) -> Self {
        Aligned {
            words: vec![0; len.div_ceil(8).max(1)],
            len,
        }
    }

    /// All bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        let len = self.len;
        // SAFETY: u64 storage holds at least `len` bytes; any byte pattern is valid.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), len) }
    }
}

/// Whether the value of r10 (a host stack address, different in each engine) can reach a
/// register, memory or a helper: any use of r10 other than as the base of a load or store.
/// Basic-mode runs of such programs cannot be compared, only checked not to crash.
pub fn leaks_frame_pointer(insns: &[Insn]) -> bool {
    let fp = rbpf::isa::FRAME_PTR_REG;
    let mut slots = insns.iter();
    while let Some(insn) = slots.next() {
        let leaks = match insn.class() {
            class::LD => {
                if insn.opc == op::LDDW {
                    slots.next();
                }
                // An `ldind` through r10 loads (or ends the program) depending on where the
                // stack is.
                insn.dst == fp || (insn.is_packet_load() && insn.src == fp)
            }
            class::LDX => insn.dst == fp,
            class::ST => false,
            class::STX => insn.src == fp,
            _ => insn.dst == fp || (insn.opc & 0x08 != 0 && insn.src == fp),
        };
        if leaks {
            return true;
        }
    }
    false
}

/// Whether the program can run for long: a jump with a negative offset (a loop), or a local
/// call (nested calls repeated in each of the eight frames multiply: 60 calls per function
/// already make 60^8 instructions).
pub fn may_loop(insns: &[Insn]) -> bool {
    insns.iter().any(|insn| {
        if insn.opc == op::CALL && insn.src == 1 {
            return true;
        }
        let is_jump = matches!(insn.class(), class::JMP | class::JMP32);
        let is_call_or_exit = matches!(insn.opc, op::CALL | op::CALLX | op::EXIT);
        if !is_jump || is_call_or_exit {
            return false;
        }
        if insn.opc == op::JA32 {
            insn.imm < 0
        } else {
            insn.off < 0
        }
    })
}

/// Whether the program has an atomic instruction (for [`crate::known::Known::AtomicImm`]).
pub fn has_atomic(insns: &[Insn]) -> bool {
    insns
        .iter()
        .any(|i| matches!(i.opc, op::ATOMIC32 | op::ATOMIC64))
}

/// A private read-write-execute mapping that copied code runs from (unmapped on drop).
pub struct ExecBuf {
    ptr: *mut u8,
    len: usize,
}

impl ExecBuf {
    /// Maps `code` read-only and executable at a fresh address.
    pub fn new(code: &[u8]) -> Self {
        let len = code.len().max(1).next_multiple_of(4096);
        // SAFETY: an anonymous private mapping; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap failed");
        let ptr = ptr.cast::<u8>();
        // SAFETY: the mapping is `len >= code.len()` bytes and writable.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), ptr, code.len()) };
        // SAFETY: same mapping.
        let rc = unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_READ | libc::PROT_EXEC) };
        assert_eq!(rc, 0, "mprotect failed");
        ExecBuf { ptr, len }
    }

    /// The start of the code.
    pub fn ptr(&self) -> *const u8 {
        self.ptr
    }
}

impl Drop for ExecBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Reads an input front to back; past the end it yields zeros.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// Whether `RBPF_FUZZ_EXPLAIN` is set: targets then print how they decoded each input.
pub fn explaining() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("RBPF_FUZZ_EXPLAIN").is_some())
}

/// Panics with a report of a disagreement: the description and the program's disassembly.
pub fn fail(what: &str, insns: &[Insn]) -> ! {
    panic!(
        "rbpf-fuzz finding: {what}\nprogram ({} slots):\n{}",
        insns.len(),
        rbpf::disasm::disassemble(insns)
    );
}
