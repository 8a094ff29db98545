//! Calibrated, interleaved timing: each cell (one engine on one workload) is a closure that
//! runs the workload a given number of times; cells of one workload are sampled in rounds so
//! that load changes on a shared machine hit all engines alike.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs a workload `iters` times and returns the elapsed wall time.
pub type Batch<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// Wraps a single-run closure into a batch; the loop is monomorphised around `run`, so the
/// only per-run overhead is the loop itself (the same for every engine).
pub fn batch<'a, F: FnMut() -> u64 + 'a>(mut run: F) -> Batch<'a> {
    Box::new(move |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(run());
        }
        start.elapsed()
    })
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Wall time one sample should take (calibrated per cell).
    pub sample_time: Duration,
    /// Samples per cell; the median is reported.
    pub samples: usize,
    /// Runs per sample when not calibrating (quick mode).
    pub fixed_iters: Option<u64>,
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
fn calibrate(cell: &mut Batch<'_>, target: Duration) -> u64 {
    // Warm up caches, branch predictors and lazily mapped pages.
    cell(16);
    let probe = target / 8;
    let mut iters: u64 = 1;
    loop {
        let elapsed = cell(iters);
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
            None => calibrate(cell, plan.sample_time),
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(plan.samples); cells.len()];
    for _ in 0..plan.samples {
        for ((cell, &n), out) in cells.iter_mut().zip(&iters).zip(&mut samples) {
            let elapsed = cell(n);
            out.push(elapsed.as_secs_f64() * 1e9 / n as f64);
        }
    }
    samples.into_iter().map(|s| stats(&s)).collect()
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
