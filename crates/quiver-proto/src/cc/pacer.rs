//! Token-bucket pacer (RFC 9002 §7.7).
//!
//! The bucket's size decides how bursty the sender is. A driver's timer fires with some
//! granularity (tokio's is about 1 ms), so a bucket smaller than what the rate sends in
//! one timer period makes the sender wait on timers it cannot hit precisely, and caps
//! the throughput well below the rate. The bucket is therefore sized to cover one
//! [`PacerConfig::granularity`] of sending at the current rate, bounded between
//! [`PacerConfig::min_burst`] and [`PacerConfig::max_burst`] packets and never above the
//! congestion window. On slow links the lower bound rules (10 packets, RFC 9002 §7.7's
//! initial window); on fast ones the bursts grow so that the timer never becomes the
//! bottleneck.

use std::time::{Duration, Instant};

/// Default smallest burst in packets (about the initial window, RFC 9002 §7.7).
pub const DEFAULT_BURST_PACKETS: u64 = 10;
/// Default largest burst in packets.
pub const DEFAULT_MAX_BURST_PACKETS: u64 = 256;
/// Default timer granularity the bursts are sized for.
pub const DEFAULT_PACING_GRANULARITY: Duration = Duration::from_millis(2);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// How bursty the [`Pacer`] may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    /// Smallest bucket, in packets of the current MTU (at least 1).
    pub min_burst: u64,
    /// Largest bucket, in packets of the current MTU (at least `min_burst`).
    pub max_burst: u64,
    /// The bucket holds what the pacing rate sends in this long: set it to (about twice)
    /// the resolution of the timer that drives the connection.
    pub granularity: Duration,
}

impl Default for PacerConfig {
    fn default() -> Self {
        Self {
            min_burst: DEFAULT_BURST_PACKETS,
            max_burst: DEFAULT_MAX_BURST_PACKETS,
            granularity: DEFAULT_PACING_GRANULARITY,
        }
    }
}

impl PacerConfig {
    /// A fixed bucket of `packets` packets, whatever the rate.
    pub fn fixed(packets: u64) -> Self {
        Self {
            min_burst: packets,
            max_burst: packets,
            granularity: Duration::ZERO,
        }
    }

    /// Bucket size in bytes for `rate` bytes/s (`None`: unpaced), `mtu` and `window`.
    pub fn capacity(&self, rate: Option<u64>, mtu: u64, window: u64) -> u64 {
        let min = self.min_burst.max(1).saturating_mul(mtu);
        let max = self
            .max_burst
            .max(self.min_burst)
            .max(1)
            .saturating_mul(mtu);
        let by_rate = match rate {
            Some(r) => {
                let b = u128::from(r) * self.granularity.as_nanos() / NANOS_PER_SEC;
                u64::try_from(b).unwrap_or(u64::MAX)
            }
            None => max,
        };
        by_rate.clamp(min, max).min(window).max(mtu)
    }
}

/// Spreads packets over time at the controller's pacing rate, or at
/// `1.25 · window / smoothed_rtt` when the controller gives none (RFC 9002 §7.7),
/// allowing bursts sized by its [`PacerConfig`] (never more than the window).
///
/// Call [`delay`](Self::delay) before building a packet; `None` means send now, then
/// report the packet with [`on_sent`](Self::on_sent). The rate is floored at one MTU per
/// second, so the pacer never blocks forever.
#[derive(Debug, Clone)]
pub struct Pacer {
    config: PacerConfig,
    tokens: u64,
    capacity: u64,
    last_refill: Option<Instant>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::with_config(PacerConfig::default())
    }
}

impl Pacer {
    /// A pacer with a fixed bucket of `burst_packets` (at least 1) packets; the bucket
    /// starts full.
    pub fn new(burst_packets: u64) -> Self {
        Self::with_config(PacerConfig::fixed(burst_packets.max(1)))
    }

    /// A pacer whose bucket follows `config`; the bucket starts full.
    pub fn with_config(config: PacerConfig) -> Self {
        Self {
            config,
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
        let rate = Self::rate(smoothed_rtt, window, pacing_rate).map(|r| r.max(mtu));
        let capacity = self.config.capacity(rate, mtu, window);
        if self.last_refill.is_none() {
            // First use: allow an initial burst.
            self.tokens = capacity;
            self.last_refill = Some(now);
        }
        self.capacity = capacity;
        self.tokens = self.tokens.min(capacity);

        let Some(rate) = rate else {
            self.tokens = capacity;
            return None;
        };

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

    /// The bucket size computed by the last [`delay`](Self::delay) call (bytes).
    pub fn capacity(&self) -> u64 {
        self.capacity
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

    #[test]
    fn bucket_follows_rate_and_granularity() {
        let c = PacerConfig::default();
        let mtu = 1452;
        // 5 Mbit/s: 2 ms of sending is 1250 B, below the 10-packet floor.
        assert_eq!(c.capacity(Some(625_000), mtu, u64::MAX), 10 * mtu);
        // 2 Gbit/s: 2 ms is 500 kB, above the 256-packet ceiling.
        assert_eq!(c.capacity(Some(250_000_000), mtu, u64::MAX), 256 * mtu);
        // 400 Mbit/s: 2 ms = 100 kB = about 69 packets.
        assert_eq!(c.capacity(Some(50_000_000), mtu, u64::MAX), 100_000);
        // Never more than the window, never less than one packet.
        assert_eq!(c.capacity(Some(50_000_000), mtu, 30_000), 30_000);
        assert_eq!(c.capacity(Some(50_000_000), mtu, 10), mtu);
        // Unpaced (no RTT yet): the largest bucket the window allows.
        assert_eq!(c.capacity(None, mtu, 40_000), 40_000);
        assert_eq!(
            PacerConfig::fixed(3).capacity(Some(1 << 40), mtu, u64::MAX),
            3 * mtu
        );
    }

    #[test]
    fn fast_sender_bursts_cover_the_granularity() {
        // 1.5 GB/s through a 2 ms timer: each wake-up may send 2 ms worth (capped at
        // 256 packets), so a sender woken every 2 ms keeps the rate.
        let t0 = Instant::now();
        let mut p = Pacer::default();
        let rate = 1_500_000_000;
        let mut now = t0;
        let mut bytes = 0u64;
        for _ in 0..50 {
            while p
                .delay(
                    now,
                    u64::from(MTU),
                    MTU,
                    Duration::from_millis(1),
                    u64::MAX,
                    Some(rate),
                )
                .is_none()
            {
                p.on_sent(u64::from(MTU));
                bytes += u64::from(MTU);
            }
            now += Duration::from_millis(2);
        }
        let secs = (now - t0).as_secs_f64();
        let achieved = bytes as f64 / secs;
        // 256 packets of 1200 B per 2 ms = 153.6 MB/s: the ceiling of a 2 ms timer.
        assert!(achieved > 150e6, "{achieved}");
        // A fixed 10-packet bucket would allow only 6 MB/s with the same timer.
        assert_eq!(p.capacity(), 256 * u64::from(MTU));
    }
}
