//! HTTP Extensible Priorities (RFC 9218) mapped onto Quiver stream classes.
//!
//! ## The mapping
//! A request's priority is its *urgency* `u` (0 = most urgent … 7, default 3) and its
//! *incremental* flag `i`. Quiver's [`StreamClass::priority`] uses the same scale and
//! default (0 most urgent, 3 by default), so:
//!
//! | RFC 9218 | Quiver |
//! |---|---|
//! | `u=N` (0–7) | `StreamClass::priority = N` (deadline none, level 0) |
//! | `u` absent or invalid | `priority = 3` |
//! | `i` / `i=?1` | not a class field: kept in [`Priority::incremental`]; within one priority the connection's scheduler (`TransportConfig::scheduler`) decides how streams share the link (round robin interleaves, FCFS and absolute priority finish one before the next) |
//!
//! Where the signal comes from:
//! - the `priority` request header (RFC 9218 §5), read by [`Server`](crate::Server) when a
//!   request arrives; the server's send side of the request stream (the response) gets
//!   the class. A [`Client`](crate::Client) also gives its own send side of the request
//!   (the request body) that class.
//! - PRIORITY_UPDATE frames (type 0xF0700, RFC 9218 §7.1) on the peer's control stream,
//!   seen by a passive reader of the control stream (h3 0.0.8 ignores the frame; the
//!   bytes still reach it unchanged). An update overrides the header; an update for a
//!   request stream not yet open is kept (at most [`MAX_PENDING_UPDATES`]) and applied
//!   when the request arrives. [`Client::update_priority`](crate::Client::update_priority)
//!   sends one.
//!
//! Parsing is deliberately lenient, as RFC 9218 §4 asks: unknown parameters and
//! parameters with invalid values are ignored, and a field that is not a dictionary
//! yields the defaults.

use crate::varint;
use quiver::StreamClass;

/// Frame type of PRIORITY_UPDATE for a request stream (RFC 9218 §7.1).
pub const PRIORITY_UPDATE_REQUEST: u64 = 0xF0700;
/// Frame type of PRIORITY_UPDATE for a push stream (RFC 9218 §7.1).
pub const PRIORITY_UPDATE_PUSH: u64 = 0xF0701;
/// PRIORITY_UPDATE frames kept for request streams that are not open yet.
pub const MAX_PENDING_UPDATES: usize = 256;

/// An RFC 9218 priority: urgency 0 (most urgent) to 7, and whether the response can be
/// used incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Priority {
    /// Urgency, 0 (most urgent) to 7.
    pub urgency: u8,
    /// The response is useful piece by piece (RFC 9218 §4.2).
    pub incremental: bool,
}

impl Default for Priority {
    fn default() -> Self {
        Self {
            urgency: Self::DEFAULT_URGENCY,
            incremental: false,
        }
    }
}

impl Priority {
    /// Default urgency (RFC 9218 §4.1).
    pub const DEFAULT_URGENCY: u8 = 3;

    /// A priority with urgency `urgency` (clamped to 7), not incremental.
    pub fn new(urgency: u8) -> Self {
        Self {
            urgency: urgency.min(7),
            incremental: false,
        }
    }

    /// The same priority, incremental.
    pub fn incremental(mut self) -> Self {
        self.incremental = true;
        self
    }

    /// Parse a `priority` header or PRIORITY_UPDATE field value (a structured-field
    /// dictionary, RFC 8941). Never fails: what cannot be understood is ignored.
    pub fn parse(value: &[u8]) -> Self {
        let mut p = Self::default();
        let Ok(text) = std::str::from_utf8(value) else {
            return p;
        };
        for member in text.split(',') {
            // Parameters of a member (";...") do not matter for u and i.
            let member = member.split(';').next().unwrap_or_default().trim();
            let (key, val) = match member.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (member, None),
            };
            match (key, val) {
                ("u", Some(v)) => {
                    if let Ok(u) = v.parse::<u8>() {
                        if u <= 7 && v.bytes().all(|b| b.is_ascii_digit()) {
                            p.urgency = u;
                        }
                    }
                }
                ("i", None) | ("i", Some("?1")) => p.incremental = true,
                ("i", Some("?0")) => p.incremental = false,
                _ => {}
            }
        }
        p
    }

    /// The field value, e.g. `u=1, i` (defaults omitted, as RFC 9218 §4 recommends).
    pub fn to_field_value(&self) -> String {
        let mut parts = Vec::new();
        if self.urgency != Self::DEFAULT_URGENCY {
            parts.push(format!("u={}", self.urgency));
        }
        if self.incremental {
            parts.push("i".to_string());
        }
        parts.join(", ")
    }

    /// The Quiver stream class this priority maps to (see the module docs).
    pub fn class(&self) -> StreamClass {
        let mut c = StreamClass::new();
        c.priority = self.urgency;
        c
    }

    /// The priority of a request from its headers (`priority`, RFC 9218 §5).
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        headers
            .get("priority")
            .map(|v| Self::parse(v.as_bytes()))
            .unwrap_or_default()
    }
}

/// Encode a PRIORITY_UPDATE frame for request stream `stream_id`.
pub fn encode_priority_update(stream_id: u64, priority: &Priority) -> Vec<u8> {
    let value = priority.to_field_value();
    let mut payload = Vec::new();
    varint::encode(stream_id, &mut payload);
    payload.extend_from_slice(value.as_bytes());
    let mut out = Vec::new();
    varint::encode(PRIORITY_UPDATE_REQUEST, &mut out);
    varint::encode(payload.len() as u64, &mut out);
    out.extend_from_slice(&payload);
    out
}

/// Something a peer's control stream said that concerns priorities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ControlEvent {
    /// PRIORITY_UPDATE for request stream `stream_id`.
    Update { stream_id: u64, priority: Priority },
    /// PRIORITY_UPDATE naming something that is not a client-initiated bidirectional
    /// stream: H3_ID_ERROR (RFC 9218 §7.1).
    BadId(u64),
}

/// Largest PRIORITY_UPDATE payload the tap reads; longer ones are skipped.
const MAX_UPDATE_PAYLOAD: u64 = 1024;

/// Passive reader of one peer-initiated unidirectional stream: finds out whether it is
/// the control stream (type 0x00) and, if so, picks PRIORITY_UPDATE frames out of it.
/// Bytes are observed, never changed; memory is bounded whatever the peer sends.
#[derive(Debug, Default)]
pub(crate) struct ControlTap {
    /// Bytes of an incomplete stream type, frame header or PRIORITY_UPDATE payload.
    buf: Vec<u8>,
    state: TapState,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum TapState {
    /// Reading the stream type.
    #[default]
    StreamType,
    /// Control stream: reading a frame header (type, length).
    FrameHeader,
    /// Control stream: reading a PRIORITY_UPDATE payload of this length.
    Payload { ty: u64, len: u64 },
    /// Control stream: skipping this many bytes of another frame.
    Skip(u64),
    /// Not a control stream, or gave up: ignore the rest.
    Off,
}

impl ControlTap {
    /// Observe the next bytes of the stream; returns what they said.
    pub(crate) fn feed(&mut self, mut data: &[u8], out: &mut Vec<ControlEvent>) {
        while !data.is_empty() {
            match self.state {
                TapState::Off => return,
                TapState::Skip(n) => {
                    let k = (n.min(data.len() as u64)) as usize;
                    data = data.get(k..).unwrap_or_default();
                    let left = n - k as u64;
                    self.state = if left == 0 {
                        TapState::FrameHeader
                    } else {
                        TapState::Skip(left)
                    };
                }
                TapState::StreamType => {
                    let taken = self.take_varint(&mut data);
                    if let Some(ty) = taken {
                        self.state = if ty == 0 {
                            TapState::FrameHeader
                        } else {
                            TapState::Off
                        };
                    }
                }
                TapState::FrameHeader => {
                    // Type and length: buffer until both varints are complete.
                    self.fill(&mut data, 16);
                    let Some((ty, n1)) = varint::decode(&self.buf) else {
                        continue;
                    };
                    let Some((len, n2)) = self.buf.get(n1..).and_then(varint::decode) else {
                        continue;
                    };
                    let rest = self.buf.split_off(n1 + n2);
                    self.buf.clear();
                    let is_update = ty == PRIORITY_UPDATE_REQUEST || ty == PRIORITY_UPDATE_PUSH;
                    self.state = if is_update && len <= MAX_UPDATE_PAYLOAD {
                        TapState::Payload { ty, len }
                    } else if len == 0 {
                        TapState::FrameHeader
                    } else {
                        TapState::Skip(len)
                    };
                    // Bytes buffered past the header are replayed.
                    self.feed_owned(rest, out);
                }
                TapState::Payload { ty, len } => {
                    let want = len as usize;
                    let need = want.saturating_sub(self.buf.len());
                    let k = need.min(data.len());
                    self.buf
                        .extend_from_slice(data.get(..k).unwrap_or_default());
                    data = data.get(k..).unwrap_or_default();
                    if self.buf.len() == want {
                        let payload = std::mem::take(&mut self.buf);
                        self.state = TapState::FrameHeader;
                        if ty == PRIORITY_UPDATE_REQUEST {
                            if let Some(ev) = parse_update(&payload) {
                                out.push(ev);
                            }
                        }
                    }
                }
            }
        }
        // A zero-length payload completes without further bytes.
        if let TapState::Payload { ty, len: 0 } = self.state {
            self.state = TapState::FrameHeader;
            if ty == PRIORITY_UPDATE_REQUEST {
                if let Some(ev) = parse_update(&[]) {
                    out.push(ev);
                }
            }
        }
    }

    fn feed_owned(&mut self, rest: Vec<u8>, out: &mut Vec<ControlEvent>) {
        if !rest.is_empty() {
            self.feed(&rest, out);
        }
    }

    /// Move bytes from `data` into `buf` until it holds `cap` bytes.
    fn fill(&mut self, data: &mut &[u8], cap: usize) {
        let k = cap.saturating_sub(self.buf.len()).min(data.len());
        self.buf
            .extend_from_slice(data.get(..k).unwrap_or_default());
        *data = data.get(k..).unwrap_or_default();
    }

    /// Complete one varint from `buf` + `data`, consuming exactly its bytes.
    fn take_varint(&mut self, data: &mut &[u8]) -> Option<u64> {
        let first = *self.buf.first().or(data.first())?;
        let n = 1usize << (first >> 6);
        self.fill(data, n);
        let (v, _) = varint::decode(&self.buf)?;
        self.buf.clear();
        Some(v)
    }
}

/// A PRIORITY_UPDATE payload: prioritized element ID, then the field value.
fn parse_update(payload: &[u8]) -> Option<ControlEvent> {
    let (id, n) = varint::decode(payload)?;
    if !id.is_multiple_of(4) {
        return Some(ControlEvent::BadId(id));
    }
    Some(ControlEvent::Update {
        stream_id: id,
        priority: Priority::parse(payload.get(n..).unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_rfc9218_examples() {
        assert_eq!(Priority::parse(b"u=5, i"), Priority::new(5).incremental());
        assert_eq!(Priority::parse(b"u=0"), Priority::new(0));
        assert_eq!(Priority::parse(b"i"), Priority::default().incremental());
        assert_eq!(Priority::parse(b"i=?0, u=1"), Priority::new(1));
        assert_eq!(Priority::parse(b""), Priority::default());
        // Invalid urgency is ignored, the rest kept; unknown keys ignored.
        assert_eq!(
            Priority::parse(b"u=9, i"),
            Priority::default().incremental()
        );
        assert_eq!(Priority::parse(b"u=-1"), Priority::default());
        assert_eq!(Priority::parse(b"foo=bar, u=2;x=1"), Priority::new(2));
        assert_eq!(Priority::parse(&[0xff, 0xfe]), Priority::default());
    }

    #[test]
    fn field_value_roundtrip_and_class() {
        for u in 0..=7 {
            for inc in [false, true] {
                let p = Priority {
                    urgency: u,
                    incremental: inc,
                };
                assert_eq!(Priority::parse(p.to_field_value().as_bytes()), p);
                assert_eq!(p.class().priority, u);
            }
        }
        assert_eq!(Priority::default().class(), StreamClass::new());
    }

    fn control_stream(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut s = vec![0x00];
        for f in frames {
            s.extend_from_slice(f);
        }
        s
    }

    fn settings_frame() -> Vec<u8> {
        // SETTINGS with SETTINGS_H3_DATAGRAM=1 (0x33).
        vec![0x04, 0x03, 0x33, 0x01, 0x00]
    }

    #[test]
    fn tap_finds_updates_between_other_frames() {
        let stream = control_stream(&[
            settings_frame(),
            encode_priority_update(0, &Priority::new(1)),
            vec![0x21, 0x02, 0xaa, 0xbb], // reserved frame type, skipped
            encode_priority_update(8, &Priority::new(6).incremental()),
            encode_priority_update(5, &Priority::new(0)),
        ]);
        let expected = vec![
            ControlEvent::Update {
                stream_id: 0,
                priority: Priority::new(1),
            },
            ControlEvent::Update {
                stream_id: 8,
                priority: Priority::new(6).incremental(),
            },
            ControlEvent::BadId(5),
        ];
        // Whole, and byte by byte.
        let mut tap = ControlTap::default();
        let mut out = Vec::new();
        tap.feed(&stream, &mut out);
        assert_eq!(out, expected);
        let mut tap = ControlTap::default();
        let mut out = Vec::new();
        for b in &stream {
            tap.feed(std::slice::from_ref(b), &mut out);
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn tap_ignores_other_streams() {
        let mut s = vec![0x02]; // QPACK encoder stream
        s.extend(encode_priority_update(0, &Priority::new(1)));
        let mut tap = ControlTap::default();
        let mut out = Vec::new();
        tap.feed(&s, &mut out);
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn tap_any_chunking(cuts in proptest::collection::vec(0usize..200, 0..8), u in 0u8..8, id in 0u64..1000) {
            let stream = control_stream(&[
                settings_frame(),
                vec![0x40, 0x21, 0x03, 1, 2, 3],
                encode_priority_update(id * 4, &Priority::new(u)),
            ]);
            let mut cuts = cuts;
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut tap = ControlTap::default();
            let mut out = Vec::new();
            let mut at = 0;
            for c in cuts {
                let c = c.min(stream.len());
                if c > at {
                    tap.feed(&stream[at..c], &mut out);
                    at = c;
                }
            }
            prop_assert_eq!(out, vec![ControlEvent::Update { stream_id: id * 4, priority: Priority::new(u) }]);
        }

        #[test]
        fn tap_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)) {
            let mut tap = ControlTap::default();
            let mut out = Vec::new();
            tap.feed(&[0x00], &mut out);
            for c in &chunks {
                tap.feed(c, &mut out);
                prop_assert!(tap.buf.len() <= MAX_UPDATE_PAYLOAD as usize + 16);
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let p = Priority::parse(&bytes);
            prop_assert!(p.urgency <= 7);
        }
    }
}
