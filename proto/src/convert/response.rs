//! Core answers to proto responses and gRPC statuses.

use std::collections::BTreeSet;

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::{KeyRecord, NodeRole, TaskKind, TaskRecord, TaskState};
use keyshard_core::node::scoring::Score;
use keyshard_core::node::sessions::group_public_key;
use keyshard_core::node::{RequestError, Response};
use keyshard_core::persist::KeyId;
use tonic::{Code, Status};

use crate::client as pb;

/// The gRPC status for a core request error. The mapping is stable; clients act on codes:
///
/// | core | gRPC |
/// |---|---|
/// | `BadRequest` | `INVALID_ARGUMENT` |
/// | `NoSuchKey` | `NOT_FOUND` |
/// | `KeyExists` | `ALREADY_EXISTS` |
/// | `NotEnoughParticipants` | `UNAVAILABLE` |
/// | `Failed` | `ABORTED` (the message names the blamed nodes) |
/// | `TimedOut` | `DEADLINE_EXCEEDED` |
pub fn status(err: &RequestError) -> Status {
    match err {
        RequestError::BadRequest(why) => Status::invalid_argument(why.clone()),
        RequestError::NoSuchKey(k) => Status::not_found(format!("no key {k}")),
        RequestError::KeyExists(k) => Status::already_exists(format!("key {k} already exists")),
        RequestError::NotEnoughParticipants { needed, available } => Status::unavailable(format!(
            "not enough healthy participants: {needed} needed, {available} available"
        )),
        RequestError::Failed { reason, culprits } => {
            Status::aborted(format!("{reason}; blamed: {}", ids_text(culprits)))
        }
        RequestError::TimedOut => Status::deadline_exceeded(
            "no answer in time (the leader may have changed); retry with the same request_id",
        ),
    }
}

fn ids_text(ids: &BTreeSet<ParticipantId>) -> String {
    if ids.is_empty() {
        return "none".to_string();
    }
    let ids: Vec<String> = ids.iter().map(|p| format!("node {p}")).collect();
    ids.join(", ")
}

fn ids(set: &BTreeSet<ParticipantId>) -> Vec<u32> {
    set.iter().map(|p| u32::from(p.get())).collect()
}

fn mismatch(rpc: &str, got: &Response) -> Status {
    let what = match got {
        Response::KeyCreated { .. } => "KeyCreated",
        Response::Signed { .. } => "Signed",
        Response::Reshared { .. } => "Reshared",
        Response::MembershipChanged { .. } => "MembershipChanged",
    };
    Status::new(
        Code::Internal,
        format!("{rpc} was answered with a {what} response"),
    )
}

/// The `CreateKey` answer for a core result.
pub fn create_key_result(
    result: Result<Response, RequestError>,
) -> Result<pb::CreateKeyResponse, Status> {
    match result.map_err(|e| status(&e))? {
        Response::KeyCreated {
            key,
            scheme,
            version,
            public_key,
        } => Ok(pb::CreateKeyResponse {
            key_id: key.as_str().to_string(),
            scheme: scheme.name().to_string(),
            version: version.0,
            public_key,
        }),
        other => Err(mismatch("CreateKey", &other)),
    }
}

/// The `Sign` answer for a core result.
pub fn sign_result(result: Result<Response, RequestError>) -> Result<pb::SignResponse, Status> {
    match result.map_err(|e| status(&e))? {
        Response::Signed {
            key,
            version,
            signatures,
        } => Ok(pb::SignResponse {
            key_id: key.as_str().to_string(),
            version: version.0,
            signatures,
        }),
        other => Err(mismatch("Sign", &other)),
    }
}

/// The `Reshare` answer for a core result.
pub fn reshare_result(
    result: Result<Response, RequestError>,
) -> Result<pb::ReshareResponse, Status> {
    match result.map_err(|e| status(&e))? {
        Response::Reshared {
            key,
            version,
            public_key,
        } => Ok(pb::ReshareResponse {
            key_id: key.as_str().to_string(),
            version: version.0,
            public_key,
        }),
        other => Err(mismatch("Reshare", &other)),
    }
}

/// A registry key as `KeyInfo` (the public key extracted from its public key package).
/// `INTERNAL` if the stored package does not decode (a corrupt registry, never client input).
pub fn key_info(key: &KeyId, record: &KeyRecord) -> Result<pb::KeyInfo, Status> {
    let public_key =
        group_public_key(record.scheme, &record.public_key_package).ok_or_else(|| {
            Status::internal(format!(
                "key {key}: the stored public key package does not decode"
            ))
        })?;
    Ok(pb::KeyInfo {
        key_id: key.as_str().to_string(),
        scheme: record.scheme.name().to_string(),
        version: record.version.0,
        public_key,
        threshold: u32::from(record.threshold),
        participants: ids(&record.participants),
    })
}

/// A registry task as `TaskInfo`.
pub fn task_info(task: &TaskRecord) -> pb::TaskInfo {
    use pb::task_info::{Kind, State};
    let kind = match task.kind {
        TaskKind::Dkg => Kind::CreateKey,
        TaskKind::Reshare { .. } => Kind::Reshare,
    };
    let mut info = pb::TaskInfo {
        request_id: task.request_id.clone(),
        key_id: task.spec.key.as_str().to_string(),
        kind: kind as i32,
        attempt: task.attempt,
        ..Default::default()
    };
    info.state = match &task.state {
        TaskState::Queued => State::Queued,
        TaskState::Running { participants } => {
            info.participants = ids(participants);
            State::Running
        }
        TaskState::Completed => State::Completed,
        TaskState::Failed { reason, culprits } => {
            info.failure_reason = reason.clone();
            info.culprits = ids(culprits);
            State::Failed
        }
    } as i32;
    info
}

/// A node role as the proto enum value.
pub fn node_role(role: NodeRole) -> pb::NodeRole {
    match role {
        NodeRole::Tee => pb::NodeRole::Tee,
        NodeRole::Mesh => pb::NodeRole::Mesh,
    }
}

/// A cluster member for `ClusterStatus`.
pub fn member(
    id: ParticipantId,
    role: NodeRole,
    address: Option<&str>,
    score: Score,
) -> pb::Member {
    pb::Member {
        id: u32::from(id.get()),
        role: node_role(role) as i32,
        address: address.unwrap_or_default().to_string(),
        score_ppm: score.ppm(),
    }
}
