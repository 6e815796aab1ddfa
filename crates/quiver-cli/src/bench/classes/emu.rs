//! `quiver bench classes --emulated`: the same experiment over real sockets, through
//! `quiver_netem::emu` (network namespaces joined by an emulated link).
//!
//! Every scheme gets a fresh two-node topology (`client` ── link ── `server`, the
//! profile's parameters in both directions), so that queues start empty; it is torn down
//! when the scheme is done, also on errors and panics (the [`Topology`] destructor).
//!
//! ```text
//!  main thread: topology, signals      ┌ server thread (server netns) ┐
//!                                      │ QUIC echo / kernel TLS echo  │
//!  client thread (client netns) ─ link ┤  current-thread tokio        │
//!  workload, results                   └──────────────────────────────┘
//! ```
//!
//! The server and the client each run a current-thread tokio runtime on a thread that
//! entered its node's namespace ([`Topology::spawn_in`]). The main thread waits for the
//! client and watches SIGINT, SIGTERM and SIGHUP: on a signal the client stops early,
//! everything is torn down and the command exits with 130.
//!
//! Unlike the simulator, the emulated link's loss is drawn by the kernel
//! (`SKF_AD_RANDOM`), so runs are not repeatable even for one seed.

use anyhow::{anyhow, Context};
use quiver_netem::emu::{
    check_environment, Endpoint, LinkParams, LinkSpec, Profile, Topology, TopologySpec,
};
use quiver_tcp_baseline::kernel::{EchoServer, TcpClient};
use quiver_tcp_baseline::tls::TlsPair;
use std::net::{IpAddr, SocketAddr};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{oneshot, watch};

use super::arrival::Job;
use super::mix::ClassSpec;
use super::{emu_quic, Cc, RequestResult, Scheme};

/// Node running the workload.
const CLIENT: &str = "client";
/// Node running the echo server.
const SERVER: &str = "server";
/// Name on the TLS/TCP server's certificate.
const TLS_NAME: &str = "echo.test";
/// How long the server may take to bind before the run is abandoned.
const SERVER_START: Duration = Duration::from_secs(30);

/// The link parameters of an emulation profile, or a message naming the known ones.
pub(super) fn link_params(profile: &str) -> Result<LinkParams, String> {
    Profile::parse(profile)
        .map(Profile::params)
        .map_err(|e| format!("{e} (with --emulated)"))
}

/// Whether this process can build topologies; the reason when it cannot.
pub(super) fn check() -> Result<(), String> {
    check_environment().map_err(|e| e.to_string())
}

/// The signals that end a run early.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    /// Must be called inside a tokio runtime.
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("catch SIGINT")?,
            term: signal(SignalKind::terminate()).context("catch SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("catch SIGHUP")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// Resolves once the run is cancelled (or whoever could cancel it is gone).
pub(super) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    let _ = cancel.wait_for(|&c| c).await;
}

/// A current-thread tokio runtime for one side.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start tokio runtime")
}

/// Runs schemes one after the other, each on its own fresh topology.
pub(super) struct Emulator {
    rt: tokio::runtime::Runtime,
    signals: Signals,
    params: LinkParams,
    seed: u64,
    cc: Cc,
}

/// What the server side needs; moved into the server thread.
struct ServerSide {
    scheme: Scheme,
    mix: Vec<ClassSpec>,
    ip: IpAddr,
    seed: u64,
    cc: Cc,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl ServerSide {
    /// Binds, reports the address (or the error) on `ready`, serves until `stop` fires
    /// or its sender is dropped.
    fn run(
        self,
        ready: mpsc::Sender<anyhow::Result<SocketAddr>>,
        stop: oneshot::Receiver<()>,
    ) -> anyhow::Result<()> {
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(e));
                return Ok(());
            }
        };
        rt.block_on(async move {
            let bind = SocketAddr::new(self.ip, 0);
            match self.scheme {
                Scheme::Quic(kind) => {
                    let ep = match emu_quic::server_endpoint(kind, self.cc, bind, self.seed) {
                        Ok(ep) => ep,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(ep.local_addr().context("server address"));
                    tokio::select! {
                        () = emu_quic::serve(ep.clone(), self.mix.into()) => {}
                        _ = stop => {}
                    }
                    ep.close(0u32.into(), b"done");
                }
                Scheme::Tcp(_) => {
                    let Some(tls) = self.tls else {
                        let _ = ready.send(Err(anyhow!("no TLS configuration")));
                        return;
                    };
                    let server = match EchoServer::bind_with_congestion_control(
                        bind,
                        (*tls).clone(),
                        Some(self.cc.kernel_name()),
                    )
                    .await
                    {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready.send(Err(anyhow!(e).context("TLS echo server")));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(server.local_addr()));
                    let _ = stop.await;
                    server.shutdown();
                }
            }
        });
        Ok(())
    }
}

/// What the client side needs; moved into the client thread.
struct ClientSide {
    scheme: Scheme,
    mix: Vec<ClassSpec>,
    jobs: Vec<Job>,
    seed: u64,
    cc: Cc,
    drain: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl ClientSide {
    fn run(
        self,
        server: SocketAddr,
        cancel: watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<RequestResult>> {
        let rt = runtime()?;
        rt.block_on(async move {
            match self.scheme {
                Scheme::Quic(kind) => {
                    emu_quic::client(
                        (kind, self.cc),
                        &self.mix,
                        &self.jobs,
                        server,
                        self.seed,
                        self.drain,
                        cancel,
                    )
                    .await
                }
                Scheme::Tcp(mode) => {
                    let tls = self.tls.context("no TLS configuration")?;
                    tcp_client((mode, self.cc), &self.jobs, server, tls, self.drain, cancel).await
                }
            }
        })
    }
}

/// The TLS/TCP baseline on the kernel's TCP, from the client's namespace.
async fn tcp_client(
    (mode, cc): (quiver_tcp_baseline::Mode, Cc),
    jobs: &[Job],
    server: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    drain: Duration,
    mut cancel: watch::Receiver<bool>,
) -> anyhow::Result<Vec<RequestResult>> {
    // Like for like with the QUIC schemes: new namespaces inherit the host's default
    // congestion control (bbr on some hosts), so pin it on every socket.
    let client = TcpClient::new(server, TLS_NAME, tls)
        .context("TLS/TCP client")?
        .with_congestion_control(cc.kernel_name());
    let requests: Vec<quiver_tcp_baseline::Request> = jobs
        .iter()
        .map(|j| quiver_tcp_baseline::Request::new(j.id, j.size, j.at))
        .collect();
    let budget = jobs.last().map_or(Duration::ZERO, |j| j.at) + drain;
    // Arrivals count from here; the client's own clock starts a few microseconds later.
    let start = std::time::Instant::now();
    tokio::select! {
        outcomes = client.run(&requests, mode, budget) => {
            let outcomes = outcomes.context("TLS/TCP workload")?;
            Ok(super::tcp::results(jobs, outcomes, start))
        }
        () = cancelled(&mut cancel) => {
            Ok(jobs.iter().map(|j| RequestResult::new(*j)).collect())
        }
    }
}

impl Emulator {
    /// An emulator with `params` in both directions of every scheme's link; catches
    /// SIGINT, SIGTERM and SIGHUP from now on (so that none of them can leave
    /// namespaces behind).
    pub(super) fn new(params: LinkParams, seed: u64, cc: Cc) -> anyhow::Result<Self> {
        let rt = runtime()?;
        let signals = rt.block_on(async { Signals::new() })?;
        Ok(Self {
            rt,
            signals,
            params,
            seed,
            cc,
        })
    }

    /// Runs `jobs` under `scheme` on a fresh topology; `None` if a signal interrupted it.
    pub(super) fn run(
        &mut self,
        scheme: Scheme,
        mix: &[ClassSpec],
        jobs: &[Job],
        drain: Duration,
    ) -> anyhow::Result<Option<Vec<RequestResult>>> {
        let mut spec = TopologySpec::new();
        spec.seed = self.seed;
        spec.add_node(CLIENT)?;
        spec.add_node(SERVER)?;
        spec.add_link(LinkSpec::new(
            Endpoint::Node(CLIENT.into()),
            Endpoint::Node(SERVER.into()),
            self.params,
        ))?;
        let topo = Topology::up(&spec).context("bringing up the emulated link")?;
        let ip = topo
            .addr(SERVER)
            .context("the server node has no address")?;
        let tls = match scheme {
            Scheme::Tcp(_) => Some(TlsPair::self_signed(&[TLS_NAME]).context("TLS certificate")?),
            Scheme::Quic(_) => None,
        };
        let server_side = ServerSide {
            scheme,
            mix: mix.to_vec(),
            ip: IpAddr::V4(ip),
            seed: self.seed,
            cc: self.cc,
            tls: tls.as_ref().map(|t| t.server.clone()),
        };
        let client_side = ClientSide {
            scheme,
            mix: mix.to_vec(),
            jobs: jobs.to_vec(),
            seed: self.seed,
            cc: self.cc,
            drain,
            tls: tls.as_ref().map(|t| t.client.clone()),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let server = topo.spawn_in(SERVER, move || server_side.run(ready_tx, stop_rx))?;
        let outcome = self.drive(&topo, &ready_rx, client_side);
        // Stop the server whatever happened, then join it before the topology goes.
        drop(stop_tx);
        let served = server.join();
        let results = outcome?;
        match served {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.context("echo server")),
            Err(_) => return Err(anyhow!("the echo server thread panicked")),
        }
        if let Err(e) = topo.shutdown() {
            tracing::warn!("tearing down the emulated link: {e}");
        }
        Ok(results)
    }

    /// Waits for the server, runs the client, and watches for signals.
    fn drive(
        &mut self,
        topo: &Topology,
        ready: &mpsc::Receiver<anyhow::Result<SocketAddr>>,
        client_side: ClientSide,
    ) -> anyhow::Result<Option<Vec<RequestResult>>> {
        let server = match ready.recv_timeout(SERVER_START) {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => return Err(e.context("starting the echo server")),
            Err(_) => return Err(anyhow!("the echo server did not start")),
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let client = topo.spawn_in(CLIENT, move || {
            // Dropped when the client returns or unwinds: wakes the main thread.
            let _done = done_tx;
            client_side.run(server, cancel_rx)
        })?;
        let Self { rt, signals, .. } = self;
        let interrupted = rt.block_on(async {
            tokio::select! {
                _ = done_rx => false,
                () = signals.next() => true,
            }
        });
        if interrupted {
            let _ = cancel_tx.send(true);
        }
        let results = client
            .join()
            .map_err(|_| anyhow!("the client thread panicked"))??;
        Ok((!interrupted).then_some(results))
    }
}
