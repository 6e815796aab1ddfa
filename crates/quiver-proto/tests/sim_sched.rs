//! Stream schedulers end to end: a client uploads on classed streams over the simulator
//! and the server records when each stream's FIN arrives.

mod common;

use bytes::BytesMut;
use common::{client_addr, client_config, endpoint_config, server_addr, server_config};
use quiver_netem::sim::{Datagram, LinkConfig, Node, Sim};
use quiver_proto::config::TransportConfig;
use quiver_proto::connection::Event;
use quiver_proto::endpoint::{ConnectionHandle, Endpoint};
use quiver_proto::sched::{Deadline, SchedulerKind, StreamClass, DEADLINE_EXCEEDED_CODE};
use quiver_proto::{Dir, StreamId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the client uploads: (class, bytes), opened in this order at once.
type Script = Vec<(StreamClass, usize)>;

struct Uploader {
    ep: Endpoint,
    conn: ConnectionHandle,
    script: Script,
    opened: Vec<StreamId>,
    /// Bytes still to write per stream.
    todo: BTreeMap<StreamId, usize>,
    expired: Vec<StreamId>,
    buf: Vec<u8>,
}

struct Receiver {
    ep: Endpoint,
    /// FIN arrival time per stream, and resets.
    done: BTreeMap<StreamId, Instant>,
    reset: BTreeMap<StreamId, u64>,
    pending: std::collections::BTreeSet<StreamId>,
    buf: Vec<u8>,
}

impl Uploader {
    fn step(&mut self, now: Instant) {
        while let Some((_, ev)) = self.ep.poll_event() {
            if let Event::StreamExpired { id } = ev {
                self.expired.push(id);
                self.todo.remove(&id);
            }
        }
        let Some(conn) = self.ep.connection_mut(self.conn) else {
            return;
        };
        if conn.is_handshaking() {
            return;
        }
        if self.opened.is_empty() {
            for (class, size) in &self.script {
                let id = conn.open_with(now, Dir::Uni, class).expect("open");
                self.opened.push(id);
                self.todo.insert(id, *size);
            }
        }
        let chunk = vec![7u8; 4096];
        for (id, left) in self.todo.iter_mut() {
            while *left > 0 {
                match conn.write(*id, &chunk[..(*left).min(chunk.len())]) {
                    Ok(n) if n > 0 => *left -= n,
                    _ => break,
                }
            }
            if *left == 0 {
                let _ = conn.finish(*id);
            }
        }
        self.todo.retain(|_, left| *left > 0);
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
            while let Some(id) = conn.accept(Dir::Uni) {
                self.pending.insert(id);
            }
            let ids: Vec<StreamId> = self.pending.iter().copied().collect();
            for id in ids {
                loop {
                    match conn.read(id, usize::MAX) {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            self.done.insert(id, now);
                            self.pending.remove(&id);
                            break;
                        }
                        Err(quiver_proto::connection::ReadError::Reset(code)) => {
                            self.reset.insert(id, code.into_inner());
                            self.pending.remove(&id);
                            break;
                        }
                        Err(_) => break,
                    }
                }
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
                self.ep.poll_timeout()
            }
            fn handle_timeout(&mut self, now: Instant) {
                self.ep.handle_timeout(now);
                self.step(now);
            }
        }
    };
}
node_impl!(Uploader, client_addr());
node_impl!(Receiver, server_addr());

struct Outcome {
    opened: Vec<StreamId>,
    done: BTreeMap<StreamId, Instant>,
    reset: BTreeMap<StreamId, u64>,
    expired: Vec<StreamId>,
}

fn run(kind: SchedulerKind, script: Script, link: LinkConfig, budget: Duration) -> Outcome {
    let start = Instant::now();
    let mut sim = Sim::new(42, start);
    let transport = TransportConfig {
        scheduler: Arc::new(kind),
        ..TransportConfig::default()
    };
    let server = Receiver {
        ep: Endpoint::new(
            endpoint_config(1),
            Some(Arc::new(server_config(TransportConfig::default()))),
        ),
        done: BTreeMap::new(),
        reset: BTreeMap::new(),
        pending: Default::default(),
        buf: Vec::new(),
    };
    let mut ep = Endpoint::new(endpoint_config(2), None);
    let conn = ep
        .connect(start, client_config(transport), server_addr(), "localhost")
        .unwrap();
    let client = Uploader {
        ep,
        conn,
        script,
        opened: Vec::new(),
        todo: BTreeMap::new(),
        expired: Vec::new(),
        buf: Vec::new(),
    };
    let s = sim.add_node(server, vec![server_addr()]).unwrap();
    let c = sim.add_node(client, vec![client_addr()]).unwrap();
    sim.set_link_pair(s, c, link).unwrap();
    sim.run_for(budget);
    let server = sim.node::<Receiver>(s).unwrap();
    let client = sim.node::<Uploader>(c).unwrap();
    Outcome {
        opened: client.opened.clone(),
        done: server.done.clone(),
        reset: server.reset.clone(),
        expired: client.expired.clone(),
    }
}

fn slow_link() -> LinkConfig {
    LinkConfig::new()
        .rate_bps(2_000_000)
        .delay(Duration::from_millis(20))
        .queue_limit_bytes(64 * 1024)
}

fn low(size: usize) -> (StreamClass, usize) {
    (StreamClass::new().with_priority(5), size)
}
fn high(size: usize) -> (StreamClass, usize) {
    (StreamClass::new().with_priority(0), size)
}

#[test]
fn abs_serves_the_urgent_stream_first_fcfs_does_not() {
    let script = || vec![low(200_000), low(200_000), high(20_000)];
    let abs = run(
        SchedulerKind::Abs,
        script(),
        slow_link(),
        Duration::from_secs(10),
    );
    let fcfs = run(
        SchedulerKind::Fcfs,
        script(),
        slow_link(),
        Duration::from_secs(10),
    );
    for o in [&abs, &fcfs] {
        assert_eq!(o.done.len(), 3, "all streams complete");
    }
    let (a, b, h) = (abs.opened[0], abs.opened[1], abs.opened[2]);
    assert!(abs.done[&h] < abs.done[&a], "ABS: urgent before bulk");
    assert!(abs.done[&h] < abs.done[&b]);
    // FCFS drains in order of readiness: the urgent stream waits for both bulk streams.
    assert!(fcfs.done[&h] > fcfs.done[&a]);
    assert!(fcfs.done[&h] > fcfs.done[&b]);
    assert!(abs.done[&h] < fcfs.done[&h]);
}

#[test]
fn hard_edf_drops_a_stream_that_cannot_meet_its_deadline() {
    // 400 KB cannot cross a 2 Mbit/s link in 300 ms: the stream is reset with the
    // documented code and the application is told; the others complete.
    let d = |ms| StreamClass::new().with_deadline(Deadline::AfterOpen(Duration::from_millis(ms)));
    let script = vec![(d(5_000), 50_000), (d(300), 400_000), (d(5_000), 50_000)];
    let o = run(
        SchedulerKind::Edf { drop: true },
        script,
        slow_link(),
        Duration::from_secs(10),
    );
    let late = o.opened[1];
    assert_eq!(o.expired, vec![late]);
    assert_eq!(
        o.reset.get(&late),
        Some(&DEADLINE_EXCEEDED_CODE.into_inner())
    );
    assert!(o.done.contains_key(&o.opened[0]) && o.done.contains_key(&o.opened[2]));
}

#[test]
fn soft_edf_only_reorders() {
    let d = |ms| StreamClass::new().with_deadline(Deadline::AfterOpen(Duration::from_millis(ms)));
    let script = vec![(d(5_000), 100_000), (d(200), 100_000)];
    let o = run(
        SchedulerKind::Edf { drop: false },
        script,
        slow_link(),
        Duration::from_secs(10),
    );
    assert!(o.expired.is_empty() && o.reset.is_empty());
    assert!(
        o.done[&o.opened[1]] < o.done[&o.opened[0]],
        "earlier deadline first"
    );
}

#[test]
fn round_robin_interleaves() {
    let script = vec![low(100_000), low(100_000)];
    let rr = run(
        SchedulerKind::RoundRobin,
        script.clone(),
        slow_link(),
        Duration::from_secs(10),
    );
    let fcfs = run(
        SchedulerKind::Fcfs,
        script,
        slow_link(),
        Duration::from_secs(10),
    );
    let gap = |o: &Outcome| {
        let (a, b) = (o.done[&o.opened[0]], o.done[&o.opened[1]]);
        if a > b {
            a - b
        } else {
            b - a
        }
    };
    // Interleaved streams finish close together; FCFS finishes them one after the other.
    assert!(
        gap(&rr) < gap(&fcfs) / 4,
        "rr {:?} fcfs {:?}",
        gap(&rr),
        gap(&fcfs)
    );
}
