//! Accuracy tests of the simulator itself.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::nodes::{parse_seq, Blaster, Echo, Pinger, Sink, Transfer, HEADER_LEN};
use super::*;

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 4433))
}

/// A blaster on node 0 (addr 1) sending to a sink on node 1 (addr 2) over `link`.
fn blast(seed: u64, link: LinkConfig, blaster: Blaster) -> (Sim, NodeId, NodeId) {
    let mut sim = Sim::new(seed, Instant::now());
    let tx = sim.add_node(blaster, [addr(1)]).unwrap();
    let rx = sim.add_node(Sink::new(), [addr(2)]).unwrap();
    sim.set_link(tx, rx, link).unwrap();
    (sim, tx, rx)
}

fn sink(sim: &Sim, id: NodeId) -> &Sink {
    sim.node::<Sink>(id).unwrap()
}

fn stats(sim: &Sim, from: NodeId, to: NodeId) -> &LinkStats {
    sim.link_stats(from, to).unwrap()
}

/// `|x - n·p| ≤ 5σ` for a binomial count.
fn within_5_sigma(x: u64, n: u64, p: f64) -> bool {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (x as f64 - mean).abs() <= 5.0 * sd
}

#[test]
fn saturated_link_throughput_matches_rate() {
    for gso in [1, 8] {
        let rate = 10_000_000;
        let link = LinkConfig::new()
            .rate_bps(rate)
            .queue_limit_bytes(50_000)
            .delay(Duration::from_millis(5));
        let blaster = Blaster::new(addr(1), addr(2), 2_000, 1200)
            .paced(15_000_000)
            .gso(gso);
        let (mut sim, tx, rx) = blast(1, link, blaster);
        sim.run_for(Duration::from_secs(5));
        let measured = sink(&sim, rx).throughput_bps().unwrap();
        let err = (measured - rate as f64).abs() / rate as f64;
        assert!(err < 0.02, "gso {gso}: measured {measured} bit/s");
        let st = stats(&sim, tx, rx);
        assert!(st.dropped.queue_full > 0, "the link was not saturated");
        assert!(st.queue_high_water_bytes <= 50_000);
        assert_eq!(st.delivered_packets + st.dropped.total(), 2_000);
    }
}

#[test]
fn rtt_is_delay_plus_serialisation() {
    let delay = Duration::from_millis(20);
    for rate in [None, Some(10_000_000)] {
        let mut link = LinkConfig::new().delay(delay);
        if let Some(r) = rate {
            link = link.rate_bps(r);
        }
        let mut sim = Sim::new(3, Instant::now());
        let ping = Pinger::new(addr(1), addr(2), 50, Duration::from_millis(10)).size(100);
        let a = sim.add_node(ping, [addr(1)]).unwrap();
        let b = sim.add_node(Echo::new(), [addr(2)]).unwrap();
        sim.set_link_pair(a, b, link.clone()).unwrap();
        sim.run_for(Duration::from_secs(1));
        let pinger = sim.node::<Pinger>(a).unwrap();
        assert_eq!(pinger.answered(), 50);
        // 100 bytes at 10 Mbit/s: 80 µs per direction.
        let expected = 2 * delay + 2 * link.serialization_time(100);
        for rtt in pinger.rtts().iter().flatten() {
            assert_eq!(*rtt, expected);
        }
    }
}

#[test]
fn bernoulli_loss_rate_within_bounds() {
    let n = 100_000;
    let p = 0.02;
    let link = LinkConfig::new().loss(p);
    let (mut sim, tx, rx) = blast(5, link, Blaster::new(addr(1), addr(2), n, HEADER_LEN));
    sim.run_for(Duration::from_secs(1));
    let lost = n - sink(&sim, rx).unique();
    assert!(within_5_sigma(lost, n, p), "lost {lost} of {n}");
    assert_eq!(stats(&sim, tx, rx).dropped.loss, lost);
}

/// Lengths of runs of consecutive lost sequence numbers.
fn loss_bursts(sink: &Sink, n: u64) -> Vec<u64> {
    let mut bursts = Vec::new();
    let mut run = 0;
    for seq in 0..n {
        if sink.has(seq) {
            if run > 0 {
                bursts.push(run);
            }
            run = 0;
        } else {
            run += 1;
        }
    }
    if run > 0 {
        bursts.push(run);
    }
    bursts
}

#[test]
fn gilbert_elliott_matches_stationary_loss() {
    let n = 100_000;
    let models = [
        GilbertElliott::gilbert(0.01, 0.1),
        GilbertElliott {
            p: 0.02,
            r: 0.2,
            loss_in_bad: 0.5,
            loss_in_good: 0.01,
        },
    ];
    for ge in models {
        let link = LinkConfig::new().gilbert_elliott(ge);
        let blaster = Blaster::new(addr(1), addr(2), n, HEADER_LEN);
        let (mut sim, _, rx) = blast(11, link, blaster);
        sim.run_for(Duration::from_secs(1));
        let rate = (n - sink(&sim, rx).unique()) as f64 / n as f64;
        let expected = ge.stationary_loss();
        // Losses are correlated, so the spread is wider than binomial: with these chains
        // the standard deviation of the rate over 100k packets is below 0.4 points.
        assert!(
            (rate - expected).abs() < 0.015,
            "{ge:?}: loss {rate}, expected {expected}"
        );
    }
    // The classic Gilbert chain loses in bursts of mean length 1 / r.
    let (mut sim, _, rx) = blast(
        12,
        LinkConfig::new().gilbert_elliott(GilbertElliott::gilbert(0.01, 0.1)),
        Blaster::new(addr(1), addr(2), n, HEADER_LEN),
    );
    sim.run_for(Duration::from_secs(1));
    let bursts = loss_bursts(sink(&sim, rx), n);
    let mean = bursts.iter().sum::<u64>() as f64 / bursts.len() as f64;
    assert!((8.0..12.0).contains(&mean), "mean burst {mean}");
}

/// A busy scenario with every impairment: bulk data one way, pings both ways.
fn busy_trace(seed: u64, start: Instant) -> Vec<TraceEvent> {
    let mut sim = Sim::new(seed, start);
    let log = Rc::new(RefCell::new(Vec::new()));
    let sink_log = Rc::clone(&log);
    sim.set_trace(move |ev| sink_log.borrow_mut().push(ev.clone()));
    let link = LinkConfig::new()
        .rate_bps(2_000_000)
        .queue_limit_bytes(20_000)
        .delay(Duration::from_millis(10))
        .jitter(Duration::from_millis(3))
        .gilbert_elliott(GilbertElliott {
            p: 0.02,
            r: 0.3,
            loss_in_bad: 0.6,
            loss_in_good: 0.005,
        })
        .reorder(0.05, Duration::from_millis(4))
        .duplicate(0.02)
        .corrupt(0.02)
        .blackhole(Duration::from_millis(500), Duration::from_millis(600));
    let tx = sim
        .add_node(
            Blaster::new(addr(1), addr(2), 400, 1000).paced(3_000_000),
            [addr(1)],
        )
        .unwrap();
    let rx = sim.add_node(Sink::new(), [addr(2)]).unwrap();
    let pa = sim
        .add_node(
            Pinger::new(addr(3), addr(4), 100, Duration::from_millis(10)),
            [addr(3)],
        )
        .unwrap();
    let pb = sim.add_node(Echo::new(), [addr(4)]).unwrap();
    sim.set_link(tx, rx, link.clone()).unwrap();
    sim.set_link_pair(pa, pb, link).unwrap();
    sim.run_for(Duration::from_secs(2));
    drop(sim);
    Rc::try_unwrap(log).unwrap().into_inner()
}

#[test]
fn same_seed_replays_identically_and_other_seeds_differ() {
    let start = Instant::now();
    let a = busy_trace(42, start);
    let b = busy_trace(42, start);
    let c = busy_trace(43, start);
    assert!(a.len() > 1_000);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Every kind of event shows up in the busy scenario.
    let has = |f: &dyn Fn(&TraceKind) -> bool| a.iter().any(|e| f(&e.kind));
    assert!(has(&|k| matches!(k, TraceKind::Dropped(DropCause::Loss))));
    assert!(has(&|k| matches!(
        k,
        TraceKind::Dropped(DropCause::QueueFull)
    )));
    assert!(has(&|k| matches!(
        k,
        TraceKind::Dropped(DropCause::Blackhole)
    )));
    assert!(has(&|k| matches!(
        k,
        TraceKind::Scheduled {
            duplicate: true,
            ..
        }
    )));
    assert!(has(&|k| matches!(
        k,
        TraceKind::Scheduled {
            reordered: true,
            ..
        }
    )));
    assert!(has(&|k| matches!(
        k,
        TraceKind::Scheduled {
            corrupted_bit: Some(_),
            ..
        }
    )));
}

#[test]
fn mtu_drops_larger_datagrams() {
    let link = LinkConfig::new().mtu(1200);
    let (mut sim, tx, rx) = blast(1, link.clone(), Blaster::new(addr(1), addr(2), 10, 1201));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sink(&sim, rx).packets(), 0);
    assert_eq!(stats(&sim, tx, rx).dropped.mtu, 10);

    let (mut sim, tx, rx) = blast(1, link, Blaster::new(addr(1), addr(2), 10, 1200));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sink(&sim, rx).packets(), 10);
    assert_eq!(stats(&sim, tx, rx).dropped.total(), 0);
}

#[test]
fn blackhole_drops_exactly_the_packets_inside_the_window() {
    // 125-byte packets at 100 kbit/s: one every 10 ms, packet k sent at k · 10 ms.
    let link = LinkConfig::new()
        .delay(Duration::from_millis(30))
        .blackhole(Duration::from_millis(200), Duration::from_millis(300));
    let blaster = Blaster::new(addr(1), addr(2), 100, 125).paced(100_000);
    let (mut sim, tx, rx) = blast(1, link, blaster);
    sim.run_for(Duration::from_secs(2));
    let s = sink(&sim, rx);
    for seq in 0..100 {
        assert_eq!(s.has(seq), !(20..30).contains(&seq), "seq {seq}");
    }
    assert_eq!(stats(&sim, tx, rx).dropped.blackhole, 10);
}

#[test]
fn drop_tail_queue_overflow() {
    // 20 × 1000 B offered at once to a 1 Mbit/s link holding 5000 B: the first five are
    // queued (8 ms each on the wire), the rest are dropped at the tail.
    let link = LinkConfig::new()
        .rate_bps(1_000_000)
        .queue_limit_bytes(5_000);
    let (mut sim, tx, rx) = blast(1, link, Blaster::new(addr(1), addr(2), 20, 1000));
    let start = sim.now();
    sim.run_for(Duration::from_secs(1));
    let s = sink(&sim, rx);
    let arrivals: Vec<(Duration, u64)> = s.log().iter().map(|(t, q)| (*t - start, *q)).collect();
    let expected: Vec<(Duration, u64)> = (0..5)
        .map(|k| (Duration::from_millis(8 * (k + 1)), k))
        .collect();
    assert_eq!(arrivals, expected);
    let st = stats(&sim, tx, rx);
    assert_eq!(st.dropped.queue_full, 15);
    assert_eq!(st.queue_high_water_bytes, 5_000);

    // A fresh burst after the queue drained: again only five fit.
    let mut sim2 = Sim::new(1, start);
    let tx2 = sim2
        .add_node(
            Blaster::new(addr(1), addr(2), 20, 1000).start_at(start + Duration::from_millis(100)),
            [addr(1)],
        )
        .unwrap();
    let rx2 = sim2.add_node(Sink::new(), [addr(2)]).unwrap();
    sim2.set_link(
        tx2,
        rx2,
        LinkConfig::new()
            .rate_bps(1_000_000)
            .queue_limit_bytes(5_000),
    )
    .unwrap();
    sim2.run_for(Duration::from_secs(1));
    assert_eq!(sink(&sim2, rx2).unique(), 5);
}

#[test]
fn duplication_is_observable() {
    let n = 10_000;
    let link = LinkConfig::new().duplicate(0.1);
    let (mut sim, tx, rx) = blast(9, link, Blaster::new(addr(1), addr(2), n, HEADER_LEN));
    sim.run_for(Duration::from_secs(1));
    let s = sink(&sim, rx);
    assert_eq!(s.unique(), n);
    assert!(within_5_sigma(s.duplicates(), n, 0.1), "{}", s.duplicates());
    let st = stats(&sim, tx, rx);
    assert_eq!(st.duplicated, s.duplicates());
    assert_eq!(st.delivered_packets, n + s.duplicates());
}

#[test]
fn reordering_is_observable() {
    // One 125-byte packet per millisecond; 10 % are held back 5 ms.
    let n = 5_000;
    let link = LinkConfig::new()
        .delay(Duration::from_millis(10))
        .reorder(0.1, Duration::from_millis(5));
    let blaster = Blaster::new(addr(1), addr(2), n, 125).paced(1_000_000);
    let (mut sim, tx, rx) = blast(4, link, blaster);
    sim.run_for(Duration::from_secs(10));
    let s = sink(&sim, rx);
    let held = stats(&sim, tx, rx).reordered;
    assert_eq!(s.unique(), n);
    assert!(within_5_sigma(held, n, 0.1), "{held}");
    // Nearly every held packet is overtaken (unless all packets behind it were held too).
    assert!(
        s.reordered() <= held && s.reordered() + 5 >= held,
        "{} vs {held}",
        s.reordered()
    );
}

#[test]
fn jitter_reorders_unless_order_is_preserved() {
    let n = 2_000;
    let delay = Duration::from_millis(20);
    let jitter = Duration::from_millis(5);
    for preserve in [false, true] {
        let link = LinkConfig::new()
            .delay(delay)
            .jitter(jitter)
            .preserve_order(preserve);
        let blaster = Blaster::new(addr(1), addr(2), n, 125).paced(1_000_000);
        let (mut sim, _, rx) = blast(8, link, blaster);
        let start = sim.now();
        sim.run_for(Duration::from_secs(10));
        let s = sink(&sim, rx);
        assert_eq!(s.unique(), n);
        if preserve {
            assert_eq!(s.reordered(), 0);
        } else {
            assert!(s.reordered() > 100, "{}", s.reordered());
        }
        // Packet k is sent at k ms; jitter is bounded (order preservation only delays).
        for &(t, seq) in s.log() {
            let one_way = t - start - Duration::from_millis(seq);
            assert!(one_way >= delay - jitter, "{one_way:?}");
            if !preserve {
                assert!(one_way <= delay + jitter, "{one_way:?}");
            }
        }
    }
}

/// Records every datagram it receives.
#[derive(Default)]
struct Recorder(Vec<Vec<u8>>);

impl Node for Recorder {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: SocketAddr, data: Vec<u8>) {
        self.0.push(data);
    }
    fn poll_transmit(&mut self, _: Instant) -> Option<Datagram> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _: Instant) {}
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let mut sim = Sim::new(2, Instant::now());
    let tx = sim
        .add_node(Blaster::new(addr(1), addr(2), 200, 64), [addr(1)])
        .unwrap();
    let rx = sim.add_node(Recorder::default(), [addr(2)]).unwrap();
    sim.set_link(tx, rx, LinkConfig::new().corrupt(1.0))
        .unwrap();
    sim.run_for(Duration::from_secs(1));
    let got = &sim.node::<Recorder>(rx).unwrap().0;
    assert_eq!(got.len(), 200);
    let mut seqs_hit = 0;
    for (k, data) in got.iter().enumerate() {
        let mut original = vec![0u8; 64];
        original[..8].copy_from_slice(&(k as u64).to_be_bytes());
        let flipped: u32 = data
            .iter()
            .zip(&original)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(flipped, 1, "packet {k}");
        if parse_seq(data) != Some(k as u64) {
            seqs_hit += 1;
        }
    }
    assert!(seqs_hit > 0 && seqs_hit < 200);
    assert_eq!(stats(&sim, tx, rx).corrupted, 200);
}

#[test]
fn invalid_configuration_is_a_typed_error() {
    let bad = [
        LinkConfig::new().loss(-0.1),
        LinkConfig::new().loss(1.5),
        LinkConfig::new().loss(f64::NAN),
        LinkConfig::new().duplicate(2.0),
        LinkConfig::new().corrupt(-1.0),
        LinkConfig::new().reorder(1.1, Duration::from_millis(1)),
        LinkConfig::new().gilbert_elliott(GilbertElliott::gilbert(0.1, -0.2)),
    ];
    for cfg in bad {
        assert!(
            matches!(cfg.validate(), Err(SimError::InvalidProbability { .. })),
            "{cfg:?}"
        );
    }
    assert_eq!(
        LinkConfig::new().rate_bps(0).validate(),
        Err(SimError::ZeroRate)
    );
    assert_eq!(
        LinkConfig::new().queue_limit_bytes(0).validate(),
        Err(SimError::ZeroQueueLimit)
    );
    assert_eq!(LinkConfig::new().mtu(0).validate(), Err(SimError::ZeroMtu));
    assert!(matches!(
        LinkConfig::new()
            .blackhole(Duration::from_secs(2), Duration::from_secs(1))
            .validate(),
        Err(SimError::InvalidBlackhole { .. })
    ));
    assert!(matches!(
        LinkConfig::new().delay(MAX_DELAY * 2).validate(),
        Err(SimError::DurationTooLarge { field: "delay", .. })
    ));
    let mut sim = Sim::new(0, Instant::now());
    let a = sim.add_node(Sink::new(), [addr(1)]).unwrap();
    assert!(sim.set_link(a, a, LinkConfig::new().loss(2.0)).is_err());
    assert!(sim.set_default_link(LinkConfig::new().rate_bps(0)).is_err());
    assert_eq!(
        sim.set_link(a, NodeId(7), LinkConfig::new()),
        Err(SimError::UnknownNode(NodeId(7)))
    );
    assert_eq!(
        sim.add_node(Sink::new(), [addr(2), addr(1)]).err(),
        Some(SimError::AddressInUse {
            addr: addr(1),
            owner: a
        })
    );
    assert_eq!(sim.node_count(), 1);
    assert_eq!(sim.owner(addr(2)), None);
}

#[test]
fn profiles() {
    for name in PROFILES {
        LinkConfig::profile(name).unwrap().validate().unwrap();
    }
    let g3 = LinkConfig::profile("3g").unwrap();
    assert_eq!(g3.rate_bps, Some(5_000_000));
    assert_eq!(g3.delay * 2, Duration::from_millis(50));
    assert_eq!(g3.loss, LossModel::Bernoulli { p: 0.005 });
    assert_eq!(LinkConfig::profile("lossless").unwrap(), LinkConfig::new());
    assert!(matches!(
        LinkConfig::profile("5g"),
        Err(SimError::UnknownProfile { name, .. }) if name == "5g"
    ));
    let bursty = LinkConfig::profile("bursty").unwrap();
    let LossModel::GilbertElliott(ge) = bursty.loss else {
        panic!("bursty is Gilbert–Elliott");
    };
    assert!((ge.stationary_loss() - 0.5 * 0.01 / 0.26).abs() < 1e-12);
}

#[test]
fn three_g_profile_round_trip() {
    let mut sim = Sim::new(1, Instant::now());
    let ping = Pinger::new(addr(1), addr(2), 200, Duration::from_millis(50)).size(100);
    let a = sim.add_node(ping, [addr(1)]).unwrap();
    let b = sim.add_node(Echo::new(), [addr(2)]).unwrap();
    sim.set_link_pair(a, b, LinkConfig::profile("3g").unwrap())
        .unwrap();
    sim.run_for(Duration::from_secs(11));
    let p = sim.node::<Pinger>(a).unwrap();
    // 50 ms of added RTT plus 2 × 160 µs of serialisation for 100 bytes at 5 Mbit/s.
    let expected = Duration::from_millis(50) + Duration::from_micros(320);
    assert!(p.rtts().iter().flatten().all(|r| *r == expected));
    // About 1 % of pings (0.5 % each way) go unanswered.
    assert!(p.answered() >= 190, "{}", p.answered());
}

#[test]
fn unroutable_and_default_links() {
    let mut sim = Sim::new(0, Instant::now());
    let tx = sim
        .add_node(Blaster::new(addr(1), addr(9), 5, 100), [addr(1)])
        .unwrap();
    sim.run_for(Duration::from_millis(1));
    assert_eq!(sim.unroutable(), 5);
    assert!(sim.link_stats(tx, tx).is_none());

    // Unconfigured pairs get their own link with the default configuration, which
    // follows later changes of the default.
    let mut sim = Sim::new(0, Instant::now());
    let ping = Pinger::new(addr(1), addr(2), 3, Duration::from_millis(100));
    let a = sim.add_node(ping, [addr(1)]).unwrap();
    let b = sim.add_node(Echo::new(), [addr(2)]).unwrap();
    sim.set_default_link(LinkConfig::new().delay(Duration::from_millis(5)))
        .unwrap();
    sim.run_for(Duration::from_millis(50));
    sim.set_default_link(LinkConfig::new().delay(Duration::from_millis(7)))
        .unwrap();
    sim.run_for(Duration::from_secs(1));
    let rtts: Vec<_> = sim.node::<Pinger>(a).unwrap().rtts().to_vec();
    let ms = Duration::from_millis;
    assert_eq!(rtts, vec![Some(ms(10)), Some(ms(14)), Some(ms(14))]);
    assert_eq!(stats(&sim, a, b).delivered_packets, 3);
    assert_eq!(stats(&sim, b, a).delivered_packets, 3);
    assert_eq!(sim.link_config(a, b).delay, ms(7));
}

#[test]
fn driver_outcomes() {
    let start = Instant::now();
    let mut sim = Sim::new(0, start);
    assert!(!sim.step());
    sim.run_until(start + Duration::from_secs(3));
    assert_eq!(sim.elapsed(), Duration::from_secs(3));

    let mut sim = Sim::new(0, start);
    let tx = sim
        .add_node(
            Blaster::new(addr(1), addr(2), 10, 125).paced(1_000),
            [addr(1)],
        )
        .unwrap();
    let rx = sim.add_node(Sink::new(), [addr(2)]).unwrap();
    // One packet per second: 3 s of budget is not enough for ten.
    let limit = sim.run_while(|s| sink(s, rx).unique() < 10, Duration::from_millis(3_500));
    assert_eq!(
        limit,
        Err(SimError::TimeLimit {
            budget: Duration::from_millis(3_500)
        })
    );
    assert_eq!(sim.elapsed(), Duration::from_millis(3_500));
    assert_eq!(sink(&sim, rx).unique(), 4);
    let done = sim.run_while(|s| sink(s, rx).unique() < 10, Duration::from_secs(60));
    assert_eq!(done, Ok(start + Duration::from_secs(9)));
    let idle = sim.run_while(|s| sink(s, rx).unique() < 11, Duration::from_secs(60));
    assert!(matches!(idle, Err(SimError::Idle { .. })));
    assert!(sim.node::<Blaster>(tx).unwrap().done());
    assert!(sim.node::<Sink>(tx).is_none());
}

#[test]
fn transfer_reports_completion_time() {
    let link = LinkConfig::profile("3g").unwrap().loss(0.0);
    let report = Transfer::new(500_000).link(link).run().unwrap();
    // 500 kB at 5 Mbit/s = 800 ms, + 25 ms propagation (the last packet ends its
    // serialisation exactly on the pacing grid).
    assert_eq!(report.packets_delivered, 417);
    let done = report.completion.unwrap();
    assert!(
        done >= Duration::from_millis(825) && done <= Duration::from_millis(827),
        "{done:?}"
    );
    let lossy = Transfer::new(500_000)
        .link(LinkConfig::profile("3g").unwrap())
        .seed(3)
        .run()
        .unwrap();
    assert!(lossy.completion.is_none());
    assert_eq!(lossy.link.dropped.loss, 417 - lossy.packets_delivered);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn arb_link() -> impl Strategy<Value = LinkConfig> {
        (
            (
                proptest::option::of(100_000u64..100_000_000),
                proptest::option::of(1usize..100_000),
                0u64..50_000,
                0u64..10_000,
                any::<bool>(),
                proptest::option::of(500usize..1500),
            ),
            (
                0.0f64..0.5,
                (0.0f64..=1.0, 0.0f64..=1.0, 0.0f64..=1.0, 0.0f64..=1.0),
                any::<bool>(),
                0.0f64..0.5,
                0.0f64..0.5,
                0.0f64..0.5,
                proptest::option::of((0u64..500, 1u64..300)),
            ),
        )
            .prop_map(|((rate, queue, delay, jitter, keep, mtu), loss)| {
                let (bern, (p, r, bad, good), use_ge, reorder, dup, corrupt, hole) = loss;
                let mut cfg = LinkConfig::new()
                    .delay(Duration::from_micros(delay))
                    .jitter(Duration::from_micros(jitter))
                    .preserve_order(keep)
                    .reorder(reorder, Duration::from_millis(3))
                    .duplicate(dup)
                    .corrupt(corrupt);
                cfg.rate_bps = rate;
                cfg.queue_limit_bytes = queue;
                cfg.mtu = mtu;
                cfg = if use_ge {
                    cfg.gilbert_elliott(GilbertElliott {
                        p,
                        r,
                        loss_in_bad: bad,
                        loss_in_good: good,
                    })
                } else {
                    cfg.loss(bern)
                };
                if let Some((start, len)) = hole {
                    cfg = cfg.blackhole(
                        Duration::from_millis(start),
                        Duration::from_millis(start + len),
                    );
                }
                cfg
            })
    }

    fn run(
        seed: u64,
        link: LinkConfig,
        count: u64,
        size: usize,
        pace: Option<u64>,
        start: Instant,
    ) -> (LinkStats, Sink) {
        let mut blaster = Blaster::new(addr(1), addr(2), count, size).gso(3);
        if let Some(rate) = pace {
            blaster = blaster.paced(rate);
        }
        let mut sim = Sim::new(seed, start);
        let tx = sim.add_node(blaster, [addr(1)]).unwrap();
        let rx = sim.add_node(Sink::new(), [addr(2)]).unwrap();
        sim.set_link(tx, rx, link).unwrap();
        while sim.step() {}
        assert_eq!(sim.in_flight(), 0);
        (stats(&sim, tx, rx).clone(), sink(&sim, rx).clone())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any valid link conserves packets, never panics, and replays from its seed.
        #[test]
        fn links_conserve_packets_and_replay(
            link in arb_link(),
            seed in any::<u64>(),
            count in 1u64..200,
            size in 8usize..1600,
            pace in proptest::option::of(50_000u64..50_000_000),
        ) {
            link.validate().unwrap();
            let start = Instant::now();
            let (st, sk) = run(seed, link.clone(), count, size, pace, start);
            prop_assert_eq!(st.sent_packets, count);
            prop_assert_eq!(
                st.delivered_packets,
                count - st.dropped.total() + st.duplicated
            );
            prop_assert_eq!(sk.packets(), st.delivered_packets);
            prop_assert_eq!(sk.bytes(), st.delivered_bytes);
            if let Some(limit) = link.queue_limit_bytes {
                prop_assert!(st.queue_high_water_bytes <= limit);
            }
            let (again, _) = run(seed, link, count, size, pace, start);
            prop_assert_eq!(st, again);
        }

        /// Reference receivers never panic on arbitrary bytes.
        #[test]
        fn reference_nodes_accept_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let now = Instant::now();
            let mut s = Sink::new();
            s.handle_datagram(now, addr(1), addr(2), data.clone());
            let mut p = Pinger::new(addr(1), addr(2), 1, Duration::from_millis(1));
            let _ = p.poll_transmit(now);
            p.handle_datagram(now, addr(2), addr(1), data.clone());
            prop_assert_eq!(parse_seq(&data).is_some(), data.len() >= HEADER_LEN);
        }
    }
}

/// Sends `count` ECT(0) datagrams of `size` bytes back to back at start, and records the
/// ECN field of each datagram that arrives at its peer.
struct EcnProbe {
    src: SocketAddr,
    dst: SocketAddr,
    left: usize,
    size: usize,
    arrived: Rc<RefCell<Vec<Ecn>>>,
}

impl Node for EcnProbe {
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: SocketAddr, _: Vec<u8>) {
        panic!("the simulator must call handle_datagram_ecn");
    }
    fn handle_datagram_ecn(
        &mut self,
        _: Instant,
        _: SocketAddr,
        _: SocketAddr,
        ecn: Ecn,
        _: Vec<u8>,
    ) {
        self.arrived.borrow_mut().push(ecn);
    }
    fn poll_transmit(&mut self, _: Instant) -> Option<Datagram> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(Datagram::new(self.src, self.dst, vec![0; self.size]).with_ecn(Ecn::Ect0))
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _: Instant) {}
}

/// Runs 20 ECT(0) datagrams of 1000 bytes over `link`; returns what arrived and the stats.
fn ecn_run(link: LinkConfig) -> (Vec<Ecn>, LinkStats) {
    let arrived = Rc::new(RefCell::new(Vec::new()));
    let mut sim = Sim::new(3, Instant::now());
    let probe = |src, dst, left| EcnProbe {
        src,
        dst,
        left,
        size: 1000,
        arrived: arrived.clone(),
    };
    let tx = sim
        .add_node(probe(addr(1), addr(2), 20), [addr(1)])
        .unwrap();
    let rx = sim.add_node(probe(addr(2), addr(1), 0), [addr(2)]).unwrap();
    sim.set_link(tx, rx, link).unwrap();
    sim.run_for(Duration::from_secs(1));
    let stats = stats(&sim, tx, rx).clone();
    let got = arrived.borrow().clone();
    (got, stats)
}

#[test]
fn ecn_field_travels_unchanged_by_default() {
    let (got, st) = ecn_run(LinkConfig::new().rate_bps(8_000_000));
    assert_eq!(got, vec![Ecn::Ect0; 20]);
    assert_eq!((st.ce_marked, st.ecn_bleached), (0, 0));
}

#[test]
fn queue_above_threshold_marks_ce() {
    // A burst of 20 × 1000 bytes: packets that find ≥ 5000 bytes queued get CE.
    let (got, st) = ecn_run(LinkConfig::new().rate_bps(8_000_000).ce_threshold(5_000));
    assert_eq!(&got[..5], &[Ecn::Ect0; 5]);
    assert_eq!(&got[5..], &[Ecn::Ce; 15]);
    assert_eq!(st.ce_marked, 15);
    assert_eq!(st.dropped.total(), 0);
}

#[test]
fn bleaching_clears_and_dropping_drops_ecn_capable_packets() {
    let (got, st) = ecn_run(LinkConfig::new().bleach_ecn(true));
    assert_eq!(got, vec![Ecn::NotEct; 20]);
    assert_eq!(st.ecn_bleached, 20);
    let (got, st) = ecn_run(LinkConfig::new().drop_ecn_capable(true));
    assert!(got.is_empty());
    assert_eq!(st.dropped.ecn_capable, 20);
    assert_eq!(st.dropped.get(DropCause::EcnCapable), 20);
}

#[test]
fn ecn_bits_round_trip() {
    for b in 0..4u8 {
        assert_eq!(Ecn::from_bits(b).bits(), b);
    }
    assert!(!Ecn::NotEct.is_ecn_capable());
    assert!(Ecn::Ce.is_ecn_capable());
}
