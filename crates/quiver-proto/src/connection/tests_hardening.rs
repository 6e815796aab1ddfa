//! Hardening: what a hostile or broken peer (or generator) must not be able to do.

use super::*;
use crate::cid::{ConnectionIdGenerator, ResetToken};
use crate::endpoint::DatagramEvent;

/// A short-header datagram with a random-looking DCID ending in `token`, as a stateless
/// reset is built (RFC 9000 §10.3).
fn reset_datagram(token: ResetToken) -> Vec<u8> {
    let mut d = vec![0x41u8];
    d.extend((0..24u8).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    d.extend_from_slice(&token.0);
    d
}

/// RFC 9000 §10.3.1: only the token of a CID in use may be matched. The server issued
/// more CIDs (with tokens) than the one the client sends to; a datagram ending in one
/// of those unused tokens is not a reset, one ending in the token in use is.
#[test]
fn only_the_reset_token_of_the_cid_in_use_resets() {
    let mut p = Pair::default_established();
    let tokens = p.client_conn().cids.remote_tokens();
    assert!(tokens.len() >= 2, "server issued more CIDs: {tokens:?}");
    let active = p.client_conn().cids.active_reset_token().expect("token");
    for (_, t) in tokens {
        let t = t.expect("every server CID has a token");
        if t != active {
            p.deliver(Side::Client, &reset_datagram(t));
            assert_eq!(
                p.lost_reason(Side::Client),
                None,
                "reset by an unused token"
            );
        }
    }
    p.deliver(Side::Client, &reset_datagram(active));
    assert_eq!(p.lost_reason(Side::Client), Some(ConnectionError::Reset));
}

#[test]
fn reset_token_comparison() {
    let t = ResetToken([7; 16]);
    assert!(t.matches(&[7; 16]));
    let mut other = [7u8; 16];
    other[15] = 8;
    assert!(!t.matches(&other));
    assert!(!t.matches(&[7; 15]));
}

/// The endpoint finds the connection a stateless reset is for through its token index,
/// kept current as connections learn and drop tokens: with many connections, the index
/// holds exactly one entry per live connection, and a reset kills only its target.
#[test]
fn reset_token_index_routes_among_many_connections() {
    let mut p = Pair::default_established();
    let mut handles = vec![p.ch];
    for _ in 0..40 {
        let now = p.now;
        let h = p
            .client
            .connect(now, client_config(transport()), server_addr(), "localhost")
            .unwrap();
        handles.push(h);
    }
    p.run(Duration::from_millis(500));
    let index = p.client.reset_token_index().clone();
    assert_eq!(index.len(), handles.len());
    for &h in &handles {
        let c = p.client.connection(h).expect("alive");
        assert!(!c.is_handshaking());
        let t = c.cids.active_reset_token().expect("token");
        assert_eq!(index.get(&t), Some(&h));
    }
    // A reset for connection 17 kills it alone; its token leaves the index.
    let victim = handles[17];
    let t = p
        .client
        .connection(victim)
        .unwrap()
        .cids
        .active_reset_token()
        .unwrap();
    let now = p.now;
    let ev = p.client.handle(
        now,
        server_addr(),
        None,
        None,
        BytesMut::from(&reset_datagram(t)[..]),
    );
    assert_eq!(ev, Some(DatagramEvent::Known(victim)));
    p.drain_events();
    assert!(p.client.connection(victim).is_none(), "drained and freed");
    assert_eq!(p.client.reset_token_index().len(), handles.len() - 1);
    assert!(!p.client.reset_token_index().contains_key(&t));
    for &h in handles.iter().filter(|h| **h != victim) {
        assert!(!p.client.connection(h).unwrap().is_closed());
    }
}

/// A peer flooding NEW_CONNECTION_ID frames, each retiring all earlier ones, would
/// queue one RETIRE_CONNECTION_ID per frame without bound; beyond the limit of
/// unacknowledged retirements it is a CONNECTION_ID_LIMIT_ERROR (RFC 9000 §5.1.2).
#[test]
fn retire_connection_id_flood_is_bounded() {
    let mut p = Pair::default_established();
    let mut payload = Vec::new();
    for seq in 10..200u64 {
        payload.extend(enc(Frame::NewConnectionId(frame::NewConnectionId {
            sequence: seq,
            retire_prior_to: seq,
            id: ConnectionId::new(&seq.to_be_bytes()).unwrap(),
            reset_token: ResetToken([seq as u8; 16]),
        })));
    }
    p.inject(Side::Server, &payload);
    // (The client now sends to CIDs the server never issued, so its close cannot
    // reach the server; only the client's own verdict is checked.)
    match p.client_conn().close_reason() {
        Some(ConnectionError::TransportError(e)) => {
            assert_eq!(e.code, Code::CONNECTION_ID_LIMIT_ERROR, "{e}");
            assert_eq!(e.frame, Some(ft::NEW_CONNECTION_ID));
        }
        other => panic!("not closed: {other:?}"),
    }
    assert!(p.client_conn().cids.pending_retire.len() <= 16);
}

/// Acknowledged retirements free their slots: a peer that rotates CIDs one at a time
/// at a normal pace never hits the bound.
#[test]
fn acknowledged_retirements_do_not_accumulate() {
    let mut p = Pair::default_established();
    for i in 0..50u8 {
        // A CID the server really issues (not routed by its endpoint, see below).
        let (id, token) = (ConnectionId::new(&[i; 8]).unwrap(), ResetToken([i; 16]));
        let seq = p.server_conn().cids.issue(id, token);
        let f = enc(Frame::NewConnectionId(frame::NewConnectionId {
            sequence: seq,
            retire_prior_to: seq,
            id,
            reset_token: token,
        }));
        p.inject(Side::Server, &f);
        // The client now sends to the injected CID, which the server endpoint does not
        // route: hand its packets (with the RETIRE_CONNECTION_ID) to the server
        // connection directly, and its ACKs back.
        for d in p.take_transmits(Side::Client) {
            let now = p.now;
            p.server_conn()
                .handle_datagram(now, client_addr(), None, BytesMut::from(&d[..]));
        }
        p.now += Duration::from_millis(30);
        let now = p.now;
        p.server.handle_timeout(now);
        p.client.handle_timeout(now);
        for d in p.take_transmits(Side::Server) {
            p.deliver(Side::Client, &d);
        }
    }
    assert_eq!(p.client_conn().close_reason(), None);
    assert!(p.client_conn().cids.pending_retire.is_empty());
}

/// A generator that always returns the same ID cannot hang the endpoint: the second
/// connection fails to start, the first one gets no extra IDs but works.
#[test]
fn colliding_cid_generator_does_not_hang() {
    #[derive(Debug)]
    struct Constant;
    impl crate::cid::CidGeneratorFactory for Constant {
        fn build(&self) -> Box<dyn ConnectionIdGenerator> {
            Box::new(Constant)
        }
    }
    impl ConnectionIdGenerator for Constant {
        fn generate(&mut self, _rng: &mut dyn rand::RngCore) -> ConnectionId {
            ConnectionId::new(&[0xab; 8]).unwrap()
        }
        fn cid_len(&self) -> usize {
            8
        }
    }
    let mut p = Pair::start(transport(), transport());
    p.client = Endpoint::new(
        Arc::new(EndpointConfig {
            rng_seed: Some(9),
            cid_generator: Arc::new(Constant),
            ..EndpointConfig::default()
        }),
        None,
    );
    let now = p.now;
    p.ch = p
        .client
        .connect(now, client_config(transport()), server_addr(), "localhost")
        .unwrap();
    let second = p
        .client
        .connect(now, client_config(transport()), server_addr(), "localhost");
    assert_eq!(
        second.err(),
        Some(crate::endpoint::ConnectError::ConnectionIdsExhausted)
    );
    // The connection asks for more IDs after the handshake; none can be minted.
    p.run(Duration::from_secs(1));
    assert!(!p.client_conn().is_handshaking());
    assert_eq!(p.client_conn().close_reason(), None);
    assert_eq!(p.client_conn().local_cids().count(), 1);
}

/// Idle timeouts too large for `Instant` (ours, or the peer's up to 2^62 ms) mean no
/// idle timer, not an overflow panic.
#[test]
fn huge_idle_timeouts_do_not_overflow() {
    let huge = TransportConfig {
        max_idle_timeout: Some(Duration::MAX),
        ..transport()
    };
    let none = TransportConfig {
        max_idle_timeout: None,
        ..transport()
    };
    let mut p = Pair::established(huge, none);
    // The server's own timeout cannot be represented: no idle timer.
    assert_eq!(p.server_conn().timers.get(super::super::Timer::Idle), None);
    // The client took the peer's advertised value (clamped to 2^62 - 1 ms).
    let peer = p.client_conn().idle_timeout.expect("peer's timeout");
    assert_eq!(peer, Duration::from_millis((1 << 62) - 1));
    let id = p.client_conn().open(Dir::Bi).unwrap();
    p.client_conn().write(id, b"still fine").unwrap();
    p.run(Duration::from_secs(1));
    assert_eq!(p.client_conn().close_reason(), None);
    assert_eq!(p.server_conn().close_reason(), None);
}

/// Once the client acknowledged a HANDSHAKE_DONE, a copy declared lost later (for
/// example a retransmission) is not sent again: the peer confirmed the handshake.
#[test]
fn lost_handshake_done_is_not_resent_once_acknowledged() {
    let mut p = Pair::default_established();
    assert!(p.server_conn().handshake_confirmed_by_peer());
    let now = p.now;
    let lost = SentPacket {
        time_sent: now,
        size: 50,
        ack_eliciting: true,
        in_flight: false,
        rate: None,
        info: super::super::spaces::SentFrames {
            handshake_done: true,
            ..Default::default()
        },
    };
    p.server_conn().on_packets_lost(now, 2, vec![(999, lost)]);
    assert!(!p.server_conn().handshake_done_pending);
}
