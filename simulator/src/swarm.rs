//! Swarm testing: every knob of a run (cluster size, fault rates, latencies, node timeouts,
//! the workload mix) is drawn from the seed, so different seeds explore different worlds.

use std::collections::BTreeMap;

use crate::choices::SimRng;
use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::NodeRole;
use keyshard_core::node::NodeConfig;
use keyshard_core::time::Duration;
use rand_core::RngCore;

use crate::workload::Mix;

/// A run's knobs.
#[derive(Clone, Debug)]
pub struct Params {
    /// Initial cluster size (3 to 7).
    pub n: u16,
    /// Highest node id (joiners take the ids after `n`).
    pub max_id: u16,
    /// One-way link latency range (ms).
    pub latency: (u64, u64),
    /// Jitter bound (ms).
    pub jitter: u64,
    /// Loss in parts per million (safety phase).
    pub loss_ppm: u32,
    /// Duplication in parts per million (safety phase).
    pub dup_ppm: u32,
    /// Disk write latency range (ms).
    pub disk_latency: (u64, u64),
    /// Chance (ppm) that a batch in flight reached the disk unacknowledged at a crash.
    pub torn_ppm: u32,
    /// Mean time between crashes (ms), if crashes happen.
    pub crash_every: Option<u64>,
    /// Downtime range of a crashed node (ms).
    pub downtime: (u64, u64),
    /// Mean time between two-way partitions (ms).
    pub partition_every: Option<u64>,
    /// Mean time between one-way cuts (ms).
    pub oneway_every: Option<u64>,
    /// Mean time between clogging episodes (ms).
    pub clog_every: Option<u64>,
    /// How long a partition, cut or clogging episode lasts (ms).
    pub fault_duration: (u64, u64),
    /// Transport failure detection delay (ms).
    pub detect: (u64, u64),
    /// Clock offsets up to this (ms).
    pub max_offset: u64,
    /// Drift bound in ppm (±).
    pub max_drift_ppm: i64,
    /// Mean time between client operations (ms).
    pub op_every: u64,
    /// Operation weights.
    pub mix: Mix,
    /// Safety phase length (ms).
    pub safety_ms: u64,
    /// Time the network and nodes get to settle in the liveness phase before the probe (ms).
    pub settle_ms: u64,
    /// The probe must finish within this (ms).
    pub probe_ms: u64,
    /// Node knobs.
    pub tick_ms: u64,
    /// Election timeout in ticks.
    pub election_ticks: usize,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: usize,
    /// Session round timeout (ms).
    pub round_timeout_ms: u64,
    /// Client request timeout at the node (ms).
    pub request_timeout_ms: u64,
    /// Rotation interval (ms, 0 = off).
    pub rotation_ms: u64,
    /// Attempts per task.
    pub max_attempts: u32,
    /// DKG concurrency.
    pub dkg_limit: usize,
    /// Reshare concurrency.
    pub reshare_limit: usize,
    /// Probe interval (ms).
    pub probe_interval_ms: u64,
}

struct Draw(SimRng);

impl Draw {
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.0.next_u64() % (hi - lo + 1)
    }
    fn coin(&mut self, num: u64, den: u64) -> bool {
        self.0.next_u64() % den < num
    }
    fn maybe(&mut self, num: u64, den: u64, lo: u64, hi: u64) -> Option<u64> {
        let on = self.coin(num, den);
        let v = self.range(lo, hi);
        on.then_some(v)
    }
}

impl Params {
    /// A fuzzed world (see [`crate::choices`]) runs a 5 to 25 s safety phase instead of 40 to
    /// 100 s: libFuzzer needs many short runs more than a few long ones.
    pub fn shorten_for_fuzzing(&mut self) {
        self.safety_ms = 5_000 + self.safety_ms % 20_000;
    }

    /// Draws every knob from `rng`.
    pub fn draw(rng: SimRng) -> Params {
        let mut d = Draw(rng);
        let n = d.range(3, 7) as u16;
        let lat_lo = d.range(1, 20);
        let lat_hi = lat_lo + d.range(0, 80);
        let tick_ms = d.range(50, 150);
        let probe_interval_ms = d.range(1_000, 3_000);
        Params {
            n,
            max_id: n + d.range(0, 3) as u16,
            latency: (lat_lo, lat_hi),
            jitter: d.range(0, 40),
            loss_ppm: d.maybe(1, 2, 1_000, 30_000).unwrap_or(0) as u32,
            dup_ppm: d.maybe(1, 2, 1_000, 30_000).unwrap_or(0) as u32,
            disk_latency: {
                let lo = d.range(0, 5);
                (lo, lo + d.range(0, 30))
            },
            torn_ppm: d.maybe(1, 2, 100_000, 900_000).unwrap_or(0) as u32,
            crash_every: d.maybe(2, 3, 10_000, 60_000),
            downtime: {
                let lo = d.range(500, 5_000);
                (lo, lo + d.range(0, 30_000))
            },
            partition_every: d.maybe(1, 2, 15_000, 60_000),
            oneway_every: d.maybe(1, 2, 15_000, 60_000),
            clog_every: d.maybe(1, 2, 15_000, 60_000),
            fault_duration: {
                let lo = d.range(1_000, 5_000);
                (lo, lo + d.range(0, 20_000))
            },
            detect: {
                let lo = d.range(100, 1_000);
                (lo, lo + d.range(0, 2_000))
            },
            max_offset: d.range(0, 5_000),
            max_drift_ppm: d.range(0, 1_000) as i64,
            op_every: d.range(300, 2_500),
            mix: Mix {
                create: d.range(1, 4) as u32,
                sign: d.range(2, 10) as u32,
                sign_batch: d.range(1, 5) as u32,
                reshare: d.range(1, 3) as u32,
                add: d.range(0, 2) as u32,
                remove: d.range(0, 2) as u32,
                bad: d.range(0, 1) as u32,
                max_keys: d.range(2, 5) as u32,
            },
            safety_ms: d.range(40_000, 100_000),
            settle_ms: 15_000,
            probe_ms: 240_000,
            tick_ms,
            election_ticks: d.range(8, 15) as usize,
            heartbeat_ticks: d.range(1, 3) as usize,
            round_timeout_ms: d.range(2_000, 8_000),
            request_timeout_ms: d.range(15_000, 45_000),
            rotation_ms: d.maybe(2, 3, 20_000, 90_000).unwrap_or(0),
            max_attempts: d.range(2, 4) as u32,
            dkg_limit: d.range(1, 3) as usize,
            reshare_limit: d.range(1, 2) as usize,
            probe_interval_ms,
        }
    }

    /// The configuration of node `id` (joining nodes get the bootstrap members and
    /// `joining = true`).
    pub fn node_config(&self, id: ParticipantId) -> NodeConfig {
        let members: BTreeMap<ParticipantId, NodeRole> = (1..=self.n)
            .filter_map(ParticipantId::new)
            .map(|p| (p, NodeRole::Tee))
            .collect();
        let joining = !members.contains_key(&id);
        let mut cfg = NodeConfig::new(id, members);
        cfg.joining = joining;
        cfg.tick = Duration::from_millis(self.tick_ms);
        cfg.election_ticks = self.election_ticks;
        cfg.heartbeat_ticks = self.heartbeat_ticks;
        cfg.round_timeout = Duration::from_millis(self.round_timeout_ms);
        cfg.request_timeout = Duration::from_millis(self.request_timeout_ms);
        cfg.rotation_interval = Duration::from_millis(self.rotation_ms);
        cfg.max_attempts = self.max_attempts;
        cfg.limits.dkg = self.dkg_limit;
        cfg.limits.reshare = self.reshare_limit;
        cfg.probe_interval = Duration::from_millis(self.probe_interval_ms);
        cfg.probe_timeout = Duration::from_millis(self.probe_interval_ms * 2);
        cfg
    }

    /// One line for reports.
    pub fn summary(&self) -> String {
        let on = |x: Option<u64>| x.map_or("off".to_string(), |v| format!("{}s", v / 1000));
        format!(
            "n={} max_id={} latency={}-{}ms jitter={}ms loss={}ppm dup={}ppm disk={}-{}ms torn={}ppm \
             crash={} partition={} oneway={} clog={} drift=±{}ppm ops every {}ms rotation={}ms \
             tick={}ms safety={}s",
            self.n,
            self.max_id,
            self.latency.0,
            self.latency.1,
            self.jitter,
            self.loss_ppm,
            self.dup_ppm,
            self.disk_latency.0,
            self.disk_latency.1,
            self.torn_ppm,
            on(self.crash_every),
            on(self.partition_every),
            on(self.oneway_every),
            on(self.clog_every),
            self.max_drift_ppm,
            self.op_every,
            self.rotation_ms,
            self.tick_ms,
            self.safety_ms / 1000,
        )
    }
}
