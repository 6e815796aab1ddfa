//! Loss detection and acknowledgement bookkeeping (RFC 9002, RFC 9000 §13).
//!
//! Every type here is a standalone, sans-IO component that the connection state machine
//! drives; none of them reads a clock (time always comes in as an [`Instant`](std::time::Instant) argument)
//! and none of them knows about frames or packets on the wire.
//!
//! | component | side | what it does |
//! |---|---|---|
//! | [`RttEstimator`] | both | min/smoothed/variance RTT (RFC 9002 §5) |
//! | [`AckTracker`] | receive | which packet numbers to acknowledge and when (RFC 9000 §13.2) |
//! | [`LossSpace`] | send | sent-packet map, ACK processing, loss detection (RFC 9002 §6) |
//! | [`pto`] | send | the loss-detection timer, PTO backoff and persistent congestion (§6.2, §7.6) |
//! | [`EcnValidator`] | send | ECT(0) marking, validation of the peer's ECN counts, CE signal (RFC 9000 §13.4, [`ecn`]) |
//!
//! ## How the connection drives them (one packet-number space)
//! 1. Receiving a packet: [`AckTracker::on_packet_received`]; drop it if it is a duplicate.
//!    When [`AckTracker::should_send_now`] or the [`AckTracker::ack_deadline`] passed,
//!    write an ACK frame from [`AckTracker::ranges`], [`AckTracker::ack_delay`] and
//!    [`AckTracker::ecn_counts`], then call [`AckTracker::on_ack_sent`]. Remember the
//!    ACK's largest number in the sent packet's info; when that packet is acknowledged,
//!    call [`AckTracker::on_ack_of_ack`].
//! 2. Sending a packet: [`LossSpace::on_packet_sent`] with a [`SentPacket`] (its
//!    [`SentPacket::rate`] snapshot comes from
//!    [`DeliveryRateEstimator::on_sent`](crate::cc::DeliveryRateEstimator::on_sent)), then
//!    [`Controller::on_sent`](crate::cc::Controller::on_sent).
//! 3. Receiving an ACK frame: [`LossSpace::on_ack_received`]; feed the acknowledged
//!    packets to the delivery-rate estimator and an [`AckSample`](crate::cc::AckSample) to
//!    the controller; hand lost packets' contents back for retransmission and report a
//!    [`CongestionEvent`](crate::cc::CongestionEvent) (with
//!    [`pto::persistent_congestion`]) if any were lost.
//!    Count the newly acknowledged ECT(0)-marked packets and give them with the frame's
//!    ECN counts to [`EcnValidator::on_ack`]; new CE marks it returns are a congestion
//!    event too ([`CongestionEvent::ecn`](crate::cc::CongestionEvent::ecn)).
//! 4. Timers: arm [`pto::loss_detection_timer`]; when it fires either run
//!    [`LossSpace::detect_lost`] (a loss timer) or send probes and bump [`pto::Pto`].

mod ack;
pub mod ecn;
mod loss;
pub mod pto;
mod rtt;
mod sent_log;

pub use ack::{AckTracker, DEFAULT_MAX_ACK_RANGES};
pub use ecn::{EcnAck, EcnFailure, EcnState, EcnValidator};
pub use loss::{AckOutcome, LossCounters, LossSpace, SentPacket, MAX_RECENTLY_LOST};
pub use rtt::{RttEstimator, DEFAULT_INITIAL_RTT, DEFAULT_MAX_ACK_DELAY};

use std::time::Duration;

/// Largest valid packet number, `2^62 - 1` (RFC 9000 §12.3).
pub const MAX_PACKET_NUMBER: u64 = (1 << 62) - 1;

/// Timer granularity (RFC 9002 §6.1.2, kGranularity).
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// Packet reordering threshold (RFC 9002 §6.1.1, kPacketThreshold).
pub const PACKET_THRESHOLD: u64 = 3;

/// Time reordering threshold as a fraction `num / den` (RFC 9002 §6.1.2, kTimeThreshold = 9/8).
pub const TIME_THRESHOLD: (u32, u32) = (9, 8);

/// Persistent congestion threshold (RFC 9002 §7.6.1, kPersistentCongestionThreshold).
pub const PERSISTENT_CONGESTION_THRESHOLD: u32 = 3;

pub use crate::shared::EcnCodepoint;

/// The three ECN counters carried in an ACK frame of type 0x03 (RFC 9000 §19.3.2).
#[derive(Debug, Copy, Clone, Default, Eq, PartialEq, Hash)]
pub struct EcnCounts {
    /// Packets received with ECT(0).
    pub ect0: u64,
    /// Packets received with ECT(1).
    pub ect1: u64,
    /// Packets received with CE.
    pub ce: u64,
}

impl EcnCounts {
    /// Count one more packet received with `codepoint`.
    pub fn add(&mut self, codepoint: EcnCodepoint) {
        let c = match codepoint {
            EcnCodepoint::Ect0 => &mut self.ect0,
            EcnCodepoint::Ect1 => &mut self.ect1,
            EcnCodepoint::Ce => &mut self.ce,
        };
        *c = c.saturating_add(1);
    }

    /// Sum of all three counters.
    pub fn total(&self) -> u64 {
        self.ect0.saturating_add(self.ect1).saturating_add(self.ce)
    }
}

/// `d * num / den` without overflow panics (saturates at `Duration::MAX`).
pub(crate) fn mul_div(d: Duration, num: u32, den: u32) -> Duration {
    let nanos = d.as_nanos().saturating_mul(u128::from(num)) / u128::from(den.max(1));
    duration_from_nanos_saturating(nanos)
}

/// A `Duration` from a nanosecond count, saturating instead of overflowing.
pub(crate) fn duration_from_nanos_saturating(nanos: u128) -> Duration {
    let secs = nanos / 1_000_000_000;
    match u64::try_from(secs) {
        Ok(secs) => Duration::new(secs, (nanos % 1_000_000_000) as u32),
        Err(_) => Duration::MAX,
    }
}
