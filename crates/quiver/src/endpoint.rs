//! [`Endpoint`]: a UDP socket, the sans-IO endpoint behind it and the driver task.

use crate::connection::{ConnRef, Connecting, Connection};
use crate::error::ConnectError;
use crate::state::{wake, Shared, State};
use crate::transport::{DatagramTransport, UdpTransport};
use quiver_proto::config::{ClientConfig, EndpointConfig, ServerConfig};
use quiver_proto::connection::MigrateError;
use quiver_proto::{Side, VarInt};
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

/// A QUIC endpoint bound to one UDP socket: it accepts connections (when it has a server
/// configuration) and initiates them.
///
/// `Endpoint` is a cheap handle; clones share the socket. A driver task, spawned on the
/// current tokio runtime by the constructors, performs all I/O. When every handle is
/// dropped the endpoint stops accepting, and the driver exits once all connections are
/// dropped and drained.
///
/// # Shards
///
/// An endpoint drives all its connections from one task, so one core does
/// their protocol work (packet protection included). [`Endpoint::server_sharded`] and
/// [`Endpoint::client_sharded`] run several independent shards instead, each with its
/// own socket, core endpoint, lock and driver task, so that connections spread over the
/// cores: a server's shards share one port (`SO_REUSEPORT`; the kernel picks the shard by
/// hashing the client's address and port), a client's shards have one port each and new
/// connections are assigned round robin. Trade-off of server shards: a client whose
/// address or port changes mid-connection (NAT rebinding) may be hashed to another shard,
/// which does not know the connection; such a connection stalls. Use one shard (the
/// default constructors) where clients migrate.
#[derive(Debug)]
pub struct Endpoint {
    /// The shards; the first is the one [`Endpoint::local_addr`] reports.
    shards: Arc<[Arc<Shared>]>,
    /// Round-robin cursor for new client connections.
    next: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("local_addr", &self.socket().local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Receive and send buffer size that [`Endpoint::server`] and [`Endpoint::client`] ask
/// the kernel for: 4 MiB.
///
/// A fast sender's bursts (a GSO batch, a pacer burst of up to 256 packets) arrive faster
/// than a receiver drains them whenever its task is briefly descheduled; the kernel's
/// default receive buffer (208 KiB on Linux) then drops whole GRO batches, and each drop
/// costs the sender a congestion event. With 4 MiB a loopback transfer with 100 streams
/// goes from about 40 congestion events per 500 MiB to none. The kernel caps the request
/// at `net.core.rmem_max` / `net.core.wmem_max`; failures are ignored.
pub const SOCKET_BUFFER_SIZE: usize = 4 << 20;

/// Bind a UDP socket to `addr` with enlarged kernel buffers (best effort).
fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    bind_with(addr, false)
}

/// [`bind`], optionally with `SO_REUSEPORT` so that several sockets share the address.
fn bind_with(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    for (what, result) in [
        ("receive", socket.set_recv_buffer_size(SOCKET_BUFFER_SIZE)),
        ("send", socket.set_send_buffer_size(SOCKET_BUFFER_SIZE)),
    ] {
        if let Err(e) = result {
            tracing::debug!("UDP {what} buffer of {SOCKET_BUFFER_SIZE} bytes refused: {e}");
        }
    }
    Ok(socket.into())
}

impl Endpoint {
    /// A server endpoint bound to `addr` with default endpoint settings.
    ///
    /// Must be called within a tokio runtime.
    ///
    /// The socket's kernel buffers are enlarged to [`SOCKET_BUFFER_SIZE`] (see there).
    pub fn server(config: ServerConfig, addr: SocketAddr) -> io::Result<Self> {
        let socket = bind(addr)?;
        Self::new(EndpointConfig::default(), Some(config), socket)
    }

    /// Like [`server`](Self::server), with endpoint settings of its own (for example the
    /// QUIC versions it speaks: [`EndpointConfig::supported_versions`]).
    ///
    /// Must be called within a tokio runtime.
    pub fn server_with(
        endpoint_config: EndpointConfig,
        config: ServerConfig,
        addr: SocketAddr,
    ) -> io::Result<Self> {
        let socket = bind(addr)?;
        Self::new(endpoint_config, Some(config), socket)
    }

    /// A client-only endpoint bound to `addr` (usually `0.0.0.0:0` or `[::]:0`).
    ///
    /// Must be called within a tokio runtime.
    ///
    /// The socket's kernel buffers are enlarged to [`SOCKET_BUFFER_SIZE`] (see there).
    pub fn client(addr: SocketAddr) -> io::Result<Self> {
        let socket = bind(addr)?;
        Self::new(EndpointConfig::default(), None, socket)
    }

    /// A server endpoint of `shards` shards (at least 1) sharing `addr` through
    /// `SO_REUSEPORT` (see [shards](Self#shards)); `std::thread::available_parallelism`
    /// is a good count for a busy server whose clients do not migrate.
    ///
    /// Must be called within a tokio runtime.
    pub fn server_sharded(
        mut config: ServerConfig,
        addr: SocketAddr,
        shards: usize,
    ) -> io::Result<Self> {
        shared_token_key(&mut config);
        let first = bind_with(addr, true)?;
        let addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..shards.max(1) {
            sockets.push(bind_with(addr, true)?);
        }
        Self::from_shards(
            sockets
                .into_iter()
                .map(|s| (EndpointConfig::default(), Some(config.clone()), s)),
        )
    }

    /// A client-only endpoint of `shards` shards (at least 1), each on its own socket
    /// bound to `addr` (with port 0, each gets its own port); new connections go to the
    /// shards in turn (see [shards](Self#shards)).
    ///
    /// Must be called within a tokio runtime.
    pub fn client_sharded(addr: SocketAddr, shards: usize) -> io::Result<Self> {
        let mut sockets = Vec::new();
        for _ in 0..shards.max(1) {
            sockets.push(bind(addr)?);
        }
        Self::from_shards(
            sockets
                .into_iter()
                .map(|s| (EndpointConfig::default(), None, s)),
        )
    }

    /// An endpoint on an existing socket; `server_config` enables accepting connections.
    /// The socket is used as configured (its buffer sizes are left alone).
    ///
    /// Must be called within a tokio runtime.
    pub fn new(
        config: EndpointConfig,
        server_config: Option<ServerConfig>,
        socket: UdpSocket,
    ) -> io::Result<Self> {
        Self::from_shards(std::iter::once((config, server_config, socket)))
    }

    /// An endpoint over any datagram transport (see [`crate::transport`]): an in-memory
    /// channel, a MASQUE CONNECT-UDP flow, or a UDP socket set up by hand
    /// ([`UdpTransport`]). `server_config` enables accepting connections.
    ///
    /// Must be called within a tokio runtime.
    pub fn with_transport(
        config: EndpointConfig,
        server_config: Option<ServerConfig>,
        transport: Arc<dyn DatagramTransport>,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            io::Error::other(format!("quiver::Endpoint needs a tokio runtime: {e}"))
        })?;
        Self::from_transports(
            &runtime,
            std::iter::once((config, server_config, transport)),
        )
    }

    /// One shard per socket.
    fn from_shards(
        parts: impl IntoIterator<Item = (EndpointConfig, Option<ServerConfig>, UdpSocket)>,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            io::Error::other(format!("quiver::Endpoint needs a tokio runtime: {e}"))
        })?;
        let mut transports = Vec::new();
        for (config, server_config, socket) in parts {
            let socket: Arc<dyn DatagramTransport> =
                Arc::new(UdpTransport::with_runtime(socket, &runtime)?);
            transports.push((config, server_config, socket));
        }
        Self::from_transports(&runtime, transports)
    }

    /// One shard per transport.
    fn from_transports(
        runtime: &tokio::runtime::Handle,
        parts: impl IntoIterator<
            Item = (
                EndpointConfig,
                Option<ServerConfig>,
                Arc<dyn DatagramTransport>,
            ),
        >,
    ) -> io::Result<Self> {
        let mut shards = Vec::new();
        for (config, server_config, socket) in parts {
            let proto = quiver_proto::endpoint::Endpoint::new(
                Arc::new(config),
                server_config.map(Arc::new),
            );
            let mut state = State::new(proto);
            state.endpoint_refs = 1;
            shards.push(Arc::new(Shared::new(state, socket)));
        }
        for shared in &shards {
            runtime.spawn(crate::driver::run(shared.clone()));
        }
        Ok(Self {
            shards: shards.into(),
            next: Arc::default(),
        })
    }

    /// Apply `f` to every shard's state, then wake the tasks it woke and the shard's
    /// driver (so that whatever `f` queued gets sent).
    fn each_shard(&self, mut f: impl FnMut(&mut State)) {
        for shared in self.shards.iter() {
            let wakes = {
                let mut st = shared.lock();
                f(&mut st);
                st.take_wakes()
            };
            wake(wakes);
            shared.wake_driver();
        }
    }

    /// The shard that takes the next client connection.
    fn next_shard(&self) -> &Arc<Shared> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.shards[i % self.shards.len()]
    }

    /// Number of shards (see [shards](Self#shards)).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Connections held by each shard, in shard order: how evenly the kernel (server) or
    /// the round robin (client) spread them.
    pub fn shard_connections(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|s| s.lock().proto.connection_count())
            .collect()
    }

    /// The configuration used by [`connect`](Self::connect).
    pub fn set_default_client_config(&self, config: ClientConfig) {
        self.each_shard(|st| st.default_client_config = Some(config.clone()));
    }

    /// Replace (or, with `None`, remove) the server configuration. Existing connections
    /// are unaffected.
    pub fn set_server_config(&self, mut config: Option<ServerConfig>) {
        if let Some(c) = config.as_mut() {
            shared_token_key(c);
        }
        let config = config.map(Arc::new);
        self.each_shard(|st| st.proto.set_server_config(config.clone()));
    }

    /// Connect to `addr` with the default client configuration, verifying the server's
    /// certificate for `server_name`. Await the result to wait for the handshake.
    pub fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<Connecting, ConnectError> {
        let config = self.shards[0]
            .lock()
            .default_client_config
            .clone()
            .ok_or(ConnectError::NoDefaultClientConfig)?;
        self.connect_with(config, addr, server_name)
    }

    /// Connect to `addr` with an explicit client configuration.
    pub fn connect_with(
        &self,
        config: ClientConfig,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<Connecting, ConnectError> {
        let shared = self.next_shard();
        let conn = {
            let mut st = shared.lock();
            if st.closed || st.driver_stopped {
                return Err(ConnectError::EndpointClosed);
            }
            let handle = st
                .proto
                .connect(Instant::now(), config, addr, server_name)?;
            let id = st.add_conn(handle, Side::Client, addr, false);
            ConnRef::new_locked(shared, &mut st, id)
        };
        shared.wake_driver();
        Ok(Connecting::new(Connection::from_ref(conn)))
    }

    /// The next incoming connection whose handshake completed; `None` once the endpoint
    /// is closed.
    pub async fn accept(&self) -> Option<Connection> {
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        poll_fn(|cx| {
            let n = self.shards.len();
            let mut open = false;
            // Every shard, starting from a rotating one so that none is favoured.
            for k in 0..n {
                let shared = &self.shards[(start + k) % n];
                let mut st = shared.lock();
                while let Some(id) = st.incoming.pop_front() {
                    let Some(cs) = st.conns.get_mut(&id) else {
                        continue;
                    };
                    cs.in_accept_queue = false;
                    let conn = ConnRef::new_locked(shared, &mut st, id);
                    return Poll::Ready(Some(Connection::from_ref(conn)));
                }
                if !(st.closed || st.driver_stopped) {
                    open = true;
                    st.accept_wakers.register(cx);
                }
            }
            if open {
                Poll::Pending
            } else {
                Poll::Ready(None)
            }
        })
        .await
    }

    /// Switch to a new UDP socket, like quinn's `Endpoint::rebind`: every client
    /// connection of this endpoint migrates to it (RFC 9000 §9.2). Each takes an unused
    /// connection ID of the server if it has one (§9.5), restarts congestion control and
    /// its RTT estimate if the local IP changed (§9.4), and validates the new path with a
    /// PATH_CHALLENGE; the server sees the new address and validates it too. Server
    /// connections of the endpoint are not migrated (servers do not migrate, §9).
    ///
    /// Fails without changing anything if the endpoint has several shards, or if the
    /// server of an established client connection sent `disable_active_migration`
    /// (§18.2), or if the socket cannot be set up. Must be called within a tokio
    /// runtime.
    pub fn rebind(&self, socket: UdpSocket) -> io::Result<()> {
        if self.shards.len() != 1 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "rebind needs an endpoint with one shard",
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            io::Error::other(format!(
                "quiver::Endpoint::rebind needs a tokio runtime: {e}"
            ))
        })?;
        let socket = UdpTransport::with_runtime(socket, &runtime)?;
        self.rebind_transport(Arc::new(socket))
    }

    /// [`rebind`](Self::rebind) onto any datagram transport (see
    /// [`crate::transport`]), with the same rules.
    pub fn rebind_transport(&self, socket: Arc<dyn DatagramTransport>) -> io::Result<()> {
        if self.shards.len() != 1 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "rebind needs an endpoint with one shard",
            ));
        }
        let shared = &self.shards[0];
        let new_ip = socket.local_addr()?.ip();
        let wakes = {
            let mut st = shared.lock();
            let handles: Vec<_> = st.proto.connection_handles().collect();
            for &h in &handles {
                let Some(c) = st.proto.connection(h) else {
                    continue;
                };
                if c.side().is_client() {
                    if let Err(e @ MigrateError::DisabledByPeer) = c.migration_allowed() {
                        return Err(io::Error::new(io::ErrorKind::PermissionDenied, e));
                    }
                }
            }
            let old = shared.replace_socket(socket);
            let ip_changed = old.local_addr().map(|a| a.ip()).ok() != Some(new_ip);
            let now = Instant::now();
            for h in handles {
                let Some(c) = st.proto.connection_mut(h) else {
                    continue;
                };
                if !c.side().is_client() {
                    continue;
                }
                if let Err(e) = c.migrate(now, ip_changed) {
                    // Not yet confirmed or closing: it continues from the new socket
                    // without a validation of its own.
                    tracing::debug!("connection not migrated: {e}");
                }
            }
            st.take_wakes()
        };
        wake(wakes);
        shared.wake_driver();
        Ok(())
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shards[0].socket().local_addr()
    }

    /// Close every connection with an application error `code` and `reason`, and stop
    /// accepting new ones. Use [`wait_idle`](Self::wait_idle) to let the closes reach
    /// the peers before dropping the runtime.
    pub fn close(&self, code: VarInt, reason: &[u8]) {
        self.each_shard(|st| st.close_all(code, reason));
    }

    /// Wait until the endpoint has no connection left (all closed and drained).
    pub async fn wait_idle(&self) {
        poll_fn(|cx| {
            let mut idle = true;
            for shared in self.shards.iter() {
                let mut st = shared.lock();
                if !(st.driver_stopped || st.proto.connection_count() == 0) {
                    idle = false;
                    st.idle_wakers.register(cx);
                }
            }
            if idle {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Number of connections the core holds (handshaking, established or draining).
    pub fn open_connections(&self) -> usize {
        self.shard_connections().iter().sum()
    }
}

impl Clone for Endpoint {
    fn clone(&self) -> Self {
        for shared in self.shards.iter() {
            shared.lock().endpoint_refs += 1;
        }
        Self {
            shards: self.shards.clone(),
            next: self.next.clone(),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.each_shard(|st| {
            st.endpoint_refs = st.endpoint_refs.saturating_sub(1);
            if st.endpoint_refs == 0 {
                st.endpoint_released();
            }
        });
    }
}

/// Shards of one server must accept each other's address-validation tokens (a client's
/// next connection may hash to another shard): give them one token secret.
fn shared_token_key(config: &mut ServerConfig) {
    if config.validation.key.is_none() {
        config.validation.key = Some(quiver_proto::token::random_key());
    }
}
