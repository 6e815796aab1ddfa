//! The endpoint: owns connections, routes datagrams by connection ID, answers version
//! negotiation and stateless resets, and accepts new connections.

use crate::config::{ClientConfig, EndpointConfig, ServerConfig};
use crate::connection::{Connection, Event, Transmit};
use crate::shared::EcnCodepoint;
use bytes::BytesMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// Opaque handle of a connection owned by an [`Endpoint`].
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash, Ord, PartialOrd)]
pub struct ConnectionHandle(pub usize);

/// What [`Endpoint::handle`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramEvent {
    /// A new incoming connection was created (it still has to finish its handshake).
    NewConnection(ConnectionHandle),
    /// The datagram was given to an existing connection.
    Known(ConnectionHandle),
    /// The endpoint answered (or dropped) it statelessly.
    Stateless,
}

/// Why a connection attempt could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid server name: {0}")]
    InvalidServerName(String),
    /// The remote port is zero or the address unspecified.
    #[error("invalid remote address: {0}")]
    InvalidRemoteAddress(SocketAddr),
    /// The configured version is not supported.
    #[error("unsupported QUIC version {0:#x}")]
    UnsupportedVersion(u32),
    /// The TLS configuration could not start a session.
    #[error("TLS configuration error: {0}")]
    Tls(String),
}

/// A QUIC endpoint.
pub struct Endpoint {
    _private: (),
}

#[allow(clippy::todo, unused_variables)]
impl Endpoint {
    /// Create an endpoint; pass a server config to accept connections.
    pub fn new(config: Arc<EndpointConfig>, server_config: Option<Arc<ServerConfig>>) -> Self {
        todo!()
    }
    /// Replace (or remove) the server configuration.
    pub fn set_server_config(&mut self, server_config: Option<Arc<ServerConfig>>) {
        todo!()
    }
    /// Start a connection to `remote`, verifying the server as `server_name`.
    pub fn connect(
        &mut self,
        now: Instant,
        config: ClientConfig,
        remote: SocketAddr,
        server_name: &str,
    ) -> Result<ConnectionHandle, ConnectError> {
        todo!()
    }
    /// Process one received UDP datagram.
    pub fn handle(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) -> Option<DatagramEvent> {
        todo!()
    }
    /// Write the next outgoing datagram(s) of any connection, or a stateless response.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        todo!()
    }
    /// Earliest timer across all connections.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        todo!()
    }
    /// Fire expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        todo!()
    }
    /// Next application event of any connection.
    pub fn poll_event(&mut self) -> Option<(ConnectionHandle, Event)> {
        todo!()
    }
    /// Access a connection.
    pub fn connection(&self, ch: ConnectionHandle) -> Option<&Connection> {
        todo!()
    }
    /// Access a connection mutably (stream and datagram operations).
    pub fn connection_mut(&mut self, ch: ConnectionHandle) -> Option<&mut Connection> {
        todo!()
    }
    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        todo!()
    }
}
