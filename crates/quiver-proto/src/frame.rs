//! QUIC frames (RFC 9000 §19, DATAGRAM from RFC 9221 §4, the multipath frames of
//! draft-ietf-quic-multipath-21 §4): one [`Frame`] enum with exact typed encoding and a
//! bounds-checked decoder.
//!
//! # Decoding
//! [`Iter`] walks a decrypted packet payload and yields one `Result<Frame, FrameError>`
//! per frame; after the first error it stops. Every read is bounds-checked, so no input
//! can make it panic. A [`FrameError`] converts into a FRAME_ENCODING_ERROR
//! [`TransportError`] carrying the offending frame type (RFC 9000 §12.4).
//!
//! Frame-type varints are accepted in any encoding length. RFC 9000 §12.4 requires the
//! sender to use the shortest encoding but only says the receiver *MAY* treat a longer
//! one as PROTOCOL_VIOLATION; we accept it.
//!
//! Checks that need connection state (is a frame allowed in this packet type, does the
//! packet carry at least one frame, stream-id limits, ...) belong to the caller; see
//! [`Frame::allowed_in`] and [`PacketKind::allows`].
//!
//! The multipath frames decode whether or not the extension was negotiated; a connection
//! that did not negotiate it must treat them as unknown frames ([`Frame::is_multipath`]).
//! A path ID above 2^32 - 1 cannot be below any path limit, so the decoder reports it
//! as a PROTOCOL_VIOLATION (draft-ietf-quic-multipath-21 §4), not as an encoding error.
//!
//! # Encoding
//! [`Frame::encode`] writes a frame and [`Frame::encoded_len`] predicts its size exactly.
//! STREAM and DATAGRAM frames written through [`Frame::encode`] always carry a Length
//! field so they can be followed by other frames. The packetizer instead uses the header
//! helpers ([`Stream::encode_header`], [`Crypto::encode_header`], [`Datagram::encode`],
//! [`Ack::encode_from_ranges`]) to size frames to the space left in a packet.

use crate::cid::{ConnectionId, ResetToken, MAX_CID_SIZE, RESET_TOKEN_SIZE};
use crate::coding::{size_of_varint, BufExt, BufMutExt, UnexpectedEnd, VarInt};
use crate::error::{TransportError, TransportErrorCode};
use crate::range_set::RangeSet;
use crate::shared::{Dir, PathId, PathStatus, StreamId};
use bytes::{Buf, BufMut, Bytes};
use std::ops::Range;

/// Frame type codes (RFC 9000 §19 and §12.4 Table 3; RFC 9221 §4).
pub mod frame_type {
    /// PADDING (§19.1).
    pub const PADDING: u64 = 0x00;
    /// PING (§19.2).
    pub const PING: u64 = 0x01;
    /// ACK without ECN counts (§19.3).
    pub const ACK: u64 = 0x02;
    /// ACK with ECN counts (§19.3).
    pub const ACK_ECN: u64 = 0x03;
    /// RESET_STREAM (§19.4).
    pub const RESET_STREAM: u64 = 0x04;
    /// STOP_SENDING (§19.5).
    pub const STOP_SENDING: u64 = 0x05;
    /// CRYPTO (§19.6).
    pub const CRYPTO: u64 = 0x06;
    /// NEW_TOKEN (§19.7).
    pub const NEW_TOKEN: u64 = 0x07;
    /// STREAM base type (§19.8); the low three bits are [`STREAM_OFF`], [`STREAM_LEN`]
    /// and [`STREAM_FIN`], giving types 0x08..=0x0f.
    pub const STREAM: u64 = 0x08;
    /// STREAM type bit: an Offset field is present.
    pub const STREAM_OFF: u64 = 0x04;
    /// STREAM type bit: a Length field is present.
    pub const STREAM_LEN: u64 = 0x02;
    /// STREAM type bit: this frame ends the stream.
    pub const STREAM_FIN: u64 = 0x01;
    /// Last STREAM type (all three bits set).
    pub const STREAM_MAX: u64 = 0x0f;
    /// MAX_DATA (§19.9).
    pub const MAX_DATA: u64 = 0x10;
    /// MAX_STREAM_DATA (§19.10).
    pub const MAX_STREAM_DATA: u64 = 0x11;
    /// MAX_STREAMS for bidirectional streams (§19.11).
    pub const MAX_STREAMS_BIDI: u64 = 0x12;
    /// MAX_STREAMS for unidirectional streams (§19.11).
    pub const MAX_STREAMS_UNI: u64 = 0x13;
    /// DATA_BLOCKED (§19.12).
    pub const DATA_BLOCKED: u64 = 0x14;
    /// STREAM_DATA_BLOCKED (§19.13).
    pub const STREAM_DATA_BLOCKED: u64 = 0x15;
    /// STREAMS_BLOCKED for bidirectional streams (§19.14).
    pub const STREAMS_BLOCKED_BIDI: u64 = 0x16;
    /// STREAMS_BLOCKED for unidirectional streams (§19.14).
    pub const STREAMS_BLOCKED_UNI: u64 = 0x17;
    /// NEW_CONNECTION_ID (§19.15).
    pub const NEW_CONNECTION_ID: u64 = 0x18;
    /// RETIRE_CONNECTION_ID (§19.16).
    pub const RETIRE_CONNECTION_ID: u64 = 0x19;
    /// PATH_CHALLENGE (§19.17).
    pub const PATH_CHALLENGE: u64 = 0x1a;
    /// PATH_RESPONSE (§19.18).
    pub const PATH_RESPONSE: u64 = 0x1b;
    /// CONNECTION_CLOSE with a transport error code (§19.19).
    pub const CONNECTION_CLOSE: u64 = 0x1c;
    /// CONNECTION_CLOSE with an application error code (§19.19).
    pub const APPLICATION_CLOSE: u64 = 0x1d;
    /// HANDSHAKE_DONE (§19.20).
    pub const HANDSHAKE_DONE: u64 = 0x1e;
    /// DATAGRAM without a Length field (RFC 9221 §4).
    pub const DATAGRAM: u64 = 0x30;
    /// DATAGRAM with a Length field (RFC 9221 §4).
    pub const DATAGRAM_LEN: u64 = 0x31;
    /// PATH_ACK (draft-ietf-quic-multipath-21 §4.1).
    pub const PATH_ACK: u64 = 0x3e;
    /// PATH_ACK with ECN counts (draft-ietf-quic-multipath-21 §4.1).
    pub const PATH_ACK_ECN: u64 = 0x3f;
    /// PATH_ABANDON (draft-ietf-quic-multipath-21 §4.2).
    pub const PATH_ABANDON: u64 = 0x3e75;
    /// PATH_STATUS_BACKUP (draft-ietf-quic-multipath-21 §4.3).
    pub const PATH_STATUS_BACKUP: u64 = 0x3e76;
    /// PATH_STATUS_AVAILABLE (draft-ietf-quic-multipath-21 §4.3).
    pub const PATH_STATUS_AVAILABLE: u64 = 0x3e77;
    /// PATH_NEW_CONNECTION_ID (draft-ietf-quic-multipath-21 §4.4).
    pub const PATH_NEW_CONNECTION_ID: u64 = 0x3e78;
    /// PATH_RETIRE_CONNECTION_ID (draft-ietf-quic-multipath-21 §4.5).
    pub const PATH_RETIRE_CONNECTION_ID: u64 = 0x3e79;
    /// MAX_PATH_ID (draft-ietf-quic-multipath-21 §4.6).
    pub const MAX_PATH_ID: u64 = 0x3e7a;
    /// PATHS_BLOCKED (draft-ietf-quic-multipath-21 §4.7).
    pub const PATHS_BLOCKED: u64 = 0x3e7b;
    /// PATH_CIDS_BLOCKED (draft-ietf-quic-multipath-21 §4.7).
    pub const PATH_CIDS_BLOCKED: u64 = 0x3e7c;

    /// Whether `ty` is one of the STREAM types 0x08..=0x0f.
    pub const fn is_stream(ty: u64) -> bool {
        ty >= STREAM && ty <= STREAM_MAX
    }

    /// Whether `ty` is one of the frame types of the multipath extension.
    pub const fn is_multipath(ty: u64) -> bool {
        ty == PATH_ACK || ty == PATH_ACK_ECN || (ty >= PATH_ABANDON && ty <= PATH_CIDS_BLOCKED)
    }
}

use frame_type as ft;

/// Largest value a stream offset plus length may reach (RFC 9000 §19.8): 2^62 - 1.
const MAX_OFFSET: u64 = VarInt::MAX.into_inner();
/// Largest stream count in MAX_STREAMS / STREAMS_BLOCKED (RFC 9000 §19.11, §19.14): 2^60.
pub const MAX_STREAM_COUNT: u64 = 1 << 60;

/// The kind of packet a frame arrives in, for RFC 9000 §12.4 Table 3.
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum PacketKind {
    /// Initial packet.
    Initial,
    /// Handshake packet.
    Handshake,
    /// 0-RTT packet.
    ZeroRtt,
    /// 1-RTT (short header) packet.
    OneRtt,
}

impl PacketKind {
    /// Whether a frame of type `ty` may appear in this kind of packet
    /// (RFC 9000 §12.4 Table 3; DATAGRAM per RFC 9221 §4: 0-RTT and 1-RTT only).
    ///
    /// Unknown types return `false`. The receiver treats a frame in the wrong packet
    /// type as a PROTOCOL_VIOLATION (RFC 9000 §12.4).
    pub fn allows(self, ty: u64) -> bool {
        use PacketKind::*;
        match ty {
            // IH01
            ft::PADDING | ft::PING | ft::CONNECTION_CLOSE => true,
            // IH_1
            ft::ACK | ft::ACK_ECN | ft::CRYPTO => self != ZeroRtt,
            // ___1
            ft::NEW_TOKEN | ft::PATH_RESPONSE | ft::HANDSHAKE_DONE => self == OneRtt,
            // __01
            ft::RESET_STREAM
            | ft::STOP_SENDING
            | ft::STREAM..=ft::STREAM_MAX
            | ft::MAX_DATA
            | ft::MAX_STREAM_DATA
            | ft::MAX_STREAMS_BIDI
            | ft::MAX_STREAMS_UNI
            | ft::DATA_BLOCKED
            | ft::STREAM_DATA_BLOCKED
            | ft::STREAMS_BLOCKED_BIDI
            | ft::STREAMS_BLOCKED_UNI
            | ft::NEW_CONNECTION_ID
            | ft::RETIRE_CONNECTION_ID
            | ft::PATH_CHALLENGE
            | ft::APPLICATION_CLOSE
            | ft::DATAGRAM
            | ft::DATAGRAM_LEN => matches!(self, ZeroRtt | OneRtt),
            // draft-ietf-quic-multipath-21 §4: multipath frames only in 1-RTT packets.
            t if ft::is_multipath(t) => self == OneRtt,
            _ => false,
        }
    }
}

/// A malformed frame (maps to FRAME_ENCODING_ERROR, RFC 9000 §12.4), or a well-formed
/// one carrying a value no connection state can accept (maps to PROTOCOL_VIOLATION).
#[derive(Debug, Clone, Copy, Eq, PartialEq, thiserror::Error)]
#[error("malformed frame{}: {reason}", frame_type.map(|t| format!(" {t:#x}")).unwrap_or_default())]
pub struct FrameError {
    /// The type of the offending frame, when it could be read.
    pub frame_type: Option<u64>,
    /// What was wrong.
    pub reason: &'static str,
    /// The frame parsed but a value is out of range in a way the protocol calls a
    /// PROTOCOL_VIOLATION (a path ID above 2^32 - 1, draft-ietf-quic-multipath-21 §4).
    pub protocol_violation: bool,
}

impl From<FrameError> for TransportError {
    fn from(e: FrameError) -> Self {
        let code = if e.protocol_violation {
            TransportErrorCode::PROTOCOL_VIOLATION
        } else {
            TransportErrorCode::FRAME_ENCODING_ERROR
        };
        let err = TransportError::new(code, e.reason);
        match e.frame_type {
            Some(t) => err.with_frame(t),
            None => err,
        }
    }
}

/// A QUIC frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A run of `n` PADDING bytes (§19.1). Decoding coalesces consecutive PADDING bytes
    /// into one value; `Padding(0)` encodes to nothing.
    Padding(usize),
    /// PING (§19.2).
    Ping,
    /// ACK (§19.3).
    Ack(Ack),
    /// RESET_STREAM (§19.4).
    ResetStream(ResetStream),
    /// STOP_SENDING (§19.5).
    StopSending(StopSending),
    /// CRYPTO (§19.6).
    Crypto(Crypto),
    /// NEW_TOKEN (§19.7): the token, never empty on the wire.
    NewToken(Bytes),
    /// STREAM (§19.8).
    Stream(Stream),
    /// MAX_DATA (§19.9): connection-level flow-control limit.
    MaxData(VarInt),
    /// MAX_STREAM_DATA (§19.10).
    MaxStreamData {
        /// The stream.
        id: StreamId,
        /// The new limit (absolute offset).
        offset: u64,
    },
    /// MAX_STREAMS (§19.11).
    MaxStreams {
        /// Which kind of streams.
        dir: Dir,
        /// Cumulative number of streams the peer may open (≤ 2^60).
        count: u64,
    },
    /// DATA_BLOCKED (§19.12).
    DataBlocked {
        /// Connection-level limit at which the sender is blocked.
        offset: u64,
    },
    /// STREAM_DATA_BLOCKED (§19.13).
    StreamDataBlocked {
        /// The stream.
        id: StreamId,
        /// Stream-level limit at which the sender is blocked.
        offset: u64,
    },
    /// STREAMS_BLOCKED (§19.14).
    StreamsBlocked {
        /// Which kind of streams.
        dir: Dir,
        /// The stream limit at the time the frame was sent (≤ 2^60).
        limit: u64,
    },
    /// NEW_CONNECTION_ID (§19.15).
    NewConnectionId(NewConnectionId),
    /// RETIRE_CONNECTION_ID (§19.16).
    RetireConnectionId {
        /// Sequence number of the CID being retired.
        sequence: u64,
    },
    /// PATH_CHALLENGE (§19.17).
    PathChallenge([u8; 8]),
    /// PATH_RESPONSE (§19.18).
    PathResponse([u8; 8]),
    /// CONNECTION_CLOSE type 0x1c (§19.19).
    ConnectionClose(ConnectionClose),
    /// CONNECTION_CLOSE type 0x1d (§19.19).
    ApplicationClose(ApplicationClose),
    /// HANDSHAKE_DONE (§19.20).
    HandshakeDone,
    /// DATAGRAM (RFC 9221 §4).
    Datagram(Datagram),
    /// PATH_ACK / PATH_ACK_ECN (draft-ietf-quic-multipath-21 §4.1): an ACK of one
    /// path's packet-number space.
    PathAck {
        /// The path whose packet-number space is acknowledged.
        path_id: PathId,
        /// The acknowledgement, encoded as in an ACK frame.
        ack: Ack,
    },
    /// PATH_ABANDON (draft-ietf-quic-multipath-21 §4.2).
    PathAbandon {
        /// The path to abandon.
        path_id: PathId,
        /// Why ([`TransportErrorCode::NO_ERROR`] or one of the multipath codes).
        error_code: TransportErrorCode,
    },
    /// PATH_STATUS_AVAILABLE / PATH_STATUS_BACKUP (draft-ietf-quic-multipath-21 §4.3).
    PathStatus {
        /// The path the status is for.
        path_id: PathId,
        /// Per-path sequence number; only increases take effect.
        sequence: u64,
        /// The announced status.
        status: PathStatus,
    },
    /// PATH_NEW_CONNECTION_ID (draft-ietf-quic-multipath-21 §4.4): a CID usable only on
    /// `path_id`; sequence numbers are per path.
    PathNewConnectionId {
        /// The path the CID belongs to.
        path_id: PathId,
        /// The CID, its sequence number, Retire Prior To and reset token.
        cid: NewConnectionId,
    },
    /// PATH_RETIRE_CONNECTION_ID (draft-ietf-quic-multipath-21 §4.5).
    PathRetireConnectionId {
        /// The path the CID belongs to.
        path_id: PathId,
        /// Sequence number (within the path) of the CID being retired.
        sequence: u64,
    },
    /// MAX_PATH_ID (draft-ietf-quic-multipath-21 §4.6): the largest path ID the sender
    /// accepts.
    MaxPathId(PathId),
    /// PATHS_BLOCKED (draft-ietf-quic-multipath-21 §4.7): the sender wanted a path but
    /// hit this limit.
    PathsBlocked(PathId),
    /// PATH_CIDS_BLOCKED (draft-ietf-quic-multipath-21 §4.7): the sender has no unused
    /// CID for `path_id`.
    PathCidsBlocked {
        /// The path lacking CIDs.
        path_id: PathId,
        /// The next CID sequence number the sender expects for the path.
        next_sequence: u64,
    },
}

impl PathStatus {
    /// The frame type announcing this status.
    pub fn frame_type(self) -> u64 {
        match self {
            PathStatus::Available => ft::PATH_STATUS_AVAILABLE,
            PathStatus::Backup => ft::PATH_STATUS_BACKUP,
        }
    }
}

/// Error codes of PATH_ABANDON (draft-ietf-quic-multipath-21 §4.2.1), next to
/// [`TransportErrorCode::NO_ERROR`].
pub mod path_error {
    use crate::error::TransportErrorCode;
    /// The application asked for the path to be abandoned.
    pub const APPLICATION_ABANDON_PATH: TransportErrorCode = TransportErrorCode(0x3e);
    /// The transport cannot allocate resources for the path.
    pub const PATH_RESOURCE_LIMIT_REACHED: TransportErrorCode = TransportErrorCode(0x3e75);
    /// The interface is unstable or the path performs poorly.
    pub const PATH_UNSTABLE_OR_POOR: TransportErrorCode = TransportErrorCode(0x3e76);
    /// No connection ID is available for the path.
    pub const NO_CID_AVAILABLE_FOR_PATH: TransportErrorCode = TransportErrorCode(0x3e77);
}

/// ECN counts carried in an ACK frame of type 0x03 (RFC 9000 §19.3.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EcnCounts {
    /// Packets received with the ECT(0) codepoint.
    pub ect0: u64,
    /// Packets received with the ECT(1) codepoint.
    pub ect1: u64,
    /// Packets received with the CE codepoint.
    pub ce: u64,
}

impl EcnCounts {
    fn encoded_len(&self) -> usize {
        size_of_varint(self.ect0) + size_of_varint(self.ect1) + size_of_varint(self.ce)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_var(self.ect0);
        buf.put_var(self.ect1);
        buf.put_var(self.ce);
    }
}

/// An ACK frame (RFC 9000 §19.3).
///
/// Invariant (upheld by the decoder and [`Ack::from_ranges`]): `ranges` is non-empty,
/// in descending order, `ranges[0].end == largest + 1`, and consecutive ranges are
/// separated by at least one unacknowledged packet number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Largest Acknowledged.
    pub largest: u64,
    /// ACK Delay as encoded (scale by the peer's `ack_delay_exponent`, RFC 9000 §19.3).
    pub delay: u64,
    /// Acknowledged packet numbers as half-open ranges, newest first.
    pub ranges: Vec<Range<u64>>,
    /// ECN counts (frame type 0x03) if present.
    pub ecn: Option<EcnCounts>,
}

impl Ack {
    /// Build an ACK covering every range of `received` (which must be non-empty).
    pub fn from_ranges(delay: u64, received: &RangeSet, ecn: Option<EcnCounts>) -> Option<Ack> {
        let largest = received.max()?;
        Some(Ack {
            largest,
            delay,
            ranges: received.iter().rev().collect(),
            ecn,
        })
    }

    /// The acknowledged ranges, newest (largest) first; `.rev()` gives them ascending.
    pub fn iter_ranges(&self) -> impl DoubleEndedIterator<Item = Range<u64>> + '_ {
        self.ranges.iter().cloned()
    }

    /// The acknowledged packet numbers as a [`RangeSet`].
    pub fn to_range_set(&self) -> RangeSet {
        self.ranges.iter().cloned().collect()
    }

    fn ty(&self) -> u64 {
        if self.ecn.is_some() {
            ft::ACK_ECN
        } else {
            ft::ACK
        }
    }

    /// The (gap, length) fields following the first range, in wire order.
    fn range_fields(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.windows(2).map(|w| {
            // Gap: unacknowledged packets between the two ranges, minus one;
            // ACK Range Length: packets in the range, minus one (§19.3.1).
            let (prev, r) = (&w[0], &w[1]);
            (
                prev.start.saturating_sub(r.end).saturating_sub(1),
                r.end.saturating_sub(r.start).saturating_sub(1),
            )
        })
    }

    fn first_range(&self) -> u64 {
        self.ranges
            .first()
            .map_or(0, |r| self.largest.saturating_sub(r.start))
    }

    /// Size of the fields after the frame type (shared by ACK and PATH_ACK).
    fn body_len(&self) -> usize {
        size_of_varint(self.largest)
            + size_of_varint(self.delay)
            + size_of_varint(self.ranges.len().saturating_sub(1) as u64)
            + size_of_varint(self.first_range())
            + self
                .range_fields()
                .map(|(g, l)| size_of_varint(g) + size_of_varint(l))
                .sum::<usize>()
            + self.ecn.as_ref().map_or(0, EcnCounts::encoded_len)
    }

    fn encoded_len(&self) -> usize {
        1 + self.body_len()
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(self.ty() as u8);
        self.encode_body(buf);
    }

    /// The fields after the frame type (shared by ACK and PATH_ACK).
    fn encode_body<B: BufMut>(&self, buf: &mut B) {
        debug_assert!(self
            .ranges
            .first()
            .is_some_and(|r| r.end == self.largest + 1));
        buf.put_var(self.largest);
        buf.put_var(self.delay);
        buf.put_var(self.ranges.len().saturating_sub(1) as u64);
        buf.put_var(self.first_range());
        for (gap, len) in self.range_fields() {
            buf.put_var(gap);
            buf.put_var(len);
        }
        if let Some(ecn) = &self.ecn {
            ecn.encode(buf);
        }
    }

    /// Encode an ACK frame for the packet numbers in `received`, newest ranges first,
    /// dropping the oldest ranges so that the frame takes at most `max_size` bytes.
    ///
    /// Returns the number of bytes written: 0 (and nothing written) when `received` is
    /// empty or not even the newest range fits. The frame type is 0x03 when `ecn` is
    /// given, 0x02 otherwise. `delay` is the already-scaled ACK Delay field value.
    pub fn encode_from_ranges<B: BufMut>(
        delay: u64,
        received: &RangeSet,
        ecn: Option<&EcnCounts>,
        max_size: usize,
        buf: &mut B,
    ) -> usize {
        Self::encode_from_descending(delay, received.iter().rev(), ecn, max_size, buf)
    }

    /// Like [`encode_from_ranges`](Self::encode_from_ranges), from disjoint ranges given
    /// largest first (as an ACK tracker keeps them): no intermediate set is built.
    pub fn encode_from_descending<B: BufMut>(
        delay: u64,
        descending: impl Iterator<Item = Range<u64>> + Clone,
        ecn: Option<&EcnCounts>,
        max_size: usize,
        buf: &mut B,
    ) -> usize {
        Self::encode_descending(None, delay, descending, ecn, max_size, buf)
    }

    /// Like [`encode_from_descending`](Self::encode_from_descending) but writes a
    /// PATH_ACK (type 0x3e, or 0x3f with `ecn`) for the space of `path_id`
    /// (draft-ietf-quic-multipath-21 §4.1).
    pub fn encode_path_ack_from_descending<B: BufMut>(
        path_id: PathId,
        delay: u64,
        descending: impl Iterator<Item = Range<u64>> + Clone,
        ecn: Option<&EcnCounts>,
        max_size: usize,
        buf: &mut B,
    ) -> usize {
        Self::encode_descending(Some(path_id), delay, descending, ecn, max_size, buf)
    }

    fn encode_descending<B: BufMut>(
        path_id: Option<PathId>,
        delay: u64,
        descending: impl Iterator<Item = Range<u64>> + Clone,
        ecn: Option<&EcnCounts>,
        max_size: usize,
        buf: &mut B,
    ) -> usize {
        let Some(first) = descending.clone().next() else {
            return 0;
        };
        if first.start >= first.end {
            return 0;
        }
        let largest = first.end - 1;
        let first_range = largest - first.start;
        // Everything except the ACK Range Count field and the additional ranges.
        let base = 1
            + path_id.map_or(0, |p| size_of_varint(u64::from(p.0)))
            + size_of_varint(largest)
            + size_of_varint(delay)
            + size_of_varint(first_range)
            + ecn.map_or(0, EcnCounts::encoded_len);
        let fields = |prev_start: u64, r: &Range<u64>| {
            (
                prev_start.saturating_sub(r.end).saturating_sub(1),
                r.end.saturating_sub(r.start).saturating_sub(1),
            )
        };
        // Greedily take older ranges while they fit. The size grows monotonically with
        // the count (the Range Count varint can only grow), so greedy is optimal.
        let mut count = 0usize;
        let mut ranges_len = 0usize;
        let mut prev_start = first.start;
        for r in descending.clone().skip(1) {
            let (g, l) = fields(prev_start, &r);
            let add = size_of_varint(g) + size_of_varint(l);
            let total = base + size_of_varint(count as u64 + 1) + ranges_len + add;
            if total > max_size {
                break;
            }
            count += 1;
            ranges_len += add;
            prev_start = r.start;
        }
        let total = base + size_of_varint(count as u64) + ranges_len;
        if total > max_size {
            return 0;
        }
        // All four types fit in one byte.
        let ty = match (path_id, ecn.is_some()) {
            (None, false) => ft::ACK,
            (None, true) => ft::ACK_ECN,
            (Some(_), false) => ft::PATH_ACK,
            (Some(_), true) => ft::PATH_ACK_ECN,
        };
        buf.put_u8(ty as u8);
        if let Some(p) = path_id {
            buf.put_var(u64::from(p.0));
        }
        buf.put_var(largest);
        buf.put_var(delay);
        buf.put_var(count as u64);
        buf.put_var(first_range);
        let mut prev_start = first.start;
        for r in descending.skip(1).take(count) {
            let (g, l) = fields(prev_start, &r);
            buf.put_var(g);
            buf.put_var(l);
            prev_start = r.start;
        }
        if let Some(ecn) = ecn {
            ecn.encode(buf);
        }
        total
    }

    fn decode(ty: u64, r: &mut Bytes) -> Result<Ack, FrameError> {
        let e = |reason| FrameError {
            frame_type: Some(ty),
            reason,
            protocol_violation: false,
        };
        let largest = r.get_var().map_err(|_| e("truncated ACK"))?;
        let delay = r.get_var().map_err(|_| e("truncated ACK"))?;
        let count = r.get_var().map_err(|_| e("truncated ACK"))?;
        let first = r.get_var().map_err(|_| e("truncated ACK"))?;
        // §19.3.1: smallest = largest - first_range; negative is FRAME_ENCODING_ERROR.
        let mut smallest = largest
            .checked_sub(first)
            .ok_or(e("ACK first range exceeds largest acknowledged"))?;
        // Each additional range takes at least two bytes: bound the allocation by the
        // remaining payload, never by the untrusted count.
        let cap = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(r.remaining() / 2)
            .saturating_add(1);
        let mut ranges = Vec::with_capacity(cap);
        ranges.push(smallest..largest + 1);
        for _ in 0..count {
            let gap = r.get_var().map_err(|_| e("truncated ACK range"))?;
            let len = r.get_var().map_err(|_| e("truncated ACK range"))?;
            // §19.3.1: largest = previous smallest - gap - 2; smallest = largest - len.
            let hi = smallest
                .checked_sub(gap)
                .and_then(|x| x.checked_sub(2))
                .ok_or(e("ACK gap underflows packet number"))?;
            let lo = hi
                .checked_sub(len)
                .ok_or(e("ACK range underflows packet number"))?;
            ranges.push(lo..hi + 1);
            smallest = lo;
        }
        let ecn = if ty == ft::ACK_ECN || ty == ft::PATH_ACK_ECN {
            Some(EcnCounts {
                ect0: r.get_var().map_err(|_| e("truncated ECN counts"))?,
                ect1: r.get_var().map_err(|_| e("truncated ECN counts"))?,
                ce: r.get_var().map_err(|_| e("truncated ECN counts"))?,
            })
        } else {
            None
        };
        Ok(Ack {
            largest,
            delay,
            ranges,
            ecn,
        })
    }
}

/// RESET_STREAM (RFC 9000 §19.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetStream {
    /// The stream being reset.
    pub id: StreamId,
    /// Application protocol error code.
    pub error_code: VarInt,
    /// Final size of the stream in bytes.
    pub final_size: u64,
}

/// STOP_SENDING (RFC 9000 §19.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSending {
    /// The stream whose sending part should stop.
    pub id: StreamId,
    /// Application protocol error code.
    pub error_code: VarInt,
}

/// CRYPTO (RFC 9000 §19.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// Byte offset in the crypto stream of this epoch.
    pub offset: u64,
    /// Handshake data.
    pub data: Bytes,
}

impl Crypto {
    /// Size of a CRYPTO frame header (type, offset, length) for `len` bytes of data.
    pub fn header_len(offset: u64, len: usize) -> usize {
        1 + size_of_varint(offset) + size_of_varint(len as u64)
    }

    /// Write a CRYPTO frame header; the caller writes the `len` data bytes after it.
    pub fn encode_header<B: BufMut>(offset: u64, len: usize, buf: &mut B) {
        buf.put_u8(ft::CRYPTO as u8);
        buf.put_var(offset);
        buf.put_var(len as u64);
    }

    /// The most data bytes a CRYPTO frame at `offset` can carry within `space` bytes
    /// (header included), or `None` if not even one byte fits.
    pub fn max_data_len(offset: u64, space: usize) -> Option<usize> {
        let fixed = 1 + size_of_varint(offset);
        max_with_length(space.checked_sub(fixed)?)
    }

    fn encoded_len(&self) -> usize {
        Self::header_len(self.offset, self.data.len()) + self.data.len()
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        Self::encode_header(self.offset, self.data.len(), buf);
        buf.put_slice(&self.data);
    }
}

/// The largest `n ≥ 1` with `size_of_varint(n) + n <= space`, if any.
///
/// For each varint size `s`, `min(space - s, largest value encodable in s bytes)` fits;
/// the true optimum has some size `s*` and is bounded by that size's candidate, so the
/// largest candidate is exact.
fn max_with_length(space: usize) -> Option<usize> {
    [
        (1usize, (1u64 << 6) - 1),
        (2, (1 << 14) - 1),
        (4, (1 << 30) - 1),
        (8, (1 << 62) - 1),
    ]
    .into_iter()
    .filter_map(|(s, cap)| {
        let n = space.checked_sub(s)?;
        Some(n.min(usize::try_from(cap).unwrap_or(usize::MAX)))
    })
    .max()
    .filter(|&n| n > 0)
}

/// STREAM (RFC 9000 §19.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The stream.
    pub id: StreamId,
    /// Offset of `data` in the stream.
    pub offset: u64,
    /// Whether this frame carries the end of the stream.
    pub fin: bool,
    /// Stream data.
    pub data: Bytes,
}

impl Stream {
    /// Size of a STREAM frame header: type byte, stream id, offset (omitted when 0) and,
    /// when `with_length`, the Length field for `data_len` bytes.
    pub fn header_len(id: StreamId, offset: u64, data_len: usize, with_length: bool) -> usize {
        1 + size_of_varint(id.0)
            + if offset != 0 {
                size_of_varint(offset)
            } else {
                0
            }
            + if with_length {
                size_of_varint(data_len as u64)
            } else {
                0
            }
    }

    /// The type byte [`Stream::encode_header`] writes for these parameters.
    pub fn frame_type(offset: u64, fin: bool, with_length: bool) -> u64 {
        let mut ty = ft::STREAM;
        if offset != 0 {
            ty |= ft::STREAM_OFF;
        }
        if with_length {
            ty |= ft::STREAM_LEN;
        }
        if fin {
            ty |= ft::STREAM_FIN;
        }
        ty
    }

    /// Write a STREAM frame header; the caller writes the `data_len` bytes after it.
    ///
    /// Without a Length field the data runs to the end of the packet, so such a frame
    /// must be the last one in the packet.
    pub fn encode_header<B: BufMut>(
        id: StreamId,
        offset: u64,
        data_len: usize,
        fin: bool,
        with_length: bool,
        buf: &mut B,
    ) {
        buf.put_u8(Self::frame_type(offset, fin, with_length) as u8);
        buf.put_var(id.0);
        if offset != 0 {
            buf.put_var(offset);
        }
        if with_length {
            buf.put_var(data_len as u64);
        }
    }

    /// The most data bytes a STREAM frame for `id` at `offset` can carry within `space`
    /// bytes (header included), or `None` if not even the header plus one byte fits.
    /// A zero-length frame (e.g. a bare FIN) needs [`Stream::header_len`] with 0 bytes.
    pub fn max_data_len(
        id: StreamId,
        offset: u64,
        space: usize,
        with_length: bool,
    ) -> Option<usize> {
        let fixed = Self::header_len(id, offset, 0, false);
        let rest = space.checked_sub(fixed)?;
        if with_length {
            max_with_length(rest)
        } else {
            (rest > 0).then_some(rest)
        }
    }

    /// Size of this frame when encoded with or without a Length field.
    pub fn encoded_len(&self, with_length: bool) -> usize {
        Self::header_len(self.id, self.offset, self.data.len(), with_length) + self.data.len()
    }

    /// Encode with or without a Length field.
    pub fn encode<B: BufMut>(&self, with_length: bool, buf: &mut B) {
        Self::encode_header(
            self.id,
            self.offset,
            self.data.len(),
            self.fin,
            with_length,
            buf,
        );
        buf.put_slice(&self.data);
    }
}

/// NEW_CONNECTION_ID (RFC 9000 §19.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewConnectionId {
    /// Sequence number of this CID.
    pub sequence: u64,
    /// CIDs with lower sequence numbers must be retired.
    pub retire_prior_to: u64,
    /// The connection ID (1..=20 bytes on the wire).
    pub id: ConnectionId,
    /// Stateless reset token for this CID.
    pub reset_token: ResetToken,
}

/// CONNECTION_CLOSE with a transport error (RFC 9000 §19.19, type 0x1c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionClose {
    /// Transport error code.
    pub error_code: TransportErrorCode,
    /// Type of the frame that triggered the error (0 on the wire when unknown).
    ///
    /// Decoding maps a wire value of 0 to `None`: frame type 0 is PADDING, which cannot
    /// trigger an error, so nothing is lost.
    pub frame_type: Option<u64>,
    /// Reason phrase (should be UTF-8; not validated).
    pub reason: Bytes,
}

impl From<TransportError> for ConnectionClose {
    fn from(e: TransportError) -> Self {
        ConnectionClose {
            error_code: e.code,
            frame_type: e.frame,
            reason: Bytes::from(e.reason.into_bytes()),
        }
    }
}

/// CONNECTION_CLOSE with an application error (RFC 9000 §19.19, type 0x1d).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationClose {
    /// Application protocol error code.
    pub error_code: VarInt,
    /// Reason phrase (should be UTF-8; not validated).
    pub reason: Bytes,
}

/// DATAGRAM (RFC 9221 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Application payload.
    pub data: Bytes,
}

impl Datagram {
    /// Encoded size of a DATAGRAM frame carrying `len` bytes.
    pub fn size(len: usize, with_length: bool) -> usize {
        1 + if with_length {
            size_of_varint(len as u64)
        } else {
            0
        } + len
    }

    /// Encode as type 0x31 (with Length) or 0x30 (data runs to the end of the packet).
    pub fn encode<B: BufMut>(&self, with_length: bool, buf: &mut B) {
        if with_length {
            buf.put_u8(ft::DATAGRAM_LEN as u8);
            buf.put_var(self.data.len() as u64);
        } else {
            buf.put_u8(ft::DATAGRAM as u8);
        }
        buf.put_slice(&self.data);
    }
}

impl Frame {
    /// The frame type [`Frame::encode`] writes (STREAM always with the LEN bit, DATAGRAM
    /// as 0x31).
    pub fn ty(&self) -> u64 {
        use Frame::*;
        match self {
            Padding(_) => ft::PADDING,
            Ping => ft::PING,
            Ack(a) => a.ty(),
            ResetStream(_) => ft::RESET_STREAM,
            StopSending(_) => ft::STOP_SENDING,
            Crypto(_) => ft::CRYPTO,
            NewToken(_) => ft::NEW_TOKEN,
            Stream(s) => self::Stream::frame_type(s.offset, s.fin, true),
            MaxData(_) => ft::MAX_DATA,
            MaxStreamData { .. } => ft::MAX_STREAM_DATA,
            MaxStreams { dir: Dir::Bi, .. } => ft::MAX_STREAMS_BIDI,
            MaxStreams { dir: Dir::Uni, .. } => ft::MAX_STREAMS_UNI,
            DataBlocked { .. } => ft::DATA_BLOCKED,
            StreamDataBlocked { .. } => ft::STREAM_DATA_BLOCKED,
            StreamsBlocked { dir: Dir::Bi, .. } => ft::STREAMS_BLOCKED_BIDI,
            StreamsBlocked { dir: Dir::Uni, .. } => ft::STREAMS_BLOCKED_UNI,
            NewConnectionId(_) => ft::NEW_CONNECTION_ID,
            RetireConnectionId { .. } => ft::RETIRE_CONNECTION_ID,
            PathChallenge(_) => ft::PATH_CHALLENGE,
            PathResponse(_) => ft::PATH_RESPONSE,
            ConnectionClose(_) => ft::CONNECTION_CLOSE,
            ApplicationClose(_) => ft::APPLICATION_CLOSE,
            HandshakeDone => ft::HANDSHAKE_DONE,
            Datagram(_) => ft::DATAGRAM_LEN,
            PathAck { ack, .. } => {
                if ack.ecn.is_some() {
                    ft::PATH_ACK_ECN
                } else {
                    ft::PATH_ACK
                }
            }
            PathAbandon { .. } => ft::PATH_ABANDON,
            PathStatus { status, .. } => status.frame_type(),
            PathNewConnectionId { .. } => ft::PATH_NEW_CONNECTION_ID,
            PathRetireConnectionId { .. } => ft::PATH_RETIRE_CONNECTION_ID,
            MaxPathId(_) => ft::MAX_PATH_ID,
            PathsBlocked(_) => ft::PATHS_BLOCKED,
            PathCidsBlocked { .. } => ft::PATH_CIDS_BLOCKED,
        }
    }

    /// Whether this is a frame of the multipath extension, which a connection that did
    /// not negotiate it treats as an unknown frame type.
    pub fn is_multipath(&self) -> bool {
        ft::is_multipath(self.ty())
    }

    /// Whether receiving this frame obliges the peer to acknowledge the packet
    /// (RFC 9000 §13.2: all frames except ACK, PADDING and CONNECTION_CLOSE; PATH_ACK
    /// is not ack-eliciting either, draft-ietf-quic-multipath-21 §4.1).
    pub fn is_ack_eliciting(&self) -> bool {
        !matches!(
            self,
            Frame::Padding(_)
                | Frame::Ack(_)
                | Frame::PathAck { .. }
                | Frame::ConnectionClose(_)
                | Frame::ApplicationClose(_)
        )
    }

    /// Whether this frame may be carried in a packet of `kind` (RFC 9000 §12.4 Table 3).
    pub fn allowed_in(&self, kind: PacketKind) -> bool {
        kind.allows(self.ty())
    }

    /// Exact number of bytes [`Frame::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        use Frame::*;
        let v = size_of_varint;
        match self {
            Padding(n) => *n,
            Ping | HandshakeDone => 1,
            Ack(a) => a.encoded_len(),
            ResetStream(r) => 1 + v(r.id.0) + r.error_code.size() + v(r.final_size),
            StopSending(s) => 1 + v(s.id.0) + s.error_code.size(),
            Crypto(c) => c.encoded_len(),
            NewToken(t) => 1 + v(t.len() as u64) + t.len(),
            Stream(s) => s.encoded_len(true),
            MaxData(x) => 1 + x.size(),
            MaxStreamData { id, offset } | StreamDataBlocked { id, offset } => {
                1 + v(id.0) + v(*offset)
            }
            MaxStreams { count: x, .. } | StreamsBlocked { limit: x, .. } => 1 + v(*x),
            DataBlocked { offset } => 1 + v(*offset),
            NewConnectionId(n) => {
                1 + v(n.sequence) + v(n.retire_prior_to) + 1 + n.id.len() + RESET_TOKEN_SIZE
            }
            RetireConnectionId { sequence } => 1 + v(*sequence),
            PathChallenge(_) | PathResponse(_) => 9,
            ConnectionClose(c) => {
                1 + v(c.error_code.0)
                    + v(c.frame_type.unwrap_or(0))
                    + v(c.reason.len() as u64)
                    + c.reason.len()
            }
            ApplicationClose(c) => {
                1 + c.error_code.size() + v(c.reason.len() as u64) + c.reason.len()
            }
            Datagram(d) => self::Datagram::size(d.data.len(), true),
            PathAck { path_id, ack } => 1 + v(u64::from(path_id.0)) + ack.body_len(),
            PathAbandon {
                path_id,
                error_code,
            } => 2 + v(u64::from(path_id.0)) + v(error_code.0),
            PathStatus {
                path_id, sequence, ..
            } => 2 + v(u64::from(path_id.0)) + v(*sequence),
            PathNewConnectionId { path_id, cid: n } => {
                2 + v(u64::from(path_id.0))
                    + v(n.sequence)
                    + v(n.retire_prior_to)
                    + 1
                    + n.id.len()
                    + RESET_TOKEN_SIZE
            }
            PathRetireConnectionId { path_id, sequence }
            | PathCidsBlocked {
                path_id,
                next_sequence: sequence,
            } => 2 + v(u64::from(path_id.0)) + v(*sequence),
            MaxPathId(p) | PathsBlocked(p) => 2 + v(u64::from(p.0)),
        }
    }

    /// Encode this frame. Integer fields must be below 2^62 (debug-asserted; clamped in
    /// release builds), which every decoded frame satisfies.
    pub fn encode<B: BufMut>(&self, buf: &mut B) {
        use Frame::*;
        match self {
            Padding(n) => buf.put_bytes(0, *n),
            Ack(a) => a.encode(buf),
            Crypto(c) => c.encode(buf),
            Stream(s) => s.encode(true, buf),
            Datagram(d) => d.encode(true, buf),
            PathAck { path_id, ack } => {
                buf.put_u8(self.ty() as u8);
                buf.put_var(u64::from(path_id.0));
                ack.encode_body(buf);
            }
            PathAbandon {
                path_id,
                error_code,
            } => {
                buf.put_var(ft::PATH_ABANDON);
                buf.put_var(u64::from(path_id.0));
                buf.put_var(error_code.0);
            }
            PathStatus {
                path_id,
                sequence,
                status,
            } => {
                buf.put_var(status.frame_type());
                buf.put_var(u64::from(path_id.0));
                buf.put_var(*sequence);
            }
            PathNewConnectionId { path_id, cid } => {
                buf.put_var(ft::PATH_NEW_CONNECTION_ID);
                buf.put_var(u64::from(path_id.0));
                encode_new_cid(cid, buf);
            }
            PathRetireConnectionId { path_id, sequence } => {
                buf.put_var(ft::PATH_RETIRE_CONNECTION_ID);
                buf.put_var(u64::from(path_id.0));
                buf.put_var(*sequence);
            }
            PathCidsBlocked {
                path_id,
                next_sequence,
            } => {
                buf.put_var(ft::PATH_CIDS_BLOCKED);
                buf.put_var(u64::from(path_id.0));
                buf.put_var(*next_sequence);
            }
            MaxPathId(p) | PathsBlocked(p) => {
                buf.put_var(self.ty());
                buf.put_var(u64::from(p.0));
            }
            other => {
                buf.put_u8(other.ty() as u8);
                match other {
                    Ping | HandshakeDone => {}
                    ResetStream(r) => {
                        buf.put_var(r.id.0);
                        r.error_code.encode(buf);
                        buf.put_var(r.final_size);
                    }
                    StopSending(s) => {
                        buf.put_var(s.id.0);
                        s.error_code.encode(buf);
                    }
                    NewToken(t) => {
                        buf.put_var(t.len() as u64);
                        buf.put_slice(t);
                    }
                    MaxData(x) => x.encode(buf),
                    MaxStreamData { id, offset } | StreamDataBlocked { id, offset } => {
                        buf.put_var(id.0);
                        buf.put_var(*offset);
                    }
                    MaxStreams { count: x, .. } | StreamsBlocked { limit: x, .. } => {
                        buf.put_var(*x)
                    }
                    DataBlocked { offset } => buf.put_var(*offset),
                    NewConnectionId(n) => encode_new_cid(n, buf),
                    RetireConnectionId { sequence } => buf.put_var(*sequence),
                    PathChallenge(d) | PathResponse(d) => buf.put_slice(d),
                    ConnectionClose(c) => {
                        buf.put_var(c.error_code.0);
                        buf.put_var(c.frame_type.unwrap_or(0));
                        buf.put_var(c.reason.len() as u64);
                        buf.put_slice(&c.reason);
                    }
                    ApplicationClose(c) => {
                        c.error_code.encode(buf);
                        buf.put_var(c.reason.len() as u64);
                        buf.put_slice(&c.reason);
                    }
                    // Handled by the outer match.
                    Padding(_)
                    | Ack(_)
                    | Crypto(_)
                    | Stream(_)
                    | Datagram(_)
                    | PathAck { .. }
                    | PathAbandon { .. }
                    | PathStatus { .. }
                    | PathNewConnectionId { .. }
                    | PathRetireConnectionId { .. }
                    | MaxPathId(_)
                    | PathsBlocked(_)
                    | PathCidsBlocked { .. } => {}
                }
            }
        }
    }
}

/// The fields of NEW_CONNECTION_ID after the type (also the tail of
/// PATH_NEW_CONNECTION_ID).
fn encode_new_cid<B: BufMut>(n: &NewConnectionId, buf: &mut B) {
    buf.put_var(n.sequence);
    buf.put_var(n.retire_prior_to);
    buf.put_u8(n.id.len() as u8);
    buf.put_slice(&n.id);
    buf.put_slice(&n.reset_token.0);
}

/// Decoder over a packet payload: yields each frame in order, stops after an error.
#[derive(Debug, Clone)]
pub struct Iter {
    bytes: Bytes,
    failed: bool,
}

impl Iter {
    /// Decode frames from a decrypted packet payload. STREAM, CRYPTO, DATAGRAM and
    /// token/reason fields in the yielded frames share `payload`'s allocation.
    pub fn new(payload: Bytes) -> Self {
        Iter {
            bytes: payload,
            failed: false,
        }
    }

    /// Bytes not yet decoded.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }
}

impl Iterator for Iter {
    type Item = Result<Frame, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.bytes.is_empty() {
            return None;
        }
        let res = decode_frame(&mut self.bytes);
        if res.is_err() {
            self.failed = true;
            self.bytes.clear();
        }
        Some(res)
    }
}

/// Read a varint length and convert it to `usize`.
fn get_len(r: &mut Bytes) -> Result<usize, UnexpectedEnd> {
    let n = r.get_var()?;
    usize::try_from(n).map_err(|_| UnexpectedEnd)
}

/// Read a length-prefixed byte string.
fn get_prefixed(r: &mut Bytes) -> Result<Bytes, UnexpectedEnd> {
    let n = get_len(r)?;
    r.get_bytes_checked(n)
}

fn get_array<const N: usize>(r: &mut Bytes) -> Result<[u8; N], UnexpectedEnd> {
    if r.remaining() < N {
        return Err(UnexpectedEnd);
    }
    let mut out = [0u8; N];
    r.copy_to_slice(&mut out);
    Ok(out)
}

/// Decode one frame from the front of `r`.
fn decode_frame(r: &mut Bytes) -> Result<Frame, FrameError> {
    let ty = r.get_var().map_err(|_| FrameError {
        frame_type: None,
        reason: "truncated frame type",
        protocol_violation: false,
    })?;
    let err = move |reason| FrameError {
        frame_type: Some(ty),
        reason,
        protocol_violation: false,
    };
    let trunc = move |_: UnexpectedEnd| err("frame truncated");
    // draft-ietf-quic-multipath-21 §4: a path ID is at most 2^32 - 1, so a larger one
    // exceeds every limit the receiver can have announced: PROTOCOL_VIOLATION.
    let path_id = move |r: &mut Bytes| -> Result<PathId, FrameError> {
        let v = r.get_var().map_err(trunc)?;
        PathId::from_wire(v).ok_or(FrameError {
            frame_type: Some(ty),
            reason: "path ID above 2^32-1",
            protocol_violation: true,
        })
    };
    let frame = match ty {
        ft::PADDING => {
            // §19.1: coalesce the run of PADDING bytes (the type byte already read).
            let run = r.iter().take_while(|&&b| b == 0).count();
            r.advance(run);
            Frame::Padding(run + 1)
        }
        ft::PING => Frame::Ping,
        ft::ACK | ft::ACK_ECN => Frame::Ack(Ack::decode(ty, r)?),
        ft::RESET_STREAM => Frame::ResetStream(ResetStream {
            id: StreamId(r.get_var().map_err(trunc)?),
            error_code: VarInt::decode(r).map_err(trunc)?,
            final_size: r.get_var().map_err(trunc)?,
        }),
        ft::STOP_SENDING => Frame::StopSending(StopSending {
            id: StreamId(r.get_var().map_err(trunc)?),
            error_code: VarInt::decode(r).map_err(trunc)?,
        }),
        ft::CRYPTO => {
            let offset = r.get_var().map_err(trunc)?;
            let data = get_prefixed(r).map_err(trunc)?;
            // §19.6: offset + length must not exceed 2^62 - 1.
            check_end(offset, data.len()).ok_or(err("CRYPTO data exceeds 2^62-1"))?;
            Frame::Crypto(Crypto { offset, data })
        }
        ft::NEW_TOKEN => {
            let token = get_prefixed(r).map_err(trunc)?;
            // §19.7: an empty token is a FRAME_ENCODING_ERROR.
            if token.is_empty() {
                return Err(err("empty NEW_TOKEN"));
            }
            Frame::NewToken(token)
        }
        ft::STREAM..=ft::STREAM_MAX => {
            let id = StreamId(r.get_var().map_err(trunc)?);
            let offset = if ty & ft::STREAM_OFF != 0 {
                r.get_var().map_err(trunc)?
            } else {
                0
            };
            let data = if ty & ft::STREAM_LEN != 0 {
                get_prefixed(r).map_err(trunc)?
            } else {
                // No Length: the data runs to the end of the packet (§19.8).
                std::mem::take(r)
            };
            // §19.8: offset + length must not exceed 2^62 - 1.
            check_end(offset, data.len()).ok_or(err("STREAM data exceeds 2^62-1"))?;
            Frame::Stream(Stream {
                id,
                offset,
                fin: ty & ft::STREAM_FIN != 0,
                data,
            })
        }
        ft::MAX_DATA => Frame::MaxData(VarInt::decode(r).map_err(trunc)?),
        ft::MAX_STREAM_DATA => Frame::MaxStreamData {
            id: StreamId(r.get_var().map_err(trunc)?),
            offset: r.get_var().map_err(trunc)?,
        },
        ft::MAX_STREAMS_BIDI | ft::MAX_STREAMS_UNI => {
            let count = r.get_var().map_err(trunc)?;
            // §19.11: a count above 2^60 is a FRAME_ENCODING_ERROR.
            if count > MAX_STREAM_COUNT {
                return Err(err("MAX_STREAMS above 2^60"));
            }
            Frame::MaxStreams {
                dir: if ty == ft::MAX_STREAMS_BIDI {
                    Dir::Bi
                } else {
                    Dir::Uni
                },
                count,
            }
        }
        ft::DATA_BLOCKED => Frame::DataBlocked {
            offset: r.get_var().map_err(trunc)?,
        },
        ft::STREAM_DATA_BLOCKED => Frame::StreamDataBlocked {
            id: StreamId(r.get_var().map_err(trunc)?),
            offset: r.get_var().map_err(trunc)?,
        },
        ft::STREAMS_BLOCKED_BIDI | ft::STREAMS_BLOCKED_UNI => {
            let limit = r.get_var().map_err(trunc)?;
            // §19.14: a limit above 2^60 is a FRAME_ENCODING_ERROR.
            if limit > MAX_STREAM_COUNT {
                return Err(err("STREAMS_BLOCKED above 2^60"));
            }
            Frame::StreamsBlocked {
                dir: if ty == ft::STREAMS_BLOCKED_BIDI {
                    Dir::Bi
                } else {
                    Dir::Uni
                },
                limit,
            }
        }
        ft::NEW_CONNECTION_ID => Frame::NewConnectionId(decode_new_cid(r, err)?),
        ft::RETIRE_CONNECTION_ID => Frame::RetireConnectionId {
            sequence: r.get_var().map_err(trunc)?,
        },
        ft::PATH_CHALLENGE => Frame::PathChallenge(get_array(r).map_err(trunc)?),
        ft::PATH_RESPONSE => Frame::PathResponse(get_array(r).map_err(trunc)?),
        ft::CONNECTION_CLOSE => {
            let error_code = TransportErrorCode(r.get_var().map_err(trunc)?);
            let frame_type = r.get_var().map_err(trunc)?;
            let reason = get_prefixed(r).map_err(trunc)?;
            Frame::ConnectionClose(ConnectionClose {
                error_code,
                frame_type: (frame_type != 0).then_some(frame_type),
                reason,
            })
        }
        ft::APPLICATION_CLOSE => Frame::ApplicationClose(ApplicationClose {
            error_code: VarInt::decode(r).map_err(trunc)?,
            reason: get_prefixed(r).map_err(trunc)?,
        }),
        ft::HANDSHAKE_DONE => Frame::HandshakeDone,
        ft::DATAGRAM => Frame::Datagram(Datagram {
            data: std::mem::take(r),
        }),
        ft::DATAGRAM_LEN => Frame::Datagram(Datagram {
            data: get_prefixed(r).map_err(trunc)?,
        }),
        ft::PATH_ACK | ft::PATH_ACK_ECN => Frame::PathAck {
            path_id: path_id(r)?,
            ack: Ack::decode(ty, r)?,
        },
        ft::PATH_ABANDON => Frame::PathAbandon {
            path_id: path_id(r)?,
            error_code: TransportErrorCode(r.get_var().map_err(trunc)?),
        },
        ft::PATH_STATUS_BACKUP | ft::PATH_STATUS_AVAILABLE => Frame::PathStatus {
            path_id: path_id(r)?,
            sequence: r.get_var().map_err(trunc)?,
            status: if ty == ft::PATH_STATUS_BACKUP {
                PathStatus::Backup
            } else {
                PathStatus::Available
            },
        },
        ft::PATH_NEW_CONNECTION_ID => Frame::PathNewConnectionId {
            path_id: path_id(r)?,
            cid: decode_new_cid(r, err)?,
        },
        ft::PATH_RETIRE_CONNECTION_ID => Frame::PathRetireConnectionId {
            path_id: path_id(r)?,
            sequence: r.get_var().map_err(trunc)?,
        },
        ft::MAX_PATH_ID => Frame::MaxPathId(path_id(r)?),
        ft::PATHS_BLOCKED => Frame::PathsBlocked(path_id(r)?),
        ft::PATH_CIDS_BLOCKED => Frame::PathCidsBlocked {
            path_id: path_id(r)?,
            next_sequence: r.get_var().map_err(trunc)?,
        },
        // §12.4: an unknown frame type is a FRAME_ENCODING_ERROR.
        _ => return Err(err("unknown frame type")),
    };
    Ok(frame)
}

/// The fields of NEW_CONNECTION_ID after the type (RFC 9000 §19.15), also the tail of
/// PATH_NEW_CONNECTION_ID (draft-ietf-quic-multipath-21 §4.4).
fn decode_new_cid(
    r: &mut Bytes,
    err: impl Fn(&'static str) -> FrameError + Copy,
) -> Result<NewConnectionId, FrameError> {
    let trunc = move |_: UnexpectedEnd| err("frame truncated");
    let sequence = r.get_var().map_err(trunc)?;
    let retire_prior_to = r.get_var().map_err(trunc)?;
    // §19.15: Retire Prior To greater than Sequence Number is an encoding error.
    if retire_prior_to > sequence {
        return Err(err("retire_prior_to exceeds sequence number"));
    }
    let len = usize::from(r.get_u8_checked().map_err(trunc)?);
    // §19.15: a length below 1 or above 20 is an encoding error.
    if len == 0 || len > MAX_CID_SIZE {
        return Err(err("invalid connection ID length"));
    }
    let cid_bytes = r.get_bytes_checked(len).map_err(trunc)?;
    let id = ConnectionId::new(&cid_bytes).ok_or(err("invalid connection ID length"))?;
    let reset_token = ResetToken(get_array::<RESET_TOKEN_SIZE>(r).map_err(trunc)?);
    Ok(NewConnectionId {
        sequence,
        retire_prior_to,
        id,
        reset_token,
    })
}

/// `offset + len` if it stays within 2^62 - 1.
fn check_end(offset: u64, len: usize) -> Option<u64> {
    let end = offset.checked_add(u64::try_from(len).ok()?)?;
    (end <= MAX_OFFSET).then_some(end)
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // ACK ranges are a `Vec<Range<u64>>`
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: u64 = VarInt::MAX.into_inner();

    fn var() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..64,
            64u64..16384,
            16384u64..(1 << 30),
            (1u64 << 30)..(1 << 62)
        ]
    }

    fn varint() -> impl Strategy<Value = VarInt> {
        var().prop_map(VarInt::from_u64_clamped)
    }

    fn bytes(range: Range<usize>) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), range).prop_map(Bytes::from)
    }

    fn dir() -> impl Strategy<Value = Dir> {
        prop_oneof![Just(Dir::Bi), Just(Dir::Uni)]
    }

    fn ecn() -> impl Strategy<Value = Option<EcnCounts>> {
        proptest::option::of(
            (var(), var(), var()).prop_map(|(ect0, ect1, ce)| EcnCounts { ect0, ect1, ce }),
        )
    }

    fn ack() -> impl Strategy<Value = Ack> {
        (
            var(),
            var(),
            var(),
            proptest::collection::vec((0u64..1 << 16, 0u64..1 << 16), 0..20),
            ecn(),
        )
            .prop_map(|(largest, first, delay, pairs, ecn)| {
                let mut smallest = largest - first % (largest + 1);
                let mut ranges = Vec::from([smallest..largest + 1]);
                for (gap, len) in pairs {
                    let Some(hi) = smallest.checked_sub(gap + 2) else {
                        break;
                    };
                    let Some(lo) = hi.checked_sub(len) else { break };
                    ranges.push(lo..hi + 1);
                    smallest = lo;
                }
                Ack {
                    largest,
                    delay,
                    ranges,
                    ecn,
                }
            })
    }

    fn stream() -> impl Strategy<Value = Stream> {
        (var(), var(), any::<bool>(), bytes(0..64)).prop_map(|(id, offset, fin, data)| Stream {
            id: StreamId(id),
            offset: offset.min(MAX - data.len() as u64),
            fin,
            data,
        })
    }

    fn crypto() -> impl Strategy<Value = Crypto> {
        (var(), bytes(0..64)).prop_map(|(offset, data)| Crypto {
            offset: offset.min(MAX - data.len() as u64),
            data,
        })
    }

    fn ncid() -> impl Strategy<Value = NewConnectionId> {
        (
            var(),
            var(),
            proptest::collection::vec(any::<u8>(), 1..=20),
            any::<[u8; 16]>(),
        )
            .prop_map(|(sequence, rpt, cid, token)| NewConnectionId {
                sequence,
                retire_prior_to: rpt % (sequence + 1),
                id: ConnectionId::new(&cid).expect("≤ 20 bytes"),
                reset_token: ResetToken(token),
            })
    }

    fn frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (1usize..50).prop_map(Frame::Padding),
            Just(Frame::Ping),
            ack().prop_map(Frame::Ack),
            (var(), varint(), var()).prop_map(|(id, error_code, final_size)| {
                Frame::ResetStream(ResetStream {
                    id: StreamId(id),
                    error_code,
                    final_size,
                })
            }),
            (var(), varint()).prop_map(|(id, error_code)| Frame::StopSending(StopSending {
                id: StreamId(id),
                error_code
            })),
            crypto().prop_map(Frame::Crypto),
            bytes(1..64).prop_map(Frame::NewToken),
            stream().prop_map(Frame::Stream),
            varint().prop_map(Frame::MaxData),
            (var(), var()).prop_map(|(id, offset)| Frame::MaxStreamData {
                id: StreamId(id),
                offset
            }),
            (dir(), 0..=MAX_STREAM_COUNT).prop_map(|(dir, count)| Frame::MaxStreams { dir, count }),
            var().prop_map(|offset| Frame::DataBlocked { offset }),
            (var(), var()).prop_map(|(id, offset)| Frame::StreamDataBlocked {
                id: StreamId(id),
                offset
            }),
            (dir(), 0..=MAX_STREAM_COUNT)
                .prop_map(|(dir, limit)| Frame::StreamsBlocked { dir, limit }),
            ncid().prop_map(Frame::NewConnectionId),
            var().prop_map(|sequence| Frame::RetireConnectionId { sequence }),
            any::<[u8; 8]>().prop_map(Frame::PathChallenge),
            any::<[u8; 8]>().prop_map(Frame::PathResponse),
            (var(), proptest::option::of(1u64..MAX), bytes(0..40)).prop_map(
                |(code, frame_type, reason)| {
                    Frame::ConnectionClose(ConnectionClose {
                        error_code: TransportErrorCode(code),
                        frame_type,
                        reason,
                    })
                }
            ),
            (varint(), bytes(0..40)).prop_map(|(error_code, reason)| Frame::ApplicationClose(
                ApplicationClose { error_code, reason }
            )),
            Just(Frame::HandshakeDone),
            bytes(0..64).prop_map(|data| Frame::Datagram(Datagram { data })),
            multipath_frame(),
        ]
    }

    fn path_id() -> impl Strategy<Value = PathId> {
        prop_oneof![0u32..4, any::<u32>()].prop_map(PathId)
    }

    /// The frames of draft-ietf-quic-multipath-21 §4.
    fn multipath_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (path_id(), ack()).prop_map(|(path_id, ack)| Frame::PathAck { path_id, ack }),
            (path_id(), var()).prop_map(|(path_id, code)| Frame::PathAbandon {
                path_id,
                error_code: TransportErrorCode(code),
            }),
            (path_id(), var(), any::<bool>()).prop_map(|(path_id, sequence, backup)| {
                Frame::PathStatus {
                    path_id,
                    sequence,
                    status: if backup {
                        PathStatus::Backup
                    } else {
                        PathStatus::Available
                    },
                }
            }),
            (path_id(), ncid())
                .prop_map(|(path_id, cid)| Frame::PathNewConnectionId { path_id, cid }),
            (path_id(), var()).prop_map(|(path_id, sequence)| Frame::PathRetireConnectionId {
                path_id,
                sequence
            }),
            path_id().prop_map(Frame::MaxPathId),
            path_id().prop_map(Frame::PathsBlocked),
            (path_id(), var()).prop_map(|(path_id, next_sequence)| Frame::PathCidsBlocked {
                path_id,
                next_sequence
            }),
        ]
    }

    fn encode(frames: &[Frame]) -> Vec<u8> {
        let mut buf = Vec::new();
        for f in frames {
            f.encode(&mut buf);
        }
        buf
    }

    fn decode(bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
        Iter::new(Bytes::copy_from_slice(bytes)).collect()
    }

    /// Decode a payload expected to hold exactly one malformed frame.
    fn expect_err(bytes: &[u8], ty: Option<u64>) -> FrameError {
        let mut res = decode(bytes);
        let last = res.pop().expect("at least one result");
        assert!(res.iter().all(Result::is_ok), "{res:?}");
        let e = last.expect_err("should fail");
        assert_eq!(e.frame_type, ty, "{e}");
        let te = TransportError::from(e);
        assert_eq!(te.code, TransportErrorCode::FRAME_ENCODING_ERROR);
        assert_eq!(te.frame, ty);
        e
    }

    /// Merge consecutive PADDING frames, as the decoder does.
    fn coalesce(frames: Vec<Frame>) -> Vec<Frame> {
        let mut out: Vec<Frame> = Vec::new();
        for f in frames {
            if let (Some(Frame::Padding(n)), Frame::Padding(m)) = (out.last_mut(), &f) {
                *n += m;
                continue;
            }
            out.push(f);
        }
        out
    }

    proptest! {
        // Deterministic: a fixed seed, no regression files.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x9000_0019),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn roundtrip_every_variant(f in frame()) {
            let buf = encode(std::slice::from_ref(&f));
            prop_assert_eq!(buf.len(), f.encoded_len());
            let mut r: &[u8] = &buf;
            prop_assert_eq!(r.get_var().map_err(|_| ()), Ok(f.ty()));
            let out = decode(&buf);
            prop_assert_eq!(out, vec![Ok(f)]);
        }

        #[test]
        fn roundtrip_payload(frames in proptest::collection::vec(frame(), 1..12)) {
            let buf = encode(&frames);
            prop_assert_eq!(buf.len(), frames.iter().map(Frame::encoded_len).sum::<usize>());
            let out: Vec<Frame> = decode(&buf).into_iter().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(out, coalesce(frames));
        }

        #[test]
        fn last_frame_without_length(s in stream(), d in bytes(0..64), first in frame()) {
            // STREAM and DATAGRAM without Length run to the end of the payload.
            let mut buf = encode(std::slice::from_ref(&first));
            s.encode(false, &mut buf);
            let mut out = decode(&buf);
            prop_assert_eq!(out.pop(), Some(Ok(Frame::Stream(s.clone()))));
            prop_assert_eq!(buf.len(), first.encoded_len() + s.encoded_len(false));

            let mut buf = encode(std::slice::from_ref(&first));
            let dg = Datagram { data: d };
            dg.encode(false, &mut buf);
            prop_assert_eq!(buf.len(), first.encoded_len() + Datagram::size(dg.data.len(), false));
            let mut out = decode(&buf);
            prop_assert_eq!(out.pop(), Some(Ok(Frame::Datagram(dg))));
        }

        #[test]
        fn random_bytes_never_panic(
            first in 0u8..0x40,
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut v = vec![first];
            v.extend(rest);
            let out = decode(&v);
            // At most one error, and only as the last item.
            let errs = out.iter().filter(|r| r.is_err()).count();
            prop_assert!(errs <= 1);
            if errs == 1 {
                prop_assert!(out.last().is_some_and(Result::is_err));
            }
        }

        #[test]
        fn mutated_payloads_never_panic(
            frames in proptest::collection::vec(frame(), 1..6),
            muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut buf = encode(&frames);
            for (i, b) in muts {
                let len = buf.len();
                if let Some(x) = buf.get_mut(i % len) {
                    *x = b;
                }
            }
            let len = buf.len();
            let _ = decode(&buf);
            let _ = decode(&buf[..cut % (len + 1)]);
        }

        #[test]
        fn stream_header_helpers_exact(
            id in var(),
            offset in var(),
            len in 0usize..100_000,
            fin in any::<bool>(),
            with_length in any::<bool>(),
        ) {
            let id = StreamId(id);
            let mut buf = Vec::new();
            Stream::encode_header(id, offset, len, fin, with_length, &mut buf);
            prop_assert_eq!(buf.len(), Stream::header_len(id, offset, len, with_length));
            prop_assert_eq!(u64::from(buf[0]), Stream::frame_type(offset, fin, with_length));
            let mut buf = Vec::new();
            Crypto::encode_header(offset, len, &mut buf);
            prop_assert_eq!(buf.len(), Crypto::header_len(offset, len));
        }

        #[test]
        fn max_data_len_is_exact(
            id in var(),
            offset in var(),
            space in prop_oneof![0usize..200, 0usize..20_000, 0usize..2_000_000],
            with_length in any::<bool>(),
        ) {
            let id = StreamId(id);
            let total = |n: usize| Stream::header_len(id, offset, n, with_length) + n;
            match Stream::max_data_len(id, offset, space, with_length) {
                Some(n) => {
                    prop_assert!(n >= 1);
                    prop_assert!(total(n) <= space);
                    prop_assert!(total(n + 1) > space);
                }
                None => prop_assert!(total(1) > space),
            }
            let total = |n: usize| Crypto::header_len(offset, n) + n;
            match Crypto::max_data_len(offset, space) {
                Some(n) => {
                    prop_assert!(n >= 1 && total(n) <= space && total(n + 1) > space);
                }
                None => prop_assert!(total(1) > space),
            }
        }

        #[test]
        fn ack_from_range_set_truncates_oldest(
            ranges in proptest::collection::vec((0u64..1 << 20, 1u64..300), 1..80),
            high in prop_oneof![Just(0u64), (1u64 << 30)..(1 << 40)],
            delay in var(),
            ecn in ecn(),
            max_size in 0usize..200,
        ) {
            let set: RangeSet = ranges.iter().map(|&(s, l)| s + high..s + high + l).collect();
            let full = Ack::from_ranges(delay, &set, ecn).unwrap();
            let mut buf = Vec::new();
            let n = Ack::encode_from_ranges(delay, &set, ecn.as_ref(), max_size, &mut buf);
            prop_assert_eq!(n, buf.len());
            prop_assert!(n <= max_size);
            if n == 0 {
                let only_newest = Ack { ranges: full.ranges[..1].to_vec(), ..full.clone() };
                prop_assert!(only_newest.encoded_len() > max_size);
                return Ok(());
            }
            let out = decode(&buf);
            let Some(Ok(Frame::Ack(ack))) = out.into_iter().next() else {
                return Err(TestCaseError::fail("not an ACK"));
            };
            let k = ack.ranges.len();
            // The newest k ranges, unchanged.
            prop_assert_eq!(&ack.ranges[..], &full.ranges[..k]);
            prop_assert_eq!(ack.largest, set.max().unwrap());
            prop_assert_eq!(ack.ecn, ecn);
            prop_assert_eq!(ack.delay, delay);
            prop_assert_eq!(Frame::Ack(ack.clone()).encoded_len(), n);
            // Maximal: one more range would not fit.
            if k < full.ranges.len() {
                let more = Ack { ranges: full.ranges[..k + 1].to_vec(), ..full.clone() };
                prop_assert!(more.encoded_len() > max_size);
            }
            // Unbounded encoding equals Frame::encode of the full ACK.
            let mut all = Vec::new();
            Ack::encode_from_ranges(delay, &set, ecn.as_ref(), usize::MAX, &mut all);
            prop_assert_eq!(all, encode(&[Frame::Ack(full.clone())]));
            prop_assert_eq!(full.to_range_set(), set);
        }
    }

    #[test]
    fn padding_runs_coalesce() {
        let out = decode(&[0, 0, 0, 1, 0, 0, 0x1e, 0]);
        let out: Vec<Frame> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            out,
            vec![
                Frame::Padding(3),
                Frame::Ping,
                Frame::Padding(2),
                Frame::HandshakeDone,
                Frame::Padding(1)
            ]
        );
        let mut buf = Vec::new();
        Frame::Padding(0).encode(&mut buf);
        assert!(buf.is_empty());
        assert_eq!(Frame::Padding(0).encoded_len(), 0);
    }

    #[test]
    fn empty_payload_yields_nothing() {
        assert!(decode(&[]).is_empty());
    }

    #[test]
    fn non_minimal_frame_type_accepted() {
        // 0x4001 is a two-byte encoding of PING (RFC 9000 §12.4 "MAY" reject; we accept).
        assert_eq!(decode(&[0x40, 0x01]), vec![Ok(Frame::Ping)]);
    }

    #[test]
    fn malformed_frames() {
        use hex_literal::hex;
        const MAX8: [u8; 8] = hex!("ffffffffffffffff"); // 2^62 - 1

        // Unknown types (one- and two-byte).
        expect_err(&[0x1f], Some(0x1f));
        expect_err(&[0x01, 0x40, 0x21], Some(0x21));
        // Truncated frame type.
        expect_err(&[0x40], None);

        // STREAM offset + length > 2^62 - 1 (§19.8), with and without Length.
        let mut b = vec![0x0e, 0x00];
        b.extend(MAX8);
        b.extend([0x01, 0xaa]);
        expect_err(&b, Some(0x0e));
        let mut b = vec![0x0c, 0x00];
        b.extend(MAX8);
        b.push(0xaa);
        expect_err(&b, Some(0x0c));
        // ... but exactly 2^62 - 1 with no data is fine.
        let mut b = vec![0x0d, 0x00];
        b.extend(MAX8);
        assert!(decode(&b)[0].is_ok());
        // STREAM length beyond the payload.
        expect_err(&[0x0a, 0x04, 0x05, 1, 2, 3], Some(0x0a));

        // CRYPTO offset + length > 2^62 - 1 (§19.6); length beyond payload.
        let mut b = vec![0x06];
        b.extend(MAX8);
        b.extend([0x01, 0xaa]);
        expect_err(&b, Some(0x06));
        expect_err(&[0x06, 0x00, 0x0a, 1, 2], Some(0x06));

        // NEW_TOKEN: empty token, and token longer than payload.
        expect_err(&[0x07, 0x00], Some(0x07));
        expect_err(&[0x07, 0x05, 1], Some(0x07));

        // MAX_STREAMS / STREAMS_BLOCKED above 2^60 (§19.11, §19.14).
        let over = hex!("d000000000000001"); // 2^60 + 1
        let exact = hex!("d000000000000000"); // 2^60
        for ty in [0x12u8, 0x13, 0x16, 0x17] {
            let mut b = vec![ty];
            b.extend(over);
            expect_err(&b, Some(u64::from(ty)));
            let mut b = vec![ty];
            b.extend(exact);
            assert!(decode(&b)[0].is_ok(), "2^60 is allowed for {ty:#x}");
        }

        // NEW_CONNECTION_ID: length 0, length 21, retire_prior_to > sequence, short token.
        let token = [0x11u8; 16];
        let mut b = vec![0x18, 0x01, 0x00, 0x00];
        b.extend(token);
        expect_err(&b, Some(0x18));
        let mut b = vec![0x18, 0x01, 0x00, 21];
        b.extend([0u8; 21]);
        b.extend(token);
        expect_err(&b, Some(0x18));
        let mut b = vec![0x18, 0x01, 0x02, 0x04, 1, 2, 3, 4];
        b.extend(token);
        expect_err(&b, Some(0x18));
        expect_err(&[0x18, 0x01, 0x00, 0x04, 1, 2, 3, 4, 0, 0], Some(0x18));
        let mut b = vec![0x18, 0x02, 0x02, 0x04, 1, 2, 3, 4];
        b.extend(token);
        assert!(decode(&b)[0].is_ok());

        // ACK: first range > largest; gap underflow; range length underflow; truncated ECN.
        expect_err(&[0x02, 0x05, 0x00, 0x00, 0x06], Some(0x02));
        // largest 5, first range 2 (3..=5); gap 2 -> next largest = 3 - 2 - 2 < 0.
        expect_err(&[0x02, 0x05, 0x00, 0x01, 0x02, 0x02, 0x00], Some(0x02));
        // gap 0 -> next largest 1; length 2 -> smallest < 0.
        expect_err(&[0x02, 0x05, 0x00, 0x01, 0x02, 0x00, 0x02], Some(0x02));
        // ... and length 1 is fine: ranges 3..6 and 0..2.
        let ok = decode(&[0x02, 0x05, 0x00, 0x01, 0x02, 0x00, 0x01]);
        let Ok(Frame::Ack(a)) = &ok[0] else {
            panic!("{ok:?}")
        };
        assert_eq!(a.ranges, vec![3..6, 0..2]);
        // Range count larger than the payload.
        expect_err(&[0x02, 0x05, 0x00, 0x3f, 0x00], Some(0x02));
        expect_err(&[0x03, 0x05, 0x00, 0x00, 0x00, 0x01, 0x02], Some(0x03));

        // CONNECTION_CLOSE reason longer than the payload.
        expect_err(&[0x1c, 0x07, 0x00, 0x05, b'a'], Some(0x1c));
        expect_err(&[0x1d, 0x07, 0x05, b'a'], Some(0x1d));
        // DATAGRAM with Length beyond the payload.
        expect_err(&[0x31, 0x05, 1, 2], Some(0x31));
        // PATH_CHALLENGE truncated.
        expect_err(&[0x1a, 1, 2, 3], Some(0x1a));
        // Truncated varints in fixed fields.
        expect_err(&[0x04, 0x01, 0x02], Some(0x04));
        expect_err(&[0x11, 0x80, 0x00], Some(0x11));
    }

    #[test]
    fn iteration_stops_after_error() {
        let out = decode(&[0x01, 0x1f, 0x01, 0x01]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], Ok(Frame::Ping));
        assert!(out[1].is_err());
    }

    #[test]
    fn ack_eliciting_and_packet_kinds() {
        use PacketKind::*;
        let ack = Frame::Ack(Ack {
            largest: 0,
            delay: 0,
            ranges: Vec::from([0..1]),
            ecn: None,
        });
        let close = Frame::ConnectionClose(ConnectionClose {
            error_code: TransportErrorCode::NO_ERROR,
            frame_type: None,
            reason: Bytes::new(),
        });
        let app_close = Frame::ApplicationClose(ApplicationClose {
            error_code: VarInt::from_u32(0),
            reason: Bytes::new(),
        });
        let stream = Frame::Stream(Stream {
            id: StreamId(0),
            offset: 0,
            fin: false,
            data: Bytes::new(),
        });
        let crypto = Frame::Crypto(Crypto {
            offset: 0,
            data: Bytes::new(),
        });
        assert!(!Frame::Padding(1).is_ack_eliciting());
        assert!(!ack.is_ack_eliciting());
        assert!(!close.is_ack_eliciting());
        assert!(!app_close.is_ack_eliciting());
        assert!(Frame::Ping.is_ack_eliciting());
        assert!(stream.is_ack_eliciting());

        let all = [Initial, Handshake, ZeroRtt, OneRtt];
        let kinds = |f: &Frame| all.iter().map(|&k| f.allowed_in(k)).collect::<Vec<_>>();
        // Table 3: IH01, IH_1, __01, ___1.
        assert_eq!(kinds(&Frame::Ping), [true, true, true, true]);
        assert_eq!(kinds(&Frame::Padding(1)), [true, true, true, true]);
        assert_eq!(kinds(&close), [true, true, true, true]);
        assert_eq!(kinds(&ack), [true, true, false, true]);
        assert_eq!(kinds(&crypto), [true, true, false, true]);
        assert_eq!(kinds(&stream), [false, false, true, true]);
        assert_eq!(kinds(&app_close), [false, false, true, true]);
        assert_eq!(
            kinds(&Frame::PathChallenge([0; 8])),
            [false, false, true, true]
        );
        assert_eq!(
            kinds(&Frame::PathResponse([0; 8])),
            [false, false, false, true]
        );
        assert_eq!(
            kinds(&Frame::NewToken(Bytes::from_static(b"t"))),
            [false, false, false, true]
        );
        assert_eq!(kinds(&Frame::HandshakeDone), [false, false, false, true]);
        assert_eq!(
            kinds(&Frame::Datagram(Datagram { data: Bytes::new() })),
            [false, false, true, true]
        );
        assert!(!OneRtt.allows(0x20));
    }

    #[test]
    fn multipath_wire_format() {
        // draft-ietf-quic-multipath-21 §4: types and field order, checked byte by byte.
        let cases: Vec<(Frame, Vec<u8>)> = vec![
            (
                Frame::PathAck {
                    path_id: PathId(1),
                    ack: Ack {
                        largest: 5,
                        delay: 2,
                        ranges: vec![3..6],
                        ecn: None,
                    },
                },
                vec![0x3e, 1, 5, 2, 0, 2],
            ),
            (
                Frame::PathAck {
                    path_id: PathId(2),
                    ack: Ack {
                        largest: 0,
                        delay: 0,
                        ranges: vec![0..1],
                        ecn: Some(EcnCounts {
                            ect0: 1,
                            ect1: 0,
                            ce: 0,
                        }),
                    },
                },
                vec![0x3f, 2, 0, 0, 0, 0, 1, 0, 0],
            ),
            (
                Frame::PathAbandon {
                    path_id: PathId(3),
                    error_code: path_error::APPLICATION_ABANDON_PATH,
                },
                vec![0x40 | 0x3e, 0x75, 3, 0x3e],
            ),
            (
                Frame::PathStatus {
                    path_id: PathId(1),
                    sequence: 9,
                    status: PathStatus::Backup,
                },
                vec![0x7e, 0x76, 1, 9],
            ),
            (
                Frame::PathStatus {
                    path_id: PathId(1),
                    sequence: 10,
                    status: PathStatus::Available,
                },
                vec![0x7e, 0x77, 1, 10],
            ),
            (
                Frame::PathRetireConnectionId {
                    path_id: PathId(4),
                    sequence: 2,
                },
                vec![0x7e, 0x79, 4, 2],
            ),
            (Frame::MaxPathId(PathId(8)), vec![0x7e, 0x7a, 8]),
            (Frame::PathsBlocked(PathId(8)), vec![0x7e, 0x7b, 8]),
            (
                Frame::PathCidsBlocked {
                    path_id: PathId(1),
                    next_sequence: 3,
                },
                vec![0x7e, 0x7c, 1, 3],
            ),
        ];
        for (frame, wire) in cases {
            assert_eq!(encode(std::slice::from_ref(&frame)), wire, "{frame:?}");
            assert_eq!(frame.encoded_len(), wire.len());
            assert_eq!(decode(&wire), vec![Ok(frame.clone())]);
            assert!(frame.is_multipath());
            assert_eq!(
                frame.is_ack_eliciting(),
                !matches!(frame, Frame::PathAck { .. })
            );
        }
        let ncid = Frame::PathNewConnectionId {
            path_id: PathId(1),
            cid: NewConnectionId {
                sequence: 1,
                retire_prior_to: 0,
                id: ConnectionId::new(&[0xaa; 4]).unwrap(),
                reset_token: ResetToken([0xbb; 16]),
            },
        };
        let mut wire = vec![0x7e, 0x78, 1, 1, 0, 4, 0xaa, 0xaa, 0xaa, 0xaa];
        wire.extend([0xbb; 16]);
        assert_eq!(encode(std::slice::from_ref(&ncid)), wire);
        assert_eq!(decode(&wire), vec![Ok(ncid)]);
        assert!(!Frame::Ping.is_multipath());
        assert!(!Frame::Datagram(Datagram { data: Bytes::new() }).is_multipath());
    }

    #[test]
    fn multipath_malformed_frames() {
        // Truncated fields: FRAME_ENCODING_ERROR naming the type.
        expect_err(&[0x3e, 0x01, 0x05], Some(0x3e));
        expect_err(&[0x7e, 0x75, 0x01], Some(0x3e75));
        expect_err(&[0x7e, 0x7a], Some(0x3e7a));
        // PATH_NEW_CONNECTION_ID keeps the NEW_CONNECTION_ID checks.
        expect_err(&[0x7e, 0x78, 1, 1, 2, 4, 0, 0, 0, 0], Some(0x3e78));
        expect_err(&[0x7e, 0x78, 1, 1, 0, 21], Some(0x3e78));
        // A path ID above 2^32 - 1 exceeds every limit: PROTOCOL_VIOLATION (§4).
        let big = [0xc0, 0, 0, 1, 0, 0, 0, 0]; // 2^32 as an 8-byte varint
        for ty in [
            &[0x3e][..],
            &[0x7e, 0x75],
            &[0x7e, 0x76],
            &[0x7e, 0x77],
            &[0x7e, 0x78],
            &[0x7e, 0x79],
            &[0x7e, 0x7a],
            &[0x7e, 0x7b],
            &[0x7e, 0x7c],
        ] {
            let mut wire = ty.to_vec();
            wire.extend(big);
            wire.extend([0; 32]);
            let e = decode(&wire).pop().unwrap().expect_err("path ID too large");
            assert!(e.protocol_violation, "{e}");
            let te = TransportError::from(e);
            assert_eq!(te.code, TransportErrorCode::PROTOCOL_VIOLATION);
            assert!(te.frame.is_some_and(ft::is_multipath));
        }
        // 2^32 - 1 itself is fine.
        let max = [0xc0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        let mut wire = vec![0x7e, 0x7a];
        wire.extend(max);
        assert_eq!(decode(&wire), vec![Ok(Frame::MaxPathId(PathId::MAX))]);
    }

    #[test]
    fn multipath_frames_only_in_one_rtt() {
        use PacketKind::*;
        for ty in [
            ft::PATH_ACK,
            ft::PATH_ACK_ECN,
            ft::PATH_ABANDON,
            ft::PATH_STATUS_BACKUP,
            ft::PATH_STATUS_AVAILABLE,
            ft::PATH_NEW_CONNECTION_ID,
            ft::PATH_RETIRE_CONNECTION_ID,
            ft::MAX_PATH_ID,
            ft::PATHS_BLOCKED,
            ft::PATH_CIDS_BLOCKED,
        ] {
            assert!(ft::is_multipath(ty));
            assert_eq!(
                [Initial, Handshake, ZeroRtt, OneRtt].map(|k| k.allows(ty)),
                [false, false, false, true],
                "{ty:#x}"
            );
        }
        for ty in [0x3d, 0x40, 0x3e74, 0x3e7d] {
            assert!(!ft::is_multipath(ty), "{ty:#x}");
            assert!(!OneRtt.allows(ty));
        }
    }

    proptest! {
        /// PATH_ACK sized to the room left behind matches what ACK would write plus the
        /// path ID, and decodes back to the same ranges.
        #[test]
        fn path_ack_from_descending_matches_ack(
            a in ack(),
            p in path_id(),
            room in 8usize..200,
        ) {
            let mut plain = Vec::new();
            let n = Ack::encode_from_descending(a.delay, a.ranges.iter().cloned(), a.ecn.as_ref(), room, &mut plain);
            let mut path = Vec::new();
            let extra = size_of_varint(u64::from(p.0));
            let m = Ack::encode_path_ack_from_descending(p, a.delay, a.ranges.iter().cloned(), a.ecn.as_ref(), room + extra, &mut path);
            prop_assert_eq!(m, if n == 0 { 0 } else { n + extra });
            prop_assert_eq!(path.len(), m);
            if m > 0 {
                let decoded = decode(&path);
                prop_assert_eq!(decoded.len(), 1);
                let Ok(Frame::PathAck { path_id, ack: got }) = &decoded[0] else {
                    return Err(TestCaseError::fail(format!("{decoded:?}")));
                };
                let Ok(Frame::Ack(want)) = &decode(&plain)[0] else {
                    return Err(TestCaseError::fail("plain ACK did not decode"));
                };
                prop_assert_eq!(*path_id, p);
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn ack_encode_from_ranges_edge_cases() {
        let mut buf = Vec::new();
        assert_eq!(
            Ack::encode_from_ranges(0, &RangeSet::new(), None, 100, &mut buf),
            0
        );
        let set: RangeSet = [0..1, 5..6].into_iter().collect();
        assert_eq!(Ack::encode_from_ranges(0, &set, None, 4, &mut buf), 0);
        assert!(buf.is_empty());
        // Exactly the newest range: type, largest, delay, count, first = 5 bytes.
        assert_eq!(Ack::encode_from_ranges(0, &set, None, 5, &mut buf), 5);
        assert_eq!(buf, [0x02, 0x05, 0x00, 0x00, 0x00]);
        buf.clear();
        assert_eq!(Ack::encode_from_ranges(0, &set, None, 7, &mut buf), 7);
        assert_eq!(buf, [0x02, 0x05, 0x00, 0x01, 0x00, 0x03, 0x00]);
    }

    #[test]
    fn connection_close_from_transport_error() {
        let e = TransportError::PROTOCOL_VIOLATION("bad").with_frame(0x08);
        let c = ConnectionClose::from(e);
        assert_eq!(c.error_code, TransportErrorCode::PROTOCOL_VIOLATION);
        assert_eq!(c.frame_type, Some(0x08));
        assert_eq!(&c.reason[..], b"bad");
    }
}
