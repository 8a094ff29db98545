//! The memory-access model shared by the interpreter and the JIT (`docs/semantics.md`, "Memory").
//!
//! Every load, store and atomic computes its effective address as `base + sign-extended
//! offset`. Wrapping past either end of the address space is always an error, even with bounds
//! checking off. With bounds checking on, the access `[addr, addr + size)` must lie entirely
//! inside one of, in this order:
//!
//! 1. the input memory `[mem, mem + mem_len)`, only when `mem` is not null;
//! 2. the stack of this execution;
//! 3. one of the loaded program's data sections (stores only into writable ones; a librbpf
//!    extension for ELF globals);
//! 4. one of the run's extra regions ([`MemRegion`]: the packet data of rbpf's mbuff modes;
//!    stores only into writable ones);
//! 5. one value of one of the loaded program's maps, or a live ring-buffer reservation
//!    (`docs/maps.md`; a librbpf extension);
//! 6. a region accepted by the VM's bounds callback.
//!
//! [`Regions`] is a small `Copy` value built once per execution. The JIT can keep one in its
//! context and call [`Regions::check`] from an `extern "C"` runtime function on its slow path;
//! the interpreter calls it inline. The mem and stack comparisons come first and are cheap; the
//! rest lives in a cold function.

use alloc::vec::Vec;

use crate::error::{Access, ExecError};
use crate::exec::machine::{BoundsCheckFn, Machine};
use crate::isa::STACK_SIZE;
use crate::program::{DataSection, Program};

/// Whether a caller-provided buffer can be a region: null (then it is no region at all), or
/// at most `isize::MAX` bytes (Rust's bound on any object) ending inside the address space.
/// Both engines refuse a run over any other buffer with [`ExecError::InvalidBuffer`] before
/// its first instruction (docs/sandbox.md, "Caller buffers"): otherwise `start + len` wraps and
/// bounds checks accept addresses outside the buffer.
pub fn buffer_fits(start: *const u8, len: usize) -> bool {
    start.is_null()
        || (isize::try_from(len).is_ok() && (start as u64).checked_add(len as u64).is_some())
}

/// Applies [`buffer_fits`] to the input memory and the stack of one run.
pub fn check_buffers(
    mem: *const u8,
    mem_len: usize,
    stack: *const u8,
    stack_len: usize,
) -> Result<(), ExecError> {
    if !buffer_fits(mem, mem_len) {
        return Err(ExecError::InvalidBuffer {
            buffer: "mem",
            len: mem_len,
        });
    }
    if !buffer_fits(stack, stack_len) {
        return Err(ExecError::InvalidBuffer {
            buffer: "stack",
            len: stack_len,
        });
    }
    Ok(())
}

/// A buffer one run may access besides its input memory and stack (for example the packet
/// data behind an rbpf-style metadata buffer). Built from a borrow, so the buffer outlives
/// the run; read-only when built from a shared borrow.
///
/// A region marked with [`MemRegion::as_packet`] is also the run's *packet*, the buffer the
/// legacy packet loads read ([`crate::exec::packet`]); without one, the packet is the input
/// memory.
#[derive(Debug, Clone, Copy)]
pub struct MemRegion<'a> {
    start: u64,
    end: u64,
    writable: bool,
    packet: bool,
    _borrow: core::marker::PhantomData<&'a [u8]>,
}

impl<'a> MemRegion<'a> {
    /// A region the program may load from and store to.
    pub fn writable(buf: &'a mut [u8]) -> Self {
        // A slice is at most `isize::MAX` bytes and ends inside the address space.
        Self::from_slice_parts(buf.as_mut_ptr(), buf.len(), true)
    }

    /// A region the program may only load from.
    pub fn read_only(buf: &'a [u8]) -> Self {
        // A slice is at most `isize::MAX` bytes and ends inside the address space; stores
        // are refused.
        Self::from_slice_parts(buf.as_ptr(), buf.len(), false)
    }

    /// A region from raw parts (for the C API). A length that no buffer can have (above
    /// `isize::MAX`, or passing the end of the address space) is refused with
    /// [`ExecError::InvalidBuffer`] naming the buffer `name`, as [`check_buffers`] refuses
    /// such a `mem`: a region covering it would let a program reach memory that is not the
    /// buffer (docs/sandbox.md, "Caller buffers").
    ///
    /// # Safety
    /// `ptr` must be valid for `len` bytes of reads (and writes when `writable`) for `'a`.
    pub unsafe fn from_raw(
        ptr: *const u8,
        len: usize,
        writable: bool,
        name: &'static str,
    ) -> Result<Self, ExecError> {
        if isize::try_from(len).is_err() || (ptr as u64).checked_add(len as u64).is_none() {
            return Err(ExecError::InvalidBuffer { buffer: name, len });
        }
        Ok(Self::from_slice_parts(ptr, len, writable))
    }

    /// A region over `len` bytes at `ptr`, which end inside the address space.
    fn from_slice_parts(ptr: *const u8, len: usize, writable: bool) -> Self {
        let start = ptr as u64;
        MemRegion {
            start,
            end: start.saturating_add(len as u64),
            writable,
            packet: false,
            _borrow: core::marker::PhantomData,
        }
    }

    /// The same region, marked as the run's packet: `ldabs*`/`ldind*` read from it instead
    /// of the input memory (the first marked region of a run wins). It stays an ordinary
    /// region for every other access.
    #[must_use]
    pub fn as_packet(self) -> Self {
        MemRegion {
            packet: true,
            ..self
        }
    }

    /// Whether `[addr, end)` lies inside the region and the access is permitted.
    fn permits(&self, addr: u64, end: u64, access: Access) -> bool {
        (access == Access::Load || self.writable) && addr >= self.start && end <= self.end
    }
}

/// The regions one execution may access, and whether to check at all.
#[derive(Clone, Copy)]
pub struct Regions<'a> {
    /// First byte of the input memory (0 when the caller passed no memory).
    pub mem_start: u64,
    /// One past the last byte of the input memory.
    pub mem_end: u64,
    /// Length of the input memory as given by the caller (printed in errors).
    pub mem_len: usize,
    /// Lowest byte of the stack.
    pub stack_start: u64,
    /// One past the highest byte of the stack (the initial r10).
    pub stack_end: u64,
    /// Whether accesses are checked against the regions (the VM's `bounds_check` setting).
    pub bounds_check: bool,
    /// The running program's data sections (a thin reference: this struct stays two
    /// words smaller for the interpreter's hot loop than a slice would make it).
    pub sections: &'a Vec<DataSection>,
    /// The VM's bounds callback, if any.
    pub callback: Option<&'a BoundsCheckFn>,
    /// The run's extra regions (empty unless the run was given some).
    pub extra: &'a [MemRegion<'a>],
    /// The loaded program's maps, whose values (and live ring-buffer reservations) are
    /// regions too (`docs/maps.md`); `None` for code no VM owns any more.
    #[cfg(feature = "std")]
    pub maps: Option<&'a crate::exec::maps::MapSet>,
}

impl core::fmt::Debug for Regions<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Regions")
            .field("mem_start", &self.mem_start)
            .field("mem_len", &self.mem_len)
            .field("stack_start", &self.stack_start)
            .field("stack_end", &self.stack_end)
            .field("bounds_check", &self.bounds_check)
            .finish_non_exhaustive()
    }
}

impl<'a> Regions<'a> {
    /// The regions of one execution over `mem` (may be null) and `stack`.
    ///
    /// Addresses are only compared, never dereferenced here. A region that would wrap the
    /// address space is clamped to its end (engines refuse such buffers with
    /// [`check_buffers`] before running; the clamp only keeps this type total).
    pub fn new(
        machine: &'a Machine,
        program: &'a Program,
        mem: *const u8,
        mem_len: usize,
        stack: *const u8,
        stack_len: usize,
    ) -> Self {
        let regions = Self::build(
            (mem, mem_len),
            (stack, stack_len),
            machine.config().bounds_check,
            &program.data_sections,
            machine.bounds_check_fn.as_ref(),
        );
        #[cfg(feature = "std")]
        let regions = Regions {
            maps: Some(&machine.maps.maps),
            ..regions
        };
        regions
    }

    /// The regions of a run of compiled code that no VM owns any more (a copy made by
    /// `Vm::copy_jit` or `Vm::translate`, after its VM unloaded the program or was dropped):
    /// only mem and the stack, always checked (docs/sandbox.md, "Copies").
    pub fn without_vm(mem: *const u8, mem_len: usize, stack: *const u8, stack_len: usize) -> Self {
        static NO_SECTIONS: Vec<DataSection> = Vec::new();
        Self::build((mem, mem_len), (stack, stack_len), true, &NO_SECTIONS, None)
    }

    fn build(
        (mem, mem_len): (*const u8, usize),
        (stack, stack_len): (*const u8, usize),
        bounds_check: bool,
        sections: &'a Vec<DataSection>,
        callback: Option<&'a BoundsCheckFn>,
    ) -> Self {
        let (mem_start, mem_end) = if mem.is_null() {
            (0, 0)
        } else {
            (mem as u64, (mem as u64).saturating_add(mem_len as u64))
        };
        // A null stack is no region either (extended-mode code called with NULL).
        let (stack_start, stack_len) = if stack.is_null() {
            (0, 0)
        } else {
            (stack as u64, stack_len)
        };
        Regions {
            mem_start,
            mem_end,
            mem_len,
            stack_start,
            stack_end: stack_start.saturating_add(stack_len as u64),
            bounds_check,
            sections,
            callback,
            extra: &[],
            #[cfg(feature = "std")]
            maps: None,
        }
    }

    /// The same regions plus the run's `extra` ones.
    pub fn with_extra(self, extra: &'a [MemRegion<'a>]) -> Self {
        Regions { extra, ..self }
    }

    /// The run's packet as `(start, end)`: the first extra region marked with
    /// [`MemRegion::as_packet`], else the input memory (`(0, 0)` when the caller passed none).
    /// Every byte of it is readable for the whole run: the input memory by the engines'
    /// contract with their caller, an extra region by its borrow.
    pub fn packet(&self) -> (u64, u64) {
        match self.extra.iter().find(|r| r.packet) {
            Some(r) => (r.start, r.end),
            None => (self.mem_start, self.mem_end),
        }
    }

    /// The regions of one execution of `machine`'s loaded program, or `None` when nothing is
    /// loaded. Convenient for runtime functions that only have the machine at hand.
    pub fn of_loaded(
        machine: &'a Machine,
        mem: *const u8,
        mem_len: usize,
        stack: *const u8,
        stack_len: usize,
    ) -> Option<Self> {
        let program = machine.program.as_ref()?;
        Some(Self::new(machine, program, mem, mem_len, stack, stack_len))
    }

    /// Checks an access of `size` bytes at `base + off` by the instruction at `pc` and returns
    /// the effective address.
    ///
    /// Errors: [`ExecError::AddressOverflow`] / [`ExecError::AddressUnderflow`] when
    /// `base + off` wraps (always checked), [`ExecError::IntegerOverflow`] when `addr + size`
    /// wraps, and [`ExecError::OutOfBounds`] when bounds checking is on and no region holds
    /// the whole access.
    #[inline(always)]
    pub fn check(
        &self,
        base: u64,
        off: i16,
        size: usize,
        access: Access,
        pc: usize,
    ) -> Result<u64, ExecError> {
        let addr = base.wrapping_add(off as i64 as u64);
        if off >= 0 {
            if addr < base {
                return Err(ExecError::AddressOverflow { pc, access });
            }
        } else if addr > base {
            return Err(ExecError::AddressUnderflow { pc, access });
        }
        let Some(end) = addr.checked_add(size as u64) else {
            return Err(ExecError::IntegerOverflow {
                pc,
                access,
                addr,
                size,
            });
        };
        if !self.bounds_check
            || (addr >= self.mem_start && end <= self.mem_end && self.mem_start != 0)
            || (addr >= self.stack_start && end <= self.stack_end)
        {
            return Ok(addr);
        }
        self.check_slow(addr, end, size, access, pc)
    }

    /// The rest of the region list: data sections, then the bounds callback.
    #[cold]
    #[inline(never)]
    fn check_slow(
        &self,
        addr: u64,
        end: u64,
        size: usize,
        access: Access,
        pc: usize,
    ) -> Result<u64, ExecError> {
        let in_section = self.sections.iter().any(|section| {
            let start = section.addr();
            let section_end = start.saturating_add(section.len() as u64);
            (access == Access::Load || section.writable()) && addr >= start && end <= section_end
        });
        if in_section
            || self.extra.iter().any(|r| r.permits(addr, end, access))
            || self.in_map_value(addr, end)
        {
            return Ok(addr);
        }
        if let Some(callback) = self.callback
            && callback(addr, size as u64)
        {
            return Ok(addr);
        }
        Err(ExecError::OutOfBounds {
            pc,
            access,
            addr,
            size,
            mem: self.mem_start,
            mem_len: self.mem_len,
            stack: self.stack_start,
            // uBPF always prints its compile-time stack size here.
            stack_len: STACK_SIZE,
        })
    }

    /// Whether `[addr, end)` lies inside one map value or live ring-buffer reservation of the
    /// loaded program (`docs/maps.md`). Maps need `std`; without it there are none.
    fn in_map_value(&self, addr: u64, end: u64) -> bool {
        #[cfg(feature = "std")]
        {
            self.maps.is_some_and(|maps| maps.allows(addr, end))
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = (addr, end);
            false
        }
    }

    /// Whether `[addr, addr + size)` lies inside the stack (used by the undefined-behaviour
    /// check to track written stack bytes).
    pub fn in_stack(&self, addr: u64, size: usize) -> bool {
        addr >= self.stack_start
            && addr
                .checked_add(size as u64)
                .is_some_and(|end| end <= self.stack_end)
    }
}

/// Loads `size` (1, 2, 4 or 8) bytes at `addr` in host order, zero-extended: the one raw
/// read of program memory both engines' Rust paths (interpreter, bulk idioms, packet loads)
/// share.
///
/// # Safety
/// `addr` must be readable for `size` bytes (ensured by the bounds check when it is on; with
/// it off the embedder has accepted raw host accesses, as in uBPF).
#[inline(always)]
pub(crate) unsafe fn load(addr: u64, size: usize) -> u64 {
    let p = addr as *const u8;
    // Each arm: SAFETY forwarded to the caller's contract; unaligned reads are allowed.
    match size {
        // SAFETY: see above.
        1 => u64::from(unsafe { p.read() }),
        // SAFETY: see above.
        2 => u64::from(unsafe { p.cast::<u16>().read_unaligned() }),
        // SAFETY: see above.
        4 => u64::from(unsafe { p.cast::<u32>().read_unaligned() }),
        // SAFETY: see above.
        _ => unsafe { p.cast::<u64>().read_unaligned() },
    }
}

/// Stores the low `size` bytes of `value` at `addr`.
///
/// # Safety
/// `addr` must be writable for `size` bytes (see [`load`]).
#[inline(always)]
pub(crate) unsafe fn store(addr: u64, size: usize, value: u64) {
    let p = addr as *mut u8;
    // Each arm: SAFETY forwarded to the caller's contract; unaligned writes are allowed.
    match size {
        // SAFETY: see above.
        1 => unsafe { p.write(value as u8) },
        // SAFETY: see above.
        2 => unsafe { p.cast::<u16>().write_unaligned(value as u16) },
        // SAFETY: see above.
        4 => unsafe { p.cast::<u32>().write_unaligned(value as u32) },
        // SAFETY: see above.
        _ => unsafe { p.cast::<u64>().write_unaligned(value) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::Insn;
    #[allow(unused_imports)]
    use crate::test_prelude::*;

    fn program() -> Program {
        Program {
            insns: vec![Insn::new(0x95, 0, 0, 0, 0)],
            functions: Vec::new(),
            stack_reach: 0,
            calls_helpers: false,
            data_sections: vec![
                crate::program::DataSection::new(".rodata", &[1, 2, 3, 4], 4, false),
                crate::program::DataSection::new(".data", &[0; 8], 8, true),
            ],
        }
    }

    #[test]
    fn raw_regions_refuse_lengths_no_buffer_has() {
        let data = [0u8; 16];
        let ptr = data.as_ptr();
        let too_long = isize::MAX as usize + 1;
        // SAFETY: each call below with a bad length is refused before a region exists, and
        // the accepted one covers `data` exactly; no region is ever accessed.
        let err = unsafe { MemRegion::from_raw(ptr, too_long, true, "data") }.unwrap_err();
        assert_eq!(
            err,
            ExecError::InvalidBuffer {
                buffer: "data",
                len: too_long
            }
        );
        assert!(
            err.to_string()
                .starts_with("uBPF error: data buffer of 9223372036854775808 bytes")
        );
        let near_top = (usize::MAX - 7) as *const u8;
        // SAFETY: refused before anything could read through it.
        let wrapping = unsafe { MemRegion::from_raw(near_top, 16, false, "data") };
        assert!(wrapping.is_err());
        // SAFETY: as above.
        let huge = unsafe { MemRegion::from_raw(ptr, usize::MAX, false, "data") };
        assert!(huge.is_err());
        // SAFETY: `ptr` is the start of a 16-byte buffer that outlives the region.
        let region = unsafe { MemRegion::from_raw(ptr, 16, false, "data") }.unwrap();
        let start = ptr as u64;
        assert!(region.permits(start + 8, start + 16, Access::Load));
        assert!(!region.permits(start + 8, start + 17, Access::Load));
        assert!(!region.permits(start, start + 1, Access::Store));
    }

    #[test]
    fn mem_stack_and_wraparound() {
        let vm = Machine::default();
        let prog = program();
        let mut mem = [0u8; 16];
        let stack = [0u8; 64];
        let r = Regions::new(&vm, &prog, mem.as_mut_ptr(), 16, stack.as_ptr(), 64);
        let m = mem.as_ptr() as u64;
        let s = stack.as_ptr() as u64;
        assert_eq!(r.check(m, 8, 8, Access::Load, 0), Ok(m + 8));
        assert!(matches!(
            r.check(m, 9, 8, Access::Load, 3),
            Err(ExecError::OutOfBounds {
                pc: 3,
                size: 8,
                stack_len: 4096,
                ..
            })
        ));
        assert_eq!(r.check(s + 64, -1, 1, Access::Store, 0), Ok(s + 63));
        let oob = r.check(s + 64, 0, 1, Access::Store, 0).unwrap_err();
        assert!(
            oob.to_string()
                .starts_with("uBPF error: out of bounds memory store at PC 0")
        );
        assert!(oob.to_string().contains("/16 stack "));
        assert!(oob.to_string().ends_with("/4096"));
        assert_eq!(
            r.check(u64::MAX - 15, 16, 1, Access::Store, 1),
            Err(ExecError::AddressOverflow {
                pc: 1,
                access: Access::Store
            })
        );
        assert_eq!(
            r.check(0, -1, 1, Access::Load, 1),
            Err(ExecError::AddressUnderflow {
                pc: 1,
                access: Access::Load
            })
        );
        assert_eq!(
            r.check(u64::MAX, 0, 1, Access::Store, 2)
                .unwrap_err()
                .to_string(),
            "uBPF error: integer overflow in store at PC 2, addr 0xffffffffffffffff, size 1"
        );
    }

    #[test]
    fn unchecked_still_catches_wraparound() {
        let mut vm = Machine::default();
        vm.config.bounds_check = false;
        let prog = program();
        let r = Regions::new(&vm, &prog, core::ptr::null(), 0, core::ptr::null(), 0);
        assert_eq!(r.check(0x1000, 0, 8, Access::Load, 0), Ok(0x1000));
        assert!(r.check(0, -1, 1, Access::Load, 0).is_err());
    }

    #[test]
    fn null_mem_is_not_a_region() {
        let vm = Machine::default();
        let prog = program();
        let stack = [0u8; 8];
        let r = Regions::new(&vm, &prog, core::ptr::null(), 100, stack.as_ptr(), 8);
        assert!(r.check(0, 0, 1, Access::Load, 0).is_err());
        assert!(
            r.check(0, 8, 1, Access::Load, 0)
                .unwrap_err()
                .to_string()
                .contains("mem (nil)/100")
        );
    }

    #[test]
    fn extra_regions_follow_their_borrow() {
        let vm = Machine::default();
        let prog = program();
        let stack = [0u8; 8];
        let mut rw = [0u8; 8];
        let ro = [0u8; 4];
        let (rw_addr, ro_addr) = (rw.as_ptr() as u64, ro.as_ptr() as u64);
        let extra = [MemRegion::writable(&mut rw), MemRegion::read_only(&ro)];
        let r =
            Regions::new(&vm, &prog, core::ptr::null(), 0, stack.as_ptr(), 8).with_extra(&extra);
        assert_eq!(r.check(rw_addr, 0, 8, Access::Store, 0), Ok(rw_addr));
        assert!(r.check(rw_addr, 1, 8, Access::Load, 0).is_err());
        assert_eq!(r.check(ro_addr, 0, 4, Access::Load, 0), Ok(ro_addr));
        assert!(r.check(ro_addr, 0, 4, Access::Store, 0).is_err());
    }

    #[test]
    fn the_packet_is_mem_unless_an_extra_region_is_marked() {
        let vm = Machine::default();
        let prog = program();
        let mut mem = [0u8; 16];
        let pkt = [0u8; 4];
        let (m, p) = (mem.as_ptr() as u64, pkt.as_ptr() as u64);
        let r = Regions::new(&vm, &prog, mem.as_mut_ptr(), 16, core::ptr::null(), 0);
        assert_eq!(r.packet(), (m, m + 16));
        let plain = [MemRegion::read_only(&pkt)];
        assert_eq!(r.with_extra(&plain).packet(), (m, m + 16));
        let marked = [MemRegion::read_only(&pkt).as_packet()];
        assert_eq!(r.with_extra(&marked).packet(), (p, p + 4));
        let none = Regions::new(&vm, &prog, core::ptr::null_mut(), 5, core::ptr::null(), 0);
        assert_eq!(none.packet(), (0, 0));
    }

    #[test]
    fn data_sections_and_callback() {
        let vm = Machine {
            bounds_check_fn: Some(Box::new(|addr, size| addr == 0x5000 && size <= 4)),
            ..Machine::default()
        };
        let prog = program();
        let stack = [0u8; 8];
        let r = Regions::new(&vm, &prog, core::ptr::null(), 0, stack.as_ptr(), 8);
        let ro = prog.data_sections[0].addr();
        let rw = prog.data_sections[1].addr();
        assert_eq!(r.check(ro, 0, 4, Access::Load, 0), Ok(ro));
        assert!(r.check(ro, 0, 4, Access::Store, 0).is_err());
        assert!(r.check(ro, 1, 4, Access::Load, 0).is_err());
        assert_eq!(r.check(rw, 0, 8, Access::Store, 0), Ok(rw));
        assert_eq!(r.check(0x5000, 0, 4, Access::Store, 0), Ok(0x5000));
        assert!(r.check(0x5000, 0, 8, Access::Store, 0).is_err());
    }
}
