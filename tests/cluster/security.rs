//! Security against running nodes: every refusal (another CA, no certificate, an expired
//! certificate, the `application` role on the peer stream and on `Reshare`, a node certificate
//! whose role or id the registry does not hold) is refused and is a record in that node's audit
//! log on disk; `keyshard audit verify` (the binary) passes on the untouched log and names the
//! line after one line is edited or removed.

use std::process::Command;
use std::time::{Duration, SystemTime};

use keyshard_core::ids::ParticipantId;
use keyshard_pki::{
    CertificateAuthority, ClientName, ClientRole, Identity, IssueOptions, NodeRole, Validity,
};
use keyshard_proto::client as pb;
use keyshard_proto::client::keyshard_client::KeyshardClient;
use keyshard_proto::peer::peer_client::PeerClient;
use keyshard_proto::peer::PeerFrame;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic::Code;

use super::common::*;
use super::{address, options, ready};

/// A standard tonic client with its own TLS settings (any gRPC client), calling `ListKeys`.
async fn tonic_list_keys(
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

fn client(name: &str, role: ClientRole) -> Identity {
    Identity::Client {
        name: ClientName::new(name).unwrap(),
        role,
    }
}

fn node(id: u16, role: NodeRole) -> Identity {
    Identity::Node {
        id: ParticipantId::new(id).unwrap(),
        role,
    }
}

fn is(line: &serde_json::Value, kind: &str) -> bool {
    line["event"]["type"] == kind
}

/// Runs `keyshard audit verify FILE` with the node's sealing key and checkpoint (the log is in
/// its data directory); (success, stdout + stderr).
fn audit_verify(file: &std::path::Path) -> (bool, String) {
    let data_dir = file.parent().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyshard"))
        .args(["audit", "verify"])
        .arg(file)
        .arg("--sealing-key")
        .arg(data_dir.join(keyshard_node::audit::SEALING_KEY_FILE))
        .arg("--checkpoint")
        .arg(data_dir.join(keyshard_node::audit::CHECKPOINT_FILE))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_audited_on_disk_and_audit_verify_detects_tampering() {
    let (_tmp, opts) = options("ks-security", 3);
    let mut cluster = keyshard_node::dev::start_cluster(&opts).unwrap();
    ready(&mut cluster).await;
    // Node 2 is the target: node 1 dials it (lower id dials higher), node 3 is dialed by it.
    let addr = address(&cluster, 2);
    let log = audit_path(&cluster, 2);
    let certs = cluster.dir.join("certs");
    let ca_pem = std::fs::read_to_string(certs.join("ca.pem")).unwrap();
    let ca = keyshard_node::certs::load_ca(&certs).unwrap();

    // The control: the cluster's application certificate works and leaves no refusal.
    let app_cert = std::fs::read_to_string(certs.join("dev-app.pem")).unwrap();
    let app_key = std::fs::read_to_string(certs.join("dev-app.key")).unwrap();
    tonic_list_keys(&addr, &ca_pem, Some((&app_cert, &app_key)))
        .await
        .unwrap();

    // 1. A certificate from another CA: refused in the handshake, audited with the identity
    //    it claims and the reason.
    let n = audit_lines(&log).len();
    let rogue_ca = CertificateAuthority::generate("rogue CA").unwrap();
    let rogue_id = client("rogue", ClientRole::Application);
    let rogue = rogue_ca
        .issue(&rogue_id, &IssueOptions::localhost(1))
        .unwrap();
    let err = tonic_list_keys(
        &addr,
        &ca_pem,
        Some((&rogue.cert_pem, rogue.key_pem.expose())),
    )
    .await
    .unwrap_err();
    println!("another CA: client saw {err}");
    let line = wait_audit(&log, n, "a certificate from another CA", |l| {
        is(l, "peer_rejected")
            && field(l, "who") == rogue_id.to_uri()
            && field(l, "reason").contains("UnknownIssuer")
    })
    .await;
    println!("  audited: {line}");

    // 2. No client certificate at all.
    let n = audit_lines(&log).len();
    let err = tonic_list_keys(&addr, &ca_pem, None).await.unwrap_err();
    println!("no certificate: client saw {err}");
    let line = wait_audit(&log, n, "a client without a certificate", |l| {
        is(l, "peer_rejected")
            && field(l, "who").starts_with("127.0.0.1:")
            && field(l, "reason").contains("peer sent no certificates")
    })
    .await;
    println!("  audited: {line}");

    // 3. An expired certificate from the cluster CA.
    let n = audit_lines(&log).len();
    let late_id = client("late", ClientRole::Application);
    let now = SystemTime::now();
    let mut expired = IssueOptions::localhost(1);
    expired.validity = Validity {
        not_before: now - Duration::from_secs(2 * 86_400),
        not_after: now - Duration::from_secs(86_400),
    };
    let late = ca.issue(&late_id, &expired).unwrap();
    let err = tonic_list_keys(
        &addr,
        &ca_pem,
        Some((&late.cert_pem, late.key_pem.expose())),
    )
    .await
    .unwrap_err();
    println!("expired: client saw {err}");
    let line = wait_audit(&log, n, "an expired certificate", |l| {
        is(l, "peer_rejected")
            && field(l, "who") == late_id.to_uri()
            && field(l, "reason").contains("certificate expired")
    })
    .await;
    println!("  audited: {line}");

    // 4. The application role on the peer stream: PERMISSION_DENIED, audited.
    let n = audit_lines(&log).len();
    let app_uri = client("dev-app", ClientRole::Application).to_uri();
    let ch = channel_as(&cluster, "dev-app", &addr).await;
    let err = PeerClient::new(ch.clone())
        .stream(tokio_stream::iter(vec![PeerFrame { payload: vec![1] }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("needs role tee or mesh"), "{err:?}");
    wait_audit(&log, n, "the application role on the peer stream", |l| {
        is(l, "permission_denied")
            && field(l, "who") == app_uri
            && field(l, "rpc") == "keyshard.peer.v1.Peer/Stream"
    })
    .await;

    // 5. The application role calling Reshare (admin only).
    let n = audit_lines(&log).len();
    let err = KeyshardClient::new(ch)
        .reshare(pb::ReshareRequest {
            key_id: "k".into(),
            new_threshold: Some(2),
            new_members: vec![1, 2, 3],
            request_id: "r".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("Reshare needs role admin"),
        "{err:?}"
    );
    wait_audit(&log, n, "the application role calling Reshare", |l| {
        is(l, "permission_denied")
            && field(l, "who") == app_uri
            && field(l, "rpc") == "keyshard.client.v1.Keyshard/Reshare"
    })
    .await;

    // 6. A certificate for node 1 (registered as tee) that says role=mesh, from the cluster
    //    CA: refused on the peer stream, audited; the real node 1 keeps its stream.
    let n = audit_lines(&log).len();
    let impostor = ca
        .issue(&node(1, NodeRole::Mesh), &IssueOptions::localhost(1))
        .unwrap();
    let ch = channel_with(
        &ca_pem,
        &impostor.cert_pem,
        impostor.key_pem.expose(),
        &addr,
    )
    .await;
    let err = PeerClient::new(ch)
        .stream(tokio_stream::iter(vec![PeerFrame { payload: vec![1] }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("node 1's certificate says role mesh, but the registry says tee"),
        "{err:?}"
    );
    wait_audit(&log, n, "a node certificate with the wrong role", |l| {
        is(l, "peer_rejected")
            && field(l, "who") == node(1, NodeRole::Mesh).to_uri()
            && field(l, "reason").contains("registry says tee")
    })
    .await;

    // 7. A node certificate for an id the registry does not hold.
    let n = audit_lines(&log).len();
    let stranger = ca
        .issue(&node(9, NodeRole::Tee), &IssueOptions::localhost(1))
        .unwrap();
    let ch = channel_with(
        &ca_pem,
        &stranger.cert_pem,
        stranger.key_pem.expose(),
        &addr,
    )
    .await;
    // (9 > 2 is also the wrong dialing direction; membership is checked first.)
    let err = PeerClient::new(ch)
        .stream(tokio_stream::iter(vec![PeerFrame { payload: vec![1] }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("node 9 is not a member"), "{err:?}");
    wait_audit(&log, n, "a node certificate for an unknown id", |l| {
        is(l, "peer_rejected") && field(l, "who") == node(9, NodeRole::Tee).to_uri()
    })
    .await;

    // The cluster still works after all that (node 1's real stream was never replaced).
    let mut app = cluster.app.connect_to(&addr).await.unwrap();
    let created = app
        .create_key(pb::CreateKeyRequest {
            key_id: "after-refusals".into(),
            scheme: "frost-ed25519".into(),
            threshold: 2,
            participants: vec![],
            request_id: "create-after-refusals".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let signed = app
        .sign(pb::SignRequest {
            key_id: "after-refusals".into(),
            messages: vec![b"still serving".to_vec()],
            request_id: "sign-after-refusals".into(),
        })
        .await
        .unwrap()
        .into_inner();
    keyshard_node::dev::verify(
        keyshard_core::scheme::Scheme::FrostEd25519,
        &created.public_key,
        b"still serving",
        &signed.signatures[0],
    )
    .unwrap();

    // Stop the nodes (they append `node_stopping`), then check the log with the CLI.
    let dir = cluster.dir.clone();
    drop(cluster);
    let log = dir.join("node-2").join("audit.log");
    let (ok, out) = audit_verify(&log);
    assert!(ok, "the untouched log must verify: {out}");
    assert!(out.contains("OK"), "{out}");
    println!("untouched: {}", out.trim());

    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.split_inclusive('\n').collect();
    assert!(lines.len() >= 10, "{original}");
    // The line recording the other CA's certificate.
    let target = lines
        .iter()
        .position(|l| l.contains("UnknownIssuer"))
        .unwrap();
    let number = target + 1;

    // Edit one byte of that line's reason (the JSON stays valid).
    let edited: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == target {
                l.replacen("UnknownIssuer", "UnknownIssuez", 1)
            } else {
                (*l).to_string()
            }
        })
        .collect();
    std::fs::write(&log, &edited).unwrap();
    let (ok, out) = audit_verify(&log);
    println!("edited line {number}: {}", out.trim());
    assert!(!ok, "an edited line must fail: {out}");
    assert!(out.contains(&format!("line {number}:")), "{out}");
    assert!(out.contains("hash"), "{out}");

    // Remove that line instead.
    let removed: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != target)
        .map(|(_, l)| *l)
        .collect();
    std::fs::write(&log, &removed).unwrap();
    let (ok, out) = audit_verify(&log);
    println!("removed line {number}: {}", out.trim());
    assert!(!ok, "a removed line must fail: {out}");
    assert!(out.contains(&format!("line {number}:")), "{out}");
    assert!(out.contains("missing"), "{out}");

    // Cut the last line off: the checkpoint the node keeps apart from the log catches it.
    std::fs::write(&log, lines[..lines.len() - 1].concat()).unwrap();
    let (ok, out) = audit_verify(&log);
    println!("last line cut off: {}", out.trim());
    assert!(!ok, "a log cut short must fail: {out}");
    assert!(
        out.contains(&format!("line {}: missing", lines.len())),
        "{out}"
    );

    // And the original verifies again (the failures came from the edits).
    std::fs::write(&log, &original).unwrap();
    assert!(audit_verify(&log).0);
}
