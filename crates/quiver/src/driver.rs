//! The endpoint driver: one tokio task per endpoint that owns all socket I/O and runs
//! the sans-IO core's call contract (see `quiver_proto`'s crate docs).
//!
//! "Socket" below is the endpoint's [`DatagramTransport`]: a UDP socket through
//! quinn-udp by default, or any other transport (an in-memory channel, a MASQUE flow).
//!
//! One *round*:
//! 1. send what the previous round prepared (socket syscall, **outside** the lock);
//! 2. receive one batch of datagrams with quinn-udp (GRO batches split at `stride`, ECN
//!    and the destination address from the control messages) — outside the lock;
//! 3. under the lock: feed the batch to `Endpoint::handle`, fire due timers
//!    (`handle_timeout`), prepare up to [`SEND_BATCH`] transmits (`poll_transmit`,
//!    several equal-size datagrams each where the kernel supports GSO), route
//!    `poll_event` events to the tasks waiting for them;
//! 4. after unlocking, send the prepared transmits, then wake those tasks; if it woke
//!    any, yield before the next round (see below).
//!
//! The lock is held only for protocol work, never across a syscall, so application
//! tasks (writing, reading, opening streams) run in parallel with the socket I/O on
//! the other cores. Receiving and transmitting alternate batch by batch: the ACKs a
//! batch calls for go out before the next batch is read, instead of after the whole
//! socket was drained.
//!
//! When nothing is left, the task sleeps until the socket is readable (or writable, if
//! a send was refused), an application call changed something (`Shared::notify`), or
//! the core's next deadline. Work per wake-up is bounded ([`ROUNDS`]) so that a busy
//! endpoint yields to other tasks. A round that woke tasks also ends the wake-up: tokio
//! puts the first task a worker wakes into that worker's LIFO slot, which other workers
//! cannot steal, so without yielding an application task (a `Connecting`, a reader)
//! waited for up to [`ROUNDS`] more rounds of protocol work while the other core idled.

use crate::state::{wake, Shared, State};
use crate::transport::DatagramTransport;
use quiver_proto::connection::Transmit;
use quiver_proto::shared::EcnCodepoint;
use std::collections::VecDeque;
use std::io::{self, IoSliceMut};
use std::sync::Arc;
use std::time::Instant;

/// Rounds (one receive syscall and up to [`SEND_BATCH`] transmits each) per wake-up.
const ROUNDS: usize = 16;
/// `poll_transmit` results prepared under the lock per round.
const SEND_BATCH: usize = 8;
/// Bytes per receive buffer: the largest UDP payload, or one GRO batch, both < 64 KiB.
const RECV_SLOT: usize = 64 * 1024;

/// Run the driver until the endpoint is unused and drained, or the socket fails.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut io = Io::new();
    loop {
        // Re-read every wake-up: `Endpoint::rebind` may have replaced it.
        let socket = shared.socket();
        let deadline = match io.run_rounds(&shared, &*socket) {
            Step::Exit => return,
            Step::Failed(e) => {
                tracing::error!("UDP socket failed, stopping the endpoint: {e}");
                let wakes = {
                    let mut st = shared.lock();
                    st.driver_failed(&format!("UDP socket failed: {e}"));
                    st.take_wakes()
                };
                wake(wakes);
                return;
            }
            Step::Again => {
                tokio::task::yield_now().await;
                continue;
            }
            Step::Wait(deadline) => deadline,
        };
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = std::future::poll_fn(|cx| socket.poll_recv_ready(cx)) => {
                if let Err(e) = r {
                    tracing::warn!("UDP readiness: {e}");
                }
            }
            r = std::future::poll_fn(|cx| socket.poll_send_ready(cx)), if !io.out.is_empty() => {
                if let Err(e) = r {
                    tracing::warn!("UDP readiness: {e}");
                }
            }
            _ = shared.notify.notified() => {}
            _ = sleep => {}
        }
    }
}

/// What the driver does after a wake-up's rounds.
enum Step {
    /// Sleep until I/O readiness, a notification or the deadline.
    Wait(Option<Instant>),
    /// The budget ran out: yield to other tasks and continue.
    Again,
    /// Nothing left to do ever.
    Exit,
    /// The socket failed.
    Failed(io::Error),
}

/// A transmit prepared under the lock, sent after it.
struct Outgoing {
    transmit: Transmit,
    data: Vec<u8>,
}

/// Buffers owned by the driver.
struct Io {
    recv_buf: Vec<u8>,
    meta: Vec<quinn_udp::RecvMeta>,
    /// Datagram batches received but not yet handed to the core.
    received: usize,
    /// Prepared transmits, oldest first; the front one was refused (`WouldBlock`) if
    /// the queue is non-empty between rounds.
    out: VecDeque<Outgoing>,
    /// Spare send buffers.
    spare: Vec<Vec<u8>>,
}

impl Io {
    fn new() -> Self {
        // GRO batches never exceed RECV_SLOT.
        let slots = quinn_udp::BATCH_SIZE.max(1);
        Self {
            recv_buf: vec![0; RECV_SLOT * slots],
            meta: vec![quinn_udp::RecvMeta::default(); slots],
            received: 0,
            out: VecDeque::with_capacity(SEND_BATCH),
            spare: Vec::new(),
        }
    }

    /// Up to [`ROUNDS`] rounds of I/O and protocol work.
    fn run_rounds(&mut self, shared: &Shared, socket: &dyn DatagramTransport) -> Step {
        let max_segments = socket.max_gso_segments().max(1);
        for _ in 0..ROUNDS {
            // 1. What the last round prepared.
            let send_blocked = !self.flush(socket);
            // 2. One receive syscall.
            let more_to_read = match self.receive(socket) {
                Ok(more) => more,
                Err(e) => return Step::Failed(e),
            };
            // 3. Protocol work under the lock.
            let now = Instant::now();
            let (outcome, wakes) = {
                let mut st = shared.lock();
                let outcome = self.process(&mut st, now, send_blocked, max_segments);
                (outcome, st.take_wakes())
            };
            // 4. Outside the lock again: send first, so that the peer can work on
            // the answer while the woken tasks run.
            let woke = !wakes.is_empty();
            let (more_to_send, deadline) = match outcome {
                Round::Exit => {
                    self.flush(socket);
                    wake(wakes);
                    return Step::Exit;
                }
                Round::Done {
                    more_to_send,
                    deadline,
                } => (more_to_send, deadline),
            };
            let send_blocked = !self.flush(socket);
            wake(wakes);
            if !more_to_read && (!more_to_send || send_blocked) {
                return Step::Wait(deadline);
            }
            if woke {
                // The first task woken from this worker sits in its LIFO slot, which
                // no other worker may steal: yield so that it runs now rather than
                // after up to ROUNDS more rounds of protocol work.
                return Step::Again;
            }
        }
        Step::Again
    }

    /// Hand the received batch to the core, fire timers, prepare transmits, dispatch
    /// events.
    fn process(
        &mut self,
        st: &mut State,
        now: Instant,
        send_blocked: bool,
        max_segments: usize,
    ) -> Round {
        self.handle_received(st, now);
        if st.proto.poll_timeout().is_some_and(|t| t <= now) {
            st.proto.handle_timeout(now);
        }
        let mut more_to_send = false;
        if !send_blocked {
            more_to_send = self.prepare(st, now, max_segments);
        }
        while let Some((handle, event)) = st.proto.poll_event() {
            st.dispatch(handle, event);
        }
        st.cleanup();
        if st.finished() {
            return Round::Exit;
        }
        Round::Done {
            more_to_send,
            deadline: st.proto.poll_timeout(),
        }
    }

    /// One receive syscall into the receive buffers; `Ok(true)` if the socket may hold
    /// more.
    fn receive(&mut self, socket: &dyn DatagramTransport) -> io::Result<bool> {
        self.received = 0;
        loop {
            let received = {
                let mut bufs: Vec<IoSliceMut<'_>> = self
                    .recv_buf
                    .chunks_mut(RECV_SLOT)
                    .map(IoSliceMut::new)
                    .collect();
                socket.try_recv(&mut bufs, &mut self.meta)
            };
            return match received {
                Ok(n) => {
                    self.received = n;
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                // ICMP errors reported for an earlier send (port unreachable, ...): the
                // connection's loss recovery handles them, the socket is fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    tracing::debug!("UDP receive: {e}");
                    continue;
                }
                Err(e) => Err(e),
            };
        }
    }

    /// Feed the datagrams of the last receive to the core.
    fn handle_received(&mut self, st: &mut State, now: Instant) {
        let n = std::mem::take(&mut self.received);
        for (meta, slot) in self
            .meta
            .iter()
            .zip(self.recv_buf.chunks(RECV_SLOT))
            .take(n)
        {
            let Some(data) = slot.get(..meta.len) else {
                continue;
            };
            let ecn = meta.ecn.and_then(|e| EcnCodepoint::from_bits(e as u8));
            // One buffer may hold a GRO batch of equal-size datagrams, the last one
            // possibly shorter.
            let stride = if meta.stride == 0 {
                data.len().max(1)
            } else {
                meta.stride
            };
            // One copy and allocation per receive buffer (a GRO batch), not per datagram:
            // the datagrams are split off it and share its allocation.
            let mut batch = bytes::BytesMut::from(data);
            while !batch.is_empty() {
                let datagram = batch.split_to(stride.min(batch.len()));
                let event = st.proto.handle(now, meta.addr, meta.dst_ip, ecn, datagram);
                if let Some(quiver_proto::endpoint::DatagramEvent::NewConnection(h)) = event {
                    st.add_conn(h, quiver_proto::Side::Server, meta.addr, true);
                }
            }
        }
    }

    /// Prepare up to [`SEND_BATCH`] transmits; `true` if the batch is full (the core may
    /// have more).
    fn prepare(&mut self, st: &mut State, now: Instant, max_segments: usize) -> bool {
        while self.out.len() < SEND_BATCH {
            let mut data = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(RECV_SLOT));
            data.clear();
            let Some(transmit) = st.proto.poll_transmit(now, max_segments, &mut data) else {
                self.spare.push(data);
                return false;
            };
            self.out.push_back(Outgoing { transmit, data });
        }
        true
    }

    /// Send the prepared transmits; `false` if the kernel refused one (`WouldBlock`),
    /// which then stays at the front of the queue.
    fn flush(&mut self, socket: &dyn DatagramTransport) -> bool {
        while let Some(o) = self.out.front() {
            if !send(socket, &o.transmit, &o.data) {
                return false;
            }
            if let Some(o) = self.out.pop_front() {
                if self.spare.len() < SEND_BATCH {
                    self.spare.push(o.data);
                }
            }
        }
        true
    }
}

/// Result of the protocol work of one round.
enum Round {
    Done {
        /// The send batch filled up: the core may have more.
        more_to_send: bool,
        /// The core's next deadline.
        deadline: Option<Instant>,
    },
    Exit,
}

/// Hand one transmit to the kernel; `false` if the socket buffer is full.
fn send(socket: &dyn DatagramTransport, t: &Transmit, data: &[u8]) -> bool {
    let Some(contents) = data.get(..t.size) else {
        tracing::error!(
            size = t.size,
            buf = data.len(),
            "transmit larger than its buffer"
        );
        return true;
    };
    let transmit = quinn_udp::Transmit {
        destination: t.destination,
        ecn: t
            .ecn
            .and_then(|e| quinn_udp::EcnCodepoint::from_bits(e as u8)),
        contents,
        segment_size: t.segment_size.filter(|&s| s < contents.len()),
        src_ip: t.src_ip,
    };
    // quinn-udp reports only `WouldBlock`; other send errors are logged and the
    // datagram is dropped, as loss recovery will resend its contents.
    match socket.try_send(&transmit) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => {
            tracing::warn!("UDP send: {e}");
            true
        }
    }
}
