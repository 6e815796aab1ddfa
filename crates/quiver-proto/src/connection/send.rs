//! Send path: assemble datagrams from coalesced packets (RFC 9000 §12.2, §13, §14).
//!
//! Frame priority within a packet (documented for schedulers): ACK first, then
//! connection control (HANDSHAKE_DONE, connection IDs), stream control
//! (MAX_*, *_BLOCKED, RESET_STREAM, STOP_SENDING), CRYPTO, DATAGRAMs, and finally STREAM
//! data chosen by the stream scheduler. PATH_CHALLENGE and PATH_RESPONSE travel in
//! datagrams of their own, padded to 1200 bytes (see `paths.rs`), before anything else.

use super::spaces::SentFrames;
use super::{CloseFrame, Connection, State, Timer, Transmit};
use crate::frame::{self, Frame};
use crate::packet::{Header, LongType, PacketNumber};
use crate::recovery::SentPacket;
use crate::shared::Epoch;
use bytes::Bytes;
use std::time::Instant;

/// AEAD tag length of every QUIC v1 cipher suite.
const TAG_LEN: usize = 16;
/// Minimum datagram size carrying an Initial packet (RFC 9000 §14.1).
const MIN_INITIAL_DATAGRAM: usize = 1200;
/// Largest GSO batch: the kernel refuses a UDP send whose total payload exceeds an IPv4
/// datagram (65 507 bytes), and quinn-udp drops such a batch silently (EMSGSIZE).
const MAX_GSO_BATCH: usize = 65_000;

/// What a packet of one level would carry.
#[derive(Debug, Default, Clone, Copy)]
struct Wants {
    ack: bool,
    eliciting: bool,
}

impl Connection {
    /// Write the next datagram(s) (up to `max_datagrams` GSO segments of equal size,
    /// the last possibly shorter) into `buf`, which is cleared first.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        buf.clear();
        self.streams.set_now(now);
        match self.state {
            State::Draining | State::Drained => return None,
            State::Closing => return self.poll_close(now, buf),
            _ => {}
        }
        // RFC 9001 §6: a requested or limit-driven key update happens before the next
        // 1-RTT packet; reaching the confidentiality limit closes instead.
        self.key_update_before_send(now);
        if self.state == State::Closing {
            return self.poll_close(now, buf);
        }
        let max_datagrams = if self.state == State::Handshake {
            1
        } else {
            max_datagrams.max(1)
        };
        // RFC 9000 §13.4.2: every packet of this call carries the same codepoint.
        let ecn = self.ecn.start_datagram();
        if let Some(t) = self.poll_path_transmit(now, buf) {
            self.update_loss_timer(now);
            return Some(t);
        }
        if let Some(size) = self.mtud_poll_probe(now, buf) {
            self.path.bytes_sent += size as u64;
            self.stats.udp_tx += 1;
            self.stats.bytes_tx += size as u64;
            self.update_loss_timer(now);
            return Some(Transmit {
                destination: self.path.remote,
                ecn,
                size,
                segment_size: None,
                src_ip: self.path.local_ip,
            });
        }
        let mtu = self.mtud_send_limit();
        let mut segment_size = 0;
        let mut count = 0;
        while count < max_datagrams && buf.len() + segment_size <= MAX_GSO_BATCH {
            let start = buf.len();
            let limit = if count == 0 { mtu } else { segment_size };
            if !self.write_datagram(now, buf, limit) {
                break;
            }
            let len = buf.len() - start;
            count += 1;
            if count == 1 {
                segment_size = len;
            }
            if len < segment_size {
                break; // a short segment must be the last
            }
        }
        self.update_loss_timer(now);
        self.update_ack_timer();
        self.timers
            .set_opt(Timer::StreamExpiry, self.streams.next_expiry());
        self.trace_poll(now);
        if count == 0 {
            return None;
        }
        self.stats.udp_tx += count as u64;
        self.stats.bytes_tx += buf.len() as u64;
        self.path.bytes_sent += buf.len() as u64;
        Some(Transmit {
            destination: self.path.remote,
            ecn,
            size: buf.len(),
            segment_size: (count > 1).then_some(segment_size),
            src_ip: self.path.local_ip,
        })
    }

    /// Bytes the amplification limit leaves for a datagram of at most `limit` bytes
    /// (RFC 9000 §8.1: before validation a server sends at most 3× what it received).
    pub(super) fn amplification_budget(&self, limit: usize) -> usize {
        if self.path.validated {
            return limit;
        }
        let allowed = (3 * self.path.bytes_received).saturating_sub(self.path.bytes_sent);
        limit.min(usize::try_from(allowed).unwrap_or(usize::MAX))
    }

    /// Whether congestion control and the pacer let an ack-eliciting packet of `limit`
    /// bytes go now. Only asked when there is something ack-eliciting to send, so the
    /// pacing timer is armed only when it gates real data. Probes bypass both.
    fn congestion_allows(&mut self, now: Instant, limit: usize) -> bool {
        if self.spaces.iter().any(|s| s.probes > 0) {
            return true;
        }
        let window = self.cc.window();
        if self.bytes_in_flight() + limit as u64 > window {
            if self.recovery_send {
                // RFC 9002 §7.3.2: the one packet allowed "prior to reduction"; the
                // pacer is not consulted either, as the window it paces is stale.
                return true;
            }
            self.timers.stop(Timer::Pacing);
            return false;
        }
        match self.pacer.delay(
            now,
            limit as u64,
            self.path.mtu,
            self.rtt.smoothed(),
            window,
            self.cc.pacing_rate(),
        ) {
            Some(at) if at > now => {
                self.timers.set(Timer::Pacing, at);
                false
            }
            _ => {
                self.timers.stop(Timer::Pacing);
                true
            }
        }
    }

    /// What level `epoch` wants to send, given whether ack-eliciting data is allowed.
    fn wants(&self, epoch: Epoch, may_elicit: bool, now: Instant) -> Wants {
        if epoch == Epoch::Data && self.sending_0rtt() {
            // 0-RTT (RFC 9000 §12.4): no ACKs; streams, their control and datagrams.
            let space = &self.spaces[Self::space_for_epoch(epoch)];
            let eliciting = space.probes > 0
                || !self.datagrams.send.is_empty()
                || self.streams.has_pending_data()
                || self.streams.has_pending_control();
            return Wants {
                ack: false,
                eliciting: eliciting && (may_elicit || space.probes > 0),
            };
        }
        let lvl = &self.levels[epoch.idx()];
        if !lvl.has_keys() {
            return Wants::default();
        }
        let space = &self.spaces[Self::space_for_epoch(epoch)];
        let ack = space.acks.should_send_now() || space.acks.is_due(now);
        let mut eliciting = space.probes > 0 || space.ping_pending || lvl.crypto_send.has_pending();
        if epoch == Epoch::Data && self.state == State::Established {
            eliciting |= self.handshake_done_pending
                || (self.handshake_confirmed && !self.validation.pending_new_tokens.is_empty())
                || !self.cids.pending_new.is_empty()
                || !self.cids.pending_retire.is_empty()
                || !self.datagrams.send.is_empty()
                || self.streams.has_pending_data()
                || self.streams.has_pending_control();
        }
        Wants {
            ack,
            eliciting: eliciting && (may_elicit || space.probes > 0),
        }
    }

    /// Build one datagram of at most `limit` bytes. Returns false if nothing was written.
    fn write_datagram(&mut self, now: Instant, buf: &mut Vec<u8>, limit: usize) -> bool {
        let datagram_start = buf.len();
        let budget = self.amplification_budget(limit);
        // Nothing may exceed the amplification budget, not even an ACK.
        if budget < 64 {
            return false;
        }
        let mut plan: Vec<(Epoch, Wants)> = Vec::with_capacity(3);
        for epoch in Epoch::ALL {
            let w = self.wants(epoch, true, now);
            if w.ack || w.eliciting {
                plan.push((epoch, w));
            }
        }
        if plan.iter().any(|(_, w)| w.eliciting) && !self.congestion_allows(now, limit) {
            self.window_usage.on_blocked(now);
            // Blocked by the window or the pacer: acknowledgements (and probes) only.
            plan.clear();
            for epoch in Epoch::ALL {
                let w = self.wants(epoch, false, now);
                if w.ack || w.eliciting {
                    plan.push((epoch, w));
                }
            }
        }
        if plan.is_empty() {
            self.app_limited = true;
            return false;
        }
        let pad_initial = plan
            .iter()
            .any(|(e, w)| *e == Epoch::Initial && (self.side.is_client() || w.eliciting));
        let end = datagram_start + budget;
        let n = plan.len();
        for (i, (epoch, wants)) in plan.into_iter().enumerate() {
            let last = i + 1 == n;
            let pad_to = if last && pad_initial {
                Some(datagram_start + MIN_INITIAL_DATAGRAM.min(budget))
            } else {
                None
            };
            if end.saturating_sub(buf.len()) < 48 {
                break;
            }
            self.write_packet(now, buf, end, epoch, wants, pad_to);
        }
        buf.len() > datagram_start
    }

    /// Write one packet of level `epoch` ending before `end`.
    fn write_packet(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        end: usize,
        epoch: Epoch,
        wants: Wants,
        pad_to: Option<usize>,
    ) {
        let space_idx = Self::space_for_epoch(epoch);
        let zero_rtt = epoch == Epoch::Data && self.sending_0rtt();
        let pn = self.spaces[space_idx].take_pn();
        let number = PacketNumber::new(pn, self.spaces[space_idx].sent.largest_acked());
        let header = self.header_for(epoch, number);
        let partial = header.encode(buf);
        let payload_start = buf.len();
        let payload_end = end - TAG_LEN;
        let mut sent = SentFrames::default();
        let mut eliciting = false;

        // ACK (RFC 9000 §13.2; never in 0-RTT, §12.4).
        if !zero_rtt && (wants.ack || (wants.eliciting && self.spaces[space_idx].acks.has_unsent()))
        {
            self.write_ack(now, space_idx, epoch, buf, payload_end, &mut sent);
        }

        if wants.eliciting {
            if zero_rtt {
                let room = payload_end.saturating_sub(buf.len());
                let before = buf.len();
                self.streams
                    .write_control_frames(buf, room, &mut sent.streams);
                eliciting |= buf.len() > before;
            } else if epoch == Epoch::Data {
                eliciting |= self.write_data_control(buf, payload_end, &mut sent);
            }
            // CRYPTO.
            loop {
                let room = payload_end.saturating_sub(buf.len());
                let lvl = &mut self.levels[epoch.idx()];
                if room <= 16 || !lvl.crypto_send.has_pending() {
                    break;
                }
                // Header size upper bound: type + offset + length varints.
                let max_data = room - 1 - 8 - 4;
                let Some((offset, data)) = lvl.crypto_send.next(max_data) else {
                    break;
                };
                frame::Crypto::encode_header(offset, data.len(), buf);
                buf.extend_from_slice(&data);
                sent.crypto.push(offset..offset + data.len() as u64);
                eliciting = true;
            }
            if epoch == Epoch::Data {
                eliciting |= self.write_datagrams(buf, payload_end);
                let room = payload_end.saturating_sub(buf.len());
                if room > 8 {
                    let before = buf.len();
                    self.streams
                        .write_stream_frames(buf, room, &mut sent.streams);
                    eliciting |= buf.len() > before;
                }
            }
            let space = &mut self.spaces[space_idx];
            if (!eliciting && (space.probes > 0 || space.ping_pending))
                || (space.ping_pending && payload_end > buf.len())
            {
                buf.push(frame::frame_type::PING as u8);
                eliciting = true;
            }
            space.ping_pending = false;
            if space.probes > 0 && eliciting {
                space.probes -= 1;
            }
        }

        // Padding: datagrams with Initial packets, and the header-protection sample.
        let mut padded = false;
        if let Some(target) = pad_to {
            let target = target.saturating_sub(TAG_LEN).min(payload_end);
            if buf.len() < target {
                buf.resize(target, 0);
                padded = true;
            }
        }
        let min_payload = partial.min_payload_len();
        if buf.len() - payload_start < min_payload {
            buf.resize(payload_start + min_payload, 0);
        }
        let frames = self.trace_frames(epoch, &buf[payload_start..]);
        let keys = if zero_rtt {
            self.zero_rtt.keys.as_ref()
        } else {
            self.levels[epoch.idx()].local.as_ref()
        };
        let Some(keys) = keys else {
            buf.truncate(partial.start);
            return;
        };
        if partial
            .finish(buf, &*keys.header, &*keys.packet, pn)
            .is_err()
        {
            buf.truncate(partial.start);
            return;
        }
        let size = (buf.len() - partial.start) as u16;
        self.trace_packet_sent(now, epoch, pn, usize::from(size), frames);
        sent.ect0 = self.ecn.on_packet_sent(epoch);
        let in_flight = eliciting || padded;
        let rate = in_flight.then(|| self.rate.on_sent(now, self.bytes_in_flight()));
        if let (Epoch::Data, false, Some(largest)) = (epoch, zero_rtt, sent.largest_acked_in_ack) {
            self.key_update.on_ack_sent(largest);
        }
        self.spaces[space_idx].sent.on_packet_sent(
            pn,
            SentPacket {
                time_sent: now,
                size,
                ack_eliciting: eliciting,
                in_flight,
                rate,
                info: sent,
            },
        );
        self.stats.packets_tx += 1;
        if zero_rtt {
            self.stats.zero_rtt_packets_sent += 1;
        } else if epoch == Epoch::Data {
            self.key_update_on_sent(pn);
        }
        if eliciting {
            self.recovery_send = false;
        }
        if in_flight {
            self.cc.on_sent(now, u64::from(size), pn);
            self.pacer.on_sent(u64::from(size));
            let (in_flight, cwnd) = (self.bytes_in_flight(), self.cc.window());
            self.window_usage
                .on_sent(now, in_flight, cwnd, u64::from(self.path.mtu));
            if !self.streams.has_pending_data() && self.datagrams.send.is_empty() {
                self.rate.on_app_limited(self.bytes_in_flight());
            }
        }
        if eliciting {
            self.reset_idle_timer_on_send(now);
        }
        // RFC 9001 §4.9.1: a client discards Initial keys when it first sends Handshake.
        if epoch == Epoch::Handshake && self.side.is_client() {
            self.discard_level(now, Epoch::Initial);
        }
    }

    pub(super) fn header_for(&self, epoch: Epoch, number: PacketNumber) -> Header {
        let dst_cid = self.cids.remote_cid();
        let src_cid = self.cids.local_initial_cid();
        match epoch {
            Epoch::Initial => Header::Initial {
                version: self.version,
                dst_cid,
                src_cid,
                token: self.validation.initial_token.clone(),
                number,
            },
            Epoch::Handshake => Header::Long {
                version: self.version,
                ty: LongType::Handshake,
                dst_cid,
                src_cid,
                number,
            },
            Epoch::Data if self.sending_0rtt() => Header::Long {
                version: self.version,
                ty: LongType::ZeroRtt,
                dst_cid,
                src_cid,
                number,
            },
            Epoch::Data => Header::Short {
                spin: false,
                key_phase: self.key_update.phase,
                dst_cid,
                number,
            },
        }
    }

    fn write_ack(
        &mut self,
        now: Instant,
        space_idx: usize,
        epoch: Epoch,
        buf: &mut Vec<u8>,
        payload_end: usize,
        sent: &mut SentFrames,
    ) {
        let space = &mut self.spaces[space_idx];
        let Some(largest) = space.acks.ranges().next().map(|r| r.end.saturating_sub(1)) else {
            return;
        };
        let exponent = if epoch == Epoch::Data {
            u32::from(self.config.ack_delay_exponent)
        } else {
            3
        };
        let delay = (space.acks.ack_delay(now).as_micros() as u64) >> exponent;
        let ecn = space.acks.ecn_counts().map(|e| frame::EcnCounts {
            ect0: e.ect0,
            ect1: e.ect1,
            ce: e.ce,
        });
        let room = payload_end.saturating_sub(buf.len());
        let written =
            frame::Ack::encode_from_descending(delay, space.acks.ranges(), ecn.as_ref(), room, buf);
        if written > 0 {
            space.acks.on_ack_sent(largest);
            sent.largest_acked_in_ack = Some(largest);
        }
    }

    /// HANDSHAKE_DONE, connection IDs and stream control frames.
    fn write_data_control(
        &mut self,
        buf: &mut Vec<u8>,
        payload_end: usize,
        sent: &mut SentFrames,
    ) -> bool {
        let start = buf.len();
        if self.handshake_done_pending && payload_end > buf.len() {
            Frame::HandshakeDone.encode(buf);
            self.handshake_done_pending = false;
            sent.handshake_done = true;
        }
        // RFC 9000 §8.1.3: a token for the client's next connection, once confirmed. One
        // per packet, so a loss requeues exactly one.
        if self.handshake_confirmed && self.side.is_server() {
            if let Some(token) = self.validation.pending_new_tokens.front() {
                let f = Frame::NewToken(token.clone());
                if payload_end.saturating_sub(buf.len()) >= f.encoded_len() {
                    f.encode(buf);
                    sent.new_token = self.validation.pending_new_tokens.pop_front();
                    self.stats.new_tokens_sent += 1;
                }
            }
        }
        while let Some(&seq) = self.cids.pending_new.front() {
            let Some((cid, token)) = self.cids.local_entry(seq) else {
                self.cids.pending_new.pop_front();
                continue;
            };
            let f = Frame::NewConnectionId(frame::NewConnectionId {
                sequence: seq,
                retire_prior_to: 0,
                id: cid,
                reset_token: token,
            });
            if payload_end.saturating_sub(buf.len()) < f.encoded_len() {
                break;
            }
            self.cids.pending_new.pop_front();
            f.encode(buf);
            sent.new_cids.push(seq);
        }
        while let Some(&seq) = self.cids.pending_retire.front() {
            let f = Frame::RetireConnectionId { sequence: seq };
            if payload_end.saturating_sub(buf.len()) < f.encoded_len() {
                break;
            }
            self.cids.pending_retire.pop_front();
            f.encode(buf);
            sent.retire_cids.push(seq);
        }
        let room = payload_end.saturating_sub(buf.len());
        if room > 0 {
            self.streams
                .write_control_frames(buf, room, &mut sent.streams);
        }
        buf.len() > start
    }

    fn write_datagrams(&mut self, buf: &mut Vec<u8>, payload_end: usize) -> bool {
        let mut wrote = false;
        while let Some(d) = self.datagrams.send.front() {
            let size = frame::Datagram::size(d.len(), true);
            if payload_end.saturating_sub(buf.len()) < size {
                // Too big for what is left; if it cannot fit an empty packet either,
                // it would block the queue forever (MTU shrank): drop it.
                if size + 64 > self.path.mtu as usize {
                    let d = self.datagrams.send.pop_front().unwrap_or_default();
                    self.datagrams.send_bytes -= d.len();
                    continue;
                }
                break;
            }
            let Some(d) = self.datagrams.send.pop_front() else {
                break;
            };
            self.datagrams.send_bytes -= d.len();
            frame::Datagram { data: d }.encode(true, buf);
            wrote = true;
        }
        wrote
    }

    fn reset_idle_timer_on_send(&mut self, now: Instant) {
        // RFC 9000 §10.1: restart on sending the first ack-eliciting packet after
        // receiving; restarting on every send is a simplification that only extends it.
        if self.timers.get(Timer::Idle).is_some() {
            self.reset_idle_timer(now);
        }
    }

    /// While closing: send CONNECTION_CLOSE in every level we have keys for.
    fn poll_close(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if !self.close_pending {
            return None;
        }
        self.close_pending = false;
        let close = self.close.clone()?;
        let mtu = self.path.mtu as usize;
        let any_initial = self.levels[0].has_keys();
        for epoch in Epoch::ALL {
            if !self.levels[epoch.idx()].has_keys() {
                continue;
            }
            // RFC 9000 §10.2.3: before 1-RTT, an application close becomes a transport
            // close with APPLICATION_ERROR.
            let frame = match (&close, epoch) {
                (CloseFrame::Application { .. }, Epoch::Initial | Epoch::Handshake) => {
                    Frame::ConnectionClose(frame::ConnectionClose {
                        error_code: crate::error::TransportErrorCode::APPLICATION_ERROR,
                        frame_type: None,
                        reason: Bytes::new(),
                    })
                }
                (CloseFrame::Application { code, reason }, _) => {
                    Frame::ApplicationClose(frame::ApplicationClose {
                        error_code: *code,
                        reason: truncate_reason(reason, mtu / 2),
                    })
                }
                (CloseFrame::Transport(e), _) => Frame::ConnectionClose(frame::ConnectionClose {
                    error_code: e.code,
                    frame_type: Some(e.frame.unwrap_or(0)),
                    reason: truncate_reason(&Bytes::from(e.reason.clone().into_bytes()), mtu / 2),
                }),
            };
            let space_idx = Self::space_for_epoch(epoch);
            let pn = self.spaces[space_idx].take_pn();
            let number = PacketNumber::new(pn, self.spaces[space_idx].sent.largest_acked());
            let header = self.header_for(epoch, number);
            // Before the address is validated a server's close counts against the 3×
            // amplification limit like everything else (RFC 9000 §8.1).
            let room = if self.path.validated {
                mtu
            } else {
                mtu.min(
                    usize::try_from(
                        (3 * self.path.bytes_received).saturating_sub(self.path.bytes_sent),
                    )
                    .unwrap_or(usize::MAX),
                )
            };
            if buf.len() + header_size_hint(&header) + frame.encoded_len() + TAG_LEN + 4 > room {
                continue;
            }
            let partial = header.encode(buf);
            let payload_start = buf.len();
            frame.encode(buf);
            if epoch == Epoch::Initial && self.side.is_client() && epoch_is_last(self, epoch) {
                let target = MIN_INITIAL_DATAGRAM.min(mtu) - TAG_LEN;
                if buf.len() < target {
                    buf.resize(target, 0);
                }
            }
            let min = partial.min_payload_len();
            if buf.len() - payload_start < min {
                buf.resize(payload_start + min, 0);
            }
            let frames = self.trace_frames(epoch, &buf[payload_start..]);
            let Some(keys) = self.levels[epoch.idx()].local.as_ref() else {
                buf.truncate(partial.start);
                continue;
            };
            if partial
                .finish(buf, &*keys.header, &*keys.packet, pn)
                .is_err()
            {
                buf.truncate(partial.start);
            } else {
                if epoch == Epoch::Data {
                    self.key_update_on_sent(pn);
                }
                self.trace_packet_sent(now, epoch, pn, buf.len() - partial.start, frames);
            }
        }
        let _ = (now, any_initial);
        if buf.is_empty() {
            return None;
        }
        self.stats.udp_tx += 1;
        self.stats.bytes_tx += buf.len() as u64;
        self.path.bytes_sent += buf.len() as u64;
        Some(Transmit {
            destination: self.path.remote,
            ecn: None,
            size: buf.len(),
            segment_size: None,
            src_ip: self.path.local_ip,
        })
    }
}

fn epoch_is_last(conn: &Connection, epoch: Epoch) -> bool {
    Epoch::ALL
        .iter()
        .filter(|e| **e > epoch)
        .all(|e| !conn.levels[e.idx()].has_keys())
}

fn header_size_hint(h: &Header) -> usize {
    match h {
        Header::Short { dst_cid, .. } => 1 + dst_cid.len() + 4,
        Header::Initial { token, .. } => {
            1 + 4 + 2 + 2 * crate::cid::MAX_CID_SIZE + 8 + token.len() + 2 + 4
        }
        _ => 1 + 4 + 2 + 2 * crate::cid::MAX_CID_SIZE + 1 + 2 + 4,
    }
}

fn truncate_reason(r: &Bytes, max: usize) -> Bytes {
    r.slice(..r.len().min(max))
}
