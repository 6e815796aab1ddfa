//! The loss-detection timer, probe timeout with backoff (RFC 9002 §6.2, §A.8) and
//! persistent congestion (§7.6).

use super::{LossSpace, RttEstimator, SentPacket, PERSISTENT_CONGESTION_THRESHOLD};
use crate::shared::Epoch;
use std::time::{Duration, Instant};

/// Backoff exponent cap: `2^16` times the PTO period is far beyond any idle timeout, and
/// the cap keeps the arithmetic finite.
const MAX_BACKOFF_EXPONENT: u32 = 16;

/// PTO backoff state of a connection (RFC 9002 §6.2.1: `pto_count`).
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq)]
pub struct Pto {
    count: u32,
}

impl Pto {
    /// Number of consecutive PTOs without an acknowledgement.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// A PTO fired: double the next period (§6.2.1).
    pub fn on_timeout(&mut self) {
        self.count = self.count.saturating_add(1);
    }

    /// An ACK was received (§A.7: reset unless a client is unsure the server validated
    /// its address, i.e. `peer_completed_address_validation` is false), or Initial or
    /// Handshake keys were discarded (§6.2.2, §A.11).
    pub fn on_ack_received(&mut self, peer_completed_address_validation: bool) {
        if peer_completed_address_validation {
            self.count = 0;
        }
    }

    /// Reset unconditionally (key discard, §6.4).
    pub fn reset(&mut self) {
        self.count = 0;
    }

    /// The backoff multiplier `2^pto_count` (capped).
    pub fn backoff(&self) -> u32 {
        1u32 << self.count.min(MAX_BACKOFF_EXPONENT)
    }
}

/// What the timer needs to know about one packet-number space.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpaceTimers {
    /// [`LossSpace::loss_time`].
    pub loss_time: Option<Instant>,
    /// [`LossSpace::time_of_last_ack_eliciting`].
    pub time_of_last_ack_eliciting: Option<Instant>,
    /// Whether ack-eliciting packets are in flight ([`LossSpace::ack_eliciting_in_flight`] > 0).
    pub ack_eliciting_in_flight: bool,
}

impl SpaceTimers {
    /// Snapshot of a [`LossSpace`].
    pub fn of<T>(space: &LossSpace<T>) -> Self {
        Self {
            loss_time: space.loss_time(),
            time_of_last_ack_eliciting: space.time_of_last_ack_eliciting(),
            ack_eliciting_in_flight: space.ack_eliciting_in_flight() > 0,
        }
    }
}

/// Connection-level inputs of the loss-detection timer (RFC 9002 §A.8).
#[derive(Debug, Clone, Copy)]
pub struct TimerInputs {
    /// Per epoch (indexed by [`Epoch::idx`]); `None` for a space whose keys are discarded
    /// or not yet available.
    pub spaces: [Option<SpaceTimers>; 3],
    /// Current backoff.
    pub pto: Pto,
    /// Whether the handshake is confirmed (application-data PTO is only armed after).
    pub handshake_confirmed: bool,
    /// Whether Handshake keys are available (client probe space choice, §6.2.2.1).
    pub has_handshake_keys: bool,
    /// `PeerCompletedAddressValidation()` (§A.6): always true on the server; on the client
    /// true once a Handshake ACK was received or the handshake is confirmed.
    pub peer_completed_address_validation: bool,
    /// The server is blocked by the anti-amplification limit (RFC 9000 §8.1): no timer
    /// (§6.2.2.1).
    pub at_amplification_limit: bool,
}

/// Which timer is armed and for which space.
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub enum LossTimer {
    /// Time-threshold loss detection: run [`LossSpace::detect_lost`] on `space` at `at`.
    Loss {
        /// Deadline.
        at: Instant,
        /// Space to run loss detection on.
        space: Epoch,
    },
    /// Probe timeout: send one or two ack-eliciting probes in `space` at `at`, then call
    /// [`Pto::on_timeout`].
    Pto {
        /// Deadline.
        at: Instant,
        /// Space to send probes in.
        space: Epoch,
    },
}

impl LossTimer {
    /// The deadline.
    pub fn at(&self) -> Instant {
        match *self {
            LossTimer::Loss { at, .. } | LossTimer::Pto { at, .. } => at,
        }
    }
}

/// The PTO period with backoff: `(smoothed_rtt + max(4·rttvar, 1 ms) [+ max_ack_delay]) ·
/// 2^pto_count` (RFC 9002 §6.2.1). `max_ack_delay` is included for the application-data
/// space only.
pub fn pto_period(rtt: &RttEstimator, pto: Pto, include_max_ack_delay: bool) -> Duration {
    let mut base = rtt.pto_base();
    if include_max_ack_delay {
        base = base.saturating_add(rtt.max_ack_delay());
    }
    base.saturating_mul(pto.backoff())
}

/// `GetPtoTimeAndSpace()` (RFC 9002 §A.8): the earliest PTO deadline over the spaces with
/// ack-eliciting packets in flight; the application-data space only once the handshake is
/// confirmed (§6.2.1). With nothing ack-eliciting in flight (a client that must keep
/// probing until the server validated its address, §6.2.2.1) the PTO runs from `now` in
/// the Handshake space if its keys are available, else in Initial.
pub fn pto_deadline(
    now: Instant,
    rtt: &RttEstimator,
    inputs: &TimerInputs,
) -> Option<(Instant, Epoch)> {
    let any_in_flight = inputs
        .spaces
        .iter()
        .flatten()
        .any(|s| s.ack_eliciting_in_flight);
    if !any_in_flight {
        let space = if inputs.has_handshake_keys {
            Epoch::Handshake
        } else {
            Epoch::Initial
        };
        let d = pto_period(rtt, inputs.pto, false);
        return Some((add(now, d), space));
    }
    let mut best: Option<(Instant, Epoch)> = None;
    for epoch in Epoch::ALL {
        let Some(s) = inputs.spaces[epoch.idx()] else {
            continue;
        };
        if !s.ack_eliciting_in_flight {
            continue;
        }
        let Some(last) = s.time_of_last_ack_eliciting else {
            continue;
        };
        if epoch == Epoch::Data && !inputs.handshake_confirmed {
            // §A.8: skip application data until the handshake is confirmed.
            break;
        }
        let t = add(last, pto_period(rtt, inputs.pto, epoch == Epoch::Data));
        if best.is_none_or(|(b, _)| t < b) {
            best = Some((t, epoch));
        }
    }
    best
}

/// `SetLossDetectionTimer()` (RFC 9002 §A.8): the earliest time-threshold loss deadline
/// if any space has one; otherwise no timer while the server is at the anti-amplification
/// limit or while nothing ack-eliciting is in flight and the peer validated our address;
/// otherwise the PTO deadline.
pub fn loss_detection_timer(
    now: Instant,
    rtt: &RttEstimator,
    inputs: &TimerInputs,
) -> Option<LossTimer> {
    let earliest_loss = Epoch::ALL
        .iter()
        .filter_map(|&e| {
            inputs.spaces[e.idx()]
                .and_then(|s| s.loss_time)
                .map(|t| (t, e))
        })
        .min_by_key(|&(t, _)| t);
    if let Some((at, space)) = earliest_loss {
        return Some(LossTimer::Loss { at, space });
    }
    if inputs.at_amplification_limit {
        return None;
    }
    let any_in_flight = inputs
        .spaces
        .iter()
        .flatten()
        .any(|s| s.ack_eliciting_in_flight);
    if !any_in_flight && inputs.peer_completed_address_validation {
        return None;
    }
    pto_deadline(now, rtt, inputs).map(|(at, space)| LossTimer::Pto { at, space })
}

/// The persistent-congestion duration (RFC 9002 §7.6.1):
/// `(smoothed_rtt + max(4·rttvar, 1 ms) + max_ack_delay) · 3`.
pub fn persistent_congestion_duration(rtt: &RttEstimator) -> Duration {
    rtt.pto_base()
        .saturating_add(rtt.max_ack_delay())
        .saturating_mul(PERSISTENT_CONGESTION_THRESHOLD)
}

/// Persistent congestion (RFC 9002 §7.6.2) over packets declared lost together, given as
/// `(packet number, time sent, ack-eliciting)` in ascending packet-number order.
///
/// Declared when two ack-eliciting lost packets, sent after the first RTT sample
/// (`first_rtt_sample`, the time it was taken; no sample → never), are more than
/// `duration` apart and every packet number between them is also in `lost`. Runs are
/// broken by any gap in packet numbers, so a packet acknowledged in between prevents
/// the declaration; this is conservative for gaps caused by skipped numbers or by packets
/// declared lost in an earlier call, and it works per packet-number space.
pub fn persistent_congestion(
    lost: impl IntoIterator<Item = (u64, Instant, bool)>,
    duration: Duration,
    first_rtt_sample: Option<Instant>,
) -> bool {
    let Some(first_sample) = first_rtt_sample else {
        return false;
    };
    let mut prev_pn: Option<u64> = None;
    let mut run_start: Option<Instant> = None;
    for (pn, sent, ack_eliciting) in lost {
        let contiguous = prev_pn.is_some_and(|p| p.checked_add(1) == Some(pn));
        prev_pn = Some(pn);
        if !contiguous {
            run_start = None;
        }
        if sent <= first_sample {
            // Packets sent before the first RTT sample do not count (§7.6.2).
            run_start = None;
            continue;
        }
        if !ack_eliciting {
            continue;
        }
        match run_start {
            None => run_start = Some(sent),
            Some(start) => {
                if sent.saturating_duration_since(start) > duration {
                    return true;
                }
            }
        }
    }
    false
}

/// [`persistent_congestion`] over the `lost` list of [`AckOutcome`](super::AckOutcome) or
/// [`LossSpace::detect_lost`].
pub fn persistent_congestion_in<T>(
    lost: &[(u64, SentPacket<T>)],
    rtt: &RttEstimator,
    first_rtt_sample: Option<Instant>,
) -> bool {
    persistent_congestion(
        lost.iter()
            .map(|(pn, p)| (*pn, p.time_sent, p.ack_eliciting)),
        persistent_congestion_duration(rtt),
        first_rtt_sample,
    )
}

fn add(t: Instant, d: Duration) -> Instant {
    // An `Instant` overflow is only reachable with absurd durations; fall back to a far
    // but finite deadline so the timer never disappears.
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn rtt_100() -> RttEstimator {
        let mut r = RttEstimator::default();
        r.update(Duration::ZERO, ms(100), true); // srtt 100, var 50 → base 300
        r
    }

    fn inputs(spaces: [Option<SpaceTimers>; 3]) -> TimerInputs {
        TimerInputs {
            spaces,
            pto: Pto::default(),
            handshake_confirmed: true,
            has_handshake_keys: true,
            peer_completed_address_validation: true,
            at_amplification_limit: false,
        }
    }

    fn in_flight(t: Instant) -> Option<SpaceTimers> {
        Some(SpaceTimers {
            loss_time: None,
            time_of_last_ack_eliciting: Some(t),
            ack_eliciting_in_flight: true,
        })
    }

    #[test]
    fn pto_backoff_doubles() {
        let t0 = Instant::now();
        let rtt = rtt_100();
        let mut i = inputs([None, None, in_flight(t0)]);
        // Data space adds max_ack_delay 25 ms: 325 ms.
        assert_eq!(
            pto_deadline(t0, &rtt, &i),
            Some((t0 + ms(325), Epoch::Data))
        );
        i.pto.on_timeout();
        assert_eq!(
            pto_deadline(t0, &rtt, &i),
            Some((t0 + ms(650), Epoch::Data))
        );
        i.pto.on_timeout();
        assert_eq!(
            pto_deadline(t0, &rtt, &i),
            Some((t0 + ms(1300), Epoch::Data))
        );
        for _ in 0..100 {
            i.pto.on_timeout();
        }
        assert!(pto_deadline(t0, &rtt, &i).is_some());
        i.pto.on_ack_received(false);
        assert_eq!(i.pto.count(), 102);
        i.pto.on_ack_received(true);
        assert_eq!(i.pto.count(), 0);
    }

    #[test]
    fn earliest_space_wins_and_data_waits_for_confirmation() {
        let t0 = Instant::now();
        let rtt = rtt_100();
        let mut i = inputs([None, in_flight(t0 + ms(50)), in_flight(t0)]);
        // Handshake: 50 + 300 = 350; Data: 0 + 325 = 325.
        assert_eq!(
            pto_deadline(t0, &rtt, &i),
            Some((t0 + ms(325), Epoch::Data))
        );
        i.handshake_confirmed = false;
        assert_eq!(
            pto_deadline(t0, &rtt, &i),
            Some((t0 + ms(350), Epoch::Handshake))
        );
        i.spaces[1] = None;
        assert_eq!(pto_deadline(t0, &rtt, &i), None);
    }

    #[test]
    fn loss_timer_takes_precedence() {
        let t0 = Instant::now();
        let rtt = rtt_100();
        let mut i = inputs([None, None, in_flight(t0)]);
        i.spaces[2] = Some(SpaceTimers {
            loss_time: Some(t0 + ms(10)),
            ..i.spaces[2].unwrap_or_default()
        });
        assert_eq!(
            loss_detection_timer(t0, &rtt, &i),
            Some(LossTimer::Loss {
                at: t0 + ms(10),
                space: Epoch::Data
            })
        );
    }

    #[test]
    fn client_keeps_probing_until_address_validated() {
        let t0 = Instant::now();
        let rtt = RttEstimator::default();
        let mut i = inputs([Some(SpaceTimers::default()), None, None]);
        // Nothing in flight, peer validated → no timer.
        assert_eq!(loss_detection_timer(t0, &rtt, &i), None);
        // Client, server has not validated us yet: PTO from now (999 ms initial).
        i.peer_completed_address_validation = false;
        i.has_handshake_keys = false;
        assert_eq!(
            loss_detection_timer(t0, &rtt, &i),
            Some(LossTimer::Pto {
                at: t0 + ms(999),
                space: Epoch::Initial
            })
        );
        i.has_handshake_keys = true;
        assert_eq!(
            loss_detection_timer(t0, &rtt, &i).map(|t| t.at()),
            Some(t0 + ms(999))
        );
        // Server at the amplification limit: no timer at all.
        i.at_amplification_limit = true;
        assert_eq!(loss_detection_timer(t0, &rtt, &i), None);
    }

    #[test]
    fn persistent_congestion_rules() {
        let t0 = Instant::now();
        let rtt = rtt_100();
        let d = persistent_congestion_duration(&rtt);
        assert_eq!(d, ms(975)); // (100 + 200 + 25) * 3
        let sample = Some(t0);
        let at = |x: u64| t0 + ms(x);
        // Two ack-eliciting packets 1 s apart, everything between lost.
        let lost = [(1, at(10), true), (2, at(500), false), (3, at(1010), true)];
        assert!(persistent_congestion(lost, d, sample));
        // Not long enough.
        let lost = [(1, at(10), true), (2, at(900), true)];
        assert!(!persistent_congestion(lost, d, sample));
        // A gap (packet 2 was acknowledged) breaks the run.
        let lost = [(1, at(10), true), (3, at(1010), true)];
        assert!(!persistent_congestion(lost, d, sample));
        // Packets before the first RTT sample do not count.
        let lost = [(1, at(10), true), (2, at(1010), true)];
        assert!(!persistent_congestion(lost, d, Some(at(20))));
        assert!(!persistent_congestion(lost, d, None));
        // The endpoints must be ack-eliciting.
        let lost = [(1, at(10), false), (2, at(20), true), (3, at(1010), false)];
        assert!(!persistent_congestion(lost, d, sample));
    }
}
