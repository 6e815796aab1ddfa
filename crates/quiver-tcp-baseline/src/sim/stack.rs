//! One smoltcp interface on a simulator address: the device that turns IP packets into
//! simulator datagrams, the socket set, and virtual-time conversion.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use quiver_netem::sim::Datagram;
use smoltcp::iface::{Config, Interface, PollResult, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, AnySocket};
use smoltcp::wire::{
    HardwareAddress, IpAddress, IpCidr, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
};

use super::ackseq::AckSeqGuard;
use super::TcpConfig;
use crate::BaselineError;

/// Upper bound on poll rounds per event (each round sends at most one segment per
/// socket), so a misbehaving socket cannot stall the simulation.
pub(crate) const MAX_ROUNDS: usize = 100_000;

/// An IP-medium device whose wire is two packet queues.
#[derive(Debug)]
struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

struct RxToken(Vec<u8>);
struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        self.0.push_back(buf);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((RxToken(packet), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

/// A smoltcp interface bound to one simulator address.
pub(crate) struct Stack {
    iface: Interface,
    device: QueueDevice,
    pub(crate) sockets: SocketSet<'static>,
    local: SocketAddr,
    config: TcpConfig,
    /// Virtual instant that is smoltcp time zero (the first `now` seen).
    epoch: Option<Instant>,
    now: Option<Instant>,
    /// Simulator address each peer IP was last heard from.
    neighbours: HashMap<IpAddr, SocketAddr>,
    /// Packets dropped because their destination IP had no known simulator address.
    pub(crate) unroutable: u64,
    /// Retransmitted SYNs dropped because their connection already has a socket.
    pub(crate) duplicate_syns: u64,
    /// Keeps the sequence numbers of outgoing pure ACKs acceptable to the peer.
    ack_guard: AckSeqGuard,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("local", &self.local)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Stack {
    pub(crate) fn new(local: SocketAddr, config: TcpConfig) -> Result<Self, BaselineError> {
        if config.rx_buffer == 0 || config.rx_buffer > 1 << 30 || config.tx_buffer == 0 {
            return Err(BaselineError::Address(format!(
                "buffer sizes must be in 1..=1 GiB (rx {}, tx {})",
                config.rx_buffer, config.tx_buffer
            )));
        }
        if config.mtu < 1280 {
            return Err(BaselineError::Address(format!(
                "MTU {} is below 1280",
                config.mtu
            )));
        }
        let mut device = QueueDevice {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            mtu: config.mtu,
        };
        let mut cfg = Config::new(HardwareAddress::Ip);
        cfg.random_seed = config.seed ^ address_seed(local);
        let mut iface = Interface::new(cfg, &mut device, smoltcp::time::Instant::ZERO);
        // Prefix 0: every peer is on-link, so no routes are needed.
        let cidr = IpCidr::new(IpAddress::from(local.ip()), 0);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(cidr);
        });
        Ok(Self {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            local,
            config,
            epoch: None,
            now: None,
            neighbours: HashMap::new(),
            unroutable: 0,
            duplicate_syns: 0,
            ack_guard: AckSeqGuard::default(),
        })
    }

    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }

    /// Sets the virtual clock (monotonic: an earlier `now` is ignored).
    pub(crate) fn set_now(&mut self, now: Instant) {
        self.epoch.get_or_insert(now);
        if self.now.is_none_or(|t| now > t) {
            self.now = Some(now);
        }
    }

    /// The virtual clock as smoltcp time.
    fn smol_now(&self) -> smoltcp::time::Instant {
        match (self.epoch, self.now) {
            (Some(e), Some(n)) => {
                let micros = n.saturating_duration_since(e).as_micros();
                smoltcp::time::Instant::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
            }
            _ => smoltcp::time::Instant::ZERO,
        }
    }

    /// Queues a received IP packet and remembers where its sender lives.
    pub(crate) fn receive(&mut self, from: SocketAddr, packet: Vec<u8>) {
        self.neighbours.insert(from.ip(), from);
        tracing::trace!(target: "quiver_tcp_baseline::segment", "{} rx {}", self.local, Segment(&packet));
        if self.is_duplicate_syn(&packet) {
            self.duplicate_syns += 1;
            return;
        }
        self.ack_guard.on_receive(&packet);
        self.device.rx.push_back(packet);
    }

    /// Whether `packet` is a SYN (without ACK) for a connection that already has a
    /// socket here, i.e. a retransmission after our SYN-ACK was lost.
    ///
    /// smoltcp hands an incoming segment to the *first* socket in the set that accepts
    /// it, and a listening socket accepts any SYN for its port. The server keeps spare
    /// listeners, and `SocketSet` puts a new socket into the lowest free slot, so a
    /// listener can sit in front of the half-open socket of the same 4-tuple. The
    /// retransmitted SYN then opens a second connection with the same 4-tuple and a
    /// new initial sequence number; the client's ACK of the first SYN-ACK reaches that
    /// socket, which resets it, and the client's connection dies (`Closed`). The
    /// half-open socket itself ignores a repeated SYN (it retransmits its SYN-ACK on
    /// its own timer), so dropping the SYN here gives the behaviour a 4-tuple lookup
    /// before the listener lookup would.
    fn is_duplicate_syn(&self, packet: &[u8]) -> bool {
        let Some((src, dst, tcp)) = tcp_of(packet) else {
            return false;
        };
        if !tcp.syn() || tcp.ack() {
            return false;
        }
        let remote = (IpAddress::from(src), tcp.src_port());
        let local = (IpAddress::from(dst), tcp.dst_port());
        self.sockets.iter().any(|(_, s)| {
            let Some(s) = tcp::Socket::downcast(s) else {
                return false;
            };
            !matches!(
                s.state(),
                tcp::State::Closed | tcp::State::Listen | tcp::State::TimeWait
            ) && s.remote_endpoint().map(|e| (e.addr, e.port)) == Some(remote)
                && s.local_endpoint().map(|e| (e.addr, e.port)) == Some(local)
        })
    }

    /// Tells the stack where `peer`'s IP lives (a client's server).
    pub(crate) fn add_neighbour(&mut self, peer: SocketAddr) {
        self.neighbours.insert(peer.ip(), peer);
    }

    /// A new TCP socket with the configured buffers and options.
    pub(crate) fn new_socket(&self) -> tcp::Socket<'static> {
        let rx = tcp::SocketBuffer::new(vec![0; self.config.rx_buffer]);
        let tx = tcp::SocketBuffer::new(vec![0; self.config.tx_buffer]);
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_congestion_control(self.config.congestion);
        socket.set_nagle_enabled(self.config.nagle);
        socket.set_ack_delay(
            self.config
                .ack_delay
                .map(|d| smoltcp::time::Duration::from_micros(d.as_micros() as u64)),
        );
        socket
    }

    pub(crate) fn context(&mut self) -> &mut smoltcp::iface::Context {
        self.iface.context()
    }

    /// Runs smoltcp once: all queued ingress, then one egress round. Returns whether
    /// anything happened.
    pub(crate) fn poll_once(&mut self) -> bool {
        let now = self.smol_now();
        let sent_before = self.device.tx.len();
        let r = self.iface.poll(now, &mut self.device, &mut self.sockets);
        r == PollResult::SocketStateChanged || self.device.tx.len() != sent_before
    }

    /// The next packet to send, as a simulator datagram.
    pub(crate) fn pop_transmit(&mut self) -> Option<Datagram> {
        while let Some(mut packet) = self.device.tx.pop_front() {
            self.ack_guard.on_transmit(&mut packet);
            tracing::trace!(target: "quiver_tcp_baseline::segment", "{} tx {}", self.local, Segment(&packet));
            match destination(&packet).and_then(|ip| self.neighbours.get(&ip)) {
                Some(&dst) => return Some(Datagram::new(self.local, dst, packet)),
                None => self.unroutable += 1,
            }
        }
        self.prune_ack_guard();
        None
    }

    /// Pure ACKs whose sequence number [`AckSeqGuard`] rewrote.
    pub(crate) fn rewritten_acks(&self) -> u64 {
        self.ack_guard.rewritten
    }

    /// Drops the ACK guard's state for connections that no longer have a socket, once
    /// it tracks noticeably more connections than there are sockets.
    fn prune_ack_guard(&mut self) {
        if self.ack_guard.len() <= 2 * self.sockets.iter().count() + 16 {
            return;
        }
        let live: std::collections::HashSet<_> = self
            .sockets
            .iter()
            .filter_map(|(_, s)| {
                let s = tcp::Socket::downcast(s)?;
                let (l, r) = (s.local_endpoint()?, s.remote_endpoint()?);
                Some((IpAddr::from(l.addr), l.port, IpAddr::from(r.addr), r.port))
            })
            .collect();
        self.ack_guard
            .retain(|la, lp, ra, rp| live.contains(&(la, lp, ra, rp)));
    }

    /// When smoltcp next needs polling, in virtual time. A deadline at or before the
    /// current time (smoltcp's "now") is reported 1 ms later, so a stack that is waiting
    /// on something other than time cannot spin the simulator.
    pub(crate) fn poll_at(&mut self) -> Option<Instant> {
        let epoch = self.epoch?;
        let now = self.now?;
        let t = self.iface.poll_at(self.smol_now(), &self.sockets)?;
        let at =
            epoch + std::time::Duration::from_micros(u64::try_from(t.total_micros()).unwrap_or(0));
        Some(if at <= now {
            now + std::time::Duration::from_millis(1)
        } else {
            at
        })
    }
}

/// Destination address of an IP packet this stack produced.
fn destination(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        6 => {
            let b: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

/// Source and destination address and TCP header of an IP packet.
fn tcp_of(packet: &[u8]) -> Option<(IpAddr, IpAddr, TcpPacket<&[u8]>)> {
    let (src, dst, payload) = match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            let payload = packet.get(usize::from(ip.header_len())..)?;
            (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                payload,
            )
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            let payload = packet.get(ip.header_len()..)?;
            (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                payload,
            )
        }
        _ => return None,
    };
    Some((src, dst, TcpPacket::new_checked(payload).ok()?))
}

/// A one-line description of a TCP/IP packet for trace logs.
struct Segment<'a>(&'a [u8]);

impl std::fmt::Display for Segment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some((src, dst, tcp)) = tcp_of(self.0) else {
            return write!(f, "non-TCP packet of {} bytes", self.0.len());
        };
        let flags: String = [
            (tcp.syn(), 'S'),
            (tcp.fin(), 'F'),
            (tcp.rst(), 'R'),
            (tcp.psh(), 'P'),
            (tcp.ack(), '.'),
        ]
        .iter()
        .filter_map(|&(on, c)| on.then_some(c))
        .collect();
        write!(
            f,
            "{src}:{} > {dst}:{} [{flags}] seq {} ack {} win {} len {}",
            tcp.src_port(),
            tcp.dst_port(),
            tcp.seq_number().0 as u32,
            tcp.ack_number().0 as u32,
            tcp.window_len(),
            tcp.payload().len()
        )
    }
}

/// A seed component derived from an address, so nodes sharing a `TcpConfig::seed` still
/// pick different initial sequence numbers.
fn address_seed(addr: SocketAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = match addr.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    for b in bytes.into_iter().chain(addr.port().to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Moves TLS records from the TCP receive buffer into rustls and processes them.
/// Returns whether any byte moved.
pub(crate) fn tcp_to_tls(
    sock: &mut tcp::Socket<'_>,
    tls: &mut rustls::Connection,
) -> Result<bool, rustls::Error> {
    let mut progress = false;
    while tls.wants_read() && sock.can_recv() {
        let n = sock
            .recv(|buf| {
                let mut rd: &[u8] = buf;
                let n = tls.read_tls(&mut rd).unwrap_or(0);
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        progress = true;
        tls.process_new_packets()?;
    }
    Ok(progress)
}

/// Moves TLS records from rustls into the TCP send buffer. Returns whether any byte
/// moved.
pub(crate) fn tls_to_tcp(sock: &mut tcp::Socket<'_>, tls: &mut rustls::Connection) -> bool {
    let mut progress = false;
    while tls.wants_write() && sock.can_send() {
        let n = sock
            .send(|buf| {
                let mut wr: &mut [u8] = buf;
                let n = tls.write_tls(&mut wr).unwrap_or(0);
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        progress = true;
    }
    progress
}

#[cfg(test)]
mod tests {
    use smoltcp::wire::TcpControl;

    use super::super::ackseq::testing::{ipv4, segment};
    use super::*;

    fn listener(stack: &Stack) -> tcp::Socket<'static> {
        let mut s = stack.new_socket();
        s.listen(443).unwrap();
        s
    }

    fn states(stack: &Stack) -> Vec<tcp::State> {
        stack
            .sockets
            .iter()
            .filter_map(|(_, s)| tcp::Socket::downcast(s).map(tcp::Socket::state))
            .collect()
    }

    #[test]
    fn retransmitted_syn_does_not_open_a_second_connection() {
        let server: SocketAddr = "10.0.0.2:443".parse().unwrap();
        let client: SocketAddr = "10.0.0.1:49152".parse().unwrap();
        let mut stack = Stack::new(server, TcpConfig::default()).unwrap();
        stack.set_now(Instant::now());
        // Slot 0 holds a socket that goes away, slot 1 the listener that takes the SYN.
        let placeholder = stack.sockets.add(stack.new_socket());
        let first = listener(&stack);
        stack.sockets.add(first);
        let syn = ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            &segment(TcpControl::Syn, 7, None, 65535),
        );
        stack.receive(client, syn.clone());
        stack.poll_once();
        assert!(stack.pop_transmit().is_some(), "SYN-ACK");
        // A spare listener now lands in the freed slot 0, in front of the half-open
        // socket; the SYN-ACK was lost and the client repeats its SYN.
        stack.sockets.remove(placeholder);
        let spare = listener(&stack);
        stack.sockets.add(spare);
        stack.receive(client, syn);
        stack.poll_once();
        assert_eq!(stack.duplicate_syns, 1);
        assert_eq!(
            states(&stack),
            vec![tcp::State::Listen, tcp::State::SynReceived]
        );
        assert!(stack.pop_transmit().is_none(), "no second SYN-ACK");
    }
}
