//! `keyshard-sim`: runs seeds of the deterministic cluster simulator.
//!
//! ```text
//! keyshard-sim --seed 42 [--trace]            one run (the trace is printed with --trace)
//! keyshard-sim --seeds 0..200 [--threads 2]   a range, each world single-threaded
//! keyshard-sim --seeds 0..200 --check-determinism   every seed twice, trace hashes compared
//! keyshard-sim --choices FILE [--trace]       replay a `sim_world` fuzz input
//! ```
//! A failing run prints the command that replays it. The exit status is 1 if any seed failed.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use keyshard_sim::{run_seed, RunOptions, RunReport};

#[derive(Parser, Debug)]
#[command(
    name = "keyshard-sim",
    about = "keyshard's deterministic cluster simulator"
)]
struct Cli {
    /// Run one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Replay a `sim_world` fuzz input: the world's choices come from the file's bytes.
    #[arg(long, conflicts_with_all = ["seed", "seeds"])]
    choices: Option<std::path::PathBuf>,
    /// Run a range of seeds, `A..B` (B excluded).
    #[arg(long, value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// Run every seed twice and compare the trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Print the readable event log of a single run.
    #[arg(long)]
    trace: bool,
    /// Worker threads for a range (each world is single-threaded).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Print one line per seed.
    #[arg(long)]
    verbose: bool,
    /// How many nodes an attacker controls (replayed run starts, garbage; see
    /// `keyshard_sim::byzantine`). At most 1: the workload's smallest threshold is 2.
    #[arg(long, default_value_t = 0)]
    byzantine: u16,
    /// Switch on a deliberate core bug (test builds with the `bug-injection` feature only):
    /// `erase-old-when-staged` or `complete-dkg-early`.
    #[cfg(feature = "bug-injection")]
    #[arg(long)]
    inject_bug: Option<String>,
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("expected A..B, got {s:?}"))?;
    let a: u64 = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u64 = b.parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a >= b {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok(a..b)
}

struct Outcome {
    report: RunReport,
    determinism: Option<Result<(), String>>,
    wall_ms: u128,
}

fn options(cli: &Cli, seed: u64, trace: bool) -> Result<RunOptions, String> {
    let mut opts = match &cli.choices {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            keyshard_sim::fuzzing::options_for(&bytes)
        }
        None => RunOptions {
            seed,
            ..RunOptions::default()
        },
    };
    opts.trace = trace;
    if cli.byzantine > 1 {
        return Err(format!(
            "--byzantine {}: the workload creates keys with threshold 2, so at most 1 node may be \
             Byzantine (fewer than the smallest threshold)",
            cli.byzantine
        ));
    }
    opts.byzantine = cli.byzantine;
    #[cfg(feature = "bug-injection")]
    if let Some(name) = &cli.inject_bug {
        opts.bug = Some(keyshard_sim::world::parse_bug(name)?);
    }
    let _ = cli;
    Ok(opts)
}

fn one(cli: &Cli, seed: u64, trace: bool) -> Result<Outcome, String> {
    let opts = options(cli, seed, trace)?;
    let started = Instant::now();
    let report = run_seed(&opts);
    let determinism = cli.check_determinism.then(|| {
        let again = run_seed(&RunOptions {
            trace: false,
            ..opts.clone()
        });
        if again.trace_hash == report.trace_hash && again.violations == report.violations {
            Ok(())
        } else {
            Err(format!(
                "seed {seed}: two runs differ (trace hashes {} and {})",
                hex(&report.trace_hash),
                hex(&again.trace_hash)
            ))
        }
    });
    Ok(Outcome {
        report,
        determinism,
        wall_ms: started.elapsed().as_millis(),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn summary_line(o: &Outcome) -> String {
    let r = &o.report;
    format!(
        "seed {}: {} | {:.1}s virtual, {} steps, {} ms wall | requests {} (ok {}, err {}, timeouts {}), keys {}, signatures {}, reshares {}, membership {} | crashes {}, restarts {}, lost batches {}, partitions {}, one-way {}, clogged {}, msgs {} (lost {}, cut {}, dup {}) | versions checked {}, sigs verified {}, signing payloads checked {} | attacker replays {}, garbage {} | trace {}",
        r.seed,
        if r.violations.is_empty() { "ok" } else { "VIOLATION" },
        r.virtual_ms as f64 / 1000.0,
        r.steps,
        o.wall_ms,
        r.workload.requests,
        r.workload.ok,
        r.workload.errors,
        r.workload.timeouts,
        r.workload.keys,
        r.workload.signatures,
        r.workload.reshares,
        r.workload.membership,
        r.world.crashes,
        r.world.restarts,
        r.world.lost_batches,
        r.world.partitions,
        r.world.oneway,
        r.world.clogged,
        r.net.sent,
        r.net.lost,
        r.net.cut,
        r.net.duplicated,
        r.checks.versions,
        r.checks.signatures,
        r.world.nonce_payloads,
        r.world.replays,
        r.world.garbage,
        &hex(&r.trace_hash)[..16],
    )
}

fn report_failure(o: &Outcome, cli: &Cli) -> Vec<String> {
    let r = &o.report;
    let mut lines = Vec::new();
    for v in &r.violations {
        lines.push(format!(
            "VIOLATION seed {} at {} ms [{}]: {}",
            r.seed, v.at, v.checker, v.detail
        ));
    }
    if let Some(Err(e)) = &o.determinism {
        lines.push(format!("NONDETERMINISM {e}"));
    }
    if !lines.is_empty() {
        lines.push(format!("  knobs: {}", r.params));
        #[allow(unused_mut)]
        let mut cmd = r.replay_command();
        if cli.byzantine > 0 {
            cmd.push_str(&format!(" --byzantine {}", cli.byzantine));
        }
        #[cfg(feature = "bug-injection")]
        if let Some(b) = &cli.inject_bug {
            cmd.push_str(&format!(" --inject-bug {b}"));
        }
        let _ = cli;
        lines.push(format!("  replay: {cmd}"));
    }
    lines
}

fn main() {
    let cli = Cli::parse();
    if let Some(seed) = cli.seed.or(cli.choices.as_ref().map(|_| 0)) {
        let o = match one(&cli, seed, cli.trace) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("keyshard-sim: {e}");
                std::process::exit(2);
            }
        };
        for line in &o.report.trace {
            println!("{line}");
        }
        println!("{}", summary_line(&o));
        println!("  knobs: {}", o.report.params);
        let failure = report_failure(&o, &cli);
        for l in &failure {
            println!("{l}");
        }
        std::process::exit(i32::from(!failure.is_empty()));
    }
    let Some(range) = cli.seeds.clone() else {
        eprintln!("keyshard-sim: give --seed N or --seeds A..B");
        std::process::exit(2);
    };
    if let Err(e) = options(&cli, 0, false) {
        eprintln!("keyshard-sim: {e}");
        std::process::exit(2);
    }
    let started = Instant::now();
    let next = AtomicU64::new(range.start);
    let results: Mutex<Vec<(u64, Vec<String>, String)>> = Mutex::new(Vec::new());
    let totals = Mutex::new(Totals::default());
    std::thread::scope(|s| {
        for _ in 0..cli.threads.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= range.end {
                    return;
                }
                let o = one(&cli, seed, false).expect("options were checked");
                let failure = report_failure(&o, &cli);
                let line = summary_line(&o);
                if cli.verbose || !failure.is_empty() {
                    println!("{line}");
                    for l in &failure {
                        println!("{l}");
                    }
                }
                totals.lock().expect("no panics holding it").add(&o);
                results
                    .lock()
                    .expect("no panics holding it")
                    .push((seed, failure, line));
            });
        }
    });
    let mut results = results.into_inner().expect("threads joined");
    results.sort_by_key(|r| r.0);
    let failed: Vec<u64> = results
        .iter()
        .filter(|r| !r.1.is_empty())
        .map(|r| r.0)
        .collect();
    let t = totals.into_inner().expect("threads joined");
    let n = results.len() as u64;
    println!(
        "{} seeds ({}..{}) in {:.1}s wall ({} threads{}): {} failed {:?}",
        n,
        range.start,
        range.end,
        started.elapsed().as_secs_f64(),
        cli.threads.max(1),
        if cli.check_determinism {
            ", each run twice"
        } else {
            ""
        },
        failed.len(),
        failed
    );
    println!(
        "per seed (mean): {:.0} ms wall, {:.0} s virtual, {:.0} steps, {:.1} requests ({:.1} ok), {:.1} signatures, {:.1} keys, {:.1} reshares, {:.2} membership changes, {:.2} crashes, {:.2} partitions, {:.2} one-way cuts, {:.2} clogged links, {:.0} messages ({:.0} lost, {:.0} duplicated)",
        t.wall_ms as f64 / n as f64,
        t.virtual_ms as f64 / n as f64 / 1000.0,
        t.steps as f64 / n as f64,
        t.requests as f64 / n as f64,
        t.ok as f64 / n as f64,
        t.signatures as f64 / n as f64,
        t.keys as f64 / n as f64,
        t.reshares as f64 / n as f64,
        t.membership as f64 / n as f64,
        t.crashes as f64 / n as f64,
        t.partitions as f64 / n as f64,
        t.oneway as f64 / n as f64,
        t.clogged as f64 / n as f64,
        t.messages as f64 / n as f64,
        t.lost as f64 / n as f64,
        t.dup as f64 / n as f64,
    );
    std::process::exit(i32::from(!failed.is_empty()));
}

#[derive(Default)]
struct Totals {
    wall_ms: u128,
    virtual_ms: u64,
    steps: u64,
    requests: u64,
    ok: u64,
    signatures: u64,
    keys: u64,
    reshares: u64,
    membership: u64,
    crashes: u64,
    partitions: u64,
    oneway: u64,
    clogged: u64,
    messages: u64,
    lost: u64,
    dup: u64,
}

impl Totals {
    fn add(&mut self, o: &Outcome) {
        let r = &o.report;
        self.wall_ms += o.wall_ms;
        self.virtual_ms += r.virtual_ms;
        self.steps += r.steps;
        self.requests += r.workload.requests;
        self.ok += r.workload.ok;
        self.signatures += r.workload.signatures;
        self.keys += r.workload.keys;
        self.reshares += r.workload.reshares;
        self.membership += r.workload.membership;
        self.crashes += r.world.crashes;
        self.partitions += r.world.partitions;
        self.oneway += r.world.oneway;
        self.clogged += r.world.clogged;
        self.messages += r.net.sent;
        self.lost += r.net.lost;
        self.dup += r.net.duplicated;
    }
}
