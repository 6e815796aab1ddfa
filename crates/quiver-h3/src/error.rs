//! Errors of the convenience API.

/// An error of [`Server`](crate::Server), [`Client`](crate::Client) or
/// [`HttpDatagrams`](crate::HttpDatagrams).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum H3Error {
    /// The HTTP/3 connection failed (h3's view: protocol error, peer closed, QUIC lost).
    #[error("HTTP/3 connection error: {0}")]
    H3Connection(#[from] h3::error::ConnectionError),
    /// One request stream failed (reset, malformed message, ...); the connection goes on.
    #[error("HTTP/3 stream error: {0}")]
    Stream(#[from] h3::error::StreamError),
    /// The QUIC connection ended.
    #[error("QUIC connection lost: {0}")]
    Connection(quiver::ConnectionError),
    /// A QUIC datagram could not be sent.
    #[error("datagram not sent: {0}")]
    Datagram(quiver::SendDatagramError),
    /// A received HTTP Datagram was malformed.
    #[error("bad HTTP datagram: {0}")]
    BadDatagram(#[from] crate::datagram::DatagramDecodeError),
    /// HTTP Datagrams and PRIORITY_UPDATE name client-initiated bidirectional streams
    /// only.
    #[error("stream {0} is not a request stream")]
    NotARequestStream(u64),
    /// Writing to our control stream failed.
    #[error("control stream: {0}")]
    Write(quiver::WriteError),
    /// The HTTP/3 connection has not opened its control stream yet.
    #[error("HTTP/3 control stream not open yet")]
    NotReady,
    /// The request could not be built (bad URI, header, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A response or request body was longer than the caller's limit.
    #[error("body longer than {0} bytes")]
    TooLong(usize),
}
