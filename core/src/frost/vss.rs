//! Evaluating Feldman commitments fast, and the DKG finish built on it.
//!
//! frost-core 3.0.0's `part3` verifies each received share and computes every verifying share
//! with `evaluate_vss`, which multiplies each coefficient commitment by the full-width scalar
//! `i^k`: about 2·n·t full scalar multiplications per party (67-of-100 Ed25519: ~0.55 s).
//!
//! Identifiers here are small public integers (`u16`), so we evaluate with Horner's rule,
//! `acc = acc·i + C_k`, where `acc·i` is a double-and-add over at most 16 bits. Variable time is
//! fine: `i` and the commitments are public. Each check stays exactly the check frost-core makes
//! (every received share against its sender's commitment, the own share against the group
//! commitment); only the arithmetic is cheaper. The group commitment is the coefficient-wise sum
//! of all commitments (n·t additions), and each verifying share is its evaluation at the
//! participant's identifier.

use std::collections::BTreeMap;

use frost_core::keys::dkg::{round1, round2};
use frost_core::keys::{
    CoefficientCommitment, KeyPackage, PublicKeyPackage, SigningShare, VerifyingShare,
};
use frost_core::{Ciphersuite, Element, Group, Identifier, VerifyingKey};

use crate::ids::ParticipantId;

/// `p · k` for a small public `k`, by double-and-add from the top bit.
pub fn mul_small<C: Ciphersuite>(p: Element<C>, k: u16) -> Element<C> {
    let mut acc = <C::Group as Group>::identity();
    let top = 16 - k.leading_zeros();
    for bit in (0..top).rev() {
        acc = acc + acc;
        if (k >> bit) & 1 == 1 {
            acc = acc + p;
        }
    }
    acc
}

/// The committed polynomial evaluated "in the exponent" at the public point `x`:
/// `Σ_k C_k · x^k`, by Horner's rule with [`mul_small`].
pub fn evaluate_commitment<C: Ciphersuite>(
    coefficients: &[CoefficientCommitment<C>],
    x: u16,
) -> Element<C> {
    let mut acc = <C::Group as Group>::identity();
    for c in coefficients.iter().rev() {
        acc = mul_small::<C>(acc, x) + c.value();
    }
    acc
}

/// Whether `share` (the sender's polynomial evaluated at `receiver`) matches the sender's
/// commitment: `G · share == Σ_k C_k · receiver^k`. This is frost-core's share check.
pub fn share_matches_commitment<C: Ciphersuite>(
    share: &SigningShare<C>,
    commitment: &[CoefficientCommitment<C>],
    receiver: ParticipantId,
) -> bool {
    <C::Group as Group>::generator() * share.to_scalar()
        == evaluate_commitment::<C>(commitment, receiver.get())
}

/// Coefficient-wise sum of equally long commitments: the commitment to the sum polynomial.
/// `None` if the lengths differ or the list is empty (the session checks lengths on receipt).
pub fn sum_commitments<'a, C: Ciphersuite>(
    commitments: impl IntoIterator<Item = &'a [CoefficientCommitment<C>]>,
) -> Option<Vec<CoefficientCommitment<C>>> {
    let mut sum: Option<Vec<Element<C>>> = None;
    for c in commitments {
        match &mut sum {
            None => sum = Some(c.iter().map(|x| x.value()).collect()),
            Some(acc) => {
                if acc.len() != c.len() {
                    return None;
                }
                for (a, x) in acc.iter_mut().zip(c) {
                    *a = *a + x.value();
                }
            }
        }
    }
    sum.filter(|s| !s.is_empty())
        .map(|s| s.into_iter().map(CoefficientCommitment::new).collect())
}

/// Why the fast finish refused to produce keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishError {
    /// The inputs do not form a complete, consistent run (a session bug, not a peer fault).
    Incomplete,
    /// The sender's share does not match its commitment.
    InvalidShare(ParticipantId),
    /// The resulting own share does not match the group commitment.
    OwnShareMismatch,
    /// frost-core's post-processing (the Taproot tweak) failed.
    PostProcess(String),
}

/// DKG part 3 with the same checks as frost-core's, in n·t cheap operations.
///
/// `round1` and `round2` hold every *other* participant's packages, keyed by identifier.
pub fn finish_dkg<C: Ciphersuite>(
    secret: &round2::SecretPackage<C>,
    me: ParticipantId,
    round1: &BTreeMap<ParticipantId, round1::Package<C>>,
    round2: &BTreeMap<ParticipantId, round2::Package<C>>,
) -> Result<(KeyPackage<C>, PublicKeyPackage<C>), FinishError> {
    let threshold = *secret.min_signers();
    let n = usize::from(*secret.max_signers());
    if round1.len() + 1 != n
        || round2.len() != round1.len()
        || round1.contains_key(&me)
        || round1.keys().any(|k| !round2.contains_key(k))
    {
        return Err(FinishError::Incomplete);
    }

    let mut signing_share = secret.secret_share();
    for (sender, package) in round2 {
        let commitment = round1[sender].commitment().coefficients();
        if !share_matches_commitment::<C>(package.signing_share(), commitment, me) {
            return Err(FinishError::InvalidShare(*sender));
        }
        signing_share = signing_share + package.signing_share().to_scalar();
    }

    let group = sum_commitments::<C>(
        round1
            .values()
            .map(|p| p.commitment().coefficients())
            .chain(std::iter::once(secret.commitment().coefficients())),
    )
    .ok_or(FinishError::Incomplete)?;
    if group.len() != usize::from(threshold) {
        return Err(FinishError::Incomplete);
    }

    let mut verifying_shares: BTreeMap<Identifier<C>, VerifyingShare<C>> = BTreeMap::new();
    for id in round1.keys().copied().chain(std::iter::once(me)) {
        let element = evaluate_commitment::<C>(&group, id.get());
        verifying_shares.insert(id.to_frost(), VerifyingShare::new(element));
    }
    let own_verifying = <C::Group as Group>::generator() * signing_share;
    if verifying_shares.get(&me.to_frost()).map(|v| v.to_element()) != Some(own_verifying) {
        return Err(FinishError::OwnShareMismatch);
    }

    let verifying_key = VerifyingKey::new(group[0].value());
    let key_package = KeyPackage::new(
        me.to_frost(),
        SigningShare::new(signing_share),
        VerifyingShare::new(own_verifying),
        verifying_key,
        threshold,
    );
    let public_key_package =
        PublicKeyPackage::new(verifying_shares, verifying_key, Some(threshold));
    C::post_dkg(key_package, public_key_package)
        .map_err(|e| FinishError::PostProcess(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frost::testkit::for_each_suite;
    use crate::rng::Seed;
    use frost_core::keys::dkg;

    #[test]
    fn mul_small_matches_scalar_multiplication() {
        type C = frost_secp256k1::Secp256K1Sha256;
        let g = <<C as Ciphersuite>::Group as Group>::generator();
        for k in [0u16, 1, 2, 3, 7, 100, 255, 256, 65535] {
            let s = Identifier::<C>::try_from(k.max(1)).unwrap().to_scalar();
            let expect = if k == 0 {
                <<C as Ciphersuite>::Group as Group>::identity()
            } else {
                g * s
            };
            assert!(mul_small::<C>(g, k) == expect, "k = {k}");
        }
    }

    fn finish_equals_frost_part3<C: Ciphersuite>() {
        // Random t-of-n runs: our finish must produce byte-identical packages to frost-core's.
        for (t, n, seed) in [
            (2u16, 2u16, 1u64),
            (2, 3, 2),
            (3, 5, 3),
            (5, 9, 4),
            (9, 9, 5),
        ] {
            let mut rng = Seed::from_u64(seed).rng();
            let ids: Vec<ParticipantId> = (1..=n)
                .map(|i| ParticipantId::new(i * 3).unwrap())
                .collect();
            let mut r1_secret = BTreeMap::new();
            let mut r1_pub = BTreeMap::new();
            for id in &ids {
                let (s, p) = dkg::part1::<C, _>(id.to_frost(), n, t, &mut rng).unwrap();
                r1_secret.insert(*id, s);
                r1_pub.insert(*id, p);
            }
            let mut r2_secret = BTreeMap::new();
            let mut r2_out: BTreeMap<
                ParticipantId,
                BTreeMap<Identifier<C>, dkg::round2::Package<C>>,
            > = BTreeMap::new();
            for id in &ids {
                let others: BTreeMap<_, _> = r1_pub
                    .iter()
                    .filter(|(k, _)| *k != id)
                    .map(|(k, v)| (k.to_frost(), v.clone()))
                    .collect();
                let (s, out) = dkg::part2(r1_secret[id].clone(), &others).unwrap();
                r2_secret.insert(*id, s);
                r2_out.insert(*id, out);
            }
            for me in &ids {
                let r1: BTreeMap<ParticipantId, _> = r1_pub
                    .iter()
                    .filter(|(k, _)| *k != me)
                    .map(|(k, v)| (*k, v.clone()))
                    .collect();
                let r2: BTreeMap<ParticipantId, _> = ids
                    .iter()
                    .filter(|k| *k != me)
                    .map(|k| (*k, r2_out[k][&me.to_frost()].clone()))
                    .collect();
                let ours = finish_dkg(&r2_secret[me], *me, &r1, &r2).unwrap();
                let r1f = r1.iter().map(|(k, v)| (k.to_frost(), v.clone())).collect();
                let r2f = r2.iter().map(|(k, v)| (k.to_frost(), v.clone())).collect();
                let theirs = dkg::part3(&r2_secret[me], &r1f, &r2f).unwrap();
                assert_eq!(ours.0.serialize().unwrap(), theirs.0.serialize().unwrap());
                assert_eq!(ours.1.serialize().unwrap(), theirs.1.serialize().unwrap());
            }
            // A tampered share is caught and its sender named.
            let me = ids[0];
            let victim_sender = ids[1];
            let r1: BTreeMap<ParticipantId, _> = r1_pub
                .iter()
                .filter(|(k, _)| **k != me)
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            let mut r2: BTreeMap<ParticipantId, _> = ids
                .iter()
                .filter(|k| **k != me)
                .map(|k| (*k, r2_out[k][&me.to_frost()].clone()))
                .collect();
            let bad = SigningShare::new(
                r2[&victim_sender].signing_share().to_scalar()
                    + <<C::Group as Group>::Field as frost_core::Field>::one(),
            );
            r2.insert(victim_sender, dkg::round2::Package::new(bad));
            assert_eq!(
                finish_dkg(&r2_secret[&me], me, &r1, &r2).unwrap_err(),
                FinishError::InvalidShare(victim_sender)
            );
        }
    }

    #[test]
    fn finish_is_identical_to_frost_part3_on_every_suite() {
        for_each_suite!(finish_equals_frost_part3);
    }
}
