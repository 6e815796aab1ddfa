//! The server side: accept HTTP/3 requests on a Quiver connection.

use crate::datagram::HttpDatagrams;
use crate::error::H3Error;
use crate::priority::Priority;
use crate::quic::{BidiStream, ConnShared, QuicConnection};
use bytes::{Buf, Bytes, BytesMut};
use std::sync::Arc;

/// The request stream of a server: receive the body, send the response.
pub type ServerStream = h3::server::RequestStream<BidiStream<Bytes>, Bytes>;

/// Settings of an HTTP/3 endpoint (server or client).
#[derive(Debug, Clone)]
pub struct H3Config {
    /// Advertise SETTINGS_H3_DATAGRAM (RFC 9297 §2.1.1). Default on.
    pub datagrams: bool,
    /// Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (extended CONNECT, RFC 9220). Default
    /// on; servers only (h3 ignores it on clients).
    pub extended_connect: bool,
    /// Largest header section accepted (SETTINGS_MAX_FIELD_SECTION_SIZE); `None` keeps
    /// h3's default.
    pub max_field_section_size: Option<u64>,
}

impl Default for H3Config {
    fn default() -> Self {
        Self {
            datagrams: true,
            extended_connect: true,
            max_field_section_size: None,
        }
    }
}

/// An HTTP/3 server connection.
///
/// Accepts requests ([`accept`](Self::accept)), gives every request stream the class of
/// its RFC 9218 priority (see [`crate::priority`]), and carries HTTP Datagrams
/// ([`datagrams`](Self::datagrams)).
pub struct Server {
    conn: h3::server::Connection<QuicConnection, Bytes>,
    shared: Arc<ConnShared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("conn", &self.shared.conn)
            .finish()
    }
}

impl Server {
    /// Start HTTP/3 on an accepted Quiver connection with the default [`H3Config`]
    /// (datagrams and extended CONNECT on).
    pub async fn new(conn: quiver::Connection) -> Result<Self, H3Error> {
        Self::with_config(conn, &H3Config::default()).await
    }

    /// Start HTTP/3 on an accepted Quiver connection.
    pub async fn with_config(conn: quiver::Connection, config: &H3Config) -> Result<Self, H3Error> {
        let shared = ConnShared::new(conn);
        let mut b = h3::server::builder();
        b.enable_datagram(config.datagrams)
            .enable_extended_connect(config.extended_connect);
        if let Some(max) = config.max_field_section_size {
            b.max_field_section_size(max);
        }
        let conn = b.build(QuicConnection::from_shared(shared.clone())).await?;
        Ok(Self { conn, shared })
    }

    /// The next request stream, or `None` once the client has gone away cleanly.
    /// Resolve it ([`IncomingRequest::resolve`]) in its own task so that a slow client
    /// does not hold up the others.
    pub async fn accept(&mut self) -> Result<Option<IncomingRequest>, H3Error> {
        Ok(self.conn.accept().await?.map(|resolver| IncomingRequest {
            resolver,
            shared: self.shared.clone(),
        }))
    }

    /// Send and receive HTTP Datagrams on this connection.
    pub fn datagrams(&self) -> HttpDatagrams {
        HttpDatagrams::new(self.shared.conn.clone())
    }

    /// The QUIC connection underneath.
    pub fn quic(&self) -> &quiver::Connection {
        &self.shared.conn
    }

    /// h3's connection, for what this API does not cover (e.g. h3-datagram's
    /// `HandleDatagramsExt`, whose sender mis-encodes stream IDs — see
    /// [`crate::datagram`]).
    pub fn h3(&mut self) -> &mut h3::server::Connection<QuicConnection, Bytes> {
        &mut self.conn
    }

    /// Graceful shutdown (GOAWAY, RFC 9114 §5.2), letting up to `max_requests` more
    /// requests in.
    pub async fn shutdown(&mut self, max_requests: usize) -> Result<(), H3Error> {
        Ok(self.conn.shutdown(max_requests).await?)
    }
}

/// A request stream whose headers have not been read yet.
pub struct IncomingRequest {
    resolver: h3::server::RequestResolver<QuicConnection, Bytes>,
    shared: Arc<ConnShared>,
}

impl std::fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequest").finish_non_exhaustive()
    }
}

impl IncomingRequest {
    /// Read the request headers. The response stream gets the class of the request's
    /// priority (a PRIORITY_UPDATE already received for it wins over the header).
    pub async fn resolve(self) -> Result<Request, H3Error> {
        let (head, stream) = self.resolver.resolve_request().await?;
        let header = Priority::from_headers(head.headers());
        let id = stream.id().into_inner();
        let priority = self.shared.classify_request(id, header);
        Ok(Request {
            head,
            stream,
            priority,
        })
    }
}

/// A request received by a [`Server`].
pub struct Request {
    /// Method, URI, headers (and the `:protocol` of an extended CONNECT in the
    /// extensions, as `h3::ext::Protocol`).
    pub head: http::Request<()>,
    /// The stream to read the body from and write the response to.
    pub stream: ServerStream,
    /// The priority the response is scheduled with.
    pub priority: Priority,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("head", &self.head)
            .field("stream", &self.stream.id())
            .field("priority", &self.priority)
            .finish()
    }
}

impl Request {
    /// The request stream's ID (HTTP Datagrams of this request carry it).
    pub fn stream_id(&self) -> h3::quic::StreamId {
        self.stream.id()
    }

    /// Read the whole request body, at most `limit` bytes (the stream is stopped with
    /// H3_REQUEST_REJECTED beyond).
    pub async fn body(&mut self, limit: usize) -> Result<Bytes, H3Error> {
        let mut out = BytesMut::new();
        while let Some(mut chunk) = self.stream.recv_data().await? {
            if out.len() + chunk.remaining() > limit {
                self.stream
                    .stop_sending(h3::error::Code::H3_REQUEST_REJECTED);
                return Err(H3Error::TooLong(limit));
            }
            while chunk.has_remaining() {
                let c = chunk.chunk();
                let n = c.len();
                out.extend_from_slice(c);
                chunk.advance(n);
            }
        }
        Ok(out.freeze())
    }

    /// Send a complete response: headers, `body` (if not empty), end of stream.
    pub async fn respond(&mut self, head: http::Response<()>, body: Bytes) -> Result<(), H3Error> {
        self.stream.send_response(head).await?;
        if !body.is_empty() {
            self.stream.send_data(body).await?;
        }
        self.stream.finish().await?;
        Ok(())
    }
}
