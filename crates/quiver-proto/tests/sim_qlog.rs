//! The typed event stream ([`quiver_proto::qlog`]) of a simulated transfer with loss:
//! a subscriber on each side collects every event, and the test checks that the
//! stream tells a consistent story (packets lost and acknowledged were sent, received
//! packets were sent by the peer with the same size, packet numbers grow, recovery
//! metrics and congestion states appear), and that it serialises to qlog JSON-SEQ.

mod common;

use common::{client_config, ClientApp, Pair};
use quiver_netem::sim::LinkConfig;
use quiver_proto::config::TransportConfig;
use quiver_proto::qlog::{
    CongestionState, ConnectionInfo, ConnectionState, Event, EventSubscriber, FrameInfo,
    JsonSeqWriter, PacketType, SubscriberFactory,
};
use quiver_proto::Side;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Log = Arc<Mutex<Vec<(Side, ConnectionInfo, Vec<(Instant, Event)>)>>>;

/// Collects the events of each connection into a shared log.
struct Collector {
    log: Log,
    index: usize,
}

impl EventSubscriber for Collector {
    fn on_event(&mut self, time: Instant, event: &Event) {
        self.log.lock().unwrap()[self.index]
            .2
            .push((time, event.clone()));
    }
}

struct CollectorFactory(Log);

impl SubscriberFactory for CollectorFactory {
    fn build(&self, info: &ConnectionInfo) -> Option<Box<dyn EventSubscriber>> {
        let mut log = self.0.lock().unwrap();
        log.push((info.side, *info, Vec::new()));
        Some(Box::new(Collector {
            log: self.0.clone(),
            index: log.len() - 1,
        }))
    }
}

fn transport(log: &Log) -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(Duration::from_secs(120)),
        event_subscriber: Some(Arc::new(CollectorFactory(log.clone()))),
        ..TransportConfig::default()
    }
}

fn link() -> LinkConfig {
    LinkConfig::new()
        .rate_bps(20_000_000)
        .delay(Duration::from_millis(10))
        .queue_limit_bytes(256 * 1024)
        .loss(0.03)
}

type Sent = BTreeMap<(&'static str, u64), usize>;

/// Packets sent per (packet type, number) with their size; asserts numbers grow per
/// type (one packet-number space per type here: no 0-RTT).
fn sent_packets(events: &[(Instant, Event)]) -> Sent {
    let mut sent = Sent::new();
    let mut last: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (_, e) in events {
        if let Event::PacketSent(p) = e {
            let ty = p.header.packet_type.as_str();
            let pn = p.header.packet_number.expect("sent packets carry a number");
            if let Some(prev) = last.insert(ty, pn) {
                assert!(pn > prev, "{ty} packet numbers must grow: {prev} then {pn}");
            }
            sent.insert((ty, pn), p.raw_length);
        }
    }
    sent
}

#[test]
fn events_of_a_lossy_transfer_are_consistent() {
    let log: Log = Arc::default();
    let mut app = ClientApp::new(client_config(transport(&log)), 4, 256 * 1024);
    app.close_when_done = Some(0);
    let mut pair = Pair::new(7, link(), transport(&log), app);
    pair.run_to_completion(Duration::from_secs(60));
    assert_eq!(pair.client().completed, 4, "lost: {:?}", pair.client().lost);
    // Let the close reach the server and the draining periods end.
    pair.sim.run_for(Duration::from_secs(5));

    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2, "one traced connection per side");
    let by_side = |side: Side| {
        log.iter()
            .find(|(s, _, _)| *s == side)
            .expect("both sides traced")
    };
    let (_, client_info, client) = by_side(Side::Client);
    let (_, server_info, server) = by_side(Side::Server);
    assert_eq!(
        client_info.odcid, server_info.odcid,
        "both name the trace by the ODCID"
    );

    for (name, events, peer) in [("client", client, server), ("server", server, client)] {
        // Event times never go backwards.
        assert!(
            events.windows(2).all(|w| w[0].0 <= w[1].0),
            "{name}: time order"
        );
        let sent = sent_packets(events);
        let peer_sent = sent_packets(peer);
        let mut acked = BTreeSet::new();
        let mut lost = 0;
        let mut metrics = 0;
        let mut states = Vec::new();
        let mut cc_states = BTreeSet::new();
        for (_, e) in events {
            match e {
                Event::PacketReceived(p) => {
                    let ty = p.header.packet_type.as_str();
                    let pn = p
                        .header
                        .packet_number
                        .expect("received packets carry a number");
                    // Every packet received was sent by the peer, with the same size.
                    assert_eq!(
                        peer_sent.get(&(ty, pn)),
                        Some(&p.raw_length),
                        "{name} received {ty} {pn} that the peer did not send"
                    );
                    for f in &p.frames {
                        if let FrameInfo::Ack { acked_ranges, .. } = f {
                            for &(lo, hi) in acked_ranges {
                                assert!(lo <= hi);
                                for n in lo..=hi {
                                    // Everything the peer acknowledges, we sent.
                                    assert!(
                                        sent.contains_key(&(ty, n)),
                                        "{name}: peer acknowledged {ty} {n}, never sent"
                                    );
                                    acked.insert((ty, n));
                                }
                            }
                        }
                    }
                }
                Event::PacketLost(l) => {
                    let key = (l.packet_type.as_str(), l.packet_number);
                    assert!(sent.contains_key(&key), "{name}: lost {key:?} never sent");
                    assert!(
                        !acked.contains(&key),
                        "{name}: {key:?} declared lost after it was acknowledged"
                    );
                    lost += 1;
                }
                Event::MetricsUpdated(m) => {
                    assert!(!m.is_empty(), "{name}: empty metrics_updated");
                    metrics += 1;
                }
                Event::ConnectionStateUpdated { new, .. } => states.push(*new),
                Event::CongestionStateUpdated { new, .. } => {
                    cc_states.insert(format!("{new:?}"));
                }
                _ => {}
            }
        }
        // The receiver's metrics change with its RTT samples; the sender's with every
        // flight.
        let min_metrics = if name == "server" { 50 } else { 3 };
        assert!(
            metrics >= min_metrics,
            "{name}: {metrics} metrics_updated events"
        );
        let has = |f: fn(&quiver_proto::qlog::Metrics) -> bool| {
            events
                .iter()
                .any(|(_, e)| matches!(e, Event::MetricsUpdated(m) if f(m)))
        };
        assert!(has(|m| m.smoothed_rtt.is_some() && m.min_rtt.is_some()));
        assert!(has(|m| m.congestion_window.is_some()));
        assert!(has(|m| m.bytes_in_flight.is_some()));
        assert_eq!(
            states.first(),
            Some(&ConnectionState::Attempted),
            "{name}: {states:?}"
        );
        assert!(
            states.contains(&ConnectionState::HandshakeConfirmed),
            "{name}: {states:?}"
        );
        assert!(
            cc_states.contains(&format!("{:?}", CongestionState::SlowStart)),
            "{name}: {cc_states:?}"
        );
        let closed = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::ConnectionClosed(_)))
            .count();
        assert_eq!(closed, 1, "{name}: one connection_closed");
        if name == "server" {
            // The server sends the data: with 3% loss some of it is lost, the window
            // reacts and a recovery period starts.
            assert!(lost > 0, "server declared no packet lost");
            assert!(
                cc_states.contains(&format!("{:?}", CongestionState::Recovery)),
                "{cc_states:?}"
            );
        }
        for ty in [
            PacketType::Initial,
            PacketType::Handshake,
            PacketType::OneRtt,
        ] {
            assert!(
                sent.keys().any(|(t, _)| *t == ty.as_str()),
                "{name} sent no {ty:?} packet"
            );
        }
        let keys = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::KeyUpdated(_)))
            .count();
        assert_eq!(
            keys, 6,
            "{name}: initial, handshake and 1-RTT keys for both sides"
        );
    }

    // The same stream serialises to qlog JSON-SEQ: a header, then one record per event.
    let mut writer = JsonSeqWriter::new(Vec::new(), client_info, 1.7e12, "test").unwrap();
    for (t, e) in client {
        writer.on_event(*t, e);
    }
    let out = writer.into_inner().unwrap();
    let records: Vec<&[u8]> = out.split(|b| *b == 0x1e).skip(1).collect();
    assert_eq!(records.len(), client.len() + 1);
    for r in &records {
        assert_eq!(r.last(), Some(&b'\n'), "each record ends with a line feed");
        let v: serde_json::Value = serde_json::from_slice(r).unwrap();
        assert!(v.is_object());
    }
}

#[test]
fn no_subscriber_no_factory_call() {
    // A factory that declines leaves the connection untraced (and the transfer works).
    struct Decline(Arc<Mutex<u32>>);
    impl SubscriberFactory for Decline {
        fn build(&self, _: &ConnectionInfo) -> Option<Box<dyn EventSubscriber>> {
            *self.0.lock().unwrap() += 1;
            None
        }
    }
    let asked = Arc::new(Mutex::new(0));
    let t = TransportConfig {
        event_subscriber: Some(Arc::new(Decline(asked.clone()))),
        ..TransportConfig::default()
    };
    let app = ClientApp::new(client_config(t.clone()), 1, 64 * 1024);
    let mut pair = Pair::new(8, link(), t, app);
    pair.run_to_completion(Duration::from_secs(30));
    assert_eq!(pair.client().completed, 1);
    assert_eq!(*asked.lock().unwrap(), 2, "asked once per connection");
}
