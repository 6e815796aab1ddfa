//! An endpoint with many connections: deadlines, transmissions and events are tracked per
//! connection, so an idle connection is never visited until its own deadline, and every
//! connection still gets its turn.

mod common;

use common::{client_config, endpoint_config};
use quiver_proto::config::TransportConfig;
use quiver_proto::endpoint::Endpoint;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn remote(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 4433))
}

#[test]
fn thousand_unanswered_connections_each_time_out_on_their_own_schedule() {
    let t0 = Instant::now();
    let transport = TransportConfig {
        max_idle_timeout: Some(Duration::from_secs(5)),
        ..TransportConfig::default()
    };
    let mut ep = Endpoint::new(endpoint_config(7), None);
    let n = 1000;
    // Start the connections 1 ms apart, so their deadlines differ.
    let mut handles = Vec::new();
    let mut buf = Vec::new();
    let mut first_flight = BTreeSet::new();
    for i in 0..n {
        let now = t0 + Duration::from_millis(i as u64);
        let h = ep
            .connect(
                now,
                client_config(transport.clone()),
                remote(i),
                "localhost",
            )
            .unwrap();
        handles.push(h);
        // Each new connection sends its Initial right away.
        let t = ep.poll_transmit(now, 1, &mut buf).expect("an Initial");
        assert_eq!(t.destination, remote(i));
        assert!(t.size >= 1200);
        first_flight.insert(t.destination);
        assert!(ep.poll_transmit(now, 1, &mut buf).is_none());
    }
    assert_eq!(first_flight.len(), n);
    // The earliest deadline is the first connection's (its Initial's PTO).
    let first = ep.poll_timeout().expect("a deadline");
    assert!(first > t0 && first < t0 + Duration::from_secs(2));

    // Drive time forward: every deadline fires in order, retransmissions go to the
    // right peers, and all connections end by idle timeout with ConnectionLost.
    let mut lost = BTreeSet::new();
    let mut retransmitted = BTreeSet::new();
    let mut last = t0;
    let mut steps = 0;
    while let Some(at) = ep.poll_timeout() {
        assert!(at >= last, "deadlines go backwards");
        last = at;
        steps += 1;
        assert!(steps < 100 * n, "no progress");
        ep.handle_timeout(at);
        while let Some(t) = ep.poll_transmit(at, 1, &mut buf) {
            retransmitted.insert(t.destination);
        }
        while let Some((h, ev)) = ep.poll_event() {
            if let quiver_proto::connection::Event::ConnectionLost { .. } = ev {
                assert!(lost.insert(h), "lost twice");
            }
        }
    }
    assert_eq!(retransmitted.len(), n, "every connection probed");
    assert_eq!(lost.len(), n, "every connection timed out");
    assert_eq!(ep.connection_count(), 0, "drained connections are freed");
    assert!(last >= t0 + Duration::from_secs(5));
}
