//! Proto requests to core values, validated.

use std::collections::BTreeSet;

use keyshard_core::frost::sign::{MAX_BATCH, MAX_MESSAGE_BYTES};
use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::{NodeRole, MAX_REQUEST_ID};
use keyshard_core::node::Request;
use keyshard_core::persist::KeyId;
use keyshard_core::scheme::Scheme;

use super::FieldError;
use crate::client as pb;

/// Most ids in one set: the core's wire codec refuses larger sets.
pub const MAX_IDS: usize = 1024;
/// Longest member address (`host:port`).
pub const MAX_ADDRESS: usize = 255;
/// The smallest threshold the core accepts.
const MIN_THRESHOLD: u32 = 2;

/// A validated request that goes to the core as `Input::Client`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// The client's idempotency key (1 to 128 bytes).
    pub request_id: String,
    /// What to do.
    pub request: Request,
}

/// A validated `AddMember` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMember {
    /// The new node's id.
    pub id: ParticipantId,
    /// Its role.
    pub role: NodeRole,
    /// Where peers dial it (`host:port`).
    pub address: String,
}

/// Validates a key id field.
pub fn key_id(field: &str, s: &str) -> Result<KeyId, FieldError> {
    KeyId::new(s).map_err(|e| FieldError::new(field, e.to_string()))
}

/// Validates a request id field: 1 to 128 bytes.
pub fn request_id(field: &str, s: String) -> Result<String, FieldError> {
    if s.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if s.len() > MAX_REQUEST_ID {
        return Err(FieldError::new(
            field,
            format!("is {} bytes, at most {MAX_REQUEST_ID} allowed", s.len()),
        ));
    }
    Ok(s)
}

/// Validates one node id: 1 to 65535.
pub fn participant_id(field: &str, n: u32) -> Result<ParticipantId, FieldError> {
    u16::try_from(n)
        .ok()
        .and_then(ParticipantId::new)
        .ok_or_else(|| FieldError::new(field, format!("node id {n} is not in 1..=65535")))
}

/// Validates a set of node ids: each 1 to 65535, no duplicates, at most [`MAX_IDS`].
pub fn participant_set(field: &str, ids: &[u32]) -> Result<BTreeSet<ParticipantId>, FieldError> {
    if ids.len() > MAX_IDS {
        return Err(FieldError::new(
            field,
            format!("{} ids, at most {MAX_IDS} allowed", ids.len()),
        ));
    }
    let mut out = BTreeSet::new();
    for (i, &n) in ids.iter().enumerate() {
        let id = participant_id(&format!("{field}[{i}]"), n)?;
        if !out.insert(id) {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                format!("node id {n} appears twice"),
            ));
        }
    }
    Ok(out)
}

fn threshold(field: &str, t: u32) -> Result<u16, FieldError> {
    if t < MIN_THRESHOLD {
        return Err(FieldError::new(
            field,
            format!("{t} is below the minimum of {MIN_THRESHOLD}"),
        ));
    }
    u16::try_from(t).map_err(|_| FieldError::new(field, format!("{t} is above 65535")))
}

fn scheme(field: &str, s: &str) -> Result<Scheme, FieldError> {
    s.parse::<Scheme>()
        .map_err(|e| FieldError::new(field, e.to_string()))
}

/// `CreateKey`: key id, scheme, threshold (2 to the number of participants named), participants
/// (empty: every member), request id.
pub fn create_key(msg: pb::CreateKeyRequest) -> Result<ClientRequest, FieldError> {
    let key = key_id("key_id", &msg.key_id)?;
    let scheme = scheme("scheme", &msg.scheme)?;
    let threshold = threshold("threshold", msg.threshold)?;
    let participants = if msg.participants.is_empty() {
        None
    } else {
        let set = participant_set("participants", &msg.participants)?;
        if usize::from(threshold) > set.len() {
            return Err(FieldError::new(
                "threshold",
                format!("{threshold} exceeds the {} participants named", set.len()),
            ));
        }
        Some(set)
    };
    Ok(ClientRequest {
        request_id: request_id("request_id", msg.request_id)?,
        request: Request::CreateKey {
            key,
            scheme,
            threshold,
            participants,
        },
    })
}

/// `Sign`: key id, 1 to [`MAX_BATCH`] messages of at most [`MAX_MESSAGE_BYTES`] each, request id.
pub fn sign(msg: pb::SignRequest) -> Result<ClientRequest, FieldError> {
    let key = key_id("key_id", &msg.key_id)?;
    if msg.messages.is_empty() {
        return Err(FieldError::new(
            "messages",
            "at least one message is needed",
        ));
    }
    if msg.messages.len() > MAX_BATCH {
        return Err(FieldError::new(
            "messages",
            format!(
                "{} messages, at most {MAX_BATCH} per request",
                msg.messages.len()
            ),
        ));
    }
    if let Some((i, m)) = msg
        .messages
        .iter()
        .enumerate()
        .find(|(_, m)| m.len() > MAX_MESSAGE_BYTES)
    {
        return Err(FieldError::new(
            format!("messages[{i}]"),
            format!("{} bytes, at most {MAX_MESSAGE_BYTES} allowed", m.len()),
        ));
    }
    Ok(ClientRequest {
        request_id: request_id("request_id", msg.request_id)?,
        request: Request::Sign {
            key,
            messages: msg.messages,
        },
    })
}

/// `Reshare`: key id, optional new threshold (at least 2, at most the new members named), new
/// members (empty: keep), request id.
pub fn reshare(msg: pb::ReshareRequest) -> Result<ClientRequest, FieldError> {
    let key = key_id("key_id", &msg.key_id)?;
    let new_threshold = msg
        .new_threshold
        .map(|t| threshold("new_threshold", t))
        .transpose()?;
    let new_members = if msg.new_members.is_empty() {
        None
    } else {
        let set = participant_set("new_members", &msg.new_members)?;
        let needed = new_threshold.unwrap_or(MIN_THRESHOLD as u16);
        if set.len() < usize::from(needed) {
            return Err(FieldError::new(
                "new_members",
                format!("{} members cannot meet threshold {needed}", set.len()),
            ));
        }
        Some(set)
    };
    Ok(ClientRequest {
        request_id: request_id("request_id", msg.request_id)?,
        request: Request::Reshare {
            key,
            new_threshold,
            new_members,
        },
    })
}

/// `GetPublicKey`: the key id.
pub fn get_public_key(msg: pb::GetPublicKeyRequest) -> Result<KeyId, FieldError> {
    key_id("key_id", &msg.key_id)
}

/// `GetTask`: the request id.
pub fn get_task(msg: pb::GetTaskRequest) -> Result<String, FieldError> {
    request_id("request_id", msg.request_id)
}

/// Validates a node role enum value (unspecified and unknown values are refused).
pub fn role(field: &str, value: i32) -> Result<NodeRole, FieldError> {
    match pb::NodeRole::try_from(value) {
        Ok(pb::NodeRole::Tee) => Ok(NodeRole::Tee),
        Ok(pb::NodeRole::Mesh) => Ok(NodeRole::Mesh),
        _ => Err(FieldError::new(
            field,
            format!("{value} is not NODE_ROLE_TEE (1) or NODE_ROLE_MESH (2)"),
        )),
    }
}

/// Validates a `host:port` address: a non-empty host without whitespace, `/` or `@` (IPv6 in
/// brackets), and a port from 1 to 65535.
pub fn address(field: &str, s: String) -> Result<String, FieldError> {
    let bad = |why: &str| FieldError::new(field, format!("{:?} {why}", excerpt(&s)));
    if s.len() > MAX_ADDRESS {
        return Err(bad(&format!("is longer than {MAX_ADDRESS} bytes")));
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("is not host:port"))?;
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if !host_ok {
        return Err(bad("has no valid host"));
    }
    let port_ok = !port.starts_with('0') && port.parse::<u16>().is_ok_and(|p| p != 0);
    if !port_ok {
        return Err(bad("has no valid port (1 to 65535)"));
    }
    Ok(s)
}

fn excerpt(s: &str) -> String {
    s.chars().take(80).collect()
}

/// `AddMember`: id, role, address.
pub fn add_member(msg: pb::AddMemberRequest) -> Result<NewMember, FieldError> {
    Ok(NewMember {
        id: participant_id("id", msg.id)?,
        role: role("role", msg.role)?,
        address: address("address", msg.address)?,
    })
}

/// `RemoveMember`: the id.
pub fn remove_member(msg: pb::RemoveMemberRequest) -> Result<ParticipantId, FieldError> {
    participant_id("id", msg.id)
}
