//! Per-stream bookkeeping shared by every scheduler.
//!
//! The table owns the rules that all policies agree on, so that each scheduler file is
//! only its ordering:
//! - **registration**: a stream is known from `on_open` (or `set_class`) until
//!   `on_closed` or its expiry; every other call for an unknown stream is ignored, so a
//!   late notification (say, a loss detected after the stream was reset) cannot bring a
//!   forgotten stream back;
//! - **arrival sequence**: a stream gets a sequence number the first time it becomes
//!   ready and keeps it until it is closed, so a stream that becomes ready again (new
//!   data after a pause, or a retransmission after loss) keeps its original place among
//!   equals instead of going to the back as if it were new;
//! - **deadline resolution**: [`Deadline::AfterOpen`](super::Deadline::AfterOpen) is
//!   resolved against the time the stream was opened (first seen).

use std::collections::{hash_map, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::class::{DeadlineKey, StreamClass};
use crate::shared::StreamId;

/// Everything the table knows about one stream. `X` is policy-specific state.
#[derive(Debug, Clone)]
pub(crate) struct Entry<X> {
    /// Current class.
    pub(crate) class: StreamClass,
    /// When the stream was opened (first seen).
    pub(crate) opened: Instant,
    /// `class.deadline` resolved against `opened`.
    pub(crate) deadline: Option<Instant>,
    /// Arrival sequence: assigned on first readiness, kept until closed.
    seq: Option<u64>,
    /// Whether the stream is in the scheduler's ready set.
    pub(crate) ready: bool,
    /// Whether the stream's deadline passed (hard-deadline schedulers only): it is never
    /// made ready again and waits to be reported by `poll_expired`.
    pub(crate) expired: bool,
    /// Policy-specific state.
    pub(crate) extra: X,
}

impl<X: Default> Entry<X> {
    fn new(class: &StreamClass, now: Instant) -> Self {
        Entry {
            class: *class,
            opened: now,
            deadline: class.deadline.and_then(|d| d.resolve(now)),
            seq: None,
            ready: false,
            expired: false,
            extra: X::default(),
        }
    }
}

impl<X> Entry<X> {
    /// The arrival sequence number (`u64::MAX` before the stream was first ready, which
    /// only happens for streams that are not in a ready set).
    pub(crate) fn seq(&self) -> u64 {
        self.seq.unwrap_or(u64::MAX)
    }

    /// The deadline as a sort key.
    pub(crate) fn deadline_key(&self) -> DeadlineKey {
        DeadlineKey(self.deadline)
    }
}

/// Stream table keyed by [`StreamId`].
#[derive(Debug, Clone)]
pub(crate) struct Table<X> {
    map: HashMap<StreamId, Entry<X>, BuildHasherDefault<IdHasher>>,
    next_seq: u64,
}

impl<X: Default> Table<X> {
    pub(crate) fn new() -> Self {
        Table {
            map: HashMap::default(),
            next_seq: 0,
        }
    }

    /// Registers a stream, or updates its class if it is already known. Returns the entry
    /// and whether it was newly inserted.
    pub(crate) fn open(
        &mut self,
        id: StreamId,
        class: &StreamClass,
        now: Instant,
    ) -> (&mut Entry<X>, bool) {
        match self.map.entry(id) {
            hash_map::Entry::Occupied(o) => {
                let e = o.into_mut();
                e.class = *class;
                e.deadline = class.deadline.and_then(|d| d.resolve(e.opened));
                (e, false)
            }
            hash_map::Entry::Vacant(v) => (v.insert(Entry::new(class, now)), true),
        }
    }

    /// Marks `id` ready and assigns its arrival sequence on first readiness. Returns the
    /// entry if it *became* ready; `None` if it is unknown, already ready or expired.
    pub(crate) fn mark_ready(&mut self, id: StreamId) -> Option<&mut Entry<X>> {
        let Some(e) = self.map.get_mut(&id) else {
            tracing::debug!(stream = %id, "scheduler: readiness of an unknown stream ignored");
            return None;
        };
        if e.ready || e.expired {
            return None;
        }
        e.ready = true;
        if e.seq.is_none() {
            e.seq = Some(self.next_seq);
            self.next_seq += 1;
        }
        Some(e)
    }

    /// Marks `id` not ready. Returns the entry if it *was* ready.
    pub(crate) fn mark_unready(&mut self, id: StreamId) -> Option<&mut Entry<X>> {
        let e = self.map.get_mut(&id)?;
        if !e.ready {
            return None;
        }
        e.ready = false;
        Some(e)
    }

    pub(crate) fn get(&self, id: StreamId) -> Option<&Entry<X>> {
        self.map.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: StreamId) -> Option<&mut Entry<X>> {
        self.map.get_mut(&id)
    }

    pub(crate) fn remove(&mut self, id: StreamId) -> Option<Entry<X>> {
        self.map.remove(&id)
    }

    /// Number of known streams.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// All known streams.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (StreamId, &Entry<X>)> {
        self.map.iter().map(|(id, e)| (*id, e))
    }
}

/// A fast hasher for stream IDs.
///
/// Stream IDs are not free-form attacker input: a peer can only open IDs below the
/// stream limits we advertise, and opening one opens every lower ID of its type
/// (RFC 9000 §2.1, §4.6), so they are dense and collision flooding is not a concern.
/// IDs of one type step by 4, so the low bits are mixed (a `splitmix64` finaliser) before
/// the map uses them as a bucket index.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = self.0.rotate_left(32) ^ x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::Deadline;
    use std::time::Duration;

    fn sid(i: u64) -> StreamId {
        StreamId(i)
    }

    #[test]
    fn seq_is_kept_across_readiness() {
        let now = Instant::now();
        let mut t = Table::<()>::new();
        t.open(sid(0), &StreamClass::default(), now);
        t.open(sid(4), &StreamClass::default(), now);
        assert!(t.mark_ready(sid(4)).is_some());
        assert!(t.mark_ready(sid(0)).is_some());
        assert!(t.mark_ready(sid(0)).is_none(), "double ready");
        assert!(t.mark_unready(sid(4)).is_some());
        assert!(t.mark_unready(sid(4)).is_none());
        assert!(t.mark_ready(sid(4)).is_some());
        assert_eq!(t.get(sid(4)).map(|e| e.seq()), Some(0));
        assert_eq!(t.get(sid(0)).map(|e| e.seq()), Some(1));
    }

    #[test]
    fn unknown_streams_are_ignored() {
        let mut t = Table::<()>::new();
        assert!(t.mark_unready(sid(8)).is_none());
        assert!(t.remove(sid(8)).is_none());
        assert!(t.mark_ready(sid(8)).is_none());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn after_open_deadline_resolves_against_open_time() {
        let t0 = Instant::now();
        let mut t = Table::<()>::new();
        let c = StreamClass::deadline(Duration::from_millis(10));
        t.open(sid(0), &c, t0);
        let later = t0 + Duration::from_secs(5);
        let c2 = StreamClass::new().with_deadline(Deadline::AfterOpen(Duration::from_millis(20)));
        let (e, new) = t.open(sid(0), &c2, later);
        assert!(!new);
        assert_eq!(e.deadline, Some(t0 + Duration::from_millis(20)));
    }

    #[test]
    fn hasher_spreads_stepped_ids() {
        let mut low = std::collections::HashSet::new();
        for i in 0..64u64 {
            let mut h = IdHasher::default();
            h.write_u64(i * 4);
            low.insert(h.finish() & 0xf);
        }
        assert!(low.len() > 12, "low bits poorly mixed: {}", low.len());
    }
}
