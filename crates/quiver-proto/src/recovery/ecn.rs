//! Send-side ECN: marking, validation of the peer's ECN counts and the CE signal
//! (RFC 9000 §13.4.2, RFC 9002 §7.1 and §B.7).
//!
//! One [`EcnValidator`] exists per network path. The connection asks it which codepoint
//! to put on each outgoing datagram ([`EcnValidator::start_datagram`]), remembers for each
//! sent packet whether it was marked ([`EcnValidator::on_packet_sent`]), and reports every ACK
//! frame ([`EcnValidator::on_ack`]), lost marked packets ([`EcnValidator::on_lost`]) and
//! probe timeouts ([`EcnValidator::on_pto`]). `on_ack` returns how many new CE marks the
//! peer reported; a non-zero value is a congestion signal for the controller
//! ([`CongestionEvent::ecn`](crate::cc::CongestionEvent::ecn)), which reduces its window at
//! most once per round trip (its recovery period).
//!
//! ## States
//! ```text
//!            first TESTING_PACKETS marked, or a PTO
//!  Testing ──────────────────────────────────────────▶ Unknown
//!     │  ╲                                               │
//!     │   ╲ an ACK validates a marked packet             │ an ACK validates a marked packet
//!     │    ╲──────────────────────▶ Capable ◀────────────┘
//!     │                               │
//!     └── any validation failure ─────┴───────────────────────▶ Failed (never marks again)
//! ```
//! - **Testing**: the first [`TESTING_PACKETS`] packets are sent with ECT(0).
//! - **Unknown**: marking paused until the outcome of the test is known (after the test
//!   packets went out, or after a PTO fired before any marked packet was acknowledged —
//!   so a path that drops ECT packets does not stall the handshake for long).
//! - **Capable**: a marked packet was acknowledged with consistent counts: every packet
//!   is sent with ECT(0), and every ACK is still validated ("an endpoint MUST disable ECN
//!   if validation later fails").
//! - **Failed**: validation failed; packets are sent Not-ECT for the rest of the path's
//!   life and reported CE marks are ignored.
//!
//! ## Validation (RFC 9000 §13.4.2.1), per ACK frame and packet-number space
//! ECN fails when
//! - the ACK newly acknowledges ECT(0)-marked packets but carries no ECN counts (the path
//!   or the peer bleaches the marks, or the peer does not report them);
//! - a counter decreased, or the increase of ECT(0) + CE is smaller than the number of
//!   newly acknowledged ECT(0) packets (re-marking);
//! - the ECT(0) + CE total exceeds the ECT(0) packets ever sent in the space, or ECT(1)
//!   is non-zero although it is never sent;
//! - during Testing/Unknown, marked packets are declared lost while none was ever
//!   acknowledged and an unmarked packet was (the path drops ECT packets).
//!
//! Counts from an ACK frame that does not raise the largest acknowledged packet number
//! are not checked (a reordered ACK must not fail validation) and not used.

use super::{EcnCodepoint, EcnCounts};
use crate::shared::Epoch;

/// Packets sent with ECT(0) while testing a new path (RFC 9000 §13.4.2 suggests the
/// first ten).
pub const TESTING_PACKETS: u64 = 10;

/// Where ECN validation of a path stands (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EcnState {
    /// Marking the first packets with ECT(0), waiting for the first validated ACK.
    #[default]
    Testing,
    /// Test packets sent (or a probe timeout fired); marking paused until the result.
    Unknown,
    /// Validated: every packet is marked ECT(0), CE marks are congestion signals.
    Capable,
    /// Validation failed or ECN is disabled: no marking.
    Failed,
}

/// Why validation failed (for diagnostics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcnFailure {
    /// ECN is disabled in the configuration.
    Disabled,
    /// Marked packets were acknowledged by an ACK frame without ECN counts.
    CountsMissing,
    /// An ECN counter went backwards.
    CountsDecreased,
    /// ECT(0) + CE grew less than the number of newly acknowledged ECT(0) packets.
    MarksLost,
    /// More ECT(0) + CE reported than ECT(0) packets sent, or ECT(1) reported.
    CountsTooLarge,
    /// Only unmarked packets get through: every acknowledged packet was unmarked while
    /// marked ones were lost.
    MarkedPacketsDropped,
}

/// What one ACK frame told about ECN, as input to [`EcnValidator::on_ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcnAck<'a> {
    /// The packet-number space (Initial, Handshake or application data).
    pub epoch: Epoch,
    /// Newly acknowledged packets that were sent with ECT(0).
    pub newly_acked_marked: u64,
    /// Newly acknowledged packets that were sent without a mark.
    pub newly_acked_unmarked: u64,
    /// The frame raised the largest acknowledged packet number of the space.
    pub largest_acked_increased: bool,
    /// The frame's ECN counts (frame type 0x03), if any.
    pub counts: Option<&'a EcnCounts>,
}

/// Per packet-number space bookkeeping.
#[derive(Debug, Clone, Copy, Default)]
struct SpaceCounts {
    /// Packets sent with ECT(0) in this space.
    sent_ect0: u64,
    /// The last validated counts the peer reported.
    peer: EcnCounts,
}

/// ECN marking and validation of one path. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct EcnValidator {
    state: EcnState,
    /// The codepoint of the datagram being built ([`EcnValidator::start_datagram`]).
    current: Option<EcnCodepoint>,
    failure: Option<EcnFailure>,
    /// Packets marked while testing.
    testing_marked: u64,
    marked_acked: u64,
    marked_lost: u64,
    unmarked_acked: u64,
    /// Indexed by [`Epoch::idx`].
    spaces: [SpaceCounts; 3],
    ce_reported: u64,
}

impl EcnValidator {
    /// A validator for a new path; `enabled = false` starts (and stays) in
    /// [`EcnState::Failed`].
    pub fn new(enabled: bool) -> Self {
        let mut v = Self {
            state: EcnState::Testing,
            current: None,
            failure: None,
            testing_marked: 0,
            marked_acked: 0,
            marked_lost: 0,
            unmarked_acked: 0,
            spaces: [SpaceCounts::default(); 3],
            ce_reported: 0,
        };
        if !enabled {
            v.fail(EcnFailure::Disabled);
        }
        v
    }

    /// The current state.
    pub fn state(&self) -> EcnState {
        self.state
    }

    /// Why validation failed, once it did.
    pub fn failure(&self) -> Option<EcnFailure> {
        self.failure
    }

    /// CE marks the peer reported (validated increases, summed over all spaces).
    pub fn ce_reported(&self) -> u64 {
        self.ce_reported
    }

    /// The codepoint for the next datagram: ECT(0) while testing or once capable.
    pub fn codepoint(&self) -> Option<EcnCodepoint> {
        match self.state {
            EcnState::Testing | EcnState::Capable => Some(EcnCodepoint::Ect0),
            EcnState::Unknown | EcnState::Failed => None,
        }
    }

    /// A datagram (or a GSO batch) is about to be built: fixes the codepoint of all its
    /// packets to [`EcnValidator::codepoint`] and returns it for the IP header.
    pub fn start_datagram(&mut self) -> Option<EcnCodepoint> {
        self.current = self.codepoint();
        self.current
    }

    /// A packet of `epoch` was sent in the datagram begun by the last
    /// [`EcnValidator::start_datagram`]. Returns whether it was marked ECT(0) (remember
    /// that with the sent packet, to count it when it is acknowledged or lost).
    pub fn on_packet_sent(&mut self, epoch: Epoch) -> bool {
        let marked = self.current == Some(EcnCodepoint::Ect0);
        if !marked {
            return false;
        }
        let space = &mut self.spaces[epoch.idx()];
        space.sent_ect0 = space.sent_ect0.saturating_add(1);
        if self.state == EcnState::Testing {
            self.testing_marked += 1;
            if self.testing_marked >= TESTING_PACKETS {
                self.state = EcnState::Unknown;
            }
        }
        true
    }

    /// Process the ECN side of one ACK frame that newly acknowledged at least one
    /// packet. Returns the number of new CE marks to treat as a congestion signal (zero
    /// unless the counts validated).
    pub fn on_ack(&mut self, ack: EcnAck<'_>) -> u64 {
        if self.state == EcnState::Failed {
            return 0;
        }
        self.marked_acked = self.marked_acked.saturating_add(ack.newly_acked_marked);
        self.unmarked_acked = self.unmarked_acked.saturating_add(ack.newly_acked_unmarked);
        let Some(counts) = ack.counts else {
            if ack.newly_acked_marked > 0 {
                self.fail(EcnFailure::CountsMissing);
            } else {
                self.check_marked_dropped();
            }
            return 0;
        };
        if !ack.largest_acked_increased {
            // §13.4.2.1: a reordered ACK must not fail validation.
            return 0;
        }
        let space = &mut self.spaces[ack.epoch.idx()];
        let prev = space.peer;
        if counts.ect0 < prev.ect0 || counts.ect1 < prev.ect1 || counts.ce < prev.ce {
            self.fail(EcnFailure::CountsDecreased);
            return 0;
        }
        if counts.ect1 > 0 || counts.ect0.saturating_add(counts.ce) > space.sent_ect0 {
            self.fail(EcnFailure::CountsTooLarge);
            return 0;
        }
        let ce_increase = counts.ce - prev.ce;
        let ect0_increase = counts.ect0 - prev.ect0;
        if ect0_increase.saturating_add(ce_increase) < ack.newly_acked_marked {
            self.fail(EcnFailure::MarksLost);
            return 0;
        }
        space.peer = *counts;
        if ack.newly_acked_marked > 0 && matches!(self.state, EcnState::Testing | EcnState::Unknown)
        {
            self.state = EcnState::Capable;
        }
        self.check_marked_dropped();
        if self.state == EcnState::Failed {
            return 0;
        }
        self.ce_reported = self.ce_reported.saturating_add(ce_increase);
        ce_increase
    }

    /// `marked` ECT(0) packets were declared lost.
    pub fn on_lost(&mut self, marked: u64) {
        self.marked_lost = self.marked_lost.saturating_add(marked);
        self.check_marked_dropped();
    }

    /// A probe timeout fired. While testing with no marked packet acknowledged yet,
    /// marking pauses so that probes go out unmarked (a path that drops ECT packets
    /// then still completes the handshake, and the loss of the marked packets is
    /// detected from the probes' acknowledgements).
    pub fn on_pto(&mut self) {
        if self.state == EcnState::Testing && self.marked_acked == 0 {
            self.state = EcnState::Unknown;
        }
    }

    /// The path changed (migration): validate it again from the testing state
    /// (RFC 9000 §13.4.2). The per-space totals stay, as the peer's counts are per
    /// packet-number space, not per path. Stays failed if ECN is disabled.
    pub fn restart(&mut self) {
        if self.failure == Some(EcnFailure::Disabled) {
            return;
        }
        self.state = EcnState::Testing;
        self.failure = None;
        self.testing_marked = 0;
        self.marked_acked = 0;
        self.marked_lost = 0;
        self.unmarked_acked = 0;
    }

    fn check_marked_dropped(&mut self) {
        if matches!(self.state, EcnState::Testing | EcnState::Unknown)
            && self.marked_acked == 0
            && self.marked_lost > 0
            && self.unmarked_acked > 0
        {
            self.fail(EcnFailure::MarkedPacketsDropped);
        }
    }

    fn fail(&mut self, why: EcnFailure) {
        if self.state != EcnState::Failed {
            tracing::debug!(?why, "ECN validation failed; marking disabled");
            self.state = EcnState::Failed;
            self.failure = Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(ect0: u64, ect1: u64, ce: u64) -> EcnCounts {
        EcnCounts { ect0, ect1, ce }
    }

    fn ack(marked: u64, unmarked: u64, c: Option<&EcnCounts>) -> EcnAck<'_> {
        EcnAck {
            epoch: Epoch::Data,
            newly_acked_marked: marked,
            newly_acked_unmarked: unmarked,
            largest_acked_increased: true,
            counts: c,
        }
    }

    fn sent(v: &mut EcnValidator, n: u64) {
        for _ in 0..n {
            v.start_datagram();
            v.on_packet_sent(Epoch::Data);
        }
    }

    #[test]
    fn testing_marks_ten_packets_then_pauses() {
        let mut v = EcnValidator::new(true);
        for _ in 0..TESTING_PACKETS {
            assert_eq!(v.start_datagram(), Some(EcnCodepoint::Ect0));
            assert!(v.on_packet_sent(Epoch::Data));
        }
        assert_eq!(v.state(), EcnState::Unknown);
        assert_eq!(v.start_datagram(), None);
        assert!(!v.on_packet_sent(Epoch::Data));
    }

    #[test]
    fn consistent_counts_make_the_path_capable() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 3);
        assert_eq!(v.on_ack(ack(3, 0, Some(&counts(3, 0, 0)))), 0);
        assert_eq!(v.state(), EcnState::Capable);
        assert_eq!(v.codepoint(), Some(EcnCodepoint::Ect0));
        sent(&mut v, 20);
        // Two of the next five were CE-marked on the way.
        assert_eq!(v.on_ack(ack(5, 0, Some(&counts(6, 0, 2)))), 2);
        assert_eq!(v.ce_reported(), 2);
        assert_eq!(v.state(), EcnState::Capable);
    }

    #[test]
    fn missing_counts_fail() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 2);
        assert_eq!(v.on_ack(ack(2, 0, None)), 0);
        assert_eq!(v.state(), EcnState::Failed);
        assert_eq!(v.failure(), Some(EcnFailure::CountsMissing));
        assert_eq!(v.codepoint(), None);
    }

    #[test]
    fn decreasing_counts_fail() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 6);
        v.on_ack(ack(3, 0, Some(&counts(3, 0, 0))));
        v.on_ack(ack(1, 0, Some(&counts(2, 0, 2))));
        assert_eq!(v.failure(), Some(EcnFailure::CountsDecreased));
    }

    #[test]
    fn remarking_to_not_ect_fails() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 4);
        // Four marked packets acknowledged, only two arrived ECT(0).
        assert_eq!(v.on_ack(ack(4, 0, Some(&counts(2, 0, 0)))), 0);
        assert_eq!(v.failure(), Some(EcnFailure::MarksLost));
    }

    #[test]
    fn counts_above_what_was_sent_fail() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 2);
        v.on_ack(ack(2, 0, Some(&counts(5, 0, 0))));
        assert_eq!(v.failure(), Some(EcnFailure::CountsTooLarge));
        let mut v = EcnValidator::new(true);
        sent(&mut v, 2);
        v.on_ack(ack(2, 0, Some(&counts(1, 1, 0))));
        assert_eq!(v.failure(), Some(EcnFailure::CountsTooLarge));
    }

    #[test]
    fn reordered_ack_is_not_validated() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 6);
        v.on_ack(ack(3, 0, Some(&counts(3, 0, 0))));
        let zero = counts(0, 0, 0);
        let mut old = ack(1, 0, Some(&zero));
        old.largest_acked_increased = false;
        assert_eq!(v.on_ack(old), 0);
        assert_eq!(v.state(), EcnState::Capable);
    }

    #[test]
    fn dropped_marked_packets_fail_once_unmarked_ones_arrive() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 1);
        v.on_pto();
        assert_eq!(v.state(), EcnState::Unknown);
        sent(&mut v, 2); // unmarked probes
        v.on_ack(ack(0, 2, Some(&counts(0, 0, 0))));
        assert_eq!(
            v.state(),
            EcnState::Unknown,
            "the marked packet may still arrive"
        );
        v.on_lost(1);
        assert_eq!(v.failure(), Some(EcnFailure::MarkedPacketsDropped));
    }

    #[test]
    fn lost_marked_packet_after_one_was_acknowledged_is_plain_loss() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 4);
        v.on_ack(ack(1, 0, Some(&counts(1, 0, 0))));
        v.on_lost(3);
        assert_eq!(v.state(), EcnState::Capable);
    }

    #[test]
    fn failed_ignores_ce_and_disabled_never_marks() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 2);
        v.on_ack(ack(2, 0, None));
        assert_eq!(v.on_ack(ack(1, 0, Some(&counts(0, 0, 3)))), 0);
        let mut d = EcnValidator::new(false);
        assert_eq!(d.codepoint(), None);
        d.restart();
        assert_eq!(d.state(), EcnState::Failed);
    }

    #[test]
    fn restart_tests_again_with_the_space_totals_kept() {
        let mut v = EcnValidator::new(true);
        sent(&mut v, 3);
        v.on_ack(ack(3, 0, Some(&counts(3, 0, 0))));
        v.on_ack(ack(0, 1, None));
        v.restart();
        assert_eq!(v.state(), EcnState::Testing);
        assert_eq!(v.codepoint(), Some(EcnCodepoint::Ect0));
        // The peer's counts for the space keep growing from where they were.
        sent(&mut v, 2);
        assert_eq!(v.on_ack(ack(2, 0, Some(&counts(5, 0, 0)))), 0);
        assert_eq!(v.state(), EcnState::Capable);
    }
}
