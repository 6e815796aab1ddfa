//! Heap-based PIFO (push-in first-out) queue.

use std::time::{Duration, Instant};

use super::dheap::DHeap;
use super::table::{Entry, Table};
use super::{Scheduler, StreamClass};
use crate::shared::StreamId;

/// The rank of a ready stream, packed into integers so that comparing two ranks is two
/// integer comparisons: smaller ranks are served first.
///
/// `(hi, seq)` where `hi` holds the priority in its top 8 bits and the deadline in the
/// low 56 bits, as nanoseconds after the scheduler's [`RankBase`] ("no deadline" is the
/// largest value, after every deadline), and `seq` is the stream's arrival sequence. So
/// the order is: most urgent priority first; within a priority the earliest deadline,
/// streams without one last; then first come, first served. The arrival sequence is
/// unique, so ranks never tie. [`SortedListAbs`](super::SortedListAbs) uses the same rank.
pub(crate) type Rank = (u64, u64);

/// Deadline field of [`Rank`] meaning "no deadline".
const NO_DEADLINE: u64 = (1 << 56) - 1;

/// The origin of the deadline field of [`Rank`]: one hour before the first time the
/// scheduler saw (so that deadlines given as slightly past instants keep their order).
/// 56 bits of nanoseconds span 2.28 years; deadlines earlier than the base rank as the
/// base, later than the span as the end of the span — both far outside what a transport
/// deadline means, and in both cases the arrival order still breaks the tie.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RankBase(Option<Instant>);

impl RankBase {
    /// Fixes the base on first use.
    pub(crate) fn observe(&mut self, now: Instant) {
        if self.0.is_none() {
            self.0 = Some(now.checked_sub(Duration::from_secs(3600)).unwrap_or(now));
        }
    }

    /// The rank of a stream entry.
    pub(crate) fn rank<X>(&self, e: &Entry<X>) -> Rank {
        let deadline = match (e.deadline, self.0) {
            (None, _) => NO_DEADLINE,
            (Some(d), Some(base)) => {
                let ns = d.saturating_duration_since(base).as_nanos();
                u64::try_from(ns).unwrap_or(u64::MAX).min(NO_DEADLINE - 1)
            }
            // not reached: every entry is opened through `observe`
            (Some(_), None) => 0,
        };
        ((u64::from(e.class.priority) << 56) | deadline, e.seq())
    }
}

/// Per-stream PIFO state: the `hi` half of the rank of the stream's live heap entry.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Live(u64);

/// A heap entry: 24 bytes, ordered by rank alone, as one 128-bit integer. Two entries
/// with equal ranks are copies for the same stream (the rank contains the stream's
/// unique arrival sequence), so ignoring the id loses nothing.
#[derive(Debug, Clone, Copy)]
struct Item {
    rank: Rank,
    id: StreamId,
}

impl Item {
    fn key(&self) -> u128 {
        (u128::from(self.rank.0) << 64) | u128::from(self.rank.1)
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
    }
}

impl Eq for Item {}

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Push-in first-out: ready streams sit in a 4-ary heap keyed by a rank — priority,
/// then deadline, then arrival — so push and pop are O(log n) however many streams there
/// are (the programmable-scheduler abstraction of Sivaraman et al., SIGCOMM 2016, as the
/// heap the seed work used for thousands of streams).
///
/// The ranks are packed integers (priority | deadline, arrival) so a heap entry is 24 bytes and a comparison
/// is two integer compares. The hot path — serve the top stream, then it finishes or
/// blocks — pops it eagerly. Any other removal (a stream that is not at the top closes,
/// blocks or is re-ranked) is **lazy**: its entry stays and is recognised as stale when
/// it reaches the top, because the stream is no longer ready or its rank differs. While
/// the heap holds no stale entry (entries = ready streams), `next` is a plain peek with
/// no table lookup. When stale entries outnumber live ones (plus a small slack) the heap
/// is rebuilt from the live streams in O(n), so memory stays O(ready streams) and the
/// cost amortised O(log n).
///
/// A stream that stays ready while it sends keeps its rank, so the common
/// `next`/`on_sent(still_ready = true)` cycle costs no heap operation at all.
#[derive(Debug, Clone)]
pub struct Pifo {
    table: Table<Live>,
    heap: DHeap<Item>,
    /// Number of ready streams. Every ready stream has at least one heap entry with its
    /// current rank, so `heap.len() == live` means the heap holds no stale entry.
    live: usize,
    base: RankBase,
}

/// Stale entries tolerated beyond the number of live ones before a rebuild.
const SLACK: usize = 32;

impl Pifo {
    /// An empty scheduler.
    pub fn new() -> Self {
        Pifo {
            table: Table::new(),
            heap: DHeap::new(),
            live: 0,
            base: RankBase::default(),
        }
    }

    /// Whether `item` is the entry of a ready stream with its current rank.
    fn is_live(&self, item: &Item) -> bool {
        self.table
            .get(item.id)
            .is_some_and(|e| e.ready && self.base.rank(e) == item.rank)
    }

    fn maybe_compact(&mut self) {
        if self.heap.len() > self.live.saturating_mul(2).saturating_add(SLACK) {
            let base = self.base;
            let live: Vec<_> = self
                .table
                .iter()
                .filter(|(_, e)| e.ready)
                .map(|(id, e)| Item {
                    rank: base.rank(e),
                    id,
                })
                .collect();
            self.heap = DHeap::from_vec(live);
        }
    }

    /// `id` stopped being ready (it was ready, with rank `rank`): pops its entry if it is
    /// the top one, else leaves it to lazy deletion.
    fn unready(&mut self, id: StreamId, rank: Rank) {
        self.live = self.live.saturating_sub(1);
        if self
            .heap
            .peek()
            .is_some_and(|top| top.id == id && top.rank == rank)
        {
            self.heap.pop();
        } else {
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
        self.base.observe(now);
        let base = self.base;
        let (e, _) = self.table.open(id, class, now);
        if e.ready {
            let rank = base.rank(e);
            if rank.0 != e.extra.0 {
                // re-ranked: the old entry becomes stale
                e.extra = Live(rank.0);
                self.heap.push(Item { rank, id });
                self.maybe_compact();
            }
        }
    }

    fn set_class(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        self.on_open(id, class, now);
    }

    fn on_ready(&mut self, id: StreamId, _now: Instant) {
        let base = self.base;
        if let Some(e) = self.table.mark_ready(id) {
            let rank = base.rank(e);
            e.extra = Live(rank.0);
            self.live += 1;
            self.heap.push(Item { rank, id });
            self.maybe_compact();
        }
    }

    fn on_sent(&mut self, id: StreamId, _bytes: usize, still_ready: bool, now: Instant) {
        if still_ready {
            self.on_ready(id, now);
        } else {
            self.on_blocked(id);
        }
    }

    fn on_blocked(&mut self, id: StreamId) {
        let base = self.base;
        if let Some(e) = self.table.mark_unready(id) {
            let rank = base.rank(e);
            self.unready(id, rank);
        }
    }

    fn on_closed(&mut self, id: StreamId) {
        if let Some(e) = self.table.remove(id) {
            if e.ready {
                let rank = self.base.rank(&e);
                self.unready(id, rank);
            }
        }
    }

    fn next(&mut self, _now: Instant) -> Option<StreamId> {
        while let Some(top) = self.heap.peek() {
            let top = *top;
            if self.heap.len() == self.live || self.is_live(&top) {
                return Some(top.id);
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
