//! How does JIT compile time grow with program size?
//!
//! Compiles each program shape of `tests/common/shapes.rs` at 1k, 4k, 16k and 65,535 slots
//! (the largest program the validator accepts) and prints a markdown table of milliseconds and
//! microseconds per slot, with the 64k/4k ratio of µs per slot (near-linear growth keeps it
//! close to 1). Times are for [`Vm::compile`] alone (not loading), the median of several
//! compiles, each on a fresh VM. The code-size limit is lifted for these columns, so every
//! program really compiles; the last columns give what happens at 65,535 slots with the
//! default 64 KiB limit (the time to refuse, or to compile when the code fits). Under the
//! table, two lines say whether issue 18's compile-time targets hold (never asserted): every
//! shape at 65,535 slots in at most 25 ms, and no size slower to compile than a larger one.
//!
//! ```text
//! cargo bench --bench compile_growth                    # the table (about half a minute)
//! cargo bench --bench compile_growth -- jeq diamond     # shapes whose name contains a word
//! cargo bench --bench compile_growth -- --sizes=4096,65535
//! cargo test  --bench compile_growth                    # smoke: one small compile per shape
//! # one shape compiled N times at one size, for `perf record` or callgrind:
//! cargo bench --bench compile_growth -- --profile=jeq-each --sizes=65535 --iters=5
//! ```

#[path = "../tests/common/shapes.rs"]
mod shapes;

use std::process::ExitCode;
use std::time::Duration;

use rbpf::isa::{self, Insn};
use rbpf::jit::JitMode;

/// CPU time consumed by this thread so far. Compiling is single-threaded, so on a machine
/// shared with other jobs this is the time the compile would take alone, where wall-clock
/// time would add however long the scheduler ran something else.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One compile of `insns` on a fresh VM: its CPU time and its outcome (code bytes, or error).
fn compile_once(
    insns: &[Insn],
    code_size: usize,
) -> Result<(Duration, Result<usize, String>), String> {
    let mut vm = shapes::loaded(insns, code_size)?;
    let start = thread_cpu_time();
    let result = vm.compile(JitMode::Basic);
    let elapsed = thread_cpu_time() - start;
    Ok((
        elapsed,
        result
            .map(|_| vm.jit_size().unwrap_or(0))
            .map_err(|e| e.to_string()),
    ))
}

/// Median of `runs` compiles (fewer for big programs, at least 3).
fn measure(insns: &[Insn], code_size: usize) -> Result<(Duration, Result<usize, String>), String> {
    let runs = if insns.len() > 20_000 { 3 } else { 7 };
    let mut times = Vec::with_capacity(runs);
    let mut outcome = Ok(0);
    for _ in 0..runs {
        let (t, o) = compile_once(insns, code_size)?;
        times.push(t);
        outcome = o;
    }
    times.sort();
    Ok((times[runs / 2], outcome))
}

/// Compiles and runs `insns` in both engines on fresh memory; the results must agree.
fn check(name: &str, insns: &[Insn]) -> Result<(), String> {
    let mut vm = shapes::loaded(insns, usize::MAX)?;
    let mut mem = vec![3u8; shapes::MEM_LEN];
    let interp = vm
        .execute(&mut mem)
        .map_err(|e| format!("{name}: interpreter: {e}"))?;
    vm.compile(JitMode::Basic)
        .map_err(|e| format!("{name}: compile: {e}"))?;
    let mut mem2 = vec![3u8; shapes::MEM_LEN];
    let jit = vm
        .execute_jit(&mut mem2)
        .map_err(|e| format!("{name}: JIT: {e}"))?;
    if interp != jit || mem != mem2 {
        return Err(format!(
            "{name}: interpreter gave {interp}, JIT {jit} (or memory differs)"
        ));
    }
    Ok(())
}

/// Issue 18's bound on compiling any program of 65,535 slots, in milliseconds.
const TARGET_LARGEST_MS: f64 = 25.0;

/// What the command line asked for.
struct Options {
    quick: bool,
    sizes: Vec<usize>,
    filters: Vec<String>,
    profile: Option<String>,
    iters: u32,
}

const USAGE: &str =
    "usage: compile_growth [--quick] [--sizes=N,N,..] [--profile=SHAPE --iters=N] [SHAPE...]";

fn parse_options() -> Result<Options, String> {
    let mut opts = Options {
        quick: std::env::var_os("RBPF_BENCH_QUICK").is_some_and(|v| v != "0"),
        sizes: vec![1024, 4096, 16384, 65535],
        filters: Vec::new(),
        profile: None,
        iters: 5,
    };
    let mut bench_flag = false;
    for arg in std::env::args().skip(1) {
        if let Some(v) = arg.strip_prefix("--sizes=") {
            opts.sizes = v
                .split(',')
                .map(|s| s.parse().map_err(|_| format!("bad size {s:?}\n{USAGE}")))
                .collect::<Result<_, _>>()?;
            if opts
                .sizes
                .iter()
                .any(|&s| !(8..isa::MAX_INSTS).contains(&s))
            {
                return Err(format!("sizes must be in 8..{}", isa::MAX_INSTS));
            }
        } else if let Some(v) = arg.strip_prefix("--profile=") {
            opts.profile = Some(v.to_owned());
        } else if let Some(v) = arg.strip_prefix("--iters=") {
            opts.iters = v.parse().map_err(|_| format!("bad --iters {v:?}"))?;
        } else if arg == "--quick" {
            opts.quick = true;
        } else if arg == "--bench" {
            bench_flag = true;
        } else if arg.starts_with('-') {
            return Err(format!("unknown option {arg:?}\n{USAGE}"));
        } else {
            opts.filters.push(arg);
        }
    }
    // `cargo test --bench` runs the binary without `--bench`: smoke mode.
    opts.quick |= !bench_flag && opts.profile.is_none();
    Ok(opts)
}

fn run(opts: &Options) -> Result<(), String> {
    let selected: Vec<&shapes::Shape> = shapes::ALL
        .iter()
        .filter(|s| {
            opts.filters.is_empty() || opts.filters.iter().any(|f| s.name.contains(f.as_str()))
        })
        .collect();
    if let Some(name) = &opts.profile {
        let shape = shapes::ALL
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("no shape {name:?}"))?;
        for &size in &opts.sizes {
            let insns = (shape.build)(size);
            for _ in 0..opts.iters {
                let (t, outcome) = compile_once(&insns, usize::MAX)?;
                println!(
                    "{} {size}: {:.2} ms {outcome:?}",
                    shape.name,
                    t.as_secs_f64() * 1e3
                );
            }
        }
        return Ok(());
    }
    if opts.quick {
        for shape in &selected {
            check(shape.name, &(shape.build)(512))?;
        }
        println!(
            "compile_growth smoke: {} shapes passed, 0 failed",
            selected.len()
        );
        return Ok(());
    }
    let sizes = &opts.sizes;
    let mut header = String::from("| shape |");
    let mut rule = String::from("|---|");
    for s in sizes {
        header += &format!(" {} ms |", s);
        rule += "--:|";
    }
    let last = sizes[sizes.len() - 1];
    let base = if sizes.contains(&4096) {
        4096
    } else {
        sizes[0]
    };
    header += &format!(
        " µs/slot at {base} | µs/slot at {last} | ratio | code bytes at {last} | default 64 KiB at {last} |"
    );
    rule += "--:|--:|--:|--:|---|";
    println!("{header}\n{rule}");
    // (shape, ms at the largest size) and shapes where a smaller size took longer.
    let mut slowest: Option<(&str, f64)> = None;
    let mut inversions = Vec::new();
    for shape in &selected {
        let mut row = format!("| {} |", shape.name);
        let mut per_slot = Vec::new();
        let mut bytes = 0;
        for &size in sizes {
            let insns = (shape.build)(size);
            let (t, outcome) = measure(&insns, usize::MAX)?;
            bytes = outcome.map_err(|e| format!("{} at {size}: {e}", shape.name))?;
            row += &format!(" {:.2} |", t.as_secs_f64() * 1e3);
            per_slot.push((size, t.as_secs_f64() * 1e6 / size as f64));
        }
        let ms: Vec<f64> = per_slot
            .iter()
            .map(|&(n, us)| us * n as f64 / 1e3)
            .collect();
        if last == isa::MAX_INSTS - 1
            && let Some(&t) = ms.last()
            && slowest.is_none_or(|(_, s)| t > s)
        {
            slowest = Some((shape.name, t));
        }
        for (i, pair) in ms.windows(2).enumerate() {
            if pair[0] > pair[1] {
                inversions.push(format!(
                    "{} ({} slots {:.2} ms > {} slots {:.2} ms)",
                    shape.name,
                    sizes[i],
                    pair[0],
                    sizes[i + 1],
                    pair[1]
                ));
            }
        }
        let at = |n: usize| per_slot.iter().find(|p| p.0 == n).map_or(0.0, |p| p.1);
        let (b, l) = (at(base), at(last));
        let insns = (shape.build)(last);
        let (t, outcome) = measure(&insns, 65536)?;
        let default = match outcome {
            Ok(_) => format!("compiled in {:.2} ms", t.as_secs_f64() * 1e3),
            Err(e) => format!("refused in {:.2} ms ({e})", t.as_secs_f64() * 1e3),
        };
        row += &format!(" {b:.2} | {l:.2} | {:.2} | {bytes} | {default} |", l / b);
        println!("{row}");
    }
    println!();
    // The targets of issue 18 (never asserted): any shape at 65,535 slots in at most 25 ms, and
    // no size slower to compile than a larger one.
    if let Some((name, ms)) = slowest {
        let verdict = if ms <= TARGET_LARGEST_MS {
            "met"
        } else {
            "not met"
        };
        println!(
            "Target: every shape at 65,535 slots <= {TARGET_LARGEST_MS} ms: {verdict} (slowest `{name}`, {ms:.2} ms)."
        );
    }
    if inversions.is_empty() {
        println!("Target: no size slower to compile than a larger one: met.");
    } else {
        println!(
            "Target: no size slower to compile than a larger one: not met: {}.",
            inversions.join(", ")
        );
    }
    println!();
    for shape in &selected {
        println!("- `{}`: {}", shape.name, shape.description);
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_options().and_then(|opts| run(&opts));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compile_growth: {e}");
            ExitCode::FAILURE
        }
    }
}
