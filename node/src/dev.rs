//! `keyshard dev`: a local cluster of real node processes on 127.0.0.1 with generated
//! certificates and sled stores, exercised end to end: a key of every scheme is created, signs
//! (single and batch), is reshared to one node fewer, signs again, and every signature is checked
//! by an independent verifier.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use keyshard_core::ids::ParticipantId;
use keyshard_core::scheme::Scheme;
use keyshard_pki::{ClientRole, NodeRole};
use keyshard_proto::client as pb;

use crate::certs;
use crate::client::Profile;

/// Marks a directory `keyshard dev` created (so it may be wiped by the next run).
const MARKER: &str = ".keyshard-dev";

/// `keyshard dev` options.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// Nodes (processes).
    pub nodes: u16,
    /// Threshold of the keys created.
    pub threshold: u16,
    /// Where certificates, configs, stores and logs go.
    pub data_dir: PathBuf,
    /// Stop the cluster when done instead of leaving it running.
    pub exit: bool,
    /// The `keyshard` binary to start nodes with.
    pub binary: PathBuf,
    /// A directory with one set of safe primes per node, `primes-p<id>.json` (JSON, as
    /// `SafePrimes::to_json` writes them; the committed test fixtures): each node gets a private
    /// copy (mode 0600, as the node requires) and loads it at start, so the cluster can create
    /// one ECDSA key without minutes of prime generation. Each set serves one aux run (key
    /// creation, refresh or reshare) only: a development/test option. `None`: no primes (FROST
    /// keys only).
    pub primes_dir: Option<PathBuf>,
}

/// What the run produced, per scheme.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SchemeResult {
    /// Scheme name.
    pub scheme: String,
    /// Key id.
    pub key_id: String,
    /// Public key, hex, as the API returns it.
    pub public_key: String,
    /// BIP-340 only: the 32-byte x-only key, hex (what Taproot outputs commit to).
    pub public_key_xonly: Option<String>,
    /// Public key as PEM/SPKI.
    pub public_key_pem: Option<String>,
    /// A signature with version 1, hex.
    pub signature_v1: String,
    /// Messages signed in the batch.
    pub batch: usize,
    /// The version after the reshare.
    pub reshared_version: u32,
    /// A signature with the reshared version, hex.
    pub signature_v2: String,
}

/// A failure, in words.
#[derive(Debug)]
pub struct DevError(pub String);

impl std::fmt::Display for DevError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DevError {}

fn err(what: impl std::fmt::Display) -> DevError {
    DevError(what.to_string())
}

/// A running local cluster; dropping it stops the nodes.
pub struct LocalCluster {
    /// The data directory.
    pub dir: PathBuf,
    /// Node processes by id.
    pub children: Vec<(ParticipantId, Child)>,
    /// Node addresses by id.
    pub addresses: Vec<(ParticipantId, String)>,
    /// The application client's profile.
    pub app: Profile,
    /// The admin client's profile.
    pub admin: Profile,
    /// The `keyshard` binary.
    pub binary: PathBuf,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            stop(c);
        }
    }
}

impl LocalCluster {
    /// Nodes whose process has exited, with the last lines of their log.
    pub fn exited(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, c) in &mut self.children {
            if let Ok(Some(status)) = c.try_wait() {
                let log = std::fs::read_to_string(self.dir.join(format!("node-{id}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                out.push(format!(
                    "node {id} exited ({status}):\n    {}",
                    tail.join("\n    ")
                ));
            }
        }
        out
    }
}

/// SIGTERM, then SIGKILL if the node has not exited after 5 s.
pub fn stop(child: &mut Child) {
    #[cfg(unix)]
    {
        // SAFETY-free: `kill` via the command line keeps this crate free of unsafe and libc.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn prepare_dir(dir: &Path) -> Result<(), DevError> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| err(format!("cannot read {}: {e}", dir.display())))?
            .next()
            .is_none();
        if !empty && !dir.join(MARKER).exists() {
            return Err(err(format!(
                "{} exists and was not made by `keyshard dev`; choose another --data-dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir)
            .map_err(|e| err(format!("cannot clear {}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(dir.join(MARKER), "made by keyshard dev; safe to delete\n")
        .map_err(|e| err(format!("cannot write in {}: {e}", dir.display())))
}

/// A free port, and the listener holding it: keep it until every port is chosen, or the OS may
/// hand the same port out twice.
fn free_port() -> Result<(u16, std::net::TcpListener), DevError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| err(format!("no free port: {e}")))?;
    let port = l.local_addr().map(|a| a.port()).map_err(err)?;
    Ok((port, l))
}

/// The config file of node `id`.
pub fn node_config(dir: &Path, id: u16, addresses: &[(ParticipantId, String)]) -> String {
    let certs = dir.join("certs");
    let mut s = format!(
        "node_id = {id}\nlisten = {:?}\ndata_dir = {:?}\nlog_level = \"info\"\n\n[tls]\nca_cert = {:?}\nnode_cert = {:?}\nnode_key = {:?}\n",
        addresses
            .iter()
            .find(|(p, _)| p.get() == id)
            .map(|(_, a)| a.as_str())
            .unwrap_or_default(),
        dir.join(format!("node-{id}")).display().to_string(),
        certs.join("ca.pem").display().to_string(),
        certs.join(format!("node-{id}.pem")).display().to_string(),
        certs.join(format!("node-{id}.key")).display().to_string(),
    );
    // A local cluster generates no safe primes in the background (minutes of CPU per set and
    // node): ECDSA aux info there must come from a primes file.
    s.push_str("\n[ecdsa]\nprime_pool = 0\n");
    for (p, a) in addresses {
        s.push_str(&format!(
            "\n[[peers]]\nid = {}\naddress = {a:?}\nrole = \"tee\"\n",
            p.get()
        ));
    }
    s
}

/// Generates certificates and configs and starts `nodes` node processes.
pub fn start_cluster(opts: &DevOptions) -> Result<LocalCluster, DevError> {
    prepare_dir(&opts.data_dir)?;
    let dir = opts
        .data_dir
        .canonicalize()
        .map_err(|e| err(format!("{}: {e}", opts.data_dir.display())))?;
    let certs_dir = dir.join("certs");
    certs::init(&certs_dir, "keyshard dev CA").map_err(err)?;
    let mut addresses = Vec::new();
    let mut held = Vec::new();
    for i in 1..=opts.nodes {
        let id = ParticipantId::new(i).ok_or_else(|| err("node ids start at 1"))?;
        certs::issue(
            &certs_dir,
            &certs::node_identity(id, NodeRole::Tee),
            30,
            &[],
        )
        .map_err(err)?;
        let (port, listener) = free_port()?;
        held.push(listener);
        addresses.push((id, format!("127.0.0.1:{port}")));
    }
    drop(held);
    let profile = |name: &str, role| -> Result<Profile, DevError> {
        let identity = certs::client_identity(name, role).map_err(err)?;
        let (cert, key) = certs::issue(&certs_dir, &identity, 30, &[]).map_err(err)?;
        let p = Profile {
            endpoint: addresses[1 % addresses.len()].1.clone(),
            ca_cert: certs_dir.join("ca.pem"),
            cert,
            key,
        };
        std::fs::write(dir.join(format!("{name}.toml")), p.to_toml()).map_err(err)?;
        Ok(p)
    };
    let app = profile("dev-app", ClientRole::Application)?;
    let admin = profile("dev-admin", ClientRole::Admin)?;
    let mut cluster = LocalCluster {
        dir: dir.clone(),
        children: Vec::new(),
        addresses: addresses.clone(),
        app,
        admin,
        binary: opts.binary.clone(),
    };
    for (id, _) in &addresses {
        if let Some(primes) = &opts.primes_dir {
            let file = private_copy(
                &primes.join(format!("primes-p{id}.json")),
                &dir.join(format!("primes-p{id}.json")),
            )?;
            let config = node_config(&dir, id.get(), &addresses).replacen(
                "\n[ecdsa]\nprime_pool = 0\n",
                &format!(
                    "\n[ecdsa]\nprime_pool = 0\nprimes_file = {:?}\n",
                    file.display().to_string()
                ),
                1,
            );
            std::fs::write(dir.join(format!("node-{id}.toml")), config).map_err(err)?;
        }
        let child = spawn_node(&dir, &opts.binary, *id, &addresses)?;
        cluster.children.push((*id, child));
    }
    Ok(cluster)
}

/// Copies `from` to `to` readable by the owner only: a node refuses a primes file that group or
/// others may read (they are its Paillier secret), and the committed fixtures are 0644.
fn private_copy(from: &Path, to: &Path) -> Result<PathBuf, DevError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let bytes = std::fs::read(from).map_err(|e| err(format!("{}: {e}", from.display())))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| err(format!("{}: {e}", to.display())))?;
    // `mode` applies only to a new file: set it on one left by an earlier run too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(&bytes))
        .map_err(|e| err(format!("{}: {e}", to.display())))?;
    Ok(to.to_path_buf())
}

/// Writes node `id`'s config (if absent) and starts its process, logging to `node-<id>.log`.
pub fn spawn_node(
    dir: &Path,
    binary: &Path,
    id: ParticipantId,
    addresses: &[(ParticipantId, String)],
) -> Result<Child, DevError> {
    let config = dir.join(format!("node-{id}.toml"));
    if !config.exists() {
        std::fs::write(&config, node_config(dir, id.get(), addresses)).map_err(err)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("node-{id}.log")))
        .map_err(err)?;
    let log2 = log.try_clone().map_err(err)?;
    std::process::Command::new(binary)
        .arg("node")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| err(format!("cannot start {}: {e}", binary.display())))
}

/// Waits until every listed node answers and all agree on one leader.
pub async fn wait_ready(
    profile: &Profile,
    addresses: &[(ParticipantId, String)],
    within: Duration,
) -> Result<u32, DevError> {
    let end = Instant::now() + within;
    let mut last = String::from("no node answered yet");
    while Instant::now() < end {
        let mut leaders = Vec::new();
        for (_, a) in addresses {
            match profile.connect_to(a).await {
                Ok(mut c) => match c.cluster_status(pb::ClusterStatusRequest {}).await {
                    Ok(s) => leaders.push(s.into_inner().leader),
                    Err(e) => last = format!("{a}: {}", e.message()),
                },
                Err(e) => last = e.to_string(),
            }
        }
        if leaders.len() == addresses.len()
            && leaders[0] != 0
            && leaders.iter().all(|l| *l == leaders[0])
        {
            return Ok(leaders[0]);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(err(format!(
        "the cluster did not become ready in {within:?}: {last}"
    )))
}

/// Checks a signature with the independent verifier.
pub fn verify(
    scheme: Scheme,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), DevError> {
    let r = match scheme {
        Scheme::FrostEd25519 => keyshard_verifier::ed25519(public_key, message, signature),
        Scheme::FrostSecp256k1 => {
            keyshard_verifier::frost_secp256k1(public_key, message, signature)
        }
        Scheme::FrostP256 => keyshard_verifier::frost_p256(public_key, message, signature),
        Scheme::FrostSecp256k1Taproot => keyshard_verifier::bip340(public_key, message, signature),
        Scheme::EcdsaSecp256k1 => {
            keyshard_verifier::ecdsa_secp256k1_recoverable(public_key, message, signature)
        }
        Scheme::EcdsaP256 => keyshard_verifier::ecdsa_p256(public_key, message, signature),
    };
    r.map_err(|e| {
        err(format!(
            "{} signature does not verify: {e:?}",
            scheme.name()
        ))
    })
}

/// Creates, signs, reshares and signs again for one scheme.
pub async fn exercise_scheme(
    cluster: &LocalCluster,
    scheme: Scheme,
    threshold: u16,
    run: &str,
) -> Result<SchemeResult, DevError> {
    let key_id = format!("dev-{}", scheme.name());
    let status = |e: tonic::Status| {
        err(format!(
            "{}: {:?}: {}",
            scheme.name(),
            e.code(),
            e.message()
        ))
    };
    let mut app = cluster.app.connect().await.map_err(err)?;
    let created = app
        .create_key(pb::CreateKeyRequest {
            key_id: key_id.clone(),
            scheme: scheme.name().into(),
            threshold: u32::from(threshold),
            participants: vec![],
            request_id: format!("{run}-create-{key_id}"),
        })
        .await
        .map_err(status)?
        .into_inner();
    let pk = created.public_key.clone();
    let one = format!("keyshard dev: hello from {}", scheme.name()).into_bytes();
    let signed = app
        .sign(pb::SignRequest {
            key_id: key_id.clone(),
            messages: vec![one.clone()],
            request_id: format!("{run}-sign1-{key_id}"),
        })
        .await
        .map_err(status)?
        .into_inner();
    let sig1 = signed
        .signatures
        .first()
        .cloned()
        .ok_or_else(|| err("no signature"))?;
    verify(scheme, &pk, &one, &sig1)?;
    let batch: Vec<Vec<u8>> = (0..8)
        .map(|i| format!("batch message {i}").into_bytes())
        .collect();
    let signed = app
        .sign(pb::SignRequest {
            key_id: key_id.clone(),
            messages: batch.clone(),
            request_id: format!("{run}-batch-{key_id}"),
        })
        .await
        .map_err(status)?
        .into_inner();
    if signed.signatures.len() != batch.len() {
        return Err(err("a batch came back with the wrong number of signatures"));
    }
    for (m, s) in batch.iter().zip(&signed.signatures) {
        verify(scheme, &pk, m, s)?;
    }
    // Reshare onto every node but the last, keeping the threshold.
    let members: Vec<u32> = cluster
        .addresses
        .iter()
        .map(|(p, _)| u32::from(p.get()))
        .take(cluster.addresses.len().saturating_sub(1))
        .collect();
    let mut admin = cluster.admin.connect().await.map_err(err)?;
    let reshared = admin
        .reshare(pb::ReshareRequest {
            key_id: key_id.clone(),
            new_threshold: Some(u32::from(threshold)),
            new_members: members,
            request_id: format!("{run}-reshare-{key_id}"),
        })
        .await
        .map_err(status)?
        .into_inner();
    if reshared.public_key != pk {
        return Err(err(format!(
            "{}: the reshare changed the public key",
            scheme.name()
        )));
    }
    let two = format!("keyshard dev: signed after resharing, {}", scheme.name()).into_bytes();
    let signed = app
        .sign(pb::SignRequest {
            key_id: key_id.clone(),
            messages: vec![two.clone()],
            request_id: format!("{run}-sign2-{key_id}"),
        })
        .await
        .map_err(status)?
        .into_inner();
    let sig2 = signed
        .signatures
        .first()
        .cloned()
        .ok_or_else(|| err("no signature"))?;
    verify(scheme, &pk, &two, &sig2)?;
    let text = crate::encoding::public_key(scheme, &pk).ok();
    Ok(SchemeResult {
        scheme: scheme.name().into(),
        key_id,
        public_key: hex::encode(&pk),
        public_key_xonly: text.as_ref().and_then(|t| t.bip340_hex.clone()),
        public_key_pem: text.map(|t| t.pem),
        signature_v1: hex::encode(&sig1),
        batch: batch.len(),
        reshared_version: reshared.version,
        signature_v2: hex::encode(&sig2),
    })
}
