//! Datagram flows scheduled with the streams: a client sends bulk stream data, a bulk
//! datagram flow and a small periodic "urgent" datagram flow over a slow simulated link;
//! the server records when each urgent datagram arrives. Under strict priority (ABS) the
//! urgent flow is not starved by the bulk traffic; under FCFS (the urgent flow became
//! ready after the bulk stream) it is, which shows that the scheduler, not FIFO order,
//! decides.

mod common;

use bytes::{Bytes, BytesMut};
use common::{client_addr, client_config, endpoint_config, server_addr, server_config};
use quiver_netem::sim::{Datagram, LinkConfig, Node, Sim};
use quiver_proto::config::TransportConfig;
use quiver_proto::connection::DatagramFlowId;
use quiver_proto::endpoint::{ConnectionHandle, Endpoint};
use quiver_proto::sched::{SchedulerKind, StreamClass};
use quiver_proto::{Dir, StreamId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Urgent datagrams: one every this long.
const URGENT_EVERY: Duration = Duration::from_millis(20);
/// Size of the bulk datagrams.
const BULK_DATAGRAM: usize = 1000;

struct Sender {
    ep: Endpoint,
    conn: ConnectionHandle,
    urgent_class: StreamClass,
    bulk_class: StreamClass,
    flows: Option<(DatagramFlowId, DatagramFlowId, StreamId)>,
    /// Send time of each urgent datagram, by sequence number.
    sent: Vec<Instant>,
    next_urgent: Option<Instant>,
    stop_at: Instant,
    buf: Vec<u8>,
}

struct Receiver {
    ep: Endpoint,
    /// Arrival time of each urgent datagram, by sequence number.
    arrived: BTreeMap<u32, Instant>,
    bulk_datagrams: u64,
    stream_bytes: u64,
    buf: Vec<u8>,
}

impl Sender {
    fn step(&mut self, now: Instant) {
        while self.ep.poll_event().is_some() {}
        let Some(conn) = self.ep.connection_mut(self.conn) else {
            return;
        };
        if conn.is_handshaking() {
            return;
        }
        let (urgent, bulk, stream) = match self.flows {
            Some(f) => f,
            None => {
                // The bulk stream first, so that FCFS serves it before the flows.
                let stream = conn
                    .open_with(now, Dir::Uni, &self.bulk_class)
                    .expect("open");
                let bulk = conn.open_datagram_flow(&self.bulk_class);
                let urgent = conn.open_datagram_flow(&self.urgent_class);
                self.flows = Some((urgent, bulk, stream));
                self.next_urgent = Some(now);
                (urgent, bulk, stream)
            }
        };
        if now >= self.stop_at {
            return;
        }
        // Keep the bulk stream and the bulk flow saturated.
        let chunk = [7u8; 4096];
        while matches!(conn.write(stream, &chunk), Ok(n) if n > 0) {}
        for _ in 0..8 {
            conn.send_datagram_on(bulk, Bytes::from(vec![b'B'; BULK_DATAGRAM]))
                .expect("bulk datagram");
        }
        while let Some(t) = self.next_urgent.filter(|t| *t <= now) {
            let seq = self.sent.len() as u32;
            let mut d = vec![b'U'];
            d.extend_from_slice(&seq.to_be_bytes());
            d.resize(100, 0);
            conn.send_datagram_on(urgent, Bytes::from(d))
                .expect("urgent datagram");
            self.sent.push(t);
            self.next_urgent = Some(t + URGENT_EVERY);
        }
    }
}

impl Receiver {
    fn step(&mut self, now: Instant) {
        while self.ep.poll_event().is_some() {}
        let handles: Vec<_> = self.ep.connection_handles().collect();
        for h in handles {
            let Some(conn) = self.ep.connection_mut(h) else {
                continue;
            };
            while let Some(d) = conn.recv_datagram() {
                match d.first() {
                    Some(b'U') if d.len() >= 5 => {
                        let seq = u32::from_be_bytes([d[1], d[2], d[3], d[4]]);
                        self.arrived.entry(seq).or_insert(now);
                    }
                    _ => self.bulk_datagrams += 1,
                }
            }
            while conn.accept(Dir::Uni).is_some() {}
            // Drain every stream (only the bulk one exists).
            let id = StreamId::new(quiver_proto::Side::Client, Dir::Uni, 0);
            while let Ok(Some(chunk)) = conn.read(id, usize::MAX) {
                self.stream_bytes += chunk.len() as u64;
            }
        }
    }
}

macro_rules! node_impl {
    ($t:ty, $addr:expr) => {
        impl Node for $t {
            fn handle_datagram(
                &mut self,
                now: Instant,
                from: SocketAddr,
                _: SocketAddr,
                d: Vec<u8>,
            ) {
                self.ep
                    .handle(now, from, None, None, BytesMut::from(&d[..]));
                self.step(now);
            }
            fn poll_transmit(&mut self, now: Instant) -> Option<Datagram> {
                self.step(now);
                let t = self.ep.poll_transmit(now, 1, &mut self.buf)?;
                Some(Datagram::new(
                    $addr,
                    t.destination,
                    self.buf[..t.size].to_vec(),
                ))
            }
            fn poll_timeout(&mut self) -> Option<Instant> {
                // The sender also wakes for its next urgent datagram.
                let own = self.own_timeout();
                match (self.ep.poll_timeout(), own) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            fn handle_timeout(&mut self, now: Instant) {
                self.ep.handle_timeout(now);
                self.step(now);
            }
        }
    };
}
node_impl!(Sender, client_addr());
node_impl!(Receiver, server_addr());

impl Sender {
    fn own_timeout(&self) -> Option<Instant> {
        self.next_urgent.filter(|t| *t < self.stop_at)
    }
}
impl Receiver {
    fn own_timeout(&self) -> Option<Instant> {
        None
    }
}

struct Outcome {
    /// Latency of each urgent datagram sent before the bulk traffic stopped (None: lost).
    latencies: Vec<Option<Duration>>,
    bulk_datagrams: u64,
    stream_bytes: u64,
}

fn run(kind: SchedulerKind, urgent: StreamClass, bulk: StreamClass) -> Outcome {
    let start = Instant::now();
    let mut sim = Sim::new(7, start);
    let transport = TransportConfig {
        scheduler: Arc::new(kind),
        datagram_send_buffer_size: 64 * 1024,
        ..TransportConfig::default()
    };
    let server = Receiver {
        ep: Endpoint::new(
            endpoint_config(1),
            Some(Arc::new(server_config(TransportConfig::default()))),
        ),
        arrived: BTreeMap::new(),
        bulk_datagrams: 0,
        stream_bytes: 0,
        buf: Vec::new(),
    };
    let mut ep = Endpoint::new(endpoint_config(2), None);
    let conn = ep
        .connect(start, client_config(transport), server_addr(), "localhost")
        .expect("connect");
    let stop_at = start + Duration::from_secs(3);
    let client = Sender {
        ep,
        conn,
        urgent_class: urgent,
        bulk_class: bulk,
        flows: None,
        sent: Vec::new(),
        next_urgent: None,
        stop_at,
        buf: Vec::new(),
    };
    let s = sim.add_node(server, vec![server_addr()]).expect("server");
    let c = sim.add_node(client, vec![client_addr()]).expect("client");
    let link = LinkConfig::new()
        .rate_bps(2_000_000)
        .delay(Duration::from_millis(20))
        .queue_limit_bytes(64 * 1024);
    sim.set_link_pair(s, c, link).expect("link");
    sim.run_for(Duration::from_secs(4));
    let server = sim.node::<Receiver>(s).expect("server");
    let client = sim.node::<Sender>(c).expect("client");
    // Only the urgent datagrams sent while the bulk traffic ran.
    let latencies = client
        .sent
        .iter()
        .enumerate()
        .filter(|(_, t)| **t + Duration::from_millis(500) < stop_at)
        .map(|(seq, t)| server.arrived.get(&(seq as u32)).map(|a| *a - *t))
        .collect();
    Outcome {
        latencies,
        bulk_datagrams: server.bulk_datagrams,
        stream_bytes: server.stream_bytes,
    }
}

fn delivered(o: &Outcome) -> f64 {
    o.latencies.iter().filter(|l| l.is_some()).count() as f64 / o.latencies.len().max(1) as f64
}

fn median_latency(o: &Outcome) -> Duration {
    let mut l: Vec<Duration> = o
        .latencies
        .iter()
        .map(|l| l.unwrap_or(Duration::MAX))
        .collect();
    l.sort();
    l[l.len() / 2]
}

#[test]
fn urgent_datagram_flow_is_not_starved_under_abs_but_is_under_fcfs() {
    let urgent = StreamClass::new().with_priority(0);
    let bulk = StreamClass::new().with_priority(5);
    let abs = run(SchedulerKind::Abs, urgent, bulk);
    let fcfs = run(SchedulerKind::Fcfs, urgent, bulk);
    eprintln!(
        "abs: delivered {:.2}, median {:?}, bulk datagrams {}, stream {} B; \
         fcfs: delivered {:.2}, median {:?}, bulk datagrams {}, stream {} B",
        delivered(&abs),
        median_latency(&abs),
        abs.bulk_datagrams,
        abs.stream_bytes,
        delivered(&fcfs),
        median_latency(&fcfs),
        fcfs.bulk_datagrams,
        fcfs.stream_bytes
    );
    assert!(abs.latencies.len() > 100);
    // Strict priority: every urgent datagram gets through, within a few RTTs (the
    // bottleneck queue filled by the bulk traffic still delays it).
    assert!(delivered(&abs) >= 0.99, "abs delivered {}", delivered(&abs));
    assert!(median_latency(&abs) < Duration::from_millis(400));
    // The bulk traffic still moved (priority, not exclusion).
    assert!(abs.stream_bytes > 0 || abs.bulk_datagrams > 0);
    // FCFS: the bulk stream, ready first and never drained, takes the whole link.
    assert!(
        delivered(&fcfs) < 0.5,
        "fcfs delivered {}",
        delivered(&fcfs)
    );
}

#[test]
fn round_robin_shares_between_stream_and_datagram_flows() {
    let class = StreamClass::default();
    let rr = run(SchedulerKind::RoundRobin, class, class);
    eprintln!(
        "rr: delivered {:.2}, median {:?}, bulk datagrams {}, stream {} B",
        delivered(&rr),
        median_latency(&rr),
        rr.bulk_datagrams,
        rr.stream_bytes
    );
    // Each of the three takes turns: the bulk stream and the bulk flow both progress,
    // and the urgent flow gets its turn every round.
    assert!(rr.stream_bytes > 100_000, "{}", rr.stream_bytes);
    assert!(rr.bulk_datagrams > 100, "{}", rr.bulk_datagrams);
    assert!(delivered(&rr) >= 0.95, "rr delivered {}", delivered(&rr));
}
