//! What an [`Endpoint`](crate::Endpoint) sends its datagrams over: any
//! [`DatagramTransport`].
//!
//! The driver needs four things from a transport: try to receive a batch of datagrams,
//! try to send one (possibly a GSO batch of equal-size datagrams), and be woken when
//! either may succeed. That is the whole trait, so a Quiver connection runs the same way
//! over
//! - a UDP socket ([`UdpTransport`], what [`Endpoint::server`](crate::Endpoint::server)
//!   and friends use): quinn-udp syscalls with GSO, GRO, ECN and destination addresses;
//!   the driver calls it exactly as it called the socket before the trait existed (one
//!   dynamic call per syscall, nothing copied);
//! - an in-memory channel ([`ChannelTransport`]): a pair of endpoints linked without a
//!   socket, or an endpoint whose datagrams an application carries itself through a
//!   [`ChannelPeer`] — a MASQUE CONNECT-UDP flow, a simulator link, a test harness.
//!
//! Semantics are UDP's: a transport may drop datagrams (a full receive queue drops),
//! [`try_send`](DatagramTransport::try_send) returns `WouldBlock` to push back, and a
//! transport has no notion of a connection.

use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use tokio::io::Interest;

pub use quinn_udp::{EcnCodepoint, RecvMeta, Transmit};

/// A datagram transport an endpoint runs over (see the [module docs](self)).
///
/// The driver calls `try_*` without holding any lock; on `WouldBlock` it waits with the
/// matching `poll_*_ready`, which must register the waker when it returns `Pending`
/// and must not lose a wake-up between a `WouldBlock` and the next poll.
pub trait DatagramTransport: Send + Sync + fmt::Debug + 'static {
    /// Receive up to `bufs.len()` datagrams (or GRO batches; `meta[i].stride` is the
    /// size of each datagram in `bufs[i]`, `meta[i].len` the bytes used). Returns how
    /// many entries were filled, or `WouldBlock` if nothing is waiting.
    fn try_recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize>;

    /// Wait until [`try_recv`](Self::try_recv) may have something.
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Send one transmit: `contents` is one datagram, or, when `segment_size` is set,
    /// consecutive datagrams of that size (the last may be shorter). `WouldBlock` if the
    /// transport cannot take it now; any other error drops it (loss recovery resends).
    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()>;

    /// Wait until [`try_send`](Self::try_send) may succeed.
    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// The address datagrams from this transport come from.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// How many datagrams one transmit may carry (`segment_size` batches); 1 if the
    /// transport has no segmentation offload.
    fn max_gso_segments(&self) -> usize {
        1
    }
}

/// A UDP socket driven through quinn-udp: GSO sends, GRO receives, ECN and destination
/// addresses (pktinfo) where the OS has them.
pub struct UdpTransport {
    /// Readiness through tokio.
    io: tokio::net::UdpSocket,
    /// quinn-udp's per-socket state (GSO/GRO capabilities, ECN setup); syscalls.
    udp: quinn_udp::UdpSocketState,
}

impl fmt::Debug for UdpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpTransport")
            .field("local_addr", &self.io.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl UdpTransport {
    /// Wrap a bound std socket (made non-blocking) for the current tokio runtime.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| io::Error::other(format!("UdpTransport needs a tokio runtime: {e}")))?;
        Self::with_runtime(socket, &runtime)
    }

    /// Wrap a bound std socket (made non-blocking) for the runtime `runtime`.
    pub(crate) fn with_runtime(
        socket: std::net::UdpSocket,
        runtime: &tokio::runtime::Handle,
    ) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        // Enables ECN, GRO and destination-address reporting where the OS supports them.
        let udp = quinn_udp::UdpSocketState::new((&socket).into())?;
        let io = {
            let _guard = runtime.enter();
            tokio::net::UdpSocket::from_std(socket)?
        };
        Ok(Self { io, udp })
    }
}

impl DatagramTransport for UdpTransport {
    fn try_recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        self.io.try_io(Interest::READABLE, || {
            self.udp.recv((&self.io).into(), bufs, meta)
        })
    }

    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_recv_ready(cx)
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.io.try_io(Interest::WRITABLE, || {
            self.udp.send((&self.io).into(), transmit)
        })
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_send_ready(cx)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    fn max_gso_segments(&self) -> usize {
        self.udp.max_gso_segments()
    }
}

/// One datagram carried by a [`ChannelTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Where it comes from (as the receiving endpoint will see it).
    pub source: SocketAddr,
    /// Where it goes.
    pub destination: SocketAddr,
    /// The UDP payload.
    pub payload: Bytes,
}

/// A bounded one-way queue of datagrams with one waiting receiver and one waiting sender.
#[derive(Debug)]
struct Queue {
    inner: Mutex<QueueInner>,
    /// Datagrams dropped because the queue was full ([`ChannelPeer::try_send`]).
    dropped: AtomicU64,
}

#[derive(Debug)]
struct QueueInner {
    items: VecDeque<Datagram>,
    capacity: usize,
    /// The receiving side is gone: senders drop silently.
    receiver_gone: bool,
    /// The sending side is gone: a receiver sees the end once the queue is empty.
    sender_gone: bool,
    recv_waker: Option<Waker>,
    send_waker: Option<Waker>,
}

impl Queue {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(QueueInner {
                items: VecDeque::new(),
                capacity: capacity.max(1),
                receiver_gone: false,
                sender_gone: false,
                recv_waker: None,
                send_waker: None,
            }),
            dropped: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Push if there is room; `Err(d)` if full. Datagrams to a gone receiver vanish.
    fn try_push(&self, d: Datagram) -> Result<(), Datagram> {
        let waker = {
            let mut q = self.lock();
            if q.receiver_gone {
                return Ok(());
            }
            if q.items.len() >= q.capacity {
                return Err(d);
            }
            q.items.push_back(d);
            q.recv_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = self.lock();
        if q.receiver_gone || q.items.len() < q.capacity {
            return Poll::Ready(());
        }
        q.send_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn pop(&self) -> Option<Datagram> {
        let (d, waker) = {
            let mut q = self.lock();
            let d = q.items.pop_front()?;
            (d, q.send_waker.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        Some(d)
    }

    /// `Ready(true)` when an item waits, `Ready(false)` when none ever will.
    fn poll_item(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut q = self.lock();
        if !q.items.is_empty() {
            return Poll::Ready(true);
        }
        if q.sender_gone {
            return Poll::Ready(false);
        }
        q.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn close_receiver(&self) {
        let waker = {
            let mut q = self.lock();
            q.receiver_gone = true;
            q.items.clear();
            q.send_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn close_sender(&self) {
        let waker = {
            let mut q = self.lock();
            q.sender_gone = true;
            q.recv_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Default queue capacity of a [`ChannelTransport`], in datagrams per direction.
pub const CHANNEL_CAPACITY: usize = 1024;

/// An in-memory datagram transport: bounded queues instead of a socket.
///
/// [`ChannelTransport::pair`] links two transports directly (two endpoints talking with
/// no socket between them); [`ChannelTransport::new`] gives the other end to the
/// application as a [`ChannelPeer`], which carries the datagrams however it likes (a
/// MASQUE CONNECT-UDP flow does). Sending blocks (`WouldBlock`, then a wake-up) while the
/// outgoing queue is full; datagrams arriving to a full incoming queue through
/// [`ChannelPeer::try_send`] are dropped and counted.
#[derive(Debug)]
pub struct ChannelTransport {
    local: SocketAddr,
    /// Datagrams to this transport.
    rx: Arc<Queue>,
    /// Datagrams from this transport.
    tx: Arc<Queue>,
}

/// The application's end of a [`ChannelTransport`]: it receives what the endpoint sends
/// and delivers datagrams to it.
#[derive(Debug)]
pub struct ChannelPeer {
    /// The transport's address.
    local: SocketAddr,
    /// Datagrams from the transport.
    from_transport: Arc<Queue>,
    /// Datagrams to the transport.
    to_transport: Arc<Queue>,
}

impl ChannelTransport {
    /// A transport whose address is `local` and whose other end is the returned peer;
    /// `capacity` datagrams fit in each direction.
    pub fn new(local: SocketAddr, capacity: usize) -> (Self, ChannelPeer) {
        let rx = Queue::new(capacity);
        let tx = Queue::new(capacity);
        let peer = ChannelPeer {
            local,
            from_transport: tx.clone(),
            to_transport: rx.clone(),
        };
        (Self { local, rx, tx }, peer)
    }

    /// Two transports linked to each other: whatever one sends (to any destination) the
    /// other receives, with the sender's address as the source.
    pub fn pair(a: SocketAddr, b: SocketAddr) -> (Self, Self) {
        let ab = Queue::new(CHANNEL_CAPACITY);
        let ba = Queue::new(CHANNEL_CAPACITY);
        (
            Self {
                local: a,
                rx: ba.clone(),
                tx: ab.clone(),
            },
            Self {
                local: b,
                rx: ab,
                tx: ba,
            },
        )
    }

    /// Datagrams dropped because this transport's incoming queue was full.
    pub fn dropped(&self) -> u64 {
        self.rx.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for ChannelTransport {
    fn drop(&mut self) {
        self.rx.close_receiver();
        self.tx.close_sender();
    }
}

impl DatagramTransport for ChannelTransport {
    fn try_recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        let mut n = 0;
        for (buf, meta) in bufs.iter_mut().zip(meta.iter_mut()) {
            let Some(d) = self.rx.pop() else {
                break;
            };
            // A datagram larger than the buffer is truncated, as a socket would.
            let len = d.payload.len().min(buf.len());
            buf[..len].copy_from_slice(&d.payload[..len]);
            *meta = RecvMeta {
                addr: d.source,
                len,
                stride: len,
                ecn: None,
                // Like a socket without pktinfo: the endpoint keeps its own idea of
                // the local address.
                dst_ip: None,
            };
            n += 1;
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The peer going away is not an error: the "network" just falls silent.
        match self.rx.poll_item(cx) {
            Poll::Ready(true) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        // Check for room for the whole batch first, so that a batch is never half sent.
        {
            let q = self.tx.lock();
            let segments = match transmit.segment_size {
                Some(s) if s > 0 => transmit.contents.len().div_ceil(s),
                _ => 1,
            };
            if !q.receiver_gone && q.items.len() + segments > q.capacity.max(segments) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        let size = match transmit.segment_size {
            Some(s) if s > 0 => s,
            _ => transmit.contents.len().max(1),
        };
        for chunk in transmit.contents.chunks(size) {
            let d = Datagram {
                source: self.local,
                destination: transmit.destination,
                payload: Bytes::copy_from_slice(chunk),
            };
            if self.tx.try_push(d).is_err() {
                // Only this driver pushes into `tx`, so the room checked above is
                // there; should it not be, the rest is lost like on a full link.
                self.tx.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx.poll_room(cx).map(Ok)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn max_gso_segments(&self) -> usize {
        // The driver may batch; `try_send` splits the batch into datagrams.
        16
    }
}

impl ChannelPeer {
    /// The next datagram the endpoint sent; `None` once the transport is dropped and
    /// everything it sent was received.
    pub async fn recv(&self) -> Option<Datagram> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](Self::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Datagram>> {
        match self.from_transport.poll_item(cx) {
            Poll::Ready(true) => Poll::Ready(self.from_transport.pop()),
            Poll::Ready(false) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Deliver a datagram to the endpoint, dropping it (and counting the drop) if the
    /// endpoint's incoming queue is full — what a UDP socket does. `source` is the
    /// address the endpoint sees it from.
    pub fn try_send(&self, source: SocketAddr, payload: Bytes) -> bool {
        let d = Datagram {
            source,
            destination: self.local,
            payload,
        };
        if self.to_transport.try_push(d).is_err() {
            self.to_transport.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Deliver a datagram to the endpoint, waiting while its incoming queue is full.
    pub async fn send(&self, source: SocketAddr, payload: Bytes) {
        let mut d = Some(Datagram {
            source,
            destination: self.local,
            payload,
        });
        std::future::poll_fn(|cx| loop {
            let Some(item) = d.take() else {
                return Poll::Ready(());
            };
            match self.to_transport.try_push(item) {
                Ok(()) => return Poll::Ready(()),
                Err(back) => {
                    d = Some(back);
                    if self.to_transport.poll_room(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        })
        .await
    }

    /// Datagrams dropped because the endpoint's incoming queue was full.
    pub fn dropped(&self) -> u64 {
        self.to_transport.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for ChannelPeer {
    fn drop(&mut self) {
        self.from_transport.close_receiver();
        self.to_transport.close_sender();
    }
}
