//! Per-packet-number-space and per-encryption-level state.
//!
//! QUIC has three encryption levels (Initial, Handshake, application data) and, with the
//! multipath extension, one packet-number space per path in the application level.
//! [`PnSpace`] is the packet-number side (numbers, ACKs, sent packets); [`Level`] is the
//! key and CRYPTO-stream side. The connection keeps the data-level spaces in a vector
//! indexed by [`PathId`](crate::shared::PathId), so adding paths needs no new model.

use super::crypto_stream::{CryptoRecv, CryptoSend};
use crate::recovery::{AckTracker, LossSpace};
use crate::shared::SpaceId;
use crate::streams::SentStreamFrames;
use rustls::quic::{DirectionalKeys, HeaderProtectionKey, PacketKey};
use std::ops::Range;

/// What one sent packet carried that may need retransmission or bookkeeping on ACK.
#[derive(Debug, Default)]
pub(crate) struct SentFrames {
    /// CRYPTO ranges (in this packet's level).
    pub(crate) crypto: Vec<Range<u64>>,
    /// Stream and flow-control frames.
    pub(crate) streams: SentStreamFrames,
    /// Largest packet number acknowledged by an ACK frame in this packet.
    pub(crate) largest_acked_in_ack: Option<u64>,
    /// HANDSHAKE_DONE was in the packet.
    pub(crate) handshake_done: bool,
    /// Sequence numbers of NEW_CONNECTION_ID frames.
    pub(crate) new_cids: Vec<u64>,
    /// Sequence numbers of RETIRE_CONNECTION_ID frames.
    pub(crate) retire_cids: Vec<u64>,
    /// A NEW_TOKEN frame's token (resent if lost, RFC 9000 §13.3).
    pub(crate) new_token: Option<bytes::Bytes>,
    /// The datagram carrying the packet was marked ECT(0) (ECN validation).
    pub(crate) ect0: bool,
}

/// One packet-number space.
pub(crate) struct PnSpace {
    pub(crate) id: SpaceId,
    /// Next packet number to use.
    pub(crate) next_pn: u64,
    /// Received packet numbers and ACK scheduling.
    pub(crate) acks: AckTracker,
    /// Sent, unacknowledged packets.
    pub(crate) sent: LossSpace<SentFrames>,
    /// Ack-eliciting probe packets owed because of a PTO.
    pub(crate) probes: u8,
    /// An immediate PING was requested.
    pub(crate) ping_pending: bool,
}

impl PnSpace {
    pub(crate) fn new(id: SpaceId) -> Self {
        let acks = match id {
            SpaceId::Data(_) => AckTracker::new(),
            _ => AckTracker::new_immediate(),
        };
        Self {
            id,
            next_pn: 0,
            acks,
            sent: LossSpace::new(),
            probes: 0,
            ping_pending: false,
        }
    }

    /// Take the next packet number.
    pub(crate) fn take_pn(&mut self) -> u64 {
        let pn = self.next_pn;
        self.next_pn += 1;
        pn
    }
}

/// Keys of one direction: header protection plus packet protection.
pub(crate) struct DirKeys {
    pub(crate) header: Box<dyn HeaderProtectionKey>,
    pub(crate) packet: Box<dyn PacketKey>,
}

impl From<DirectionalKeys> for DirKeys {
    fn from(k: DirectionalKeys) -> Self {
        DirKeys {
            header: k.header,
            packet: k.packet,
        }
    }
}

/// An encryption level: keys and CRYPTO stream.
#[derive(Default)]
pub(crate) struct Level {
    /// Keys to protect what we send.
    pub(crate) local: Option<DirKeys>,
    /// Keys to remove protection from what we receive.
    pub(crate) remote: Option<DirKeys>,
    pub(crate) crypto_send: CryptoSend,
    pub(crate) crypto_recv: CryptoRecv,
    /// Keys were discarded (RFC 9001 §4.9): packets of this level are now ignored.
    pub(crate) discarded: bool,
}

impl Level {
    pub(crate) fn has_keys(&self) -> bool {
        self.local.is_some() && !self.discarded
    }
}

/// 1-RTT key-update state (RFC 9001 §6).
///
/// Packet numbers received and sent are tracked separately: the receive side decides
/// which key opens a packet of the other phase (reordered old packet or peer-initiated
/// update), the send side decides when we may initiate the next update (RFC 9001 §6.1:
/// only once a packet protected with the current keys was acknowledged) and when the
/// confidentiality limit (RFC 9001 §6.6) forces one.
pub(crate) struct KeyUpdate {
    /// Current key phase bit.
    pub(crate) phase: bool,
    /// Receive key of the previous phase, kept briefly for reordered packets.
    pub(crate) prev_remote: Option<Box<dyn PacketKey>>,
    /// Next-generation keys, derived ahead so a peer-initiated update can be detected.
    pub(crate) next_local: Option<Box<dyn PacketKey>>,
    pub(crate) next_remote: Option<Box<dyn PacketKey>>,
    /// Lowest packet number received in the current phase; `None` after a local
    /// initiation until the peer's first packet in the new phase arrives.
    pub(crate) first_recv_pn: Option<u64>,
    /// First packet number we sent in the current phase.
    pub(crate) first_sent_pn: Option<u64>,
    /// A packet sent in the current phase was acknowledged (RFC 9001 §6.1).
    pub(crate) current_acked: bool,
    /// Packets protected with the current send key (confidentiality limit).
    pub(crate) sent_in_phase: u64,
    /// A local update was asked for and waits until RFC 9001 §6.1 allows it.
    pub(crate) requested: bool,
    /// 1-RTT and Handshake packets that failed authentication, across all keys
    /// (integrity limit, RFC 9001 §6.6).
    pub(crate) auth_failures: u64,
    /// We acknowledged (in a packet protected with the current keys) a packet the peer
    /// sent in the current phase; until then a peer's key update is premature
    /// (RFC 9001 §6.1, §6.2: KEY_UPDATE_ERROR).
    pub(crate) peer_phase_acked: bool,
}

impl KeyUpdate {
    pub(crate) fn new() -> Self {
        Self {
            phase: false,
            prev_remote: None,
            next_local: None,
            next_remote: None,
            first_recv_pn: None,
            first_sent_pn: None,
            current_acked: false,
            sent_in_phase: 0,
            requested: false,
            auth_failures: 0,
            peer_phase_acked: false,
        }
    }

    /// A packet protected with the current 1-RTT send key went out.
    pub(crate) fn on_sent(&mut self, pn: u64) {
        self.sent_in_phase += 1;
        if self.first_sent_pn.is_none() {
            self.first_sent_pn = Some(pn);
        }
    }

    /// We sent, with the current keys, an ACK frame whose largest number is `largest`.
    pub(crate) fn on_ack_sent(&mut self, largest: u64) {
        if self.first_recv_pn.is_some_and(|f| largest >= f) {
            self.peer_phase_acked = true;
        }
    }

    /// Packet `pn` of the data space was newly acknowledged.
    pub(crate) fn on_acked(&mut self, pn: u64) {
        if self.first_sent_pn.is_some_and(|f| pn >= f) {
            self.current_acked = true;
        }
    }

    /// Reset the per-phase bookkeeping after the keys changed.
    pub(crate) fn start_phase(&mut self, first_recv_pn: Option<u64>) {
        self.phase = !self.phase;
        self.first_recv_pn = first_recv_pn;
        self.peer_phase_acked = false;
        self.first_sent_pn = None;
        self.current_acked = false;
        self.sent_in_phase = 0;
    }
}
