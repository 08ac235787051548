//! Messages between nodes, in the core's own strict encoding.

use std::collections::BTreeSet;

use crate::codec::{DecodeError, Reader, Writer};
use crate::frost::sign::{MAX_BATCH, MAX_MESSAGE_BYTES};
use crate::ids::ParticipantId;
use crate::persist::{KeyId, KeyVersion};
use crate::scheme::Scheme;
use crate::session::MAX_FRAME_BYTES;

use super::registry::MAX_REQUEST_ID;

/// The largest node message accepted (a full signing batch plus framing).
pub const MAX_MESSAGE: usize = 80 * 1024 * 1024;

/// Which kind of session a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SessionKind {
    /// A DKG task's attempt (ids from the registry).
    Dkg,
    /// A signing run (ids from the coordinating leader: term and sequence).
    Sign,
    /// A reshare task's attempt (ids from the registry).
    Reshare,
}

/// Identifies one session cluster-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionKey {
    /// The kind.
    pub kind: SessionKind,
    /// Task id (DKG) or run id (signing).
    pub task: u64,
    /// Attempt number.
    pub attempt: u32,
}

/// A client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Create a key with a DKG.
    CreateKey {
        /// Its id.
        key: KeyId,
        /// Its scheme.
        scheme: Scheme,
        /// Its threshold.
        threshold: u16,
        /// Who holds shares (`None`: every member).
        participants: Option<BTreeSet<ParticipantId>>,
    },
    /// Sign a batch of messages.
    Sign {
        /// With which key.
        key: KeyId,
        /// What.
        messages: Vec<Vec<u8>>,
    },
    /// Reshare a key to a new threshold and member set (same group public key, next version).
    /// `None` keeps the current value; both `None` is a refresh.
    Reshare {
        /// The key.
        key: KeyId,
        /// The new threshold.
        new_threshold: Option<u16>,
        /// The new members.
        new_members: Option<BTreeSet<ParticipantId>>,
    },
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The key exists.
    KeyCreated {
        /// Its id.
        key: KeyId,
        /// Its scheme.
        scheme: Scheme,
        /// Its version.
        version: KeyVersion,
        /// The group public key in the scheme's standard encoding.
        public_key: Vec<u8>,
    },
    /// The messages are signed.
    Signed {
        /// With which key.
        key: KeyId,
        /// At which version.
        version: KeyVersion,
        /// One signature per message, in order, in the scheme's standard encoding.
        signatures: Vec<Vec<u8>>,
    },
    /// The key was reshared: `version` is active.
    Reshared {
        /// Its id.
        key: KeyId,
        /// The version the reshare produced.
        version: KeyVersion,
        /// The group public key (unchanged by a reshare).
        public_key: Vec<u8>,
    },
}

/// Why a request failed. Stable and specific: clients act on these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The request is malformed; says what is wrong.
    BadRequest(String),
    /// No such key.
    NoSuchKey(KeyId),
    /// The key id is taken.
    KeyExists(KeyId),
    /// Not enough healthy participants.
    NotEnoughParticipants {
        /// Needed.
        needed: u16,
        /// Available.
        available: u16,
    },
    /// The protocol failed; names the blamed participants.
    Failed {
        /// What happened.
        reason: String,
        /// Who was blamed.
        culprits: BTreeSet<ParticipantId>,
    },
    /// No answer in time (e.g. the leader changed while the request was in flight).
    TimedOut,
}

/// Encodes a set of participant ids (shared by the wire and the registry's log encoding).
pub(crate) fn write_ids(w: &mut Writer, ids: &BTreeSet<ParticipantId>) {
    w.count(ids.len());
    for id in ids {
        w.u16(id.get());
    }
}

/// Decodes a set of participant ids: at most 1,024, no zero, no duplicate.
pub(crate) fn read_ids(r: &mut Reader<'_>) -> Result<BTreeSet<ParticipantId>, DecodeError> {
    let n = r.count("ids", 1024, 2)?;
    let mut out = BTreeSet::new();
    for _ in 0..n {
        let id = ParticipantId::new(r.u16("id")?).ok_or(DecodeError::Invalid("id 0"))?;
        if !out.insert(id) {
            return Err(DecodeError::Invalid("duplicate id"));
        }
    }
    Ok(out)
}

fn read_key(r: &mut Reader<'_>) -> Result<KeyId, DecodeError> {
    KeyId::new(&r.str("key id", 64)?).map_err(|_| DecodeError::Invalid("key id"))
}

fn read_messages(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, DecodeError> {
    let n = r.count("messages", MAX_BATCH, 4)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.bytes("message", MAX_MESSAGE_BYTES)?);
    }
    Ok(out)
}

impl Request {
    fn write(&self, w: &mut Writer) {
        match self {
            Request::CreateKey {
                key,
                scheme,
                threshold,
                participants,
            } => {
                w.u8(1).str(key.as_str()).u8(scheme.tag()).u16(*threshold);
                w.bool(participants.is_some());
                if let Some(p) = participants {
                    write_ids(w, p);
                }
            }
            Request::Sign { key, messages } => {
                w.u8(2).str(key.as_str()).count(messages.len());
                for m in messages {
                    w.bytes(m);
                }
            }
            Request::Reshare {
                key,
                new_threshold,
                new_members,
            } => {
                w.u8(3).str(key.as_str()).bool(new_threshold.is_some());
                if let Some(t) = new_threshold {
                    w.u16(*t);
                }
                w.bool(new_members.is_some());
                if let Some(m) = new_members {
                    write_ids(w, m);
                }
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("request")? {
            1 => Request::CreateKey {
                key: read_key(r)?,
                scheme: Scheme::from_tag(r.u8("scheme")?).ok_or(DecodeError::Invalid("scheme"))?,
                threshold: r.u16("threshold")?,
                participants: if r.bool("has participants")? {
                    Some(read_ids(r)?)
                } else {
                    None
                },
            },
            2 => Request::Sign {
                key: read_key(r)?,
                messages: read_messages(r)?,
            },
            3 => Request::Reshare {
                key: read_key(r)?,
                new_threshold: if r.bool("has threshold")? {
                    Some(r.u16("threshold")?)
                } else {
                    None
                },
                new_members: if r.bool("has members")? {
                    Some(read_ids(r)?)
                } else {
                    None
                },
            },
            tag => {
                return Err(DecodeError::BadTag {
                    what: "request",
                    tag,
                })
            }
        })
    }
}

fn write_result(w: &mut Writer, result: &Result<Response, RequestError>) {
    match result {
        Ok(Response::KeyCreated {
            key,
            scheme,
            version,
            public_key,
        }) => {
            w.u8(1)
                .str(key.as_str())
                .u8(scheme.tag())
                .u32(version.0)
                .bytes(public_key);
        }
        Ok(Response::Signed {
            key,
            version,
            signatures,
        }) => {
            w.u8(2)
                .str(key.as_str())
                .u32(version.0)
                .count(signatures.len());
            for s in signatures {
                w.bytes(s);
            }
        }
        Ok(Response::Reshared {
            key,
            version,
            public_key,
        }) => {
            w.u8(3).str(key.as_str()).u32(version.0).bytes(public_key);
        }
        Err(RequestError::BadRequest(s)) => {
            w.u8(10).str(s);
        }
        Err(RequestError::NoSuchKey(k)) => {
            w.u8(11).str(k.as_str());
        }
        Err(RequestError::KeyExists(k)) => {
            w.u8(12).str(k.as_str());
        }
        Err(RequestError::NotEnoughParticipants { needed, available }) => {
            w.u8(13).u16(*needed).u16(*available);
        }
        Err(RequestError::Failed { reason, culprits }) => {
            w.u8(14).str(reason);
            write_ids(w, culprits);
        }
        Err(RequestError::TimedOut) => {
            w.u8(15);
        }
    }
}

fn read_result(r: &mut Reader<'_>) -> Result<Result<Response, RequestError>, DecodeError> {
    Ok(match r.u8("result")? {
        1 => Ok(Response::KeyCreated {
            key: read_key(r)?,
            scheme: Scheme::from_tag(r.u8("scheme")?).ok_or(DecodeError::Invalid("scheme"))?,
            version: KeyVersion(r.u32("version")?),
            public_key: r.bytes("public key", 1024)?,
        }),
        2 => {
            let key = read_key(r)?;
            let version = KeyVersion(r.u32("version")?);
            let n = r.count("signatures", MAX_BATCH, 4)?;
            let mut signatures = Vec::with_capacity(n);
            for _ in 0..n {
                signatures.push(r.bytes("signature", 1024)?);
            }
            Ok(Response::Signed {
                key,
                version,
                signatures,
            })
        }
        3 => Ok(Response::Reshared {
            key: read_key(r)?,
            version: KeyVersion(r.u32("version")?),
            public_key: r.bytes("public key", 1024)?,
        }),
        10 => Err(RequestError::BadRequest(r.str("reason", 1024)?)),
        11 => Err(RequestError::NoSuchKey(read_key(r)?)),
        12 => Err(RequestError::KeyExists(read_key(r)?)),
        13 => Err(RequestError::NotEnoughParticipants {
            needed: r.u16("needed")?,
            available: r.u16("available")?,
        }),
        14 => Err(RequestError::Failed {
            reason: r.str("reason", 1024)?,
            culprits: read_ids(r)?,
        }),
        15 => Err(RequestError::TimedOut),
        tag => {
            return Err(DecodeError::BadTag {
                what: "result",
                tag,
            })
        }
    })
}

/// A message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeMessage {
    /// A Raft message (own encoding, see `raft_wire`).
    Raft(Vec<u8>),
    /// A session message.
    Session {
        /// Which session.
        key: SessionKey,
        /// The session's frame.
        payload: Vec<u8>,
    },
    /// From the coordinating leader to a chosen signer: start signing.
    SignStart {
        /// The run id.
        session: SessionKey,
        /// Which key.
        key: KeyId,
        /// At which version.
        version: KeyVersion,
        /// Exactly who signs.
        signers: BTreeSet<ParticipantId>,
        /// What.
        messages: Vec<Vec<u8>>,
    },
    /// From any node to the leader: a client request it received.
    Forward {
        /// The client's request id.
        request_id: String,
        /// The request.
        request: Request,
    },
    /// From the leader to the node that forwarded a request.
    Reply {
        /// The request id.
        request_id: String,
        /// The answer.
        result: Result<Response, RequestError>,
    },
    /// From a DKG participant to the leader: how its session ended. `Ok` is sent only after its
    /// share is durable.
    DkgReport {
        /// The task.
        task: u64,
        /// The attempt.
        attempt: u32,
        /// The public key package, or the culprits named.
        result: Result<Vec<u8>, (String, BTreeSet<ParticipantId>)>,
    },
    /// From a reshare participant to the leader: how its session ended. `Ok` (sent only by a new
    /// member, only after its share of the new version is durable) carries the confirmation
    /// digest and the new public key package.
    ReshareReport {
        /// The task.
        task: u64,
        /// The attempt.
        attempt: u32,
        /// The digest and public key package, or the culprits named.
        result: ReshareOutcome,
    },
}

/// How a participant's reshare attempt ended.
pub type ReshareOutcome = Result<([u8; 32], Vec<u8>), (String, BTreeSet<ParticipantId>)>;

impl NodeMessage {
    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            NodeMessage::Raft(b) => {
                w.u8(1).bytes(b);
            }
            NodeMessage::Session { key, payload } => {
                w.u8(2);
                write_session(&mut w, key);
                w.bytes(payload);
            }
            NodeMessage::SignStart {
                session,
                key,
                version,
                signers,
                messages,
            } => {
                w.u8(3);
                write_session(&mut w, session);
                w.str(key.as_str()).u32(version.0);
                write_ids(&mut w, signers);
                w.count(messages.len());
                for m in messages {
                    w.bytes(m);
                }
            }
            NodeMessage::Forward {
                request_id,
                request,
            } => {
                w.u8(4).str(request_id);
                request.write(&mut w);
            }
            NodeMessage::Reply { request_id, result } => {
                w.u8(5).str(request_id);
                write_result(&mut w, result);
            }
            NodeMessage::DkgReport {
                task,
                attempt,
                result,
            } => {
                w.u8(6).u64(*task).u32(*attempt);
                match result {
                    Ok(pkp) => {
                        w.u8(1).bytes(pkp);
                    }
                    Err((reason, culprits)) => {
                        w.u8(2).str(reason);
                        write_ids(&mut w, culprits);
                    }
                }
            }
            NodeMessage::ReshareReport {
                task,
                attempt,
                result,
            } => {
                w.u8(7).u64(*task).u32(*attempt);
                match result {
                    Ok((digest, pkp)) => {
                        w.u8(1).bytes(digest).bytes(pkp);
                    }
                    Err((reason, culprits)) => {
                        w.u8(2).str(reason);
                        write_ids(&mut w, culprits);
                    }
                }
            }
        }
        w.finish()
    }

    /// Decodes untrusted bytes from a peer.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(DecodeError::TooMany {
                what: "node message bytes",
                count: bytes.len(),
                max: MAX_MESSAGE,
            });
        }
        let mut r = Reader::new(bytes);
        let m = match r.u8("node message")? {
            1 => NodeMessage::Raft(r.bytes("raft", MAX_MESSAGE)?),
            2 => NodeMessage::Session {
                key: read_session(&mut r)?,
                payload: r.bytes("session payload", MAX_FRAME_BYTES)?,
            },
            3 => NodeMessage::SignStart {
                session: read_session(&mut r)?,
                key: read_key(&mut r)?,
                version: KeyVersion(r.u32("version")?),
                signers: read_ids(&mut r)?,
                messages: read_messages(&mut r)?,
            },
            4 => NodeMessage::Forward {
                request_id: r.str("request id", MAX_REQUEST_ID)?,
                request: Request::read(&mut r)?,
            },
            5 => NodeMessage::Reply {
                request_id: r.str("request id", MAX_REQUEST_ID)?,
                result: read_result(&mut r)?,
            },
            6 => NodeMessage::DkgReport {
                task: r.u64("task")?,
                attempt: r.u32("attempt")?,
                result: match r.u8("report")? {
                    1 => Ok(r.bytes("public key package", 64 * 1024)?),
                    2 => Err((r.str("reason", 1024)?, read_ids(&mut r)?)),
                    tag => {
                        return Err(DecodeError::BadTag {
                            what: "report",
                            tag,
                        })
                    }
                },
            },
            7 => NodeMessage::ReshareReport {
                task: r.u64("task")?,
                attempt: r.u32("attempt")?,
                result: match r.u8("report")? {
                    1 => {
                        let digest: [u8; 32] = r
                            .bytes("confirmation digest", 32)?
                            .try_into()
                            .map_err(|_| DecodeError::Invalid("confirmation digest length"))?;
                        Ok((digest, r.bytes("public key package", 64 * 1024)?))
                    }
                    2 => Err((r.str("reason", 1024)?, read_ids(&mut r)?)),
                    tag => {
                        return Err(DecodeError::BadTag {
                            what: "report",
                            tag,
                        })
                    }
                },
            },
            tag => {
                return Err(DecodeError::BadTag {
                    what: "node message",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(m)
    }
}

fn write_session(w: &mut Writer, k: &SessionKey) {
    w.u8(match k.kind {
        SessionKind::Dkg => 1,
        SessionKind::Sign => 2,
        SessionKind::Reshare => 3,
    })
    .u64(k.task)
    .u32(k.attempt);
}

fn read_session(r: &mut Reader<'_>) -> Result<SessionKey, DecodeError> {
    let kind = match r.u8("session kind")? {
        1 => SessionKind::Dkg,
        2 => SessionKind::Sign,
        3 => SessionKind::Reshare,
        tag => {
            return Err(DecodeError::BadTag {
                what: "session kind",
                tag,
            })
        }
    };
    Ok(SessionKey {
        kind,
        task: r.u64("session task")?,
        attempt: r.u32("session attempt")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pid(n: u16) -> ParticipantId {
        ParticipantId::new(n).unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        let key = KeyId::new("k1").unwrap();
        let sk = SessionKey {
            kind: SessionKind::Sign,
            task: 7,
            attempt: 2,
        };
        let msgs = vec![
            NodeMessage::Raft(vec![1, 2]),
            NodeMessage::Session {
                key: sk,
                payload: vec![3],
            },
            NodeMessage::SignStart {
                session: sk,
                key: key.clone(),
                version: KeyVersion(1),
                signers: [pid(1), pid(2)].into(),
                messages: vec![b"a".to_vec(), vec![]],
            },
            NodeMessage::Forward {
                request_id: "r".into(),
                request: Request::CreateKey {
                    key: key.clone(),
                    scheme: Scheme::FrostP256,
                    threshold: 2,
                    participants: Some([pid(1), pid(3)].into()),
                },
            },
            NodeMessage::Forward {
                request_id: "s".into(),
                request: Request::Sign {
                    key: key.clone(),
                    messages: vec![b"m".to_vec()],
                },
            },
            NodeMessage::Reply {
                request_id: "s".into(),
                result: Ok(Response::Signed {
                    key: key.clone(),
                    version: KeyVersion(1),
                    signatures: vec![vec![9; 64]],
                }),
            },
            NodeMessage::Reply {
                request_id: "t".into(),
                result: Err(RequestError::Failed {
                    reason: "x".into(),
                    culprits: [pid(4)].into(),
                }),
            },
            NodeMessage::DkgReport {
                task: 1,
                attempt: 1,
                result: Err(("timeout".into(), [pid(2)].into())),
            },
            NodeMessage::Forward {
                request_id: "rs".into(),
                request: Request::Reshare {
                    key: key.clone(),
                    new_threshold: Some(3),
                    new_members: Some([pid(1), pid(2), pid(5)].into()),
                },
            },
            NodeMessage::Forward {
                request_id: "rf".into(),
                request: Request::Reshare {
                    key: key.clone(),
                    new_threshold: None,
                    new_members: None,
                },
            },
            NodeMessage::Reply {
                request_id: "rs".into(),
                result: Ok(Response::Reshared {
                    key: key.clone(),
                    version: KeyVersion(2),
                    public_key: vec![7; 32],
                }),
            },
            NodeMessage::Session {
                key: SessionKey {
                    kind: SessionKind::Reshare,
                    task: 3,
                    attempt: 1,
                },
                payload: vec![1],
            },
            NodeMessage::ReshareReport {
                task: 3,
                attempt: 1,
                result: Ok(([5; 32], vec![1, 2, 3])),
            },
            NodeMessage::ReshareReport {
                task: 3,
                attempt: 2,
                result: Err(("timeout".into(), [pid(4)].into())),
            },
        ];
        for m in msgs {
            let b = m.encode();
            assert_eq!(NodeMessage::decode(&b).unwrap(), m);
            let mut t = b.clone();
            t.push(0);
            assert!(NodeMessage::decode(&t).is_err());
        }
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = NodeMessage::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }
    }
}
