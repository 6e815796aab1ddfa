//! The sorted-list baseline for PIFO.

use std::collections::VecDeque;
use std::time::Instant;

use super::pifo::{Rank, RankBase};
use super::table::Table;
use super::{Scheduler, StreamClass};
use crate::shared::StreamId;

/// The seed work's baseline: the ready streams in a list kept sorted by rank (the same
/// (priority, deadline, arrival) rank as [`Pifo`](super::Pifo), so both serve the same
/// order), with O(n) insertion by linear scan and O(n) removal by linear search, like a
/// sorted linked list. Kept to measure what the heap buys; do not use it for large stream
/// counts.
#[derive(Debug, Clone)]
pub struct SortedListAbs {
    table: Table<()>,
    /// Ready streams, ascending rank: the front is served next.
    list: VecDeque<(Rank, StreamId)>,
    base: RankBase,
}

impl SortedListAbs {
    /// An empty scheduler.
    pub fn new() -> Self {
        SortedListAbs {
            table: Table::new(),
            list: VecDeque::new(),
            base: RankBase::default(),
        }
    }

    fn insert(&mut self, id: StreamId) {
        let Some(e) = self.table.get(id) else {
            return;
        };
        let r = self.base.rank(e);
        // linear scan, as in the baseline
        let pos = self
            .list
            .iter()
            .position(|(other, _)| *other > r)
            .unwrap_or(self.list.len());
        self.list.insert(pos, (r, id));
    }

    fn remove(&mut self, id: StreamId) {
        if let Some(pos) = self.list.iter().position(|(_, other)| *other == id) {
            self.list.remove(pos);
        }
    }
}

impl Default for SortedListAbs {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler for SortedListAbs {
    fn name(&self) -> &'static str {
        "sorted-abs"
    }

    fn on_open(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        self.base.observe(now);
        let (e, _) = self.table.open(id, class, now);
        if e.ready {
            self.remove(id);
            self.insert(id);
        }
    }

    fn set_class(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        self.on_open(id, class, now);
    }

    fn on_ready(&mut self, id: StreamId, _now: Instant) {
        if self.table.mark_ready(id).is_some() {
            self.insert(id);
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
        if self.table.mark_unready(id).is_some() {
            self.remove(id);
        }
    }

    fn on_closed(&mut self, id: StreamId) {
        if let Some(e) = self.table.remove(id) {
            if e.ready {
                self.remove(id);
            }
        }
    }

    fn next(&mut self, _now: Instant) -> Option<StreamId> {
        self.list.front().map(|(_, id)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn priority_then_arrival() {
        let t = t0();
        let mut s = SortedListAbs::new();
        for (i, p) in [(0, 2), (1, 1), (2, 2), (3, 0)] {
            s.on_open(sid(i), &StreamClass::new().with_priority(p), t);
            s.on_ready(sid(i), t);
        }
        s.on_closed(sid(1));
        s.on_closed(sid(1));
        assert_eq!(drain(&mut s, t), [3, 0, 2].map(sid).to_vec());
    }
}
