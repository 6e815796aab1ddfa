//! Path validation and connection migration (RFC 9000 §8.2, §9).
//!
//! A connection sends on one path at a time (multipath adds more). This module owns what
//! changes that path:
//!
//! - **Path validation** (§8.2): a PATH_CHALLENGE carries 8 bytes from the connection's
//!   random source (seeded by the endpoint's generator, like the endpoint's CIDs, so a
//!   seeded endpoint replays exactly); it is sent again every PTO until a PATH_RESPONSE
//!   echoes it or the validation deadline passes: `max(3 × PTO, 6 × initial RTT)`
//!   (§8.2.4). A PATH_RESPONSE received on any path validates the path the challenge
//!   was sent on (§8.2.2). Datagrams carrying either frame are padded to 1200 bytes
//!   unless the path's anti-amplification budget is smaller (§8.2.1, §8.2.2); a
//!   PATH_RESPONSE leaves towards the address and from the local IP its challenge came
//!   from, never on the current path if that differs.
//! - **Following the peer** (server, §9.3): a 1-RTT packet with a non-probing frame and
//!   the largest packet number so far, from a new address, moves sending to that
//!   address at once, but the path stays *validating*: until the peer echoes our
//!   challenge it gets at most 3× the bytes received from it (§8.1, §9.3.1), and the
//!   previous validated path is kept. If validation fails the connection reverts to it
//!   (§9.3.2); if the peer sends again from the previous address it is taken back
//!   immediately. A reordered packet with a smaller packet number never moves the path,
//!   so a late packet of the old path cannot switch back (§9.3). Probing packets
//!   (PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID, PADDING only) never move it.
//! - **Congestion state** (§9.4): when the peer's IP changes, the congestion controller,
//!   RTT estimate and pacer restart from their initial state (the previous ones are kept
//!   with the previous path and restored on a revert); a port-only change (typical NAT
//!   rebinding) keeps them.
//! - **Connection IDs** (§9.5): on a new path the connection switches to an unused peer
//!   CID when the peer issued a spare one, and retires the old one; without a spare it
//!   continues with the current CID (allowed for NAT rebinding).
//! - **Client-initiated migration** ([`Connection::migrate`], §9.2): after the handshake
//!   is confirmed and only if the peer did not send `disable_active_migration`, the
//!   client takes a fresh CID, restarts congestion state when its IP changed, and
//!   validates the new path with a PATH_CHALLENGE (sent with data; the server's
//!   PATH_RESPONSE validates it).
//! - **Server's preferred address** (§9.6): a client probes the address the server
//!   advertised (same address family as the current path) with the CID that came with
//!   it, once the handshake is confirmed, and moves there on the PATH_RESPONSE; on
//!   failure it stays where it is. A server moves its sending IP to the preferred
//!   address when the client's non-probing packets arrive there.
//! - **`disable_active_migration` on a server** (§18.2): a server that sent it cannot
//!   tell NAT rebinding from migration by the address alone, so it looks at the
//!   destination CID: a packet from a new address that still carries the CID of the
//!   current path is NAT rebinding and is followed (validated as above); one with a
//!   different CID is an active migration the server forbade, and it is dropped
//!   without a stateless reset (the RFC's first option).

use super::{Connection, Path, State, Timer, Transmit};
use crate::cc::{Controller, Pacer};
use crate::cid::ConnectionId;
use crate::frame::{Frame, PacketKind};
use crate::packet::{Header, PacketNumber};
use crate::recovery::{RttEstimator, SentPacket};
use crate::shared::Epoch;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Datagrams carrying PATH_CHALLENGE or PATH_RESPONSE are padded to this size (§8.2.1).
const PROBE_DATAGRAM: usize = 1200;
/// AEAD tag length of every QUIC v1 cipher suite.
const TAG_LEN: usize = 16;
/// PATH_RESPONSEs owed at most (more challenges are ignored, like a flood).
const MAX_RESPONSES: usize = 4;

/// Validation state of the path the connection sends on (RFC 9000 §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// A PATH_CHALLENGE is outstanding (or, on a server before the handshake, the
    /// client's address is not validated yet); a server sends at most 3× what it
    /// received on this path.
    Validating,
    /// The peer's address on this path is validated.
    Validated,
    /// Validation failed and there was no validated path to go back to.
    Failed,
}

/// Why [`Connection::migrate`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    /// Only a client initiates migration (RFC 9000 §9).
    #[error("only a client can migrate")]
    NotClient,
    /// Migration before the handshake is confirmed is forbidden (RFC 9000 §9).
    #[error("the handshake is not confirmed yet")]
    HandshakeNotConfirmed,
    /// The peer sent `disable_active_migration` (RFC 9000 §18.2).
    #[error("the peer disabled active migration")]
    DisabledByPeer,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
}

/// An outstanding PATH_CHALLENGE.
#[derive(Debug, Clone, Copy)]
struct Challenge {
    token: [u8; 8],
    /// Validation fails when no PATH_RESPONSE arrived by then (§8.2.4).
    deadline: Instant,
    /// When to send the challenge again.
    resend_at: Instant,
    /// The challenge must go out with the next transmit.
    pending: bool,
}

/// The last validated path, kept while a new one is validated.
struct SavedPath {
    path: Path,
    /// Its congestion controller, RTT estimate and pacer, if the move replaced them.
    congestion: Option<(Box<dyn Controller>, RttEstimator, Pacer)>,
}

/// A path probed without sending data on it (client: the server's preferred address).
#[derive(Debug, Clone, Copy)]
struct Probe {
    remote: SocketAddr,
    /// Sequence number of the peer CID used on it.
    cid_seq: u64,
    challenge: Challenge,
}

/// A PATH_RESPONSE owed to the path a challenge came from.
#[derive(Debug, Clone, Copy)]
struct Response {
    remote: SocketAddr,
    local_ip: Option<IpAddr>,
    token: [u8; 8],
    /// Bytes that may be sent to `remote` if it is not the current path (3× received).
    budget: u64,
}

/// Path validation and migration state of a connection.
pub(super) struct Migration {
    rng: StdRng,
    /// Challenge validating the current path.
    challenge: Option<Challenge>,
    /// Validation of the current path failed with nothing to revert to.
    failed: bool,
    prev: Option<SavedPath>,
    probe: Option<Probe>,
    responses: VecDeque<Response>,
    /// Bytes received from the most recent address other than the current path's.
    other_rx: Option<(SocketAddr, u64)>,
    /// The packet being processed carried a non-probing frame.
    rx_non_probing: bool,
    /// Source and local IP of the packet being processed.
    rx_remote: Option<(SocketAddr, Option<IpAddr>)>,
    /// DCID of the latest 1-RTT packet received on the current path.
    path_dcid: Option<ConnectionId>,
    /// The client considered the server's preferred address (done once).
    preferred_considered: bool,
}

impl Migration {
    pub(super) fn new(seed: [u8; 32]) -> Self {
        Self {
            rng: StdRng::from_seed(seed),
            challenge: None,
            failed: false,
            prev: None,
            probe: None,
            responses: VecDeque::new(),
            other_rx: None,
            rx_non_probing: false,
            rx_remote: None,
            path_dcid: None,
            preferred_considered: false,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut times = Vec::with_capacity(4);
        if let Some(c) = &self.challenge {
            times.extend([c.deadline, c.resend_at]);
        }
        if let Some(p) = &self.probe {
            times.extend([p.challenge.deadline, p.challenge.resend_at]);
        }
        times.into_iter().min()
    }
}

/// Frames that may appear in a probing packet (RFC 9000 §9.1).
pub(super) fn is_probing(frame: &Frame) -> bool {
    matches!(
        frame,
        Frame::Padding(_)
            | Frame::PathChallenge(_)
            | Frame::PathResponse(_)
            | Frame::NewConnectionId(_)
    )
}

impl Connection {
    // ---- public API ----

    /// Validation state of the path in use.
    pub fn path_state(&self) -> PathState {
        if self.migration.challenge.is_some() {
            PathState::Validating
        } else if self.migration.failed {
            PathState::Failed
        } else if self.path.validated {
            PathState::Validated
        } else {
            PathState::Validating
        }
    }

    /// Whether the handshake is confirmed (RFC 9001 §4.1.2): from then on a client may
    /// [`migrate`](Connection::migrate).
    pub fn is_handshake_confirmed(&self) -> bool {
        self.handshake_confirmed
    }

    /// Whether the client is probing the server's preferred address (RFC 9000 §9.6).
    pub fn is_probing_preferred_address(&self) -> bool {
        self.migration.probe.is_some()
    }

    /// Client-initiated migration (RFC 9000 §9.2): our local address changed (the caller
    /// now sends from a new socket; `ip_changed` says whether the IP changed, not only
    /// the port). The connection takes an unused peer CID if one is available (§9.5),
    /// restarts congestion control and the RTT estimate when the IP changed (§9.4), and
    /// validates the new path with a PATH_CHALLENGE.
    ///
    /// Refused before the handshake is confirmed, on a server, and when the peer sent
    /// `disable_active_migration`.
    pub fn migrate(&mut self, now: Instant, ip_changed: bool) -> Result<(), MigrateError> {
        self.migration_allowed()?;
        self.cids.rotate_remote();
        if ip_changed {
            self.reset_congestion(now);
        }
        self.stats.migrations += 1;
        self.migration.failed = false;
        self.start_challenge(now);
        // Something must go out from the new address soon, so the peer learns it.
        if let Some(space) = self.spaces.get_mut(2) {
            space.ping_pending = true;
        }
        Ok(())
    }

    /// Whether [`Connection::migrate`] would be accepted now (it changes nothing).
    pub fn migration_allowed(&self) -> Result<(), MigrateError> {
        if self.is_closed() {
            return Err(MigrateError::Closed);
        }
        if self.side.is_server() {
            return Err(MigrateError::NotClient);
        }
        if !self.handshake_confirmed {
            return Err(MigrateError::HandshakeNotConfirmed);
        }
        if self
            .peer_params
            .as_ref()
            .is_some_and(|p| p.disable_active_migration)
        {
            return Err(MigrateError::DisabledByPeer);
        }
        Ok(())
    }

    // ---- receive side (called from recv.rs) ----

    /// Account a received datagram to its path (anti-amplification, §8.1).
    pub(super) fn path_on_datagram(&mut self, remote: SocketAddr, len: u64) {
        if remote == self.path.remote {
            self.path.bytes_received += len;
            return;
        }
        match &mut self.migration.other_rx {
            Some((addr, n)) if *addr == remote => *n += len,
            other => *other = Some((remote, len)),
        }
    }

    /// Before the frames of an authenticated 1-RTT packet are processed: may it be
    /// processed at all? (A server that disabled active migration drops packets of an
    /// active migration, see the module docs.)
    pub(super) fn path_before_frames(
        &mut self,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        dst_cid: &ConnectionId,
    ) -> bool {
        self.migration.rx_non_probing = false;
        self.migration.rx_remote = Some((remote, local_ip));
        if self.side.is_server()
            && remote != self.path.remote
            && !self.config.allow_active_migration
            && self.migration.path_dcid.is_some_and(|c| c != *dst_cid)
        {
            tracing::debug!(%remote, "active migration refused (disable_active_migration)");
            return false;
        }
        true
    }

    /// Note a frame of the packet being processed.
    pub(super) fn path_on_frame(&mut self, frame: &Frame) {
        if !is_probing(frame) {
            self.migration.rx_non_probing = true;
        }
    }

    /// After the frames of an authenticated 1-RTT packet were processed: follow the
    /// peer to a new address (server), or move the sending IP (preferred address).
    pub(super) fn path_after_frames(
        &mut self,
        now: Instant,
        largest: bool,
        dst_cid: &ConnectionId,
    ) {
        let Some((remote, local_ip)) = self.migration.rx_remote.take() else {
            return;
        };
        if remote == self.path.remote {
            self.migration.path_dcid = Some(*dst_cid);
            if largest
                && self.migration.rx_non_probing
                && local_ip.is_some()
                && local_ip != self.path.local_ip
                && self.side.is_server()
            {
                // The client moved to another address of ours (the preferred address,
                // §9.6.2): answer from there.
                self.path.local_ip = local_ip;
            }
            return;
        }
        if !self.side.is_server()
            || !largest
            || !self.migration.rx_non_probing
            || self.state != State::Established
            || !self.handshake_confirmed
        {
            return;
        }
        self.migration.path_dcid = Some(*dst_cid);
        self.follow_peer(now, remote, local_ip);
    }

    /// A PATH_CHALLENGE arrived: owe a PATH_RESPONSE to the path it came from.
    pub(super) fn path_on_challenge(&mut self, token: [u8; 8]) {
        if self.migration.responses.len() >= MAX_RESPONSES {
            return;
        }
        let (remote, local_ip) = self
            .migration
            .rx_remote
            .unwrap_or((self.path.remote, self.path.local_ip));
        let budget = match self.migration.other_rx {
            Some((addr, n)) if addr == remote => 3 * n,
            _ => 0,
        };
        // One response per path is enough: a newer challenge replaces an older one.
        self.migration
            .responses
            .retain(|r| r.remote != remote || r.local_ip != local_ip);
        self.migration.responses.push_back(Response {
            remote,
            local_ip,
            token,
            budget,
        });
    }

    /// A PATH_RESPONSE arrived (from any path, §8.2.2).
    pub(super) fn path_on_response(&mut self, now: Instant, token: [u8; 8]) {
        if self.migration.challenge.is_some_and(|c| c.token == token) {
            self.migration.challenge = None;
            self.migration.prev = None;
            self.migration.failed = false;
            self.path.validated = true;
            self.stats.paths_validated += 1;
            tracing::debug!(side = ?self.side, remote = %self.path.remote, "path validated");
        } else if self
            .migration
            .probe
            .is_some_and(|p| p.challenge.token == token)
        {
            let Some(probe) = self.migration.probe.take() else {
                return;
            };
            self.stats.paths_validated += 1;
            self.move_to_probed(now, probe);
        }
        // Anything else: a stale or unknown token, ignored (§8.2.2 allows no error).
        self.arm_path_timer();
    }

    // ---- timers ----

    /// The path-validation timer fired.
    pub(super) fn path_on_timeout(&mut self, now: Instant) {
        let pto = self.pto_duration();
        if let Some(c) = self.migration.challenge.as_mut() {
            if c.deadline <= now {
                self.migration.challenge = None;
                self.stats.path_validation_failures += 1;
                self.path_validation_failed(now);
            } else if c.resend_at <= now {
                c.pending = true;
                c.resend_at = (now + pto).min(c.deadline);
            }
        }
        if let Some(p) = self.migration.probe.as_mut() {
            if p.challenge.deadline <= now {
                tracing::debug!(remote = %p.remote, "probed path failed validation");
                self.migration.probe = None;
                self.stats.path_validation_failures += 1;
            } else if p.challenge.resend_at <= now {
                p.challenge.pending = true;
                p.challenge.resend_at = (now + pto).min(p.challenge.deadline);
            }
        }
        self.arm_path_timer();
    }

    pub(super) fn arm_path_timer(&mut self) {
        self.timers
            .set_opt(Timer::PathValidation, self.migration.next_deadline());
    }

    // ---- handshake ----

    /// Handshake confirmed (client): consider the server's preferred address (§9.6).
    pub(super) fn path_on_handshake_confirmed(&mut self, now: Instant) {
        if self.side.is_server() || self.migration.preferred_considered {
            return;
        }
        self.migration.preferred_considered = true;
        if !self.config.migrate_to_preferred_address {
            return;
        }
        let Some(pa) = self.peer_params.as_ref().and_then(|p| p.preferred_address) else {
            return;
        };
        // Same address family as the current path: the socket can reach it.
        let target = match self.path.remote {
            SocketAddr::V4(_) => pa.address_v4.map(SocketAddr::V4),
            SocketAddr::V6(_) => pa.address_v6.map(SocketAddr::V6),
        };
        let Some(remote) = target else {
            return;
        };
        if remote == self.path.remote {
            return;
        }
        let challenge = self.new_challenge(now);
        self.migration.probe = Some(Probe {
            remote,
            cid_seq: crate::connection::cids::PREFERRED_ADDRESS_SEQ,
            challenge,
        });
        self.arm_path_timer();
    }

    // ---- send side (called from send.rs) ----

    /// A datagram of path frames (PATH_CHALLENGE, PATH_RESPONSE), if one is due.
    pub(super) fn poll_path_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        if self.state != State::Established || !self.levels[Epoch::Data.idx()].has_keys() {
            return None;
        }
        // Responses first: the peer is waiting for them.
        while let Some(r) = self.migration.responses.pop_front() {
            let current = r.remote == self.path.remote;
            let budget = if current {
                self.amplification_budget(PROBE_DATAGRAM) as u64
            } else {
                r.budget
            };
            let dcid = self.cids.remote_cid();
            let mut frames = vec![Frame::PathResponse(r.token)];
            if current {
                if let Some(c) = self.migration.challenge.as_mut().filter(|c| c.pending) {
                    frames.push(Frame::PathChallenge(c.token));
                    c.pending = false;
                }
            }
            if let Some(t) =
                self.write_path_datagram(now, buf, r.remote, r.local_ip, dcid, &frames, budget)
            {
                if current {
                    self.path.bytes_sent += t.size as u64;
                }
                return Some(t);
            }
        }
        if self.migration.challenge.is_some_and(|c| c.pending) {
            let budget = self.amplification_budget(PROBE_DATAGRAM) as u64;
            let token = self
                .migration
                .challenge
                .map(|c| c.token)
                .unwrap_or_default();
            let (remote, local_ip, dcid) =
                (self.path.remote, self.path.local_ip, self.cids.remote_cid());
            let frames = [Frame::PathChallenge(token)];
            if let Some(t) =
                self.write_path_datagram(now, buf, remote, local_ip, dcid, &frames, budget)
            {
                if let Some(c) = self.migration.challenge.as_mut() {
                    c.pending = false;
                }
                self.path.bytes_sent += t.size as u64;
                return Some(t);
            }
        }
        if let Some(p) = self.migration.probe.filter(|p| p.challenge.pending) {
            let Some(dcid) = self.cids.remote_by_seq(p.cid_seq) else {
                // The peer retired the CID of the probe: give it up.
                self.migration.probe = None;
                self.arm_path_timer();
                return None;
            };
            let frames = [Frame::PathChallenge(p.challenge.token)];
            let t = self.write_path_datagram(
                now,
                buf,
                p.remote,
                None,
                dcid,
                &frames,
                PROBE_DATAGRAM as u64,
            )?;
            if let Some(p) = self.migration.probe.as_mut() {
                p.challenge.pending = false;
            }
            return Some(t);
        }
        None
    }

    /// One short-header packet with `frames`, padded to 1200 bytes or `budget`,
    /// whichever is smaller, to `remote`. Tracked in the data space (so that its ACK is
    /// valid) but neither ack-eliciting nor in flight: its loss is recovered by the
    /// challenge timer, not by loss detection.
    #[allow(clippy::too_many_arguments)]
    fn write_path_datagram(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        dcid: ConnectionId,
        frames: &[Frame],
        budget: u64,
    ) -> Option<Transmit> {
        let size = usize::try_from(budget)
            .unwrap_or(usize::MAX)
            .min(PROBE_DATAGRAM);
        let frames_len: usize = frames.iter().map(Frame::encoded_len).sum();
        let header_len = 1 + dcid.len() + 4;
        if size < header_len + frames_len + TAG_LEN + 4 {
            return None; // the amplification limit leaves no room
        }
        buf.clear();
        let space_idx = Self::space_for_epoch(Epoch::Data);
        let pn = self.spaces[space_idx].take_pn();
        let number = PacketNumber::new(pn, self.spaces[space_idx].sent.largest_acked());
        let header = Header::Short {
            spin: false,
            key_phase: self.key_update.phase,
            dst_cid: dcid,
            number,
        };
        let partial = header.encode(buf);
        let payload_start = buf.len();
        for f in frames {
            debug_assert!(f.allowed_in(PacketKind::OneRtt));
            f.encode(buf);
        }
        let target = size - TAG_LEN;
        if buf.len() < target {
            buf.resize(target, 0); // PADDING frames are zero bytes
        }
        let min = partial.min_payload_len();
        if buf.len() - payload_start < min {
            buf.resize(payload_start + min, 0);
        }
        let keys = self.levels[Epoch::Data.idx()].local.as_ref()?;
        if partial
            .finish(buf, &*keys.header, &*keys.packet, pn)
            .is_err()
        {
            buf.clear();
            return None;
        }
        let size = buf.len();
        self.spaces[space_idx].sent.on_packet_sent(
            pn,
            SentPacket {
                time_sent: now,
                size: size as u16,
                ack_eliciting: false,
                in_flight: false,
                rate: None,
                info: Default::default(),
            },
        );
        self.stats.packets_tx += 1;
        self.stats.udp_tx += 1;
        self.stats.bytes_tx += size as u64;
        Some(Transmit {
            destination: remote,
            ecn: None,
            size,
            segment_size: None,
            src_ip: local_ip,
        })
    }

    // ---- internals ----

    fn new_challenge(&mut self, now: Instant) -> Challenge {
        let mut token = [0u8; 8];
        self.migration.rng.fill_bytes(&mut token);
        let pto = self.pto_duration();
        // §8.2.4: three times the larger of the current PTO and the PTO of a new path
        // (from the initial RTT): 6 × initial RTT covers the latter.
        let timeout = (3 * pto).max(6 * self.config.initial_rtt);
        Challenge {
            token,
            deadline: now + timeout,
            resend_at: now + pto,
            pending: true,
        }
    }

    fn start_challenge(&mut self, now: Instant) {
        let c = self.new_challenge(now);
        self.migration.challenge = Some(c);
        self.arm_path_timer();
    }

    /// Server: a non-probing packet with the largest packet number came from `remote`.
    fn follow_peer(&mut self, now: Instant, remote: SocketAddr, local_ip: Option<IpAddr>) {
        let back_to_prev = self
            .migration
            .prev
            .as_ref()
            .is_some_and(|p| p.path.remote == remote);
        if back_to_prev {
            // The peer returned to the last validated path: take it back as it was.
            if let Some(saved) = self.migration.prev.take() {
                self.restore(saved);
            }
            self.migration.challenge = None;
            self.arm_path_timer();
            tracing::debug!(%remote, "peer returned to the previous path");
            return;
        }
        let rx = match self.migration.other_rx.take() {
            Some((addr, n)) if addr == remote => n,
            _ => 0,
        };
        let ip_changed = remote.ip() != self.path.remote.ip();
        let new_path = Path {
            remote,
            local_ip: local_ip.or(self.path.local_ip),
            mtu: self.path.mtu,
            validated: false,
            bytes_received: rx,
            bytes_sent: 0,
        };
        let old_path = std::mem::replace(&mut self.path, new_path);
        if ip_changed {
            // RFC 9000 §13.4.2: ECN is validated again on a new path.
            self.ecn.restart();
        }
        // §9.4: a new IP is a new network path, congestion state starts afresh; a
        // port-only change keeps it.
        let congestion = ip_changed.then(|| {
            let (cc, rtt, pacer) = self.fresh_congestion(now);
            self.forget_old_path_flight();
            (
                std::mem::replace(&mut self.cc, cc),
                std::mem::replace(&mut self.rtt, rtt),
                std::mem::replace(&mut self.pacer, pacer),
            )
        });
        if old_path.validated {
            // Keep the last validated path (and its congestion state) to revert to.
            self.migration.prev = Some(SavedPath {
                path: old_path,
                congestion,
            });
        }
        self.cids.rotate_remote();
        self.stats.migrations += 1;
        self.migration.failed = false;
        tracing::debug!(%remote, ip_changed, "peer moved to a new address: validating");
        self.start_challenge(now);
    }

    /// The current path failed validation.
    fn path_validation_failed(&mut self, _now: Instant) {
        if let Some(saved) = self.migration.prev.take() {
            tracing::debug!(
                failed = %self.path.remote,
                back = %saved.path.remote,
                "path validation failed: back to the last validated path"
            );
            self.restore(saved);
        } else {
            tracing::debug!(remote = %self.path.remote, "path validation failed");
            self.migration.failed = true;
        }
    }

    fn restore(&mut self, saved: SavedPath) {
        self.path = saved.path;
        if let Some((cc, rtt, pacer)) = saved.congestion {
            self.cc = cc;
            self.rtt = rtt;
            self.pacer = pacer;
        }
    }

    /// Client: the preferred address answered; send everything there from now on.
    fn move_to_probed(&mut self, now: Instant, probe: Probe) {
        let ip_changed = probe.remote.ip() != self.path.remote.ip();
        self.path = Path {
            remote: probe.remote,
            local_ip: None,
            mtu: self.path.mtu,
            validated: true,
            bytes_received: 0,
            bytes_sent: 0,
        };
        self.cids.use_remote(probe.cid_seq);
        if ip_changed {
            self.reset_congestion(now);
        }
        self.stats.migrations += 1;
        tracing::debug!(remote = %probe.remote, "moved to the server's preferred address");
    }

    fn config_cc(&self, now: Instant) -> Box<dyn Controller> {
        self.config.congestion_controller.build(now, self.path.mtu)
    }

    fn fresh_congestion(&self, now: Instant) -> (Box<dyn Controller>, RttEstimator, Pacer) {
        let mut rtt = RttEstimator::new(self.config.initial_rtt);
        rtt.set_max_ack_delay(self.peer_max_ack_delay);
        (
            self.config_cc(now),
            rtt,
            Pacer::with_config(self.config.pacing),
        )
    }

    /// §9.4: a new IP is a new network path; start congestion control and RTT afresh.
    fn reset_congestion(&mut self, now: Instant) {
        let (cc, rtt, pacer) = self.fresh_congestion(now);
        self.cc = cc;
        self.rtt = rtt;
        self.pacer = pacer;
        self.forget_old_path_flight();
        // RFC 9000 §13.4.2: ECN is validated again on a new path.
        self.ecn.restart();
    }

    /// Packets of the previous path no longer count against the new path's window.
    fn forget_old_path_flight(&mut self) {
        for space in self.spaces.iter_mut().skip(Epoch::Data.idx()) {
            space.sent.forget_in_flight();
        }
    }
}
