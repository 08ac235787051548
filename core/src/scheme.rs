//! The signature schemes keyshard ships, and their stable names in config and on the wire.

use core::fmt;
use core::str::FromStr;

/// A signature scheme a key can be created for. The names are part of the wire protocol and the
/// config format: never rename one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Scheme {
    /// FROST(Ed25519, SHA-512); signatures are plain RFC 8032 Ed25519.
    FrostEd25519,
    /// FROST(secp256k1, SHA-256), RFC 9591 section 6.5.
    FrostSecp256k1,
    /// FROST(P-256, SHA-256), RFC 9591 section 6.4.
    FrostP256,
    /// FROST(secp256k1, SHA-256) producing BIP-340 (Taproot) Schnorr signatures.
    FrostSecp256k1Taproot,
    /// CGGMP24 threshold ECDSA on secp256k1: SHA-256 of the message, low-S signatures with a
    /// recovery id.
    EcdsaSecp256k1,
    /// CGGMP24 threshold ECDSA on P-256 (prime256v1): SHA-256 of the message, low-S signatures.
    EcdsaP256,
}

impl Scheme {
    /// Every scheme, in wire-tag order.
    pub const ALL: [Scheme; 6] = [
        Scheme::FrostEd25519,
        Scheme::FrostSecp256k1,
        Scheme::FrostP256,
        Scheme::FrostSecp256k1Taproot,
        Scheme::EcdsaSecp256k1,
        Scheme::EcdsaP256,
    ];

    /// The FROST schemes (cheap to set up: a key is one DKG, no Paillier keys).
    pub const FROST: [Scheme; 4] = [
        Scheme::FrostEd25519,
        Scheme::FrostSecp256k1,
        Scheme::FrostP256,
        Scheme::FrostSecp256k1Taproot,
    ];

    /// The threshold-ECDSA scheme this is, if it is one.
    pub const fn ecdsa(self) -> Option<crate::ecdsa::EcdsaScheme> {
        match self {
            Scheme::EcdsaSecp256k1 => Some(crate::ecdsa::EcdsaScheme::Secp256k1),
            Scheme::EcdsaP256 => Some(crate::ecdsa::EcdsaScheme::P256),
            Scheme::FrostEd25519
            | Scheme::FrostSecp256k1
            | Scheme::FrostP256
            | Scheme::FrostSecp256k1Taproot => None,
        }
    }

    /// The stable name used in config files, the CLI and the client API.
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::FrostEd25519 => "frost-ed25519",
            Scheme::FrostSecp256k1 => "frost-secp256k1",
            Scheme::FrostP256 => "frost-p256",
            Scheme::FrostSecp256k1Taproot => "frost-secp256k1-tr",
            Scheme::EcdsaSecp256k1 => crate::ecdsa::EcdsaScheme::Secp256k1.name(),
            Scheme::EcdsaP256 => crate::ecdsa::EcdsaScheme::P256.name(),
        }
    }

    /// The stable one-byte tag used in binary encodings.
    pub const fn tag(self) -> u8 {
        match self {
            Scheme::FrostEd25519 => 1,
            Scheme::FrostSecp256k1 => 2,
            Scheme::FrostP256 => 3,
            Scheme::FrostSecp256k1Taproot => 4,
            Scheme::EcdsaSecp256k1 => crate::ecdsa::EcdsaScheme::Secp256k1.tag(),
            Scheme::EcdsaP256 => crate::ecdsa::EcdsaScheme::P256.tag(),
        }
    }

    /// The scheme with this tag, if any.
    pub fn from_tag(tag: u8) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|s| s.tag() == tag)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheme name that is not one of [`Scheme::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownScheme(pub String);

impl fmt::Display for UnknownScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown scheme {:?}; expected one of: ", self.0)?;
        let names: Vec<_> = Scheme::ALL.iter().map(|s| s.name()).collect();
        f.write_str(&names.join(", "))
    }
}

impl std::error::Error for UnknownScheme {}

impl FromStr for Scheme {
    type Err = UnknownScheme;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| UnknownScheme(s.chars().take(64).collect()))
    }
}

/// Ties a FROST ciphersuite type to its [`Scheme`].
pub trait FrostScheme: crate::frost::CommitmentWire {
    /// The scheme this ciphersuite implements.
    const SCHEME: Scheme;
}

impl FrostScheme for frost_ed25519::Ed25519Sha512 {
    const SCHEME: Scheme = Scheme::FrostEd25519;
}
impl FrostScheme for frost_secp256k1::Secp256K1Sha256 {
    const SCHEME: Scheme = Scheme::FrostSecp256k1;
}
impl FrostScheme for frost_p256::P256Sha256 {
    const SCHEME: Scheme = Scheme::FrostP256;
}
impl FrostScheme for frost_secp256k1_tr::Secp256K1Sha256TR {
    const SCHEME: Scheme = Scheme::FrostSecp256k1Taproot;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags_round_trip() {
        for s in Scheme::ALL {
            assert_eq!(s.name().parse::<Scheme>().unwrap(), s);
            assert_eq!(Scheme::from_tag(s.tag()), Some(s));
        }
        assert_eq!(Scheme::from_tag(0), None);
        let err = "frost-ed448".parse::<Scheme>().unwrap_err().to_string();
        assert!(
            err.contains("frost-ed448") && err.contains("frost-ed25519"),
            "{err}"
        );
    }
}
