//! CUBIC (RFC 9438) on the same recovery-period rules as NewReno (RFC 9002 §7).

use super::{
    initial_window, minimum_window, AckSample, CongestionEvent, Controller, ControllerFactory,
};
use std::time::{Duration, Instant};

/// CUBIC constant C (RFC 9438 §5.1), in segments per second³.
const C: f64 = 0.4;
/// Multiplicative decrease factor β_cubic (RFC 9438 §4.6).
const BETA: f64 = 0.7;

/// Configuration and factory for [`Cubic`].
#[derive(Debug, Clone, Default)]
pub struct CubicConfig {
    /// Initial window in bytes; `None` = RFC 9002 §7.2 default.
    pub initial_window: Option<u64>,
}

impl ControllerFactory for CubicConfig {
    fn build(&self, _now: Instant, max_datagram_size: u16) -> Box<dyn Controller> {
        Box::new(Cubic::new(self.clone(), max_datagram_size))
    }
}

/// The CUBIC congestion controller (RFC 9438): slow start as Reno, then a cubic window
/// function of the time since the last congestion event, with the Reno-friendly region
/// (§4.3) and fast convergence (§4.7). Recovery periods follow RFC 9002 §7.3.2.
/// The window grows only when [`AckSample::may_grow`] allows it (RFC 9002 §7.8), and
/// the time between ACKs that do not allow growth is left out of the cubic function's
/// epoch (RFC 9438 §5.8).
#[derive(Debug, Clone)]
pub struct Cubic {
    mds: u64,
    window: u64,
    initial: u64,
    ssthresh: u64,
    recovery_start: Option<Instant>,
    /// Start of the current congestion-avoidance epoch.
    epoch_start: Option<Instant>,
    /// W_max in bytes (window before the last reduction).
    w_max: f64,
    /// K in seconds.
    k: f64,
    /// Reno-friendly estimate W_est in bytes.
    w_est: f64,
    /// Fractional window growth not yet applied, in bytes.
    carry: f64,
    /// When the last ACK was processed (to leave underused periods out of t).
    last_ack: Option<Instant>,
}

impl Cubic {
    /// A controller for a path with the given maximum datagram size.
    pub fn new(config: CubicConfig, max_datagram_size: u16) -> Self {
        let initial = config
            .initial_window
            .unwrap_or_else(|| initial_window(max_datagram_size))
            .max(minimum_window(max_datagram_size));
        Self {
            mds: u64::from(max_datagram_size),
            window: initial,
            initial,
            ssthresh: u64::MAX,
            recovery_start: None,
            epoch_start: None,
            w_max: 0.0,
            k: 0.0,
            w_est: 0.0,
            carry: 0.0,
            last_ack: None,
        }
    }

    fn in_recovery(&self, sent_time: Instant) -> bool {
        self.recovery_start.is_some_and(|start| sent_time <= start)
    }

    fn min_window(&self) -> u64 {
        2 * self.mds
    }

    /// W_cubic(t) in bytes (RFC 9438 §4.2).
    fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k;
        C * d * d * d * self.mds as f64 + self.w_max
    }

    fn start_epoch(&mut self, now: Instant) {
        self.epoch_start = Some(now);
        let cwnd = self.window as f64;
        if self.w_max < cwnd {
            // Entering congestion avoidance without a prior reduction (§4.2: K = 0).
            self.w_max = cwnd;
        }
        self.k = ((self.w_max - cwnd) / (C * self.mds as f64))
            .max(0.0)
            .cbrt();
        self.w_est = cwnd;
        self.carry = 0.0;
    }
}

impl Controller for Cubic {
    fn on_ack(&mut self, now: Instant, sample: &AckSample<'_>) {
        // RFC 9438 §5.8 / RFC 9002 §7.8: no growth while the window is underused, and
        // such periods do not count in the cubic function's time t.
        let since_last_ack = self
            .last_ack
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last_ack = Some(now);
        if !sample.may_grow(self.window, self.window < self.ssthresh) {
            if let Some(start) = self.epoch_start.as_mut() {
                *start = (*start + since_last_ack).min(now);
            }
            return;
        }
        let rtt = sample.smoothed_rtt.max(Duration::from_millis(1));
        for p in sample.packets {
            if self.in_recovery(p.time_sent) {
                continue;
            }
            if self.window < self.ssthresh {
                self.window = self.window.saturating_add(p.size);
                continue;
            }
            if self.epoch_start.is_none() {
                self.start_epoch(now);
            }
            let t = now
                .saturating_duration_since(self.epoch_start.unwrap_or(now))
                .as_secs_f64();
            let cwnd = self.window as f64;
            let acked = p.size as f64;
            // §4.3 Reno-friendly estimate, α = 3(1 − β)/(1 + β).
            let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
            self.w_est += alpha * self.mds as f64 * acked / cwnd;
            // §4.4: target W_cubic(t + RTT), clamped to [cwnd, 1.5 cwnd].
            let target = self.w_cubic(t + rtt.as_secs_f64()).clamp(cwnd, 1.5 * cwnd);
            let growth = if self.w_cubic(t) < self.w_est {
                // §4.3: Reno-friendly region.
                (self.w_est - cwnd).max(0.0)
            } else {
                (target - cwnd) * acked / cwnd
            };
            self.carry += growth;
            let whole = self.carry.floor();
            if whole >= 1.0 {
                self.carry -= whole;
                self.window = self.window.saturating_add(whole as u64);
            }
        }
    }

    fn on_congestion_event(&mut self, now: Instant, event: &CongestionEvent) {
        if !self.in_recovery(event.sent_time) {
            self.recovery_start = Some(now);
            let cwnd = self.window as f64;
            // §4.7 fast convergence.
            self.w_max = if cwnd < self.w_max {
                cwnd * (1.0 + BETA) / 2.0
            } else {
                cwnd
            };
            self.ssthresh = ((cwnd * BETA) as u64).max(self.min_window());
            self.window = self.ssthresh;
            self.start_epoch(now);
        }
        if event.persistent_congestion {
            self.window = self.min_window();
            self.recovery_start = None;
            self.epoch_start = None;
            self.w_max = 0.0;
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mds = u64::from(new_mtu);
        self.window = self.window.max(self.min_window());
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn pacing_rate(&self) -> Option<u64> {
        None
    }

    fn initial_window(&self) -> u64 {
        self.initial
    }

    fn ssthresh(&self) -> Option<u64> {
        (self.ssthresh != u64::MAX).then_some(self.ssthresh)
    }

    fn name(&self) -> &str {
        "cubic"
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::AckedPacket;
    use crate::recovery::RttEstimator;

    const MDS: u16 = 1200;

    /// Slow start to 100 packets, one loss, then `rounds` ACK-clocked rounds of one RTT;
    /// returns the window after each round.
    fn run(rtt_ms: u64, rounds: usize) -> Vec<u64> {
        let t0 = Instant::now();
        let mut cc = Cubic::new(CubicConfig::default(), MDS);
        let mut rtt = RttEstimator::default();
        let round = Duration::from_millis(rtt_ms);
        rtt.update(Duration::ZERO, round, true);
        let pk: Vec<_> = (0..90)
            .map(|pn| AckedPacket {
                pn,
                time_sent: t0,
                size: 1200,
            })
            .collect();
        cc.on_ack(t0, &AckSample::new(&pk, &rtt, None, 0));
        assert_eq!(cc.window(), 120_000);
        let loss = t0 + Duration::from_millis(10);
        cc.on_congestion_event(loss, &CongestionEvent::new_loss(t0, 1200, 1, false, 0));
        assert_eq!(cc.window(), 84_000);
        let mut pn = 1000;
        let mut now = loss;
        let mut out = Vec::new();
        for _ in 0..rounds {
            now += round;
            let n = cc.window() / 1200;
            let pk: Vec<_> = (0..n)
                .map(|_| {
                    pn += 1;
                    AckedPacket {
                        pn,
                        time_sent: now - round,
                        size: 1200,
                    }
                })
                .collect();
            cc.on_ack(now, &AckSample::new(&pk, &rtt, None, 0));
            out.push(cc.window());
        }
        out
    }

    #[test]
    fn cubic_region_plateaus_at_w_max() {
        // K = cbrt((100 - 70) / 0.4) ≈ 4.2 s; with a 500 ms RTT the cubic function
        // dominates the Reno-friendly estimate.
        let w = run(500, 13);
        // Concave growth toward W_max = 120 000 B: fast first, slow near K.
        assert!(w[1] - w[0] > w[6] - w[5], "{w:?}");
        assert!((110_000..=125_000).contains(&w[7]), "{w:?}");
        // Convex growth beyond W_max afterwards.
        assert!(w[12] > 123_000, "{w:?}");
    }

    #[test]
    fn reno_friendly_region_on_short_rtt() {
        // With a 10 ms RTT, 420 rounds reach K; Reno's +0.53 segment per RTT dominates.
        let w = run(10, 200);
        assert!(w[199] > 84_000 + 90 * 1200, "{:?}", &w[190..]);
        assert!(w[199] < 84_000 + 120 * 1200, "{:?}", &w[190..]);
    }

    /// One round of `window / 1200` acknowledged packets sent one RTT before `now`.
    fn round(cc: &mut Cubic, rtt: &RttEstimator, now: Instant, round: Duration, limited: bool) {
        let n = cc.window() / 1200;
        let pk: Vec<_> = (0..n)
            .map(|pn| AckedPacket {
                pn,
                time_sent: now - round,
                size: 1200,
            })
            .collect();
        let mut s = AckSample::new(&pk, rtt, None, 0);
        s.cwnd_limited = limited;
        s.max_bytes_in_flight = cc.window();
        cc.on_ack(now, &s);
    }

    /// Window after `underused` rounds that do not allow growth followed by one
    /// window-limited round, starting from a loss at 120 000 B with a 500 ms RTT.
    fn grow_after_underused(underused: usize) -> u64 {
        let t0 = Instant::now();
        let mut cc = Cubic::new(CubicConfig::default(), MDS);
        let mut rtt = RttEstimator::default();
        let rtt_d = Duration::from_millis(500);
        rtt.update(Duration::ZERO, rtt_d, true);
        // Slow start: an ACK with little in flight and no window limit does not grow.
        let pk: Vec<_> = (0..90)
            .map(|pn| AckedPacket {
                pn,
                time_sent: t0,
                size: 1200,
            })
            .collect();
        let mut s = AckSample::new(&pk, &rtt, None, 0);
        s.cwnd_limited = false;
        s.max_bytes_in_flight = 5000;
        cc.on_ack(t0, &s);
        assert_eq!(cc.window(), 12_000);
        // Half the window in use: slow start may double it.
        s.max_bytes_in_flight = 6000;
        cc.on_ack(t0, &s);
        assert_eq!(cc.window(), 120_000);
        let loss = t0 + Duration::from_millis(10);
        cc.on_congestion_event(loss, &CongestionEvent::new_loss(t0, 1200, 1, false, 0));
        assert_eq!(cc.window(), 84_000);
        // Underused rounds (the whole window in flight, but never limited by it): no
        // growth in congestion avoidance.
        let mut now = loss + rtt_d;
        for _ in 0..underused {
            now += rtt_d;
            round(&mut cc, &rtt, now, rtt_d, false);
            assert_eq!(cc.window(), 84_000);
        }
        now += rtt_d;
        round(&mut cc, &rtt, now, rtt_d, true);
        cc.window()
    }

    #[test]
    fn underused_window_neither_grows_nor_ages_the_epoch() {
        // Ten seconds of underused rounds are not part of the cubic function's t: the
        // first window-limited round grows as it would right after the loss.
        let short = grow_after_underused(1);
        assert!(short > 84_000, "{short}");
        assert_eq!(grow_after_underused(20), short);
    }

    #[test]
    fn factory_and_persistent_congestion() {
        let t0 = Instant::now();
        let mut cc = CubicConfig::default().build(t0, MDS);
        assert_eq!(cc.name(), "cubic");
        assert_eq!(cc.window(), 12_000);
        cc.on_congestion_event(t0, &CongestionEvent::new_loss(t0, 1200, 1, true, 0));
        assert_eq!(cc.window(), 2400);
    }
}
