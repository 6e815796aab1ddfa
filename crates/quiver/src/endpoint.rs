//! [`Endpoint`]: a UDP socket, the sans-IO endpoint behind it and the driver task.

use crate::connection::{ConnRef, Connecting, Connection};
use crate::error::ConnectError;
use crate::state::{wake, Shared, State};
use quiver_proto::config::{ClientConfig, EndpointConfig, ServerConfig};
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
#[derive(Debug)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("local_addr", &self.socket.local_addr().ok())
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
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
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

    /// A client-only endpoint bound to `addr` (usually `0.0.0.0:0` or `[::]:0`).
    ///
    /// Must be called within a tokio runtime.
    ///
    /// The socket's kernel buffers are enlarged to [`SOCKET_BUFFER_SIZE`] (see there).
    pub fn client(addr: SocketAddr) -> io::Result<Self> {
        let socket = bind(addr)?;
        Self::new(EndpointConfig::default(), None, socket)
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
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            io::Error::other(format!("quiver::Endpoint needs a tokio runtime: {e}"))
        })?;
        socket.set_nonblocking(true)?;
        // Enables ECN, GRO and destination-address reporting where the OS supports them.
        let udp = quinn_udp::UdpSocketState::new((&socket).into())?;
        let socket = {
            let _guard = runtime.enter();
            tokio::net::UdpSocket::from_std(socket)?
        };
        let proto =
            quiver_proto::endpoint::Endpoint::new(Arc::new(config), server_config.map(Arc::new));
        let mut state = State::new(proto);
        state.endpoint_refs = 1;
        let shared = Arc::new(Shared::new(state, socket, udp));
        runtime.spawn(crate::driver::run(shared.clone()));
        Ok(Self { shared })
    }

    /// The configuration used by [`connect`](Self::connect).
    pub fn set_default_client_config(&self, config: ClientConfig) {
        self.shared.lock().default_client_config = Some(config);
    }

    /// Replace (or, with `None`, remove) the server configuration. Existing connections
    /// are unaffected.
    pub fn set_server_config(&self, config: Option<ServerConfig>) {
        self.shared
            .lock()
            .proto
            .set_server_config(config.map(Arc::new));
    }

    /// Connect to `addr` with the default client configuration, verifying the server's
    /// certificate for `server_name`. Await the result to wait for the handshake.
    pub fn connect(&self, addr: SocketAddr, server_name: &str) -> Result<Connecting, ConnectError> {
        let config = self
            .shared
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
        let conn = {
            let mut st = self.shared.lock();
            if st.closed || st.driver_stopped {
                return Err(ConnectError::EndpointClosed);
            }
            let handle = st
                .proto
                .connect(Instant::now(), config, addr, server_name)?;
            let id = st.add_conn(handle, Side::Client, addr, false);
            ConnRef::new_locked(&self.shared, &mut st, id)
        };
        self.shared.wake_driver();
        Ok(Connecting::new(Connection::from_ref(conn)))
    }

    /// The next incoming connection whose handshake completed; `None` once the endpoint
    /// is closed.
    pub async fn accept(&self) -> Option<Connection> {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            while let Some(id) = st.incoming.pop_front() {
                let Some(cs) = st.conns.get_mut(&id) else {
                    continue;
                };
                cs.in_accept_queue = false;
                let conn = ConnRef::new_locked(&self.shared, &mut st, id);
                return Poll::Ready(Some(Connection::from_ref(conn)));
            }
            if st.closed || st.driver_stopped {
                return Poll::Ready(None);
            }
            st.accept_wakers.register(cx);
            Poll::Pending
        })
        .await
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.local_addr()
    }

    /// Close every connection with an application error `code` and `reason`, and stop
    /// accepting new ones. Use [`wait_idle`](Self::wait_idle) to let the closes reach
    /// the peers before dropping the runtime.
    pub fn close(&self, code: VarInt, reason: &[u8]) {
        let wakes = {
            let mut st = self.shared.lock();
            st.close_all(code, reason);
            st.take_wakes()
        };
        wake(wakes);
        self.shared.wake_driver();
    }

    /// Wait until the endpoint has no connection left (all closed and drained).
    pub async fn wait_idle(&self) {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            if st.driver_stopped || st.proto.connection_count() == 0 {
                return Poll::Ready(());
            }
            st.idle_wakers.register(cx);
            Poll::Pending
        })
        .await;
    }

    /// Number of connections the core holds (handshaking, established or draining).
    pub fn open_connections(&self) -> usize {
        self.shared.lock().proto.connection_count()
    }
}

impl Clone for Endpoint {
    fn clone(&self) -> Self {
        self.shared.lock().endpoint_refs += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let wakes = {
            let mut st = self.shared.lock();
            st.endpoint_refs = st.endpoint_refs.saturating_sub(1);
            if st.endpoint_refs == 0 {
                st.endpoint_released();
            }
            st.take_wakes()
        };
        wake(wakes);
        self.shared.wake_driver();
    }
}
