//! Booting a node from its configuration: the store (sled by default, MongoDB if configured), the
//! sealing key, the restored core `Node`, and the event sink that feeds the audit log, the
//! metrics and the logs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use keyshard_core::node::{Event, Node, Request, RequestError, Response};
use keyshard_core::persist::KeyVersion;
use keyshard_core::rng::Seed;
use keyshard_store::{FileSealer, Sealer, Store, StoreError};

use crate::audit::{AuditEvent, SharedAuditLog};
use crate::config::{Config, StoreConfig};
use crate::daemon::{load_shares, Clock, EventSink};
use crate::metrics::{Metrics, Outcome, TaskType};

/// Why a node could not start.
#[derive(Debug)]
pub enum BootError {
    /// The data directory could not be created.
    DataDir(String),
    /// The store could not be opened or read.
    Store(StoreError),
    /// The restored state or the configuration was refused by the core.
    Node(String),
    /// The OS could not supply randomness for the node's seed.
    Randomness(String),
    /// The configured safe-primes file could not be read or is not one set of primes.
    Primes(String),
}

impl std::fmt::Display for BootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootError::DataDir(e) => write!(f, "data dir: {e}"),
            BootError::Store(e) => write!(f, "store: {e}"),
            BootError::Node(e) => write!(f, "node: {e}"),
            BootError::Randomness(e) => write!(f, "no OS randomness for the node seed: {e}"),
            BootError::Primes(e) => write!(f, "ecdsa.primes_file: {e}"),
        }
    }
}

impl std::error::Error for BootError {}

/// Opens the configured store; the sealing key lives in `<data_dir>/sealing.key` (0600). A TEE
/// deployment replaces this `FileSealer` with a sealer bound to the enclave's sealing key.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, BootError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        BootError::DataDir(format!("cannot create {}: {e}", config.data_dir.display()))
    })?;
    let sealer: Arc<dyn Sealer> = Arc::new(
        FileSealer::open_or_create(config.data_dir.join("sealing.key"))
            .map_err(BootError::Store)?,
    );
    let node = config.node_id.to_string();
    Ok(match &config.store {
        StoreConfig::Sled { path } => {
            Arc::new(keyshard_sled::SledStore::open(path, &node, sealer).map_err(BootError::Store)?)
        }
        StoreConfig::Mongo(uri) => Arc::new(
            keyshard_mongo::MongoStore::open(
                uri.expose(),
                &format!("keyshard_node_{node}"),
                &node,
                sealer,
            )
            .map_err(BootError::Store)?,
        ),
    })
}

/// Restores the core node from the store, with a fresh seed from the OS.
pub fn boot_node(config: &Config, store: &dyn Store, clock: &Clock) -> Result<Node, BootError> {
    let restored = store.restore().map_err(BootError::Store)?;
    let shares = load_shares(store, &restored.share_versions).map_err(BootError::Store)?;
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| BootError::Randomness(e.to_string()))?;
    let primes = config.primes_file.as_deref().map(load_primes).transpose()?;
    let mut node = Node::new(
        config.to_node_config(),
        restored,
        shares,
        Seed::from_bytes(seed),
        clock.now(),
    )
    .map_err(|e| BootError::Node(e.to_string()))?;
    if let Some(primes) = primes {
        node.handle_input(keyshard_core::node::Input::Primes {
            at: clock.now(),
            primes: Some(primes),
        })
        .map_err(|e| BootError::Node(e.to_string()))?;
    }
    Ok(node)
}

/// One set of safe primes from `ecdsa.primes_file` (JSON, as `SafePrimes::to_json` writes it;
/// sizes checked). A development/test option: the core refuses a set it already used for aux
/// info (its consumed marks survive restarts), so a file feeds one aux run once, however often
/// the node boots. The primes are the node's future Paillier secret, so the file gets the sealing
/// key's mode check: a regular file that neither group nor others may access.
fn load_primes(path: &std::path::Path) -> Result<keyshard_core::ecdsa::SafePrimes, BootError> {
    use std::io::Read;
    let err = |reason: String| BootError::Primes(format!("{}: {reason}", path.display()));
    let (mut file, _) = keyshard_store::open_private_file(
        path,
        "this node's Paillier primes",
        "use primes nobody else has seen",
    )
    .map_err(err)?;
    let mut text = zeroize::Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| err(format!("cannot read: {e}")))?;
    keyshard_core::ecdsa::SafePrimes::from_json(&text).map_err(err)
}

/// Feeds node events to the audit log, the metrics and the logs.
pub struct NodeEvents {
    audit: SharedAuditLog,
    metrics: Arc<Metrics>,
    /// When each client request this node received started, and its type (for metrics).
    started: BTreeMap<String, (StdInstant, TaskType)>,
    /// The presignature counters last reported.
    presign_seen: keyshard_core::node::PresignStats,
}

impl NodeEvents {
    /// A sink writing to `audit` and `metrics`.
    pub fn new(audit: SharedAuditLog, metrics: Arc<Metrics>) -> Self {
        NodeEvents {
            audit,
            metrics,
            started: BTreeMap::new(),
            presign_seen: Default::default(),
        }
    }
}

impl NodeEvents {
    fn request_started(&mut self, request_id: &str, request: &Request) {
        if self.started.len() < 100_000 {
            self.started
                .entry(request_id.to_string())
                .or_insert_with(|| (StdInstant::now(), TaskType::of(request)));
        }
    }

    fn audit(&self, event: AuditEvent) {
        if let Err(e) = self.audit.append(&event) {
            // An unwritable audit log is an operator emergency, but stopping key custody for it
            // would turn a disk problem into an outage; say it loudly on every event instead.
            tracing::error!(error = %e, "could not append to the audit log");
        }
    }
}

impl EventSink for NodeEvents {
    fn on_request(&mut self, request_id: &str, request: &Request) {
        self.request_started(request_id, request);
    }

    fn on_drained(&mut self, node: &Node) {
        let (now, seen) = (&node.presign_stats, &self.presign_seen);
        if now == seen {
            return;
        }
        if now.made > seen.made {
            tracing::info!(total = now.made, "ECDSA presignature filed in the pool");
        }
        if now.spent > seen.spent {
            tracing::info!(total = now.spent, "ECDSA presignatures spent on signing");
        }
        if now.failed > seen.failed {
            tracing::warn!(total = now.failed, "an ECDSA presigning run failed here");
        }
        if now.missing > seen.missing {
            tracing::warn!(
                total = now.missing,
                "a signing run named a presignature this node no longer holds (lost in a \
                 restart?); the leader retries with the interactive protocol"
            );
        }
        self.metrics
            .set_presignature_totals(now.made, now.spent, now.failed, now.missing);
        self.presign_seen = now.clone();
    }

    fn on_event(&mut self, node: &Node, event: &Event) {
        self.metrics.observe(event);
        match event {
            Event::LeaderChanged { leader, term } => {
                tracing::info!(leader = ?leader.map(|l| l.get()), term, "leader changed");
                self.audit(AuditEvent::LeaderChanged {
                    leader: leader.map(|l| l.get()),
                    term: *term,
                });
            }
            Event::LeaderTransfer { from, to, reason } => {
                tracing::warn!(from = from.get(), to = to.get(), %reason, "handing leadership over");
                self.audit(AuditEvent::LeaderTransfer {
                    from: from.get(),
                    to: to.get(),
                    reason: reason.clone(),
                });
            }
            Event::Completed { request_id, result } => {
                if let Some((at, task)) = self.started.remove(request_id) {
                    self.metrics
                        .task_finished(task, Outcome::of(result), at.elapsed());
                }
                match result {
                    Ok(Response::Signed {
                        key,
                        version,
                        signatures,
                    }) => self.audit(AuditEvent::Signed {
                        key: key.to_string(),
                        version: version.0,
                        count: u32::try_from(signatures.len()).unwrap_or(u32::MAX),
                        request_id: request_id.clone(),
                    }),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::info!(request_id = %request_id, error = %describe(e), "request failed");
                    }
                }
            }
            Event::KeyRegistered { key, version } => {
                let scheme = node
                    .registry()
                    .keys
                    .get(key)
                    .map(|k| k.scheme.name().to_string())
                    .unwrap_or_default();
                tracing::info!(key = %key, version = version.0, "key version active");
                if *version == KeyVersion(1) {
                    self.audit(AuditEvent::KeyCreated {
                        key: key.to_string(),
                        scheme,
                        version: version.0,
                    });
                } else {
                    self.audit(AuditEvent::Reshared {
                        key: key.to_string(),
                        from_version: version.0 - 1,
                        to_version: version.0,
                    });
                }
            }
            Event::PeerMisbehaved { peer, reason } => {
                tracing::warn!(peer = peer.get(), %reason, "refused a peer message");
                self.audit(AuditEvent::PeerMisbehaved {
                    peer: peer.get(),
                    reason: reason.clone(),
                });
            }
            Event::SessionFailed { session, failure } => {
                tracing::warn!(?session, ?failure, "session failed");
            }
            Event::MembershipChanged { members, .. } => {
                self.audit(AuditEvent::MembershipChanged {
                    members: members.keys().map(|p| p.get()).collect(),
                });
            }
            Event::Removed => {
                tracing::warn!("this node was removed from the cluster; its shares are erased");
                self.audit(AuditEvent::NodeRemoved {
                    node: node.id().get(),
                });
            }
            Event::BadLogEntry { index, reason } => {
                tracing::error!(index, %reason, "skipped a committed log entry");
            }
            Event::PrimesRefused {
                fingerprint,
                reason,
            } => {
                // In practice only `ecdsa.primes_file` repeats primes (the generator draws from
                // OS randomness): say what to do about it.
                tracing::error!(
                    %fingerprint,
                    %reason,
                    "refused safe primes this node already used for ECDSA aux info (its \
                     Paillier key would serve twice); a primes file is a development/test option \
                     that feeds one set once: remove `ecdsa.primes_file` or point it at a file \
                     of primes never used, and let the node generate its primes in the \
                     background (`ecdsa.prime_pool` > 0)"
                );
            }
        }
    }

    fn on_persist(&mut self, took: std::time::Duration) {
        tracing::trace!(?took, "persisted");
    }
}

/// A request error in words.
pub fn describe(e: &RequestError) -> String {
    match e {
        RequestError::BadRequest(s) => format!("bad request: {s}"),
        RequestError::NoSuchKey(k) => format!("no such key {k}"),
        RequestError::KeyExists(k) => format!("key {k} already exists"),
        RequestError::NotEnoughParticipants { needed, available } => {
            format!("not enough healthy participants: need {needed}, have {available}")
        }
        RequestError::Failed { reason, culprits } => {
            let ids: Vec<u16> = culprits.iter().map(|p| p.get()).collect();
            format!("protocol failed: {reason} (blamed: {ids:?})")
        }
        RequestError::TimedOut => "timed out".into(),
    }
}

/// Whether `dir` looks like a node data directory (for tools that must not clobber one).
pub fn is_data_dir(dir: &Path) -> bool {
    dir.join("sealing.key").exists()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const PRIMES: &str = include_str!("../../core/tests/fixtures/ecdsa/primes-p1.json");

    /// The primes file gets the sealing key's mode check (issue 16, item 8): any access by group
    /// or others is refused with the path and the fix in the message; 0600 and 0400 load.
    #[test]
    fn a_primes_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("primes.json");
        std::fs::write(&path, PRIMES).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let msg = load_primes(&path).unwrap_err().to_string();
            assert!(
                msg.contains("group or others")
                    && msg.contains("primes.json")
                    && msg.contains("chmod 600"),
                "{msg}"
            );
            assert!(!msg.contains(&PRIMES[40..80]), "the error shows no prime");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(load_primes(&path).is_ok(), "{mode:o}");
        }
        assert!(load_primes(dir.path())
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        let missing = load_primes(&dir.path().join("none")).unwrap_err();
        assert!(
            missing.to_string().starts_with("ecdsa.primes_file: "),
            "{missing}"
        );
    }
}
