//! Scheme-specific checks: decoding stored key packages, reconstructing a group secret from
//! `t` shares (Lagrange interpolation at zero, done by frost's `reconstruct`), and verifying
//! returned signatures with the independent verifiers.

use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::{Ciphersuite, Identifier, VerifyingKey};
use keyshard_core::ids::ParticipantId;
use keyshard_core::scheme::Scheme;
use zeroize::Zeroizing;

/// The public parts of a stored share, and its secret scalar (for the leak search).
pub struct ShareInfo {
    /// The share's scalar, encoded (secret).
    pub signing_share: Zeroizing<Vec<u8>>,
    /// This holder's verifying share.
    pub verifying_share: Vec<u8>,
    /// The group key the share belongs to.
    pub group_key: Vec<u8>,
    /// The threshold.
    pub min_signers: u16,
    /// The identifier the share is for.
    pub identifier: Vec<u8>,
}

/// Runs `$body` with `$c` bound to the ciphersuite of `$scheme`. The match is exhaustive on
/// purpose: a new scheme in core does not compile here until the simulator handles it.
macro_rules! with_suite {
    ($scheme:expr, $c:ident => $body:expr) => {
        match $scheme {
            Scheme::FrostEd25519 => {
                type $c = frost_ed25519::Ed25519Sha512;
                $body
            }
            Scheme::FrostSecp256k1 => {
                type $c = frost_secp256k1::Secp256K1Sha256;
                $body
            }
            Scheme::FrostP256 => {
                type $c = frost_p256::P256Sha256;
                $body
            }
            Scheme::FrostSecp256k1Taproot => {
                type $c = frost_secp256k1_tr::Secp256K1Sha256TR;
                $body
            }
            // ECDSA shares are checked in their FROST form (`frost_form`), on the same curve.
            Scheme::EcdsaSecp256k1 => {
                type $c = frost_secp256k1::Secp256K1Sha256;
                $body
            }
            Scheme::EcdsaP256 => {
                type $c = frost_p256::P256Sha256;
                $body
            }
        }
    };
}

fn share_info<C: Ciphersuite>(bytes: &[u8]) -> Result<ShareInfo, String> {
    let kp = KeyPackage::<C>::deserialize(bytes).map_err(|e| format!("key package: {e}"))?;
    Ok(ShareInfo {
        signing_share: Zeroizing::new(kp.signing_share().serialize()),
        verifying_share: kp
            .verifying_share()
            .serialize()
            .map_err(|e| format!("verifying share: {e}"))?,
        group_key: kp
            .verifying_key()
            .serialize()
            .map_err(|e| format!("verifying key: {e}"))?,
        min_signers: *kp.min_signers(),
        identifier: kp.identifier().serialize(),
    })
}

/// A stored share as a FROST key package: unchanged for FROST schemes; an ECDSA share's
/// cggmp24 key share converted by the core (same curve, same secret scalar).
fn frost_form(scheme: Scheme, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let share = keyshard_core::persist::SecretBytes::new(bytes.to_vec());
    keyshard_core::node::sessions::frost_key_package(scheme, &share)
        .map(|kp| Zeroizing::new(kp.expose().to_vec()))
        .map_err(|e| format!("{e:?}"))
}

/// Decodes a stored share of `scheme`.
pub fn decode_share(scheme: Scheme, bytes: &[u8]) -> Result<ShareInfo, String> {
    let kp = frost_form(scheme, bytes)?;
    with_suite!(scheme, C => share_info::<C>(&kp))
}

/// What a public key package says.
pub struct PackageInfo {
    /// The group key (frost encoding, as in key packages).
    pub group_key: Vec<u8>,
    /// Verifying share per holder.
    pub verifying_shares: Vec<(ParticipantId, Vec<u8>)>,
    /// The threshold.
    pub min_signers: Option<u16>,
}

fn package_info<C: Ciphersuite>(
    bytes: &[u8],
    holders: &[ParticipantId],
) -> Result<PackageInfo, String> {
    let pkp = PublicKeyPackage::<C>::deserialize(bytes).map_err(|e| format!("package: {e}"))?;
    let mut verifying_shares = Vec::new();
    for h in holders {
        let id = Identifier::<C>::try_from(h.get()).map_err(|e| format!("identifier: {e}"))?;
        if let Some(vs) = pkp.verifying_shares().get(&id) {
            let vs = vs
                .serialize()
                .map_err(|e| format!("verifying share: {e}"))?;
            verifying_shares.push((*h, vs));
        }
    }
    Ok(PackageInfo {
        group_key: pkp
            .verifying_key()
            .serialize()
            .map_err(|e| format!("verifying key: {e}"))?,
        verifying_shares,
        min_signers: pkp.min_signers(),
    })
}

/// Decodes a public key package of `scheme`, with the verifying shares of `holders`.
pub fn decode_package(
    scheme: Scheme,
    bytes: &[u8],
    holders: &[ParticipantId],
) -> Result<PackageInfo, String> {
    with_suite!(scheme, C => package_info::<C>(bytes, holders))
}

fn reconstruct_with<C: Ciphersuite>(
    shares: &[&[u8]],
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), String> {
    let kps: Vec<KeyPackage<C>> = shares
        .iter()
        .map(|b| KeyPackage::<C>::deserialize(b).map_err(|e| format!("key package: {e}")))
        .collect::<Result<_, _>>()?;
    let secret = frost_core::keys::reconstruct(&kps).map_err(|e| format!("reconstruct: {e}"))?;
    let key = VerifyingKey::<C>::from(&secret)
        .serialize()
        .map_err(|e| format!("verifying key: {e}"))?;
    Ok((Zeroizing::new(secret.serialize()), key))
}

/// Interpolates the group secret from (at least `t`) stored shares of `scheme`: the secret's
/// encoding and the public key it gives.
pub fn reconstruct(
    scheme: Scheme,
    shares: &[&[u8]],
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), String> {
    let forms = shares
        .iter()
        .map(|s| frost_form(scheme, s))
        .collect::<Result<Vec<_>, _>>()?;
    let forms: Vec<&[u8]> = forms.iter().map(|f| f.as_slice()).collect();
    with_suite!(scheme, C => reconstruct_with::<C>(&forms))
}

/// Verifies `signature` on `message` under the standard-encoded `public_key` with the
/// independent verifier of `scheme` (no frost code).
pub fn verify(
    scheme: Scheme,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    let r = match scheme {
        Scheme::FrostEd25519 => keyshard_verifier::ed25519(public_key, message, signature),
        Scheme::FrostSecp256k1 => {
            keyshard_verifier::frost_secp256k1(public_key, message, signature)
        }
        Scheme::FrostP256 => keyshard_verifier::frost_p256(public_key, message, signature),
        Scheme::FrostSecp256k1Taproot => keyshard_verifier::bip340(public_key, message, signature),
        Scheme::EcdsaSecp256k1 => {
            keyshard_verifier::ecdsa_secp256k1_recoverable(public_key, message, signature)
        }
        Scheme::EcdsaP256 => keyshard_verifier::ecdsa_p256(public_key, message, signature),
    };
    r.map_err(|e| format!("{e:?}"))
}
