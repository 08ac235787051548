//! Messages between nodes, in the core's own strict encoding.

use std::collections::{BTreeMap, BTreeSet};

use crate::codec::{DecodeError, Reader, Writer};
use crate::frost::sign::{MAX_BATCH, MAX_MESSAGE_BYTES};
use crate::ids::ParticipantId;
use crate::persist::{KeyId, KeyVersion};
use crate::scheme::Scheme;
use crate::session::MAX_FRAME_BYTES;

use super::registry::{NodeRole, MAX_ADDRESS, MAX_REQUEST_ID};

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
    /// An ECDSA presigning run that refills a pool (ids from the coordinating leader).
    Presign,
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
    /// Add a node to the cluster (a Raft configuration change). Its shares come later, from a
    /// DKG or a reshare that names it.
    AddMember {
        /// The new node's id.
        id: ParticipantId,
        /// Its role (from its certificate).
        role: NodeRole,
        /// Where peers reach it (`host:port`), for the driver's transport.
        address: String,
    },
    /// Remove a node from the cluster (a Raft configuration change). Refused while a key would
    /// keep fewer holders than its threshold without it: reshare such keys first.
    RemoveMember {
        /// The node.
        id: ParticipantId,
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
    /// A membership change committed: the members after it.
    MembershipChanged {
        /// Members and roles.
        members: BTreeMap<ParticipantId, NodeRole>,
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

/// Decodes a set of participant ids: at most 1,024, no zero, strictly ascending (as
/// [`write_ids`] writes them: a set has one encoding, so unsorted or repeated ids are refused;
/// found by the `registry_command` fuzz target).
pub(crate) fn read_ids(r: &mut Reader<'_>) -> Result<BTreeSet<ParticipantId>, DecodeError> {
    let n = r.count("ids", 1024, 2)?;
    let mut out = BTreeSet::new();
    for _ in 0..n {
        let id = ParticipantId::new(r.u16("id")?).ok_or(DecodeError::Invalid("id 0"))?;
        if out.last().is_some_and(|last| *last >= id) {
            return Err(DecodeError::Invalid("ids not strictly ascending"));
        }
        out.insert(id);
    }
    Ok(out)
}

pub(crate) fn read_id(r: &mut Reader<'_>) -> Result<ParticipantId, DecodeError> {
    ParticipantId::new(r.u16("id")?).ok_or(DecodeError::Invalid("id 0"))
}

pub(crate) fn read_role(r: &mut Reader<'_>) -> Result<NodeRole, DecodeError> {
    let tag = r.u8("role")?;
    NodeRole::from_tag(tag).ok_or(DecodeError::BadTag { what: "role", tag })
}

fn write_members(w: &mut Writer, members: &BTreeMap<ParticipantId, NodeRole>) {
    w.count(members.len());
    for (id, role) in members {
        w.u16(id.get()).u8(role.tag());
    }
}

fn read_members(r: &mut Reader<'_>) -> Result<BTreeMap<ParticipantId, NodeRole>, DecodeError> {
    let n = r.count("members", 1024, 3)?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let id = read_id(r)?;
        let role = read_role(r)?;
        // Strictly ascending, as written: one encoding per member list.
        if out.last_key_value().is_some_and(|(last, _)| *last >= id) {
            return Err(DecodeError::Invalid("members not strictly ascending"));
        }
        out.insert(id, role);
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
    /// SHA-256 of the request's canonical encoding: what a request id is bound to, so a
    /// request that reuses another's id is told apart from a retry (and never gets the other
    /// request's answer).
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut w = Writer::new();
        self.write(&mut w);
        let mut h = Sha256::new();
        h.update(b"keyshard/request/v1");
        h.update(w.finish());
        h.finalize().into()
    }

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
            Request::AddMember { id, role, address } => {
                w.u8(4).u16(id.get()).u8(role.tag()).str(address);
            }
            Request::RemoveMember { id } => {
                w.u8(5).u16(id.get());
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
            4 => Request::AddMember {
                id: read_id(r)?,
                role: read_role(r)?,
                address: r.str("address", MAX_ADDRESS)?,
            },
            5 => Request::RemoveMember { id: read_id(r)? },
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
        Ok(Response::MembershipChanged { members }) => {
            w.u8(4);
            write_members(w, members);
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
        4 => Ok(Response::MembershipChanged {
            members: read_members(r)?,
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
    SignStart(SignStart),
    /// From the leader to the chosen signers of an ECDSA key: make one presignature together for
    /// the pool (its id is derived from `session`).
    PresignStart {
        /// The run id.
        session: SessionKey,
        /// Which key.
        key: KeyId,
        /// At which version.
        version: KeyVersion,
        /// Exactly `threshold` signers.
        signers: BTreeSet<ParticipantId>,
    },
    /// From a presigning signer to the leader: whether it holds the presignature of `session`.
    PresignReport {
        /// The run.
        session: SessionKey,
        /// Held and ready (or the run failed here).
        ok: bool,
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
    /// A responsiveness probe; the peer answers with `ProbeReply` at once.
    Probe {
        /// Echoed back.
        nonce: u64,
    },
    /// The answer to a `Probe`.
    ProbeReply {
        /// The probe's nonce.
        nonce: u64,
    },
    /// From any node to the leader: how responsive it finds every peer (drives leader scoring).
    HealthReport {
        /// One rating per peer, ascending by peer id, no duplicates.
        ratings: Vec<PeerRating>,
    },
}

/// The leader's order to a chosen signer to start signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignStart {
    /// The run id.
    pub session: SessionKey,
    /// Which key.
    pub key: KeyId,
    /// At which version.
    pub version: KeyVersion,
    /// Exactly who signs.
    pub signers: BTreeSet<ParticipantId>,
    /// What.
    pub messages: Vec<Vec<u8>>,
    /// ECDSA only: one pooled presignature per message (all signers hold them), or empty for
    /// the full interactive protocol.
    pub presignatures: Vec<[u8; 32]>,
}

/// How one node rates a peer's responsiveness, in a health report to the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerRating {
    /// The peer rated.
    pub peer: ParticipantId,
    /// Its score in parts per million (at most 1,000,000).
    pub score_ppm: u32,
    /// How many observations the score rests on.
    pub samples: u32,
}

/// Most ratings in one health report (one per member).
pub const MAX_RATINGS: usize = 1024;

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
            NodeMessage::SignStart(SignStart {
                session,
                key,
                version,
                signers,
                messages,
                presignatures,
            }) => {
                w.u8(3);
                write_run(&mut w, session, key, *version, signers);
                w.count(messages.len());
                for m in messages {
                    w.bytes(m);
                }
                w.count(presignatures.len());
                for p in presignatures {
                    w.bytes(p);
                }
            }
            NodeMessage::PresignStart {
                session,
                key,
                version,
                signers,
            } => {
                w.u8(11);
                write_run(&mut w, session, key, *version, signers);
            }
            NodeMessage::PresignReport { session, ok } => {
                w.u8(12);
                write_session(&mut w, session);
                w.u8(u8::from(*ok));
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
            NodeMessage::Probe { nonce } => {
                w.u8(8).u64(*nonce);
            }
            NodeMessage::ProbeReply { nonce } => {
                w.u8(9).u64(*nonce);
            }
            NodeMessage::HealthReport { ratings } => {
                w.u8(10).count(ratings.len());
                for r in ratings {
                    w.u16(r.peer.get()).u32(r.score_ppm).u32(r.samples);
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
            3 => {
                let (session, key, version, signers) = read_run(&mut r)?;
                let messages = read_messages(&mut r)?;
                let n = r.count("presignatures", MAX_BATCH, 32)?;
                if n != 0 && n != messages.len() {
                    return Err(DecodeError::Invalid(
                        "presignatures: none, or one per message",
                    ));
                }
                let mut presignatures: Vec<[u8; 32]> = Vec::with_capacity(n);
                for _ in 0..n {
                    let id: [u8; 32] = r
                        .bytes("presignature id", 32)?
                        .try_into()
                        .map_err(|_| DecodeError::Invalid("presignature id length"))?;
                    if presignatures.contains(&id) {
                        return Err(DecodeError::Invalid("presignature named twice"));
                    }
                    presignatures.push(id);
                }
                NodeMessage::SignStart(SignStart {
                    session,
                    key,
                    version,
                    signers,
                    messages,
                    presignatures,
                })
            }
            11 => {
                let (session, key, version, signers) = read_run(&mut r)?;
                NodeMessage::PresignStart {
                    session,
                    key,
                    version,
                    signers,
                }
            }
            12 => NodeMessage::PresignReport {
                session: read_session(&mut r)?,
                ok: match r.u8("presign report")? {
                    0 => false,
                    1 => true,
                    tag => {
                        return Err(DecodeError::BadTag {
                            what: "presign report",
                            tag,
                        })
                    }
                },
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
            8 => NodeMessage::Probe {
                nonce: r.u64("nonce")?,
            },
            9 => NodeMessage::ProbeReply {
                nonce: r.u64("nonce")?,
            },
            10 => {
                let n = r.count("ratings", MAX_RATINGS, 10)?;
                let mut ratings: Vec<PeerRating> = Vec::with_capacity(n);
                for _ in 0..n {
                    let peer = read_id(&mut r)?;
                    let score_ppm = r.u32("score")?;
                    if score_ppm > 1_000_000 {
                        return Err(DecodeError::Invalid("score above 1,000,000 ppm"));
                    }
                    if ratings.last().is_some_and(|l| l.peer >= peer) {
                        return Err(DecodeError::Invalid("ratings not ascending by peer"));
                    }
                    ratings.push(PeerRating {
                        peer,
                        score_ppm,
                        samples: r.u32("samples")?,
                    });
                }
                NodeMessage::HealthReport { ratings }
            }
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

/// The head of a run the leader starts at chosen signers (signing, presigning).
fn write_run(
    w: &mut Writer,
    session: &SessionKey,
    key: &KeyId,
    version: KeyVersion,
    signers: &BTreeSet<ParticipantId>,
) {
    write_session(w, session);
    w.str(key.as_str()).u32(version.0);
    write_ids(w, signers);
}

type RunHead = (SessionKey, KeyId, KeyVersion, BTreeSet<ParticipantId>);

fn read_run(r: &mut Reader<'_>) -> Result<RunHead, DecodeError> {
    Ok((
        read_session(r)?,
        read_key(r)?,
        KeyVersion(r.u32("version")?),
        read_ids(r)?,
    ))
}

fn write_session(w: &mut Writer, k: &SessionKey) {
    w.u8(match k.kind {
        SessionKind::Dkg => 1,
        SessionKind::Sign => 2,
        SessionKind::Reshare => 3,
        SessionKind::Presign => 4,
    })
    .u64(k.task)
    .u32(k.attempt);
}

fn read_session(r: &mut Reader<'_>) -> Result<SessionKey, DecodeError> {
    let kind = match r.u8("session kind")? {
        1 => SessionKind::Dkg,
        2 => SessionKind::Sign,
        3 => SessionKind::Reshare,
        4 => SessionKind::Presign,
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
    fn sign_start_names_one_distinct_presignature_per_message_or_none() {
        let start = |presignatures: Vec<[u8; 32]>| {
            NodeMessage::SignStart(SignStart {
                session: SessionKey {
                    kind: SessionKind::Sign,
                    task: 1,
                    attempt: 1,
                },
                key: KeyId::new("k").unwrap(),
                version: KeyVersion(1),
                signers: [pid(1), pid(2)].into(),
                messages: vec![b"a".to_vec(), b"b".to_vec()],
                presignatures,
            })
            .encode()
        };
        assert!(NodeMessage::decode(&start(vec![])).is_ok());
        assert!(NodeMessage::decode(&start(vec![[1; 32], [2; 32]])).is_ok());
        assert_eq!(
            NodeMessage::decode(&start(vec![[1; 32]])),
            Err(DecodeError::Invalid(
                "presignatures: none, or one per message"
            ))
        );
        assert_eq!(
            NodeMessage::decode(&start(vec![[1; 32], [1; 32]])),
            Err(DecodeError::Invalid("presignature named twice"))
        );
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
            NodeMessage::SignStart(SignStart {
                session: sk,
                key: key.clone(),
                version: KeyVersion(1),
                signers: [pid(1), pid(2)].into(),
                messages: vec![b"a".to_vec(), vec![]],
                presignatures: vec![],
            }),
            NodeMessage::SignStart(SignStart {
                session: sk,
                key: key.clone(),
                version: KeyVersion(2),
                signers: [pid(1), pid(3)].into(),
                messages: vec![b"a".to_vec(), b"b".to_vec()],
                presignatures: vec![[1; 32], [2; 32]],
            }),
            NodeMessage::PresignStart {
                session: SessionKey {
                    kind: SessionKind::Presign,
                    task: 9,
                    attempt: 1,
                },
                key: key.clone(),
                version: KeyVersion(1),
                signers: [pid(2), pid(3)].into(),
            },
            NodeMessage::PresignReport {
                session: SessionKey {
                    kind: SessionKind::Presign,
                    task: 9,
                    attempt: 1,
                },
                ok: true,
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
            NodeMessage::Forward {
                request_id: "add".into(),
                request: Request::AddMember {
                    id: pid(6),
                    role: NodeRole::Mesh,
                    address: "127.0.0.1:7006".into(),
                },
            },
            NodeMessage::Forward {
                request_id: "rm".into(),
                request: Request::RemoveMember { id: pid(2) },
            },
            NodeMessage::Reply {
                request_id: "add".into(),
                result: Ok(Response::MembershipChanged {
                    members: [(pid(1), NodeRole::Tee), (pid(6), NodeRole::Mesh)].into(),
                }),
            },
            NodeMessage::Probe { nonce: 9 },
            NodeMessage::ProbeReply { nonce: 9 },
            NodeMessage::HealthReport {
                ratings: vec![
                    PeerRating {
                        peer: pid(1),
                        score_ppm: 1_000_000,
                        samples: 3,
                    },
                    PeerRating {
                        peer: pid(4),
                        score_ppm: 12,
                        samples: 0,
                    },
                ],
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

    #[test]
    fn health_reports_must_be_ascending_and_in_range() {
        let rating = |peer: u16, score_ppm: u32| PeerRating {
            peer: pid(peer),
            score_ppm,
            samples: 1,
        };
        for bad in [
            vec![rating(2, 5), rating(1, 5)],
            vec![rating(2, 5), rating(2, 5)],
            vec![rating(1, 1_000_001)],
        ] {
            let b = NodeMessage::HealthReport { ratings: bad }.encode();
            assert!(NodeMessage::decode(&b).is_err());
        }
    }

    #[test]
    fn id_sets_and_member_lists_have_one_encoding() {
        let mut w = Writer::new();
        w.u8(2).u64(1).u32(1).count(3).u16(33).u16(2).u16(3);
        let unsorted = w.finish();
        let mut w = Writer::new();
        w.u8(2).u64(1).u32(1).count(2).u16(2).u16(2);
        let repeated = w.finish();
        for bytes in [unsorted, repeated] {
            assert!(matches!(
                super::super::registry::Replicated::decode(&bytes),
                Err(DecodeError::Invalid(_))
            ));
        }
        let mut w = Writer::new();
        w.u8(5).str("r").u8(4).count(2).u16(4).u8(1).u16(1).u8(1);
        assert!(matches!(
            NodeMessage::decode(&w.finish()),
            Err(DecodeError::Invalid(_))
        ));
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
