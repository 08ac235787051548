//! Issuing keyshard certificates: a certificate authority with an ECDSA P-256 key.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::identity::Identity;

/// A PEM-encoded private key. Wiped from memory on drop; `Debug` never shows it.
#[derive(Clone)]
pub struct SecretPem(Zeroizing<String>);

impl SecretPem {
    /// Wraps a PEM string (taking ownership, so no unwiped copy remains here).
    pub fn new(pem: String) -> Self {
        SecretPem(Zeroizing::new(pem))
    }

    /// The PEM text. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem([redacted])")
    }
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before this time.
    pub not_before: SystemTime,
    /// Not valid after this time (may be in the past, e.g. to test refusal of expired certs).
    pub not_after: SystemTime,
}

/// Clock skew tolerated for freshly issued certificates.
const BACKDATE: Duration = Duration::from_secs(3600);

impl Validity {
    /// From an hour ago (clock skew between machines) to `days` days from now.
    pub fn days(days: u32) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - BACKDATE,
            not_after: now + Duration::from_secs(u64::from(days) * 86_400),
        }
    }
}

/// What to put in an issued certificate besides the identity.
#[derive(Clone, Debug)]
pub struct IssueOptions {
    /// When it is valid.
    pub validity: Validity,
    /// DNS names (the host names peers dial this node by).
    pub dns_names: Vec<String>,
    /// IP addresses (when peers dial an IP address).
    pub ip_addresses: Vec<IpAddr>,
}

impl IssueOptions {
    /// Valid for `days` days, no DNS names or IP addresses.
    pub fn days(days: u32) -> Self {
        IssueOptions {
            validity: Validity::days(days),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    /// Valid for `days` days for `localhost`, `127.0.0.1` and `::1` (tests, single-host setups).
    pub fn localhost(days: u32) -> Self {
        IssueOptions {
            validity: Validity::days(days),
            dns_names: vec!["localhost".to_string()],
            ip_addresses: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: SecretPem,
}

/// Why a certificate could not be issued or a CA could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PkiError {
    /// `not_before` is not before `not_after`, or a time is out of range.
    BadValidity(String),
    /// A DNS name is not a valid IA5 string.
    BadDnsName(String),
    /// The CA certificate PEM is unusable.
    BadCaCertificate(String),
    /// The CA key PEM is unusable, or does not match the certificate.
    BadCaKey(String),
    /// Key generation or signing failed.
    Issue(String),
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiError::BadValidity(s) => write!(f, "bad validity period: {s}"),
            PkiError::BadDnsName(s) => write!(f, "bad DNS name {s:?}"),
            PkiError::BadCaCertificate(s) => write!(f, "bad CA certificate: {s}"),
            PkiError::BadCaKey(s) => write!(f, "bad CA key: {s}"),
            PkiError::Issue(s) => write!(f, "could not issue the certificate: {s}"),
        }
    }
}

impl std::error::Error for PkiError {}

/// A certificate authority whose certificates carry keyshard identities.
///
/// Holds the CA certificate and its private key (as wiped-on-drop PEM; the signing key is
/// rebuilt for each issue and wiped after). `Debug` shows only the certificate's subject.
pub struct CertificateAuthority {
    name: String,
    cert_pem: String,
    key_pem: SecretPem,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("name", &self.name)
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

fn datetime(t: SystemTime, which: &str) -> Result<OffsetDateTime, PkiError> {
    // OffsetDateTime's range covers years -9999..=9999; SystemTime can exceed it.
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    };
    secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| PkiError::BadValidity(format!("{which} is out of range")))
}

fn set_validity(params: &mut CertificateParams, v: &Validity) -> Result<(), PkiError> {
    if v.not_before >= v.not_after {
        return Err(PkiError::BadValidity(
            "not_before must be earlier than not_after".into(),
        ));
    }
    params.not_before = datetime(v.not_before, "not_before")?;
    params.not_after = datetime(v.not_after, "not_after")?;
    Ok(())
}

fn issue_err(e: rcgen::Error) -> PkiError {
    PkiError::Issue(e.to_string())
}

impl CertificateAuthority {
    /// A new self-signed CA named `name` (its common name), valid for ten years, that may sign
    /// end-entity certificates only (path length 0).
    pub fn generate(name: &str) -> Result<Self, PkiError> {
        Self::generate_with(name, Validity::days(3653))
    }

    /// A new self-signed CA with an explicit validity period.
    pub fn generate_with(name: &str, validity: Validity) -> Result<Self, PkiError> {
        let key = Zeroizing::new(KeyPair::generate().map_err(issue_err)?);
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, &validity)?;
        let cert = params.self_signed(&*key).map_err(issue_err)?;
        Ok(CertificateAuthority {
            name: name.to_string(),
            cert_pem: cert.pem(),
            key_pem: SecretPem::new(key.serialize_pem()),
        })
    }

    /// Loads a CA from its certificate and private key (both PEM). Checks that the certificate
    /// is a CA certificate and that the key is its key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = Zeroizing::new(
            KeyPair::from_pem(key_pem).map_err(|e| PkiError::BadCaKey(e.to_string()))?,
        );
        let der = pem_der(cert_pem, "CERTIFICATE")
            .map_err(|e| PkiError::BadCaCertificate(e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| PkiError::BadCaCertificate(e.to_string()))?;
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(PkiError::BadCaCertificate(
                "not a CA certificate (basic constraints CA flag unset)".into(),
            ));
        }
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::BadCaKey(
                "the key does not belong to the certificate".into(),
            ));
        }
        let name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(CertificateAuthority {
            name,
            cert_pem: cert_pem.to_string(),
            key_pem: SecretPem::new(key_pem.to_string()),
        })
    }

    /// The CA certificate (PEM): what every node and client trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (PEM). Store it like any secret.
    pub fn key_pem(&self) -> &SecretPem {
        &self.key_pem
    }

    /// Issues a certificate for `identity` with a fresh ECDSA P-256 key. Node certificates may
    /// serve and dial (server and client auth); client certificates may only dial.
    pub fn issue(
        &self,
        identity: &Identity,
        options: &IssueOptions,
    ) -> Result<IssuedCert, PkiError> {
        let ca_key = Zeroizing::new(
            KeyPair::from_pem(self.key_pem.expose())
                .map_err(|e| PkiError::BadCaKey(e.to_string()))?,
        );
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &*ca_key)
            .map_err(|e| PkiError::BadCaCertificate(e.to_string()))?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, identity.to_uri());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if identity.role().is_node() {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, &options.validity)?;
        let uri = identity
            .to_uri()
            .try_into()
            .map_err(|e: rcgen::Error| PkiError::Issue(e.to_string()))?;
        params.subject_alt_names.push(SanType::URI(uri));
        for dns in &options.dns_names {
            let name = dns
                .clone()
                .try_into()
                .map_err(|_| PkiError::BadDnsName(dns.chars().take(80).collect()))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &options.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }

        let key = Zeroizing::new(KeyPair::generate().map_err(issue_err)?);
        let cert = params.signed_by(&*key, &issuer).map_err(issue_err)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: SecretPem::new(key.serialize_pem()),
        })
    }
}

/// The DER contents of the first PEM block labelled `label`.
fn pem_der(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    if block.label != label {
        return Err(format!(
            "PEM block is {:?}, expected {label:?}",
            block.label
        ));
    }
    Ok(block.contents)
}
