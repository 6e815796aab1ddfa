//! TLS 1.3 over TCP baselines for Quiver's stream-scheduling experiments.
//!
//! The experiment behind this crate (`quiver bench classes`) sends a list of
//! [`Request`]s of mixed sizes and deadlines to an echo server and measures, per request,
//! the time from opening the request to receiving its last echoed byte. QUIC streams
//! under different schedulers are compared with two TCP baselines:
//!
//! * [`Mode::NConn`] — "TLS/TCP n-conn": one TCP connection (and one full TLS 1.3
//!   handshake) per request, so requests never block each other but each pays a
//!   handshake and its own slow start.
//! * [`Mode::OneConn`] — "TLS/TCP 1-conn": every request is written, in start order, on a
//!   single TLS connection; the server echoes them in order, so a short request queued
//!   behind a long one waits for it (head-of-line blocking).
//!
//! Both baselines exist in two forms, so that each QUIC run can be compared like for like:
//!
//! * [`kernel`] — the operating system's TCP on real sockets (tokio + `tokio-rustls`), for
//!   loopback or network-namespace emulation (`quiver netem`).
//! * [`sim`] — a sans-IO TCP ([smoltcp](https://docs.rs/smoltcp)) with rustls on top,
//!   placed as [`quiver_netem::sim::Node`]s on the virtual-time simulator next to QUIC
//!   nodes. Every simulator datagram carries one raw IP packet (IPv4 or IPv6 + TCP).
//!
//! # Wire format
//! A request is a 4-byte big-endian length followed by that many payload bytes; the
//! server answers with the payload alone (no length), streaming it back as it arrives.
//! Payload byte `i` of request `id` is [`payload_byte`]`(id, i)`, so clients check every
//! echoed byte without keeping copies.
//!
//! # Extension points
//! * TLS: both forms take ready [`rustls::ServerConfig`] / [`rustls::ClientConfig`]s
//!   (any provider, suites, ALPN, client auth); [`tls::TlsPair`] builds a matching
//!   self-signed pair for experiments.
//! * TCP on the simulator: [`sim::TcpConfig`] sets buffer sizes (and so the window scale),
//!   congestion control, Nagle, delayed ACK, MTU and the stack's random seed.
//! * Workloads: any `Vec<Request>`; [`Outcome`]s come back in request order.
//!
//! # Limits of the simulated TCP
//! smoltcp is a compact TCP, not a tuned production stack; see [`sim`] for exactly what
//! it lacks (SACK-based recovery, RFC 6928 initial window, RFC 5681 congestion avoidance,
//! ...). Results from the two forms should be read side by side for that reason.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

pub mod kernel;
pub mod sim;
pub mod tls;

/// One request of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Caller-chosen identifier, echoed in the [`Outcome`] and used to derive the payload.
    pub id: u64,
    /// Payload size in bytes (at most [`MAX_REQUEST_SIZE`]).
    pub size: usize,
    /// When the request is opened, relative to the client's start.
    pub start_offset: Duration,
}

impl Request {
    /// A request `id` of `size` bytes opened `start_offset` after the client starts.
    pub fn new(id: u64, size: usize, start_offset: Duration) -> Self {
        Self {
            id,
            size,
            start_offset,
        }
    }
}

/// Largest request payload: the length prefix is a `u32`.
pub const MAX_REQUEST_SIZE: usize = u32::MAX as usize;

/// How requests are mapped onto TCP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One TLS/TCP connection per request ("TLS/TCP n-conn").
    NConn,
    /// All requests serialised, in start order, on one TLS/TCP connection
    /// ("TLS/TCP 1-conn").
    OneConn,
}

/// What happened to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The request's id.
    pub id: u64,
    /// When the request was opened (virtual time on the simulator).
    pub started: Instant,
    /// When its last echoed byte arrived and every byte matched; `None` if it did not
    /// complete (see [`failure`](Self::failure)).
    pub completed: Option<Instant>,
    /// Why the request failed, if it did.
    pub failure: Option<Failure>,
}

impl Outcome {
    /// Latency: `completed - started`, for a completed request.
    pub fn latency(&self) -> Option<Duration> {
        self.completed
            .map(|c| c.saturating_duration_since(self.started))
    }
}

/// Why a request did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// An echoed byte differed from what was sent.
    #[error("echoed byte {offset} differs from the request")]
    Mismatch {
        /// Offset of the first wrong byte in the payload.
        offset: usize,
    },
    /// The connection ended before the whole echo arrived.
    #[error("connection closed after {received} of {expected} echoed bytes")]
    Truncated {
        /// Bytes received.
        received: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// TLS failed (handshake or record layer).
    #[error("TLS: {0}")]
    Tls(String),
    /// Socket-level failure (connect, reset, I/O error).
    #[error("I/O: {0}")]
    Io(String),
    /// The client gave up before the request completed.
    #[error("not completed before the client stopped")]
    TimedOut,
}

/// Errors of the baseline clients and servers (as opposed to per-request [`Failure`]s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// A request is larger than [`MAX_REQUEST_SIZE`].
    #[error("request {id}: {size} bytes exceeds the 4-byte length prefix")]
    RequestTooLarge {
        /// Request id.
        id: u64,
        /// Its size.
        size: usize,
    },
    /// Two requests share an id.
    #[error("duplicate request id {0}")]
    DuplicateId(u64),
    /// Socket error (bind, accept, ...).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// TLS configuration error.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// An address the simulated stack cannot use.
    #[error("simulated TCP: {0}")]
    Address(String),
}

/// Payload byte `offset` of request `id`: a cheap pattern that differs between requests
/// and between neighbouring offsets, so misplaced or mixed-up bytes are detected.
pub fn payload_byte(id: u64, offset: usize) -> u8 {
    let x = (offset as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(id.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    (x >> 56) as u8 ^ (offset as u8)
}

/// The framed request for `req`: length prefix and payload.
pub fn encode_request(req: &Request) -> Result<Vec<u8>, BaselineError> {
    let len = u32::try_from(req.size).map_err(|_| BaselineError::RequestTooLarge {
        id: req.id,
        size: req.size,
    })?;
    let mut out = Vec::with_capacity(4 + req.size);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend((0..req.size).map(|i| payload_byte(req.id, i)));
    Ok(out)
}

/// Checks a workload: sizes fit the length prefix and ids are unique.
pub(crate) fn validate(requests: &[Request]) -> Result<(), BaselineError> {
    let mut ids = std::collections::HashSet::new();
    for r in requests {
        if u32::try_from(r.size).is_err() {
            return Err(BaselineError::RequestTooLarge {
                id: r.id,
                size: r.size,
            });
        }
        if !ids.insert(r.id) {
            return Err(BaselineError::DuplicateId(r.id));
        }
    }
    Ok(())
}

/// Request indices in start order (stable for equal offsets): the order in which a
/// [`Mode::OneConn`] client writes them.
pub(crate) fn start_order(requests: &[Request]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| requests[i].start_offset);
    order
}

/// Sans-IO parser of the request framing, used by the echo servers: feed it received
/// bytes, get back the bytes to echo.
#[derive(Debug, Clone, Default)]
pub(crate) struct EchoFramer {
    header: [u8; 4],
    header_len: usize,
    remaining: u64,
}

impl EchoFramer {
    /// Consumes `input`, appending the payload bytes (the echo) to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            if self.remaining == 0 {
                let take = (4 - self.header_len).min(input.len());
                let (head, rest) = input.split_at(take);
                if let Some(dst) = self.header.get_mut(self.header_len..self.header_len + take) {
                    dst.copy_from_slice(head);
                }
                self.header_len += take;
                input = rest;
                if self.header_len == 4 {
                    self.header_len = 0;
                    self.remaining = u64::from(u32::from_be_bytes(self.header));
                }
            } else {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                let (body, rest) = input.split_at(take);
                out.extend_from_slice(body);
                self.remaining -= take as u64;
                input = rest;
            }
        }
    }
}

/// Sans-IO checker of echoed bytes for a queue of requests answered in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct EchoChecker {
    /// `(request index, id, size)` awaiting their echo, in order.
    queue: std::collections::VecDeque<(usize, u64, usize)>,
    /// Bytes of the front request received so far.
    received: usize,
}

/// Progress reported by [`EchoChecker::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Request (by index) fully echoed and intact.
    Done(usize),
    /// Request (by index) echoed a wrong byte; the connection is out of sync.
    Mismatch(usize, usize),
}

impl EchoChecker {
    pub(crate) fn expect(&mut self, index: usize, req: &Request) {
        self.queue.push_back((index, req.id, req.size));
    }

    fn drain_empty(&mut self, events: &mut Vec<Checked>) {
        while let Some(&(index, _, 0)) = self.queue.front() {
            self.queue.pop_front();
            events.push(Checked::Done(index));
        }
    }

    /// Completes zero-size requests at the front (call after [`expect`](Self::expect)).
    pub(crate) fn take_empty(&mut self) -> Vec<Checked> {
        let mut events = Vec::new();
        self.drain_empty(&mut events);
        events
    }

    /// Checks `input`; returns completions and mismatches in order. After a mismatch the
    /// rest of `input` is ignored.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Vec<Checked> {
        let mut events = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let Some(&(index, id, size)) = self.queue.front() else {
                // Bytes nobody asked for: blame the last request.
                events.push(Checked::Mismatch(usize::MAX, 0));
                return events;
            };
            let take = (size - self.received).min(input.len() - pos);
            for (k, &b) in input[pos..pos + take].iter().enumerate() {
                if b != payload_byte(id, self.received + k) {
                    events.push(Checked::Mismatch(index, self.received + k));
                    return events;
                }
            }
            pos += take;
            self.received += take;
            if self.received == size {
                self.queue.pop_front();
                self.received = 0;
                events.push(Checked::Done(index));
                self.drain_empty(&mut events);
            }
        }
        events
    }

    /// Requests still awaiting bytes: `(index, received, expected)`.
    pub(crate) fn pending(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        self.queue
            .iter()
            .enumerate()
            .map(|(k, &(i, _, size))| (i, if k == 0 { self.received } else { 0 }, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framer_and_checker_round_trip_in_any_chunking() {
        let reqs = [
            Request::new(1, 1000, Duration::ZERO),
            Request::new(2, 0, Duration::ZERO),
            Request::new(3, 17, Duration::ZERO),
        ];
        let mut wire = Vec::new();
        for r in &reqs {
            wire.extend(encode_request(r).unwrap());
        }
        for chunk in [1, 3, 7, 4096] {
            let mut framer = EchoFramer::default();
            let mut echo = Vec::new();
            for c in wire.chunks(chunk) {
                framer.feed(c, &mut echo);
            }
            assert_eq!(echo.len(), 1017);
            let mut checker = EchoChecker::default();
            let mut done = Vec::new();
            for (i, r) in reqs.iter().enumerate() {
                checker.expect(i, r);
                done.extend(checker.take_empty());
            }
            for c in echo.chunks(chunk) {
                done.extend(checker.feed(c));
            }
            assert_eq!(
                done,
                vec![Checked::Done(0), Checked::Done(1), Checked::Done(2)]
            );
        }
    }

    #[test]
    fn checker_detects_corruption() {
        let r = Request::new(9, 100, Duration::ZERO);
        let mut checker = EchoChecker::default();
        checker.expect(0, &r);
        let mut echo: Vec<u8> = (0..100).map(|i| payload_byte(9, i)).collect();
        echo[42] ^= 1;
        assert_eq!(checker.feed(&echo), vec![Checked::Mismatch(0, 42)]);
    }

    #[test]
    fn validate_rejects_duplicates() {
        let r = Request::new(1, 1, Duration::ZERO);
        assert!(matches!(
            validate(&[r, r]),
            Err(BaselineError::DuplicateId(1))
        ));
    }
}
