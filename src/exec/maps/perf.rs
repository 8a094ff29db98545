//! `BPF_MAP_TYPE_PERF_EVENT_ARRAY`: one buffer of records per slot, which
//! `bpf_perf_event_output` (25) appends to and the host drains with
//! [`PerfEventArray::consume`] (C: `rbpf_perf_buffer_consume`).
//!
//! In the kernel each slot holds a perf event opened on one CPU. Here a slot is a buffer of
//! [`PERF_SLOT_BYTES`] bytes, open from creation; the host closes a slot by deleting its
//! element (the helper then returns `-ENOENT`, as for a slot without an event) and opens it
//! again by updating it. A record that does not fit in its slot's buffer is dropped and
//! counted, and the helper returns `-ENOSPC`; the consumer learns the count (perf's
//! `PERF_RECORD_LOST`).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use super::MapError;

/// Bytes of records a slot holds before it drops new ones (each record counts its data plus
/// 16 bytes of perf header, rounded up to 8, as a perf ring would take).
pub const PERF_SLOT_BYTES: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Slot {
    /// Whether the slot has an "event" (open); the value the host last stored.
    open: bool,
    value: u32,
    records: VecDeque<Box<[u8]>>,
    bytes: usize,
    lost: u64,
}

/// A perf event array.
#[derive(Debug)]
pub struct PerfEventArray {
    slots: Box<[Mutex<Slot>]>,
}

/// The bytes a record takes in its slot.
fn footprint(len: usize) -> usize {
    (len + 16).div_ceil(8) * 8
}

impl PerfEventArray {
    /// `entries` open slots.
    pub fn new(entries: u32) -> Self {
        PerfEventArray {
            slots: (0..entries)
                .map(|_| {
                    Mutex::new(Slot {
                        open: true,
                        ..Slot::default()
                    })
                })
                .collect(),
        }
    }

    fn slot(&self, index: u32) -> Option<std::sync::MutexGuard<'_, Slot>> {
        let slot = self.slots.get(index as usize)?;
        Some(slot.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots (never: a map has at least one).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Appends a record to slot `index`: `E2BIG` past the last slot, `ENOENT` for a closed
    /// slot, `ENOSPC` (and one more lost record) when the slot's buffer is full.
    pub fn output(&self, index: u32, data: &[u8]) -> Result<(), MapError> {
        let mut slot = self.slot(index).ok_or(MapError::Full)?;
        if !slot.open {
            return Err(MapError::NotFound);
        }
        let cost = footprint(data.len());
        if slot.bytes + cost > PERF_SLOT_BYTES {
            slot.lost += 1;
            return Err(MapError::NoSpace);
        }
        slot.bytes += cost;
        slot.records.push_back(data.into());
        Ok(())
    }

    /// The value stored at `index` (`ENOENT` when closed).
    pub fn get(&self, index: u32) -> Result<u32, MapError> {
        let slot = self.slot(index).ok_or(MapError::NotFound)?;
        if slot.open {
            Ok(slot.value)
        } else {
            Err(MapError::NotFound)
        }
    }

    /// Opens slot `index`, remembering `value` (`E2BIG` past the last slot).
    pub fn set(&self, index: u32, value: u32) -> Result<(), MapError> {
        let mut slot = self.slot(index).ok_or(MapError::Full)?;
        slot.open = true;
        slot.value = value;
        Ok(())
    }

    /// Closes slot `index`, dropping its records (`ENOENT` if already closed, `EINVAL` past
    /// the last slot).
    pub fn close(&self, index: u32) -> Result<(), MapError> {
        let mut slot = self.slot(index).ok_or(MapError::Invalid)?;
        if !slot.open {
            return Err(MapError::NotFound);
        }
        *slot = Slot::default();
        Ok(())
    }

    /// Records lost in slot `index` since the consumer last learnt of them.
    pub fn lost(&self, index: u32) -> u64 {
        self.slot(index).map_or(0, |s| s.lost)
    }

    /// Drains every slot in order: first `lost(slot, count)` when records were dropped
    /// since the last call, then `sample(slot, record)` for each record, oldest first. A
    /// negative return from `sample` stops after that record and is returned; otherwise
    /// the number of records passed to `sample`.
    pub fn consume(
        &self,
        mut sample: impl FnMut(u32, &[u8]) -> i32,
        mut lost: impl FnMut(u32, u64),
    ) -> i64 {
        let mut count = 0i64;
        for index in 0..self.slots.len() as u32 {
            let dropped = self
                .slot(index)
                .map_or(0, |mut s| std::mem::take(&mut s.lost));
            if dropped != 0 {
                lost(index, dropped);
            }
            loop {
                let record = {
                    let Some(mut slot) = self.slot(index) else {
                        break;
                    };
                    let Some(record) = slot.records.pop_front() else {
                        break;
                    };
                    slot.bytes -= footprint(record.len());
                    record
                };
                let rc = sample(index, &record);
                count += 1;
                if rc < 0 {
                    return i64::from(rc);
                }
            }
        }
        count
    }
}
