//! Message bytes that may carry secrets.

use core::fmt;

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The bytes of one outgoing session message. A DKG round-2 message carries a secret share, so
/// every payload is wiped when dropped and its `Debug` shows only its length and a digest prefix.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Payload(Vec<u8>);

impl Payload {
    /// Wraps encoded bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Payload(bytes)
    }

    /// The bytes to put on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (never, for a real message).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = Sha256::digest(&self.0);
        write!(
            f,
            "Payload({} bytes, sha256 {:02x}{:02x}{:02x}{:02x}..)",
            self.0.len(),
            d[0],
            d[1],
            d[2],
            d[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_content() {
        let p = Payload::new(vec![0x5a; 40]);
        let s = format!("{p:?}");
        assert!(s.starts_with("Payload(40 bytes"), "{s}");
        assert!(!s.contains("5a5a"), "{s}");
    }
}
