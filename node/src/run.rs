//! `keyshard node --config FILE`: everything a production node runs, wired together.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::NodeRole;
use keyshard_grpc::{
    install_crypto_provider, serve, AuditSink, PeerConfig, PeerTransport, SecurityEvent,
    ServeConfig, TlsMaterial,
};
use keyshard_pki::{Identity, SecretPem};

use crate::audit::{AuditEvent, AuditKey, AuditLog, SharedAuditLog, SystemClock};
use crate::config::Config;
use crate::daemon::{Clock, Command, Daemon, DaemonHandle, DaemonParts, PeerSink};
use crate::metrics::{http::MetricsServer, Metrics};
use crate::service::{boot_node, open_store, NodeEvents};

/// Why the node stopped with an error (the message says what to fix).
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

fn fail(what: &str) -> impl FnOnce(String) -> RunError + '_ {
    move |e| RunError(format!("{what}: {e}"))
}

/// Reads the TLS files and checks that the certificate names this node.
pub fn tls_material(config: &Config) -> Result<TlsMaterial, RunError> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| RunError(format!("cannot read {}: {e}", p.display())))
    };
    let material = TlsMaterial {
        ca_pem: read(&config.tls.ca_cert)?,
        cert_pem: read(&config.tls.node_cert)?,
        key_pem: SecretPem::new(read(&config.tls.node_key)?),
    };
    let identity = material
        .identity()
        .map_err(|e| RunError(format!("{}: {e}", config.tls.node_cert.display())))?;
    match identity {
        Identity::Node { id, .. } if id == config.node_id => Ok(material),
        other => Err(RunError(format!(
            "{} names {}, not node {}",
            config.tls.node_cert.display(),
            other.to_uri(),
            config.node_id
        ))),
    }
}

/// Security events from the transport, into the audit log and the logs.
struct AuditBridge(SharedAuditLog);

impl AuditSink for AuditBridge {
    fn record(&self, event: SecurityEvent) {
        tracing::warn!(%event, "refused");
        let entry = match &event {
            SecurityEvent::PermissionDenied { who, rpc, reason } => AuditEvent::PermissionDenied {
                who: who.to_uri(),
                rpc: (*rpc).to_string(),
                reason: reason.clone(),
            },
            SecurityEvent::PeerRejected { who, reason } => AuditEvent::PeerRejected {
                who: who.to_uri(),
                reason: reason.clone(),
            },
            SecurityEvent::ConnectionRefused { remote, reason } => AuditEvent::PeerRejected {
                who: remote.map_or_else(|| "unknown".into(), |a| a.to_string()),
                reason: format!("TLS handshake refused: {reason}"),
            },
            SecurityEvent::CertificateRejected { claimed, reason } => AuditEvent::PeerRejected {
                who: claimed
                    .clone()
                    .unwrap_or_else(|| "no keyshard identity".into()),
                reason: format!("certificate rejected: {reason}"),
            },
        };
        if let Err(e) = self.0.append(&entry) {
            tracing::error!(error = %e, "could not append to the audit log");
        }
    }
}

/// The transport as the run loop's peer sink; drops are counted in metrics.
struct Peers {
    transport: PeerTransport,
    metrics: Arc<Metrics>,
    /// Initial members' addresses (from the config); runtime additions come from the registry.
    configured: BTreeMap<ParticipantId, String>,
    /// Initial members' roles (from the config); the registry's roles replace them.
    configured_roles: BTreeMap<ParticipantId, NodeRole>,
}

impl PeerSink for Peers {
    fn send(&self, to: ParticipantId, bytes: Vec<u8>) {
        if let Err(e) = self.transport.try_send(to, bytes) {
            tracing::debug!(to = to.get(), error = %e, "frame not sent");
            if matches!(e, keyshard_grpc::SendError::QueueFull(_)) {
                self.metrics.peer_message_dropped(to);
            }
        }
    }

    fn update_peers(
        &self,
        members: &BTreeMap<ParticipantId, NodeRole>,
        addresses: &BTreeMap<ParticipantId, String>,
    ) {
        // Roles first: a peer added below is dialed (and admitted) only with its role known.
        let mut roles = self.configured_roles.clone();
        roles.extend(members.iter().map(|(k, v)| (*k, *v)));
        self.transport.set_roles(roles);
        let mut all = self.configured.clone();
        all.extend(addresses.iter().map(|(k, v)| (*k, v.clone())));
        self.transport.set_peers(all);
    }
}

/// Runs a node until SIGINT/SIGTERM or a fatal error.
pub async fn run_node(config: Config) -> Result<(), RunError> {
    install_crypto_provider();
    let tls = tls_material(&config)?;
    let me = config.node_id;

    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| RunError(format!("cannot create {}: {e}", config.data_dir.display())))?;
    if let Some(parent) = config.audit_log.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| RunError(format!("cannot create {}: {e}", parent.display())))?;
    }
    // The audit chain is keyed by a sub-key of the sealing key, so the key must exist before
    // the log opens; creating it here is what `open_store` would do a moment later anyway.
    let sealing_key = config.data_dir.join(crate::audit::SEALING_KEY_FILE);
    keyshard_store::FileSealer::open_or_create(&sealing_key)
        .map_err(|e| RunError(format!("audit log: {e}")))?;
    let audit_key = AuditKey::from_sealing_key_file(&sealing_key)
        .map_err(|e| RunError(format!("audit log: {e}")))?;
    let audit_log = AuditLog::open_repairing(
        &config.audit_log,
        &config.data_dir.join(crate::audit::CHECKPOINT_FILE),
        me.get(),
        audit_key,
        std::time::SystemTime::now(),
    )
    .map_err(|e| RunError(format!("audit log {}: {e}", config.audit_log.display())))?
    .0;
    let audit = SharedAuditLog::new(audit_log, Arc::new(SystemClock));
    audit
        .append(&AuditEvent::NodeStarted {
            node: me.get(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .map_err(|e| RunError(format!("audit log: {e}")))?;
    let sink: Arc<dyn AuditSink> = Arc::new(AuditBridge(audit.clone()));

    let store = open_store(&config).map_err(|e| RunError(e.to_string()))?;
    let clock = Clock::new();

    let metrics = Arc::new(Metrics::new());
    let _metrics_server = match config.metrics_listen {
        Some(addr) => Some(
            MetricsServer::bind(addr, metrics.clone())
                .await
                .map_err(|e| RunError(format!("metrics endpoint {addr}: {e}")))?,
        ),
        None => None,
    };

    let configured: BTreeMap<ParticipantId, String> = config
        .peers
        .iter()
        .map(|(id, p)| (*id, p.address.to_string()))
        .collect();
    let client_tls = tls
        .client_config()
        .map_err(|e| fail("TLS")(e.to_string()))?;
    // A peer's certificate must carry the role the registry (at first: the config) gives it.
    let configured_roles: BTreeMap<ParticipantId, NodeRole> =
        config.peers.iter().map(|(id, p)| (*id, p.role)).collect();
    let mut peer_config = PeerConfig::new(me, configured.clone());
    peer_config.roles = Some(configured_roles.clone());
    let (transport, mut inbound) = PeerTransport::start(peer_config, client_tls, sink.clone());
    let peers = Arc::new(Peers {
        transport: transport.clone(),
        metrics: metrics.clone(),
        configured,
        configured_roles,
    });
    let events = Box::new(NodeEvents::new(audit.clone(), metrics.clone()));
    let boot = {
        let (config, store) = (config.clone(), store.clone());
        move || {
            let node = boot_node(&config, store.as_ref(), &clock)
                .map_err(|e| crate::daemon::RunError::Node(e.to_string()))?;
            tracing::info!(node = me.get(), leader = ?node.leader(), "node restored");
            Ok(node)
        }
    };
    let parts = DaemonParts {
        store,
        peers: peers.clone(),
        events,
        clock,
    };
    let (handle, daemon_task) = Daemon::spawn(boot, parts)
        .await
        .map_err(|e| RunError(e.to_string()))?;
    // Membership added at run time (registry addresses) joins the configured peers.
    if let Ok((m, a)) = handle
        .query(|n| (n.registry().members.clone(), n.registry().addresses.clone()))
        .await
    {
        peers.update_peers(&m, &a);
    }

    // Inbound frames to the run loop (back-pressure: the transport's inbound queue fills).
    let h = handle.clone();
    tokio::spawn(async move {
        while let Some((from, bytes)) = inbound.recv().await {
            if h.send(Command::Peer { from, bytes }).await.is_err() {
                return;
            }
        }
    });
    spawn_peer_watch(transport.clone(), handle.clone(), metrics.clone());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| RunError(format!("cannot listen on {}: {e}", config.listen)))?;
    let (health, _) = tonic_health::server::health_reporter();
    let serve_config = ServeConfig {
        tls: tls
            .server_config(sink.clone())
            .map_err(|e| fail("TLS")(e.to_string()))?,
        audit: sink,
        peers: transport,
        backend: Arc::new(crate::api::Backend::new(handle.clone())),
        health,
        handshake_timeout: Duration::from_secs(10),
    };
    tracing::info!(node = me.get(), listen = %config.listen, "serving");
    let stop_handle = handle.clone();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("signal received, stopping");
        let _ = stop_handle.send(Command::Shutdown).await;
    };
    let server = tokio::spawn(serve(listener, serve_config, shutdown));
    let result = daemon_task
        .await
        .map_err(|e| RunError(format!("run loop: {e}")))?;
    let _ = audit.append(&AuditEvent::NodeStopping { node: me.get() });
    server.abort();
    result.map_err(|e| RunError(e.to_string()))
}

/// Tells the node when peers connect and disconnect, and exports queue depths.
fn spawn_peer_watch(transport: PeerTransport, handle: DaemonHandle, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        let mut up: BTreeMap<ParticipantId, bool> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            for (peer, stats) in transport.stats() {
                metrics.set_peer_queue_depth(peer, stats.queued);
                let before = up.insert(peer, stats.connected);
                // Not yet connected at start is not news; a change after that is.
                let changed = match before {
                    None => stats.connected,
                    Some(b) => b != stats.connected,
                };
                if changed {
                    let cmd = Command::PeerStatus {
                        peer,
                        up: stats.connected,
                    };
                    if handle.send(cmd).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
