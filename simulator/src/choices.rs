//! Where the world's choices come from: a seeded ChaCha20 (every normal run), or the bytes of a
//! fuzz input (the `sim_world` fuzz target).
//!
//! With a [`Tape`], every knob, fault, delivery delay, disk latency and workload operation is
//! read from the input in the order the world asks for them, so libFuzzer's mutations of the
//! input change the world's decisions directly (its coverage feedback then steers towards
//! worlds that reach new code), instead of changing a seed that a hash scrambles. One tape is
//! shared by every component: the world is single-threaded and asks in a deterministic order,
//! so the same input replays the same world. When the input runs out, the rest comes from a
//! ChaCha20 seeded from the run's seed, so every input describes a whole run.
//!
//! The nodes' own randomness (nonces, session seeds) still comes from the run's seed: the tape
//! chooses what happens to the cluster, not the cryptography.

use std::cell::RefCell;
use std::rc::Rc;

use keyshard_core::rng::CoreRng;
use rand_core::{impls, RngCore};

/// A shared fuzz input, read front to back.
#[derive(Clone)]
pub struct Tape(Rc<RefCell<TapeState>>);

struct TapeState {
    bytes: Vec<u8>,
    at: usize,
    rest: CoreRng,
}

impl Tape {
    /// A tape over `bytes`; `rest` continues once they run out.
    pub fn new(bytes: &[u8], rest: CoreRng) -> Tape {
        Tape(Rc::new(RefCell::new(TapeState {
            bytes: bytes.to_vec(),
            at: 0,
            rest,
        })))
    }

    /// Whether every input byte has been read.
    pub fn exhausted(&self) -> bool {
        let s = self.0.borrow();
        s.at >= s.bytes.len()
    }

    fn next_u64(&self) -> u64 {
        let mut s = self.0.borrow_mut();
        if s.at >= s.bytes.len() {
            return s.rest.next_u64();
        }
        // Eight bytes per draw, zero-padded at the very end of the input.
        let end = (s.at + 8).min(s.bytes.len());
        let mut word = [0u8; 8];
        word[..end - s.at].copy_from_slice(&s.bytes[s.at..end]);
        s.at = end;
        u64::from_le_bytes(word)
    }
}

/// The generator behind one component of the world.
// Five of these live in a world, each drawn from on every step: keep ChaCha inline.
#[allow(clippy::large_enum_variant)]
pub enum SimRng {
    /// A normal run: ChaCha20 from the seed (exactly the stream a `CoreRng` gives).
    Seeded(CoreRng),
    /// A fuzzed run: the shared tape.
    Tape(Tape),
}

impl From<CoreRng> for SimRng {
    fn from(rng: CoreRng) -> SimRng {
        SimRng::Seeded(rng)
    }
}

impl RngCore for SimRng {
    fn next_u32(&mut self) -> u32 {
        match self {
            SimRng::Seeded(r) => r.next_u32(),
            SimRng::Tape(t) => t.next_u64() as u32,
        }
    }

    fn next_u64(&mut self) -> u64 {
        match self {
            SimRng::Seeded(r) => r.next_u64(),
            SimRng::Tape(t) => t.next_u64(),
        }
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        match self {
            SimRng::Seeded(r) => r.fill_bytes(dest),
            SimRng::Tape(_) => impls::fill_bytes_via_next(self, dest),
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshard_core::rng::Seed;

    #[test]
    fn seeded_is_exactly_the_core_stream() {
        let mut a = SimRng::from(Seed::from_u64(7).rng());
        let mut b = Seed::from_u64(7).rng();
        for _ in 0..64 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert_eq!(a.next_u32(), b.next_u32());
        }
    }

    #[test]
    fn a_tape_reads_its_bytes_in_order_then_continues_from_the_seed() {
        let tape = Tape::new(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 3], Seed::from_u64(1).rng());
        let (mut a, mut b) = (SimRng::Tape(tape.clone()), SimRng::Tape(tape.clone()));
        assert_eq!(a.next_u64(), 1);
        assert_eq!(b.next_u64(), 0x0302);
        assert!(tape.exhausted());
        assert_eq!(a.next_u64(), Seed::from_u64(1).rng().next_u64());
    }
}
