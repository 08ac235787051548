//! Participant identifiers.
//!
//! A participant's identifier is a small non-zero number fixed when it joins a key and never
//! renumbered: key versions, reshares and retries all refer to the same number, so a share can
//! never silently move to another member. FROST identifiers are the scalar with that value.

use core::fmt;
use core::num::NonZeroU16;

use frost_core::{Ciphersuite, Identifier};

/// A participant in a protocol run: a non-zero `u16`, also its FROST identifier's value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(NonZeroU16);

impl ParticipantId {
    /// `None` for zero, which is not a valid identifier (a share at zero is the secret itself).
    pub const fn new(n: u16) -> Option<Self> {
        match NonZeroU16::new(n) {
            Some(n) => Some(ParticipantId(n)),
            None => None,
        }
    }

    /// The identifier's value.
    pub const fn get(self) -> u16 {
        self.0.get()
    }

    /// The FROST identifier with this value.
    pub fn to_frost<C: Ciphersuite>(self) -> Identifier<C> {
        // Infallible for a non-zero u16: try_from only refuses zero.
        match Identifier::<C>::try_from(self.get()) {
            Ok(id) => id,
            Err(_) => unreachable!("a non-zero u16 is always a valid FROST identifier"),
        }
    }
}

impl fmt::Debug for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.get())
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_refused_and_values_round_trip() {
        assert!(ParticipantId::new(0).is_none());
        let p = ParticipantId::new(65535).unwrap();
        assert_eq!(p.get(), 65535);
        let a: Identifier<frost_ed25519::Ed25519Sha512> = p.to_frost();
        let b = Identifier::<frost_ed25519::Ed25519Sha512>::try_from(65535u16).unwrap();
        assert_eq!(a, b);
    }
}
