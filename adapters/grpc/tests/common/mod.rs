//! Test harness: a CA issuing certificates at run time, nodes each on their own tokio runtime
//! (dropping it is a crash: every task and socket goes), and a recording client backend.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyshard_core::ids::ParticipantId;
use keyshard_core::persist::KeyId;
use keyshard_grpc::{
    serve, ClientBackend, HealthReporter, Inbound, MemoryAudit, PeerConfig, PeerTransport,
    ServeConfig, TlsMaterial,
};
use keyshard_pki::{
    CertificateAuthority, ClientName, ClientRole, Identity, IssueOptions, NodeRole,
};
use keyshard_proto::client as pb;
use keyshard_proto::convert::{ClientRequest, NewMember};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tonic::Status;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn pid(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap()
}

pub fn node(n: u16) -> Identity {
    Identity::Node {
        id: pid(n),
        role: NodeRole::Tee,
    }
}

pub fn app(name: &str) -> Identity {
    Identity::Client {
        name: ClientName::new(name).unwrap(),
        role: ClientRole::Application,
    }
}

pub fn admin(name: &str) -> Identity {
    Identity::Client {
        name: ClientName::new(name).unwrap(),
        role: ClientRole::Admin,
    }
}

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The cluster CA.
pub struct Pki {
    pub ca: CertificateAuthority,
}

impl Pki {
    pub fn new() -> Self {
        keyshard_grpc::install_crypto_provider();
        Pki {
            ca: CertificateAuthority::generate("keyshard test CA").unwrap(),
        }
    }

    pub fn material(&self, who: &Identity) -> TlsMaterial {
        self.material_with(who, IssueOptions::localhost(1))
    }

    pub fn material_with(&self, who: &Identity, options: IssueOptions) -> TlsMaterial {
        TlsMaterial::from_issued(self.ca.cert_pem(), self.ca.issue(who, &options).unwrap())
    }
}

/// Binds `n` listeners on 127.0.0.1 with ephemeral ports (so every node's address is known
/// before any node starts).
pub fn listeners(n: usize) -> Vec<std::net::TcpListener> {
    (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect()
}

pub fn addr_map(
    ids: &[u16],
    listeners: &[std::net::TcpListener],
) -> BTreeMap<ParticipantId, String> {
    ids.iter()
        .zip(listeners)
        .map(|(&id, l)| (pid(id), l.local_addr().unwrap().to_string()))
        .collect()
}

/// A recording client backend standing in for the node.
#[derive(Default)]
pub struct FakeBackend {
    pub calls: Mutex<Vec<(String, &'static str)>>,
}

impl FakeBackend {
    fn note(&self, who: &Identity, rpc: &'static str) {
        self.calls.lock().unwrap().push((who.to_uri(), rpc));
    }

    pub fn calls(&self) -> Vec<(String, &'static str)> {
        self.calls.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl ClientBackend for FakeBackend {
    async fn create_key(
        &self,
        who: &Identity,
        request: ClientRequest,
    ) -> Result<pb::CreateKeyResponse, Status> {
        self.note(who, "CreateKey");
        match request.request {
            keyshard_core::node::Request::CreateKey { key, scheme, .. } => {
                Ok(pb::CreateKeyResponse {
                    key_id: key.as_str().into(),
                    scheme: scheme.name().into(),
                    version: 1,
                    public_key: vec![9; 32],
                })
            }
            other => Err(Status::internal(format!("unexpected {other:?}"))),
        }
    }

    async fn get_public_key(&self, who: &Identity, key: KeyId) -> Result<pb::KeyInfo, Status> {
        self.note(who, "GetPublicKey");
        Err(keyshard_proto::convert::status(
            &keyshard_core::node::RequestError::NoSuchKey(key),
        ))
    }

    async fn list_keys(&self, who: &Identity) -> Result<pb::ListKeysResponse, Status> {
        self.note(who, "ListKeys");
        Ok(pb::ListKeysResponse::default())
    }

    async fn sign(
        &self,
        who: &Identity,
        request: ClientRequest,
    ) -> Result<pb::SignResponse, Status> {
        self.note(who, "Sign");
        match request.request {
            keyshard_core::node::Request::Sign { key, messages } => Ok(pb::SignResponse {
                key_id: key.as_str().into(),
                version: 1,
                signatures: messages
                    .iter()
                    .map(|m| m.iter().rev().copied().collect())
                    .collect(),
            }),
            other => Err(Status::internal(format!("unexpected {other:?}"))),
        }
    }

    async fn reshare(
        &self,
        who: &Identity,
        request: ClientRequest,
    ) -> Result<pb::ReshareResponse, Status> {
        self.note(who, "Reshare");
        match request.request {
            keyshard_core::node::Request::Reshare { key, .. } => Ok(pb::ReshareResponse {
                key_id: key.as_str().into(),
                version: 2,
                public_key: vec![9; 32],
            }),
            other => Err(Status::internal(format!("unexpected {other:?}"))),
        }
    }

    async fn get_task(&self, who: &Identity, _request_id: String) -> Result<pb::TaskInfo, Status> {
        self.note(who, "GetTask");
        Err(Status::not_found("no such task"))
    }

    async fn cluster_status(&self, who: &Identity) -> Result<pb::ClusterStatusResponse, Status> {
        self.note(who, "ClusterStatus");
        Ok(pb::ClusterStatusResponse {
            node_id: 1,
            ..Default::default()
        })
    }

    async fn add_member(
        &self,
        who: &Identity,
        _member: NewMember,
    ) -> Result<pb::AddMemberResponse, Status> {
        self.note(who, "AddMember");
        Ok(pb::AddMemberResponse {})
    }

    async fn remove_member(
        &self,
        who: &Identity,
        _id: ParticipantId,
    ) -> Result<pb::RemoveMemberResponse, Status> {
        self.note(who, "RemoveMember");
        Ok(pb::RemoveMemberResponse {})
    }
}

/// One node: peer transport and server on its own runtime.
pub struct TestNode {
    pub id: ParticipantId,
    pub addr: SocketAddr,
    pub rt: Option<Runtime>,
    pub transport: PeerTransport,
    pub inbound: mpsc::Receiver<Inbound>,
    pub audit: Arc<MemoryAudit>,
    pub backend: Arc<FakeBackend>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::sync::oneshot::Receiver<Result<(), String>>>,
}

impl TestNode {
    /// Starts node `id` serving on `listener` with member map `peers`; `tune` adjusts the
    /// peer configuration.
    pub fn start(
        pki: &Pki,
        id: u16,
        listener: std::net::TcpListener,
        peers: BTreeMap<ParticipantId, String>,
        tune: impl FnOnce(&mut PeerConfig),
    ) -> TestNode {
        let rt = runtime();
        let material = pki.material(&node(id));
        let audit = Arc::new(MemoryAudit::new(10_000));
        let backend = Arc::new(FakeBackend::default());
        let addr = listener.local_addr().unwrap();
        let mut config = PeerConfig::new(pid(id), peers);
        config.backoff_initial = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(200);
        tune(&mut config);
        let (transport, inbound) = {
            let _guard = rt.enter();
            PeerTransport::start(config, material.client_config().unwrap(), audit.clone())
        };
        let serve_config = ServeConfig {
            tls: material.server_config(audit.clone()).unwrap(),
            audit: audit.clone(),
            peers: transport.clone(),
            backend: backend.clone(),
            health: HealthReporter::new(),
            handshake_timeout: Duration::from_secs(5),
        };
        let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
        let (done, served) = tokio::sync::oneshot::channel();
        rt.spawn(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let r = serve(listener, serve_config, async {
                let _ = signal.await;
            })
            .await;
            let _ = done.send(r.map_err(|e| e.to_string()));
        });
        TestNode {
            id: pid(id),
            addr,
            rt: Some(rt),
            transport,
            inbound,
            audit,
            backend,
            shutdown: Some(shutdown),
            served: Some(served),
        }
    }

    /// Signals a graceful shutdown and returns what `serve` returned (bounded wait).
    pub fn stop_gracefully(&mut self) -> Result<(), String> {
        let _ = self.shutdown.take().expect("running").send(());
        let served = self.served.take().expect("running");
        self.rt()
            .block_on(async { tokio::time::timeout(WAIT, served).await })
            .map_err(|_| "serve did not return in time".to_string())?
            .map_err(|_| "serve task ended without an answer".to_string())?
    }

    /// A crash: every task and socket of this node is gone at once.
    pub fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    pub fn rt(&self) -> &Runtime {
        self.rt.as_ref().expect("node is running")
    }

    /// The next inbound frame, waiting at most `wait`.
    pub fn recv(&mut self, wait: Duration) -> Option<Inbound> {
        let rt = self.rt.as_ref().expect("node is running");
        rt.block_on(async {
            tokio::time::timeout(wait, self.inbound.recv())
                .await
                .ok()
                .flatten()
        })
    }

    /// Sends `payload` to `to`, retrying while the queue is full, until `WAIT` passes.
    pub fn send(&self, to: u16, payload: Vec<u8>) {
        self.transport.try_send(pid(to), payload).unwrap();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.transport.shutdown();
        self.kill();
    }
}

/// Polls `f` every 10 ms until it holds or `WAIT` passes.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for: {what}");
}
