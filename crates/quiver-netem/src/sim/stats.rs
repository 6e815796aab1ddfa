//! Per-link statistics and the packet trace.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use super::NodeId;

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropCause {
    /// Longer than the link's MTU.
    Mtu,
    /// Offered inside a blackhole window.
    Blackhole,
    /// The drop-tail queue was full.
    QueueFull,
    /// Random loss (Bernoulli or Gilbert–Elliott).
    Loss,
    /// No node owns the destination address (counted by
    /// [`Sim::unroutable`](super::Sim::unroutable), not by a link).
    NoRoute,
    /// An ECN-capable packet on a link that drops them
    /// ([`LinkConfig::drop_ecn_capable`](super::LinkConfig::drop_ecn_capable)).
    EcnCapable,
}

/// Packets dropped by a link, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Dropped for exceeding the MTU.
    pub mtu: u64,
    /// Dropped inside a blackhole window.
    pub blackhole: u64,
    /// Dropped by the full drop-tail queue.
    pub queue_full: u64,
    /// Dropped by the loss model.
    pub loss: u64,
    /// Dropped for carrying an ECN-capable codepoint.
    pub ecn_capable: u64,
}

impl DropCounts {
    /// Count for one cause (`NoRoute` is always 0 here).
    pub fn get(&self, cause: DropCause) -> u64 {
        match cause {
            DropCause::Mtu => self.mtu,
            DropCause::Blackhole => self.blackhole,
            DropCause::QueueFull => self.queue_full,
            DropCause::Loss => self.loss,
            DropCause::EcnCapable => self.ecn_capable,
            DropCause::NoRoute => 0,
        }
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.mtu + self.blackhole + self.queue_full + self.loss + self.ecn_capable
    }

    pub(super) fn bump(&mut self, cause: DropCause) {
        match cause {
            DropCause::Mtu => self.mtu += 1,
            DropCause::Blackhole => self.blackhole += 1,
            DropCause::QueueFull => self.queue_full += 1,
            DropCause::Loss => self.loss += 1,
            DropCause::EcnCapable => self.ecn_capable += 1,
            DropCause::NoRoute => {}
        }
    }
}

/// Counters for one direction of a link.
///
/// `delivered_*` counts copies handed to the receiving node, so with duplication it can
/// exceed `sent_packets - dropped.total()`; packets still in flight are in neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Packets offered to the link.
    pub sent_packets: u64,
    /// Payload bytes offered to the link.
    pub sent_bytes: u64,
    /// Packets (copies) delivered to the receiver.
    pub delivered_packets: u64,
    /// Payload bytes delivered to the receiver.
    pub delivered_bytes: u64,
    /// Drops by cause.
    pub dropped: DropCounts,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Copies with a flipped bit.
    pub corrupted: u64,
    /// Copies held back by the reordering delay.
    pub reordered: u64,
    /// ECN-capable packets the queue marked CE
    /// ([`LinkConfig::ce_threshold_bytes`](super::LinkConfig::ce_threshold_bytes)).
    pub ce_marked: u64,
    /// ECN-capable packets whose ECN field was cleared
    /// ([`LinkConfig::bleach_ecn`](super::LinkConfig::bleach_ecn)).
    pub ecn_bleached: u64,
    /// Largest queue occupancy seen, in bytes (payload + overhead, including the packet
    /// being serialised).
    pub queue_high_water_bytes: usize,
}

/// What happened to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceKind {
    /// A node sent the packet (it was offered to the link toward `to`).
    Sent,
    /// The packet was dropped.
    Dropped(DropCause),
    /// A copy was scheduled for delivery.
    Scheduled {
        /// When it will arrive.
        arrival: Instant,
        /// This is the extra copy made by duplication.
        duplicate: bool,
        /// It was held back by the reordering delay.
        reordered: bool,
        /// Index of the flipped bit, if corrupted.
        corrupted_bit: Option<usize>,
    },
    /// A copy was handed to the receiving node.
    Delivered {
        /// FNV-1a hash of the delivered bytes (to compare payloads across runs).
        digest: u64,
    },
}

/// One packet event, as seen by the [trace hook](super::Sim::set_trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Virtual time of the event.
    pub time: Instant,
    /// Packet number, unique per simulation in send order (copies share it).
    pub packet: u64,
    /// Sending node.
    pub from: NodeId,
    /// Receiving node (`None` when nobody owns `dst`).
    pub to: Option<NodeId>,
    /// Source address written by the sender.
    pub src: SocketAddr,
    /// Destination address.
    pub dst: SocketAddr,
    /// Payload length in bytes.
    pub len: usize,
    /// What happened.
    pub kind: TraceKind,
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = match self.to {
            Some(n) => n.to_string(),
            None => "?".to_owned(),
        };
        write!(
            f,
            "#{} {}->{} {}->{} {}B {:?}",
            self.packet, self.from, to, self.src, self.dst, self.len, self.kind
        )
    }
}

/// FNV-1a, 64-bit: a cheap, stable digest of payloads for traces.
pub(super) fn digest(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
