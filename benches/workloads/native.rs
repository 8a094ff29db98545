//! Compiles `benches/native.c` and the C workloads of `benches/c/` with the system C compiler
//! into one temporary shared object and looks up the `bench_*` functions in it.

use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The signature shared by native workloads and JIT entry points (uBPF's `ubpf_jit_fn`).
pub type EntryFn = unsafe extern "C" fn(*mut u8, usize) -> u64;

/// Flags the native workloads are compiled with (besides `-shared -fPIC` and warnings).
pub const OPT_FLAGS: &[&str] = &["-O2"];

/// The native workloads, loaded with `dlopen` and kept loaded for the whole run.
pub struct NativeLib {
    handle: *mut c_void,
    /// `<compiler> <flags>` and the compiler's version line, for the report.
    pub description: String,
}

impl NativeLib {
    /// Compiles `sources` with `$CC` (default `cc`) and loads the result.
    pub fn build(sources: &[PathBuf]) -> Result<NativeLib, String> {
        let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
        let dir = std::env::temp_dir().join(format!("rbpf-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let so = dir.join("native.so");
        let result = compile(&compiler, sources, &so).and_then(|()| load(&so));
        // The loaded object stays mapped after its file is gone.
        let _ = std::fs::remove_dir_all(&dir);
        let handle = result?;
        let version = Command::new(&compiler)
            .arg("--version")
            .output()
            .ok()
            .and_then(|out| {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.lines().next().map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown version".to_owned());
        Ok(NativeLib {
            handle,
            description: format!("`{compiler} {}` ({version})", OPT_FLAGS.join(" ")),
        })
    }

    /// The native function `symbol` (a workload's twin).
    pub fn function(&self, name: &str) -> Result<EntryFn, String> {
        let symbol = CString::new(name).map_err(|_| format!("bad symbol {name:?}"))?;
        // SAFETY: `handle` came from a successful dlopen and is never closed; `symbol` is a
        // NUL-terminated string.
        let address = unsafe { libc::dlsym(self.handle, symbol.as_ptr()) };
        if address.is_null() {
            return Err(format!("the native sources have no function {name}"));
        }
        // SAFETY: every bench_* function of the native sources is defined with exactly this signature
        // (`uint64_t (uint8_t *, size_t)`), and the library stays loaded for the whole run.
        Ok(unsafe { std::mem::transmute::<*mut c_void, EntryFn>(address) })
    }
}

fn compile(compiler: &str, sources: &[PathBuf], output: &PathBuf) -> Result<(), String> {
    let status = Command::new(compiler)
        .args(OPT_FLAGS)
        .args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(output)
        .args(sources)
        .status()
        .map_err(|e| format!("running {compiler}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{compiler} failed on the native sources ({status})"
        ))
    }
}

fn load(path: &Path) -> Result<*mut c_void, String> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("path {} contains NUL", path.display()))?;
    // SAFETY: `c_path` is NUL-terminated; the object is our own native.c, whose initialisers
    // (none) are safe to run.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: no preconditions.
        let message = unsafe { libc::dlerror() };
        let reason = if message.is_null() {
            "unknown error".to_owned()
        } else {
            // SAFETY: dlerror returned a NUL-terminated string owned by libc.
            unsafe { CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(format!("dlopen {}: {reason}", path.display()));
    }
    Ok(handle)
}
