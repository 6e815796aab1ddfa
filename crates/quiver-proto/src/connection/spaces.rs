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
pub(crate) struct KeyUpdate {
    /// Current key phase bit.
    pub(crate) phase: bool,
    /// Receive key of the previous phase, kept briefly for reordered packets.
    pub(crate) prev_remote: Option<Box<dyn PacketKey>>,
    /// Next-generation keys, derived ahead so a peer-initiated update can be detected.
    pub(crate) next_local: Option<Box<dyn PacketKey>>,
    pub(crate) next_remote: Option<Box<dyn PacketKey>>,
    /// Lowest packet number received or sent in the current phase.
    pub(crate) first_pn_in_phase: Option<u64>,
}

impl KeyUpdate {
    pub(crate) fn new() -> Self {
        Self {
            phase: false,
            prev_remote: None,
            next_local: None,
            next_remote: None,
            first_pn_in_phase: None,
        }
    }
}
