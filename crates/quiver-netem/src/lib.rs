//! # quiver-netem — networks for testing and measuring Quiver
//!
//! Two ways to put a controlled network between QUIC endpoints:
//!
//! - [`sim`] — a **seeded, deterministic, virtual-time** network for sans-IO endpoints
//!   (anything that implements [`sim::Node`], e.g. an adapter around the `quiver-proto`
//!   endpoint, a proxy, or the reference nodes in [`sim::nodes`]). Links model rate
//!   (serialisation delay and a drop-tail queue), propagation delay, jitter, Bernoulli and
//!   Gilbert–Elliott loss, reordering, duplication, bit corruption, blackhole windows and
//!   MTU. Time only advances by events and all randomness comes from one seeded RNG, so a
//!   failing seed replays exactly — with a per-packet trace hook to see why.
//! - [`emu`] (Linux only) — link emulation for real sockets and real processes, for
//!   experiments against other stacks: network namespaces joined by veths (and bridges),
//!   htb for rate, a classic-BPF `cls_bpf` classifier for loss, and a user-space delay
//!   "wire" forwarding frames with AF_PACKET, since this kernel has no netem. It shares
//!   the vocabulary of [`sim::LinkConfig`] (rates, delays, loss, named profiles such as
//!   `3g`).
//!
//! ## Extension points
//! - [`sim::Node`]: implement it to put any sans-IO state machine on the simulated network
//!   (`handle_datagram` / `poll_transmit` / `poll_timeout` / `handle_timeout`, the same
//!   shape as the QUIC core). Nodes are stored as trait objects and can be borrowed back
//!   with their concrete type through [`sim::Sim::node`] / [`sim::Sim::node_mut`].
//! - [`sim::LinkConfig`]: per-direction link behaviour, built with builder methods or taken
//!   from a named profile ([`sim::LinkConfig::profile`]).
//! - [`sim::Sim::set_trace`]: a closure that sees every packet event
//!   ([`sim::TraceEvent`]) — for debugging, metrics, or asserting on traces in tests.
//!
//! This crate does not depend on `quiver-proto`; the protocol crates use it as a
//! dev-dependency.

pub mod sim;

#[cfg(target_os = "linux")]
pub mod emu;
