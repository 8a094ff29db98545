//! Copies of compiled code run from a fresh executable mapping (the `copy_jit`/`translate`
//! promise: the code works anywhere, even after its VM let go of it).

use rbpf::jit::{JitExFn, JitFn, JitMode};

/// A read+exec anonymous mapping holding a copy of some code; unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    pub fn new(code: &[u8]) -> Mapping {
        let len = code.len().max(1);
        // SAFETY: an anonymous private mapping at an address the kernel chooses.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap failed");
        // SAFETY: the mapping is writable and `len` >= code.len() bytes long.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), ptr.cast::<u8>(), code.len()) };
        // SAFETY: changes the protection of the mapping made above.
        let protected = unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_EXEC) };
        assert_eq!(protected, 0);
        Mapping {
            ptr: ptr.cast(),
            len,
        }
    }

    /// Runs the copy as code of `mode`.
    ///
    /// # Safety
    /// The mapping must hold code librbpf compiled (or translated) in `mode`.
    pub unsafe fn run(&self, mode: JitMode, mem: &mut [u8]) -> u64 {
        let mem_ptr = if mem.is_empty() {
            std::ptr::null_mut()
        } else {
            mem.as_mut_ptr()
        };
        match mode {
            JitMode::Basic => {
                // SAFETY: guaranteed by the caller (Basic-mode code).
                let f = unsafe { std::mem::transmute::<*mut u8, JitFn>(self.ptr) };
                // SAFETY: `mem_ptr` is null or `mem`, valid for its length.
                unsafe { f(mem_ptr, mem.len()) }
            }
            JitMode::Extended => {
                let mut stack = vec![0u8; 512];
                // SAFETY: guaranteed by the caller (Extended-mode code).
                let f = unsafe { std::mem::transmute::<*mut u8, JitExFn>(self.ptr) };
                // SAFETY: `mem` and `stack` are valid for their lengths.
                unsafe { f(mem_ptr, mem.len(), stack.as_mut_ptr(), stack.len()) }
            }
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
