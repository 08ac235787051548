//! Multi-process integration tests: real `keyshard node` processes on 127.0.0.1, real gRPC over
//! mutual TLS, sled stores, certificates from a fresh CA. Built as a test target of
//! `keyshard-node` (so Cargo builds the `keyshard` binary first); lives in the top-level `tests/`.

mod bad_input;
mod bench;
mod common;
mod security;

use std::time::Duration;

use keyshard_core::ids::ParticipantId;
use keyshard_core::scheme::Scheme;
use keyshard_node::dev::{self, DevOptions, LocalCluster};
use keyshard_proto::client as pb;
use tonic::Code;

fn options(name: &str, nodes: u16) -> (tempfile::TempDir, DevOptions) {
    let tmp = tempfile::Builder::new().prefix(name).tempdir().unwrap();
    let opts = DevOptions {
        nodes,
        threshold: 3,
        data_dir: tmp.path().join("cluster"),
        exit: true,
        binary: env!("CARGO_BIN_EXE_keyshard").into(),
        primes_dir: None,
    };
    (tmp, opts)
}

async fn ready(cluster: &mut LocalCluster) -> u32 {
    match dev::wait_ready(&cluster.app, &cluster.addresses, Duration::from_secs(60)).await {
        Ok(l) => l,
        Err(e) => panic!("{e}\n{}", cluster.exited().join("\n")),
    }
}

fn address(cluster: &LocalCluster, id: u32) -> String {
    cluster
        .addresses
        .iter()
        .find(|(p, _)| u32::from(p.get()) == id)
        .map(|(_, a)| a.clone())
        .unwrap()
}

fn follower_of(cluster: &LocalCluster, leader: u32) -> u32 {
    cluster
        .addresses
        .iter()
        .map(|(p, _)| u32::from(p.get()))
        .find(|p| *p != leader)
        .unwrap()
}

fn kill9(cluster: &mut LocalCluster, id: u32) {
    let (_, child) = cluster
        .children
        .iter_mut()
        .find(|(p, _)| u32::from(p.get()) == id)
        .unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

async fn sign_at(
    cluster: &LocalCluster,
    at: u32,
    scheme: Scheme,
    key: &str,
    pk: &[u8],
    messages: Vec<Vec<u8>>,
    rid: &str,
) -> Result<u32, tonic::Status> {
    let mut c = cluster.app.connect_to(&address(cluster, at)).await.unwrap();
    let r = c
        .sign(pb::SignRequest {
            key_id: key.into(),
            messages: messages.clone(),
            request_id: rid.into(),
        })
        .await?
        .into_inner();
    assert_eq!(r.signatures.len(), messages.len());
    for (m, s) in messages.iter().zip(&r.signatures) {
        dev::verify(scheme, pk, m, s).unwrap();
    }
    Ok(r.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_create_sign_remove_a_node_and_reshare_with_every_scheme() {
    let (_tmp, opts) = options("ks-five", 5);
    let mut cluster = dev::start_cluster(&opts).unwrap();
    let leader = ready(&mut cluster).await;
    let follower = follower_of(&cluster, leader);
    let mut app = cluster
        .app
        .connect_to(&address(&cluster, follower))
        .await
        .unwrap();
    let mut keys = Vec::new();
    for scheme in Scheme::FROST {
        let key = format!("k-{}", scheme.name());
        let created = app
            .create_key(pb::CreateKeyRequest {
                key_id: key.clone(),
                scheme: scheme.name().into(),
                threshold: 3,
                participants: vec![],
                request_id: format!("create-{key}"),
            })
            .await
            .unwrap()
            .into_inner();
        let pk = created.public_key;
        // Single and batch signing, sent to a follower.
        let v = sign_at(
            &cluster,
            follower,
            scheme,
            &key,
            &pk,
            vec![b"one".to_vec()],
            &format!("s1-{key}"),
        )
        .await
        .unwrap();
        assert_eq!(v, 1);
        let batch: Vec<Vec<u8>> = (0..16).map(|i| format!("m{i}").into_bytes()).collect();
        sign_at(
            &cluster,
            follower,
            scheme,
            &key,
            &pk,
            batch,
            &format!("b-{key}"),
        )
        .await
        .unwrap();
        keys.push((scheme, key, pk));
    }

    // Remove node 5 (the keys still have 4 holders >= 3), then reshare every key 3-of-5 -> 3-of-4.
    let mut admin = cluster
        .admin
        .connect_to(&address(&cluster, follower))
        .await
        .unwrap();
    admin
        .remove_member(pb::RemoveMemberRequest { id: 5 })
        .await
        .unwrap();
    let status = app
        .cluster_status(pb::ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.members.iter().all(|m| m.id != 5), "{status:?}");
    for (scheme, key, pk) in &keys {
        let r = admin
            .reshare(pb::ReshareRequest {
                key_id: key.clone(),
                new_threshold: Some(3),
                new_members: vec![1, 2, 3, 4],
                request_id: format!("reshare-{key}"),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&r.public_key, pk, "a reshare keeps the public key");
        assert_eq!(r.version, 2);
        let v = sign_at(
            &cluster,
            follower,
            *scheme,
            key,
            pk,
            vec![b"after".to_vec()],
            &format!("s2-{key}"),
        )
        .await
        .unwrap();
        assert_eq!(v, 2);
        let info = app
            .get_public_key(pb::GetPublicKeyRequest {
                key_id: key.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.participants, vec![1, 2, 3, 4]);
    }
    // Every node's audit log verifies.
    for (id, _) in &cluster.addresses {
        let dir = cluster.dir.join(format!("node-{id}"));
        let key = keyshard_node::audit::AuditKey::from_sealing_key_file(
            &dir.join(keyshard_node::audit::SEALING_KEY_FILE),
        )
        .unwrap();
        let checkpoint = dir.join(keyshard_node::audit::CHECKPOINT_FILE);
        keyshard_node::audit::verify(&dir.join("audit.log"), &key, Some(&checkpoint)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_followers_and_leaders_do_not_stop_signing_and_a_restarted_node_catches_up() {
    let (_tmp, opts) = options("ks-faults", 5);
    let mut cluster = dev::start_cluster(&opts).unwrap();
    let leader = ready(&mut cluster).await;
    let scheme = Scheme::FrostSecp256k1;
    let f = follower_of(&cluster, leader);
    let mut app = cluster.app.connect_to(&address(&cluster, f)).await.unwrap();
    let pk = app
        .create_key(pb::CreateKeyRequest {
            key_id: "k".into(),
            scheme: scheme.name().into(),
            threshold: 3,
            participants: vec![],
            request_id: "create".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .public_key;

    // SIGKILL a follower (not the one we talk to), then sign repeatedly: every request succeeds
    // (a signing session that picked the dead node is retried without it).
    let victim = cluster
        .addresses
        .iter()
        .map(|(p, _)| u32::from(p.get()))
        .find(|p| *p != leader && *p != f)
        .unwrap();
    kill9(&mut cluster, victim);
    for i in 0..6 {
        sign_at(
            &cluster,
            f,
            scheme,
            "k",
            &pk,
            vec![vec![i]],
            &format!("after-follower-kill-{i}"),
        )
        .await
        .unwrap();
    }

    // SIGKILL the leader: a new leader is elected and requests go through again (a request in
    // flight may fail clearly with UNAVAILABLE/DEADLINE_EXCEEDED/ABORTED; retried, it succeeds).
    kill9(&mut cluster, leader);
    let signed = sign_retrying(
        &cluster,
        f,
        scheme,
        ("k", &pk),
        vec![b"after leader kill".to_vec()],
        "after-leader-kill",
        40,
    )
    .await;
    assert!(signed.is_some(), "no signature after the leader was killed");
    let status = app
        .cluster_status(pb::ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.leader != 0 && status.leader != leader, "{status:?}");

    // Restart the killed follower: it catches up and is again a member that can sign.
    let id = ParticipantId::new(u16::try_from(victim).unwrap()).unwrap();
    let restarted = dev::spawn_node(&cluster.dir, &cluster.binary, id, &cluster.addresses).unwrap();
    let slot = cluster.children.iter_mut().find(|(p, _)| *p == id).unwrap();
    // The killed process was already waited for; the LocalCluster stops the new one on drop.
    slot.1 = restarted;
    let mut caught_up = false;
    for _ in 0..60 {
        if let Ok(mut c) = cluster.app.connect_to(&address(&cluster, victim)).await {
            if let Ok(s) = c.list_keys(pb::ListKeysRequest {}).await {
                if s.into_inner().keys.iter().any(|k| k.key_id == "k") {
                    caught_up = true;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(caught_up, "the restarted node never learned the key");
    sign_at(
        &cluster,
        victim,
        scheme,
        "k",
        &pk,
        vec![b"from the restarted node".to_vec()],
        "restarted",
    )
    .await
    .unwrap();
}

/// Every node log of the cluster, concatenated (for what the daemons say they did).
fn node_logs(cluster: &LocalCluster) -> String {
    cluster
        .addresses
        .iter()
        .map(|(p, _)| {
            std::fs::read_to_string(cluster.dir.join(format!("node-{p}.log"))).unwrap_or_default()
        })
        .collect()
}

/// Signs with `key` (and its public key), asking again with the same request id (idempotent)
/// up to `tries` times, half a second apart, while the cluster answers that it cannot answer now
/// (UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED: a leader change); any other error fails the test.
/// The version that signed, or `None` if every try got such an answer.
async fn sign_retrying(
    cluster: &LocalCluster,
    at: u32,
    scheme: Scheme,
    (key, pk): (&str, &[u8]),
    messages: Vec<Vec<u8>>,
    rid: &str,
    tries: u32,
) -> Option<u32> {
    for attempt in 0..tries {
        match sign_at(cluster, at, scheme, key, pk, messages.clone(), rid).await {
            Ok(v) => return Some(v),
            Err(e) => {
                assert!(
                    matches!(
                        e.code(),
                        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted
                    ),
                    "{rid} attempt {attempt}: unexpected error {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    None
}

/// Threshold ECDSA through real processes and gRPC: each node loads its safe primes from a file
/// (the committed public test fixtures), a secp256k1 key is created 2-of-3 (FROST DKG plus
/// CGGMP24 aux info between the daemons), signs with the interactive protocol, and once the
/// leader's presignature pool has filled, signs a batch from pooled presignatures; every
/// signature verifies with key recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_create_and_sign_with_a_threshold_ecdsa_key() {
    let (_tmp, mut opts) = options("ks-ecdsa", 3);
    opts.primes_dir =
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures/ecdsa"));
    let mut cluster = dev::start_cluster(&opts).unwrap();
    let leader = ready(&mut cluster).await;
    let f = follower_of(&cluster, leader);
    let mut app = cluster.app.connect_to(&address(&cluster, f)).await.unwrap();
    let scheme = Scheme::EcdsaSecp256k1;
    // Aux info is tens of seconds of CPU per node here (debug build, 2 cores): a request may
    // time out at the node (60 s) while its task runs on; asking again with the same request id
    // returns the task's result.
    let mut created = None;
    for _ in 0..5 {
        match app
            .create_key(pb::CreateKeyRequest {
                key_id: "eth".into(),
                scheme: scheme.name().into(),
                threshold: 2,
                participants: vec![],
                request_id: "create-eth".into(),
            })
            .await
        {
            Ok(r) => {
                created = Some(r.into_inner());
                break;
            }
            Err(s) if s.code() == Code::DeadlineExceeded => continue,
            Err(s) => panic!("{s}\n{}", cluster.exited().join("\n")),
        }
    }
    let pk = created.expect("the ECDSA key was created").public_key;
    assert_eq!(pk.len(), 33, "SEC1 compressed");
    let v = sign_retrying(
        &cluster,
        f,
        scheme,
        ("eth", &pk),
        vec![b"one".to_vec()],
        "s1",
        5,
    )
    .await;
    assert_eq!(v, Some(1));
    // The leader refills its pool (default depth 4, one presigning run at a time) in the
    // background; each presignature is filed at both its signers. On a loaded machine a leader
    // may change (a presigning round stalls a node's thread for seconds), and a new leader
    // starts with an empty inventory, so a batch may run interactively: then wait for fresh
    // filings and sign another. What must hold: some batch is signed from the pool, in time.
    let filings = |c: &LocalCluster| {
        node_logs(c)
            .matches("ECDSA presignature filed in the pool")
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let (mut batches, mut want) = (0, 6);
    while !node_logs(&cluster).contains("ECDSA presignatures spent on signing") {
        if std::time::Instant::now() > deadline {
            let logs = node_logs(&cluster);
            let notable: Vec<&str> = logs
                .lines()
                .filter(|l| l.contains("leader changed") || l.contains(" WARN "))
                .collect();
            panic!(
                "no batch signed from the pool in 300 s ({batches} signed interactively); \
                 leader changes and warnings:\n{}\n{}",
                notable.join("\n"),
                cluster.exited().join("\n")
            );
        }
        if filings(&cluster) < want {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        batches += 1;
        let batch = vec![b"pay 1".to_vec(), b"pay 2".to_vec()];
        let rid = format!("s2-{batches}");
        let signed = sign_retrying(&cluster, f, scheme, ("eth", &pk), batch, &rid, 5).await;
        assert!(signed.is_some(), "{rid}: no answer after five tries");
        want = filings(&cluster) + 4;
    }
    println!("a batch was signed from the pool (batches signed: {batches})");
}
