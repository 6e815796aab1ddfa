//! Absolute (strict) priority.

use super::keyed::{keyed_scheduler, KEntry, Keyed};

type Key = (u8, u64);

fn key(e: &mut KEntry<Key>) -> Key {
    (e.class.priority, e.seq())
}

/// Absolute priority: the ready stream with the most urgent
/// [`priority`](crate::sched::StreamClass::priority) (0 first) is served; within one priority, first
/// come, first served by arrival sequence, each stream drained before the next.
/// Ignores deadlines and levels.
///
/// The ready set is ordered by (priority, arrival) in one B-tree, which is a set of
/// per-priority FIFO queues in which a stream that becomes ready again (a retransmission)
/// goes back to its original place rather than to the tail. O(log n) per operation. A
/// priority change of a ready stream takes effect immediately.
#[derive(Debug, Clone)]
pub struct Abs {
    k: Keyed<Key>,
}

impl Abs {
    /// An empty scheduler.
    pub fn new() -> Self {
        Abs { k: Keyed::new() }
    }
}

impl Default for Abs {
    fn default() -> Self {
        Self::new()
    }
}

keyed_scheduler!(Abs, "abs", key);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;
    use crate::sched::{Scheduler, StreamClass};

    fn prio(p: u8) -> StreamClass {
        StreamClass::new().with_priority(p)
    }

    #[test]
    fn strict_priority_fifo_within_level() {
        let t = t0();
        let mut s = Abs::new();
        let prios = [(0, 2), (1, 0), (2, 2), (3, 1), (4, 0), (5, 2), (6, 1)];
        for (i, p) in prios {
            s.on_open(sid(i), &prio(p), t);
        }
        for i in [5, 0, 6, 1, 2, 3, 4] {
            s.on_ready(sid(i), t);
        }
        // priority 0: 1, 4; priority 1: 6, 3; priority 2: 5, 0, 2 (in order of readiness)
        assert_eq!(
            run(&mut s, t, 2),
            [1, 1, 4, 4, 6, 6, 3, 3, 5, 5, 0, 0, 2, 2].map(sid).to_vec()
        );
    }

    #[test]
    fn urgent_arrival_preempts() {
        let t = t0();
        let mut s = Abs::new();
        s.on_open(sid(0), &prio(5), t);
        s.on_ready(sid(0), t);
        assert_eq!(serve(&mut s, t, 2), vec![sid(0), sid(0)]);
        s.on_open(sid(1), &prio(1), t);
        s.on_ready(sid(1), t);
        assert_eq!(run(&mut s, t, 1), vec![sid(1), sid(0)]);
    }

    #[test]
    fn priority_change_reorders_ready_stream() {
        let t = t0();
        let mut s = Abs::new();
        for i in 0..3 {
            s.on_open(sid(i), &prio(3), t);
            s.on_ready(sid(i), t);
        }
        s.set_class(sid(2), &prio(0), t);
        s.set_class(sid(0), &prio(9), t);
        // a change back keeps the original arrival order within the level
        s.set_class(sid(0), &prio(3), t);
        assert_eq!(drain(&mut s, t), [2, 0, 1].map(sid).to_vec());
    }

    #[test]
    fn retransmission_keeps_place_in_fifo() {
        let t = t0();
        let mut s = Abs::new();
        for i in 0..3 {
            s.on_open(sid(i), &prio(1), t);
            s.on_ready(sid(i), t);
        }
        assert_eq!(s.next(t), Some(sid(0)));
        s.on_sent(sid(0), 1200, false, t);
        s.on_sent(sid(1), 1200, true, t);
        s.on_ready(sid(0), t);
        assert_eq!(drain(&mut s, t), [0, 1, 2].map(sid).to_vec());
    }
}
