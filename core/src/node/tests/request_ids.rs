//! Issue 16, item 8: a request id is bound to what the request asks for. A retry (same id,
//! same content) gets the first answer; another request reusing the id is refused and never
//! gets the first request's signatures or key.

use super::*;

fn is_id_reused(r: &Result<Response, RequestError>) -> bool {
    matches!(r, Err(RequestError::BadRequest(why)) if why.contains("already used for another request"))
}

#[test]
fn a_request_id_reused_with_other_content_is_refused_everywhere() {
    let scheme = Scheme::FrostSecp256k1;
    let mut c = Cluster::new(3, 371, |cfg| cfg.rotation_interval = Duration::ZERO);
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let f = follower(&c);
    let pk = created_public_key(create(&mut c, f, "c1", "k", scheme, 2));
    let key = KeyId::new("k").unwrap();
    assert!(c.run_until(20_000, |c| c
        .nodes
        .values()
        .all(|n| n.registry().keys.contains_key(&key))));

    // Signed once; the same id with other messages, at the same node and at the leader.
    let sign = |messages: Vec<Vec<u8>>| Request::Sign {
        key: key.clone(),
        messages,
    };
    c.client(f, "s1", sign(vec![b"pay alice 10".to_vec()]));
    let Ok(Response::Signed { signatures, .. }) = c.await_answer(f, "s1") else {
        panic!("signing failed");
    };
    assert!(verify(scheme, &pk, b"pay alice 10", &signatures[0]));
    for at in [f, l] {
        let rid = "s1";
        let before = c.answers(at, rid).len();
        c.client(at, rid, sign(vec![b"pay mallory 1000".to_vec()]));
        assert!(c.run_until(20_000, |c| c.answers(at, rid).len() > before));
        let answer = c.answers(at, rid)[before].clone();
        assert!(is_id_reused(&answer), "at {at}: {answer:?}");
    }
    // A true retry still gets the first answer.
    c.client(l, "s1", sign(vec![b"pay alice 10".to_vec()]));
    assert!(c.run_until(20_000, |c| c.answers(l, "s1").len() == 2));
    assert_eq!(
        c.answers(l, "s1")[1],
        Ok(Response::Signed {
            key: key.clone(),
            version: KeyVersion(1),
            signatures: signatures.clone()
        })
    );

    // Two requests with one id in flight at once at two nodes: the second is refused, and only
    // the first's messages are signed.
    let other = *c.nodes.keys().find(|p| **p != f && **p != l).unwrap();
    c.client(f, "s2", sign(vec![b"first".to_vec()]));
    c.client(other, "s2", sign(vec![b"second".to_vec()]));
    assert!(c.run_until(60_000, |c| !c.answers(f, "s2").is_empty()
        && !c.answers(other, "s2").is_empty()));
    let Ok(Response::Signed { signatures, .. }) = c.answers(f, "s2")[0].clone() else {
        panic!("first s2 failed: {:?}", c.answers(f, "s2"));
    };
    assert!(verify(scheme, &pk, b"first", &signatures[0]));
    assert!(
        is_id_reused(&c.answers(other, "s2")[0]),
        "{:?}",
        c.answers(other, "s2")
    );

    // A key creation id reused for another key: refused, and the other key is not created.
    c.client(
        l,
        "c1",
        Request::CreateKey {
            key: KeyId::new("k2").unwrap(),
            scheme,
            threshold: 2,
            participants: None,
        },
    );
    assert!(c.run_until(20_000, |c| !c.answers(l, "c1").is_empty()));
    assert!(
        is_id_reused(&c.answers(l, "c1")[0]),
        "{:?}",
        c.answers(l, "c1")
    );
    assert!(!c.nodes[&l]
        .registry()
        .keys
        .contains_key(&KeyId::new("k2").unwrap()));
}

/// Two key creations with one id and different keys reach the leader before the first commits:
/// the second client is never told the first's key was created for it.
#[test]
fn a_waiting_request_never_gets_the_answer_of_another_request_with_its_id() {
    let scheme = Scheme::FrostEd25519;
    let mut c = Cluster::new(3, 373, |cfg| cfg.rotation_interval = Duration::ZERO);
    assert!(c.run_until(30_000, |c| c.leader().is_some()));
    let l = c.leader().unwrap();
    let f = follower(&c);
    let create = |key: &str| Request::CreateKey {
        key: KeyId::new(key).unwrap(),
        scheme,
        threshold: 2,
        participants: None,
    };
    c.client(l, "same-id", create("first"));
    c.client(f, "same-id", create("second"));
    assert!(c.run_until(60_000, |c| !c.answers(l, "same-id").is_empty()));
    assert!(matches!(
        c.answers(l, "same-id")[0],
        Ok(Response::KeyCreated { ref key, .. }) if key.as_str() == "first"
    ));
    assert!(c.run_until(60_000, |c| !c.answers(f, "same-id").is_empty()));
    let answer = c.answers(f, "same-id")[0].clone();
    assert!(is_id_reused(&answer), "the second client got {answer:?}");
}
