//! Scheduled DATAGRAM flows: datagrams ordered by the connection's stream scheduler.
//!
//! [`StreamsState::send_datagram`](super::StreamsState) queues of the connection send
//! unclassed DATAGRAM frames first-in first-out, ahead of all stream data. A *datagram
//! flow* instead has a [`StreamClass`] and takes part in the scheduler like a stream: the
//! scheduler sees it under a pseudo stream ID (`2^62 + flow`, above every real stream ID,
//! so the two never collide) and decides, packet by packet, whether the next frame is
//! STREAM data of some stream or a DATAGRAM of some flow — the same policy for both
//! (strict priority, round robin, EDF, …). A hard deadline that passes drops the flow's
//! queued datagrams (datagrams are never reset; the flow stays open).
//!
//! Each flow has its own bounded queue (the connection's datagram send buffer size):
//! when it is full the flow's *own* oldest datagram is dropped, so a bulk flow cannot
//! push out the datagrams of another.

use super::StreamsState;
use crate::frame;
use crate::sched::StreamClass;
use crate::shared::StreamId;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// Pseudo stream IDs of datagram flows start here (real stream IDs are below 2^62).
const FLOW_BASE: u64 = 1 << 62;

/// A datagram flow of one connection (see [`crate::connection::Connection::open_datagram_flow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatagramFlowId(pub u64);

impl DatagramFlowId {
    fn sched_id(self) -> StreamId {
        StreamId(FLOW_BASE + self.0)
    }

    fn from_sched_id(id: StreamId) -> Option<Self> {
        id.0.checked_sub(FLOW_BASE).map(DatagramFlowId)
    }
}

/// The flow does not exist (never opened, or closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown datagram flow")]
pub struct UnknownFlow;

#[derive(Debug, Default)]
struct Flow {
    class: StreamClass,
    queue: VecDeque<Bytes>,
    bytes: usize,
    /// The scheduler forgot the flow (its deadline expired): announce it again on the
    /// next datagram.
    forgotten: bool,
    /// Packets in a row in which the front datagram did not fit.
    misfits: u8,
}

/// Packets in a row a datagram may fail to fit before it is dropped.
const MAX_MISFITS: u8 = 3;

/// All datagram flows of a connection.
#[derive(Debug, Default)]
pub(super) struct Flows {
    flows: HashMap<u64, Flow>,
    next: u64,
    /// Datagrams dropped: queue full, expired deadline, too large for any packet.
    dropped: u64,
}

/// Counters of datagram flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramFlowStats {
    /// Open flows.
    pub flows: usize,
    /// Datagrams dropped before sending (queue full, deadline passed, did not fit).
    pub dropped: u64,
}

impl StreamsState {
    /// Open a datagram flow with a scheduling class.
    pub fn open_datagram_flow(&mut self, class: &StreamClass) -> DatagramFlowId {
        let id = DatagramFlowId(self.dgram.next);
        self.dgram.next += 1;
        self.dgram.flows.insert(
            id.0,
            Flow {
                class: *class,
                ..Flow::default()
            },
        );
        self.scheduler.on_open(id.sched_id(), class, self.now);
        id
    }

    /// Change a flow's class.
    pub fn set_datagram_flow_class(
        &mut self,
        id: DatagramFlowId,
        class: &StreamClass,
    ) -> Result<(), UnknownFlow> {
        let flow = self.dgram.flows.get_mut(&id.0).ok_or(UnknownFlow)?;
        flow.class = *class;
        self.scheduler.set_class(id.sched_id(), class, self.now);
        Ok(())
    }

    /// Close a flow; its queued datagrams are dropped.
    pub fn close_datagram_flow(&mut self, id: DatagramFlowId) -> Result<(), UnknownFlow> {
        self.dgram.flows.remove(&id.0).ok_or(UnknownFlow)?;
        self.ready.remove(&id.sched_id());
        self.scheduler.on_closed(id.sched_id());
        Ok(())
    }

    /// Queue a datagram on a flow; when the flow holds more than `limit` bytes its
    /// oldest datagrams are dropped. The caller checked the size against the peer's
    /// limit.
    pub fn queue_flow_datagram(
        &mut self,
        id: DatagramFlowId,
        data: Bytes,
        limit: usize,
    ) -> Result<(), UnknownFlow> {
        let flow = self.dgram.flows.get_mut(&id.0).ok_or(UnknownFlow)?;
        while flow.bytes + data.len() > limit {
            match flow.queue.pop_front() {
                Some(old) => {
                    flow.bytes -= old.len();
                    self.dgram.dropped += 1;
                }
                None => break,
            }
        }
        flow.bytes += data.len();
        flow.queue.push_back(data);
        if flow.forgotten {
            flow.forgotten = false;
            let class = flow.class;
            self.scheduler.on_open(id.sched_id(), &class, self.now);
        }
        self.mark_ready(id.sched_id());
        Ok(())
    }

    /// Datagram flow counters.
    pub fn datagram_flow_stats(&self) -> DatagramFlowStats {
        DatagramFlowStats {
            flows: self.dgram.flows.len(),
            dropped: self.dgram.dropped,
        }
    }

    /// Whether a scheduler ID names a datagram flow.
    pub(super) fn is_flow(id: StreamId) -> bool {
        id.0 >= FLOW_BASE
    }

    /// The scheduler expired a flow's deadline: drop what it has queued.
    pub(super) fn expire_flow(&mut self, id: StreamId) {
        self.ready.remove(&id);
        let Some(flow) =
            DatagramFlowId::from_sched_id(id).and_then(|f| self.dgram.flows.get_mut(&f.0))
        else {
            return;
        };
        self.dgram.dropped += flow.queue.len() as u64;
        flow.queue.clear();
        flow.bytes = 0;
        flow.forgotten = true;
    }

    /// The scheduler picked flow `id` for the next frame: write one DATAGRAM frame if it
    /// fits in `room`. Returns `false` if the packet is full (nothing written).
    /// `fresh` says nothing else was written by the scheduler loop into this packet yet;
    /// a datagram that repeatedly does not fit then (the MTU shrank) is dropped.
    pub(super) fn write_flow_datagram(
        &mut self,
        id: StreamId,
        buf: &mut Vec<u8>,
        room: usize,
        fresh: bool,
    ) -> bool {
        let now = self.now;
        let flow = DatagramFlowId::from_sched_id(id).and_then(|f| self.dgram.flows.get_mut(&f.0));
        let Some(flow) = flow else {
            self.ready.remove(&id);
            self.scheduler.on_closed(id);
            return true;
        };
        let Some(front) = flow.queue.front() else {
            self.ready.remove(&id);
            self.scheduler.on_blocked(id);
            return true;
        };
        let size = frame::Datagram::size(front.len(), true);
        if size > room {
            if !fresh {
                return false;
            }
            // Frames written ahead of the scheduler loop (ACKs, control) may have taken
            // the room once; three misses in packets of its own mean the datagram no
            // longer fits any packet.
            flow.misfits += 1;
            if flow.misfits < MAX_MISFITS {
                return false;
            }
            flow.misfits = 0;
            let old = flow.queue.pop_front().unwrap_or_default();
            flow.bytes -= old.len();
            self.dgram.dropped += 1;
            let more = !flow.queue.is_empty();
            self.scheduler.on_sent(id, 0, more, now);
            if !more {
                self.ready.remove(&id);
            }
            return true;
        }
        let data = flow.queue.pop_front().unwrap_or_default();
        flow.bytes -= data.len();
        flow.misfits = 0;
        let more = !flow.queue.is_empty();
        frame::Datagram { data }.encode(true, buf);
        self.scheduler.on_sent(id, size, more, now);
        if !more {
            self.ready.remove(&id);
        }
        true
    }
}
