//! Kernel programs through the public API: random context accesses (fixed seed) converted
//! for each packet type, run by both engines in test runs. Every accepted access must lie
//! inside the UAPI struct, and the JIT must give the interpreter's r0, result, packet bytes
//! and ctx_out.

mod common;

use common::rng::Rng;
use rbpf::Vm;
use rbpf::isa::Insn;
use rbpf::kernel::context::{ContextError, ContextKind, KernelLoadError};
use rbpf::kernel::program_type::ProgramType;
use rbpf::kernel::test_run::{TestRunOptions, test_run};

const TYPES: [ProgramType; 7] = [
    ProgramType::Xdp,
    ProgramType::SchedCls,
    ProgramType::SchedAct,
    ProgramType::SocketFilter,
    ProgramType::CgroupSkb,
    ProgramType::LwtXmit,
    ProgramType::SkSkb,
];

/// Offsets of the packet-pointer fields, whose values are addresses (not compared).
fn is_pointer_field(ty: ProgramType, off: i16) -> bool {
    match ContextKind::of(ty) {
        ContextKind::Xdp => off < 12,
        _ => off == 76 || off == 80 || off == 140,
    }
}

/// A random straight-line program of context accesses; `(code, accesses)`.
fn random_program(rng: &mut Rng, ty: ProgramType) -> (Vec<u8>, Vec<(i16, usize)>) {
    let uapi = ContextKind::of(ty).uapi_size() as i64;
    let mut insns = vec![Insn::new(0xb7, 0, 0, 0, 0)];
    let mut accesses = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let size = rng.pick(&[1usize, 2, 4, 4, 4, 8]);
        let opsize = match size {
            1 => 0x10,
            2 => 0x08,
            4 => 0x00,
            _ => 0x18,
        };
        // Mostly aligned inside the struct, sometimes misaligned, before or past it.
        let slot = rng.below(uapi as usize / size + 2) as i64 - 1;
        let skew = if rng.chance(10) { 1 } else { 0 };
        let off = (slot * size as i64 + skew) as i16;
        accesses.push((off, size));
        if rng.chance(80) {
            insns.push(Insn::new(0x61 | opsize, 2, 1, off, 0));
            if !is_pointer_field(ty, off) {
                insns.push(Insn::new(0xaf, 0, 2, 0, 0)); // r0 ^= r2
            }
        } else {
            let value = rng.next() as i32;
            insns.push(Insn::new(0x62 | opsize, 1, 0, off, value));
        }
    }
    insns.push(Insn::new(0x95, 0, 0, 0, 0));
    let code = insns.iter().flat_map(|i| i.to_bytes()).collect();
    (code, accesses)
}

#[derive(Debug, PartialEq)]
struct Outcome {
    result: Result<(), i32>,
    retval: u32,
    data: Vec<u8>,
    ctx: Vec<u8>,
}

fn run(vm: &mut Vm, ty: ProgramType, frame: &[u8], jit: bool) -> Outcome {
    let ctx_size = ContextKind::of(ty).uapi_size();
    let mut data = vec![0u8; 256];
    let mut ctx = vec![0u8; ctx_size];
    let ctx_in = if ty == ProgramType::Xdp {
        // xdp_md: data 0, data_end = the frame's size.
        let mut md = vec![0u8; 24];
        md[4..8].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        md
    } else {
        vec![0u8; ctx_size]
    };
    let mut opts = TestRunOptions {
        data_in: frame,
        data_out: Some(&mut data),
        ctx_in: Some(&ctx_in),
        ctx_out: Some(&mut ctx),
        repeat: 2,
        jit,
        ..Default::default()
    };
    let result = test_run(vm, ty, &mut opts);
    let retval = opts.retval;
    Outcome {
        result,
        retval,
        data,
        ctx,
    }
}

#[test]
fn random_context_accesses_agree_and_stay_inside_the_struct() {
    let mut rng = Rng(0x005e_edc0_17e4_u64);
    let frame: Vec<u8> = (0..64u8).collect();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..600 {
        let ty = rng.pick(&TYPES);
        let (code, accesses) = random_program(&mut rng, ty);
        let mut interp = Vm::new();
        interp.register_linux_helpers().unwrap();
        interp.set_error_printer(Some(Box::new(|_: &str| {})));
        match interp.load_kernel_program(&code, ty) {
            Ok(()) => accepted += 1,
            Err(KernelLoadError::Context(ContextError::InvalidAccess { pc, off, size })) => {
                refused += 1;
                assert!(pc >= 1, "{ty:?}");
                assert!(
                    accesses
                        .iter()
                        .any(|&(o, s)| i32::from(o) == off && s == size)
                );
                continue;
            }
            Err(e) => panic!("{ty:?}: unexpected {e}"),
        }
        let uapi = ContextKind::of(ty).uapi_size() as i64;
        for &(off, size) in &accesses {
            assert!(
                off >= 0 && i64::from(off) + size as i64 <= uapi,
                "{ty:?}: accepted an access at {off} size {size}"
            );
        }
        let mut jit = Vm::new();
        jit.register_linux_helpers().unwrap();
        jit.set_error_printer(Some(Box::new(|_: &str| {})));
        jit.load_kernel_program(&code, ty).unwrap();
        let a = run(&mut interp, ty, &frame, false);
        let b = run(&mut jit, ty, &frame, true);
        assert_eq!(a, b, "{ty:?}: {code:?}");
        assert_eq!(a.result, Ok(()), "{ty:?}");
    }
    eprintln!("{accepted} accepted, {refused} refused");
    // The sweep must exercise both outcomes.
    assert!(
        accepted > 50 && refused > 50,
        "{accepted} accepted, {refused} refused"
    );
}
