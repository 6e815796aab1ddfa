//! Round-trip time estimation (RFC 9002 §5).

use super::GRANULARITY;
use std::time::Duration;

/// Initial RTT before any sample is taken (RFC 9002 §6.2.2, kInitialRtt).
pub const DEFAULT_INITIAL_RTT: Duration = Duration::from_millis(333);

/// The peer's `max_ack_delay` when it does not send the transport parameter
/// (RFC 9000 §18.2).
pub const DEFAULT_MAX_ACK_DELAY: Duration = Duration::from_millis(25);

/// RTT estimator of one path (RFC 9002 §5).
///
/// Holds `latest_rtt`, `min_rtt`, `smoothed_rtt` and `rttvar`, and the peer's
/// `max_ack_delay` used to bound the acknowledgement delay once the handshake is confirmed
/// and to compute the application-data PTO.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    initial: Duration,
    latest: Duration,
    smoothed: Duration,
    var: Duration,
    /// `None` until the first sample (RFC 9002 §5.2).
    min: Option<Duration>,
    max_ack_delay: Duration,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new(DEFAULT_INITIAL_RTT)
    }
}

impl RttEstimator {
    /// A fresh estimator; before the first sample `smoothed_rtt = initial_rtt` and
    /// `rttvar = initial_rtt / 2` (RFC 9002 §5.3).
    pub fn new(initial_rtt: Duration) -> Self {
        Self {
            initial: initial_rtt,
            latest: initial_rtt,
            smoothed: initial_rtt,
            var: initial_rtt / 2,
            min: None,
            max_ack_delay: DEFAULT_MAX_ACK_DELAY,
        }
    }

    /// Forget all samples, e.g. on a new path (RFC 9000 §9.4), keeping `max_ack_delay`.
    pub fn reset(&mut self) {
        let mad = self.max_ack_delay;
        *self = Self::new(self.initial);
        self.max_ack_delay = mad;
    }

    /// Set the peer's `max_ack_delay` transport parameter.
    pub fn set_max_ack_delay(&mut self, max_ack_delay: Duration) {
        self.max_ack_delay = max_ack_delay;
    }

    /// The peer's `max_ack_delay`.
    pub fn max_ack_delay(&self) -> Duration {
        self.max_ack_delay
    }

    /// Take one RTT sample (RFC 9002 §5.1–§5.3).
    ///
    /// `rtt_sample` is `now - time_sent` of the largest newly acknowledged packet and
    /// `ack_delay` the decoded ACK Delay field. The caller passes `Duration::ZERO` as
    /// `ack_delay` for Initial packets (§5.3: the delay MAY be ignored there). Until
    /// `handshake_confirmed`, `ack_delay` is not capped by `max_ack_delay` (§5.3).
    pub fn update(&mut self, ack_delay: Duration, rtt_sample: Duration, handshake_confirmed: bool) {
        self.latest = rtt_sample;
        let Some(min) = self.min else {
            // §5.3: first sample.
            self.min = Some(rtt_sample);
            self.smoothed = rtt_sample;
            self.var = rtt_sample / 2;
            return;
        };
        // §5.2: min_rtt ignores the ack delay.
        let min = min.min(rtt_sample);
        self.min = Some(min);
        // §5.3: cap the ack delay by max_ack_delay once the handshake is confirmed and only
        // subtract it if that does not take the sample below min_rtt.
        let ack_delay = if handshake_confirmed {
            ack_delay.min(self.max_ack_delay)
        } else {
            ack_delay
        };
        let adjusted = match min.checked_add(ack_delay) {
            Some(floor) if rtt_sample >= floor => rtt_sample - ack_delay,
            _ => rtt_sample,
        };
        let diff = self.smoothed.abs_diff(adjusted);
        self.var = (self.var * 3 + diff) / 4;
        self.smoothed = (self.smoothed * 7 + adjusted) / 8;
    }

    /// Whether at least one sample has been taken.
    pub fn has_sample(&self) -> bool {
        self.min.is_some()
    }

    /// `smoothed_rtt`.
    pub fn smoothed(&self) -> Duration {
        self.smoothed
    }

    /// `min_rtt`; the initial RTT before any sample.
    pub fn min(&self) -> Duration {
        self.min.unwrap_or(self.initial)
    }

    /// `rttvar`.
    pub fn var(&self) -> Duration {
        self.var
    }

    /// `latest_rtt`; the initial RTT before any sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// `smoothed_rtt + max(4 * rttvar, kGranularity)`: the PTO period without
    /// `max_ack_delay` and without backoff (RFC 9002 §6.2.1).
    pub fn pto_base(&self) -> Duration {
        self.smoothed
            .saturating_add(self.var.saturating_mul(4).max(GRANULARITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn initial_values() {
        let r = RttEstimator::default();
        assert_eq!(r.smoothed(), ms(333));
        assert_eq!(r.var(), Duration::from_micros(166_500));
        // 333 + 4 * 166.5 = 999 ms (RFC 9002 §6.2.2: initial PTO ~1 s).
        assert_eq!(r.pto_base(), ms(999));
        assert!(!r.has_sample());
    }

    #[test]
    fn first_sample_sets_everything() {
        let mut r = RttEstimator::default();
        r.update(ms(10), ms(100), true);
        // §5.3: the first sample ignores ack_delay.
        assert_eq!(r.smoothed(), ms(100));
        assert_eq!(r.var(), ms(50));
        assert_eq!(r.min(), ms(100));
        assert_eq!(r.latest(), ms(100));
        assert_eq!(r.pto_base(), ms(300));
    }

    #[test]
    fn subsequent_samples_hand_computed() {
        let mut r = RttEstimator::default();
        r.update(ms(0), ms(100), true);
        // adjusted = 120 - 10 = 110 (110 >= min 100)
        // rttvar = 3/4*50 + 1/4*|100-110| = 37.5 + 2.5 = 40
        // srtt = 7/8*100 + 1/8*110 = 101.25
        r.update(ms(10), ms(120), true);
        assert_eq!(r.var(), ms(40));
        assert_eq!(r.smoothed(), Duration::from_micros(101_250));
        assert_eq!(r.min(), ms(100));
        assert_eq!(r.latest(), ms(120));
    }

    #[test]
    fn ack_delay_not_subtracted_below_min_rtt() {
        let mut r = RttEstimator::default();
        r.update(ms(0), ms(100), true);
        // 105 - 10 = 95 < min 100: use the raw 105.
        // rttvar = 37.5 + 1.25 = 38.75; srtt = 87.5 + 13.125 = 100.625
        r.update(ms(10), ms(105), true);
        assert_eq!(r.var(), Duration::from_micros(38_750));
        assert_eq!(r.smoothed(), Duration::from_micros(100_625));
    }

    #[test]
    fn ack_delay_capped_after_confirmation_only() {
        let mut a = RttEstimator::default();
        a.set_max_ack_delay(ms(25));
        a.update(ms(0), ms(100), true);
        // Confirmed: ack_delay 100 capped to 25 → adjusted 175.
        a.update(ms(100), ms(200), true);
        assert_eq!(a.smoothed(), Duration::from_micros(109_375)); // (700 + 175) / 8

        let mut b = RttEstimator::default();
        b.set_max_ack_delay(ms(25));
        b.update(ms(0), ms(100), false);
        // Not confirmed: full ack_delay 100 → adjusted 100.
        b.update(ms(100), ms(200), false);
        assert_eq!(b.smoothed(), ms(100));
    }

    #[test]
    fn min_rtt_tracks_lowest_raw_sample() {
        let mut r = RttEstimator::default();
        r.update(ms(0), ms(100), true);
        r.update(ms(50), ms(60), true);
        assert_eq!(r.min(), ms(60));
        r.reset();
        assert!(!r.has_sample());
        assert_eq!(r.smoothed(), ms(333));
    }

    #[test]
    fn pto_base_granularity_floor() {
        let mut r = RttEstimator::default();
        for _ in 0..200 {
            r.update(ms(0), Duration::from_micros(100), true);
        }
        // rttvar decays to ~0, so the 1 ms granularity dominates.
        assert_eq!(r.pto_base(), Duration::from_micros(100) + GRANULARITY);
    }
}
