//! Canonical decoding of frost-core types.
//!
//! frost-core 3.0.0's decoders ignore trailing bytes, and a truncated `PublicKeyPackage` decodes
//! with its threshold silently `None`. Every frost value that crosses a trust boundary goes
//! through [`decode`]: size first (before any parsing), then decode, then re-encode and compare,
//! so each accepted value has exactly one byte encoding.

use frost_core::keys::{dkg, KeyPackage, PublicKeyPackage};
use frost_core::round1::SigningCommitments;
use frost_core::round2::SignatureShare;
use frost_core::{Ciphersuite, Signature, SigningPackage, VerifyingKey};

use crate::session::Rejection;

/// A frost value with a byte encoding.
pub trait Canonical: Sized {
    /// The encoding, or `None` if the library cannot encode this value.
    fn encode(&self) -> Option<Vec<u8>>;
    /// The library's (lenient) decoder.
    fn decode_lenient(bytes: &[u8]) -> Option<Self>;
}

macro_rules! canonical_fallible {
    ($($t:ident)::+) => {
        impl<C: Ciphersuite> Canonical for $($t)::+<C> {
            fn encode(&self) -> Option<Vec<u8>> {
                self.serialize().ok()
            }
            fn decode_lenient(bytes: &[u8]) -> Option<Self> {
                Self::deserialize(bytes).ok()
            }
        }
    };
}

canonical_fallible!(dkg::round1::Package);
canonical_fallible!(dkg::round2::Package);
canonical_fallible!(SigningCommitments);
canonical_fallible!(SigningPackage);
canonical_fallible!(KeyPackage);
canonical_fallible!(Signature);
canonical_fallible!(VerifyingKey);

impl<C: Ciphersuite> Canonical for SignatureShare<C> {
    fn encode(&self) -> Option<Vec<u8>> {
        Some(self.serialize())
    }
    fn decode_lenient(bytes: &[u8]) -> Option<Self> {
        Self::deserialize(bytes).ok()
    }
}

impl<C: Ciphersuite> Canonical for PublicKeyPackage<C> {
    fn encode(&self) -> Option<Vec<u8>> {
        self.serialize().ok()
    }
    fn decode_lenient(bytes: &[u8]) -> Option<Self> {
        let pkp = Self::deserialize(bytes).ok()?;
        // A package without its threshold is a truncated (or pre-3.0) encoding: refuse it
        // rather than sign with an unknown threshold.
        pkp.min_signers()?;
        Some(pkp)
    }
}

/// Decodes `bytes` as `T` only if it has exactly `expected_len` bytes (when given) and is the
/// canonical encoding of the value it decodes to.
pub fn decode<T: Canonical>(
    bytes: &[u8],
    expected_len: Option<usize>,
    field: &'static str,
) -> Result<T, Rejection> {
    if let Some(expected) = expected_len {
        if bytes.len() != expected {
            return Err(Rejection::WrongSize {
                field,
                expected,
                actual: bytes.len(),
            });
        }
    }
    let value = T::decode_lenient(bytes).ok_or(Rejection::Malformed { field })?;
    match value.encode() {
        Some(again) if again == bytes => Ok(value),
        _ => Err(Rejection::Malformed { field }),
    }
}

/// Encodes a value the session itself built. frost-core only fails to encode values that hold an
/// identity element, which honest construction never produces; the error path still exists so
/// that a library surprise ends the session cleanly instead of panicking.
pub fn encode<T: Canonical>(value: &T) -> Result<Vec<u8>, String> {
    value
        .encode()
        .ok_or_else(|| "frost-core could not encode a value it produced".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frost::testkit::trusted_dealer;
    use frost_ed25519::Ed25519Sha512 as E;

    #[test]
    fn truncated_public_key_package_is_refused() {
        let (_, pkp) = trusted_dealer::<E>(2, 3, 1);
        let bytes = pkp.serialize().unwrap();
        // frost-core itself accepts the truncation and reports no threshold.
        let lenient = PublicKeyPackage::<E>::deserialize(&bytes[..bytes.len() - 2]).unwrap();
        assert_eq!(lenient.min_signers(), None);
        assert!(matches!(
            decode::<PublicKeyPackage<E>>(&bytes[..bytes.len() - 2], None, "pkp"),
            Err(Rejection::Malformed { field: "pkp" })
        ));
        assert_eq!(
            decode::<PublicKeyPackage<E>>(&bytes, None, "pkp").unwrap(),
            pkp
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let (kps, _) = trusted_dealer::<E>(2, 3, 2);
        let kp = kps.values().next().unwrap();
        let mut bytes = kp.serialize().unwrap();
        bytes.push(0);
        // frost-core itself ignores the trailing byte.
        assert!(KeyPackage::<E>::deserialize(&bytes).is_ok());
        assert!(matches!(
            decode::<KeyPackage<E>>(&bytes, None, "kp"),
            Err(Rejection::Malformed { .. })
        ));
    }

    #[test]
    fn wrong_size_is_refused_before_decoding() {
        assert_eq!(
            decode::<SignatureShare<E>>(&[0u8; 31], Some(32), "share").unwrap_err(),
            Rejection::WrongSize {
                field: "share",
                expected: 32,
                actual: 31
            }
        );
    }
}
