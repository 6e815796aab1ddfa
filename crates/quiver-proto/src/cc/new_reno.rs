//! NewReno (RFC 9002 §7, Appendix B), the default congestion controller.

use super::{
    initial_window, minimum_window, AckSample, CongestionEvent, Controller, ControllerFactory,
};
use std::time::Instant;

/// Configuration and factory for [`NewReno`].
#[derive(Debug, Clone)]
pub struct NewRenoConfig {
    /// Initial window in bytes; `None` = RFC 9002 §7.2 default
    /// `min(10 · mds, max(14720, 2 · mds))`.
    pub initial_window: Option<u64>,
    /// Multiplicative decrease on congestion as `numerator / denominator`
    /// (kLossReductionFactor, default 1/2).
    pub loss_reduction_factor: (u64, u64),
}

impl Default for NewRenoConfig {
    fn default() -> Self {
        Self {
            initial_window: None,
            loss_reduction_factor: (1, 2),
        }
    }
}

impl ControllerFactory for NewRenoConfig {
    fn build(&self, _now: Instant, max_datagram_size: u16) -> Box<dyn Controller> {
        Box::new(NewReno::new(self.clone(), max_datagram_size))
    }
}

/// The NewReno congestion controller of RFC 9002 §7.3 and Appendix B.
///
/// - Slow start: the window grows by the acknowledged bytes (§7.3.1).
/// - Recovery: on loss or ECN-CE the window is multiplied by the loss reduction factor
///   (floored at the minimum window) and a recovery period starts; further congestion
///   events for packets sent before the period started are ignored, and acknowledgements
///   of such packets do not grow the window (§7.3.2).
/// - Congestion avoidance: one maximum datagram size per window of acknowledged bytes
///   (§7.3.3), counted exactly with a byte accumulator.
/// - Persistent congestion collapses the window to the minimum (§7.6.2).
/// - No growth while the window is underused (§7.8): only when the sample is
///   window-limited or, in slow start, bytes in flight reached half the window
///   ([`AckSample::may_grow`]).
#[derive(Debug, Clone)]
pub struct NewReno {
    config: NewRenoConfig,
    mds: u64,
    window: u64,
    initial: u64,
    ssthresh: u64,
    recovery_start: Option<Instant>,
    /// Bytes acknowledged in congestion avoidance not yet turned into window growth.
    ca_acked: u64,
}

impl NewReno {
    /// A controller for a path with the given maximum datagram size.
    pub fn new(config: NewRenoConfig, max_datagram_size: u16) -> Self {
        let initial = config
            .initial_window
            .unwrap_or_else(|| initial_window(max_datagram_size))
            .max(minimum_window(max_datagram_size));
        Self {
            config,
            mds: u64::from(max_datagram_size),
            window: initial,
            initial,
            ssthresh: u64::MAX,
            recovery_start: None,
            ca_acked: 0,
        }
    }

    fn minimum_window(&self) -> u64 {
        2 * self.mds
    }

    /// §B.4 `InCongestionRecovery(sent_time)`.
    fn in_recovery(&self, sent_time: Instant) -> bool {
        self.recovery_start.is_some_and(|start| sent_time <= start)
    }

    /// Whether the controller is in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.window < self.ssthresh
    }
}

impl Controller for NewReno {
    fn on_ack(&mut self, _now: Instant, sample: &AckSample<'_>) {
        // §7.8 / §B.5: do not grow an underutilised window.
        if !sample.may_grow(self.window, self.in_slow_start()) {
            return;
        }
        for p in sample.packets {
            // §7.3.2: no growth for packets sent before the recovery period started.
            if self.in_recovery(p.time_sent) {
                continue;
            }
            if self.window < self.ssthresh {
                // §7.3.1 slow start.
                self.window = self.window.saturating_add(p.size);
            } else {
                // §7.3.3 congestion avoidance: +1 mds per window acknowledged.
                self.ca_acked = self.ca_acked.saturating_add(p.size);
                if self.ca_acked >= self.window {
                    self.ca_acked -= self.window;
                    self.window = self.window.saturating_add(self.mds);
                }
            }
        }
    }

    fn on_congestion_event(&mut self, now: Instant, event: &CongestionEvent) {
        // §B.6: one reduction per recovery period.
        if !self.in_recovery(event.sent_time) {
            self.recovery_start = Some(now);
            let (num, den) = self.config.loss_reduction_factor;
            let reduced = u128::from(self.window) * u128::from(num) / u128::from(den.max(1));
            self.ssthresh = u64::try_from(reduced)
                .unwrap_or(u64::MAX)
                .max(self.minimum_window());
            self.window = self.ssthresh;
            self.ca_acked = 0;
        }
        // §7.6.2 / §B.8: persistent congestion.
        if event.persistent_congestion {
            self.window = self.minimum_window();
            self.recovery_start = None;
            self.ca_acked = 0;
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mds = u64::from(new_mtu);
        self.window = self.window.max(self.minimum_window());
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
        "newreno"
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
    use std::time::Duration;

    const MDS: u16 = 1200;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn acked(pn: u64, t: Instant) -> AckedPacket {
        AckedPacket {
            pn,
            time_sent: t,
            size: u64::from(MDS),
        }
    }

    fn ack(cc: &mut NewReno, now: Instant, packets: &[AckedPacket]) {
        let rtt = RttEstimator::default();
        let s = AckSample::new(packets, &rtt, None, 0);
        cc.on_ack(now, &s);
    }

    #[test]
    fn factory_and_initial_window() {
        let cc = NewRenoConfig::default().build(Instant::now(), MDS);
        assert_eq!(cc.window(), 12_000);
        assert_eq!(cc.initial_window(), 12_000);
        assert_eq!(cc.name(), "newreno");
        assert_eq!(cc.pacing_rate(), None);
        assert_eq!(cc.clone_box().window(), 12_000);
    }

    #[test]
    fn slow_start_loss_recovery_avoidance() {
        let t0 = Instant::now();
        let mut cc = NewReno::new(NewRenoConfig::default(), MDS);
        // Slow start: each acknowledged byte grows the window.
        let pk: Vec<_> = (0..10).map(|i| acked(i, t0)).collect();
        ack(&mut cc, t0 + ms(100), &pk);
        assert_eq!(cc.window(), 24_000);
        assert!(cc.in_slow_start());

        // Loss of a packet sent at t0+150 detected at t0+300: halve.
        let loss_at = t0 + ms(300);
        let e = CongestionEvent::new_loss(t0 + ms(150), 1200, 1, false, 0);
        cc.on_congestion_event(loss_at, &e);
        assert_eq!(cc.window(), 12_000);
        assert_eq!(cc.ssthresh(), Some(12_000));
        assert!(!cc.in_slow_start());

        // Another loss of a packet sent before recovery started: no second reduction.
        let e = CongestionEvent::new_loss(t0 + ms(290), 1200, 1, false, 0);
        cc.on_congestion_event(t0 + ms(310), &e);
        assert_eq!(cc.window(), 12_000);
        // ECN-CE for a packet sent before recovery: also ignored.
        cc.on_congestion_event(t0 + ms(320), &CongestionEvent::ecn(t0 + ms(299), 0));
        assert_eq!(cc.window(), 12_000);

        // ACKs for packets sent before recovery do not grow the window.
        let pk: Vec<_> = (20..30).map(|i| acked(i, t0 + ms(200))).collect();
        ack(&mut cc, t0 + ms(350), &pk);
        assert_eq!(cc.window(), 12_000);

        // Congestion avoidance: one full window of ACKs (sent after recovery) → +1 MSS.
        let mut pn = 100;
        let mut t = loss_at + ms(1);
        for round in 0..5u64 {
            let w = cc.window();
            let n = w.div_ceil(u64::from(MDS));
            let pk: Vec<_> = (0..n)
                .map(|_| {
                    pn += 1;
                    acked(pn, t)
                })
                .collect();
            t += ms(100);
            ack(&mut cc, t, &pk);
            assert_eq!(cc.window(), w + u64::from(MDS), "round {round}");
        }

        // A loss of a packet sent after recovery started begins a new period.
        let e = CongestionEvent::new_loss(t, 1200, 1, false, 0);
        let before = cc.window();
        cc.on_congestion_event(t + ms(50), &e);
        assert_eq!(cc.window(), before / 2);
    }

    #[test]
    fn persistent_congestion_collapses() {
        let t0 = Instant::now();
        let mut cc = NewReno::new(NewRenoConfig::default(), MDS);
        let e = CongestionEvent::new_loss(t0, 1200, 5, true, 0);
        cc.on_congestion_event(t0 + ms(1000), &e);
        assert_eq!(cc.window(), 2400);
        // Recovery period was cleared: growth restarts (slow start up to ssthresh 6000).
        ack(&mut cc, t0 + ms(1100), &[acked(1, t0 + ms(1010))]);
        assert_eq!(cc.window(), 3600);
    }

    /// ACK of one packet sent at `t0` with the given window usage.
    fn ack_usage(cc: &mut NewReno, t0: Instant, cwnd_limited: bool, max_in_flight: u64) {
        let pk = [acked(0, t0)];
        let rtt = RttEstimator::default();
        let mut s = AckSample::new(&pk, &rtt, None, 0);
        s.cwnd_limited = cwnd_limited;
        s.max_bytes_in_flight = max_in_flight;
        cc.on_ack(t0, &s);
    }

    #[test]
    fn underused_window_does_not_grow() {
        let t0 = Instant::now();
        let mut cc = NewReno::new(NewRenoConfig::default(), MDS);
        // Slow start, window 12 000: in flight below half the window → no growth.
        ack_usage(&mut cc, t0, false, 5999);
        assert_eq!(cc.window(), 12_000);
        // The delivery-rate app-limited mark alone does not stop growth.
        let pk = [acked(0, t0)];
        let rtt = RttEstimator::default();
        let mut s = AckSample::new(&pk, &rtt, None, 0);
        s.app_limited = true;
        cc.on_ack(t0, &s);
        assert_eq!(cc.window(), 13_200);
    }

    #[test]
    fn slow_start_grows_when_half_the_window_is_used() {
        let t0 = Instant::now();
        let mut cc = NewReno::new(NewRenoConfig::default(), MDS);
        ack_usage(&mut cc, t0, false, 6000);
        assert_eq!(cc.window(), 13_200);
        // Doubling stops once the window exceeds twice the usage.
        ack_usage(&mut cc, t0, false, 6000);
        assert_eq!(cc.window(), 13_200);
        ack_usage(&mut cc, t0, true, 6000);
        assert_eq!(cc.window(), 14_400);
    }

    #[test]
    fn congestion_avoidance_grows_only_when_window_limited() {
        let t0 = Instant::now();
        let mut cc = NewReno::new(NewRenoConfig::default(), MDS);
        let e = CongestionEvent::new_loss(t0, 1200, 1, false, 0);
        cc.on_congestion_event(t0 + ms(1), &e);
        assert_eq!(cc.window(), 6000);
        assert!(!cc.in_slow_start());
        // Sent after recovery started; bytes in flight reached the whole window but the
        // sender was never held back: no growth outside slow start.
        let sent = t0 + ms(2);
        for _ in 0..10 {
            ack_usage(&mut cc, sent, false, 6000);
        }
        assert_eq!(cc.window(), 6000);
        // Window-limited: +1 datagram per window acknowledged.
        for _ in 0..5 {
            ack_usage(&mut cc, sent, true, 6000);
        }
        assert_eq!(cc.window(), 7200);
    }

    #[test]
    fn minimum_window_floor_and_mtu_update() {
        let t0 = Instant::now();
        let mut cc = NewReno::new(NewRenoConfig::default(), MDS);
        for i in 0..10 {
            let e = CongestionEvent::new_loss(t0 + ms(i * 10), 1200, 1, false, 0);
            cc.on_congestion_event(t0 + ms(i * 10 + 5), &e);
        }
        assert_eq!(cc.window(), 2400);
        cc.on_mtu_update(1500);
        assert_eq!(cc.window(), 3000);
    }
}
