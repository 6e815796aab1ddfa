//! [`SendStream`] and [`RecvStream`]: the two halves of QUIC streams (RFC 9000 §2–3).

use crate::connection::ConnRef;
use crate::error::{ClosedStream, ReadError, ReadToEndError, StoppedError, WriteError};
use crate::state::{wake, State};
use bytes::Bytes;
use quiver_proto::connection::{ReadError as ProtoReadError, WriteError as ProtoWriteError};
use quiver_proto::{StreamId, VarInt};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The sending half of a stream.
///
/// Implements [`tokio::io::AsyncWrite`]; `poll_shutdown` finishes the stream.
///
/// **Drop behaviour:** dropping a `SendStream` that was neither finished nor reset
/// finishes it (sends FIN after the buffered data), as closing a file would. Call
/// [`reset`](Self::reset) first to abandon the data instead.
#[derive(Debug)]
pub struct SendStream {
    conn: ConnRef,
    id: StreamId,
    /// `finish` or `reset` was called.
    done: bool,
}

impl SendStream {
    pub(crate) fn new(conn: ConnRef, st: &mut State, id: StreamId) -> Self {
        if let Some(cs) = st.conns.get_mut(&conn.id) {
            cs.send.entry(id).or_default();
        }
        Self {
            conn,
            id,
            done: false,
        }
    }

    /// The stream's identifier.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Write some bytes, waiting for flow-control credit; returns how many were taken.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        poll_fn(|cx| self.poll_write_inner(cx, buf)).await
    }

    /// Write all of `buf`, waiting for flow-control credit as needed.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), WriteError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = buf.get(n..).unwrap_or_default();
        }
        Ok(())
    }

    /// Mark the end of the stream: a FIN follows the data written so far.
    pub fn finish(&mut self) -> Result<(), ClosedStream> {
        let result = {
            let mut st = self.conn.shared.lock();
            match st.parts(self.conn.id) {
                Some((_, Some(pc))) => pc.finish(self.id),
                _ => Err(ClosedStream),
            }
        };
        self.done = true;
        self.conn.shared.wake_driver();
        result
    }

    /// Change the stream's scheduling class (priority, deadline, level); a relative
    /// deadline counts from now.
    pub fn set_class(
        &mut self,
        class: &quiver_proto::sched::StreamClass,
    ) -> Result<(), ClosedStream> {
        let result = {
            let mut st = self.conn.shared.lock();
            match st.parts(self.conn.id) {
                Some((_, Some(pc))) => pc.set_class(std::time::Instant::now(), self.id, class),
                _ => Err(ClosedStream),
            }
        };
        self.conn.shared.wake_driver();
        result
    }

    /// Abandon the stream: RESET_STREAM with `code` (RFC 9000 §19.4); unsent and
    /// unacknowledged data is discarded.
    pub fn reset(&mut self, code: VarInt) -> Result<(), ClosedStream> {
        let result = {
            let mut st = self.conn.shared.lock();
            match st.parts(self.conn.id) {
                Some((_, Some(pc))) => pc.reset(self.id, code),
                _ => Err(ClosedStream),
            }
        };
        self.done = true;
        self.conn.shared.wake_driver();
        result
    }

    /// Wait until the peer has acknowledged all data and the FIN (`Ok(None)`), or asked us
    /// to stop sending (`Ok(Some(code))`).
    pub async fn stopped(&mut self) -> Result<Option<VarInt>, StoppedError> {
        poll_fn(|cx| {
            let mut st = self.conn.shared.lock();
            let Some(cs) = st.conns.get_mut(&self.conn.id) else {
                return Poll::Ready(Err(StoppedError::ConnectionLost(
                    crate::ConnectionError::LocallyClosed,
                )));
            };
            let error = cs.error.clone();
            let s = cs.send.entry(self.id).or_default();
            if let Some(code) = s.stopped {
                return Poll::Ready(Ok(Some(code)));
            }
            if s.acked {
                return Poll::Ready(Ok(None));
            }
            if let Some(e) = error {
                return Poll::Ready(Err(StoppedError::ConnectionLost(e)));
            }
            s.stopped_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Poll-based [`write`](Self::write) with typed errors (the [`AsyncWrite`]
    /// implementation maps them to `io::Error`): takes as many bytes of `buf` as
    /// flow control allows, or registers `cx` to be woken when credit opens.
    ///
    /// [`AsyncWrite`]: tokio::io::AsyncWrite
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, WriteError>> {
        self.poll_write_inner(cx, buf)
    }

    fn poll_write_inner(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, WriteError>> {
        let result = {
            let mut st = self.conn.shared.lock();
            let Some((cs, pc)) = st.parts(self.conn.id) else {
                return Poll::Ready(Err(WriteError::ConnectionLost(
                    crate::ConnectionError::LocallyClosed,
                )));
            };
            if let Some(e) = cs.error.clone() {
                return Poll::Ready(Err(WriteError::ConnectionLost(e)));
            }
            let s = cs.send.entry(self.id).or_default();
            if let Some(code) = s.stopped {
                return Poll::Ready(Err(WriteError::Stopped(code)));
            }
            let Some(pc) = pc else {
                return Poll::Ready(Err(WriteError::ConnectionLost(
                    crate::ConnectionError::LocallyClosed,
                )));
            };
            match pc.write(self.id, buf) {
                Ok(0) if !buf.is_empty() => Err(ProtoWriteError::Blocked),
                other => other,
            }
            .inspect_err(|e| {
                if *e == ProtoWriteError::Blocked {
                    s.writable = Some(cx.waker().clone());
                }
            })
        };
        match result {
            Ok(n) => {
                self.conn.shared.wake_driver();
                Poll::Ready(Ok(n))
            }
            Err(ProtoWriteError::Blocked) => Poll::Pending,
            Err(ProtoWriteError::Stopped(code)) => Poll::Ready(Err(WriteError::Stopped(code))),
            Err(ProtoWriteError::ClosedStream) => Poll::Ready(Err(WriteError::ClosedStream)),
        }
    }
}

impl tokio::io::AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_inner(cx, buf).map_err(Into::into)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written data is already in the connection's send buffer.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(
            this.finish()
                .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e)),
        )
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        let wakes = {
            let mut st = self.conn.shared.lock();
            let id = self.id;
            if let Some((cs, pc)) = st.parts(self.conn.id) {
                cs.send.remove(&id);
                if !self.done && cs.error.is_none() {
                    if let Some(pc) = pc {
                        // Implicit finish; an error means the stream was already closed.
                        let _ = pc.finish(id);
                    }
                }
            }
            st.take_wakes()
        };
        wake(wakes);
        self.conn.shared.wake_driver();
    }
}

/// The receiving half of a stream.
///
/// Implements [`tokio::io::AsyncRead`] (end of stream reads as 0 bytes).
///
/// **Drop behaviour:** dropping a `RecvStream` before reading its end sends
/// STOP_SENDING with code 0 (RFC 9000 §3.5), so the peer stops wasting bandwidth.
#[derive(Debug)]
pub struct RecvStream {
    conn: ConnRef,
    id: StreamId,
    /// The end was read, a reset was seen, or `stop` was called.
    done: bool,
}

impl RecvStream {
    pub(crate) fn new(conn: ConnRef, st: &mut State, id: StreamId) -> Self {
        if let Some(cs) = st.conns.get_mut(&conn.id) {
            cs.recv.entry(id).or_default();
        }
        Self {
            conn,
            id,
            done: false,
        }
    }

    /// The stream's identifier.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Read the next chunk of at most `max_len` bytes, in order; `None` at the end.
    pub async fn read_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, ReadError> {
        poll_fn(|cx| self.poll_read_chunk(cx, max_len)).await
    }

    /// Read into `buf`; `Ok(None)` at the end of the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        let Some(chunk) = self.read_chunk(buf.len()).await? else {
            return Ok(None);
        };
        let n = chunk.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), chunk.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(Some(n))
    }

    /// Read the whole stream, failing with [`ReadToEndError::TooLong`] (and stopping the
    /// stream) if it carries more than `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, ReadToEndError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.read_chunk(usize::MAX).await? {
            if out.len().saturating_add(chunk.len()) > limit {
                let _ = self.stop(VarInt::from_u32(0));
                return Err(ReadToEndError::TooLong);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Discard the rest of the stream and ask the peer to stop sending (STOP_SENDING with
    /// `code`, RFC 9000 §19.5).
    pub fn stop(&mut self, code: VarInt) -> Result<(), ClosedStream> {
        let result = {
            let mut st = self.conn.shared.lock();
            match st.parts(self.conn.id) {
                Some((_, Some(pc))) => pc.stop_sending(self.id, code),
                _ => Err(ClosedStream),
            }
        };
        self.done = true;
        self.conn.shared.wake_driver();
        result
    }

    /// Poll-based [`read_chunk`](Self::read_chunk): the next chunk of at most `max_len`
    /// bytes in order, `None` at the end, or `Pending` with `cx` registered to be woken
    /// when data arrives.
    pub fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max_len: usize,
    ) -> Poll<Result<Option<Bytes>, ReadError>> {
        let result = {
            let mut st = self.conn.shared.lock();
            let Some((cs, pc)) = st.parts(self.conn.id) else {
                return Poll::Ready(Err(ReadError::ConnectionLost(
                    crate::ConnectionError::LocallyClosed,
                )));
            };
            // Data that arrived before the connection ended can still be read.
            let read = match pc {
                Some(pc) => pc.read(self.id, max_len),
                None => Err(ProtoReadError::Blocked),
            };
            match read {
                Err(ProtoReadError::Blocked) => {
                    if let Some(e) = cs.error.clone() {
                        return Poll::Ready(Err(ReadError::ConnectionLost(e)));
                    }
                    *cs.recv.entry(self.id).or_default() = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                other => other,
            }
        };
        match result {
            Ok(Some(data)) => {
                // Consuming data may open flow-control credit (MAX_STREAM_DATA).
                self.conn.shared.wake_driver();
                Poll::Ready(Ok(Some(data)))
            }
            Ok(None) => {
                self.done = true;
                Poll::Ready(Ok(None))
            }
            Err(ProtoReadError::Reset(code)) => {
                self.done = true;
                Poll::Ready(Err(ReadError::Reset(code)))
            }
            Err(ProtoReadError::ClosedStream) => {
                self.done = true;
                Poll::Ready(Err(ReadError::ClosedStream))
            }
            Err(ProtoReadError::Blocked) => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        match this.poll_read_chunk(cx, buf.remaining()) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(None)) => Poll::Ready(Ok(())),
            Poll::Ready(Ok(Some(chunk))) => {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(chunk.get(..n).unwrap_or_default());
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
        }
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        let wakes = {
            let mut st = self.conn.shared.lock();
            let id = self.id;
            if let Some((cs, pc)) = st.parts(self.conn.id) {
                cs.recv.remove(&id);
                if !self.done && cs.error.is_none() {
                    if let Some(pc) = pc {
                        // RFC 9000 §3.5: tell the peer we will not read the rest. An error
                        // means the stream already ended.
                        let _ = pc.stop_sending(id, VarInt::from_u32(0));
                    }
                }
            }
            st.take_wakes()
        };
        wake(wakes);
        self.conn.shared.wake_driver();
    }
}
