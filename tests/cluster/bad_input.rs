//! Bad input against running `keyshard node` processes: oversized client requests and peer
//! frames, garbage on the peer stream (not protobuf; protobuf carrying bytes the core refuses),
//! malformed client requests. Each gets a clear answer (a gRPC status naming what was wrong, or,
//! for payloads the core refuses on the fire-and-forget peer stream, an audit record naming
//! the sender and the reason) and the node keeps serving.

use std::time::Duration;

use keyshard_core::node::wire::MAX_MESSAGE;
use keyshard_core::scheme::Scheme;
use keyshard_grpc::MAX_CLIENT_MESSAGE;
use keyshard_proto::client as pb;
use keyshard_proto::peer::peer_client::PeerClient;
use keyshard_proto::peer::PeerFrame;
use tonic::Code;

use super::common::*;
use super::{address, kill9, options, ready};

/// Opens a peer stream, sends `frames` (protobuf `PeerFrame`s) and returns how it ended (`Ok`:
/// ended cleanly or still open after 5 s).
async fn peer_frames(
    ch: tonic::transport::Channel,
    frames: Vec<PeerFrame>,
) -> Result<(), tonic::Status> {
    let mut client = PeerClient::new(ch)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let mut replies = client
        .stream(tokio_stream::iter(frames))
        .await?
        .into_inner();
    // The node may send frames it had queued for node 1; read past them to the verdict.
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(end, replies.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(r) => return r.map(|_| ()),
            Err(_) => return Ok(()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_the_node_keeps_serving() {
    // Four nodes; node 1 is then killed so that its certificate can speak on the peer stream
    // without the real node 1 replacing the test's stream (a new stream from a node replaces
    // its old one). Three of four is still a quorum.
    let (_tmp, opts) = options("ks-badinput", 4);
    let mut cluster = keyshard_node::dev::start_cluster(&opts).unwrap();
    ready(&mut cluster).await;
    kill9(&mut cluster, 1);
    let live: Vec<_> = cluster
        .addresses
        .iter()
        .filter(|(p, _)| p.get() != 1)
        .cloned()
        .collect();
    keyshard_node::dev::wait_ready(&cluster.app, &live, Duration::from_secs(60))
        .await
        .unwrap();
    let target = 3;
    let addr = address(&cluster, target);
    let log = audit_path(&cluster, target);
    let mut app = cluster.app.connect_to(&addr).await.unwrap();

    // --- Malformed client requests: INVALID_ARGUMENT naming the field. ---
    let create = |f: &dyn Fn(&mut pb::CreateKeyRequest)| {
        let mut r = pb::CreateKeyRequest {
            key_id: "wallet".into(),
            scheme: "frost-secp256k1".into(),
            threshold: 2,
            participants: vec![2, 3, 4],
            request_id: "c-bad".into(),
        };
        f(&mut r);
        r
    };
    let cases: Vec<(&str, pb::CreateKeyRequest, &str)> = vec![
        (
            "unknown scheme",
            create(&|r| r.scheme = "rsa-2048".into()),
            "scheme: unknown scheme \"rsa-2048\"",
        ),
        ("threshold 0", create(&|r| r.threshold = 0), "threshold: 0"),
        (
            "threshold > n (participants named)",
            create(&|r| r.threshold = 4),
            "threshold: 4 exceeds the 3 participants",
        ),
        (
            "empty key id",
            create(&|r| r.key_id = String::new()),
            "key_id: ",
        ),
        (
            "oversized key id",
            create(&|r| r.key_id = "k".repeat(65)),
            "key_id: ",
        ),
        (
            "empty request id",
            create(&|r| r.request_id = String::new()),
            "request_id: must not be empty",
        ),
        (
            "oversized request id",
            create(&|r| r.request_id = "x".repeat(129)),
            "request_id: is 129 bytes",
        ),
        (
            "participant 0",
            create(&|r| r.participants = vec![0, 2, 3]),
            "participants[0]",
        ),
        // Valid on its own but above the member count (no participants named: every member):
        // a client error no retry fixes (it used to be UNAVAILABLE, which invites retries).
        (
            "threshold > members",
            create(&|r| {
                r.threshold = 5;
                r.participants = vec![];
            }),
            "threshold 5 exceeds the 4 cluster members",
        ),
    ];
    for (what, req, text) in cases {
        invalid_argument(what, app.create_key(req).await.unwrap_err(), text);
    }
    let sign = |messages: Vec<Vec<u8>>, rid: &str| pb::SignRequest {
        key_id: "wallet".into(),
        messages,
        request_id: rid.into(),
    };
    let sign_cases: Vec<(&str, pb::SignRequest, &str)> = vec![
        (
            "empty message list",
            sign(vec![], "s"),
            "messages: at least one",
        ),
        (
            "too many messages",
            sign(vec![vec![0]; 1025], "s"),
            "messages: 1025 messages, at most 1024",
        ),
        (
            "oversized message",
            sign(vec![vec![0], vec![0; 65 * 1024]], "s"),
            "messages[1]: 66560 bytes",
        ),
        ("bad request id", sign(vec![vec![0]], ""), "request_id: "),
        (
            "bad key id",
            pb::SignRequest {
                key_id: "no spaces allowed".into(),
                messages: vec![vec![0]],
                request_id: "s".into(),
            },
            "key_id: ",
        ),
    ];
    for (what, req, text) in sign_cases {
        invalid_argument(what, app.sign(req).await.unwrap_err(), text);
    }
    // A well-formed request for a key that does not exist: NOT_FOUND naming it.
    let err = app
        .sign(sign(vec![b"m".to_vec()], "s-missing"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("wallet"), "{err:?}");

    // --- An oversized client request: over the server's message limit. ---
    let big = MAX_CLIENT_MESSAGE / (64 * 1024) + 2;
    let err = app
        .sign(sign(vec![vec![7u8; 64 * 1024]; big], "s-big"))
        .await
        .unwrap_err();
    println!("oversized request: {:?}: {}", err.code(), err.message());
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(
        err.message().contains("message length too large")
            && err.message().contains(&MAX_CLIENT_MESSAGE.to_string()),
        "{err:?}"
    );

    // --- The peer stream, as the (dead) node 1 with its own certificate. ---
    let as_node1 = || channel_as(&cluster, "node-1", &addr);

    // A frame over the limit (payload MAX_MESSAGE + 1: inside tonic's framing slack, so the
    // transport's own check answers).
    let err = peer_frames(
        as_node1().await,
        vec![PeerFrame {
            payload: vec![1; MAX_MESSAGE + 1],
        }],
    )
    .await
    .unwrap_err();
    println!("oversized frame: {:?}: {}", err.code(), err.message());
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(
        err.message().contains(&format!(
            "a {}-byte frame exceeds the {MAX_MESSAGE}-byte limit",
            MAX_MESSAGE + 1
        )),
        "{err:?}"
    );

    // Bytes that are not a protobuf message.
    let mut noise = vec![0xFFu8; 4];
    let mut x: u32 = 0x9E37_79B9;
    for _ in 0..256 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    let err = raw_peer_stream(as_node1().await, vec![noise], Duration::from_secs(5))
        .await
        .unwrap_err();
    println!("not protobuf: {:?}: {}", err.code(), err.message());
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(
        err.message().contains("failed to decode Protobuf message"),
        "{err:?}"
    );

    // Valid frames whose payloads the core refuses: delivered, refused by the core with an
    // audit record naming node 1 and what was wrong; the stream stays up (the peer protocol
    // does not answer, so a sender learns nothing from it).
    let n = audit_lines(&log).len();
    let garbage: Vec<PeerFrame> = [
        (0..=255u8).rev().collect::<Vec<u8>>(), // unknown message kind
        vec![1, 0xFF, 0xFF, 0xFF],              // a Raft message, truncated
        vec![],                                 // empty
    ]
    .into_iter()
    .map(|payload| PeerFrame { payload })
    .collect();
    peer_frames(as_node1().await, garbage).await.unwrap();
    // One record per payload, each naming node 1 and why.
    let misbehaved =
        |l: &serde_json::Value| l["event"]["type"] == "peer_misbehaved" && l["event"]["peer"] == 1;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let records = loop {
        let r: Vec<serde_json::Value> = audit_lines(&log)
            .into_iter()
            .skip(n)
            .filter(|l| misbehaved(l))
            .collect();
        if r.len() >= 3 || std::time::Instant::now() > end {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for r in &records {
        println!("core-invalid payload audited: {}", field(r, "reason"));
    }
    assert_eq!(records.len(), 3, "{records:#?}");
    for r in &records {
        assert!(
            field(r, "reason").starts_with("undecodable message: "),
            "{r}"
        );
    }

    // --- The node keeps serving: a key is created and signs, verified independently. ---
    let mut app = cluster.app.connect_to(&addr).await.unwrap();
    let created = app
        .create_key(create(&|r| r.request_id = "c-good".into()))
        .await
        .unwrap()
        .into_inner();
    let batch: Vec<Vec<u8>> = (0..4)
        .map(|i| format!("after bad input {i}").into_bytes())
        .collect();
    let signed = app
        .sign(sign(batch.clone(), "s-good"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.signatures.len(), batch.len());
    for (m, s) in batch.iter().zip(&signed.signatures) {
        keyshard_node::dev::verify(Scheme::FrostSecp256k1, &created.public_key, m, s).unwrap();
    }
    // Every node but the killed one is still running.
    for (id, child) in &mut cluster.children {
        if id.get() != 1 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "node {id} exited after bad input"
            );
        }
    }
    assert!(cluster.exited().len() == 1, "{:?}", cluster.exited());
}

/// A refusal as `INVALID_ARGUMENT` whose message starts with `text` (what was wrong).
fn invalid_argument(what: &str, err: tonic::Status, text: &str) {
    println!("{what}: {:?}: {}", err.code(), err.message());
    assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
    assert!(
        err.message().starts_with(text),
        "{what}: {:?} should start with {text:?}",
        err.message()
    );
}
