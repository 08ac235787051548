//! `keyshard bench`: end-to-end signing latency and throughput of a loopback cluster, beside
//! the bare in-process cost measured in the same run.
//!
//! Per scheme (FROST Ed25519 and secp256k1 by default) it creates a `t`-of-`n` key and measures:
//!
//! - **single**: sequential one-message `Sign` requests to the leader for the given time;
//!   latency p50/p99 of the whole call as the client sees it;
//! - **batched**: `concurrency` clients sending batches of `batch` messages for the given time;
//!   signatures per second;
//! - **in-process**: all parties' FROST work for one signature in this process with the frost
//!   crates directly (`t` commitments, `t` signature shares, one aggregation, which verifies the
//!   group signature), as CPU time of the measuring thread (`/proc/thread-self/schedstat`;
//!   wall time where that is unavailable);
//! - **in-process on all cores**: the same bare signing on `cores` threads at once for 1 s,
//!   signatures per second: the crypto-bound limit as the (shared) machine delivers it now;
//! - **loopback round trip**: p50 of gRPC health checks over the same kind of mTLS channel;
//! - **CPU time** of the node processes and of this process during the batched phase
//!   (`/proc/<pid>/stat`; local cluster on Linux), per signature.
//!
//! and compares: p50 against `in-process + 2 x RTT` (target: within 3x), and batched throughput
//! against the crypto-bound limit `cores / in-process CPU seconds per signature` (target: at
//! least 70%), `cores` being this machine's available parallelism, which the nodes, the client
//! and everything else on the machine share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use frost_core::round1::SigningCommitments;
use frost_core::{Ciphersuite, Identifier, SigningPackage};
use keyshard_core::scheme::Scheme;
use keyshard_proto::client as pb;
use keyshard_proto::client::keyshard_client::KeyshardClient;
use rand_chacha::rand_core::SeedableRng;
use serde::Serialize;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::client::Profile;
use crate::dev::{self, DevOptions, LocalCluster};

/// Where the cluster comes from.
#[derive(Clone, Debug)]
pub enum Target {
    /// Start a loopback cluster of node processes (as `keyshard dev` does) and stop it after.
    Local {
        /// Where certificates, configs, stores and logs go (wiped if a previous run made it).
        data_dir: PathBuf,
        /// The `keyshard` binary to start nodes with.
        binary: PathBuf,
    },
    /// A running cluster, through a client profile (`application` role).
    Profile(Profile),
}

/// `keyshard bench` options.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Nodes to start (local cluster only).
    pub nodes: u16,
    /// Threshold of the keys.
    pub threshold: u16,
    /// How long each load phase runs.
    pub seconds: f64,
    /// Messages per batched request.
    pub batch: usize,
    /// Concurrent batched requests.
    pub concurrency: usize,
    /// Schemes to measure.
    pub schemes: Vec<Scheme>,
    /// The cluster.
    pub target: Target,
}

/// A failure, in words.
#[derive(Debug)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

fn err(what: impl std::fmt::Display) -> BenchError {
    BenchError(what.to_string())
}

/// Latency of sequential requests.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// Requests measured.
    pub requests: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let at = |q: f64| {
            // Nearest rank.
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            ms(samples[rank - 1])
        };
        let total: Duration = samples.iter().sum();
        Latency {
            requests: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            mean_ms: ms(total) / samples.len() as f64,
            max_ms: samples.last().map_or(0.0, |d| ms(*d)),
        }
    }
}

/// Batched signing throughput.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    /// Messages per request.
    pub batch: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests answered with signatures.
    pub requests: u64,
    /// Requests that failed (each is printed as a warning).
    pub failed: u64,
    /// Signatures received.
    pub signatures: u64,
    /// Wall time of the phase, s.
    pub seconds: f64,
    /// Signatures per second.
    pub signatures_per_s: f64,
    /// CPU time all node processes spent during the phase per signature, ms (local cluster on
    /// Linux only).
    pub nodes_cpu_ms_per_sig: Option<f64>,
    /// CPU time this process (the clients) spent during the phase per signature, ms.
    pub client_cpu_ms_per_sig: Option<f64>,
    /// (nodes + client CPU time) / (wall time x cores): how busy the machine's cores were with
    /// this benchmark (other load on the machine is not counted).
    pub cpu_busy: Option<f64>,
}

/// The bare in-process cost of one signature, all parties together.
#[derive(Clone, Debug, Serialize)]
pub struct InProcess {
    /// Signatures computed.
    pub signatures: u64,
    /// CPU time per signature, ms (thread CPU time; wall time if `clock` says so).
    pub cpu_ms: f64,
    /// Wall time per signature, ms.
    pub wall_ms: f64,
    /// `thread-cpu` or `wall` (no per-thread CPU clock on this system).
    pub clock: &'static str,
}

/// One scheme's results.
#[derive(Clone, Debug, Serialize)]
pub struct SchemeReport {
    /// Scheme name.
    pub scheme: String,
    /// `t`-of-`n`.
    pub threshold: u16,
    /// Key holders.
    pub holders: usize,
    /// Key creation (DKG) as the client saw it, ms.
    pub create_ms: f64,
    /// Sequential single-message requests.
    pub single: Latency,
    /// Bare in-process cost per signature.
    pub in_process: InProcess,
    /// `in_process.cpu_ms + 2 x rtt`, ms.
    pub latency_bound_ms: f64,
    /// `single.p50_ms / latency_bound_ms`.
    pub p50_vs_bound: f64,
    /// `p50_vs_bound <= 3`.
    pub latency_target_met: bool,
    /// Batched requests.
    pub batched: Throughput,
    /// `cores / (in_process.cpu_ms / 1000)`, signatures per second.
    pub crypto_bound_per_s: f64,
    /// `batched.signatures_per_s / crypto_bound_per_s`.
    pub throughput_vs_bound: f64,
    /// `throughput_vs_bound >= 0.7`.
    pub throughput_target_met: bool,
    /// Bare in-process signing on `cores` threads at once (measured just before the load
    /// phases), signatures per second: the crypto-bound limit as this machine delivered it.
    pub in_process_parallel_per_s: f64,
    /// `batched.signatures_per_s / in_process_parallel_per_s`.
    pub throughput_vs_parallel: f64,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Available parallelism of this machine.
    pub cores: usize,
    /// Cluster members.
    pub nodes: usize,
    /// The node requests went to (the leader when known).
    pub endpoint_node: u32,
    /// Duration of each load phase, s.
    pub seconds: f64,
    /// Loopback round trip (gRPC health check over mTLS), p50 and p99, ms.
    pub rtt_p50_ms: f64,
    /// p99 of the round trips, ms.
    pub rtt_p99_ms: f64,
    /// Per scheme.
    pub schemes: Vec<SchemeReport>,
}

/// CPU time (user + system, all threads) of process `pid` (`None`: this process), from
/// `/proc/<pid>/stat` in clock ticks of 1/100 s (Linux's `USER_HZ` on every common
/// architecture), if readable.
fn process_cpu(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let s = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces; fields after its closing parenthesis are plain.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time of all node processes (if every one is readable) and of this process.
fn cpu_snapshot(pids: &[u32]) -> (Option<Duration>, Option<Duration>) {
    let nodes = pids
        .iter()
        .map(|p| process_cpu(Some(*p)))
        .sum::<Option<Duration>>()
        .filter(|_| !pids.is_empty());
    (nodes, process_cpu(None))
}

/// CPU time of the calling thread, from `/proc/thread-self/schedstat` (ns on CPU), if readable.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// All parties' signing work for signatures in this thread, for at least `min` wall time and 20
/// signatures, after 5 warm-up signatures.
fn in_process<C: Ciphersuite>(n: u16, t: u16, min: Duration) -> Result<InProcess, BenchError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(err)?;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let (shares, pkp) = frost_core::keys::generate_with_dealer::<C, _>(
        n,
        t,
        frost_core::keys::IdentifierList::Default,
        &mut rng,
    )
    .map_err(|e| err(format!("dealer: {e}")))?;
    let kps: Vec<(Identifier<C>, frost_core::keys::KeyPackage<C>)> = shares
        .into_iter()
        .take(usize::from(t))
        .map(|(id, s)| frost_core::keys::KeyPackage::try_from(s).map(|k| (id, k)))
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("key package: {e}")))?;
    let mut sign_one = |i: u64| -> Result<(), BenchError> {
        let mut message = [0u8; 32];
        message[..8].copy_from_slice(&i.to_be_bytes());
        let mut nonces = std::collections::BTreeMap::new();
        let mut commitments: std::collections::BTreeMap<Identifier<C>, SigningCommitments<C>> =
            std::collections::BTreeMap::new();
        for (id, kp) in &kps {
            let (n, c) = frost_core::round1::commit(kp.signing_share(), &mut rng);
            nonces.insert(*id, n);
            commitments.insert(*id, c);
        }
        let package = SigningPackage::new(commitments, &message);
        let mut sig_shares = std::collections::BTreeMap::new();
        for (id, kp) in &kps {
            let share = frost_core::round2::sign(&package, &nonces[id], kp)
                .map_err(|e| err(format!("sign: {e}")))?;
            sig_shares.insert(*id, share);
        }
        frost_core::aggregate(&package, &sig_shares, &pkp)
            .map_err(|e| err(format!("aggregate: {e}")))?;
        Ok(())
    };
    for i in 0..5 {
        sign_one(i)?;
    }
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let mut count = 0u64;
    while count < 20 || wall0.elapsed() < min {
        sign_one(1000 + count)?;
        count += 1;
    }
    let wall = wall0.elapsed();
    let (cpu, clock) = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) if b > a => (b - a, "thread-cpu"),
        _ => (wall, "wall"),
    };
    let per = |d: Duration| d.as_secs_f64() * 1e3 / count as f64;
    Ok(InProcess {
        signatures: count,
        cpu_ms: per(cpu),
        wall_ms: per(wall),
        clock,
    })
}

fn in_process_for(scheme: Scheme, n: u16, t: u16, min: Duration) -> Result<InProcess, BenchError> {
    match scheme {
        Scheme::FrostEd25519 => in_process::<frost_ed25519::Ed25519Sha512>(n, t, min),
        Scheme::FrostSecp256k1 => in_process::<frost_secp256k1::Secp256K1Sha256>(n, t, min),
        other => Err(err(format!(
            "{} is not benchmarked (frost-ed25519 and frost-secp256k1 are)",
            other.name()
        ))),
    }
}

/// Bare in-process signing on `threads` threads at once for about `min`: signatures per second
/// the machine gives this process right now (the crypto-bound limit measured, not computed; it
/// includes whatever else runs on the machine).
fn in_process_parallel(
    scheme: Scheme,
    n: u16,
    t: u16,
    threads: usize,
    min: Duration,
) -> Result<f64, BenchError> {
    let start = Instant::now();
    let results: Vec<Result<InProcess, BenchError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || in_process_for(scheme, n, t, min)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(err("a signing thread panicked")))
            })
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut signatures = 0u64;
    for r in results {
        signatures += r?.signatures;
    }
    // Each thread also built its keys and warmed up (5 signatures): count those out of neither
    // side, they are small next to `min`.
    Ok(signatures as f64 / wall)
}

/// p50 and p99 of `count` health checks on `channel`, ms.
async fn round_trips(channel: Channel, count: usize) -> Result<(f64, f64), BenchError> {
    let mut health = HealthClient::new(channel);
    let request = || HealthCheckRequest {
        service: String::new(),
    };
    for _ in 0..20 {
        health.check(request()).await.map_err(status)?;
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let t0 = Instant::now();
        health.check(request()).await.map_err(status)?;
        samples.push(t0.elapsed());
    }
    let l = Latency::of(samples);
    Ok((l.p50_ms, l.p99_ms))
}

fn status(e: tonic::Status) -> BenchError {
    err(format!("{:?}: {}", e.code(), e.message()))
}

fn message(run: &str, phase: &str, i: u64) -> Vec<u8> {
    format!("keyshard bench {run} {phase} {i:>12}").into_bytes()
}

/// Runs the benchmark (see the module docs). `progress` gets one line per step.
pub async fn run(
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchReport, BenchError> {
    if opts.batch == 0 || opts.batch > keyshard_core::frost::sign::MAX_BATCH {
        return Err(err(format!(
            "--batch must be 1..={}",
            keyshard_core::frost::sign::MAX_BATCH
        )));
    }
    if opts.concurrency == 0 || opts.seconds.is_nan() || opts.seconds <= 0.0 {
        return Err(err("--concurrency and --seconds must be positive"));
    }
    let mut run_id = [0u8; 4];
    getrandom::getrandom(&mut run_id).map_err(err)?;
    let run_id = hex::encode(run_id);

    // The cluster: started here, or reached through a profile.
    let mut _cluster: Option<LocalCluster> = None;
    let mut pids: Vec<u32> = Vec::new();
    let (profile, endpoint, leader) = match &opts.target {
        Target::Local { data_dir, binary } => {
            if opts.nodes < 2 || opts.threshold < 2 || opts.threshold > opts.nodes {
                return Err(err(format!(
                    "need 2 <= threshold <= nodes, got {} of {}",
                    opts.threshold, opts.nodes
                )));
            }
            progress(&format!(
                "starting {} nodes in {} ...",
                opts.nodes,
                data_dir.display()
            ));
            let mut cluster = dev::start_cluster(&DevOptions {
                nodes: opts.nodes,
                threshold: opts.threshold,
                data_dir: data_dir.clone(),
                exit: true,
                binary: binary.clone(),
                primes_dir: None,
            })
            .map_err(err)?;
            let leader =
                match dev::wait_ready(&cluster.app, &cluster.addresses, Duration::from_secs(60))
                    .await
                {
                    Ok(l) => l,
                    Err(e) => return Err(err(format!("{e}\n{}", cluster.exited().join("\n")))),
                };
            let endpoint = cluster
                .addresses
                .iter()
                .find(|(p, _)| u32::from(p.get()) == leader)
                .map(|(_, a)| a.clone())
                .ok_or_else(|| err("the leader is not a started node"))?;
            let profile = cluster.app.clone();
            pids = cluster.children.iter().map(|(_, c)| c.id()).collect();
            _cluster = Some(cluster);
            (profile, endpoint, leader)
        }
        Target::Profile(p) => {
            let mut c = p.connect().await.map_err(err)?;
            let s = c
                .cluster_status(pb::ClusterStatusRequest {})
                .await
                .map_err(status)?
                .into_inner();
            // Send to the leader if its address is known (members added at run time carry
            // one); otherwise to the profile's endpoint (a follower forwards to the leader).
            let leader_addr = s
                .members
                .iter()
                .find(|m| m.id == s.leader && !m.address.is_empty())
                .map(|m| m.address.clone());
            let (endpoint, node) = match leader_addr {
                Some(a) => (a, s.leader),
                None => (p.endpoint.clone(), s.node_id),
            };
            (p.clone(), endpoint, node)
        }
    };
    let channel = profile.channel_to(&endpoint).await.map_err(err)?;
    let client = KeyshardClient::new(channel.clone())
        .max_decoding_message_size(keyshard_core::node::wire::MAX_MESSAGE)
        .max_encoding_message_size(keyshard_core::node::wire::MAX_MESSAGE);
    let mut c = client.clone();
    let status_now = c
        .cluster_status(pb::ClusterStatusRequest {})
        .await
        .map_err(status)?
        .into_inner();
    let nodes = status_now.members.len();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let (rtt_p50_ms, rtt_p99_ms) = round_trips(channel.clone(), 500).await?;
    progress(&format!(
        "requests go to node {leader} ({endpoint}); loopback round trip p50 {rtt_p50_ms:.3} ms, p99 {rtt_p99_ms:.3} ms; {cores} cores"
    ));

    let phase = Duration::from_secs_f64(opts.seconds);
    let mut schemes = Vec::new();
    for scheme in &opts.schemes {
        let scheme = *scheme;
        let key_id = format!("bench-{}-{run_id}", scheme.name());

        // Key creation.
        let t0 = Instant::now();
        let created = c
            .create_key(pb::CreateKeyRequest {
                key_id: key_id.clone(),
                scheme: scheme.name().into(),
                threshold: u32::from(opts.threshold),
                participants: vec![],
                request_id: format!("{key_id}-create"),
            })
            .await
            .map_err(status)?
            .into_inner();
        let create_ms = t0.elapsed().as_secs_f64() * 1e3;
        let pk = created.public_key;
        let info = c
            .get_public_key(pb::GetPublicKeyRequest {
                key_id: key_id.clone(),
            })
            .await
            .map_err(status)?
            .into_inner();
        let holders = info.participants.len();
        let n = u16::try_from(holders).map_err(err)?;

        // The bare in-process cost, while the cluster is idle.
        let t = opts.threshold;
        let in_proc = tokio::task::spawn_blocking(move || {
            in_process_for(scheme, n, t, Duration::from_secs(1))
        })
        .await
        .map_err(err)??;
        let parallel = tokio::task::spawn_blocking(move || {
            in_process_parallel(scheme, n, t, cores, Duration::from_secs(1))
        })
        .await
        .map_err(err)??;

        // Warm-up, and one signature checked by the independent verifier.
        for i in 0..5u64 {
            let m = message(&run_id, "warm", i);
            let r = c
                .sign(pb::SignRequest {
                    key_id: key_id.clone(),
                    messages: vec![m.clone()],
                    request_id: format!("{key_id}-warm-{i}"),
                })
                .await
                .map_err(status)?
                .into_inner();
            let sig = r.signatures.first().ok_or_else(|| err("no signature"))?;
            dev::verify(scheme, &pk, &m, sig).map_err(err)?;
        }

        // Sequential single-message requests.
        let mut samples = Vec::new();
        let start = Instant::now();
        let mut i = 0u64;
        while start.elapsed() < phase || samples.len() < 5 {
            let t0 = Instant::now();
            c.sign(pb::SignRequest {
                key_id: key_id.clone(),
                messages: vec![message(&run_id, "single", i)],
                request_id: format!("{key_id}-s-{i}"),
            })
            .await
            .map_err(status)?;
            samples.push(t0.elapsed());
            i += 1;
        }
        let single = Latency::of(samples);

        // Batched requests, `concurrency` at a time.
        let cpu_before = cpu_snapshot(&pids);
        let start = Instant::now();
        let mut tasks = Vec::new();
        let key = Arc::new(key_id.clone());
        for w in 0..opts.concurrency {
            let (mut c, key, run_id, batch) =
                (client.clone(), key.clone(), run_id.clone(), opts.batch);
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut failed, mut sigs, mut first) = (0u64, 0u64, 0u64, None);
                let mut j = 0u64;
                while start.elapsed() < phase || ok == 0 {
                    let messages: Vec<Vec<u8>> = (0..batch as u64)
                        .map(|k| message(&run_id, &format!("b{w}-{j}"), k))
                        .collect();
                    let r = c
                        .sign(pb::SignRequest {
                            key_id: (*key).clone(),
                            messages: messages.clone(),
                            request_id: format!("{key}-b{w}-{j}"),
                        })
                        .await;
                    j += 1;
                    match r {
                        Ok(r) => {
                            let r = r.into_inner();
                            ok += 1;
                            sigs += r.signatures.len() as u64;
                            if first.is_none() {
                                first = r
                                    .signatures
                                    .first()
                                    .cloned()
                                    .map(|s| (messages[0].clone(), s));
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            tracing::warn!(error = %e.message(), "a batched request failed");
                            if failed > 100 && ok == 0 {
                                break;
                            }
                        }
                    }
                }
                (ok, failed, sigs, first)
            }));
        }
        let (mut requests, mut failed, mut signatures) = (0, 0, 0);
        for task in tasks {
            let (ok, f, s, first) = task.await.map_err(err)?;
            requests += ok;
            failed += f;
            signatures += s;
            if let Some((m, s)) = first {
                dev::verify(scheme, &pk, &m, &s).map_err(err)?;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let cpu_after = cpu_snapshot(&pids);
        let spent = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) if b >= a => Some((b - a).as_secs_f64()),
            _ => None,
        };
        let nodes_cpu = spent(cpu_before.0, cpu_after.0);
        let client_cpu = spent(cpu_before.1, cpu_after.1);
        let per_sig = |cpu: Option<f64>| {
            cpu.filter(|_| signatures > 0)
                .map(|c| c * 1e3 / signatures as f64)
        };
        let batched = Throughput {
            batch: opts.batch,
            concurrency: opts.concurrency,
            requests,
            failed,
            signatures,
            seconds,
            signatures_per_s: signatures as f64 / seconds,
            nodes_cpu_ms_per_sig: per_sig(nodes_cpu),
            client_cpu_ms_per_sig: per_sig(client_cpu),
            cpu_busy: nodes_cpu
                .zip(client_cpu)
                .map(|(n, c)| (n + c) / (seconds * cores as f64)),
        };

        let latency_bound_ms = in_proc.cpu_ms + 2.0 * rtt_p50_ms;
        let p50_vs_bound = single.p50_ms / latency_bound_ms;
        let crypto_bound_per_s = cores as f64 / (in_proc.cpu_ms / 1e3);
        let throughput_vs_bound = batched.signatures_per_s / crypto_bound_per_s;
        let report = SchemeReport {
            scheme: scheme.name().into(),
            threshold: opts.threshold,
            holders,
            create_ms,
            latency_bound_ms,
            p50_vs_bound,
            latency_target_met: p50_vs_bound <= 3.0,
            crypto_bound_per_s,
            throughput_vs_bound,
            throughput_target_met: throughput_vs_bound >= 0.7,
            in_process_parallel_per_s: parallel,
            throughput_vs_parallel: batched.signatures_per_s / parallel,
            single,
            in_process: in_proc,
            batched,
        };
        progress(&format!(
            "{}: single p50 {:.2} ms (bound {:.2} ms, {:.2}x); batched {:.0} sig/s (limit {:.0}, {:.0}%)",
            report.scheme,
            report.single.p50_ms,
            report.latency_bound_ms,
            report.p50_vs_bound,
            report.batched.signatures_per_s,
            report.crypto_bound_per_s,
            report.throughput_vs_bound * 100.0
        ));
        schemes.push(report);
    }
    Ok(BenchReport {
        cores,
        nodes,
        endpoint_node: leader,
        seconds: opts.seconds,
        rtt_p50_ms,
        rtt_p99_ms,
        schemes,
    })
}

/// The report as a Markdown table (the human output of `keyshard bench`).
pub fn table(r: &BenchReport) -> String {
    let mut s = format!(
        "{} nodes, {} cores, {:.1} s per phase, requests to node {}; loopback RTT p50 {:.3} ms, p99 {:.3} ms\n\n",
        r.nodes, r.cores, r.seconds, r.endpoint_node, r.rtt_p50_ms, r.rtt_p99_ms
    );
    s.push_str("| scheme | t-of-n | single: requests | p50 ms | p99 ms | in-process CPU ms/sig | bound = in-proc + 2 RTT, ms | p50 / bound (target <= 3x) | batched: batch x concurrency | sig/s | crypto-bound limit sig/s (cores / CPU s) | sig/s / limit (target >= 70%) |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n");
    for x in &r.schemes {
        let mark = |ok: bool| if ok { "met" } else { "NOT met" };
        s.push_str(&format!(
            "| {} | {}-of-{} | {} | {:.2} | {:.2} | {:.3} | {:.2} | {:.2}x {} | {} x {} | {:.0} | {:.0} | {:.0}% {} |\n",
            x.scheme,
            x.threshold,
            x.holders,
            x.single.requests,
            x.single.p50_ms,
            x.single.p99_ms,
            x.in_process.cpu_ms,
            x.latency_bound_ms,
            x.p50_vs_bound,
            mark(x.latency_target_met),
            x.batched.batch,
            x.batched.concurrency,
            x.batched.signatures_per_s,
            x.crypto_bound_per_s,
            x.throughput_vs_bound * 100.0,
            mark(x.throughput_target_met),
        ));
    }
    s.push_str("\nWhere the batched phase's CPU time went (per signature; cores busy = CPU time of nodes and client / (wall time x cores)):\n\n");
    s.push_str("| scheme | in-process CPU ms/sig | nodes CPU ms/sig | nodes / in-process | client CPU ms/sig | cores busy | in-process on all cores, sig/s | batched / that |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let opt = |v: Option<f64>, scale: f64, digits: usize| {
        v.map_or("n/a".to_string(), |v| format!("{:.*}", digits, v * scale))
    };
    for x in &r.schemes {
        let b = &x.batched;
        s.push_str(&format!(
            "| {} | {:.3} | {} | {} | {} | {}% | {:.0} | {:.0}% |\n",
            x.scheme,
            x.in_process.cpu_ms,
            opt(b.nodes_cpu_ms_per_sig, 1.0, 3),
            opt(
                b.nodes_cpu_ms_per_sig.map(|n| n / x.in_process.cpu_ms),
                1.0,
                2
            ) + "x",
            opt(b.client_cpu_ms_per_sig, 1.0, 3),
            opt(b.cpu_busy, 100.0, 0),
            x.in_process_parallel_per_s,
            x.throughput_vs_parallel * 100.0,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latency::of((1..=100).map(Duration::from_millis).collect());
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        assert!((l.mean_ms - 50.5).abs() < 1e-9);
        let one = Latency::of(vec![Duration::from_millis(7)]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
    }

    #[test]
    fn the_in_process_baseline_signs() {
        for scheme in [Scheme::FrostEd25519, Scheme::FrostSecp256k1] {
            let r = in_process_for(scheme, 5, 3, Duration::from_millis(10)).unwrap();
            assert!(
                r.signatures >= 20 && r.cpu_ms > 0.0 && r.wall_ms > 0.0,
                "{r:?}"
            );
        }
        assert!(in_process_for(Scheme::FrostP256, 5, 3, Duration::ZERO).is_err());
    }
}
