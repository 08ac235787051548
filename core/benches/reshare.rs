//! Resharing: keyshard's reshare session (all parties in one process, `LocalNet` with FIFO
//! delivery) against the bare mathematics of the same reshare (`reshare::math::reshare_in_memory`:
//! dealing, checks and combination with no messages, no echo, no agreement), per ciphersuite.
//!
//! Run: `cargo bench -p keyshard-core --bench reshare`. Criterion prints its usual statistics;
//! at the end a markdown table of medians and the ratio session / bare is printed, which is what
//! `docs/benchmarks.md` (section "Resharing") records. A time is the CPU cost of all parties together
//! (every dealer's dealing and every new member's checks and combination).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration as StdDuration;

#[path = "common/timing.rs"]
mod timing;
use timing::{median, timed, SAMPLES};

use criterion::{criterion_group, Criterion};
use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::Ciphersuite;
use keyshard_core::frost::{DkgConfig, FrostDkg};
use keyshard_core::ids::ParticipantId;
use keyshard_core::persist::KeyVersion;
use keyshard_core::reshare::{math, FrostReshare, ReshareConfig, ReshareOutput};
use keyshard_core::rng::Seed;
use keyshard_core::scheme::FrostScheme;
use keyshard_core::session::local::{Delivery, LocalNet};
use keyshard_core::time::{Duration, Instant};

/// (t, n) -> (t', n'). New members overlap the old ones where the ids coincide (1..=n and
/// 1..=n'), so 3-of-5 -> 4-of-7 keeps members 1..5 and adds 6 and 7.
const CASES: [((u16, u16), (u16, u16)); 2] = [((3, 5), (4, 7)), ((7, 10), (7, 10))];
const TIMEOUT: Duration = Duration::from_secs(60);

fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).expect("non-zero")
}

fn ids(n: u16) -> BTreeSet<ParticipantId> {
    (1..=n).map(pid).collect()
}

/// Old keys from keyshard's own DKG session (so Taproot keys carry their tweak, as in production).
fn dkg<C: Ciphersuite>(
    t: u16,
    n: u16,
) -> (BTreeMap<ParticipantId, KeyPackage<C>>, PublicKeyPackage<C>) {
    let participants = ids(n);
    let root = Seed::from_u64(u64::from(t) << 16 | u64::from(n));
    let sessions: Vec<FrostDkg<C>> = participants
        .iter()
        .map(|me| {
            let cfg = DkgConfig {
                me: *me,
                participants: participants.clone(),
                threshold: t,
                round_timeout: TIMEOUT,
            };
            FrostDkg::new(
                cfg,
                &root.child(b"dkg", &me.get().to_be_bytes()),
                Instant::ZERO,
            )
            .expect("config")
        })
        .collect();
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    net.run(u64::MAX);
    let mut kps = BTreeMap::new();
    let mut pkp = None;
    for (id, r) in std::mem::take(&mut net.results) {
        let out = r.expect("dkg");
        pkp = Some(out.public_key_package);
        kps.insert(id, out.key_package);
    }
    (kps, pkp.expect("a participant"))
}

fn session_reshare<C: Ciphersuite>(
    kps: &BTreeMap<ParticipantId, KeyPackage<C>>,
    pkp: &PublicKeyPackage<C>,
    t2: u16,
    n2: u16,
    seed: u64,
) -> PublicKeyPackage<C> {
    let dealers: BTreeSet<ParticipantId> = kps.keys().copied().collect();
    let new_members = ids(n2);
    let root = Seed::from_u64(seed);
    let sessions: Vec<FrostReshare<C>> = dealers
        .union(&new_members)
        .map(|me| {
            let cfg = ReshareConfig {
                me: *me,
                from_version: KeyVersion(1),
                dealers: dealers.clone(),
                new_members: new_members.clone(),
                new_threshold: t2,
                round_timeout: TIMEOUT,
                run: Vec::new(),
            };
            FrostReshare::new(
                cfg,
                kps.get(me),
                pkp.clone(),
                &root.child(b"reshare", &me.get().to_be_bytes()),
                Instant::ZERO,
            )
            .expect("config")
        })
        .collect();
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    net.run(u64::MAX);
    let mut out = None;
    for r in std::mem::take(&mut net.results).into_values() {
        if let ReshareOutput::Member(m) = r.expect("reshare") {
            out = Some(m.public_key_package);
        }
    }
    out.expect("a new member")
}

fn suite<C: FrostScheme>(c: &mut Criterion) {
    let name = C::SCHEME.name();
    for ((t, n), (t2, n2)) in CASES {
        let (all_kps, pkp) = dkg::<C>(t, n);
        // Exactly t dealers: the minimum, and what a leader picks to keep the reshare cheap.
        let dealers: BTreeMap<ParticipantId, KeyPackage<C>> =
            all_kps.into_iter().take(usize::from(t)).collect();
        let size = format!("{t}-of-{n}->{t2}-of-{n2}");
        let mut g = c.benchmark_group(format!("reshare/{name}/{size}"));
        g.sample_size(10)
            .warm_up_time(StdDuration::from_millis(300))
            .measurement_time(StdDuration::from_secs(2));
        let mut seed = 0u64;
        g.bench_function("bare", |b| {
            timed(b, &format!("{name}/bare/{size}"), || {
                seed += 1;
                let mut rng = Seed::from_u64(seed).rng();
                let (_, new) = math::reshare_in_memory(&dealers, &pkp, &ids(n2), t2, &mut rng)
                    .expect("reshare");
                assert_eq!(new.verifying_key(), pkp.verifying_key());
            })
        });
        g.bench_function("session", |b| {
            timed(b, &format!("{name}/session/{size}"), || {
                seed += 1;
                let new = session_reshare(&dealers, &pkp, t2, n2, seed);
                assert_eq!(new.verifying_key(), pkp.verifying_key());
            })
        });
        g.finish();
    }
}

fn ms(ns: f64) -> String {
    format!("{:.2}", ns / 1e6)
}

fn print_table() {
    let Ok(samples) = SAMPLES.lock() else { return };
    let get = |k: &str| samples.get(k).map(|v| median(v));
    println!("\n## Resharing: bare mathematics vs keyshard's session (median ms, all parties in one thread)\n");
    println!("| scheme | reshare | dealers | bare | session | ratio |");
    println!("|---|---|---:|---:|---:|---:|");
    for scheme in keyshard_core::scheme::Scheme::ALL {
        for ((t, n), (t2, n2)) in CASES {
            let size = format!("{t}-of-{n}->{t2}-of-{n2}");
            let k = |what: &str| get(&format!("{}/{what}/{size}", scheme.name()));
            if let (Some(bare), Some(session)) = (k("bare"), k("session")) {
                println!(
                    "| {} | {t}-of-{n} -> {t2}-of-{n2} | {t} | {} | {} | {:.2}x |",
                    scheme.name(),
                    ms(bare),
                    ms(session),
                    session / bare
                );
            }
        }
    }
}

fn all(c: &mut Criterion) {
    suite::<frost_ed25519::Ed25519Sha512>(c);
    suite::<frost_secp256k1::Secp256K1Sha256>(c);
    suite::<frost_p256::P256Sha256>(c);
    suite::<frost_secp256k1_tr::Secp256K1Sha256TR>(c);
}

criterion_group!(benches, all);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_table();
}
