//! Path MTU discovery (RFC 9000 §14.3, RFC 8899) end to end over the seeded simulator:
//! convergence to the upper bound on a 1500-byte link, to the link MTU below it (with
//! no congestion response to lost probes), and black-hole fallback when the link MTU
//! drops mid-connection.

mod common;

use common::{client_config, ClientApp, Pair, QuicNode};
use quiver_netem::sim::{LinkConfig, NodeId, Sim};
use quiver_proto::config::{MtuDiscoveryConfig, TransportConfig};
use quiver_proto::connection::ConnectionStats;
use std::time::Duration;

fn transport(mtud: bool) -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(Duration::from_secs(120)),
        mtu_discovery: mtud.then(MtuDiscoveryConfig::default),
        ..TransportConfig::default()
    }
}

/// A clean link whose queue never overflows for these transfers, so any congestion
/// event would come from probes.
fn link(mtu: usize) -> LinkConfig {
    LinkConfig::new()
        .rate_bps(20_000_000)
        .delay(Duration::from_millis(10))
        .queue_limit_bytes(16 << 20)
        .mtu(mtu)
}

/// Stats of the (single) connection of a node.
fn stats_of(sim: &Sim, node: NodeId) -> ConnectionStats {
    let ep = &sim.node::<QuicNode>(node).unwrap().ep;
    let h = ep.connection_handles().next().expect("a connection");
    ep.connection(h).unwrap().stats()
}

/// Download `size` bytes over `l` with discovery on or off; returns the server's stats.
fn download(seed: u64, l: LinkConfig, mtud: bool, size: usize) -> ConnectionStats {
    let app = ClientApp::new(client_config(transport(mtud)), 1, size);
    let mut pair = Pair::new(seed, l, transport(mtud), app);
    pair.run_to_completion(Duration::from_secs(60));
    let c = pair.client();
    assert_eq!((c.completed, c.corrupt), (1, 0), "lost: {:?}", c.lost);
    stats_of(&pair.sim, pair.server)
}

#[test]
fn converges_to_upper_bound_on_1500_byte_link() {
    let on = download(11, link(1500), true, 2 << 20);
    assert_eq!(on.path_mtu, 1452, "{on:?}");
    assert_eq!(on.mtu_probes_lost, 0, "{on:?}");
    assert!(on.mtu_probes_sent >= 1);
    let off = download(11, link(1500), false, 2 << 20);
    assert_eq!(off.path_mtu, 1200);
    assert_eq!(off.mtu_probes_sent, 0);
    // The transfer used larger packets: ~17% fewer datagrams for the same bytes.
    assert!(
        on.udp_tx * 100 < off.udp_tx * 90,
        "datagrams with discovery {} vs without {}",
        on.udp_tx,
        off.udp_tx
    );
    assert!(on.bytes_tx / on.udp_tx > 1350, "{on:?}");
}

#[test]
fn converges_below_link_mtu_without_congestion_response() {
    let s = download(12, link(1350), true, 2 << 20);
    assert!(
        s.path_mtu > 1300 && s.path_mtu <= 1350,
        "path MTU {}: {s:?}",
        s.path_mtu
    );
    assert!(s.mtu_probes_lost >= 3, "{s:?}");
    assert_eq!(
        s.congestion_events, 0,
        "probe loss caused a reaction: {s:?}"
    );
    assert_eq!(s.persistent_congestion, 0);
    assert_eq!(s.mtu_black_holes, 0);
}

#[test]
fn peer_limit_below_link_mtu_is_respected() {
    // The client accepts at most 1300-byte payloads: the server never probes above.
    let app = ClientApp::new(client_config(transport(true)), 1, 1 << 20);
    let mut pair = Pair::new(13, link(1500), transport(true), app);
    let cfg = quiver_proto::config::EndpointConfig {
        max_udp_payload_size: 1300,
        rng_seed: Some(13),
        ..Default::default()
    };
    // Rebuild the client with the smaller endpoint limit.
    let start = pair.sim.now();
    let mut ep = quiver_proto::Endpoint::new(std::sync::Arc::new(cfg), None);
    let node = pair.sim.node_mut::<QuicNode>(pair.client).unwrap();
    let common::App::Client(app) = &mut node.app else {
        unreachable!()
    };
    let h = ep
        .connect(start, app.config.clone(), app.remote, "localhost")
        .unwrap();
    app.conn = Some(h);
    node.ep = ep;
    pair.run_to_completion(Duration::from_secs(60));
    let c = pair.client();
    assert_eq!((c.completed, c.corrupt), (1, 0), "lost: {:?}", c.lost);
    let s = stats_of(&pair.sim, pair.server);
    assert_eq!(s.path_mtu, 1300, "{s:?}");
    assert_eq!(s.mtu_probes_lost, 0);
}

#[test]
fn mtu_drop_mid_connection_falls_back_and_completes() {
    let app = ClientApp::new(client_config(transport(true)), 1, 16 << 20);
    let mut pair = Pair::new(14, link(1500), transport(true), app);
    let server = pair.server;
    // Run until the server reached the upper bound and the transfer is under way.
    pair.sim
        .run_while(
            |sim| {
                let ep = &sim.node::<QuicNode>(server).unwrap().ep;
                let Some(h) = ep.connection_handles().next() else {
                    return true;
                };
                let s = ep.connection(h).unwrap().stats();
                s.path_mtu < 1452 || s.bytes_tx < 1 << 20
            },
            Duration::from_secs(10),
        )
        .expect("reached 1452");
    let before = stats_of(&pair.sim, server);
    assert_eq!(before.path_mtu, 1452);
    // The path now carries at most 1350 bytes: full-size packets vanish.
    pair.sim
        .set_link_pair(pair.server, pair.client, link(1350))
        .unwrap();
    pair.run_to_completion(Duration::from_secs(120));
    let c = pair.client();
    assert_eq!((c.completed, c.corrupt), (1, 0), "lost: {:?}", c.lost);
    let s = stats_of(&pair.sim, server);
    assert!(s.mtu_black_holes >= 1, "{s:?}");
    // Searched again below the size that failed.
    assert!(
        s.path_mtu > 1200 && s.path_mtu <= 1350,
        "path MTU {}: {s:?}",
        s.path_mtu
    );
}

#[test]
fn same_seed_same_search() {
    let a = download(15, link(1400), true, 1 << 20);
    let b = download(15, link(1400), true, 1 << 20);
    assert_eq!(a, b);
    assert!(a.path_mtu > 1350 && a.path_mtu <= 1400, "{a:?}");
}
