//! FROST (RFC 9591) sessions, generic over `frost_core::Ciphersuite`.
//!
//! - [`FrostDkg`]: distributed key generation without a dealer (round 1 broadcast, round 2
//!   shares plus an echo of every round-1 digest, round 3 confirmation of the public key package).
//! - [`FrostSign`]: threshold signing with a coordinator (commit, sign, aggregate with cheater
//!   detection), single or batched messages sharing one session's round trips.
//!
//! The gaps found in frost-core 3.0.0 and where each is closed:
//! - oversized round-1 commitment vectors (16-bit count): exact byte size checked before decoding
//!   ([`canonical::decode`] with the size of our own package);
//! - strangers accepted by `part2`: only the configured participant set may speak, each once per
//!   round ([`FrostDkg`]);
//! - trailing bytes and truncated public key packages: re-encode and compare ([`canonical`]); the
//!   signing messages (commitments, signing packages) are parsed against frost's exact layout
//!   instead, which accepts the same bytes without re-encoding every element
//!   ([`canonical::SigningCodec`]);
//! - nonce reuse in `round2::sign`: [`sign::SingleUseNonces`] is consumed by move;
//! - altered higher commitments passing `part2`: every round-2 message carries the sender's digest
//!   of each round-1 package, and round 2 is accepted only if all digests agree.

pub mod canonical;
pub mod dkg;
pub mod sign;
pub mod vss;
pub mod wire;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
pub(crate) mod tests;

pub use dkg::{DkgConfig, DkgOutput, FrostDkg};
pub use sign::{FrostSign, SignConfig, SignOutput, SingleUseNonces};
pub use wire::CommitmentWire;

use std::collections::BTreeSet;
use std::fmt;

use frost_core::{Ciphersuite, Error};

use crate::ids::ParticipantId;
use crate::session::{Failure, FailureKind};

/// A session configuration that cannot run. Caller misuse, reported before anything starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `me` is not in the participant set.
    NotAParticipant,
    /// Fewer than two participants, or more than `u16::MAX`.
    BadParticipantCount(usize),
    /// The threshold is below 2 or above the number of participants.
    BadThreshold {
        /// The threshold given.
        threshold: u16,
        /// The number of participants.
        participants: usize,
    },
    /// A signer has no key package, or the coordinator has no public key package.
    MissingKeyMaterial(&'static str),
    /// The key material belongs to a different identifier or threshold than the config says.
    KeyMaterialMismatch(&'static str),
    /// A batch must sign at least one message and at most [`sign::MAX_BATCH`].
    BadBatchSize(usize),
    /// A message is larger than [`sign::MAX_MESSAGE_BYTES`].
    MessageTooLarge(usize),
    /// A reshare needs at least the old threshold of dealers.
    TooFewDealers {
        /// The dealers configured.
        dealers: usize,
        /// The old threshold.
        threshold: u16,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotAParticipant => f.write_str("this node is not in the participant set"),
            ConfigError::BadParticipantCount(n) => {
                write!(f, "{n} participants; need between 2 and 65535")
            }
            ConfigError::BadThreshold {
                threshold,
                participants,
            } => write!(
                f,
                "threshold {threshold} is invalid for {participants} participants (need 2 <= t <= n)"
            ),
            ConfigError::MissingKeyMaterial(what) => write!(f, "missing {what}"),
            ConfigError::KeyMaterialMismatch(what) => write!(f, "key material mismatch: {what}"),
            ConfigError::BadBatchSize(n) => write!(
                f,
                "a batch of {n} messages; need between 1 and {}",
                sign::MAX_BATCH
            ),
            ConfigError::MessageTooLarge(n) => write!(
                f,
                "a {n}-byte message exceeds the {}-byte limit",
                sign::MAX_MESSAGE_BYTES
            ),
            ConfigError::TooFewDealers { dealers, threshold } => write!(
                f,
                "{dealers} dealers cannot reshare a key of threshold {threshold}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Converts a frost-core error into a session failure, mapping its culprits back to participants.
pub(crate) fn failure_from_frost<C: Ciphersuite>(
    err: &Error<C>,
    participants: &BTreeSet<ParticipantId>,
) -> Failure {
    let culprits: BTreeSet<ParticipantId> = err
        .culprits()
        .into_iter()
        .filter_map(|c| {
            participants
                .iter()
                .copied()
                .find(|p| p.to_frost::<C>() == c)
        })
        .collect();
    let kind = match err {
        Error::InvalidProofOfKnowledge { .. } => FailureKind::InvalidProofOfKnowledge,
        Error::InvalidSecretShare { .. } => FailureKind::InvalidSecretShare,
        Error::InvalidSignatureShare { .. } => FailureKind::InvalidSignatureShare,
        other => FailureKind::Library(other.to_string()),
    };
    Failure { kind, culprits }
}
