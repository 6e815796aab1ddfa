//! Congestion control: the [`Controller`] extension point, its inputs, and the
//! algorithms that ship with Quiver.
//!
//! A congestion controller sees every acknowledgement ([`Controller::on_ack`] with an
//! [`AckSample`]), every congestion signal ([`Controller::on_congestion_event`] with a
//! [`CongestionEvent`]: loss, persistent congestion or ECN-CE), packet sends, probe
//! timeouts and MTU changes, and produces two outputs the connection obeys:
//! - [`Controller::window`]: the congestion window, an upper bound on bytes in flight;
//! - [`Controller::pacing_rate`]: bytes per second for the [`Pacer`]; `None` lets the
//!   pacer derive `1.25 · window / smoothed_rtt` (RFC 9002 §7.7).
//!
//! Controllers are sans-IO like the rest of the crate: time comes in as an argument.
//! A connection builds its controller from a [`ControllerFactory`] held in the
//! configuration, one controller per path.
//!
//! Shipped algorithms: [`NewReno`] (the default, RFC 9002 §7 and Appendix B) and
//! [`Cubic`] (RFC 9438). The CCP datapath implements the same trait.
//!
//! ## What the connection does per ACK frame
//! ```text
//! outcome  = space.on_ack_received(now, ranges, ack_delay, &mut rtt, confirmed)?
//! for p in outcome.newly_acked { rate_estimator.on_packet_acked(now, &p) }
//! packets  = AckedPacket::from_sent(&outcome.newly_acked)
//! sample   = AckSample::new(&packets, &rtt, outcome.rtt_sample, bytes_in_flight)
//!            + delivery: rate_estimator.take_sample(rtt.min()), app_limited, ecn
//! window_usage.on_ack(&mut sample)   // cwnd_limited, max_bytes_in_flight (§7.8)
//! controller.on_ack(now, &sample)
//! if lost bytes: controller.on_congestion_event(now, &CongestionEvent::loss(..))
//! ce = ecn_validator.on_ack(..)     // validated new CE marks (recovery::ecn)
//! if ce > 0: controller.on_congestion_event(now, &CongestionEvent::ecn(..))
//! ```
//!
//! Sends feed [`WindowUsage::on_sent`] (every in-flight packet) and
//! [`WindowUsage::on_blocked`] (the window or the pacer held back ack-eliciting data).
//!
//! ## Window growth and application-limited senders (RFC 9002 §7.8)
//! Window-based controllers should grow only while the window is actually used:
//! [`AckSample::may_grow`] combines [`AckSample::cwnd_limited`] (the window or the pacer
//! limited the sender at some point since the start of the last round trip) with the
//! slow-start allowance of Linux `tcp_is_cwnd_limited` (bytes in flight reached half
//! the window). [`AckSample::app_limited`] is the delivery-rate estimator's stricter
//! mark, meant for rate-based algorithms.
//!
//! ## Writing a controller
//! ```
//! use quiver_proto::cc::{AckSample, CongestionEvent, Controller};
//! use std::time::Instant;
//!
//! /// A fixed window, e.g. for experiments.
//! #[derive(Clone)]
//! struct Fixed(u64);
//!
//! impl Controller for Fixed {
//!     fn on_ack(&mut self, _now: Instant, _sample: &AckSample<'_>) {}
//!     fn on_congestion_event(&mut self, _now: Instant, _event: &CongestionEvent) {}
//!     fn window(&self) -> u64 { self.0 }
//!     fn pacing_rate(&self) -> Option<u64> { None }
//!     fn initial_window(&self) -> u64 { self.0 }
//!     fn name(&self) -> &str { "fixed" }
//!     fn clone_box(&self) -> Box<dyn Controller> { Box::new(self.clone()) }
//! }
//! ```

mod cubic;
mod delivery_rate;
mod new_reno;
mod pacer;
mod window_usage;

pub use cubic::{Cubic, CubicConfig};
pub use delivery_rate::{DeliveryRateEstimator, RateSample, RateSnapshot};
pub use new_reno::{NewReno, NewRenoConfig};
pub use pacer::{
    Pacer, PacerConfig, DEFAULT_BURST_PACKETS, DEFAULT_MAX_BURST_PACKETS,
    DEFAULT_PACING_GRANULARITY,
};
pub use window_usage::WindowUsage;

use crate::recovery::{EcnCounts, RttEstimator, SentPacket};
use std::time::{Duration, Instant};

/// A congestion controller (one per path). See the [module documentation](self).
///
/// All byte counts are UDP payload bytes of in-flight packets (RFC 9002 §2).
pub trait Controller: Send {
    /// A packet of `bytes` that counts toward bytes in flight was sent with number
    /// `last_sent_pn`.
    fn on_sent(&mut self, now: Instant, bytes: u64, last_sent_pn: u64) {
        let _ = (now, bytes, last_sent_pn);
    }

    /// One ACK frame was processed and acknowledged at least one in-flight packet.
    fn on_ack(&mut self, now: Instant, sample: &AckSample<'_>);

    /// Packets were declared lost (possibly with persistent congestion) or the peer
    /// reported new ECN-CE marks. Called after [`Controller::on_ack`] for the same ACK.
    fn on_congestion_event(&mut self, now: Instant, event: &CongestionEvent);

    /// A probe timeout fired (RFC 9002 §6.2). The window is not reduced by a PTO alone.
    fn on_pto(&mut self, now: Instant) {
        let _ = now;
    }

    /// The maximum datagram size changed (PMTU discovery, RFC 9000 §14).
    fn on_mtu_update(&mut self, new_mtu: u16) {
        let _ = new_mtu;
    }

    /// The congestion window in bytes.
    fn window(&self) -> u64;

    /// Pacing rate in bytes per second; `None` lets the pacer derive it from the window
    /// and the smoothed RTT.
    fn pacing_rate(&self) -> Option<u64>;

    /// The window the controller started with.
    fn initial_window(&self) -> u64;

    /// Slow-start threshold, if the algorithm has one (for observability).
    fn ssthresh(&self) -> Option<u64> {
        None
    }

    /// Short algorithm name for logs and qlog (`"newreno"`, `"cubic"`, …).
    fn name(&self) -> &str;

    /// Clone into a new box (e.g. to seed a new path's controller).
    fn clone_box(&self) -> Box<dyn Controller>;
}

/// Builds a [`Controller`] for a new path; held in
/// [`crate::config::TransportConfig::congestion_controller`].
pub trait ControllerFactory: Send + Sync + std::fmt::Debug {
    /// A controller for a path whose maximum datagram size is `max_datagram_size`.
    fn build(&self, now: Instant, max_datagram_size: u16) -> Box<dyn Controller>;
}

/// One newly acknowledged in-flight packet as seen by a controller.
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub struct AckedPacket {
    /// Packet number.
    pub pn: u64,
    /// When it was sent.
    pub time_sent: Instant,
    /// Its in-flight size in bytes.
    pub size: u64,
}

impl AckedPacket {
    /// The in-flight packets among `newly_acked` (e.g. `AckOutcome::newly_acked`).
    pub fn from_sent<T>(newly_acked: &[(u64, SentPacket<T>)]) -> Vec<AckedPacket> {
        newly_acked
            .iter()
            .filter(|(_, p)| p.in_flight)
            .map(|(pn, p)| AckedPacket {
                pn: *pn,
                time_sent: p.time_sent,
                size: u64::from(p.size),
            })
            .collect()
    }
}

/// Everything a controller learns from one ACK frame.
///
/// Built by the connection with [`AckSample::new`]; fields may be added in later
/// versions, so it cannot be built with a struct literal outside this crate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AckSample<'a> {
    /// Newly acknowledged in-flight packets, ascending by packet number.
    pub packets: &'a [AckedPacket],
    /// Sum of their sizes.
    pub bytes_acked: u64,
    /// Send time of the most recently sent newly acknowledged packet.
    pub largest_acked_sent: Option<Instant>,
    /// The RTT sample this ACK produced, if any (RFC 9002 §5.1).
    pub rtt_sample: Option<Duration>,
    /// `latest_rtt` after this ACK.
    pub latest_rtt: Duration,
    /// `min_rtt` after this ACK.
    pub min_rtt: Duration,
    /// `smoothed_rtt` after this ACK.
    pub smoothed_rtt: Duration,
    /// `rttvar` after this ACK.
    pub rttvar: Duration,
    /// Delivery-rate sample ([`DeliveryRateEstimator::take_sample`]), if valid.
    pub delivery: Option<RateSample>,
    /// Bytes in flight after removing the acknowledged (and lost) packets.
    pub bytes_in_flight: u64,
    /// The delivery-rate estimator's application-limited mark
    /// ([`RateSample::is_app_limited`]): set when the sender ran out of data and kept
    /// until everything then in flight is delivered. For rate-based algorithms; window
    /// growth should follow [`AckSample::cwnd_limited`] instead.
    pub app_limited: bool,
    /// The sender was limited by the congestion window at some point since the start of
    /// the last round trip: the window or the pacer held back ack-eliciting data, or a
    /// send left less than one datagram of room (RFC 9002 §7.8; see [`WindowUsage`]).
    /// When false the window was underused (no data, flow control) and should not grow.
    /// [`AckSample::new`] sets it to true, so callers that do not track window usage
    /// keep growing on every acknowledgement.
    pub cwnd_limited: bool,
    /// Largest bytes in flight since the start of the last round trip (0 if unknown).
    pub max_bytes_in_flight: u64,
    /// The peer's cumulative ECN counters from this ACK frame, if present.
    pub ecn: Option<EcnCounts>,
}

impl<'a> AckSample<'a> {
    /// A sample for `packets`, taking RTT state from `rtt` (already updated with this
    /// ACK). `delivery`, `app_limited`, `max_bytes_in_flight` and `ecn` start empty,
    /// `cwnd_limited` true; they may be set afterwards (see [`WindowUsage::on_ack`]).
    pub fn new(
        packets: &'a [AckedPacket],
        rtt: &RttEstimator,
        rtt_sample: Option<Duration>,
        bytes_in_flight: u64,
    ) -> Self {
        Self {
            packets,
            bytes_acked: packets.iter().map(|p| p.size).sum(),
            largest_acked_sent: packets.iter().map(|p| p.time_sent).max(),
            rtt_sample,
            latest_rtt: rtt.latest(),
            min_rtt: rtt.min(),
            smoothed_rtt: rtt.smoothed(),
            rttvar: rtt.var(),
            delivery: None,
            bytes_in_flight,
            app_limited: false,
            cwnd_limited: true,
            max_bytes_in_flight: 0,
            ecn: None,
        }
    }

    /// Whether a window-based controller with a congestion window of `window` bytes may
    /// grow it on this ACK (RFC 9002 §7.8): the sender was window-limited
    /// ([`AckSample::cwnd_limited`]), or it is in slow start and bytes in flight reached
    /// at least half the window since the start of the last round trip, so that slow
    /// start can double a window that is in use (as Linux `tcp_is_cwnd_limited`).
    pub fn may_grow(&self, window: u64, in_slow_start: bool) -> bool {
        self.cwnd_limited || (in_slow_start && self.max_bytes_in_flight.saturating_mul(2) >= window)
    }
}

/// What kind of congestion signal a [`CongestionEvent`] carries.
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
#[non_exhaustive]
pub enum CongestionKind {
    /// Packets were declared lost (RFC 9002 §7.3.2).
    Loss,
    /// The peer reported an increase of the ECN-CE counter (RFC 9002 §7.1, §B.7).
    Ecn,
}

/// A congestion signal (RFC 9002 §7.3.2, §7.6, §B.6).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CongestionEvent {
    /// Loss or ECN.
    pub kind: CongestionKind,
    /// Send time of the most recently sent lost packet (loss) or of the largest
    /// acknowledged packet (ECN). A controller starts a new recovery period only if this
    /// is after the start of the current one (§7.3.2).
    pub sent_time: Instant,
    /// In-flight bytes declared lost (0 for ECN).
    pub lost_bytes: u64,
    /// Number of in-flight packets declared lost (0 for ECN).
    pub lost_packets: u64,
    /// Persistent congestion was established (§7.6): collapse to the minimum window.
    pub persistent_congestion: bool,
    /// Bytes in flight after removing the lost packets.
    pub bytes_in_flight: u64,
}

impl CongestionEvent {
    /// A loss event over `lost` (e.g. `AckOutcome::lost`); `None` if no in-flight packet
    /// was lost.
    pub fn loss<T>(
        lost: &[(u64, SentPacket<T>)],
        persistent_congestion: bool,
        bytes_in_flight: u64,
    ) -> Option<Self> {
        let in_flight = lost.iter().filter(|(_, p)| p.in_flight);
        let sent_time = in_flight.clone().map(|(_, p)| p.time_sent).max()?;
        Some(Self {
            kind: CongestionKind::Loss,
            sent_time,
            lost_bytes: in_flight.clone().map(|(_, p)| u64::from(p.size)).sum(),
            lost_packets: in_flight.count() as u64,
            persistent_congestion,
            bytes_in_flight,
        })
    }

    /// An ECN-CE event; `sent_time` is the send time of the largest acknowledged packet.
    pub fn ecn(sent_time: Instant, bytes_in_flight: u64) -> Self {
        Self {
            kind: CongestionKind::Ecn,
            sent_time,
            lost_bytes: 0,
            lost_packets: 0,
            persistent_congestion: false,
            bytes_in_flight,
        }
    }

    /// A loss event from raw values (for datapaths that track packets themselves).
    pub fn new_loss(
        sent_time: Instant,
        lost_bytes: u64,
        lost_packets: u64,
        persistent_congestion: bool,
        bytes_in_flight: u64,
    ) -> Self {
        Self {
            kind: CongestionKind::Loss,
            sent_time,
            lost_bytes,
            lost_packets,
            persistent_congestion,
            bytes_in_flight,
        }
    }
}

/// Initial window (RFC 9002 §7.2): `min(10 · mds, max(14720, 2 · mds))`.
pub fn initial_window(max_datagram_size: u16) -> u64 {
    let mds = u64::from(max_datagram_size);
    (10 * mds).min(14_720u64.max(2 * mds))
}

/// Minimum window (RFC 9002 §7.2): `2 · mds`.
pub fn minimum_window(max_datagram_size: u16) -> u64 {
    2 * u64::from(max_datagram_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_per_rfc() {
        assert_eq!(initial_window(1200), 12_000);
        assert_eq!(initial_window(1472), 14_720);
        assert_eq!(initial_window(1500), 14_720);
        assert_eq!(initial_window(9000), 18_000);
        assert_eq!(minimum_window(1200), 2400);
    }

    #[test]
    fn loss_event_ignores_non_in_flight() {
        let t0 = Instant::now();
        let p = |dt: u64, in_flight: bool| SentPacket {
            time_sent: t0 + Duration::from_millis(dt),
            size: 1000,
            ack_eliciting: in_flight,
            in_flight,
            rate: None,
            info: (),
        };
        let lost = vec![(1, p(1, true)), (2, p(5, false)), (3, p(3, true))];
        let e = CongestionEvent::loss(&lost, false, 0).unwrap();
        assert_eq!(e.lost_bytes, 2000);
        assert_eq!(e.lost_packets, 2);
        assert_eq!(e.sent_time, t0 + Duration::from_millis(3));
        assert!(CongestionEvent::loss(&[(2, p(5, false))], false, 0).is_none());
    }
}
