//! How fast are librbpf's interpreter and JIT compared with native C?
//!
//! Runs seven workloads (see `programs.rs`) three ways in one process: librbpf's interpreter,
//! librbpf's JIT (`JitMode::Basic`, entry point called directly like a `ubpf_jit_fn`), and
//! native C compiled from `benches/native.c` with the system compiler at `-O2`. Before timing
//! anything, every engine's result (and final memory) is checked against a Rust reference; any
//! mismatch aborts the run. Prints markdown tables of ns per run and ratios to native, with
//! bounds checks on and off, plus JIT compile times.
//!
//! ```text
//! cargo bench --bench workloads                  # full measurement (~1 minute)
//! cargo bench --bench workloads -- --quick       # smoke check: a few runs each, no timing
//! cargo test  --bench workloads                  # the same smoke check (no --bench flag)
//! cargo bench --bench workloads -- primes switch # only workloads whose name contains a word
//! cargo bench --bench workloads -- --bounds=on   # only bounds checks on (or off, or both)
//! # profiling: run one engine N times with no timing, e.g. under callgrind
//! cargo bench --bench workloads -- --profile=interp --iters=200 primes
//! # write each program's text and JIT image into DIR (objdump -D -b binary -m i386:x86-64)
//! cargo bench --bench workloads -- --quick --dump-jit=/tmp/jit
//! ```
//! `RBPF_BENCH_QUICK=1` forces quick mode.

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

use engines::{Engine, Prepared};
use timing::{Plan, Stats, geomean};

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
}

const USAGE: &str = "usage: workloads [--quick|--full] [--bounds=on|off|both] \
[--profile=interp|jit|native|compile --iters=N] [--dump-jit=DIR] [NAME...]";

fn parse_options() -> Result<Options, String> {
    let mut bench_flag = false;
    let mut quick = std::env::var_os("RBPF_BENCH_QUICK").is_some_and(|v| v != "0");
    let mut full = false;
    let mut profile = None;
    let mut iters: u64 = 100;
    let mut bounds = vec![true, false];
    let mut filters = Vec::new();
    let mut dump_dir = None;
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

fn run() -> Result<(), String> {
    let options = parse_options()?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/native.c");
    let lib = native::NativeLib::build(&source)?;
    let workloads: Vec<_> = programs::all()
        .into_iter()
        .filter(|w| {
            options.filters.is_empty()
                || options.filters.iter().any(|f| w.name.contains(f.as_str()))
        })
        .collect();
    if workloads.is_empty() {
        return Err(format!("no workload matches {:?}", options.filters));
    }
    let compile_samples = match options.mode {
        Mode::Full => 7,
        _ => 1,
    };
    let mut prepared = Vec::new();
    for workload in workloads {
        let native = lib.function(workload.name)?;
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
    match options.mode {
        Mode::Profile(engine, iters) => {
            for p in &mut prepared {
                p.profile(engine, iters);
            }
            eprintln!("workloads: profile run done ({iters} runs each)");
            Ok(())
        }
        Mode::Quick | Mode::Full => {
            let plan = if options.mode == Mode::Full {
                Plan {
                    sample_time: Duration::from_millis(120),
                    samples: 7,
                    fixed_iters: None,
                }
            } else {
                Plan {
                    sample_time: Duration::ZERO,
                    samples: 1,
                    fixed_iters: Some(3),
                }
            };
            let loadavg_before = loadavg();
            let mut rows = Vec::new();
            for p in &mut prepared {
                eprintln!("workloads: measuring {}", p.workload.name);
                rows.push(p.measure(plan));
            }
            let report = render(
                &options,
                &lib.description,
                &prepared,
                &rows,
                plan,
                &loadavg_before,
            );
            print!("{report}");
            if options.mode == Mode::Quick {
                // Every workload got here only after all engines matched the reference.
                println!("\nworkloads: {} passed, 0 failed", prepared.len());
            }
            Ok(())
        }
    }
}

/// Timings of one workload: native, then (interpreter, JIT) per bounds mode.
pub struct Row {
    native: Stats,
    /// One entry per bounds mode, in `Options::bounds` order.
    per_bounds: Vec<BoundsRow>,
}

/// The BPF engines' numbers for one workload and bounds mode.
pub struct BoundsRow {
    interp: Stats,
    jit: Stats,
    compile_us: f64,
    jit_bytes: Option<usize>,
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

fn render(
    options: &Options,
    compiler: &str,
    prepared: &[Prepared],
    rows: &[Row],
    plan: Plan,
    loadavg_before: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## librbpf vs native C\n");
    if options.mode == Mode::Quick {
        let _ = writeln!(
            out,
            "**Quick mode: each workload ran only a few times; the numbers below say nothing \
             about speed.** Use `cargo bench --bench workloads` to measure.\n"
        );
    }
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        out,
        "CPU: {} ({threads} threads), load average {} before / {} after. Native: {compiler}. \
         JIT: `JitMode::Basic`, entry point called directly. Each cell: median of {} samples \
         of ~{} ms, engines interleaved.\n",
        cpu_model(),
        loadavg_before,
        loadavg(),
        plan.samples,
        plan.sample_time.as_millis(),
    );
    for (b, &bounds) in options.bounds.iter().enumerate() {
        let _ = writeln!(
            out,
            "### Bounds checks {}\n",
            if bounds { "ON (default)" } else { "OFF" }
        );
        let _ = writeln!(
            out,
            "| workload | interp ns | JIT ns | native ns | interp/native | JIT/native | JIT compile µs | JIT code bytes |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
        let mut interp_ratios = Vec::new();
        let mut jit_ratios = Vec::new();
        let mut worst_spread: f64 = 0.0;
        for (p, row) in prepared.iter().zip(rows) {
            let r = &row.per_bounds[b];
            let interp_ratio = r.interp.median / row.native.median;
            let jit_ratio = r.jit.median / row.native.median;
            interp_ratios.push((p.workload.name, interp_ratio));
            jit_ratios.push((p.workload.name, jit_ratio));
            worst_spread = worst_spread
                .max(r.interp.spread())
                .max(r.jit.spread())
                .max(row.native.spread());
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.0} | {} |",
                p.workload.name,
                ns(r.interp.median),
                ns(r.jit.median),
                ns(row.native.median),
                ratio(interp_ratio),
                ratio(jit_ratio),
                r.compile_us,
                r.jit_bytes
                    .map_or_else(|| "?".to_owned(), |n| n.to_string()),
            );
        }
        let all = |v: &[(&str, f64)]| geomean(&v.iter().map(|x| x.1).collect::<Vec<_>>());
        let no_empty = |v: &[(&str, f64)]| {
            geomean(
                &v.iter()
                    .filter(|x| x.0 != "empty")
                    .map(|x| x.1)
                    .collect::<Vec<_>>(),
            )
        };
        let _ = writeln!(
            out,
            "| **geomean** | | | | **{}** | **{}** | | |",
            ratio(all(&interp_ratios)),
            ratio(all(&jit_ratios))
        );
        let _ = writeln!(
            out,
            "| geomean without empty | | | | {} | {} | | |",
            ratio(no_empty(&interp_ratios)),
            ratio(no_empty(&jit_ratios))
        );
        let max_compile = rows
            .iter()
            .map(|r| r.per_bounds[b].compile_us)
            .fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "\nWorst sample spread (max−min)/median in this table: {:.0}%. Slowest JIT compile: \
             {max_compile:.0} µs.\n",
            worst_spread * 100.0
        );
        if bounds && options.mode == Mode::Full {
            out.push_str(&targets(&interp_ratios, &jit_ratios, max_compile));
        }
    }
    let _ = writeln!(out, "Workloads:\n");
    for p in prepared {
        let _ = writeln!(
            out,
            "- `{}`: {} ({} BPF instructions, {} bytes of memory)",
            p.workload.name,
            p.workload.description,
            p.insn_count,
            p.workload.mem.len()
        );
    }
    out
}

/// The team's targets (bounds checks on), stated plainly; never asserted.
fn targets(interp: &[(&str, f64)], jit: &[(&str, f64)], max_compile_us: f64) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let jit_geo = geomean(&jit.iter().map(|x| x.1).collect::<Vec<_>>());
    let interp_geo = geomean(&interp.iter().map(|x| x.1).collect::<Vec<_>>());
    let over3: Vec<&str> = jit
        .iter()
        .filter(|x| x.0 != "empty" && x.1 > 3.0)
        .map(|x| x.0)
        .collect();
    let mut out = String::from("Targets (bounds checks on):\n\n");
    let _ = writeln!(
        out,
        "- JIT geomean ≤ 1.5× native: {} ({})",
        ratio(jit_geo),
        verdict(jit_geo <= 1.5)
    );
    let _ = writeln!(
        out,
        "- no JIT workload but `empty` above 3×: {}",
        if over3.is_empty() {
            "met".to_owned()
        } else {
            format!("NOT met ({})", over3.join(", "))
        }
    );
    let _ = writeln!(
        out,
        "- interpreter geomean ≤ 30× native: {} ({})",
        ratio(interp_geo),
        verdict(interp_geo <= 30.0)
    );
    let _ = writeln!(
        out,
        "- every JIT compile ≤ 1 ms: slowest {max_compile_us:.0} µs ({})\n",
        verdict(max_compile_us <= 1000.0)
    );
    out
}
