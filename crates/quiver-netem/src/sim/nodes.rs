//! Reference nodes for tests: a paced UDP blaster and sink, a ping/echo pair, and a
//! one-call bulk [`Transfer`] that reports completion time.
//!
//! Payloads start with an 8-byte big-endian sequence number (the rest is zero padding);
//! receivers parse them defensively, so corrupted or foreign datagrams are counted as
//! malformed or ignored, never trusted.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Datagram, LinkConfig, LinkStats, Node, Sim, SimError};

/// Length of the sequence-number header of reference payloads.
pub const HEADER_LEN: usize = 8;

fn payload(seq: u64, size: usize) -> Vec<u8> {
    let mut data = vec![0; size.max(HEADER_LEN)];
    data[..HEADER_LEN].copy_from_slice(&seq.to_be_bytes());
    data
}

/// Reads the sequence number of a reference payload.
pub fn parse_seq(data: &[u8]) -> Option<u64> {
    let head: [u8; HEADER_LEN] = data.get(..HEADER_LEN)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// Nanoseconds to send `k` packets of `bits` bits at `rate` bits/s (floor).
fn pace_offset(k: u64, bits: u64, rate: u64) -> Duration {
    let nanos = u128::from(k) * u128::from(bits) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Sends `count` datagrams of `packet_size` bytes from `src` to `dst`, either all at once
/// (unpaced) or paced at a fixed bit rate. Packet `k` carries sequence number `k` and is
/// sent at `start + k · 8 · packet_size / rate`, where `start` is the first time the node
/// is polled (or the instant given to [`start_at`](Blaster::start_at)).
#[derive(Debug, Clone)]
pub struct Blaster {
    src: SocketAddr,
    dst: SocketAddr,
    count: u64,
    packet_size: usize,
    rate_bps: Option<u64>,
    gso_segments: usize,
    start: Option<Instant>,
    sent: u64,
}

impl Blaster {
    /// `count` unpaced packets of `packet_size` bytes (at least [`HEADER_LEN`]).
    pub fn new(src: SocketAddr, dst: SocketAddr, count: u64, packet_size: usize) -> Self {
        Self {
            src,
            dst,
            count,
            packet_size: packet_size.max(HEADER_LEN),
            rate_bps: None,
            gso_segments: 1,
            start: None,
            sent: 0,
        }
    }

    /// Paces packets at `rate_bps` bits per second of payload (0 is treated as 1).
    pub fn paced(mut self, rate_bps: u64) -> Self {
        self.rate_bps = Some(rate_bps.max(1));
        self
    }

    /// Sends the first packet at `start` instead of when first polled.
    pub fn start_at(mut self, start: Instant) -> Self {
        self.start = Some(start);
        self
    }

    /// Hands up to `segments` due packets to the network as one GSO-style batch.
    pub fn gso(mut self, segments: usize) -> Self {
        self.gso_segments = segments.max(1);
        self
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// All packets have been sent.
    pub fn done(&self) -> bool {
        self.sent >= self.count
    }

    fn due(&self, k: u64) -> Option<Instant> {
        let start = self.start?;
        Some(match self.rate_bps {
            None => start,
            Some(rate) => start + pace_offset(k, self.packet_size as u64 * 8, rate),
        })
    }
}

impl Node for Blaster {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: SocketAddr, _: Vec<u8>) {}

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        let start = *self.start.get_or_insert(now);
        if now < start {
            return None;
        }
        let mut data = Vec::new();
        let mut segments = 0;
        while segments < self.gso_segments && !self.done() && self.due(self.sent)? <= now {
            data.extend_from_slice(&payload(self.sent, self.packet_size));
            self.sent += 1;
            segments += 1;
        }
        match segments {
            0 => None,
            1 => Some(Datagram::new(self.src, self.dst, data)),
            _ => Some(Datagram {
                src: self.src,
                dst: self.dst,
                data,
                segment_size: Some(self.packet_size),
                ecn: Default::default(),
            }),
        }
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        if self.done() {
            None
        } else {
            self.due(self.sent)
        }
    }

    fn handle_timeout(&mut self, _: Instant) {}
}

/// Receives reference payloads and measures what arrived: counts, bytes, duplicates,
/// out-of-order arrivals, arrival times and throughput.
#[derive(Debug, Clone, Default)]
pub struct Sink {
    packets: u64,
    bytes: u64,
    malformed: u64,
    duplicates: u64,
    reordered: u64,
    max_seq: Option<u64>,
    seen: HashSet<u64>,
    first: Option<(Instant, usize)>,
    last: Option<Instant>,
    expect: Option<u64>,
    completed_at: Option<Instant>,
    keep_log: bool,
    log: Vec<(Instant, u64)>,
}

impl Sink {
    /// A sink that keeps a log of `(arrival time, sequence number)`.
    pub fn new() -> Self {
        Self {
            keep_log: true,
            ..Self::default()
        }
    }

    /// Does not keep the arrival log (for very long runs).
    pub fn without_log(mut self) -> Self {
        self.keep_log = false;
        self
    }

    /// Records [`completed_at`](Sink::completed_at) when `count` distinct sequence
    /// numbers have arrived.
    pub fn expecting(mut self, count: u64) -> Self {
        self.expect = Some(count);
        self
    }

    /// Datagrams received (including duplicates and malformed ones).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Payload bytes received (including duplicates and malformed ones).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Distinct sequence numbers received.
    pub fn unique(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Datagrams whose sequence number had been seen before.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// First arrivals of a sequence number lower than one already seen.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Datagrams too short to carry a sequence number.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Whether sequence number `seq` has arrived.
    pub fn has(&self, seq: u64) -> bool {
        self.seen.contains(&seq)
    }

    /// Arrival time of the first datagram.
    pub fn first_arrival(&self) -> Option<Instant> {
        self.first.map(|(t, _)| t)
    }

    /// Arrival time of the latest datagram.
    pub fn last_arrival(&self) -> Option<Instant> {
        self.last
    }

    /// When the expected number of distinct packets had arrived
    /// (see [`expecting`](Sink::expecting)).
    pub fn completed_at(&self) -> Option<Instant> {
        self.completed_at
    }

    /// `(arrival time, sequence number)` of every well-formed datagram, in arrival order.
    pub fn log(&self) -> &[(Instant, u64)] {
        &self.log
    }

    /// Received bits per second between the first and the last arrival, not counting the
    /// first datagram (it marks the start of the interval). `None` with fewer than two
    /// arrivals at distinct times.
    pub fn throughput_bps(&self) -> Option<f64> {
        let (first, first_len) = self.first?;
        let span = self.last?.checked_duration_since(first)?;
        if span.is_zero() {
            return None;
        }
        let bits = (self.bytes - first_len as u64) as f64 * 8.0;
        Some(bits / span.as_secs_f64())
    }
}

impl Node for Sink {
    fn handle_datagram(&mut self, now: Instant, _: SocketAddr, _: SocketAddr, data: Vec<u8>) {
        self.packets += 1;
        self.bytes += data.len() as u64;
        if self.first.is_none() {
            self.first = Some((now, data.len()));
        }
        self.last = Some(now);
        let Some(seq) = parse_seq(&data) else {
            self.malformed += 1;
            return;
        };
        if self.keep_log {
            self.log.push((now, seq));
        }
        if !self.seen.insert(seq) {
            self.duplicates += 1;
            return;
        }
        if self.max_seq.is_some_and(|max| seq < max) {
            self.reordered += 1;
        }
        self.max_seq = Some(self.max_seq.map_or(seq, |max| max.max(seq)));
        if self.completed_at.is_none() && self.expect == Some(self.unique()) {
            self.completed_at = Some(now);
        }
    }

    fn poll_transmit(&mut self, _: Instant) -> Option<Datagram> {
        None
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _: Instant) {}
}

/// Sends every datagram it receives back to where it came from, unchanged.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pending: std::collections::VecDeque<Datagram>,
    echoed: u64,
}

impl Echo {
    /// A new echo node.
    pub fn new() -> Self {
        Self::default()
    }

    /// Datagrams echoed so far.
    pub fn echoed(&self) -> u64 {
        self.echoed
    }
}

impl Node for Echo {
    fn handle_datagram(&mut self, _: Instant, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.pending.push_back(Datagram::new(to, from, data));
    }

    fn poll_transmit(&mut self, _: Instant) -> Option<Datagram> {
        let d = self.pending.pop_front()?;
        self.echoed += 1;
        Some(d)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _: Instant) {}
}

/// Sends `count` pings every `interval` (the first when first polled) and records the
/// round-trip time of each echo (see [`Echo`]).
#[derive(Debug, Clone)]
pub struct Pinger {
    src: SocketAddr,
    dst: SocketAddr,
    count: u64,
    interval: Duration,
    size: usize,
    start: Option<Instant>,
    sent_at: Vec<Instant>,
    rtts: Vec<Option<Duration>>,
}

impl Pinger {
    /// `count` pings of [`HEADER_LEN`] bytes, one every `interval`.
    pub fn new(src: SocketAddr, dst: SocketAddr, count: u64, interval: Duration) -> Self {
        Self {
            src,
            dst,
            count,
            interval,
            size: HEADER_LEN,
            start: None,
            sent_at: Vec::new(),
            rtts: Vec::new(),
        }
    }

    /// Pings of `size` bytes (at least [`HEADER_LEN`]).
    pub fn size(mut self, size: usize) -> Self {
        self.size = size.max(HEADER_LEN);
        self
    }

    /// Round-trip time of each ping sent so far, by sequence number (`None`: no echo yet).
    pub fn rtts(&self) -> &[Option<Duration>] {
        &self.rtts
    }

    /// Number of pings answered.
    pub fn answered(&self) -> usize {
        self.rtts.iter().flatten().count()
    }

    /// All pings have been sent.
    pub fn done(&self) -> bool {
        self.sent_at.len() as u64 >= self.count
    }

    fn due(&self) -> Option<Instant> {
        let k = u32::try_from(self.sent_at.len()).ok()?;
        Some(self.start? + self.interval * k)
    }
}

impl Node for Pinger {
    fn handle_datagram(&mut self, now: Instant, _: SocketAddr, _: SocketAddr, data: Vec<u8>) {
        let Some(seq) = parse_seq(&data).and_then(|s| usize::try_from(s).ok()) else {
            return;
        };
        if let (Some(sent), Some(slot)) = (self.sent_at.get(seq), self.rtts.get_mut(seq)) {
            if slot.is_none() {
                *slot = Some(now - *sent);
            }
        }
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        self.start.get_or_insert(now);
        if self.done() || self.due()? > now {
            return None;
        }
        let seq = self.sent_at.len() as u64;
        self.sent_at.push(now);
        self.rtts.push(None);
        Some(Datagram::new(self.src, self.dst, payload(seq, self.size)))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        if self.done() {
            None
        } else {
            self.due()
        }
    }

    fn handle_timeout(&mut self, _: Instant) {}
}

/// A one-call bulk transfer over a single link: a [`Blaster`] sends `bytes` (rounded up to
/// whole packets) to a [`Sink`] and the report says when it all arrived.
///
/// ```
/// use std::time::Duration;
/// use quiver_netem::sim::{LinkConfig, nodes::Transfer};
///
/// let link = LinkConfig::new().rate_bps(8_000_000).delay(Duration::from_millis(10));
/// let report = Transfer::new(1_000_000).link(link).run().unwrap();
/// // 1 MB at 8 Mbit/s takes 1 s, plus 10 ms of propagation delay.
/// let done = report.completion.unwrap();
/// assert!(done >= Duration::from_millis(1_010) && done < Duration::from_millis(1_012));
/// ```
#[derive(Debug, Clone)]
pub struct Transfer {
    bytes: u64,
    packet_size: usize,
    link: LinkConfig,
    pace_bps: Option<u64>,
    seed: u64,
    budget: Duration,
}

/// Result of a [`Transfer`]. Times are offsets from the start of the transfer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransferReport {
    /// Packets the blaster sent.
    pub packets_sent: u64,
    /// Distinct packets that arrived.
    pub packets_delivered: u64,
    /// Payload bytes that arrived (including duplicates).
    pub bytes_delivered: u64,
    /// Arrival of the first packet.
    pub first_arrival: Option<Duration>,
    /// When every packet had arrived (`None` if some never did, e.g. on a lossy link).
    pub completion: Option<Duration>,
    /// Receive throughput, see [`Sink::throughput_bps`].
    pub throughput_bps: Option<f64>,
    /// Statistics of the link.
    pub link: LinkStats,
}

impl Transfer {
    /// Transfer `bytes` in 1200-byte packets over an ideal link with seed 0, paced at the
    /// link rate (unpaced when the rate is unlimited), within one hour of virtual time.
    pub fn new(bytes: u64) -> Self {
        Self {
            bytes,
            packet_size: 1200,
            link: LinkConfig::new(),
            pace_bps: None,
            seed: 0,
            budget: Duration::from_secs(3600),
        }
    }

    /// Packet size (at least [`HEADER_LEN`]).
    pub fn packet_size(mut self, size: usize) -> Self {
        self.packet_size = size.max(HEADER_LEN);
        self
    }

    /// The link the data crosses.
    pub fn link(mut self, link: LinkConfig) -> Self {
        self.link = link;
        self
    }

    /// Sender pacing rate (default: the link rate).
    pub fn pace_bps(mut self, rate: u64) -> Self {
        self.pace_bps = Some(rate);
        self
    }

    /// RNG seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Virtual time budget.
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Runs the transfer in a fresh two-node simulation.
    pub fn run(self) -> Result<TransferReport, SimError> {
        let start = Instant::now();
        let mut sim = Sim::new(self.seed, start);
        let src = SocketAddr::from(([10, 0, 0, 1], 1000));
        let dst = SocketAddr::from(([10, 0, 0, 2], 2000));
        let count = self.bytes.div_ceil(self.packet_size as u64);
        let mut blaster = Blaster::new(src, dst, count, self.packet_size);
        if let Some(rate) = self.pace_bps.or(self.link.rate_bps) {
            blaster = blaster.paced(rate);
        }
        let tx = sim.add_node(blaster, [src])?;
        let rx = sim.add_node(Sink::new().without_log().expecting(count), [dst])?;
        sim.set_link(tx, rx, self.link)?;
        let outcome = sim.run_while(
            |s| {
                s.node::<Sink>(rx)
                    .is_some_and(|k| k.completed_at().is_none())
            },
            self.budget,
        );
        match outcome {
            Ok(_) | Err(SimError::Idle { .. }) | Err(SimError::TimeLimit { .. }) => {}
            Err(e) => return Err(e),
        }
        let packets_sent = sim.node::<Blaster>(tx).map_or(0, Blaster::sent);
        let sink = sim.node::<Sink>(rx).cloned().unwrap_or_default();
        Ok(TransferReport {
            packets_sent,
            packets_delivered: sink.unique(),
            bytes_delivered: sink.bytes(),
            first_arrival: sink.first_arrival().map(|t| t - start),
            completion: sink.completed_at().map(|t| t - start),
            throughput_bps: sink.throughput_bps(),
            link: sim.link_stats(tx, rx).cloned().unwrap_or_default(),
        })
    }
}
