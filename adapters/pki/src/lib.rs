//! Who is on the other end of a TLS connection, from its X.509 certificate.
//!
//! Every keyshard certificate carries exactly one URI subject alternative name that says who it
//! is and in which role:
//!
//! ```text
//! keyshard://node/<id>?role=tee|mesh                 a cluster node (id: 1 to 65535)
//! keyshard://client/<name>?role=application|admin   a client (name: 1 to 64 of [a-z0-9._-])
//! ```
//!
//! [`Identity`] parses and formats that URI (strictly: one canonical spelling per identity) and
//! reads it out of a DER certificate ([`Identity::from_cert_der`]). [`CertificateAuthority`]
//! issues such certificates with ECDSA P-256 keys (for tests, tooling and small deployments).
//! This crate does not validate certificate chains or dates: TLS does that before an identity
//! is ever read.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ca;
mod cert;
mod identity;

pub use ca::{CertificateAuthority, IssueOptions, IssuedCert, PkiError, SecretPem, Validity};
pub use identity::{ClientName, ClientRole, Identity, IdentityError, Role};
pub use keyshard_core::node::registry::NodeRole;
