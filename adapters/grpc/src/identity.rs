//! Who is calling: always from the TLS client certificate, never from a message field.

use keyshard_pki::Identity;
use tonic::{Request, Status};

/// The caller's identity, from the certificate it presented in the TLS handshake.
///
/// `UNAUTHENTICATED` if the connection has no client certificate or the certificate names no
/// keyshard identity (neither passes this crate's TLS configuration, so this only happens
/// behind a misconfigured listener).
pub fn peer_identity<T>(request: &Request<T>) -> Result<Identity, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate on this connection"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate on this connection"))?;
    Identity::from_cert_der(leaf).map_err(|e| Status::unauthenticated(e.to_string()))
}
