//! Multi-level scheduling: EDF on the top level, round robin below.

use std::time::Instant;

use super::class::DeadlineKey;
use super::keyed::{is_past, Expiry, KEntry, Keyed};
use super::rr::{rr_key, take_turn};
use super::{Scheduler, StreamClass};
use crate::shared::StreamId;

/// Order within one level.
#[derive(Debug, Copy, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum InLevel {
    /// Level 0: (deadline, arrival).
    Edf(DeadlineKey, u64),
    /// Other levels: (round, arrival).
    Rr(u64, u64),
}

type Key = (u8, InLevel);

/// Multi-level scheduler: streams are grouped by [`level`](StreamClass::level) and a
/// higher level (smaller number) always preempts a lower one — a level-0 stream that
/// becomes ready is served by the very next [`next`](Scheduler::next), whatever lower
/// levels were doing. Level 0 is served earliest deadline first (as [`Edf`](super::Edf),
/// FCFS among equal deadlines); every other level (up to 255 of them) is served round
/// robin (as [`RoundRobin`](super::RoundRobin), one packet per stream per turn, each level
/// with its own rotation, which resumes where it left off after a preemption).
///
/// With `drop` (`"ml"`), deadlines are hard as in hard EDF: **any** stream with a deadline,
/// at whatever level, that is not closed by its deadline is dropped and reported by
/// [`poll_expired`](Scheduler::poll_expired). Without (`"ml-soft"`), deadlines only order
/// level 0. Moving a stream to another level puts it at the current round of its new
/// level, keeping its arrival order. O(log n) per operation.
#[derive(Debug, Clone)]
pub struct MultiLevel {
    k: Keyed<Key>,
    expiry: Expiry,
    /// Current round of each level's rotation (index = level).
    rounds: Vec<u64>,
    drop: bool,
}

impl MultiLevel {
    /// A multi-level scheduler; `drop` selects hard deadlines.
    pub fn new(drop: bool) -> Self {
        MultiLevel {
            k: Keyed::new(),
            expiry: Expiry::default(),
            rounds: vec![0; 256],
            drop,
        }
    }
}

impl Default for MultiLevel {
    fn default() -> Self {
        Self::new(false)
    }
}

fn key(e: &mut KEntry<Key>, rounds: &[u64]) -> Key {
    let level = e.class.level;
    if level == 0 {
        (0, InLevel::Edf(e.deadline_key(), e.seq()))
    } else {
        let cur = rounds.get(usize::from(level)).copied().unwrap_or(0);
        let (round, seq) = rr_key(e, cur);
        (level, InLevel::Rr(round, seq))
    }
}

impl Scheduler for MultiLevel {
    fn name(&self) -> &'static str {
        if self.drop {
            "ml"
        } else {
            "ml-soft"
        }
    }

    fn on_open(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        let old = match self.k.table.get_mut(id) {
            Some(e) if self.drop && (e.expired || is_past(e.deadline, now)) => {
                self.k.expire(id);
                return;
            }
            Some(e) => {
                if e.class.level != class.level {
                    // rounds are only comparable within a level
                    e.extra.round = 0;
                }
                e.deadline
            }
            None => None,
        };
        let rounds = &self.rounds;
        self.k.open(id, class, now, |e| key(e, rounds));
        if self.drop {
            let new = self.k.table.get(id).and_then(|e| e.deadline);
            self.expiry.update(id, old, new);
        }
    }

    fn set_class(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        self.on_open(id, class, now);
    }

    fn on_ready(&mut self, id: StreamId, _now: Instant) {
        let rounds = &self.rounds;
        self.k.ready(id, |e| key(e, rounds));
    }

    fn on_sent(&mut self, id: StreamId, _bytes: usize, still_ready: bool, _now: Instant) {
        let Some(e) = self.k.table.get_mut(id) else {
            return;
        };
        let level = e.class.level;
        if level != 0 {
            if let Some(cur) = self.rounds.get_mut(usize::from(level)) {
                take_turn(e, cur);
            }
        }
        let was_ready = e.ready;
        let rounds = &self.rounds;
        if !still_ready {
            self.k.unready(id);
        } else if was_ready {
            self.k.rekey(id, |e| key(e, rounds));
        } else {
            self.k.ready(id, |e| key(e, rounds));
        }
    }

    fn on_blocked(&mut self, id: StreamId) {
        self.k.unready(id);
    }

    fn on_closed(&mut self, id: StreamId) {
        self.expiry.close(&mut self.k, id);
    }

    fn next(&mut self, now: Instant) -> Option<StreamId> {
        self.k.first_live(now, self.drop)
    }

    fn poll_expired(&mut self, now: Instant) -> Option<StreamId> {
        self.expiry.poll_expired(&mut self.k, self.drop, now)
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.expiry.next_expiry(self.drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;
    use crate::sched::Deadline;
    use std::time::Duration;

    fn lvl(l: u8) -> StreamClass {
        StreamClass::new().with_level(l)
    }

    fn edf(t: Instant, ms: u64) -> StreamClass {
        StreamClass::new().with_deadline(Deadline::At(t + Duration::from_millis(ms)))
    }

    #[test]
    fn level_zero_preempts_round_robin() {
        let t = t0();
        let mut s = MultiLevel::new(false);
        for i in 0..3 {
            s.on_open(sid(i), &lvl(1), t);
            s.on_ready(sid(i), t);
        }
        assert_eq!(serve(&mut s, t, 4), [0, 1, 2, 0].map(sid).to_vec());
        // an interactive stream arrives while level 1 is being served
        s.on_open(sid(9), &edf(t, 100), t);
        s.on_ready(sid(9), t);
        assert_eq!(s.next(t), Some(sid(9)));
        s.on_sent(sid(9), 1200, true, t);
        assert_eq!(s.next(t), Some(sid(9)));
        s.on_sent(sid(9), 1200, false, t);
        // level 1 resumes its rotation where it left off
        assert_eq!(serve(&mut s, t, 4), [1, 2, 0, 1].map(sid).to_vec());
    }

    #[test]
    fn level_zero_is_edf() {
        let t = t0();
        let mut s = MultiLevel::new(false);
        s.on_open(sid(0), &lvl(0), t); // level 0, no deadline
        s.on_open(sid(1), &edf(t, 50), t);
        s.on_open(sid(2), &edf(t, 20), t);
        s.on_open(sid(3), &lvl(2), t);
        s.on_open(sid(4), &lvl(1), t);
        for i in 0..5 {
            s.on_ready(sid(i), t);
        }
        assert_eq!(
            run(&mut s, t, 2),
            [2, 2, 1, 1, 0, 0, 4, 4, 3, 3].map(sid).to_vec()
        );
    }

    #[test]
    fn n_levels_each_preempts_the_next() {
        let t = t0();
        let mut s = MultiLevel::new(false);
        for (i, l) in [(0, 3), (1, 3), (2, 2), (3, 2), (4, 1)] {
            s.on_open(sid(i), &lvl(l), t);
            s.on_ready(sid(i), t);
        }
        assert_eq!(
            run(&mut s, t, 2),
            [4, 4, 2, 3, 2, 3, 0, 1, 0, 1].map(sid).to_vec()
        );
    }

    #[test]
    fn level_change() {
        let t = t0();
        let mut s = MultiLevel::new(false);
        for i in 0..3 {
            s.on_open(sid(i), &lvl(2), t);
            s.on_ready(sid(i), t);
        }
        assert_eq!(serve(&mut s, t, 2), [0, 1].map(sid).to_vec());
        s.set_class(sid(2), &lvl(1), t);
        assert_eq!(serve(&mut s, t, 2), [2, 2].map(sid).to_vec());
        s.set_class(sid(2), &lvl(2), t); // back: due in level 2's current round
        assert_eq!(serve(&mut s, t, 4), [2, 0, 1, 2].map(sid).to_vec());
    }

    #[test]
    fn hard_mode_expires_any_level() {
        let t = t0();
        let mut s = MultiLevel::new(true);
        s.on_open(sid(0), &edf(t, 10), t);
        s.on_open(sid(1), &edf(t, 20).with_level(1), t);
        s.on_open(sid(2), &lvl(1), t);
        for i in 0..3 {
            s.on_ready(sid(i), t);
        }
        assert_eq!(s.next_expiry(), Some(t + Duration::from_millis(10)));
        let t25 = t + Duration::from_millis(25);
        assert_eq!(s.next(t25), Some(sid(2)));
        assert_eq!(s.poll_expired(t25), Some(sid(0)));
        assert_eq!(s.poll_expired(t25), Some(sid(1)));
        assert_eq!(s.poll_expired(t25), None);
        assert_eq!(s.next_expiry(), None);
        assert_eq!(drain(&mut s, t25), vec![sid(2)]);
    }

    #[test]
    fn soft_mode_never_expires() {
        let t = t0();
        let mut s = MultiLevel::new(false);
        s.on_open(sid(0), &edf(t, 10), t);
        s.on_ready(sid(0), t);
        let late = t + Duration::from_secs(1);
        assert_eq!(s.poll_expired(late), None);
        assert_eq!(s.next_expiry(), None);
        assert_eq!(s.next(late), Some(sid(0)));
    }
}
