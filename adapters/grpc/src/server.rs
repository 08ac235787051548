//! One mutual-TLS listener for everything: the peer stream, the client API, health checking
//! and server reflection.

use core::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::audit::{AuditSink, SecurityEvent};
use crate::client::{ClientBackend, ClientService};
use crate::connect::error_chain;
use crate::peer::PeerTransport;

/// The client API's service name (for health checks).
pub const CLIENT_SERVICE: &str = "keyshard.client.v1.Keyshard";
/// The peer service's name (for health checks).
pub const PEER_SERVICE: &str = "keyshard.peer.v1.Peer";
/// TLS handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;

/// What [`serve`] runs.
pub struct ServeConfig<B> {
    /// The server TLS configuration ([`crate::TlsMaterial::server_config`], with the same audit
    /// sink so certificate refusals are recorded).
    pub tls: Arc<ServerConfig>,
    /// Where refusals go.
    pub audit: Arc<dyn AuditSink>,
    /// The peer transport whose `Peer` service is mounted. Shut down with the server.
    pub peers: PeerTransport,
    /// The node behind the client API.
    pub backend: Arc<B>,
    /// Health statuses (`""`, [`CLIENT_SERVICE`] and [`PEER_SERVICE`] are set to `SERVING` at
    /// start, `NOT_SERVING` at shutdown); keep a clone to change them.
    pub health: HealthReporter,
    /// A TLS handshake slower than this is dropped (and recorded).
    pub handshake_timeout: Duration,
}

/// Why the server stopped with an error.
#[derive(Debug)]
pub struct ServeError(String);

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

/// Serves the peer stream, the client API, `grpc.health.v1` and gRPC reflection (v1) on
/// `listener`, every connection over mutual TLS, until `shutdown` completes. Failed handshakes
/// are recorded as [`SecurityEvent::ConnectionRefused`]. On shutdown the peer transport is shut
/// down too (its long-lived streams would otherwise hold the graceful shutdown open).
pub async fn serve<B: ClientBackend>(
    listener: TcpListener,
    config: ServeConfig<B>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(keyshard_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError(format!("reflection: {e}")))?;
    let health = config.health.clone();
    for name in ["", CLIENT_SERVICE, PEER_SERVICE] {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }

    let stop = CancellationToken::new();
    let (conns, incoming) = mpsc::channel(64);
    tokio::spawn(accept(
        listener,
        TlsAcceptor::from(config.tls),
        config.audit.clone(),
        config.handshake_timeout,
        conns,
        stop.clone(),
    ));

    let peers = config.peers.clone();
    let signal = {
        let stop = stop.clone();
        let health = health.clone();
        async move {
            shutdown.await;
            for name in ["", CLIENT_SERVICE, PEER_SERVICE] {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            stop.cancel();
            peers.shutdown();
        }
    };
    let result = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(config.peers.service())
        .add_service(ClientService::new(config.backend, config.audit).into_server())
        .add_service(HealthServer::new(HealthService::from_health_reporter(
            config.health,
        )))
        .add_service(reflection)
        .serve_with_incoming_shutdown(ReceiverStream::new(incoming), signal)
        .await;
    stop.cancel();
    result.map_err(|e| ServeError(error_chain(&e)))
}

type Conn = io::Result<TlsStream<TcpStream>>;

/// Accepts TCP connections and completes their TLS handshakes concurrently (at most
/// [`MAX_HANDSHAKES`] at a time), passing established connections to tonic and recording
/// every failed handshake.
async fn accept(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    audit: Arc<dyn AuditSink>,
    handshake_timeout: Duration,
    conns: mpsc::Sender<Conn>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => {
                    // Out of file descriptors or similar: back off briefly, keep serving.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, audit, conns, stop) =
            (acceptor.clone(), audit.clone(), conns.clone(), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = tokio::select! {
                r = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)) => r,
                _ = stop.cancelled() => return,
            };
            let reason = match handshake {
                Ok(Ok(stream)) => {
                    let _ = conns.send(Ok(stream)).await;
                    return;
                }
                Ok(Err(e)) => format!("TLS handshake failed: {e}"),
                Err(_) => format!("TLS handshake took longer than {handshake_timeout:?}"),
            };
            audit.record(SecurityEvent::ConnectionRefused {
                remote: Some(remote),
                reason,
            });
        });
    }
}
