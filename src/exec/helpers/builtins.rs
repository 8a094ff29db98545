//! The helper functions of rbpf's `rbpf::helpers` module, with rbpf's names, indices and
//! semantics, for programs written against rbpf (`vm.register_helper(6,
//! helpers::bpf_trace_printf)`).
//!
//! Every helper has the `fn(u64, u64, u64, u64, u64) -> u64` shape rbpf registers. `memfrob`
//! and `strcmp` dereference the addresses they are given, exactly like rbpf's: register them
//! only for programs you trust with those pointers (librbpf's bounds checks cover the
//! program's own loads and stores, not what a helper does).

/// Index rbpf gives `bpf_ktime_getns` (the Linux helper number).
pub const BPF_KTIME_GETNS_IDX: u32 = 5;

/// Index rbpf gives `bpf_trace_printk` (the Linux helper number), served by
/// [`bpf_trace_printf`].
pub const BPF_TRACE_PRINTK_IDX: u32 = 6;

/// Nanoseconds of a monotonic clock (all arguments unused). Like rbpf's, the value only
/// makes sense as a difference between two calls.
#[cfg(feature = "std")]
pub fn bpf_time_getns(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Prints its last three arguments in hexadecimal to standard output, as
/// `bpf_trace_printf: 0x1, 0xf, 0x20`, and returns the number of bytes printed (newline
/// included). The first two arguments (a format string and its size in the kernel helper) are
/// unused.
///
/// ```
/// let n = rbpf::helpers::bpf_trace_printf(0, 0, 1, 15, 32);
/// assert_eq!(n as usize, "bpf_trace_printf: 0x1, 0xf, 0x20\n".len());
/// ```
#[cfg(feature = "std")]
pub fn bpf_trace_printf(_: u64, _: u64, arg3: u64, arg4: u64, arg5: u64) -> u64 {
    let line = format!("bpf_trace_printf: {arg3:#x}, {arg4:#x}, {arg5:#x}\n");
    print!("{line}");
    line.len() as u64
}

/// Packs the low byte of each argument into one value, first argument most significant:
/// `gather_bytes(0x11, 0x22, 0x33, 0x44, 0x55) == 0x1122334455`.
///
/// ```
/// assert_eq!(rbpf::helpers::gather_bytes(0x11, 0x22, 0x33, 0x44, 0x55), 0x1122334455);
/// ```
pub fn gather_bytes(arg1: u64, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> u64 {
    [arg1, arg2, arg3, arg4, arg5]
        .iter()
        .fold(0, |acc, &b| acc.wrapping_shl(8) | (b & 0xff))
}

/// XORs each of the `len` bytes at address `ptr` with 42 (C's `memfrob`), in place; returns 0.
/// Arguments 3 to 5 are unused. A null `ptr` does nothing.
///
/// The address must be valid for `len` bytes of writes (it is dereferenced, as in rbpf).
///
/// ```
/// let mut buf = [0x11u8, 0x22, 0x33];
/// rbpf::helpers::memfrob(buf.as_mut_ptr() as u64, 3, 0, 0, 0);
/// assert_eq!(buf, [0x11 ^ 42, 0x22 ^ 42, 0x33 ^ 42]);
/// ```
pub fn memfrob(ptr: u64, len: u64, _: u64, _: u64, _: u64) -> u64 {
    if ptr == 0 {
        return 0;
    }
    for i in 0..len {
        let byte = ptr.wrapping_add(i) as *mut u8;
        // SAFETY: rbpf's contract for this helper: the caller passes a writable buffer of
        // `len` bytes.
        let old = unsafe { byte.read() };
        // SAFETY: as for the read.
        unsafe { byte.write(old ^ 42) };
    }
    0
}

/// The integer square root of the first argument (rounded down, computed through `f64` as
/// rbpf does). Arguments 2 to 5 are unused.
///
/// ```
/// assert_eq!(rbpf::helpers::sqrti(9, 0, 0, 0, 0), 3);
/// ```
pub fn sqrti(arg1: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    crate::tools::conformance::floor_sqrt(arg1)
}

/// Compares the NUL-terminated strings at the first two addresses like C's `strcmp`, but
/// returns the absolute difference of the first differing bytes (0 when equal), as rbpf does;
/// `u64::MAX` when either address is null. Arguments 3 to 5 are unused.
///
/// Both addresses must point to NUL-terminated strings (they are dereferenced, as in rbpf).
///
/// ```
/// let a = b"abc\0".as_ptr() as u64;
/// let b = b"abd\0".as_ptr() as u64;
/// assert_eq!(rbpf::helpers::strcmp(a, a, 0, 0, 0), 0);
/// assert_eq!(rbpf::helpers::strcmp(a, b, 0, 0, 0), 1);
/// ```
pub fn strcmp(arg1: u64, arg2: u64, _: u64, _: u64, _: u64) -> u64 {
    if arg1 == 0 || arg2 == 0 {
        return u64::MAX;
    }
    let mut i = 0u64;
    loop {
        // SAFETY: rbpf's contract for this helper: both addresses are NUL-terminated strings,
        // and the scan stops at the first NUL or difference.
        let a = unsafe { (arg1.wrapping_add(i) as *const u8).read() };
        // SAFETY: as for the first string.
        let b = unsafe { (arg2.wrapping_add(i) as *const u8).read() };
        if a != b || a == 0 {
            return u64::from(a.abs_diff(b));
        }
        i += 1;
    }
}

/// A pseudo-random number in `[min, max]` (both inclusive) when `min < max`, any `u64`
/// otherwise. Arguments 3 to 5 are unused. Not cryptographic: a per-thread xorshift generator
/// seeded from the clock (rbpf uses libc's `rand()`, which needs a manual `srand`).
///
/// ```
/// let n = rbpf::helpers::rand(3, 6, 0, 0, 0);
/// assert!((3..=6).contains(&n));
/// ```
#[cfg(feature = "std")]
pub fn rand(min: u64, max: u64, _: u64, _: u64, _: u64) -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
                | 1,
        );
    }
    let n = STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    });
    if min < max {
        let span = max - min;
        match span.checked_add(1) {
            Some(count) => min + n % count,
            None => n,
        }
    } else {
        n
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn rbpf_helper_semantics() {
        assert_eq!(gather_bytes(0x111, 0x22, 0x33, 0x44, 0x55), 0x1122334455);
        assert_eq!(sqrti(1 << 60, 0, 0, 0, 0), 1 << 30);
        assert_eq!(sqrti(8, 0, 0, 0, 0), 2);
        let mut v = 0x112233u64;
        memfrob(&mut v as *mut u64 as u64, 8, 0, 0, 0);
        assert_eq!(v, 0x2a2a_2a2a_2a3b_0819);
        memfrob(&mut v as *mut u64 as u64, 8, 0, 0, 0);
        assert_eq!(v, 0x112233);
        assert_eq!(memfrob(0, 8, 0, 0, 0), 0);
        let foo = c"This is a string.".as_ptr() as u64;
        let bar = c"This is another sting.".as_ptr() as u64;
        assert_eq!(strcmp(foo, foo, 0, 0, 0), 0);
        assert_ne!(strcmp(foo, bar, 0, 0, 0), 0);
        assert_eq!(strcmp(0, bar, 0, 0, 0), u64::MAX);
        for _ in 0..100 {
            assert!((3..=6).contains(&rand(3, 6, 0, 0, 0)));
        }
        assert_ne!(rand(0, u64::MAX, 0, 0, 0), rand(0, u64::MAX, 0, 0, 0));
        let t1 = bpf_time_getns(0, 0, 0, 0, 0);
        assert!(bpf_time_getns(0, 0, 0, 0, 0) >= t1);
        assert_eq!(
            bpf_trace_printf(0, 0, 0, 0xff, 0x10),
            "bpf_trace_printf: 0x0, 0xff, 0x10\n".len() as u64
        );
    }
}
