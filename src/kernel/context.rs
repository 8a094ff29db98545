//! Context conversion: the load-time rewrite that lets a program written against the kernel's
//! `struct xdp_md` or `struct __sk_buff` run over librbpf's own context buffer
//! (`docs/kernel-programs.md`, "Contexts").
//!
//! The kernel rewrites every context access of a verified program into an access to its real
//! `struct xdp_buff` / `struct sk_buff` (`convert_ctx_access` in `net/core/filter.c`). librbpf
//! keeps the UAPI struct itself as the context, at the kernel's offsets, and appends three
//! 64-bit packet pointers (data, data_end, data_meta) after it. The rewrite is therefore 1:1:
//! a 4-byte load of `data`, `data_end` or `data_meta` becomes an 8-byte load of the appended
//! pointer (so both engines see full 64-bit packet pointers); every other field is read or
//! written in place. Jump offsets stay valid.
//!
//! Which instructions access the context is found by a forward dataflow over the program
//! (see `analyze`), interprocedural through bpf-to-bpf calls. Accesses are checked against
//! the kernel's rules for the program type (`xdp_is_valid_access`, `bpf_skb_is_valid_access`
//! and the per-type wrappers), and refused at load with the kernel's wording.
//!
//! Tracing types (kprobe/uprobe `pt_regs`, tracepoint records, raw tracepoints), types whose
//! context librbpf does not model and [`ProgramType::Unspecified`] are not converted: their
//! context is plain host memory.
//!
//! The conversion is about fidelity, not safety: the converted context is a buffer the run
//! owns and every access is still bounds-checked, so a wrong classification can only make a
//! program read the wrong field of its own context, never escape it.

use std::collections::BTreeMap;

use crate::error::LoadError;
use crate::isa::{
    FRAME_PTR_REG, Insn, NUM_REGS, alu, atomic, call_kind, class, jmp, mode, op, size,
};
use crate::kernel::program_type::ProgramType;
use crate::program::Program;
use crate::vm::Vm;

/// Size of the kernel's `struct xdp_md`.
pub const XDP_MD_SIZE: usize = 24;
/// Size of the kernel's `struct __sk_buff`.
pub const SK_BUFF_SIZE: usize = 192;
/// Size of the three packet pointers appended after the UAPI struct.
const POINTERS_SIZE: usize = 24;

/// Offsets of `struct xdp_md`'s fields.
pub mod xdp_md {
    /// `__u32 data`.
    pub const DATA: usize = 0;
    /// `__u32 data_end`.
    pub const DATA_END: usize = 4;
    /// `__u32 data_meta`.
    pub const DATA_META: usize = 8;
    /// `__u32 ingress_ifindex`.
    pub const INGRESS_IFINDEX: usize = 12;
    /// `__u32 rx_queue_index`.
    pub const RX_QUEUE_INDEX: usize = 16;
    /// `__u32 egress_ifindex`.
    pub const EGRESS_IFINDEX: usize = 20;
}

/// Offsets of `struct __sk_buff`'s fields (`include/uapi/linux/bpf.h`).
#[expect(
    missing_docs,
    reason = "each constant is the offset of the `__sk_buff` field of its name"
)]
pub mod sk_buff {
    pub const LEN: usize = 0;
    pub const PKT_TYPE: usize = 4;
    pub const MARK: usize = 8;
    pub const QUEUE_MAPPING: usize = 12;
    pub const PROTOCOL: usize = 16;
    pub const VLAN_PRESENT: usize = 20;
    pub const VLAN_TCI: usize = 24;
    pub const VLAN_PROTO: usize = 28;
    pub const PRIORITY: usize = 32;
    pub const INGRESS_IFINDEX: usize = 36;
    pub const IFINDEX: usize = 40;
    pub const TC_INDEX: usize = 44;
    /// `__u32 cb[5]`.
    pub const CB: usize = 48;
    /// One past `cb[4]`.
    pub const CB_END: usize = 68;
    pub const HASH: usize = 68;
    pub const TC_CLASSID: usize = 72;
    pub const DATA: usize = 76;
    pub const DATA_END: usize = 80;
    pub const NAPI_ID: usize = 84;
    pub const FAMILY: usize = 88;
    pub const REMOTE_IP4: usize = 92;
    pub const LOCAL_IP4: usize = 96;
    pub const REMOTE_IP6: usize = 100;
    pub const LOCAL_IP6: usize = 116;
    pub const REMOTE_PORT: usize = 132;
    pub const LOCAL_PORT: usize = 136;
    pub const DATA_META: usize = 140;
    /// `struct bpf_flow_keys *flow_keys` (8 bytes).
    pub const FLOW_KEYS: usize = 144;
    /// `__u64 tstamp`.
    pub const TSTAMP: usize = 152;
    pub const WIRE_LEN: usize = 160;
    pub const GSO_SEGS: usize = 164;
    /// `struct bpf_sock *sk` (8 bytes).
    pub const SK: usize = 168;
    pub const GSO_SIZE: usize = 176;
    /// `__u8 tstamp_type`, followed by 3 bytes of padding.
    pub const TSTAMP_TYPE: usize = 180;
    /// `__u64 hwtstamp`.
    pub const HWTSTAMP: usize = 184;
}

/// The context layout a program type runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    /// No conversion: the context is plain memory given by the host.
    Plain,
    /// `struct xdp_md` followed by the three packet pointers.
    Xdp,
    /// `struct __sk_buff` followed by the three packet pointers.
    Skb,
}

impl ContextKind {
    /// The layout programs of type `ty` run with.
    pub fn of(ty: ProgramType) -> ContextKind {
        if ty == ProgramType::Xdp {
            ContextKind::Xdp
        } else if ty.has_skb_context() {
            ContextKind::Skb
        } else {
            ContextKind::Plain
        }
    }

    /// Size of the UAPI struct the program sees (0 for plain contexts).
    pub fn uapi_size(self) -> usize {
        match self {
            ContextKind::Plain => 0,
            ContextKind::Xdp => XDP_MD_SIZE,
            ContextKind::Skb => SK_BUFF_SIZE,
        }
    }

    /// Size of the converted context buffer: the UAPI struct plus the three pointers.
    pub fn buffer_size(self) -> usize {
        match self {
            ContextKind::Plain => 0,
            _ => self.uapi_size() + POINTERS_SIZE,
        }
    }

    /// Offset in the converted buffer of the 64-bit `data` pointer.
    pub fn data_ptr(self) -> usize {
        self.uapi_size()
    }

    /// Offset in the converted buffer of the 64-bit `data_end` pointer.
    pub fn data_end_ptr(self) -> usize {
        self.uapi_size() + 8
    }

    /// Offset in the converted buffer of the 64-bit `data_meta` pointer.
    pub fn data_meta_ptr(self) -> usize {
        self.uapi_size() + 16
    }
}

/// Why a program's context accesses were refused at load (the kernel's wording, with the PC).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// An offset outside the struct, a misaligned or wrong-size access, or a write to a
    /// read-only field.
    #[error("invalid bpf_context access off={off} size={size} at PC {pc}")]
    InvalidAccess {
        /// The instruction.
        pc: usize,
        /// The offset into the context.
        off: i32,
        /// The access size in bytes.
        size: usize,
    },
    /// A load or store through a context pointer that arithmetic changed.
    #[error("dereference of modified ctx ptr R{reg} at PC {pc}")]
    ModifiedContext {
        /// The instruction.
        pc: usize,
        /// The base register.
        reg: u8,
    },
    /// A base register that is the context on some paths and something else on others.
    #[error("same insn cannot be used with different pointers at PC {pc}")]
    AmbiguousPointer {
        /// The instruction.
        pc: usize,
    },
    /// An atomic operation on the context.
    #[error("BPF_ATOMIC stores into R{reg} ctx is not allowed at PC {pc}")]
    Atomic {
        /// The instruction.
        pc: usize,
        /// The base register.
        reg: u8,
    },
    /// The context pointer stored anywhere but an 8-byte stack slot through r10 (where it
    /// could not be followed).
    #[error("R{reg} leaks ctx addr into mem at PC {pc}")]
    Leak {
        /// The instruction.
        pc: usize,
        /// The stored register.
        reg: u8,
    },
}

/// Why [`Vm::load_kernel_program`] refused a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelLoadError {
    /// The validator refused the bytecode.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The context accesses are not valid for the program type.
    #[error(transparent)]
    Context(#[from] ContextError),
}

impl Vm {
    /// Validates `code`, converts its context accesses for `prog_type` ([`convert`]) and makes
    /// it the loaded program. Also makes code compiled later accept the extra regions a test
    /// run passes (the packet), see [`Vm::enable_extra_regions`].
    pub fn load_kernel_program(
        &mut self,
        code: &[u8],
        prog_type: ProgramType,
    ) -> Result<(), KernelLoadError> {
        let mut program = self.verify(code)?;
        convert(&mut program, prog_type)?;
        self.enable_extra_regions();
        self.install(program);
        Ok(())
    }
}

/// Checks and rewrites the context accesses of `program` for `prog_type` (see the module
/// docs). Programs of types without a modelled context are left unchanged.
pub fn convert(program: &mut Program, prog_type: ProgramType) -> Result<(), ContextError> {
    let kind = ContextKind::of(prog_type);
    if kind == ContextKind::Plain {
        return Ok(());
    }
    let states = analyze(&program.insns);
    let mut rewrites = Vec::new();
    for (pc, state) in states.iter().enumerate() {
        let Some(state) = state else { continue };
        let insn = program.insns[pc];
        if let Some(new) = check_insn(prog_type, kind, pc, insn, state)? {
            rewrites.push((pc, new));
        }
    }
    for (pc, insn) in rewrites {
        program.insns[pc] = insn;
    }
    Ok(())
}

/// What a register (or stack slot) may hold, as a set: bit per possibility.
pub(crate) mod flag {
    /// Something that is not the context (a scalar, another pointer).
    pub const OTHER: u8 = 1;
    /// The context pointer, unmodified.
    pub const CTX: u8 = 2;
    /// The context pointer after arithmetic.
    pub const MODIFIED: u8 = 4;
}

/// The abstract state before one instruction: registers and the current frame's 8-byte
/// stack slots (by r10 offset) that may hold something other than [`flag::OTHER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    /// Per register r0..r10.
    pub regs: [u8; NUM_REGS],
    /// Slots whose flags differ from [`flag::OTHER`].
    pub slots: BTreeMap<i32, u8>,
}

impl State {
    fn entry() -> State {
        let mut regs = [flag::OTHER; NUM_REGS];
        regs[1] = flag::CTX;
        State {
            regs,
            slots: BTreeMap::new(),
        }
    }

    /// Joins `other` into `self`; whether `self` changed.
    fn join(&mut self, other: &State) -> bool {
        let before = self.clone();
        for (a, b) in self.regs.iter_mut().zip(other.regs) {
            *a |= b;
        }
        let keys: Vec<i32> = self
            .slots
            .keys()
            .chain(other.slots.keys())
            .copied()
            .collect();
        for k in keys {
            let a = self.slot(k);
            let b = other.slot(k);
            self.set_slot(k, a | b);
        }
        *self != before
    }

    fn slot(&self, off: i32) -> u8 {
        self.slots.get(&off).copied().unwrap_or(flag::OTHER)
    }

    fn set_slot(&mut self, off: i32, f: u8) {
        if f == flag::OTHER {
            self.slots.remove(&off);
        } else {
            self.slots.insert(off, f);
        }
    }

    /// Forgets what is known of the slots overlapping `[off, off + len)`.
    fn clobber(&mut self, off: i32, len: usize) {
        let end = off.saturating_add(len as i32);
        let first = off.div_euclid(8) * 8;
        let mut at = first;
        while at < end {
            self.slots.remove(&at);
            at += 8;
        }
    }

    fn clobber_call(&mut self) {
        for r in 0..=5 {
            self.regs[r] = flag::OTHER;
        }
    }
}

/// What arithmetic on a value makes of it.
fn taint(f: u8) -> u8 {
    if f & (flag::CTX | flag::MODIFIED) != 0 {
        (f & flag::OTHER) | flag::MODIFIED
    } else {
        flag::OTHER
    }
}

fn target(pc: usize, delta: i64) -> Option<usize> {
    usize::try_from((pc as i64).checked_add(1)?.checked_add(delta)?).ok()
}

/// The forward dataflow: for every instruction reachable from the entry, the join over all
/// paths of what each register and stack slot may hold (`None`: unreached).
///
/// r1 holds the context at entry; `mov64` copies it; 8-byte spills to and fills from
/// r10-relative slots keep it; any other arithmetic makes it [`flag::MODIFIED`]. Helper calls
/// clobber r0..r5. A local call passes r1..r5 to the callee (whose r6..r9 and frame start
/// unknown) and clobbers r0..r5 in the caller, which keeps r6..r9 and its own slots. Callee
/// entry states are joined over all call sites.
pub(crate) fn analyze(insns: &[Insn]) -> Vec<Option<State>> {
    let mut states: Vec<Option<State>> = vec![None; insns.len()];
    if insns.is_empty() {
        return states;
    }
    states[0] = Some(State::entry());
    let mut work = vec![0usize];
    let mut succ = Vec::new();
    while let Some(pc) = work.pop() {
        let Some(state) = states[pc].clone() else {
            continue;
        };
        succ.clear();
        step(insns, pc, &state, &mut succ);
        for (next, out) in succ.drain(..) {
            let Some(slot) = states.get_mut(next) else {
                continue;
            };
            let changed = match slot {
                Some(s) => s.join(&out),
                None => {
                    *slot = Some(out);
                    true
                }
            };
            if changed {
                work.push(next);
            }
        }
    }
    states
}

/// The successors of `pc` with their states.
fn step(insns: &[Insn], pc: usize, s: &State, out: &mut Vec<(usize, State)>) {
    let insn = insns[pc];
    let mut n = s.clone();
    let dst = usize::from(insn.dst).min(NUM_REGS - 1);
    let src = usize::from(insn.src).min(NUM_REGS - 1);
    let bytes = size::bytes(insn.opc);
    match insn.class() {
        class::LD => {
            if insn.opc == op::LDDW {
                n.regs[dst] = flag::OTHER;
                out.push((pc + 2, n));
                return;
            }
            // LD_ABS / LD_IND: r0 gets the value; the kernel treats r1..r5 as clobbered.
            n.clobber_call();
            out.push((pc + 1, n));
        }
        class::LDX => {
            let fill = insn.src == FRAME_PTR_REG
                && insn.opc & mode::MASK == mode::MEM
                && bytes == 8
                && insn.off % 8 == 0;
            n.regs[dst] = if fill {
                s.slot(i32::from(insn.off))
            } else {
                flag::OTHER
            };
            out.push((pc + 1, n));
        }
        class::ST => {
            if insn.dst == FRAME_PTR_REG {
                n.clobber(i32::from(insn.off), bytes);
            }
            out.push((pc + 1, n));
        }
        class::STX => {
            let off = i32::from(insn.off);
            if insn.opc & mode::MASK == mode::ATOMIC {
                if insn.dst == FRAME_PTR_REG {
                    n.clobber(off, bytes);
                }
                if insn.imm == atomic::CMPXCHG {
                    n.regs[0] = flag::OTHER;
                } else if insn.imm & atomic::FETCH != 0 {
                    n.regs[src] = flag::OTHER;
                }
            } else if insn.dst == FRAME_PTR_REG {
                if bytes == 8 && off % 8 == 0 {
                    n.set_slot(off, s.regs[src]);
                } else {
                    n.clobber(off, bytes);
                }
            }
            out.push((pc + 1, n));
        }
        class::ALU64 => {
            let op = insn.opc & alu::MASK;
            let by_reg = insn.opc & 0x08 != 0;
            n.regs[dst] = match op {
                alu::MOV if by_reg && insn.off == 0 => s.regs[src],
                alu::MOV if by_reg => taint(s.regs[src]),
                alu::MOV => flag::OTHER,
                _ if by_reg && op != alu::END => taint(s.regs[dst] | s.regs[src]),
                _ => taint(s.regs[dst]),
            };
            out.push((pc + 1, n));
        }
        class::ALU => {
            // 32-bit results are never pointers.
            n.regs[dst] = flag::OTHER;
            out.push((pc + 1, n));
        }
        _ => {
            // JMP and JMP32.
            let code = insn.opc & 0xf0;
            if insn.opc == op::EXIT {
                return;
            }
            if insn.opc == op::CALL && insn.src == call_kind::LOCAL {
                if let Some(t) = target(pc, i64::from(insn.imm)) {
                    let mut callee = State {
                        regs: [flag::OTHER; NUM_REGS],
                        slots: BTreeMap::new(),
                    };
                    callee.regs[1..=5].copy_from_slice(&s.regs[1..=5]);
                    out.push((t, callee));
                }
                n.clobber_call();
                out.push((pc + 1, n));
                return;
            }
            if insn.opc == op::CALL || insn.opc == op::CALLX {
                n.clobber_call();
                out.push((pc + 1, n));
                return;
            }
            if insn.opc == op::JA32 {
                if let Some(t) = target(pc, i64::from(insn.imm)) {
                    out.push((t, n));
                }
                return;
            }
            let jump = target(pc, i64::from(insn.off));
            if code == jmp::JA {
                if let Some(t) = jump {
                    out.push((t, n));
                }
                return;
            }
            if let Some(t) = jump {
                out.push((t, n.clone()));
            }
            out.push((pc + 1, n));
        }
    }
}

/// Checks one instruction against the state before it; the rewritten instruction when it
/// is a converted context access.
fn check_insn(
    ty: ProgramType,
    kind: ContextKind,
    pc: usize,
    insn: Insn,
    s: &State,
) -> Result<Option<Insn>, ContextError> {
    let m = insn.opc & mode::MASK;
    let bytes = size::bytes(insn.opc);
    let (base, write) = match insn.class() {
        class::LDX if m == mode::MEM || m == mode::MEMSX => (insn.src, false),
        class::ST if m == mode::MEM => (insn.dst, true),
        class::STX if m == mode::MEM || m == mode::ATOMIC => {
            let value = s.regs[usize::from(insn.src).min(NUM_REGS - 1)];
            let spill =
                m == mode::MEM && insn.dst == FRAME_PTR_REG && bytes == 8 && insn.off % 8 == 0;
            if value & (flag::CTX | flag::MODIFIED) != 0 && !spill {
                return Err(ContextError::Leak { pc, reg: insn.src });
            }
            (insn.dst, true)
        }
        _ => return Ok(None),
    };
    let f = s.regs[usize::from(base).min(NUM_REGS - 1)];
    if f & (flag::CTX | flag::MODIFIED) == 0 {
        return Ok(None);
    }
    if m == mode::ATOMIC {
        return Err(ContextError::Atomic { pc, reg: base });
    }
    if f & flag::MODIFIED != 0 {
        return Err(ContextError::ModifiedContext { pc, reg: base });
    }
    if f != flag::CTX {
        return Err(ContextError::AmbiguousPointer { pc });
    }
    let off = i32::from(insn.off);
    let invalid = ContextError::InvalidAccess {
        pc,
        off,
        size: bytes,
    };
    if m == mode::MEMSX {
        return Err(invalid);
    }
    let access = Access {
        off,
        size: bytes,
        write,
    };
    let valid = match kind {
        ContextKind::Xdp => xdp_valid(access),
        ContextKind::Skb => skb_type_valid(ty, access),
        ContextKind::Plain => true,
    };
    if !valid {
        return Err(invalid);
    }
    Ok(pointer_slot(kind, off).map(|new_off| Insn {
        opc: class::LDX | mode::MEM | size::DW,
        off: new_off as i16,
        ..insn
    }))
}

/// The converted buffer's offset of the 64-bit pointer a 4-byte packet-pointer field
/// stands for, if `off` is one.
fn pointer_slot(kind: ContextKind, off: i32) -> Option<usize> {
    let off = usize::try_from(off).ok()?;
    let (data, data_end, data_meta) = match kind {
        ContextKind::Xdp => (xdp_md::DATA, xdp_md::DATA_END, xdp_md::DATA_META),
        ContextKind::Skb => (sk_buff::DATA, sk_buff::DATA_END, sk_buff::DATA_META),
        ContextKind::Plain => return None,
    };
    if off == data {
        Some(kind.data_ptr())
    } else if off == data_end {
        Some(kind.data_end_ptr())
    } else if off == data_meta {
        Some(kind.data_meta_ptr())
    } else {
        None
    }
}

/// One context access.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    /// Offset into the UAPI struct.
    pub off: i32,
    /// Size in bytes (1, 2, 4 or 8).
    pub size: usize,
    /// Store or load.
    pub write: bool,
}

impl Access {
    /// Whether the access starts inside the field `[start, start + len)`.
    fn at(&self, start: usize, len: usize) -> bool {
        usize::try_from(self.off).is_ok_and(|o| o >= start && o < start + len)
    }
}

/// `xdp_is_valid_access` (for programs not attached to a DEVMAP, and not offloaded): every
/// field is read-only, 4 bytes, aligned; `egress_ifindex` is refused.
pub(crate) fn xdp_valid(a: Access) -> bool {
    if a.write || a.at(xdp_md::EGRESS_IFINDEX, 4) {
        return false;
    }
    a.off >= 0 && (a.off as usize) < XDP_MD_SIZE && a.size == 4 && a.off % 4 == 0
}

/// The per-type wrappers around [`skb_valid`]: `sk_filter_is_valid_access`,
/// `tc_cls_act_is_valid_access`, `cg_skb_is_valid_access` (as a privileged loader),
/// `lwt_is_valid_access` and `sk_skb_is_valid_access`.
pub(crate) fn skb_type_valid(ty: ProgramType, a: Access) -> bool {
    use sk_buff::*;
    let socket_fields = a.at(FAMILY, LOCAL_PORT + 4 - FAMILY);
    let cb = a.at(CB, CB_END - CB);
    match ty {
        ProgramType::SocketFilter => {
            if a.at(TC_CLASSID, 4)
                || a.at(DATA, 4)
                || a.at(DATA_META, 4)
                || a.at(DATA_END, 4)
                || socket_fields
                || a.at(TSTAMP, 8)
                || a.at(WIRE_LEN, 4)
                || a.at(HWTSTAMP, 8)
            {
                return false;
            }
            if a.write && !cb {
                return false;
            }
        }
        ProgramType::SchedCls | ProgramType::SchedAct => {
            if a.write
                && !(a.at(MARK, 4)
                    || a.at(TC_INDEX, 4)
                    || a.at(PRIORITY, 4)
                    || a.at(TC_CLASSID, 4)
                    || cb
                    || a.at(TSTAMP, 8)
                    || a.at(QUEUE_MAPPING, 4))
            {
                return false;
            }
            if socket_fields {
                return false;
            }
            if a.off == TSTAMP_TYPE as i32 {
                return a.size == 1;
            }
        }
        ProgramType::CgroupSkb => {
            if a.at(TC_CLASSID, 4) || a.at(DATA_META, 4) || a.at(WIRE_LEN, 4) {
                return false;
            }
            if a.write && !(a.at(MARK, 4) || a.at(PRIORITY, 4) || cb || a.at(TSTAMP, 8)) {
                return false;
            }
        }
        ProgramType::LwtIn
        | ProgramType::LwtOut
        | ProgramType::LwtXmit
        | ProgramType::LwtSeg6local => {
            if a.at(TC_CLASSID, 4)
                || socket_fields
                || a.at(DATA_META, 4)
                || a.at(TSTAMP, 8)
                || a.at(WIRE_LEN, 4)
                || a.at(HWTSTAMP, 8)
            {
                return false;
            }
            if a.write && !(a.at(MARK, 4) || a.at(PRIORITY, 4) || cb) {
                return false;
            }
        }
        ProgramType::SkSkb => {
            if a.at(TC_CLASSID, 4)
                || a.at(DATA_META, 4)
                || a.at(TSTAMP, 8)
                || a.at(WIRE_LEN, 4)
                || a.at(HWTSTAMP, 8)
            {
                return false;
            }
            if a.write && !(a.at(TC_INDEX, 4) || a.at(PRIORITY, 4)) {
                return false;
            }
            if a.at(MARK, 4) {
                return false;
            }
        }
        _ => return false,
    }
    skb_valid(a)
}

/// `bpf_skb_is_valid_access`: the rules common to every `__sk_buff` program.
pub(crate) fn skb_valid(a: Access) -> bool {
    use sk_buff::*;
    let Ok(off) = usize::try_from(a.off) else {
        return false;
    };
    if off >= SK_BUFF_SIZE || !off.is_multiple_of(a.size) {
        return false;
    }
    if a.at(CB, CB_END - CB) {
        return off + a.size <= CB_END;
    }
    if a.at(REMOTE_IP6, 16)
        || a.at(LOCAL_IP6, 16)
        || a.at(REMOTE_IP4, 4)
        || a.at(LOCAL_IP4, 4)
        || a.at(DATA, 4)
        || a.at(DATA_META, 4)
        || a.at(DATA_END, 4)
    {
        return a.size == 4;
    }
    if a.at(FLOW_KEYS, 8) {
        return false;
    }
    if a.at(HWTSTAMP, 8) {
        return !a.write && a.size == 8;
    }
    if a.at(TSTAMP, 8) {
        return a.size == 8;
    }
    if a.at(SK, 8) {
        return !a.write && a.size == 8;
    }
    if off == TSTAMP_TYPE {
        return false;
    }
    if off > TSTAMP_TYPE && off < HWTSTAMP {
        // Padding.
        return false;
    }
    if a.write {
        a.size == 4
    } else {
        // bpf_ctx_narrow_access_ok: 1, 2 or 4 bytes of a 4-byte field.
        a.size <= 4
    }
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
