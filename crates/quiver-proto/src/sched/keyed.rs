//! A ready set ordered by a policy-defined key, and a deadline index for hard expiry.
//!
//! Most policies are "serve the ready stream with the smallest key": FCFS (arrival),
//! EDF (deadline, arrival), ABS (priority, arrival), RR (round, arrival), ML (level, ...).
//! [`Keyed`] keeps the stream table and a `BTreeMap` from key to stream, so insertion,
//! removal and re-keying are O(log n) and `first` is O(log n). Every key contains the
//! stream's unique arrival sequence, so keys never collide.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::class::StreamClass;
use super::table::{Entry, Table};
use crate::shared::StreamId;

/// `impl Scheduler` for a policy that is nothing but "serve the ready stream with the
/// smallest key": `$ty` has a `k: Keyed<_>` field and `$key` computes a stream's key
/// from its entry (FCFS: arrival; ABS: priority, arrival).
macro_rules! keyed_scheduler {
    ($ty:ty, $name:literal, $key:path) => {
        impl $crate::sched::Scheduler for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn on_open(
                &mut self,
                id: $crate::shared::StreamId,
                class: &$crate::sched::StreamClass,
                now: ::std::time::Instant,
            ) {
                self.k.open(id, class, now, $key);
            }

            fn set_class(
                &mut self,
                id: $crate::shared::StreamId,
                class: &$crate::sched::StreamClass,
                now: ::std::time::Instant,
            ) {
                self.k.open(id, class, now, $key);
            }

            fn on_ready(&mut self, id: $crate::shared::StreamId, _now: ::std::time::Instant) {
                self.k.ready(id, $key);
            }

            fn on_sent(
                &mut self,
                id: $crate::shared::StreamId,
                _bytes: usize,
                still_ready: bool,
                _now: ::std::time::Instant,
            ) {
                if still_ready {
                    self.k.ready(id, $key);
                } else {
                    self.k.unready(id);
                }
            }

            fn on_blocked(&mut self, id: $crate::shared::StreamId) {
                self.k.unready(id);
            }

            fn on_closed(&mut self, id: $crate::shared::StreamId) {
                self.k.close(id);
            }

            fn next(&mut self, _now: ::std::time::Instant) -> Option<$crate::shared::StreamId> {
                self.k.first().map(|(_, id)| id)
            }
        }
    };
}

pub(crate) use keyed_scheduler;

/// Policy state kept per stream by [`Keyed`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot<K> {
    /// The key under which the stream is in the ready set, if it is.
    key: Option<K>,
    /// Round-robin round in which the stream is next due (RR and ML only).
    pub(crate) round: u64,
}

impl<K> Default for Slot<K> {
    fn default() -> Self {
        Slot {
            key: None,
            round: 0,
        }
    }
}

/// The stream entry type used by keyed schedulers.
pub(crate) type KEntry<K> = Entry<Slot<K>>;

/// Stream table plus ready set ordered by `K`.
#[derive(Debug, Clone)]
pub(crate) struct Keyed<K> {
    pub(crate) table: Table<Slot<K>>,
    set: BTreeMap<K, StreamId>,
}

impl<K: Ord + Copy> Keyed<K> {
    pub(crate) fn new() -> Self {
        Keyed {
            table: Table::new(),
            set: BTreeMap::new(),
        }
    }

    /// Registers `id` or changes its class; a ready stream is re-keyed with `key`.
    pub(crate) fn open(
        &mut self,
        id: StreamId,
        class: &StreamClass,
        now: Instant,
        key: impl FnOnce(&mut KEntry<K>) -> K,
    ) {
        let (e, _) = self.table.open(id, class, now);
        if let Some(old) = e.extra.key.take() {
            self.set.remove(&old);
            let k = key(e);
            e.extra.key = Some(k);
            self.set.insert(k, id);
        }
    }

    /// Makes `id` ready. No-op if unknown, already ready or expired.
    pub(crate) fn ready(&mut self, id: StreamId, key: impl FnOnce(&mut KEntry<K>) -> K) {
        if let Some(e) = self.table.mark_ready(id) {
            let k = key(e);
            e.extra.key = Some(k);
            self.set.insert(k, id);
        }
    }

    /// Re-computes the key of a stream in the ready set (after its policy state changed).
    pub(crate) fn rekey(&mut self, id: StreamId, key: impl FnOnce(&mut KEntry<K>) -> K) {
        if let Some(e) = self.table.get_mut(id) {
            if let Some(old) = e.extra.key.take() {
                self.set.remove(&old);
                let k = key(e);
                e.extra.key = Some(k);
                self.set.insert(k, id);
            }
        }
    }

    /// Takes `id` out of the ready set. No-op if unknown or not ready.
    pub(crate) fn unready(&mut self, id: StreamId) {
        if let Some(e) = self.table.mark_unready(id) {
            if let Some(k) = e.extra.key.take() {
                self.set.remove(&k);
            }
        }
    }

    /// Forgets `id`, returning its entry if it was known.
    pub(crate) fn close(&mut self, id: StreamId) -> Option<KEntry<K>> {
        let e = self.table.remove(id)?;
        if let Some(k) = e.extra.key {
            self.set.remove(&k);
        }
        Some(e)
    }

    /// Marks `id` expired: out of the ready set for good, waiting for `poll_expired`.
    pub(crate) fn expire(&mut self, id: StreamId) {
        if let Some(e) = self.table.get_mut(id) {
            e.expired = true;
            if let Some(k) = e.extra.key.take() {
                self.set.remove(&k);
            }
        }
    }

    /// The ready stream with the smallest key.
    pub(crate) fn first(&self) -> Option<(K, StreamId)> {
        self.set.first_key_value().map(|(k, id)| (*k, *id))
    }

    /// The ready stream with the smallest key whose deadline has not passed. With `drop`,
    /// streams found past their deadline are expired on the way (each at most once, so
    /// this is amortised O(log n)); without it this is [`first`](Self::first).
    pub(crate) fn first_live(&mut self, now: Instant, drop: bool) -> Option<StreamId> {
        loop {
            let (_, id) = self.first()?;
            if drop && self.table.get(id).is_some_and(|e| is_past(e.deadline, now)) {
                self.expire(id);
                continue;
            }
            return Some(id);
        }
    }
}

/// Whether `deadline` has passed at `now`. A deadline is passed *at* its instant: data
/// sent then cannot arrive before it.
pub(crate) fn is_past(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| d <= now)
}

/// Index of every tracked stream with a deadline, for hard-deadline expiry.
///
/// A stream expires whether or not it is ready: a request whose data is stuck behind flow
/// control or has not been written yet misses its deadline just the same.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expiry {
    set: BTreeSet<(Instant, StreamId)>,
}

impl Expiry {
    /// Moves `id` from deadline `old` to `new` (either may be `None`).
    pub(crate) fn update(&mut self, id: StreamId, old: Option<Instant>, new: Option<Instant>) {
        if old == new {
            return;
        }
        if let Some(d) = old {
            self.set.remove(&(d, id));
        }
        if let Some(d) = new {
            self.set.insert((d, id));
        }
    }

    /// The earliest tracked deadline (possibly already passed).
    pub(crate) fn first(&self) -> Option<Instant> {
        self.set.first().map(|(d, _)| *d)
    }

    /// Forgets `id` in `k` and its deadline here (`on_closed` of a deadline scheduler).
    pub(crate) fn close<K: Ord + Copy>(&mut self, k: &mut Keyed<K>, id: StreamId) {
        if let Some(e) = k.close(id) {
            self.update(id, e.deadline, None);
        }
    }

    /// `poll_expired` of a deadline scheduler: with hard deadlines (`drop`), the next
    /// stream past its deadline at `now`, already forgotten in `k`.
    pub(crate) fn poll_expired<K: Ord + Copy>(
        &mut self,
        k: &mut Keyed<K>,
        drop: bool,
        now: Instant,
    ) -> Option<StreamId> {
        if !drop {
            return None;
        }
        let id = self.pop_past(now)?;
        k.close(id);
        Some(id)
    }

    /// `next_expiry` of a deadline scheduler: the earliest deadline with hard deadlines.
    pub(crate) fn next_expiry(&self, drop: bool) -> Option<Instant> {
        if drop {
            self.first()
        } else {
            None
        }
    }

    /// Removes and returns a stream whose deadline has passed at `now`.
    pub(crate) fn pop_past(&mut self, now: Instant) -> Option<StreamId> {
        let &(d, id) = self.set.first()?;
        if d <= now {
            self.set.pop_first();
            Some(id)
        } else {
            None
        }
    }
}
