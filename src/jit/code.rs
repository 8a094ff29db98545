//! Executable memory owned by the VM: an anonymous mapping written once, then made read+exec.

use crate::error::JitError;

/// A read+execute mapping holding one compiled image; unmapped on drop.
#[derive(Debug)]
pub(crate) struct ExecutableCode {
    ptr: *mut u8,
    map_len: usize,
    len: usize,
}

// SAFETY: the mapping is immutable after construction (read+exec) and owned by this value;
// sharing its address between threads is how compiled code is meant to be used.
unsafe impl Send for ExecutableCode {}
// SAFETY: as above, nothing mutates the mapping through `&self`.
unsafe impl Sync for ExecutableCode {}

impl ExecutableCode {
    /// Maps `bytes` as executable code.
    pub(crate) fn new(bytes: &[u8]) -> Result<Self, JitError> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|&p| p > 0)
            .unwrap_or(4096);
        let map_len = bytes
            .len()
            .max(1)
            .div_ceil(page)
            .checked_mul(page)
            .ok_or_else(|| JitError::Internal("mmap failed: image too large".into()))?;
        // SAFETY: an anonymous private mapping at an address the kernel chooses.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(JitError::Internal(format!(
                "mmap failed: {}\n",
                std::io::Error::last_os_error()
            )));
        }
        let code = ExecutableCode {
            ptr: ptr.cast::<u8>(),
            map_len,
            len: bytes.len(),
        };
        // SAFETY: the mapping is writable and at least `bytes.len()` long; it cannot overlap
        // `bytes`, which was allocated before it.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), code.ptr, bytes.len()) };
        // SAFETY: changes the protection of the mapping made above.
        let rc = unsafe { libc::mprotect(ptr, map_len, libc::PROT_READ | libc::PROT_EXEC) };
        if rc != 0 {
            return Err(JitError::Internal(format!(
                "mprotect failed: {}\n",
                std::io::Error::last_os_error()
            )));
        }
        Ok(code)
    }

    /// Address of the first byte (the entry point).
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The image bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is readable, `len` bytes long and never written after `new`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for ExecutableCode {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, which nothing uses any more.
        unsafe { libc::munmap(self.ptr.cast(), self.map_len) };
    }
}
