//! 0-RTT: early application data on a resumed session (RFC 9001 §4.6, RFC 9000 §7.4.1).
//!
//! **Client.** When rustls resumes a session from a ticket that allows early data, it
//! derives the 0-RTT keys while it writes the ClientHello and hands back the transport
//! parameters the server sent on the connection that issued the ticket. The connection
//! applies the subset RFC 9000 §7.4.1 lets a client remember (flow-control and stream
//! limits, `max_datagram_frame_size`), so streams can be opened and written and
//! datagrams sent before the handshake ends; such data goes out in 0-RTT packets (long
//! header, application packet-number space) until the 1-RTT keys arrive. At the end of
//! the handshake TLS says whether the server accepted early data:
//! - accepted: the 0-RTT packets are acknowledged like any 1-RTT packet; the server's
//!   new parameters must not lower a remembered limit (checked: PROTOCOL_VIOLATION);
//! - rejected: the server never processed them. Every 0-RTT packet is taken out of
//!   flight without a congestion response and its stream data, FINs and control frames
//!   are queued again, so they are resent in 1-RTT packets and arrive exactly once; the
//!   remembered limits are replaced by the server's real ones (flow-control credit is
//!   recomputed, not added to). If those are lower than what was already written early
//!   the connection closes with INTERNAL_ERROR (a Quiver server does not lower them
//!   under a ticket: it rejects early data instead, see below). DATAGRAMs sent early are
//!   lost, as datagrams may be.
//!
//! **Server.** The ClientHello decides: if rustls accepted early data (ticket found in
//! this server's single-use store, fresh, same ALPN and cipher suite, and
//! [`crate::config::ServerConfig::zero_rtt`] on) the 0-RTT receive keys are installed and
//! 0-RTT packets are processed like 1-RTT ones restricted to the frames RFC 9000 §12.4
//! allows; they are acknowledged in 1-RTT packets. The endpoint also rejects early data
//! when its transport limits are now below limits it advertised earlier under the same
//! TLS configuration, which a ticket may carry (RFC 9000 §7.4.1: a server accepting
//! 0-RTT must not reduce them). Otherwise 0-RTT packets are dropped
//! (and counted). The keys are discarded when the first 1-RTT packet arrives (RFC 9001
//! §4.9.3).

use super::spaces::DirKeys;
use super::Connection;
use crate::error::TransportError;
use crate::frame::PacketKind;
use crate::transport_params::TransportParameters;

/// Where 0-RTT stands on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroRttStatus {
    /// No 0-RTT on this connection: a client had no ticket allowing early data (or its
    /// TLS configuration does not enable early data); a server did not accept any (the
    /// client offered none, or it was refused).
    #[default]
    Unavailable,
    /// Client: 0-RTT keys are available and data written now is sent early; whether the
    /// server accepts it is known when the handshake completes.
    Pending,
    /// The server accepted early data.
    Accepted,
    /// Client: the server rejected early data; what was sent early was resent in 1-RTT.
    Rejected,
}

/// Per-connection 0-RTT state.
#[derive(Default)]
pub(super) struct ZeroRtt {
    pub(super) status: ZeroRttStatus,
    /// Client: protects 0-RTT packets; server: removes their protection.
    pub(super) keys: Option<DirKeys>,
    /// Client: the server parameters remembered with the ticket (while pending).
    pub(super) remembered: Option<TransportParameters>,
    /// Server: the ClientHello was processed, so the decision is made.
    pub(super) decided: bool,
}

impl Connection {
    /// Client, right after the ClientHello was written: use 0-RTT if TLS offers keys.
    pub(super) fn init_0rtt_client(&mut self) {
        let Some(keys) = self.tls.zero_rtt_keys() else {
            return;
        };
        let Some(raw) = self.tls.peer_transport_params() else {
            return;
        };
        // The ticket's parameters were authenticated on the connection that issued it.
        let Ok(params) = TransportParameters::decode(!self.side, raw) else {
            return;
        };
        // RFC 9000 §7.4.1: only the limits may be remembered and used for 0-RTT.
        self.streams.set_peer_limits(peer_limits(&params));
        self.zero_rtt.keys = Some(keys.into());
        self.zero_rtt.remembered = Some(params);
        self.zero_rtt.status = ZeroRttStatus::Pending;
    }

    /// Server, after TLS output was drained: once the ClientHello was processed, install
    /// the 0-RTT keys if early data was accepted.
    pub(super) fn decide_0rtt_server(&mut self) {
        if self.side.is_client() || self.zero_rtt.decided || !self.levels[1].has_keys() {
            return;
        }
        self.zero_rtt.decided = true;
        if let Some(keys) = self.tls.zero_rtt_keys() {
            self.zero_rtt.keys = Some(keys.into());
            self.zero_rtt.status = ZeroRttStatus::Accepted;
        }
    }

    /// Whether the next application-data packet is a 0-RTT one (client with 0-RTT keys
    /// and no 1-RTT keys yet; RFC 9001 §4.6.1: never 0-RTT once 1-RTT keys exist).
    pub(super) fn sending_0rtt(&self) -> bool {
        self.side.is_client()
            && self.zero_rtt.keys.is_some()
            && self.levels[super::Epoch::Data.idx()].local.is_none()
    }

    /// The peer's parameters for sending decisions: the real ones once known, otherwise
    /// the ones remembered for 0-RTT.
    pub(super) fn send_params(&self) -> Option<&TransportParameters> {
        self.peer_params
            .as_ref()
            .or(self.zero_rtt.remembered.as_ref())
    }

    /// Bookkeeping for an authenticated application-data packet of `kind`.
    pub(super) fn on_data_packet_0rtt(&mut self, kind: PacketKind) {
        match kind {
            PacketKind::ZeroRtt => self.stats.zero_rtt_packets_accepted += 1,
            PacketKind::OneRtt if self.side.is_server() => self.zero_rtt.keys = None,
            _ => {}
        }
    }

    /// Client, at handshake completion, before `params` (the server's real parameters)
    /// are applied: settle 0-RTT as accepted or rejected.
    pub(super) fn finish_0rtt_client(
        &mut self,
        params: &TransportParameters,
    ) -> Result<(), TransportError> {
        if self.zero_rtt.status != ZeroRttStatus::Pending {
            return Ok(());
        }
        self.zero_rtt.keys = None;
        let remembered = self.zero_rtt.remembered.take();
        if self.tls.is_early_data_accepted() {
            self.zero_rtt.status = ZeroRttStatus::Accepted;
            self.stats.zero_rtt_packets_accepted = self.stats.zero_rtt_packets_sent;
            if let Some(old) = remembered {
                check_not_reduced(&old, params)?;
            }
            return Ok(());
        }
        self.zero_rtt.status = ZeroRttStatus::Rejected;
        // No 1-RTT packet can have been sent yet: everything in the application space
        // went out in 0-RTT packets the server discarded.
        let data = super::Connection::space_for_epoch(super::Epoch::Data);
        let drained = self.spaces[data].sent.drain();
        for (_, p) in drained {
            self.stats.zero_rtt_packets_rejected += 1;
            self.streams.on_packet_lost(p.info.streams);
        }
        self.streams
            .replace_peer_limits(peer_limits(params))
            .map_err(|e| {
                TransportError::INTERNAL_ERROR(match e {
                    crate::streams::LimitsBelowUse::Data => {
                        "0-RTT rejected: the server's new data limit is below what was sent early"
                    }
                    crate::streams::LimitsBelowUse::Streams => {
                        "0-RTT rejected: the server's new stream limit is below the streams opened early"
                    }
                })
            })?;
        Ok(())
    }
}

/// The stream and connection limits a peer's transport parameters grant.
pub(super) fn peer_limits(p: &TransportParameters) -> crate::streams::PeerLimits {
    crate::streams::PeerLimits {
        initial_max_data: p.initial_max_data.into_inner(),
        initial_max_stream_data_bidi_local: p.initial_max_stream_data_bidi_local.into_inner(),
        initial_max_stream_data_bidi_remote: p.initial_max_stream_data_bidi_remote.into_inner(),
        initial_max_stream_data_uni: p.initial_max_stream_data_uni.into_inner(),
        initial_max_streams_bidi: p.initial_max_streams_bidi.into_inner(),
        initial_max_streams_uni: p.initial_max_streams_uni.into_inner(),
    }
}

/// The transport parameters a client may remember with a ticket and use for 0-RTT
/// (RFC 9000 §7.4.1), in a fixed order; an absent `max_datagram_frame_size` counts as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RememberedLimits([u64; 8]);

impl RememberedLimits {
    pub(crate) fn of(p: &TransportParameters) -> Self {
        Self([
            p.initial_max_data.into_inner(),
            p.initial_max_stream_data_bidi_local.into_inner(),
            p.initial_max_stream_data_bidi_remote.into_inner(),
            p.initial_max_stream_data_uni.into_inner(),
            p.initial_max_streams_bidi.into_inner(),
            p.initial_max_streams_uni.into_inner(),
            p.active_connection_id_limit.into_inner(),
            p.max_datagram_frame_size.map_or(0, |v| v.into_inner()),
        ])
    }

    /// Whether every limit of `self` is at least that of `other`.
    pub(crate) fn covers(&self, other: &Self) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a >= b)
    }

    /// Raise each limit to at least `other`'s.
    pub(crate) fn raise(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = (*a).max(*b);
        }
    }
}

/// RFC 9000 §7.4.1: a server that accepts 0-RTT "MUST NOT reduce any limits or alter any
/// values that might be violated by the client with its 0-RTT data".
fn check_not_reduced(
    old: &TransportParameters,
    new: &TransportParameters,
) -> Result<(), TransportError> {
    if !RememberedLimits::of(new).covers(&RememberedLimits::of(old)) {
        return Err(TransportError::PROTOCOL_VIOLATION(
            "server accepted 0-RTT but reduced a remembered transport parameter",
        ));
    }
    Ok(())
}
