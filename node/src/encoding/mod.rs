//! Output encodings for the CLI: public keys as hex and PEM (SubjectPublicKeyInfo), signatures
//! as hex.
//!
//! Input is what the core emits (`keyshard_core::node::sessions::group_public_key`, the
//! signatures in `Response::Signed`):
//!
//! | scheme | public key | PEM / SPKI | signature |
//! |---|---|---|---|
//! | `frost-ed25519` | 32 bytes (RFC 8032) | RFC 8410 `id-Ed25519` | 64 bytes `R ‖ S` (RFC 8032) |
//! | `frost-secp256k1` | 33 bytes SEC1 compressed | `id-ecPublicKey` + `secp256k1` (1.3.132.0.10) | 65 bytes `R` (33, compressed) `‖ z` (RFC 9591) |
//! | `frost-p256` | 33 bytes SEC1 compressed | `id-ecPublicKey` + `prime256v1` (1.2.840.10045.3.1.7) | 65 bytes, as above |
//! | `frost-secp256k1-tr` | 33 bytes SEC1 compressed (32-byte x-only also accepted) | the BIP-340 key: `secp256k1` point with x and even y | 64 bytes BIP-340 `r ‖ s` |
//! | `ecdsa-cggmp24-secp256k1` | 33 bytes SEC1 compressed | `id-ecPublicKey` + `secp256k1` | 65 bytes `r ‖ s ‖ v` (low-S; `v` the recovery id 0/1); [`ecdsa_der`] gives DER |
//! | `ecdsa-cggmp24-p256` | 33 bytes SEC1 compressed | `id-ecPublicKey` + `prime256v1` | 64 bytes `r ‖ s` (low-S); [`ecdsa_der`] gives DER |
//!
//! The FROST secp256k1 and P-256 signatures are Schnorr signatures of RFC 9591 whose `R` is a
//! full compressed point: 65 bytes, with no shorter standard form (they are not ECDSA).
//!
//! For `frost-secp256k1-tr` the key that verifies signatures is the x-only key (BIP-340 lifts
//! x to the point with even y): [`PublicKeyText::bip340_hex`] is those 32 bytes, and the PEM
//! holds that even-y point, which differs from the 33-byte form (its negation) when the
//! group key's y is odd. EC SPKI encodes points uncompressed (65-byte `04 ‖ x ‖ y`).

#[cfg(test)]
mod tests;

use std::fmt;

// One trait (pkcs8 0.10) serves ed25519-dalek, k256 and p256 keys.
use k256::pkcs8::{EncodePublicKey as _, LineEnding};
use keyshard_core::scheme::Scheme;
use serde::Serialize;

/// A public key in the CLI's output forms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicKeyText {
    /// The scheme name.
    pub scheme: &'static str,
    /// The key bytes as the core emits them, lower-case hex.
    pub hex: String,
    /// `frost-secp256k1-tr` only: the 32-byte BIP-340 x-only key, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bip340_hex: Option<String>,
    /// `-----BEGIN PUBLIC KEY-----` PEM of the SubjectPublicKeyInfo, LF line endings.
    pub pem: String,
}

/// Bytes that are not a valid key or signature of the scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodingError {
    /// The scheme.
    pub scheme: Scheme,
    /// What was wrong.
    pub what: String,
}

impl fmt::Display for EncodingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.scheme, self.what)
    }
}

impl std::error::Error for EncodingError {}

fn err(scheme: Scheme, what: impl Into<String>) -> EncodingError {
    EncodingError {
        scheme,
        what: what.into(),
    }
}

/// The length of the scheme's signatures, as the core emits them.
pub const fn signature_len(scheme: Scheme) -> usize {
    match scheme {
        Scheme::FrostEd25519 | Scheme::FrostSecp256k1Taproot | Scheme::EcdsaP256 => 64,
        Scheme::FrostSecp256k1 | Scheme::FrostP256 | Scheme::EcdsaSecp256k1 => 65,
    }
}

/// The DER encoding (`SEQUENCE { INTEGER r, INTEGER s }`) of an ECDSA signature as the core emits
/// it (`r ‖ s`, plus `v` for secp256k1), as OpenSSL and X.509 verifiers take it.
pub fn ecdsa_der(scheme: Scheme, signature: &[u8]) -> Result<Vec<u8>, EncodingError> {
    if scheme.ecdsa().is_none() {
        return Err(err(scheme, "not an ECDSA scheme"));
    }
    let want = signature_len(scheme);
    if signature.len() != want {
        return Err(err(
            scheme,
            format!("a signature is {want} bytes, got {}", signature.len()),
        ));
    }
    let der = match scheme {
        Scheme::EcdsaSecp256k1 => k256::ecdsa::Signature::from_slice(&signature[..64])
            .map(|s| s.to_der().as_bytes().to_vec()),
        _ => p256::ecdsa::Signature::from_slice(&signature[..64])
            .map(|s| s.to_der().as_bytes().to_vec()),
    };
    der.map_err(|_| err(scheme, "r or s is zero or not below the group order"))
}

/// Hex of a signature after checking its length for the scheme.
pub fn signature_hex(scheme: Scheme, signature: &[u8]) -> Result<String, EncodingError> {
    let want = signature_len(scheme);
    if signature.len() != want {
        return Err(err(
            scheme,
            format!("a signature is {want} bytes, got {}", signature.len()),
        ));
    }
    Ok(hex::encode(signature))
}

/// Every output form of a public key; fails if the bytes are not a valid key of the scheme.
pub fn public_key(scheme: Scheme, key: &[u8]) -> Result<PublicKeyText, EncodingError> {
    let (pem, bip340_hex) = match scheme {
        Scheme::FrostEd25519 => (ed25519_pem(key)?, None),
        Scheme::FrostSecp256k1 | Scheme::EcdsaSecp256k1 => {
            compressed(scheme, key)?;
            let pk = k256::PublicKey::from_sec1_bytes(key)
                .map_err(|_| err(scheme, "not a point on secp256k1"))?;
            (
                pk.to_public_key_pem(LineEnding::LF)
                    .map_err(|e| spki(scheme, e))?,
                None,
            )
        }
        Scheme::FrostP256 | Scheme::EcdsaP256 => {
            compressed(scheme, key)?;
            let pk = p256::PublicKey::from_sec1_bytes(key)
                .map_err(|_| err(scheme, "not a point on P-256"))?;
            (
                pk.to_public_key_pem(LineEnding::LF)
                    .map_err(|e| spki(scheme, e))?,
                None,
            )
        }
        Scheme::FrostSecp256k1Taproot => {
            let x = bip340_x(key)?;
            let mut even = [0u8; 33];
            even[0] = 0x02;
            even[1..].copy_from_slice(x);
            let pk = k256::PublicKey::from_sec1_bytes(&even)
                .map_err(|_| err(scheme, "x is not the x coordinate of a secp256k1 point"))?;
            (
                pk.to_public_key_pem(LineEnding::LF)
                    .map_err(|e| spki(scheme, e))?,
                Some(hex::encode(x)),
            )
        }
    };
    Ok(PublicKeyText {
        scheme: scheme.name(),
        hex: hex::encode(key),
        bip340_hex,
        pem,
    })
}

/// The PEM (SubjectPublicKeyInfo) of a public key.
pub fn public_key_pem(scheme: Scheme, key: &[u8]) -> Result<String, EncodingError> {
    public_key(scheme, key).map(|t| t.pem)
}

fn spki(scheme: Scheme, e: impl fmt::Display) -> EncodingError {
    err(
        scheme,
        format!("cannot encode the SubjectPublicKeyInfo: {e}"),
    )
}

fn ed25519_pem(key: &[u8]) -> Result<String, EncodingError> {
    let scheme = Scheme::FrostEd25519;
    let bytes: &[u8; 32] = key.try_into().map_err(|_| {
        err(
            scheme,
            format!("a public key is 32 bytes, got {}", key.len()),
        )
    })?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| err(scheme, "not a valid compressed Edwards point"))?;
    vk.to_public_key_pem(LineEnding::LF)
        .map_err(|e| spki(scheme, e))
}

/// Checks the SEC1 compressed form: 33 bytes starting 0x02 or 0x03.
fn compressed(scheme: Scheme, key: &[u8]) -> Result<(), EncodingError> {
    if key.len() != 33 {
        return Err(err(
            scheme,
            format!(
                "a public key is 33 bytes (SEC1 compressed), got {}",
                key.len()
            ),
        ));
    }
    if !matches!(key[0], 0x02 | 0x03) {
        return Err(err(
            scheme,
            format!(
                "SEC1 tag 0x{:02x} is not a compressed point (0x02/0x03)",
                key[0]
            ),
        ));
    }
    Ok(())
}

/// The x coordinate of a taproot key: the 33-byte compressed point the core emits (checked to
/// be on the curve) or a 32-byte x-only key.
fn bip340_x(key: &[u8]) -> Result<&[u8], EncodingError> {
    let scheme = Scheme::FrostSecp256k1Taproot;
    match key.len() {
        32 => Ok(key),
        33 => {
            compressed(scheme, key)?;
            k256::PublicKey::from_sec1_bytes(key)
                .map_err(|_| err(scheme, "not a point on secp256k1"))?;
            Ok(&key[1..])
        }
        n => Err(err(
            scheme,
            format!("a public key is 33 bytes (SEC1 compressed) or 32 (x-only), got {n}"),
        )),
    }
}
