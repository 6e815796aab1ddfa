//! A mahimahi-style shell: one fresh namespace whose only way out is an emulated link to
//! the root namespace.
//!
//! ```text
//!  root namespace                 wire ns                  shell namespace
//!  qvem…0 100.64.x.1  ── downlink (delay, loss, rate) ──►  eth0 100.64.x.2
//!                     ◄── uplink ─────────────────────────  default via 100.64.x.1
//! ```
//!
//! A program in the shell reaches the host at [`Shell::host_addr`] (and, through the
//! default route, any other address of the host); the host reaches it at
//! [`Shell::shell_addr`]. There is no NAT: the shell does not reach other machines.

use std::net::Ipv4Addr;
use std::process::Command;

use super::cmd::run;
use super::error::Result;
use super::topology::{Endpoint, LinkSpec, Topology, TopologyReport, TopologySpec};
use super::units::LinkParams;

/// Name of the shell's node in its topology.
const NODE: &str = "shell";

/// A running shell namespace. Dropping it removes the namespace, the link and the wire.
#[derive(Debug)]
pub struct Shell {
    topo: Topology,
    host: Ipv4Addr,
    inside: Ipv4Addr,
}

impl Shell {
    /// Creates the namespace and the link. `uplink` shapes traffic from the shell to the
    /// host, `downlink` traffic from the host to the shell.
    pub fn up(uplink: LinkParams, downlink: LinkParams, seed: u64) -> Result<Self> {
        let mut spec = TopologySpec::new();
        spec.seed = seed;
        spec.add_node(NODE)?;
        let mut link = LinkSpec::new(Endpoint::Host, Endpoint::Node(NODE.into()), downlink);
        link.ba = uplink;
        spec.add_link(link)?;
        let topo = Topology::up(&spec)?;
        let (Some(host), Some(inside), Some(ns)) =
            (topo.addr("host"), topo.addr(NODE), topo.netns(NODE))
        else {
            return Err(super::EmuError::Topology(
                "shell link has no addresses".into(),
            ));
        };
        run(
            "ip",
            &[
                "-n",
                ns,
                "route",
                "add",
                "default",
                "via",
                &host.to_string(),
            ],
        )?;
        Ok(Self { topo, host, inside })
    }

    /// Where the shell reaches the host.
    pub fn host_addr(&self) -> Ipv4Addr {
        self.host
    }

    /// Where the host reaches the shell.
    pub fn shell_addr(&self) -> Ipv4Addr {
        self.inside
    }

    /// The shell's namespace name (for `ip netns exec NAME ...`).
    pub fn netns(&self) -> &str {
        self.topo.netns(NODE).unwrap_or_default()
    }

    /// The host-side interface in the root namespace.
    pub fn host_interface(&self) -> &str {
        self.topo
            .interfaces("host")
            .first()
            .map_or("", |i| i.name.as_str())
    }

    /// The underlying topology (for [`Topology::spawn_in`] with node `"shell"`).
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// A command running `program` inside the shell, with `QUIVER_NETEM_HOST` and
    /// `QUIVER_NETEM_ADDR` set to the host's and the shell's addresses.
    pub fn command(&self, program: &str) -> Result<Command> {
        let mut c = self.topo.command(NODE, program)?;
        c.env("QUIVER_NETEM_HOST", self.host.to_string())
            .env("QUIVER_NETEM_ADDR", self.inside.to_string());
        Ok(c)
    }

    /// Removes everything and returns the wire's counters.
    pub fn shutdown(self) -> Result<TopologyReport> {
        self.topo.shutdown()
    }
}
