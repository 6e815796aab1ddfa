//! The "wire": a thread that forwards Ethernet frames between two veths of the wire
//! namespace through `AF_PACKET` sockets, holding each frame for `delay ± jitter`.
//!
//! The kernel here has no `netem`, so delay is the one impairment done in user space.
//! One thread serves both directions of a link: it sleeps in `ppoll` until a frame
//! arrives or the head of a delay queue is due (nanosecond timeout, 1 µs timer slack),
//! so its cost is a few system calls per frame and nothing when idle. Frames are never
//! reordered: jitter cannot release a frame before the one in front of it.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::error::{EmuError, Result};
use super::sys::{self, PacketSocket, Recv};

/// Longest sleep between checks of the stop flag.
const IDLE: Duration = Duration::from_millis(20);
/// Frames read per socket per wake-up before serving the other direction.
const BATCH: usize = 256;
/// Receive buffer: a 64 KiB GSO frame plus its virtio-net header.
const BUF_LEN: usize = 65_536 + sys::VNET_HDR_LEN;
/// Bytes one direction may hold in its delay line before dropping (a safety valve, far
/// above any bandwidth-delay product the emulator is meant for).
const MAX_HELD_BYTES: usize = 256 << 20;

/// What a wire thread needs to start.
#[derive(Debug, Clone)]
pub(crate) struct WireSpec {
    /// `/run/netns/<name>` of the wire namespace.
    pub netns_path: PathBuf,
    /// Interface facing end A (frames read here go A→B).
    pub a_if: String,
    /// Interface facing end B.
    pub b_if: String,
    /// (delay, jitter) of A→B and of B→A.
    pub delay: [(Duration, Duration); 2],
    /// Seed of the jitter generator.
    pub seed: u64,
}

/// Counters of one wire thread, read when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Frames forwarded A→B and B→A.
    pub frames: [u64; 2],
    /// Bytes forwarded (Ethernet frames, without the virtio-net header).
    pub bytes: [u64; 2],
    /// Frames the kernel refused on transmit (normally the bottleneck queue was full or
    /// the loss classifier dropped it: `ENOBUFS`).
    pub tx_refused: [u64; 2],
    /// Frames dropped because the delay line was over its safety limit.
    pub overflow: [u64; 2],
    /// CPU time (user + system) the thread used. System time includes the kernel's work
    /// of delivering each frame to the receiving namespace (veth receive runs in the
    /// sender's context), so this is the cost of the whole hop, not only of the copy.
    pub cpu: Duration,
    /// The user-space part of `cpu`.
    pub cpu_user: Duration,
    /// Wall-clock time the thread ran.
    pub wall: Duration,
}

impl WireStats {
    /// CPU time per forwarded frame, if any frame was forwarded.
    pub fn cpu_per_frame(&self) -> Option<Duration> {
        let n = self.frames[0] + self.frames[1];
        (n > 0).then(|| self.cpu / u32::try_from(n).unwrap_or(u32::MAX))
    }
}

struct Held {
    release: Instant,
    frame: Box<[u8]>,
}

struct Direction {
    delay: Duration,
    jitter: Duration,
    line: VecDeque<Held>,
    held_bytes: usize,
    last_release: Option<Instant>,
}

impl Direction {
    fn release_time(&mut self, now: Instant, rng: &mut SmallRng) -> Instant {
        let mut t = now + self.delay;
        if !self.jitter.is_zero() {
            let j = self.jitter.as_nanos().min(u128::from(u64::MAX)) as u64;
            let offset = rng.gen_range(0..=2 * j.min(u64::MAX / 2));
            let d = self.delay.as_nanos().min(u128::from(u64::MAX)) as u64;
            // delay - jitter + offset, clamped at zero.
            t = now + Duration::from_nanos((d + offset).saturating_sub(j));
        }
        // FIFO: never before the frame in front.
        let t = self.last_release.map_or(t, |last| t.max(last));
        self.last_release = Some(t);
        t
    }
}

/// A running wire thread; stopping (or dropping) it joins the thread.
pub(crate) struct Wire {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<WireStats>>>,
}

impl Wire {
    /// Starts the thread and waits until its sockets are bound.
    pub(crate) fn start(spec: WireSpec) -> Result<Self> {
        let ns = File::open(&spec.netns_path)
            .map_err(|e| EmuError::io(format!("open {}", spec.netns_path.display()), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let stop2 = Arc::clone(&stop);
        let name = format!("wire-{}", spec.a_if);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let setup = (|| {
                    sys::setns_net(&ns)?;
                    drop(ns);
                    let _ = sys::set_timer_slack(1_000);
                    Ok::<_, io::Error>([
                        PacketSocket::bind(&spec.a_if)?,
                        PacketSocket::bind(&spec.b_if)?,
                    ])
                })();
                match setup {
                    Ok(socks) => {
                        let _ = ready_tx.send(Ok(()));
                        run(&socks, &spec, &stop2)
                    }
                    Err(e) => {
                        let kind = e.kind();
                        let _ = ready_tx.send(Err(e));
                        Err(io::Error::from(kind))
                    }
                }
            })
            .map_err(|e| EmuError::io("spawn wire thread", e))?;
        let wire = Self {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(wire),
            Ok(Err(e)) => Err(EmuError::io(
                "start wire (AF_PACKET on the wire namespace's veths)",
                e,
            )),
            Err(_) => Err(EmuError::io(
                "start wire",
                io::Error::other("wire thread died"),
            )),
        }
    }

    /// Stops the thread and returns its counters.
    pub(crate) fn stop(mut self) -> Result<WireStats> {
        self.join()
    }

    fn join(&mut self) -> Result<WireStats> {
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else {
            return Ok(WireStats::default());
        };
        match thread.join() {
            Ok(Ok(stats)) => Ok(stats),
            Ok(Err(e)) => Err(EmuError::io("wire thread", e)),
            Err(_) => Err(EmuError::io("wire thread", io::Error::other("panicked"))),
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            tracing::warn!("{e}");
        }
    }
}

fn run(socks: &[PacketSocket; 2], spec: &WireSpec, stop: &AtomicBool) -> io::Result<WireStats> {
    let cpu0 = sys::thread_cpu_time()?;
    let start = Instant::now();
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    let mut dirs = spec.delay.map(|(delay, jitter)| Direction {
        delay,
        jitter,
        line: VecDeque::new(),
        held_bytes: 0,
        last_release: None,
    });
    let mut stats = WireStats::default();
    let mut buf = vec![0u8; BUF_LEN];
    while !stop.load(Ordering::Relaxed) {
        // Release what is due. Direction i reads socket i and writes socket 1 - i.
        let now = Instant::now();
        for (i, d) in dirs.iter_mut().enumerate() {
            while d.line.front().is_some_and(|h| h.release <= now) {
                let Some(h) = d.line.pop_front() else { break };
                d.held_bytes -= h.frame.len();
                match socks[1 - i].send(&h.frame) {
                    Ok(()) => {
                        stats.frames[i] += 1;
                        stats.bytes[i] += (h.frame.len() - sys::VNET_HDR_LEN) as u64;
                    }
                    Err(_) => stats.tx_refused[i] += 1,
                }
            }
        }
        let next = dirs
            .iter()
            .filter_map(|d| d.line.front().map(|h| h.release))
            .min();
        let timeout = next
            .map_or(IDLE, |t| t.saturating_duration_since(now))
            .min(IDLE);
        let readable = sys::wait_readable([&socks[0], &socks[1]], timeout)?;
        let now = Instant::now();
        for (i, d) in dirs.iter_mut().enumerate() {
            if !readable[i] {
                continue;
            }
            for _ in 0..BATCH {
                let n = match socks[i].recv(&mut buf) {
                    Ok(Recv::Frame(n)) => n,
                    Ok(Recv::Outgoing) => continue,
                    Ok(Recv::WouldBlock) => break,
                    Err(e) => {
                        tracing::debug!("wire recv: {e}");
                        break;
                    }
                };
                if n < sys::VNET_HDR_LEN {
                    continue;
                }
                if d.held_bytes + n > MAX_HELD_BYTES {
                    stats.overflow[i] += 1;
                    continue;
                }
                let release = d.release_time(now, &mut rng);
                d.held_bytes += n;
                d.line.push_back(Held {
                    release,
                    frame: buf[..n].into(),
                });
            }
        }
    }
    let (user, system) = sys::thread_cpu_time()?;
    stats.cpu_user = user.saturating_sub(cpu0.0);
    stats.cpu = (user + system).saturating_sub(cpu0.0 + cpu0.1);
    stats.wall = start.elapsed();
    Ok(stats)
}
