//! Datagram packetization-layer path MTU discovery (DPLPMTUD; RFC 9000 §14.3,
//! RFC 8899).
//!
//! [`MtuDiscovery`] is a small sans-IO state machine owned by the connection:
//!
//! ```text
//! DISABLED                         (no config, or nothing above the base to find)
//! BASE ──handshake confirmed──▶ SEARCHING ──converged──▶ SEARCH_COMPLETE
//!  ▲                                 ▲                         │
//!  └──────── black hole ─────────────┴──── interval elapsed ───┘
//! ```
//!
//! - **Search**: the first probe tries the upper bound (the common case: the whole
//!   path carries it); after that, a binary search between the largest size known to
//!   work and the smallest known to fail, until they are closer than
//!   [`MtuDiscoveryConfig::minimum_change`]. One probe is outstanding at a time.
//! - **Probes** are 1-RTT packets of PING + PADDING of exactly the probe size. They are
//!   ack-eliciting and covered by loss detection and PTO, but do not count toward bytes
//!   in flight for congestion control, and their loss causes no congestion response
//!   (RFC 9000 §14.4). [`MAX_PROBES`] losses at one size mark that size as failed.
//! - **Black holes** (RFC 8899 §4.3): [`BLACK_HOLE_THRESHOLD`] or more consecutive lost
//!   packets larger than the base — no larger packet sent after them acknowledged —
//!   while a packet no larger than the base, sent at least one PTO after the first of
//!   them, *was* acknowledged, mean the path no longer carries the current size: fall
//!   back to the base and search again below the size that failed. While a PTO is
//!   outstanding the connection sends at most base-size packets, so that such a small
//!   packet exists even when every full-size packet is dropped.
//! - The upper bound is the minimum of [`MtuDiscoveryConfig::upper_bound`], our
//!   endpoint's maximum UDP payload size and the peer's `max_udp_payload_size`.

use super::spaces::SentFrames;
use super::Connection;
use crate::config::MtuDiscoveryConfig;
use crate::frame;
use crate::packet::PacketNumber;
use crate::recovery::SentPacket;
use crate::shared::Epoch;
use std::time::{Duration, Instant};

/// Losses of probes of one size after which that size is considered too large.
pub const MAX_PROBES: u8 = 3;
/// Consecutive lost packets larger than the base that, with a smaller packet getting
/// through, indicate a black hole.
pub const BLACK_HOLE_THRESHOLD: u32 = 3;
/// AEAD tag length of every QUIC v1 cipher suite.
const TAG_LEN: usize = 16;
/// The data space of path 0.
const DATA_SPACE: usize = 2;

/// Where the search stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Discovery is off, or the base is already the upper bound.
    Disabled,
    /// Waiting for handshake confirmation (or for a fallback to settle).
    Base,
    /// Probing.
    Searching,
    /// Converged; search again after the interval if the upper bound was not reached.
    Complete,
}

/// The probe currently in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    pn: u64,
    size: u16,
}

/// Counters reported through `ConnectionStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MtudCounters {
    pub(crate) probes_sent: u64,
    pub(crate) probes_lost: u64,
    pub(crate) black_holes: u64,
}

/// Black-hole detector state (RFC 8899 §4.3).
#[derive(Debug, Default, Clone, Copy)]
struct BlackHole {
    /// Largest acknowledged packet number of a packet larger than the base.
    largest_large_acked: Option<u64>,
    /// Largest acknowledged packet no larger than the base: number and send time.
    small_acked: Option<(u64, Instant)>,
    /// Lost packets larger than the base not followed by an acknowledged one.
    streak: u32,
    /// First packet of the streak: number and send time.
    streak_first: Option<(u64, Instant)>,
}

/// The DPLPMTUD state machine of one path. See the [module documentation](self).
#[derive(Debug, Clone)]
pub(crate) struct MtuDiscovery {
    phase: Phase,
    /// The size that always works (RFC 9000 §14: 1200 unless configured higher).
    base: u16,
    /// The size in use.
    current: u16,
    /// Largest size we may probe.
    upper: u16,
    /// Smallest size known (or assumed) to fail; `upper + 1` when none did.
    failed: u16,
    /// Stop when `failed - current` is below this.
    minimum_change: u16,
    interval: Duration,
    /// Size to probe next and how many probes of it were lost.
    next_size: u16,
    losses_at_size: u8,
    in_flight: Option<Probe>,
    /// When a completed search is repeated.
    research_at: Option<Instant>,
    black_hole: BlackHole,
    counters: MtudCounters,
}

impl MtuDiscovery {
    /// A new machine at `base`; `local_max` is our endpoint's largest UDP payload.
    pub(crate) fn new(config: Option<&MtuDiscoveryConfig>, base: u16, local_max: u16) -> Self {
        let (upper, minimum_change, interval, phase) = match config {
            Some(c) => (
                c.upper_bound.min(local_max).max(base),
                c.minimum_change.max(1),
                c.interval,
                Phase::Base,
            ),
            None => (base, 1, Duration::MAX, Phase::Disabled),
        };
        let mut m = Self {
            phase,
            base,
            current: base,
            upper,
            failed: upper.saturating_add(1),
            minimum_change,
            interval,
            next_size: upper,
            losses_at_size: 0,
            in_flight: None,
            research_at: None,
            black_hole: BlackHole::default(),
            counters: MtudCounters::default(),
        };
        if m.upper <= m.base {
            m.phase = Phase::Disabled;
        }
        m
    }

    /// The path MTU in use.
    pub(crate) fn current(&self) -> u16 {
        self.current
    }

    /// The base (fallback) size.
    pub(crate) fn base(&self) -> u16 {
        self.base
    }

    pub(crate) fn counters(&self) -> MtudCounters {
        self.counters
    }

    /// The peer's `max_udp_payload_size` (and our current size after applying it).
    pub(crate) fn on_peer_max_udp_payload_size(&mut self, peer_max: u16, current: u16) {
        self.upper = self.upper.min(peer_max);
        self.base = self.base.min(current);
        self.current = current;
        self.failed = self.failed.min(self.upper.saturating_add(1));
        self.next_size = self.upper;
        if self.upper <= self.current {
            self.phase = Phase::Disabled;
        }
    }

    /// The handshake is confirmed: start searching.
    pub(crate) fn on_handshake_confirmed(&mut self) {
        if self.phase == Phase::Base {
            self.start_search();
        }
    }

    fn start_search(&mut self) {
        if self.failed.saturating_sub(self.current) <= 1 || self.upper <= self.current {
            self.complete();
            return;
        }
        self.phase = Phase::Searching;
        self.losses_at_size = 0;
        self.next_size = if self.failed > self.upper {
            // Nothing failed yet: try the upper bound first.
            self.upper
        } else {
            self.midpoint()
        };
    }

    fn midpoint(&self) -> u16 {
        self.current + (self.failed - self.current) / 2
    }

    fn complete(&mut self) {
        self.phase = Phase::Complete;
        self.in_flight = None;
    }

    /// Whether the search finished for now.
    #[cfg(test)]
    fn is_complete(&self) -> bool {
        self.phase == Phase::Complete
    }

    /// The size of a probe to send now, if one is due. `now` re-arms completed searches.
    pub(crate) fn poll_probe(&mut self, now: Instant) -> Option<u16> {
        if self.phase == Phase::Complete
            && self.research_at.is_some_and(|t| now >= t)
            && self.current < self.upper
        {
            self.research_at = None;
            self.failed = self.upper.saturating_add(1);
            self.start_search();
        }
        if self.phase != Phase::Searching || self.in_flight.is_some() {
            return None;
        }
        Some(self.next_size)
    }

    /// A probe of `size` bytes went out as packet `pn`; `now` is its send time.
    pub(crate) fn on_probe_sent(&mut self, now: Instant, pn: u64, size: u16) {
        self.in_flight = Some(Probe { pn, size });
        self.counters.probes_sent += 1;
        self.research_at = Some(now + self.interval.min(Duration::from_secs(1 << 30)));
    }

    /// Bytes of the outstanding probe (excluded from congestion control's view).
    pub(crate) fn probe_bytes_in_flight(&self) -> u64 {
        self.in_flight.map_or(0, |p| u64::from(p.size))
    }

    /// Whether `pn` is the outstanding probe.
    pub(crate) fn is_probe(&self, pn: u64) -> bool {
        self.in_flight.is_some_and(|p| p.pn == pn)
    }

    /// The probe `pn` was acknowledged: returns the new path MTU if it grew.
    pub(crate) fn on_probe_acked(&mut self, now: Instant, pn: u64) -> Option<u16> {
        let probe = self.in_flight.filter(|p| p.pn == pn)?;
        self.in_flight = None;
        let raised = (probe.size > self.current).then(|| {
            self.current = probe.size;
            probe.size
        });
        self.losses_at_size = 0;
        self.advance(now);
        raised
    }

    /// The probe `pn` was declared lost.
    pub(crate) fn on_probe_lost(&mut self, now: Instant, pn: u64) {
        let Some(probe) = self.in_flight.filter(|p| p.pn == pn) else {
            return;
        };
        self.in_flight = None;
        self.counters.probes_lost += 1;
        self.losses_at_size += 1;
        if self.losses_at_size >= MAX_PROBES {
            self.failed = self.failed.min(probe.size);
            self.losses_at_size = 0;
            self.advance(now);
        }
    }

    /// Pick the next size, or finish.
    fn advance(&mut self, now: Instant) {
        if self.phase != Phase::Searching {
            return;
        }
        let gap = self.failed.saturating_sub(self.current);
        if self.current >= self.upper || gap <= 1 || gap < self.minimum_change {
            self.complete();
            self.research_at = Some(now + self.interval.min(Duration::from_secs(1 << 30)));
            return;
        }
        self.next_size = self.midpoint();
    }

    /// A packet that is not a probe was acknowledged.
    pub(crate) fn on_packet_acked(&mut self, pn: u64, size: u16, time_sent: Instant) {
        let bh = &mut self.black_hole;
        if size > self.base {
            bh.largest_large_acked = Some(bh.largest_large_acked.map_or(pn, |l| l.max(pn)));
            if bh.streak_first.is_some_and(|(first, _)| pn > first) {
                bh.streak = 0;
                bh.streak_first = None;
            }
        } else if bh.small_acked.is_none_or(|(l, _)| pn > l) {
            bh.small_acked = Some((pn, time_sent));
        }
    }

    /// A packet that is not a probe was declared lost. Returns the new (base) MTU when
    /// this completes a black-hole detection.
    pub(crate) fn on_packet_lost(
        &mut self,
        pn: u64,
        size: u16,
        time_sent: Instant,
        pto: Duration,
    ) -> Option<u16> {
        if size <= self.base || self.current <= self.base {
            return None;
        }
        let bh = &mut self.black_hole;
        if bh.largest_large_acked.is_some_and(|l| l > pn) {
            // A larger packet sent later got through: ordinary loss.
            bh.streak = 0;
            bh.streak_first = None;
            return None;
        }
        bh.streak += 1;
        let (first_pn, first_time) = *bh.streak_first.get_or_insert((pn, time_sent));
        let small_later = bh
            .small_acked
            .is_some_and(|(spn, t)| spn > first_pn && t >= first_time + pto);
        if bh.streak < BLACK_HOLE_THRESHOLD || !small_later {
            return None;
        }
        Some(self.on_black_hole())
    }

    /// Fall back to the base; search again below the size that failed.
    fn on_black_hole(&mut self) -> u16 {
        self.counters.black_holes += 1;
        self.failed = self.current;
        self.current = self.base;
        self.black_hole = BlackHole::default();
        self.in_flight = None;
        self.phase = Phase::Base;
        self.start_search();
        self.base
    }
}

impl Connection {
    /// The largest datagram to build now: the base while a PTO is outstanding (so that
    /// connectivity is confirmed with packets that survive a black hole), else the
    /// path MTU.
    pub(super) fn mtud_send_limit(&self) -> usize {
        if self.pto_count > 0 && self.handshake_confirmed {
            usize::from(self.path.mtu.min(self.mtud.base()))
        } else {
            usize::from(self.path.mtu)
        }
    }

    /// The handshake got confirmed: let discovery start.
    pub(super) fn mtud_on_handshake_confirmed(&mut self) {
        self.mtud.on_handshake_confirmed();
    }

    /// Apply the peer's `max_udp_payload_size` (already clamped into `path.mtu`).
    pub(super) fn mtud_on_peer_params(&mut self, peer_max: u16) {
        self.mtud
            .on_peer_max_udp_payload_size(peer_max.max(1200), self.path.mtu);
    }

    /// Write a PMTU probe into the empty `buf` if one is due; returns its size.
    pub(super) fn mtud_poll_probe(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        if !self.handshake_confirmed
            || self.state != super::State::Established
            || self.pto_count > 0
            || !self.levels[Epoch::Data.idx()].has_keys()
        {
            return None;
        }
        let size = self.mtud.poll_probe(now)?;
        let space = &mut self.spaces[DATA_SPACE];
        let pn = space.take_pn();
        let number = PacketNumber::new(pn, space.sent.largest_acked());
        let header = self.header_for(Epoch::Data, number);
        let start = buf.len();
        let partial = header.encode(buf);
        buf.push(frame::frame_type::PING as u8);
        buf.resize(start + usize::from(size) - TAG_LEN, 0);
        let frames = self.trace_frames(Epoch::Data, &buf[start + partial.header_len..]);
        let keys = self.levels[Epoch::Data.idx()].local.as_ref()?;
        if partial
            .finish(buf, &*keys.header, &*keys.packet, pn)
            .is_err()
        {
            buf.truncate(start);
            return None;
        }
        self.key_update_on_sent(pn);
        let len = buf.len() - start;
        self.trace_packet_sent(now, Epoch::Data, pn, len, frames);
        self.spaces[DATA_SPACE].sent.on_packet_sent(
            pn,
            SentPacket {
                time_sent: now,
                size: len as u16,
                ack_eliciting: true,
                in_flight: true,
                rate: None,
                info: SentFrames {
                    ect0: self.ecn.on_packet_sent(Epoch::Data),
                    ..SentFrames::default()
                },
            },
        );
        self.mtud.on_probe_sent(now, pn, len as u16);
        self.stats.packets_tx += 1;
        tracing::debug!(side = ?self.side, size = len, pn, "PMTU probe sent");
        Some(len)
    }

    /// Handle acknowledged and lost packets of one ACK frame before congestion control
    /// sees them: a probe is removed from both lists (its acknowledgement raises the
    /// MTU; its loss counts toward [`MAX_PROBES`]); other acknowledged packets feed the
    /// black-hole detector.
    pub(super) fn mtud_on_ack(
        &mut self,
        now: Instant,
        space_idx: usize,
        acked: &mut Vec<(u64, SentPacket<SentFrames>)>,
        lost: &mut Vec<(u64, SentPacket<SentFrames>)>,
    ) {
        if space_idx != DATA_SPACE {
            return;
        }
        self.mtud_take_lost_probe(now, lost);
        let mut raised = None;
        acked.retain(|(pn, p)| {
            if self.mtud.is_probe(*pn) {
                raised = self.mtud.on_probe_acked(now, *pn);
                return false;
            }
            self.mtud.on_packet_acked(*pn, p.size, p.time_sent);
            true
        });
        if let Some(mtu) = raised {
            self.set_path_mtu(mtu);
        }
    }

    /// Handle lost packets before congestion control sees them: a lost probe is removed
    /// from `lost` (no congestion response, RFC 9000 §14.4); the others feed the
    /// black-hole detector.
    pub(super) fn mtud_on_lost(
        &mut self,
        now: Instant,
        space_idx: usize,
        lost: &mut Vec<(u64, SentPacket<SentFrames>)>,
    ) {
        if space_idx != DATA_SPACE {
            return;
        }
        self.mtud_take_lost_probe(now, lost);
        let pto = self.pto_duration();
        let mut fallback = None;
        for (pn, p) in lost.iter() {
            if let Some(mtu) = self.mtud.on_packet_lost(*pn, p.size, p.time_sent, pto) {
                fallback = Some(mtu);
            }
        }
        if let Some(mtu) = fallback {
            tracing::debug!(side = ?self.side, mtu, "PMTU black hole detected");
            self.set_path_mtu(mtu);
        }
    }

    fn mtud_take_lost_probe(
        &mut self,
        now: Instant,
        lost: &mut Vec<(u64, SentPacket<SentFrames>)>,
    ) {
        lost.retain(|(pn, _)| {
            if self.mtud.is_probe(*pn) {
                self.mtud.on_probe_lost(now, *pn);
                false
            } else {
                true
            }
        });
    }

    fn set_path_mtu(&mut self, mtu: u16) {
        if mtu == self.path.mtu {
            return;
        }
        tracing::debug!(side = ?self.side, from = self.path.mtu, to = mtu, "path MTU changed");
        self.path.mtu = mtu;
        self.cc.on_mtu_update(mtu);
    }

    /// Bytes of an outstanding probe, which congestion control does not see.
    pub(super) fn mtud_probe_bytes(&self) -> u64 {
        self.mtud.probe_bytes_in_flight()
    }

    /// Discovery counters into `stats`.
    pub(super) fn mtud_stats(&self, s: &mut super::ConnectionStats) {
        let c = self.mtud.counters();
        s.path_mtu = self.path.mtu;
        s.mtu_probes_sent = c.probes_sent;
        s.mtu_probes_lost = c.probes_lost;
        s.mtu_black_holes = c.black_holes;
        debug_assert_eq!(self.mtud.current().min(self.path.mtu), self.path.mtu);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(upper: u16) -> MtuDiscoveryConfig {
        MtuDiscoveryConfig {
            upper_bound: upper,
            ..MtuDiscoveryConfig::default()
        }
    }

    /// Run a search against a path that carries `path_mtu`: every probe above it is
    /// lost, the others acknowledged. Returns the probe sizes in order.
    fn search(m: &mut MtuDiscovery, path_mtu: u16) -> Vec<u16> {
        search_at(m, path_mtu, Instant::now())
    }

    fn search_at(m: &mut MtuDiscovery, path_mtu: u16, t: Instant) -> Vec<u16> {
        let mut pn = 0;
        let mut sizes = Vec::new();
        m.on_handshake_confirmed();
        while let Some(size) = m.poll_probe(t) {
            sizes.push(size);
            m.on_probe_sent(t, pn, size);
            if size <= path_mtu {
                assert_eq!(m.on_probe_acked(t, pn), Some(size));
            } else {
                m.on_probe_lost(t, pn);
            }
            pn += 1;
            assert!(sizes.len() < 100, "search does not end: {sizes:?}");
        }
        sizes
    }

    #[test]
    fn upper_bound_reached_with_one_probe() {
        let mut m = MtuDiscovery::new(Some(&cfg(1452)), 1200, 1472);
        assert_eq!(search(&mut m, 1500), vec![1452]);
        assert_eq!(m.current(), 1452);
        assert!(m.is_complete());
    }

    #[test]
    fn binary_search_sequence() {
        let mut m = MtuDiscovery::new(Some(&cfg(1452)), 1200, 1472);
        let sizes = search(&mut m, 1350);
        // Upper bound 3×, then bisect [1200, 1452): 1326 ok, 1389 ✗3, 1357 ✗3, 1341 ok;
        // 1357 − 1341 < 20: done.
        assert_eq!(
            sizes,
            vec![1452, 1452, 1452, 1326, 1389, 1389, 1389, 1357, 1357, 1357, 1341]
        );
        assert_eq!(m.current(), 1341);
        assert!(m.is_complete());
        assert_eq!(m.counters().probes_lost, 9);
        assert_eq!(m.counters().probes_sent, 11);
    }

    #[test]
    fn single_probe_loss_retries_same_size() {
        let t = Instant::now();
        let mut m = MtuDiscovery::new(Some(&cfg(1452)), 1200, 1472);
        m.on_handshake_confirmed();
        assert_eq!(m.poll_probe(t), Some(1452));
        m.on_probe_sent(t, 7, 1452);
        assert_eq!(m.poll_probe(t), None, "one probe at a time");
        assert_eq!(m.probe_bytes_in_flight(), 1452);
        m.on_probe_lost(t, 7);
        assert_eq!(m.probe_bytes_in_flight(), 0);
        assert_eq!(m.poll_probe(t), Some(1452));
        m.on_probe_sent(t, 9, 1452);
        assert_eq!(m.on_probe_acked(t, 9), Some(1452));
        assert_eq!(m.current(), 1452);
    }

    #[test]
    fn nothing_before_handshake_confirmation() {
        let t = Instant::now();
        let mut m = MtuDiscovery::new(Some(&cfg(1452)), 1200, 1472);
        assert_eq!(m.poll_probe(t), None);
        m.on_handshake_confirmed();
        assert_eq!(m.poll_probe(t), Some(1452));
    }

    #[test]
    fn disabled_config_never_probes() {
        let t = Instant::now();
        let mut m = MtuDiscovery::new(None, 1200, 1472);
        m.on_handshake_confirmed();
        assert_eq!(m.poll_probe(t), None);
        assert_eq!(m.poll_probe(t + Duration::from_secs(10_000)), None);
        assert_eq!(m.current(), 1200);
    }

    #[test]
    fn peer_max_udp_payload_size_bounds_search() {
        let mut m = MtuDiscovery::new(Some(&cfg(1452)), 1200, 1472);
        m.on_peer_max_udp_payload_size(1300, 1200);
        assert_eq!(search(&mut m, 1500), vec![1300]);
        assert_eq!(m.current(), 1300);
        // A peer limit at the base disables discovery.
        let mut m = MtuDiscovery::new(Some(&cfg(1452)), 1200, 1472);
        m.on_peer_max_udp_payload_size(1200, 1200);
        assert!(search(&mut m, 1500).is_empty());
        // So does our endpoint's own limit.
        let mut m = MtuDiscovery::new(Some(&cfg(1452)), 1200, 1200);
        assert!(search(&mut m, 1500).is_empty());
    }

    #[test]
    fn research_after_interval_when_below_upper_bound() {
        let t = Instant::now();
        let mut m = MtuDiscovery::new(Some(&cfg(1452)), 1200, 1472);
        search_at(&mut m, 1350, t);
        let interval = MtuDiscoveryConfig::default().interval;
        assert_eq!(m.poll_probe(t + interval / 2), None);
        assert_eq!(m.poll_probe(t + interval), Some(1452));
    }

    fn black_hole_setup() -> (MtuDiscovery, Instant) {
        let t = Instant::now();
        let mut m = MtuDiscovery::new(Some(&cfg(1452)), 1200, 1472);
        assert_eq!(search(&mut m, 1500), vec![1452]);
        (m, t)
    }

    #[test]
    fn black_hole_falls_back_and_searches_below() {
        let (mut m, t) = black_hole_setup();
        let pto = Duration::from_millis(100);
        let ms = Duration::from_millis;
        m.on_packet_acked(10, 1452, t);
        // 11..=14 full-size are lost; a base-size PTO packet sent later gets through.
        m.on_packet_acked(15, 1200, t + ms(150));
        assert_eq!(m.on_packet_lost(11, 1452, t + ms(1), pto), None);
        assert_eq!(m.on_packet_lost(12, 1452, t + ms(2), pto), None);
        assert_eq!(m.on_packet_lost(13, 1452, t + ms(3), pto), Some(1200));
        assert_eq!(m.current(), 1200);
        assert_eq!(m.counters().black_holes, 1);
        // The search resumes below the size that failed.
        assert_eq!(m.poll_probe(t), Some(1326));
    }

    #[test]
    fn congestion_losses_are_not_a_black_hole() {
        let (mut m, t) = black_hole_setup();
        let pto = Duration::from_millis(100);
        let ms = Duration::from_millis;
        // A later full-size packet got through: ordinary loss.
        m.on_packet_acked(20, 1452, t + ms(5));
        m.on_packet_acked(21, 1200, t + ms(500));
        for pn in 11..18 {
            assert_eq!(m.on_packet_lost(pn, 1452, t + ms(1), pto), None);
        }
        // A small packet sent right after the burst (no PTO in between) is not enough.
        m.on_packet_acked(40, 1200, t + ms(31));
        for pn in 30..38 {
            assert_eq!(m.on_packet_lost(pn, 1452, t + ms(30), pto), None);
        }
        // Small packets lost: never a black hole.
        m.on_packet_acked(50, 1200, t + ms(900));
        for pn in 41..48 {
            assert_eq!(m.on_packet_lost(pn, 1200, t + ms(40), pto), None);
        }
        assert_eq!(m.current(), 1452);
        assert_eq!(m.counters().black_holes, 0);
    }

    #[test]
    fn acked_large_packet_resets_streak() {
        let (mut m, t) = black_hole_setup();
        let pto = Duration::from_millis(100);
        let ms = Duration::from_millis;
        assert_eq!(m.on_packet_lost(1, 1452, t, pto), None);
        assert_eq!(m.on_packet_lost(2, 1452, t, pto), None);
        m.on_packet_acked(3, 1452, t);
        m.on_packet_acked(9, 1200, t + ms(500));
        assert_eq!(m.on_packet_lost(4, 1452, t + ms(1), pto), None);
        assert_eq!(m.on_packet_lost(5, 1452, t + ms(1), pto), None);
        assert_eq!(m.on_packet_lost(6, 1452, t + ms(1), pto), Some(1200));
    }
}
