//! The endpoint: owns connections, routes datagrams by connection ID, answers version
//! negotiation and stateless resets, and accepts new connections.

use crate::cid::{ConnectionId, ConnectionIdGenerator, ResetToken, RESET_TOKEN_SIZE};
use crate::coding::VarInt;
use crate::config::{ClientConfig, EndpointConfig, ServerConfig, TransportConfig};
use crate::connection::{
    ClientRestart, Connection, ConnectionInit, EndpointEvent, Event, ServerChoice, Transmit,
    VersionState,
};
use crate::crypto::{initial_keys, TlsSession};
use crate::packet;
use crate::shared::{EcnCodepoint, Side};
use crate::token::{RetryToken, TokenKey, TokenKind, TOKEN_KEY_LEN};
use crate::transport_params::{PreferredAddress, TransportParameters};
use crate::version::VersionInformation;
use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// How often [`Endpoint`] asks the CID generator for an unused ID before giving up.
const MAX_CID_ATTEMPTS: usize = 16;

/// Opaque handle of a connection owned by an [`Endpoint`].
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash, Ord, PartialOrd)]
pub struct ConnectionHandle(pub usize);

/// What [`Endpoint::handle`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramEvent {
    /// A new incoming connection was created (it still has to finish its handshake).
    NewConnection(ConnectionHandle),
    /// The datagram was given to an existing connection.
    Known(ConnectionHandle),
    /// The endpoint answered (or dropped) it statelessly.
    Stateless,
}

/// Why a connection attempt could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid server name: {0}")]
    InvalidServerName(String),
    /// The remote port is zero or the address unspecified.
    #[error("invalid remote address: {0}")]
    InvalidRemoteAddress(SocketAddr),
    /// The configured version is not supported.
    #[error("unsupported QUIC version {0:#x}")]
    UnsupportedVersion(u32),
    /// The TLS configuration could not start a session.
    #[error("TLS configuration error: {0}")]
    Tls(String),
    /// The connection-ID generator kept producing IDs that are already in use.
    #[error("the connection ID generator produced no unused ID")]
    ConnectionIdsExhausted,
}

/// A queued stateless response (Version Negotiation, stateless reset, refusal).
#[derive(Debug)]
struct StatelessResponse {
    destination: SocketAddr,
    src_ip: Option<IpAddr>,
    data: Vec<u8>,
}

/// A QUIC endpoint.
pub struct Endpoint {
    config: Arc<EndpointConfig>,
    server_config: Option<Arc<ServerConfig>>,
    rng: StdRng,
    cid_gen: Box<dyn ConnectionIdGenerator>,
    reset_key: ring::hmac::Key,
    /// Connections by handle; a BTreeMap keeps iteration deterministic. Handles are
    /// never reused, so a stale handle in a queue below finds nothing.
    connections: BTreeMap<usize, Slot>,
    /// Every connection's next deadline, earliest first: `poll_timeout` is the first
    /// entry and `handle_timeout` visits only the due ones.
    timers: BTreeSet<(Instant, usize)>,
    /// Connections that may have something to transmit (touched since their last
    /// `poll_transmit` returned nothing), in round-robin order.
    send_ready: VecDeque<usize>,
    /// Connections that may have application events or be drained.
    event_ready: VecDeque<usize>,
    /// Connections called into whose deadline must be re-read.
    dirty: Vec<usize>,
    /// Reused buffer (no allocation per call).
    scratch: Vec<usize>,
    next_handle: usize,
    /// Routing of our connection IDs.
    by_cid: HashMap<ConnectionId, ConnectionHandle>,
    /// Routing of a client's Initial DCID until it switches to our CID.
    by_initial_dcid: HashMap<ConnectionId, ConnectionHandle>,
    /// Stateless reset tokens of the remote CIDs our connections send to: a reset
    /// carries a random DCID, so it is found by its last 16 bytes (RFC 9000 §10.3.1)
    /// through this index, not by asking every connection.
    by_reset_token: HashMap<ResetToken, ConnectionHandle>,
    stateless: VecDeque<StatelessResponse>,
    /// Address-validation tokens (see [`crate::token`]).
    tokens: Tokens,
    /// 0-RTT safety (RFC 9000 §7.4.1): the TLS configuration whose ticket store issued
    /// the tickets clients may hold, and the highest limits advertised under it. A
    /// connection whose limits are below any of them rejects early data, as a ticket
    /// could carry those higher limits.
    zero_rtt_floor: Option<(
        Arc<rustls::ServerConfig>,
        crate::connection::RememberedLimits,
    )>,
}

/// The endpoint's token machinery. It has its own random source, so that issuing tokens
/// does not shift the CIDs and other values a seeded endpoint draws.
struct Tokens {
    rng: StdRng,
    /// Secret used when the server config names none.
    secret: [u8; TOKEN_KEY_LEN],
    /// The key of the secret in use, derived once.
    key: Option<([u8; TOKEN_KEY_LEN], TokenKey)>,
    /// Origin of token times: the first `now` the endpoint was given.
    epoch: Option<Instant>,
    stats: ValidationStats,
}

/// Address-validation counters of an [`Endpoint`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValidationStats {
    /// Retry packets sent.
    pub retries_sent: u64,
    /// Initials refused with INVALID_TOKEN (a bad Retry token).
    pub invalid_retry_tokens: u64,
    /// NEW_TOKEN tokens that validated a client's address.
    pub new_tokens_accepted: u64,
    /// NEW_TOKEN (or unknown) tokens ignored because they did not validate.
    pub new_tokens_ignored: u64,
}

impl Tokens {
    fn new(seed: Option<u64>) -> Self {
        let mut rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed ^ 0x746f_6b65_6e73_0000),
            None => StdRng::from_entropy(),
        };
        let mut secret = [0u8; TOKEN_KEY_LEN];
        rng.fill_bytes(&mut secret);
        Self {
            rng,
            secret,
            key: None,
            epoch: None,
            stats: ValidationStats::default(),
        }
    }

    /// Milliseconds on the token clock.
    fn time(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn key(&mut self, config: &ServerConfig) -> &TokenKey {
        let secret = config.validation.key.unwrap_or(self.secret);
        if self.key.as_ref().is_none_or(|(s, _)| *s != secret) {
            self.key = Some((secret, TokenKey::new(&secret)));
        }
        match &self.key {
            Some((_, k)) => k,
            None => unreachable!("set above"),
        }
    }

    fn nonce(&mut self) -> [u8; 12] {
        let mut n = [0u8; 12];
        self.rng.fill_bytes(&mut n);
        n
    }
}

/// How a new connection's address was validated by the token of its first Initial.
enum InitialToken {
    /// No token, or one ignored.
    None,
    /// A valid NEW_TOKEN token.
    NewToken,
    /// A valid Retry token.
    Retry(RetryToken),
}

/// A connection and the endpoint's bookkeeping for it.
///
/// Per-call work of the endpoint is proportional to the connections that were active
/// (received a datagram, fired a timer, were used by the application), never to all
/// connections: an idle connection costs nothing until its deadline.
struct Slot {
    conn: Connection,
    /// Deadline currently filed in `Endpoint::timers`.
    timer: Option<Instant>,
    in_send_ready: bool,
    in_event_ready: bool,
    dirty: bool,
    /// Our CIDs that route to this connection (removed from `by_cid` with it).
    cids: Vec<ConnectionId>,
    /// The connection's entry in `Endpoint::by_reset_token`.
    reset_token: Option<ResetToken>,
}

impl Slot {
    fn new(conn: Connection) -> Self {
        Self {
            conn,
            timer: None,
            in_send_ready: false,
            in_event_ready: false,
            dirty: false,
            cids: Vec::new(),
            reset_token: None,
        }
    }
}

impl Endpoint {
    /// Create an endpoint; pass a server config to accept connections.
    pub fn new(config: Arc<EndpointConfig>, server_config: Option<Arc<ServerConfig>>) -> Self {
        let mut rng = match config.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let key = config.reset_key.unwrap_or_else(|| {
            let mut k = [0u8; 32];
            rng.fill_bytes(&mut k);
            k
        });
        let cid_gen = config.cid_generator.build();
        let tokens = Tokens::new(config.rng_seed);
        Self {
            reset_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            cid_gen,
            config,
            server_config,
            rng,
            connections: BTreeMap::new(),
            next_handle: 0,
            by_cid: HashMap::new(),
            by_initial_dcid: HashMap::new(),
            by_reset_token: HashMap::new(),
            stateless: VecDeque::new(),
            zero_rtt_floor: None,
            timers: BTreeSet::new(),
            send_ready: VecDeque::new(),
            event_ready: VecDeque::new(),
            dirty: Vec::new(),
            scratch: Vec::new(),
            tokens,
        }
    }

    /// The server configuration, if this endpoint accepts connections.
    pub fn server_config(&self) -> Option<&Arc<ServerConfig>> {
        self.server_config.as_ref()
    }

    /// Replace (or remove) the server configuration.
    pub fn set_server_config(&mut self, server_config: Option<Arc<ServerConfig>>) {
        self.server_config = server_config;
    }

    /// Start a connection to `remote`, verifying the server as `server_name`.
    pub fn connect(
        &mut self,
        now: Instant,
        config: ClientConfig,
        remote: SocketAddr,
        server_name: &str,
    ) -> Result<ConnectionHandle, ConnectError> {
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(ConnectError::InvalidRemoteAddress(remote));
        }
        if !packet::is_supported_version(config.version) {
            return Err(ConnectError::UnsupportedVersion(config.version));
        }
        let local_cid = self.new_cid().ok_or(ConnectError::ConnectionIdsExhausted)?;
        // RFC 9000 §7.2: the first DCID is random and at least 8 bytes.
        let dcid = ConnectionId::random(&mut self.rng, 8);
        // RFC 9368: our first Initial's version first, then the others we would use.
        let mut versions = vec![config.version];
        for v in &config.available_versions {
            if packet::is_supported_version(*v) && !versions.contains(v) {
                versions.push(*v);
            }
        }
        let mut params =
            transport_params(&config.transport, &self.config, local_cid, None, None, None);
        // Available versions: only the one TLS starts with. rustls fixes the key-derivation
        // labels (v1 "quic key" / v2 "quicv2 key") when the session is created, so this
        // client cannot follow a compatible switch; listing only its original version
        // keeps a v2-preferring server from switching. The other versions are still used
        // after a Version Negotiation packet (RFC 9368 §2.1).
        // Sent only by a client that has other versions to fall back to: a client with one
        // version gains nothing from it, and keeps its first flight as small as before.
        params.version_information = (versions.len() > 1).then(|| VersionInformation {
            chosen: config.version,
            available: vec![config.version],
        });
        let mut encoded = Vec::new();
        params.encode(&mut encoded);
        let restart = ClientRestart {
            crypto: config.crypto.clone(),
            server_name: server_name.to_owned(),
            params: params.clone(),
        };
        let tls = TlsSession::client_for_version(
            config.crypto.clone(),
            config.version,
            server_name,
            encoded,
        )
        .map_err(|e| match e {
            crate::crypto::CryptoError::InvalidServerName(n) => ConnectError::InvalidServerName(n),
            other => ConnectError::Tls(other.to_string()),
        })?;
        let keys = initial_keys(config.version, &dcid, Side::Client)
            .map_err(|e| ConnectError::Tls(e.to_string()))?;
        let token = self.reset_token(&local_cid);
        // RFC 9000 §8.1.3: a NEW_TOKEN token from an earlier connection to this server.
        let initial_token = config
            .token_store
            .as_ref()
            .and_then(|s| s.take(server_name))
            .unwrap_or_default();
        let token_store = config
            .token_store
            .clone()
            .map(|s| (s, server_name.to_string()));
        let conn = Connection::new(ConnectionInit {
            side: Side::Client,
            version: config.version,
            config: config.transport.clone(),
            tls,
            now,
            remote,
            local_ip: None,
            local_cid,
            local_reset_token: token,
            remote_cid: dcid,
            orig_dst_cid: dcid,
            initial_keys: keys,
            local_cid_len: self.cid_gen.cid_len(),
            max_udp_payload_size: self.config.max_udp_payload_size,
            rng_seed: self.rng.gen(),
            preferred_cid: None,
            version_state: VersionState::client(versions, restart),
            address_validated: false,
            retry_src_cid: None,
            initial_token,
            new_tokens: Vec::new(),
            token_store,
            local_params: params,
        });
        let h = self.insert(conn);
        self.route_cid(local_cid, h);
        Ok(h)
    }

    /// Process one received UDP datagram.
    pub fn handle(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) -> Option<DatagramEvent> {
        let first = *data.first()?;
        let long = first & 0x80 != 0;
        let cid_len = self.cid_gen.cid_len();
        let (dcid, version, scid) = if long {
            let (v, d, s) = parse_long_ids(&data)?;
            (d, Some(v), Some(s))
        } else {
            (ConnectionId::new(data.get(1..1 + cid_len)?)?, None, None)
        };

        if let Some(&h) = self.by_cid.get(&dcid) {
            self.deliver(now, h, remote, local_ip, ecn, data);
            return Some(DatagramEvent::Known(h));
        }
        if let Some(&h) = self.by_initial_dcid.get(&dcid) {
            self.deliver(now, h, remote, local_ip, ecn, data);
            return Some(DatagramEvent::Known(h));
        }

        if !long && data.len() >= 21 {
            // RFC 9000 §10.3.1: a stateless reset carries a random DCID, so it matches no
            // CID of ours; it is recognised by its last 16 bytes. Without this check a
            // client never learns that the server lost its state (and would answer the
            // reset with a reset of its own). An index holds the token of the CID each
            // connection sends to; the connection compares it again in constant time.
            let tail = &data[data.len() - RESET_TOKEN_SIZE..];
            let hit = <[u8; RESET_TOKEN_SIZE]>::try_from(tail)
                .ok()
                .and_then(|t| self.by_reset_token.get(&ResetToken(t)).copied());
            if let Some(h) = hit {
                self.deliver(now, h, remote, local_ip, ecn, data);
                return Some(DatagramEvent::Known(h));
            }
        }
        let Some(version) = version else {
            // Unknown short-header packet: maybe a peer that lost its state talking to
            // us; answer with a stateless reset (RFC 9000 §10.3).
            self.stateless_reset(remote, local_ip, &dcid, data.len());
            return Some(DatagramEvent::Stateless);
        };
        let scid = scid.unwrap_or(ConnectionId::EMPTY);
        if version == 0 {
            return None; // version negotiation for a connection we no longer have
        }
        if !self.config.supported_versions.contains(&version) {
            // RFC 9000 §6.1: answer only datagrams big enough to be Initials.
            if data.len() >= 1200 {
                let mut buf = Vec::new();
                let mut versions = self.config.supported_versions.clone();
                versions.push(0x0a0a_0a0a); // a reserved version to exercise VN (§6.3)
                packet::encode_version_negotiation(
                    &mut buf,
                    self.rng.gen::<u8>() & 0x7f,
                    &scid,
                    &dcid,
                    &versions,
                );
                self.stateless.push_back(StatelessResponse {
                    destination: remote,
                    src_ip: local_ip,
                    data: buf,
                });
            }
            return Some(DatagramEvent::Stateless);
        }
        // Long header, supported version, unknown CID: only an Initial may start a
        // connection (RFC 9000 §7.2: and only in a datagram of at least 1200 bytes).
        let ty = packet::long_type_from_bits(version, (first >> 4) & 0x03);
        if ty != packet::PacketType::Initial || data.len() < 1200 {
            return None;
        }
        let server = self.server_config.clone()?;
        if self.connections.len() >= server.max_connections {
            return None;
        }
        // RFC 9000 §8.1: the token of the Initial decides whether the address is valid.
        let validated = match self.check_initial_token(now, &server, remote, &dcid, &data) {
            Ok(v) => v,
            Err(()) => {
                // RFC 9000 §8.1.3: a Retry token that fails means the client will not
                // take another Retry; close at once rather than let it time out.
                self.tokens.stats.invalid_retry_tokens += 1;
                self.refuse_initial(version, remote, local_ip, &dcid, &scid);
                return Some(DatagramEvent::Stateless);
            }
        };
        let (orig_dst_cid, retry_src_cid) = match &validated {
            InitialToken::Retry(t) => (t.orig_dst_cid, Some(dcid)),
            _ => (dcid, None),
        };
        if retry_src_cid.is_none() && dcid.len() < 8 {
            return None; // RFC 9000 §7.2: a client's first DCID is at least 8 bytes
        }
        let address_validated = !matches!(validated, InitialToken::None);
        if !address_validated && server.validation.retry {
            self.send_retry(now, &server, version, remote, local_ip, &dcid, &scid);
            return Some(DatagramEvent::Stateless);
        }
        let new_tokens = self.new_tokens(now, &server, remote);
        let local_cid = self.new_cid()?;
        let token = self.reset_token(&local_cid);
        // RFC 9000 §9.6: the preferred address comes with a CID of its own (sequence 1).
        let preferred = server.preferred_address.and_then(|pa| {
            let cid = self.new_cid()?;
            if cid.is_empty() {
                return None; // a zero-length CID cannot be offered (§18.2)
            }
            let token = self.reset_token(&cid);
            Some((pa, cid, token))
        });
        let params = transport_params(
            &server.transport,
            &self.config,
            local_cid,
            Some(orig_dst_cid),
            Some(token),
            preferred.map(|(pa, cid, token)| PreferredAddress {
                address_v4: pa.v4,
                address_v6: pa.v6,
                connection_id: cid,
                stateless_reset_token: token,
            }),
        );
        let mut params = params;
        let supported = self.config.supported_versions.clone();
        params.version_information = Some(VersionInformation {
            chosen: version,
            available: supported.clone(),
        });
        params.retry_src_cid = retry_src_cid;
        let mut encoded = Vec::new();
        params.encode(&mut encoded);
        let zero_rtt = server.zero_rtt && self.zero_rtt_safe(&server, &params);
        let mut tls =
            TlsSession::server_for_version(server.crypto.clone(), version, encoded).ok()?;
        if !zero_rtt {
            tls.reject_early_data();
        }
        let local_params = params.clone();
        // With more than one version, the choice waits for the ClientHello (RFC 9368).
        let choice = (supported.len() > 1).then(|| ServerChoice {
            crypto: server.crypto.clone(),
            params,
            supported,
            zero_rtt,
        });
        let keys = initial_keys(version, &dcid, Side::Server).ok()?;
        let conn = Connection::new(ConnectionInit {
            side: Side::Server,
            version,
            config: server.transport.clone(),
            tls,
            now,
            remote,
            local_ip,
            local_cid,
            local_reset_token: token,
            remote_cid: scid,
            orig_dst_cid,
            initial_keys: keys,
            local_cid_len: self.cid_gen.cid_len(),
            max_udp_payload_size: self.config.max_udp_payload_size,
            rng_seed: self.rng.gen(),
            preferred_cid: preferred.map(|(_, cid, token)| (cid, token)),
            version_state: VersionState::server(version, choice),
            address_validated,
            retry_src_cid,
            initial_token: Bytes::new(),
            new_tokens,
            token_store: None,
            local_params,
        });
        let h = self.insert(conn);
        self.route_cid(local_cid, h);
        if let Some((_, cid, _)) = preferred {
            self.route_cid(cid, h);
        }
        self.by_initial_dcid.insert(dcid, h);
        self.deliver(now, h, remote, local_ip, ecn, data);
        Some(DatagramEvent::NewConnection(h))
    }

    /// Whether a new connection with `params` may accept 0-RTT: no ticket of
    /// `server.crypto`'s store can carry higher limits (RFC 9000 §7.4.1). Records
    /// `params` as issued under that configuration.
    fn zero_rtt_safe(&mut self, server: &ServerConfig, params: &TransportParameters) -> bool {
        let limits = crate::connection::RememberedLimits::of(params);
        match &mut self.zero_rtt_floor {
            Some((crypto, floor)) if Arc::ptr_eq(crypto, &server.crypto) => {
                let safe = limits.covers(floor);
                floor.raise(&limits);
                safe
            }
            slot => {
                *slot = Some((server.crypto.clone(), limits));
                true
            }
        }
    }

    /// Write the next outgoing datagram(s) of any connection, or a stateless response.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        if let Some(r) = self.stateless.pop_front() {
            buf.clear();
            buf.extend_from_slice(&r.data);
            return Some(Transmit {
                destination: r.destination,
                ecn: None,
                size: r.data.len(),
                segment_size: None,
                src_ip: r.src_ip,
            });
        }
        self.refresh();
        // A connection whose deadline passed may send (a pacing delay ended) even if the
        // caller has not fired its timer yet.
        let mut due = self.take_due(now);
        for h in due.drain(..) {
            self.mark_send_ready(h);
        }
        self.scratch = due;
        // Round robin over the connections that may send.
        while let Some(h) = self.send_ready.pop_front() {
            let Some(slot) = self.connections.get_mut(&h) else {
                continue;
            };
            slot.in_send_ready = false;
            let t = slot.conn.poll_transmit(now, max_datagrams, buf);
            self.mark_dirty(h);
            self.process_endpoint_events(ConnectionHandle(h));
            if t.is_some() {
                // It may have more: back of the queue, after the others.
                self.mark_send_ready(h);
                return t;
            }
        }
        None
    }

    /// Earliest timer across all connections.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.refresh();
        self.timers.first().map(|&(t, _)| t)
    }

    /// Fire expired timers, and free connections that are drained.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.refresh();
        let mut due = self.take_due(now);
        for &h in &due {
            if let Some(slot) = self.connections.get_mut(&h) {
                slot.conn.handle_timeout(now);
            }
            self.touch(h);
            self.process_endpoint_events(ConnectionHandle(h));
        }
        due.clear();
        self.scratch = due;
    }

    /// Next application event of any connection. Drained connections whose events
    /// have all been delivered are freed here.
    pub fn poll_event(&mut self) -> Option<(ConnectionHandle, Event)> {
        self.refresh();
        while let Some(&h) = self.event_ready.front() {
            let Some(slot) = self.connections.get_mut(&h) else {
                self.event_ready.pop_front();
                continue;
            };
            if let Some(ev) = slot.conn.poll() {
                // It may have more: stay at the front.
                return Some((ConnectionHandle(h), ev));
            }
            slot.in_event_ready = false;
            self.event_ready.pop_front();
            if slot.conn.is_drained() {
                self.remove(ConnectionHandle(h));
            }
        }
        None
    }

    /// Access a connection.
    pub fn connection(&self, ch: ConnectionHandle) -> Option<&Connection> {
        self.connections.get(&ch.0).map(|s| &s.conn)
    }

    /// Access a connection mutably (stream and datagram operations). The connection is
    /// considered active: the next `poll_*` call looks at it.
    pub fn connection_mut(&mut self, ch: ConnectionHandle) -> Option<&mut Connection> {
        if !self.connections.contains_key(&ch.0) {
            return None;
        }
        self.touch(ch.0);
        self.connections.get_mut(&ch.0).map(|s| &mut s.conn)
    }

    /// Address-validation counters (Retry, tokens).
    pub fn validation_stats(&self) -> ValidationStats {
        self.tokens.stats
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The stateless-reset index: token → connection (tests check its upkeep).
    #[cfg(test)]
    pub(crate) fn reset_token_index(&self) -> &HashMap<ResetToken, ConnectionHandle> {
        &self.by_reset_token
    }

    /// Handles of all live connections.
    pub fn connection_handles(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.connections.keys().map(|h| ConnectionHandle(*h))
    }

    // ---- internals ----

    fn insert(&mut self, conn: Connection) -> ConnectionHandle {
        let h = self.next_handle;
        self.next_handle += 1;
        self.connections.insert(h, Slot::new(conn));
        self.touch(h);
        ConnectionHandle(h)
    }

    fn remove(&mut self, h: ConnectionHandle) {
        if let Some(slot) = self.connections.remove(&h.0) {
            for cid in slot.conn.local_cids().chain(slot.cids) {
                if self.by_cid.get(&cid) == Some(&h) {
                    self.by_cid.remove(&cid);
                }
            }
            for dcid in [Some(slot.conn.orig_dst_cid()), slot.conn.retry_src_cid()]
                .into_iter()
                .flatten()
            {
                if self.by_initial_dcid.get(&dcid) == Some(&h) {
                    self.by_initial_dcid.remove(&dcid);
                }
            }
            if let Some(t) = slot.reset_token {
                if self.by_reset_token.get(&t) == Some(&h) {
                    self.by_reset_token.remove(&t);
                }
            }
            if let Some(t) = slot.timer {
                self.timers.remove(&(t, h.0));
            }
        }
    }

    /// The connections whose deadline is at or before `now`, in the reused scratch buffer
    /// (hand it back through `self.scratch` when done).
    fn take_due(&mut self, now: Instant) -> Vec<usize> {
        let mut due = std::mem::take(&mut self.scratch);
        due.clear();
        due.extend(
            self.timers
                .iter()
                .take_while(|(t, _)| *t <= now)
                .map(|&(_, h)| h),
        );
        due
    }

    /// Route `cid` to `h`.
    fn route_cid(&mut self, cid: ConnectionId, h: ConnectionHandle) {
        self.by_cid.insert(cid, h);
        if let Some(slot) = self.connections.get_mut(&h.0) {
            slot.cids.push(cid);
        }
    }

    /// The connection was called into: it may transmit, have events, and have a new
    /// deadline.
    fn touch(&mut self, h: usize) {
        self.mark_send_ready(h);
        self.mark_dirty(h);
    }

    fn mark_send_ready(&mut self, h: usize) {
        if let Some(slot) = self.connections.get_mut(&h) {
            if !slot.in_send_ready {
                slot.in_send_ready = true;
                self.send_ready.push_back(h);
            }
        }
    }

    /// Re-read the deadline and look for events at the next opportunity.
    fn mark_dirty(&mut self, h: usize) {
        if let Some(slot) = self.connections.get_mut(&h) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(h);
            }
        }
    }

    /// Re-file the deadlines of the connections called into, and queue them for events.
    fn refresh(&mut self) {
        // Swapped out and back so that its capacity is reused.
        let mut dirty = std::mem::take(&mut self.dirty);
        for h in dirty.drain(..) {
            let Some(slot) = self.connections.get_mut(&h) else {
                continue;
            };
            slot.dirty = false;
            let next = slot.conn.poll_timeout();
            if next != slot.timer {
                if let Some(old) = slot.timer {
                    self.timers.remove(&(old, h));
                }
                if let Some(new) = next {
                    self.timers.insert((new, h));
                }
                slot.timer = next;
            }
            if !slot.in_event_ready {
                slot.in_event_ready = true;
                self.event_ready.push_back(h);
            }
        }
        self.dirty = dirty;
    }

    fn deliver(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        if let Some(slot) = self.connections.get_mut(&h.0) {
            slot.conn
                .handle_datagram_at(now, remote, local_ip, ecn, data);
        }
        self.touch(h.0);
        self.process_endpoint_events(h);
    }

    fn process_endpoint_events(&mut self, h: ConnectionHandle) {
        loop {
            let Some(ev) = self
                .connections
                .get_mut(&h.0)
                .and_then(|s| s.conn.poll_endpoint_event())
            else {
                return;
            };
            match ev {
                EndpointEvent::NeedIdentifiers(n) => {
                    let mut cids = Vec::with_capacity(n);
                    for _ in 0..n {
                        // A generator without fresh IDs: issue fewer.
                        let Some(cid) = self.new_cid() else {
                            break;
                        };
                        let token = self.reset_token(&cid);
                        self.route_cid(cid, h);
                        cids.push((cid, token));
                    }
                    if let Some(s) = self.connections.get_mut(&h.0) {
                        s.conn.add_local_cids(cids);
                    }
                }
                EndpointEvent::ResetToken(token) => {
                    let Some(slot) = self.connections.get_mut(&h.0) else {
                        continue;
                    };
                    let old = std::mem::replace(&mut slot.reset_token, token);
                    if let Some(old) = old {
                        if self.by_reset_token.get(&old) == Some(&h) {
                            self.by_reset_token.remove(&old);
                        }
                    }
                    if let Some(new) = token {
                        self.by_reset_token.insert(new, h);
                    }
                }
                EndpointEvent::RetireCid(cid) => {
                    if self.by_cid.get(&cid) == Some(&h) {
                        self.by_cid.remove(&cid);
                    }
                    if let Some(s) = self.connections.get_mut(&h.0) {
                        s.cids.retain(|c| *c != cid);
                    }
                }
            }
        }
    }

    /// A fresh local CID that routes nowhere yet; `None` when the generator produced
    /// only IDs in use within [`MAX_CID_ATTEMPTS`] tries (a full or broken generator
    /// must not hang the endpoint).
    fn new_cid(&mut self) -> Option<ConnectionId> {
        for _ in 0..MAX_CID_ATTEMPTS {
            let cid = self.cid_gen.generate(&mut self.rng);
            if cid.is_empty() || !self.by_cid.contains_key(&cid) {
                return Some(cid);
            }
        }
        tracing::warn!("connection ID generator keeps colliding with IDs in use");
        None
    }

    /// Stateless reset token for a CID (RFC 9000 §10.3.2): HMAC of the CID under the
    /// endpoint's static key.
    fn reset_token(&self, cid: &ConnectionId) -> ResetToken {
        let tag = ring::hmac::sign(&self.reset_key, cid.as_bytes());
        let mut t = [0u8; RESET_TOKEN_SIZE];
        t.copy_from_slice(&tag.as_ref()[..RESET_TOKEN_SIZE]);
        ResetToken(t)
    }

    /// Check the token of a client's first Initial (RFC 9000 §8.1.3). `Err` for a Retry
    /// token that does not validate; NEW_TOKEN and unknown tokens that do not validate
    /// are ignored (see [`crate::token`]).
    fn check_initial_token(
        &mut self,
        now: Instant,
        server: &ServerConfig,
        remote: SocketAddr,
        dcid: &ConnectionId,
        data: &[u8],
    ) -> Result<InitialToken, ()> {
        let token = initial_token(data).unwrap_or(&[]);
        if token.is_empty() {
            return Ok(InitialToken::None);
        }
        let time = self.tokens.time(now);
        let key = self.tokens.key(server);
        match TokenKind::of(token) {
            Some(TokenKind::Retry) => match key.open_retry(remote, dcid, token, time) {
                Ok(t) => Ok(InitialToken::Retry(t)),
                Err(e) => {
                    tracing::debug!(%remote, %e, "invalid Retry token");
                    Err(())
                }
            },
            Some(TokenKind::NewToken) if key.open_new_token(remote.ip(), token, time).is_ok() => {
                self.tokens.stats.new_tokens_accepted += 1;
                Ok(InitialToken::NewToken)
            }
            _ => {
                self.tokens.stats.new_tokens_ignored += 1;
                Ok(InitialToken::None)
            }
        }
    }

    /// Answer an Initial with a Retry carrying a fresh token (RFC 9000 §8.1.2, §17.2.5).
    #[allow(clippy::too_many_arguments)]
    fn send_retry(
        &mut self,
        now: Instant,
        server: &ServerConfig,
        version: u32,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        dcid: &ConnectionId,
        scid: &ConnectionId,
    ) {
        // The client's next DCID; from the CID generator so that routing information it
        // encodes holds for the retried Initial too (random if it mints short CIDs).
        let retry_src_cid = if self.cid_gen.cid_len() >= 8 {
            let Some(cid) = self.new_cid() else {
                return; // the generator keeps colliding: drop, the client retransmits
            };
            cid
        } else {
            ConnectionId::random(&mut self.tokens.rng, 8)
        };
        if retry_src_cid == *dcid {
            return; // §17.2.5.1: must differ; the client will retransmit
        }
        let lifetime = ms(server.validation.retry_token_lifetime);
        let time = self.tokens.time(now);
        let nonce = self.tokens.nonce();
        let token = self.tokens.key(server).seal_retry(
            nonce,
            remote,
            &RetryToken {
                orig_dst_cid: *dcid,
                retry_src_cid,
                expires: time.saturating_add(lifetime),
            },
        );
        let mut buf = Vec::new();
        if packet::encode_retry(&mut buf, version, scid, &retry_src_cid, dcid, &token).is_ok() {
            self.tokens.stats.retries_sent += 1;
            self.stateless.push_back(StatelessResponse {
                destination: remote,
                src_ip: local_ip,
                data: buf,
            });
        }
    }

    /// Close a connection attempt statelessly with INVALID_TOKEN: an Initial packet with
    /// CONNECTION_CLOSE, protected with the keys of the client's DCID (RFC 9000 §10.2.3).
    fn refuse_initial(
        &mut self,
        version: u32,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        dcid: &ConnectionId,
        scid: &ConnectionId,
    ) {
        let Ok(keys) = initial_keys(version, dcid, Side::Server) else {
            return;
        };
        let src_cid = ConnectionId::random(&mut self.tokens.rng, 8);
        let header = packet::Header::Initial {
            version,
            dst_cid: *scid,
            src_cid,
            token: Bytes::new(),
            number: packet::PacketNumber::new(0, None),
        };
        let mut buf = Vec::new();
        let partial = header.encode(&mut buf);
        let payload_start = buf.len();
        crate::frame::Frame::ConnectionClose(crate::frame::ConnectionClose {
            error_code: crate::error::TransportErrorCode::INVALID_TOKEN,
            frame_type: None,
            reason: Bytes::from_static(b"invalid Retry token"),
        })
        .encode(&mut buf);
        let min = partial.min_payload_len();
        if buf.len() - payload_start < min {
            buf.resize(payload_start + min, 0);
        }
        if partial
            .finish(&mut buf, &*keys.local.header, &*keys.local.packet, 0)
            .is_ok()
        {
            self.stateless.push_back(StatelessResponse {
                destination: remote,
                src_ip: local_ip,
                data: buf,
            });
        }
    }

    /// NEW_TOKEN tokens for a client at `remote`, sent once its handshake is confirmed.
    fn new_tokens(
        &mut self,
        now: Instant,
        server: &ServerConfig,
        remote: SocketAddr,
    ) -> Vec<Bytes> {
        let n = server.validation.new_tokens;
        if n == 0 {
            return Vec::new();
        }
        let expires = self
            .tokens
            .time(now)
            .saturating_add(ms(server.validation.new_token_lifetime));
        (0..n)
            .map(|_| {
                let nonce = self.tokens.nonce();
                Bytes::from(
                    self.tokens
                        .key(server)
                        .seal_new_token(nonce, remote.ip(), expires),
                )
            })
            .collect()
    }

    fn stateless_reset(
        &mut self,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        dcid: &ConnectionId,
        received_len: usize,
    ) {
        // RFC 9000 §10.3: smaller than the packet that triggered it (no loops), at
        // least 21 bytes, unpredictable bits, short-header form.
        const MIN: usize = 1 + 20 + RESET_TOKEN_SIZE - 16 + 4; // ≥ 21 incl. token below
        if received_len <= MIN + RESET_TOKEN_SIZE || dcid.is_empty() {
            return;
        }
        let len = (received_len - 1).min(MIN + RESET_TOKEN_SIZE + 16);
        let mut buf = vec![0u8; len - RESET_TOKEN_SIZE];
        self.rng.fill_bytes(&mut buf);
        buf[0] = 0x40 | (buf[0] & 0x3f);
        buf.extend_from_slice(&self.reset_token(dcid).0);
        self.stateless.push_back(StatelessResponse {
            destination: remote,
            src_ip: local_ip,
            data: buf,
        });
    }
}

/// Version, DCID and SCID of a long header, bounds-checked.
fn parse_long_ids(data: &[u8]) -> Option<(u32, ConnectionId, ConnectionId)> {
    let version = u32::from_be_bytes(data.get(1..5)?.try_into().ok()?);
    let dlen = *data.get(5)? as usize;
    let dcid = ConnectionId::new(data.get(6..6 + dlen)?)?;
    let slen = *data.get(6 + dlen)? as usize;
    let scid = ConnectionId::new(data.get(7 + dlen..7 + dlen + slen)?)?;
    Some((version, dcid, scid))
}

/// The token of an Initial packet (RFC 9000 §17.2.2), bounds-checked; `None` when the
/// header is malformed.
fn initial_token(data: &[u8]) -> Option<&[u8]> {
    let dlen = usize::from(*data.get(5)?);
    let slen = usize::from(*data.get(6 + dlen)?);
    let mut r = data.get(7 + dlen + slen..)?;
    let len = crate::coding::VarInt::decode(&mut r).ok()?.into_inner();
    r.get(..usize::try_from(len).ok()?)
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Our transport parameters (RFC 9000 §18.2).
fn transport_params(
    t: &TransportConfig,
    e: &EndpointConfig,
    local_cid: ConnectionId,
    orig_dst_cid: Option<ConnectionId>,
    reset_token: Option<ResetToken>,
    preferred_address: Option<PreferredAddress>,
) -> TransportParameters {
    let v = VarInt::from_u64_clamped;
    TransportParameters {
        max_idle_timeout: v(t
            .max_idle_timeout
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        max_udp_payload_size: v(u64::from(e.max_udp_payload_size.max(1200))),
        initial_max_data: v(t.receive_window),
        initial_max_stream_data_bidi_local: v(t.stream_receive_window),
        initial_max_stream_data_bidi_remote: v(t.stream_receive_window),
        initial_max_stream_data_uni: v(t.stream_receive_window),
        initial_max_streams_bidi: v(t.max_concurrent_bidi_streams.min(1 << 60)),
        initial_max_streams_uni: v(t.max_concurrent_uni_streams.min(1 << 60)),
        ack_delay_exponent: v(u64::from(t.ack_delay_exponent.min(20))),
        max_ack_delay: v((t.max_ack_delay.as_millis() as u64).min((1 << 14) - 1)),
        active_connection_id_limit: v(t.active_connection_id_limit.max(2)),
        initial_src_cid: Some(local_cid),
        original_dst_cid: orig_dst_cid,
        stateless_reset_token: reset_token,
        max_datagram_frame_size: t.datagram_receive_buffer_size.map(|_| v(65_535)),
        disable_active_migration: !t.allow_active_migration,
        preferred_address,
        ..TransportParameters::default()
    }
}
