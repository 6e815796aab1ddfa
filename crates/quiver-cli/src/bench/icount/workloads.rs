//! The workloads of `quiver bench instructions`: each one is a hot path of the transport,
//! set up once and then repeated `iters` times through the public API of `quiver_proto`.
//!
//! A workload is run by [`run`]; everything done before the first measured operation
//! (handshakes, key schedules, warm-up transfers) is setup, which the driver removes by
//! running every workload at `N` and `2N` operations and taking the difference.

use anyhow::{bail, ensure, Context};
use bytes::{Bytes, BytesMut};
use clap::ValueEnum;
use quiver_proto::cc::{
    AckSample, AckedPacket, Controller, DeliveryRateEstimator, NewReno, NewRenoConfig, WindowUsage,
};
use quiver_proto::coding::BufMutExt;
use quiver_proto::crypto::{CipherSuiteSelection, KeyChange, Keys, TlsSession};
use quiver_proto::frame::{self, Frame};
use quiver_proto::packet::{Header, PacketNumber, PartialDecode};
use quiver_proto::recovery::{AckTracker, LossSpace, RttEstimator, SentPacket};
use quiver_proto::{ConnectionId, StreamId};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::transfer::Transfer;

/// STREAM data carried by each packet of the seal/open workloads.
pub const STREAM_DATA_LEN: usize = 1400;
/// Destination connection ID length of the seal/open workloads (the default generator's).
const CID_LEN: usize = 8;
/// ACK ranges of the ACK workloads.
pub const ACK_RANGES: usize = 100;
/// Packets acknowledged per ACK range by `ack-recv-100`.
const PACKETS_PER_RANGE: u64 = 2;
/// UDP payload size recorded for each sent packet of the ACK workloads.
const SENT_SIZE: u16 = 1452;
/// Bytes moved per operation of the transfer workloads.
pub const TRANSFER_BYTES: u64 = 1 << 20;

/// One measured hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// Encode and seal one 1-RTT packet with a 1400-byte STREAM frame, AES-128-GCM.
    #[value(name = "seal-aes128")]
    SealAes128,
    /// The same with AES-256-GCM (what two Quiver endpoints negotiate by default).
    #[value(name = "seal-aes256")]
    SealAes256,
    /// The same with ChaCha20-Poly1305.
    #[value(name = "seal-chacha20")]
    SealChacha20,
    /// Remove header protection, open and decode one such packet, AES-128-GCM.
    #[value(name = "open-aes128")]
    OpenAes128,
    /// The same with AES-256-GCM.
    #[value(name = "open-aes256")]
    OpenAes256,
    /// The same with ChaCha20-Poly1305.
    #[value(name = "open-chacha20")]
    OpenChacha20,
    /// Sender bookkeeping of the 200 packets `ack-recv-100` acknowledges (its baseline).
    #[value(name = "ack-sent-200")]
    AckSent200,
    /// Record 200 sent packets, then decode and process one ACK frame of 100 ranges
    /// acknowledging them (loss space, RTT, delivery rate, window usage, NewReno).
    #[value(name = "ack-recv-100")]
    AckRecv100,
    /// Write one ACK frame of 100 ranges from an ACK tracker, as the send path does.
    #[value(name = "ack-encode-100")]
    AckEncode100,
    /// 1 MiB on one unidirectional stream between two endpoints on a simulated link.
    #[value(name = "transfer-1")]
    Transfer1,
    /// 1 MiB split over 100 concurrent unidirectional streams.
    #[value(name = "transfer-100")]
    Transfer100,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 11] = [
        Workload::SealAes128,
        Workload::SealAes256,
        Workload::SealChacha20,
        Workload::OpenAes128,
        Workload::OpenAes256,
        Workload::OpenChacha20,
        Workload::AckSent200,
        Workload::AckRecv100,
        Workload::AckEncode100,
        Workload::Transfer1,
        Workload::Transfer100,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::SealAes128 => "seal-aes128",
            Workload::SealAes256 => "seal-aes256",
            Workload::SealChacha20 => "seal-chacha20",
            Workload::OpenAes128 => "open-aes128",
            Workload::OpenAes256 => "open-aes256",
            Workload::OpenChacha20 => "open-chacha20",
            Workload::AckSent200 => "ack-sent-200",
            Workload::AckRecv100 => "ack-recv-100",
            Workload::AckEncode100 => "ack-encode-100",
            Workload::Transfer1 => "transfer-1",
            Workload::Transfer100 => "transfer-100",
        }
    }

    /// What one operation is (the unit of the per-operation count).
    pub fn unit(self) -> &'static str {
        match self {
            Workload::SealAes128
            | Workload::SealAes256
            | Workload::SealChacha20
            | Workload::OpenAes128
            | Workload::OpenAes256
            | Workload::OpenChacha20 => "packet",
            Workload::AckSent200 => "200 packets",
            Workload::AckRecv100 | Workload::AckEncode100 => "ACK frame",
            Workload::Transfer1 | Workload::Transfer100 => "MiB",
        }
    }

    /// Operations per run at `N` unless overridden: enough that setup noise is small
    /// against `N` operations, few enough that a run under callgrind takes seconds.
    pub fn default_iters(self) -> u64 {
        match self {
            Workload::Transfer1 | Workload::Transfer100 => 4,
            Workload::AckSent200 | Workload::AckRecv100 | Workload::AckEncode100 => 500,
            _ => 10_000,
        }
    }

    /// Factor from one operation to one unit: the 100-stream transfer moves
    /// `100 · ⌊1 MiB / 100⌋` bytes per operation, reported per MiB.
    pub fn unit_scale(self) -> f64 {
        match self {
            Workload::Transfer100 => TRANSFER_BYTES as f64 / ((TRANSFER_BYTES / 100) * 100) as f64,
            _ => 1.0,
        }
    }

    /// A workload whose count is included in this one's and may be subtracted from it.
    pub fn baseline(self) -> Option<Workload> {
        match self {
            Workload::AckRecv100 => Some(Workload::AckSent200),
            _ => None,
        }
    }

    /// Whether the per-side breakdown applies (the transfer workloads).
    pub fn is_transfer(self) -> bool {
        matches!(self, Workload::Transfer1 | Workload::Transfer100)
    }
}

/// Run `w`: setup, then `iters` operations. Returns a checksum of the work done (printed
/// by the worker so that nothing can be optimised away).
pub fn run(w: Workload, iters: u64) -> anyhow::Result<u64> {
    match w {
        Workload::SealAes128 => Seal::new(CipherSuiteSelection::Aes128Only)?.run(iters),
        Workload::SealAes256 => Seal::new(CipherSuiteSelection::Aes256Only)?.run(iters),
        Workload::SealChacha20 => Seal::new(CipherSuiteSelection::ChaCha20Only)?.run(iters),
        Workload::OpenAes128 => Open::new(CipherSuiteSelection::Aes128Only)?.run(iters),
        Workload::OpenAes256 => Open::new(CipherSuiteSelection::Aes256Only)?.run(iters),
        Workload::OpenChacha20 => Open::new(CipherSuiteSelection::ChaCha20Only)?.run(iters),
        Workload::AckSent200 => AckRecv::new().run(iters, false),
        Workload::AckRecv100 => AckRecv::new().run(iters, true),
        Workload::AckEncode100 => AckEncode::new().run(iters),
        Workload::Transfer1 => Transfer::new(1)?.run(iters),
        Workload::Transfer100 => Transfer::new(100)?.run(iters),
    }
}

// ---------------------------------------------------------------------------------------
// 1-RTT keys
// ---------------------------------------------------------------------------------------

/// A self-signed Ed25519 certificate and its key, for handshakes in setup.
pub(super) fn test_cert() -> anyhow::Result<(
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
)> {
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])?.self_signed(&key_pair)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    Ok((cert.der().clone(), key))
}

/// ALPN of the handshakes run in setup.
pub(super) const ALPN: &[u8] = b"quiver-icount";

/// Run a TLS 1.3 handshake between two [`TlsSession`]s restricted to `suite` and return
/// the 1-RTT keys of (client, server).
fn one_rtt_keys(suite: CipherSuiteSelection) -> anyhow::Result<(Keys, Keys)> {
    let (cert, key) = test_cert()?;
    let server_cfg = quiver_proto::crypto::server_config(vec![cert], key, &[ALPN], suite, None)?;
    let client_cfg = quiver_proto::crypto::insecure_client_config(&[ALPN], suite, None)?;
    let client = TlsSession::client(Arc::new(client_cfg), "localhost", vec![0x01, 0x00])?;
    let server = TlsSession::server(Arc::new(server_cfg), vec![0x01, 0x00])?;
    let mut sessions = [client, server];
    let mut keys: [Option<Keys>; 2] = [None, None];
    for _ in 0..16 {
        let mut moved = false;
        for from in 0..2 {
            // One segment per encryption level: rustls reads each level's bytes apart.
            let mut segments = vec![Vec::new()];
            loop {
                let buf = segments.last_mut().expect("one segment");
                let before = buf.len();
                match sessions[from].write_handshake(buf) {
                    Some(change) => {
                        if let KeyChange::OneRtt { keys: k } = change {
                            keys[from] = Some(k);
                        }
                        segments.push(Vec::new());
                    }
                    None if buf.len() == before => break,
                    None => {}
                }
            }
            for segment in segments.iter().filter(|s| !s.is_empty()) {
                moved = true;
                sessions[1 - from]
                    .read_handshake(segment)
                    .map_err(|e| anyhow::anyhow!("handshake: {e}"))?;
            }
        }
        if !moved {
            break;
        }
    }
    let [client_keys, server_keys] = keys;
    match (client_keys, server_keys) {
        (Some(c), Some(s)) => Ok((c, s)),
        _ => bail!("the handshake did not produce 1-RTT keys"),
    }
}

// ---------------------------------------------------------------------------------------
// seal / open
// ---------------------------------------------------------------------------------------

/// Writes 1-RTT packets the way the packetizer does: short header, one STREAM frame
/// without a Length field filling the packet, AEAD seal, header protection.
struct Seal {
    keys: Keys,
    cid: ConnectionId,
    data: Vec<u8>,
    buf: Vec<u8>,
    pn: u64,
    offset: u64,
}

impl Seal {
    fn new(suite: CipherSuiteSelection) -> anyhow::Result<Self> {
        let (client, _) = one_rtt_keys(suite)?;
        Ok(Self::with_keys(client))
    }

    fn with_keys(keys: Keys) -> Self {
        Seal {
            keys,
            cid: ConnectionId::new(&[0x5a; CID_LEN]).expect("8-byte CID"),
            data: (0..STREAM_DATA_LEN).map(|i| i as u8).collect(),
            buf: Vec::with_capacity(1500),
            // Past the first packets: a realistic 2- or 3-byte truncated number.
            pn: 100_000,
            offset: 10 << 20,
        }
    }

    /// Seal the next packet into `self.buf`.
    fn seal_one(&mut self) -> anyhow::Result<()> {
        self.buf.clear();
        let number = PacketNumber::new(self.pn, Some(self.pn.saturating_sub(100)));
        let header = Header::Short {
            spin: false,
            key_phase: false,
            dst_cid: self.cid,
            number,
        };
        let partial = header.encode(&mut self.buf);
        frame::Stream::encode_header(
            StreamId(3),
            self.offset,
            self.data.len(),
            false,
            false,
            &mut self.buf,
        );
        self.buf.extend_from_slice(&self.data);
        partial
            .finish(
                &mut self.buf,
                &*self.keys.local.header,
                &*self.keys.local.packet,
                self.pn,
            )
            .map_err(|e| anyhow::anyhow!("seal: {e}"))?;
        self.pn += 1;
        self.offset += self.data.len() as u64;
        Ok(())
    }

    fn run(mut self, iters: u64) -> anyhow::Result<u64> {
        let mut sum = 0u64;
        for _ in 0..iters {
            self.seal_one()?;
            sum = sum.wrapping_add(u64::from(black_box(&self.buf)[self.buf.len() - 1]));
        }
        Ok(sum)
    }
}

/// Opens packets sealed by [`Seal`]: parse the header, remove header protection, expand
/// the packet number, AEAD open, decode the frames.
struct Open {
    /// Sealed datagrams and their full packet numbers, opened in turn.
    packets: Vec<(Vec<u8>, u64)>,
    keys: Keys,
}

impl Open {
    fn new(suite: CipherSuiteSelection) -> anyhow::Result<Self> {
        let (client, server) = one_rtt_keys(suite)?;
        let mut seal = Seal::with_keys(client);
        let mut packets = Vec::new();
        for _ in 0..64 {
            let pn = seal.pn;
            seal.seal_one()?;
            packets.push((seal.buf.clone(), pn));
        }
        Ok(Open {
            packets,
            keys: server,
        })
    }

    fn run(self, iters: u64) -> anyhow::Result<u64> {
        let mut sum = 0u64;
        for i in 0..iters {
            let (bytes, pn) = &self.packets[i as usize % self.packets.len()];
            // The receive path gets the datagram as a BytesMut of its own.
            let datagram = BytesMut::from(&bytes[..]);
            let (partial, rest) =
                PartialDecode::new(datagram, CID_LEN).map_err(|e| anyhow::anyhow!("{e}"))?;
            ensure!(rest.is_none(), "unexpected coalesced packet");
            let mut packet = partial
                .finish(Some(&*self.keys.remote.header))
                .map_err(|e| anyhow::anyhow!("header protection: {e}"))?;
            let number = packet.number().context("packet without a number")?;
            // The expected number is the next one (the previous packet was the largest).
            let full = number.expand(*pn);
            ensure!(full == *pn, "packet number {full} != {pn}");
            packet
                .decrypt(&*self.keys.remote.packet, full)
                .map_err(|_| anyhow::anyhow!("AEAD open failed"))?;
            for f in frame::Iter::new(packet.payload.freeze()) {
                match f.map_err(|e| anyhow::anyhow!("frame: {e:?}"))? {
                    Frame::Stream(s) => sum = sum.wrapping_add(s.offset + s.data.len() as u64),
                    other => bail!("unexpected frame {:?}", other.ty()),
                }
            }
        }
        Ok(black_box(sum))
    }
}

// ---------------------------------------------------------------------------------------
// ACK processing and encoding
// ---------------------------------------------------------------------------------------

/// What the ACK workloads remember per sent packet (the connection keeps its frames).
#[derive(Debug, Clone, Copy)]
struct SentStream {
    offset: u64,
    len: u32,
}

/// A sender's recovery state fed one ACK frame per operation, as the connection's
/// `on_ack_frame` does.
struct AckRecv {
    now: Instant,
    space: LossSpace<SentStream>,
    rtt: RttEstimator,
    rate: DeliveryRateEstimator,
    usage: WindowUsage,
    cc: Box<dyn Controller>,
    next_pn: u64,
    /// The ACK frame after Largest Acknowledged: delay, range count, ranges.
    tail: Vec<u8>,
    frame: Vec<u8>,
}

impl AckRecv {
    fn new() -> Self {
        let now = Instant::now();
        // Every range acknowledges PACKETS_PER_RANGE packets and is separated from the
        // next by one packet number that was never sent: gap 0, length 1 (RFC 9000 §19.3.1).
        let mut tail = Vec::new();
        tail.put_var(1000); // ACK Delay (scaled by 2^3: 8 ms)
        tail.put_var(ACK_RANGES as u64 - 1);
        tail.put_var(PACKETS_PER_RANGE - 1);
        for _ in 1..ACK_RANGES {
            tail.put_var(0);
            tail.put_var(PACKETS_PER_RANGE - 1);
        }
        AckRecv {
            now,
            space: LossSpace::new(),
            rtt: RttEstimator::new(Duration::from_millis(10)),
            rate: DeliveryRateEstimator::new(),
            usage: WindowUsage::new(),
            cc: Box::new(NewReno::new(NewRenoConfig::default(), SENT_SIZE)),
            next_pn: 1000,
            tail,
            frame: Vec::with_capacity(512),
        }
    }

    /// Record the packets one ACK will acknowledge, as the send path does.
    fn send_packets(&mut self) {
        for _ in 0..ACK_RANGES {
            for _ in 0..PACKETS_PER_RANGE {
                let pn = self.next_pn;
                self.next_pn += 1;
                let in_flight = self.space.bytes_in_flight() + u64::from(SENT_SIZE);
                let snapshot = self.rate.on_sent(self.now, self.space.bytes_in_flight());
                self.space.on_packet_sent(
                    pn,
                    SentPacket {
                        time_sent: self.now,
                        size: SENT_SIZE,
                        ack_eliciting: true,
                        in_flight: true,
                        rate: Some(snapshot),
                        info: SentStream {
                            offset: pn * 1400,
                            len: 1400,
                        },
                    },
                );
                self.cc.on_sent(self.now, u64::from(SENT_SIZE), pn);
                self.usage
                    .on_sent(self.now, in_flight, self.cc.window(), u64::from(SENT_SIZE));
            }
            // The packet number between two ranges is never sent.
            self.next_pn += 1;
        }
    }

    /// Decode and process the ACK of everything [`Self::send_packets`] recorded.
    fn process_ack(&mut self) -> anyhow::Result<u64> {
        let largest = self.next_pn - 2;
        self.frame.clear();
        self.frame.push(frame::frame_type::ACK as u8);
        self.frame.put_var(largest);
        self.frame.extend_from_slice(&self.tail);
        let payload = Bytes::copy_from_slice(&self.frame);
        let mut acked = 0u64;
        for f in frame::Iter::new(payload) {
            let Frame::Ack(ack) = f.map_err(|e| anyhow::anyhow!("frame: {e:?}"))? else {
                bail!("not an ACK frame");
            };
            let delay = Duration::from_micros(ack.delay << 3);
            let outcome = self
                .space
                .on_ack_received(self.now, ack.iter_ranges(), delay, &mut self.rtt, true)
                .map_err(|e| anyhow::anyhow!("ACK rejected: {e}"))?;
            ensure!(outcome.lost.is_empty(), "unexpected loss");
            let packets = AckedPacket::from_sent(&outcome.newly_acked);
            for (_, p) in &outcome.newly_acked {
                self.rate.on_packet_acked(self.now, p);
            }
            let mut sample = AckSample::new(
                &packets,
                &self.rtt,
                outcome.rtt_sample,
                self.space.bytes_in_flight(),
            );
            sample.delivery = self.rate.take_sample(self.rtt.min());
            sample.app_limited = self.rate.is_app_limited();
            self.usage.on_ack(&mut sample);
            self.cc.on_ack(self.now, &sample);
            for (_, p) in outcome.newly_acked {
                acked += u64::from(p.info.len) + p.info.offset;
            }
        }
        Ok(acked)
    }

    fn run(mut self, iters: u64, ack: bool) -> anyhow::Result<u64> {
        let mut sum = 0u64;
        for _ in 0..iters {
            self.send_packets();
            self.now += Duration::from_millis(10);
            if ack {
                sum = sum.wrapping_add(self.process_ack()?);
            } else {
                // The baseline forgets the packets without an ACK.
                sum = sum.wrapping_add(self.space.discard());
            }
            ensure!(self.space.outstanding() == 0, "packets left outstanding");
        }
        Ok(black_box(sum))
    }
}

/// A receiver's ACK tracker holding 100 ranges; each operation writes the ACK frame the
/// way the connection's `write_ack` does (straight from the tracker's ranges, largest
/// first, with [`frame::Ack::encode_from_descending`]).
struct AckEncode {
    now: Instant,
    acks: AckTracker,
    buf: Vec<u8>,
}

impl AckEncode {
    fn new() -> Self {
        let now = Instant::now();
        let mut acks = AckTracker::new();
        acks.set_max_ranges(ACK_RANGES);
        let mut pn = 1000;
        for _ in 0..ACK_RANGES {
            for _ in 0..PACKETS_PER_RANGE {
                acks.on_packet_received(now, pn, true, None);
                pn += 1;
            }
            pn += 1;
        }
        AckEncode {
            now: now + Duration::from_millis(1),
            acks,
            buf: Vec::with_capacity(1500),
        }
    }

    fn run(mut self, iters: u64) -> anyhow::Result<u64> {
        ensure!(
            self.acks.range_count() == ACK_RANGES,
            "tracker holds {} ranges",
            self.acks.range_count()
        );
        let mut sum = 0u64;
        for _ in 0..iters {
            self.buf.clear();
            let delay = (self.acks.ack_delay(self.now).as_micros() as u64) >> 3;
            let written = frame::Ack::encode_from_descending(
                delay,
                self.acks.ranges(),
                None,
                1400,
                &mut self.buf,
            );
            ensure!(written > 0, "ACK did not fit");
            sum = sum.wrapping_add(black_box(written) as u64);
        }
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_roundtrips_every_suite() {
        for suite in [
            CipherSuiteSelection::Aes128Only,
            CipherSuiteSelection::Aes256Only,
            CipherSuiteSelection::ChaCha20Only,
        ] {
            let open = Open::new(suite).unwrap();
            assert!(open.run(3).unwrap() > 0);
        }
    }

    #[test]
    fn ack_workloads_ack_everything_they_send() {
        assert!(AckRecv::new().run(3, true).unwrap() > 0);
        assert!(AckRecv::new().run(3, false).unwrap() > 0);
        let mut enc = AckEncode::new();
        enc.buf.clear();
        assert!(enc.run(2).unwrap() > 100);
    }
}
