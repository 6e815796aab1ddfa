//! A minimal set of disjoint `u64` ranges, private to the stream manager.
//!
//! `crate::range_set` is being written in parallel for ACK ranges; this one only needs
//! what the send buffer wants (acked and lost byte ranges) and keeps adjacent ranges merged.

use std::collections::BTreeMap;
use std::ops::Range;

/// Disjoint, non-adjacent half-open ranges keyed by start offset.
#[derive(Debug, Default, Clone)]
pub(crate) struct RangeSet {
    /// start → end; invariant: ranges are non-empty, disjoint and never adjacent.
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// Whether the set holds no range.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The lowest range.
    pub(crate) fn first(&self) -> Option<Range<u64>> {
        self.map.iter().next().map(|(&s, &e)| s..e)
    }

    /// Remove and return the lowest range.
    pub(crate) fn pop_first(&mut self) -> Option<Range<u64>> {
        self.map.pop_first().map(|(s, e)| s..e)
    }

    /// Number of ranges (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Insert `r`, merging with neighbours. Returns how many of its values were new.
    pub(crate) fn insert(&mut self, r: Range<u64>) -> u64 {
        if r.is_empty() {
            return 0;
        }
        let mut overlap = 0;
        let (mut start, mut end) = (r.start, r.end);
        if let Some((&s, &e)) = self.map.range(..=r.start).next_back() {
            if e >= r.start {
                if e >= r.end {
                    return 0;
                }
                overlap += e - r.start;
                start = s;
                self.map.remove(&s);
            }
        }
        // Every remaining range that starts inside or right after `start..end` merges.
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            self.map.remove(&s);
            overlap += e.min(r.end).saturating_sub(s.max(r.start));
            end = end.max(e);
        }
        self.map.insert(start, end);
        (r.end - r.start) - overlap
    }

    /// Remove every value of `r` from the set.
    pub(crate) fn remove(&mut self, r: Range<u64>) {
        if r.is_empty() {
            return;
        }
        if let Some((&s, &e)) = self.map.range(..r.start).next_back() {
            if e > r.start {
                self.map.insert(s, r.start);
                if e > r.end {
                    self.map.insert(r.end, e);
                    return;
                }
            }
        }
        while let Some((&s, &e)) = self.map.range(r.start..r.end).next() {
            self.map.remove(&s);
            if e > r.end {
                self.map.insert(r.end, e);
            }
        }
    }

    /// The parts of `r` that are *not* in the set, in increasing order.
    pub(crate) fn gaps_within(&self, r: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        if r.is_empty() {
            return out;
        }
        let mut cur = r.start;
        let before = self
            .map
            .range(..r.start)
            .next_back()
            .filter(|(_, &e)| e > r.start);
        for (&s, &e) in before.into_iter().chain(self.map.range(r.start..r.end)) {
            if s > cur {
                out.push(cur..s);
            }
            cur = cur.max(e);
            if cur >= r.end {
                break;
            }
        }
        if cur < r.end {
            out.push(cur..r.end);
        }
        out
    }

    /// Iterate the ranges in increasing order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn model_of(set: &RangeSet) -> BTreeSet<u64> {
        set.iter().flatten().collect()
    }

    #[test]
    fn merge_adjacent_and_count_new() {
        let mut s = RangeSet::default();
        assert_eq!(s.insert(0..10), 10);
        assert_eq!(s.insert(10..20), 10);
        assert_eq!(s.len(), 1);
        assert_eq!(s.insert(5..25), 5);
        assert_eq!(s.insert(30..40), 10);
        assert_eq!(s.insert(0..50), 15);
        assert_eq!(s.first(), Some(0..50));
        s.remove(10..20);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..10, 20..50]);
        assert_eq!(s.gaps_within(5..60), vec![10..20, 50..60]);
    }

    proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec((any::<bool>(), 0u64..64, 0u64..16), 0..40)) {
            let mut set = RangeSet::default();
            let mut model = BTreeSet::new();
            for (ins, start, len) in ops {
                let r = start..start + len;
                if ins {
                    let new = r.clone().filter(|x| !model.contains(x)).count() as u64;
                    prop_assert_eq!(set.insert(r.clone()), new);
                    model.extend(r);
                } else {
                    let gaps: Vec<u64> = set.gaps_within(r.clone()).into_iter().flatten().collect();
                    let expect: Vec<u64> = r.clone().filter(|x| !model.contains(x)).collect();
                    prop_assert_eq!(gaps, expect);
                    set.remove(r.clone());
                    for x in r { model.remove(&x); }
                }
                prop_assert_eq!(model_of(&set), model.clone());
                // Invariant: disjoint and non-adjacent.
                let v: Vec<_> = set.iter().collect();
                for w in v.windows(2) {
                    prop_assert!(w[0].end < w[1].start);
                }
            }
        }
    }
}
