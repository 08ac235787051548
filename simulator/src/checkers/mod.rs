//! Invariant checkers, run as the world steps. Each failure is a [`Violation`] naming the
//! checker and what it saw; the world stops at the first one and prints the replay command.
//!
//! - one leader per term (every node's view of `(term, leader)` must agree);
//! - committed Raft prefixes agree (every node's durable log up to its durable commit index);
//! - every member of a completed DKG or reshare holds a share of the same group key, the shares
//!   interpolate (any `t` of them) to one secret whose public key is the group key, and a
//!   reshare never changes the group key;
//! - every returned signature verifies with the independent verifier;
//! - no node holds two different shares of one key version;
//! - no message or persisted batch contains a group secret, no Raft entry contains a share;
//! - every request a node accepted is answered exactly once (and, in the liveness phase,
//!   within a bound);
//! - no node erases a key version that its registry still has active.

pub mod crypto;

use std::collections::{BTreeMap, BTreeSet};

use keyshard_core::ids::ParticipantId;
use keyshard_core::node::registry::Registry;
use keyshard_core::node::sessions::group_public_key;
use keyshard_core::node::{Request, RequestError, Response};
use keyshard_core::persist::{KeyId, KeyVersion, PersistBatch, PersistOp, RecordValue};
use keyshard_core::scheme::Scheme;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::disk::DiskState;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Global virtual time (ms).
    pub at: u64,
    /// Which checker.
    pub checker: &'static str,
    /// What it saw.
    pub detail: String,
}

/// A node incarnation: id and how many times it has started.
pub type Incarnation = (ParticipantId, u32);

/// A request waiting at a node.
struct Waiting {
    since: u64,
}

/// What the checker knows of a committed key.
struct KeyFacts {
    scheme: Scheme,
    /// frost encoding of the group key (as in key packages).
    group_key: Vec<u8>,
    /// The standard encoding clients get.
    public_key: Vec<u8>,
    /// Whether its secret was reconstructed.
    secret_known: bool,
}

/// Bytes not yet searched, flushed every `SCAN_CHUNK` bytes and at the end of a run.
const SCAN_CHUNK: usize = 256 * 1024;

/// All checkers' state.
pub struct Checkers {
    violations: Vec<Violation>,
    leaders: BTreeMap<u64, ParticipantId>,
    committed: BTreeMap<u64, (u64, [u8; 32])>,
    checked_commit: BTreeMap<ParticipantId, u64>,
    keys: BTreeMap<KeyId, KeyFacts>,
    versions: BTreeMap<(KeyId, KeyVersion), [u8; 32]>,
    seen_versions: BTreeMap<ParticipantId, BTreeMap<KeyId, KeyVersion>>,
    /// Shares each node holds or is writing (digest), for the two-shares check.
    projected: BTreeMap<ParticipantId, BTreeMap<(KeyId, KeyVersion), [u8; 32]>>,
    waiting: BTreeMap<(Incarnation, String), Waiting>,
    requests: BTreeMap<String, Request>,
    created: BTreeMap<String, Vec<u8>>,
    /// Everything transmitted or persisted, searched for group secrets.
    archive: Vec<u8>,
    archive_scanned: usize,
    secrets: Vec<(KeyId, Zeroizing<Vec<u8>>)>,
    /// Every Raft entry persisted, searched for shares.
    raft_archive: Vec<u8>,
    raft_scanned: usize,
    share_needles: Vec<Zeroizing<Vec<u8>>>,
    share_needle_set: BTreeSet<[u8; 32]>,
    /// In the liveness phase: requests must be answered within `bound` ms.
    pub liveness: Option<(u64, u64)>,
    /// Counters for the report.
    pub stats: CheckStats,
}

/// What the checkers checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Signatures verified.
    pub signatures: u64,
    /// Key versions whose shares were checked and interpolated.
    pub versions: u64,
    /// Committed entries compared.
    pub committed_entries: u64,
    /// Answers checked.
    pub answers: u64,
    /// Bytes searched for secrets.
    pub bytes_searched: u64,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Default for Checkers {
    fn default() -> Self {
        Checkers::new()
    }
}

impl Checkers {
    /// Fresh checkers.
    pub fn new() -> Checkers {
        Checkers {
            violations: Vec::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            checked_commit: BTreeMap::new(),
            keys: BTreeMap::new(),
            versions: BTreeMap::new(),
            seen_versions: BTreeMap::new(),
            projected: BTreeMap::new(),
            waiting: BTreeMap::new(),
            requests: BTreeMap::new(),
            created: BTreeMap::new(),
            archive: Vec::new(),
            archive_scanned: 0,
            secrets: Vec::new(),
            raft_archive: Vec::new(),
            raft_scanned: 0,
            share_needles: Vec::new(),
            share_needle_set: BTreeSet::new(),
            liveness: None,
            stats: CheckStats::default(),
        }
    }

    /// The violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Records a violation found outside the checkers (by the world's driver).
    pub fn report(&mut self, at: u64, checker: &'static str, detail: String) {
        self.fail(at, checker, detail);
    }

    fn fail(&mut self, at: u64, checker: &'static str, detail: String) {
        self.violations.push(Violation {
            at,
            checker,
            detail,
        });
    }

    // ---------------------------------------------------------------------------------------
    // Leaders
    // ---------------------------------------------------------------------------------------

    /// A node's view: in `term`, `leader` leads.
    pub fn leader_view(&mut self, at: u64, node: ParticipantId, term: u64, leader: ParticipantId) {
        match self.leaders.get(&term) {
            Some(l) if *l != leader => {
                let detail = format!(
                    "term {term}: node {node} follows or is leader {leader}, but {l} led that term"
                );
                self.fail(at, "one-leader-per-term", detail);
            }
            Some(_) => {}
            None => {
                self.leaders.insert(term, leader);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // What a node writes and sends
    // ---------------------------------------------------------------------------------------

    /// A message left a node.
    pub fn transmitted(&mut self, bytes: &[u8]) {
        self.archive.extend_from_slice(bytes);
        self.archive.push(0xff);
    }

    /// A node emitted a batch. `registry` is its registry after the input that produced it.
    pub fn batch_emitted(
        &mut self,
        at: u64,
        node: ParticipantId,
        batch: &PersistBatch,
        registry: &Registry,
    ) {
        for op in &batch.ops {
            match op {
                PersistOp::AppendEntries(es) => {
                    for e in es {
                        self.raft_archive.extend_from_slice(&e.bytes);
                        self.raft_archive.push(0xff);
                        self.archive.extend_from_slice(&e.bytes);
                        self.archive.push(0xff);
                    }
                }
                PersistOp::InstallSnapshot(s) => self.archive.extend_from_slice(&s.bytes),
                PersistOp::PutShare {
                    key,
                    version,
                    share,
                } => {
                    self.archive.extend_from_slice(share.expose());
                    self.archive.push(0xff);
                    let d = digest(share.expose());
                    let held = self.projected.entry(node).or_default();
                    if let Some(old) = held.insert((key.clone(), *version), d) {
                        if old != d {
                            let detail = format!(
                                "node {node} wrote a second, different share of {key} {version} \
                                 without erasing the first"
                            );
                            self.fail(at, "one-share-per-version", detail);
                        }
                    }
                    let scheme = registry
                        .keys
                        .get(key)
                        .map(|k| k.scheme)
                        .or_else(|| self.keys.get(key).map(|k| k.scheme))
                        .or_else(|| {
                            registry
                                .tasks
                                .values()
                                .find(|t| t.spec.key == *key)
                                .map(|t| t.spec.scheme)
                        });
                    match scheme.map(|s| crypto::decode_share(s, share.expose())) {
                        Some(Ok(info)) => {
                            let mut needle = [0u8; 32];
                            let n = info.signing_share.len().min(32);
                            needle[..n].copy_from_slice(&info.signing_share[..n]);
                            if self.share_needle_set.insert(needle) {
                                self.share_needles.push(info.signing_share);
                                // A new share: search every Raft entry written so far.
                                self.raft_scanned = 0;
                            }
                        }
                        Some(Err(e)) => {
                            let detail = format!("node {node} stored a share of {key} {version} that does not decode: {e}");
                            self.fail(at, "share-decodes", detail);
                        }
                        None => {
                            let detail = format!(
                                "node {node} stored a share of {key}, which no task or key names"
                            );
                            self.fail(at, "share-decodes", detail);
                        }
                    }
                }
                PersistOp::EraseShare { key, version } => {
                    if let Some(held) = self.projected.get_mut(&node) {
                        held.remove(&(key.clone(), *version));
                    }
                    let member = registry.members.contains_key(&node);
                    if let Some(k) = registry.keys.get(key) {
                        if k.version == *version && member && k.participants.contains(&node) {
                            let detail = format!(
                                "node {node} erased {key} {version} while its registry still has \
                                 {version} active (the next version was not committed)"
                            );
                            self.fail(at, "erase-after-commit", detail);
                        }
                    }
                }
                PersistOp::PutRecord { value, .. } => match value {
                    RecordValue::Public(v) => self.archive.extend_from_slice(v),
                    RecordValue::Secret(v) => self.archive.extend_from_slice(v.expose()),
                },
                PersistOp::SetHardState(_)
                | PersistOp::MarkConsumed { .. }
                | PersistOp::DeleteRecord { .. } => {}
            }
        }
        if self.archive.len() - self.archive_scanned >= SCAN_CHUNK
            || self.raft_archive.len() - self.raft_scanned >= SCAN_CHUNK
        {
            self.scan(at);
        }
    }

    /// Searches the bytes not searched yet for every known secret and share.
    pub fn scan(&mut self, at: u64) {
        let tail = &self.archive[self.archive_scanned..];
        self.stats.bytes_searched += tail.len() as u64;
        let mut found = Vec::new();
        for (key, s) in &self.secrets {
            if memchr::memmem::find(tail, s).is_some() {
                found.push(key.clone());
            }
        }
        self.archive_scanned = self.archive.len();
        for key in found {
            let detail =
                format!("the group secret of {key} appears in a message or a persisted batch");
            self.fail(at, "no-whole-secret", detail);
        }
        let tail = &self.raft_archive[self.raft_scanned..];
        let leaked = self
            .share_needles
            .iter()
            .filter(|s| memchr::memmem::find(tail, s).is_some())
            .count();
        self.raft_scanned = self.raft_archive.len();
        if leaked > 0 {
            self.fail(
                at,
                "no-share-in-raft",
                format!("{leaked} key shares appear in Raft entries"),
            );
        }
    }

    /// A batch of `node` became durable; `disk` is its durable state after it.
    pub fn batch_durable(
        &mut self,
        at: u64,
        node: ParticipantId,
        batch: &PersistBatch,
        disk: &DiskState,
    ) {
        let commit = disk.hard_state.map_or(0, |h| h.commit);
        let checked = self.checked_commit.get(&node).copied().unwrap_or(0);
        let check = |index: u64, term: u64, bytes: &[u8], me: &mut Checkers| {
            let d = digest(bytes);
            me.stats.committed_entries += 1;
            match me.committed.get(&index) {
                Some((t, x)) if (*t, *x) != (term, d) => {
                    let detail = format!(
                        "node {node} has entry {index} (term {term}) committed, but another node \
                         committed a different entry there (term {t})"
                    );
                    me.fail(at, "committed-prefixes-agree", detail);
                }
                Some(_) => {}
                None => {
                    me.committed.insert(index, (term, d));
                }
            }
        };
        for op in &batch.ops {
            if let PersistOp::AppendEntries(es) = op {
                for e in es.iter().filter(|e| e.index <= commit.max(checked)) {
                    check(e.index, e.term, &e.bytes, self);
                }
            }
        }
        if commit > checked {
            for index in checked + 1..=commit {
                match disk.entries.get(&index) {
                    Some(e) => check(index, e.term, &e.bytes, self),
                    None => {
                        let detail = format!(
                            "node {node}'s durable commit index {commit} is beyond its durable log \
                             (no entry {index})"
                        );
                        self.fail(at, "committed-prefixes-agree", detail);
                        break;
                    }
                }
            }
            self.checked_commit.insert(node, commit);
        }
    }

    /// A node crashed: what it holds is what its disk holds.
    pub fn crashed(&mut self, node: ParticipantId, disk: &DiskState) {
        let held = disk
            .shares
            .iter()
            .map(|(k, s)| (k.clone(), digest(s.expose())))
            .collect();
        self.projected.insert(node, held);
        self.waiting.retain(|((n, _), _), _| *n != node);
    }

    // ---------------------------------------------------------------------------------------
    // Registries: completed DKGs and reshares
    // ---------------------------------------------------------------------------------------

    /// After `node` handled an input: looks for key versions its registry newly shows.
    pub fn registry_seen<'d>(
        &mut self,
        at: u64,
        node: ParticipantId,
        registry: &Registry,
        disks: &dyn Fn(ParticipantId) -> Option<&'d DiskState>,
    ) {
        let seen = self.seen_versions.entry(node).or_default();
        let changed: Vec<KeyId> = registry
            .keys
            .iter()
            .filter(|(k, r)| seen.get(*k) != Some(&r.version))
            .map(|(k, _)| k.clone())
            .collect();
        for key in changed {
            let record = &registry.keys[&key];
            self.seen_versions
                .entry(node)
                .or_default()
                .insert(key.clone(), record.version);
            let d = digest(&record.public_key_package);
            let id = (key.clone(), record.version);
            match self.versions.get(&id) {
                Some(x) if *x != d => {
                    let detail = format!(
                        "node {node} has a different public key package for {key} {} than \
                         another node",
                        record.version
                    );
                    self.fail(at, "registries-agree", detail);
                }
                Some(_) => {}
                None => {
                    self.versions.insert(id, d);
                    self.version_committed(at, &key, registry, disks);
                }
            }
        }
    }

    fn version_committed<'d>(
        &mut self,
        at: u64,
        key: &KeyId,
        registry: &Registry,
        disks: &dyn Fn(ParticipantId) -> Option<&'d DiskState>,
    ) {
        self.stats.versions += 1;
        let record = &registry.keys[key];
        let (scheme, version, t) = (record.scheme, record.version, record.threshold);
        let holders: Vec<ParticipantId> = record.participants.iter().copied().collect();
        let pkp = match crypto::decode_package(scheme, &record.public_key_package, &holders) {
            Ok(p) => p,
            Err(e) => {
                return self.fail(at, "same-group-key", format!("{key} {version}: {e}"));
            }
        };
        let public_key = group_public_key(scheme, &record.public_key_package).unwrap_or_default();
        match self.keys.get(key) {
            Some(f) if f.group_key != pkp.group_key || f.scheme != scheme => {
                let detail = format!("{key} {version} changed the group key");
                return self.fail(at, "reshare-keeps-key", detail);
            }
            Some(_) => {}
            None => {
                self.keys.insert(
                    key.clone(),
                    KeyFacts {
                        scheme,
                        group_key: pkp.group_key.clone(),
                        public_key,
                        secret_known: false,
                    },
                );
            }
        }
        if pkp.min_signers != Some(t) {
            let detail = format!(
                "{key} {version}: package threshold {:?}, registry {t}",
                pkp.min_signers
            );
            self.fail(at, "same-group-key", detail);
        }
        // Every member holding the version must hold a share of this group key, matching its
        // verifying share in the package.
        let mut shares: Vec<(ParticipantId, &[u8])> = Vec::new();
        for h in &holders {
            if !registry.members.contains_key(h) {
                continue;
            }
            let Some(share) = disks(*h).and_then(|d| d.shares.get(&(key.clone(), version))) else {
                let detail = format!(
                    "member {h} of {key} {version} holds no durable share of it when it committed"
                );
                self.fail(at, "members-hold-shares", detail);
                continue;
            };
            match crypto::decode_share(scheme, share.expose()) {
                Ok(info) => {
                    let vs = pkp
                        .verifying_shares
                        .iter()
                        .find(|(p, _)| p == h)
                        .map(|(_, v)| v);
                    if info.group_key != pkp.group_key
                        || vs != Some(&info.verifying_share)
                        || info.min_signers != t
                    {
                        let detail = format!(
                            "member {h}'s share of {key} {version} does not match the committed package"
                        );
                        self.fail(at, "same-group-key", detail);
                    }
                    shares.push((*h, share.expose()));
                }
                Err(e) => {
                    self.fail(
                        at,
                        "same-group-key",
                        format!("member {h}'s share of {key} {version}: {e}"),
                    );
                }
            }
        }
        let t = usize::from(t);
        if shares.len() < t {
            return;
        }
        // Any t shares give the same secret, and its public key is the group key.
        let first: Vec<&[u8]> = shares[..t].iter().map(|(_, s)| *s).collect();
        let last: Vec<&[u8]> = shares[shares.len() - t..].iter().map(|(_, s)| *s).collect();
        let (a, b) = (
            crypto::reconstruct(scheme, &first),
            crypto::reconstruct(scheme, &last),
        );
        match (a, b) {
            (Ok((sa, ka)), Ok((sb, _))) => {
                if sa != sb {
                    let detail = format!("two sets of {t} shares of {key} {version} interpolate to different secrets");
                    return self.fail(at, "same-group-key", detail);
                }
                if ka != pkp.group_key {
                    let detail = format!("the shares of {key} {version} interpolate to a secret of another public key");
                    return self.fail(at, "same-group-key", detail);
                }
                let facts = self.keys.get_mut(key).expect("inserted above");
                if !facts.secret_known {
                    facts.secret_known = true;
                    let mut reversed = Zeroizing::new(sa.to_vec());
                    reversed.reverse();
                    self.secrets.push((key.clone(), sa));
                    self.secrets.push((key.clone(), reversed));
                    // A new secret: search everything from the start.
                    self.archive_scanned = 0;
                    self.scan(at);
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                self.fail(at, "same-group-key", format!("{key} {version}: {e}"));
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Requests and answers
    // ---------------------------------------------------------------------------------------

    /// A client gave `request` to a node.
    pub fn submitted(&mut self, at: u64, node: Incarnation, request_id: &str, request: &Request) {
        self.requests
            .entry(request_id.to_string())
            .or_insert_with(|| request.clone());
        // A repeated submission restarts the node's deadline for it: the bound counts from the
        // latest one.
        self.waiting
            .insert((node, request_id.to_string()), Waiting { since: at });
    }

    /// A node answered.
    pub fn answered(
        &mut self,
        at: u64,
        node: Incarnation,
        request_id: &str,
        result: &Result<Response, RequestError>,
    ) {
        self.stats.answers += 1;
        if self
            .waiting
            .remove(&(node, request_id.to_string()))
            .is_none()
        {
            let detail = format!(
                "node {} answered {request_id} ({}) but no request was waiting there (answered twice?)",
                node.0,
                brief(result)
            );
            return self.fail(at, "answered-exactly-once", detail);
        }
        let Some(request) = self.requests.get(request_id).cloned() else {
            return;
        };
        match (result, &request) {
            (
                Ok(Response::Signed {
                    key, signatures, ..
                }),
                Request::Sign { key: k, messages },
            ) => {
                if key != k || signatures.len() != messages.len() {
                    let detail = format!(
                        "{request_id}: signed with {key} / {} signatures for {} messages",
                        signatures.len(),
                        messages.len()
                    );
                    return self.fail(at, "signatures-verify", detail);
                }
                let Some(facts) = self.keys.get(key) else {
                    return self.fail(
                        at,
                        "signatures-verify",
                        format!("{request_id}: signed with {key}, never committed"),
                    );
                };
                let (scheme, pk) = (facts.scheme, facts.public_key.clone());
                for (m, s) in messages.iter().zip(signatures) {
                    self.stats.signatures += 1;
                    if let Err(e) = crypto::verify(scheme, &pk, m, s) {
                        let detail = format!(
                            "{request_id}: a {scheme} signature by {key} does not verify: {e}"
                        );
                        self.fail(at, "signatures-verify", detail);
                    }
                }
            }
            (
                Ok(Response::KeyCreated {
                    key, public_key, ..
                }),
                Request::CreateKey { key: k, .. },
            ) => {
                if key != k || self.keys.get(key).map(|f| &f.public_key) != Some(public_key) {
                    let detail = format!(
                        "{request_id}: the created public key is not the committed one of {k}"
                    );
                    self.fail(at, "answers-match-registry", detail);
                }
                let first = self
                    .created
                    .entry(request_id.to_string())
                    .or_insert_with(|| public_key.clone());
                if first != public_key {
                    let detail =
                        format!("{request_id}: two different public keys for one request id");
                    self.fail(at, "answers-match-registry", detail);
                }
            }
            (
                Ok(Response::Reshared {
                    key, public_key, ..
                }),
                Request::Reshare { key: k, .. },
            ) => {
                if key != k || self.keys.get(key).map(|f| &f.public_key) != Some(public_key) {
                    let detail =
                        format!("{request_id}: the reshare answer's public key is not {k}'s");
                    self.fail(at, "reshare-keeps-key", detail);
                }
            }
            (
                Ok(Response::MembershipChanged { .. }),
                Request::AddMember { .. } | Request::RemoveMember { .. },
            ) => {}
            (Err(_), _) => {}
            (Ok(r), q) => {
                let detail = format!("{request_id}: answer {r:?} does not fit request {q:?}");
                self.fail(at, "answers-match-registry", detail);
            }
        }
    }

    /// Liveness phase: every waiting request must be answered within the bound.
    pub fn check_deadlines(&mut self, now: u64) {
        let Some((from, bound)) = self.liveness else {
            return;
        };
        let late: Vec<((Incarnation, String), u64)> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.since.max(from) + bound < now)
            .map(|(k, w)| (k.clone(), w.since))
            .collect();
        for ((node, rid), since) in late {
            self.waiting.remove(&(node, rid.clone()));
            let detail = format!(
                "{rid} (given to node {} at {since} ms) unanswered after {bound} ms of the liveness phase",
                node.0
            );
            self.fail(now, "liveness-answers", detail);
        }
    }

    /// A liveness failure found by the world (the final key creation or signature).
    pub fn liveness_failed(&mut self, at: u64, detail: String) {
        self.fail(at, "liveness-progress", detail);
    }

    /// The standard public key of a committed key.
    pub fn public_key(&self, key: &KeyId) -> Option<(Scheme, Vec<u8>)> {
        self.keys.get(key).map(|f| (f.scheme, f.public_key.clone()))
    }
}

/// A short description of an answer for messages.
pub fn brief(result: &Result<Response, RequestError>) -> String {
    match result {
        Ok(Response::KeyCreated { key, version, .. }) => format!("created {key} {version}"),
        Ok(Response::Signed {
            key, signatures, ..
        }) => format!("{} signatures by {key}", signatures.len()),
        Ok(Response::Reshared { key, version, .. }) => format!("reshared {key} to {version}"),
        Ok(Response::MembershipChanged { members }) => format!(
            "members {:?}",
            members.keys().map(|p| p.get()).collect::<Vec<_>>()
        ),
        Err(e) => format!("error {e:?}"),
    }
}
