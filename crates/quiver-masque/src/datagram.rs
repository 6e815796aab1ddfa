//! HTTP Datagram payloads (RFC 9297 §2.1) and CONNECT-UDP's context IDs (RFC 9298 §4).
//!
//! On HTTP/3 an HTTP Datagram is a QUIC DATAGRAM frame whose payload starts with the
//! *quarter stream ID* (the request stream ID divided by 4) of the request it belongs
//! to. Inside, a CONNECT-UDP datagram starts with a *context ID*: 0 is a UDP payload;
//! other (even, client-allocated / odd, proxy-allocated) IDs belong to extensions, and a
//! receiver without such an extension drops them (RFC 9298 §4).

use crate::varint;
use bytes::Bytes;

/// Largest quarter stream ID: stream IDs are below 2^62 (RFC 9297 §2.1).
pub const MAX_QUARTER_STREAM_ID: u64 = (1 << 60) - 1;

/// The context ID of UDP payloads.
pub const UDP_CONTEXT: u64 = 0;

/// Largest UDP payload: 65,535 − 8 (UDP header).
pub const MAX_UDP_PAYLOAD: usize = 65_527;

/// Why a datagram is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// The payload ended inside a varint.
    #[error("datagram truncated inside a variable-length integer")]
    Truncated,
    /// A quarter stream ID above [`MAX_QUARTER_STREAM_ID`] (H3_DATAGRAM_ERROR).
    #[error("quarter stream ID {0} exceeds 2^60 - 1")]
    QuarterStreamIdTooLarge(u64),
    /// The stream ID is not a client-initiated bidirectional stream.
    #[error("stream {0} is not a client-initiated bidirectional (request) stream")]
    NotARequestStream(u64),
}

/// An HTTP/3 datagram: which request it belongs to and its HTTP Datagram payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDatagram {
    /// The request stream ID divided by 4.
    pub quarter_stream_id: u64,
    /// The HTTP Datagram payload.
    pub payload: Bytes,
}

impl HttpDatagram {
    /// A datagram for request stream `stream_id`.
    pub fn for_stream(stream_id: u64, payload: Bytes) -> Result<Self, DatagramError> {
        if !stream_id.is_multiple_of(4) {
            return Err(DatagramError::NotARequestStream(stream_id));
        }
        let quarter_stream_id = stream_id / 4;
        if quarter_stream_id > MAX_QUARTER_STREAM_ID {
            return Err(DatagramError::QuarterStreamIdTooLarge(quarter_stream_id));
        }
        Ok(Self {
            quarter_stream_id,
            payload,
        })
    }

    /// The request stream ID.
    pub fn stream_id(&self) -> u64 {
        self.quarter_stream_id * 4
    }

    /// Parse a QUIC DATAGRAM frame payload.
    pub fn decode(frame: Bytes) -> Result<Self, DatagramError> {
        let (quarter_stream_id, n) = varint::decode(&frame).ok_or(DatagramError::Truncated)?;
        if quarter_stream_id > MAX_QUARTER_STREAM_ID {
            return Err(DatagramError::QuarterStreamIdTooLarge(quarter_stream_id));
        }
        Ok(Self {
            quarter_stream_id,
            payload: frame.slice(n..),
        })
    }

    /// The QUIC DATAGRAM frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.payload.len());
        varint::encode(self.quarter_stream_id, &mut out);
        out.extend_from_slice(&self.payload);
        out
    }
}

/// A CONNECT-UDP HTTP Datagram payload: a context ID and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPayload {
    /// The context ID ([`UDP_CONTEXT`] for UDP payloads).
    pub context_id: u64,
    /// For context 0 the UDP payload; otherwise extension data.
    pub payload: Bytes,
}

impl UdpPayload {
    /// A UDP payload (context 0).
    pub fn udp(payload: Bytes) -> Self {
        Self {
            context_id: UDP_CONTEXT,
            payload,
        }
    }

    /// Parse an HTTP Datagram payload.
    pub fn decode(payload: Bytes) -> Result<Self, DatagramError> {
        let (context_id, n) = varint::decode(&payload).ok_or(DatagramError::Truncated)?;
        Ok(Self {
            context_id,
            payload: payload.slice(n..),
        })
    }

    /// Append the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        varint::encode(self.context_id, out);
        out.extend_from_slice(&self.payload);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.payload.len());
        self.encode_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quarter_stream_id() {
        let d = HttpDatagram::for_stream(8, Bytes::from_static(b"\x00x")).expect("request");
        assert_eq!(d.quarter_stream_id, 2);
        assert_eq!(d.encode(), b"\x02\x00x");
        assert!(HttpDatagram::for_stream(2, Bytes::new()).is_err());
        assert_eq!(
            HttpDatagram::decode(Bytes::from_static(&[0xff; 8])),
            Err(DatagramError::QuarterStreamIdTooLarge((1 << 62) - 1))
        );
        assert_eq!(
            HttpDatagram::decode(Bytes::new()),
            Err(DatagramError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn decode_arbitrary(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(d) = HttpDatagram::decode(Bytes::from(data.clone())) {
                prop_assert!(d.quarter_stream_id <= MAX_QUARTER_STREAM_ID);
                if let Ok(u) = UdpPayload::decode(d.payload.clone()) {
                    prop_assert!(u.payload.len() < data.len());
                }
            }
        }

        #[test]
        fn roundtrip(q in 0..=MAX_QUARTER_STREAM_ID, ctx in 0u64..1 << 62,
                     p in proptest::collection::vec(any::<u8>(), 0..100)) {
            let inner = UdpPayload { context_id: ctx, payload: Bytes::from(p) };
            let d = HttpDatagram::for_stream(q * 4, Bytes::from(inner.encode())).expect("ok");
            let back = HttpDatagram::decode(Bytes::from(d.encode())).expect("decodes");
            prop_assert_eq!(&back, &d);
            prop_assert_eq!(UdpPayload::decode(back.payload).expect("decodes"), inner);
        }
    }
}
