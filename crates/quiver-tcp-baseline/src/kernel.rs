//! The baselines on the operating system's TCP: a tokio echo server and client over
//! `tokio-rustls`.
//!
//! Addresses are whatever the caller passes: loopback in tests, a network-namespace
//! address behind `quiver netem` in experiments. `TCP_NODELAY` is set on every socket
//! (the simulated stack disables Nagle too), everything else is the kernel's default
//! (on Linux: SACK, timestamps, window scaling, autotuned buffers, and the namespace's
//! default congestion control — often CUBIC, but BBR on some hosts). For like-for-like
//! experiments pin the congestion control per socket with
//! [`EchoServer::bind_with_congestion_control`] and
//! [`TcpClient::with_congestion_control`] (Linux `TCP_CONGESTION`; accepted connections
//! inherit the listener's).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{
    encode_request, start_order, validate, BaselineError, Checked, EchoChecker, EchoFramer,
    Failure, Mode, Outcome, Request,
};

/// A TLS echo server on a real TCP socket; see the [crate documentation](crate) for the
/// framing. Each connection is served by its own task; dropping the server (or calling
/// [`shutdown`](Self::shutdown)) stops accepting and aborts open connections.
#[derive(Debug)]
pub struct EchoServer {
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl EchoServer {
    /// Binds `addr` (port 0 for any) and starts serving. Must be called inside a tokio
    /// runtime.
    pub async fn bind(
        addr: SocketAddr,
        config: rustls::ServerConfig,
    ) -> Result<Self, BaselineError> {
        Self::bind_with_congestion_control(addr, config, None).await
    }

    /// Like [`bind`](Self::bind), with the listening socket's TCP congestion control set
    /// to `congestion_control` (a Linux name such as `cubic`, `reno` or `bbr`; `None`
    /// keeps the default). Accepted connections inherit it.
    pub async fn bind_with_congestion_control(
        addr: SocketAddr,
        config: rustls::ServerConfig,
        congestion_control: Option<&str>,
    ) -> Result<Self, BaselineError> {
        let socket = new_socket(addr, congestion_control)?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener: TcpListener = socket.listen(1024)?;
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let task = tokio::spawn(accept_loop(listener, acceptor));
        Ok(Self { local, task })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops the server.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            if let Err(e) = serve(tcp, acceptor).await {
                tracing::debug!(%peer, "echo connection ended: {e}");
            }
        });
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
}

async fn serve(tcp: TcpStream, acceptor: TlsAcceptor) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut tls = acceptor.accept(tcp).await?;
    let mut framer = EchoFramer::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut echo = Vec::with_capacity(buf.len());
    loop {
        let n = tls.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        echo.clear();
        framer.feed(buf.get(..n).unwrap_or_default(), &mut echo);
        if !echo.is_empty() {
            tls.write_all(&echo).await?;
            tls.flush().await?;
        }
    }
    tls.shutdown().await
}

/// A client running a workload against an [`EchoServer`] (or any server speaking the
/// same framing).
#[derive(Clone)]
pub struct TcpClient {
    server: SocketAddr,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    congestion_control: Option<String>,
}

impl std::fmt::Debug for TcpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpClient")
            .field("server", &self.server)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TcpClient {
    /// A client for `server`, verifying its certificate for `server_name`.
    pub fn new(
        server: SocketAddr,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, BaselineError> {
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| BaselineError::ServerName(server_name.to_owned()))?;
        Ok(Self {
            server,
            server_name,
            connector: TlsConnector::from(config),
            congestion_control: None,
        })
    }

    /// This client with its sockets' TCP congestion control set to `name` (a Linux name
    /// such as `cubic`, `reno` or `bbr`); connecting fails if the kernel refuses it.
    pub fn with_congestion_control(mut self, name: &str) -> Self {
        self.congestion_control = Some(name.to_owned());
        self
    }

    /// Runs `requests` in `mode`, giving up on whatever has not completed `timeout` after
    /// the start. Outcomes come back in the order of `requests`. Must be called inside a
    /// tokio runtime (the timers use tokio's clock).
    pub async fn run(
        &self,
        requests: &[Request],
        mode: Mode,
        timeout: Duration,
    ) -> Result<Vec<Outcome>, BaselineError> {
        validate(requests)?;
        let base = tokio::time::Instant::now();
        let deadline = base + timeout;
        let mut outcomes: Vec<Outcome> = requests
            .iter()
            .map(|r| Outcome {
                id: r.id,
                started: (base + r.start_offset).into_std(),
                completed: None,
                failure: Some(Failure::TimedOut),
            })
            .collect();
        match mode {
            Mode::NConn => {
                let mut tasks = tokio::task::JoinSet::new();
                for (i, req) in requests.iter().copied().enumerate() {
                    let this = self.clone();
                    tasks.spawn(async move {
                        tokio::time::sleep_until(base + req.start_offset).await;
                        let started = Instant::now();
                        let result = tokio::time::timeout_at(deadline, this.one_request(req)).await;
                        let (completed, failure) = match result {
                            Ok(Ok(t)) => (Some(t), None),
                            Ok(Err(f)) => (None, Some(f)),
                            Err(_) => (None, Some(Failure::TimedOut)),
                        };
                        (i, started, completed, failure)
                    });
                }
                while let Some(joined) = tasks.join_next().await {
                    let Ok((i, started, completed, failure)) = joined else {
                        continue;
                    };
                    if let Some(o) = outcomes.get_mut(i) {
                        o.started = started;
                        o.completed = completed;
                        o.failure = failure;
                    }
                }
            }
            Mode::OneConn => {
                let run = self.one_conn(requests, base, &mut outcomes);
                // On timeout the outcomes already hold what completed.
                let _ = tokio::time::timeout_at(deadline, run).await;
            }
        }
        Ok(outcomes)
    }

    async fn connect(&self) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
        let socket =
            new_socket(self.server, self.congestion_control.as_deref()).map_err(io_failure)?;
        let tcp = socket.connect(self.server).await.map_err(io_failure)?;
        tcp.set_nodelay(true).map_err(io_failure)?;
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(tls_failure)
    }

    async fn one_request(&self, req: Request) -> Result<Instant, Failure> {
        let mut tls = self.connect().await?;
        let frame = encode_request(&req).map_err(|e| Failure::Io(e.to_string()))?;
        let (mut rd, mut wr) = tokio::io::split(&mut tls);
        let mut checker = EchoChecker::default();
        checker.expect(0, &req);
        let write = async {
            wr.write_all(&frame).await.map_err(io_failure)?;
            wr.flush().await.map_err(io_failure)
        };
        let read = read_echoes(&mut rd, &mut checker, 1, |_, _| {});
        let (w, r) = tokio::join!(write, read);
        w?;
        let completed = r?;
        let _ = tls.shutdown().await;
        Ok(completed)
    }

    async fn one_conn(
        &self,
        requests: &[Request],
        base: tokio::time::Instant,
        outcomes: &mut [Outcome],
    ) {
        let tls = match self.connect().await {
            Ok(tls) => tls,
            Err(f) => {
                for o in outcomes.iter_mut() {
                    o.failure = Some(f.clone());
                }
                return;
            }
        };
        let order = start_order(requests);
        let (mut rd, mut wr) = tokio::io::split(tls);
        // The server answers in the order requests were written: expect them all now.
        let mut checker = EchoChecker::default();
        for &i in &order {
            if let Some(r) = requests.get(i) {
                checker.expect(i, r);
            }
        }
        let mut started = vec![None; requests.len()];
        let writer = async {
            for &i in &order {
                let Some(req) = requests.get(i) else { continue };
                tokio::time::sleep_until(base + req.start_offset).await;
                if let Some(s) = started.get_mut(i) {
                    *s = Some(Instant::now());
                }
                let frame = encode_request(req).map_err(|e| Failure::Io(e.to_string()))?;
                wr.write_all(&frame).await.map_err(io_failure)?;
                wr.flush().await.map_err(io_failure)?;
            }
            Ok::<_, Failure>(())
        };
        // Completions go straight into `outcomes`, so they survive a timeout.
        let reader = read_echoes(&mut rd, &mut checker, order.len(), |i, t| {
            if let Some(o) = outcomes.get_mut(i) {
                o.completed = Some(t);
                o.failure = None;
            }
        });
        let (w, r) = tokio::join!(writer, reader);
        for (i, o) in outcomes.iter_mut().enumerate() {
            if let Some(Some(s)) = started.get(i) {
                o.started = *s;
            }
        }
        let failure = r.err().or(w.err());
        if let Some(f) = failure {
            for o in outcomes.iter_mut().filter(|o| o.completed.is_none()) {
                o.failure = Some(f.clone());
            }
        }
    }
}

/// Reads until `count` requests queued in `checker` have completed; returns the time the
/// last one did.
async fn read_echoes<R: AsyncRead + Unpin>(
    rd: &mut R,
    checker: &mut EchoChecker,
    count: usize,
    mut on_done: impl FnMut(usize, Instant),
) -> Result<Instant, Failure> {
    let mut done = 0;
    let mut last = Instant::now();
    for ev in checker.take_empty() {
        if let Checked::Done(i) = ev {
            on_done(i, last);
            done += 1;
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    while done < count {
        let n = rd.read(&mut buf).await.map_err(io_failure)?;
        if n == 0 {
            let (_, received, expected) = checker.pending().next().unwrap_or((0, 0, 0));
            return Err(Failure::Truncated { received, expected });
        }
        last = Instant::now();
        for ev in checker.feed(buf.get(..n).unwrap_or_default()) {
            match ev {
                Checked::Done(i) => {
                    on_done(i, last);
                    done += 1;
                }
                Checked::Mismatch(_, offset) => return Err(Failure::Mismatch { offset }),
            }
        }
    }
    Ok(last)
}

/// A TCP socket for `addr`'s family, with its congestion control set if asked.
fn new_socket(addr: SocketAddr, congestion_control: Option<&str>) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(name) = congestion_control {
        set_congestion_control(&socket, name)?;
    }
    Ok(socket)
}

/// Sets `TCP_CONGESTION` and checks that the kernel took it.
#[cfg(target_os = "linux")]
fn set_congestion_control(socket: &TcpSocket, name: &str) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(socket);
    sock.set_tcp_congestion(name.as_bytes()).map_err(|e| {
        std::io::Error::new(e.kind(), format!("TCP congestion control {name:?}: {e}"))
    })?;
    let now = sock.tcp_congestion()?;
    let now = String::from_utf8_lossy(&now);
    let now = now.trim_end_matches('\0');
    if now != name {
        return Err(std::io::Error::other(format!(
            "TCP congestion control is {now:?} after setting {name:?}"
        )));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_congestion_control(_socket: &TcpSocket, name: &str) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!("setting TCP congestion control {name:?} needs Linux"),
    ))
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::Io(e.to_string())
}

fn tls_failure(e: std::io::Error) -> Failure {
    Failure::Tls(e.to_string())
}
