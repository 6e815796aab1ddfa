//! Key updates (RFC 9001 §6) during transfers over the seeded virtual-time network:
//! updates forced by small confidentiality limits on both sides, under loss and
//! reordering, so that old-phase packets arrive after an update and both sides may
//! start an update at the same moment. Every run replays exactly for its seed.

mod common;

use common::{client_config, ClientApp, Pair, QuicNode};
use quiver_netem::sim::{LinkConfig, NodeId, Sim};
use quiver_proto::config::TransportConfig;
use quiver_proto::connection::ConnectionStats;
use std::time::Duration;

/// Stats of the (single) connection of a node.
fn stats_of(sim: &Sim, node: NodeId) -> ConnectionStats {
    let ep = &sim.node::<QuicNode>(node).unwrap().ep;
    let h = ep.connection_handles().next().expect("a connection");
    ep.connection(h).unwrap().stats()
}

fn limited(packets: Option<u64>) -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(Duration::from_secs(120)),
        confidentiality_limit: packets,
        ..TransportConfig::default()
    }
}

/// Download over a lossy, reordering link with the given confidentiality limits;
/// returns the server's and the client's stats.
fn lossy_download(
    seed: u64,
    server_limit: Option<u64>,
    client_limit: Option<u64>,
) -> (ConnectionStats, ConnectionStats) {
    let app = ClientApp::new(client_config(limited(client_limit)), 4, 256 * 1024);
    let link = LinkConfig::new()
        .rate_bps(20_000_000)
        .delay(Duration::from_millis(10))
        .queue_limit_bytes(256 * 1024)
        .loss(0.02)
        .reorder(0.02, Duration::from_millis(3));
    let mut pair = Pair::new(seed, link, limited(server_limit), app);
    pair.run_to_completion(Duration::from_secs(60));
    let c = pair.client();
    assert_eq!(
        (c.completed, c.corrupt),
        (4, 0),
        "seed {seed}, lost: {:?}",
        c.lost
    );
    let s = stats_of(&pair.sim, pair.server);
    let c = stats_of(&pair.sim, pair.client);
    // Both sides went through the same key generations, but for the very last
    // update, which the peer may not have seen yet when the transfer ended.
    assert!(
        s.key_updates.abs_diff(c.key_updates) <= 1,
        "seed {seed}: server {s:?} client {c:?}"
    );
    // Reordered packets of the previous phase were opened with the kept key.
    assert_eq!((s.auth_failures, c.auth_failures), (0, 0), "seed {seed}");
    (s, c)
}

/// The sender (server, about 900 packets) updates every 60 packets; the client only
/// follows.
#[test]
fn sender_updates_keys_automatically_under_loss_and_reordering() {
    for seed in [71, 72] {
        let (s, c) = lossy_download(seed, Some(80), None);
        assert!(s.key_updates_initiated >= 10, "seed {seed}: {s:?}");
        assert_eq!(s.key_updates_followed, 0);
        assert_eq!(c.key_updates_initiated, 0);
        assert!(c.key_updates_followed + 1 >= s.key_updates_initiated);
    }
}

/// Both sides hit their limits (the client sends about one ACK per two packets and
/// updates every 30): updates start on both sides, at times at the same moment, and
/// each side follows the other's.
#[test]
fn both_sides_update_keys_under_loss_and_reordering() {
    for seed in [73, 74] {
        let (s, c) = lossy_download(seed, Some(80), Some(40));
        assert!(s.key_updates_initiated >= 3, "seed {seed}: {s:?}");
        assert!(c.key_updates_initiated >= 3, "seed {seed}: {c:?}");
        assert!(s.key_updates >= 10, "seed {seed}: {s:?}");
    }
}
