//! Independent signature verifiers for what keyshard produces.
//!
//! This crate deliberately uses no frost code: tests and the simulator check keyshard's
//! signatures against verifiers written from the specifications (RFC 8032, BIP-340,
//! RFC 9591) on top of the plain curve libraries. A bug shared between keyshard and the
//! frost crates would otherwise verify its own output and go unnoticed.
//!
//! Every function takes raw byte slices, validates lengths and encodings itself, and returns
//! an error rather than panicking on any input, so it can be fed adversarial or fuzzed data.

use std::fmt;

pub mod openssl;
mod rfc9591;
mod xmd;

#[cfg(test)]
mod tests;

/// Why a signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The public key has the wrong length, is not a valid (canonical) encoding of a curve
    /// point, or is a point the scheme forbids (identity, small order).
    BadPublicKey(String),
    /// The signature has the wrong length or one of its components is not a valid
    /// canonical encoding (point off the curve, scalar not below the group order, ...).
    BadSignature(String),
    /// Everything decoded, but the verification equation does not hold.
    Mismatch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::BadPublicKey(why) => write!(f, "bad public key: {why}"),
            VerifyError::BadSignature(why) => write!(f, "bad signature: {why}"),
            VerifyError::Mismatch => f.write_str("signature does not verify"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Ed25519 as in RFC 8032 section 5.1.7, via ed25519-dalek's `verify_strict`.
///
/// `public_key` is 32 bytes, `signature` is 64 bytes (`R || S`).
///
/// `verify_strict` rather than `verify`: it rejects small-order public keys and small-order
/// `R`, for which a signature can be valid for many messages or many keys. A threshold group
/// key must never be such a point, so accepting one would hide a key-generation bug.
///
/// On top of that this function itself rejects, with an explicit error:
/// - non-canonical encodings of the public key or `R` (y >= p, or "negative zero" x); RFC 8032
///   section 5.1.3 says decoding such a string fails, but dalek decodes them leniently;
/// - `S >= L` (RFC 8032 section 5.1.7 step 1). dalek checks this too unless its
///   `legacy_compatibility` feature is on, which Cargo feature unification could turn on
///   behind our back; checking here keeps this verifier non-malleable regardless.
pub fn ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
    use ed25519_dalek::Signature;

    let pk_bytes: &[u8; 32] = public_key.try_into().map_err(|_| {
        VerifyError::BadPublicKey(format!("expected 32 bytes, got {}", public_key.len()))
    })?;
    let sig_bytes: &[u8; 64] = signature.try_into().map_err(|_| {
        VerifyError::BadSignature(format!("expected 64 bytes, got {}", signature.len()))
    })?;

    let vk = decode_ed25519_point(pk_bytes).map_err(VerifyError::BadPublicKey)?;

    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig_bytes[..32]);
    // `R` is decoded only to validate it and report why it is bad; the verification itself
    // compares encodings (dalek recomputes R' and compares its canonical encoding to R).
    decode_ed25519_point(&r_bytes).map_err(|e| VerifyError::BadSignature(format!("R: {e}")))?;
    if !ed25519_scalar_is_canonical(&sig_bytes[32..]) {
        return Err(VerifyError::BadSignature(
            "S is not below the group order L".into(),
        ));
    }

    vk.verify_strict(message, &Signature::from_bytes(sig_bytes))
        .map_err(|_| VerifyError::Mismatch)
}

/// Decodes a compressed Edwards point, requiring the canonical encoding and a point that is
/// not of small order (order dividing 8). Mixed-order points pass, as with `verify_strict`.
/// dalek's `VerifyingKey` is used purely as a point decoder.
fn decode_ed25519_point(bytes: &[u8; 32]) -> Result<ed25519_dalek::VerifyingKey, String> {
    let point = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| String::from("not a valid compressed Edwards point"))?;
    if point.to_edwards().compress().as_bytes() != bytes {
        return Err("non-canonical point encoding".into());
    }
    if point.is_weak() {
        return Err("small-order point".into());
    }
    Ok(point)
}

/// Whether a 32-byte little-endian integer is below
/// L = 2^252 + 27742317777372353535851937790883648493, the Ed25519 group order.
fn ed25519_scalar_is_canonical(s_le: &[u8]) -> bool {
    const L_LE: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    // Compare from the most significant byte down.
    for (s, l) in s_le.iter().rev().zip(L_LE.iter().rev()) {
        if s != l {
            return s < l;
        }
    }
    false // equal to L
}

/// BIP-340 Schnorr verification, via k256's schnorr `VerifyingKey::verify_raw`.
///
/// `message` is the raw message: BIP-340 signs arbitrary-length messages (the 32-byte
/// restriction was lifted), and `verify_raw` hashes exactly those bytes into the challenge
/// `tagged_hash("BIP0340/challenge", r || P || m)` without pre-hashing them. (k256's
/// `Verifier::verify` would SHA-256 the message first, which is not BIP-340.)
///
/// `public_key` is either the 32-byte x-only key BIP-340 defines, or a 33-byte SEC1
/// compressed point. A compressed point is validated (on the curve, canonical) and then only
/// its x coordinate is used: BIP-340 keys are x-only with implicitly even y, so a point with
/// odd y stands for its negation. That is what a taproot-style threshold group key looks like
/// before it is put into x-only form.
///
/// `signature` is 64 bytes, `r || s`; `r >= p` and `s >= n` are rejected. k256 also rejects
/// `s == 0`, which BIP-340 would allow; producing such a signature for a given message
/// requires solving a discrete log, so this never rejects an honestly made signature.
pub fn bip340(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
    use k256::schnorr::{Signature, VerifyingKey};

    let x_only: &[u8] = match public_key.len() {
        32 => public_key,
        33 => {
            if !matches!(public_key[0], 0x02 | 0x03) {
                return Err(VerifyError::BadPublicKey(format!(
                    "SEC1 tag 0x{:02x} is not a compressed point (0x02/0x03)",
                    public_key[0]
                )));
            }
            k256::PublicKey::from_sec1_bytes(public_key).map_err(|_| {
                VerifyError::BadPublicKey("not a valid compressed secp256k1 point".into())
            })?;
            &public_key[1..]
        }
        n => {
            return Err(VerifyError::BadPublicKey(format!(
                "expected 32 (x-only) or 33 (compressed) bytes, got {n}"
            )))
        }
    };
    let vk = VerifyingKey::from_bytes(x_only).map_err(|_| {
        VerifyError::BadPublicKey("x is not the x coordinate of a curve point (or x >= p)".into())
    })?;

    if signature.len() != 64 {
        return Err(VerifyError::BadSignature(format!(
            "expected 64 bytes, got {}",
            signature.len()
        )));
    }
    let sig = Signature::try_from(signature).map_err(|_| {
        VerifyError::BadSignature("r >= p, or s is zero or >= the group order".into())
    })?;

    vk.verify_raw(message, &sig)
        .map_err(|_| VerifyError::Mismatch)
}

/// FROST(secp256k1, SHA-256) as in RFC 9591 section 6.5, written from the RFC with plain k256
/// arithmetic.
///
/// `public_key` is the 33-byte SEC1 compressed group key; `signature` is 65 bytes:
/// `R` (33-byte compressed point) `|| z` (32-byte big-endian scalar). Checks
/// `z*G == R + c*PK` with `c = H2(encode(R) || encode(PK) || msg)`, H2 being
/// `hash_to_field` with `expand_message_xmd`/SHA-256, DST `"FROST-secp256k1-SHA256-v1chal"`,
/// L = 48. Non-canonical encodings, the identity, and `z >= n` are rejected.
pub fn frost_secp256k1(
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    rfc9591::verify::<k256::Secp256k1>(FROST_SECP256K1_CONTEXT, public_key, message, signature)
}

/// FROST(P-256, SHA-256) as in RFC 9591 section 6.4, written from the RFC with plain p256
/// arithmetic.
///
/// Same encodings and checks as [`frost_secp256k1`]; the DST is
/// `"FROST-P256-SHA256-v1chal"`.
pub fn frost_p256(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
    rfc9591::verify::<p256::NistP256>(FROST_P256_CONTEXT, public_key, message, signature)
}

/// Parses the 64-byte `r || s` form, or DER otherwise. By length, not by a leading 0x30: one raw
/// signature in 256 has an `r` whose first byte is 0x30 (found when such a P-256 signature was
/// refused as bad DER).
macro_rules! parse_ecdsa_signature {
    ($ty:ty, $bytes:expr) => {{
        let bytes: &[u8] = $bytes;
        let parsed = if bytes.len() == 64 {
            <$ty>::from_slice(bytes)
        } else {
            <$ty>::from_der(bytes)
        };
        parsed.map_err(|e| VerifyError::BadSignature(e.to_string()))
    }};
}
/// ECDSA over secp256k1 with SHA-256 (SEC 1 v2 section 4.1.4), via the RustCrypto `k256` verifier
/// (no cggmp24 code).
///
/// `public_key` is a SEC1 point (33 bytes compressed or 65 uncompressed); `signature` is the
/// 64-byte `r || s`, or DER (`SEQUENCE { r, s }`) at any other length. `k256` refuses
/// high-S signatures, so this also checks the signature is low-S normalised.
pub fn ecdsa_secp256k1(
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    use k256::ecdsa::signature::Verifier;
    let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
        .map_err(|e| VerifyError::BadPublicKey(e.to_string()))?;
    let sig = parse_ecdsa_signature!(k256::ecdsa::Signature, signature)?;
    if sig.normalize_s().is_some() {
        return Err(VerifyError::BadSignature(
            "s is not low-S normalised".into(),
        ));
    }
    key.verify(message, &sig).map_err(|_| VerifyError::Mismatch)
}

/// The public key (SEC1 compressed) that k256's ECDSA key recovery finds for `message` (SHA-256)
/// and a 65-byte `r || s || v` signature, `v` in {0, 1}: what Ethereum-style verifiers do.
pub fn ecdsa_secp256k1_recover(
    message: &[u8],
    signature: &[u8; 65],
) -> Result<Vec<u8>, VerifyError> {
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    let sig = Signature::from_slice(&signature[..64])
        .map_err(|e| VerifyError::BadSignature(e.to_string()))?;
    let id = RecoveryId::from_byte(signature[64])
        .ok_or_else(|| VerifyError::BadSignature("recovery id is not 0..3".into()))?;
    let key =
        VerifyingKey::recover_from_msg(message, &sig, id).map_err(|_| VerifyError::Mismatch)?;
    Ok(key.to_encoded_point(true).as_bytes().to_vec())
}

/// A 65-byte `r || s || v` secp256k1 signature (what keyshard's nodes return): [`ecdsa_secp256k1`]
/// accepts `r || s`, and k256's key recovery with `v` finds `public_key` (SEC1, either form).
pub fn ecdsa_secp256k1_recoverable(
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    let sig: &[u8; 65] = signature.try_into().map_err(|_| {
        VerifyError::BadSignature(format!("expected 65 bytes, got {}", signature.len()))
    })?;
    ecdsa_secp256k1(public_key, message, &sig[..64])?;
    let key = k256::PublicKey::from_sec1_bytes(public_key)
        .map_err(|e| VerifyError::BadPublicKey(e.to_string()))?;
    let recovered = ecdsa_secp256k1_recover(message, sig)?;
    if recovered != key.to_sec1_bytes().as_ref() && recovered != compress(&key) {
        return Err(VerifyError::Mismatch);
    }
    Ok(())
}

fn compress(key: &k256::PublicKey) -> Vec<u8> {
    use k256::elliptic_curve::sec1::ToEncodedPoint;
    key.to_encoded_point(true).as_bytes().to_vec()
}

/// [`ecdsa_secp256k1`] for a signature over a 32-byte prehash instead of a message.
pub fn ecdsa_secp256k1_prehash(
    public_key: &[u8],
    prehash: &[u8; 32],
    signature: &[u8],
) -> Result<(), VerifyError> {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
        .map_err(|e| VerifyError::BadPublicKey(e.to_string()))?;
    let sig = parse_ecdsa_signature!(k256::ecdsa::Signature, signature)?;
    key.verify_prehash(prehash, &sig)
        .map_err(|_| VerifyError::Mismatch)
}

/// ECDSA over P-256 with SHA-256 (FIPS 186-5), via the RustCrypto `p256` verifier. Same encodings
/// as [`ecdsa_secp256k1`]; additionally refuses high-S signatures here (p256 itself accepts them,
/// but keyshard always normalises).
pub fn ecdsa_p256(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
    use p256::ecdsa::signature::Verifier;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
        .map_err(|e| VerifyError::BadPublicKey(e.to_string()))?;
    let sig = parse_ecdsa_signature!(p256::ecdsa::Signature, signature)?;
    if sig.normalize_s().is_some() {
        return Err(VerifyError::BadSignature(
            "s is not low-S normalised".into(),
        ));
    }
    key.verify(message, &sig).map_err(|_| VerifyError::Mismatch)
}

/// [`ecdsa_p256`] for a signature over a 32-byte prehash instead of a message.
pub fn ecdsa_p256_prehash(
    public_key: &[u8],
    prehash: &[u8; 32],
    signature: &[u8],
) -> Result<(), VerifyError> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
        .map_err(|e| VerifyError::BadPublicKey(e.to_string()))?;
    let sig = parse_ecdsa_signature!(p256::ecdsa::Signature, signature)?;
    if sig.normalize_s().is_some() {
        return Err(VerifyError::BadSignature(
            "s is not low-S normalised".into(),
        ));
    }
    key.verify_prehash(prehash, &sig)
        .map_err(|_| VerifyError::Mismatch)
}

/// contextString of FROST(secp256k1, SHA-256), RFC 9591 section 6.5.
const FROST_SECP256K1_CONTEXT: &[u8] = b"FROST-secp256k1-SHA256-v1";
/// contextString of FROST(P-256, SHA-256), RFC 9591 section 6.4.
const FROST_P256_CONTEXT: &[u8] = b"FROST-P256-SHA256-v1";
