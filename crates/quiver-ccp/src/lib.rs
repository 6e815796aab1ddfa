//! CCP for Quiver: congestion control as a separate plane.
//!
//! A small, safe program runs per ACK inside the datapath (fold functions over congestion
//! signals, `when` conditions, reports); an agent outside the datapath runs the algorithm on
//! periodic reports and sets the congestion window or the pacing rate (the design of the
//! CCP thesis chapter and of portus/libccp, whose wire format this crate follows).
//!
//! This crate is being built in parts (issue 12): the datapath language and its VM, the
//! libccp-compatible message codec and IPC, the agent with its `Algorithm` trait and the
//! algorithms, and the `quiver_proto::cc::Controller` implementation that binds a QUIC
//! connection to an agent. Each part documents its own extension points.

pub mod agent;
pub mod algs;
pub mod datapath;
pub mod ipc;
pub mod lang;
pub mod vm;
pub mod wire;
