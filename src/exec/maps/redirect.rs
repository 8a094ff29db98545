//! The redirect maps of XDP: `DEVMAP` (14), `CPUMAP` (16) and `XSKMAP` (17), arrays whose
//! elements may be absent (`DEVMAP_HASH` (25) is a hash map). `bpf_redirect_map` (51) looks
//! the target up in them. There are no devices, CPUs queues or sockets behind them in user
//! space: the run records the target for the host (`crate::kernel::packet`).
//!
//! Value layouts are the kernel's: a `DEVMAP` value is a `u32` ifindex or `struct
//! bpf_devmap_val { u32 ifindex; s32 prog_fd; }`, a `CPUMAP` value a `u32` queue size or
//! `struct bpf_cpumap_val { u32 qsize; s32 prog_fd; }`, an `XSKMAP` value a `u32` socket fd.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{ArrayMap, BPF_EXIST, BPF_NOEXIST, MapError, MapType, possible_cpus};

/// An array whose elements can be absent, for `DEVMAP`, `CPUMAP` and `XSKMAP`.
#[derive(Debug)]
pub struct SparseArray {
    values: ArrayMap,
    present: Box<[AtomicBool]>,
    kind: MapType,
}

/// Largest `CPUMAP` queue size the kernel accepts.
const MAX_CPUMAP_QSIZE: u32 = 16384;

impl SparseArray {
    /// `max_entries` absent elements of `value_size` bytes.
    pub fn new(kind: MapType, value_size: u32, max_entries: u32) -> Self {
        SparseArray {
            values: ArrayMap::new(value_size, max_entries, 1),
            present: (0..max_entries).map(|_| AtomicBool::new(false)).collect(),
            kind,
        }
    }

    /// The value slots.
    pub fn slab(&self) -> &super::Slab {
        self.values.slab()
    }

    fn index(&self, key: &[u8]) -> Option<usize> {
        let i = u32::from_ne_bytes(key.try_into().ok()?) as usize;
        (i < self.present.len()).then_some(i)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.index(key)
            .is_some_and(|i| self.present[i].load(Ordering::Acquire))
    }

    /// The address of `key`'s value, if present.
    pub fn lookup_ptr(&self, key: &[u8]) -> Option<*mut u8> {
        if !self.contains_key(key) {
            return None;
        }
        self.values.lookup_ptr(key, 0)
    }

    /// Copies `key`'s value into `out` (`ENOENT` when absent).
    pub fn lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        if !self.contains_key(key) {
            return Err(MapError::NotFound);
        }
        self.values.lookup(key, out)
    }

    /// Stores `value` for `key` after checking it as the kernel does: a `DEVMAP` ifindex
    /// must not be 0, a `CPUMAP` key must be a CPU slot and its queue size at most 16384 (0
    /// deletes the entry, as in the kernel); attaching a program (a `prog_fd` above 0) is not
    /// supported (`EINVAL`).
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        if flags > BPF_EXIST {
            return Err(MapError::Invalid);
        }
        let index = self.index(key).ok_or(MapError::Full)?;
        if flags == BPF_NOEXIST {
            return Err(MapError::Exists);
        }
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(value.get(at..at + 4)?.try_into().ok()?))
        };
        let first = word(0).ok_or(MapError::Invalid)?;
        if word(4).is_some_and(|fd| fd as i32 > 0) {
            return Err(MapError::Invalid);
        }
        match self.kind {
            MapType::Devmap if first == 0 => return Err(MapError::Invalid),
            MapType::Cpumap if index >= possible_cpus() => return Err(MapError::NoDevice),
            MapType::Cpumap if first > MAX_CPUMAP_QSIZE => return Err(MapError::Invalid),
            MapType::Cpumap if first == 0 => {
                self.present[index].store(false, Ordering::Release);
                return Ok(());
            }
            _ => {}
        }
        self.values.update(key, value, flags, None)?;
        self.present[index].store(true, Ordering::Release);
        Ok(())
    }

    /// Removes `key`: 0 even if absent, `EINVAL` past the end (the kernel's devmap).
    pub fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        let index = self.index(key).ok_or(MapError::Invalid)?;
        self.present[index].store(false, Ordering::Release);
        Ok(())
    }
}
