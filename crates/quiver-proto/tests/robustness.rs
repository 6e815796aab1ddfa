//! "No panic on arbitrary input": random and mutated datagrams fed to a server endpoint,
//! to a client endpoint in the middle of its handshake, and to both ends of an
//! established connection (public API only).
//!
//! The mutated inputs are copies of real datagrams captured from a handshake and a
//! transfer, with bytes flipped, inserted, deleted, overwritten or the datagram
//! truncated. After each input the endpoints are driven (transmit, timers, events) on a
//! virtual clock. Established connections must then either still carry a transfer or have
//! closed with a transport error; nothing may panic, hang, or leak connections.

mod common;

use bytes::BytesMut;
use common::{client_addr, client_config, endpoint_config, server_addr, server_config};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use quiver_proto::config::{ClientConfig, ServerConfig, TransportConfig};
use quiver_proto::connection::{ConnectionError, Event};
use quiver_proto::endpoint::{ConnectionHandle, DatagramEvent, Endpoint};
use quiver_proto::{Dir, StreamId};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const CLIENT_SEED: u64 = 0x005e_edc1;
const SERVER_SEED: u64 = 0x005e_ed5e;
/// Safety net against livelock: a drive loop never takes more steps than this.
const MAX_STEPS: usize = 20_000;

fn transport() -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(Duration::from_secs(5)),
        stream_receive_window: 64 * 1024,
        ..TransportConfig::default()
    }
}

/// Certificates are expensive to generate: one server and client config for all cases.
fn configs() -> &'static (Arc<ServerConfig>, ClientConfig) {
    static CONFIGS: OnceLock<(Arc<ServerConfig>, ClientConfig)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        (
            Arc::new(server_config(transport())),
            client_config(transport()),
        )
    })
}

fn new_server() -> Endpoint {
    Endpoint::new(endpoint_config(SERVER_SEED), Some(configs().0.clone()))
}

fn new_client(now: Instant) -> (Endpoint, ConnectionHandle) {
    let mut ep = Endpoint::new(endpoint_config(CLIENT_SEED), None);
    let h = ep
        .connect(now, configs().1.clone(), server_addr(), "localhost")
        .expect("connect");
    (ep, h)
}

/// Which endpoint a datagram goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Client,
    Server,
}

/// A client and a server endpoint connected back to back, with a tiny application: the
/// server echoes every bidirectional stream back, the client checks the echo.
struct Net {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    ch: ConnectionHandle,
    buf: Vec<u8>,
    /// Every datagram exchanged, when capturing.
    log: Vec<(To, Vec<u8>)>,
    capture: bool,
    client_lost: Option<ConnectionError>,
    server_lost: Option<ConnectionError>,
    client_connected: bool,
    /// Server side: streams being echoed (data read so far, bytes written back).
    echo: Vec<(ConnectionHandle, StreamId, Vec<u8>, usize, bool)>,
    /// Client side: echoed data received per stream, and whether FIN arrived.
    replies: Vec<(StreamId, Vec<u8>, bool)>,
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        let (client, ch) = new_client(now);
        Net {
            now,
            client,
            server: new_server(),
            ch,
            buf: Vec::new(),
            log: Vec::new(),
            capture: false,
            client_lost: None,
            server_lost: None,
            client_connected: false,
            echo: Vec::new(),
            replies: Vec::new(),
        }
    }

    /// A pair that completed its handshake and one echo transfer.
    fn established(capture: bool) -> Net {
        let mut n = Net::new();
        n.capture = capture;
        n.drive(Duration::from_secs(2));
        assert!(n.client_connected, "handshake failed");
        assert!(n.transfer(2_000, Duration::from_secs(2)), "warm-up failed");
        n
    }

    fn deliver(&mut self, to: To, data: &[u8]) {
        let now = self.now;
        let d = BytesMut::from(data);
        match to {
            To::Server => {
                let _ = self.server.handle(now, client_addr(), None, None, d);
            }
            To::Client => {
                let _ = self.client.handle(now, server_addr(), None, None, d);
            }
        }
    }

    fn is_dead(&self) -> bool {
        self.client_lost.is_some() || self.server_lost.is_some()
    }

    /// Run the application logic of both sides.
    fn apps(&mut self) {
        while let Some((_, ev)) = self.client.poll_event() {
            match ev {
                Event::Connected => self.client_connected = true,
                Event::ConnectionLost { reason } => {
                    self.client_lost.get_or_insert(reason);
                }
                _ => {}
            }
        }
        let mut server_conns = Vec::new();
        while let Some((h, ev)) = self.server.poll_event() {
            if let Event::ConnectionLost { reason } = ev {
                self.server_lost.get_or_insert(reason);
            }
            server_conns.push(h);
        }
        server_conns.extend(self.server.connection_handles());
        server_conns.sort();
        server_conns.dedup();
        for h in server_conns {
            let Some(conn) = self.server.connection_mut(h) else {
                continue;
            };
            while let Some(id) = conn.accept(Dir::Bi) {
                self.echo.push((h, id, Vec::new(), 0, false));
            }
            for (eh, id, data, written, fin) in self.echo.iter_mut() {
                if *eh != h {
                    continue;
                }
                while !*fin {
                    match conn.read(*id, usize::MAX) {
                        Ok(Some(chunk)) => data.extend_from_slice(&chunk),
                        Ok(None) => *fin = true,
                        Err(_) => break,
                    }
                }
                while *written < data.len() {
                    match conn.write(*id, &data[*written..]) {
                        Ok(n) if n > 0 => *written += n,
                        _ => break,
                    }
                }
                if *fin && *written == data.len() {
                    let _ = conn.finish(*id);
                }
            }
            self.echo
                .retain(|(eh, _, d, w, f)| *eh != h || !(*f && *w == d.len()));
        }
        if let Some(conn) = self.client.connection_mut(self.ch) {
            for (id, data, fin) in self.replies.iter_mut() {
                while !*fin {
                    match conn.read(*id, usize::MAX) {
                        Ok(Some(chunk)) => data.extend_from_slice(&chunk),
                        Ok(None) => *fin = true,
                        Err(_) => break,
                    }
                }
            }
        }
    }

    /// Move datagrams both ways until both sides are quiet.
    fn exchange(&mut self) {
        for _ in 0..MAX_STEPS {
            let now = self.now;
            let mut any = false;
            if let Some(t) = self.client.poll_transmit(now, 1, &mut self.buf) {
                let d = self.buf[..t.size].to_vec();
                if self.capture {
                    self.log.push((To::Server, d.clone()));
                }
                self.deliver(To::Server, &d);
                any = true;
            }
            if let Some(t) = self.server.poll_transmit(now, 1, &mut self.buf) {
                let d = self.buf[..t.size].to_vec();
                if self.capture {
                    self.log.push((To::Client, d.clone()));
                }
                self.deliver(To::Client, &d);
                any = true;
            }
            self.apps();
            if !any {
                return;
            }
        }
        panic!("endpoints never stopped transmitting");
    }

    /// Exchange and fire timers for `budget` of virtual time, or until `done` holds.
    fn drive_until(&mut self, budget: Duration, mut done: impl FnMut(&Net) -> bool) {
        let end = self.now + budget;
        for _ in 0..MAX_STEPS {
            self.exchange();
            if done(self) {
                return;
            }
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.client.handle_timeout(now);
                    self.server.handle_timeout(now);
                    self.apps();
                }
                _ => {
                    self.now = self.now.max(end);
                    return;
                }
            }
        }
        panic!("timer loop did not converge");
    }

    fn drive(&mut self, budget: Duration) {
        self.drive_until(budget, |_| false);
    }

    /// Send `len` bytes on a new stream and wait for the echo. Returns whether the echo
    /// arrived intact.
    fn transfer(&mut self, len: usize, budget: Duration) -> bool {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let Some(conn) = self.client.connection_mut(self.ch) else {
            return false;
        };
        let Some(id) = conn.open(Dir::Bi) else {
            return false;
        };
        let mut off = 0;
        while off < len {
            match conn.write(id, &payload[off..]) {
                Ok(n) if n > 0 => off += n,
                _ => return false, // the window is larger than any payload used here
            }
        }
        if conn.finish(id).is_err() {
            return false;
        }
        self.replies.push((id, Vec::new(), false));
        self.drive_until(budget, |n| {
            n.is_dead() || n.replies.iter().any(|(i, _, f)| *i == id && *f)
        });
        self.replies
            .iter()
            .any(|(i, d, f)| *i == id && *f && *d == payload)
    }
}

/// Datagrams of a real handshake and transfer, for mutation.
fn captured() -> &'static Vec<(To, Vec<u8>)> {
    static LOG: OnceLock<Vec<(To, Vec<u8>)>> = OnceLock::new();
    LOG.get_or_init(|| {
        let mut n = Net::established(true);
        assert!(n.transfer(20_000, Duration::from_secs(2)));
        assert!(n.log.len() > 10);
        n.log
    })
}

fn captured_to(to: To) -> Vec<Vec<u8>> {
    captured()
        .iter()
        .filter(|(t, _)| *t == to)
        .map(|(_, d)| d.clone())
        .collect()
}

/// One edit of a datagram; positions are taken modulo the length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Overwrite(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Overwrite(i, v)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut d: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = d.len().max(1);
        match m {
            Mutation::Flip(i, bit) => {
                if let Some(b) = d.get_mut(i % len) {
                    *b ^= 1 << bit;
                }
            }
            Mutation::Overwrite(i, v) => {
                if let Some(b) = d.get_mut(i % len) {
                    *b = *v;
                }
            }
            Mutation::Insert(i, v) => {
                let at = i % (d.len() + 1);
                d.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(d.len());
                if at < end {
                    d.drain(at..end);
                }
            }
            Mutation::Truncate(n) => d.truncate(n % len),
        }
    }
    d
}

/// Drive a lone endpoint (its transmissions go nowhere) until its connections are gone.
fn drive_alone(ep: &mut Endpoint, mut now: Instant, budget: Duration) {
    let end = now + budget;
    let mut buf = Vec::new();
    for _ in 0..MAX_STEPS {
        let mut sent = 0;
        while ep.poll_transmit(now, 1, &mut buf).is_some() {
            sent += 1;
            assert!(sent < MAX_STEPS, "endless transmissions");
        }
        while ep.poll_event().is_some() {}
        match ep.poll_timeout() {
            Some(t) if t <= end => {
                now = now.max(t);
                ep.handle_timeout(now);
            }
            _ => break,
        }
    }
    while ep.poll_event().is_some() {}
}

/// A datagram shaped like a client Initial (version 1, ≥ 1200 bytes) with random
/// contents, so that it gets past the endpoint's stateless checks into a connection.
fn initial_shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 8..=20),
        proptest::collection::vec(any::<u8>(), 0..=20),
        proptest::collection::vec(any::<u8>(), 0..300),
        1200usize..1500,
    )
        .prop_map(|(first, dcid, scid, body, len)| {
            let mut d = vec![0xc0 | (first & 0x0f)];
            d.extend_from_slice(&1u32.to_be_bytes());
            d.push(dcid.len() as u8);
            d.extend_from_slice(&dcid);
            d.push(scid.len() as u8);
            d.extend_from_slice(&scid);
            d.extend_from_slice(&body);
            d.resize(len, 0);
            d
        })
}

fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    }
}

/// Check the outcome of an established connection after a bad input: it still works,
/// or it was closed with a transport error (by us or by the peer), never silently.
fn assert_works_or_closed(n: &mut Net, input: &str) {
    if !n.is_dead() {
        n.drive(Duration::from_millis(200));
    }
    let ok = !n.is_dead() && n.transfer(5_000, Duration::from_secs(3));
    if ok {
        return;
    }
    // Give a closing side time to tell the other one.
    n.drive(Duration::from_secs(1));
    let reasons = [n.client_lost.clone(), n.server_lost.clone()];
    assert!(
        reasons.iter().flatten().any(|r| matches!(
            r,
            ConnectionError::TransportError(_) | ConnectionError::ConnectionClosed { .. }
        )),
        "{input}: transfer failed without a transport-error close: {reasons:?}"
    );
}

proptest! {
    #![proptest_config(config(128, 1))]

    #[test]
    fn random_bytes_to_server(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let now = Instant::now();
        let mut server = new_server();
        let _ = server.handle(now, client_addr(), None, None, BytesMut::from(&data[..]));
        drive_alone(&mut server, now, Duration::from_secs(60));
        prop_assert_eq!(server.connection_count(), 0);
    }

    #[test]
    fn initial_shaped_garbage_to_server(data in initial_shaped()) {
        let now = Instant::now();
        let mut server = new_server();
        let ev = server.handle(now, client_addr(), None, None, BytesMut::from(&data[..]));
        prop_assert!(!matches!(ev, Some(DatagramEvent::Known(_))));
        drive_alone(&mut server, now, Duration::from_secs(60));
        // A connection created for garbage must not outlive its handshake timeout.
        prop_assert_eq!(server.connection_count(), 0);
    }
}

proptest! {
    #![proptest_config(config(96, 2))]

    #[test]
    fn mutated_client_datagrams_to_fresh_server(
        idx in any::<usize>(),
        prefix in any::<bool>(),
        muts in proptest::collection::vec(mutation(), 1..5),
    ) {
        let sent = captured_to(To::Server);
        let now = Instant::now();
        let mut server = new_server();
        if prefix {
            // The genuine first Initial, so later packets reach a live connection.
            let _ = server.handle(now, client_addr(), None, None, BytesMut::from(&sent[0][..]));
        }
        let d = mutate(sent[idx % sent.len()].clone(), &muts);
        let _ = server.handle(now, client_addr(), None, None, BytesMut::from(&d[..]));
        drive_alone(&mut server, now, Duration::from_secs(60));
        prop_assert_eq!(server.connection_count(), 0);
    }

    #[test]
    fn mutated_server_datagrams_to_handshaking_client(
        idx in any::<usize>(),
        muts in proptest::collection::vec(mutation(), 0..5),
        random in proptest::collection::vec(any::<u8>(), 0..1300),
        use_random in proptest::bool::weighted(0.2),
    ) {
        // The seeded client picks the same connection IDs as in the capture, so the
        // captured server datagrams route to its connection.
        let now = Instant::now();
        let (mut client, h) = new_client(now);
        let mut buf = Vec::new();
        while client.poll_transmit(now, 1, &mut buf).is_some() {}
        let d = if use_random {
            random
        } else {
            let recv = captured_to(To::Client);
            mutate(recv[idx % recv.len()].clone(), &muts)
        };
        let _ = client.handle(now, server_addr(), None, None, BytesMut::from(&d[..]));
        if let Some(c) = client.connection(h) {
            // Nothing in a forged datagram may complete the handshake.
            prop_assert!(c.is_handshaking() || c.is_closed());
        }
        drive_alone(&mut client, now, Duration::from_secs(60));
        prop_assert_eq!(client.connection_count(), 0);
    }
}

proptest! {
    #![proptest_config(config(48, 3))]

    #[test]
    fn mutated_datagrams_to_established_connection(
        to_server in any::<bool>(),
        idx in any::<usize>(),
        muts in proptest::collection::vec(mutation(), 0..4),
        count in 1usize..4,
    ) {
        let mut n = Net::established(true);
        let to = if to_server { To::Server } else { To::Client };
        // This pair's own traffic: valid CIDs and keys, so mutations hit the
        // connection's packet and frame parsers instead of the endpoint's routing.
        let own: Vec<Vec<u8>> = n
            .log
            .iter()
            .filter(|(t, _)| *t == to)
            .map(|(_, d)| d.clone())
            .collect();
        for k in 0..count {
            let d = mutate(own[(idx + k) % own.len()].clone(), &muts);
            n.deliver(to, &d);
            n.apps();
        }
        assert_works_or_closed(&mut n, &format!("{to:?} {muts:?}"));
    }

    #[test]
    fn random_short_packets_to_established_connection(
        to_server in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..1300),
        first in any::<u8>(),
    ) {
        let mut n = Net::established(true);
        let to = if to_server { To::Server } else { To::Client };
        // A short header with the DCID of a genuine packet of that direction, then
        // random bytes: reaches the connection, fails authentication.
        let genuine = n
            .log
            .iter()
            .rev()
            .find(|(t, d)| *t == to && d[0] & 0x80 == 0)
            .map(|(_, d)| d.clone())
            .expect("a short-header packet");
        let mut d = vec![0x40 | (first & 0x3f)];
        d.extend_from_slice(&genuine[1..9]);
        d.extend_from_slice(&body);
        n.deliver(to, &d);
        assert_works_or_closed(&mut n, "random short packet");
        // Random bytes cannot authenticate: the connection must be unaffected.
        prop_assert!(!n.is_dead(), "{:?} {:?}", n.client_lost, n.server_lost);
    }
}

#[test]
fn replayed_handshake_does_not_disturb_established_connection() {
    let mut n = Net::established(true);
    let log = n.log.clone();
    for (to, d) in log.iter().take(12) {
        n.deliver(*to, d);
    }
    n.drive(Duration::from_millis(100));
    assert!(!n.is_dead(), "{:?} {:?}", n.client_lost, n.server_lost);
    assert!(n.transfer(10_000, Duration::from_secs(3)));
}

#[test]
fn empty_and_tiny_datagrams_are_ignored() {
    let mut n = Net::established(false);
    for len in 0..64 {
        let d = vec![0x40u8; len];
        n.deliver(To::Server, &d);
        n.deliver(To::Client, &d);
        let long = vec![0xc0u8; len];
        n.deliver(To::Server, &long);
        n.deliver(To::Client, &long);
    }
    assert!(n.transfer(1_000, Duration::from_secs(3)));
    assert!(!n.is_dead());
}
