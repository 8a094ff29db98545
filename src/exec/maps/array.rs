//! `BPF_MAP_TYPE_ARRAY` and `BPF_MAP_TYPE_PERCPU_ARRAY`: `max_entries` zero-initialised values
//! indexed by a `u32` key; every element always exists and cannot be deleted.

use super::{BPF_EXIST, BPF_NOEXIST, MapError, Slab};

/// An array map (per-CPU when created with more than one CPU slot).
#[derive(Debug)]
pub struct ArrayMap {
    slab: Slab,
    max_entries: u32,
    cpus: usize,
}

impl ArrayMap {
    /// `max_entries` zeroed values of `value_size` bytes, `cpus` copies each.
    pub fn new(value_size: u32, max_entries: u32, cpus: usize) -> Self {
        ArrayMap {
            slab: Slab::new(value_size, max_entries as usize * cpus),
            max_entries,
            cpus,
        }
    }

    /// The value slots.
    pub fn slab(&self) -> &Slab {
        &self.slab
    }

    fn index(&self, key: &[u8]) -> Option<usize> {
        let index = u32::from_ne_bytes(key.try_into().ok()?);
        (index < self.max_entries).then_some(index as usize)
    }

    /// The address of element `key`'s value in CPU slot `cpu`.
    pub fn lookup_ptr(&self, key: &[u8], cpu: usize) -> Option<*mut u8> {
        let index = self.index(key)?;
        Some(self.slab.slot(index * self.cpus + cpu % self.cpus))
    }

    /// Copies every CPU slot of `key` into `out` (stride: the slab's stride).
    pub fn lookup(&self, key: &[u8], out: &mut [u8]) -> Result<(), MapError> {
        let index = self.index(key).ok_or(MapError::NotFound)?;
        if self.cpus == 1 {
            self.slab.read(index, out);
            return Ok(());
        }
        for (cpu, chunk) in out.chunks_mut(self.slab.host_stride()).enumerate() {
            self.slab.read(index * self.cpus + cpu, chunk);
        }
        Ok(())
    }

    /// Stores `value`: into CPU slot `cpu` when given (a program's update), else every slot
    /// from the host's buffer. `BPF_NOEXIST` is `EEXIST` (every element exists); an index
    /// past the end is `E2BIG`, as in the kernel.
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
        let index = self.index(key).ok_or(MapError::Full)?;
        if flags == BPF_NOEXIST {
            return Err(MapError::Exists);
        }
        match cpu {
            Some(cpu) => self.slab.write(index * self.cpus + cpu % self.cpus, value),
            None if self.cpus == 1 => self.slab.write(index, value),
            None => {
                for (cpu, chunk) in value.chunks(self.slab.host_stride()).enumerate() {
                    self.slab.write(index * self.cpus + cpu, chunk);
                }
            }
        }
        Ok(())
    }
}
