//! A clock-free workload that measures what schedulers cost to manage: `quiver bench
//! sched-ops` and the criterion bench `sched` time its phases.
//!
//! The phases keep `n` streams ready and exercise one kind of operation each, so a
//! caller that times a phase and divides by the calls it reports gets the per-call cost
//! *with `n` ready streams*:
//!
//! | [`Phase`] | per step | models |
//! |---|---|---|
//! | `Insert` | `on_open`, `on_ready` of a new stream | requests arriving: the seed's class mix (real-time: priority 0, deadline 1 s; free: priority 1, 2 s; long: priority 1, 7 s), one every 100 µs, deadline = arrival + class deadline |
//! | `Serve` | `next`, `on_sent(still_ready = true)` | one packet of the head stream, which still has data |
//! | `Churn` | `next`, `on_sent(false)`, `on_closed`, then `on_open`, `on_ready` of a new stream with a random class | a stream completes and another arrives (the "hold" model: random priority 0–7, half with a deadline 1–2 s out) |
//! | `Reinsert` | `next`, `on_sent(false)`, `set_class` (random), `on_ready` | the head stream is re-ranked and becomes ready again (new data, lost data, class change) |
//! | `Drain` | `next`, `on_sent(false)`, `on_closed` until nothing is ready | the end of the run |
//!
//! Every call passes the same `now` (the `start` given to [`OpsBench::new`]) and every
//! deadline lies at least 1 s after it, so nothing expires and every scheduler — hard
//! deadline or not — serves the same set. The random classes come from a fixed seed, so
//! every scheduler sees the same sequence.

use std::time::{Duration, Instant};

use super::{Deadline, Scheduler, SchedulerFactory, SchedulerKind, StreamClass};
use crate::shared::{Dir, Side, StreamId};

/// A phase of [`OpsBench`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// New streams arrive and become ready.
    Insert,
    /// The head stream sends a packet and stays ready.
    Serve,
    /// The head stream completes; a new one arrives.
    Churn,
    /// The head stream is re-ranked and becomes ready again.
    Reinsert,
    /// Everything is served and closed.
    Drain,
}

impl Phase {
    /// Every phase, in the order [`ops_workload`] runs them.
    pub const ALL: [Phase; 5] = [
        Phase::Insert,
        Phase::Serve,
        Phase::Churn,
        Phase::Reinsert,
        Phase::Drain,
    ];

    /// A short lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Insert => "insert",
            Phase::Serve => "serve",
            Phase::Churn => "churn",
            Phase::Reinsert => "reinsert",
            Phase::Drain => "drain",
        }
    }
}

/// The benchmark state: one scheduler and the streams it knows.
pub struct OpsBench {
    sched: Box<dyn Scheduler>,
    rng: SplitMix64,
    start: Instant,
    /// Index of the next new stream.
    next_index: u64,
    /// Arrivals so far (for the insert phase's arrival times).
    arrivals: u64,
}

impl std::fmt::Debug for OpsBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsBench")
            .field("scheduler", &self.sched.name())
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

/// Gap between arrivals in the insert phase.
const ARRIVAL_GAP: Duration = Duration::from_micros(100);

impl OpsBench {
    /// A fresh scheduler of `kind`; `start` is the `now` of every call.
    pub fn new(kind: SchedulerKind, start: Instant) -> Self {
        OpsBench {
            sched: kind.build(),
            rng: SplitMix64(0x5157_4956_4552_5343),
            start,
            next_index: 0,
            arrivals: 0,
        }
    }

    fn id(i: u64) -> StreamId {
        StreamId::new(Side::Client, Dir::Bi, i)
    }

    /// The seed's class mix, deadline counted from the arrival.
    fn arrival_class(&mut self) -> StreamClass {
        let at = ARRIVAL_GAP.saturating_mul(u32::try_from(self.arrivals).unwrap_or(u32::MAX));
        self.arrivals += 1;
        let (priority, level, deadline) = match self.rng.next() % 3 {
            0 => (0, 0, Duration::from_secs(1)),
            1 => (1, 1, Duration::from_secs(2)),
            _ => (1, 1, Duration::from_secs(7)),
        };
        let class = StreamClass::new().with_priority(priority).with_level(level);
        match self.start.checked_add(at + deadline) {
            Some(d) => class.with_deadline(Deadline::At(d)),
            None => class,
        }
    }

    /// A random class: priority 0–7, level 0–3, half with a deadline 1–2 s out.
    fn random_class(&mut self) -> StreamClass {
        let r = self.rng.next();
        let c = StreamClass::new()
            .with_priority((r & 7) as u8)
            .with_level(((r >> 3) & 3) as u8);
        let ms = 1000 + (r >> 6) % 1000;
        match self.start.checked_add(Duration::from_millis(ms)) {
            Some(d) if (r >> 5) & 1 == 1 => c.with_deadline(Deadline::At(d)),
            _ => c,
        }
    }

    fn open_new(&mut self, class: &StreamClass) -> usize {
        let id = Self::id(self.next_index);
        self.next_index += 1;
        self.sched.on_open(id, class, self.start);
        self.sched.on_ready(id, self.start);
        2
    }

    /// Runs `steps` steps of `phase` (`Drain` ignores `steps` and runs until nothing is
    /// ready); returns the number of scheduler calls made.
    pub fn run(&mut self, phase: Phase, steps: usize) -> usize {
        let now = self.start;
        let mut calls = 0;
        match phase {
            Phase::Insert => {
                for _ in 0..steps {
                    let c = self.arrival_class();
                    calls += self.open_new(&c);
                }
            }
            Phase::Serve => {
                for _ in 0..steps {
                    calls += 1;
                    let Some(s) = self.sched.next(now) else { break };
                    self.sched.on_sent(s, 1200, true, now);
                    calls += 1;
                }
            }
            Phase::Churn => {
                for _ in 0..steps {
                    calls += 1;
                    if let Some(s) = self.sched.next(now) {
                        self.sched.on_sent(s, 1200, false, now);
                        self.sched.on_closed(s);
                        calls += 2;
                    }
                    let c = self.random_class();
                    calls += self.open_new(&c);
                }
            }
            Phase::Reinsert => {
                for _ in 0..steps {
                    calls += 1;
                    let Some(s) = self.sched.next(now) else { break };
                    self.sched.on_sent(s, 1200, false, now);
                    let c = self.random_class();
                    self.sched.set_class(s, &c, now);
                    self.sched.on_ready(s, now);
                    calls += 3;
                }
            }
            Phase::Drain => loop {
                calls += 1;
                let Some(s) = self.sched.next(now) else { break };
                self.sched.on_sent(s, 1200, false, now);
                self.sched.on_closed(s);
                calls += 2;
            },
        }
        calls
    }
}

/// Every phase of [`OpsBench`] in order, `n` steps each (insert `n` streams, serve `n`
/// packets, `n` churn steps, `n` re-inserts, drain); returns the number of scheduler
/// calls, which is `16n + 1`.
pub fn ops_workload(kind: SchedulerKind, n: usize, start: Instant) -> usize {
    let mut bench = OpsBench::new(kind, start);
    Phase::ALL.iter().map(|&p| bench.run(p, n)).sum()
}

/// Small deterministic generator (splitmix64).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_keep_the_ready_set() {
        let t = Instant::now();
        for kind in SchedulerKind::ALL {
            let mut b = OpsBench::new(kind, t);
            assert_eq!(b.run(Phase::Insert, 50), 100, "{kind}");
            assert_eq!(b.run(Phase::Serve, 10), 20, "{kind}");
            assert_eq!(b.run(Phase::Churn, 10), 50, "{kind}");
            assert_eq!(b.run(Phase::Reinsert, 10), 40, "{kind}");
            // still 50 ready streams: each is closed once
            assert_eq!(b.run(Phase::Drain, 0), 3 * 50 + 1, "{kind}");
            assert_eq!(b.run(Phase::Serve, 5), 1, "{kind}: nothing ready");
        }
    }
}
