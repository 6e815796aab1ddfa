//! The endpoint driver: one tokio task per endpoint that owns all socket I/O and runs
//! the sans-IO core's call contract (see `quiver_proto`'s crate docs):
//!
//! 1. receive datagrams with quinn-udp (GRO batches split at `stride`, ECN and the
//!    destination address from the control messages) and feed them to
//!    `Endpoint::handle`;
//! 2. fire expired timers (`handle_timeout`);
//! 3. drain `poll_transmit` into `UdpSocketState::send`, several equal-size datagrams at
//!    a time when the kernel supports GSO;
//! 4. hand `poll_event` events to the tasks waiting for them;
//! 5. sleep until the socket is readable (or writable, if a send was refused), an
//!    application call changed something (`Shared::notify`), or the core's next timer.
//!
//! Work per wake-up is bounded so that a busy receive path cannot starve transmission
//! (and vice versa); when a budget runs out the task yields and continues.

use crate::state::{wake, Shared, State};
use quiver_proto::shared::EcnCodepoint;
use std::io::{self, IoSliceMut};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::Interest;

/// Receive syscalls (each up to `quinn_udp::BATCH_SIZE` buffers) per wake-up.
const RECV_BUDGET: usize = 16;
/// `poll_transmit` batches sent per wake-up.
const SEND_BUDGET: usize = 64;
/// Bytes per receive buffer: the largest UDP payload, or one GRO batch, both < 64 KiB.
const RECV_SLOT: usize = 64 * 1024;

/// Run the driver until the endpoint is unused and drained, or the socket fails.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut io = Io::new(&shared);
    loop {
        let now = Instant::now();
        let (outcome, wakes) = {
            let mut st = shared.lock();
            let outcome = io.step(&shared, &mut st, now);
            (outcome, st.take_wakes())
        };
        wake(wakes);
        let deadline = match outcome {
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
            r = shared.socket.readable() => {
                if let Err(e) = r {
                    tracing::warn!("UDP readiness: {e}");
                }
            }
            r = shared.socket.writable(), if io.pending.is_some() => {
                if let Err(e) = r {
                    tracing::warn!("UDP readiness: {e}");
                }
            }
            _ = shared.notify.notified() => {}
            _ = sleep => {}
        }
    }
}

/// What the driver does after one step.
enum Step {
    /// Sleep until I/O readiness, a notification or the deadline.
    Wait(Option<Instant>),
    /// A budget ran out: yield to other tasks and step again.
    Again,
    /// Nothing left to do ever.
    Exit,
    /// The socket failed.
    Failed(io::Error),
}

/// A transmit the kernel refused with `WouldBlock`, retried when the socket is writable.
struct Pending {
    transmit: quiver_proto::connection::Transmit,
    data: Vec<u8>,
}

/// Buffers owned by the driver.
struct Io {
    recv_buf: Vec<u8>,
    meta: Vec<quinn_udp::RecvMeta>,
    send_buf: Vec<u8>,
    pending: Option<Pending>,
}

impl Io {
    fn new(shared: &Shared) -> Self {
        let slots = quinn_udp::BATCH_SIZE.max(1);
        let _ = shared.udp.gro_segments(); // GRO batches never exceed RECV_SLOT.
        Self {
            recv_buf: vec![0; RECV_SLOT * slots],
            meta: vec![quinn_udp::RecvMeta::default(); slots],
            send_buf: Vec::with_capacity(RECV_SLOT),
            pending: None,
        }
    }

    /// One round of the call contract under the lock.
    ///
    /// Each receive syscall is followed by a transmit pass, so that the ACKs (and the
    /// data an ACK releases) of one batch go out before the next batch is read: reading
    /// the whole socket first would acknowledge hundreds of packets at once and leave
    /// the peer's congestion window waiting for them.
    fn step(&mut self, shared: &Shared, st: &mut State, now: Instant) -> Step {
        let mut again = false;
        let mut received_all = false;
        for _ in 0..RECV_BUDGET {
            match self.receive_once(shared, st, now) {
                Ok(true) => {}
                Ok(false) => {
                    received_all = true;
                    break;
                }
                Err(e) => return Step::Failed(e),
            }
            again |= self.transmit(shared, st, now);
        }
        again |= !received_all;
        if st.proto.poll_timeout().is_some_and(|t| t <= now) {
            st.proto.handle_timeout(now);
        }
        again |= self.transmit(shared, st, now);
        while let Some((handle, event)) = st.proto.poll_event() {
            st.dispatch(handle, event);
        }
        st.cleanup();
        if st.finished() {
            return Step::Exit;
        }
        if again {
            return Step::Again;
        }
        Step::Wait(st.proto.poll_timeout())
    }

    /// One receive syscall (several datagrams, GRO batches split); `Ok(false)` when the
    /// socket had nothing to read.
    fn receive_once(&mut self, shared: &Shared, st: &mut State, now: Instant) -> io::Result<bool> {
        loop {
            let received = {
                let mut bufs: Vec<IoSliceMut<'_>> = self
                    .recv_buf
                    .chunks_mut(RECV_SLOT)
                    .map(IoSliceMut::new)
                    .collect();
                shared.socket.try_io(Interest::READABLE, || {
                    shared
                        .udp
                        .recv((&shared.socket).into(), &mut bufs, &mut self.meta)
                })
            };
            let n = match received {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
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
                Err(e) => return Err(e),
            };
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
                for datagram in data.chunks(stride) {
                    let event = st.proto.handle(
                        now,
                        meta.addr,
                        meta.dst_ip,
                        ecn,
                        bytes::BytesMut::from(datagram),
                    );
                    if let Some(quiver_proto::endpoint::DatagramEvent::NewConnection(h)) = event {
                        let remote = meta.addr;
                        st.add_conn(h, quiver_proto::Side::Server, remote, true);
                    }
                }
            }
            return Ok(true);
        }
    }

    /// Send what the core has; `true` if the budget ran out with more possibly waiting.
    fn transmit(&mut self, shared: &Shared, st: &mut State, now: Instant) -> bool {
        if let Some(p) = self.pending.take() {
            if !self.send(shared, p.transmit, &p.data) {
                self.pending = Some(p);
                return false;
            }
        }
        let max_segments = shared.udp.max_gso_segments().max(1);
        for _ in 0..SEND_BUDGET {
            self.send_buf.clear();
            let Some(t) = st
                .proto
                .poll_transmit(now, max_segments, &mut self.send_buf)
            else {
                return false;
            };
            let data = std::mem::take(&mut self.send_buf);
            if !self.send(shared, t, &data) {
                self.pending = Some(Pending { transmit: t, data });
                self.send_buf = Vec::with_capacity(RECV_SLOT);
                return false;
            }
            self.send_buf = data;
        }
        true
    }

    /// Hand one transmit to the kernel; `false` if the socket buffer is full.
    fn send(&self, shared: &Shared, t: quiver_proto::connection::Transmit, data: &[u8]) -> bool {
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
        match shared.socket.try_io(Interest::WRITABLE, || {
            shared.udp.send((&shared.socket).into(), &transmit)
        }) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                tracing::warn!("UDP send: {e}");
                true
            }
        }
    }
}
