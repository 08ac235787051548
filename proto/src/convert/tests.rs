//! Every rejection names its field; valid requests become exactly the core values.

use std::collections::BTreeSet;

use keyshard_core::frost::sign::{MAX_BATCH, MAX_MESSAGE_BYTES};
use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::{
    DkgSpec, KeyRecord, NodeRole, TaskKind, TaskRecord, TaskState,
};
use keyshard_core::node::scoring::Score;
use keyshard_core::node::{Request, RequestError, Response};
use keyshard_core::persist::{KeyId, KeyVersion};
use keyshard_core::rng::Seed;
use keyshard_core::scheme::Scheme;
use tonic::Code;

use super::*;
use crate::client as pb;

fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap()
}

fn ids(ns: &[u16]) -> BTreeSet<ParticipantId> {
    ns.iter().map(|&n| pid(n)).collect()
}

fn key(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

fn create(threshold: u32, participants: Vec<u32>) -> pb::CreateKeyRequest {
    pb::CreateKeyRequest {
        key_id: "wallet-1".into(),
        scheme: "frost-ed25519".into(),
        threshold,
        participants,
        request_id: "req-1".into(),
    }
}

fn sign_req(messages: Vec<Vec<u8>>) -> pb::SignRequest {
    pb::SignRequest {
        key_id: "wallet-1".into(),
        messages,
        request_id: "req-2".into(),
    }
}

fn reshare_req(new_threshold: Option<u32>, new_members: Vec<u32>) -> pb::ReshareRequest {
    pb::ReshareRequest {
        key_id: "wallet-1".into(),
        new_threshold,
        new_members,
        request_id: "req-3".into(),
    }
}

/// Asserts a rejection names `field` and its message contains `why`.
#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, FieldError>, field: &str, why: &str) {
    let e = r.unwrap_err();
    assert_eq!(e.field, field, "{e}");
    assert!(e.reason.contains(why), "{e}");
    let status = tonic::Status::from(e.clone());
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with(&format!("{field}: ")),
        "{status:?}"
    );
}

#[test]
fn valid_requests_become_core_requests() {
    assert_eq!(
        create_key(create(2, vec![3, 1, 2])).unwrap(),
        ClientRequest {
            request_id: "req-1".into(),
            request: Request::CreateKey {
                key: key("wallet-1"),
                scheme: Scheme::FrostEd25519,
                threshold: 2,
                participants: Some(ids(&[1, 2, 3])),
            },
        }
    );
    for s in Scheme::ALL {
        let mut m = create(3, vec![]);
        m.scheme = s.name().into();
        let r = create_key(m).unwrap().request;
        assert!(matches!(r, Request::CreateKey { scheme, participants: None, .. } if scheme == s));
    }
    let batch = vec![vec![], vec![7; MAX_MESSAGE_BYTES]];
    assert_eq!(
        sign(sign_req(batch.clone())).unwrap().request,
        Request::Sign {
            key: key("wallet-1"),
            messages: batch
        }
    );
    assert_eq!(
        reshare(reshare_req(None, vec![])).unwrap().request,
        Request::Reshare {
            key: key("wallet-1"),
            new_threshold: None,
            new_members: None
        }
    );
    assert_eq!(
        reshare(reshare_req(Some(3), vec![4, 5, 6, 7]))
            .unwrap()
            .request,
        Request::Reshare {
            key: key("wallet-1"),
            new_threshold: Some(3),
            new_members: Some(ids(&[4, 5, 6, 7]))
        }
    );
    let mut long = create(2, vec![]);
    long.request_id = "r".repeat(128);
    assert!(create_key(long).is_ok());
    assert_eq!(
        get_public_key(pb::GetPublicKeyRequest {
            key_id: "A.b_c-9".into()
        })
        .unwrap(),
        key("A.b_c-9")
    );
    assert_eq!(
        get_task(pb::GetTaskRequest {
            request_id: "t".into()
        })
        .unwrap(),
        "t"
    );
    assert_eq!(
        add_member(pb::AddMemberRequest {
            id: 9,
            role: pb::NodeRole::Mesh as i32,
            address: "node-9.example:7400".into()
        })
        .unwrap(),
        NewMember {
            id: pid(9),
            role: NodeRole::Mesh,
            address: "node-9.example:7400".into()
        }
    );
    for a in ["127.0.0.1:1", "[::1]:65535", "localhost:7400"] {
        assert!(request::address("address", a.into()).is_ok(), "{a}");
    }
    assert_eq!(
        remove_member(pb::RemoveMemberRequest { id: 65535 }).unwrap(),
        pid(65535)
    );
}

#[test]
fn create_key_rejections_name_the_field() {
    let mut m = create(2, vec![]);
    m.scheme = "frost-ed448".into();
    refused(create_key(m), "scheme", "unknown scheme \"frost-ed448\"");
    let mut m = create(2, vec![]);
    m.scheme = String::new();
    refused(create_key(m), "scheme", "frost-ed25519");

    refused(
        create_key(create(0, vec![])),
        "threshold",
        "0 is below the minimum of 2",
    );
    refused(create_key(create(1, vec![1, 2])), "threshold", "1 is below");
    refused(
        create_key(create(70_000, vec![])),
        "threshold",
        "70000 is above 65535",
    );
    refused(
        create_key(create(4, vec![1, 2, 3])),
        "threshold",
        "4 exceeds the 3 participants named",
    );

    refused(
        create_key(create(2, vec![1, 0, 2])),
        "participants[1]",
        "node id 0",
    );
    refused(
        create_key(create(2, vec![1, 65_536])),
        "participants[1]",
        "65536",
    );
    refused(
        create_key(create(2, vec![1, 2, 1])),
        "participants[2]",
        "node id 1 appears twice",
    );
    let many: Vec<u32> = (1..=1025).collect();
    refused(
        create_key(create(2, many)),
        "participants",
        "1025 ids, at most 1024",
    );

    for bad in ["", "has space", "slash/", &"k".repeat(65), "ünï"] {
        let mut m = create(2, vec![]);
        m.key_id = bad.to_string();
        refused(create_key(m), "key_id", "invalid key id");
    }

    let mut m = create(2, vec![]);
    m.request_id = String::new();
    refused(create_key(m), "request_id", "must not be empty");
    let mut m = create(2, vec![]);
    m.request_id = "r".repeat(129);
    refused(create_key(m), "request_id", "129 bytes, at most 128");
}

#[test]
fn sign_rejections_name_the_field() {
    refused(sign(sign_req(vec![])), "messages", "at least one message");
    refused(
        sign(sign_req(vec![vec![1]; MAX_BATCH + 1])),
        "messages",
        "1025 messages, at most 1024",
    );
    refused(
        sign(sign_req(vec![vec![1], vec![0; MAX_MESSAGE_BYTES + 1]])),
        "messages[1]",
        "65537 bytes, at most 65536",
    );
    let mut m = sign_req(vec![vec![1]]);
    m.key_id = "no key".into();
    refused(sign(m), "key_id", "invalid key id");
    let mut m = sign_req(vec![vec![1]]);
    m.request_id = String::new();
    refused(sign(m), "request_id", "must not be empty");
}

#[test]
fn reshare_rejections_name_the_field() {
    refused(
        reshare(reshare_req(Some(0), vec![])),
        "new_threshold",
        "0 is below",
    );
    refused(
        reshare(reshare_req(Some(1), vec![])),
        "new_threshold",
        "1 is below",
    );
    refused(
        reshare(reshare_req(Some(4), vec![1, 2, 3])),
        "new_members",
        "3 members cannot meet threshold 4",
    );
    refused(
        reshare(reshare_req(None, vec![5])),
        "new_members",
        "1 members cannot meet threshold 2",
    );
    refused(
        reshare(reshare_req(None, vec![5, 0])),
        "new_members[1]",
        "node id 0",
    );
    refused(
        reshare(reshare_req(None, vec![5, 6, 5])),
        "new_members[2]",
        "appears twice",
    );
    let mut m = reshare_req(None, vec![]);
    m.request_id = "x".repeat(200);
    refused(reshare(m), "request_id", "200 bytes");
}

#[test]
fn other_rejections_name_the_field() {
    refused(
        get_public_key(pb::GetPublicKeyRequest { key_id: "".into() }),
        "key_id",
        "invalid key id",
    );
    refused(
        get_task(pb::GetTaskRequest {
            request_id: String::new(),
        }),
        "request_id",
        "must not be empty",
    );
    let member = |id, role, address: &str| pb::AddMemberRequest {
        id,
        role,
        address: address.into(),
    };
    refused(add_member(member(0, 1, "h:1")), "id", "node id 0");
    refused(
        add_member(member(2, 0, "h:1")),
        "role",
        "0 is not NODE_ROLE_TEE",
    );
    refused(add_member(member(2, 7, "h:1")), "role", "7 is not");
    for bad in [
        "",
        "host",
        ":80",
        "host:",
        "host:0",
        "host:65536",
        "host:08",
        "ho st:80",
        "a@b:80",
        "[::1:80",
        "[zz]:80",
    ] {
        refused(add_member(member(2, 1, bad)), "address", "");
    }
    refused(
        add_member(member(2, 1, &format!("{}:1", "h".repeat(300)))),
        "address",
        "longer than 255",
    );
    refused(
        remove_member(pb::RemoveMemberRequest { id: 70_000 }),
        "id",
        "70000 is not in 1..=65535",
    );
}

#[test]
fn core_errors_map_to_stable_codes() {
    let cases = [
        (
            RequestError::BadRequest("threshold 1 is below 2".into()),
            Code::InvalidArgument,
            "threshold 1",
        ),
        (
            RequestError::NoSuchKey(key("k")),
            Code::NotFound,
            "no key k",
        ),
        (
            RequestError::KeyExists(key("k")),
            Code::AlreadyExists,
            "key k already exists",
        ),
        (
            RequestError::NotEnoughParticipants {
                needed: 3,
                available: 2,
            },
            Code::Unavailable,
            "3 needed, 2 available",
        ),
        (
            RequestError::Failed {
                reason: "bad share".into(),
                culprits: ids(&[2, 5]),
            },
            Code::Aborted,
            "bad share; blamed: node 2, node 5",
        ),
        (
            RequestError::Failed {
                reason: "gave up".into(),
                culprits: BTreeSet::new(),
            },
            Code::Aborted,
            "blamed: none",
        ),
        (
            RequestError::TimedOut,
            Code::DeadlineExceeded,
            "no answer in time",
        ),
    ];
    for (err, code, text) in cases {
        let s = status(&err);
        assert_eq!(s.code(), code, "{err:?}");
        assert!(s.message().contains(text), "{s:?}");
        // The typed results map errors the same way.
        assert_eq!(sign_result(Err(err.clone())).unwrap_err().code(), code);
        assert_eq!(
            create_key_result(Err(err.clone())).unwrap_err().code(),
            code
        );
        assert_eq!(reshare_result(Err(err)).unwrap_err().code(), code);
    }
}

#[test]
fn core_responses_become_proto_responses() {
    let created = Response::KeyCreated {
        key: key("k"),
        scheme: Scheme::FrostP256,
        version: KeyVersion(1),
        public_key: vec![2; 33],
    };
    assert_eq!(
        create_key_result(Ok(created.clone())).unwrap(),
        pb::CreateKeyResponse {
            key_id: "k".into(),
            scheme: "frost-p256".into(),
            version: 1,
            public_key: vec![2; 33]
        }
    );
    let signed = Response::Signed {
        key: key("k"),
        version: KeyVersion(4),
        signatures: vec![vec![1; 64], vec![2; 64]],
    };
    assert_eq!(
        sign_result(Ok(signed.clone())).unwrap(),
        pb::SignResponse {
            key_id: "k".into(),
            version: 4,
            signatures: vec![vec![1; 64], vec![2; 64]]
        }
    );
    let reshared = Response::Reshared {
        key: key("k"),
        version: KeyVersion(2),
        public_key: vec![3; 32],
    };
    assert_eq!(
        reshare_result(Ok(reshared)).unwrap(),
        pb::ReshareResponse {
            key_id: "k".into(),
            version: 2,
            public_key: vec![3; 32]
        }
    );
    // A response of the wrong kind is an internal error, never a wrong answer.
    let e = sign_result(Ok(created)).unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    assert!(e.message().contains("Sign was answered with a KeyCreated"));
    assert_eq!(
        create_key_result(Ok(signed)).unwrap_err().code(),
        Code::Internal
    );
}

#[test]
fn registry_records_become_key_and_task_info() {
    let mut rng = Seed::from_u64(7).rng();
    let (_, pkp) = frost_ed25519::keys::generate_with_dealer(
        3,
        2,
        frost_ed25519::keys::IdentifierList::Default,
        &mut rng,
    )
    .unwrap();
    let mut record = KeyRecord {
        scheme: Scheme::FrostEd25519,
        threshold: 2,
        participants: ids(&[1, 2, 3]),
        public_key_package: pkp.serialize().unwrap(),
        version: KeyVersion(3),
        rotation_interval_ms: 0,
        last_rotated_ms: 0,
    };
    let info = key_info(&key("k"), &record).unwrap();
    assert_eq!(info.public_key, pkp.verifying_key().serialize().unwrap());
    assert_eq!(
        (
            info.key_id.as_str(),
            info.scheme.as_str(),
            info.version,
            info.threshold
        ),
        ("k", "frost-ed25519", 3, 2)
    );
    assert_eq!(info.participants, vec![1, 2, 3]);
    record.public_key_package.truncate(10);
    assert_eq!(
        key_info(&key("k"), &record).unwrap_err().code(),
        Code::Internal
    );

    let mut task = TaskRecord {
        request_id: "r".into(),
        origin: pid(1),
        spec: DkgSpec {
            key: key("k"),
            scheme: Scheme::FrostEd25519,
            threshold: 2,
            participants: ids(&[1, 2, 3]),
        },
        kind: TaskKind::Reshare {
            from_version: KeyVersion(1),
        },
        attempt: 2,
        excluded: ids(&[4]),
        state: TaskState::Running {
            participants: ids(&[1, 3]),
        },
    };
    let info = task_info(&task);
    assert_eq!(info.kind, pb::task_info::Kind::Reshare as i32);
    assert_eq!(info.state, pb::task_info::State::Running as i32);
    assert_eq!((info.attempt, info.participants.clone()), (2, vec![1, 3]));
    task.kind = TaskKind::Dkg;
    task.state = TaskState::Failed {
        reason: "timeout".into(),
        culprits: ids(&[2]),
    };
    let info = task_info(&task);
    assert_eq!(info.kind, pb::task_info::Kind::CreateKey as i32);
    assert_eq!(info.state, pb::task_info::State::Failed as i32);
    assert_eq!(
        (info.failure_reason.as_str(), info.culprits.clone()),
        ("timeout", vec![2])
    );

    let m = member(pid(4), NodeRole::Tee, Some("h:1"), Score::from_ppm(250_000));
    assert_eq!(
        m,
        pb::Member {
            id: 4,
            role: pb::NodeRole::Tee as i32,
            address: "h:1".into(),
            score_ppm: 250_000
        }
    );
}

#[test]
fn the_descriptor_set_holds_both_services() {
    let fds = crate::FILE_DESCRIPTOR_SET;
    let has = |s: &str| fds.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has("keyshard.peer.v1") && has("keyshard.client.v1"));
    assert!(has("Keyshard") && has("PeerFrame"));
}
