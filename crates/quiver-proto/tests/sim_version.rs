//! QUIC v2 (RFC 9369) and version negotiation (RFC 9000 §6, RFC 9368) between a Quiver
//! client and server: a v2 transfer over the seeded simulator, a Version Negotiation round
//! trip, a server that prefers v2 but keeps a v1-only client in v1, and a forged Version
//! Negotiation packet detected through `version_information` (downgrade protection).

mod common;

use bytes::BytesMut;
use common::{
    client_addr, client_config, endpoint_config, server_addr, server_config, ClientApp, QuicNode,
};
use quiver_netem::sim::{LinkConfig, Sim};
use quiver_proto::config::{EndpointConfig, TransportConfig};
use quiver_proto::connection::{ConnectionError, Event};
use quiver_proto::packet::{encode_version_negotiation, VERSION_1, VERSION_2};
use quiver_proto::{ConnectionId, Endpoint, TransportErrorCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn transport() -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(Duration::from_secs(30)),
        ..TransportConfig::default()
    }
}

fn versions_config(seed: u64, versions: &[u32]) -> Arc<EndpointConfig> {
    Arc::new(EndpointConfig {
        supported_versions: versions.to_vec(),
        ..(*endpoint_config(seed)).clone()
    })
}

/// Run a client (first Initial in `client_version`, also willing to use `available`)
/// against a server speaking `server_versions`; returns the versions of the client's and
/// the server's connection after a 256 KiB download, and the client's failure if any.
fn transfer(
    seed: u64,
    client_version: u32,
    available: &[u32],
    server_versions: &[u32],
) -> (Option<u32>, Option<u32>, Option<String>) {
    let start = Instant::now();
    let mut sim = Sim::new(seed, start);
    let server = sim
        .add_node(
            QuicNode::server_with(versions_config(seed, server_versions), transport()),
            vec![server_addr()],
        )
        .unwrap();
    let mut config = client_config(transport());
    config.version = client_version;
    config.available_versions = available.to_vec();
    let app = ClientApp::new(config, 2, 128 * 1024);
    let client = sim
        .add_node(
            QuicNode::client_with(endpoint_config(seed ^ 2), app, start),
            vec![client_addr()],
        )
        .unwrap();
    let link = LinkConfig::new()
        .rate_bps(50_000_000)
        .delay(Duration::from_millis(10));
    sim.set_link_pair(server, client, link).unwrap();
    let _ = sim.run_while(
        |sim| {
            let c = sim.node::<QuicNode>(client).unwrap().client_app();
            c.done_at.is_none() && c.lost.is_none()
        },
        Duration::from_secs(20),
    );
    let c = sim.node::<QuicNode>(client).unwrap();
    let app = c.client_app();
    if app.lost.is_none() {
        assert_eq!((app.completed, app.corrupt), (2, 0), "transfer incomplete");
    }
    let client_version = app
        .conn
        .and_then(|h| c.ep.connection(h))
        .map(|conn| conn.version());
    let s = sim.node::<QuicNode>(server).unwrap();
    let server_version =
        s.ep.connection_handles()
            .next()
            .and_then(|h| s.ep.connection(h))
            .map(|conn| conn.version());
    (client_version, server_version, app.lost.clone())
}

#[test]
fn v2_handshake_and_transfer() {
    let (c, s, lost) = transfer(11, VERSION_2, &[], &[VERSION_1, VERSION_2]);
    assert_eq!(lost, None);
    assert_eq!((c, s), (Some(VERSION_2), Some(VERSION_2)));
}

#[test]
fn version_negotiation_round_trip_starts_over_in_v2() {
    // The server speaks only v2: the client's v1 Initial gets a Version Negotiation
    // packet, and the client starts over in v2, which it listed as available.
    let (c, s, lost) = transfer(12, VERSION_1, &[VERSION_2], &[VERSION_2]);
    assert_eq!(lost, None);
    assert_eq!((c, s), (Some(VERSION_2), Some(VERSION_2)));
    // Without v2 among its versions the client gives up.
    let (_, _, lost) = transfer(13, VERSION_1, &[], &[VERSION_2]);
    assert!(lost.unwrap().contains("version"));
}

#[test]
fn server_preferring_v2_keeps_a_v1_only_client_in_v1() {
    let (c, s, lost) = transfer(14, VERSION_1, &[], &[VERSION_2, VERSION_1]);
    assert_eq!(lost, None);
    assert_eq!((c, s), (Some(VERSION_1), Some(VERSION_1)));
}

/// Move datagrams between the two endpoints without loss or delay and fire timers, for
/// at most `steps` rounds and 2 s of virtual time.
fn shuttle(now: &mut Instant, client: &mut Endpoint, server: &mut Endpoint, steps: usize) {
    let mut buf = Vec::new();
    let end = *now + Duration::from_secs(2);
    for _ in 0..steps {
        let mut moved = false;
        for from_client in [true, false] {
            let (src, dst, src_addr) = if from_client {
                (&mut *client, &mut *server, client_addr())
            } else {
                (&mut *server, &mut *client, server_addr())
            };
            while let Some(t) = src.poll_transmit(*now, 10, &mut buf) {
                moved = true;
                let seg = t.segment_size.unwrap_or(t.size);
                for d in buf[..t.size].chunks(seg) {
                    dst.handle(*now, src_addr, None, None, BytesMut::from(d));
                }
            }
        }
        if !moved {
            let next = [client.poll_timeout(), server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t > end => return,
                Some(t) if t > *now => *now = t,
                Some(_) => {}
                None => return,
            }
            client.handle_timeout(*now);
            server.handle_timeout(*now);
        }
    }
}

#[test]
fn forged_version_negotiation_is_detected() {
    // Client: v2 first, v1 as fallback. Server: speaks both. An attacker answers the
    // client's first Initial with a Version Negotiation packet listing only v1; the
    // client starts over in v1, and the server's version_information (available: v1, v2)
    // then shows that v2 would have worked: VERSION_NEGOTIATION_ERROR (RFC 9368 §4).
    let mut now = Instant::now();
    let mut server = Endpoint::new(
        versions_config(21, &[VERSION_1, VERSION_2]),
        Some(Arc::new(server_config(transport()))),
    );
    let mut client = Endpoint::new(endpoint_config(22), None);
    let mut config = client_config(transport());
    config.version = VERSION_2;
    config.available_versions = vec![VERSION_1];
    let h = client
        .connect(now, config, server_addr(), "localhost")
        .unwrap();
    let mut buf = Vec::new();
    let t = client
        .poll_transmit(now, 1, &mut buf)
        .expect("client Initial");
    let first = &buf[..t.segment_size.unwrap_or(t.size)];
    assert_eq!(&first[1..5], &VERSION_2.to_be_bytes());
    let dcid = ConnectionId::new(&first[6..6 + first[5] as usize]).unwrap();
    let at = 6 + first[5] as usize;
    let scid = ConnectionId::new(&first[at + 1..at + 1 + first[at] as usize]).unwrap();
    let mut vn = Vec::new();
    encode_version_negotiation(&mut vn, 0x2a, &scid, &dcid, &[VERSION_1]);
    client.handle(now, server_addr(), None, None, BytesMut::from(&vn[..]));
    // The client started over in v1.
    assert_eq!(client.connection(h).unwrap().version(), VERSION_1);
    shuttle(&mut now, &mut client, &mut server, 200);
    let mut lost = None;
    while let Some((_, ev)) = client.poll_event() {
        if let Event::ConnectionLost { reason } = ev {
            lost = Some(reason);
        }
    }
    match lost {
        Some(ConnectionError::TransportError(e)) => {
            assert_eq!(e.code, TransportErrorCode::VERSION_NEGOTIATION_ERROR, "{e}")
        }
        other => panic!("expected VERSION_NEGOTIATION_ERROR, got {other:?}"),
    }
}

#[test]
fn genuine_version_negotiation_passes_the_downgrade_check() {
    // Same as above, but the server really speaks only v1: its version_information
    // confirms the Version Negotiation packet, and the connection completes in v1.
    let mut now = Instant::now();
    let mut server = Endpoint::new(
        versions_config(31, &[VERSION_1]),
        Some(Arc::new(server_config(transport()))),
    );
    let mut client = Endpoint::new(endpoint_config(32), None);
    let mut config = client_config(transport());
    config.version = VERSION_2;
    config.available_versions = vec![VERSION_1];
    let h = client
        .connect(now, config, server_addr(), "localhost")
        .unwrap();
    shuttle(&mut now, &mut client, &mut server, 50);
    let mut connected = false;
    while let Some((_, ev)) = client.poll_event() {
        match ev {
            Event::Connected => connected = true,
            Event::ConnectionLost { reason } => panic!("lost: {reason}"),
            _ => {}
        }
    }
    assert!(connected);
    assert_eq!(client.connection(h).unwrap().version(), VERSION_1);
}
