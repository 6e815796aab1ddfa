//! # quiver-masque — MASQUE CONNECT-UDP building blocks
//!
//! The protocol pieces of a MASQUE proxy and client (RFC 9297 HTTP Datagrams and the
//! Capsule Protocol, RFC 9298 Proxying UDP in HTTP), free of I/O so that the proxy, the
//! client and tests share them and each decoder can be property-tested on its own:
//!
//! - [`capsule`]: the Capsule Protocol — a streaming [`capsule::CapsuleDecoder`] that
//!   length-checks every capsule, yields DATAGRAM capsules and skips unknown capsule types
//!   without buffering them, and the encoder.
//! - [`datagram`]: HTTP Datagram payloads — the quarter stream ID that prefixes an HTTP/3
//!   DATAGRAM frame, and the context ID inside a CONNECT-UDP datagram (context 0 carries
//!   UDP payloads; other contexts are for extensions and are dropped unless registered).
//! - [`template`]: the RFC 9298 URI template (default
//!   [`template::DEFAULT_TEMPLATE`]), configurable: validation, expansion with
//!   percent-encoding (IPv6 literals included) and matching of request paths back to a
//!   [`template::Target`].
//! - [`policy`]: which target addresses the proxy may reach — loopback, private,
//!   link-local, unspecified and multicast addresses are refused unless an `--allow`
//!   CIDR covers them.
//! - [`status`]: RFC 9209 `Proxy-Status` values sent with every refusal (and parsed by
//!   clients).
//! - [`auth`]: proxy authentication — bearer token or Basic credentials checked against
//!   `Proxy-Authorization`, and the `Proxy-Authenticate` challenge for a 407.
//!
//! ## Extension points
//! - The URI template is configuration ([`template::UriTemplate::parse`]), not code.
//! - [`policy::TargetPolicy`] takes allow-list CIDRs; anything else the proxy needs to
//!   decide (rate limits, per-user targets) wraps its [`policy::TargetPolicy::check`].
//! - Context IDs other than 0 reach the application as [`datagram::UdpPayload`]s with
//!   their ID, so an extension (for example QUIC-aware proxying) can claim them.
//!
//! The proxy and client commands (`quiver masque proxy|client`) sit on top of these and
//! of the HTTP/3 binding (`quiver-h3`).

#![forbid(unsafe_code)]

pub mod auth;
pub mod capsule;
pub mod datagram;
pub mod policy;
pub mod status;
pub mod template;

mod varint;
