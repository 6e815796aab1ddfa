//! Packet assembly for stream frames and the reaction to acknowledged or lost packets.

use super::frames::{self, Control};
use super::{dir_idx, RecvState, SendState, StreamEvent, StreamsState, DIRS};
use crate::coding::VarInt;
use crate::shared::StreamId;
use std::ops::Range;

/// One STREAM frame as sent.
#[derive(Debug, Clone, Eq, PartialEq)]
pub(super) struct SentChunk {
    pub(super) id: StreamId,
    pub(super) range: Range<u64>,
    pub(super) fin: bool,
}

/// The stream frames carried by one packet, kept by the connection with the packet and
/// handed back when it is acknowledged or lost.
#[derive(Debug, Clone, Default, Eq, PartialEq)]
pub struct SentStreamFrames {
    pub(super) stream: Vec<SentChunk>,
    pub(super) max_data: Option<u64>,
    pub(super) max_stream_data: Vec<(StreamId, u64)>,
    pub(super) max_streams: [Option<u64>; 2],
    pub(super) data_blocked: Option<u64>,
    pub(super) stream_data_blocked: Vec<(StreamId, u64)>,
    pub(super) streams_blocked: [Option<u64>; 2],
    pub(super) reset_stream: Vec<StreamId>,
    pub(super) stop_sending: Vec<(StreamId, VarInt)>,
}

impl SentStreamFrames {
    /// Whether no stream-related frame was recorded.
    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
            && self.max_data.is_none()
            && self.max_stream_data.is_empty()
            && self.max_streams.iter().all(Option::is_none)
            && self.data_blocked.is_none()
            && self.stream_data_blocked.is_empty()
            && self.streams_blocked.iter().all(Option::is_none)
            && self.reset_stream.is_empty()
            && self.stop_sending.is_empty()
    }

    /// STREAM frames sent: stream, byte range, FIN.
    pub fn stream_frames(&self) -> impl Iterator<Item = (StreamId, Range<u64>, bool)> + '_ {
        self.stream.iter().map(|c| (c.id, c.range.clone(), c.fin))
    }
}

impl StreamsState {
    /// Append pending control frames (MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS,
    /// DATA_BLOCKED, STREAM_DATA_BLOCKED, STREAMS_BLOCKED, RESET_STREAM, STOP_SENDING)
    /// to `buf`, writing at most `max_len` bytes. Frames that do not fit stay queued.
    pub fn write_control_frames(
        &mut self,
        buf: &mut Vec<u8>,
        max_len: usize,
        sent: &mut SentStreamFrames,
    ) {
        let start = buf.len();
        let put = |buf: &mut Vec<u8>, frame: Control| -> bool {
            let room = max_len.saturating_sub(buf.len() - start);
            if frame.size() > room {
                return false;
            }
            frame.encode(buf);
            true
        };

        // RESET_STREAM (§19.4).
        for id in self.reset_pending.clone() {
            let Some(send) = self.streams.get(&id).and_then(|s| s.send.as_ref()) else {
                self.reset_pending.remove(&id);
                continue;
            };
            if send.state != SendState::ResetSent {
                self.reset_pending.remove(&id);
                continue;
            }
            let frame = Control::ResetStream {
                id,
                code: send.reset_code.unwrap_or_default(),
                final_size: send.reset_final_size,
            };
            if put(buf, frame) {
                self.reset_pending.remove(&id);
                sent.reset_stream.push(id);
            }
        }
        // STOP_SENDING (§19.5).
        for (id, code) in self.stop_pending.clone() {
            if put(buf, Control::StopSending { id, code }) {
                self.stop_pending.remove(&id);
                sent.stop_sending.push((id, code));
            }
        }
        // MAX_DATA (§19.9).
        if self.max_data_pending && put(buf, Control::MaxData(self.local_max_data)) {
            self.advertised_max_data = self.advertised_max_data.max(self.local_max_data);
            self.max_data_pending = false;
            sent.max_data = Some(self.local_max_data);
        }
        // MAX_STREAM_DATA (§19.10).
        for id in self.max_stream_data_pending.clone() {
            let Some(recv) = self.streams.get_mut(&id).and_then(|s| s.recv.as_mut()) else {
                self.max_stream_data_pending.remove(&id);
                continue;
            };
            if recv.state != RecvState::Recv || recv.stop_code.is_some() {
                self.max_stream_data_pending.remove(&id);
                continue;
            }
            let max = recv.max_data;
            if put(buf, Control::MaxStreamData { id, max }) {
                recv.advertised = recv.advertised.max(max);
                self.max_stream_data_pending.remove(&id);
                sent.max_stream_data.push((id, max));
            }
        }
        // MAX_STREAMS (§19.11).
        for dir in DIRS {
            let d = dir_idx(dir);
            let count = self.local_max_streams[d];
            if self.max_streams_pending[d] && put(buf, Control::MaxStreams { dir, count }) {
                self.max_streams_pending[d] = false;
                self.advertised_max_streams[d] = self.advertised_max_streams[d].max(count);
                sent.max_streams[d] = Some(count);
            }
        }
        // DATA_BLOCKED (§19.12), only while still blocked.
        if self.data_blocked_pending {
            let limit = self.peer_max_data;
            if self.data_sent < limit {
                self.data_blocked_pending = false;
            } else if put(buf, Control::DataBlocked(limit)) {
                self.data_blocked_pending = false;
                sent.data_blocked = Some(limit);
            }
        }
        // STREAM_DATA_BLOCKED (§19.13), only while still blocked.
        for id in self.stream_data_blocked_pending.clone() {
            let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
                self.stream_data_blocked_pending.remove(&id);
                continue;
            };
            if !send.is_writable_state() || send.stream_credit() > 0 {
                self.stream_data_blocked_pending.remove(&id);
                continue;
            }
            let limit = send.max_data;
            if put(buf, Control::StreamDataBlocked { id, limit }) {
                // RFC 9000 §3.1: sending STREAM_DATA_BLOCKED enters the Send state.
                if send.state == SendState::Ready {
                    send.state = SendState::Send;
                }
                self.stream_data_blocked_pending.remove(&id);
                sent.stream_data_blocked.push((id, limit));
            }
        }
        // STREAMS_BLOCKED (§19.14), only while still blocked.
        for dir in DIRS {
            let d = dir_idx(dir);
            if !self.streams_blocked_pending[d] {
                continue;
            }
            let limit = self.peer_max_streams[d];
            if self.next_local[d] < limit {
                self.streams_blocked_pending[d] = false;
            } else if put(buf, Control::StreamsBlocked { dir, limit }) {
                self.streams_blocked_pending[d] = false;
                sent.streams_blocked[d] = Some(limit);
            }
        }
    }

    /// Append STREAM frames to `buf`, writing at most `max_len` bytes: lost data first,
    /// then new data from streams in round-robin order. Every frame carries a Length
    /// field, so more frames may follow in the packet.
    pub fn write_stream_frames(
        &mut self,
        buf: &mut Vec<u8>,
        max_len: usize,
        sent: &mut SentStreamFrames,
    ) {
        let start = buf.len();
        let now = self.now;
        self.expire(now);
        loop {
            let room = max_len.saturating_sub(buf.len() - start);
            let Some(id) = self.scheduler.next(now) else {
                break;
            };
            if Self::is_flow(id) {
                if !self.write_flow_datagram(id, buf, room, buf.len() == start) {
                    break;
                }
                continue;
            }
            let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) else {
                self.ready.remove(&id);
                self.scheduler.on_closed(id);
                continue;
            };
            // Lost data (and a lost FIN) goes first within the stream.
            let pending = send.has_retransmit() || send.has_pending();
            let Some(offset) = send.next_frame_offset().filter(|_| pending) else {
                self.ready.remove(&id);
                self.scheduler.on_blocked(id);
                continue;
            };
            let want = send.buf.next_range_len();
            let Some(len) = frames::stream_payload_fit(id, offset, want, room) else {
                break;
            };
            if len == 0 && want > 0 {
                break;
            }
            let Some(chunk) = send.poll_chunk(len) else {
                break;
            };
            let n = chunk.range.end - chunk.range.start;
            debug_assert_eq!(chunk.range.start, offset);
            debug_assert!(n <= len);
            let before = buf.len();
            frames::encode_stream_header(buf, id, chunk.range.start, n, chunk.fin);
            send.buf.copy_range(chunk.range.clone(), buf);
            debug_assert_eq!(
                buf.len() - before,
                frames::stream_header_size(id, chunk.range.start, n) + n as usize
            );
            let more = send.has_retransmit() || send.has_pending();
            self.scheduler.on_sent(id, n as usize, more, now);
            if !more {
                self.ready.remove(&id);
            }
            sent.stream.push(SentChunk {
                id,
                range: chunk.range,
                fin: chunk.fin,
            });
        }
    }

    /// A packet carrying `sent` was acknowledged.
    pub fn on_packet_acked(&mut self, sent: &SentStreamFrames) {
        let mut freed = false;
        for c in &sent.stream {
            let Some(send) = self.streams.get_mut(&c.id).and_then(|s| s.send.as_mut()) else {
                continue;
            };
            let (acked, done) = send.on_ack(c.range.clone(), c.fin);
            self.unacked -= acked.min(self.unacked);
            freed |= acked > 0;
            if done {
                self.events.push_back(StreamEvent::Finished { id: c.id });
                self.scheduler.on_closed(c.id);
                self.ready.remove(&c.id);
                self.maybe_free(c.id);
            }
        }
        for &id in &sent.reset_stream {
            if let Some(send) = self.streams.get_mut(&id).and_then(|s| s.send.as_mut()) {
                // RFC 9000 §3.1: RESET_STREAM acknowledged → Reset Recvd.
                if send.state == SendState::ResetSent {
                    send.state = SendState::ResetRecvd;
                    self.maybe_free(id);
                }
            }
        }
        if freed {
            self.check_writable();
        }
    }

    /// A packet carrying `sent` was declared lost: re-queue what is still relevant.
    pub fn on_packet_lost(&mut self, sent: SentStreamFrames) {
        for c in sent.stream {
            if let Some(send) = self.streams.get_mut(&c.id).and_then(|s| s.send.as_mut()) {
                if send.on_lost(c.range, c.fin) {
                    self.mark_ready(c.id);
                }
            }
        }
        // A flow-control update is resent only if no newer value superseded it.
        if sent.max_data == Some(self.local_max_data) {
            self.max_data_pending = true;
        }
        for (id, max) in sent.max_stream_data {
            if let Some(recv) = self.streams.get(&id).and_then(|s| s.recv.as_ref()) {
                if recv.state == RecvState::Recv && recv.stop_code.is_none() && recv.max_data == max
                {
                    self.max_stream_data_pending.insert(id);
                }
            }
        }
        for d in 0..2 {
            if sent.max_streams[d] == Some(self.local_max_streams[d]) {
                self.max_streams_pending[d] = true;
            }
            if let Some(limit) = sent.streams_blocked[d] {
                if limit == self.peer_max_streams[d] && self.next_local[d] >= limit {
                    self.streams_blocked_pending[d] = true;
                }
            }
        }
        if let Some(limit) = sent.data_blocked {
            if limit == self.peer_max_data && self.data_sent >= limit {
                self.data_blocked_pending = true;
            }
        }
        for (id, limit) in sent.stream_data_blocked {
            if let Some(send) = self.streams.get(&id).and_then(|s| s.send.as_ref()) {
                if send.max_data == limit && send.is_writable_state() && send.stream_credit() == 0 {
                    self.stream_data_blocked_pending.insert(id);
                }
            }
        }
        for id in sent.reset_stream {
            if self.send_state(id) == Some(SendState::ResetSent) {
                self.reset_pending.insert(id);
            }
        }
        for (id, code) in sent.stop_sending {
            if let Some(recv) = self.streams.get(&id).and_then(|s| s.recv.as_ref()) {
                if recv.wants_stop_sending() {
                    self.stop_pending.insert(id, code);
                }
            }
        }
    }
}
