//! gRPC over mutual TLS for keyshard: the peer transport between nodes and the client API.
//!
//! An adapter: it authenticates, authorizes, validates and moves bytes; protocol logic stays in
//! the core. The pieces:
//!
//! - [`tls`]: server and client rustls configurations from PEM (TLS 1.3, ring). The server
//!   requires a client certificate from the cluster CA carrying a keyshard identity.
//! - [`identity`]: the caller's [`keyshard_pki::Identity`] from its TLS certificate.
//! - [`authz`]: which role may call which RPC; refusals are `PERMISSION_DENIED` and audited.
//! - [`audit`]: [`SecurityEvent`]s and the [`AuditSink`] hook the daemon implements.
//! - [`peer`]: [`PeerTransport`], one bidirectional stream per node pair with bounded queues.
//! - [`client`]: [`ClientBackend`], the trait the node implements for the client API.
//! - [`connect()`]: dial a node, checking its certificate names the node expected.
//! - [`server`]: [`serve`] runs all services and health/reflection on one mTLS listener.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod authz;
pub mod client;
pub mod connect;
pub mod identity;
pub mod peer;
pub mod server;
pub mod tls;

pub use audit::{AuditSink, MemoryAudit, SecurityEvent};
pub use client::{ClientBackend, ClientService, MAX_CLIENT_MESSAGE};
pub use connect::{connect, ConnectError, ConnectOptions, ExpectServer};
pub use identity::peer_identity;
pub use peer::{Inbound, PeerConfig, PeerStats, PeerTransport, SendError};
pub use server::{serve, ServeConfig, ServeError};
pub use tls::{install_crypto_provider, TlsError, TlsMaterial};
pub use tonic_health::server::HealthReporter;
