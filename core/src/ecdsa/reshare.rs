//! Resharing and refreshing ECDSA keys with the same verifiable protocol as FROST keys.
//!
//! cggmp24 has no resharing. An ECDSA key's secret-key shares are Shamir shares on the same curve
//! as a FROST ciphersuite (secp256k1, P-256), so they are reshared by
//! [`FrostReshare`](crate::reshare::FrostReshare) unchanged: dealers' commitments are checked
//! against their old public shares (the group key cannot move), receivers verify their
//! sub-shares, cheaters are named and excluded, and the new threshold and members may differ.
//! This module is the bridge in both directions:
//!
//! - [`frost_key_of`]: an ECDSA key share (cggmp24's `IncompleteKeyShare`, the part without
//!   Paillier keys) as the FROST key package and public key package the reshare session takes.
//! - [`keygen_output_of`]: a new member's reshare output as an [`EcdsaKeygenOutput`], which
//!   [`EcdsaKey::from_parts`](super::EcdsaKey::from_parts) joins with aux info for the new member
//!   set (run [`EcdsaAux`](super::EcdsaAux) for it: Paillier keys belong to the member set, not to
//!   the key) and validates with cggmp24's key share checks.
//!
//! A refresh (rotation) is the same with unchanged members and threshold. Presignatures of the
//! old version must be dropped when the new version activates: they were made with the old
//! shares and cannot be combined with new ones.
//!
//! Evaluation points: a share at participant `p` is the polynomial at `x = p` everywhere in
//! keyshard. cggmp24's key generation uses `x = 1..n` by position, so its keys can be reshared
//! only if the participants are exactly `1..n` (checked, with an error naming it); keys made by a
//! reshare use `x = p` for any participant ids.

use std::collections::BTreeMap;

use cggmp24::generic_ec::coords::AlwaysHasAffineX;
use cggmp24::generic_ec::{NonZero, Point, Scalar, SecretScalar};
use cggmp24::key_share::{DirtyIncompleteKeyShare, DirtyKeyInfo, Validate, VssSetup};
use frost_core::keys::{KeyPackage, PublicKeyPackage, SigningShare, VerifyingShare};
use frost_core::{Identifier, VerifyingKey};
use zeroize::Zeroizing;

use super::types::{EcdsaKeygenOutput, KeyError};
use super::EcdsaCurve;
use crate::ids::ParticipantId;

type Frost<E> = <E as EcdsaCurve>::Frost;
/// A FROST key package and the public key package of its key.
pub type FrostKey<E> = (KeyPackage<Frost<E>>, PublicKeyPackage<Frost<E>>);

fn point_bytes<E: EcdsaCurve>(p: &Point<E>) -> Vec<u8>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    p.to_bytes(true).as_ref().to_vec()
}

fn invalid(what: &str) -> KeyError {
    KeyError::Invalid(what.to_string())
}

/// The participant whose FROST identifier is `id`, if it is a small non-zero integer.
fn participant_of<E: EcdsaCurve>(id: &Identifier<Frost<E>>) -> Option<ParticipantId>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let bytes = id.serialize();
    let n = bytes.len();
    if n < 2 || bytes[..n - 2].iter().any(|b| *b != 0) {
        return None;
    }
    let p = ParticipantId::new(u16::from_be_bytes([bytes[n - 2], bytes[n - 1]]))?;
    (p.to_frost::<Frost<E>>() == *id).then_some(p)
}

/// The FROST key package and public key package of an ECDSA key share held by `parties[i]`
/// (`parties` in the key's index order), for [`FrostReshare`](crate::reshare::FrostReshare).
///
/// Refuses a share without a threshold setup (n-of-n), or whose evaluation points are not the
/// participants' ids.
pub fn frost_key_of<E: EcdsaCurve>(
    share: &DirtyIncompleteKeyShare<E>,
    parties: &[ParticipantId],
) -> Result<FrostKey<E>, KeyError>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let vss = share
        .vss_setup
        .as_ref()
        .ok_or_else(|| invalid("the key has no threshold setup (n-of-n keys are not reshared)"))?;
    if parties.len() != share.public_shares.len() || parties.len() != vss.I.len() {
        return Err(KeyError::PartiesDiffer);
    }
    for (p, x) in parties.iter().zip(&vss.I) {
        if Scalar::<E>::from(p.get()) != **x {
            return Err(invalid(
                "the key's evaluation points are not its participants' ids \
                 (cggmp24 key generation among participants other than 1..n)",
            ));
        }
    }
    let me = *parties
        .get(usize::from(share.i))
        .ok_or_else(|| invalid("share index out of range"))?;
    let verifying_key =
        VerifyingKey::<Frost<E>>::deserialize(&point_bytes(&share.shared_public_key))
            .map_err(|_| invalid("group public key"))?;
    let mut verifying_shares = BTreeMap::new();
    for (p, y) in parties.iter().zip(&share.public_shares) {
        let vs = VerifyingShare::<Frost<E>>::deserialize(&point_bytes(y))
            .map_err(|_| invalid("public share"))?;
        verifying_shares.insert(p.to_frost::<Frost<E>>(), vs);
    }
    let secret: &SecretScalar<E> = share.x.as_ref();
    let x = Zeroizing::new(secret.as_ref().to_be_bytes().as_ref().to_vec());
    let signing_share =
        SigningShare::<Frost<E>>::deserialize(&x).map_err(|_| invalid("secret share"))?;
    let id = me.to_frost::<Frost<E>>();
    let verifying_share = *verifying_shares
        .get(&id)
        .ok_or_else(|| invalid("this participant has no public share"))?;
    let kp = KeyPackage::new(
        id,
        signing_share,
        verifying_share,
        verifying_key,
        vss.min_signers,
    );
    let pkp = PublicKeyPackage::new(verifying_shares, verifying_key, Some(vss.min_signers));
    Ok((kp, pkp))
}

/// A new member's ECDSA key share from its reshare output (`key_package`, `public_key_package`
/// of [`MemberOutput`](crate::reshare::MemberOutput)), validated by cggmp24. The participants
/// are the public key package's members in id order; evaluation points are their ids.
pub fn keygen_output_of<E: EcdsaCurve>(
    key_package: &KeyPackage<Frost<E>>,
    public_key_package: &PublicKeyPackage<Frost<E>>,
) -> Result<EcdsaKeygenOutput<E>, KeyError>
where
    NonZero<Point<E>>: AlwaysHasAffineX<E>,
{
    let mut members: BTreeMap<ParticipantId, NonZero<Point<E>>> = BTreeMap::new();
    for (id, vs) in public_key_package.verifying_shares() {
        let p = participant_of::<E>(id).ok_or_else(|| invalid("member identifier"))?;
        let bytes = vs.serialize().map_err(|_| invalid("public share"))?;
        let y = Point::<E>::from_bytes(&bytes).map_err(|_| invalid("public share"))?;
        members.insert(
            p,
            NonZero::from_point(y).ok_or_else(|| invalid("public share"))?,
        );
    }
    let parties: Vec<ParticipantId> = members.keys().copied().collect();
    let me =
        participant_of::<E>(key_package.identifier()).ok_or_else(|| invalid("own identifier"))?;
    let i = parties
        .iter()
        .position(|p| *p == me)
        .and_then(|i| u16::try_from(i).ok())
        .ok_or_else(|| invalid("this member is not in the public key package"))?;
    let threshold = public_key_package
        .min_signers()
        .ok_or_else(|| invalid("the public key package has no threshold"))?;
    if threshold != *key_package.min_signers() {
        return Err(invalid(
            "key package and public key package thresholds differ",
        ));
    }
    let group = public_key_package
        .verifying_key()
        .serialize()
        .map_err(|_| invalid("group public key"))?;
    let shared_public_key = Point::<E>::from_bytes(&group)
        .ok()
        .and_then(NonZero::from_point)
        .ok_or_else(|| invalid("group public key"))?;
    let evaluation_points = parties
        .iter()
        .map(|p| NonZero::from_scalar(Scalar::<E>::from(p.get())))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("evaluation point"))?;
    let x_bytes = Zeroizing::new(key_package.signing_share().serialize());
    let mut x =
        Scalar::<E>::from_be_bytes(x_bytes.as_slice()).map_err(|_| invalid("secret share"))?;
    let x = NonZero::from_secret_scalar(SecretScalar::new(&mut x))
        .ok_or_else(|| invalid("secret share is zero"))?;
    let dirty = DirtyIncompleteKeyShare {
        i,
        key_info: DirtyKeyInfo {
            curve: Default::default(),
            shared_public_key,
            public_shares: members.into_values().collect(),
            vss_setup: Some(VssSetup {
                min_signers: threshold,
                I: evaluation_points,
            }),
        },
        x,
    };
    // cggmp24's checks: the secret share matches its public share, and the public shares lie on
    // one polynomial of degree t-1 whose value at zero is the group key.
    let share = dirty
        .validate()
        .map_err(|e| KeyError::Invalid(format!("{:?}", e.error())))?;
    Ok(EcdsaKeygenOutput { share, parties })
}

#[cfg(test)]
mod tests;
