//! Target `ctx`: random context accesses, converted for a packet type, run by both engines in
//! test runs with the interpreter as the oracle.
//!
//! The input is a recipe: `head, frame_len, [ctx bytes…], ops…` (head: bits 0–1 the type,
//! bit 2 a second repetition, bits 3–4 the `ctx_in` mode, see [`context_in`]; each op is
//! `kind, a, b` and for some kinds one more byte, see [`generate`]). The harness builds a
//! straight-line program from the ops — loads and stores of 1, 2, 4 or 8 bytes at offsets
//! 0..=220 through r1 or a register or stack slot holding a copy of it, copies, spills, fills
//! and clobbers of those, packet reads and writes through `data`/`data_end` (or `data_meta`)
//! behind a bounds check, and accesses through a context pointer that arithmetic moved — then
//! an exit, and loads it with `Vm::load_kernel_program` as an XDP, SchedCls, SocketFilter or
//! CgroupSkb program.
//!
//! What must hold:
//! * a refusal is a context error naming one of the program's context accesses (an invalid
//!   access with its offset and size, or the access through a moved pointer): the bytecode is
//!   always valid and never leaks or ambiguously uses the context;
//! * an accepted program has no access through a moved pointer, every access lies inside the
//!   UAPI struct, the conversion changed nothing but context accesses, and every converted
//!   access lies inside the converted context buffer (struct plus packet pointers);
//! * a test run with the same frame and `ctx_in` gives the same result, retval, `data_out`,
//!   `ctx_out`, output sizes and redirect in the interpreter and the JIT.
//!
//! Packet pointers never reach r0 or a store, so everything compared is address-free.

use rbpf::Vm;
use rbpf::isa::Insn;
use rbpf::kernel::context::{ContextError, ContextKind, KernelLoadError, sk_buff, xdp_md};
use rbpf::kernel::packet::Redirect;
use rbpf::kernel::program_type::ProgramType;
use rbpf::kernel::test_run::{TestRunOptions, test_run};

use crate::harness::{Reader, explaining, fail};

/// The program types the recipe chooses from (low two bits of its first byte).
const TYPES: [ProgramType; 4] = [
    ProgramType::Xdp,
    ProgramType::SchedCls,
    ProgramType::SocketFilter,
    ProgramType::CgroupSkb,
];

/// The largest context offset the ops use.
const MAX_OFF: u8 = 220;
/// At most this many ops per program.
const MAX_OPS: usize = 96;
/// Registers that may hold the context (r1 at entry, copies in r6–r8).
const CTX_REGS: [u8; 4] = [1, 6, 7, 8];
/// Stack slots (r10 − 8·(n + 1)) that may hold a spilled context.
const SLOTS: usize = 4;
/// The register holding a moved context pointer.
const MOVED: u8 = 9;
/// Capacity of `data_out`.
const DATA_OUT_LEN: usize = 512;

/// One context access the program makes.
#[derive(Debug, Clone, Copy)]
struct Access {
    pc: usize,
    off: i32,
    size: usize,
    /// Through a pointer that arithmetic moved (the conversion must refuse it).
    moved: bool,
}

/// The generated program and what the harness knows about it.
struct Generated {
    insns: Vec<Insn>,
    accesses: Vec<Access>,
}

/// The offsets of `data`, `data_end` and `data_meta` in the type's UAPI struct.
fn packet_fields(kind: ContextKind) -> [usize; 3] {
    match kind {
        ContextKind::Xdp => [xdp_md::DATA, xdp_md::DATA_END, xdp_md::DATA_META],
        _ => [sk_buff::DATA, sk_buff::DATA_END, sk_buff::DATA_META],
    }
}

/// Whether `[off, off + size)` overlaps a field whose value is an address (a packet pointer),
/// which must not reach anything the engines' results are compared on.
fn overlaps_pointer(kind: ContextKind, off: usize, size: usize) -> bool {
    packet_fields(kind)
        .iter()
        .any(|&f| off < f + 4 && f < off + size)
}

/// The opcode size bits of an access of `size` bytes.
fn size_bits(size: usize) -> u8 {
    match size {
        1 => 0x10,
        2 => 0x08,
        4 => 0x00,
        _ => 0x18,
    }
}

/// Builds the program the ops of `r` describe.
fn generate(kind: ContextKind, r: &mut Reader) -> Generated {
    let mut insns = vec![Insn::new(0xb7, 0, 0, 0, 0)]; // r0 = 0
    let mut accesses = Vec::new();
    let mut ctx_regs = vec![1u8];
    let mut slots = [false; SLOTS];
    let [data, data_end, data_meta] = packet_fields(kind);
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        let op = r.byte();
        let a = r.byte();
        let b = r.byte();
        let base = (!ctx_regs.is_empty()).then(|| ctx_regs[a as usize % ctx_regs.len()]);
        let size = [1usize, 2, 4, 8][(a >> 6) as usize];
        let off = b % (MAX_OFF + 1);
        match op % 8 {
            // A load from the context, folded into r0 unless it may be an address.
            0 | 1 => {
                let Some(base) = base else { continue };
                accesses.push(Access {
                    pc: insns.len(),
                    off: off.into(),
                    size,
                    moved: false,
                });
                insns.push(Insn::new(0x61 | size_bits(size), 2, base, off.into(), 0));
                if !overlaps_pointer(kind, off.into(), size) {
                    insns.push(Insn::new(0xaf, 0, 2, 0, 0)); // r0 ^= r2
                }
            }
            // A store into the context: an immediate, or r0.
            2 => {
                let Some(base) = base else { continue };
                let value = r.byte();
                accesses.push(Access {
                    pc: insns.len(),
                    off: off.into(),
                    size,
                    moved: false,
                });
                let insn = if value & 1 == 0 {
                    Insn::new(0x62 | size_bits(size), base, 0, off.into(), value.into())
                } else {
                    Insn::new(0x63 | size_bits(size), base, 0, off.into(), 0)
                };
                insns.push(insn);
            }
            // A copy of a context register into r6–r8.
            3 => {
                let Some(base) = base else { continue };
                let dst = CTX_REGS[1 + b as usize % 3];
                insns.push(Insn::new(0xbf, dst, base, 0, 0)); // dst = base
                if !ctx_regs.contains(&dst) {
                    ctx_regs.push(dst);
                }
            }
            // A spill into a slot, a fill from one, or a scalar over one.
            4 => {
                let slot = b as usize % SLOTS;
                let at = -8 * (slot as i16 + 1);
                match a % 3 {
                    0 => {
                        let Some(base) = base else { continue };
                        insns.push(Insn::new(0x7b, 10, base, at, 0)); // *(u64 *)(r10 + at) = base
                        slots[slot] = true;
                    }
                    1 => {
                        if !slots[slot] {
                            continue;
                        }
                        let dst = CTX_REGS[1 + (a >> 2) as usize % 3];
                        insns.push(Insn::new(0x79, dst, 10, at, 0)); // dst = *(u64 *)(r10 + at)
                        if !ctx_regs.contains(&dst) {
                            ctx_regs.push(dst);
                        }
                    }
                    _ => {
                        insns.push(Insn::new(0x7a, 10, 0, at, a.into())); // *(u64 *)(r10 + at) = a
                        slots[slot] = false;
                    }
                }
            }
            // A scalar over a register that may hold the context.
            5 => {
                let dst = CTX_REGS[a as usize % CTX_REGS.len()];
                insns.push(Insn::new(0xb7, dst, 0, 0, b.into())); // dst = b
                ctx_regs.retain(|&r| r != dst);
            }
            // A packet read or write behind a bounds check (which may be too short: the
            // engines must still agree).
            6 => {
                let Some(base) = base else { continue };
                let c = r.byte();
                let start = if a & 0x10 != 0 { data_meta } else { data };
                for (pc_off, field) in [(0, start), (1, data_end)] {
                    accesses.push(Access {
                        pc: insns.len() + pc_off,
                        off: field as i32,
                        size: 4,
                        moved: false,
                    });
                }
                insns.push(Insn::new(0x61, 3, base, start as i16, 0)); // r3 = start
                insns.push(Insn::new(0x61, 4, base, data_end as i16, 0)); // r4 = data_end
                insns.push(Insn::new(0xbf, 5, 3, 0, 0)); // r5 = r3
                insns.push(Insn::new(0x07, 5, 0, 0, (c & 0x7f).into())); // r5 += checked
                let size = [1usize, 2, 4, 8][(a & 3) as usize];
                let at = i16::from(b);
                if a & 0x20 == 0 {
                    insns.push(Insn::new(0x2d, 5, 4, 2, 0)); // if r5 > r4 goto +2
                    insns.push(Insn::new(0x61 | size_bits(size), 2, 3, at, 0));
                    insns.push(Insn::new(0xaf, 0, 2, 0, 0)); // r0 ^= r2
                } else {
                    insns.push(Insn::new(0x2d, 5, 4, 1, 0)); // if r5 > r4 goto +1
                    insns.push(Insn::new(0x62 | size_bits(size), 3, 0, at, c.into()));
                }
            }
            // An access through a context pointer that arithmetic moved.
            _ => {
                let Some(base) = base else { continue };
                let delta = 1 + i32::from(a >> 4);
                insns.push(Insn::new(0xbf, MOVED, base, 0, 0)); // r9 = base
                insns.push(Insn::new(0x07, MOVED, 0, 0, delta)); // r9 += delta
                accesses.push(Access {
                    pc: insns.len(),
                    off: off.into(),
                    size,
                    moved: true,
                });
                insns.push(Insn::new(0x61 | size_bits(size), 2, MOVED, off.into(), 0));
            }
        }
    }
    insns.push(Insn::new(0x95, 0, 0, 0, 0)); // exit
    Generated { insns, accesses }
}

/// The `ctx_in` the recipe asks for: none, the minimal valid one, the fields test runs honour
/// set from the input, or one arbitrary word (mostly refused with `-EINVAL`).
fn context_in(kind: ContextKind, mode: u8, frame_len: usize, r: &mut Reader) -> Option<Vec<u8>> {
    let mut ctx = vec![0u8; kind.uapi_size()];
    let put = |ctx: &mut Vec<u8>, off: usize, v: u32| {
        ctx[off..off + 4].copy_from_slice(&v.to_le_bytes());
    };
    if kind == ContextKind::Xdp {
        put(&mut ctx, xdp_md::DATA_END, frame_len as u32);
    }
    match mode % 4 {
        0 => return None,
        1 => {}
        2 => {
            if kind == ContextKind::Xdp {
                // Metadata of 0..=32 bytes (a multiple of 4), and an ingress device.
                let meta = u32::from(r.byte() % 9) * 4;
                put(&mut ctx, xdp_md::DATA, meta.min(frame_len as u32));
                put(&mut ctx, xdp_md::INGRESS_IFINDEX, r.byte().into());
            } else {
                for off in [sk_buff::MARK, sk_buff::PRIORITY, sk_buff::IFINDEX]
                    .into_iter()
                    .chain((sk_buff::CB..sk_buff::CB_END).step_by(4))
                {
                    put(
                        &mut ctx,
                        off,
                        u32::from_le_bytes([r.byte(), r.byte(), 0, 0]),
                    );
                }
            }
        }
        _ => {
            let off = (r.byte() as usize * 4) % ctx.len();
            put(
                &mut ctx,
                off,
                u32::from_le_bytes([r.byte(), r.byte(), 0, 0]),
            );
        }
    }
    Some(ctx)
}

/// What one test run gives.
#[derive(Debug, PartialEq)]
struct Outcome {
    result: Result<(), i32>,
    retval: u32,
    data_size_out: u32,
    ctx_size_out: u32,
    data: Vec<u8>,
    ctx: Vec<u8>,
    redirect: Option<Redirect>,
}

fn test(
    vm: &mut Vm,
    ty: ProgramType,
    frame: &[u8],
    ctx_in: Option<&[u8]>,
    repeat: u32,
    jit: bool,
) -> Outcome {
    let kind = ContextKind::of(ty);
    let mut data = vec![0u8; DATA_OUT_LEN];
    let mut ctx = vec![0u8; kind.uapi_size()];
    let mut opts = TestRunOptions {
        data_in: frame,
        data_out: Some(&mut data),
        ctx_in,
        ctx_out: Some(&mut ctx),
        repeat,
        jit,
        ..Default::default()
    };
    let result = test_run(vm, ty, &mut opts);
    let (retval, data_size_out, ctx_size_out, redirect) = (
        opts.retval,
        opts.data_size_out,
        opts.ctx_size_out,
        opts.redirect,
    );
    // Past the output size the buffer keeps its zeros in both runs; shorter reports.
    data.truncate((data_size_out as usize).min(DATA_OUT_LEN));
    Outcome {
        result,
        retval,
        data_size_out,
        ctx_size_out,
        data,
        ctx,
        redirect,
    }
}

/// Checks a refusal against the accesses the program makes.
fn check_refusal(err: &KernelLoadError, g: &Generated, ty: ProgramType) {
    let named = match err {
        KernelLoadError::Context(ContextError::InvalidAccess { pc, off, size }) => g
            .accesses
            .iter()
            .any(|a| a.pc == *pc && a.off == *off && a.size == *size && !a.moved),
        KernelLoadError::Context(ContextError::ModifiedContext { pc, reg }) => {
            *reg == MOVED && g.accesses.iter().any(|a| a.pc == *pc && a.moved)
        }
        _ => false,
    };
    if !named {
        fail(
            &format!(
                "{ty:?}: refused with {err}, which names none of the program's context accesses"
            ),
            &g.insns,
        );
    }
}

/// Checks what the conversion of an accepted program did.
fn check_accepted(vm: &Vm, g: &Generated, ty: ProgramType) {
    let kind = ContextKind::of(ty);
    let uapi = kind.uapi_size() as i64;
    for a in &g.accesses {
        if a.moved {
            fail(
                &format!(
                    "{ty:?}: accepted the access through a moved context pointer at PC {}",
                    a.pc
                ),
                &g.insns,
            );
        }
        if a.off < 0 || i64::from(a.off) + a.size as i64 > uapi {
            fail(
                &format!(
                    "{ty:?}: accepted an access at off={} size={} outside the {uapi}-byte struct",
                    a.off, a.size
                ),
                &g.insns,
            );
        }
    }
    let converted = &vm.program().expect("loaded").insns;
    if converted.len() != g.insns.len() {
        fail(
            &format!(
                "{ty:?}: the conversion changed the program's length to {}",
                converted.len()
            ),
            &g.insns,
        );
    }
    for (pc, (old, new)) in g.insns.iter().zip(converted).enumerate() {
        let access = g.accesses.iter().any(|a| a.pc == pc);
        if !access {
            if old != new {
                fail(
                    &format!("{ty:?}: the conversion changed PC {pc}, which is no context access"),
                    &g.insns,
                );
            }
            continue;
        }
        let size = rbpf::isa::size::bytes(new.opc) as i64;
        let off = i64::from(new.off);
        if off < 0 || off + size > kind.buffer_size() as i64 {
            fail(
                &format!(
                    "{ty:?}: PC {pc} converted to an access at off={off} size={size}, outside the {}-byte context",
                    kind.buffer_size()
                ),
                &g.insns,
            );
        }
    }
}

/// Runs one `ctx` input: a recipe.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let head = r.byte();
    let ty = TYPES[(head & 3) as usize];
    let kind = ContextKind::of(ty);
    let repeat = 1 + u32::from(head >> 2 & 1);
    let frame_len = 14 + r.byte() as usize % 115;
    let frame: Vec<u8> = (0..frame_len)
        .map(|i| (i as u8).wrapping_mul(29) ^ 0x5a)
        .collect();
    let ctx_in = context_in(kind, head >> 3, frame_len, &mut r);
    let g = generate(kind, &mut r);
    let code = rbpf::isa::encode_slots(&g.insns);
    if explaining() {
        eprintln!(
            "rbpf-fuzz: {ty:?}, frame {frame_len} bytes, repeat {repeat}, ctx_in {ctx_in:?}\n{}",
            rbpf::disasm::disassemble(&g.insns)
        );
    }
    let mut vm = Vm::new();
    vm.register_linux_helpers()
        .expect("kernel helpers register");
    vm.set_error_printer(Some(Box::new(|_| {})));
    if let Err(err) = vm.load_kernel_program(&code, ty) {
        if explaining() {
            eprintln!("rbpf-fuzz: refused: {err}");
        }
        check_refusal(&err, &g, ty);
        return;
    }
    check_accepted(&vm, &g, ty);
    if let Err(err) = vm.compile(rbpf::jit::JitMode::Basic) {
        fail(
            &format!("{ty:?}: the JIT refused a converted program: {err}"),
            &g.insns,
        );
    }
    let interp = test(&mut vm, ty, &frame, ctx_in.as_deref(), repeat, false);
    let jit = test(&mut vm, ty, &frame, ctx_in.as_deref(), repeat, true);
    if explaining() {
        eprintln!("rbpf-fuzz: interpreter {interp:?}\nrbpf-fuzz: JIT {jit:?}");
    }
    if interp != jit {
        fail(
            &format!("{ty:?}: the test runs differ\ninterpreter: {interp:?}\nJIT: {jit:?}"),
            &g.insns,
        );
    }
}
