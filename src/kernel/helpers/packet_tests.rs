//! The packet helpers through test runs, in both engines (the interpreter is the oracle).

use crate::kernel::packet::Redirect;
use crate::kernel::program_type::ProgramType;
use crate::kernel::test_run::{TestRunOptions, test_run};
use crate::tools::asm::assemble_bytes;
use crate::vm::Vm;

/// An Ethernet + IPv4 frame of `len` bytes with a valid header checksum.
fn ipv4_frame(len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    f[..6].fill(0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[10..12].fill(0);
    let sum = ip_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f
}

fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

struct Outcome {
    retval: u32,
    data: Vec<u8>,
    redirect: Option<Redirect>,
    result: Result<(), i32>,
}

/// Runs `text` over `data` in the interpreter and the JIT; asserts they agree; the outcome.
fn run(text: &str, ty: ProgramType, data: &[u8]) -> Outcome {
    let code = assemble_bytes(text).expect("assembles");
    let mut outcomes = Vec::new();
    for jit in [false, true] {
        let mut vm = Vm::new();
        vm.register_linux_helpers().unwrap();
        vm.load_kernel_program(&code, ty).expect("loads");
        let mut out = vec![0u8; 8192];
        let mut opts = TestRunOptions {
            data_in: data,
            data_out: Some(&mut out),
            jit,
            ..Default::default()
        };
        let result = test_run(&mut vm, ty, &mut opts);
        let (retval, size, redirect) = (opts.retval, opts.data_size_out, opts.redirect);
        out.truncate(size as usize);
        outcomes.push(Outcome {
            retval,
            data: out,
            redirect,
            result,
        });
    }
    let jit = outcomes.pop().unwrap();
    let interp = outcomes.pop().unwrap();
    assert_eq!(interp.retval, jit.retval, "r0: {text}");
    assert_eq!(interp.data, jit.data, "data_out: {text}");
    assert_eq!(interp.redirect, jit.redirect, "redirect: {text}");
    assert_eq!(interp.result, jit.result, "result: {text}");
    interp
}

/// `r0 = helper(ctx, arg)`; on success r0 = data_end - data (after the helper).
fn adjust(helper: u32, delta: i32) -> String {
    format!(
        "mov %r6, %r1\nmov %r2, {delta}\ncall {helper}\njne %r0, 0, +4\n\
         ldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\nmov %r0, %r3\nsub %r0, %r2\nexit"
    )
}

const EINVAL: u32 = -libc::EINVAL as u32;
const EFAULT: u32 = -libc::EFAULT as u32;
const EACCES: u32 = -libc::EACCES as u32;
const ENOTSUPP: u32 = -524i32 as u32;

#[test]
fn xdp_adjust_head() {
    let data = ipv4_frame(60);
    // Grow by 14: the new bytes are the (zero) headroom.
    let o = run(&adjust(44, -14), ProgramType::Xdp, &data);
    assert_eq!(o.retval, 74);
    assert_eq!(&o.data[..14], &[0; 14]);
    assert_eq!(&o.data[14..], &data[..]);
    // Shrink by 14.
    let o = run(&adjust(44, 14), ProgramType::Xdp, &data);
    assert_eq!(o.retval, 46);
    assert_eq!(o.data, data[14..]);
    // Down to the xdp_frame reserve (256 - 40), not one byte more.
    assert_eq!(run(&adjust(44, -216), ProgramType::Xdp, &data).retval, 276);
    assert_eq!(
        run(&adjust(44, -217), ProgramType::Xdp, &data).retval,
        EINVAL
    );
    // At least ETH_HLEN bytes must remain.
    assert_eq!(run(&adjust(44, 46), ProgramType::Xdp, &data).retval, 14);
    assert_eq!(run(&adjust(44, 47), ProgramType::Xdp, &data).retval, EINVAL);
    // The helper is the kernel's XDP one only.
    assert_eq!(
        run(&adjust(44, 4), ProgramType::SchedCls, &data).retval,
        EINVAL
    );
}

#[test]
fn xdp_adjust_tail() {
    let data = ipv4_frame(60);
    let o = run(&adjust(65, 10), ProgramType::Xdp, &data);
    assert_eq!(o.retval, 70);
    assert_eq!(&o.data[..60], &data[..]);
    assert_eq!(&o.data[60..], &[0; 10]);
    let o = run(&adjust(65, -46), ProgramType::Xdp, &data);
    assert_eq!(o.retval, 14);
    assert_eq!(o.data, data[..14]);
    assert_eq!(
        run(&adjust(65, -47), ProgramType::Xdp, &data).retval,
        EINVAL
    );
    // Up to the page minus the skb_shared_info reserve.
    let room: i32 = 4096 - 320 - 256 - 60;
    assert_eq!(
        run(&adjust(65, room), ProgramType::Xdp, &data).retval,
        4096 - 320 - 256
    );
    assert_eq!(
        run(&adjust(65, room + 1), ProgramType::Xdp, &data).retval,
        EINVAL
    );
}

#[test]
fn xdp_adjust_meta() {
    let data = ipv4_frame(60);
    // r0 = data - data_meta after the call.
    let meta = |delta: i32| {
        format!(
            "mov %r6, %r1\nmov %r2, {delta}\ncall 54\njne %r0, 0, +4\n\
             ldxw %r2, [%r6+0]\nldxw %r3, [%r6+8]\nmov %r0, %r2\nsub %r0, %r3\nexit"
        )
    };
    let o = run(&meta(-8), ProgramType::Xdp, &data);
    assert_eq!(o.retval, 8);
    assert_eq!(o.data.len(), 68, "data_out starts at data_meta");
    assert_eq!(&o.data[8..], &data[..]);
    assert_eq!(run(&meta(-32), ProgramType::Xdp, &data).retval, 32);
    assert_eq!(run(&meta(-6), ProgramType::Xdp, &data).retval, EACCES);
    assert_eq!(run(&meta(-36), ProgramType::Xdp, &data).retval, EACCES);
    assert_eq!(run(&meta(4), ProgramType::Xdp, &data).retval, EINVAL);
    // Metadata moves with data on adjust_head.
    let text = "mov %r6, %r1\nmov %r2, -4\ncall 54\nldxw %r2, [%r6+8]\nstw [%r2+0], 0x11223344\n\
                mov %r1, %r6\nmov %r2, 14\ncall 44\nldxw %r2, [%r6+8]\nldxw %r0, [%r2+0]\nexit";
    let o = run(text, ProgramType::Xdp, &data);
    assert_eq!(o.retval, 0x11223344);
    assert_eq!(&o.data[..4], &0x11223344u32.to_le_bytes());
    assert_eq!(&o.data[4..], &data[14..]);
}

#[test]
fn xdp_load_and_store_bytes() {
    let data = ipv4_frame(60);
    // Load the EtherType into the stack, store 0xaabb over the first two bytes.
    let text = "mov %r6, %r1\nmov %r2, 12\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 2\ncall 189\n\
                jne %r0, 0, +8\nldxh %r7, [%r10-8]\nsth [%r10-8], 0xbbaa\nmov %r1, %r6\nmov %r2, 0\n\
                mov %r3, %r10\nadd %r3, -8\nmov %r4, 2\ncall 190\nmov %r0, %r7\nexit";
    let o = run(text, ProgramType::Xdp, &data);
    assert_eq!(o.retval, 0x0008);
    assert_eq!(&o.data[..2], &[0xaa, 0xbb]);
    assert_eq!(&o.data[2..], &data[2..]);
    let call = |offset: i64, len: i32| {
        format!("mov %r2, {offset}\nmov %r3, %r10\nadd %r3, -8\nmov %r4, {len}\ncall 189\nexit")
    };
    assert_eq!(run(&call(59, 1), ProgramType::Xdp, &data).retval, 0);
    assert_eq!(run(&call(59, 2), ProgramType::Xdp, &data).retval, EINVAL);
    assert_eq!(
        run(&call(0x10000, 1), ProgramType::Xdp, &data).retval,
        EFAULT
    );
    // The destination must be program memory: 8 bytes at r10-8, not 9.
    assert_eq!(run(&call(0, 9), ProgramType::Xdp, &data).retval, EINVAL);
}

#[test]
fn skb_load_and_store_bytes() {
    let data = ipv4_frame(60);
    let text = "mov %r6, %r1\nmov %r2, 12\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 2\ncall 26\n\
                ldxh %r0, [%r10-8]\nexit";
    assert_eq!(run(text, ProgramType::SocketFilter, &data).retval, 0x0008);
    // Past the end: -EFAULT and the buffer cleared.
    let text = "stdw [%r10-8], -1\nmov %r2, 59\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 2\ncall 26\n\
                ldxh %r1, [%r10-8]\njne %r1, 0, +1\nexit\nmov %r0, 1\nexit";
    assert_eq!(run(text, ProgramType::SchedCls, &data).retval, EFAULT);
    let store = |offset: i32, flags: i32| {
        format!(
            "stw [%r10-8], 0x44332211\nmov %r2, {offset}\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 4\n\
             mov %r5, {flags}\ncall 9\nexit"
        )
    };
    let o = run(&store(56, 0), ProgramType::SchedCls, &data);
    assert_eq!(o.retval, 0);
    assert_eq!(&o.data[56..], &[0x11, 0x22, 0x33, 0x44]);
    assert_eq!(
        run(&store(57, 0), ProgramType::SchedCls, &data).retval,
        EFAULT
    );
    assert_eq!(run(&store(0, 3), ProgramType::SchedCls, &data).retval, 0);
    assert_eq!(
        run(&store(0, 4), ProgramType::SchedCls, &data).retval,
        EINVAL
    );
}

#[test]
fn l3_and_l4_checksum_replacement_keeps_headers_valid() {
    let data = ipv4_frame(60);
    // TTL 64 -> 63: the 16-bit word at IP offset 8 (TTL, protocol), in memory order.
    let old = u16::from_le_bytes([64, 17]);
    let new = u16::from_le_bytes([63, 17]);
    let text = format!(
        "mov %r6, %r1\nmov %r2, 24\nmov %r3, {old}\nmov %r4, {new}\nmov %r5, 2\ncall 10\n\
         jne %r0, 0, +7\nsth [%r10-8], {new}\nmov %r1, %r6\nmov %r2, 22\nmov %r3, %r10\n\
         add %r3, -8\nmov %r4, 2\nmov %r5, 0\ncall 9\nexit"
    );
    let o = run(&text, ProgramType::SchedCls, &data);
    assert_eq!(o.retval, 0);
    assert_eq!(o.data[22], 63);
    assert_eq!(
        ip_checksum(&o.data[14..34]),
        0,
        "a valid header sums to 0xffff"
    );
    // A 4-byte replacement of the source address.
    let old4 = u32::from_le_bytes(data[26..30].try_into().unwrap());
    let new4 = u32::from_le_bytes([10, 0, 0, 1]);
    let text = format!(
        "mov %r6, %r1\nmov %r2, 24\nlddw %r3, {old4}\nlddw %r4, {new4}\nmov %r5, 4\ncall 10\n\
         jne %r0, 0, +7\nstw [%r10-8], {new4}\nmov %r1, %r6\nmov %r2, 26\nmov %r3, %r10\n\
         add %r3, -8\nmov %r4, 4\nmov %r5, 0\ncall 9\nexit",
        new4 = new4 as i32
    );
    let o = run(&text, ProgramType::SchedCls, &data);
    assert_eq!(o.retval, 0);
    assert_eq!(&o.data[26..30], &[10, 0, 0, 1]);
    assert_eq!(ip_checksum(&o.data[14..34]), 0);
    // Size 0 adds a csum_diff; from must be 0 then.
    let text = format!(
        "mov %r6, %r1\nstw [%r10-8], {new4}\nmov %r1, 0\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\n\
         mov %r4, 4\nmov %r5, 0\ncall 28\nmov %r7, %r0\nstw [%r10-16], {neg}\nmov %r1, 0\nmov %r2, 0\n\
         mov %r3, %r10\nadd %r3, -16\nmov %r4, 4\nmov %r5, %r7\ncall 28\nmov %r4, %r0\n\
         mov %r1, %r6\nmov %r2, 24\nmov %r3, 0\nmov %r5, 0\ncall 10\nexit",
        new4 = new4 as i32,
        neg = !old4 as i32
    );
    let o = run(&text, ProgramType::SchedCls, &data);
    assert_eq!(o.retval, 0);
    let mut header = o.data[14..34].to_vec();
    header[12..16].copy_from_slice(&[10, 0, 0, 1]);
    assert_eq!(
        ip_checksum(&header),
        0,
        "the diff moved the checksum as the new address"
    );
    // Errors: odd offset, past the end, bad size, bad flags, from != 0 with size 0.
    let l3 = |offset: i32, from: i32, flags: i32| {
        format!("mov %r2, {offset}\nmov %r3, {from}\nmov %r4, 0\nmov %r5, {flags}\ncall 10\nexit")
    };
    assert_eq!(
        run(&l3(23, 0, 2), ProgramType::SchedCls, &data).retval,
        EFAULT
    );
    assert_eq!(
        run(&l3(60, 0, 2), ProgramType::SchedCls, &data).retval,
        EFAULT
    );
    assert_eq!(
        run(&l3(24, 0, 3), ProgramType::SchedCls, &data).retval,
        EINVAL
    );
    assert_eq!(
        run(&l3(24, 0, 0x12), ProgramType::SchedCls, &data).retval,
        EINVAL
    );
    assert_eq!(
        run(&l3(24, 1, 0), ProgramType::SchedCls, &data).retval,
        EINVAL
    );
    // l4 with BPF_F_MARK_MANGLED_0: a zero (absent) UDP checksum stays 0.
    let mut udp = data.clone();
    udp[40..42].fill(0);
    let text = "mov %r2, 40\nmov %r3, 1\nmov %r4, 2\nmov %r5, 0x22\ncall 11\nexit";
    let o = run(text, ProgramType::SchedCls, &udp);
    assert_eq!(o.retval, 0);
    assert_eq!(&o.data[40..42], &[0, 0]);
    // ... unless enforced.
    let text = "mov %r2, 40\nmov %r3, 1\nmov %r4, 2\nmov %r5, 0x62\ncall 11\nexit";
    let o = run(text, ProgramType::SchedCls, &udp);
    assert_ne!(&o.data[40..42], &[0, 0]);
    let text = "mov %r2, 40\nmov %r3, 1\nmov %r4, 2\nmov %r5, 0x82\ncall 11\nexit";
    assert_eq!(run(text, ProgramType::SchedCls, &udp).retval, EINVAL);
}

#[test]
fn csum_diff() {
    let data = ipv4_frame(40);
    // The checksum of 4 bytes is the bytes as a 32-bit word plus the seed.
    let text = "stw [%r10-8], 0x01020304\nmov %r1, 0\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -8\n\
                mov %r4, 4\nmov %r5, 5\ncall 28\nexit";
    assert_eq!(run(text, ProgramType::SchedCls, &data).retval, 0x01020309);
    // from == to gives the seed back (folded: 0xffffffff and 0 are both zero).
    let text = "stw [%r10-8], 0x01020304\nmov %r1, %r10\nadd %r1, -8\nmov %r2, 4\nmov %r3, %r10\n\
                add %r3, -8\nmov %r4, 4\nmov %r5, 0\ncall 28\nexit";
    assert_eq!(run(text, ProgramType::SchedCls, &data).retval, 0xffff_ffff);
    let sizes = |from: i32, to: i32| {
        format!(
            "mov %r1, %r10\nadd %r1, -8\nmov %r2, {from}\nmov %r3, %r10\nadd %r3, -8\nmov %r4, {to}\nmov %r5, 0\ncall 28\nexit"
        )
    };
    assert_eq!(
        run(&sizes(3, 0), ProgramType::SchedCls, &data).retval,
        EINVAL
    );
    assert_eq!(
        run(&sizes(256, 260), ProgramType::SchedCls, &data).retval,
        EINVAL
    );
    assert_eq!(
        run(&sizes(16, 0), ProgramType::SchedCls, &data).retval,
        EINVAL,
        "r10-8 holds 8 bytes"
    );
}

#[test]
fn redirect_is_recorded() {
    let data = ipv4_frame(40);
    let text = "mov %r1, 5\nmov %r2, 0\ncall 23\nexit";
    let o = run(text, ProgramType::Xdp, &data);
    assert_eq!(o.retval, 4, "XDP_REDIRECT");
    assert_eq!(
        o.redirect,
        Some(Redirect::Ifindex {
            ifindex: 5,
            flags: 0
        })
    );
    let o = run(
        "mov %r1, 5\nmov %r2, 1\ncall 23\nexit",
        ProgramType::Xdp,
        &data,
    );
    assert_eq!(
        (o.retval, o.redirect),
        (0, None),
        "XDP_ABORTED for any flag"
    );
    let o = run(
        "mov %r1, 7\nmov %r2, 1\ncall 23\nexit",
        ProgramType::SchedCls,
        &data,
    );
    assert_eq!(o.retval, 7, "TC_ACT_REDIRECT");
    assert_eq!(
        o.redirect,
        Some(Redirect::Ifindex {
            ifindex: 7,
            flags: 1
        })
    );
    let o = run(
        "mov %r1, 7\nmov %r2, 2\ncall 23\nexit",
        ProgramType::SchedCls,
        &data,
    );
    assert_eq!((o.retval, o.redirect), (2, None), "TC_ACT_SHOT");
}

#[test]
fn skb_adjust_room() {
    let data = ipv4_frame(60);
    let room = |diff: i32, mode: i32, flags: i64| {
        format!(
            "mov %r6, %r1\nmov %r2, {diff}\nmov %r3, {mode}\nlddw %r4, {flags}\ncall 50\n\
             jne %r0, 0, +4\nldxw %r2, [%r6+76]\nldxw %r3, [%r6+80]\nmov %r0, %r3\nsub %r0, %r2\nexit"
        )
    };
    // Grow 8 bytes after the IPv4 header (BPF_ADJ_ROOM_NET).
    let o = run(&room(8, 0, 0), ProgramType::SchedCls, &data);
    assert_eq!(o.retval, 68);
    assert_eq!(&o.data[..34], &data[..34]);
    assert_eq!(&o.data[34..42], &[0; 8]);
    assert_eq!(&o.data[42..], &data[34..]);
    // Shrink 4 bytes after the Ethernet header (BPF_ADJ_ROOM_MAC).
    let o = run(&room(-4, 1, 0), ProgramType::SchedCls, &data);
    assert_eq!(o.retval, 56);
    assert_eq!(&o.data[..14], &data[..14]);
    assert_eq!(&o.data[14..], &data[18..]);
    // Growth beyond the headroom moves the tail instead: same bytes.
    let o = run(&room(100, 1, 0), ProgramType::SchedCls, &data);
    assert_eq!(o.retval, 160);
    assert_eq!(&o.data[14..114], &[0; 100][..]);
    assert_eq!(&o.data[114..], &data[14..]);
    // Errors.
    assert_eq!(
        run(&room(0x1000, 0, 0), ProgramType::SchedCls, &data).retval,
        EFAULT
    );
    assert_eq!(
        run(&room(8, 2, 0), ProgramType::SchedCls, &data).retval,
        ENOTSUPP
    );
    assert_eq!(
        run(&room(-27, 1, 0), ProgramType::SchedCls, &data).retval,
        ENOTSUPP,
        "46 - 27 < 20"
    );
    assert_eq!(
        run(&room(-26, 1, 0), ProgramType::SchedCls, &data).retval,
        34
    );
    assert_eq!(
        run(&room(8, 0, 1 << 10), ProgramType::SchedCls, &data).retval,
        EINVAL
    );
    assert_eq!(
        run(&room(8, 0, 1 << 7), ProgramType::SchedCls, &data).retval,
        EINVAL,
        "decap must shrink"
    );
    let mut arp = data.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        run(&room(8, 0, 0), ProgramType::SchedCls, &arp).retval,
        ENOTSUPP
    );
}
