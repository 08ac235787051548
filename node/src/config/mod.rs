//! The node's TOML config file.
//!
//! ```toml
//! node_id = 1
//! listen = "0.0.0.0:7001"               # ip:port this node serves peers and clients on
//! data_dir = "/var/lib/keyshard"
//! store = "sled"                        # default; or "mongodb://host:27017/?replicaSet=rs"
//! metrics_listen = "127.0.0.1:9101"     # optional; no metrics endpoint without it
//! audit_log = "/var/log/keyshard/audit.log"   # default <data_dir>/audit.log
//! log_level = "info"                    # error | warn | info | debug | trace
//! rotation_interval = "24h"             # humantime; "0" = no automatic refresh
//! joining = false                       # true: join a running cluster (this node not in [[peers]])
//!
//! [tls]
//! ca_cert = "/etc/keyshard/ca.pem"
//! node_cert = "/etc/keyshard/node1.pem"
//! node_key = "/etc/keyshard/node1.key"
//!
//! [[peers]]                             # the bootstrap members, this node included unless joining
//! id = 1
//! address = "node1.example:7001"        # host:port, ipv4:port or [ipv6]:port
//! role = "tee"                          # tee | mesh
//!
//! [raft]                                # defaults shown
//! tick = "100ms"
//! election_ticks = 10
//! heartbeat_ticks = 2
//!
//! [timeouts]
//! round = "10s"                         # per protocol round
//! request = "60s"                       # per client request
//!
//! [tasks]
//! dkg = 2                               # concurrent DKGs, cluster-wide
//! sign = 64                             # concurrent signing runs
//! reshare = 1                           # concurrent reshares / refreshes
//! max_attempts = 3
//! result_cache = 1024
//!
//! [probes]                              # peer responsiveness probes (leader scoring)
//! interval = "2s"
//! timeout = "5s"                        # at least the interval
//!
//! [ecdsa]                               # threshold ECDSA (ecdsa-cggmp24-* keys)
//! prime_pool = 2                        # safe-prime sets kept ready (one per key creation,
//!                                       # refresh or reshare); 0 = never generate
//! presignatures = 4                     # per key, made in the background; 0 = always interactive
//! primes_file = "/etc/keyshard/primes.json"   # development/test only: one set (mode 0600),
//!                                       # fed at start; refused once an aux run used it
//! round = "120s"                        # per round of aux info and signing (Paillier proofs)
//! ```
//!
//! Defaults are those of `keyshard_core::node::NodeConfig::new`. Unknown fields are refused;
//! every error names the field and the offending value (except the store URI, which may hold
//! a password). Paths are used as written (relative ones against the working directory);
//! whether the files exist is checked by whoever opens them.

mod addr;
mod raw;
mod store;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::NodeRole;
use keyshard_core::node::{NodeConfig, TaskLimits};

pub use addr::HostPort;
pub use store::{MongoUri, StoreConfig};

use raw::RawConfig;

/// Largest config file `load` reads.
const MAX_FILE: u64 = 1024 * 1024;

/// A validated node configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node.
    pub node_id: ParticipantId,
    /// Where this node listens for peers and clients.
    pub listen: SocketAddr,
    /// The cluster's bootstrap members (this node included unless `joining`): address and role.
    pub peers: BTreeMap<ParticipantId, Peer>,
    /// This node joins a running cluster (it is not in `peers`; an `AddMember` admits it).
    pub joining: bool,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// The store.
    pub store: StoreConfig,
    /// TLS files.
    pub tls: TlsFiles,
    /// Where to serve `GET /metrics`, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The audit log file.
    pub audit_log: PathBuf,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// Raft tick length.
    pub tick: Duration,
    /// Election timeout in ticks.
    pub election_ticks: usize,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: usize,
    /// Per-round deadline of every protocol session.
    pub round_timeout: Duration,
    /// How long a client request may wait.
    pub request_timeout: Duration,
    /// Concurrency limits.
    pub limits: Limits,
    /// Attempts per task before giving up.
    pub max_attempts: u32,
    /// Answers remembered per request type for idempotent retries.
    pub result_cache: usize,
    /// Default automatic refresh interval (zero = off).
    pub rotation_interval: Duration,
    /// How often peers' responsiveness is probed.
    pub probe_interval: Duration,
    /// When an unanswered probe counts as a timeout.
    pub probe_timeout: Duration,
    /// Safe-prime sets kept ready for ECDSA aux info (0: never generate).
    pub prime_pool: usize,
    /// ECDSA presignatures the leader keeps ready per key (0: sign interactively).
    pub presignatures: usize,
    /// A file with one pregenerated set of safe primes (JSON, mode 0600 or stricter), fed to the
    /// node at start. A development/test option: the node uses a set for one aux run ever and
    /// refuses it at every later start (logged as an error).
    pub primes_file: Option<PathBuf>,
    /// Per-round deadline of ECDSA aux info and signing.
    pub ecdsa_round_timeout: Duration,
}

/// A cluster member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Where to reach it.
    pub address: HostPort,
    /// What it is.
    pub role: NodeRole,
}

/// Paths of the node's TLS material (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA certificate.
    pub ca_cert: PathBuf,
    /// This node's certificate.
    pub node_cert: PathBuf,
    /// This node's private key (the path only; the key is read by the transport).
    pub node_key: PathBuf,
}

/// Concurrency limits (all at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// DKG tasks at once, cluster-wide.
    pub dkg: usize,
    /// Signing runs the leader coordinates at once.
    pub sign: usize,
    /// Reshare tasks at once, cluster-wide.
    pub reshare: usize,
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    Info,
    /// Debugging detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The lower-case name (`"info"`).
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Why a config was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
    /// Not valid TOML, an unknown field, a missing field or a value of the wrong type; the
    /// message has the field and the line.
    Syntax(String),
    /// A field's value is unusable.
    Invalid {
        /// The field (`tasks.dkg`, `peers[2].address`).
        field: String,
        /// The value as written (the store URI is not repeated).
        value: String,
        /// What is wrong with it.
        what: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, error } => {
                write!(f, "cannot read config {}: {error}", path.display())
            }
            ConfigError::Syntax(m) => write!(f, "config: {m}"),
            ConfigError::Invalid { field, value, what } => {
                write!(f, "config: {field} = {value}: {what}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(
    field: impl Into<String>,
    value: impl fmt::Display,
    what: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        value: value.to_string(),
        what: what.into(),
    }
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let io = |error: String| ConfigError::Io {
            path: path.to_path_buf(),
            error,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| io(e.to_string()))?
            .len();
        if len > MAX_FILE {
            return Err(io(format!("{len} bytes; a config is at most {MAX_FILE}")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| io(e.to_string()))?;
        Config::from_toml_str(&text)
    }

    /// Parses and validates a config.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        validate(raw)
    }

    /// The core's node configuration.
    pub fn to_node_config(&self) -> NodeConfig {
        let members = self.peers.iter().map(|(id, p)| (*id, p.role)).collect();
        let mut c = NodeConfig::new(self.node_id, members);
        c.tick = self.tick;
        c.election_ticks = self.election_ticks;
        c.heartbeat_ticks = self.heartbeat_ticks;
        c.round_timeout = self.round_timeout;
        c.request_timeout = self.request_timeout;
        c.limits = TaskLimits {
            dkg: self.limits.dkg,
            sign: self.limits.sign,
            reshare: self.limits.reshare,
        };
        c.max_attempts = self.max_attempts;
        c.result_cache = self.result_cache;
        c.rotation_interval = self.rotation_interval;
        c.joining = self.joining;
        c.probe_interval = self.probe_interval;
        c.probe_timeout = self.probe_timeout;
        c.prime_pool_depth = self.prime_pool;
        c.presignature_depth = self.presignatures;
        c.ecdsa_round_timeout = self.ecdsa_round_timeout;
        c
    }
}

/// Line, column and message, but not toml's snippet of the line: that line may be the store
/// URI with its password.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            // Name the key when the line is `key = ...` (the key only, never the value).
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let line_text = text[line_start..].split('\n').next().unwrap_or("");
            let key = line_text
                .split_once('=')
                .map(|(k, _)| k.trim())
                .filter(|k| {
                    !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
            match key {
                Some(k) => {
                    ConfigError::Syntax(format!("line {line}, column {column} ({k}): {message}"))
                }
                None => ConfigError::Syntax(format!("line {line}, column {column}: {message}")),
            }
        }
        None => ConfigError::Syntax(message.to_string()),
    }
}

fn core_defaults() -> NodeConfig {
    NodeConfig::new(
        ParticipantId::new(1).expect("1 is non-zero"),
        BTreeMap::new(),
    )
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let d = core_defaults();
    let node_id = participant("node_id", raw.node_id)?;
    let listen =
        addr::parse_listen(&raw.listen).map_err(|w| invalid("listen", q(&raw.listen), w))?;

    let data_dir = path("data_dir", &raw.data_dir)?;
    let store = match raw.store.as_deref() {
        None | Some("sled") => StoreConfig::Sled {
            path: data_dir.join("sled"),
        },
        Some(s) => StoreConfig::Mongo(
            MongoUri::parse(s).map_err(|w| invalid("store", redacted_store(s), w))?,
        ),
    };
    let tls = TlsFiles {
        ca_cert: path("tls.ca_cert", &raw.tls.ca_cert)?,
        node_cert: path("tls.node_cert", &raw.tls.node_cert)?,
        node_key: path("tls.node_key", &raw.tls.node_key)?,
    };

    let mut peers = BTreeMap::new();
    let mut seen_addresses = BTreeMap::new();
    for (i, p) in raw.peers.iter().enumerate() {
        let id = participant(format!("peers[{i}].id"), p.id)?;
        let address = HostPort::parse(&p.address)
            .map_err(|w| invalid(format!("peers[{i}].address"), q(&p.address), w))?;
        let role = match p.role.as_str() {
            "tee" => NodeRole::Tee,
            "mesh" => NodeRole::Mesh,
            other => {
                return Err(invalid(
                    format!("peers[{i}].role"),
                    q(other),
                    "expected \"tee\" or \"mesh\"",
                ))
            }
        };
        if let Some(j) = seen_addresses.insert(address.clone(), i) {
            return Err(invalid(
                format!("peers[{i}].address"),
                q(&p.address),
                format!("peers[{j}] has the same address"),
            ));
        }
        if peers.insert(id, Peer { address, role }).is_some() {
            let j = raw.peers.iter().position(|x| x.id == p.id).unwrap_or(i);
            return Err(invalid(
                format!("peers[{i}].id"),
                p.id,
                format!("duplicate peer id (peers[{j}] has it too)"),
            ));
        }
    }
    let joining = raw.joining.unwrap_or(false);
    match (peers.contains_key(&node_id), joining) {
        (false, false) => {
            return Err(invalid(
                "node_id",
                raw.node_id,
                "this node is not in [[peers]] (list every bootstrap member, this node included, \
                 or set joining = true to join a running cluster)",
            ))
        }
        (true, true) => {
            return Err(invalid(
                "joining",
                "true",
                format!(
                    "node {node_id} is in [[peers]], the bootstrap members; a joining node is not"
                ),
            ))
        }
        _ => {}
    }
    if peers.is_empty() {
        return Err(invalid(
            "peers",
            "[]",
            "a joining node needs the running cluster's members",
        ));
    }

    let metrics_listen = raw
        .metrics_listen
        .as_deref()
        .map(|s| addr::parse_listen(s).map_err(|w| invalid("metrics_listen", q(s), w)))
        .transpose()?;
    let audit_log = match raw.audit_log.as_deref() {
        Some(p) => path("audit_log", p)?,
        None => data_dir.join("audit.log"),
    };
    let log_level = match raw.log_level.as_deref().unwrap_or("info") {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        other => {
            return Err(invalid(
                "log_level",
                q(other),
                "expected error, warn, info, debug or trace",
            ))
        }
    };

    let tick = duration("raft.tick", raw.raft.tick.as_deref(), d.tick, false)?;
    let election_ticks = count(
        "raft.election_ticks",
        raw.raft.election_ticks,
        d.election_ticks,
    )?;
    let heartbeat_ticks = count(
        "raft.heartbeat_ticks",
        raw.raft.heartbeat_ticks,
        d.heartbeat_ticks,
    )?;
    if election_ticks <= heartbeat_ticks {
        return Err(invalid(
            "raft.election_ticks",
            election_ticks,
            format!("must be greater than raft.heartbeat_ticks ({heartbeat_ticks})"),
        ));
    }
    let round_timeout = duration(
        "timeouts.round",
        raw.timeouts.round.as_deref(),
        d.round_timeout,
        false,
    )?;
    let request_timeout = duration(
        "timeouts.request",
        raw.timeouts.request.as_deref(),
        d.request_timeout,
        false,
    )?;
    let limits = Limits {
        dkg: count("tasks.dkg", raw.tasks.dkg, d.limits.dkg)?,
        sign: count("tasks.sign", raw.tasks.sign, d.limits.sign)?,
        reshare: count("tasks.reshare", raw.tasks.reshare, d.limits.reshare)?,
    };
    let max_attempts = count(
        "tasks.max_attempts",
        raw.tasks.max_attempts,
        d.max_attempts as usize,
    )?;
    let max_attempts = u32::try_from(max_attempts)
        .map_err(|_| invalid("tasks.max_attempts", max_attempts, "too large"))?;
    let result_cache = count("tasks.result_cache", raw.tasks.result_cache, d.result_cache)?;
    let rotation_interval = duration(
        "rotation_interval",
        raw.rotation_interval.as_deref(),
        d.rotation_interval,
        true,
    )?;

    let probe_interval = duration(
        "probes.interval",
        raw.probes.interval.as_deref(),
        d.probe_interval,
        false,
    )?;
    let probe_timeout = duration(
        "probes.timeout",
        raw.probes.timeout.as_deref(),
        d.probe_timeout,
        false,
    )?;
    if probe_timeout < probe_interval {
        return Err(invalid(
            "probes.timeout",
            q(raw.probes.timeout.as_deref().unwrap_or("(default)")),
            format!(
                "must be at least probes.interval ({})",
                humantime::format_duration(probe_interval)
            ),
        ));
    }

    let prime_pool = match raw.ecdsa.prime_pool {
        None => d.prime_pool_depth,
        Some(n) if (0..=64).contains(&n) => n as usize,
        Some(n) => return Err(invalid("ecdsa.prime_pool", n, "must be 0 to 64")),
    };
    let presignatures = match raw.ecdsa.presignatures {
        None => d.presignature_depth,
        Some(n) if (0..=256).contains(&n) => n as usize,
        Some(n) => return Err(invalid("ecdsa.presignatures", n, "must be 0 to 256")),
    };
    let primes_file = raw
        .ecdsa
        .primes_file
        .as_deref()
        .map(|p| path("ecdsa.primes_file", p))
        .transpose()?;
    let ecdsa_round_timeout = duration(
        "ecdsa.round",
        raw.ecdsa.round.as_deref(),
        d.ecdsa_round_timeout,
        false,
    )?;

    Ok(Config {
        prime_pool,
        presignatures,
        primes_file,
        ecdsa_round_timeout,
        node_id,
        listen,
        peers,
        joining,
        data_dir,
        store,
        tls,
        metrics_listen,
        audit_log,
        log_level,
        tick,
        election_ticks,
        heartbeat_ticks,
        round_timeout,
        request_timeout,
        limits,
        max_attempts,
        result_cache,
        rotation_interval,
        probe_interval,
        probe_timeout,
    })
}

/// A quoted string value for an error message (at most 80 characters).
fn q(s: &str) -> String {
    let mut clipped: String = s.chars().take(80).collect();
    if clipped.len() < s.len() {
        clipped.push_str("...");
    }
    format!("{clipped:?}")
}

/// What an error may show of a store value: the scheme only, never user information.
fn redacted_store(s: &str) -> String {
    match s.split_once("://") {
        Some((scheme, _)) => format!("\"{}://...\"", scheme.chars().take(20).collect::<String>()),
        None if s.contains('@') || s.contains(':') => "(not shown)".into(),
        None => q(s),
    }
}

fn participant(field: impl Into<String>, n: i64) -> Result<ParticipantId, ConfigError> {
    u16::try_from(n)
        .ok()
        .and_then(ParticipantId::new)
        .ok_or_else(|| invalid(field, n, "a node id is 1 to 65535"))
}

fn path(field: &str, p: &str) -> Result<PathBuf, ConfigError> {
    if p.is_empty() {
        return Err(invalid(field, q(p), "the path is empty"));
    }
    if p.contains('\0') {
        return Err(invalid(field, q(p), "the path contains a NUL byte"));
    }
    Ok(PathBuf::from(p))
}

fn count(field: &str, v: Option<i64>, default: usize) -> Result<usize, ConfigError> {
    match v {
        None => Ok(default),
        Some(n) if n >= 1 => {
            usize::try_from(n).map_err(|_| invalid(field, n, "too large for this machine"))
        }
        Some(n) => Err(invalid(field, n, "must be at least 1")),
    }
}

/// A humantime duration (`"100ms"`, `"10s"`, `"24h"`) in whole milliseconds, at least 1 ms
/// unless `zero_ok` (then `"0"` means off).
fn duration(
    field: &str,
    v: Option<&str>,
    default: Duration,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    let Some(s) = v else { return Ok(default) };
    let d = humantime::parse_duration(s).map_err(|e| {
        invalid(
            field,
            q(s),
            format!("not a duration like \"100ms\" or \"24h\": {e}"),
        )
    })?;
    if d.is_zero() {
        if zero_ok {
            return Ok(d);
        }
        return Err(invalid(field, q(s), "must be positive"));
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(invalid(field, q(s), "must be whole milliseconds"));
    }
    if d.as_millis() > u128::from(u64::MAX / 2) {
        return Err(invalid(field, q(s), "too long"));
    }
    Ok(d)
}
