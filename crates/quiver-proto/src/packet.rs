//! QUIC packet headers, packet-number coding and packet protection
//! (RFC 9000 §17, RFC 9001 §5, RFC 9369 §3 for version 2).
//!
//! # Receiving
//! Decoding a datagram is split in two steps so that the caller can pick the keys for the
//! packet's encryption level after seeing its unprotected header:
//!
//! 1. [`PartialDecode::new`] parses the parts of the header that are never protected (first
//!    byte form/type, version, connection IDs, Initial token, Length) and splits a coalesced
//!    datagram (RFC 9000 §12.2) into this packet and the rest.
//! 2. [`PartialDecode::finish`] removes header protection (RFC 9001 §5.4) and yields a
//!    [`Packet`] whose header is fully known and whose payload is still AEAD ciphertext.
//! 3. [`Packet::decrypt`] opens the payload (RFC 9001 §5.3) with the full packet number,
//!    which the caller obtains with [`PacketNumber::expand`].
//!
//! After decryption succeeds the caller must check [`Packet::reserved_bits`]: non-zero
//! reserved bits are a PROTOCOL_VIOLATION (RFC 9000 §17.2, §17.3.1).
//!
//! # Sending
//! [`Header::encode`] writes an unprotected header (with a two-byte Length placeholder for
//! long headers) and returns a [`PartialEncode`]. The caller appends the plaintext payload to
//! the same buffer and calls [`PartialEncode::finish`], which fills in Length, seals the
//! payload and applies header protection.
//!
//! Version Negotiation and Retry packets carry no packet protection; build them with
//! [`encode_version_negotiation`] and [`encode_retry`].
//!
//! Supported versions: QUIC v1 ([`VERSION_1`], RFC 9000) and QUIC v2 ([`VERSION_2`],
//! RFC 9369), which differ here only in the long-header type bits and the Retry integrity key.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ring::aead;
use rustls::quic::{HeaderProtectionKey, PacketKey};

use crate::cid::{ConnectionId, MAX_CID_SIZE};
use crate::coding::{BufExt, BufMutExt, UnexpectedEnd};
use crate::shared::Epoch;

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 1;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;
/// The versions this implementation speaks, most preferred first.
pub const SUPPORTED_VERSIONS: [u32; 2] = [VERSION_1, VERSION_2];

/// Length of the Retry Integrity Tag (RFC 9001 §5.8).
pub const RETRY_INTEGRITY_TAG_LEN: usize = 16;

/// Largest value the two-byte Length placeholder written by [`Header::encode`] can hold.
pub const MAX_LONG_PACKET_LENGTH: usize = (1 << 14) - 1;

/// RFC 9001 §5.4.2: the header-protection sample starts as if the packet number were
/// four bytes long.
const SAMPLE_PN_OFFSET: usize = 4;

/// Whether `version` is one this implementation speaks.
pub fn is_supported_version(version: u32) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// Whether `version` is reserved for forcing version negotiation, `0x?a?a?a?a`
/// (RFC 9000 §15).
pub fn is_reserved_version(version: u32) -> bool {
    version & 0x0f0f_0f0f == 0x0a0a_0a0a
}

/// The rustls key-schedule version for a QUIC version, if supported.
pub fn tls_version(version: u32) -> Option<rustls::quic::Version> {
    match version {
        VERSION_1 => Some(rustls::quic::Version::V1),
        VERSION_2 => Some(rustls::quic::Version::V2),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a received datagram could not be parsed. Such packets are dropped (RFC 9000 §12.2,
/// §5.2), except that `UnsupportedVersion` lets a server answer with Version Negotiation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketDecodeError {
    /// A long-header packet of a version we do not speak (RFC 9000 §6.1).
    #[error("unsupported QUIC version {version:#010x}")]
    UnsupportedVersion {
        /// The packet's source connection ID (the VN packet's destination).
        src_cid: ConnectionId,
        /// The packet's destination connection ID (the VN packet's source).
        dst_cid: ConnectionId,
        /// The version the peer used.
        version: u32,
    },
    /// The header is malformed, truncated, or header protection could not be removed.
    #[error("invalid packet header: {0}")]
    InvalidHeader(&'static str),
}

impl From<UnexpectedEnd> for PacketDecodeError {
    fn from(_: UnexpectedEnd) -> Self {
        PacketDecodeError::InvalidHeader("unexpected end of packet")
    }
}

/// AEAD authentication of a packet failed (RFC 9001 §5.3). The packet must be dropped;
/// failures count towards the AEAD integrity limit (RFC 9001 §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet decryption failed")]
pub struct DecryptError;

/// Why a packet could not be sealed. On error the buffer is truncated back to the start of
/// the packet, as if [`Header::encode`] had never been called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketEncodeError {
    /// Packet number length plus payload is shorter than header protection needs
    /// (RFC 9001 §5.4.2); pad with PADDING frames to [`PartialEncode::min_payload_len`].
    #[error("payload too short for the header protection sample")]
    PayloadTooShort,
    /// The long-header Length would not fit the two-byte placeholder.
    #[error("packet too long for a two-byte Length field")]
    PacketTooLong,
    /// The header has no packet number (Retry / Version Negotiation) and is not sealed.
    #[error("packet type carries no packet protection")]
    NotProtected,
    /// The full packet number does not match the truncated one written in the header.
    #[error("full packet number does not match the encoded packet number")]
    PacketNumberMismatch,
    /// The version has no Retry integrity key.
    #[error("unsupported version")]
    UnsupportedVersion,
    /// The AEAD or header-protection primitive refused the input.
    #[error("packet protection failed")]
    Crypto,
}

// ---------------------------------------------------------------------------------------
// Packet types
// ---------------------------------------------------------------------------------------

/// Long-header packet types that carry a packet number but no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LongType {
    /// Handshake packet (RFC 9000 §17.2.4).
    Handshake,
    /// 0-RTT packet (RFC 9000 §17.2.3).
    ZeroRtt,
}

/// The kind of a packet, as seen from its first byte and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Initial (RFC 9000 §17.2.2).
    Initial,
    /// Handshake (RFC 9000 §17.2.4).
    Handshake,
    /// 0-RTT (RFC 9000 §17.2.3).
    ZeroRtt,
    /// Retry (RFC 9000 §17.2.5).
    Retry,
    /// Version Negotiation (RFC 9000 §17.2.1).
    VersionNegotiate,
    /// 1-RTT short header (RFC 9000 §17.3).
    Short,
}

impl PacketType {
    /// The encryption level packets of this type are protected at (`None` for Retry and
    /// Version Negotiation, which are unprotected).
    pub fn epoch(self) -> Option<Epoch> {
        match self {
            PacketType::Initial => Some(Epoch::Initial),
            PacketType::Handshake => Some(Epoch::Handshake),
            PacketType::ZeroRtt | PacketType::Short => Some(Epoch::Data),
            PacketType::Retry | PacketType::VersionNegotiate => None,
        }
    }

    /// Whether packets of this type use the long header form.
    pub fn is_long(self) -> bool {
        self != PacketType::Short
    }
}

/// Long-header type bits (bits 4–5 of the first byte) for a supported version.
/// RFC 9000 §17.2 (v1): Initial 0, 0-RTT 1, Handshake 2, Retry 3.
/// RFC 9369 §3.2 (v2): Initial 1, 0-RTT 2, Handshake 3, Retry 0.
fn long_type_bits(version: u32, ty: PacketType) -> u8 {
    let v1 = match ty {
        PacketType::Initial => 0,
        PacketType::ZeroRtt => 1,
        PacketType::Handshake => 2,
        // Retry; Short and VN never reach here.
        _ => 3,
    };
    if version == VERSION_2 {
        (v1 + 1) & 0x03
    } else {
        v1
    }
}

pub(crate) fn long_type_from_bits(version: u32, bits: u8) -> PacketType {
    let v1 = if version == VERSION_2 {
        bits.wrapping_sub(1) & 0x03
    } else {
        bits & 0x03
    };
    match v1 {
        0 => PacketType::Initial,
        1 => PacketType::ZeroRtt,
        2 => PacketType::Handshake,
        _ => PacketType::Retry,
    }
}

const LONG_HEADER_FORM: u8 = 0x80;
const FIXED_BIT: u8 = 0x40;
const SPIN_BIT: u8 = 0x20;
const KEY_PHASE_BIT: u8 = 0x04;
const LONG_RESERVED_BITS: u8 = 0x0c;
const SHORT_RESERVED_BITS: u8 = 0x18;

// ---------------------------------------------------------------------------------------
// Packet numbers
// ---------------------------------------------------------------------------------------

/// A truncated packet number as carried on the wire (RFC 9000 §17.1): 1 to 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketNumber {
    /// One byte.
    U8(u8),
    /// Two bytes.
    U16(u16),
    /// Three bytes (the value is below 2^24).
    U24(u32),
    /// Four bytes.
    U32(u32),
}

impl PacketNumber {
    /// Truncate `pn` for sending, using enough bytes to represent more than twice the
    /// range of packet numbers not yet acknowledged (RFC 9000 §17.1, Appendix A.2).
    ///
    /// `largest_acked` is the largest packet number the peer has acknowledged in this
    /// packet-number space, if any.
    pub fn new(pn: u64, largest_acked: Option<u64>) -> Self {
        let unacked = match largest_acked {
            Some(acked) => pn.saturating_sub(acked),
            None => pn.saturating_add(1),
        };
        // `2 * unacked < 2^(8 * len)`, i.e. `unacked < 2^(8 * len - 1)`.
        if unacked < 1 << 7 {
            PacketNumber::U8(pn as u8)
        } else if unacked < 1 << 15 {
            PacketNumber::U16(pn as u16)
        } else if unacked < 1 << 23 {
            PacketNumber::U24((pn & 0x00ff_ffff) as u32)
        } else {
            PacketNumber::U32(pn as u32)
        }
    }

    /// Encoded length in bytes (1–4).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            PacketNumber::U8(_) => 1,
            PacketNumber::U16(_) => 2,
            PacketNumber::U24(_) => 3,
            PacketNumber::U32(_) => 4,
        }
    }

    /// The truncated value.
    pub fn truncated(self) -> u32 {
        match self {
            PacketNumber::U8(x) => x.into(),
            PacketNumber::U16(x) => x.into(),
            PacketNumber::U24(x) => x & 0x00ff_ffff,
            PacketNumber::U32(x) => x,
        }
    }

    /// Write the truncated packet number (big-endian, [`Self::len`] bytes).
    pub fn encode<W: BufMut>(self, w: &mut W) {
        match self {
            PacketNumber::U8(x) => w.put_u8(x),
            PacketNumber::U16(x) => w.put_u16(x),
            PacketNumber::U24(x) => w.put_uint(u64::from(x & 0x00ff_ffff), 3),
            PacketNumber::U32(x) => w.put_u32(x),
        }
    }

    /// Read a truncated packet number of `len` bytes (1–4).
    pub fn decode<R: Buf>(len: usize, r: &mut R) -> Result<Self, PacketDecodeError> {
        if !(1..=4).contains(&len) {
            return Err(PacketDecodeError::InvalidHeader("packet number length"));
        }
        if r.remaining() < len {
            return Err(UnexpectedEnd.into());
        }
        Ok(match len {
            1 => PacketNumber::U8(r.get_u8()),
            2 => PacketNumber::U16(r.get_u16()),
            3 => PacketNumber::U24(r.get_uint(3) as u32),
            _ => PacketNumber::U32(r.get_u32()),
        })
    }

    /// Recover the full packet number closest to `expected`, which is one more than the
    /// largest packet number successfully processed in this space (RFC 9000 §17.1,
    /// Appendix A.3).
    pub fn expand(self, expected: u64) -> u64 {
        let truncated = u64::from(self.truncated());
        let nbits = 8 * self.len() as u32;
        let win = 1u64 << nbits;
        let hwin = win / 2;
        let mask = win - 1;
        let candidate = (expected & !mask) | truncated;
        let too_low = expected
            .checked_sub(hwin)
            .is_some_and(|low| candidate <= low);
        if too_low && candidate < (1 << 62) - win {
            candidate + win
        } else if candidate > expected.saturating_add(hwin) && candidate >= win {
            candidate - win
        } else {
            candidate
        }
    }

    /// The two packet-number-length bits of the first byte.
    fn tag(self) -> u8 {
        (self.len() - 1) as u8
    }
}

// ---------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------

/// A fully known packet header: built to send, or produced by [`PartialDecode::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// Initial packet (RFC 9000 §17.2.2).
    Initial {
        /// QUIC version.
        version: u32,
        /// Destination connection ID.
        dst_cid: ConnectionId,
        /// Source connection ID.
        src_cid: ConnectionId,
        /// Address-validation token (empty if none).
        token: Bytes,
        /// Truncated packet number.
        number: PacketNumber,
    },
    /// Handshake or 0-RTT packet (RFC 9000 §17.2.3, §17.2.4).
    Long {
        /// QUIC version.
        version: u32,
        /// Handshake or 0-RTT.
        ty: LongType,
        /// Destination connection ID.
        dst_cid: ConnectionId,
        /// Source connection ID.
        src_cid: ConnectionId,
        /// Truncated packet number.
        number: PacketNumber,
    },
    /// Retry packet header (RFC 9000 §17.2.5); the token and integrity tag follow it.
    Retry {
        /// QUIC version.
        version: u32,
        /// Destination connection ID (the client's source CID).
        dst_cid: ConnectionId,
        /// Source connection ID chosen by the server.
        src_cid: ConnectionId,
    },
    /// 1-RTT packet (RFC 9000 §17.3.1).
    Short {
        /// Latency spin bit (RFC 9000 §17.4).
        spin: bool,
        /// Key phase bit (RFC 9001 §6).
        key_phase: bool,
        /// Destination connection ID.
        dst_cid: ConnectionId,
        /// Truncated packet number.
        number: PacketNumber,
    },
    /// Version Negotiation header (RFC 9000 §17.2.1); the version list follows it.
    VersionNegotiate {
        /// The seven unused bits of the first byte (the high bit is ignored).
        random: u8,
        /// Source connection ID (the client's destination CID).
        src_cid: ConnectionId,
        /// Destination connection ID (the client's source CID).
        dst_cid: ConnectionId,
    },
}

impl Header {
    /// The packet type.
    pub fn kind(&self) -> PacketType {
        match self {
            Header::Initial { .. } => PacketType::Initial,
            Header::Long {
                ty: LongType::Handshake,
                ..
            } => PacketType::Handshake,
            Header::Long {
                ty: LongType::ZeroRtt,
                ..
            } => PacketType::ZeroRtt,
            Header::Retry { .. } => PacketType::Retry,
            Header::Short { .. } => PacketType::Short,
            Header::VersionNegotiate { .. } => PacketType::VersionNegotiate,
        }
    }

    /// Whether this is a long header.
    pub fn is_long(&self) -> bool {
        self.kind().is_long()
    }

    /// The truncated packet number, for protected packet types.
    pub fn number(&self) -> Option<PacketNumber> {
        match *self {
            Header::Initial { number, .. }
            | Header::Long { number, .. }
            | Header::Short { number, .. } => Some(number),
            Header::Retry { .. } | Header::VersionNegotiate { .. } => None,
        }
    }

    /// The destination connection ID.
    pub fn dst_cid(&self) -> &ConnectionId {
        match self {
            Header::Initial { dst_cid, .. }
            | Header::Long { dst_cid, .. }
            | Header::Retry { dst_cid, .. }
            | Header::Short { dst_cid, .. }
            | Header::VersionNegotiate { dst_cid, .. } => dst_cid,
        }
    }

    /// The source connection ID (long headers only).
    pub fn src_cid(&self) -> Option<&ConnectionId> {
        match self {
            Header::Initial { src_cid, .. }
            | Header::Long { src_cid, .. }
            | Header::Retry { src_cid, .. }
            | Header::VersionNegotiate { src_cid, .. } => Some(src_cid),
            Header::Short { .. } => None,
        }
    }

    /// The version field (long headers only; 0 for Version Negotiation).
    pub fn version(&self) -> Option<u32> {
        match *self {
            Header::Initial { version, .. }
            | Header::Long { version, .. }
            | Header::Retry { version, .. } => Some(version),
            Header::VersionNegotiate { .. } => Some(0),
            Header::Short { .. } => None,
        }
    }

    /// The key phase bit (short headers only; `false` otherwise).
    pub fn key_phase(&self) -> bool {
        matches!(
            self,
            Header::Short {
                key_phase: true,
                ..
            }
        )
    }

    /// Write the unprotected header to `buf`.
    ///
    /// Long headers of protected types get a two-byte Length placeholder that
    /// [`PartialEncode::finish`] fills in; append the plaintext payload after the header and
    /// call `finish` to seal the packet. Retry and Version Negotiation headers are written
    /// complete (their bodies are appended by [`encode_retry`] and
    /// [`encode_version_negotiation`]).
    pub fn encode(&self, buf: &mut Vec<u8>) -> PartialEncode {
        let start = buf.len();
        let mut pn = None;
        let mut length_offset = None;
        match self {
            Header::Initial {
                version,
                dst_cid,
                src_cid,
                token,
                number,
            } => {
                let bits = long_type_bits(*version, PacketType::Initial);
                buf.put_u8(LONG_HEADER_FORM | FIXED_BIT | (bits << 4) | number.tag());
                put_long_prefix(buf, *version, dst_cid, src_cid);
                buf.put_var(token.len() as u64);
                buf.put_slice(token);
                length_offset = Some(buf.len());
                buf.put_u16(0x4000);
                pn = Some((buf.len(), number.len()));
                number.encode(buf);
            }
            Header::Long {
                version,
                ty,
                dst_cid,
                src_cid,
                number,
            } => {
                let ty = match ty {
                    LongType::Handshake => PacketType::Handshake,
                    LongType::ZeroRtt => PacketType::ZeroRtt,
                };
                let bits = long_type_bits(*version, ty);
                buf.put_u8(LONG_HEADER_FORM | FIXED_BIT | (bits << 4) | number.tag());
                put_long_prefix(buf, *version, dst_cid, src_cid);
                length_offset = Some(buf.len());
                buf.put_u16(0x4000);
                pn = Some((buf.len(), number.len()));
                number.encode(buf);
            }
            Header::Retry {
                version,
                dst_cid,
                src_cid,
            } => {
                let bits = long_type_bits(*version, PacketType::Retry);
                buf.put_u8(LONG_HEADER_FORM | FIXED_BIT | (bits << 4));
                put_long_prefix(buf, *version, dst_cid, src_cid);
            }
            Header::Short {
                spin,
                key_phase,
                dst_cid,
                number,
            } => {
                let mut first = FIXED_BIT | number.tag();
                if *spin {
                    first |= SPIN_BIT;
                }
                if *key_phase {
                    first |= KEY_PHASE_BIT;
                }
                buf.put_u8(first);
                buf.put_slice(dst_cid);
                pn = Some((buf.len(), number.len()));
                number.encode(buf);
            }
            Header::VersionNegotiate {
                random,
                src_cid,
                dst_cid,
            } => {
                buf.put_u8(LONG_HEADER_FORM | (random & 0x7f));
                put_long_prefix(buf, 0, dst_cid, src_cid);
            }
        }
        PartialEncode {
            start,
            header_len: buf.len() - start,
            pn,
            length_offset,
        }
    }
}

/// Version, DCID and SCID with their length bytes (RFC 9000 §17.2).
fn put_long_prefix(
    buf: &mut Vec<u8>,
    version: u32,
    dst_cid: &ConnectionId,
    src_cid: &ConnectionId,
) {
    buf.put_u32(version);
    // ConnectionId guarantees a length of at most 20.
    buf.put_u8(dst_cid.len() as u8);
    buf.put_slice(dst_cid);
    buf.put_u8(src_cid.len() as u8);
    buf.put_slice(src_cid);
}

/// A header written by [`Header::encode`] whose packet is not sealed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the packet is not sealed until `finish` is called"]
pub struct PartialEncode {
    /// Offset of the packet's first byte in the buffer.
    pub start: usize,
    /// Length of the unprotected header, packet number included.
    pub header_len: usize,
    /// Offset (in the buffer) and length of the packet number, for protected types.
    pub pn: Option<(usize, usize)>,
    /// Offset (in the buffer) of the two-byte Length placeholder, for long headers.
    pub length_offset: Option<usize>,
}

impl PartialEncode {
    /// Smallest payload (before the AEAD tag) that leaves room for the header-protection
    /// sample, for AEADs whose tag is as long as the sample (all QUIC v1/v2 AEADs):
    /// `pn_len + payload >= 4` (RFC 9001 §5.4.2).
    pub fn min_payload_len(&self) -> usize {
        self.pn
            .map_or(0, |(_, pn_len)| SAMPLE_PN_OFFSET.saturating_sub(pn_len))
    }

    /// Seal the packet: `buf[start + header_len..]` is the plaintext payload.
    ///
    /// Fills in Length (`pn_len + payload + tag`), encrypts the payload with `packet_key`
    /// and the packet number `full_pn` (whose truncation must be the number in the header),
    /// appends the AEAD tag and applies header protection (RFC 9001 §5.3, §5.4). Nothing is
    /// padded: the caller guarantees `pn_len + payload >= 4` (see
    /// [`Self::min_payload_len`]) and otherwise gets [`PacketEncodeError::PayloadTooShort`].
    /// On error `buf` is truncated to `start`.
    pub fn finish(
        self,
        buf: &mut Vec<u8>,
        header_key: &dyn HeaderProtectionKey,
        packet_key: &dyn PacketKey,
        full_pn: u64,
    ) -> Result<(), PacketEncodeError> {
        self.finish_inner(buf, header_key, packet_key, full_pn, None)
    }

    /// Like [`Self::finish`], but derives the AEAD nonce from `path_id` as well
    /// (draft-ietf-quic-multipath, 1-RTT packets on path `path_id`).
    pub fn finish_for_path(
        self,
        buf: &mut Vec<u8>,
        header_key: &dyn HeaderProtectionKey,
        packet_key: &dyn PacketKey,
        path_id: u32,
        full_pn: u64,
    ) -> Result<(), PacketEncodeError> {
        self.finish_inner(buf, header_key, packet_key, full_pn, Some(path_id))
    }

    fn finish_inner(
        self,
        buf: &mut Vec<u8>,
        header_key: &dyn HeaderProtectionKey,
        packet_key: &dyn PacketKey,
        full_pn: u64,
        path_id: Option<u32>,
    ) -> Result<(), PacketEncodeError> {
        let res = self.seal(buf, header_key, packet_key, full_pn, path_id);
        if res.is_err() {
            buf.truncate(self.start);
        }
        res
    }

    fn seal(
        self,
        buf: &mut Vec<u8>,
        header_key: &dyn HeaderProtectionKey,
        packet_key: &dyn PacketKey,
        full_pn: u64,
        path_id: Option<u32>,
    ) -> Result<(), PacketEncodeError> {
        let (pn_offset, pn_len) = self.pn.ok_or(PacketEncodeError::NotProtected)?;
        let header_end = self.start + self.header_len;
        if buf.len() < header_end || pn_offset + pn_len != header_end {
            return Err(PacketEncodeError::NotProtected);
        }
        let written = PacketNumber::decode(pn_len, &mut &buf[pn_offset..header_end])
            .map_err(|_| PacketEncodeError::NotProtected)?;
        if (full_pn as u32) & mask(pn_len) != written.truncated() {
            return Err(PacketEncodeError::PacketNumberMismatch);
        }
        let payload_len = buf.len() - header_end;
        let tag_len = packet_key.tag_len();
        let sample_len = header_key.sample_len();
        // RFC 9001 §5.4.2: the sample starts at pn_offset + 4 and must lie in the packet.
        if pn_len + payload_len + tag_len < SAMPLE_PN_OFFSET + sample_len {
            return Err(PacketEncodeError::PayloadTooShort);
        }
        if let Some(off) = self.length_offset {
            // RFC 9000 §17.2: Length covers the packet number and the protected payload.
            let len = pn_len + payload_len + tag_len;
            if len > MAX_LONG_PACKET_LENGTH {
                return Err(PacketEncodeError::PacketTooLong);
            }
            let field = buf
                .get_mut(off..off + 2)
                .ok_or(PacketEncodeError::NotProtected)?;
            field.copy_from_slice(&(0x4000 | len as u16).to_be_bytes());
        }

        // RFC 9001 §5.3: the AAD is the unprotected header, up to the end of the PN.
        let (header, payload) = buf[self.start..].split_at_mut(self.header_len);
        let tag = match path_id {
            None => packet_key.encrypt_in_place(full_pn, header, payload),
            Some(id) => packet_key.encrypt_in_place_for_path(id, full_pn, header, payload),
        }
        .map_err(|_| PacketEncodeError::Crypto)?;
        buf.extend_from_slice(tag.as_ref());

        // RFC 9001 §5.4.1: mask the low bits of the first byte and the packet number.
        let (head, tail) = buf.split_at_mut(pn_offset + SAMPLE_PN_OFFSET);
        let sample = tail
            .get(..sample_len)
            .ok_or(PacketEncodeError::PayloadTooShort)?;
        let (before_pn, pn_bytes) = head.split_at_mut(pn_offset);
        let first = before_pn
            .get_mut(self.start)
            .ok_or(PacketEncodeError::NotProtected)?;
        header_key
            .encrypt_in_place(sample, first, &mut pn_bytes[..pn_len])
            .map_err(|_| PacketEncodeError::Crypto)
    }
}

fn mask(pn_len: usize) -> u32 {
    match pn_len {
        1 => 0xff,
        2 => 0xffff,
        3 => 0x00ff_ffff,
        _ => u32::MAX,
    }
}

/// Write a complete Version Negotiation packet (RFC 9000 §17.2.1).
///
/// `dst_cid` / `src_cid` are the VN packet's own fields: the client's source and
/// destination CIDs respectively. `random` fills the seven unused bits of the first byte.
/// Senders should include a reserved version ([`is_reserved_version`]) to exercise
/// version negotiation (RFC 9000 §6.3).
pub fn encode_version_negotiation(
    buf: &mut Vec<u8>,
    random: u8,
    dst_cid: &ConnectionId,
    src_cid: &ConnectionId,
    versions: &[u32],
) {
    let _ = Header::VersionNegotiate {
        random,
        src_cid: *src_cid,
        dst_cid: *dst_cid,
    }
    .encode(buf);
    for v in versions {
        buf.put_u32(*v);
    }
}

/// Write a complete Retry packet with its integrity tag (RFC 9000 §17.2.5, RFC 9001 §5.8).
///
/// `dst_cid` is the client's source CID, `src_cid` the CID the server chose, and
/// `orig_dst_cid` the destination CID of the client's Initial. The token must not be
/// empty (a client discards such a Retry).
pub fn encode_retry(
    buf: &mut Vec<u8>,
    version: u32,
    dst_cid: &ConnectionId,
    src_cid: &ConnectionId,
    orig_dst_cid: &ConnectionId,
    token: &[u8],
) -> Result<(), PacketEncodeError> {
    if !is_supported_version(version) {
        return Err(PacketEncodeError::UnsupportedVersion);
    }
    let start = buf.len();
    let _ = Header::Retry {
        version,
        dst_cid: *dst_cid,
        src_cid: *src_cid,
    }
    .encode(buf);
    buf.put_slice(token);
    match retry_integrity_tag(version, orig_dst_cid, &buf[start..]) {
        Some(tag) => {
            buf.put_slice(&tag);
            Ok(())
        }
        None => {
            buf.truncate(start);
            Err(PacketEncodeError::Crypto)
        }
    }
}

/// RFC 9001 §5.8 (v1) and RFC 9369 §3.3.3 (v2): fixed AES-128-GCM key and nonce.
fn retry_key(version: u32) -> Option<([u8; 16], [u8; 12])> {
    match version {
        VERSION_1 => Some((
            [
                0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68,
                0xc8, 0x4e,
            ],
            [
                0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb,
            ],
        )),
        VERSION_2 => Some((
            [
                0x8f, 0xb4, 0xb0, 0x1b, 0x56, 0xac, 0x48, 0xe2, 0x60, 0xfb, 0xcb, 0xce, 0xad, 0x7c,
                0xcc, 0x92,
            ],
            [
                0xd8, 0x69, 0x69, 0xbc, 0x2d, 0x7c, 0x6d, 0x99, 0x90, 0xef, 0xb0, 0x4a,
            ],
        )),
        _ => None,
    }
}

/// The Retry pseudo-packet (RFC 9001 §5.8): ODCID length, ODCID, Retry packet sans tag.
fn retry_pseudo_packet(orig_dst_cid: &ConnectionId, retry_without_tag: &[u8]) -> Vec<u8> {
    let mut pseudo = Vec::with_capacity(1 + orig_dst_cid.len() + retry_without_tag.len());
    pseudo.put_u8(orig_dst_cid.len() as u8);
    pseudo.put_slice(orig_dst_cid);
    pseudo.put_slice(retry_without_tag);
    pseudo
}

fn retry_aead(version: u32) -> Option<(aead::LessSafeKey, aead::Nonce)> {
    let (key, nonce) = retry_key(version)?;
    let key = aead::UnboundKey::new(&aead::AES_128_GCM, &key).ok()?;
    Some((
        aead::LessSafeKey::new(key),
        aead::Nonce::assume_unique_for_key(nonce),
    ))
}

/// Compute the Retry Integrity Tag over a Retry packet without its tag
/// (RFC 9001 §5.8). `None` for versions without a Retry key.
pub fn retry_integrity_tag(
    version: u32,
    orig_dst_cid: &ConnectionId,
    retry_without_tag: &[u8],
) -> Option<[u8; RETRY_INTEGRITY_TAG_LEN]> {
    let (key, nonce) = retry_aead(version)?;
    let pseudo = retry_pseudo_packet(orig_dst_cid, retry_without_tag);
    let tag = key
        .seal_in_place_separate_tag(nonce, aead::Aad::from(&pseudo[..]), &mut [])
        .ok()?;
    tag.as_ref().try_into().ok()
}

/// Check the integrity tag of a complete Retry packet (tag included) against the
/// destination CID of the client's first Initial (RFC 9001 §5.8), in constant time.
pub fn is_valid_retry(version: u32, orig_dst_cid: &ConnectionId, retry_packet: &[u8]) -> bool {
    let Some(body_len) = retry_packet.len().checked_sub(RETRY_INTEGRITY_TAG_LEN) else {
        return false;
    };
    let (body, tag) = retry_packet.split_at(body_len);
    let Some((key, nonce)) = retry_aead(version) else {
        return false;
    };
    let pseudo = retry_pseudo_packet(orig_dst_cid, body);
    // Opening an empty ciphertext with the received tag authenticates the pseudo-packet.
    let mut in_out = tag.to_vec();
    key.open_in_place(nonce, aead::Aad::from(&pseudo[..]), &mut in_out)
        .is_ok()
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// The unprotected part of a received header.
#[derive(Debug, Clone)]
enum PlainHeader {
    Initial {
        version: u32,
        dst_cid: ConnectionId,
        src_cid: ConnectionId,
        token: Bytes,
    },
    Long {
        version: u32,
        ty: LongType,
        dst_cid: ConnectionId,
        src_cid: ConnectionId,
    },
    Retry {
        version: u32,
        dst_cid: ConnectionId,
        src_cid: ConnectionId,
    },
    Short {
        dst_cid: ConnectionId,
    },
    VersionNegotiate {
        random: u8,
        dst_cid: ConnectionId,
        src_cid: ConnectionId,
    },
}

/// A received packet whose unprotected header fields are parsed and whose header
/// protection is still in place. See the [module docs](self) for the receive flow.
#[derive(Debug, Clone)]
pub struct PartialDecode {
    plain: PlainHeader,
    /// This packet's bytes only (coalesced followers are split off).
    buf: BytesMut,
    /// Offset of the packet number (protected types) or of the body (Retry, VN).
    pn_offset: usize,
}

impl PartialDecode {
    /// Parse the unprotected header of the first packet in `datagram` (RFC 9000 §17).
    ///
    /// `local_cid_len` is the length of the connection IDs this endpoint issues, needed to
    /// find the end of a short header's DCID. Returns the packet and, if the datagram holds
    /// more bytes after a long-header packet's Length, the rest (RFC 9000 §12.2), to be
    /// decoded with another call.
    ///
    /// Never panics on any input. Long headers with a version we do not speak yield
    /// [`PacketDecodeError::UnsupportedVersion`] so a server can answer with Version
    /// Negotiation (connection IDs longer than 20 bytes are rejected as invalid).
    pub fn new(
        mut datagram: BytesMut,
        local_cid_len: usize,
    ) -> Result<(Self, Option<BytesMut>), PacketDecodeError> {
        let total = datagram.len();
        let mut r: &[u8] = &datagram[..];
        let first = r.get_u8_checked()?;

        if first & LONG_HEADER_FORM == 0 {
            // RFC 9000 §17.3.1: 1-RTT packet; DCID length is known only to us.
            if first & FIXED_BIT == 0 {
                return Err(PacketDecodeError::InvalidHeader("fixed bit not set"));
            }
            if local_cid_len > MAX_CID_SIZE {
                return Err(PacketDecodeError::InvalidHeader("local CID length"));
            }
            let dst_cid = read_cid(&mut r, local_cid_len)?;
            let pn_offset = total - r.remaining();
            return Ok((
                PartialDecode {
                    plain: PlainHeader::Short { dst_cid },
                    buf: datagram,
                    pn_offset,
                },
                None,
            ));
        }

        // RFC 9000 §17.2: long header.
        let version = r.get_u32_checked()?;
        let dcid_len = usize::from(r.get_u8_checked()?);
        if dcid_len > MAX_CID_SIZE {
            return Err(PacketDecodeError::InvalidHeader("destination CID too long"));
        }
        let dst_cid = read_cid(&mut r, dcid_len)?;
        let scid_len = usize::from(r.get_u8_checked()?);
        if scid_len > MAX_CID_SIZE {
            return Err(PacketDecodeError::InvalidHeader("source CID too long"));
        }
        let src_cid = read_cid(&mut r, scid_len)?;

        if version == 0 {
            // RFC 9000 §17.2.1: Version Negotiation; the rest is a list of versions.
            if !r.remaining().is_multiple_of(4) {
                return Err(PacketDecodeError::InvalidHeader(
                    "version list not a multiple of four bytes",
                ));
            }
            let pn_offset = total - r.remaining();
            return Ok((
                PartialDecode {
                    plain: PlainHeader::VersionNegotiate {
                        random: first & 0x7f,
                        dst_cid,
                        src_cid,
                    },
                    buf: datagram,
                    pn_offset,
                },
                None,
            ));
        }
        if !is_supported_version(version) {
            return Err(PacketDecodeError::UnsupportedVersion {
                src_cid,
                dst_cid,
                version,
            });
        }
        if first & FIXED_BIT == 0 {
            return Err(PacketDecodeError::InvalidHeader("fixed bit not set"));
        }

        let ty = long_type_from_bits(version, (first >> 4) & 0x03);
        let (plain, length) = match ty {
            PacketType::Retry => {
                // RFC 9000 §17.2.5: token fills the datagram up to the 16-byte tag; a Retry
                // with an empty token is discarded (§17.2.5.2).
                if r.remaining() <= RETRY_INTEGRITY_TAG_LEN {
                    return Err(PacketDecodeError::InvalidHeader("retry without token"));
                }
                let pn_offset = total - r.remaining();
                return Ok((
                    PartialDecode {
                        plain: PlainHeader::Retry {
                            version,
                            dst_cid,
                            src_cid,
                        },
                        buf: datagram,
                        pn_offset,
                    },
                    None,
                ));
            }
            PacketType::Initial => {
                let token_len = var_len(&mut r)?;
                let token = r.get_bytes_checked(token_len)?;
                (
                    PlainHeader::Initial {
                        version,
                        dst_cid,
                        src_cid,
                        token,
                    },
                    var_len(&mut r)?,
                )
            }
            PacketType::Handshake | PacketType::ZeroRtt => {
                let ty = if ty == PacketType::Handshake {
                    LongType::Handshake
                } else {
                    LongType::ZeroRtt
                };
                (
                    PlainHeader::Long {
                        version,
                        ty,
                        dst_cid,
                        src_cid,
                    },
                    var_len(&mut r)?,
                )
            }
            PacketType::VersionNegotiate | PacketType::Short => {
                return Err(PacketDecodeError::InvalidHeader("unreachable packet type"));
            }
        };
        if length > r.remaining() {
            return Err(PacketDecodeError::InvalidHeader(
                "Length exceeds the datagram",
            ));
        }
        let pn_offset = total - r.remaining();
        let end = pn_offset + length;
        let buf = datagram.split_to(end);
        let rest = if datagram.is_empty() {
            None
        } else {
            Some(datagram)
        };
        Ok((
            PartialDecode {
                plain,
                buf,
                pn_offset,
            },
            rest,
        ))
    }

    /// The packet type.
    pub fn kind(&self) -> PacketType {
        match &self.plain {
            PlainHeader::Initial { .. } => PacketType::Initial,
            PlainHeader::Long {
                ty: LongType::Handshake,
                ..
            } => PacketType::Handshake,
            PlainHeader::Long {
                ty: LongType::ZeroRtt,
                ..
            } => PacketType::ZeroRtt,
            PlainHeader::Retry { .. } => PacketType::Retry,
            PlainHeader::Short { .. } => PacketType::Short,
            PlainHeader::VersionNegotiate { .. } => PacketType::VersionNegotiate,
        }
    }

    /// Whether this is a long-header packet.
    pub fn is_long(&self) -> bool {
        self.kind().is_long()
    }

    /// Whether this is an Initial packet.
    pub fn is_initial(&self) -> bool {
        self.kind() == PacketType::Initial
    }

    /// The version field (long headers only; 0 for Version Negotiation).
    pub fn version(&self) -> Option<u32> {
        match &self.plain {
            PlainHeader::Initial { version, .. }
            | PlainHeader::Long { version, .. }
            | PlainHeader::Retry { version, .. } => Some(*version),
            PlainHeader::VersionNegotiate { .. } => Some(0),
            PlainHeader::Short { .. } => None,
        }
    }

    /// The destination connection ID.
    pub fn dst_cid(&self) -> &ConnectionId {
        match &self.plain {
            PlainHeader::Initial { dst_cid, .. }
            | PlainHeader::Long { dst_cid, .. }
            | PlainHeader::Retry { dst_cid, .. }
            | PlainHeader::Short { dst_cid }
            | PlainHeader::VersionNegotiate { dst_cid, .. } => dst_cid,
        }
    }

    /// The source connection ID (long headers only).
    pub fn src_cid(&self) -> Option<&ConnectionId> {
        match &self.plain {
            PlainHeader::Initial { src_cid, .. }
            | PlainHeader::Long { src_cid, .. }
            | PlainHeader::Retry { src_cid, .. }
            | PlainHeader::VersionNegotiate { src_cid, .. } => Some(src_cid),
            PlainHeader::Short { .. } => None,
        }
    }

    /// The token of an Initial packet (possibly empty) or of a Retry packet.
    pub fn token(&self) -> Option<&[u8]> {
        match &self.plain {
            PlainHeader::Initial { token, .. } => Some(token),
            PlainHeader::Retry { .. } => {
                let end = self.buf.len().saturating_sub(RETRY_INTEGRITY_TAG_LEN);
                self.buf.get(self.pn_offset..end)
            }
            _ => None,
        }
    }

    /// Size of this packet on the wire, in bytes (coalesced followers excluded).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The packet's raw (still protected) bytes, e.g. to compare the last 16 bytes of a
    /// short-header packet with stateless reset tokens (RFC 9000 §10.3.1).
    pub fn data(&self) -> &[u8] {
        &self.buf
    }

    /// For a Retry packet, whether its integrity tag is valid for the destination CID of
    /// the client's first Initial (RFC 9001 §5.8). `false` for other packet types.
    pub fn is_valid_retry(&self, orig_dst_cid: &ConnectionId) -> bool {
        match &self.plain {
            PlainHeader::Retry { version, .. } => is_valid_retry(*version, orig_dst_cid, &self.buf),
            _ => false,
        }
    }

    /// Remove header protection (RFC 9001 §5.4) and produce the [`Packet`].
    ///
    /// `header_key` is the remote header-protection key of the packet's encryption level;
    /// it is required for Initial, Handshake, 0-RTT and 1-RTT packets and ignored for Retry
    /// and Version Negotiation. A packet too short to contain the header-protection sample
    /// is rejected.
    pub fn finish(
        self,
        header_key: Option<&dyn HeaderProtectionKey>,
    ) -> Result<Packet, PacketDecodeError> {
        let PartialDecode {
            plain,
            mut buf,
            pn_offset,
        } = self;
        match plain {
            PlainHeader::Retry {
                version,
                dst_cid,
                src_cid,
            } => {
                let header_data = buf.split_to(pn_offset).freeze();
                let token_len = buf.len().saturating_sub(RETRY_INTEGRITY_TAG_LEN);
                buf.truncate(token_len);
                Ok(Packet {
                    header: Header::Retry {
                        version,
                        dst_cid,
                        src_cid,
                    },
                    header_data,
                    payload: buf,
                })
            }
            PlainHeader::VersionNegotiate {
                random,
                dst_cid,
                src_cid,
            } => {
                let header_data = buf.split_to(pn_offset).freeze();
                Ok(Packet {
                    header: Header::VersionNegotiate {
                        random,
                        src_cid,
                        dst_cid,
                    },
                    header_data,
                    payload: buf,
                })
            }
            plain => {
                let key = header_key.ok_or(PacketDecodeError::InvalidHeader(
                    "header protection key required",
                ))?;
                let sample_len = key.sample_len();
                let sample_start = pn_offset + SAMPLE_PN_OFFSET;
                if buf.len() < sample_start + sample_len {
                    return Err(PacketDecodeError::InvalidHeader(
                        "packet too short for header protection sample",
                    ));
                }
                {
                    let (head, tail) = buf.split_at_mut(sample_start);
                    let sample = tail
                        .get(..sample_len)
                        .ok_or(PacketDecodeError::InvalidHeader(
                            "packet too short for header protection sample",
                        ))?;
                    let (before_pn, pn_bytes) = head.split_at_mut(pn_offset);
                    let first = before_pn
                        .first_mut()
                        .ok_or(PacketDecodeError::InvalidHeader("empty packet"))?;
                    key.decrypt_in_place(sample, first, pn_bytes)
                        .map_err(|_| PacketDecodeError::InvalidHeader("header protection"))?;
                }
                let first = *buf
                    .first()
                    .ok_or(PacketDecodeError::InvalidHeader("empty packet"))?;
                let pn_len = usize::from(first & 0x03) + 1;
                let number =
                    PacketNumber::decode(pn_len, &mut buf.get(pn_offset..).unwrap_or(&[]))?;
                let header_data = buf.split_to(pn_offset + pn_len).freeze();
                let header = match plain {
                    PlainHeader::Initial {
                        version,
                        dst_cid,
                        src_cid,
                        token,
                    } => Header::Initial {
                        version,
                        dst_cid,
                        src_cid,
                        token,
                        number,
                    },
                    PlainHeader::Long {
                        version,
                        ty,
                        dst_cid,
                        src_cid,
                    } => Header::Long {
                        version,
                        ty,
                        dst_cid,
                        src_cid,
                        number,
                    },
                    PlainHeader::Short { dst_cid } => Header::Short {
                        spin: first & SPIN_BIT != 0,
                        key_phase: first & KEY_PHASE_BIT != 0,
                        dst_cid,
                        number,
                    },
                    PlainHeader::Retry { .. } | PlainHeader::VersionNegotiate { .. } => {
                        return Err(PacketDecodeError::InvalidHeader("unreachable packet type"));
                    }
                };
                Ok(Packet {
                    header,
                    header_data,
                    payload: buf,
                })
            }
        }
    }
}

fn read_cid(r: &mut &[u8], len: usize) -> Result<ConnectionId, PacketDecodeError> {
    if r.len() < len {
        return Err(UnexpectedEnd.into());
    }
    let (cid, rest) = r.split_at(len);
    *r = rest;
    ConnectionId::new(cid).ok_or(PacketDecodeError::InvalidHeader("CID too long"))
}

fn var_len(r: &mut &[u8]) -> Result<usize, PacketDecodeError> {
    let v = r.get_var()?;
    usize::try_from(v).map_err(|_| PacketDecodeError::InvalidHeader("length too large"))
}

/// A received packet with header protection removed.
///
/// For protected types `payload` is AEAD ciphertext plus tag until [`Packet::decrypt`]
/// succeeds, and then the plaintext frames. For Retry `payload` is the Retry token (the
/// integrity tag is stripped: check it first with [`PartialDecode::is_valid_retry`]); for
/// Version Negotiation it is the version list (see [`Packet::versions`]).
#[derive(Debug, Clone)]
pub struct Packet {
    /// The decoded header.
    pub header: Header,
    /// The unprotected header bytes, packet number included: the AEAD associated data.
    pub header_data: Bytes,
    /// The payload (see the type docs).
    pub payload: BytesMut,
}

impl Packet {
    /// The truncated packet number, for protected types.
    pub fn number(&self) -> Option<PacketNumber> {
        self.header.number()
    }

    /// The reserved bits of the unprotected first byte (long: `0x0c`, short: `0x18`),
    /// still in place. After successful decryption, a non-zero value must be treated as a
    /// PROTOCOL_VIOLATION (RFC 9000 §17.2, §17.3.1). Always 0 for Retry and VN.
    pub fn reserved_bits(&self) -> u8 {
        let first = self.header_data.first().copied().unwrap_or(0);
        match self.header.kind() {
            PacketType::Retry | PacketType::VersionNegotiate => 0,
            PacketType::Short => first & SHORT_RESERVED_BITS,
            _ => first & LONG_RESERVED_BITS,
        }
    }

    /// Decrypt the payload in place with the full packet number `full_pn`
    /// (RFC 9001 §5.3); on success `payload` holds the plaintext frames.
    pub fn decrypt(&mut self, key: &dyn PacketKey, full_pn: u64) -> Result<(), DecryptError> {
        let len = key
            .decrypt_in_place(full_pn, &self.header_data, &mut self.payload)
            .map_err(|_| DecryptError)?
            .len();
        self.payload.truncate(len);
        Ok(())
    }

    /// Like [`Self::decrypt`] with the multipath nonce for `path_id`
    /// (draft-ietf-quic-multipath).
    pub fn decrypt_for_path(
        &mut self,
        key: &dyn PacketKey,
        path_id: u32,
        full_pn: u64,
    ) -> Result<(), DecryptError> {
        let len = key
            .decrypt_in_place_for_path(path_id, full_pn, &self.header_data, &mut self.payload)
            .map_err(|_| DecryptError)?
            .len();
        self.payload.truncate(len);
        Ok(())
    }

    /// For a Version Negotiation packet, the versions the server supports
    /// (RFC 9000 §17.2.1); empty for other types.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        let list: &[u8] = if self.header.kind() == PacketType::VersionNegotiate {
            &self.payload
        } else {
            &[]
        };
        list.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;
    use rustls::crypto::cipher::{AeadKey, Iv};
    use rustls::crypto::ring::cipher_suite;
    use rustls::quic::{Keys, Version};

    fn cid(bytes: &[u8]) -> ConnectionId {
        ConnectionId::new(bytes).expect("short CID")
    }

    fn initial_keys(dcid: &[u8], side: rustls::Side, version: Version) -> Keys {
        cipher_suite::TLS13_AES_128_GCM_SHA256
            .tls13()
            .and_then(|s| s.quic_suite())
            .expect("AES-128-GCM QUIC suite")
            .keys(dcid, side, version)
    }

    const ODCID: [u8; 8] = hex!("8394c8f03e515708");

    /// RFC 9001 Appendix A.2: the CRYPTO frame of the client Initial.
    const CLIENT_CRYPTO: [u8; 245] = hex!(
        "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
        "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
        "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
        "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
        "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
        "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
        "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
        "75300901100f088394c8f03e51570806048000ffff"
    );

    /// RFC 9001 Appendix A.2: the protected client Initial.
    const CLIENT_INITIAL: [u8; 1200] = hex!(
        "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
        "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
        "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
        "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
        "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
        "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
        "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
        "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
        "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
        "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
        "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
        "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
        "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
        "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
        "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
        "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
        "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
        "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
        "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
        "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
        "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
        "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
        "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
        "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
        "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
        "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
        "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
        "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
        "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
        "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
        "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
        "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
        "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
        "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
        "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
        "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
        "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
        "e221af44860018ab0856972e194cd934"
    );

    /// RFC 9001 Appendix A.3: the server Initial's frames (ACK + CRYPTO).
    const SERVER_FRAMES: [u8; 99] = hex!(
        "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"
        "88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"
        "0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"
        "020304"
    );

    /// RFC 9001 Appendix A.3: the protected server Initial.
    const SERVER_INITIAL: [u8; 135] = hex!(
        "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
        "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
        "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
        "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
        "2158407dd074ee"
    );

    /// RFC 9001 Appendix A.4 (v1) and RFC 9369 Appendix A.4 (v2) Retry packets.
    const RETRY_V1: [u8; 36] =
        hex!("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba");
    const RETRY_V2: [u8; 36] =
        hex!("cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6");

    /// RFC 9001 Appendix A.5: the ChaCha20-Poly1305 short header packet.
    const CHACHA_PACKET: [u8; 21] = hex!("4cfe4189655e5cd55c41f69080575d7999c25a5bfb");

    #[test]
    fn rfc9001_a2_client_initial() {
        let client = initial_keys(&ODCID, rustls::Side::Client, Version::V1);
        let header = Header::Initial {
            version: VERSION_1,
            dst_cid: cid(&ODCID),
            src_cid: ConnectionId::EMPTY,
            token: Bytes::new(),
            number: PacketNumber::U32(2),
        };
        let mut buf = Vec::new();
        let partial = header.encode(&mut buf);
        // The unprotected header with a placeholder Length.
        assert_eq!(buf, hex!("c300000001088394c8f03e5157080000400000000002"));
        assert_eq!(partial.header_len, 22);
        assert_eq!(partial.pn, Some((18, 4)));
        buf.extend_from_slice(&CLIENT_CRYPTO);
        buf.resize(1200 - 16, 0); // PADDING up to a 1200-byte datagram
        partial
            .finish(&mut buf, &*client.local.header, &*client.local.packet, 2)
            .unwrap();
        assert_eq!(buf[..], CLIENT_INITIAL[..]);

        // And back, as the server sees it.
        let server = initial_keys(&ODCID, rustls::Side::Server, Version::V1);
        let (partial, rest) = PartialDecode::new(BytesMut::from(&CLIENT_INITIAL[..]), 8).unwrap();
        assert!(rest.is_none());
        assert_eq!(partial.kind(), PacketType::Initial);
        assert!(partial.is_long() && partial.is_initial());
        assert_eq!(partial.version(), Some(VERSION_1));
        assert_eq!(partial.dst_cid(), &cid(&ODCID));
        assert_eq!(partial.src_cid(), Some(&ConnectionId::EMPTY));
        assert_eq!(partial.token(), Some(&[][..]));
        assert_eq!(partial.len(), 1200);
        let mut packet = partial.finish(Some(&*server.remote.header)).unwrap();
        assert_eq!(packet.header, header);
        assert_eq!(
            packet.header_data[..],
            hex!("c300000001088394c8f03e5157080000449e00000002")
        );
        assert_eq!(packet.reserved_bits(), 0);
        let pn = packet.number().unwrap().expand(0);
        assert_eq!(pn, 2);
        packet.decrypt(&*server.remote.packet, pn).unwrap();
        assert_eq!(packet.payload.len(), 1162);
        assert_eq!(packet.payload[..245], CLIENT_CRYPTO[..]);
        assert!(packet.payload[245..].iter().all(|b| *b == 0));
    }

    #[test]
    fn rfc9001_a3_server_initial() {
        let server = initial_keys(&ODCID, rustls::Side::Server, Version::V1);
        let header = Header::Initial {
            version: VERSION_1,
            dst_cid: ConnectionId::EMPTY,
            src_cid: cid(&hex!("f067a5502a4262b5")),
            token: Bytes::new(),
            number: PacketNumber::U16(1),
        };
        let mut buf = Vec::new();
        let partial = header.encode(&mut buf);
        buf.extend_from_slice(&SERVER_FRAMES);
        partial
            .finish(&mut buf, &*server.local.header, &*server.local.packet, 1)
            .unwrap();
        assert_eq!(buf[..], SERVER_INITIAL[..]);

        let client = initial_keys(&ODCID, rustls::Side::Client, Version::V1);
        let (partial, rest) = PartialDecode::new(BytesMut::from(&SERVER_INITIAL[..]), 0).unwrap();
        assert!(rest.is_none());
        let mut packet = partial.finish(Some(&*client.remote.header)).unwrap();
        assert_eq!(packet.header, header);
        assert_eq!(
            packet.header_data[..],
            hex!("c1000000010008f067a5502a4262b50040750001")
        );
        packet.decrypt(&*client.remote.packet, 1).unwrap();
        assert_eq!(packet.payload[..], SERVER_FRAMES[..]);
    }

    #[test]
    fn rfc9001_a4_and_rfc9369_retry() {
        for (bytes, version) in [(RETRY_V1, VERSION_1), (RETRY_V2, VERSION_2)] {
            let (partial, rest) = PartialDecode::new(BytesMut::from(&bytes[..]), 8).unwrap();
            assert!(rest.is_none());
            assert_eq!(partial.kind(), PacketType::Retry);
            assert_eq!(partial.version(), Some(version));
            assert_eq!(partial.token(), Some(&b"token"[..]));
            assert!(partial.is_valid_retry(&cid(&ODCID)));
            assert!(!partial.is_valid_retry(&cid(&hex!("8394c8f03e515709"))));
            let packet = partial.finish(None).unwrap();
            assert_eq!(
                packet.header,
                Header::Retry {
                    version,
                    dst_cid: ConnectionId::EMPTY,
                    src_cid: cid(&hex!("f067a5502a4262b5")),
                }
            );
            assert_eq!(&packet.payload[..], b"token");
            assert_eq!(packet.number(), None);

            let mut tampered = bytes;
            tampered[20] ^= 1;
            assert!(!is_valid_retry(version, &cid(&ODCID), &tampered));

            // Our own Retry (unused bits zero) verifies and decodes to the same fields.
            let mut buf = Vec::new();
            encode_retry(
                &mut buf,
                version,
                &ConnectionId::EMPTY,
                &cid(&hex!("f067a5502a4262b5")),
                &cid(&ODCID),
                b"token",
            )
            .unwrap();
            assert_eq!(buf[1..20], bytes[1..20]);
            assert!(is_valid_retry(version, &cid(&ODCID), &buf));
        }
        assert!(encode_retry(
            &mut Vec::new(),
            0xabcd,
            &ConnectionId::EMPTY,
            &ConnectionId::EMPTY,
            &ConnectionId::EMPTY,
            b"t"
        )
        .is_err());
    }

    fn chacha_keys() -> (Box<dyn HeaderProtectionKey>, Box<dyn PacketKey>) {
        let alg = cipher_suite::TLS13_CHACHA20_POLY1305_SHA256
            .tls13()
            .and_then(|s| s.quic)
            .expect("ChaCha20 QUIC algorithm");
        // RFC 9001 Appendix A.5: key, iv and hp derived from the given secret.
        let key = hex!("c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8");
        let iv = hex!("e0459b3474bdd0e44a41c144");
        let hp = hex!("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4");
        (
            alg.header_protection_key(AeadKey::from(hp)),
            alg.packet_key(AeadKey::from(key), Iv::new(iv)),
        )
    }

    #[test]
    fn rfc9001_a5_chacha20_short_header() {
        let (hp, pk) = chacha_keys();
        let pn = 654_360_564;
        let number = PacketNumber::U24(0x00bff4);
        let header = Header::Short {
            spin: false,
            key_phase: false,
            dst_cid: ConnectionId::EMPTY,
            number,
        };
        let mut buf = Vec::new();
        let partial = header.encode(&mut buf);
        assert_eq!(buf, hex!("4200bff4"));
        assert_eq!(partial.min_payload_len(), 1);
        buf.push(0x01); // PING
        partial.finish(&mut buf, &*hp, &*pk, pn).unwrap();
        assert_eq!(buf[..], CHACHA_PACKET[..]);

        let (partial, rest) = PartialDecode::new(BytesMut::from(&CHACHA_PACKET[..]), 0).unwrap();
        assert!(rest.is_none());
        assert_eq!(partial.kind(), PacketType::Short);
        let mut packet = partial.finish(Some(&*hp)).unwrap();
        assert_eq!(packet.header, header);
        assert_eq!(number.expand(654_360_563 + 1), pn);
        packet.decrypt(&*pk, pn).unwrap();
        assert_eq!(&packet.payload[..], &[0x01]);
        // Wrong packet number: authentication fails.
        let (partial, _) = PartialDecode::new(BytesMut::from(&CHACHA_PACKET[..]), 0).unwrap();
        let mut packet = partial.finish(Some(&*hp)).unwrap();
        assert_eq!(packet.decrypt(&*pk, pn + 1), Err(DecryptError));
    }

    #[test]
    fn rfc9000_a2_a3_packet_number_examples() {
        // A.2: 0xac5c02 with 0xabe8b3 acknowledged needs 16 bits; 0xace8fe needs 24.
        assert_eq!(
            PacketNumber::new(0xac5c02, Some(0xabe8b3)),
            PacketNumber::U16(0x5c02)
        );
        assert_eq!(
            PacketNumber::new(0xace8fe, Some(0xabe8b3)),
            PacketNumber::U24(0xace8fe)
        );
        // A.3: largest 0xa82f30ea, 16-bit 0x9b32 decodes to 0xa82f9b32.
        assert_eq!(PacketNumber::U16(0x9b32).expand(0xa82f30ea + 1), 0xa82f9b32);
        assert_eq!(PacketNumber::new(0, None), PacketNumber::U8(0));
        assert_eq!(PacketNumber::new(127, None).len(), 2);
        assert_eq!(PacketNumber::new(126, None).len(), 1);
        assert_eq!(PacketNumber::new(1 << 40, Some(0)).len(), 4);
        // Near zero and near 2^62 the window does not wrap.
        assert_eq!(PacketNumber::U8(0xff).expand(0), 0xff);
        assert_eq!(PacketNumber::U8(0).expand((1 << 62) - 1), (1 << 62) - 256);
        assert!(PacketNumber::decode(0, &mut &[1u8][..]).is_err());
        assert!(PacketNumber::decode(5, &mut &[1u8; 8][..]).is_err());
        assert!(PacketNumber::decode(2, &mut &[1u8][..]).is_err());
    }

    #[test]
    fn version_negotiation_roundtrip() {
        let mut buf = Vec::new();
        let dst = cid(&hex!("0102"));
        let src = cid(&hex!("0a0b0c0d0e"));
        encode_version_negotiation(&mut buf, 0x5a, &dst, &src, &[VERSION_1, 0x1a2a3a4a]);
        let (partial, rest) = PartialDecode::new(BytesMut::from(&buf[..]), 8).unwrap();
        assert!(rest.is_none());
        assert_eq!(partial.kind(), PacketType::VersionNegotiate);
        assert_eq!(partial.version(), Some(0));
        let packet = partial.finish(None).unwrap();
        assert_eq!(
            packet.header,
            Header::VersionNegotiate {
                random: 0x5a,
                src_cid: src,
                dst_cid: dst
            }
        );
        assert_eq!(
            packet.versions().collect::<Vec<_>>(),
            [VERSION_1, 0x1a2a3a4a]
        );
        assert!(is_reserved_version(0x1a2a3a4a));
        assert!(!is_reserved_version(VERSION_1));

        buf.push(0);
        assert!(PartialDecode::new(BytesMut::from(&buf[..]), 8).is_err());
    }

    #[test]
    fn unsupported_version_reports_cids() {
        let mut buf = vec![0xc0];
        buf.extend_from_slice(&0xff00_001du32.to_be_bytes());
        buf.extend_from_slice(&[2, 1, 2, 3, 7, 8, 9]);
        buf.resize(1200, 0);
        match PartialDecode::new(BytesMut::from(&buf[..]), 8) {
            Err(PacketDecodeError::UnsupportedVersion {
                src_cid,
                dst_cid,
                version,
            }) => {
                assert_eq!(version, 0xff00_001d);
                assert_eq!(dst_cid, cid(&[1, 2]));
                assert_eq!(src_cid, cid(&[7, 8, 9]));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn header_checks() {
        // Fixed bit cleared.
        assert!(matches!(
            PartialDecode::new(BytesMut::from(&[0x00u8, 1, 2, 3][..]), 0),
            Err(PacketDecodeError::InvalidHeader(_))
        ));
        // Length beyond the datagram.
        let mut bad = CLIENT_INITIAL.to_vec();
        bad.truncate(1000);
        assert!(PartialDecode::new(BytesMut::from(&bad[..]), 0).is_err());
        // Missing key.
        let (partial, _) = PartialDecode::new(BytesMut::from(&CLIENT_INITIAL[..]), 0).unwrap();
        assert!(partial.finish(None).is_err());
        // Too short for the sample.
        let client = initial_keys(&ODCID, rustls::Side::Client, Version::V1);
        let (partial, _) =
            PartialDecode::new(BytesMut::from(&[0x40u8, 1, 2, 3, 4][..]), 0).unwrap();
        assert!(partial.finish(Some(&*client.remote.header)).is_err());
        // Empty datagram.
        assert!(PartialDecode::new(BytesMut::new(), 0).is_err());
    }

    #[test]
    fn encode_errors_truncate() {
        let (hp, pk) = chacha_keys();
        let mut buf = vec![0xee; 3];
        let header = Header::Short {
            spin: true,
            key_phase: true,
            dst_cid: ConnectionId::EMPTY,
            number: PacketNumber::U8(7),
        };
        let partial = header.encode(&mut buf);
        buf.extend_from_slice(&[0, 0]);
        assert_eq!(partial.min_payload_len(), 3);
        assert_eq!(
            partial.finish(&mut buf, &*hp, &*pk, 7),
            Err(PacketEncodeError::PayloadTooShort)
        );
        assert_eq!(buf, [0xee; 3]);

        let partial = header.encode(&mut buf);
        buf.extend_from_slice(&[0; 8]);
        assert_eq!(
            partial.finish(&mut buf, &*hp, &*pk, 8),
            Err(PacketEncodeError::PacketNumberMismatch)
        );
        assert_eq!(buf, [0xee; 3]);

        let long = Header::Long {
            version: VERSION_1,
            ty: LongType::Handshake,
            dst_cid: ConnectionId::EMPTY,
            src_cid: ConnectionId::EMPTY,
            number: PacketNumber::U8(0),
        };
        let partial = long.encode(&mut buf);
        buf.resize(buf.len() + MAX_LONG_PACKET_LENGTH, 0);
        assert_eq!(
            partial.finish(&mut buf, &*hp, &*pk, 0),
            Err(PacketEncodeError::PacketTooLong)
        );
        assert_eq!(buf, [0xee; 3]);

        let retry = Header::Retry {
            version: VERSION_1,
            dst_cid: ConnectionId::EMPTY,
            src_cid: ConnectionId::EMPTY,
        };
        let partial = retry.encode(&mut buf);
        assert_eq!(
            partial.finish(&mut buf, &*hp, &*pk, 0),
            Err(PacketEncodeError::NotProtected)
        );
        assert_eq!(buf, [0xee; 3]);
    }

    #[test]
    fn reserved_bits_are_reported() {
        let (hp, pk) = chacha_keys();
        let header = Header::Short {
            spin: false,
            key_phase: true,
            dst_cid: cid(&[9; 4]),
            number: PacketNumber::U16(300),
        };
        let mut buf = Vec::new();
        let partial = header.encode(&mut buf);
        buf[0] |= 0x18; // set both reserved bits before protection
        buf.extend_from_slice(&[1; 10]);
        partial.finish(&mut buf, &*hp, &*pk, 300).unwrap();
        let (partial, _) = PartialDecode::new(BytesMut::from(&buf[..]), 4).unwrap();
        let mut packet = partial.finish(Some(&*hp)).unwrap();
        assert_eq!(packet.header, header);
        packet.decrypt(&*pk, 300).unwrap();
        assert_eq!(packet.reserved_bits(), 0x18);
    }

    fn arb_cid() -> impl Strategy<Value = ConnectionId> {
        proptest::collection::vec(any::<u8>(), 0..=MAX_CID_SIZE).prop_map(|v| cid(&v))
    }

    fn arb_pn() -> impl Strategy<Value = (u64, PacketNumber)> {
        (0u64..(1 << 62), 0usize..4).prop_map(|(pn, len)| {
            let n = match len {
                0 => PacketNumber::U8(pn as u8),
                1 => PacketNumber::U16(pn as u16),
                2 => PacketNumber::U24((pn & 0xff_ffff) as u32),
                _ => PacketNumber::U32(pn as u32),
            };
            (pn, n)
        })
    }

    fn arb_header() -> impl Strategy<Value = (u64, Header)> {
        let version = prop_oneof![Just(VERSION_1), Just(VERSION_2)];
        prop_oneof![
            (
                version.clone(),
                arb_cid(),
                arb_cid(),
                proptest::collection::vec(any::<u8>(), 0..64),
                arb_pn()
            )
                .prop_map(|(version, dst_cid, src_cid, token, (pn, number))| (
                    pn,
                    Header::Initial {
                        version,
                        dst_cid,
                        src_cid,
                        token: token.into(),
                        number
                    }
                )),
            (version, any::<bool>(), arb_cid(), arb_cid(), arb_pn()).prop_map(
                |(version, hs, dst_cid, src_cid, (pn, number))| (
                    pn,
                    Header::Long {
                        version,
                        ty: if hs {
                            LongType::Handshake
                        } else {
                            LongType::ZeroRtt
                        },
                        dst_cid,
                        src_cid,
                        number
                    }
                )
            ),
            (any::<bool>(), any::<bool>(), arb_cid(), arb_pn()).prop_map(
                |(spin, key_phase, dst_cid, (pn, number))| (
                    pn,
                    Header::Short {
                        spin,
                        key_phase,
                        dst_cid,
                        number
                    }
                )
            ),
        ]
    }

    /// Seal `header` + `payload` with the client's Initial keys for `version`.
    fn seal(header: &Header, pn: u64, payload: &[u8], buf: &mut Vec<u8>) -> PartialEncode {
        let version = tls_version(header.version().unwrap_or(VERSION_1)).unwrap();
        let keys = initial_keys(&ODCID, rustls::Side::Client, version);
        let partial = header.encode(buf);
        buf.extend_from_slice(payload);
        partial
            .finish(buf, &*keys.local.header, &*keys.local.packet, pn)
            .unwrap();
        partial
    }

    proptest! {
        #[test]
        fn packet_number_roundtrip(
            pn in 0u64..(1 << 62),
            gap in 0u64..(1 << 31),
            progress in any::<u64>(),
            acked in any::<bool>(),
        ) {
            let largest_acked = if acked { pn.checked_sub(gap) } else { None };
            let number = PacketNumber::new(pn, largest_acked);
            let mut buf = Vec::new();
            number.encode(&mut buf);
            prop_assert_eq!(buf.len(), number.len());
            let decoded = PacketNumber::decode(buf.len(), &mut &buf[..]).unwrap();
            prop_assert_eq!(decoded, number);
            // The receiver has seen anything from the acknowledged packet up to pn - 1.
            let (low, high) = match largest_acked {
                Some(la) => (la + 1, pn),
                None => (0, pn),
            };
            let expected = if high > low { low + progress % (high - low + 1) } else { low };
            if number.len() < 4 || pn - largest_acked.unwrap_or(0) < (1 << 31) {
                prop_assert_eq!(decoded.expand(expected), pn);
            }
        }

        #[test]
        fn expand_is_closest(truncated in any::<u32>(), expected in 0u64..(1 << 62), len in 1usize..=4) {
            let number = PacketNumber::decode(len, &mut &truncated.to_be_bytes()[4 - len..]).unwrap();
            let full = number.expand(expected);
            let win = 1u64 << (8 * len);
            prop_assert_eq!(full & (win - 1), u64::from(number.truncated()));
            prop_assert!(full.abs_diff(expected) <= win / 2);
        }

        #[test]
        fn header_roundtrip(
            (pn, header) in arb_header(),
            payload in proptest::collection::vec(any::<u8>(), 3..200),
        ) {
            let mut buf = Vec::new();
            let partial = seal(&header, pn, &payload, &mut buf);
            // Predicted size == written size.
            prop_assert_eq!(buf.len(), partial.header_len + payload.len() + 16);
            let version = tls_version(header.version().unwrap_or(VERSION_1)).unwrap();
            let keys = initial_keys(&ODCID, rustls::Side::Server, version);
            let (partial_dec, rest) =
                PartialDecode::new(BytesMut::from(&buf[..]), header.dst_cid().len()).unwrap();
            prop_assert!(rest.is_none());
            prop_assert_eq!(partial_dec.kind(), header.kind());
            prop_assert_eq!(partial_dec.len(), buf.len());
            prop_assert_eq!(partial_dec.dst_cid(), header.dst_cid());
            let mut packet = partial_dec.finish(Some(&*keys.remote.header)).unwrap();
            prop_assert_eq!(&packet.header, &header);
            prop_assert_eq!(packet.header_data.len(), partial.header_len);
            packet.decrypt(&*keys.remote.packet, pn).unwrap();
            prop_assert_eq!(&packet.payload[..], &payload[..]);
            prop_assert_eq!(packet.reserved_bits(), 0);
        }

        #[test]
        fn coalesced_datagram_splits(
            longs in proptest::collection::vec((arb_header(), proptest::collection::vec(any::<u8>(), 3..50)), 1..4),
            short in proptest::option::of(proptest::collection::vec(any::<u8>(), 3..50)),
        ) {
            let short_cid = cid(&[7; 8]);
            let mut datagram = Vec::new();
            let mut expected = Vec::new();
            for ((pn, header), payload) in longs {
                if header.kind() == PacketType::Short {
                    continue;
                }
                let start = datagram.len();
                let _ = seal(&header, pn, &payload, &mut datagram);
                expected.push((datagram.len() - start, header, pn, payload));
            }
            if let Some(payload) = short {
                let header = Header::Short { spin: false, key_phase: false, dst_cid: short_cid, number: PacketNumber::U8(1) };
                let start = datagram.len();
                let _ = seal(&header, 1, &payload, &mut datagram);
                expected.push((datagram.len() - start, header, 1, payload));
            }
            let mut next = if datagram.is_empty() { None } else { Some(BytesMut::from(&datagram[..])) };
            let mut seen = 0;
            while let Some(bytes) = next {
                let (partial, rest) = PartialDecode::new(bytes, short_cid.len()).unwrap();
                let (len, header, pn, payload) = &expected[seen];
                prop_assert_eq!(partial.len(), *len);
                let version = tls_version(header.version().unwrap_or(VERSION_1)).unwrap();
                let keys = initial_keys(&ODCID, rustls::Side::Server, version);
                let mut packet = partial.finish(Some(&*keys.remote.header)).unwrap();
                prop_assert_eq!(&packet.header, header);
                packet.decrypt(&*keys.remote.packet, *pn).unwrap();
                prop_assert_eq!(&packet.payload[..], &payload[..]);
                seen += 1;
                next = rest;
            }
            prop_assert_eq!(seen, expected.len());
        }

        #[test]
        fn random_datagrams_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..1500),
            cid_len in 0usize..=24,
        ) {
            decode_all(&bytes, cid_len);
        }

        #[test]
        fn mutated_initials_never_panic(
            flips in proptest::collection::vec((0usize..1200, any::<u8>()), 0..8),
            cut in 0usize..=1300,
            long_header in any::<bool>(),
        ) {
            let mut bytes = if long_header { CLIENT_INITIAL.to_vec() } else { CHACHA_PACKET.to_vec() };
            for (at, x) in flips {
                if let Some(b) = bytes.get_mut(at % 64) {
                    *b ^= x;
                }
            }
            bytes.resize(cut.min(bytes.len() + 100), 0);
            decode_all(&bytes, 0);
        }
    }

    /// Run every packet of a datagram through decode, unprotect and decrypt.
    fn decode_all(bytes: &[u8], cid_len: usize) {
        let keys = initial_keys(&ODCID, rustls::Side::Server, Version::V1);
        let (hp, pk) = chacha_keys();
        let mut next = Some(BytesMut::from(bytes));
        while let Some(b) = next.take() {
            let Ok((partial, rest)) = PartialDecode::new(b, cid_len) else {
                break;
            };
            let _ = (
                partial.token(),
                partial.data(),
                partial.is_valid_retry(&cid(&ODCID)),
            );
            let key: &dyn HeaderProtectionKey = if partial.is_long() {
                &*keys.remote.header
            } else {
                &*hp
            };
            if let Ok(mut packet) = partial.finish(Some(key)) {
                let _ = packet.reserved_bits();
                let _ = packet.versions().count();
                if let Some(n) = packet.number() {
                    let pn = n.expand(0);
                    let _ = if packet.header.is_long() {
                        packet.decrypt(&*keys.remote.packet, pn)
                    } else {
                        packet.decrypt(&*pk, pn)
                    };
                }
            }
            next = rest;
        }
    }
}
