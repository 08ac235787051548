//! The appending side: open (resuming the chain), append with `sync_data`, torn-tail handling.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::event::AuditEvent;
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

/// An open audit log. Appends are durable (`sync_data`) before they return.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
    path: PathBuf,
    node: u16,
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
    last: Option<(Option<u64>, record::Record)>,
    /// Bytes after the last newline (a torn line), if any.
    torn: Option<Vec<u8>>,
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path` for node `node` and resumes its chain. A
    /// log that ends in an incomplete line (a crash during an append) is refused with an error
    /// saying so; [`AuditLog::open_repairing`] is the explicit way past it.
    pub fn open(path: &Path, node: u16) -> Result<AuditLog, AuditError> {
        let (log, tail) = Self::open_inner(path, node)?;
        if let Some((_, torn)) = tail {
            return Err(AuditError::at(
                log.seq + 1,
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
        Ok(log)
    }

    /// Like [`AuditLog::open`], but an incomplete last line is cut off (the file truncated to
    /// its last complete line and synced), then a [`AuditEvent::TornTailDropped`] event stamped
    /// `at` is appended, so the repair is itself part of the chain. Returns what was cut.
    pub fn open_repairing(
        path: &Path,
        node: u16,
        at: SystemTime,
    ) -> Result<(AuditLog, Option<TornTail>), AuditError> {
        let (mut log, tail) = Self::open_inner(path, node)?;
        let Some((keep, torn)) = tail else {
            return Ok((log, None));
        };
        let cut = TornTail {
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
                line: cut.line,
                bytes: cut.bytes,
                sha256: cut.sha256.clone(),
            },
        )?;
        Ok((log, Some(cut)))
    }

    /// Opens the file, checks its first line's anchor and resumes from its last complete line;
    /// returns the length of the complete lines and the torn bytes after them, if any.
    #[allow(clippy::type_complexity)]
    fn open_inner(
        path: &Path,
        node: u16,
    ) -> Result<(AuditLog, Option<(u64, Vec<u8>)>), AuditError> {
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
        let mut log = AuditLog {
            file,
            path: path.to_path_buf(),
            node,
            seq: 0,
            last_hash: record::genesis(node),
            failed: false,
        };
        if tail.complete_len > 0 {
            log.check_anchor()?;
        }
        if let Some((number, last)) = tail.last {
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
            log.seq = last.seq;
            log.last_hash = last.hash;
        }
        Ok((log, tail.torn.map(|t| (tail.complete_len, t))))
    }

    /// The first line must be seq 1 and chain from this node's genesis value.
    fn check_anchor(&mut self) -> Result<(), AuditError> {
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| self.io("cannot read", e))?;
        let mut buf = Vec::new();
        (&mut self.file)
            .take(MAX_LINE as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| self.io("cannot read", e))?;
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            return Err(AuditError::at(1, "line is over the length limit"));
        };
        let first = record::parse(&buf[..end]).map_err(|what| AuditError::at(1, what))?;
        if first.seq != 1 {
            return Err(AuditError::at(
                1,
                format!(
                    "seq is {}, expected 1 (lines removed from the start?)",
                    first.seq
                ),
            ));
        }
        if first.prev != record::genesis(self.node) {
            let whose = match record::genesis_node(&first.prev) {
                Some(other) => format!("it is node {other}'s log"),
                None => "prev is no node's genesis value".into(),
            };
            return Err(AuditError::at(
                1,
                format!(
                    "{}: not node {}'s audit log: {whose}",
                    self.path.display(),
                    self.node
                ),
            ));
        }
        Ok(())
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
        let (mut line, hash) = record::encode(seq, &time, event, &self.last_hash)
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
    let last = record::parse(&body[line_start..]).map_err(|what| AuditError {
        line: number,
        what: format!("{}: last line: {what}", path.display()),
    })?;
    Ok(Tail {
        complete_len,
        last: Some((number, last)),
        torn,
    })
}

/// Makes a new file's directory entry durable.
fn sync_parent_dir(path: &Path) -> Result<(), AuditError> {
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
