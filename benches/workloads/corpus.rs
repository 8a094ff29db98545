//! The variant corpus (`tests/corpus/`) as a benchmark group: every C source of
//! `tests/corpus/src/` runs natively (compiled from the same source by `$CC -O2`, its `prog`
//! renamed `corpus_<name>`) and in every clang-built BPF variant of it
//! (`tests/corpus/obj/<name>-<opt>-<cpu>.o`) in the interpreter and the JIT, bounds checks on,
//! on one large input per source (`tests/corpus/inputs.rs`).
//!
//! Sources and variants are found by listing the folders, so new ones join without a change
//! here. For each source, the first input candidate on which every variant runs without a
//! fault or reaching [`VALIDATION_LIMIT`] (in the interpreter's per-instruction loop, bounds
//! checks on) is the one timed; only then does the native function run on it, since it has
//! no bounds checks. The native result and final memory are the oracle: every variant's
//! interpreter and JIT must reproduce both, or the bench stops.

#[path = "../../tests/corpus/inputs.rs"]
mod inputs;

use std::hint::black_box;
use std::path::{Path, PathBuf};

use rbpf::Vm;
use rbpf::jit::JitMode;

use crate::engines::{self, Engine};
use crate::native::{EntryFn, NativeLib, Unit};
use crate::timing::{self, Batch, Plan, Stats};

pub use inputs::BenchScale;

/// The instruction limit of the validation runs: an input on which a variant runs longer is
/// not timed.
const VALIDATION_LIMIT: u32 = 1 << 25;

/// `tests/corpus` in the source tree.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// One C file of `tests/corpus/src/`.
pub struct Source {
    /// The file stem (`copy_idx_u8`).
    pub stem: String,
    /// The idioms its first line declares.
    idioms: Vec<String>,
}

impl Source {
    /// The name filters match against: `corpus:<stem>`, so `corpus` selects the whole group.
    pub fn filter_name(&self) -> String {
        format!("corpus:{}", self.stem)
    }

    /// The native twin's symbol.
    fn symbol(&self) -> String {
        format!("corpus_{}", self.stem)
    }

    /// The unit that compiles this source into the native shared object.
    pub fn native_unit(&self) -> Unit {
        Unit {
            path: corpus_dir().join("src").join(format!("{}.c", self.stem)),
            defines: vec![format!("prog={}", self.symbol())],
        }
    }
}

/// Every source of `tests/corpus/src/`, sorted by name.
pub fn sources() -> Result<Vec<Source>, String> {
    let dir = corpus_dir().join("src");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_none_or(|e| e != "c") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(stem) = path.file_stem() else {
            continue;
        };
        out.push(Source {
            stem: stem.to_string_lossy().into_owned(),
            idioms: inputs::declared_idioms(&text),
        });
    }
    out.sort_by(|a, b| a.stem.cmp(&b.stem));
    Ok(out)
}

/// The checked-in variants of `stem`: (`<opt>-<cpu>`, object bytes), sorted.
fn variants(stem: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let dir = corpus_dir().join("obj");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let prefix = format!("{stem}-");
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(label) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".o"))
        else {
            continue;
        };
        // `<opt>-<cpu>`: a longer stem that starts with this one has more parts.
        if label.split('-').count() != 2 {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| format!("{name}: {e}"))?;
        out.push((label.to_owned(), bytes));
    }
    out.sort();
    Ok(out)
}

/// Memory for one run, 8-byte aligned like the buffers the differential tests use (the
/// native code reads u64 words through typed pointers).
struct Buffer {
    words: Vec<u64>,
    len: usize,
}

impl Buffer {
    fn new(bytes: &[u8]) -> Buffer {
        let mut buffer = Buffer {
            words: vec![0; bytes.len().div_ceil(8)],
            len: bytes.len(),
        };
        buffer.bytes().copy_from_slice(bytes);
        buffer
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: u64 has no padding and a stricter alignment than u8; the words hold at least
        // `len` bytes, and the slice borrows `self` mutably, so nothing else aliases it.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }

    /// The buffer's address and length, for native code and JIT entry points.
    fn as_ptr_len(&mut self) -> (*mut u8, usize) {
        let bytes = self.bytes();
        (bytes.as_mut_ptr(), bytes.len())
    }
}

/// One BPF variant, loaded and compiled with bounds checks on.
struct Variant {
    /// `<opt>-<cpu>`.
    label: String,
    object: Vec<u8>,
    vm: Vm,
    jit: EntryFn,
    compile_us: f64,
    final_code_us: f64,
}

fn load(object: &[u8], limit: u32, name: &str) -> Result<Vm, String> {
    let mut vm = Vm::new();
    vm.set_error_printer(Some(Box::new(|_| {})));
    vm.config_mut().bounds_check = true;
    vm.config_mut().instruction_limit = limit;
    vm.config_mut().jit_tier = crate::engines::jit_tier();
    vm.load_elf(object, None)
        .map_err(|e| format!("{name}: loading failed: {e}"))?;
    Ok(vm)
}

/// A source whose variants all agree with native C on its input, ready to time.
pub struct Prepared {
    /// The source's name.
    pub stem: String,
    /// What the input holds.
    pub input_description: String,
    input: Vec<u8>,
    /// Bytes restored before every timed run (in-place sorts).
    restore: usize,
    native: EntryFn,
    variants: Vec<Variant>,
}

/// A source that is not timed, and why.
pub struct Skipped {
    /// The source's name.
    pub stem: String,
    /// Why.
    pub reason: String,
}

/// Runs `variant` on `input` in the interpreter's per-instruction loop with a limit; `Err`
/// says why the input does not suit it.
fn validate(variant: &Variant, input: &[u8], name: &str) -> Result<(), String> {
    let vm = load(&variant.object, VALIDATION_LIMIT, name)?;
    let mut mem = Buffer::new(input);
    vm.execute(mem.bytes())
        .map(|_| ())
        .map_err(|e| format!("{name}: {e}"))
}

impl Prepared {
    /// Loads and compiles every variant of `source` (timing `compile_samples` compiles of
    /// each on fresh VMs), picks the first input candidate every variant runs without a fault,
    /// and checks every variant in both engines against native C on it. `Ok(Err(_))` when no
    /// variant or no input suits the source; `Err` when an engine disagrees with native C.
    pub fn new(
        source: &Source,
        lib: &NativeLib,
        scale: BenchScale,
        compile_samples: usize,
        dump_dir: Option<&Path>,
    ) -> Result<Result<Prepared, Skipped>, String> {
        let stem = &source.stem;
        let skip = |reason: String| {
            Ok(Err(Skipped {
                stem: stem.clone(),
                reason,
            }))
        };
        let objects = variants(stem)?;
        if objects.is_empty() {
            return skip("no objects in tests/corpus/obj (make -C tests/corpus)".to_owned());
        }
        let mut variants = Vec::new();
        for (label, object) in objects {
            let name = format!("{stem}-{label}");
            let (compile_us, final_code_us) =
                engines::median_compile_us(compile_samples, &name, || load(&object, 0, &name))?;
            let mut vm = load(&object, 0, &name)?;
            let jit = engines::compiled_entry(&mut vm, &name)?;
            if let Some(dir) = dump_dir {
                engines::write_jit_image(dir, &format!("{name}-bounds-on"), &vm)?;
            }
            variants.push(Variant {
                label,
                object,
                vm,
                jit,
                compile_us,
                final_code_us,
            });
        }
        let mut rejected = Vec::new();
        let mut chosen = None;
        for candidate in inputs::bench_candidates(stem, &source.idioms, scale) {
            let verdict = variants
                .iter()
                .try_for_each(|v| validate(v, &candidate.mem, &format!("{stem}-{}", v.label)));
            match verdict {
                Ok(()) => {
                    chosen = Some(candidate);
                    break;
                }
                Err(why) => rejected.push(format!("{}: {why}", candidate.description)),
            }
        }
        let Some(input) = chosen else {
            return skip(format!(
                "no input runs without a fault in every variant ({})",
                rejected.join("; ")
            ));
        };
        if let Some(first) = rejected.first() {
            eprintln!("workloads: corpus {stem}: rule input rejected ({first})");
        }
        let prepared = Prepared {
            stem: stem.clone(),
            input_description: input.description,
            input: input.mem,
            restore: input.restore,
            native: lib.function(&source.symbol())?,
            variants,
        };
        prepared.check()?;
        Ok(Ok(prepared))
    }

    /// Runs native C once on a fresh input, then every variant's interpreter and JIT entry
    /// point, and requires the native result and final memory from each.
    fn check(&self) -> Result<(), String> {
        let mut mem = Buffer::new(&self.input);
        let (ptr, len) = mem.as_ptr_len();
        // SAFETY: every variant ran this input in the interpreter with bounds checks on
        // without a fault (`validate`), so the same C program stays inside the buffer.
        let expected = unsafe { (self.native)(ptr, len) };
        let expected_mem = mem.bytes().to_vec();
        let compare = |engine: &str, label: &str, result: u64, got: &[u8]| {
            let name = format!("{}-{label}", self.stem);
            if result != expected {
                return Err(format!(
                    "corpus {name}: {engine} returned {result:#x}, native C {expected:#x}; not \
                     timing a wrong answer"
                ));
            }
            if let Some(at) = got.iter().zip(&expected_mem).position(|(a, b)| a != b) {
                return Err(format!(
                    "corpus {name}: {engine} left byte {at} of memory as {:#x}, native C {:#x}",
                    got[at], expected_mem[at]
                ));
            }
            Ok(())
        };
        for v in &self.variants {
            let mut mem = Buffer::new(&self.input);
            let result =
                v.vm.execute(mem.bytes())
                    .map_err(|e| format!("corpus {}-{}: interpreter: {e}", self.stem, v.label))?;
            compare("the interpreter", &v.label, result, mem.bytes())?;
            let mut mem = Buffer::new(&self.input);
            let (ptr, len) = mem.as_ptr_len();
            // SAFETY: the program was verified and its bounds checks are on.
            let result = unsafe { (v.jit)(ptr, len) };
            compare("the JIT (bounds checks on)", &v.label, result, mem.bytes())?;
        }
        Ok(())
    }

    /// Number of variants.
    pub fn variant_count(&self) -> usize {
        self.variants.len()
    }

    /// `<opt>-<cpu>` of variant `i`.
    pub fn label(&self, i: usize) -> &str {
        &self.variants[i].label
    }

    /// Median compile time of variant `i`, in microseconds.
    pub fn compile_us(&self, i: usize) -> f64 {
        self.variants[i].compile_us
    }

    /// Median wall-clock time until variant `i`'s final code runs, in microseconds.
    pub fn final_code_us(&self, i: usize) -> f64 {
        self.variants[i].final_code_us
    }

    /// Times native C and every variant's interpreter and JIT, interleaved.
    pub fn measure(&self, plan: Plan) -> Row {
        let restore = self.restore;
        let input = self.input.as_slice();
        let mut cells: Vec<Batch<'_>> = Vec::new();
        let native = self.native;
        let mut mem = Buffer::new(input);
        cells.push(timing::batch(move || {
            mem.bytes()[..restore].copy_from_slice(&input[..restore]);
            let (ptr, len) = mem.as_ptr_len();
            // SAFETY: checked in `check`: the function stays inside the buffer.
            unsafe { native(black_box(ptr), len) }
        }));
        for v in &self.variants {
            let mut mem = Buffer::new(input);
            let vm = &v.vm;
            cells.push(timing::batch(move || {
                let bytes = mem.bytes();
                bytes[..restore].copy_from_slice(&input[..restore]);
                vm.execute(black_box(bytes)).unwrap_or(u64::MAX)
            }));
        }
        for v in &self.variants {
            let mut mem = Buffer::new(input);
            let jit = v.jit;
            cells.push(timing::batch(move || {
                mem.bytes()[..restore].copy_from_slice(&input[..restore]);
                let (ptr, len) = mem.as_ptr_len();
                // SAFETY: the program was verified and its bounds checks are on.
                unsafe { jit(black_box(ptr), len) }
            }));
        }
        let stats = timing::measure(&mut cells, plan);
        let n = self.variants.len();
        Row {
            native: stats[0],
            interp: stats[1..=n].to_vec(),
            jit: stats[n + 1..].to_vec(),
        }
    }

    /// Runs `engine` `iters` times (per variant) with no timing, for a profiler.
    pub fn profile(&self, engine: Engine, iters: u64) {
        let mut mem = Buffer::new(&self.input);
        let restore = self.restore;
        let input = self.input.as_slice();
        match engine {
            Engine::Native => {
                for _ in 0..iters {
                    mem.bytes()[..restore].copy_from_slice(&input[..restore]);
                    let (ptr, len) = mem.as_ptr_len();
                    // SAFETY: checked in `check`: the function stays inside the buffer.
                    black_box(unsafe { (self.native)(black_box(ptr), len) });
                }
            }
            Engine::Interp => {
                for v in &self.variants {
                    for _ in 0..iters {
                        let bytes = mem.bytes();
                        bytes[..restore].copy_from_slice(&input[..restore]);
                        black_box(v.vm.execute(black_box(bytes)).unwrap_or(u64::MAX));
                    }
                }
            }
            Engine::Jit => {
                for v in &self.variants {
                    for _ in 0..iters {
                        mem.bytes()[..restore].copy_from_slice(&input[..restore]);
                        let (ptr, len) = mem.as_ptr_len();
                        // SAFETY: the program was verified and its bounds checks are on.
                        black_box(unsafe { (v.jit)(black_box(ptr), len) });
                    }
                }
            }
            Engine::Compile => {
                for v in &self.variants {
                    for _ in 0..iters {
                        if let Ok(mut vm) = load(&v.object, 0, &self.stem) {
                            black_box(vm.compile(JitMode::Basic).is_ok());
                        }
                    }
                }
            }
            // The corpus programs all take memory; `ubpf_exec` is timed on `c_empty` only.
            Engine::CExec => {}
        }
    }
}

/// The timings of one source.
pub struct Row {
    /// Native C.
    pub native: Stats,
    /// The interpreter, per variant.
    pub interp: Vec<Stats>,
    /// The JIT (bounds checks on), per variant.
    pub jit: Vec<Stats>,
}
