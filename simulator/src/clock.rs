//! Per-node clocks: each node's local time is `offset + rate * global`, with the rate within a
//! few hundred parts per million of 1 (drift). Local clocks are monotonic. Inputs to a node are
//! stamped with its local time; its deadlines (local) are converted back to global time.

use keyshard_core::time::Instant;

/// One node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Local milliseconds at global time zero.
    pub offset_ms: u64,
    /// Drift in parts per million (local runs `1 + ppm / 1e6` times as fast as global).
    pub ppm: i64,
}

const MILLION: i128 = 1_000_000;

impl Clock {
    /// A clock; `ppm` must be within ±100,000 (it is within ±1,000 in practice).
    pub fn new(offset_ms: u64, ppm: i64) -> Clock {
        Clock {
            offset_ms,
            ppm: ppm.clamp(-100_000, 100_000),
        }
    }

    /// The node's local time at global time `global_ms`.
    pub fn local(&self, global_ms: u64) -> Instant {
        let g = i128::from(global_ms);
        let scaled = g * (MILLION + i128::from(self.ppm)) / MILLION;
        Instant::from_millis(self.offset_ms + scaled as u64)
    }

    /// The earliest global time at which the local clock reads `deadline` or later (never before
    /// `now`).
    pub fn global_at(&self, deadline: Instant, now: u64) -> u64 {
        if self.local(now) >= deadline {
            return now;
        }
        let want = i128::from(deadline.as_millis()) - i128::from(self.offset_ms);
        let rate = MILLION + i128::from(self.ppm);
        // First guess, then step to the exact earliest millisecond (the floor in `local` makes
        // the guess off by at most one or two).
        let mut g = ((want * MILLION + rate - 1) / rate).max(i128::from(now)) as u64;
        while self.local(g) < deadline {
            g += 1;
        }
        while g > now && self.local(g - 1) >= deadline {
            g -= 1;
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_is_monotonic_and_deadlines_convert_back_exactly() {
        for (offset, ppm) in [(0, 0), (1234, 1000), (99, -1000), (5, 999), (7, -37)] {
            let c = Clock::new(offset, ppm);
            let mut last = c.local(0);
            for g in 0..5_000u64 {
                let l = c.local(g * 7);
                assert!(l >= last);
                last = l;
            }
            for d in [0u64, 1, 500, 10_000, 123_457, 9_999_999] {
                let deadline = Instant::from_millis(d);
                let g = c.global_at(deadline, 0);
                assert!(c.local(g) >= deadline, "{offset} {ppm} {d}");
                assert!(g == 0 || c.local(g - 1) < deadline, "{offset} {ppm} {d}");
            }
        }
    }
}
