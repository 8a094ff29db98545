//! Compiles C sources with the system C compiler into temporary shared objects and looks up
//! functions in them: `benches/native.c` and the C workloads of `benches/c/` (`bench_*`) in
//! one, each corpus source of `tests/corpus/src/` (`corpus_*`) in one of its own.

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

/// One C file of the native shared object, compiled on its own with its own macros.
pub struct Unit {
    /// The C source.
    pub path: PathBuf,
    /// `-D` arguments for this file only (`prog=corpus_<name>` renames a corpus program's
    /// entry point, so that every corpus source can share one object).
    pub defines: Vec<String>,
}

impl Unit {
    /// A C file compiled without extra macros.
    pub fn plain(path: PathBuf) -> Unit {
        Unit {
            path,
            defines: Vec::new(),
        }
    }
}

impl NativeLib {
    /// Compiles every unit with `$CC` (default `cc`), each into its own object (two at a time
    /// on a machine with two threads), links them into one shared object and loads it. Each
    /// library gets its own `name`: `dlopen` would return an earlier library of the same path.
    pub fn build(units: &[Unit], name: &str) -> Result<NativeLib, String> {
        let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
        let dir = std::env::temp_dir().join(format!("rbpf-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let so = dir.join(format!("{name}.so"));
        let result = compile(&compiler, units, &dir)
            .and_then(|objects| link(&compiler, &objects, &so))
            .and_then(|()| load(&so));
        // The loaded object stays mapped after its file is gone.
        let _ = std::fs::remove_dir_all(&dir);
        let handle = result?;
        Ok(NativeLib {
            handle,
            description: describe(&compiler),
        })
    }

    /// Compiles every unit like [`NativeLib::build`], but links each into a shared object of
    /// its own (`<name>-<index>.so`): a function's code then lies at the same offsets from a
    /// page boundary whatever else is built, so its native time does not change when sources
    /// are added or filtered out (loop alignment alone changed a native strcmp loop by 1.5×).
    pub fn build_each(units: &[Unit], name: &str) -> Result<Vec<NativeLib>, String> {
        let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
        let dir = std::env::temp_dir().join(format!("rbpf-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let result = compile(&compiler, units, &dir).and_then(|objects| {
            let description = describe(&compiler);
            objects
                .iter()
                .enumerate()
                .map(|(i, object)| {
                    let so = dir.join(format!("{name}-{i}.so"));
                    link(&compiler, std::slice::from_ref(object), &so)?;
                    Ok(NativeLib {
                        handle: load(&so)?,
                        description: description.clone(),
                    })
                })
                .collect()
        });
        // The loaded objects stay mapped after their files are gone.
        let _ = std::fs::remove_dir_all(&dir);
        result
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
        // SAFETY: every bench_* function of the native sources is defined with exactly this
        // signature (`uint64_t (uint8_t *, size_t)`), every corpus_* one as `uint64_t
        // (uint8_t *, uint64_t)`, the same ABI on a 64-bit host; the library stays loaded for
        // the whole run.
        Ok(unsafe { std::mem::transmute::<*mut c_void, EntryFn>(address) })
    }
}

/// Compiles each unit into `dir/<index>.o`; returns the objects in unit order.
fn compile(compiler: &str, units: &[Unit], dir: &Path) -> Result<Vec<PathBuf>, String> {
    let objects: Vec<PathBuf> = (0..units.len())
        .map(|i| dir.join(format!("{i}.o")))
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(unit) = units.get(i) else { break };
                    let status = Command::new(compiler)
                        .args(OPT_FLAGS)
                        .args(["-fPIC", "-Wall", "-Wextra", "-Werror", "-c"])
                        .args(unit.defines.iter().map(|d| format!("-D{d}")))
                        .arg(&unit.path)
                        .arg("-o")
                        .arg(&objects[i])
                        .status();
                    let error = match status {
                        Ok(s) if s.success() => continue,
                        Ok(s) => format!("{compiler} failed on {} ({s})", unit.path.display()),
                        Err(e) => format!("running {compiler}: {e}"),
                    };
                    failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(error);
                    break;
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(error) => Err(error),
        None => Ok(objects),
    }
}

/// `<compiler> <flags>` and the compiler's version line, for the report.
fn describe(compiler: &str) -> String {
    let version = Command::new(compiler)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines().next().map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown version".to_owned());
    format!("`{compiler} {}` ({version})", OPT_FLAGS.join(" "))
}

fn link(compiler: &str, objects: &[PathBuf], output: &Path) -> Result<(), String> {
    let status = Command::new(compiler)
        .args(["-shared", "-o"])
        .arg(output)
        .args(objects)
        .status()
        .map_err(|e| format!("running {compiler}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{compiler} failed linking the native objects ({status})"
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
