//! The helper table of the BPF conformance suite (indices 0–5, unwind index 5).
//!
//! This is the one table that the conformance tests, the CLI's `rbpf test` and the benches
//! register, matching the reference runners (`tests/bpf-conformance/README.md`,
//! `docs/data-format.md`). The helpers follow the engines' 6-argument C calling convention ([`HelperFn`]); the
//! 6th argument (the execution's `mem`) is unused.
//!
//! The pointer-taking helpers (`memfrob`, `strcmp_ext`) dereference whatever eBPF code passes
//! them, exactly as uBPF's test helpers do: they are test fixtures, not sandboxed helpers.

use core::ffi::{c_char, c_void};

use crate::isa::HelperFn;

/// The index of the unwind helper: a zero return from it ends the program with r0 = 0.
pub const UNWIND_INDEX: u32 = 5;

/// Helper 0: packs the low byte of each argument, `p1` highest:
/// `(p1&0xff)<<32 | (p2&0xff)<<24 | (p3&0xff)<<16 | (p4&0xff)<<8 | (p5&0xff)`.
///
/// # Safety
/// Always safe to call; `unsafe` only to fit [`HelperFn`].
pub unsafe extern "C" fn gather_bytes(
    p1: u64,
    p2: u64,
    p3: u64,
    p4: u64,
    p5: u64,
    _mem: *mut c_void,
) -> u64 {
    ((p1 & 0xff) << 32)
        | ((p2 & 0xff) << 24)
        | ((p3 & 0xff) << 16)
        | ((p4 & 0xff) << 8)
        | (p5 & 0xff)
}

/// Helper 1: XORs each of the `p2` bytes at address `p1` with 42 (glibc's `memfrob`);
/// returns 0.
///
/// # Safety
/// `p1` must be valid for reads and writes of `p2` bytes.
pub unsafe extern "C" fn memfrob(p1: u64, p2: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    let base = p1 as *mut u8;
    for i in 0..p2 as usize {
        // SAFETY: the caller guarantees `[p1, p1 + p2)` is valid memory.
        let byte = base.wrapping_add(i);
        // SAFETY: the caller guarantees `[p1, p1 + p2)` is valid memory.
        let old = unsafe { byte.read() };
        // SAFETY: as for the read.
        unsafe { byte.write(old ^ 42) };
    }
    0
}

/// Helper 2: does nothing and returns 0.
///
/// # Safety
/// Always safe to call; `unsafe` only to fit [`HelperFn`].
pub unsafe extern "C" fn no_op(_: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    0
}

/// Helper 3: the integer square root of `p1`, computed as `floor(sqrt((double)p1))`.
///
/// # Safety
/// Always safe to call; `unsafe` only to fit [`HelperFn`].
pub unsafe extern "C" fn sqrti(p1: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    floor_sqrt(p1)
}

/// `floor(sqrt((double)x))`: the suite's square root, which rbpf's `sqrti` helper computes
/// too (through `f64`, so the result for the largest values is the rounded double's).
pub fn floor_sqrt(x: u64) -> u64 {
    libm_sqrt(x as f64) as u64
}

/// `sqrt` that also builds without `std`.
fn libm_sqrt(x: f64) -> f64 {
    #[cfg(feature = "std")]
    {
        x.sqrt()
    }
    #[cfg(not(feature = "std"))]
    {
        // Newton's method from an over-estimate; exact enough for the integer result.
        if x <= 0.0 {
            return 0.0;
        }
        let mut r = if x >= 1.0 { x } else { 1.0 };
        loop {
            let next = 0.5 * (r + x / r);
            if next >= r {
                return r;
            }
            r = next;
        }
    }
}

/// Helper 4: `strcmp` of the NUL-terminated strings at `p1` and `p2`, sign-extended.
///
/// # Safety
/// `p1` and `p2` must point to NUL-terminated strings.
pub unsafe extern "C" fn strcmp_ext(
    p1: u64,
    p2: u64,
    _: u64,
    _: u64,
    _: u64,
    _: *mut c_void,
) -> u64 {
    // SAFETY: the caller guarantees both are NUL-terminated strings.
    let order = unsafe { libc::strcmp(p1 as *const c_char, p2 as *const c_char) };
    i64::from(order) as u64
}

/// Helper 5: returns `p1`; registered as the unwind helper, so returning 0 ends the program.
///
/// # Safety
/// Always safe to call; `unsafe` only to fit [`HelperFn`].
pub unsafe extern "C" fn unwind(p1: u64, _: u64, _: u64, _: u64, _: u64, _: *mut c_void) -> u64 {
    p1
}

/// The suite's helpers: (index, name, function).
pub const HELPERS: [(u32, &str, HelperFn); 6] = [
    (0, "gather_bytes", gather_bytes),
    (1, "memfrob", memfrob),
    (2, "no_op", no_op),
    (3, "sqrti", sqrti),
    (4, "strcmp_ext", strcmp_ext),
    (5, "unwind", unwind),
];

/// What takes the suite's helpers: a VM (`crate::vm::Vm` implements it). A trait, so that
/// this layer, below the VM, can name the registration without importing the VM.
pub trait HelperRegistry {
    /// Registers `f` at `index` under `name`; a refusal is ignored (the suite's indices are
    /// all valid).
    fn register_suite_helper(&mut self, index: u32, name: &str, f: HelperFn);
    /// Sets the unwind index, keeping one that was already set (it can be set only once).
    fn set_suite_unwind_index(&mut self, index: u32);
}

/// Registers the conformance suite's helper table on `vm` and sets the unwind index to 5
/// (keeping an unwind index that was already set: it can be set only once).
pub fn register_helpers(vm: &mut impl HelperRegistry) {
    for (index, name, f) in HELPERS {
        vm.register_suite_helper(index, name, f);
    }
    vm.set_suite_unwind_index(UNWIND_INDEX);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_compute_the_suite_values() {
        let null = core::ptr::null_mut();
        // SAFETY: no pointers.
        let gathered = unsafe { gather_bytes(0x101, 2, 3, 4, 0x105, null) };
        assert_eq!(gathered, 0x01_0203_0405);
        // SAFETY: no pointers.
        assert_eq!(unsafe { sqrti(16, 0, 0, 0, 0, null) }, 4);
        // SAFETY: no pointers.
        assert_eq!(unsafe { sqrti(17, 0, 0, 0, 0, null) }, 4);
        // SAFETY: no pointers.
        assert_eq!(unsafe { unwind(7, 0, 0, 0, 0, null) }, 7);
        let mut bytes = [1u8, 2, 3];
        // SAFETY: `bytes` is valid for 2 bytes.
        let frobbed = unsafe { memfrob(bytes.as_mut_ptr() as u64, 2, 0, 0, 0, null) };
        assert_eq!(frobbed, 0);
        assert_eq!(bytes, [1 ^ 42, 2 ^ 42, 3]);
        let (a, b) = (c"abc".as_ptr() as u64, c"abd".as_ptr() as u64);
        // SAFETY: NUL-terminated strings.
        assert_eq!(unsafe { strcmp_ext(a, a, 0, 0, 0, null) }, 0);
        // SAFETY: NUL-terminated strings.
        assert!((unsafe { strcmp_ext(a, b, 0, 0, 0, null) } as i64) < 0);
    }
}
