//! The simulated TLS/TCP echo server.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use quiver_netem::sim::{Datagram, Node};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::stack::{tcp_to_tls, tls_to_tcp, Stack, MAX_ROUNDS};
use super::TcpConfig;
use crate::{BaselineError, EchoFramer};

/// Plaintext is only pulled out of rustls while the TCP send buffer has this much room,
/// so an echo never outgrows the send buffer (TLS adds ~22 bytes per 16 KiB record).
const ECHO_HEADROOM: usize = 17 * 1024;

/// Listening sockets kept ready: smoltcp has no accept backlog, so a SYN finding no
/// listener is reset. One packet is processed per event, so two always suffice.
const SPARE_LISTENERS: usize = 2;

#[derive(Debug)]
struct Conn {
    tls: rustls::Connection,
    framer: EchoFramer,
    /// The client finished sending (close_notify or FIN, or a TLS error).
    peer_done: bool,
    /// We sent close_notify and will close TCP once it is flushed.
    closing: bool,
}

/// A TLS/TCP echo server on the simulator (see the [module documentation](super)).
///
/// Counters: [`accepted`](Self::accepted), [`echoed_bytes`](Self::echoed_bytes),
/// [`tls_errors`](Self::tls_errors), [`duplicate_syns`](Self::duplicate_syns),
/// [`rewritten_acks`](Self::rewritten_acks).
#[derive(Debug)]
pub struct TcpEchoServerNode {
    stack: Stack,
    config: Arc<rustls::ServerConfig>,
    listeners: Vec<SocketHandle>,
    conns: HashMap<SocketHandle, Conn>,
    accepted: u64,
    echoed: u64,
    tls_errors: u64,
}

impl TcpEchoServerNode {
    /// A server listening on `addr` (the node must be added to the simulator with this
    /// address) with default [`TcpConfig`].
    pub fn new(addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Result<Self, BaselineError> {
        Self::with_tcp_config(addr, config, TcpConfig::default())
    }

    /// A server with explicit TCP settings.
    pub fn with_tcp_config(
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
        tcp: TcpConfig,
    ) -> Result<Self, BaselineError> {
        let mut node = Self {
            stack: Stack::new(addr, tcp)?,
            config,
            listeners: Vec::new(),
            conns: HashMap::new(),
            accepted: 0,
            echoed: 0,
            tls_errors: 0,
        };
        node.replenish_listeners()?;
        Ok(node)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Payload bytes echoed so far.
    pub fn echoed_bytes(&self) -> u64 {
        self.echoed
    }

    /// Connections that ended with a TLS error.
    pub fn tls_errors(&self) -> u64 {
        self.tls_errors
    }

    /// Retransmitted SYNs dropped because their connection already had a socket (see
    /// the [module documentation](super), "Driver workarounds").
    pub fn duplicate_syns(&self) -> u64 {
        self.stack.duplicate_syns
    }

    /// Pure ACKs whose sequence number the driver rewrote so the client accepts them
    /// (see the [module documentation](super), "Driver workarounds").
    pub fn rewritten_acks(&self) -> u64 {
        self.stack.rewritten_acks()
    }

    fn replenish_listeners(&mut self) -> Result<(), BaselineError> {
        let port = self.stack.local().port();
        while self.listeners.len() < SPARE_LISTENERS {
            let mut socket = self.stack.new_socket();
            socket
                .listen(port)
                .map_err(|e| BaselineError::Address(format!("listen on port {port}: {e}")))?;
            self.listeners.push(self.stack.sockets.add(socket));
        }
        Ok(())
    }

    /// Turns listeners that received a SYN into connections.
    fn accept(&mut self) -> bool {
        let mut progress = false;
        let mut still = Vec::with_capacity(self.listeners.len());
        for handle in std::mem::take(&mut self.listeners) {
            let socket = self.stack.sockets.get_mut::<tcp::Socket>(handle);
            if socket.is_listening() {
                still.push(handle);
                continue;
            }
            progress = true;
            match rustls::ServerConnection::new(self.config.clone()) {
                Ok(mut tls) => {
                    tls.set_buffer_limit(None);
                    self.accepted += 1;
                    self.conns.insert(
                        handle,
                        Conn {
                            tls: tls.into(),
                            framer: EchoFramer::default(),
                            peer_done: false,
                            closing: false,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!("TLS server connection: {e}");
                    socket.abort();
                }
            }
        }
        self.listeners = still;
        if let Err(e) = self.replenish_listeners() {
            tracing::warn!("{e}");
        }
        progress
    }

    /// Moves bytes for every connection; removes closed ones.
    fn serve(&mut self) -> bool {
        let mut progress = self.accept();
        let mut closed = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut echo = Vec::new();
        for (&handle, conn) in self.conns.iter_mut() {
            let sock = self.stack.sockets.get_mut::<tcp::Socket>(handle);
            if !conn.peer_done {
                match tcp_to_tls(sock, &mut conn.tls) {
                    Ok(p) => progress |= p,
                    Err(e) => {
                        tracing::debug!("TLS error on echo connection: {e}");
                        self.tls_errors += 1;
                        conn.peer_done = true;
                        conn.closing = true;
                        progress = true;
                    }
                }
            }
            // Echo as much plaintext as the send buffer can take.
            while !conn.peer_done
                && !conn.tls.wants_write()
                && sock.send_capacity() - sock.send_queue() >= ECHO_HEADROOM
            {
                let room = sock.send_capacity() - sock.send_queue() - 1024;
                let chunk = buf.len().min(room);
                let Some(dst) = buf.get_mut(..chunk) else {
                    break;
                };
                match conn.tls.reader().read(dst) {
                    Ok(0) => {
                        conn.peer_done = true;
                        progress = true;
                    }
                    Ok(n) => {
                        echo.clear();
                        conn.framer
                            .feed(dst.get(..n).unwrap_or_default(), &mut echo);
                        if !echo.is_empty() {
                            // Cannot fail: the buffer limit is off.
                            let _ = std::io::Write::write_all(&mut conn.tls.writer(), &echo);
                            self.echoed += echo.len() as u64;
                        }
                        progress = true;
                    }
                    Err(_) => break, // WouldBlock: no plaintext yet
                }
                progress |= tls_to_tcp(sock, &mut conn.tls);
            }
            progress |= tls_to_tcp(sock, &mut conn.tls);
            let peer_fin = matches!(
                sock.state(),
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
                    | tcp::State::Closed
            );
            if !conn.peer_done && peer_fin && !sock.can_recv() {
                // FIN (or reset) without close_notify.
                conn.peer_done = true;
                progress = true;
            }
            if conn.peer_done && !conn.closing {
                conn.tls.send_close_notify();
                conn.closing = true;
                progress |= tls_to_tcp(sock, &mut conn.tls);
            }
            if conn.closing && !conn.tls.wants_write() && sock.is_open() && sock.may_send() {
                sock.close();
                progress = true;
            }
            if matches!(sock.state(), tcp::State::Closed | tcp::State::TimeWait) {
                closed.push(handle);
            }
        }
        for handle in closed {
            self.conns.remove(&handle);
            self.stack.sockets.remove(handle);
            progress = true;
        }
        progress
    }

    fn drive(&mut self, now: Instant) {
        self.stack.set_now(now);
        for _ in 0..MAX_ROUNDS {
            let net = self.stack.poll_once();
            let app = self.serve();
            if !net && !app {
                return;
            }
        }
        tracing::warn!("simulated echo server did not settle");
    }
}

impl Node for TcpEchoServerNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, _to: SocketAddr, data: Vec<u8>) {
        self.stack.set_now(now);
        self.stack.receive(from, data);
        self.drive(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        self.stack.set_now(now);
        self.stack.pop_transmit()
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.stack.poll_at()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.drive(now);
    }
}
