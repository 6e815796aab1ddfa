//! quinn-proto (the sans-IO core under quinn 0.11) as a node of the `quiver-netem`
//! simulator, so Quiver ↔ quinn runs under seeded, virtual-time network conditions.
//!
//! [`QuinnNode`] feeds received datagrams and the virtual clock to a
//! `quinn_proto::Endpoint` and its connections and hands their transmits and timeouts
//! to the simulator. The application on top speaks the same tiny protocol as the Quiver
//! harness in `common`: a bidirectional request `GET <n>\n` + FIN is answered with
//! `pattern(n, stream id)` + FIN, and the client checks the response byte for byte.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{
    ClientConfig, Connection, ConnectionHandle, DatagramEvent, Dir, EcnCodepoint, Endpoint,
    EndpointConfig, Event, ServerConfig, StreamEvent, StreamId, TimeSource, TransportConfig,
    VarInt,
};
use quiver_netem::sim::{Datagram, Ecn, Node};

use crate::common::pattern;

/// A fixed wall clock for quinn's token timestamps (the simulator has no wall time).
#[derive(Debug)]
struct FixedTime(SystemTime);

impl TimeSource for FixedTime {
    fn now(&self) -> SystemTime {
        self.0
    }
}

fn seed32(seed: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s
}

/// A quinn endpoint configuration whose randomness (CIDs, reset key) comes from `seed`.
pub fn endpoint_config(seed: u64) -> Arc<EndpointConfig> {
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed32(seed));
    let mut c = EndpointConfig::new(Arc::new(reset_key));
    c.rng_seed(Some(seed32(seed)));
    Arc::new(c)
}

/// A quinn server configuration over a rustls server configuration (Quiver's builders
/// produce QUIC-ready ones), with a seeded token key and a fixed token clock.
pub fn server_config(
    seed: u64,
    tls: rustls::ServerConfig,
    transport: TransportConfig,
) -> ServerConfig {
    let crypto = QuicServerConfig::try_from(tls).expect("QUIC-capable rustls config");
    let token_key =
        ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(&seed32(seed ^ 0x70c3));
    let mut c = ServerConfig::new(Arc::new(crypto), Arc::new(token_key));
    c.transport_config(Arc::new(transport));
    c.time_source(Arc::new(FixedTime(
        UNIX_EPOCH + Duration::from_secs(1_767_225_600),
    )));
    c
}

/// A quinn client configuration over a rustls client configuration.
pub fn client_config(tls: rustls::ClientConfig, transport: TransportConfig) -> ClientConfig {
    let crypto = QuicClientConfig::try_from(tls).expect("QUIC-capable rustls config");
    let mut c = ClientConfig::new(Arc::new(crypto));
    c.transport_config(Arc::new(transport));
    c
}

/// One client connection's progress.
#[derive(Debug, Default, Clone)]
pub struct ClientResult {
    pub connected_at: Option<Instant>,
    pub done_at: Option<Instant>,
    /// Response bytes received; compared with the expected pattern at FIN.
    pub received: usize,
    pub verified: bool,
    pub corrupt: bool,
    pub lost: Option<String>,
}

/// The request stream of a client connection and the response bytes so far.
type Download = (StreamId, Vec<u8>);

enum Role {
    Server {
        /// Request bytes per (connection, stream), then the response left to write.
        requests: BTreeMap<(ConnectionHandle, StreamId), Vec<u8>>,
        responses: BTreeMap<(ConnectionHandle, StreamId), (Bytes, usize)>,
        served: usize,
    },
    Client {
        config: ClientConfig,
        remote: SocketAddr,
        size: usize,
        /// Connections still to open (one after the other).
        remaining: usize,
        current: Option<(ConnectionHandle, Option<Download>)>,
        results: Vec<ClientResult>,
    },
}

/// A quinn-proto endpoint on the simulated network. See the module docs.
pub struct QuinnNode {
    pub endpoint: Endpoint,
    conns: BTreeMap<ConnectionHandle, Connection>,
    addr: SocketAddr,
    role: Role,
    out: VecDeque<Datagram>,
    buf: Vec<u8>,
}

fn sim_ecn(ecn: Option<EcnCodepoint>) -> Ecn {
    Ecn::from_bits(ecn.map_or(0, |e| e as u8))
}

impl QuinnNode {
    /// A server at `addr`.
    pub fn server(seed: u64, addr: SocketAddr, config: ServerConfig) -> Self {
        let endpoint = Endpoint::new(
            endpoint_config(seed),
            Some(Arc::new(config)),
            true,
            Some(seed32(seed)),
        );
        Self {
            endpoint,
            conns: BTreeMap::new(),
            addr,
            role: Role::Server {
                requests: BTreeMap::new(),
                responses: BTreeMap::new(),
                served: 0,
            },
            out: VecDeque::new(),
            buf: Vec::new(),
        }
    }

    /// A client at `addr` that downloads `size` bytes from `remote`, over `connections`
    /// connections opened one after the other (the first at `now`).
    pub fn client(
        seed: u64,
        addr: SocketAddr,
        remote: SocketAddr,
        config: ClientConfig,
        size: usize,
        connections: usize,
        now: Instant,
    ) -> Self {
        let endpoint = Endpoint::new(endpoint_config(seed), None, true, Some(seed32(seed)));
        let mut node = Self {
            endpoint,
            conns: BTreeMap::new(),
            addr,
            role: Role::Client {
                config,
                remote,
                size,
                remaining: connections,
                current: None,
                results: Vec::new(),
            },
            out: VecDeque::new(),
            buf: Vec::new(),
        };
        node.next_connection(now);
        node
    }

    /// Per-connection results of a client (in the order the connections were opened).
    pub fn results(&self) -> &[ClientResult] {
        match &self.role {
            Role::Client { results, .. } => results,
            Role::Server { .. } => &[],
        }
    }

    /// A client opened all its connections and each finished (verified or not) or failed.
    pub fn client_finished(&self) -> bool {
        match &self.role {
            Role::Client {
                remaining, current, ..
            } => *remaining == 0 && current.is_none(),
            Role::Server { .. } => false,
        }
    }

    /// Requests a server answered completely.
    pub fn served(&self) -> usize {
        match &self.role {
            Role::Server { served, .. } => *served,
            Role::Client { .. } => 0,
        }
    }

    fn next_connection(&mut self, now: Instant) {
        let Role::Client {
            config,
            remote,
            remaining,
            current,
            results,
            ..
        } = &mut self.role
        else {
            return;
        };
        if *remaining == 0 || current.is_some() {
            return;
        }
        *remaining -= 1;
        results.push(ClientResult::default());
        match self
            .endpoint
            .connect(now, config.clone(), *remote, "localhost")
        {
            Ok((h, conn)) => {
                self.conns.insert(h, conn);
                *current = Some((h, None));
            }
            Err(e) => {
                results.last_mut().unwrap().lost = Some(format!("connect: {e}"));
            }
        }
    }

    /// Route endpoint events, deliver application events, run the application.
    fn process(&mut self, now: Instant) {
        let handles: Vec<ConnectionHandle> = self.conns.keys().copied().collect();
        for h in handles {
            let conn = self.conns.get_mut(&h).unwrap();
            while let Some(ev) = conn.poll_endpoint_events() {
                if let Some(back) = self.endpoint.handle_event(h, ev) {
                    conn.handle_event(back);
                }
            }
            let mut events = Vec::new();
            while let Some(ev) = conn.poll() {
                events.push(ev);
            }
            self.run_app(now, h, events);
            let conn = self.conns.get_mut(&h).unwrap();
            while let Some(ev) = conn.poll_endpoint_events() {
                if let Some(back) = self.endpoint.handle_event(h, ev) {
                    conn.handle_event(back);
                }
            }
            if conn.is_drained() {
                self.conns.remove(&h);
            }
        }
        self.next_connection(now);
    }

    fn run_app(&mut self, now: Instant, h: ConnectionHandle, events: Vec<Event>) {
        let conn = self.conns.get_mut(&h).unwrap();
        match &mut self.role {
            Role::Server {
                requests,
                responses,
                served,
            } => {
                for ev in &events {
                    if let Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) = ev {
                        while let Some(id) = conn.streams().accept(Dir::Bi) {
                            requests.insert((h, id), Vec::new());
                        }
                    }
                }
                let ids: Vec<StreamId> = requests
                    .keys()
                    .filter(|(c, _)| *c == h)
                    .map(|(_, s)| *s)
                    .collect();
                for id in ids {
                    let mut fin = false;
                    let mut stream = conn.recv_stream(id);
                    if let Ok(mut chunks) = stream.read(true) {
                        loop {
                            match chunks.next(usize::MAX) {
                                Ok(Some(chunk)) => requests
                                    .get_mut(&(h, id))
                                    .unwrap()
                                    .extend_from_slice(&chunk.bytes),
                                Ok(None) => {
                                    fin = true;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        let _ = chunks.finalize();
                    }
                    if fin {
                        let req = requests.remove(&(h, id)).unwrap();
                        let text = String::from_utf8_lossy(&req);
                        let n: usize = text
                            .trim()
                            .strip_prefix("GET ")
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        responses.insert((h, id), (Bytes::from(pattern(n, u64::from(id))), 0));
                    }
                }
                let ids: Vec<StreamId> = responses
                    .keys()
                    .filter(|(c, _)| *c == h)
                    .map(|(_, s)| *s)
                    .collect();
                for id in ids {
                    let (data, off) = responses.get_mut(&(h, id)).unwrap();
                    let mut send = conn.send_stream(id);
                    while *off < data.len() {
                        match send.write(&data[*off..]) {
                            Ok(n) if n > 0 => *off += n,
                            _ => break,
                        }
                    }
                    if *off == data.len() {
                        let _ = send.finish();
                        responses.remove(&(h, id));
                        *served += 1;
                    }
                }
            }
            Role::Client {
                size,
                current,
                results,
                ..
            } => {
                let Some((ch, stream)) = current.as_mut() else {
                    return;
                };
                if *ch != h {
                    return;
                }
                let result = results.last_mut().unwrap();
                for ev in events {
                    match ev {
                        Event::Connected => result.connected_at = Some(now),
                        Event::ConnectionLost { reason } => {
                            result.lost = Some(reason.to_string());
                        }
                        _ => {}
                    }
                }
                if result.lost.is_some() {
                    *current = None;
                    return;
                }
                if result.connected_at.is_none() {
                    return;
                }
                if stream.is_none() {
                    if let Some(id) = conn.streams().open(Dir::Bi) {
                        let req = format!("GET {size}\n");
                        let mut send = conn.send_stream(id);
                        let n = send.write(req.as_bytes()).expect("write request");
                        assert_eq!(n, req.len(), "request must fit the initial window");
                        send.finish().unwrap();
                        *stream = Some((id, Vec::new()));
                    }
                }
                let Some((id, got)) = stream.as_mut() else {
                    return;
                };
                let mut fin = false;
                if let Ok(mut chunks) = conn.recv_stream(*id).read(true) {
                    loop {
                        match chunks.next(usize::MAX) {
                            Ok(Some(chunk)) => got.extend_from_slice(&chunk.bytes),
                            Ok(None) => {
                                fin = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let _ = chunks.finalize();
                }
                result.received = got.len();
                if fin {
                    let ok = *got == pattern(*size, u64::from(*id));
                    result.verified = ok;
                    result.corrupt = !ok;
                    result.done_at = Some(now);
                    conn.close(now, VarInt::from_u32(0), Bytes::from_static(b"done"));
                    *current = None;
                }
            }
        }
    }
}

impl Node for QuinnNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.handle_datagram_ecn(now, from, to, Ecn::NotEct, data);
    }

    fn handle_datagram_ecn(
        &mut self,
        now: Instant,
        from: SocketAddr,
        _to: SocketAddr,
        ecn: Ecn,
        data: Vec<u8>,
    ) {
        let ecn = EcnCodepoint::from_bits(ecn.bits());
        let mut buf = Vec::new();
        match self
            .endpoint
            .handle(now, from, None, ecn, BytesMut::from(&data[..]), &mut buf)
        {
            Some(DatagramEvent::ConnectionEvent(h, ev)) => {
                if let Some(conn) = self.conns.get_mut(&h) {
                    conn.handle_event(ev);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                if matches!(self.role, Role::Server { .. }) {
                    match self.endpoint.accept(incoming, now, &mut buf, None) {
                        Ok((h, conn)) => {
                            self.conns.insert(h, conn);
                        }
                        Err(e) => {
                            if let Some(t) = e.response {
                                self.out.push_back(
                                    Datagram::new(self.addr, t.destination, buf[..t.size].to_vec())
                                        .with_ecn(sim_ecn(t.ecn)),
                                );
                            }
                        }
                    }
                } else {
                    self.endpoint.ignore(incoming);
                }
            }
            Some(DatagramEvent::Response(t)) => {
                self.out.push_back(
                    Datagram::new(self.addr, t.destination, buf[..t.size].to_vec())
                        .with_ecn(sim_ecn(t.ecn)),
                );
            }
            None => {}
        }
        self.process(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        if let Some(d) = self.out.pop_front() {
            return Some(d);
        }
        for conn in self.conns.values_mut() {
            self.buf.clear();
            if let Some(t) = conn.poll_transmit(now, 1, &mut self.buf) {
                return Some(
                    Datagram::new(self.addr, t.destination, self.buf[..t.size].to_vec())
                        .with_ecn(sim_ecn(t.ecn)),
                );
            }
        }
        None
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.conns
            .values_mut()
            .filter_map(|c| c.poll_timeout())
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        for conn in self.conns.values_mut() {
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
            }
        }
        self.process(now);
    }
}
