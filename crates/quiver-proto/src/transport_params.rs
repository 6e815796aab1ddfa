//! QUIC transport parameters (RFC 9000 §7.4, §18), carried in the TLS
//! `quic_transport_parameters` extension, plus `max_datagram_frame_size` (RFC 9221 §3),
//! `grease_quic_bit` (RFC 9287 §3) and `initial_max_path_id`
//! (draft-ietf-quic-multipath-21 §2.1).
//!
//! [`TransportParameters::decode`] checks everything that can be checked from the
//! parameters alone and reports violations as TRANSPORT_PARAMETER_ERROR (RFC 9000 §7.4,
//! §18.2): duplicates, malformed values, out-of-range values, and server-only parameters
//! sent by a client. Unknown parameters, including reserved GREASE ones (`31 * N + 27`,
//! RFC 9000 §18.1), are ignored. Checks that need connection state — that the connection
//! IDs match those seen in packet headers (RFC 9000 §7.3) and that required parameters are
//! present — are the connection's job.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use bytes::BufMut;

use crate::cid::{ConnectionId, ResetToken, MAX_CID_SIZE, RESET_TOKEN_SIZE};
use crate::coding::{size_of_varint, BufExt, BufMutExt, VarInt};
use crate::error::TransportError;
use crate::shared::{PathId, Side};
use crate::version::VersionInformation;

/// Transport parameter identifiers (RFC 9000 §18.2, RFC 9221 §3, RFC 9287 §3).
mod id {
    pub const ORIGINAL_DESTINATION_CONNECTION_ID: u64 = 0x00;
    pub const MAX_IDLE_TIMEOUT: u64 = 0x01;
    pub const STATELESS_RESET_TOKEN: u64 = 0x02;
    pub const MAX_UDP_PAYLOAD_SIZE: u64 = 0x03;
    pub const INITIAL_MAX_DATA: u64 = 0x04;
    pub const INITIAL_MAX_STREAM_DATA_BIDI_LOCAL: u64 = 0x05;
    pub const INITIAL_MAX_STREAM_DATA_BIDI_REMOTE: u64 = 0x06;
    pub const INITIAL_MAX_STREAM_DATA_UNI: u64 = 0x07;
    pub const INITIAL_MAX_STREAMS_BIDI: u64 = 0x08;
    pub const INITIAL_MAX_STREAMS_UNI: u64 = 0x09;
    pub const ACK_DELAY_EXPONENT: u64 = 0x0a;
    pub const MAX_ACK_DELAY: u64 = 0x0b;
    pub const DISABLE_ACTIVE_MIGRATION: u64 = 0x0c;
    pub const PREFERRED_ADDRESS: u64 = 0x0d;
    pub const ACTIVE_CONNECTION_ID_LIMIT: u64 = 0x0e;
    pub const INITIAL_SOURCE_CONNECTION_ID: u64 = 0x0f;
    pub const RETRY_SOURCE_CONNECTION_ID: u64 = 0x10;
    pub const VERSION_INFORMATION: u64 = 0x11;
    pub const MAX_DATAGRAM_FRAME_SIZE: u64 = 0x20;
    pub const GREASE_QUIC_BIT: u64 = 0x2ab2;
    pub const INITIAL_MAX_PATH_ID: u64 = 0x3e;
}

/// Smallest allowed `max_udp_payload_size` (RFC 9000 §18.2).
pub const MIN_UDP_PAYLOAD_SIZE: u64 = 1200;
/// Default `max_udp_payload_size`: the largest UDP payload (RFC 9000 §18.2).
pub const DEFAULT_MAX_UDP_PAYLOAD_SIZE: u64 = 65527;
/// Largest allowed `ack_delay_exponent` (RFC 9000 §18.2).
pub const MAX_ACK_DELAY_EXPONENT: u64 = 20;
/// `max_ack_delay` must be below 2^14 milliseconds (RFC 9000 §18.2).
pub const MAX_ACK_DELAY_LIMIT: u64 = 1 << 14;
/// Stream-count limits may not exceed 2^60 (RFC 9000 §4.6).
pub const MAX_STREAM_COUNT: u64 = 1 << 60;

/// The server's preferred address for migration after the handshake (RFC 9000 §9.6,
/// §18.2). An address family the server does not offer is `None` (on the wire, an
/// all-zero address and port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreferredAddress {
    /// IPv4 address and port.
    pub address_v4: Option<SocketAddrV4>,
    /// IPv6 address and port (flow info and scope id are not carried).
    pub address_v6: Option<SocketAddrV6>,
    /// Connection ID to use on the new address (never empty).
    pub connection_id: ConnectionId,
    /// Stateless reset token for `connection_id`.
    pub stateless_reset_token: ResetToken,
}

impl PreferredAddress {
    fn encoded_len(&self) -> usize {
        4 + 2 + 16 + 2 + 1 + self.connection_id.len() + RESET_TOKEN_SIZE
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        let v4 = self
            .address_v4
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        buf.put_slice(&v4.ip().octets());
        buf.put_u16(v4.port());
        let v6 = self
            .address_v6
            .unwrap_or(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0));
        buf.put_slice(&v6.ip().octets());
        buf.put_u16(v6.port());
        buf.put_u8(self.connection_id.len() as u8);
        buf.put_slice(&self.connection_id);
        buf.put_slice(&self.stateless_reset_token.0);
    }

    fn decode(mut r: &[u8]) -> Result<Self, TransportError> {
        let malformed = || TransportError::TRANSPORT_PARAMETER_ERROR("malformed preferred_address");
        let mut v4 = [0u8; 4];
        take(&mut r, &mut v4).ok_or_else(malformed)?;
        let port4 = r.get_u16_checked().map_err(|_| malformed())?;
        let mut v6 = [0u8; 16];
        take(&mut r, &mut v6).ok_or_else(malformed)?;
        let port6 = r.get_u16_checked().map_err(|_| malformed())?;
        let cid_len = usize::from(r.get_u8_checked().map_err(|_| malformed())?);
        // RFC 9000 §18.2: a zero-length connection ID here is an error.
        if cid_len == 0 || cid_len > MAX_CID_SIZE || r.len() < cid_len {
            return Err(malformed());
        }
        let (cid, rest) = r.split_at(cid_len);
        r = rest;
        let connection_id = ConnectionId::new(cid).ok_or_else(malformed)?;
        let mut token = [0u8; RESET_TOKEN_SIZE];
        take(&mut r, &mut token).ok_or_else(malformed)?;
        if !r.is_empty() {
            return Err(malformed());
        }
        let v4 = Ipv4Addr::from(v4);
        let v6 = Ipv6Addr::from(v6);
        Ok(PreferredAddress {
            address_v4: (!(v4.is_unspecified() && port4 == 0))
                .then(|| SocketAddrV4::new(v4, port4)),
            address_v6: (!(v6.is_unspecified() && port6 == 0))
                .then(|| SocketAddrV6::new(v6, port6, 0, 0)),
            connection_id,
            stateless_reset_token: ResetToken(token),
        })
    }
}

/// Copy exactly `out.len()` bytes from the front of `r`.
fn take(r: &mut &[u8], out: &mut [u8]) -> Option<()> {
    if r.len() < out.len() {
        return None;
    }
    let (head, rest) = r.split_at(out.len());
    out.copy_from_slice(head);
    *r = rest;
    Some(())
}

/// The transport parameters one endpoint announces (RFC 9000 §18.2).
///
/// Integer parameters hold their wire values: durations in milliseconds, limits in bytes
/// or streams. [`Default`] gives the RFC defaults that apply when a parameter is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportParameters {
    /// `original_destination_connection_id` (0x00, server only): the DCID of the
    /// client's first Initial.
    pub original_dst_cid: Option<ConnectionId>,
    /// `max_idle_timeout` (0x01) in milliseconds; 0 disables the idle timeout.
    pub max_idle_timeout: VarInt,
    /// `stateless_reset_token` (0x02, server only).
    pub stateless_reset_token: Option<ResetToken>,
    /// `max_udp_payload_size` (0x03), at least 1200; default 65527.
    pub max_udp_payload_size: VarInt,
    /// `initial_max_data` (0x04): connection-level flow-control limit.
    pub initial_max_data: VarInt,
    /// `initial_max_stream_data_bidi_local` (0x05): limit for bidirectional streams the
    /// sender of these parameters opens.
    pub initial_max_stream_data_bidi_local: VarInt,
    /// `initial_max_stream_data_bidi_remote` (0x06): limit for bidirectional streams its
    /// peer opens.
    pub initial_max_stream_data_bidi_remote: VarInt,
    /// `initial_max_stream_data_uni` (0x07): limit for unidirectional streams its peer
    /// opens.
    pub initial_max_stream_data_uni: VarInt,
    /// `initial_max_streams_bidi` (0x08), at most 2^60.
    pub initial_max_streams_bidi: VarInt,
    /// `initial_max_streams_uni` (0x09), at most 2^60.
    pub initial_max_streams_uni: VarInt,
    /// `ack_delay_exponent` (0x0a), at most 20; default 3.
    pub ack_delay_exponent: VarInt,
    /// `max_ack_delay` (0x0b) in milliseconds, below 2^14; default 25.
    pub max_ack_delay: VarInt,
    /// `disable_active_migration` (0x0c).
    pub disable_active_migration: bool,
    /// `preferred_address` (0x0d, server only).
    pub preferred_address: Option<PreferredAddress>,
    /// `active_connection_id_limit` (0x0e), at least 2; default 2.
    pub active_connection_id_limit: VarInt,
    /// `initial_source_connection_id` (0x0f).
    pub initial_src_cid: Option<ConnectionId>,
    /// `retry_source_connection_id` (0x10, server only, after a Retry).
    pub retry_src_cid: Option<ConnectionId>,
    /// `max_datagram_frame_size` (0x20, RFC 9221); `None` means DATAGRAM is unsupported.
    pub max_datagram_frame_size: Option<VarInt>,
    /// `grease_quic_bit` (0x2ab2, RFC 9287): the sender accepts packets with the fixed
    /// bit cleared.
    pub grease_quic_bit: bool,
    /// `version_information` (0x11, RFC 9368 §3): chosen and available versions.
    pub version_information: Option<VersionInformation>,
    /// `initial_max_path_id` (0x3e, draft-ietf-quic-multipath-21 §2.1): the sender
    /// supports multipath and accepts path IDs up to this one; `None` means no
    /// multipath. Never remembered for 0-RTT.
    pub initial_max_path_id: Option<PathId>,
}

impl Default for TransportParameters {
    /// The values that apply when a parameter is absent (RFC 9000 §18.2).
    fn default() -> Self {
        Self {
            original_dst_cid: None,
            max_idle_timeout: VarInt::from_u32(0),
            stateless_reset_token: None,
            max_udp_payload_size: VarInt::from_u32(DEFAULT_MAX_UDP_PAYLOAD_SIZE as u32),
            initial_max_data: VarInt::from_u32(0),
            initial_max_stream_data_bidi_local: VarInt::from_u32(0),
            initial_max_stream_data_bidi_remote: VarInt::from_u32(0),
            initial_max_stream_data_uni: VarInt::from_u32(0),
            initial_max_streams_bidi: VarInt::from_u32(0),
            initial_max_streams_uni: VarInt::from_u32(0),
            ack_delay_exponent: VarInt::from_u32(3),
            max_ack_delay: VarInt::from_u32(25),
            disable_active_migration: false,
            preferred_address: None,
            active_connection_id_limit: VarInt::from_u32(2),
            initial_src_cid: None,
            retry_src_cid: None,
            max_datagram_frame_size: None,
            grease_quic_bit: false,
            version_information: None,
            initial_max_path_id: None,
        }
    }
}

impl TransportParameters {
    /// The integer parameters with their ids and defaults, in id order.
    fn integers(&self) -> [(u64, VarInt, VarInt); 11] {
        let d = Self::default();
        [
            (
                id::MAX_IDLE_TIMEOUT,
                self.max_idle_timeout,
                d.max_idle_timeout,
            ),
            (
                id::MAX_UDP_PAYLOAD_SIZE,
                self.max_udp_payload_size,
                d.max_udp_payload_size,
            ),
            (
                id::INITIAL_MAX_DATA,
                self.initial_max_data,
                d.initial_max_data,
            ),
            (
                id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL,
                self.initial_max_stream_data_bidi_local,
                d.initial_max_stream_data_bidi_local,
            ),
            (
                id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE,
                self.initial_max_stream_data_bidi_remote,
                d.initial_max_stream_data_bidi_remote,
            ),
            (
                id::INITIAL_MAX_STREAM_DATA_UNI,
                self.initial_max_stream_data_uni,
                d.initial_max_stream_data_uni,
            ),
            (
                id::INITIAL_MAX_STREAMS_BIDI,
                self.initial_max_streams_bidi,
                d.initial_max_streams_bidi,
            ),
            (
                id::INITIAL_MAX_STREAMS_UNI,
                self.initial_max_streams_uni,
                d.initial_max_streams_uni,
            ),
            (
                id::ACK_DELAY_EXPONENT,
                self.ack_delay_exponent,
                d.ack_delay_exponent,
            ),
            (id::MAX_ACK_DELAY, self.max_ack_delay, d.max_ack_delay),
            (
                id::ACTIVE_CONNECTION_ID_LIMIT,
                self.active_connection_id_limit,
                d.active_connection_id_limit,
            ),
        ]
    }

    /// Append the encoded parameters (RFC 9000 §18) to `buf`.
    ///
    /// Integer parameters equal to their default and absent optional parameters are
    /// omitted, which the peer reads back as the same values.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        fn put_bytes(buf: &mut Vec<u8>, id: u64, value: &[u8]) {
            buf.put_var(id);
            buf.put_var(value.len() as u64);
            buf.put_slice(value);
        }
        if let Some(cid) = &self.original_dst_cid {
            put_bytes(buf, id::ORIGINAL_DESTINATION_CONNECTION_ID, cid);
        }
        if let Some(token) = &self.stateless_reset_token {
            put_bytes(buf, id::STATELESS_RESET_TOKEN, &token.0);
        }
        for (id, value, default) in self.integers() {
            if value != default {
                put_int(buf, id, value);
            }
        }
        if self.disable_active_migration {
            put_bytes(buf, id::DISABLE_ACTIVE_MIGRATION, &[]);
        }
        if let Some(addr) = &self.preferred_address {
            buf.put_var(id::PREFERRED_ADDRESS);
            buf.put_var(addr.encoded_len() as u64);
            addr.encode(buf);
        }
        if let Some(cid) = &self.initial_src_cid {
            put_bytes(buf, id::INITIAL_SOURCE_CONNECTION_ID, cid);
        }
        if let Some(cid) = &self.retry_src_cid {
            put_bytes(buf, id::RETRY_SOURCE_CONNECTION_ID, cid);
        }
        if let Some(size) = self.max_datagram_frame_size {
            put_int(buf, id::MAX_DATAGRAM_FRAME_SIZE, size);
        }
        if self.grease_quic_bit {
            put_bytes(buf, id::GREASE_QUIC_BIT, &[]);
        }
        if let Some(info) = &self.version_information {
            buf.put_var(id::VERSION_INFORMATION);
            buf.put_var(info.encoded_len() as u64);
            info.encode(buf);
        }
        if let Some(p) = self.initial_max_path_id {
            put_int(buf, id::INITIAL_MAX_PATH_ID, VarInt::from_u32(p.0));
        }
    }

    /// Number of bytes [`Self::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        fn bytes_len(id: u64, len: usize) -> usize {
            size_of_varint(id) + size_of_varint(len as u64) + len
        }
        fn int_len(id: u64, v: VarInt) -> usize {
            bytes_len(id, v.size())
        }
        let mut n = 0;
        n += self.original_dst_cid.map_or(0, |c| {
            bytes_len(id::ORIGINAL_DESTINATION_CONNECTION_ID, c.len())
        });
        n += self.stateless_reset_token.map_or(0, |_| {
            bytes_len(id::STATELESS_RESET_TOKEN, RESET_TOKEN_SIZE)
        });
        for (id, value, default) in self.integers() {
            if value != default {
                n += int_len(id, value);
            }
        }
        if self.disable_active_migration {
            n += bytes_len(id::DISABLE_ACTIVE_MIGRATION, 0);
        }
        n += self
            .preferred_address
            .map_or(0, |a| bytes_len(id::PREFERRED_ADDRESS, a.encoded_len()));
        n += self
            .initial_src_cid
            .map_or(0, |c| bytes_len(id::INITIAL_SOURCE_CONNECTION_ID, c.len()));
        n += self
            .retry_src_cid
            .map_or(0, |c| bytes_len(id::RETRY_SOURCE_CONNECTION_ID, c.len()));
        n += self
            .max_datagram_frame_size
            .map_or(0, |v| int_len(id::MAX_DATAGRAM_FRAME_SIZE, v));
        if self.grease_quic_bit {
            n += bytes_len(id::GREASE_QUIC_BIT, 0);
        }
        n += self
            .version_information
            .as_ref()
            .map_or(0, |i| bytes_len(id::VERSION_INFORMATION, i.encoded_len()));
        n += self.initial_max_path_id.map_or(0, |p| {
            int_len(id::INITIAL_MAX_PATH_ID, VarInt::from_u32(p.0))
        });
        n
    }

    /// Decode the parameters that `sender` sent (RFC 9000 §18).
    ///
    /// Fails with TRANSPORT_PARAMETER_ERROR on truncated or malformed input, duplicate
    /// parameters, out-of-range values and server-only parameters sent by a client.
    /// Unknown parameters are ignored. Never panics.
    pub fn decode(sender: Side, bytes: &[u8]) -> Result<Self, TransportError> {
        let mut params = Self::default();
        let mut seen = HashSet::new();
        let mut r = bytes;
        while !r.is_empty() {
            let param = r
                .get_var()
                .map_err(|_| err("truncated transport parameter id"))?;
            let len = r
                .get_var()
                .map_err(|_| err("truncated transport parameter length"))?;
            let len = usize::try_from(len)
                .ok()
                .filter(|len| *len <= r.len())
                .ok_or_else(|| err("transport parameter length exceeds the extension"))?;
            let (value, rest) = r.split_at(len);
            r = rest;
            // RFC 9000 §7.4: a parameter must not appear twice.
            if !seen.insert(param) {
                return Err(err("duplicate transport parameter"));
            }
            match param {
                id::ORIGINAL_DESTINATION_CONNECTION_ID => {
                    server_only(sender)?;
                    params.original_dst_cid = Some(cid(value)?);
                }
                id::MAX_IDLE_TIMEOUT => params.max_idle_timeout = int(value)?,
                id::STATELESS_RESET_TOKEN => {
                    server_only(sender)?;
                    let token: [u8; RESET_TOKEN_SIZE] = value
                        .try_into()
                        .map_err(|_| err("stateless_reset_token must be 16 bytes"))?;
                    params.stateless_reset_token = Some(ResetToken(token));
                }
                id::MAX_UDP_PAYLOAD_SIZE => params.max_udp_payload_size = int(value)?,
                id::INITIAL_MAX_DATA => params.initial_max_data = int(value)?,
                id::INITIAL_MAX_STREAM_DATA_BIDI_LOCAL => {
                    params.initial_max_stream_data_bidi_local = int(value)?
                }
                id::INITIAL_MAX_STREAM_DATA_BIDI_REMOTE => {
                    params.initial_max_stream_data_bidi_remote = int(value)?
                }
                id::INITIAL_MAX_STREAM_DATA_UNI => params.initial_max_stream_data_uni = int(value)?,
                id::INITIAL_MAX_STREAMS_BIDI => params.initial_max_streams_bidi = int(value)?,
                id::INITIAL_MAX_STREAMS_UNI => params.initial_max_streams_uni = int(value)?,
                id::ACK_DELAY_EXPONENT => params.ack_delay_exponent = int(value)?,
                id::MAX_ACK_DELAY => params.max_ack_delay = int(value)?,
                id::DISABLE_ACTIVE_MIGRATION => {
                    empty(value)?;
                    params.disable_active_migration = true;
                }
                id::PREFERRED_ADDRESS => {
                    server_only(sender)?;
                    params.preferred_address = Some(PreferredAddress::decode(value)?);
                }
                id::ACTIVE_CONNECTION_ID_LIMIT => params.active_connection_id_limit = int(value)?,
                id::INITIAL_SOURCE_CONNECTION_ID => params.initial_src_cid = Some(cid(value)?),
                id::RETRY_SOURCE_CONNECTION_ID => {
                    server_only(sender)?;
                    params.retry_src_cid = Some(cid(value)?);
                }
                id::MAX_DATAGRAM_FRAME_SIZE => params.max_datagram_frame_size = Some(int(value)?),
                id::GREASE_QUIC_BIT => {
                    empty(value)?;
                    params.grease_quic_bit = true;
                }
                id::VERSION_INFORMATION => {
                    params.version_information = Some(VersionInformation::decode(value)?);
                }
                id::INITIAL_MAX_PATH_ID => {
                    // draft-ietf-quic-multipath-21 §2.1: above 2^32 - 1 is an error.
                    let v = int(value)?.into_inner();
                    let p = PathId::from_wire(v)
                        .ok_or_else(|| err("initial_max_path_id above 2^32-1"))?;
                    params.initial_max_path_id = Some(p);
                }
                // RFC 9000 §7.4.2: unknown (and reserved, §18.1) parameters are ignored.
                _ => {}
            }
        }
        params.validate()?;
        Ok(params)
    }

    /// Range checks of RFC 9000 §18.2 and §4.6.
    fn validate(&self) -> Result<(), TransportError> {
        if self.max_udp_payload_size.into_inner() < MIN_UDP_PAYLOAD_SIZE {
            return Err(err("max_udp_payload_size below 1200"));
        }
        if self.ack_delay_exponent.into_inner() > MAX_ACK_DELAY_EXPONENT {
            return Err(err("ack_delay_exponent above 20"));
        }
        if self.max_ack_delay.into_inner() >= MAX_ACK_DELAY_LIMIT {
            return Err(err("max_ack_delay of 2^14 ms or more"));
        }
        if self.active_connection_id_limit.into_inner() < 2 {
            return Err(err("active_connection_id_limit below 2"));
        }
        if self.initial_max_streams_bidi.into_inner() > MAX_STREAM_COUNT
            || self.initial_max_streams_uni.into_inner() > MAX_STREAM_COUNT
        {
            return Err(err("initial_max_streams above 2^60"));
        }
        Ok(())
    }
}

fn err(reason: &'static str) -> TransportError {
    TransportError::TRANSPORT_PARAMETER_ERROR(reason)
}

fn put_int(buf: &mut Vec<u8>, id: u64, value: VarInt) {
    buf.put_var(id);
    buf.put_var(value.size() as u64);
    value.encode(buf);
}

/// RFC 9000 §18.2: these parameters may only be sent by a server.
fn server_only(sender: Side) -> Result<(), TransportError> {
    if sender.is_client() {
        Err(err("server-only transport parameter sent by a client"))
    } else {
        Ok(())
    }
}

/// An integer parameter: exactly one varint filling the value.
fn int(mut value: &[u8]) -> Result<VarInt, TransportError> {
    let v = VarInt::decode(&mut value).map_err(|_| err("malformed integer parameter"))?;
    if !value.is_empty() {
        return Err(err("integer parameter longer than its varint"));
    }
    Ok(v)
}

fn cid(value: &[u8]) -> Result<ConnectionId, TransportError> {
    ConnectionId::new(value).ok_or_else(|| err("connection ID longer than 20 bytes"))
}

fn empty(value: &[u8]) -> Result<(), TransportError> {
    if value.is_empty() {
        Ok(())
    } else {
        Err(err("zero-length parameter with a value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TransportErrorCode;
    use proptest::prelude::*;

    fn decode_err(sender: Side, bytes: &[u8]) -> TransportError {
        TransportParameters::decode(sender, bytes).expect_err("should be rejected")
    }

    fn param(id: u64, value: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.put_var(id);
        buf.put_var(value.len() as u64);
        buf.put_slice(value);
        buf
    }

    fn int_param(id: u64, value: u64) -> Vec<u8> {
        let mut v = Vec::new();
        v.put_var(value);
        param(id, &v)
    }

    #[test]
    fn defaults() {
        let d = TransportParameters::decode(Side::Server, &[]).unwrap();
        assert_eq!(d, TransportParameters::default());
        assert_eq!(d.max_udp_payload_size.into_inner(), 65527);
        assert_eq!(d.ack_delay_exponent.into_inner(), 3);
        assert_eq!(d.max_ack_delay.into_inner(), 25);
        assert_eq!(d.active_connection_id_limit.into_inner(), 2);
        let mut buf = Vec::new();
        d.encode(&mut buf);
        assert!(buf.is_empty());
    }

    #[test]
    fn limits() {
        let cases: &[(u64, u64, bool)] = &[
            (id::ACK_DELAY_EXPONENT, 20, true),
            (id::ACK_DELAY_EXPONENT, 21, false),
            (id::MAX_ACK_DELAY, (1 << 14) - 1, true),
            (id::MAX_ACK_DELAY, 1 << 14, false),
            (id::MAX_UDP_PAYLOAD_SIZE, 1200, true),
            (id::MAX_UDP_PAYLOAD_SIZE, 1199, false),
            (id::ACTIVE_CONNECTION_ID_LIMIT, 2, true),
            (id::ACTIVE_CONNECTION_ID_LIMIT, 1, false),
            (id::INITIAL_MAX_STREAMS_BIDI, 1 << 60, true),
            (id::INITIAL_MAX_STREAMS_BIDI, (1 << 60) + 1, false),
            (id::INITIAL_MAX_STREAMS_UNI, 1 << 60, true),
            (id::INITIAL_MAX_STREAMS_UNI, (1 << 60) + 1, false),
        ];
        for &(id, value, ok) in cases {
            let res = TransportParameters::decode(Side::Client, &int_param(id, value));
            assert_eq!(res.is_ok(), ok, "param {id:#x} = {value}");
            if let Err(e) = res {
                assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
            }
        }
    }

    #[test]
    fn duplicates_rejected() {
        let mut bytes = int_param(id::INITIAL_MAX_DATA, 10);
        bytes.extend(int_param(id::INITIAL_MAX_DATA, 10));
        let e = decode_err(Side::Client, &bytes);
        assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
        // Duplicate unknown parameters are rejected too.
        let mut bytes = param(0x1b, b"x");
        bytes.extend(param(0x1b, b"y"));
        decode_err(Side::Client, &bytes);
    }

    #[test]
    fn server_only_from_client() {
        let mut pa = Vec::new();
        PreferredAddress {
            address_v4: Some(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 443)),
            address_v6: None,
            connection_id: ConnectionId::new(&[1, 2, 3, 4]).unwrap(),
            stateless_reset_token: ResetToken([7; 16]),
        }
        .encode(&mut pa);
        for bytes in [
            param(id::ORIGINAL_DESTINATION_CONNECTION_ID, &[1, 2, 3, 4]),
            param(id::STATELESS_RESET_TOKEN, &[0; 16]),
            param(id::PREFERRED_ADDRESS, &pa),
            param(id::RETRY_SOURCE_CONNECTION_ID, &[1]),
        ] {
            decode_err(Side::Client, &bytes);
            TransportParameters::decode(Side::Server, &bytes).unwrap();
        }
    }

    #[test]
    fn malformed_values() {
        for bytes in [
            // Length past the end.
            vec![0x04, 0x05, 0x01],
            // Truncated id / length.
            vec![0x40],
            vec![0x04],
            // Integer with trailing bytes, or empty.
            param(id::INITIAL_MAX_DATA, &[0x01, 0x02]),
            param(id::INITIAL_MAX_DATA, &[]),
            // Integer whose varint claims more bytes than the value holds.
            param(id::INITIAL_MAX_DATA, &[0x80, 0x01]),
            // Wrong fixed sizes.
            param(id::STATELESS_RESET_TOKEN, &[0; 15]),
            param(id::DISABLE_ACTIVE_MIGRATION, &[0]),
            param(id::GREASE_QUIC_BIT, &[0]),
            param(id::INITIAL_SOURCE_CONNECTION_ID, &[0; 21]),
            param(id::PREFERRED_ADDRESS, &[0; 10]),
        ] {
            let e = decode_err(Side::Server, &bytes);
            assert_eq!(
                e.code,
                TransportErrorCode::TRANSPORT_PARAMETER_ERROR,
                "{bytes:x?}"
            );
        }
        // Preferred address with an empty CID.
        let mut pa = vec![0u8; 24];
        pa.push(0);
        pa.extend([0; 16]);
        decode_err(Side::Server, &param(id::PREFERRED_ADDRESS, &pa));
    }

    #[test]
    fn initial_max_path_id_limits() {
        // draft-ietf-quic-multipath-21 §2.1: 0 enables multipath without extra paths,
        // 2^32 - 1 is the largest path ID, anything above is an error; absent is `None`.
        assert_eq!(
            TransportParameters::decode(Side::Client, &[])
                .unwrap()
                .initial_max_path_id,
            None
        );
        for v in [0u64, 1, 7, u64::from(u32::MAX)] {
            let p = TransportParameters::decode(Side::Client, &int_param(0x3e, v)).unwrap();
            assert_eq!(p.initial_max_path_id, PathId::from_wire(v));
        }
        let e = decode_err(Side::Client, &int_param(0x3e, u64::from(u32::MAX) + 1));
        assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
        // The wire id is 0x3e, one byte.
        let params = TransportParameters {
            initial_max_path_id: Some(PathId(3)),
            ..TransportParameters::default()
        };
        let mut buf = Vec::new();
        params.encode(&mut buf);
        assert_eq!(buf, [0x3e, 0x01, 0x03]);
    }

    #[test]
    fn unknown_and_grease_ignored() {
        let mut bytes = param(31 * 5 + 27, b"grease");
        bytes.extend(int_param(id::INITIAL_MAX_DATA, 1000));
        bytes.extend(param(0x3fff_ffff, &[]));
        bytes.extend(param(0x3fff_fffe, &[0, 0, 0, 1]));
        let p = TransportParameters::decode(Side::Client, &bytes).unwrap();
        assert_eq!(p.initial_max_data.into_inner(), 1000);
    }

    #[test]
    fn version_information_decoded_and_checked() {
        let p = TransportParameters::decode(Side::Client, &param(0x11, &[0, 0, 0, 1])).unwrap();
        assert_eq!(p.version_information.unwrap().chosen, 1);
        for bad in [&[0, 0, 0][..], &[0, 0, 0, 0], &[]] {
            let e = decode_err(Side::Server, &param(0x11, bad));
            assert_eq!(e.code, TransportErrorCode::TRANSPORT_PARAMETER_ERROR);
        }
    }

    fn arb_cid() -> impl Strategy<Value = ConnectionId> {
        proptest::collection::vec(any::<u8>(), 0..=MAX_CID_SIZE)
            .prop_map(|v| ConnectionId::new(&v).unwrap())
    }

    fn arb_varint(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = VarInt> {
        range.prop_map(|v| VarInt::from_u64(v).unwrap())
    }

    fn arb_preferred() -> impl Strategy<Value = PreferredAddress> {
        (
            proptest::option::of((any::<u32>(), 1u16..)),
            proptest::option::of((any::<u128>(), 1u16..)),
            proptest::collection::vec(any::<u8>(), 1..=MAX_CID_SIZE),
            any::<[u8; 16]>(),
        )
            .prop_map(|(v4, v6, cid, token)| PreferredAddress {
                address_v4: v4.map(|(ip, port)| SocketAddrV4::new(ip.into(), port)),
                address_v6: v6.map(|(ip, port)| SocketAddrV6::new(ip.into(), port, 0, 0)),
                connection_id: ConnectionId::new(&cid).unwrap(),
                stateless_reset_token: ResetToken(token),
            })
    }

    prop_compose! {
        fn arb_params(server: bool)(
            cids in (proptest::option::of(arb_cid()), proptest::option::of(arb_cid()), proptest::option::of(arb_cid())),
            token in proptest::option::of(any::<[u8; 16]>()),
            preferred in proptest::option::of(arb_preferred()),
            limits in (
                arb_varint(0..=VarInt::MAX.into_inner()),
                arb_varint(1200..=VarInt::MAX.into_inner()),
                arb_varint(0..=VarInt::MAX.into_inner()),
                arb_varint(0..=VarInt::MAX.into_inner()),
                arb_varint(0..=VarInt::MAX.into_inner()),
                arb_varint(0..=VarInt::MAX.into_inner()),
            ),
            more in (
                arb_varint(0..=MAX_STREAM_COUNT),
                arb_varint(0..=MAX_STREAM_COUNT),
                arb_varint(0..=20),
                arb_varint(0..=(1 << 14) - 1),
                arb_varint(2..=VarInt::MAX.into_inner()),
                proptest::option::of(arb_varint(0..=VarInt::MAX.into_inner())),
            ),
            flags in (any::<bool>(), any::<bool>()),
            versions in proptest::option::of((1u32.., proptest::collection::vec(1u32.., 0..4))),
            max_path_id in proptest::option::of(any::<u32>()),
        ) -> TransportParameters {
            TransportParameters {
                original_dst_cid: cids.0.filter(|_| server),
                max_idle_timeout: limits.0,
                stateless_reset_token: token.filter(|_| server).map(ResetToken),
                max_udp_payload_size: limits.1,
                initial_max_data: limits.2,
                initial_max_stream_data_bidi_local: limits.3,
                initial_max_stream_data_bidi_remote: limits.4,
                initial_max_stream_data_uni: limits.5,
                initial_max_streams_bidi: more.0,
                initial_max_streams_uni: more.1,
                ack_delay_exponent: more.2,
                max_ack_delay: more.3,
                disable_active_migration: flags.0,
                preferred_address: preferred.filter(|_| server),
                active_connection_id_limit: more.4,
                initial_src_cid: cids.1,
                retry_src_cid: cids.2.filter(|_| server),
                max_datagram_frame_size: more.5,
                grease_quic_bit: flags.1,
                version_information: versions.map(|(chosen, available)| VersionInformation { chosen, available }),
                initial_max_path_id: max_path_id.map(PathId),
            }
        }
    }

    proptest! {
        #[test]
        fn roundtrip_server(params in arb_params(true)) {
            let mut buf = Vec::new();
            params.encode(&mut buf);
            prop_assert_eq!(buf.len(), params.encoded_len());
            prop_assert_eq!(TransportParameters::decode(Side::Server, &buf).unwrap(), params);
        }

        #[test]
        fn roundtrip_client_with_grease(params in arb_params(false), grease_n in 0u64..1000, grease in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut buf = param(31 * grease_n + 27, &grease);
            params.encode(&mut buf);
            prop_assert_eq!(TransportParameters::decode(Side::Client, &buf).unwrap(), params);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), server in any::<bool>()) {
            let sender = if server { Side::Server } else { Side::Client };
            let _ = TransportParameters::decode(sender, &bytes);
        }

        #[test]
        fn mutated_never_panic(params in arb_params(true), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
            let mut buf = Vec::new();
            params.encode(&mut buf);
            if !buf.is_empty() {
                for (at, x) in flips {
                    let len = buf.len();
                    buf[at % len] ^= x;
                }
            }
            let _ = TransportParameters::decode(Side::Server, &buf);
        }
    }
}
