//! CRYPTO stream state of one encryption level (RFC 9000 §7.5, §19.6).

use crate::error::TransportError;
use crate::range_set::RangeSet;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Range;

/// Most out-of-order CRYPTO data we buffer per level before failing with
/// CRYPTO_BUFFER_EXCEEDED (RFC 9000 §7.5 asks for at least 4096 bytes).
const MAX_CRYPTO_BUFFER: u64 = 256 * 1024;

/// Outgoing handshake bytes of one level, with retransmission bookkeeping.
#[derive(Default, Debug)]
pub(crate) struct CryptoSend {
    /// Every byte ever written at this level (handshake flights are small).
    data: Vec<u8>,
    /// First never-sent offset.
    unsent: u64,
    /// Ranges declared lost and not yet resent.
    lost: RangeSet,
    /// Ranges acknowledged by the peer.
    acked: RangeSet,
}

impl CryptoSend {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    /// Whether anything is waiting to be (re)sent.
    pub(crate) fn has_pending(&self) -> bool {
        !self.lost.is_empty() || self.unsent < self.data.len() as u64
    }

    /// Next range to send, at most `max_len` bytes: lost data first, then new data.
    pub(crate) fn next(&mut self, max_len: usize) -> Option<(u64, Bytes)> {
        if max_len == 0 {
            return None;
        }
        if let Some(r) = self.lost.pop_min() {
            let end = r.end.min(r.start + max_len as u64);
            if end < r.end {
                self.lost.insert(end..r.end);
            }
            return Some((r.start, self.slice(r.start..end)));
        }
        let total = self.data.len() as u64;
        if self.unsent < total {
            let start = self.unsent;
            let end = total.min(start + max_len as u64);
            self.unsent = end;
            return Some((start, self.slice(start..end)));
        }
        None
    }

    /// Queue every sent but unacknowledged byte for retransmission (PTO probes).
    pub(crate) fn requeue_unacked(&mut self) {
        let mut r = RangeSet::new();
        if self.unsent > 0 {
            r.insert(0..self.unsent);
        }
        r.subtract(&self.acked);
        self.lost.union_with(&r);
    }

    fn slice(&self, r: Range<u64>) -> Bytes {
        Bytes::copy_from_slice(&self.data[r.start as usize..r.end as usize])
    }

    pub(crate) fn on_ack(&mut self, r: Range<u64>) {
        self.acked.insert(r.clone());
        self.lost.remove(r);
    }

    pub(crate) fn on_lost(&mut self, r: Range<u64>) {
        let mut set = RangeSet::new();
        set.insert(r);
        set.subtract(&self.acked);
        self.lost.union_with(&set);
    }
}

/// Incoming handshake bytes of one level, reassembled in order.
///
/// Buffered segments never overlap: a frame that overlaps what is buffered only adds
/// the bytes not yet held, and those are copied out of the packet, so a segment never
/// pins the (possibly much larger) datagram buffer it arrived in. Together with the
/// window check, at most [`MAX_CRYPTO_BUFFER`] bytes are held per level, whatever the
/// peer sends.
#[derive(Default, Debug)]
pub(crate) struct CryptoRecv {
    /// Next offset to deliver to TLS.
    offset: u64,
    /// Out-of-order segments keyed by offset; pairwise disjoint.
    pending: BTreeMap<u64, Bytes>,
    buffered: u64,
}

impl CryptoRecv {
    /// Insert a CRYPTO frame's data.
    pub(crate) fn insert(&mut self, offset: u64, data: Bytes) -> Result<(), TransportError> {
        let end = offset.saturating_add(data.len() as u64);
        if end <= self.offset {
            return Ok(()); // duplicate
        }
        if end - self.offset > MAX_CRYPTO_BUFFER {
            return Err(TransportError::CRYPTO_BUFFER_EXCEEDED(
                "too much out-of-order CRYPTO data",
            ));
        }
        // The parts of [start, end) that no buffered segment covers yet.
        let mut pos = offset.max(self.offset);
        if let Some((&o, seg)) = self.pending.range(..=pos).next_back() {
            pos = pos.max(o + seg.len() as u64);
        }
        if pos >= end {
            // Inside a buffered segment already (found by the fuzzer: the range below
            // panicked with start > end).
            return Ok(());
        }
        let mut gaps: Vec<(u64, u64)> = Vec::new();
        for (&o, seg) in self.pending.range(pos..end) {
            if o > pos {
                gaps.push((pos, o));
            }
            pos = pos.max(o + seg.len() as u64);
        }
        if pos < end {
            gaps.push((pos, end));
        }
        for (from, to) in gaps {
            let piece = &data[(from - offset) as usize..(to - offset) as usize];
            self.buffered += piece.len() as u64;
            self.pending.insert(from, Bytes::copy_from_slice(piece));
        }
        Ok(())
    }

    /// Bytes currently buffered.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> u64 {
        self.buffered
    }

    /// Take the next in-order bytes, if any.
    pub(crate) fn read(&mut self) -> Option<Bytes> {
        loop {
            let (&off, _) = self.pending.iter().next()?;
            if off > self.offset {
                return None;
            }
            let data = self.pending.remove(&off)?;
            self.buffered -= data.len() as u64;
            let end = off + data.len() as u64;
            if end <= self.offset {
                continue;
            }
            let chunk = data.slice((self.offset - off) as usize..);
            self.offset = end;
            return Some(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_reorders_and_dedups() {
        let mut r = CryptoRecv::default();
        r.insert(5, Bytes::from_static(b"fghij")).unwrap();
        assert!(r.read().is_none());
        r.insert(0, Bytes::from_static(b"abcdefg")).unwrap();
        // Only the missing "abcde" was added; the reads deliver each byte once.
        assert_eq!(r.read().unwrap(), Bytes::from_static(b"abcde"));
        assert_eq!(r.read().unwrap(), Bytes::from_static(b"fghij"));
        r.insert(2, Bytes::from_static(b"cd")).unwrap();
        assert!(r.read().is_none());
    }

    /// A frame wholly inside a buffered segment adds nothing (and does not panic).
    #[test]
    fn segment_inside_a_buffered_one_is_a_duplicate() {
        let mut r = CryptoRecv::default();
        r.insert(5, Bytes::from_static(b"fghijklmno")).unwrap();
        r.insert(6, Bytes::from_static(b"gh")).unwrap();
        assert_eq!(r.buffered(), 10);
        r.insert(0, Bytes::from_static(b"abcde")).unwrap();
        assert_eq!(r.read().unwrap(), Bytes::from_static(b"abcde"));
        assert_eq!(r.read().unwrap(), Bytes::from_static(b"fghijklmno"));
    }

    /// Overlapping segments are trimmed to what is missing: a peer resending the same
    /// bytes at shifting offsets cannot make the buffer grow beyond the window.
    #[test]
    fn overlapping_segments_are_trimmed_and_bounded() {
        let mut r = CryptoRecv::default();
        let seg = Bytes::from(vec![9u8; 1000]);
        for off in 1..2000u64 {
            r.insert(off, seg.clone()).unwrap();
        }
        // [1, 2999) is held once.
        assert_eq!(r.buffered(), 2998);
        assert!(r.pending.len() <= 2000);
        let mut end = 0;
        for (&o, s) in &r.pending {
            assert!(o >= end, "segments overlap");
            end = o + s.len() as u64;
        }
        // A segment in a gap between two others is split around them.
        let mut r = CryptoRecv::default();
        r.insert(10, Bytes::from_static(b"kl")).unwrap();
        r.insert(14, Bytes::from_static(b"op")).unwrap();
        r.insert(0, Bytes::from_static(b"abcdefghijklmnopqr"))
            .unwrap();
        assert_eq!(r.buffered(), 18);
        let mut got = Vec::new();
        while let Some(c) = r.read() {
            got.extend_from_slice(&c);
        }
        assert_eq!(got, b"abcdefghijklmnopqr");
        assert_eq!(r.buffered(), 0);
        // Beyond the window: CRYPTO_BUFFER_EXCEEDED.
        let e = r
            .insert(MAX_CRYPTO_BUFFER + 18, Bytes::from_static(b"x"))
            .unwrap_err();
        assert_eq!(
            e.code,
            crate::error::TransportErrorCode::CRYPTO_BUFFER_EXCEEDED
        );
    }

    #[test]
    fn send_retransmits_lost_first() {
        let mut s = CryptoSend::default();
        s.write(b"0123456789");
        assert_eq!(s.next(4).unwrap(), (0, Bytes::from_static(b"0123")));
        assert_eq!(s.next(100).unwrap(), (4, Bytes::from_static(b"456789")));
        s.on_lost(0..4);
        s.on_ack(4..10);
        assert_eq!(s.next(2).unwrap(), (0, Bytes::from_static(b"01")));
        assert_eq!(s.next(100).unwrap(), (2, Bytes::from_static(b"23")));
        assert!(s.next(100).is_none());
        s.requeue_unacked();
        assert_eq!(s.next(100).unwrap(), (0, Bytes::from_static(b"0123")));
    }
}
