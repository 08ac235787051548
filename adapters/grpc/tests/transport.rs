//! The peer transport on loopback: one stream per pair, both directions, reconnection,
//! back-pressure, membership changes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use keyshard_grpc::SendError;

/// Collects `n` frames from `node` (bounded wait per frame).
fn collect(node: &mut TestNode, n: usize) -> Vec<(u16, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let (from, payload) = node
                .recv(WAIT)
                .unwrap_or_else(|| panic!("node {} got only {i} of {n} frames", node.id));
            (from.get(), payload)
        })
        .collect()
}

#[test]
fn three_nodes_exchange_frames_both_ways_over_one_stream_per_pair() {
    let pki = Pki::new();
    let ls = listeners(3);
    let peers = addr_map(&[1, 2, 3], &ls);
    let mut nodes: Vec<TestNode> = ls
        .into_iter()
        .zip(1..)
        .map(|(l, id)| TestNode::start(&pki, id, l, peers.clone(), |_| {}))
        .collect();

    // Every stream is up: node 1 dials 2 and 3, node 2 dials 3.
    eventually("all pairs connected", || {
        nodes
            .iter()
            .all(|n| n.transport.stats().values().all(|s| s.connected))
    });

    for round in 0..5u8 {
        for n in &nodes {
            for to in [1u16, 2, 3] {
                if to != n.id.get() {
                    n.send(to, vec![n.id.get() as u8, to as u8, round]);
                }
            }
        }
    }
    for n in &mut nodes {
        let me = n.id.get() as u8;
        let got = collect(n, 10);
        // Per sender, frames arrive in order, each labelled with the authenticated sender.
        for from in [1u16, 2, 3].into_iter().filter(|&f| f as u8 != me) {
            let rounds: Vec<u8> = got
                .iter()
                .filter(|(f, _)| *f == from)
                .map(|(_, p)| {
                    assert_eq!(&p[..2], &[from as u8, me]);
                    p[2]
                })
                .collect();
            assert_eq!(rounds, vec![0, 1, 2, 3, 4], "node {me} from {from}");
        }
        assert!(n.recv(Duration::from_millis(50)).is_none());
    }

    // Exactly one stream per pair, seen from both ends.
    for n in &nodes {
        for (peer, s) in n.transport.stats() {
            assert_eq!(s.connects, 1, "node {} peer {peer}: {s:?}", n.id);
            assert_eq!(
                (s.sent, s.received, s.dropped, s.queued, s.queued_bytes),
                (5, 5, 0, 0, 0)
            );
        }
    }
    assert!(nodes.iter().all(|n| n.audit.events().is_empty()));
}

#[test]
fn a_restarted_peer_is_reconnected_in_both_roles() {
    let pki = Pki::new();
    let ls = listeners(2);
    let peers = addr_map(&[1, 2], &ls);
    let addrs: Vec<String> = peers.values().cloned().collect();
    let mut it = ls.into_iter();
    let mut one = TestNode::start(&pki, 1, it.next().unwrap(), peers.clone(), |_| {});
    let mut two = TestNode::start(&pki, 2, it.next().unwrap(), peers.clone(), |_| {});

    one.send(2, b"hello 2".to_vec());
    assert_eq!(two.recv(WAIT), Some((pid(1), b"hello 2".to_vec())));
    two.send(1, b"hello 1".to_vec());
    assert_eq!(one.recv(WAIT), Some((pid(2), b"hello 1".to_vec())));

    // The accepting node (2) crashes and comes back on the same port.
    two.kill();
    eventually("node 1 notices", || {
        !one.transport.stats()[&pid(2)].connected
    });
    drop(two);
    let l = std::net::TcpListener::bind(&addrs[1]).unwrap();
    let mut two = TestNode::start(&pki, 2, l, peers.clone(), |_| {});
    eventually("node 1 redials", || {
        one.transport.stats()[&pid(2)].connected
    });
    assert!(one.transport.stats()[&pid(2)].connects >= 2);
    one.send(2, b"after restart".to_vec());
    assert_eq!(two.recv(WAIT), Some((pid(1), b"after restart".to_vec())));
    two.send(1, b"back".to_vec());
    assert_eq!(one.recv(WAIT), Some((pid(2), b"back".to_vec())));

    // The dialing node (1) crashes and comes back: node 2 takes its new stream.
    one.kill();
    drop(one);
    let l = std::net::TcpListener::bind(&addrs[0]).unwrap();
    let mut one = TestNode::start(&pki, 1, l, peers.clone(), |_| {});
    eventually("node 1 reconnected", || {
        one.transport.stats()[&pid(2)].connected
    });
    two.send(1, b"to the new 1".to_vec());
    assert_eq!(one.recv(WAIT), Some((pid(2), b"to the new 1".to_vec())));
    one.send(2, b"from the new 1".to_vec());
    assert_eq!(two.recv(WAIT), Some((pid(1), b"from the new 1".to_vec())));
    eventually("one live stream at node 2", || {
        let s = &two.transport.stats()[&pid(1)];
        s.connected && s.connects == 2
    });

    // Node 2 moves to another port; node 1 is told and follows.
    two.kill();
    drop(two);
    eventually("node 1 notices again", || {
        !one.transport.stats()[&pid(2)].connected
    });
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut moved = peers.clone();
    moved.insert(pid(2), l.local_addr().unwrap().to_string());
    let mut two = TestNode::start(&pki, 2, l, moved.clone(), |_| {});
    one.transport.set_peers(moved.clone());
    assert_eq!(one.transport.peers()[&pid(2)], moved[&pid(2)]);
    eventually("node 1 dials the new address", || {
        one.transport.stats()[&pid(2)].connected
    });
    one.send(2, b"found you".to_vec());
    assert_eq!(two.recv(WAIT), Some((pid(1), b"found you".to_vec())));
}

#[test]
fn a_peer_that_never_reads_blocks_nobody_and_its_queue_stays_bounded() {
    let pki = Pki::new();
    let ls = listeners(3);
    let peers = addr_map(&[1, 2, 3], &ls);
    let mut it = ls.into_iter();
    const QUEUE: usize = 8;
    const QUEUE_BYTES: usize = 1024 * 1024;
    let tune = |c: &mut keyshard_grpc::PeerConfig| {
        c.queue_capacity = QUEUE;
        c.queue_bytes = QUEUE_BYTES;
        c.max_frame_bytes = 512 * 1024;
        c.inbound_capacity = 4;
    };
    let one = TestNode::start(&pki, 1, it.next().unwrap(), peers.clone(), tune);
    let mut two = TestNode::start(&pki, 2, it.next().unwrap(), peers.clone(), tune);
    // Node 3's owner never reads its inbound channel.
    let three = TestNode::start(&pki, 3, it.next().unwrap(), peers.clone(), tune);
    eventually("node 1 connected", || {
        one.transport.stats().values().all(|s| s.connected)
    });

    // Flood node 3 with 64 MiB in 256 KiB frames; every send returns at once.
    let big = vec![0xAB; 256 * 1024];
    let mut full = 0;
    for _ in 0..256 {
        match one.transport.try_send(pid(3), big.clone()) {
            Ok(()) => {}
            Err(SendError::QueueFull(p)) => {
                assert_eq!(p, pid(3));
                full += 1;
            }
            Err(e) => panic!("{e}"),
        }
        let s = &one.transport.stats()[&pid(3)];
        // 256 KiB frames: the byte budget (1 MiB) binds before the count (8).
        assert!(s.queued <= 4 && s.queued_bytes <= QUEUE_BYTES, "{s:?}");
    }
    assert!(full > 0, "the stalled peer's queue never filled");

    // Node 2 is served meanwhile: each frame arrives while node 3 stays stuck.
    for i in 0..200u32 {
        one.send(2, i.to_le_bytes().to_vec());
        assert_eq!(two.recv(WAIT), Some((pid(1), i.to_le_bytes().to_vec())));
    }
    let s3 = one.transport.stats()[&pid(3)].clone();
    assert_eq!(s3.dropped, full);
    assert!(
        s3.queued <= 4 && s3.queued_bytes == s3.queued * big.len(),
        "{s3:?}"
    );
    let s2 = one.transport.stats()[&pid(2)].clone();
    assert_eq!(s2.dropped, 0);
    drop(three);
}

#[test]
fn membership_changes_add_and_remove_peers() {
    let pki = Pki::new();
    let ls = listeners(3);
    let all = addr_map(&[1, 2, 3], &ls);
    let mut it = ls.into_iter();
    let only = |ids: &[u16]| -> BTreeMap<_, _> {
        all.iter()
            .filter(|(k, _)| ids.contains(&k.get()))
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    };
    // Node 1 knows 2; node 2 does not know node 1 yet; node 3 knows everyone.
    let one = TestNode::start(&pki, 1, it.next().unwrap(), only(&[1, 2]), |_| {});
    let mut two = TestNode::start(&pki, 2, it.next().unwrap(), only(&[2, 3]), |_| {});
    let mut three = TestNode::start(&pki, 3, it.next().unwrap(), all.clone(), |_| {});

    // Node 2 refuses node 1's stream (not a member) and audits it.
    eventually("node 2 audited node 1", || {
        two.audit.events().iter().any(|e| {
            matches!(e, keyshard_grpc::SecurityEvent::PeerRejected { who, reason }
                if *who == node(1) && reason.contains("node 1 is not a member"))
        })
    });
    assert!(!one.transport.stats()[&pid(2)].connected);
    assert_eq!(
        two.transport.try_send(pid(1), vec![1]),
        Err(SendError::UnknownPeer(pid(1)))
    );

    // Node 2 learns about node 1: the redial is accepted.
    two.transport.set_peers(all.clone());
    eventually("1-2 connected", || {
        one.transport.stats()[&pid(2)].connected && two.transport.stats()[&pid(1)].connected
    });
    two.send(1, b"welcome".to_vec());
    let mut one = one;
    assert_eq!(one.recv(WAIT), Some((pid(2), b"welcome".to_vec())));

    // Node 1 learns about node 3 (from this non-runtime thread) and dials it.
    one.transport.set_peers(all.clone());
    eventually("1-3 connected", || one.transport.stats()[&pid(3)].connected);
    one.send(3, b"hi 3".to_vec());
    assert_eq!(three.recv(WAIT), Some((pid(1), b"hi 3".to_vec())));

    // Node 3 removes node 1: its stream ends, sends fail, node 1's redials are refused.
    let before = three.audit.events().len();
    three.transport.set_peers(only(&[2, 3]));
    assert_eq!(
        three.transport.try_send(pid(1), vec![1]),
        Err(SendError::UnknownPeer(pid(1)))
    );
    assert_eq!(
        three
            .transport
            .peers()
            .keys()
            .copied()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([pid(2)])
    );
    eventually("node 3 refuses node 1", || {
        three.audit.events().len() > before
    });
    one.send(2, b"still fine".to_vec());
    assert_eq!(two.recv(WAIT), Some((pid(1), b"still fine".to_vec())));
    assert!(three.recv(Duration::from_millis(50)).is_none());

    // A frame over the limit is refused before queueing.
    let max = keyshard_core::node::wire::MAX_MESSAGE;
    assert_eq!(
        one.transport.try_send(pid(2), vec![0; max + 1]),
        Err(SendError::TooLarge { len: max + 1, max })
    );
}

#[test]
fn a_graceful_shutdown_ends_live_peer_streams_and_returns() {
    let pki = Pki::new();
    let ls = listeners(2);
    let peers = addr_map(&[1, 2], &ls);
    let mut it = ls.into_iter();
    let one = TestNode::start(&pki, 1, it.next().unwrap(), peers.clone(), |_| {});
    let mut two = TestNode::start(&pki, 2, it.next().unwrap(), peers.clone(), |_| {});
    eventually("connected", || one.transport.stats()[&pid(2)].connected);

    // Node 2 holds an accepted, long-lived stream from node 1; shutdown still completes.
    two.stop_gracefully().unwrap();
    eventually("node 1 sees the stream end", || {
        !one.transport.stats()[&pid(2)].connected
    });
    assert!(!two.transport.stats()[&pid(1)].connected);
    // Node 1 keeps trying (and failing) to redial in the background; its sends just queue.
    one.send(2, vec![1]);
    assert_eq!(one.transport.stats()[&pid(2)].queued, 1);
}
