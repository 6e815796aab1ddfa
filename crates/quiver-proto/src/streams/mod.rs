//! QUIC streams (RFC 9000 §2–4): the per-connection stream manager.
//!
//! [`StreamsState`] owns every stream of one connection: their send buffers, reassembly
//! buffers, state machines (RFC 9000 §3), stream-count limits (§4.6) and flow control at
//! stream and connection level (§4.1–4.2). It is sans-IO and never reads a clock.
//!
//! ## How the connection drives it
//! 1. Create it with [`StreamsState::new`]; advertise [`StreamsConfig::local_limits`] in
//!    the local transport parameters; call [`StreamsState::set_peer_limits`] when the
//!    peer's transport parameters arrive.
//! 2. Feed every received stream frame to the matching `on_*` method (`on_stream_frame`,
//!    `on_reset_stream`, `on_stop_sending`, `on_max_data`, ...). An `Err` is a connection
//!    error to send in CONNECTION_CLOSE.
//! 3. When building a packet, call [`StreamsState::write_control_frames`] and then
//!    [`StreamsState::write_stream_frames`] with the packet's remaining byte budget and one
//!    [`SentStreamFrames`] per packet. Store that record with the packet and hand it back
//!    to [`StreamsState::on_packet_acked`] or [`StreamsState::on_packet_lost`].
//! 4. Drain [`StreamsState::poll_event`] after each of the above.
//!
//! The application side (`open`, `accept`, `write`, `finish`, `reset`, `read`,
//! `stop_sending`) is called through the connection.
//!
//! ## Flow-control accounting
//! Written data is charged to stream and connection flow control at `write` time (so
//! buffered data is always sendable and a reset's final size is the written length).
//! Received data is credited back to the peer as the application reads it, or at once
//! when it will never be read (reset, STOP_SENDING). Incoming data is checked against
//! the limits actually *sent* (not merely queued), as are peer stream ids (§4.6).
//!
//! ## Receive-window auto-tuning
//! The receive windows start at [`StreamsConfig::stream_receive_window`] and
//! [`StreamsConfig::receive_window`] (the transport parameters) and grow towards the
//! bandwidth-delay product, as in Chromium's QUIC flow controller: when a window update
//! (MAX_STREAM_DATA or MAX_DATA, issued once half the window is consumed, §4.2) is due
//! less than two smoothed RTTs after the previous one for the same stream (or the
//! connection), the window is what limits the peer, and it is doubled, up to
//! [`StreamsConfig::max_stream_receive_window`] /
//! [`StreamsConfig::max_receive_window`], before the new limit is computed. The
//! connection window is kept at least 1.5 times the largest stream window so one stream
//! is not held back by it. Windows never shrink, and data beyond the limit actually
//! advertised is still a FLOW_CONTROL_ERROR, so buffered data stays bounded by the
//! maxima. The connection reports the smoothed RTT with [`StreamsState::set_rtt`]; until
//! it does (zero RTT) nothing is tuned.
//!
//! ## Stream lifetime
//! A stream is freed when each half it has is terminal: the sending half acknowledged
//! (Data Recvd / Reset Recvd) and the receiving half read to the end or its reset seen
//! by the application (Data Read / Reset Read), or abandoned with `stop_sending` once
//! its final size is known. A peer-initiated bidirectional stream therefore needs the
//! application to `finish` or `reset` its sending half too. Freeing a peer-initiated
//! stream returns one stream credit (MAX_STREAMS). Frames for freed streams are ignored.
//!
//! [`StreamEvent::Readable`] is edge-triggered: read until `Blocked` to re-arm it.

mod datagram_flows;
mod frames;
mod ranges;
mod recv;
mod send;
#[cfg(test)]
mod tests;
mod transmit;

pub use datagram_flows::{DatagramFlowId, DatagramFlowStats, UnknownFlow};
pub use recv::{RecvBuffer, RecvState};
pub use send::{SendBuffer, SendState};
pub use transmit::SentStreamFrames;

use crate::coding::VarInt;
use crate::error::TransportError;
use crate::range_set::RangeSet;
use crate::sched::{
    Scheduler, SchedulerFactory, SchedulerKind, StreamClass, DEADLINE_EXCEEDED_CODE,
};
use crate::shared::{Dir, Side, StreamId};
use bytes::Bytes;
use recv::RecvStream;
use send::SendStream;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest stream count a MAX_STREAMS / STREAMS_BLOCKED frame may carry (RFC 9000 §4.6).
const MAX_STREAM_COUNT: u64 = 1 << 60;

/// Local stream and flow-control settings.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// Peer-initiated bidirectional streams that may be open at once.
    pub max_concurrent_bidi: u64,
    /// Peer-initiated unidirectional streams that may be open at once.
    pub max_concurrent_uni: u64,
    /// Initial per-stream receive window (bytes the peer may send beyond what was
    /// read); advertised in the transport parameters.
    pub stream_receive_window: u64,
    /// Initial connection-level receive window; advertised in the transport parameters.
    pub receive_window: u64,
    /// Ceiling of per-stream receive-window auto-tuning (a value at or below
    /// `stream_receive_window` disables it). See [`StreamsState::set_rtt`].
    pub max_stream_receive_window: u64,
    /// Ceiling of connection-level receive-window auto-tuning (a value at or below
    /// `receive_window` disables it).
    pub max_receive_window: u64,
    /// Local cap on written-but-unacknowledged data, summed over all streams.
    pub send_window: u64,
    /// Builds the stream scheduler (the [`crate::sched`] hook); round robin by default.
    pub scheduler: Arc<dyn SchedulerFactory>,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            max_concurrent_bidi: 100,
            max_concurrent_uni: 100,
            stream_receive_window: 1 << 20,
            receive_window: 8 << 20,
            max_stream_receive_window: 16 << 20,
            max_receive_window: 24 << 20,
            send_window: 8 << 20,
            scheduler: Arc::new(SchedulerKind::RoundRobin),
        }
    }
}

impl StreamsConfig {
    /// The limits to advertise in our transport parameters (RFC 9000 §18.2), consistent
    /// with what this manager enforces.
    pub fn local_limits(&self) -> PeerLimits {
        let max = VarInt::MAX.into_inner();
        let stream_window = self.stream_receive_window.min(max);
        PeerLimits {
            initial_max_data: self.receive_window.min(max),
            initial_max_stream_data_bidi_local: stream_window,
            initial_max_stream_data_bidi_remote: stream_window,
            initial_max_stream_data_uni: stream_window,
            initial_max_streams_bidi: self.max_concurrent_bidi.min(MAX_STREAM_COUNT),
            initial_max_streams_uni: self.max_concurrent_uni.min(MAX_STREAM_COUNT),
        }
    }
}

/// Flow-control and stream-count transport parameters (RFC 9000 §18.2), named from
/// the perspective of the endpoint that sent them.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq)]
pub struct PeerLimits {
    /// `initial_max_data`.
    pub initial_max_data: u64,
    /// `initial_max_stream_data_bidi_local`: for bidi streams the sender initiates.
    pub initial_max_stream_data_bidi_local: u64,
    /// `initial_max_stream_data_bidi_remote`: for bidi streams its peer initiates.
    pub initial_max_stream_data_bidi_remote: u64,
    /// `initial_max_stream_data_uni`: for uni streams its peer initiates.
    pub initial_max_stream_data_uni: u64,
    /// `initial_max_streams_bidi`.
    pub initial_max_streams_bidi: u64,
    /// `initial_max_streams_uni`.
    pub initial_max_streams_uni: u64,
}

/// What does not fit under the limits given to [`StreamsState::replace_peer_limits`].
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
pub enum LimitsBelowUse {
    /// More data was written (on the connection or on one stream) than the new limit
    /// allows.
    #[error("data already written exceeds the new flow-control limit")]
    Data,
    /// More streams were opened than the new stream limit allows.
    #[error("streams already opened exceed the new stream limit")]
    Streams,
}

/// Something the application may want to react to.
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub enum StreamEvent {
    /// The peer opened one or more streams: call [`StreamsState::accept`].
    Opened {
        /// Direction of the new streams.
        dir: Dir,
    },
    /// The stream went from not readable to readable (data, end or reset). Read until
    /// `Blocked` to get the next event.
    Readable {
        /// The stream.
        id: StreamId,
    },
    /// A write that was refused or cut short may now make progress.
    Writable {
        /// The stream.
        id: StreamId,
    },
    /// All data, including the FIN, was acknowledged.
    Finished {
        /// The stream.
        id: StreamId,
    },
    /// The peer sent STOP_SENDING; the stream was reset with its code.
    Stopped {
        /// The stream.
        id: StreamId,
        /// Application error code from STOP_SENDING.
        error_code: VarInt,
    },
    /// The peer raised its stream limit: [`StreamsState::open`] may succeed again.
    /// The stream's hard deadline passed before all of it was sent: it was reset with
    /// [`crate::sched::DEADLINE_EXCEEDED_CODE`].
    Expired {
        /// The stream.
        id: StreamId,
    },
    /// More streams of this direction may be opened.
    Available {
        /// Direction.
        dir: Dir,
    },
}

/// Why a write failed.
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
pub enum WriteError {
    /// Flow control or the send window is exhausted; wait for [`StreamEvent::Writable`].
    #[error("stream blocked by flow control")]
    Blocked,
    /// The peer sent STOP_SENDING with this code.
    #[error("stream stopped by peer with code {0}")]
    Stopped(VarInt),
    /// The stream does not exist, has no sending part, or was finished or reset.
    #[error("stream closed")]
    ClosedStream,
}

/// Why a read failed.
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
pub enum ReadError {
    /// No data available yet; wait for [`StreamEvent::Readable`].
    #[error("no data available")]
    Blocked,
    /// The peer reset the stream with this code.
    #[error("stream reset by peer with code {0}")]
    Reset(VarInt),
    /// The stream does not exist, has no receiving part, or was fully read or stopped.
    #[error("stream closed")]
    ClosedStream,
}

/// The stream does not exist or is not in a state that allows the operation.
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[error("stream closed")]
pub struct ClosedStream;

/// Both halves of a stream; a half that does not exist for this stream is `None`.
#[derive(Debug)]
struct Stream {
    send: Option<SendStream>,
    recv: Option<RecvStream>,
}

impl Stream {
    fn is_closed(&self) -> bool {
        self.send.as_ref().is_none_or(|s| s.state.is_terminal())
            && self.recv.as_ref().is_none_or(|r| r.state.is_terminal())
    }
}

fn dir_idx(dir: Dir) -> usize {
    dir as usize
}

const DIRS: [Dir; 2] = [Dir::Bi, Dir::Uni];

/// All streams of one connection. See the [module docs](self) for the call contract.
#[derive(Debug)]
pub struct StreamsState {
    side: Side,
    config: StreamsConfig,
    peer: PeerLimits,
    streams: BTreeMap<StreamId, Stream>,

    // Locally initiated streams (RFC 9000 §4.6).
    /// Index of the next stream we open, per direction.
    next_local: [u64; 2],
    /// Peer's limit on streams we may open (count), per direction.
    peer_max_streams: [u64; 2],
    streams_blocked_pending: [bool; 2],
    streams_blocked_sent: [Option<u64>; 2],
    /// `open` failed since the limit last grew: report `Available` when it does.
    open_blocked: [bool; 2],

    // Peer-initiated streams.
    /// Number of peer streams opened so far (all lower indices exist or existed).
    next_remote: [u64; 2],
    /// Peer streams below `next_remote` opened implicitly by a frame for a higher
    /// index (RFC 9000 §3.2) but not created yet: created when named by a frame or
    /// accepted, so that a peer naming a high index costs O(1), not O(index).
    implicit_remote: [RangeSet; 2],
    next_accept: [u64; 2],
    /// Limit decided on (count; queued or sent in MAX_STREAMS).
    local_max_streams: [u64; 2],
    /// Highest limit actually sent: what peer stream ids are checked against.
    advertised_max_streams: [u64; 2],
    max_streams_pending: [bool; 2],

    // Connection-level send flow control.
    peer_max_data: u64,
    /// Bytes written (and charged) over all streams.
    data_sent: u64,
    /// Written but unacknowledged bytes over all streams (bounded by `send_window`).
    unacked: u64,
    data_blocked_pending: bool,
    data_blocked_sent: Option<u64>,

    // Connection-level receive flow control.
    /// Limit decided on (queued or sent in MAX_DATA).
    local_max_data: u64,
    /// Highest limit actually sent: what incoming data is checked against.
    advertised_max_data: u64,
    /// Sum of the highest offsets received over all streams.
    data_recvd: u64,
    /// Current connection receive window (auto-tuned, never shrinks).
    receive_window: u64,
    /// When the last threshold MAX_DATA update was decided (see `maybe_max_data`).
    max_data_updated: Option<Instant>,
    /// Largest receive window any stream has had.
    largest_stream_window: u64,
    /// Smoothed RTT reported by the connection; zero while unknown (no tuning).
    rtt: Duration,
    /// Bytes returned to the receive window (read or abandoned).
    data_consumed: u64,
    max_data_pending: bool,

    // Per-stream control frames waiting to be sent.
    max_stream_data_pending: BTreeSet<StreamId>,
    stream_data_blocked_pending: BTreeSet<StreamId>,
    reset_pending: BTreeSet<StreamId>,
    stop_pending: BTreeMap<StreamId, VarInt>,

    /// Decides which ready stream fills the next STREAM frame (new data, lost data to
    /// resend, or a FIN); lost data keeps its stream's place in the order.
    scheduler: Box<dyn Scheduler>,
    /// Streams the scheduler was told are ready (mirror, for cheap `has_pending_data`).
    ready: BTreeSet<StreamId>,
    /// The connection's latest time, for scheduler calls from commands without one.
    now: Instant,
    /// Streams whose last write was refused or cut short, oldest first. Entries whose
    /// stream is no longer blocked are skipped lazily (`SendStream::in_blocked_queue`
    /// keeps a stream from being queued twice).
    write_blocked: VecDeque<StreamId>,
    events: VecDeque<StreamEvent>,
    /// Datagram flows scheduled with the streams (see `datagram_flows.rs`).
    dgram: datagram_flows::Flows,
}

impl StreamsState {
    /// A manager for the `side` end of a connection.
    pub fn new(side: Side, mut config: StreamsConfig, now: Instant) -> Self {
        // Windows are carried in varints.
        let max = VarInt::MAX.into_inner();
        config.stream_receive_window = config.stream_receive_window.min(max);
        config.receive_window = config.receive_window.min(max);
        // A maximum below the initial window means no tuning.
        config.max_stream_receive_window = config
            .max_stream_receive_window
            .clamp(config.stream_receive_window, max);
        config.max_receive_window = config.max_receive_window.clamp(config.receive_window, max);
        let local = config.local_limits();
        Self {
            side,
            peer: PeerLimits::default(),
            streams: BTreeMap::new(),
            next_local: [0; 2],
            peer_max_streams: [0; 2],
            streams_blocked_pending: [false; 2],
            streams_blocked_sent: [None; 2],
            open_blocked: [false; 2],
            next_remote: [0; 2],
            implicit_remote: [RangeSet::new(), RangeSet::new()],
            next_accept: [0; 2],
            local_max_streams: [
                local.initial_max_streams_bidi,
                local.initial_max_streams_uni,
            ],
            advertised_max_streams: [
                local.initial_max_streams_bidi,
                local.initial_max_streams_uni,
            ],
            max_streams_pending: [false; 2],
            peer_max_data: 0,
            data_sent: 0,
            unacked: 0,
            data_blocked_pending: false,
            data_blocked_sent: None,
            local_max_data: local.initial_max_data,
            advertised_max_data: local.initial_max_data,
            data_recvd: 0,
            receive_window: local.initial_max_data,
            max_data_updated: None,
            largest_stream_window: config.stream_receive_window,
            rtt: Duration::ZERO,
            data_consumed: 0,
            max_data_pending: false,
            max_stream_data_pending: BTreeSet::new(),
            stream_data_blocked_pending: BTreeSet::new(),
            reset_pending: BTreeSet::new(),
            stop_pending: BTreeMap::new(),
            scheduler: config.scheduler.build(),
            ready: BTreeSet::new(),
            now,
            write_blocked: VecDeque::new(),
            events: VecDeque::new(),
            dgram: Default::default(),
            config,
        }
    }

    /// Apply the peer's transport parameters. Limits only ever grow, so this may be
    /// called first with remembered 0-RTT values and again with the real ones.
    pub fn set_peer_limits(&mut self, limits: PeerLimits) {
        let p = &mut self.peer;
        p.initial_max_data = p.initial_max_data.max(limits.initial_max_data);
        p.initial_max_stream_data_bidi_local = p
            .initial_max_stream_data_bidi_local
            .max(limits.initial_max_stream_data_bidi_local);
        p.initial_max_stream_data_bidi_remote = p
            .initial_max_stream_data_bidi_remote
            .max(limits.initial_max_stream_data_bidi_remote);
        p.initial_max_stream_data_uni = p
            .initial_max_stream_data_uni
            .max(limits.initial_max_stream_data_uni);
        self.peer_max_data = self.peer_max_data.max(limits.initial_max_data);
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            let initial = self.initial_send_limit(id);
            if let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) {
                send.max_data = send.max_data.max(initial);
            }
        }
        self.raise_peer_max_streams(Dir::Bi, limits.initial_max_streams_bidi);
        self.raise_peer_max_streams(Dir::Uni, limits.initial_max_streams_uni);
        self.check_writable();
    }

    /// Replace the peer's limits by `limits` (which may be lower than before): the
    /// client's move when the server rejected 0-RTT and sent parameters other than the
    /// remembered ones (RFC 9000 §7.4.1). Connection and stream credit are recomputed
    /// from the new values. Fails, changing nothing, if data already written or streams
    /// already opened do not fit under them.
    pub fn replace_peer_limits(&mut self, limits: PeerLimits) -> Result<(), LimitsBelowUse> {
        if self.data_sent > limits.initial_max_data {
            return Err(LimitsBelowUse::Data);
        }
        if self.next_local[dir_idx(Dir::Bi)] > limits.initial_max_streams_bidi
            || self.next_local[dir_idx(Dir::Uni)] > limits.initial_max_streams_uni
        {
            return Err(LimitsBelowUse::Streams);
        }
        let old = std::mem::replace(&mut self.peer, limits);
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for &id in &ids {
            let limit = self.initial_send_limit(id);
            if let Some(send) = self.streams.get(&id).and_then(|s| s.send.as_ref()) {
                if send.buf.offset().max(send.reset_final_size) > limit {
                    self.peer = old;
                    return Err(LimitsBelowUse::Data);
                }
            }
        }
        self.peer_max_data = limits.initial_max_data;
        self.data_blocked_sent = None;
        for id in ids {
            let limit = self.initial_send_limit(id);
            if let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) {
                send.max_data = limit;
                send.blocked_reported_at = None;
            }
        }
        for dir in DIRS {
            let d = dir_idx(dir);
            self.peer_max_streams[d] = 0;
            self.streams_blocked_sent[d] = None;
        }
        self.raise_peer_max_streams(Dir::Bi, limits.initial_max_streams_bidi);
        self.raise_peer_max_streams(Dir::Uni, limits.initial_max_streams_uni);
        self.check_writable();
        Ok(())
    }

    // ------------------------------------------------------------------ getters

    /// Which end of the connection this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// State of the sending part, if the stream exists and has one.
    pub fn send_state(&self, id: StreamId) -> Option<SendState> {
        self.streams.get(&id)?.send.as_ref().map(|s| s.state)
    }

    /// State of the receiving part, if the stream exists and has one.
    pub fn recv_state(&self, id: StreamId) -> Option<RecvState> {
        self.streams.get(&id)?.recv.as_ref().map(|r| r.state)
    }

    /// Whether all data and the FIN were acknowledged. `Err` once the stream has been
    /// freed (for a send-only stream, as soon as it finishes: see
    /// [`StreamEvent::Finished`]).
    pub fn is_finished_sending(&self, id: StreamId) -> Result<bool, ClosedStream> {
        self.send_state(id)
            .map(|s| s == SendState::DataRecvd)
            .ok_or(ClosedStream)
    }

    /// Number of streams currently held (open or waiting for acknowledgements).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Written but unacknowledged bytes, over all streams.
    pub fn unacked(&self) -> u64 {
        self.unacked
    }

    /// Current connection-level receive window: [`StreamsConfig::receive_window`] until
    /// auto-tuning raises it (see the [module docs](self)).
    pub fn receive_window(&self) -> u64 {
        self.receive_window
    }

    /// Largest per-stream receive window any stream has had so far:
    /// [`StreamsConfig::stream_receive_window`] until auto-tuning raises one.
    pub fn largest_stream_receive_window(&self) -> u64 {
        self.largest_stream_window
    }

    /// Current receive window of a stream, if it exists and has a receiving part.
    pub fn stream_receive_window(&self, id: StreamId) -> Option<u64> {
        self.streams.get(&id)?.recv.as_ref().map(|r| r.window)
    }

    /// Whether STREAM frames are waiting to be sent. Flow control is charged at write
    /// time, so buffered data is always sendable.
    pub fn has_pending_data(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether [`write_stream_frames`](Self::write_stream_frames) would write something
    /// given enough room (same as [`has_pending_data`](Self::has_pending_data)).
    pub fn can_send_stream_data(&self) -> bool {
        self.has_pending_data()
    }

    /// Whether control frames (flow-control updates, blocked signals, resets, stops)
    /// are waiting to be sent.
    pub fn has_pending_control(&self) -> bool {
        self.max_data_pending
            || self.data_blocked_pending
            || self.max_streams_pending.iter().any(|&x| x)
            || self.streams_blocked_pending.iter().any(|&x| x)
            || !self.max_stream_data_pending.is_empty()
            || !self.stream_data_blocked_pending.is_empty()
            || !self.reset_pending.is_empty()
            || !self.stop_pending.is_empty()
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    // ------------------------------------------------------------------ application

    /// Open a stream. `None` when the peer's stream limit is reached; STREAMS_BLOCKED is
    /// then queued and [`StreamEvent::Available`] follows when the limit grows.
    pub fn open(&mut self, dir: Dir) -> Option<StreamId> {
        self.open_with(dir, &StreamClass::default())
    }

    /// Open a stream with a scheduling class (priority, deadline, level); see
    /// [`crate::sched`]. `None` when the peer's stream limit is reached.
    pub fn open_with(&mut self, dir: Dir, class: &StreamClass) -> Option<StreamId> {
        let d = dir_idx(dir);
        if self.next_local[d] >= self.peer_max_streams[d] {
            // RFC 9000 §4.6: signal once per limit.
            let limit = self.peer_max_streams[d];
            self.open_blocked[d] = true;
            if self.streams_blocked_sent[d] != Some(limit) {
                self.streams_blocked_sent[d] = Some(limit);
                self.streams_blocked_pending[d] = true;
            }
            return None;
        }
        let id = StreamId::new(self.side, dir, self.next_local[d]);
        self.next_local[d] += 1;
        self.insert_stream(id);
        self.scheduler.on_open(id, class, self.now);
        Some(id)
    }

    /// Change the scheduling class of a stream we send on.
    pub fn set_class(&mut self, id: StreamId, class: &StreamClass) -> Result<(), ClosedStream> {
        if self.streams.get(&id).is_none_or(|s| s.send.is_none()) {
            return Err(ClosedStream);
        }
        self.scheduler.set_class(id, class, self.now);
        Ok(())
    }

    /// Tell the manager the current time (the connection calls this on every input and
    /// before building packets); scheduler decisions and deadlines use it.
    pub fn set_now(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Tell the manager the current smoothed RTT (RFC 9002 §5.3); receive-window
    /// auto-tuning compares the time between window updates with twice this value.
    /// Zero (the initial value) means unknown and disables tuning. Cheap: a store.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    /// Earliest time at which a stream's deadline may expire (arm a timer for
    /// [`expire`](Self::expire)).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.scheduler.next_expiry()
    }

    /// Reset every stream whose hard deadline passed before it was fully sent, with
    /// [`DEADLINE_EXCEEDED_CODE`]; each one is reported as [`StreamEvent::Expired`].
    pub fn expire(&mut self, now: Instant) {
        self.set_now(now);
        while let Some(id) = self.scheduler.poll_expired(now) {
            if Self::is_flow(id) {
                self.expire_flow(id);
                continue;
            }
            self.ready.remove(&id);
            if self.do_reset(id, DEADLINE_EXCEEDED_CODE) {
                self.events.push_back(StreamEvent::Expired { id });
            }
        }
    }

    pub(crate) fn mark_ready(&mut self, id: StreamId) {
        self.ready.insert(id);
        self.scheduler.on_ready(id, self.now);
    }

    /// Next stream opened by the peer and not yet accepted.
    pub fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        let d = dir_idx(dir);
        if self.next_accept[d] >= self.next_remote[d] {
            return None;
        }
        let id = StreamId::new(!self.side, dir, self.next_accept[d]);
        self.next_accept[d] += 1;
        self.materialize(id);
        Some(id)
    }

    /// Copy as much of `data` as flow control and the send window allow; returns the
    /// number of bytes taken.
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        let n = self.write_budget(id, data.len())?;
        self.commit_write(id, Bytes::copy_from_slice(&data[..n]));
        Ok(n)
    }

    /// Like [`write`](Self::write) but without copying: the accepted prefix of `data`
    /// is kept by reference.
    pub fn write_bytes(&mut self, id: StreamId, data: Bytes) -> Result<usize, WriteError> {
        let n = self.write_budget(id, data.len())?;
        self.commit_write(id, data.slice(..n));
        Ok(n)
    }

    /// How many of `want` bytes may be written now.
    fn write_budget(&mut self, id: StreamId, want: usize) -> Result<usize, WriteError> {
        let send = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.send.as_mut())
            .ok_or(WriteError::ClosedStream)?;
        if let Some(code) = send.stop_code {
            return Err(WriteError::Stopped(code));
        }
        if !send.is_writable_state() {
            return Err(WriteError::ClosedStream);
        }
        if want == 0 {
            return Ok(0);
        }
        let want = want as u64;
        let stream_credit = send.stream_credit();
        let conn_credit = self.peer_max_data.saturating_sub(self.data_sent);
        let window = self.config.send_window.saturating_sub(self.unacked);
        let budget = stream_credit.min(conn_credit).min(window);
        if budget < want {
            send.write_blocked = true;
            send.blocked_want = want - budget;
            if !send.in_blocked_queue {
                send.in_blocked_queue = true;
                self.write_blocked.push_back(id);
            }
            // RFC 9000 §4.1: tell the peer we are blocked, once per limit.
            if stream_credit < want && send.blocked_reported_at != Some(send.max_data) {
                send.blocked_reported_at = Some(send.max_data);
                self.stream_data_blocked_pending.insert(id);
            }
            if conn_credit < want && self.data_blocked_sent != Some(self.peer_max_data) {
                self.data_blocked_sent = Some(self.peer_max_data);
                self.data_blocked_pending = true;
            }
        }
        if budget == 0 {
            return Err(WriteError::Blocked);
        }
        // budget < want ≤ usize::MAX here, or want itself.
        Ok(budget.min(want) as usize)
    }

    fn commit_write(&mut self, id: StreamId, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let n = data.len() as u64;
        if let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) {
            send.buf.write_bytes(data);
            self.data_sent += n;
            self.unacked += n;
            self.mark_ready(id);
        }
    }

    /// Mark the end of the stream: a FIN follows the written data.
    pub fn finish(&mut self, id: StreamId) -> Result<(), ClosedStream> {
        let send = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.send.as_mut())
            .ok_or(ClosedStream)?;
        if !send.is_writable_state() || send.stop_code.is_some() {
            return Err(ClosedStream);
        }
        send.finished = true;
        send.fin_pending = true;
        send.write_blocked = false;
        self.mark_ready(id);
        // A writer woken for credit that finishes instead of writing leaves that credit
        // to the next blocked writer.
        if !self.write_blocked.is_empty() {
            self.check_writable();
        }
        Ok(())
    }

    /// Abandon sending (RFC 9000 §3.1): queue RESET_STREAM with `code` and drop the
    /// buffered data.
    pub fn reset(&mut self, id: StreamId, code: VarInt) -> Result<(), ClosedStream> {
        if self.do_reset(id, code) {
            Ok(())
        } else {
            Err(ClosedStream)
        }
    }

    fn do_reset(&mut self, id: StreamId, code: VarInt) -> bool {
        let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
            return false;
        };
        let Some(released) = send.reset(code) else {
            return false;
        };
        send.write_blocked = false;
        self.unacked -= released.min(self.unacked);
        self.reset_pending.insert(id);
        self.ready.remove(&id);
        self.stream_data_blocked_pending.remove(&id);
        self.scheduler.on_closed(id);
        if released > 0 {
            self.check_writable();
        }
        true
    }

    /// Read up to `max_len` in-order bytes. `Ok(None)` is the end of the stream.
    pub fn read(&mut self, id: StreamId, max_len: usize) -> Result<Option<Bytes>, ReadError> {
        let recv = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.recv.as_mut())
            .ok_or(ReadError::ClosedStream)?;
        let result = recv.read(max_len);
        self.after_recv(id);
        result
    }

    /// Stop reading (RFC 9000 §3.5): discard incoming data and ask the peer with
    /// STOP_SENDING to reset the stream.
    pub fn stop_sending(&mut self, id: StreamId, code: VarInt) -> Result<(), ClosedStream> {
        let recv = self
            .streams
            .get_mut(&id)
            .and_then(|s| s.recv.as_mut())
            .ok_or(ClosedStream)?;
        if recv.state.is_terminal() {
            return Err(ClosedStream);
        }
        if recv.stop(code) {
            self.stop_pending.insert(id, code);
        }
        self.max_stream_data_pending.remove(&id);
        self.after_recv(id);
        Ok(())
    }

    // ------------------------------------------------------------------ peer frames

    /// A STREAM frame (RFC 9000 §19.8).
    pub fn on_stream_frame(
        &mut self,
        id: StreamId,
        offset: u64,
        data: Bytes,
        fin: bool,
    ) -> Result<(), TransportError> {
        let ty = frames::STREAM;
        self.check_recv_side(id, ty)?;
        if !self.resolve(id, ty)? {
            return Ok(());
        }
        let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
            return Ok(());
        };
        let was_readable = recv.is_readable();
        let credit = recv
            .on_data(offset, data, fin)
            .map_err(|e| e.with_frame(ty))?;
        let readable = recv.is_readable();
        self.charge_recv(credit, ty)?;
        if readable && !was_readable {
            self.events.push_back(StreamEvent::Readable { id });
        }
        self.after_recv(id);
        Ok(())
    }

    /// A RESET_STREAM frame (RFC 9000 §19.4).
    pub fn on_reset_stream(
        &mut self,
        id: StreamId,
        error_code: VarInt,
        final_size: u64,
    ) -> Result<(), TransportError> {
        let ty = frames::RESET_STREAM;
        self.check_recv_side(id, ty)?;
        if !self.resolve(id, ty)? {
            return Ok(());
        }
        let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
            return Ok(());
        };
        let was_readable = recv.is_readable();
        let credit = recv
            .on_reset(error_code, final_size)
            .map_err(|e| e.with_frame(ty))?;
        let readable = recv.is_readable();
        self.charge_recv(credit, ty)?;
        if readable && !was_readable {
            self.events.push_back(StreamEvent::Readable { id });
        }
        self.max_stream_data_pending.remove(&id);
        self.after_recv(id);
        Ok(())
    }

    /// A STOP_SENDING frame (RFC 9000 §19.5): reset the stream with the peer's code.
    pub fn on_stop_sending(
        &mut self,
        id: StreamId,
        error_code: VarInt,
    ) -> Result<(), TransportError> {
        let ty = frames::STOP_SENDING;
        self.check_send_side(id, ty)?;
        if !self.resolve(id, ty)? {
            return Ok(());
        }
        let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
            return Ok(());
        };
        if send.stop_code.is_some() {
            return Ok(());
        }
        // RFC 9000 §3.5: reply with RESET_STREAM carrying the same code, unless all
        // data was already acknowledged or the stream was already reset.
        send.stop_code = Some(error_code);
        if self.do_reset(id, error_code) {
            self.events
                .push_back(StreamEvent::Stopped { id, error_code });
        }
        Ok(())
    }

    /// A MAX_DATA frame (RFC 9000 §19.9).
    pub fn on_max_data(&mut self, max: u64) -> Result<(), TransportError> {
        if max > self.peer_max_data {
            self.peer_max_data = max;
            self.check_writable();
        }
        Ok(())
    }

    /// A MAX_STREAM_DATA frame (RFC 9000 §19.10).
    pub fn on_max_stream_data(&mut self, id: StreamId, max: u64) -> Result<(), TransportError> {
        let ty = frames::MAX_STREAM_DATA;
        self.check_send_side(id, ty)?;
        if !self.resolve(id, ty)? {
            return Ok(());
        }
        let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
            return Ok(());
        };
        if max > send.max_data {
            send.max_data = max;
            if send.write_blocked {
                self.check_writable_one(id);
            }
        }
        Ok(())
    }

    /// A MAX_STREAMS frame (RFC 9000 §19.11).
    pub fn on_max_streams(&mut self, dir: Dir, count: u64) -> Result<(), TransportError> {
        if count > MAX_STREAM_COUNT {
            return Err(
                TransportError::FRAME_ENCODING_ERROR("MAX_STREAMS above 2^60")
                    .with_frame(frames::MAX_STREAMS_BIDI + dir as u64),
            );
        }
        self.raise_peer_max_streams(dir, count);
        Ok(())
    }

    /// A DATA_BLOCKED frame (RFC 9000 §19.12): offer any credit not yet advertised.
    pub fn on_data_blocked(&mut self, limit: u64) -> Result<(), TransportError> {
        if limit >= self.local_max_data {
            self.maybe_max_data(true);
        }
        Ok(())
    }

    /// A STREAM_DATA_BLOCKED frame (RFC 9000 §19.13).
    pub fn on_stream_data_blocked(
        &mut self,
        id: StreamId,
        limit: u64,
    ) -> Result<(), TransportError> {
        let ty = frames::STREAM_DATA_BLOCKED;
        self.check_recv_side(id, ty)?;
        if !self.resolve(id, ty)? {
            return Ok(());
        }
        let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
            return Ok(());
        };
        if limit >= recv.max_data && recv.window_update(true, self.now, self.rtt).is_some() {
            self.max_stream_data_pending.insert(id);
        }
        Ok(())
    }

    /// A STREAMS_BLOCKED frame (RFC 9000 §19.14).
    pub fn on_streams_blocked(&mut self, dir: Dir, limit: u64) -> Result<(), TransportError> {
        if limit > MAX_STREAM_COUNT {
            return Err(
                TransportError::FRAME_ENCODING_ERROR("STREAMS_BLOCKED above 2^60")
                    .with_frame(frames::STREAMS_BLOCKED_BIDI + dir as u64),
            );
        }
        // Our MAX_STREAMS may be in flight or lost; repeating it is cheap.
        if self.local_max_streams[dir_idx(dir)] > limit {
            self.max_streams_pending[dir_idx(dir)] = true;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ internals

    fn is_local(&self, id: StreamId) -> bool {
        id.initiator() == self.side
    }

    /// RFC 9000 §19.8/§19.4/§19.13: frames for the receiving part are invalid on a
    /// locally initiated unidirectional (send-only) stream.
    fn check_recv_side(&self, id: StreamId, ty: u64) -> Result<(), TransportError> {
        if self.is_local(id) && id.dir() == Dir::Uni {
            return Err(
                TransportError::STREAM_STATE_ERROR("frame for a send-only stream").with_frame(ty),
            );
        }
        Ok(())
    }

    /// RFC 9000 §19.5/§19.10: frames for the sending part are invalid on a peer-initiated
    /// unidirectional (receive-only) stream.
    fn check_send_side(&self, id: StreamId, ty: u64) -> Result<(), TransportError> {
        if !self.is_local(id) && id.dir() == Dir::Uni {
            return Err(
                TransportError::STREAM_STATE_ERROR("frame for a receive-only stream")
                    .with_frame(ty),
            );
        }
        Ok(())
    }

    /// Make sure a stream named by a peer frame exists. Opens peer streams up to and
    /// including `id` (RFC 9000 §3.2) and enforces our stream limit (§4.6). Returns
    /// `false` when the stream was already closed and freed (the frame is ignored).
    fn resolve(&mut self, id: StreamId, ty: u64) -> Result<bool, TransportError> {
        let d = dir_idx(id.dir());
        let index = id.index();
        if self.is_local(id) {
            if index >= self.next_local[d] {
                return Err(TransportError::STREAM_STATE_ERROR(
                    "frame for a locally initiated stream not yet opened",
                )
                .with_frame(ty));
            }
            return Ok(self.streams.contains_key(&id));
        }
        if index >= self.advertised_max_streams[d] {
            return Err(
                TransportError::STREAM_LIMIT_ERROR("peer exceeded the stream limit").with_frame(ty),
            );
        }
        if index >= self.next_remote[d] {
            // The lower indices are opened too (RFC 9000 §3.2), but only recorded.
            if index > self.next_remote[d] {
                self.implicit_remote[d].insert(self.next_remote[d]..index);
            }
            self.insert_stream(id);
            self.next_remote[d] = index + 1;
            self.events.push_back(StreamEvent::Opened { dir: id.dir() });
        } else {
            self.materialize(id);
        }
        Ok(self.streams.contains_key(&id))
    }

    /// Create a peer stream that was opened implicitly and not created yet.
    fn materialize(&mut self, id: StreamId) {
        let d = dir_idx(id.dir());
        let index = id.index();
        if self.implicit_remote[d].contains(index) {
            self.implicit_remote[d].remove(index..index + 1);
            self.insert_stream(id);
        }
    }

    /// Our send limit for a new stream, from the peer's transport parameters. The peer
    /// names them from its own perspective: "bidi_local" are streams *it* opened.
    fn initial_send_limit(&self, id: StreamId) -> u64 {
        match (self.is_local(id), id.dir()) {
            (true, Dir::Bi) => self.peer.initial_max_stream_data_bidi_remote,
            (false, Dir::Bi) => self.peer.initial_max_stream_data_bidi_local,
            (true, Dir::Uni) => self.peer.initial_max_stream_data_uni,
            (false, Dir::Uni) => 0,
        }
    }

    fn insert_stream(&mut self, id: StreamId) {
        let local = self.is_local(id);
        let bidi = id.dir() == Dir::Bi;
        let send = (local || bidi).then(|| SendStream::new(self.initial_send_limit(id)));
        let recv = (!local || bidi).then(|| {
            RecvStream::new(
                self.config.stream_receive_window,
                self.config.max_stream_receive_window,
            )
        });
        let has_send = send.is_some();
        self.streams.insert(id, Stream { send, recv });
        if has_send && !local {
            // Peer-opened bidi stream: default class (the peer's classes are its own).
            self.scheduler
                .on_open(id, &StreamClass::default(), self.now);
        }
    }

    fn raise_peer_max_streams(&mut self, dir: Dir, count: u64) {
        let d = dir_idx(dir);
        let count = count.min(MAX_STREAM_COUNT);
        if count > self.peer_max_streams[d] {
            self.peer_max_streams[d] = count;
            if std::mem::take(&mut self.open_blocked[d]) {
                self.events.push_back(StreamEvent::Available { dir });
            }
        }
    }

    /// Connection-level receive flow control (RFC 9000 §4.1).
    fn charge_recv(&mut self, credit: u64, ty: u64) -> Result<(), TransportError> {
        self.data_recvd = self.data_recvd.saturating_add(credit);
        if self.data_recvd > self.advertised_max_data {
            return Err(
                TransportError::FLOW_CONTROL_ERROR("connection data beyond MAX_DATA")
                    .with_frame(ty),
            );
        }
        Ok(())
    }

    /// After anything changed a receiving part: return consumed credit to the
    /// connection window, schedule window updates, free the stream if it is done.
    fn after_recv(&mut self, id: StreamId) {
        let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
            return;
        };
        let released = recv.release();
        self.data_consumed += released;
        if recv.window_update(false, self.now, self.rtt).is_some() {
            self.max_stream_data_pending.insert(id);
        }
        let stream_window = recv.window;
        if stream_window > self.largest_stream_window {
            self.largest_stream_window = stream_window;
            // Keep the connection window at least 1.5 × the largest stream window (as
            // Chromium does) so that one stream is not held back by the connection.
            let want = stream_window.saturating_add(stream_window / 2);
            self.ensure_receive_window(want);
        }
        if released > 0 {
            self.maybe_max_data(false);
        }
        self.maybe_free(id);
    }

    /// RFC 9000 §4.2: raise MAX_DATA once more than half the window was consumed (with
    /// `force`, whenever the limit can grow). A threshold update due less than two
    /// smoothed RTTs after the previous one first doubles the window (auto-tuning, see
    /// the [module docs](self)); forced updates neither tune nor count as updates.
    fn maybe_max_data(&mut self, force: bool) {
        let available = self.local_max_data.saturating_sub(self.data_consumed);
        let due = available
            .checked_mul(2)
            .is_some_and(|twice| twice < self.receive_window);
        if due {
            let last = self.max_data_updated.replace(self.now).unwrap_or(self.now);
            self.receive_window = recv::tuned_window(
                self.receive_window,
                self.config.max_receive_window,
                last,
                self.now,
                self.rtt,
            );
        } else {
            if self.data_consumed > 0 {
                // The initial window counts as the first update, from the first
                // consumption on (as in Chromium).
                self.max_data_updated.get_or_insert(self.now);
            }
            if !force {
                return;
            }
        }
        self.raise_local_max_data();
    }

    /// Grow the connection receive window to at least `want` (capped by the maximum),
    /// and advertise the larger limit at once if it grew.
    fn ensure_receive_window(&mut self, want: u64) {
        let want = want.min(self.config.max_receive_window);
        if want > self.receive_window {
            self.receive_window = want;
            self.raise_local_max_data();
        }
    }

    /// Set the connection limit to consumed + window and queue MAX_DATA if it grew.
    fn raise_local_max_data(&mut self) {
        let new = self
            .data_consumed
            .saturating_add(self.receive_window)
            .min(VarInt::MAX.into_inner());
        if new > self.local_max_data {
            self.local_max_data = new;
            self.max_data_pending = true;
        }
    }

    /// Drop a stream whose both halves reached a terminal state; a peer-initiated one
    /// returns a stream credit to the peer (RFC 9000 §4.6).
    fn maybe_free(&mut self, id: StreamId) {
        if !self.streams.get(&id).is_some_and(Stream::is_closed) {
            return;
        }
        self.streams.remove(&id);
        self.scheduler.on_closed(id);
        self.ready.remove(&id);
        self.max_stream_data_pending.remove(&id);
        self.stream_data_blocked_pending.remove(&id);
        self.reset_pending.remove(&id);
        if !self.is_local(id) {
            let d = dir_idx(id.dir());
            if self.local_max_streams[d] < MAX_STREAM_COUNT {
                self.local_max_streams[d] += 1;
                self.max_streams_pending[d] = true;
            }
        }
    }

    /// Credit shared by all streams: connection flow control and the send window.
    fn shared_credit(&self) -> u64 {
        self.peer_max_data
            .saturating_sub(self.data_sent)
            .min(self.config.send_window.saturating_sub(self.unacked))
    }

    /// Emit `Writable` for blocked writers that can now make progress, oldest first and
    /// only as many as the shared credit can serve: each woken writer is expected to
    /// use what its refused write still wanted. Waking every blocked writer whenever an
    /// ACK frees a few bytes of the send window would wake them all for nothing but
    /// the first (a thundering herd that costs O(blocked streams) per ACK).
    fn check_writable(&mut self) {
        let mut shared = self.shared_credit();
        let mut skipped = Vec::new();
        while shared > 0 {
            let Some(id) = self.write_blocked.pop_front() else {
                break;
            };
            let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
                continue;
            };
            send.in_blocked_queue = false;
            if !send.write_blocked || !send.is_writable_state() {
                send.write_blocked = false;
                continue;
            }
            let own = send.stream_credit();
            if own == 0 {
                // Blocked on its own limit: MAX_STREAM_DATA will wake it.
                send.in_blocked_queue = true;
                skipped.push(id);
                continue;
            }
            send.write_blocked = false;
            shared = shared.saturating_sub(send.blocked_want.min(own).max(1));
            self.events.push_back(StreamEvent::Writable { id });
        }
        for id in skipped.into_iter().rev() {
            self.write_blocked.push_front(id);
        }
    }

    /// A stream's own limit was raised: wake its writer if the shared credit allows.
    /// Its entry in the blocked queue, if any, is skipped later.
    fn check_writable_one(&mut self, id: StreamId) {
        let shared = self.shared_credit();
        let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
            return;
        };
        if !send.write_blocked || !send.is_writable_state() {
            send.write_blocked = false;
            return;
        }
        if shared == 0 || send.stream_credit() == 0 {
            return;
        }
        send.write_blocked = false;
        self.events.push_back(StreamEvent::Writable { id });
    }
}
