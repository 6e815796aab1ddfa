//! Tests on real namespaces. They need root; each first tries to create a namespace and
//! skips (printing why) only if that is impossible — or fails, under
//! `QUIVER_REQUIRE_PRIVILEGED=1` (CI). Every test asserts at the end that
//! nothing it created is left, also when its measurements fail.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cmd::run;
use super::*;

/// Returns from the test unless namespaces can be created here (see
/// [`privileged_test`]: skips, or fails under `QUIVER_REQUIRE_PRIVILEGED`).
macro_rules! require_namespaces {
    ($test:literal) => {
        if !privileged_test($test) {
            return;
        }
    };
}

/// What a topology created, to check after it is gone.
struct Created {
    namespaces: Vec<String>,
    root_links: Vec<String>,
}

impl Created {
    fn of(t: &Topology) -> Self {
        Self {
            namespaces: t.namespaces().to_vec(),
            root_links: t.root_links().to_vec(),
        }
    }

    fn assert_gone(&self) {
        let ns: BTreeSet<String> = list_netns().unwrap().into_iter().collect();
        let links: BTreeSet<String> = list_root_links().unwrap().into_iter().collect();
        let left: Vec<&String> = self
            .namespaces
            .iter()
            .filter(|n| ns.contains(*n))
            .chain(self.root_links.iter().filter(|l| links.contains(*l)))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// Runs `body` with the topology; always tears it down and checks that nothing is left,
/// then re-raises a failure of `body`.
fn with_topology<T>(topo: Topology, body: impl FnOnce(&Topology) -> T) -> (T, TopologyReport) {
    let created = Created::of(&topo);
    let outcome = catch_unwind(AssertUnwindSafe(|| body(&topo)));
    let report = topo.shutdown();
    created.assert_gone();
    match outcome {
        Ok(v) => (v, report.expect("clean shutdown")),
        Err(p) => resume_unwind(p),
    }
}

fn bind(port: u16) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    s
}

/// An echo server in `node` on port 7 until `stop`.
fn echo_server(topo: &Topology, node: &str, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    topo.spawn_in(node, move || {
        let s = bind(7);
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
    })
    .expect("spawn echo server")
}

/// Sequential echo round trips from `node` to `dst:7`; lost probes are skipped.
fn echo_rtts(topo: &Topology, node: &str, dst: Ipv4Addr, probes: u32) -> Vec<Duration> {
    topo.spawn_in(node, move || {
        let s = bind(0);
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.connect((dst, 7)).unwrap();
        let mut rtts = Vec::new();
        let mut buf = [0u8; 64];
        for seq in 0..probes {
            let mut msg = [0u8; 64];
            msg[..4].copy_from_slice(&seq.to_be_bytes());
            let t0 = Instant::now();
            s.send(&msg).unwrap();
            while let Ok(n) = s.recv(&mut buf) {
                if n >= 4 && buf[..4] == seq.to_be_bytes() {
                    rtts.push(t0.elapsed());
                    break;
                }
            }
        }
        rtts
    })
    .unwrap()
    .join()
    .unwrap()
}

/// Sends `count` datagrams of `len` bytes (sequence number first) to `dst` at `bps`
/// (counting IP+UDP+Ethernet headers, as the link does).
fn paced_sender(
    topo: &Topology,
    node: &str,
    dst: SocketAddr,
    len: usize,
    bps: u64,
    count: u32,
) -> JoinHandle<()> {
    topo.spawn_in(node, move || {
        let s = bind(0);
        let wire_bits = ((len + 42) * 8) as u64;
        let interval = Duration::from_nanos(wire_bits * 1_000_000_000 / bps);
        let mut msg = vec![0u8; len];
        let start = Instant::now();
        for seq in 0..count {
            let due = start + interval * seq;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            msg[..4].copy_from_slice(&seq.to_be_bytes());
            let _ = s.send_to(&msg, dst);
        }
    })
    .unwrap()
}

#[derive(Debug, Default)]
struct Received {
    packets: u64,
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    first_len: u64,
    reordered: u64,
}

impl Received {
    /// Payload goodput between the first and the last arrival, in bit/s.
    fn goodput(&self) -> f64 {
        match (self.first, self.last) {
            (Some(f), Some(l)) if l > f => {
                (self.bytes - self.first_len) as f64 * 8.0 / (l - f).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Counts datagrams arriving on `port` in `node` until `idle` passes without one (after
/// the first).
fn sink(topo: &Topology, node: &str, port: u16, idle: Duration) -> JoinHandle<Received> {
    topo.spawn_in(node, move || {
        let s = bind(port);
        let mut r = Received::default();
        let mut buf = [0u8; 2048];
        let mut max_seq = None;
        let opened = Instant::now();
        loop {
            match s.recv(&mut buf) {
                Ok(n) => {
                    let now = Instant::now();
                    r.first.get_or_insert(now);
                    if r.packets == 0 {
                        r.first_len = n as u64;
                    }
                    r.last = Some(now);
                    r.packets += 1;
                    r.bytes += n as u64;
                    let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
                    if max_seq.is_some_and(|m| seq < m) {
                        r.reordered += 1;
                    }
                    max_seq = max_seq.max(Some(seq));
                }
                Err(_) => {
                    let quiet_since = r.last.unwrap_or(opened);
                    if quiet_since.elapsed() > idle
                        && (r.last.is_some() || opened.elapsed() > Duration::from_secs(20))
                    {
                        return r;
                    }
                }
            }
        }
    })
    .unwrap()
}

fn two_nodes(params: LinkParams) -> TopologySpec {
    let mut spec = TopologySpec::new();
    spec.seed = 1;
    spec.add_node("a").unwrap().add_node("b").unwrap();
    spec.add_link(LinkSpec::new(
        Endpoint::Node("a".into()),
        Endpoint::Node("b".into()),
        params,
    ))
    .unwrap();
    spec
}

/// The headline test: a 3G link (5 Mbit/s, 25 ms each way, 0.5% loss each way).
#[test]
fn udp_across_3g_link() {
    require_namespaces!("udp_across_3g_link");
    let t_start = Instant::now();
    let topo = Topology::up(&two_nodes(Profile::ThreeG.params())).expect("topology up");
    let ((rtts, goodput, loss_ab, loss_ba), report) = with_topology(topo, |topo| {
        let a = topo.addr("a").unwrap();
        let b = topo.addr("b").unwrap();
        // 1. Round-trip time of small packets on an idle link.
        let stop = Arc::new(AtomicBool::new(false));
        let echo = echo_server(topo, "b", Arc::clone(&stop));
        let mut rtts = echo_rtts(topo, "a", b, 60);
        stop.store(true, Ordering::Relaxed);
        echo.join().unwrap();
        rtts.sort();

        // 2. Goodput: offer 7 Mbit/s of 1200-byte datagrams for ~3.5 s.
        let rx = sink(topo, "b", 9000, Duration::from_millis(1500));
        paced_sender(topo, "a", (b, 9000).into(), 1200, 7_000_000, 2500)
            .join()
            .unwrap();
        let goodput = rx.join().unwrap();

        // 3. Loss, both directions at once, below the link rate (3 Mbit/s of 100-byte
        //    datagrams, 16000 each way: 0.5% gives 80 ± 9 losses).
        let rx_b = sink(topo, "b", 9001, Duration::from_millis(1000));
        let rx_a = sink(topo, "a", 9001, Duration::from_millis(1000));
        let tx_a = paced_sender(topo, "a", (b, 9001).into(), 100, 3_000_000, 16_000);
        let tx_b = paced_sender(topo, "b", (a, 9001).into(), 100, 3_000_000, 16_000);
        tx_a.join().unwrap();
        tx_b.join().unwrap();
        (rtts, goodput, rx_b.join().unwrap(), rx_a.join().unwrap())
    });
    let median = rtts[rtts.len() / 2];
    let lost = |r: &Received| 1.0 - r.packets as f64 / 16_000.0;
    let w = report.wires[0];
    eprintln!(
        "3g link: {} RTT samples, min {:?}, median {:?}, max {:?}; goodput {:.3} Mbit/s ({} datagrams); \
         loss a→b {:.3}% b→a {:.3}%; reordered {}/{}; test took {:?}",
        rtts.len(),
        rtts[0],
        median,
        rtts[rtts.len() - 1],
        goodput.goodput() / 1e6,
        goodput.packets,
        lost(&loss_ab) * 100.0,
        lost(&loss_ba) * 100.0,
        loss_ab.reordered,
        loss_ba.reordered,
        t_start.elapsed(),
    );
    eprintln!(
        "wire: {} + {} frames, CPU {:?} ({:?} user) over {:?} → {:?} per frame",
        w.frames[0],
        w.frames[1],
        w.cpu,
        w.cpu_user,
        w.wall,
        w.cpu_per_frame().unwrap_or_default()
    );
    assert!(
        rtts.len() >= 55,
        "too many echo probes lost: {}",
        60 - rtts.len()
    );
    assert!(
        rtts[0] >= Duration::from_millis(50),
        "RTT below 2 × 25 ms: {:?}",
        rtts[0]
    );
    assert!(
        median <= Duration::from_millis(60),
        "median RTT {median:?} above 60 ms"
    );
    let g = goodput.goodput();
    assert!(
        (4.5e6..=5.1e6).contains(&g),
        "goodput {:.3} Mbit/s outside 4.5–5.1",
        g / 1e6
    );
    for (dir, r) in [("a→b", &loss_ab), ("b→a", &loss_ba)] {
        let p = lost(r);
        assert!(
            (0.0025..=0.008).contains(&p),
            "loss {dir} {:.3}% outside 0.25–0.8%",
            p * 100.0
        );
        assert_eq!(r.reordered, 0, "wire reordered frames {dir}");
    }
}

/// Three nodes on a bridge; RTT across two access links; clean-up when the body panics.
#[test]
fn bridge_topology_and_cleanup_on_panic() {
    require_namespaces!("bridge_topology_and_cleanup_on_panic");
    let spec = parse_topology(
        "node c1 c2 c3\nbridge lan\nlink c1 lan delay=5ms\nlink c2 lan delay=5ms jitter=1ms\nlink c3 lan rate=10mbit\n",
    )
    .unwrap();
    let topo = Topology::up(&spec).expect("topology up");
    let created = Created::of(&topo);
    assert_eq!(
        created.namespaces.len(),
        5,
        "wire + 3 nodes + bridge: {:?}",
        created.namespaces
    );
    let c2 = topo.addr("c2").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let echo = echo_server(&topo, "c2", Arc::clone(&stop));
    let mut rtts = echo_rtts(&topo, "c1", c2, 10);
    stop.store(true, Ordering::Relaxed);
    echo.join().unwrap();
    rtts.sort();
    assert!(rtts.len() >= 9);
    // 2 × (5 ms + 5 ms ± 1 ms).
    assert!(rtts[0] >= Duration::from_millis(18), "{rtts:?}");
    assert!(
        rtts[rtts.len() / 2] <= Duration::from_millis(26),
        "{rtts:?}"
    );
    let r = catch_unwind(AssertUnwindSafe(move || {
        let _owned = topo;
        panic!("deliberate panic with a live topology");
    }));
    assert!(r.is_err());
    created.assert_gone();
}

/// Leftovers of a dead process are removed; those of a live one are not.
#[test]
fn stale_leftovers_are_removed() {
    require_namespaces!("stale_leftovers_are_removed");
    // A pid that does not exist (pid_max is at most 2^22).
    let dead = (4_000_000..4_194_304u32)
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let stale_ns = format!("{PREFIX}-{dead}-0-wire");
    let stale_if = format!("{PREFIX}{dead:06x}000");
    let live_ns = format!("{PREFIX}-{}-999999-keep", std::process::id());
    run("ip", &["netns", "add", &stale_ns]).unwrap();
    run("ip", &["netns", "add", &live_ns]).unwrap();
    run(
        "ip",
        &[
            "link", "add", &stale_if, "type", "veth", "peer", "name", "x0", "netns", &stale_ns,
        ],
    )
    .unwrap();
    let removed = cleanup_stale().unwrap();
    let ns = list_netns().unwrap();
    let links = list_root_links().unwrap();
    let _ = run("ip", &["netns", "del", &live_ns]);
    assert!(removed.contains(&stale_ns), "{removed:?}");
    assert!(!ns.contains(&stale_ns));
    assert!(!links.contains(&stale_if));
    assert!(
        ns.contains(&live_ns),
        "a live process's namespace was removed"
    );
}

/// The mahimahi-style shell: the host reaches the shell and back, through the link.
#[test]
fn shell_round_trip() {
    require_namespaces!("shell_round_trip");
    let p = LinkParams {
        delay: Duration::from_millis(10),
        ..LinkParams::default()
    };
    let shell = Shell::up(
        p,
        LinkParams {
            delay: Duration::from_millis(5),
            ..p
        },
        3,
    )
    .expect("shell up");
    let created = Created::of(shell.topology());
    assert_eq!(created.root_links.len(), 1);
    let host = shell.host_addr();
    // Echo server on the host (root namespace), client in the shell.
    let server = bind(0);
    let port = server.local_addr().unwrap().port();
    let out = shell
        .command("bash")
        .unwrap()
        .args(["-c", &format!("echo hello > /dev/udp/{host}/{port}")])
        .status()
        .expect("run bash");
    assert!(out.success());
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = server.recv_from(&mut buf).expect("datagram from the shell");
    assert_eq!(&buf[..n], b"hello\n");
    assert_eq!(from.ip(), std::net::IpAddr::V4(shell.shell_addr()));
    shell.shutdown().unwrap();
    created.assert_gone();
}
