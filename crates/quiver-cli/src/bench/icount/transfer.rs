//! The transfer workloads: a Quiver server sends 1 MiB per operation on `streams` new
//! unidirectional streams to a Quiver client, both `quiver_proto` endpoints with the
//! default configuration, on a [`quiver_netem::sim`] link (1 Gbit/s, 1 ms one way,
//! unbounded queue, no loss), driven in virtual time.
//!
//! Every call into an endpoint goes through one of the `icount_*` functions below,
//! never inlined, so that a callgrind profile attributes the instructions to a side
//! (`tx` = the sending server, `rx` = the receiving client) and a path: application
//! stream calls (`app`), received datagrams (`handle`), datagrams produced
//! (`poll_transmit`), and timers (`timeout`: `handle_timeout` and `poll_timeout`). What
//! is outside them is the simulator and this harness. [`PARTS`] lists them for the
//! driver.

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use quiver_netem::sim::{Datagram, LinkConfig, Node, NodeId, Sim};
use quiver_proto::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use quiver_proto::connection::{Event, ReadError};
use quiver_proto::crypto::CipherSuiteSelection;
use quiver_proto::endpoint::{ConnectionHandle, Endpoint};
use quiver_proto::{Dir, StreamId};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::workloads::{test_cert, ALPN, TRANSFER_BYTES};

/// The `icount_*` functions: (side, path, function name). The driver sums the inclusive
/// cost of each from a callgrind profile.
pub const PARTS: [(&str, &str, &str); 10] = [
    ("tx", "app", "icount_tx_app"),
    ("tx", "handle", "icount_tx_handle"),
    ("tx", "poll_transmit", "icount_tx_poll_transmit"),
    ("tx", "timeout", "icount_tx_timeout"),
    ("tx", "timeout", "icount_tx_poll_timeout"),
    ("rx", "app", "icount_rx_app"),
    ("rx", "handle", "icount_rx_handle"),
    ("rx", "poll_transmit", "icount_rx_poll_transmit"),
    ("rx", "timeout", "icount_rx_timeout"),
    ("rx", "timeout", "icount_rx_poll_timeout"),
];

/// Datagrams per `poll_transmit` call (a GSO batch, as the runtime asks for).
const MAX_DATAGRAMS: usize = 10;
/// Operations run during setup, after the handshake, so that the measured ones see a
/// connection past slow start and path-MTU discovery.
const WARMUP_OPS: u64 = 2;
/// Virtual-time budget of one operation.
const OP_BUDGET: Duration = Duration::from_secs(60);

/// How often each `icount_*` function ran; also what makes their bodies differ, so that
/// the compiler cannot merge them into one symbol.
#[derive(Debug, Default, Clone, Copy)]
struct Calls {
    tx_app: u64,
    tx_handle: u64,
    tx_poll_transmit: u64,
    tx_timeout: u64,
    tx_poll_timeout: u64,
    rx_app: u64,
    rx_handle: u64,
    rx_poll_transmit: u64,
    rx_timeout: u64,
    rx_poll_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The server: opens streams and writes.
    Tx,
    /// The client: reads.
    Rx,
}

/// What the sending application still has to do in the current operation.
#[derive(Debug, Default)]
struct TxApp {
    to_open: usize,
    per_stream: usize,
    /// Streams with data left to write: (id, bytes written).
    writing: Vec<(StreamId, usize)>,
}

/// What the receiving application has seen in the current operation.
#[derive(Debug, Default)]
struct RxApp {
    readable: BTreeSet<StreamId>,
    received: u64,
    finished: usize,
}

/// One endpoint on the simulated network.
struct Peer {
    role: Role,
    ep: Endpoint,
    addr: SocketAddr,
    conn: Option<ConnectionHandle>,
    connected: bool,
    buf: Vec<u8>,
    data: Bytes,
    calls: Calls,
    tx: TxApp,
    rx: RxApp,
    error: Option<String>,
}

#[inline(never)]
fn icount_tx_app(peer: &mut Peer) {
    peer.calls.tx_app += 1;
    peer.tx_step();
}

#[inline(never)]
fn icount_rx_app(peer: &mut Peer) {
    peer.calls.rx_app += 1;
    peer.rx_step();
}

#[inline(never)]
fn icount_tx_handle(
    ep: &mut Endpoint,
    calls: &mut Calls,
    now: Instant,
    from: SocketAddr,
    data: BytesMut,
) {
    calls.tx_handle += 1;
    black_box(ep.handle(now, from, None, None, data));
}

#[inline(never)]
fn icount_rx_handle(
    ep: &mut Endpoint,
    calls: &mut Calls,
    now: Instant,
    from: SocketAddr,
    data: BytesMut,
) {
    calls.rx_handle += 1;
    black_box(ep.handle(now, from, None, None, data));
}

#[inline(never)]
fn icount_tx_poll_transmit(
    ep: &mut Endpoint,
    calls: &mut Calls,
    now: Instant,
    buf: &mut Vec<u8>,
) -> Option<quiver_proto::connection::Transmit> {
    calls.tx_poll_transmit += 1;
    ep.poll_transmit(now, MAX_DATAGRAMS, buf)
}

#[inline(never)]
fn icount_rx_poll_transmit(
    ep: &mut Endpoint,
    calls: &mut Calls,
    now: Instant,
    buf: &mut Vec<u8>,
) -> Option<quiver_proto::connection::Transmit> {
    calls.rx_poll_transmit += 1;
    ep.poll_transmit(now, MAX_DATAGRAMS, buf)
}

#[inline(never)]
fn icount_tx_timeout(ep: &mut Endpoint, calls: &mut Calls, now: Instant) {
    calls.tx_timeout += 1;
    ep.handle_timeout(now);
}

#[inline(never)]
fn icount_rx_timeout(ep: &mut Endpoint, calls: &mut Calls, now: Instant) {
    calls.rx_timeout += 1;
    ep.handle_timeout(now);
}

#[inline(never)]
fn icount_tx_poll_timeout(ep: &mut Endpoint, calls: &mut Calls) -> Option<Instant> {
    calls.tx_poll_timeout += 1;
    ep.poll_timeout()
}

#[inline(never)]
fn icount_rx_poll_timeout(ep: &mut Endpoint, calls: &mut Calls) -> Option<Instant> {
    calls.rx_poll_timeout += 1;
    ep.poll_timeout()
}

impl Peer {
    /// Drain endpoint events (both sides) and note what the application must act on.
    fn take_events(&mut self) {
        while let Some((h, ev)) = self.ep.poll_event() {
            match ev {
                Event::Connected => {
                    self.conn = Some(h);
                    self.connected = true;
                }
                Event::ConnectionLost { reason } => {
                    self.error = Some(format!("connection lost: {reason}"));
                }
                Event::StreamReadable { id } => {
                    self.rx.readable.insert(id);
                }
                _ => {}
            }
        }
    }

    /// Sender: open this operation's streams, write as much as flow control accepts,
    /// finish each stream once all of it is written.
    fn tx_step(&mut self) {
        self.take_events();
        let Some(conn) = self.conn.and_then(|h| self.ep.connection_mut(h)) else {
            return;
        };
        while self.tx.to_open > 0 {
            let Some(id) = conn.open(Dir::Uni) else { break };
            self.tx.to_open -= 1;
            self.tx.writing.push((id, 0));
        }
        let per_stream = self.tx.per_stream;
        self.tx.writing.retain_mut(|(id, off)| {
            while *off < per_stream {
                match conn.write(*id, &self.data[*off..per_stream]) {
                    Ok(n) if n > 0 => *off += n,
                    _ => return true,
                }
            }
            conn.finish(*id).is_err()
        });
    }

    /// Receiver: accept new streams and read every readable one to its end.
    fn rx_step(&mut self) {
        self.take_events();
        let Some(conn) = self.conn.and_then(|h| self.ep.connection_mut(h)) else {
            return;
        };
        while conn.accept(Dir::Uni).is_some() {}
        while let Some(id) = self.rx.readable.pop_first() {
            loop {
                match conn.read(id, usize::MAX) {
                    Ok(Some(chunk)) => self.rx.received += chunk.len() as u64,
                    Ok(None) => {
                        self.rx.finished += 1;
                        break;
                    }
                    Err(ReadError::Blocked) => break,
                    Err(e) => {
                        self.error = Some(format!("read {id:?}: {e}"));
                        break;
                    }
                }
            }
        }
    }

    fn app(&mut self) {
        match self.role {
            Role::Tx => icount_tx_app(self),
            Role::Rx => icount_rx_app(self),
        }
    }
}

impl Node for Peer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, _to: SocketAddr, data: Vec<u8>) {
        let data = BytesMut::from(&data[..]);
        match self.role {
            Role::Tx => icount_tx_handle(&mut self.ep, &mut self.calls, now, from, data),
            Role::Rx => icount_rx_handle(&mut self.ep, &mut self.calls, now, from, data),
        }
        self.app();
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
        self.app();
        let t = match self.role {
            Role::Tx => icount_tx_poll_transmit(&mut self.ep, &mut self.calls, now, &mut self.buf),
            Role::Rx => icount_rx_poll_transmit(&mut self.ep, &mut self.calls, now, &mut self.buf),
        }?;
        let mut d = Datagram::new(self.addr, t.destination, self.buf[..t.size].to_vec());
        d.segment_size = t.segment_size;
        Some(d)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        match self.role {
            Role::Tx => icount_tx_poll_timeout(&mut self.ep, &mut self.calls),
            Role::Rx => icount_rx_poll_timeout(&mut self.ep, &mut self.calls),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.role {
            Role::Tx => icount_tx_timeout(&mut self.ep, &mut self.calls, now),
            Role::Rx => icount_rx_timeout(&mut self.ep, &mut self.calls, now),
        }
        self.app();
    }
}

/// A connected server (sender) and client (receiver) on a simulated link.
pub struct Transfer {
    sim: Sim,
    tx: NodeId,
    rx: NodeId,
    streams: usize,
}

fn server_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 4433))
}

fn client_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 50000))
}

impl Transfer {
    /// Connect the pair and run the warm-up operations; each later operation sends
    /// 1 MiB over `streams` new streams.
    pub fn new(streams: usize) -> anyhow::Result<Self> {
        let start = Instant::now();
        let (cert, key) = test_cert()?;
        let suites = CipherSuiteSelection::All;
        let server_crypto =
            quiver_proto::crypto::server_config(vec![cert], key, &[ALPN], suites, None)?;
        let client_crypto = quiver_proto::crypto::insecure_client_config(&[ALPN], suites, None)?;
        let transport = Arc::new(TransportConfig::default());
        let mut server_config = ServerConfig::new(Arc::new(server_crypto));
        server_config.transport = transport.clone();
        let mut client_config = ClientConfig::new(Arc::new(client_crypto));
        client_config.transport = transport;
        let ep_config = |seed| {
            Arc::new(EndpointConfig {
                rng_seed: Some(seed),
                ..EndpointConfig::default()
            })
        };
        let data = Bytes::from(
            (0..TRANSFER_BYTES as usize)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        let peer = |role, ep, addr| Peer {
            role,
            ep,
            addr,
            conn: None,
            connected: false,
            buf: Vec::new(),
            data: data.clone(),
            calls: Calls::default(),
            tx: TxApp::default(),
            rx: RxApp::default(),
            error: None,
        };
        let server = peer(
            Role::Tx,
            Endpoint::new(ep_config(1), Some(Arc::new(server_config))),
            server_addr(),
        );
        let mut client_ep = Endpoint::new(ep_config(2), None);
        let h = client_ep
            .connect(start, client_config, server_addr(), "localhost")
            .context("connect")?;
        let mut client = peer(Role::Rx, client_ep, client_addr());
        client.conn = Some(h);

        let mut sim = Sim::new(7, start);
        let tx = sim.add_node(server, vec![server_addr()])?;
        let rx = sim.add_node(client, vec![client_addr()])?;
        let link = LinkConfig::new()
            .rate_bps(1_000_000_000)
            .delay(Duration::from_millis(1))
            .unbounded_queue();
        sim.set_link_pair(tx, rx, link)?;
        let connected = |sim: &mut Sim| {
            let s = sim.node::<Peer>(tx).is_some_and(|p| p.connected);
            let c = sim.node::<Peer>(rx).is_some_and(|p| p.connected);
            s && c
        };
        sim.run_while(|sim| !connected(sim), Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("handshake: {e}"))?;
        let mut t = Transfer {
            sim,
            tx,
            rx,
            streams,
        };
        for _ in 0..WARMUP_OPS {
            t.op()?;
        }
        Ok(t)
    }

    /// Send 1 MiB over `streams` new streams and wait until the receiver read all of it.
    fn op(&mut self) -> anyhow::Result<u64> {
        let per_stream = TRANSFER_BYTES as usize / self.streams;
        let total = (per_stream * self.streams) as u64;
        let (tx, rx, streams) = (self.tx, self.rx, self.streams);
        {
            let peer = self.sim.node_mut::<Peer>(rx).context("receiver")?;
            peer.rx.received = 0;
            peer.rx.finished = 0;
        }
        {
            let peer = self.sim.node_mut::<Peer>(tx).context("sender")?;
            peer.tx.to_open = streams;
            peer.tx.per_stream = per_stream;
            // The borrow above made the simulator poll the sender: it starts at once.
        }
        let done = move |sim: &mut Sim| {
            sim.node::<Peer>(rx)
                .is_some_and(|p| p.rx.finished == streams && p.rx.received == total)
        };
        let result = self.sim.run_while(|sim| !done(sim), OP_BUDGET);
        for id in [tx, rx] {
            if let Some(e) = self.sim.node::<Peer>(id).and_then(|p| p.error.clone()) {
                bail!("transfer failed: {e}");
            }
        }
        result.map_err(|e| anyhow::anyhow!("transfer did not complete: {e}"))?;
        Ok(total)
    }

    /// Run `iters` operations; returns the bytes moved.
    pub fn run(mut self, iters: u64) -> anyhow::Result<u64> {
        let mut bytes = 0;
        for _ in 0..iters {
            bytes += self.op()?;
        }
        Ok(black_box(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_complete_on_one_and_on_many_streams() {
        for streams in [1, 100] {
            let t = Transfer::new(streams).unwrap();
            let moved = t.run(1).unwrap();
            assert!(moved > TRANSFER_BYTES - 100, "{streams} streams: {moved}");
        }
    }
}
