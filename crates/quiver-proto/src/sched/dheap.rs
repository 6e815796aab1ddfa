//! A 4-ary min-heap.
//!
//! Half the depth of a binary heap, and the four children of a node are adjacent in
//! memory (96 bytes for PIFO's 24-byte entries), so a pop touches fewer cache lines when
//! the heap outgrows the caches — which is where a binary heap's per-operation cost stops
//! being flat.

/// Children per node.
const D: usize = 4;

/// A min-heap: [`peek`](Self::peek) and [`pop`](Self::pop) give the smallest item.
#[derive(Debug, Clone)]
pub(crate) struct DHeap<T> {
    items: Vec<T>,
}

impl<T: Ord + Copy> DHeap<T> {
    /// An empty heap.
    pub(crate) const fn new() -> Self {
        DHeap { items: Vec::new() }
    }

    /// A heap of `items`, built in O(n).
    pub(crate) fn from_vec(items: Vec<T>) -> Self {
        let mut h = DHeap { items };
        let n = h.items.len();
        if n > 1 {
            for i in (0..=(n - 2) / D).rev() {
                h.sift_down(i);
            }
        }
        h
    }

    /// Number of items.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The smallest item.
    pub(crate) fn peek(&self) -> Option<&T> {
        self.items.first()
    }

    /// Adds an item: O(log n).
    pub(crate) fn push(&mut self, item: T) {
        let mut i = self.items.len();
        self.items.push(item);
        while i > 0 {
            let parent = (i - 1) / D;
            let p = self.items[parent];
            if p <= item {
                break;
            }
            self.items[i] = p;
            i = parent;
        }
        self.items[i] = item;
    }

    /// Removes and returns the smallest item: O(log n).
    pub(crate) fn pop(&mut self) -> Option<T> {
        let last = self.items.pop()?;
        if self.items.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.items[0], last);
        self.sift_down(0);
        Some(top)
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.items.len();
        let item = self.items[i];
        loop {
            let first = i * D + 1;
            if first >= n {
                break;
            }
            let end = (first + D).min(n);
            let mut best = first;
            for c in first + 1..end {
                if self.items[c] < self.items[best] {
                    best = c;
                }
            }
            if self.items[best] >= item {
                break;
            }
            self.items[i] = self.items[best];
            i = best;
        }
        self.items[i] = item;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    proptest! {
        /// Same answers as the standard library's heap on any push/pop script.
        #[test]
        fn matches_binary_heap(
            init in proptest::collection::vec(0u32..50, 0..40),
            ops in proptest::collection::vec(proptest::option::of(0u32..50), 0..300),
        ) {
            let mut ours = DHeap::from_vec(init.clone());
            let mut std_heap: BinaryHeap<Reverse<u32>> = init.into_iter().map(Reverse).collect();
            for op in ops {
                match op {
                    Some(x) => { ours.push(x); std_heap.push(Reverse(x)); }
                    None => prop_assert_eq!(ours.pop(), std_heap.pop().map(|r| r.0)),
                }
                prop_assert_eq!(ours.peek().copied(), std_heap.peek().map(|r| r.0));
                prop_assert_eq!(ours.len(), std_heap.len());
            }
        }
    }
}
