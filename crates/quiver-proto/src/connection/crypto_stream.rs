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
#[derive(Default, Debug)]
pub(crate) struct CryptoRecv {
    /// Next offset to deliver to TLS.
    offset: u64,
    /// Out-of-order segments keyed by offset.
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
        let (offset, data) = if offset < self.offset {
            let skip = (self.offset - offset) as usize;
            (self.offset, data.slice(skip..))
        } else {
            (offset, data)
        };
        match self.pending.get(&offset) {
            Some(existing) if existing.len() >= data.len() => {}
            _ => {
                if let Some(old) = self.pending.insert(offset, data.clone()) {
                    self.buffered -= old.len() as u64;
                }
                self.buffered += data.len() as u64;
            }
        }
        Ok(())
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
        assert_eq!(r.read().unwrap(), Bytes::from_static(b"abcdefg"));
        assert_eq!(r.read().unwrap(), Bytes::from_static(b"hij"));
        r.insert(2, Bytes::from_static(b"cd")).unwrap();
        assert!(r.read().is_none());
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
