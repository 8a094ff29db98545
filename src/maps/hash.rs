//! `BPF_MAP_TYPE_HASH`, `PERCPU_HASH` and `LRU_HASH`: a chained hash table over preallocated
//! element slots.
//!
//! Each element slot has a key (in `keys`), a chain link, and one value per CPU slot (in the
//! value [`Slab`]). Buckets are singly linked chains of slot numbers, each behind its own
//! spinlock (critical sections are a few comparisons), so threads working on different
//! buckets never wait for each other and no thread ever sees a half-linked chain.
//! Free slots wait in a FIFO queue: a deleted slot is reused as late as possible, and its
//! memory is never freed before the map (a program still holding a pointer to a deleted
//! value reads or writes valid memory; it may see the slot reused, as with the kernel's
//! preallocated hash maps). `LRU_HASH` stamps elements on lookup and update from a per-map
//! clock and, when full, evicts the element with the oldest stamp.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{BPF_EXIST, BPF_NOEXIST, MapError, Slab};

/// End of a chain.
const NIL: u32 = u32::MAX;

/// Recency stamps of an `LRU_HASH` (0: slot not in the table).
#[derive(Debug)]
struct Lru {
    clock: AtomicU64,
    stamps: Box<[AtomicU64]>,
}

/// One bucket: a spinlock and the first slot of its chain.
struct Bucket {
    locked: AtomicBool,
    head: UnsafeCell<u32>,
}

/// A locked bucket; unlocks when dropped.
struct Locked<'a> {
    bucket: &'a Bucket,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.bucket.locked.store(false, Ordering::Release);
    }
}

impl Bucket {
    fn lock(&self) -> Locked<'_> {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                spins = spins.saturating_add(1);
                if spins < 128 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        Locked { bucket: self }
    }
}

/// A hash map (per-CPU with more than one CPU slot, LRU when asked).
pub struct HashMap {
    key_size: usize,
    cpus: usize,
    slots: usize,
    keys: Box<[UnsafeCell<u8>]>,
    /// Per slot, the next slot of its chain (under the lock of its bucket).
    next: Box<[UnsafeCell<u32>]>,
    /// For each element slot, the bucket it is linked in (valid while it is in the table).
    home: Box<[AtomicU32]>,
    slab: Slab,
    buckets: Box<[Bucket]>,
    free: Mutex<VecDeque<u32>>,
    seed: u64,
    lru: Option<Lru>,
}

// SAFETY: a slot's key and link are written only while the slot is owned by one thread (taken
// from the free queue, not yet linked) or under the lock of the bucket it is linked in, and
// read only under that lock; bucket heads only under their lock; everything else is atomics,
// a mutex or the shared value slab.
unsafe impl Sync for HashMap {}
// SAFETY: all of it is owned.
unsafe impl Send for HashMap {}

impl std::fmt::Debug for HashMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashMap")
            .field("key_size", &self.key_size)
            .field("buckets", &self.buckets.len())
            .field("lru", &self.lru.is_some())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

impl HashMap {
    /// An empty table for `max_entries` elements.
    pub fn new(key_size: u32, value_size: u32, max_entries: u32, cpus: usize, lru: bool) -> Self {
        let slots = max_entries as usize;
        let buckets = slots.next_power_of_two();
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(slots);
            h.finish()
        };
        HashMap {
            key_size: key_size as usize,
            cpus,
            slots,
            keys: super::zeroed(slots * key_size as usize),
            next: (0..slots).map(|_| UnsafeCell::new(NIL)).collect(),
            home: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            slab: Slab::new(value_size, slots * cpus),
            buckets: (0..buckets)
                .map(|_| Bucket {
                    locked: AtomicBool::new(false),
                    head: UnsafeCell::new(NIL),
                })
                .collect(),
            free: Mutex::new((0..max_entries).collect()),
            seed,
            lru: lru.then(|| Lru {
                clock: AtomicU64::new(1),
                stamps: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            }),
        }
    }

    /// The value slots.
    pub fn slab(&self) -> &Slab {
        &self.slab
    }

    fn hash(&self, key: &[u8]) -> u64 {
        let mix = |h: u64| {
            let h = (h ^ (h >> 32)).wrapping_mul(0xd6e8_feb8_6659_fd93);
            h ^ (h >> 29)
        };
        // The common key sizes without a copy loop.
        match *key {
            [a, b, c, d] => {
                return mix(
                    (self.seed ^ u64::from(u32::from_le_bytes([a, b, c, d]))).wrapping_mul(MUL)
                );
            }
            [a, b, c, d, e, f, g, h] => {
                return mix(
                    (self.seed ^ u64::from_le_bytes([a, b, c, d, e, f, g, h])).wrapping_mul(MUL)
                );
            }
            _ => {}
        }
        let mut h = self.seed ^ (key.len() as u64).wrapping_mul(MUL);
        let mut chunks = key.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(word))
                .wrapping_mul(MUL)
                .rotate_left(29);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            h = (h ^ u64::from_le_bytes(word)).wrapping_mul(MUL);
        }
        mix(h)
    }

    fn bucket_of(&self, key: &[u8]) -> usize {
        (self.hash(key) as usize) & (self.buckets.len() - 1)
    }

    /// Slot `slot`'s key. Only under the lock of the slot's bucket, or while owning the slot.
    fn key_ptr(&self, slot: u32) -> *mut u8 {
        self.keys
            .as_ptr()
            .cast::<u8>()
            .cast_mut()
            .wrapping_add(slot as usize * self.key_size)
    }

    /// The slot after `slot` in its chain (under its bucket's lock).
    fn next_of(&self, _: &Locked<'_>, slot: u32) -> u32 {
        // SAFETY: links are accessed only under their bucket's lock, which the caller holds.
        unsafe { *self.next[slot as usize].get() }
    }

    fn set_next(&self, _: &Locked<'_>, slot: u32, next: u32) {
        // SAFETY: as in `next_of`.
        unsafe { *self.next[slot as usize].get() = next };
    }

    fn head(&self, guard: &Locked<'_>) -> u32 {
        // SAFETY: the caller holds the bucket's lock.
        unsafe { *guard.bucket.head.get() }
    }

    fn set_head(&self, guard: &Locked<'_>, slot: u32) {
        // SAFETY: the caller holds the bucket's lock.
        unsafe { *guard.bucket.head.get() = slot };
    }

    fn key_matches(&self, slot: u32, key: &[u8]) -> bool {
        let at = self.key_ptr(slot);
        // SAFETY (all three): the caller holds the lock of the bucket `slot` is linked in;
        // the key bytes are `key_size` long and not written meanwhile.
        match *key {
            // The common sizes without a call to memcmp.
            [a, b, c, d] => (unsafe { at.cast::<[u8; 4]>().read() }) == [a, b, c, d],
            [a, b, c, d, e, f, g, h] => {
                (unsafe { at.cast::<[u8; 8]>().read() }) == [a, b, c, d, e, f, g, h]
            }
            _ => (unsafe { std::slice::from_raw_parts(at, self.key_size) }) == key,
        }
    }

    /// `(previous slot or NIL, slot)` of `key` in the locked bucket's chain.
    fn find(&self, guard: &Locked<'_>, key: &[u8]) -> Option<(u32, u32)> {
        let mut prev = NIL;
        let mut slot = self.head(guard);
        while slot != NIL {
            if self.key_matches(slot, key) {
                return Some((prev, slot));
            }
            prev = slot;
            slot = self.next_of(guard, slot);
        }
        None
    }

    /// Removes `slot` (whose predecessor is `prev`) from the locked bucket's chain.
    fn unlink(&self, guard: &Locked<'_>, prev: u32, slot: u32) {
        let after = self.next_of(guard, slot);
        if prev == NIL {
            self.set_head(guard, after);
        } else {
            self.set_next(guard, prev, after);
        }
    }

    fn touch(&self, slot: u32) {
        if let Some(lru) = &self.lru {
            let now = lru.clock.fetch_add(1, Ordering::Relaxed);
            lru.stamps[slot as usize].store(now, Ordering::Relaxed);
        }
    }

    fn value_slot(&self, slot: u32, cpu: usize) -> usize {
        slot as usize * self.cpus + cpu % self.cpus
    }

    /// The address of `key`'s value in CPU slot `cpu`.
    pub fn lookup_ptr(&self, key: &[u8], cpu: usize) -> Option<*mut u8> {
        if key.len() != self.key_size {
            return None;
        }
        let guard = self.buckets[self.bucket_of(key)].lock();
        let (_, slot) = self.find(&guard, key)?;
        self.touch(slot);
        Some(self.slab.slot(self.value_slot(slot, cpu)))
    }

    /// Copies every CPU slot of `key`'s value into `out`.
    pub fn lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        let guard = self.buckets[self.bucket_of(key)].lock();
        let (_, slot) = self.find(&guard, key).ok_or(MapError::NotFound)?;
        self.touch(slot);
        if self.cpus == 1 {
            self.slab.read(slot as usize, out);
        } else {
            for (cpu, chunk) in out.chunks_mut(self.slab.host_stride()).enumerate() {
                self.slab.read(self.value_slot(slot, cpu), chunk);
            }
        }
        Ok(())
    }

    fn write_value(&self, slot: u32, value: &[u8], cpu: Option<usize>, fresh: bool) {
        match cpu {
            None if self.cpus == 1 => self.slab.write(slot as usize, value),
            None => {
                for (cpu, chunk) in value.chunks(self.slab.host_stride()).enumerate() {
                    self.slab.write(self.value_slot(slot, cpu), chunk);
                }
            }
            Some(cpu) => {
                if fresh {
                    for other in 0..self.cpus {
                        self.slab.clear(self.value_slot(slot, other));
                    }
                }
                self.slab.write(self.value_slot(slot, cpu), value);
            }
        }
    }

    /// Stores `value` for `key` with the kernel's flag semantics; `cpu` selects the slot a
    /// program writes (the host writes every slot from its buffer).
    pub fn update(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u64,
        cpu: Option<usize>,
    ) -> Result<(), MapError> {
        if flags > BPF_EXIST {
            return Err(MapError::Invalid);
        }
        let bucket = self.bucket_of(key);
        loop {
            let guard = self.buckets[bucket].lock();
            if let Some((_, slot)) = self.find(&guard, key) {
                if flags == BPF_NOEXIST {
                    return Err(MapError::Exists);
                }
                self.write_value(slot, value, cpu, false);
                self.touch(slot);
                return Ok(());
            }
            if flags == BPF_EXIST {
                return Err(MapError::NotFound);
            }
            let taken = lock(&self.free).pop_front();
            let Some(slot) = taken else {
                if self.lru.is_none() {
                    return Err(MapError::Full);
                }
                // Evicting locks another bucket: never while holding this one.
                drop(guard);
                self.evict_oldest();
                continue;
            };
            // The slot is ours alone until linked below.
            // SAFETY: `key_size` bytes at the slot's key; no one else reads them now.
            unsafe {
                std::ptr::copy_nonoverlapping(key.as_ptr(), self.key_ptr(slot), self.key_size)
            };
            self.write_value(slot, value, cpu, true);
            self.home[slot as usize].store(bucket as u32, Ordering::Relaxed);
            self.touch(slot);
            let head = self.head(&guard);
            self.set_next(&guard, slot, head);
            self.set_head(&guard, slot);
            return Ok(());
        }
    }

    /// Removes the least recently used element (LRU maps only); a no-op if a concurrent
    /// delete got there first.
    fn evict_oldest(&self) {
        let Some(lru) = &self.lru else { return };
        let victim = lru
            .stamps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let stamp = s.load(Ordering::Relaxed);
                (stamp != 0).then_some((stamp, i as u32))
            })
            .min();
        let Some((_, victim)) = victim else { return };
        let bucket = self.home[victim as usize].load(Ordering::Relaxed) as usize;
        let guard = self.buckets[bucket % self.buckets.len()].lock();
        let mut prev = NIL;
        let mut slot = self.head(&guard);
        while slot != NIL {
            if slot == victim {
                self.unlink(&guard, prev, slot);
                self.release(slot);
                return;
            }
            prev = slot;
            slot = self.next_of(&guard, slot);
        }
    }

    fn release(&self, slot: u32) {
        if let Some(lru) = &self.lru {
            lru.stamps[slot as usize].store(0, Ordering::Relaxed);
        }
        lock(&self.free).push_back(slot);
    }

    /// Removes `key`; `ENOENT` if absent.
    pub fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        let guard = self.buckets[self.bucket_of(key)].lock();
        let (prev, slot) = self.find(&guard, key).ok_or(MapError::NotFound)?;
        self.unlink(&guard, prev, slot);
        self.release(slot);
        Ok(())
    }

    /// Copies the key after `key` in iteration order (bucket by bucket) into `next`; the
    /// first key when `key` is `None` or absent.
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError> {
        let mut from = 0;
        if let Some(key) = key {
            let bucket = self.bucket_of(key);
            let guard = self.buckets[bucket].lock();
            if let Some((_, slot)) = self.find(&guard, key) {
                let after = self.next_of(&guard, slot);
                if after != NIL {
                    self.copy_key(after, next);
                    return Ok(());
                }
                from = bucket + 1;
            }
        }
        for bucket in &self.buckets[from..] {
            let guard = bucket.lock();
            let head = self.head(&guard);
            if head != NIL {
                self.copy_key(head, next);
                return Ok(());
            }
        }
        Err(MapError::NotFound)
    }

    fn copy_key(&self, slot: u32, out: &mut [u8]) {
        // SAFETY: the caller holds the lock of the bucket `slot` is linked in.
        unsafe {
            std::ptr::copy_nonoverlapping(self.key_ptr(slot), out.as_mut_ptr(), self.key_size)
        };
    }

    /// Number of elements (a snapshot).
    pub fn len(&self) -> usize {
        self.slots - lock(&self.free).len()
    }

    /// Whether the map holds no element (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
