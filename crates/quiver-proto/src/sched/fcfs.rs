//! First come, first served.

use super::keyed::{keyed_scheduler, Keyed};

/// First come, first served: streams in the order they first became ready, each drained
/// before the next one gets a byte.
///
/// The order is the stream's arrival sequence (see the [module docs](super)), which it
/// keeps until it is closed: a stream that becomes ready again — new data after a pause,
/// or data declared lost — is served before every stream that arrived after it, as if it
/// had never left. Ignores the class. O(log n) per operation.
#[derive(Debug, Clone)]
pub struct Fcfs {
    k: Keyed<u64>,
}

impl Fcfs {
    /// An empty scheduler.
    pub fn new() -> Self {
        Fcfs { k: Keyed::new() }
    }
}

impl Default for Fcfs {
    fn default() -> Self {
        Self::new()
    }
}

fn key<X>(e: &mut super::table::Entry<X>) -> u64 {
    e.seq()
}

keyed_scheduler!(Fcfs, "fcfs", key);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;
    use crate::sched::{Scheduler, StreamClass};

    #[test]
    fn order_of_readiness_each_drained() {
        let t = t0();
        let mut s = Fcfs::new();
        for i in [3, 1, 2] {
            s.on_open(sid(i), &StreamClass::new().with_priority(i as u8), t);
        }
        s.on_ready(sid(2), t);
        s.on_ready(sid(3), t);
        s.on_ready(sid(1), t);
        // each stream sends 2 packets then is done
        assert_eq!(
            run(&mut s, t, 2),
            vec![sid(2), sid(2), sid(3), sid(3), sid(1), sid(1)]
        );
        assert_eq!(s.next(t), None);
    }

    #[test]
    fn retransmission_keeps_place() {
        let t = t0();
        let mut s = Fcfs::new();
        for i in 0..3 {
            s.on_open(sid(i), &StreamClass::new(), t);
            s.on_ready(sid(i), t);
        }
        // stream 0 sends everything
        assert_eq!(s.next(t), Some(sid(0)));
        s.on_sent(sid(0), 1200, false, t);
        assert_eq!(s.next(t), Some(sid(1)));
        s.on_sent(sid(1), 1200, true, t);
        // stream 0's packet is lost: it is ready again and goes first, not last
        s.on_ready(sid(0), t);
        assert_eq!(s.next(t), Some(sid(0)));
        s.on_sent(sid(0), 1200, false, t);
        assert_eq!(drain(&mut s, t), vec![sid(1), sid(2)]);
    }

    #[test]
    fn closed_stream_comes_back_as_new() {
        let t = t0();
        let mut s = Fcfs::new();
        open_ready(&mut s, &[0, 1], t);
        s.on_closed(sid(0));
        s.on_ready(sid(0), t); // late notification: ignored
        assert_eq!(s.next(t), Some(sid(1)));
        open_ready(&mut s, &[0], t); // reused id (misuse): a new arrival
        assert_eq!(drain(&mut s, t), vec![sid(1), sid(0)]);
    }

    #[test]
    fn misuse_does_not_panic() {
        let t = t0();
        let mut s = Fcfs::new();
        s.on_sent(sid(9), 10, false, t);
        s.on_blocked(sid(9));
        s.on_closed(sid(9));
        s.on_closed(sid(9));
        s.on_ready(sid(1), t); // never opened: ignored
        assert_eq!(s.next(t), None);
        open_ready(&mut s, &[1], t);
        s.on_ready(sid(1), t);
        s.on_open(sid(1), &StreamClass::new(), t); // opened twice: a class change
        assert_eq!(drain(&mut s, t), vec![sid(1)]);
        s.on_closed(sid(1));
        s.on_closed(sid(1));
        assert_eq!(s.next(t), None);
    }
}
