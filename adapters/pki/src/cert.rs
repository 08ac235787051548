//! Reading the identity out of a DER certificate.

use x509_parser::extensions::GeneralName;

use crate::identity::{Identity, IdentityError};

impl Identity {
    /// The identity in a DER-encoded X.509 certificate: its one `keyshard://` URI subject
    /// alternative name. Other SANs (DNS names, IP addresses, other URIs) are ignored; none,
    /// two or more keyshard URIs, trailing bytes after the certificate or a malformed URI are
    /// errors. The certificate's signature, chain and dates are *not* checked here (TLS did that).
    pub fn from_cert_der(der: &[u8]) -> Result<Identity, IdentityError> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(IdentityError::BadCertificate(format!(
                "{} trailing bytes after the certificate",
                rest.len()
            )));
        }
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::BadCertificate(format!("subject alternative name: {e}")))?;
        let uris: Vec<&str> = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                GeneralName::URI(uri) if is_keyshard_scheme(uri) => Some(*uri),
                _ => None,
            })
            .collect();
        match uris.as_slice() {
            [] => Err(IdentityError::NoIdentity),
            [uri] => Identity::from_uri(uri),
            more => Err(IdentityError::AmbiguousIdentity(more.len())),
        }
    }
}

/// Whether a URI's scheme is `keyshard` in any letter case (so a `KEYSHARD://` SAN counts and
/// is then refused by the strict parser instead of being silently ignored).
fn is_keyshard_scheme(uri: &str) -> bool {
    uri.get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("keyshard:"))
}
