//! One QUIC connection as a sans-IO state machine.
//!
//! Methods are grouped as getters, `handle_*` inputs, commands, and `poll_*` outputs.
//! After any input or command, the driver must drain [`Connection::poll_transmit`],
//! re-arm its timer from [`Connection::poll_timeout`] and drain [`Connection::poll`].

use crate::coding::VarInt;
use crate::error::{TransportError, TransportErrorCode};
use crate::shared::{Dir, EcnCodepoint, Side, StreamId};
use bytes::{Bytes, BytesMut};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// An outgoing UDP datagram (or a GSO batch of equal-size segments) placed in the
/// caller's buffer by `poll_transmit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// ECN codepoint to set on the IP header.
    pub ecn: Option<EcnCodepoint>,
    /// Total bytes written to the buffer.
    pub size: usize,
    /// When several datagrams were written, the size of each but the last (GSO).
    pub segment_size: Option<usize>,
    /// Source IP to send from, when the endpoint is bound to a wildcard address.
    pub src_ip: Option<IpAddr>,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The peer does not speak any version we support.
    #[error("peer does not support our QUIC version")]
    VersionMismatch,
    /// We detected a transport error and closed the connection.
    #[error("transport error: {0}")]
    TransportError(#[from] TransportError),
    /// The peer closed the connection with a transport error code.
    #[error("closed by peer: {code} {}", String::from_utf8_lossy(reason))]
    ConnectionClosed {
        /// Transport error code.
        code: TransportErrorCode,
        /// Frame type that triggered it.
        frame_type: Option<u64>,
        /// Reason phrase.
        reason: Bytes,
    },
    /// The peer's application closed the connection.
    #[error(
        "closed by peer application: code {code} {}",
        String::from_utf8_lossy(reason)
    )]
    ApplicationClosed {
        /// Application error code.
        code: VarInt,
        /// Reason phrase.
        reason: Bytes,
    },
    /// The peer sent a stateless reset.
    #[error("reset by peer")]
    Reset,
    /// No packet arrived within the idle timeout.
    #[error("timed out")]
    TimedOut,
    /// We closed the connection.
    #[error("closed locally")]
    LocallyClosed,
}

/// Application-visible events, drained with [`Connection::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed; streams may be used.
    Connected,
    /// The connection was lost or closed; no more I/O is possible.
    ConnectionLost {
        /// Why.
        reason: ConnectionError,
    },
    /// The peer opened one or more streams of this direction; use `accept`.
    StreamOpened {
        /// Direction of the new streams.
        dir: Dir,
    },
    /// A stream has data (or its end, or a reset) to read.
    StreamReadable {
        /// The stream.
        id: StreamId,
    },
    /// A stream that was blocked on flow control can be written again.
    StreamWritable {
        /// The stream.
        id: StreamId,
    },
    /// All data of a finished stream, including FIN, was acknowledged.
    StreamFinished {
        /// The stream.
        id: StreamId,
    },
    /// The peer asked us to stop sending on a stream (STOP_SENDING).
    StreamStopped {
        /// The stream.
        id: StreamId,
        /// The peer's error code.
        error_code: VarInt,
    },
    /// The peer raised the stream limit: more streams of this direction may be opened.
    StreamAvailable {
        /// Direction.
        dir: Dir,
    },
    /// One or more DATAGRAM frames arrived; use `recv_datagram`.
    DatagramReceived,
}

/// Error writing to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Flow control or the send buffer is full; wait for [`Event::StreamWritable`].
    #[error("blocked")]
    Blocked,
    /// The peer sent STOP_SENDING with this code.
    #[error("stopped by peer: {0}")]
    Stopped(VarInt),
    /// The stream is unknown, finished, or reset.
    #[error("closed stream")]
    ClosedStream,
}

/// Error reading from a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No data available yet; wait for [`Event::StreamReadable`].
    #[error("blocked")]
    Blocked,
    /// The peer reset the stream with this code.
    #[error("reset by peer: {0}")]
    Reset(VarInt),
    /// The stream is unknown or already fully read.
    #[error("closed stream")]
    ClosedStream,
}

/// The stream is unknown or already closed in that direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("closed stream")]
pub struct ClosedStream;

/// Error sending a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendDatagramError {
    /// The peer did not advertise DATAGRAM support.
    #[error("peer does not support datagrams")]
    UnsupportedByPeer,
    /// We disabled datagrams locally.
    #[error("datagrams disabled locally")]
    Disabled,
    /// The datagram is larger than [`Connection::max_datagram_size`].
    #[error("datagram too large")]
    TooLarge,
    /// The connection is closed.
    #[error("connection closed")]
    ConnectionLost,
}

/// Counters for diagnostics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// UDP datagrams sent.
    pub udp_tx: u64,
    /// UDP datagrams received.
    pub udp_rx: u64,
    /// Bytes sent in UDP payloads.
    pub bytes_tx: u64,
    /// Bytes received in UDP payloads.
    pub bytes_rx: u64,
    /// QUIC packets sent.
    pub packets_tx: u64,
    /// QUIC packets received and decrypted.
    pub packets_rx: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Current congestion window.
    pub cwnd: u64,
    /// Smoothed RTT.
    pub rtt: Duration,
}

/// One QUIC connection.
pub struct Connection {
    _private: (),
}

#[allow(clippy::todo, unused_variables, missing_docs)]
impl Connection {
    // ---- getters ----
    /// Which side we are.
    pub fn side(&self) -> Side {
        todo!()
    }
    /// The peer's current address.
    pub fn remote_address(&self) -> SocketAddr {
        todo!()
    }
    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        todo!()
    }
    /// Whether the connection is closing, draining or gone (no more application I/O).
    pub fn is_closed(&self) -> bool {
        todo!()
    }
    /// Whether all state can be freed.
    pub fn is_drained(&self) -> bool {
        todo!()
    }
    /// Negotiated ALPN protocol.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        todo!()
    }
    /// Smoothed RTT estimate.
    pub fn rtt(&self) -> Duration {
        todo!()
    }
    /// Counters.
    pub fn stats(&self) -> ConnectionStats {
        todo!()
    }
    /// Largest DATAGRAM payload that fits in one packet now; `None` if unsupported.
    pub fn max_datagram_size(&self) -> Option<usize> {
        todo!()
    }

    // ---- inputs ----
    /// Process a UDP datagram addressed to this connection (called by the endpoint).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        todo!()
    }
    /// Process expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        todo!()
    }

    // ---- commands ----
    /// Open a stream; `None` when the peer's stream limit is reached.
    pub fn open(&mut self, dir: Dir) -> Option<StreamId> {
        todo!()
    }
    /// Accept the next stream the peer opened.
    pub fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        todo!()
    }
    /// Write bytes; returns how many were accepted.
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        todo!()
    }
    /// Mark the end of the stream.
    pub fn finish(&mut self, id: StreamId) -> Result<(), ClosedStream> {
        todo!()
    }
    /// Abandon sending with RESET_STREAM.
    pub fn reset(&mut self, id: StreamId, error_code: VarInt) -> Result<(), ClosedStream> {
        todo!()
    }
    /// Read up to `max_len` bytes in order; `Ok(None)` at the end of the stream.
    pub fn read(&mut self, id: StreamId, max_len: usize) -> Result<Option<Bytes>, ReadError> {
        todo!()
    }
    /// Ask the peer to stop sending (STOP_SENDING) and discard incoming data.
    pub fn stop_sending(&mut self, id: StreamId, error_code: VarInt) -> Result<(), ClosedStream> {
        todo!()
    }
    /// Queue an unreliable DATAGRAM frame.
    pub fn send_datagram(&mut self, data: Bytes) -> Result<(), SendDatagramError> {
        todo!()
    }
    /// Take the next received datagram.
    pub fn recv_datagram(&mut self) -> Option<Bytes> {
        todo!()
    }
    /// Close with an application error code and reason (CONNECTION_CLOSE 0x1d).
    pub fn close(&mut self, now: Instant, error_code: VarInt, reason: Bytes) {
        todo!()
    }

    // ---- outputs ----
    /// Write the next datagram(s) (up to `max_datagrams` equal-size GSO segments) into `buf`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        todo!()
    }
    /// Earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        todo!()
    }
    /// Next application event.
    pub fn poll(&mut self) -> Option<Event> {
        todo!()
    }
}
