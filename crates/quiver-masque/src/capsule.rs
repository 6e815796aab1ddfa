//! The Capsule Protocol (RFC 9297 §3.2): type-length-value capsules on the data stream of
//! an HTTP request that upgraded to it (CONNECT-UDP does).
//!
//! [`CapsuleDecoder`] is a streaming decoder: push stream bytes as they arrive and pull
//! capsules out. DATAGRAM capsules (type 0x00) are returned whole, up to a configured
//! maximum length; capsules of any other type are *skipped* as the RFC requires — their
//! payload is counted off as it arrives and never buffered, however long it is — and
//! reported once as [`Capsule::Unknown`] so that the caller can count them.

use crate::varint;
use bytes::{Buf, Bytes, BytesMut};

/// Capsule type of the DATAGRAM capsule (RFC 9297 §3.5).
pub const DATAGRAM: u64 = 0x00;

/// Default largest DATAGRAM capsule payload accepted: a context ID and the largest UDP
/// payload (65,527 bytes), rounded up.
pub const DEFAULT_MAX_DATAGRAM: usize = 65_536;

/// A capsule taken off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capsule {
    /// A DATAGRAM capsule: its payload is an HTTP Datagram payload (for CONNECT-UDP a
    /// context ID and a UDP payload, see [`crate::datagram::UdpPayload`]).
    Datagram(Bytes),
    /// A capsule of a type this decoder does not know; its `length` payload bytes are
    /// skipped (some may still be arriving).
    Unknown {
        /// The capsule type.
        capsule_type: u64,
        /// Its payload length.
        length: u64,
    },
}

/// Why a capsule stream is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsuleError {
    /// A DATAGRAM capsule longer than the receiver accepts.
    #[error("DATAGRAM capsule of {length} bytes exceeds the limit of {max}")]
    DatagramTooLarge {
        /// Its length field.
        length: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a capsule (RFC 9297 §3.3: the message is malformed).
    #[error("stream ended inside a capsule")]
    Truncated,
}

/// Streaming capsule decoder (see the [module docs](self)).
#[derive(Debug)]
pub struct CapsuleDecoder {
    /// Bytes of the capsule being decoded (header and, for DATAGRAM, payload).
    buf: BytesMut,
    /// Payload bytes of an unknown capsule still to skip.
    skip: u64,
    /// Largest DATAGRAM capsule payload accepted.
    max_datagram: usize,
    /// A previous error: the stream is unusable.
    failed: Option<CapsuleError>,
}

impl Default for CapsuleDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DATAGRAM)
    }
}

impl CapsuleDecoder {
    /// A decoder accepting DATAGRAM capsules of up to `max_datagram` payload bytes.
    pub fn new(max_datagram: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            skip: 0,
            max_datagram,
            failed: None,
        }
    }

    /// Feed bytes read from the stream. Bytes belonging to a skipped capsule are dropped
    /// at once.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.skip > 0 {
            let n = (data.len() as u64).min(self.skip) as usize;
            self.skip -= n as u64;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete capsule, `Ok(None)` if more bytes are needed.
    pub fn next_capsule(&mut self) -> Result<Option<Capsule>, CapsuleError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.skip > 0 {
            return Ok(None);
        }
        let Some((capsule_type, t_len)) = varint::decode(&self.buf) else {
            return Ok(None);
        };
        let Some((length, l_len)) = varint::decode(&self.buf[t_len..]) else {
            return Ok(None);
        };
        let header = t_len + l_len;
        if capsule_type == DATAGRAM {
            if length > self.max_datagram as u64 {
                let e = CapsuleError::DatagramTooLarge {
                    length,
                    max: self.max_datagram,
                };
                self.failed = Some(e.clone());
                self.buf.clear();
                return Err(e);
            }
            let total = header + length as usize;
            if self.buf.len() < total {
                return Ok(None);
            }
            self.buf.advance(header);
            let payload = self.buf.split_to(length as usize).freeze();
            return Ok(Some(Capsule::Datagram(payload)));
        }
        // Unknown type: skip the payload, buffered or not.
        self.buf.advance(header);
        let buffered = (self.buf.len() as u64).min(length);
        self.buf.advance(buffered as usize);
        self.skip = length - buffered;
        Ok(Some(Capsule::Unknown {
            capsule_type,
            length,
        }))
    }

    /// The stream ended: an error if it ended inside a capsule.
    pub fn finish(&self) -> Result<(), CapsuleError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.skip > 0 || !self.buf.is_empty() {
            return Err(CapsuleError::Truncated);
        }
        Ok(())
    }
}

/// Append a capsule of `capsule_type` with `payload` to `out`.
pub fn encode(capsule_type: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(varint::size(capsule_type) + varint::size(payload.len() as u64) + payload.len());
    varint::encode(capsule_type, out);
    varint::encode(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// Append a DATAGRAM capsule carrying `payload` (an HTTP Datagram payload) to `out`.
pub fn encode_datagram(payload: &[u8], out: &mut Vec<u8>) {
    encode(DATAGRAM, payload, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn datagram_and_unknown() {
        let mut wire = Vec::new();
        encode(0x2a, &[9; 1000], &mut wire);
        encode_datagram(b"\x00hello", &mut wire);
        let mut d = CapsuleDecoder::default();
        // One byte at a time: the unknown capsule is never buffered.
        let mut got = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b));
            assert!(d.buf.len() <= 16);
            while let Some(c) = d.next_capsule().expect("valid") {
                got.push(c);
            }
        }
        assert_eq!(
            got,
            vec![
                Capsule::Unknown {
                    capsule_type: 0x2a,
                    length: 1000
                },
                Capsule::Datagram(Bytes::from_static(b"\x00hello"))
            ]
        );
        d.finish().expect("complete");
    }

    #[test]
    fn too_large_and_truncated() {
        let mut wire = Vec::new();
        encode_datagram(&[0; 100], &mut wire);
        let mut d = CapsuleDecoder::new(99);
        d.push(&wire);
        assert!(matches!(
            d.next_capsule(),
            Err(CapsuleError::DatagramTooLarge { length: 100, .. })
        ));
        let mut d = CapsuleDecoder::new(100);
        d.push(&wire[..50]);
        assert_eq!(d.next_capsule(), Ok(None));
        assert_eq!(d.finish(), Err(CapsuleError::Truncated));
    }

    proptest! {
        /// Any bytes in any split: no panic, bounded buffering, and the capsules found
        /// do not depend on how the stream was split.
        #[test]
        fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600),
                           split in 1usize..64) {
            let whole = {
                let mut d = CapsuleDecoder::new(256);
                d.push(&data);
                let mut v = Vec::new();
                while let Ok(Some(c)) = d.next_capsule() { v.push(c); }
                v
            };
            let mut d = CapsuleDecoder::new(256);
            let mut v = Vec::new();
            for chunk in data.chunks(split) {
                d.push(chunk);
                while let Ok(Some(c)) = d.next_capsule() { v.push(c); }
                prop_assert!(d.buf.len() <= 256 + 16 + split);
            }
            prop_assert_eq!(v, whole);
        }

        /// Encoded capsules decode back, whatever the split.
        #[test]
        fn roundtrip(caps in proptest::collection::vec(
                        (prop_oneof![Just(0u64), 1u64..1u64 << 62],
                         proptest::collection::vec(any::<u8>(), 0..300)), 0..8),
                     split in 1usize..100) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for (t, p) in &caps {
                encode(*t, p, &mut wire);
                want.push(if *t == DATAGRAM {
                    Capsule::Datagram(Bytes::copy_from_slice(p))
                } else {
                    Capsule::Unknown { capsule_type: *t, length: p.len() as u64 }
                });
            }
            let mut d = CapsuleDecoder::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                d.push(chunk);
                while let Some(c) = d.next_capsule().expect("valid") { got.push(c); }
            }
            prop_assert_eq!(got, want);
            prop_assert!(d.finish().is_ok());
        }
    }
}
