//! Fuzz targets on live connections: a client and a server [`Endpoint`] wired back to
//! back in memory with a virtual clock (the same shape as the simulator, without link
//! effects: every datagram arrives at once, in order). A fuzz input is a frame payload
//! that one side seals with its **real** keys of the chosen level, so the peer
//! authenticates it and processes its frames.
//!
//! After each input the pair runs until quiet, then the target checks:
//! - nothing panicked and the driver loop converged (no timer that stays due);
//! - a side that closed did so with a transport error other than INTERNAL_ERROR, and in
//!   the 1-RTT target its CONNECTION_CLOSE reached the other side with the same code;
//! - during a handshake, each side ends either connected or closed (no silent stall);
//! - an established connection that did not close still carries a DATAGRAM.
//!
//! [`expectations`] is a table of hand-made bad inputs with the RFC error code each must
//! close the connection with; [`check_expectation`] runs one.

use super::codec::{frame_kind, frame_seeds, hash_str};
use super::{fold, Signature, Target, SIG_START};
use crate::cid::ResetToken;
use crate::coding::{BufMutExt, VarInt};
use crate::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use crate::connection::{Connection, ConnectionError, Event};
use crate::endpoint::{ConnectionHandle, DatagramEvent, Endpoint};
use crate::error::TransportErrorCode as Code;
use crate::frame::{self, frame_type as ft, Frame};
use crate::shared::{Dir, Epoch, Side, StreamId};
use crate::ConnectionId;
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// TLS configurations for the live targets (the caller makes the certificate; this crate
/// has no certificate generator). The transport settings are replaced by small fixed
/// limits so that flow-control and stream-limit edges are reachable.
#[derive(Clone, Debug)]
pub struct LiveConfigs {
    /// Server configuration (its crypto is used).
    pub server: Arc<ServerConfig>,
    /// Client configuration (its crypto is used; it must accept the server's
    /// certificate for `localhost`).
    pub client: ClientConfig,
}

impl LiveConfigs {
    /// Use the crypto of `server` and `client` with the fuzz transport settings.
    pub fn new(server: ServerConfig, client: ClientConfig) -> Self {
        let mut server = server;
        server.transport = Arc::new(fuzz_transport());
        let mut client = client;
        client.transport = Arc::new(fuzz_transport());
        Self {
            server: Arc::new(server),
            client,
        }
    }
}

/// Small windows and stream limits, datagrams on, a short idle timeout.
pub fn fuzz_transport() -> TransportConfig {
    TransportConfig {
        max_idle_timeout: Some(Duration::from_secs(5)),
        stream_receive_window: 1000,
        receive_window: 100_000,
        max_concurrent_bidi_streams: 4,
        max_concurrent_uni_streams: 4,
        datagram_receive_buffer_size: Some(64 * 1024),
        ..TransportConfig::default()
    }
}

fn server_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 4433))
}

fn client_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 50000))
}

/// A client and a server endpoint back to back with a virtual clock.
struct Pair {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    ch: ConnectionHandle,
    sh: Option<ConnectionHandle>,
    buf: Vec<u8>,
    lost: [Option<ConnectionError>; 2],
    connected: [bool; 2],
    datagrams: [Vec<Bytes>; 2],
}

fn idx(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

impl Pair {
    fn start(configs: &LiveConfigs, now: Instant, seed: u64) -> Result<Pair, String> {
        let ep = |s: u64| {
            Arc::new(EndpointConfig {
                rng_seed: Some(s),
                reset_key: Some([s as u8; 32]),
                ..EndpointConfig::default()
            })
        };
        let server = Endpoint::new(ep(2 * seed + 1), Some(configs.server.clone()));
        let mut client = Endpoint::new(ep(2 * seed + 2), None);
        let ch = client
            .connect(now, configs.client.clone(), server_addr(), "localhost")
            .map_err(|e| format!("connect: {e}"))?;
        Ok(Pair {
            now,
            client,
            server,
            ch,
            sh: None,
            buf: Vec::new(),
            lost: [None, None],
            connected: [false, false],
            datagrams: [Vec::new(), Vec::new()],
        })
    }

    fn established(configs: &LiveConfigs, now: Instant, seed: u64) -> Result<Pair, String> {
        let mut p = Pair::start(configs, now, seed)?;
        p.run(Duration::from_secs(1))?;
        if !(p.connected[0] && p.connected[1]) {
            return Err(format!("the fuzz pair did not connect: {:?}", p.lost));
        }
        Ok(p)
    }

    fn conn(&mut self, side: Side) -> Option<&mut Connection> {
        match side {
            Side::Client => self.client.connection_mut(self.ch),
            Side::Server => self.server.connection_mut(self.sh?),
        }
    }

    fn deliver(&mut self, to: Side, data: &[u8]) {
        let now = self.now;
        match to {
            Side::Server => {
                let ev = self
                    .server
                    .handle(now, client_addr(), None, None, BytesMut::from(data));
                if let Some(DatagramEvent::NewConnection(h)) = ev {
                    self.sh.get_or_insert(h);
                }
            }
            Side::Client => {
                self.client
                    .handle(now, server_addr(), None, None, BytesMut::from(data));
            }
        }
    }

    fn drain_events(&mut self) {
        for side in [Side::Client, Side::Server] {
            let ep = match side {
                Side::Client => &mut self.client,
                Side::Server => &mut self.server,
            };
            while let Some((_, ev)) = ep.poll_event() {
                match ev {
                    Event::Connected => self.connected[idx(side)] = true,
                    Event::ConnectionLost { reason } => {
                        self.lost[idx(side)].get_or_insert(reason);
                    }
                    _ => {}
                }
            }
            let h = match side {
                Side::Client => Some(self.ch),
                Side::Server => self.sh,
            };
            if let Some(conn) = h.and_then(|h| ep.connection_mut(h)) {
                while let Some(d) = conn.recv_datagram() {
                    let got = &mut self.datagrams[idx(side)];
                    if got.len() < 64 {
                        got.push(d);
                    }
                }
            }
        }
    }

    fn take(&mut self, side: Side) -> Option<Vec<u8>> {
        let now = self.now;
        let ep = match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        };
        let t = ep.poll_transmit(now, 1, &mut self.buf)?;
        Some(self.buf[..t.size].to_vec())
    }

    /// Exchange datagrams until neither side has anything to send.
    fn flush(&mut self) -> Result<(), String> {
        for _ in 0..20_000 {
            let mut any = false;
            if let Some(d) = self.take(Side::Client) {
                self.deliver(Side::Server, &d);
                any = true;
            }
            if let Some(d) = self.take(Side::Server) {
                self.deliver(Side::Client, &d);
                any = true;
            }
            self.drain_events();
            if !any {
                return Ok(());
            }
        }
        Err("endless datagram exchange".into())
    }

    /// Exchange datagrams and fire timers for `budget` of virtual time.
    fn run(&mut self, budget: Duration) -> Result<(), String> {
        let end = self.now + budget;
        for _ in 0..50_000 {
            self.flush()?;
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.client.handle_timeout(now);
                    self.server.handle_timeout(now);
                    self.drain_events();
                }
                _ => {
                    self.now = self.now.max(end);
                    return Ok(());
                }
            }
        }
        Err("the timer loop does not converge".into())
    }

    /// Seal `payload` at `epoch` from `from` and deliver it. False when `from` has no
    /// such keys (nothing delivered).
    fn inject(&mut self, from: Side, epoch: Epoch, payload: &[u8]) -> bool {
        let now = self.now;
        let Some(packet) = self
            .conn(from)
            .and_then(|c| c.seal_for_peer(now, epoch, payload))
        else {
            return false;
        };
        self.deliver(!from, &packet);
        true
    }
}

fn acceptable(r: &ConnectionError) -> bool {
    match r {
        ConnectionError::TransportError(e) => e.code != Code::INTERNAL_ERROR,
        // Injected payloads may carry CONNECTION_CLOSE.
        ConnectionError::ConnectionClosed { .. } | ConnectionError::ApplicationClosed { .. } => {
            true
        }
        _ => false,
    }
}

fn lost_sig(r: &Option<ConnectionError>) -> u64 {
    match r {
        None => 0,
        Some(ConnectionError::TransportError(e)) => 0x1000 + e.code.0.min(0x1ff),
        Some(ConnectionError::ConnectionClosed { .. }) => 2,
        Some(ConnectionError::ApplicationClosed { .. }) => 3,
        Some(ConnectionError::TimedOut) => 4,
        Some(other) => hash_str(&other.to_string()),
    }
}

/// Where the handshake target injects (input byte 0, modulo 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A client Initial (the ClientHello's place) before anything else.
    ClientInitial,
    /// A server Initial (ServerHello's place) after the client's Initial arrived.
    ServerInitial,
    /// A server Handshake packet after the client processed the server's Initial.
    ServerHandshake,
    /// A client Handshake packet (Finished's place) after the server's whole flight.
    ClientHandshake,
}

const STAGES: [Stage; 4] = [
    Stage::ClientInitial,
    Stage::ServerInitial,
    Stage::ServerHandshake,
    Stage::ClientHandshake,
];

/// `live-handshake`: Initial and Handshake payloads sealed with the real keys of either
/// side at four points of a handshake. Input byte 0 picks the point, the rest is the
/// payload. Every input runs on a fresh pair.
pub struct LiveHandshakeTarget {
    configs: LiveConfigs,
    base: Instant,
    runs: u64,
}

impl std::fmt::Debug for LiveHandshakeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHandshakeTarget")
            .field("runs", &self.runs)
            .finish()
    }
}

impl LiveHandshakeTarget {
    /// A target whose virtual clocks start at `base` (any instant: no clock is read).
    pub fn new(configs: LiveConfigs, base: Instant) -> Self {
        Self {
            configs,
            base,
            runs: 0,
        }
    }

    /// Drive a fresh pair to `stage`; returns the pair and the real datagram that the
    /// injected packet stands in for (delivered or not, see `exec`).
    fn advance(&mut self, stage: Stage) -> Result<(Pair, Vec<u8>), String> {
        let mut p = Pair::start(&self.configs, self.base, 1)?;
        let client_initial = p.take(Side::Client).ok_or("client sent no Initial")?;
        if stage == Stage::ClientInitial {
            return Ok((p, client_initial));
        }
        p.deliver(Side::Server, &client_initial);
        let mut flight = Vec::new();
        while let Some(d) = p.take(Side::Server) {
            flight.push(d);
        }
        let first = flight.first().cloned().ok_or("server sent no flight")?;
        if stage == Stage::ServerInitial {
            // The real flight follows the injected packet.
            for d in flight {
                p.deliver(Side::Client, &d);
            }
            return Ok((p, first));
        }
        // Split the server's first datagram: Initial, then Handshake packets.
        let initial_len = crate::packet::PartialDecode::new(BytesMut::from(&first[..]), 0)
            .map_err(|e| format!("server flight: {e}"))?
            .0
            .len();
        p.deliver(Side::Client, &first[..initial_len]);
        if stage == Stage::ServerHandshake {
            return Ok((p, first[initial_len..].to_vec()));
        }
        p.deliver(Side::Client, &first[initial_len..]);
        for d in &flight[1..] {
            p.deliver(Side::Client, d);
        }
        let finished = p.take(Side::Client).ok_or("client sent no Finished")?;
        Ok((p, finished))
    }
}

impl Target for LiveHandshakeTarget {
    fn name(&self) -> &'static str {
        "live-handshake"
    }

    fn max_len(&self) -> usize {
        1400
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for (i, stage) in STAGES.into_iter().enumerate() {
            let Ok((mut p, real)) = self.advance(stage) else {
                continue;
            };
            let (from, epoch) = stage_side(stage);
            let Some(conn) = p.conn(from) else {
                continue;
            };
            for (e, payload) in conn.open_own(&real) {
                if e == epoch {
                    seeds.push([&[i as u8][..], &payload].concat());
                }
            }
            // A few plain frames too.
            seeds.push(vec![i as u8, ft::PING as u8]);
        }
        seeds
    }

    fn exec(&mut self, input: &[u8]) -> Result<Signature, String> {
        let Some((&tag, payload)) = input.split_first() else {
            return Ok(SIG_START);
        };
        let stage = STAGES[usize::from(tag) % STAGES.len()];
        let (from, epoch) = stage_side(stage);
        self.runs += 1;
        let (mut p, real) = self.advance(stage)?;
        let injected = p.inject(from, epoch, payload);
        // The real packet follows, so a harmless input still lets the handshake finish.
        if stage != Stage::ServerInitial {
            p.deliver(!from, &real);
        }
        p.run(Duration::from_secs(30))?;
        let mut sig = fold(SIG_START, tag as u64 % 4 + 8 * u64::from(injected));
        for side in [Side::Client, Side::Server] {
            let i = idx(side);
            if let Some(r) = &p.lost[i] {
                let ok = acceptable(r) || *r == ConnectionError::TimedOut;
                if !ok {
                    return Err(format!("{side:?} closed with {r:?}"));
                }
            } else if !p.connected[i] && (side == Side::Client || p.sh.is_some()) {
                return Err(format!(
                    "{side:?} neither connected nor closed after 30 s ({stage:?})"
                ));
            }
            sig = fold(sig, lost_sig(&p.lost[i]));
            sig = fold(sig, u64::from(p.connected[i]));
        }
        Ok(sig)
    }
}

fn stage_side(stage: Stage) -> (Side, Epoch) {
    match stage {
        Stage::ClientInitial => (Side::Client, Epoch::Initial),
        Stage::ServerInitial => (Side::Server, Epoch::Initial),
        Stage::ServerHandshake => (Side::Server, Epoch::Handshake),
        Stage::ClientHandshake => (Side::Client, Epoch::Handshake),
    }
}

/// `live-1rtt`: 1-RTT payloads sealed with the valid keys of an established pair. Input
/// byte 0 (bit 0) picks the sender; the rest is the payload. The pair is reused until it
/// closes (or after 32 inputs) so that state builds up across inputs.
pub struct Live1RttTarget {
    configs: LiveConfigs,
    base: Instant,
    pair: Option<Pair>,
    uses: u32,
    pairs: u64,
}

impl std::fmt::Debug for Live1RttTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live1RttTarget")
            .field("pairs", &self.pairs)
            .finish()
    }
}

impl Live1RttTarget {
    /// A target whose virtual clocks start at `base`.
    pub fn new(configs: LiveConfigs, base: Instant) -> Self {
        Self {
            configs,
            base,
            pair: None,
            uses: 0,
            pairs: 0,
        }
    }

    /// Every input on a fresh pair (for replaying a finding in isolation).
    pub fn fresh_each_time(&mut self) {
        self.uses = u32::MAX;
    }
}

impl Target for Live1RttTarget {
    fn name(&self) -> &'static str {
        "live-1rtt"
    }

    fn max_len(&self) -> usize {
        1200
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let mut seeds = Vec::new();
        for f in frame_seeds() {
            seeds.push([&[0u8][..], &f].concat());
            seeds.push([&[1u8][..], &f].concat());
        }
        seeds
    }

    fn exec(&mut self, input: &[u8]) -> Result<Signature, String> {
        let Some((&tag, payload)) = input.split_first() else {
            return Ok(SIG_START);
        };
        let from = if tag & 1 == 0 {
            Side::Client
        } else {
            Side::Server
        };
        let victim = !from;
        let fresh = self.uses >= 32 || self.pair.is_none();
        if fresh {
            self.pairs += 1;
            self.pair = Some(Pair::established(&self.configs, self.base, 1)?);
            if self.uses != u32::MAX {
                self.uses = 0;
            }
        }
        self.uses = self.uses.saturating_add(1);
        let p = self.pair.as_mut().ok_or("no pair")?;
        let victim_dcid = p.conn(victim).map(|c| c.current_remote_cid());
        if !p.inject(from, Epoch::Data, payload) {
            return Err("an established pair has no 1-RTT keys".into());
        }
        // A forged NEW_CONNECTION_ID (with retire_prior_to) can move the victim to a CID
        // the sender never issued; its packets then cannot be routed back.
        let redirected = {
            let now_dcid = p.conn(victim).map(|c| c.current_remote_cid());
            let issued: Vec<ConnectionId> = p
                .conn(from)
                .map(|c| c.local_cids().collect())
                .unwrap_or_default();
            now_dcid != victim_dcid && now_dcid.is_some_and(|d| !issued.contains(&d))
        };
        p.run(Duration::from_millis(500))?;
        let mut sig = fold(SIG_START, tag as u64 & 1);
        for f in frame::Iter::new(Bytes::copy_from_slice(payload)).take(8) {
            sig = fold(sig, f.map_or(0xbad, |f| frame_kind(&f)));
        }
        let (lv, lf) = (p.lost[idx(victim)].clone(), p.lost[idx(from)].clone());
        sig = fold(fold(sig, lost_sig(&lv)), lost_sig(&lf));
        if let Some(r) = &lv {
            self.pair = None;
            if !acceptable(r) {
                return Err(format!("{victim:?} closed with {r:?}"));
            }
            if let ConnectionError::TransportError(e) = r {
                let ok = redirected
                    || matches!(&lf, Some(ConnectionError::ConnectionClosed { code, .. }) if *code == e.code);
                if !ok {
                    return Err(format!(
                        "{from:?} saw {lf:?} after {victim:?} closed with {e}"
                    ));
                }
            }
            return Ok(sig);
        }
        if let Some(r) = &lf {
            self.pair = None;
            if !acceptable(r) {
                return Err(format!("{from:?} closed with {r:?}"));
            }
            return Ok(sig);
        }
        // Still alive: a DATAGRAM goes through from the sender to the victim.
        p.datagrams[idx(victim)].clear();
        let marker = Bytes::from_static(b"follow-up datagram");
        let sent = p
            .conn(from)
            .map(|c| c.send_datagram(marker.clone()))
            .ok_or("sender connection gone")?;
        if let Err(e) = sent {
            return Err(format!(
                "{from:?} cannot send a DATAGRAM after the input: {e}"
            ));
        }
        p.run(Duration::from_millis(500))?;
        if !p.datagrams[idx(victim)].contains(&marker) && p.lost.iter().all(|l| l.is_none()) {
            return Err(format!(
                "{victim:?} did not receive a DATAGRAM after the input (connection stalled)"
            ));
        }
        if redirected {
            self.pair = None;
        }
        Ok(sig)
    }
}

/// A hand-made bad input and the error the receiver must close with.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// What it tests.
    pub name: &'static str,
    /// Who sends it (sealed with that side's 1-RTT keys).
    pub from: Side,
    /// Frames sent before it, each in its own packet (to set up state).
    pub setup: Vec<Vec<u8>>,
    /// The payload.
    pub payload: Vec<u8>,
    /// The error code the receiver must close with.
    pub code: Code,
    /// The frame type it must report.
    pub frame_type: Option<u64>,
}

fn enc(f: Frame) -> Vec<u8> {
    let mut v = Vec::new();
    f.encode(&mut v);
    v
}

fn stream(id: StreamId, offset: u64, data: &[u8], fin: bool) -> Vec<u8> {
    enc(Frame::Stream(frame::Stream {
        id,
        offset,
        fin,
        data: Bytes::copy_from_slice(data),
    }))
}

/// Hand-made bad inputs → the RFC error code (RFC 9000 §19, §4, §13; RFC 9221).
pub fn expectations() -> Vec<Expectation> {
    let cbidi = |n| StreamId::new(Side::Client, Dir::Bi, n);
    let suni = StreamId::new(Side::Server, Dir::Uni, 0);
    let cuni = StreamId::new(Side::Client, Dir::Uni, 0);
    let e = |name, from, payload, code, frame_type| Expectation {
        name,
        from,
        setup: Vec::new(),
        payload,
        code,
        frame_type,
    };
    let mut unknown = vec![ft::PING as u8];
    unknown.put_var(0x21);
    let mut truncated = stream(cbidi(0), 0, b"hello world", false);
    truncated.truncate(truncated.len() - 4);
    let mut new_cid_bad_len = vec![0x18, 1, 0, 21];
    new_cid_bad_len.extend_from_slice(&[0; 21 + 16]);
    let mut empty_token = vec![ft::NEW_TOKEN as u8, 0];
    empty_token.truncate(2);
    let mut max_streams_big = vec![0x12];
    max_streams_big.put_var((1 << 60) + 1);
    let mut ack_ahead = Vec::new();
    let mut ahead = crate::range_set::RangeSet::new();
    ahead.insert(999_990..1_000_001);
    if let Some(a) = frame::Ack::from_ranges(0, &ahead, None) {
        Frame::Ack(a).encode(&mut ack_ahead);
    }
    let mut ack_underflow = vec![ft::ACK as u8];
    ack_underflow.put_var(3); // largest
    ack_underflow.put_var(0); // delay
    ack_underflow.put_var(0); // range count
    ack_underflow.put_var(5); // first range longer than largest
    let mut stream_over_max = vec![0x0e];
    stream_over_max.put_var(0);
    stream_over_max.put_var((1 << 62) - 2);
    stream_over_max.put_var(4);
    stream_over_max.extend_from_slice(b"over");
    vec![
        e(
            "unknown frame type",
            Side::Client,
            unknown,
            Code::FRAME_ENCODING_ERROR,
            Some(0x21),
        ),
        e(
            "STREAM length beyond the packet",
            Side::Client,
            truncated,
            Code::FRAME_ENCODING_ERROR,
            Some(0x0a),
        ),
        e(
            "STREAM on the peer's send-only stream",
            Side::Client,
            stream(suni, 0, b"x", false),
            Code::STREAM_STATE_ERROR,
            Some(0x0a),
        ),
        e(
            "STREAM beyond the stream window",
            Side::Client,
            stream(cbidi(0), 990, b"0123456789abcdef", false),
            Code::FLOW_CONTROL_ERROR,
            Some(0x0e),
        ),
        e(
            "STREAM offset + length beyond 2^62-1",
            Side::Client,
            stream_over_max,
            Code::FRAME_ENCODING_ERROR,
            Some(0x0e),
        ),
        e(
            "stream id over the stream limit",
            Side::Client,
            stream(cbidi(4), 0, b"x", false),
            Code::STREAM_LIMIT_ERROR,
            Some(0x0a),
        ),
        e(
            "MAX_STREAM_DATA for a receive-only stream",
            Side::Client,
            enc(Frame::MaxStreamData {
                id: suni,
                offset: 10,
            }),
            Code::STREAM_STATE_ERROR,
            Some(ft::MAX_STREAM_DATA),
        ),
        e(
            "STOP_SENDING for a receive-only stream",
            Side::Server,
            enc(Frame::StopSending(frame::StopSending {
                id: cuni,
                error_code: VarInt::from_u32(1),
            })),
            Code::STREAM_STATE_ERROR,
            Some(ft::STOP_SENDING),
        ),
        e(
            "MAX_STREAMS above 2^60",
            Side::Client,
            max_streams_big,
            Code::FRAME_ENCODING_ERROR,
            Some(0x12),
        ),
        e(
            "HANDSHAKE_DONE from a client",
            Side::Client,
            enc(Frame::HandshakeDone),
            Code::PROTOCOL_VIOLATION,
            Some(ft::HANDSHAKE_DONE),
        ),
        e(
            "NEW_TOKEN from a client",
            Side::Client,
            enc(Frame::NewToken(Bytes::from_static(b"tok"))),
            Code::PROTOCOL_VIOLATION,
            Some(ft::NEW_TOKEN),
        ),
        e(
            "empty NEW_TOKEN",
            Side::Server,
            empty_token,
            Code::FRAME_ENCODING_ERROR,
            Some(ft::NEW_TOKEN),
        ),
        e(
            "ACK of a packet never sent",
            Side::Client,
            ack_ahead,
            Code::PROTOCOL_VIOLATION,
            Some(ft::ACK),
        ),
        e(
            "ACK range below packet 0",
            Side::Client,
            ack_underflow,
            Code::FRAME_ENCODING_ERROR,
            Some(ft::ACK),
        ),
        e(
            "NEW_CONNECTION_ID with a 21-byte CID",
            Side::Server,
            new_cid_bad_len,
            Code::FRAME_ENCODING_ERROR,
            Some(0x18),
        ),
        e(
            "NEW_CONNECTION_ID with retire_prior_to > sequence",
            Side::Server,
            {
                let mut v = vec![0x18, 2, 3, 8];
                v.extend_from_slice(&[7; 8 + 16]);
                v
            },
            Code::FRAME_ENCODING_ERROR,
            Some(0x18),
        ),
        e(
            "RETIRE_CONNECTION_ID of a CID never issued",
            Side::Client,
            enc(Frame::RetireConnectionId { sequence: 40 }),
            Code::PROTOCOL_VIOLATION,
            Some(ft::RETIRE_CONNECTION_ID),
        ),
        e(
            "NEW_CONNECTION_ID beyond active_connection_id_limit",
            Side::Server,
            {
                let mut v = Vec::new();
                for seq in 100..110u8 {
                    Frame::NewConnectionId(frame::NewConnectionId {
                        sequence: u64::from(seq),
                        retire_prior_to: 0,
                        id: ConnectionId::new(&[seq; 8]).unwrap_or(ConnectionId::EMPTY),
                        reset_token: ResetToken([seq; 16]),
                    })
                    .encode(&mut v);
                }
                v
            },
            Code::CONNECTION_ID_LIMIT_ERROR,
            Some(0x18),
        ),
        e(
            "final size changed by RESET_STREAM",
            Side::Client,
            {
                let mut v = stream(cbidi(0), 0, b"abcdef", true);
                Frame::ResetStream(frame::ResetStream {
                    id: cbidi(0),
                    error_code: VarInt::from_u32(0),
                    final_size: 3,
                })
                .encode(&mut v);
                v
            },
            Code::FINAL_SIZE_ERROR,
            Some(ft::RESET_STREAM),
        ),
        e(
            "data beyond the final size",
            Side::Client,
            {
                let mut v = stream(cbidi(0), 0, b"abc", true);
                v.extend(stream(cbidi(0), 3, b"def", false));
                v
            },
            Code::FINAL_SIZE_ERROR,
            Some(0x0e),
        ),
        e(
            "CRYPTO in 1-RTT beyond the buffer",
            Side::Client,
            enc(Frame::Crypto(frame::Crypto {
                offset: 1 << 30,
                data: Bytes::from_static(b"x"),
            })),
            Code::CRYPTO_BUFFER_EXCEEDED,
            Some(ft::CRYPTO),
        ),
    ]
}

/// Run one expectation on a fresh established pair: the receiver must close with the
/// expected code and frame type, and the sender must learn that code.
pub fn check_expectation(
    configs: &LiveConfigs,
    base: Instant,
    e: &Expectation,
) -> Result<(), String> {
    let mut p = Pair::established(configs, base, 1)?;
    for s in &e.setup {
        p.inject(e.from, Epoch::Data, s);
        p.flush()?;
    }
    if !p.inject(e.from, Epoch::Data, &e.payload) {
        return Err("no 1-RTT keys".into());
    }
    p.flush()?;
    let victim = !e.from;
    match &p.lost[idx(victim)] {
        Some(ConnectionError::TransportError(t)) if t.code == e.code && t.frame == e.frame_type => {
        }
        other => {
            return Err(format!(
                "{}: expected {} (frame {:?}), {victim:?} got {other:?}",
                e.name, e.code, e.frame_type
            ))
        }
    }
    match &p.lost[idx(e.from)] {
        Some(ConnectionError::ConnectionClosed { code, .. }) if *code == e.code => Ok(()),
        other => Err(format!("{}: the sender saw {other:?}", e.name)),
    }
}
