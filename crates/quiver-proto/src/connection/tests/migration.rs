//! Path validation and migration (RFC 9000 §8.2, §9) on the in-memory pair.
//!
//! The client's address can change under the server's feet (NAT rebinding): datagrams
//! of the client reach the server from `client_at`, and datagrams of the server reach
//! the client only when sent to `client_at` (the old mapping is gone). Server datagrams
//! are logged with their destination.

use super::*;
use crate::config::PreferredAddressConfig;
use crate::connection::{MigrateError, PathState};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

/// A datagram the server sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    to: SocketAddr,
}

/// How the network delivers.
struct Net {
    /// Where the client's datagrams come from, as the server sees it.
    client_at: SocketAddr,
    /// Server datagrams to these destinations are lost.
    dead: Vec<SocketAddr>,
    /// Client datagrams to these destinations are lost.
    dead_servers: Vec<SocketAddr>,
}

impl Net {
    fn at(client_at: SocketAddr) -> Self {
        Net {
            client_at,
            dead: Vec::new(),
            dead_servers: Vec::new(),
        }
    }
}

fn transport_big() -> TransportConfig {
    TransportConfig {
        stream_receive_window: 1_000_000,
        receive_window: 10_000_000,
        ..transport()
    }
}

fn moved_port() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 50001))
}
fn moved_ip() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 9], 50000))
}

/// Deliver one client datagram to the server as if it came from `from`.
fn to_server(p: &mut Pair, from: SocketAddr, dst: SocketAddr, data: &[u8]) {
    let now = p.now;
    p.server
        .handle(now, from, Some(dst.ip()), None, BytesMut::from(data));
}

/// Move datagrams until both sides are quiet. Returns what the server sent.
fn flush_net(p: &mut Pair, net: &Net) -> Vec<Sent> {
    let mut log = Vec::new();
    for _ in 0..10_000 {
        let mut any = false;
        let now = p.now;
        if let Some(t) = p.client.poll_transmit(now, 1, &mut p.buf) {
            let d = p.buf[..t.size].to_vec();
            if !net.dead_servers.contains(&t.destination) {
                to_server(p, net.client_at, t.destination, &d);
            }
            any = true;
        }
        if let Some(t) = p.server.poll_transmit(now, 1, &mut p.buf) {
            let d = p.buf[..t.size].to_vec();
            log.push(Sent { to: t.destination });
            if t.destination == net.client_at && !net.dead.contains(&t.destination) {
                let from =
                    SocketAddr::new(t.src_ip.unwrap_or(server_addr().ip()), server_addr().port());
                p.client
                    .handle(now, from, None, None, BytesMut::from(&d[..]));
            }
            any = true;
        }
        p.drain_events();
        if !any {
            break;
        }
    }
    log
}

/// [`flush_net`] and timers for `budget` of virtual time.
fn run_net(p: &mut Pair, net: &Net, budget: Duration) -> Vec<Sent> {
    let end = p.now + budget;
    let mut log = Vec::new();
    for _ in 0..100_000 {
        log.extend(flush_net(p, net));
        let next = [p.client.poll_timeout(), p.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= end => {
                p.now = p.now.max(t);
                let now = p.now;
                p.client.handle_timeout(now);
                p.server.handle_timeout(now);
                p.drain_events();
            }
            _ => break,
        }
    }
    p.now = p.now.max(end);
    log
}

/// Client writes `n` bytes on a new bidirectional stream; returns the stream.
fn client_sends(p: &mut Pair, n: usize) -> StreamId {
    let id = p.client_conn().open(Dir::Bi).expect("stream");
    let data = vec![7u8; n];
    let mut off = 0;
    while off < n {
        off += p.client_conn().write(id, &data[off..]).expect("write");
    }
    p.client_conn().finish(id).unwrap();
    id
}

/// Bytes the server read so far on `id`.
fn server_reads(p: &mut Pair, id: StreamId) -> usize {
    let mut n = 0;
    while let Ok(Some(b)) = p.server_conn().read(id, usize::MAX) {
        n += b.len();
    }
    n
}

/// A transfer continues across a port change: the server validates the new address,
/// follows it and keeps its congestion state and RTT (§9.4 allows that for a port-only
/// change).
#[test]
fn port_rebinding_is_validated_and_followed() {
    let mut p = Pair::established(transport_big(), transport_big());
    let id = client_sends(&mut p, 20_000);
    let mut got = 0;
    run_net(&mut p, &Net::at(client_addr()), Duration::from_millis(1));
    got += server_reads(&mut p, id);
    let rtt_before = p.server_conn().rtt();
    assert!(rtt_before < Duration::from_millis(100), "{rtt_before:?}");
    // The NAT picks a new port.
    let net = Net::at(moved_port());
    let log = run_net(&mut p, &net, Duration::from_secs(2));
    got += server_reads(&mut p, id);
    assert_eq!(got, 20_000, "transfer completes over the new port");
    let s = p.server_conn();
    assert_eq!(s.remote_address(), moved_port());
    assert_eq!(s.path_state(), PathState::Validated);
    assert_eq!(s.stats().migrations, 1);
    assert_eq!(s.stats().paths_validated, 1);
    assert!(
        s.rtt() < Duration::from_millis(100),
        "RTT kept: {:?}",
        s.rtt()
    );
    let first_new = log
        .iter()
        .position(|d| d.to == moved_port())
        .expect("datagrams to the new port");
    assert!(
        log[first_new..].iter().all(|d| d.to == moved_port()),
        "nothing goes to the old port after the move"
    );
}

/// An IP change resets congestion control and RTT (§9.4), and validation completes.
#[test]
fn address_rebinding_resets_congestion_state() {
    let mut p = Pair::established(transport_big(), transport_big());
    let id = client_sends(&mut p, 5_000);
    run_net(&mut p, &Net::at(client_addr()), Duration::from_millis(1));
    server_reads(&mut p, id);
    assert!(p.server_conn().rtt() < Duration::from_millis(100));
    // One packet from the new address (an ACK-bearing stream packet is non-probing).
    let id2 = client_sends(&mut p, 100);
    let now = p.now;
    let t = p
        .client
        .poll_transmit(now, 1, &mut p.buf)
        .expect("client sends");
    let d = p.buf[..t.size].to_vec();
    to_server(&mut p, moved_ip(), server_addr(), &d);
    let s = p.server_conn();
    assert_eq!(s.remote_address(), moved_ip());
    assert_eq!(s.path_state(), PathState::Validating);
    assert_eq!(s.rtt(), transport().initial_rtt, "RTT restarts on a new IP");
    run_net(&mut p, &Net::at(moved_ip()), Duration::from_secs(2));
    assert_eq!(server_reads(&mut p, id2), 100);
    let s = p.server_conn();
    assert_eq!(s.path_state(), PathState::Validated);
    assert_eq!(s.remote_address(), moved_ip());
}

/// After an IP change the packets still in flight on the old path no longer count
/// against the restarted congestion window (they would block it for a PTO and then
/// reach the new controller as losses).
#[test]
fn old_path_flight_does_not_block_the_new_window() {
    let mut p = Pair::established(transport_big(), transport_big());
    let sid = p.server_conn().open(Dir::Uni).expect("stream");
    let data = vec![1u8; 100_000];
    let mut off = 0;
    while let Ok(n) = p.server_conn().write(sid, &data[off..]) {
        off += n;
        if n == 0 || off == data.len() {
            break;
        }
    }
    // Sent towards the old address and never acknowledged.
    let now = p.now;
    while p.server.poll_transmit(now, 1, &mut p.buf).is_some() {}
    assert!(p.server_conn().bytes_in_flight() > 0);
    let now = p.now;
    let ping = craft_1rtt(p.client_conn(), now, &[frame::frame_type::PING as u8]);
    to_server(&mut p, moved_ip(), server_addr(), &ping);
    assert_eq!(p.server_conn().remote_address(), moved_ip());
    assert_eq!(p.server_conn().bytes_in_flight(), 0);
    // The transfer completes on the new path.
    run_net(&mut p, &Net::at(moved_ip()), Duration::from_secs(5));
    assert_eq!(p.server_conn().path_state(), PathState::Validated);
    let rid = p.client_conn().accept(Dir::Uni).expect("uni stream");
    let mut got = 0;
    while let Ok(Some(b)) = p.client_conn().read(rid, usize::MAX) {
        got += b.len();
    }
    assert_eq!(got, 100_000);
}

/// A reordered packet from the old address with a smaller packet number arrives after
/// the peer moved: the server must stay on the new address (§9.3).
#[test]
fn late_packet_from_old_path_does_not_switch_back() {
    let mut p = Pair::established(transport_big(), transport_big());
    let a = client_sends(&mut p, 100);
    let now = p.now;
    let t1 = p.client.poll_transmit(now, 1, &mut p.buf).expect("first");
    let first = p.buf[..t1.size].to_vec();
    let _b = client_sends(&mut p, 100);
    let t2 = p.client.poll_transmit(now, 1, &mut p.buf).expect("second");
    let second = p.buf[..t2.size].to_vec();
    // The later packet arrives first, from the new address; then the late one.
    to_server(&mut p, moved_port(), server_addr(), &second);
    assert_eq!(p.server_conn().remote_address(), moved_port());
    to_server(&mut p, client_addr(), server_addr(), &first);
    assert_eq!(
        p.server_conn().remote_address(),
        moved_port(),
        "a late packet of the old path moved the path back"
    );
    assert_eq!(
        server_reads(&mut p, a),
        100,
        "the late packet was still processed"
    );
    run_net(&mut p, &Net::at(moved_port()), Duration::from_secs(1));
    assert_eq!(p.server_conn().remote_address(), moved_port());
    assert_eq!(p.server_conn().path_state(), PathState::Validated);
}

/// Until the new address answers the challenge, the server sends it at most 3× the
/// bytes it received from it, although it has plenty of data to send (§8.1, §9.3.1).
#[test]
fn unvalidated_path_is_amplification_limited() {
    let mut p = Pair::established(transport_big(), transport_big());
    let sid = p.server_conn().open(Dir::Uni).expect("stream");
    let data = vec![1u8; 200_000];
    let mut off = 0;
    while let Ok(n) = p.server_conn().write(sid, &data[off..]) {
        off += n;
        if n == 0 || off == data.len() {
            break;
        }
    }
    // One small client packet from a new address; nothing the server sends reaches it.
    let now = p.now;
    let ping = craft_1rtt(p.client_conn(), now, &[frame::frame_type::PING as u8]);
    let received = ping.len();
    to_server(&mut p, moved_ip(), server_addr(), &ping);
    assert_eq!(p.server_conn().remote_address(), moved_ip());
    let mut net = Net::at(moved_ip());
    net.dead.push(moved_ip());
    // The client stays silent (it is not delivered anything and we do not poll it).
    let mut sent = 0;
    let end = p.now + Duration::from_millis(500);
    while p.now < end {
        let now = p.now;
        while let Some(t) = p.server.poll_transmit(now, 1, &mut p.buf) {
            if t.destination == moved_ip() {
                sent += t.size;
            }
        }
        match p.server.poll_timeout() {
            Some(t) if t <= end => {
                p.now = p.now.max(t);
                p.server.handle_timeout(p.now);
            }
            _ => break,
        }
    }
    assert!(sent > 0, "the server must at least challenge the new path");
    assert!(
        sent <= 3 * received,
        "sent {sent} bytes to an unvalidated address that sent {received}"
    );
}

/// An attacker rewrites the source of one packet; the new address never answers. The
/// server gives up after the validation timeout and goes back to the validated path.
#[test]
fn validation_failure_reverts_to_the_old_path() {
    let mut p = Pair::established(transport_big(), transport_big());
    let _ = client_sends(&mut p, 100);
    let now = p.now;
    let t = p
        .client
        .poll_transmit(now, 1, &mut p.buf)
        .expect("client sends");
    let d = p.buf[..t.size].to_vec();
    let spoofed = SocketAddr::from(([192, 0, 2, 66], 4444));
    to_server(&mut p, spoofed, server_addr(), &d);
    assert_eq!(p.server_conn().remote_address(), spoofed);
    assert_eq!(p.server_conn().path_state(), PathState::Validating);
    // Only the server's timers run; the client hears nothing (its address is stale).
    let end = p.now + Duration::from_secs(5);
    while let Some(t) = p.server.poll_timeout().filter(|t| *t <= end) {
        p.now = p.now.max(t);
        let now = p.now;
        p.server.handle_timeout(now);
        while p.server.poll_transmit(now, 1, &mut p.buf).is_some() {}
        if p.server_conn().remote_address() == client_addr() {
            break;
        }
    }
    let s = p.server_conn();
    assert_eq!(
        s.remote_address(),
        client_addr(),
        "reverted to the old path"
    );
    assert_eq!(s.path_state(), PathState::Validated);
    assert_eq!(s.stats().path_validation_failures, 1);
    // And the connection still works there.
    let id = client_sends(&mut p, 500);
    run_net(&mut p, &Net::at(client_addr()), Duration::from_secs(1));
    assert_eq!(server_reads(&mut p, id), 500);
    assert!(!p.server_conn().is_closed());
}

/// The peer returning to the previous (validated) address is taken back at once.
#[test]
fn peer_returning_to_previous_address_is_taken_back() {
    let mut p = Pair::established(transport_big(), transport_big());
    let _ = client_sends(&mut p, 100);
    let now = p.now;
    let t = p
        .client
        .poll_transmit(now, 1, &mut p.buf)
        .expect("client sends");
    let d = p.buf[..t.size].to_vec();
    to_server(&mut p, moved_ip(), server_addr(), &d);
    assert_eq!(p.server_conn().remote_address(), moved_ip());
    let id = client_sends(&mut p, 300);
    run_net(&mut p, &Net::at(client_addr()), Duration::from_secs(1));
    assert_eq!(server_reads(&mut p, id), 300);
    let s = p.server_conn();
    assert_eq!(s.remote_address(), client_addr());
    assert_eq!(s.path_state(), PathState::Validated);
    assert!(s.rtt() < Duration::from_millis(100), "old RTT restored");
}

/// A client's PATH_CHALLENGE from a new address is answered on that path (to that
/// address, padded), not on the current path; a probing packet does not move the path.
#[test]
fn path_response_goes_to_the_challenging_path() {
    let mut p = Pair::default_established();
    let now = p.now;
    let probe = craft_1rtt(p.client_conn(), now, &enc(Frame::PathChallenge([5; 8])));
    to_server(&mut p, moved_ip(), server_addr(), &probe);
    assert_eq!(
        p.server_conn().remote_address(),
        client_addr(),
        "probing only"
    );
    let out = {
        let now = p.now;
        let mut out = Vec::new();
        while let Some(t) = p.server.poll_transmit(now, 1, &mut p.buf) {
            out.push((t, p.buf[..t.size].to_vec()));
        }
        out
    };
    let (t, _) = out
        .iter()
        .find(|(t, _)| t.destination == moved_ip())
        .expect("a PATH_RESPONSE to the probing address");
    assert!(t.size >= 1200 || t.size <= 3 * probe.len());
    assert!(
        t.size <= 3 * probe.len(),
        "amplification limit on the probed path"
    );
    // The client accepts it (a PATH_RESPONSE it did not ask for is ignored).
    let d = out
        .iter()
        .find(|(t, _)| t.destination == moved_ip())
        .map(|(_, d)| d.clone())
        .unwrap();
    let now = p.now;
    p.client
        .handle(now, server_addr(), None, None, BytesMut::from(&d[..]));
    assert!(!p.client_conn().is_closed());
}

/// Client-initiated migration: a fresh CID, a PATH_CHALLENGE from the new address, the
/// server follows, both sides end validated.
#[test]
fn client_migration_uses_a_fresh_cid_and_validates() {
    let mut p = Pair::established(transport_big(), transport_big());
    run_net(&mut p, &Net::at(client_addr()), Duration::from_millis(50));
    let cid_before = p.client_conn().cids.remote_cid();
    let now = p.now;
    p.client_conn().migrate(now, true).expect("migrate");
    assert_ne!(
        p.client_conn().cids.remote_cid(),
        cid_before,
        "fresh CID (§9.5)"
    );
    assert_eq!(p.client_conn().path_state(), PathState::Validating);
    let id = client_sends(&mut p, 3_000);
    run_net(&mut p, &Net::at(moved_ip()), Duration::from_secs(2));
    assert_eq!(server_reads(&mut p, id), 3_000);
    assert_eq!(p.client_conn().path_state(), PathState::Validated);
    assert_eq!(p.client_conn().stats().migrations, 1);
    let s = p.server_conn();
    assert_eq!(s.remote_address(), moved_ip());
    assert_eq!(s.path_state(), PathState::Validated);
}

/// `disable_active_migration`: the client refuses to migrate, and the server drops an
/// active migration (new address, new CID) but follows NAT rebinding (same CID).
#[test]
fn disable_active_migration_is_respected() {
    let server_t = TransportConfig {
        allow_active_migration: false,
        ..transport_big()
    };
    let mut p = Pair::established(server_t, transport_big());
    run_net(&mut p, &Net::at(client_addr()), Duration::from_millis(50));
    let now = p.now;
    assert_eq!(
        p.client_conn().migrate(now, false),
        Err(MigrateError::DisabledByPeer)
    );
    // The same CID from a new address is NAT rebinding: followed.
    let id = client_sends(&mut p, 200);
    run_net(&mut p, &Net::at(moved_port()), Duration::from_secs(2));
    assert_eq!(p.server_conn().remote_address(), moved_port());
    assert_eq!(p.server_conn().path_state(), PathState::Validated);
    assert_eq!(server_reads(&mut p, id), 200);
    // Force an active migration anyway: a new CID from a new address.
    assert!(
        p.client_conn().cids.rotate_remote(),
        "server issued spare CIDs"
    );
    let _ = client_sends(&mut p, 100);
    let now = p.now;
    let t = p
        .client
        .poll_transmit(now, 1, &mut p.buf)
        .expect("client sends");
    let d = p.buf[..t.size].to_vec();
    to_server(&mut p, moved_ip(), server_addr(), &d);
    assert_eq!(p.server_conn().remote_address(), moved_port(), "dropped");
}

/// Migration is refused before the handshake is confirmed and on a server.
#[test]
fn migrate_is_refused_when_not_allowed() {
    let mut p = Pair::start(transport(), transport());
    let now = p.now;
    assert_eq!(
        p.client_conn().migrate(now, false),
        Err(MigrateError::HandshakeNotConfirmed)
    );
    p.run(Duration::from_secs(1));
    let now = p.now;
    assert_eq!(
        p.server_conn().migrate(now, false),
        Err(MigrateError::NotClient)
    );
}

fn preferred() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 3], 4433))
}

fn server_with_preferred(p: SocketAddr, transport: TransportConfig) -> Arc<ServerConfig> {
    let mut c = (*server_config(transport)).clone();
    let SocketAddr::V4(v4) = p else {
        unreachable!()
    };
    c.preferred_address = Some(PreferredAddressConfig {
        v4: Some(SocketAddrV4::new(*v4.ip(), v4.port())),
        v6: None,
    });
    Arc::new(c)
}

fn preferred_pair(client_t: TransportConfig) -> Pair {
    let now = Instant::now();
    let server = Endpoint::new(
        endpoint_config(1),
        Some(server_with_preferred(preferred(), transport_big())),
    );
    let mut client = Endpoint::new(endpoint_config(2), None);
    let ch = client
        .connect(now, client_config(client_t), server_addr(), "localhost")
        .unwrap();
    Pair {
        now,
        client,
        server,
        ch,
        sh: None,
        buf: Vec::new(),
        client_events: Vec::new(),
        server_events: Vec::new(),
    }
}

/// Handshake until the server connection exists (first client datagram delivered).
fn handshake_net(p: &mut Pair, net: &Net) {
    let now = p.now;
    let t = p.client.poll_transmit(now, 1, &mut p.buf).expect("Initial");
    let d = p.buf[..t.size].to_vec();
    let ev = p.server.handle(
        now,
        net.client_at,
        Some(t.destination.ip()),
        None,
        BytesMut::from(&d[..]),
    );
    if let Some(crate::endpoint::DatagramEvent::NewConnection(h)) = ev {
        p.sh = Some(h);
    }
    run_net(p, net, Duration::from_millis(100));
}

/// Server preferred address (§9.6): the client probes it with the CID that came with
/// it, moves there on the PATH_RESPONSE, and the server answers from that address.
#[test]
fn client_moves_to_validated_preferred_address() {
    let mut p = preferred_pair(transport_big());
    let net = Net::at(client_addr());
    handshake_net(&mut p, &net);
    assert!(p.client_conn().handshake_confirmed);
    run_net(&mut p, &net, Duration::from_millis(100));
    let c = p.client_conn();
    assert_eq!(
        c.remote_address(),
        preferred(),
        "moved to the preferred address"
    );
    assert_eq!(c.path_state(), PathState::Validated);
    assert_eq!(c.stats().migrations, 1);
    let id = client_sends(&mut p, 1_000);
    let log = run_net(&mut p, &net, Duration::from_secs(1));
    assert_eq!(server_reads(&mut p, id), 1_000);
    assert_eq!(
        p.server_conn().local_ip(),
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3))),
        "the server sends from its preferred address"
    );
    assert!(!log.is_empty());
}

/// A preferred address that does not answer: the client stays where it is.
#[test]
fn unreachable_preferred_address_keeps_the_old_path() {
    let mut p = preferred_pair(transport_big());
    let mut net = Net::at(client_addr());
    net.dead_servers.push(preferred());
    handshake_net(&mut p, &net);
    run_net(&mut p, &net, Duration::from_secs(5));
    let c = p.client_conn();
    assert_eq!(c.remote_address(), server_addr());
    assert!(!c.is_probing_preferred_address(), "probe given up");
    assert_eq!(c.stats().path_validation_failures, 1);
    let id = client_sends(&mut p, 1_000);
    run_net(&mut p, &net, Duration::from_secs(1));
    assert_eq!(server_reads(&mut p, id), 1_000);
}

/// A client configured not to follow preferred addresses does not probe.
#[test]
fn preferred_address_can_be_ignored() {
    let t = TransportConfig {
        migrate_to_preferred_address: false,
        ..transport_big()
    };
    let mut p = preferred_pair(t);
    let net = Net::at(client_addr());
    handshake_net(&mut p, &net);
    run_net(&mut p, &net, Duration::from_millis(200));
    let c = p.client_conn();
    assert!(c.handshake_confirmed);
    assert_eq!(c.remote_address(), server_addr());
    assert_eq!(c.stats().migrations, 0);
}
