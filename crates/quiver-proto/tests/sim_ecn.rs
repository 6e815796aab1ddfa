//! ECN end to end over the simulator (RFC 9000 §13.4, RFC 9002 §7.1): packets leave
//! marked ECT(0), the receiver echoes the counts in ACK_ECN frames, the sender validates
//! the path, treats CE marks from a queue as congestion without any loss, and disables
//! ECN on paths that bleach the marks or drop marked packets.

mod common;

use common::{client_config, ClientApp, Pair, QuicNode};
use quiver_netem::sim::{LinkConfig, NodeId, Sim};
use quiver_proto::config::TransportConfig;
use quiver_proto::connection::ConnectionStats;
use quiver_proto::recovery::EcnState;
use std::time::Duration;

fn transport() -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(Duration::from_secs(120)),
        ..TransportConfig::default()
    }
}

fn link(rate_mbps: u64, delay_ms: u64) -> LinkConfig {
    LinkConfig::new()
        .rate_bps(rate_mbps * 1_000_000)
        .delay(Duration::from_millis(delay_ms))
        .queue_limit_bytes(256 * 1024)
}

/// Stats of the (single) connection of a node.
fn stats_of(sim: &Sim, node: NodeId) -> ConnectionStats {
    let ep = &sim.node::<QuicNode>(node).unwrap().ep;
    let h = ep.connection_handles().next().expect("a connection");
    ep.connection(h).unwrap().stats()
}

/// Downloads `streams` × `size` bytes over `l` (both directions); returns the pair after
/// checking that every response arrived intact.
fn download(seed: u64, l: LinkConfig, t: TransportConfig, streams: usize, size: usize) -> Pair {
    let app = ClientApp::new(client_config(t.clone()), streams, size);
    let mut pair = Pair::new(seed, l, t, app);
    pair.run_to_completion(Duration::from_secs(60));
    let c = pair.client();
    assert_eq!(
        (c.completed, c.corrupt),
        (streams, 0),
        "seed {seed}: lost {:?}",
        c.lost
    );
    pair
}

#[test]
fn clean_path_is_ecn_capable() {
    let pair = download(1, link(50, 5), transport(), 1, 256 * 1024);
    for (who, node) in [("server", pair.server), ("client", pair.client)] {
        let s = stats_of(&pair.sim, node);
        assert_eq!(s.ecn_state, EcnState::Capable, "{who}: {s:?}");
        assert_eq!(s.ecn_ce_reported, 0, "{who}");
        // The peer marked everything it sent (after validation): what arrived is ECT(0).
        assert!(s.ecn_received.ect0 > 10, "{who}: {:?}", s.ecn_received);
        assert_eq!((s.ecn_received.ect1, s.ecn_received.ce), (0, 0), "{who}");
    }
    // The server sent ~190 data packets; all but the paused ones after the first ten
    // were marked, so the client saw nearly all of them as ECT(0).
    let client = stats_of(&pair.sim, pair.client);
    assert!(
        client.ecn_received.ect0 + 20 >= client.packets_rx,
        "{client:?}"
    );
}

#[test]
fn ecn_can_be_disabled() {
    let off = TransportConfig {
        ecn: false,
        ..transport()
    };
    let app = ClientApp::new(client_config(off), 1, 64 * 1024);
    let mut pair = Pair::new(2, link(50, 5), transport(), app);
    pair.run_to_completion(Duration::from_secs(10));
    assert_eq!(pair.client().completed, 1);
    let client = stats_of(&pair.sim, pair.client);
    let server = stats_of(&pair.sim, pair.server);
    assert_eq!(client.ecn_state, EcnState::Failed);
    assert_eq!(server.ecn_received.total(), 0, "{server:?}");
    assert_eq!(server.ecn_state, EcnState::Capable);
}

/// The same download over a link whose queue marks CE above 30 kB, and over the same
/// link without marking: with ECN the sender backs off on marks alone — no packet is
/// lost, the window is reduced, and the queue stays far shorter.
#[test]
fn ce_marks_reduce_the_window_without_loss() {
    let base = link(20, 10).queue_limit_bytes(4 << 20);
    let marking = download(
        3,
        base.clone().ce_threshold(30_000),
        transport(),
        1,
        3 << 20,
    );
    let plain = download(3, base, transport(), 1, 3 << 20);

    let s = stats_of(&marking.sim, marking.server);
    assert_eq!(s.ecn_state, EcnState::Capable, "{s:?}");
    assert!(s.ecn_ce_reported > 0, "no CE reported: {s:?}");
    assert!(s.congestion_events > 0, "no reduction: {s:?}");
    assert_eq!(s.packets_lost, 0, "{s:?}");
    // Many marks, few reductions: at most one per round trip.
    assert!(
        s.congestion_events * 3 <= s.ecn_ce_reported,
        "one reduction per mark? {s:?}"
    );
    let link_stats = marking
        .sim
        .link_stats(marking.server, marking.client)
        .unwrap();
    assert!(link_stats.ce_marked > 0);
    assert_eq!(link_stats.dropped.total(), 0);
    let client = stats_of(&marking.sim, marking.client);
    assert_eq!(client.ecn_received.ce, link_stats.ce_marked);

    let p = stats_of(&plain.sim, plain.server);
    assert_eq!(p.ecn_ce_reported, 0);
    assert_eq!(p.congestion_events, 0, "{p:?}");
    let plain_queue = plain
        .sim
        .link_stats(plain.server, plain.client)
        .unwrap()
        .queue_high_water_bytes;
    assert!(
        link_stats.queue_high_water_bytes * 2 < plain_queue,
        "queue with ECN {} B, without {} B",
        link_stats.queue_high_water_bytes,
        plain_queue
    );
}

#[test]
fn bleaching_path_disables_ecn() {
    let pair = download(4, link(50, 5).bleach_ecn(true), transport(), 1, 256 * 1024);
    for (who, node) in [("server", pair.server), ("client", pair.client)] {
        let s = stats_of(&pair.sim, node);
        assert_eq!(s.ecn_state, EcnState::Failed, "{who}: {s:?}");
        assert_eq!(s.ecn_received.total(), 0, "{who}");
    }
    let st = pair.sim.link_stats(pair.server, pair.client).unwrap();
    // Only the test packets were marked (and bleached), not the whole transfer.
    assert!(st.ecn_bleached > 0 && st.ecn_bleached <= 12, "{st:?}");
}

#[test]
fn path_dropping_ect_packets_disables_ecn() {
    let pair = download(
        5,
        link(50, 5).drop_ecn_capable(true),
        transport(),
        1,
        256 * 1024,
    );
    for (who, node) in [("server", pair.server), ("client", pair.client)] {
        let s = stats_of(&pair.sim, node);
        assert_eq!(s.ecn_state, EcnState::Failed, "{who}: {s:?}");
    }
    let c = pair.client();
    let connected = c.connected_at.expect("connected");
    // One probe timeout per side (about 1 s each with the 333 ms initial RTT), not one
    // per marked test packet.
    assert!(
        connected - pair.sim.start() < Duration::from_secs(4),
        "handshake took {:?}",
        connected - pair.sim.start()
    );
}
