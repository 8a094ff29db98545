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
//! ```text
//! cargo bench --bench workloads                  # full measurement (2-3 minutes)
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

mod clang;
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
use timing::{Plan, geomean};

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
[--profile=interp|jit|native|compile|ubpf_exec --iters=N] [--dump-jit=DIR] [NAME...]";

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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![root.join("benches/native.c")];
    sources.extend(
        clang::SOURCES
            .iter()
            .map(|stem| clang::source_dir().join(format!("{stem}.c"))),
    );
    let lib = native::NativeLib::build(&sources)?;
    let scale = match options.mode {
        Mode::Quick => clang::Scale::Quick,
        _ => clang::Scale::Full,
    };
    let clang_note = clang::rebuild_and_compare();
    eprintln!("workloads: {clang_note}");
    let workloads: Vec<_> = clang::all(scale)
        .into_iter()
        .chain(programs::hand_written())
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
            let header = Header {
                compiler: &lib.description,
                clang_note: &clang_note,
                plan,
                loadavg_before: &loadavg_before,
            };
            print!("{}", render(&options, &header, &prepared, &rows));
            if options.mode == Mode::Quick {
                // Every workload got here only after all engines matched the reference.
                println!("\nworkloads: {} passed, 0 failed", prepared.len());
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
    loadavg_before: &'a str,
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

fn render(options: &Options, header: &Header<'_>, prepared: &[Prepared], rows: &[Row]) -> String {
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
         samples of ~{} ms, engines interleaved.\n",
        cpu_model(),
        header.loadavg_before,
        loadavg(),
        header.compiler,
        header.clang_note,
        header.plan.samples,
        header.plan.sample_time.as_millis(),
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
    let mut clang_ratios = None;
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
            clang_ratios = Some((ratios, members));
        }
    }
    if let Some((ratios, members)) = clang_ratios
        && options.mode == Mode::Full
        && options.bounds.first() == Some(&true)
    {
        out.push_str(&targets(&ratios, &members));
    }
    let _ = writeln!(out, "Workloads:\n");
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

/// The performance issue's targets on the clang-built workloads with bounds checks on; stated
/// plainly, never asserted.
fn targets(ratios: &Ratios<'_>, members: &[(&Prepared, &Row)]) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let jit = &ratios.jit[0];
    let find = |name: &str| jit.iter().find(|x| x.0 == name).map(|x| x.1);
    let mut out = String::from("Targets (clang-built workloads, bounds checks on):\n\n");
    let jit_geo = geomean(&values(jit));
    let _ = writeln!(
        out,
        "- JIT/native geomean ≤ 1.5×: {} ({})",
        ratio(jit_geo),
        verdict(jit_geo <= 1.5)
    );
    for (name, goal) in [
        ("c_memcpy", 2.0),
        ("c_switch", 2.0),
        ("c_switch_value", 2.0),
        ("c_strcmp_eq", 1.2),
        ("c_strcmp_late", 1.2),
    ] {
        if let Some(r) = find(name) {
            let _ = writeln!(
                out,
                "- JIT `{name}`/native ≤ {goal}×: {} ({})",
                ratio(r),
                verdict(r <= goal)
            );
        }
    }
    let interp_geo = geomean(&values(&ratios.interp));
    let _ = writeln!(
        out,
        "- interpreter/native geomean ≤ 40×: {} ({})",
        ratio(interp_geo),
        verdict(interp_geo <= 40.0)
    );
    for (p, row) in members {
        if let Some(c_exec) = row.c_exec {
            let _ = writeln!(
                out,
                "- `ubpf_exec` of `{}` ≤ 60 ns: {} ns ({})",
                p.workload.name,
                ns(c_exec.median),
                verdict(c_exec.median <= 60.0)
            );
            let jit_call = row.per_bounds[0].jit.median;
            let _ = writeln!(
                out,
                "- JIT call of `{}` ≤ 2.5 ns: {} ns ({})",
                p.workload.name,
                ns(jit_call),
                verdict(jit_call <= 2.5)
            );
        }
    }
    let _ = writeln!(
        out,
        "- every compile ≤ 500 µs: slowest {:.0} µs ({})\n",
        ratios.max_compile_us,
        verdict(ratios.max_compile_us <= 500.0)
    );
    out
}
