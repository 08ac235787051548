//! The audit key: the secret that keys the audit chain and its tail checkpoint.
//!
//! It is a sub-key of the node's sealing key, `HMAC-SHA-256(sealing key, "keyshard audit chain
//! v2")`, never the sealing key itself: a MAC key is exercised on attacker-chosen bytes (every
//! event string) and a separate label keeps that use from ever touching the key that seals
//! shares. Whoever can read the sealing key file can also forge audit lines; the point is that
//! write access to the log (the usual position of log shippers, rotation tools and anyone who
//! got a shell as another user) is no longer enough.

use std::fmt;
use std::path::Path;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::AuditError;

/// HMAC-SHA-256.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Derivation label. A new chain format gets a new label, hence an unrelated key.
const DERIVE_LABEL: &[u8] = b"keyshard audit chain v2";

/// SHA-256's block size. HMAC zero-pads shorter keys to it, so a 32-byte key stored padded to
/// 64 bytes gives the same MACs while keying `Hmac` through the infallible `KeyInit::new`.
const BLOCK: usize = 64;

/// The node's audit key (32 bytes, held zero-padded to the HMAC block). Wiped on drop; its
/// `Debug` never shows it.
pub struct AuditKey {
    padded: Zeroizing<[u8; BLOCK]>,
}

impl AuditKey {
    /// The audit key of the node whose sealing key is `sealing_key`.
    pub fn derive(sealing_key: &[u8; 32]) -> AuditKey {
        let mut mac = keyed(&pad(sealing_key));
        mac.update(DERIVE_LABEL);
        let derived = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        AuditKey {
            padded: pad(&derived),
        }
    }

    /// Reads the node's sealing key file (`<data_dir>/sealing.key`: exactly 32 bytes, not
    /// accessible by group or others, the same checks the store's `FileSealer` makes) and
    /// derives the audit key from it. The raw sealing key is wiped before this returns.
    pub fn from_sealing_key_file(path: &Path) -> Result<AuditKey, AuditError> {
        let err =
            |what: String| AuditError::general(format!("sealing key {}: {what}", path.display()));
        let key = keyshard_store::read_private_key(path, "the sealing key", "make a new key")
            .map_err(err)?;
        Ok(AuditKey::derive(&key))
    }

    /// A fresh HMAC-SHA-256 instance under this key.
    pub(crate) fn mac(&self) -> HmacSha256 {
        keyed(&self.padded)
    }
}

fn pad(key: &[u8; 32]) -> Zeroizing<[u8; BLOCK]> {
    let mut padded = Zeroizing::new([0u8; BLOCK]);
    padded[..32].copy_from_slice(key);
    padded
}

fn keyed(padded: &[u8; BLOCK]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new(padded.into())
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tag(key: &AuditKey) -> Vec<u8> {
        let mut m = key.mac();
        m.update(b"x");
        m.finalize().into_bytes().to_vec()
    }

    #[test]
    fn derivation_is_hmac_of_the_label_and_padding_changes_nothing() {
        let sealing = [9u8; 32];
        let key = AuditKey::derive(&sealing);
        // The same derivation through the fallible, unpadded constructor.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&sealing).unwrap();
        m.update(DERIVE_LABEL);
        let expected = m.finalize().into_bytes();
        assert_eq!(&key.padded[..32], &expected[..]);
        assert_eq!(&key.padded[32..], &[0u8; 32]);
        let mut m = <HmacSha256 as Mac>::new_from_slice(&expected).unwrap();
        m.update(b"x");
        assert_eq!(tag(&key), m.finalize().into_bytes().to_vec());
        // Never the sealing key itself, and another sealing key gives another audit key.
        assert_ne!(&key.padded[..32], &sealing);
        assert_ne!(tag(&key), tag(&AuditKey::derive(&[8u8; 32])));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = AuditKey::derive(&[1u8; 32]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "AuditKey(<redacted>)");
        assert!(!shown.contains(&hex::encode(&key.padded[..32])));
    }

    #[test]
    fn the_sealing_key_file_is_checked_like_the_store_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealing.key");
        let missing = AuditKey::from_sealing_key_file(&path).unwrap_err();
        assert!(missing.what.contains("cannot open"), "{missing}");
        std::fs::write(&path, [5u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = AuditKey::from_sealing_key_file(&path).unwrap_err();
        assert!(open.what.contains("group or others"), "{open}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = AuditKey::from_sealing_key_file(&path).unwrap();
        assert_eq!(tag(&key), tag(&AuditKey::derive(&[5u8; 32])));
        std::fs::write(&path, [5u8; 31]).unwrap();
        let short = AuditKey::from_sealing_key_file(&path).unwrap_err();
        assert!(short.what.contains("exactly 32 bytes"), "{short}");
    }
}
