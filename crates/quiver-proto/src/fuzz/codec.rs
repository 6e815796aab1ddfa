//! Fuzz targets for the pure wire decoders: packets, frames, transport parameters,
//! tokens and `version_information`. Seeds are real encodings made with the crate's own
//! encoders; each target checks round trips and error codes, not only the absence of
//! panics.

use super::{fold, Signature, Target, SIG_START};
use crate::cid::{ConnectionId, ResetToken};
use crate::coding::VarInt;
use crate::crypto::initial_keys;
use crate::error::TransportErrorCode as Code;
use crate::frame::{self, frame_type as ft, Frame};
use crate::packet::{
    self, Header, LongType, PacketNumber, PacketType, PartialDecode, VERSION_1, VERSION_2,
};
use crate::range_set::RangeSet;
use crate::shared::{Dir, PathId, PathStatus, Side, StreamId};
use crate::token::{RetryToken, TokenKey, TokenKind};
use crate::transport_params::{PreferredAddress, TransportParameters};
use crate::version::VersionInformation;
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;

/// Every decoder target, in a fixed order.
pub fn all() -> Vec<Box<dyn Target>> {
    vec![
        Box::new(PacketTarget::new()),
        Box::new(FramesTarget),
        Box::new(TransportParamsTarget),
        Box::new(TokenTarget::new()),
        Box::new(VersionInfoTarget),
    ]
}

/// Length of the connection IDs the receiving endpoint issues (short headers).
const LOCAL_CID_LEN: usize = 8;
const DCID: [u8; LOCAL_CID_LEN] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
const SCID: [u8; 5] = [0xc1, 0x01, 0x02, 0x03, 0x04];

fn cid(b: &[u8]) -> ConnectionId {
    ConnectionId::new(b).unwrap_or(ConnectionId::EMPTY)
}

fn enc(frames: &[Frame]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in frames {
        f.encode(&mut v);
    }
    v
}

fn ack(ranges: &[(u64, u64)], ecn: bool) -> Frame {
    let mut set = RangeSet::new();
    for &(a, b) in ranges {
        set.insert(a..b);
    }
    let ecn = ecn.then_some(frame::EcnCounts {
        ect0: 10,
        ect1: 1,
        ce: 2,
    });
    frame::Ack::from_ranges(3, &set, ecn).map_or(Frame::Ping, Frame::Ack)
}

/// One encoding of every frame type (several variants of the interesting ones), each
/// its own seed, plus a few multi-frame payloads.
pub fn frame_seeds() -> Vec<Vec<u8>> {
    let sid = StreamId::new(Side::Client, Dir::Bi, 0);
    let uni = StreamId::new(Side::Server, Dir::Uni, 1);
    let many: Vec<(u64, u64)> = (0..40).map(|i| (i * 10, i * 10 + 3 + i % 4)).collect();
    let frames = vec![
        Frame::Padding(3),
        Frame::Ping,
        ack(&[(0, 1)], false),
        ack(&many, false),
        ack(&[(0, 5), (7, 9)], true),
        Frame::ResetStream(frame::ResetStream {
            id: sid,
            error_code: VarInt::from_u32(7),
            final_size: 100,
        }),
        Frame::StopSending(frame::StopSending {
            id: uni,
            error_code: VarInt::from_u32(3),
        }),
        Frame::Crypto(frame::Crypto {
            offset: 0,
            data: Bytes::from_static(&[0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0xaa, 0xbb]),
        }),
        Frame::NewToken(Bytes::from_static(b"a NEW_TOKEN token")),
        Frame::Stream(frame::Stream {
            id: sid,
            offset: 0,
            fin: false,
            data: Bytes::from_static(b"GET /index.html\r\n"),
        }),
        Frame::Stream(frame::Stream {
            id: sid,
            offset: 900,
            fin: true,
            data: Bytes::from_static(b"tail"),
        }),
        Frame::MaxData(VarInt::from_u32(1 << 20)),
        Frame::MaxStreamData {
            id: sid,
            offset: 5000,
        },
        Frame::MaxStreams {
            dir: Dir::Bi,
            count: 10,
        },
        Frame::MaxStreams {
            dir: Dir::Uni,
            count: 1 << 20,
        },
        Frame::DataBlocked { offset: 1000 },
        Frame::StreamDataBlocked {
            id: sid,
            offset: 1000,
        },
        Frame::StreamsBlocked {
            dir: Dir::Bi,
            limit: 4,
        },
        Frame::StreamsBlocked {
            dir: Dir::Uni,
            limit: 4,
        },
        Frame::NewConnectionId(frame::NewConnectionId {
            sequence: 1,
            retire_prior_to: 0,
            id: cid(&[9, 8, 7, 6, 5, 4, 3, 2]),
            reset_token: ResetToken([0x5a; 16]),
        }),
        Frame::NewConnectionId(frame::NewConnectionId {
            sequence: 5,
            retire_prior_to: 3,
            id: cid(&[1; 20]),
            reset_token: ResetToken([0xa5; 16]),
        }),
        Frame::RetireConnectionId { sequence: 0 },
        Frame::PathChallenge(*b"chalenge"),
        Frame::PathResponse(*b"response"),
        Frame::ConnectionClose(frame::ConnectionClose {
            error_code: Code::PROTOCOL_VIOLATION,
            frame_type: Some(ft::STREAM),
            reason: Bytes::from_static(b"bad"),
        }),
        Frame::ConnectionClose(frame::ConnectionClose {
            error_code: Code::crypto(0x28),
            frame_type: None,
            reason: Bytes::new(),
        }),
        Frame::ApplicationClose(frame::ApplicationClose {
            error_code: VarInt::from_u32(0x100),
            reason: Bytes::from_static(b"bye"),
        }),
        Frame::HandshakeDone,
        Frame::Datagram(frame::Datagram {
            data: Bytes::from_static(b"datagram"),
        }),
        // draft-ietf-quic-multipath-21 frames (decoded even where not negotiated).
        match ack(&many, true) {
            Frame::Ack(ack) => Frame::PathAck {
                path_id: PathId(1),
                ack,
            },
            other => other,
        },
        Frame::PathAbandon {
            path_id: PathId(2),
            error_code: Code::NO_ERROR,
        },
        Frame::PathStatus {
            path_id: PathId(1),
            sequence: 4,
            status: PathStatus::Backup,
        },
        Frame::PathStatus {
            path_id: PathId(3),
            sequence: 1,
            status: PathStatus::Available,
        },
        Frame::PathNewConnectionId {
            path_id: PathId(1),
            cid: frame::NewConnectionId {
                sequence: 2,
                retire_prior_to: 1,
                id: cid(&[7; 8]),
                reset_token: ResetToken([0x3c; 16]),
            },
        },
        Frame::PathRetireConnectionId {
            path_id: PathId(1),
            sequence: 0,
        },
        Frame::MaxPathId(PathId(7)),
        Frame::PathsBlocked(PathId(7)),
        Frame::PathCidsBlocked {
            path_id: PathId(2),
            next_sequence: 3,
        },
    ];
    let mut seeds: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| enc(std::slice::from_ref(f)))
        .collect();
    // Forms the encoder does not produce: STREAM and DATAGRAM without Length (to the end
    // of the packet), an unknown frame type, non-minimal varints.
    seeds.push([&[0x0d_u8, 0x00, 0x40, 0x10][..], b"no length, fin"].concat());
    seeds.push([&[0x30_u8][..], b"datagram to the end"].concat());
    seeds.push(vec![0x21, 0x00]);
    seeds.push(vec![0x40, 0x01, 0x80, 0x00, 0x00, 0x1e]);
    // Multi-frame payloads.
    seeds.push(enc(&[Frame::Ping, frames[4].clone(), frames[9].clone()]));
    seeds.push(enc(&[
        frames[2].clone(),
        frames[11].clone(),
        frames[20].clone(),
        frames[27].clone(),
    ]));
    seeds
}

/// Datagrams: protected packets of every type (sealed with the Initial keys of `DCID`,
/// so the target can remove protection), Retry, Version Negotiation, coalesced.
fn packet_seeds() -> Vec<Vec<u8>> {
    let dcid = cid(&DCID);
    let scid = cid(&SCID);
    let crypto = enc(&[Frame::Crypto(frame::Crypto {
        offset: 0,
        data: Bytes::from_static(&[0x01, 0x00, 0x00, 0x30, 0x03, 0x03, 0x11, 0x22]),
    })]);
    let seal = |header: Header, payload: &[u8], pad_to: usize| -> Vec<u8> {
        let version = header.version().unwrap_or(VERSION_1);
        let Ok(keys) = initial_keys(version, &dcid, Side::Client) else {
            return Vec::new();
        };
        let pn = header.number().map_or(0, |n| u64::from(n.truncated()));
        let mut buf = Vec::new();
        let partial = header.encode(&mut buf);
        let start = buf.len();
        buf.extend_from_slice(payload);
        let min = partial
            .min_payload_len()
            .max(pad_to.saturating_sub(start + 16));
        if buf.len() - start < min {
            buf.resize(start + min, 0);
        }
        match partial.finish(&mut buf, &*keys.local.header, &*keys.local.packet, pn) {
            Ok(()) => buf,
            Err(_) => Vec::new(),
        }
    };
    let initial = |version, token: &'static [u8]| Header::Initial {
        version,
        dst_cid: dcid,
        src_cid: scid,
        token: Bytes::from_static(token),
        number: PacketNumber::U8(0),
    };
    let long = |ty| Header::Long {
        version: VERSION_1,
        ty,
        dst_cid: dcid,
        src_cid: scid,
        number: PacketNumber::U16(0x1234),
    };
    let short = |number| Header::Short {
        spin: true,
        key_phase: false,
        dst_cid: dcid,
        number,
    };
    let stream = enc(&[Frame::Stream(frame::Stream {
        id: StreamId(0),
        offset: 0,
        fin: true,
        data: Bytes::from_static(b"early data"),
    })]);
    let mut seeds = vec![
        seal(initial(VERSION_1, b""), &crypto, 1200),
        seal(initial(VERSION_1, b"retry-token"), &crypto, 1200),
        seal(initial(VERSION_2, b""), &crypto, 1200),
        seal(long(LongType::Handshake), &crypto, 0),
        seal(long(LongType::ZeroRtt), &stream, 0),
        seal(short(PacketNumber::U8(3)), &[0x01], 0),
        seal(short(PacketNumber::U16(0x300)), &stream, 0),
        seal(
            short(PacketNumber::U32(0x0102_0304)),
            &enc(&[ack(&[(0, 9)], true)]),
            0,
        ),
    ];
    // Coalesced: Initial + Handshake + 1-RTT in one datagram.
    let coalesced = [
        seal(initial(VERSION_1, b""), &crypto, 0),
        seal(long(LongType::Handshake), &crypto, 0),
        seal(short(PacketNumber::U8(1)), &[0x01], 0),
    ]
    .concat();
    seeds.push(coalesced);
    for version in [VERSION_1, VERSION_2] {
        let mut retry = Vec::new();
        if packet::encode_retry(&mut retry, version, &scid, &cid(&[7; 8]), &dcid, b"tok").is_ok() {
            seeds.push(retry);
        }
    }
    let mut vn = Vec::new();
    packet::encode_version_negotiation(
        &mut vn,
        0x2a,
        &scid,
        &dcid,
        &[VERSION_1, VERSION_2, 0x1a2a_3a4a],
    );
    seeds.push(vn);
    // A long header with a version nobody speaks.
    let mut unknown = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8];
    unknown.extend_from_slice(&DCID);
    unknown.push(0);
    unknown.resize(1200, 0);
    seeds.push(unknown);
    seeds.retain(|s| !s.is_empty());
    seeds
}

/// `packet`: datagrams through `PartialDecode` (coalesced packets one by one), header
/// protection removal and AEAD with the Initial keys of the packet's DCID, and frame
/// decoding of what authenticates.
#[derive(Debug)]
pub struct PacketTarget {
    seeds: Vec<Vec<u8>>,
}

impl PacketTarget {
    /// A target with its seed datagrams.
    pub fn new() -> Self {
        Self {
            seeds: packet_seeds(),
        }
    }
}

impl Default for PacketTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for PacketTarget {
    fn name(&self) -> &'static str {
        "packet"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn max_len(&self) -> usize {
        2048
    }

    fn exec(&mut self, input: &[u8]) -> Result<Signature, String> {
        let mut sig = SIG_START;
        let mut next = Some(BytesMut::from(input));
        while let Some(datagram) = next.take() {
            let before = datagram.len();
            let (partial, rest) = match PartialDecode::new(datagram, LOCAL_CID_LEN) {
                Ok(x) => x,
                Err(e) => {
                    sig = fold(
                        sig,
                        hash_str(&format!("{e:?}").chars().take(24).collect::<String>()),
                    );
                    break;
                }
            };
            let rest_len = rest.as_ref().map_or(0, |r| r.len());
            if partial.len() + rest_len != before || rest_len >= before {
                return Err(format!(
                    "packet {} + rest {rest_len} != datagram {before}",
                    partial.len()
                ));
            }
            if partial.dst_cid().len() > crate::cid::MAX_CID_SIZE {
                return Err("DCID longer than 20 bytes".into());
            }
            let kind = partial.kind();
            sig = fold(sig, kind as u64);
            match kind {
                PacketType::Retry => {
                    if partial.is_valid_retry(&cid(&DCID))
                        && !self.seeds.iter().any(|s| s.as_slice() == partial.data())
                    {
                        return Err("a modified Retry passed the integrity check".into());
                    }
                    partial
                        .finish(None)
                        .map_err(|e| format!("Retry that parsed fails to finish: {e}"))?;
                }
                PacketType::VersionNegotiate => {
                    let body = partial.len();
                    let p = partial
                        .finish(None)
                        .map_err(|e| format!("VN that parsed fails to finish: {e}"))?;
                    let n = p.versions().count();
                    if n * 4 != p.payload.len() || p.payload.len() > body {
                        return Err(format!("{n} versions from {} bytes", p.payload.len()));
                    }
                    sig = fold(sig, n.min(4) as u64);
                }
                _ => {
                    let version = partial.version().unwrap_or(VERSION_1);
                    let keys = initial_keys(version, partial.dst_cid(), Side::Server)
                        .map_err(|e| format!("initial keys for a parsed version: {e}"))?;
                    match partial.finish(Some(&*keys.remote.header)) {
                        Ok(mut p) => {
                            let number = p.number().ok_or("protected packet without number")?;
                            let pn = number.expand(0);
                            if p.decrypt(&*keys.remote.packet, pn).is_ok() {
                                sig = fold(sig, 0xdec);
                                for f in frame::Iter::new(p.payload.freeze()) {
                                    sig = fold(sig, f.map_or(0xbad, |f| frame_kind(&f)));
                                }
                            }
                        }
                        Err(e) => sig = fold(sig, hash_str(&e.to_string())),
                    }
                }
            }
            next = rest;
        }
        Ok(sig)
    }
}

/// `frames`: payloads through the frame iterator; every decoded frame must encode and
/// decode back to itself.
#[derive(Debug)]
pub struct FramesTarget;

impl Target for FramesTarget {
    fn name(&self) -> &'static str {
        "frames"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        frame_seeds()
    }

    fn max_len(&self) -> usize {
        1500
    }

    fn exec(&mut self, input: &[u8]) -> Result<Signature, String> {
        let mut sig = SIG_START;
        let mut iter = frame::Iter::new(Bytes::copy_from_slice(input));
        let mut count = 0usize;
        for res in iter.by_ref() {
            count += 1;
            if count > input.len() {
                return Err("more frames than bytes".into());
            }
            match res {
                Ok(f) => {
                    sig = fold(sig, frame_kind(&f));
                    let mut buf = Vec::new();
                    f.encode(&mut buf);
                    let mut again = frame::Iter::new(Bytes::from(buf));
                    match again.next() {
                        Some(Ok(g)) if g == f => {}
                        other => return Err(format!("{f:?} re-decoded as {other:?}")),
                    }
                    if again.remaining() != 0 {
                        return Err(format!("{f:?} encoding has trailing bytes"));
                    }
                }
                Err(e) => {
                    sig = fold(sig, 0xe000 ^ e.frame_type.unwrap_or(u64::MAX).min(0x40));
                    sig = fold(sig, hash_str(e.reason));
                }
            }
        }
        if iter.remaining() != 0 {
            return Err("iterator stopped with bytes left".into());
        }
        Ok(sig)
    }
}

fn full_params(side: Side) -> TransportParameters {
    let mut p = TransportParameters {
        max_idle_timeout: VarInt::from_u32(30_000),
        max_udp_payload_size: VarInt::from_u32(1472),
        initial_max_data: VarInt::from_u32(1 << 20),
        initial_max_stream_data_bidi_local: VarInt::from_u32(1 << 16),
        initial_max_stream_data_bidi_remote: VarInt::from_u32(1 << 16),
        initial_max_stream_data_uni: VarInt::from_u32(1 << 16),
        initial_max_streams_bidi: VarInt::from_u32(100),
        initial_max_streams_uni: VarInt::from_u32(3),
        ack_delay_exponent: VarInt::from_u32(5),
        max_ack_delay: VarInt::from_u32(40),
        disable_active_migration: true,
        active_connection_id_limit: VarInt::from_u32(4),
        initial_src_cid: Some(cid(&SCID)),
        max_datagram_frame_size: Some(VarInt::from_u32(1200)),
        grease_quic_bit: true,
        version_information: Some(VersionInformation {
            chosen: VERSION_1,
            available: vec![VERSION_1, VERSION_2],
        }),
        ..TransportParameters::default()
    };
    if side == Side::Server {
        p.original_dst_cid = Some(cid(&DCID));
        p.retry_src_cid = Some(cid(&[7; 8]));
        p.stateless_reset_token = Some(ResetToken([0x11; 16]));
        p.preferred_address = Some(PreferredAddress {
            address_v4: Some("192.0.2.7:4433".parse().unwrap_or_else(|_| unreachable!())),
            address_v6: Some(
                "[2001:db8::7]:4433"
                    .parse()
                    .unwrap_or_else(|_| unreachable!()),
            ),
            connection_id: cid(&[3; 8]),
            stateless_reset_token: ResetToken([0x22; 16]),
        });
    }
    p
}

/// `transport-params`: the first input byte picks the sender (odd: server), the rest is
/// the extension body. A decoded value must encode and decode to itself; a rejected one
/// must be TRANSPORT_PARAMETER_ERROR (RFC 9000 §7.4, §18.2); a client's must not carry
/// server-only parameters.
#[derive(Debug)]
pub struct TransportParamsTarget;

impl Target for TransportParamsTarget {
    fn name(&self) -> &'static str {
        "transport-params"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for (tag, side) in [(0u8, Side::Client), (1, Side::Server)] {
            for p in [TransportParameters::default(), full_params(side)] {
                let mut v = vec![tag];
                p.encode(&mut v);
                seeds.push(v);
            }
        }
        // A reserved (greased) parameter id 31 * 5 + 27 with a 3-byte value.
        seeds.push(vec![0, 0x40, 0xb6, 3, 1, 2, 3]);
        seeds
    }

    fn exec(&mut self, input: &[u8]) -> Result<Signature, String> {
        let Some((&tag, body)) = input.split_first() else {
            return Ok(SIG_START);
        };
        let side = if tag & 1 == 1 {
            Side::Server
        } else {
            Side::Client
        };
        match TransportParameters::decode(side, body) {
            Ok(p) => {
                if side == Side::Client
                    && (p.original_dst_cid.is_some()
                        || p.preferred_address.is_some()
                        || p.retry_src_cid.is_some()
                        || p.stateless_reset_token.is_some())
                {
                    return Err("client parameters with a server-only parameter".into());
                }
                let mut buf = Vec::new();
                p.encode(&mut buf);
                if buf.len() != p.encoded_len() {
                    return Err(format!(
                        "encoded_len {} but {} bytes written",
                        p.encoded_len(),
                        buf.len()
                    ));
                }
                match TransportParameters::decode(side, &buf) {
                    Ok(q) if q == p => {}
                    other => return Err(format!("{p:?} re-decoded as {other:?}")),
                }
                Ok(fold(
                    SIG_START,
                    1 + u64::from(p.preferred_address.is_some()),
                ))
            }
            Err(e) if e.code == Code::TRANSPORT_PARAMETER_ERROR => {
                Ok(fold(fold(SIG_START, 3), hash_str(&e.reason)))
            }
            Err(e) => Err(format!("rejected with {e}, not TRANSPORT_PARAMETER_ERROR")),
        }
    }
}

/// `token`: Retry and NEW_TOKEN tokens. Input byte 0: bit 0 picks the kind, bit 1 whether
/// the rest is the token as received (it must not authenticate unless it is one we
/// issued) or a plaintext sealed with the real key first (reaching the parsers behind
/// the AEAD; what they accept must re-encode to the same token).
#[derive(Debug)]
pub struct TokenTarget {
    key: TokenKey,
    issued: Vec<Vec<u8>>,
}

const TOKEN_NOW: u64 = 1_000_000;
const TOKEN_NONCE: [u8; 12] = [9; 12];

fn token_remote() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 4433))
}

impl TokenTarget {
    /// A target with a fixed key.
    pub fn new() -> Self {
        let key = TokenKey::new(&[0x42; 32]);
        let retry = RetryToken {
            orig_dst_cid: cid(&DCID),
            retry_src_cid: cid(&[7; 8]),
            expires: TOKEN_NOW + 10_000,
        };
        let issued = vec![
            key.seal_retry(TOKEN_NONCE, token_remote(), &retry),
            key.seal_new_token(TOKEN_NONCE, token_remote().ip(), TOKEN_NOW + 10_000),
        ];
        Self { key, issued }
    }
}

impl Default for TokenTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for TokenTarget {
    fn name(&self) -> &'static str {
        "token"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut retry_plain = (TOKEN_NOW + 10).to_be_bytes().to_vec();
        retry_plain.push(8);
        retry_plain.extend_from_slice(&DCID);
        retry_plain.push(8);
        retry_plain.extend_from_slice(&[7; 8]);
        vec![
            [&[0u8][..], &self.issued[0]].concat(),
            [&[1u8][..], &self.issued[1]].concat(),
            [&[2u8][..], &retry_plain].concat(),
            [&[3u8][..], &(TOKEN_NOW + 10).to_be_bytes()].concat(),
            [&[3u8][..], &(TOKEN_NOW - 10).to_be_bytes()].concat(),
        ]
    }

    fn max_len(&self) -> usize {
        256
    }

    fn exec(&mut self, input: &[u8]) -> Result<Signature, String> {
        let Some((&tag, body)) = input.split_first() else {
            return Ok(SIG_START);
        };
        let kind = if tag & 1 == 0 {
            TokenKind::Retry
        } else {
            TokenKind::NewToken
        };
        let plaintext = tag & 2 != 0;
        let token = if plaintext {
            self.key
                .seal_plain(kind, TOKEN_NONCE, token_remote(), body.to_vec())
        } else {
            body.to_vec()
        };
        let remote = token_remote();
        let dst = cid(&[7; 8]);
        let result = match kind {
            TokenKind::Retry => self
                .key
                .open_retry(remote, &dst, &token, TOKEN_NOW)
                .map(|t| (t.expires, self.key.seal_retry(TOKEN_NONCE, remote, &t))),
            TokenKind::NewToken => self
                .key
                .open_new_token(remote.ip(), &token, TOKEN_NOW)
                .map(|e| (e, self.key.seal_new_token(TOKEN_NONCE, remote.ip(), e))),
        };
        match result {
            Ok((expires, resealed)) => {
                if !plaintext && !self.issued.contains(&token) {
                    return Err("a token we did not issue authenticated".into());
                }
                if expires <= TOKEN_NOW {
                    return Err("an expired token was accepted".into());
                }
                if resealed != token {
                    return Err("an accepted token does not re-encode to itself".into());
                }
                Ok(fold(SIG_START, 1 + tag as u64 % 4))
            }
            Err(e) => Ok(fold(
                fold(SIG_START, tag as u64 % 4),
                hash_str(&e.to_string()),
            )),
        }
    }
}

/// `version-info`: the `version_information` parameter value. Accepted values encode back
/// to the input; rejected ones are TRANSPORT_PARAMETER_ERROR.
#[derive(Debug)]
pub struct VersionInfoTarget;

impl Target for VersionInfoTarget {
    fn name(&self) -> &'static str {
        "version-info"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mk = |chosen, available: &[u32]| {
            let mut v = Vec::new();
            VersionInformation {
                chosen,
                available: available.to_vec(),
            }
            .encode(&mut v);
            v
        };
        vec![
            mk(VERSION_1, &[]),
            mk(VERSION_1, &[VERSION_1, VERSION_2]),
            mk(VERSION_2, &[VERSION_2, VERSION_1, 0x0a0a_0a0a]),
        ]
    }

    fn max_len(&self) -> usize {
        256
    }

    fn exec(&mut self, input: &[u8]) -> Result<Signature, String> {
        match VersionInformation::decode(input) {
            Ok(vi) => {
                let mut buf = Vec::new();
                vi.encode(&mut buf);
                if buf != input || vi.encoded_len() != input.len() {
                    return Err(format!("{vi:?} does not encode back to the input"));
                }
                if vi.chosen == 0 || vi.available.contains(&0) {
                    return Err("version 0 accepted".into());
                }
                Ok(fold(SIG_START, vi.available.len().min(4) as u64))
            }
            Err(e) if e.code == Code::TRANSPORT_PARAMETER_ERROR => {
                Ok(fold(SIG_START, 8 + input.len() as u64 % 4))
            }
            Err(e) => Err(format!("rejected with {e}")),
        }
    }
}

/// A signature component for a frame: its type.
pub(crate) fn frame_kind(f: &Frame) -> u64 {
    let mut v = Vec::new();
    f.encode(&mut v);
    v.first().map_or(0, |b| u64::from(*b))
}

pub(crate) fn hash_str(s: &str) -> u64 {
    s.bytes().fold(SIG_START, |h, b| fold(h, u64::from(b)))
}
