//! uBPF's safe execution profile (`docs/semantics.md`, "Safe profile"): the interpreter tracks, per
//! register and per spilled stack slot, whether a value is a scalar or a pointer into a known
//! region, and allows memory accesses only through pointers, inside their region and with the
//! region's permissions. The bounds-check toggle and the legacy bounds callback do not apply.
//!
//! This module holds the registry (safe helpers' result metadata and host regions, stored in
//! the [`Vm`]), its registration methods, and the per-execution tag state the interpreter loop
//! drives.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::ExecError;

use crate::exec::machine::ConfigError;
use crate::isa::{Insn, MAX_EXT_FUNCS, alu, class, op, source};

/// Region id of the input memory (`[mem, mem + mem_len)`), reserved.
pub const INPUT_REGION_ID: u32 = 0xFFFF_FFFE;
/// Region id of the eBPF stack, reserved.
pub const STACK_REGION_ID: u32 = 0xFFFF_FFFF;
/// Permission bit: loads.
pub const PERM_READ: u32 = 1;
/// Permission bit: stores.
pub const PERM_WRITE: u32 = 2;
/// Permission bit: atomics (which also need [`PERM_WRITE`]).
pub const PERM_ATOMIC: u32 = 4;
/// Most regions that can be registered (uBPF's slot count).
pub const MAX_SAFE_REGIONS: usize = 64;
/// Bytes a stack pointer may move beyond the stack by pointer arithmetic.
const STACK_SLACK: u64 = 32767;

/// What kind of value a safe region hands out (uBPF's `enum ubpf_safe_region_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafeRegionKind {
    /// Helpers return pointers into it.
    Pointer,
    /// Helpers return opaque handles into it.
    Handle,
}

/// A host memory region that helper results may point into (uBPF's `struct ubpf_safe_region`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafeRegion {
    /// Region id (not `INPUT_REGION_ID` or `STACK_REGION_ID`).
    pub id: u32,
    /// First byte.
    pub base: u64,
    /// Length in bytes (non-zero).
    pub size: u64,
    /// Pointer or handle region.
    pub kind: SafeRegionKind,
    /// `PERM_*` bits.
    pub permissions: u32,
}

/// What a safe helper returns (uBPF's `enum ubpf_safe_helper_result_kind` plus its region).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafeHelperResult {
    /// A plain number.
    Scalar,
    /// A pointer into region `region_id` with `region_size` bytes available.
    Pointer {
        /// The region the result points into.
        region_id: u32,
        /// Bytes that must be available from the returned address.
        region_size: u64,
    },
    /// A handle into region `region_id` with `region_size` bytes available.
    Handle {
        /// The region the result points into.
        region_id: u32,
        /// Bytes that must be available from the returned address.
        region_size: u64,
    },
}

/// Safe-profile metadata registered on a VM.
#[derive(Debug, Clone)]
pub struct SafeRegistry {
    helpers: [Option<SafeHelperResult>; MAX_EXT_FUNCS],
    regions: Vec<SafeRegion>,
}

impl Default for SafeRegistry {
    fn default() -> Self {
        SafeRegistry {
            helpers: [None; MAX_EXT_FUNCS],
            regions: Vec::new(),
        }
    }
}

impl SafeRegistry {
    /// Records what helper `index` returns, for the safe profile. Refused for an index of 64
    /// or more, and for pointer/handle results with `region_size == 0` or a reserved region
    /// id. (The VM also registers the helper in its ordinary table.)
    pub(crate) fn check_helper(index: u32, result: SafeHelperResult) -> Result<(), ConfigError> {
        if let SafeHelperResult::Pointer {
            region_id,
            region_size,
        }
        | SafeHelperResult::Handle {
            region_id,
            region_size,
        } = result
            && (region_size == 0 || region_id == INPUT_REGION_ID || region_id == STACK_REGION_ID)
        {
            return Err(ConfigError::Unsupported("this safe helper result"));
        }
        // The safe profile keeps uBPF's 64 helper slots.
        if index as usize >= MAX_EXT_FUNCS {
            return Err(ConfigError::HelperIndexOutOfRange(index));
        }
        Ok(())
    }

    /// Records `result` for helper `index` (checked with [`SafeRegistry::check_helper`]).
    pub(crate) fn set_helper(&mut self, index: u32, result: SafeHelperResult) {
        if let Some(slot) = self.helpers.get_mut(index as usize) {
            *slot = Some(result);
        }
    }

    /// Registers (or, for a known id, replaces) a host region that safe helpers' results may
    /// point into. Refused for a reserved id, `size == 0`, `base == 0`, unknown permission
    /// bits, a region that wraps the address space, or when all 64 slots are taken.
    pub(crate) fn add_region(&mut self, region: SafeRegion) -> Result<(), ConfigError> {
        let invalid = region.id == INPUT_REGION_ID
            || region.id == STACK_REGION_ID
            || region.size == 0
            || region.base == 0
            || region.permissions & !(PERM_READ | PERM_WRITE | PERM_ATOMIC) != 0
            || region.base.checked_add(region.size).is_none();
        if invalid {
            return Err(ConfigError::Unsupported("this safe region"));
        }
        let regions = &mut self.regions;
        if let Some(existing) = regions.iter_mut().find(|r| r.id == region.id) {
            *existing = region;
        } else if regions.len() < MAX_SAFE_REGIONS {
            regions.push(region);
        } else {
            return Err(ConfigError::Unsupported("more than 64 safe regions"));
        }
        Ok(())
    }

    fn region(&self, id: u32) -> Option<&SafeRegion> {
        self.regions.iter().find(|r| r.id == id)
    }
}

/// The provenance of a register or spilled stack slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// A plain number; cannot be dereferenced.
    Scalar,
    /// A pointer into `[base, base + size)` of region `region` with `perms`.
    Pointer {
        region: u32,
        base: u64,
        size: u64,
        perms: u32,
    },
}

/// What a memory access needs (and how it is named in messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SafeAccess {
    /// `ldx*`: needs READ.
    Load,
    /// `st*`/`stx*`: needs WRITE.
    Store,
    /// Atomics: need WRITE and ATOMIC.
    Atomic,
}

impl SafeAccess {
    fn name(self) -> &'static str {
        match self {
            SafeAccess::Load => "load",
            SafeAccess::Store => "store",
            SafeAccess::Atomic => "atomic",
        }
    }

    fn needs(self) -> u32 {
        match self {
            SafeAccess::Load => PERM_READ,
            SafeAccess::Store => PERM_WRITE,
            SafeAccess::Atomic => PERM_WRITE | PERM_ATOMIC,
        }
    }
}

fn violation(pc: usize, what: impl Into<String>) -> ExecError {
    ExecError::SafeMode {
        pc,
        what: what.into(),
    }
}

/// Per-execution tag state of the safe profile.
pub(crate) struct SafeState<'a> {
    registry: &'a SafeRegistry,
    /// Tag of each register.
    pub(crate) tags: [Tag; 16],
    /// Tag of each 8-byte stack slot written by an aligned `stxdw` (slot 0 = lowest address).
    spills: Vec<Tag>,
    /// r6–r9 tags of each active local call's caller.
    calls: Vec<[Tag; 4]>,
    stack_start: u64,
    stack_len: u64,
}

impl<'a> SafeState<'a> {
    /// The entry state: r1 points into the input (when there is one), r10 into the stack.
    pub(crate) fn new(
        registry: &'a SafeRegistry,
        mem: u64,
        mem_len: u64,
        stack_start: u64,
        stack_len: u64,
    ) -> Self {
        let mut tags = [Tag::Scalar; 16];
        if mem != 0 && mem_len > 0 {
            tags[1] = Tag::Pointer {
                region: INPUT_REGION_ID,
                base: mem,
                size: mem_len,
                perms: PERM_READ | PERM_WRITE | PERM_ATOMIC,
            };
        }
        tags[10] = Tag::Pointer {
            region: STACK_REGION_ID,
            base: stack_start,
            size: stack_len,
            perms: PERM_READ | PERM_WRITE | PERM_ATOMIC,
        };
        SafeState {
            registry,
            tags,
            spills: vec![Tag::Scalar; usize::try_from(stack_len / 8).unwrap_or(0)],
            calls: Vec::new(),
            stack_start,
            stack_len,
        }
    }

    fn tag(&self, reg: u8) -> Tag {
        self.tags[usize::from(reg & 0x0f)]
    }

    fn set(&mut self, reg: u8, tag: Tag) {
        self.tags[usize::from(reg & 0x0f)] = tag;
    }

    /// Checks a dereference of `base_reg` (holding `base`) + `off` of `size` bytes and returns
    /// the address.
    pub(crate) fn check_access(
        &self,
        base_reg: u8,
        base: u64,
        off: i16,
        size: usize,
        access: SafeAccess,
        pc: usize,
    ) -> Result<u64, ExecError> {
        let name = access.name();
        let Tag::Pointer {
            base: region_base,
            size: region_size,
            perms,
            ..
        } = self.tag(base_reg)
        else {
            return Err(violation(pc, format!("{name} requires a pointer")));
        };
        if perms & access.needs() != access.needs() {
            return Err(violation(pc, format!("{name} is not permitted")));
        }
        let addr = base.wrapping_add(off as i64 as u64);
        if off >= 0 && addr < base {
            return Err(violation(pc, format!("address overflow in {name}")));
        }
        if off < 0 && addr > base {
            return Err(violation(pc, format!("address underflow in {name}")));
        }
        let Some(region_end) = region_base.checked_add(region_size) else {
            return Err(violation(pc, format!("invalid region metadata in {name}")));
        };
        // An access that starts exactly at the region's end overruns it, as in uBPF
        // (docs/semantics.md).
        if addr < region_base || addr > region_end {
            return Err(violation(pc, format!("{name} is out of bounds")));
        }
        if addr
            .checked_add(size as u64)
            .is_none_or(|end| end > region_end)
        {
            return Err(violation(pc, format!("{name} overruns region")));
        }
        Ok(addr)
    }

    /// Stack slots overlapped by `[addr, addr + size)`, if it touches the stack.
    fn slots(&self, addr: u64, size: usize) -> Option<core::ops::Range<usize>> {
        let offset = addr.checked_sub(self.stack_start)?;
        if offset >= self.stack_len {
            return None;
        }
        let first = usize::try_from(offset / 8).ok()?;
        let last = usize::try_from((offset + size as u64 - 1) / 8).ok()?;
        Some(first..last.saturating_add(1).min(self.spills.len()))
    }

    /// Whether `addr` starts a stack slot (8-byte aligned relative to the stack's start, so the
    /// rule does not depend on where the caller's stack buffer happens to lie).
    fn slot_aligned(&self, addr: u64) -> bool {
        addr.wrapping_sub(self.stack_start).is_multiple_of(8)
    }

    /// Records a store of `size` bytes at `addr`: an aligned 8-byte store of register `src`
    /// (`Some`) remembers its tag, anything else forgets the overlapped slots.
    pub(crate) fn after_store(&mut self, addr: u64, size: usize, src: Option<u8>) {
        let Some(range) = self.slots(addr, size) else {
            return;
        };
        let spilled = match src {
            Some(reg) if size == 8 && self.slot_aligned(addr) => self.tag(reg),
            _ => Tag::Scalar,
        };
        for slot in range {
            self.spills[slot] = spilled;
        }
    }

    /// Sets the tag of a load's destination: a restored spill for an aligned 8-byte load from
    /// a spilled stack slot, otherwise a scalar.
    pub(crate) fn after_load(&mut self, dst: u8, addr: u64, size: usize) {
        let tag = match self.slots(addr, size) {
            Some(range) if size == 8 && self.slot_aligned(addr) => {
                self.spills.get(range.start).copied().unwrap_or(Tag::Scalar)
            }
            _ => Tag::Scalar,
        };
        self.set(dst, tag);
    }

    /// Tag effects of an ALU instruction (or `lddw`), checked before it executes with the
    /// current register values. `result` is the value the instruction will produce (needed to
    /// keep pointer arithmetic inside its region).
    pub(crate) fn before_alu(
        &mut self,
        insn: &Insn,
        reg: &[u64; 16],
        pc: usize,
    ) -> Result<(), ExecError> {
        if insn.opc == op::LDDW {
            self.set(insn.dst, Tag::Scalar);
            return Ok(());
        }
        if insn.class() == class::ALU {
            // Any 32-bit result is a number.
            self.set(insn.dst, Tag::Scalar);
            return Ok(());
        }
        if insn.class() != class::ALU64 {
            return Ok(());
        }
        let uses_reg = insn.opc & source::MASK == source::X;
        let dst_tag = self.tag(insn.dst);
        let src_tag = if uses_reg {
            self.tag(insn.src)
        } else {
            Tag::Scalar
        };
        let dst_val = reg[usize::from(insn.dst & 0x0f)];
        let src_val = if uses_reg {
            reg[usize::from(insn.src & 0x0f)]
        } else {
            insn.imm as i64 as u64
        };
        let new_tag = match (insn.opc & alu::MASK, dst_tag, src_tag) {
            // mov: copies the tag; movsx needs a scalar.
            (alu::MOV, _, Tag::Pointer { .. }) if insn.off != 0 => {
                return Err(violation(pc, "sign-ext move requires a scalar source"));
            }
            (alu::MOV, _, tag) => tag,
            (_, Tag::Scalar, Tag::Scalar) => Tag::Scalar,
            // add: pointer + scalar (either order).
            (alu::ADD, Tag::Pointer { .. }, Tag::Pointer { .. }) => {
                return Err(violation(pc, "invalid add operand"));
            }
            (alu::ADD, ptr @ Tag::Pointer { .. }, Tag::Scalar)
            | (alu::ADD, Tag::Scalar, ptr @ Tag::Pointer { .. }) => {
                within(ptr, dst_val.wrapping_add(src_val), pc)?
            }
            // sub: pointer - scalar, or pointer - pointer in one region.
            (alu::SUB, ptr @ Tag::Pointer { .. }, Tag::Scalar) => {
                within(ptr, dst_val.wrapping_sub(src_val), pc)?
            }
            (alu::SUB, Tag::Pointer { region: a, .. }, Tag::Pointer { region: b, .. })
                if a == b =>
            {
                Tag::Scalar
            }
            (alu::SUB, _, _) => return Err(violation(pc, "invalid sub operand")),
            _ => return Err(violation(pc, "ALU operation requires scalar operands")),
        };
        self.set(insn.dst, new_tag);
        Ok(())
    }

    /// Checks that helper `index` has metadata before it is called.
    pub(crate) fn before_helper(
        &self,
        index: u64,
        pc: usize,
    ) -> Result<SafeHelperResult, ExecError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.registry.helpers.get(i).copied().flatten())
            .ok_or_else(|| violation(pc, format!("helper metadata is missing for helper {index}")))
    }

    /// Tags a helper's result in r0 (validating pointer and handle results) and makes r1–r5
    /// scalars.
    pub(crate) fn after_helper(
        &mut self,
        index: u64,
        result: SafeHelperResult,
        value: u64,
        pc: usize,
    ) -> Result<(), ExecError> {
        for r in 1..=5 {
            self.tags[r] = Tag::Scalar;
        }
        let (region_id, region_size, kind) = match result {
            SafeHelperResult::Scalar => {
                self.tags[0] = Tag::Scalar;
                return Ok(());
            }
            SafeHelperResult::Pointer {
                region_id,
                region_size,
            } => (region_id, region_size, SafeRegionKind::Pointer),
            SafeHelperResult::Handle {
                region_id,
                region_size,
            } => (region_id, region_size, SafeRegionKind::Handle),
        };
        let Some(region) = self.registry.region(region_id) else {
            return Err(violation(
                pc,
                format!("helper {index} references unknown region {region_id}"),
            ));
        };
        if region.kind != kind {
            return Err(violation(
                pc,
                format!("helper {index} result kind does not match region {region_id}"),
            ));
        }
        let inside = value >= region.base
            && value
                .checked_add(region_size)
                .is_some_and(|end| end <= region.base + region.size);
        if !inside {
            return Err(violation(
                pc,
                format!("helper {index} returned an out-of-range pointer"),
            ));
        }
        self.tags[0] = Tag::Pointer {
            region: region.id,
            base: region.base,
            size: region.size,
            perms: region.permissions,
        };
        Ok(())
    }

    /// Marks register `reg` as holding a number (atomics' fetched values).
    pub(crate) fn set_scalar(&mut self, reg: u8) {
        self.set(reg, Tag::Scalar);
    }

    /// A local call: remembers the caller's r6–r9 tags.
    pub(crate) fn enter_call(&mut self) {
        self.calls
            .push([self.tags[6], self.tags[7], self.tags[8], self.tags[9]]);
    }

    /// A local call returned: r1–r5 are scalars and r6–r9 get the caller's tags back.
    pub(crate) fn leave_call(&mut self) {
        for r in 1..=5 {
            self.tags[r] = Tag::Scalar;
        }
        if let Some(saved) = self.calls.pop() {
            self.tags[6..10].copy_from_slice(&saved);
        }
    }
}

/// `ptr` moved to `addr`, if that stays within its region (`[base, base + size]`, with
/// ±32767 bytes of slack for stack pointers).
fn within(ptr: Tag, addr: u64, pc: usize) -> Result<Tag, ExecError> {
    let Tag::Pointer {
        region, base, size, ..
    } = ptr
    else {
        return Ok(Tag::Scalar);
    };
    let slack = if region == STACK_REGION_ID {
        STACK_SLACK
    } else {
        0
    };
    let low = base.saturating_sub(slack);
    let high = base.saturating_add(size).saturating_add(slack);
    if addr < low || addr > high {
        return Err(violation(pc, "pointer arithmetic escaped its region"));
    }
    Ok(ptr)
}
