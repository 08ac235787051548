//! The framing of session messages: a version, a kind, and length-prefixed fields.
//!
//! ```text
//! u8 version (=1) | u8 kind | u16 field count | { u32 length | bytes } * count
//! ```
//! All integers are big-endian. Decoding is strict: limits are checked before anything is
//! allocated, and a frame with bytes after its last field is refused, so every accepted frame has
//! exactly one encoding.

use core::fmt;

/// The only framing version this build speaks.
pub const FRAME_VERSION: u8 = 1;
/// No session message is larger than this (a 100-party DKG round-2 message is ~3.5 KiB; a
/// batch-signing package is bounded by the batch limits in the signing session).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// No session message has more fields than this.
pub const MAX_FIELDS: usize = 4096;

/// A decoded frame: a kind and its fields.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message kind; each session defines its own.
    pub kind: u8,
    /// The fields, in order.
    pub fields: Vec<Vec<u8>>,
}

/// Why bytes are not a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Larger than [`MAX_FRAME_BYTES`].
    TooLarge {
        /// The size received.
        size: usize,
    },
    /// Shorter than its header or its declared fields.
    Truncated,
    /// A version this build does not speak.
    UnknownVersion(u8),
    /// More than [`MAX_FIELDS`] fields declared.
    TooManyFields(usize),
    /// Bytes left after the last declared field.
    TrailingBytes(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { size } => {
                write!(f, "{size} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
            }
            FrameError::Truncated => f.write_str("truncated"),
            FrameError::UnknownVersion(v) => write!(f, "unknown framing version {v}"),
            FrameError::TooManyFields(n) => write!(f, "{n} fields exceeds the limit {MAX_FIELDS}"),
            FrameError::TrailingBytes(n) => write!(f, "{n} trailing bytes after the last field"),
        }
    }
}

impl std::error::Error for FrameError {}

impl Frame {
    /// A frame of `kind` with `fields`.
    pub fn new(kind: u8, fields: Vec<Vec<u8>>) -> Self {
        Frame { kind, fields }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let len = 4 + self.fields.iter().map(|f| 4 + f.len()).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.push(FRAME_VERSION);
        out.push(self.kind);
        out.extend_from_slice(&(self.fields.len() as u16).to_be_bytes());
        for f in &self.fields {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    /// Decodes untrusted bytes, refusing anything that is not exactly one canonical frame.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge { size: bytes.len() });
        }
        let [version, kind, c0, c1, rest @ ..] = bytes else {
            return Err(FrameError::Truncated);
        };
        if *version != FRAME_VERSION {
            return Err(FrameError::UnknownVersion(*version));
        }
        let count = u16::from_be_bytes([*c0, *c1]) as usize;
        if count > MAX_FIELDS {
            return Err(FrameError::TooManyFields(count));
        }
        // Each field needs at least its 4-byte length: refuse impossible counts before
        // allocating anything for them.
        if count.saturating_mul(4) > rest.len() {
            return Err(FrameError::Truncated);
        }
        let mut fields = Vec::with_capacity(count);
        let mut rest = rest;
        for _ in 0..count {
            let [l0, l1, l2, l3, tail @ ..] = rest else {
                return Err(FrameError::Truncated);
            };
            let len = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
            if len > tail.len() {
                return Err(FrameError::Truncated);
            }
            let (field, tail) = tail.split_at(len);
            fields.push(field.to_vec());
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(FrameError::TrailingBytes(rest.len()));
        }
        Ok(Frame {
            kind: *kind,
            fields,
        })
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fields may be secret shares: show sizes only.
        let sizes: Vec<usize> = self.fields.iter().map(Vec::len).collect();
        f.debug_struct("Frame")
            .field("kind", &self.kind)
            .field("field_sizes", &sizes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_strictness() {
        let f = Frame::new(7, vec![vec![1, 2, 3], vec![], vec![9; 300]]);
        let bytes = f.encode();
        assert_eq!(Frame::decode(&bytes).unwrap(), f);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Frame::decode(&trailing), Err(FrameError::TrailingBytes(1)));
        assert_eq!(
            Frame::decode(&bytes[..bytes.len() - 1]),
            Err(FrameError::Truncated)
        );
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(Frame::decode(&v2), Err(FrameError::UnknownVersion(2)));
        assert_eq!(
            Frame::decode(&[1, 0, 0xff, 0xff]),
            Err(FrameError::TooManyFields(65535))
        );
        assert_eq!(
            Frame::decode(&vec![0; MAX_FRAME_BYTES + 1]),
            Err(FrameError::TooLarge {
                size: MAX_FRAME_BYTES + 1
            })
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_accepts_only_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(f) = Frame::decode(&bytes) {
                prop_assert_eq!(f.encode(), bytes);
            }
        }
    }
}
