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
//!
//! **One set, one aux run, ever.** A Paillier secret stolen once would otherwise decrypt every
//! later presigning round of every key whose aux info reused it, and a refresh would not heal the
//! key (no proactive security). So the pool remembers the fingerprint of every modulus it handed
//! out ([`modulus_fingerprint`] of `N = p·q` and of the ring-Pedersen `N̂ = p̂·q̂`), the node makes
//! them durable (`PersistOp::MarkConsumed` of kind [`CONSUMED_KIND`]) before the aux run that uses
//! them sends anything, restores them at start ([`PrimePool::restore_consumed`]), and
//! [`PrimePool::supply`] refuses a set whose modulus was ever handed out: the same primes file fed
//! at every boot, or a generator that repeats itself.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;

use sha2::{Digest, Sha256};

use super::types::SafePrimes;

/// The kind of `PersistOp::MarkConsumed` that records a Paillier or ring-Pedersen modulus this
/// node used for aux info; its id is the [`modulus_fingerprint`] (32 bytes).
pub const CONSUMED_KIND: &str = "ecdsa-aux-modulus";

/// SHA-256 of a modulus (big-endian bytes) under a domain tag: public (the moduli are published
/// in aux info), names a set of primes without revealing them.
pub fn modulus_fingerprint(modulus: &paillier_zk::backend::Integer) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"keyshard/ecdsa/aux-modulus/v1");
    h.update(modulus.to_bytes_msf());
    h.finalize().into()
}

/// The fingerprints of a set's two moduli: Paillier `N = p·q` and ring-Pedersen `N̂ = p̂·q̂`
/// (cggmp24 takes the four primes in this order, `key_refresh::aux_only`).
pub fn fingerprints(primes: &SafePrimes) -> [[u8; 32]; 2] {
    let [p, q, hat_p, hat_q] = primes.0.primes_ref();
    [
        modulus_fingerprint(&(p * q)),
        modulus_fingerprint(&(hat_p * hat_q)),
    ]
}

/// Lower-case hex (for fingerprints, which are public).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why [`PrimePool::supply`] refused a set of primes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimesRefused {
    /// The fingerprint of the modulus already seen (hex, public).
    pub fingerprint: String,
    /// Why, in words.
    pub reason: &'static str,
}

/// Pregenerated safe primes, ready for aux info runs.
pub struct PrimePool {
    ready: VecDeque<SafePrimes>,
    target_depth: usize,
    in_flight: usize,
    /// Fingerprints of every modulus handed out for an aux run (restored from the store) or
    /// waiting in `ready`: a set matching one is refused.
    seen: BTreeSet<[u8; 32]>,
}

impl fmt::Debug for PrimePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimePool")
            .field("ready", &self.ready.len())
            .field("target_depth", &self.target_depth)
            .field("in_flight", &self.in_flight)
            .field("seen", &self.seen.len())
            .finish()
    }
}

impl PrimePool {
    /// An empty pool that wants `target_depth` sets of primes ready (one per aux info run
    /// expected before the driver can refill: every key creation, refresh and reshare).
    pub fn new(target_depth: usize) -> Self {
        PrimePool {
            ready: VecDeque::new(),
            target_depth,
            in_flight: 0,
            seen: BTreeSet::new(),
        }
    }

    /// The fingerprints this node recorded as consumed before (its store's `MarkConsumed` ids of
    /// kind [`CONSUMED_KIND`]); ids of another length are ignored (not ours).
    pub fn restore_consumed<'a>(&mut self, ids: impl IntoIterator<Item = &'a Vec<u8>>) {
        self.seen.extend(
            ids.into_iter()
                .filter_map(|id| <[u8; 32]>::try_from(id.as_slice()).ok()),
        );
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
    /// their sizes, [`SafePrimes::generate`] makes them). Refused, and counted as a failed
    /// generation, if either modulus was handed out before or is already in the pool.
    pub fn supply(&mut self, primes: SafePrimes) -> Result<(), PrimesRefused> {
        self.in_flight = self.in_flight.saturating_sub(1);
        let fps = fingerprints(&primes);
        if let Some(fp) = fps.iter().find(|fp| self.seen.contains(*fp)) {
            return Err(PrimesRefused {
                fingerprint: to_hex(fp),
                reason: "these safe primes were already used for aux info here (or are already \
                         in the pool); reusing them would reuse a Paillier key",
            });
        }
        if fps[0] == fps[1] {
            return Err(PrimesRefused {
                fingerprint: to_hex(&fps[0]),
                reason: "the Paillier and ring-Pedersen moduli are equal",
            });
        }
        self.seen.extend(fps);
        self.ready.push_back(primes);
        Ok(())
    }

    /// A generation failed or was abandoned; it will be asked for again.
    pub fn failed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// One set of primes for an aux info run, oldest first, with the fingerprints the caller must
    /// make durable (`MarkConsumed` of kind [`CONSUMED_KIND`]) before the run sends anything;
    /// `None` if the run must wait. The pool keeps refusing the set from now on.
    pub fn take(&mut self) -> Option<(SafePrimes, [[u8; 32]; 2])> {
        let primes = self.ready.pop_front()?;
        let fps = fingerprints(&primes);
        Some((primes, fps))
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
        pool.supply(SafePrimes::from_json(PRIMES[0]).unwrap())
            .unwrap();
        pool.failed();
        assert_eq!((pool.ready_len(), pool.wanted()), (1, 1));
        pool.started(1);
        pool.supply(SafePrimes::from_json(PRIMES[1]).unwrap())
            .unwrap();
        assert_eq!((pool.ready_len(), pool.wanted()), (2, 0));
        let (first, _) = pool.take().unwrap();
        assert_eq!(
            first.to_json().unwrap(),
            SafePrimes::from_json(PRIMES[0]).unwrap().to_json().unwrap()
        );
        assert_eq!(pool.wanted(), 1, "taking one asks for a replacement");
        let shown = format!("{pool:?} {first:?}");
        assert!(!shown.contains(&PRIMES[0][10..40]), "{shown}");
    }

    /// A set whose modulus was handed out once is never taken again: not while it waits in the
    /// pool, not after an aux run took it, not after a restart that restored the consumed marks.
    #[test]
    fn primes_are_handed_out_once_ever() {
        let set = |i: usize| SafePrimes::from_json(PRIMES[i]).unwrap();
        let mut pool = PrimePool::new(1);
        pool.supply(set(0)).unwrap();
        let again = pool.supply(set(0)).unwrap_err();
        assert!(again.reason.contains("already used"), "{again:?}");
        let (taken, fps) = pool.take().unwrap();
        assert_eq!(fps, fingerprints(&taken));
        assert_ne!(fps[0], fps[1]);
        assert_eq!(
            pool.supply(set(0)).unwrap_err().fingerprint,
            to_hex(&fps[0]),
            "taken once: refused for good"
        );
        assert_eq!(pool.ready_len(), 0);
        pool.supply(set(1)).unwrap();

        // After a restart: only the durable marks are left, and they suffice.
        let mut restarted = PrimePool::new(1);
        let marks: Vec<Vec<u8>> = fps.iter().map(|f| f.to_vec()).collect();
        restarted.restore_consumed(marks.iter().chain([&vec![1u8; 3]]));
        assert!(restarted.supply(set(0)).is_err());
        restarted.supply(set(1)).unwrap();
        // The fingerprint is SHA-256 of N = p·q under a tag: public, and not the primes.
        let shown = format!("{again:?}");
        assert!(!shown.contains(&PRIMES[0][30..60]), "{shown}");
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
