//! Fuzz target bodies (cargo feature `fuzzing`; also compiled for this crate's own tests).
//!
//! Every `pub fn target(data: &[u8])` here is one cargo-fuzz target: `fuzz/fuzz_targets/*.rs`
//! are one-line wrappers, and `core/tests/fuzz_corpus.rs` replays every file of every committed
//! corpus (`fuzz/corpus/<target>/`) through the same function, so CI replays the corpora with a
//! plain `cargo test` and no cargo-fuzz. A target panics exactly when it found a bug: a panic in
//! the code under test, or one of its own checks failing (a decoder that accepts two encodings
//! of one value, a session that ends twice, honest parties that disagree on a key, a signature
//! that does not verify, a node that returns an error for peer input, ...).
//!
//! The targets (see `docs/reliability.md` for how long each ran and what it covered):
//!
//! | target | what it feeds |
//! |---|---|
//! | [`node_message`] | `NodeMessage::decode` (node wire, client requests and answers) |
//! | [`registry_command`] | `Replicated::decode`, then `Registry::apply` of a command sequence |
//! | [`raft_message`] | `raft_wire::decode_message`, `read_entry`, `read_conf_state`; encode => decode |
//! | [`session_frame`] | `session::Frame::decode` |
//! | [`frost_packages`] | `frost::canonical::decode` of the nine frost types, four suites |
//! | [`reshare_messages`] | one message to a reshare receiver in a chosen round |
//! | [`dkg_session`] | a 3-party `FrostDkg`, arbitrary message sequences and timeouts |
//! | [`sign_session`] | `FrostSign` (coordinator and signers), the same |
//! | [`reshare_session`] | `FrostReshare` (dealers and receivers), the same |
//! | [`node`] | three real `Node`s: peer bytes, client requests, timeouts, crashes |
//! | [`node_restore`] | `Node::new` from an arbitrary restored state |
//! | [`ecdsa_node`] | ECDSA stored-form decoders; a non-signing ECDSA signing coordinator |
//!
//! Inputs are read with a small cursor that yields zeros once the bytes run out, so every input
//! is valid and short inputs mean "the honest default". Everything is deterministic: the same
//! input always takes the same path (fixed seeds, virtual time, no hash maps).
//!
//! Not here yet: a whole simulated world driven by the fuzz input (issue 7 item 5, third
//! kind). It belongs on top of the simulator (`simulator/`) once that lands, with the
//! simulator's checkers as its assertions.

mod decoders;
mod ecdsa;
mod node;
mod seeds;
mod sessions;

pub use decoders::{frost_packages, node_message, raft_message, registry_command, session_frame};
pub use ecdsa::ecdsa_node;
pub use node::{node, node_restore};
pub use seeds::seeds;
pub use sessions::{dkg_session, reshare_messages, reshare_session, sign_session};

/// A target body: panics exactly when it found a bug.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*`).
pub const TARGETS: &[(&str, Target)] = &[
    ("node_message", node_message),
    ("registry_command", registry_command),
    ("raft_message", raft_message),
    ("session_frame", session_frame),
    ("frost_packages", frost_packages),
    ("reshare_messages", reshare_messages),
    ("dkg_session", dkg_session),
    ("sign_session", sign_session),
    ("reshare_session", reshare_session),
    ("node", node),
    ("node_restore", node_restore),
    ("ecdsa_node", ecdsa_node),
];

/// Reads fuzz input front to back; past the end every read yields zeros (or nothing).
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer if the input ends).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// A `u16`-length-prefixed byte string.
    pub(crate) fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.take(n)
    }

    /// The rest of the input.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Writes inputs in the format [`Cursor`] reads (for the seed corpora).
#[derive(Default)]
pub(crate) struct InputWriter {
    out: Vec<u8>,
}

impl InputWriter {
    pub(crate) fn u8(&mut self, b: u8) -> &mut Self {
        self.out.push(b);
        self
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = u16::try_from(b.len()).unwrap_or(u16::MAX);
        self.u16(n);
        self.out.extend_from_slice(&b[..usize::from(n)]);
        self
    }

    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_reads_zeros_past_the_end() {
        let mut c = Cursor::new(&[1, 2, 0, 0, 1, 9]);
        assert_eq!(c.u8(), 1);
        assert_eq!(c.u16(), 0x0200);
        assert_eq!(c.bytes(), &[9]);
        assert!(c.is_empty());
        assert_eq!(c.u16(), 0);
        assert_eq!(c.bytes(), &[] as &[u8]);
    }

    #[test]
    fn writer_matches_cursor() {
        let data = InputWriter::default().u8(7).bytes(b"abc").u16(5).finish();
        let mut c = Cursor::new(&data);
        assert_eq!((c.u8(), c.bytes(), c.u16()), (7, &b"abc"[..], 5));
    }
}
