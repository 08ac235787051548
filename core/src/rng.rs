//! Injected randomness: a caller-supplied seed, ChaCha20, and child seeds per session.
//!
//! In production the driver seeds the node from the OS once; in the simulator and in tests the
//! seed comes from the run's seed. Each session gets its own child seed derived from the parent
//! and a label, so adding a session never shifts the random stream of another one.

use core::fmt;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The RNG every core state machine uses: ChaCha20 from a 32-byte seed.
pub type CoreRng = ChaCha20Rng;

/// 32 bytes of seed material. Secret: whoever knows it can recompute every nonce drawn from it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Seed([u8; 32]);

impl Seed {
    /// Wraps 32 bytes of seed material (from the OS in production, from a test seed elsewhere).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Seed(bytes)
    }

    /// A seed from a small number, for tests and simulator runs (`--seed N`).
    pub fn from_u64(n: u64) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        Seed::from_bytes(bytes).child(b"keyshard/seed-from-u64", &[])
    }

    /// The child seed for `label` and `context`: SHA-256 over a domain tag, the parent, and
    /// length-prefixed label and context (so no two (label, context) pairs collide).
    pub fn child(&self, label: &[u8], context: &[u8]) -> Seed {
        let mut h = Sha256::new();
        h.update(b"keyshard/child-seed/v1");
        h.update(self.0);
        h.update((label.len() as u64).to_be_bytes());
        h.update(label);
        h.update((context.len() as u64).to_be_bytes());
        h.update(context);
        Seed(h.finalize().into())
    }

    /// A ChaCha20 generator seeded with this seed.
    pub fn rng(&self) -> CoreRng {
        ChaCha20Rng::from_seed(self.0)
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::RngCore;

    #[test]
    fn same_seed_same_stream_and_children_differ() {
        let s = Seed::from_u64(7);
        assert_eq!(s.rng().next_u64(), s.rng().next_u64());
        let a = s.child(b"session", b"1");
        let b = s.child(b"session", b"2");
        let c = s.child(b"session1", b"");
        assert_ne!(a.rng().next_u64(), b.rng().next_u64());
        assert_ne!(a.rng().next_u64(), c.rng().next_u64());
        assert_ne!(
            Seed::from_u64(7).rng().next_u64(),
            Seed::from_u64(8).rng().next_u64()
        );
    }

    #[test]
    fn debug_never_shows_seed_bytes() {
        let s = Seed::from_bytes([0xab; 32]);
        assert_eq!(format!("{s:?}"), "Seed(<redacted>)");
    }
}
