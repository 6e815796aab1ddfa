//! Observability: a typed stream of connection events, and its qlog serialisation.
//!
//! Every connection can carry one [`EventSubscriber`]. The connection calls
//! [`EventSubscriber::on_event`] with the time of the call that caused the event (the
//! `now` given to `handle_datagram`, `handle_timeout`, `poll_transmit`, …) and a typed
//! [`Event`]. The events and their fields follow the QUIC event definitions of qlog
//! (draft-ietf-quic-qlog-quic-events-03, qlog version 0.3), so that
//! [`JsonSeqWriter`] can serialise them for qvis without translation; metrics and
//! tests subscribe to the same stream.
//!
//! ## Plugging a subscriber
//! A [`SubscriberFactory`] in [`TransportConfig::event_subscriber`] is asked once per
//! connection, when the connection is created, with a [`ConnectionInfo`] (side, original
//! destination CID, creation time). It returns the connection's subscriber, or `None`
//! to leave that connection untraced. Without a factory (the default) or without a
//! subscriber, tracing costs one `Option` check per emission point: no event, frame
//! list or header is built.
//!
//! ```
//! use quiver_proto::qlog::{ConnectionInfo, Event, EventSubscriber, SubscriberFactory};
//! use std::sync::{Arc, Mutex};
//! use std::time::Instant;
//!
//! /// Counts the packets every connection declares lost.
//! struct LossCounter(Arc<Mutex<u64>>);
//! impl EventSubscriber for LossCounter {
//!     fn on_event(&mut self, _time: Instant, event: &Event) {
//!         if let Event::PacketLost(_) = event {
//!             *self.0.lock().unwrap() += 1;
//!         }
//!     }
//! }
//! struct Factory(Arc<Mutex<u64>>);
//! impl SubscriberFactory for Factory {
//!     fn build(&self, _info: &ConnectionInfo) -> Option<Box<dyn EventSubscriber>> {
//!         Some(Box::new(LossCounter(self.0.clone())))
//!     }
//! }
//! let lost = Arc::new(Mutex::new(0));
//! let transport = quiver_proto::config::TransportConfig {
//!     event_subscriber: Some(Arc::new(Factory(lost.clone()))),
//!     ..Default::default()
//! };
//! # let _ = transport;
//! ```
//!
//! ## qlog
//! [`JsonSeqWriter`] is a subscriber that writes a qlog 0.3 JSON-SEQ trace (RFC 7464:
//! each record starts with 0x1E and ends with a line feed) to any [`std::io::Write`]
//! given by the caller; this crate never opens a file. The `quiver` runtime's
//! `quiver::qlog::QlogDir` writes one `<odcid>_<client|server>.sqlog` file per
//! connection into a directory (the interop runner's `QLOGDIR`).
//!
//! Key material is never part of an event: [`KeyUpdated`] names the key, its
//! generation and the trigger, and qlog's `new` field is logged empty. Use
//! `SSLKEYLOGFILE` (rustls' `KeyLogFile`) to decrypt captures.
//!
//! [`TransportConfig::event_subscriber`]: crate::config::TransportConfig::event_subscriber

mod json;

pub use json::JsonSeqWriter;

use crate::cid::{ConnectionId, ResetToken};
use crate::frame::Frame;
use crate::packet::PacketType as WirePacketType;
use crate::shared::{Dir, Epoch, Side};
use crate::transport_params::TransportParameters;
use crate::TransportErrorCode;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Receives the events of one connection (see the [module docs](self)).
pub trait EventSubscriber: Send {
    /// One event happened at `time` (the `now` of the call that caused it).
    fn on_event(&mut self, time: Instant, event: &Event);
}

/// Who a new connection is, as told to a [`SubscriberFactory`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Our side.
    pub side: Side,
    /// The original destination CID: the client's first random DCID, which both sides
    /// know (qlog's `ODCID`, which names the trace).
    pub odcid: ConnectionId,
    /// When the connection was created (time zero of a relative-time trace).
    pub created: Instant,
}

/// Builds the [`EventSubscriber`] of each new connection; set in
/// [`crate::config::TransportConfig::event_subscriber`].
pub trait SubscriberFactory: Send + Sync {
    /// The subscriber of the connection described by `info`, or `None` to leave it
    /// untraced.
    fn build(&self, info: &ConnectionInfo) -> Option<Box<dyn EventSubscriber>>;
}

/// A connection event (qlog names in the variant docs).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `connectivity:connection_started`.
    ConnectionStarted(ConnectionStarted),
    /// `connectivity:connection_closed`.
    ConnectionClosed(ConnectionClosed),
    /// `connectivity:connection_state_updated`.
    ConnectionStateUpdated {
        /// The previous state (`None` for the first event).
        old: Option<ConnectionState>,
        /// The new state.
        new: ConnectionState,
    },
    /// `transport:parameters_set`: our or the peer's transport parameters.
    ParametersSet(ParametersSet),
    /// `transport:packet_sent`.
    PacketSent(PacketEvent),
    /// `transport:packet_received` (after successful decryption).
    PacketReceived(PacketEvent),
    /// `transport:packet_dropped`.
    PacketDropped(PacketDropped),
    /// `recovery:metrics_updated`: only the fields that changed are `Some`.
    MetricsUpdated(Metrics),
    /// `recovery:congestion_state_updated`.
    CongestionStateUpdated {
        /// The previous state (`None` for the first event).
        old: Option<CongestionState>,
        /// The new state.
        new: CongestionState,
        /// Set when persistent congestion or ECN caused the change.
        trigger: Option<CongestionTrigger>,
    },
    /// `recovery:packet_lost`.
    PacketLost(PacketLost),
    /// `security:key_updated`.
    KeyUpdated(KeyUpdated),
}

impl Event {
    /// The qlog event name (`category:event`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::ConnectionStarted(_) => "connectivity:connection_started",
            Event::ConnectionClosed(_) => "connectivity:connection_closed",
            Event::ConnectionStateUpdated { .. } => "connectivity:connection_state_updated",
            Event::ParametersSet(_) => "transport:parameters_set",
            Event::PacketSent(_) => "transport:packet_sent",
            Event::PacketReceived(_) => "transport:packet_received",
            Event::PacketDropped(_) => "transport:packet_dropped",
            Event::MetricsUpdated(_) => "recovery:metrics_updated",
            Event::CongestionStateUpdated { .. } => "recovery:congestion_state_updated",
            Event::PacketLost(_) => "recovery:packet_lost",
            Event::KeyUpdated(_) => "security:key_updated",
        }
    }
}

/// Data of `connectivity:connection_started`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStarted {
    /// Our address as far as known (the IP may be unspecified and the port 0 when the
    /// core is not told its local address).
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Our first source CID.
    pub local_cid: ConnectionId,
    /// The peer's CID we address packets to.
    pub remote_cid: ConnectionId,
}

/// Who did something (qlog `Owner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This endpoint.
    Local,
    /// The peer.
    Remote,
}

/// Why a connection ended (qlog `connection_closed` trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseTrigger {
    /// A close without error (code 0).
    Clean,
    /// The idle timeout expired.
    IdleTimeout,
    /// An error closed it (immediate close).
    Error,
    /// A stateless reset ended it.
    StatelessReset,
    /// No common version.
    VersionMismatch,
    /// The application closed it.
    Application,
}

/// Data of `connectivity:connection_closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionClosed {
    /// Which side closed it (`None` when neither did: idle timeout).
    pub owner: Option<Owner>,
    /// Transport error code, for transport closes.
    pub connection_code: Option<TransportErrorCode>,
    /// Application error code, for application closes.
    pub application_code: Option<u64>,
    /// Reason phrase.
    pub reason: String,
    /// Why.
    pub trigger: CloseTrigger,
}

/// qlog connection states (`ConnectionState`), as this implementation passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The first Initial was sent or received.
    Attempted,
    /// Handshake keys are available.
    HandshakeStarted,
    /// TLS completed the handshake.
    HandshakeComplete,
    /// The handshake is confirmed (RFC 9001 §4.1.2).
    HandshakeConfirmed,
    /// We sent CONNECTION_CLOSE.
    Closing,
    /// The peer closed: draining.
    Draining,
    /// Everything is over.
    Closed,
}

impl ConnectionState {
    /// qlog spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Attempted => "attempted",
            ConnectionState::HandshakeStarted => "handshake_started",
            ConnectionState::HandshakeComplete => "handshake_complete",
            ConnectionState::HandshakeConfirmed => "handshake_confirmed",
            ConnectionState::Closing => "closing",
            ConnectionState::Draining => "draining",
            ConnectionState::Closed => "closed",
        }
    }
}

/// Data of `transport:parameters_set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParametersSet {
    /// Ours (`Local`) or the peer's (`Remote`).
    pub owner: Owner,
    /// The parameters.
    pub params: TransportParameters,
}

/// qlog packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Initial.
    Initial,
    /// Handshake.
    Handshake,
    /// 0-RTT.
    ZeroRtt,
    /// 1-RTT (short header).
    OneRtt,
    /// Retry.
    Retry,
    /// Version Negotiation.
    VersionNegotiation,
    /// Stateless reset.
    StatelessReset,
    /// Not parseable.
    Unknown,
}

impl PacketType {
    /// qlog spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketType::Initial => "initial",
            PacketType::Handshake => "handshake",
            PacketType::ZeroRtt => "0RTT",
            PacketType::OneRtt => "1RTT",
            PacketType::Retry => "retry",
            PacketType::VersionNegotiation => "version_negotiation",
            PacketType::StatelessReset => "stateless_reset",
            PacketType::Unknown => "unknown",
        }
    }

    /// The type of packets protected at `epoch` (0-RTT is not sent by this core).
    pub fn of_epoch(epoch: Epoch) -> Self {
        match epoch {
            Epoch::Initial => PacketType::Initial,
            Epoch::Handshake => PacketType::Handshake,
            Epoch::Data => PacketType::OneRtt,
        }
    }
}

impl From<WirePacketType> for PacketType {
    fn from(t: WirePacketType) -> Self {
        match t {
            WirePacketType::Initial => PacketType::Initial,
            WirePacketType::Handshake => PacketType::Handshake,
            WirePacketType::ZeroRtt => PacketType::ZeroRtt,
            WirePacketType::Retry => PacketType::Retry,
            WirePacketType::VersionNegotiate => PacketType::VersionNegotiation,
            WirePacketType::Short => PacketType::OneRtt,
        }
    }
}

/// qlog `PacketHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The full packet number, for protected packets once it is known.
    pub packet_number: Option<u64>,
    /// Version field of long headers.
    pub version: Option<u32>,
    /// Source CID of long headers.
    pub scid: Option<ConnectionId>,
    /// Destination CID.
    pub dcid: Option<ConnectionId>,
}

/// Data of `transport:packet_sent` and `transport:packet_received`.
#[derive(Debug, Clone, PartialEq)]
pub struct PacketEvent {
    /// Header fields.
    pub header: PacketHeader,
    /// Length of the whole packet on the wire (header, payload and AEAD tag).
    pub raw_length: usize,
    /// The frames it carries.
    pub frames: Vec<FrameInfo>,
}

/// Why a packet was dropped (qlog `packet_dropped` trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropTrigger {
    /// The keys of its level are not available (yet, or any more).
    KeyUnavailable,
    /// The header could not be parsed.
    HeaderParseError,
    /// Decryption (header or payload protection) failed.
    PayloadDecryptError,
    /// A version we do not use on this connection.
    UnexpectedVersion,
    /// A packet type this connection does not accept now.
    UnexpectedPacket,
    /// Already received.
    Duplicate,
}

impl DropTrigger {
    /// qlog spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DropTrigger::KeyUnavailable => "key_unavailable",
            DropTrigger::HeaderParseError => "header_parse_error",
            DropTrigger::PayloadDecryptError => "payload_decrypt_error",
            DropTrigger::UnexpectedVersion => "unexpected_version",
            DropTrigger::UnexpectedPacket => "unexpected_packet",
            DropTrigger::Duplicate => "duplicate",
        }
    }
}

/// Data of `transport:packet_dropped`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketDropped {
    /// What is known of the header (`None` when it could not be parsed).
    pub header: Option<PacketHeader>,
    /// Bytes dropped.
    pub raw_length: usize,
    /// Why.
    pub trigger: DropTrigger,
}

/// Data of `recovery:metrics_updated`; `None` fields did not change since the previous
/// event of this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Metrics {
    /// Minimum RTT.
    pub min_rtt: Option<Duration>,
    /// Smoothed RTT.
    pub smoothed_rtt: Option<Duration>,
    /// Latest RTT sample.
    pub latest_rtt: Option<Duration>,
    /// RTT variation.
    pub rtt_variance: Option<Duration>,
    /// Consecutive probe timeouts.
    pub pto_count: Option<u32>,
    /// Congestion window in bytes.
    pub congestion_window: Option<u64>,
    /// Bytes in flight.
    pub bytes_in_flight: Option<u64>,
    /// Slow-start threshold in bytes, if the controller has one.
    pub ssthresh: Option<u64>,
    /// Pacing rate in bits per second.
    pub pacing_rate: Option<u64>,
}

impl Metrics {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Metrics::default()
    }
}

/// Congestion controller states as reported in `recovery:congestion_state_updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionState {
    /// The window grows exponentially (below the slow-start threshold).
    SlowStart,
    /// The window grows linearly.
    CongestionAvoidance,
    /// The window was reduced; no packet sent since has been acknowledged yet.
    Recovery,
}

impl CongestionState {
    /// qlog spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CongestionState::SlowStart => "slow_start",
            CongestionState::CongestionAvoidance => "congestion_avoidance",
            CongestionState::Recovery => "recovery",
        }
    }
}

/// Special causes of a congestion state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionTrigger {
    /// Persistent congestion collapsed the window (RFC 9002 §7.6).
    PersistentCongestion,
    /// An ECN-CE mark reduced the window.
    Ecn,
}

/// Which rule declared a packet lost (RFC 9002 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossTrigger {
    /// Packet threshold: enough later packets were acknowledged.
    ReorderingThreshold,
    /// Time threshold: it was sent long enough before an acknowledged packet.
    TimeThreshold,
}

/// Data of `recovery:packet_lost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketLost {
    /// Packet type and number.
    pub packet_type: PacketType,
    /// Packet number.
    pub packet_number: u64,
    /// Which rule.
    pub trigger: LossTrigger,
    /// Whether it was a path MTU probe.
    pub is_mtu_probe: bool,
}

/// qlog `KeyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyType {
    /// Whose key (the side that encrypts with it).
    pub side: Side,
    /// Which level.
    pub epoch: Epoch,
}

impl KeyType {
    /// qlog spelling, e.g. `client_1rtt_secret`.
    pub fn as_str(self) -> &'static str {
        match (self.side, self.epoch) {
            (Side::Client, Epoch::Initial) => "client_initial_secret",
            (Side::Server, Epoch::Initial) => "server_initial_secret",
            (Side::Client, Epoch::Handshake) => "client_handshake_secret",
            (Side::Server, Epoch::Handshake) => "server_handshake_secret",
            (Side::Client, Epoch::Data) => "client_1rtt_secret",
            (Side::Server, Epoch::Data) => "server_1rtt_secret",
        }
    }
}

/// What caused a key update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUpdateTrigger {
    /// TLS produced the keys (Initial, Handshake, first 1-RTT).
    Tls,
    /// The peer started a key update (RFC 9001 §6.2).
    RemoteUpdate,
    /// We started a key update (RFC 9001 §6.1).
    LocalUpdate,
}

/// Data of `security:key_updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUpdated {
    /// Which key.
    pub key_type: KeyType,
    /// 1-RTT key generation (0 for the first 1-RTT keys); `None` for other levels.
    pub generation: Option<u32>,
    /// Cause.
    pub trigger: KeyUpdateTrigger,
}

/// One frame of a sent, received or lost packet, summarised (payloads are not kept).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FrameInfo {
    /// PADDING: `length` bytes.
    Padding {
        /// Bytes of padding.
        length: usize,
    },
    /// PING.
    Ping,
    /// ACK.
    Ack {
        /// ACK delay (decoded with the sender's exponent).
        ack_delay: Duration,
        /// Acknowledged ranges, inclusive `(smallest, largest)`, descending.
        acked_ranges: Vec<(u64, u64)>,
        /// ECN counts `(ect0, ect1, ce)` of an ACK_ECN frame.
        ecn: Option<(u64, u64, u64)>,
    },
    /// RESET_STREAM.
    ResetStream {
        /// Stream.
        stream_id: u64,
        /// Application error code.
        error_code: u64,
        /// Final size.
        final_size: u64,
    },
    /// STOP_SENDING.
    StopSending {
        /// Stream.
        stream_id: u64,
        /// Application error code.
        error_code: u64,
    },
    /// CRYPTO.
    Crypto {
        /// Offset in the level's crypto stream.
        offset: u64,
        /// Data length.
        length: u64,
    },
    /// NEW_TOKEN.
    NewToken {
        /// Token length.
        length: usize,
    },
    /// STREAM.
    Stream {
        /// Stream.
        stream_id: u64,
        /// Offset of the data.
        offset: u64,
        /// Data length.
        length: u64,
        /// FIN bit.
        fin: bool,
    },
    /// MAX_DATA.
    MaxData {
        /// New limit.
        maximum: u64,
    },
    /// MAX_STREAM_DATA.
    MaxStreamData {
        /// Stream.
        stream_id: u64,
        /// New limit.
        maximum: u64,
    },
    /// MAX_STREAMS.
    MaxStreams {
        /// Direction.
        dir: Dir,
        /// New cumulative limit.
        maximum: u64,
    },
    /// DATA_BLOCKED.
    DataBlocked {
        /// Limit.
        limit: u64,
    },
    /// STREAM_DATA_BLOCKED.
    StreamDataBlocked {
        /// Stream.
        stream_id: u64,
        /// Limit.
        limit: u64,
    },
    /// STREAMS_BLOCKED.
    StreamsBlocked {
        /// Direction.
        dir: Dir,
        /// Limit.
        limit: u64,
    },
    /// NEW_CONNECTION_ID.
    NewConnectionId {
        /// Sequence number.
        sequence_number: u64,
        /// Retire Prior To.
        retire_prior_to: u64,
        /// The CID.
        connection_id: ConnectionId,
        /// Its stateless reset token.
        stateless_reset_token: ResetToken,
    },
    /// RETIRE_CONNECTION_ID.
    RetireConnectionId {
        /// Sequence number.
        sequence_number: u64,
    },
    /// PATH_CHALLENGE.
    PathChallenge {
        /// The 8 data bytes.
        data: [u8; 8],
    },
    /// PATH_RESPONSE.
    PathResponse {
        /// The 8 data bytes.
        data: [u8; 8],
    },
    /// CONNECTION_CLOSE (either type).
    ConnectionClose {
        /// Application close (0x1d) rather than transport close (0x1c).
        application: bool,
        /// Error code.
        error_code: u64,
        /// Frame type that triggered a transport close.
        trigger_frame_type: Option<u64>,
        /// Reason phrase (lossy UTF-8).
        reason: String,
    },
    /// HANDSHAKE_DONE.
    HandshakeDone,
    /// DATAGRAM.
    Datagram {
        /// Payload length.
        length: usize,
    },
    /// PATH_ACK / PATH_ACK_ECN (multipath).
    PathAck {
        /// Path whose packet-number space is acknowledged.
        path_id: u32,
        /// ACK delay (decoded with the sender's exponent).
        ack_delay: Duration,
        /// Acknowledged ranges, inclusive `(smallest, largest)`, descending.
        acked_ranges: Vec<(u64, u64)>,
        /// ECN counts `(ect0, ect1, ce)` of a PATH_ACK_ECN frame.
        ecn: Option<(u64, u64, u64)>,
    },
    /// PATH_ABANDON (multipath).
    PathAbandon {
        /// Abandoned path.
        path_id: u32,
        /// Error code.
        error_code: u64,
    },
    /// PATH_STATUS_AVAILABLE / PATH_STATUS_BACKUP (multipath).
    PathStatus {
        /// Path.
        path_id: u32,
        /// Path status sequence number.
        sequence_number: u64,
        /// `true` for PATH_STATUS_AVAILABLE, `false` for PATH_STATUS_BACKUP.
        available: bool,
    },
    /// PATH_NEW_CONNECTION_ID (multipath).
    PathNewConnectionId {
        /// Path the CID belongs to.
        path_id: u32,
        /// Sequence number within the path.
        sequence_number: u64,
        /// Retire Prior To.
        retire_prior_to: u64,
        /// The CID.
        connection_id: ConnectionId,
        /// Its reset token.
        stateless_reset_token: ResetToken,
    },
    /// PATH_RETIRE_CONNECTION_ID (multipath).
    PathRetireConnectionId {
        /// Path the CID belongs to.
        path_id: u32,
        /// Sequence number within the path.
        sequence_number: u64,
    },
    /// MAX_PATH_ID (multipath).
    MaxPathId {
        /// Largest path ID allowed.
        maximum: u32,
    },
    /// PATHS_BLOCKED (multipath).
    PathsBlocked {
        /// The path ID limit the sender hit.
        limit: u32,
    },
    /// PATH_CIDS_BLOCKED (multipath).
    PathCidsBlocked {
        /// Path lacking CIDs.
        path_id: u32,
        /// Next expected sequence number.
        next_sequence_number: u64,
    },
}

fn ack_delay_of(delay: u64, ack_delay_exponent: u8) -> Duration {
    Duration::from_micros(
        delay
            .checked_shl(u32::from(ack_delay_exponent))
            .unwrap_or(u64::MAX),
    )
}

fn acked_ranges_of(ack: &crate::frame::Ack) -> Vec<(u64, u64)> {
    ack.ranges
        .iter()
        .map(|r| (r.start, r.end.saturating_sub(1)))
        .collect()
}

impl FrameInfo {
    /// Summary of `frame`; `ack_delay_exponent` decodes ACK delays.
    pub fn from_frame(frame: &Frame, ack_delay_exponent: u8) -> Self {
        match frame {
            Frame::Padding(n) => FrameInfo::Padding { length: *n },
            Frame::Ping => FrameInfo::Ping,
            Frame::Ack(a) => FrameInfo::Ack {
                ack_delay: ack_delay_of(a.delay, ack_delay_exponent),
                acked_ranges: acked_ranges_of(a),
                ecn: a.ecn.map(|e| (e.ect0, e.ect1, e.ce)),
            },
            Frame::ResetStream(r) => FrameInfo::ResetStream {
                stream_id: r.id.0,
                error_code: r.error_code.into_inner(),
                final_size: r.final_size,
            },
            Frame::StopSending(s) => FrameInfo::StopSending {
                stream_id: s.id.0,
                error_code: s.error_code.into_inner(),
            },
            Frame::Crypto(c) => FrameInfo::Crypto {
                offset: c.offset,
                length: c.data.len() as u64,
            },
            Frame::NewToken(t) => FrameInfo::NewToken { length: t.len() },
            Frame::Stream(s) => FrameInfo::Stream {
                stream_id: s.id.0,
                offset: s.offset,
                length: s.data.len() as u64,
                fin: s.fin,
            },
            Frame::MaxData(v) => FrameInfo::MaxData {
                maximum: v.into_inner(),
            },
            Frame::MaxStreamData { id, offset } => FrameInfo::MaxStreamData {
                stream_id: id.0,
                maximum: *offset,
            },
            Frame::MaxStreams { dir, count } => FrameInfo::MaxStreams {
                dir: *dir,
                maximum: *count,
            },
            Frame::DataBlocked { offset } => FrameInfo::DataBlocked { limit: *offset },
            Frame::StreamDataBlocked { id, offset } => FrameInfo::StreamDataBlocked {
                stream_id: id.0,
                limit: *offset,
            },
            Frame::StreamsBlocked { dir, limit } => FrameInfo::StreamsBlocked {
                dir: *dir,
                limit: *limit,
            },
            Frame::NewConnectionId(n) => FrameInfo::NewConnectionId {
                sequence_number: n.sequence,
                retire_prior_to: n.retire_prior_to,
                connection_id: n.id,
                stateless_reset_token: n.reset_token,
            },
            Frame::RetireConnectionId { sequence } => FrameInfo::RetireConnectionId {
                sequence_number: *sequence,
            },
            Frame::PathChallenge(d) => FrameInfo::PathChallenge { data: *d },
            Frame::PathResponse(d) => FrameInfo::PathResponse { data: *d },
            Frame::ConnectionClose(c) => FrameInfo::ConnectionClose {
                application: false,
                error_code: c.error_code.0,
                trigger_frame_type: c.frame_type,
                reason: String::from_utf8_lossy(&c.reason).into_owned(),
            },
            Frame::ApplicationClose(c) => FrameInfo::ConnectionClose {
                application: true,
                error_code: c.error_code.into_inner(),
                trigger_frame_type: None,
                reason: String::from_utf8_lossy(&c.reason).into_owned(),
            },
            Frame::HandshakeDone => FrameInfo::HandshakeDone,
            Frame::Datagram(d) => FrameInfo::Datagram {
                length: d.data.len(),
            },
            Frame::PathAck { path_id, ack } => FrameInfo::PathAck {
                path_id: path_id.0,
                ack_delay: ack_delay_of(ack.delay, ack_delay_exponent),
                acked_ranges: acked_ranges_of(ack),
                ecn: ack.ecn.map(|e| (e.ect0, e.ect1, e.ce)),
            },
            Frame::PathAbandon {
                path_id,
                error_code,
            } => FrameInfo::PathAbandon {
                path_id: path_id.0,
                error_code: error_code.0,
            },
            Frame::PathStatus {
                path_id,
                sequence,
                status,
            } => FrameInfo::PathStatus {
                path_id: path_id.0,
                sequence_number: *sequence,
                available: *status == crate::shared::PathStatus::Available,
            },
            Frame::PathNewConnectionId { path_id, cid } => FrameInfo::PathNewConnectionId {
                path_id: path_id.0,
                sequence_number: cid.sequence,
                retire_prior_to: cid.retire_prior_to,
                connection_id: cid.id,
                stateless_reset_token: cid.reset_token,
            },
            Frame::PathRetireConnectionId { path_id, sequence } => {
                FrameInfo::PathRetireConnectionId {
                    path_id: path_id.0,
                    sequence_number: *sequence,
                }
            }
            Frame::MaxPathId(p) => FrameInfo::MaxPathId { maximum: p.0 },
            Frame::PathsBlocked(p) => FrameInfo::PathsBlocked { limit: p.0 },
            Frame::PathCidsBlocked {
                path_id,
                next_sequence,
            } => FrameInfo::PathCidsBlocked {
                path_id: path_id.0,
                next_sequence_number: *next_sequence,
            },
        }
    }

    /// Summaries of the frames in a decrypted packet payload; stops at the first frame
    /// that does not decode (the receive path reports that error itself).
    pub fn from_payload(payload: bytes::Bytes, ack_delay_exponent: u8) -> Vec<FrameInfo> {
        crate::frame::Iter::new(payload)
            .map_while(Result::ok)
            .map(|f| FrameInfo::from_frame(&f, ack_delay_exponent))
            .collect()
    }
}

#[cfg(test)]
mod tests;
