//! `keyshard certs init|issue`: an offline CA and the certificates nodes and clients present.
//!
//! Layout of a certificate directory: `ca.pem`, `ca.key` (0600; keep it offline), and per
//! identity `<name>.pem` + `<name>.key` (0600), where `<name>` is `node-<id>` or the client name.

use std::path::{Path, PathBuf};

use keyshard_core::ids::ParticipantId;
use keyshard_pki::{
    CertificateAuthority, ClientName, ClientRole, Identity, IssueOptions, NodeRole, SecretPem,
};

/// A certificate command failed; the message says what and where.
#[derive(Debug)]
pub struct CertError(pub String);

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CertError {}

fn write_public(path: &Path, text: &str) -> Result<(), CertError> {
    std::fs::write(path, text)
        .map_err(|e| CertError(format!("cannot write {}: {e}", path.display())))
}

/// Writes a private key readable by the owner only, never replacing an existing file.
fn write_secret(path: &Path, key: &SecretPem) -> Result<(), CertError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| CertError(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(key.expose().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| CertError(format!("cannot write {}: {e}", path.display())))
}

/// Creates a CA in `dir` (refuses to overwrite one).
pub fn init(dir: &Path, name: &str) -> Result<PathBuf, CertError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CertError(format!("cannot create {}: {e}", dir.display())))?;
    let cert = dir.join("ca.pem");
    if cert.exists() {
        return Err(CertError(format!(
            "{} already exists; refusing to replace a CA",
            cert.display()
        )));
    }
    let ca = CertificateAuthority::generate(name).map_err(|e| CertError(e.to_string()))?;
    write_secret(&dir.join("ca.key"), ca.key_pem())?;
    write_public(&cert, ca.cert_pem())?;
    Ok(cert)
}

/// Loads the CA in `dir`.
pub fn load_ca(dir: &Path) -> Result<CertificateAuthority, CertError> {
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read_to_string(&p)
            .map_err(|e| CertError(format!("cannot read {}: {e}", p.display())))
    };
    let key = SecretPem::new(read("ca.key")?);
    CertificateAuthority::from_pem(&read("ca.pem")?, key.expose())
        .map_err(|e| CertError(e.to_string()))
}

/// The identity for a node id and role.
pub fn node_identity(id: ParticipantId, role: NodeRole) -> Identity {
    Identity::Node { id, role }
}

/// The identity for a client name and role.
pub fn client_identity(name: &str, role: ClientRole) -> Result<Identity, CertError> {
    let name = ClientName::new(name).map_err(|e| CertError(e.to_string()))?;
    Ok(Identity::Client { name, role })
}

/// The file stem for an identity's certificate and key.
pub fn file_stem(identity: &Identity) -> String {
    match identity {
        Identity::Node { id, .. } => format!("node-{id}"),
        Identity::Client { name, .. } => name.as_str().to_string(),
    }
}

/// Issues a certificate for `identity` with the CA in `dir`, valid `days` days for the given
/// host names and IP addresses (`localhost`/127.0.0.1 if none). Returns (cert, key) paths.
pub fn issue(
    dir: &Path,
    identity: &Identity,
    days: u32,
    hosts: &[String],
) -> Result<(PathBuf, PathBuf), CertError> {
    let ca = load_ca(dir)?;
    let mut options = IssueOptions::localhost(days);
    for h in hosts {
        match h.parse() {
            Ok(ip) => options.ip_addresses.push(ip),
            Err(_) => options.dns_names.push(h.clone()),
        }
    }
    let issued = ca
        .issue(identity, &options)
        .map_err(|e| CertError(e.to_string()))?;
    let stem = file_stem(identity);
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    if cert.exists() || key.exists() {
        return Err(CertError(format!(
            "{} or {} already exists; remove them to re-issue",
            cert.display(),
            key.display()
        )));
    }
    write_secret(&key, &issued.key_pem)?;
    write_public(&cert, &issued.cert_pem)?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_issues_node_and_client_certificates_that_name_them() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "test").unwrap();
        assert!(init(dir.path(), "again").is_err(), "a CA is never replaced");
        let node = node_identity(ParticipantId::new(3).unwrap(), NodeRole::Tee);
        let (cert, key) = issue(dir.path(), &node, 30, &[]).unwrap();
        let der = rustls_pemfile_first(&std::fs::read_to_string(cert).unwrap());
        assert_eq!(Identity::from_cert_der(&der).unwrap(), node);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let app = client_identity("billing", ClientRole::Application).unwrap();
        issue(dir.path(), &app, 30, &["node.example".into()]).unwrap();
        assert!(
            issue(dir.path(), &app, 30, &[]).is_err(),
            "no silent re-issue"
        );
        assert!(client_identity("Bad Name!", ClientRole::Admin).is_err());
    }

    fn rustls_pemfile_first(pem: &str) -> Vec<u8> {
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        base64_decode(&body)
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes().filter(|c| *c != b'=') {
            let v = T.iter().position(|t| *t == c).unwrap() as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
