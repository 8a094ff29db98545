//! Test runs per program type, in both engines.

use super::*;
use crate::kernel::context::sk_buff;
use crate::tools::asm::assemble_bytes;

pub(crate) fn load(text: &str, ty: ProgramType) -> Vm {
    let code = assemble_bytes(text).expect("assembles");
    let mut vm = Vm::new();
    vm.register_linux_helpers().unwrap();
    vm.set_error_printer(Some(Box::new(|_: &str| {})));
    vm.load_kernel_program(&code, ty).expect("loads");
    vm
}

/// A frame of `len` bytes: an Ethernet header for IPv4 to the all-zero address, then a
/// counting payload.
pub(crate) fn frame(len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| i as u8).collect();
    f[..6].fill(0);
    f[12] = 0x08;
    f[13] = 0x00;
    f
}

const XDP_LEN: &str = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r0, %r3\nsub %r0, %r2\nexit";

#[test]
fn xdp_sees_the_frame_after_the_kernels_headroom() {
    // r0 = data - start of the page: data sits XDP_PACKET_HEADROOM into the buffer, which
    // is the packet region; read the byte before data (headroom zeros) and the first byte.
    for jit in [false, true] {
        let mut vm = load(XDP_LEN, ProgramType::Xdp);
        let data = frame(60);
        let mut out = vec![0u8; 128];
        let mut opts = TestRunOptions {
            data_in: &data,
            data_out: Some(&mut out),
            jit,
            ..Default::default()
        };
        test_run(&mut vm, ProgramType::Xdp, &mut opts).unwrap();
        assert_eq!((opts.retval, opts.data_size_out), (60, 60));
        assert_eq!(&out[..60], &data[..]);
    }
    // data - data_meta is 0 without metadata, data itself 256 bytes after the buffer start
    // (the region): a load 256 bytes below data reaches the buffer's first byte, 257 faults.
    let mut vm = load(
        "ldxw %r2, [%r1+0]\nldxb %r0, [%r2-256]\nldxw %r3, [%r1+8]\nsub %r2, %r3\nadd %r0, %r2\nexit",
        ProgramType::Xdp,
    );
    let data = frame(20);
    let mut opts = TestRunOptions {
        data_in: &data,
        ..Default::default()
    };
    test_run(&mut vm, ProgramType::Xdp, &mut opts).unwrap();
    assert_eq!(opts.retval, 0);
    let mut vm = load(
        "ldxw %r2, [%r1+0]\nldxb %r0, [%r2-257]\nexit",
        ProgramType::Xdp,
    );
    let mut opts = TestRunOptions {
        data_in: &data,
        ..Default::default()
    };
    assert_eq!(
        test_run(&mut vm, ProgramType::Xdp, &mut opts),
        Err(-libc::EFAULT)
    );
}

#[test]
fn xdp_ctx_in_metadata_and_refusals() {
    let mut vm = load(
        "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+8]\nmov %r0, %r2\nsub %r0, %r3\nldxw %r4, [%r1+12]\nadd %r0, %r4\nexit",
        ProgramType::Xdp,
    );
    let data = frame(64);
    let md = |data: u32, end: u32, meta: u32, ifindex: u32, queue: u32, egress: u32| {
        let mut m = Vec::new();
        for v in [data, end, meta, ifindex, queue, egress] {
            m.extend_from_slice(&v.to_le_bytes());
        }
        m
    };
    // 8 bytes of metadata: data - data_meta = 8; ingress_ifindex 5 is seen (no device).
    let ctx_in = md(8, 64, 0, 5, 2, 0);
    let mut ctx_out = vec![0u8; 24];
    let mut out = vec![0u8; 64];
    let mut opts = TestRunOptions {
        data_in: &data,
        data_out: Some(&mut out),
        ctx_in: Some(&ctx_in),
        ctx_out: Some(&mut ctx_out),
        ..Default::default()
    };
    test_run(&mut vm, ProgramType::Xdp, &mut opts).unwrap();
    assert_eq!(opts.retval, 8 + 5);
    assert_eq!(opts.data_size_out, 64, "data_out holds the metadata too");
    assert_eq!(opts.ctx_size_out, 24);
    assert_eq!(out, data);
    assert_eq!(&ctx_out[..12], &md(8, 64, 0, 0, 0, 0)[..12]);
    assert_eq!(u32_at(&ctx_out, 12), 5);
    let refused = [
        md(0, 63, 0, 0, 0, 0),  // data_end != size
        md(0, 64, 4, 0, 0, 0),  // data_meta
        md(2, 64, 0, 0, 0, 0),  // metadata not a multiple of 4
        md(36, 64, 0, 0, 0, 0), // metadata above 32
        md(0, 64, 0, 0, 1, 0),  // a queue without a device
        md(0, 64, 0, 1, 0, 3),  // egress_ifindex
    ];
    for ctx_in in refused {
        let mut opts = TestRunOptions {
            data_in: &data,
            ctx_in: Some(&ctx_in),
            ..Default::default()
        };
        assert_eq!(
            test_run(&mut vm, ProgramType::Xdp, &mut opts),
            Err(-libc::EINVAL),
            "{ctx_in:?}"
        );
    }
    // Too short a frame, flags, cpu.
    let short = frame(14);
    for opts in [
        TestRunOptions {
            data_in: &short[..13],
            ..Default::default()
        },
        TestRunOptions {
            data_in: &short,
            flags: 1,
            ..Default::default()
        },
        TestRunOptions {
            data_in: &short,
            cpu: 1,
            ..Default::default()
        },
    ] {
        let mut opts = opts;
        assert_eq!(
            test_run(&mut vm, ProgramType::Xdp, &mut opts),
            Err(-libc::EINVAL)
        );
    }
    // A non-zero tail beyond struct xdp_md: -E2BIG.
    let mut long = md(0, 64, 0, 0, 0, 0);
    long.extend_from_slice(&[0, 1]);
    let mut opts = TestRunOptions {
        data_in: &data,
        ctx_in: Some(&long),
        ..Default::default()
    };
    assert_eq!(
        test_run(&mut vm, ProgramType::Xdp, &mut opts),
        Err(-libc::E2BIG)
    );
}

#[test]
fn a_small_data_out_gets_a_partial_copy_and_enospc() {
    let mut vm = load(XDP_LEN, ProgramType::Xdp);
    let data = frame(40);
    let mut out = vec![0u8; 16];
    let mut opts = TestRunOptions {
        data_in: &data,
        data_out: Some(&mut out),
        ..Default::default()
    };
    assert_eq!(
        test_run(&mut vm, ProgramType::Xdp, &mut opts),
        Err(-libc::ENOSPC)
    );
    assert_eq!((opts.data_size_out, opts.retval), (40, 40));
    assert_eq!(out, data[..16]);
}

#[test]
fn repeat_runs_n_times_and_reports_a_mean_duration() {
    // Each run increments a map-free counter in cb[0], which persists across repeats as
    // the kernel's skb does.
    let mut vm = load(
        "ldxw %r2, [%r1+48]\nadd %r2, 1\nstxw [%r1+48], %r2\nmov %r0, %r2\nexit",
        ProgramType::SchedCls,
    );
    let data = frame(64);
    let ctx_in = vec![0u8; 192];
    let mut ctx_out = vec![0u8; 192];
    let mut opts = TestRunOptions {
        data_in: &data,
        ctx_in: Some(&ctx_in),
        ctx_out: Some(&mut ctx_out),
        repeat: 1000,
        ..Default::default()
    };
    test_run(&mut vm, ProgramType::SchedCls, &mut opts).unwrap();
    assert_eq!(opts.retval, 1000);
    assert!(opts.duration < 1_000_000, "{}", opts.duration);
    assert_eq!(u32_at(&ctx_out, sk_buff::CB), 1000);
    // repeat 0 runs once.
    let mut opts = TestRunOptions {
        data_in: &data,
        ..Default::default()
    };
    test_run(&mut vm, ProgramType::SchedCls, &mut opts).unwrap();
    assert_eq!(opts.retval, 1);
}

#[test]
fn tc_sees_the_frame_from_the_ethernet_header_with_protocol_and_len() {
    use sk_buff::*;
    let text = format!(
        "ldxw %r2, [%r1+{DATA}]\nldxw %r3, [%r1+{DATA_END}]\nldxh %r4, [%r2+12]\n\
         ldxw %r5, [%r1+{PROTOCOL}]\njne %r4, %r5, +6\nldxw %r0, [%r1+{LEN}]\n\
         ldxw %r6, [%r1+{PKT_TYPE}]\nlsh %r6, 16\nor %r0, %r6\n\
         stw [%r1+{MARK}], 77\nexit\nmov %r0, -1\nexit"
    );
    for jit in [false, true] {
        let mut vm = load(&text, ProgramType::SchedCls);
        let mut data = frame(70);
        data[0] = 2; // another host's address: PACKET_OTHERHOST
        let mut ctx_in = vec![0u8; 192];
        ctx_in[PRIORITY] = 9;
        let mut ctx_out = vec![0u8; 192];
        let mut out = vec![0u8; 70];
        let mut opts = TestRunOptions {
            data_in: &data,
            data_out: Some(&mut out),
            ctx_in: Some(&ctx_in),
            ctx_out: Some(&mut ctx_out),
            jit,
            ..Default::default()
        };
        test_run(&mut vm, ProgramType::SchedCls, &mut opts).unwrap();
        assert_eq!(opts.retval, 70 | (3 << 16));
        assert_eq!(opts.ctx_size_out, 192);
        assert_eq!(out, data);
        assert_eq!(u32_at(&ctx_out, MARK), 77);
        assert_eq!(u32_at(&ctx_out, PRIORITY), 9);
        assert_eq!(u32_at(&ctx_out, WIRE_LEN), 70);
        assert_eq!(u32_at(&ctx_out, IFINDEX), 1);
        assert_eq!(u32_at(&ctx_out, LEN), 0, "len is not copied back");
    }
}

#[test]
fn skb_ctx_in_fields_the_kernel_refuses() {
    use sk_buff::*;
    let mut vm = load("mov %r0, 0\nexit", ProgramType::SchedCls);
    let data = frame(64);
    for (off, value) in [
        (LEN, 1u8),
        (QUEUE_MAPPING, 1),
        (PROTOCOL, 1),
        (TC_INDEX, 1),
        (HASH, 1),
        (DATA, 1),
        (SK, 1),
        (TSTAMP_TYPE, 1),
    ] {
        let mut ctx_in = vec![0u8; 192];
        ctx_in[off] = value;
        let mut opts = TestRunOptions {
            data_in: &data,
            ctx_in: Some(&ctx_in),
            ..Default::default()
        };
        assert_eq!(
            test_run(&mut vm, ProgramType::SchedCls, &mut opts),
            Err(-libc::EINVAL),
            "{off}"
        );
    }
    // wire_len below len, gso_segs above GSO_MAX_SEGS.
    let mut ctx_in = vec![0u8; 192];
    ctx_in[WIRE_LEN] = 10;
    let mut opts = TestRunOptions {
        data_in: &data,
        ctx_in: Some(&ctx_in),
        ..Default::default()
    };
    assert_eq!(
        test_run(&mut vm, ProgramType::SchedCls, &mut opts),
        Err(-libc::EINVAL)
    );
    let mut ctx_in = vec![0u8; 192];
    ctx_in[GSO_SEGS + 2] = 1;
    let mut opts = TestRunOptions {
        data_in: &data,
        ctx_in: Some(&ctx_in),
        ..Default::default()
    };
    assert_eq!(
        test_run(&mut vm, ProgramType::SchedCls, &mut opts),
        Err(-libc::EINVAL)
    );
    // Accepted fields, and pkt_type as an extension.
    let mut ctx_in = vec![0u8; 192];
    for (off, v) in [
        (MARK, 1u8),
        (PRIORITY, 2),
        (INGRESS_IFINDEX, 3),
        (IFINDEX, 4),
        (CB + 19, 5),
        (TSTAMP, 6),
        (WIRE_LEN + 1, 7),
        (GSO_SEGS, 8),
        (GSO_SIZE, 9),
        (HWTSTAMP, 10),
        (PKT_TYPE, 4),
    ] {
        ctx_in[off] = v;
    }
    let mut vm = load(
        &format!("ldxw %r0, [%r1+{PKT_TYPE}]\nexit"),
        ProgramType::SchedCls,
    );
    let mut ctx_out = vec![0u8; 192];
    let mut opts = TestRunOptions {
        data_in: &data,
        ctx_in: Some(&ctx_in),
        ctx_out: Some(&mut ctx_out),
        ..Default::default()
    };
    test_run(&mut vm, ProgramType::SchedCls, &mut opts).unwrap();
    assert_eq!(opts.retval, 4);
    ctx_in[PKT_TYPE] = 0;
    assert_eq!(ctx_out, ctx_in, "the accepted fields come back");
}

#[test]
fn socket_filters_see_the_ethernet_header_and_cgroup_skb_the_network_header() {
    use sk_buff::*;
    let text = format!("ldxw %r0, [%r1+{LEN}]\nexit");
    let data = frame(50);
    for (ty, len) in [
        (ProgramType::SocketFilter, 50),
        (ProgramType::CgroupSkb, 36),
        (ProgramType::SchedAct, 50),
    ] {
        let mut vm = load(&text, ty);
        let mut out = vec![0u8; 64];
        let mut opts = TestRunOptions {
            data_in: &data,
            data_out: Some(&mut out),
            ..Default::default()
        };
        test_run(&mut vm, ty, &mut opts).unwrap();
        assert_eq!(opts.retval, len, "{ty:?}");
        assert_eq!(
            opts.data_size_out, 50,
            "{ty:?}: data_out from the Ethernet header"
        );
        assert_eq!(&out[..50], &data[..]);
    }
    // Broadcast and multicast destinations.
    let mut vm = load(
        &format!("ldxw %r0, [%r1+{PKT_TYPE}]\nexit"),
        ProgramType::SocketFilter,
    );
    for (first, pkt_type) in [(0xffu8, 1), (0x01, 2), (0x00, 0)] {
        let mut data = frame(20);
        if first == 0xff {
            data[..6].fill(0xff);
        } else {
            data[0] = first;
        }
        let mut opts = TestRunOptions {
            data_in: &data,
            ..Default::default()
        };
        test_run(&mut vm, ProgramType::SocketFilter, &mut opts).unwrap();
        assert_eq!(opts.retval, pkt_type);
    }
}

#[test]
fn plain_contexts_are_the_ctx_in_memory() {
    let mut vm = load(
        "ldxdw %r0, [%r1+8]\nstdw [%r1+0], 5\nexit",
        ProgramType::Kprobe,
    );
    let mut ctx_in = vec![0u8; 16];
    ctx_in[8] = 42;
    let mut ctx_out = vec![0u8; 16];
    let mut opts = TestRunOptions {
        ctx_in: Some(&ctx_in),
        ctx_out: Some(&mut ctx_out),
        ..Default::default()
    };
    test_run(&mut vm, ProgramType::Kprobe, &mut opts).unwrap();
    assert_eq!((opts.retval, opts.ctx_size_out), (42, 16));
    assert_eq!(ctx_out[0], 5);
    // Outside the given memory: a fault, -EFAULT.
    let mut vm = load("ldxdw %r0, [%r1+16]\nexit", ProgramType::RawTracepoint);
    let mut opts = TestRunOptions {
        ctx_in: Some(&ctx_in),
        ..Default::default()
    };
    assert_eq!(
        test_run(&mut vm, ProgramType::RawTracepoint, &mut opts),
        Err(-libc::EFAULT)
    );
    // Packet data for a plain type is refused.
    let mut opts = TestRunOptions {
        data_in: &ctx_in,
        ..Default::default()
    };
    assert_eq!(
        test_run(&mut vm, ProgramType::RawTracepoint, &mut opts),
        Err(-libc::EINVAL)
    );
}

#[test]
fn legacy_packet_loads_read_the_frame_of_skb_programs() {
    // ldabsh 12: the EtherType, from the Ethernet header, in host order.
    let data = frame(40);
    for jit in [false, true] {
        let mut vm = load("ldabsh 12\nexit", ProgramType::SocketFilter);
        let mut opts = TestRunOptions {
            data_in: &data,
            jit,
            ..Default::default()
        };
        test_run(&mut vm, ProgramType::SocketFilter, &mut opts).unwrap();
        assert_eq!(opts.retval, 0x0800);
        // Past the frame: the program ends with r0 = 0.
        let mut vm = load("ldabsb 40\nmov %r0, 7\nexit", ProgramType::SchedCls);
        let mut opts = TestRunOptions {
            data_in: &data,
            jit,
            ..Default::default()
        };
        test_run(&mut vm, ProgramType::SchedCls, &mut opts).unwrap();
        assert_eq!(opts.retval, 0);
    }
}
