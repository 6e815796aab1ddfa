//! Stream classes: what a scheduler knows about a stream.

use std::time::{Duration, Instant};

/// When a stream must be fully sent.
///
/// A deadline is resolved to an absolute [`Instant`] when the stream is opened
/// ([`Scheduler::on_open`](super::Scheduler::on_open)); a later
/// [`Scheduler::set_class`](super::Scheduler::set_class) with [`Deadline::AfterOpen`] is
/// resolved against the original opening time, not the time of the change.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// An absolute point in time.
    At(Instant),
    /// A duration after the stream was opened.
    AfterOpen(Duration),
}

impl Deadline {
    /// The absolute deadline for a stream opened at `opened`.
    ///
    /// Returns `None` when the deadline is not representable (an `AfterOpen` duration so
    /// large that `opened + d` overflows); such a deadline is treated as "no deadline",
    /// which is what a practically infinite deadline means anyway.
    pub fn resolve(self, opened: Instant) -> Option<Instant> {
        match self {
            Deadline::At(t) => Some(t),
            Deadline::AfterOpen(d) => opened.checked_add(d),
        }
    }
}

/// The class of a stream: given when the stream is opened, changeable later.
///
/// Every scheduler sees the whole class and uses the parts its policy cares about:
///
/// | scheduler | uses |
/// |---|---|
/// | FCFS, RR | nothing (order of readiness) |
/// | EDF | `deadline` |
/// | ABS | `priority` |
/// | ML | `level`, and `deadline` inside level 0 |
/// | PIFO, sorted-list ABS | `priority`, then `deadline` |
///
/// Build one with the constructors and `with_*` methods:
/// ```
/// # use std::time::Duration;
/// use quiver_proto::sched::StreamClass;
/// let interactive = StreamClass::deadline(Duration::from_millis(200)).with_priority(0);
/// let bulk = StreamClass::default().with_level(1).with_priority(7);
/// assert!(interactive.priority < bulk.priority); // 0 is the most urgent
/// ```
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct StreamClass {
    /// Urgency: **0 is the most urgent**, 255 the least. Defaults to
    /// [`StreamClass::DEFAULT_PRIORITY`] (3), mirroring the default urgency of HTTP
    /// Extensible Priorities (RFC 9218 §4.1) so that streams can be made both more and
    /// less urgent than an unclassified stream.
    pub priority: u8,
    /// Optional deadline by which the stream should be fully sent.
    pub deadline: Option<Deadline>,
    /// Level for multi-level schedulers: **0 is the highest level** (always served
    /// first). Defaults to 0.
    pub level: u8,
}

impl StreamClass {
    /// The priority of a stream opened without a class (RFC 9218 §4.1 default urgency).
    pub const DEFAULT_PRIORITY: u8 = 3;

    /// The default class: priority [`DEFAULT_PRIORITY`](Self::DEFAULT_PRIORITY), no
    /// deadline, level 0.
    pub const fn new() -> Self {
        StreamClass {
            priority: Self::DEFAULT_PRIORITY,
            deadline: None,
            level: 0,
        }
    }

    /// The default class with a deadline `after_open` after the stream is opened.
    pub const fn deadline(after_open: Duration) -> Self {
        Self::new().with_deadline(Deadline::AfterOpen(after_open))
    }

    /// This class with the given priority (0 = most urgent).
    pub const fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// This class with the given deadline.
    pub const fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// This class without a deadline.
    pub const fn without_deadline(mut self) -> Self {
        self.deadline = None;
        self
    }

    /// This class at the given level (0 = highest).
    pub const fn with_level(mut self, level: u8) -> Self {
        self.level = level;
        self
    }
}

impl Default for StreamClass {
    fn default() -> Self {
        Self::new()
    }
}

/// A resolved deadline used as a sort key: earlier deadlines first, "no deadline" after
/// every deadline.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DeadlineKey(pub(crate) Option<Instant>);

impl Ord for DeadlineKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        match (self.0, other.0) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (None, None) => Equal,
        }
    }
}

impl PartialOrd for DeadlineKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_key_orders_none_last() {
        let t = Instant::now();
        let a = DeadlineKey(Some(t));
        let b = DeadlineKey(Some(t + Duration::from_millis(1)));
        let n = DeadlineKey(None);
        assert!(a < b && b < n && a < n);
        assert_eq!(n.cmp(&n), std::cmp::Ordering::Equal);
    }

    #[test]
    fn resolve_deadlines() {
        let t = Instant::now();
        assert_eq!(Deadline::At(t).resolve(t), Some(t));
        assert_eq!(
            Deadline::AfterOpen(Duration::from_secs(1)).resolve(t),
            Some(t + Duration::from_secs(1))
        );
        assert_eq!(Deadline::AfterOpen(Duration::MAX).resolve(t), None);
    }

    #[test]
    fn builders() {
        let c = StreamClass::deadline(Duration::from_secs(1))
            .with_priority(0)
            .with_level(2);
        assert_eq!(c.priority, 0);
        assert_eq!(c.level, 2);
        assert_eq!(
            c.deadline,
            Some(Deadline::AfterOpen(Duration::from_secs(1)))
        );
        assert_eq!(c.without_deadline().deadline, None);
        assert_eq!(
            StreamClass::default().priority,
            StreamClass::DEFAULT_PRIORITY
        );
    }
}
