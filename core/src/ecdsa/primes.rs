//! The pool of pregenerated safe primes the aux info runs draw from.
//!
//! Four 1536-bit safe primes cost minutes of CPU per party, so no session ever generates one: the
//! driver generates them in the background (OS randomness, low priority) and feeds them in
//! ([`PrimePool::supply`]); an aux info run takes one set ([`PrimePool::take`]) and, if the pool
//! is empty, waits rather than generating inline. [`PrimePool::wanted`] is how the core asks for
//! more: the number of generations the driver should have under way to bring the pool back to
//! its target depth, counting those it already started ([`PrimePool::started`]).
//!
//! The primes are the factors of this party's Paillier key: secret, never logged (their `Debug`
//! is redacted). They are kept in memory only; a crash loses the pool and the driver refills it.

use std::collections::VecDeque;
use std::fmt;

use super::types::SafePrimes;

/// Pregenerated safe primes, ready for aux info runs.
pub struct PrimePool {
    ready: VecDeque<SafePrimes>,
    target_depth: usize,
    in_flight: usize,
}

impl fmt::Debug for PrimePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimePool")
            .field("ready", &self.ready.len())
            .field("target_depth", &self.target_depth)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl PrimePool {
    /// An empty pool that wants `target_depth` sets of primes ready (one per aux info run
    /// expected before the driver can refill: resharing to a new member set, adding a node).
    pub fn new(target_depth: usize) -> Self {
        PrimePool {
            ready: VecDeque::new(),
            target_depth,
            in_flight: 0,
        }
    }

    /// How many more generations the driver should start now.
    pub fn wanted(&self) -> usize {
        self.target_depth
            .saturating_sub(self.ready.len() + self.in_flight)
    }

    /// The driver started `n` generations (so [`PrimePool::wanted`] does not ask twice).
    pub fn started(&mut self, n: usize) {
        self.in_flight = self.in_flight.saturating_add(n);
    }

    /// A generation finished (the driver validated the primes: [`SafePrimes::from_json`] checks
    /// their sizes, [`SafePrimes::generate`] makes them).
    pub fn supply(&mut self, primes: SafePrimes) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.ready.push_back(primes);
    }

    /// A generation failed or was abandoned; it will be asked for again.
    pub fn failed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// One set of primes for an aux info run, oldest first; `None` if the run must wait.
    pub fn take(&mut self) -> Option<SafePrimes> {
        self.ready.pop_front()
    }

    /// Sets of primes ready now.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMES: [&str; 2] = [
        include_str!("../../tests/fixtures/ecdsa/primes-p1.json"),
        include_str!("../../tests/fixtures/ecdsa/primes-p2.json"),
    ];

    #[test]
    fn the_pool_asks_for_what_it_lacks_and_never_twice() {
        let mut pool = PrimePool::new(2);
        assert_eq!(pool.wanted(), 2);
        pool.started(1);
        assert_eq!(pool.wanted(), 1, "one generation is under way");
        pool.started(1);
        assert_eq!(pool.wanted(), 0);
        assert!(
            pool.take().is_none(),
            "an aux run waits; nothing is generated inline"
        );
        pool.supply(SafePrimes::from_json(PRIMES[0]).unwrap());
        pool.failed();
        assert_eq!((pool.ready_len(), pool.wanted()), (1, 1));
        pool.started(1);
        pool.supply(SafePrimes::from_json(PRIMES[1]).unwrap());
        assert_eq!((pool.ready_len(), pool.wanted()), (2, 0));
        let first = pool.take().unwrap();
        assert_eq!(
            first.to_json().unwrap(),
            SafePrimes::from_json(PRIMES[0]).unwrap().to_json().unwrap()
        );
        assert_eq!(pool.wanted(), 1, "taking one asks for a replacement");
        let shown = format!("{pool:?} {first:?}");
        assert!(!shown.contains(&PRIMES[0][10..40]), "{shown}");
    }

    #[test]
    fn undersized_primes_are_refused_before_they_reach_the_pool() {
        // The fixture's own encoding with every prime replaced by 23 (what a corrupted disk or a
        // buggy generator might give): well-formed, and refused for its size.
        let mut v: serde_json::Value = serde_json::from_str(PRIMES[0]).unwrap();
        let list = v["primes"].as_array_mut().unwrap();
        assert_eq!(list.len(), 4);
        for p in list.iter_mut() {
            p["value"] = serde_json::Value::String("17".into());
        }
        let small = v.to_string();
        assert_eq!(
            SafePrimes::from_json(&small).unwrap_err(),
            "a prime is smaller than the security level requires"
        );
        assert!(SafePrimes::from_json("not json").is_err());
    }
}
