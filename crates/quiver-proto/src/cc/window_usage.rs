//! Whether the sender used its congestion window (RFC 9002 §7.8): [`WindowUsage`].

use super::AckSample;
use std::time::Instant;

/// Window usage during one round trip.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq)]
struct Round {
    /// The window (or the pacer) held back ack-eliciting data, or a send filled it.
    limited: bool,
    /// Largest bytes in flight right after an in-flight send.
    max_bytes_in_flight: u64,
}

impl Round {
    fn merge(self, other: Round) -> Round {
        Round {
            limited: self.limited || other.limited,
            max_bytes_in_flight: self.max_bytes_in_flight.max(other.max_bytes_in_flight),
        }
    }
}

/// Tracks, per round trip, whether the sender was limited by its congestion window and
/// the largest bytes in flight, and fills [`AckSample::cwnd_limited`] and
/// [`AckSample::max_bytes_in_flight`].
///
/// RFC 9002 §7.8: "When bytes in flight is smaller than the congestion window and
/// sending is not pacing limited, the congestion window is underutilized. This can
/// happen due to insufficient application data or flow control limits. When this
/// occurs, the congestion window SHOULD NOT be increased in either slow start or
/// congestion avoidance." A sender is *window-limited* when the congestion window (or
/// the pacer, which spreads that window over a round trip) kept ack-eliciting data
/// waiting, or when a send filled the window.
///
/// The tracker keeps that fact per round trip, in the manner of Linux
/// `tcp_cwnd_validate` / `tcp_is_cwnd_limited`: a round starts with the first in-flight
/// send after the previous round ended and ends when a packet sent at or after its start
/// is acknowledged. An ACK reports the usage of the round that just ended together with
/// the current one, so growth is allowed if the window was fully used at any point since
/// the start of the last round trip. This is much less strict than the delivery-rate
/// estimator's application-limited mark ([`super::RateSample::is_app_limited`]), which
/// stays set until every byte in flight at marking time is delivered.
///
/// The connection calls [`WindowUsage::on_sent`] for every in-flight packet,
/// [`WindowUsage::on_blocked`] whenever the window or the pacer holds back ack-eliciting
/// data, and [`WindowUsage::on_ack`] for every ACK frame that acknowledges in-flight
/// packets, before handing the sample to the controller.
#[derive(Debug, Clone, Default)]
pub struct WindowUsage {
    /// Send time of the first in-flight packet of the current round; `None` until the
    /// first send after the previous round ended.
    round_start: Option<Instant>,
    /// The current round.
    current: Round,
    /// The round that ended last.
    previous: Round,
}

impl WindowUsage {
    /// A tracker with no history (not window-limited).
    pub fn new() -> Self {
        Self::default()
    }

    /// An in-flight packet was sent at `now`; `bytes_in_flight` includes it, `window` is
    /// the congestion window and `max_datagram_size` the path's maximum datagram size.
    /// The send filled the window if another full-size datagram would not fit.
    pub fn on_sent(
        &mut self,
        now: Instant,
        bytes_in_flight: u64,
        window: u64,
        max_datagram_size: u64,
    ) {
        self.round_start.get_or_insert(now);
        self.current.max_bytes_in_flight = self.current.max_bytes_in_flight.max(bytes_in_flight);
        if bytes_in_flight.saturating_add(max_datagram_size) > window {
            self.current.limited = true;
        }
    }

    /// Ack-eliciting data was ready at `now` but the congestion window or the pacer held
    /// it back. A pacing delay counts: the sender would have used the window without it
    /// (RFC 9002 §7.8).
    pub fn on_blocked(&mut self, now: Instant) {
        self.round_start.get_or_insert(now);
        self.current.limited = true;
    }

    /// Whether the window was fully used at some point since the start of the last round
    /// trip.
    pub fn cwnd_limited(&self) -> bool {
        self.previous.merge(self.current).limited
    }

    /// The largest bytes in flight since the start of the last round trip.
    pub fn max_bytes_in_flight(&self) -> u64 {
        self.previous.merge(self.current).max_bytes_in_flight
    }

    /// An ACK frame acknowledged the in-flight packets of `sample`: end the round if a
    /// packet sent at or after its start was acknowledged, then set
    /// [`AckSample::cwnd_limited`] and [`AckSample::max_bytes_in_flight`].
    pub fn on_ack(&mut self, sample: &mut AckSample<'_>) {
        if let (Some(start), Some(sent)) = (self.round_start, sample.largest_acked_sent) {
            if sent >= start {
                self.previous = self.current;
                self.current = Round::default();
                self.round_start = None;
            }
        }
        sample.cwnd_limited = self.cwnd_limited();
        sample.max_bytes_in_flight = self.max_bytes_in_flight();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::AckedPacket;
    use crate::recovery::RttEstimator;
    use std::time::Duration;

    const MDS: u64 = 1200;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    /// Feed an ACK of one packet sent at `sent`; returns (cwnd_limited, max in flight).
    fn ack(u: &mut WindowUsage, sent: Instant) -> (bool, u64) {
        let pk = [AckedPacket {
            pn: 0,
            time_sent: sent,
            size: MDS,
        }];
        let rtt = RttEstimator::default();
        let mut s = AckSample::new(&pk, &rtt, None, 0);
        u.on_ack(&mut s);
        (s.cwnd_limited, s.max_bytes_in_flight)
    }

    #[test]
    fn fresh_tracker_is_not_limited() {
        let t0 = Instant::now();
        let mut u = WindowUsage::new();
        assert!(!u.cwnd_limited());
        assert_eq!(ack(&mut u, t0), (false, 0));
    }

    #[test]
    fn filling_the_window_counts_for_this_and_the_next_round() {
        let t0 = Instant::now();
        let mut u = WindowUsage::new();
        // Round 1: ten packets fill a 12 000 B window.
        for i in 1..=10 {
            u.on_sent(t0, i * MDS, 12_000, MDS);
        }
        assert!(u.cwnd_limited());
        // ACK of the first packet ends round 1: still limited (previous round).
        assert_eq!(ack(&mut u, t0), (true, 12_000));
        // Round 2: a light sender, one packet with 6000 B in flight.
        let t1 = t0 + ms(100);
        u.on_sent(t1, 6000, 24_000, MDS);
        // The tail of round 1 is still acknowledged as window-limited.
        assert_eq!(ack(&mut u, t0), (true, 12_000));
        // Round 2 ends: only its own (unlimited) usage remains.
        assert_eq!(ack(&mut u, t1), (false, 6000));
    }

    #[test]
    fn pacing_or_window_block_counts_as_limited() {
        let t0 = Instant::now();
        let mut u = WindowUsage::new();
        u.on_sent(t0, 1200, 12_000, MDS);
        assert!(!u.cwnd_limited());
        u.on_blocked(t0 + ms(1));
        assert!(u.cwnd_limited());
        assert_eq!(ack(&mut u, t0), (true, 1200));
    }

    #[test]
    fn idle_sender_is_not_limited() {
        let t0 = Instant::now();
        let mut u = WindowUsage::new();
        let mut t = t0;
        for _ in 0..10 {
            u.on_sent(t, 1200, 12_000, MDS);
            assert_eq!(ack(&mut u, t), (false, 1200));
            t += ms(100);
        }
    }

    #[test]
    fn ack_without_new_round_keeps_state() {
        let t0 = Instant::now();
        let mut u = WindowUsage::new();
        u.on_blocked(t0 + ms(5));
        // A packet sent before the round started does not end it.
        assert_eq!(ack(&mut u, t0), (true, 0));
        assert!(u.cwnd_limited());
    }
}
