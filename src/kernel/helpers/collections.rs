//! Helpers of the keyless maps and of spin locks (`docs/maps.md`): `bpf_map_push_elem` (87),
//! `bpf_map_pop_elem` (88) and `bpf_map_peek_elem` (89) on `QUEUE`, `STACK` and
//! `BLOOM_FILTER` maps, and `bpf_spin_lock` (93) / `bpf_spin_unlock` (94) on a `struct
//! bpf_spin_lock` inside a map value.
//!
//! The kernel's verifier guarantees that a program holds at most one spin lock at a time and
//! releases it before returning; nothing verifies that here, so the helpers enforce what
//! they can at run time: a thread holding a lock cannot take another (`-EDEADLK`, instead of
//! spinning forever on itself), and only the holder can release a lock (`-EINVAL`).

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{EINVAL, HelperList, errno, neg, readable, with_map, with_run, writable};
use crate::exec::maps::MapType;

/// `long bpf_map_push_elem(void *map, const void *value, __u64 flags)` (87).
unsafe extern "C" fn bpf_map_push_elem(
    map: u64,
    value: u64,
    flags: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    with_map(map, |m, regions| {
        let Some(value) = readable(regions, value, u64::from(m.def().value_size)) else {
            return EINVAL;
        };
        m.push(value, flags).map_or_else(errno, |()| 0)
    })
    .unwrap_or(EINVAL)
}

/// Pops (`remove`) or peeks the next element of a queue or stack into `value`, or tests
/// `value` against a bloom filter (peek only).
fn take(map: u64, value: u64, remove: bool) -> u64 {
    with_map(map, |m, regions| {
        let size = u64::from(m.def().value_size);
        if m.map_type() == MapType::BloomFilter {
            if remove {
                return neg(libc::EOPNOTSUPP);
            }
            let Some(value) = readable(regions, value, size) else {
                return EINVAL;
            };
            return m
                .lookup(&[], &mut value.to_vec())
                .map_or_else(errno, |()| 0);
        }
        let Some(out) = writable(regions, value, size) else {
            return EINVAL;
        };
        let mut buf = vec![0u8; size as usize];
        let result = if remove {
            m.pop(&mut buf)
        } else {
            m.peek(&mut buf)
        };
        match result {
            Ok(()) => {
                // SAFETY: the program may write `size` bytes at `out`.
                unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), out, buf.len()) };
                0
            }
            Err(e) => errno(e),
        }
    })
    .unwrap_or(EINVAL)
}

/// `long bpf_map_pop_elem(void *map, void *value)` (88).
unsafe extern "C" fn bpf_map_pop_elem(
    map: u64,
    value: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    take(map, value, true)
}

/// `long bpf_map_peek_elem(void *map, void *value)` (89).
unsafe extern "C" fn bpf_map_peek_elem(
    map: u64,
    value: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    take(map, value, false)
}

thread_local! {
    /// The address of the spin lock this thread holds (0: none).
    static HELD: Cell<u64> = const { Cell::new(0) };
}

/// The lock word at `addr`, if it is 4 aligned bytes inside a value of one of the running
/// VM's maps that the program may write.
fn lock_word(addr: u64, f: impl FnOnce(&AtomicU32) -> u64) -> u64 {
    with_run(|machine, regions| {
        let Some(end) = addr.checked_add(4) else {
            return EINVAL;
        };
        if !addr.is_multiple_of(4) || !machine.maps.maps.allows(addr, end) {
            return EINVAL;
        }
        let Some(ptr) = writable(regions, addr, 4) else {
            return EINVAL;
        };
        // SAFETY: `ptr` is 4-aligned and the program may access its 4 bytes, which lie in a
        // map value slab that lives as long as the loaded program; map values are shared
        // memory accessed only through raw pointers and atomics.
        let word = unsafe { AtomicU32::from_ptr(ptr.cast::<u32>()) };
        f(word)
    })
    .unwrap_or(EINVAL)
}

/// `long bpf_spin_lock(struct bpf_spin_lock *lock)` (93): spins (then yields) until the lock
/// word goes from 0 to 1. `-EDEADLK` if this thread already holds a lock.
unsafe extern "C" fn bpf_spin_lock(
    lock: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    if HELD.get() != 0 {
        return neg(libc::EDEADLK);
    }
    lock_word(lock, |word| {
        let mut spins = 0u32;
        while word
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins = spins.saturating_add(1);
            if spins < 128 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        HELD.set(lock);
        0
    })
}

/// `long bpf_spin_unlock(struct bpf_spin_lock *lock)` (94): releases the lock this thread
/// holds; `-EINVAL` for any other.
unsafe extern "C" fn bpf_spin_unlock(
    lock: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    if HELD.get() != lock || lock == 0 {
        return EINVAL;
    }
    lock_word(lock, |word| {
        word.store(0, Ordering::Release);
        HELD.set(0);
        0
    })
}

/// The helpers of this file.
pub(super) const HELPERS: HelperList = &[
    (87, "bpf_map_push_elem", bpf_map_push_elem),
    (88, "bpf_map_pop_elem", bpf_map_pop_elem),
    (89, "bpf_map_peek_elem", bpf_map_peek_elem),
    (93, "bpf_spin_lock", bpf_spin_lock),
    (94, "bpf_spin_unlock", bpf_spin_unlock),
];
