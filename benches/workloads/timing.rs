//! Calibrated, interleaved timing: each cell (one engine on one workload) is a closure that
//! runs the workload a given number of times; cells of one workload are sampled in rounds so
//! that load changes on a shared machine hit all engines alike. A sample's time is the CPU
//! time of the bench thread by default ([`Clock::ThreadCpu`]), so that time the scheduler
//! gives other processes on a shared machine does not count; `--wall-clock` selects
//! wall-clock time.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// What a sample's time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// CPU time of the bench thread (`CLOCK_THREAD_CPUTIME_ID`): time spent descheduled
    /// while other processes run does not count.
    ThreadCpu,
    /// Wall-clock time (`Instant`).
    Wall,
}

impl Clock {
    /// The report's name of the clock.
    pub fn describe(self) -> &'static str {
        match self {
            Clock::ThreadCpu => "CPU time of the bench thread",
            Clock::Wall => "wall-clock time",
        }
    }
}

/// Runs a workload `iters` times and returns the time it took by the given clock.
pub type Batch<'a> = Box<dyn FnMut(u64, Clock) -> Duration + 'a>;

/// Wraps a single-run closure into a batch; the loop is monomorphised around `run`, so the
/// only per-run overhead is the loop itself (the same for every engine).
pub fn batch<'a, F: FnMut() -> u64 + 'a>(mut run: F) -> Batch<'a> {
    Box::new(move |iters, clock| match clock {
        Clock::Wall => {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(run());
            }
            start.elapsed()
        }
        Clock::ThreadCpu => {
            let start = thread_cpu_time();
            for _ in 0..iters {
                black_box(run());
            }
            thread_cpu_time().saturating_sub(start)
        }
    })
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Time one sample should take (calibrated per cell).
    pub sample_time: Duration,
    /// Samples per cell; the median is reported.
    pub samples: usize,
    /// Runs per sample when not calibrating (quick mode).
    pub fixed_iters: Option<u64>,
    /// What a sample's time is.
    pub clock: Clock,
}

/// Per-cell statistics in nanoseconds per run.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Median over samples.
    pub median: f64,
    /// Fastest sample.
    pub min: f64,
    /// Slowest sample.
    pub max: f64,
}

impl Stats {
    /// (max - min) / median: how noisy the cell was.
    pub fn spread(&self) -> f64 {
        if self.median > 0.0 {
            (self.max - self.min) / self.median
        } else {
            0.0
        }
    }
}

/// Finds how many runs make one sample last about `target`.
fn calibrate(cell: &mut Batch<'_>, target: Duration, clock: Clock) -> u64 {
    // Warm up lazily mapped pages, caches and branch predictors: one run, then the probes
    // below (16 runs of a slow cell would cost more than its samples).
    cell(1, clock);
    let probe = target / 8;
    let mut iters: u64 = 1;
    loop {
        let elapsed = cell(iters, clock);
        if elapsed >= probe || iters >= 1 << 40 {
            let per_run = elapsed.as_secs_f64() / iters as f64;
            return ((target.as_secs_f64() / per_run.max(1e-12)) as u64).max(1);
        }
        iters *= 2;
    }
}

/// Measures every cell, interleaving samples: round `i` takes sample `i` of each cell in turn.
pub fn measure(cells: &mut [Batch<'_>], plan: Plan) -> Vec<Stats> {
    let iters: Vec<u64> = cells
        .iter_mut()
        .map(|cell| match plan.fixed_iters {
            Some(n) => n,
            None => calibrate(cell, plan.sample_time, plan.clock),
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(plan.samples); cells.len()];
    for _ in 0..plan.samples {
        for ((cell, &n), out) in cells.iter_mut().zip(&iters).zip(&mut samples) {
            let elapsed = cell(n, plan.clock);
            out.push(elapsed.as_secs_f64() * 1e9 / n as f64);
        }
    }
    samples.into_iter().map(|s| stats(&s)).collect()
}

/// CPU time the calling thread has used so far. Compile times are measured with it: on a
/// shared machine, wall-clock time also counts whatever else the scheduler ran meanwhile,
/// which matters little for a median of runs but decides the slowest of hundreds of compiles.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median, min and max of `values` (which must not be empty).
pub fn stats(values: &[f64]) -> Stats {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Stats {
        median,
        min: sorted.first().copied().unwrap_or(f64::NAN),
        max: sorted.last().copied().unwrap_or(f64::NAN),
    }
}

/// Geometric mean of positive ratios (NaN if there are none).
pub fn geomean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    (values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp()
}
