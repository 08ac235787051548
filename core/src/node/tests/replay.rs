//! Issue 16, item 1: a leader that replays a finished signing or presigning start gets no
//! second use of any signer's nonces: the start is refused while the signer remembers the run,
//! and after a restart (when it does not) the signer's randomness is new anyway.

use super::*;

/// What crossed the wire during one honest signing request.
struct HonestRun {
    leader: ParticipantId,
    /// The leader's start to `follower`.
    start: SignStart,
    follower: ParticipantId,
    /// The follower's first session payload of that run (its nonce commitments).
    first_payload: Vec<u8>,
    signature: Vec<u8>,
}

fn sign_watching(c: &mut Cluster, key: &KeyId, rid: &str, message: &[u8]) -> HonestRun {
    assert!(c.run_until(20_000, |c| c
        .nodes
        .values()
        .all(|n| n.registry().keys.contains_key(key))));
    let l = c.leader().expect("a leader");
    c.client(
        l,
        rid,
        Request::Sign {
            key: key.clone(),
            messages: vec![message.to_vec()],
        },
    );
    let mut seen = 0u64;
    let mut start: Option<(ParticipantId, SignStart)> = None;
    let mut first: Option<Vec<u8>> = None;
    let end = c.now.as_millis() + 300_000;
    while c.answers(l, rid).is_empty() && c.now.as_millis() < end {
        for m in c.queue.iter().filter(|m| m.seq > seen) {
            match NodeMessage::decode(&m.bytes) {
                Ok(NodeMessage::SignStart(s)) if m.from == l && start.is_none() => {
                    start = Some((m.to, s))
                }
                Ok(NodeMessage::Session { key: k, payload })
                    if first.is_none()
                        && start
                            .as_ref()
                            .is_some_and(|(f, s)| m.from == *f && k == s.session) =>
                {
                    first = Some(payload)
                }
                _ => {}
            }
        }
        seen = c.seq;
        c.step();
    }
    let Some(Ok(Response::Signed { signatures, .. })) = c.answers(l, rid).first().cloned() else {
        panic!("honest signing {rid} failed: {:?}", c.answers(l, rid));
    };
    let (follower, start) = start.expect("a SignStart to a follower");
    let session = start.session;
    assert!(c.run_until(20_000, |c| c
        .nodes
        .values()
        .all(|n| !n.sessions.contains_key(&session))));
    HonestRun {
        leader: l,
        start,
        follower,
        first_payload: first.unwrap_or_else(|| {
            panic!(
                "the follower's first session message; its events: {:?}",
                c.events.get(&follower)
            )
        }),
        signature: signatures[0].clone(),
    }
}

/// Delivers `msg` from `from` to `to` now; returns `to`'s session payloads for `session` and
/// removes them from the network (the test plays the leader).
fn deliver(
    c: &mut Cluster,
    from: ParticipantId,
    to: ParticipantId,
    msg: &NodeMessage,
    session: SessionKey,
) -> Vec<Vec<u8>> {
    let bytes = msg.encode();
    let now = c.now;
    let before = c.seq;
    c.nodes
        .get_mut(&to)
        .unwrap()
        .handle_input(Input::Message {
            at: now,
            from,
            bytes: &bytes,
        })
        .unwrap();
    c.drain(to);
    let mut out = Vec::new();
    c.queue.retain(|m| {
        if m.seq > before && m.from == to {
            if let Ok(NodeMessage::Session { key, payload }) = NodeMessage::decode(&m.bytes) {
                if key == session {
                    out.push(payload);
                    return false;
                }
            }
        }
        true
    });
    out
}

/// Crashes `id` and starts it again from its disk (the harness gives it the same boot seed,
/// the worst case: only the persisted boot count keeps its randomness new), then waits until it
/// follows `leader` again.
fn restart(c: &mut Cluster, id: ParticipantId, leader: ParticipantId) {
    c.crash(id);
    c.start(id);
    assert!(c.run_until(30_000, |c| c.nodes[&id].leader() == Some(leader)));
    assert_eq!(c.leader(), Some(leader), "the leader did not change");
}

#[test]
fn a_replayed_sign_start_is_refused_and_never_reuses_frost_nonces() {
    for (i, scheme) in [
        Scheme::FrostEd25519,
        Scheme::FrostSecp256k1,
        Scheme::FrostP256,
        Scheme::FrostSecp256k1Taproot,
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = Cluster::new(3, 300 + i as u64, |cfg| {
            cfg.rotation_interval = Duration::ZERO
        });
        assert!(c.run_until(30_000, |c| c.leader().is_some()));
        let l = c.leader().unwrap();
        let pk = created_public_key(create(&mut c, l, "c", "victim", scheme, 2));
        let key = KeyId::new("victim").unwrap();
        let run = sign_watching(&mut c, &key, "s", b"pay alice 10");
        assert!(verify(scheme, &pk, b"pay alice 10", &run.signature));
        let (l, f, session) = (run.leader, run.follower, run.start.session);

        // The same start again, with another message: refused, nothing sent.
        let refused_before = c.nodes[&f].stats.refused;
        let replay = NodeMessage::SignStart(SignStart {
            messages: vec![b"pay mallory everything".to_vec()],
            ..run.start.clone()
        });
        let out = deliver(&mut c, l, f, &replay, session);
        assert!(
            out.is_empty(),
            "{scheme:?}: the follower answered a replayed start"
        );
        assert_eq!(c.nodes[&f].stats.refused, refused_before + 1);
        // The identical start too (same messages).
        let out = deliver(
            &mut c,
            l,
            f,
            &NodeMessage::SignStart(run.start.clone()),
            session,
        );
        assert!(
            out.is_empty(),
            "{scheme:?}: the follower answered a repeated start"
        );

        // After a restart the follower no longer remembers the run id; its randomness is new,
        // even for the identical start (same messages, so the hedge alone would repeat it, and
        // the leader's own commitments may change the binding factors: a leak).
        restart(&mut c, f, l);
        let identical = NodeMessage::SignStart(run.start.clone());
        let out = deliver(&mut c, l, f, &identical, session);
        assert_eq!(
            out.len(),
            1,
            "{scheme:?}: the restarted follower commits once"
        );
        assert_ne!(
            out[0], run.first_payload,
            "{scheme:?}: the same nonce commitments after a restart"
        );
        // And a second replay in this boot is refused again.
        let out = deliver(&mut c, l, f, &replay, session);
        assert!(
            out.is_empty(),
            "{scheme:?}: a second replay after the restart was served"
        );
    }
}

#[test]
fn run_ids_count_per_term_and_never_wrap() {
    let mut c = Cluster::new(3, 311, |cfg| cfg.rotation_interval = Duration::ZERO);
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let node = c.nodes.get_mut(&l).unwrap();
    let term = node.term();
    let first = node.next_run_id().unwrap();
    assert_eq!(first, (term << 32) | 1);
    node.next_run = u64::from(u32::MAX);
    assert_eq!(node.next_run_id(), Some((term << 32) | u64::from(u32::MAX)));
    // Used up: no id that would spill into the term bits.
    assert_eq!(node.next_run_id(), None);
    assert_eq!(node.next_run_id(), None);
}

/// ECDSA (CGGMP24, interactive): a replayed start never gives a second signature with the same
/// `r` (two would give the group secret key to anyone who sees them).
#[test]
fn a_replayed_ecdsa_sign_start_never_repeats_r() {
    let scheme = Scheme::EcdsaSecp256k1;
    let mut c = Cluster::with_fixture_primes(3, 361, |cfg| {
        cfg.prime_pool_depth = 1;
        cfg.rotation_interval = Duration::ZERO;
        cfg.presignature_depth = 0;
    });
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let pk = created_public_key(create(&mut c, l, "c", "eth", scheme, 2));
    let key = KeyId::new("eth").unwrap();
    let run = sign_watching(&mut c, &key, "s", b"pay alice 10");
    assert!(verify(scheme, &pk, b"pay alice 10", &run.signature));
    let (f, session) = (run.follower, run.start.session);
    let replay = NodeMessage::SignStart(SignStart {
        messages: vec![b"pay mallory everything".to_vec()],
        ..run.start.clone()
    });
    assert!(deliver(&mut c, l, f, &replay, session).is_empty());

    // After the follower restarts, the malicious leader replays to every signer (its own node
    // included) and lets the run finish: the signature it gets has another `r`.
    restart(&mut c, f, l);
    let before = c.seq;
    for s in run.start.signers.iter().copied() {
        let bytes = replay.encode();
        let now = c.now;
        c.nodes
            .get_mut(&s)
            .unwrap()
            .handle_input(Input::Message {
                at: now,
                from: l,
                bytes: &bytes,
            })
            .unwrap();
        c.drain(s);
    }
    let mut seen = before;
    let mut second: Option<Vec<u8>> = None;
    let end = c.now.as_millis() + 300_000;
    while second.is_none() && c.now.as_millis() < end {
        for m in c.queue.iter().filter(|m| m.seq > seen) {
            if let Ok(NodeMessage::Session { key: k, payload }) = NodeMessage::decode(&m.bytes) {
                if k == session && m.to == l && m.from != l {
                    if let Ok(frame) = crate::session::Frame::decode(&payload) {
                        // The signer's last message carries the full signature (r || s || v).
                        if frame.fields.first().is_some_and(|f| f.len() == 65)
                            && verify(scheme, &pk, b"pay mallory everything", &frame.fields[0])
                        {
                            second = Some(frame.fields[0].clone());
                        }
                    }
                }
            }
        }
        seen = c.seq;
        c.step();
    }
    let second = second.expect("the replayed run after the restart signs (the attacker's view)");
    assert_ne!(
        run.signature[..32],
        second[..32],
        "the same r under one key"
    );
}

/// A replayed `PresignStart` is refused, also naming the key's next version after a refresh;
/// after a restart the signer's presigning randomness is new (no repeated Γ_i / R).
#[test]
fn a_replayed_presign_start_is_refused_and_never_repeats_its_nonce() {
    let mut c = Cluster::with_fixture_primes(3, 367, |cfg| {
        cfg.prime_pool_depth = 1;
        cfg.rotation_interval = Duration::ZERO;
        cfg.presignature_depth = 1;
    });
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    created_public_key(create(&mut c, l, "c", "eth", Scheme::EcdsaSecp256k1, 2));
    let key = KeyId::new("eth").unwrap();
    // Watch the first presigning run: the leader's start to a follower and its first answer.
    let mut seen = 0u64;
    let mut start: Option<(ParticipantId, NodeMessage, SessionKey)> = None;
    let mut first: Option<Vec<u8>> = None;
    let end = c.now.as_millis() + 300_000;
    while c.nodes[&l].presignatures_ready(&key) == 0 && c.now.as_millis() < end {
        for m in c.queue.iter().filter(|m| m.seq > seen) {
            match NodeMessage::decode(&m.bytes) {
                Ok(msg @ NodeMessage::PresignStart { session, .. })
                    if m.from == l && start.is_none() =>
                {
                    start = Some((m.to, msg, session))
                }
                Ok(NodeMessage::Session { key: k, payload })
                    if first.is_none()
                        && start
                            .as_ref()
                            .is_some_and(|(f, _, s)| m.from == *f && k == *s) =>
                {
                    first = Some(payload)
                }
                _ => {}
            }
        }
        seen = c.seq;
        c.step();
    }
    assert_eq!(c.nodes[&l].presignatures_ready(&key), 1);
    let (f, start, session) = start.expect("a PresignStart to a follower");
    let first = first.expect("the follower's first presigning message");
    assert!(
        deliver(&mut c, l, f, &start, session).is_empty(),
        "replay served"
    );

    // Across a refresh: the same run id naming version 2 is refused too.
    let Ok(Response::Reshared { version, .. }) = reshare(&mut c, l, "r", "eth", None, None) else {
        panic!("refresh failed");
    };
    assert_eq!(version, KeyVersion(2));
    assert!(all_at_version(&mut c, &key, KeyVersion(2)));
    let NodeMessage::PresignStart {
        session: s,
        key: k,
        signers,
        ..
    } = start.clone()
    else {
        unreachable!()
    };
    let refreshed = NodeMessage::PresignStart {
        session: s,
        key: k,
        version: KeyVersion(2),
        signers,
    };
    assert_eq!(c.leader(), Some(l), "the leader did not change");
    assert!(
        deliver(&mut c, l, f, &refreshed, session).is_empty(),
        "replay served"
    );
    // After a restart the run id is forgotten, the randomness is not reused.
    restart(&mut c, f, l);
    let out = deliver(&mut c, l, f, &refreshed, session);
    assert!(!out.is_empty(), "the restarted signer runs the (new) start");
    assert!(
        out.iter().all(|p| *p != first),
        "the same first message after a restart"
    );
}
