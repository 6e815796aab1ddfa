//! End-to-end transfers between a Quiver client and server over the seeded
//! virtual-time network of `quiver-netem`: clean links, loss, reordering, many streams,
//! datagrams and close codes. Every test replays exactly for its seed.

mod common;

use common::{client_config, ClientApp, Pair, QuicNode};
use quiver_netem::sim::{LinkConfig, NodeId, Sim};
use quiver_proto::config::TransportConfig;
use quiver_proto::connection::ConnectionStats;
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

#[test]
fn handshake_and_small_download() {
    let app = ClientApp::new(client_config(transport()), 1, 1024);
    let mut pair = Pair::new(1, link(100, 10), transport(), app);
    let t = pair.run_to_completion(Duration::from_secs(10));
    let c = pair.client();
    assert!(c.lost.is_none(), "connection lost: {:?}", c.lost);
    assert!(c.connected_at.is_some(), "handshake did not complete");
    assert_eq!((c.completed, c.corrupt), (1, 0));
    // 1 RTT handshake + 1 RTT request/response on a 20 ms RTT link.
    assert!(t < Duration::from_millis(200), "took {t:?}");
}

#[test]
fn download_1mib_clean_link() {
    let app = ClientApp::new(client_config(transport()), 1, 1 << 20);
    let mut pair = Pair::new(2, link(50, 5), transport(), app);
    pair.run_to_completion(Duration::from_secs(30));
    let c = pair.client();
    assert_eq!((c.completed, c.corrupt), (1, 0), "lost: {:?}", c.lost);
}

#[test]
fn download_with_2pct_loss_and_reordering() {
    for seed in [3, 4, 5] {
        let app = ClientApp::new(client_config(transport()), 4, 256 * 1024);
        let l = link(20, 10)
            .loss(0.02)
            .reorder(0.02, Duration::from_millis(3));
        let mut pair = Pair::new(seed, l, transport(), app);
        pair.run_to_completion(Duration::from_secs(60));
        let c = pair.client();
        assert_eq!(
            (c.completed, c.corrupt),
            (4, 0),
            "seed {seed}, lost: {:?}",
            c.lost
        );
    }
}

#[test]
fn download_with_30pct_loss() {
    let app = ClientApp::new(client_config(transport()), 2, 64 * 1024);
    let l = link(10, 10).loss(0.30);
    let mut pair = Pair::new(6, l, transport(), app);
    pair.run_to_completion(Duration::from_secs(110));
    let c = pair.client();
    assert_eq!((c.completed, c.corrupt), (2, 0), "lost: {:?}", c.lost);
}

#[test]
fn many_concurrent_streams_with_small_windows() {
    let small = TransportConfig {
        stream_receive_window: 4 * 1024,
        receive_window: 32 * 1024,
        max_concurrent_bidi_streams: 50,
        ..transport()
    };
    let mut app = ClientApp::new(client_config(small.clone()), 300, 2000);
    app.concurrency = 300;
    let mut pair = Pair::new(7, link(50, 5), small, app);
    pair.run_to_completion(Duration::from_secs(60));
    let c = pair.client();
    assert_eq!((c.completed, c.corrupt), (300, 0), "lost: {:?}", c.lost);
}

#[test]
fn datagrams_both_ways() {
    let mut app = ClientApp::new(client_config(transport()), 1, 100);
    app.datagrams_to_send = 20;
    let mut pair = Pair::new(8, link(50, 5), transport(), app);
    pair.run_to_completion(Duration::from_secs(10));
    // Let echoed datagrams arrive.
    pair.sim.run_for(Duration::from_millis(200));
    let c = pair.client();
    assert_eq!(c.completed, 1);
    assert_eq!(c.datagrams_received, 20);
}

#[test]
fn application_close_code_reaches_peer() {
    let mut app = ClientApp::new(client_config(transport()), 1, 100);
    app.close_when_done = Some(42);
    let mut pair = Pair::new(9, link(50, 5), transport(), app);
    pair.run_to_completion(Duration::from_secs(10));
    pair.sim.run_for(Duration::from_millis(200));
    let closed = pair.server_node().server_app().closed.clone();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(closed[0].1.contains("code 42"), "{closed:?}");
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let app = ClientApp::new(client_config(transport()), 2, 100_000);
        let mut pair = Pair::new(seed, link(10, 10).loss(0.05), transport(), app);
        let t = pair.run_to_completion(Duration::from_secs(60));
        (t, pair.client().completed)
    };
    assert_eq!(run(11), run(11));
}

#[test]
fn peers_with_different_schedulers_interoperate() {
    use quiver_proto::sched::SchedulerKind;
    use std::sync::Arc;
    for (c, s) in [
        (SchedulerKind::Pifo, SchedulerKind::Fcfs),
        (
            SchedulerKind::Edf { drop: false },
            SchedulerKind::MultiLevel { drop: false },
        ),
        (SchedulerKind::Abs, SchedulerKind::RoundRobin),
    ] {
        let ct = TransportConfig {
            scheduler: Arc::new(c),
            ..transport()
        };
        let st = TransportConfig {
            scheduler: Arc::new(s),
            ..transport()
        };
        let app = ClientApp::new(client_config(ct), 20, 20_000);
        let mut pair = Pair::new(12, link(20, 10).loss(0.01), st, app);
        pair.run_to_completion(Duration::from_secs(60));
        let cl = pair.client();
        assert_eq!(
            (cl.completed, cl.corrupt),
            (20, 0),
            "{c} vs {s}: {:?}",
            cl.lost
        );
    }
}

/// Largest number of `from`'s datagrams sent within any `window` of virtual time after
/// `skip`, for a 2 MiB download over `l`.
fn max_burst(seed: u64, l: LinkConfig, skip: Duration, window: Duration) -> usize {
    use std::cell::RefCell;
    use std::rc::Rc;
    let app = ClientApp::new(client_config(transport()), 1, 2 << 20);
    let mut pair = Pair::new(seed, l, transport(), app);
    let server = pair.server;
    let start = pair.sim.now();
    let sends = Rc::new(RefCell::new(Vec::new()));
    let log = sends.clone();
    pair.sim.set_trace(move |e| {
        if e.from == server && matches!(e.kind, quiver_netem::sim::TraceKind::Sent) {
            log.borrow_mut().push(e.time);
        }
    });
    pair.run_to_completion(Duration::from_secs(60));
    let c = pair.client();
    assert_eq!((c.completed, c.corrupt), (1, 0), "lost: {:?}", c.lost);
    let times: Vec<_> = sends
        .borrow()
        .iter()
        .copied()
        .filter(|t| *t >= start + skip)
        .collect();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// The pacer sizes its bursts from the rate (RFC 9002 §7.7): on a slow link it still
/// spreads packets (no more than the 10-packet minimum burst, plus the ACK-only
/// packets that pacing does not hold, in any millisecond), while on a fast link it lets
/// larger bursts through so that a millisecond timer does not cap the throughput.
#[test]
fn pacing_bursts_follow_the_link_rate() {
    let slow = max_burst(
        31,
        link(10, 20).queue_limit_bytes(1 << 20),
        Duration::from_millis(300),
        Duration::from_millis(1),
    );
    assert!(slow <= 12, "slow link: {slow} datagrams in 1 ms");
    let fast = max_burst(
        32,
        link(1000, 5).queue_limit_bytes(4 << 20),
        Duration::from_millis(50),
        Duration::from_micros(1),
    );
    // Virtual timers are exact, so any pacer keeps up here: what differs is that a
    // burst (datagrams sent at one instant) is allowed to exceed the 10-packet floor.
    assert!(fast > 20, "fast link: bursts of only {fast} datagrams");
}

/// Stats of the (single) connection of a node.
fn stats_of(sim: &Sim, node: NodeId) -> ConnectionStats {
    let ep = &sim.node::<QuicNode>(node).unwrap().ep;
    let h = ep.connection_handles().next().expect("a connection");
    ep.connection(h).unwrap().stats()
}

/// Download `size` bytes over a 200 Mbit/s link with 40 ms one-way delay (BDP 2 MB)
/// from small initial receive windows (64 KiB per stream, 96 KiB per connection),
/// auto-tuned up to the defaults or not at all. Returns the virtual time of the
/// download and the client's (receiver's) stats.
fn high_bdp_download(seed: u64, tune: bool, size: usize) -> (Duration, ConnectionStats) {
    let defaults = TransportConfig::default();
    let t = TransportConfig {
        stream_receive_window: 64 * 1024,
        receive_window: 96 * 1024,
        max_stream_receive_window: if tune {
            defaults.max_stream_receive_window
        } else {
            64 * 1024
        },
        max_receive_window: if tune {
            defaults.max_receive_window
        } else {
            96 * 1024
        },
        ..transport()
    };
    let app = ClientApp::new(client_config(t.clone()), 1, size);
    let l = link(200, 40).queue_limit_bytes(2 << 20);
    let mut pair = Pair::new(seed, l, t, app);
    let elapsed = pair.run_to_completion(Duration::from_secs(120));
    let c = pair.client();
    assert_eq!((c.completed, c.corrupt), (1, 0), "lost: {:?}", c.lost);
    (elapsed, stats_of(&pair.sim, pair.client))
}

/// Receive windows auto-tune to the bandwidth-delay product: starting from windows far
/// below it, the download is several times faster than with the windows fixed, and the
/// tuned windows grow beyond the BDP (to about 4 × BDP at most: growth stops once half a
/// window takes 2 RTTs), never above the maxima.
#[test]
fn receive_windows_auto_tune_on_high_bdp_link() {
    let size = 8 << 20;
    let (fixed, fixed_stats) = high_bdp_download(41, false, size);
    let (tuned, tuned_stats) = high_bdp_download(41, true, size);
    eprintln!(
        "8 MiB over 200 Mbit/s, 80 ms RTT: fixed windows {fixed:?} ({} / {} bytes), \
         auto-tuned {tuned:?} ({} / {} bytes)",
        fixed_stats.stream_receive_window,
        fixed_stats.receive_window,
        tuned_stats.stream_receive_window,
        tuned_stats.receive_window,
    );
    assert_eq!(fixed_stats.stream_receive_window, 64 * 1024);
    assert_eq!(fixed_stats.receive_window, 96 * 1024);
    let defaults = TransportConfig::default();
    assert!(
        tuned_stats.stream_receive_window > 1 << 20,
        "{tuned_stats:?}"
    );
    assert!(tuned_stats.stream_receive_window <= defaults.max_stream_receive_window);
    assert!(tuned_stats.receive_window >= tuned_stats.stream_receive_window * 3 / 2);
    assert!(tuned_stats.receive_window <= defaults.max_receive_window);
    assert!(
        tuned * 4 < fixed,
        "auto-tuned {tuned:?} is not 4× faster than fixed {fixed:?}"
    );
}
