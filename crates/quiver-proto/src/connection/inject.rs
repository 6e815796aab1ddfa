//! Sealing arbitrary payloads with a connection's own keys, for the fuzzer
//! ([`crate::fuzz`]) and conformance tests: a hand-made or mutated payload becomes a
//! packet the peer authenticates, so it reaches frame processing.

use super::Connection;
use crate::packet::PacketNumber;
use crate::recovery::SentPacket;
use crate::shared::Epoch;
use std::time::Instant;

impl Connection {
    /// Seal `payload` as the next packet of `epoch` from this connection, to its current
    /// remote CID, with a four-byte packet number. Too-short payloads are padded with
    /// PADDING so the header-protection sample exists, and a client's Initial is padded
    /// to 1200 bytes. The packet is recorded as sent (not in flight) so that an ACK of
    /// it is legitimate. `None` when the keys of `epoch` are not (or no longer) there.
    pub(crate) fn seal_for_peer(
        &mut self,
        now: Instant,
        epoch: Epoch,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let level = epoch as usize;
        if !self.levels[level].has_keys() {
            return None;
        }
        let space = Self::space_for_epoch(epoch);
        let pn = self.spaces[space].next_pn;
        // The header the send path itself would write (long header for 0-RTT included).
        let header = self.header_for(epoch, PacketNumber::U32(pn as u32));
        let mut buf = Vec::new();
        let partial = header.encode(&mut buf);
        let start = buf.len();
        buf.extend_from_slice(payload);
        let mut min = partial.min_payload_len();
        if epoch == Epoch::Initial && self.side.is_client() {
            // The 16-byte tag is added by `finish`.
            min = min.max(1200usize.saturating_sub(start + 16));
        }
        if buf.len() - start < min {
            buf.resize(start + min, 0);
        }
        let keys = self.levels[level].local.as_ref()?;
        partial
            .finish(&mut buf, &*keys.header, &*keys.packet, pn)
            .ok()?;
        self.spaces[space].next_pn += 1;
        self.spaces[space].sent.on_packet_sent(
            pn,
            SentPacket {
                time_sent: now,
                size: u16::try_from(buf.len()).unwrap_or(u16::MAX),
                ack_eliciting: false,
                in_flight: false,
                rate: None,
                info: Default::default(),
            },
        );
        Some(buf)
    }

    /// Decrypt the long-header packets of a datagram this connection sent, with its own
    /// local keys: the plaintext payloads of its handshake packets, used as fuzz seeds.
    pub(crate) fn open_own(&self, datagram: &[u8]) -> Vec<(Epoch, Vec<u8>)> {
        let mut out = Vec::new();
        let mut next = Some(bytes::BytesMut::from(datagram));
        while let Some(d) = next.take() {
            let Ok((partial, rest)) = crate::packet::PartialDecode::new(d, 0) else {
                break;
            };
            let epoch = match partial.kind() {
                crate::packet::PacketType::Initial => Epoch::Initial,
                crate::packet::PacketType::Handshake => Epoch::Handshake,
                _ => break,
            };
            let Some(keys) = self.levels[epoch as usize].local.as_ref() else {
                break;
            };
            let Ok(mut packet) = partial.finish(Some(&*keys.header)) else {
                break;
            };
            let Some(number) = packet.number() else {
                break;
            };
            let pn = number.expand(self.spaces[epoch as usize].next_pn.saturating_sub(1));
            if packet.decrypt(&*keys.packet, pn).is_ok() {
                out.push((epoch, packet.payload.to_vec()));
            }
            next = rest;
        }
        out
    }

    /// The connection ID this connection currently sends to.
    pub(crate) fn current_remote_cid(&self) -> crate::ConnectionId {
        self.cids.remote_cid()
    }
}
