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

/// Paired timing for a shared, noisy machine: alternates a batch of `a` and a batch of `b`
/// until `budget` has passed (and at least `min_rounds` pairs ran), so both see the same load,
/// and returns the median per-run time (ns) of each. A batch lasts about 20 ms, many scheduler
/// slices, so that a short run and a long run are preempted alike (timing single runs would
/// favour the shorter one, which often completes within one slice).
#[allow(dead_code)] // not every benchmark compares pairs
pub fn paired(
    budget: std::time::Duration,
    min_rounds: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64) {
    let batch = std::time::Duration::from_millis(20);
    let runs = |f: &mut dyn FnMut()| {
        let t = StdInstant::now();
        f();
        (batch.as_nanos() / t.elapsed().as_nanos().max(1)).max(1) as usize
    };
    let (na, nb) = (runs(&mut a), runs(&mut b));
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let start = StdInstant::now();
    while ta.len() < min_rounds || start.elapsed() < budget {
        let t = StdInstant::now();
        for _ in 0..na {
            a();
        }
        ta.push(t.elapsed().as_nanos() as f64 / na as f64);
        let t = StdInstant::now();
        for _ in 0..nb {
            b();
        }
        tb.push(t.elapsed().as_nanos() as f64 / nb as f64);
    }
    (median(&ta), median(&tb))
}
