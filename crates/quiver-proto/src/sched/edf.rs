//! Earliest deadline first, with optional hard deadlines.

use std::time::Instant;

use super::class::DeadlineKey;
use super::keyed::{is_past, Expiry, KEntry, Keyed};
use super::{Scheduler, StreamClass};
use crate::shared::StreamId;

type Key = (DeadlineKey, u64);

fn key(e: &mut KEntry<Key>) -> Key {
    (e.deadline_key(), e.seq())
}

/// Earliest deadline first: the ready stream with the earliest deadline is served; streams
/// without a deadline come after every stream with one; ties (equal or no deadlines) are
/// served first come, first served by arrival sequence. O(log n) per operation.
///
/// Two modes:
/// - **hard** ([`Edf::hard`], `"edf"`): a stream whose deadline passes before it is closed
///   is never served again and is reported by [`poll_expired`](Scheduler::poll_expired);
///   the connection resets it with [`DEADLINE_EXCEEDED_CODE`](super::DEADLINE_EXCEEDED_CODE).
///   This holds whether the stream is ready, blocked on flow control or has not written
///   anything yet. A deadline passes *at* its instant. Changing the class of a stream
///   whose deadline has already passed does not revive it.
/// - **soft** ([`Edf::soft`], `"edf-soft"`): deadlines only order streams; a late stream
///   is still served (first, being the most overdue).
#[derive(Debug, Clone)]
pub struct Edf {
    k: Keyed<Key>,
    expiry: Expiry,
    drop: bool,
}

impl Edf {
    /// EDF; `drop` selects hard deadlines (expired streams are dropped).
    pub fn new(drop: bool) -> Self {
        Edf {
            k: Keyed::new(),
            expiry: Expiry::default(),
            drop,
        }
    }

    /// Hard EDF: streams past their deadline are dropped.
    pub fn hard() -> Self {
        Self::new(true)
    }

    /// Soft EDF: deadlines only reorder.
    pub fn soft() -> Self {
        Self::new(false)
    }

    /// Whether this is hard EDF.
    pub fn drops(&self) -> bool {
        self.drop
    }
}

impl Scheduler for Edf {
    fn name(&self) -> &'static str {
        if self.drop {
            "edf"
        } else {
            "edf-soft"
        }
    }

    fn on_open(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        let old = match self.k.table.get(id) {
            Some(e) if self.drop && (e.expired || is_past(e.deadline, now)) => {
                // Too late: the stream is dead whatever its new class says.
                self.k.expire(id);
                return;
            }
            Some(e) => e.deadline,
            None => None,
        };
        self.k.open(id, class, now, key);
        if self.drop {
            let new = self.k.table.get(id).and_then(|e| e.deadline);
            self.expiry.update(id, old, new);
        }
    }

    fn set_class(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        self.on_open(id, class, now);
    }

    fn on_ready(&mut self, id: StreamId, _now: Instant) {
        self.k.ready(id, key);
    }

    fn on_sent(&mut self, id: StreamId, _bytes: usize, still_ready: bool, _now: Instant) {
        if still_ready {
            self.k.ready(id, key);
        } else {
            self.k.unready(id);
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

    fn at(t: Instant, ms: u64) -> StreamClass {
        StreamClass::new().with_deadline(Deadline::At(t + Duration::from_millis(ms)))
    }

    #[test]
    fn earliest_deadline_first_then_fcfs() {
        let t = t0();
        let mut s = Edf::soft();
        s.on_open(sid(0), &StreamClass::new(), t); // no deadline
        s.on_open(sid(1), &at(t, 30), t);
        s.on_open(sid(2), &at(t, 10), t);
        s.on_open(sid(3), &StreamClass::new(), t); // no deadline
        s.on_open(sid(4), &at(t, 10), t); // same deadline as 2, arrives later
        for i in [0, 3, 1, 4, 2] {
            s.on_ready(sid(i), t);
        }
        assert_eq!(drain(&mut s, t), [4, 2, 1, 0, 3].map(sid).to_vec());
    }

    #[test]
    fn after_open_deadlines() {
        let t = t0();
        let mut s = Edf::soft();
        s.on_open(sid(0), &StreamClass::deadline(Duration::from_millis(50)), t);
        let later = t + Duration::from_millis(30);
        s.on_open(
            sid(1),
            &StreamClass::deadline(Duration::from_millis(50)),
            later,
        );
        s.on_open(
            sid(2),
            &StreamClass::deadline(Duration::from_millis(10)),
            later,
        );
        for i in 0..3 {
            s.on_ready(sid(i), later);
        }
        // deadlines: 0 → 50ms, 1 → 80ms, 2 → 40ms
        assert_eq!(drain(&mut s, later), [2, 0, 1].map(sid).to_vec());
    }

    #[test]
    fn hard_mode_drops_expired_streams() {
        let t = t0();
        let mut s = Edf::hard();
        s.on_open(sid(0), &at(t, 10), t);
        s.on_open(sid(1), &at(t, 20), t);
        s.on_open(sid(2), &StreamClass::new(), t);
        s.on_open(sid(3), &at(t, 15), t); // never becomes ready
        for i in 0..3 {
            s.on_ready(sid(i), t);
        }
        assert_eq!(s.next_expiry(), Some(t + Duration::from_millis(10)));
        assert_eq!(s.poll_expired(t), None);
        assert_eq!(s.next(t), Some(sid(0)));
        s.on_sent(sid(0), 1200, true, t);

        // virtual clock: 12 ms later stream 0 missed its deadline
        let t12 = t + Duration::from_millis(12);
        assert_eq!(s.next(t12), Some(sid(1)), "expired stream is not served");
        assert_eq!(s.poll_expired(t12), Some(sid(0)));
        assert_eq!(s.poll_expired(t12), None);
        assert_eq!(s.next_expiry(), Some(t + Duration::from_millis(15)));
        s.on_sent(sid(1), 1200, true, t12);
        s.on_ready(sid(0), t12); // late notifications for a dropped stream are ignored
        s.on_closed(sid(0));

        // 15 ms: stream 3 expires although it never had data to send
        let t15 = t + Duration::from_millis(15);
        assert_eq!(s.poll_expired(t15), Some(sid(3)));
        s.on_sent(sid(1), 1200, false, t15); // 1 finished in time
        s.on_closed(sid(1));
        assert_eq!(s.next_expiry(), None);
        let t99 = t + Duration::from_millis(99);
        assert_eq!(s.poll_expired(t99), None);
        assert_eq!(drain(&mut s, t99), vec![sid(2)]);
    }

    #[test]
    fn hard_deadline_passes_at_its_instant() {
        let t = t0();
        let mut s = Edf::hard();
        s.on_open(sid(0), &at(t, 10), t);
        s.on_ready(sid(0), t);
        let d = t + Duration::from_millis(10);
        assert_eq!(s.next(d - Duration::from_nanos(1)), Some(sid(0)));
        assert_eq!(s.next(d), None);
        assert_eq!(s.poll_expired(d), Some(sid(0)));
    }

    #[test]
    fn hard_mode_class_change() {
        let t = t0();
        let mut s = Edf::hard();
        s.on_open(sid(0), &at(t, 10), t);
        s.on_open(sid(1), &at(t, 10), t);
        s.on_ready(sid(0), t);
        s.on_ready(sid(1), t);
        // in time: the deadline of 0 is extended, 1's removed
        let t5 = t + Duration::from_millis(5);
        s.set_class(sid(0), &at(t, 100), t5);
        s.set_class(sid(1), &StreamClass::new(), t5);
        assert_eq!(s.next_expiry(), Some(t + Duration::from_millis(100)));
        let t50 = t + Duration::from_millis(50);
        assert_eq!(s.poll_expired(t50), None);
        assert_eq!(s.next(t50), Some(sid(0)));
        // too late: changing the class does not revive a stream
        let t200 = t + Duration::from_millis(200);
        s.set_class(sid(0), &at(t, 1000), t200);
        assert_eq!(s.next(t200), Some(sid(1)));
        assert_eq!(s.poll_expired(t200), Some(sid(0)));
    }

    #[test]
    fn soft_mode_only_reorders() {
        let t = t0();
        let mut s = Edf::soft();
        s.on_open(sid(0), &at(t, 10), t);
        s.on_open(sid(1), &at(t, 5), t);
        s.on_open(sid(2), &StreamClass::new(), t);
        for i in 0..3 {
            s.on_ready(sid(i), t);
        }
        let late = t + Duration::from_secs(1);
        assert_eq!(s.next_expiry(), None);
        assert_eq!(s.poll_expired(late), None);
        assert_eq!(drain(&mut s, late), [1, 0, 2].map(sid).to_vec());
        assert_eq!(s.name(), "edf-soft");
    }

    #[test]
    fn retransmission_keeps_place_among_equal_deadlines() {
        let t = t0();
        let mut s = Edf::soft();
        for i in 0..3 {
            s.on_open(sid(i), &at(t, 10), t);
            s.on_ready(sid(i), t);
        }
        assert_eq!(s.next(t), Some(sid(0)));
        s.on_sent(sid(0), 1200, false, t);
        assert_eq!(s.next(t), Some(sid(1)));
        s.on_sent(sid(1), 1200, true, t);
        s.on_ready(sid(0), t); // lost data of 0
        assert_eq!(drain(&mut s, t), [0, 1, 2].map(sid).to_vec());
    }
}
