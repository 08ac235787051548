//! The tail checkpoint: the chain head `(seq, hash)`, MACed under the audit key, kept in a
//! file apart from the log (`<data_dir>/audit.head`) and rewritten after every append.
//!
//! A chain alone cannot show that lines were cut off its end: a prefix of a valid chain is a
//! valid chain. The checkpoint remembers how far the chain went, so `verify` can tell a log that
//! ends early. It is node-local: whoever can rewrite both files (root on the node) can roll both
//! back to an earlier copy, or delete both. Only a copy of the head held elsewhere (peers, a
//! ticket) stops that; see docs/security.md.
//!
//! **Layout.** Two fixed slots of [`SLOT`] bytes; the head for `seq` goes into slot `seq % 2`.
//! Each slot is one JSON object padded with spaces and ending in a newline:
//! `{"v":2,"node":7,"seq":12,"hash":"<64 hex>","mac":"<64 hex>"}`, `mac` being
//! `HMAC(audit key, "keyshard audit checkpoint v2\n" || node (2 bytes BE) || seq (8 bytes BE)
//! || hash)`. An update overwrites one slot in place with one `pwrite` and `sync_data`, so a
//! crash tearing that write leaves the other slot (one line older) intact: never a state in
//! which the node cannot start. The two valid slots always hold consecutive seqs (the first
//! slot of a new log holds seq 0 and the other stays blank until line 1).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hmac::Mac;
use serde::{Deserialize, Serialize};

use super::key::{AuditKey, HmacSha256};
use super::record::FORMAT;
use super::AuditError;

/// Bytes per slot (JSON, space padding, newline).
pub const SLOT: usize = 256;

/// Domain prefix of a slot's MAC input.
const DOMAIN: &[u8] = b"keyshard audit checkpoint v2\n";

/// A chain head as the checkpoint records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Head {
    /// The node whose chain it is.
    pub node: u16,
    /// The last line's seq (0: an empty log).
    pub seq: u64,
    /// The last line's hash (the genesis value for seq 0).
    pub hash: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotJson {
    v: u8,
    node: u16,
    seq: u64,
    hash: String,
    mac: String,
}

fn slot_mac(key: &AuditKey, head: &Head) -> HmacSha256 {
    let mut m = key.mac();
    m.update(DOMAIN);
    m.update(&head.node.to_be_bytes());
    m.update(&head.seq.to_be_bytes());
    // A hash is always 64 hex digits (checked on decode), so the input is unambiguous.
    m.update(head.hash.as_bytes());
    m
}

/// Which slot holds `seq`.
fn slot_of(seq: u64) -> usize {
    (seq % 2) as usize
}

/// A slot's bytes for `head`.
fn encode_slot(key: &AuditKey, head: &Head) -> Result<[u8; SLOT], AuditError> {
    let json = serde_json::to_string(&SlotJson {
        v: FORMAT,
        node: head.node,
        seq: head.seq,
        hash: head.hash.clone(),
        mac: hex::encode(slot_mac(key, head).finalize().into_bytes()),
    })
    .map_err(|e| AuditError::general(format!("cannot encode the checkpoint: {e}")))?;
    let mut out = [b' '; SLOT];
    if json.len() >= SLOT {
        return Err(AuditError::general("checkpoint slot overflow"));
    }
    out[..json.len()].copy_from_slice(json.as_bytes());
    out[SLOT - 1] = b'\n';
    Ok(out)
}

/// What one slot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// Spaces and a newline: never written.
    Blank,
    /// A head that authenticates and sits in its slot.
    Valid(Head),
    /// Anything else, and why.
    Bad(String),
}

fn decode_slot(key: &AuditKey, index: usize, bytes: &[u8]) -> Slot {
    if bytes.len() != SLOT || bytes[SLOT - 1] != b'\n' {
        return Slot::Bad("not a slot (no newline at its end)".into());
    }
    let body = &bytes[..SLOT - 1];
    if body.iter().all(|&b| b == b' ') {
        return Slot::Blank;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Slot::Bad("not UTF-8".into());
    };
    let parsed: SlotJson = match serde_json::from_str(text.trim_end_matches(' ')) {
        Ok(p) => p,
        Err(e) => return Slot::Bad(format!("bad JSON: {e}")),
    };
    if parsed.v != FORMAT {
        return Slot::Bad(format!("format version {}, expected {FORMAT}", parsed.v));
    }
    if parsed.hash.len() != 64 || hex::decode(&parsed.hash).is_err() {
        return Slot::Bad("hash is not 64 hex digits".into());
    }
    let head = Head {
        node: parsed.node,
        seq: parsed.seq,
        hash: parsed.hash,
    };
    let authentic = match hex::decode(&parsed.mac) {
        Ok(tag) => slot_mac(key, &head).verify_slice(&tag).is_ok(),
        Err(_) => false,
    };
    if !authentic {
        return Slot::Bad(
            "its MAC does not verify under this node's audit key (forged, edited, or written \
             under another key)"
                .into(),
        );
    }
    if slot_of(head.seq) != index {
        return Slot::Bad(format!("seq {} does not belong in slot {index}", head.seq));
    }
    Slot::Valid(head)
}

fn unusable(index: usize, slot: &Slot) -> String {
    match slot {
        Slot::Blank => format!("slot {index} is unusable: blank"),
        Slot::Bad(why) => format!("slot {index} is unusable: {why}"),
        Slot::Valid(_) => format!("slot {index} is usable"),
    }
}

/// A checkpoint as read: the newest head, and whether a slot could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The newest valid head.
    pub head: Head,
    /// Why a slot was unusable, when one was (a crash during a checkpoint write does this, and
    /// so does tampering; the head is then one line older than the log may be).
    pub damaged: Option<String>,
    slots: [Slot; 2],
}

/// Reads the checkpoint at `path`; `Ok(None)` when there is no such file.
pub fn read(path: &Path, key: &AuditKey) -> Result<Option<Found>, AuditError> {
    let err =
        |what: String| AuditError::general(format!("audit checkpoint {}: {what}", path.display()));
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(format!("cannot open: {e}"))),
    };
    let mut bytes = Vec::with_capacity(2 * SLOT);
    (&mut file)
        .take(2 * SLOT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if bytes.len() != 2 * SLOT {
        return Err(err(format!(
            "{} bytes, expected {}: not an audit checkpoint",
            bytes.len(),
            2 * SLOT
        )));
    }
    let slots = [
        decode_slot(key, 0, &bytes[..SLOT]),
        decode_slot(key, 1, &bytes[SLOT..]),
    ];
    let (head, damaged) = match &slots {
        [Slot::Valid(a), Slot::Valid(b)] => {
            if a.node != b.node || a.seq.abs_diff(b.seq) != 1 {
                return Err(err(format!(
                    "the slots do not hold consecutive heads of one chain (node {} seq {}, \
                     node {} seq {}): pieces of different checkpoints",
                    a.node, a.seq, b.node, b.seq
                )));
            }
            (if a.seq > b.seq { a } else { b }.clone(), None)
        }
        // A new log's checkpoint: seq 0 in slot 0, slot 1 not written yet.
        [Slot::Valid(a), Slot::Blank] if a.seq == 0 => (a.clone(), None),
        [Slot::Valid(h), other @ (Slot::Blank | Slot::Bad(_))] => {
            (h.clone(), Some(unusable(1, other)))
        }
        [other @ (Slot::Blank | Slot::Bad(_)), Slot::Valid(h)] => {
            (h.clone(), Some(unusable(0, other)))
        }
        [a, b] => {
            let show = |s: &Slot| match s {
                Slot::Blank => "blank".to_string(),
                Slot::Bad(why) => why.clone(),
                Slot::Valid(_) => "valid".to_string(),
            };
            return Err(err(format!(
                "no usable head: slot 0: {}; slot 1: {}",
                show(a),
                show(b)
            )));
        }
    };
    Ok(Some(Found {
        head,
        damaged,
        slots,
    }))
}

/// The checkpoint file, open for updates.
#[derive(Debug)]
pub struct CheckpointFile {
    file: File,
    path: PathBuf,
}

impl CheckpointFile {
    /// Creates a checkpoint holding `head` (a new log's: seq 0 and the genesis value),
    /// replacing any file at `path`, and syncs it and its directory.
    pub fn create(path: &Path, key: &AuditKey, head: &Head) -> Result<Self, AuditError> {
        let io = |doing: &str, e: std::io::Error| AuditError::io(path, doing, e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| io("cannot create", e))?;
        let mut bytes = [b' '; 2 * SLOT];
        bytes[SLOT - 1] = b'\n';
        bytes[2 * SLOT - 1] = b'\n';
        let at = slot_of(head.seq) * SLOT;
        bytes[at..at + SLOT].copy_from_slice(&encode_slot(key, head)?);
        file.write_all_at(&bytes, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| io("cannot write", e))?;
        super::writer::sync_parent_dir(path)?;
        Ok(CheckpointFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing checkpoint for updates (read it with [`read`] first).
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| AuditError::io(path, "cannot open", e))?;
        Ok(CheckpointFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Records `head` in its slot and syncs. One write: a crash can only tear this slot.
    pub fn write(&self, key: &AuditKey, head: &Head) -> Result<(), AuditError> {
        let bytes = encode_slot(key, head)?;
        self.file
            .write_all_at(&bytes, (slot_of(head.seq) * SLOT) as u64)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| AuditError::io(&self.path, "cannot update the checkpoint", e))
    }

    /// Brings the slots to `newest` and, when given, `previous` (one line older), rewriting
    /// only slots whose content differs, one at a time: the slot still holding a usable head
    /// is never the one being written, so a crash here cannot leave both unusable.
    pub fn settle(
        &self,
        key: &AuditKey,
        found: &Found,
        newest: &Head,
        previous: Option<&Head>,
    ) -> Result<(), AuditError> {
        let want_newest = Slot::Valid(newest.clone());
        if found.slots[slot_of(newest.seq)] != want_newest {
            self.write(key, newest)?;
        }
        if let Some(prev) = previous {
            if found.slots[slot_of(prev.seq)] != Slot::Valid(prev.clone()) {
                self.write(key, prev)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::derive(&[6u8; 32])
    }

    fn head(seq: u64) -> Head {
        Head {
            node: 4,
            seq,
            hash: format!("{seq:064x}"),
        }
    }

    #[test]
    fn slots_alternate_and_the_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.head");
        let cp = CheckpointFile::create(&path, &key(), &head(0)).unwrap();
        let found = read(&path, &key()).unwrap().unwrap();
        assert_eq!((found.head.seq, found.damaged), (0, None));
        for seq in 1..=5 {
            cp.write(&key(), &head(seq)).unwrap();
            let found = read(&path, &key()).unwrap().unwrap();
            assert_eq!((found.head, found.damaged), (head(seq), None));
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * SLOT as u64);
        assert_eq!(read(&dir.path().join("none"), &key()).unwrap(), None);
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_other_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.head");
        let cp = CheckpointFile::create(&path, &key(), &head(0)).unwrap();
        cp.write(&key(), &head(1)).unwrap();
        cp.write(&key(), &head(2)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10..40].fill(0); // slot 0 (seq 2) torn
        std::fs::write(&path, &bytes).unwrap();
        let found = read(&path, &key()).unwrap().unwrap();
        assert_eq!(found.head, head(1));
        assert!(found.damaged.unwrap().contains("slot 0"));
        // Settling rewrites only the torn slot.
        let cp = CheckpointFile::open(&path).unwrap();
        let found = read(&path, &key()).unwrap().unwrap();
        cp.settle(&key(), &found, &head(2), Some(&head(1))).unwrap();
        let found = read(&path, &key()).unwrap().unwrap();
        assert_eq!((found.head, found.damaged), (head(2), None));
    }

    #[test]
    fn wrong_key_moved_slots_and_mixed_checkpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.head");
        let cp = CheckpointFile::create(&path, &key(), &head(0)).unwrap();
        cp.write(&key(), &head(1)).unwrap();
        let other = AuditKey::derive(&[7u8; 32]);
        let e = read(&path, &other).unwrap_err();
        assert!(e.what.contains("no usable head"), "{e}");
        assert!(e.what.contains("another key"), "{e}");
        // Slot contents swapped: each is valid but in the other's place.
        let bytes = std::fs::read(&path).unwrap();
        let mut swapped = bytes[SLOT..].to_vec();
        swapped.extend_from_slice(&bytes[..SLOT]);
        std::fs::write(&path, &swapped).unwrap();
        let e = read(&path, &key()).unwrap_err();
        assert!(e.what.contains("does not belong in slot"), "{e}");
        // Slots from two different moments (seq 1 with seq 4).
        let cp = CheckpointFile::create(&path, &key(), &head(0)).unwrap();
        cp.write(&key(), &head(1)).unwrap();
        cp.write(&key(), &head(4)).unwrap();
        let e = read(&path, &key()).unwrap_err();
        assert!(e.what.contains("consecutive"), "{e}");
        std::fs::write(&path, b"short").unwrap();
        assert!(read(&path, &key())
            .unwrap_err()
            .what
            .contains("not an audit checkpoint"));
    }
}
