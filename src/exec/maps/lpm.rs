//! `BPF_MAP_TYPE_LPM_TRIE`: longest-prefix match. A key is the kernel's `struct
//! bpf_lpm_trie_key`: a `u32` prefix length (host order) followed by `key_size - 4` data bytes
//! (compared bit by bit from the first byte's most significant bit, network order for
//! addresses).
//!
//! Elements are kept in an ordered map under a read-write lock, keyed by the prefix (data
//! masked to its length) and ordered as the kernel's `get_next_key` walks its trie: post-order,
//! so a longer prefix comes before the shorter prefixes that contain it, and a 0 bit before a
//! 1 bit. A lookup probes the prefix lengths present, longest first. Values live in a
//! [`Slab`] like every other map's, so a program's value pointer stays valid memory.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{PoisonError, RwLock};

use super::{BPF_EXIST, BPF_NOEXIST, MapError, Slab};

/// A prefix: its length in bits and its data, zero past the length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Prefix {
    len: u32,
    data: Box<[u8]>,
}

fn bit(data: &[u8], i: u32) -> u8 {
    (data[(i / 8) as usize] >> (7 - i % 8)) & 1
}

impl Ord for Prefix {
    /// Post-order of the binary trie: at the first differing bit, 0 first; a prefix after
    /// every longer prefix it contains.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        let common = self.len.min(other.len);
        // Whole bytes first, then the bits of the last partial byte.
        let bytes = (common / 8) as usize;
        match self.data[..bytes].cmp(&other.data[..bytes]) {
            CmpOrdering::Equal => {}
            unequal => return unequal,
        }
        for i in (bytes as u32 * 8)..common {
            match bit(&self.data, i).cmp(&bit(&other.data, i)) {
                CmpOrdering::Equal => {}
                unequal => return unequal,
            }
        }
        other.len.cmp(&self.len)
    }
}

impl PartialOrd for Prefix {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
struct Trie {
    /// Prefix → value slot.
    entries: BTreeMap<Prefix, u32>,
    /// Prefix length → number of entries of that length.
    lengths: BTreeMap<u32, usize>,
    free: VecDeque<u32>,
}

/// An LPM trie map.
#[derive(Debug)]
pub struct LpmTrie {
    data_size: usize,
    slab: Slab,
    trie: RwLock<Trie>,
}

impl LpmTrie {
    /// An empty trie for keys of `4 + data_size` bytes.
    pub fn new(data_size: u32, value_size: u32, max_entries: u32) -> Self {
        LpmTrie {
            data_size: data_size as usize,
            slab: Slab::new(value_size, max_entries as usize),
            trie: RwLock::new(Trie {
                free: (0..max_entries).collect(),
                ..Trie::default()
            }),
        }
    }

    /// The value slots.
    pub fn slab(&self) -> &Slab {
        &self.slab
    }

    /// The prefix a key names (its data masked to its length), or `EINVAL` for a length
    /// past the data.
    fn prefix(&self, key: &[u8]) -> Result<Prefix, MapError> {
        let (len, data) = key.split_first_chunk::<4>().ok_or(MapError::Invalid)?;
        let len = u32::from_ne_bytes(*len);
        if data.len() != self.data_size || len as usize > 8 * self.data_size {
            return Err(MapError::Invalid);
        }
        Ok(Prefix {
            len,
            data: masked(data, len),
        })
    }

    /// The slot of the longest prefix of at most `key`'s length that matches its data.
    fn longest(&self, trie: &Trie, key: &[u8]) -> Option<u32> {
        let Ok(key) = self.prefix(key) else {
            return None;
        };
        trie.lengths.range(..=key.len).rev().find_map(|(&len, _)| {
            let probe = Prefix {
                len,
                data: masked(&key.data, len),
            };
            trie.entries.get(&probe).copied()
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Trie> {
        self.trie.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Trie> {
        self.trie.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// For programs: the value of the longest matching prefix.
    pub fn lookup_ptr(&self, key: &[u8]) -> Option<*mut u8> {
        let trie = self.read();
        let slot = self.longest(&trie, key)?;
        Some(self.slab.slot(slot as usize))
    }

    /// Copies the value of the longest matching prefix into `out`.
    pub fn lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        let trie = self.read();
        let slot = self.longest(&trie, key).ok_or(MapError::NotFound)?;
        self.slab.read(slot as usize, out);
        Ok(())
    }

    /// Stores `value` for exactly the prefix `key` names. `ENOSPC` when full, as the kernel.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        if flags > BPF_EXIST {
            return Err(MapError::Invalid);
        }
        let prefix = self.prefix(key)?;
        let mut trie = self.write();
        if let Some(&slot) = trie.entries.get(&prefix) {
            if flags == BPF_NOEXIST {
                return Err(MapError::Exists);
            }
            self.slab.write(slot as usize, value);
            return Ok(());
        }
        if flags == BPF_EXIST {
            return Err(MapError::NotFound);
        }
        let slot = trie.free.pop_front().ok_or(MapError::NoSpace)?;
        self.slab.clear(slot as usize);
        self.slab.write(slot as usize, value);
        *trie.lengths.entry(prefix.len).or_default() += 1;
        trie.entries.insert(prefix, slot);
        Ok(())
    }

    /// Removes exactly the prefix `key` names; `ENOENT` if absent.
    pub fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        let prefix = self.prefix(key)?;
        let mut trie = self.write();
        let slot = trie.entries.remove(&prefix).ok_or(MapError::NotFound)?;
        if let Some(n) = trie.lengths.get_mut(&prefix.len) {
            *n -= 1;
            if *n == 0 {
                trie.lengths.remove(&prefix.len);
            }
        }
        trie.free.push_back(slot);
        Ok(())
    }

    /// The prefix after `key` in post-order (the first when `key` is `None` or absent), as a
    /// key (length, then data zero past the length).
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError> {
        let trie = self.read();
        let from = key
            .and_then(|k| self.prefix(k).ok())
            .filter(|p| trie.entries.contains_key(p));
        let found = match from {
            Some(p) => trie
                .entries
                .range((std::ops::Bound::Excluded(p), std::ops::Bound::Unbounded))
                .next(),
            None => trie.entries.iter().next(),
        };
        let (prefix, _) = found.ok_or(MapError::NotFound)?;
        next[..4].copy_from_slice(&prefix.len.to_ne_bytes());
        next[4..].copy_from_slice(&prefix.data);
        Ok(())
    }

    /// Number of prefixes (a snapshot).
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether the trie is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `data` with every bit from `len` on cleared.
fn masked(data: &[u8], len: u32) -> Box<[u8]> {
    let mut out: Box<[u8]> = data.into();
    let full = (len / 8) as usize;
    if full < out.len() {
        let keep = len % 8;
        out[full] &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        out[full + 1..].fill(0);
    }
    out
}
