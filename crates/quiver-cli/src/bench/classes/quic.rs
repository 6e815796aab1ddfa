//! Quiver endpoints as simulator nodes: a client opening one classed bidi stream per job
//! and an echo server answering on the same stream with the same scheduler.

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use quiver_netem::sim::{Datagram, LinkConfig, Node, Sim};
use quiver_proto::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use quiver_proto::connection::{Event, ReadError};
use quiver_proto::endpoint::{ConnectionHandle, Endpoint};
use quiver_proto::sched::{Deadline, SchedulerKind, StreamClass, DEADLINE_EXCEEDED_CODE};
use quiver_proto::{Dir, StreamId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::arrival::Job;
use super::mix::ClassSpec;
use super::{Cc, Failure, RequestResult};

const ALPN: &[u8] = b"quiver-classes";
const SERVER: &str = "10.0.0.1:4433";
const CLIENT: &str = "10.0.0.2:50000";

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Byte `i` of job `id`'s request; byte 0 is replaced by the class tag.
pub(super) fn payload(job: &Job) -> Bytes {
    let mut x = (job.id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v: Vec<u8> = (0..job.size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    if let Some(b) = v.first_mut() {
        *b = job.class;
    }
    Bytes::from(v)
}

/// The scheduling class of a job's stream. On the client the deadline is absolute
/// (arrival + deadline), so a stream opened late keeps the job's deadline.
pub(super) fn class_of(spec: &ClassSpec, deadline: Deadline) -> StreamClass {
    StreamClass::new()
        .with_priority(spec.priority)
        .with_level(spec.level)
        .with_deadline(deadline)
}

fn transport(kind: SchedulerKind, cc: Cc) -> TransportConfig {
    TransportConfig {
        scheduler: Arc::new(kind),
        congestion_controller: cc.factory(),
        max_concurrent_bidi_streams: 1000,
        max_idle_timeout: Some(Duration::from_secs(120)),
        ..TransportConfig::default()
    }
}

fn endpoint_config(seed: u64) -> Arc<EndpointConfig> {
    Arc::new(EndpointConfig {
        rng_seed: Some(seed),
        ..EndpointConfig::default()
    })
}

pub(super) fn server_config(kind: SchedulerKind, cc: Cc) -> anyhow::Result<ServerConfig> {
    // Ed25519: fixed-size signatures keep handshake sizes, so runs, identical.
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])?.self_signed(&key_pair)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let crypto = quiver_proto::crypto::server_config(
        vec![cert.der().clone()],
        key,
        &[ALPN],
        quiver_proto::crypto::CipherSuiteSelection::All,
        None,
    )
    .context("QUIC server TLS configuration")?;
    let mut c = ServerConfig::new(Arc::new(crypto));
    c.transport = Arc::new(transport(kind, cc));
    Ok(c)
}

pub(super) fn client_config(kind: SchedulerKind, cc: Cc) -> anyhow::Result<ClientConfig> {
    let crypto = quiver_proto::crypto::insecure_client_config(
        &[ALPN],
        quiver_proto::crypto::CipherSuiteSelection::All,
        None,
    )
    .context("QUIC client TLS configuration")?;
    let mut c = ClientConfig::new(Arc::new(crypto));
    c.transport = Arc::new(transport(kind, cc));
    Ok(c)
}

/// A response being echoed: bytes read but not yet written, and whether FIN was read.
#[derive(Default)]
struct Echo {
    pending: BytesMut,
    classed: bool,
    fin: bool,
}

struct Server {
    mix: Vec<ClassSpec>,
    echoes: BTreeMap<(ConnectionHandle, StreamId), Echo>,
}

impl Server {
    fn step(&mut self, ep: &mut Endpoint, now: Instant) {
        while ep.poll_event().is_some() {}
        for h in ep.connection_handles().collect::<Vec<_>>() {
            let Some(conn) = ep.connection_mut(h) else {
                continue;
            };
            while let Some(id) = conn.accept(Dir::Bi) {
                self.echoes.insert((h, id), Echo::default());
            }
            let ids: Vec<StreamId> = self
                .echoes
                .range((h, StreamId(0))..)
                .take_while(|((c, _), _)| *c == h)
                .map(|((_, s), _)| *s)
                .collect();
            for id in ids {
                let Some(echo) = self.echoes.get_mut(&(h, id)) else {
                    continue;
                };
                let mut gone = false;
                while !echo.fin {
                    match conn.read(id, usize::MAX) {
                        Ok(Some(chunk)) => echo.pending.extend_from_slice(&chunk),
                        Ok(None) => echo.fin = true,
                        Err(ReadError::Blocked) => break,
                        Err(_) => {
                            // The client gave up (its deadline passed): give up too.
                            let _ = conn.reset(id, DEADLINE_EXCEEDED_CODE);
                            gone = true;
                            break;
                        }
                    }
                }
                if !echo.classed {
                    if let Some(spec) = echo
                        .pending
                        .first()
                        .and_then(|&t| self.mix.get(usize::from(t)))
                    {
                        // Classes are local: the server learns the class from the tag
                        // and applies the same deadline, counted from now.
                        let class = class_of(spec, Deadline::AfterOpen(spec.deadline));
                        let _ = conn.set_class(now, id, &class);
                        echo.classed = true;
                    }
                }
                while !gone && !echo.pending.is_empty() {
                    match conn.write(id, &echo.pending) {
                        Ok(n) if n > 0 => {
                            let _ = echo.pending.split_to(n);
                        }
                        Ok(_) | Err(quiver_proto::connection::WriteError::Blocked) => break,
                        Err(_) => {
                            gone = true;
                            break;
                        }
                    }
                }
                if !gone && echo.fin && echo.pending.is_empty() {
                    let _ = conn.finish(id);
                    gone = true;
                }
                if gone {
                    self.echoes.remove(&(h, id));
                }
            }
        }
    }
}

/// A job's stream on the client.
struct Open {
    job: usize,
    unsent: Bytes,
    received: usize,
    mismatch: bool,
}

struct Client {
    start: Instant,
    jobs: Vec<Job>,
    mix: Vec<ClassSpec>,
    payloads: Vec<Bytes>,
    conn: ConnectionHandle,
    connected: bool,
    next: usize,
    open: BTreeMap<StreamId, Open>,
    results: Vec<RequestResult>,
    lost: Option<String>,
}

impl Client {
    fn done(&self) -> bool {
        self.results.iter().all(|r| r.finished) || self.lost.is_some()
    }

    fn step(&mut self, ep: &mut Endpoint, now: Instant) {
        let mut expired = Vec::new();
        while let Some((_, ev)) = ep.poll_event() {
            match ev {
                Event::Connected => self.connected = true,
                Event::ConnectionLost { reason } => self.lost = Some(reason.to_string()),
                Event::StreamExpired { id } => expired.push(id),
                _ => {}
            }
        }
        let Some(conn) = ep.connection_mut(self.conn) else {
            return;
        };
        for id in expired {
            if let Some(o) = self.open.remove(&id) {
                let _ = conn.stop_sending(id, DEADLINE_EXCEEDED_CODE);
                let r = &mut self.results[o.job];
                r.finished = true;
                r.failure = Some(Failure::Dropped);
            }
        }
        if !self.connected {
            return;
        }
        // Open the streams of every job that has arrived.
        while let Some(job) = self.jobs.get(self.next) {
            let arrival = self.start + job.at;
            if arrival > now {
                break;
            }
            let spec = &self.mix[usize::from(job.class)];
            let class = class_of(spec, Deadline::At(arrival + spec.deadline));
            let Some(id) = conn.open_with(now, Dir::Bi, &class) else {
                break;
            };
            self.open.insert(
                id,
                Open {
                    job: self.next,
                    unsent: self.payloads[self.next].clone(),
                    received: 0,
                    mismatch: false,
                },
            );
            self.next += 1;
        }
        let ids: Vec<StreamId> = self.open.keys().copied().collect();
        for id in ids {
            let Some(o) = self.open.get_mut(&id) else {
                continue;
            };
            let mut closed = None;
            while !o.unsent.is_empty() {
                match conn.write(id, &o.unsent) {
                    Ok(n) if n > 0 => {
                        let _ = o.unsent.split_to(n);
                        if o.unsent.is_empty() {
                            let _ = conn.finish(id);
                        }
                    }
                    Ok(_) | Err(quiver_proto::connection::WriteError::Blocked) => break,
                    Err(_) => {
                        closed = Some(Failure::Dropped);
                        break;
                    }
                }
            }
            let expect = &self.payloads[o.job];
            while closed.is_none() {
                match conn.read(id, usize::MAX) {
                    Ok(Some(chunk)) => {
                        let end = o.received + chunk.len();
                        if expect.get(o.received..end) != Some(&chunk[..]) {
                            o.mismatch = true;
                        }
                        o.received = end;
                    }
                    Ok(None) => {
                        let r = &mut self.results[o.job];
                        if o.mismatch || o.received != expect.len() {
                            r.failure = Some(Failure::Corrupt);
                        } else {
                            r.latency = Some(now.saturating_duration_since(self.start + r.job.at));
                        }
                        r.finished = true;
                        self.open.remove(&id);
                        break;
                    }
                    Err(ReadError::Blocked) => break,
                    Err(_) => {
                        closed = Some(Failure::Dropped);
                    }
                }
            }
            if let Some(f) = closed {
                if let Some(o) = self.open.remove(&id) {
                    let r = &mut self.results[o.job];
                    r.finished = true;
                    r.failure = Some(f);
                }
            }
        }
    }

    /// When the next job arrives.
    fn next_arrival(&self) -> Option<Instant> {
        if !self.connected {
            return None;
        }
        self.jobs.get(self.next).map(|j| self.start + j.at)
    }
}

enum App {
    Server(Server),
    Client(Box<Client>),
}

struct QuicNode {
    ep: Endpoint,
    addr: SocketAddr,
    app: App,
    buf: Vec<u8>,
}

impl QuicNode {
    fn run_app(&mut self, now: Instant) {
        match &mut self.app {
            App::Server(s) => s.step(&mut self.ep, now),
            App::Client(c) => c.step(&mut self.ep, now),
        }
    }

    fn client(&self) -> Option<&Client> {
        match &self.app {
            App::Client(c) => Some(c),
            App::Server(_) => None,
        }
    }
}

impl Node for QuicNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, _to: SocketAddr, data: Vec<u8>) {
        self.ep
            .handle(now, from, None, None, BytesMut::from(&data[..]));
        self.run_app(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        self.run_app(now);
        let t = self.ep.poll_transmit(now, 1, &mut self.buf)?;
        Some(Datagram::new(
            self.addr,
            t.destination,
            self.buf.get(..t.size)?.to_vec(),
        ))
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        let arrival = self.client().and_then(Client::next_arrival);
        match (self.ep.poll_timeout(), arrival) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.run_app(now);
    }
}

/// Runs `jobs` over QUIC with scheduler `kind` on `link` (both directions).
pub fn run(
    kind: SchedulerKind,
    cc: Cc,
    mix: &[ClassSpec],
    jobs: &[Job],
    link: &LinkConfig,
    seed: u64,
    budget: Duration,
) -> anyhow::Result<Vec<RequestResult>> {
    let start = Instant::now();
    let mut sim = Sim::new(seed, start);
    let server = QuicNode {
        ep: Endpoint::new(
            endpoint_config(seed ^ 1),
            Some(Arc::new(server_config(kind, cc)?)),
        ),
        addr: addr(SERVER),
        app: App::Server(Server {
            mix: mix.to_vec(),
            echoes: BTreeMap::new(),
        }),
        buf: Vec::new(),
    };
    let mut ep = Endpoint::new(endpoint_config(seed ^ 2), None);
    let conn = ep
        .connect(start, client_config(kind, cc)?, addr(SERVER), "localhost")
        .context("QUIC connect")?;
    let client = QuicNode {
        ep,
        addr: addr(CLIENT),
        app: App::Client(Box::new(Client {
            start,
            jobs: jobs.to_vec(),
            mix: mix.to_vec(),
            payloads: jobs.iter().map(payload).collect(),
            conn,
            connected: false,
            next: 0,
            open: BTreeMap::new(),
            results: jobs.iter().map(|j| RequestResult::new(*j)).collect(),
            lost: None,
        })),
        buf: Vec::new(),
    };
    let s = sim.add_node(server, [addr(SERVER)])?;
    let c = sim.add_node(client, [addr(CLIENT)])?;
    sim.set_link_pair(s, c, link.clone())?;
    let _ = sim.run_while(
        |sim| {
            sim.node::<QuicNode>(c)
                .and_then(QuicNode::client)
                .is_some_and(|cl| !cl.done())
        },
        budget,
    );
    let cl = sim
        .node::<QuicNode>(c)
        .and_then(QuicNode::client)
        .context("client node")?;
    let mut results = cl.results.clone();
    for r in &mut results {
        if !r.finished {
            r.failure = Some(match &cl.lost {
                Some(_) => Failure::ConnectionLost,
                None => Failure::TimedOut,
            });
        }
    }
    Ok(results)
}
