//! `BPF_MAP_TYPE_QUEUE` (FIFO), `BPF_MAP_TYPE_STACK` (LIFO) and `BPF_MAP_TYPE_BLOOM_FILTER`:
//! maps without keys, used through push, pop and peek (`bpf_map_push_elem` 87,
//! `bpf_map_pop_elem` 88, `bpf_map_peek_elem` 89, and the host's push/pop/peek).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{BPF_ANY, BPF_EXIST, BPF_NOEXIST, MapError};

/// A bounded FIFO or LIFO of fixed-size values, under one lock (the kernel's queue and stack
/// maps use one spin lock too).
#[derive(Debug)]
pub struct QueueMap {
    lifo: bool,
    value_size: usize,
    capacity: usize,
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    bytes: Vec<u8>,
    /// Index of the oldest element.
    head: usize,
    len: usize,
}

impl QueueMap {
    /// An empty queue (`lifo` false) or stack of `capacity` values of `value_size` bytes.
    pub fn new(value_size: u32, capacity: u32, lifo: bool) -> Self {
        QueueMap {
            lifo,
            value_size: value_size as usize,
            capacity: capacity as usize,
            ring: Mutex::new(Ring {
                bytes: vec![0; value_size as usize * capacity as usize],
                head: 0,
                len: 0,
            }),
        }
    }

    fn at(&self, index: usize) -> std::ops::Range<usize> {
        let start = (index % self.capacity) * self.value_size;
        start..start + self.value_size
    }

    /// Adds `value`. When full: `E2BIG`, or with `BPF_EXIST` the oldest element makes room
    /// (for a stack too, as in the kernel). Flags other than `BPF_ANY`/`BPF_EXIST`: `EINVAL`.
    pub fn push(&self, value: &[u8], flags: u64) -> Result<(), MapError> {
        if flags & BPF_NOEXIST != 0 || flags > BPF_EXIST || value.len() != self.value_size {
            return Err(MapError::Invalid);
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len == self.capacity {
            if flags != BPF_EXIST {
                return Err(MapError::Full);
            }
            ring.head = (ring.head + 1) % self.capacity;
            ring.len -= 1;
        }
        let range = self.at(ring.head + ring.len);
        ring.bytes[range].copy_from_slice(value);
        ring.len += 1;
        Ok(())
    }

    /// Copies the next element (the oldest for a queue, the newest for a stack) into `out`,
    /// removing it when `remove`; `ENOENT` when empty.
    pub fn take(&self, out: &mut [u8], remove: bool) -> Result<(), MapError> {
        if out.len() != self.value_size {
            return Err(MapError::Invalid);
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len == 0 {
            return Err(MapError::NotFound);
        }
        let index = if self.lifo {
            ring.head + ring.len - 1
        } else {
            ring.head
        };
        out.copy_from_slice(&ring.bytes[self.at(index)]);
        if remove {
            if !self.lifo {
                ring.head = (ring.head + 1) % self.capacity;
            }
            ring.len -= 1;
        }
        Ok(())
    }

    /// Number of elements (a snapshot).
    pub fn len(&self) -> usize {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner).len
    }

    /// Whether there is no element (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bloom filter over fixed-size values: `push` sets the value's bits, `peek` tests them.
/// No false negatives; false positives at the rate its size gives.
#[derive(Debug)]
pub struct BloomFilter {
    value_size: usize,
    hashes: u32,
    /// Bits, a power of two of them.
    bits: Box<[AtomicU64]>,
    seed: u64,
}

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl BloomFilter {
    /// The number of bits for `max_entries` values with `hashes` hash functions: the
    /// kernel's sizing (`max_entries * hashes / ln 2`), rounded up to a power of two, at
    /// least 64.
    pub fn bits_for(max_entries: u32, hashes: u32) -> u64 {
        let n = (u64::from(max_entries) * u64::from(hashes) * 10_000).div_ceil(6_931);
        n.max(64).next_power_of_two()
    }

    /// An empty filter; `hashes` is 1..=15. With `zero_seed` (`BPF_F_ZERO_SEED`) the hashes
    /// are the same in every filter, otherwise seeded randomly.
    pub fn new(value_size: u32, max_entries: u32, hashes: u32, zero_seed: bool) -> Self {
        let bits = Self::bits_for(max_entries, hashes);
        let seed = if zero_seed {
            0
        } else {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(max_entries);
            h.finish()
        };
        BloomFilter {
            value_size: value_size as usize,
            hashes,
            bits: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            seed,
        }
    }

    /// The bit positions of `value` (double hashing: `h1 + i * h2`).
    fn positions(&self, value: &[u8]) -> impl Iterator<Item = u64> + use<> {
        let mut h = self.seed;
        for chunk in value.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = mix(h ^ u64::from_le_bytes(word)).wrapping_mul(MUL);
        }
        let h1 = mix(h ^ value.len() as u64);
        let h2 = mix(h1 ^ MUL) | 1;
        let mask = self.bits.len() as u64 * 64 - 1;
        (0..u64::from(self.hashes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
    }

    /// Adds `value` (`flags` must be `BPF_ANY`).
    pub fn push(&self, value: &[u8], flags: u64) -> Result<(), MapError> {
        if flags != BPF_ANY || value.len() != self.value_size {
            return Err(MapError::Invalid);
        }
        for bit in self.positions(value) {
            self.bits[(bit / 64) as usize].fetch_or(1 << (bit % 64), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether `value` may have been added: `Ok` (maybe), `ENOENT` (certainly not).
    pub fn peek(&self, value: &[u8]) -> Result<(), MapError> {
        if value.len() != self.value_size {
            return Err(MapError::Invalid);
        }
        let all = self.positions(value).all(|bit| {
            self.bits[(bit / 64) as usize].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0
        });
        if all { Ok(()) } else { Err(MapError::NotFound) }
    }
}
