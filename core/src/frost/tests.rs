//! Acceptance tests of the FROST sessions: property tests over every ciphersuite, timeouts,
//! determinism, independent verification, and one named test per hardening item.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::dkg::round1;
use frost_core::keys::{
    CoefficientCommitment, KeyPackage, PublicKeyPackage, VerifiableSecretSharingCommitment,
};
use frost_core::{Ciphersuite, Group, Signature};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::testkit::for_each_suite;
use super::*;
use crate::ids::ParticipantId;
use crate::rng::Seed;
use crate::scheme::{FrostScheme, Scheme};
use crate::session::local::{Delivery, LocalNet};
use crate::session::{FailureKind, Frame, Rejection, Session, SessionInput, SessionOutput};
use crate::time::{Duration, Instant};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap()
}

/// Verifies with an implementation that shares no code with frost.
pub(crate) fn verify_independently<C: FrostScheme>(
    pkp: &PublicKeyPackage<C>,
    message: &[u8],
    sig: &Signature<C>,
) -> Result<(), keyshard_verifier::VerifyError> {
    let key = pkp.verifying_key().serialize().unwrap();
    let sig = sig.serialize().unwrap();
    match C::SCHEME {
        Scheme::FrostEd25519 => keyshard_verifier::ed25519(&key, message, &sig),
        Scheme::FrostSecp256k1 => keyshard_verifier::frost_secp256k1(&key, message, &sig),
        Scheme::FrostP256 => keyshard_verifier::frost_p256(&key, message, &sig),
        Scheme::FrostSecp256k1Taproot => keyshard_verifier::bip340(&key, message, &sig),
        Scheme::EcdsaSecp256k1 | Scheme::EcdsaP256 => unreachable!("a FROST suite"),
    }
}

pub(crate) fn dkg_sessions<C: CommitmentWire>(
    ids: &BTreeSet<ParticipantId>,
    t: u16,
    seed: u64,
) -> Vec<FrostDkg<C>> {
    let root = Seed::from_u64(seed);
    ids.iter()
        .map(|me| {
            let cfg = DkgConfig {
                me: *me,
                participants: ids.clone(),
                threshold: t,
                round_timeout: TIMEOUT,
            };
            FrostDkg::new(
                cfg,
                &root.child(b"dkg", &me.get().to_be_bytes()),
                Instant::ZERO,
            )
            .unwrap()
        })
        .collect()
}

/// Runs a DKG to completion and returns each party's key package and the agreed public package.
pub(crate) fn run_dkg<C: CommitmentWire>(
    ids: &BTreeSet<ParticipantId>,
    t: u16,
    seed: u64,
    delivery: Delivery,
) -> (
    BTreeMap<ParticipantId, KeyPackage<C>>,
    PublicKeyPackage<C>,
    [u8; 32],
) {
    let mut net = LocalNet::new(dkg_sessions::<C>(ids, t, seed), delivery, Instant::ZERO);
    net.run(1_000_000);
    assert!(net.rejections.is_empty(), "{:?}", net.rejections);
    let mut kps = BTreeMap::new();
    let mut pkps = BTreeSet::new();
    for (id, r) in std::mem::take(&mut net.results) {
        let out = r.unwrap_or_else(|f| panic!("{id:?} failed: {f:?}"));
        pkps.insert(out.public_key_package.serialize().unwrap());
        kps.insert(id, out.key_package);
    }
    assert_eq!(kps.len(), ids.len(), "every party finishes");
    assert_eq!(
        pkps.len(),
        1,
        "every party agrees on one public key package"
    );
    let pkp = PublicKeyPackage::deserialize(pkps.first().unwrap()).unwrap();
    (kps, pkp, net.transcript())
}

pub(crate) fn sign_sessions<C: CommitmentWire>(
    kps: &BTreeMap<ParticipantId, KeyPackage<C>>,
    pkp: &PublicKeyPackage<C>,
    signers: &BTreeSet<ParticipantId>,
    coordinator: ParticipantId,
    messages: &[Vec<u8>],
    seed: u64,
) -> Vec<FrostSign<C>> {
    let root = Seed::from_u64(seed);
    signers
        .iter()
        .copied()
        .chain(std::iter::once(coordinator))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|me| {
            let cfg = SignConfig {
                me,
                coordinator,
                signers: signers.clone(),
                messages: messages.to_vec(),
                round_timeout: TIMEOUT,
            };
            let kp = signers.contains(&me).then(|| kps[&me].clone());
            let pk = (me == coordinator).then(|| pkp.clone());
            FrostSign::new(
                cfg,
                kp,
                pk,
                &root.child(b"sign", &me.get().to_be_bytes()),
                Instant::ZERO,
            )
            .unwrap()
        })
        .collect()
}

pub(crate) fn run_sign<C: FrostScheme>(
    kps: &BTreeMap<ParticipantId, KeyPackage<C>>,
    pkp: &PublicKeyPackage<C>,
    signers: &BTreeSet<ParticipantId>,
    coordinator: ParticipantId,
    messages: &[Vec<u8>],
    seed: u64,
    delivery: Delivery,
) -> (Vec<Signature<C>>, [u8; 32]) {
    let sessions = sign_sessions(kps, pkp, signers, coordinator, messages, seed);
    let mut net = LocalNet::new(sessions, delivery, Instant::ZERO);
    net.run(1_000_000);
    assert!(net.rejections.is_empty(), "{:?}", net.rejections);
    let mut sigs = None;
    for (id, r) in std::mem::take(&mut net.results) {
        match r.unwrap_or_else(|f| panic!("{id:?} failed: {f:?}")) {
            SignOutput::Signatures(s) => {
                assert_eq!(id, coordinator);
                sigs = Some(s);
            }
            SignOutput::SharesSent => assert_ne!(id, coordinator),
        }
    }
    let sigs = sigs.expect("the coordinator aggregates");
    assert_eq!(sigs.len(), messages.len());
    (sigs, net.transcript())
}

/// Random distinct non-zero identifiers, so tests never rely on ids being 1..=n.
fn ids_strategy(n: usize) -> impl Strategy<Value = BTreeSet<ParticipantId>> {
    proptest::collection::btree_set(1u16..=600, n).prop_map(|s| s.into_iter().map(pid).collect())
}

#[derive(Debug)]
struct Case {
    t: u16,
    ids: BTreeSet<ParticipantId>,
    signers: BTreeSet<ParticipantId>,
    coordinator: ParticipantId,
    messages: Vec<Vec<u8>>,
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (2usize..=9)
        .prop_flat_map(|n| (Just(n), 2..=n as u16, ids_strategy(n)))
        .prop_flat_map(|(n, t, ids)| {
            let v: Vec<_> = ids.iter().copied().collect();
            (
                Just(t),
                Just(ids),
                proptest::sample::subsequence(v.clone(), t as usize..=n),
                proptest::sample::select(v),
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..4),
                any::<u64>(),
            )
        })
        .prop_map(|(t, ids, signers, coordinator, messages, seed)| Case {
            t,
            ids,
            signers: signers.into_iter().collect(),
            coordinator,
            messages,
            seed,
        })
}

fn dkg_and_sign_property<C: FrostScheme>() {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    runner
        .run(&case_strategy(), |case| {
            let (kps, pkp, _) = run_dkg::<C>(
                &case.ids,
                case.t,
                case.seed,
                Delivery::Random(Seed::from_u64(case.seed ^ 1)),
            );
            prop_assert_eq!(pkp.min_signers(), Some(case.t));
            let (sigs, _) = run_sign(
                &kps,
                &pkp,
                &case.signers,
                case.coordinator,
                &case.messages,
                case.seed,
                Delivery::Random(Seed::from_u64(case.seed ^ 2)),
            );
            for (m, s) in case.messages.iter().zip(&sigs) {
                prop_assert!(verify_independently(&pkp, m, s).is_ok(), "{:?}", C::SCHEME);
                // The independent verifier is not a rubber stamp: a flipped bit fails.
                let mut bad = s.serialize().unwrap();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                if let Ok(bad) = Signature::<C>::deserialize(&bad) {
                    prop_assert!(verify_independently(&pkp, m, &bad).is_err());
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn every_dkg_agrees_and_every_signature_verifies_independently() {
    for_each_suite!(dkg_and_sign_property);
}

/// A random strict subset of parties never speaks: every other party's session ends with a
/// timeout naming exactly the silent ones (DKG), or the coordinator names exactly the silent
/// signers (signing).
fn silent_parties_property<C: FrostScheme>() {
    let mut runner = TestRunner::new(Config {
        cases: 16,
        ..Config::default()
    });
    runner
        .run(
            &(case_strategy(), any::<prop::sample::Index>(), any::<u64>()),
            |(case, idx, mask)| {
                let v: Vec<_> = case.ids.iter().copied().collect();
                let mut silent: BTreeSet<_> = v
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask >> i & 1 == 1)
                    .map(|(_, p)| *p)
                    .collect();
                if silent.is_empty() {
                    silent.insert(v[idx.index(v.len())]);
                }
                if silent.len() == v.len() {
                    silent.remove(&v[0]);
                }
                let mut net = LocalNet::new(
                    dkg_sessions::<C>(&case.ids, case.t, case.seed),
                    Delivery::Random(Seed::from_u64(case.seed)),
                    Instant::ZERO,
                );
                for p in &silent {
                    net.silence(*p);
                }
                net.run(1_000_000);
                for p in case.ids.difference(&silent) {
                    let failure = net.results[p].as_ref().unwrap_err();
                    prop_assert_eq!(&failure.kind, &FailureKind::Timeout { round: 1 });
                    prop_assert_eq!(&failure.culprits, &silent);
                }

                // Signing: silent signers (the coordinator stays up) are named by the coordinator.
                let (kps, pkp, _) = run_dkg::<C>(&case.ids, case.t, case.seed, Delivery::Fifo);
                let quiet: BTreeSet<_> = case
                    .signers
                    .iter()
                    .copied()
                    .filter(|p| *p != case.coordinator && silent.contains(p))
                    .collect();
                let mut net = LocalNet::new(
                    sign_sessions(
                        &kps,
                        &pkp,
                        &case.signers,
                        case.coordinator,
                        &case.messages,
                        case.seed,
                    ),
                    Delivery::Random(Seed::from_u64(case.seed)),
                    Instant::ZERO,
                );
                for p in &quiet {
                    net.silence(*p);
                }
                net.run(1_000_000);
                let at_coordinator = &net.results[&case.coordinator];
                if quiet.is_empty() {
                    prop_assert!(at_coordinator.is_ok());
                } else {
                    let failure = at_coordinator.as_ref().unwrap_err();
                    prop_assert_eq!(&failure.kind, &FailureKind::Timeout { round: 1 });
                    prop_assert_eq!(&failure.culprits, &quiet);
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn silent_parties_are_named_exactly_by_the_timeout() {
    for_each_suite!(silent_parties_property);
}

#[test]
fn a_silent_coordinator_is_named_by_the_signers() {
    type C = frost_ed25519::Ed25519Sha512;
    let ids: BTreeSet<_> = (1..=3).map(pid).collect();
    let (kps, pkp, _) = run_dkg::<C>(&ids, 2, 5, Delivery::Fifo);
    let signers: BTreeSet<_> = [pid(1), pid(2)].into();
    let mut net = LocalNet::new(
        sign_sessions(&kps, &pkp, &signers, pid(3), &[b"m".to_vec()], 5),
        Delivery::Fifo,
        Instant::ZERO,
    );
    net.silence(pid(3));
    net.run(1000);
    for s in &signers {
        let f = net.results[s].as_ref().unwrap_err();
        assert_eq!(f.culprits, BTreeSet::from([pid(3)]));
    }
}

/// Feeds arbitrary bytes from arbitrary senders into sessions in every state: nothing panics,
/// and honest runs still complete afterwards.
fn garbage_property<C: FrostScheme>() {
    let mut runner = TestRunner::new(Config {
        cases: 32,
        ..Config::default()
    });
    let strategy = (
        any::<u64>(),
        proptest::collection::vec(
            (
                1u16..=5,
                1u16..=4,
                any::<u8>(),
                proptest::collection::vec(any::<u8>(), 0..200),
            ),
            0..40,
        ),
    );
    runner
        .run(&strategy, |(seed, junk)| {
            let ids: BTreeSet<_> = (1..=3).map(pid).collect();
            let mut net = LocalNet::new(
                dkg_sessions::<C>(&ids, 2, seed),
                Delivery::Random(Seed::from_u64(seed)),
                Instant::ZERO,
            );
            for (from, to, kind, mut bytes) in junk {
                // Half of the time, wrap the junk in a valid frame of a real kind so it reaches
                // the per-round decoders.
                if kind % 2 == 0 {
                    let k = [1u8, 2, 3, 10, 11, 12][usize::from(kind / 2) % 6];
                    bytes = Frame::new(k, vec![bytes.clone(), bytes]).encode();
                }
                net.inject(pid(from), pid(to), bytes);
                net.step();
            }
            net.run(100_000);
            for r in net.results.values() {
                if let Err(f) = r {
                    // Junk may only be blamed on the party it claimed to come from.
                    prop_assert!(!matches!(f.kind, FailureKind::Library(_)), "{f:?}");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_input_never_panics() {
    for_each_suite!(garbage_property);
}

#[test]
fn same_seed_same_transcript_other_seed_other_transcript() {
    fn check<C: FrostScheme>() {
        let ids: BTreeSet<_> = [3, 7, 11, 20, 21].into_iter().map(pid).collect();
        let signers: BTreeSet<_> = [3, 11, 21].into_iter().map(pid).collect();
        let messages = vec![b"one".to_vec(), b"two".to_vec()];
        let run = |seed: u64| {
            let (kps, pkp, t1) =
                run_dkg::<C>(&ids, 3, seed, Delivery::Random(Seed::from_u64(seed)));
            let (_, t2) = run_sign(
                &kps,
                &pkp,
                &signers,
                pid(7),
                &messages,
                seed,
                Delivery::Random(Seed::from_u64(seed)),
            );
            (t1, t2)
        };
        let a = run(42);
        assert_eq!(
            a,
            run(42),
            "{:?}: one seed, two runs, one transcript",
            C::SCHEME
        );
        let b = run(43);
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
    }
    for_each_suite!(check);
}

// ---------------------------------------------------------------------------------------------
// Hardening: one test per frost-core 3.0.0 gap. Each shows the attack refused, the culprit named
// and (where the run can go on) the honest run unchanged: the messages every honest party sends
// are byte-identical to a run without the attack.
// ---------------------------------------------------------------------------------------------

fn honest_sends_digest<C: CommitmentWire>(
    ids: &BTreeSet<ParticipantId>,
    t: u16,
    seed: u64,
) -> [u8; 32] {
    let mut net = LocalNet::new(
        dkg_sessions::<C>(ids, t, seed),
        Delivery::Fifo,
        Instant::ZERO,
    );
    net.run(100_000);
    net.sends_digest()
}

#[test]
fn hardening_oversized_commitment_vector_refused_before_decoding() {
    type C = frost_ed25519::Ed25519Sha512;
    let ids: BTreeSet<_> = (1..=3).map(pid).collect();
    let t = 2u16;
    // The attacker (participant 2) builds a commitment vector of 65,536 + t entries with a valid
    // proof of knowledge: frost-core stores the count in 16 bits, so it sees t entries.
    let mut rng = Seed::from_u64(99).rng();
    let (_, real) =
        frost_core::keys::dkg::part1::<C, _>(pid(2).to_frost(), 3, t, &mut rng).unwrap();
    let mut coeffs: Vec<CoefficientCommitment<C>> = real.commitment().coefficients().to_vec();
    let g = CoefficientCommitment::<C>::new(<<C as Ciphersuite>::Group as Group>::generator());
    coeffs.resize(65_536 + usize::from(t), g);
    let long = VerifiableSecretSharingCommitment::new(coeffs);
    assert_eq!(
        long.coefficients().len() as u16,
        t,
        "frost-core's 16-bit count wraps to t"
    );
    let evil = round1::Package::new(long, *real.proof_of_knowledge());
    let evil_bytes = evil.serialize().unwrap();
    assert!(evil_bytes.len() > 2_000_000);

    let mut net = LocalNet::new(dkg_sessions::<C>(&ids, t, 7), Delivery::Fifo, Instant::ZERO);
    net.inject(
        pid(2),
        pid(1),
        Frame::new(1, vec![evil_bytes.clone()]).encode(),
    );
    net.run(100_000);
    let expected_len = real.serialize().unwrap().len();
    assert_eq!(
        net.rejections,
        vec![(
            pid(1),
            pid(2),
            Rejection::WrongSize {
                field: "round1 package",
                expected: expected_len,
                actual: evil_bytes.len()
            }
        )]
    );
    // Participant 2's real package (queued behind the attack) still counts: the run completes
    // and every honest message is what it would have been without the attack.
    assert!(net.results.values().all(|r| r.is_ok()));
    assert_eq!(net.sends_digest(), honest_sends_digest::<C>(&ids, t, 7));
}

#[test]
fn hardening_stranger_cannot_speak() {
    type C = frost_secp256k1::Secp256K1Sha256;
    let ids: BTreeSet<_> = (1..=3).map(pid).collect();
    // A valid round-1 package from identifier 9, who is not in the group. frost-core's part2
    // would accept it (it only checks the count of packages and each proof).
    let mut rng = Seed::from_u64(5).rng();
    let (_, stranger_pkg) =
        frost_core::keys::dkg::part1::<C, _>(pid(9).to_frost(), 3, 2, &mut rng).unwrap();
    let frame = Frame::new(1, vec![stranger_pkg.serialize().unwrap()]).encode();
    let mut net = LocalNet::new(dkg_sessions::<C>(&ids, 2, 8), Delivery::Fifo, Instant::ZERO);
    net.inject(pid(9), pid(1), frame.clone());
    net.run(100_000);
    assert_eq!(
        net.rejections,
        vec![(pid(1), pid(9), Rejection::NotAParticipant)]
    );
    assert!(net.results.values().all(|r| r.is_ok()));
    assert_eq!(net.sends_digest(), honest_sends_digest::<C>(&ids, 2, 8));

    // A participant speaking twice in one round with different content is refused too.
    let mut net = LocalNet::new(dkg_sessions::<C>(&ids, 2, 8), Delivery::Fifo, Instant::ZERO);
    net.run(3); // FIFO: 1->2, 1->3, then 2->1 (its real round-1 package) are delivered
    let (_, other) =
        frost_core::keys::dkg::part1::<C, _>(pid(2).to_frost(), 3, 2, &mut rng).unwrap();
    net.inject(
        pid(2),
        pid(1),
        Frame::new(1, vec![other.serialize().unwrap()]).encode(),
    );
    net.run(100_000);
    assert!(net.rejections.iter().any(|(at, from, why)| *at == pid(1)
        && *from == pid(2)
        && *why == Rejection::AlreadyReceived));
    assert!(net.results.values().all(|r| r.is_ok()));
    assert_eq!(net.sends_digest(), honest_sends_digest::<C>(&ids, 2, 8));
}

#[test]
fn hardening_non_canonical_encodings_refused() {
    type C = frost_p256::P256Sha256;
    let ids: BTreeSet<_> = (1..=3).map(pid).collect();
    let (kps, pkp, _) = run_dkg::<C>(&ids, 2, 3, Delivery::Fifo);
    let signers: BTreeSet<_> = [pid(1), pid(2)].into();
    let messages = vec![b"pay 1 BTC".to_vec()];
    // The coordinator (3) appends a trailing byte to the signing package it sends to signer 1.
    // Signer 1 refuses it and does not sign.
    let mut net = LocalNet::new(
        sign_sessions(&kps, &pkp, &signers, pid(3), &messages, 3),
        Delivery::Fifo,
        Instant::ZERO,
    );
    net.intercept(Box::new(|from, to, bytes| {
        let mut f = Frame::decode(bytes).unwrap();
        if from == pid(3) && to == pid(1) && f.kind == 11 {
            f.fields[0].push(0);
        }
        vec![f.encode()]
    }));
    net.run(100_000);
    assert_eq!(
        net.rejections,
        vec![(
            pid(1),
            pid(3),
            Rejection::Malformed {
                field: "signing package"
            }
        )]
    );
    // Signer 1 kept its nonces and sent nothing; the coordinator times out naming it.
    let f = net.results[&pid(3)].as_ref().unwrap_err();
    assert_eq!(f.culprits, BTreeSet::from([pid(1)]));
    assert!(net.results.get(&pid(1)).is_some_and(|r| r.is_err()));

    // And a truncated public key package (threshold silently None in frost-core) is refused.
    let bytes = pkp.serialize().unwrap();
    assert_eq!(
        PublicKeyPackage::<C>::deserialize(&bytes[..bytes.len() - 2])
            .unwrap()
            .min_signers(),
        None
    );
    assert!(
        canonical::decode::<PublicKeyPackage<C>>(&bytes[..bytes.len() - 2], None, "pkp").is_err()
    );
}

#[test]
fn hardening_nonces_never_sign_twice() {
    type C = frost_secp256k1_tr::Secp256K1Sha256TR;
    let ids: BTreeSet<_> = (1..=3).map(pid).collect();
    let (kps, pkp, _) = run_dkg::<C>(&ids, 2, 4, Delivery::Fifo);
    let signers: BTreeSet<_> = [pid(1), pid(2)].into();
    let messages = vec![b"m".to_vec()];
    let mut sessions = sign_sessions(&kps, &pkp, &signers, pid(3), &messages, 4);
    let mut signer = sessions.remove(0);
    assert_eq!(signer.me(), pid(1));
    let commit1: Vec<u8> = match signer.poll_output() {
        Some(SessionOutput::Send { payload, .. }) => payload.as_bytes().to_vec(),
        other => panic!("{other:?}"),
    };
    // A malicious coordinator builds two different signing packages with signer 1's commitment
    // (varying signer 2's) to extract its key share from two shares under one nonce.
    let c1 = frost_core::round1::SigningCommitments::<C>::deserialize(
        &Frame::decode(&commit1).unwrap().fields[0],
    )
    .unwrap();
    let mut rng = Seed::from_u64(1).rng();
    let package = |rng: &mut crate::rng::CoreRng| {
        let (_, c2) = frost_core::round1::commit(kps[&pid(2)].signing_share(), rng);
        let map = BTreeMap::from([(pid(1).to_frost(), c1), (pid(2).to_frost(), c2)]);
        Frame::new(
            11,
            vec![frost_core::SigningPackage::new(map, b"m")
                .serialize()
                .unwrap()],
        )
        .encode()
    };
    let first = package(&mut rng);
    let second = package(&mut rng);
    signer.handle_input(SessionInput::Message {
        at: Instant::ZERO,
        from: pid(3),
        payload: &first,
    });
    let mut shares_sent = 0;
    while let Some(o) = signer.poll_output() {
        if matches!(o, SessionOutput::Send { .. }) {
            shares_sent += 1;
        }
    }
    assert_eq!(shares_sent, 1);
    signer.handle_input(SessionInput::Message {
        at: Instant::ZERO,
        from: pid(3),
        payload: &second,
    });
    let outs: Vec<_> = std::iter::from_fn(|| signer.poll_output()).collect();
    assert_eq!(outs.len(), 1, "{outs:?}");
    assert!(matches!(
        &outs[0],
        SessionOutput::Misbehaved { from, reason: Rejection::NoncesAlreadyUsed } if *from == pid(3)
    ));
    // A byte-identical repeat of the first request (a duplicated delivery) is ignored quietly.
    signer.handle_input(SessionInput::Message {
        at: Instant::ZERO,
        from: pid(3),
        payload: &first,
    });
    assert!(signer.poll_output().is_none());
}

#[test]
fn hardening_altered_higher_commitments_caught_by_echo() {
    type C = frost_ed25519::Ed25519Sha512;
    let ids: BTreeSet<_> = (1..=4).map(pid).collect();
    let t = 3;
    // Participant 2 sends participant 4 a round-1 package whose higher commitment differs from
    // what everyone else got. The proof of knowledge covers only the first coefficient, so
    // frost-core's part2 accepts it.
    let alter = |bytes: &[u8]| -> Vec<u8> {
        let pkg = round1::Package::<C>::deserialize(bytes).unwrap();
        let mut coeffs = pkg.commitment().coefficients().to_vec();
        let g = <<C as Ciphersuite>::Group as Group>::generator();
        coeffs[2] = CoefficientCommitment::new(coeffs[2].value() + g);
        round1::Package::new(
            VerifiableSecretSharingCommitment::new(coeffs),
            *pkg.proof_of_knowledge(),
        )
        .serialize()
        .unwrap()
    };
    let mut net = LocalNet::new(
        dkg_sessions::<C>(&ids, t, 11),
        Delivery::Fifo,
        Instant::ZERO,
    );
    net.intercept(Box::new(move |from, to, bytes| {
        let mut f = Frame::decode(bytes).unwrap();
        if from == pid(2) && to == pid(4) && f.kind == 1 {
            f.fields[0] = alter(&f.fields[0]);
        }
        vec![f.encode()]
    }));
    net.run(100_000);
    assert_eq!(net.results.len(), 4);
    for (p, r) in &net.results {
        let f = r.as_ref().unwrap_err();
        assert_eq!(f.culprits, BTreeSet::from([pid(2)]), "at {p:?}: {f:?}");
        assert!(
            matches!(
                f.kind,
                FailureKind::InconsistentBroadcast { sender, .. } if sender == pid(2)
            ) || (*p == pid(4) && f.kind == FailureKind::InvalidSecretShare),
            "at {p:?}: {f:?}"
        );
    }
}

#[test]
fn an_invalid_signature_share_names_its_signer() {
    type C = frost_secp256k1::Secp256K1Sha256;
    let ids: BTreeSet<_> = (1..=3).map(pid).collect();
    let (kps, pkp, _) = run_dkg::<C>(&ids, 2, 6, Delivery::Fifo);
    let signers: BTreeSet<_> = [pid(1), pid(2)].into();
    let mut net = LocalNet::new(
        sign_sessions(&kps, &pkp, &signers, pid(3), &[b"x".to_vec()], 6),
        Delivery::Fifo,
        Instant::ZERO,
    );
    net.intercept(Box::new(|from, _to, bytes| {
        let mut f = Frame::decode(bytes).unwrap();
        if from == pid(2) && f.kind == 12 {
            let last = f.fields[0].len() - 1;
            f.fields[0][last] ^= 1;
        }
        vec![f.encode()]
    }));
    net.run(100_000);
    let f = net.results[&pid(3)].as_ref().unwrap_err();
    assert_eq!(f.kind, FailureKind::InvalidSignatureShare);
    assert_eq!(f.culprits, BTreeSet::from([pid(2)]));
}

#[test]
fn an_invalid_proof_of_knowledge_names_its_sender() {
    type C = frost_p256::P256Sha256;
    let ids: BTreeSet<_> = (1..=3).map(pid).collect();
    let mut net = LocalNet::new(
        dkg_sessions::<C>(&ids, 2, 12),
        Delivery::Fifo,
        Instant::ZERO,
    );
    net.intercept(Box::new(|from, to, bytes| {
        let mut f = Frame::decode(bytes).unwrap();
        if from == pid(3) && to == pid(1) && f.kind == 1 {
            let pkg = round1::Package::<C>::deserialize(&f.fields[0]).unwrap();
            let mut coeffs = pkg.commitment().coefficients().to_vec();
            let g = <<C as Ciphersuite>::Group as Group>::generator();
            coeffs[0] = CoefficientCommitment::new(coeffs[0].value() + g);
            f.fields[0] = round1::Package::new(
                VerifiableSecretSharingCommitment::new(coeffs),
                *pkg.proof_of_knowledge(),
            )
            .serialize()
            .unwrap();
        }
        vec![f.encode()]
    }));
    net.run(100_000);
    let f = net.results[&pid(1)].as_ref().unwrap_err();
    assert_eq!(f.kind, FailureKind::InvalidProofOfKnowledge);
    assert_eq!(f.culprits, BTreeSet::from([pid(3)]));
}

#[test]
fn config_errors_are_typed() {
    type C = frost_ed25519::Ed25519Sha512;
    let ids: BTreeSet<_> = (1..=3).map(pid).collect();
    let cfg = |me, t| DkgConfig {
        me: pid(me),
        participants: ids.clone(),
        threshold: t,
        round_timeout: TIMEOUT,
    };
    let seed = Seed::from_u64(0);
    assert_eq!(
        FrostDkg::<C>::new(cfg(4, 2), &seed, Instant::ZERO).err(),
        Some(ConfigError::NotAParticipant)
    );
    assert!(matches!(
        FrostDkg::<C>::new(cfg(1, 1), &seed, Instant::ZERO),
        Err(ConfigError::BadThreshold { .. })
    ));
    assert!(matches!(
        FrostDkg::<C>::new(cfg(1, 4), &seed, Instant::ZERO),
        Err(ConfigError::BadThreshold { .. })
    ));
}

/// A coordinator that deviates from the signer's view in any way gets no share: a different
/// message, a different signer set, altered own commitments (all `Inconsistent`), or a package
/// that is not exactly the canonical encoding (`Malformed`). The signer keeps its nonces, and
/// the honest request afterwards gets the very share it would have got without the attempts.
fn signer_refuses_deviating_packages<C: FrostScheme>() {
    let ids: BTreeSet<_> = (1..=3).map(pid).collect();
    let (kps, pkp) = super::testkit::trusted_dealer::<C>(2, 3, 21);
    let kps: BTreeMap<ParticipantId, KeyPackage<C>> = ids
        .iter()
        .map(|p| (*p, kps[&p.to_frost()].clone()))
        .collect();
    let signers: BTreeSet<_> = [pid(1), pid(2)].into();
    let messages = vec![b"pay 1 BTC".to_vec()];
    let fresh = || {
        let mut sessions = sign_sessions(&kps, &pkp, &signers, pid(3), &messages, 21);
        let mut coordinator = sessions.pop().unwrap();
        let mut signer2 = sessions.pop().unwrap();
        let mut signer1 = sessions.pop().unwrap();
        assert_eq!(
            (signer1.me(), signer2.me(), coordinator.me()),
            (pid(1), pid(2), pid(3))
        );
        // Signers' commitments reach the coordinator; its request to signer 1 is the honest one.
        let mut commits = Vec::new();
        for s in [&mut signer1, &mut signer2] {
            match s.poll_output() {
                Some(SessionOutput::Send { payload, .. }) => commits.push(payload),
                other => panic!("{other:?}"),
            }
        }
        for (from, payload) in [pid(1), pid(2)].into_iter().zip(&commits) {
            coordinator.handle_input(SessionInput::Message {
                at: Instant::ZERO,
                from,
                payload: payload.as_bytes(),
            });
        }
        let request = std::iter::from_fn(|| coordinator.poll_output())
            .find_map(|o| match o {
                SessionOutput::Send { to, payload } if to == pid(1) => {
                    Some(payload.as_bytes().to_vec())
                }
                _ => None,
            })
            .expect("a request to signer 1");
        let commitments: Vec<frost_core::round1::SigningCommitments<C>> = commits
            .iter()
            .map(|p| {
                frost_core::round1::SigningCommitments::deserialize(
                    &Frame::decode(p.as_bytes()).unwrap().fields[0],
                )
                .unwrap()
            })
            .collect();
        (signer1, request, commitments)
    };
    let (mut signer, honest, c) = fresh();
    // The session's request is exactly frost's encoding of the package.
    let map = |entries: &[(u16, frost_core::round1::SigningCommitments<C>)]| {
        entries
            .iter()
            .map(|(i, c)| (pid(*i).to_frost::<C>(), *c))
            .collect::<BTreeMap<_, _>>()
    };
    let request = |entries: &[(u16, frost_core::round1::SigningCommitments<C>)], m: &[u8]| {
        let package = frost_core::SigningPackage::new(map(entries), m);
        Frame::new(11, vec![package.serialize().unwrap()]).encode()
    };
    assert_eq!(honest, request(&[(1, c[0]), (2, c[1])], &messages[0]));

    let g = frost_core::round1::NonceCommitment::<C>::new(<C::Group as Group>::generator());
    let altered = frost_core::round1::SigningCommitments::new(g, g);
    let inconsistent = |what| Rejection::Inconsistent { what };
    let malformed = Rejection::Malformed {
        field: "signing package",
    };
    let package = Frame::decode(&honest).unwrap().fields.remove(0);
    let reframe = |p: Vec<u8>| Frame::new(11, vec![p]).encode();
    // header(5) | count(1) | 2 x (identifier(32) | header(5) | 2 elements) | length(1) | message
    let entry = (package.len() - 7 - messages[0].len()) / 2;
    let element = (entry - 37) / 2;
    let swapped = {
        let mut p = package.clone();
        p[6..6 + entry].copy_from_slice(&package[6 + entry..6 + 2 * entry]);
        p[6 + entry..6 + 2 * entry].copy_from_slice(&package[6..6 + entry]);
        p
    };
    let invalid_point = {
        let mut p = package.clone();
        // Signer 2's hiding commitment becomes 0xff..ff: no valid element in any suite.
        let at = 6 + entry + 32 + 5;
        p[at..at + element].fill(0xff);
        p
    };
    let attempts: Vec<(Vec<u8>, Rejection)> = vec![
        (
            request(&[(1, c[0]), (2, c[1])], b"pay 2 BTC"),
            inconsistent("signing package signs a different message"),
        ),
        (
            request(&[(1, c[0])], &messages[0]),
            inconsistent("signing package has a different signer set"),
        ),
        (
            request(&[(1, c[0]), (2, c[1]), (3, c[1])], &messages[0]),
            inconsistent("signing package has a different signer set"),
        ),
        (
            request(&[(1, altered), (2, c[1])], &messages[0]),
            inconsistent("signing package alters this signer's commitments"),
        ),
        (reframe(swapped), malformed.clone()),
        (reframe(invalid_point), malformed.clone()),
        (
            reframe([&package[..5], &[0x82, 0x00], &package[6..]].concat()),
            malformed.clone(),
        ),
        (reframe(package[..package.len() - 1].to_vec()), malformed),
    ];
    for (payload, reason) in attempts {
        signer.handle_input(SessionInput::Message {
            at: Instant::ZERO,
            from: pid(3),
            payload: &payload,
        });
        let outs: Vec<_> = std::iter::from_fn(|| signer.poll_output()).collect();
        assert_eq!(outs.len(), 1, "{:?}: {outs:?}", C::ID);
        match &outs[0] {
            SessionOutput::Misbehaved { from, reason: r } => {
                assert_eq!((*from, r), (pid(3), &reason), "{:?}", C::ID)
            }
            other => panic!("{:?}: {other:?}", C::ID),
        }
    }
    let share = |s: &mut FrostSign<C>| {
        s.handle_input(SessionInput::Message {
            at: Instant::ZERO,
            from: pid(3),
            payload: &honest,
        });
        let outs: Vec<_> = std::iter::from_fn(|| s.poll_output()).collect();
        match &outs[..] {
            [SessionOutput::Send { to, payload }, SessionOutput::Done(Ok(SignOutput::SharesSent))]
                if *to == pid(3) =>
            {
                payload.as_bytes().to_vec()
            }
            other => panic!("{:?}: {other:?}", C::ID),
        }
    };
    let (mut untouched, _, _) = fresh();
    assert_eq!(share(&mut signer), share(&mut untouched), "{:?}", C::ID);
}

#[test]
fn a_signer_refuses_packages_that_deviate_from_its_view() {
    for_each_suite!(signer_refuses_deviating_packages);
}
