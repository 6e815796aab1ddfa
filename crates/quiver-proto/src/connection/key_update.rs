//! 1-RTT key update and the AEAD limits (RFC 9001 §6).
//!
//! Keys of the next generation are derived ahead of time
//! ([`Connection::prepare_next_keys`]), so that a packet of the other key phase can be
//! tried with them without a timing side channel (RFC 9001 §6.3).
//!
//! - **Following** a peer: a packet of the other phase whose number is above every
//!   packet of the current phase opens with the next keys; we switch both directions.
//!   A lower number is a reordered packet of the previous phase, opened with the
//!   previous receive key, which is kept for three PTOs after the peer's first packet
//!   in the new phase (RFC 9001 §6.5).
//! - **Initiating**: [`Connection::initiate_key_update`], or automatically once the
//!   current send key protected 3/4 of the confidentiality limit. An update happens
//!   only after the handshake is confirmed and once a packet sent with the current
//!   keys was acknowledged (RFC 9001 §6.1); until then the request waits.
//! - **Premature peer updates**: a peer may update only after it saw an ACK of a packet
//!   it sent in the current phase, so an authentic packet of the next phase that arrives
//!   before we sent such an ACK closes the connection with KEY_UPDATE_ERROR (RFC 9001
//!   §6.1, §6.2). That covers two updates in a row and a flip on the first 1-RTT
//!   packets, before the handshake is confirmed.
//! - **Confidentiality limit** (RFC 9001 §6.6): a send key that reaches it without an
//!   update being possible is not used further: the connection closes with
//!   AEAD_LIMIT_REACHED.
//! - **Integrity limit**: packets that fail authentication are counted across all keys
//!   of the connection; beyond the limit the connection closes with AEAD_LIMIT_REACHED
//!   and processes no further packets.

use super::{Connection, Timer};
use crate::error::TransportError;
use crate::packet::Packet;
use crate::qlog::KeyUpdateTrigger;
use std::time::Instant;

/// Smallest configurable confidentiality limit: a key must protect a few packets, or a
/// connection could not wait for the acknowledgement an update needs (and a limit of
/// zero would close it at once).
const MIN_CONFIDENTIALITY_LIMIT: u64 = 16;

impl Connection {
    /// Start a 1-RTT key update (RFC 9001 §6.1).
    ///
    /// Returns `true` when the keys changed now. Returns `false` when the update has to
    /// wait, because the handshake is not confirmed yet or no packet protected with the
    /// current keys has been acknowledged: it then happens as soon as the RFC allows
    /// (at most one update is pending at a time), or never if the connection closes.
    pub fn initiate_key_update(&mut self) -> bool {
        if self.is_closed() {
            return false;
        }
        self.key_update.requested = true;
        self.try_local_key_update()
    }

    /// Whether RFC 9001 §6.1 lets us initiate a key update now.
    fn may_initiate_key_update(&self) -> bool {
        self.handshake_confirmed
            && !self.is_closed()
            && self.key_update.current_acked
            && self.levels[2].local.is_some()
            && self.levels[2].remote.is_some()
    }

    /// Perform a requested update if the RFC allows it now.
    fn try_local_key_update(&mut self) -> bool {
        if !self.key_update.requested || !self.may_initiate_key_update() {
            return false;
        }
        self.prepare_next_keys();
        let (Some(next_local), Some(next_remote)) = (
            self.key_update.next_local.take(),
            self.key_update.next_remote.take(),
        ) else {
            return false;
        };
        if let Some(local) = self.levels[2].local.as_mut() {
            local.packet = next_local;
        }
        if let Some(remote) = self.levels[2].remote.as_mut() {
            let old = std::mem::replace(&mut remote.packet, next_remote);
            self.key_update.prev_remote = Some(old);
        }
        // The peer has not answered yet: every packet of the other phase is an old one.
        self.key_update.start_phase(None);
        self.key_update.requested = false;
        // The old receive key is dropped three PTOs after the peer's first packet in
        // the new phase; until then it stays.
        self.timers.stop(Timer::KeyDiscard);
        self.prepare_next_keys();
        self.stats.key_updates += 1;
        self.stats.key_updates_initiated += 1;
        self.trace_key_update(None, self.stats.key_updates, KeyUpdateTrigger::LocalUpdate);
        tracing::debug!(side = ?self.side, phase = self.key_update.phase, "key update initiated");
        true
    }

    /// Packets the current 1-RTT send key may protect (RFC 9001 §6.6).
    fn confidentiality_limit(&self) -> u64 {
        let suite = self.levels[2]
            .local
            .as_ref()
            .map_or(u64::MAX, |k| k.packet.confidentiality_limit());
        self.config
            .confidentiality_limit
            .map_or(suite, |c| c.max(MIN_CONFIDENTIALITY_LIMIT).min(suite))
    }

    /// Packets failing authentication the connection tolerates (RFC 9001 §6.6).
    fn integrity_limit(&self) -> u64 {
        let suite = self.levels[2]
            .remote
            .as_ref()
            .or(self.levels[1].remote.as_ref())
            .map_or(u64::MAX, |k| k.packet.integrity_limit());
        self.config.integrity_limit.map_or(suite, |c| c.min(suite))
    }

    /// Before 1-RTT packets are written: update keys when asked to or when the
    /// confidentiality limit approaches; close when the limit is reached without an
    /// update being possible.
    pub(super) fn key_update_before_send(&mut self, now: Instant) {
        if !self.handshake_confirmed || self.is_closed() {
            return;
        }
        let limit = self.confidentiality_limit();
        let sent = self.key_update.sent_in_phase;
        if sent >= limit - limit / 4 {
            self.key_update.requested = true;
        }
        if self.try_local_key_update() {
            return;
        }
        if sent >= limit {
            self.close_with_error(
                now,
                TransportError::AEAD_LIMIT_REACHED("confidentiality limit of the 1-RTT key"),
            );
        }
    }

    /// A 1-RTT packet protected with the current send key went out.
    pub(super) fn key_update_on_sent(&mut self, pn: u64) {
        self.key_update.on_sent(pn);
    }

    /// A packet failed authentication: count it against the integrity limit.
    pub(super) fn on_auth_failure(&mut self) -> Result<(), TransportError> {
        self.key_update.auth_failures += 1;
        self.stats.auth_failures += 1;
        if self.key_update.auth_failures > self.integrity_limit() {
            return Err(TransportError::AEAD_LIMIT_REACHED(
                "integrity limit: too many packets failed authentication",
            ));
        }
        Ok(())
    }

    /// Decrypt a 1-RTT packet, handling key phase changes (RFC 9001 §6). `Ok(false)`:
    /// the packet failed authentication (and was counted).
    pub(super) fn decrypt_1rtt(
        &mut self,
        now: Instant,
        packet: &mut Packet,
        pn: u64,
    ) -> Result<bool, TransportError> {
        let opened = self.open_1rtt(now, packet, pn)?;
        if !opened {
            self.on_auth_failure()?;
        }
        Ok(opened)
    }

    fn open_1rtt(
        &mut self,
        now: Instant,
        packet: &mut Packet,
        pn: u64,
    ) -> Result<bool, TransportError> {
        let phase = packet.header.key_phase();
        if phase == self.key_update.phase {
            let Some(keys) = self.levels[2].remote.as_ref() else {
                return Ok(false);
            };
            if packet.decrypt(&*keys.packet, pn).is_err() {
                return Ok(false);
            }
            match self.key_update.first_recv_pn {
                None => {
                    // The peer's first packet after our update: it answered, so the
                    // previous receive key is needed only for reordered packets.
                    self.key_update.first_recv_pn = Some(pn);
                    if self.key_update.prev_remote.is_some() {
                        self.timers
                            .set(Timer::KeyDiscard, now + 3 * self.pto_duration());
                    }
                }
                Some(f) if pn < f => self.key_update.first_recv_pn = Some(pn),
                Some(_) => {}
            }
            return Ok(true);
        }
        // The other phase: an old packet of the previous phase, or a peer's update.
        if let Some(prev) = self.key_update.prev_remote.as_ref() {
            let old = self.key_update.first_recv_pn.is_none_or(|first| pn < first);
            if old {
                return Ok(packet.decrypt(&**prev, pn).is_ok());
            }
        }
        self.prepare_next_keys();
        let Some(next) = self.key_update.next_remote.as_ref() else {
            return Ok(false);
        };
        if packet.decrypt(&**next, pn).is_err() {
            return Ok(false);
        }
        // An authentic update the peer was not allowed to start yet: it cannot have
        // seen an acknowledgement of a packet it sent in the current phase, because we
        // sent none (RFC 9001 §6.1; §6.2 allows KEY_UPDATE_ERROR). This also covers an
        // update before the handshake is confirmed: the first phase has no such ACK
        // until we acknowledged a 1-RTT packet.
        if !self.key_update.peer_phase_acked {
            return Err(TransportError::KEY_UPDATE_ERROR(
                "peer updated keys before its current phase was acknowledged",
            ));
        }
        // The peer updated keys: follow (RFC 9001 §6.2).
        let (Some(next_remote), Some(next_local)) = (
            self.key_update.next_remote.take(),
            self.key_update.next_local.take(),
        ) else {
            return Ok(false);
        };
        if let Some(level) = self.levels[2].remote.as_mut() {
            let old = std::mem::replace(&mut level.packet, next_remote);
            self.key_update.prev_remote = Some(old);
        }
        if let Some(level) = self.levels[2].local.as_mut() {
            level.packet = next_local;
        }
        self.key_update.start_phase(Some(pn));
        self.prepare_next_keys();
        self.timers
            .set(Timer::KeyDiscard, now + 3 * self.pto_duration());
        self.stats.key_updates += 1;
        self.stats.key_updates_followed += 1;
        let generation = self.stats.key_updates;
        self.trace_key_update(Some(now), generation, KeyUpdateTrigger::RemoteUpdate);
        tracing::debug!(side = ?self.side, phase = self.key_update.phase, "following peer key update");
        Ok(true)
    }
}
