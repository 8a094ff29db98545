//! Test runs: the kernel's `BPF_PROG_TEST_RUN` (`net/bpf/test_run.c`) without a kernel
//! (`docs/kernel-programs.md`, "Test runs").
//!
//! A program loaded with [`Vm::load_kernel_program`] runs once or `repeat` times over a frame
//! laid out as the kernel lays it out (headroom, frame, tailroom), with the converted context
//! of its type ([`crate::kernel::context`]). The options mirror libbpf's
//! `struct bpf_test_run_opts`, so the C API's `rbpf_prog_test_run_opts` is a thin translation;
//! the results are written back into them, and errors are the kernel's negative errno values.

use std::time::Instant;

use crate::error::ExecError;
use crate::exec::memory::MemRegion;
use crate::isa::STACK_SIZE;
use crate::jit::JitMode;
use crate::kernel::context::{ContextKind, sk_buff, xdp_md};
use crate::kernel::packet::{PacketGuard, PacketKind, PacketRun, Redirect};
use crate::kernel::program_type::ProgramType;
use crate::vm::Vm;

/// `ETH_HLEN`: the smallest frame a packet test run accepts.
pub const ETH_HLEN: usize = 14;
/// The kernel's `PAGE_SIZE`, the size of an XDP test frame's buffer.
pub const PAGE_SIZE: usize = 4096;
/// `XDP_PACKET_HEADROOM`.
pub const XDP_PACKET_HEADROOM: usize = 256;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64: the tailroom the kernel
/// reserves after every test frame.
pub const SHARED_INFO_SIZE: usize = 320;
/// `NET_SKB_PAD + NET_IP_ALIGN` on x86-64: the headroom of an skb test frame.
pub const SKB_HEADROOM: usize = 64;
/// Extra room after an skb test frame's page for `bpf_skb_adjust_room` growth (the kernel
/// reallocates the skb instead).
const SKB_GROWTH: usize = PAGE_SIZE;
/// The largest metadata area an XDP `ctx_in` may ask for (`xdp_metalen_invalid`).
const XDP_MAX_METALEN: u32 = 32;
/// `GSO_MAX_SEGS`.
const GSO_MAX_SEGS: u32 = 65535;
/// `GSO_LEGACY_MAX_SIZE`.
const GSO_LEGACY_MAX_SIZE: u32 = 65536;

/// The kernel's `BPF_PROG_TEST_RUN` attributes (libbpf's `struct bpf_test_run_opts`): inputs,
/// and the outputs the run fills.
#[derive(Debug, Default)]
pub struct TestRunOptions<'a> {
    /// The frame (packet types) or nothing.
    pub data_in: &'a [u8],
    /// Receives the frame after the run (partially, with `-ENOSPC`, when too small).
    pub data_out: Option<&'a mut [u8]>,
    /// Out: the full size of the output frame.
    pub data_size_out: u32,
    /// The context given to the run (`struct xdp_md`, `struct __sk_buff`, or the memory of
    /// a plain context); may be shorter than the struct (the rest is zero).
    pub ctx_in: Option<&'a [u8]>,
    /// Receives the context after the run.
    pub ctx_out: Option<&'a mut [u8]>,
    /// Out: the full size of the output context.
    pub ctx_size_out: u32,
    /// Out: r0 of the last run (truncated to 32 bits, as the kernel's).
    pub retval: u32,
    /// How many times to run (0 means 1).
    pub repeat: u32,
    /// Out: mean nanoseconds per run.
    pub duration: u32,
    /// `BPF_F_TEST_*` flags: none is supported (live frames, run on CPU), so non-zero is
    /// `-EINVAL`.
    pub flags: u32,
    /// The CPU to run on: must be 0.
    pub cpu: u32,
    /// Live-frame batch size: must be 0.
    pub batch_size: u32,
    /// Run the JIT-compiled program (compiled on demand) instead of the interpreter.
    pub jit: bool,
    /// Out: the redirect the program asked for, if any (no device exists to send it to).
    pub redirect: Option<Redirect>,
}

fn neg(errno: i32) -> i32 {
    -errno
}

/// Runs one program chain for one repetition of a test run: given how to run one VM
/// (`each`, which sets up the run's context, packet and stack), runs the program under test
/// and, for the programs of an object, the targets of its tail calls
/// ([`ObjectProgram::run_with`](crate::kernel::object::ObjectProgram::run_with)). Returns the
/// last program's r0.
pub type Executor<'e> =
    dyn FnMut(&mut dyn FnMut(&Vm) -> Result<u64, ExecError>) -> Result<u64, ExecError> + 'e;

/// Runs the program loaded in `vm` (loaded for `prog_type` with
/// [`Vm::load_kernel_program`]) as the kernel's `BPF_PROG_TEST_RUN` would, filling the
/// outputs of `opts`. With `opts.jit` the program is compiled first unless it was. Returns
/// the kernel's negative errno on failure: `-EINVAL` for options the kernel refuses,
/// `-ENOSPC` when `data_out`/`ctx_out` were too small (the outputs are still written,
/// partially), `-EFAULT` when the program faulted (reported through the VM's error printer
/// first).
pub fn test_run(
    vm: &mut Vm,
    prog_type: ProgramType,
    opts: &mut TestRunOptions<'_>,
) -> Result<(), i32> {
    check_options(opts)?;
    if vm.program().is_none() {
        return Err(neg(libc::EINVAL));
    }
    if opts.jit && vm.jit_mode().is_none() {
        vm.compile(JitMode::Basic).map_err(|_| neg(libc::EINVAL))?;
    }
    let vm = &*vm;
    test_run_with(prog_type, opts, &mut |each| each(vm))
}

/// [`test_run`] with the runs made by `exec`, which runs the program under test and any
/// programs it tail-calls: the packet, its headroom, the context and the recorded redirect
/// stay the same across the programs of one chain, as in the kernel; each program gets a
/// fresh, zeroed stack. With `opts.jit`, each VM of the chain runs its compiled code when it
/// has some and the interpreter otherwise (compile them first); without, every VM runs in
/// the interpreter.
pub fn test_run_with(
    prog_type: ProgramType,
    opts: &mut TestRunOptions<'_>,
    exec: &mut Executor<'_>,
) -> Result<(), i32> {
    check_options(opts)?;
    match ContextKind::of(prog_type) {
        ContextKind::Xdp => run_xdp(exec, opts),
        ContextKind::Skb => run_skb(exec, prog_type, opts),
        ContextKind::Plain => run_plain(exec, opts),
    }
}

/// The options no run supports: live frames, another CPU, batches.
fn check_options(opts: &TestRunOptions<'_>) -> Result<(), i32> {
    if opts.flags != 0 || opts.cpu != 0 || opts.batch_size != 0 {
        return Err(neg(libc::EINVAL));
    }
    Ok(())
}

/// The context given by `ctx_in` (and the tail beyond `size`, which must be zero:
/// `bpf_check_uarg_tail_zero`), zero-extended to `size`; `None` when neither `ctx_in` nor
/// `ctx_out` was given.
fn ctx_init(opts: &TestRunOptions<'_>, size: usize) -> Result<Option<Vec<u8>>, i32> {
    if opts.ctx_in.is_none() && opts.ctx_out.is_none() {
        return Ok(None);
    }
    let mut ctx = vec![0u8; size];
    if let Some(input) = opts.ctx_in {
        if input.len() > size && input[size..].iter().any(|&b| b != 0) {
            return Err(neg(libc::E2BIG));
        }
        let n = input.len().min(size);
        ctx[..n].copy_from_slice(&input[..n]);
    }
    Ok(Some(ctx))
}

fn u32_at(buf: &[u8], off: usize) -> u32 {
    buf.get(off..off + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn u64_at(buf: &[u8], off: usize) -> u64 {
    buf.get(off..off + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// `bpf_test_finish` for one output buffer: copies what fits, records the full size,
/// `-ENOSPC` when it did not all fit.
fn finish(out: Option<&mut [u8]>, bytes: &[u8], size_out: &mut u32) -> Result<(), i32> {
    *size_out = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let Some(out) = out else { return Ok(()) };
    let n = bytes.len().min(out.len());
    out[..n].copy_from_slice(&bytes[..n]);
    if n < bytes.len() {
        return Err(neg(libc::ENOSPC));
    }
    Ok(())
}

/// Runs the program `repeat` times over `ctx` (as mem, r1) and the packet buffer of `run`
/// (an extra writable region, entered as the thread's packet). Returns the last r0 and the
/// mean duration.
fn run_repeated(
    exec: &mut Executor<'_>,
    ctx: &mut [u8],
    packet: Option<(&mut [u8], &mut PacketRun)>,
    opts: &TestRunOptions<'_>,
) -> Result<(u64, u32), i32> {
    let repeat = opts.repeat.max(1);
    let ctx_ptr = if ctx.is_empty() {
        std::ptr::null_mut()
    } else {
        ctx.as_mut_ptr()
    };
    let ctx_len = ctx.len();
    let mut stack = vec![0u8; STACK_SIZE];
    let (regions, run): (Vec<MemRegion<'_>>, Option<&mut PacketRun>) = match packet {
        Some((buf, run)) => {
            run.buf = buf.as_mut_ptr();
            run.buf_len = buf.len();
            run.ctx = ctx_ptr;
            run.sync_ctx();
            // SAFETY: `buf` is borrowed mutably for this whole function, so the region stays
            // valid; the packet helpers write it only through `run`, which holds the same
            // pointer, while the program (which alone uses the region) waits in a helper.
            let region = unsafe { MemRegion::from_raw(run.buf, run.buf_len, true, "packet") }
                .map_err(|_| neg(libc::EINVAL))?;
            let mut regions = vec![region];
            if run.kind == PacketKind::Skb {
                // LD_ABS/LD_IND read the frame (skb->data..), not the context: a read-only
                // copy of the frame's place at the start of the run, marked as the packet.
                let frame = run.buf.wrapping_add(run.data);
                // SAFETY: `[data, data_end)` lies inside `buf`, valid as above.
                let packet = unsafe { MemRegion::from_raw(frame, run.len(), false, "frame") }
                    .map_err(|_| neg(libc::EINVAL))?;
                regions.push(packet.as_packet());
            }
            (regions, Some(run))
        }
        None => (Vec::new(), None),
    };
    let _guard = run.map(PacketGuard::enter);
    let start = Instant::now();
    let mut r0 = 0;
    for _ in 0..repeat {
        let mut each = |vm: &Vm| {
            if opts.jit && vm.jit_mode().is_some() {
                // SAFETY: `ctx_ptr` is null or valid for `ctx_len` bytes for the call; the
                // packet region borrows its buffer; a null stack gives the code its own.
                unsafe {
                    vm.execute_jit_raw_with_regions(
                        ctx_ptr,
                        ctx_len,
                        std::ptr::null_mut(),
                        0,
                        &regions,
                    )
                }
            } else {
                stack.fill(0);
                // SAFETY: as above; `stack` is valid for its length for the call.
                unsafe {
                    vm.execute_raw_with_regions(
                        ctx_ptr,
                        ctx_len,
                        stack.as_mut_ptr(),
                        stack.len(),
                        &regions,
                    )
                }
            }
        };
        r0 = exec(&mut each).map_err(errno_of)?;
    }
    let total = start.elapsed().as_nanos() / u128::from(repeat);
    Ok((r0, u32::try_from(total).unwrap_or(u32::MAX)))
}

/// The errno a faulting run gives (the VM's printer already said why).
fn errno_of(err: ExecError) -> i32 {
    match err {
        ExecError::NotLoaded => neg(libc::EINVAL),
        _ => neg(libc::EFAULT),
    }
}

/// `bpf_prog_test_run_xdp`.
fn run_xdp(exec: &mut Executor<'_>, opts: &mut TestRunOptions<'_>) -> Result<(), i32> {
    let size = opts.data_in.len();
    let mut md = ctx_init(opts, xdp_md::EGRESS_IFINDEX + 4)?;
    let mut metalen = 0usize;
    if let Some(md) = &md {
        let data = u32_at(md, xdp_md::DATA);
        let data_end = u32_at(md, xdp_md::DATA_END);
        if u32_at(md, xdp_md::DATA_META) != 0
            || usize::try_from(data_end).ok() != Some(size)
            || data > data_end
            || !data.is_multiple_of(4)
            || data > XDP_MAX_METALEN
        {
            return Err(neg(libc::EINVAL));
        }
        // xdp_convert_md_to_buff: no egress device; a queue needs an ingress device.
        if u32_at(md, xdp_md::EGRESS_IFINDEX) != 0
            || (u32_at(md, xdp_md::INGRESS_IFINDEX) == 0 && u32_at(md, xdp_md::RX_QUEUE_INDEX) != 0)
        {
            return Err(neg(libc::EINVAL));
        }
        metalen = data as usize;
    }
    let headroom = XDP_PACKET_HEADROOM - metalen;
    if size < ETH_HLEN || size > PAGE_SIZE - headroom - SHARED_INFO_SIZE {
        return Err(neg(libc::EINVAL));
    }
    let mut buf = vec![0u8; PAGE_SIZE];
    buf[headroom..headroom + size].copy_from_slice(opts.data_in);
    let kind = ContextKind::Xdp;
    let mut ctx = vec![0u8; kind.buffer_size()];
    if let Some(md) = &md {
        for field in [xdp_md::INGRESS_IFINDEX, xdp_md::RX_QUEUE_INDEX] {
            put_u32(&mut ctx, field, u32_at(md, field));
        }
    }
    let mut run = PacketRun {
        buf: std::ptr::null_mut(),
        buf_len: 0,
        data_meta: headroom,
        data: XDP_PACKET_HEADROOM,
        data_end: headroom + size,
        kind: PacketKind::Xdp,
        ctx: std::ptr::null_mut(),
        redirect: None,
    };
    let (r0, duration) = run_repeated(exec, &mut ctx, Some((&mut buf, &mut run)), opts)?;
    opts.retval = r0 as u32;
    opts.duration = duration;
    opts.redirect = run.redirect;
    if let Some(md) = &mut md {
        // xdp_convert_buff_to_md.
        put_u32(md, xdp_md::DATA, (run.data - run.data_meta) as u32);
        put_u32(md, xdp_md::DATA_END, (run.data_end - run.data_meta) as u32);
        put_u32(md, xdp_md::DATA_META, 0);
    }
    finish(
        opts.data_out.as_deref_mut(),
        &buf[run.data_meta..run.data_end],
        &mut opts.data_size_out,
    )?;
    if let Some(md) = &md {
        finish(opts.ctx_out.as_deref_mut(), md, &mut opts.ctx_size_out)?;
    }
    Ok(())
}

/// Whether the kernel's test run shows the program the frame from its Ethernet header
/// (`is_l2`), or from its network header. Socket filters see it from the Ethernet header
/// here, as on an `AF_PACKET` socket (see the module docs of `docs/kernel-programs.md`).
fn starts_at_l2(ty: ProgramType) -> bool {
    matches!(
        ty,
        ProgramType::SchedCls
            | ProgramType::SchedAct
            | ProgramType::LwtXmit
            | ProgramType::SocketFilter
    )
}

/// `eth_type_trans` on a frame received by a device whose address is all zeros (the
/// loopback device of the kernel's test run): `(protocol as on the wire, pkt_type)`.
fn eth_type_trans(frame: &[u8]) -> ([u8; 2], u32) {
    const PACKET_HOST: u32 = 0;
    const PACKET_BROADCAST: u32 = 1;
    const PACKET_MULTICAST: u32 = 2;
    const PACKET_OTHERHOST: u32 = 3;
    let dest = &frame[..6];
    let pkt_type = if dest[0] & 1 != 0 {
        if dest.iter().all(|&b| b == 0xff) {
            PACKET_BROADCAST
        } else {
            PACKET_MULTICAST
        }
    } else if dest.iter().any(|&b| b != 0) {
        PACKET_OTHERHOST
    } else {
        PACKET_HOST
    };
    let proto = [frame[12], frame[13]];
    let protocol = if u16::from_be_bytes(proto) >= 0x0600 {
        proto
    } else if frame.get(14..16) == Some(&[0xff, 0xff]) {
        // ETH_P_802_3: raw IPX.
        0x0001u16.to_be_bytes()
    } else {
        // ETH_P_802_2.
        0x0004u16.to_be_bytes()
    };
    (protocol, pkt_type)
}

/// `bpf_prog_test_run_skb`.
fn run_skb(
    exec: &mut Executor<'_>,
    ty: ProgramType,
    opts: &mut TestRunOptions<'_>,
) -> Result<(), i32> {
    use sk_buff::*;
    let size = opts.data_in.len();
    if !(ETH_HLEN..=PAGE_SIZE - SKB_HEADROOM - SHARED_INFO_SIZE).contains(&size) {
        return Err(neg(libc::EINVAL));
    }
    let given = ctx_init(opts, SK_BUFF_SIZE_UAPI)?;
    if let Some(c) = &given {
        // convert___skb_to_skb: only these fields may be set (pkt_type too, as an
        // extension: there is no device to derive it from the destination address).
        let zero = |from: usize, to: usize| c[from..to].iter().all(|&b| b == 0);
        if !zero(LEN, PKT_TYPE)
            || !zero(PKT_TYPE + 4, MARK)
            || !zero(MARK + 4, PRIORITY)
            || !zero(IFINDEX + 4, CB)
            || !zero(CB_END, TSTAMP)
            || !zero(GSO_SEGS + 4, GSO_SIZE)
            || !zero(GSO_SIZE + 4, HWTSTAMP)
        {
            return Err(neg(libc::EINVAL));
        }
        if u32_at(c, GSO_SEGS) > GSO_MAX_SEGS {
            return Err(neg(libc::EINVAL));
        }
    }
    let mut buf = vec![0u8; SKB_HEADROOM + PAGE_SIZE + SKB_GROWTH];
    buf[SKB_HEADROOM..SKB_HEADROOM + size].copy_from_slice(opts.data_in);
    let (protocol, derived_pkt_type) = eth_type_trans(opts.data_in);
    let l2 = starts_at_l2(ty);
    let data = if l2 {
        SKB_HEADROOM
    } else {
        SKB_HEADROOM + ETH_HLEN
    };
    let data_end = SKB_HEADROOM + size;
    let len = (data_end - data) as u32;

    let kind = ContextKind::Skb;
    let mut ctx = vec![0u8; kind.buffer_size()];
    ctx[PROTOCOL..PROTOCOL + 2].copy_from_slice(&protocol);
    put_u32(&mut ctx, PKT_TYPE, derived_pkt_type);
    put_u32(&mut ctx, IFINDEX, 1);
    if let Some(c) = &given {
        let pkt_type = u32_at(c, PKT_TYPE);
        if pkt_type != 0 {
            put_u32(&mut ctx, PKT_TYPE, pkt_type);
        }
        for f in [MARK, PRIORITY, INGRESS_IFINDEX, GSO_SEGS, GSO_SIZE] {
            put_u32(&mut ctx, f, u32_at(c, f));
        }
        if u32_at(c, IFINDEX) != 0 {
            put_u32(&mut ctx, IFINDEX, u32_at(c, IFINDEX));
        }
        ctx[CB..CB_END].copy_from_slice(&c[CB..CB_END]);
        put_u64(&mut ctx, TSTAMP, u64_at(c, TSTAMP));
        put_u64(&mut ctx, HWTSTAMP, u64_at(c, HWTSTAMP));
        let wire_len = u32_at(c, WIRE_LEN);
        if wire_len == 0 {
            put_u32(&mut ctx, WIRE_LEN, len);
        } else if wire_len < len || wire_len > GSO_LEGACY_MAX_SIZE {
            return Err(neg(libc::EINVAL));
        } else {
            put_u32(&mut ctx, WIRE_LEN, wire_len);
        }
    }
    let mut run = PacketRun {
        buf: std::ptr::null_mut(),
        buf_len: 0,
        data_meta: data,
        data,
        data_end,
        kind: PacketKind::Skb,
        ctx: std::ptr::null_mut(),
        redirect: None,
    };
    let (r0, duration) = run_repeated(exec, &mut ctx, Some((&mut buf, &mut run)), opts)?;
    opts.retval = r0 as u32;
    opts.duration = duration;
    opts.redirect = run.redirect;
    // The output frame starts at the Ethernet header whatever the type.
    let out_start = if l2 {
        run.data
    } else {
        run.data.saturating_sub(ETH_HLEN)
    };
    finish(
        opts.data_out.as_deref_mut(),
        &buf[out_start..run.data_end],
        &mut opts.data_size_out,
    )?;
    if given.is_some() {
        // convert_skb_to___skb: the fields the kernel copies back.
        let mut out = vec![0u8; SK_BUFF_SIZE_UAPI];
        for f in [
            MARK,
            PRIORITY,
            INGRESS_IFINDEX,
            IFINDEX,
            WIRE_LEN,
            GSO_SEGS,
            GSO_SIZE,
        ] {
            put_u32(&mut out, f, u32_at(&ctx, f));
        }
        out[CB..CB_END].copy_from_slice(&ctx[CB..CB_END]);
        put_u64(&mut out, TSTAMP, u64_at(&ctx, TSTAMP));
        put_u64(&mut out, HWTSTAMP, u64_at(&ctx, HWTSTAMP));
        finish(opts.ctx_out.as_deref_mut(), &out, &mut opts.ctx_size_out)?;
    }
    Ok(())
}

/// The size of `struct __sk_buff`.
const SK_BUFF_SIZE_UAPI: usize = crate::kernel::context::SK_BUFF_SIZE;

/// Types without a modelled context: `ctx_in` is the context memory, copied back.
fn run_plain(exec: &mut Executor<'_>, opts: &mut TestRunOptions<'_>) -> Result<(), i32> {
    if !opts.data_in.is_empty() || opts.data_out.is_some() {
        return Err(neg(libc::EINVAL));
    }
    let mut ctx = opts.ctx_in.map(<[u8]>::to_vec).unwrap_or_default();
    let (r0, duration) = run_repeated(exec, &mut ctx, None, opts)?;
    opts.retval = r0 as u32;
    opts.duration = duration;
    if opts.ctx_in.is_some() || opts.ctx_out.is_some() {
        finish(opts.ctx_out.as_deref_mut(), &ctx, &mut opts.ctx_size_out)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "test_run_tests.rs"]
mod tests;
