//! Test harness: Quiver endpoints as nodes of the `quiver-netem` simulator, with small
//! scripted applications (an echo/download server and a client that checks what it gets).

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use quiver_netem::sim::{Datagram, Ecn, LinkConfig, Node, Sim};
use quiver_proto::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use quiver_proto::connection::Event;
use quiver_proto::endpoint::{ConnectionHandle, Endpoint};
use quiver_proto::{Dir, StreamId, VarInt};
use std::cell::RefCell;
use std::collections::BTreeMap as HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ALPN: &[u8] = b"quiver-test";

pub fn server_addr() -> SocketAddr {
    "10.0.0.1:4433".parse().unwrap()
}
pub fn client_addr() -> SocketAddr {
    "10.0.0.2:50000".parse().unwrap()
}

/// Deterministic content of a response of `len` bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn server_config(transport: TransportConfig) -> ServerConfig {
    // Ed25519: fixed-size signatures keep handshake sizes, and so simulated runs,
    // identical from run to run.
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key_pair)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let crypto = quiver_proto::crypto::server_config(
        vec![cert.der().clone()],
        key,
        &[ALPN],
        quiver_proto::crypto::CipherSuiteSelection::All,
        None,
    )
    .unwrap();
    let mut c = ServerConfig::new(Arc::new(crypto));
    c.transport = Arc::new(transport);
    c
}

/// An Ed25519 certificate for `localhost` and its key, the same bytes on every run for a
/// given `seed` (deterministic key, rcgen's defaults for validity and serial). `copies`
/// > 1 repeats the certificate in the chain, to make the server's first flight large.
pub fn deterministic_identity(
    seed: u64,
    copies: usize,
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let der = quiver_proto::crypto::deterministic::ed25519_pkcs8(seed);
    let key_pair = rcgen::KeyPair::try_from(der.as_slice()).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key_pair)
        .unwrap();
    let chain = vec![cert.der().clone(); copies.max(1)];
    (chain, rustls::pki_types::PrivateKeyDer::Pkcs8(der.into()))
}

/// A Quiver server configuration on the seeded crypto provider
/// (`quiver_proto::crypto::deterministic`) with a deterministic certificate.
pub fn deterministic_server_config(
    seed: u64,
    cert_copies: usize,
    transport: TransportConfig,
) -> ServerConfig {
    let (chain, key) = deterministic_identity(seed, cert_copies);
    let crypto = quiver_proto::crypto::deterministic::Deterministic::new(seed)
        .server_config(
            chain,
            key,
            &[ALPN],
            quiver_proto::crypto::CipherSuiteSelection::All,
            None,
        )
        .unwrap();
    let mut c = ServerConfig::new(Arc::new(crypto));
    c.transport = Arc::new(transport);
    c
}

/// A Quiver client configuration (any server certificate accepted) on the seeded crypto
/// provider.
pub fn deterministic_client_config(seed: u64, transport: TransportConfig) -> ClientConfig {
    let crypto = quiver_proto::crypto::deterministic::Deterministic::new(seed)
        .insecure_client_config(
            &[ALPN],
            quiver_proto::crypto::CipherSuiteSelection::All,
            None,
        )
        .unwrap();
    let mut c = ClientConfig::new(Arc::new(crypto));
    c.transport = Arc::new(transport);
    c
}

pub fn client_config(transport: TransportConfig) -> ClientConfig {
    let crypto = quiver_proto::crypto::insecure_client_config(
        &[ALPN],
        quiver_proto::crypto::CipherSuiteSelection::All,
        None,
    )
    .unwrap();
    let mut c = ClientConfig::new(Arc::new(crypto));
    c.transport = Arc::new(transport);
    c
}

pub fn endpoint_config(seed: u64) -> Arc<EndpointConfig> {
    Arc::new(EndpointConfig {
        rng_seed: Some(seed),
        ..EndpointConfig::default()
    })
}

/// Server application: each bidi request is `GET <n>\n` (or any bytes up to FIN); the
/// response is `n` bytes of `pattern(n, stream id)`, then FIN. Unidirectional streams
/// and datagrams are echoed back.
#[derive(Default)]
pub struct ServerApp {
    requests: HashMap<(ConnectionHandle, StreamId), Vec<u8>>,
    responses: HashMap<(ConnectionHandle, StreamId), (Bytes, usize)>,
    pub datagrams_echoed: usize,
    pub closed: Vec<(ConnectionHandle, String)>,
    /// Request streams accepted, in total and while the connection was still
    /// handshaking (so their first bytes came in 0-RTT packets).
    pub requests_accepted: usize,
    pub early_requests: usize,
}

/// Client application: opens `streams` requests for `size` bytes each (at most
/// `concurrency` at once), verifies each response, optionally sends datagrams.
pub struct ClientApp {
    pub remote: SocketAddr,
    pub config: ClientConfig,
    pub conn: Option<ConnectionHandle>,
    pub connected_at: Option<Instant>,
    pub streams: usize,
    pub size: usize,
    pub concurrency: usize,
    opened: usize,
    pending: HashMap<StreamId, Vec<u8>>,
    pub completed: usize,
    pub corrupt: usize,
    pub done_at: Option<Instant>,
    pub datagrams_to_send: usize,
    pub datagrams_received: usize,
    pub lost: Option<String>,
    pub close_when_done: Option<u64>,
    /// Open and write requests as soon as the connection allows it (0-RTT), instead of
    /// waiting for the handshake.
    pub early: bool,
}

impl ClientApp {
    pub fn new(config: ClientConfig, streams: usize, size: usize) -> Self {
        Self {
            remote: server_addr(),
            config,
            conn: None,
            connected_at: None,
            streams,
            size,
            concurrency: usize::MAX,
            opened: 0,
            pending: HashMap::new(),
            completed: 0,
            corrupt: 0,
            done_at: None,
            datagrams_to_send: 0,
            datagrams_received: 0,
            lost: None,
            close_when_done: None,
            early: false,
        }
    }
}

pub enum App {
    Server(ServerApp),
    Client(ClientApp),
    /// No application: a raw endpoint.
    None,
}

pub struct QuicNode {
    pub ep: Endpoint,
    pub addr: SocketAddr,
    pub app: App,
    buf: Vec<u8>,
}

impl QuicNode {
    pub fn server(seed: u64, transport: TransportConfig) -> Self {
        QuicNode {
            ep: Endpoint::new(
                endpoint_config(seed),
                Some(Arc::new(server_config(transport))),
            ),
            addr: server_addr(),
            app: App::Server(ServerApp::default()),
            buf: Vec::new(),
        }
    }

    /// A server with its own endpoint and server configurations, at `addr`.
    pub fn server_from(
        config: Arc<EndpointConfig>,
        server: ServerConfig,
        addr: SocketAddr,
    ) -> Self {
        QuicNode {
            ep: Endpoint::new(config, Some(Arc::new(server))),
            addr,
            app: App::Server(ServerApp::default()),
            buf: Vec::new(),
        }
    }

    /// A server with its own endpoint configuration (versions, CID length, ...).
    pub fn server_with(config: Arc<EndpointConfig>, transport: TransportConfig) -> Self {
        QuicNode {
            ep: Endpoint::new(config, Some(Arc::new(server_config(transport)))),
            addr: server_addr(),
            app: App::Server(ServerApp::default()),
            buf: Vec::new(),
        }
    }

    /// A client that connects at `now`.
    pub fn client(seed: u64, app: ClientApp, now: Instant) -> Self {
        Self::client_with(endpoint_config(seed), app, now)
    }

    /// A client with its own endpoint configuration that connects at `now`.
    pub fn client_with(config: Arc<EndpointConfig>, mut app: ClientApp, now: Instant) -> Self {
        let mut ep = Endpoint::new(config, None);
        let h = ep
            .connect(now, app.config.clone(), app.remote, "localhost")
            .expect("connect");
        app.conn = Some(h);
        QuicNode {
            ep,
            addr: client_addr(),
            app: App::Client(app),
            buf: Vec::new(),
        }
    }

    pub fn client_app(&self) -> &ClientApp {
        match &self.app {
            App::Client(c) => c,
            _ => panic!("not a client"),
        }
    }

    pub fn server_app(&self) -> &ServerApp {
        match &self.app {
            App::Server(s) => s,
            _ => panic!("not a server"),
        }
    }

    fn run_app(&mut self, now: Instant) {
        // Drain events.
        let mut events = Vec::new();
        while let Some(ev) = self.ep.poll_event() {
            events.push(ev);
        }
        match &mut self.app {
            App::Server(s) => s.step(&mut self.ep, now, events),
            App::Client(c) => c.step(&mut self.ep, now, events),
            App::None => {}
        }
    }
}

impl ServerApp {
    fn step(&mut self, ep: &mut Endpoint, _now: Instant, events: Vec<(ConnectionHandle, Event)>) {
        let mut touched: Vec<ConnectionHandle> = Vec::new();
        for (h, ev) in events {
            if let Event::ConnectionLost { reason } = &ev {
                self.closed.push((h, reason.to_string()));
            }
            if !touched.contains(&h) {
                touched.push(h);
            }
        }
        for h in ep.connection_handles().collect::<Vec<_>>() {
            if !touched.contains(&h) {
                touched.push(h);
            }
        }
        for h in touched {
            let Some(conn) = ep.connection_mut(h) else {
                continue;
            };
            while let Some(id) = conn.accept(Dir::Bi) {
                self.requests.insert((h, id), Vec::new());
                self.requests_accepted += 1;
                if conn.is_handshaking() {
                    self.early_requests += 1;
                }
            }
            while let Some(d) = conn.recv_datagram() {
                if conn.send_datagram(d).is_ok() {
                    self.datagrams_echoed += 1;
                }
            }
            let ids: Vec<StreamId> = self
                .requests
                .keys()
                .filter(|(c, _)| *c == h)
                .map(|(_, s)| *s)
                .collect();
            for id in ids {
                loop {
                    match conn.read(id, usize::MAX) {
                        Ok(Some(chunk)) => self
                            .requests
                            .get_mut(&(h, id))
                            .unwrap()
                            .extend_from_slice(&chunk),
                        Ok(None) => {
                            let req = self.requests.remove(&(h, id)).unwrap();
                            let text = String::from_utf8_lossy(&req);
                            let n: usize = text
                                .trim()
                                .strip_prefix("GET ")
                                .and_then(|n| n.parse().ok())
                                .unwrap_or(0);
                            self.responses
                                .insert((h, id), (Bytes::from(pattern(n, id.0)), 0));
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            let ids: Vec<StreamId> = self
                .responses
                .keys()
                .filter(|(c, _)| *c == h)
                .map(|(_, s)| *s)
                .collect();
            for id in ids {
                let (data, off) = self.responses.get_mut(&(h, id)).unwrap();
                while *off < data.len() {
                    match conn.write(id, &data[*off..]) {
                        Ok(n) if n > 0 => *off += n,
                        _ => break,
                    }
                }
                if *off == data.len() {
                    let _ = conn.finish(id);
                    self.responses.remove(&(h, id));
                }
            }
        }
    }
}

impl ClientApp {
    fn step(&mut self, ep: &mut Endpoint, now: Instant, events: Vec<(ConnectionHandle, Event)>) {
        let Some(h) = self.conn else { return };
        for (_, ev) in events {
            match ev {
                Event::Connected => self.connected_at = Some(now),
                Event::ConnectionLost { reason } => self.lost = Some(reason.to_string()),
                Event::DatagramReceived => {}
                _ => {}
            }
        }
        let Some(conn) = ep.connection_mut(h) else {
            return;
        };
        if self.connected_at.is_none() && !self.early {
            return;
        }
        while self.datagrams_to_send > 0 {
            let payload = Bytes::from(pattern(100, self.datagrams_to_send as u64));
            if conn.send_datagram(payload).is_err() {
                break;
            }
            self.datagrams_to_send -= 1;
        }
        while conn.recv_datagram().is_some() {
            self.datagrams_received += 1;
        }
        while self.opened < self.streams && self.pending.len() < self.concurrency {
            let Some(id) = conn.open(Dir::Bi) else { break };
            let req = format!("GET {}\n", self.size);
            let n = conn.write(id, req.as_bytes()).expect("write request");
            assert_eq!(n, req.len(), "request must fit the initial window");
            conn.finish(id).unwrap();
            self.pending.insert(id, Vec::new());
            self.opened += 1;
        }
        let ids: Vec<StreamId> = self.pending.keys().copied().collect();
        for id in ids {
            loop {
                match conn.read(id, usize::MAX) {
                    Ok(Some(chunk)) => self.pending.get_mut(&id).unwrap().extend_from_slice(&chunk),
                    Ok(None) => {
                        let got = self.pending.remove(&id).unwrap();
                        if got == pattern(self.size, id.0) {
                            self.completed += 1;
                        } else {
                            self.corrupt += 1;
                        }
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if self.completed + self.corrupt == self.streams && self.done_at.is_none() {
            self.done_at = Some(now);
            if let Some(code) = self.close_when_done {
                conn.close(
                    now,
                    VarInt::from_u64(code).unwrap(),
                    Bytes::from_static(b"bye"),
                );
            }
        }
    }
}

impl Node for QuicNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.handle_datagram_ecn(now, from, to, Ecn::NotEct, data);
    }

    /// The simulated IP header's ECN field goes to the endpoint like quinn-udp's
    /// `RecvMeta::ecn` does in the runtime.
    fn handle_datagram_ecn(
        &mut self,
        now: Instant,
        from: SocketAddr,
        _to: SocketAddr,
        ecn: Ecn,
        data: Vec<u8>,
    ) {
        let ecn = quiver_proto::EcnCodepoint::from_bits(ecn.bits());
        self.ep
            .handle(now, from, None, ecn, BytesMut::from(&data[..]));
        self.run_app(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        self.run_app(now);
        let t = self.ep.poll_transmit(now, 1, &mut self.buf)?;
        let ecn = Ecn::from_bits(t.ecn.map_or(0, |e| e.bits()));
        Some(Datagram::new(self.addr, t.destination, self.buf[..t.size].to_vec()).with_ecn(ecn))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.ep.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.run_app(now);
    }
}

/// A client and a server on one link configuration (both directions).
pub struct Pair {
    pub sim: Sim,
    pub server: quiver_netem::sim::NodeId,
    pub client: quiver_netem::sim::NodeId,
}

impl Pair {
    pub fn new(seed: u64, link: LinkConfig, server_t: TransportConfig, client: ClientApp) -> Pair {
        let start = Instant::now();
        let mut sim = Sim::new(seed, start);
        let server = sim
            .add_node(QuicNode::server(seed ^ 1, server_t), vec![server_addr()])
            .unwrap();
        let client = sim
            .add_node(
                QuicNode::client(seed ^ 2, client, start),
                vec![client_addr()],
            )
            .unwrap();
        sim.set_link_pair(server, client, link).unwrap();
        Pair {
            sim,
            server,
            client,
        }
    }

    pub fn client(&self) -> &ClientApp {
        self.sim.node::<QuicNode>(self.client).unwrap().client_app()
    }

    pub fn server_node(&mut self) -> &mut QuicNode {
        self.sim.node_mut::<QuicNode>(self.server).unwrap()
    }

    /// Run until the client finished (or failed) or `budget` of virtual time passed.
    pub fn run_to_completion(&mut self, budget: Duration) -> Duration {
        let client = self.client;
        let start = self.sim.now();
        let _ = self.sim.run_while(
            |sim| {
                let c = sim.node::<QuicNode>(client).unwrap().client_app();
                c.done_at.is_none() && c.lost.is_none()
            },
            budget,
        );
        self.sim.now() - start
    }
}

/// One datagram seen by a [`Tap`]: sent (`out`) or received, with its time offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub at: Duration,
    pub out: bool,
    pub peer: SocketAddr,
    pub data: Vec<u8>,
}

pub type Log = Rc<RefCell<Vec<Seen>>>;

/// A node wrapper that records every datagram the node sends and receives.
pub struct Tap<N> {
    pub inner: N,
    pub start: Instant,
    pub log: Log,
}

impl<N: Node> Node for Tap<N> {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.handle_datagram_ecn(now, from, to, Ecn::NotEct, data);
    }
    fn handle_datagram_ecn(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        ecn: Ecn,
        data: Vec<u8>,
    ) {
        self.log.borrow_mut().push(Seen {
            at: now - self.start,
            out: false,
            peer: from,
            data: data.clone(),
        });
        self.inner.handle_datagram_ecn(now, from, to, ecn, data);
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        let d = self.inner.poll_transmit(now)?;
        self.log.borrow_mut().push(Seen {
            at: now - self.start,
            out: true,
            peer: d.dst,
            data: d.data.clone(),
        });
        Some(d)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }
}
