//! The peer transport: one bidirectional gRPC stream per pair of nodes, carrying the core's
//! encoded `NodeMessage`s opaquely.
//!
//! - The node with the lower id dials the higher one (`Peer/Stream`); frames in both
//!   directions flow over that one stream. A dial in the other direction is refused.
//! - The dialer reconnects with exponential backoff and jitter; a new stream from a peer
//!   replaces its previous one.
//! - Every peer has a bounded send queue that outlives connections. [`PeerTransport::try_send`]
//!   never waits: a full queue drops the frame and counts it (the core's protocols retransmit or
//!   time out), so a slow or dead peer never blocks the others or grows memory without bound.
//! - Inbound frames from all peers arrive on one channel as `(from, payload)`; `from` is the node
//!   named by the authenticated certificate on the stream, never a field of the frame.
//! - Frames larger than the configured limit are refused on both sides (tonic's message size
//!   limits and an explicit payload check).
//! - The member map (`id -> host:port`) can change at run time ([`PeerTransport::set_peers`]).
//!   A node certificate whose id is not a member is refused and audited.
//! - With a role map ([`PeerConfig::roles`], [`PeerTransport::set_roles`]; the node always sets
//!   one from its registry), a peer's certificate must also carry the role the registry gives
//!   that node (`tee` or `mesh`), in both directions: a mismatch, or a member without a known
//!   role, is refused and audited ([`check_role`]).

mod dial;
mod service;
mod stream;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use core::fmt;

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::NodeRole;
use keyshard_core::node::wire::MAX_MESSAGE;
use rustls::ClientConfig;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditSink;
use crate::connect::ConnectOptions;

pub use service::PeerService;

/// A frame from a peer: the authenticated sender and the payload (untrusted bytes).
pub type Inbound = (ParticipantId, Vec<u8>);

/// Room for the protobuf framing around a payload in tonic's message size limit.
const FRAME_OVERHEAD: usize = 16;

/// Peer transport settings. [`PeerConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// This node.
    pub id: ParticipantId,
    /// The members' addresses (`host:port`); this node's own entry is ignored.
    pub peers: BTreeMap<ParticipantId, String>,
    /// Frames queued per peer before new ones are dropped (default 1,024).
    pub queue_capacity: usize,
    /// Bytes queued per peer before new frames are dropped (default 256 MiB; never less than
    /// `max_frame_bytes`, so one frame of the largest size always fits an empty queue).
    pub queue_bytes: usize,
    /// Frames buffered on the inbound channel before readers wait (default 4,096).
    pub inbound_capacity: usize,
    /// Largest payload sent or accepted (default the core's `MAX_MESSAGE`). With the inbound
    /// capacity this bounds the memory inbound frames can take: a node that stops reading its
    /// channel holds at most `inbound_capacity` frames, then HTTP/2 flow control stops the
    /// senders, whose queues fill and drop.
    pub max_frame_bytes: usize,
    /// First reconnection delay (default 100 ms); doubles per failure up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest reconnection delay (default 10 s). Each delay is drawn from [d/2, d].
    pub backoff_max: Duration,
    /// Dial settings (timeouts, keep-alive).
    pub connect: ConnectOptions,
    /// The role each member has in the cluster registry. `Some`: a peer's certificate must
    /// carry exactly that role, and a member missing from the map is refused; `None` (the
    /// default of [`PeerConfig::new`]): roles are not compared, any node role is accepted.
    pub roles: Option<BTreeMap<ParticipantId, NodeRole>>,
}

impl PeerConfig {
    /// Defaults for node `id` with members at `peers`.
    pub fn new(id: ParticipantId, peers: BTreeMap<ParticipantId, String>) -> Self {
        PeerConfig {
            id,
            peers,
            queue_capacity: 1024,
            queue_bytes: 256 * 1024 * 1024,
            inbound_capacity: 4096,
            max_frame_bytes: MAX_MESSAGE,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            connect: ConnectOptions::default(),
            roles: None,
        }
    }
}

/// Whether node `id` may act as a peer with the role its certificate names (`presented`),
/// given the registry's roles (`None`: roles are not compared). The refusal says what the
/// certificate claims and what the registry holds.
pub fn check_role(
    roles: Option<&BTreeMap<ParticipantId, NodeRole>>,
    id: ParticipantId,
    presented: NodeRole,
) -> Result<(), String> {
    let Some(roles) = roles else {
        return Ok(());
    };
    match roles.get(&id) {
        Some(r) if *r == presented => Ok(()),
        Some(r) => Err(format!(
            "node {id}'s certificate says role {}, but the registry says {}",
            role_name(presented),
            role_name(*r)
        )),
        None => Err(format!(
            "node {id} has no role in the registry (its certificate says {})",
            role_name(presented)
        )),
    }
}

fn role_name(r: NodeRole) -> &'static str {
    match r {
        NodeRole::Tee => "tee",
        NodeRole::Mesh => "mesh",
    }
}

/// Why a frame was not queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Not a member (or this node itself).
    UnknownPeer(ParticipantId),
    /// Larger than `max_frame_bytes`.
    TooLarge {
        /// The payload's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer's queue is full; the frame was dropped and counted.
    QueueFull(ParticipantId),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::UnknownPeer(p) => write!(f, "node {p} is not a peer"),
            SendError::TooLarge { len, max } => {
                write!(f, "a {len}-byte frame exceeds the {max}-byte limit")
            }
            SendError::QueueFull(p) => write!(f, "the queue to node {p} is full; frame dropped"),
        }
    }
}

impl std::error::Error for SendError {}

/// One peer's counters, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// Where it is dialed (or would be).
    pub address: String,
    /// Whether a stream to it is up.
    pub connected: bool,
    /// Frames waiting in its queue.
    pub queued: usize,
    /// Bytes waiting in its queue.
    pub queued_bytes: usize,
    /// The queue's capacity.
    pub capacity: usize,
    /// Frames dropped because the queue was full (by count or by bytes).
    pub dropped: u64,
    /// Frames handed to a stream.
    pub sent: u64,
    /// Frames received from it.
    pub received: u64,
    /// Streams established with it so far.
    pub connects: u64,
}

/// One peer: its queue (which outlives connections), address and counters.
struct Slot {
    id: ParticipantId,
    address: watch::Sender<String>,
    tx: mpsc::Sender<Vec<u8>>,
    /// Taken by whichever stream currently sends to this peer.
    rx: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
    capacity: usize,
    /// Payload bytes in the queue.
    queued_bytes: AtomicUsize,
    /// Cancelled when the peer is removed or the transport shuts down.
    stop: CancellationToken,
    /// The accepted stream currently serving this peer (a new one cancels it).
    current: Mutex<Option<CancellationToken>>,
    live: AtomicUsize,
    dropped: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    connects: AtomicU64,
}

impl Slot {
    /// Marks a stream as up until the guard drops.
    fn up(self: &Arc<Self>) -> LiveGuard {
        self.live.fetch_add(1, Ordering::Relaxed);
        self.connects.fetch_add(1, Ordering::Relaxed);
        LiveGuard(self.clone())
    }
}

struct LiveGuard(Arc<Slot>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Shared {
    me: ParticipantId,
    runtime: tokio::runtime::Handle,
    queue_capacity: usize,
    queue_bytes: usize,
    max_frame_bytes: usize,
    backoff_initial: Duration,
    backoff_max: Duration,
    connect: ConnectOptions,
    tls: Arc<ClientConfig>,
    audit: Arc<dyn AuditSink>,
    inbound: mpsc::Sender<Inbound>,
    slots: Mutex<BTreeMap<ParticipantId, Arc<Slot>>>,
    roles: Mutex<Option<BTreeMap<ParticipantId, NodeRole>>>,
    shutdown: CancellationToken,
}

impl Shared {
    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<ParticipantId, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, id: ParticipantId) -> Option<Arc<Slot>> {
        self.slots().get(&id).cloned()
    }

    /// The registry roles, if roles are compared.
    fn roles(&self) -> Option<BTreeMap<ParticipantId, NodeRole>> {
        self.roles.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// [`check_role`] against the current role map.
    fn check_role(&self, id: ParticipantId, presented: NodeRole) -> Result<(), String> {
        check_role(
            self.roles
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref(),
            id,
            presented,
        )
    }

    /// tonic's message size limit for peer streams.
    fn message_limit(&self) -> usize {
        self.max_frame_bytes.saturating_add(FRAME_OVERHEAD)
    }
}

/// The peer transport of one node. Cheap to clone (all clones share the same state). Must be
/// created inside a tokio runtime; call [`PeerTransport::shutdown`] to stop its tasks.
#[derive(Clone)]
pub struct PeerTransport {
    shared: Arc<Shared>,
}

impl fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTransport")
            .field("id", &self.shared.me)
            .field("peers", &self.shared.slots().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PeerTransport {
    /// Starts the transport on the current tokio runtime (panics outside one, like
    /// `tokio::spawn`): dials every member with a higher id. `tls` is this node's client
    /// configuration ([`crate::TlsMaterial::client_config`]). Returns the inbound channel.
    pub fn start(
        config: PeerConfig,
        tls: Arc<ClientConfig>,
        audit: Arc<dyn AuditSink>,
    ) -> (PeerTransport, mpsc::Receiver<Inbound>) {
        let (inbound, rx) = mpsc::channel(config.inbound_capacity.max(1));
        let shared = Arc::new(Shared {
            me: config.id,
            runtime: tokio::runtime::Handle::current(),
            queue_capacity: config.queue_capacity.max(1),
            queue_bytes: config.queue_bytes.max(config.max_frame_bytes),
            max_frame_bytes: config.max_frame_bytes,
            backoff_initial: config.backoff_initial,
            backoff_max: config.backoff_max.max(config.backoff_initial),
            connect: config.connect,
            tls,
            audit,
            inbound,
            slots: Mutex::new(BTreeMap::new()),
            roles: Mutex::new(config.roles),
            shutdown: CancellationToken::new(),
        });
        let transport = PeerTransport { shared };
        transport.set_peers(config.peers);
        (transport, rx)
    }

    /// This node's id.
    pub fn id(&self) -> ParticipantId {
        self.shared.me
    }

    /// Queues `payload` for `to` without waiting.
    pub fn try_send(&self, to: ParticipantId, payload: Vec<u8>) -> Result<(), SendError> {
        if payload.len() > self.shared.max_frame_bytes {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max: self.shared.max_frame_bytes,
            });
        }
        let slot = self.shared.slot(to).ok_or(SendError::UnknownPeer(to))?;
        let len = payload.len();
        let before = slot.queued_bytes.fetch_add(len, Ordering::AcqRel);
        let refused = if before.saturating_add(len) > self.shared.queue_bytes {
            Err(SendError::QueueFull(to))
        } else {
            match slot.tx.try_send(payload) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => Err(SendError::QueueFull(to)),
                // The slot's receiver lives as long as the slot: only a removed peer gets here.
                Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::UnknownPeer(to)),
            }
        };
        slot.queued_bytes.fetch_sub(len, Ordering::AcqRel);
        if refused == Err(SendError::QueueFull(to)) {
            slot.dropped.fetch_add(1, Ordering::Relaxed);
        }
        refused
    }

    /// Replaces the member map (callable from any thread). Removed peers' streams end and their
    /// queues are dropped; new peers with a higher id are dialed; a changed address makes the
    /// dialer reconnect there.
    pub fn set_peers(&self, peers: BTreeMap<ParticipantId, String>) {
        let shared = &self.shared;
        let mut slots = shared.slots();
        slots.retain(|id, slot| {
            let keep = peers.contains_key(id);
            if !keep {
                slot.stop.cancel();
            }
            keep
        });
        for (id, address) in peers {
            if id == shared.me {
                continue;
            }
            if let Some(slot) = slots.get(&id) {
                slot.address.send_if_modified(|a| {
                    let changed = *a != address;
                    *a = address.clone();
                    changed
                });
                continue;
            }
            let (tx, rx) = mpsc::channel(shared.queue_capacity);
            let slot = Arc::new(Slot {
                id,
                address: watch::Sender::new(address),
                tx,
                rx: tokio::sync::Mutex::new(rx),
                capacity: shared.queue_capacity,
                queued_bytes: AtomicUsize::new(0),
                stop: shared.shutdown.child_token(),
                current: Mutex::new(None),
                live: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
                sent: AtomicU64::new(0),
                received: AtomicU64::new(0),
                connects: AtomicU64::new(0),
            });
            if shared.me < id {
                shared
                    .runtime
                    .spawn(dial::run(self.shared.clone(), slot.clone()));
            }
            slots.insert(id, slot);
        }
    }

    /// Replaces the registry's role map (see [`PeerConfig::roles`]). Streams already open stay
    /// open; new ones (and reconnections) are checked against the new map.
    pub fn set_roles(&self, roles: BTreeMap<ParticipantId, NodeRole>) {
        *self.shared.roles.lock().unwrap_or_else(|e| e.into_inner()) = Some(roles);
    }

    /// The current member addresses (without this node).
    pub fn peers(&self) -> BTreeMap<ParticipantId, String> {
        self.shared
            .slots()
            .iter()
            .map(|(id, s)| (*id, s.address.borrow().clone()))
            .collect()
    }

    /// Per-peer counters.
    pub fn stats(&self) -> BTreeMap<ParticipantId, PeerStats> {
        self.shared
            .slots()
            .iter()
            .map(|(id, s)| {
                let stats = PeerStats {
                    address: s.address.borrow().clone(),
                    connected: s.live.load(Ordering::Relaxed) > 0,
                    queued: s.capacity - s.tx.capacity(),
                    queued_bytes: s.queued_bytes.load(Ordering::Relaxed),
                    capacity: s.capacity,
                    dropped: s.dropped.load(Ordering::Relaxed),
                    sent: s.sent.load(Ordering::Relaxed),
                    received: s.received.load(Ordering::Relaxed),
                    connects: s.connects.load(Ordering::Relaxed),
                };
                (*id, stats)
            })
            .collect()
    }

    /// The gRPC service that accepts peers' streams (mounted by [`crate::serve`]).
    pub fn service(&self) -> keyshard_proto::peer::peer_server::PeerServer<PeerService> {
        let limit = self.shared.message_limit();
        keyshard_proto::peer::peer_server::PeerServer::new(PeerService::new(self.shared.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }

    /// Ends every stream and stops dialing. Frames still queued are dropped.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(i: u16) -> ParticipantId {
        ParticipantId::new(i).unwrap()
    }

    #[test]
    fn a_certificate_role_must_match_the_registry_role() {
        let roles: BTreeMap<_, _> = [(pid(1), NodeRole::Tee), (pid(2), NodeRole::Mesh)].into();
        assert_eq!(check_role(Some(&roles), pid(1), NodeRole::Tee), Ok(()));
        assert_eq!(check_role(Some(&roles), pid(2), NodeRole::Mesh), Ok(()));
        assert_eq!(
            check_role(Some(&roles), pid(1), NodeRole::Mesh),
            Err("node 1's certificate says role mesh, but the registry says tee".into())
        );
        assert_eq!(
            check_role(Some(&roles), pid(2), NodeRole::Tee),
            Err("node 2's certificate says role tee, but the registry says mesh".into())
        );
        assert_eq!(
            check_role(Some(&roles), pid(9), NodeRole::Tee),
            Err("node 9 has no role in the registry (its certificate says tee)".into())
        );
        // An empty registry refuses everybody; no map compares nothing.
        assert!(check_role(Some(&BTreeMap::new()), pid(1), NodeRole::Tee).is_err());
        assert_eq!(check_role(None, pid(9), NodeRole::Mesh), Ok(()));
    }
}
