//! The simulated TLS/TCP client running a workload.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use quiver_netem::sim::{Datagram, Node};
use rustls::pki_types::ServerName;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::stack::{tcp_to_tls, tls_to_tcp, Stack, MAX_ROUNDS};
use super::TcpConfig;
use crate::{
    encode_request, start_order, validate, BaselineError, Checked, EchoChecker, Failure, Mode,
    Outcome, Request,
};

/// First local port; connections take consecutive ports from here (wrapping within the
/// IANA dynamic range).
const FIRST_PORT: u16 = 49152;

#[derive(Debug)]
struct Conn {
    handle: SocketHandle,
    tls: rustls::Connection,
    checker: EchoChecker,
    /// No more requests will be written on this connection.
    last_request_written: bool,
    /// close_notify queued; TCP is closed once it is flushed.
    closing: bool,
    /// The connection failed or finished; kept only until its socket is gone.
    dead: bool,
}

/// A client node running a workload of [`Request`]s against a
/// [`TcpEchoServerNode`](super::TcpEchoServerNode) in a [`Mode`].
///
/// Request `r` is opened at `start + r.start_offset`, where `start` is the first virtual
/// instant the node sees (or the one given to [`start_at`](Self::start_at)).
/// [`is_done`](Self::is_done) tells when every request completed or failed;
/// [`outcomes`](Self::outcomes) gives one [`Outcome`] per request, in request order.
#[derive(Debug)]
pub struct TcpClientNode {
    stack: Stack,
    server: SocketAddr,
    server_name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
    mode: Mode,
    requests: Vec<Request>,
    order: Vec<usize>,
    /// Position in `order` of the next request to open.
    next: usize,
    outcomes: Vec<Outcome>,
    finished: Vec<bool>,
    conns: Vec<Conn>,
    start: Option<Instant>,
    next_port: u16,
}

impl TcpClientNode {
    /// A client on `local` (the node's simulator address) for the server at `server`,
    /// verifying its certificate for `server_name`, with default [`TcpConfig`].
    pub fn new(
        local: SocketAddr,
        server: SocketAddr,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
        requests: Vec<Request>,
        mode: Mode,
    ) -> Result<Self, BaselineError> {
        Self::with_tcp_config(
            local,
            server,
            server_name,
            config,
            requests,
            mode,
            TcpConfig::default(),
        )
    }

    /// A client with explicit TCP settings.
    pub fn with_tcp_config(
        local: SocketAddr,
        server: SocketAddr,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
        requests: Vec<Request>,
        mode: Mode,
        tcp: TcpConfig,
    ) -> Result<Self, BaselineError> {
        validate(&requests)?;
        if local.is_ipv4() != server.is_ipv4() {
            return Err(BaselineError::Address(format!(
                "client {local} and server {server} are of different IP versions"
            )));
        }
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| BaselineError::ServerName(server_name.to_owned()))?;
        let mut stack = Stack::new(local, tcp)?;
        stack.add_neighbour(server);
        let order = start_order(&requests);
        let placeholder = Instant::now();
        let outcomes = requests
            .iter()
            .map(|r| Outcome {
                id: r.id,
                started: placeholder,
                completed: None,
                failure: None,
            })
            .collect();
        Ok(Self {
            stack,
            server,
            server_name,
            config,
            mode,
            finished: vec![false; requests.len()],
            requests,
            order,
            next: 0,
            outcomes,
            conns: Vec::new(),
            start: None,
            next_port: FIRST_PORT,
        })
    }

    /// Opens requests relative to `start` instead of the first instant the node sees.
    pub fn start_at(mut self, start: Instant) -> Self {
        self.start = Some(start);
        self
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every request completed or failed.
    pub fn is_done(&self) -> bool {
        self.finished.iter().all(|&f| f)
    }

    /// Requests completed intact so far.
    pub fn completed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.completed.is_some())
            .count()
    }

    /// Pure ACKs whose sequence number the driver rewrote so the server accepts them
    /// (see the [module documentation](super), "Driver workarounds").
    pub fn rewritten_acks(&self) -> u64 {
        self.stack.rewritten_acks()
    }

    /// One outcome per request, in request order. A request still in progress has
    /// neither `completed` nor `failure` set (its `started` is meaningless until opened).
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// The outcomes, marking requests still in progress as [`Failure::TimedOut`].
    pub fn finish(&self) -> Vec<Outcome> {
        self.outcomes
            .iter()
            .zip(&self.finished)
            .map(|(o, &f)| {
                let mut o = o.clone();
                if !f {
                    o.failure = Some(Failure::TimedOut);
                }
                o
            })
            .collect()
    }

    /// When request `index` (in `order`) is due.
    fn due(&self, pos: usize) -> Option<Instant> {
        let i = *self.order.get(pos)?;
        Some(self.start? + self.requests.get(i)?.start_offset)
    }

    fn alloc_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port == u16::MAX {
            FIRST_PORT
        } else {
            port + 1
        };
        port
    }

    fn open_conn(&mut self) -> Result<usize, Failure> {
        let mut tls = rustls::ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| Failure::Tls(e.to_string()))?;
        tls.set_buffer_limit(None);
        let mut socket = self.stack.new_socket();
        let port = self.alloc_port();
        socket
            .connect(self.stack.context(), self.server, port)
            .map_err(|e| Failure::Io(format!("connect: {e}")))?;
        let handle = self.stack.sockets.add(socket);
        self.conns.push(Conn {
            handle,
            tls: tls.into(),
            checker: EchoChecker::default(),
            last_request_written: false,
            closing: false,
            dead: false,
        });
        Ok(self.conns.len() - 1)
    }

    fn finish_request(&mut self, i: usize, now: Instant, failure: Option<Failure>) {
        if let (Some(o), Some(f)) = (self.outcomes.get_mut(i), self.finished.get_mut(i)) {
            if *f {
                return;
            }
            *f = true;
            match failure {
                None => o.completed = Some(now),
                Some(fail) => o.failure = Some(fail),
            }
        }
    }

    /// Opens every request that is due.
    fn open_due(&mut self, now: Instant) -> bool {
        let mut progress = false;
        while self.due(self.next).is_some_and(|t| t <= now) {
            let Some(&i) = self.order.get(self.next) else {
                break;
            };
            self.next += 1;
            progress = true;
            let Some(req) = self.requests.get(i).copied() else {
                continue;
            };
            if let Some(o) = self.outcomes.get_mut(i) {
                o.started = now;
            }
            let conn = match self.mode {
                Mode::NConn => self.open_conn(),
                Mode::OneConn => match self.conns.first() {
                    Some(_) => Ok(0),
                    None => self.open_conn(),
                },
            };
            let conn = match conn {
                Ok(c) => c,
                Err(f) => {
                    self.finish_request(i, now, Some(f));
                    continue;
                }
            };
            let frame = match encode_request(&req) {
                Ok(f) => f,
                Err(e) => {
                    self.finish_request(i, now, Some(Failure::Io(e.to_string())));
                    continue;
                }
            };
            let last = self.mode == Mode::NConn || self.next == self.order.len();
            let mut done = Vec::new();
            if let Some(c) = self.conns.get_mut(conn) {
                if c.dead {
                    self.finish_request(i, now, Some(Failure::Io("connection failed".into())));
                    continue;
                }
                // Cannot fail: the buffer limit is off. rustls holds it until the
                // handshake completes.
                let _ = c.tls.writer().write_all(&frame);
                c.checker.expect(i, &req);
                done = c.checker.take_empty();
                c.last_request_written = last;
            }
            for ev in done {
                if let Checked::Done(k) = ev {
                    self.finish_request(k, now, None);
                }
            }
        }
        progress
    }

    /// Moves bytes on every connection, checks echoes, closes finished connections.
    fn step(&mut self, now: Instant) -> bool {
        let mut progress = self.open_due(now);
        let mut buf = vec![0u8; 64 * 1024];
        let mut events: Vec<(usize, Option<Failure>)> = Vec::new();
        for c in &mut self.conns {
            if c.dead {
                continue;
            }
            let sock = self.stack.sockets.get_mut::<tcp::Socket>(c.handle);
            let mut failure = None;
            match tcp_to_tls(sock, &mut c.tls) {
                Ok(p) => progress |= p,
                Err(e) => failure = Some(Failure::Tls(e.to_string())),
            }
            loop {
                match c.tls.reader().read(&mut buf) {
                    Ok(0) => {
                        // close_notify: fine once every echo arrived.
                        if failure.is_none() && c.checker.pending().next().is_some() {
                            failure = Some(truncated(&c.checker));
                        }
                        break;
                    }
                    Ok(n) => {
                        progress = true;
                        for ev in c.checker.feed(buf.get(..n).unwrap_or_default()) {
                            match ev {
                                Checked::Done(i) => events.push((i, None)),
                                Checked::Mismatch(i, offset) => {
                                    events.push((i, Some(Failure::Mismatch { offset })));
                                    failure.get_or_insert(Failure::Mismatch { offset });
                                }
                            }
                        }
                    }
                    Err(_) => break, // WouldBlock
                }
            }
            if failure.is_none() && !sock.is_active() && c.checker.pending().next().is_some() {
                failure = Some(Failure::Io(format!("connection {:?}", sock.state())));
            }
            if let Some(f) = failure {
                for (i, _, _) in c.checker.pending() {
                    events.push((i, Some(f.clone())));
                }
                c.dead = true;
                c.last_request_written = true;
                sock.abort();
                progress = true;
                continue;
            }
            let idle = c.checker.pending().next().is_none();
            if c.last_request_written && idle && !c.closing {
                c.tls.send_close_notify();
                c.closing = true;
                progress = true;
            }
            progress |= tls_to_tcp(sock, &mut c.tls);
            if c.closing && !c.tls.wants_write() && sock.may_send() {
                sock.close();
                progress = true;
            }
        }
        for (i, f) in events {
            self.finish_request(i, now, f);
        }
        // Forget sockets that are fully closed (TIME-WAIT ones included: their ports are
        // never reused within a run of 16384 connections).
        let before = self.conns.len();
        let sockets = &mut self.stack.sockets;
        let mut removed = Vec::new();
        self.conns.retain(|c| {
            let state = sockets.get_mut::<tcp::Socket>(c.handle).state();
            let gone =
                (c.closing || c.dead) && matches!(state, tcp::State::Closed | tcp::State::TimeWait);
            if gone {
                removed.push(c.handle);
            }
            !gone
        });
        for h in removed {
            sockets.remove(h);
        }
        // In 1-conn mode the connection index 0 must stay the shared connection while
        // requests remain; it is only removed once it is closing or dead, after which no
        // request is written to it.
        progress || self.conns.len() != before
    }

    fn drive(&mut self, now: Instant) {
        self.stack.set_now(now);
        self.start.get_or_insert(now);
        for _ in 0..MAX_ROUNDS {
            let net = self.stack.poll_once();
            let app = self.step(now);
            if !net && !app {
                return;
            }
        }
        tracing::warn!("simulated TCP client did not settle");
    }
}

fn truncated(checker: &EchoChecker) -> Failure {
    let (_, received, expected) = checker.pending().next().unwrap_or((0, 0, 0));
    Failure::Truncated { received, expected }
}

impl Node for TcpClientNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, _to: SocketAddr, data: Vec<u8>) {
        self.stack.set_now(now);
        self.stack.receive(from, data);
        self.drive(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        self.stack.set_now(now);
        self.start.get_or_insert(now);
        self.stack.pop_transmit()
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let net = self.stack.poll_at();
        let app = self.due(self.next);
        match (net, app) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.drive(now);
    }
}
