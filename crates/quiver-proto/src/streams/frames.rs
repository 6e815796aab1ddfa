//! Encoders for the stream-related frames (RFC 9000 §19.4–19.14) that the stream
//! manager writes, with exact size prediction so that a byte budget is never exceeded.
//!
//! These are interim: once `crate::frame` lands, the connection can switch to its
//! `Frame` enum; the wire format is the same.

use crate::coding::{size_of_varint, BufMutExt, VarInt};
use crate::shared::{Dir, StreamId};

/// RESET_STREAM (§19.4).
pub(crate) const RESET_STREAM: u64 = 0x04;
/// STOP_SENDING (§19.5).
pub(crate) const STOP_SENDING: u64 = 0x05;
/// STREAM base type (§19.8); low bits OFF=0x04, LEN=0x02, FIN=0x01.
pub(crate) const STREAM: u64 = 0x08;
/// MAX_DATA (§19.9).
pub(crate) const MAX_DATA: u64 = 0x10;
/// MAX_STREAM_DATA (§19.10).
pub(crate) const MAX_STREAM_DATA: u64 = 0x11;
/// MAX_STREAMS, bidirectional (§19.11); uni is 0x13.
pub(crate) const MAX_STREAMS_BIDI: u64 = 0x12;
/// DATA_BLOCKED (§19.12).
pub(crate) const DATA_BLOCKED: u64 = 0x14;
/// STREAM_DATA_BLOCKED (§19.13).
pub(crate) const STREAM_DATA_BLOCKED: u64 = 0x15;
/// STREAMS_BLOCKED, bidirectional (§19.14); uni is 0x17.
pub(crate) const STREAMS_BLOCKED_BIDI: u64 = 0x16;

/// A stream-related control frame.
#[derive(Debug, Clone, Copy, Eq, PartialEq)]
pub(crate) enum Control {
    ResetStream {
        id: StreamId,
        code: VarInt,
        final_size: u64,
    },
    StopSending {
        id: StreamId,
        code: VarInt,
    },
    MaxData(u64),
    MaxStreamData {
        id: StreamId,
        max: u64,
    },
    MaxStreams {
        dir: Dir,
        count: u64,
    },
    DataBlocked(u64),
    StreamDataBlocked {
        id: StreamId,
        limit: u64,
    },
    StreamsBlocked {
        dir: Dir,
        limit: u64,
    },
}

fn dir_bit(dir: Dir) -> u64 {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

impl Control {
    fn ty(&self) -> u64 {
        match self {
            Control::ResetStream { .. } => RESET_STREAM,
            Control::StopSending { .. } => STOP_SENDING,
            Control::MaxData(_) => MAX_DATA,
            Control::MaxStreamData { .. } => MAX_STREAM_DATA,
            Control::MaxStreams { dir, .. } => MAX_STREAMS_BIDI + dir_bit(*dir),
            Control::DataBlocked(_) => DATA_BLOCKED,
            Control::StreamDataBlocked { .. } => STREAM_DATA_BLOCKED,
            Control::StreamsBlocked { dir, .. } => STREAMS_BLOCKED_BIDI + dir_bit(*dir),
        }
    }

    /// Exact encoded size.
    pub(crate) fn size(&self) -> usize {
        let fields = match *self {
            Control::ResetStream {
                id,
                code,
                final_size,
            } => size_of_varint(id.0) + code.size() + size_of_varint(final_size),
            Control::StopSending { id, code } => size_of_varint(id.0) + code.size(),
            Control::MaxData(x) | Control::DataBlocked(x) => size_of_varint(x),
            Control::MaxStreamData { id, max: x } | Control::StreamDataBlocked { id, limit: x } => {
                size_of_varint(id.0) + size_of_varint(x)
            }
            Control::MaxStreams { count: x, .. } | Control::StreamsBlocked { limit: x, .. } => {
                size_of_varint(x)
            }
        };
        size_of_varint(self.ty()) + fields
    }

    /// Append the frame to `buf`.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        buf.put_var(self.ty());
        match *self {
            Control::ResetStream {
                id,
                code,
                final_size,
            } => {
                buf.put_var(id.0);
                buf.put_var(code.into_inner());
                buf.put_var(final_size);
            }
            Control::StopSending { id, code } => {
                buf.put_var(id.0);
                buf.put_var(code.into_inner());
            }
            Control::MaxData(x) | Control::DataBlocked(x) => buf.put_var(x),
            Control::MaxStreamData { id, max: x } | Control::StreamDataBlocked { id, limit: x } => {
                buf.put_var(id.0);
                buf.put_var(x);
            }
            Control::MaxStreams { count: x, .. } | Control::StreamsBlocked { limit: x, .. } => {
                buf.put_var(x)
            }
        }
    }
}

/// Size of a STREAM frame header (type, id, offset if non-zero, length) for `len` bytes.
/// Delegates to the crate's one frame codec ([`crate::frame::Stream`]).
pub(crate) fn stream_header_size(id: StreamId, offset: u64, len: u64) -> usize {
    crate::frame::Stream::header_len(id, offset, len as usize, true)
}

/// Largest payload that fits with its header in `budget` bytes, capped at `want`.
/// `None` if not even an empty frame fits (an empty frame carries a lone FIN).
pub(crate) fn stream_payload_fit(
    id: StreamId,
    offset: u64,
    want: u64,
    budget: usize,
) -> Option<u64> {
    if want == 0 {
        return (stream_header_size(id, offset, 0) <= budget).then_some(0);
    }
    let max = crate::frame::Stream::max_data_len(id, offset, budget, true)?;
    Some(want.min(max as u64))
}

/// Append a STREAM frame header (with OFF as needed, always LEN). The caller appends
/// exactly `len` payload bytes after it.
pub(crate) fn encode_stream_header(
    buf: &mut Vec<u8>,
    id: StreamId,
    offset: u64,
    len: u64,
    fin: bool,
) {
    crate::frame::Stream::encode_header(id, offset, len as usize, fin, true, buf);
}

/// A test-only decoder for the frames above, used by the loopback tests.
#[cfg(test)]
pub(crate) mod decode {
    use super::*;
    use crate::coding::{BufExt, UnexpectedEnd};
    use bytes::{Buf, Bytes};

    /// A decoded frame.
    #[derive(Debug, Clone, Eq, PartialEq)]
    pub(crate) enum Frame {
        Stream {
            id: StreamId,
            offset: u64,
            data: Bytes,
            fin: bool,
        },
        Control(Control),
    }

    fn dir_of(ty: u64) -> Dir {
        if ty & 1 == 0 {
            Dir::Bi
        } else {
            Dir::Uni
        }
    }

    /// Decode one frame; `Err` on truncation or an unknown type.
    pub(crate) fn frame(r: &mut Bytes) -> Result<Frame, UnexpectedEnd> {
        let ty = r.get_var()?;
        let id = |r: &mut Bytes| r.get_var().map(StreamId);
        let code = |r: &mut Bytes| r.get_var().map(VarInt::from_u64_clamped);
        Ok(match ty {
            RESET_STREAM => Frame::Control(Control::ResetStream {
                id: id(r)?,
                code: code(r)?,
                final_size: r.get_var()?,
            }),
            STOP_SENDING => Frame::Control(Control::StopSending {
                id: id(r)?,
                code: code(r)?,
            }),
            0x08..=0x0f => {
                let id = id(r)?;
                let offset = if ty & crate::frame::frame_type::STREAM_OFF != 0 {
                    r.get_var()?
                } else {
                    0
                };
                let len = if ty & crate::frame::frame_type::STREAM_LEN != 0 {
                    usize::try_from(r.get_var()?).map_err(|_| UnexpectedEnd)?
                } else {
                    r.remaining()
                };
                let data = r.get_bytes_checked(len)?;
                Frame::Stream {
                    id,
                    offset,
                    data,
                    fin: ty & crate::frame::frame_type::STREAM_FIN != 0,
                }
            }
            MAX_DATA => Frame::Control(Control::MaxData(r.get_var()?)),
            MAX_STREAM_DATA => Frame::Control(Control::MaxStreamData {
                id: id(r)?,
                max: r.get_var()?,
            }),
            0x12 | 0x13 => Frame::Control(Control::MaxStreams {
                dir: dir_of(ty),
                count: r.get_var()?,
            }),
            DATA_BLOCKED => Frame::Control(Control::DataBlocked(r.get_var()?)),
            STREAM_DATA_BLOCKED => Frame::Control(Control::StreamDataBlocked {
                id: id(r)?,
                limit: r.get_var()?,
            }),
            0x16 | 0x17 => Frame::Control(Control::StreamsBlocked {
                dir: dir_of(ty),
                limit: r.get_var()?,
            }),
            _ => return Err(UnexpectedEnd),
        })
    }

    /// Decode every frame in a packet payload.
    pub(crate) fn all(mut r: Bytes) -> Result<Vec<Frame>, UnexpectedEnd> {
        let mut out = Vec::new();
        while r.has_remaining() {
            out.push(frame(&mut r)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::decode::{self, Frame};
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    const MAXV: u64 = (1 << 62) - 1;

    fn arb_dir() -> impl Strategy<Value = Dir> {
        prop_oneof![Just(Dir::Bi), Just(Dir::Uni)]
    }

    fn arb_control() -> impl Strategy<Value = Control> {
        let v = || 0..=MAXV;
        let id = || (0..=MAXV).prop_map(StreamId);
        let code = || (0..=MAXV).prop_map(VarInt::from_u64_clamped);
        prop_oneof![
            (id(), code(), v()).prop_map(|(id, code, final_size)| Control::ResetStream {
                id,
                code,
                final_size
            }),
            (id(), code()).prop_map(|(id, code)| Control::StopSending { id, code }),
            v().prop_map(Control::MaxData),
            (id(), v()).prop_map(|(id, max)| Control::MaxStreamData { id, max }),
            (arb_dir(), v()).prop_map(|(dir, count)| Control::MaxStreams { dir, count }),
            v().prop_map(Control::DataBlocked),
            (id(), v()).prop_map(|(id, limit)| Control::StreamDataBlocked { id, limit }),
            (arb_dir(), v()).prop_map(|(dir, limit)| Control::StreamsBlocked { dir, limit }),
        ]
    }

    proptest! {
        #[test]
        fn control_roundtrip(c in arb_control()) {
            let mut buf = Vec::new();
            c.encode(&mut buf);
            prop_assert_eq!(buf.len(), c.size());
            let mut r = Bytes::from(buf);
            prop_assert_eq!(decode::frame(&mut r), Ok(Frame::Control(c)));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn stream_roundtrip(id in 0..=MAXV, offset in prop_oneof![Just(0u64), 0..=(1u64 << 40)],
                            data in proptest::collection::vec(any::<u8>(), 0..200), fin in any::<bool>()) {
            let id = StreamId(id);
            let mut buf = Vec::new();
            encode_stream_header(&mut buf, id, offset, data.len() as u64, fin);
            prop_assert_eq!(buf.len(), stream_header_size(id, offset, data.len() as u64));
            buf.extend_from_slice(&data);
            let frames = decode::all(Bytes::from(buf)).unwrap();
            prop_assert_eq!(frames, vec![Frame::Stream { id, offset, data: Bytes::from(data), fin }]);
        }

        #[test]
        fn payload_fit_is_exact_bound(id in 0..=MAXV, offset in 0..=MAXV, want in 0u64..100_000, budget in 0usize..70_000) {
            let id = StreamId(id);
            match stream_payload_fit(id, offset, want, budget) {
                Some(len) => {
                    prop_assert!(len <= want);
                    prop_assert!(stream_header_size(id, offset, len) + len as usize <= budget);
                    // Not wasteful: at most 3 bytes lost to a length-field size boundary.
                    if len < want {
                        prop_assert!(stream_header_size(id, offset, len) + len as usize + 3 >= budget);
                    }
                }
                None => prop_assert!(stream_header_size(id, offset, 0) > budget),
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::all(Bytes::from(bytes));
        }
    }
}
