//! The client side: send HTTP/3 requests on a Quiver connection.

use crate::datagram::HttpDatagrams;
use crate::error::H3Error;
use crate::priority::{encode_priority_update, Priority};
use crate::quic::{BidiStream, ConnShared, OpenStreams, QuicConnection};
use crate::server::H3Config;
use bytes::{Buf, Bytes, BytesMut};
use std::sync::Arc;

/// The request stream of a client: send the body, receive the response.
pub type ClientStream = h3::client::RequestStream<BidiStream<Bytes>, Bytes>;

/// An HTTP/3 client connection. Cheap to clone; requests from clones share the
/// connection. h3's connection driver runs in a background task until the connection
/// ends.
#[derive(Clone)]
pub struct Client {
    send: h3::client::SendRequest<OpenStreams, Bytes>,
    shared: Arc<ConnShared>,
    closed: Arc<tokio::sync::watch::Receiver<Option<String>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("conn", &self.shared.conn)
            .finish()
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Response {
    /// Status and headers.
    pub head: http::Response<()>,
    /// The body.
    pub body: Bytes,
}

impl Client {
    /// Start HTTP/3 on a connected Quiver connection with the default [`H3Config`].
    pub async fn new(conn: quiver::Connection) -> Result<Self, H3Error> {
        Self::with_config(conn, &H3Config::default()).await
    }

    /// Start HTTP/3 on a connected Quiver connection. Spawns h3's connection driver on
    /// the current tokio runtime.
    pub async fn with_config(conn: quiver::Connection, config: &H3Config) -> Result<Self, H3Error> {
        let shared = ConnShared::new(conn);
        let mut b = h3::client::builder();
        b.enable_datagram(config.datagrams)
            .enable_extended_connect(config.extended_connect);
        if let Some(max) = config.max_field_section_size {
            b.max_field_section_size(max);
        }
        let (mut driver, send) = b
            .build::<_, _, Bytes>(QuicConnection::from_shared(shared.clone()))
            .await?;
        let (tx, rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let e = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            tracing::debug!(error = %e, "HTTP/3 client connection ended");
            let _ = tx.send(Some(e.to_string()));
        });
        Ok(Self {
            send,
            shared,
            closed: Arc::new(rx),
        })
    }

    /// Send a request's headers; write the body (if any) and finish on the returned
    /// stream, then read the response from it. A `priority` header (RFC 9218) also sets
    /// the class of this side of the stream, so a request body is scheduled by it too.
    pub async fn send_request(&self, req: http::Request<()>) -> Result<ClientStream, H3Error> {
        let priority = Priority::from_headers(req.headers());
        let mut send = self.send.clone();
        let stream = send.send_request(req).await?;
        if priority != Priority::default() {
            let id = quiver::StreamId(stream.id().into_inner());
            let _ = self.shared.conn.set_stream_class(id, &priority.class());
        }
        Ok(stream)
    }

    /// Send `req` with `body` and read the whole response, at most `limit` body bytes.
    pub async fn fetch(
        &self,
        req: http::Request<()>,
        body: Bytes,
        limit: usize,
    ) -> Result<Response, H3Error> {
        let mut stream = self.send_request(req).await?;
        if !body.is_empty() {
            stream.send_data(body).await?;
        }
        stream.finish().await?;
        let head = stream.recv_response().await?;
        let body = read_body(&mut stream, limit).await?;
        Ok(Response { head, body })
    }

    /// GET `uri` (an absolute `https://authority/path` URI), at most `limit` body bytes.
    pub async fn get(&self, uri: &str, limit: usize) -> Result<Response, H3Error> {
        let req = http::Request::get(uri)
            .body(())
            .map_err(|e| H3Error::InvalidRequest(e.to_string()))?;
        self.fetch(req, Bytes::new(), limit).await
    }

    /// Change the priority of request stream `stream_id` mid-flight: sends a
    /// PRIORITY_UPDATE frame (RFC 9218 §7.1) on our control stream and re-classes our
    /// side of the stream.
    pub fn update_priority(
        &self,
        stream_id: h3::quic::StreamId,
        priority: Priority,
    ) -> Result<(), H3Error> {
        let id = stream_id.into_inner();
        if !id.is_multiple_of(4) {
            return Err(H3Error::NotARequestStream(id));
        }
        self.shared
            .send_control(Bytes::from(encode_priority_update(id, &priority)))?;
        let _ = self
            .shared
            .conn
            .set_stream_class(quiver::StreamId(id), &priority.class());
        Ok(())
    }

    /// Send and receive HTTP Datagrams on this connection.
    pub fn datagrams(&self) -> HttpDatagrams {
        HttpDatagrams::new(self.shared.conn.clone())
    }

    /// The QUIC connection underneath.
    pub fn quic(&self) -> &quiver::Connection {
        &self.shared.conn
    }

    /// Why h3's connection driver stopped, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.closed.borrow().clone()
    }

    /// Close the connection with H3_NO_ERROR.
    pub fn close(&self) {
        self.shared
            .conn
            .close(quiver::VarInt::from_u32(crate::codes::H3_NO_ERROR), b"");
    }
}

/// Read a response body, at most `limit` bytes.
pub async fn read_body(stream: &mut ClientStream, limit: usize) -> Result<Bytes, H3Error> {
    let mut out = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        if out.len() + chunk.remaining() > limit {
            stream.stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
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
