//! Unit tests of the context dataflow, the access rules and the rewrite.

use super::*;
use crate::tools::asm::assemble_bytes;

/// Verifies and converts `text` for `ty` on a fresh VM; the converted instructions.
fn convert_asm(text: &str, ty: ProgramType) -> Result<Vec<Insn>, ContextError> {
    let code = assemble_bytes(text).expect("assembles");
    let mut vm = Vm::new();
    vm.register_linux_helpers().unwrap();
    let mut program = vm.verify(&code).expect("verifies");
    convert(&mut program, ty)?;
    Ok(program.insns)
}

fn xdp(text: &str) -> Result<Vec<Insn>, ContextError> {
    convert_asm(text, ProgramType::Xdp)
}

fn invalid(pc: usize, off: i32, size: usize) -> ContextError {
    ContextError::InvalidAccess { pc, off, size }
}

#[test]
fn packet_pointer_loads_become_loads_of_the_appended_pointers() {
    let insns = xdp("ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nldxw %r4, [%r1+8]\nldxw %r5, [%r1+12]\nmov %r0, 0\nexit").unwrap();
    assert_eq!(insns[0], Insn::new(0x79, 2, 1, 24, 0));
    assert_eq!(insns[1], Insn::new(0x79, 3, 1, 32, 0));
    assert_eq!(insns[2], Insn::new(0x79, 4, 1, 40, 0));
    // Other fields stay in place.
    assert_eq!(insns[3], Insn::new(0x61, 5, 1, 12, 0));

    let insns = convert_asm(
        "ldxw %r2, [%r1+76]\nldxw %r3, [%r1+80]\nldxw %r4, [%r1+140]\nldxw %r5, [%r1+0]\nmov %r0, 0\nexit",
        ProgramType::SchedCls,
    )
    .unwrap();
    assert_eq!(insns[0], Insn::new(0x79, 2, 1, 192, 0));
    assert_eq!(insns[1], Insn::new(0x79, 3, 1, 200, 0));
    assert_eq!(insns[2], Insn::new(0x79, 4, 1, 208, 0));
    assert_eq!(insns[3], Insn::new(0x61, 5, 1, 0, 0));
}

#[test]
fn plain_types_are_not_converted() {
    let text = "ldxdw %r2, [%r1+200]\nstxdw [%r1+8], %r2\nmov %r0, 0\nexit";
    for ty in [
        ProgramType::Kprobe,
        ProgramType::Tracepoint,
        ProgramType::RawTracepoint,
        ProgramType::Unspecified,
    ] {
        let code = assemble_bytes(text).unwrap();
        let vm = Vm::new();
        let original = vm.verify(&code).unwrap().insns;
        assert_eq!(convert_asm(text, ty).unwrap(), original, "{ty:?}");
    }
}

#[test]
fn copies_and_spills_keep_the_context() {
    // mov64 copy, a spill and a fill, then a load through the filled register.
    let insns = xdp(
        "mov %r6, %r1\nstxdw [%r10-16], %r6\nmov %r1, 0\nldxdw %r7, [%r10-16]\nldxw %r2, [%r7+4]\nmov %r0, 0\nexit",
    )
    .unwrap();
    assert_eq!(insns[4], Insn::new(0x79, 2, 7, 32, 0));
    // r6 survives a helper call; r1 does not.
    let insns = xdp("mov %r6, %r1\ncall 1\nldxw %r2, [%r6+0]\nmov %r0, 0\nexit").unwrap();
    assert_eq!(insns[2], Insn::new(0x79, 2, 6, 24, 0));
    let insns = xdp("call 1\nldxw %r2, [%r1+0]\nmov %r0, 0\nexit").unwrap();
    assert_eq!(
        insns[1],
        Insn::new(0x61, 2, 1, 0, 0),
        "r1 after a call is not ctx"
    );
}

#[test]
fn a_narrow_store_over_a_spill_forgets_it() {
    let insns = xdp(
        "stxdw [%r10-8], %r1\nstb [%r10-8], 0\nldxdw %r2, [%r10-8]\nldxw %r3, [%r2+0]\nmov %r0, 0\nexit",
    )
    .unwrap();
    assert_eq!(insns[3], Insn::new(0x61, 3, 2, 0, 0));
}

#[test]
fn local_calls_pass_the_context_to_the_callee() {
    let insns =
        xdp("mov %r6, %r1\ncall local f\nldxw %r2, [%r6+4]\nexit\nf:\nldxw %r0, [%r1+0]\nexit")
            .unwrap();
    assert_eq!(
        insns[2],
        Insn::new(0x79, 2, 6, 32, 0),
        "r6 kept across the call"
    );
    assert_eq!(insns[4], Insn::new(0x79, 0, 1, 24, 0), "callee's r1");
    // The callee's frame starts empty: the caller's spill is not the callee's slot.
    let insns = xdp(
        "stxdw [%r10-8], %r1\ncall local f\nmov %r0, 0\nexit\nf:\nldxdw %r2, [%r10-8]\nldxw %r0, [%r2+0]\nexit",
    )
    .unwrap();
    assert_eq!(insns[5], Insn::new(0x61, 0, 2, 0, 0));
}

#[test]
fn a_register_that_is_the_context_on_one_path_only_is_refused() {
    let err = xdp("jeq %r2, 0, +1\nmov %r1, %r10\nldxw %r0, [%r1+0]\nexit").unwrap_err();
    assert_eq!(err, ContextError::AmbiguousPointer { pc: 2 });
    assert_eq!(
        err.to_string(),
        "same insn cannot be used with different pointers at PC 2"
    );
    // Through a callee reached with different r1s.
    let err = xdp(
        "mov %r6, %r1\ncall local f\nmov %r1, %r10\ncall local f\nexit\nf:\nldxw %r0, [%r1+0]\nexit",
    )
    .unwrap_err();
    assert_eq!(err, ContextError::AmbiguousPointer { pc: 5 });
}

#[test]
fn modified_context_pointers_are_refused() {
    let err = xdp("add %r1, 4\nldxw %r0, [%r1+0]\nexit").unwrap_err();
    assert_eq!(err, ContextError::ModifiedContext { pc: 1, reg: 1 });
    assert_eq!(
        err.to_string(),
        "dereference of modified ctx ptr R1 at PC 1"
    );
    let err = xdp("mov %r2, 4\nadd %r2, %r1\nstw [%r2+0], 1\nexit").unwrap_err();
    assert_eq!(err, ContextError::ModifiedContext { pc: 2, reg: 2 });
    // Arithmetic without a dereference is fine.
    assert!(xdp("add %r1, 4\nmov %r0, %r1\nexit").is_ok());
}

#[test]
fn atomics_and_leaks_of_the_context_are_refused() {
    let err = convert_asm(
        "mov %r2, 1\nlock add32 [%r1+8], %r2\nmov %r0, 0\nexit",
        ProgramType::SchedCls,
    )
    .unwrap_err();
    assert_eq!(err, ContextError::Atomic { pc: 1, reg: 1 });
    let err = xdp("mov %r2, %r10\nstxdw [%r2-8], %r1\nmov %r0, 0\nexit").unwrap_err();
    assert_eq!(err, ContextError::Leak { pc: 1, reg: 1 });
}

#[test]
fn the_error_names_offset_size_and_pc_like_the_kernel() {
    let err = convert_asm(
        "mov %r0, 0\nmov %r0, 0\nmov %r0, 0\nmov %r0, 0\nmov %r0, 0\nldxh %r0, [%r1+76]\nexit",
        ProgramType::SchedCls,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid bpf_context access off=76 size=2 at PC 5"
    );
}

#[test]
fn xdp_access_rules() {
    let load = |off: i32, size: usize| {
        xdp_valid(Access {
            off,
            size,
            write: false,
        })
    };
    for off in [0, 4, 8, 12, 16] {
        assert!(load(off, 4), "{off}");
    }
    assert!(!load(20, 4), "egress_ifindex outside DEVMAP programs");
    assert!(!load(24, 4), "past the end");
    assert!(!load(-4, 4));
    assert!(!load(2, 4), "misaligned");
    assert!(!load(12, 2), "narrow");
    assert!(!load(0, 8), "wide");
    assert!(!xdp_valid(Access {
        off: 12,
        size: 4,
        write: true
    }));
    // Through the rewrite, with the PC.
    assert_eq!(
        xdp("mov %r0, 0\nstw [%r1+16], 1\nexit").unwrap_err(),
        invalid(1, 16, 4)
    );
    assert_eq!(
        xdp("ldxb %r0, [%r1+0]\nexit").unwrap_err(),
        invalid(0, 0, 1)
    );
}

fn skb(ty: ProgramType, off: i32, size: usize, write: bool) -> bool {
    skb_type_valid(ty, Access { off, size, write })
}

#[test]
fn skb_common_rules() {
    use ProgramType::SchedCls as Tc;
    use sk_buff::*;
    // Narrow reads of ordinary fields, aligned.
    for size in [1, 2, 4] {
        assert!(skb(Tc, LEN as i32, size, false));
        assert!(skb(Tc, (MARK + 4 - size) as i32, size, false));
    }
    assert!(!skb(Tc, 1, 2, false), "misaligned");
    assert!(!skb(Tc, LEN as i32, 8, false), "wider than the field");
    // Packet pointers: exactly 4 bytes.
    for off in [DATA, DATA_END, DATA_META] {
        assert!(skb(Tc, off as i32, 4, false));
        assert!(!skb(Tc, off as i32, 2, false));
        assert!(!skb(Tc, off as i32, 4, true), "read-only");
    }
    // cb[]: any aligned size inside the array, read and write.
    assert!(skb(Tc, CB as i32, 8, true));
    assert!(skb(Tc, 56, 8, false));
    assert!(!skb(Tc, 64, 8, false), "past cb[4]");
    assert!(skb(Tc, 67, 1, true));
    // tstamp and hwtstamp: 8 bytes; hwtstamp read-only.
    assert!(skb(Tc, TSTAMP as i32, 8, true));
    assert!(!skb(Tc, TSTAMP as i32, 4, false));
    assert!(skb(Tc, HWTSTAMP as i32, 8, false));
    assert!(!skb(Tc, HWTSTAMP as i32, 8, true));
    assert!(!skb(Tc, HWTSTAMP as i32, 4, false));
    // sk: an 8-byte read; flow_keys never.
    assert!(skb(Tc, SK as i32, 8, false));
    assert!(!skb(Tc, SK as i32 + 4, 4, false));
    assert!(!skb(Tc, FLOW_KEYS as i32, 8, false));
    // tstamp_type: one byte for TC; padding never.
    assert!(skb(Tc, TSTAMP_TYPE as i32, 1, false));
    assert!(!skb(Tc, TSTAMP_TYPE as i32, 4, false));
    assert!(!skb(Tc, 182, 2, false));
    // Outside the struct.
    assert!(!skb(Tc, SK_BUFF_SIZE as i32, 4, false));
    assert!(!skb(Tc, -4, 4, false));
    // Writes of writable fields: exactly 4 bytes.
    assert!(skb(Tc, MARK as i32, 4, true));
    assert!(!skb(Tc, MARK as i32, 2, true));
    // Read-only fields refuse writes.
    assert!(!skb(Tc, LEN as i32, 4, true));
    assert!(!skb(Tc, PROTOCOL as i32, 4, true));
}

#[test]
fn skb_per_type_rules() {
    use ProgramType::*;
    use sk_buff::*;
    // Socket filters: no packet pointers, no socket fields, only cb[] writable.
    assert!(!skb(SocketFilter, DATA as i32, 4, false));
    assert!(!skb(SocketFilter, DATA_END as i32, 4, false));
    assert!(!skb(SocketFilter, TSTAMP as i32, 8, false));
    assert!(!skb(SocketFilter, MARK as i32, 4, true));
    assert!(skb(SocketFilter, CB as i32, 4, true));
    assert!(skb(SocketFilter, PROTOCOL as i32, 4, false));
    // TC: writable mark, priority, tc_index, tc_classid, queue_mapping, tstamp; no sockets.
    for off in [MARK, PRIORITY, TC_INDEX, TC_CLASSID, QUEUE_MAPPING] {
        assert!(skb(SchedAct, off as i32, 4, true), "{off}");
    }
    assert!(!skb(SchedCls, FAMILY as i32, 4, false));
    assert!(!skb(SchedCls, LOCAL_PORT as i32, 4, false));
    assert!(!skb(SchedCls, HASH as i32, 4, true));
    // cgroup skb: packet pointers but no data_meta, no tc_classid, sockets readable.
    assert!(skb(CgroupSkb, DATA as i32, 4, false));
    assert!(!skb(CgroupSkb, DATA_META as i32, 4, false));
    assert!(!skb(CgroupSkb, TC_CLASSID as i32, 4, false));
    assert!(skb(CgroupSkb, FAMILY as i32, 4, false));
    assert!(skb(CgroupSkb, TSTAMP as i32, 8, true));
    assert!(!skb(CgroupSkb, TC_INDEX as i32, 4, true));
    // lwt: no data_meta, no tstamp; mark writable.
    assert!(skb(LwtXmit, DATA as i32, 4, false));
    assert!(!skb(LwtIn, DATA_META as i32, 4, false));
    assert!(!skb(LwtOut, TSTAMP as i32, 8, false));
    assert!(skb(LwtIn, MARK as i32, 4, true));
    // sk_skb: no mark at all; tc_index and priority writable.
    assert!(!skb(SkSkb, MARK as i32, 4, false));
    assert!(skb(SkSkb, TC_INDEX as i32, 4, true));
    assert!(skb(SkSkb, FAMILY as i32, 4, false));
    assert!(!skb(SkSkb, CB as i32, 4, true));
}

#[test]
fn converted_programs_load_on_a_vm() {
    let code =
        assemble_bytes("ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r0, %r3\nsub %r0, %r2\nexit")
            .unwrap();
    let mut vm = Vm::new();
    vm.load_kernel_program(&code, ProgramType::Xdp).unwrap();
    assert_eq!(vm.program().unwrap().insns[0], Insn::new(0x79, 2, 1, 24, 0));
    let bad = assemble_bytes("stw [%r1+0], 1\nexit").unwrap();
    let mut vm = Vm::new();
    assert_eq!(
        vm.load_kernel_program(&bad, ProgramType::Xdp).unwrap_err(),
        KernelLoadError::Context(invalid(0, 0, 4))
    );
    assert!(vm.program().is_none());
}
