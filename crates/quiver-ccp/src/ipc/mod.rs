//! Transports between datapaths and an agent: Unix datagram sockets and an in-process
//! channel. One message ([`crate::wire::Message`]) per datagram.
//!
//! - The **agent** end ([`AgentTransport`]) receives from many datapaths and answers the
//!   one a message came from ([`PeerId`]); flows are told apart by `(peer, sid)`.
//! - A **datapath** end ([`DatapathTransport`]) sends to its agent and polls for answers
//!   without blocking, so a congestion controller can drain it on every ACK.
//!
//! Extension point: implement the two traits for another transport (e.g. netlink).

use std::collections::VecDeque;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(test)]
mod tests;

/// Largest datagram either side sends or accepts (libccp `BIGGEST_MSG_SIZE`).
pub const MAX_DATAGRAM: usize = 32_678;

/// Who sent a message to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerId {
    /// A datapath socket bound at this path.
    Path(PathBuf),
    /// The n-th in-process channel of a [`ChannelHub`].
    Channel(u64),
}

/// The agent's end: many datapaths.
pub trait AgentTransport: Send {
    /// Waits up to `timeout` (forever if `None`) for one datagram; `Ok(None)` on timeout.
    fn recv(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<Option<(usize, PeerId)>>;
    /// Sends one datagram to `peer`.
    fn send(&mut self, peer: &PeerId, msg: &[u8]) -> io::Result<()>;
}

/// A datapath's end: one agent.
pub trait DatapathTransport: Send {
    /// Sends one datagram to the agent (never blocks; a full buffer is an error the caller
    /// may ignore for reports).
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// Takes one datagram if one is waiting.
    fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
}

/// The agent's Unix datagram socket.
#[derive(Debug)]
pub struct UnixAgentSocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl UnixAgentSocket {
    /// Binds at `path` (a stale socket file there is removed first; its directory is
    /// created).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let sock = UnixDatagram::bind(&path)?;
        Ok(Self { sock, path })
    }

    /// The bound path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixAgentSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl AgentTransport for UnixAgentSocket {
    fn recv(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<Option<(usize, PeerId)>> {
        // a zero timeout means "block" to the OS: use the smallest real one instead
        self.sock
            .set_read_timeout(timeout.map(|t| t.max(Duration::from_micros(1))))?;
        match self.sock.recv_from(buf) {
            Ok((n, addr)) => match addr.as_pathname() {
                Some(p) => Ok(Some((n, PeerId::Path(p.to_path_buf())))),
                // an unbound sender cannot be answered: skip it
                None => Ok(None),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, peer: &PeerId, msg: &[u8]) -> io::Result<()> {
        match peer {
            PeerId::Path(p) => self.sock.send_to(msg, p).map(|_| ()),
            PeerId::Channel(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Unix agent socket cannot reach an in-process channel",
            )),
        }
    }
}

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(0);

/// A datapath's Unix datagram socket, bound next to the agent's path.
#[derive(Debug)]
pub struct UnixDatapathSocket {
    sock: UnixDatagram,
    path: PathBuf,
    agent: PathBuf,
}

impl UnixDatapathSocket {
    /// Binds `<agent>.dp.<pid>.<n>` (non-blocking) for talking to the agent at `agent`.
    /// The agent need not be running yet: sends fail (and reports are dropped) until it is.
    pub fn connect(agent: impl AsRef<Path>) -> io::Result<Self> {
        let agent = agent.as_ref().to_path_buf();
        let n = NEXT_SOCKET.fetch_add(1, Ordering::Relaxed);
        let mut name = agent.as_os_str().to_owned();
        name.push(format!(".dp.{}.{n}", std::process::id()));
        let path = PathBuf::from(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let sock = UnixDatagram::bind(&path)?;
        sock.set_nonblocking(true)?;
        Ok(Self { sock, path, agent })
    }

    /// This socket's own path (the agent's [`PeerId::Path`] for it).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixDatapathSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl DatapathTransport for UnixDatapathSocket {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.sock.send_to(msg, &self.agent).map(|_| ())
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.sock.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

type Inbox = Arc<Mutex<VecDeque<Vec<u8>>>>;
type PeerList = Arc<Mutex<Vec<(u64, std::sync::Weak<Mutex<VecDeque<Vec<u8>>>>)>>>;

/// In-process transport: an agent end ([`ChannelHub`]) and any number of datapath ends
/// ([`ChannelDatapath`], from [`ChannelHub::connect`]). Datagram semantics as the Unix
/// socket (one message per item); a dropped end makes the other side's sends fail.
#[derive(Debug)]
pub struct ChannelHub {
    rx: mpsc::Receiver<(u64, Vec<u8>)>,
    tx: mpsc::Sender<(u64, Vec<u8>)>,
    peers: PeerList,
    next: u64,
}

/// A datapath's end of a [`ChannelHub`].
#[derive(Debug)]
pub struct ChannelDatapath {
    id: u64,
    to_agent: mpsc::Sender<(u64, Vec<u8>)>,
    inbox: Inbox,
}

impl Default for ChannelHub {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelHub {
    /// A hub with no datapaths yet.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            rx,
            tx,
            peers: Arc::default(),
            next: 0,
        }
    }

    /// A new datapath end.
    pub fn connect(&mut self) -> ChannelDatapath {
        let id = self.next;
        self.next += 1;
        let inbox: Inbox = Arc::default();
        if let Ok(mut p) = self.peers.lock() {
            p.push((id, Arc::downgrade(&inbox)));
        }
        ChannelDatapath {
            id,
            to_agent: self.tx.clone(),
            inbox,
        }
    }

    /// A handle that creates datapath ends after the hub moved to the agent's thread.
    pub fn connector(&self) -> ChannelConnector {
        ChannelConnector {
            tx: self.tx.clone(),
            peers: Arc::clone(&self.peers),
        }
    }
}

/// Creates datapath ends of a [`ChannelHub`] from any thread.
#[derive(Debug, Clone)]
pub struct ChannelConnector {
    tx: mpsc::Sender<(u64, Vec<u8>)>,
    peers: PeerList,
}

impl ChannelConnector {
    /// A new datapath end.
    pub fn connect(&self) -> ChannelDatapath {
        let inbox: Inbox = Arc::default();
        let id = match self.peers.lock() {
            Ok(mut p) => {
                // ids above 2^32 keep clear of ChannelHub::connect's counter
                let id = (1u64 << 32) + p.len() as u64;
                p.push((id, Arc::downgrade(&inbox)));
                id
            }
            Err(_) => u64::MAX,
        };
        ChannelDatapath {
            id,
            to_agent: self.tx.clone(),
            inbox,
        }
    }
}

fn disconnected() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the other end of the channel is gone",
    )
}

impl AgentTransport for ChannelHub {
    fn recv(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<Option<(usize, PeerId)>> {
        let item = match timeout {
            None => self.rx.recv().ok(),
            Some(t) => match self.rx.recv_timeout(t) {
                Ok(v) => Some(v),
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(None),
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        // the hub holds a sender itself, so the channel never disconnects
        let Some((id, msg)) = item else {
            return Ok(None);
        };
        if msg.len() > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "datagram larger than buffer",
            ));
        }
        buf[..msg.len()].copy_from_slice(&msg);
        Ok(Some((msg.len(), PeerId::Channel(id))))
    }

    fn send(&mut self, peer: &PeerId, msg: &[u8]) -> io::Result<()> {
        let PeerId::Channel(id) = peer else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a channel peer",
            ));
        };
        let inbox = self
            .peers
            .lock()
            .map_err(|_| disconnected())?
            .iter()
            .find(|(i, _)| i == id)
            .and_then(|(_, w)| w.upgrade())
            .ok_or_else(disconnected)?;
        inbox
            .lock()
            .map_err(|_| disconnected())?
            .push_back(msg.to_vec());
        Ok(())
    }
}

impl DatapathTransport for ChannelDatapath {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.to_agent
            .send((self.id, msg.to_vec()))
            .map_err(|_| disconnected())
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(msg) = self.inbox.lock().map_err(|_| disconnected())?.pop_front() else {
            return Ok(None);
        };
        if msg.len() > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "datagram larger than buffer",
            ));
        }
        buf[..msg.len()].copy_from_slice(&msg);
        Ok(Some(msg.len()))
    }
}
