//! Byzantine nodes (`--byzantine K`): `K` nodes run the real core but the world also acts for
//! the attacker who controls them, with strategies drawn from the seed:
//!
//! - **replay**: a signing or presigning start the node sent as leader is sent again later to
//!   the same signer, with other messages (the nonce-reuse attack of issue 16, item 1);
//! - **garbage**: random bytes, or a random session payload under a recorded run, to a peer.
//!
//! What the attacker does not do here yet: forge client requests, propose forged entries, lie in
//! reports (the core has no end-to-end authorisation to test against yet; docs/security.md).
//!
//! The checker that goes with it ([`NonceWatch`]): no honest node ever sends one signing or
//! presigning session payload twice. Nonce commitments are fresh random points, so a repeated
//! payload means a repeated nonce.

use std::collections::{BTreeMap, BTreeSet};

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::{NodeMessage, SessionKind, SignStart};
use sha2::{Digest, Sha256};

/// The shortest session payload that carries a nonce commitment (one compressed point is 32
/// or 33 bytes, and a frame adds its header).
const MIN_NONCE_PAYLOAD: usize = 40;

/// At most this many starts are remembered per Byzantine node.
const MAX_RECORDED: usize = 64;

/// What the attacker knows and does.
#[derive(Default)]
pub struct Attacker {
    /// The nodes it controls.
    pub nodes: BTreeSet<ParticipantId>,
    /// Starts those nodes sent: (from, to, message).
    recorded: Vec<(ParticipantId, ParticipantId, NodeMessage)>,
    /// Replays sent.
    pub replays: u64,
    /// Garbage messages sent.
    pub garbage: u64,
}

/// One act of the attacker: bytes from a Byzantine node to a peer.
pub struct Act {
    /// The Byzantine node it comes from (the transport authenticates it as that node).
    pub from: ParticipantId,
    /// The peer.
    pub to: ParticipantId,
    /// What it sends.
    pub bytes: Vec<u8>,
}

impl Attacker {
    /// Remembers a start a Byzantine node sent.
    pub fn sent(&mut self, from: ParticipantId, to: ParticipantId, bytes: &[u8]) {
        if !self.nodes.contains(&from) {
            return;
        }
        if let Ok(msg @ (NodeMessage::SignStart(_) | NodeMessage::PresignStart { .. })) =
            NodeMessage::decode(bytes)
        {
            if self.recorded.len() == MAX_RECORDED {
                self.recorded.remove(0);
            }
            self.recorded.push((from, to, msg));
        }
    }

    /// The next act; `pick(n)` draws below `n` from the seed.
    pub fn act(
        &mut self,
        members: &[ParticipantId],
        mut pick: impl FnMut(u64) -> u64,
    ) -> Option<Act> {
        let from = *self
            .nodes
            .iter()
            .nth(pick(self.nodes.len().max(1) as u64) as usize)?;
        match pick(4) {
            // Replay a recorded start with other messages (twice as likely as garbage).
            0 | 1 if !self.recorded.is_empty() => {
                let i = pick(self.recorded.len() as u64) as usize;
                let (from, to, msg) = self.recorded[i].clone();
                let msg = match msg {
                    NodeMessage::SignStart(s) => {
                        let n = s.messages.len().max(1);
                        let messages = (0..n)
                            .map(|_| pick(u64::MAX).to_be_bytes().to_vec())
                            .collect();
                        // A presigned start names presignatures per message: keep the count.
                        let presignatures = s.presignatures.clone();
                        NodeMessage::SignStart(SignStart {
                            messages: if presignatures.is_empty() {
                                messages
                            } else {
                                s.messages.clone()
                            },
                            ..s
                        })
                    }
                    other => other,
                };
                self.replays += 1;
                Some(Act {
                    from,
                    to,
                    bytes: msg.encode(),
                })
            }
            2 if !self.recorded.is_empty() => {
                let i = pick(self.recorded.len() as u64) as usize;
                let (from, to, msg) = &self.recorded[i];
                let session = match msg {
                    NodeMessage::SignStart(s) => s.session,
                    NodeMessage::PresignStart { session, .. } => *session,
                    _ => return None,
                };
                let len = 1 + pick(96) as usize;
                let payload = (0..len).map(|_| pick(256) as u8).collect();
                self.garbage += 1;
                Some(Act {
                    from: *from,
                    to: *to,
                    bytes: NodeMessage::Session {
                        key: session,
                        payload,
                    }
                    .encode(),
                })
            }
            _ => {
                let to = *members.get(pick(members.len().max(1) as u64) as usize)?;
                if to == from {
                    return None;
                }
                let len = 1 + pick(64) as usize;
                self.garbage += 1;
                Some(Act {
                    from,
                    to,
                    bytes: (0..len).map(|_| pick(256) as u8).collect(),
                })
            }
        }
    }
}

/// Watches every signing and presigning session payload an honest node sends. A replayed start
/// reuses the session key, so a repeat under one session key (to one recipient) is the attack;
/// whole payloads are compared, so a nonce repeated beside other changed bytes is not seen.
#[derive(Default)]
pub struct NonceWatch {
    seen: BTreeMap<[u8; 32], (ParticipantId, u64)>,
    /// Payloads checked.
    pub checked: u64,
}

impl NonceWatch {
    /// An honest node sent `bytes`; `Some(detail)` if it repeats a session payload it sent
    /// before.
    pub fn sent(&mut self, from: ParticipantId, to: ParticipantId, bytes: &[u8]) -> Option<String> {
        let Ok(NodeMessage::Session { key, payload }) = NodeMessage::decode(bytes) else {
            return None;
        };
        // Short frames carry no nonce commitment (aborts name the same peer run after run).
        if !matches!(key.kind, SessionKind::Sign | SessionKind::Presign)
            || payload.len() < MIN_NONCE_PAYLOAD
        {
            return None;
        }
        self.checked += 1;
        let mut h = Sha256::new();
        // Per recipient: a coordinator sends one signing package to every signer.
        h.update(from.get().to_be_bytes());
        h.update(to.get().to_be_bytes());
        h.update([key.kind as u8]);
        h.update(key.task.to_be_bytes());
        h.update(key.attempt.to_be_bytes());
        h.update(&payload);
        let digest: [u8; 32] = h.finalize().into();
        self.seen
            .insert(digest, (from, key.task))
            .map(|(_, first_run)| {
                format!(
                    "node {from} sent one {:?} session payload to {to} twice (runs {first_run} \
                     and {}): a repeated nonce",
                    key.kind, key.task
                )
            })
    }
}
