//! Connection-ID bookkeeping (RFC 9000 §5.1): the IDs we issued to the peer and the IDs
//! the peer issued to us, NEW_CONNECTION_ID and RETIRE_CONNECTION_ID.

use crate::cid::{ConnectionId, ResetToken};
use crate::error::TransportError;
use std::collections::{BTreeMap, VecDeque};

/// Sequence number of the CID carried in the preferred_address transport parameter
/// (RFC 9000 §5.1.1).
pub(crate) const PREFERRED_ADDRESS_SEQ: u64 = 1;

/// CIDs of both directions.
#[derive(Debug)]
pub(crate) struct CidState {
    /// Our CIDs that the peer may use, by sequence number.
    local: BTreeMap<u64, (ConnectionId, ResetToken)>,
    next_local_seq: u64,
    /// NEW_CONNECTION_ID frames to (re)send, by sequence number.
    pub(crate) pending_new: VecDeque<u64>,
    /// How many CIDs the peer accepts (its active_connection_id_limit).
    peer_limit: u64,
    /// CIDs requested from the endpoint and not yet delivered.
    requested: usize,
    /// The peer's CIDs we may use, by sequence number.
    remote: BTreeMap<u64, (ConnectionId, Option<ResetToken>)>,
    /// Sequence number of the remote CID we currently send to.
    active_remote: u64,
    /// Largest retire_prior_to seen.
    retire_prior_to: u64,
    /// RETIRE_CONNECTION_ID frames to (re)send.
    pub(crate) pending_retire: VecDeque<u64>,
    /// Retirements queued and not yet acknowledged (bounded, RFC 9000 §5.1.2).
    retire_unacked: u64,
    /// The SCID the peer used in its first packet (checked against its parameters).
    peer_initial_cid: ConnectionId,
    local_cid_len: usize,
    /// How many remote CIDs we are willing to store.
    local_limit: u64,
}

impl CidState {
    pub(crate) fn new(
        local: ConnectionId,
        local_token: ResetToken,
        remote: ConnectionId,
        local_cid_len: usize,
    ) -> Self {
        let mut l = BTreeMap::new();
        l.insert(0, (local, local_token));
        let mut r = BTreeMap::new();
        r.insert(0, (remote, None));
        Self {
            local: l,
            next_local_seq: 1,
            pending_new: VecDeque::new(),
            peer_limit: 2,
            requested: 0,
            remote: r,
            active_remote: 0,
            retire_prior_to: 0,
            pending_retire: VecDeque::new(),
            retire_unacked: 0,
            peer_initial_cid: remote,
            local_cid_len,
            local_limit: 8,
        }
    }

    /// Length of the CIDs we issue (to parse short headers).
    pub(crate) fn local_cid_len(&self) -> usize {
        self.local_cid_len
    }

    /// Set how many remote CIDs we store (our active_connection_id_limit).
    pub(crate) fn set_local_limit(&mut self, n: u64) {
        self.local_limit = n.max(2);
    }

    /// The CID we put in the DCID field.
    pub(crate) fn remote_cid(&self) -> ConnectionId {
        self.remote
            .get(&self.active_remote)
            .map(|e| e.0)
            .unwrap_or(ConnectionId::EMPTY)
    }

    /// Replace the initial remote CID (client: after the server's first Initial).
    pub(crate) fn set_initial_remote(&mut self, cid: ConnectionId) {
        self.remote.insert(0, (cid, None));
        self.peer_initial_cid = cid;
    }

    pub(crate) fn peer_initial_cid(&self) -> ConnectionId {
        self.peer_initial_cid
    }

    pub(crate) fn set_initial_remote_reset_token(&mut self, token: ResetToken) {
        if let Some(e) = self.remote.get_mut(&0) {
            e.1 = Some(token);
        }
    }

    /// The reset token of the remote CID we currently send to: the only one a
    /// stateless reset may carry (RFC 9000 §10.3.1: tokens of CIDs not used, or
    /// retired, must not be checked).
    pub(crate) fn active_reset_token(&self) -> Option<ResetToken> {
        self.remote.get(&self.active_remote).and_then(|e| e.1)
    }

    /// Whether `tail` (the last 16 bytes of a datagram) is a stateless reset for us,
    /// compared in constant time against the token of the CID in use.
    pub(crate) fn is_stateless_reset(&self, tail: &[u8]) -> bool {
        self.active_reset_token().is_some_and(|t| t.matches(tail))
    }

    /// Sequence numbers and reset tokens of the peer's CIDs we hold.
    #[cfg(test)]
    pub(crate) fn remote_tokens(&self) -> Vec<(u64, Option<ResetToken>)> {
        self.remote.iter().map(|(s, e)| (*s, e.1)).collect()
    }

    /// Our source CID for long headers.
    pub(crate) fn local_initial_cid(&self) -> ConnectionId {
        self.local
            .values()
            .next()
            .map(|e| e.0)
            .unwrap_or(ConnectionId::EMPTY)
    }

    pub(crate) fn local_cids(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.local.values().map(|e| e.0)
    }

    pub(crate) fn local_entry(&self, seq: u64) -> Option<(ConnectionId, ResetToken)> {
        self.local.get(&seq).copied()
    }

    pub(crate) fn set_peer_cid_limit(&mut self, limit: u64) {
        self.peer_limit = limit.max(1);
    }

    /// Whether we should issue more CIDs to the peer.
    pub(crate) fn wants_more(&self) -> bool {
        self.local_cid_len > 0
            && (self.local.len() as u64 + self.requested as u64) < self.peer_limit
    }

    /// How many CIDs to request from the endpoint now; marks them requested.
    pub(crate) fn take_wanted(&mut self) -> usize {
        let have = self.local.len() as u64 + self.requested as u64;
        let n = self.peer_limit.saturating_sub(have) as usize;
        self.requested += n;
        n
    }

    /// A fresh local CID from the endpoint: remember it and announce it. Returns its
    /// sequence number.
    pub(crate) fn issue(&mut self, cid: ConnectionId, token: ResetToken) -> u64 {
        self.requested = self.requested.saturating_sub(1);
        let seq = self.next_local_seq;
        self.next_local_seq += 1;
        self.local.insert(seq, (cid, token));
        self.pending_new.push_back(seq);
        seq
    }

    /// Server: the CID offered with the preferred address (sequence number 1).
    pub(crate) fn issue_preferred(&mut self, cid: ConnectionId, token: ResetToken) {
        self.local.insert(PREFERRED_ADDRESS_SEQ, (cid, token));
        self.next_local_seq = self.next_local_seq.max(PREFERRED_ADDRESS_SEQ + 1);
    }

    /// Client: the server's preferred-address CID (sequence number 1, RFC 9000 §5.1.1).
    pub(crate) fn add_preferred_remote(&mut self, cid: ConnectionId, token: ResetToken) {
        self.remote
            .entry(PREFERRED_ADDRESS_SEQ)
            .or_insert((cid, Some(token)));
    }

    /// The peer CID of sequence number `seq`, if we hold it.
    pub(crate) fn remote_by_seq(&self, seq: u64) -> Option<ConnectionId> {
        self.remote.get(&seq).map(|e| e.0)
    }

    /// Send to the peer CID `seq` from now on, retiring the one in use (RFC 9000 §9.5).
    pub(crate) fn use_remote(&mut self, seq: u64) {
        if seq == self.active_remote || !self.remote.contains_key(&seq) {
            return;
        }
        let old = std::mem::replace(&mut self.active_remote, seq);
        self.remote.remove(&old);
        self.pending_retire.push_back(old);
    }

    /// A new path: switch to an unused peer CID if the peer issued a spare one
    /// (RFC 9000 §9.5). Returns whether it switched.
    pub(crate) fn rotate_remote(&mut self) -> bool {
        if self.remote_cid().is_empty() {
            return false;
        }
        let next = self
            .remote
            .keys()
            .copied()
            .find(|&s| s != self.active_remote);
        match next {
            Some(seq) => {
                self.use_remote(seq);
                true
            }
            None => false,
        }
    }

    /// RETIRE_CONNECTION_ID from the peer. Returns the retired CID, if any.
    pub(crate) fn on_retire(
        &mut self,
        seq: u64,
        packet_dcid: &ConnectionId,
    ) -> Result<Option<ConnectionId>, TransportError> {
        if seq >= self.next_local_seq {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "RETIRE_CONNECTION_ID for a sequence number never issued",
            ));
        }
        match self.local.get(&seq) {
            Some((cid, _)) if cid == packet_dcid => Err(TransportError::PROTOCOL_VIOLATION(
                "RETIRE_CONNECTION_ID retires the CID of its own packet",
            )),
            Some(_) => {
                let (cid, _) = self.local.remove(&seq).expect("checked above");
                self.pending_new.retain(|s| *s != seq);
                Ok(Some(cid))
            }
            None => Ok(None),
        }
    }

    /// Most retirements we keep track of until they are acknowledged: RFC 9000 §5.1.2
    /// asks for at least twice our active_connection_id_limit and allows treating more
    /// as CONNECTION_ID_LIMIT_ERROR, so a peer flooding NEW_CONNECTION_ID frames with
    /// a growing retire_prior_to cannot grow the queue without bound.
    fn retire_limit(&self) -> u64 {
        (4 * self.local_limit).max(16)
    }

    /// Queue a RETIRE_CONNECTION_ID for a remote CID we stopped using.
    fn queue_retire(&mut self, seq: u64) -> Result<(), TransportError> {
        self.retire_unacked += 1;
        if self.retire_unacked > self.retire_limit() {
            return Err(TransportError::CONNECTION_ID_LIMIT_ERROR(
                "too many connection IDs to retire",
            ));
        }
        self.pending_retire.push_back(seq);
        Ok(())
    }

    /// Packets carrying `n` RETIRE_CONNECTION_ID frames were acknowledged.
    pub(crate) fn on_retire_acked(&mut self, n: usize) {
        self.retire_unacked = self.retire_unacked.saturating_sub(n as u64);
    }

    /// NEW_CONNECTION_ID from the peer.
    pub(crate) fn on_new_cid(
        &mut self,
        seq: u64,
        retire_prior_to: u64,
        cid: ConnectionId,
        token: ResetToken,
    ) -> Result<(), TransportError> {
        if self.remote_cid().is_empty() {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "NEW_CONNECTION_ID from a peer using zero-length CIDs",
            ));
        }
        if let Some((existing, t)) = self.remote.get(&seq) {
            if *existing != cid || t.is_some_and(|t| t != token) {
                return Err(TransportError::PROTOCOL_VIOLATION(
                    "NEW_CONNECTION_ID reuses a sequence number for a different CID",
                ));
            }
            return Ok(());
        }
        if seq < self.retire_prior_to {
            // Already retired: retire it right away (RFC 9000 §19.15).
            return self.queue_retire(seq);
        }
        self.remote.insert(seq, (cid, Some(token)));
        if retire_prior_to > self.retire_prior_to {
            self.retire_prior_to = retire_prior_to;
            let old: Vec<u64> = self
                .remote
                .range(..retire_prior_to)
                .map(|(s, _)| *s)
                .collect();
            for s in old {
                self.remote.remove(&s);
                self.queue_retire(s)?;
            }
            if self.active_remote < retire_prior_to {
                if let Some((&s, _)) = self.remote.iter().next() {
                    self.active_remote = s;
                }
            }
        }
        if self.remote.len() as u64 > self.local_limit {
            return Err(TransportError::CONNECTION_ID_LIMIT_ERROR(
                "peer issued more connection IDs than our limit",
            ));
        }
        Ok(())
    }
}
