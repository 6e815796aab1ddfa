//! Sequence numbers of outgoing pure ACKs, chosen as a BSD or Linux sender would.
//!
//! # Why this exists: how smoltcp 0.14 connections deadlock under loss
//! smoltcp puts `remote_last_seq` (its SND.NXT) into every segment, pure ACKs included,
//! and as a receiver it takes a segment's ACK field into account only if the segment
//! passes the RFC 9293 §3.10.7.4 acceptability test: a zero-length segment needs
//! `RCV.NXT <= SEG.SEQ < RCV.NXT + RCV.WND`, or `SEG.SEQ == RCV.NXT` exactly when its
//! receive window is zero (it makes none of the RFC's "special allowance ... to accept
//! valid ACKs" in a zero window). Two ordinary events make a smoltcp sender's SND.NXT
//! unacceptable to its peer, after which the peer drops every ACK it sends:
//!
//! * **Window shrinking by rounding.** With window scaling (shift 3 for 256 KiB
//!   buffers) smoltcp advertises `window >> shift`, rounded down, relative to the ACK
//!   number. When the window is limited by a full receive buffer, the advertised right
//!   edge `ack + (window >> 3 << 3)` moves *left* by up to 7 bytes as the ACK number
//!   advances by amounts that are not multiples of 8. The sender may already have sent
//!   up to the earlier edge; the receiver trims the segment to its current edge, ends
//!   with a zero window and `RCV.NXT` a few bytes below the sender's SND.NXT. From then
//!   on the sender's pure ACKs (`SEG.SEQ = SND.NXT != RCV.NXT`) and its zero-window
//!   probes (sent at SND.NXT) are all discarded, ACK field included. In the echo
//!   workload the receiver is the server, whose application stops reading while its
//!   send buffer is full, and its send buffer only drains through the very ACKs it
//!   discards: the connection never makes progress again (seen in `quiver bench
//!   classes`, 1-conn mode, 3g profile: 55 of 90 requests stuck).
//! * **RTO rewind.** On a retransmission timeout smoltcp rewinds SND.NXT to SND.UNA
//!   (go-back-N) and its pure ACKs then carry the rewound number, which lies below the
//!   peer's RCV.NXT whenever the peer did receive data whose ACKs were lost. If the
//!   peer is rewound at the same time, each side discards the other's ACKs, including
//!   the replies to its own retransmissions, and both retransmit already-received data
//!   forever.
//!
//! Real stacks avoid both on the sending side: BSD fills a pure ACK's sequence number
//! with SND.MAX (the highest number ever sent), not the rewound SND.NXT, and Linux
//! (`tcp_acceptable_seq`) uses SND.NXT but never more than the right edge of the peer's
//! last advertised window. [`AckSeqGuard`] applies that rule to the raw IP packets
//! between smoltcp and the simulator: it tracks, per connection, the highest sequence
//! number sent and the peer's latest ACK number and window (from the segments it
//! receives), and rewrites the sequence number of outgoing pure ACKs to
//! `min(SND.MAX, right edge)`, or exactly the right edge (= the peer's RCV.NXT) when the
//! peer's window is zero, then recomputes the TCP checksum. Segments that carry data,
//! SYN, FIN or RST are never touched, so smoltcp's own state is unaffected; only the
//! number that the peer checks for acceptability changes.

use std::collections::HashMap;
use std::net::IpAddr;

use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpOption, TcpPacket, TcpSeqNumber,
};

/// One direction-independent connection key: (local IP, local port, remote IP, remote
/// port) from this stack's point of view.
type FlowKey = (IpAddr, u16, IpAddr, u16);

/// What the guard knows about one connection.
#[derive(Debug, Default, Clone, Copy)]
struct Flow {
    /// Highest sequence number sent plus one (SND.MAX), counting SYN and FIN.
    snd_max: Option<u32>,
    /// Our SYN carried a window-scale option.
    we_scale: bool,
    /// The window-scale shift the peer's SYN announced.
    peer_shift: Option<u8>,
    /// The peer's latest ACK number and raw window field from a non-SYN segment.
    peer_ack: Option<(u32, u16)>,
}

impl Flow {
    /// Bits the peer's window fields are shifted by (RFC 7323: only if both SYNs
    /// carried the option).
    fn shift(&self) -> u8 {
        match (self.we_scale, self.peer_shift) {
            (true, Some(s)) => s.min(14),
            _ => 0,
        }
    }

    /// The sequence number a pure ACK of ours should carry, if the peer's window is
    /// known.
    fn ack_seq(&self) -> Option<u32> {
        let snd_max = self.snd_max?;
        let (ack, win) = self.peer_ack?;
        let window = u32::from(win) << self.shift();
        let right_edge = ack.wrapping_add(window);
        if window == 0 {
            // smoltcp accepts a zero-length segment in a zero window only at RCV.NXT.
            return Some(ack);
        }
        // In a non-zero window SEG.SEQ must stay strictly below the right edge.
        let last_in_window = right_edge.wrapping_sub(1);
        Some(if seq_lt(last_in_window, snd_max) {
            last_in_window
        } else {
            snd_max
        })
    }
}

/// `a < b` in sequence-number arithmetic.
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Rewrites the sequence numbers of outgoing pure ACKs (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct AckSeqGuard {
    flows: HashMap<FlowKey, Flow>,
    /// Pure ACKs whose sequence number was changed.
    pub(crate) rewritten: u64,
}

/// The parts of an IP packet's TCP segment the guard needs.
struct Segment {
    src: IpAddr,
    dst: IpAddr,
    /// Offset of the TCP header in the IP packet.
    tcp_offset: usize,
}

/// Locates the TCP segment of an IPv4 or IPv6 packet (smoltcp emits no IPv6 extension
/// headers).
fn locate(packet: &[u8]) -> Option<Segment> {
    match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            (ip.next_header() == IpProtocol::Tcp).then_some(())?;
            Some(Segment {
                src: IpAddr::V4(ip.src_addr()),
                dst: IpAddr::V4(ip.dst_addr()),
                tcp_offset: usize::from(ip.header_len()),
            })
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            (ip.next_header() == IpProtocol::Tcp).then_some(())?;
            Some(Segment {
                src: IpAddr::V6(ip.src_addr()),
                dst: IpAddr::V6(ip.dst_addr()),
                tcp_offset: ip.header_len(),
            })
        }
        _ => None,
    }
}

/// The window-scale option of a SYN, if present.
fn window_scale(tcp: &TcpPacket<&[u8]>) -> Option<u8> {
    let mut options = tcp.options();
    while !options.is_empty() {
        let (rest, option) = TcpOption::parse(options).ok()?;
        match option {
            TcpOption::EndOfList => break,
            TcpOption::WindowScale(s) => return Some(s),
            _ => {}
        }
        options = rest;
    }
    None
}

impl AckSeqGuard {
    /// Learns the peer's window from a segment this stack received.
    pub(crate) fn on_receive(&mut self, packet: &[u8]) {
        let Some(seg) = locate(packet) else {
            return;
        };
        let Some(tcp) = packet
            .get(seg.tcp_offset..)
            .and_then(|b| TcpPacket::new_checked(b).ok())
        else {
            return;
        };
        let key = (seg.dst, tcp.dst_port(), seg.src, tcp.src_port());
        if tcp.rst() {
            self.flows.remove(&key);
            return;
        }
        if tcp.syn() {
            if !tcp.ack() {
                // A new connection (or its retransmitted SYN): start afresh.
                self.flows.insert(key, Flow::default());
            }
            let flow = self.flows.entry(key).or_default();
            flow.peer_shift = window_scale(&tcp);
            return;
        }
        if tcp.ack() {
            if let Some(flow) = self.flows.get_mut(&key) {
                flow.peer_ack = Some((tcp.ack_number().0 as u32, tcp.window_len()));
            }
        }
    }

    /// Records a segment this stack is about to send and, if it is a pure ACK whose
    /// sequence number the peer would not accept, rewrites it in place.
    pub(crate) fn on_transmit(&mut self, packet: &mut [u8]) {
        let Some(seg) = locate(packet) else {
            return;
        };
        let Some(tcp_bytes) = packet.get_mut(seg.tcp_offset..) else {
            return;
        };
        let Ok(tcp) = TcpPacket::new_checked(&*tcp_bytes) else {
            return;
        };
        let key = (seg.src, tcp.src_port(), seg.dst, tcp.dst_port());
        if tcp.rst() {
            self.flows.remove(&key);
            return;
        }
        let seq = tcp.seq_number().0 as u32;
        let len = u32::try_from(tcp.payload().len()).unwrap_or(u32::MAX);
        let end = seq
            .wrapping_add(len)
            .wrapping_add(u32::from(tcp.syn()))
            .wrapping_add(u32::from(tcp.fin()));
        let pure_ack = tcp.ack() && !tcp.syn() && !tcp.fin() && len == 0;
        if tcp.syn() {
            if !tcp.ack() {
                self.flows.insert(key, Flow::default());
            }
            let scales = window_scale(&tcp).is_some();
            self.flows.entry(key).or_default().we_scale = scales;
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        if flow.snd_max.is_none_or(|m| seq_lt(m, end)) {
            flow.snd_max = Some(end);
        }
        if !pure_ack {
            return;
        }
        let Some(want) = flow.ack_seq() else {
            return;
        };
        if want == seq {
            return;
        }
        let mut tcp = TcpPacket::new_unchecked(tcp_bytes);
        tcp.set_seq_number(TcpSeqNumber(want as i32));
        tcp.fill_checksum(&IpAddress::from(seg.src), &IpAddress::from(seg.dst));
        self.rewritten += 1;
    }

    /// Forgets connections for which `alive` is false.
    pub(crate) fn retain(&mut self, mut alive: impl FnMut(IpAddr, u16, IpAddr, u16) -> bool) {
        self.flows
            .retain(|&(la, lp, ra, rp), _| alive(la, lp, ra, rp));
    }

    /// Connections tracked.
    pub(crate) fn len(&self) -> usize {
        self.flows.len()
    }
}

/// Packet builders for tests.
#[cfg(test)]
pub(crate) mod testing {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
        TcpSeqNumber, TcpTimestampRepr,
    };

    /// A TCP segment template: ports 49152 → 443, no options, no payload.
    pub(crate) fn segment(
        control: TcpControl,
        seq: u32,
        ack: Option<u32>,
        window: u16,
    ) -> TcpRepr<'static> {
        TcpRepr {
            src_port: 49152,
            dst_port: 443,
            control,
            seq_number: TcpSeqNumber(seq as i32),
            ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
            window_len: window,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None::<TcpTimestampRepr>,
            payload: &[],
        }
    }

    /// `tcp` in an IPv4 packet from `src` to `dst`, with valid checksums.
    pub(crate) fn ipv4(src: [u8; 4], dst: [u8; 4], tcp: &TcpRepr<'_>) -> Vec<u8> {
        let (src, dst) = (Ipv4Address::from(src), Ipv4Address::from(dst));
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut buf = vec![0; ip.buffer_len() + tcp.buffer_len()];
        let caps = ChecksumCapabilities::default();
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf), &caps);
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut buf[ip.buffer_len()..]),
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            &caps,
        );
        buf
    }
}

#[cfg(test)]
mod tests {
    use smoltcp::wire::TcpControl;

    use super::testing::{ipv4, segment};
    use super::*;

    const US: [u8; 4] = [10, 0, 0, 1];
    const PEER: [u8; 4] = [10, 0, 0, 2];

    /// Swaps a template's ports for a segment from the peer.
    fn from_peer(mut tcp: smoltcp::wire::TcpRepr<'static>) -> Vec<u8> {
        std::mem::swap(&mut tcp.src_port, &mut tcp.dst_port);
        ipv4(PEER, US, &tcp)
    }

    fn seq_and_checksum(packet: &[u8]) -> (u32, bool) {
        let tcp = TcpPacket::new_checked(&packet[20..]).unwrap();
        let ok = tcp.verify_checksum(&IpAddress::Ipv4(US.into()), &IpAddress::Ipv4(PEER.into()));
        (tcp.seq_number().0 as u32, ok)
    }

    /// Handshake with window scaling (shift 3 both ways); we sent 1000 bytes of data.
    fn established() -> AckSeqGuard {
        let mut g = AckSeqGuard::default();
        let mut syn = segment(TcpControl::Syn, 100, None, 65535);
        syn.window_scale = Some(3);
        g.on_transmit(&mut ipv4(US, PEER, &syn));
        let mut synack = segment(TcpControl::Syn, 5000, Some(101), 65535);
        synack.window_scale = Some(3);
        g.on_receive(&from_peer(synack));
        g.on_transmit(&mut ipv4(
            US,
            PEER,
            &segment(TcpControl::None, 101, Some(5001), 100),
        ));
        let data = [7u8; 1000];
        let mut seg = segment(TcpControl::Psh, 101, Some(5001), 100);
        seg.payload = &data;
        g.on_transmit(&mut ipv4(US, PEER, &seg));
        g
    }

    #[test]
    fn ack_beyond_a_shrunk_zero_window_is_moved_to_rcv_nxt() {
        let mut g = established();
        // The peer took only 999 bytes and closed its window (edge moved left by one).
        g.on_receive(&from_peer(segment(TcpControl::None, 5001, Some(1100), 0)));
        let mut ack = ipv4(US, PEER, &segment(TcpControl::None, 1101, Some(5001), 100));
        g.on_transmit(&mut ack);
        assert_eq!(seq_and_checksum(&ack), (1100, true));
        assert_eq!(g.rewritten, 1);
        // A zero-window probe carries data: never touched.
        let byte = [1u8];
        let mut probe = segment(TcpControl::None, 1101, Some(5001), 100);
        probe.payload = &byte;
        let mut probe = ipv4(US, PEER, &probe);
        g.on_transmit(&mut probe);
        assert_eq!(seq_and_checksum(&probe), (1101, true));
        assert_eq!(g.rewritten, 1);
    }

    #[test]
    fn ack_after_rto_rewind_carries_snd_max() {
        let mut g = established();
        g.on_receive(&from_peer(segment(TcpControl::None, 5001, Some(101), 1000)));
        // After an RTO smoltcp's pure ACKs carry the rewound SND.NXT (101).
        let mut ack = ipv4(US, PEER, &segment(TcpControl::None, 101, Some(5001), 100));
        g.on_transmit(&mut ack);
        assert_eq!(seq_and_checksum(&ack), (1101, true));
    }

    #[test]
    fn acceptable_acks_are_left_alone() {
        let mut g = established();
        g.on_receive(&from_peer(segment(
            TcpControl::None,
            5001,
            Some(1101),
            1000,
        )));
        let mut ack = ipv4(US, PEER, &segment(TcpControl::None, 1101, Some(5001), 100));
        let before = ack.clone();
        g.on_transmit(&mut ack);
        assert_eq!(ack, before);
        assert_eq!(g.rewritten, 0);
    }

    #[test]
    fn reset_forgets_the_connection() {
        let mut g = established();
        assert_eq!(g.len(), 1);
        g.on_receive(&from_peer(segment(TcpControl::Rst, 5001, None, 0)));
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn zero_window_ack_carries_rcv_nxt() {
        let flow = Flow {
            snd_max: Some(1001),
            we_scale: true,
            peer_shift: Some(3),
            peer_ack: Some((1000, 0)),
        };
        assert_eq!(flow.ack_seq(), Some(1000));
    }

    #[test]
    fn open_window_ack_carries_snd_max_within_window() {
        let mut flow = Flow {
            snd_max: Some(5000),
            we_scale: true,
            peer_shift: Some(3),
            peer_ack: Some((1000, 1000)),
        };
        // Right edge 9000: SND.MAX fits.
        assert_eq!(flow.ack_seq(), Some(5000));
        // Right edge 1000 + 8 * 100 = 1800: clamp to the last byte inside.
        flow.peer_ack = Some((1000, 100));
        assert_eq!(flow.ack_seq(), Some(1799));
    }

    #[test]
    fn no_scaling_unless_both_syns_carried_it() {
        let flow = Flow {
            snd_max: Some(5000),
            we_scale: false,
            peer_shift: Some(3),
            peer_ack: Some((1000, 100)),
        };
        assert_eq!(flow.ack_seq(), Some(1099));
    }

    #[test]
    fn wraps_around() {
        let flow = Flow {
            snd_max: Some(10),
            we_scale: false,
            peer_shift: None,
            peer_ack: Some((u32::MAX - 5, 100)),
        };
        assert_eq!(flow.ack_seq(), Some(10));
    }
}
