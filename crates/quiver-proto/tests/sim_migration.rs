//! NAT rebinding during a download over the seeded virtual-time network (RFC 9000 §9.3):
//! mid-transfer, the client's datagrams start to come from a new port (rebind-port) or
//! a new IP (rebind-addr), over a lossy, reordering link. The server must validate the
//! new address, follow it, and the transfer must complete intact. Every run replays
//! exactly for its seed.

mod common;

use common::{client_addr, client_config, ClientApp, Pair, QuicNode};
use quiver_netem::sim::{LinkConfig, NodeId, Sim};
use quiver_proto::config::TransportConfig;
use quiver_proto::connection::{Connection, PathState};
use std::net::SocketAddr;
use std::time::Duration;

fn conn_of(sim: &Sim, node: NodeId) -> &Connection {
    let ep = &sim.node::<QuicNode>(node).unwrap().ep;
    let h = ep.connection_handles().next().expect("a connection");
    ep.connection(h).unwrap()
}

fn transport() -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(Duration::from_secs(120)),
        ..TransportConfig::default()
    }
}

/// Download 4 × 256 KiB; 150 ms into it the client's address becomes `new_addr`. The
/// download must complete and the server end on the new, validated address.
fn rebinding_download(seed: u64, new_addr: SocketAddr) {
    let app = ClientApp::new(client_config(transport()), 4, 256 * 1024);
    let link = LinkConfig::new()
        .rate_bps(20_000_000)
        .delay(Duration::from_millis(10))
        .queue_limit_bytes(256 * 1024)
        .loss(0.01)
        .reorder(0.01, Duration::from_millis(3));
    let mut pair = Pair::new(seed, link, transport(), app);
    // Well into the transfer (the handshake takes a few 20 ms round trips).
    pair.sim.run_for(Duration::from_millis(150));
    assert!(
        pair.client().done_at.is_none(),
        "seed {seed}: finished too early"
    );
    assert_eq!(
        conn_of(&pair.sim, pair.server).remote_address(),
        client_addr()
    );
    // The NAT's mapping changes: the client's datagrams now come from `new_addr`, and
    // the server's datagrams to it reach the client.
    let client = pair.client;
    pair.sim.add_address(client, new_addr).unwrap();
    pair.sim.node_mut::<QuicNode>(client).unwrap().addr = new_addr;
    pair.run_to_completion(Duration::from_secs(60));
    let c = pair.client();
    assert_eq!(
        (c.completed, c.corrupt),
        (4, 0),
        "seed {seed}, lost: {:?}",
        c.lost
    );
    let s = conn_of(&pair.sim, pair.server);
    let stats = s.stats();
    assert_eq!(s.remote_address(), new_addr, "seed {seed}: {stats:?}");
    assert_eq!(
        s.path_state(),
        PathState::Validated,
        "seed {seed}: {stats:?}"
    );
    assert_eq!(stats.migrations, 1, "seed {seed}: {stats:?}");
    assert!(stats.paths_validated >= 1, "seed {seed}: {stats:?}");
}

#[test]
fn rebind_port_during_download_under_loss() {
    for seed in [11, 12, 13] {
        rebinding_download(seed, SocketAddr::from(([10, 0, 0, 2], 50123)));
    }
}

#[test]
fn rebind_addr_during_download_under_loss() {
    for seed in [21, 22, 23] {
        rebinding_download(seed, SocketAddr::from(([10, 0, 0, 77], 50000)));
    }
}
