//! Per-iteration timing shared by the benchmarks: criterion measures, and every sample is also
//! kept here so a benchmark can print medians and ratios against a baseline from the same run.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // benchmarks read the wall clock

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant as StdInstant;

/// Per-iteration times (ns) of every sample, per benchmark id.
pub static SAMPLES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// Times `f` under criterion and records each sample's per-iteration time under `id`.
pub fn timed(b: &mut criterion::Bencher<'_>, id: &str, mut f: impl FnMut()) {
    b.iter_custom(|iters| {
        let start = StdInstant::now();
        for _ in 0..iters {
            f();
        }
        let elapsed = start.elapsed();
        if let Ok(mut s) = SAMPLES.lock() {
            s.entry(id.to_string())
                .or_default()
                .push(elapsed.as_nanos() as f64 / iters as f64);
        }
        elapsed
    });
}

/// The median of `v` (NaN if empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
