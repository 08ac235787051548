//! Dialing a node over mutual TLS, checking that the server is the node expected.

use core::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::NodeRole;
use keyshard_pki::Identity;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::audit::{AuditSink, SecurityEvent};

/// Connection settings.
#[derive(Clone, Copy, Debug)]
pub struct ConnectOptions {
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval (a dead peer is noticed within interval + timeout).
    pub keepalive_interval: Duration,
    /// How long to wait for a ping's answer.
    pub keepalive_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// Which server certificate is acceptable, beyond CA and host name checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectServer {
    /// Any cluster node.
    AnyNode,
    /// This node.
    Node(ParticipantId),
    /// This node, with this role in its certificate (the registry's role for it).
    NodeWithRole(ParticipantId, NodeRole),
}

/// Why a connection could not be made.
#[derive(Debug)]
pub struct ConnectError(String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

/// The host part of `host:port` (`[v6]:port` gives `v6`).
fn host_of(addr: &str) -> Option<&str> {
    let (host, _port) = addr.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// Opens a gRPC channel to the node at `addr` (`host:port`) over mutual TLS with `tls`
/// ([`crate::TlsMaterial::client_config`]). The server's certificate must be signed by the CA,
/// match `host`, and name a node as `expect` says; a certificate naming another node is refused
/// (and recorded as [`SecurityEvent::PeerRejected`] if `audit` is given). The channel reconnects
/// through the same checks.
pub async fn connect(
    addr: &str,
    tls: Arc<ClientConfig>,
    expect: ExpectServer,
    options: &ConnectOptions,
    audit: Option<Arc<dyn AuditSink>>,
) -> Result<Channel, ConnectError> {
    let host = host_of(addr).ok_or_else(|| ConnectError(format!("{addr:?} is not host:port")))?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| ConnectError(format!("{host:?} is not a host name or IP address: {e}")))?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| ConnectError(format!("{addr:?}: {e}")))?
        .connect_timeout(options.connect_timeout)
        .http2_keep_alive_interval(options.keepalive_interval)
        .keep_alive_timeout(options.keepalive_timeout)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    let addr = addr.to_string();
    let connector = tower::service_fn(move |_: Uri| {
        let (addr, name, tls, audit) = (addr.clone(), name.clone(), tls.clone(), audit.clone());
        async move {
            let tcp = TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let stream = TlsConnector::from(tls).connect(name, tcp).await?;
            let (_, session) = stream.get_ref();
            let leaf = session
                .peer_certificates()
                .and_then(|c| c.first())
                .ok_or_else(|| io::Error::other("the server sent no certificate"))?;
            let who = Identity::from_cert_der(leaf)
                .map_err(|e| io::Error::other(format!("server certificate: {e}")))?;
            let ok = match expect {
                ExpectServer::AnyNode => who.node_id().is_some(),
                ExpectServer::Node(id) => who.node_id() == Some(id),
                ExpectServer::NodeWithRole(id, role) => who == (Identity::Node { id, role }),
            };
            if !ok {
                let reason = match expect {
                    ExpectServer::AnyNode => format!("dialed {addr}, which is not a node"),
                    ExpectServer::Node(id) => {
                        format!("dialed node {id} at {addr} but its certificate names {who}")
                    }
                    ExpectServer::NodeWithRole(id, role) => format!(
                        "dialed node {id} at {addr} (role {} in the registry) but its \
                         certificate names {who}",
                        Identity::Node { id, role }.role()
                    ),
                };
                if let Some(audit) = &audit {
                    audit.record(SecurityEvent::PeerRejected {
                        who,
                        reason: reason.clone(),
                    });
                }
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, reason));
            }
            Ok::<_, io::Error>(TokioIo::new(stream))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| ConnectError(error_chain(&e)))
}

/// An error and its sources on one line (tonic's own message is only "transport error").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_are_split_from_ports() {
        assert_eq!(host_of("localhost:80"), Some("localhost"));
        assert_eq!(host_of("127.0.0.1:7400"), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:7400"), Some("::1"));
        assert_eq!(host_of(":80"), None);
        assert_eq!(host_of("nohost"), None);
    }
}
