//! Mutual TLS configuration: every connection, in both directions, presents a certificate
//! signed by the cluster CA that carries a keyshard identity.
//!
//! TLS 1.3 only, ring only (an explicit provider, so another provider installed elsewhere in the
//! process changes nothing here). The server *requires* a client certificate: no certificate,
//! another CA's, an expired one or one without a keyshard identity fails the handshake, and the
//! refusal is recorded ([`SecurityEvent::CertificateRejected`] from the verifier, and
//! [`SecurityEvent::ConnectionRefused`] from the accept loop in [`crate::server`]).

use core::fmt;
use std::sync::Arc;

use keyshard_pki::{Identity, IssuedCert, SecretPem};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::audit::{AuditSink, SecurityEvent};

/// Installs ring as the process-wide rustls provider, once; later calls do nothing. Call it at
/// start in a binary that links more than one provider (e.g. through libp2p), where rustls
/// would otherwise refuse to choose. This crate's own configs name ring explicitly.
pub fn install_crypto_provider() {
    // Err means a provider is already installed: nothing to do.
    let _ = ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Why TLS material is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsError {
    /// The CA certificate PEM.
    BadCa(String),
    /// This node's or client's certificate PEM.
    BadCertificate(String),
    /// The private key PEM.
    BadKey(String),
    /// rustls refused the combination (e.g. the key does not match the certificate).
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::BadCa(s) => write!(f, "bad CA certificate: {s}"),
            TlsError::BadCertificate(s) => write!(f, "bad certificate: {s}"),
            TlsError::BadKey(s) => write!(f, "bad private key: {s}"),
            TlsError::Config(s) => write!(f, "TLS configuration refused: {s}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The CA to trust, and one's own certificate and key (all PEM).
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    /// The cluster CA certificate(s).
    pub ca_pem: String,
    /// This party's certificate (first) and any intermediates.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: SecretPem,
}

impl TlsMaterial {
    /// From a CA certificate and a certificate issued by it.
    pub fn from_issued(ca_pem: &str, issued: IssuedCert) -> Self {
        TlsMaterial {
            ca_pem: ca_pem.to_string(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        }
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| TlsError::BadCa(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::BadCa(e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(TlsError::BadCa("no certificate in the PEM".into()));
        }
        Ok(roots)
    }

    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::BadCertificate("no certificate in the PEM".into()));
        }
        Ok(chain)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.expose().as_bytes())
            .map_err(|e| TlsError::BadKey(e.to_string()))
    }

    /// The identity in this party's own certificate.
    pub fn identity(&self) -> Result<Identity, TlsError> {
        let chain = self.chain()?;
        Identity::from_cert_der(&chain[0]).map_err(|e| TlsError::BadCertificate(e.to_string()))
    }

    /// The server side: requires a client certificate signed by the CA that carries a keyshard
    /// identity; refusals go to `audit`. ALPN `h2`.
    pub fn server_config(&self, audit: Arc<dyn AuditSink>) -> Result<Arc<ServerConfig>, TlsError> {
        let inner =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
        let verifier = Arc::new(AuditingVerifier { inner, audit });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain()?, self.key()?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client side (peer dialing, API clients): trusts only the CA and presents this
    /// party's certificate. The server's host name is checked against its certificate; callers
    /// check its keyshard identity too ([`crate::connect()`]).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain()?, self.key()?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The WebPKI client verifier, plus: the certificate must carry a keyshard identity, and every
/// refusal is recorded with the identity the certificate claims.
struct AuditingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    audit: Arc<dyn AuditSink>,
}

impl fmt::Debug for AuditingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditingVerifier")
    }
}

impl ClientCertVerifier for AuditingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let claimed = Identity::from_cert_der(end_entity);
        let refusal = match (
            self.inner
                .verify_client_cert(end_entity, intermediates, now),
            &claimed,
        ) {
            (Ok(verified), Ok(_)) => return Ok(verified),
            (Err(e), _) => e,
            (Ok(_), Err(no_identity)) => {
                rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                    Arc::new(Readable(no_identity.to_string())),
                )))
            }
        };
        self.audit.record(SecurityEvent::CertificateRejected {
            claimed: claimed.ok().map(|i| i.to_uri()),
            reason: refusal.to_string(),
        });
        Err(refusal)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// An error whose `Debug` is its message (rustls prints `Other` certificate errors with `Debug`).
struct Readable(String);

impl fmt::Debug for Readable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Readable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Readable {}
