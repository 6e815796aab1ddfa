//! HTTP Datagrams (RFC 9297 §2.1): a QUIC DATAGRAM frame whose payload starts with the
//! *quarter stream ID* of the request stream it belongs to.
//!
//! Quiver encodes outgoing HTTP Datagrams itself: `h3-datagram` 0.0.2's
//! `Datagram::encode` writes the quarter stream ID into a local buffer and then returns
//! zeros instead (hyperium/h3 issue 345, fixed upstream but not released), so every
//! datagram it sends claims request stream 0. [`HttpDatagrams::send`] is the sender to
//! use; [`encode`] and [`decode`] are the wire format.

use crate::error::H3Error;
use crate::varint;
use bytes::Bytes;
use h3::quic::StreamId;
use quiver::SendDatagramError;

/// Largest legal quarter stream ID (RFC 9297 §2.1: 2^60 - 1).
pub const MAX_QUARTER_STREAM_ID: u64 = (1 << 60) - 1;

/// Why a received QUIC datagram is not a valid HTTP Datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramDecodeError {
    /// The datagram ends inside the quarter stream ID.
    #[error("truncated quarter stream id")]
    Truncated,
    /// The quarter stream ID exceeds 2^60 - 1: an H3_DATAGRAM_ERROR (RFC 9297 §2.1).
    #[error("quarter stream id {0} out of range")]
    OutOfRange(u64),
}

/// Encode an HTTP Datagram for request stream `stream_id` (a client-initiated
/// bidirectional stream, so divisible by 4) carrying `payload`.
pub fn encode(stream_id: u64, payload: &[u8]) -> Bytes {
    let q = stream_id / 4;
    let mut out = Vec::with_capacity(varint::len(q) + payload.len());
    varint::encode(q, &mut out);
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// Decode an HTTP Datagram: the request stream ID it belongs to and its payload.
pub fn decode(mut datagram: Bytes) -> Result<(u64, Bytes), DatagramDecodeError> {
    let (q, n) = varint::decode(&datagram).ok_or(DatagramDecodeError::Truncated)?;
    if q > MAX_QUARTER_STREAM_ID {
        return Err(DatagramDecodeError::OutOfRange(q));
    }
    let payload = datagram.split_off(n);
    Ok((q * 4, payload))
}

/// Sends and receives HTTP Datagrams on one connection; cheap to clone.
///
/// Obtained from [`Server::datagrams`](crate::Server::datagrams) or
/// [`Client::datagrams`](crate::Client::datagrams). Datagrams of every request stream of
/// the connection arrive through [`recv`](Self::recv); an application with many flows
/// demultiplexes by the returned stream ID.
#[derive(Clone, Debug)]
pub struct HttpDatagrams {
    conn: quiver::Connection,
}

impl HttpDatagrams {
    pub(crate) fn new(conn: quiver::Connection) -> Self {
        Self { conn }
    }

    /// Send `payload` as an HTTP Datagram of request stream `stream_id`.
    pub fn send(&self, stream_id: StreamId, payload: &[u8]) -> Result<(), H3Error> {
        let id = stream_id.into_inner();
        if !id.is_multiple_of(4) {
            return Err(H3Error::NotARequestStream(id));
        }
        self.conn
            .send_datagram(encode(id, payload))
            .map_err(|e| match e {
                SendDatagramError::ConnectionLost(e) => H3Error::Connection(e),
                other => H3Error::Datagram(other),
            })
    }

    /// Largest payload [`send`](Self::send) can carry for `stream_id` now; `None` if the
    /// peer does not accept QUIC datagrams.
    pub fn max_payload(&self, stream_id: StreamId) -> Option<usize> {
        let overhead = varint::len(stream_id.into_inner() / 4);
        self.conn
            .max_datagram_size()
            .map(|m| m.saturating_sub(overhead))
    }

    /// Wait for the next HTTP Datagram: its request stream and payload.
    ///
    /// A datagram with an out-of-range quarter stream ID closes the connection with
    /// H3_DATAGRAM_ERROR (RFC 9297 §2.1); a truncated one (no complete quarter stream
    /// ID) is dropped.
    pub async fn recv(&self) -> Result<(StreamId, Bytes), H3Error> {
        loop {
            let d = self
                .conn
                .read_datagram()
                .await
                .map_err(H3Error::Connection)?;
            match decode(d) {
                Ok((id, payload)) => {
                    // Always representable: the quarter stream ID was bounded above.
                    let Ok(id) = StreamId::try_from(id) else {
                        continue;
                    };
                    return Ok((id, payload));
                }
                Err(DatagramDecodeError::Truncated) => {
                    tracing::debug!("dropping truncated HTTP datagram");
                }
                Err(e @ DatagramDecodeError::OutOfRange(_)) => {
                    self.conn.close(
                        quiver::VarInt::from_u32(crate::codes::H3_DATAGRAM_ERROR),
                        b"quarter stream id out of range",
                    );
                    return Err(H3Error::BadDatagram(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn several_streams_keep_their_ids() {
        for id in [0u64, 4, 8, 252, 256, 4 * 16_383, 4 * 16_384] {
            let d = encode(id, b"payload");
            assert_eq!(decode(d), Ok((id, Bytes::from_static(b"payload"))));
        }
        // The first byte of stream 4's datagram is the quarter stream ID 1, not 0.
        assert_eq!(encode(4, b"x").first(), Some(&1));
    }

    #[test]
    fn out_of_range_and_truncated() {
        let mut d = Vec::new();
        varint::encode(MAX_QUARTER_STREAM_ID + 1, &mut d);
        assert_eq!(
            decode(Bytes::from(d)),
            Err(DatagramDecodeError::OutOfRange(MAX_QUARTER_STREAM_ID + 1))
        );
        assert_eq!(
            decode(Bytes::from_static(&[0x40])),
            Err(DatagramDecodeError::Truncated)
        );
        assert_eq!(decode(Bytes::new()), Err(DatagramDecodeError::Truncated));
    }

    proptest! {
        #[test]
        fn roundtrip(q in 0..=MAX_QUARTER_STREAM_ID, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let d = encode(q * 4, &payload);
            prop_assert_eq!(decode(d), Ok((q * 4, Bytes::from(payload))));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = decode(Bytes::from(bytes));
        }
    }
}
