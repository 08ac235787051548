//! The `keyshard` command line.
//!
//! ```text
//! keyshard dev [--nodes 5] [--threshold 3] [--data-dir keyshard-dev] [--exit]
//! keyshard node --config FILE
//! keyshard certs init --dir DIR | certs issue --dir DIR (--node ID --role tee|mesh | --client NAME --role application|admin)
//! keyshard key create|list|show, keyshard sign, keyshard reshare, keyshard status,
//! keyshard members add|remove                     [--profile FILE] [--json]
//! keyshard audit verify [FILE] (--config NODE.toml | --sealing-key FILE (--checkpoint FILE | --no-checkpoint)) [--json]
//! keyshard bench [--nodes 5] [--threshold 3] [--seconds 10] [--batch 32] [--concurrency 4]
//!                [--scheme frost-ed25519 ...] [--data-dir keyshard-bench | --profile FILE] [--json]
//! ```
//!
//! Exit status: 0 on success, 1 on failure, 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keyshard_core::ids::ParticipantId;
use keyshard_core::scheme::Scheme;
use keyshard_node::client::Profile;
use keyshard_node::{audit, certs, config, dev, encoding};
use keyshard_pki::{ClientRole, NodeRole};
use keyshard_proto::client as pb;

#[derive(Parser)]
#[command(
    name = "keyshard",
    version,
    about = "keyshard: threshold keys held by a cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ClientArgs {
    /// Client profile (endpoint and certificate files, TOML). Default: `$KEYSHARD_PROFILE`, or
    /// the profile `keyshard dev` wrote in ./keyshard-dev.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local cluster of node processes, create, sign, reshare and verify with every FROST scheme.
    Dev {
        /// Nodes to start.
        #[arg(long, default_value_t = 5)]
        nodes: u16,
        /// Threshold of the keys created.
        #[arg(long, default_value_t = 3)]
        threshold: u16,
        /// Where certificates, configs, stores and logs go (wiped if a previous `dev` made it).
        #[arg(long, default_value = "keyshard-dev")]
        data_dir: PathBuf,
        /// Stop the cluster at the end instead of leaving it running.
        #[arg(long)]
        exit: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure signing latency and throughput on a loopback cluster beside the bare
    /// in-process FROST cost (see docs/benchmarks.md).
    Bench {
        /// Nodes to start (ignored with --profile).
        #[arg(long, default_value_t = 5)]
        nodes: u16,
        /// Threshold of the keys.
        #[arg(long, default_value_t = 3)]
        threshold: u16,
        /// Seconds per load phase (single, batched) and scheme.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Messages per batched request.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Batched requests in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Schemes (repeatable; default frost-ed25519 and frost-secp256k1).
        #[arg(long = "scheme")]
        schemes: Vec<String>,
        /// Where the local cluster's files go (wiped if a previous run made it).
        #[arg(long, default_value = "keyshard-bench")]
        data_dir: PathBuf,
        /// Benchmark a running cluster through this client profile instead of starting one.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a node.
    Node {
        /// The node's TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Certificates: an offline CA and node/client certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Sign messages with a key (one request; a batch if several messages).
    Sign {
        /// The key id.
        key: String,
        /// A message (UTF-8); repeat for a batch.
        #[arg(long = "message", short = 'm')]
        messages: Vec<String>,
        /// A message as hex; repeat for a batch.
        #[arg(long = "hex")]
        hex_messages: Vec<String>,
        /// Idempotency key (default: random).
        #[arg(long)]
        request_id: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Reshare a key (same public key, next version); admin only.
    Reshare {
        /// The key id.
        key: String,
        /// The new threshold (default: unchanged).
        #[arg(long)]
        threshold: Option<u32>,
        /// The new members, comma-separated ids (default: unchanged).
        #[arg(long, value_delimiter = ',')]
        members: Vec<u32>,
        /// Idempotency key (default: random).
        #[arg(long)]
        request_id: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Leader, term, members and their scores.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cluster membership; admin only.
    Members {
        #[command(subcommand)]
        command: MembersCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a CA (ca.pem, ca.key) in DIR.
    Init {
        /// The certificate directory.
        #[arg(long)]
        dir: PathBuf,
        /// The CA's name.
        #[arg(long, default_value = "keyshard CA")]
        name: String,
    },
    /// Issue a node or client certificate with the CA in DIR.
    Issue {
        /// The certificate directory (holding ca.pem and ca.key).
        #[arg(long)]
        dir: PathBuf,
        /// A node id (with --role tee|mesh).
        #[arg(long, conflicts_with = "client")]
        node: Option<u16>,
        /// A client name (with --role application|admin).
        #[arg(long)]
        client: Option<String>,
        /// tee, mesh, application or admin.
        #[arg(long)]
        role: String,
        /// Host names or IP addresses the node is reached at (localhost is always included).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a key with a distributed key generation.
    Create {
        /// The key id (1-64 of A-Z a-z 0-9 . _ -).
        key: String,
        /// frost-ed25519, frost-secp256k1, frost-p256 or frost-secp256k1-tr.
        #[arg(long)]
        scheme: String,
        /// Shares needed to sign.
        #[arg(long)]
        threshold: u32,
        /// Holders, comma-separated node ids (default: every member).
        #[arg(long, value_delimiter = ',')]
        participants: Vec<u32>,
        /// Idempotency key (default: random).
        #[arg(long)]
        request_id: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List keys.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a key's public key (hex and PEM) and parameters.
    Show {
        /// The key id.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum MembersCommand {
    /// Add a node (start it with `joining = true` first).
    Add {
        /// Its id.
        id: u32,
        /// Its address (host:port).
        #[arg(long)]
        address: String,
        /// tee or mesh.
        #[arg(long, default_value = "tee")]
        role: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a node (refused while a key would keep fewer holders than its threshold).
    Remove {
        /// Its id.
        id: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Checks an audit log: every line's MAC under the node's audit key (derived from its
    /// sealing key), the chain from its first line to its last, and, against the node's
    /// checkpoint, that no line was cut off its end.
    Verify {
        /// The audit log file (with --config, defaults to the config's audit_log).
        #[arg(required_unless_present = "config")]
        file: Option<PathBuf>,
        /// The node's config file: the log, the sealing key (<data_dir>/sealing.key) and the
        /// checkpoint (<data_dir>/audit.head) are found from it.
        #[arg(long, conflicts_with = "sealing_key")]
        config: Option<PathBuf>,
        /// The node's sealing key file, when the config is not at hand (the audit key is
        /// derived from it; the sealing key itself is never used on the log).
        #[arg(long)]
        sealing_key: Option<PathBuf>,
        /// The node's audit checkpoint (<data_dir>/audit.head).
        #[arg(long, conflicts_with = "no_checkpoint")]
        checkpoint: Option<PathBuf>,
        /// Check without the checkpoint: lines cut off the end of the log then go undetected.
        #[arg(long)]
        no_checkpoint: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keyshard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keyshard: {e}");
            ExitCode::FAILURE
        }
    }
}

type Failure = Box<dyn std::error::Error>;

fn random_request_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::getrandom(&mut b);
    hex::encode(b)
}

fn profile_path(args: &ClientArgs, admin: bool) -> PathBuf {
    args.profile
        .clone()
        .or_else(|| std::env::var_os("KEYSHARD_PROFILE").map(PathBuf::from))
        .unwrap_or_else(|| {
            PathBuf::from("keyshard-dev").join(if admin {
                "dev-admin.toml"
            } else {
                "dev-app.toml"
            })
        })
}

async fn connect(
    args: &ClientArgs,
    admin: bool,
) -> Result<pb::keyshard_client::KeyshardClient<tonic::transport::Channel>, Failure> {
    let profile = Profile::load(&profile_path(args, admin))?;
    Ok(profile.connect().await?)
}

fn status_error(e: tonic::Status) -> Failure {
    format!("{:?}: {}", e.code(), e.message()).into()
}

fn print_key(info: &pb::KeyInfo, json: bool) -> Result<(), Failure> {
    let scheme: Scheme = info
        .scheme
        .parse()
        .map_err(|_| format!("unknown scheme {}", info.scheme))?;
    let text = encoding::public_key(scheme, &info.public_key)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "key_id": info.key_id, "scheme": info.scheme, "version": info.version,
                "threshold": info.threshold, "participants": info.participants,
                "public_key": text.hex, "bip340_public_key": text.bip340_hex, "pem": text.pem,
            })
        );
    } else {
        println!(
            "{}  {}  v{}  {}-of-{} {:?}",
            info.key_id,
            info.scheme,
            info.version,
            info.threshold,
            info.participants.len(),
            info.participants
        );
        println!("  public key: {}", text.hex);
        if let Some(x) = &text.bip340_hex {
            println!("  BIP-340 x-only: {x}");
        }
        print!("{}", text.pem);
    }
    Ok(())
}

async fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Audit {
            command:
                AuditCommand::Verify {
                    file,
                    config,
                    sealing_key,
                    checkpoint,
                    no_checkpoint,
                    json,
                },
        } => Ok(audit_verify(
            AuditSources {
                file,
                config,
                sealing_key,
                checkpoint,
                no_checkpoint,
            },
            json,
        )),
        Command::Node { config } => {
            let config = config::Config::load(&config)?;
            init_logs(config.log_level.name());
            keyshard_node::run::run_node(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs { command } => certs_command(command),
        Command::Bench {
            nodes,
            threshold,
            seconds,
            batch,
            concurrency,
            schemes,
            data_dir,
            profile,
            json,
        } => {
            let schemes = if schemes.is_empty() {
                vec![Scheme::FrostEd25519, Scheme::FrostSecp256k1]
            } else {
                schemes
                    .iter()
                    .map(|s| {
                        s.parse()
                            .map_err(|_| format!("--scheme {s:?}: unknown scheme"))
                    })
                    .collect::<Result<Vec<Scheme>, String>>()?
            };
            let target = match profile {
                Some(p) => keyshard_node::bench::Target::Profile(Profile::load(&p)?),
                None => keyshard_node::bench::Target::Local {
                    data_dir,
                    binary: std::env::current_exe()?,
                },
            };
            let opts = keyshard_node::bench::BenchOptions {
                nodes,
                threshold,
                seconds,
                batch,
                concurrency,
                schemes,
                target,
            };
            let report = keyshard_node::bench::run(&opts, &mut |line| eprintln!("{line}")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", keyshard_node::bench::table(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev {
            nodes,
            threshold,
            data_dir,
            exit,
            json,
        } => dev_command(nodes, threshold, data_dir, exit, json).await,
        Command::Key { command } => key_command(command).await,
        Command::Sign {
            key,
            messages,
            hex_messages,
            request_id,
            client,
        } => {
            let mut all: Vec<Vec<u8>> = messages.into_iter().map(String::into_bytes).collect();
            for h in hex_messages {
                all.push(hex::decode(&h).map_err(|e| format!("--hex {h:?}: {e}"))?);
            }
            if all.is_empty() {
                return Err("give at least one --message or --hex".into());
            }
            let mut c = connect(&client, false).await?;
            let r = c
                .sign(pb::SignRequest {
                    key_id: key,
                    messages: all,
                    request_id: request_id.unwrap_or_else(random_request_id),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let sigs: Vec<String> = r.signatures.iter().map(hex::encode).collect();
            if client.json {
                println!(
                    "{}",
                    serde_json::json!({"key_id": r.key_id, "version": r.version, "signatures": sigs})
                );
            } else {
                for s in sigs {
                    println!("{s}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reshare {
            key,
            threshold,
            members,
            request_id,
            client,
        } => {
            let mut c = connect(&client, true).await?;
            let r = c
                .reshare(pb::ReshareRequest {
                    key_id: key,
                    new_threshold: threshold,
                    new_members: members,
                    request_id: request_id.unwrap_or_else(random_request_id),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if client.json {
                println!(
                    "{}",
                    serde_json::json!({"key_id": r.key_id, "version": r.version, "public_key": hex::encode(&r.public_key)})
                );
            } else {
                println!(
                    "{} reshared: version {} active, public key unchanged",
                    r.key_id, r.version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { client } => {
            let mut c = connect(&client, false).await?;
            let s = c
                .cluster_status(pb::ClusterStatusRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if client.json {
                let members: Vec<_> = s
                    .members
                    .iter()
                    .map(|m| serde_json::json!({"id": m.id, "role": m.role, "address": m.address, "score_ppm": m.score_ppm}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"node": s.node_id, "leader": s.leader, "term": s.term, "members": members})
                );
            } else {
                println!(
                    "answered by node {}; leader {} in term {}",
                    s.node_id, s.leader, s.term
                );
                for m in &s.members {
                    println!(
                        "  node {:>3}  score {:.3}  {}",
                        m.id,
                        f64::from(m.score_ppm) / 1e6,
                        m.address
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Members { command } => match command {
            MembersCommand::Add {
                id,
                address,
                role,
                client,
            } => {
                let role = match role.as_str() {
                    "tee" => pb::NodeRole::Tee,
                    "mesh" => pb::NodeRole::Mesh,
                    other => return Err(format!("--role {other:?}: expected tee or mesh").into()),
                };
                let mut c = connect(&client, true).await?;
                c.add_member(pb::AddMemberRequest {
                    id,
                    role: role as i32,
                    address,
                })
                .await
                .map_err(status_error)?;
                println!("node {id} added");
                Ok(ExitCode::SUCCESS)
            }
            MembersCommand::Remove { id, client } => {
                let mut c = connect(&client, true).await?;
                c.remove_member(pb::RemoveMemberRequest { id })
                    .await
                    .map_err(status_error)?;
                println!("node {id} removed");
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

fn init_logs(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .try_init();
}

fn certs_command(command: CertsCommand) -> Result<ExitCode, Failure> {
    match command {
        CertsCommand::Init { dir, name } => {
            let cert = certs::init(&dir, &name)?;
            println!("CA written to {} (keep ca.key offline)", cert.display());
        }
        CertsCommand::Issue {
            dir,
            node,
            client,
            role,
            hosts,
            days,
        } => {
            let identity = match (node, client, role.as_str()) {
                (Some(id), None, "tee" | "mesh") => {
                    let id = ParticipantId::new(id).ok_or("--node must be at least 1")?;
                    let r = if role == "tee" {
                        NodeRole::Tee
                    } else {
                        NodeRole::Mesh
                    };
                    certs::node_identity(id, r)
                }
                (None, Some(name), "application" | "admin") => {
                    let r = if role == "admin" {
                        ClientRole::Admin
                    } else {
                        ClientRole::Application
                    };
                    certs::client_identity(&name, r)?
                }
                (Some(_), _, r) => {
                    return Err(format!("a node's --role is tee or mesh, not {r:?}").into())
                }
                (None, Some(_), r) => {
                    return Err(
                        format!("a client's --role is application or admin, not {r:?}").into(),
                    )
                }
                (None, None, _) => return Err("give --node ID or --client NAME".into()),
            };
            let (cert, key) = certs::issue(&dir, &identity, days, &hosts)?;
            println!(
                "{} -> {} and {}",
                identity.to_uri(),
                cert.display(),
                key.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn key_command(command: KeyCommand) -> Result<ExitCode, Failure> {
    match command {
        KeyCommand::Create {
            key,
            scheme,
            threshold,
            participants,
            request_id,
            client,
        } => {
            let mut c = connect(&client, false).await?;
            let r = c
                .create_key(pb::CreateKeyRequest {
                    key_id: key.clone(),
                    scheme,
                    threshold,
                    participants,
                    request_id: request_id.unwrap_or_else(random_request_id),
                })
                .await
                .map_err(status_error)?;
            let created = r.into_inner();
            let info = c
                .get_public_key(pb::GetPublicKeyRequest { key_id: key })
                .await
                .map_err(status_error)?
                .into_inner();
            if !client.json {
                println!(
                    "created {} ({}), version {}",
                    created.key_id, created.scheme, created.version
                );
            }
            print_key(&info, client.json)?;
        }
        KeyCommand::List { client } => {
            let mut c = connect(&client, false).await?;
            let r = c
                .list_keys(pb::ListKeysRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            for k in &r.keys {
                print_key(k, client.json)?;
            }
        }
        KeyCommand::Show { key, client } => {
            let mut c = connect(&client, false).await?;
            let info = c
                .get_public_key(pb::GetPublicKeyRequest { key_id: key })
                .await
                .map_err(status_error)?
                .into_inner();
            print_key(&info, client.json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn dev_command(
    nodes: u16,
    threshold: u16,
    data_dir: PathBuf,
    exit: bool,
    json: bool,
) -> Result<ExitCode, Failure> {
    if nodes < 2 || threshold < 2 || threshold >= nodes {
        return Err(format!(
            "need 2 <= threshold < nodes (the reshare drops one node), got {threshold} of {nodes}"
        )
        .into());
    }
    let opts = dev::DevOptions {
        nodes,
        threshold,
        data_dir,
        exit,
        binary: std::env::current_exe()?,
        primes_dir: None,
    };
    eprintln!("starting {nodes} nodes in {} ...", opts.data_dir.display());
    let mut cluster = dev::start_cluster(&opts)?;
    let ready = dev::wait_ready(
        &cluster.app,
        &cluster.addresses,
        std::time::Duration::from_secs(60),
    )
    .await;
    let leader = match ready {
        Ok(l) => l,
        Err(e) => {
            let exited = cluster.exited();
            return Err(format!("{e}\n{}", exited.join("\n")).into());
        }
    };
    eprintln!("cluster ready, leader is node {leader}; creating a {threshold}-of-{nodes} key of every FROST scheme");
    let run = random_request_id();
    let mut results = Vec::new();
    for scheme in Scheme::FROST {
        let started = std::time::Instant::now();
        let r = dev::exercise_scheme(&cluster, scheme, threshold, &run).await?;
        eprintln!(
            "  {:<20} created, signed (1 + batch of {}), reshared to {}-of-{}, signed again, verified ({:.1} s)",
            r.scheme,
            r.batch,
            threshold,
            nodes - 1,
            started.elapsed().as_secs_f64()
        );
        results.push(r);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!();
        for r in &results {
            println!(
                "{}  ({}, now version {})",
                r.key_id, r.scheme, r.reshared_version
            );
            println!("  public key:   {}", r.public_key);
            if let Some(x) = &r.public_key_xonly {
                println!("  BIP-340 key:  {x}");
            }
            println!("  signature v1: {}", r.signature_v1);
            println!("  signature v2: {}", r.signature_v2);
        }
        println!("\nall signatures verified by independent verifiers");
    }
    if exit {
        drop(cluster);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "\nthe cluster keeps running (logs in {}); try:\n  keyshard status\n  keyshard key list\n  keyshard sign dev-frost-ed25519 -m hello\nCtrl-C stops it.",
        cluster.dir.display()
    );
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping the cluster ...");
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}

/// Where `keyshard audit verify` finds the log, the key and the checkpoint.
struct AuditSources {
    file: Option<PathBuf>,
    config: Option<PathBuf>,
    sealing_key: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    no_checkpoint: bool,
}

/// What `audit verify` checks: the log, the sealing key file and the checkpoint (if any).
type AuditPaths = (PathBuf, PathBuf, Option<PathBuf>);

/// The paths to check, or a usage error (exit status 2).
fn audit_paths(src: AuditSources) -> Result<Result<AuditPaths, String>, String> {
    if let Some(path) = src.config {
        let config = match config::Config::load(&path) {
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("{}: {e}", path.display()))),
        };
        let checkpoint = match (src.checkpoint, src.no_checkpoint) {
            (_, true) => None,
            (Some(cp), false) => Some(cp),
            (None, false) => Some(config.data_dir.join(audit::CHECKPOINT_FILE)),
        };
        return Ok(Ok((
            src.file.unwrap_or(config.audit_log),
            config.data_dir.join(audit::SEALING_KEY_FILE),
            checkpoint,
        )));
    }
    let Some(key) = src.sealing_key else {
        return Err(
            "the audit log is keyed: give --config NODE.toml, or --sealing-key FILE (the node's \
             <data_dir>/sealing.key)"
                .into(),
        );
    };
    let Some(file) = src.file else {
        return Err("give the audit log FILE (or --config NODE.toml)".into());
    };
    match (src.checkpoint, src.no_checkpoint) {
        (Some(cp), _) => Ok(Ok((file, key, Some(cp)))),
        (None, true) => Ok(Ok((file, key, None))),
        (None, false) => Err(
            "give --checkpoint FILE (the node's <data_dir>/audit.head), or --no-checkpoint to \
             check the chain alone (lines cut off the end then go undetected)"
                .into(),
        ),
    }
}

fn audit_verify(src: AuditSources, json: bool) -> ExitCode {
    let (file, key, checkpoint) = match audit_paths(src) {
        Ok(Ok(paths)) => paths,
        Ok(Err(e)) => {
            eprintln!("keyshard: {e}");
            return ExitCode::FAILURE;
        }
        Err(usage) => {
            eprintln!("keyshard audit verify: {usage}");
            return ExitCode::from(2);
        }
    };
    let result = audit::AuditKey::from_sealing_key_file(&key)
        .and_then(|key| audit::verify(&file, &key, checkpoint.as_deref()));
    if json {
        let value = match &result {
            Ok(r) => serde_json::json!({
                "ok": true,
                "lines": r.lines,
                "node": r.node,
                "last_hash": r.last_hash,
                "checkpoint": r.checkpoint,
            }),
            Err(e) => serde_json::json!({
                "ok": false,
                "line": e.line,
                "error": e.what,
            }),
        };
        println!("{value}");
    } else {
        match &result {
            Ok(r) => {
                let pinned = match &r.checkpoint {
                    Some(c) => format!("; checkpoint at line {}", c.seq),
                    None => "; no checkpoint given: lines cut off the end would go undetected"
                        .to_string(),
                };
                match (&r.last_hash, r.node) {
                    (Some(hash), Some(node)) => println!(
                        "{}: OK, {} lines, node {node}, last hash {hash}{pinned}",
                        file.display(),
                        r.lines
                    ),
                    _ => println!("{}: OK, empty{pinned}", file.display()),
                }
                if let Some(warning) = r.checkpoint.as_ref().and_then(|c| c.warning.as_ref()) {
                    eprintln!(
                        "{}: WARNING: checkpoint {warning}; the older slot was used, so the \
                         last line is not pinned (the node rewrites it at its next start)",
                        file.display()
                    );
                }
            }
            Err(e) => eprintln!("{}: {e}", file.display()),
        }
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
