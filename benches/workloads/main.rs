//! How fast are librbpf's interpreter and JIT compared with native C?
//!
//! Runs the clang-built C workloads (`clang.rs`, `benches/c/`) and the hand-written ones
//! (`programs.rs`) in one process: librbpf's interpreter, `ubpf_exec` (programs without
//! memory), librbpf's JIT with bounds checks on and off (`JitMode::Basic`, entry point called
//! directly like a `ubpf_jit_fn`), and native C compiled with the system compiler at `-O2`.
//! Before timing anything, every engine's result (and final memory) is checked against a Rust
//! reference; any mismatch aborts the run. Prints one markdown table per group (ns per run,
//! ratios to native, compile µs), geomeans, and the performance targets.
//!
//! The third group, the variant corpus (`corpus.rs`, `tests/corpus/`), runs every clang-built
//! variant of every corpus source in the interpreter and the JIT (bounds checks on) against
//! the same source compiled natively, which is its oracle. The run ends with a summary of the
//! performance issue's targets, the corpus and the clang-built workloads side by side.
//!
//! ```text
//! cargo bench --bench workloads                  # full measurement (2.6 min of CPU)
//! cargo bench --bench workloads -- --quick       # smoke check: a few runs each, no timing
//! cargo test  --bench workloads                  # the same smoke check (no --bench flag)
//! cargo bench --bench workloads -- primes switch # only workloads whose name contains a word
//! cargo bench --bench workloads -- --bounds=on   # only bounds checks on (or off, or both)
//! cargo bench --bench workloads -- corpus        # only the corpus (`corpus:<source>` names)
//! cargo bench --bench workloads -- --no-corpus   # without the corpus
//! cargo bench --bench workloads -- --tier=baseline # every JIT compile in one tier
//! # profiling: run one engine N times with no timing, e.g. under callgrind
//! cargo bench --bench workloads -- --profile=interp --iters=200 primes
//! # write each program's text and JIT image into DIR (objdump -D -b binary -m i386:x86-64)
//! cargo bench --bench workloads -- --quick --dump-jit=/tmp/jit
//! ```
//! `RBPF_BENCH_QUICK=1` forces quick mode.

mod clang;
mod corpus;
mod engines;
mod native;
mod programs;
/// The fixed-seed generator the integration tests use, so every run measures the same inputs.
#[path = "../../tests/common/rng.rs"]
#[allow(dead_code, reason = "the bench uses only part of the generator")]
mod rng;
mod timing;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use engines::{Engine, Prepared, Row};
use native::Unit;
use timing::{Clock, Plan, geomean};

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Calibrated timing of every engine.
    Full,
    /// A few runs of everything; checks results, prints the table, says nothing about speed.
    Quick,
    /// Runs one engine a fixed number of times (for callgrind or perf).
    Profile(Engine, u64),
}

struct Options {
    mode: Mode,
    filters: Vec<String>,
    bounds: Vec<bool>,
    dump_dir: Option<PathBuf>,
    /// Whether the corpus group runs (`--no-corpus` turns it off).
    corpus: bool,
    /// What a sample's time is (`--wall-clock`: wall-clock time).
    clock: Clock,
}

impl Options {
    /// Whether the filters select a workload or corpus source of this name.
    fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

const USAGE: &str = "usage: workloads [--quick|--full] [--bounds=on|off|both] [--no-corpus] \
[--wall-clock] [--tier=auto|optimised|fast|baseline] [--profile=interp|jit|native|compile|ubpf_exec --iters=N] [--dump-jit=DIR] [NAME...]";

fn parse_options() -> Result<Options, String> {
    let mut bench_flag = false;
    let mut quick = std::env::var_os("RBPF_BENCH_QUICK").is_some_and(|v| v != "0");
    let mut full = false;
    let mut profile = None;
    let mut iters: u64 = 100;
    let mut bounds = vec![true, false];
    let mut filters = Vec::new();
    let mut dump_dir = None;
    let mut corpus = true;
    let mut clock = Clock::ThreadCpu;
    for arg in std::env::args().skip(1) {
        if let Some(value) = arg.strip_prefix("--bounds=") {
            bounds = match value {
                "on" => vec![true],
                "off" => vec![false],
                "both" => vec![true, false],
                _ => return Err(format!("bad --bounds value {value:?}\n{USAGE}")),
            };
        } else if let Some(value) = arg.strip_prefix("--profile=") {
            profile = Some(Engine::parse(value).ok_or_else(|| format!("bad engine {value:?}"))?);
        } else if let Some(value) = arg.strip_prefix("--tier=") {
            let tier = match value {
                "auto" => rbpf::JitTier::Auto,
                "optimised" => rbpf::JitTier::Optimised,
                "fast" => rbpf::JitTier::Fast,
                "baseline" => rbpf::JitTier::Baseline,
                _ => return Err(format!("bad --tier value {value:?}\n{USAGE}")),
            };
            engines::set_jit_tier(tier);
        } else if let Some(value) = arg.strip_prefix("--dump-jit=") {
            dump_dir = Some(PathBuf::from(value));
        } else if let Some(value) = arg.strip_prefix("--iters=") {
            iters = value
                .parse()
                .map_err(|_| format!("bad --iters value {value:?}"))?;
        } else {
            match arg.as_str() {
                // cargo bench passes --bench; cargo test passes nothing.
                "--bench" => bench_flag = true,
                "--quick" => quick = true,
                "--full" => full = true,
                "--no-corpus" => corpus = false,
                "--wall-clock" => clock = Clock::Wall,
                "--help" | "-h" => return Err(USAGE.to_owned()),
                other if other.starts_with('-') => {
                    eprintln!("workloads: ignoring unknown option {other}");
                }
                name => filters.push(name.to_owned()),
            }
        }
    }
    let mode = match profile {
        Some(engine) => Mode::Profile(engine, iters),
        None if quick || !(bench_flag || full) => Mode::Quick,
        None => Mode::Full,
    };
    Ok(Options {
        mode,
        filters,
        bounds,
        dump_dir,
        corpus,
        clock,
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("workloads: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Samples of the corpus group: shorter and fewer than the other groups', since it times 25
/// cells (native and 12 variants in two engines) for each of some 60 sources.
const CORPUS_SAMPLE_TIME: Duration = Duration::from_millis(12);
/// Samples per cell in the corpus group.
const CORPUS_SAMPLES: usize = 5;

fn run() -> Result<(), String> {
    let options = parse_options()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (scale, corpus_scale) = match options.mode {
        Mode::Quick => (clang::Scale::Quick, corpus::BenchScale::Small),
        _ => (clang::Scale::Full, corpus::BenchScale::Full),
    };
    let workloads: Vec<_> = clang::all(scale)
        .into_iter()
        .chain(programs::hand_written())
        .filter(|w| options.selects(w.name))
        .collect();
    let corpus_sources: Vec<_> = if options.corpus {
        corpus::sources()?
            .into_iter()
            .filter(|s| options.selects(&s.filter_name()))
            .collect()
    } else {
        Vec::new()
    };
    if workloads.is_empty() && corpus_sources.is_empty() {
        return Err(format!("no workload matches {:?}", options.filters));
    }
    let mut units = vec![Unit::plain(root.join("benches/native.c"))];
    units.extend(
        clang::SOURCES
            .iter()
            .map(|stem| Unit::plain(clang::source_dir().join(format!("{stem}.c")))),
    );
    let lib = native::NativeLib::build(&units, "workloads")?;
    // Each corpus source gets a library of its own: linked into the workloads' one, the
    // corpus moved the workloads' code to other addresses, and native `c_strcmp_eq` ran 1.5
    // times faster (382 µs instead of 580 µs), a code-alignment effect that has nothing to do
    // with BPF; in one shared corpus library, each source's speed would depend on the others.
    let corpus_units: Vec<Unit> = corpus_sources
        .iter()
        .map(corpus::Source::native_unit)
        .collect();
    let corpus_libs = native::NativeLib::build_each(&corpus_units, "corpus")?;
    let clang_note = clang::rebuild_and_compare();
    eprintln!("workloads: {clang_note}");
    let compile_samples = match options.mode {
        Mode::Full => 7,
        _ => 1,
    };
    let mut prepared = Vec::new();
    for workload in workloads {
        let native = lib.function(&workload.native_symbol)?;
        let p = Prepared::new(
            workload,
            native,
            &options.bounds,
            compile_samples,
            options.dump_dir.as_deref(),
        )?;
        p.check()?;
        prepared.push(p);
    }
    let mut corpus_prepared = Vec::new();
    let mut corpus_skipped = Vec::new();
    for (source, corpus_lib) in corpus_sources.iter().zip(&corpus_libs) {
        eprintln!("workloads: preparing corpus {}", source.stem);
        match corpus::Prepared::new(
            source,
            corpus_lib,
            corpus_scale,
            compile_samples,
            options.dump_dir.as_deref(),
        )? {
            Ok(p) => corpus_prepared.push(p),
            Err(skipped) => {
                eprintln!(
                    "workloads: corpus {} not timed: {}",
                    skipped.stem, skipped.reason
                );
                corpus_skipped.push(skipped);
            }
        }
    }
    match options.mode {
        Mode::Profile(engine, iters) => {
            for p in &mut prepared {
                p.profile(engine, iters);
            }
            for p in &corpus_prepared {
                p.profile(engine, iters);
            }
            eprintln!("workloads: profile run done ({iters} runs each)");
            Ok(())
        }
        Mode::Quick | Mode::Full => {
            let (plan, corpus_plan) = if options.mode == Mode::Full {
                let plan = Plan {
                    sample_time: Duration::from_millis(120),
                    samples: 7,
                    fixed_iters: None,
                    clock: options.clock,
                };
                let corpus_plan = Plan {
                    sample_time: CORPUS_SAMPLE_TIME,
                    samples: CORPUS_SAMPLES,
                    ..plan
                };
                (plan, corpus_plan)
            } else {
                let plan = Plan {
                    sample_time: Duration::ZERO,
                    samples: 1,
                    fixed_iters: Some(3),
                    clock: options.clock,
                };
                (plan, plan)
            };
            let loadavg_before = loadavg();
            let mut rows = Vec::new();
            for p in &mut prepared {
                eprintln!("workloads: measuring {}", p.workload.name);
                rows.push(p.measure(plan));
            }
            let mut corpus_rows = Vec::new();
            for p in &corpus_prepared {
                eprintln!("workloads: measuring corpus {}", p.stem);
                corpus_rows.push(p.measure(corpus_plan));
            }
            let header = Header {
                compiler: &lib.description,
                clang_note: &clang_note,
                plan,
                corpus_plan,
                loadavg_before: &loadavg_before,
            };
            let corpus = CorpusRun {
                prepared: &corpus_prepared,
                rows: &corpus_rows,
                skipped: &corpus_skipped,
            };
            print!("{}", render(&options, &header, &prepared, &rows, &corpus));
            if options.mode == Mode::Quick {
                // Every workload and corpus variant got here only after all engines matched the
                // reference (native C for the corpus).
                let variants: usize = corpus_prepared.iter().map(|p| p.variant_count()).sum();
                println!(
                    "\nworkloads: {} passed, 0 failed; corpus: {} sources ({variants} variants) \
                     passed, 0 failed, {} not timed",
                    prepared.len(),
                    corpus_prepared.len(),
                    corpus_skipped.len()
                );
            }
            Ok(())
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn ns(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 1000.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn ratio(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}×")
    } else {
        format!("{value:.1}×")
    }
}

/// Selects the workloads of one table.
type GroupFilter = fn(&Prepared) -> bool;

/// What the report says about the run itself.
struct Header<'a> {
    compiler: &'a str,
    clang_note: &'a str,
    plan: Plan,
    corpus_plan: Plan,
    loadavg_before: &'a str,
}

/// The corpus group's results.
struct CorpusRun<'a> {
    prepared: &'a [corpus::Prepared],
    rows: &'a [corpus::Row],
    skipped: &'a [corpus::Skipped],
}

/// The ratios of one table, for geomeans and targets.
#[derive(Default)]
struct Ratios<'a> {
    interp: Vec<(&'a str, f64)>,
    /// One list per bounds mode.
    jit: Vec<Vec<(&'a str, f64)>>,
    max_compile_us: f64,
}

fn values(v: &[(&str, f64)]) -> Vec<f64> {
    v.iter().map(|x| x.1).collect()
}

fn render(
    options: &Options,
    header: &Header<'_>,
    prepared: &[Prepared],
    rows: &[Row],
    corpus: &CorpusRun<'_>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## librbpf vs native C\n");
    if options.mode == Mode::Quick {
        let _ = writeln!(
            out,
            "**Quick mode: small inputs, each workload ran only a few times; the numbers below \
             say nothing about speed.** Use `cargo bench --bench workloads` to measure.\n"
        );
    }
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        out,
        "CPU: {} ({threads} threads), load average {} before / {} after. Native: {}. BPF: \
         {}. JIT: `JitMode::Basic`, entry point called directly. Each cell: median of {} \
         samples of ~{} ms (the corpus: {} of ~{} ms), engines interleaved; a sample's time is \
         the {}.\n",
        cpu_model(),
        header.loadavg_before,
        loadavg(),
        header.compiler,
        header.clang_note,
        header.plan.samples,
        header.plan.sample_time.as_millis(),
        header.corpus_plan.samples,
        header.corpus_plan.sample_time.as_millis(),
        header.plan.clock.describe(),
    );
    let groups: [(&str, GroupFilter); 2] = [
        ("Clang-built C workloads (`benches/c/`)", |p| {
            matches!(p.workload.code, programs::Code::Clang(_))
        }),
        (
            "Hand-written assembly workloads (`benches/workloads/programs.rs`)",
            |p| matches!(p.workload.code, programs::Code::Asm(_)),
        ),
    ];
    let mut clang = None;
    for (title, belongs) in groups {
        let members: Vec<(&Prepared, &Row)> = prepared
            .iter()
            .zip(rows)
            .filter(|(p, _)| belongs(p))
            .collect();
        if members.is_empty() {
            continue;
        }
        let ratios = table(&mut out, title, options, &members);
        if title.starts_with("Clang") {
            clang = Some((ratios, members));
        }
    }
    let corpus_figures = corpus_table(&mut out, corpus);
    if !prepared.is_empty() {
        let _ = writeln!(out, "Workloads:\n");
    }
    for p in prepared {
        let _ = writeln!(
            out,
            "- `{}`: {} ({} BPF instructions, {} executed per run, {} bytes of memory)",
            p.workload.name,
            p.workload.description,
            p.insn_count,
            p.executed,
            p.workload.mem.len()
        );
    }
    // The slowest of every compile of the run outside the corpus by `time`: (µs, workload,
    // bounds checks).
    let slowest = |time: fn(&engines::JitRow) -> f64| {
        prepared
            .iter()
            .zip(rows)
            .flat_map(|(p, row)| {
                row.per_bounds
                    .iter()
                    .zip(&options.bounds)
                    .map(move |(j, &bounds)| (time(j), p.workload.name, bounds))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    let slowest_workload_compile = slowest(|j| j.compile_us);
    let slowest_workload_final_code = slowest(|j| j.final_code_us);
    out.push_str(&summary(
        options,
        clang.as_ref().map(|(r, m)| (r, m.as_slice())),
        corpus_figures.as_ref(),
        [slowest_workload_compile, slowest_workload_final_code],
    ));
    out
}

/// Writes one table (one line per workload; the JIT once per bounds mode) and returns its
/// ratios.
fn table<'a>(
    out: &mut String,
    title: &str,
    options: &Options,
    members: &[(&'a Prepared, &Row)],
) -> Ratios<'a> {
    let mode_name = |bounds: bool| if bounds { "checks on" } else { "checks off" };
    let _ = writeln!(out, "### {title}\n");
    let mut head = String::from("| workload | native ns | interp ns | ns/insn | interp/native |");
    let mut rule = String::from("|---|--:|--:|--:|--:|");
    for &bounds in &options.bounds {
        let m = mode_name(bounds);
        let _ = write!(head, " JIT {m} ns | JIT {m}/native | compile µs {m} |");
        rule.push_str("--:|--:|--:|");
    }
    head.push_str(" JIT bytes |");
    rule.push_str("--:|");
    let _ = writeln!(out, "{head}\n{rule}");
    let mut ratios = Ratios {
        jit: vec![Vec::new(); options.bounds.len()],
        ..Ratios::default()
    };
    let mut worst_spread: f64 = 0.0;
    for (p, row) in members {
        let name = p.workload.name;
        let interp_ratio = row.interp.median / row.native.median;
        ratios.interp.push((name, interp_ratio));
        worst_spread = worst_spread
            .max(row.interp.spread())
            .max(row.native.spread());
        let per_insn = row.interp.median / p.executed.max(1) as f64;
        let _ = write!(
            out,
            "| {name} | {} | {} | {per_insn:.2} | {} |",
            ns(row.native.median),
            ns(row.interp.median),
            ratio(interp_ratio)
        );
        for (b, jit) in row.per_bounds.iter().enumerate() {
            let jit_ratio = jit.jit.median / row.native.median;
            ratios.jit[b].push((name, jit_ratio));
            ratios.max_compile_us = ratios.max_compile_us.max(jit.compile_us);
            worst_spread = worst_spread.max(jit.jit.spread());
            let _ = write!(
                out,
                " {} | {} | {:.0} |",
                ns(jit.jit.median),
                ratio(jit_ratio),
                jit.compile_us
            );
        }
        let bytes: Vec<String> = row
            .per_bounds
            .iter()
            .map(|j| {
                j.jit_bytes
                    .map_or_else(|| "?".to_owned(), |n| n.to_string())
            })
            .collect();
        let _ = writeln!(out, " {} |", bytes.join(" / "));
    }
    let _ = write!(
        out,
        "| **geomean** | | | | **{}** |",
        ratio(geomean(&values(&ratios.interp)))
    );
    for jit in &ratios.jit {
        let _ = write!(out, " | **{}** | |", ratio(geomean(&values(jit))));
    }
    let _ = writeln!(out, " |");
    let _ = writeln!(
        out,
        "\nWorst sample spread (max−min)/median in this table: {:.0}%. Slowest JIT compile: \
         {:.0} µs.\n",
        worst_spread * 100.0,
        ratios.max_compile_us
    );
    for (p, row) in members {
        if let Some(c_exec) = row.c_exec {
            let _ = writeln!(
                out,
                "Entry cost of `{}`: `ubpf_exec` {} ns, `Vm::execute` {} ns, JIT call {} ns, \
                 native call {} ns.\n",
                p.workload.name,
                ns(c_exec.median),
                ns(row.interp.median),
                ns(row.per_bounds[0].jit.median),
                ns(row.native.median)
            );
        }
    }
    ratios
}

/// The corpus group's figures over all its variants.
struct CorpusFigures {
    sources: usize,
    variants: usize,
    jit_geomean: f64,
    /// The worst JIT/native ratio and its variant.
    jit_worst: (f64, String),
    interp_geomean: f64,
    /// The slowest compile (µs) and its variant.
    slowest_compile: (f64, String),
    /// The slowest wall-clock time until the final code runs (µs) and its variant.
    slowest_final_code: (f64, String),
}

/// The largest ratio of `values` and its label.
fn worst<'a>(values: impl Iterator<Item = (f64, &'a str)>) -> Option<(f64, &'a str)> {
    values.max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Writes the corpus table (one line per source: geomean and worst variant of the JIT and
/// the interpreter against native C) and returns the figures over all variants.
fn corpus_table(out: &mut String, corpus: &CorpusRun<'_>) -> Option<CorpusFigures> {
    if corpus.prepared.is_empty() && corpus.skipped.is_empty() {
        return None;
    }
    let _ = writeln!(
        out,
        "### Variant corpus (`tests/corpus/`): every clang-built variant against native C, \
         bounds checks on\n"
    );
    let _ = writeln!(
        out,
        "One line per source: the native run, then over its variants (clang -O1/-O2/-O3/-Os \
         × -mcpu=v1..v4) the geometric mean and the worst of each engine's ratio to native, \
         and the slowest JIT compile.\n"
    );
    let _ = writeln!(
        out,
        "| source | variants | native ns | JIT/native geomean | JIT/native worst | \
         interp/native geomean | interp/native worst | slowest compile µs | input |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|---|");
    let mut all_jit = Vec::new();
    let mut all_interp = Vec::new();
    let mut compiles = Vec::new();
    let mut final_codes = Vec::new();
    let mut spreads = Vec::new();
    for (p, row) in corpus.prepared.iter().zip(corpus.rows) {
        let native = row.native.median;
        spreads.push(row.native.spread());
        let mut jit = Vec::new();
        let mut interp = Vec::new();
        for i in 0..p.variant_count() {
            let name = format!("{}-{}", p.stem, p.label(i));
            jit.push((row.jit[i].median / native, p.label(i)));
            interp.push((row.interp[i].median / native, p.label(i)));
            all_jit.push((row.jit[i].median / native, name.clone()));
            all_interp.push(row.interp[i].median / native);
            final_codes.push((p.final_code_us(i), name.clone()));
            compiles.push((p.compile_us(i), name));
            spreads.push(row.jit[i].spread());
            spreads.push(row.interp[i].spread());
        }
        let geo = |v: &[(f64, &str)]| geomean(&v.iter().map(|x| x.0).collect::<Vec<_>>());
        let show_worst = |v: &[(f64, &str)]| {
            worst(v.iter().map(|x| (x.0, x.1)))
                .map_or_else(String::new, |(r, l)| format!("{} ({l})", ratio(r)))
        };
        let slowest = (0..p.variant_count())
            .map(|i| p.compile_us(i))
            .fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {slowest:.0} | {} |",
            p.stem,
            p.variant_count(),
            ns(native),
            ratio(geo(&jit)),
            show_worst(&jit),
            ratio(geo(&interp)),
            show_worst(&interp),
            p.input_description
        );
    }
    let jit_geomean = geomean(&all_jit.iter().map(|x| x.0).collect::<Vec<_>>());
    let interp_geomean = geomean(&all_interp);
    let jit_worst = all_jit
        .iter()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .cloned()
        .unwrap_or((f64::NAN, String::new()));
    let slowest_compile = compiles
        .iter()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .cloned()
        .unwrap_or((f64::NAN, String::new()));
    let _ = writeln!(
        out,
        "| **all variants** | {} | | **{}** | **{}** ({}) | **{}** | | {:.0} | |",
        all_jit.len(),
        ratio(jit_geomean),
        ratio(jit_worst.0),
        jit_worst.1,
        ratio(interp_geomean),
        slowest_compile.0
    );
    let spread = timing::stats(&spreads);
    let _ = writeln!(
        out,
        "\nSample spread (max−min)/median of the cells in this table: median {:.0}%, worst \
         {:.0}%.\n",
        spread.median * 100.0,
        spread.max * 100.0
    );
    for s in corpus.skipped {
        let _ = writeln!(out, "Not timed: `{}`: {}.\n", s.stem, s.reason);
    }
    Some(CorpusFigures {
        sources: corpus.prepared.len(),
        variants: all_jit.len(),
        jit_geomean,
        jit_worst,
        interp_geomean,
        slowest_compile,
        slowest_final_code: final_codes
            .into_iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::NAN, String::new())),
    })
}

/// The performance issue's targets, the corpus and the clang-built workloads side by side
/// (bounds checks on); stated plainly, never asserted.
fn summary(
    options: &Options,
    clang: Option<(&Ratios<'_>, &[(&Prepared, &Row)])>,
    corpus: Option<&CorpusFigures>,
    [slowest_workload_compile, slowest_workload_final_code]: [Option<(f64, &str, bool)>; 2],
) -> String {
    let verdict = |value: Option<f64>, goal: f64| match value {
        Some(v) if v.is_finite() => {
            if v <= goal {
                "met"
            } else {
                "not met"
            }
        }
        _ => "",
    };
    let none = "—".to_owned();
    // The clang-built group's JIT ratios with bounds checks on, if the run had them.
    let on = options.bounds.iter().position(|&b| b);
    let clang_jit = clang.and_then(|(r, _)| on.map(|i| &r.jit[i]));
    let empty_row = clang.and_then(|(_, members)| {
        members
            .iter()
            .find(|(_, row)| row.c_exec.is_some())
            .map(|(p, row)| (p.workload.name, *row))
    });
    let mut out = String::from("\n## Summary: the performance issue's targets\n\n");
    if options.mode == Mode::Quick {
        out.push_str("**Quick mode: these figures say nothing about speed.**\n\n");
    }
    let _ = writeln!(
        out,
        "Bounds checks on; ratios to native C (`$CC -O2`, same source). Reported, never \
         asserted. The corpus: every variant of {} sources ({} programs); the clang-built \
         workloads: `benches/c/` ({} programs). The compile target at 65,535 instructions \
         is measured by `cargo bench --bench compile_growth`.\n",
        corpus.map_or(0, |c| c.sources),
        corpus.map_or(0, |c| c.variants),
        clang.map_or(0, |(_, m)| m.len()),
    );
    out.push_str(
        "| figure | target | variant corpus | met? | clang-built workloads | met? |\n\
         |---|--:|--:|---|--:|---|\n",
    );
    let mut line = |figure: &str,
                    target: &str,
                    goal: f64,
                    c: (Option<f64>, String),
                    w: (Option<f64>, String)| {
        let _ = writeln!(
            out,
            "| {figure} | {target} | {} | {} | {} | {} |",
            c.1,
            verdict(c.0, goal),
            w.1,
            verdict(w.0, goal)
        );
    };
    let clang_geo = clang_jit.map(|j| geomean(&values(j)));
    line(
        "JIT/native geomean",
        "≤ 1.3×",
        1.3,
        corpus.map_or((None, none.clone()), |c| {
            (Some(c.jit_geomean), ratio(c.jit_geomean))
        }),
        clang_geo.map_or((None, none.clone()), |g| (Some(g), ratio(g))),
    );
    let clang_worst = clang_jit.and_then(|j| worst(j.iter().map(|x| (x.1, x.0))));
    line(
        "JIT/native, worst program",
        "≤ 2×",
        2.0,
        corpus.map_or((None, none.clone()), |c| {
            (
                Some(c.jit_worst.0),
                format!("{} (`{}`)", ratio(c.jit_worst.0), c.jit_worst.1),
            )
        }),
        clang_worst.map_or((None, none.clone()), |(r, name)| {
            (Some(r), format!("{} (`{name}`)", ratio(r)))
        }),
    );
    let clang_interp = clang.map(|(r, _)| geomean(&values(&r.interp)));
    line(
        "interpreter/native geomean",
        "≤ 25×",
        25.0,
        corpus.map_or((None, none.clone()), |c| {
            (Some(c.interp_geomean), ratio(c.interp_geomean))
        }),
        clang_interp.map_or((None, none.clone()), |g| (Some(g), ratio(g))),
    );
    line(
        "`ubpf_exec` of an empty program",
        "≤ 20 ns",
        20.0,
        (None, none.clone()),
        empty_row
            .and_then(|(name, row)| row.c_exec.map(|c| (name, c.median)))
            .map_or((None, none.clone()), |(name, t)| {
                (Some(t), format!("{} ns (`{name}`)", ns(t)))
            }),
    );
    line(
        "JIT call of an empty program",
        "≤ 2.2 ns",
        2.2,
        (None, none.clone()),
        empty_row
            .and_then(|(name, row)| on.map(|i| (name, row.per_bounds[i].jit.median)))
            .map_or((None, none.clone()), |(name, t)| {
                (Some(t), format!("{} ns (`{name}`)", ns(t)))
            }),
    );
    line(
        "slowest compile (all workloads: both groups, every bounds mode)",
        "≤ 300 µs",
        300.0,
        corpus.map_or((None, none.clone()), |c| {
            (
                Some(c.slowest_compile.0),
                format!("{:.0} µs (`{}`)", c.slowest_compile.0, c.slowest_compile.1),
            )
        }),
        slowest_workload_compile.map_or((None, none.clone()), |(us, name, bounds)| {
            let checks = if bounds { "on" } else { "off" };
            (Some(us), format!("{us:.0} µs (`{name}`, checks {checks})"))
        }),
    );
    let _ = writeln!(
        out,
        "\nNot a target: the slowest wall-clock time from `compile` until the optimised code \
         runs (later than the compile for programs that tier up in the background): {} on \
         the corpus, {} on the clang-built workloads.",
        corpus.map_or(none.clone(), |c| format!(
            "{:.0} µs (`{}`)",
            c.slowest_final_code.0, c.slowest_final_code.1
        )),
        slowest_workload_final_code.map_or(none.clone(), |(us, name, _)| format!(
            "{us:.0} µs (`{name}`)"
        )),
    );
    out
}
