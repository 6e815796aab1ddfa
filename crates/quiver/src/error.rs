//! Errors of the runtime API, sorted by who is to blame: the peer (reset, stopped,
//! closed), the connection (lost), or the caller (closed stream, bad configuration).

use quiver_proto::VarInt;
use std::io;

pub use quiver_proto::connection::{ClosedStream, ConnectionError};

/// Why [`Endpoint::connect`](crate::Endpoint::connect) could not start a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The QUIC core refused the attempt (bad name, address, version or TLS setup).
    #[error(transparent)]
    Proto(#[from] quiver_proto::endpoint::ConnectError),
    /// `connect` was called without a default client config; see
    /// [`Endpoint::set_default_client_config`](crate::Endpoint::set_default_client_config).
    #[error("no default client configuration set")]
    NoDefaultClientConfig,
    /// The endpoint was closed or its I/O driver stopped.
    #[error("endpoint is closed")]
    EndpointClosed,
}

/// Error writing to a [`SendStream`](crate::SendStream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The peer asked us to stop sending (STOP_SENDING, RFC 9000 §3.5) with this code.
    #[error("stopped by peer: code {0}")]
    Stopped(VarInt),
    /// The connection was closed or lost.
    #[error("connection lost: {0}")]
    ConnectionLost(ConnectionError),
    /// The stream was already finished or reset by us.
    #[error("closed stream")]
    ClosedStream,
}

/// Error reading from a [`RecvStream`](crate::RecvStream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer abandoned the stream (RESET_STREAM, RFC 9000 §3.2) with this code.
    #[error("reset by peer: code {0}")]
    Reset(VarInt),
    /// The connection was closed or lost.
    #[error("connection lost: {0}")]
    ConnectionLost(ConnectionError),
    /// The stream was already read to its end or stopped by us.
    #[error("closed stream")]
    ClosedStream,
}

/// Error of [`RecvStream::read_to_end`](crate::RecvStream::read_to_end).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadToEndError {
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The stream carried more than the given limit.
    #[error("stream longer than the limit")]
    TooLong,
}

/// Error of [`SendStream::stopped`](crate::SendStream::stopped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoppedError {
    /// The connection was closed or lost before the stream finished.
    #[error("connection lost: {0}")]
    ConnectionLost(ConnectionError),
}

/// Error sending an unreliable datagram (RFC 9221).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendDatagramError {
    /// The peer did not advertise `max_datagram_frame_size`.
    #[error("peer does not support datagrams")]
    UnsupportedByPeer,
    /// Datagrams are disabled in our transport config.
    #[error("datagrams disabled locally")]
    Disabled,
    /// Larger than [`Connection::max_datagram_size`](crate::Connection::max_datagram_size).
    #[error("datagram too large")]
    TooLarge,
    /// The connection was closed or lost.
    #[error("connection lost: {0}")]
    ConnectionLost(ConnectionError),
    /// The datagram flow was never opened or is closed.
    #[error("unknown datagram flow")]
    UnknownFlow,
}

impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> Self {
        let kind = match e {
            WriteError::Stopped(_) | WriteError::ConnectionLost(_) => {
                io::ErrorKind::ConnectionReset
            }
            WriteError::ClosedStream => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> Self {
        let kind = match e {
            ReadError::Reset(_) | ReadError::ConnectionLost(_) => io::ErrorKind::ConnectionReset,
            ReadError::ClosedStream => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}
