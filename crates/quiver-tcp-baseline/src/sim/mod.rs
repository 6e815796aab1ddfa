//! The baselines as sans-IO nodes on [`quiver_netem::sim`]: smoltcp's TCP with rustls on
//! top, driven entirely by the simulator's virtual clock.
//!
//! * [`TcpEchoServerNode`] — accepts any number of TLS/TCP connections on one address and
//!   echoes every request (see the [crate documentation](crate) for the framing).
//! * [`TcpClientNode`] — runs a workload of [`Request`](crate::Request)s in a
//!   [`Mode`](crate::Mode) and records an [`Outcome`](crate::Outcome) per request.
//!
//! # How the nodes map onto the simulator
//! Each simulator datagram carries one raw IP packet (IPv4 or IPv6 header + TCP segment),
//! produced and consumed by a [`smoltcp::iface::Interface`] on an IP-medium device. The
//! datagram's source is the node's address; its destination is the simulator address the
//! packet's destination IP was last heard from (a server learns its clients as their SYNs
//! arrive; a client knows its server). The node's IP is the IP of its simulator address;
//! TCP ports are the server's simulator port and client ports from 49152 up.
//!
//! Because datagrams are whole IP packets, a link's rate accounting counts the 40 (IPv4)
//! or 60 (IPv6) bytes of IP + TCP headers, whereas QUIC nodes' datagrams count only the
//! UDP payload. At an MTU of 1500 this is ~2.7 % more bytes on the wire for TCP than the
//! simulator charges QUIC; set `overhead_bytes` on QUIC links if the comparison needs
//! the extra precision.
//!
//! smoltcp time is the virtual time since the node first saw the clock, in microseconds;
//! its random seed (initial sequence numbers) comes from [`TcpConfig::seed`] and the
//! node's address, so a run replays exactly for a simulator seed. TLS adds no
//! nondeterminism to timing: key shares and signatures (Ed25519 in
//! [`TlsPair`](crate::tls::TlsPair)) have fixed sizes, so only byte values differ between
//! runs, never packet sizes.
//!
//! # What smoltcp's TCP lacks
//! Compared with a Linux sender (what [`kernel`](crate::kernel) measures):
//! * **No SACK-based loss recovery.** smoltcp sends SACK blocks as a receiver but ignores
//!   them as a sender; after an RTO it rewinds its send pointer to the first
//!   unacknowledged byte and resends everything after it (go-back-N).
//! * **Congestion control** is smoltcp 0.14's Reno ([`TcpConfig::congestion`]; RFC 5681
//!   slow start, congestion avoidance and fast retransmit/recovery, bounded by bytes in
//!   flight). Releases before 0.14 compared the window with unsent bytes rather than
//!   bytes in flight, i.e. had no effective congestion control, and 0.12 can panic on
//!   window updates: do not downgrade. No PRR, RACK-TLP, HyStart or pacing; Cubic is
//!   available behind smoltcp's `socket-tcp-cubic` feature.
//! * **Pure ACKs carry SND.NXT, and a zero window accepts only `SEG.SEQ == RCV.NXT`.**
//!   Left alone, this deadlocks connections under loss; the driver corrects it (see
//!   "Driver workarounds" below).
//! * **RTO** follows RFC 6298's formula but with a 10 ms floor instead of 1 s (Linux uses
//!   200 ms) and a 300 ms initial RTT estimate; no timestamps option (smoltcp's timestamp
//!   hook takes no clock argument, so it cannot follow virtual time).
//! * Out-of-order segments are kept in up to 32 holes (crate feature
//!   `assembler-max-segment-count-32`); beyond that they are dropped.
//! * No receive-buffer autotuning: the window is fixed by [`TcpConfig::rx_buffer`]; the
//!   window scale follows from it (256 KiB → shift 3).
//!
//! # Driver workarounds
//! Two smoltcp 0.14 behaviours stalled or reset connections on lossy links (the 3g
//! profile's 0.5 % loss: in `quiver bench classes`, 55 of 90 requests never completed
//! in 1-conn mode and 2 of 90 connections died in n-conn mode). Both are corrected in
//! the device layer between smoltcp and the simulator, without patching smoltcp:
//!
//! * **ACKs the peer discards.** smoltcp fills a pure ACK's sequence number with its
//!   SND.NXT, which is rewound to SND.UNA after a retransmission timeout and can lie
//!   beyond the peer's window after the peer's scaled window edge moved left by
//!   rounding (`window >> shift`); the peer then finds the ACK unacceptable (RFC 9293
//!   §3.10.7.4, applied strictly: in a zero window only `SEG.SEQ == RCV.NXT` passes)
//!   and ignores its ACK field. Two rewound peers ignore each other forever; a server
//!   whose receive window closed while its send buffer waits for those ACKs never
//!   reopens it. The driver rewrites outgoing pure ACKs to carry
//!   `min(SND.MAX, right edge of the peer's window)` as BSD and Linux senders do (see
//!   `ackseq.rs` for the full analysis); data, SYN, FIN and RST segments are untouched.
//! * **A retransmitted SYN opening a second connection.** smoltcp gives a segment to
//!   the first socket in the set that accepts it, and a spare listener in an earlier
//!   slot than a half-open connection takes that connection's retransmitted SYN (sent
//!   when the SYN-ACK was lost), opens a duplicate with a new initial sequence number,
//!   and answers the client's handshake ACK with a reset. The driver drops a SYN whose
//!   4-tuple already has a socket (which would ignore it and retransmit its SYN-ACK on
//!   its own timer).

mod ackseq;
mod client;
mod server;
mod stack;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use client::TcpClientNode;
pub use server::TcpEchoServerNode;
pub use smoltcp::socket::tcp::CongestionControl;

/// TCP settings of a simulated node. The defaults suit a 5 Mbit/s, 100 ms RTT link
/// (bandwidth-delay product ≈ 62 KB, so 256 KiB buffers never limit the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// Receive buffer per connection in bytes; also the advertised window. Default
    /// 256 KiB. At most 1 GiB.
    pub rx_buffer: usize,
    /// Send buffer per connection in bytes. Default 256 KiB.
    pub tx_buffer: usize,
    /// Congestion control. Default [`CongestionControl::Reno`].
    pub congestion: CongestionControl,
    /// Nagle's algorithm. Default off (as `TCP_NODELAY` on the kernel sockets).
    pub nagle: bool,
    /// Delayed-ACK timeout; `None` acknowledges every segment at once. Default 10 ms
    /// (smoltcp's default).
    pub ack_delay: Option<Duration>,
    /// IP MTU of the node's interface in bytes (MSS = MTU − 40 for IPv4). Default 1500.
    pub mtu: usize,
    /// Random seed of the stack (initial sequence numbers), mixed with the node's
    /// address. Default 0.
    pub seed: u64,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            congestion: CongestionControl::Reno,
            nagle: false,
            ack_delay: Some(Duration::from_millis(10)),
            mtu: 1500,
            seed: 0,
        }
    }
}
