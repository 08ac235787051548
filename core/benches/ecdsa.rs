//! Threshold ECDSA (CGGMP24): key generation, aux info with pregenerated primes, presigning and
//! online signing, per curve at 2-of-3 and 3-of-5.
//!
//! Run: `cargo bench -p keyshard-core --features test-fixtures --bench ecdsa`. All parties run in
//! one process on one thread through `LocalNet`, so each time is the CPU cost of **all parties
//! together** (plus the load of a shared machine). Key generation and online signing are measured
//! by criterion (`sample_size(10)`); presigning and aux info take seconds to minutes per run, so
//! they are timed over a few runs outside criterion (`ECDSA_BENCH_RUNS`, default 2; aux info at
//! n = 3 and n = 5 with the fixture primes, once each, unless `ECDSA_BENCH_AUX=0`; safe-prime
//! generation, the cost aux info has without pregenerated primes, for `ECDSA_BENCH_PRIMES`
//! parties, default none). Online signing is compared with bare cggmp24
//! calls (partial signatures, `combine`, verify; no messages, no per-signer checks). A markdown
//! table of medians is printed at the end; `docs/benchmarks.md` records it.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // benchmarks read the clock and env

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant as StdInstant};

#[path = "common/timing.rs"]
mod timing;
use timing::{median, timed, SAMPLES};

use cggmp24::generic_ec::coords::{AlwaysHasAffineX, HasAffineX};
use cggmp24::generic_ec::{NonZero, Point};
use cggmp24::supported_curves::{Secp256k1, Secp256r1};
use criterion::{criterion_group, Criterion};
use keyshard_core::ecdsa::{
    fixtures, EcdsaAuxOutput, EcdsaCurve, EcdsaKey, EcdsaKeygen, EcdsaPresign, EcdsaPresignature,
    EcdsaSign, EcdsaSignConfig, KeygenConfig, SignersConfig,
};
use keyshard_core::ids::ParticipantId;
use keyshard_core::rng::Seed;
use keyshard_core::session::local::{Delivery, LocalNet};
use keyshard_core::time::{Duration, Instant};

const SIZES: [(u16, u16); 2] = [(2, 3), (3, 5)];
const TIMEOUT: Duration = Duration::from_secs(3600);
const MESSAGE: &[u8] = b"keyshard ecdsa benchmark message";

/// Slow phases timed outside criterion: (label, ms per run).
static SLOW: Mutex<Vec<(String, Vec<f64>)>> = Mutex::new(Vec::new());

const AUX_N3: [&str; 3] = [
    include_str!("../tests/fixtures/ecdsa/aux-n3-p1.json"),
    include_str!("../tests/fixtures/ecdsa/aux-n3-p2.json"),
    include_str!("../tests/fixtures/ecdsa/aux-n3-p3.json"),
];
const AUX_N5: [&str; 5] = [
    include_str!("../tests/fixtures/ecdsa/aux-n5-p1.json"),
    include_str!("../tests/fixtures/ecdsa/aux-n5-p2.json"),
    include_str!("../tests/fixtures/ecdsa/aux-n5-p3.json"),
    include_str!("../tests/fixtures/ecdsa/aux-n5-p4.json"),
    include_str!("../tests/fixtures/ecdsa/aux-n5-p5.json"),
];
const PRIMES: [&str; 5] = [
    include_str!("../tests/fixtures/ecdsa/primes-p1.json"),
    include_str!("../tests/fixtures/ecdsa/primes-p2.json"),
    include_str!("../tests/fixtures/ecdsa/primes-p3.json"),
    include_str!("../tests/fixtures/ecdsa/primes-p4.json"),
    include_str!("../tests/fixtures/ecdsa/primes-p5.json"),
];

fn ids(n: u16) -> BTreeSet<ParticipantId> {
    (1..=n).filter_map(ParticipantId::new).collect()
}

fn keygen<E: EcdsaCurve>(
    t: u16,
    n: u16,
    run: u64,
) -> Vec<keyshard_core::ecdsa::EcdsaKeygenOutput<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let sessions: Vec<EcdsaKeygen<E>> = ids(n)
        .into_iter()
        .map(|me| {
            let config = KeygenConfig {
                me,
                participants: ids(n),
                threshold: t,
                session_id: run.to_be_bytes().to_vec(),
                round_timeout: TIMEOUT,
            };
            let seed = Seed::from_u64(run).child(b"keygen", &me.get().to_be_bytes());
            EcdsaKeygen::<E>::new(config, &seed, Instant::ZERO).expect("config")
        })
        .collect();
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    net.run(1_000_000);
    std::mem::take(&mut net.results)
        .into_values()
        .map(|r| r.expect("keygen"))
        .collect()
}

fn keys<E: EcdsaCurve>(t: u16, n: u16) -> Vec<EcdsaKey<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let jsons: &[&str] = if n == 3 { &AUX_N3 } else { &AUX_N5 };
    let parties: Vec<ParticipantId> = ids(n).into_iter().collect();
    keygen::<E>(t, n, 1)
        .into_iter()
        .zip(jsons)
        .map(|(k, j)| {
            let aux = EcdsaAuxOutput::from_json(j, parties.clone()).expect("fixture");
            EcdsaKey::from_parts(k, aux).expect("key")
        })
        .collect()
}

fn presign<E: EcdsaCurve>(keys: &[EcdsaKey<E>], t: u16, run: u64) -> Vec<EcdsaPresignature<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let signers = ids(t);
    let sessions: Vec<EcdsaPresign<E>> = signers
        .iter()
        .map(|me| {
            let config = SignersConfig {
                me: *me,
                signers: signers.clone(),
                session_id: run.to_be_bytes().to_vec(),
                round_timeout: TIMEOUT,
            };
            let seed = Seed::from_u64(run).child(b"presign", &me.get().to_be_bytes());
            EcdsaPresign::<E>::new(
                config,
                &keys[usize::from(me.get() - 1)],
                &seed,
                Instant::ZERO,
            )
            .expect("config")
        })
        .collect();
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    net.run(1_000_000);
    std::mem::take(&mut net.results)
        .into_values()
        .map(|r| r.expect("presign"))
        .collect()
}

fn online_session<E: EcdsaCurve>(presigs: &[EcdsaPresignature<E>])
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let sessions: Vec<EcdsaSign<E>> = presigs
        .iter()
        .map(|p| {
            let config = EcdsaSignConfig {
                message: MESSAGE.to_vec(),
                round_timeout: TIMEOUT,
            };
            EcdsaSign::new(config, fixtures::duplicate_presignature(p), Instant::ZERO)
                .expect("config")
        })
        .collect();
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    net.run(1_000_000);
    assert!(net.results.values().all(|r| r.is_ok()));
}

fn runs() -> usize {
    std::env::var("ECDSA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn slow(label: String, mut f: impl FnMut(u64)) {
    let mut v = Vec::new();
    for run in 0..runs() {
        let start = StdInstant::now();
        f(100 + run as u64);
        v.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!("{label}: {v:.0?} ms");
    if let Ok(mut s) = SLOW.lock() {
        s.push((label, v));
    }
}

fn suite<E: EcdsaCurve>(c: &mut Criterion)
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let name = E::SCHEME.name();
    for (t, n) in SIZES {
        let size = format!("{t}-of-{n}");
        let keys = keys::<E>(t, n);
        let presigs = presign(&keys, t, 1);
        let mut g = c.benchmark_group(format!("ecdsa/{name}/{size}"));
        g.sample_size(10)
            .warm_up_time(StdDuration::from_millis(300))
            .measurement_time(StdDuration::from_secs(2));
        let mut run = 10u64;
        g.bench_function("keygen", |b| {
            timed(b, &format!("{name}/keygen/{size}"), || {
                run += 1;
                keygen::<E>(t, n, run);
            })
        });
        g.bench_function("online-bare", |b| {
            timed(b, &format!("{name}/online-bare/{size}"), || {
                let copies: Vec<_> = presigs
                    .iter()
                    .map(fixtures::duplicate_presignature)
                    .collect();
                fixtures::bare_online_sign(&copies, MESSAGE).expect("bare sign");
            })
        });
        g.bench_function("online-session", |b| {
            timed(b, &format!("{name}/online-session/{size}"), || {
                online_session(&presigs)
            })
        });
        g.finish();
        slow(format!("{name}/presign/{size}"), |run| {
            presign(&keys, t, run);
        });
    }
}

fn ms(ns: f64) -> String {
    format!("{:.2}", ns / 1e6)
}

fn print_table() {
    let Ok(samples) = SAMPLES.lock() else { return };
    let get = |k: &str| samples.get(k).map(|v| median(v));
    let Ok(slow) = SLOW.lock() else { return };
    let slow: BTreeMap<String, f64> = slow.iter().map(|(k, v)| (k.clone(), median(v))).collect();
    println!("\n## ECDSA (CGGMP24): median ms, all parties in one thread\n");
    println!(
        "| scheme | size | keygen | presign | online bare | online session | session / bare |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for scheme in keyshard_core::ecdsa::EcdsaScheme::ALL {
        for (t, n) in SIZES {
            let size = format!("{t}-of-{n}");
            let k = |what: &str| get(&format!("{}/{what}/{size}", scheme.name()));
            let (Some(kg), Some(bare), Some(sess)) =
                (k("keygen"), k("online-bare"), k("online-session"))
            else {
                continue;
            };
            let ps = slow
                .get(&format!("{}/presign/{size}", scheme.name()))
                .map_or("-".into(), |v| format!("{v:.0}"));
            println!(
                "| {} | {size} | {} | {ps} | {} | {} | {:.2}x |",
                scheme.name(),
                ms(kg),
                ms(bare),
                ms(sess),
                sess / bare
            );
        }
    }
    for n in [3, 5] {
        if let Some(v) = slow.get(&format!("aux/n={n}")) {
            println!("\naux info, n = {n}, primes given (all parties): {v:.0} ms");
        }
    }
    if let Some(v) = slow.get("primes/party") {
        println!("safe primes for one party (median): {v:.0} ms");
        for n in [3, 5] {
            if let Some(a) = slow.get(&format!("aux/n={n}")) {
                println!(
                    "aux info, n = {n}, without pregenerated primes: {:.0} ms of CPU \
                     (aux + n x primes), {:.0} ms wall if the parties search in parallel",
                    a + f64::from(n) * v,
                    a + v
                );
            }
        }
    }
}

fn all(c: &mut Criterion) {
    suite::<Secp256k1>(c);
    suite::<Secp256r1>(c);
    if std::env::var("ECDSA_BENCH_AUX").map_or(true, |v| v != "0") {
        // Aux info has no curve parameter: one run serves keys on both curves, so it is timed
        // per group size, not per curve.
        for n in [3usize, 5] {
            let primes: Vec<String> = PRIMES[..n].iter().map(|p| p.to_string()).collect();
            let start = StdInstant::now();
            fixtures::run_aux(&primes, format!("bench aux {n}").as_bytes()).expect("aux");
            let ms = start.elapsed().as_secs_f64() * 1e3;
            println!("aux/n={n}: {ms:.0} ms");
            if let Ok(mut s) = SLOW.lock() {
                s.push((format!("aux/n={n}"), vec![ms]));
            }
        }
    }
    // Without pregenerated primes, every party must first find its four 1536-bit safe primes
    // (minutes of CPU, and the time varies a lot with the seed): timed for
    // `ECDSA_BENCH_PRIMES` parties (default 0: skip).
    let parties: u16 = std::env::var("ECDSA_BENCH_PRIMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut times = Vec::new();
    for party in 0..parties {
        let start = StdInstant::now();
        fixtures::generate_primes_json(1000 + party);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        println!("safe primes, one party (seed {}): {ms:.0} ms", 1000 + party);
        times.push(ms);
    }
    if !times.is_empty() {
        if let Ok(mut s) = SLOW.lock() {
            s.push(("primes/party".into(), times));
        }
    }
}

criterion_group!(benches, all);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_table();
}
