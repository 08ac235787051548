use super::*;

fn p(n: u16) -> ParticipantId {
    ParticipantId::new(n).unwrap()
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn done(latency_ms: u64) -> Outcome {
    Outcome::Completed {
        latency: ms(latency_ms),
    }
}

const HALF: Duration = Duration::from_millis(200);

// ---- the score function's edges ----

#[test]
fn no_samples_scores_max() {
    assert_eq!(score(&Snapshot::default(), HALF), Score::MAX);
    assert_eq!(Snapshot::default().completion_rate(), None);
    let m = NodeMetrics::new(ScoringConfig::default());
    assert_eq!(m.score(at(0)), Score::MAX);
    assert_eq!(m.rating(at(0)).tasks, 0);
}

#[test]
fn all_failures_score_zero() {
    for kind in [
        FailureKind::Timeout,
        FailureKind::Blamed,
        FailureKind::Aborted,
    ] {
        let mut m = NodeMetrics::new(ScoringConfig::default());
        for i in 0..5 {
            m.record(at(i), Outcome::Failed(kind));
        }
        let snap = m.snapshot(at(10));
        assert_eq!(snap.failures(kind), 5);
        assert_eq!((snap.p50, snap.p95), (None, None));
        assert_eq!(score(&snap, HALF), Score::ZERO, "{kind:?}");
        assert_eq!(snap.completion_rate(), Some(Score::ZERO));
    }
}

#[test]
fn equal_nodes_score_equal_and_order_does_not_matter() {
    let mut a = NodeMetrics::new(ScoringConfig::default());
    let mut b = NodeMetrics::new(ScoringConfig::default());
    let lat = [30, 90, 50, 70, 10];
    for (i, l) in lat.iter().enumerate() {
        a.record(at(i as u64), done(*l));
    }
    for (i, l) in lat.iter().rev().enumerate() {
        b.record(at(i as u64), done(*l));
    }
    assert_eq!(a.score(at(10)), b.score(at(10)));
}

#[test]
fn latency_factor_is_one_half_at_the_half_score_latency() {
    let snap = Snapshot {
        completed: 1,
        p50: Some(HALF),
        p95: Some(HALF),
        ..Snapshot::default()
    };
    assert_eq!(score(&snap, HALF), Score::from_ppm(500_000));
    // 2h -> 1/3 (floored), zero latency -> 1.
    let slow = Snapshot {
        p50: Some(HALF * 2),
        p95: Some(HALF * 2),
        ..snap
    };
    assert_eq!(score(&slow, HALF), Score::from_ppm(333_333));
    let instant = Snapshot {
        p50: Some(Duration::ZERO),
        p95: Some(Duration::ZERO),
        ..snap
    };
    assert_eq!(score(&instant, HALF), Score::MAX);
    assert_eq!(score(&instant, Duration::ZERO), Score::MAX);
    assert_eq!(score(&snap, Duration::ZERO), Score::ZERO);
}

#[test]
fn failures_weigh_by_kind() {
    let base = Snapshot {
        completed: 8,
        p50: Some(Duration::ZERO),
        p95: Some(Duration::ZERO),
        ..Snapshot::default()
    };
    let timeouts = Snapshot {
        timeouts: 2,
        ..base
    };
    let aborted = Snapshot { aborted: 2, ..base };
    let blamed = Snapshot { blamed: 2, ..base };
    assert_eq!(score(&timeouts, HALF), Score::from_ppm(800_000));
    assert_eq!(score(&aborted, HALF), Score::from_ppm(800_000));
    assert_eq!(score(&blamed, HALF), Score::from_ppm(666_666));
    assert_eq!(timeouts.completion_rate(), Some(Score::from_ppm(800_000)));
}

#[test]
fn score_is_monotone_in_latency_and_failures() {
    let mut last = Score::MAX;
    for l in [0u64, 1, 10, 100, 1_000, 10_000, 1_000_000] {
        let s = score(
            &Snapshot {
                completed: 10,
                p50: Some(ms(l)),
                p95: Some(ms(l)),
                ..Snapshot::default()
            },
            HALF,
        );
        assert!(s <= last, "latency {l}: {s} > {last}");
        last = s;
    }
    let mut last = Score::MAX;
    for f in 0..20u32 {
        let s = score(
            &Snapshot {
                completed: 10,
                timeouts: f,
                p50: Some(ms(50)),
                p95: Some(ms(50)),
                ..Snapshot::default()
            },
            HALF,
        );
        assert!(s < last || f == 0);
        last = s;
    }
}

#[test]
fn extreme_inputs_never_overflow_or_leave_range() {
    let snap = Snapshot {
        completed: u32::MAX,
        timeouts: u32::MAX,
        blamed: u32::MAX,
        aborted: u32::MAX,
        p50: Some(Duration::MAX),
        p95: Some(Duration::MAX),
    };
    // Reliability 1/5 (a blame counts twice), latency factor 1/2.
    assert_eq!(score(&snap, Duration::MAX), Score::from_ppm(100_000));
    assert_eq!(score(&snap, HALF), Score::ZERO);
    assert_eq!(snap.tasks(), u32::MAX);
    assert_eq!(Score::from_ppm(u32::MAX), Score::MAX);
    assert_eq!(Score::from_ppm(123_456).to_string(), "0.123456");
    assert_eq!(Score::MAX.to_string(), "1.000000");
}

// ---- metrics: percentiles, window, bounded memory ----

#[test]
fn percentiles_are_exact_nearest_rank() {
    let mut m = NodeMetrics::new(ScoringConfig::default());
    // 1..=100 ms, recorded out of order.
    for i in 0..100u64 {
        m.record(at(0), done((i * 37) % 100 + 1));
    }
    let snap = m.snapshot(at(0));
    assert_eq!(snap.p50, Some(ms(50)));
    assert_eq!(snap.p95, Some(ms(95)));
    assert_eq!(snap.completed, 100);

    let mut one = NodeMetrics::new(ScoringConfig::default());
    one.record(at(0), done(7));
    assert_eq!(one.snapshot(at(0)).p50, Some(ms(7)));
    assert_eq!(one.snapshot(at(0)).p95, Some(ms(7)));

    let mut three = NodeMetrics::new(ScoringConfig::default());
    for l in [30, 10, 20] {
        three.record(at(0), done(l));
    }
    assert_eq!(three.snapshot(at(0)).p50, Some(ms(20)));
    assert_eq!(three.snapshot(at(0)).p95, Some(ms(30)));
}

#[test]
fn only_outcomes_inside_the_window_count() {
    let cfg = ScoringConfig {
        window: Duration::from_secs(10),
        ..ScoringConfig::default()
    };
    let mut m = NodeMetrics::new(cfg);
    m.record(at(0), Outcome::Failed(FailureKind::Timeout));
    m.record(at(5_000), done(20));
    assert_eq!(m.snapshot(at(9_999)).tasks(), 2);
    assert_eq!(m.snapshot(at(10_000)).tasks(), 1, "the timeout aged out");
    assert_eq!(m.snapshot(at(15_000)).tasks(), 0);
    assert_eq!(m.score(at(15_000)), Score::MAX);
    // A pure function of now: earlier times still see what they saw.
    assert_eq!(m.snapshot(at(9_999)).tasks(), 2);
    // Recording prunes what is already out of the window at the new sample's time.
    m.record(at(20_000), done(20));
    assert_eq!(m.len(), 1);
}

#[test]
fn memory_is_bounded_by_max_samples() {
    let cfg = ScoringConfig {
        max_samples: 16,
        ..ScoringConfig::default()
    };
    let mut m = NodeMetrics::new(cfg);
    for i in 0..1_000u64 {
        m.record(at(i), done(i));
        assert!(m.len() <= 16);
    }
    let snap = m.snapshot(at(1_000));
    assert_eq!(snap.completed, 16);
    assert_eq!(
        snap.p50,
        Some(ms(991)),
        "only the newest 16 (984..=999) remain"
    );

    let mut zero = NodeMetrics::new(ScoringConfig {
        max_samples: 0,
        ..ScoringConfig::default()
    });
    zero.record(at(0), done(1));
    zero.record(at(1), done(2));
    assert_eq!(zero.len(), 1);
}

// ---- the leader monitor ----

/// A cluster of metrics fed one outcome per node every `TICK`, with the monitor consulted
/// after every tick; a decided transfer takes effect at once.
struct Harness {
    metrics: BTreeMap<ParticipantId, NodeMetrics>,
    monitor: LeaderMonitor,
    leader: ParticipantId,
    transfers: Vec<(Instant, ParticipantId, ParticipantId)>,
    lag_seen: bool,
}

const TICK: u64 = 250;

impl Harness {
    fn new(nodes: u16, leader: u16, scoring: ScoringConfig, monitor: MonitorConfig) -> Self {
        Harness {
            metrics: (1..=nodes)
                .map(|i| (p(i), NodeMetrics::new(scoring)))
                .collect(),
            monitor: LeaderMonitor::new(monitor),
            leader: p(leader),
            transfers: Vec::new(),
            lag_seen: false,
        }
    }

    /// Runs `from..until` (ms); `outcome(node, leader, now, tick)` gives each node's outcome.
    fn run(
        &mut self,
        from: u64,
        until: u64,
        outcome: impl Fn(ParticipantId, ParticipantId, u64, u64) -> Outcome,
    ) {
        let mut tick = from / TICK;
        let mut t = from;
        while t < until {
            let now = at(t);
            for (&id, m) in self.metrics.iter_mut() {
                m.record(now, outcome(id, self.leader, t, tick));
            }
            if let Some(to) = self.monitor.observe(self.leader, &self.metrics, now) {
                assert_ne!(to, self.leader);
                self.transfers.push((now, self.leader, to));
                self.leader = to;
            }
            self.lag_seen |= self.monitor.lagging_since().is_some();
            t += TICK;
            tick += 1;
        }
    }
}

/// Follower latencies: node 3 is the healthiest; node 2 is fast but times out now and then.
fn follower(id: ParticipantId, tick: u64) -> Outcome {
    let jitter = (tick * 7 + u64::from(id.get()) * 13) % 20;
    match id.get() {
        2 if tick.is_multiple_of(10) => Outcome::Failed(FailureKind::Timeout),
        2 => done(45 + jitter),
        3 => done(40 + jitter),
        4 => done(80 + jitter),
        _ => done(120 + jitter),
    }
}

const MIN: u64 = 60_000;

#[test]
fn slow_leader_causes_exactly_one_transfer_to_the_healthiest_follower() {
    let mut h = Harness::new(5, 1, ScoringConfig::default(), MonitorConfig::default());
    // Node 1's sessions are consistently slow, whoever leads.
    h.run(0, 60 * MIN, |id, _leader, _t, tick| {
        if id == p(1) {
            done(600 + tick % 50)
        } else {
            follower(id, tick)
        }
    });
    assert_eq!(h.transfers.len(), 1, "{:?}", h.transfers);
    let (when, from, to) = h.transfers[0];
    assert_eq!((from, to), (p(1), p(3)));
    // The first leader gets the min_interval grace; the lag had long been sustained by then.
    assert_eq!(when, at(10 * MIN));
}

#[test]
fn oscillating_slowness_within_the_window_causes_no_transfer() {
    // The leader is slow for 20 s, then fast for 20 s, forever. With a 10 s metrics window its
    // score lags for about 30 s at a time, less than the 60 s the monitor demands.
    let scoring = ScoringConfig {
        window: Duration::from_secs(10),
        ..ScoringConfig::default()
    };
    let monitor = MonitorConfig {
        min_interval: Duration::ZERO, // hysteresis alone must hold
        ..MonitorConfig::default()
    };
    let oscillating = |id: ParticipantId, _leader: ParticipantId, t: u64, tick: u64| {
        if id == p(1) {
            if (t / 20_000).is_multiple_of(2) {
                done(600)
            } else {
                done(40)
            }
        } else {
            follower(id, tick)
        }
    };
    let mut h = Harness::new(5, 1, scoring, monitor);
    h.run(0, 60 * MIN, oscillating);
    assert!(h.lag_seen, "the leader should lag during its slow phases");
    assert!(h.transfers.is_empty(), "{:?}", h.transfers);

    // Control: the same configuration moves a leader that stays slow.
    let mut control = Harness::new(5, 1, scoring, monitor);
    control.run(0, 5 * MIN, |id, _leader, _t, tick| {
        if id == p(1) {
            done(600)
        } else {
            follower(id, tick)
        }
    });
    assert_eq!(control.transfers.len(), 1, "{:?}", control.transfers);
}

#[test]
fn no_second_transfer_before_the_min_interval_even_if_the_new_leader_is_slow() {
    let cfg = MonitorConfig::default();
    let mut h = Harness::new(5, 1, ScoringConfig::default(), cfg);
    // Whoever leads is slow (say the leader's machine is overloaded by the leader role).
    h.run(0, 45 * MIN, |id, leader, _t, tick| {
        if id == leader {
            done(600)
        } else {
            follower(id, tick)
        }
    });
    println!("leader always slow: transfers {:?}", h.transfers);
    assert!(h.transfers.len() >= 2, "{:?}", h.transfers);
    assert_eq!(h.transfers[0].1, p(1));
    for pair in h.transfers.windows(2) {
        let gap = pair[1].0.saturating_duration_since(pair[0].0);
        assert!(gap >= cfg.min_interval, "switch storm: {:?}", h.transfers);
    }
    // The first transfer after the initial grace, then one per min_interval at most.
    assert!(h.transfers.len() <= 4, "{:?}", h.transfers);
}

fn rating(score: u32, tasks: u32) -> Rating {
    Rating {
        score: Score::from_ppm(score),
        tasks,
    }
}

fn ratings(v: &[(u16, u32, u32)]) -> BTreeMap<ParticipantId, Rating> {
    v.iter().map(|&(i, s, n)| (p(i), rating(s, n))).collect()
}

#[test]
fn a_leader_that_recovers_during_the_window_resets_it() {
    let cfg = MonitorConfig {
        sustain: Duration::from_secs(60),
        min_interval: Duration::ZERO,
        ..MonitorConfig::default()
    };
    let mut mon = LeaderMonitor::new(cfg);
    let lagging = ratings(&[(1, 300_000, 50), (2, 900_000, 50)]);
    let recovered = ratings(&[(1, 800_000, 50), (2, 900_000, 50)]);
    assert_eq!(mon.observe_ratings(p(1), &lagging, at(0)), None);
    assert_eq!(mon.lagging_since(), Some(at(0)));
    assert_eq!(mon.observe_ratings(p(1), &lagging, at(59_000)), None);
    assert_eq!(mon.observe_ratings(p(1), &recovered, at(59_500)), None);
    assert_eq!(mon.lagging_since(), None);
    assert_eq!(mon.observe_ratings(p(1), &lagging, at(60_000)), None);
    assert_eq!(mon.observe_ratings(p(1), &lagging, at(119_999)), None);
    assert_eq!(mon.observe_ratings(p(1), &lagging, at(120_000)), Some(p(2)));
    assert_eq!(mon.last_transfer(), Some(at(120_000)));
}

#[test]
fn lag_below_the_margin_or_without_evidence_never_transfers() {
    let cfg = MonitorConfig {
        sustain: Duration::ZERO,
        min_interval: Duration::ZERO,
        ..MonitorConfig::default()
    };
    let mut mon = LeaderMonitor::new(cfg);
    // Just under the margin.
    let close = ratings(&[(1, 700_001, 50), (2, 900_000, 50)]);
    assert_eq!(mon.observe_ratings(p(1), &close, at(0)), None);
    // The best follower has too few tasks; the next one is within the margin.
    let thin = ratings(&[(1, 500_000, 50), (2, 1_000_000, 19), (3, 600_000, 50)]);
    assert_eq!(mon.observe_ratings(p(1), &thin, at(1)), None);
    // The leader has too few tasks.
    let idle = ratings(&[(1, 100_000, 5), (2, 900_000, 50)]);
    assert_eq!(mon.observe_ratings(p(1), &idle, at(2)), None);
    // The leader has no rating at all; no followers.
    assert_eq!(
        mon.observe_ratings(p(1), &ratings(&[(2, 900_000, 50)]), at(3)),
        None
    );
    assert_eq!(
        mon.observe_ratings(p(1), &ratings(&[(1, 0, 50)]), at(4)),
        None
    );
    // Exactly at the margin: transfer, ties among followers go to the lowest id.
    let tie = ratings(&[(1, 700_000, 50), (2, 900_000, 50), (3, 900_000, 50)]);
    assert_eq!(mon.observe_ratings(p(1), &tie, at(5)), Some(p(2)));
    // Equal nodes with a zero margin: no lag, no transfer.
    let mut zero = LeaderMonitor::new(MonitorConfig { margin: 0, ..cfg });
    let equal = ratings(&[(1, 500_000, 50), (2, 500_000, 50)]);
    assert_eq!(zero.observe_ratings(p(1), &equal, at(0)), None);
}

#[test]
fn a_new_leader_gets_the_grace_interval_and_a_failed_transfer_is_retried_later() {
    let cfg = MonitorConfig {
        sustain: Duration::from_secs(1),
        min_interval: Duration::from_secs(100),
        ..MonitorConfig::default()
    };
    let mut mon = LeaderMonitor::new(cfg);
    let r = ratings(&[(1, 100_000, 50), (2, 900_000, 50), (3, 100_000, 50)]);
    assert_eq!(mon.observe_ratings(p(1), &r, at(0)), None);
    assert_eq!(mon.observe_ratings(p(1), &r, at(99_999)), None);
    assert_eq!(mon.observe_ratings(p(1), &r, at(100_000)), Some(p(2)));
    // The transfer did not happen: leader 1 is still in charge. Retry only after min_interval.
    assert_eq!(mon.observe_ratings(p(1), &r, at(150_000)), None);
    assert_eq!(mon.observe_ratings(p(1), &r, at(160_000)), None);
    assert_eq!(mon.observe_ratings(p(1), &r, at(200_000)), Some(p(2)));
    // An election elsewhere made 3 leader: it gets its own grace from first sight.
    assert_eq!(mon.observe_ratings(p(3), &r, at(400_000)), None);
    assert_eq!(mon.lagging_since(), Some(at(400_000)));
    assert_eq!(mon.observe_ratings(p(3), &r, at(499_999)), None);
    assert_eq!(mon.observe_ratings(p(3), &r, at(500_000)), Some(p(2)));
}

#[test]
fn the_monitor_is_deterministic() {
    let run = || {
        let mut h = Harness::new(5, 1, ScoringConfig::default(), MonitorConfig::default());
        h.run(0, 30 * MIN, |id, leader, t, tick| {
            if id == leader && (t / 90_000) % 3 != 0 {
                done(500 + tick % 97)
            } else {
                follower(id, tick)
            }
        });
        h.transfers
    };
    assert_eq!(run(), run());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn snapshot() -> impl Strategy<Value = Snapshot> {
        (
            0u32..1_000,
            0u32..1_000,
            0u32..1_000,
            0u32..1_000,
            proptest::option::of((0u64..10_000_000, 0u64..10_000_000)),
        )
            .prop_map(|(completed, timeouts, blamed, aborted, lat)| {
                let (p50, p95) = match lat {
                    Some((a, b)) => (Some(ms(a.min(b))), Some(ms(a.max(b)))),
                    None => (None, None),
                };
                Snapshot {
                    completed,
                    timeouts,
                    blamed,
                    aborted,
                    p50,
                    p95,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// In range; one more failure of any kind never raises the score; a slower p95 never
        /// raises it.
        #[test]
        fn score_is_in_range_and_monotone(snap in snapshot(), extra in 1u64..1_000_000) {
            let s = score(&snap, HALF);
            prop_assert!(s <= Score::MAX);
            for worse in [
                Snapshot { timeouts: snap.timeouts + 1, ..snap },
                Snapshot { blamed: snap.blamed + 1, ..snap },
                Snapshot { aborted: snap.aborted + 1, ..snap },
                Snapshot { p95: snap.p95.map(|d| d + ms(extra)), ..snap },
            ] {
                prop_assert!(score(&worse, HALF) <= s, "{:?} vs {:?}", worse, snap);
            }
        }
    }
}
