//! Heap-based PIFO (push-in first-out) queue.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::class::DeadlineKey;
use super::table::{Entry, Table};
use super::{Scheduler, StreamClass};
use crate::shared::StreamId;

/// The rank of a ready stream in a PIFO: smaller ranks are served first.
///
/// (priority, deadline, arrival): the most urgent priority first; within a priority the
/// earliest deadline, streams without one last; then first come, first served. The
/// arrival sequence is unique, so ranks never tie. [`SortedListAbs`](super::SortedListAbs)
/// uses the same rank.
pub(crate) type Rank = (u8, DeadlineKey, u64);

/// The rank of a stream entry.
pub(crate) fn rank<X>(e: &Entry<X>) -> Rank {
    (e.class.priority, e.deadline_key(), e.seq())
}

/// Per-stream PIFO state: the generation of the stream's live heap entry.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gen(u64);

/// Push-in first-out: ready streams sit in a binary heap keyed by a rank — priority,
/// then deadline, then arrival — so push and pop are O(log n) however many streams there
/// are (the programmable-scheduler abstraction of Sivaraman et al., SIGCOMM 2016, as the
/// heap the seed work used for thousands of streams).
///
/// A binary heap cannot remove an arbitrary element cheaply, so removal is **lazy**: a
/// stream that closes, blocks or is re-ranked (class change) leaves its heap entry behind,
/// and the entry is recognised as stale when it reaches the top — each stream carries the
/// generation number of its one live entry. A re-ranked ready stream is pushed again with
/// a new generation. When stale entries outnumber live ones (plus a small slack) the heap
/// is rebuilt from the live streams in O(n), so memory stays O(live streams) and the cost
/// stays amortised O(log n).
///
/// A stream that stays ready while it sends keeps its rank, so the common
/// `next`/`on_sent(still_ready = true)` cycle costs no heap operation at all.
#[derive(Debug, Clone)]
pub struct Pifo {
    table: Table<Gen>,
    heap: BinaryHeap<Reverse<(Rank, StreamId, u64)>>,
    /// Number of ready streams, i.e. live heap entries.
    live: usize,
    next_gen: u64,
}

/// Stale entries tolerated beyond the number of live ones before a rebuild.
const SLACK: usize = 32;

impl Pifo {
    /// An empty scheduler.
    pub fn new() -> Self {
        Pifo {
            table: Table::new(),
            heap: BinaryHeap::new(),
            live: 0,
            next_gen: 0,
        }
    }

    /// Pushes a fresh heap entry for the ready stream `id`.
    fn push(&mut self, id: StreamId) {
        let Some(e) = self.table.get_mut(id) else {
            return;
        };
        self.next_gen += 1;
        e.extra = Gen(self.next_gen);
        self.heap.push(Reverse((rank(e), id, self.next_gen)));
        self.maybe_compact();
    }

    fn is_live(&self, id: StreamId, gen: u64) -> bool {
        self.table
            .get(id)
            .is_some_and(|e| e.ready && e.extra.0 == gen)
    }

    fn maybe_compact(&mut self) {
        if self.heap.len() > self.live.saturating_mul(2).saturating_add(SLACK) {
            let live: Vec<_> = self
                .table
                .iter()
                .filter(|(_, e)| e.ready)
                .map(|(id, e)| Reverse((rank(e), id, e.extra.0)))
                .collect();
            self.heap = BinaryHeap::from(live);
        }
    }

    fn unready(&mut self, id: StreamId) {
        if self.table.mark_unready(id).is_some() {
            self.live = self.live.saturating_sub(1);
            self.maybe_compact();
        }
    }

    /// Heap entries, live and stale (for tests of the lazy deletion bound).
    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

impl Default for Pifo {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler for Pifo {
    fn name(&self) -> &'static str {
        "pifo"
    }

    fn on_open(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        let (e, _) = self.table.open(id, class, now);
        if e.ready {
            // re-rank: the old entry becomes stale
            self.push(id);
        }
    }

    fn set_class(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        self.on_open(id, class, now);
    }

    fn on_ready(&mut self, id: StreamId, _now: Instant) {
        if self.table.mark_ready(id).is_some() {
            self.live += 1;
            self.push(id);
        }
    }

    fn on_sent(&mut self, id: StreamId, _bytes: usize, still_ready: bool, now: Instant) {
        if still_ready {
            self.on_ready(id, now);
        } else {
            self.unready(id);
        }
    }

    fn on_blocked(&mut self, id: StreamId) {
        self.unready(id);
    }

    fn on_closed(&mut self, id: StreamId) {
        if let Some(e) = self.table.remove(id) {
            if e.ready {
                self.live = self.live.saturating_sub(1);
                self.maybe_compact();
            }
        }
    }

    fn next(&mut self, _now: Instant) -> Option<StreamId> {
        while let Some(Reverse((_, id, gen))) = self.heap.peek() {
            let (id, gen) = (*id, *gen);
            if self.is_live(id, gen) {
                return Some(id);
            }
            self.heap.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;
    use crate::sched::Deadline;
    use std::time::Duration;

    #[test]
    fn rank_order() {
        let t = t0();
        let mut s = Pifo::new();
        let d = |ms| Deadline::At(t + Duration::from_millis(ms));
        let classes = [
            StreamClass::new().with_priority(1),
            StreamClass::new().with_priority(0),
            StreamClass::new().with_priority(1).with_deadline(d(20)),
            StreamClass::new().with_priority(1).with_deadline(d(10)),
            StreamClass::new().with_priority(2).with_deadline(d(1)),
            StreamClass::new().with_priority(1),
        ];
        for (i, c) in classes.iter().enumerate() {
            s.on_open(sid(i as u64), c, t);
            s.on_ready(sid(i as u64), t);
        }
        assert_eq!(
            run(&mut s, t, 2),
            [1, 1, 3, 3, 2, 2, 0, 0, 5, 5, 4, 4].map(sid).to_vec()
        );
    }

    #[test]
    fn lazy_deletion_of_closed_and_reranked() {
        let t = t0();
        let mut s = Pifo::new();
        for i in 0..4 {
            s.on_open(sid(i), &StreamClass::new(), t);
            s.on_ready(sid(i), t);
        }
        s.on_closed(sid(0));
        s.set_class(sid(3), &StreamClass::new().with_priority(0), t);
        s.on_blocked(sid(1));
        s.on_ready(sid(1), t); // back, with its original arrival
        s.set_class(sid(3), &StreamClass::new().with_priority(9), t);
        s.set_class(sid(3), &StreamClass::new().with_priority(0), t);
        assert_eq!(drain(&mut s, t), [3, 1, 2].map(sid).to_vec());
        assert_eq!(s.next(t), None);
        assert_eq!(s.heap_len(), 0);
    }

    #[test]
    fn stale_entries_are_bounded() {
        let t = t0();
        let mut s = Pifo::new();
        for i in 0..10 {
            s.on_open(sid(i), &StreamClass::new(), t);
            s.on_ready(sid(i), t);
        }
        // re-rank without ever popping: stale entries pile up until a rebuild
        for round in 0..10_000u64 {
            let i = round % 10;
            let c = StreamClass::new().with_priority((round % 7) as u8);
            s.set_class(sid(i), &c, t);
            assert!(s.heap_len() <= 2 * 10 + SLACK + 1, "{}", s.heap_len());
        }
        // blocking everything without popping also compacts
        for i in 0..10 {
            s.on_blocked(sid(i));
        }
        assert!(s.heap_len() <= SLACK + 1);
        assert_eq!(s.next(t), None);
    }

    #[test]
    fn retransmission_keeps_place() {
        let t = t0();
        let mut s = Pifo::new();
        for i in 0..3 {
            s.on_open(sid(i), &StreamClass::new(), t);
            s.on_ready(sid(i), t);
        }
        s.on_sent(sid(0), 1200, false, t);
        s.on_sent(sid(1), 1200, true, t);
        s.on_ready(sid(0), t);
        assert_eq!(drain(&mut s, t), [0, 1, 2].map(sid).to_vec());
    }
}
