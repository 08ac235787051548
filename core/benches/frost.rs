//! FROST: bare frost-core calls against keyshard's sessions, per ciphersuite and size, and the
//! per-party DKG finish at 67-of-100 (frost-core's part3 against `vss::finish_dkg`).
//!
//! Run: `cargo bench -p keyshard-core --bench frost`. Criterion prints its usual statistics;
//! at the end a markdown table of medians and ratios (session / bare) is printed, which is what
//! `docs/benchmarks.md` records. All parties run in one process on one thread, so a "DKG" time
//! is the CPU cost of all n parties together, and a "sign" time that of t signers plus the
//! coordinator's aggregation.
//!
//! Criterion measures bare and session one after the other, so on a shared machine a change of
//! load between the two skews their ratio. The "paired" columns measure signing again with bare
//! and session alternating in batches of about 20 ms (for 3 s per size, at least 10 pairs), so
//! that both see the same load.
//!
//! Instruction counts (repeatable where times are not): `frost --instr SCHEME WHAT T-of-N N`
//! runs one benchmark body N times without criterion, e.g. under
//! `valgrind --tool=callgrind --toggle-collect='*frost::measured*'` (see `docs/benchmarks.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration as StdDuration;

#[path = "common/timing.rs"]
mod timing;
use timing::{median, paired, timed, SAMPLES};

use criterion::{criterion_group, BenchmarkId, Criterion};
use frost_core::keys::dkg;
use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::{Ciphersuite, Identifier, SigningPackage};
use keyshard_core::frost::{
    vss, CommitmentWire, DkgConfig, FrostDkg, FrostSign, SignConfig, SignOutput,
};
use keyshard_core::ids::ParticipantId;
use keyshard_core::rng::Seed;
use keyshard_core::scheme::FrostScheme;
use keyshard_core::session::local::{Delivery, LocalNet};
use keyshard_core::time::{Duration, Instant};

const SIZES: [(u16, u16); 4] = [(2, 3), (3, 5), (7, 10), (14, 20)];
const TIMEOUT: Duration = Duration::from_secs(60);

fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).expect("non-zero")
}

fn bare_dkg<C: Ciphersuite>(
    t: u16,
    n: u16,
    seed: u64,
) -> (BTreeMap<Identifier<C>, KeyPackage<C>>, PublicKeyPackage<C>) {
    let mut rng = Seed::from_u64(seed).rng();
    let ids: Vec<Identifier<C>> = (1..=n)
        .map(|i| Identifier::try_from(i).expect("id"))
        .collect();
    let mut s1 = BTreeMap::new();
    let mut p1 = BTreeMap::new();
    for id in &ids {
        let (s, p) = dkg::part1::<C, _>(*id, n, t, &mut rng).expect("part1");
        s1.insert(*id, s);
        p1.insert(*id, p);
    }
    let mut s2 = BTreeMap::new();
    let mut p2: BTreeMap<Identifier<C>, BTreeMap<Identifier<C>, dkg::round2::Package<C>>> =
        BTreeMap::new();
    for id in &ids {
        let others = p1
            .iter()
            .filter(|(k, _)| *k != id)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let (s, out) = dkg::part2(s1[id].clone(), &others).expect("part2");
        s2.insert(*id, s);
        for (to, pkg) in out {
            p2.entry(to).or_default().insert(*id, pkg);
        }
    }
    let mut kps = BTreeMap::new();
    let mut pkp = None;
    for id in &ids {
        let others = p1
            .iter()
            .filter(|(k, _)| *k != id)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let (kp, pk) = dkg::part3(&s2[id], &others, &p2[id]).expect("part3");
        kps.insert(*id, kp);
        pkp = Some(pk);
    }
    (kps, pkp.expect("n >= 2"))
}

fn session_dkg<C: Ciphersuite>(t: u16, n: u16, seed: u64) -> usize {
    let ids: BTreeSet<ParticipantId> = (1..=n).map(pid).collect();
    let root = Seed::from_u64(seed);
    let sessions = ids.iter().map(|me| {
        let cfg = DkgConfig {
            me: *me,
            participants: ids.clone(),
            threshold: t,
            round_timeout: TIMEOUT,
        };
        FrostDkg::<C>::new(
            cfg,
            &root.child(b"dkg", &me.get().to_be_bytes()),
            Instant::ZERO,
        )
        .expect("config")
    });
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    net.run(u64::MAX);
    assert!(net.results.values().all(|r| r.is_ok()));
    net.results.len()
}

fn bare_sign<C: Ciphersuite>(
    kps: &BTreeMap<Identifier<C>, KeyPackage<C>>,
    pkp: &PublicKeyPackage<C>,
    t: u16,
    rng: &mut keyshard_core::rng::CoreRng,
) {
    let signers: Vec<_> = kps.iter().take(usize::from(t)).collect();
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for (id, kp) in &signers {
        let (n, c) = frost_core::round1::commit(kp.signing_share(), rng);
        nonces.insert(**id, n);
        commitments.insert(**id, c);
    }
    let package = SigningPackage::new(commitments, b"benchmark message");
    let shares = signers
        .iter()
        .map(|(id, kp)| {
            (
                **id,
                frost_core::round2::sign(&package, &nonces[*id], kp).expect("sign"),
            )
        })
        .collect();
    frost_core::aggregate(&package, &shares, pkp).expect("aggregate");
}

/// Bare frost-core signing plus the encoding every networked deployment needs: each signer's
/// commitments, the signing package and each share are serialized by the sender and
/// deserialized (and so validated: point decompression, subgroup checks) by the receiver.
fn bare_sign_wire<C: Ciphersuite>(
    kps: &BTreeMap<Identifier<C>, KeyPackage<C>>,
    pkp: &PublicKeyPackage<C>,
    t: u16,
    rng: &mut keyshard_core::rng::CoreRng,
) {
    let signers: Vec<_> = kps.iter().take(usize::from(t)).collect();
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for (id, kp) in &signers {
        let (n, c) = frost_core::round1::commit(kp.signing_share(), rng);
        nonces.insert(**id, n);
        let wire = c.serialize().expect("encode");
        commitments.insert(
            **id,
            frost_core::round1::SigningCommitments::deserialize(&wire).expect("decode"),
        );
    }
    let package = SigningPackage::new(commitments, b"benchmark message");
    let package_wire = package.serialize().expect("encode");
    let mut shares = BTreeMap::new();
    for (id, kp) in &signers {
        let received = SigningPackage::<C>::deserialize(&package_wire).expect("decode");
        let share = frost_core::round2::sign(&received, &nonces[*id], kp).expect("sign");
        let wire = share.serialize();
        shares.insert(
            **id,
            frost_core::round2::SignatureShare::deserialize(&wire).expect("decode"),
        );
    }
    frost_core::aggregate(&package, &shares, pkp).expect("aggregate");
}

fn session_sign<C: CommitmentWire>(
    kps: &BTreeMap<ParticipantId, KeyPackage<C>>,
    pkp: &PublicKeyPackage<C>,
    t: u16,
    seed: u64,
) {
    let signers: BTreeSet<ParticipantId> = kps.keys().copied().take(usize::from(t)).collect();
    let coordinator = *signers.iter().next().expect("t >= 2");
    let root = Seed::from_u64(seed);
    let sessions = signers.iter().map(|me| {
        let cfg = SignConfig {
            me: *me,
            coordinator,
            signers: signers.clone(),
            messages: vec![b"benchmark message".to_vec()],
            round_timeout: TIMEOUT,
        };
        let pk = (*me == coordinator).then(|| pkp.clone());
        FrostSign::new(
            cfg,
            Some(kps[me].clone()),
            pk,
            &root.child(b"sign", &me.get().to_be_bytes()),
            Instant::ZERO,
        )
        .expect("config")
    });
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    net.run(u64::MAX);
    assert!(matches!(
        net.results.get(&coordinator),
        Some(Ok(SignOutput::Signatures(_)))
    ));
}

fn suite<C: FrostScheme>(c: &mut Criterion) {
    let name = C::SCHEME.name();
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(StdDuration::from_millis(300))
        .measurement_time(StdDuration::from_secs(2));
    for (t, n) in SIZES {
        let size = format!("{t}-of-{n}");
        g.bench_with_input(
            BenchmarkId::new("dkg-bare", &size),
            &(t, n),
            |b, &(t, n)| {
                let mut seed = 0;
                timed(b, &format!("{name}/dkg-bare/{size}"), || {
                    seed += 1;
                    bare_dkg::<C>(t, n, seed);
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("dkg-session", &size),
            &(t, n),
            |b, &(t, n)| {
                let mut seed = 0;
                timed(b, &format!("{name}/dkg-session/{size}"), || {
                    seed += 1;
                    session_dkg::<C>(t, n, seed);
                })
            },
        );
        let (kps, pkp) = bare_dkg::<C>(t, n, 7);
        let by_pid: BTreeMap<ParticipantId, KeyPackage<C>> = (1..=n)
            .map(|i| (pid(i), kps[&Identifier::try_from(i).expect("id")].clone()))
            .collect();
        g.bench_with_input(BenchmarkId::new("sign-bare", &size), &t, |b, &t| {
            let mut rng = Seed::from_u64(1).rng();
            timed(b, &format!("{name}/sign-bare/{size}"), || {
                bare_sign::<C>(&kps, &pkp, t, &mut rng)
            })
        });
        g.bench_with_input(BenchmarkId::new("sign-bare-wire", &size), &t, |b, &t| {
            let mut rng = Seed::from_u64(1).rng();
            timed(b, &format!("{name}/sign-bare-wire/{size}"), || {
                bare_sign_wire::<C>(&kps, &pkp, t, &mut rng)
            })
        });
        g.bench_with_input(BenchmarkId::new("sign-session", &size), &t, |b, &t| {
            let mut seed = 0;
            timed(b, &format!("{name}/sign-session/{size}"), || {
                seed += 1;
                session_sign::<C>(&by_pid, &pkp, t, seed)
            })
        });
        if criterion_selected(name, &size) {
            // The same comparison, bare and session alternating batch by batch (see `paired`).
            let mut rng = Seed::from_u64(1).rng();
            let mut seed = 0;
            let (bare, session) = paired(
                StdDuration::from_secs(3),
                10,
                || bare_sign::<C>(&kps, &pkp, t, &mut rng),
                || {
                    seed += 1;
                    session_sign::<C>(&by_pid, &pkp, t, seed)
                },
            );
            if let Ok(mut p) = PAIRED.lock() {
                p.insert(format!("{name}/{size}"), (bare, session));
            }
        }
    }
    g.finish();
}

/// Paired signing medians (bare, session) in ns, per `scheme/size`.
static PAIRED: Mutex<BTreeMap<String, (f64, f64)>> = Mutex::new(BTreeMap::new());

/// Whether a criterion filter given on the command line (`cargo bench --bench frost -- FILTER`)
/// selects this suite and size's signing benchmarks; the paired measurement follows it.
fn criterion_selected(name: &str, size: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let id = format!("{name}/sign-session/{size}");
    filters.is_empty() || filters.iter().any(|f| id.contains(f.as_str()))
}

/// One party's DKG finish at 67-of-100 Ed25519: frost-core's part3 vs `vss::finish_dkg`.
fn finish_67_of_100(c: &mut Criterion) {
    type C = frost_ed25519::Ed25519Sha512;
    let (t, n) = (67u16, 100u16);
    let mut rng = Seed::from_u64(67).rng();
    let ids: Vec<ParticipantId> = (1..=n).map(pid).collect();
    let me = ids[0];
    let mut s1 = BTreeMap::new();
    let mut p1 = BTreeMap::new();
    for id in &ids {
        let (s, p) = dkg::part1::<C, _>(id.to_frost(), n, t, &mut rng).expect("part1");
        s1.insert(*id, s);
        p1.insert(*id, p);
    }
    // Round-2 packages addressed to `me`, and me's own round-2 secret.
    let mut to_me = BTreeMap::new();
    let mut my_secret = None;
    for id in &ids {
        let others = p1
            .iter()
            .filter(|(k, _)| *k != id)
            .map(|(k, v)| (k.to_frost(), v.clone()))
            .collect();
        let (s, out) = dkg::part2(s1[id].clone(), &others).expect("part2");
        if *id == me {
            my_secret = Some(s);
        } else {
            to_me.insert(*id, out[&me.to_frost()].clone());
        }
    }
    let my_secret = my_secret.expect("me is a participant");
    let r1: BTreeMap<ParticipantId, _> = p1
        .iter()
        .filter(|(k, _)| **k != me)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let r1f = r1.iter().map(|(k, v)| (k.to_frost(), v.clone())).collect();
    let r2f = to_me
        .iter()
        .map(|(k, v)| (k.to_frost(), v.clone()))
        .collect();
    let mut g = c.benchmark_group("dkg-finish-67-of-100-ed25519");
    g.sample_size(10)
        .warm_up_time(StdDuration::from_millis(300))
        .measurement_time(StdDuration::from_secs(3));
    g.bench_function("frost-core-part3", |b| {
        timed(b, "finish/frost-core-part3", || {
            dkg::part3(&my_secret, &r1f, &r2f).expect("part3");
        })
    });
    g.bench_function("keyshard-finish", |b| {
        timed(b, "finish/keyshard-finish", || {
            vss::finish_dkg(&my_secret, me, &r1, &to_me).expect("finish");
        })
    });
    g.finish();
}

fn ms(ns: f64) -> String {
    format!("{:.2}", ns / 1e6)
}

fn print_table() {
    let Ok(samples) = SAMPLES.lock() else { return };
    let get = |k: &str| samples.get(k).map(|v| median(v));
    println!(
        "\n## FROST: bare frost-core vs keyshard sessions (median ms, all parties in one thread)\n"
    );
    let paired = PAIRED.lock().map(|p| p.clone()).unwrap_or_default();
    println!("| scheme | size | DKG bare | DKG session | ratio | sign bare | sign bare+wire | sign session | vs bare | vs bare+wire | paired bare | paired session | paired ratio |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for scheme in keyshard_core::scheme::Scheme::ALL {
        for (t, n) in SIZES {
            let size = format!("{t}-of-{n}");
            let k = |what: &str| get(&format!("{}/{what}/{size}", scheme.name()));
            let row = (|| {
                Some((
                    k("dkg-bare")?,
                    k("dkg-session")?,
                    k("sign-bare")?,
                    k("sign-bare-wire")?,
                    k("sign-session")?,
                ))
            })();
            if let Some((db, ds, sb, sw, ss)) = row {
                let (pb, ps) = paired
                    .get(&format!("{}/{size}", scheme.name()))
                    .copied()
                    .unwrap_or((f64::NAN, f64::NAN));
                println!(
                    "| {} | {size} | {} | {} | {:.2}x | {} | {} | {} | {:.2}x | {:.2}x | {} | {} | {:.2}x |",
                    scheme.name(),
                    ms(db),
                    ms(ds),
                    ds / db,
                    ms(sb),
                    ms(sw),
                    ms(ss),
                    ss / sb,
                    ss / sw,
                    ms(pb),
                    ms(ps),
                    ps / pb
                );
            }
        }
    }
    if let (Some(a), Some(b)) = (
        get("finish/frost-core-part3"),
        get("finish/keyshard-finish"),
    ) {
        println!("\n## DKG finish, one party, 67-of-100 Ed25519 (median ms)\n");
        println!("| frost-core part3 | keyshard finish_dkg | speed-up |");
        println!("|---:|---:|---:|");
        println!("| {} | {} | {:.1}x |", ms(a), ms(b), a / b);
    }
}

fn all(c: &mut Criterion) {
    suite::<frost_ed25519::Ed25519Sha512>(c);
    suite::<frost_secp256k1::Secp256K1Sha256>(c);
    suite::<frost_p256::P256Sha256>(c);
    suite::<frost_secp256k1_tr::Secp256K1Sha256TR>(c);
    finish_67_of_100(c);
}

criterion_group!(benches, all);

/// One measured loop, kept out of line so callgrind can collect exactly it:
/// `--toggle-collect='*frost::measured*'`.
#[inline(never)]
fn measured(iterations: u32, f: &mut dyn FnMut()) {
    for _ in 0..iterations {
        f();
    }
}

fn instr_suite<C: FrostScheme>(what: &str, t: u16, n: u16, iterations: u32) -> Result<(), String> {
    match what {
        "dkg-bare" => {
            let mut seed = 0;
            measured(iterations, &mut || {
                seed += 1;
                bare_dkg::<C>(t, n, seed);
            });
        }
        "dkg-session" => {
            let mut seed = 0;
            measured(iterations, &mut || {
                seed += 1;
                session_dkg::<C>(t, n, seed);
            });
        }
        "sign-bare" | "sign-bare-wire" | "sign-session" => {
            let (kps, pkp) = bare_dkg::<C>(t, n, 7);
            let by_pid: BTreeMap<ParticipantId, KeyPackage<C>> = (1..=n)
                .map(|i| (pid(i), kps[&Identifier::try_from(i).expect("id")].clone()))
                .collect();
            let mut rng = Seed::from_u64(1).rng();
            let mut seed = 0;
            measured(iterations, &mut || match what {
                "sign-bare" => bare_sign::<C>(&kps, &pkp, t, &mut rng),
                "sign-bare-wire" => bare_sign_wire::<C>(&kps, &pkp, t, &mut rng),
                _ => {
                    seed += 1;
                    session_sign::<C>(&by_pid, &pkp, t, seed)
                }
            });
        }
        other => return Err(format!("unknown benchmark {other:?}")),
    }
    Ok(())
}

/// `frost --instr SCHEME WHAT T-of-N ITERATIONS`: runs one benchmark body ITERATIONS times
/// without criterion, for instruction counting under callgrind (see `docs/benchmarks.md`).
fn instr(args: &[String]) -> Result<(), String> {
    let [scheme, what, size, iterations, ..] = args else {
        return Err("usage: --instr SCHEME WHAT T-of-N ITERATIONS".into());
    };
    let (t, n) = size
        .split_once("-of-")
        .and_then(|(t, n)| Some((t.parse().ok()?, n.parse().ok()?)))
        .ok_or_else(|| format!("bad size {size:?} (want T-of-N)"))?;
    let iterations: u32 = iterations
        .parse()
        .map_err(|_| format!("bad iteration count {iterations:?}"))?;
    match scheme.as_str() {
        "frost-ed25519" => instr_suite::<frost_ed25519::Ed25519Sha512>(what, t, n, iterations),
        "frost-secp256k1" => {
            instr_suite::<frost_secp256k1::Secp256K1Sha256>(what, t, n, iterations)
        }
        "frost-p256" => instr_suite::<frost_p256::P256Sha256>(what, t, n, iterations),
        "frost-secp256k1-tr" => {
            instr_suite::<frost_secp256k1_tr::Secp256K1Sha256TR>(what, t, n, iterations)
        }
        other => Err(format!("unknown scheme {other:?}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--instr") {
        if let Err(e) = instr(&args[i + 1..]) {
            eprintln!("{e}");
            std::process::exit(2);
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_table();
}
