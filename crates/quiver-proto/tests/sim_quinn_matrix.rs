//! The interop-runner network-condition matrix against quinn 0.11, in the simulator.
//!
//! quinn-proto (the sans-IO core under quinn) runs as a simulator node (`quinn_sim`), so
//! Quiver ↔ quinn runs in virtual time under seeded conditions, in both directions
//! (Quiver client → quinn server, quinn client → Quiver server). Each case downloads a
//! file and checks it byte for byte, and checks that the condition really happened
//! (packets lost, corrupted, blackholed, reordered). Both sides use the seeded crypto
//! provider (`quiver_proto::crypto::deterministic`) and seeded endpoints, so a failure
//! replays exactly from its seed.
//!
//! | case | condition |
//! |---|---|
//! | transferloss | 2 % random loss both ways, 1 MiB |
//! | handshakeloss | 30 % loss both ways, 5 connections of 16 KiB |
//! | handshakecorruption | 30 % of packets get a bit flip, 5 connections |
//! | transfercorruption | 2 % bit flips, 1 MiB |
//! | blackhole | link dark both ways for 2 s mid-transfer, 2 MiB |
//! | amplificationlimit | ~5 KB certificate chain, the client's packets after its first Initial are lost for 1 s; the server never sends more than 3× what it received before the client's address is validated |
//! | reordering | 10 % of packets delayed 25 ms past their successors, 1 MiB |
//! | longrtt | 600 ms RTT, 1 MiB |

mod common;
mod quinn_sim;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use quinn_sim::QuinnNode;
use quiver_netem::sim::{LinkConfig, NodeId, Sim};
use quiver_proto::config::TransportConfig;

const MIB: usize = 1 << 20;

/// Which implementation plays which role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Quiver client, quinn server.
    QuiverToQuinn,
    /// quinn client, Quiver server.
    QuinnToQuiver,
}

const BOTH: [Dir; 2] = [Dir::QuiverToQuinn, Dir::QuinnToQuiver];

fn client_addr_n(i: usize) -> SocketAddr {
    SocketAddr::new(
        format!("10.0.1.{}", i + 2).parse().unwrap(),
        50000 + i as u16,
    )
}

/// A scenario: the link (both directions, or per direction), the download, and how
/// many connections.
struct Case {
    name: &'static str,
    seed: u64,
    /// Client → server link.
    up: LinkConfig,
    /// Server → client link.
    down: LinkConfig,
    size: usize,
    connections: usize,
    cert_copies: usize,
    budget: Duration,
}

impl Case {
    fn symmetric(name: &'static str, seed: u64, link: LinkConfig, size: usize) -> Self {
        Case {
            name,
            seed,
            up: link.clone(),
            down: link,
            size,
            connections: 1,
            cert_copies: 1,
            budget: Duration::from_secs(120),
        }
    }
}

/// What a run produced.
struct Outcome {
    /// Per connection: verified byte for byte.
    verified: Vec<bool>,
    /// Per connection: failure description, if any.
    failures: Vec<String>,
    elapsed: Duration,
    up_stats: quiver_netem::sim::LinkStats,
    down_stats: quiver_netem::sim::LinkStats,
    server_log: Vec<Seen>,
}

fn quiver_transport() -> TransportConfig {
    TransportConfig::default()
}

fn quinn_transport() -> quinn_proto::TransportConfig {
    quinn_proto::TransportConfig::default()
}

fn run(case: &Case, dir: Dir) -> Outcome {
    let start = Instant::now();
    let mut sim = Sim::new(case.seed, start);
    let server_log: Log = Log::default();
    let server: NodeId = match dir {
        Dir::QuiverToQuinn => {
            let tls = quiver_proto::crypto::deterministic::Deterministic::new(case.seed ^ 0x51)
                .server_config(
                    deterministic_identity(case.seed, case.cert_copies).0,
                    deterministic_identity(case.seed, case.cert_copies).1,
                    &[ALPN],
                    quiver_proto::crypto::CipherSuiteSelection::All,
                    None,
                )
                .unwrap();
            let config = quinn_sim::server_config(case.seed ^ 0x52, tls, quinn_transport());
            let node = QuinnNode::server(case.seed ^ 0x53, server_addr(), config);
            sim.add_node(
                Tap {
                    inner: node,
                    start,
                    log: server_log.clone(),
                },
                [server_addr()],
            )
            .unwrap()
        }
        Dir::QuinnToQuiver => {
            let config =
                deterministic_server_config(case.seed ^ 0x51, case.cert_copies, quiver_transport());
            let node =
                QuicNode::server_from(endpoint_config(case.seed ^ 0x53), config, server_addr());
            sim.add_node(
                Tap {
                    inner: node,
                    start,
                    log: server_log.clone(),
                },
                [server_addr()],
            )
            .unwrap()
        }
    };
    let mut clients = Vec::new();
    match dir {
        Dir::QuiverToQuinn => {
            // One Quiver client node per connection (all start at once).
            for i in 0..case.connections {
                let config =
                    deterministic_client_config(case.seed ^ 0x61 ^ i as u64, quiver_transport());
                let app = ClientApp::new(config, 1, case.size);
                let mut node = QuicNode::client(case.seed ^ 0x62 ^ ((i as u64) << 8), app, start);
                node.addr = client_addr_n(i);
                clients.push(sim.add_node(node, [client_addr_n(i)]).unwrap());
            }
        }
        Dir::QuinnToQuiver => {
            // One quinn client opening its connections one after the other.
            let tls = quiver_proto::crypto::deterministic::Deterministic::new(case.seed ^ 0x61)
                .insecure_client_config(
                    &[ALPN],
                    quiver_proto::crypto::CipherSuiteSelection::All,
                    None,
                )
                .unwrap();
            let config = quinn_sim::client_config(tls, quinn_transport());
            let node = QuinnNode::client(
                case.seed ^ 0x62,
                client_addr_n(0),
                server_addr(),
                config,
                case.size,
                case.connections,
                start,
            );
            clients.push(sim.add_node(node, [client_addr_n(0)]).unwrap());
        }
    }
    for &c in &clients {
        sim.set_link(c, server, case.up.clone()).unwrap();
        sim.set_link(server, c, case.down.clone()).unwrap();
    }
    let finished = |sim: &Sim| -> bool {
        match dir {
            Dir::QuiverToQuinn => clients.iter().all(|&c| {
                let app = sim.node::<QuicNode>(c).unwrap().client_app();
                app.done_at.is_some() || app.lost.is_some()
            }),
            Dir::QuinnToQuiver => sim.node::<QuinnNode>(clients[0]).unwrap().client_finished(),
        }
    };
    let _ = sim.run_while(|sim| !finished(sim), case.budget);
    let elapsed = sim.now() - start;
    let mut verified = Vec::new();
    let mut failures = Vec::new();
    match dir {
        Dir::QuiverToQuinn => {
            for &c in &clients {
                let app = sim.node::<QuicNode>(c).unwrap().client_app();
                let ok = app.completed == 1 && app.corrupt == 0;
                verified.push(ok);
                if !ok {
                    failures.push(format!(
                        "completed {} corrupt {} lost {:?} connected {:?}",
                        app.completed,
                        app.corrupt,
                        app.lost,
                        app.connected_at.map(|t| t - start)
                    ));
                }
            }
        }
        Dir::QuinnToQuiver => {
            let node = sim.node::<QuinnNode>(clients[0]).unwrap();
            for r in node.results() {
                verified.push(r.verified);
                if !r.verified {
                    failures.push(format!("{r:?}"));
                }
            }
            while verified.len() < case.connections {
                verified.push(false);
                failures.push("connection never opened".into());
            }
        }
    }
    let sum = |from: NodeId, to: NodeId, acc: &mut quiver_netem::sim::LinkStats| {
        let s = sim.link_stats(from, to).cloned().unwrap_or_default();
        acc.sent_packets += s.sent_packets;
        acc.sent_bytes += s.sent_bytes;
        acc.delivered_packets += s.delivered_packets;
        acc.corrupted += s.corrupted;
        acc.reordered += s.reordered;
        acc.dropped.loss += s.dropped.loss;
        acc.dropped.blackhole += s.dropped.blackhole;
    };
    let mut up_stats = quiver_netem::sim::LinkStats::default();
    let mut down_stats = quiver_netem::sim::LinkStats::default();
    for &c in &clients {
        sum(c, server, &mut up_stats);
        sum(server, c, &mut down_stats);
    }
    let server_log = server_log.borrow().clone();
    Outcome {
        verified,
        failures,
        elapsed,
        up_stats,
        down_stats,
        server_log,
    }
}

/// Run `case` both ways and require every connection to deliver the file intact.
fn check(case: &Case) -> Vec<Outcome> {
    let mut outs = Vec::new();
    for dir in BOTH {
        let out = run(case, dir);
        assert!(
            out.verified.len() == case.connections && out.verified.iter().all(|v| *v),
            "{} {:?} (seed {}): {:?} after {:?}",
            case.name,
            dir,
            case.seed,
            out.failures,
            out.elapsed
        );
        eprintln!(
            "{} {:?}: {} connection(s) ok in {:?} virtual; up {:?}, down {:?}",
            case.name,
            dir,
            case.connections,
            out.elapsed,
            (
                out.up_stats.sent_packets,
                out.up_stats.dropped.total(),
                out.up_stats.corrupted
            ),
            (
                out.down_stats.sent_packets,
                out.down_stats.dropped.total(),
                out.down_stats.corrupted
            ),
        );
        outs.push(out);
    }
    outs
}

fn base_link() -> LinkConfig {
    LinkConfig::new()
        .rate_bps(20_000_000)
        .delay(Duration::from_millis(15))
}

#[test]
fn transferloss() {
    let case = Case::symmetric("transferloss", 0x7105, base_link().loss(0.02), MIB);
    for out in check(&case) {
        assert!(out.down_stats.dropped.loss > 0 && out.up_stats.dropped.loss > 0);
    }
}

#[test]
fn handshakeloss() {
    let mut case = Case::symmetric("handshakeloss", 0x4a11, base_link().loss(0.30), 16 * 1024);
    case.connections = 5;
    case.budget = Duration::from_secs(300);
    for out in check(&case) {
        assert!(out.down_stats.dropped.loss > 0 && out.up_stats.dropped.loss > 0);
    }
}

#[test]
fn handshakecorruption() {
    let mut case = Case::symmetric(
        "handshakecorruption",
        0xc044,
        base_link().corrupt(0.30),
        16 * 1024,
    );
    case.connections = 5;
    case.budget = Duration::from_secs(300);
    for out in check(&case) {
        assert!(out.down_stats.corrupted > 0 && out.up_stats.corrupted > 0);
    }
}

#[test]
fn transfercorruption() {
    let case = Case::symmetric("transfercorruption", 0x7c04, base_link().corrupt(0.02), MIB);
    for out in check(&case) {
        assert!(out.down_stats.corrupted > 0);
    }
}

#[test]
fn blackhole() {
    // 2 MiB at 20 Mbit/s takes ~0.9 s of serialisation: the outage starts mid-transfer.
    let link = base_link().blackhole(Duration::from_millis(400), Duration::from_millis(2400));
    let case = Case::symmetric("blackhole", 0xb1ac, link, 2 * MIB);
    for out in check(&case) {
        assert!(out.down_stats.dropped.blackhole > 0 && out.up_stats.dropped.blackhole > 0);
        assert!(
            out.elapsed > Duration::from_millis(2400),
            "finished before the outage ended"
        );
    }
}

#[test]
fn reordering() {
    let link = base_link().reorder(0.10, Duration::from_millis(25));
    let case = Case::symmetric("reordering", 0x4e04, link, MIB);
    for out in check(&case) {
        assert!(out.down_stats.reordered > 0);
    }
}

#[test]
fn longrtt() {
    let link = LinkConfig::new()
        .rate_bps(20_000_000)
        .delay(Duration::from_millis(300));
    let case = Case::symmetric("longrtt", 0x1047, link, MIB);
    for out in check(&case) {
        assert!(out.elapsed > Duration::from_millis(1200));
    }
}

/// Whether a datagram carries a packet that validates the client's address at the
/// server (RFC 9000 §8.1): a Handshake packet (long header type 2) or a 1-RTT packet.
/// Walks coalesced long-header packets by their Length fields (QUIC v1 and v2 types).
fn validates_address(d: &[u8]) -> bool {
    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let first = *b.get(*i)?;
        let len = 1usize << (first >> 6);
        let bytes = b.get(*i..*i + len)?;
        let mut v = u64::from(first & 0x3f);
        for x in &bytes[1..] {
            v = (v << 8) | u64::from(*x);
        }
        *i += len;
        Some(v)
    }
    let mut i = 0;
    while i < d.len() {
        let first = d[i];
        if first & 0x80 == 0 {
            return true; // short header: 1-RTT
        }
        let Some(version) = d.get(i + 1..i + 5) else {
            return false;
        };
        let version = u32::from_be_bytes(version.try_into().unwrap());
        let ty = (first >> 4) & 0x3;
        // v1: Initial 0, 0-RTT 1, Handshake 2, Retry 3; v2: Initial 1, 0-RTT 2, Handshake 3, Retry 0.
        let handshake = if version == 0x6b33_43cf { 3 } else { 2 };
        let initial = if version == 0x6b33_43cf { 1 } else { 0 };
        if ty == handshake {
            return true;
        }
        let mut j = i + 5;
        let Some(&dcil) = d.get(j) else { return false };
        j += 1 + dcil as usize;
        let Some(&scil) = d.get(j) else { return false };
        j += 1 + scil as usize;
        if ty == initial {
            let Some(tl) = varint(d, &mut j) else {
                return false;
            };
            j += tl as usize;
        }
        let Some(len) = varint(d, &mut j) else {
            return false;
        };
        i = j + len as usize;
    }
    false
}

#[test]
fn amplificationlimit() {
    // Ed25519 certificates are ~300 bytes: 16 copies make the server's first flight far
    // larger than 3 × one 1200-byte Initial. Everything the client sends after its first
    // Initial is lost for one second, so the server must stop at 3× and wait.
    let up = base_link().blackhole(Duration::from_millis(1), Duration::from_millis(1000));
    let case = Case {
        name: "amplificationlimit",
        seed: 0xa3f1,
        up,
        down: base_link(),
        size: 64 * 1024,
        connections: 1,
        cert_copies: 16,
        budget: Duration::from_secs(60),
    };
    for (out, dir) in check(&case).into_iter().zip(BOTH) {
        let mut received = 0usize;
        let mut sent = 0usize;
        let mut max_ratio_hit = false;
        let mut validated = false;
        for seen in &out.server_log {
            if seen.out {
                sent += seen.data.len();
                if !validated {
                    assert!(
                        sent <= 3 * received,
                        "{dir:?}: server sent {sent} bytes after receiving {received} before validation"
                    );
                    if sent + 1200 > 3 * received {
                        max_ratio_hit = true;
                    }
                }
            } else {
                received += seen.data.len();
                if validates_address(&seen.data) {
                    validated = true;
                }
            }
        }
        assert!(
            validated,
            "{dir:?}: the client's address was never validated"
        );
        assert!(
            max_ratio_hit,
            "{dir:?}: the server never reached its 3× budget (chain too small?)"
        );
    }
}
