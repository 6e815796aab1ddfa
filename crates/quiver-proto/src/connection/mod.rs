//! One QUIC connection as a sans-IO state machine.
//!
//! Methods are grouped as getters, `handle_*` inputs, commands, and `poll_*` outputs.
//! After any input or command, the driver must drain [`Connection::poll_transmit`],
//! re-arm its timer from [`Connection::poll_timeout`] and drain [`Connection::poll`].

mod cids;
mod crypto_stream;
mod inject;
mod key_update;
mod mtud;
mod paths;
mod qlog;
mod recv;
mod send;
mod spaces;
mod timers;
mod version;
mod zero_rtt;

#[cfg(test)]
mod tests;

use crate::cc::DeliveryRateEstimator;
use crate::cc::{Controller, Pacer};
use crate::cid::{ConnectionId, ResetToken};
use crate::coding::VarInt;
use crate::config::TransportConfig;
use crate::crypto::{KeyChange, TlsSession};
use crate::error::{TransportError, TransportErrorCode};
use crate::recovery::RttEstimator;
use crate::sched::StreamClass;
use crate::shared::{Dir, EcnCodepoint, Epoch, PathId, Side, SpaceId, StreamId};
pub use crate::streams::{DatagramFlowId, DatagramFlowStats, UnknownFlow};
use crate::streams::{StreamEvent, StreamsState};
use crate::transport_params::TransportParameters;
use bytes::{Bytes, BytesMut};
use cids::CidState;
use spaces::{DirKeys, KeyUpdate, Level, PnSpace};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timers::{Timer, Timers};
pub(crate) use version::{ClientRestart, ServerChoice, VersionState};
pub(crate) use zero_rtt::RememberedLimits;
pub use zero_rtt::ZeroRttStatus;

pub use paths::{MigrateError, PathState};

/// An outgoing UDP datagram (or a GSO batch of equal-size segments) placed in the
/// caller's buffer by `poll_transmit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// ECN codepoint to set on the IP header.
    pub ecn: Option<EcnCodepoint>,
    /// Total bytes written to the buffer.
    pub size: usize,
    /// When several datagrams were written, the size of each but the last (GSO).
    pub segment_size: Option<usize>,
    /// Source IP to send from, when the endpoint is bound to a wildcard address.
    pub src_ip: Option<IpAddr>,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The peer does not speak any version we support.
    #[error("peer does not support our QUIC version")]
    VersionMismatch,
    /// We detected a transport error and closed the connection.
    #[error("transport error: {0}")]
    TransportError(#[from] TransportError),
    /// The peer closed the connection with a transport error code.
    #[error("closed by peer: {code} {}", String::from_utf8_lossy(reason))]
    ConnectionClosed {
        /// Transport error code.
        code: TransportErrorCode,
        /// Frame type that triggered it.
        frame_type: Option<u64>,
        /// Reason phrase.
        reason: Bytes,
    },
    /// The peer's application closed the connection.
    #[error(
        "closed by peer application: code {code} {}",
        String::from_utf8_lossy(reason)
    )]
    ApplicationClosed {
        /// Application error code.
        code: VarInt,
        /// Reason phrase.
        reason: Bytes,
    },
    /// The peer sent a stateless reset.
    #[error("reset by peer")]
    Reset,
    /// No packet arrived within the idle timeout.
    #[error("timed out")]
    TimedOut,
    /// We closed the connection.
    #[error("closed locally")]
    LocallyClosed,
}

/// Application-visible events, drained with [`Connection::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed; streams may be used.
    Connected,
    /// The connection was lost or closed; no more I/O is possible.
    ConnectionLost {
        /// Why.
        reason: ConnectionError,
    },
    /// The peer opened one or more streams of this direction; use `accept`.
    StreamOpened {
        /// Direction of the new streams.
        dir: Dir,
    },
    /// A stream has data (or its end, or a reset) to read.
    StreamReadable {
        /// The stream.
        id: StreamId,
    },
    /// A stream that was blocked on flow control can be written again.
    StreamWritable {
        /// The stream.
        id: StreamId,
    },
    /// All data of a finished stream, including FIN, was acknowledged.
    StreamFinished {
        /// The stream.
        id: StreamId,
    },
    /// The peer asked us to stop sending on a stream (STOP_SENDING).
    StreamStopped {
        /// The stream.
        id: StreamId,
        /// The peer's error code.
        error_code: VarInt,
    },
    /// A hard-deadline scheduler dropped the stream because its deadline passed before
    /// it was fully sent; it was reset with [`crate::sched::DEADLINE_EXCEEDED_CODE`].
    StreamExpired {
        /// The stream.
        id: StreamId,
    },
    /// The peer raised the stream limit: more streams of this direction may be opened.
    StreamAvailable {
        /// Direction.
        dir: Dir,
    },
    /// One or more DATAGRAM frames arrived; use `recv_datagram`.
    DatagramReceived,
}

/// Error writing to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Flow control or the send buffer is full; wait for [`Event::StreamWritable`].
    #[error("blocked")]
    Blocked,
    /// The peer sent STOP_SENDING with this code.
    #[error("stopped by peer: {0}")]
    Stopped(VarInt),
    /// The stream is unknown, finished, or reset.
    #[error("closed stream")]
    ClosedStream,
}

/// Error reading from a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No data available yet; wait for [`Event::StreamReadable`].
    #[error("blocked")]
    Blocked,
    /// The peer reset the stream with this code.
    #[error("reset by peer: {0}")]
    Reset(VarInt),
    /// The stream is unknown or already fully read.
    #[error("closed stream")]
    ClosedStream,
}

/// The stream is unknown or already closed in that direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("closed stream")]
pub struct ClosedStream;

/// Error sending a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendDatagramError {
    /// The peer did not advertise DATAGRAM support.
    #[error("peer does not support datagrams")]
    UnsupportedByPeer,
    /// We disabled datagrams locally.
    #[error("datagrams disabled locally")]
    Disabled,
    /// The datagram is larger than [`Connection::max_datagram_size`].
    #[error("datagram too large")]
    TooLarge,
    /// The connection is closed.
    #[error("connection closed")]
    ConnectionLost,
    /// The datagram flow was never opened or is closed.
    #[error("unknown datagram flow")]
    UnknownFlow,
}

/// Counters for diagnostics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// UDP datagrams sent.
    pub udp_tx: u64,
    /// UDP datagrams received.
    pub udp_rx: u64,
    /// Bytes sent in UDP payloads.
    pub bytes_tx: u64,
    /// Bytes received in UDP payloads.
    pub bytes_rx: u64,
    /// QUIC packets sent.
    pub packets_tx: u64,
    /// QUIC packets received and decrypted.
    pub packets_rx: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// Current congestion window.
    pub cwnd: u64,
    /// Smoothed RTT.
    pub rtt: Duration,
    /// 1-RTT key updates performed (initiated plus followed).
    pub key_updates: u64,
    /// 1-RTT key updates we initiated ([`Connection::initiate_key_update`] or the
    /// confidentiality limit, RFC 9001 §6.6).
    pub key_updates_initiated: u64,
    /// 1-RTT key updates the peer initiated and we followed (RFC 9001 §6.2).
    pub key_updates_followed: u64,
    /// Handshake and 1-RTT packets that failed authentication, across all keys
    /// (counted against the integrity limit, RFC 9001 §6.6).
    pub auth_failures: u64,
    /// Probe timeouts that fired (RFC 9002 §6.2).
    pub ptos: u64,
    /// Packets declared lost by the packet threshold (RFC 9002 §6.1.1).
    pub lost_by_packet_threshold: u64,
    /// Packets declared lost by the time threshold only (RFC 9002 §6.1.2).
    pub lost_by_time_threshold: u64,
    /// Packets acknowledged after having been declared lost.
    pub spurious_losses: u64,
    /// Congestion events that reduced the congestion window.
    pub congestion_events: u64,
    /// Persistent congestion declarations (RFC 9002 §7.6).
    pub persistent_congestion: u64,
    /// Smallest congestion window after a congestion event (0 if there was none).
    pub cwnd_min: u64,
    /// ACK frames whose congestion-control sample carried the delivery-rate estimator's
    /// application-limited mark ([`crate::cc::AckSample::app_limited`]).
    pub app_limited_acks: u64,
    /// ACK frames whose sample was not window-limited
    /// ([`crate::cc::AckSample::cwnd_limited`] false): the window was underused since
    /// the start of the last round trip, so NewReno and Cubic grew it only in slow start
    /// with at least half of it in flight (RFC 9002 §7.8).
    pub window_underused_acks: u64,
    /// Times the connection moved to another path: the peer's new address followed
    /// (server), [`Connection::migrate`], or the server's preferred address (client).
    pub migrations: u64,
    /// Paths validated by a PATH_RESPONSE (RFC 9000 §8.2).
    pub paths_validated: u64,
    /// Path validations that timed out (RFC 9000 §8.2.4).
    pub path_validation_failures: u64,
    /// Largest UDP payload currently sent on the path (path MTU discovery).
    pub path_mtu: u16,
    /// Path MTU probes sent.
    pub mtu_probes_sent: u64,
    /// Path MTU probes declared lost (no congestion response is taken for them).
    pub mtu_probes_lost: u64,
    /// Black holes detected: the path MTU fell back to the base size.
    pub mtu_black_holes: u64,
    /// Current connection-level receive window: the initial
    /// [`TransportConfig::receive_window`] until auto-tuning raises it (up to
    /// [`TransportConfig::max_receive_window`]).
    pub receive_window: u64,
    /// Largest per-stream receive window any stream has had: the initial
    /// [`TransportConfig::stream_receive_window`] until auto-tuning raises one (up to
    /// [`TransportConfig::max_stream_receive_window`]).
    pub stream_receive_window: u64,
    /// Client: 0-RTT packets sent. Server: always 0.
    pub zero_rtt_packets_sent: u64,
    /// Client: 0-RTT packets sent on a connection whose early data the server accepted.
    /// Server: 0-RTT packets received and processed.
    pub zero_rtt_packets_accepted: u64,
    /// Client: 0-RTT packets the server rejected (their contents were resent in 1-RTT).
    /// Server: 0-RTT packets dropped because early data was not accepted.
    pub zero_rtt_packets_rejected: u64,
    /// Retry round trips (RFC 9000 §8.1.2). Client: 1 when it acted on a Retry packet.
    /// Server: 1 when the connection was created by an Initial with a valid Retry token.
    pub retries: u64,
    /// Server: the client's first Initial carried a valid token (Retry or NEW_TOKEN), so
    /// its address counted as validated from the start (no amplification limit).
    pub address_validated_by_token: bool,
    /// NEW_TOKEN frames sent (server).
    pub new_tokens_sent: u64,
    /// NEW_TOKEN frames received (client); each is handed to the token store.
    pub new_tokens_received: u64,
    /// ECN validation of the path (RFC 9000 §13.4.2): testing, capable or failed.
    pub ecn_state: crate::recovery::EcnState,
    /// CE marks the peer reported for our packets (validated increases); each increase
    /// is a congestion signal.
    pub ecn_ce_reported: u64,
    /// ECN codepoints on the packets we received (what the network delivered to us).
    pub ecn_received: crate::recovery::EcnCounts,
}

/// Messages from a connection to its endpoint (CID bookkeeping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndpointEvent {
    /// The connection wants `n` more local connection IDs to issue.
    NeedIdentifiers(usize),
    /// A local connection ID was retired by the peer and must no longer route here.
    RetireCid(ConnectionId),
    /// The stateless reset token a reset for this connection would carry changed
    /// (the endpoint indexes it, RFC 9000 §10.3.1); `None`: no reset is accepted.
    ResetToken(Option<ResetToken>),
}

/// Lifecycle (RFC 9000 §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Established,
    /// We sent CONNECTION_CLOSE; answer further packets with it until the timer ends.
    Closing,
    /// The peer closed; send nothing until the timer ends.
    Draining,
    /// Everything may be freed.
    Drained,
}

/// The CONNECTION_CLOSE we send while closing.
#[derive(Debug, Clone)]
enum CloseFrame {
    Transport(TransportError),
    Application { code: VarInt, reason: Bytes },
}

/// The network path (one for now; multipath adds more, each with its own data space).
#[derive(Debug)]
struct Path {
    remote: SocketAddr,
    local_ip: Option<IpAddr>,
    /// Largest UDP payload we may send.
    mtu: u16,
    /// Address validated (RFC 9000 §8.1): until then a server sends at most 3× what it
    /// received.
    validated: bool,
    bytes_received: u64,
    bytes_sent: u64,
}

/// DATAGRAM frame queues (RFC 9221).
#[derive(Debug, Default)]
struct Datagrams {
    recv: VecDeque<Bytes>,
    recv_bytes: usize,
    send: VecDeque<Bytes>,
    send_bytes: usize,
}

/// One QUIC connection.
pub struct Connection {
    side: Side,
    version: u32,
    config: Arc<TransportConfig>,
    state: State,
    tls: TlsSession,
    /// Indexed by [`Epoch`].
    levels: [Level; 3],
    /// Index 0: Initial, 1: Handshake, 2 + n: Data on path n.
    spaces: Vec<PnSpace>,
    key_update: KeyUpdate,
    /// Level at which new CRYPTO data is sent.
    write_level: Epoch,
    path: Path,
    rtt: RttEstimator,
    cc: Box<dyn Controller>,
    pacer: Pacer,
    /// Path MTU discovery.
    mtud: mtud::MtuDiscovery,
    pto_count: u32,
    streams: StreamsState,
    cids: CidState,
    peer_params: Option<TransportParameters>,
    /// Client: our first random DCID. Server: the DCID of the client's first Initial.
    orig_dst_cid: ConnectionId,
    /// Initial keys were derived from this DCID (changes after Retry).
    handshake_confirmed: bool,
    handshake_done_pending: bool,
    /// Server: a packet carrying HANDSHAKE_DONE was acknowledged, so the client has
    /// confirmed the handshake and a lost copy need not be sent again.
    handshake_done_acked: bool,
    connected_reported: bool,
    peer_ack_delay_exponent: u8,
    peer_max_ack_delay: Duration,
    idle_timeout: Option<Duration>,
    timers: Timers,
    events: VecDeque<Event>,
    endpoint_events: VecDeque<EndpointEvent>,
    /// The reset token last reported to the endpoint ([`EndpointEvent::ResetToken`]).
    reported_reset_token: Option<ResetToken>,
    datagrams: Datagrams,
    /// Path validation and migration (RFC 9000 §8.2, §9).
    migration: paths::Migration,
    close: Option<CloseFrame>,
    /// A CONNECTION_CLOSE should go out on the next `poll_transmit`.
    close_pending: bool,
    error: Option<ConnectionError>,
    alpn: Option<Vec<u8>>,
    stats: ConnectionStats,
    /// Whether the last transmit attempt stopped for lack of data (app-limited).
    app_limited: bool,
    /// A loss just reduced the congestion window: one ack-eliciting packet may still be
    /// sent as if the window had not been reduced yet (RFC 9002 §7.3.2), so the lost
    /// data can be retransmitted without waiting for the flight to drain.
    recovery_send: bool,
    /// Scratch buffer for TLS output.
    tls_buf: Vec<u8>,
    /// Delivery-rate estimation for congestion-control samples.
    rate: DeliveryRateEstimator,
    /// Whether the congestion window limited the sender (RFC 9002 §7.8).
    window_usage: crate::cc::WindowUsage,
    /// When the first RTT sample was taken (persistent congestion, RFC 9002 §7.6.2).
    first_rtt_sample: Option<Instant>,
    /// Client: the server's first Initial fixed the remote CID.
    got_server_initial: bool,
    /// 0-RTT keys and status (RFC 9001 §4.6).
    zero_rtt: zero_rtt::ZeroRtt,
    /// The version TLS was started with (its key-derivation labels).
    tls_version: u32,
    /// Version negotiation (RFC 9000 §6, RFC 9368).
    version_state: version::VersionState,
    /// ECN marking and validation of the path (RFC 9000 §13.4.2); restart it when the
    /// path changes.
    ecn: crate::recovery::EcnValidator,
    /// Event subscriber ([`crate::qlog`]) and what it was told; `None` when untraced.
    trace: Option<Box<qlog::Trace>>,
    /// Address validation (RFC 9000 §8.1): tokens and the Retry state.
    validation: Validation,
}

/// Per-connection address-validation state (see [`crate::token`]).
#[derive(Debug, Default)]
struct Validation {
    /// Client: token sent in every Initial (from a NEW_TOKEN frame of an earlier
    /// connection, replaced by a Retry's token).
    initial_token: Bytes,
    /// Client: source CID of the Retry acted on. Server: the Initial DCID a Retry token
    /// was issued for. Sent resp. checked as `retry_source_connection_id`.
    retry_src_cid: Option<ConnectionId>,
    /// Server: NEW_TOKEN tokens still to send once the handshake is confirmed.
    pending_new_tokens: VecDeque<Bytes>,
    /// Client: where NEW_TOKEN tokens go, and the server name they are for.
    token_store: Option<(Arc<dyn crate::token::TokenStore>, String)>,
}

/// Parameters of a new connection, filled in by the endpoint.
pub(crate) struct ConnectionInit {
    pub(crate) side: Side,
    pub(crate) version: u32,
    pub(crate) config: Arc<TransportConfig>,
    pub(crate) tls: TlsSession,
    pub(crate) now: Instant,
    pub(crate) remote: SocketAddr,
    pub(crate) local_ip: Option<IpAddr>,
    /// Our first source CID (seq 0).
    pub(crate) local_cid: ConnectionId,
    pub(crate) local_reset_token: ResetToken,
    /// The peer's CID (client: random initial DCID; server: the client's SCID).
    pub(crate) remote_cid: ConnectionId,
    /// Client: the random DCID; server: the DCID the client chose.
    pub(crate) orig_dst_cid: ConnectionId,
    pub(crate) initial_keys: rustls::quic::Keys,
    pub(crate) local_cid_len: usize,
    pub(crate) max_udp_payload_size: u16,
    /// Seed of the connection's random source (PATH_CHALLENGE data), drawn from the
    /// endpoint's generator.
    pub(crate) rng_seed: [u8; 32],
    /// Server: the CID (sequence number 1) offered with the preferred address.
    pub(crate) preferred_cid: Option<(ConnectionId, ResetToken)>,
    pub(crate) version_state: version::VersionState,
    /// Server: the client's address is validated already (a valid token).
    pub(crate) address_validated: bool,
    /// Server: the DCID of the Initial that carried a valid Retry token.
    pub(crate) retry_src_cid: Option<ConnectionId>,
    /// Client: token for the Initial packets (from the token store).
    pub(crate) initial_token: Bytes,
    /// Server: NEW_TOKEN tokens to send after the handshake is confirmed.
    pub(crate) new_tokens: Vec<Bytes>,
    /// Client: token store and server name.
    pub(crate) token_store: Option<(Arc<dyn crate::token::TokenStore>, String)>,
    /// The transport parameters we send (for the `parameters_set` event).
    pub(crate) local_params: TransportParameters,
}

impl Connection {
    pub(crate) fn new(init: ConnectionInit) -> Self {
        let config = init.config;
        let mtu = config.initial_mtu.max(1200).min(init.max_udp_payload_size);
        let cc = config.congestion_controller.build(init.now, mtu);
        let mut levels: [Level; 3] = Default::default();
        levels[0].local = Some(DirKeys::from(init.initial_keys.local));
        levels[0].remote = Some(DirKeys::from(init.initial_keys.remote));
        let spaces = vec![
            PnSpace::new(SpaceId::Initial),
            PnSpace::new(SpaceId::Handshake),
            PnSpace::new(SpaceId::Data(PathId::ZERO)),
        ];
        let mut rtt = RttEstimator::new(config.initial_rtt);
        rtt.set_max_ack_delay(Duration::ZERO);
        let streams = StreamsState::new(init.side, streams_config(&config), init.now);
        let mut cids = CidState::new(
            init.local_cid,
            init.local_reset_token,
            init.remote_cid,
            init.local_cid_len,
        );
        cids.set_local_limit(config.active_connection_id_limit);
        if let Some((cid, token)) = init.preferred_cid {
            cids.issue_preferred(cid, token);
        }
        let trace = qlog::Trace::build(
            config.event_subscriber.as_ref(),
            &crate::qlog::ConnectionInfo {
                side: init.side,
                odcid: init.orig_dst_cid,
                created: init.now,
            },
        );
        let mut conn = Connection {
            side: init.side,
            version: init.version,
            state: State::Handshake,
            tls: init.tls,
            levels,
            spaces,
            key_update: KeyUpdate::new(),
            write_level: Epoch::Initial,
            path: Path {
                remote: init.remote,
                local_ip: init.local_ip,
                mtu,
                // A client's peer is validated by definition; a server validates when a
                // Handshake packet arrives or the Initial carried a valid token (RFC
                // 9000 §8.1).
                validated: init.side.is_client() || init.address_validated,
                bytes_received: 0,
                bytes_sent: 0,
            },
            rtt,
            cc,
            pacer: Pacer::with_config(config.pacing),
            mtud: mtud::MtuDiscovery::new(
                config.mtu_discovery.as_ref(),
                mtu,
                init.max_udp_payload_size,
            ),
            pto_count: 0,
            streams,
            cids,
            peer_params: None,
            orig_dst_cid: init.orig_dst_cid,
            handshake_confirmed: false,
            handshake_done_pending: false,
            handshake_done_acked: false,
            connected_reported: false,
            peer_ack_delay_exponent: 3,
            peer_max_ack_delay: Duration::from_millis(25),
            idle_timeout: config.max_idle_timeout,
            timers: Timers::default(),
            events: VecDeque::new(),
            endpoint_events: VecDeque::new(),
            reported_reset_token: None,
            datagrams: Datagrams::default(),
            migration: paths::Migration::new(init.rng_seed),
            close: None,
            close_pending: false,
            error: None,
            alpn: None,
            stats: ConnectionStats::default(),
            app_limited: true,
            recovery_send: false,
            tls_buf: Vec::new(),
            rate: DeliveryRateEstimator::new(),
            window_usage: crate::cc::WindowUsage::new(),
            first_rtt_sample: None,
            got_server_initial: false,
            zero_rtt: zero_rtt::ZeroRtt::default(),
            tls_version: init.version,
            version_state: init.version_state,
            validation: Validation {
                initial_token: init.initial_token,
                retry_src_cid: init.retry_src_cid,
                pending_new_tokens: init.new_tokens.into(),
                token_store: init.token_store,
            },
            trace,
            ecn: crate::recovery::EcnValidator::new(config.ecn),
            config,
        };
        if conn.side.is_server() {
            conn.stats.address_validated_by_token = init.address_validated;
            conn.stats.retries = u64::from(init.retry_src_cid.is_some());
        }
        conn.trace_started(init.now, &init.local_params);
        conn.reset_idle_timer(init.now);
        if conn.side.is_client() {
            // The client speaks first: produce the ClientHello.
            if let Err(e) = conn.drive_tls() {
                conn.close_with_error(init.now, e);
            }
            conn.init_0rtt_client();
        }
        conn
    }

    // ---- getters ----

    /// Which side we are.
    pub fn side(&self) -> Side {
        self.side
    }
    /// The peer's current address.
    pub fn remote_address(&self) -> SocketAddr {
        self.path.remote
    }
    /// Local IP the peer sent to, when known.
    pub fn local_ip(&self) -> Option<IpAddr> {
        self.path.local_ip
    }
    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.state == State::Handshake
    }
    /// Whether the connection is closing, draining or gone (no more application I/O).
    pub fn is_closed(&self) -> bool {
        matches!(
            self.state,
            State::Closing | State::Draining | State::Drained
        )
    }
    /// Whether all state can be freed.
    pub fn is_drained(&self) -> bool {
        self.state == State::Drained
    }
    /// Negotiated ALPN protocol.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }
    /// Smoothed RTT estimate.
    pub fn rtt(&self) -> Duration {
        self.rtt.smoothed()
    }
    /// QUIC version in use.
    pub fn version(&self) -> u32 {
        self.version
    }
    /// Where 0-RTT stands (RFC 9001 §4.6); see [`ZeroRttStatus`].
    pub fn zero_rtt_status(&self) -> ZeroRttStatus {
        self.zero_rtt.status
    }
    /// Whether the handshake resumed a session from a ticket (known once the server's
    /// first flight was processed).
    pub fn is_resumed(&self) -> bool {
        self.tls.is_resumed()
    }
    /// The error that ended the connection, if it ended.
    pub fn close_reason(&self) -> Option<&ConnectionError> {
        self.error.as_ref()
    }
    /// Counters.
    pub fn stats(&self) -> ConnectionStats {
        let mut s = self.stats;
        s.cwnd = self.cc.window();
        s.rtt = self.rtt.smoothed();
        s.receive_window = self.streams.receive_window();
        s.stream_receive_window = self.streams.largest_stream_receive_window();
        for space in &self.spaces {
            let c = space.sent.counters();
            s.lost_by_packet_threshold += c.by_packet_threshold;
            s.lost_by_time_threshold += c.by_time_threshold;
            s.spurious_losses += c.spurious;
        }
        self.mtud_stats(&mut s);
        s.ecn_state = self.ecn.state();
        s.ecn_ce_reported = self.ecn.ce_reported();
        s
    }
    /// Name of the congestion controller in use.
    pub fn congestion_controller(&self) -> &str {
        self.cc.name()
    }
    /// Largest DATAGRAM payload that fits in one packet now; `None` if unsupported.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.config.datagram_receive_buffer_size?;
        let peer = self.send_params()?.max_datagram_frame_size?.into_inner();
        // Short header: flags + DCID + 4-byte PN; AEAD tag; DATAGRAM type + length.
        let overhead = 1 + self.cids.remote_cid().len() + 4 + 16 + 1 + 2;
        let by_mtu = (self.path.mtu as usize).saturating_sub(overhead);
        Some(by_mtu.min(peer.saturating_sub(3) as usize))
    }

    // ---- inputs ----

    /// Process a UDP datagram addressed to this connection (normally called by the
    /// endpoint); the local address it arrived at is unknown.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        self.handle_datagram_at(now, remote, None, ecn, data);
    }

    /// [`Connection::handle_datagram`] with `local_ip`, the address the datagram was
    /// sent to, when the socket reports it (a server answers PATH_CHALLENGEs from
    /// there, and follows a client that moved to its preferred address).
    pub fn handle_datagram_at(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        self.stats.udp_rx += 1;
        self.stats.bytes_rx += data.len() as u64;
        if self.state == State::Drained {
            return;
        }
        self.path_on_datagram(remote, data.len() as u64);
        self.streams.set_now(now);
        self.process_datagram(now, remote, local_ip, ecn, data);
        // Receive-window auto-tuning compares update intervals with the smoothed RTT,
        // which only changes when ACKs are processed: zero (no tuning) until a sample.
        if self.rtt.has_sample() {
            self.streams.set_rtt(self.rtt.smoothed());
        }
        self.after_input(now);
    }

    /// Process expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.streams.set_now(now);
        for timer in Timer::ALL {
            if !self.timers.is_expired(timer, now) {
                continue;
            }
            self.timers.stop(timer);
            match timer {
                Timer::Close => {
                    self.state = State::Drained;
                    self.timers = Timers::default();
                    self.trace_poll(now);
                    return;
                }
                Timer::Idle => {
                    self.kill(ConnectionError::TimedOut);
                    self.trace_poll(now);
                    return;
                }
                Timer::KeepAlive => {
                    if let Some(space) = self.spaces.get_mut(2) {
                        space.ping_pending = true;
                    }
                }
                Timer::LossDetection => self.on_loss_detection_timeout(now),
                Timer::Pacing | Timer::AckDelay => {} // poll_transmit does the work
                Timer::KeyDiscard => {
                    self.key_update.prev_remote = None;
                }
                Timer::StreamExpiry => self.streams.expire(now),
                Timer::PathValidation => self.path_on_timeout(now),
            }
        }
        self.after_input(now);
    }

    // ---- commands ----

    /// Open a stream; `None` when the peer's stream limit is reached (wait for
    /// [`Event::StreamAvailable`]) or the connection is closed.
    pub fn open(&mut self, dir: Dir) -> Option<StreamId> {
        if self.is_closed() {
            return None;
        }
        self.streams.open(dir)
    }
    /// Open a stream at time `now` with a scheduling class (priority, deadline, level;
    /// see [`crate::sched`]); a relative deadline counts from `now`. `None` when the
    /// peer's stream limit is reached (wait for [`Event::StreamAvailable`]).
    pub fn open_with(&mut self, now: Instant, dir: Dir, class: &StreamClass) -> Option<StreamId> {
        if self.is_closed() {
            return None;
        }
        self.streams.set_now(now);
        let id = self.streams.open_with(dir, class);
        self.timers
            .set_opt(Timer::StreamExpiry, self.streams.next_expiry());
        id
    }
    /// Change the scheduling class of a stream we send on.
    pub fn set_class(
        &mut self,
        now: Instant,
        id: StreamId,
        class: &StreamClass,
    ) -> Result<(), ClosedStream> {
        self.streams.set_now(now);
        self.streams
            .set_class(id, class)
            .map_err(|_| ClosedStream)?;
        self.timers
            .set_opt(Timer::StreamExpiry, self.streams.next_expiry());
        Ok(())
    }
    /// Accept the next stream the peer opened.
    pub fn accept(&mut self, dir: Dir) -> Option<StreamId> {
        self.streams.accept(dir)
    }
    /// Write bytes; returns how many were accepted (flow control may limit it).
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        if self.is_closed() {
            return Err(WriteError::ClosedStream);
        }
        let r = self.streams.write(id, data).map_err(map_write_error);
        self.flush_stream_events();
        r
    }
    /// Write a `Bytes` without copying; returns how many bytes were accepted.
    pub fn write_bytes(&mut self, id: StreamId, data: Bytes) -> Result<usize, WriteError> {
        if self.is_closed() {
            return Err(WriteError::ClosedStream);
        }
        let r = self.streams.write_bytes(id, data).map_err(map_write_error);
        self.flush_stream_events();
        r
    }
    /// Mark the end of the stream.
    pub fn finish(&mut self, id: StreamId) -> Result<(), ClosedStream> {
        self.streams.finish(id).map_err(|_| ClosedStream)
    }
    /// Abandon sending with RESET_STREAM.
    pub fn reset(&mut self, id: StreamId, error_code: VarInt) -> Result<(), ClosedStream> {
        self.streams.reset(id, error_code).map_err(|_| ClosedStream)
    }
    /// Read up to `max_len` bytes in order; `Ok(None)` at the end of the stream.
    pub fn read(&mut self, id: StreamId, max_len: usize) -> Result<Option<Bytes>, ReadError> {
        let r = self.streams.read(id, max_len).map_err(map_read_error);
        self.flush_stream_events();
        r
    }
    /// Ask the peer to stop sending (STOP_SENDING) and discard incoming data.
    pub fn stop_sending(&mut self, id: StreamId, error_code: VarInt) -> Result<(), ClosedStream> {
        self.streams
            .stop_sending(id, error_code)
            .map_err(|_| ClosedStream)
    }
    /// Queue an unreliable DATAGRAM frame. When the send buffer is full the oldest
    /// queued datagrams are dropped. These unclassed datagrams go out first-in
    /// first-out ahead of all stream data; [`send_datagram_on`](Self::send_datagram_on)
    /// schedules datagrams by class instead.
    pub fn send_datagram(&mut self, data: Bytes) -> Result<(), SendDatagramError> {
        self.check_datagram(&data)?;
        let d = &mut self.datagrams;
        while d.send_bytes + data.len() > self.config.datagram_send_buffer_size {
            match d.send.pop_front() {
                Some(old) => d.send_bytes -= old.len(),
                None => break,
            }
        }
        d.send_bytes += data.len();
        d.send.push_back(data);
        Ok(())
    }

    /// Whether a datagram of this size may be sent now.
    fn check_datagram(&self, data: &Bytes) -> Result<(), SendDatagramError> {
        if self.is_closed() {
            return Err(SendDatagramError::ConnectionLost);
        }
        if self.config.datagram_receive_buffer_size.is_none() {
            return Err(SendDatagramError::Disabled);
        }
        let max = match self.send_params() {
            Some(p) if p.max_datagram_frame_size.is_some() => self.max_datagram_size(),
            Some(_) => return Err(SendDatagramError::UnsupportedByPeer),
            None => return Err(SendDatagramError::UnsupportedByPeer),
        };
        if data.len() > max.unwrap_or(0) {
            return Err(SendDatagramError::TooLarge);
        }
        Ok(())
    }

    /// Open a datagram flow: datagrams sent on it with
    /// [`send_datagram_on`](Self::send_datagram_on) are ordered by the connection's
    /// scheduler under `class`, together with the stream data (see
    /// `streams/datagram_flows.rs`). Flows are local: the peer sees plain DATAGRAM
    /// frames.
    pub fn open_datagram_flow(&mut self, class: &StreamClass) -> DatagramFlowId {
        self.streams.open_datagram_flow(class)
    }

    /// Change a datagram flow's class.
    pub fn set_datagram_flow_class(
        &mut self,
        flow: DatagramFlowId,
        class: &StreamClass,
    ) -> Result<(), UnknownFlow> {
        self.streams.set_datagram_flow_class(flow, class)
    }

    /// Close a datagram flow, dropping what it still has queued.
    pub fn close_datagram_flow(&mut self, flow: DatagramFlowId) -> Result<(), UnknownFlow> {
        self.streams.close_datagram_flow(flow)
    }

    /// Queue a datagram on a flow. Each flow holds up to the datagram send buffer size
    /// ([`TransportConfig::datagram_send_buffer_size`]); beyond that its own oldest
    /// datagrams are dropped ([`DatagramFlowStats::dropped`]).
    pub fn send_datagram_on(
        &mut self,
        flow: DatagramFlowId,
        data: Bytes,
    ) -> Result<(), SendDatagramError> {
        self.check_datagram(&data)?;
        let limit = self.config.datagram_send_buffer_size;
        self.streams
            .queue_flow_datagram(flow, data, limit)
            .map_err(|_| SendDatagramError::UnknownFlow)
    }

    /// Datagram flow counters.
    pub fn datagram_flow_stats(&self) -> DatagramFlowStats {
        self.streams.datagram_flow_stats()
    }

    /// Take the next received datagram.
    pub fn recv_datagram(&mut self) -> Option<Bytes> {
        let d = self.datagrams.recv.pop_front()?;
        self.datagrams.recv_bytes -= d.len();
        Some(d)
    }
    /// Close with an application error code and reason (CONNECTION_CLOSE 0x1d).
    pub fn close(&mut self, now: Instant, error_code: VarInt, reason: Bytes) {
        if self.is_closed() {
            return;
        }
        self.close = Some(CloseFrame::Application {
            code: error_code,
            reason,
        });
        self.enter_closing(now, ConnectionError::LocallyClosed);
        self.trace_poll(now);
    }

    // ---- outputs ----

    /// Earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }
    /// Next application event.
    pub fn poll(&mut self) -> Option<Event> {
        self.flush_stream_events();
        self.events.pop_front()
    }

    pub(crate) fn poll_endpoint_event(&mut self) -> Option<EndpointEvent> {
        // The token in use changes with the peer's transport parameters and with the
        // remote CID; report it here, where the endpoint looks after every call.
        let token = match self.state {
            State::Draining | State::Drained => None,
            _ => self.cids.active_reset_token(),
        };
        if token != self.reported_reset_token {
            self.reported_reset_token = token;
            self.endpoint_events
                .push_back(EndpointEvent::ResetToken(token));
        }
        self.endpoint_events.pop_front()
    }

    /// Give the connection new local CIDs to issue (from the endpoint's generator).
    pub(crate) fn add_local_cids(&mut self, cids: Vec<(ConnectionId, ResetToken)>) {
        for (cid, token) in cids {
            self.cids.issue(cid, token);
        }
    }

    /// Local CIDs currently routed to this connection.
    pub(crate) fn local_cids(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.cids.local_cids()
    }

    /// The DCID of the client's first Initial.
    pub(crate) fn orig_dst_cid(&self) -> ConnectionId {
        self.orig_dst_cid
    }

    /// Server: the DCID of the Initial that carried a Retry token (the endpoint routes
    /// Initials by it).
    pub(crate) fn retry_src_cid(&self) -> Option<ConnectionId> {
        self.validation.retry_src_cid
    }

    // ---- internals shared by send/recv ----

    fn space_for_epoch(epoch: Epoch) -> usize {
        epoch.idx()
    }

    fn flush_stream_events(&mut self) {
        while let Some(ev) = self.streams.poll_event() {
            self.events.push_back(match ev {
                StreamEvent::Opened { dir } => Event::StreamOpened { dir },
                StreamEvent::Readable { id } => Event::StreamReadable { id },
                StreamEvent::Writable { id } => Event::StreamWritable { id },
                StreamEvent::Finished { id } => Event::StreamFinished { id },
                StreamEvent::Stopped { id, error_code } => Event::StreamStopped { id, error_code },
                StreamEvent::Available { dir } => Event::StreamAvailable { dir },
                StreamEvent::Expired { id } => Event::StreamExpired { id },
            });
        }
    }

    /// Work common to every input: timers, and endpoint bookkeeping.
    fn after_input(&mut self, now: Instant) {
        self.flush_stream_events();
        self.timers
            .set_opt(Timer::StreamExpiry, self.streams.next_expiry());
        self.update_loss_timer(now);
        self.update_ack_timer();
        if self.cids.wants_more() && !self.is_closed() && self.peer_params.is_some() {
            let n = self.cids.take_wanted();
            if n > 0 {
                self.endpoint_events
                    .push_back(EndpointEvent::NeedIdentifiers(n));
            }
        }
        self.trace_poll(now);
    }

    fn reset_idle_timer(&mut self, now: Instant) {
        if self.is_closed() {
            // RFC 9000 §10.2: once closing or draining only the Close timer runs;
            // re-arming Idle for packets received meanwhile would let an idle timeout
            // overwrite the close reason (and keep the connection beyond 3 PTO).
            return;
        }
        match self.idle_timeout {
            // RFC 9000 §10.1: at least 3 PTOs so that probes can go out first.
            // A timeout too large for `Instant` (the peer may advertise up to 2^62 ms,
            // our config anything) never fires: no timer rather than an overflow.
            Some(t) if !t.is_zero() => {
                let t = t.max(3 * self.pto_duration());
                self.timers.set_opt(Timer::Idle, now.checked_add(t));
            }
            _ => self.timers.stop(Timer::Idle),
        }
        if let Some(ka) = self.config.keep_alive_interval {
            if self.state == State::Established {
                self.timers.set_opt(Timer::KeepAlive, now.checked_add(ka));
            }
        }
    }

    fn pto_duration(&self) -> Duration {
        self.rtt.pto_base() + self.peer_max_ack_delay
    }

    /// Feed TLS and move its output into CRYPTO streams; react to new keys.
    fn drive_tls(&mut self) -> Result<(), TransportError> {
        loop {
            self.tls_buf.clear();
            let change = self.tls.write_handshake(&mut self.tls_buf);
            if !self.tls_buf.is_empty() {
                let lvl = self.write_level.idx();
                self.levels[lvl].crypto_send.write(&self.tls_buf);
            }
            match change {
                Some(KeyChange::Handshake { keys }) => {
                    self.levels[1].local = Some(keys.local.into());
                    self.levels[1].remote = Some(keys.remote.into());
                    self.write_level = Epoch::Handshake;
                    self.trace_tls_keys(Epoch::Handshake);
                }
                Some(KeyChange::OneRtt { keys }) => {
                    self.levels[2].local = Some(keys.local.into());
                    self.levels[2].remote = Some(keys.remote.into());
                    self.write_level = Epoch::Data;
                    self.prepare_next_keys();
                    self.trace_tls_keys(Epoch::Data);
                }
                None if self.tls_buf.is_empty() => break,
                None => {}
            }
        }
        self.decide_0rtt_server();
        Ok(())
    }

    /// Derive the next 1-RTT key generation so a peer key update can be recognised.
    fn prepare_next_keys(&mut self) {
        if self.key_update.next_remote.is_none() {
            if let Some(set) = self.tls.next_1rtt_keys() {
                self.key_update.next_local = Some(set.local);
                self.key_update.next_remote = Some(set.remote);
            }
        }
    }

    /// Called once TLS reports the handshake complete.
    fn on_handshake_complete(&mut self, now: Instant) -> Result<(), TransportError> {
        let raw = self
            .tls
            .peer_transport_params()
            .ok_or_else(|| {
                TransportError::new(
                    TransportErrorCode::crypto(0x6d),
                    "missing transport parameters",
                )
            })?
            .to_vec();
        let params = TransportParameters::decode(!self.side, &raw)?;
        self.validate_peer_params(&params)?;
        if self.side.is_client() {
            self.finish_0rtt_client(&params)?;
        }
        self.apply_peer_params(&params);
        self.trace_peer_params(now, &params);
        self.peer_params = Some(params);
        self.alpn = self.tls.alpn_protocol();
        self.state = State::Established;
        if self.side.is_server() {
            // RFC 9001 §4.1.2: the handshake is confirmed at the server when it completes.
            self.handshake_done_pending = true;
            self.confirm_handshake(now);
        }
        if !self.connected_reported {
            self.connected_reported = true;
            self.events.push_back(Event::Connected);
        }
        self.reset_idle_timer(now);
        Ok(())
    }

    fn validate_peer_params(&self, p: &TransportParameters) -> Result<(), TransportError> {
        self.validate_version_information(p)?;
        // RFC 9000 §7.3: authenticate the connection IDs.
        if p.initial_src_cid != Some(self.cids.peer_initial_cid()) {
            return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
                "initial_source_connection_id mismatch",
            ));
        }
        if self.side.is_client() && p.original_dst_cid != Some(self.orig_dst_cid) {
            return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
                "original_destination_connection_id mismatch",
            ));
        }
        // RFC 9000 §7.3: present exactly when we acted on a Retry, and equal to its SCID.
        if self.side.is_client() && p.retry_src_cid != self.validation.retry_src_cid {
            return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
                "retry_source_connection_id mismatch",
            ));
        }
        Ok(())
    }

    fn apply_peer_params(&mut self, p: &TransportParameters) {
        self.streams.set_peer_limits(zero_rtt::peer_limits(p));
        self.peer_ack_delay_exponent = p.ack_delay_exponent.into_inner().min(20) as u8;
        self.peer_max_ack_delay = Duration::from_millis(p.max_ack_delay.into_inner());
        self.rtt.set_max_ack_delay(self.peer_max_ack_delay);
        let peer_idle = p.max_idle_timeout.into_inner();
        self.idle_timeout = match (self.config.max_idle_timeout, peer_idle) {
            (Some(a), b) if b > 0 && !a.is_zero() => Some(a.min(Duration::from_millis(b))),
            (Some(a), _) if !a.is_zero() => Some(a),
            (_, b) if b > 0 => Some(Duration::from_millis(b)),
            _ => None,
        };
        let peer_mtu = p.max_udp_payload_size.into_inner().min(u64::from(u16::MAX)) as u16;
        self.path.mtu = self.path.mtu.min(peer_mtu.max(1200));
        self.mtud_on_peer_params(peer_mtu);
        if let Some(token) = p.stateless_reset_token {
            self.cids.set_initial_remote_reset_token(token);
        }
        if let (Some(pa), true) = (p.preferred_address, self.side.is_client()) {
            self.cids
                .add_preferred_remote(pa.connection_id, pa.stateless_reset_token);
        }
        self.cids
            .set_peer_cid_limit(p.active_connection_id_limit.into_inner().min(8));
    }

    fn confirm_handshake(&mut self, now: Instant) {
        if self.handshake_confirmed {
            return;
        }
        self.handshake_confirmed = true;
        self.discard_level(now, Epoch::Handshake);
        self.mtud_on_handshake_confirmed();
        self.path_on_handshake_confirmed(now);
    }

    /// RFC 9001 §4.9: discard keys and state of a level.
    fn discard_level(&mut self, now: Instant, epoch: Epoch) {
        let lvl = &mut self.levels[epoch.idx()];
        if lvl.discarded {
            return;
        }
        lvl.discarded = true;
        lvl.local = None;
        lvl.remote = None;
        let space = &mut self.spaces[Self::space_for_epoch(epoch)];
        space.acks = crate::recovery::AckTracker::new_immediate();
        // Marked packets discarded unacknowledged will never be acknowledged: for ECN
        // validation they count as lost (a path that drops ECT packets shows up here
        // when the unmarked retransmissions completed the level).
        let marked = space.sent.iter().filter(|(_, p)| p.info.ect0).count() as u64;
        self.ecn.on_lost(marked);
        let removed = space.sent.discard();
        space.probes = 0;
        space.ping_pending = false;
        let _ = removed; // bytes in flight are summed from the spaces
        self.pto_count = 0;
        self.update_loss_timer(now);
    }

    /// Close because of a local transport error.
    fn close_with_error(&mut self, now: Instant, err: TransportError) {
        if self.is_closed() {
            return;
        }
        tracing::debug!(side = ?self.side, %err, "closing connection");
        self.close = Some(CloseFrame::Transport(err.clone()));
        self.enter_closing(now, ConnectionError::TransportError(err));
    }

    fn enter_closing(&mut self, now: Instant, reason: ConnectionError) {
        self.state = State::Closing;
        self.close_pending = true;
        self.report_lost(reason);
        let t = 3 * self.pto_duration();
        self.timers = Timers::default();
        self.timers.set(Timer::Close, now + t);
    }

    /// The peer closed: drain.
    fn enter_draining(&mut self, now: Instant, reason: ConnectionError) {
        if matches!(self.state, State::Draining | State::Drained) {
            // A peer closing before the handshake is confirmed sends its close in several
            // levels; an application close in 1-RTT beats its APPLICATION_ERROR stand-in
            // from a Handshake packet of the same datagram (RFC 9000 §10.2.3).
            let stand_in = matches!(
                self.error,
                Some(ConnectionError::ConnectionClosed { code, .. })
                    if code == TransportErrorCode::APPLICATION_ERROR
            );
            if stand_in && matches!(reason, ConnectionError::ApplicationClosed { .. }) {
                self.error = Some(reason.clone());
                for ev in self.events.iter_mut() {
                    if let Event::ConnectionLost { reason: r } = ev {
                        *r = reason.clone();
                    }
                }
            }
            return;
        }
        self.report_lost(reason);
        self.state = State::Draining;
        self.close_pending = false;
        let t = 3 * self.pto_duration();
        self.timers = Timers::default();
        self.timers.set(Timer::Close, now + t);
    }

    /// Immediate death without sending anything (idle timeout, stateless reset).
    fn kill(&mut self, reason: ConnectionError) {
        self.report_lost(reason);
        self.state = State::Drained;
        self.timers = Timers::default();
    }

    fn report_lost(&mut self, reason: ConnectionError) {
        if self.error.is_none() {
            self.error = Some(reason.clone());
            self.events.push_back(Event::ConnectionLost { reason });
        }
    }
}

fn streams_config(c: &TransportConfig) -> crate::streams::StreamsConfig {
    crate::streams::StreamsConfig {
        max_concurrent_bidi: c.max_concurrent_bidi_streams,
        max_concurrent_uni: c.max_concurrent_uni_streams,
        stream_receive_window: c.stream_receive_window,
        receive_window: c.receive_window,
        max_stream_receive_window: c.max_stream_receive_window,
        max_receive_window: c.max_receive_window,
        send_window: c.send_window,
        scheduler: c.scheduler.clone(),
    }
}

fn map_write_error(e: crate::streams::WriteError) -> WriteError {
    match e {
        crate::streams::WriteError::Blocked => WriteError::Blocked,
        crate::streams::WriteError::Stopped(c) => WriteError::Stopped(c),
        crate::streams::WriteError::ClosedStream => WriteError::ClosedStream,
    }
}

fn map_read_error(e: crate::streams::ReadError) -> ReadError {
    match e {
        crate::streams::ReadError::Blocked => ReadError::Blocked,
        crate::streams::ReadError::Reset(c) => ReadError::Reset(c),
        crate::streams::ReadError::ClosedStream => ReadError::ClosedStream,
    }
}
