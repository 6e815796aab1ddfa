//! # quiver — the tokio runtime of the Quiver QUIC stack
//!
//! `quiver` puts the sans-IO core ([`quiver_proto`]) on real sockets and a real clock.
//! One [`Endpoint`] owns one UDP socket and a driver task; [`Connection`]s, [`SendStream`]s
//! and [`RecvStream`]s are cheap handles onto state the driver shares with them.
//!
//! ## How it works
//! - Socket I/O goes through [`quinn_udp`]: batched receives with GRO (a batch is split
//!   at its `stride`), ECN codepoints and destination addresses from control messages,
//!   and GSO sends (the core writes up to `max_gso_segments` equal-size datagrams into
//!   one buffer).
//! - The driver feeds datagrams to the core, fires its timer, drains its transmits and
//!   routes its events (stream readable/writable, new streams, datagrams, connection
//!   lost) to the waiting tasks. It alternates one receive syscall with one batch of
//!   transmits, and makes every socket syscall *outside* the lock.
//! - Application calls lock the endpoint's state (a `std::sync::Mutex`, never held across
//!   `.await` or a syscall), act on the core's connection, and wake the driver so that it
//!   transmits.
//! - [`Endpoint::server`] and [`Endpoint::client`] ask the kernel for
//!   [`SOCKET_BUFFER_SIZE`] socket buffers; [`Endpoint::new`] uses a socket as given.
//! - One driver task drives all connections of an endpoint: protocol work (packet
//!   protection included) of one endpoint runs on one core at a time. To use more cores
//!   for many connections, [`Endpoint::server_sharded`] / [`Endpoint::client_sharded`]
//!   run several shards (socket, core endpoint, driver task each) behind one `Endpoint`
//!   (see the trade-off in [`Endpoint`]'s docs).
//!
//! ## Extension points
//! Behaviour is configured, not patched: congestion control, connection-ID generation and
//! transport limits come from `quiver_proto`'s [`config`] types
//! ([`config::TransportConfig`], [`config::EndpointConfig`]);
//! TLS comes from a rustls configuration, built with the helpers in [`tls`] or by hand;
//! [`Endpoint::new`] takes any pre-configured UDP socket, and
//! [`Endpoint::with_transport`] any [`transport::DatagramTransport`] (an in-memory
//! channel, a MASQUE CONNECT-UDP flow) instead of a socket; [`qlog::QlogDir`] (set as
//! [`config::TransportConfig::event_subscriber`]) writes a qlog trace per connection.
//!
//! ## Example
//! ```no_run
//! use quiver::{tls, ClientConfig, Endpoint, ServerConfig};
//! use std::sync::Arc;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // A server with a self-signed certificate, echoing one request per stream.
//! let (certs, key) = tls::self_signed(&["localhost"])?;
//! let server_tls = tls::server_config(certs.clone(), key, &[b"echo"])?;
//! let server = Endpoint::server(ServerConfig::new(Arc::new(server_tls)), "127.0.0.1:0".parse()?)?;
//! let addr = server.local_addr()?;
//! tokio::spawn(async move {
//!     while let Some(conn) = server.accept().await {
//!         tokio::spawn(async move {
//!             while let Ok((mut send, mut recv)) = conn.accept_bi().await {
//!                 let request = recv.read_to_end(64 * 1024).await?;
//!                 send.write_all(&request).await?;
//!                 send.finish()?;
//!             }
//!             Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//!         });
//!     }
//! });
//!
//! // A client trusting that certificate.
//! let mut roots = rustls::RootCertStore::empty();
//! roots.add(certs[0].clone())?;
//! let client_tls = tls::client_config(roots, &[b"echo"], tls::CipherSuites::All)?;
//! let client = Endpoint::client("127.0.0.1:0".parse()?)?;
//! client.set_default_client_config(ClientConfig::new(Arc::new(client_tls)));
//! let conn = client.connect(addr, "localhost")?.await?;
//! let (mut send, mut recv) = conn.open_bi().await?;
//! send.write_all(b"hello").await?;
//! send.finish()?;
//! assert_eq!(recv.read_to_end(1024).await?, b"hello");
//! conn.close(0u32.into(), b"done");
//! client.wait_idle().await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod connection;
mod driver;
mod endpoint;
pub mod error;
pub mod qlog;
mod state;
mod streams;
pub mod tls;
pub mod transport;

pub use connection::{Connecting, Connection, ZeroRttAccepted};
pub use endpoint::{Endpoint, SOCKET_BUFFER_SIZE};
pub use error::{
    ClosedStream, ConnectError, ConnectionError, ReadError, ReadToEndError, SendDatagramError,
    StoppedError, WriteError,
};
pub use quiver_proto::config::{self, ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
pub use quiver_proto::connection::{
    ConnectionStats, DatagramFlowId, DatagramFlowStats, MigrateError, PathState, ZeroRttStatus,
};
pub use quiver_proto::sched::{self, Deadline, SchedulerKind, StreamClass};
pub use quiver_proto::{Dir, Side, StreamId, VarInt};
pub use streams::{RecvStream, SendStream};
