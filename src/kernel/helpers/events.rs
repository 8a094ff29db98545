//! Helpers that hand data or decisions to the host: `bpf_perf_event_output` (25) into a
//! `PERF_EVENT_ARRAY`, and `bpf_redirect_map` (51) through a `DEVMAP`, `DEVMAP_HASH`,
//! `CPUMAP` or `XSKMAP` (`docs/maps.md`).

use std::ffi::c_void;

use super::{EINVAL, HelperList, errno, readable, with_map};
use crate::exec::maps::{MapType, current_cpu};
use crate::kernel::packet::{Redirect, with_packet};

/// `BPF_F_INDEX_MASK`: the slot index in `bpf_perf_event_output`'s flags.
const INDEX_MASK: u64 = 0xffff_ffff;
/// `BPF_F_CURRENT_CPU`: the slot of the running CPU.
const CURRENT_CPU: u64 = INDEX_MASK;

/// `long bpf_perf_event_output(void *ctx, void *map, __u64 flags, void *data, __u64 size)`
/// (25): appends `size` bytes at `data` to the slot `flags` names (`BPF_F_CURRENT_CPU`: the
/// thread's CPU slot). `-E2BIG` for a slot past the map's end, `-ENOENT` for a closed slot,
/// `-ENOSPC` when the slot's buffer is full (the record is counted as lost), `-EINVAL` for
/// other flags (`BPF_F_CTXLEN_MASK` is not supported), a map that is no perf event array or
/// data the program may not read.
unsafe extern "C" fn bpf_perf_event_output(
    _ctx: u64,
    map: u64,
    flags: u64,
    data: u64,
    size: u64,
    _: *mut c_void,
) -> u64 {
    with_map(map, |m, regions| {
        let Some(perf) = m.perf_events() else {
            return EINVAL;
        };
        if flags & !INDEX_MASK != 0 {
            return EINVAL;
        }
        let Some(data) = readable(regions, data, size) else {
            return EINVAL;
        };
        let index = match flags {
            CURRENT_CPU => current_cpu() as u32,
            i => i as u32,
        };
        perf.output(index, data).map_or_else(errno, |()| 0)
    })
    .unwrap_or(EINVAL)
}

/// `XDP_ABORTED`.
const XDP_ABORTED: u64 = 0;
/// `XDP_REDIRECT`.
const XDP_REDIRECT: u64 = 4;
/// The low bits of `bpf_redirect_map`'s flags: the action when the key is absent.
const ACTION_MASK: u64 = 3;
/// `BPF_F_BROADCAST`: to every device of the map (`DEVMAP`, `DEVMAP_HASH`).
const BROADCAST: u64 = 1 << 3;
/// `BPF_F_EXCLUDE_INGRESS`: with `BPF_F_BROADCAST`, not to the receiving device.
const EXCLUDE_INGRESS: u64 = 1 << 4;

/// `long bpf_redirect_map(void *map, __u64 key, __u64 flags)` (51): looks `key` up and, if
/// present, records the target in the packet run (`crate::kernel::packet`) and returns
/// `XDP_REDIRECT`; an absent key returns the low two bits of `flags` (the fallback action).
/// A `DEVMAP` entry records its ifindex, a `CPUMAP` entry the CPU (the key), an `XSKMAP`
/// entry the queue (the key). With `BPF_F_BROADCAST` the key is ignored and the recorded
/// ifindex is 0 with the flags kept: the host sends to every device of the map. Unknown
/// flags, or a map of another type, give `XDP_ABORTED`.
unsafe extern "C" fn bpf_redirect_map(
    map: u64,
    key: u64,
    flags: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_map(map, |m, _| {
        if flags & !(ACTION_MASK | BROADCAST | EXCLUDE_INGRESS) != 0 {
            return XDP_ABORTED;
        }
        let broadcast = flags & BROADCAST != 0;
        let key32 = (key as u32).to_ne_bytes();
        let redirect = match m.map_type() {
            MapType::Devmap | MapType::DevmapHash if broadcast => Some(Redirect::Ifindex {
                ifindex: 0,
                flags: flags & !ACTION_MASK,
            }),
            _ if broadcast => return XDP_ABORTED,
            MapType::Devmap | MapType::DevmapHash => {
                let mut value = vec![0u8; m.def().value_size as usize];
                m.lookup(&key32, &mut value)
                    .ok()
                    .map(|()| Redirect::Ifindex {
                        ifindex: u32::from_ne_bytes([value[0], value[1], value[2], value[3]]),
                        flags: flags & !ACTION_MASK,
                    })
            }
            MapType::Cpumap => {
                let mut value = vec![0u8; m.def().value_size as usize];
                m.lookup(&key32, &mut value)
                    .ok()
                    .map(|()| Redirect::Cpu { cpu: key as u32 })
            }
            MapType::Xskmap => {
                let mut value = [0u8; 4];
                m.lookup(&key32, &mut value)
                    .ok()
                    .map(|()| Redirect::Queue { queue: key as u32 })
            }
            _ => return XDP_ABORTED,
        };
        match redirect {
            Some(target) => {
                with_packet(|p| p.redirect = Some(target));
                XDP_REDIRECT
            }
            None => flags & ACTION_MASK,
        }
    })
    .unwrap_or(XDP_ABORTED)
}

/// The helpers of this file.
pub(super) const HELPERS: HelperList = &[
    (25, "bpf_perf_event_output", bpf_perf_event_output),
    (51, "bpf_redirect_map", bpf_redirect_map),
];
