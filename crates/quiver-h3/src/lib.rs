//! # quiver-h3 — HTTP/3 over the Quiver QUIC runtime
//!
//! The [`h3`] crate (0.0.8) speaks HTTP/3 over any QUIC stack that implements its
//! [`h3::quic`] traits; [`h3_datagram`] (0.0.2) adds HTTP Datagrams (RFC 9297) through
//! its own traits. This crate implements both over [`quiver::Connection`] and its
//! streams ([`quic`]), and wraps h3 in a small API so that applications do not touch
//! h3's traits:
//!
//! - [`Server`]: accept requests ([`Server::accept`] → [`IncomingRequest::resolve`] →
//!   [`Request`]), read bodies, send responses; extended CONNECT (RFC 9220) and
//!   SETTINGS_H3_DATAGRAM are on by default ([`H3Config`]).
//! - [`Client`]: send requests ([`Client::send_request`], [`Client::fetch`],
//!   [`Client::get`]), change a request's priority ([`Client::update_priority`]).
//! - [`HttpDatagrams`]: HTTP Datagrams of any request stream. Outgoing datagrams are
//!   encoded here, not by h3-datagram 0.0.2, whose sender puts a zero quarter stream ID
//!   on every datagram (hyperium/h3 issue 345); see [`datagram`].
//! - [`priority`]: RFC 9218 priorities (the `priority` header and PRIORITY_UPDATE
//!   frames) become Quiver [`quiver::StreamClass`]es, so a client's urgency reaches the
//!   server's stream scheduler. The mapping is documented there.
//!
//! ## Extension points
//! - Anything the convenience API lacks is reachable through h3 itself:
//!   [`Server::h3`] gives h3's server connection, [`ClientStream`]/[`ServerStream`] are
//!   h3's request streams, and [`quic::QuicConnection`] can be handed to any h3 builder
//!   (`h3::server::builder().build(QuicConnection::new(conn))`).
//! - Scheduling: the connection's scheduler is chosen in Quiver's
//!   `TransportConfig::scheduler`; this crate only sets each request stream's class.
//! - Capsules (RFC 9297 §3) and CONNECT-UDP live in `quiver-masque`, on top of this
//!   crate's request streams and [`HttpDatagrams`].
//!
//! ## Example
//! ```no_run
//! # async fn demo(server_conn: quiver::Connection, client_conn: quiver::Connection)
//! # -> Result<(), quiver_h3::H3Error> {
//! use bytes::Bytes;
//! // Server: answer every request with its path.
//! let mut server = quiver_h3::Server::new(server_conn).await?;
//! tokio::spawn(async move {
//!     while let Ok(Some(incoming)) = server.accept().await {
//!         tokio::spawn(async move {
//!             let mut req = incoming.resolve().await?;
//!             let body = Bytes::from(req.head.uri().path().to_string());
//!             req.respond(http::Response::new(()), body).await
//!         });
//!     }
//! });
//! // Client.
//! let client = quiver_h3::Client::new(client_conn).await?;
//! let resp = client.get("https://localhost/hello", 1 << 20).await?;
//! assert_eq!(resp.body, "/hello");
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod client;
pub mod codes;
pub mod datagram;
mod error;
pub mod priority;
pub mod quic;
mod server;
mod varint;

pub use client::{read_body, Client, ClientStream, Response};
pub use datagram::HttpDatagrams;
pub use error::H3Error;
pub use priority::Priority;
pub use server::{H3Config, IncomingRequest, Request, Server, ServerStream};

/// The ALPN protocol ID of HTTP/3 (RFC 9114 §3.1).
pub const ALPN: &[u8] = b"h3";
