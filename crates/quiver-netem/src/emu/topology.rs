//! Topologies of network namespaces joined by emulated links, and their clean-up.
//!
//! Every link is built the same way, whatever its ends are:
//!
//! ```text
//!  end A (node ns / bridge ns / root)       wire ns                 end B
//!  ┌────────┐   veth   ┌─────────────────────────────────────┐  veth  ┌────────┐
//!  │ eth0   ├──────────┤ l0a ◄── wire thread (delay) ──► l0b ├────────┤ eth0   │
//!  └────────┘          │  ▲ htb+loss (B→A)     htb+loss (A→B) ▲ │      └────────┘
//!                      └─────────────────────────────────────┘
//! ```
//!
//! The wire namespace holds both inner veth ends of every link, so the shaping lives
//! neither at the sender (which would feel local back-pressure instead of a network
//! queue) nor in the root namespace. Nodes on one bridge share an L2 segment; a bridge
//! lives in its own namespace.
//!
//! Everything created is named `qvem-<pid>-<seq>-...` (namespaces) or
//! `qvem<pid:06x><seq:02x><i:x>` (the only root-namespace interfaces: host ends of links
//! to [`Endpoint::Host`]), so that [`cleanup_stale`] can recognise leftovers of dead
//! processes. A [`Topology`] removes what it created when dropped, also while unwinding
//! from a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::cmd::{self, run};
use super::error::{EmuError, Result};
use super::sys;
use super::units::LinkParams;
use super::wire::{Wire, WireSpec, WireStats};

/// Prefix of everything this module creates.
pub const PREFIX: &str = "qvem";

/// An IPv4 interface address with its prefix length, e.g. `10.0.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfAddr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length (0..=32).
    pub prefix: u8,
}

impl FromStr for IfAddr {
    type Err = EmuError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| EmuError::InvalidValue {
            what: "address",
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (a, p) = s.split_once('/').unwrap_or((s, "24"));
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| bad("expected an IPv4 address like 10.0.0.1/24"))?;
        let prefix: u8 = p.parse().map_err(|_| bad("bad prefix length"))?;
        if prefix > 30 || prefix == 0 {
            return Err(bad("prefix length must be between 1 and 30"));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One end of a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// The root namespace (the machine itself), as in the mahimahi-style shell.
    Host,
    /// A node: a network namespace where programs run.
    Node(String),
    /// A bridge (in its own namespace) joining several links into one L2 segment.
    Bridge(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host => f.write_str("host"),
            Self::Node(n) | Self::Bridge(n) => f.write_str(n),
        }
    }
}

/// A link between two endpoints, with the impairments of each direction.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSpec {
    /// End A.
    pub a: Endpoint,
    /// End B.
    pub b: Endpoint,
    /// Impairments of frames going from A to B.
    pub ab: LinkParams,
    /// Impairments of frames going from B to A.
    pub ba: LinkParams,
    /// Address of A's interface (nodes and host only); `None` = assigned automatically.
    pub a_addr: Option<IfAddr>,
    /// Address of B's interface.
    pub b_addr: Option<IfAddr>,
}

impl LinkSpec {
    /// A link with the same impairments both ways and automatic addresses.
    pub fn new(a: Endpoint, b: Endpoint, params: LinkParams) -> Self {
        Self {
            a,
            b,
            ab: params,
            ba: params,
            a_addr: None,
            b_addr: None,
        }
    }
}

/// A description of nodes, bridges and links, checked by [`TopologySpec::validate`] and
/// brought up by [`Topology::up`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopologySpec {
    /// Node names.
    pub nodes: Vec<String>,
    /// Bridge names.
    pub bridges: Vec<String>,
    /// Links.
    pub links: Vec<LinkSpec>,
    /// Seed of the jitter generators (link `i` uses `seed + i`).
    pub seed: u64,
}

/// Checks a node or bridge name: 1–32 of `[A-Za-z0-9_.-]`, starting alphanumeric, not `host`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(EmuError::Topology(format!(
            "bad name {name:?}: use 1-32 letters, digits, '_', '.', '-'"
        )));
    }
    if name == "host" {
        return Err(EmuError::Topology(
            "\"host\" is reserved for the root namespace".into(),
        ));
    }
    Ok(())
}

impl TopologySpec {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node.
    pub fn add_node(&mut self, name: &str) -> Result<&mut Self> {
        self.check_new_name(name)?;
        self.nodes.push(name.to_owned());
        Ok(self)
    }

    /// Adds a bridge.
    pub fn add_bridge(&mut self, name: &str) -> Result<&mut Self> {
        self.check_new_name(name)?;
        self.bridges.push(name.to_owned());
        Ok(self)
    }

    /// Adds a link; both ends must already exist.
    pub fn add_link(&mut self, link: LinkSpec) -> Result<&mut Self> {
        self.check_link(&link)?;
        self.links.push(link);
        Ok(self)
    }

    fn check_new_name(&self, name: &str) -> Result<()> {
        check_name(name)?;
        if self.nodes.iter().chain(&self.bridges).any(|n| n == name) {
            return Err(EmuError::Topology(format!("{name:?} is defined twice")));
        }
        Ok(())
    }

    /// The endpoint called `name` (`host`, a node or a bridge).
    pub fn endpoint(&self, name: &str) -> Result<Endpoint> {
        if name == "host" {
            Ok(Endpoint::Host)
        } else if self.nodes.iter().any(|n| n == name) {
            Ok(Endpoint::Node(name.to_owned()))
        } else if self.bridges.iter().any(|n| n == name) {
            Ok(Endpoint::Bridge(name.to_owned()))
        } else {
            Err(EmuError::Topology(format!(
                "unknown node or bridge {name:?}"
            )))
        }
    }

    fn check_link(&self, link: &LinkSpec) -> Result<()> {
        for end in [&link.a, &link.b] {
            let known = match end {
                Endpoint::Host => true,
                Endpoint::Node(n) => self.nodes.contains(n),
                Endpoint::Bridge(n) => self.bridges.contains(n),
            };
            if !known {
                return Err(EmuError::Topology(format!("link end {end} is not defined")));
            }
        }
        if link.a == link.b {
            return Err(EmuError::Topology(format!(
                "link from {} to itself",
                link.a
            )));
        }
        for (end, addr) in [(&link.a, link.a_addr), (&link.b, link.b_addr)] {
            if addr.is_some() && matches!(end, Endpoint::Bridge(_)) {
                return Err(EmuError::Topology(format!(
                    "bridge {end} has no address of its own"
                )));
            }
        }
        Ok(())
    }

    /// Checks names, link ends, the number of host links and the address plan.
    pub fn validate(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for n in self.nodes.iter().chain(&self.bridges) {
            check_name(n)?;
            if !seen.insert(n) {
                return Err(EmuError::Topology(format!("{n:?} is defined twice")));
            }
        }
        for l in &self.links {
            self.check_link(l)?;
        }
        let host_links = self
            .links
            .iter()
            .filter(|l| l.a == Endpoint::Host || l.b == Endpoint::Host)
            .count();
        if host_links > 16 {
            return Err(EmuError::Topology("at most 16 links to the host".into()));
        }
        if self.links.len() > 4096 {
            return Err(EmuError::Topology("at most 4096 links".into()));
        }
        plan_addresses(self, &BTreeSet::new()).map(|_| ())
    }
}

/// L2 segments: a bridge with all its links, or one link between two non-bridges.
/// Returns, per link, the index of its segment, and the number of segments.
fn segments(spec: &TopologySpec) -> (Vec<usize>, usize) {
    let bridge_index: BTreeMap<&str, usize> = spec
        .bridges
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let mut next = spec.bridges.len();
    let seg = spec
        .links
        .iter()
        .map(|l| match (&l.a, &l.b) {
            (Endpoint::Bridge(b), _) | (_, Endpoint::Bridge(b)) => {
                bridge_index.get(b.as_str()).copied().unwrap_or(0)
            }
            _ => {
                next += 1;
                next - 1
            }
        })
        .collect();
    (seg, next)
}

/// Assigns an address to every node/host link end that has none: segment `s` gets
/// `10.77.s.0/24`, or a free `100.64.x.0/24` (not in `host_used`) if the host is on it.
fn plan_addresses(
    spec: &TopologySpec,
    host_used: &BTreeSet<u8>,
) -> Result<Vec<[Option<IfAddr>; 2]>> {
    let (seg_of, n_seg) = segments(spec);
    let mut subnet: Vec<Option<[u8; 3]>> = vec![None; n_seg];
    let mut host_free = (0u8..=255).filter(|x| !host_used.contains(x));
    for (l, &s) in spec.links.iter().zip(&seg_of) {
        if (l.a == Endpoint::Host || l.b == Endpoint::Host) && subnet[s].is_none() {
            let x = host_free.next().ok_or_else(|| {
                EmuError::Topology("no free 100.64.x.0/24 subnet on the host".into())
            })?;
            subnet[s] = Some([100, 64, x]);
        }
    }
    let mut next_host: Vec<u8> = vec![1; n_seg];
    let explicit: BTreeSet<Ipv4Addr> = spec
        .links
        .iter()
        .flat_map(|l| [l.a_addr, l.b_addr])
        .flatten()
        .map(|a| a.addr)
        .collect();
    let mut plan = Vec::with_capacity(spec.links.len());
    for (l, &s) in spec.links.iter().zip(&seg_of) {
        let mut pair = [None, None];
        for (k, (end, given)) in [(&l.a, l.a_addr), (&l.b, l.b_addr)].into_iter().enumerate() {
            if matches!(end, Endpoint::Bridge(_)) {
                continue;
            }
            if let Some(a) = given {
                pair[k] = Some(a);
                continue;
            }
            let net = match subnet[s] {
                Some(net) => net,
                None => {
                    let s8 = u8::try_from(s).map_err(|_| {
                        EmuError::Topology("more than 256 segments need explicit addresses".into())
                    })?;
                    [10, 77, s8]
                }
            };
            subnet[s] = Some(net);
            let addr = loop {
                let h = next_host[s];
                if h == 255 {
                    return Err(EmuError::Topology(
                        "more than 254 automatic addresses on one segment".into(),
                    ));
                }
                next_host[s] += 1;
                let a = Ipv4Addr::new(net[0], net[1], net[2], h);
                if !explicit.contains(&a) {
                    break a;
                }
            };
            pair[k] = Some(IfAddr { addr, prefix: 24 });
        }
        plan.push(pair);
    }
    Ok(plan)
}

/// Identity of one [`Topology`]: the owning process and a per-process sequence number.
#[derive(Debug, Clone, Copy)]
struct RunId {
    pid: u32,
    seq: u32,
}

impl RunId {
    fn next() -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        Self {
            pid: std::process::id(),
            seq: SEQ.fetch_add(1, Ordering::Relaxed),
        }
    }
    fn netns(self, role: &str) -> String {
        format!("{PREFIX}-{}-{}-{role}", self.pid, self.seq)
    }
    fn root_if(self, i: usize) -> String {
        format!(
            "{PREFIX}{:06x}{:02x}{:x}",
            self.pid & 0xff_ffff,
            self.seq & 0xff,
            i & 0xf
        )
    }
}

/// The pid that owns a namespace or root interface name made by this module.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    if let Some(ns) = rest.strip_prefix('-') {
        ns.split('-').next()?.parse().ok()
    } else {
        u32::from_str_radix(rest.get(..6)?, 16).ok()
    }
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn netns_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/run/netns/{name}"))
}

/// Names of all network namespaces (`ip netns list`).
pub fn list_netns() -> Result<Vec<String>> {
    Ok(run("ip", &["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Names of all interfaces of the root namespace (`ip -o link show`).
pub fn list_root_links() -> Result<Vec<String>> {
    Ok(run("ip", &["-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect())
}

fn kill_all_in(ns: &str) {
    let own = std::process::id();
    if let Ok(out) = run("ip", &["netns", "pids", ns]) {
        for pid in out
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .filter(|&p| p != own)
        {
            if let Err(e) = sys::kill_process(pid) {
                tracing::debug!("kill {pid} in {ns}: {e}");
            }
        }
    }
}

/// Removes namespaces and root-namespace interfaces left by crashed runs (their owning
/// process no longer exists), killing processes still inside such namespaces. Returns
/// the names removed. Resources of live processes are never touched.
pub fn cleanup_stale() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for ns in list_netns()? {
        if owner_pid(&ns).is_some_and(|p| !process_alive(p)) {
            kill_all_in(&ns);
            run("ip", &["netns", "del", &ns])?;
            removed.push(ns);
        }
    }
    for link in list_root_links()? {
        if owner_pid(&link).is_some_and(|p| !process_alive(p)) {
            // The peer may have vanished with its namespace a moment ago: tolerate that.
            if run("ip", &["link", "del", &link]).is_ok() {
                removed.push(link);
            }
        }
    }
    Ok(removed)
}

/// One interface of a node (or of the host) in a running topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name inside the node's namespace.
    pub name: String,
    /// Its address.
    pub addr: IfAddr,
    /// Index of the link in [`TopologySpec::links`].
    pub link: usize,
}

/// Statistics of a topology that was shut down.
#[derive(Debug, Clone, Default)]
pub struct TopologyReport {
    /// Counters of each link's wire thread, in link order.
    pub wires: Vec<WireStats>,
}

/// A running topology. Dropping it (or [`Topology::shutdown`]) stops the wires, kills
/// processes left in its namespaces, and deletes its namespaces and host interfaces.
pub struct Topology {
    run: RunId,
    spec: TopologySpec,
    wire_ns: String,
    created_netns: Vec<String>,
    root_links: Vec<String>,
    /// Node name → (namespace, interfaces). The host appears as `host` with namespace "".
    nodes: BTreeMap<String, (String, Vec<Interface>)>,
    wires: Vec<Wire>,
    down: bool,
}

/// Lock file serialising address planning against the root namespace, across processes
/// (two shells must not pick the same `100.64.x.0/24`).
const HOST_LOCK: &str = "/run/quiver-netem.lock";

fn lock_host_plan() -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(HOST_LOCK)
        .map_err(|e| EmuError::io(format!("open {HOST_LOCK}"), e))?;
    sys::lock_exclusive(&f).map_err(|e| EmuError::io(format!("lock {HOST_LOCK}"), e))?;
    Ok(f)
}

impl Topology {
    /// Checks the environment and the spec, removes stale leftovers, and builds the
    /// topology. On error everything created so far is removed again.
    pub fn up(spec: &TopologySpec) -> Result<Self> {
        spec.validate()?;
        cmd::check_environment()?;
        match cleanup_stale() {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!("removed stale emulation leftovers: {removed:?}")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cleaning stale leftovers: {e}"),
        }
        let run = RunId::next();
        let mut topo = Self {
            run,
            spec: spec.clone(),
            wire_ns: run.netns("wire"),
            created_netns: Vec::new(),
            root_links: Vec::new(),
            nodes: BTreeMap::new(),
            wires: Vec::new(),
            down: false,
        };
        let uses_host = spec
            .links
            .iter()
            .any(|l| l.a == Endpoint::Host || l.b == Endpoint::Host);
        // Held until the host addresses exist (end of this function).
        let _plan_lock = if uses_host {
            Some(lock_host_plan()?)
        } else {
            None
        };
        let plan = plan_addresses(spec, &host_used_subnets()?)?;
        topo.build(&plan)?;
        Ok(topo)
    }

    fn add_netns(&mut self, name: String, ipv6: bool) -> Result<()> {
        run("ip", &["netns", "add", &name])?;
        self.created_netns.push(name.clone());
        run("ip", &["-n", &name, "link", "set", "lo", "up"])?;
        if !ipv6 {
            // Keep infrastructure namespaces silent (no router solicitations, DAD, MLD).
            let path = netns_path(&name);
            let res = in_netns_scoped(&path, || {
                for p in ["all", "default"] {
                    std::fs::write(format!("/proc/sys/net/ipv6/conf/{p}/disable_ipv6"), "1")?;
                }
                Ok::<_, std::io::Error>(())
            });
            if let Err(e) = res {
                tracing::debug!("disable IPv6 in {name}: {e}");
            }
        }
        Ok(())
    }

    fn build(&mut self, plan: &[[Option<IfAddr>; 2]]) -> Result<()> {
        let wire_ns = self.wire_ns.clone();
        self.add_netns(wire_ns.clone(), false)?;
        for n in self.spec.nodes.clone() {
            let ns = self.run.netns(&format!("n-{n}"));
            self.add_netns(ns.clone(), true)?;
            self.nodes.insert(n, (ns, Vec::new()));
        }
        let mut bridge_ns = BTreeMap::new();
        for b in self.spec.bridges.clone() {
            let ns = self.run.netns(&format!("b-{b}"));
            self.add_netns(ns.clone(), false)?;
            run("ip", &["-n", &ns, "link", "add", "br0", "type", "bridge"])?;
            run("ip", &["-n", &ns, "link", "set", "br0", "up"])?;
            bridge_ns.insert(b, ns);
        }
        let links = self.spec.links.clone();
        let mut host_ifs = Vec::new();
        for (i, (link, addrs)) in links.iter().zip(plan).enumerate() {
            let mut inner = Vec::new();
            let mut ends = Vec::new();
            for (side, end, addr) in [("a", &link.a, addrs[0]), ("b", &link.b, addrs[1])] {
                let inner_if = format!("l{i}{side}");
                let attached = self.attach(i, end, addr, &inner_if, &bridge_ns, &mut host_ifs)?;
                ends.push(attached);
                inner.push(inner_if);
            }
            if let [Some(a), Some(b)] = ends.as_slice() {
                // A point-to-point link: static neighbours, so that the first packet does not
                // wait for an ARP exchange across the emulated delay.
                a.add_neighbour(b)?;
                b.add_neighbour(a)?;
            }
            let [a_if, b_if] = [inner[0].clone(), inner[1].clone()];
            // A→B frames leave the wire namespace through l{i}b, B→A through l{i}a.
            cmd::shape(&wire_ns, &b_if, &link.ab)?;
            cmd::shape(&wire_ns, &a_if, &link.ba)?;
            let wire = Wire::start(WireSpec {
                netns_path: netns_path(&wire_ns),
                a_if,
                b_if,
                delay: [
                    (link.ab.delay, link.ab.jitter),
                    (link.ba.delay, link.ba.jitter),
                ],
                seed: self.spec.seed.wrapping_add(i as u64),
            })?;
            self.wires.push(wire);
        }
        if !host_ifs.is_empty() {
            self.nodes
                .insert("host".to_owned(), (String::new(), host_ifs));
        }
        Ok(())
    }

    /// Creates the veth between end `end` of link `i` and the wire namespace
    /// (`inner_if` there), brings it up, and addresses it (nodes, host) or enslaves it to
    /// the bridge. Returns the addressed end, if any.
    fn attach(
        &mut self,
        i: usize,
        end: &Endpoint,
        addr: Option<IfAddr>,
        inner_if: &str,
        bridge_ns: &BTreeMap<String, String>,
        host_ifs: &mut Vec<Interface>,
    ) -> Result<Option<OuterEnd>> {
        let (ns, dev) = match end {
            Endpoint::Host => (None, self.run.root_if(host_ifs.len())),
            Endpoint::Node(n) => {
                let (ns, ifs) = self
                    .nodes
                    .get(n)
                    .ok_or_else(|| EmuError::Topology(format!("unknown node {n}")))?;
                (Some(ns.clone()), format!("eth{}", ifs.len()))
            }
            Endpoint::Bridge(b) => {
                let ns = bridge_ns
                    .get(b)
                    .ok_or_else(|| EmuError::Topology(format!("unknown bridge {b}")))?;
                (Some(ns.clone()), format!("p{i}"))
            }
        };
        let outer = OuterEnd {
            ns,
            dev,
            addr: Ipv4Addr::UNSPECIFIED,
        };
        outer.ip(&[
            "link",
            "add",
            &outer.dev,
            "type",
            "veth",
            "peer",
            "name",
            inner_if,
            "netns",
            &self.wire_ns,
        ])?;
        if outer.ns.is_none() {
            self.root_links.push(outer.dev.clone());
        }
        // One MTU-sized frame per skb: loss and rate then act per packet, even for TCP
        // segmentation offload or UDP GSO senders.
        if let Err(e) = outer.ip(&["link", "set", &outer.dev, "gso_max_segs", "1"]) {
            tracing::warn!("cannot disable GSO on {}: {e}", outer.dev);
        }
        outer.ip(&["link", "set", &outer.dev, "up"])?;
        run("ip", &["-n", &self.wire_ns, "link", "set", inner_if, "up"])?;
        if let Endpoint::Bridge(_) = end {
            outer.ip(&["link", "set", &outer.dev, "master", "br0"])?;
            return Ok(None);
        }
        let addr =
            addr.ok_or_else(|| EmuError::Topology(format!("no address for {end} on link {i}")))?;
        outer.ip(&["addr", "add", &addr.to_string(), "dev", &outer.dev])?;
        let iface = Interface {
            name: outer.dev.clone(),
            addr,
            link: i,
        };
        match end {
            Endpoint::Node(n) => {
                if let Some((_, ifs)) = self.nodes.get_mut(n) {
                    ifs.push(iface);
                }
            }
            _ => host_ifs.push(iface),
        }
        Ok(Some(OuterEnd {
            addr: addr.addr,
            ..outer
        }))
    }

    /// The spec this topology was built from.
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }

    /// The namespace of a node, for `ip netns exec NAME ...`.
    pub fn netns(&self, node: &str) -> Option<&str> {
        self.nodes
            .get(node)
            .map(|(ns, _)| ns.as_str())
            .filter(|ns| !ns.is_empty())
    }

    /// The interfaces of a node (or of `host`).
    pub fn interfaces(&self, node: &str) -> &[Interface] {
        self.nodes.get(node).map_or(&[], |(_, ifs)| ifs.as_slice())
    }

    /// The first address of a node (or of `host`).
    pub fn addr(&self, node: &str) -> Option<Ipv4Addr> {
        self.interfaces(node).first().map(|i| i.addr.addr)
    }

    /// Every namespace this topology created (nodes, bridges, wire).
    pub fn namespaces(&self) -> &[String] {
        &self.created_netns
    }

    /// Every interface this topology created in the root namespace.
    pub fn root_links(&self) -> &[String] {
        &self.root_links
    }

    /// A command that runs `program` inside a node (`ip netns exec NS program`). Processes
    /// still running in the namespace when the topology goes down are killed.
    pub fn command(&self, node: &str, program: &str) -> Result<Command> {
        let ns = self
            .netns(node)
            .ok_or_else(|| EmuError::Topology(format!("unknown node {node:?}")))?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        Ok(c)
    }

    /// Spawns a thread that runs `f` inside a node's namespace: sockets it creates live
    /// there (for example a tokio runtime built inside `f`).
    pub fn spawn_in<F, T>(&self, node: &str, f: F) -> Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns = self
            .netns(node)
            .ok_or_else(|| EmuError::Topology(format!("unknown node {node:?}")))?;
        spawn_in_netns(&netns_path(ns), f)
    }

    /// Stops the wires and removes everything, returning the wires' counters.
    pub fn shutdown(mut self) -> Result<TopologyReport> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<TopologyReport> {
        if self.down {
            return Ok(TopologyReport::default());
        }
        self.down = true;
        let mut first_err = None;
        let mut report = TopologyReport::default();
        for w in self.wires.drain(..) {
            match w.stop() {
                Ok(s) => report.wires.push(s),
                Err(e) => {
                    report.wires.push(WireStats::default());
                    first_err.get_or_insert(e);
                }
            }
        }
        for ns in &self.created_netns {
            kill_all_in(ns);
        }
        for link in self.root_links.drain(..) {
            // Already gone if its peer's namespace was deleted first; only report if it stays.
            if let Err(e) = run("ip", &["link", "del", &link]) {
                if list_root_links().map(|l| l.contains(&link)).unwrap_or(true) {
                    first_err.get_or_insert(e);
                }
            }
        }
        for ns in self.created_netns.drain(..).rev() {
            if let Err(e) = run("ip", &["netns", "del", &ns]) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            None => Ok(report),
            Some(e) => Err(e),
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!("tearing down emulated topology: {e}");
        }
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("namespaces", &self.created_netns)
            .field("root_links", &self.root_links)
            .finish()
    }
}

/// A node's or the host's end of a link, outside the wire namespace.
struct OuterEnd {
    /// Namespace; `None` = root.
    ns: Option<String>,
    dev: String,
    addr: Ipv4Addr,
}

impl OuterEnd {
    /// Runs `ip` in this end's namespace.
    fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full: Vec<&str> = Vec::with_capacity(args.len() + 2);
        if let Some(ns) = &self.ns {
            full.extend(["-n", ns.as_str()]);
        }
        full.extend_from_slice(args);
        run("ip", &full)
    }

    fn mac(&self) -> Result<String> {
        let out = self.ip(&["-o", "link", "show", "dev", &self.dev])?;
        let mut words = out.split_whitespace();
        words
            .find(|w| *w == "link/ether")
            .and_then(|_| words.next())
            .map(str::to_owned)
            .ok_or_else(|| EmuError::Topology(format!("no MAC address on {}", self.dev)))
    }

    /// A permanent neighbour entry for `peer` on this end.
    fn add_neighbour(&self, peer: &Self) -> Result<()> {
        let (addr, mac) = (peer.addr.to_string(), peer.mac()?);
        self.ip(&[
            "neigh",
            "replace",
            &addr,
            "lladdr",
            &mac,
            "dev",
            &self.dev,
            "nud",
            "permanent",
        ])
        .map(drop)
    }
}

/// Third octets of `100.64.x.0/24` subnets already used by root-namespace addresses.
fn host_used_subnets() -> Result<BTreeSet<u8>> {
    let out = run("ip", &["-o", "-4", "addr", "show"])?;
    Ok(out
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("100.64."))
        .filter_map(|r| r.split('.').next()?.parse().ok())
        .collect())
}

/// Spawns a thread that enters the namespace at `path` and runs `f`.
pub(crate) fn spawn_in_netns<F, T>(path: &std::path::Path, f: F) -> Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let file = File::open(path).map_err(|e| EmuError::io(format!("open {}", path.display()), e))?;
    let (tx, rx) = mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            if let Err(e) = sys::setns_net(&file) {
                let _ = tx.send(Err(e));
                // Silent unwind: the caller already got the error.
                std::panic::resume_unwind(Box::new(()));
            }
            drop(file);
            let _ = tx.send(Ok(()));
            f()
        })
        .map_err(|e| EmuError::io("spawn thread", e))?;
    match rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(EmuError::io(format!("enter {}", path.display()), e)),
        Err(_) => Err(EmuError::io(
            "enter namespace",
            std::io::Error::other("thread died"),
        )),
    }
}

/// Runs `f` on a short-lived thread inside the namespace at `path` and returns its result.
fn in_netns_scoped<T: Send>(path: &std::path::Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let file = File::open(path).map_err(|e| EmuError::io(format!("open {}", path.display()), e))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            sys::setns_net(&file)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("thread panicked")))
    })
    .map_err(|e| EmuError::io(format!("enter {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_owners() {
        let r = RunId {
            pid: 0x12_3456,
            seq: 7,
        };
        assert_eq!(r.netns("wire"), "qvem-1193046-7-wire");
        assert_eq!(owner_pid(&r.netns("n-a")), Some(0x12_3456));
        let root = r.root_if(3);
        assert!(root.len() <= 15, "{root}");
        assert_eq!(owner_pid(&root), Some(0x12_3456));
        assert_eq!(owner_pid("eth0"), None);
        assert_eq!(owner_pid("qvemzz"), None);
        assert!(check_name("host").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("client-1").is_ok());
    }

    #[test]
    fn address_plan() {
        let mut s = TopologySpec::new();
        s.add_node("a")
            .unwrap()
            .add_node("b")
            .unwrap()
            .add_node("c")
            .unwrap()
            .add_bridge("lan")
            .unwrap();
        let p = LinkParams::default();
        s.add_link(LinkSpec::new(
            Endpoint::Node("a".into()),
            Endpoint::Bridge("lan".into()),
            p,
        ))
        .unwrap();
        s.add_link(LinkSpec::new(
            Endpoint::Node("b".into()),
            Endpoint::Bridge("lan".into()),
            p,
        ))
        .unwrap();
        s.add_link(LinkSpec::new(
            Endpoint::Node("a".into()),
            Endpoint::Node("c".into()),
            p,
        ))
        .unwrap();
        s.add_link(LinkSpec::new(Endpoint::Host, Endpoint::Node("c".into()), p))
            .unwrap();
        let used = BTreeSet::from([0u8]);
        let plan = plan_addresses(&s, &used).unwrap();
        let a = |x: &str| Some(x.parse::<IfAddr>().unwrap());
        assert_eq!(plan[0], [a("10.77.0.1/24"), None]);
        assert_eq!(plan[1], [a("10.77.0.2/24"), None]);
        assert_eq!(plan[2], [a("10.77.1.1/24"), a("10.77.1.2/24")]);
        assert_eq!(plan[3], [a("100.64.1.1/24"), a("100.64.1.2/24")]);
        assert!(s
            .add_link(LinkSpec::new(
                Endpoint::Node("a".into()),
                Endpoint::Node("zz".into()),
                p
            ))
            .is_err());
        assert!(s
            .add_link(LinkSpec::new(
                Endpoint::Node("a".into()),
                Endpoint::Node("a".into()),
                p
            ))
            .is_err());
        assert!(s.add_node("a").is_err());
    }
}
