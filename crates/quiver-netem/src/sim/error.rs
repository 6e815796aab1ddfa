//! The simulator's error type.

use std::net::SocketAddr;
use std::time::Duration;

use super::NodeId;

/// Errors from configuring or running a [`Sim`](super::Sim).
///
/// Configuration errors (everything but [`Idle`](SimError::Idle) and
/// [`TimeLimit`](SimError::TimeLimit)) are the caller's mistake and are reported before any
/// state changes. The two run outcomes are returned by [`Sim::run_while`](super::Sim::run_while)
/// when the condition did not become false.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// [`LinkConfig::profile`](super::LinkConfig::profile) was given a name it does not know.
    #[error("unknown link profile {name:?} (known profiles: {known})")]
    UnknownProfile {
        /// The name that was asked for.
        name: String,
        /// Comma-separated list of the known profile names.
        known: String,
    },
    /// A probability was NaN or outside `[0, 1]`.
    #[error("{field} must be a probability in [0, 1], got {value}")]
    InvalidProbability {
        /// Which setting was wrong.
        field: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// A link rate of zero bits per second (use an unlimited rate instead).
    #[error("link rate must be at least 1 bit/s (use an unlimited rate for no limit)")]
    ZeroRate,
    /// A queue limit of zero bytes.
    #[error("queue limit must be at least 1 byte")]
    ZeroQueueLimit,
    /// An MTU of zero bytes.
    #[error("MTU must be at least 1 byte")]
    ZeroMtu,
    /// A blackhole window whose end is not after its start.
    #[error("blackhole window {start:?}..{end:?} is empty or reversed")]
    InvalidBlackhole {
        /// Window start (offset from the simulation start).
        start: Duration,
        /// Window end (offset from the simulation start).
        end: Duration,
    },
    /// A delay setting above [`MAX_DELAY`](super::MAX_DELAY).
    #[error("{field} of {value:?} exceeds the maximum of {max:?}")]
    DurationTooLarge {
        /// Which setting was wrong.
        field: &'static str,
        /// The rejected value.
        value: Duration,
        /// The largest accepted value.
        max: Duration,
    },
    /// An address was given to a second node.
    #[error("address {addr} already belongs to node {owner}")]
    AddressInUse {
        /// The contested address.
        addr: SocketAddr,
        /// The node that already owns it.
        owner: NodeId,
    },
    /// A [`NodeId`] that this simulation did not hand out.
    #[error("no node with id {0}")]
    UnknownNode(NodeId),
    /// `run_while`: no events were left while the condition was still true.
    #[error("simulation went idle after {elapsed:?} with the condition still true")]
    Idle {
        /// Virtual time elapsed since the simulation start.
        elapsed: Duration,
    },
    /// `run_while`: the virtual time budget ran out while the condition was still true.
    #[error("virtual time budget of {budget:?} ran out with the condition still true")]
    TimeLimit {
        /// The budget that was given.
        budget: Duration,
    },
}
