//! Session resumption and 0-RTT in the simulator (RFC 9001 §4.5–§4.6, RFC 9000 §7.4.1):
//! a client connects once to get session tickets, then connects again on the same
//! endpoint configuration (same rustls ticket store) and sends its requests early.

mod common;

use common::*;
use quiver_netem::sim::{LinkConfig, Sim};
use quiver_proto::config::{ClientConfig, TransportConfig};
use quiver_proto::connection::{ConnectionStats, ZeroRttStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_millis(25);

struct Run {
    sim: Sim,
    server: quiver_netem::sim::NodeId,
    client: quiver_netem::sim::NodeId,
    config: ClientConfig,
}

impl Run {
    /// A server and a client that completed one download (and so holds tickets).
    fn after_first_connection(seed: u64) -> Run {
        let start = Instant::now();
        let mut sim = Sim::new(seed, start);
        let server = sim
            .add_node(
                QuicNode::server(seed ^ 1, TransportConfig::default()),
                vec![server_addr()],
            )
            .unwrap();
        let config = client_config(TransportConfig::default());
        let mut app = ClientApp::new(config.clone(), 1, 1000);
        app.close_when_done = Some(0);
        let client = sim
            .add_node(QuicNode::client(seed ^ 2, app, start), vec![client_addr()])
            .unwrap();
        sim.set_link_pair(server, client, LinkConfig::new().delay(DELAY))
            .unwrap();
        let mut run = Run {
            sim,
            server,
            client,
            config,
        };
        run.run_client(Duration::from_secs(5));
        let c = run.client_app();
        assert_eq!(c.completed, 1, "first download: {:?}", c.lost);
        let h = c.conn.unwrap();
        let node = run.client_node();
        let conn = node.ep.connection(h).unwrap();
        assert!(!conn.is_resumed(), "the first connection cannot resume");
        assert_eq!(conn.zero_rtt_status(), ZeroRttStatus::Unavailable);
        // Let the close drain.
        run.sim.run_for(Duration::from_secs(1));
        run
    }

    fn client_node(&mut self) -> &mut QuicNode {
        self.sim.node_mut::<QuicNode>(self.client).unwrap()
    }

    fn client_app(&self) -> &ClientApp {
        self.sim.node::<QuicNode>(self.client).unwrap().client_app()
    }

    fn server_app(&self) -> &ServerApp {
        self.sim.node::<QuicNode>(self.server).unwrap().server_app()
    }

    fn run_client(&mut self, budget: Duration) {
        let client = self.client;
        let _ = self.sim.run_while(
            |sim| {
                let c = sim.node::<QuicNode>(client).unwrap().client_app();
                c.done_at.is_none() && c.lost.is_none()
            },
            budget,
        );
    }

    /// Start a second connection from the same client endpoint and configuration.
    fn second_connection(&mut self, streams: usize, size: usize, early: bool) -> Instant {
        let now = self.sim.now();
        let mut app = ClientApp::new(self.config.clone(), streams, size);
        app.early = early;
        app.close_when_done = Some(0);
        let node = self.client_node();
        let h = node
            .ep
            .connect(now, app.config.clone(), app.remote, "localhost")
            .unwrap();
        app.conn = Some(h);
        node.app = App::Client(app);
        // Let the node transmit its first flight at `now`.
        self.sim.run_for(Duration::ZERO);
        now
    }

    fn second_stats(&mut self) -> (ConnectionStats, ZeroRttStatus, bool) {
        let h = self.client_app().conn.unwrap();
        let conn = self.client_node().ep.connection(h).unwrap();
        (conn.stats(), conn.zero_rtt_status(), conn.is_resumed())
    }
}

#[test]
fn second_connection_resumes_the_session() {
    let mut run = Run::after_first_connection(11);
    run.second_connection(1, 1000, false);
    run.run_client(Duration::from_secs(5));
    let c = run.client_app();
    assert_eq!(c.completed, 1, "resumed download: {:?}", c.lost);
    let (stats, zero, resumed) = run.second_stats();
    assert!(resumed, "the second handshake must resume from a ticket");
    // Nothing was written before the handshake: no 0-RTT packet, although the ticket
    // allowed it (the status says 0-RTT was available and accepted).
    assert_eq!(stats.zero_rtt_packets_sent, 0);
    assert_eq!(zero, ZeroRttStatus::Accepted);
}

#[test]
fn zero_rtt_requests_arrive_before_the_handshake_completes() {
    let mut run = Run::after_first_connection(12);
    let start = run.second_connection(4, 2000, true);
    {
        let h = run.client_app().conn.unwrap();
        let conn = run.client_node().ep.connection(h).unwrap();
        assert!(conn.is_handshaking());
        assert_eq!(conn.zero_rtt_status(), ZeroRttStatus::Pending);
        assert!(
            conn.stats().zero_rtt_packets_sent > 0,
            "requests sent in 0-RTT"
        );
    }
    let early_before = run.server_app().early_requests;
    run.run_client(Duration::from_secs(5));
    let c = run.client_app();
    assert_eq!(c.completed, 4, "0-RTT downloads: {:?}", c.lost);
    assert_eq!(c.corrupt, 0);
    let done = c.done_at.unwrap() - start;
    let (stats, zero, resumed) = run.second_stats();
    assert!(resumed);
    assert_eq!(zero, ZeroRttStatus::Accepted);
    assert!(stats.zero_rtt_packets_sent > 0);
    assert_eq!(stats.zero_rtt_packets_accepted, stats.zero_rtt_packets_sent);
    assert_eq!(stats.zero_rtt_packets_rejected, 0);
    // The server saw every request while still handshaking: from 0-RTT packets.
    assert_eq!(run.server_app().early_requests - early_before, 4);
    // One round trip for the handshake and the requests together (2 × 25 ms), plus the
    // server's wait for the client's Finished before it may send: under 2 RTT + slack,
    // where without 0-RTT the requests alone would take 2 RTT.
    assert!(
        done < 4 * DELAY + Duration::from_millis(30),
        "took {done:?}"
    );
}

#[test]
fn rejected_zero_rtt_is_resent_once_in_1rtt() {
    let mut run = Run::after_first_connection(13);
    // Same TLS configuration and ticket store, 0-RTT refused by the endpoint.
    {
        let server = run.sim.node_mut::<QuicNode>(run.server).unwrap();
        let mut cfg = server_config_of(server);
        cfg.zero_rtt = false;
        server.ep.set_server_config(Some(Arc::new(cfg)));
    }
    let accepted_before = run.server_app().requests_accepted;
    let early_before = run.server_app().early_requests;
    run.second_connection(4, 2000, true);
    run.run_client(Duration::from_secs(5));
    let c = run.client_app();
    assert_eq!(c.completed, 4, "downloads after rejection: {:?}", c.lost);
    assert_eq!(c.corrupt, 0);
    assert!(
        c.lost
            .as_deref()
            .is_none_or(|l| l.contains("closed locally")),
        "{:?}",
        c.lost
    );
    let (stats, zero, resumed) = run.second_stats();
    assert!(resumed, "rejecting early data still resumes the session");
    assert_eq!(zero, ZeroRttStatus::Rejected);
    assert!(stats.zero_rtt_packets_sent > 0);
    assert_eq!(stats.zero_rtt_packets_rejected, stats.zero_rtt_packets_sent);
    assert_eq!(stats.zero_rtt_packets_accepted, 0);
    // Each request arrived once, after the handshake.
    let s = run.server_app();
    assert_eq!(s.requests_accepted - accepted_before, 4);
    assert_eq!(s.early_requests - early_before, 0);
    assert!(s
        .closed
        .iter()
        .all(|(_, why)| !why.contains("FLOW_CONTROL")));
}

/// The server configuration the node was built with (its TLS config holds the tickets).
fn server_config_of(node: &QuicNode) -> quiver_proto::config::ServerConfig {
    node.ep
        .server_config()
        .map(|c| (**c).clone())
        .expect("server endpoint")
}

/// A server that rejects 0-RTT and now allows fewer streams than the client opened early
/// under the remembered limit: the client cannot resend within the new limits and closes
/// the connection with INTERNAL_ERROR instead of violating them.
#[test]
fn rejected_zero_rtt_with_lower_limits_closes_cleanly() {
    let mut run = Run::after_first_connection(14);
    {
        let server = run.sim.node_mut::<QuicNode>(run.server).unwrap();
        let mut cfg = server_config_of(server);
        cfg.zero_rtt = false;
        cfg.transport = Arc::new(TransportConfig {
            max_concurrent_bidi_streams: 2,
            ..TransportConfig::default()
        });
        server.ep.set_server_config(Some(Arc::new(cfg)));
    }
    let accepted_before = run.server_app().requests_accepted;
    run.second_connection(4, 2000, true);
    run.run_client(Duration::from_secs(5));
    let c = run.client_app();
    let lost = c.lost.clone().unwrap_or_default();
    assert!(lost.contains("0-RTT rejected"), "{lost}");
    assert_eq!(c.completed, 0);
    // No stream of the rejected flight reached the server's application.
    assert_eq!(run.server_app().requests_accepted, accepted_before);
}

/// The server's transport limits shrink while its TLS configuration (and so the tickets
/// clients hold) stays: the endpoint rejects early data by itself, since a ticket may
/// carry the old, higher limits (RFC 9000 §7.4.1), and the client resends in 1-RTT
/// under the new limits.
#[test]
fn lowered_server_limits_reject_zero_rtt_by_themselves() {
    let mut run = Run::after_first_connection(15);
    {
        let server = run.sim.node_mut::<QuicNode>(run.server).unwrap();
        let mut cfg = server_config_of(server);
        assert!(cfg.zero_rtt);
        cfg.transport = Arc::new(TransportConfig {
            stream_receive_window: 64 * 1024,
            ..TransportConfig::default()
        });
        server.ep.set_server_config(Some(Arc::new(cfg)));
    }
    run.second_connection(4, 2000, true);
    run.run_client(Duration::from_secs(5));
    let c = run.client_app();
    assert_eq!(c.completed, 4, "{:?}", c.lost);
    let (stats, zero, resumed) = run.second_stats();
    assert!(resumed);
    assert_eq!(zero, ZeroRttStatus::Rejected);
    assert_eq!(stats.zero_rtt_packets_rejected, stats.zero_rtt_packets_sent);
    assert!(stats.zero_rtt_packets_sent > 0);
}
