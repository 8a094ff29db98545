//! Helpers that hand data or decisions to the host: `bpf_perf_event_output` (25) into a
//! `PERF_EVENT_ARRAY`, and `bpf_redirect_map` (51) through a `DEVMAP`, `DEVMAP_HASH`,
//! `CPUMAP` or `XSKMAP` (`docs/maps.md`).

use std::ffi::c_void;

use super::{EINVAL, HelperList, errno, neg, readable, with_map};
use crate::exec::maps::{MapType, current_cpu};
use crate::kernel::packet::{Redirect, with_packet};

/// `BPF_F_INDEX_MASK`: the slot index in `bpf_perf_event_output`'s flags.
const INDEX_MASK: u64 = 0xffff_ffff;
/// `BPF_F_CURRENT_CPU`: the slot of the running CPU.
const CURRENT_CPU: u64 = INDEX_MASK;
/// `BPF_F_CTXLEN_MASK`: how many bytes of the packet to append (XDP and skb programs).
const CTXLEN_MASK: u64 = 0xf_ffff << 32;

/// `long bpf_perf_event_output(void *ctx, void *map, __u64 flags, void *data, __u64 size)`
/// (25): appends `size` bytes at `data` to the slot `flags` names (`BPF_F_CURRENT_CPU`: the
/// thread's CPU slot). In a packet run, `BPF_F_CTXLEN_MASK` appends that many bytes of the
/// frame from `data` to the record, as the kernel's XDP and skb versions do (`-EFAULT` past
/// the frame's end; outside a packet run such flags are `-EINVAL`, as for tracing
/// programs). `-E2BIG` for a slot past the map's end, `-ENOENT` for a closed slot,
/// `-ENOSPC` when the slot's buffer is full (the record is counted as lost), `-EINVAL` for
/// other flags, a map that is no perf event array or data the program may not read.
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
        if flags & !(INDEX_MASK | CTXLEN_MASK) != 0 {
            return EINVAL;
        }
        let Some(data) = readable(regions, data, size) else {
            return EINVAL;
        };
        let index = match flags & INDEX_MASK {
            CURRENT_CPU => current_cpu() as u32,
            i => i as u32,
        };
        let ctx_len = ((flags & CTXLEN_MASK) >> 32) as usize;
        if ctx_len == 0 {
            return perf.output(index, data).map_or_else(errno, |()| 0);
        }
        let frame = with_packet(|p| {
            if ctx_len > p.len() {
                return None;
            }
            let start = p.data;
            p.bytes_mut(start, start + ctx_len).map(|b| b.to_vec())
        });
        match frame {
            None => EINVAL,
            Some(None) => neg(libc::EFAULT),
            Some(Some(bytes)) => {
                let mut record = data.to_vec();
                record.extend_from_slice(&bytes);
                perf.output(index, &record).map_or_else(errno, |()| 0)
            }
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::exec::maps::{Map, MapDef, MapError, MapType, possible_cpus};
    use crate::jit::JitMode;
    use crate::kernel::elf::LinkedElf;
    use crate::kernel::packet::{PacketGuard, PacketKind, PacketRun, Redirect};
    use crate::vm::Vm;

    fn map(map_type: MapType, value_size: u32) -> Arc<Map> {
        let def = MapDef {
            map_type: map_type as u32,
            key_size: 4,
            value_size,
            max_entries: 4,
            ..MapDef::default()
        };
        Arc::new(Map::new("targets", def).unwrap())
    }

    /// `bpf_redirect_map(map, key, flags)` inside a packet run, in both engines: r0 and the
    /// recorded redirect (the engines must agree).
    fn redirect(m: &Arc<Map>, key: u32, flags: u64) -> (u64, Option<Redirect>) {
        let text = format!(
            "lddw %r1, {:#x}\nmov %r2, {key}\nlddw %r3, {flags:#x}\ncall 51\nexit",
            m.handle()
        );
        let mut results = Vec::new();
        for jit in [false, true] {
            let mut vm = Vm::new();
            vm.register_linux_helpers().unwrap();
            vm.load_linked(LinkedElf {
                code: crate::tools::asm::assemble_bytes(&text).unwrap(),
                functions: Vec::new(),
                data_sections: Vec::new(),
                maps: vec![m.clone()],
                programs: Vec::new(),
                warnings: Vec::new(),
            })
            .unwrap();
            let mut buf = [0u8; 64];
            let mut run = PacketRun {
                buf: buf.as_mut_ptr(),
                buf_len: buf.len(),
                data_meta: 0,
                data: 0,
                data_end: 64,
                kind: PacketKind::Xdp,
                ctx: std::ptr::null_mut(),
                redirect: None,
            };
            let r0 = {
                let _guard = PacketGuard::enter(&mut run);
                if jit {
                    vm.compile(JitMode::Basic).unwrap();
                    vm.execute_jit(&mut []).unwrap()
                } else {
                    vm.execute(&mut []).unwrap()
                }
            };
            results.push((r0, run.redirect));
        }
        assert_eq!(results[0], results[1], "the engines disagree");
        results[0]
    }

    #[test]
    fn devmap_entries_redirect_to_their_ifindex() {
        let dev = map(MapType::Devmap, 4);
        dev.update(&3u32.to_ne_bytes(), &7u32.to_ne_bytes(), 0)
            .unwrap();
        let to = |ifindex, flags| Some(Redirect::Ifindex { ifindex, flags });
        assert_eq!(redirect(&dev, 3, 0), (4, to(7, 0)));
        // Absent: the low bits of flags, nothing recorded.
        assert_eq!(redirect(&dev, 2, 2), (2, None));
        assert_eq!(redirect(&dev, 9, 1), (1, None));
        // Unknown flags: XDP_ABORTED. Broadcast: every device, key ignored.
        assert_eq!(redirect(&dev, 3, 1 << 5), (0, None));
        assert_eq!(redirect(&dev, 0, 8 | 16), (4, to(0, 8 | 16)));
        // Host-side checks: ifindex 0, an attached program, index past the end.
        assert_eq!(
            dev.update(&1u32.to_ne_bytes(), &0u32.to_ne_bytes(), 0),
            Err(MapError::Invalid)
        );
        assert_eq!(
            dev.update(&9u32.to_ne_bytes(), &1u32.to_ne_bytes(), 0),
            Err(MapError::Full)
        );
        dev.delete(&3u32.to_ne_bytes()).unwrap();
        assert_eq!(redirect(&dev, 3, 0), (0, None));
        let dev_val = map(MapType::Devmap, 8);
        let val = |ifindex: u32, fd: i32| [ifindex.to_ne_bytes(), fd.to_ne_bytes()].concat();
        assert_eq!(
            dev_val.update(&0u32.to_ne_bytes(), &val(5, 3), 0),
            Err(MapError::Invalid)
        );
        dev_val.update(&0u32.to_ne_bytes(), &val(5, -1), 0).unwrap();
        assert_eq!(redirect(&dev_val, 0, 0), (4, to(5, 0)));

        let hash = map(MapType::DevmapHash, 4);
        hash.update(&1000u32.to_ne_bytes(), &9u32.to_ne_bytes(), 0)
            .unwrap();
        assert_eq!(redirect(&hash, 1000, 0), (4, to(9, 0)));
        assert_eq!(redirect(&hash, 1001, 0), (0, None));
        assert_eq!(
            hash.update(&1u32.to_ne_bytes(), &0u32.to_ne_bytes(), 0),
            Err(MapError::Invalid)
        );
    }

    #[test]
    fn cpumap_and_xskmap_entries_redirect_to_cpus_and_queues() {
        let cpus = map(MapType::Cpumap, 4);
        let last = possible_cpus() as u32 - 1;
        cpus.update(&last.to_ne_bytes(), &64u32.to_ne_bytes(), 0)
            .unwrap();
        assert_eq!(
            redirect(&cpus, last, 0),
            (4, Some(Redirect::Cpu { cpu: last }))
        );
        if possible_cpus() < 4 {
            assert_eq!(
                cpus.update(&3u32.to_ne_bytes(), &64u32.to_ne_bytes(), 0),
                Err(MapError::NoDevice)
            );
        }
        assert_eq!(
            cpus.update(&0u32.to_ne_bytes(), &20000u32.to_ne_bytes(), 0),
            Err(MapError::Invalid)
        );
        // A queue size of 0 removes the entry, as in the kernel.
        cpus.update(&last.to_ne_bytes(), &0u32.to_ne_bytes(), 0)
            .unwrap();
        assert_eq!(redirect(&cpus, last, 2), (2, None));

        let xsk = map(MapType::Xskmap, 4);
        xsk.update(&2u32.to_ne_bytes(), &42u32.to_ne_bytes(), 0)
            .unwrap();
        assert_eq!(
            redirect(&xsk, 2, 0),
            (4, Some(Redirect::Queue { queue: 2 }))
        );
        assert_eq!(redirect(&xsk, 1, 0), (0, None));
        let mut fd = [0u8; 4];
        xsk.lookup(&2u32.to_ne_bytes(), &mut fd).unwrap();
        assert_eq!(u32::from_ne_bytes(fd), 42);
        // Other map types: XDP_ABORTED.
        assert_eq!(redirect(&map(MapType::Array, 4), 0, 2), (0, None));
    }
}
