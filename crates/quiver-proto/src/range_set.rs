//! A set of `u64` values stored as disjoint, non-adjacent half-open ranges.
//!
//! Used for received packet numbers (ACK generation, RFC 9000 §13.2), stream reassembly
//! bookkeeping (which offsets have arrived) and lost-range bookkeeping in send buffers.
//!
//! Invariant: for any two stored ranges `a` before `b`, `a.end < b.start` (there is at
//! least one missing value between them) and every stored range is non-empty. Hence
//! the stored ranges are the unique canonical representation of the set.
//!
//! Values are `u64`, but because ranges are half-open the value `u64::MAX` itself cannot
//! be a member; QUIC quantities (packet numbers, offsets) are all below 2^62.

use std::collections::btree_map;
use std::collections::BTreeMap;
use std::ops::Range;

/// A set of `u64` stored as sorted, disjoint, non-adjacent half-open ranges.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RangeSet {
    /// start -> end (exclusive).
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add every value in `range`. Adjacent and overlapping ranges are merged.
    ///
    /// Returns `true` if at least one value was not already present.
    pub fn insert(&mut self, range: Range<u64>) -> bool {
        if range.is_empty() {
            return false;
        }
        let mut start = range.start;
        let mut end = range.end;
        // The range starting at or before `start`, if it touches ours, absorbs it.
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= end {
                // Already fully covered.
                return false;
            }
            if e >= start {
                // Overlapping or adjacent: merge.
                start = s;
                self.map.remove(&s);
            }
        }
        // Absorb every range starting inside (start, end] (adjacent ranges included).
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            end = end.max(e);
            self.map.remove(&s);
        }
        self.map.insert(start, end);
        // The input was not contained in one stored range, and stored ranges have gaps
        // between them, so something new was added.
        true
    }

    /// Add a single value. Returns `true` if it was not already present.
    ///
    /// `u64::MAX` cannot be represented (ranges are half-open) and is ignored.
    pub fn insert_one(&mut self, x: u64) -> bool {
        match x.checked_add(1) {
            Some(end) => self.insert(x..end),
            None => false,
        }
    }

    /// Remove every value in `range`. Returns `true` if anything was removed.
    pub fn remove(&mut self, range: Range<u64>) -> bool {
        if range.is_empty() {
            return false;
        }
        let mut removed = false;
        // A range starting before `range.start` may overlap its beginning (and even
        // extend past its end, in which case it is split in two).
        if let Some((&s, &e)) = self.map.range(..range.start).next_back() {
            if e > range.start {
                removed = true;
                self.map.insert(s, range.start);
                if e > range.end {
                    self.map.insert(range.end, e);
                    return true;
                }
            }
        }
        // Ranges starting inside `range`.
        while let Some((&s, &e)) = self.map.range(range.start..range.end).next() {
            removed = true;
            self.map.remove(&s);
            if e > range.end {
                self.map.insert(range.end, e);
                break;
            }
        }
        removed
    }

    /// Remove every value present in `other`.
    pub fn subtract(&mut self, other: &RangeSet) {
        for r in other.iter() {
            self.remove(r);
        }
    }

    /// Add every value present in `other`.
    pub fn union_with(&mut self, other: &RangeSet) {
        for r in other.iter() {
            self.insert(r);
        }
    }

    /// Whether `x` is in the set.
    pub fn contains(&self, x: u64) -> bool {
        self.map
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &e)| e > x)
    }

    /// Whether every value of `range` is in the set (an empty range is always contained).
    pub fn contains_range(&self, range: Range<u64>) -> bool {
        if range.is_empty() {
            return true;
        }
        self.map
            .range(..=range.start)
            .next_back()
            .is_some_and(|(_, &e)| e >= range.end)
    }

    /// Smallest value in the set.
    pub fn min(&self) -> Option<u64> {
        self.map.keys().next().copied()
    }

    /// Largest value in the set (the last range's `end - 1`).
    pub fn max(&self) -> Option<u64> {
        self.map.values().next_back().map(|&e| e - 1)
    }

    /// Number of disjoint ranges (not the number of values; see [`RangeSet::count`]).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Number of values in the set (saturating at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.map
            .iter()
            .fold(0u64, |acc, (&s, &e)| acc.saturating_add(e - s))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The ranges in ascending order; `.rev()` gives them newest first.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.map.iter(),
        }
    }

    /// Every value in ascending order.
    pub fn elts(&self) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.iter().flatten()
    }

    /// The lowest range without removing it.
    pub fn peek_min(&self) -> Option<Range<u64>> {
        self.map.iter().next().map(|(&s, &e)| s..e)
    }

    /// The highest range without removing it.
    pub fn peek_max(&self) -> Option<Range<u64>> {
        self.map.iter().next_back().map(|(&s, &e)| s..e)
    }

    /// Remove and return the lowest range.
    pub fn pop_min(&mut self) -> Option<Range<u64>> {
        self.map.pop_first().map(|(s, e)| s..e)
    }

    /// Remove and return the highest range.
    pub fn pop_max(&mut self) -> Option<Range<u64>> {
        self.map.pop_last().map(|(s, e)| s..e)
    }

    /// Remove every value.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

impl std::fmt::Debug for RangeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Extend<Range<u64>> for RangeSet {
    fn extend<T: IntoIterator<Item = Range<u64>>>(&mut self, iter: T) {
        for r in iter {
            self.insert(r);
        }
    }
}

impl FromIterator<Range<u64>> for RangeSet {
    fn from_iter<T: IntoIterator<Item = Range<u64>>>(iter: T) -> Self {
        let mut s = RangeSet::new();
        s.extend(iter);
        s
    }
}

impl<'a> IntoIterator for &'a RangeSet {
    type Item = Range<u64>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the ranges of a [`RangeSet`], ascending (reversible).
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    inner: btree_map::Iter<'a, u64, u64>,
}

impl Iterator for Iter<'_> {
    type Item = Range<u64>;
    fn next(&mut self) -> Option<Range<u64>> {
        self.inner.next().map(|(&s, &e)| s..e)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Range<u64>> {
        self.inner.next_back().map(|(&s, &e)| s..e)
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Check the structural invariant and that the set equals the model.
    fn check(set: &RangeSet, model: &BTreeSet<u64>) -> Result<(), TestCaseError> {
        let mut prev_end: Option<u64> = None;
        for r in set.iter() {
            prop_assert!(r.start < r.end, "empty range {:?}", r);
            if let Some(pe) = prev_end {
                prop_assert!(pe < r.start, "ranges touch or overlap: {:?}", set);
            }
            prev_end = Some(r.end);
        }
        let elts: Vec<u64> = set.elts().collect();
        let want: Vec<u64> = model.iter().copied().collect();
        prop_assert_eq!(elts, want);
        prop_assert_eq!(set.min(), model.first().copied());
        prop_assert_eq!(set.max(), model.last().copied());
        prop_assert_eq!(set.count(), model.len() as u64);
        prop_assert_eq!(set.is_empty(), model.is_empty());
        Ok(())
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Range<u64>),
        Remove(Range<u64>),
        PopMin,
        PopMax,
        Subtract(Vec<Range<u64>>),
    }

    fn small_range() -> impl Strategy<Value = Range<u64>> {
        (0u64..200, 0u64..20).prop_map(|(s, l)| s..s + l)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => small_range().prop_map(Op::Insert),
            3 => small_range().prop_map(Op::Remove),
            1 => Just(Op::PopMin),
            1 => Just(Op::PopMax),
            1 => proptest::collection::vec(small_range(), 0..4).prop_map(Op::Subtract),
        ]
    }

    proptest! {
        // Deterministic: a fixed seed, no regression files.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5e70f),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn matches_btreeset_model(ops in proptest::collection::vec(op(), 0..60)) {
            let mut set = RangeSet::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(r) => {
                        let new = r.clone().any(|x| !model.contains(&x));
                        model.extend(r.clone());
                        prop_assert_eq!(set.insert(r), new);
                    }
                    Op::Remove(r) => {
                        let had = r.clone().any(|x| model.contains(&x));
                        for x in r.clone() {
                            model.remove(&x);
                        }
                        prop_assert_eq!(set.remove(r), had);
                    }
                    Op::PopMin => {
                        let got = set.pop_min();
                        if let Some(r) = &got {
                            for x in r.clone() {
                                prop_assert!(model.remove(&x));
                            }
                            // The range was maximal: its end is not in the model.
                            prop_assert!(!model.contains(&r.end));
                            prop_assert!(model.first().is_none_or(|&m| m > r.end));
                        } else {
                            prop_assert!(model.is_empty());
                        }
                    }
                    Op::PopMax => {
                        let got = set.pop_max();
                        if let Some(r) = &got {
                            for x in r.clone() {
                                prop_assert!(model.remove(&x));
                            }
                            prop_assert!(model.last().is_none_or(|&m| m + 1 < r.start));
                        } else {
                            prop_assert!(model.is_empty());
                        }
                    }
                    Op::Subtract(rs) => {
                        let other: RangeSet = rs.iter().cloned().collect();
                        for r in rs {
                            for x in r {
                                model.remove(&x);
                            }
                        }
                        set.subtract(&other);
                    }
                }
                check(&set, &model)?;
            }
            for x in 0..230 {
                prop_assert_eq!(set.contains(x), model.contains(&x));
            }
            for r in [0..5, 10..40, 100..101, 7..7] {
                let want = r.clone().all(|x| model.contains(&x));
                prop_assert_eq!(set.contains_range(r), want);
            }
            let fwd: Vec<_> = set.iter().collect();
            let mut back: Vec<_> = set.iter().rev().collect();
            back.reverse();
            prop_assert_eq!(fwd, back);
        }
    }

    #[test]
    fn merges_adjacent() {
        let mut s = RangeSet::new();
        assert!(s.insert(0..2));
        assert!(s.insert(4..6));
        assert_eq!(s.len(), 2);
        assert!(s.insert_one(2));
        assert!(s.insert_one(3));
        assert_eq!(s.len(), 1);
        assert_eq!(s.peek_min(), Some(0..6));
        assert!(!s.insert(1..5));
        assert!(!s.insert_one(5));
        assert!(!s.insert_one(u64::MAX));
        assert!(s.remove(2..3));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0..2, 3..6]);
        assert!(!s.remove(2..3));
        assert_eq!(s.max(), Some(5));
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.max(), None);
    }

    #[test]
    fn extreme_values() {
        let mut s = RangeSet::new();
        assert!(s.insert(u64::MAX - 3..u64::MAX));
        assert!(s.insert(0..1));
        assert_eq!(s.max(), Some(u64::MAX - 1));
        assert!(s.remove(0..u64::MAX));
        assert!(s.is_empty());
    }
}
