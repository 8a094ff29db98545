//! Loads each workload into librbpf (interpreter and JIT, per bounds-check setting), checks
//! that all engines agree with the reference, and builds the timing cells.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use rbpf::Vm;
use rbpf::jit::JitMode;

use crate::native::EntryFn;
use crate::programs::Workload;
use crate::timing::{self, Batch, Plan};
use crate::{BoundsRow, Row};

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
}

impl Engine {
    /// Parses `interp`, `jit` or `native`.
    pub fn parse(name: &str) -> Option<Engine> {
        match name {
            "interp" => Some(Engine::Interp),
            "jit" => Some(Engine::Jit),
            "native" => Some(Engine::Native),
            "compile" => Some(Engine::Compile),
            _ => None,
        }
    }
}

/// A workload loaded into one VM with a given bounds-check setting, and compiled.
struct BpfVm {
    bounds: bool,
    vm: Vm,
    jit: EntryFn,
    compile_us: f64,
    jit_bytes: Option<usize>,
}

/// A workload ready to run on every engine.
pub struct Prepared {
    /// The workload itself.
    pub workload: Workload,
    /// Its program length in instruction slots.
    pub insn_count: usize,
    /// The assembled program.
    code: Vec<u8>,
    native: EntryFn,
    expected: u64,
    expected_mem: Vec<u8>,
    vms: Vec<BpfVm>,
}

fn new_vm(bounds: bool, code: &[u8], name: &str) -> Result<Vm, String> {
    let mut vm = Vm::new();
    vm.config_mut().bounds_check = bounds;
    vm.load(code)
        .map_err(|e| format!("{name}: loading failed: {e}"))?;
    Ok(vm)
}

/// Writes `<name>.bpf.s` and `<name>-bounds-<on|off>.bin` (the JIT image) into `dir`.
fn dump(dir: &Path, workload: &Workload, bounds: bool, vm: &Vm) -> Result<(), String> {
    let write = |file: String, bytes: &[u8]| {
        let path = dir.join(file);
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    write(format!("{}.bpf.s", workload.name), workload.asm.as_bytes())?;
    let mut image = vec![0u8; vm.jit_size().unwrap_or(0)];
    vm.copy_jit(&mut image)
        .map_err(|e| format!("{}: copying the JIT image: {e}", workload.name))?;
    let state = if bounds { "on" } else { "off" };
    write(format!("{}-bounds-{state}.bin", workload.name), &image)
}

impl Prepared {
    /// Assembles the workload, loads it once per bounds setting and JIT-compiles it, timing
    /// `compile_samples` compilations on fresh VMs. With `dump_dir`, writes the program text
    /// and each JIT image there (for `objdump -D -b binary -m i386:x86-64`).
    pub fn new(
        workload: Workload,
        native: EntryFn,
        bounds_modes: &[bool],
        compile_samples: usize,
        dump_dir: Option<&Path>,
    ) -> Result<Prepared, String> {
        let name = workload.name;
        let code = rbpf::asm::assemble_bytes(&workload.asm)
            .map_err(|e| format!("{name}: assembling failed: {e}"))?;
        let mut expected_mem = workload.mem.clone();
        let expected = (workload.reference)(&mut expected_mem);
        let mut vms = Vec::new();
        for &bounds in bounds_modes {
            let mut compile_times = Vec::new();
            for _ in 0..compile_samples {
                let mut fresh = new_vm(bounds, &code, name)?;
                let start = Instant::now();
                fresh
                    .compile(JitMode::Basic)
                    .map_err(|e| format!("{name}: JIT compile failed: {e}"))?;
                compile_times.push(start.elapsed().as_secs_f64() * 1e6);
            }
            let mut vm = new_vm(bounds, &code, name)?;
            let entry = vm
                .compile(JitMode::Basic)
                .map_err(|e| format!("{name}: JIT compile failed: {e}"))?;
            if entry.is_null() {
                return Err(format!("{name}: JIT returned a null entry point"));
            }
            // SAFETY: `compile(JitMode::Basic)` returns an entry point with uBPF's
            // `ubpf_jit_fn` signature, `uint64_t (void *mem, size_t mem_len)`, which EntryFn
            // matches; the code lives as long as `vm`, which we keep beside it.
            let jit = unsafe { std::mem::transmute::<*const u8, EntryFn>(entry) };
            if let Some(dir) = dump_dir {
                dump(dir, &workload, bounds, &vm)?;
            }
            vms.push(BpfVm {
                bounds,
                jit_bytes: vm.jit_size(),
                vm,
                jit,
                compile_us: timing::stats(&compile_times).median,
            });
        }
        Ok(Prepared {
            insn_count: code.len() / 8,
            code,
            native,
            expected,
            expected_mem,
            vms,
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
        // SAFETY: native.c's functions only touch `mem[..len]`.
        let result = unsafe { (self.native)(mem.as_mut_ptr(), mem.len()) };
        self.compare("native C", result, &mem)?;
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

    /// Times native, then interpreter and JIT per bounds mode, interleaved.
    pub fn measure(&self, plan: Plan) -> Row {
        let native = self.native;
        let mut mem = self.workload.mem.clone();
        let mut cells: Vec<Batch<'_>> = vec![timing::batch(move || {
            // SAFETY: checked in `check`: the function stays inside `mem`.
            unsafe { native(black_box(mem.as_mut_ptr()), mem.len()) }
        })];
        for v in &self.vms {
            let mut mem = self.workload.mem.clone();
            let vm = &v.vm;
            cells.push(timing::batch(move || {
                vm.execute(black_box(mem.as_mut_slice()))
                    .unwrap_or(u64::MAX)
            }));
            let mut mem = self.workload.mem.clone();
            let jit = v.jit;
            cells.push(timing::batch(move || {
                // SAFETY: as in `check`, which ran this entry point on the same input.
                unsafe { jit(black_box(mem.as_mut_ptr()), mem.len()) }
            }));
        }
        let stats = timing::measure(&mut cells, plan);
        Row {
            native: stats[0],
            per_bounds: self
                .vms
                .iter()
                .enumerate()
                .map(|(i, v)| BoundsRow {
                    interp: stats[1 + 2 * i],
                    jit: stats[2 + 2 * i],
                    compile_us: v.compile_us,
                    jit_bytes: v.jit_bytes,
                })
                .collect(),
        }
    }

    /// Runs `engine` `iters` times per bounds mode with no timing, for a profiler.
    pub fn profile(&self, engine: Engine, iters: u64) {
        let mut mem = self.workload.mem.clone();
        if engine == Engine::Native {
            for _ in 0..iters {
                // SAFETY: checked in `check`: the function stays inside `mem`.
                black_box(unsafe { (self.native)(black_box(mem.as_mut_ptr()), mem.len()) });
            }
            return;
        }
        if engine == Engine::Compile {
            for v in &self.vms {
                for _ in 0..iters {
                    if let Ok(mut vm) = new_vm(v.bounds, &self.code, self.workload.name) {
                        black_box(vm.compile(JitMode::Basic).is_ok());
                    }
                }
            }
            return;
        }
        for v in &self.vms {
            for _ in 0..iters {
                let result = match engine {
                    Engine::Interp => {
                        v.vm.execute(black_box(mem.as_mut_slice()))
                            .unwrap_or(u64::MAX)
                    }
                    // SAFETY: as in `check`, which ran this entry point on the same input.
                    _ => unsafe { (v.jit)(black_box(mem.as_mut_ptr()), mem.len()) },
                };
                black_box(result);
            }
        }
    }
}
