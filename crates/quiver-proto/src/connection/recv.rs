//! Receive path: unprotect packets, process frames (RFC 9000 §12–§19).

use super::{Connection, ConnectionError, EndpointEvent, Event, State};
use crate::cid::{ConnectionId, RESET_TOKEN_SIZE};
use crate::error::{TransportError, TransportErrorCode};
use crate::frame::{self, Frame, PacketKind};
use crate::packet::{PacketType, PartialDecode};
use crate::qlog::DropTrigger;
use crate::shared::{EcnCodepoint, Epoch, SpaceId};
use bytes::{Bytes, BytesMut};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

impl Connection {
    pub(super) fn process_datagram(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        // Keep the tail for stateless-reset detection (RFC 9000 §10.3.1).
        let mut tail = [0u8; RESET_TOKEN_SIZE];
        let reset_candidate = data.len() >= 21;
        if reset_candidate {
            tail.copy_from_slice(&data[data.len() - RESET_TOKEN_SIZE..]);
        }
        let mut rest = Some(data);
        let mut any_ok = false;
        let mut first = true;
        while let Some(d) = rest.take() {
            let len = d.len();
            let (pd, next) = match PartialDecode::new(d, self.cids.local_cid_len()) {
                Ok(x) => x,
                Err(e) => {
                    tracing::trace!(?e, "undecodable packet dropped");
                    self.trace_dropped(now, None, len, DropTrigger::HeaderParseError);
                    break;
                }
            };
            rest = next;
            // RFC 9000 §12.2: every coalesced packet must carry the same DCID.
            match self.recv_packet(now, remote, local_ip, ecn, pd, first) {
                Ok(true) => any_ok = true,
                Ok(false) => {}
                Err(e) => {
                    self.close_with_error(now, e);
                    return;
                }
            }
            first = false;
            if self.state == State::Drained {
                return;
            }
        }
        if any_ok {
            if self.state == State::Closing {
                // RFC 9000 §10.2.1: answer packets with the close, at a limited rate.
                self.close_pending = true;
            }
        } else if reset_candidate && self.cids.is_stateless_reset(&tail) {
            self.kill(ConnectionError::Reset);
        }
    }

    /// Process one packet. `Ok(false)`: dropped without effect.
    fn recv_packet(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        pd: PartialDecode,
        first_in_datagram: bool,
    ) -> Result<bool, TransportError> {
        let (ty, raw_len) = (pd.kind(), pd.len());
        let (epoch, kind) = match ty {
            PacketType::Initial => (Epoch::Initial, PacketKind::Initial),
            PacketType::Handshake => (Epoch::Handshake, PacketKind::Handshake),
            PacketType::Short => (Epoch::Data, PacketKind::OneRtt),
            PacketType::VersionNegotiate => {
                self.on_version_negotiation(now, pd, first_in_datagram);
                return Ok(false);
            }
            PacketType::ZeroRtt => {
                if self.side.is_client() {
                    return Ok(false); // RFC 9000 §17.2.3: only clients send 0-RTT
                }
                if self.zero_rtt.keys.is_none() {
                    if self.zero_rtt.status != super::ZeroRttStatus::Accepted {
                        self.stats.zero_rtt_packets_rejected += 1;
                    }
                    self.trace_dropped(now, Some(ty), raw_len, DropTrigger::KeyUnavailable);
                    return Ok(false);
                }
                (Epoch::Data, PacketKind::ZeroRtt)
            }
            PacketType::Retry => {
                self.on_retry(now, pd);
                return Ok(false);
            }
        };
        let mut original_keys = false;
        if let Some(v) = pd.version().filter(|v| pd.is_long() && *v != self.version) {
            match self.on_other_version(v, epoch == Epoch::Initial) {
                super::version::OtherVersion::Drop => {
                    self.trace_dropped(now, Some(ty), raw_len, DropTrigger::UnexpectedVersion);
                    return Ok(false);
                }
                super::version::OtherVersion::OriginalInitial => original_keys = true,
            }
        }
        let src_cid = pd.src_cid().copied();
        let dst_cid = *pd.dst_cid();
        let keys = match kind {
            PacketKind::ZeroRtt => self.zero_rtt.keys.as_ref(),
            _ if original_keys => self.version_state.original_initial_remote.as_ref(),
            _ => self.levels[epoch.idx()].remote.as_ref(),
        };
        let Some(keys) = keys else {
            // Keys not yet available or already discarded.
            self.trace_dropped(now, Some(ty), raw_len, DropTrigger::KeyUnavailable);
            return Ok(false);
        };
        let mut packet = match pd.finish(Some(&*keys.header)) {
            Ok(p) => p,
            Err(_) => {
                self.trace_dropped(now, Some(ty), raw_len, DropTrigger::HeaderParseError);
                return Ok(false);
            }
        };
        let space_idx = Self::space_for_epoch(epoch);
        let expected = self.spaces[space_idx].acks.largest().map_or(0, |l| l + 1);
        let Some(number) = packet.number() else {
            return Ok(false);
        };
        let pn = number.expand(expected);

        if kind == PacketKind::ZeroRtt {
            let Some(keys) = self.zero_rtt.keys.as_ref() else {
                return Ok(false);
            };
            if packet.decrypt(&*keys.packet, pn).is_err() {
                return Ok(false);
            }
        } else if epoch == Epoch::Data {
            if !self.decrypt_1rtt(now, &mut packet, pn)? {
                self.trace_dropped(now, Some(ty), raw_len, DropTrigger::PayloadDecryptError);
                return Ok(false);
            }
        } else {
            let keys = if original_keys {
                self.version_state.original_initial_remote.as_ref()
            } else {
                self.levels[epoch.idx()].remote.as_ref()
            };
            let Some(keys) = keys else {
                self.trace_dropped(now, Some(ty), raw_len, DropTrigger::KeyUnavailable);
                return Ok(false);
            };
            if packet.decrypt(&*keys.packet, pn).is_err() {
                // Initial keys are public, so only Handshake failures say something
                // about an attack on the AEAD (RFC 9001 §6.6).
                if epoch == Epoch::Handshake {
                    self.on_auth_failure()?;
                }
                self.trace_dropped(now, Some(ty), raw_len, DropTrigger::PayloadDecryptError);
                return Ok(false);
            }
        }
        // Authenticated from here on.
        if packet.reserved_bits() != 0 {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "reserved header bits are not zero",
            ));
        }
        if self.spaces[space_idx].acks.is_duplicate(pn) {
            self.trace_dropped(now, Some(ty), raw_len, DropTrigger::Duplicate);
            return Ok(false);
        }
        self.stats.packets_rx += 1;
        if epoch == Epoch::Data {
            self.on_data_packet_0rtt(kind);
        }

        // First packets fix the peer's connection ID (RFC 9000 §7.2).
        if epoch == Epoch::Initial && self.side.is_client() && !self.got_server_initial {
            self.got_server_initial = true;
            if let Some(scid) = src_cid {
                self.cids.set_initial_remote(scid);
            }
        }
        if epoch == Epoch::Handshake && self.side.is_server() {
            // RFC 9000 §8.1 address validation; RFC 9001 §4.9.1 Initial discard.
            self.path.validated = true;
            self.discard_level(now, Epoch::Initial);
            self.version_state.original_initial_remote = None;
        }
        // RFC 9000 §9.3: only the packet with the largest number may move the path.
        let largest = self.spaces[space_idx].acks.largest().is_none_or(|l| pn > l);
        if epoch == Epoch::Data && !self.path_before_frames(remote, local_ip, &dst_cid) {
            return Ok(false);
        }

        let payload = packet.payload.freeze();
        self.trace_packet_received(now, epoch, ty, pn, raw_len, src_cid, dst_cid, &payload);
        let ack_eliciting = self.process_frames(now, epoch, kind, payload, &dst_cid)?;
        if epoch == Epoch::Data {
            self.path_after_frames(now, largest, &dst_cid);
        }
        self.spaces[space_idx]
            .acks
            .on_packet_received(now, pn, ack_eliciting, ecn);
        if let Some(cp) = ecn {
            self.stats.ecn_received.add(cp);
        }
        // RFC 9000 §10.1: any successfully processed packet restarts the idle timer.
        self.reset_idle_timer(now);
        if self.state == State::Handshake && !self.tls.is_handshaking() {
            self.on_handshake_complete(now)?;
        }
        Ok(true)
    }

    /// A Retry packet (RFC 9000 §17.2.5.2, §8.1.2): a client acts on the first valid one
    /// received before any server Initial, switches to the server's new CID and resends
    /// its Initial with the token under keys derived from that CID.
    fn on_retry(&mut self, now: Instant, pd: PartialDecode) {
        if self.side.is_server()
            || self.state != State::Handshake
            || self.got_server_initial
            || self.validation.retry_src_cid.is_some()
            || self.stats.packets_rx > 0
            || pd.version() != Some(self.version)
        {
            return; // only one Retry, and none after the server's Initial
        }
        if *pd.dst_cid() != self.cids.local_initial_cid() {
            return;
        }
        let Some(scid) = pd.src_cid().copied() else {
            return;
        };
        // The SCID is the server's choice and must differ from our first DCID (§17.2.5.1).
        if scid == self.orig_dst_cid {
            return;
        }
        // RFC 9001 §5.8: the integrity tag proves the Retry answers our Initial.
        if !pd.is_valid_retry(&self.orig_dst_cid) {
            return;
        }
        let token = match pd.token() {
            Some(t) if !t.is_empty() => Bytes::copy_from_slice(t),
            _ => return, // §17.2.5.2: a Retry with an empty token is discarded
        };
        let Ok(keys) = crate::crypto::initial_keys(self.version, &scid, self.side) else {
            return;
        };
        tracing::debug!(side = ?self.side, %scid, "Retry accepted");
        self.stats.retries += 1;
        self.validation.retry_src_cid = Some(scid);
        self.validation.initial_token = token;
        self.cids.set_initial_remote(scid);
        self.levels[0].local = Some(keys.local.into());
        self.levels[0].remote = Some(keys.remote.into());
        // RFC 9002 §6.3: the Initial packets sent so far will never be acknowledged;
        // drop them from recovery and send their CRYPTO data again. Packet numbers
        // continue (RFC 9000 §17.2.5.3).
        let space = &mut self.spaces[Self::space_for_epoch(Epoch::Initial)];
        let _ = space.sent.discard();
        space.probes = 0;
        self.levels[0].crypto_send.requeue_unacked();
        self.pto_count = 0;
        self.update_loss_timer(now);
    }

    fn on_version_negotiation(&mut self, now: Instant, pd: PartialDecode, first_in_datagram: bool) {
        // RFC 9000 §6.2: only before any other packet was processed, only on a client.
        if self.side.is_server() || !first_in_datagram || self.stats.packets_rx > 0 {
            return;
        }
        let Ok(packet) = pd.finish(None) else {
            return;
        };
        let offered: Vec<u32> = packet.versions().collect();
        self.on_version_list(now, &offered);
    }

    /// Process all frames of a packet. Returns whether it was ack-eliciting.
    fn process_frames(
        &mut self,
        now: Instant,
        epoch: Epoch,
        kind: PacketKind,
        payload: Bytes,
        dst_cid: &ConnectionId,
    ) -> Result<bool, TransportError> {
        // RFC 9000 §12.4: a packet containing no frames is a PROTOCOL_VIOLATION.
        if payload.is_empty() {
            return Err(TransportError::PROTOCOL_VIOLATION(
                "packet contains no frames",
            ));
        }
        let mut ack_eliciting = false;
        let mut crypto_seen = false;
        for frame in frame::Iter::new(payload) {
            let frame = frame?;
            let ty = frame.ty();
            // draft-ietf-quic-multipath-21 §3: without the negotiated extension its frames
            // must not be used; they are unknown frame types (RFC 9000 §12.4). This
            // endpoint does not offer `initial_max_path_id`, so that is always the case.
            if frame.is_multipath() {
                return Err(TransportError::new(
                    TransportErrorCode::FRAME_ENCODING_ERROR,
                    "multipath frame without the negotiated extension",
                )
                .with_frame(ty));
            }
            if !frame.allowed_in(kind) {
                return Err(TransportError::PROTOCOL_VIOLATION(
                    "frame not allowed in this packet type",
                )
                .with_frame(ty));
            }
            if frame.is_ack_eliciting() {
                ack_eliciting = true;
            }
            if epoch == Epoch::Data {
                self.path_on_frame(&frame);
            }
            if matches!(self.state, State::Closing | State::Draining) {
                // RFC 9000 §10.2.1: only look for the peer's close.
                match frame {
                    Frame::ConnectionClose(_) | Frame::ApplicationClose(_) => {}
                    _ => continue,
                }
            }
            // RFC 9000 §19.19: the Frame Type field names the frame that triggered the
            // error. That frame is known here, so it overrides whatever a sub-module
            // guessed (the streams module reports every STREAM variant as 0x08).
            self.process_frame(now, epoch, frame, dst_cid, &mut crypto_seen)
                .map_err(|e| e.with_frame(ty))?;
            if self.state == State::Drained {
                break;
            }
        }
        if crypto_seen {
            // Errors of the reassembled CRYPTO stream were triggered by a CRYPTO frame.
            self.feed_tls(epoch).map_err(|e| match e.frame {
                Some(_) => e,
                None => e.with_frame(frame::frame_type::CRYPTO),
            })?;
        }
        Ok(ack_eliciting)
    }

    fn process_frame(
        &mut self,
        now: Instant,
        epoch: Epoch,
        frame: Frame,
        dst_cid: &ConnectionId,
        crypto_seen: &mut bool,
    ) -> Result<(), TransportError> {
        match frame {
            Frame::Padding(_) | Frame::Ping => {}
            Frame::Ack(ack) => self.on_ack_frame(now, epoch, ack)?,
            Frame::Crypto(c) => {
                self.levels[epoch.idx()]
                    .crypto_recv
                    .insert(c.offset, c.data)?;
                *crypto_seen = true;
            }
            Frame::Stream(s) => self
                .streams
                .on_stream_frame(s.id, s.offset, s.data, s.fin)?,
            Frame::ResetStream(r) => {
                self.streams
                    .on_reset_stream(r.id, r.error_code, r.final_size)?
            }
            Frame::StopSending(s) => self.streams.on_stop_sending(s.id, s.error_code)?,
            Frame::MaxData(v) => self.streams.on_max_data(v.into_inner())?,
            Frame::MaxStreamData { id, offset } => self.streams.on_max_stream_data(id, offset)?,
            Frame::MaxStreams { dir, count } => self.streams.on_max_streams(dir, count)?,
            Frame::DataBlocked { offset } => self.streams.on_data_blocked(offset)?,
            Frame::StreamDataBlocked { id, offset } => {
                self.streams.on_stream_data_blocked(id, offset)?
            }
            Frame::StreamsBlocked { dir, limit } => self.streams.on_streams_blocked(dir, limit)?,
            Frame::NewToken(_token) => {
                if self.side.is_server() {
                    return Err(TransportError::PROTOCOL_VIOLATION(
                        "NEW_TOKEN sent by a client",
                    ));
                }
                // RFC 9000 §8.1.3: keep it for the next connection to this server.
                self.stats.new_tokens_received += 1;
                if let Some((store, name)) = &self.validation.token_store {
                    store.insert(name, _token);
                }
            }
            Frame::NewConnectionId(n) => {
                self.cids
                    .on_new_cid(n.sequence, n.retire_prior_to, n.id, n.reset_token)?;
            }
            Frame::RetireConnectionId { sequence } => {
                if let Some(cid) = self.cids.on_retire(sequence, dst_cid)? {
                    self.endpoint_events
                        .push_back(EndpointEvent::RetireCid(cid));
                }
            }
            Frame::PathChallenge(token) => self.path_on_challenge(token),
            Frame::PathResponse(token) => self.path_on_response(now, token),
            Frame::ConnectionClose(c) => {
                let reason = ConnectionError::ConnectionClosed {
                    code: c.error_code,
                    frame_type: c.frame_type,
                    reason: c.reason,
                };
                self.enter_draining(now, reason);
            }
            Frame::ApplicationClose(c) => {
                let reason = ConnectionError::ApplicationClosed {
                    code: c.error_code,
                    reason: c.reason,
                };
                self.enter_draining(now, reason);
            }
            Frame::HandshakeDone => {
                if self.side.is_server() {
                    return Err(TransportError::PROTOCOL_VIOLATION(
                        "HANDSHAKE_DONE sent by a client",
                    ));
                }
                self.confirm_handshake(now);
            }
            Frame::Datagram(d) => {
                let Some(limit) = self.config.datagram_receive_buffer_size else {
                    return Err(TransportError::PROTOCOL_VIOLATION(
                        "DATAGRAM received but not advertised",
                    ));
                };
                if d.data.len() > limit {
                    return Ok(()); // cannot buffer it at all; datagrams are unreliable
                }
                let q = &mut self.datagrams;
                while q.recv_bytes + d.data.len() > limit {
                    match q.recv.pop_front() {
                        Some(old) => q.recv_bytes -= old.len(),
                        None => break,
                    }
                }
                q.recv_bytes += d.data.len();
                q.recv.push_back(d.data);
                self.events.push_back(Event::DatagramReceived);
            }
            Frame::PathAck { .. }
            | Frame::PathAbandon { .. }
            | Frame::PathStatus { .. }
            | Frame::PathNewConnectionId { .. }
            | Frame::PathRetireConnectionId { .. }
            | Frame::MaxPathId(_)
            | Frame::PathsBlocked(_)
            | Frame::PathCidsBlocked { .. } => {
                // `process_frames` rejects these first; kept exhaustive for safety.
                return Err(TransportError::new(
                    TransportErrorCode::FRAME_ENCODING_ERROR,
                    "multipath frame without the negotiated extension",
                ));
            }
        }
        Ok(())
    }

    /// Deliver contiguous CRYPTO data of `epoch` to TLS.
    fn feed_tls(&mut self, epoch: Epoch) -> Result<(), TransportError> {
        if epoch == Epoch::Initial
            && self.version_state.server_choice.is_some()
            && !self.choose_server_version()?
        {
            return Ok(()); // the ClientHello is not complete yet
        }
        while let Some(chunk) = self.levels[epoch.idx()].crypto_recv.read() {
            if epoch == Epoch::Data && self.side.is_server() {
                return Err(TransportError::PROTOCOL_VIOLATION(
                    "client sent post-handshake CRYPTO data",
                ));
            }
            self.tls.read_handshake(&chunk)?;
        }
        self.drive_tls()
    }

    /// Process an ACK frame (RFC 9002 §A.7).
    fn on_ack_frame(
        &mut self,
        now: Instant,
        epoch: Epoch,
        ack: frame::Ack,
    ) -> Result<(), TransportError> {
        let idx = Self::space_for_epoch(epoch);
        let delay = if epoch == Epoch::Data {
            let micros = ack
                .delay
                .checked_shl(u32::from(self.peer_ack_delay_exponent))
                .unwrap_or(u64::MAX);
            Duration::from_micros(micros)
        } else {
            Duration::ZERO
        };
        let ecn = ack.ecn.map(|e| crate::recovery::EcnCounts {
            ect0: e.ect0,
            ect1: e.ect1,
            ce: e.ce,
        });
        let largest_before = self.spaces[idx].sent.largest_acked();
        let mut outcome = self.spaces[idx].sent.on_ack_received(
            now,
            ack.iter_ranges(),
            delay,
            &mut self.rtt,
            self.handshake_confirmed,
        )?;
        if outcome.rtt_sample.is_some() && self.first_rtt_sample.is_none() {
            self.first_rtt_sample = Some(now);
        }
        if outcome.newly_acked.is_empty() {
            return Ok(());
        }
        // RFC 9000 §13.4.2.1: validate the ECN counts against what was newly acknowledged.
        let marked = outcome
            .newly_acked
            .iter()
            .filter(|(_, p)| p.info.ect0)
            .count() as u64;
        let new_ce = self.ecn.on_ack(crate::recovery::EcnAck {
            epoch,
            newly_acked_marked: marked,
            newly_acked_unmarked: outcome.newly_acked.len() as u64 - marked,
            largest_acked_increased: self.spaces[idx].sent.largest_acked() > largest_before,
            counts: ecn.as_ref(),
        });
        // RFC 9002 §6.2.1: reset the PTO backoff, except for a client that is not yet
        // sure the server validated its address.
        if self.handshake_confirmed || self.side.is_server() || epoch != Epoch::Initial {
            self.pto_count = 0;
        }
        if epoch == Epoch::Data {
            for (pn, _) in &outcome.newly_acked {
                self.key_update.on_acked(*pn);
            }
        }
        self.mtud_on_ack(now, idx, &mut outcome.newly_acked, &mut outcome.lost);
        let acked = crate::cc::AckedPacket::from_sent(&outcome.newly_acked);
        for (_, p) in &outcome.newly_acked {
            self.rate.on_packet_acked(now, p);
        }
        let in_flight = self.bytes_in_flight();
        let mut sample =
            crate::cc::AckSample::new(&acked, &self.rtt, outcome.rtt_sample, in_flight);
        sample.delivery = self.rate.take_sample(self.rtt.min());
        sample.app_limited = self.rate.is_app_limited();
        sample.ecn = ecn.filter(|_| self.ecn.state() != crate::recovery::EcnState::Failed);
        self.window_usage.on_ack(&mut sample);
        if sample.app_limited {
            self.stats.app_limited_acks += 1;
        }
        if !sample.cwnd_limited {
            self.stats.window_underused_acks += 1;
        }
        self.cc.on_ack(now, &sample);
        tracing::trace!(side = ?self.side, cwnd = self.cc.window(), in_flight, app_limited = sample.app_limited, cwnd_limited = sample.cwnd_limited, "ack processed");
        // RFC 9002 §7.1, §B.7: new CE marks are a congestion event (the controller's
        // recovery period keeps it to one reduction per round trip).
        if new_ce > 0 {
            if let Some(t) = outcome.largest_newly_acked_sent {
                let ev = crate::cc::CongestionEvent::ecn(t, in_flight);
                self.on_congestion_event(now, &ev);
            }
        }
        for (_, p) in outcome.newly_acked {
            self.on_packet_acked(epoch, p.info);
        }
        if !outcome.lost.is_empty() {
            self.on_packets_lost(now, idx, outcome.lost);
        }
        self.trace_after_ack(now, outcome.largest_newly_acked_sent);
        Ok(())
    }

    fn on_packet_acked(&mut self, epoch: Epoch, info: super::spaces::SentFrames) {
        let lvl = &mut self.levels[epoch.idx()];
        for r in info.crypto {
            lvl.crypto_send.on_ack(r);
        }
        let idx = Self::space_for_epoch(epoch);
        if let Some(l) = info.largest_acked_in_ack {
            self.spaces[idx].acks.on_ack_of_ack(l);
        }
        if info.handshake_done {
            self.handshake_done_pending = false;
            self.handshake_done_acked = true;
        }
        self.cids.on_retire_acked(info.retire_cids.len());
        self.streams.on_packet_acked(&info.streams);
    }

    /// Requeue the contents of lost packets and tell congestion control.
    pub(super) fn on_packets_lost(
        &mut self,
        now: Instant,
        space_idx: usize,
        mut lost: Vec<(u64, crate::recovery::SentPacket<super::spaces::SentFrames>)>,
    ) {
        self.trace_lost(now, space_idx, &lost);
        self.mtud_on_lost(now, space_idx, &mut lost);
        self.ecn
            .on_lost(lost.iter().filter(|(_, p)| p.info.ect0).count() as u64);
        let persistent =
            crate::recovery::pto::persistent_congestion_in(&lost, &self.rtt, self.first_rtt_sample);
        let in_flight = self.bytes_in_flight();
        if let Some(ev) = crate::cc::CongestionEvent::loss(&lost, persistent, in_flight) {
            self.on_congestion_event(now, &ev);
        }
        let epoch = self.spaces[space_idx].id.epoch();
        for (_, p) in lost {
            self.stats.packets_lost += 1;
            let info = p.info;
            for r in info.crypto {
                self.levels[epoch.idx()].crypto_send.on_lost(r);
            }
            if info.handshake_done && !self.handshake_confirmed_by_peer() {
                self.handshake_done_pending = true;
            }
            for seq in info.new_cids {
                if self.cids.local_entry(seq).is_some() {
                    self.cids.pending_new.push_back(seq);
                }
            }
            for seq in info.retire_cids {
                self.cids.pending_retire.push_back(seq);
            }
            if let Some(token) = info.new_token {
                self.validation.pending_new_tokens.push_back(token);
            }
            self.streams.on_packet_lost(info.streams);
        }
    }

    /// Hand a congestion event to the controller and count its effect.
    fn on_congestion_event(&mut self, now: Instant, ev: &crate::cc::CongestionEvent) {
        let before = self.cc.window();
        self.cc.on_congestion_event(now, ev);
        let after = self.cc.window();
        if ev.persistent_congestion {
            self.stats.persistent_congestion += 1;
        }
        if after < before {
            self.trace_congestion(now, ev);
            self.stats.congestion_events += 1;
            // RFC 9002 §7.3.2: "If the congestion window is reduced immediately, a
            // single packet can be sent prior to reduction. This speeds up loss recovery
            // if the data in the lost packet is retransmitted".
            self.recovery_send = ev.kind == crate::cc::CongestionKind::Loss;
            tracing::debug!(side = ?self.side, before, after, persistent = ev.persistent_congestion, "congestion window reduced");
        }
        if self.stats.cwnd_min == 0 || after < self.stats.cwnd_min {
            self.stats.cwnd_min = after;
        }
    }

    /// Whether the peer is known to have confirmed the handshake: for a server, an
    /// acknowledged HANDSHAKE_DONE (RFC 9001 §4.1.2); a client sends no HANDSHAKE_DONE.
    pub(super) fn handshake_confirmed_by_peer(&self) -> bool {
        self.handshake_done_acked
    }

    /// Loss-detection timer fired (RFC 9002 §A.9).
    pub(super) fn on_loss_detection_timeout(&mut self, now: Instant) {
        if let Some((idx, _)) = self.earliest_loss_time() {
            let lost = self.spaces[idx].sent.detect_lost(now, &self.rtt);
            if !lost.is_empty() {
                self.on_packets_lost(now, idx, lost);
            }
            return;
        }
        self.pto_count = self.pto_count.saturating_add(1);
        self.stats.ptos += 1;
        tracing::debug!(side = ?self.side, pto_count = self.pto_count, "probe timeout");
        self.cc.on_pto(now);
        self.ecn.on_pto();
        if self.ack_eliciting_in_flight() == 0 && !self.peer_completed_address_validation() {
            // Client anti-deadlock probe (RFC 9002 §6.2.2.1).
            let idx = if self.levels[1].has_keys() { 1 } else { 0 };
            self.spaces[idx].probes = 1;
            self.levels[idx].crypto_send.requeue_unacked();
            return;
        }
        if let Some((idx, _)) = self.pto_time_and_space() {
            self.spaces[idx].probes = 2;
            if idx < 2 {
                self.levels[idx].crypto_send.requeue_unacked();
            }
        }
    }

    pub(super) fn peer_completed_address_validation(&self) -> bool {
        // RFC 9002 §A.6: the server validated us once it sent Handshake keys-acks or
        // the handshake is confirmed.
        self.side.is_server()
            || self.handshake_confirmed
            || self.spaces[1].sent.largest_acked().is_some()
    }

    pub(super) fn bytes_in_flight(&self) -> u64 {
        let total: u64 = self.spaces.iter().map(|s| s.sent.bytes_in_flight()).sum();
        // RFC 9000 §14.4: a PMTU probe is not counted for congestion control.
        total.saturating_sub(self.mtud_probe_bytes())
    }

    fn ack_eliciting_in_flight(&self) -> u64 {
        self.spaces
            .iter()
            .map(|s| s.sent.ack_eliciting_in_flight())
            .sum()
    }

    fn earliest_loss_time(&self) -> Option<(usize, Instant)> {
        self.spaces
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.sent.loss_time().map(|t| (i, t)))
            .min_by_key(|(_, t)| *t)
    }

    /// RFC 9002 §A.8 GetPtoTimeAndSpace.
    fn pto_time_and_space(&self) -> Option<(usize, Instant)> {
        let backoff = 2u32.saturating_pow(self.pto_count.min(16));
        let mut best: Option<(usize, Instant)> = None;
        for (i, s) in self.spaces.iter().enumerate() {
            if s.sent.ack_eliciting_in_flight() == 0 {
                continue;
            }
            let mut dur = self.rtt.pto_base() * backoff;
            if matches!(s.id, SpaceId::Data(_)) {
                if !self.handshake_confirmed {
                    continue;
                }
                dur += self.peer_max_ack_delay * backoff;
            }
            let Some(t) = s.sent.time_of_last_ack_eliciting() else {
                continue;
            };
            let at = t + dur;
            if best.is_none_or(|(_, b)| at < b) {
                best = Some((i, at));
            }
        }
        best
    }

    /// RFC 9002 §A.8 SetLossDetectionTimer.
    pub(super) fn update_loss_timer(&mut self, now: Instant) {
        use super::Timer;
        if matches!(
            self.state,
            State::Closing | State::Draining | State::Drained
        ) {
            self.timers.stop(Timer::LossDetection);
            return;
        }
        if let Some((_, t)) = self.earliest_loss_time() {
            self.timers.set(Timer::LossDetection, t);
            return;
        }
        if self.side.is_server() && !self.path.validated && self.amplification_blocked() {
            self.timers.stop(Timer::LossDetection);
            return;
        }
        if self.ack_eliciting_in_flight() == 0 && self.peer_completed_address_validation() {
            self.timers.stop(Timer::LossDetection);
            return;
        }
        match self.pto_time_and_space() {
            Some((_, t)) => self.timers.set(Timer::LossDetection, t),
            None => {
                // Client without ack-eliciting data in flight before validation.
                let backoff = 2u32.saturating_pow(self.pto_count.min(16));
                self.timers
                    .set(Timer::LossDetection, now + self.rtt.pto_base() * backoff);
            }
        }
    }

    pub(super) fn amplification_blocked(&self) -> bool {
        !self.path.validated && self.path.bytes_sent >= 3 * self.path.bytes_received
    }

    pub(super) fn update_ack_timer(&mut self) {
        // RFC 9000 §10.2: a closing or draining connection sends no ACKs. Without this,
        // a packet received while closing armed an ACK deadline that `poll_transmit`
        // (which only sends CONNECTION_CLOSE then) never cleared: the timer stayed
        // expired and a driver calling `handle_timeout` spun forever.
        // Likewise while the anti-amplification limit blocks every send (an unvalidated
        // path, RFC 9000 §8.1): an ACK deadline that cannot be met would stay expired
        // and spin the driver; the next datagram from the peer re-arms it.
        if self.is_closed() || self.amplification_blocked() {
            self.timers.stop(super::Timer::AckDelay);
            return;
        }
        let t = self
            .spaces
            .iter()
            .filter(|s| self.levels[s.id.epoch().idx()].has_keys())
            .filter_map(|s| s.acks.ack_deadline())
            .min();
        self.timers.set_opt(super::Timer::AckDelay, t);
    }
}
