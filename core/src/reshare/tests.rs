//! Acceptance tests of resharing: property tests over every ciphersuite, malicious dealers and
//! receivers, crashes after each round, arbitrary input, determinism, Taproot, rotation.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::{KeyPackage, PublicKeyPackage, SigningShare, VerifyingShare};
use frost_core::{
    aggregate_custom, round1, round2, CheaterDetection, Ciphersuite, Field, Group, Signature,
    SigningPackage,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::math;
use super::session::{KIND_ABORT, KIND_CONFIRM, KIND_DEAL, KIND_VERDICT};
use super::*;
use crate::frost::testkit::for_each_suite;
use crate::frost::tests::{pid, run_dkg, run_sign, verify_independently, TIMEOUT};
use crate::frost::{CommitmentWire, ConfigError, FrostSign, SignConfig};
use crate::ids::ParticipantId;
use crate::persist::{KeyId, KeyVersion};
use crate::rng::Seed;
use crate::rotation::{
    KeyRotation, RotationCommand, RotationSchedule, DEFAULT_RETRY_AFTER, DEFAULT_ROTATION_INTERVAL,
};
use crate::scheme::FrostScheme;
use crate::session::local::{Delivery, LocalNet};
use crate::session::{FailureKind, Frame};
use crate::time::{Duration, Instant};

type FieldOf<C> = <<C as Ciphersuite>::Group as Group>::Field;

const V1: KeyVersion = KeyVersion(1);

fn set(ids: &[u16]) -> BTreeSet<ParticipantId> {
    ids.iter().map(|n| pid(*n)).collect()
}

/// One reshare run's parameters.
#[derive(Clone, Debug)]
struct Plan {
    dealers: BTreeSet<ParticipantId>,
    new_members: BTreeSet<ParticipantId>,
    new_threshold: u16,
}

fn reshare_sessions<C: CommitmentWire>(
    old_kps: &BTreeMap<ParticipantId, KeyPackage<C>>,
    old_pkp: &PublicKeyPackage<C>,
    plan: &Plan,
    seed: u64,
    now: Instant,
) -> Vec<FrostReshare<C>> {
    let root = Seed::from_u64(seed);
    plan.dealers
        .union(&plan.new_members)
        .map(|me| {
            let cfg = ReshareConfig {
                me: *me,
                from_version: V1,
                dealers: plan.dealers.clone(),
                new_members: plan.new_members.clone(),
                new_threshold: plan.new_threshold,
                round_timeout: TIMEOUT,
                run: Vec::new(),
            };
            let kp = plan.dealers.contains(me).then(|| &old_kps[me]);
            FrostReshare::new(
                cfg,
                kp,
                old_pkp.clone(),
                &root.child(b"reshare", &me.get().to_be_bytes()),
                now,
            )
            .unwrap()
        })
        .collect()
}

fn reshare_net<C: CommitmentWire>(
    old_kps: &BTreeMap<ParticipantId, KeyPackage<C>>,
    old_pkp: &PublicKeyPackage<C>,
    plan: &Plan,
    seed: u64,
    delivery: Delivery,
) -> LocalNet<FrostReshare<C>> {
    LocalNet::new(
        reshare_sessions(old_kps, old_pkp, plan, seed, Instant::ZERO),
        delivery,
        Instant::ZERO,
    )
}

/// New key packages, the agreed public key package, Q, and the exclusions.
type MembersOutcome<C> = (
    BTreeMap<ParticipantId, KeyPackage<C>>,
    PublicKeyPackage<C>,
    BTreeSet<ParticipantId>,
    BTreeMap<ParticipantId, Vec<Exclusion>>,
);

/// The new members' outputs of a run in which every live new member succeeded: checks roles,
/// agreement on one public key package and on Q, and the unchanged group key.
fn members_of<C: CommitmentWire>(
    net: &mut LocalNet<FrostReshare<C>>,
    old_pkp: &PublicKeyPackage<C>,
    plan: &Plan,
    live: &BTreeSet<ParticipantId>,
) -> MembersOutcome<C> {
    let mut kps = BTreeMap::new();
    let mut pkps = BTreeSet::new();
    let mut qualified = BTreeSet::new();
    let mut excluded = None;
    for (id, r) in std::mem::take(&mut net.results) {
        if !live.contains(&id) {
            continue;
        }
        let out = r.unwrap_or_else(|f| panic!("{id:?} failed: {f:?}"));
        assert_eq!(out.version(), KeyVersion(2));
        match out {
            ReshareOutput::Dealt { .. } => {
                assert!(plan.dealers.contains(&id) && !plan.new_members.contains(&id));
            }
            ReshareOutput::Member(m) => {
                let expected_role = if plan.dealers.contains(&id) {
                    ReshareRole::DealerAndReceiver
                } else {
                    ReshareRole::Receiver
                };
                assert_eq!(m.role, expected_role);
                pkps.insert(m.public_key_package.serialize().unwrap());
                qualified.insert(m.qualified.clone());
                if let Some(e) = &excluded {
                    assert_eq!(e, &m.excluded, "every member reports the same exclusions");
                }
                excluded = Some(m.excluded.clone());
                kps.insert(id, m.key_package.clone());
            }
        }
    }
    let expected_members: BTreeSet<_> = plan.new_members.intersection(live).copied().collect();
    assert_eq!(
        kps.keys().copied().collect::<BTreeSet<_>>(),
        expected_members,
        "every live new member holds v+1"
    );
    assert_eq!(pkps.len(), 1, "one public key package");
    assert_eq!(qualified.len(), 1, "one qualified set");
    let pkp = PublicKeyPackage::<C>::deserialize(pkps.first().unwrap()).unwrap();
    assert_eq!(
        pkp.verifying_key().serialize().unwrap(),
        old_pkp.verifying_key().serialize().unwrap(),
        "the group public key is byte-identical"
    );
    assert_eq!(pkp.min_signers(), Some(plan.new_threshold));
    assert_eq!(
        pkp.verifying_shares()
            .keys()
            .copied()
            .collect::<BTreeSet<_>>(),
        plan.new_members
            .iter()
            .map(|p| p.to_frost::<C>())
            .collect::<BTreeSet<_>>()
    );
    (
        kps,
        pkp,
        qualified.pop_first().unwrap(),
        excluded.unwrap_or_default(),
    )
}

/// Runs a reshare in which everyone is honest and returns the new key material.
fn run_reshare<C: CommitmentWire>(
    old_kps: &BTreeMap<ParticipantId, KeyPackage<C>>,
    old_pkp: &PublicKeyPackage<C>,
    plan: &Plan,
    seed: u64,
    delivery: Delivery,
) -> (
    BTreeMap<ParticipantId, KeyPackage<C>>,
    PublicKeyPackage<C>,
    [u8; 32],
) {
    let mut net = reshare_net(old_kps, old_pkp, plan, seed, delivery);
    net.run(1_000_000);
    assert!(net.rejections.is_empty(), "{:?}", net.rejections);
    let all: BTreeSet<_> = plan.dealers.union(&plan.new_members).copied().collect();
    let transcript = net.transcript();
    let (kps, pkp, q, excluded) = members_of(&mut net, old_pkp, plan, &all);
    assert_eq!(q, plan.dealers);
    assert!(excluded.is_empty());
    (kps, pkp, transcript)
}

/// Signs one message with frost's functions directly (no session), with `key_packages` as the
/// signer set: `None` if frost refuses, else the aggregate (verified by nobody yet).
fn sign_directly<C: CommitmentWire>(
    key_packages: &[KeyPackage<C>],
    pkp: &PublicKeyPackage<C>,
    message: &[u8],
    seed: u64,
) -> Option<Signature<C>> {
    let mut rng = Seed::from_u64(seed).rng();
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for kp in key_packages {
        let (n, c) = round1::commit(kp.signing_share(), &mut rng);
        nonces.insert(*kp.identifier(), n);
        commitments.insert(*kp.identifier(), c);
    }
    let package = SigningPackage::new(commitments, message);
    let mut shares = BTreeMap::new();
    for kp in key_packages {
        let share = round2::sign(&package, &nonces[kp.identifier()], kp).ok()?;
        shares.insert(*kp.identifier(), share);
    }
    aggregate_custom(&package, &shares, pkp, CheaterDetection::Disabled).ok()
}

/// A key package holding `share` at `id`, with a chosen threshold (to get past frost's count
/// checks and reach the mathematics).
fn forged_key_package<C: CommitmentWire>(
    id: ParticipantId,
    share: SigningShare<C>,
    pkp: &PublicKeyPackage<C>,
    threshold: u16,
) -> KeyPackage<C> {
    let vs = VerifyingShare::new(<C::Group as Group>::generator() * share.to_scalar());
    KeyPackage::new(id.to_frost(), share, vs, *pkp.verifying_key(), threshold)
}

fn with_threshold<C: CommitmentWire>(pkp: &PublicKeyPackage<C>, t: u16) -> PublicKeyPackage<C> {
    PublicKeyPackage::new(
        pkp.verifying_shares().clone(),
        *pkp.verifying_key(),
        Some(t),
    )
}

fn produces_valid_signature<C: FrostScheme>(
    kps: &[KeyPackage<C>],
    pkp: &PublicKeyPackage<C>,
    message: &[u8],
    seed: u64,
) -> bool {
    sign_directly(kps, pkp, message, seed)
        .is_some_and(|s| verify_independently(pkp, message, &s).is_ok())
}

/// Signs `message` through the `FrostSign` session with `signers` (the first coordinates).
fn sign_and_verify<C: FrostScheme>(
    kps: &BTreeMap<ParticipantId, KeyPackage<C>>,
    pkp: &PublicKeyPackage<C>,
    signers: &BTreeSet<ParticipantId>,
    message: &[u8],
    seed: u64,
) {
    let coordinator = *signers.first().unwrap();
    let (sigs, _) = run_sign(
        kps,
        pkp,
        signers,
        coordinator,
        &[message.to_vec()],
        seed,
        Delivery::Fifo,
    );
    assert!(
        verify_independently(pkp, message, &sigs[0]).is_ok(),
        "{:?}",
        C::SCHEME
    );
}

// ---------------------------------------------------------------------------------------------
// Property: random (t, n) -> (t', n') with random overlap, every ciphersuite.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Case {
    t: u16,
    old: BTreeSet<ParticipantId>,
    plan: Plan,
    signers: BTreeSet<ParticipantId>,
    replaced: prop::sample::Index,
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (2usize..=9, 2usize..=9)
        .prop_flat_map(|(n, n2)| {
            (
                Just(n),
                Just(n2),
                2..=n as u16,
                2..=n2 as u16,
                proptest::collection::btree_set(1u16..=40, n),
                0..=n.min(n2),
            )
        })
        .prop_flat_map(|(n, n2, t, t2, old, overlap)| {
            let v: Vec<u16> = old.iter().copied().collect();
            (
                Just(t),
                Just(t2),
                Just(old),
                proptest::sample::subsequence(v.clone(), overlap),
                proptest::collection::btree_set(41u16..=80, n2 - overlap),
                proptest::sample::subsequence(v, t as usize..=n),
                any::<u64>(),
            )
        })
        .prop_flat_map(|(t, t2, old, kept, fresh, dealers, seed)| {
            let new: Vec<u16> = kept.into_iter().chain(fresh).collect();
            (
                Just((t, t2, old, new.clone(), dealers, seed)),
                proptest::sample::subsequence(new, t2 as usize),
                any::<prop::sample::Index>(),
            )
        })
        .prop_map(
            |((t, t2, old, new, dealers, seed), signers, replaced)| Case {
                t,
                old: old.into_iter().map(pid).collect(),
                plan: Plan {
                    dealers: dealers.into_iter().map(pid).collect(),
                    new_members: new.into_iter().map(pid).collect(),
                    new_threshold: t2,
                },
                signers: signers.into_iter().map(pid).collect(),
                replaced,
                seed,
            },
        )
}

fn reshare_property<C: FrostScheme>() {
    let mut runner = TestRunner::new(Config {
        cases: 32,
        ..Config::default()
    });
    runner
        .run(&case_strategy(), |case| {
            let (old_kps, old_pkp, _) = run_dkg::<C>(
                &case.old,
                case.t,
                case.seed,
                Delivery::Random(Seed::from_u64(case.seed ^ 1)),
            );
            let (kps, pkp, _) = run_reshare(
                &old_kps,
                &old_pkp,
                &case.plan,
                case.seed,
                Delivery::Random(Seed::from_u64(case.seed ^ 2)),
            );
            let t2 = case.plan.new_threshold;
            let message = b"reshared".as_slice();

            // Any t' new members sign through the session; the independent verifier accepts.
            sign_and_verify(&kps, &pkp, &case.signers, message, case.seed);

            // t'-1 cannot: the session refuses to start ...
            let mut fewer = case.signers.clone();
            fewer.pop_last();
            let coordinator = *case.signers.first().unwrap();
            let refused = FrostSign::<C>::new(
                SignConfig {
                    me: coordinator,
                    coordinator,
                    signers: fewer.clone(),
                    messages: vec![message.to_vec()],
                    round_timeout: TIMEOUT,
                },
                Some(kps[&coordinator].clone()),
                Some(pkp.clone()),
                &Seed::from_u64(case.seed),
                Instant::ZERO,
            );
            let refused_as_expected = matches!(
                refused.err(),
                Some(ConfigError::BadThreshold { .. } | ConfigError::BadParticipantCount(_))
            );
            prop_assert!(refused_as_expected);
            // ... and the mathematics does not give a valid signature even when frost's
            // count checks are bypassed by relabelling the threshold.
            let forged: Vec<_> = fewer
                .iter()
                .map(|p| forged_key_package(*p, *kps[p].signing_share(), &pkp, t2 - 1))
                .collect();
            prop_assert!(!produces_valid_signature(
                &forged,
                &with_threshold(&pkp, t2 - 1),
                message,
                case.seed
            ));

            // Honest t' shares through the same direct path do verify (the helper is sound).
            let honest: Vec<_> = case.signers.iter().map(|p| kps[p].clone()).collect();
            prop_assert!(produces_valid_signature(&honest, &pkp, message, case.seed));

            // Old shares mixed with new ones do not sign: replace one signer's new share by an
            // old share (its own if it held one, else some dealer's).
            let victim = *case
                .signers
                .iter()
                .nth(case.replaced.index(case.signers.len()))
                .unwrap();
            let old_holder = if old_kps.contains_key(&victim) {
                victim
            } else {
                *case.plan.dealers.first().unwrap()
            };
            let mixed: Vec<_> = case
                .signers
                .iter()
                .map(|p| {
                    if *p == victim {
                        forged_key_package(*p, *old_kps[&old_holder].signing_share(), &pkp, t2)
                    } else {
                        kps[p].clone()
                    }
                })
                .collect();
            prop_assert!(!produces_valid_signature(&mixed, &pkp, message, case.seed));
            Ok(())
        })
        .unwrap();
}

#[test]
fn reshare_keeps_the_key_any_t_prime_sign_fewer_and_mixed_cannot() {
    for_each_suite!(reshare_property);
}

// ---------------------------------------------------------------------------------------------
// Malicious dealers: a fixed scenario, old 3-of-5 {1..5}, new 3-of-5 {3, 4, 6, 7, 8}.
// ---------------------------------------------------------------------------------------------

fn scenario<C: CommitmentWire>(
    seed: u64,
) -> (BTreeMap<ParticipantId, KeyPackage<C>>, PublicKeyPackage<C>) {
    let (kps, pkp, _) = run_dkg::<C>(&set(&[1, 2, 3, 4, 5]), 3, seed, Delivery::Fifo);
    (kps, pkp)
}

fn plan_with_dealers(dealers: &[u16]) -> Plan {
    Plan {
        dealers: set(dealers),
        new_members: set(&[3, 4, 6, 7, 8]),
        new_threshold: 3,
    }
}

/// Rewrites the deals `cheater` sends with `rewrite(to, fields)`.
fn tamper_deals<C: CommitmentWire>(
    net: &mut LocalNet<FrostReshare<C>>,
    cheater: ParticipantId,
    mut rewrite: impl FnMut(ParticipantId, &mut Vec<Vec<u8>>) + 'static,
) {
    net.intercept(Box::new(move |from, to, bytes| {
        let mut f = Frame::decode(bytes).unwrap();
        if from == cheater && f.kind == KIND_DEAL {
            rewrite(to, &mut f.fields);
        }
        vec![f.encode()]
    }));
}

/// Checks the honest outcome after one dealer cheated: with enough honest dealers every new
/// member finishes without it and signs; with too few, every new member fails naming it.
fn check_cheater_outcome<C: FrostScheme>(
    mut net: LocalNet<FrostReshare<C>>,
    old_pkp: &PublicKeyPackage<C>,
    plan: &Plan,
    cheater: ParticipantId,
    expected: ExclusionReason,
    enough_honest: bool,
    seed: u64,
) {
    net.run(1_000_000);
    if enough_honest {
        let all: BTreeSet<_> = plan.dealers.union(&plan.new_members).copied().collect();
        let (kps, pkp, q, excluded) = members_of(&mut net, old_pkp, plan, &all);
        let mut honest = plan.dealers.clone();
        honest.remove(&cheater);
        assert_eq!(q, honest, "{:?}", C::SCHEME);
        assert_eq!(excluded.keys().copied().collect::<Vec<_>>(), vec![cheater]);
        assert!(
            excluded[&cheater].iter().all(|e| e.reason == expected),
            "{excluded:?}"
        );
        sign_and_verify(&kps, &pkp, &set(&[4, 6, 8]), b"after a cheater", seed);
    } else {
        // Every new member fails naming the cheater: by its own count, or because another
        // member's abort (with the same culprits) reached it first.
        let mut own = 0;
        for p in &plan.new_members {
            let f = net.results[p].as_ref().unwrap_err();
            assert_eq!(
                f.culprits,
                BTreeSet::from([cheater]),
                "{:?} at {p:?}: {f:?}",
                C::SCHEME
            );
            match f.kind {
                FailureKind::TooFewQualifiedDealers {
                    qualified: 2,
                    needed: 3,
                } => own += 1,
                FailureKind::PeerAborted { by } => assert!(plan.new_members.contains(&by)),
                ref other => panic!("{:?} at {p:?}: {other:?}", C::SCHEME),
            }
        }
        assert!(own >= 1);
    }
}

fn bad_subshare<C: FrostScheme>() {
    let (kps, pkp) = scenario::<C>(21);
    for (dealers, enough) in [(&[1u16, 2, 3, 4][..], true), (&[1, 2, 3][..], false)] {
        let plan = plan_with_dealers(dealers);
        let mut net = reshare_net(&kps, &pkp, &plan, 21, Delivery::Fifo);
        // Dealer 2 (not a new member) gives receiver 6 a sub-share off by one.
        tamper_deals(&mut net, pid(2), |to, fields| {
            if to == pid(6) {
                let s = SigningShare::<C>::deserialize(&fields[0]).unwrap();
                fields[0] = SigningShare::<C>::new(s.to_scalar() + FieldOf::<C>::one()).serialize();
            }
        });
        check_cheater_outcome(
            net,
            &pkp,
            &plan,
            pid(2),
            ExclusionReason::BadShare,
            enough,
            21,
        );
    }
}

#[test]
fn malicious_dealer_bad_subshare_is_named_and_excluded() {
    for_each_suite!(bad_subshare);
}

fn wrong_constant_term<C: FrostScheme>() {
    let (kps, pkp) = scenario::<C>(22);
    for (dealers, enough) in [(&[1u16, 2, 3, 4][..], true), (&[1, 3, 4][..], false)] {
        let plan = plan_with_dealers(dealers);
        // Dealer 3 (also a new member) re-shares a secret of its own choosing with a perfectly
        // consistent dealing: every sub-share matches, only the constant term is wrong.
        let cheater = pid(3);
        let mut rng = Seed::from_u64(99).rng();
        let other = SigningShare::<C>::new(FieldOf::<C>::random(&mut rng));
        let evil = math::deal::<C, _>(&other, 3, &plan.new_members, &mut rng).unwrap();
        let mut net = reshare_net(&kps, &pkp, &plan, 22, Delivery::Fifo);
        tamper_deals(&mut net, cheater, move |to, fields| {
            fields[0] = evil.share(to).unwrap().serialize();
            for (k, c) in evil.commitment().iter().enumerate() {
                fields[1 + k] = c.serialize().unwrap();
            }
        });
        check_cheater_outcome(
            net,
            &pkp,
            &plan,
            cheater,
            ExclusionReason::BadConstantTerm,
            enough,
            22,
        );
    }
}

#[test]
fn malicious_dealer_wrong_constant_term_is_named_and_excluded() {
    for_each_suite!(wrong_constant_term);
}

fn equivocating_dealer<C: FrostScheme>() {
    let (kps, pkp) = scenario::<C>(23);
    for (dealers, enough) in [(&[1u16, 2, 3, 5][..], true), (&[1, 2, 5][..], false)] {
        let plan = plan_with_dealers(dealers);
        // Dealer 5 sends receiver 7 a second, equally valid dealing of its real share (the
        // right constant term, a matching sub-share) with a different commitment than the rest
        // got. Each receiver's own checks pass; only the echo can see it.
        let cheater = pid(5);
        let mut rng = Seed::from_u64(98).rng();
        let second = math::deal::<C, _>(
            kps[&cheater].signing_share(),
            3,
            &plan.new_members,
            &mut rng,
        )
        .unwrap();
        let mut net = reshare_net(&kps, &pkp, &plan, 23, Delivery::Fifo);
        tamper_deals(&mut net, cheater, move |to, fields| {
            if to == pid(7) {
                fields[0] = second.share(to).unwrap().serialize();
                for (k, c) in second.commitment().iter().enumerate() {
                    fields[1 + k] = c.serialize().unwrap();
                }
            }
        });
        check_cheater_outcome(
            net,
            &pkp,
            &plan,
            cheater,
            ExclusionReason::InconsistentCommitment,
            enough,
            23,
        );
    }
}

#[test]
fn malicious_dealer_different_commitments_to_different_receivers_is_named_and_excluded() {
    for_each_suite!(equivocating_dealer);
}

#[test]
fn malicious_receiver_false_complaint_only_excludes_and_is_recorded() {
    type C = frost_secp256k1::Secp256K1Sha256;
    let (kps, pkp) = scenario::<C>(24);
    let plan = plan_with_dealers(&[1, 2, 3, 4]);
    let mut net = reshare_net(&kps, &pkp, &plan, 24, Delivery::Fifo);
    // Receiver 6 falsely accuses honest dealer 1, consistently to everyone. To the rest of the
    // network a lying receiver is indistinguishable from one that really received a bad
    // sub-share, so the lie is modelled by corrupting 1's deal to 6 in transit: 6's session
    // then complains on its own, and its echo and confirmation stay self-consistent.
    tamper_deals(&mut net, pid(1), |to, fields| {
        if to == pid(6) {
            let s = SigningShare::<C>::deserialize(&fields[0]).unwrap();
            fields[0] = SigningShare::<C>::new(s.to_scalar() + FieldOf::<C>::one()).serialize();
        }
    });
    net.run(1_000_000);
    let all: BTreeSet<_> = plan.dealers.union(&plan.new_members).copied().collect();
    let (kps2, pkp2, q, excluded) = members_of(&mut net, &pkp, &plan, &all);
    assert_eq!(q, set(&[2, 3, 4]));
    assert_eq!(
        excluded,
        BTreeMap::from([(
            pid(1),
            vec![Exclusion {
                reporter: pid(6),
                reason: ExclusionReason::BadShare
            }]
        )])
    );
    // Denial of service at most: the key is the same and works.
    sign_and_verify(&kps2, &pkp2, &set(&[3, 7, 8]), b"still fine", 24);
}

#[test]
fn equivocating_receiver_is_named_by_the_confirmation() {
    type C = frost_p256::P256Sha256;
    let (kps, pkp) = scenario::<C>(25);
    let plan = plan_with_dealers(&[1, 2, 3, 4]);
    let mut net = reshare_net(&kps, &pkp, &plan, 25, Delivery::Fifo);
    // Receiver 6 accuses dealer 1 to receiver 3 only: the receivers compute different Q.
    net.intercept(Box::new(|from, to, bytes| {
        let mut f = Frame::decode(bytes).unwrap();
        if from == pid(6) && to == pid(3) && f.kind == KIND_VERDICT {
            f.fields[1][0] = 2;
        }
        vec![f.encode()]
    }));
    net.run(1_000_000);
    let mut detected = 0;
    for p in [3u16, 4, 7, 8] {
        let f = net.results[&pid(p)].as_ref().unwrap_err();
        assert_eq!(f.culprits, BTreeSet::from([pid(6)]), "at {p}: {f:?}");
        match f.kind {
            FailureKind::InconsistentBroadcast { sender, .. } => {
                assert_eq!(sender, pid(6));
                detected += 1;
            }
            FailureKind::PeerAborted { .. } => {}
            ref other => panic!("at {p}: {other:?}"),
        }
    }
    assert!(detected >= 1);
}

// ---------------------------------------------------------------------------------------------
// Crashes: any party stopped after any round.
// ---------------------------------------------------------------------------------------------

fn crash_property<C: FrostScheme>() {
    // Old 2-of-4 {1,2,3,4}; dealers {1,2,3}; new 2-of-3 {3,4,5}. Roles: 1 and 2 deal only, 3
    // deals and receives, 4 (an old holder that does not deal) and 5 (fresh) receive.
    let old = set(&[1, 2, 3, 4]);
    let (old_kps, old_pkp, _) = run_dkg::<C>(&old, 2, 31, Delivery::Fifo);
    let plan = Plan {
        dealers: set(&[1, 2, 3]),
        new_members: set(&[3, 4, 5]),
        new_threshold: 2,
    };
    for victim in [1u16, 3, 4, 5].map(pid) {
        for stop_after in 0u8..=3 {
            let seed = 1000 + u64::from(victim.get()) * 10 + u64::from(stop_after);
            let mut net = reshare_net(
                &old_kps,
                &old_pkp,
                &plan,
                seed,
                Delivery::Random(Seed::from_u64(seed)),
            );
            if stop_after == 0 {
                net.silence(victim);
            } else if !plan.new_members.contains(&victim) {
                // A dealer-only party is done once its deals are out: let them arrive, then stop it.
                net.run(1_000_000);
                net.silence(victim);
            } else {
                loop {
                    let past = net
                        .session(victim)
                        .and_then(|s| s.round())
                        .is_none_or(|r| r > stop_after);
                    if past {
                        net.silence(victim);
                        break;
                    }
                    if !net.step() {
                        break;
                    }
                }
            }
            net.run(1_000_000);
            let live: BTreeSet<_> = plan
                .dealers
                .union(&plan.new_members)
                .copied()
                .filter(|p| *p != victim)
                .collect();
            let live_members: BTreeSet<_> = plan.new_members.intersection(&live).copied().collect();
            let ctx = format!(
                "{:?} victim {victim:?} stopped after round {stop_after}",
                C::SCHEME
            );
            // Each live new member either finished (all that did agree on v+1) or failed naming
            // exactly the victim. Both can happen in one run when the victim stops between
            // sending its confirmation to some members and to others: that is why activation
            // of v+1 is the cluster's decision, not one member's (docs/resharing.md).
            let mut finished = BTreeMap::new();
            let mut pkps = BTreeSet::new();
            for p in &live_members {
                match &net.results[p] {
                    Ok(ReshareOutput::Member(m)) => {
                        assert_eq!(
                            m.public_key_package.verifying_key(),
                            old_pkp.verifying_key(),
                            "{ctx}"
                        );
                        pkps.insert(m.public_key_package.serialize().unwrap());
                        finished.insert(*p, m.key_package.clone());
                    }
                    Ok(other) => panic!("{ctx}: {other:?}"),
                    Err(f) => {
                        assert_eq!(
                            f.culprits,
                            BTreeSet::from([victim]),
                            "{ctx} at {p:?}: {f:?}"
                        );
                        assert!(
                            matches!(
                                f.kind,
                                FailureKind::Timeout { .. }
                                    | FailureKind::TooFewQualifiedDealers { .. }
                            ),
                            "{ctx}: {f:?}"
                        );
                    }
                }
            }
            assert!(pkps.len() <= 1, "{ctx}");
            if finished.len() == live_members.len() {
                let pkp = PublicKeyPackage::<C>::deserialize(pkps.first().unwrap()).unwrap();
                sign_and_verify(&finished, &pkp, &live_members, b"after a crash", seed);
            }
            if !plan.new_members.contains(&victim) {
                assert_eq!(
                    finished.len(),
                    live_members.len(),
                    "{ctx}: losing a dealer-only party costs nothing"
                );
            }
            // Version v is untouched and still signs (with two old holders that are not the victim).
            let old_signers: BTreeSet<_> = old
                .iter()
                .copied()
                .filter(|p| *p != victim)
                .take(2)
                .collect();
            sign_and_verify(&old_kps, &old_pkp, &old_signers, b"v still works", seed);

            // The retry: a new session, fresh seed, the remaining parties.
            let retry = Plan {
                dealers: plan
                    .dealers
                    .iter()
                    .copied()
                    .filter(|p| *p != victim)
                    .collect(),
                new_members: plan
                    .new_members
                    .iter()
                    .copied()
                    .filter(|p| *p != victim)
                    .collect(),
                new_threshold: 2,
            };
            let (kps, pkp, _) = run_reshare(
                &old_kps,
                &old_pkp,
                &retry,
                seed + 5000,
                Delivery::Random(Seed::from_u64(seed)),
            );
            sign_and_verify(&kps, &pkp, &retry.new_members, b"after the retry", seed);
        }
    }
}

#[test]
fn crash_after_any_round_keeps_v_signable_and_a_retry_completes() {
    for_each_suite!(crash_property);
}

// ---------------------------------------------------------------------------------------------
// Arbitrary input, determinism, refresh, Taproot, configuration errors.
// ---------------------------------------------------------------------------------------------

fn garbage_property<C: FrostScheme>() {
    let (kps, pkp) = scenario::<C>(41);
    let plan = plan_with_dealers(&[1, 2, 3, 4]);
    let scalar_len = FieldOf::<C>::serialize(&FieldOf::<C>::one()).as_ref().len();
    let element_len = <C::Group as Group>::serialize(&<C::Group as Group>::generator())
        .unwrap()
        .as_ref()
        .len();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let junk = (
        1u16..=9,
        1u16..=9,
        0usize..7,
        0usize..6,
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<u8>(),
        0u64..40,
    );
    runner
        .run(
            &(any::<u64>(), proptest::collection::vec(junk, 0..30)),
            |(seed, junk)| {
                let mut net = reshare_net(
                    &kps,
                    &pkp,
                    &plan,
                    seed,
                    Delivery::Random(Seed::from_u64(seed)),
                );
                let mut senders = BTreeSet::new();
                for (from, to, kind, count, bytes, shape, steps) in junk {
                    let kind = [
                        KIND_DEAL,
                        KIND_VERDICT,
                        KIND_CONFIRM,
                        KIND_ABORT,
                        11,
                        200,
                        KIND_DEAL,
                    ][kind];
                    // Fields of the sizes the decoders expect, filled from the random bytes, so the
                    // junk reaches past the size checks; or raw bytes.
                    let sizes = match (kind, shape % 3) {
                        (KIND_DEAL, 0) => std::iter::once(scalar_len)
                            .chain(std::iter::repeat_n(element_len, 3))
                            .collect(),
                        (KIND_VERDICT, 0) => vec![4 * 32, 4],
                        (KIND_CONFIRM, 0) => vec![5 * 32, 32],
                        _ => vec![bytes.len() / count.max(1); count],
                    };
                    let mut fields = Vec::new();
                    let mut it = bytes.iter().copied().cycle();
                    for s in sizes {
                        let mut f: Vec<u8> = it.by_ref().take(s).collect();
                        if kind == KIND_VERDICT && f.len() == 4 {
                            f.iter_mut().for_each(|b| *b %= 5);
                        }
                        f.resize(s, 0);
                        fields.push(f);
                    }
                    let bytes = if shape % 7 == 6 {
                        bytes
                    } else {
                        Frame::new(kind, fields).encode()
                    };
                    net.inject(pid(from), pid(to), bytes);
                    senders.insert(pid(from));
                    for _ in 0..steps {
                        net.step();
                    }
                }
                net.run(1_000_000);
                for r in net.results.values() {
                    if let Err(f) = r {
                        prop_assert!(
                            !matches!(
                                f.kind,
                                FailureKind::Library(_) | FailureKind::GroupKeyChanged
                            ),
                            "{f:?}"
                        );
                    }
                }
                // Junk from outside the run changes nothing: everyone still finishes.
                if senders.is_subset(&set(&[5, 9])) {
                    prop_assert!(net.results.values().all(|r| r.is_ok()), "{:?}", net.results);
                }
                // Finished sessions take junk quietly too.
                for from in 1..=9 {
                    net.inject(
                        pid(from),
                        pid(3),
                        Frame::new(KIND_CONFIRM, vec![vec![0; 5]]).encode(),
                    );
                }
                net.run(1_000);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn arbitrary_frames_in_every_state_never_panic() {
    for_each_suite!(garbage_property);
}

#[test]
fn same_seed_same_transcript_fresh_seed_fresh_shares_same_key() {
    fn check<C: FrostScheme>() {
        let (kps, pkp) = scenario::<C>(51);
        let plan = plan_with_dealers(&[2, 3, 5]);
        let a = run_reshare(&kps, &pkp, &plan, 7, Delivery::Random(Seed::from_u64(7)));
        let b = run_reshare(&kps, &pkp, &plan, 7, Delivery::Random(Seed::from_u64(7)));
        assert_eq!(a.2, b.2, "{:?}: one seed, one transcript", C::SCHEME);
        let c = run_reshare(&kps, &pkp, &plan, 8, Delivery::Random(Seed::from_u64(7)));
        assert_ne!(a.2, c.2);
        assert_eq!(a.1.verifying_key(), c.1.verifying_key());
        for p in &plan.new_members {
            assert_ne!(
                a.0[p].signing_share(),
                c.0[p].signing_share(),
                "a retry draws fresh shares"
            );
        }
    }
    for_each_suite!(check);
}

#[test]
fn refresh_keeps_members_threshold_and_key_and_replaces_every_share() {
    fn check<C: FrostScheme>() {
        let members = set(&[2, 5, 9, 11]);
        let (kps, pkp, _) = run_dkg::<C>(&members, 3, 61, Delivery::Fifo);
        let root = Seed::from_u64(61);
        let sessions: Vec<_> = members
            .iter()
            .map(|me| {
                let cfg = ReshareConfig::refresh(*me, members.clone(), 3, V1, TIMEOUT);
                FrostReshare::new(
                    cfg,
                    Some(&kps[me]),
                    pkp.clone(),
                    &root.child(b"refresh", &me.get().to_be_bytes()),
                    Instant::ZERO,
                )
                .unwrap()
            })
            .collect();
        let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
        net.run(1_000_000);
        let plan = Plan {
            dealers: members.clone(),
            new_members: members.clone(),
            new_threshold: 3,
        };
        let (new_kps, new_pkp, _, _) = members_of(&mut net, &pkp, &plan, &members);
        for p in &members {
            assert_ne!(new_kps[p].signing_share(), kps[p].signing_share());
            assert_ne!(
                new_pkp.verifying_shares()[&p.to_frost()],
                pkp.verifying_shares()[&p.to_frost()]
            );
        }
        sign_and_verify(&new_kps, &new_pkp, &set(&[2, 9, 11]), b"refreshed", 61);
    }
    for_each_suite!(check);
}

#[test]
fn taproot_reshare_keeps_the_tweaked_key_and_post_dkg_is_not_reapplied() {
    fn check<C: FrostScheme>() {
        let (kps, pkp) = scenario::<C>(71);
        let plan = plan_with_dealers(&[1, 4, 5]);
        let (new_kps, new_pkp, _) = run_reshare(&kps, &pkp, &plan, 71, Delivery::Fifo);
        assert_eq!(new_pkp.verifying_key(), pkp.verifying_key());
        sign_and_verify(&new_kps, &new_pkp, &set(&[3, 6, 7]), b"taproot", 71);
        // What applying the ciphersuite's post-processing again would do.
        let kp = new_kps[&pid(3)].clone();
        let (_, again) = C::post_dkg(kp, new_pkp.clone()).unwrap();
        let is_taproot = C::SCHEME == crate::scheme::Scheme::FrostSecp256k1Taproot;
        assert_eq!(
            again.verifying_key() != pkp.verifying_key(),
            is_taproot,
            "{:?}: post_dkg tweaks (Taproot) or is the identity (others)",
            C::SCHEME
        );
    }
    for_each_suite!(check);
}

#[test]
fn config_errors_are_typed() {
    type C = frost_ed25519::Ed25519Sha512;
    let (kps, pkp) = scenario::<C>(81);
    let make = |me: u16, dealers: &[u16], new: &[u16], t2: u16, kp: Option<u16>| {
        let cfg = ReshareConfig {
            me: pid(me),
            from_version: V1,
            dealers: set(dealers),
            new_members: set(new),
            new_threshold: t2,
            round_timeout: TIMEOUT,
            run: Vec::new(),
        };
        FrostReshare::<C>::new(
            cfg,
            kp.map(|k| &kps[&pid(k)]),
            pkp.clone(),
            &Seed::from_u64(0),
            Instant::ZERO,
        )
        .err()
    };
    assert_eq!(
        make(1, &[1, 2], &[1, 6], 2, Some(1)),
        Some(ConfigError::TooFewDealers {
            dealers: 2,
            threshold: 3
        })
    );
    assert_eq!(
        make(9, &[1, 2, 3], &[1, 6], 2, None),
        Some(ConfigError::NotAParticipant)
    );
    assert!(matches!(
        make(1, &[1, 2, 3], &[1, 6], 3, Some(1)),
        Some(ConfigError::BadThreshold { .. })
    ));
    assert!(matches!(
        make(1, &[1, 2, 3], &[1, 6], 1, Some(1)),
        Some(ConfigError::BadThreshold { .. })
    ));
    assert!(matches!(
        make(1, &[1, 2, 3], &[1], 1, Some(1)),
        Some(ConfigError::BadParticipantCount(1))
    ));
    assert_eq!(
        make(1, &[1, 2, 3], &[1, 6], 2, None),
        Some(ConfigError::MissingKeyMaterial("old key package"))
    );
    assert!(matches!(
        make(1, &[1, 2, 3], &[1, 6], 2, Some(2)),
        Some(ConfigError::KeyMaterialMismatch(_))
    ));
    assert!(matches!(
        make(1, &[1, 2, 9], &[1, 6], 2, Some(1)),
        Some(ConfigError::KeyMaterialMismatch(_))
    ));
    assert_eq!(
        make(6, &[1, 2, 3], &[1, 6], 2, None),
        None,
        "a fresh receiver needs no old share"
    );
}

#[test]
fn outputs_redact_secrets() {
    type C = frost_ed25519::Ed25519Sha512;
    let (kps, pkp) = scenario::<C>(82);
    let plan = plan_with_dealers(&[1, 2, 3]);
    let mut net = reshare_net(&kps, &pkp, &plan, 82, Delivery::Fifo);
    net.run(1_000_000);
    let out = net.results[&pid(6)].as_ref().unwrap();
    let ReshareOutput::Member(m) = out else {
        panic!("{out:?}")
    };
    let secret = hex::encode(m.key_package.signing_share().serialize());
    let shown = format!("{out:?}");
    assert!(
        shown.contains("redacted") && !shown.contains(&secret),
        "{shown}"
    );
    assert_eq!(
        net.results[&pid(1)].as_ref().unwrap().role(),
        ReshareRole::Dealer
    );
}

// ---------------------------------------------------------------------------------------------
// Rotation in virtual time, with real refresh sessions.
// ---------------------------------------------------------------------------------------------

#[test]
fn rotation_refreshes_every_interval_and_once_after_a_long_outage() {
    type C = frost_ed25519::Ed25519Sha512;
    let members = set(&[1, 2, 3]);
    let (mut kps, pkp0, _) = run_dkg::<C>(&members, 2, 91, Delivery::Fifo);
    let mut pkp = pkp0.clone();
    let key = KeyId::new("wallet-1").unwrap();
    let mut schedule = RotationSchedule::new(DEFAULT_RETRY_AFTER);
    schedule.insert(key.clone(), KeyRotation::new(V1, Instant::ZERO, None));
    let mut rotations: Vec<Instant> = Vec::new();
    let refresh = |now: Instant,
                   from: KeyVersion,
                   kps: &mut BTreeMap<ParticipantId, KeyPackage<C>>,
                   pkp: &mut PublicKeyPackage<C>| {
        let root = Seed::from_u64(91).child(b"rotation", &from.0.to_be_bytes());
        let sessions: Vec<_> = members
            .iter()
            .map(|me| {
                let cfg = ReshareConfig::refresh(*me, members.clone(), 2, from, TIMEOUT);
                FrostReshare::new(
                    cfg,
                    Some(&kps[me]),
                    pkp.clone(),
                    &root.child(b"m", &me.get().to_be_bytes()),
                    now,
                )
                .unwrap()
            })
            .collect();
        let mut net = LocalNet::new(sessions, Delivery::Fifo, now);
        net.run(1_000_000);
        for (id, r) in std::mem::take(&mut net.results) {
            let ReshareOutput::Member(m) = r.unwrap() else {
                panic!()
            };
            assert_eq!(m.version, KeyVersion(from.0 + 1));
            kps.insert(id, m.key_package.clone());
            *pkp = m.public_key_package.clone();
        }
        net.now()
    };
    let tick = Duration::from_secs(15 * 60);
    let drive = |from: Instant,
                 until: Instant,
                 schedule: &mut RotationSchedule,
                 rotations: &mut Vec<Instant>,
                 kps: &mut BTreeMap<ParticipantId, KeyPackage<C>>,
                 pkp: &mut PublicKeyPackage<C>| {
        let mut now = from;
        while now <= until {
            for cmd in schedule.poll(now) {
                let RotationCommand::StartRefresh {
                    key: k,
                    from_version,
                } = cmd;
                let done = refresh(now, from_version, kps, pkp);
                schedule.on_refreshed(&k, from_version, done).unwrap();
                rotations.push(now);
            }
            now = now.saturating_add(tick);
        }
    };
    let day = DEFAULT_ROTATION_INTERVAL;
    let three_days = Instant::ZERO.saturating_add(day * 3);
    drive(
        Instant::ZERO,
        three_days,
        &mut schedule,
        &mut rotations,
        &mut kps,
        &mut pkp,
    );
    assert_eq!(
        rotations,
        vec![
            Instant::ZERO.saturating_add(day),
            Instant::ZERO.saturating_add(day * 2),
            Instant::ZERO.saturating_add(day * 3)
        ],
        "one refresh per interval"
    );
    // The cluster is down for 30 days (no ticks), then comes back.
    let back = three_days.saturating_add(day * 30);
    drive(
        back,
        back.saturating_add(day),
        &mut schedule,
        &mut rotations,
        &mut kps,
        &mut pkp,
    );
    assert_eq!(
        rotations.len(),
        5,
        "once on return, then once an interval later: {rotations:?}"
    );
    assert_eq!(rotations[3], back);
    assert_eq!(rotations[4], back.saturating_add(day));
    assert_eq!(schedule.get(&key).unwrap().version, KeyVersion(6));
    assert_eq!(pkp.verifying_key(), pkp0.verifying_key());
    sign_and_verify(&kps, &pkp, &set(&[1, 3]), b"after five rotations", 91);
}

// ---------------------------------------------------------------------------------------------
// Versions: v+1 beside v, activation on proof, then erase v.
// ---------------------------------------------------------------------------------------------

#[test]
fn version_lifecycle_stage_test_sign_activate_then_erase() {
    use super::versions::{activation_ready, test_message, test_signature_verifies, ShareVersions};
    use crate::persist::{PersistOp, SecretBytes};
    type C = frost_secp256k1_tr::Secp256K1Sha256TR;
    let (kps, pkp) = scenario::<C>(101);
    let key = KeyId::new("vault").unwrap();
    // Dealers 1, 2 (dealer only), 3 (also new); old holder 5 neither deals nor stays.
    let plan = plan_with_dealers(&[1, 2, 3]);
    let mut net = reshare_net(&kps, &pkp, &plan, 101, Delivery::Fifo);
    net.run(1_000_000);
    let mut nodes: BTreeMap<ParticipantId, ShareVersions> = (1..=8u16)
        .map(|n| {
            (
                pid(n),
                ShareVersions::new(key.clone(), V1, kps.contains_key(&pid(n))),
            )
        })
        .collect();
    let mut reports = BTreeMap::new();
    let mut new_kps = BTreeMap::new();
    let mut new_pkp = None;
    for (id, r) in std::mem::take(&mut net.results) {
        if let ReshareOutput::Member(m) = r.unwrap() {
            let bytes = SecretBytes::new(m.key_package.serialize().unwrap());
            let op = nodes.get_mut(&id).unwrap().stage(m.version, bytes).unwrap();
            assert!(matches!(
                op,
                PersistOp::PutShare {
                    version: KeyVersion(2),
                    ..
                }
            ));
            // ... durable, then reported:
            reports.insert(id, m.confirmation_digest);
            new_kps.insert(id, m.key_package.clone());
            new_pkp = Some(m.public_key_package.clone());
        }
    }
    let new_pkp = new_pkp.unwrap();
    // Until activation every node still signs with v.
    assert!(nodes
        .values()
        .all(|v| v.signing_version() != Some(KeyVersion(2))));
    sign_and_verify(&kps, &pkp, &set(&[1, 2, 5]), b"v1 during the reshare", 101);
    // Not ready without the test signature.
    assert!(activation_ready(&plan.new_members, &reports, false).is_err());
    let message = test_message(&key, KeyVersion(2));
    let (sigs, _) = run_sign(
        &new_kps,
        &new_pkp,
        &set(&[3, 6, 8]),
        pid(3),
        std::slice::from_ref(&message),
        101,
        Delivery::Fifo,
    );
    assert!(test_signature_verifies(&new_pkp, &message, &sigs[0]));
    assert!(
        verify_independently(&new_pkp, &message, &sigs[0]).is_ok(),
        "BIP-340"
    );
    activation_ready(&plan.new_members, &reports, true).unwrap();
    // The committed activation, applied on every node.
    for (id, v) in &mut nodes {
        let ops = v.activate(KeyVersion(2)).unwrap();
        let erased_v1 = ops.contains(&PersistOp::EraseShare {
            key: key.clone(),
            version: V1,
        });
        assert_eq!(
            erased_v1,
            kps.contains_key(id),
            "{id:?}: exactly the old holders erase v1"
        );
        let expect = plan.new_members.contains(id).then_some(KeyVersion(2));
        assert_eq!(v.signing_version(), expect, "{id:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// More crash and input-hygiene properties.
// ---------------------------------------------------------------------------------------------

#[test]
fn dealer_crashing_mid_deal_is_excluded_consistently() {
    fn check<C: FrostScheme>() {
        let (kps, pkp) = scenario::<C>(111);
        let plan = plan_with_dealers(&[1, 2, 3, 4]);
        let mut net = reshare_net(&kps, &pkp, &plan, 111, Delivery::Fifo);
        // Dealer 2 crashes after its deals to 3, 4 and 6 left but before those to 7 and 8:
        // 3, 4, 6 see a valid deal, 7 and 8 see nothing and move on at the round-1 deadline.
        net.intercept(Box::new(|from, to, bytes| {
            let f = Frame::decode(bytes).unwrap();
            if from == pid(2) && f.kind == KIND_DEAL && (to == pid(7) || to == pid(8)) {
                return vec![];
            }
            vec![bytes.to_vec()]
        }));
        net.run(1_000_000);
        let all: BTreeSet<_> = plan.dealers.union(&plan.new_members).copied().collect();
        let (new_kps, new_pkp, q, excluded) = members_of(&mut net, &pkp, &plan, &all);
        assert_eq!(q, set(&[1, 3, 4]));
        assert_eq!(
            excluded[&pid(2)],
            vec![
                Exclusion {
                    reporter: pid(7),
                    reason: ExclusionReason::Missing
                },
                Exclusion {
                    reporter: pid(8),
                    reason: ExclusionReason::Missing
                },
            ]
        );
        sign_and_verify(&new_kps, &new_pkp, &set(&[3, 7, 8]), b"without 2", 111);
    }
    for_each_suite!(check);
}

/// Malformed frames from participants (wrong field counts and sizes, broken framing, wrong
/// kinds for the sender's role) and anything from outsiders are refused with no trace: every
/// message every honest party sends is byte-identical to a run without them.
fn refused_input_changes_nothing<C: FrostScheme>() {
    let (kps, pkp) = scenario::<C>(121);
    let plan = plan_with_dealers(&[1, 2, 3, 4]);
    let honest = {
        let mut net = reshare_net(&kps, &pkp, &plan, 121, Delivery::Fifo);
        net.run(1_000_000);
        net.sends_digest()
    };
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let junk = (
        1u16..=9,
        1u16..=9,
        0u8..6,
        proptest::collection::vec(any::<u8>(), 0..120),
        0u64..30,
    );
    runner
        .run(&proptest::collection::vec(junk, 1..20), |junk| {
            let mut net = reshare_net(&kps, &pkp, &plan, 121, Delivery::Fifo);
            let mut injected = 0;
            for (from, to, shape, bytes, steps) in junk {
                let frame = match shape {
                    // One field too many for a deal (t' = 3 → 4 fields expected).
                    0 => Frame::new(KIND_DEAL, vec![bytes.clone(); 5]).encode(),
                    // A verdict and a confirmation with one field.
                    1 => Frame::new(KIND_VERDICT, vec![bytes.clone()]).encode(),
                    2 => Frame::new(KIND_CONFIRM, vec![bytes.clone()]).encode(),
                    // A verdict from a dealer that is not a new member (1 and 2), or an outsider.
                    3 => Frame::new(KIND_VERDICT, vec![vec![0; 4 * 32], vec![0; 4]]).encode(),
                    // Broken framing.
                    4 => {
                        let mut b = Frame::new(KIND_DEAL, vec![bytes.clone()]).encode();
                        b.push(0);
                        b
                    }
                    // Another protocol's kind.
                    _ => Frame::new(1, vec![bytes.clone()]).encode(),
                };
                let from = if shape == 3 {
                    [1, 2, 5, 9][usize::from(from) % 4]
                } else {
                    from
                };
                net.inject(pid(from), pid(to), frame);
                injected += 1;
                for _ in 0..steps {
                    net.step();
                }
            }
            net.run(1_000_000);
            prop_assert!(net.results.values().all(|r| r.is_ok()), "{:?}", net.results);
            prop_assert_eq!(net.sends_digest(), honest);
            // Every injected frame was refused (late ones at finished sessions are dropped quietly).
            prop_assert!(net.rejections.len() <= injected);
            Ok(())
        })
        .unwrap();
}

#[test]
fn refused_input_leaves_no_trace() {
    for_each_suite!(refused_input_changes_nothing);
}

/// One random party crashes at a random point of a random reshare: v still signs, every live new
/// member either finished (all agreeing) or failed naming exactly the crashed party, and a retry
/// without it completes.
fn random_crash_property<C: FrostScheme>() {
    let mut runner = TestRunner::new(Config {
        cases: 8,
        ..Config::default()
    });
    runner
        .run(
            &(case_strategy(), any::<prop::sample::Index>(), 0u64..200),
            |(case, who, at_step)| {
                let (old_kps, old_pkp, _) =
                    run_dkg::<C>(&case.old, case.t, case.seed, Delivery::Fifo);
                let everyone: Vec<_> = case
                    .plan
                    .dealers
                    .union(&case.plan.new_members)
                    .copied()
                    .collect();
                let victim = everyone[who.index(everyone.len())];
                let mut net = reshare_net(
                    &old_kps,
                    &old_pkp,
                    &case.plan,
                    case.seed,
                    Delivery::Random(Seed::from_u64(case.seed)),
                );
                for _ in 0..at_step {
                    if !net.step() {
                        break;
                    }
                }
                net.silence(victim);
                net.run(1_000_000);
                let mut pkps = BTreeSet::new();
                let mut finished = BTreeMap::new();
                for p in case.plan.new_members.iter().filter(|p| **p != victim) {
                    match &net.results[p] {
                        Ok(ReshareOutput::Member(m)) => {
                            prop_assert_eq!(
                                m.public_key_package.verifying_key(),
                                old_pkp.verifying_key()
                            );
                            pkps.insert(m.public_key_package.serialize().unwrap());
                            finished.insert(*p, m.key_package.clone());
                        }
                        Ok(other) => prop_assert!(false, "{other:?}"),
                        Err(f) => {
                            prop_assert_eq!(&f.culprits, &BTreeSet::from([victim]), "{:?}", f);
                        }
                    }
                }
                prop_assert!(pkps.len() <= 1);
                // v still signs, with t old holders other than the victim when there are t of them.
                let old_signers: BTreeSet<_> = case
                    .old
                    .iter()
                    .copied()
                    .filter(|p| *p != victim)
                    .take(usize::from(case.t))
                    .collect();
                if old_signers.len() == usize::from(case.t) && old_signers.len() >= 2 {
                    sign_and_verify(&old_kps, &old_pkp, &old_signers, b"v", case.seed);
                }
                // The retry without the victim, where the remaining parties still make a valid plan.
                let dealers: BTreeSet<_> = case
                    .plan
                    .dealers
                    .iter()
                    .copied()
                    .filter(|p| *p != victim)
                    .collect();
                let new_members: BTreeSet<_> = case
                    .plan
                    .new_members
                    .iter()
                    .copied()
                    .filter(|p| *p != victim)
                    .collect();
                let t2 = case.plan.new_threshold.min(new_members.len() as u16);
                if dealers.len() >= usize::from(case.t) && t2 >= 2 {
                    let retry = Plan {
                        dealers,
                        new_members: new_members.clone(),
                        new_threshold: t2,
                    };
                    let (kps, pkp, _) = run_reshare(
                        &old_kps,
                        &old_pkp,
                        &retry,
                        case.seed ^ 0xfeed,
                        Delivery::Fifo,
                    );
                    let signers: BTreeSet<_> =
                        new_members.iter().copied().take(usize::from(t2)).collect();
                    sign_and_verify(&kps, &pkp, &signers, b"retried", case.seed);
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn random_crash_at_any_step_keeps_v_and_names_only_the_crashed_party() {
    for_each_suite!(random_crash_property);
}

/// Issue 16, item 8: the run context binds the run (task, attempt) and the whole old public key
/// package. A member on another attempt, or holding another old package (one verifying share
/// changed), accepts nothing from the others: no honest member completes with it.
#[test]
fn a_member_of_another_attempt_or_old_package_completes_nothing_with_the_others() {
    fn check<C: FrostScheme>() {
        let members = set(&[1, 2, 3]);
        let (kps, pkp, _) = run_dkg::<C>(&members, 2, 71, Delivery::Fifo);
        let root = Seed::from_u64(71);
        let run = |me: ParticipantId, run: &[u8], pkp: PublicKeyPackage<C>| {
            let mut cfg = ReshareConfig::refresh(me, members.clone(), 2, V1, TIMEOUT);
            cfg.run = run.to_vec();
            FrostReshare::new(
                cfg,
                Some(&kps[&me]),
                pkp,
                &root.child(b"refresh", &me.get().to_be_bytes()),
                Instant::ZERO,
            )
            .unwrap()
        };
        // Node 3 on attempt 2 while 1 and 2 run attempt 1.
        let sessions = vec![
            run(pid(1), b"task 7 attempt 1", pkp.clone()),
            run(pid(2), b"task 7 attempt 1", pkp.clone()),
            run(pid(3), b"task 7 attempt 2", pkp.clone()),
        ];
        let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
        net.run(1_000_000);
        assert!(
            net.results.values().all(|r| r.is_err()),
            "a run completed across attempts"
        );
        // Node 3 holding an old package whose verifying share of node 1 differs (the group key
        // is the same): the digests differ, nothing completes.
        let mut shares = pkp.verifying_shares().clone();
        let (one, two) = (pid(1).to_frost::<C>(), pid(2).to_frost::<C>());
        let other = shares[&two];
        shares.insert(one, other);
        let forged = PublicKeyPackage::new(shares, *pkp.verifying_key(), pkp.min_signers());
        let sessions = vec![
            run(pid(1), b"task 7 attempt 1", pkp.clone()),
            run(pid(2), b"task 7 attempt 1", pkp.clone()),
            run(pid(3), b"task 7 attempt 1", forged),
        ];
        let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
        net.run(1_000_000);
        assert!(
            net.results.values().all(|r| r.is_err()),
            "a run completed across different old packages"
        );
    }
    for_each_suite!(check);
}
