//! The receiving half of a stream: reassembly ([`RecvBuffer`]) and the receiving-part
//! state machine of RFC 9000 §3.2, with final-size (§4.5) and flow-control (§4.1) checks.

use super::ReadError;
use crate::coding::VarInt;
use crate::error::TransportError;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Pieces shorter than this are copied rather than sliced, bounding how much of a
/// received datagram a few buffered bytes can keep alive.
const COPY_BELOW: usize = 128;

/// Out-of-order stream data waiting to be read in order.
///
/// Stored pieces never overlap and all lie at or above the read offset, so duplicate and
/// overlapping deliveries are neither stored nor counted twice. Pieces are zero-copy
/// slices of the received [`Bytes`].
#[derive(Debug, Default)]
pub struct RecvBuffer {
    /// start offset → data; disjoint, every start ≥ `read`.
    chunks: BTreeMap<u64, Bytes>,
    /// Bytes handed to the application so far.
    read: u64,
    /// Sum of the lengths in `chunks`.
    buffered: u64,
}

impl RecvBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offset of the next byte [`read`](Self::read) will return.
    pub fn read_offset(&self) -> u64 {
        self.read
    }

    /// Bytes held, received but not read.
    pub fn buffered(&self) -> u64 {
        self.buffered
    }

    /// Whether [`read`](Self::read) would return data now.
    pub fn has_readable(&self) -> bool {
        self.chunks.keys().next() == Some(&self.read)
    }

    /// Store `data` received at `offset`. Parts already read or already buffered are
    /// dropped. Returns how many bytes were newly buffered.
    ///
    /// The caller guarantees `offset + data.len()` does not overflow (flow control
    /// bounds it by 2^62).
    pub fn insert(&mut self, offset: u64, data: Bytes) -> u64 {
        let end = offset.saturating_add(data.len() as u64);
        let mut start = offset.max(self.read);
        if start >= end {
            return 0;
        }
        // A piece starting before `start` may cover its beginning.
        if let Some((&s, d)) = self.chunks.range(..start).next_back() {
            start = start.max(s + d.len() as u64);
        }
        if start >= end {
            return 0;
        }
        let mut pieces = Vec::new();
        for (&s, d) in self.chunks.range(start..end) {
            if s > start {
                pieces.push((start, s));
            }
            start = start.max(s + d.len() as u64);
        }
        if start < end {
            pieces.push((start, end));
        }
        let mut added = 0;
        for (s, e) in pieces {
            // In range: offset ≤ s < e ≤ end, so both fit in data.len().
            let from = (s - offset) as usize;
            let to = (e - offset) as usize;
            let piece = if to - from < COPY_BELOW {
                // A small slice would pin its whole datagram: copy it instead.
                Bytes::copy_from_slice(&data[from..to])
            } else {
                data.slice(from..to)
            };
            self.chunks.insert(s, piece);
            added += e - s;
        }
        self.buffered += added;
        added
    }

    /// Next in-order bytes, at most `max_len`, or `None` if the next byte has not
    /// arrived. Returns a slice of a received chunk without copying.
    pub fn read(&mut self, max_len: usize) -> Option<Bytes> {
        if max_len == 0 || !self.has_readable() {
            return None;
        }
        let (off, mut data) = self.chunks.pop_first()?;
        if data.len() > max_len {
            let rest = data.split_off(max_len);
            self.chunks.insert(off + max_len as u64, rest);
        }
        let n = data.len() as u64;
        self.read += n;
        self.buffered -= n;
        Some(data)
    }

    /// Drop everything buffered (after a reset or STOP_SENDING).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.buffered = 0;
    }
}

/// State of the receiving part of a stream (RFC 9000 §3.2, figure 3).
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
pub enum RecvState {
    /// Receiving; final size unknown.
    Recv,
    /// The FIN arrived: the final size is known.
    SizeKnown,
    /// Every byte up to the final size arrived.
    DataRecvd,
    /// RESET_STREAM arrived; the application has not seen it yet.
    ResetRecvd,
    /// Terminal: the application read everything including the end.
    DataRead,
    /// Terminal: the application saw the reset.
    ResetRead,
}

impl RecvState {
    /// Whether the state is terminal.
    pub fn is_terminal(self) -> bool {
        matches!(self, RecvState::DataRead | RecvState::ResetRead)
    }
}

/// The receiving part of one stream.
#[derive(Debug)]
pub(crate) struct RecvStream {
    pub(crate) buf: RecvBuffer,
    pub(crate) state: RecvState,
    pub(crate) final_size: Option<u64>,
    /// Highest offset received: the flow-control credit consumed (RFC 9000 §4.1).
    pub(crate) max_offset: u64,
    /// Limit we decided on (queued or sent in MAX_STREAM_DATA).
    pub(crate) max_data: u64,
    /// Highest limit actually sent to the peer: what incoming data is checked against.
    pub(crate) advertised: u64,
    /// Receive window size for this stream: starts at the initial window and only
    /// grows, up to `max_window` (auto-tuning, see [`Self::window_update`]).
    pub(crate) window: u64,
    /// Ceiling of `window`; equal to the initial window when tuning is off.
    max_window: u64,
    /// When the last window update (MAX_STREAM_DATA) was decided; the initial window
    /// counts as one, from the first time the stream is looked at for an update.
    last_update: Option<Instant>,
    pub(crate) reset_code: Option<VarInt>,
    /// We sent STOP_SENDING with this code: incoming data is discarded.
    pub(crate) stop_code: Option<VarInt>,
    /// Bytes already returned to the connection-level receive window.
    credited: u64,
}

impl RecvStream {
    /// A receiving part with an initial window of `window` bytes that may auto-tune up
    /// to `max_window` (values below `window` are taken as `window`: no tuning).
    pub(crate) fn new(window: u64, max_window: u64) -> Self {
        Self {
            buf: RecvBuffer::new(),
            state: RecvState::Recv,
            final_size: None,
            max_offset: 0,
            max_data: window,
            advertised: window,
            window,
            max_window: max_window.max(window),
            last_update: None,
            reset_code: None,
            stop_code: None,
            credited: 0,
        }
    }

    /// A STREAM frame arrived. Returns the connection-level flow-control credit it
    /// consumed (growth of the highest received offset).
    pub(crate) fn on_data(
        &mut self,
        offset: u64,
        data: Bytes,
        fin: bool,
    ) -> Result<u64, TransportError> {
        // RFC 9000 §19.8: offset + length must not exceed 2^62 - 1.
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= VarInt::MAX.into_inner())
            .ok_or_else(|| TransportError::FLOW_CONTROL_ERROR("stream offset exceeds 2^62-1"))?;
        self.check_final_size(end, fin)?;
        // RFC 9000 §4.1: data beyond the advertised limit.
        if end > self.advertised {
            return Err(TransportError::FLOW_CONTROL_ERROR(
                "stream data beyond MAX_STREAM_DATA",
            ));
        }
        let credit = end.saturating_sub(self.max_offset);
        self.max_offset = self.max_offset.max(end);
        if !matches!(self.state, RecvState::Recv | RecvState::SizeKnown) {
            // All data already received or the stream was reset: nothing new to keep.
            return Ok(credit);
        }
        if fin {
            self.final_size = Some(end);
            self.state = RecvState::SizeKnown;
        }
        if self.stop_code.is_none() {
            self.buf.insert(offset, data);
        }
        self.check_complete();
        Ok(credit)
    }

    /// RFC 9000 §4.5 final-size rules for a STREAM frame ending at `end`.
    fn check_final_size(&self, end: u64, fin: bool) -> Result<(), TransportError> {
        match self.final_size {
            Some(fs) if end > fs => Err(TransportError::FINAL_SIZE_ERROR(
                "stream data beyond the final size",
            )),
            Some(fs) if fin && end != fs => {
                Err(TransportError::FINAL_SIZE_ERROR("final size changed"))
            }
            None if fin && end < self.max_offset => Err(TransportError::FINAL_SIZE_ERROR(
                "final size below data already received",
            )),
            _ => Ok(()),
        }
    }

    fn check_complete(&mut self) {
        if self.state != RecvState::SizeKnown {
            return;
        }
        let Some(fs) = self.final_size else { return };
        let have = if self.stop_code.is_some() {
            // Discarding: only the highest offset matters, but without the bytes we
            // cannot know that every byte arrived; treat the FIN as sufficient.
            fs
        } else {
            self.buf.read_offset() + self.buf.buffered()
        };
        if have == fs {
            self.state = RecvState::DataRecvd;
            self.settle_stopped();
        }
    }

    /// A RESET_STREAM arrived. Returns the connection-level credit it consumed.
    pub(crate) fn on_reset(
        &mut self,
        code: VarInt,
        final_size: u64,
    ) -> Result<u64, TransportError> {
        // RFC 9000 §4.5.
        if let Some(fs) = self.final_size {
            if fs != final_size {
                return Err(TransportError::FINAL_SIZE_ERROR(
                    "RESET_STREAM changed the final size",
                ));
            }
        } else if final_size < self.max_offset {
            return Err(TransportError::FINAL_SIZE_ERROR(
                "RESET_STREAM final size below data already received",
            ));
        }
        if final_size > self.advertised {
            return Err(TransportError::FLOW_CONTROL_ERROR(
                "RESET_STREAM final size beyond MAX_STREAM_DATA",
            ));
        }
        let credit = final_size.saturating_sub(self.max_offset);
        self.max_offset = self.max_offset.max(final_size);
        self.final_size = Some(final_size);
        // RFC 9000 §3.2: in Data Recvd a reset may be ignored; all data is here.
        if matches!(self.state, RecvState::Recv | RecvState::SizeKnown) {
            self.state = RecvState::ResetRecvd;
            self.reset_code = Some(code);
            self.buf.clear();
            self.settle_stopped();
        }
        Ok(credit)
    }

    /// After STOP_SENDING the application no longer reads: end states are final.
    fn settle_stopped(&mut self) {
        if self.stop_code.is_none() {
            return;
        }
        self.buf.clear();
        self.state = match self.state {
            RecvState::DataRecvd => RecvState::DataRead,
            RecvState::ResetRecvd => RecvState::ResetRead,
            s => s,
        };
    }

    /// The application stops reading (RFC 9000 §3.5). Returns whether STOP_SENDING
    /// should be sent (the peer may still be sending).
    pub(crate) fn stop(&mut self, code: VarInt) -> bool {
        if self.stop_code.is_some() || self.state.is_terminal() {
            return false;
        }
        self.stop_code = Some(code);
        let send = matches!(self.state, RecvState::Recv | RecvState::SizeKnown);
        self.buf.clear();
        self.check_complete();
        self.settle_stopped();
        send
    }

    /// Whether STOP_SENDING is still useful (the peer may still send data).
    pub(crate) fn wants_stop_sending(&self) -> bool {
        self.stop_code.is_some() && matches!(self.state, RecvState::Recv | RecvState::SizeKnown)
    }

    /// Whether a `read` would return something other than `Blocked`.
    pub(crate) fn is_readable(&self) -> bool {
        self.stop_code.is_none()
            && match self.state {
                RecvState::Recv | RecvState::SizeKnown => self.buf.has_readable(),
                RecvState::DataRecvd | RecvState::ResetRecvd => true,
                RecvState::DataRead | RecvState::ResetRead => false,
            }
    }

    /// Application read (RFC 9000 §3.2): data, then `Ok(None)` at the end.
    pub(crate) fn read(&mut self, max_len: usize) -> Result<Option<Bytes>, ReadError> {
        if self.stop_code.is_some() {
            return Err(ReadError::ClosedStream);
        }
        match self.state {
            RecvState::ResetRecvd => {
                self.state = RecvState::ResetRead;
                return Err(ReadError::Reset(self.reset_code.unwrap_or_default()));
            }
            RecvState::DataRead | RecvState::ResetRead => return Err(ReadError::ClosedStream),
            _ => {}
        }
        if max_len == 0 && self.buf.has_readable() {
            return Ok(Some(Bytes::new()));
        }
        if let Some(data) = self.buf.read(max_len) {
            return Ok(Some(data));
        }
        if self.state == RecvState::DataRecvd {
            self.state = RecvState::DataRead;
            return Ok(None);
        }
        Err(ReadError::Blocked)
    }

    /// Bytes newly available to return to the connection-level receive window: what
    /// the application read, or everything up to the final size once the data will
    /// never be read (reset or STOP_SENDING).
    pub(crate) fn release(&mut self) -> u64 {
        let abandoned = self.stop_code.is_some()
            || matches!(self.state, RecvState::ResetRecvd | RecvState::ResetRead);
        let target = if abandoned {
            self.max_offset
        } else {
            self.buf.read_offset()
        };
        let delta = target.saturating_sub(self.credited);
        self.credited = self.credited.max(target);
        delta
    }

    /// RFC 9000 §4.2: raise MAX_STREAM_DATA once more than half the window has been
    /// consumed (or, with `force`, whenever the limit can grow: the peer reported it is
    /// blocked). Returns the new limit to advertise.
    ///
    /// Auto-tuning (the scheme of Chromium's QUIC flow controller): when a threshold
    /// update is due less than two smoothed RTTs after the previous one, the window,
    /// not the application, is what limits the peer, so the window is doubled (up to
    /// its maximum) before the new limit is computed. `rtt` is zero while unknown,
    /// which disables tuning. Forced updates neither tune nor count as updates: a peer
    /// blocked on a window the application is not draining says nothing about the
    /// bandwidth-delay product. The window never shrinks, so neither does the limit.
    pub(crate) fn window_update(
        &mut self,
        force: bool,
        now: Instant,
        rtt: Duration,
    ) -> Option<u64> {
        if self.state != RecvState::Recv || self.stop_code.is_some() {
            return None;
        }
        let last = *self.last_update.get_or_insert(now);
        let read = self.buf.read_offset();
        let due = self
            .max_data
            .saturating_sub(read)
            .checked_mul(2)
            .is_some_and(|twice_available| twice_available < self.window);
        if due {
            self.last_update = Some(now);
            self.window = tuned_window(self.window, self.max_window, last, now, rtt);
        } else if !force {
            return None;
        }
        let new = read
            .saturating_add(self.window)
            .min(VarInt::MAX.into_inner());
        if new > self.max_data {
            self.max_data = new;
            Some(new)
        } else {
            None
        }
    }
}

/// The auto-tuned window: `window` doubled (capped at `max`) if the previous update, at
/// `last`, was less than two smoothed RTTs before `now`; otherwise unchanged. A zero
/// `rtt` (no sample yet) never tunes.
pub(crate) fn tuned_window(
    window: u64,
    max: u64,
    last: Instant,
    now: Instant,
    rtt: Duration,
) -> u64 {
    if rtt.is_zero() || window >= max {
        return window;
    }
    if now.saturating_duration_since(last) < rtt.saturating_mul(2) {
        window.saturating_mul(2).min(max)
    } else {
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TransportErrorCode;
    use proptest::prelude::*;

    fn read_all(b: &mut RecvBuffer) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(d) = b.read(7) {
            out.extend_from_slice(&d);
        }
        out
    }

    #[test]
    fn overlap_not_double_counted() {
        let data = Bytes::from_static(b"0123456789");
        let mut b = RecvBuffer::new();
        assert_eq!(b.insert(2, data.slice(2..5)), 3);
        assert_eq!(b.insert(0, data.slice(0..10)), 7);
        assert_eq!(b.insert(4, data.slice(4..8)), 0);
        assert_eq!(b.buffered(), 10);
        assert_eq!(read_all(&mut b), b"0123456789");
        assert_eq!(b.insert(0, data.slice(0..10)), 0);
        assert_eq!(b.buffered(), 0);
    }

    #[test]
    fn final_size_errors() {
        let mut s = RecvStream::new(100, 100);
        s.on_data(0, Bytes::from_static(b"abcdef"), false).unwrap();
        // FIN below data received.
        let e = s.on_data(0, Bytes::from_static(b"abc"), true).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FINAL_SIZE_ERROR);
        s.on_data(6, Bytes::from_static(b"gh"), true).unwrap();
        assert_eq!(s.final_size, Some(8));
        // Beyond final size.
        let e = s.on_data(8, Bytes::from_static(b"i"), false).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FINAL_SIZE_ERROR);
        // Final size changed by a later FIN or a reset.
        let e = s.on_data(0, Bytes::from_static(b"abc"), true).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FINAL_SIZE_ERROR);
        let e = s.on_reset(VarInt::from_u32(1), 9).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FINAL_SIZE_ERROR);
        // Same final size is fine (and ignored in DataRecvd).
        assert_eq!(s.state, RecvState::DataRecvd);
        assert_eq!(s.on_reset(VarInt::from_u32(1), 8), Ok(0));
        assert_eq!(s.state, RecvState::DataRecvd);
    }

    #[test]
    fn reset_final_size_below_received() {
        let mut s = RecvStream::new(100, 100);
        s.on_data(10, Bytes::from_static(b"abc"), false).unwrap();
        let e = s.on_reset(VarInt::from_u32(1), 12).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FINAL_SIZE_ERROR);
        assert_eq!(s.on_reset(VarInt::from_u32(7), 20), Ok(7));
        assert_eq!(s.read(10), Err(ReadError::Reset(VarInt::from_u32(7))));
        assert_eq!(s.state, RecvState::ResetRead);
        assert_eq!(s.release(), 20);
    }

    #[test]
    fn stream_flow_control() {
        let mut s = RecvStream::new(10, 10);
        assert_eq!(
            s.on_data(0, Bytes::from_static(b"0123456789"), false),
            Ok(10)
        );
        let e = s.on_data(10, Bytes::from_static(b"x"), false).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FLOW_CONTROL_ERROR);
        let e = s.on_reset(VarInt::from_u32(0), 11).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FLOW_CONTROL_ERROR);
        let e = s
            .on_data(VarInt::MAX.into_inner(), Bytes::from_static(b"x"), false)
            .unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FLOW_CONTROL_ERROR);
        // Reading more than half the window raises the limit.
        assert_eq!(s.read(4).unwrap().unwrap().len(), 4);
        assert_eq!(s.window_update(false, Instant::now(), Duration::ZERO), None);
        assert_eq!(s.read(4).unwrap().unwrap().len(), 4);
        assert_eq!(
            s.window_update(false, Instant::now(), Duration::ZERO),
            Some(18)
        );
        assert_eq!(s.release(), 8);
        // Data is checked against the limit actually sent, not the one queued.
        let e = s.on_data(10, Bytes::from_static(b"x"), false).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::FLOW_CONTROL_ERROR);
        s.advertised = 18;
        s.on_data(10, Bytes::from_static(b"abcdefgh"), true)
            .unwrap();
        assert_eq!(s.read(100).unwrap().unwrap().len(), 2);
        assert_eq!(
            s.read(100).unwrap().unwrap(),
            Bytes::from_static(b"abcdefgh")
        );
        assert_eq!(s.read(100), Ok(None));
        assert_eq!(s.state, RecvState::DataRead);
    }

    proptest! {
        /// Any chunking, overlap, duplication and order of delivery reassembles to the
        /// original bytes, and the buffered count never exceeds the distinct bytes.
        #[test]
        fn reassembly(
            len in 0usize..3000,
            cuts in proptest::collection::vec((0usize..3000, 1usize..400), 1..60),
            order in proptest::collection::vec(any::<(proptest::sample::Index, proptest::sample::Index)>(), 0..80),
            read_sizes in proptest::collection::vec(1usize..500, 1..10),
        ) {
            let data: Bytes = (0..len).map(|i| (i * 7 % 256) as u8).collect::<Vec<_>>().into();
            // Random overlapping pieces plus a tiling that guarantees full coverage.
            let mut pieces: Vec<(usize, usize)> = cuts
                .iter()
                .map(|&(s, l)| (s.min(len), (s + l).min(len)))
                .collect();
            let mut at = 0;
            for &(_, l) in &cuts {
                if at >= len { break; }
                pieces.push((at, (at + l).min(len)));
                at = (at + l).min(len);
            }
            if at < len { pieces.push((at, len)); }
            let n = pieces.len();
            for (a, b) in &order {
                pieces.swap(a.index(n), b.index(n));
            }
            let mut b = RecvBuffer::new();
            let mut out = Vec::new();
            let mut reads = read_sizes.iter().cycle();
            for (k, &(s, e)) in pieces.iter().enumerate() {
                b.insert(s as u64, data.slice(s..e));
                prop_assert!(b.read_offset() + b.buffered() <= len as u64);
                if k % 3 == 0 {
                    if let Some(d) = b.read(*reads.next().unwrap()) { out.extend_from_slice(&d); }
                }
            }
            while let Some(d) = b.read(*reads.next().unwrap()) { out.extend_from_slice(&d); }
            prop_assert_eq!(&out[..], &data[..]);
            prop_assert_eq!(b.buffered(), 0);
        }
    }
}
