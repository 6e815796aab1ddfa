//! Link emulation for real sockets (Linux): network namespaces joined by emulated links.
//!
//! Each direction of a link has a rate, a one-way delay with optional jitter, a random
//! loss probability and a bottleneck queue ([`LinkParams`]). This kernel has no `netem`
//! (nor `fq`, `act_gact` or nftables), so the work is split:
//!
//! | impairment | where | how |
//! |---|---|---|
//! | delay, jitter | user space | a "wire" thread forwards frames between two veths with `AF_PACKET` sockets through a timed FIFO ([`wire`](self#the-wire)) |
//! | loss | kernel, tc | a classic-BPF `cls_bpf` classifier reading `SKF_AD_RANDOM` sends lost frames to a zero-length FIFO |
//! | rate, queue | kernel, tc | an htb class with a byte-limited FIFO, on egress of the wire namespace |
//!
//! # Using it
//!
//! - [`Shell::up`] — a mahimahi-style namespace with one emulated link to the root
//!   namespace (`quiver netem --profile 3g -- CMD`).
//! - [`TopologySpec`] / [`Topology::up`] — nodes, bridges and links; [`parse_topology`]
//!   reads the file format of `quiver netem topology FILE`.
//! - [`Topology::spawn_in`] runs a closure on a thread inside a node: sockets it opens
//!   (including a tokio runtime's) live in that node's namespace.
//!
//! Everything needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN) and `ip`/`tc` from iproute2;
//! [`check_environment`] says what is missing. Tests that need all this call
//! [`privileged_test`]: it skips them where privileges are missing, unless
//! [`REQUIRE_PRIVILEGED_VAR`] is set (CI), where it fails them.
//!
//! # Clean-up
//!
//! Everything created carries the prefix [`PREFIX`] and the owner's pid. [`Topology`] and
//! [`Shell`] remove what they created on drop, which includes unwinding from a panic.
//! Signals are the caller's business (the CLI catches Ctrl-C, SIGTERM and SIGHUP and then
//! drops); after a `kill -9` or a crash, [`cleanup_stale`] (called by every
//! [`Topology::up`]) removes whatever belongs to processes that no longer exist.
//!
//! # The wire
//!
//! One thread per link serves both directions: it sleeps in `ppoll` until a frame arrives
//! or the head of a delay line is due, so it costs a few system calls per frame. Frames
//! travel with their virtio-net header (`PACKET_VNET_HDR`), so checksum offload metadata
//! survives the trip; GSO is disabled on the outer veths so that every frame is one
//! packet and loss and rate act per packet. Jitter never reorders frames.
//!
//! # The `3g` profile
//!
//! 5 Mbit/s each way, 25 ms one-way delay each way (50 ms added round-trip time), 0.5%
//! random loss each way, a 64 KiB queue (≈105 ms at 5 Mbit/s).

mod cmd;
mod config;
mod error;
mod privileged;
mod shell;
mod sys;
mod topology;
mod units;
mod wire;

#[cfg(test)]
mod tests;

pub use cmd::check_environment;
pub use config::parse_topology;
pub use error::{EmuError, Result};
pub use privileged::{privileged_test, probe_namespaces, required, REQUIRE_PRIVILEGED_VAR};
pub use shell::Shell;
pub use topology::{
    cleanup_stale, list_netns, list_root_links, Endpoint, IfAddr, Interface, LinkSpec, Topology,
    TopologyReport, TopologySpec, PREFIX,
};
pub use units::{parse_duration, parse_size, LinkParams, Loss, Profile, Rate};
pub use wire::WireStats;
