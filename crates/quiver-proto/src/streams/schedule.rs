//! The stream scheduler seam: which stream fills the next STREAM frame.

use crate::shared::StreamId;
use std::collections::{BTreeSet, VecDeque};

/// Which stream fills the next STREAM frame: plain round robin over streams with new
/// data (or a FIN) to send, one frame per turn.
///
/// This is the seam for the pluggable `sched::Scheduler` (next project issue). The
/// manager talks to it only through these calls, so swapping it for a trait object is
/// local to this struct:
/// - [`on_ready`](Self::on_ready): a stream got new data or a FIN to send;
/// - [`next`](Self::next): which stream goes next;
/// - [`on_sent`](Self::on_sent): bytes from that stream were framed, and whether it still
///   has more;
/// - [`on_closed`](Self::on_closed): the stream finished, was reset or was freed.
///
/// Retransmissions do not go through it: lost data is resent first, in stream-id order.
#[derive(Debug, Default)]
pub(super) struct RoundRobin {
    queue: VecDeque<StreamId>,
    members: BTreeSet<StreamId>,
}

impl RoundRobin {
    pub(super) fn on_ready(&mut self, id: StreamId) {
        if self.members.insert(id) {
            self.queue.push_back(id);
        }
    }

    pub(super) fn next(&self) -> Option<StreamId> {
        self.queue.front().copied()
    }

    pub(super) fn on_sent(&mut self, id: StreamId, _bytes: u64, more: bool) {
        if self.queue.front() == Some(&id) {
            self.queue.pop_front();
            if more {
                self.queue.push_back(id);
            } else {
                self.members.remove(&id);
            }
        } else if !more {
            self.on_closed(id);
        }
    }

    pub(super) fn on_closed(&mut self, id: StreamId) {
        if self.members.remove(&id) {
            self.queue.retain(|&x| x != id);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
