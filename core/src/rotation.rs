//! Automatic key rotation: when a key's refresh is due, in virtual time.
//!
//! Each key has a rotation interval (default [`DEFAULT_ROTATION_INTERVAL`], 24 h; configurable
//! per key; zero turns rotation off). A key is due when `now ≥ last_rotated + interval`, it has
//! no refresh in flight, and a failed attempt is not more recent than `retry_after`. When due,
//! the core emits [`RotationCommand::StartRefresh`]; the task manager runs a refresh
//! ([`crate::reshare::ReshareConfig::refresh`]) and reports back with
//! [`RotationSchedule::on_refreshed`] or [`RotationSchedule::on_refresh_failed`].
//!
//! Why "due" is a comparison with the *last* rotation and not a count of elapsed intervals:
//! after an outage of any length a key is due exactly once, and its next rotation is one
//! interval after that refresh completes. Rotations missed while the cluster was down are not
//! replayed (a burst of refreshes would only churn shares and buy no security: one fresh
//! sharing erases all the old ones' value to an attacker).
//!
//! Everything is a pure function of the schedule and `now`: no clock, no randomness, keys in
//! `BTreeMap` order, so the same inputs give the same commands in the same order.

use std::collections::BTreeMap;

use crate::persist::{KeyId, KeyVersion};
use crate::time::{Duration, Instant};

/// The rotation interval of a key that does not set its own.
pub const DEFAULT_ROTATION_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long after a failed refresh the key is tried again (unless its interval is shorter).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10 * 60);

/// One key's rotation state, as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRotation {
    /// Time between refreshes; `Duration::ZERO` means never.
    pub interval: Duration,
    /// When the key was created or last refreshed successfully.
    pub last_rotated: Instant,
    /// The active version.
    pub version: KeyVersion,
    /// Whether a refresh is running (started and not yet reported back).
    pub in_flight: bool,
    /// When the last refresh attempt failed, if it did after the last success.
    pub last_failure: Option<Instant>,
}

impl KeyRotation {
    /// A key created (or imported) at `at` with `version`; `interval` `None` takes the default.
    pub fn new(version: KeyVersion, at: Instant, interval: Option<Duration>) -> Self {
        KeyRotation {
            interval: interval.unwrap_or(DEFAULT_ROTATION_INTERVAL),
            last_rotated: at,
            version,
            in_flight: false,
            last_failure: None,
        }
    }

    /// When this key is next due, `None` if rotation is off or a refresh is running.
    pub fn next_due(&self, retry_after: Duration) -> Option<Instant> {
        if self.interval.is_zero() || self.in_flight {
            return None;
        }
        let scheduled = self.last_rotated.saturating_add(self.interval);
        Some(match self.last_failure {
            Some(failed) => scheduled.max(failed.saturating_add(retry_after.min(self.interval))),
            None => scheduled,
        })
    }

    /// Whether a refresh should start at `now`.
    pub fn is_due(&self, now: Instant, retry_after: Duration) -> bool {
        self.next_due(retry_after).is_some_and(|at| now >= at)
    }
}

/// What the rotation policy asks the task manager to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RotationCommand {
    /// Refresh `key` (same members, same threshold): version `from_version` becomes the next.
    StartRefresh {
        /// The key.
        key: KeyId,
        /// Its active version.
        from_version: KeyVersion,
    },
}

/// The keys due at `now`, in key order. A pure function: it does not mark anything in flight.
pub fn due_rotations(
    registry: &BTreeMap<KeyId, KeyRotation>,
    now: Instant,
    retry_after: Duration,
) -> Vec<RotationCommand> {
    registry
        .iter()
        .filter(|(_, r)| r.is_due(now, retry_after))
        .map(|(key, r)| RotationCommand::StartRefresh {
            key: key.clone(),
            from_version: r.version,
        })
        .collect()
}

/// Why a schedule update was refused (caller misuse).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationError {
    /// The key is not in the schedule.
    UnknownKey(KeyId),
    /// The report is about a refresh that is not running, or from another version.
    NotInFlight(KeyId),
}

impl std::fmt::Display for RotationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RotationError::UnknownKey(k) => write!(f, "key {k} is not scheduled for rotation"),
            RotationError::NotInFlight(k) => write!(f, "key {k} has no refresh in flight"),
        }
    }
}

impl std::error::Error for RotationError {}

/// The rotation schedule of every key: the state machine around [`due_rotations`] that marks
/// refreshes in flight so each due key yields one command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationSchedule {
    keys: BTreeMap<KeyId, KeyRotation>,
    retry_after: Duration,
}

impl RotationSchedule {
    /// An empty schedule retrying failed refreshes after `retry_after`.
    pub fn new(retry_after: Duration) -> Self {
        RotationSchedule {
            keys: BTreeMap::new(),
            retry_after,
        }
    }

    /// Adds or replaces a key's state (from the registry at start, or after a DKG).
    pub fn insert(&mut self, key: KeyId, rotation: KeyRotation) {
        self.keys.insert(key, rotation);
    }

    /// Removes a key (deleted keys stop rotating).
    pub fn remove(&mut self, key: &KeyId) -> Option<KeyRotation> {
        self.keys.remove(key)
    }

    /// Changes a key's interval (`Duration::ZERO` turns rotation off).
    pub fn set_interval(&mut self, key: &KeyId, interval: Duration) -> Result<(), RotationError> {
        let r = self
            .keys
            .get_mut(key)
            .ok_or_else(|| RotationError::UnknownKey(key.clone()))?;
        r.interval = interval;
        Ok(())
    }

    /// A key's state.
    pub fn get(&self, key: &KeyId) -> Option<&KeyRotation> {
        self.keys.get(key)
    }

    /// The commands due at `now`; each returned key is marked in flight, so it is not returned
    /// again until its refresh is reported back.
    pub fn poll(&mut self, now: Instant) -> Vec<RotationCommand> {
        let commands = due_rotations(&self.keys, now, self.retry_after);
        for RotationCommand::StartRefresh { key, .. } in &commands {
            if let Some(r) = self.keys.get_mut(key) {
                r.in_flight = true;
            }
        }
        commands
    }

    /// The earliest time any key is due (for the node's timer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.keys
            .values()
            .filter_map(|r| r.next_due(self.retry_after))
            .min()
    }

    /// The refresh of `key` from `from_version` completed at `at`: `from_version + 1` is active.
    pub fn on_refreshed(
        &mut self,
        key: &KeyId,
        from_version: KeyVersion,
        at: Instant,
    ) -> Result<(), RotationError> {
        let r = self
            .keys
            .get_mut(key)
            .ok_or_else(|| RotationError::UnknownKey(key.clone()))?;
        if !r.in_flight || r.version != from_version {
            return Err(RotationError::NotInFlight(key.clone()));
        }
        r.in_flight = false;
        r.last_failure = None;
        r.last_rotated = at;
        r.version = KeyVersion(from_version.0.saturating_add(1));
        Ok(())
    }

    /// The refresh of `key` failed or was abandoned at `at`; the active version is unchanged
    /// and the key is tried again after the retry delay.
    pub fn on_refresh_failed(&mut self, key: &KeyId, at: Instant) -> Result<(), RotationError> {
        let r = self
            .keys
            .get_mut(key)
            .ok_or_else(|| RotationError::UnknownKey(key.clone()))?;
        if !r.in_flight {
            return Err(RotationError::NotInFlight(key.clone()));
        }
        r.in_flight = false;
        r.last_failure = Some(at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 60 * 60 * 1000;

    fn key(s: &str) -> KeyId {
        KeyId::new(s).unwrap()
    }

    fn at_hours(h: u64) -> Instant {
        Instant::from_millis(h * HOUR)
    }

    #[test]
    fn default_interval_is_a_day_and_zero_is_off() {
        let r = KeyRotation::new(KeyVersion(1), Instant::ZERO, None);
        assert_eq!(r.interval, DEFAULT_ROTATION_INTERVAL);
        assert!(!r.is_due(at_hours(23), DEFAULT_RETRY_AFTER));
        assert!(r.is_due(at_hours(24), DEFAULT_RETRY_AFTER));
        let off = KeyRotation::new(KeyVersion(1), Instant::ZERO, Some(Duration::ZERO));
        assert!(!off.is_due(at_hours(24 * 365), DEFAULT_RETRY_AFTER));
        assert_eq!(off.next_due(DEFAULT_RETRY_AFTER), None);
    }

    #[test]
    fn due_rotations_is_pure_and_ordered() {
        let mut reg = BTreeMap::new();
        reg.insert(
            key("b"),
            KeyRotation::new(
                KeyVersion(3),
                Instant::ZERO,
                Some(Duration::from_secs(3600)),
            ),
        );
        reg.insert(
            key("a"),
            KeyRotation::new(KeyVersion(1), Instant::ZERO, None),
        );
        reg.insert(
            key("c"),
            KeyRotation::new(KeyVersion(1), Instant::ZERO, Some(Duration::ZERO)),
        );
        let now = at_hours(30);
        let first = due_rotations(&reg, now, DEFAULT_RETRY_AFTER);
        assert_eq!(first, due_rotations(&reg, now, DEFAULT_RETRY_AFTER));
        assert_eq!(
            first,
            vec![
                RotationCommand::StartRefresh {
                    key: key("a"),
                    from_version: KeyVersion(1)
                },
                RotationCommand::StartRefresh {
                    key: key("b"),
                    from_version: KeyVersion(3)
                },
            ]
        );
    }

    #[test]
    fn a_failed_refresh_retries_after_the_delay_and_keeps_the_version() {
        let mut s = RotationSchedule::new(DEFAULT_RETRY_AFTER);
        s.insert(
            key("k"),
            KeyRotation::new(KeyVersion(1), Instant::ZERO, None),
        );
        let t = at_hours(24);
        assert_eq!(s.poll(t).len(), 1);
        assert!(s.poll(t).is_empty(), "in flight: not returned twice");
        s.on_refresh_failed(&key("k"), t).unwrap();
        assert!(s.poll(t.saturating_add(Duration::from_secs(60))).is_empty());
        let retry = t.saturating_add(DEFAULT_RETRY_AFTER);
        assert_eq!(s.poll_timeout(), Some(retry));
        assert_eq!(
            s.poll(retry),
            vec![RotationCommand::StartRefresh {
                key: key("k"),
                from_version: KeyVersion(1)
            }]
        );
        assert_eq!(
            s.on_refreshed(&key("k"), KeyVersion(2), retry),
            Err(RotationError::NotInFlight(key("k"))),
            "a report for the wrong version is refused"
        );
        s.on_refreshed(&key("k"), KeyVersion(1), retry).unwrap();
        assert_eq!(s.get(&key("k")).unwrap().version, KeyVersion(2));
        assert_eq!(
            s.poll_timeout(),
            Some(retry.saturating_add(DEFAULT_ROTATION_INTERVAL))
        );
    }

    #[test]
    fn a_long_outage_rotates_once() {
        let mut s = RotationSchedule::new(DEFAULT_RETRY_AFTER);
        s.insert(
            key("k"),
            KeyRotation::new(KeyVersion(1), Instant::ZERO, None),
        );
        // The cluster was down for 30 days: 30 intervals were missed.
        let back = at_hours(24 * 30 + 5);
        assert_eq!(s.poll(back).len(), 1);
        s.on_refreshed(&key("k"), KeyVersion(1), back).unwrap();
        // Nothing more is due until one interval after that refresh.
        for h in 0..24 {
            assert!(s
                .poll(back.saturating_add(Duration::from_secs(h * 3600)))
                .is_empty());
        }
        assert_eq!(
            s.poll(back.saturating_add(DEFAULT_ROTATION_INTERVAL)).len(),
            1
        );
    }
}
