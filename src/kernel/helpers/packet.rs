//! The kernel's packet helpers (`docs/kernel-programs.md`, "Packet helpers"), at the kernel's
//! numbers with libbpf's prototypes, over the packet of the test run in progress
//! ([`crate::kernel::packet::with_packet`]). Offsets are checked against the frame, program
//! buffers against the run's regions or the packet buffer; after moving `data`, `data_end` or
//! `data_meta` a helper writes the new pointers into the context. Called outside a packet run
//! (or from a program type without that packet) they fail as the kernel's do for a bad
//! argument.

use std::ffi::c_void;

use crate::error::Access;
use crate::exec::current_run::with_run;
use crate::exec::memory::Regions;
use crate::kernel::helpers::{EINVAL, HelperList, neg};
use crate::kernel::packet::{PacketKind, PacketRun, Redirect, with_packet};
use crate::kernel::test_run::{ETH_HLEN, SHARED_INFO_SIZE};

const EFAULT: u64 = neg(libc::EFAULT);
const EACCES: u64 = neg(libc::EACCES);
/// The kernel's internal `ENOTSUPP` (524), which helpers return to programs.
const ENOTSUPP: u64 = neg(524);

/// `sizeof(struct xdp_frame)` on 64-bit: the part of the headroom XDP helpers keep.
const XDP_FRAME_SIZE: usize = 40;
/// `XDP_REDIRECT`.
const XDP_REDIRECT: u64 = 4;
/// `XDP_ABORTED`.
const XDP_ABORTED: u64 = 0;
/// `TC_ACT_REDIRECT`.
const TC_ACT_REDIRECT: u64 = 7;
/// `TC_ACT_SHOT`.
const TC_ACT_SHOT: u64 = 2;
/// `BPF_F_INGRESS`.
const BPF_F_INGRESS: u64 = 1;

/// The packet helpers of this file.
pub(crate) const HELPERS: HelperList = &[
    (9, "bpf_skb_store_bytes", bpf_skb_store_bytes),
    (10, "bpf_l3_csum_replace", bpf_l3_csum_replace),
    (11, "bpf_l4_csum_replace", bpf_l4_csum_replace),
    (23, "bpf_redirect", bpf_redirect),
    (26, "bpf_skb_load_bytes", bpf_skb_load_bytes),
    (28, "bpf_csum_diff", bpf_csum_diff),
    (44, "bpf_xdp_adjust_head", bpf_xdp_adjust_head),
    (50, "bpf_skb_adjust_room", bpf_skb_adjust_room),
    (54, "bpf_xdp_adjust_meta", bpf_xdp_adjust_meta),
    (65, "bpf_xdp_adjust_tail", bpf_xdp_adjust_tail),
    (189, "bpf_xdp_load_bytes", bpf_xdp_load_bytes),
    (190, "bpf_xdp_store_bytes", bpf_xdp_store_bytes),
];

/// Whether the program may access `[addr, addr + len)` (`write`: store into it): inside the
/// packet buffer, or accepted by the run's bounds model.
fn program_buffer(
    regions: &Regions<'_>,
    pkt: &PacketRun,
    addr: u64,
    len: usize,
    write: bool,
) -> bool {
    if len == 0 {
        return true;
    }
    if pkt.offset_of(addr, len).is_some() {
        return true;
    }
    let access = if write { Access::Store } else { Access::Load };
    regions.check(addr, 0, len, access, 0).is_ok()
}

/// Copies `len` bytes from `src` to `dst` (they may overlap); both were checked.
fn copy(dst: u64, src: u64, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: the caller checked `[src, src + len)` readable and `[dst, dst + len)` writable
    // memory of the running program (its regions or its packet buffer); `copy` allows
    // overlap.
    unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, len) };
}

/// Calls `f` with the run's regions and packet of `kind`, or returns `fail`.
fn with_run_packet(
    kind: PacketKind,
    fail: u64,
    f: impl FnOnce(&Regions<'_>, &mut PacketRun) -> u64,
) -> u64 {
    with_run(|_, regions| {
        with_packet(|pkt| {
            if pkt.kind == kind {
                f(regions, pkt)
            } else {
                fail
            }
        })
        .unwrap_or(fail)
    })
    .unwrap_or(fail)
}

/// Calls `f` with the packet of `kind` (no program buffers involved), or returns `fail`.
fn on_packet(kind: PacketKind, fail: u64, f: impl FnOnce(&mut PacketRun) -> u64) -> u64 {
    with_packet(|pkt| if pkt.kind == kind { f(pkt) } else { fail }).unwrap_or(fail)
}

/// `data + delta` as an offset, if it stays in the address space of the buffer.
fn moved(at: usize, delta: i32) -> Option<usize> {
    at.checked_add_signed(isize::try_from(delta).ok()?)
}

/// `long bpf_xdp_adjust_head(struct xdp_md *xdp_md, int delta)` (44): moves `data` by
/// `delta` (the metadata moves with it); `-EINVAL` when data would enter the `xdp_frame`
/// reserve (plus metadata) or leave less than `ETH_HLEN` bytes.
unsafe extern "C" fn bpf_xdp_adjust_head(
    _ctx: u64,
    delta: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    on_packet(PacketKind::Xdp, EINVAL, |pkt| {
        let delta = delta as i32;
        let metalen = pkt.data - pkt.data_meta;
        let Some(data) = moved(pkt.data, delta) else {
            return EINVAL;
        };
        if data < XDP_FRAME_SIZE + metalen || data + ETH_HLEN > pkt.data_end {
            return EINVAL;
        }
        let meta = data - metalen;
        if metalen > 0 {
            let (from, to) = (pkt.data_meta, meta);
            let Some(all) = pkt.bytes_mut(0, pkt.buf_len) else {
                return EINVAL;
            };
            all.copy_within(from..from + metalen, to);
        }
        pkt.data_meta = meta;
        pkt.data = data;
        pkt.sync_ctx();
        0
    })
}

/// `long bpf_xdp_adjust_meta(struct xdp_md *xdp_md, int delta)` (54): moves `data_meta`;
/// `-EINVAL` outside `[xdp_frame reserve, data]`, `-EACCES` for a metadata length that is
/// not a multiple of 4 or above 32.
unsafe extern "C" fn bpf_xdp_adjust_meta(
    _ctx: u64,
    delta: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    on_packet(PacketKind::Xdp, EINVAL, |pkt| {
        let Some(meta) = moved(pkt.data_meta, delta as i32) else {
            return EINVAL;
        };
        if meta < XDP_FRAME_SIZE || meta > pkt.data {
            return EINVAL;
        }
        let metalen = pkt.data - meta;
        if !metalen.is_multiple_of(4) || metalen > 32 {
            return EACCES;
        }
        pkt.data_meta = meta;
        pkt.sync_ctx();
        0
    })
}

/// `long bpf_xdp_adjust_tail(struct xdp_md *xdp_md, int delta)` (65): moves `data_end`
/// (new bytes read 0); `-EINVAL` past the frame's tailroom reserve or below `ETH_HLEN`.
unsafe extern "C" fn bpf_xdp_adjust_tail(
    _ctx: u64,
    delta: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    on_packet(PacketKind::Xdp, EINVAL, |pkt| {
        let Some(end) = moved(pkt.data_end, delta as i32) else {
            return EINVAL;
        };
        let hard_end = pkt.buf_len.saturating_sub(SHARED_INFO_SIZE);
        if end > hard_end || end < pkt.data + ETH_HLEN {
            return EINVAL;
        }
        if end > pkt.data_end {
            let from = pkt.data_end;
            let Some(grown) = pkt.bytes_mut(from, end) else {
                return EINVAL;
            };
            grown.fill(0);
        }
        pkt.data_end = end;
        pkt.sync_ctx();
        0
    })
}

/// Copies between the frame at `offset` and the program buffer `buf` (`to_packet`: into
/// the frame). XDP flavour: `-EFAULT` for an offset or length above 0xffff, `-EINVAL` past
/// the frame.
fn xdp_bytes(offset: u64, buf: u64, len: u64, to_packet: bool) -> u64 {
    with_run_packet(PacketKind::Xdp, EINVAL, |regions, pkt| {
        let (offset, len) = (offset as u32 as usize, len as u32 as usize);
        if offset > 0xffff || len > 0xffff {
            return EFAULT;
        }
        if len == 0 || offset + len > pkt.len() {
            return EINVAL;
        }
        if !program_buffer(regions, pkt, buf, len, !to_packet) {
            return EINVAL;
        }
        let at = pkt.addr(pkt.data + offset);
        if to_packet {
            copy(at, buf, len);
        } else {
            copy(buf, at, len);
        }
        0
    })
}

/// `long bpf_xdp_load_bytes(struct xdp_md *xdp_md, __u32 offset, void *buf, __u32 len)` (189).
unsafe extern "C" fn bpf_xdp_load_bytes(
    _ctx: u64,
    offset: u64,
    buf: u64,
    len: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    xdp_bytes(offset, buf, len, false)
}

/// `long bpf_xdp_store_bytes(struct xdp_md *xdp_md, __u32 offset, void *buf, __u32 len)` (190).
unsafe extern "C" fn bpf_xdp_store_bytes(
    _ctx: u64,
    offset: u64,
    buf: u64,
    len: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    xdp_bytes(offset, buf, len, true)
}

/// `long bpf_skb_load_bytes(const void *skb, __u32 offset, void *to, __u32 len)` (26):
/// `-EFAULT` (and `to` cleared) when `[offset, offset + len)` is not inside the frame.
unsafe extern "C" fn bpf_skb_load_bytes(
    _ctx: u64,
    offset: u64,
    to: u64,
    len: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_run_packet(PacketKind::Skb, EFAULT, |regions, pkt| {
        let (offset, len) = (offset as u32 as usize, len as u32 as usize);
        if !program_buffer(regions, pkt, to, len, true) {
            return EFAULT;
        }
        if offset > i32::MAX as usize || offset + len > pkt.len() {
            // The kernel clears the destination on failure.
            if len > 0 {
                // SAFETY: `[to, to + len)` was checked writable above.
                let dst = unsafe { std::slice::from_raw_parts_mut(to as *mut u8, len) };
                dst.fill(0);
            }
            return EFAULT;
        }
        copy(to, pkt.addr(pkt.data + offset), len);
        0
    })
}

/// `long bpf_skb_store_bytes(void *skb, __u32 offset, const void *from, __u32 len, __u64
/// flags)` (9): flags `BPF_F_RECOMPUTE_CSUM` (no `CHECKSUM_COMPLETE` value to keep here) and
/// `BPF_F_INVALIDATE_HASH`; `-EFAULT` past the frame.
unsafe extern "C" fn bpf_skb_store_bytes(
    _ctx: u64,
    offset: u64,
    from: u64,
    len: u64,
    flags: u64,
    _: *mut c_void,
) -> u64 {
    with_run_packet(PacketKind::Skb, EFAULT, |regions, pkt| {
        if flags & !3 != 0 {
            return EINVAL;
        }
        let (offset, len) = (offset as u32 as usize, len as u32 as usize);
        if offset > i32::MAX as usize || offset + len > pkt.len() {
            return EFAULT;
        }
        if !program_buffer(regions, pkt, from, len, false) {
            return EFAULT;
        }
        copy(pkt.addr(pkt.data + offset), from, len);
        0
    })
}

/// Ones' complement sum of 16-bit words, folded.
fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A 32-bit ones' complement sum (x86-64's unfolded `__wsum`), folded to 32 bits.
fn fold32(mut sum: u64) -> u32 {
    while sum >> 32 != 0 {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    sum as u32
}

/// `__s64 bpf_csum_diff(__be32 *from, __u32 from_size, __be32 *to, __u32 to_size, __wsum
/// seed)` (28): the checksum of `to` minus that of `from`, plus `seed`, as x86-64's
/// unfolded 32-bit sum; `-EINVAL` for sizes that are not multiples of 4 or above 512 bytes
/// together.
unsafe extern "C" fn bpf_csum_diff(
    from: u64,
    from_size: u64,
    to: u64,
    to_size: u64,
    seed: u64,
    _: *mut c_void,
) -> u64 {
    let (from_size, to_size) = (from_size as u32 as usize, to_size as u32 as usize);
    if (from_size | to_size) % 4 != 0 || from_size + to_size > 512 {
        return EINVAL;
    }
    with_run(|_, regions| {
        let ok = |addr, len| {
            len == 0
                || with_packet(|pkt| program_buffer(regions, pkt, addr, len, false))
                    .unwrap_or_else(|| regions.check(addr, 0, len, Access::Load, 0).is_ok())
        };
        if !ok(from, from_size) || !ok(to, to_size) {
            return EINVAL;
        }
        let words = |addr: u64, len: usize| -> Vec<u32> {
            if len == 0 {
                return Vec::new();
            }
            // SAFETY: `[addr, addr + len)` was checked readable above.
            let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
            bytes
                .chunks_exact(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect()
        };
        let mut sum = u64::from(seed as u32);
        for w in words(from, from_size) {
            sum += u64::from(!w);
        }
        for w in words(to, to_size) {
            sum += u64::from(w);
        }
        u64::from(fold32(sum))
    })
    .unwrap_or(EINVAL)
}

/// Applies an incremental checksum update (RFC 1624) to the 16-bit checksum at `offset`:
/// `size` 2 or 4 replaces `from` by `to`; 0 adds the 32-bit difference `to` (`from` must be
/// 0). Values are in memory order, as the kernel's. `mangled_0`: leave a zero checksum
/// alone and never write 0 (UDP).
fn csum_replace(offset: u64, from: u64, to: u64, size: u64, mangled_0: bool) -> u64 {
    on_packet(PacketKind::Skb, EFAULT, |pkt| {
        if offset > 0xffff || offset & 1 != 0 {
            return EFAULT;
        }
        let offset = offset as usize;
        if offset + 2 > pkt.len() {
            return EFAULT;
        }
        let at = pkt.data + offset;
        let Some(field) = pkt.bytes_mut(at, at + 2) else {
            return EFAULT;
        };
        let old = u16::from_le_bytes([field[0], field[1]]);
        if mangled_0 && old == 0 {
            return 0;
        }
        let halves = |v: u32| u64::from(v & 0xffff) + u64::from(v >> 16);
        let not_halves = |v: u32| u64::from(!v & 0xffff) + u64::from((!v) >> 16);
        let mut sum = u64::from(!old);
        match size {
            0 => {
                if from != 0 {
                    return EINVAL;
                }
                sum += halves(to as u32);
            }
            2 => {
                sum += u64::from(!(from as u16)) + u64::from(to as u16);
            }
            4 => {
                sum += not_halves(from as u32) + halves(to as u32);
            }
            _ => return EINVAL,
        }
        let mut new = !fold(sum);
        if mangled_0 && new == 0 {
            new = 0xffff;
        }
        field.copy_from_slice(&new.to_le_bytes());
        0
    })
}

/// `long bpf_l3_csum_replace(struct __sk_buff *skb, __u32 offset, __u64 from, __u64 to,
/// __u64 size)` (10).
unsafe extern "C" fn bpf_l3_csum_replace(
    _ctx: u64,
    offset: u64,
    from: u64,
    to: u64,
    flags: u64,
    _: *mut c_void,
) -> u64 {
    if flags & !0xf != 0 {
        return EINVAL;
    }
    csum_replace(offset as u32 as u64, from, to, flags & 0xf, false)
}

/// `long bpf_l4_csum_replace(struct __sk_buff *skb, __u32 offset, __u64 from, __u64 to,
/// __u64 flags)` (11): as `bpf_l3_csum_replace`, with `BPF_F_PSEUDO_HDR` (only matters for
/// `CHECKSUM_COMPLETE` skbs, which test runs do not make), `BPF_F_MARK_MANGLED_0` and
/// `BPF_F_MARK_ENFORCE`.
unsafe extern "C" fn bpf_l4_csum_replace(
    _ctx: u64,
    offset: u64,
    from: u64,
    to: u64,
    flags: u64,
    _: *mut c_void,
) -> u64 {
    const PSEUDO_HDR: u64 = 0x10;
    const MARK_MANGLED_0: u64 = 0x20;
    const MARK_ENFORCE: u64 = 0x40;
    if flags & !(0xf | PSEUDO_HDR | MARK_MANGLED_0 | MARK_ENFORCE) != 0 {
        return EINVAL;
    }
    let mangled_0 = flags & MARK_MANGLED_0 != 0 && flags & MARK_ENFORCE == 0;
    csum_replace(offset as u32 as u64, from, to, flags & 0xf, mangled_0)
}

/// `long bpf_redirect(__u32 ifindex, __u64 flags)` (23): records the redirect in the run.
/// XDP: any flag gives `XDP_ABORTED`, else `XDP_REDIRECT`. skb: flags other than
/// `BPF_F_INGRESS` give `TC_ACT_SHOT`, else `TC_ACT_REDIRECT`.
unsafe extern "C" fn bpf_redirect(
    ifindex: u64,
    flags: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_packet(|pkt| {
        let (ok, fail, allowed) = match pkt.kind {
            PacketKind::Xdp => (XDP_REDIRECT, XDP_ABORTED, 0),
            PacketKind::Skb => (TC_ACT_REDIRECT, TC_ACT_SHOT, BPF_F_INGRESS),
        };
        if flags & !allowed != 0 {
            return fail;
        }
        pkt.redirect = Some(Redirect::Ifindex {
            ifindex: ifindex as u32,
            flags,
        });
        ok
    })
    .unwrap_or(TC_ACT_SHOT)
}

/// `long bpf_skb_adjust_room(struct __sk_buff *skb, __s32 len_diff, __u32 mode, __u64
/// flags)` (50): inserts `len_diff` zero bytes (or removes `-len_diff` bytes) after the
/// Ethernet header (`BPF_ADJ_ROOM_MAC`) or after the IPv4/IPv6 base header
/// (`BPF_ADJ_ROOM_NET`) of an IPv4 or IPv6 frame. Encapsulation flags are accepted and do
/// not change the bytes; decapsulation flags require shrinking. Errors as the kernel's:
/// `-EINVAL` (flags), `-EFAULT` (more than 0xfff bytes), `-ENOTSUPP` (protocol, mode, or a
/// frame that would lose its base header).
unsafe extern "C" fn bpf_skb_adjust_room(
    _ctx: u64,
    len_diff: u64,
    mode: u64,
    flags: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    const ROOM_NET: u32 = 0;
    const ROOM_MAC: u32 = 1;
    // FIXED_GSO, ENCAP_L3_IPV4/6, ENCAP_L4_GRE/UDP, NO_CSUM_RESET, ENCAP_L2_ETH,
    // DECAP_L3_IPV4/6, and the encapsulated L2 length in the top byte.
    const KNOWN: u64 = 0x1ff | (0xff << 56);
    const DECAP: u64 = 0x180;
    on_packet(PacketKind::Skb, EINVAL, |pkt| {
        if flags & !KNOWN != 0 {
            return EINVAL;
        }
        let diff = len_diff as i32;
        let shrink = diff < 0;
        let abs = diff.unsigned_abs() as usize;
        if abs > 0xfff {
            return EFAULT;
        }
        let Some(frame) = pkt.bytes_mut(pkt.data, pkt.data_end) else {
            return EINVAL;
        };
        let base = match frame.get(12..14) {
            Some([0x08, 0x00]) => 20,
            Some([0x86, 0xdd]) => 40,
            _ => return ENOTSUPP,
        };
        let off = match mode as u32 {
            ROOM_NET => ETH_HLEN + base,
            ROOM_MAC => ETH_HLEN,
            _ => return ENOTSUPP,
        };
        if flags & DECAP != 0 && !shrink {
            return EINVAL;
        }
        let len_cur = pkt.len().saturating_sub(ETH_HLEN);
        if shrink && (abs >= len_cur || len_cur - abs < base) {
            return ENOTSUPP;
        }
        if off > pkt.len() {
            return ENOTSUPP;
        }
        let (data, end) = (pkt.data, pkt.data_end);
        let Some(all) = pkt.bytes_mut(0, pkt.buf_len) else {
            return EINVAL;
        };
        if shrink {
            // Pop: the first `off` bytes move up over the removed ones.
            all.copy_within(data..data + off, data + abs);
            pkt.data = data + abs;
        } else if data >= abs {
            // Push into the headroom, then clear the gap.
            all.copy_within(data..data + off, data - abs);
            all[data - abs + off..data + off].fill(0);
            pkt.data = data - abs;
        } else if end + abs + SHARED_INFO_SIZE <= all.len() {
            // No headroom left (the kernel would reallocate): move the tail instead.
            all.copy_within(data + off..end, data + off + abs);
            all[data + off..data + off + abs].fill(0);
            pkt.data_end = end + abs;
        } else {
            return neg(libc::ENOMEM);
        }
        pkt.data_meta = pkt.data;
        pkt.sync_ctx();
        0
    })
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
