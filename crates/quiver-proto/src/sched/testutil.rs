//! Helpers for scheduler tests.

use std::collections::HashMap;
use std::time::Instant;

use super::{Scheduler, StreamClass};
use crate::shared::StreamId;

/// A base instant; tests only use offsets from it, so they are deterministic.
pub(crate) fn t0() -> Instant {
    Instant::now()
}

/// Stream `i` (raw id).
pub(crate) fn sid(i: u64) -> StreamId {
    StreamId(i)
}

/// Opens the streams `ids` with the default class and makes them ready, in that order.
pub(crate) fn open_ready<S: Scheduler + ?Sized>(s: &mut S, ids: &[u64], t: Instant) {
    for &i in ids {
        s.on_open(sid(i), &StreamClass::new(), t);
        s.on_ready(sid(i), t);
    }
}

/// Serves until nothing is ready, every stream having `packets` packets to send; returns
/// the order of service.
pub(crate) fn run<S: Scheduler + ?Sized>(s: &mut S, t: Instant, packets: usize) -> Vec<StreamId> {
    let mut sent: HashMap<StreamId, usize> = HashMap::new();
    let mut order = vec![];
    while let Some(id) = s.next(t) {
        let n = sent.entry(id).or_default();
        *n += 1;
        order.push(id);
        s.on_sent(id, 1200, *n < packets, t);
        assert!(order.len() < 100_000, "scheduler does not drain");
    }
    order
}

/// Serves until nothing is ready, each stream sending one packet.
pub(crate) fn drain<S: Scheduler + ?Sized>(s: &mut S, t: Instant) -> Vec<StreamId> {
    run(s, t, 1)
}

/// Serves `n` packets from streams that always have more to send.
pub(crate) fn serve<S: Scheduler + ?Sized>(s: &mut S, t: Instant, n: usize) -> Vec<StreamId> {
    let mut order = vec![];
    for _ in 0..n {
        let Some(id) = s.next(t) else { break };
        order.push(id);
        s.on_sent(id, 1200, true, t);
    }
    order
}
