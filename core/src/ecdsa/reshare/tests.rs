//! ECDSA resharing: 2-of-3 -> 3-of-5 -> 2-of-3 on both curves through the FROST resharing
//! session, the same public key throughout, the new shares signing (checked by RustCrypto and
//! OpenSSL), old shares mixed with new ones failing.

use std::collections::BTreeMap;

use cggmp24::generic_ec::coords::{AlwaysHasAffineX, HasAffineX};
use cggmp24::generic_ec::{NonZero, Point, Scalar};
use cggmp24::supported_curves::{Secp256k1, Secp256r1};

use super::super::tests::{
    all, fixture_aux, ids, keys, p, presign, sign, verify_everywhere, ROUND,
};
use super::super::{EcdsaKey, EcdsaPresign, EcdsaSign, EcdsaSignConfig, SignersConfig};
use super::*;
use crate::persist::KeyVersion;
use crate::reshare::{FrostReshare, ReshareConfig, ReshareOutput};
use crate::rng::Seed;
use crate::session::local::{Delivery, LocalNet};
use crate::time::Instant;

/// Runs a reshare of `old` (every old holder's ECDSA key) from `dealers` to `members` with
/// threshold `t`, and assembles the new ECDSA keys with the fixture aux info for `members`
/// (which must be `1..=|members|`, the fixtures' party sets).
fn reshare<E: EcdsaCurve>(
    old: &[EcdsaKey<E>],
    dealers: &[u16],
    members: u16,
    t: u16,
    from: KeyVersion,
    run: u64,
) -> Vec<EcdsaKey<E>>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let dealers = ids(dealers);
    let new_members = all(members);
    let frost: BTreeMap<ParticipantId, FrostKey<E>> = old
        .iter()
        .map(|k| {
            let me = k.parties[usize::from(k.share.core.i)];
            (me, frost_key_of(&k.share.core, &k.parties).unwrap())
        })
        .collect();
    let old_pkp = frost.values().next().unwrap().1.clone();
    let sessions: Vec<FrostReshare<E::Frost>> = dealers
        .union(&new_members)
        .map(|me| {
            let config = ReshareConfig {
                me: *me,
                from_version: from,
                dealers: dealers.clone(),
                new_members: new_members.clone(),
                new_threshold: t,
                round_timeout: ROUND,
                run: Vec::new(),
            };
            let kp = dealers.contains(me).then(|| &frost[me].0);
            FrostReshare::new(
                config,
                kp,
                old_pkp.clone(),
                &Seed::from_u64(run).child(b"ecdsa reshare", &me.get().to_be_bytes()),
                Instant::ZERO,
            )
            .unwrap()
        })
        .collect();
    let mut net = LocalNet::new(
        sessions,
        Delivery::Random(Seed::from_u64(run)),
        Instant::ZERO,
    );
    net.run(1_000_000);
    assert!(net.rejections.is_empty(), "{:?}", net.rejections);
    let mut aux: Vec<Option<_>> = fixture_aux(members).into_iter().map(Some).collect();
    let mut out = Vec::new();
    for (me, r) in std::mem::take(&mut net.results) {
        match r.unwrap_or_else(|f| panic!("{me:?} failed: {f:?}")) {
            ReshareOutput::Dealt { .. } => assert!(!new_members.contains(&me)),
            ReshareOutput::Member(m) => {
                let keygen = keygen_output_of::<E>(&m.key_package, &m.public_key_package).unwrap();
                assert_eq!(
                    keygen.parties,
                    new_members.iter().copied().collect::<Vec<_>>()
                );
                assert_eq!(keygen.threshold(), t);
                let i = usize::from(me.get() - 1);
                let aux_i = aux[i].take().unwrap();
                out.push(EcdsaKey::from_parts(keygen, aux_i).unwrap());
            }
        }
    }
    assert_eq!(out.len(), usize::from(members));
    out
}

fn signs<E: EcdsaCurve>(keys: &[EcdsaKey<E>], signers: &[u16], run: u64, message: &[u8])
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let presigs = presign(keys, &ids(signers), run);
    let sig = sign(presigs, message);
    verify_everywhere(&keys[0], message, &sig);
}

/// Presigns and signs with `keys[i]` held by participant `i + 1`, where the keys may come from
/// different versions; true only if every signer ends with a valid signature.
fn mixed_signing_succeeds<E: EcdsaCurve>(keys: &[&EcdsaKey<E>], signers: &[u16]) -> bool
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    let set = ids(signers);
    let sessions: Vec<EcdsaPresign<E>> = set
        .iter()
        .map(|me| {
            let config = SignersConfig {
                me: *me,
                signers: set.clone(),
                session_id: b"mixed".to_vec(),
                round_timeout: ROUND,
            };
            let seed = Seed::from_u64(7).child(b"mixed", &me.get().to_be_bytes());
            EcdsaPresign::<E>::new(
                config,
                keys[usize::from(me.get() - 1)],
                &seed,
                Instant::ZERO,
            )
            .unwrap()
        })
        .collect();
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    net.run(100_000);
    let mut presigs = Vec::new();
    for (_, r) in std::mem::take(&mut net.results) {
        match r {
            Ok(ps) => presigs.push(ps),
            Err(_) => return false,
        }
    }
    let sessions: Vec<EcdsaSign<E>> = presigs
        .into_iter()
        .map(|ps| {
            let config = EcdsaSignConfig {
                message: b"mixed versions".to_vec(),
                round_timeout: ROUND,
            };
            EcdsaSign::new(config, ps, Instant::ZERO).unwrap()
        })
        .collect();
    let mut net = LocalNet::new(sessions, Delivery::Fifo, Instant::ZERO);
    net.run(100_000);
    net.results.len() == set.len() && net.results.values().all(|r| r.is_ok())
}

fn round_trip<E: EcdsaCurve>(run: u64)
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
    Point<E>: HasAffineX<E>,
{
    // Version 1: cggmp24 key generation among 1..3, threshold 2.
    let v1 = keys::<E>(3, 2, run);
    let public_key = v1[0].public_key();
    signs(&v1, &[1, 3], run, b"version 1");

    // Version 2: 3-of-5, dealt by all three old holders.
    let v2 = reshare(&v1, &[1, 2, 3], 5, 3, KeyVersion(1), run + 1);
    assert!(v2
        .iter()
        .all(|k| k.public_key() == public_key && k.threshold() == 3));
    signs(
        &v2,
        &[1, 3, 5],
        run + 2,
        b"version 2, new members among the signers",
    );

    // Version 3: back to 2-of-3, dealt by three of the five (the old threshold).
    let v3 = reshare(&v2, &[2, 4, 5], 3, 2, KeyVersion(2), run + 3);
    assert!(v3
        .iter()
        .all(|k| k.public_key() == public_key && k.threshold() == 2));
    signs(&v3, &[1, 2], run + 4, b"version 3");

    // The old shares stop working: participant 1's version-1 share with participant 2's
    // version-3 share (same members, same threshold, same key) cannot sign.
    assert!(!mixed_signing_succeeds(&[&v1[0], &v3[1]], &[1, 2]));
    // ... while version 3 alone can (the same signers, the same code path).
    assert!(mixed_signing_succeeds(&[&v3[0], &v3[1]], &[1, 2]));
}

#[test]
fn secp256k1_reshare_2_of_3_to_3_of_5_and_back_keeps_the_key_and_signs() {
    round_trip::<Secp256k1>(300);
}

#[test]
fn p256_reshare_2_of_3_to_3_of_5_and_back_keeps_the_key_and_signs() {
    round_trip::<Secp256r1>(400);
}

#[test]
fn bridge_refuses_what_it_cannot_represent() {
    let v1 = keys::<Secp256k1>(3, 2, 77);
    let k = &v1[0];
    // Participants that are not the evaluation points 1..n.
    let shifted = vec![p(2), p(3), p(4)];
    assert!(matches!(
        frost_key_of(&k.share.core, &shifted),
        Err(KeyError::Invalid(_))
    ));
    assert_eq!(
        frost_key_of(&k.share.core, &[p(1), p(2)]).unwrap_err(),
        KeyError::PartiesDiffer
    );
    // A round trip through the bridge gives back the same public data and share.
    let (kp, pkp) = frost_key_of(&k.share.core, &k.parties).unwrap();
    let back = keygen_output_of::<Secp256k1>(&kp, &pkp).unwrap();
    assert_eq!(back.public_key(), k.public_key());
    assert_eq!(back.parties, k.parties);
    let (a, b): (&Scalar<Secp256k1>, &Scalar<Secp256k1>) =
        (back.share.x.as_ref(), k.share.core.x.as_ref());
    assert!(a == b, "the secret share survives the round trip");
    // A key package of another key (its share does not match the public shares) is refused by
    // cggmp24's validation.
    let other = keys::<Secp256k1>(3, 2, 78);
    let (other_kp, _) = frost_key_of(&other[0].share.core, &other[0].parties).unwrap();
    assert!(matches!(
        keygen_output_of::<Secp256k1>(&other_kp, &pkp),
        Err(KeyError::Invalid(_))
    ));
}
