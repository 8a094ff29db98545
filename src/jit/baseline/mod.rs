//! The baseline tier: eBPF → x86-64 machine code in one pass, for programs too large for
//! Cranelift to compile quickly (`docs/jit-compile-time.md`, "The baseline tier").
//!
//! Each eBPF register lives in a fixed host register for the whole run ([`HOST`]); each slot
//! appends its encoding and jumps to later slots are patched at the end, so compiling costs
//! tens of nanoseconds per slot whatever the control flow. The code keeps the Cranelift tiers'
//! contract exactly: the same entry signatures, the same inline mem/stack bounds test with the
//! same slow path ([`runtime::rt_check_access_preserving`]), the same runtime functions for
//! faults, helper calls and re-entrancy, the same division, shift and atomic semantics, and
//! no relocations (absolute addresses are immediates; the local-call return addresses are
//! computed `rip`-relative at run time), so an image runs after a `memcpy`.
//!
//! Frame (offsets from `rsp` after the prologue, which pushes the six callee-saved registers):
//! the outgoing stack arguments of a helper call, the [`RunBlock`], the per-size limits of mem
//! and the stack, the local-call depth, the instruction budget, the save area of r1..r5 across
//! helper calls, the local-call frames, and in Basic mode the 4 KiB eBPF stack.
//!
//! Not covered (those programs compile in Cranelift's fast tier instead, see [`supports`]):
//! constant blinding, legacy packet loads, helper calls that publish the run to the kernel
//! helpers, and hosts other than x86-64 System V.

#![allow(clippy::arithmetic_side_effects)]

pub(crate) mod x64;

use super::JitMode;
use super::context::{HELPERS_OFFSET, fault};
use super::runtime::{self, RunBlock, run_block};
use super::translate::Options;
use crate::error::{Access, JitError};
use crate::exec::helpers::HelperTable;
use crate::isa::atomic::Atomic;
use crate::isa::{
    HELPER_SLOTS, Insn, MAX_CALL_DEPTH, STACK_SIZE, alu, atomic, call_kind, class, jmp, mode, op,
    size, source,
};
use crate::program::Program;
use x64::{
    Alu, Asm, Cond, Label, R8, R9, R10, R11, R12, R13, R14, R15, RAX, RBP, RBX, RCX, RDI, RDX, RSI,
    RSP, Reg, Shift,
};

/// The host register of each eBPF register r0..r10. r1..r3 sit in the first three System V
/// argument registers; r4 and r5 in r9 and r8, so that `rcx` stays free for shift counts;
/// r6..r10 in callee-saved registers, which helper calls preserve. `rcx`, `r10`, `r11` and
/// `r12` are scratch.
const HOST: [Reg; 11] = [RAX, RDI, RSI, RDX, R9, R8, RBX, R13, R14, R15, RBP];

/// Callee-saved registers the prologue pushes (and the epilogue pops in reverse).
const SAVED: [Reg; 6] = [RBP, RBX, R12, R13, R14, R15];

/// Outgoing stack arguments 7 and 8 of a helper call.
const OUT_ARGS: i32 = 0;
/// The run block the bounds check's slow path reads.
const RUN: i32 = 16;
/// `lim[i]` of mem: an access of `1 << i` bytes is inside when `addr - mem < lim[i]`.
const MEM_LIMITS: i32 = RUN + run_block::SIZE as i32;
/// The same for the stack.
const STACK_LIMITS: i32 = MEM_LIMITS + 32;
/// Local calls in progress.
const DEPTH: i32 = STACK_LIMITS + 32;
/// Instructions left (with an instruction limit).
const REMAINING: i32 = DEPTH + 8;
/// r1..r5 across a helper call (the interpreter keeps them; the C convention does not).
const SAVE: i32 = REMAINING + 8;
/// Local-call frames: return address, r6..r9, r10.
const FRAMES: i32 = SAVE + 40;
/// Bytes per local-call frame.
const FRAME_BYTES: i32 = 48;
/// The Basic-mode eBPF stack, 16-byte aligned.
const STACK: i32 = (FRAMES + FRAME_BYTES * MAX_CALL_DEPTH as i32 + 15) & !15;

/// Whether the baseline tier can compile `program` with `opts` on this host.
pub(crate) fn supports(program: &Program, opts: &Options) -> bool {
    cfg!(all(target_arch = "x86_64", not(windows)))
        && opts.blinding.is_none()
        && !opts.publish_run
        && !program.insns.iter().any(Insn::is_packet_load)
}

/// Compiles `program` into position-independent x86-64 code.
pub(crate) fn compile(program: &Program, opts: &Options) -> Result<Vec<u8>, JitError> {
    let insns = &program.insns[..];
    let mut e = Emitter::new(program, opts);
    e.prologue();
    // Only reachable code is emitted (as Cranelift drops unreachable blocks): the code size
    // bound of `cfg::min_fast_tier_code_bytes` counts only reachable slots.
    let reached = super::cfg::reachable_slots(insns);
    let mut pc = 0;
    while pc < insns.len() {
        if !reached[pc] {
            pc += 1;
            continue;
        }
        e.bind_slot(pc);
        pc = e.insn(pc, insns[pc])?;
    }
    // Running past the last slot is a (silent) failure, as in the interpreter.
    e.bind_slot(insns.len());
    let end = e.fault_stub(fault::FELL_OFF_END, insns.len(), Extra::Imm(0));
    e.a.jmp(end);
    e.tails();
    e.a.finish()
        .ok_or_else(|| JitError::Internal("baseline: a jump has no target".into()))
}

/// The `extra` argument of a fault: a register's value at the fault, or a constant.
#[derive(Debug, Clone, Copy)]
enum Extra {
    Reg(Reg),
    Imm(u64),
}

/// A cold stub that records a fault and fails the run.
struct FaultStub {
    label: Label,
    kind: i64,
    pc: usize,
    extra: Extra,
}

/// A cold stub for an access the inline test did not allow: it calls the runtime's complete
/// check, then fails or resumes at `resume`.
struct AccessStub {
    label: Label,
    resume: Label,
    packed: i64,
    base: Reg,
}

struct Emitter<'a> {
    a: Asm,
    program: &'a Program,
    opts: &'a Options,
    /// One label per slot and one for the end.
    slots: Vec<Label>,
    frame: i32,
    has_stack: bool,
    static_stack: bool,
    local_calls: bool,
    in_level: bool,
    /// Leaves the run with rax (leaving its re-entrancy level first): `exit` in main and
    /// every failure end here.
    epilogue: Label,
    fail: Label,
    ret_zero: Label,
    pop: Label,
    faults: Vec<FaultStub>,
    accesses: Vec<AccessStub>,
}

impl<'a> Emitter<'a> {
    fn new(program: &'a Program, opts: &'a Options) -> Self {
        let insns = &program.insns;
        let mut a = Asm::with_capacity(insns.len() * 12 + 512);
        let slots = (0..=insns.len()).map(|_| a.label()).collect();
        let local_calls = insns
            .iter()
            .any(|i| i.opc == op::CALL && i.src == call_kind::LOCAL);
        let needs_stack = local_calls || insns.iter().any(|i| i.dst == 10 || i.src == 10);
        let own_stack = if opts.mode == JitMode::Basic {
            STACK_SIZE as i32
        } else {
            0
        };
        // After the return address and six pushes rsp is 8 mod 16: an odd number of words
        // keeps every call 16-byte aligned.
        let frame = ((STACK + own_stack + 15) & !15) + 8;
        Emitter {
            epilogue: a.label(),
            fail: a.label(),
            ret_zero: a.label(),
            pop: a.label(),
            a,
            program,
            opts,
            slots,
            frame,
            has_stack: opts.mode == JitMode::Extended || needs_stack,
            static_stack: opts.mode == JitMode::Basic && !local_calls,
            local_calls,
            in_level: false,
            faults: Vec::new(),
            accesses: Vec::new(),
        }
    }

    fn bind_slot(&mut self, pc: usize) {
        let l = self.slots[pc];
        self.a.bind(l);
    }

    fn slot(&self, pc: usize) -> Result<Label, JitError> {
        self.slots
            .get(pc)
            .copied()
            .ok_or_else(|| JitError::Internal(format!("baseline: no slot {pc}")))
    }

    fn ctx(&self) -> u64 {
        self.opts.ctx as u64
    }

    /// A new cold stub recording `kind` at `pc` with `extra`; returns its label.
    fn fault_stub(&mut self, kind: i64, pc: usize, extra: Extra) -> Label {
        let label = self.a.label();
        self.faults.push(FaultStub {
            label,
            kind,
            pc,
            extra,
        });
        label
    }

    /// Calls the absolute address `f` (through `r11`, which no call passes arguments in).
    fn call_abs(&mut self, f: u64) {
        self.a.mov_ri(R11, f);
        self.a.call_reg(R11);
    }

    fn prologue(&mut self) {
        let a = &mut self.a;
        for r in SAVED {
            a.push(r);
        }
        // The frame is larger than a page: touch the first page so that the guard page below
        // the native stack is never skipped.
        if self.frame > 4096 {
            a.alu_ri(Alu::Sub, true, RSP, 4096);
            a.alu_mi(Alu::Or, RSP, 0, 0);
            a.alu_ri(Alu::Sub, true, RSP, self.frame - 4096);
        } else {
            a.alu_ri(Alu::Sub, true, RSP, self.frame);
        }
        a.alu_mi(Alu::Or, RSP, 0, 0);
        // The run block: mem, its length, the stack and its length (`RunBlock`).
        a.store64(RSP, RUN + run_block::MEM, RDI);
        a.store64(RSP, RUN + run_block::MEM_LEN, RSI);
        match self.opts.mode {
            JitMode::Basic => {
                a.lea(R10, RSP, STACK);
                a.store64(RSP, RUN + run_block::STACK, R10);
                let len = if self.has_stack { STACK_SIZE as u32 } else { 0 };
                a.mov_ri32(R10, len);
                a.store64(RSP, RUN + run_block::STACK_LEN, R10);
            }
            JitMode::Extended => {
                a.store64(RSP, RUN + run_block::STACK, RDX);
                a.store64(RSP, RUN + run_block::STACK_LEN, RCX);
            }
        }
        a.alu_rr(Alu::Xor, false, R10, R10);
        a.store64(RSP, DEPTH, R10);
        // uBPF keeps the limit in an `int`: limits above i32::MAX are negative and fail at once.
        a.mov_ri(R10, i64::from(self.opts.instruction_limit as i32) as u64);
        a.store64(RSP, REMAINING, R10);
        // The program reads 0 from every stack byte it can reach before writing it, never
        // what the native stack held (docs/sandbox.md, "Stack").
        let reach = self.program.stack_reach.min(STACK_SIZE).next_multiple_of(8);
        if self.opts.mode == JitMode::Basic && self.has_stack && reach > 0 {
            a.lea(RDI, RSP, STACK + (STACK_SIZE - reach) as i32);
            a.alu_rr(Alu::Xor, false, RAX, RAX);
            a.mov_ri32(RCX, (reach / 8) as u32);
            a.rep_stosq();
        }
        self.enter_level();
        self.check_buffers();
        self.limits();
        // Registers: r1 = mem, r2 = its length, r10 = the top of the stack, the rest 0.
        let a = &mut self.a;
        for (i, &r) in HOST.iter().enumerate() {
            match i {
                1 => a.load64(r, RSP, RUN + run_block::MEM),
                2 => a.load64(r, RSP, RUN + run_block::MEM_LEN),
                10 => {
                    a.load64(r, RSP, RUN + run_block::STACK);
                    a.alu_rm(Alu::Add, r, RSP, RUN + run_block::STACK_LEN);
                }
                _ => a.alu_rr(Alu::Xor, false, r, r),
            }
        }
    }

    /// A program that calls helpers can nest runs: its run is a level of
    /// `crate::exec::reentry`, entered first (docs/sandbox.md, "Re-entrancy"). Refused, it
    /// returns `u64::MAX` at once, without leaving a level.
    fn enter_level(&mut self) {
        if !self.program.calls_helpers {
            return;
        }
        self.a.mov_ri(RDI, self.ctx());
        self.call_abs(runtime::rt_enter_run as *const () as u64);
        self.a.test_rr(true, RAX, RAX);
        let entered = self.a.label();
        self.a.jcc(Cond::Eq, entered);
        self.a.mov_ri(RAX, u64::MAX);
        self.epilogue_code();
        self.a.bind(entered);
        self.in_level = true;
    }

    /// Refuses a run whose caller buffer does not fit in the address space, as the
    /// interpreter does: non-null and (longer than `isize::MAX` or wrapping past the top).
    fn check_buffers(&mut self) {
        let mut buffers = vec![(run_block::MEM, run_block::MEM_LEN, fault::INVALID_MEM)];
        if self.opts.mode == JitMode::Extended {
            buffers.push((run_block::STACK, run_block::STACK_LEN, fault::INVALID_STACK));
        }
        for (base, len, kind) in buffers {
            let bad = self.fault_stub(kind, 0, Extra::Reg(R11));
            let next = self.a.label();
            let a = &mut self.a;
            a.load64(R10, RSP, RUN + base);
            a.load64(R11, RSP, RUN + len);
            a.test_rr(true, R10, R10);
            a.jcc(Cond::Eq, next);
            a.test_rr(true, R11, R11);
            a.jcc(Cond::Sign, bad);
            a.alu_rr(Alu::Add, true, R10, R11);
            a.jcc(Cond::Below, bad);
            a.bind(next);
        }
    }

    /// Computes the per-size limits of mem and the stack into the frame. A null base has no
    /// bytes; neither has the Basic-mode stack of a program that cannot reach it.
    fn limits(&mut self) {
        let regions = [
            (run_block::MEM, run_block::MEM_LEN, MEM_LIMITS, true),
            (
                run_block::STACK,
                run_block::STACK_LEN,
                STACK_LIMITS,
                self.opts.mode == JitMode::Extended,
            ),
        ];
        let a = &mut self.a;
        a.alu_rr(Alu::Xor, false, R12, R12);
        for (base, len, limits, nullable) in regions {
            a.load64(R11, RSP, RUN + len);
            if nullable {
                a.load64(R10, RSP, RUN + base);
                a.test_rr(true, R10, R10);
                a.cmov(Cond::Eq, R11, R12);
            }
            for i in 0..4 {
                let size = 1i32 << i;
                a.mov_rr(true, RCX, R11);
                if size > 1 {
                    // `len >= size ? len - (size - 1) : 0`.
                    a.alu_ri(Alu::Sub, true, RCX, size - 1);
                    a.cmov(Cond::Below, RCX, R12);
                }
                a.store64(RSP, limits + 8 * i, RCX);
            }
        }
    }

    /// Restores the callee-saved registers and returns rax.
    fn epilogue_code(&mut self) {
        let a = &mut self.a;
        a.alu_ri(Alu::Add, true, RSP, self.frame);
        for r in SAVED.iter().rev() {
            a.pop(*r);
        }
        a.ret();
    }

    /// The shared tails and the cold stubs.
    fn tails(&mut self) {
        // r0 (rax) is the result.
        let epilogue = self.epilogue;
        self.a.bind(epilogue);
        if self.in_level {
            self.a.mov_rr(true, RBX, RAX);
            self.call_abs(runtime::rt_leave_run as *const () as u64);
            self.a.mov_rr(true, RAX, RBX);
        }
        self.epilogue_code();

        let (fail, ret_zero) = (self.fail, self.ret_zero);
        self.a.bind(fail);
        self.a.mov_ri(RAX, u64::MAX);
        self.a.jmp(epilogue);
        self.a.bind(ret_zero);
        self.a.alu_rr(Alu::Xor, false, RAX, RAX);
        self.a.jmp(epilogue);

        if self.local_calls {
            // Return from a local call: pop the frame, restore r6..r10, jump back.
            let pop = self.pop;
            let a = &mut self.a;
            a.bind(pop);
            a.load64(RCX, RSP, DEPTH);
            a.alu_ri(Alu::Sub, true, RCX, 1);
            a.store64(RSP, DEPTH, RCX);
            a.imul_rri(true, R10, RCX, FRAME_BYTES);
            a.alu_rr(Alu::Add, true, R10, RSP);
            for (i, reg) in [6usize, 7, 8, 9, 10].into_iter().enumerate() {
                a.load64(HOST[reg], R10, FRAMES + 8 + 8 * i as i32);
            }
            a.jmp_mem(R10, FRAMES);
        }

        let ctx = self.ctx();
        for stub in std::mem::take(&mut self.faults) {
            let a = &mut self.a;
            a.bind(stub.label);
            match stub.extra {
                Extra::Reg(r) => a.mov_rr(true, RCX, r),
                Extra::Imm(v) => a.mov_ri(RCX, v),
            }
            a.mov_ri(RDI, ctx);
            a.mov_ri(RSI, stub.kind as u64);
            a.mov_ri(RDX, stub.pc as u64);
            self.call_abs(runtime::rt_fault as *const () as u64);
            self.a.jmp(fail);
        }

        for stub in std::mem::take(&mut self.accesses) {
            let a = &mut self.a;
            a.bind(stub.label);
            a.store64(RSP, RUN + run_block::BASE, stub.base);
            // Four pushes keep rsp 16-byte aligned for the call.
            for r in [RDI, RSI, RDX, RCX] {
                a.push(r);
            }
            a.mov_ri(RDI, ctx);
            a.mov_ri(RSI, stub.packed as u64);
            a.lea(RDX, RSP, 32 + RUN);
            // The trampoline preserves every register but those three arguments.
            a.mov_ri(RCX, runtime::check_access_entry());
            a.call_reg(RCX);
            for r in [RCX, RDX, RSI, RDI] {
                a.pop(r);
            }
            if self.opts.other_regions {
                a.alu_mi(Alu::Cmp, RSP, RUN + run_block::VERDICT, 0);
                a.jcc(Cond::NotEq, fail);
                a.jmp(stub.resume);
            } else {
                // Only mem and the stack exist, and the runtime applies the same test: the
                // access is denied and the fault recorded.
                a.jmp(fail);
            }
        }
    }

    /// Translates the instruction at `pc`; returns the next slot.
    fn insn(&mut self, pc: usize, insn: Insn) -> Result<usize, JitError> {
        let unsupported = || JitError::Unsupported {
            pc,
            opcode: insn.opc,
        };
        if self.opts.instruction_limit > 0 {
            // The interpreter stops before the first instruction that finds the budget used
            // up (docs/sandbox.md, "Instruction limit").
            let out = self.fault_stub(fault::INSTRUCTION_LIMIT, pc, Extra::Imm(0));
            self.a.alu_mi(Alu::Sub, RSP, REMAINING, 1);
            self.a.jcc(Cond::Less, out);
        }
        let dst = host(insn.dst);
        let src = host(insn.src);
        match insn.class() {
            class::ALU | class::ALU64 => self.alu(pc, insn)?,
            class::LD => {
                // lddw: dst = imm_lo | imm_hi << 32; one instruction over two slots.
                if insn.opc != op::LDDW {
                    return Err(unsupported());
                }
                let second = self.program.insns.get(pc + 1).ok_or_else(unsupported)?;
                self.a.mov_ri(dst, insn.lddw_value(Some(second)));
                self.bind_slot(pc + 1);
                return Ok(pc + 2);
            }
            class::LDX => {
                // ldx: dst = *(size*)(src + off), zero-extended; ldxs sign-extends.
                let bytes = size::bytes(insn.opc);
                let signed = insn.load_sign_extends().ok_or_else(unsupported)?;
                let (base, disp) = self.access(pc, insn.src, insn.off, bytes, Access::Load);
                self.a.load(dst, base, disp, bytes, signed);
            }
            class::ST => {
                // st: *(size*)(dst + off) = imm (stdw: sign-extended imm).
                if insn.opc & mode::MASK != mode::MEM {
                    return Err(unsupported());
                }
                let bytes = size::bytes(insn.opc);
                let (base, disp) = self.access(pc, insn.dst, insn.off, bytes, Access::Store);
                self.a.store_imm(base, disp, insn.imm, bytes);
            }
            class::STX => match insn.opc & mode::MASK {
                mode::MEM => {
                    // stx: *(size*)(dst + off) = src (low bytes).
                    let bytes = size::bytes(insn.opc);
                    let (base, disp) = self.access(pc, insn.dst, insn.off, bytes, Access::Store);
                    self.a.store(base, disp, src, bytes);
                }
                mode::ATOMIC => self.atomic(pc, insn)?,
                _ => return Err(unsupported()),
            },
            class::JMP | class::JMP32 => self.jump(pc, insn)?,
            _ => return Err(unsupported()),
        }
        Ok(pc + 1)
    }

    /// The address of an access of `bytes` bytes at `reg + off`, as `(base, disp)`; with
    /// bounds checks on, first proves it lies in mem or the stack (inline), or else in a
    /// region the runtime's complete model allows (data sections, maps, the bounds callback).
    fn access(&mut self, pc: usize, reg: u8, off: i16, bytes: usize, access: Access) -> (Reg, i32) {
        let base = host(reg);
        let (lo, hi) = (i64::from(off), i64::from(off) + bytes as i64);
        if !self.opts.bounds_check
            // Without local calls, r10 is the top of the 4096-byte stack for the whole run.
            || (self.static_stack && reg == 10 && lo >= -(STACK_SIZE as i64) && hi <= 0)
        {
            return (base, i32::from(off));
        }
        let i = bytes.trailing_zeros() as i32;
        let mem = (run_block::MEM, MEM_LIMITS + 8 * i);
        let stack = (run_block::STACK, STACK_LIMITS + 8 * i);
        let regions: &[(i32, i32)] = match (self.has_stack, reg == 10) {
            (false, _) => &[mem],
            (true, true) => &[stack, mem],
            (true, false) => &[mem, stack],
        };
        let slow = self.a.label();
        let ok = self.a.label();
        let a = &mut self.a;
        a.lea(R11, base, i32::from(off));
        for (n, &(region, limit)) in regions.iter().enumerate() {
            a.mov_rr(true, R10, R11);
            a.alu_rm(Alu::Sub, R10, RSP, RUN + region);
            a.alu_rm(Alu::Cmp, R10, RSP, limit);
            if n + 1 < regions.len() {
                a.jcc(Cond::Below, ok);
            } else {
                a.jcc(Cond::AboveEq, slow);
            }
        }
        a.bind(ok);
        self.accesses.push(AccessStub {
            label: slow,
            resume: ok,
            packed: runtime::pack_access(pc, bytes, access, off),
            base,
        });
        (R11, 0)
    }

    fn alu(&mut self, pc: usize, insn: Insn) -> Result<(), JitError> {
        let wide = insn.class() == class::ALU64;
        let operation = insn.opc & alu::MASK;
        let by_reg = insn.opc & source::MASK == source::X;
        let unsupported = JitError::Unsupported {
            pc,
            opcode: insn.opc,
        };
        let d = host(insn.dst);
        let s = host(insn.src);
        let a = &mut self.a;
        match operation {
            alu::END => {
                // le: truncate to the width (LE host); be/bswap: byte-swap the low width,
                // zero the rest.
                let swap = insn.opc != 0xd4;
                match insn.imm {
                    16 => {
                        if swap {
                            a.rol16_8(d);
                        }
                        a.movzx(d, d, 2);
                    }
                    32 if swap => a.bswap(false, d),
                    32 => a.mov_rr(false, d, d),
                    64 if swap => a.bswap(true, d),
                    64 => {}
                    _ => return Err(unsupported),
                }
            }
            alu::MOV => match insn.off {
                // mov; with offset 8/16/32 movsx sign-extends the low bits of src.
                0 if by_reg => a.mov_rr(wide, d, s),
                0 if wide => a.mov_ri(d, i64::from(insn.imm) as u64),
                0 => a.mov_ri32(d, insn.imm as u32),
                8 | 16 => a.movsx(wide, d, s, (insn.off / 8) as usize),
                32 if wide => a.movsx(true, d, s, 4),
                _ => return Err(unsupported),
            },
            alu::ADD | alu::SUB | alu::OR | alu::AND | alu::XOR => {
                let op = match operation {
                    alu::ADD => Alu::Add,
                    alu::SUB => Alu::Sub,
                    alu::OR => Alu::Or,
                    alu::AND => Alu::And,
                    _ => Alu::Xor,
                };
                if by_reg {
                    a.alu_rr(op, wide, d, s);
                } else {
                    a.alu_ri(op, wide, d, insn.imm);
                }
            }
            alu::MUL => {
                if by_reg {
                    a.imul_rr(wide, d, s);
                } else {
                    a.imul_rri(wide, d, d, insn.imm);
                }
            }
            alu::LSH | alu::RSH | alu::ARSH => {
                // The count is masked by the width.
                let op = match operation {
                    alu::LSH => Shift::Shl,
                    alu::RSH => Shift::Shr,
                    _ => Shift::Sar,
                };
                if by_reg {
                    a.mov_rr(true, RCX, s);
                    a.shift_cl(op, wide, d);
                } else {
                    a.shift_ri(op, wide, d, (insn.imm as u8) & if wide { 63 } else { 31 });
                }
                if !wide {
                    // A zero count leaves the register unwritten: zero-extend explicitly.
                    a.mov_rr(false, d, d);
                }
            }
            alu::NEG => a.neg(wide, d),
            alu::DIV | alu::MOD => self.divide(insn, wide, by_reg),
            _ => return Err(unsupported),
        }
        Ok(())
    }

    /// div/mod with the interpreter's results: x/0 = 0, x%0 = x, and with a divisor of -1
    /// (signed) x/-1 = -x (INT_MIN/-1 = INT_MIN) and x%-1 = 0; the hardware would trap.
    fn divide(&mut self, insn: Insn, wide: bool, by_reg: bool) {
        let div = insn.opc & alu::MASK == alu::DIV;
        let signed = insn.off == 1;
        let d = host(insn.dst);
        let s = host(insn.src);
        let a = &mut self.a;
        // rcx = divisor (the imm as the width sees it), then free rax and rdx.
        if by_reg {
            a.mov_rr(wide, RCX, s);
        } else if wide {
            a.mov_ri(RCX, i64::from(insn.imm) as u64);
        } else {
            a.mov_ri32(RCX, insn.imm as u32);
        }
        a.mov_rr(true, R10, RAX);
        a.mov_rr(true, R11, RDX);
        a.mov_rr(wide, RAX, d);
        let (zero, done) = (a.label(), a.label());
        a.test_rr(wide, RCX, RCX);
        a.jcc(Cond::Eq, zero);
        if signed {
            let normal = a.label();
            a.alu_ri(Alu::Cmp, wide, RCX, -1);
            a.jcc(Cond::NotEq, normal);
            if div {
                a.neg(wide, RAX);
            } else {
                a.alu_rr(Alu::Xor, false, RAX, RAX);
            }
            a.jmp(done);
            a.bind(normal);
            a.sign_extend_rax(wide);
        } else {
            a.alu_rr(Alu::Xor, false, RDX, RDX);
        }
        a.div(wide, signed, RCX);
        if !div {
            a.mov_rr(wide, RAX, RDX);
        }
        a.jmp(done);
        a.bind(zero);
        if div {
            a.alu_rr(Alu::Xor, false, RAX, RAX);
        }
        a.bind(done);
        // The result (zero-extended for 32 bits) goes to dst; rax and rdx get r0 and r3 back.
        a.mov_rr(wide, RCX, RAX);
        a.mov_rr(true, RAX, R10);
        a.mov_rr(true, RDX, R11);
        a.mov_rr(true, d, RCX);
    }

    fn atomic(&mut self, pc: usize, insn: Insn) -> Result<(), JitError> {
        let (bytes, what) = insn.atomic().ok_or(JitError::Unsupported {
            pc,
            opcode: insn.opc,
        })?;
        let wide = bytes == 8;
        // Atomics are checked as stores of 4 or 8 bytes at dst + off.
        let (base, disp) = self.access(pc, insn.dst, insn.off, bytes, Access::Store);
        let s = host(insn.src);
        let a = &mut self.a;
        // The address goes to r11: the compare-exchange forms use rax, which may be the base.
        let (base, disp) = if base == R11 {
            (base, disp)
        } else {
            a.lea(R11, base, disp);
            (R11, 0)
        };
        match what {
            Atomic::Cmpxchg => {
                // Compare memory with r0 (rax); store src if equal; r0 = old value.
                a.lock_cmpxchg(wide, base, disp, s);
                if !wide {
                    // On success rax is not written: zero-extend what it holds (the old value).
                    a.mov_rr(false, RAX, RAX);
                }
            }
            Atomic::Xchg => {
                // Store src; src = old value (zero-extended).
                a.mov_rr(wide, RCX, s);
                a.xchg_mr(wide, base, disp, RCX);
                a.mov_rr(true, s, RCX);
            }
            Atomic::Rmw { op, fetch } => {
                let op = match op {
                    atomic::ADD => Alu::Add,
                    atomic::OR => Alu::Or,
                    atomic::AND => Alu::And,
                    _ => Alu::Xor,
                };
                if !fetch {
                    a.lock_alu_mr(op, wide, base, disp, s);
                } else if op == Alu::Add {
                    // src = old value (zero-extended).
                    a.mov_rr(wide, RCX, s);
                    a.lock_xadd(wide, base, disp, RCX);
                    a.mov_rr(true, s, RCX);
                } else {
                    // A compare-exchange loop: rax holds the old value, so r0 waits in r12;
                    // the operand is read from r12 when it is r0 itself.
                    let operand = if s == RAX { R12 } else { s };
                    a.mov_rr(true, R12, RAX);
                    let again = a.label();
                    a.bind(again);
                    a.load(RAX, base, disp, bytes, false);
                    a.mov_rr(wide, RCX, RAX);
                    a.alu_rr(op, wide, RCX, operand);
                    a.lock_cmpxchg(wide, base, disp, RCX);
                    a.jcc(Cond::NotEq, again);
                    a.mov_rr(wide, RCX, RAX);
                    a.mov_rr(true, RAX, R12);
                    a.mov_rr(true, s, RCX);
                }
            }
        }
        Ok(())
    }

    fn jump(&mut self, pc: usize, insn: Insn) -> Result<(), JitError> {
        let unsupported = JitError::Unsupported {
            pc,
            opcode: insn.opc,
        };
        let is32 = insn.class() == class::JMP32;
        let operation = insn.opc & alu::MASK;
        if !is32 && operation == jmp::CALL {
            return match (insn.opc, insn.src) {
                (op::CALL, call_kind::HELPER) => {
                    self.helper_call(pc, Callee::Known(insn.imm as u32));
                    Ok(())
                }
                (op::CALL, call_kind::LOCAL) => self.local_call(pc, insn),
                (op::CALLX, _) => {
                    // callx: the helper index is the value of the register in dst.
                    self.helper_call(pc, Callee::Reg(host(insn.dst)));
                    Ok(())
                }
                _ => Err(unsupported),
            };
        }
        if !is32 && operation == jmp::EXIT {
            // exit: end the program with r0, or return from a local call.
            if self.local_calls {
                let pop = self.pop;
                self.a.alu_mi(Alu::Cmp, RSP, DEPTH, 0);
                self.a.jcc(Cond::NotEq, pop);
            }
            let epilogue = self.epilogue;
            self.a.jmp(epilogue);
            return Ok(());
        }
        let target = super::cfg::jump_target(pc, &insn)
            .and_then(|t| usize::try_from(t).ok())
            .ok_or(unsupported.clone())?;
        if target == pc + 1 {
            // Lands on the next slot whether taken or not.
            return Ok(());
        }
        let target = self.slot(target)?;
        if operation == jmp::JA {
            self.a.jmp(target);
            return Ok(());
        }
        let wide = !is32;
        let d = host(insn.dst);
        let by_reg = insn.opc & source::MASK == source::X;
        let a = &mut self.a;
        // JMP compares 64 bits against the sign-extended imm or src; JMP32 the low 32 bits.
        let alu_op = if operation == jmp::JSET {
            None
        } else {
            Some(Alu::Cmp)
        };
        match (alu_op, by_reg) {
            (Some(op), true) => a.alu_rr(op, wide, d, host(insn.src)),
            (Some(op), false) => a.alu_ri(op, wide, d, insn.imm),
            // jset: dst & operand != 0.
            (None, true) => a.test_rr(wide, d, host(insn.src)),
            (None, false) => a.test_ri(wide, d, insn.imm),
        }
        let cond = match operation {
            jmp::JEQ => Cond::Eq,
            jmp::JNE | jmp::JSET => Cond::NotEq,
            jmp::JGT => Cond::Above,
            jmp::JGE => Cond::AboveEq,
            jmp::JLT => Cond::Below,
            jmp::JLE => Cond::BelowEq,
            jmp::JSGT => Cond::Greater,
            jmp::JSGE => Cond::GreaterEq,
            jmp::JSLT => Cond::Less,
            jmp::JSLE => Cond::LessEq,
            _ => return Err(unsupported),
        };
        a.jcc(cond, target);
        Ok(())
    }

    /// Helper call through [`runtime::rt_call_helper`] (the dispatcher when one is registered
    /// at run time, else the helper's slot), after the same existence checks as the Cranelift
    /// tiers make; r1..r5 keep their values, as in the interpreter. After the unwind helper,
    /// r0 == 0 ends the program with 0.
    fn helper_call(&mut self, pc: usize, callee: Callee) {
        let ctx = self.ctx();
        let a = &mut self.a;
        for (i, r) in [1usize, 2, 3, 4, 5].into_iter().enumerate() {
            a.store64(RSP, SAVE + 8 * i as i32, HOST[r]);
        }
        // r10 = the helper table, r11 = its dispatcher (0 if none).
        a.mov_ri(R10, ctx);
        a.load64(R10, R10, HELPERS_OFFSET);
        a.load64(
            R11,
            R10,
            std::mem::offset_of!(HelperTable, dispatcher) as i32,
        );
        let slots = std::mem::offset_of!(HelperTable, slots) as i32;
        match callee {
            Callee::Known(index) => {
                let missing =
                    self.fault_stub(fault::NONEXISTENT_HELPER, pc, Extra::Imm(u64::from(index)));
                let a = &mut self.a;
                if (index as usize) < HELPER_SLOTS {
                    a.alu_rm(Alu::Or, R11, R10, slots + 8 * index as i32);
                }
                a.test_rr(true, R11, R11);
                a.jcc(Cond::Eq, missing);
                a.mov_ri(R12, u64::from(index));
            }
            Callee::Reg(r) => {
                // r12 (callee-saved) holds the index through the call.
                a.mov_rr(true, R12, r);
                let missing = self.fault_stub(fault::NONEXISTENT_HELPER, pc, Extra::Reg(R12));
                let a = &mut self.a;
                let (table, call) = (a.label(), a.label());
                a.test_rr(true, R11, R11);
                a.jcc(Cond::Eq, table);
                // The dispatcher takes a 32-bit index.
                a.mov_rr(true, RCX, R12);
                a.shift_ri(Shift::Shr, true, RCX, 32);
                a.jcc(Cond::NotEq, missing);
                a.jmp(call);
                a.bind(table);
                a.alu_ri(Alu::Cmp, true, R12, HELPER_SLOTS as i32);
                a.jcc(Cond::AboveEq, missing);
                a.mov_rr(true, RCX, R12);
                a.shift_ri(Shift::Shl, true, RCX, 3);
                a.alu_rr(Alu::Add, true, RCX, R10);
                a.load64(RCX, RCX, slots);
                a.test_rr(true, RCX, RCX);
                a.jcc(Cond::Eq, missing);
                a.bind(call);
            }
        }
        // rt_call_helper(r1..r5, index, mem, table): r4 moves to rcx, the index to r9, mem and
        // the table to the stack.
        let a = &mut self.a;
        a.mov_rr(true, RCX, HOST[4]);
        a.mov_rr(true, R9, R12);
        a.load64(R11, RSP, RUN + run_block::MEM);
        a.store64(RSP, OUT_ARGS, R11);
        a.store64(RSP, OUT_ARGS + 8, R10);
        self.call_abs(runtime::rt_call_helper as *const () as u64);
        let a = &mut self.a;
        for (i, r) in [1usize, 2, 3, 4, 5].into_iter().enumerate() {
            a.load64(HOST[r], RSP, SAVE + 8 * i as i32);
        }
        if let Some(unwind) = self.opts.unwind_index {
            let skip = a.label();
            let ret_zero = self.ret_zero;
            match callee {
                Callee::Known(i) if i != unwind => return,
                Callee::Known(_) => {}
                Callee::Reg(_) => {
                    a.mov_ri(RCX, u64::from(unwind));
                    a.alu_rr(Alu::Cmp, true, R12, RCX);
                    a.jcc(Cond::NotEq, skip);
                }
            }
            a.test_rr(true, RAX, RAX);
            a.jcc(Cond::Eq, ret_zero);
            a.bind(skip);
        }
    }

    /// Local call: at most `MAX_CALL_DEPTH` frames; save the return address, r6..r9 and r10,
    /// lower r10 by the calling function's stack usage, jump to pc + 1 + imm.
    fn local_call(&mut self, pc: usize, insn: Insn) -> Result<(), JitError> {
        let target = usize::try_from(pc as i64 + 1 + i64::from(insn.imm))
            .ok()
            .filter(|&t| t < self.program.insns.len())
            .ok_or_else(|| JitError::Internal(format!("call out of bounds at PC {pc}")))?;
        let target = self.slot(target)?;
        let back = self.slot(pc + 1)?;
        let usage = self
            .program
            .function_containing(pc)
            .map_or(0, |f| f.stack_usage as i32);
        let too_deep = self.fault_stub(fault::CALL_DEPTH, pc, Extra::Reg(R11));
        let a = &mut self.a;
        a.load64(RCX, RSP, DEPTH);
        a.lea(R11, RCX, 1);
        a.alu_ri(Alu::Cmp, true, RCX, MAX_CALL_DEPTH as i32);
        a.jcc(Cond::AboveEq, too_deep);
        a.imul_rri(true, R10, RCX, FRAME_BYTES);
        a.alu_rr(Alu::Add, true, R10, RSP);
        a.lea_label(RCX, back);
        a.store64(R10, FRAMES, RCX);
        for (i, reg) in [6usize, 7, 8, 9, 10].into_iter().enumerate() {
            a.store64(R10, FRAMES + 8 + 8 * i as i32, HOST[reg]);
        }
        a.store64(RSP, DEPTH, R11);
        if usage != 0 {
            a.alu_ri(Alu::Sub, true, HOST[10], usage);
        }
        a.jmp(target);
        Ok(())
    }
}

/// Which helper a call reaches.
#[derive(Debug, Clone, Copy)]
enum Callee {
    /// `call imm`.
    Known(u32),
    /// `callx`: the index is this register's value.
    Reg(Reg),
}

/// The host register of eBPF register `r` (fields above 10 are refused by the validator).
fn host(r: u8) -> Reg {
    HOST[crate::isa::reg_index(r)]
}

/// The run block's layout is what this tier's frame offsets assume.
const _: () = assert!(std::mem::size_of::<RunBlock>() == 48);
