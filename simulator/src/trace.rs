//! The run's trace: every step is hashed (for `--check-determinism`) and, with `--trace`,
//! printed as a readable line. Only public data goes in (message bytes are hashed, never shown;
//! shares never enter it).

use keyshard_core::transcript::Transcript;

/// The trace of one run.
pub struct Trace {
    hash: Transcript,
    /// Lines kept when tracing (`--trace`).
    lines: Option<Vec<String>>,
    /// Lines to keep at most (the rest are counted, not kept).
    cap: usize,
    dropped: u64,
}

impl Trace {
    /// A trace; `keep` keeps readable lines.
    pub fn new(keep: bool) -> Trace {
        Trace {
            hash: Transcript::new(),
            lines: keep.then(Vec::new),
            cap: 2_000_000,
            dropped: 0,
        }
    }

    /// Whether readable lines are kept.
    pub fn verbose(&self) -> bool {
        self.lines.is_some()
    }

    /// Records one step: `label` and `bytes` go into the hash; `line` is built only if lines
    /// are kept.
    pub fn record(&mut self, now: u64, label: &str, bytes: &[u8], line: impl FnOnce() -> String) {
        self.hash.record(label, &now.to_be_bytes());
        self.hash.record(label, bytes);
        if let Some(lines) = &mut self.lines {
            if lines.len() < self.cap {
                lines.push(format!("{:>9}.{:03}s {}", now / 1000, now % 1000, line()));
            } else {
                self.dropped += 1;
            }
        }
    }

    /// The hash of everything recorded.
    pub fn digest(&self) -> [u8; 32] {
        self.hash.digest()
    }

    /// How many steps were recorded.
    pub fn steps(&self) -> u64 {
        self.hash.len() / 2
    }

    /// The kept lines (empty unless tracing), and how many were dropped over the cap.
    pub fn take_lines(&mut self) -> (Vec<String>, u64) {
        (self.lines.take().unwrap_or_default(), self.dropped)
    }
}

/// A short hex prefix of a SHA-256 digest of `bytes` (for trace lines).
pub fn short_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(bytes);
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}
