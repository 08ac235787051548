//! Raft messages on the wire in the project's own encoding.
//!
//! raft-rs speaks rust-protobuf 2.28 messages; decoding those from a peer is exposed to
//! RUSTSEC-2024-0437 (stack overflow on deeply nested input). We never feed peer bytes to
//! rust-protobuf: every field of `eraftpb::Message` is written and read with [`crate::codec`],
//! with bounded counts and sizes, so a hostile peer can at worst be refused.

use raft::eraftpb::{
    ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata,
};

use crate::codec::{DecodeError, Reader, Writer};

/// The most entries one append message carries (raft's `max_size_per_msg` keeps honest ones
/// far below this).
pub const MAX_ENTRIES: usize = 4096;
/// The largest entry or snapshot payload accepted.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;
const MAX_IDS: usize = 1024;

fn msg_type_tag(t: MessageType) -> u8 {
    match t {
        MessageType::MsgHup => 0,
        MessageType::MsgBeat => 1,
        MessageType::MsgPropose => 2,
        MessageType::MsgAppend => 3,
        MessageType::MsgAppendResponse => 4,
        MessageType::MsgRequestVote => 5,
        MessageType::MsgRequestVoteResponse => 6,
        MessageType::MsgSnapshot => 7,
        MessageType::MsgHeartbeat => 8,
        MessageType::MsgHeartbeatResponse => 9,
        MessageType::MsgUnreachable => 10,
        MessageType::MsgSnapStatus => 11,
        MessageType::MsgCheckQuorum => 12,
        MessageType::MsgTransferLeader => 13,
        MessageType::MsgTimeoutNow => 14,
        MessageType::MsgReadIndex => 15,
        MessageType::MsgReadIndexResp => 16,
        MessageType::MsgRequestPreVote => 17,
        MessageType::MsgRequestPreVoteResponse => 18,
    }
}

/// Only the message types that legitimately travel between nodes are accepted from the wire;
/// local ones (hup, beat, propose, unreachable, snapshot status, check quorum) are refused.
fn msg_type_from_tag(tag: u8) -> Result<MessageType, DecodeError> {
    Ok(match tag {
        3 => MessageType::MsgAppend,
        4 => MessageType::MsgAppendResponse,
        5 => MessageType::MsgRequestVote,
        6 => MessageType::MsgRequestVoteResponse,
        7 => MessageType::MsgSnapshot,
        8 => MessageType::MsgHeartbeat,
        9 => MessageType::MsgHeartbeatResponse,
        13 => MessageType::MsgTransferLeader,
        14 => MessageType::MsgTimeoutNow,
        15 => MessageType::MsgReadIndex,
        16 => MessageType::MsgReadIndexResp,
        17 => MessageType::MsgRequestPreVote,
        18 => MessageType::MsgRequestPreVoteResponse,
        tag => {
            return Err(DecodeError::BadTag {
                what: "raft message type",
                tag,
            })
        }
    })
}

fn entry_type_tag(t: EntryType) -> u8 {
    match t {
        EntryType::EntryNormal => 0,
        EntryType::EntryConfChange => 1,
        EntryType::EntryConfChangeV2 => 2,
    }
}

fn entry_type_from_tag(tag: u8) -> Result<EntryType, DecodeError> {
    Ok(match tag {
        0 => EntryType::EntryNormal,
        1 => EntryType::EntryConfChange,
        2 => EntryType::EntryConfChangeV2,
        tag => {
            return Err(DecodeError::BadTag {
                what: "raft entry type",
                tag,
            })
        }
    })
}

/// Encodes one entry (also the log's storage encoding).
pub fn write_entry(w: &mut Writer, e: &Entry) {
    w.u8(entry_type_tag(e.get_entry_type()))
        .u64(e.get_term())
        .u64(e.get_index())
        .bytes(e.get_data())
        .bytes(e.get_context())
        .bool(e.get_sync_log());
}

/// Decodes one entry.
pub fn read_entry(r: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    let mut e = Entry::default();
    e.set_entry_type(entry_type_from_tag(r.u8("entry type")?)?);
    e.set_term(r.u64("entry term")?);
    e.set_index(r.u64("entry index")?);
    e.set_data(r.bytes("entry data", MAX_PAYLOAD)?.into());
    e.set_context(r.bytes("entry context", MAX_PAYLOAD)?.into());
    e.set_sync_log(r.bool("entry sync_log")?);
    Ok(e)
}

/// Encodes a conf state.
pub fn write_conf_state(w: &mut Writer, c: &ConfState) {
    for ids in [
        c.get_voters(),
        c.get_learners(),
        c.get_voters_outgoing(),
        c.get_learners_next(),
    ] {
        w.count(ids.len());
        for id in ids {
            w.u64(*id);
        }
    }
    w.bool(c.get_auto_leave());
}

/// Decodes a conf state.
pub fn read_conf_state(r: &mut Reader<'_>) -> Result<ConfState, DecodeError> {
    let mut lists: [Vec<u64>; 4] = Default::default();
    for list in &mut lists {
        let n = r.count("conf state ids", MAX_IDS, 8)?;
        for _ in 0..n {
            list.push(r.u64("conf state id")?);
        }
    }
    let [voters, learners, voters_outgoing, learners_next] = lists;
    let mut c = ConfState::default();
    c.set_voters(voters);
    c.set_learners(learners);
    c.set_voters_outgoing(voters_outgoing);
    c.set_learners_next(learners_next);
    c.set_auto_leave(r.bool("auto_leave")?);
    Ok(c)
}

fn write_snapshot(w: &mut Writer, s: &Snapshot) {
    w.bytes(s.get_data());
    let m = s.get_metadata();
    write_conf_state(w, m.get_conf_state());
    w.u64(m.get_index()).u64(m.get_term());
}

fn read_snapshot(r: &mut Reader<'_>) -> Result<Snapshot, DecodeError> {
    let mut s = Snapshot::default();
    s.set_data(r.bytes("snapshot data", MAX_PAYLOAD)?.into());
    let mut m = SnapshotMetadata::default();
    m.set_conf_state(read_conf_state(r)?);
    m.set_index(r.u64("snapshot index")?);
    m.set_term(r.u64("snapshot term")?);
    s.set_metadata(m);
    Ok(s)
}

/// Encodes a raft message for the wire.
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(msg_type_tag(m.get_msg_type()))
        .u64(m.get_to())
        .u64(m.get_from())
        .u64(m.get_term())
        .u64(m.get_log_term())
        .u64(m.get_index())
        .u64(m.get_commit())
        .u64(m.get_commit_term())
        .u64(m.get_request_snapshot())
        .bool(m.get_reject())
        .u64(m.get_reject_hint())
        .bytes(m.get_context())
        .i64(m.get_priority());
    w.count(m.get_entries().len());
    for e in m.get_entries() {
        write_entry(&mut w, e);
    }
    w.bool(m.has_snapshot());
    if m.has_snapshot() {
        write_snapshot(&mut w, m.get_snapshot());
    }
    w.finish()
}

/// Decodes a raft message from untrusted bytes. The caller must still check that `from` is the
/// authenticated sender and `to` is this node.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut m = Message::default();
    m.set_msg_type(msg_type_from_tag(r.u8("raft message type")?)?);
    m.set_to(r.u64("to")?);
    m.set_from(r.u64("from")?);
    m.set_term(r.u64("term")?);
    m.set_log_term(r.u64("log_term")?);
    m.set_index(r.u64("index")?);
    m.set_commit(r.u64("commit")?);
    m.set_commit_term(r.u64("commit_term")?);
    m.set_request_snapshot(r.u64("request_snapshot")?);
    m.set_reject(r.bool("reject")?);
    m.set_reject_hint(r.u64("reject_hint")?);
    m.set_context(r.bytes("context", MAX_PAYLOAD)?.into());
    m.set_priority(r.i64("priority")?);
    // An entry takes at least 26 bytes (type, term, index, two empty byte strings, sync flag);
    // 27 here refused honest appends of several empty entries (found by the `node` fuzz target).
    let n = r.count("entries", MAX_ENTRIES, 26)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push(read_entry(&mut r)?);
    }
    m.set_entries(entries.into());
    if r.bool("has snapshot")? {
        m.set_snapshot(read_snapshot(&mut r)?);
    }
    r.finish()?;
    Ok(m)
}

/// Checks a decoded peer message against this node's Raft state before raft-rs sees it.
///
/// raft-rs trusts its peers (Raft tolerates crashes, not lies) and panics on some inconsistent
/// input (e.g. a heartbeat committing past the end of the log: `to_commit is out of range`, found
/// by the `node` fuzz target). A peer's bytes must never crash a node, so what no honest peer of
/// this build sends is refused here:
/// - a message from this node itself, or without a term (only local messages have none);
/// - snapshots (this build never compacts its log, so it never sends one), leader-transfer
///   requests (a leader asks raft-rs locally, never over the wire) and read-index traffic (not
///   used): raft-rs panics when a follower forwards one that carries a term;
///
/// and, for messages of the current or a later term (raft-rs looks at no other's content):
///
/// - a heartbeat whose commit index is past this node's last entry (an honest leader sends at
///   most what this node acknowledged, and acknowledged entries are durable);
/// - an append whose entries do not follow `index` one by one (raft-rs then finds a "conflict"
///   below the commit index and panics), or whose terms exceed the message's;
/// - an append response naming an index past this node's last entry.
pub fn check_from_peer<T: raft::Storage>(
    raft: &raft::Raft<T>,
    m: &Message,
) -> Result<(), &'static str> {
    if m.get_from() == raft.id {
        return Err("a message from this node itself");
    }
    if m.get_term() == 0 {
        return Err("a message without a term");
    }
    let last = raft.raft_log.last_index();
    let refused_type = matches!(
        m.get_msg_type(),
        MessageType::MsgSnapshot
            | MessageType::MsgTransferLeader
            | MessageType::MsgReadIndex
            | MessageType::MsgReadIndexResp
    );
    if refused_type {
        return Err("a message type this cluster never sends");
    }
    if m.get_term() < raft.term {
        // raft-rs drops (or answers) a stale message without looking at its content; a late
        // honest one may well name indexes this node no longer has.
        return Ok(());
    }
    match m.get_msg_type() {
        MessageType::MsgHeartbeat if m.get_commit() > last => {
            Err("a heartbeat committing past the end of the log")
        }
        MessageType::MsgAppend => {
            for (i, e) in m.get_entries().iter().enumerate() {
                let expected = m.get_index().checked_add(i as u64 + 1);
                if Some(e.get_index()) != expected {
                    return Err("append entries not numbered one by one after its index");
                }
                if e.get_term() > m.get_term() || e.get_term() < m.get_log_term() {
                    return Err("append entry term outside the message's terms");
                }
            }
            Ok(())
        }
        MessageType::MsgAppendResponse if m.get_index() > last || m.get_reject_hint() > last => {
            Err("an append response past the end of the log")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn append_with_entries_and_snapshot_round_trips() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.set_to(2);
        m.set_from(1);
        m.set_term(5);
        m.set_index(10);
        m.set_commit(9);
        let mut e = Entry::default();
        e.set_index(11);
        e.set_term(5);
        e.set_data(b"cmd".to_vec().into());
        m.set_entries(vec![e.clone(), e].into());
        let mut s = Snapshot::default();
        s.set_data(b"snap".to_vec().into());
        let mut cs = ConfState::default();
        cs.set_voters(vec![1, 2, 3]);
        s.mut_metadata().set_conf_state(cs);
        s.mut_metadata().set_index(8);
        m.set_snapshot(s);
        let bytes = encode_message(&m);
        assert_eq!(decode_message(&bytes).unwrap(), m);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_message(&trailing).is_err());
    }

    #[test]
    fn an_append_of_several_empty_entries_round_trips() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.set_entries(vec![Entry::default(); 3].into());
        assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
    }

    fn follower() -> raft::RawNode<raft::storage::MemStorage> {
        let storage = raft::storage::MemStorage::new_with_conf_state(ConfState::from((
            vec![1, 2, 3],
            vec![],
        )));
        let cfg = raft::Config {
            id: 1,
            ..raft::Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        raft::RawNode::new(&cfg, storage, &logger).unwrap()
    }

    /// Each message crashes raft-rs when stepped unchecked; `check_from_peer` refuses it.
    #[test]
    fn what_would_crash_raft_rs_is_refused() {
        let base = |t: MessageType| {
            let mut m = Message::default();
            m.set_msg_type(t);
            m.set_from(2);
            m.set_to(1);
            m.set_term(1);
            m
        };
        let mut heartbeat = base(MessageType::MsgHeartbeat);
        heartbeat.set_commit(5);
        let mut append = base(MessageType::MsgAppend);
        let mut e = Entry::default();
        e.set_index(5);
        e.set_term(1);
        append.set_entries(vec![e].into());
        let mut prevote = base(MessageType::MsgRequestPreVote);
        prevote.set_term(0);
        for m in [heartbeat, append, prevote] {
            assert!(check_from_peer(&follower().raft, &m).is_err(), "{m:?}");
            let crashed = std::panic::catch_unwind(|| {
                let _ = follower().step(m.clone());
            });
            assert!(crashed.is_err(), "raft-rs no longer crashes on {m:?}");
        }
        let mut fine = base(MessageType::MsgHeartbeat);
        fine.set_commit(0);
        assert_eq!(check_from_peer(&follower().raft, &fine), Ok(()));
    }

    #[test]
    fn local_message_types_are_refused_from_the_wire() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        assert!(matches!(
            decode_message(&encode_message(&m)),
            Err(DecodeError::BadTag { .. })
        ));
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(m) = decode_message(&bytes) {
                prop_assert_eq!(encode_message(&m), bytes);
            }
        }
    }
}
