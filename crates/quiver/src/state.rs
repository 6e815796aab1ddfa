//! State shared between the driver task and the application handles.
//!
//! One `std::sync::Mutex<State>` per endpoint guards the sans-IO core and the waker
//! bookkeeping. It is never held across an `.await`: every handle locks, calls the core,
//! records a waker if it has to wait, unlocks, and wakes the driver through
//! [`Shared::notify`] so that whatever the call produced gets transmitted.
//!
//! Connections are identified here by a runtime-local [`ConnId`] that is never reused,
//! rather than by the core's [`ConnectionHandle`] (which the core may recycle once a
//! connection is freed): a stale application handle can then never reach a newer
//! connection that happens to get the same core handle.

use crate::error::ConnectionError;
use crate::transport::DatagramTransport;
use quiver_proto::config::ClientConfig;
use quiver_proto::connection::{Connection as ProtoConnection, Event};
use quiver_proto::endpoint::{ConnectionHandle, Endpoint as ProtoEndpoint};
use quiver_proto::{Dir, Side, StreamId, TransportError, VarInt};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::task::{Context, Waker};
use std::time::Instant;
use tokio::sync::Notify;

/// Runtime-local connection identifier (never reused within an endpoint).
pub(crate) type ConnId = u64;

/// Everything the driver and the handles share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the driver after an application call changed the core's state.
    pub(crate) notify: Notify,
    /// The datagram transport (usually a UDP socket); replaced by
    /// [`crate::Endpoint::rebind`].
    socket: RwLock<Arc<dyn DatagramTransport>>,
}

impl Shared {
    pub(crate) fn new(state: State, socket: Arc<dyn DatagramTransport>) -> Self {
        Self {
            state: Mutex::new(state),
            notify: Notify::new(),
            socket: RwLock::new(socket),
        }
    }

    /// The transport in use now.
    pub(crate) fn socket(&self) -> Arc<dyn DatagramTransport> {
        self.socket
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Use `socket` from now on; returns the previous one.
    pub(crate) fn replace_socket(
        &self,
        socket: Arc<dyn DatagramTransport>,
    ) -> Arc<dyn DatagramTransport> {
        let mut s = self.socket.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *s, socket)
    }

    /// Lock the state. A panic while the lock was held (a bug) does not make every later
    /// call panic too: the state is still structurally valid, so we keep going.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ask the driver to run one more iteration (transmit, re-arm the timer).
    pub(crate) fn wake_driver(&self) {
        self.notify.notify_one();
    }
}

/// A set of wakers, deduplicated with `will_wake` so that repeated polls do not grow it.
#[derive(Default)]
pub(crate) struct WakerSet(Vec<Waker>);

impl WakerSet {
    pub(crate) fn register(&mut self, cx: &Context<'_>) {
        if !self.0.iter().any(|w| w.will_wake(cx.waker())) {
            self.0.push(cx.waker().clone());
        }
    }

    fn drain_into(&mut self, out: &mut Vec<Waker>) {
        out.append(&mut self.0);
    }
}

/// Per-[`SendStream`](crate::SendStream) bookkeeping.
#[derive(Default)]
pub(crate) struct SendState {
    /// Task waiting for flow-control credit.
    pub(crate) writable: Option<Waker>,
    /// Task waiting in `stopped()`.
    pub(crate) stopped_waker: Option<Waker>,
    /// STOP_SENDING code received from the peer.
    pub(crate) stopped: Option<VarInt>,
    /// All data and the FIN were acknowledged.
    pub(crate) acked: bool,
}

/// Per-connection bookkeeping.
pub(crate) struct ConnState {
    /// The core's handle; `None` once the core freed the connection.
    pub(crate) handle: Option<ConnectionHandle>,
    pub(crate) side: Side,
    /// Live application references (connections, streams, pending `Connecting`).
    pub(crate) refs: usize,
    /// Handshake done.
    pub(crate) connected: bool,
    /// Why the connection ended, once it has.
    pub(crate) error: Option<ConnectionError>,
    /// Last known peer address.
    pub(crate) remote: SocketAddr,
    /// Accepted by a server: goes to the accept queue once connected.
    pub(crate) incoming: bool,
    pub(crate) in_accept_queue: bool,
    pub(crate) connect_wakers: WakerSet,
    pub(crate) closed_wakers: WakerSet,
    /// Indexed by `Dir as usize`.
    pub(crate) open_wakers: [WakerSet; 2],
    /// Indexed by `Dir as usize`.
    pub(crate) stream_accept_wakers: [WakerSet; 2],
    pub(crate) datagram_wakers: WakerSet,
    pub(crate) send: HashMap<StreamId, SendState>,
    pub(crate) recv: HashMap<StreamId, Option<Waker>>,
}

impl ConnState {
    fn new(handle: ConnectionHandle, side: Side, remote: SocketAddr, incoming: bool) -> Self {
        Self {
            handle: Some(handle),
            side,
            refs: 0,
            connected: false,
            error: None,
            remote,
            incoming,
            in_accept_queue: false,
            connect_wakers: WakerSet::default(),
            closed_wakers: WakerSet::default(),
            open_wakers: Default::default(),
            stream_accept_wakers: Default::default(),
            datagram_wakers: WakerSet::default(),
            send: HashMap::new(),
            recv: HashMap::new(),
        }
    }

    /// Move every waker of this connection to `out`.
    fn wake_all(&mut self, out: &mut Vec<Waker>) {
        self.connect_wakers.drain_into(out);
        self.closed_wakers.drain_into(out);
        for set in self
            .open_wakers
            .iter_mut()
            .chain(self.stream_accept_wakers.iter_mut())
        {
            set.drain_into(out);
        }
        self.datagram_wakers.drain_into(out);
        for s in self.send.values_mut() {
            out.extend(s.writable.take());
            out.extend(s.stopped_waker.take());
        }
        for r in self.recv.values_mut() {
            out.extend(r.take());
        }
    }
}

/// The endpoint-wide state behind the mutex.
pub(crate) struct State {
    pub(crate) proto: ProtoEndpoint,
    pub(crate) conns: HashMap<ConnId, ConnState>,
    by_handle: HashMap<ConnectionHandle, ConnId>,
    next_id: ConnId,
    /// Connected incoming connections not yet returned by `accept`.
    pub(crate) incoming: VecDeque<ConnId>,
    pub(crate) accept_wakers: WakerSet,
    pub(crate) idle_wakers: WakerSet,
    pub(crate) default_client_config: Option<ClientConfig>,
    /// Live [`Endpoint`](crate::Endpoint) handles.
    pub(crate) endpoint_refs: usize,
    /// `close()` was called or every endpoint handle was dropped: no more accepts.
    pub(crate) closed: bool,
    /// The driver task has exited; nothing will make progress any more.
    pub(crate) driver_stopped: bool,
    /// Connections that may be freeable (no references, or lost); checked by `cleanup`.
    abandoned: Vec<ConnId>,
    /// Wakers to wake once the lock is released.
    wakes: Vec<Waker>,
}

impl State {
    pub(crate) fn new(proto: ProtoEndpoint) -> Self {
        Self {
            proto,
            conns: HashMap::new(),
            by_handle: HashMap::new(),
            next_id: 0,
            incoming: VecDeque::new(),
            accept_wakers: WakerSet::default(),
            idle_wakers: WakerSet::default(),
            default_client_config: None,
            endpoint_refs: 0,
            closed: false,
            driver_stopped: false,
            abandoned: Vec::new(),
            wakes: Vec::new(),
        }
    }

    /// Start tracking a connection the core just created.
    pub(crate) fn add_conn(
        &mut self,
        handle: ConnectionHandle,
        side: Side,
        remote: SocketAddr,
        incoming: bool,
    ) -> ConnId {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(old) = self.by_handle.insert(handle, id) {
            // The core recycled the handle: the old connection is gone for good.
            self.detach(old);
        }
        self.conns
            .insert(id, ConnState::new(handle, side, remote, incoming));
        id
    }

    /// The core no longer knows this connection.
    fn detach(&mut self, id: ConnId) {
        let Some(cs) = self.conns.get_mut(&id) else {
            return;
        };
        cs.handle = None;
        if cs.error.is_none() {
            cs.error = Some(ConnectionError::LocallyClosed);
        }
        cs.wake_all(&mut self.wakes);
        self.abandoned.push(id);
    }

    /// The runtime id of a core handle.
    pub(crate) fn conn_id(&self, handle: ConnectionHandle) -> Option<ConnId> {
        self.by_handle.get(&handle).copied()
    }

    /// Split borrow: our bookkeeping and the core's connection (if it still exists).
    pub(crate) fn parts(
        &mut self,
        id: ConnId,
    ) -> Option<(&mut ConnState, Option<&mut ProtoConnection>)> {
        let cs = self.conns.get_mut(&id)?;
        let pc = match cs.handle {
            Some(h) => self.proto.connection_mut(h),
            None => None,
        };
        Some((cs, pc))
    }

    /// Why the connection can no longer be used, if it cannot.
    pub(crate) fn conn_error(&self, id: ConnId) -> Option<ConnectionError> {
        match self.conns.get(&id) {
            Some(cs) => cs.error.clone(),
            None => Some(ConnectionError::LocallyClosed),
        }
    }

    /// Record the end of a connection and wake everyone waiting on it.
    pub(crate) fn conn_lost(&mut self, id: ConnId, reason: ConnectionError) {
        let Some(cs) = self.conns.get_mut(&id) else {
            return;
        };
        if cs.error.is_none() {
            cs.error = Some(reason);
        }
        cs.wake_all(&mut self.wakes);
        self.abandoned.push(id);
    }

    /// Close a connection with an application error code (RFC 9000 §10.2).
    pub(crate) fn close_conn(&mut self, id: ConnId, now: Instant, code: VarInt, reason: &[u8]) {
        if let Some((cs, pc)) = self.parts(id) {
            if cs.error.is_none() {
                if let Some(pc) = pc {
                    pc.close(now, code, bytes::Bytes::copy_from_slice(reason));
                }
            }
        }
        self.conn_lost(id, ConnectionError::LocallyClosed);
    }

    /// One application reference was dropped.
    pub(crate) fn release(&mut self, id: ConnId) {
        let Some(cs) = self.conns.get_mut(&id) else {
            return;
        };
        cs.refs = cs.refs.saturating_sub(1);
        if cs.refs == 0 && !cs.in_accept_queue {
            // Like dropping a socket: nobody can use the connection any more, so close
            // it with code 0 and let the core drain it.
            self.close_conn(id, Instant::now(), VarInt::from_u32(0), b"");
        }
    }

    /// Every [`Endpoint`](crate::Endpoint) handle was dropped: refuse new connections and
    /// close those nobody can ever accept.
    pub(crate) fn endpoint_released(&mut self) {
        self.closed = true;
        self.proto.set_server_config(None);
        let now = Instant::now();
        let orphans: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, cs)| cs.refs == 0)
            .map(|(id, _)| *id)
            .collect();
        self.incoming.clear();
        for id in orphans {
            if let Some(cs) = self.conns.get_mut(&id) {
                cs.in_accept_queue = false;
            }
            self.close_conn(id, now, VarInt::from_u32(0), b"");
        }
        self.accept_wakers.drain_into(&mut self.wakes);
    }

    /// Close every connection and stop accepting (`Endpoint::close`).
    pub(crate) fn close_all(&mut self, code: VarInt, reason: &[u8]) {
        self.closed = true;
        self.proto.set_server_config(None);
        let now = Instant::now();
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close_conn(id, now, code, reason);
        }
        self.accept_wakers.drain_into(&mut self.wakes);
    }

    /// The driver died: fail every connection with `reason`.
    pub(crate) fn driver_failed(&mut self, reason: &str) {
        self.driver_stopped = true;
        self.closed = true;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.conn_lost(
                id,
                ConnectionError::TransportError(TransportError::INTERNAL_ERROR(reason)),
            );
        }
        self.accept_wakers.drain_into(&mut self.wakes);
        self.idle_wakers.drain_into(&mut self.wakes);
    }

    /// Route one core event to the tasks waiting for it.
    pub(crate) fn dispatch(&mut self, handle: ConnectionHandle, event: Event) {
        let Some(id) = self.conn_id(handle) else {
            tracing::trace!(?handle, ?event, "event for an untracked connection");
            return;
        };
        if let Event::ConnectionLost { reason } = event {
            tracing::debug!(conn = id, %reason, "connection lost");
            self.conn_lost(id, reason);
            return;
        }
        let Some(cs) = self.conns.get_mut(&id) else {
            return;
        };
        let wakes = &mut self.wakes;
        match event {
            Event::Connected => {
                cs.connected = true;
                cs.connect_wakers.drain_into(wakes);
                // Stream limits are known now; pending opens may proceed.
                for set in cs.open_wakers.iter_mut() {
                    set.drain_into(wakes);
                }
                if cs.incoming && !self.closed {
                    cs.in_accept_queue = true;
                    self.incoming.push_back(id);
                    self.accept_wakers.drain_into(wakes);
                }
            }
            Event::ConnectionLost { .. } => {}
            Event::StreamOpened { dir } => cs.stream_accept_wakers[dir_idx(dir)].drain_into(wakes),
            Event::StreamAvailable { dir } => cs.open_wakers[dir_idx(dir)].drain_into(wakes),
            Event::StreamReadable { id: sid } => {
                if let Some(w) = cs.recv.get_mut(&sid) {
                    wakes.extend(w.take());
                }
            }
            Event::StreamWritable { id: sid } => {
                if let Some(s) = cs.send.get_mut(&sid) {
                    wakes.extend(s.writable.take());
                }
            }
            Event::StreamFinished { id: sid } => {
                if let Some(s) = cs.send.get_mut(&sid) {
                    s.acked = true;
                    wakes.extend(s.stopped_waker.take());
                }
            }
            Event::StreamStopped {
                id: sid,
                error_code,
            } => {
                if let Some(s) = cs.send.get_mut(&sid) {
                    s.stopped = Some(error_code);
                    wakes.extend(s.writable.take());
                    wakes.extend(s.stopped_waker.take());
                }
            }
            Event::StreamExpired { id: sid } => {
                // Reset by the scheduler (deadline passed): writers see a closed stream.
                if let Some(s) = cs.send.get_mut(&sid) {
                    wakes.extend(s.writable.take());
                    wakes.extend(s.stopped_waker.take());
                }
            }
            Event::DatagramReceived => cs.datagram_wakers.drain_into(wakes),
        }
    }

    /// Free bookkeeping of connections that nobody references and the core no longer
    /// needs; wake `wait_idle` callers when no connection is left.
    pub(crate) fn cleanup(&mut self) {
        let candidates = std::mem::take(&mut self.abandoned);
        for id in candidates {
            let Some(cs) = self.conns.get(&id) else {
                continue;
            };
            if cs.refs > 0 || cs.in_accept_queue {
                continue;
            }
            let core_done = match cs.handle {
                None => true,
                Some(h) => match self.proto.connection(h) {
                    None => true,
                    Some(c) => c.is_drained(),
                },
            };
            if core_done {
                if let Some(h) = cs.handle {
                    if self.by_handle.get(&h) == Some(&id) {
                        self.by_handle.remove(&h);
                    }
                }
                self.conns.remove(&id);
            } else {
                // Still draining: look again next time.
                self.abandoned.push(id);
            }
        }
        if self.proto.connection_count() == 0 {
            self.idle_wakers.drain_into(&mut self.wakes);
        }
    }

    /// Whether the driver may exit: no handle can use the endpoint and nothing is left
    /// to drain.
    pub(crate) fn finished(&mut self) -> bool {
        self.endpoint_refs == 0 && self.conns.is_empty() && self.proto.connection_count() == 0
    }

    /// Take the wakers collected while the lock was held; wake them after unlocking.
    pub(crate) fn take_wakes(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.wakes)
    }
}

/// Index of a direction in the per-direction waker arrays.
pub(crate) fn dir_idx(dir: Dir) -> usize {
    match dir {
        Dir::Bi => 0,
        Dir::Uni => 1,
    }
}

/// Wake a batch of wakers (outside the lock).
pub(crate) fn wake(wakes: Vec<Waker>) {
    for w in wakes {
        w.wake();
    }
}
