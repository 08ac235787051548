//! The run loop: one thread owns the core `Node` and drives it with real time, a real store and a
//! real transport. It holds no protocol logic: it feeds inputs, drains outputs, makes persist
//! batches durable before acknowledging them, and answers clients from the node's events.
//!
//! The loop has an OS thread of its own (with a single-threaded tokio runtime): an ECDSA round
//! computes Paillier proofs for seconds, and that must not stall the runtime serving gRPC and
//! the transport. Safe primes for ECDSA aux info (`Output::GeneratePrimes`) are generated on
//! one more background thread, one set at a time, and fed back as `Input::Primes`.
//!
//! ```text
//!  transport ──Peer/PeerStatus──┐
//!  client API ──Client/Query────┼─> mpsc ─> run loop ─> Node::handle_input
//!  timer (poll_timeout) ────────┘                          │
//!        Transmit ─> PeerSink::send  <──────────────────────┤ poll_output
//!        Persist  ─> Store::apply (blocking pool) ─> Input::Persisted
//!        Event    ─> EventSink (audit, metrics, logs) + answers to waiting clients
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::NodeRole;
use keyshard_core::node::{Event, Input, Node, Output, Request, RequestError, Response};
use keyshard_core::persist::{KeyId, KeyVersion, SecretBytes};
use keyshard_core::time::Instant;
use keyshard_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// How a daemon sends bytes to a peer node. Must not block: a full queue drops the message (the
/// core's protocols time out and retry).
pub trait PeerSink: Send + Sync {
    /// Queues `bytes` for `to`.
    fn send(&self, to: ParticipantId, bytes: Vec<u8>);
    /// Membership changed: the members and their registry roles, and the addresses of peers
    /// added at run time.
    fn update_peers(
        &self,
        members: &BTreeMap<ParticipantId, NodeRole>,
        addresses: &BTreeMap<ParticipantId, String>,
    );
}

/// Receives every event the node emits (audit log, metrics, logs).
pub trait EventSink: Send {
    /// One event, with the node that emitted it (for registry lookups).
    fn on_event(&mut self, node: &Node, event: &Event);
    /// A client request arrived at this node.
    fn on_request(&mut self, _request_id: &str, _request: &Request) {}
    /// A persist batch took this long to become durable.
    fn on_persist(&mut self, _took: StdDuration) {}
    /// The node's outputs were drained (its counters may have moved).
    fn on_drained(&mut self, _node: &Node) {}
}

/// An answer to a client.
pub type Answer = Result<Response, RequestError>;

/// What the run loop is asked to do.
pub enum Command {
    /// Bytes from an authenticated peer.
    Peer {
        /// The sender (from its certificate).
        from: ParticipantId,
        /// Untrusted bytes.
        bytes: Vec<u8>,
    },
    /// The transport saw a peer go down or come up.
    PeerStatus {
        /// The peer.
        peer: ParticipantId,
        /// Reachable?
        up: bool,
    },
    /// A client request, answered on `reply`.
    Client {
        /// The idempotency key.
        request_id: String,
        /// What.
        request: Request,
        /// Where the answer goes.
        reply: oneshot::Sender<Answer>,
    },
    /// A read-only look at the node (status, registry), run between inputs.
    Query(Box<dyn FnOnce(&Node) + Send>),
    /// One set of safe primes from the generator thread (`None`: the generation failed).
    Primes(Option<keyshard_core::ecdsa::SafePrimes>),
    /// Stop the loop.
    Shutdown,
}

/// The background safe-prime generator: one thread, one set of four 1536-bit safe primes per
/// request (minutes of CPU each), from a ChaCha20 RNG seeded by the OS. Results go back to the
/// loop through a weak sender, so the generator never keeps a stopped loop alive.
fn spawn_prime_generator(loop_tx: mpsc::WeakSender<Command>) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("keyshard-primes".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                let started = StdInstant::now();
                let primes =
                    os_rng().map(|mut rng| keyshard_core::ecdsa::SafePrimes::generate(&mut rng));
                match &primes {
                    Ok(_) => tracing::info!(
                        seconds = started.elapsed().as_secs(),
                        "one set of safe primes generated"
                    ),
                    Err(e) => tracing::error!(error = %e, "safe-prime generation failed"),
                }
                let Some(loop_tx) = loop_tx.upgrade() else {
                    return;
                };
                if loop_tx.blocking_send(Command::Primes(primes.ok())).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the safe-prime generator thread");
    }
    tx
}

fn os_rng() -> Result<rand_chacha::ChaCha20Rng, String> {
    use rand_chacha::rand_core::SeedableRng;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(|e| format!("OS randomness: {e}"))?;
    Ok(rand_chacha::ChaCha20Rng::from_seed(*seed))
}

/// A cloneable handle to a running daemon.
#[derive(Clone)]
pub struct DaemonHandle {
    tx: mpsc::Sender<Command>,
}

/// The daemon stopped (or is stopping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the node is shutting down")
    }
}

impl DaemonHandle {
    /// Sends a command (waits if the loop's queue is full: back-pressure on clients and peers).
    pub async fn send(&self, cmd: Command) -> Result<(), Stopped> {
        self.tx.send(cmd).await.map_err(|_| Stopped)
    }

    /// Submits a client request and waits for its answer.
    pub async fn request(&self, request_id: String, request: Request) -> Result<Answer, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Client {
            request_id,
            request,
            reply,
        })
        .await?;
        rx.await.map_err(|_| Stopped)
    }

    /// Runs `f` on the node and returns its result.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> T + Send + 'static,
    ) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Query(Box::new(move |n| {
            let _ = tx.send(f(n));
        })))
        .await?;
        rx.await.map_err(|_| Stopped)
    }
}

/// Maps the core's virtual milliseconds to real time: Unix milliseconds at start plus a
/// monotonic elapsed time, so all nodes share a time base (rotation times in the registry are
/// the leader's clock) and a wall-clock jump never moves time backwards.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: StdInstant,
    start_ms: u64,
}

impl Clock {
    /// A clock anchored now.
    pub fn new() -> Self {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Clock {
            start: StdInstant::now(),
            start_ms,
        }
    }

    /// Now, as the core counts time.
    pub fn now(&self) -> Instant {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant::from_millis(self.start_ms.saturating_add(elapsed))
    }

    /// The real instant of a core deadline.
    pub fn to_std(&self, t: Instant) -> StdInstant {
        let ms = t.as_millis().saturating_sub(self.start_ms);
        // Cap far-future deadlines (an idle node) at a day: the loop just wakes and re-arms.
        self.start + StdDuration::from_millis(ms.min(86_400_000))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Loads every share the store holds, for `Node::new`.
pub fn load_shares(
    store: &dyn Store,
    versions: &BTreeMap<KeyId, Vec<KeyVersion>>,
) -> Result<BTreeMap<(KeyId, KeyVersion), SecretBytes>, StoreError> {
    let mut shares = BTreeMap::new();
    for (key, vs) in versions {
        for v in vs {
            if let Some(s) = store.get_share(key, *v)? {
                shares.insert((key.clone(), *v), s);
            }
        }
    }
    Ok(shares)
}

/// Why the loop stopped.
#[derive(Debug)]
pub enum RunError {
    /// The store failed; the node cannot continue without risking lost or inconsistent data.
    Store(StoreError),
    /// The node reported misuse by this driver (a bug).
    Node(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Store(e) => write!(f, "store failure, stopping the node: {e}"),
            RunError::Node(e) => write!(f, "internal error, stopping the node: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The run loop's state.
pub struct Daemon {
    node: Node,
    store: Arc<dyn Store>,
    peers: Arc<dyn PeerSink>,
    events: Box<dyn EventSink>,
    clock: Clock,
    waiting: BTreeMap<String, Vec<oneshot::Sender<Answer>>>,
    /// The loop's own queue, for the prime generator (weak: it must not keep the loop alive).
    self_tx: mpsc::WeakSender<Command>,
    /// Requests to the prime generator, once started.
    primes_tx: Option<std::sync::mpsc::Sender<()>>,
}

/// What `Daemon::spawn` needs besides the node.
pub struct DaemonParts {
    /// The durable store.
    pub store: Arc<dyn Store>,
    /// The peer transport.
    pub peers: Arc<dyn PeerSink>,
    /// Audit, metrics, logs.
    pub events: Box<dyn EventSink>,
    /// Real time.
    pub clock: Clock,
}

/// Queue depth of the loop's input channel.
pub const INPUT_QUEUE: usize = 4096;

impl Daemon {
    /// A daemon around a built node, and the handle to talk to it.
    /// Starts the loop on its own OS thread with a node that `boot` builds there (a node running
    /// ECDSA sessions is not `Send`: cggmp24's state machines share state through `Rc`), and
    /// returns once the node is up. The receiver yields the loop's result when it stops.
    pub async fn spawn(
        boot: impl FnOnce() -> Result<Node, RunError> + Send + 'static,
        parts: DaemonParts,
    ) -> Result<(DaemonHandle, oneshot::Receiver<Result<(), RunError>>), RunError> {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let self_tx = tx.downgrade();
        let (booted_tx, booted_rx) = oneshot::channel::<Result<(), RunError>>();
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("keyshard-node".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = booted_tx.send(Err(RunError::Node(format!("runtime: {e}"))));
                        return;
                    }
                };
                let node = match boot() {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = booted_tx.send(Err(e));
                        return;
                    }
                };
                let _ = booted_tx.send(Ok(()));
                let daemon = Daemon {
                    node,
                    store: parts.store,
                    peers: parts.peers,
                    events: parts.events,
                    clock: parts.clock,
                    waiting: BTreeMap::new(),
                    self_tx,
                    primes_tx: None,
                };
                let result = runtime.block_on(daemon.run(rx));
                let _ = done_tx.send(result);
            })
            .map_err(|e| RunError::Node(format!("cannot start the node thread: {e}")))?;
        booted_rx
            .await
            .map_err(|_| RunError::Node("the node thread stopped while booting".into()))??;
        Ok((DaemonHandle { tx }, done_rx))
    }

    /// Runs until `Shutdown`, all handles dropped, or a fatal error.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) -> Result<(), RunError> {
        self.drain().await?;
        loop {
            let deadline = self.clock.to_std(self.node.poll_timeout());
            let cmd = tokio::select! {
                cmd = rx.recv() => cmd,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let now = self.clock.now();
                    self.input(Input::Timeout { now })?;
                    self.drain().await?;
                    continue;
                }
            };
            let Some(cmd) = cmd else {
                return Ok(());
            };
            let at = self.clock.now();
            match cmd {
                Command::Peer { from, bytes } => self.input(Input::Message {
                    at,
                    from,
                    bytes: &bytes,
                })?,
                Command::PeerStatus { peer, up } => {
                    self.input(Input::PeerStatus { at, peer, up })?
                }
                Command::Client {
                    request_id,
                    request,
                    reply,
                } => {
                    self.events.on_request(&request_id, &request);
                    self.waiting
                        .entry(request_id.clone())
                        .or_default()
                        .push(reply);
                    self.input(Input::Client {
                        at,
                        request_id,
                        request,
                    })?;
                }
                Command::Query(f) => f(&self.node),
                Command::Primes(primes) => self.input(Input::Primes { at, primes })?,
                Command::Shutdown => {
                    tracing::info!("shutting down");
                    return Ok(());
                }
            }
            self.drain().await?;
        }
    }

    fn input(&mut self, input: Input<'_>) -> Result<(), RunError> {
        self.node
            .handle_input(input)
            .map_err(|e| RunError::Node(e.to_string()))
    }

    /// Drains every output; persist batches are made durable, in order, before `Persisted`.
    async fn drain(&mut self) -> Result<(), RunError> {
        while let Some(out) = self.node.poll_output() {
            match out {
                Output::Transmit { to, bytes } => self.peers.send(to, bytes),
                Output::Persist(batch) => {
                    let store = Arc::clone(&self.store);
                    let started = StdInstant::now();
                    let token = batch.token;
                    let result = tokio::task::spawn_blocking(move || store.apply(&batch))
                        .await
                        .map_err(|e| RunError::Node(format!("store task: {e}")))?;
                    result.map_err(RunError::Store)?;
                    self.events.on_persist(started.elapsed());
                    let at = self.clock.now();
                    self.input(Input::Persisted { at, token })?;
                }
                Output::Event(event) => self.on_event(event),
                Output::GeneratePrimes { count } => self.generate_primes(count),
            }
        }
        self.events.on_drained(&self.node);
        Ok(())
    }

    /// Queues `count` generations on the background generator (started on first use).
    fn generate_primes(&mut self, count: usize) {
        if self.primes_tx.is_none() {
            self.primes_tx = Some(spawn_prime_generator(self.self_tx.clone()));
        }
        if let Some(tx) = &self.primes_tx {
            for _ in 0..count {
                if tx.send(()).is_err() {
                    tracing::warn!("safe-prime generator stopped");
                }
            }
        }
        tracing::info!(
            count,
            "generating safe primes for ECDSA aux info in the background"
        );
    }

    fn on_event(&mut self, event: Event) {
        self.events.on_event(&self.node, &event);
        match event {
            Event::Completed { request_id, result } => {
                for reply in self.waiting.remove(&request_id).unwrap_or_default() {
                    let _ = reply.send(result.clone());
                }
            }
            Event::MembershipChanged { members, addresses } => {
                self.peers.update_peers(&members, &addresses)
            }
            _ => {}
        }
    }
}
