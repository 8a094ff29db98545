//! Loads each workload into librbpf (once per bounds-check setting), JIT-compiles it, checks
//! that every engine agrees with the reference, and builds the timing cells.

use std::hint::black_box;
use std::path::Path;

use rbpf::Vm;
use rbpf::jit::JitMode;

use crate::native::EntryFn;
use crate::programs::{Code, Workload};
use crate::timing::{self, Batch, Plan, Stats};

/// The JIT tier every VM of the run compiles in (`--tier=`; default: chosen per program).
static JIT_TIER: std::sync::OnceLock<rbpf::JitTier> = std::sync::OnceLock::new();

/// Sets the tier of [`jit_tier`] (once, before anything loads).
pub fn set_jit_tier(tier: rbpf::JitTier) {
    let _ = JIT_TIER.set(tier);
}

/// The JIT tier every VM of the run compiles in.
pub fn jit_tier() -> rbpf::JitTier {
    JIT_TIER.get().copied().unwrap_or_default()
}

/// One way of running a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// librbpf's interpreter (`Vm::execute`).
    Interp,
    /// librbpf's JIT entry point, called directly.
    Jit,
    /// The workload's native C twin.
    Native,
    /// JIT compilation on a fresh VM (profile mode only).
    Compile,
    /// `ubpf_exec` through the C API.
    CExec,
}

impl Engine {
    /// Parses `interp`, `jit`, `native`, `compile` or `ubpf_exec`.
    pub fn parse(name: &str) -> Option<Engine> {
        match name {
            "interp" => Some(Engine::Interp),
            "jit" => Some(Engine::Jit),
            "native" => Some(Engine::Native),
            "compile" => Some(Engine::Compile),
            "ubpf_exec" => Some(Engine::CExec),
            _ => None,
        }
    }
}

/// The bytes a workload is loaded from.
enum Loadable {
    /// Raw bytecode (assembled from the hand-written text).
    Bytecode(Vec<u8>),
    /// A clang-built ELF object.
    Elf(Vec<u8>),
}

impl Loadable {
    fn load(&self, bounds: bool, name: &str) -> Result<Vm, String> {
        let mut vm = Vm::new();
        vm.config_mut().bounds_check = bounds;
        vm.config_mut().jit_tier = jit_tier();
        match self {
            Loadable::Bytecode(code) => vm.load(code).map_err(|e| e.to_string()),
            Loadable::Elf(object) => vm.load_elf(object, None).map_err(|e| e.to_string()),
        }
        .map_err(|e| format!("{name}: loading failed: {e}"))?;
        Ok(vm)
    }
}

/// A workload loaded into one VM with a given bounds-check setting, and compiled.
struct BpfVm {
    bounds: bool,
    vm: Vm,
    jit: EntryFn,
    compile_us: f64,
    final_code_us: f64,
    jit_bytes: Option<usize>,
}

/// A VM made through the C API (`ubpf_create` + `ubpf_load`/`ubpf_load_elf`), to time
/// `ubpf_exec` as a C embedder calls it.
struct CVm(*mut rbpf_capi::ubpf_vm);

impl CVm {
    fn new(loadable: &Loadable, name: &str) -> Result<CVm, String> {
        let vm = CVm(rbpf_capi::vm::ubpf_create());
        if vm.0.is_null() {
            return Err(format!("{name}: ubpf_create failed"));
        }
        let mut errmsg = std::ptr::null_mut();
        let rc = match loadable {
            Loadable::Bytecode(code) => rbpf_capi::load::ubpf_load(
                vm.0,
                code.as_ptr().cast(),
                code.len() as u32,
                &mut errmsg,
            ),
            Loadable::Elf(object) => rbpf_capi::elf::ubpf_load_elf(
                vm.0,
                object.as_ptr().cast(),
                object.len(),
                &mut errmsg,
            ),
        };
        if !errmsg.is_null() {
            // SAFETY: errmsg is a malloc'd C string owned by us (API contract).
            unsafe { libc::free(errmsg.cast()) };
        }
        if rc != 0 {
            return Err(format!("{name}: ubpf_load failed"));
        }
        Ok(vm)
    }

    fn exec(&self, mem: &mut [u8]) -> u64 {
        let mut value = u64::MAX;
        let rc = rbpf_capi::exec::ubpf_exec(self.0, mem.as_mut_ptr().cast(), mem.len(), &mut value);
        if rc == 0 { value } else { u64::MAX }
    }
}

impl Drop for CVm {
    fn drop(&mut self) {
        rbpf_capi::vm::ubpf_destroy(self.0);
    }
}

/// A workload ready to run on every engine.
pub struct Prepared {
    /// The workload itself.
    pub workload: Workload,
    /// Its program length in instruction slots.
    pub insn_count: usize,
    /// Instructions the interpreter executes in one run (counted by a debug callback).
    pub executed: u64,
    loadable: Loadable,
    native: EntryFn,
    expected: u64,
    expected_mem: Vec<u8>,
    vms: Vec<BpfVm>,
    /// Only for programs that take no memory (the `empty` ones): the C API entry cost.
    c_vm: Option<CVm>,
}

/// Writes `<name>.bpf` (the loaded bytecode) and `<name>-bounds-<on|off>.bin` (the JIT image)
/// into `dir`.
fn dump(dir: &Path, workload: &Workload, bounds: bool, vm: &Vm) -> Result<(), String> {
    if let Code::Asm(text) = &workload.code {
        write_file(dir, &format!("{}.bpf.s", workload.name), text.as_bytes())?;
    }
    let state = if bounds { "on" } else { "off" };
    write_jit_image(dir, &format!("{}-bounds-{state}", workload.name), vm)
}

/// Writes `bytes` to `dir/file`.
fn write_file(dir: &Path, file: &str, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(file);
    std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Writes the JIT image of `vm` to `dir/<name>.bin`.
pub fn write_jit_image(dir: &Path, name: &str, vm: &Vm) -> Result<(), String> {
    let mut image = vec![0u8; vm.jit_size().unwrap_or(0)];
    vm.copy_jit(&mut image)
        .map_err(|e| format!("{name}: copying the JIT image: {e}"))?;
    write_file(dir, &format!("{name}.bin"), &image)
}

/// The medians over `samples` compiles, each of a fresh VM from `load`, in microseconds: the
/// CPU time of the compiling thread in `Vm::compile` (until code runs), and the wall-clock
/// time until the final code runs (`Vm::wait_for_tier_up`: later than the first for
/// programs that tier up in the background).
pub fn median_compile_us(
    samples: usize,
    name: &str,
    mut load: impl FnMut() -> Result<Vm, String>,
) -> Result<(f64, f64), String> {
    let mut times = Vec::new();
    let mut final_times = Vec::new();
    for _ in 0..samples {
        let mut fresh = load()?;
        let wall = std::time::Instant::now();
        let start = timing::thread_cpu_time();
        fresh
            .compile(JitMode::Basic)
            .map_err(|e| format!("{name}: JIT compile failed: {e}"))?;
        times.push((timing::thread_cpu_time() - start).as_secs_f64() * 1e6);
        fresh.wait_for_tier_up();
        final_times.push(wall.elapsed().as_secs_f64() * 1e6);
    }
    Ok((
        timing::stats(&times).median,
        timing::stats(&final_times).median,
    ))
}

/// Compiles `vm` and returns its entry point, called like uBPF's `ubpf_jit_fn`.
pub fn compiled_entry(vm: &mut Vm, name: &str) -> Result<EntryFn, String> {
    let entry = vm
        .compile(JitMode::Basic)
        .map_err(|e| format!("{name}: JIT compile failed: {e}"))?;
    if entry.is_null() {
        return Err(format!("{name}: JIT returned a null entry point"));
    }
    // Times the final code: a program that tiers up in the background runs its first tier's
    // code until then.
    vm.wait_for_tier_up();
    // SAFETY: `compile(JitMode::Basic)` returns an entry point with uBPF's `ubpf_jit_fn`
    // signature, `uint64_t (void *mem, size_t mem_len)`, which EntryFn matches; the code
    // lives as long as `vm`, which the caller keeps beside it.
    Ok(unsafe { std::mem::transmute::<*const u8, EntryFn>(entry) })
}

/// The timings of one workload.
pub struct Row {
    /// The native twin.
    pub native: Stats,
    /// The interpreter (with the first bounds setting of the run, normally on).
    pub interp: Stats,
    /// `ubpf_exec` through the C API, for programs that take no memory.
    pub c_exec: Option<Stats>,
    /// One entry per bounds mode, in the run's order.
    pub per_bounds: Vec<JitRow>,
}

/// The JIT's numbers for one workload and bounds mode.
pub struct JitRow {
    /// Calls of the entry point.
    pub jit: Stats,
    /// Median `Vm::compile` time on a fresh VM (CPU time of the compiling thread).
    pub compile_us: f64,
    /// Median wall-clock time until the final code runs (see [`median_compile_us`]).
    pub final_code_us: f64,
    /// Size of the machine code.
    pub jit_bytes: Option<usize>,
}

/// Runs the workload once in the interpreter with a debug callback that counts instructions.
fn count_executed(loadable: &Loadable, workload: &Workload) -> Result<u64, String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut vm = loadable.load(true, workload.name)?;
    let count = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&count);
    vm.set_debug_fn(Some(Box::new(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    })))
    .map_err(|e| format!("{}: debug callback: {e}", workload.name))?;
    let mut mem = workload.mem.clone();
    vm.execute(&mut mem)
        .map_err(|e| format!("{}: interpreter failed: {e}", workload.name))?;
    Ok(count.load(Ordering::Relaxed))
}

impl Prepared {
    /// Loads the workload once per bounds setting and JIT-compiles it, timing
    /// `compile_samples` compilations on fresh VMs. With `dump_dir`, writes the program and
    /// each JIT image there (for `objdump -D -b binary -m i386:x86-64`).
    pub fn new(
        workload: Workload,
        native: EntryFn,
        bounds_modes: &[bool],
        compile_samples: usize,
        dump_dir: Option<&Path>,
    ) -> Result<Prepared, String> {
        let name = workload.name;
        let loadable = match &workload.code {
            Code::Asm(text) => Loadable::Bytecode(
                rbpf::asm::assemble_bytes(text)
                    .map_err(|e| format!("{name}: assembling failed: {e}"))?,
            ),
            Code::Clang(stem) => Loadable::Elf(crate::clang::object(stem)?),
        };
        let mut expected_mem = workload.mem.clone();
        let expected = (workload.reference)(&mut expected_mem);
        let mut vms = Vec::new();
        let mut insn_count = 0;
        for &bounds in bounds_modes {
            let (compile_us, final_code_us) =
                median_compile_us(compile_samples, name, || loadable.load(bounds, name))?;
            let mut vm = loadable.load(bounds, name)?;
            insn_count = vm.program().map_or(0, |p| p.len());
            let jit = compiled_entry(&mut vm, name)?;
            if let Some(dir) = dump_dir {
                dump(dir, &workload, bounds, &vm)?;
            }
            vms.push(BpfVm {
                bounds,
                jit_bytes: vm.jit_size(),
                vm,
                jit,
                compile_us,
                final_code_us,
            });
        }
        let executed = count_executed(&loadable, &workload)?;
        let c_vm = if workload.mem.is_empty() {
            Some(CVm::new(&loadable, name)?)
        } else {
            None
        };
        Ok(Prepared {
            insn_count,
            executed,
            loadable,
            native,
            expected,
            expected_mem,
            vms,
            c_vm,
            workload,
        })
    }

    fn compare(&self, engine: &str, result: u64, mem: &[u8]) -> Result<(), String> {
        let name = self.workload.name;
        if result != self.expected {
            return Err(format!(
                "{name}: {engine} returned {result:#x}, the reference {:#x}; not timing a wrong \
                 answer",
                self.expected
            ));
        }
        if let Some(at) = mem.iter().zip(&self.expected_mem).position(|(a, b)| a != b) {
            return Err(format!(
                "{name}: {engine} left byte {at} of memory as {:#x}, the reference {:#x}",
                mem[at], self.expected_mem[at]
            ));
        }
        Ok(())
    }

    /// Runs every engine once on fresh memory and compares result and final memory with the
    /// reference.
    pub fn check(&self) -> Result<(), String> {
        let mut mem = self.workload.mem.clone();
        // SAFETY: the native functions only touch `mem[..len]`.
        let result = unsafe { (self.native)(mem.as_mut_ptr(), mem.len()) };
        self.compare("native C", result, &mem)?;
        if let Some(c_vm) = &self.c_vm {
            let mut mem = self.workload.mem.clone();
            self.compare("ubpf_exec", c_vm.exec(&mut mem), &mem)?;
        }
        for v in &self.vms {
            let label =
                |engine: &str| format!("{engine} (bounds {})", if v.bounds { "on" } else { "off" });
            let mut mem = self.workload.mem.clone();
            let result =
                v.vm.execute(&mut mem)
                    .map_err(|e| format!("{}: interpreter failed: {e}", self.workload.name))?;
            self.compare(&label("interpreter"), result, &mem)?;

            let mut mem = self.workload.mem.clone();
            let result =
                v.vm.execute_jit(&mut mem)
                    .map_err(|e| format!("{}: JIT failed: {e}", self.workload.name))?;
            self.compare(&label("JIT (execute_jit)"), result, &mem)?;

            let mut mem = self.workload.mem.clone();
            // SAFETY: the program was verified and, with bounds checks on, only touches
            // `mem`; with them off, the check above just showed that this exact input stays
            // in bounds (the programs are deterministic).
            let result = unsafe { (v.jit)(mem.as_mut_ptr(), mem.len()) };
            self.compare(&label("JIT (entry point)"), result, &mem)?;
        }
        Ok(())
    }

    /// Times native, the interpreter, `ubpf_exec` (programs without memory) and the JIT per
    /// bounds mode, interleaved.
    pub fn measure(&self, plan: Plan) -> Row {
        let native = self.native;
        let mut mem = self.workload.mem.clone();
        let mut cells: Vec<Batch<'_>> = vec![timing::batch(move || {
            // SAFETY: checked in `check`: the function stays inside `mem`.
            unsafe { native(black_box(mem.as_mut_ptr()), mem.len()) }
        })];
        let mut mem = self.workload.mem.clone();
        let vm = &self.vms[0].vm;
        cells.push(timing::batch(move || {
            vm.execute(black_box(mem.as_mut_slice()))
                .unwrap_or(u64::MAX)
        }));
        if let Some(c_vm) = &self.c_vm {
            let mut mem = self.workload.mem.clone();
            cells.push(timing::batch(move || c_vm.exec(black_box(&mut mem))));
        }
        for v in &self.vms {
            let mut mem = self.workload.mem.clone();
            let jit = v.jit;
            cells.push(timing::batch(move || {
                // SAFETY: as in `check`, which ran this entry point on the same input.
                unsafe { jit(black_box(mem.as_mut_ptr()), mem.len()) }
            }));
        }
        let stats = timing::measure(&mut cells, plan);
        let jit_from = if self.c_vm.is_some() { 3 } else { 2 };
        Row {
            native: stats[0],
            interp: stats[1],
            c_exec: self.c_vm.as_ref().map(|_| stats[2]),
            per_bounds: self
                .vms
                .iter()
                .zip(&stats[jit_from..])
                .map(|(v, &jit)| JitRow {
                    jit,
                    compile_us: v.compile_us,
                    final_code_us: v.final_code_us,
                    jit_bytes: v.jit_bytes,
                })
                .collect(),
        }
    }

    /// Runs `engine` `iters` times per bounds mode with no timing, for a profiler.
    pub fn profile(&self, engine: Engine, iters: u64) {
        let mut mem = self.workload.mem.clone();
        match engine {
            Engine::Native => {
                for _ in 0..iters {
                    // SAFETY: checked in `check`: the function stays inside `mem`.
                    black_box(unsafe { (self.native)(black_box(mem.as_mut_ptr()), mem.len()) });
                }
            }
            Engine::CExec => {
                if let Some(c_vm) = &self.c_vm {
                    for _ in 0..iters {
                        black_box(c_vm.exec(black_box(&mut mem)));
                    }
                }
            }
            Engine::Compile => {
                for v in &self.vms {
                    for _ in 0..iters {
                        if let Ok(mut vm) = self.loadable.load(v.bounds, self.workload.name) {
                            black_box(vm.compile(JitMode::Basic).is_ok());
                        }
                    }
                }
            }
            Engine::Interp => {
                for _ in 0..iters {
                    black_box(
                        self.vms[0]
                            .vm
                            .execute(black_box(mem.as_mut_slice()))
                            .unwrap_or(u64::MAX),
                    );
                }
            }
            Engine::Jit => {
                for v in &self.vms {
                    for _ in 0..iters {
                        // SAFETY: as in `check`, which ran this entry point on the same input.
                        black_box(unsafe { (v.jit)(black_box(mem.as_mut_ptr()), mem.len()) });
                    }
                }
            }
        }
    }
}
