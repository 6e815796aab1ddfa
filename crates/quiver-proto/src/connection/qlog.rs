//! Emission of [`crate::qlog`] events: the connection side of the subscriber hook.
//!
//! Every `trace_*` method starts with one `Option` check of [`Connection::trace`] and
//! does nothing else without a subscriber, so the send and receive paths pay nothing
//! for tracing that is off. State-like events (connection state, metrics, congestion
//! state) are computed by comparison in [`Connection::trace_poll`], called at the end of
//! every input and of `poll_transmit`, so the many places that change that state need
//! no hook of their own.

use super::{CloseFrame, Connection, ConnectionError, State};
use crate::cc::Pacer;
use crate::cid::ConnectionId;
use crate::error::TransportErrorCode;
use crate::qlog::{
    CloseTrigger, CongestionState, CongestionTrigger, ConnectionClosed, ConnectionInfo,
    ConnectionStarted, ConnectionState, DropTrigger, Event, EventSubscriber, FrameInfo, KeyType,
    KeyUpdateTrigger, KeyUpdated, LossTrigger, Metrics, Owner, PacketDropped, PacketEvent,
    PacketHeader, PacketLost, PacketType, ParametersSet,
};
use crate::shared::{Epoch, Side};
use crate::transport_params::TransportParameters;
use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

/// RFC 9002 §6.1.1 kPacketThreshold, to name the rule that declared a loss.
const PACKET_THRESHOLD: u64 = 3;

/// A connection's subscriber and what it was last told.
pub(super) struct Trace {
    sub: Box<dyn EventSubscriber>,
    /// Time of the latest emission, for events raised where no `now` is at hand (TLS
    /// key changes happen while a received packet is processed, after its
    /// `packet_received` event).
    last: Instant,
    state: Option<ConnectionState>,
    metrics: Metrics,
    congestion: Option<CongestionState>,
    /// Send time of the packet whose loss started the current recovery period.
    recovery_start: Option<Instant>,
    closed: bool,
}

impl Trace {
    /// Ask `factory` for the subscriber of a new connection.
    pub(super) fn build(
        factory: Option<&std::sync::Arc<dyn crate::qlog::SubscriberFactory>>,
        info: &ConnectionInfo,
    ) -> Option<Box<Trace>> {
        let sub = factory?.build(info)?;
        Some(Box::new(Trace {
            sub,
            last: info.created,
            state: None,
            metrics: Metrics::default(),
            congestion: None,
            recovery_start: None,
            closed: false,
        }))
    }

    fn emit(&mut self, now: Instant, event: &Event) {
        self.last = self.last.max(now);
        self.sub.on_event(now, event);
    }
}

impl Connection {
    /// First events: connection started, our parameters, Initial keys, state.
    pub(super) fn trace_started(&mut self, now: Instant, local_params: &TransportParameters) {
        let Some(mut t) = self.trace.take() else {
            return;
        };
        let unspecified = match self.path.remote.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let started = ConnectionStarted {
            local: SocketAddr::new(self.path.local_ip.unwrap_or(unspecified), 0),
            remote: self.path.remote,
            local_cid: self.cids.local_initial_cid(),
            remote_cid: self.cids.remote_cid(),
        };
        t.emit(now, &Event::ConnectionStarted(started));
        t.emit(
            now,
            &Event::ParametersSet(ParametersSet {
                owner: Owner::Local,
                params: local_params.clone(),
            }),
        );
        for side in [Side::Client, Side::Server] {
            t.emit(
                now,
                &key_event(side, Epoch::Initial, None, KeyUpdateTrigger::Tls),
            );
        }
        self.trace = Some(t);
        self.trace_poll(now);
    }

    /// The peer's transport parameters were accepted.
    pub(super) fn trace_peer_params(&mut self, now: Instant, params: &TransportParameters) {
        if let Some(t) = self.trace.as_mut() {
            let ev = Event::ParametersSet(ParametersSet {
                owner: Owner::Remote,
                params: params.clone(),
            });
            t.emit(now, &ev);
        }
    }

    /// TLS installed the keys of `epoch` (both directions).
    pub(super) fn trace_tls_keys(&mut self, epoch: Epoch) {
        if let Some(t) = self.trace.as_mut() {
            let generation = (epoch == Epoch::Data).then_some(0);
            let now = t.last;
            for side in [Side::Client, Side::Server] {
                t.emit(
                    now,
                    &key_event(side, epoch, generation, KeyUpdateTrigger::Tls),
                );
            }
        }
    }

    /// The 1-RTT keys moved to a new generation (RFC 9001 §6), started by the peer
    /// (`RemoteUpdate`) or by us (`LocalUpdate`); `generation` counts updates. Without
    /// `now`, the time of the latest event is used.
    pub(super) fn trace_key_update(
        &mut self,
        now: Option<Instant>,
        generation: u64,
        trigger: KeyUpdateTrigger,
    ) {
        if let Some(t) = self.trace.as_mut() {
            let now = now.unwrap_or(t.last);
            let generation = Some(u32::try_from(generation).unwrap_or(u32::MAX));
            for side in [Side::Client, Side::Server] {
                t.emit(now, &key_event(side, Epoch::Data, generation, trigger));
            }
        }
    }

    /// Frames of a packet about to be sealed, when traced: `payload` is its plaintext.
    pub(super) fn trace_frames(&self, epoch: Epoch, payload: &[u8]) -> Option<Vec<FrameInfo>> {
        self.trace.as_ref()?;
        let exponent = if epoch == Epoch::Data {
            self.config.ack_delay_exponent
        } else {
            3
        };
        Some(FrameInfo::from_payload(
            Bytes::copy_from_slice(payload),
            exponent,
        ))
    }

    /// A packet was sealed (`frames` from [`Connection::trace_frames`]).
    pub(super) fn trace_packet_sent(
        &mut self,
        now: Instant,
        epoch: Epoch,
        pn: u64,
        raw_length: usize,
        frames: Option<Vec<FrameInfo>>,
    ) {
        if frames.is_none() {
            return;
        }
        let packet_type = if epoch == Epoch::Data && self.sending_0rtt() {
            PacketType::ZeroRtt
        } else {
            PacketType::of_epoch(epoch)
        };
        let (Some(frames), Some(t)) = (frames, self.trace.as_mut()) else {
            return;
        };
        let header = packet_header(
            packet_type,
            pn,
            self.version,
            self.cids.local_initial_cid(),
            self.cids.remote_cid(),
        );
        let ev = Event::PacketSent(PacketEvent {
            header,
            raw_length,
            frames,
        });
        t.emit(now, &ev);
    }

    /// A packet was decrypted; `dcid` is the one it carried.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn trace_packet_received(
        &mut self,
        now: Instant,
        epoch: Epoch,
        ty: crate::packet::PacketType,
        pn: u64,
        raw_length: usize,
        scid: Option<ConnectionId>,
        dcid: ConnectionId,
        payload: &Bytes,
    ) {
        let Some(t) = self.trace.as_mut() else {
            return;
        };
        let exponent = if epoch == Epoch::Data {
            self.peer_ack_delay_exponent
        } else {
            3
        };
        let packet_type = PacketType::from(ty);
        let header = PacketHeader {
            packet_type,
            packet_number: Some(pn),
            version: (packet_type != PacketType::OneRtt).then_some(self.version),
            scid,
            dcid: Some(dcid),
        };
        let ev = Event::PacketReceived(PacketEvent {
            header,
            raw_length,
            frames: FrameInfo::from_payload(payload.clone(), exponent),
        });
        t.emit(now, &ev);
    }

    /// A packet addressed to this connection was dropped.
    pub(super) fn trace_dropped(
        &mut self,
        now: Instant,
        packet_type: Option<crate::packet::PacketType>,
        raw_length: usize,
        trigger: DropTrigger,
    ) {
        if let Some(t) = self.trace.as_mut() {
            let header = packet_type.map(|ty| PacketHeader {
                packet_type: ty.into(),
                packet_number: None,
                version: None,
                scid: None,
                dcid: None,
            });
            let ev = Event::PacketDropped(PacketDropped {
                header,
                raw_length,
                trigger,
            });
            t.emit(now, &ev);
        }
    }

    /// Packets of space `space_idx` are about to be declared lost.
    pub(super) fn trace_lost(
        &mut self,
        now: Instant,
        space_idx: usize,
        lost: &[(u64, crate::recovery::SentPacket<super::spaces::SentFrames>)],
    ) {
        if self.trace.is_none() {
            return;
        }
        let epoch = self.spaces[space_idx].id.epoch();
        let largest_acked = self.spaces[space_idx].sent.largest_acked();
        let events: Vec<Event> = lost
            .iter()
            .map(|(pn, _)| {
                let by_count = largest_acked.is_some_and(|l| l >= pn + PACKET_THRESHOLD);
                Event::PacketLost(PacketLost {
                    packet_type: PacketType::of_epoch(epoch),
                    packet_number: *pn,
                    trigger: if by_count {
                        LossTrigger::ReorderingThreshold
                    } else {
                        LossTrigger::TimeThreshold
                    },
                    is_mtu_probe: space_idx == 2 && self.mtud.is_probe(*pn),
                })
            })
            .collect();
        if let Some(t) = self.trace.as_mut() {
            for ev in &events {
                t.emit(now, ev);
            }
        }
    }

    /// Congestion control reduced its window for a loss or an ECN mark: a recovery
    /// period starts.
    pub(super) fn trace_congestion(&mut self, now: Instant, ev: &crate::cc::CongestionEvent) {
        let Some(t) = self.trace.as_mut() else {
            return;
        };
        t.recovery_start = Some(now);
        let trigger = if ev.persistent_congestion {
            Some(CongestionTrigger::PersistentCongestion)
        } else if ev.kind == crate::cc::CongestionKind::Ecn {
            Some(CongestionTrigger::Ecn)
        } else {
            None
        };
        // Persistent congestion restarts slow start rather than entering recovery.
        let new = if ev.persistent_congestion {
            CongestionState::SlowStart
        } else {
            CongestionState::Recovery
        };
        if ev.persistent_congestion {
            t.recovery_start = None;
        }
        let old = t.congestion.replace(new);
        if old != Some(new) || trigger.is_some() {
            t.emit(now, &Event::CongestionStateUpdated { old, new, trigger });
        }
    }

    /// An ACK was processed; `largest_acked_sent` is the send time of the newest newly
    /// acknowledged packet, which ends a recovery period once it was sent after the
    /// period started (RFC 9002 §7.3.2).
    pub(super) fn trace_after_ack(&mut self, now: Instant, largest_acked_sent: Option<Instant>) {
        let Some(t) = self.trace.as_mut() else {
            return;
        };
        if let (Some(start), Some(sent)) = (t.recovery_start, largest_acked_sent) {
            if sent > start {
                t.recovery_start = None;
            }
        }
        self.trace_poll(now);
    }

    /// Emit what changed since the last call: connection state, the close, recovery
    /// metrics and the congestion state.
    pub(super) fn trace_poll(&mut self, now: Instant) {
        let Some(mut t) = self.trace.take() else {
            return;
        };
        let state = self.qlog_state();
        if t.state != Some(state) {
            let old = t.state.replace(state);
            t.emit(now, &Event::ConnectionStateUpdated { old, new: state });
        }
        if !t.closed {
            if let Some(closed) = self.qlog_closed() {
                t.closed = true;
                t.emit(now, &Event::ConnectionClosed(closed));
            }
        }
        if !matches!(self.state, State::Draining | State::Drained) {
            let delta = self.metrics_delta(&mut t.metrics);
            if !delta.is_empty() {
                t.emit(now, &Event::MetricsUpdated(delta));
            }
            let cc = if t.recovery_start.is_some() {
                CongestionState::Recovery
            } else {
                let window = self.cc.window();
                match self.cc.ssthresh() {
                    Some(s) if window >= s => CongestionState::CongestionAvoidance,
                    _ => CongestionState::SlowStart,
                }
            };
            if t.congestion != Some(cc) {
                let old = t.congestion.replace(cc);
                let ev = Event::CongestionStateUpdated {
                    old,
                    new: cc,
                    trigger: None,
                };
                t.emit(now, &ev);
            }
        }
        self.trace = Some(t);
    }

    fn qlog_state(&self) -> ConnectionState {
        match self.state {
            State::Handshake if self.levels[Epoch::Handshake.idx()].local.is_some() => {
                ConnectionState::HandshakeStarted
            }
            State::Handshake => ConnectionState::Attempted,
            State::Established if self.handshake_confirmed => ConnectionState::HandshakeConfirmed,
            State::Established => ConnectionState::HandshakeComplete,
            State::Closing => ConnectionState::Closing,
            State::Draining => ConnectionState::Draining,
            State::Drained => ConnectionState::Closed,
        }
    }

    fn qlog_closed(&self) -> Option<ConnectionClosed> {
        let err = self.error.as_ref()?;
        let closed = |owner, trigger| ConnectionClosed {
            owner,
            connection_code: None,
            application_code: None,
            reason: String::new(),
            trigger,
        };
        Some(match err {
            ConnectionError::VersionMismatch => closed(None, CloseTrigger::VersionMismatch),
            ConnectionError::TimedOut => closed(None, CloseTrigger::IdleTimeout),
            ConnectionError::Reset => closed(Some(Owner::Remote), CloseTrigger::StatelessReset),
            ConnectionError::TransportError(e) => ConnectionClosed {
                connection_code: Some(e.code),
                reason: e.reason.clone(),
                ..closed(Some(Owner::Local), close_trigger(e.code))
            },
            ConnectionError::ConnectionClosed { code, reason, .. } => ConnectionClosed {
                connection_code: Some(*code),
                reason: String::from_utf8_lossy(reason).into_owned(),
                ..closed(Some(Owner::Remote), close_trigger(*code))
            },
            ConnectionError::ApplicationClosed { code, reason } => ConnectionClosed {
                application_code: Some(code.into_inner()),
                reason: String::from_utf8_lossy(reason).into_owned(),
                ..closed(Some(Owner::Remote), CloseTrigger::Application)
            },
            ConnectionError::LocallyClosed => match &self.close {
                Some(CloseFrame::Application { code, reason }) => ConnectionClosed {
                    application_code: Some(code.into_inner()),
                    reason: String::from_utf8_lossy(reason).into_owned(),
                    ..closed(Some(Owner::Local), CloseTrigger::Application)
                },
                _ => closed(Some(Owner::Local), CloseTrigger::Application),
            },
        })
    }

    /// The recovery metrics that differ from `last`, which is updated.
    fn metrics_delta(&self, last: &mut Metrics) -> Metrics {
        let window = self.cc.window();
        let has_rtt = self.rtt.has_sample();
        let rate = Pacer::rate(self.rtt.smoothed(), window, self.cc.pacing_rate())
            .filter(|_| has_rtt || self.cc.pacing_rate().is_some())
            .map(|r| r.saturating_mul(8));
        let now = Metrics {
            min_rtt: has_rtt.then(|| self.rtt.min()),
            smoothed_rtt: has_rtt.then(|| self.rtt.smoothed()),
            latest_rtt: has_rtt.then(|| self.rtt.latest()),
            rtt_variance: has_rtt.then(|| self.rtt.var()),
            pto_count: Some(self.pto_count),
            congestion_window: Some(window),
            bytes_in_flight: Some(self.bytes_in_flight()),
            ssthresh: self.cc.ssthresh().filter(|s| *s < u64::MAX),
            pacing_rate: rate,
        };
        fn changed<T: PartialEq + Copy>(new: Option<T>, old: &mut Option<T>) -> Option<T> {
            if new.is_some() && new != *old {
                *old = new;
                new
            } else {
                None
            }
        }
        Metrics {
            min_rtt: changed(now.min_rtt, &mut last.min_rtt),
            smoothed_rtt: changed(now.smoothed_rtt, &mut last.smoothed_rtt),
            latest_rtt: changed(now.latest_rtt, &mut last.latest_rtt),
            rtt_variance: changed(now.rtt_variance, &mut last.rtt_variance),
            pto_count: changed(now.pto_count, &mut last.pto_count),
            congestion_window: changed(now.congestion_window, &mut last.congestion_window),
            bytes_in_flight: changed(now.bytes_in_flight, &mut last.bytes_in_flight),
            ssthresh: changed(now.ssthresh, &mut last.ssthresh),
            pacing_rate: changed(now.pacing_rate, &mut last.pacing_rate),
        }
    }
}

fn close_trigger(code: TransportErrorCode) -> CloseTrigger {
    if code == TransportErrorCode::NO_ERROR {
        CloseTrigger::Clean
    } else {
        CloseTrigger::Error
    }
}

fn key_event(
    side: Side,
    epoch: Epoch,
    generation: Option<u32>,
    trigger: KeyUpdateTrigger,
) -> Event {
    Event::KeyUpdated(KeyUpdated {
        key_type: KeyType { side, epoch },
        generation,
        trigger,
    })
}

fn packet_header(
    packet_type: PacketType,
    pn: u64,
    version: u32,
    scid: ConnectionId,
    dcid: ConnectionId,
) -> PacketHeader {
    let long = packet_type != PacketType::OneRtt;
    PacketHeader {
        packet_type,
        packet_number: Some(pn),
        version: long.then_some(version),
        scid: long.then_some(scid),
        dcid: Some(dcid),
    }
}
