//! A seeded, deterministic, virtual-time network for sans-IO endpoints.
//!
//! A [`Sim`] holds [`Node`]s (each owning one or more [`SocketAddr`]s) and directed links
//! between them. Nodes exchange [`Datagram`]s; each datagram travels over the link from
//! the sending node to the node that owns the destination address, configured by a
//! [`LinkConfig`] (rate and drop-tail queue, delay, jitter, loss, reordering, duplication,
//! corruption, blackholes, MTU — see [`LinkConfig`] for the exact pipeline). A pair of
//! nodes without a link of its own uses the default configuration
//! ([`Sim::set_default_link`]), with its own state and statistics per direction.
//!
//! # Time and determinism
//! The clock is virtual: it starts at the `Instant` given to [`Sim::new`] and moves only
//! to the time of the next event (a packet arrival or a node timeout). Every random
//! decision is drawn from one [`StdRng`] seeded with the `seed` given to [`Sim::new`], in
//! an order fixed by the event order, so the same seed and the same nodes replay the same
//! run exactly; [`Sim::set_trace`] shows every packet event for debugging a failing seed.
//! Events at the same instant run in a fixed order: packet arrivals first (in the order
//! they were scheduled), then node timeouts (lowest [`NodeId`] first).
//!
//! # Example
//! ```
//! use std::time::{Duration, Instant};
//! use quiver_netem::sim::{LinkConfig, Sim, nodes::{Echo, Pinger}};
//!
//! let mut sim = Sim::new(7, Instant::now());
//! let (a, b) = ("10.0.0.1:4433".parse().unwrap(), "10.0.0.2:4433".parse().unwrap());
//! let pinger = sim.add_node(Pinger::new(a, b, 10, Duration::from_millis(100)), [a]).unwrap();
//! let echo = sim.add_node(Echo::new(), [b]).unwrap();
//! sim.set_link_pair(pinger, echo, LinkConfig::profile("3g").unwrap()).unwrap();
//! sim.run_for(Duration::from_secs(2));
//! let rtts = sim.node::<Pinger>(pinger).unwrap().rtts();
//! assert!(rtts.iter().flatten().all(|rtt| *rtt >= Duration::from_millis(50)));
//! ```

#![forbid(unsafe_code)]

mod config;
mod error;
mod link;
mod node;
pub mod nodes;
mod stats;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

pub use config::{Blackhole, GilbertElliott, LinkConfig, LossModel, MAX_DELAY, PROFILES};
pub use error::SimError;
pub use node::{Datagram, Ecn, Node};
pub use stats::{DropCause, DropCounts, LinkStats, TraceEvent, TraceKind};

use link::Link;

/// Identifies a node in one [`Sim`] (handed out by [`Sim::add_node`], in order from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(usize);

impl NodeId {
    /// Position of the node in the order it was added.
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A [`Node`] that can also be borrowed back as its concrete type.
trait AnyNode: Node {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Node + 'static> AnyNode for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

struct Slot {
    node: Box<dyn AnyNode>,
    addrs: Vec<SocketAddr>,
    /// Last value of `poll_timeout`.
    timeout: Option<Instant>,
    /// Must be drained (`poll_transmit`, `poll_timeout`) before the next event.
    dirty: bool,
}

/// A packet copy in flight.
struct Pending {
    time: Instant,
    /// Scheduling order, to break ties deterministically.
    seq: u64,
    packet: u64,
    from: NodeId,
    to: NodeId,
    src: SocketAddr,
    dst: SocketAddr,
    ecn: Ecn,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

type TraceHook = Box<dyn FnMut(&TraceEvent)>;

/// The simulated network and its driver. See the [module documentation](self).
///
/// Typical use: [`add_node`](Sim::add_node) for each endpoint, [`set_link`](Sim::set_link)
/// / [`set_link_pair`](Sim::set_link_pair) / [`set_default_link`](Sim::set_default_link),
/// then drive with [`step`](Sim::step), [`run_until`](Sim::run_until),
/// [`run_for`](Sim::run_for) or [`run_while`](Sim::run_while), and inspect nodes with
/// [`node`](Sim::node) / [`node_mut`](Sim::node_mut) and links with
/// [`link_stats`](Sim::link_stats).
pub struct Sim {
    start: Instant,
    now: Instant,
    rng: StdRng,
    nodes: Vec<Slot>,
    owners: HashMap<SocketAddr, NodeId>,
    default_link: LinkConfig,
    links: BTreeMap<(NodeId, NodeId), Link>,
    in_flight: BinaryHeap<Reverse<Pending>>,
    next_seq: u64,
    next_packet: u64,
    unroutable: u64,
    trace: Option<TraceHook>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("elapsed", &self.elapsed())
            .field("nodes", &self.nodes.len())
            .field("links", &self.links.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// An empty network whose clock starts at `start`, with all randomness drawn from an
    /// RNG seeded with `seed`. The default link is ideal ([`LinkConfig::new`]).
    pub fn new(seed: u64, start: Instant) -> Self {
        Self {
            start,
            now: start,
            rng: StdRng::seed_from_u64(seed),
            nodes: Vec::new(),
            owners: HashMap::new(),
            default_link: LinkConfig::new(),
            links: BTreeMap::new(),
            in_flight: BinaryHeap::new(),
            next_seq: 0,
            next_packet: 0,
            unroutable: 0,
            trace: None,
        }
    }

    // ----- clock -----

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The instant the simulation started at.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    // ----- nodes -----

    /// Adds a node owning `addrs` (datagrams sent to those addresses are delivered to it).
    /// Fails without adding anything if an address already belongs to another node.
    pub fn add_node<T: Node + 'static>(
        &mut self,
        node: T,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<NodeId, SimError> {
        let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
        for addr in &addrs {
            if let Some(&owner) = self.owners.get(addr) {
                return Err(SimError::AddressInUse { addr: *addr, owner });
            }
        }
        let id = NodeId(self.nodes.len());
        for addr in &addrs {
            self.owners.insert(*addr, id);
        }
        self.nodes.push(Slot {
            node: Box::new(node),
            addrs,
            timeout: None,
            dirty: true,
        });
        Ok(id)
    }

    /// Gives node `id` one more address (e.g. for a migration or multipath test).
    pub fn add_address(&mut self, id: NodeId, addr: SocketAddr) -> Result<(), SimError> {
        if let Some(&owner) = self.owners.get(&addr) {
            return Err(SimError::AddressInUse { addr, owner });
        }
        let slot = self.nodes.get_mut(id.0).ok_or(SimError::UnknownNode(id))?;
        slot.addrs.push(addr);
        self.owners.insert(addr, id);
        Ok(())
    }

    /// The addresses of node `id` (empty for an unknown id).
    pub fn addresses(&self, id: NodeId) -> &[SocketAddr] {
        self.nodes.get(id.0).map_or(&[], |s| s.addrs.as_slice())
    }

    /// The node owning `addr`, if any.
    pub fn owner(&self, addr: SocketAddr) -> Option<NodeId> {
        self.owners.get(&addr).copied()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Borrows node `id` as a `T` (`None` if the id is unknown or the node is not a `T`).
    pub fn node<T: Node + 'static>(&self, id: NodeId) -> Option<&T> {
        self.nodes.get(id.0)?.node.as_any().downcast_ref()
    }

    /// Mutably borrows node `id` as a `T`. The node is polled again (transmit, timeout)
    /// before the next event, so commands given through this borrow take effect at the
    /// current virtual time.
    pub fn node_mut<T: Node + 'static>(&mut self, id: NodeId) -> Option<&mut T> {
        let slot = self.nodes.get_mut(id.0)?;
        let node = slot.node.as_any_mut().downcast_mut()?;
        slot.dirty = true;
        Some(node)
    }

    /// Mutably borrows node `id` as a trait object (also marks it for polling).
    pub fn node_dyn_mut(&mut self, id: NodeId) -> Option<&mut dyn Node> {
        let slot = self.nodes.get_mut(id.0)?;
        slot.dirty = true;
        Some(&mut *slot.node)
    }

    // ----- links -----

    /// Sets the configuration used between every ordered pair of nodes that has no link
    /// of its own (including links already carrying traffic under the old default).
    pub fn set_default_link(&mut self, config: LinkConfig) -> Result<(), SimError> {
        config.validate()?;
        for link in self.links.values_mut().filter(|l| !l.explicit) {
            link.config = config.clone();
        }
        self.default_link = config;
        Ok(())
    }

    /// The default link configuration.
    pub fn default_link(&self) -> &LinkConfig {
        &self.default_link
    }

    /// Configures the directed link from node `from` to node `to`. Replacing the
    /// configuration of a link in use keeps its queue, loss state and statistics.
    pub fn set_link(
        &mut self,
        from: NodeId,
        to: NodeId,
        config: LinkConfig,
    ) -> Result<(), SimError> {
        config.validate()?;
        for id in [from, to] {
            if id.0 >= self.nodes.len() {
                return Err(SimError::UnknownNode(id));
            }
        }
        match self.links.get_mut(&(from, to)) {
            Some(link) => {
                link.config = config;
                link.explicit = true;
            }
            None => {
                self.links.insert((from, to), Link::new(config, true));
            }
        }
        Ok(())
    }

    /// Configures both directions between `a` and `b` with the same configuration (each
    /// direction has its own queue, random state and statistics).
    pub fn set_link_pair(
        &mut self,
        a: NodeId,
        b: NodeId,
        config: LinkConfig,
    ) -> Result<(), SimError> {
        self.set_link(a, b, config.clone())?;
        self.set_link(b, a, config)
    }

    /// The configuration the link from `from` to `to` uses.
    pub fn link_config(&self, from: NodeId, to: NodeId) -> &LinkConfig {
        self.links
            .get(&(from, to))
            .map_or(&self.default_link, |l| &l.config)
    }

    /// Statistics of the link from `from` to `to` (`None` until it carried a packet or
    /// was configured).
    pub fn link_stats(&self, from: NodeId, to: NodeId) -> Option<&LinkStats> {
        self.links.get(&(from, to)).map(|l| &l.stats)
    }

    /// Statistics of every link, ordered by `(from, to)`.
    pub fn all_link_stats(&self) -> impl Iterator<Item = ((NodeId, NodeId), &LinkStats)> {
        self.links.iter().map(|(k, l)| (*k, &l.stats))
    }

    /// Packets dropped because no node owns their destination address.
    pub fn unroutable(&self) -> u64 {
        self.unroutable
    }

    /// Packet copies in flight (scheduled, not yet delivered).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    // ----- tracing -----

    /// Calls `hook` for every packet event (sent, dropped, scheduled, delivered), in
    /// order. Replaces any previous hook.
    pub fn set_trace(&mut self, hook: impl FnMut(&TraceEvent) + 'static) {
        self.trace = Some(Box::new(hook));
    }

    /// Removes the trace hook.
    pub fn clear_trace(&mut self) {
        self.trace = None;
    }

    // ----- driving -----

    /// When the next event happens (after polling nodes that need it), or `None` when
    /// nothing is in flight and no node has a timeout.
    pub fn next_event_time(&mut self) -> Option<Instant> {
        self.flush();
        self.next_event().map(|(t, _)| t)
    }

    /// Runs the next event: advances the clock to it, delivers the packet or fires the
    /// node timeout, and polls the affected node. Returns `false` (and does nothing) when
    /// there is no event left.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some((time, timer)) = self.next_event() else {
            return false;
        };
        self.now = self.now.max(time);
        match timer {
            None => self.deliver_next(),
            Some(id) => {
                if let Some(slot) = self.nodes.get_mut(id.0) {
                    slot.timeout = None;
                    slot.node.handle_timeout(self.now);
                    slot.dirty = true;
                }
            }
        }
        self.flush();
        true
    }

    /// Runs every event up to and including `deadline`, then sets the clock to
    /// `deadline` (if it is later than now).
    pub fn run_until(&mut self, deadline: Instant) {
        while self.next_event_time().is_some_and(|t| t <= deadline) {
            self.step();
        }
        self.now = self.now.max(deadline);
    }

    /// Runs for `duration` of virtual time (see [`run_until`](Sim::run_until)).
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    /// Runs events while `cond(self)` holds, for at most `budget` of virtual time from
    /// now. Returns the time at which `cond` became false, or [`SimError::TimeLimit`]
    /// (the clock is then at the end of the budget) or [`SimError::Idle`] (no events
    /// left).
    pub fn run_while(
        &mut self,
        mut cond: impl FnMut(&mut Sim) -> bool,
        budget: Duration,
    ) -> Result<Instant, SimError> {
        let limit = self.now + budget;
        loop {
            if !cond(self) {
                return Ok(self.now);
            }
            match self.next_event_time() {
                None => {
                    return Err(SimError::Idle {
                        elapsed: self.elapsed(),
                    })
                }
                Some(t) if t > limit => {
                    self.now = self.now.max(limit);
                    return Err(SimError::TimeLimit { budget });
                }
                Some(_) => {
                    self.step();
                }
            }
        }
    }

    // ----- internals -----

    /// The earliest event: `(time, None)` for a packet arrival, `(time, Some(node))` for
    /// a timeout. Arrivals win ties; among timeouts the lowest id wins.
    fn next_event(&self) -> Option<(Instant, Option<NodeId>)> {
        let arrival = self.in_flight.peek().map(|Reverse(p)| p.time);
        let timer = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.timeout.map(|t| (t, NodeId(i))))
            .min();
        match (arrival, timer) {
            (Some(a), Some((t, _))) if a <= t => Some((a, None)),
            (_, Some((t, id))) => Some((t, Some(id))),
            (Some(a), None) => Some((a, None)),
            (None, None) => None,
        }
    }

    fn deliver_next(&mut self) {
        let Some(Reverse(p)) = self.in_flight.pop() else {
            return;
        };
        if let Some(link) = self.links.get_mut(&(p.from, p.to)) {
            link.stats.delivered_packets += 1;
            link.stats.delivered_bytes += p.data.len() as u64;
        }
        if let Some(hook) = self.trace.as_mut() {
            hook(&TraceEvent {
                time: self.now,
                packet: p.packet,
                from: p.from,
                to: Some(p.to),
                src: p.src,
                dst: p.dst,
                len: p.data.len(),
                kind: TraceKind::Delivered {
                    digest: stats::digest(&p.data),
                },
            });
        }
        if let Some(slot) = self.nodes.get_mut(p.to.0) {
            slot.node
                .handle_datagram_ecn(self.now, p.src, p.dst, p.ecn, p.data);
            slot.dirty = true;
        }
    }

    /// Drains transmissions and timeouts of every node marked dirty.
    fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].dirty {
                continue;
            }
            self.nodes[i].dirty = false;
            while let Some(dgram) = self.nodes[i].node.poll_transmit(self.now) {
                self.send(NodeId(i), dgram);
            }
            self.nodes[i].timeout = self.nodes[i].node.poll_timeout();
        }
    }

    /// Splits a (possibly batched) datagram into packets and routes each.
    fn send(&mut self, from: NodeId, dgram: Datagram) {
        let Datagram {
            src,
            dst,
            data,
            segment_size,
            ecn,
        } = dgram;
        match segment_size {
            Some(size) if size > 0 && data.len() > size => {
                for segment in data.chunks(size) {
                    self.route(from, src, dst, ecn, segment.to_vec());
                }
            }
            _ => self.route(from, src, dst, ecn, data),
        }
    }

    fn route(
        &mut self,
        from: NodeId,
        src: SocketAddr,
        dst: SocketAddr,
        ecn: Ecn,
        mut data: Vec<u8>,
    ) {
        let packet = self.next_packet;
        self.next_packet += 1;
        let to = self.owners.get(&dst).copied();
        let now = self.now;
        let len = data.len();
        let trace = move |sim_trace: &mut Option<TraceHook>, kind| {
            if let Some(hook) = sim_trace.as_mut() {
                hook(&TraceEvent {
                    time: now,
                    packet,
                    from,
                    to,
                    src,
                    dst,
                    len,
                    kind,
                });
            }
        };
        trace(&mut self.trace, TraceKind::Sent);
        let Some(to) = to else {
            self.unroutable += 1;
            trace(&mut self.trace, TraceKind::Dropped(DropCause::NoRoute));
            return;
        };
        let default = &self.default_link;
        let link = self
            .links
            .entry((from, to))
            .or_insert_with(|| Link::new(default.clone(), false));
        let copies = match link.offer(now, self.start, len, ecn, &mut self.rng) {
            Ok(copies) => copies,
            Err(cause) => {
                trace(&mut self.trace, TraceKind::Dropped(cause));
                return;
            }
        };
        let count = copies.len();
        for (i, copy) in copies.into_iter().enumerate() {
            // The last copy takes the buffer; earlier ones get a clone.
            let mut payload = if i + 1 == count {
                std::mem::take(&mut data)
            } else {
                data.clone()
            };
            if let Some(bit) = copy.corrupted_bit {
                if let Some(byte) = payload.get_mut(bit / 8) {
                    *byte ^= 1 << (bit % 8);
                }
            }
            trace(
                &mut self.trace,
                TraceKind::Scheduled {
                    arrival: copy.arrival,
                    duplicate: copy.duplicate,
                    reordered: copy.reordered,
                    corrupted_bit: copy.corrupted_bit,
                },
            );
            let seq = self.next_seq;
            self.next_seq += 1;
            self.in_flight.push(Reverse(Pending {
                time: copy.arrival,
                seq,
                packet,
                from,
                to,
                src,
                dst,
                ecn: copy.ecn,
                data: payload,
            }));
        }
    }
}
