//! Address validation (RFC 9000 §8.1): Retry, NEW_TOKEN token reuse, invalid tokens,
//! the client's Retry rules and the server's 3× anti-amplification limit.
//!
//! A client and a server endpoint exchange datagrams in memory on a virtual clock
//! ([`Net`]); a test can hold, drop, rewrite or inject datagrams on the way.

mod common;

use bytes::BytesMut;
use common::{client_addr, client_config, endpoint_config, server_addr, server_config};
use quiver_proto::config::{ClientConfig, ServerConfig, TransportConfig};
use quiver_proto::connection::{ConnectionError, Event};
use quiver_proto::endpoint::{ConnectionHandle, Endpoint};
use quiver_proto::packet;
use quiver_proto::{ConnectionId, Dir, TransportErrorCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the network does with a datagram.
enum Fate {
    Deliver,
    Drop,
    /// Deliver with this source address instead.
    From(SocketAddr),
}

type Filter = Box<dyn FnMut(Instant, bool, &[u8]) -> Fate>;

/// Two endpoints back to back with a virtual clock. Datagrams pass through `filter`
/// (arguments: time, whether the server sent it, bytes).
struct Net {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    buf: Vec<u8>,
    filter: Filter,
    /// Datagrams sent by the server (before the filter), and by the client.
    server_sent: Vec<Vec<u8>>,
    client_sent: Vec<Vec<u8>>,
    /// Held datagrams: (deliver at, from server, from address, bytes).
    delayed: Vec<(Instant, bool, SocketAddr, Vec<u8>)>,
    client_events: Vec<(ConnectionHandle, Event)>,
    server_events: Vec<(ConnectionHandle, Event)>,
}

impl Net {
    fn new(server: ServerConfig) -> Net {
        Net::with_client(server, Endpoint::new(endpoint_config(2), None))
    }

    fn with_client(server: ServerConfig, client: Endpoint) -> Net {
        Net {
            now: Instant::now(),
            client,
            server: Endpoint::new(endpoint_config(1), Some(Arc::new(server))),
            buf: Vec::new(),
            filter: Box::new(|_, _, _| Fate::Deliver),
            server_sent: Vec::new(),
            client_sent: Vec::new(),
            delayed: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    fn connect(&mut self, config: ClientConfig) -> ConnectionHandle {
        self.client
            .connect(self.now, config, server_addr(), "localhost")
            .expect("connect")
    }

    /// Hold a datagram until `at`.
    fn delay(&mut self, at: Instant, from_server: bool, data: Vec<u8>) {
        let from = if from_server {
            server_addr()
        } else {
            client_addr()
        };
        self.delayed.push((at, from_server, from, data));
    }

    fn deliver(&mut self, from_server: bool, from: SocketAddr, data: &[u8]) {
        let d = BytesMut::from(data);
        if from_server {
            self.client.handle(self.now, from, None, None, d);
        } else {
            self.server.handle(self.now, from, None, None, d);
        }
    }

    /// Move every pending datagram; returns whether anything was sent.
    fn exchange(&mut self) -> bool {
        let mut moved = false;
        for from_server in [false, true] {
            loop {
                let ep = if from_server {
                    &mut self.server
                } else {
                    &mut self.client
                };
                let Some(t) = ep.poll_transmit(self.now, 1, &mut self.buf) else {
                    break;
                };
                moved = true;
                let data = self.buf[..t.size].to_vec();
                if from_server {
                    self.server_sent.push(data.clone());
                } else {
                    self.client_sent.push(data.clone());
                }
                let from = if from_server {
                    server_addr()
                } else {
                    client_addr()
                };
                match (self.filter)(self.now, from_server, &data) {
                    Fate::Deliver => self.deliver(from_server, from, &data),
                    Fate::Drop => {}
                    Fate::From(a) => self.deliver(from_server, a, &data),
                }
            }
        }
        let now = self.now;
        let due: Vec<_> = self
            .delayed
            .iter()
            .filter(|d| d.0 <= now)
            .cloned()
            .collect();
        self.delayed.retain(|d| d.0 > now);
        for (_, from_server, from, data) in due {
            self.deliver(from_server, from, &data);
            moved = true;
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
        moved
    }

    /// Run for `d` of virtual time (or until nothing is left to do).
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            if self.exchange() {
                continue;
            }
            let next = [
                self.client.poll_timeout(),
                self.server.poll_timeout(),
                self.delayed.iter().map(|d| d.0).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.client.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
        panic!("livelock");
    }

    fn client_connected(&self, h: ConnectionHandle) -> bool {
        self.client_events
            .iter()
            .any(|(c, e)| *c == h && *e == Event::Connected)
    }

    fn client_lost(&self, h: ConnectionHandle) -> Option<&ConnectionError> {
        self.client_events.iter().find_map(|(c, e)| match e {
            Event::ConnectionLost { reason } if *c == h => Some(reason),
            _ => None,
        })
    }

    /// The server connections, in creation order.
    fn server_handles(&self) -> Vec<ConnectionHandle> {
        self.server.connection_handles().collect()
    }

    /// Echo one request on a fresh stream: the connection really works.
    fn round_trip(&mut self, h: ConnectionHandle) {
        let id = {
            let c = self.client.connection_mut(h).unwrap();
            let id = c.open(Dir::Bi).unwrap();
            c.write(id, b"ping").unwrap();
            c.finish(id).unwrap();
            id
        };
        self.run(Duration::from_millis(200));
        let sh = *self.server_handles().last().unwrap();
        let s = self.server.connection_mut(sh).unwrap();
        let sid = s.accept(Dir::Bi).expect("server got the stream");
        assert_eq!(&s.read(sid, 100).unwrap().unwrap()[..], b"ping");
        let _ = id;
    }
}

fn retry_server() -> ServerConfig {
    let mut s = server_config(TransportConfig::default());
    s.validation.retry = true;
    s
}

/// Long-header type bits of a QUIC v1 datagram's first packet (3 = Retry).
fn long_type(d: &[u8]) -> Option<u8> {
    (d[0] & 0x80 != 0).then_some((d[0] >> 4) & 3)
}

fn is_retry(d: &[u8]) -> bool {
    long_type(d) == Some(3)
}

/// DCID and SCID of a long-header packet.
fn long_cids(d: &[u8]) -> (ConnectionId, ConnectionId) {
    let dl = d[5] as usize;
    let dcid = ConnectionId::new(&d[6..6 + dl]).unwrap();
    let sl = d[6 + dl] as usize;
    let scid = ConnectionId::new(&d[7 + dl..7 + dl + sl]).unwrap();
    (dcid, scid)
}

fn server_bytes(net: &Net) -> usize {
    net.server_sent.iter().map(Vec::len).sum()
}

#[test]
fn retry_handshake_completes_and_sets_transport_parameters() {
    let mut net = Net::new(retry_server());
    let h = net.connect(client_config(TransportConfig::default()));
    net.run(Duration::from_secs(1));
    assert!(net.client_connected(h), "handshake after Retry");
    assert!(
        is_retry(&net.server_sent[0]),
        "first server datagram is a Retry"
    );
    assert_eq!(net.server.validation_stats().retries_sent, 1);
    let cs = net.client.connection(h).unwrap().stats();
    assert_eq!(cs.retries, 1);
    let sh = net.server_handles()[0];
    let ss = net.server.connection(sh).unwrap().stats();
    assert_eq!(ss.retries, 1);
    assert!(ss.address_validated_by_token);
    // The client's first Initial carried no token, the second the Retry's token, and its
    // DCID switched to the Retry's SCID.
    let (odcid, _) = long_cids(&net.client_sent[0]);
    let (rdcid, rscid) = long_cids(&net.server_sent[0]);
    assert_eq!(rdcid, long_cids(&net.client_sent[0]).1);
    let (second_dcid, _) = long_cids(&net.client_sent[1]);
    assert_eq!(second_dcid, rscid);
    assert_ne!(second_dcid, odcid);
    net.round_trip(h);
}

#[test]
fn new_token_is_reused_on_the_next_connection() {
    let config = client_config(TransportConfig::default());
    let mut net = Net::new(retry_server());
    let first = net.connect(config.clone());
    net.run(Duration::from_secs(1));
    assert!(net.client_connected(first));
    let cs = net.client.connection(first).unwrap().stats();
    assert_eq!(cs.retries, 1);
    assert_eq!(
        cs.new_tokens_received, 1,
        "server sends NEW_TOKEN once confirmed"
    );
    let ss = net
        .server
        .connection(net.server_handles()[0])
        .unwrap()
        .stats();
    assert_eq!(ss.new_tokens_sent, 1);

    // Second connection with the same config (same token store): no Retry round trip.
    let sent_before = net.server_sent.len();
    let second = net.connect(config.clone());
    net.run(Duration::from_secs(1));
    assert!(net.client_connected(second));
    assert_eq!(net.client.connection(second).unwrap().stats().retries, 0);
    assert_eq!(
        net.server.validation_stats().retries_sent,
        1,
        "no second Retry"
    );
    assert_eq!(net.server.validation_stats().new_tokens_accepted, 1);
    assert!(!net.server_sent[sent_before..].iter().any(|d| is_retry(d)));
    let sh = *net.server_handles().last().unwrap();
    let ss = net.server.connection(sh).unwrap().stats();
    assert!(ss.address_validated_by_token);
    assert_eq!(ss.retries, 0);
    net.round_trip(second);

    // The token was used up; a third connection without one goes through Retry again
    // unless the second connection's NEW_TOKEN arrived (it did): still no Retry.
    assert_eq!(
        net.client
            .connection(second)
            .unwrap()
            .stats()
            .new_tokens_received,
        1
    );
}

#[test]
fn client_without_token_store_gets_a_retry_every_time() {
    let mut config = client_config(TransportConfig::default());
    config.token_store = None;
    let mut net = Net::new(retry_server());
    for _ in 0..2 {
        let h = net.connect(config.clone());
        net.run(Duration::from_secs(1));
        assert!(net.client_connected(h));
        assert_eq!(net.client.connection(h).unwrap().stats().retries, 1);
    }
    assert_eq!(net.server.validation_stats().retries_sent, 2);
}

#[test]
fn new_token_from_another_server_key_is_ignored() {
    // The token store holds a token of a server whose key differs: the server must
    // ignore it (not close), and validate the address with a Retry instead.
    let config = client_config(TransportConfig::default());
    let mut net = Net::new(retry_server());
    let h = net.connect(config.clone());
    net.run(Duration::from_secs(1));
    assert!(net.client_connected(h));
    let mut other = retry_server();
    other.validation.key = Some([9; 32]);
    net.server.set_server_config(Some(Arc::new(other)));
    let h2 = net.connect(config);
    net.run(Duration::from_secs(1));
    assert!(
        net.client_connected(h2),
        "an invalid NEW_TOKEN token is not fatal"
    );
    assert_eq!(net.client.connection(h2).unwrap().stats().retries, 1);
    assert_eq!(net.server.validation_stats().new_tokens_ignored, 1);
}

fn assert_invalid_token(net: &Net, h: ConnectionHandle) {
    match net.client_lost(h) {
        Some(ConnectionError::ConnectionClosed { code, .. }) => {
            assert_eq!(*code, TransportErrorCode::INVALID_TOKEN)
        }
        other => panic!("expected INVALID_TOKEN, got {other:?}"),
    }
    assert_eq!(net.server.validation_stats().invalid_retry_tokens, 1);
    assert_eq!(net.server.connection_count(), 0);
}

#[test]
fn expired_retry_token_is_refused_with_invalid_token() {
    let mut net = Net::new(retry_server());
    let h = net.connect(client_config(TransportConfig::default()));
    // Hold the first Retry for 16 s (its token lives 15 s); drop every other server
    // datagram until then.
    let mut held = false;
    let start = net.now;
    let hold = Arc::new(std::sync::Mutex::new(None));
    let hold2 = hold.clone();
    net.filter = Box::new(move |now, from_server, d| {
        if from_server && now < start + Duration::from_secs(16) {
            if !held && is_retry(d) {
                held = true;
                *hold2.lock().unwrap() = Some(d.to_vec());
            }
            return Fate::Drop;
        }
        Fate::Deliver
    });
    net.run(Duration::from_millis(10));
    let retry = hold.lock().unwrap().take().expect("a Retry was sent");
    net.delay(start + Duration::from_secs(16), true, retry);
    net.run(Duration::from_secs(17));
    assert_invalid_token(&net, h);
}

#[test]
fn retry_token_from_another_port_is_refused() {
    let mut net = Net::new(retry_server());
    let h = net.connect(client_config(TransportConfig::default()));
    let mut seen_retry = false;
    net.filter = Box::new(move |_, from_server, d| {
        if from_server {
            seen_retry |= is_retry(d);
            return Fate::Deliver;
        }
        if seen_retry {
            // The client "moved" after the Retry: its token is bound to the old port.
            return Fate::From(SocketAddr::from(([10, 0, 0, 2], 50001)));
        }
        Fate::Deliver
    });
    net.run(Duration::from_secs(1));
    // The refusal went to the new port, which the test maps back to the client.
    assert_eq!(net.server.validation_stats().invalid_retry_tokens, 1);
    assert_eq!(net.server.connection_count(), 0);
    assert!(!net.client_connected(h));
    let _ = assert_invalid_token;
}

/// A valid Retry answering the client's first Initial, crafted by an on-path attacker
/// (or a test): right integrity tag, arbitrary SCID and token.
fn forged_retry(client_initial: &[u8], scid: ConnectionId, token: &[u8]) -> Vec<u8> {
    let (odcid, client_scid) = long_cids(client_initial);
    let mut buf = Vec::new();
    packet::encode_retry(
        &mut buf,
        packet::VERSION_1,
        &client_scid,
        &scid,
        &odcid,
        token,
    )
    .unwrap();
    buf
}

#[test]
fn tampered_retry_token_is_refused_with_invalid_token() {
    let mut net = Net::new(retry_server());
    let h = net.connect(client_config(TransportConfig::default()));
    let first_initial = Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
    let forged = Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
    let (fi, fo) = (first_initial.clone(), forged.clone());
    net.filter = Box::new(move |_, from_server, d| {
        if !from_server {
            fi.lock().unwrap().get_or_insert_with(|| d.to_vec());
            return Fate::Deliver;
        }
        if is_retry(d) {
            // Flip one bit of the token and re-seal the integrity tag: the client
            // accepts the Retry, the server must refuse the token.
            let (_, scid) = long_cids(d);
            let start = 7 + d[5] as usize + d[6 + d[5] as usize] as usize;
            let mut token = d[start..d.len() - 16].to_vec();
            let last = token.len() - 1;
            token[last] ^= 1;
            let initial = fi.lock().unwrap().clone().unwrap();
            fo.lock()
                .unwrap()
                .get_or_insert_with(|| forged_retry(&initial, scid, &token));
            return Fate::Drop;
        }
        Fate::Deliver
    });
    net.run(Duration::from_millis(1));
    let injected = forged.lock().unwrap().take().expect("Retry seen");
    net.delay(net.now, true, injected);
    net.run(Duration::from_secs(1));
    assert_eq!(net.client.connection(h).map(|c| c.stats().retries), Some(1));
    assert_invalid_token(&net, h);
}

#[test]
fn client_acts_on_one_retry_only() {
    let mut net = Net::new(retry_server());
    let h = net.connect(client_config(TransportConfig::default()));
    let client_initial = Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
    let ci = client_initial.clone();
    net.filter = Box::new(move |_, from_server, d| {
        if !from_server {
            ci.lock().unwrap().get_or_insert_with(|| d.to_vec());
        }
        Fate::Deliver
    });
    // Let the client's Initial reach the server and the real Retry reach the client.
    net.run(Duration::from_millis(1));
    assert_eq!(net.client.connection(h).unwrap().stats().retries, 1);
    // A second Retry (valid tag, other SCID, junk token) must be ignored: acting on it
    // would send the server a token it refuses.
    let initial = client_initial.lock().unwrap().clone().unwrap();
    let scid = ConnectionId::new(&[0xaa; 8]).unwrap();
    let second = forged_retry(&initial, scid, b"Rjunk-token-bytes");
    net.delay(net.now, true, second);
    net.run(Duration::from_secs(1));
    assert!(net.client_connected(h));
    assert_eq!(net.client.connection(h).unwrap().stats().retries, 1);
    assert_eq!(net.server.validation_stats().invalid_retry_tokens, 0);
}

#[test]
fn client_ignores_bad_retries() {
    // No Retry from this server; forged ones arrive: one with a wrong integrity tag (for
    // another original DCID) before the server's Initial, one valid after it. Both are
    // ignored and the handshake completes without a Retry.
    let mut net = Net::new(server_config(TransportConfig::default()));
    let h = net.connect(client_config(TransportConfig::default()));
    let initial = net.client.poll_transmit(net.now, 1, &mut net.buf).unwrap();
    let initial = net.buf[..initial.size].to_vec();
    let (_, client_scid) = long_cids(&initial);
    let mut bad = Vec::new();
    packet::encode_retry(
        &mut bad,
        packet::VERSION_1,
        &client_scid,
        &ConnectionId::new(&[0xbb; 8]).unwrap(),
        &ConnectionId::new(&[0xcc; 8]).unwrap(), // not the client's ODCID
        b"token",
    )
    .unwrap();
    net.deliver(true, server_addr(), &bad);
    assert_eq!(net.client.connection(h).unwrap().stats().retries, 0);
    net.deliver(false, client_addr(), &initial);
    net.run(Duration::from_millis(1)); // the server's Initial reaches the client
    let late = forged_retry(&initial, ConnectionId::new(&[0xdd; 8]).unwrap(), b"token");
    net.deliver(true, server_addr(), &late);
    net.run(Duration::from_secs(1));
    assert!(net.client_connected(h));
    assert_eq!(net.client.connection(h).unwrap().stats().retries, 0);
}

#[test]
fn injected_retry_is_caught_by_transport_parameters() {
    // An attacker answers the client's Initial with its own (validly tagged) Retry
    // before the server does. The client follows it, but the server's
    // original_destination_connection_id / retry_source_connection_id then do not match
    // what the client saw: TRANSPORT_PARAMETER_ERROR (RFC 9000 §7.3).
    let mut net = Net::new(server_config(TransportConfig::default()));
    let h = net.connect(client_config(TransportConfig::default()));
    let t = net.client.poll_transmit(net.now, 1, &mut net.buf).unwrap();
    let initial = net.buf[..t.size].to_vec();
    // The server never sees the first Initial; the client gets the forged Retry.
    let retry = forged_retry(
        &initial,
        ConnectionId::new(&[0xee; 8]).unwrap(),
        b"\x00attacker token",
    );
    net.deliver(true, server_addr(), &retry);
    assert_eq!(net.client.connection(h).unwrap().stats().retries, 1);
    net.run(Duration::from_secs(1));
    match net.client_lost(h) {
        Some(ConnectionError::TransportError(e)) => {
            assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR)
        }
        other => panic!("expected TRANSPORT_PARAMETER_ERROR, got {other:?}"),
    }
}

/// A server config whose certificate chain is large (many names), so that the first
/// flight alone is beyond 3× a client Initial.
fn big_cert_server() -> ServerConfig {
    let names: Vec<String> = (0..250)
        .map(|i| format!("host-{i:04}.quiver-amplification.example"))
        .chain(std::iter::once("localhost".to_string()))
        .collect();
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key_pair)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let crypto = quiver_proto::crypto::server_config(
        vec![cert.der().clone()],
        key,
        &[common::ALPN],
        quiver_proto::crypto::CipherSuiteSelection::All,
        None,
    )
    .unwrap();
    assert!(cert.der().len() > 8000);
    ServerConfig::new(Arc::new(crypto))
}

/// The client sends its first Initial and then goes silent; returns the server's bytes
/// sent, datagrams sent and the client's bytes sent that reached the server.
fn silent_client(server: ServerConfig, config: ClientConfig, prime: bool) -> (usize, usize, usize) {
    let mut net = Net::new(server);
    if prime {
        // A full connection first, so that the client holds a NEW_TOKEN token.
        let h = net.connect(config.clone());
        net.run(Duration::from_secs(1));
        assert!(net.client_connected(h));
        net.server_sent.clear();
        net.client_sent.clear();
    }
    let mut delivered = 0usize;
    let mut first = true;
    let counted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = counted.clone();
    net.filter = Box::new(move |_, from_server, d| {
        if from_server {
            return Fate::Drop; // the client never hears back either
        }
        if first {
            first = false;
            delivered += d.len();
            c2.store(delivered, std::sync::atomic::Ordering::Relaxed);
            return Fate::Deliver;
        }
        Fate::Drop
    });
    net.connect(config);
    net.run(Duration::from_secs(60));
    let received = counted.load(std::sync::atomic::Ordering::Relaxed);
    (server_bytes(&net), net.server_sent.len(), received)
}

#[test]
fn server_never_sends_more_than_three_times_to_a_silent_client() {
    let config = client_config(TransportConfig::default());
    // Small certificate: the first flight fits in the budget; the PTO probes that
    // follow must stop at the limit.
    let (sent, datagrams, received) = silent_client(
        server_config(TransportConfig::default()),
        config.clone(),
        false,
    );
    assert!(received >= 1200);
    assert!(sent <= 3 * received, "sent {sent} for {received} received");
    assert!(
        datagrams >= 2,
        "PTO probes were sent ({datagrams} datagrams)"
    );
    assert!(sent > 2 * received, "the budget was used ({sent} bytes)");
    // Large certificate: the first flight alone exceeds the budget.
    let (sent, datagrams, received) = silent_client(big_cert_server(), config, false);
    assert!(sent <= 3 * received, "sent {sent} for {received} received");
    assert!(
        sent + 1200 > 3 * received,
        "stopped by the limit ({sent} bytes)"
    );
    assert!(datagrams >= 3);
}

#[test]
fn new_token_lifts_the_amplification_limit() {
    // The same silent client, but holding a NEW_TOKEN token from an earlier
    // connection: its address counts as validated, so the server sends its whole
    // (large) first flight.
    let config = client_config(TransportConfig::default());
    let (sent, _, received) = silent_client(big_cert_server(), config, true);
    assert!(
        sent > 3 * received,
        "validated by token: not limited ({sent} bytes sent for {received})"
    );
}
