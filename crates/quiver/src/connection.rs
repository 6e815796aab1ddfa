//! [`Connection`] and [`Connecting`]: application handles on one QUIC connection.

use crate::error::{ClosedStream, ConnectionError, SendDatagramError};
use crate::state::{dir_idx, wake, ConnId, Shared, State};
use crate::streams::{RecvStream, SendStream};
use bytes::Bytes;
use quiver_proto::connection::{
    ConnectionStats, DatagramFlowId, PathState, SendDatagramError as ProtoDatagramError,
    ZeroRttStatus,
};
use quiver_proto::sched::StreamClass;
use quiver_proto::{Dir, Side, StreamId, VarInt};
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A counted reference to a connection's state. The connection is closed (code 0) when
/// the last reference — connection handle or stream — is dropped.
pub(crate) struct ConnRef {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: ConnId,
}

impl ConnRef {
    /// A new reference, created while the caller holds the lock.
    pub(crate) fn new_locked(shared: &Arc<Shared>, st: &mut State, id: ConnId) -> Self {
        if let Some(cs) = st.conns.get_mut(&id) {
            cs.refs += 1;
        }
        Self {
            shared: shared.clone(),
            id,
        }
    }

    /// A new reference to the same connection, created while holding the lock.
    pub(crate) fn clone_locked(&self, st: &mut State) -> Self {
        Self::new_locked(&self.shared, st, self.id)
    }
}

impl Clone for ConnRef {
    fn clone(&self) -> Self {
        let mut st = self.shared.lock();
        self.clone_locked(&mut st)
    }
}

impl Drop for ConnRef {
    fn drop(&mut self) {
        let wakes = {
            let mut st = self.shared.lock();
            st.release(self.id);
            st.take_wakes()
        };
        wake(wakes);
        self.shared.wake_driver();
    }
}

impl std::fmt::Debug for ConnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnRef").field("id", &self.id).finish()
    }
}

/// An established QUIC connection. Cheap to clone; all clones refer to the same
/// connection, which is closed with code 0 when the last clone and the last stream are
/// dropped.
#[derive(Clone, Debug)]
pub struct Connection {
    inner: ConnRef,
}

impl Connection {
    pub(crate) fn from_ref(inner: ConnRef) -> Self {
        Self { inner }
    }

    /// Open a bidirectional stream, waiting while the peer's stream limit is reached.
    ///
    /// The peer learns about the stream only when data (or FIN) is sent on it.
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        self.open_bi_with(StreamClass::default()).await
    }

    /// Open a bidirectional stream with a scheduling class (priority, deadline, level),
    /// e.g. `conn.open_bi_with(StreamClass::deadline(Duration::from_secs(1)))`. The
    /// connection's scheduler ([`quiver_proto::config::TransportConfig::scheduler`])
    /// orders streams by it; a relative deadline counts from now.
    pub async fn open_bi_with(
        &self,
        class: StreamClass,
    ) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = poll_fn(|cx| self.poll_open(cx, Dir::Bi, &class)).await?;
        Ok(self.bi_streams(id))
    }

    /// Open a unidirectional stream, waiting while the peer's stream limit is reached.
    pub async fn open_uni(&self) -> Result<SendStream, ConnectionError> {
        self.open_uni_with(StreamClass::default()).await
    }

    /// Open a unidirectional stream with a scheduling class; see
    /// [`open_bi_with`](Self::open_bi_with).
    pub async fn open_uni_with(&self, class: StreamClass) -> Result<SendStream, ConnectionError> {
        let id = poll_fn(|cx| self.poll_open(cx, Dir::Uni, &class)).await?;
        let mut st = self.inner.shared.lock();
        Ok(SendStream::new(
            self.inner.clone_locked(&mut st),
            &mut st,
            id,
        ))
    }

    /// Wait for the peer to open a bidirectional stream.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        let id = poll_fn(|cx| self.poll_accept(cx, Dir::Bi)).await?;
        Ok(self.bi_streams(id))
    }

    /// Wait for the peer to open a unidirectional stream.
    pub async fn accept_uni(&self) -> Result<RecvStream, ConnectionError> {
        let id = poll_fn(|cx| self.poll_accept(cx, Dir::Uni)).await?;
        let mut st = self.inner.shared.lock();
        Ok(RecvStream::new(
            self.inner.clone_locked(&mut st),
            &mut st,
            id,
        ))
    }

    /// Poll-based [`open_bi_with`](Self::open_bi_with), for code that implements
    /// poll-style traits (such as an HTTP/3 binding). Registers `cx` to be woken when the
    /// peer's stream limit rises; the stream exists as soon as this returns `Ready(Ok)`.
    pub fn poll_open_bi(
        &self,
        cx: &mut Context<'_>,
        class: &StreamClass,
    ) -> Poll<Result<(SendStream, RecvStream), ConnectionError>> {
        self.poll_open(cx, Dir::Bi, class)
            .map_ok(|id| self.bi_streams(id))
    }

    /// Poll-based [`open_uni_with`](Self::open_uni_with); see
    /// [`poll_open_bi`](Self::poll_open_bi).
    pub fn poll_open_uni(
        &self,
        cx: &mut Context<'_>,
        class: &StreamClass,
    ) -> Poll<Result<SendStream, ConnectionError>> {
        self.poll_open(cx, Dir::Uni, class).map_ok(|id| {
            let mut st = self.inner.shared.lock();
            SendStream::new(self.inner.clone_locked(&mut st), &mut st, id)
        })
    }

    /// Poll-based [`accept_bi`](Self::accept_bi): registers `cx` to be woken when the
    /// peer opens a bidirectional stream.
    pub fn poll_accept_bi(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(SendStream, RecvStream), ConnectionError>> {
        self.poll_accept(cx, Dir::Bi)
            .map_ok(|id| self.bi_streams(id))
    }

    /// Poll-based [`accept_uni`](Self::accept_uni).
    pub fn poll_accept_uni(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RecvStream, ConnectionError>> {
        self.poll_accept(cx, Dir::Uni).map_ok(|id| {
            let mut st = self.inner.shared.lock();
            RecvStream::new(self.inner.clone_locked(&mut st), &mut st, id)
        })
    }

    /// Change the scheduling class of the send side of stream `id` (one this endpoint
    /// opened, or the peer-opened bidirectional stream it answers on), without holding
    /// its [`SendStream`]: an HTTP/3 layer that learns a request's priority from a
    /// header or a PRIORITY_UPDATE frame uses this. A relative deadline counts from now.
    pub fn set_stream_class(&self, id: StreamId, class: &StreamClass) -> Result<(), ClosedStream> {
        let result = {
            let mut st = self.inner.shared.lock();
            match st.parts(self.inner.id) {
                Some((_, Some(pc))) => pc.set_class(Instant::now(), id, class),
                _ => Err(ClosedStream),
            }
        };
        self.inner.shared.wake_driver();
        result
    }

    fn bi_streams(&self, id: StreamId) -> (SendStream, RecvStream) {
        let mut st = self.inner.shared.lock();
        let send = SendStream::new(self.inner.clone_locked(&mut st), &mut st, id);
        let recv = RecvStream::new(self.inner.clone_locked(&mut st), &mut st, id);
        (send, recv)
    }

    fn poll_open(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
        class: &StreamClass,
    ) -> Poll<Result<StreamId, ConnectionError>> {
        let mut st = self.inner.shared.lock();
        if let Some(e) = st.conn_error(self.inner.id) {
            return Poll::Ready(Err(e));
        }
        let Some((cs, pc)) = st.parts(self.inner.id) else {
            return Poll::Ready(Err(ConnectionError::LocallyClosed));
        };
        let Some(pc) = pc else {
            return Poll::Ready(Err(ConnectionError::LocallyClosed));
        };
        match pc.open_with(Instant::now(), dir, class) {
            Some(id) => Poll::Ready(Ok(id)),
            None => {
                cs.open_wakers[dir_idx(dir)].register(cx);
                Poll::Pending
            }
        }
    }

    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
    ) -> Poll<Result<StreamId, ConnectionError>> {
        let mut st = self.inner.shared.lock();
        let Some((cs, pc)) = st.parts(self.inner.id) else {
            return Poll::Ready(Err(ConnectionError::LocallyClosed));
        };
        // Streams the peer opened before the connection ended are still handed out.
        if let Some(id) = pc.and_then(|pc| pc.accept(dir)) {
            drop(st);
            // Accepting may raise the peer's stream limit (MAX_STREAMS).
            self.inner.shared.wake_driver();
            return Poll::Ready(Ok(id));
        }
        if let Some(e) = cs.error.clone() {
            return Poll::Ready(Err(e));
        }
        cs.stream_accept_wakers[dir_idx(dir)].register(cx);
        Poll::Pending
    }

    /// Queue an unreliable datagram (RFC 9221); it may be lost and is never resent.
    /// Unclassed datagrams go out first-in first-out ahead of stream data; see
    /// [`send_datagram_on`](Self::send_datagram_on) for scheduled ones.
    pub fn send_datagram(&self, data: Bytes) -> Result<(), SendDatagramError> {
        self.with_datagram_conn(|pc| pc.send_datagram(data))
    }

    /// Open a datagram flow with a class: its datagrams are ordered by the connection's
    /// scheduler together with stream data (strict priority, round robin, EDF, …)
    /// instead of going first in FIFO order. Flows are local; the peer sees plain
    /// DATAGRAM frames.
    pub fn open_datagram_flow(
        &self,
        class: &StreamClass,
    ) -> Result<DatagramFlowId, ConnectionError> {
        let mut st = self.inner.shared.lock();
        if let Some(e) = st.conn_error(self.inner.id) {
            return Err(e);
        }
        let pc = st.parts(self.inner.id).and_then(|(_, pc)| pc);
        let pc = pc.ok_or(ConnectionError::LocallyClosed)?;
        Ok(pc.open_datagram_flow(class))
    }

    /// Queue a datagram on a flow opened with
    /// [`open_datagram_flow`](Self::open_datagram_flow). When the flow's queue is full
    /// its own oldest datagrams are dropped.
    pub fn send_datagram_on(
        &self,
        flow: DatagramFlowId,
        data: Bytes,
    ) -> Result<(), SendDatagramError> {
        self.with_datagram_conn(|pc| pc.send_datagram_on(flow, data))
    }

    /// Change a datagram flow's class.
    pub fn set_datagram_flow_class(
        &self,
        flow: DatagramFlowId,
        class: &StreamClass,
    ) -> Result<(), SendDatagramError> {
        self.with_datagram_conn(|pc| {
            pc.set_datagram_flow_class(flow, class)
                .map_err(|_| ProtoDatagramError::UnknownFlow)
        })
    }

    /// Close a datagram flow, dropping its queued datagrams.
    pub fn close_datagram_flow(&self, flow: DatagramFlowId) -> Result<(), SendDatagramError> {
        self.with_datagram_conn(|pc| {
            pc.close_datagram_flow(flow)
                .map_err(|_| ProtoDatagramError::UnknownFlow)
        })
    }

    /// Run a datagram call on the core connection and wake the driver.
    fn with_datagram_conn(
        &self,
        f: impl FnOnce(&mut quiver_proto::connection::Connection) -> Result<(), ProtoDatagramError>,
    ) -> Result<(), SendDatagramError> {
        {
            let mut st = self.inner.shared.lock();
            if let Some(e) = st.conn_error(self.inner.id) {
                return Err(SendDatagramError::ConnectionLost(e));
            }
            let pc = st.parts(self.inner.id).and_then(|(_, pc)| pc);
            let Some(pc) = pc else {
                return Err(SendDatagramError::ConnectionLost(
                    ConnectionError::LocallyClosed,
                ));
            };
            f(pc).map_err(|e| match e {
                ProtoDatagramError::UnsupportedByPeer => SendDatagramError::UnsupportedByPeer,
                ProtoDatagramError::Disabled => SendDatagramError::Disabled,
                ProtoDatagramError::TooLarge => SendDatagramError::TooLarge,
                ProtoDatagramError::ConnectionLost => {
                    SendDatagramError::ConnectionLost(ConnectionError::LocallyClosed)
                }
                ProtoDatagramError::UnknownFlow => SendDatagramError::UnknownFlow,
            })?;
        }
        self.inner.shared.wake_driver();
        Ok(())
    }

    /// Wait for the next received datagram.
    pub async fn read_datagram(&self) -> Result<Bytes, ConnectionError> {
        poll_fn(|cx| self.poll_read_datagram(cx)).await
    }

    /// Poll-based [`read_datagram`](Self::read_datagram): registers `cx` to be woken when
    /// a datagram arrives.
    pub fn poll_read_datagram(&self, cx: &mut Context<'_>) -> Poll<Result<Bytes, ConnectionError>> {
        {
            let mut st = self.inner.shared.lock();
            let Some((cs, pc)) = st.parts(self.inner.id) else {
                return Poll::Ready(Err(ConnectionError::LocallyClosed));
            };
            if let Some(d) = pc.and_then(|pc| pc.recv_datagram()) {
                return Poll::Ready(Ok(d));
            }
            if let Some(e) = cs.error.clone() {
                return Poll::Ready(Err(e));
            }
            cs.datagram_wakers.register(cx);
            Poll::Pending
        }
    }

    /// Largest datagram payload that fits in one packet now; `None` if the peer does not
    /// accept datagrams (or the connection is gone).
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.with_proto(|pc| pc.max_datagram_size()).flatten()
    }

    /// Close the connection immediately with an application error code and reason
    /// (CONNECTION_CLOSE of type 0x1d, RFC 9000 §19.19). Pending stream data is
    /// abandoned; every pending operation fails with
    /// [`ConnectionError::LocallyClosed`].
    pub fn close(&self, code: VarInt, reason: &[u8]) {
        let wakes = {
            let mut st = self.inner.shared.lock();
            st.close_conn(self.inner.id, Instant::now(), code, reason);
            st.take_wakes()
        };
        wake(wakes);
        self.inner.shared.wake_driver();
    }

    /// Wait until the connection ends; returns why.
    pub async fn closed(&self) -> ConnectionError {
        poll_fn(|cx| {
            let mut st = self.inner.shared.lock();
            let Some(cs) = st.conns.get_mut(&self.inner.id) else {
                return Poll::Ready(ConnectionError::LocallyClosed);
            };
            match &cs.error {
                Some(e) => Poll::Ready(e.clone()),
                None => {
                    cs.closed_wakers.register(cx);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Why the connection ended, if it has.
    pub fn close_reason(&self) -> Option<ConnectionError> {
        self.inner.shared.lock().conn_error(self.inner.id)
    }

    /// The peer's current address.
    pub fn remote_address(&self) -> SocketAddr {
        let mut st = self.inner.shared.lock();
        let Some((cs, pc)) = st.parts(self.inner.id) else {
            return SocketAddr::from(([0, 0, 0, 0], 0));
        };
        if let Some(pc) = pc {
            cs.remote = pc.remote_address();
        }
        cs.remote
    }

    /// The local IP the peer sends to and we send from, when the socket reports it (a
    /// server whose client moved to its preferred address answers from there).
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        self.with_proto(|pc| pc.local_ip()).flatten()
    }

    /// Whether the handshake is confirmed (RFC 9001 §4.1.2); a client connection migrates
    /// with [`Endpoint::rebind`](crate::Endpoint::rebind) only from then on.
    pub fn is_handshake_confirmed(&self) -> bool {
        self.with_proto(|pc| pc.is_handshake_confirmed())
            .unwrap_or(false)
    }

    /// Validation state of the path in use (RFC 9000 §8.2): after the peer moved (or
    /// after [`Endpoint::rebind`](crate::Endpoint::rebind)) it is `Validating` until the
    /// PATH_CHALLENGE is answered. `Failed` once the connection is freed.
    pub fn path_state(&self) -> PathState {
        self.with_proto(|pc| pc.path_state())
            .unwrap_or(PathState::Failed)
    }

    /// Smoothed round-trip time estimate (RFC 9002 §5.3).
    pub fn rtt(&self) -> Duration {
        self.with_proto(|pc| pc.rtt()).unwrap_or_default()
    }

    /// Start a 1-RTT key update (RFC 9001 §6.1). Returns `true` when the keys changed
    /// now; `false` when the update waits until the handshake is confirmed and a packet
    /// protected with the current keys was acknowledged (it then happens by itself), or
    /// when the connection is gone. [`ConnectionStats::key_updates_initiated`] counts
    /// the updates performed.
    pub fn initiate_key_update(&self) -> bool {
        let changed = self
            .with_proto(|pc| pc.initiate_key_update())
            .unwrap_or(false);
        self.inner.shared.wake_driver();
        changed
    }

    /// Where 0-RTT stands (RFC 9001 §4.6). On a server, [`ZeroRttStatus::Accepted`]
    /// means the client's first requests may have arrived in 0-RTT packets, which an
    /// attacker can replay (see [`quiver_proto`]'s crate docs on replay); a server turns
    /// 0-RTT off with [`crate::ServerConfig::zero_rtt`]. `Unavailable` once the
    /// connection has been freed.
    pub fn zero_rtt_status(&self) -> ZeroRttStatus {
        self.with_proto(|pc| pc.zero_rtt_status())
            .unwrap_or_default()
    }

    /// Whether 0-RTT data was accepted on this connection (server: the client's early
    /// data was processed; client: the server accepted what was sent early).
    pub fn is_0rtt(&self) -> bool {
        self.zero_rtt_status() == ZeroRttStatus::Accepted
    }

    /// Whether the handshake resumed an earlier session from a ticket (RFC 8446 §2.2).
    pub fn is_resumed(&self) -> bool {
        self.with_proto(|pc| pc.is_resumed()).unwrap_or(false)
    }

    /// Counters; all zero once the connection has been freed.
    pub fn stats(&self) -> ConnectionStats {
        self.with_proto(|pc| pc.stats()).unwrap_or_default()
    }

    /// The ALPN protocol negotiated in the handshake.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.with_proto(|pc| pc.alpn_protocol().map(<[u8]>::to_vec))
            .flatten()
    }

    /// The QUIC version the connection uses (1, or 0x6b3343cf for QUIC v2); after
    /// version negotiation, the negotiated one. `None` once the connection is gone.
    pub fn version(&self) -> Option<u32> {
        self.with_proto(|pc| pc.version())
    }

    /// Which side of the connection we are.
    pub fn side(&self) -> Side {
        let st = self.inner.shared.lock();
        st.conns
            .get(&self.inner.id)
            .map_or(Side::Client, |cs| cs.side)
    }

    /// An identifier unique among this endpoint's connections, for logs.
    pub fn stable_id(&self) -> u64 {
        self.inner.id
    }

    fn with_proto<T>(
        &self,
        f: impl FnOnce(&mut quiver_proto::connection::Connection) -> T,
    ) -> Option<T> {
        let mut st = self.inner.shared.lock();
        let (_, pc) = st.parts(self.inner.id)?;
        pc.map(f)
    }
}

/// A connection whose handshake is in progress; resolves to the [`Connection`] once the
/// handshake completes, or to the reason it failed. Dropping it abandons the attempt.
#[derive(Debug)]
#[must_use = "a connection attempt is abandoned when `Connecting` is dropped"]
pub struct Connecting {
    conn: Option<Connection>,
}

impl Connecting {
    pub(crate) fn new(conn: Connection) -> Self {
        Self { conn: Some(conn) }
    }

    /// Use the connection before the handshake completes, sending in 0-RTT packets
    /// (RFC 9001 §4.6).
    ///
    /// Succeeds on a client that resumes a session from a ticket allowing early data
    /// (an earlier connection to the same server name with the same
    /// [`ClientConfig`](crate::ClientConfig) TLS configuration, long enough to receive
    /// the tickets); otherwise gives the `Connecting` back. Streams opened and data
    /// written now go out at once, within the limits the server sent on the earlier
    /// connection. The returned [`ZeroRttAccepted`] resolves when the handshake ends:
    /// `true` if the server processed the early data, `false` if it rejected it — the
    /// connection then resent it in 1-RTT packets by itself, so the application has
    /// nothing to redo — or if the connection failed.
    ///
    /// Early data can be replayed by an attacker: send only requests that are safe to
    /// process twice.
    pub fn into_0rtt(mut self) -> Result<(Connection, ZeroRttAccepted), Connecting> {
        let pending = self.conn.as_ref().is_some_and(|c| {
            c.side() == Side::Client && c.zero_rtt_status() == ZeroRttStatus::Pending
        });
        match self.conn.take() {
            Some(conn) if pending => {
                let accepted = ZeroRttAccepted {
                    conn: Some(conn.clone()),
                };
                Ok((conn, accepted))
            }
            other => {
                self.conn = other;
                Err(self)
            }
        }
    }
}

/// Resolves when the handshake of a connection used in 0-RTT (see
/// [`Connecting::into_0rtt`]) ends: whether the server accepted the early data. `false`
/// too if the connection failed before the handshake completed.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct ZeroRttAccepted {
    conn: Option<Connection>,
}

impl Future for ZeroRttAccepted {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let Some(conn) = self.conn.as_ref() else {
            return Poll::Ready(false);
        };
        let outcome = {
            let mut st = conn.inner.shared.lock();
            match st.parts(conn.inner.id) {
                None => Some(false),
                Some((cs, pc)) => match pc.map(|pc| pc.zero_rtt_status()) {
                    Some(ZeroRttStatus::Accepted) if cs.connected => Some(true),
                    _ if cs.connected || cs.error.is_some() => Some(false),
                    None => Some(false),
                    Some(_) => {
                        cs.connect_wakers.register(cx);
                        None
                    }
                },
            }
        };
        match outcome {
            Some(accepted) => {
                // Drop our reference now rather than when the future is dropped.
                self.conn = None;
                Poll::Ready(accepted)
            }
            None => Poll::Pending,
        }
    }
}

impl Future for Connecting {
    type Output = Result<Connection, ConnectionError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(conn) = self.conn.as_ref() else {
            return Poll::Ready(Err(ConnectionError::LocallyClosed));
        };
        let ready = {
            let mut st = conn.inner.shared.lock();
            match st.conns.get_mut(&conn.inner.id) {
                None => Some(Err(ConnectionError::LocallyClosed)),
                Some(cs) if cs.connected => Some(Ok(())),
                Some(cs) => match &cs.error {
                    Some(e) => Some(Err(e.clone())),
                    None => {
                        cs.connect_wakers.register(cx);
                        None
                    }
                },
            }
        };
        match ready {
            None => Poll::Pending,
            Some(Err(e)) => Poll::Ready(Err(e)),
            Some(Ok(())) => match self.conn.take() {
                Some(c) => Poll::Ready(Ok(c)),
                None => Poll::Ready(Err(ConnectionError::LocallyClosed)),
            },
        }
    }
}
