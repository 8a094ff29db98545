//! `BPF_MAP_TYPE_HASH`, `PERCPU_HASH` and `LRU_HASH`: a chained hash table over preallocated
//! element slots.
//!
//! Each element slot has a key (in `keys`), a chain link, and one value per CPU slot (in the
//! value [`Slab`]). Buckets are singly linked chains of slot numbers. Each bucket has a
//! sequence lock: writers (update, delete, eviction) take it exclusively, so no writer ever
//! sees a half-linked chain; a program's lookup reads the chain without writing anything and
//! retries if a writer changed the bucket meanwhile, so lookups on the same bucket from many
//! threads do not contend. Keys and links are atomics, so an optimistic read of a slot being
//! rewritten is a stale value, detected by the sequence check, never undefined behaviour.
//! Free slots wait in a FIFO queue: a deleted slot is reused as late as possible, and its
//! memory is never freed before the map (a program still holding a pointer to a deleted
//! value reads or writes valid memory; it may see the slot reused, as with the kernel's
//! preallocated hash maps). `LRU_HASH` stamps elements on lookup and update from a per-map
//! clock and, when full, evicts the element with the oldest stamp.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
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

/// One bucket: its sequence (odd while a writer holds it) and the first slot of its chain.
struct Bucket {
    seq: AtomicU32,
    head: AtomicU32,
}

/// A bucket held by a writer; released when dropped.
struct Locked<'a> {
    bucket: &'a Bucket,
    seq: u32,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.bucket
            .seq
            .store(self.seq.wrapping_add(2), Ordering::Release);
    }
}

/// Spins (then yields) while a writer holds a bucket.
fn pause(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 128 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

impl Bucket {
    fn lock(&self) -> Locked<'_> {
        let mut spins = 0;
        loop {
            let seq = self.seq.load(Ordering::Relaxed);
            if seq & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(seq, seq | 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                // Optimistic readers must not see the writes below before the odd sequence.
                fence(Ordering::Release);
                return Locked { bucket: self, seq };
            }
            pause(&mut spins);
        }
    }
}

/// A hash map (per-CPU with more than one CPU slot, LRU when asked).
pub struct HashMap {
    key_size: usize,
    /// 8-byte words per key (the last one zero-padded).
    key_words: usize,
    cpus: usize,
    slots: usize,
    keys: Box<[AtomicU64]>,
    /// Per slot, the next slot of its chain.
    next: Box<[AtomicU32]>,
    /// For each element slot, the bucket it is linked in (valid while it is in the table).
    home: Box<[AtomicU32]>,
    slab: Slab,
    buckets: Box<[Bucket]>,
    free: Mutex<VecDeque<u32>>,
    seed: u64,
    lru: Option<Lru>,
}

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

/// Word `i` of `key`, zero-padded past its end.
fn key_word(key: &[u8], i: usize) -> u64 {
    let mut word = [0u8; 8];
    let chunk = key.get(i * 8..).unwrap_or(&[]);
    let n = chunk.len().min(8);
    word[..n].copy_from_slice(&chunk[..n]);
    u64::from_le_bytes(word)
}

impl HashMap {
    /// An empty table for `max_entries` elements.
    pub fn new(key_size: u32, value_size: u32, max_entries: u32, cpus: usize, lru: bool) -> Self {
        let slots = max_entries as usize;
        let buckets = slots.next_power_of_two();
        let key_words = (key_size as usize).div_ceil(8);
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(slots);
            h.finish()
        };
        HashMap {
            key_size: key_size as usize,
            key_words,
            cpus,
            slots,
            keys: (0..slots * key_words).map(|_| AtomicU64::new(0)).collect(),
            next: (0..slots).map(|_| AtomicU32::new(NIL)).collect(),
            home: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            slab: Slab::new(value_size, slots * cpus),
            buckets: (0..buckets)
                .map(|_| Bucket {
                    seq: AtomicU32::new(0),
                    head: AtomicU32::new(NIL),
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
        for i in 0..key.len().div_ceil(8) {
            h = (h ^ key_word(key, i)).wrapping_mul(MUL).rotate_left(29);
        }
        mix(h)
    }

    fn bucket_of(&self, key: &[u8]) -> usize {
        (self.hash(key) as usize) & (self.buckets.len() - 1)
    }

    fn key_matches(&self, slot: u32, key: &[u8]) -> bool {
        let base = slot as usize * self.key_words;
        let stored = &self.keys[base..base + self.key_words];
        if let [a, b, c, d] = *key {
            return stored[0].load(Ordering::Relaxed)
                == u64::from(u32::from_le_bytes([a, b, c, d]));
        }
        stored
            .iter()
            .enumerate()
            .all(|(i, w)| w.load(Ordering::Relaxed) == key_word(key, i))
    }

    fn next_of(&self, slot: u32) -> u32 {
        self.next[slot as usize].load(Ordering::Relaxed)
    }

    /// `(previous slot or NIL, slot)` of `key` in the held bucket's chain.
    fn find(&self, guard: &Locked<'_>, key: &[u8]) -> Option<(u32, u32)> {
        let mut prev = NIL;
        let mut slot = guard.bucket.head.load(Ordering::Relaxed);
        while slot != NIL {
            if self.key_matches(slot, key) {
                return Some((prev, slot));
            }
            prev = slot;
            slot = self.next_of(slot);
        }
        None
    }

    /// The slot of `key` found without taking the bucket: the chain is walked optimistically
    /// and the walk retried when a writer changed the bucket meanwhile.
    fn find_optimistic(&self, key: &[u8]) -> Option<u32> {
        let bucket = &self.buckets[self.bucket_of(key)];
        let mut spins = 0;
        'retry: loop {
            let seq = bucket.seq.load(Ordering::Acquire);
            if seq & 1 == 1 {
                pause(&mut spins);
                continue;
            }
            let mut found = None;
            let mut slot = bucket.head.load(Ordering::Relaxed);
            let mut steps = 0;
            while slot != NIL && (slot as usize) < self.slots {
                if self.key_matches(slot, key) {
                    found = Some(slot);
                    break;
                }
                steps += 1;
                if steps > self.slots {
                    // Only a chain changing under the walk can be this long.
                    pause(&mut spins);
                    continue 'retry;
                }
                slot = self.next_of(slot);
            }
            fence(Ordering::Acquire);
            if bucket.seq.load(Ordering::Relaxed) == seq {
                return found;
            }
            pause(&mut spins);
        }
    }

    /// Removes `slot` (whose predecessor is `prev`) from the held bucket's chain.
    fn unlink(&self, guard: &Locked<'_>, prev: u32, slot: u32) {
        let after = self.next_of(slot);
        if prev == NIL {
            guard.bucket.head.store(after, Ordering::Relaxed);
        } else {
            self.next[prev as usize].store(after, Ordering::Relaxed);
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

    /// For programs: the address of `key`'s value in CPU slot `cpu` (a lock-free lookup).
    pub fn lookup_ptr(&self, key: &[u8], cpu: usize) -> Option<*mut u8> {
        if key.len() != self.key_size {
            return None;
        }
        let slot = self.find_optimistic(key)?;
        self.touch(slot);
        Some(self.slab.slot(self.value_slot(slot, cpu)))
    }

    /// Copies every CPU slot of `key`'s value into `out` (holding the bucket, so the element
    /// cannot be deleted and reused during the copy).
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
            let base = slot as usize * self.key_words;
            for (i, word) in self.keys[base..base + self.key_words].iter().enumerate() {
                word.store(key_word(key, i), Ordering::Relaxed);
            }
            self.write_value(slot, value, cpu, true);
            self.home[slot as usize].store(bucket as u32, Ordering::Relaxed);
            self.touch(slot);
            let head = guard.bucket.head.load(Ordering::Relaxed);
            self.next[slot as usize].store(head, Ordering::Relaxed);
            guard.bucket.head.store(slot, Ordering::Relaxed);
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
        let mut slot = guard.bucket.head.load(Ordering::Relaxed);
        while slot != NIL {
            if slot == victim {
                self.unlink(&guard, prev, slot);
                self.release(slot);
                return;
            }
            prev = slot;
            slot = self.next_of(slot);
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
                let after = self.next_of(slot);
                if after != NIL {
                    self.copy_key(after, next);
                    return Ok(());
                }
                from = bucket + 1;
            }
        }
        for bucket in &self.buckets[from..] {
            let guard = bucket.lock();
            let head = guard.bucket.head.load(Ordering::Relaxed);
            if head != NIL {
                self.copy_key(head, next);
                return Ok(());
            }
        }
        Err(MapError::NotFound)
    }

    /// Copies the key of `slot` (linked in a bucket the caller holds) into `out`.
    fn copy_key(&self, slot: u32, out: &mut [u8]) {
        let base = slot as usize * self.key_words;
        for (i, chunk) in out[..self.key_size].chunks_mut(8).enumerate() {
            let word = self.keys[base + i].load(Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
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
