//! Sealing secrets at rest.
//!
//! [`Sealer`] is the seam: a TEE's sealing key implements it in production, [`FileSealer`] (a
//! 32-byte key in a `0600` file) serves development and tests, [`XChaChaSealer`] is the AEAD both
//! file-based and derived keys use. The store binds every sealed blob to where it belongs with
//! associated data ([`share_aad`], [`record_aad`]): domain tag, node id, key id and version (or
//! table and record key). A blob copied to another key, version, table or node fails to open.

use core::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use keyshard_core::persist::{KeyId, KeyVersion, SecretBytes};
use zeroize::Zeroizing;

use crate::error::StoreError;

/// Why a seal or open failed. Carries no secret bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The blob does not authenticate under this key and associated data (tampered, truncated,
    /// sealed under another key, or for another node, key, version or record).
    Authentication,
    /// Sealing failed (e.g. no OS randomness); nothing was written.
    Seal(String),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Authentication => f.write_str("authentication failed"),
            SealError::Seal(why) => write!(f, "sealing failed: {why}"),
        }
    }
}

impl std::error::Error for SealError {}

/// Seals and opens secrets under a key the store never sees (the seam a TEE implements).
///
/// `seal` returns a self-contained blob (it carries its own nonce); `open` must fail with
/// [`SealError::Authentication`] for any blob not sealed by this sealer under exactly `aad`.
/// Implementations must not log or print plaintext, and their `Debug` must not show the key.
pub trait Sealer: Send + Sync + fmt::Debug {
    /// Encrypts and authenticates `plaintext`, bound to `aad`.
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError>;
    /// Authenticates and decrypts a blob from [`Sealer::seal`] with the same `aad`.
    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, SealError>;
}

/// Format byte at the front of every blob [`XChaChaSealer`] makes.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// XChaCha20-Poly1305 with a random 24-byte nonce per seal.
///
/// Blob: `0x01 || nonce (24) || ciphertext || tag (16)`; the format byte is also bound into the
/// associated data. The key is wiped from memory on drop.
pub struct XChaChaSealer {
    cipher: XChaCha20Poly1305,
}

impl XChaChaSealer {
    /// A sealer from a 32-byte key (e.g. derived from a TEE's sealing key).
    pub fn from_key(key: &Zeroizing<[u8; 32]>) -> Self {
        XChaChaSealer {
            cipher: XChaCha20Poly1305::new(&(**key).into()),
        }
    }

    /// A sealer with a fresh random key held only in memory (tests, throw-away stores).
    pub fn random() -> Result<Self, StoreError> {
        let key = random_key().map_err(|reason| StoreError::SealingKey { path: None, reason })?;
        Ok(Self::from_key(&key))
    }

    fn aad_with_format(aad: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(aad.len() + 1);
        full.push(FORMAT_V1);
        full.extend_from_slice(aad);
        full
    }
}

impl fmt::Debug for XChaChaSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XChaChaSealer(<key redacted>)")
    }
}

impl Sealer for XChaChaSealer {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| SealError::Seal(format!("OS randomness unavailable: {e}")))?;
        let full_aad = Self::aad_with_format(aad);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &full_aad,
                },
            )
            .map_err(|_| SealError::Seal("plaintext too long".into()))?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        blob.push(FORMAT_V1);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(blob)
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, SealError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
            return Err(SealError::Authentication);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let full_aad = Self::aad_with_format(aad);
        // The decrypted bytes go straight into SecretBytes, which wipes them on drop.
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: &full_aad,
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| SealError::Authentication)
    }
}

/// A 32-byte sealing key in a file readable by its owner only (development and tests; production
/// uses a TEE's sealing key through [`Sealer`]).
///
/// The file holds the raw 32 bytes. [`FileSealer::open_or_create`] creates it with mode `0600`
/// and refuses an existing file that group or others may read or write.
pub struct FileSealer {
    path: PathBuf,
    inner: XChaChaSealer,
}

impl FileSealer {
    /// Loads the key from `path`, creating a new random key there (mode `0600`) if absent.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        match Self::create(path) {
            Ok(s) => Ok(s),
            Err(CreateError::Exists) => Self::open(path),
            Err(CreateError::Other(e)) => Err(e),
        }
    }

    /// Loads an existing key file; refuses one that group or others can access.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let err = |reason: String| StoreError::SealingKey {
            path: Some(path.to_path_buf()),
            reason,
        };
        let key =
            read_private_key(path, "the sealing key", "make a new key and re-seal").map_err(err)?;
        Ok(FileSealer {
            path: path.to_path_buf(),
            inner: XChaChaSealer::from_key(&key),
        })
    }

    fn create(path: &Path) -> Result<Self, CreateError> {
        let err = |reason: String| {
            CreateError::Other(StoreError::SealingKey {
                path: Some(path.to_path_buf()),
                reason,
            })
        };
        let key = random_key().map_err(err)?;
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(CreateError::Exists),
            Err(e) => return Err(err(format!("cannot create: {e}"))),
        };
        // The umask can only remove bits from 0600; set it anyway in case the file system differs.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(&key[..]))
            .and_then(|()| file.sync_all())
            .map_err(|e| err(format!("cannot write: {e}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| err(format!("cannot sync its directory: {e}")))?;
        }
        Ok(FileSealer {
            path: path.to_path_buf(),
            inner: XChaChaSealer::from_key(&key),
        })
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

enum CreateError {
    Exists,
    Other(StoreError),
}

impl fmt::Debug for FileSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileSealer({}, <key redacted>)", self.path.display())
    }
}

impl Sealer for FileSealer {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        self.inner.seal(plaintext, aad)
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, SealError> {
        self.inner.open(sealed, aad)
    }
}

fn random_key() -> Result<Zeroizing<[u8; 32]>, String> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(&mut key[..]).map_err(|e| format!("OS randomness unavailable: {e}"))?;
    Ok(key)
}

fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths are bounded by what the store accepts; u32 is ample and fixed-width.
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Associated data for this node's share of `key` at `version`.
pub fn share_aad(node_id: &str, key: &KeyId, version: KeyVersion) -> Vec<u8> {
    let mut aad = b"keyshard/sealed-share/v1".to_vec();
    push_lp(&mut aad, node_id.as_bytes());
    push_lp(&mut aad, key.as_str().as_bytes());
    aad.extend_from_slice(&version.0.to_be_bytes());
    aad
}

/// Associated data for this node's secret record `key` in `table`.
pub fn record_aad(node_id: &str, table: &str, key: &[u8]) -> Vec<u8> {
    let mut aad = b"keyshard/sealed-record/v1".to_vec();
    push_lp(&mut aad, node_id.as_bytes());
    push_lp(&mut aad, table.as_bytes());
    push_lp(&mut aad, key);
    aad
}

/// Opens a file that only its owner may access (a regular file with no group or other
/// permission bits): the one check the sealing key, the audit key and an ECDSA primes file
/// share. `what` names the file in a refusal, `otherwise` says what to do if it was exposed.
/// Returns the file and its length.
pub fn open_private_file(path: &Path, what: &str, otherwise: &str) -> Result<(File, u64), String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "permissions {mode:04o} let group or others access {what}; refusing to use it \
             (run `chmod 600 {}` if it was never exposed, otherwise {otherwise})",
            path.display()
        ));
    }
    Ok((file, meta.len()))
}

/// Reads a 32-byte key from a private file ([`open_private_file`]'s checks, then exactly 32
/// bytes), into memory that is wiped on drop.
pub fn read_private_key(
    path: &Path,
    what: &str,
    otherwise: &str,
) -> Result<Zeroizing<[u8; 32]>, String> {
    let (mut file, len) = open_private_file(path, what, otherwise)?;
    if len != 32 {
        return Err(format!("must hold exactly 32 bytes, holds {len}"));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    file.read_exact(&mut key[..])
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let s = XChaChaSealer::random().unwrap();
        let k = KeyId::new("k1").unwrap();
        let aad = share_aad("n1", &k, KeyVersion(3));
        let blob = s.seal(b"secret package", &aad).unwrap();
        assert_eq!(s.open(&blob, &aad).unwrap().expose(), b"secret package");
        // Two seals of the same plaintext differ (random nonce).
        assert_ne!(blob, s.seal(b"secret package", &aad).unwrap());
        for other in [
            share_aad("n2", &k, KeyVersion(3)),
            share_aad("n1", &k, KeyVersion(4)),
            share_aad("n1", &KeyId::new("k2").unwrap(), KeyVersion(3)),
            record_aad("n1", "t", b"k1"),
        ] {
            assert_eq!(s.open(&blob, &other), Err(SealError::Authentication));
        }
        for i in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                s.open(&bad, &aad),
                Err(SealError::Authentication),
                "bit {i}"
            );
        }
        for n in 0..blob.len() {
            assert_eq!(s.open(&blob[..n], &aad), Err(SealError::Authentication));
        }
        let other = XChaChaSealer::random().unwrap();
        assert_eq!(other.open(&blob, &aad), Err(SealError::Authentication));
    }

    #[test]
    fn key_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealing.key");
        let a = FileSealer::open_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        let blob = a.seal(b"x", b"aad").unwrap();
        let b = FileSealer::open_or_create(&path).unwrap();
        assert_eq!(b.open(&blob, b"aad").unwrap().expose(), b"x");
        let shown = format!("{a:?}");
        assert!(shown.contains("redacted"), "{shown}");
        let key = std::fs::read(&path).unwrap();
        assert!(!shown.contains(&crate::error::hex(&key)));
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealing.key");
        FileSealer::open_or_create(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = FileSealer::open(&path).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("group or others") && msg.contains("sealing.key"),
                "{msg}"
            );
            assert!(FileSealer::open_or_create(&path).is_err());
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(FileSealer::open(&path).is_ok());
    }

    #[test]
    fn key_file_of_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        std::fs::write(&path, [7u8; 31]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let msg = FileSealer::open(&path).unwrap_err().to_string();
        assert!(msg.contains("exactly 32 bytes"), "{msg}");
        let missing = FileSealer::open(dir.path().join("none")).unwrap_err();
        assert!(missing.to_string().contains("cannot open"));
    }
}
