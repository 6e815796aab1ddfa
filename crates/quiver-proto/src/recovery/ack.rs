//! Receive-side acknowledgement bookkeeping for one packet-number space (RFC 9000 §13.2).

use super::{EcnCodepoint, EcnCounts, MAX_PACKET_NUMBER};
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

/// Default number of ACK ranges reported (and remembered for reporting).
pub const DEFAULT_MAX_ACK_RANGES: usize = 64;

/// Ranges remembered for duplicate detection; older ones are forgotten and everything
/// below them is treated as a duplicate (RFC 9000 §12.3 allows such a floor).
const DEDUP_MAX_RANGES: usize = 1024;

/// Our own default `max_ack_delay` (RFC 9000 §18.2).
const DEFAULT_LOCAL_MAX_ACK_DELAY: Duration = Duration::from_millis(25);

/// Ack-eliciting packets received before an ACK is sent at once (RFC 9000 §13.2.2).
const DEFAULT_ACK_ELICITING_THRESHOLD: u64 = 2;

/// A small set of disjoint, non-adjacent half-open ranges keyed by start.
#[derive(Debug, Clone, Default)]
struct Ranges {
    map: BTreeMap<u64, u64>,
}

impl Ranges {
    fn contains(&self, x: u64) -> bool {
        self.map
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &end)| x < end)
    }

    /// Insert one value; returns the range now containing it, or `None` if already present.
    fn insert(&mut self, x: u64) -> Option<Range<u64>> {
        if self.contains(x) {
            return None;
        }
        let mut start = x;
        let mut end = x.saturating_add(1);
        // Merge with a range ending exactly at x.
        if let Some((&s, &e)) = self.map.range(..x).next_back() {
            if e == x {
                start = s;
                self.map.remove(&s);
            }
        }
        // Merge with a range starting exactly at x + 1.
        if let Some(e) = self.map.remove(&end) {
            end = e;
        }
        self.map.insert(start, end);
        Some(start..end)
    }

    /// Remove every value `< bound`.
    fn remove_below(&mut self, bound: u64) {
        let keep = self.map.split_off(&bound);
        let straddling = self.map.iter().next_back().map(|(_, &e)| e);
        self.map = keep;
        if let Some(end) = straddling {
            if end > bound {
                self.map.insert(bound, end);
            }
        }
    }

    /// Drop the oldest ranges until at most `n` remain; returns the new lowest value.
    fn truncate_oldest(&mut self, n: usize) -> Option<u64> {
        let mut floor = None;
        while self.map.len() > n {
            if let Some((_, end)) = self.map.pop_first() {
                floor = Some(end);
            }
        }
        floor
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn max(&self) -> Option<u64> {
        self.map.iter().next_back().map(|(_, &e)| e - 1)
    }

    fn iter_rev(&self) -> impl Iterator<Item = Range<u64>> + Clone + '_ {
        self.map.iter().rev().map(|(&s, &e)| s..e)
    }
}

/// Receive-side ACK state of one packet-number space (RFC 9000 §13.2).
///
/// Tracks which packet numbers were received (for duplicate detection and for the ACK
/// ranges to report), the ECN counters, and decides when an ACK frame is due:
/// - immediately in the Initial and Handshake spaces ([`AckTracker::new_immediate`],
///   RFC 9000 §13.2.1: "MUST acknowledge all ack-eliciting Initial and Handshake
///   packets immediately");
/// - immediately after every second ack-eliciting packet (§13.2.2);
/// - immediately when an ack-eliciting packet arrives out of order or reveals a gap,
///   or carries ECN-CE (§13.2.1);
/// - otherwise within the local `max_ack_delay` of the first unacknowledged
///   ack-eliciting packet ([`AckTracker::ack_deadline`]).
///
/// Non-ack-eliciting packets are recorded and reported in the next ACK but never cause
/// one to be sent by themselves (§13.2.1).
#[derive(Debug, Clone)]
pub struct AckTracker {
    /// Everything received, for duplicate detection.
    received: Ranges,
    /// Packet numbers below this are treated as duplicates.
    dedup_floor: u64,
    /// What the next ACK frame reports.
    to_ack: Ranges,
    max_ranges: usize,
    /// Largest number in `to_ack` and when it was received (ACK Delay reference).
    largest_to_ack: Option<(u64, Instant)>,
    /// Largest packet number ever received (kept even after ranges are dropped, §13.2.3).
    largest: Option<u64>,
    largest_ack_eliciting: Option<u64>,
    ecn: EcnCounts,
    ecn_seen: bool,
    /// Ack-eliciting packets received since the last ACK was sent.
    unacked_eliciting: u64,
    /// Any packet received since the last ACK was sent.
    unacked_any: bool,
    /// Receipt time of the first ack-eliciting packet not yet acknowledged.
    first_unacked_eliciting: Option<Instant>,
    /// Receipt time of the packet that made an ACK due immediately.
    immediate: Option<Instant>,
    immediate_space: bool,
    max_ack_delay: Duration,
    threshold: u64,
}

impl Default for AckTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl AckTracker {
    /// Tracker for the application-data space: ACKs may be delayed up to `max_ack_delay`.
    pub fn new() -> Self {
        Self {
            received: Ranges::default(),
            dedup_floor: 0,
            to_ack: Ranges::default(),
            max_ranges: DEFAULT_MAX_ACK_RANGES,
            largest_to_ack: None,
            largest: None,
            largest_ack_eliciting: None,
            ecn: EcnCounts::default(),
            ecn_seen: false,
            unacked_eliciting: 0,
            unacked_any: false,
            first_unacked_eliciting: None,
            immediate: None,
            immediate_space: false,
            max_ack_delay: DEFAULT_LOCAL_MAX_ACK_DELAY,
            threshold: DEFAULT_ACK_ELICITING_THRESHOLD,
        }
    }

    /// Tracker for the Initial and Handshake spaces: every ack-eliciting packet is
    /// acknowledged immediately (RFC 9000 §13.2.1).
    pub fn new_immediate() -> Self {
        Self {
            immediate_space: true,
            ..Self::new()
        }
    }

    /// Set our own `max_ack_delay` (the value we advertised).
    pub fn set_max_ack_delay(&mut self, max_ack_delay: Duration) {
        self.max_ack_delay = max_ack_delay;
    }

    /// Number of ack-eliciting packets after which an ACK is sent at once (default 2,
    /// RFC 9000 §13.2.2; an ACK_FREQUENCY extension may change it). Clamped to ≥ 1.
    pub fn set_ack_eliciting_threshold(&mut self, threshold: u64) {
        self.threshold = threshold.max(1);
    }

    /// Limit the number of ranges reported (clamped to ≥ 1; RFC 9000 §13.2.3).
    pub fn set_max_ranges(&mut self, n: usize) {
        self.max_ranges = n.max(1);
        self.to_ack.truncate_oldest(self.max_ranges);
    }

    /// Record a packet that was successfully unprotected. Returns `true` if it is a
    /// duplicate (or below the duplicate-detection floor, or above
    /// [`MAX_PACKET_NUMBER`]), in which case nothing was
    /// recorded and the caller must drop the packet (RFC 9000 §12.3).
    /// Whether `pn` was already received (or is below the duplicate-detection floor).
    /// Check this before processing a packet's frames (RFC 9000 §12.3).
    pub fn is_duplicate(&self, pn: u64) -> bool {
        pn < self.dedup_floor || self.received.contains(pn)
    }

    /// Record a packet that was successfully unprotected.
    pub fn on_packet_received(
        &mut self,
        now: Instant,
        pn: u64,
        ack_eliciting: bool,
        ecn: Option<EcnCodepoint>,
    ) -> bool {
        if pn < self.dedup_floor || pn > MAX_PACKET_NUMBER {
            return true;
        }
        let Some(run) = self.received.insert(pn) else {
            return true;
        };
        if let Some(floor) = self.received.truncate_oldest(DEDUP_MAX_RANGES) {
            self.dedup_floor = self.dedup_floor.max(floor);
        }

        self.largest = Some(self.largest.map_or(pn, |l| l.max(pn)));
        self.to_ack.insert(pn);
        self.to_ack.truncate_oldest(self.max_ranges);
        if self.largest_to_ack.is_none_or(|(l, _)| pn > l) {
            self.largest_to_ack = Some((pn, now));
        }
        if let Some(cp) = ecn {
            self.ecn.add(cp);
            self.ecn_seen = true;
        }
        self.unacked_any = true;
        if !ack_eliciting {
            return false;
        }

        // RFC 9000 §13.2.1: immediate ACK on reordering, on a gap, and on ECN-CE.
        let out_of_order = self.largest_ack_eliciting.is_some_and(|l| pn < l);
        let gap = self
            .largest_ack_eliciting
            .is_some_and(|l| pn > l && run.start > l.saturating_add(1));
        let ce = ecn == Some(EcnCodepoint::Ce);
        self.largest_ack_eliciting = Some(self.largest_ack_eliciting.map_or(pn, |l| l.max(pn)));

        self.unacked_eliciting = self.unacked_eliciting.saturating_add(1);
        if self.first_unacked_eliciting.is_none() {
            self.first_unacked_eliciting = Some(now);
        }
        if self.immediate.is_none()
            && (self.immediate_space
                || out_of_order
                || gap
                || ce
                || self.unacked_eliciting >= self.threshold)
        {
            self.immediate = Some(now);
        }
        false
    }

    /// Whether an ACK frame should be sent without waiting for the delay timer.
    pub fn should_send_now(&self) -> bool {
        self.immediate.is_some()
    }

    /// When an ACK frame must be sent at the latest: the receipt time of the packet that
    /// made it due now, or `max_ack_delay` after the first unacknowledged ack-eliciting
    /// packet (RFC 9000 §13.2.1). `None` if nothing ack-eliciting awaits an ACK.
    pub fn ack_deadline(&self) -> Option<Instant> {
        if let Some(t) = self.immediate {
            return Some(t);
        }
        self.first_unacked_eliciting
            .map(|t| t.checked_add(self.max_ack_delay).unwrap_or(t))
    }

    /// Whether an ACK is due at `now` (immediately or because the deadline passed).
    pub fn is_due(&self, now: Instant) -> bool {
        self.ack_deadline().is_some_and(|d| d <= now)
    }

    /// Whether any packet arrived since the last ACK was sent; such ACKs may be bundled
    /// into a packet that is sent anyway.
    pub fn has_unsent(&self) -> bool {
        self.unacked_any && !self.to_ack.map.is_empty()
    }

    /// The ranges to report, newest first, at most the configured limit (default 64).
    pub fn ranges(&self) -> impl Iterator<Item = Range<u64>> + Clone + '_ {
        self.to_ack.iter_rev()
    }

    /// Number of ranges [`AckTracker::ranges`] yields.
    pub fn range_count(&self) -> usize {
        self.to_ack.len()
    }

    /// Largest packet number ever received in this space (used to decode packet numbers,
    /// RFC 9000 §17.1; never forgotten, §13.2.3).
    pub fn largest(&self) -> Option<u64> {
        self.largest
    }

    /// Largest packet number the next ACK frame reports.
    pub fn largest_to_ack(&self) -> Option<u64> {
        self.to_ack.max()
    }

    /// The ACK Delay to report: time since the largest reported packet was received
    /// (RFC 9000 §13.2.5). Zero if nothing is to be acknowledged.
    pub fn ack_delay(&self, now: Instant) -> Duration {
        self.largest_to_ack
            .map(|(_, t)| now.saturating_duration_since(t))
            .unwrap_or_default()
    }

    /// ECN counters for an ACK_ECN frame, or `None` if no ECN-marked packet arrived
    /// (then a plain ACK frame is sent; RFC 9000 §13.4.1).
    pub fn ecn_counts(&self) -> Option<EcnCounts> {
        self.ecn_seen.then_some(self.ecn)
    }

    /// An ACK frame built from the current state (largest acknowledged
    /// `largest_sent_in_ack`) was just sent: reset the immediate-ACK state and the delay
    /// timer. Keep `largest_sent_in_ack` with the sent packet and pass it to
    /// [`AckTracker::on_ack_of_ack`] when that packet is acknowledged.
    pub fn on_ack_sent(&mut self, largest_sent_in_ack: u64) {
        let _ = largest_sent_in_ack;
        self.unacked_eliciting = 0;
        self.unacked_any = false;
        self.first_unacked_eliciting = None;
        self.immediate = None;
    }

    /// A packet carrying an ACK frame whose largest acknowledged was
    /// `largest_acked_in_our_ack` was itself acknowledged: stop reporting packets at or
    /// below it (RFC 9000 §13.2.4). Duplicate detection is unaffected.
    pub fn on_ack_of_ack(&mut self, largest_acked_in_our_ack: u64) {
        self.to_ack
            .remove_below(largest_acked_in_our_ack.saturating_add(1));
        if self.to_ack.map.is_empty() {
            self.largest_to_ack = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn t0() -> Instant {
        Instant::now()
    }

    fn ranges(t: &AckTracker) -> Vec<Range<u64>> {
        t.ranges().collect()
    }

    #[test]
    fn range_set_merges() {
        let mut r = Ranges::default();
        assert_eq!(r.insert(5), Some(5..6));
        assert_eq!(r.insert(7), Some(7..8));
        assert_eq!(r.insert(6), Some(5..8));
        assert_eq!(r.insert(6), None);
        assert_eq!(r.len(), 1);
        r.insert(10);
        r.remove_below(6);
        assert_eq!(r.iter_rev().collect::<Vec<_>>(), vec![10..11, 6..8]);
        r.remove_below(11);
        assert_eq!(r.len(), 0);
        r.insert(MAX_PACKET_NUMBER);
        assert!(r.contains(MAX_PACKET_NUMBER));
    }

    #[test]
    fn every_second_ack_eliciting_packet() {
        let now = t0();
        let mut t = AckTracker::new();
        assert!(!t.on_packet_received(now, 0, true, None));
        assert!(!t.should_send_now());
        assert_eq!(t.ack_deadline(), Some(now + Duration::from_millis(25)));
        assert!(!t.on_packet_received(now, 1, true, None));
        assert!(t.should_send_now());
        t.on_ack_sent(1);
        assert!(!t.should_send_now());
        assert_eq!(t.ack_deadline(), None);
        assert_eq!(ranges(&t), vec![0..2]);
    }

    #[test]
    fn non_eliciting_never_triggers() {
        let now = t0();
        let mut t = AckTracker::new();
        for pn in 0..10 {
            t.on_packet_received(now, pn, false, None);
        }
        assert!(!t.should_send_now());
        assert_eq!(t.ack_deadline(), None);
        assert!(t.has_unsent());
        assert_eq!(ranges(&t), vec![0..10]);
    }

    #[test]
    fn duplicate_detected() {
        let now = t0();
        let mut t = AckTracker::new();
        assert!(!t.on_packet_received(now, 3, true, None));
        assert!(t.on_packet_received(now, 3, true, None));
        t.on_ack_of_ack(3);
        // Still a duplicate after our ACK of it was acknowledged.
        assert!(t.on_packet_received(now, 3, true, None));
        assert_eq!(t.largest(), Some(3));
        assert_eq!(t.range_count(), 0);
    }

    #[test]
    fn gap_and_reorder_trigger_immediate() {
        let now = t0();
        let mut t = AckTracker::new();
        t.on_packet_received(now, 0, true, None);
        assert!(!t.should_send_now());
        // Gap: 1 is missing.
        t.on_packet_received(now, 2, true, None);
        assert!(t.should_send_now());
        t.on_ack_sent(2);
        // Reordered: 1 < largest ack-eliciting 2.
        t.on_packet_received(now, 1, true, None);
        assert!(t.should_send_now());
        t.on_ack_sent(2);
        // In order, no gap: 3 alone is not enough.
        t.on_packet_received(now, 3, true, None);
        assert!(!t.should_send_now());
        assert_eq!(ranges(&t), vec![0..4]);
    }

    #[test]
    fn ce_triggers_immediate_and_counts() {
        let now = t0();
        let mut t = AckTracker::new();
        assert_eq!(t.ecn_counts(), None);
        t.on_packet_received(now, 0, true, Some(EcnCodepoint::Ect0));
        assert!(!t.should_send_now());
        t.on_ack_sent(0);
        t.on_packet_received(now, 1, true, Some(EcnCodepoint::Ce));
        assert!(t.should_send_now());
        assert_eq!(
            t.ecn_counts(),
            Some(EcnCounts {
                ect0: 1,
                ect1: 0,
                ce: 1
            })
        );
    }

    #[test]
    fn handshake_spaces_ack_immediately() {
        let now = t0();
        let mut t = AckTracker::new_immediate();
        t.on_packet_received(now, 0, true, None);
        assert!(t.should_send_now());
        assert_eq!(t.ack_deadline(), Some(now));
    }

    #[test]
    fn ack_delay_from_largest() {
        let now = t0();
        let mut t = AckTracker::new();
        t.on_packet_received(now, 5, true, None);
        let later = now + Duration::from_millis(7);
        t.on_packet_received(later, 4, true, None);
        assert_eq!(
            t.ack_delay(now + Duration::from_millis(10)),
            Duration::from_millis(10)
        );
        assert!(t.is_due(later));
    }

    #[test]
    fn deadline_elapses() {
        let now = t0();
        let mut t = AckTracker::new();
        t.set_max_ack_delay(Duration::from_millis(10));
        t.on_packet_received(now, 0, true, None);
        assert!(!t.is_due(now + Duration::from_millis(9)));
        assert!(t.is_due(now + Duration::from_millis(10)));
    }

    #[test]
    fn range_limit_keeps_newest() {
        let now = t0();
        let mut t = AckTracker::new();
        for i in 0..100u64 {
            t.on_packet_received(now, i * 2, false, None);
        }
        assert_eq!(t.range_count(), DEFAULT_MAX_ACK_RANGES);
        let r = ranges(&t);
        assert_eq!(r[0], 198..199);
        assert_eq!(r[63], 72..73);
        t.set_max_ranges(3);
        assert_eq!(ranges(&t), vec![198..199, 196..197, 194..195]);
    }

    #[test]
    fn ack_of_ack_drops_old_ranges() {
        let now = t0();
        let mut t = AckTracker::new();
        for pn in [0, 1, 2, 5, 6, 9] {
            t.on_packet_received(now, pn, true, None);
        }
        t.on_ack_sent(9);
        t.on_ack_of_ack(5);
        assert_eq!(ranges(&t), vec![9..10, 6..7]);
        assert_eq!(t.largest_to_ack(), Some(9));
        // A late packet below the dropped ranges is still acknowledged, not a duplicate.
        assert!(!t.on_packet_received(now, 3, true, None));
        assert_eq!(ranges(&t), vec![9..10, 6..7, 3..4]);
        t.on_ack_of_ack(9);
        assert_eq!(t.range_count(), 0);
        assert_eq!(t.ack_delay(now), Duration::ZERO);
        assert_eq!(t.largest(), Some(9));
    }

    #[test]
    fn dedup_floor_after_many_ranges() {
        let now = t0();
        let mut t = AckTracker::new();
        for i in 0..(DEDUP_MAX_RANGES as u64 + 10) {
            t.on_packet_received(now, i * 2 + 100, false, None);
        }
        // The oldest ranges were forgotten: anything below the floor is a duplicate.
        assert!(t.on_packet_received(now, 0, true, None));
        assert!(!t.on_packet_received(now, u64::from(u32::MAX), true, None));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0002),
            ..ProptestConfig::default()
        })]

        /// Arbitrary arrival orders never panic; duplicates match a model set; the
        /// reported ranges are disjoint, newest first, within the limit, always include
        /// the newest packet, and are complete when the limit was never exceeded.
        #[test]
        fn random_arrivals(
            pns in proptest::collection::vec(
                prop_oneof![0u64..300, Just(u64::MAX), Just(MAX_PACKET_NUMBER), Just(MAX_PACKET_NUMBER - 1)], 0..400),
            limit in 1usize..10,
            eliciting in any::<bool>(),
        ) {
            let now = Instant::now();
            let mut t = AckTracker::new();
            t.set_max_ranges(limit);
            let mut model = BTreeSet::new();
            for &pn in &pns {
                let dup = t.on_packet_received(now, pn, eliciting, None);
                if pn > MAX_PACKET_NUMBER {
                    prop_assert!(dup);
                } else {
                    prop_assert_eq!(dup, !model.insert(pn));
                }
            }
            let r: Vec<Range<u64>> = t.ranges().collect();
            prop_assert!(r.len() <= limit);
            for w in r.windows(2) {
                // Newest first, disjoint and not adjacent.
                prop_assert!(w[1].end < w[0].start);
            }
            let reported: BTreeSet<u64> = r.iter().flat_map(|r| r.clone()).collect();
            prop_assert!(reported.is_subset(&model));
            // The newest packet is always reported.
            prop_assert_eq!(reported.iter().next_back(), model.iter().next_back());
            // Without truncation, everything received is reported.
            let model_ranges = model.iter().zip(model.iter().skip(1)).filter(|(a, b)| **a + 1 != **b).count()
                + usize::from(!model.is_empty());
            if model_ranges <= limit {
                prop_assert_eq!(&reported, &model);
            }
            prop_assert_eq!(t.largest(), model.iter().next_back().copied());
            if let Some(&l) = model.iter().next_back() {
                t.on_ack_of_ack(l);
                prop_assert_eq!(t.range_count(), 0);
            }
        }
    }
}
