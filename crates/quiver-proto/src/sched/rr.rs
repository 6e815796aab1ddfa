//! Round robin, one packet per stream per turn.

use std::time::Instant;

use super::keyed::{KEntry, Keyed};
use super::{Scheduler, StreamClass};
use crate::shared::StreamId;

/// Round robin: each ready stream gets one packet's worth (one [`next`](Scheduler::next)
/// followed by [`on_sent`](Scheduler::on_sent)) per turn. Ignores the class.
///
/// Implemented with rounds rather than a rotating queue, which is what lets a stream keep
/// its place: every stream carries the round in which it is next due, and the ready set
/// is ordered by (round, arrival sequence). Serving a stream moves it to the next round;
/// a stream that becomes ready again (new data, or a retransmission after loss) is due in
/// the current round if it has not had its turn in it yet — at its original position —
/// and otherwise in the next round. So no stream gets two turns in one round by going
/// idle and coming back, and none loses its turn by being briefly blocked.
/// O(log n) per operation.
#[derive(Debug, Clone)]
pub struct RoundRobin {
    k: Keyed<(u64, u64)>,
    /// The round being served: the round of the last stream that sent.
    current: u64,
}

impl RoundRobin {
    /// An empty scheduler.
    pub fn new() -> Self {
        RoundRobin {
            k: Keyed::new(),
            current: 0,
        }
    }
}

impl Default for RoundRobin {
    fn default() -> Self {
        Self::new()
    }
}

/// Key of a stream that is (re-)entering the ready set while round `current` is served.
pub(crate) fn rr_key<K>(e: &mut KEntry<K>, current: u64) -> (u64, u64) {
    e.extra.round = e.extra.round.max(current);
    (e.extra.round, e.seq())
}

/// Accounts one turn of the stream `e` in a rotation whose current round is `current`.
pub(crate) fn take_turn<K>(e: &mut KEntry<K>, current: &mut u64) {
    let due = e.extra.round.max(*current);
    *current = due;
    e.extra.round = due.saturating_add(1);
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn on_open(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        let cur = self.current;
        self.k.open(id, class, now, |e| rr_key(e, cur));
    }

    fn set_class(&mut self, id: StreamId, class: &StreamClass, now: Instant) {
        self.on_open(id, class, now);
    }

    fn on_ready(&mut self, id: StreamId, _now: Instant) {
        let cur = self.current;
        self.k.ready(id, |e| rr_key(e, cur));
    }

    fn on_sent(&mut self, id: StreamId, _bytes: usize, still_ready: bool, _now: Instant) {
        let Some(e) = self.k.table.get_mut(id) else {
            return;
        };
        take_turn(e, &mut self.current);
        let (was_ready, cur) = (e.ready, self.current);
        if !still_ready {
            self.k.unready(id);
        } else if was_ready {
            self.k.rekey(id, |e| rr_key(e, cur));
        } else {
            self.k.ready(id, |e| rr_key(e, cur));
        }
    }

    fn on_blocked(&mut self, id: StreamId) {
        self.k.unready(id);
    }

    fn on_closed(&mut self, id: StreamId) {
        self.k.close(id);
    }

    fn next(&mut self, _now: Instant) -> Option<StreamId> {
        self.k.first().map(|(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::*;

    #[test]
    fn one_packet_per_stream_per_turn() {
        let t = t0();
        let mut s = RoundRobin::new();
        for i in 0..3 {
            s.on_open(sid(i), &StreamClass::new(), t);
            s.on_ready(sid(i), t);
        }
        assert_eq!(
            run(&mut s, t, 3),
            [0, 1, 2, 0, 1, 2, 0, 1, 2].map(sid).to_vec()
        );
    }

    #[test]
    fn fairness_counts() {
        let t = t0();
        let mut s = RoundRobin::new();
        open_ready(&mut s, &[0, 1, 2, 3, 4], t);
        let order = serve(&mut s, t, 1000);
        for i in 0..5 {
            assert_eq!(order.iter().filter(|x| **x == sid(i)).count(), 200);
        }
        // and no stream is ever served twice before every other had a turn
        for w in order.chunks(5) {
            let mut w = w.to_vec();
            w.sort();
            assert_eq!(w, (0..5).map(sid).collect::<Vec<_>>());
        }
    }

    #[test]
    fn newcomer_and_short_streams() {
        let t = t0();
        let mut s = RoundRobin::new();
        open_ready(&mut s, &[0, 1], t);
        assert_eq!(s.next(t), Some(sid(0)));
        s.on_sent(sid(0), 1200, true, t);
        // a newcomer has not had a turn in this round: served after stream 1
        open_ready(&mut s, &[2], t);
        assert_eq!(serve(&mut s, t, 6), [1, 2, 0, 1, 2, 0].map(sid).to_vec());
    }

    #[test]
    fn retransmission_keeps_place_in_rotation() {
        let t = t0();
        let mut s = RoundRobin::new();
        open_ready(&mut s, &[0, 1, 2], t);
        assert_eq!(s.next(t), Some(sid(0)));
        s.on_sent(sid(0), 1200, false, t); // 0 sent all it had
        assert_eq!(s.next(t), Some(sid(1)));
        s.on_sent(sid(1), 1200, true, t);
        // 0's packet is lost: it already had its turn in this round, so it is due next
        // round, at its original place (before 1), not at the back.
        s.on_ready(sid(0), t);
        assert_eq!(serve(&mut s, t, 4), [2, 0, 1, 2].map(sid).to_vec());
    }

    #[test]
    fn blocked_stream_keeps_its_turn() {
        let t = t0();
        let mut s = RoundRobin::new();
        open_ready(&mut s, &[0, 1, 2], t);
        s.on_blocked(sid(1)); // flow control, before its turn
        assert_eq!(serve(&mut s, t, 1), vec![sid(0)]);
        s.on_ready(sid(1), t); // credit arrives: still due in this round
        assert_eq!(serve(&mut s, t, 5), [1, 2, 0, 1, 2].map(sid).to_vec());
    }

    #[test]
    fn flapping_does_not_earn_extra_turns() {
        let t = t0();
        let mut s = RoundRobin::new();
        open_ready(&mut s, &[0, 1, 2], t);
        let mut order = vec![];
        for _ in 0..9 {
            let id = s.next(t).expect("ready");
            order.push(id);
            if id == sid(0) {
                // 0 goes idle after each packet and comes back immediately
                s.on_sent(id, 100, false, t);
                s.on_ready(id, t);
            } else {
                s.on_sent(id, 100, true, t);
            }
        }
        assert_eq!(order, [0, 1, 2, 0, 1, 2, 0, 1, 2].map(sid).to_vec());
    }

    #[test]
    fn misuse_does_not_panic() {
        let t = t0();
        let mut s = RoundRobin::new();
        s.on_sent(sid(7), 1, true, t); // unknown: ignored
        s.on_sent(sid(8), 1, false, t);
        s.on_closed(sid(8));
        s.on_closed(sid(8));
        assert_eq!(s.next(t), None);
        open_ready(&mut s, &[7], t);
        s.on_ready(sid(7), t);
        assert_eq!(drain(&mut s, t), vec![sid(7)]);
    }
}
