//! Seed inputs for every target, from honest runs: real encoded messages for the decoders and
//! honest (or lightly perturbed) op sequences for the others. `core/examples/fuzz_seeds.rs`
//! writes them to `fuzz/corpus/<target>/`; the fuzzer grows the corpora from there.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::{dkg, KeyPackage};
use frost_core::{round1, round2, Ciphersuite, SigningPackage};

use super::node::{warm_disks, warm_transmits, Disk};
use super::sessions::reshare_probe_messages;
use super::InputWriter;
use crate::codec::{Reader, Writer};
use crate::ids::ParticipantId;
use crate::node::raft_wire;
use crate::node::registry::{MembershipChange, NodeRole, Replicated};
use crate::node::{NodeMessage, Request, RequestError, Response};
use crate::persist::{KeyId, KeyVersion};
use crate::rng::Seed;
use crate::scheme::Scheme;
use crate::session::Frame;

fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap_or_else(|| unreachable!("seed ids are non-zero"))
}

/// Every target's seed inputs, by target name.
pub fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let transmits = warm_transmits();
    let decoded: Vec<NodeMessage> = transmits
        .iter()
        .filter_map(|b| NodeMessage::decode(b).ok())
        .collect();
    vec![
        ("node_message", node_message_seeds(transmits)),
        ("registry_command", registry_seeds()),
        ("raft_message", raft_seeds(&decoded)),
        ("session_frame", session_frame_seeds(&decoded)),
        ("frost_packages", frost_seeds()),
        ("reshare_messages", reshare_message_seeds()),
        ("dkg_session", session_op_seeds()),
        ("sign_session", session_op_seeds()),
        ("reshare_session", session_op_seeds()),
        ("node", node_seeds()),
        ("node_restore", node_restore_seeds()),
        ("ecdsa_node", ecdsa_node_seeds()),
    ]
}

/// Up to `per_group` inputs per group, in order of first appearance.
fn diverse<K: Ord>(items: Vec<(K, Vec<u8>)>, per_group: usize) -> Vec<Vec<u8>> {
    let mut count: BTreeMap<K, usize> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (k, bytes) in items {
        let n = count.entry(k).or_default();
        if *n < per_group && seen.insert(bytes.clone()) {
            *n += 1;
            out.push(bytes);
        }
    }
    out
}

fn node_message_seeds(transmits: &[Vec<u8>]) -> Vec<Vec<u8>> {
    // Grouped by message tag and, for session messages, frame kind.
    let grouped = transmits
        .iter()
        .filter_map(|b| {
            let group = match NodeMessage::decode(b).ok()? {
                NodeMessage::Session { payload, .. } => (2, payload.get(1).copied()),
                _ => (b[0], None),
            };
            Some((group, b.clone()))
        })
        .collect();
    let mut out = diverse(grouped, 2);
    let key = KeyId::new("k").unwrap_or_else(|_| unreachable!());
    let requests = [
        Request::CreateKey {
            key: key.clone(),
            scheme: Scheme::FrostP256,
            threshold: 2,
            participants: Some([pid(1), pid(3)].into()),
        },
        Request::Sign {
            key: key.clone(),
            messages: vec![b"m".to_vec(), Vec::new()],
        },
        Request::Reshare {
            key: key.clone(),
            new_threshold: Some(3),
            new_members: Some([pid(1), pid(2), pid(4)].into()),
        },
        Request::AddMember {
            id: pid(4),
            role: NodeRole::Mesh,
            address: "127.0.0.1:7004".into(),
        },
        Request::RemoveMember { id: pid(2) },
    ];
    for request in requests {
        out.push(
            NodeMessage::Forward {
                request_id: "r1".into(),
                request,
            }
            .encode(),
        );
    }
    let results = [
        Ok(Response::KeyCreated {
            key: key.clone(),
            scheme: Scheme::FrostEd25519,
            version: KeyVersion(1),
            public_key: vec![7; 32],
        }),
        Ok(Response::Signed {
            key: key.clone(),
            version: KeyVersion(1),
            signatures: vec![vec![9; 64]],
        }),
        Ok(Response::Reshared {
            key: key.clone(),
            version: KeyVersion(2),
            public_key: vec![7; 32],
        }),
        Ok(Response::MembershipChanged {
            members: [(pid(1), NodeRole::Tee), (pid(4), NodeRole::Mesh)].into(),
        }),
        Err(RequestError::BadRequest("why".into())),
        Err(RequestError::NoSuchKey(key.clone())),
        Err(RequestError::KeyExists(key.clone())),
        Err(RequestError::NotEnoughParticipants {
            needed: 3,
            available: 2,
        }),
        Err(RequestError::Failed {
            reason: "timeout".into(),
            culprits: [pid(2)].into(),
        }),
        Err(RequestError::TimedOut),
    ];
    for result in results {
        out.push(
            NodeMessage::Reply {
                request_id: "r1".into(),
                result,
            }
            .encode(),
        );
    }
    out.push(
        NodeMessage::ReshareReport {
            task: 2,
            attempt: 1,
            result: Ok(([5; 32], vec![1, 2, 3])),
        }
        .encode(),
    );
    out.push(
        NodeMessage::DkgReport {
            task: 1,
            attempt: 2,
            result: Err(("timeout".into(), [pid(3)].into())),
        }
        .encode(),
    );
    out.push(b"frost-secp256k1-tr".to_vec());
    out
}

fn raft_seeds(decoded: &[NodeMessage]) -> Vec<Vec<u8>> {
    let raft = decoded
        .iter()
        .filter_map(|m| match m {
            NodeMessage::Raft(b) => Some((b.first().copied(), b.clone())),
            _ => None,
        })
        .collect();
    let mut out = diverse(raft, 3);
    if let Some(disk) = warm_disks().values().next() {
        out.extend(disk.entries.values().take(4).map(|e| e.bytes.clone()));
    }
    let mut cs = raft::eraftpb::ConfState::default();
    cs.set_voters(vec![1, 2, 3]);
    cs.set_learners(vec![4]);
    let mut w = Writer::new();
    raft_wire::write_conf_state(&mut w, &cs);
    out.push(w.finish());
    out
}

/// The `Replicated` commands in a disk's log.
fn logged_commands() -> Vec<Vec<u8>> {
    let Some(disk) = warm_disks().values().next() else {
        return Vec::new();
    };
    disk.entries
        .values()
        .filter_map(|e| {
            let mut r = Reader::new(&e.bytes);
            let entry = raft_wire::read_entry(&mut r).ok()?;
            (!entry.get_data().is_empty()).then(|| entry.get_data().to_vec())
        })
        .collect()
}

fn registry_seeds() -> Vec<Vec<u8>> {
    let key = KeyId::new("k").unwrap_or_else(|_| unreachable!());
    let mut commands = logged_commands();
    commands.extend(
        [
            Replicated::SubmitReshare {
                request_id: "rs".into(),
                origin: pid(2),
                key: key.clone(),
                new_threshold: Some(2),
                new_members: Some([pid(1), pid(2), pid(4)].into()),
            },
            Replicated::Begin {
                task: 2,
                attempt: 1,
                participants: [pid(1), pid(2)].into(),
            },
            Replicated::CompleteReshare {
                task: 2,
                attempt: 1,
                public_key_package: vec![1; 8],
                version: KeyVersion(2),
                at_ms: 5,
            },
            Replicated::Fail {
                task: 2,
                attempt: 1,
                culprits: [pid(3)].into(),
                reason: "timeout".into(),
            },
            Replicated::ChangeMembership {
                request_id: "add".into(),
                origin: pid(1),
                change: MembershipChange::Add {
                    id: pid(4),
                    role: NodeRole::Mesh,
                    address: "127.0.0.1:7004".into(),
                },
            },
            Replicated::ChangeMembership {
                request_id: "rm".into(),
                origin: pid(1),
                change: MembershipChange::Remove { id: pid(3) },
            },
        ]
        .iter()
        .map(Replicated::encode),
    );
    let mut sequence = InputWriter::default();
    for c in &commands {
        sequence.bytes(c);
    }
    let mut out = commands;
    out.push(sequence.finish());
    out
}

fn session_frame_seeds(decoded: &[NodeMessage]) -> Vec<Vec<u8>> {
    let frames = decoded
        .iter()
        .filter_map(|m| match m {
            NodeMessage::Session { payload, .. } => {
                Some((payload.get(1).copied(), payload.clone()))
            }
            _ => None,
        })
        .collect();
    let mut out = diverse(frames, 2);
    out.push(Frame::new(0, Vec::new()).encode());
    out
}

fn frost_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    out.extend(frost_suite_seeds::<frost_ed25519::Ed25519Sha512>(0));
    out.extend(frost_suite_seeds::<frost_secp256k1::Secp256K1Sha256>(1));
    out.extend(frost_suite_seeds::<frost_p256::P256Sha256>(2));
    out.extend(frost_suite_seeds::<frost_secp256k1_tr::Secp256K1Sha256TR>(
        3,
    ));
    out
}

/// One honest encoding of each of the nine types, prefixed with the target's selector byte.
fn frost_suite_seeds<C: Ciphersuite>(suite: u8) -> Vec<Vec<u8>> {
    let mut rng = Seed::from_u64(suite.into()).rng();
    let tag = |kind: u8, bytes: Vec<u8>| {
        let mut v = vec![kind * 4 + suite];
        v.extend(bytes);
        v
    };
    let mut out = Vec::new();
    let id = |n: u16| pid(n).to_frost::<C>();
    let Ok((s1, p1)) = dkg::part1::<C, _>(id(1), 2, 2, &mut rng) else {
        return out;
    };
    let Ok((_, p2)) = dkg::part1::<C, _>(id(2), 2, 2, &mut rng) else {
        return out;
    };
    out.push(tag(0, p1.serialize().unwrap_or_default()));
    if let Ok((_, shares)) = dkg::part2(s1, &BTreeMap::from([(id(2), p2)])) {
        if let Some(share) = shares.values().next() {
            out.push(tag(1, share.serialize().unwrap_or_default()));
        }
    }
    let Ok((shares, pkp)) = frost_core::keys::generate_with_dealer::<C, _>(
        3,
        2,
        frost_core::keys::IdentifierList::Default,
        &mut rng,
    ) else {
        return out;
    };
    let kps: Vec<KeyPackage<C>> = shares
        .into_values()
        .filter_map(|s| KeyPackage::try_from(s).ok())
        .collect();
    let mut commitments = BTreeMap::new();
    let mut nonces = Vec::new();
    for kp in kps.iter().take(2) {
        let (n, c) = round1::commit(kp.signing_share(), &mut rng);
        commitments.insert(*kp.identifier(), c);
        nonces.push(n);
    }
    if let Some(c) = commitments.values().next() {
        out.push(tag(2, c.serialize().unwrap_or_default()));
    }
    let package = SigningPackage::new(commitments, b"m");
    out.push(tag(3, package.serialize().unwrap_or_default()));
    let mut sig_shares = BTreeMap::new();
    for (kp, n) in kps.iter().zip(&nonces) {
        if let Ok(s) = round2::sign(&package, n, kp) {
            sig_shares.insert(*kp.identifier(), s);
        }
    }
    if let Some(s) = sig_shares.values().next() {
        out.push(tag(4, s.serialize()));
    }
    if let Some(kp) = kps.first() {
        out.push(tag(5, kp.serialize().unwrap_or_default()));
    }
    if let Ok(sig) = frost_core::aggregate(&package, &sig_shares, &pkp) {
        out.push(tag(6, sig.serialize().unwrap_or_default()));
    }
    out.push(tag(7, pkp.verifying_key().serialize().unwrap_or_default()));
    out.push(tag(8, pkp.serialize().unwrap_or_default()));
    out
}

fn reshare_message_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for suite in 0..4u8 {
        for (round, sender, bytes) in reshare_probe_messages(suite) {
            // Sender index among the sessions {1,2,3,4} (and the outsider at 4).
            let sel = suite | ((round - 1) << 2) | ((sender.get() as u8 - 1) << 4);
            let mut v = vec![sel];
            v.extend(bytes);
            out.push(v);
        }
    }
    out
}

/// For the three session targets: the honest run of every configuration byte, and a few
/// perturbed runs (drop, tamper, inject, replay, timeouts) of the first ones.
fn session_op_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..16u8).map(|cfg| vec![cfg]).collect();
    for cfg in [0u8, 5, 10] {
        out.push(vec![cfg, 0, 3, 1, 0]); // deliver #3, drop the first
        out.push(vec![cfg, 0, 0, 3, 0, 0, 40, 1]); // tamper with byte 40 of #0
        out.push(vec![cfg, 2, 1, 0, 1, 5, 0, 2]); // duplicate, deliver, replay to another
        out.push(vec![cfg, 6, 0x03, 0xe8, 6, 0x13, 0x88]); // 1 s, then 5 s more
        let mut w = InputWriter::default();
        w.u8(cfg).u8(4).u8(0).u8(1).bytes(&[1, 20, 0, 0]);
        out.push(w.finish());
    }
    out
}

fn node_seeds() -> Vec<Vec<u8>> {
    let steps = |w: &mut InputWriter, n: usize| {
        for _ in 0..n {
            w.u8(0).u8(31);
        }
    };
    let mut out = vec![vec![0], vec![1]];
    // Fresh cluster: elect, then create a key at node 2.
    let mut w = InputWriter::default();
    w.u8(0);
    steps(&mut w, 8);
    w.u8(6).u8(1).u8(0).u8(1).u8(0).u8(1).u8(2).u8(0);
    steps(&mut w, 8);
    out.push(w.finish());
    // Warm: sign, reshare, add and remove members, with a crash and held acknowledgements.
    let mut w = InputWriter::default();
    w.u8(1);
    steps(&mut w, 4);
    w.u8(6).u8(0).u8(1).u8(2).u8(0).u8(2);
    steps(&mut w, 4);
    w.u8(6).u8(1).u8(2).u8(3).u8(0).u8(3).u8(0b0001_1110);
    steps(&mut w, 4);
    w.u8(10).u8(2);
    steps(&mut w, 4);
    w.u8(9).u8(1).u8(10).u8(2);
    steps(&mut w, 4);
    w.u8(6).u8(0).u8(3).u8(4).u8(4).u8(0).u8(9);
    steps(&mut w, 4);
    w.u8(6).u8(2).u8(4).u8(4).u8(3);
    steps(&mut w, 4);
    out.push(w.finish());
    // Warm: faults on the wire.
    let mut w = InputWriter::default();
    w.u8(1).u8(6).u8(0).u8(1).u8(5).u8(0).u8(2);
    w.u8(0)
        .u8(3)
        .u8(2)
        .u8(0)
        .u8(3)
        .u8(1)
        .u8(4)
        .u8(0)
        .u16(30)
        .u8(0x40);
    w.u8(11).u8(0).u8(1).u8(7).u16(1500).u8(8).u8(0).u8(1).u8(0);
    if let Some(m) = warm_transmits().first() {
        w.u8(5).u8(1).u8(0).bytes(m);
    }
    steps(&mut w, 6);
    out.push(w.finish());
    out
}

fn node_restore_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = warm_disks().values().take(2).map(restore_input).collect();
    // A short log from well-formed entries (flag 0: type, index, term, data), with a gap-free
    // hard state.
    let commands = logged_commands();
    let first = commands.first().map_or(&[][..], Vec::as_slice);
    let mut w = InputWriter::default();
    w.u8(1).u8(1).u8(1).u8(2).u8(2);
    for (i, data) in [(1u8, &[][..]), (2, first)] {
        w.u8(0).u8(i).u8(1).u8(0).u8(i).u8(1).bytes(data);
    }
    w.u8(0).u8(0);
    out.push(w.finish());
    out
}

/// A disk in the format `node_restore` reads (entries as raw stored bytes).
fn restore_input(disk: &Disk) -> Vec<u8> {
    let small = |v: u64| u8::try_from(v).unwrap_or(u8::MAX);
    let mut w = InputWriter::default();
    match disk.hard_state {
        Some(h) => w
            .u8(1)
            .u8(small(h.term))
            .u8(small(h.vote))
            .u8(small(h.commit)),
        None => w.u8(0),
    };
    let entries: Vec<_> = disk.entries.values().take(16).collect();
    w.u8(entries.len() as u8);
    for e in entries {
        w.u8(1).u8(small(e.index)).u8(small(e.term)).bytes(&e.bytes);
    }
    let origins: Vec<_> = disk
        .records
        .get("share-origin")
        .into_iter()
        .flatten()
        .take(4)
        .collect();
    w.u8(origins.len() as u8);
    for (k, v) in origins {
        w.bytes(k).bytes(v);
    }
    let shares: Vec<_> = disk.shares.iter().take(2).collect();
    w.u8(shares.len() as u8);
    for ((_, v), s) in shares {
        w.u8(u8::try_from(v.0).unwrap_or(u8::MAX)).bytes(s.expose());
    }
    w.finish()
}

/// A stored presignature-shaped blob (garbage values), then signer messages of every outer kind
/// to the coordinator: a run message, a result with wrong signatures, an abort, a timeout.
fn ecdsa_node_seeds() -> Vec<Vec<u8>> {
    let run = Frame::new(4, vec![0u16.to_be_bytes().to_vec(), vec![1, 2, 3]]).encode();
    let result = Frame::new(5, vec![vec![1; 65], vec![2; 65]]).encode();
    let abort = Frame::new(6, vec![]).encode();
    let mut out = Vec::new();
    for curve in 0..2u8 {
        let mut w = InputWriter::default();
        w.u8(curve).bytes(&[1, 16 + curve, 0, 1]);
        w.u8(0).bytes(&run);
        w.u8(1).bytes(&result);
        w.u8(0).bytes(&abort);
        w.u8(3).u8(50);
        out.push(w.finish());
    }
    out
}
