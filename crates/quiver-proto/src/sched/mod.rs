//! Stream schedulers: which stream fills the next STREAM frame.
//!
//! QUIC leaves the order in which streams share a connection to the implementation
//! (RFC 9000 §2.3: "an implementation ... SHOULD provide ways in which an application can
//! indicate the relative priority of streams"). On a constrained link that order decides
//! whether interactive requests meet their deadlines, so Quiver makes it a pluggable
//! policy: a connection owns one [`Scheduler`], built by a [`SchedulerFactory`] from its
//! configuration (usually a [`SchedulerKind`], which can be parsed from a name), and every
//! stream has a [`StreamClass`] (priority, deadline, level) given when it is opened.
//!
//! # Call contract
//! The scheduler is sans-IO like the rest of the crate: it never reads a clock; time is
//! the `now` argument. The connection drives it as follows.
//!
//! 1. [`on_open`](Scheduler::on_open) when a stream is opened (locally, or by the peer)
//!    with its class; [`set_class`](Scheduler::set_class) when the application changes
//!    it. A [`Deadline::AfterOpen`] is resolved against the time of `on_open`.
//! 2. [`on_ready`](Scheduler::on_ready) whenever the stream has something to send —
//!    new data, a FIN, or data to retransmit after a loss — and is not blocked by flow
//!    control; [`on_blocked`](Scheduler::on_blocked) when it can no longer send for now.
//!    Repeating a notification is harmless.
//! 3. While building a packet: [`next`](Scheduler::next) names the stream for the next
//!    STREAM frame (it does not remove it; asking twice gives the same answer), and after
//!    framing [`on_sent`](Scheduler::on_sent) says how many bytes went out and whether
//!    the stream still has something to send right now. One `next` + `on_sent` pair is
//!    one "packet's worth" for round-robin policies.
//! 4. [`on_closed`](Scheduler::on_closed) when the stream's send side is finished (all
//!    data and FIN sent) or was reset; the scheduler forgets it.
//! 5. Schedulers with hard deadlines: arm a timer at [`next_expiry`](Scheduler::next_expiry)
//!    and drain [`poll_expired`](Scheduler::poll_expired) when it fires (or on any call);
//!    every stream returned has already been forgotten by the scheduler and must be reset
//!    (RESET_STREAM, RFC 9000 §19.4) with [`DEADLINE_EXCEEDED_CODE`], and the application
//!    told.
//!
//! Datagram flows (`Connection::open_datagram_flow`) take part too: the scheduler sees
//! each flow as a stream with a pseudo ID of 2^62 or more (above every real stream ID)
//! and the class the flow was given, so DATAGRAM and STREAM frames follow one policy. A
//! scheduler must therefore not assume that every ID it is given is a real stream ID.
//!
//! # Rules every scheduler in this module follows
//! - **Retransmissions keep their place.** A stream gets an *arrival sequence* the first
//!   time it becomes ready and keeps it until it is closed. Policies order equals by it,
//!   so a stream that becomes ready again — lost data to retransmit, or new data after a
//!   pause — is not sent to the back as if it were new. `on_ready` therefore needs no
//!   flag saying why the stream is ready.
//! - **Misuse never panics.** A stream must be announced with `on_open` (or `set_class`)
//!   first; every other call for an unknown or already closed stream is ignored (and
//!   logged at debug level), so a late notification cannot bring back a forgotten
//!   stream. `on_open` of a known stream is a class change.
//! - **Cost.** Every scheduler except the [`SortedListAbs`] baseline is O(log n) per call
//!   in the number of streams.
//!
//! # Policies
//! | [`SchedulerKind`] | name | type | order |
//! |---|---|---|---|
//! | `Fcfs` | `fcfs` | [`Fcfs`] | arrival, each stream drained in turn |
//! | `RoundRobin` | `rr` | [`RoundRobin`] | one packet per stream per turn |
//! | `Edf { drop: true }` | `edf` | [`Edf`] | earliest deadline; late streams dropped |
//! | `Edf { drop: false }` | `edf-soft` | [`Edf`] | earliest deadline |
//! | `Abs` | `abs` | [`Abs`] | strict priority, FCFS within a priority |
//! | `MultiLevel { drop: true }` | `ml` | [`MultiLevel`] | level; EDF on level 0, RR below; late streams dropped |
//! | `MultiLevel { drop: false }` | `ml-soft` | [`MultiLevel`] | as `ml`, deadlines only reorder |
//! | `Pifo` | `pifo` | [`Pifo`] | heap by (priority, deadline, arrival) |
//! | `SortedListAbs` | `sorted-abs` | [`SortedListAbs`] | same as `pifo`, O(n) sorted list |
//!
//! # Example
//! ```
//! use std::time::{Duration, Instant};
//! use quiver_proto::sched::{Scheduler, SchedulerFactory, SchedulerKind, StreamClass};
//! use quiver_proto::StreamId;
//!
//! let kind: SchedulerKind = "edf".parse().unwrap();
//! let mut sched = kind.build();
//! let now = Instant::now(); // a driver's clock reading, passed in
//! let (bulk, chat) = (StreamId(0), StreamId(4));
//! sched.on_open(bulk, &StreamClass::default(), now);
//! sched.on_open(chat, &StreamClass::deadline(Duration::from_millis(100)), now);
//! sched.on_ready(bulk, now);
//! sched.on_ready(chat, now);
//! assert_eq!(sched.next(now), Some(chat)); // the deadline goes first
//! sched.on_sent(chat, 1200, false, now); // all of it fitted
//! sched.on_closed(chat);
//! assert_eq!(sched.next(now), Some(bulk));
//!
//! // 200 ms later a new request is too late: hard EDF drops it.
//! sched.on_open(StreamId(8), &StreamClass::deadline(Duration::from_millis(100)), now);
//! let later = now + Duration::from_millis(200);
//! assert_eq!(sched.next_expiry(), Some(now + Duration::from_millis(100)));
//! assert_eq!(sched.poll_expired(later), Some(StreamId(8))); // reset it
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use crate::coding::VarInt;
use crate::shared::StreamId;

mod abs;
mod class;
mod dheap;
mod edf;
mod fcfs;
mod keyed;
mod multilevel;
mod ops;
mod pifo;
mod rr;
mod sorted_list;
mod table;

pub use abs::Abs;
pub use class::{Deadline, StreamClass};
pub use edf::Edf;
pub use fcfs::Fcfs;
pub use multilevel::MultiLevel;
pub use ops::{ops_workload, OpsBench, Phase};
pub use pifo::Pifo;
pub use rr::RoundRobin;
pub use sorted_list::SortedListAbs;

/// Application error code with which the connection resets a stream that a hard-deadline
/// scheduler expired (RESET_STREAM, RFC 9000 §19.4; application error codes are defined
/// by the application protocol, RFC 9000 §20.2). The value spells "DEAD" in ASCII, far
/// from the small codes and the HTTP/3 range (0x0100–0x01ff, RFC 9114 §8.1) applications
/// commonly use.
pub const DEADLINE_EXCEEDED_CODE: VarInt = VarInt::from_u32(0x4445_4144);

/// A stream scheduling policy. See the [module docs](self) for the call contract.
pub trait Scheduler: Send + fmt::Debug {
    /// Short name of the policy (the [`SchedulerKind`] name for built-in ones).
    fn name(&self) -> &'static str;

    /// A stream was opened with `class` at `now`. For a known stream, a class change.
    fn on_open(&mut self, id: StreamId, class: &StreamClass, now: Instant);

    /// The class of a stream changed. A ready stream is re-ordered at once; its arrival
    /// sequence is kept. An unknown stream is registered as by [`on_open`](Self::on_open).
    fn set_class(&mut self, id: StreamId, class: &StreamClass, now: Instant);

    /// The stream has data (new or retransmission) or a FIN to send and is not
    /// flow-control blocked. No-op if already ready or unknown.
    fn on_ready(&mut self, id: StreamId, now: Instant);

    /// `bytes` of the stream were framed into a packet; `still_ready` tells whether it
    /// has more to send right now (if not, this is [`on_blocked`](Self::on_blocked)).
    fn on_sent(&mut self, id: StreamId, bytes: usize, still_ready: bool, now: Instant);

    /// The stream can no longer send for now (flow control) or has nothing left.
    fn on_blocked(&mut self, id: StreamId);

    /// The stream finished (all sent) or was reset: forget it.
    fn on_closed(&mut self, id: StreamId);

    /// Which ready stream fills the next STREAM frame, or `None` if no stream is ready.
    /// Does not change the order: the stream is charged by [`on_sent`](Self::on_sent).
    fn next(&mut self, now: Instant) -> Option<StreamId>;

    /// A stream whose deadline passed at or before `now` before it was closed, and which
    /// must be dropped (hard deadlines). The scheduler has forgotten it already; the
    /// connection resets it with [`DEADLINE_EXCEEDED_CODE`] and tells the application.
    /// Call until `None`. Schedulers without hard deadlines never expire streams.
    fn poll_expired(&mut self, now: Instant) -> Option<StreamId> {
        let _ = now;
        None
    }

    /// The earliest deadline that could expire a stream (arm a timer for it), possibly in
    /// the past if [`poll_expired`](Self::poll_expired) has not been drained.
    fn next_expiry(&self) -> Option<Instant> {
        None
    }
}

/// Builds a fresh [`Scheduler`] for each connection (kept in the endpoint configuration).
pub trait SchedulerFactory: Send + Sync + fmt::Debug {
    /// A new scheduler with no streams.
    fn build(&self) -> Box<dyn Scheduler>;
}

/// The built-in schedulers, selectable by name (see the table in the [module docs](self)).
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash, Default)]
pub enum SchedulerKind {
    /// [`Fcfs`]: first come, first served (`fcfs`).
    Fcfs,
    /// [`RoundRobin`]: one packet per stream per turn (`rr`). The default: fair, and what
    /// applications that set no class expect.
    #[default]
    RoundRobin,
    /// [`Edf`]: earliest deadline first; `drop` = hard deadlines (`edf`, `edf-soft`).
    Edf {
        /// Drop streams whose deadline passed.
        drop: bool,
    },
    /// [`Abs`]: strict priority, FCFS within a priority (`abs`).
    Abs,
    /// [`MultiLevel`]: EDF on level 0, RR on lower levels (`ml`, `ml-soft`).
    MultiLevel {
        /// Drop streams whose deadline passed.
        drop: bool,
    },
    /// [`Pifo`]: heap by (priority, deadline, arrival) (`pifo`).
    Pifo,
    /// [`SortedListAbs`]: the O(n) sorted-list baseline of `pifo` (`sorted-abs`).
    SortedListAbs,
}

impl SchedulerKind {
    /// Every built-in scheduler, in the order of the module table.
    pub const ALL: [SchedulerKind; 9] = [
        SchedulerKind::Fcfs,
        SchedulerKind::RoundRobin,
        SchedulerKind::Edf { drop: true },
        SchedulerKind::Edf { drop: false },
        SchedulerKind::Abs,
        SchedulerKind::MultiLevel { drop: true },
        SchedulerKind::MultiLevel { drop: false },
        SchedulerKind::Pifo,
        SchedulerKind::SortedListAbs,
    ];

    /// The name that [`FromStr`] accepts and [`Display`](fmt::Display) prints.
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerKind::Fcfs => "fcfs",
            SchedulerKind::RoundRobin => "rr",
            SchedulerKind::Edf { drop: true } => "edf",
            SchedulerKind::Edf { drop: false } => "edf-soft",
            SchedulerKind::Abs => "abs",
            SchedulerKind::MultiLevel { drop: true } => "ml",
            SchedulerKind::MultiLevel { drop: false } => "ml-soft",
            SchedulerKind::Pifo => "pifo",
            SchedulerKind::SortedListAbs => "sorted-abs",
        }
    }
}

impl SchedulerFactory for SchedulerKind {
    fn build(&self) -> Box<dyn Scheduler> {
        match *self {
            SchedulerKind::Fcfs => Box::new(Fcfs::new()),
            SchedulerKind::RoundRobin => Box::new(RoundRobin::new()),
            SchedulerKind::Edf { drop } => Box::new(Edf::new(drop)),
            SchedulerKind::Abs => Box::new(Abs::new()),
            SchedulerKind::MultiLevel { drop } => Box::new(MultiLevel::new(drop)),
            SchedulerKind::Pifo => Box::new(Pifo::new()),
            SchedulerKind::SortedListAbs => Box::new(SortedListAbs::new()),
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheduler name that [`SchedulerKind::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler {0:?} (expected one of: fcfs, rr, edf, edf-soft, abs, ml, ml-soft, pifo, sorted-abs)")]
pub struct UnknownScheduler(pub String);

impl FromStr for SchedulerKind {
    type Err = UnknownScheduler;

    /// Parses a [`name`](SchedulerKind::name), ignoring ASCII case; also accepts the
    /// aliases `round-robin`, `multilevel` and `sorted-list`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let alias = match lower.as_str() {
            "round-robin" => Some(SchedulerKind::RoundRobin),
            "multilevel" => Some(SchedulerKind::MultiLevel { drop: true }),
            "sorted-list" => Some(SchedulerKind::SortedListAbs),
            _ => None,
        };
        alias
            .or_else(|| SchedulerKind::ALL.into_iter().find(|k| k.name() == lower))
            .ok_or_else(|| UnknownScheduler(s.to_owned()))
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;
