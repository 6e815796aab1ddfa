//! Delivery-rate estimation (after draft-cheng-iccrg-delivery-rate-estimation, simplified).
//!
//! At send time the estimator hands out a [`RateSnapshot`] which the connection stores in
//! [`SentPacket::rate`]. When packets are acknowledged, the estimator
//! compares the data delivered since the newest acknowledged packet was sent with the
//! time that took (the larger of the send and the ACK interval) and yields one
//! [`RateSample`] per ACK frame.

use crate::recovery::SentPacket;
use std::time::{Duration, Instant};

/// Per-packet delivery state captured at send time.
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub struct RateSnapshot {
    /// Bytes delivered on the connection when the packet was sent.
    delivered: u64,
    /// When `delivered` last changed, as of sending.
    delivered_time: Instant,
    /// Send time of the packet most recently delivered, as of sending.
    first_sent_time: Instant,
    /// Sent while the sender was application-limited.
    app_limited: bool,
}

/// One delivery-rate sample (per ACK frame).
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub struct RateSample {
    /// Estimated delivery rate in bytes per second.
    pub delivery_rate: u64,
    /// Bytes delivered over `interval`.
    pub delivered: u64,
    /// The sampling interval: `max(send interval, ACK interval)`.
    pub interval: Duration,
    /// The newest acknowledged packet was sent while application-limited: the rate is
    /// a lower bound of what the path can do (use it only if it raises an estimate).
    pub is_app_limited: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    prior_delivered: u64,
    newest_sent: Instant,
    send_elapsed: Duration,
    ack_elapsed: Duration,
    app_limited: bool,
}

/// Delivery-rate estimator of one path (one congestion controller).
///
/// Call order: [`on_sent`](Self::on_sent) for each in-flight packet (store the snapshot
/// in [`SentPacket::rate`]); [`on_app_limited`](Self::on_app_limited) when the sender
/// runs out of data with window to spare; per ACK frame,
/// [`on_packet_acked`](Self::on_packet_acked) for each newly acknowledged packet, then
/// [`take_sample`](Self::take_sample) once.
#[derive(Debug, Clone, Default)]
pub struct DeliveryRateEstimator {
    delivered: u64,
    delivered_time: Option<Instant>,
    first_sent_time: Option<Instant>,
    /// `delivered` value at which the app-limited phase ends; 0 when not app-limited.
    app_limited_until: u64,
    pending: Option<Pending>,
}

impl DeliveryRateEstimator {
    /// A fresh estimator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes delivered (acknowledged) so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Whether the sender is currently marked application-limited.
    pub fn is_app_limited(&self) -> bool {
        self.app_limited_until != 0
    }

    /// A packet is about to be sent at `now` with `bytes_in_flight` bytes already in
    /// flight (before it). Returns the state to store in [`SentPacket::rate`].
    pub fn on_sent(&mut self, now: Instant, bytes_in_flight: u64) -> RateSnapshot {
        if bytes_in_flight == 0 || self.delivered_time.is_none() {
            // Restart the intervals after idle so that the idle time is not counted.
            self.first_sent_time = Some(now);
            self.delivered_time = Some(now);
        }
        RateSnapshot {
            delivered: self.delivered,
            delivered_time: self.delivered_time.unwrap_or(now),
            first_sent_time: self.first_sent_time.unwrap_or(now),
            app_limited: self.app_limited_until != 0,
        }
    }

    /// The sender has no more data to send although the window allows it: samples until
    /// everything now in flight is delivered are marked application-limited.
    pub fn on_app_limited(&mut self, bytes_in_flight: u64) {
        self.app_limited_until = self.delivered.saturating_add(bytes_in_flight).max(1);
    }

    /// A packet was newly acknowledged at `now`. Packets without a snapshot or not in
    /// flight are ignored.
    pub fn on_packet_acked<T>(&mut self, now: Instant, packet: &SentPacket<T>) {
        let Some(snap) = packet.rate.filter(|_| packet.in_flight) else {
            return;
        };
        self.delivered = self.delivered.saturating_add(u64::from(packet.size));
        self.delivered_time = Some(now);
        // Sample from the most recently sent packet acknowledged by this ACK.
        if self
            .pending
            .is_none_or(|p| packet.time_sent >= p.newest_sent)
        {
            self.pending = Some(Pending {
                prior_delivered: snap.delivered,
                newest_sent: packet.time_sent,
                send_elapsed: packet
                    .time_sent
                    .saturating_duration_since(snap.first_sent_time),
                ack_elapsed: now.saturating_duration_since(snap.delivered_time),
                app_limited: snap.app_limited,
            });
            self.first_sent_time = Some(packet.time_sent);
        }
    }

    /// Finish the current ACK frame: the sample, or `None` if nothing was acknowledged or
    /// the interval is shorter than `min_rtt` (such samples overestimate the rate).
    pub fn take_sample(&mut self, min_rtt: Duration) -> Option<RateSample> {
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        let p = self.pending.take()?;
        let interval = p.send_elapsed.max(p.ack_elapsed);
        if interval.is_zero() || interval < min_rtt {
            return None;
        }
        let delivered = self.delivered.saturating_sub(p.prior_delivered);
        let rate = u128::from(delivered) * 1_000_000_000 / interval.as_nanos().max(1);
        Some(RateSample {
            delivery_rate: u64::try_from(rate).unwrap_or(u64::MAX),
            delivered,
            interval,
            is_app_limited: p.app_limited,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn sent(t: Instant, rate: RateSnapshot) -> SentPacket<()> {
        SentPacket {
            time_sent: t,
            size: 1000,
            ack_eliciting: true,
            in_flight: true,
            rate: Some(rate),
            info: (),
        }
    }

    #[test]
    fn steady_flow_measures_rate() {
        // One 1000-byte packet every 1 ms, each acknowledged 50 ms later: 1 MB/s.
        let t0 = Instant::now();
        let mut e = DeliveryRateEstimator::new();
        let mut packets = Vec::new();
        let mut last = None;
        for i in 0..200u64 {
            let now = t0 + ms(i);
            // Acknowledge the packet sent 50 ms ago.
            if i >= 50 {
                let p: &SentPacket<()> = &packets[(i - 50) as usize];
                e.on_packet_acked(now, p);
                last = e.take_sample(ms(50));
            }
            let in_flight = 1000 * (i.min(50));
            packets.push(sent(now, e.on_sent(now, in_flight)));
        }
        let s = last.unwrap();
        assert!(!s.is_app_limited);
        assert!(
            (950_000..=1_050_000).contains(&s.delivery_rate),
            "rate {}",
            s.delivery_rate
        );
    }

    #[test]
    fn short_interval_rejected_and_app_limited_marked() {
        let t0 = Instant::now();
        let mut e = DeliveryRateEstimator::new();
        e.on_app_limited(0);
        assert!(e.is_app_limited());
        let p = sent(t0, e.on_sent(t0, 0));
        e.on_packet_acked(t0 + ms(10), &p);
        // 10 ms interval < 20 ms min_rtt: rejected.
        assert_eq!(e.take_sample(ms(20)), None);
        assert!(!e.is_app_limited());
        let p = sent(t0 + ms(10), e.on_sent(t0 + ms(10), 0));
        e.on_packet_acked(t0 + ms(30), &p);
        let s = e.take_sample(ms(20)).unwrap();
        assert_eq!(s.delivered, 1000);
        assert_eq!(s.delivery_rate, 50_000);
        assert!(!s.is_app_limited);
        assert_eq!(e.take_sample(ms(20)), None);
    }
}
