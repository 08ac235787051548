//! Refusals: TLS (another CA, no certificate, expired), roles, membership, oversized and
//! garbage frames. Each refusal is audited, and the server keeps serving.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut};
use common::*;
use keyshard_grpc::{connect, ConnectOptions, ExpectServer, MemoryAudit, SecurityEvent};
use keyshard_pki::{CertificateAuthority, IssueOptions, Validity};
use keyshard_proto::client as pb;
use keyshard_proto::client::keyshard_client::KeyshardClient;
use keyshard_proto::peer::peer_client::PeerClient;
use keyshard_proto::peer::PeerFrame;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

/// A standard tonic client with its own TLS settings (as any gRPC client would connect).
async fn tonic_client(
    addr: &str,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<pb::ListKeysResponse, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    KeyshardClient::new(channel)
        .list_keys(pb::ListKeysRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("call: {s:?}"))
}

fn one_node(pki: &Pki, tune: impl FnOnce(&mut keyshard_grpc::PeerConfig)) -> TestNode {
    let ls = listeners(1);
    // Node 2 serves; nodes 1 and 5 are members (at unused addresses: node 2 never dials 1,
    // and dials 5 in vain, which is harmless here).
    let mut peers = addr_map(&[2], &ls);
    peers.insert(pid(1), "127.0.0.1:9".into());
    peers.insert(pid(5), "127.0.0.1:9".into());
    TestNode::start(pki, 2, ls.into_iter().next().unwrap(), peers, tune)
}

async fn channel_as(pki: &Pki, who: &keyshard_pki::Identity, addr: &str) -> Channel {
    let m = pki.material(who);
    connect(
        addr,
        m.client_config().unwrap(),
        ExpectServer::AnyNode,
        &ConnectOptions::default(),
        None,
    )
    .await
    .unwrap()
}

fn refusals(audit: &MemoryAudit) -> Vec<String> {
    audit
        .events()
        .iter()
        .filter(|e| matches!(e, SecurityEvent::ConnectionRefused { .. }))
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn bad_client_certificates_are_refused_and_audited() {
    let pki = Pki::new();
    let server = one_node(&pki, |_| {});
    let addr = server.addr.to_string();
    let ca = pki.ca.cert_pem().to_string();
    let rt = runtime();

    // The control: a good application certificate works.
    let good = pki.material(&app("billing"));
    rt.block_on(tonic_client(
        &addr,
        &ca,
        Some((&good.cert_pem, good.key_pem.expose())),
    ))
    .unwrap();
    assert!(server.audit.events().is_empty());

    // Each bad client is refused at the handshake, and each refused connection is audited with
    // the reason. (A client library may retry in the background, so one client can cause more
    // than one refusal, and a retry may land after the next client started.)
    let refused_with = |reason: &str| {
        eventually(reason, || {
            refusals(&server.audit).iter().any(|r| r.contains(reason))
        });
    };

    // A certificate from another CA.
    let other = CertificateAuthority::generate("rogue CA").unwrap();
    let rogue = other
        .issue(&app("rogue"), &IssueOptions::localhost(1))
        .unwrap();
    let err = rt
        .block_on(tonic_client(
            &addr,
            &ca,
            Some((&rogue.cert_pem, rogue.key_pem.expose())),
        ))
        .unwrap_err();
    println!("another CA: client saw {err}");
    refused_with("invalid peer certificate: UnknownIssuer");

    // No certificate at all.
    let err = rt.block_on(tonic_client(&addr, &ca, None)).unwrap_err();
    println!("no cert: client saw {err}");
    refused_with("peer sent no certificates");

    // An expired certificate from the right CA.
    let now = SystemTime::now();
    let mut options = IssueOptions::localhost(1);
    options.validity = Validity {
        not_before: now - Duration::from_secs(2 * 86_400),
        not_after: now - Duration::from_secs(86_400),
    };
    let late = pki.material_with(&app("late"), options);
    let err = rt
        .block_on(tonic_client(
            &addr,
            &ca,
            Some((&late.cert_pem, late.key_pem.expose())),
        ))
        .unwrap_err();
    println!("expired: client saw {err}");
    refused_with("certificate expired");

    // A certificate from the right CA that names no keyshard identity.
    let ca_key = rcgen::KeyPair::from_pem(pki.ca.key_pem().expose()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(pki.ca.cert_pem(), ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let nameless = params.signed_by(&leaf_key, &issuer).unwrap();
    let err = rt
        .block_on(tonic_client(
            &addr,
            &ca,
            Some((&nameless.pem(), &leaf_key.serialize_pem())),
        ))
        .unwrap_err();
    println!("no identity: client saw {err}");
    refused_with("no keyshard:// URI subject alternative name");

    // The verifier also recorded which identity each rejected certificate claimed.
    let claimed: std::collections::BTreeSet<Option<String>> = server
        .audit
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SecurityEvent::CertificateRejected { claimed, .. } => Some(claimed),
            _ => None,
        })
        .collect();
    assert_eq!(
        claimed,
        [
            None,
            Some(app("rogue").to_uri()),
            Some(app("late").to_uri())
        ]
        .into()
    );
    // Every refusal is one of those four.
    for r in refusals(&server.audit) {
        assert!(
            [
                "UnknownIssuer",
                "peer sent no certificates",
                "certificate expired",
                "no keyshard:// URI"
            ]
            .iter()
            .any(|reason| r.contains(reason)),
            "{r}"
        );
    }
    println!("audit log:");
    for e in server.audit.events() {
        println!("  {e}");
    }
    // None of them reached the API.
    assert_eq!(
        server.backend.calls(),
        vec![(app("billing").to_uri(), "ListKeys")]
    );
}

#[test]
fn roles_are_enforced_on_the_peer_and_client_apis() {
    let pki = Pki::new();
    let server = one_node(&pki, |_| {});
    let addr = server.addr.to_string();
    let rt = runtime();
    rt.block_on(async {
        // An application certificate on the peer RPC.
        let ch = channel_as(&pki, &app("billing"), &addr).await;
        let err = PeerClient::new(ch.clone())
            .stream(tokio_stream::iter(vec![PeerFrame { payload: vec![1] }]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(err.message().contains("needs role tee or mesh"), "{err:?}");

        // ...and on Reshare / membership changes.
        let mut client = KeyshardClient::new(ch);
        let reshare = pb::ReshareRequest {
            key_id: "k".into(),
            new_threshold: Some(2),
            new_members: vec![1, 2, 3],
            request_id: "r1".into(),
        };
        let err = client.reshare(reshare.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(
            err.message().contains("Reshare needs role admin"),
            "{err:?}"
        );
        let err = client
            .remove_member(pb::RemoveMemberRequest { id: 3 })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        // What an application may do, it can.
        let signed = client
            .sign(pb::SignRequest {
                key_id: "k".into(),
                messages: vec![b"abc".to_vec()],
                request_id: "s1".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(signed.signatures, vec![b"cba".to_vec()]);

        // An admin may reshare.
        let ch = channel_as(&pki, &admin("ops"), &addr).await;
        let done = KeyshardClient::new(ch).reshare(reshare).await.unwrap();
        assert_eq!(done.into_inner().version, 2);

        // A node certificate may not use the client API.
        let ch = channel_as(&pki, &node(1), &addr).await;
        let err = KeyshardClient::new(ch)
            .list_keys(pb::ListKeysRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(err.message().contains("needs role application or admin"));

        // A member node dialing in the wrong direction (5 > 2) is refused.
        let ch = channel_as(&pki, &node(5), &addr).await;
        let err = PeerClient::new(ch)
            .stream(tokio_stream::iter(vec![PeerFrame { payload: vec![1] }]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(err.message().contains("lower id dials"), "{err:?}");

        // A node that is not a member is refused.
        let ch = channel_as(&pki, &node(4), &addr).await;
        let err = PeerClient::new(ch)
            .stream(tokio_stream::iter(vec![PeerFrame { payload: vec![1] }]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(err.message().contains("node 4 is not a member"), "{err:?}");
    });

    let events: Vec<String> = server
        .audit
        .events()
        .iter()
        .map(|e| e.to_string())
        .collect();
    let app_uri = app("billing").to_uri();
    let expected = [
        format!("{app_uri} denied keyshard.peer.v1.Peer/Stream"),
        format!("{app_uri} denied keyshard.client.v1.Keyshard/Reshare"),
        format!("{app_uri} denied keyshard.client.v1.Keyshard/RemoveMember"),
        format!(
            "{} denied keyshard.client.v1.Keyshard/ListKeys",
            node(1).to_uri()
        ),
        format!("peer {} rejected", node(5).to_uri()),
        format!("peer {} rejected", node(4).to_uri()),
    ];
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (e, x) in events.iter().zip(&expected) {
        assert!(e.starts_with(x), "{e} / {x}");
    }
    assert_eq!(
        server.backend.calls(),
        vec![(app_uri, "Sign"), (admin("ops").to_uri(), "Reshare"),]
    );
}

#[test]
fn malformed_client_requests_get_invalid_argument_naming_the_field() {
    let pki = Pki::new();
    let server = one_node(&pki, |_| {});
    let addr = server.addr.to_string();
    let rt = runtime();
    rt.block_on(async {
        let mut client = KeyshardClient::new(channel_as(&pki, &app("billing"), &addr).await)
            .max_decoding_message_size(keyshard_grpc::client::MAX_CLIENT_MESSAGE)
            .max_encoding_message_size(keyshard_grpc::client::MAX_CLIENT_MESSAGE);
        let create = |f: &dyn Fn(&mut pb::CreateKeyRequest)| {
            let mut r = pb::CreateKeyRequest {
                key_id: "wallet".into(),
                scheme: "frost-secp256k1-tr".into(),
                threshold: 2,
                participants: vec![1, 2, 3],
                request_id: "c1".into(),
            };
            f(&mut r);
            r
        };
        let cases: Vec<(pb::CreateKeyRequest, &str)> = vec![
            (
                create(&|r| r.scheme = "rsa".into()),
                "scheme: unknown scheme \"rsa\"",
            ),
            (create(&|r| r.threshold = 0), "threshold: 0 is below"),
            (
                create(&|r| r.threshold = 4),
                "threshold: 4 exceeds the 3 participants",
            ),
            (
                create(&|r| r.participants = vec![1, 2, 2]),
                "participants[2]: node id 2 appears twice",
            ),
            (
                create(&|r| r.participants = vec![0, 2, 3]),
                "participants[0]: node id 0",
            ),
            (
                create(&|r| r.key_id = "a b".into()),
                "key_id: invalid key id",
            ),
            (
                create(&|r| r.request_id = String::new()),
                "request_id: must not be empty",
            ),
            (
                create(&|r| r.request_id = "x".repeat(129)),
                "request_id: is 129 bytes",
            ),
        ];
        for (req, text) in cases {
            let err = client.create_key(req).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
            assert!(
                err.message().starts_with(text),
                "{} / {text}",
                err.message()
            );
        }
        let sign = |messages: Vec<Vec<u8>>| pb::SignRequest {
            key_id: "wallet".into(),
            messages,
            request_id: "s".into(),
        };
        let err = client.sign(sign(vec![vec![0]; 1025])).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("messages: 1025 messages"),
            "{err:?}"
        );
        let err = client
            .sign(sign(vec![vec![0], vec![0; 65 * 1024]]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("messages[1]: 66560 bytes"),
            "{err:?}"
        );
        let err = client.sign(sign(vec![])).await.unwrap_err();
        assert!(
            err.message().starts_with("messages: at least one"),
            "{err:?}"
        );

        // A valid request passes through; core errors come back with their stable codes.
        let ok = client
            .create_key(create(&|_| {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (ok.key_id.as_str(), ok.scheme.as_str()),
            ("wallet", "frost-secp256k1-tr")
        );
        let err = client
            .get_public_key(pb::GetPublicKeyRequest {
                key_id: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        // A full batch of the largest messages fits the message size limit.
        let full = client
            .sign(sign(vec![vec![7; 64 * 1024]; 1024]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(full.signatures.len(), 1024);
    });
    let calls: Vec<&str> = server.backend.calls().iter().map(|c| c.1).collect();
    assert_eq!(calls, vec!["CreateKey", "GetPublicKey", "Sign"]);
    assert!(server.audit.events().is_empty());
}

/// Sends raw bytes as gRPC messages (to deliver bytes that are not a valid protobuf).
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct Raw;

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let out = src.chunk().to_vec();
        src.advance(out.len());
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

/// Opens a peer stream as node 1, sends `frames`, and returns how the stream ended.
async fn peer_stream(ch: Channel, frames: Vec<PeerFrame>) -> Result<(), Status> {
    let mut client = PeerClient::new(ch).max_encoding_message_size(usize::MAX);
    let mut replies = client
        .stream(tokio_stream::iter(frames))
        .await?
        .into_inner();
    // The server never sends here; the stream ends with its verdict, or we stop waiting.
    match tokio::time::timeout(Duration::from_secs(1), replies.message()).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Ok(()),
    }
}

#[test]
fn oversized_and_garbage_frames_do_not_kill_the_server() {
    let pki = Pki::new();
    let mut server = one_node(&pki, |c| c.max_frame_bytes = 1024);
    let addr = server.addr.to_string();
    let rt = runtime();
    let ch = rt.block_on(channel_as(&pki, &node(1), &addr));

    // Far over the limit: tonic's size limit ends the stream.
    let err = rt
        .block_on(peer_stream(
            ch.clone(),
            vec![PeerFrame {
                payload: vec![1; 100_000],
            }],
        ))
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    // Just over the payload limit (within tonic's framing slack): the explicit check.
    let err = rt
        .block_on(peer_stream(
            ch.clone(),
            vec![PeerFrame {
                payload: vec![1; 1030],
            }],
        ))
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err
        .message()
        .contains("1030-byte frame exceeds the 1024-byte limit"));

    // Bytes that are not a protobuf message at all.
    let raw = rt.block_on(async {
        let mut grpc = tonic::client::Grpc::new(ch.clone());
        grpc.ready().await.unwrap();
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/keyshard.peer.v1.Peer/Stream");
        let reply = grpc
            .streaming(
                tonic::Request::new(tokio_stream::iter(vec![vec![0xFF, 0xFF, 0xFF, 0x0F]])),
                path,
                RawCodec,
            )
            .await;
        match reply {
            Err(s) => Err(s),
            Ok(r) => {
                let mut s = r.into_inner();
                match tokio::time::timeout(Duration::from_secs(1), s.message()).await {
                    Ok(r) => r.map(|_| ()),
                    Err(_) => Ok(()),
                }
            }
        }
    });
    let err = raw.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");

    // Nothing of that was delivered.
    assert!(server.recv(Duration::from_millis(100)).is_none());

    // Garbage *payload* bytes in a valid frame are delivered as they are: decoding them is the
    // core's job, and the sender is the authenticated node 1.
    let garbage: Vec<u8> = (0..=255u8).rev().collect();
    rt.block_on(peer_stream(
        ch.clone(),
        vec![PeerFrame {
            payload: garbage.clone(),
        }],
    ))
    .unwrap();
    assert_eq!(server.recv(WAIT), Some((pid(1), garbage)));

    // The server still serves everything else.
    rt.block_on(async {
        let status = KeyshardClient::new(channel_as(&pki, &app("billing"), &addr).await)
            .cluster_status(pb::ClusterStatusRequest {})
            .await
            .unwrap();
        assert_eq!(status.into_inner().node_id, 1);
    });
    // Stream errors are not security events.
    assert!(
        server.audit.events().is_empty(),
        "{:?}",
        server.audit.events()
    );
}

#[test]
fn a_dialed_server_must_be_the_node_expected() {
    let pki = Pki::new();
    let server = one_node(&pki, |_| {});
    let addr = server.addr.to_string();
    let rt = runtime();
    let audit = Arc::new(MemoryAudit::new(10));
    let m = pki.material(&node(1));
    let err = rt
        .block_on(connect(
            &addr,
            m.client_config().unwrap(),
            ExpectServer::Node(pid(3)),
            &ConnectOptions::default(),
            Some(audit.clone()),
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("dialed node 3") && err.to_string().contains("node/2"),
        "{err}"
    );
    assert!(matches!(
        &audit.events()[..],
        [SecurityEvent::PeerRejected { who, .. }] if *who == node(2)
    ));
    // The right node with another role than the registry's (node 2's certificate says tee).
    let err = rt
        .block_on(connect(
            &addr,
            m.client_config().unwrap(),
            ExpectServer::NodeWithRole(pid(2), keyshard_pki::NodeRole::Mesh),
            &ConnectOptions::default(),
            Some(audit.clone()),
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("(role mesh in the registry)"),
        "{err}"
    );
    assert_eq!(audit.events().len(), 2);
    // The right expectations connect.
    for expect in [
        ExpectServer::Node(pid(2)),
        ExpectServer::NodeWithRole(pid(2), keyshard_pki::NodeRole::Tee),
    ] {
        rt.block_on(connect(
            &addr,
            m.client_config().unwrap(),
            expect,
            &ConnectOptions::default(),
            None,
        ))
        .unwrap();
    }
}

#[test]
fn health_and_reflection_are_served_to_any_authenticated_caller() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let pki = Pki::new();
    let server = one_node(&pki, |_| {});
    let addr = server.addr.to_string();
    let rt = runtime();
    rt.block_on(async {
        for who in [app("billing"), node(1)] {
            let ch = channel_as(&pki, &who, &addr).await;
            for service in ["", "keyshard.client.v1.Keyshard", "keyshard.peer.v1.Peer"] {
                let r = HealthClient::new(ch.clone())
                    .check(HealthCheckRequest {
                        service: service.into(),
                    })
                    .await
                    .unwrap();
                assert_eq!(r.into_inner().status, ServingStatus::Serving as i32);
            }
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut replies = ServerReflectionClient::new(ch)
                .server_reflection_info(tokio_stream::iter(vec![request]))
                .await
                .unwrap()
                .into_inner();
            let reply = replies.message().await.unwrap().unwrap();
            let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
                panic!("unexpected reflection reply {reply:?}");
            };
            let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            for s in [
                "keyshard.client.v1.Keyshard",
                "keyshard.peer.v1.Peer",
                "grpc.health.v1.Health",
            ] {
                assert!(names.iter().any(|n| n == s), "{s} missing from {names:?}");
            }
        }
    });
}
