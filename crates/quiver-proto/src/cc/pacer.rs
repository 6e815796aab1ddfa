//! Token-bucket pacer (RFC 9002 §7.7).

use std::time::{Duration, Instant};

/// Default burst size in packets (about the initial window, RFC 9002 §7.7).
pub const DEFAULT_BURST_PACKETS: u64 = 10;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Spreads packets over time at the controller's pacing rate, or at
/// `1.25 · window / smoothed_rtt` when the controller gives none (RFC 9002 §7.7),
/// allowing bursts of up to [`DEFAULT_BURST_PACKETS`] packets (never more than the
/// window).
///
/// Call [`delay`](Self::delay) before building a packet; `None` means send now, then
/// report the packet with [`on_sent`](Self::on_sent). The rate is floored at one MTU per
/// second, so the pacer never blocks forever.
#[derive(Debug, Clone)]
pub struct Pacer {
    burst_packets: u64,
    tokens: u64,
    capacity: u64,
    last_refill: Option<Instant>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new(DEFAULT_BURST_PACKETS)
    }
}

impl Pacer {
    /// A pacer allowing bursts of `burst_packets` (at least 1) packets; the bucket
    /// starts full.
    pub fn new(burst_packets: u64) -> Self {
        Self {
            burst_packets: burst_packets.max(1),
            tokens: 0,
            capacity: 0,
            last_refill: None,
        }
    }

    /// The rate in bytes per second the pacer uses: the controller's `pacing_rate`, or
    /// `1.25 · window / smoothed_rtt`; `None` (unpaced) when the RTT is zero.
    pub fn rate(smoothed_rtt: Duration, window: u64, pacing_rate: Option<u64>) -> Option<u64> {
        if let Some(r) = pacing_rate {
            return Some(r);
        }
        let rtt = smoothed_rtt.as_nanos();
        if rtt == 0 {
            return None;
        }
        let r = u128::from(window) * 5 * NANOS_PER_SEC / (4 * rtt);
        Some(u64::try_from(r).unwrap_or(u64::MAX))
    }

    /// When a packet of `bytes_to_send` bytes may be sent: `None` = now, otherwise the
    /// instant at which enough tokens will have accumulated.
    pub fn delay(
        &mut self,
        now: Instant,
        bytes_to_send: u64,
        mtu: u16,
        smoothed_rtt: Duration,
        window: u64,
        pacing_rate: Option<u64>,
    ) -> Option<Instant> {
        let mtu = u64::from(mtu).max(1);
        let capacity = self.burst_packets.saturating_mul(mtu).min(window).max(mtu);
        if self.last_refill.is_none() {
            // First use: allow an initial burst.
            self.tokens = capacity;
            self.last_refill = Some(now);
        }
        self.capacity = capacity;
        self.tokens = self.tokens.min(capacity);

        let Some(rate) = Self::rate(smoothed_rtt, window, pacing_rate) else {
            self.tokens = capacity;
            return None;
        };
        let rate = rate.max(mtu);

        if let Some(last) = self.last_refill {
            let elapsed = now.saturating_duration_since(last).as_nanos();
            let credit = u128::from(rate) * elapsed / NANOS_PER_SEC;
            if credit > 0 {
                let credit = u64::try_from(credit).unwrap_or(u64::MAX);
                self.tokens = self.tokens.saturating_add(credit).min(capacity);
                self.last_refill = Some(now);
            }
        }

        let need = bytes_to_send.min(capacity);
        if self.tokens >= need {
            return None;
        }
        let missing = u128::from(need - self.tokens);
        let nanos = (missing * NANOS_PER_SEC).div_ceil(u128::from(rate));
        let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        // Tokens are accounted up to `last_refill` (≤ now): the bucket holds `need` bytes
        // `wait` after it.
        let base = self.last_refill.unwrap_or(now);
        let at = base
            .checked_add(wait)
            .or_else(|| now.checked_add(Duration::from_secs(1)))
            .unwrap_or(now);
        Some(at.max(now))
    }

    /// A packet of `bytes` was sent.
    pub fn on_sent(&mut self, bytes: u64) {
        self.tokens = self.tokens.saturating_sub(bytes);
    }

    /// Tokens currently in the bucket (bytes).
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: u16 = 1200;

    #[test]
    fn rate_from_window() {
        // 1.25 · 120000 B / 100 ms = 1.5 MB/s.
        assert_eq!(
            Pacer::rate(Duration::from_millis(100), 120_000, None),
            Some(1_500_000)
        );
        assert_eq!(Pacer::rate(Duration::ZERO, 120_000, None), None);
        assert_eq!(Pacer::rate(Duration::ZERO, 120_000, Some(7)), Some(7));
    }

    /// Simulate a sender that always has data: send whenever allowed, jump to the
    /// deadline otherwise. Returns send times.
    fn run(p: &mut Pacer, t0: Instant, n: usize, rate: Option<u64>) -> Vec<Instant> {
        let mut now = t0;
        let mut sent = Vec::new();
        let mut guard = 0;
        while sent.len() < n {
            guard += 1;
            assert!(guard < 10 * n + 100, "pacer stalls");
            match p.delay(
                now,
                u64::from(MTU),
                MTU,
                Duration::from_millis(100),
                120_000,
                rate,
            ) {
                None => {
                    p.on_sent(u64::from(MTU));
                    sent.push(now);
                }
                Some(t) => {
                    assert!(t > now);
                    now = t;
                }
            }
        }
        sent
    }

    #[test]
    fn burst_then_spacing_matches_window_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        let sent = run(&mut p, t0, 110, None);
        // The first 10 packets go out at once.
        assert!(sent[..10].iter().all(|&t| t == t0));
        assert!(sent[10] > t0);
        // Then one 1200-byte packet per 800 µs at 1.5 MB/s: 100 packets in ~80 ms.
        let span = sent[109] - sent[9];
        let expected = Duration::from_micros(80_000);
        assert!(
            span >= expected - Duration::from_micros(100)
                && span <= expected + Duration::from_micros(100),
            "span {span:?}"
        );
    }

    #[test]
    fn controller_rate_and_floor() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1);
        // 12 kB/s: 100 ms per 1200-byte packet.
        let sent = run(&mut p, t0, 11, Some(12_000));
        let span = sent[10] - sent[0];
        assert!(
            span >= Duration::from_millis(999) && span <= Duration::from_millis(1001),
            "{span:?}"
        );
        // A zero rate is floored at one MTU per second, never blocking forever.
        let mut p = Pacer::new(1);
        let sent = run(&mut p, t0, 3, Some(0));
        assert!(sent[2] - sent[0] <= Duration::from_millis(2001));
    }

    #[test]
    fn idle_refills_only_to_capacity() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        run(&mut p, t0, 20, None);
        let later = t0 + Duration::from_secs(10);
        let sent = run(&mut p, later, 15, None);
        assert_eq!(sent.iter().filter(|&&t| t == later).count(), 10);
        // Oversized requests wait for a full bucket instead of forever.
        assert!(p
            .delay(
                later,
                1 << 40,
                MTU,
                Duration::from_millis(100),
                120_000,
                None
            )
            .is_some());
    }
}
