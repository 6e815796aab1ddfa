//! The outstanding sent packets of one packet-number space, indexed by packet number.
//!
//! Packet numbers are sent in increasing order and mostly acknowledged in that order, so
//! a ring of slots starting at the oldest outstanding number beats an ordered map: a
//! send is a push at the back, an acknowledgement a slot take plus trimming the front,
//! and a range of numbers maps to a range of slots. Numbers that were skipped or never
//! recorded leave empty slots.

use std::collections::VecDeque;
use std::ops::Range;

/// Sent packets by packet number (see the [module docs](self)).
#[derive(Debug, Clone)]
pub(crate) struct SentLog<P> {
    /// Packet number of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<(u64, P)>>,
    len: usize,
}

impl<P> Default for SentLog<P> {
    fn default() -> Self {
        Self {
            base: 0,
            slots: VecDeque::new(),
            len: 0,
        }
    }
}

/// Gaps larger than this between consecutive recorded numbers fall back to restarting
/// the ring (only possible when everything before was already removed).
const MAX_GAP: u64 = 1 << 16;

impl<P> SentLog<P> {
    /// Record `p` under `pn`, which must exceed every number recorded before. Returns
    /// `false` (and records nothing) otherwise, or if the gap to the last number cannot
    /// be represented.
    pub(crate) fn insert(&mut self, pn: u64, p: P) -> bool {
        if self.slots.is_empty() {
            self.base = pn;
        }
        let Some(offset) = pn.checked_sub(self.base) else {
            return false;
        };
        let end = self.base + self.slots.len() as u64;
        if pn < end {
            return false;
        }
        if pn - end > MAX_GAP {
            if self.len > 0 {
                return false;
            }
            self.slots.clear();
            self.base = pn;
            self.slots.push_back(Some((pn, p)));
            self.len = 1;
            return true;
        }
        let Ok(offset) = usize::try_from(offset) else {
            return false;
        };
        while self.slots.len() < offset {
            self.slots.push_back(None);
        }
        self.slots.push_back(Some((pn, p)));
        self.len += 1;
        true
    }

    /// Remove and return the packet recorded under `pn`.
    pub(crate) fn remove(&mut self, pn: u64) -> Option<P> {
        let i = usize::try_from(pn.checked_sub(self.base)?).ok()?;
        let (_, p) = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        self.trim();
        Some(p)
    }

    /// Remove the packets whose numbers are in `range`, in ascending order, appending
    /// them to `out`.
    pub(crate) fn remove_range(&mut self, range: Range<u64>, out: &mut Vec<(u64, P)>) {
        let (lo, hi) = self.slot_range(range);
        for slot in self.slots.range_mut(lo..hi) {
            if let Some(entry) = slot.take() {
                self.len -= 1;
                out.push(entry);
            }
        }
        self.trim();
    }

    /// Outstanding packets with numbers in `range`, ascending.
    pub(crate) fn range(&self, range: Range<u64>) -> impl Iterator<Item = (u64, &P)> {
        let (lo, hi) = self.slot_range(range);
        self.slots
            .range(lo..hi)
            .filter_map(|s| s.as_ref().map(|(pn, p)| (*pn, p)))
    }

    /// All outstanding packets, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &P)> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(pn, p)| (*pn, p)))
    }

    /// All outstanding packets, ascending, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut P)> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.as_mut().map(|(pn, p)| (*pn, p)))
    }

    /// Number of outstanding packets.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Forget everything.
    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.len = 0;
    }

    /// Slot indices covering the numbers in `range`.
    fn slot_range(&self, range: Range<u64>) -> (usize, usize) {
        let n = self.slots.len() as u64;
        let lo = range.start.saturating_sub(self.base).min(n);
        let hi = range.end.saturating_sub(self.base).min(n).max(lo);
        // Both ≤ slots.len(), which is a usize.
        (lo as usize, hi as usize)
    }

    /// Drop empty slots at the front.
    fn trim(&mut self) {
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.slots.is_empty() {
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Remove(u64),
        RemoveRange(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..5).prop_map(Op::Insert),
            (0u64..200).prop_map(Op::Remove),
            (0u64..200, 0u64..20).prop_map(|(a, l)| Op::RemoveRange(a, a + l)),
        ]
    }

    proptest! {
        /// The ring behaves exactly like an ordered map under any mix of increasing
        /// inserts (with gaps), removals and range removals.
        #[test]
        fn matches_a_btreemap(ops in proptest::collection::vec(op(), 0..300)) {
            let mut log = SentLog::default();
            let mut model = BTreeMap::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Insert(step) => {
                        next += step;
                        prop_assert!(log.insert(next, next * 10));
                        model.insert(next, next * 10);
                        prop_assert!(!log.insert(next, 0), "non-increasing insert refused");
                    }
                    Op::Remove(pn) => {
                        prop_assert_eq!(log.remove(pn), model.remove(&pn));
                    }
                    Op::RemoveRange(a, b) => {
                        let mut out = Vec::new();
                        log.remove_range(a..b, &mut out);
                        let expect: Vec<(u64, u64)> = model.range(a..b).map(|(k, v)| (*k, *v)).collect();
                        for (k, _) in &expect {
                            model.remove(k);
                        }
                        prop_assert_eq!(out, expect);
                    }
                }
                prop_assert_eq!(log.len(), model.len());
                let all: Vec<(u64, u64)> = log.iter().map(|(k, v)| (k, *v)).collect();
                let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(all, want);
                let part: Vec<u64> = log.range(next / 3..next / 2 + 1).map(|(k, _)| k).collect();
                let want: Vec<u64> = model.range(next / 3..next / 2 + 1).map(|(k, _)| *k).collect();
                prop_assert_eq!(part, want);
            }
        }
    }

    #[test]
    fn huge_gap_restarts_only_when_empty() {
        let mut log = SentLog::default();
        assert!(log.insert(5, ()));
        assert!(!log.insert(5 + MAX_GAP + 10, ()), "cannot span the gap");
        assert_eq!(log.remove(5), Some(()));
        assert!(log.insert(5 + MAX_GAP + 10, ()));
        assert_eq!(log.len(), 1);
        assert!(!log.insert(3, ()));
    }
}
