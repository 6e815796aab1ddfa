//! The sending half of a stream: the retransmission buffer ([`SendBuffer`]) and the
//! sending-part state machine of RFC 9000 §3.1.

use super::ranges::RangeSet;
use crate::coding::VarInt;
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::ops::Range;

/// Application data written to a stream and not yet acknowledged by the peer.
///
/// Offsets are stream offsets. Data below [`SendBuffer::acked_offset`] has been
/// acknowledged and its memory released; the rest is kept for (re)transmission.
/// [`SendBuffer::poll_range`] hands out lost ranges first, then never-sent data.
#[derive(Debug, Default)]
pub struct SendBuffer {
    /// Chunks as written, each tagged with its stream offset. The first chunk may have
    /// been trimmed so that it starts exactly at `base`.
    chunks: VecDeque<(u64, Bytes)>,
    /// Everything below this offset is acknowledged and freed.
    base: u64,
    /// Total bytes written (the offset the next write lands at).
    offset: u64,
    /// First offset never handed out by `poll_range`.
    unsent: u64,
    /// Acknowledged ranges above `base`.
    acked: RangeSet,
    /// Bytes acknowledged above `base` (sum of `acked`).
    acked_above_base: u64,
    /// Ranges declared lost and not acknowledged since: to be retransmitted.
    lost: RangeSet,
}

impl SendBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a copy of `data`.
    pub fn write(&mut self, data: &[u8]) {
        self.write_bytes(Bytes::copy_from_slice(data));
    }

    /// Append `data` without copying.
    pub fn write_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let len = data.len() as u64;
        self.chunks.push_back((self.offset, data));
        self.offset += len;
    }

    /// Total bytes written so far: the offset of the next byte written.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset below which everything is acknowledged.
    pub fn acked_offset(&self) -> u64 {
        self.base
    }

    /// Bytes written but not (yet) acknowledged.
    pub fn unacked(&self) -> u64 {
        self.offset - self.base - self.acked_above_base
    }

    /// Whether every written byte has been acknowledged.
    pub fn is_fully_acked(&self) -> bool {
        self.base == self.offset
    }

    /// Whether some written data was never sent.
    pub fn has_unsent(&self) -> bool {
        self.unsent < self.offset
    }

    /// Whether lost data awaits retransmission.
    pub fn has_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// Offset at which the next range returned by [`poll_range`](Self::poll_range) starts.
    pub fn next_offset(&self) -> Option<u64> {
        match self.lost.first() {
            Some(r) => Some(r.start),
            None if self.has_unsent() => Some(self.unsent),
            None => None,
        }
    }

    /// Length of the range [`poll_range`](Self::poll_range) would return without a cap
    /// (0 if nothing is pending).
    pub fn next_range_len(&self) -> u64 {
        match self.lost.first() {
            Some(r) => r.end - r.start,
            None => self.offset - self.unsent,
        }
    }

    /// Highest offset ever handed out for transmission.
    pub fn sent_offset(&self) -> u64 {
        self.unsent
    }

    /// Next range to transmit, at most `max_len` bytes: lost data first (`true` = this is
    /// a retransmission), then new data. `None` when nothing is pending or `max_len == 0`.
    pub fn poll_range(&mut self, max_len: u64) -> Option<(Range<u64>, bool)> {
        if max_len == 0 {
            return None;
        }
        if let Some(r) = self.lost.first() {
            let end = r.end.min(r.start.saturating_add(max_len));
            self.lost.remove(r.start..end);
            return Some((r.start..end, true));
        }
        if self.has_unsent() {
            let start = self.unsent;
            let end = self.offset.min(start.saturating_add(max_len));
            self.unsent = end;
            return Some((start..end, false));
        }
        None
    }

    /// Append the bytes of `range` to `out`. The range must lie within unacknowledged
    /// written data, as every range returned by `poll_range` does until it is acked.
    pub fn copy_range(&self, range: Range<u64>, out: &mut Vec<u8>) {
        // Straight from the chunks: no slice handles (reference-count traffic) and no
        // temporary vector on the per-packet path.
        self.for_each_piece(range, |piece: &[u8], _, _| out.extend_from_slice(piece));
    }

    /// The bytes of `range` as zero-copy slices of the written chunks.
    pub fn slices(&self, range: Range<u64>) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.for_each_piece(range, |_, chunk: &Bytes, r| out.push(chunk.slice(r)));
        out
    }

    /// Call `f` with each contiguous piece of `range` (clamped to what is buffered), its
    /// chunk and the piece's range within that chunk, in order.
    fn for_each_piece(&self, range: Range<u64>, mut f: impl FnMut(&[u8], &Bytes, Range<usize>)) {
        let start = range.start.max(self.base);
        let end = range.end.min(self.offset);
        if start >= end {
            return;
        }
        // First chunk whose end is beyond `start`.
        let mut i = self
            .chunks
            .partition_point(|(off, data)| off + data.len() as u64 <= start);
        let mut pos = start;
        while pos < end {
            let Some((off, data)) = self.chunks.get(i) else {
                break;
            };
            let from = usize::try_from(pos - off).unwrap_or(usize::MAX);
            let to = usize::try_from(end - off)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let Some(piece) = data.get(from..to) else {
                break;
            };
            if piece.is_empty() {
                break;
            }
            f(piece, data, from..to);
            pos = off + to as u64;
            i += 1;
        }
    }

    /// The peer acknowledged `range`. Returns how many bytes were newly acknowledged.
    pub fn on_ack(&mut self, range: Range<u64>) -> u64 {
        let start = range.start.max(self.base);
        let end = range.end.min(self.unsent);
        if start >= end {
            return 0;
        }
        // Acked data needs no retransmission even if it was declared lost before.
        self.lost.remove(start..end);
        let new = self.acked.insert(start..end);
        self.acked_above_base += new;
        // Advance the acknowledged prefix and release memory.
        if let Some(first) = self.acked.first() {
            if first.start == self.base {
                self.acked.pop_first();
                self.acked_above_base -= first.end - first.start;
                self.base = first.end;
                self.release_prefix();
            }
        }
        new
    }

    fn release_prefix(&mut self) {
        while let Some((off, data)) = self.chunks.front_mut() {
            let end = *off + data.len() as u64;
            if end <= self.base {
                self.chunks.pop_front();
            } else {
                if *off < self.base {
                    // Cannot truncate: base - off < data.len() here.
                    let skip = (self.base - *off) as usize;
                    data.advance(skip);
                    *off = self.base;
                }
                break;
            }
        }
    }

    /// `range` was declared lost: the parts of it not acknowledged since are queued for
    /// retransmission ahead of new data.
    pub fn on_lost(&mut self, range: Range<u64>) {
        let start = range.start.max(self.base);
        let end = range.end.min(self.unsent);
        if start >= end {
            return;
        }
        for gap in self.acked.gaps_within(start..end) {
            self.lost.insert(gap);
        }
    }

    /// Drop all data (the stream was reset). Returns how many bytes were unacknowledged.
    pub fn discard(&mut self) -> u64 {
        let unacked = self.unacked();
        self.chunks.clear();
        self.acked = RangeSet::default();
        self.lost = RangeSet::default();
        self.acked_above_base = 0;
        self.base = self.offset;
        self.unsent = self.offset;
        unacked
    }
}

/// State of the sending part of a stream (RFC 9000 §3.1, figure 2).
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub enum SendState {
    /// Created; nothing sent yet.
    Ready,
    /// Sending data.
    Send,
    /// The FIN was sent; waiting for every byte and the FIN to be acknowledged.
    DataSent,
    /// RESET_STREAM was sent; waiting for it to be acknowledged.
    ResetSent,
    /// Terminal: all data and the FIN were acknowledged.
    DataRecvd,
    /// Terminal: RESET_STREAM was acknowledged.
    ResetRecvd,
}

impl SendState {
    /// Whether the state is terminal.
    pub fn is_terminal(self) -> bool {
        matches!(self, SendState::DataRecvd | SendState::ResetRecvd)
    }
}

/// What the packetizer may put in one STREAM frame of a sending stream.
#[derive(Debug, Clone, Eq, PartialEq)]
pub(crate) struct StreamChunk {
    pub(crate) range: Range<u64>,
    pub(crate) fin: bool,
    pub(crate) retransmit: bool,
}

/// The sending part of one stream.
#[derive(Debug)]
pub(crate) struct SendStream {
    pub(crate) buf: SendBuffer,
    pub(crate) state: SendState,
    /// Peer's limit for this stream (MAX_STREAM_DATA, RFC 9000 §4.1).
    pub(crate) max_data: u64,
    /// The application called `finish`.
    pub(crate) finished: bool,
    /// The FIN must be (re)transmitted.
    pub(crate) fin_pending: bool,
    /// The FIN was acknowledged.
    pub(crate) fin_acked: bool,
    /// Error code of our RESET_STREAM.
    pub(crate) reset_code: Option<VarInt>,
    /// Final size declared by our RESET_STREAM.
    pub(crate) reset_final_size: u64,
    /// The peer asked us to stop (STOP_SENDING) with this code.
    pub(crate) stop_code: Option<VarInt>,
    /// A write was refused or cut short: report `Writable` when credit returns.
    pub(crate) write_blocked: bool,
    /// Bytes the refused (or cut short) write still wanted: how much of the shared
    /// connection credit waking this writer is expected to use.
    pub(crate) blocked_want: u64,
    /// The stream has an entry in the connection's queue of blocked writers.
    pub(crate) in_blocked_queue: bool,
    /// STREAM_DATA_BLOCKED was already queued for this limit.
    pub(crate) blocked_reported_at: Option<u64>,
}

impl SendStream {
    pub(crate) fn new(max_data: u64) -> Self {
        Self {
            buf: SendBuffer::new(),
            state: SendState::Ready,
            max_data,
            finished: false,
            fin_pending: false,
            fin_acked: false,
            reset_code: None,
            reset_final_size: 0,
            stop_code: None,
            write_blocked: false,
            blocked_want: 0,
            in_blocked_queue: false,
            blocked_reported_at: None,
        }
    }

    /// Whether the application may still write or finish.
    pub(crate) fn is_writable_state(&self) -> bool {
        matches!(self.state, SendState::Ready | SendState::Send) && !self.finished
    }

    /// Stream-level flow-control credit left for new writes.
    pub(crate) fn stream_credit(&self) -> u64 {
        self.max_data.saturating_sub(self.buf.offset())
    }

    /// Whether STREAM frames are pending (lost data, new data or the FIN).
    pub(crate) fn has_pending(&self) -> bool {
        self.is_sending() && (self.buf.has_lost() || self.buf.has_unsent() || self.fin_pending)
    }

    /// Whether retransmissions (lost data or a lost FIN) are pending.
    pub(crate) fn has_retransmit(&self) -> bool {
        self.is_sending()
            && (self.buf.has_lost() || (self.fin_pending && self.state == SendState::DataSent))
    }

    fn is_sending(&self) -> bool {
        matches!(
            self.state,
            SendState::Ready | SendState::Send | SendState::DataSent
        )
    }

    /// Offset the next frame would start at, if any frame is pending.
    pub(crate) fn next_frame_offset(&self) -> Option<u64> {
        if !self.is_sending() {
            return None;
        }
        self.buf
            .next_offset()
            .or(self.fin_pending.then(|| self.buf.offset()))
    }

    /// Take the next chunk of at most `max_len` bytes. A FIN rides on the chunk that
    /// ends at the final size; a FIN alone yields an empty chunk.
    pub(crate) fn poll_chunk(&mut self, max_len: u64) -> Option<StreamChunk> {
        if !self.is_sending() {
            return None;
        }
        let chunk = match self.buf.poll_range(max_len) {
            Some((range, retransmit)) => {
                let fin = self.fin_pending
                    && range.end == self.buf.offset()
                    && !self.buf.has_unsent()
                    && !self.buf.has_lost();
                StreamChunk {
                    range,
                    fin,
                    retransmit,
                }
            }
            None if self.fin_pending && !self.buf.has_unsent() => StreamChunk {
                range: self.buf.offset()..self.buf.offset(),
                fin: true,
                retransmit: self.state == SendState::DataSent,
            },
            None => return None,
        };
        if chunk.fin {
            self.fin_pending = false;
            self.state = SendState::DataSent;
        } else if self.state == SendState::Ready {
            self.state = SendState::Send;
        }
        Some(chunk)
    }

    /// A STREAM frame was acknowledged. Returns (newly acked bytes, reached DataRecvd).
    pub(crate) fn on_ack(&mut self, range: Range<u64>, fin: bool) -> (u64, bool) {
        if !self.is_sending() {
            return (0, false);
        }
        let acked = self.buf.on_ack(range);
        if fin {
            self.fin_acked = true;
            self.fin_pending = false;
        }
        // RFC 9000 §3.1: all data and the FIN acknowledged → Data Recvd.
        if self.state == SendState::DataSent && self.fin_acked && self.buf.is_fully_acked() {
            self.state = SendState::DataRecvd;
            return (acked, true);
        }
        (acked, false)
    }

    /// A STREAM frame was lost. Returns whether something needs retransmission.
    pub(crate) fn on_lost(&mut self, range: Range<u64>, fin: bool) -> bool {
        if !self.is_sending() {
            return false;
        }
        self.buf.on_lost(range);
        if fin && !self.fin_acked && self.state == SendState::DataSent {
            self.fin_pending = true;
        }
        self.has_retransmit()
    }

    /// Abandon transmission (RFC 9000 §3.1 "Reset"): the state moves to ResetSent.
    /// Returns the number of unacknowledged bytes released, or `None` if the state
    /// does not allow a reset.
    pub(crate) fn reset(&mut self, code: VarInt) -> Option<u64> {
        if !self.is_sending() {
            return None;
        }
        // Final size = flow-control credit consumed by the stream: every written byte
        // was charged at write time (RFC 9000 §4.5).
        self.reset_final_size = self.buf.offset();
        self.reset_code = Some(code);
        self.state = SendState::ResetSent;
        self.fin_pending = false;
        Some(self.buf.discard())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes_of(buf: &SendBuffer, r: Range<u64>) -> Vec<u8> {
        let mut v = Vec::new();
        buf.copy_range(r, &mut v);
        v
    }

    #[test]
    fn new_data_then_lost_first() {
        let mut b = SendBuffer::new();
        b.write(b"hello ");
        b.write_bytes(Bytes::from_static(b"world"));
        assert_eq!(b.offset(), 11);
        assert_eq!(b.poll_range(4), Some((0..4, false)));
        assert_eq!(b.poll_range(4), Some((4..8, false)));
        b.on_lost(0..4);
        assert_eq!(b.poll_range(100), Some((0..4, true)));
        assert_eq!(bytes_of(&b, 0..4), b"hell");
        assert_eq!(b.poll_range(100), Some((8..11, false)));
        assert_eq!(bytes_of(&b, 4..11), b"o world");
        assert_eq!(b.poll_range(100), None);
    }

    #[test]
    fn ack_frees_prefix_and_lost_after_ack_is_ignored() {
        let mut b = SendBuffer::new();
        b.write(&[1; 100]);
        b.write(&[2; 100]);
        while b.poll_range(30).is_some() {}
        assert_eq!(b.on_ack(50..120), 70);
        assert_eq!(b.unacked(), 130);
        assert_eq!(b.on_ack(60..70), 0);
        assert_eq!(b.acked_offset(), 0);
        b.on_lost(0..200);
        assert_eq!(b.poll_range(1000), Some((0..50, true)));
        assert_eq!(b.poll_range(1000), Some((120..200, true)));
        assert_eq!(b.on_ack(0..50), 50);
        assert_eq!(b.acked_offset(), 120);
        assert_eq!(b.chunks.len(), 1);
        assert_eq!(bytes_of(&b, 120..125), vec![2; 5]);
        assert_eq!(b.on_ack(120..200), 80);
        assert!(b.is_fully_acked());
        assert!(b.chunks.is_empty());
        assert_eq!(b.unacked(), 0);
    }

    #[test]
    fn fin_lost_and_resent_alone() {
        let mut s = SendStream::new(1000);
        s.buf.write(b"abc");
        s.finished = true;
        s.fin_pending = true;
        let c = s.poll_chunk(100).unwrap();
        assert_eq!((c.range, c.fin), (0..3, true));
        assert_eq!(s.state, SendState::DataSent);
        assert_eq!(s.on_ack(0..3, false), (3, false));
        assert!(s.on_lost(0..3, true));
        let c = s.poll_chunk(100).unwrap();
        assert_eq!((c.range, c.fin, c.retransmit), (3..3, true, true));
        assert_eq!(s.on_ack(3..3, true), (0, true));
        assert_eq!(s.state, SendState::DataRecvd);
    }

    proptest! {
        /// Sending with random losses and acks always delivers every byte and ends
        /// fully acknowledged.
        #[test]
        fn random_loss_converges(len in 1usize..2000, ops in proptest::collection::vec((1u64..300, any::<bool>()), 1..200)) {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut b = SendBuffer::new();
            b.write(&data);
            let mut in_flight = VecDeque::new();
            let mut received = vec![false; len];
            let mut ops = ops.into_iter().cycle();
            for step in 0..20_000 {
                if b.is_fully_acked() { break; }
                let (max, lose) = ops.next().unwrap();
                // Stop losing after a while so that the transfer must complete.
                let lose = lose && step < 5_000;
                if let Some((r, _)) = b.poll_range(max) {
                    prop_assert_eq!(bytes_of(&b, r.clone()), data[r.start as usize..r.end as usize].to_vec());
                    in_flight.push_back((r, lose));
                } else if let Some((r, lost)) = in_flight.pop_front() {
                    if lost { b.on_lost(r) } else {
                        for i in r.clone() { received[i as usize] = true; }
                        b.on_ack(r);
                    }
                }
            }
            prop_assert!(b.is_fully_acked());
            prop_assert!(received.iter().all(|&x| x));
            prop_assert_eq!(b.unacked(), 0);
        }
    }
}
