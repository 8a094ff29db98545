//! BPF maps: the kernel's map types, kept by the VM for the program that declared them
//! (`docs/maps.md` describes the model).
//!
//! A [`Map`] is created by the ELF loader for every map an object declares (or by
//! [`Map::new`]), lives as long as the loaded program, and is shared by every thread running
//! it and by the host. Values live in a [`Slab`]: one allocation of fixed-size slots made at
//! creation, never moved or freed before the map, so a pointer to a value handed to a program
//! stays valid memory for the whole run even if the element is deleted meanwhile (the slot may
//! be reused for another key, as in the kernel's preallocated hash maps). The bounds checks of
//! both engines accept an access when it lies inside one slot's `value_size` bytes
//! ([`MapSet::allows`]).
//!
//! Per-CPU maps keep [`possible_cpus`] values per element; a thread uses the slot
//! [`current_cpu`] assigns it (round-robin on first use).

pub mod array;

pub mod hash;

pub mod ringbuf;

pub mod lpm;

pub mod perf;

pub mod queue;

pub mod redirect;

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

pub use array::ArrayMap;
pub use hash::HashMap;
pub use lpm::LpmTrie;
pub use perf::PerfEventArray;
pub use queue::{BloomFilter, QueueMap};
pub use redirect::SparseArray;
pub use ringbuf::RingBuf;

/// `BPF_ANY`: create or update.
pub const BPF_ANY: u64 = 0;
/// `BPF_NOEXIST`: create only.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only.
pub const BPF_EXIST: u64 = 2;

/// `BPF_F_NO_PREALLOC`: the kernel requires it of `LPM_TRIE` maps (values are preallocated
/// here anyway).
pub const BPF_F_NO_PREALLOC: u32 = 1;

/// `BPF_F_ZERO_SEED`: a bloom filter's hashes are not seeded randomly.
pub const BPF_F_ZERO_SEED: u32 = 1 << 6;

/// Largest key accepted by hash maps (the kernel's limit, the size of the eBPF stack).
pub const MAX_KEY_SIZE: u32 = 512;
/// Largest value accepted by any map.
pub const MAX_VALUE_SIZE: u32 = 1 << 20;
/// Largest total memory one map may take (values, keys and per-CPU copies).
pub const MAX_MAP_BYTES: u64 = 1 << 30;
/// Most per-CPU slots a per-CPU map keeps per element.
pub const MAX_CPUS: usize = 64;

/// The map types librbpf implements, with the kernel's numbers (`enum bpf_map_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH`.
    Hash = 1,
    /// `BPF_MAP_TYPE_ARRAY`.
    Array = 2,
    /// `BPF_MAP_TYPE_PROG_ARRAY`: indices of programs of the same object for `bpf_tail_call`.
    ProgArray = 3,
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`: per-slot record buffers for `bpf_perf_event_output`.
    PerfEventArray = 4,
    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    PercpuHash = 5,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PercpuArray = 6,
    /// `BPF_MAP_TYPE_LRU_HASH`.
    LruHash = 9,
    /// `BPF_MAP_TYPE_LPM_TRIE`: longest-prefix match on `struct bpf_lpm_trie_key` keys.
    LpmTrie = 11,
    /// `BPF_MAP_TYPE_ARRAY_OF_MAPS`: values are inner maps (their [`Map::id`]).
    ArrayOfMaps = 12,
    /// `BPF_MAP_TYPE_HASH_OF_MAPS`: values are inner maps (their [`Map::id`]).
    HashOfMaps = 13,
    /// `BPF_MAP_TYPE_DEVMAP`: devices by index, for `bpf_redirect_map`.
    Devmap = 14,
    /// `BPF_MAP_TYPE_CPUMAP`: CPUs, for `bpf_redirect_map`.
    Cpumap = 16,
    /// `BPF_MAP_TYPE_XSKMAP`: AF_XDP sockets by queue, for `bpf_redirect_map`.
    Xskmap = 17,
    /// `BPF_MAP_TYPE_QUEUE`: FIFO, no keys.
    Queue = 22,
    /// `BPF_MAP_TYPE_STACK`: LIFO, no keys.
    Stack = 23,
    /// `BPF_MAP_TYPE_DEVMAP_HASH`: devices by any `u32` key, for `bpf_redirect_map`.
    DevmapHash = 25,
    /// `BPF_MAP_TYPE_RINGBUF`.
    Ringbuf = 27,
    /// `BPF_MAP_TYPE_BLOOM_FILTER`: membership tests, no keys.
    BloomFilter = 30,
}

impl MapType {
    /// The type with kernel number `raw`.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => MapType::Hash,
            2 => MapType::Array,
            3 => MapType::ProgArray,
            4 => MapType::PerfEventArray,
            5 => MapType::PercpuHash,
            6 => MapType::PercpuArray,
            9 => MapType::LruHash,
            11 => MapType::LpmTrie,
            12 => MapType::ArrayOfMaps,
            13 => MapType::HashOfMaps,
            14 => MapType::Devmap,
            16 => MapType::Cpumap,
            17 => MapType::Xskmap,
            22 => MapType::Queue,
            23 => MapType::Stack,
            25 => MapType::DevmapHash,
            27 => MapType::Ringbuf,
            30 => MapType::BloomFilter,
            _ => return None,
        })
    }

    /// Whether the map keeps one value per CPU slot.
    pub fn is_per_cpu(self) -> bool {
        matches!(self, MapType::PercpuHash | MapType::PercpuArray)
    }

    /// Whether the map's values are inner maps.
    pub fn is_map_in_map(self) -> bool {
        matches!(self, MapType::ArrayOfMaps | MapType::HashOfMaps)
    }

    /// Whether the map has no keys (push, pop and peek instead of lookup and update).
    pub fn is_keyless(self) -> bool {
        matches!(self, MapType::Queue | MapType::Stack | MapType::BloomFilter)
    }
}

/// What an object declares about a map (the fields of libbpf's BTF map definitions and of the
/// legacy `struct bpf_map_def`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapDef {
    /// Kernel map type number.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity (elements; bytes for a ring buffer).
    pub max_entries: u32,
    /// `map_flags` (`BPF_F_NO_PREALLOC` is accepted and ignored: values are always
    /// preallocated).
    pub map_flags: u32,
    /// `map_extra`: for `BLOOM_FILTER`, the number of hash functions in its low 4 bits (0:
    /// 5); ignored by the other types.
    pub map_extra: u64,
}

/// Why an operation on a map failed; [`MapError::errno`] gives the kernel's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// `ENOENT`: no such key (or no next key).
    #[error("no such element")]
    NotFound,
    /// `EEXIST`: `BPF_NOEXIST` and the key exists.
    #[error("element exists")]
    Exists,
    /// `E2BIG`: the map is full, or an array index is out of range on update.
    #[error("map is full or index out of range")]
    Full,
    /// `EINVAL`: bad flags, bad sizes, or an operation the map type does not support.
    #[error("invalid argument")]
    Invalid,
    /// `EBUSY`: the ring buffer is being consumed by someone else.
    #[error("busy")]
    Busy,
    /// `ENOSPC`: an LPM trie is full, or a perf event slot's buffer is.
    #[error("no space left")]
    NoSpace,
    /// `EOPNOTSUPP`: the map type does not have this operation (pop on a bloom filter).
    #[error("operation not supported")]
    NotSupported,
    /// `ENODEV`: a `CPUMAP` key that names no CPU slot.
    #[error("no such device")]
    NoDevice,
}

impl MapError {
    /// The positive errno value.
    pub fn errno(self) -> i32 {
        match self {
            MapError::NotFound => libc::ENOENT,
            MapError::Exists => libc::EEXIST,
            MapError::Full => libc::E2BIG,
            MapError::Invalid => libc::EINVAL,
            MapError::Busy => libc::EBUSY,
            MapError::NoSpace => libc::ENOSPC,
            MapError::NotSupported => libc::EOPNOTSUPP,
            MapError::NoDevice => libc::ENODEV,
        }
    }
}

/// Why a map could not be created (the loader prefixes the map's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The type number is not one librbpf implements.
    #[error("unsupported map type {0}")]
    UnknownType(u32),
    /// Key size, value size or capacity is not valid for the type.
    #[error("{0}")]
    BadSize(String),
}

/// The number of per-CPU slots: the host's available parallelism, between 1 and
/// [`MAX_CPUS`], fixed for the life of the process.
pub fn possible_cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_CPUS)
    })
}

/// The per-CPU slot of the calling thread: assigned round-robin the first time a thread asks,
/// then fixed. Threads beyond [`possible_cpus`] share slots.
pub fn current_cpu() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    SLOT.with(|slot| {
        let mut cpu = slot.get();
        if cpu == usize::MAX {
            cpu = NEXT.fetch_add(1, Ordering::Relaxed) % possible_cpus();
            slot.set(cpu);
        }
        cpu
    })
}

/// `size` rounded up to a multiple of 8 (slot stride; libbpf's per-CPU value stride).
pub fn round_up8(size: u32) -> usize {
    (size as usize).div_ceil(8) * 8
}

/// `len` zeroed cells, from zero-filled pages: memory a large map never uses is never
/// touched.
fn zeroed<T: Zeroable>(len: usize) -> Box<[UnsafeCell<T>]> {
    let cells = Box::<[UnsafeCell<T>]>::new_zeroed_slice(len);
    // SAFETY: `T` is an integer (`Zeroable`), for which all-zero bytes are a valid value, and
    // `UnsafeCell<T>` has the layout of `T`.
    unsafe { cells.assume_init() }
}

/// Integer types whose all-zero bit pattern is a valid value.
trait Zeroable {}
impl Zeroable for u8 {}
impl Zeroable for u64 {}

/// Bytes after each value slot that belong to no value.
const GUARD_BYTES: usize = 8;

/// Largest slot stride rounded up to a power of two; larger values keep an 8-byte multiple.
const POW2_STRIDE_MAX: usize = 8192;

/// Distance between value slots: the value rounded up to 8 plus the guard, then up to a
/// power of two when that stays small, so bounds checks find the offset in a slot with a
/// mask instead of a division.
fn slot_stride(value_size: u32) -> usize {
    let stride = round_up8(value_size) + GUARD_BYTES;
    if stride <= POW2_STRIDE_MAX {
        stride.next_power_of_two()
    } else {
        stride
    }
}

/// Where a map's values lie, for checks inlined by the JIT: an access of `size` bytes at
/// `addr` is inside one value when `addr - base < len` and
/// `((addr - base) & (stride - 1)) + size <= value_size` (`stride` is a power of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlabRegion {
    /// Address of the first slot.
    pub base: u64,
    /// Bytes of all slots.
    pub len: u64,
    /// Distance between slots (a power of two).
    pub stride: u64,
    /// Bytes of each value.
    pub value_size: u64,
}

/// Fixed-size value slots in one zeroed allocation that never moves. eBPF code reaches the
/// bytes through raw addresses (like the input memory); Rust code only copies to and from
/// them through raw pointers.
pub struct Slab {
    words: Box<[UnsafeCell<u64>]>,
    stride: usize,
    value_size: usize,
    slots: usize,
}

// SAFETY: the slab is shared memory for eBPF programs and the host, accessed only through raw
// pointers (never through references), like the data sections of a program.
unsafe impl Sync for Slab {}
// SAFETY: as above; the allocation is owned.
unsafe impl Send for Slab {}

impl std::fmt::Debug for Slab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slab")
            .field("value_size", &self.value_size)
            .field("slots", &self.slots)
            .finish()
    }
}

impl Slab {
    /// `slots` zeroed values of `value_size` bytes each. Each slot is followed by at least 8
    /// bytes that belong to no value, so one byte past any value is refused by the bounds
    /// check, not taken for the next value.
    pub fn new(value_size: u32, slots: usize) -> Self {
        let stride = slot_stride(value_size);
        let words = zeroed((stride / 8) * slots);
        Slab {
            words,
            stride,
            value_size: value_size as usize,
            slots,
        }
    }

    /// Address of the first byte of slot `index` (which must be below the slot count).
    pub fn slot(&self, index: usize) -> *mut u8 {
        debug_assert!(index < self.slots);
        self.words
            .as_ptr()
            .cast::<u8>()
            .cast_mut()
            .wrapping_add(index * self.stride)
    }

    /// Bytes per value.
    pub fn value_size(&self) -> usize {
        self.value_size
    }

    /// Distance between slots (the value size rounded up to 8, plus the guard, up to a power
    /// of two when small).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Distance between per-CPU values in the host's buffers (the value size rounded up to
    /// 8, libbpf's layout).
    pub fn host_stride(&self) -> usize {
        round_up8(self.value_size as u32)
    }

    /// The slab's geometry, when its stride is a power of two.
    pub fn region(&self) -> Option<SlabRegion> {
        self.stride.is_power_of_two().then(|| SlabRegion {
            base: self.words.as_ptr() as u64,
            len: (self.stride * self.slots) as u64,
            stride: self.stride as u64,
            value_size: self.value_size as u64,
        })
    }

    /// Whether `[addr, end)` lies within the `value_size` bytes of one slot whose index is
    /// `cpu` modulo `cpus` (per-CPU values: slot `element * cpus + cpu`).
    pub fn contains_for_cpu(&self, addr: u64, end: u64, cpus: usize, cpu: usize) -> bool {
        if !self.contains(addr, end) {
            return false;
        }
        let index = (addr - self.words.as_ptr() as u64) / self.stride as u64;
        index % cpus as u64 == (cpu % cpus) as u64
    }

    /// Whether `[addr, end)` lies within the `value_size` bytes of one slot.
    #[inline]
    pub fn contains(&self, addr: u64, end: u64) -> bool {
        let base = self.words.as_ptr() as u64;
        let len = (self.stride * self.slots) as u64;
        addr >= base
            && end <= base + len
            && end >= addr
            && self.offset_in_slot(addr - base) + (end - addr) <= self.value_size as u64
    }

    fn offset_in_slot(&self, offset: u64) -> u64 {
        if self.stride.is_power_of_two() {
            offset & (self.stride as u64 - 1)
        } else {
            offset % self.stride as u64
        }
    }

    /// Copies slot `index`'s value into `out` (`value_size` bytes).
    pub fn read(&self, index: usize, out: &mut [u8]) {
        let n = self.value_size.min(out.len());
        // SAFETY: the slot holds `value_size` bytes; `out` is a distinct Rust buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.slot(index), out.as_mut_ptr(), n) };
    }

    /// Copies `value` into slot `index` (at most `value_size` bytes).
    pub fn write(&self, index: usize, value: &[u8]) {
        let n = self.value_size.min(value.len());
        // SAFETY: as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), self.slot(index), n) };
    }

    /// Zeroes slot `index`.
    pub fn clear(&self, index: usize) {
        // SAFETY: the slot holds `stride` bytes.
        unsafe { std::ptr::write_bytes(self.slot(index), 0, self.stride) };
    }
}

/// A program array: for each index, the entry function of another program of the same
/// object (a position in [`crate::Program::functions`]'s section entries), or none.
#[derive(Debug)]
pub struct ProgArray {
    entries: Box<[std::sync::atomic::AtomicU32]>,
}

/// The value of an empty [`ProgArray`] entry.
const NO_PROGRAM: u32 = u32::MAX;

impl ProgArray {
    fn new(max_entries: u32) -> Self {
        ProgArray {
            entries: (0..max_entries)
                .map(|_| std::sync::atomic::AtomicU32::new(NO_PROGRAM))
                .collect(),
        }
    }

    /// The program stored at `index`.
    pub fn get(&self, index: u32) -> Option<u32> {
        let v = self.entries.get(index as usize)?.load(Ordering::Acquire);
        (v != NO_PROGRAM).then_some(v)
    }
}

/// Plain data that can be a map key or value in the typed API ([`Map::get`], [`Map::set`],
/// …): its bytes are exactly its value.
///
/// # Safety
/// Implement only for `Copy` types without padding bytes for which every bit pattern is a
/// valid value (integers, arrays of them, `#[repr(C)]` structs of them with no padding).
pub unsafe trait Plain: Copy + 'static {}

macro_rules! plain {
    ($($t:ty),*) => { $(
        // SAFETY: integers have no padding and every bit pattern is valid.
        unsafe impl Plain for $t {}
    )* };
}
plain!(
    u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, usize, isize
);
// SAFETY: an array of plain elements has no padding between them.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

fn bytes_of<T: Plain>(value: &T) -> &[u8] {
    // SAFETY: `T: Plain` has no padding, so all its bytes are initialised.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(value).cast(), size_of::<T>()) }
}

fn from_bytes<T: Plain>(bytes: &[u8]) -> T {
    debug_assert_eq!(bytes.len(), size_of::<T>());
    // SAFETY: `bytes` holds `size_of::<T>()` bytes and every bit pattern is a valid `T`.
    unsafe { bytes.as_ptr().cast::<T>().read_unaligned() }
}

/// The storage of a map, by kind.
#[derive(Debug)]
pub enum MapStorage {
    /// `ARRAY`, `PERCPU_ARRAY`.
    Array(ArrayMap),
    /// `HASH`, `PERCPU_HASH`, `LRU_HASH`.
    Hash(HashMap),
    /// `RINGBUF`.
    Ringbuf(RingBuf),
    /// `PROG_ARRAY`.
    ProgArray(ProgArray),
    /// `QUEUE`, `STACK`.
    Queue(QueueMap),
    /// `BLOOM_FILTER`.
    Bloom(BloomFilter),
    /// `LPM_TRIE`.
    Lpm(LpmTrie),
    /// `PERF_EVENT_ARRAY`.
    Perf(PerfEventArray),
    /// `DEVMAP`, `CPUMAP`, `XSKMAP`.
    Sparse(SparseArray),
}

/// One map: its name, definition and storage.
#[derive(Debug)]
pub struct Map {
    name: String,
    map_type: MapType,
    def: MapDef,
    id: u32,
    storage: MapStorage,
}

/// The next [`Map::id`].
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

fn bad(msg: impl Into<String>) -> CreateError {
    CreateError::BadSize(msg.into())
}

impl Map {
    /// Creates an empty map as the kernel would for `def`, or says why it cannot.
    pub fn new(name: impl Into<String>, def: MapDef) -> Result<Self, CreateError> {
        let map_type =
            MapType::from_raw(def.map_type).ok_or(CreateError::UnknownType(def.map_type))?;
        let MapDef {
            key_size,
            value_size,
            max_entries,
            ..
        } = def;
        // libbpf gives a perf event array without max_entries one slot per CPU.
        let max_entries = match (map_type, max_entries) {
            (MapType::PerfEventArray, 0) => possible_cpus() as u32,
            (_, 0) => return Err(bad("max_entries must not be 0")),
            (_, n) => n,
        };
        let def = MapDef { max_entries, ..def };
        let cpus = if map_type.is_per_cpu() {
            possible_cpus()
        } else {
            1
        };
        let storage = match map_type {
            MapType::Queue | MapType::Stack | MapType::BloomFilter => {
                if key_size != 0 {
                    return Err(bad("key_size must be 0"));
                }
                if value_size == 0 || value_size > MAX_VALUE_SIZE {
                    return Err(bad(format!("bad value_size {value_size}")));
                }
                if map_type == MapType::BloomFilter {
                    if def.map_extra > 15 {
                        return Err(bad("map_extra must be at most 15 (number of hashes)"));
                    }
                    let hashes = match def.map_extra as u32 {
                        0 => 5,
                        n => n,
                    };
                    let bits = BloomFilter::bits_for(max_entries, hashes);
                    if bits / 8 > MAX_MAP_BYTES {
                        return Err(bad("bloom filter too large"));
                    }
                    MapStorage::Bloom(BloomFilter::new(
                        value_size,
                        max_entries,
                        hashes,
                        def.map_flags & BPF_F_ZERO_SEED != 0,
                    ))
                } else {
                    let bytes = u64::from(value_size) * u64::from(max_entries);
                    if bytes > MAX_MAP_BYTES {
                        return Err(bad(format!("map needs {bytes} bytes, more than the limit")));
                    }
                    MapStorage::Queue(QueueMap::new(
                        value_size,
                        max_entries,
                        map_type == MapType::Stack,
                    ))
                }
            }
            MapType::LpmTrie => {
                if def.map_flags & BPF_F_NO_PREALLOC == 0 {
                    return Err(bad("LPM trie needs map_flags BPF_F_NO_PREALLOC"));
                }
                if !(5..=4 + 256).contains(&key_size) {
                    return Err(bad(format!(
                        "LPM trie key_size must be 5 to 260, not {key_size}"
                    )));
                }
                if value_size == 0 || value_size > MAX_VALUE_SIZE {
                    return Err(bad(format!("bad value_size {value_size}")));
                }
                let bytes = (slot_stride(value_size) as u64 + u64::from(key_size) + 64)
                    .saturating_mul(u64::from(max_entries));
                if bytes > MAX_MAP_BYTES {
                    return Err(bad(format!("map needs {bytes} bytes, more than the limit")));
                }
                MapStorage::Lpm(LpmTrie::new(key_size - 4, value_size, max_entries))
            }
            MapType::PerfEventArray => {
                if key_size != 4 || value_size != 4 {
                    return Err(bad("perf event array key_size and value_size must be 4"));
                }
                MapStorage::Perf(PerfEventArray::new(max_entries))
            }
            MapType::Devmap | MapType::Cpumap | MapType::Xskmap => {
                let sizes_ok = match map_type {
                    MapType::Xskmap => value_size == 4,
                    _ => value_size == 4 || value_size == 8,
                };
                if key_size != 4 || !sizes_ok {
                    return Err(bad(format!(
                        "key_size must be 4 and value_size {} for this map type",
                        if map_type == MapType::Xskmap {
                            "4"
                        } else {
                            "4 or 8"
                        }
                    )));
                }
                if u64::from(max_entries) * 32 > MAX_MAP_BYTES {
                    return Err(bad("map too large"));
                }
                MapStorage::Sparse(SparseArray::new(map_type, value_size, max_entries))
            }
            MapType::Ringbuf => {
                if key_size != 0 || value_size != 0 {
                    return Err(bad("ring buffer key_size and value_size must be 0"));
                }
                if !max_entries.is_power_of_two() || max_entries % 4096 != 0 {
                    return Err(bad(
                        "ring buffer max_entries must be a power of 2 and a multiple of 4096",
                    ));
                }
                if u64::from(max_entries) > MAX_MAP_BYTES {
                    return Err(bad("ring buffer too large"));
                }
                MapStorage::Ringbuf(RingBuf::new(max_entries))
            }
            _ => {
                if value_size == 0 || value_size > MAX_VALUE_SIZE {
                    return Err(bad(format!("bad value_size {value_size}")));
                }
                let is_array = matches!(
                    map_type,
                    MapType::Array
                        | MapType::PercpuArray
                        | MapType::ProgArray
                        | MapType::ArrayOfMaps
                );
                let four_byte_values = matches!(
                    map_type,
                    MapType::ArrayOfMaps | MapType::HashOfMaps | MapType::DevmapHash
                );
                if map_type == MapType::DevmapHash && key_size != 4 {
                    return Err(bad("devmap hash key_size must be 4"));
                }
                if four_byte_values
                    && value_size != 4
                    && !(map_type == MapType::DevmapHash && value_size == 8)
                {
                    return Err(bad(format!("value_size must be 4, not {value_size}")));
                }
                if is_array && key_size != 4 {
                    return Err(bad(format!("array key_size must be 4, not {key_size}")));
                }
                if !is_array && (key_size == 0 || key_size > MAX_KEY_SIZE) {
                    return Err(bad(format!("bad key_size {key_size}")));
                }
                if map_type == MapType::ProgArray && value_size != 4 {
                    return Err(bad("program array value_size must be 4"));
                }
                let bytes = (slot_stride(value_size) as u64 * cpus as u64
                    + u64::from(key_size) * u64::from(!is_array)
                    + 16)
                    .saturating_mul(u64::from(max_entries));
                if bytes > MAX_MAP_BYTES {
                    return Err(bad(format!(
                        "map needs {bytes} bytes, more than the limit of {MAX_MAP_BYTES}"
                    )));
                }
                match map_type {
                    MapType::Array | MapType::PercpuArray | MapType::ArrayOfMaps => {
                        MapStorage::Array(ArrayMap::new(value_size, max_entries, cpus))
                    }
                    MapType::ProgArray => MapStorage::ProgArray(ProgArray::new(max_entries)),
                    _ => MapStorage::Hash(HashMap::new(
                        key_size,
                        value_size,
                        max_entries,
                        cpus,
                        map_type == MapType::LruHash,
                    )),
                }
            }
        };
        Ok(Map {
            name: name.into(),
            map_type,
            def,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage,
        })
    }

    /// The map's id: unique in the process, never 0. The value an `ARRAY_OF_MAPS` or
    /// `HASH_OF_MAPS` holds for this map as an inner map (the kernel's map fd on update and
    /// map id on lookup).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The map's name (its symbol in the object).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The map's type.
    pub fn map_type(&self) -> MapType {
        self.map_type
    }

    /// The definition it was created from.
    pub fn def(&self) -> MapDef {
        self.def
    }

    /// Number of values per element the host sees: [`possible_cpus`] for per-CPU maps, else 1.
    pub fn value_slots(&self) -> usize {
        if self.map_type.is_per_cpu() {
            possible_cpus()
        } else {
            1
        }
    }

    /// Size in bytes of the value buffer the host API reads and writes: `value_size` for
    /// ordinary maps; `round_up(value_size, 8) * possible_cpus()` for per-CPU maps (libbpf's
    /// layout).
    pub fn host_value_size(&self) -> usize {
        if self.map_type.is_per_cpu() {
            round_up8(self.def.value_size) * possible_cpus()
        } else {
            self.def.value_size as usize
        }
    }

    /// The storage, for type-specific operations (ring buffers).
    pub fn storage(&self) -> &MapStorage {
        &self.storage
    }

    /// The value the `lddw` of a program referring to this map receives, and the `r1` its
    /// helpers are called with: the address of this map (never dereferenced by programs: it
    /// is no region, and helpers accept it only if it is one of the running VM's maps).
    pub fn handle(&self) -> u64 {
        std::ptr::from_ref(self) as u64
    }

    /// A `DEVMAP_HASH` value names a device (ifindex not 0) and attaches no program, as the
    /// `DEVMAP` checks (`SparseArray::update`).
    fn check_devmap_hash_value(&self, value: &[u8]) -> Result<(), MapError> {
        if self.map_type != MapType::DevmapHash {
            return Ok(());
        }
        let word = |at: usize| {
            value
                .get(at..at + 4)
                .map(|w| i32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
        };
        if word(0) == Some(0) || word(4).is_some_and(|fd| fd > 0) {
            return Err(MapError::Invalid);
        }
        Ok(())
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapError> {
        if key.len() != self.def.key_size as usize {
            return Err(MapError::Invalid);
        }
        Ok(())
    }

    /// For eBPF programs: the address of the value of `key` (this thread's slot for per-CPU
    /// maps; the longest matching prefix's for an LPM trie), or `None`. Maps of maps give
    /// `None` here: their lookups resolve the inner map ([`MapSet::inner`]).
    pub fn lookup_ptr(&self, key: &[u8]) -> Option<*mut u8> {
        if self.map_type.is_map_in_map() {
            return None;
        }
        match &self.storage {
            MapStorage::Array(a) => a.lookup_ptr(key, current_cpu()),
            MapStorage::Hash(h) => h.lookup_ptr(key, current_cpu()),
            MapStorage::Lpm(t) => t.lookup_ptr(key),
            MapStorage::Sparse(s) => s.lookup_ptr(key),
            MapStorage::Ringbuf(_)
            | MapStorage::ProgArray(_)
            | MapStorage::Queue(_)
            | MapStorage::Bloom(_)
            | MapStorage::Perf(_) => None,
        }
    }

    /// For eBPF programs: stores `value` (`value_size` bytes) for `key`; per-CPU maps write
    /// this thread's slot (and zero the other slots of a new element). Maps of maps, perf
    /// event arrays and keyless maps refuse (`EINVAL`), as the kernel's verifier would.
    pub fn update_from_program(
        &self,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), MapError> {
        self.check_key(key)?;
        if self.map_type.is_map_in_map() {
            return Err(MapError::Invalid);
        }
        self.check_devmap_hash_value(value)?;
        match &self.storage {
            MapStorage::Array(a) => a.update(key, value, flags, Some(current_cpu())),
            MapStorage::Hash(h) => h.update(key, value, flags, Some(current_cpu())),
            MapStorage::Lpm(t) => t.update(key, value, flags),
            MapStorage::Sparse(s) => s.update(key, value, flags),
            MapStorage::Ringbuf(_)
            | MapStorage::ProgArray(_)
            | MapStorage::Queue(_)
            | MapStorage::Bloom(_)
            | MapStorage::Perf(_) => Err(MapError::Invalid),
        }
    }

    /// Copies the value of `key` into `value` ([`Map::host_value_size`] bytes: every slot of
    /// a per-CPU map). A map of maps gives the inner map's [`Map::id`]; an LPM trie the value
    /// of the longest matching prefix; a queue or stack its next element without removing
    /// it (`key` empty); a bloom filter tests `value` (read, not written: `Ok` if it may be
    /// present, `ENOENT` if not).
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<(), MapError> {
        self.check_key(key)?;
        if value.len() != self.host_value_size() {
            return Err(MapError::Invalid);
        }
        match &self.storage {
            MapStorage::Array(a) if self.map_type == MapType::ArrayOfMaps => {
                a.lookup(key, value)?;
                if value == [0; 4] {
                    return Err(MapError::NotFound);
                }
                Ok(())
            }
            MapStorage::Array(a) => a.lookup(key, value),
            MapStorage::Hash(h) => h.lookup(key, value),
            MapStorage::ProgArray(p) => {
                let index = u32::from_ne_bytes(key.try_into().map_err(|_| MapError::Invalid)?);
                let prog = p.get(index).ok_or(MapError::NotFound)?;
                value.copy_from_slice(&prog.to_ne_bytes());
                Ok(())
            }
            MapStorage::Lpm(t) => t.lookup(key, value),
            MapStorage::Sparse(s) => s.lookup(key, value),
            MapStorage::Perf(p) => {
                let index = u32::from_ne_bytes(key.try_into().map_err(|_| MapError::Invalid)?);
                value.copy_from_slice(&p.get(index)?.to_ne_bytes());
                Ok(())
            }
            MapStorage::Queue(q) => q.take(value, false),
            MapStorage::Bloom(b) => b.peek(value),
            MapStorage::Ringbuf(_) => Err(MapError::Invalid),
        }
    }

    /// Stores `value` ([`Map::host_value_size`] bytes) for `key` with the kernel's flag
    /// semantics (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`). A map of maps takes an inner
    /// map's [`Map::id`] (not 0); a queue, stack or bloom filter pushes (`key` empty).
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        self.check_key(key)?;
        if value.len() != self.host_value_size() {
            return Err(MapError::Invalid);
        }
        if self.map_type.is_map_in_map() && value == [0; 4] {
            return Err(MapError::Invalid);
        }
        self.check_devmap_hash_value(value)?;
        match &self.storage {
            MapStorage::Array(a) => a.update(key, value, flags, None),
            MapStorage::Hash(h) => h.update(key, value, flags, None),
            MapStorage::ProgArray(p) => {
                if flags > BPF_EXIST {
                    return Err(MapError::Invalid);
                }
                let index = u32::from_ne_bytes(key.try_into().map_err(|_| MapError::Invalid)?);
                let prog = u32::from_ne_bytes(value.try_into().map_err(|_| MapError::Invalid)?);
                let slot = p.entries.get(index as usize).ok_or(MapError::Full)?;
                if flags == BPF_NOEXIST {
                    return Err(MapError::Exists);
                }
                slot.store(prog, Ordering::Release);
                Ok(())
            }
            MapStorage::Lpm(t) => t.update(key, value, flags),
            MapStorage::Sparse(s) => s.update(key, value, flags),
            MapStorage::Perf(p) => {
                if flags > BPF_EXIST {
                    return Err(MapError::Invalid);
                }
                let index = u32::from_ne_bytes(key.try_into().map_err(|_| MapError::Invalid)?);
                let fd = u32::from_ne_bytes(value.try_into().map_err(|_| MapError::Invalid)?);
                p.set(index, fd)
            }
            MapStorage::Queue(_) | MapStorage::Bloom(_) => self.push(value, flags),
            MapStorage::Ringbuf(_) => Err(MapError::Invalid),
        }
    }

    /// Deletes `key` (`EINVAL` for arrays, as in the kernel). For a map of maps, the inner
    /// map stays a map of the program; for a perf event array, the slot closes.
    pub fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        self.check_key(key)?;
        match &self.storage {
            MapStorage::Hash(h) => h.delete(key),
            MapStorage::Array(a) if self.map_type == MapType::ArrayOfMaps => {
                // Elements of an array of maps can be cleared (0: no inner map).
                a.update(key, &[0; 4], BPF_ANY, None)
                    .map_err(|_| MapError::Invalid)
            }
            MapStorage::ProgArray(p) => {
                let index = u32::from_ne_bytes(key.try_into().map_err(|_| MapError::Invalid)?);
                let slot = p.entries.get(index as usize).ok_or(MapError::Invalid)?;
                match slot.swap(NO_PROGRAM, Ordering::AcqRel) {
                    NO_PROGRAM => Err(MapError::NotFound),
                    _ => Ok(()),
                }
            }
            MapStorage::Lpm(t) => t.delete(key),
            MapStorage::Sparse(s) => s.delete(key),
            MapStorage::Perf(p) => {
                let index = u32::from_ne_bytes(key.try_into().map_err(|_| MapError::Invalid)?);
                p.close(index)
            }
            MapStorage::Array(_) | MapStorage::Ringbuf(_) | MapStorage::Queue(_) => {
                Err(MapError::Invalid)
            }
            MapStorage::Bloom(_) => Err(MapError::NotSupported),
        }
    }

    /// Adds `value` to a queue, stack or bloom filter: `E2BIG` when full (with `BPF_EXIST` a
    /// full queue or stack drops its oldest element instead), `EINVAL` for other maps.
    pub fn push(&self, value: &[u8], flags: u64) -> Result<(), MapError> {
        match &self.storage {
            MapStorage::Queue(q) => q.push(value, flags),
            MapStorage::Bloom(b) => b.push(value, flags),
            _ => Err(MapError::Invalid),
        }
    }

    /// Removes the next element of a queue (oldest) or stack (newest) into `out`: `ENOENT`
    /// when empty, `EOPNOTSUPP` for a bloom filter, `EINVAL` for other maps.
    pub fn pop(&self, out: &mut [u8]) -> Result<(), MapError> {
        match &self.storage {
            MapStorage::Queue(q) => q.take(out, true),
            MapStorage::Bloom(_) => Err(MapError::NotSupported),
            _ => Err(MapError::Invalid),
        }
    }

    /// Copies the next element of a queue or stack into `value` without removing it; for a
    /// bloom filter, tests `value` (read only). `ENOENT` when empty or absent.
    pub fn peek(&self, value: &mut [u8]) -> Result<(), MapError> {
        match &self.storage {
            MapStorage::Queue(q) => q.take(value, false),
            MapStorage::Bloom(b) => b.peek(value),
            _ => Err(MapError::Invalid),
        }
    }

    /// For a map of maps: the [`Map::id`] stored for `key`, if any.
    pub fn inner_id(&self, key: &[u8]) -> Option<u32> {
        if !self.map_type.is_map_in_map() {
            return None;
        }
        let mut id = [0u8; 4];
        self.lookup(key, &mut id).ok()?;
        let id = u32::from_ne_bytes(id);
        (id != 0).then_some(id)
    }

    /// Writes the key following `key` (the first key when `key` is `None` or not in the map)
    /// into `next`; [`MapError::NotFound`] after the last.
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), MapError> {
        if let Some(key) = key {
            self.check_key(key)?;
        }
        if next.len() != self.def.key_size as usize {
            return Err(MapError::Invalid);
        }
        let mut array_next = |max: u32| -> Result<(), MapError> {
            let index = match key {
                None => 0,
                Some(k) => {
                    let i = u32::from_ne_bytes(k.try_into().map_err(|_| MapError::Invalid)?);
                    if i >= max {
                        0
                    } else if i == max - 1 {
                        return Err(MapError::NotFound);
                    } else {
                        i + 1
                    }
                }
            };
            next.copy_from_slice(&index.to_ne_bytes());
            Ok(())
        };
        match &self.storage {
            MapStorage::Array(_)
            | MapStorage::ProgArray(_)
            | MapStorage::Sparse(_)
            | MapStorage::Perf(_) => array_next(self.def.max_entries),
            MapStorage::Hash(h) => h.next_key(key, next),
            MapStorage::Lpm(t) => t.next_key(key, next),
            MapStorage::Ringbuf(_) | MapStorage::Queue(_) => Err(MapError::Invalid),
            MapStorage::Bloom(_) => Err(MapError::NotSupported),
        }
    }

    /// Whether `[addr, end)` lies inside one value of this map that the calling thread's
    /// program may access (for per-CPU maps, only this thread's CPU slot), or one live
    /// ring-buffer reservation. Values of maps of maps are never accessible.
    #[inline]
    pub fn contains(&self, addr: u64, end: u64) -> bool {
        let slab = match &self.storage {
            _ if self.map_type.is_map_in_map() => return false,
            MapStorage::Array(a) => a.slab(),
            MapStorage::Hash(h) => h.slab(),
            MapStorage::Lpm(t) => t.slab(),
            MapStorage::Sparse(s) => s.slab(),
            MapStorage::Ringbuf(r) => return r.contains(addr, end),
            MapStorage::ProgArray(_)
            | MapStorage::Queue(_)
            | MapStorage::Bloom(_)
            | MapStorage::Perf(_) => return false,
        };
        if self.map_type.is_per_cpu() {
            slab.contains_for_cpu(addr, end, possible_cpus(), current_cpu())
        } else {
            slab.contains(addr, end)
        }
    }

    /// Typed [`Map::lookup`]: the value of `key`. [`MapError::Invalid`] if `K` or `V` does not
    /// have the map's key or value size (for per-CPU maps use [`Map::get_per_cpu`]).
    pub fn get<K: Plain, V: Plain>(&self, key: &K) -> Result<V, MapError> {
        if size_of::<V>() != self.host_value_size() {
            return Err(MapError::Invalid);
        }
        let mut value = vec![0u8; size_of::<V>()];
        self.lookup(bytes_of(key), &mut value)?;
        Ok(from_bytes(&value))
    }

    /// Typed [`Map::update`].
    pub fn set<K: Plain, V: Plain>(&self, key: &K, value: &V, flags: u64) -> Result<(), MapError> {
        self.update(bytes_of(key), bytes_of(value), flags)
    }

    /// Typed [`Map::delete`].
    pub fn remove<K: Plain>(&self, key: &K) -> Result<(), MapError> {
        self.delete(bytes_of(key))
    }

    /// Every CPU slot's value of `key` in a per-CPU map (one per [`possible_cpus`]).
    pub fn get_per_cpu<K: Plain, V: Plain>(&self, key: &K) -> Result<Vec<V>, MapError> {
        if !self.map_type.is_per_cpu() || size_of::<V>() != self.def.value_size as usize {
            return Err(MapError::Invalid);
        }
        let mut all = vec![0u8; self.host_value_size()];
        self.lookup(bytes_of(key), &mut all)?;
        let stride = round_up8(self.def.value_size);
        Ok(all
            .chunks(stride)
            .map(|chunk| from_bytes(&chunk[..size_of::<V>()]))
            .collect())
    }

    /// Every key, in iteration order (a snapshot while programs may change the map).
    pub fn keys<K: Plain>(&self) -> Result<Vec<K>, MapError> {
        let size = self.def.key_size as usize;
        if size_of::<K>() != size {
            return Err(MapError::Invalid);
        }
        let mut keys = Vec::new();
        let mut next = vec![0u8; size];
        let mut previous: Option<Vec<u8>> = None;
        while keys.len() <= self.def.max_entries as usize {
            match self.next_key(previous.as_deref(), &mut next) {
                Ok(()) => {
                    keys.push(from_bytes(&next));
                    previous = Some(next.clone());
                }
                Err(MapError::NotFound) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(keys)
    }

    /// The ring buffer, if this is one.
    pub fn ringbuf(&self) -> Option<&RingBuf> {
        match &self.storage {
            MapStorage::Ringbuf(r) => Some(r),
            _ => None,
        }
    }

    /// The program array, if this is one.
    pub fn prog_array(&self) -> Option<&ProgArray> {
        match &self.storage {
            MapStorage::ProgArray(p) => Some(p),
            _ => None,
        }
    }

    /// The perf event array, if this is one.
    pub fn perf_events(&self) -> Option<&PerfEventArray> {
        match &self.storage {
            MapStorage::Perf(p) => Some(p),
            _ => None,
        }
    }
}

/// What a [`crate::Vm`] keeps for maps: the loaded program's maps, and whether engines
/// publish runs to the kernel helpers (`crate::kernel::helpers`).
#[derive(Debug, Default)]
pub struct VmMaps {
    /// The loaded program's maps (replaced at every load, emptied at unload).
    pub(crate) maps: MapSet,
    /// Set by `Vm::register_linux_helpers`.
    pub(crate) publish_runs: bool,
    /// The object's programs that `PROG_ARRAY` values number (for `bpf_tail_call`).
    pub(crate) programs: Vec<String>,
}

/// The maps of a VM's loaded program, in declaration order.
#[derive(Debug, Default, Clone)]
pub struct MapSet {
    maps: Vec<Arc<Map>>,
}

impl MapSet {
    /// A set of `maps`.
    pub fn new(maps: Vec<Arc<Map>>) -> Self {
        MapSet { maps }
    }

    /// Whether there are no maps.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// Every map.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Map>> {
        self.maps.iter()
    }

    /// The map called `name`.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Map>> {
        self.maps.iter().find(|m| m.name() == name)
    }

    /// The map whose [`Map::handle`] is `handle`: how helpers validate the `r1` a program
    /// gives them (any other value is refused).
    #[inline]
    pub fn by_handle(&self, handle: u64) -> Option<&Map> {
        self.maps
            .iter()
            .find(|m| m.handle() == handle)
            .map(|m| &**m)
    }

    /// The value slabs whose checks the JIT can inline (ring buffers are not among them).
    pub fn slab_regions(&self) -> Vec<SlabRegion> {
        self.maps
            .iter()
            // Per-CPU values depend on the running thread, and values of maps of maps are
            // never accessible: both are left to the runtime check (`MapSet::allows`).
            .filter(|m| !m.map_type.is_per_cpu() && !m.map_type.is_map_in_map())
            .filter_map(|m| match &m.storage {
                MapStorage::Array(a) => a.slab().region(),
                MapStorage::Hash(h) => h.slab().region(),
                MapStorage::Lpm(t) => t.slab().region(),
                MapStorage::Sparse(s) => s.slab().region(),
                _ => None,
            })
            .collect()
    }

    /// The map whose [`Map::id`] is `id`.
    pub fn by_id(&self, id: u32) -> Option<&Arc<Map>> {
        self.maps.iter().find(|m| m.id() == id)
    }

    /// The inner map `outer` (a map of maps) holds for `key`, if it is one of this set's
    /// maps: an inner map must be a map of the same program (`docs/maps.md`).
    pub fn inner(&self, outer: &Map, key: &[u8]) -> Option<&Arc<Map>> {
        self.by_id(outer.inner_id(key)?)
    }

    /// Whether `[addr, end)` lies inside one value of one map: the bounds-check hook both
    /// engines reach through [`crate::exec::memory::Regions`].
    pub fn allows(&self, addr: u64, end: u64) -> bool {
        self.maps.iter().any(|m| m.contains(addr, end))
    }
}

#[cfg(test)]
mod tests;
