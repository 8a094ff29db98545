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
use crate::exec::helpers::HelperFn;
use crate::isa::{Insn, MAX_EXT_FUNCS};
use crate::vm::{ConfigError, Vm};

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
    fn region(&self, id: u32) -> Option<&SafeRegion> {
        self.regions.iter().find(|r| r.id == id)
    }
}

impl Vm {
    /// Registers helper `f` at `index` for the safe profile, with what its result is
    /// (uBPF's `ubpf_register_safe_helper`). The helper is also registered in the ordinary
    /// table under `name`.
    ///
    /// Refused for an index of 64 or more, and for pointer/handle results with
    /// `region_size == 0` or a reserved region id.
    pub fn register_safe_helper(
        &mut self,
        index: u32,
        name: Option<&str>,
        f: HelperFn,
        result: SafeHelperResult,
    ) -> Result<(), ConfigError> {
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
        self.register_helper(index, name, f)?;
        if let Some(slot) = self.safe.helpers.get_mut(index as usize) {
            *slot = Some(result);
        }
        Ok(())
    }

    /// Registers (or, for a known id, replaces) a host region that safe helpers' results may
    /// point into (uBPF's `ubpf_register_safe_region`).
    ///
    /// Refused for a reserved id, `size == 0`, `base == 0`, unknown permission bits, a region
    /// that wraps the address space, or when all 64 slots are taken.
    pub fn register_safe_region(&mut self, region: SafeRegion) -> Result<(), ConfigError> {
        let invalid = region.id == INPUT_REGION_ID
            || region.id == STACK_REGION_ID
            || region.size == 0
            || region.base == 0
            || region.permissions & !(PERM_READ | PERM_WRITE | PERM_ATOMIC) != 0
            || region.base.checked_add(region.size).is_none();
        if invalid {
            return Err(ConfigError::Unsupported("this safe region"));
        }
        let regions = &mut self.safe.regions;
        if let Some(existing) = regions.iter_mut().find(|r| r.id == region.id) {
            *existing = region;
        } else if regions.len() < MAX_SAFE_REGIONS {
            regions.push(region);
        } else {
            return Err(ConfigError::Unsupported("more than 64 safe regions"));
        }
        Ok(())
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
        let class = insn.opc & 0x07;
        if insn.opc == 0x18 {
            self.set(insn.dst, Tag::Scalar);
            return Ok(());
        }
        if class == 0x04 {
            // Any 32-bit result is a number.
            self.set(insn.dst, Tag::Scalar);
            return Ok(());
        }
        if class != 0x07 {
            return Ok(());
        }
        let uses_reg = insn.opc & 0x08 != 0;
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
        let op = insn.opc & 0xf0;
        let new_tag = match (op, dst_tag, src_tag) {
            // mov: copies the tag; movsx needs a scalar.
            (0xb0, _, Tag::Pointer { .. }) if insn.off != 0 => {
                return Err(violation(pc, "sign-ext move requires a scalar source"));
            }
            (0xb0, _, tag) => tag,
            (_, Tag::Scalar, Tag::Scalar) => Tag::Scalar,
            // add: pointer + scalar (either order).
            (0x00, Tag::Pointer { .. }, Tag::Pointer { .. }) => {
                return Err(violation(pc, "invalid add operand"));
            }
            (0x00, ptr @ Tag::Pointer { .. }, Tag::Scalar)
            | (0x00, Tag::Scalar, ptr @ Tag::Pointer { .. }) => {
                within(ptr, dst_val.wrapping_add(src_val), pc)?
            }
            // sub: pointer - scalar, or pointer - pointer in one region.
            (0x10, ptr @ Tag::Pointer { .. }, Tag::Scalar) => {
                within(ptr, dst_val.wrapping_sub(src_val), pc)?
            }
            (0x10, Tag::Pointer { region: a, .. }, Tag::Pointer { region: b, .. }) if a == b => {
                Tag::Scalar
            }
            (0x10, _, _) => return Err(violation(pc, "invalid sub operand")),
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

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use crate::test_prelude::*;
    use std::ffi::c_void;

    use super::*;
    use crate::isa::encode_slots;
    use crate::vm::ExecutionProfile;

    fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn::new(opc, dst, src, off, imm)
    }
    fn exit() -> Insn {
        ins(0x95, 0, 0, 0, 0)
    }

    fn safe_vm() -> Vm {
        let mut vm = Vm::new();
        vm.config_mut().profile = ExecutionProfile::Safe;
        vm.set_error_printer(Some(Box::new(|_| {})));
        vm
    }

    fn run(vm: &mut Vm, insns: &[Insn], mem: &mut [u8]) -> Result<u64, String> {
        vm.unload().unwrap();
        vm.load(&encode_slots(insns)).map_err(|e| e.to_string())?;
        vm.execute(mem).map_err(|e| e.to_string())
    }

    #[test]
    fn accesses_need_pointers_inside_their_region() {
        let mut vm = safe_vm();
        let mut mem = [1u8, 2, 3, 4, 5, 6, 7, 8];
        // Through r1 (input) and r10 (stack): fine.
        assert_eq!(
            run(&mut vm, &[ins(0x71, 0, 1, 7, 0), exit()], &mut mem),
            Ok(8)
        );
        assert_eq!(
            run(
                &mut vm,
                &[ins(0x7a, 10, 0, -8, 9), ins(0x79, 0, 10, -8, 0), exit()],
                &mut mem
            ),
            Ok(9)
        );
        // A scalar base.
        assert_eq!(
            run(
                &mut vm,
                &[ins(0xb7, 2, 0, 0, 64), ins(0x71, 0, 2, 0, 0), exit()],
                &mut mem
            ),
            Err("uBPF safe mode error: load requires a pointer at PC 1".into())
        );
        // Before the start, past the end, starting at the end, and overrunning it.
        assert_eq!(
            run(&mut vm, &[ins(0x72, 1, 0, -1, 0), exit()], &mut mem),
            Err("uBPF safe mode error: store is out of bounds at PC 0".into())
        );
        assert_eq!(
            run(&mut vm, &[ins(0x72, 1, 0, 9, 0), exit()], &mut mem),
            Err("uBPF safe mode error: store is out of bounds at PC 0".into())
        );
        assert_eq!(
            run(&mut vm, &[ins(0x72, 1, 0, 8, 0), exit()], &mut mem),
            Err("uBPF safe mode error: store overruns region at PC 0".into())
        );
        assert_eq!(
            run(&mut vm, &[ins(0x79, 0, 1, 4, 0), exit()], &mut mem),
            Err("uBPF safe mode error: load overruns region at PC 0".into())
        );
        // No memory: r1 is a scalar.
        assert_eq!(
            run(&mut vm, &[ins(0x71, 0, 1, 0, 0), exit()], &mut []),
            Err("uBPF safe mode error: load requires a pointer at PC 0".into())
        );
        // The bounds-check toggle does not matter.
        vm.config_mut().bounds_check = false;
        assert_eq!(
            run(&mut vm, &[ins(0x72, 10, 0, 0, 0), exit()], &mut mem),
            Err("uBPF safe mode error: store overruns region at PC 0".into())
        );
    }

    #[test]
    fn pointer_arithmetic_rules() {
        let mut vm = safe_vm();
        let mut mem = [0u8; 16];
        // pointer + scalar stays a pointer and can be used.
        assert_eq!(
            run(
                &mut vm,
                &[ins(0x07, 1, 0, 0, 15), ins(0x71, 0, 1, 0, 0), exit()],
                &mut mem
            ),
            Ok(0)
        );
        // ... but not beyond [base, base + size].
        assert_eq!(
            run(&mut vm, &[ins(0x07, 1, 0, 0, 17), exit()], &mut mem),
            Err("uBPF safe mode error: pointer arithmetic escaped its region at PC 0".into())
        );
        // Stack pointers get slack.
        assert_eq!(
            run(
                &mut vm,
                &[
                    ins(0xbf, 2, 10, 0, 0),
                    ins(0x07, 2, 0, 0, 100),
                    ins(0xb7, 0, 0, 0, 0),
                    exit()
                ],
                &mut mem
            ),
            Ok(0)
        );
        assert_eq!(
            run(&mut vm, &[ins(0x0f, 1, 10, 0, 0), exit()], &mut mem),
            Err("uBPF safe mode error: invalid add operand at PC 0".into())
        );
        assert_eq!(
            run(
                &mut vm,
                &[ins(0xb7, 2, 0, 0, 1), ins(0x1f, 2, 1, 0, 0), exit()],
                &mut mem
            ),
            Err("uBPF safe mode error: invalid sub operand at PC 1".into())
        );
        // pointer - pointer in one region is a scalar.
        assert_eq!(
            run(
                &mut vm,
                &[
                    ins(0xbf, 2, 1, 0, 0),
                    ins(0x07, 2, 0, 0, 5),
                    ins(0x1f, 2, 1, 0, 0),
                    ins(0xbf, 0, 2, 0, 0),
                    exit()
                ],
                &mut mem
            ),
            Ok(5)
        );
        assert_eq!(
            run(&mut vm, &[ins(0x57, 1, 0, 0, 0xff), exit()], &mut mem),
            Err("uBPF safe mode error: ALU operation requires scalar operands at PC 0".into())
        );
        assert_eq!(
            run(&mut vm, &[ins(0xbf, 2, 1, 32, 0), exit()], &mut mem),
            Err("uBPF safe mode error: sign-ext move requires a scalar source at PC 0".into())
        );
        // 32-bit results are scalars.
        assert_eq!(
            run(
                &mut vm,
                &[ins(0xbc, 2, 1, 0, 0), ins(0x71, 0, 2, 0, 0), exit()],
                &mut mem
            ),
            Err("uBPF safe mode error: load requires a pointer at PC 1".into())
        );
    }

    #[test]
    fn spills_keep_tags_until_overwritten() {
        let mut vm = safe_vm();
        let mut mem = [7u8; 8];
        let spill = [ins(0x7b, 10, 1, -8, 0), ins(0x79, 2, 10, -8, 0)];
        let mut prog = spill.to_vec();
        prog.extend([ins(0x71, 0, 2, 0, 0), exit()]);
        assert_eq!(run(&mut vm, &prog, &mut mem), Ok(7));
        let mut prog = vec![spill[0], ins(0x72, 10, 0, -5, 0), spill[1]];
        prog.extend([ins(0x71, 0, 2, 0, 0), exit()]);
        assert_eq!(
            run(&mut vm, &prog, &mut mem),
            Err("uBPF safe mode error: load requires a pointer at PC 3".into())
        );
    }

    #[test]
    fn spill_slots_are_relative_to_the_stack_start() {
        let mut vm = safe_vm();
        vm.load(&encode_slots(&[
            ins(0x7b, 10, 1, -8, 0),
            ins(0x79, 2, 10, -8, 0),
            ins(0x71, 0, 2, 0, 0),
            exit(),
        ]))
        .expect("loads");
        let mut mem = [5u8; 4];
        let mut buffer = [0u8; 65];
        // An external stack at an odd address: slots are still recognised.
        let stack = buffer[1..].as_mut_ptr();
        // SAFETY: `mem` and the 64-byte stack slice are valid for the call.
        let result = unsafe { vm.execute_raw(mem.as_mut_ptr(), mem.len(), stack, 64) };
        assert_eq!(result, Ok(5));
    }

    unsafe extern "C" fn give(p: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
        p
    }

    #[test]
    fn helpers_need_metadata_and_valid_results() {
        let mut vm = safe_vm();
        vm.register_helper(1, Some("plain"), give).expect("index");
        assert_eq!(
            run(&mut vm, &[ins(0x85, 0, 0, 0, 1), exit()], &mut []),
            Err("uBPF safe mode error: helper metadata is missing for helper 1 at PC 0".into())
        );
        let buffer = Box::new([3u8; 32]);
        let base = buffer.as_ptr() as u64;
        vm.register_safe_region(SafeRegion {
            id: 9,
            base,
            size: 32,
            kind: SafeRegionKind::Pointer,
            permissions: PERM_READ,
        })
        .expect("valid region");
        let result = SafeHelperResult::Pointer {
            region_id: 9,
            region_size: 8,
        };
        vm.register_safe_helper(2, Some("give"), give, result)
            .expect("valid helper");
        let lddw = |value: u64| {
            [
                ins(0x18, 1, 0, 0, value as u32 as i32),
                ins(0, 0, 0, 0, (value >> 32) as u32 as i32),
            ]
        };
        let call = |value: u64, tail: &[Insn]| {
            let mut p = lddw(value).to_vec();
            p.push(ins(0x85, 0, 0, 0, 2));
            p.extend_from_slice(tail);
            p
        };
        // A pointer result can be read through, not written.
        assert_eq!(
            run(
                &mut vm,
                &call(base + 24, &[ins(0x71, 0, 0, 7, 0), exit()]),
                &mut []
            ),
            Ok(3)
        );
        assert_eq!(
            run(
                &mut vm,
                &call(base, &[ins(0x72, 0, 0, 0, 1), exit()]),
                &mut []
            ),
            Err("uBPF safe mode error: store is not permitted at PC 3".into())
        );
        assert_eq!(
            run(&mut vm, &call(base + 25, &[exit()]), &mut []),
            Err("uBPF safe mode error: helper 2 returned an out-of-range pointer at PC 2".into())
        );
        let handle = SafeHelperResult::Handle {
            region_id: 9,
            region_size: 8,
        };
        vm.register_safe_helper(3, None, give, handle)
            .expect("valid helper");
        let mut p = lddw(base).to_vec();
        p.extend([ins(0x85, 0, 0, 0, 3), exit()]);
        assert_eq!(
            run(&mut vm, &p, &mut []),
            Err(
                "uBPF safe mode error: helper 3 result kind does not match region 9 at PC 2".into()
            )
        );
        let stray = SafeHelperResult::Pointer {
            region_id: 10,
            region_size: 8,
        };
        vm.register_safe_helper(4, None, give, stray)
            .expect("valid helper");
        assert_eq!(
            run(&mut vm, &[ins(0x85, 0, 0, 0, 4), exit()], &mut []),
            Err("uBPF safe mode error: helper 4 references unknown region 10 at PC 0".into())
        );
    }

    #[test]
    fn registration_rules() {
        let mut vm = Vm::new();
        let region = SafeRegion {
            id: 1,
            base: 0x1000,
            size: 16,
            kind: SafeRegionKind::Handle,
            permissions: PERM_READ | PERM_WRITE,
        };
        assert!(vm.register_safe_region(region).is_ok());
        assert!(
            vm.register_safe_region(SafeRegion { size: 32, ..region })
                .is_ok()
        );
        assert!(
            vm.register_safe_region(SafeRegion {
                id: STACK_REGION_ID,
                ..region
            })
            .is_err()
        );
        assert!(
            vm.register_safe_region(SafeRegion { size: 0, ..region })
                .is_err()
        );
        assert!(
            vm.register_safe_region(SafeRegion { base: 0, ..region })
                .is_err()
        );
        assert!(
            vm.register_safe_region(SafeRegion {
                permissions: 8,
                ..region
            })
            .is_err()
        );
        assert!(
            vm.register_safe_region(SafeRegion {
                base: u64::MAX,
                ..region
            })
            .is_err()
        );
        for id in 2..=MAX_SAFE_REGIONS as u32 {
            assert!(vm.register_safe_region(SafeRegion { id, ..region }).is_ok());
        }
        assert!(
            vm.register_safe_region(SafeRegion { id: 500, ..region })
                .is_err()
        );
        let zero = SafeHelperResult::Pointer {
            region_id: 1,
            region_size: 0,
        };
        assert!(vm.register_safe_helper(0, None, give, zero).is_err());
        let reserved = SafeHelperResult::Handle {
            region_id: INPUT_REGION_ID,
            region_size: 4,
        };
        assert!(vm.register_safe_helper(0, None, give, reserved).is_err());
        assert!(
            vm.register_safe_helper(64, None, give, SafeHelperResult::Scalar)
                .is_err()
        );
        assert!(
            vm.register_safe_helper(0, Some("g"), give, SafeHelperResult::Scalar)
                .is_ok()
        );
        assert_eq!(vm.helper_index("g"), Some(0));
    }
}
