//! The `h3` crate's `quic` traits (and `h3-datagram`'s datagram traits) implemented over
//! Quiver's [`quiver::Connection`] and streams.
//!
//! Two things happen here beyond plain forwarding:
//! - the peer's **control stream** is read through a passive tap that picks out
//!   PRIORITY_UPDATE frames (h3 ignores them) and applies them to the stream classes of
//!   this connection (see [`crate::priority`]);
//! - our **control stream** is shared with the convenience API, so that
//!   PRIORITY_UPDATE frames can be written between the frames h3 writes.

use crate::codes;
use crate::priority::{ControlEvent, ControlTap, Priority, MAX_PENDING_UPDATES};
use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use h3_datagram::datagram::EncodedDatagram;
use h3_datagram::quic_traits::{
    DatagramConnectionExt, RecvDatagram, SendDatagram, SendDatagramErrorIncoming,
};
use quiver::{ConnectionError, ReadError, StreamClass, VarInt, WriteError};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// HTTP/3 state of one connection shared by the trait objects and the convenience API.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) conn: quiver::Connection,
    inner: Mutex<SharedInner>,
}

#[derive(Debug, Default)]
struct SharedInner {
    /// Our control stream, once h3 has written its first bytes.
    control: Option<ControlSend>,
    /// Priorities from PRIORITY_UPDATE frames for request streams not open yet, oldest
    /// first.
    pending: VecDeque<(u64, Priority)>,
    /// Priorities applied from PRIORITY_UPDATE frames, so that a later `priority` header
    /// does not override them.
    updated: HashMap<u64, Priority>,
}

/// Our control stream and the bytes not yet accepted by it.
#[derive(Debug)]
struct ControlSend {
    stream: quiver::SendStream,
    pending: VecDeque<Bytes>,
    /// The task that wrote last and found the stream blocked.
    waker: Option<Waker>,
    error: Option<WriteError>,
}

impl ControlSend {
    /// Write queued bytes; `Ready` when all are written.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriteError>> {
        if let Some(e) = &self.error {
            return Poll::Ready(Err(e.clone()));
        }
        while let Some(front) = self.pending.front_mut() {
            match self.stream.poll_send(cx, front) {
                Poll::Ready(Ok(n)) => {
                    front.advance(n);
                    if front.is_empty() {
                        self.pending.pop_front();
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.error = Some(e.clone());
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    self.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl ConnShared {
    pub(crate) fn new(conn: quiver::Connection) -> Arc<Self> {
        Arc::new(Self {
            conn,
            inner: Mutex::new(SharedInner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SharedInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `frame` on our control stream after whatever h3 wrote before, and write as
    /// much as flow control allows now; the rest goes out with h3's next control write or
    /// from a background task.
    pub(crate) fn send_control(self: &Arc<Self>, frame: Bytes) -> Result<(), crate::H3Error> {
        let mut inner = self.lock();
        let Some(ctrl) = inner.control.as_mut() else {
            return Err(crate::H3Error::NotReady);
        };
        ctrl.pending.push_back(frame);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        match ctrl.poll_flush(&mut cx) {
            Poll::Ready(Ok(())) => Ok(()),
            Poll::Ready(Err(e)) => Err(crate::H3Error::Write(e)),
            Poll::Pending => {
                drop(inner);
                let this = self.clone();
                tokio::spawn(async move {
                    let _ = std::future::poll_fn(|cx| match this.lock().control.as_mut() {
                        Some(c) => c.poll_flush(cx),
                        None => Poll::Ready(Ok(())),
                    })
                    .await;
                });
                Ok(())
            }
        }
    }

    /// Apply what the peer's control stream said.
    fn control_events(&self, events: Vec<ControlEvent>) {
        for ev in events {
            match ev {
                ControlEvent::Update {
                    stream_id,
                    priority,
                } => self.apply_update(stream_id, priority),
                ControlEvent::BadId(id) => {
                    tracing::debug!(id, "PRIORITY_UPDATE for a non-request stream");
                    self.conn.close(
                        VarInt::from_u32(codes::H3_ID_ERROR),
                        b"PRIORITY_UPDATE for a non-request stream",
                    );
                }
            }
        }
    }

    fn apply_update(&self, stream_id: u64, priority: Priority) {
        let mut inner = self.lock();
        inner.updated.insert(stream_id, priority);
        if inner.updated.len() > 4 * MAX_PENDING_UPDATES {
            // Forget the oldest streams' overrides rather than growing without bound.
            let mut ids: Vec<u64> = inner.updated.keys().copied().collect();
            ids.sort_unstable();
            for id in ids.iter().take(MAX_PENDING_UPDATES) {
                inner.updated.remove(id);
            }
        }
        let applied = self
            .conn
            .set_stream_class(quiver::StreamId(stream_id), &priority.class())
            .is_ok();
        tracing::debug!(stream_id, ?priority, applied, "PRIORITY_UPDATE");
        if !applied {
            inner.pending.retain(|(id, _)| *id != stream_id);
            inner.pending.push_back((stream_id, priority));
            if inner.pending.len() > MAX_PENDING_UPDATES {
                inner.pending.pop_front();
            }
        }
    }

    /// The class a new request stream gets: a PRIORITY_UPDATE received for it wins over
    /// its `priority` header. Sets it on the stream and returns the priority used.
    pub(crate) fn classify_request(&self, stream_id: u64, header: Priority) -> Priority {
        let priority = {
            let mut inner = self.lock();
            let pending = inner
                .pending
                .iter()
                .position(|(id, _)| *id == stream_id)
                .and_then(|i| inner.pending.remove(i))
                .map(|(_, p)| p);
            pending
                .or_else(|| inner.updated.get(&stream_id).copied())
                .unwrap_or(header)
        };
        if priority != Priority::default() {
            let _ = self
                .conn
                .set_stream_class(quiver::StreamId(stream_id), &priority.class());
        }
        priority
    }
}

fn conn_error(e: ConnectionError) -> ConnectionErrorIncoming {
    match e {
        ConnectionError::ApplicationClosed { code, .. } => {
            ConnectionErrorIncoming::ApplicationClose {
                error_code: code.into_inner(),
            }
        }
        ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

fn stream_conn_error(e: ConnectionError) -> StreamErrorIncoming {
    StreamErrorIncoming::ConnectionErrorIncoming {
        connection_error: conn_error(e),
    }
}

fn read_error(e: ReadError) -> StreamErrorIncoming {
    match e {
        ReadError::Reset(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        ReadError::ConnectionLost(e) => stream_conn_error(e),
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn write_error(e: WriteError) -> StreamErrorIncoming {
    match e {
        WriteError::Stopped(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        WriteError::ConnectionLost(e) => stream_conn_error(e),
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn h3_id(id: quiver::StreamId) -> StreamId {
    // Quiver stream IDs are below 2^62, which h3 accepts.
    StreamId::try_from(id.0)
        .unwrap_or_else(|_| StreamId::from(h3::proto::varint::VarInt::from_u32(0)))
}

fn varint(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

/// A Quiver connection as h3 sees it ([`h3::quic::Connection`]).
#[derive(Debug)]
pub struct QuicConnection {
    shared: Arc<ConnShared>,
    opener: OpenStreams,
}

impl QuicConnection {
    /// Wrap an established Quiver connection for h3.
    pub fn new(conn: quiver::Connection) -> Self {
        let shared = ConnShared::new(conn);
        Self::from_shared(shared)
    }

    pub(crate) fn from_shared(shared: Arc<ConnShared>) -> Self {
        Self {
            opener: OpenStreams {
                shared: shared.clone(),
            },
            shared,
        }
    }
}

impl<B: Buf> quic::Connection<B> for QuicConnection {
    type RecvStream = RecvStream;
    type OpenStreams = OpenStreams;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::RecvStream, ConnectionErrorIncoming>> {
        self.shared
            .conn
            .poll_accept_uni(cx)
            .map_ok(|s| RecvStream::new(s, Some(self.shared.clone())))
            .map_err(conn_error)
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, ConnectionErrorIncoming>> {
        self.shared
            .conn
            .poll_accept_bi(cx)
            .map_ok(|(s, r)| BidiStream {
                send: SendStream::new(s, None),
                recv: RecvStream::new(r, None),
            })
            .map_err(conn_error)
    }

    fn opener(&self) -> Self::OpenStreams {
        self.opener.clone()
    }
}

impl<B: Buf> quic::OpenStreams<B> for QuicConnection {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_bidi(&mut self.opener, cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_send(&mut self.opener, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        quic::OpenStreams::<B>::close(&mut self.opener, code, reason)
    }
}

/// Opens streams on a Quiver connection for h3 ([`h3::quic::OpenStreams`]).
#[derive(Debug, Clone)]
pub struct OpenStreams {
    shared: Arc<ConnShared>,
}

impl<B: Buf> quic::OpenStreams<B> for OpenStreams {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        self.shared
            .conn
            .poll_open_bi(cx, &StreamClass::default())
            .map_ok(|(s, r)| BidiStream {
                send: SendStream::new(s, None),
                recv: RecvStream::new(r, None),
            })
            .map_err(stream_conn_error)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        self.shared
            .conn
            .poll_open_uni(cx, &StreamClass::default())
            .map_ok(|s| SendStream::new(s, Some(self.shared.clone())))
            .map_err(stream_conn_error)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        self.shared.conn.close(varint(code.value()), reason);
    }
}

/// A bidirectional stream for h3 ([`h3::quic::BidiStream`]).
pub struct BidiStream<B: Buf> {
    send: SendStream<B>,
    recv: RecvStream,
}

impl<B: Buf> std::fmt::Debug for BidiStream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BidiStream")
            .field("id", &self.send.id)
            .finish()
    }
}

impl<B: Buf> quic::BidiStream<B> for BidiStream<B> {
    type SendStream = SendStream<B>;
    type RecvStream = RecvStream;

    fn split(self) -> (Self::SendStream, Self::RecvStream) {
        (self.send, self.recv)
    }
}

impl<B: Buf> quic::RecvStream for BidiStream<B> {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code)
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl<B: Buf> quic::SendStream<B> for BidiStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code)
    }

    fn send_id(&self) -> StreamId {
        self.send.send_id()
    }
}

impl<B: Buf> quic::SendStreamUnframed<B> for BidiStream<B> {
    fn poll_send<D: Buf>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut D,
    ) -> Poll<Result<usize, StreamErrorIncoming>> {
        self.send.poll_send(cx, buf)
    }
}

/// The receiving half of a stream for h3 ([`h3::quic::RecvStream`]).
#[derive(Debug)]
pub struct RecvStream {
    stream: quiver::RecvStream,
    /// Unidirectional streams from the peer: the tap that finds its control stream.
    tap: Option<(ControlTap, Arc<ConnShared>)>,
}

impl RecvStream {
    fn new(stream: quiver::RecvStream, shared: Option<Arc<ConnShared>>) -> Self {
        Self {
            stream,
            tap: shared.map(|s| (ControlTap::default(), s)),
        }
    }
}

impl quic::RecvStream for RecvStream {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        let chunk = match self.stream.poll_read_chunk(cx, usize::MAX) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r.map_err(read_error)?,
        };
        if let (Some(data), Some((tap, shared))) = (&chunk, self.tap.as_mut()) {
            let mut events = Vec::new();
            tap.feed(data, &mut events);
            if !events.is_empty() {
                shared.control_events(events);
            }
        }
        Poll::Ready(Ok(chunk))
    }

    fn stop_sending(&mut self, error_code: u64) {
        let _ = self.stream.stop(varint(error_code));
    }

    fn recv_id(&self) -> StreamId {
        h3_id(self.stream.id())
    }
}

/// The sending half of a stream for h3 ([`h3::quic::SendStream`]).
pub struct SendStream<B: Buf> {
    id: quiver::StreamId,
    kind: SendKind<B>,
}

enum SendKind<B: Buf> {
    /// A stream h3 writes alone.
    Plain {
        stream: quiver::SendStream,
        /// Boxed: h3's write buffer is large and most streams never write.
        writing: Option<Box<WriteBuf<B>>>,
    },
    /// A unidirectional stream whose type is not known yet: becomes `Control` if h3
    /// starts it with type 0x00, `Plain` otherwise.
    Uni {
        stream: Option<quiver::SendStream>,
        shared: Arc<ConnShared>,
    },
    /// Our control stream, shared with [`ConnShared::send_control`].
    Control(Arc<ConnShared>),
    /// The stream was handed to the shared state and that failed (cannot happen in
    /// practice; kept so that no path panics).
    Gone,
}

impl<B: Buf> std::fmt::Debug for SendStream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendStream").field("id", &self.id).finish()
    }
}

impl<B: Buf> SendStream<B> {
    fn new(stream: quiver::SendStream, uni_shared: Option<Arc<ConnShared>>) -> Self {
        let id = stream.id();
        let kind = match uni_shared {
            Some(shared) => SendKind::Uni {
                stream: Some(stream),
                shared,
            },
            None => SendKind::Plain {
                stream,
                writing: None,
            },
        };
        Self { id, kind }
    }
}

impl<B: Buf> quic::SendStream<B> for SendStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        match &mut self.kind {
            SendKind::Plain { stream, writing } => {
                if let Some(data) = writing {
                    while data.has_remaining() {
                        match stream.poll_send(cx, data.chunk()) {
                            Poll::Ready(Ok(n)) => data.advance(n),
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(write_error(e))),
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                }
                *writing = None;
                Poll::Ready(Ok(()))
            }
            SendKind::Uni { .. } => Poll::Ready(Ok(())),
            SendKind::Control(shared) => match shared.lock().control.as_mut() {
                Some(c) => c.poll_flush(cx).map_err(write_error),
                None => Poll::Ready(Ok(())),
            },
            SendKind::Gone => Poll::Ready(Err(StreamErrorIncoming::Unknown(Box::new(
                quiver::ClosedStream,
            )))),
        }
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        let mut data: WriteBuf<B> = data.into();
        if let SendKind::Uni { stream, shared } = &mut self.kind {
            let control = data.chunk().first() == Some(&0x00);
            let shared = shared.clone();
            let Some(stream) = stream.take() else {
                self.kind = SendKind::Gone;
                return Err(StreamErrorIncoming::Unknown(Box::new(quiver::ClosedStream)));
            };
            if control && shared.lock().control.is_none() {
                shared.lock().control = Some(ControlSend {
                    stream,
                    pending: VecDeque::new(),
                    waker: None,
                    error: None,
                });
                self.kind = SendKind::Control(shared);
            } else {
                self.kind = SendKind::Plain {
                    stream,
                    writing: None,
                };
            }
        }
        match &mut self.kind {
            SendKind::Plain { writing, .. } => {
                if writing.is_some() {
                    return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                        connection_error: ConnectionErrorIncoming::InternalError(
                            "send_data while a previous write is pending".into(),
                        ),
                    });
                }
                *writing = Some(Box::new(data));
                Ok(())
            }
            SendKind::Control(shared) => {
                // Control frames are small: copy them so that injected frames can queue
                // behind them.
                let bytes = data.copy_to_bytes(data.remaining());
                let mut inner = shared.lock();
                if let Some(c) = inner.control.as_mut() {
                    c.pending.push_back(bytes);
                    if let Some(w) = c.waker.take() {
                        w.wake();
                    }
                }
                Ok(())
            }
            SendKind::Uni { .. } | SendKind::Gone => {
                Err(StreamErrorIncoming::Unknown(Box::new(quiver::ClosedStream)))
            }
        }
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        match &mut self.kind {
            SendKind::Plain { stream, .. } => Poll::Ready(
                stream
                    .finish()
                    .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
            ),
            SendKind::Uni { stream, .. } => Poll::Ready(match stream.as_mut() {
                Some(s) => s
                    .finish()
                    .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
                None => Ok(()),
            }),
            SendKind::Control(shared) => {
                let mut inner = shared.lock();
                let Some(c) = inner.control.as_mut() else {
                    return Poll::Ready(Ok(()));
                };
                match c.poll_flush(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(
                        c.stream
                            .finish()
                            .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
                    ),
                    other => other.map_err(write_error),
                }
            }
            SendKind::Gone => Poll::Ready(Ok(())),
        }
    }

    fn reset(&mut self, reset_code: u64) {
        let code = varint(reset_code);
        match &mut self.kind {
            SendKind::Plain { stream, .. } => {
                let _ = stream.reset(code);
            }
            SendKind::Uni { stream, .. } => {
                if let Some(s) = stream.as_mut() {
                    let _ = s.reset(code);
                }
            }
            SendKind::Control(shared) => {
                if let Some(c) = shared.lock().control.as_mut() {
                    let _ = c.stream.reset(code);
                }
            }
            SendKind::Gone => {}
        }
    }

    fn send_id(&self) -> StreamId {
        h3_id(self.id)
    }
}

impl<B: Buf> quic::SendStreamUnframed<B> for SendStream<B> {
    fn poll_send<D: Buf>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut D,
    ) -> Poll<Result<usize, StreamErrorIncoming>> {
        // Finish a framed write first so that bytes never interleave.
        match quic::SendStream::<B>::poll_ready(self, cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map_ok(|()| 0),
        }
        match &mut self.kind {
            SendKind::Plain { stream, .. } => match stream.poll_send(cx, buf.chunk()) {
                Poll::Ready(Ok(n)) => {
                    buf.advance(n);
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(write_error(e))),
                Poll::Pending => Poll::Pending,
            },
            _ => Poll::Ready(Err(StreamErrorIncoming::Unknown(Box::new(
                quiver::ClosedStream,
            )))),
        }
    }
}

/// Sends QUIC datagrams for `h3-datagram` ([`SendDatagram`]).
///
/// It sends the bytes h3-datagram encoded, which in h3-datagram 0.0.2 carry a zero
/// quarter stream ID whatever the stream (hyperium/h3 issue 345); use
/// [`HttpDatagrams::send`](crate::HttpDatagrams::send) instead, which encodes it right.
#[derive(Debug, Clone)]
pub struct SendDatagramHandler {
    conn: quiver::Connection,
}

impl<B: Buf> SendDatagram<B> for SendDatagramHandler {
    fn send_datagram<T: Into<EncodedDatagram<B>>>(
        &mut self,
        data: T,
    ) -> Result<(), SendDatagramErrorIncoming> {
        let mut buf: EncodedDatagram<B> = data.into();
        self.conn
            .send_datagram(buf.copy_to_bytes(buf.remaining()))
            .map_err(|e| match e {
                quiver::SendDatagramError::TooLarge => SendDatagramErrorIncoming::TooLarge,
                quiver::SendDatagramError::ConnectionLost(e) => {
                    SendDatagramErrorIncoming::ConnectionError(conn_error(e))
                }
                _ => SendDatagramErrorIncoming::NotAvailable,
            })
    }
}

/// Receives QUIC datagrams for `h3-datagram` ([`RecvDatagram`]).
#[derive(Debug, Clone)]
pub struct RecvDatagramHandler {
    conn: quiver::Connection,
}

impl RecvDatagram for RecvDatagramHandler {
    type Buffer = Bytes;

    fn poll_incoming_datagram(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bytes, ConnectionErrorIncoming>> {
        self.conn.poll_read_datagram(cx).map_err(conn_error)
    }
}

impl<B: Buf> DatagramConnectionExt<B> for QuicConnection {
    type SendDatagramHandler = SendDatagramHandler;
    type RecvDatagramHandler = RecvDatagramHandler;

    fn send_datagram_handler(&self) -> SendDatagramHandler {
        SendDatagramHandler {
            conn: self.shared.conn.clone(),
        }
    }

    fn recv_datagram_handler(&self) -> RecvDatagramHandler {
        RecvDatagramHandler {
            conn: self.shared.conn.clone(),
        }
    }
}
