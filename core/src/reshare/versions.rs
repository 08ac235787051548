//! Key versions around a reshare: `v+1` is stored beside `v`, becomes active only when the
//! cluster has proof that it works, and only then is `v` erased.
//!
//! The reshare session never touches stored shares. This module is the pure bookkeeping a node
//! runs around it, per key, producing the [`PersistOp`]s to make durable:
//!
//! 1. the session ends with [`super::ReshareOutput::Member`] → [`ShareVersions::stage`]:
//!    `PutShare(v+1)` beside `v` (the active version stays `v`; signing keeps using `v`);
//! 2. once the `PutShare` is durable, the member reports "staged `v+1`, public key package digest
//!    D" to the leader (never before: Raft's rule);
//! 3. the leader activates `v+1` only when [`activation_ready`] holds: every new member reported
//!    the same D and a test signature with `v+1` ([`test_message`]) verifies under the unchanged
//!    group key ([`test_signature_verifies`]); it commits that decision through Raft;
//! 4. every node applies the committed decision → [`ShareVersions::activate`]: `EraseShare(v)`
//!    (a dealer that is not a new member erases `v` and holds nothing of the key any more);
//! 5. a failed or abandoned reshare → [`ShareVersions::abandon`]: `EraseShare(v+1)` if staged;
//!    `v` stays active, and a retry is a new session with a fresh seed;
//! 6. after a crash, [`ShareVersions::restore`] reconciles the store with the registry's
//!    committed active version: versions below it are erased (an activation whose erase did not
//!    happen), a staged `v+1` whose task is no longer open is erased, and `v` is never erased
//!    unless the registry has committed a later active version.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::PublicKeyPackage;
use frost_core::{Ciphersuite, Signature};

use crate::ids::ParticipantId;
use crate::persist::{KeyId, KeyVersion, PersistOp, SecretBytes};

/// Misuse of the version bookkeeping (a node bug, never peer input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionError {
    /// Only `active + 1` can be staged, activated or abandoned.
    NotNext {
        /// The active version.
        active: KeyVersion,
        /// The version given.
        given: KeyVersion,
    },
    /// Another version is already staged.
    AlreadyStaged(KeyVersion),
}

/// One node's versions of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareVersions {
    key: KeyId,
    active: KeyVersion,
    /// `Some(v+1)` while a reshare's share is stored beside `v`, not yet active.
    staged: Option<KeyVersion>,
    /// Whether this node holds a share of the active version (a dealer-only node that retired,
    /// or a node that never was a member, holds none).
    holds_active: bool,
}

fn next(v: KeyVersion) -> KeyVersion {
    KeyVersion(v.0.saturating_add(1))
}

impl ShareVersions {
    /// A key whose active version is `active`, of which this node holds a share iff `holds_active`.
    pub fn new(key: KeyId, active: KeyVersion, holds_active: bool) -> Self {
        ShareVersions {
            key,
            active,
            staged: None,
            holds_active,
        }
    }

    /// The version signing uses: always the active one, never a staged one.
    pub fn signing_version(&self) -> Option<KeyVersion> {
        self.holds_active.then_some(self.active)
    }

    /// The active version.
    pub fn active(&self) -> KeyVersion {
        self.active
    }

    /// The staged version, if any.
    pub fn staged(&self) -> Option<KeyVersion> {
        self.staged
    }

    /// Stores a new member's share of `version` (= active + 1) beside the active one.
    pub fn stage(
        &mut self,
        version: KeyVersion,
        share: SecretBytes,
    ) -> Result<PersistOp, VersionError> {
        self.check_next(version)?;
        if let Some(s) = self.staged {
            return Err(VersionError::AlreadyStaged(s));
        }
        self.staged = Some(version);
        Ok(PersistOp::PutShare {
            key: self.key.clone(),
            version,
            share,
        })
    }

    /// Applies the cluster's committed activation of `version` (= active + 1): erases the old
    /// share if this node held one. A dealer-only node (nothing staged) ends holding nothing.
    pub fn activate(&mut self, version: KeyVersion) -> Result<Vec<PersistOp>, VersionError> {
        self.check_next(version)?;
        let mut ops = Vec::new();
        if self.holds_active {
            ops.push(PersistOp::EraseShare {
                key: self.key.clone(),
                version: self.active,
            });
        }
        self.holds_active = self.staged == Some(version);
        self.staged = None;
        self.active = version;
        Ok(ops)
    }

    /// The reshare to `version` failed or was abandoned: erases the staged share, if any.
    /// The active version is untouched.
    pub fn abandon(&mut self, version: KeyVersion) -> Result<Vec<PersistOp>, VersionError> {
        self.check_next(version)?;
        Ok(match self.staged.take() {
            Some(v) => vec![PersistOp::EraseShare {
                key: self.key.clone(),
                version: v,
            }],
            None => Vec::new(),
        })
    }

    /// Reconciles what the store holds after a restart with the registry's committed active
    /// version and the reshare task still open for this key (if any, the version it produces).
    pub fn restore(
        key: KeyId,
        active: KeyVersion,
        held: &[KeyVersion],
        open_reshare: Option<KeyVersion>,
    ) -> (Self, Vec<PersistOp>) {
        let mut ops = Vec::new();
        let mut staged = None;
        let held: BTreeSet<KeyVersion> = held.iter().copied().collect();
        for v in &held {
            let keep = *v == active || (*v == next(active) && open_reshare == Some(*v));
            if *v == next(active) && keep {
                staged = Some(*v);
            }
            if !keep {
                ops.push(PersistOp::EraseShare {
                    key: key.clone(),
                    version: *v,
                });
            }
        }
        let versions = ShareVersions {
            key,
            active,
            staged,
            holds_active: held.contains(&active),
        };
        (versions, ops)
    }

    fn check_next(&self, version: KeyVersion) -> Result<(), VersionError> {
        if version != next(self.active) {
            return Err(VersionError::NotNext {
                active: self.active,
                given: version,
            });
        }
        Ok(())
    }
}

/// The message every activation test signature signs: domain-separated, so it can never be an
/// application's message.
pub fn test_message(key: &KeyId, version: KeyVersion) -> Vec<u8> {
    let mut m = b"keyshard/activation-test/v1/".to_vec();
    m.extend_from_slice(key.as_str().as_bytes());
    m.push(b'/');
    m.extend_from_slice(&version.0.to_be_bytes());
    m
}

/// Whether `signature` on `message` verifies under the public key package's (unchanged) key.
pub fn test_signature_verifies<C: Ciphersuite>(
    public_key_package: &PublicKeyPackage<C>,
    message: &[u8],
    signature: &Signature<C>,
) -> bool {
    public_key_package
        .verifying_key()
        .verify(message, signature)
        .is_ok()
}

/// Why the leader may not activate `v+1` yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// These new members have not reported their staged share.
    Unconfirmed(BTreeSet<ParticipantId>),
    /// Members reported different public key packages (or a non-member reported).
    Disagreement,
    /// No test signature with `v+1` has verified yet.
    NoTestSignature,
}

/// The leader's activation rule: every new member reported the same public key package digest
/// after storing its share durably, and a test signature with `v+1` verified. Returns the agreed
/// digest.
pub fn activation_ready(
    new_members: &BTreeSet<ParticipantId>,
    staged_reports: &BTreeMap<ParticipantId, [u8; 32]>,
    test_signature_verified: bool,
) -> Result<[u8; 32], NotReady> {
    let missing: BTreeSet<ParticipantId> = new_members
        .iter()
        .copied()
        .filter(|p| !staged_reports.contains_key(p))
        .collect();
    if !missing.is_empty() {
        return Err(NotReady::Unconfirmed(missing));
    }
    let digests: BTreeSet<&[u8; 32]> = staged_reports.values().collect();
    if digests.len() != 1 || staged_reports.keys().any(|p| !new_members.contains(p)) {
        return Err(NotReady::Disagreement);
    }
    if !test_signature_verified {
        return Err(NotReady::NoTestSignature);
    }
    digests
        .into_iter()
        .next()
        .copied()
        .ok_or(NotReady::Disagreement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyId {
        KeyId::new("k").unwrap()
    }

    fn pid(n: u16) -> ParticipantId {
        ParticipantId::new(n).unwrap()
    }

    #[test]
    fn stage_beside_then_activate_erases_the_old_version_only_then() {
        let mut v = ShareVersions::new(key(), KeyVersion(1), true);
        let put = v.stage(KeyVersion(2), SecretBytes::new(vec![1])).unwrap();
        assert!(matches!(
            put,
            PersistOp::PutShare {
                version: KeyVersion(2),
                ..
            }
        ));
        assert_eq!(
            v.signing_version(),
            Some(KeyVersion(1)),
            "v signs until v+1 is active"
        );
        assert_eq!(
            v.stage(KeyVersion(2), SecretBytes::new(vec![1])),
            Err(VersionError::AlreadyStaged(KeyVersion(2)))
        );
        assert!(v.activate(KeyVersion(3)).is_err());
        let ops = v.activate(KeyVersion(2)).unwrap();
        assert_eq!(
            ops,
            vec![PersistOp::EraseShare {
                key: key(),
                version: KeyVersion(1)
            }]
        );
        assert_eq!(v.signing_version(), Some(KeyVersion(2)));
    }

    #[test]
    fn abandon_keeps_v_and_a_dealer_only_node_retires_on_activation() {
        let mut v = ShareVersions::new(key(), KeyVersion(4), true);
        v.stage(KeyVersion(5), SecretBytes::new(vec![1])).unwrap();
        assert_eq!(
            v.abandon(KeyVersion(5)).unwrap(),
            vec![PersistOp::EraseShare {
                key: key(),
                version: KeyVersion(5)
            }]
        );
        assert_eq!(v.signing_version(), Some(KeyVersion(4)));
        // A dealer that is not a new member: nothing staged; activation erases v, holds nothing.
        let ops = v.activate(KeyVersion(5)).unwrap();
        assert_eq!(
            ops,
            vec![PersistOp::EraseShare {
                key: key(),
                version: KeyVersion(4)
            }]
        );
        assert_eq!(v.signing_version(), None);
    }

    #[test]
    fn restore_after_a_crash_never_erases_the_active_version() {
        // Crash after staging v+1, task still open: keep both.
        let (v, ops) = ShareVersions::restore(
            key(),
            KeyVersion(1),
            &[KeyVersion(1), KeyVersion(2)],
            Some(KeyVersion(2)),
        );
        assert!(ops.is_empty());
        assert_eq!(
            (v.active(), v.staged()),
            (KeyVersion(1), Some(KeyVersion(2)))
        );
        // Crash after staging, task failed meanwhile: drop v+1, keep v.
        let (v, ops) =
            ShareVersions::restore(key(), KeyVersion(1), &[KeyVersion(1), KeyVersion(2)], None);
        assert_eq!(
            ops,
            vec![PersistOp::EraseShare {
                key: key(),
                version: KeyVersion(2)
            }]
        );
        assert_eq!(v.signing_version(), Some(KeyVersion(1)));
        // Crash after the activation committed but before the erase: finish the erase.
        let (v, ops) =
            ShareVersions::restore(key(), KeyVersion(2), &[KeyVersion(1), KeyVersion(2)], None);
        assert_eq!(
            ops,
            vec![PersistOp::EraseShare {
                key: key(),
                version: KeyVersion(1)
            }]
        );
        assert_eq!(v.signing_version(), Some(KeyVersion(2)));
    }

    #[test]
    fn activation_needs_every_member_the_same_package_and_a_test_signature() {
        let members: BTreeSet<_> = [pid(1), pid(2), pid(3)].into();
        let mut reports = BTreeMap::from([(pid(1), [7u8; 32]), (pid(2), [7u8; 32])]);
        assert_eq!(
            activation_ready(&members, &reports, true),
            Err(NotReady::Unconfirmed([pid(3)].into()))
        );
        reports.insert(pid(3), [8u8; 32]);
        assert_eq!(
            activation_ready(&members, &reports, true),
            Err(NotReady::Disagreement)
        );
        reports.insert(pid(3), [7u8; 32]);
        assert_eq!(
            activation_ready(&members, &reports, false),
            Err(NotReady::NoTestSignature)
        );
        assert_eq!(activation_ready(&members, &reports, true), Ok([7u8; 32]));
        assert_ne!(
            test_message(&key(), KeyVersion(2)),
            test_message(&key(), KeyVersion(3))
        );
    }
}
