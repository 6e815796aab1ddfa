//! Configuration: per-endpoint ([`EndpointConfig`]), per-role ([`ServerConfig`],
//! [`ClientConfig`]) and per-connection transport tuning ([`TransportConfig`]).
//!
//! Hooks are configured one way: a behaviour the application may replace is an
//! `Arc<dyn …Factory>` field that is always set (a default is built in) and is asked for a
//! fresh object per connection or endpoint — [`TransportConfig::scheduler`]
//! ([`crate::sched::SchedulerFactory`]), [`TransportConfig::congestion_controller`]
//! ([`crate::cc::ControllerFactory`]) and [`EndpointConfig::cid_generator`]
//! ([`crate::cid::CidGeneratorFactory`]). Observers that only watch are optional:
//! [`TransportConfig::event_subscriber`] is `None` unless someone listens.

use crate::cid::{CidGeneratorFactory, RandomCidGenerator};
use std::sync::Arc;
use std::time::Duration;

/// Transport tuning shared by client and server connections.
#[derive(Clone)]
pub struct TransportConfig {
    /// Idle timeout we advertise (`None` = no timeout). The effective timeout is the
    /// minimum of both sides' non-zero values (RFC 9000 §10.1).
    pub max_idle_timeout: Option<Duration>,
    /// Initial per-stream receive window, advertised as `initial_max_stream_data_*`
    /// (RFC 9000 §18.2). Auto-tuning may grow it up to
    /// [`max_stream_receive_window`](Self::max_stream_receive_window).
    pub stream_receive_window: u64,
    /// Initial connection-level receive window, advertised as `initial_max_data`
    /// (RFC 9000 §18.2). Auto-tuning may grow it up to
    /// [`max_receive_window`](Self::max_receive_window).
    pub receive_window: u64,
    /// Ceiling of per-stream receive-window auto-tuning. A stream's window doubles
    /// whenever a MAX_STREAM_DATA update is due less than two smoothed RTTs after the
    /// previous one (the window, not the reader, limits the peer). Updates go out each
    /// half window, so growth stops once half a window takes 2 RTTs to arrive: at up to
    /// about 4 × the bandwidth-delay product, or this ceiling. Default 16 MiB
    /// (Chromium's limit): a full window for 1 Gbit/s at 130 ms RTT. A value at or below
    /// [`stream_receive_window`](Self::stream_receive_window) disables tuning.
    pub max_stream_receive_window: u64,
    /// Ceiling of connection-level receive-window auto-tuning (same rule on MAX_DATA;
    /// the connection window is also kept at least 1.5 × the largest stream window).
    /// It bounds the data buffered for one connection. Default 24 MiB = 1.5 × the
    /// stream default (Chromium's limit). A value at or below
    /// [`receive_window`](Self::receive_window) disables tuning.
    pub max_receive_window: u64,
    /// Upper bound on buffered, unacknowledged send data per connection.
    pub send_window: u64,
    /// How many bidirectional streams the peer may have open at once.
    pub max_concurrent_bidi_streams: u64,
    /// How many unidirectional streams the peer may have open at once.
    pub max_concurrent_uni_streams: u64,
    /// RTT assumed before the first sample (RFC 9002 §6.2.2: 333 ms).
    pub initial_rtt: Duration,
    /// Maximum delay before we acknowledge an ack-eliciting packet.
    pub max_ack_delay: Duration,
    /// Exponent used to encode ACK delays.
    pub ack_delay_exponent: u8,
    /// UDP payload size used before path MTU is known (at least 1200).
    pub initial_mtu: u16,
    /// Receive buffer for DATAGRAM frames in bytes; `None` disables datagrams.
    pub datagram_receive_buffer_size: Option<usize>,
    /// Send buffer for DATAGRAM frames in bytes; the oldest are dropped when full.
    pub datagram_send_buffer_size: usize,
    /// Send PINGs at this interval to keep an idle connection open.
    pub keep_alive_interval: Option<Duration>,
    /// How many connection IDs we are willing to store from the peer.
    pub active_connection_id_limit: u64,
    /// Stream scheduler (the [`crate::sched::Scheduler`] hook): which stream fills the
    /// next STREAM frame. Round robin by default; peers may use different schedulers.
    pub scheduler: Arc<dyn crate::sched::SchedulerFactory>,
    /// Congestion controller (the [`crate::cc::Controller`] hook): built for every new
    /// path. NewReno by default ([`crate::cc::NewRenoConfig`]).
    pub congestion_controller: Arc<dyn crate::cc::ControllerFactory>,
    /// Path MTU discovery (DPLPMTUD, RFC 9000 §14.3 and RFC 8899): after the handshake
    /// is confirmed, probe for UDP payloads larger than [`initial_mtu`](Self::initial_mtu).
    /// `None` keeps every datagram at `initial_mtu`.
    pub mtu_discovery: Option<MtuDiscoveryConfig>,
    /// Burst sizes of the pacer (RFC 9002 §7.7): by default the bucket covers 2 ms of
    /// sending at the pacing rate, between 10 and 256 packets. Set
    /// [`granularity`](crate::cc::PacerConfig::granularity) to the resolution of the
    /// timer that drives the connection.
    pub pacing: crate::cc::PacerConfig,
    /// Packets one 1-RTT send key may protect, when lower than the cipher suite's own
    /// confidentiality limit (RFC 9001 §6.6: 2^23 for AES-GCM; ChaCha20-Poly1305's is
    /// practically unlimited). After 3/4 of it a key update starts automatically; a key
    /// that reaches it because no update was possible (the peer acknowledged nothing
    /// in the current phase) closes the connection with AEAD_LIMIT_REACHED. `None`: the
    /// suite's limit. Values below 16 count as 16.
    pub confidentiality_limit: Option<u64>,
    /// Packets failing authentication that the connection tolerates across all its
    /// keys, when lower than the cipher suite's integrity limit (RFC 9001 §6.6: 2^52
    /// for AES-GCM, 2^36 for ChaCha20-Poly1305). Beyond it the connection closes with
    /// AEAD_LIMIT_REACHED. `None`: the suite's limit.
    pub integrity_limit: Option<u64>,
    /// Whether the peer may migrate actively (RFC 9000 §9). `false` sends the
    /// `disable_active_migration` transport parameter; a server then drops packets that
    /// arrive from a new address with a new connection ID (an active migration) but
    /// still follows NAT rebinding (new address, same connection ID) after validating
    /// it. Default `true`. A client's setting only affects the parameter it sends.
    pub allow_active_migration: bool,
    /// Client: after the handshake is confirmed, probe the server's preferred address
    /// (RFC 9000 §9.6) and move there once it is validated. Default `true`.
    pub migrate_to_preferred_address: bool,
    /// Event subscriber hook ([`crate::qlog`]): asked once per connection for the
    /// subscriber that receives its typed events (qlog, metrics, tests). `None` (the
    /// default) traces nothing and costs one `Option` check per emission point.
    pub event_subscriber: Option<Arc<dyn crate::qlog::SubscriberFactory>>,
    /// Explicit Congestion Notification (RFC 9000 §13.4): mark outgoing packets ECT(0),
    /// validate the path and react to CE marks as to loss, without the loss. The
    /// runtime must pass received ECN codepoints to the endpoint. Default `true`.
    pub ecn: bool,
}

/// Settings of path MTU discovery ([`TransportConfig::mtu_discovery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuDiscoveryConfig {
    /// Largest UDP payload to probe for. The effective bound is also limited by our
    /// endpoint's [`EndpointConfig::max_udp_payload_size`] and the peer's
    /// `max_udp_payload_size` transport parameter. Default 1452: a 1500-byte Ethernet
    /// MTU minus IPv6 (40) and UDP (8) headers.
    pub upper_bound: u16,
    /// After a search ended below the upper bound, search again after this long.
    pub interval: Duration,
    /// The binary search stops when the largest working and the smallest failing size
    /// are closer than this many bytes.
    pub minimum_change: u16,
}

impl Default for MtuDiscoveryConfig {
    fn default() -> Self {
        Self {
            upper_bound: 1452,
            interval: Duration::from_secs(600),
            minimum_change: 20,
        }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_idle_timeout: Some(Duration::from_secs(30)),
            stream_receive_window: 1_250_000,
            receive_window: 15_000_000,
            max_stream_receive_window: 16 << 20,
            max_receive_window: 24 << 20,
            send_window: 10_000_000,
            max_concurrent_bidi_streams: 100,
            max_concurrent_uni_streams: 100,
            initial_rtt: Duration::from_millis(333),
            max_ack_delay: Duration::from_millis(25),
            ack_delay_exponent: 3,
            initial_mtu: 1200,
            datagram_receive_buffer_size: Some(1_250_000),
            datagram_send_buffer_size: 1_048_576,
            keep_alive_interval: None,
            active_connection_id_limit: 4,
            congestion_controller: Arc::new(crate::cc::NewRenoConfig::default()),
            scheduler: Arc::new(crate::sched::SchedulerKind::RoundRobin),
            mtu_discovery: Some(MtuDiscoveryConfig::default()),
            pacing: crate::cc::PacerConfig::default(),
            confidentiality_limit: None,
            integrity_limit: None,
            allow_active_migration: true,
            migrate_to_preferred_address: true,
            event_subscriber: None,
            ecn: true,
        }
    }
}

impl std::fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportConfig")
            .field("max_idle_timeout", &self.max_idle_timeout)
            .field("stream_receive_window", &self.stream_receive_window)
            .field("receive_window", &self.receive_window)
            .field("max_stream_receive_window", &self.max_stream_receive_window)
            .field("max_receive_window", &self.max_receive_window)
            .field("scheduler", &self.scheduler)
            .field(
                "max_concurrent_bidi_streams",
                &self.max_concurrent_bidi_streams,
            )
            .field(
                "max_concurrent_uni_streams",
                &self.max_concurrent_uni_streams,
            )
            .field("mtu_discovery", &self.mtu_discovery)
            .field("pacing", &self.pacing)
            .field("confidentiality_limit", &self.confidentiality_limit)
            .field("integrity_limit", &self.integrity_limit)
            .field("event_subscriber", &self.event_subscriber.is_some())
            .field("ecn", &self.ecn)
            .finish_non_exhaustive()
    }
}

/// Endpoint-wide settings.
#[derive(Clone)]
pub struct EndpointConfig {
    /// Builds the connection-ID generator (random 8-byte CIDs by default).
    pub cid_generator: Arc<dyn CidGeneratorFactory>,
    /// Largest UDP payload we accept.
    pub max_udp_payload_size: u16,
    /// QUIC versions we speak, preferred first.
    pub supported_versions: Vec<u32>,
    /// Seed for the endpoint's RNG; `None` seeds from the OS (non-deterministic).
    pub rng_seed: Option<u64>,
    /// Key for stateless reset tokens (RFC 9000 §10.3.2); random when `None`.
    pub reset_key: Option<[u8; 32]>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            cid_generator: Arc::new(RandomCidGenerator::default()),
            max_udp_payload_size: 1472,
            supported_versions: vec![crate::packet::VERSION_1],
            rng_seed: None,
            reset_key: None,
        }
    }
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("max_udp_payload_size", &self.max_udp_payload_size)
            .field("supported_versions", &self.supported_versions)
            .finish_non_exhaustive()
    }
}

/// Settings for accepting connections.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// TLS configuration (must be TLS 1.3-capable; ALPN as needed).
    pub crypto: Arc<rustls::ServerConfig>,
    /// Transport tuning for accepted connections.
    pub transport: Arc<TransportConfig>,
    /// Maximum number of concurrent connections (further Initials are refused).
    pub max_connections: usize,
    /// Accept 0-RTT data from clients resuming with a ticket that allows it (RFC 9001
    /// §4.6; default true). When false, every connection rejects early data (the client
    /// resends it after the handshake) while tickets still resume sessions. 0-RTT data
    /// can be replayed by an attacker (RFC 9001 §9.2): see the crate docs for what Quiver
    /// does about it. If `transport` is replaced by one with lower limits while `crypto`
    /// (whose store issued the tickets) stays, the endpoint rejects early data by itself
    /// from then on, since a ticket may carry the higher limits (RFC 9000 §7.4.1).
    pub zero_rtt: bool,
    /// Preferred address offered to clients (RFC 9000 §9.6): each connection gets a
    /// second connection ID, routed like the first, that the client uses there. Packets
    /// to the preferred address must reach this endpoint (for the runtime: the same
    /// socket, bound to a wildcard address, with the preferred IP on the same port).
    pub preferred_address: Option<PreferredAddressConfig>,
    /// Address validation (RFC 9000 §8.1): Retry, NEW_TOKEN tokens and their key.
    pub validation: crate::token::ValidationConfig,
}

/// The addresses of [`ServerConfig::preferred_address`]; at least one should be set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreferredAddressConfig {
    /// IPv4 preferred address.
    pub v4: Option<std::net::SocketAddrV4>,
    /// IPv6 preferred address.
    pub v6: Option<std::net::SocketAddrV6>,
}

impl ServerConfig {
    /// A server config with default transport settings.
    pub fn new(crypto: Arc<rustls::ServerConfig>) -> Self {
        Self {
            crypto,
            transport: Arc::new(TransportConfig::default()),
            max_connections: 100_000,
            zero_rtt: true,
            preferred_address: None,
            validation: crate::token::ValidationConfig::default(),
        }
    }
}

/// Settings for initiating a connection.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// TLS configuration.
    pub crypto: Arc<rustls::ClientConfig>,
    /// Transport tuning.
    pub transport: Arc<TransportConfig>,
    /// QUIC version of the first Initial (the *original version*, RFC 9368).
    pub version: u32,
    /// Further versions the client is willing to use, preferred first: offered to the
    /// server for compatible version negotiation (`version_information`, RFC 9368) and
    /// used to start over after a Version Negotiation packet. Empty: only `version`.
    pub available_versions: Vec<u32>,
    /// Where NEW_TOKEN tokens are kept and taken from (RFC 9000 §8.1.3): a token the
    /// server sent on one connection goes into the Initial packets of the next
    /// connection to the same server name. Configs cloned from one another share the
    /// store; `None` neither keeps nor uses tokens.
    pub token_store: Option<Arc<dyn crate::token::TokenStore>>,
}

impl ClientConfig {
    /// A client config with default transport settings.
    pub fn new(crypto: Arc<rustls::ClientConfig>) -> Self {
        Self {
            crypto,
            transport: Arc::new(TransportConfig::default()),
            version: 1, /* QUIC v1 */
            available_versions: Vec::new(),
            token_store: Some(Arc::new(crate::token::TokenMemoryStore::default())),
        }
    }
}
