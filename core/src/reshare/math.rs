//! The mathematics of resharing, generic over any `frost_core::Ciphersuite` group.
//!
//! Notation: the old key `s` is shared with a degree `t-1` polynomial; old holder `i` holds
//! `s_i` and the old public key package holds `Y_i = G·s_i` and `Y = G·s`. For any set `Q` of at
//! least `t` old holders, `s = Σ_{i∈Q} λ_i^Q · s_i` with the Lagrange coefficients at zero
//! `λ_i^Q = Π_{k∈Q, k≠i} k / (k − i)`.
//!
//! Resharing (after Desmedt–Jajodia and Wong–Wang–Wing, with Feldman commitments):
//! 1. each dealer `i` picks a fresh polynomial `f_i` of degree `t'-1` with `f_i(0) = s_i` (its
//!    *unweighted* old share), commits `C_i = [G·a_{i,0}, …, G·a_{i,t'-1}]` and gives each new
//!    member `j` the sub-share `f_i(j)` ([`deal`]);
//! 2. a receiver checks `G·f_i(j) == Σ_k C_{i,k}·j^k` ([`share_matches_commitment`]) and
//!    `C_{i,0} == Y_i` ([`constant_term_matches`]): the dealer really re-shares its old share;
//! 3. once the qualified dealer set `Q` is agreed, the new share is
//!    `s'_j = Σ_{i∈Q} λ_i^Q · f_i(j)` ([`combine_shares`]) and the new group commitment is
//!    `C = Σ_{i∈Q} λ_i^Q · C_i` ([`combine_commitments`]). `C` commits to
//!    `F = Σ λ_i f_i`, a degree `t'-1` polynomial with `F(0) = Σ λ_i s_i = s`: the group key
//!    `C_0 = G·s = Y` is unchanged and `s'_j = F(j)` is a `t'`-of-`n'` sharing of the same `s`.
//!
//! Why unweighted dealing with the weights applied by the receivers (rather than each dealer
//! sharing `λ_i·s_i`, which is equivalent): the weights depend on `Q`, and `Q` is only known
//! after the complaints are in. Dealing first and weighting later lets the session drop a
//! cheating dealer and still finish with the others (as long as `|Q| ≥ t`) instead of starting
//! over with a new dealer set.
//!
//! Reuse by threshold ECDSA: nothing here is FROST-specific. The functions work on the group and
//! field of `C`; `frost_secp256k1::Secp256K1Sha256` and `frost_p256::P256Sha256` are exactly the
//! secp256k1 and P-256 groups (k256 / p256 `ProjectivePoint` and `Scalar`), so an ECDSA key share
//! (a scalar `x_i` with public `X_i = G·x_i`) reshares with the same calls by wrapping `x_i` in a
//! `SigningShare` and `X_i` in a `VerifyingShare` of that ciphersuite.
//!
//! Secrets: polynomial coefficients and sub-shares live in [`SigningShare`]s (zeroized on drop
//! here); scalar temporaries are `Copy` values that the compiler may leave in registers or on
//! the stack, which no Rust code can reliably wipe (the same limit frost-core has).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use frost_core::keys::{
    CoefficientCommitment, KeyPackage, PublicKeyPackage, SigningShare, VerifyingShare,
};
use frost_core::{Ciphersuite, Field, Group, Identifier, Scalar, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

pub use crate::frost::vss::{evaluate_commitment, share_matches_commitment};
use crate::ids::ParticipantId;

type FieldOf<C> = <<C as Ciphersuite>::Group as Group>::Field;

/// The scalar whose value is the participant's identifier.
fn id_scalar<C: Ciphersuite>(p: ParticipantId) -> Scalar<C> {
    p.to_frost::<C>().to_scalar()
}

/// The Lagrange coefficient at zero of `i` over `set`: `Π_{k∈set, k≠i} k / (k − i)`.
/// `None` if `i` is not in `set` (distinct non-zero ids never make the denominator zero).
pub fn lagrange_at_zero<C: Ciphersuite>(
    set: &BTreeSet<ParticipantId>,
    i: ParticipantId,
) -> Option<Scalar<C>> {
    if !set.contains(&i) {
        return None;
    }
    let xi = id_scalar::<C>(i);
    let mut num = FieldOf::<C>::one();
    let mut den = FieldOf::<C>::one();
    for &k in set.iter().filter(|k| **k != i) {
        let xk = id_scalar::<C>(k);
        num = num * xk;
        den = den * (xk - xi);
    }
    let inv = FieldOf::<C>::invert(&den).ok()?;
    Some(num * inv)
}

/// One dealer's contribution: the public commitment to its fresh polynomial and the secret
/// sub-share of every receiver. The sub-shares are wiped when the dealing is dropped.
pub struct Dealing<C: Ciphersuite> {
    commitment: Vec<CoefficientCommitment<C>>,
    shares: BTreeMap<ParticipantId, SigningShare<C>>,
}

impl<C: Ciphersuite> Dealing<C> {
    /// The Feldman commitment `[G·a_0, …, G·a_{t'-1}]`; `G·a_0` is the dealer's old verifying share.
    pub fn commitment(&self) -> &[CoefficientCommitment<C>] {
        &self.commitment
    }

    /// The sub-share for `receiver`, `f(receiver)`. Secret.
    pub fn share(&self, receiver: ParticipantId) -> Option<&SigningShare<C>> {
        self.shares.get(&receiver)
    }
}

impl<C: Ciphersuite> Drop for Dealing<C> {
    fn drop(&mut self) {
        for s in self.shares.values_mut() {
            s.zeroize();
        }
    }
}

impl<C: Ciphersuite> fmt::Debug for Dealing<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dealing")
            .field("degree", &self.commitment.len().saturating_sub(1))
            .field("shares", &format_args!("<{} redacted>", self.shares.len()))
            .finish()
    }
}

/// Why a resharing computation refused to produce a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MathError {
    /// The threshold is zero or the receivers are empty.
    BadParameters,
    /// A qualified dealer's sub-share or commitment is missing, or commitments differ in length.
    Incomplete,
    /// The combined commitment's constant term is not the old group key: the old public key
    /// package's verifying shares do not interpolate to its verifying key.
    GroupKeyChanged,
    /// This member's combined share does not match the combined commitment.
    OwnShareMismatch,
    /// The group could not encode an element it produced (an identity element).
    Encoding,
}

/// Deals `secret` (an old share `s_i`) to `receivers` with a fresh random polynomial of degree
/// `threshold - 1` whose constant term is `secret`.
pub fn deal<C: Ciphersuite, R: RngCore + CryptoRng>(
    secret: &SigningShare<C>,
    threshold: u16,
    receivers: &BTreeSet<ParticipantId>,
    rng: &mut R,
) -> Result<Dealing<C>, MathError> {
    if threshold == 0 || receivers.is_empty() {
        return Err(MathError::BadParameters);
    }
    let mut coefficients: Vec<SigningShare<C>> = Vec::with_capacity(usize::from(threshold));
    coefficients.push(*secret);
    for _ in 1..threshold {
        coefficients.push(SigningShare::new(FieldOf::<C>::random(rng)));
    }
    let g = <C::Group as Group>::generator();
    let commitment = coefficients
        .iter()
        .map(|a| CoefficientCommitment::new(g * a.to_scalar()))
        .collect();
    let shares = receivers
        .iter()
        .map(|&j| {
            let x = id_scalar::<C>(j);
            // Horner: ((a_{t-1}·x + a_{t-2})·x + …)·x + a_0
            let mut acc = FieldOf::<C>::zero();
            for a in coefficients.iter().rev() {
                acc = acc * x + a.to_scalar();
            }
            (j, SigningShare::new(acc))
        })
        .collect();
    for a in &mut coefficients {
        a.zeroize();
    }
    Ok(Dealing { commitment, shares })
}

/// Whether a dealer's constant-term commitment is its old verifying share: `C_{i,0} == Y_i`.
pub fn constant_term_matches<C: Ciphersuite>(
    commitment: &[CoefficientCommitment<C>],
    old_verifying_share: &VerifyingShare<C>,
) -> bool {
    commitment
        .first()
        .is_some_and(|c0| c0.value() == old_verifying_share.to_element())
}

/// `Σ_{i∈Q} λ_i^Q · f_i(j)`: this receiver's new share from the sub-shares of the qualified
/// dealers `Q` (keys of `sub_shares` outside `Q` are ignored).
pub fn combine_shares<C: Ciphersuite>(
    sub_shares: &BTreeMap<ParticipantId, SigningShare<C>>,
    qualified: &BTreeSet<ParticipantId>,
) -> Result<SigningShare<C>, MathError> {
    let mut acc = SigningShare::<C>::new(FieldOf::<C>::zero());
    for &i in qualified {
        let share = sub_shares.get(&i).ok_or(MathError::Incomplete)?;
        let lambda = lagrange_at_zero::<C>(qualified, i).ok_or(MathError::Incomplete)?;
        acc = SigningShare::new(acc.to_scalar() + lambda * share.to_scalar());
    }
    Ok(acc)
}

/// `Σ_{i∈Q} λ_i^Q · C_i`, coefficient-wise: the commitment to the new sharing polynomial.
pub fn combine_commitments<C: Ciphersuite>(
    commitments: &BTreeMap<ParticipantId, Vec<CoefficientCommitment<C>>>,
    qualified: &BTreeSet<ParticipantId>,
) -> Result<Vec<CoefficientCommitment<C>>, MathError> {
    let mut sum: Option<Vec<frost_core::Element<C>>> = None;
    for &i in qualified {
        let c = commitments.get(&i).ok_or(MathError::Incomplete)?;
        let lambda = lagrange_at_zero::<C>(qualified, i).ok_or(MathError::Incomplete)?;
        match &mut sum {
            None => sum = Some(c.iter().map(|x| x.value() * lambda).collect()),
            Some(acc) => {
                if acc.len() != c.len() {
                    return Err(MathError::Incomplete);
                }
                for (a, x) in acc.iter_mut().zip(c) {
                    *a = *a + x.value() * lambda;
                }
            }
        }
    }
    match sum {
        Some(s) if !s.is_empty() => Ok(s.into_iter().map(CoefficientCommitment::new).collect()),
        _ => Err(MathError::Incomplete),
    }
}

/// The new public key package: each member's verifying share is the combined commitment
/// evaluated at its identifier; the verifying key is `old_key` itself (byte-identical), after
/// checking that the combined constant term equals it.
pub fn new_public_key_package<C: Ciphersuite>(
    group_commitment: &[CoefficientCommitment<C>],
    old_key: &VerifyingKey<C>,
    members: &BTreeSet<ParticipantId>,
    threshold: u16,
) -> Result<PublicKeyPackage<C>, MathError> {
    let c0 = group_commitment.first().ok_or(MathError::Incomplete)?;
    if c0.value() != old_key.to_element() {
        return Err(MathError::GroupKeyChanged);
    }
    if group_commitment.len() != usize::from(threshold) || members.is_empty() {
        return Err(MathError::BadParameters);
    }
    let mut verifying_shares: BTreeMap<Identifier<C>, VerifyingShare<C>> = BTreeMap::new();
    for &j in members {
        let element = evaluate_commitment::<C>(group_commitment, j.get());
        if element == <C::Group as Group>::identity() {
            return Err(MathError::Encoding);
        }
        verifying_shares.insert(j.to_frost(), VerifyingShare::new(element));
    }
    Ok(PublicKeyPackage::new(
        verifying_shares,
        *old_key,
        Some(threshold),
    ))
}

/// This member's new key package, after checking that its share matches its verifying share in
/// the new public key package. The package is used as is: no ciphersuite post-processing
/// (`Ciphersuite::post_dkg`) is applied, because the old packages already carry it (for Taproot,
/// the tweak) and applying it again would change the key.
pub fn new_key_package<C: Ciphersuite>(
    me: ParticipantId,
    share: SigningShare<C>,
    public_key_package: &PublicKeyPackage<C>,
) -> Result<KeyPackage<C>, MathError> {
    let expected = public_key_package
        .verifying_shares()
        .get(&me.to_frost())
        .ok_or(MathError::Incomplete)?;
    let own = <C::Group as Group>::generator() * share.to_scalar();
    if own != expected.to_element() {
        return Err(MathError::OwnShareMismatch);
    }
    let threshold = public_key_package
        .min_signers()
        .ok_or(MathError::BadParameters)?;
    Ok(KeyPackage::new(
        me.to_frost(),
        share,
        *expected,
        *public_key_package.verifying_key(),
        threshold,
    ))
}

/// Every new member's key package and the new public key package.
pub type NewKeys<C> = (BTreeMap<ParticipantId, KeyPackage<C>>, PublicKeyPackage<C>);

/// The whole reshare computed in one place with every party honest: dealers' old key packages
/// in, new key packages and the new public key package out. For tests and as the benchmarks'
/// baseline (the session adds only messages, checks and agreement on top of these calls).
pub fn reshare_in_memory<C: Ciphersuite, R: RngCore + CryptoRng>(
    old_key_packages: &BTreeMap<ParticipantId, KeyPackage<C>>,
    old_public_key_package: &PublicKeyPackage<C>,
    new_members: &BTreeSet<ParticipantId>,
    new_threshold: u16,
    rng: &mut R,
) -> Result<NewKeys<C>, MathError> {
    let qualified: BTreeSet<ParticipantId> = old_key_packages.keys().copied().collect();
    let mut dealings = BTreeMap::new();
    for (&i, kp) in old_key_packages {
        let d = deal::<C, R>(kp.signing_share(), new_threshold, new_members, rng)?;
        let y_i = old_public_key_package
            .verifying_shares()
            .get(&i.to_frost())
            .ok_or(MathError::Incomplete)?;
        if !constant_term_matches::<C>(d.commitment(), y_i) {
            return Err(MathError::GroupKeyChanged);
        }
        dealings.insert(i, d);
    }
    let commitments: BTreeMap<ParticipantId, Vec<CoefficientCommitment<C>>> = dealings
        .iter()
        .map(|(i, d)| (*i, d.commitment().to_vec()))
        .collect();
    let group = combine_commitments::<C>(&commitments, &qualified)?;
    let pkp = new_public_key_package::<C>(
        &group,
        old_public_key_package.verifying_key(),
        new_members,
        new_threshold,
    )?;
    let mut kps = BTreeMap::new();
    for &j in new_members {
        let mut subs = BTreeMap::new();
        for (&i, d) in &dealings {
            let s = d.share(j).ok_or(MathError::Incomplete)?;
            if !share_matches_commitment::<C>(s, d.commitment(), j) {
                return Err(MathError::OwnShareMismatch);
            }
            subs.insert(i, *s);
        }
        let share = combine_shares::<C>(&subs, &qualified);
        for s in subs.values_mut() {
            s.zeroize();
        }
        kps.insert(j, new_key_package::<C>(j, share?, &pkp)?);
    }
    Ok((kps, pkp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frost::testkit::{for_each_suite, trusted_dealer};
    use crate::rng::Seed;

    fn pid(n: u16) -> ParticipantId {
        ParticipantId::new(n).unwrap()
    }

    fn lagrange_interpolates_the_secret<C: Ciphersuite>() {
        let (kps, pkp) = trusted_dealer::<C>(3, 5, 1);
        let by_pid: BTreeMap<ParticipantId, _> = kps
            .iter()
            .map(|(id, kp)| {
                // trusted_dealer uses identifiers 1..=n.
                let n = (1..=5u16).find(|n| pid(*n).to_frost::<C>() == *id).unwrap();
                (pid(n), kp.clone())
            })
            .collect();
        for set in [[1u16, 2, 3], [2, 4, 5], [1, 3, 5]] {
            let set: BTreeSet<_> = set.into_iter().map(pid).collect();
            let mut acc = <C::Group as Group>::identity();
            for &i in &set {
                let l = lagrange_at_zero::<C>(&set, i).unwrap();
                acc = acc
                    + <C::Group as Group>::generator()
                        * (l * by_pid[&i].signing_share().to_scalar());
            }
            assert!(acc == pkp.verifying_key().to_element());
        }
        assert!(lagrange_at_zero::<C>(&BTreeSet::from([pid(1)]), pid(2)).is_none());
    }

    #[test]
    fn lagrange_at_zero_interpolates_on_every_suite() {
        for_each_suite!(lagrange_interpolates_the_secret);
    }

    fn in_memory_reshare_keeps_key<C: Ciphersuite>() {
        let (kps, pkp) = trusted_dealer::<C>(2, 3, 2);
        let old: BTreeMap<ParticipantId, _> = [1u16, 3]
            .into_iter()
            .map(|n| (pid(n), kps[&pid(n).to_frost::<C>()].clone()))
            .collect();
        let new: BTreeSet<_> = [2u16, 3, 7, 9].into_iter().map(pid).collect();
        let mut rng = Seed::from_u64(3).rng();
        let (new_kps, new_pkp) = reshare_in_memory(&old, &pkp, &new, 3, &mut rng).unwrap();
        assert_eq!(
            new_pkp.verifying_key().serialize().unwrap(),
            pkp.verifying_key().serialize().unwrap()
        );
        assert_eq!(new_pkp.min_signers(), Some(3));
        // Any 3 new shares interpolate the old secret.
        let set: BTreeSet<_> = [2u16, 7, 9].into_iter().map(pid).collect();
        let mut s = FieldOf::<C>::zero();
        for &i in &set {
            s = s + lagrange_at_zero::<C>(&set, i).unwrap()
                * new_kps[&i].signing_share().to_scalar();
        }
        assert!(<C::Group as Group>::generator() * s == pkp.verifying_key().to_element());
    }

    #[test]
    fn in_memory_reshare_keeps_the_group_key_on_every_suite() {
        for_each_suite!(in_memory_reshare_keeps_key);
    }

    #[test]
    fn dealing_debug_is_redacted() {
        type C = frost_ed25519::Ed25519Sha512;
        let mut rng = Seed::from_u64(4).rng();
        let secret = SigningShare::<C>::new(FieldOf::<C>::one());
        let d = deal::<C, _>(&secret, 2, &BTreeSet::from([pid(1), pid(2)]), &mut rng).unwrap();
        let s = format!("{d:?}");
        assert!(s.contains("redacted") && s.contains("degree: 1"), "{s}");
    }
}
