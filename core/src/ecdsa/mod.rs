//! Threshold ECDSA sessions (CGGMP24, through the `cggmp24` crate), for secp256k1 and P-256.
//!
//! Every session implements the core's [`Session`](crate::session::Session) interface and is
//! driven exactly like the FROST sessions. The cggmp24 protocols are async functions; this module
//! runs them through `round_based`'s state-machine wrapper ([`mpc::MpcSession`]), which steps the
//! protocol message by message without an async runtime, with randomness from the session's
//! seeded ChaCha20 (same seed, same messages, same outputs).
//!
//! The runs, in the order a key goes through them:
//! - [`EcdsaKeygen`]: distributed key generation, t-of-n, no dealer. Output: an incomplete key
//!   share (the secret share and public data, no Paillier keys yet).
//! - [`EcdsaAux`]: auxiliary info (each party's Paillier key and ring-Pedersen parameters, with
//!   their ZK proofs) for the same `n` parties. Safe primes are an **input**
//!   ([`SafePrimes`]): generating them costs minutes of CPU, so the driver does it in the
//!   background and feeds pregenerated ones in; no session ever generates a prime. cggmp24's aux
//!   info has no curve parameter, so one aux run serves keys on both curves.
//! - [`EcdsaKey::from_parts`]: joins the two and validates the result (cggmp24's `KeyShare`
//!   validation: the share matches its public share, the Paillier keys have the right sizes).
//! - [`EcdsaPresign`]: t signers produce a presignature each ([`EcdsaPresignature`]), before the
//!   message is known.
//! - [`EcdsaSign`]: one round: each signer consumes its presignature (by move: it cannot be used
//!   twice through this API) on the **full message**, which is hashed inside with SHA-256. This
//!   is the use cggmp24 documents as safe against CVE-2025-66017 / RUSTSEC-2025-0127: a
//!   presignature is never combined with a raw, caller-chosen hash.
//! - [`EcdsaInteractiveSign`]: the full interactive protocol (presigning and signing in one run)
//!   for a caller who holds only a 32-byte prehash. Safe with a raw hash because the hash is fixed
//!   before the nonces are drawn.
//!
//! On the wire each cggmp24 message is JSON (serde_json) inside the session [`Frame`]: kind 1 for
//! a broadcast, 2 for a point-to-point message, one field. A message is accepted only if it
//! decodes, re-encodes to exactly the bytes received (one value, one encoding), fits the phase's
//! size bound, comes from a participant (the authenticated `from`, never a field inside), is the
//! first from that sender in its round, and has the delivery type (broadcast or p2p) of that round.
//! Each round has a deadline; a round that misses it ends the run naming the silent parties.
//!
//! Blame: our own checks (framing, decoding, participant set, one message per round and type,
//! deadlines, the partial signatures of [`EcdsaSign`], which we verify one by one) name the sender.
//! cggmp24 has no identifiable abort; where its error carries `AbortBlame` entries (invalid
//! proofs, invalid decommitments, ...) the failure names those parties, and otherwise (e.g.
//! "Delta != G * delta", an invalid final signature in the interactive protocol) the failure has
//! no culprit. See docs/security.md.
//!
//! [`Frame`]: crate::session::Frame

#[cfg(feature = "test-fixtures")]
pub mod fixtures;
pub mod mpc;
pub mod online;
pub mod pool;
pub mod primes;
pub mod reshare;
pub mod sessions;
mod types;

#[cfg(test)]
mod tests;

pub use online::{EcdsaSign, EcdsaSignConfig};
pub use sessions::{
    AuxConfig, EcdsaAux, EcdsaInteractiveSign, EcdsaKeygen, EcdsaPresign, KeygenConfig,
    SignersConfig,
};
pub(crate) use types::Recovery;
pub use types::{
    EcdsaAuxOutput, EcdsaKey, EcdsaKeygenOutput, EcdsaPresignature, EcdsaSignature, KeyError,
    SafePrimes,
};

use core::fmt;
use core::str::FromStr;

use cggmp24::generic_ec::coords::AlwaysHasAffineX;
use cggmp24::generic_ec::{Curve, NonZero, Point};

/// The cggmp24 security level every session uses (128-bit; 1536-bit safe primes).
pub type Level = cggmp24::security_level::SecurityLevel128;
/// The hash every cggmp24 protocol here is instantiated with.
pub type Hash = sha2::Sha256;

/// The threshold-ECDSA schemes: the ECDSA part of [`crate::scheme::Scheme`]
/// ([`Scheme::EcdsaSecp256k1`](crate::scheme::Scheme::EcdsaSecp256k1),
/// [`Scheme::EcdsaP256`](crate::scheme::Scheme::EcdsaP256)), as the curve-generic sessions name
/// it. The names and tags are part of the wire protocol and config.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum EcdsaScheme {
    /// CGGMP24 threshold ECDSA on secp256k1 (SHA-256 message hash; low-S signatures).
    Secp256k1,
    /// CGGMP24 threshold ECDSA on P-256 (SHA-256 message hash; low-S signatures).
    P256,
}

impl EcdsaScheme {
    /// Every scheme, in tag order.
    pub const ALL: [EcdsaScheme; 2] = [EcdsaScheme::Secp256k1, EcdsaScheme::P256];

    /// The stable name used in config files, the CLI and the client API.
    pub const fn name(self) -> &'static str {
        match self {
            EcdsaScheme::Secp256k1 => "ecdsa-cggmp24-secp256k1",
            EcdsaScheme::P256 => "ecdsa-cggmp24-p256",
        }
    }

    /// The stable one-byte tag for binary encodings; disjoint from the FROST schemes' tags.
    pub const fn tag(self) -> u8 {
        match self {
            EcdsaScheme::Secp256k1 => 16,
            EcdsaScheme::P256 => 17,
        }
    }

    /// The scheme with this tag, if any.
    pub fn from_tag(tag: u8) -> Option<EcdsaScheme> {
        EcdsaScheme::ALL.into_iter().find(|s| s.tag() == tag)
    }
}

impl From<EcdsaScheme> for crate::scheme::Scheme {
    fn from(s: EcdsaScheme) -> Self {
        match s {
            EcdsaScheme::Secp256k1 => crate::scheme::Scheme::EcdsaSecp256k1,
            EcdsaScheme::P256 => crate::scheme::Scheme::EcdsaP256,
        }
    }
}

impl fmt::Display for EcdsaScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EcdsaScheme {
    type Err = crate::scheme::UnknownScheme;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EcdsaScheme::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| crate::scheme::UnknownScheme(s.chars().take(64).collect()))
    }
}

/// A curve the ECDSA sessions support: cggmp24's `Secp256k1` and `Secp256r1`.
pub trait EcdsaCurve: Curve
where
    NonZero<Point<Self>>: AlwaysHasAffineX<Self>,
{
    /// The scheme of keys on this curve.
    const SCHEME: EcdsaScheme;
    /// The FROST ciphersuite on the same curve (32-byte big-endian scalars, SEC1 compressed
    /// points), whose group the resharing protocol runs in ([`reshare`]).
    type Frost: frost_core::Ciphersuite;
}

impl EcdsaCurve for cggmp24::supported_curves::Secp256k1 {
    const SCHEME: EcdsaScheme = EcdsaScheme::Secp256k1;
    type Frost = frost_secp256k1::Secp256K1Sha256;
}

impl EcdsaCurve for cggmp24::supported_curves::Secp256r1 {
    const SCHEME: EcdsaScheme = EcdsaScheme::P256;
    type Frost = frost_p256::P256Sha256;
}

/// The cggmp24 execution id of a run: a domain-separated hash of the phase and the caller's
/// session id. Every participant of a run must pass the same `session_id`, and it must never
/// repeat (cggmp24 relies on it to keep messages of one run out of another).
pub(crate) fn execution_id(phase: &str, scheme: Option<EcdsaScheme>, session_id: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"keyshard/ecdsa/execution-id/v1");
    h.update((phase.len() as u64).to_be_bytes());
    h.update(phase.as_bytes());
    h.update([scheme.map_or(0, EcdsaScheme::tag)]);
    h.update((session_id.len() as u64).to_be_bytes());
    h.update(session_id);
    h.finalize().to_vec()
}

/// The party indices cggmp24 names in an error: every `faulty_party: N` and `parties: [..]` in
/// its `Debug` output.
///
/// cggmp24's error enums are private, so their `AbortBlame` entries cannot be read any other
/// way; the format is that of `#[derive(Debug)]` on `AbortBlame { faulty_party, .. }`, stable
/// for the exactly pinned version (a test checks it against a real cggmp24 abort).
pub(crate) fn blamed_indices(debug: &str) -> Vec<u16> {
    // An unreliable broadcast (the echo round found different views) cannot be pinned on
    // anyone: the party whose echo differs may be honest and the equivocating sender unknown.
    if debug.contains("NotReliable") {
        return Vec::new();
    }
    let mut out = Vec::new();
    // `AbortBlame { faulty_party: N, .. }` entries, and keygen's `{ parties: [N, M] }` lists.
    for key in ["faulty_party: ", "parties: ["] {
        let mut rest = debug;
        while let Some(pos) = rest.find(key) {
            rest = &rest[pos + key.len()..];
            let list: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == ' ')
                .collect();
            for item in list.split(',') {
                if let Ok(i) = item.trim().parse::<u16>() {
                    if !out.contains(&i) {
                        out.push(i);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod scheme_tests {
    use super::*;

    #[test]
    fn names_tags_and_blame_parsing() {
        for s in EcdsaScheme::ALL {
            assert_eq!(s.name().parse::<EcdsaScheme>().unwrap(), s);
            assert_eq!(EcdsaScheme::from_tag(s.tag()), Some(s));
            let general = crate::scheme::Scheme::from(s);
            assert_eq!(crate::scheme::Scheme::from_tag(s.tag()), Some(general));
            assert_eq!(s.name().parse::<crate::scheme::Scheme>(), Ok(general));
            assert_eq!(general.ecdsa(), Some(s));
        }
        assert_eq!(
            blamed_indices("Aborted(X([AbortBlame { faulty_party: 2, data_message: 7 }, AbortBlame { faulty_party: 0, x }, AbortBlame { faulty_party: 2 }]))"),
            vec![2, 0]
        );
        assert!(blamed_indices("MismatchedDelta").is_empty());
        assert_eq!(
            blamed_indices("Aborted(FeldmanVerificationFailed { parties: [1, 3] })"),
            vec![1, 3]
        );
        assert!(blamed_indices("Round1aNotReliable([AbortBlame { faulty_party: 1 }])").is_empty());
    }
}
