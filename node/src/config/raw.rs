//! The file as written: serde structs with strings and plain integers, so validation can name
//! the field and quote the value. Unknown fields are refused at every level. No `Debug`: the
//! store URI may hold a password.

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub node_id: i64,
    pub listen: String,
    pub data_dir: String,
    #[serde(default)]
    pub store: Option<String>,
    pub tls: RawTls,
    #[serde(default)]
    pub peers: Vec<RawPeer>,
    #[serde(default)]
    pub metrics_listen: Option<String>,
    #[serde(default)]
    pub audit_log: Option<String>,
    #[serde(default)]
    pub log_level: Option<String>,
    #[serde(default)]
    pub rotation_interval: Option<String>,
    #[serde(default)]
    pub joining: Option<bool>,
    #[serde(default)]
    pub raft: RawRaft,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub tasks: RawTasks,
    #[serde(default)]
    pub probes: RawProbes,
    #[serde(default)]
    pub ecdsa: RawEcdsa,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca_cert: String,
    pub node_cert: String,
    pub node_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    pub id: i64,
    pub address: String,
    pub role: String,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRaft {
    pub tick: Option<String>,
    pub election_ticks: Option<i64>,
    pub heartbeat_ticks: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub round: Option<String>,
    pub request: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTasks {
    pub dkg: Option<i64>,
    pub sign: Option<i64>,
    pub reshare: Option<i64>,
    pub max_attempts: Option<i64>,
    pub result_cache: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbes {
    pub interval: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEcdsa {
    pub prime_pool: Option<i64>,
    pub presignatures: Option<i64>,
    pub primes_file: Option<String>,
    pub round: Option<String>,
}
