//! The front-end ↔ back-end protocol: one bidirectional QUIC stream per request, carrying
//! length-prefixed frames.
//!
//! Every frame is `version (u8) | type (u8) | length (u32, big endian) | payload`; the
//! version is [`VERSION`], the length at most [`MAX_PAYLOAD`]. The front-end writes one
//! [`Frame::Request`] (or [`Frame::ListModels`]) and finishes its side; the back-end
//! answers [`Frame::Start`] (the model the router chose), any number of
//! [`Frame::Token`]s as they are produced, then [`Frame::Done`] — or [`Frame::Error`] at
//! any point — and finishes. A list request is answered by one [`Frame::Models`].
//!
//! Payloads (integers big endian, strings UTF-8):
//!
//! | type | frame | payload |
//! |---|---|---|
//! | 1 | Request | class u8, task u8 (255 = none), max_tokens u32, model len u16 + model, prompt (rest) |
//! | 2 | Start | replica u16, admit_seq u64, model (rest) |
//! | 3 | Token | text (rest) |
//! | 4 | Done | finish u8 (0 length, 1 stop), tokens u32, quality‰ u16 |
//! | 5 | Error | code u16 ([`ErrorCode`]), message (rest) |
//! | 6 | ListModels | empty |
//! | 7 | Models | count u16, then count × (len u16 + name) |
//!
//! [`Frame::decode`] never panics on any input (property-tested): every length is checked
//! before it is used, and a frame that does not parse is a typed [`WireError`].

use crate::model::{FinishReason, Task};
use bytes::{Buf, BufMut, BytesMut};

/// Protocol version carried in every frame.
pub const VERSION: u8 = 1;
/// Largest payload accepted (1 MiB): prompts above it are refused by the front-end first.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Bytes of the frame header.
pub const HEADER_LEN: usize = 6;

/// Error codes of [`Frame::Error`].
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request named a model the back-end does not have.
    UnknownModel,
    /// Every replica is full and the admission queue is too.
    Overloaded,
    /// The request frame was malformed.
    BadRequest,
    /// The model failed while generating.
    ModelFailed,
    /// A code this version does not know.
    Other(u16),
}

impl ErrorCode {
    /// The wire value.
    pub const fn to_u16(self) -> u16 {
        match self {
            ErrorCode::UnknownModel => 1,
            ErrorCode::Overloaded => 2,
            ErrorCode::BadRequest => 3,
            ErrorCode::ModelFailed => 4,
            ErrorCode::Other(c) => c,
        }
    }

    /// From the wire value.
    pub const fn from_u16(c: u16) -> Self {
        match c {
            1 => ErrorCode::UnknownModel,
            2 => ErrorCode::Overloaded,
            3 => ErrorCode::BadRequest,
            4 => ErrorCode::ModelFailed,
            c => ErrorCode::Other(c),
        }
    }
}

/// One protocol frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A generation request.
    Request {
        /// Class index into the back-end's class table (0 = most urgent by convention).
        class: u8,
        /// The task, if the client said.
        task: Option<Task>,
        /// Most tokens to generate.
        max_tokens: u32,
        /// Model name, or `auto` / empty to let the router choose.
        model: String,
        /// The prompt.
        prompt: String,
    },
    /// The back-end admitted the request.
    Start {
        /// Model chosen.
        model: String,
        /// Replica of that model.
        replica: u16,
        /// Order of admission at the back-end (0, 1, 2, ...).
        admit_seq: u64,
    },
    /// Generated text.
    Token(String),
    /// End of the response.
    Done {
        /// Why it ended.
        finish: FinishReason,
        /// Tokens generated.
        tokens: u32,
        /// The model's quality for the task, in thousandths.
        quality_milli: u16,
    },
    /// The request failed.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// Ask for the model names.
    ListModels,
    /// The model names the back-end serves.
    Models(Vec<String>),
}

/// A frame that could not be decoded; the stream carrying it is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Unknown protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// Unknown frame type.
    #[error("unknown frame type {0}")]
    Type(u8),
    /// Length above [`MAX_PAYLOAD`].
    #[error("frame of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// The payload ended before a field.
    #[error("truncated {0} frame")]
    Truncated(&'static str),
    /// A field has a value the protocol does not define.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A string is not UTF-8.
    #[error("{0} is not UTF-8")]
    Utf8(&'static str),
    /// A string or list does not fit its length field.
    #[error("{0} too long to encode")]
    Unencodable(&'static str),
}

fn take_str(p: &mut &[u8], len: usize, what: &'static str) -> Result<String, WireError> {
    if p.len() < len {
        return Err(WireError::Truncated(what));
    }
    let (s, rest) = p.split_at(len);
    *p = rest;
    String::from_utf8(s.to_vec()).map_err(|_| WireError::Utf8(what))
}

fn rest_str(p: &[u8], what: &'static str) -> Result<String, WireError> {
    String::from_utf8(p.to_vec()).map_err(|_| WireError::Utf8(what))
}

fn need(p: &[u8], n: usize, what: &'static str) -> Result<(), WireError> {
    if p.len() < n {
        Err(WireError::Truncated(what))
    } else {
        Ok(())
    }
}

fn put_short_str(out: &mut BytesMut, s: &str, what: &'static str) -> Result<(), WireError> {
    let len = u16::try_from(s.len()).map_err(|_| WireError::Unencodable(what))?;
    out.put_u16(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

impl Frame {
    fn type_byte(&self) -> u8 {
        match self {
            Frame::Request { .. } => 1,
            Frame::Start { .. } => 2,
            Frame::Token(_) => 3,
            Frame::Done { .. } => 4,
            Frame::Error { .. } => 5,
            Frame::ListModels => 6,
            Frame::Models(_) => 7,
        }
    }

    /// Append the encoded frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), WireError> {
        let mut p = BytesMut::new();
        match self {
            Frame::Request {
                class,
                task,
                max_tokens,
                model,
                prompt,
            } => {
                p.put_u8(*class);
                p.put_u8(task.map_or(255, |t| t.index() as u8));
                p.put_u32(*max_tokens);
                put_short_str(&mut p, model, "model")?;
                p.put_slice(prompt.as_bytes());
            }
            Frame::Start {
                model,
                replica,
                admit_seq,
            } => {
                p.put_u16(*replica);
                p.put_u64(*admit_seq);
                p.put_slice(model.as_bytes());
            }
            Frame::Token(t) => p.put_slice(t.as_bytes()),
            Frame::Done {
                finish,
                tokens,
                quality_milli,
            } => {
                p.put_u8(match finish {
                    FinishReason::Length => 0,
                    FinishReason::Stop => 1,
                });
                p.put_u32(*tokens);
                p.put_u16(*quality_milli);
            }
            Frame::Error { code, message } => {
                p.put_u16(code.to_u16());
                p.put_slice(message.as_bytes());
            }
            Frame::ListModels => {}
            Frame::Models(names) => {
                let n = u16::try_from(names.len()).map_err(|_| WireError::Unencodable("models"))?;
                p.put_u16(n);
                for name in names {
                    put_short_str(&mut p, name, "model")?;
                }
            }
        }
        if p.len() > MAX_PAYLOAD {
            return Err(WireError::TooLong(p.len()));
        }
        out.put_u8(VERSION);
        out.put_u8(self.type_byte());
        out.put_u32(p.len() as u32);
        out.put_slice(&p);
        Ok(())
    }

    /// The encoded frame as a vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, WireError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.to_vec())
    }

    /// Decode one frame from the front of `buf`: `Ok(None)` if more bytes are needed,
    /// else the frame and the bytes it used. Never panics.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
        if buf.len() < HEADER_LEN {
            // Reject a bad version as early as possible.
            if let Some(&v) = buf.first() {
                if v != VERSION {
                    return Err(WireError::Version(v));
                }
            }
            return Ok(None);
        }
        let mut h = &buf[..HEADER_LEN];
        let version = h.get_u8();
        let ty = h.get_u8();
        let len = h.get_u32() as usize;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        if !(1..=7).contains(&ty) {
            return Err(WireError::Type(ty));
        }
        if len > MAX_PAYLOAD {
            return Err(WireError::TooLong(len));
        }
        let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
            return Ok(None);
        };
        let frame = Self::decode_payload(ty, payload)?;
        Ok(Some((frame, HEADER_LEN + len)))
    }

    fn decode_payload(ty: u8, payload: &[u8]) -> Result<Frame, WireError> {
        let mut p = payload;
        Ok(match ty {
            1 => {
                need(p, 8, "request")?;
                let class = p.get_u8();
                let task = match p.get_u8() {
                    255 => None,
                    i => Some(Task::from_index(i as usize).ok_or(WireError::Invalid("task"))?),
                };
                let max_tokens = p.get_u32();
                let mlen = p.get_u16() as usize;
                let model = take_str(&mut p, mlen, "model")?;
                let prompt = rest_str(p, "prompt")?;
                Frame::Request {
                    class,
                    task,
                    max_tokens,
                    model,
                    prompt,
                }
            }
            2 => {
                need(p, 10, "start")?;
                let replica = p.get_u16();
                let admit_seq = p.get_u64();
                let model = rest_str(p, "model")?;
                Frame::Start {
                    model,
                    replica,
                    admit_seq,
                }
            }
            3 => Frame::Token(rest_str(p, "token")?),
            4 => {
                if p.len() != 7 {
                    return Err(WireError::Invalid("done length"));
                }
                let finish = match p.get_u8() {
                    0 => FinishReason::Length,
                    1 => FinishReason::Stop,
                    _ => return Err(WireError::Invalid("finish reason")),
                };
                Frame::Done {
                    finish,
                    tokens: p.get_u32(),
                    quality_milli: p.get_u16(),
                }
            }
            5 => {
                need(p, 2, "error")?;
                let code = ErrorCode::from_u16(p.get_u16());
                let message = rest_str(p, "message")?;
                Frame::Error { code, message }
            }
            6 => {
                if !p.is_empty() {
                    return Err(WireError::Invalid("list-models length"));
                }
                Frame::ListModels
            }
            _ => {
                need(p, 2, "models")?;
                let n = p.get_u16() as usize;
                let mut names = Vec::with_capacity(n.min(p.len() / 2));
                for _ in 0..n {
                    need(p, 2, "models")?;
                    let l = p.get_u16() as usize;
                    names.push(take_str(&mut p, l, "model")?);
                }
                if !p.is_empty() {
                    return Err(WireError::Invalid("models trailing bytes"));
                }
                Frame::Models(names)
            }
        })
    }
}

/// Errors reading or writing frames on a QUIC stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer sent a malformed frame.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Reading the stream failed.
    #[error("read: {0}")]
    Read(quiver::ReadError),
    /// Writing the stream failed.
    #[error("write: {0}")]
    Write(quiver::WriteError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

/// Reads frames from a receive stream, buffering partial ones.
#[derive(Debug)]
pub struct FrameReader {
    recv: quiver::RecvStream,
    buf: BytesMut,
}

impl FrameReader {
    /// Wrap a receive stream.
    pub fn new(recv: quiver::RecvStream) -> Self {
        FrameReader {
            recv,
            buf: BytesMut::new(),
        }
    }

    /// The next frame, or `None` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Frame>, StreamError> {
        loop {
            if let Some((frame, used)) = Frame::decode(&self.buf)? {
                self.buf.advance(used);
                return Ok(Some(frame));
            }
            match self.recv.read_chunk(64 * 1024).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(StreamError::Truncated),
            }
        }
    }

    /// The stream underneath (to stop it).
    pub fn stream_mut(&mut self) -> &mut quiver::RecvStream {
        &mut self.recv
    }
}

/// Encode and write one frame.
pub async fn write_frame(send: &mut quiver::SendStream, frame: &Frame) -> Result<(), StreamError> {
    let bytes = frame.to_vec()?;
    send.write_all(&bytes).await?;
    Ok(())
}

impl From<quiver::ReadError> for StreamError {
    fn from(e: quiver::ReadError) -> Self {
        StreamError::Read(e)
    }
}

impl From<quiver::WriteError> for StreamError {
    fn from(e: quiver::WriteError) -> Self {
        StreamError::Write(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn task() -> impl Strategy<Value = Option<Task>> {
        prop::option::of((0usize..4).prop_map(|i| Task::ALL[i]))
    }

    fn frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (any::<u8>(), task(), any::<u32>(), ".{0,20}", ".{0,200}").prop_map(
                |(class, task, max_tokens, model, prompt)| Frame::Request {
                    class,
                    task,
                    max_tokens,
                    model,
                    prompt
                }
            ),
            (".{0,20}", any::<u16>(), any::<u64>()).prop_map(|(model, replica, admit_seq)| {
                Frame::Start {
                    model,
                    replica,
                    admit_seq,
                }
            }),
            ".{0,50}".prop_map(Frame::Token),
            (any::<bool>(), any::<u32>(), any::<u16>()).prop_map(|(s, tokens, q)| Frame::Done {
                finish: if s {
                    FinishReason::Stop
                } else {
                    FinishReason::Length
                },
                tokens,
                quality_milli: q,
            }),
            (1u16..5, ".{0,50}").prop_map(|(c, message)| Frame::Error {
                code: ErrorCode::from_u16(c),
                message
            }),
            Just(Frame::ListModels),
            prop::collection::vec(".{0,12}", 0..6).prop_map(Frame::Models),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_and_prefixes(f in frame()) {
            let bytes = f.to_vec().unwrap();
            prop_assert_eq!(Frame::decode(&bytes).unwrap(), Some((f.clone(), bytes.len())));
            for cut in 0..bytes.len() {
                prop_assert_eq!(Frame::decode(&bytes[..cut]).unwrap(), None);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((_, used))) = Frame::decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }

        #[test]
        fn valid_header_arbitrary_payload(ty in 1u8..8, payload in prop::collection::vec(any::<u8>(), 0..100)) {
            let mut b = vec![VERSION, ty];
            b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            b.extend_from_slice(&payload);
            match Frame::decode(&b) {
                Ok(Some((f, used))) => {
                    prop_assert_eq!(used, b.len());
                    // what decodes re-encodes to the same bytes
                    prop_assert_eq!(f.to_vec().unwrap(), b);
                }
                Ok(None) => prop_assert!(false, "complete frame reported incomplete"),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn rejects_bad_header() {
        assert_eq!(Frame::decode(&[2]), Err(WireError::Version(2)));
        assert_eq!(Frame::decode(&[1, 9, 0, 0, 0, 0]), Err(WireError::Type(9)));
        assert_eq!(
            Frame::decode(&[1, 3, 0xff, 0xff, 0xff, 0xff]),
            Err(WireError::TooLong(0xffff_ffff))
        );
        assert_eq!(
            Frame::decode(&[1, 1, 0, 0, 0, 1, 0]),
            Err(WireError::Truncated("request"))
        );
    }
}
