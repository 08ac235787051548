//! Decoder targets: untrusted bytes in, and "decodes => re-encodes to the same bytes" out.

use std::collections::BTreeMap;
use std::str::FromStr;

use frost_core::keys::{dkg, KeyPackage, PublicKeyPackage};
use frost_core::round1::SigningCommitments;
use frost_core::round2::SignatureShare;
use frost_core::{Ciphersuite, Signature, SigningPackage, VerifyingKey};
use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType, Snapshot};

use super::Cursor;
use crate::codec::{Reader, Writer};
use crate::frost::canonical::{self, Canonical};
use crate::ids::ParticipantId;
use crate::node::raft_wire;
use crate::node::registry::{Applied, NodeRole, Registry, Replicated};
use crate::node::NodeMessage;
use crate::persist::KeyId;
use crate::scheme::Scheme;
use crate::session::Frame;

/// `NodeMessage::decode` (every peer message, and the client requests and answers inside it):
/// whatever decodes re-encodes to exactly the input. Also the string parsers of client input
/// (key ids, scheme names).
pub fn node_message(data: &[u8]) {
    if let Ok(m) = NodeMessage::decode(data) {
        assert_eq!(
            m.encode(),
            data,
            "NodeMessage accepted a non-canonical encoding"
        );
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(k) = KeyId::new(s) {
            assert_eq!(k.as_str(), s);
        }
        if let Ok(scheme) = Scheme::from_str(s) {
            assert_eq!(scheme.name(), s);
        }
    }
}

/// `Replicated::decode` of the whole input (canonical), then the input read as a sequence of
/// `u16`-length-prefixed commands applied to a 3-member registry: no panic, every command that
/// decodes is canonical, and a command that applies as `Nothing` leaves the registry unchanged.
pub fn registry_command(data: &[u8]) {
    if let Ok(cmd) = Replicated::decode(data) {
        assert_eq!(
            cmd.encode(),
            data,
            "Replicated accepted a non-canonical encoding"
        );
    }
    let members: BTreeMap<ParticipantId, NodeRole> = (1..=3)
        .filter_map(ParticipantId::new)
        .map(|p| (p, NodeRole::Tee))
        .collect();
    let mut registry = Registry::new(members, 3, 86_400_000);
    let mut c = Cursor::new(data);
    let mut applied = 0;
    while !c.is_empty() && applied < 64 {
        applied += 1;
        let bytes = c.bytes();
        let Ok(cmd) = Replicated::decode(bytes) else {
            continue;
        };
        assert_eq!(
            cmd.encode(),
            bytes,
            "Replicated accepted a non-canonical encoding"
        );
        let before = registry.clone();
        if registry.apply(&cmd) == Applied::Nothing {
            assert!(
                registry == before,
                "a command that applied as Nothing changed the registry: {cmd:?}"
            );
        }
    }
}

/// The Raft wire codec: a whole message, a log entry (the log's storage encoding) and a
/// configuration state, each canonical; and a message built from the input round-trips.
pub fn raft_message(data: &[u8]) {
    if let Ok(m) = raft_wire::decode_message(data) {
        assert_eq!(
            raft_wire::encode_message(&m),
            data,
            "raft message accepted a non-canonical encoding"
        );
    }
    let mut r = Reader::new(data);
    if let Ok(e) = raft_wire::read_entry(&mut r) {
        if r.finish().is_ok() {
            let mut w = Writer::new();
            raft_wire::write_entry(&mut w, &e);
            assert_eq!(
                w.finish(),
                data,
                "raft entry accepted a non-canonical encoding"
            );
        }
    }
    let mut r = Reader::new(data);
    if let Ok(cs) = raft_wire::read_conf_state(&mut r) {
        if r.finish().is_ok() {
            let mut w = Writer::new();
            raft_wire::write_conf_state(&mut w, &cs);
            assert_eq!(
                w.finish(),
                data,
                "conf state accepted a non-canonical encoding"
            );
        }
    }
    raft_encode_decode(data);
}

/// The message types `raft_wire::decode_message` accepts (those that travel between nodes).
const WIRE_TYPES: [MessageType; 13] = [
    MessageType::MsgAppend,
    MessageType::MsgAppendResponse,
    MessageType::MsgRequestVote,
    MessageType::MsgRequestVoteResponse,
    MessageType::MsgSnapshot,
    MessageType::MsgHeartbeat,
    MessageType::MsgHeartbeatResponse,
    MessageType::MsgTransferLeader,
    MessageType::MsgTimeoutNow,
    MessageType::MsgReadIndex,
    MessageType::MsgReadIndexResp,
    MessageType::MsgRequestPreVote,
    MessageType::MsgRequestPreVoteResponse,
];

/// The other direction: a message built from the input (any field values, up to 8 entries,
/// maybe a snapshot) must decode from its own encoding to itself. (The decoder once demanded
/// 27 bytes per entry where an empty entry takes 26.)
fn raft_encode_decode(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mut m = Message::default();
    m.set_msg_type(WIRE_TYPES[usize::from(c.u8()) % WIRE_TYPES.len()]);
    m.set_to(u64::from(c.u8()));
    m.set_from(u64::from(c.u8()));
    m.set_term(u64::from(c.u16()));
    m.set_log_term(u64::from(c.u16()));
    m.set_index(u64::from(c.u16()));
    m.set_commit(u64::from(c.u16()));
    m.set_reject(c.u8() & 1 == 1);
    m.set_reject_hint(u64::from(c.u16()));
    m.set_context(c.bytes().to_vec().into());
    let mut entries = Vec::new();
    for _ in 0..c.u8() % 9 {
        let mut e = Entry::default();
        e.set_entry_type(match c.u8() % 3 {
            0 => EntryType::EntryNormal,
            1 => EntryType::EntryConfChange,
            _ => EntryType::EntryConfChangeV2,
        });
        e.set_term(u64::from(c.u16()));
        e.set_index(u64::from(c.u16()));
        e.set_data(c.bytes().to_vec().into());
        e.set_context(c.bytes().to_vec().into());
        e.set_sync_log(c.u8() & 1 == 1);
        entries.push(e);
    }
    m.set_entries(entries.into());
    if c.u8() & 1 == 1 {
        let mut snap = Snapshot::default();
        snap.set_data(c.bytes().to_vec().into());
        let mut cs = ConfState::default();
        cs.set_voters((0..c.u8() % 5).map(u64::from).collect());
        cs.set_learners((0..c.u8() % 3).map(u64::from).collect());
        cs.set_auto_leave(c.u8() & 1 == 1);
        snap.mut_metadata().set_conf_state(cs);
        snap.mut_metadata().set_index(u64::from(c.u16()));
        snap.mut_metadata().set_term(u64::from(c.u16()));
        m.set_snapshot(snap);
    }
    let bytes = raft_wire::encode_message(&m);
    assert_eq!(
        raft_wire::decode_message(&bytes).as_ref(),
        Ok(&m),
        "an encoded raft message does not decode to itself"
    );
}

/// The session framing.
pub fn session_frame(data: &[u8]) {
    if let Ok(f) = Frame::decode(data) {
        assert_eq!(f.encode(), data, "Frame accepted a non-canonical encoding");
    }
}

/// The canonical decoders of every frost type a peer can send, on every suite. The first byte
/// picks the suite (`b % 4`) and the type (`b / 4 % 9`); the rest is the encoding.
pub fn frost_packages(data: &[u8]) {
    let mut c = Cursor::new(data);
    let selector = c.u8();
    let bytes = c.rest();
    let kind = selector / 4 % 9;
    match selector % 4 {
        0 => frost_kind::<frost_ed25519::Ed25519Sha512>(kind, bytes),
        1 => frost_kind::<frost_secp256k1::Secp256K1Sha256>(kind, bytes),
        2 => frost_kind::<frost_p256::P256Sha256>(kind, bytes),
        _ => frost_kind::<frost_secp256k1_tr::Secp256K1Sha256TR>(kind, bytes),
    }
}

fn frost_kind<C: Ciphersuite>(kind: u8, bytes: &[u8]) {
    match kind {
        0 => canonical_round_trip::<dkg::round1::Package<C>>(bytes),
        1 => canonical_round_trip::<dkg::round2::Package<C>>(bytes),
        2 => canonical_round_trip::<SigningCommitments<C>>(bytes),
        3 => canonical_round_trip::<SigningPackage<C>>(bytes),
        4 => canonical_round_trip::<SignatureShare<C>>(bytes),
        5 => canonical_round_trip::<KeyPackage<C>>(bytes),
        6 => canonical_round_trip::<Signature<C>>(bytes),
        7 => canonical_round_trip::<VerifyingKey<C>>(bytes),
        _ => {
            canonical_round_trip::<PublicKeyPackage<C>>(bytes);
            if let Ok(pkp) =
                canonical::decode::<PublicKeyPackage<C>>(bytes, None, "public key package")
            {
                assert!(pkp.min_signers().is_some(), "a package without threshold");
            }
        }
    }
}

fn canonical_round_trip<T: Canonical>(bytes: &[u8]) {
    if let Ok(value) = canonical::decode::<T>(bytes, None, "value") {
        assert_eq!(
            value.encode().as_deref(),
            Some(bytes),
            "canonical::decode accepted a non-canonical encoding"
        );
        // Decoding the re-encoding gives the same value again.
        assert!(canonical::decode::<T>(bytes, Some(bytes.len()), "value").is_ok());
    }
}
