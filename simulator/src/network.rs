//! The simulated network: per-link latency and jitter (so messages reorder), loss, duplication,
//! cut links (one-way or both ways: messages dropped) and clogged links (messages held until the
//! link is unclogged, then delivered late).

use std::collections::BTreeMap;

use crate::choices::SimRng;
use keyshard_core::ids::ParticipantId;
use rand_core::RngCore;

/// A message on the wire.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Sender.
    pub from: ParticipantId,
    /// Receiver.
    pub to: ParticipantId,
    /// The receiver's incarnation when it was sent (a restart breaks the connection).
    pub to_incarnation: u32,
    /// Bytes.
    pub bytes: Vec<u8>,
}

/// One direction of a link.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// Base one-way latency (ms).
    pub latency: u64,
    /// Extra random delay up to this (ms).
    pub jitter: u64,
    /// Messages are dropped.
    pub cut: bool,
    /// Messages are held.
    pub clogged: bool,
    held: Vec<Packet>,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Dropped by loss.
    pub lost: u64,
    /// Dropped by a cut link.
    pub cut: u64,
    /// Delivered twice.
    pub duplicated: u64,
    /// Held by a clogged link.
    pub clogged: u64,
}

/// The network.
pub struct Network {
    links: BTreeMap<(ParticipantId, ParticipantId), Link>,
    /// Loss probability in parts per million.
    pub loss_ppm: u32,
    /// Duplication probability in parts per million.
    pub dup_ppm: u32,
    rng: SimRng,
    /// Counters.
    pub stats: NetStats,
}

impl Network {
    /// A network between `ids` with per-link latencies in `latency` and jitter up to `jitter`.
    pub fn new(
        ids: &[ParticipantId],
        latency: (u64, u64),
        jitter: u64,
        loss_ppm: u32,
        dup_ppm: u32,
        mut rng: SimRng,
    ) -> Network {
        let mut links = BTreeMap::new();
        for a in ids {
            for b in ids {
                if a != b {
                    let span = latency.1.saturating_sub(latency.0) + 1;
                    let link = Link {
                        latency: latency.0 + rng.next_u64() % span,
                        jitter: rng.next_u64() % (jitter + 1),
                        ..Link::default()
                    };
                    links.insert((*a, *b), link);
                }
            }
        }
        Network {
            links,
            loss_ppm,
            dup_ppm,
            rng,
            stats: NetStats::default(),
        }
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && (self.rng.next_u64() % 1_000_000) < u64::from(ppm)
    }

    fn delay(&mut self, from: ParticipantId, to: ParticipantId) -> u64 {
        let (lat, jit) = self
            .links
            .get(&(from, to))
            .map_or((1, 0), |l| (l.latency, l.jitter));
        lat + if jit > 0 {
            self.rng.next_u64() % (jit + 1)
        } else {
            0
        }
    }

    /// Sends a packet at `now`; returns the delivery times to schedule (none if lost, cut or
    /// held; two if duplicated).
    pub fn send(&mut self, p: Packet, now: u64) -> Vec<(u64, Packet)> {
        self.stats.sent += 1;
        let Some(link) = self.links.get_mut(&(p.from, p.to)) else {
            return vec![];
        };
        if link.cut {
            self.stats.cut += 1;
            return vec![];
        }
        if link.clogged {
            self.stats.clogged += 1;
            link.held.push(p);
            return vec![];
        }
        if self.chance(self.loss_ppm) {
            self.stats.lost += 1;
            return vec![];
        }
        let mut out = Vec::with_capacity(1);
        if self.chance(self.dup_ppm) {
            self.stats.duplicated += 1;
            let d = self.delay(p.from, p.to);
            out.push((now + d, p.clone()));
        }
        let d = self.delay(p.from, p.to);
        out.push((now + d, p));
        out
    }

    /// Whether a packet arriving now on its link gets through (a link cut while it was in
    /// flight drops it).
    pub fn arrives(&self, from: ParticipantId, to: ParticipantId) -> bool {
        self.links.get(&(from, to)).is_some_and(|l| !l.cut)
    }

    /// Whether both directions between `a` and `b` are not cut.
    pub fn connected(&self, a: ParticipantId, b: ParticipantId) -> bool {
        self.arrives(a, b) && self.arrives(b, a)
    }

    /// Cuts or restores one direction.
    pub fn set_cut(&mut self, from: ParticipantId, to: ParticipantId, cut: bool) {
        if let Some(l) = self.links.get_mut(&(from, to)) {
            l.cut = cut;
            if cut {
                self.stats.cut += l.held.len() as u64;
                l.held.clear();
            }
        }
    }

    /// Clogs one direction.
    pub fn clog(&mut self, from: ParticipantId, to: ParticipantId) {
        if let Some(l) = self.links.get_mut(&(from, to)) {
            l.clogged = true;
        }
    }

    /// Unclogs one direction; returns the held packets with their delivery times.
    pub fn unclog(
        &mut self,
        from: ParticipantId,
        to: ParticipantId,
        now: u64,
    ) -> Vec<(u64, Packet)> {
        let Some(l) = self.links.get_mut(&(from, to)) else {
            return vec![];
        };
        l.clogged = false;
        let held = std::mem::take(&mut l.held);
        held.into_iter()
            .map(|p| {
                let d = self.delay(p.from, p.to);
                (now + d, p)
            })
            .collect()
    }

    /// Links currently cut or clogged.
    pub fn faulty_links(&self) -> Vec<(ParticipantId, ParticipantId)> {
        self.links
            .iter()
            .filter(|(_, l)| l.cut || l.clogged)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Whether one direction is clogged.
    pub fn is_clogged(&self, from: ParticipantId, to: ParticipantId) -> bool {
        self.links.get(&(from, to)).is_some_and(|l| l.clogged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshard_core::rng::Seed;

    fn pid(n: u16) -> ParticipantId {
        ParticipantId::new(n).unwrap()
    }

    fn packet(from: u16, to: u16) -> Packet {
        Packet {
            from: pid(from),
            to: pid(to),
            to_incarnation: 0,
            bytes: vec![1, 2, 3],
        }
    }

    #[test]
    fn cut_drops_clog_holds_and_unclog_releases() {
        let ids = [pid(1), pid(2), pid(3)];
        let mut n = Network::new(&ids, (5, 10), 3, 0, 0, Seed::from_u64(1).rng().into());
        let d = n.send(packet(1, 2), 100);
        assert_eq!(d.len(), 1);
        assert!((105..=113).contains(&d[0].0));
        n.set_cut(pid(1), pid(2), true);
        assert!(n.send(packet(1, 2), 100).is_empty());
        assert!(!n.connected(pid(1), pid(2)));
        assert_eq!(n.send(packet(2, 1), 100).len(), 1, "one-way");
        n.clog(pid(2), pid(3));
        assert!(n.send(packet(2, 3), 100).is_empty());
        let released = n.unclog(pid(2), pid(3), 500);
        assert_eq!(released.len(), 1);
        assert!(released[0].0 >= 505);
    }

    #[test]
    fn loss_and_duplication_follow_their_rates() {
        let ids = [pid(1), pid(2)];
        let mut n = Network::new(
            &ids,
            (1, 1),
            0,
            500_000,
            500_000,
            Seed::from_u64(2).rng().into(),
        );
        let mut delivered = 0;
        for _ in 0..1000 {
            delivered += n.send(packet(1, 2), 0).len();
        }
        assert!(n.stats.lost > 400 && n.stats.lost < 600, "{:?}", n.stats);
        assert!(n.stats.duplicated > 200, "{:?}", n.stats);
        assert_eq!(delivered as u64, 1000 - n.stats.lost + n.stats.duplicated);
    }
}
