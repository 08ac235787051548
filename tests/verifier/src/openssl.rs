//! ECDSA verification by the `openssl` command line tool: a verifier that shares no code with
//! keyshard or RustCrypto.
//!
//! Writes the public key as an SPKI PEM, the DER signature and the message to a fresh temporary
//! directory and runs `openssl dgst -sha256 -verify pub.pem -signature sig.der msg`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The curves OpenSSL is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// secp256k1 (OID 1.3.132.0.10).
    Secp256k1,
    /// P-256 / prime256v1 (OID 1.2.840.10045.3.1.7).
    P256,
}

/// What OpenSSL said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `Verified OK`.
    Verified,
    /// No `openssl` binary on this machine: nothing was checked.
    Absent,
    /// OpenSSL refused the signature (its output).
    Refused(String),
}

/// The SubjectPublicKeyInfo DER of an uncompressed (65-byte) SEC1 point on `curve`.
pub fn spki_der(curve: Curve, uncompressed_point: &[u8]) -> Vec<u8> {
    // SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID curve }, BIT STRING (0 unused bits) point }
    let ec_public_key: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let curve_oid: &[u8] = match curve {
        Curve::Secp256k1 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
        Curve::P256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    };
    let mut alg = vec![0x30, (ec_public_key.len() + curve_oid.len()) as u8];
    alg.extend_from_slice(ec_public_key);
    alg.extend_from_slice(curve_oid);
    let mut bits = vec![0x03, (uncompressed_point.len() + 1) as u8, 0x00];
    bits.extend_from_slice(uncompressed_point);
    let mut out = vec![0x30, (alg.len() + bits.len()) as u8];
    out.extend_from_slice(&alg);
    out.extend_from_slice(&bits);
    out
}

/// PEM armour ("PUBLIC KEY") around DER bytes.
pub fn pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

/// Asks OpenSSL whether `der_signature` is a valid ECDSA/SHA-256 signature of `message` under
/// the uncompressed SEC1 `public_key` on `curve`.
pub fn verify_ecdsa_sha256(
    curve: Curve,
    public_key: &[u8],
    message: &[u8],
    der_signature: &[u8],
) -> std::io::Result<Outcome> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "keyshard-openssl-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("pub.pem"), pem(&spki_der(curve, public_key)))?;
    std::fs::write(dir.join("sig.der"), der_signature)?;
    std::fs::write(dir.join("msg"), message)?;
    let result = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "msg",
        ])
        .current_dir(&dir)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Outcome::Absent),
        Err(e) => Err(e),
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && text.contains("Verified OK") {
                Ok(Outcome::Verified)
            } else {
                Ok(Outcome::Refused(text))
            }
        }
    }
}
