//! The security events the audit log records. Ids, counts and reasons only: never key material,
//! message contents or credentials.

use serde::{Deserialize, Serialize};

/// One security-relevant event. Serialised as a JSON object with a `type` field
/// (`"key_created"`, `"signed"`, ...) and the variant's fields in declaration order; that
/// encoding is part of the hash chain, so never rename or reorder a field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuditEvent {
    /// The node process started (first event after every start).
    NodeStarted {
        /// This node's id.
        node: u16,
        /// The software version.
        version: String,
    },
    /// The node is shutting down cleanly.
    NodeStopping {
        /// This node's id.
        node: u16,
    },
    /// A key (version 1) was created by a DKG.
    KeyCreated {
        /// The key id.
        key: String,
        /// The scheme name (`frost-ed25519`, ...).
        scheme: String,
        /// The version created.
        version: u32,
    },
    /// Messages were signed with a key.
    Signed {
        /// The key id.
        key: String,
        /// The key version that signed.
        version: u32,
        /// How many messages were signed in this request.
        count: u32,
        /// The client's request id.
        request_id: String,
    },
    /// A key was reshared (or refreshed) to a new version.
    Reshared {
        /// The key id.
        key: String,
        /// The version that was reshared.
        from_version: u32,
        /// The version it produced.
        to_version: u32,
    },
    /// A DKG, signing or reshare task failed.
    TaskFailed {
        /// `dkg`, `sign` or `reshare`.
        task: String,
        /// The key id.
        key: String,
        /// Why.
        reason: String,
        /// The participants blamed (may be empty).
        culprits: Vec<u16>,
    },
    /// A client or peer was refused an operation by role or identity.
    PermissionDenied {
        /// Who (certificate subject or node id).
        who: String,
        /// The RPC refused.
        rpc: String,
        /// Why.
        reason: String,
    },
    /// A peer connection was refused (bad certificate, unknown node id, ...).
    PeerRejected {
        /// Who (certificate subject or address).
        who: String,
        /// Why.
        reason: String,
    },
    /// An authenticated peer sent something the core refused (counted and dropped).
    PeerMisbehaved {
        /// The peer's node id.
        peer: u16,
        /// What was wrong.
        reason: String,
    },
    /// The Raft leader changed.
    LeaderChanged {
        /// The new leader, if known.
        leader: Option<u16>,
        /// The Raft term.
        term: u64,
    },
    /// This leader handed leadership to a better-performing follower.
    LeaderTransfer {
        /// This node (the lagging leader).
        from: u16,
        /// The follower chosen.
        to: u16,
        /// The scores behind the decision.
        reason: String,
    },
    /// Cluster membership changed (a committed Raft configuration change).
    MembershipChanged {
        /// The members after the change.
        members: Vec<u16>,
    },
    /// This node was removed from the cluster and erased its shares.
    NodeRemoved {
        /// This node's id.
        node: u16,
    },
    /// The audit log itself ended in an incomplete line at start (a crash during an append) and
    /// that line was cut off before this event was appended. See the module docs.
    TornTailDropped {
        /// The line number the incomplete line had.
        line: u64,
        /// How many bytes were cut off.
        bytes: u64,
        /// Hex SHA-256 of the bytes cut off.
        sha256: String,
    },
    /// The log was in the old unkeyed (v1) format when the node started: it was renamed and
    /// the new keyed chain starts with this event, which pins the old file's content.
    LegacyLogArchived {
        /// Where the old log now is.
        file: String,
        /// Its length in bytes.
        bytes: u64,
        /// How many lines it had.
        lines: u64,
        /// Hex SHA-256 of the whole file.
        sha256: String,
    },
    /// A slot of the audit checkpoint was unusable at start (a crash during a checkpoint write,
    /// or tampering) and the checkpoint was rewritten from the log.
    CheckpointRepaired {
        /// What was wrong with the slot.
        reason: String,
    },
}
