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
//! 4. a region accepted by the VM's bounds callback.
//!
//! [`Regions`] is a small `Copy` value built once per execution. The JIT can keep one in its
//! context and call [`Regions::check`] from an `extern "C"` runtime function on its slow path;
//! the interpreter calls it inline. The mem and stack comparisons come first and are cheap; the
//! rest lives in a cold function.

use crate::error::{Access, ExecError};
use crate::isa::STACK_SIZE;
use crate::program::Program;
use crate::vm::Vm;

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
    /// The VM, for its bounds callback.
    pub vm: &'a Vm,
    /// The running program, for its data sections.
    pub program: &'a Program,
}

impl std::fmt::Debug for Regions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
    /// address space is clamped to its end (such a buffer cannot exist).
    pub fn new(
        vm: &'a Vm,
        program: &'a Program,
        mem: *const u8,
        mem_len: usize,
        stack: *const u8,
        stack_len: usize,
    ) -> Self {
        let mem_start = mem as u64;
        let (mem_start, mem_end) = if mem.is_null() {
            (0, 0)
        } else {
            (mem_start, mem_start.saturating_add(mem_len as u64))
        };
        let stack_start = stack as u64;
        Regions {
            mem_start,
            mem_end,
            mem_len,
            stack_start,
            stack_end: stack_start.saturating_add(stack_len as u64),
            bounds_check: vm.config().bounds_check,
            vm,
            program,
        }
    }

    /// The regions of one execution of `vm`'s loaded program, or `None` when nothing is
    /// loaded. Convenient for runtime functions that only have the VM at hand.
    pub fn of_loaded(
        vm: &'a Vm,
        mem: *const u8,
        mem_len: usize,
        stack: *const u8,
        stack_len: usize,
    ) -> Option<Self> {
        let program = vm.program.as_ref()?;
        Some(Self::new(vm, program, mem, mem_len, stack, stack_len))
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
        let in_section = self.program.data_sections.iter().any(|section| {
            let start = section.addr();
            let section_end = start.saturating_add(section.len() as u64);
            (access == Access::Load || section.writable()) && addr >= start && end <= section_end
        });
        if in_section {
            return Ok(addr);
        }
        if let Some(callback) = &self.vm.bounds_check_fn
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

    /// Whether `[addr, addr + size)` lies inside the stack (used by the undefined-behaviour
    /// check to track written stack bytes).
    pub fn in_stack(&self, addr: u64, size: usize) -> bool {
        addr >= self.stack_start
            && addr
                .checked_add(size as u64)
                .is_some_and(|end| end <= self.stack_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::Insn;

    fn program() -> Program {
        Program {
            insns: vec![Insn::new(0x95, 0, 0, 0, 0)],
            functions: Vec::new(),
            data_sections: vec![
                crate::program::DataSection::new(".rodata", &[1, 2, 3, 4], 4, false),
                crate::program::DataSection::new(".data", &[0; 8], 8, true),
            ],
        }
    }

    #[test]
    fn mem_stack_and_wraparound() {
        let vm = Vm::new();
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
        let mut vm = Vm::new();
        vm.config_mut().bounds_check = false;
        let prog = program();
        let r = Regions::new(&vm, &prog, std::ptr::null(), 0, std::ptr::null(), 0);
        assert_eq!(r.check(0x1000, 0, 8, Access::Load, 0), Ok(0x1000));
        assert!(r.check(0, -1, 1, Access::Load, 0).is_err());
    }

    #[test]
    fn null_mem_is_not_a_region() {
        let vm = Vm::new();
        let prog = program();
        let stack = [0u8; 8];
        let r = Regions::new(&vm, &prog, std::ptr::null(), 100, stack.as_ptr(), 8);
        assert!(r.check(0, 0, 1, Access::Load, 0).is_err());
        assert!(
            r.check(0, 8, 1, Access::Load, 0)
                .unwrap_err()
                .to_string()
                .contains("mem (nil)/100")
        );
    }

    #[test]
    fn data_sections_and_callback() {
        let mut vm = Vm::new();
        vm.set_bounds_check_fn(Box::new(|addr, size| addr == 0x5000 && size <= 4))
            .expect("first registration");
        let prog = program();
        let stack = [0u8; 8];
        let r = Regions::new(&vm, &prog, std::ptr::null(), 0, stack.as_ptr(), 8);
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
