//! `BPF_MAP_TYPE_RINGBUF`: a multi-producer, single-consumer ring of variable-length records.
//!
//! The data area is `max_entries` bytes (a power of two). Each record is an 8-byte header
//! (length, plus a *busy* bit while reserved and a *discard* bit) followed by the data,
//! padded to 8 bytes. Producers (programs) reserve under a mutex, which keeps records in
//! reservation order; a record that would run past the end of the area is preceded by a
//! discarded filler record up to the end, so every record is contiguous. Submitting or
//! discarding clears the busy bit with release ordering; the consumer (the host) reads records
//! in order up to the first busy one and then frees their space.
//!
//! A reservation's bytes are accessible to programs exactly while it is reserved: the live
//! reservations are listed, and the bounds check consults the list (see [`RingBuf::contains`]).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::MapError;

/// Header bit set while a record is reserved.
const BUSY: u32 = 1 << 31;
/// Header bit of a discarded record (and of fillers).
const DISCARD: u32 = 1 << 30;
/// Bytes of a record header.
pub const HEADER_SIZE: u64 = 8;

/// Producer state, behind the reservation mutex.
#[derive(Debug, Default)]
struct Producer {
    /// Total bytes ever reserved (the next record's position, modulo the size).
    pos: u64,
    /// Live reservations: `(data address, length)`.
    live: Vec<(u64, u64)>,
}

/// A ring buffer map.
pub struct RingBuf {
    words: Box<[UnsafeCell<u64>]>,
    size: u64,
    producer: Mutex<Producer>,
    /// The producer position as the consumer may read it.
    published: AtomicU64,
    /// Total bytes ever consumed.
    consumer: AtomicU64,
    consuming: Mutex<()>,
}

// SAFETY: the data area is shared memory accessed through raw pointers; headers are accessed
// as atomics; positions are atomics or behind mutexes.
unsafe impl Sync for RingBuf {}
// SAFETY: the allocation is owned.
unsafe impl Send for RingBuf {}

impl std::fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingBuf")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RingBuf {
    /// An empty ring of `size` bytes (a power of two, at least 8).
    pub fn new(size: u32) -> Self {
        RingBuf {
            words: super::zeroed(size as usize / 8),
            size: u64::from(size),
            producer: Mutex::new(Producer::default()),
            published: AtomicU64::new(0),
            consumer: AtomicU64::new(0),
            consuming: Mutex::new(()),
        }
    }

    fn base(&self) -> u64 {
        self.words.as_ptr() as u64
    }

    /// The header at ring offset `offset` (a multiple of 8 below the size).
    fn header(&self, offset: u64) -> &AtomicU32 {
        // SAFETY: the offset is 8-aligned inside the area; headers are only accessed as
        // atomics (programs can reach record data, never a header: it is in no reservation).
        unsafe { &*((self.base() + offset) as *const AtomicU32) }
    }

    /// Reserves `len` bytes; the address of the record's data, or `None` when `len` is 0, too
    /// large, or the ring has no room.
    pub fn reserve(&self, len: u64) -> Option<u64> {
        if len == 0 || len > self.size - HEADER_SIZE || len >= u64::from(DISCARD) {
            return None;
        }
        let total = (len + HEADER_SIZE).div_ceil(8) * 8;
        let mut p = lock(&self.producer);
        let consumed = self.consumer.load(Ordering::Acquire);
        let offset = p.pos & (self.size - 1);
        let filler = if offset + total > self.size {
            self.size - offset
        } else {
            0
        };
        if p.pos + filler + total - consumed > self.size {
            return None;
        }
        if filler > 0 {
            self.header(offset)
                .store((filler - HEADER_SIZE) as u32 | DISCARD, Ordering::Relaxed);
            p.pos += filler;
        }
        let at = p.pos & (self.size - 1);
        self.header(at).store(len as u32 | BUSY, Ordering::Relaxed);
        p.pos += total;
        let data = self.base() + at + HEADER_SIZE;
        p.live.push((data, len));
        self.published.store(p.pos, Ordering::Release);
        Some(data)
    }

    /// Ends the reservation whose data starts at `data`: submitted (visible to the consumer)
    /// or discarded. [`MapError::Invalid`] if `data` is no live reservation.
    pub fn commit(&self, data: u64, discard: bool) -> Result<(), MapError> {
        let mut p = lock(&self.producer);
        let i = p
            .live
            .iter()
            .position(|&(d, _)| d == data)
            .ok_or(MapError::Invalid)?;
        let (_, len) = p.live.swap_remove(i);
        let flags = if discard { DISCARD } else { 0 };
        self.header(data - HEADER_SIZE - self.base())
            .store(len as u32 | flags, Ordering::Release);
        Ok(())
    }

    /// Copies `data` into a new record and submits it (`bpf_ringbuf_output`).
    pub fn output(&self, data: &[u8]) -> Result<(), MapError> {
        let at = self.reserve(data.len() as u64).ok_or(MapError::Full)?;
        // SAFETY: the reservation is `data.len()` bytes of the ring, owned until committed.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u8, data.len()) };
        self.commit(at, false)
    }

    /// Whether `[addr, end)` lies within one live reservation.
    pub fn contains(&self, addr: u64, end: u64) -> bool {
        let base = self.base();
        if addr < base || end > base + self.size {
            return false;
        }
        lock(&self.producer)
            .live
            .iter()
            .any(|&(d, len)| addr >= d && end <= d + len)
    }

    /// Bytes of submitted or reserved records not yet consumed.
    pub fn pending(&self) -> u64 {
        self.published.load(Ordering::Acquire) - self.consumer.load(Ordering::Acquire)
    }

    /// Calls `callback` with each submitted record in order, up to the first one still
    /// reserved, skipping discarded ones, and frees their space. Stops early when `callback`
    /// returns a negative value (the record counts as consumed) and returns that value;
    /// otherwise returns the number of records passed. [`MapError::Busy`] if another thread
    /// is consuming (or `callback` calls back in).
    pub fn consume(&self, mut callback: impl FnMut(&[u8]) -> i32) -> Result<i64, MapError> {
        let Ok(_guard) = self.consuming.try_lock() else {
            return Err(MapError::Busy);
        };
        let mut count = 0i64;
        loop {
            let pos = self.consumer.load(Ordering::Relaxed);
            if pos == self.published.load(Ordering::Acquire) {
                return Ok(count);
            }
            let at = pos & (self.size - 1);
            let header = self.header(at).load(Ordering::Acquire);
            if header & BUSY != 0 {
                return Ok(count);
            }
            let len = u64::from(header & !(BUSY | DISCARD));
            let next = pos + (len + HEADER_SIZE).div_ceil(8) * 8;
            let mut stop = None;
            if header & DISCARD == 0 {
                // SAFETY: a submitted record's `len` bytes follow its header, contiguously,
                // and nobody writes them until the consumer position passes them.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        (self.base() + at + HEADER_SIZE) as *const u8,
                        len as usize,
                    )
                };
                let rc = callback(bytes);
                count += 1;
                if rc < 0 {
                    stop = Some(i64::from(rc));
                }
            }
            self.consumer.store(next, Ordering::Release);
            if let Some(rc) = stop {
                return Ok(rc);
            }
        }
    }
}
