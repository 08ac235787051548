//! The appending side: open (resuming the chain and checking it against its checkpoint),
//! append with `sync_data` then update the checkpoint, torn-tail handling, and moving an old
//! unkeyed (v1) log aside.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::checkpoint::{self, CheckpointFile, Head};
use super::event::AuditEvent;
use super::key::AuditKey;
use super::record::{self, MAX_LINE};
use super::AuditError;

/// What `open_repairing` cut off the end of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The line number the incomplete line had.
    pub line: u64,
    /// Its length in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of those bytes.
    pub sha256: String,
}

/// Where the chain stands after an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The line's sequence number (= line number).
    pub seq: u64,
    /// The line's hash (the next line's `prev`).
    pub hash: String,
}

/// An open audit log. Appends are durable (`sync_data`) and checkpointed before they return.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
    path: PathBuf,
    node: u16,
    key: AuditKey,
    checkpoint: CheckpointFile,
    seq: u64,
    last_hash: String,
    /// Set when a write or sync failed: the file's end is unknown, so no more appends.
    failed: bool,
}

/// The end of an existing file, as found by [`scan_tail`].
struct Tail {
    /// Complete lines' byte length (everything up to and including the last newline).
    complete_len: u64,
    /// The last complete line, if any, and its line number (`None` when the file is larger
    /// than the window read, so lines were not counted).
    /// Its bytes are parsed (and MAC-checked) only after the first line's anchor, so a log
    /// rewritten whole is reported at line 1.
    last: Option<(Option<u64>, Vec<u8>)>,
    /// Bytes after the last newline (a torn line), if any.
    torn: Option<Vec<u8>>,
}

/// A log file opened and resumed, before its checkpoint is looked at.
struct Resumed {
    file: File,
    seq: u64,
    last_hash: String,
    /// The last complete line's `prev` (line `seq - 1`'s hash), when there is a line.
    prev_of_last: Option<String>,
    /// Length of the complete lines, and the torn bytes after them, if any.
    torn: Option<(u64, Vec<u8>)>,
}

/// What the checkpoint said when the log was opened.
struct Settled {
    checkpoint: CheckpointFile,
    /// Why a slot was unusable (already rewritten), when one was.
    damaged: Option<String>,
}

/// The old unkeyed log a start moved aside.
struct Archived {
    file: PathBuf,
    bytes: u64,
    lines: u64,
    sha256: String,
}

impl AuditLog {
    /// Opens (creating if needed) node `node`'s log at `path`, with its checkpoint at
    /// `checkpoint` and lines MACed under `key`, and resumes its chain. Refused, with an error
    /// that says why: a log ending in an incomplete line (a crash during an append), a log that
    /// is shorter than its checkpoint records or does not end in the hash it records (cut off or
    /// replaced), a non-empty log without its checkpoint, a checkpoint with an unusable slot, a
    /// log not written under `key`, an unkeyed (v1) log. [`AuditLog::open_repairing`] is the
    /// explicit way past a torn line, an unusable slot and a v1 log.
    pub fn open(
        path: &Path,
        checkpoint: &Path,
        node: u16,
        key: AuditKey,
    ) -> Result<AuditLog, AuditError> {
        let resumed = Self::resume(path, node, &key)?;
        if let Some((_, torn)) = &resumed.torn {
            return Err(AuditError::at(
                resumed.seq + 1,
                format!(
                    "{}: the last line is incomplete ({} bytes without a newline): the node \
                     probably crashed during an append (that event was never acknowledged); \
                     `keyshard audit verify` shows the rest is intact, and opening with repair \
                     cuts the partial line off and records that in the chain",
                    path.display(),
                    torn.len()
                ),
            ));
        }
        let settled = settle_checkpoint(path, checkpoint, node, &key, &resumed, false)?;
        Ok(Self::from_parts(
            path,
            node,
            key,
            resumed,
            settled.checkpoint,
        ))
    }

    /// Like [`AuditLog::open`], but repairs what a crash (or an upgrade) leaves, each repair
    /// recorded as an event stamped `at` in the chain itself so it cannot pass for a silent
    /// change:
    /// - a log in the unkeyed v1 format (written before the chain was keyed), when no
    ///   checkpoint exists, is renamed to `<file>.v1-<unix seconds>` and a new keyed chain
    ///   starts with [`AuditEvent::LegacyLogArchived`] (the old file's length, lines and
    ///   SHA-256, which pins its content from now on);
    /// - a checkpoint slot a crash tore is rewritten from the log
    ///   ([`AuditEvent::CheckpointRepaired`]);
    /// - an incomplete last line is cut off (the file truncated to its last complete line and
    ///   synced), then [`AuditEvent::TornTailDropped`] is appended. Returns what was cut.
    ///
    /// Everything that points at tampering rather than a crash (a log shorter than its
    /// checkpoint, a missing checkpoint, another key) is refused exactly as by `open`.
    pub fn open_repairing(
        path: &Path,
        checkpoint: &Path,
        node: u16,
        key: AuditKey,
        at: SystemTime,
    ) -> Result<(AuditLog, Option<TornTail>), AuditError> {
        let archived = archive_v1(path, checkpoint)?;
        let resumed = Self::resume(path, node, &key)?;
        let settled = settle_checkpoint(path, checkpoint, node, &key, &resumed, true)?;
        let torn = resumed.torn.clone();
        let mut log = Self::from_parts(path, node, key, resumed, settled.checkpoint);
        if let Some(old) = archived {
            log.append(
                at,
                &AuditEvent::LegacyLogArchived {
                    file: old.file.display().to_string(),
                    bytes: old.bytes,
                    lines: old.lines,
                    sha256: old.sha256,
                },
            )?;
        }
        // The torn bytes go first: every append after this lands after the file's end.
        let mut cut = None;
        if let Some((keep, torn)) = torn {
            let tail = TornTail {
                line: log.seq + 1,
                bytes: torn.len() as u64,
                sha256: hex::encode(Sha256::digest(&torn)),
            };
            log.file
                .set_len(keep)
                .map_err(|e| log.io("cannot cut off the torn line", e))?;
            log.file
                .sync_all()
                .map_err(|e| log.io("cannot sync after cutting off the torn line", e))?;
            log.append(
                at,
                &AuditEvent::TornTailDropped {
                    line: tail.line,
                    bytes: tail.bytes,
                    sha256: tail.sha256.clone(),
                },
            )?;
            cut = Some(tail);
        }
        if let Some(reason) = settled.damaged {
            log.append(at, &AuditEvent::CheckpointRepaired { reason })?;
        }
        Ok((log, cut))
    }

    fn from_parts(
        path: &Path,
        node: u16,
        key: AuditKey,
        resumed: Resumed,
        checkpoint: CheckpointFile,
    ) -> AuditLog {
        AuditLog {
            file: resumed.file,
            path: path.to_path_buf(),
            node,
            key,
            checkpoint,
            seq: resumed.seq,
            last_hash: resumed.last_hash,
            failed: false,
        }
    }

    /// Opens the file, checks its first line's anchor and resumes from its last complete line.
    fn resume(path: &Path, node: u16, key: &AuditKey) -> Result<Resumed, AuditError> {
        if node == 0 {
            return Err(AuditError::general("node id 0 is not a valid node id"));
        }
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| AuditError::io(path, "cannot open", e))?;
        if !existed {
            sync_parent_dir(path)?;
        }
        let tail = scan_tail(&mut file, path)?;
        if tail.complete_len > 0 {
            check_anchor(&mut file, path, node, key)?;
        }
        let mut resumed = Resumed {
            file,
            seq: 0,
            last_hash: record::genesis(node),
            prev_of_last: None,
            torn: tail.torn.map(|t| (tail.complete_len, t)),
        };
        if let Some((number, last)) = tail.last {
            let last = record::parse(key, &last).map_err(|what| AuditError {
                line: number,
                what: format!("{}: last line: {what}", path.display()),
            })?;
            if let Some(n) = number.filter(|&n| n != last.seq) {
                return Err(AuditError::at(
                    n,
                    format!(
                        "{}: the last line says seq {} (expected {n}); run `keyshard audit verify`",
                        path.display(),
                        last.seq
                    ),
                ));
            }
            resumed.seq = last.seq;
            resumed.last_hash = last.hash;
            resumed.prev_of_last = Some(last.prev);
        }
        Ok(resumed)
    }

    /// Appends `event` stamped `at` and syncs it to disk before returning.
    pub fn append(&mut self, at: SystemTime, event: &AuditEvent) -> Result<Appended, AuditError> {
        if self.failed {
            return Err(AuditError::general(format!(
                "{}: an earlier append failed, so the file's end is unknown; reopen the log",
                self.path.display()
            )));
        }
        let seq = self.seq + 1;
        let time = record::format_time(at).map_err(|what| AuditError::at(seq, what))?;
        let (mut line, hash) = record::encode(&self.key, seq, &time, event, &self.last_hash)
            .map_err(|what| AuditError::at(seq, what))?;
        line.push('\n');
        // One write of the whole line: a crash leaves a prefix without its newline, which the
        // next open detects as a torn tail.
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            self.failed = true;
            return Err(self.io("cannot write", e));
        }
        if let Err(e) = self.file.sync_data() {
            // After a failed fsync the page cache may be dropped silently; never retry.
            self.failed = true;
            return Err(self.io("cannot sync", e));
        }
        // The line is durable; now move the checkpoint to it. A crash between the two leaves
        // the checkpoint one line behind, which open and verify accept (never ahead).
        let head = Head {
            node: self.node,
            seq,
            hash: hash.clone(),
        };
        if let Err(e) = self.checkpoint.write(&self.key, &head) {
            // The slot's content is unknown; stop, as after a failed log write.
            self.failed = true;
            return Err(e);
        }
        self.seq = seq;
        self.last_hash = hash.clone();
        Ok(Appended { seq, hash })
    }

    /// The last line's sequence number (0 for an empty log).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The last line's hash (the genesis value for an empty log).
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, doing: &str, e: std::io::Error) -> AuditError {
        AuditError::io(&self.path, doing, e)
    }
}

/// The first line must be seq 1, MACed under `key`, and chain from `node`'s genesis value.
fn check_anchor(file: &mut File, path: &Path, node: u16, key: &AuditKey) -> Result<(), AuditError> {
    let io = |e| AuditError::io(path, "cannot read", e);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut buf = Vec::new();
    file.take(MAX_LINE as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return Err(AuditError::at(1, "line is over the length limit"));
    };
    let first = record::parse(key, &buf[..end]).map_err(|what| {
        let hint = if record::is_v1(&buf[..end]) {
            " (a node moves a v1 log aside when it starts)"
        } else {
            " (if this node's sealing key was replaced, the log was written under the old key: \
             move it aside to start a new chain)"
        };
        AuditError::at(1, format!("{}: {what}{hint}", path.display()))
    })?;
    if first.seq != 1 {
        return Err(AuditError::at(
            1,
            format!(
                "seq is {}, expected 1 (lines removed from the start?)",
                first.seq
            ),
        ));
    }
    if first.prev != record::genesis(node) {
        let whose = match record::genesis_node(&first.prev) {
            Some(other) => format!("it is node {other}'s log"),
            None => "prev is no node's genesis value".into(),
        };
        return Err(AuditError::at(
            1,
            format!("{}: not node {node}'s audit log: {whose}", path.display()),
        ));
    }
    Ok(())
}

/// Checks the resumed log against its checkpoint and brings the checkpoint to the log's head.
///
/// What a crash can leave is accepted: the checkpoint one line behind the log (the line was
/// synced, the checkpoint not yet), or one slot torn. Anything else means the log or the
/// checkpoint was changed by someone other than this code, and is refused: a log shorter than
/// the checkpoint records (its end was cut off), a head hash that differs (replaced), a
/// checkpoint more than one line behind (an old copy put back), or none at all for a non-empty
/// log. `repair` says whether an unusable slot may be rewritten (the caller then records that
/// in the chain).
fn settle_checkpoint(
    path: &Path,
    cp_path: &Path,
    node: u16,
    key: &AuditKey,
    log: &Resumed,
    repair: bool,
) -> Result<Settled, AuditError> {
    let genesis = Head {
        node,
        seq: 0,
        hash: record::genesis(node),
    };
    let Some(found) = checkpoint::read(cp_path, key)? else {
        if log.seq == 0 {
            let checkpoint = CheckpointFile::create(cp_path, key, &genesis)?;
            return Ok(Settled {
                checkpoint,
                damaged: None,
            });
        }
        return Err(AuditError::general(format!(
            "{}: its checkpoint {} is missing but the log has {} lines, so lines cut off its \
             end could not be detected. If the checkpoint was lost rather than deleted by an \
             intruder, check the log with `keyshard audit verify --no-checkpoint`, then move \
             the log aside so the node starts a new chain",
            path.display(),
            cp_path.display(),
            log.seq
        )));
    };
    let cp = &found.head;
    let refuse = |line: u64, what: String| {
        AuditError::at(
            line,
            format!(
                "{} against its checkpoint {}: {what}",
                path.display(),
                cp_path.display()
            ),
        )
    };
    if cp.node != node {
        return Err(AuditError::general(format!(
            "{}: the checkpoint is node {}'s, not node {node}'s",
            cp_path.display(),
            cp.node
        )));
    }
    if cp.seq > log.seq {
        return Err(refuse(
            log.seq + 1,
            format!(
                "missing: the log ends at line {} but the checkpoint records line {} \
                 (lines were cut off the end, or the log was replaced)",
                log.seq, cp.seq
            ),
        ));
    }
    let behind = log.seq - cp.seq;
    let expected = match behind {
        0 => Some(log.last_hash.as_str()),
        1 => log.prev_of_last.as_deref(),
        _ => None,
    };
    match expected {
        Some(h) if h == cp.hash => {}
        Some(_) => {
            return Err(refuse(
                cp.seq.max(1),
                format!(
                    "line {}'s hash is not the one the checkpoint records: the log was replaced \
                     or rewritten",
                    cp.seq
                ),
            ))
        }
        None => {
            return Err(refuse(
                cp.seq + 1,
                format!(
                    "the checkpoint is {behind} lines behind the log (a crash leaves it at most \
                     one behind): an older copy of the checkpoint was put back"
                ),
            ))
        }
    }
    if let Some(why) = &found.damaged {
        if !repair {
            return Err(AuditError::general(format!(
                "{}: {why}: a crash during a checkpoint write, or tampering; opening with repair \
                 (what the node does at start) rewrites it from the log and records that",
                cp_path.display()
            )));
        }
    }
    let checkpoint = if log.seq == 0 {
        // Only slot 0 is ever written for an empty log: start it over.
        CheckpointFile::create(cp_path, key, &genesis)?
    } else {
        let checkpoint = CheckpointFile::open(cp_path)?;
        let newest = Head {
            node,
            seq: log.seq,
            hash: log.last_hash.clone(),
        };
        let previous = log.prev_of_last.as_ref().map(|hash| Head {
            node,
            seq: log.seq - 1,
            hash: hash.clone(),
        });
        checkpoint.settle(key, &found, &newest, previous.as_ref())?;
        checkpoint
    };
    Ok(Settled {
        checkpoint,
        damaged: found.damaged,
    })
}

/// If `path` holds an unkeyed v1 log and there is no checkpoint (v1 never had one), renames it
/// to `<file>.v1-<unix seconds>` and describes it. With a checkpoint present a v1-format file
/// is not an old log but a keyed log replaced by an unkeyed one: refused.
fn archive_v1(path: &Path, cp_path: &Path) -> Result<Option<Archived>, AuditError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuditError::io(path, "cannot open", e)),
    };
    let mut start = [0u8; 8];
    let n = file
        .read(&mut start)
        .map_err(|e| AuditError::io(path, "cannot read", e))?;
    if !record::is_v1(&start[..n]) {
        return Ok(None);
    }
    if cp_path.exists() {
        return Err(AuditError::at(
            1,
            format!(
                "{}: an unkeyed (v1) log, but the keyed chain's checkpoint {} exists: the keyed \
                 log was replaced by an unkeyed one",
                path.display(),
                cp_path.display()
            ),
        ));
    }
    // Pin the old content: length, line count and SHA-256 of the whole file go into the first
    // line of the new chain.
    file.seek(SeekFrom::Start(0))
        .map_err(|e| AuditError::io(path, "cannot read", e))?;
    let (mut hasher, mut bytes, mut lines) = (Sha256::new(), 0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| AuditError::io(path, "cannot read", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "audit.log".into());
    name.push(format!(".v1-{secs}"));
    let target = path.with_file_name(name);
    if target.exists() {
        return Err(AuditError::general(format!(
            "{}: cannot move the v1 log aside: {} exists",
            path.display(),
            target.display()
        )));
    }
    std::fs::rename(path, &target)
        .map_err(|e| AuditError::io(path, "cannot move the v1 log aside from", e))?;
    sync_parent_dir(path)?;
    Ok(Some(Archived {
        file: target,
        bytes,
        lines,
        sha256: hex::encode(hasher.finalize()),
    }))
}

/// Reads the end of the file: the last complete line (parsed) and any bytes after it.
fn scan_tail(file: &mut File, path: &Path) -> Result<Tail, AuditError> {
    let len = file
        .metadata()
        .map_err(|e| AuditError::io(path, "cannot stat", e))?
        .len();
    // Enough for a torn line plus the complete line before it.
    let window = (2 * (MAX_LINE as u64 + 1)).min(len);
    let start = len - window;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| AuditError::io(path, "cannot read", e))?;
    let mut buf = Vec::with_capacity(window as usize);
    file.take(window)
        .read_to_end(&mut buf)
        .map_err(|e| AuditError::io(path, "cannot read", e))?;
    let (complete, torn) = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => (&buf[..=i], &buf[i + 1..]),
        None => (&buf[..0], &buf[..]),
    };
    if start > 0 && (complete.is_empty() || torn.len() > MAX_LINE) {
        return Err(AuditError::general(format!(
            "{}: no line end in the last {window} bytes: not an audit log",
            path.display()
        )));
    }
    let torn = (!torn.is_empty()).then(|| torn.to_vec());
    let complete_len = start + complete.len() as u64;
    if complete.is_empty() {
        return Ok(Tail {
            complete_len,
            last: None,
            torn,
        });
    }
    let body = &complete[..complete.len() - 1];
    let line_start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if line_start == 0 && start > 0 {
        return Err(AuditError::general(format!(
            "{}: the last line is over the length limit",
            path.display()
        )));
    }
    // The last line's number is only known by counting when the whole file is in the window;
    // otherwise its own seq is trusted (verify checks the whole chain).
    let number = (start == 0).then(|| body.iter().filter(|&&b| b == b'\n').count() as u64 + 1);
    let last = body[line_start..].to_vec();
    Ok(Tail {
        complete_len,
        last: Some((number, last)),
        torn,
    })
}

/// Makes a new (or renamed) file's directory entry durable.
pub(crate) fn sync_parent_dir(path: &Path) -> Result<(), AuditError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AuditError::io(dir, "cannot sync the directory of", e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
