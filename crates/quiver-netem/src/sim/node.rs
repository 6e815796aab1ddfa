//! The endpoint abstraction: what the simulator drives.

use std::net::SocketAddr;
use std::time::Instant;

/// A UDP datagram (or a GSO-style batch of them) leaving a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Source address. Usually one of the sending node's addresses, but the simulator does
    /// not enforce that (direct server return and similar setups send from an address
    /// they do not own); the receiver sees it as the peer address.
    pub src: SocketAddr,
    /// Destination address; routes the datagram to the node that owns it.
    pub dst: SocketAddr,
    /// Payload (the UDP payload; IP/UDP headers are not modelled except through
    /// [`LinkConfig::overhead_bytes`](super::LinkConfig::overhead_bytes)).
    pub data: Vec<u8>,
    /// GSO-style batching: when `Some(n)` with `n > 0`, `data` holds several datagrams of
    /// `n` bytes each (the last may be shorter), and the simulator sends them as separate
    /// packets. `None` (or `Some(0)`) means `data` is one datagram.
    pub segment_size: Option<usize>,
    /// ECN field of the IP header (every segment of a batch carries the same).
    pub ecn: Ecn,
}

/// The two ECN bits of the IP header (RFC 3168).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Ecn {
    /// Not ECN-capable transport (`00`).
    #[default]
    NotEct,
    /// ECN-capable transport, ECT(1) (`01`).
    Ect1,
    /// ECN-capable transport, ECT(0) (`10`).
    Ect0,
    /// Congestion experienced (`11`).
    Ce,
}

impl Ecn {
    /// From the two low bits of `bits`.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b01 => Ecn::Ect1,
            0b10 => Ecn::Ect0,
            0b11 => Ecn::Ce,
            _ => Ecn::NotEct,
        }
    }

    /// The two ECN bits.
    pub fn bits(self) -> u8 {
        match self {
            Ecn::NotEct => 0b00,
            Ecn::Ect1 => 0b01,
            Ecn::Ect0 => 0b10,
            Ecn::Ce => 0b11,
        }
    }

    /// ECT(0), ECT(1) or CE: the sender declared ECN capability.
    pub fn is_ecn_capable(self) -> bool {
        self != Ecn::NotEct
    }
}

impl Datagram {
    /// A single datagram from `src` to `dst`.
    pub fn new(src: SocketAddr, dst: SocketAddr, data: Vec<u8>) -> Self {
        Self {
            src,
            dst,
            data,
            segment_size: None,
            ecn: Ecn::NotEct,
        }
    }

    /// The same datagram with the ECN field set to `ecn`.
    pub fn with_ecn(mut self, ecn: Ecn) -> Self {
        self.ecn = ecn;
        self
    }
}

/// A sans-IO endpoint placed on the simulated network.
///
/// The simulator drives every node the way a runtime drives the QUIC core:
/// 1. after the node is added, after each `handle_*` call and after each mutable borrow
///    through [`Sim::node_mut`](super::Sim::node_mut), it drains
///    [`poll_transmit`](Node::poll_transmit) until it returns `None`, then reads
///    [`poll_timeout`](Node::poll_timeout);
/// 2. it calls [`handle_datagram`](Node::handle_datagram) when a packet arrives and
///    [`handle_timeout`](Node::handle_timeout) when the virtual clock reaches the node's
///    timeout.
///
/// `now` is always the simulator's virtual time. A node must not return a timeout at or
/// before `now` again and again without making progress, and must not return `Some` from
/// `poll_transmit` forever: either would keep the simulation from advancing.
pub trait Node {
    /// A datagram arrives at `to` (one of this node's addresses) from `from`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: Vec<u8>);
    /// A datagram arrives with the ECN field `ecn` (as the links left it). This is what
    /// the simulator calls; the default ignores the field and calls
    /// [`handle_datagram`](Node::handle_datagram). ECN-aware nodes override it.
    fn handle_datagram_ecn(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        ecn: Ecn,
        data: Vec<u8>,
    ) {
        let _ = ecn;
        self.handle_datagram(now, from, to, data);
    }
    /// Next datagram this node wants to send, if any.
    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram>;
    /// When this node next wants [`handle_timeout`](Node::handle_timeout) to be called.
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// The virtual clock reached the instant last returned by
    /// [`poll_timeout`](Node::poll_timeout).
    fn handle_timeout(&mut self, now: Instant);
}
