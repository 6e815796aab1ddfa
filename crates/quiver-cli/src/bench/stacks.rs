//! The two QUIC stacks under test, configured as alike as their knobs allow, and the bulk
//! download protocol both speak.
//!
//! Protocol, one request per bidirectional stream: the client sends the number of bytes
//! it wants as a big-endian `u64` and FIN; the server answers with that many bytes and
//! FIN. Bytes are counted, not checked: content integrity is the interop tests' job.
//!
//! Comparable configuration (see [`Tuning`]):
//! - TLS 1.3 with only `TLS13_AES_128_GCM_SHA256` on both sides (Initial packets use it
//!   anyway, RFC 9001 §5.2), ECDSA P-256 self-signed certificate, no key logging;
//! - every handshake a full one: servers issue no session tickets and clients keep no
//!   session cache (quiver has no resumption yet; rustls would otherwise let quinn's
//!   clients resume);
//! - equal stream, connection and send windows (Quiver's receive-window auto-tuning
//!   off: quinn has none), and equal idle timeouts;
//! - a fixed UDP payload size on both sides: both stacks' path MTU discovery is switched
//!   off and both start (and stay) at the same `initial_mtu`; or, with [`Tuning::pmtud`],
//!   both start at their default initial MTU (1200 bytes each) and run path MTU discovery
//!   (DPLPMTUD, RFC 8899) with the same upper bound and otherwise default settings;
//! - NewReno congestion control on both (quiver's only controller; quinn defaults to
//!   CUBIC);
//! - GSO/GRO as each stack's UDP layer (quinn-udp for both) detects it.

use super::procfs::{CpuMark, CpuUse};
use anyhow::{bail, Context};
use clap::ValueEnum;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// ALPN of the benchmark protocol.
pub const ALPN: &[u8] = b"quiver-bench";
/// Name in the server certificate.
pub const SERVER_NAME: &str = "localhost";
/// Size of the buffer the servers write from.
const WRITE_CHUNK: usize = 64 * 1024;
/// Largest chunk the clients ask for per read.
const READ_CHUNK: usize = 1 << 20;

/// A QUIC implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// This project.
    Quiver,
    /// quinn 0.11, the reference point.
    Quinn,
}

impl Stack {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Quiver => "quiver",
            Stack::Quinn => "quinn",
        }
    }
}

/// Idle timeout both stacks default to (30 s each).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Transport settings applied identically to both stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuning {
    /// Stream and connection receive windows, and the send window, in bytes.
    pub window: u64,
    /// UDP payload size of every packet after the handshake's first flight; with
    /// [`pmtud`](Self::pmtud), the upper bound of path MTU discovery instead.
    pub mtu: u16,
    /// Start at the default initial MTU (1200) and discover the path MTU up to
    /// [`mtu`](Self::mtu), rather than sending `mtu`-byte packets from the start.
    pub pmtud: bool,
    /// Idle timeout advertised (whole seconds are passed to server child processes).
    pub idle_timeout: Duration,
    /// Shards of each quiver endpoint (`quiver::Endpoint::server_sharded` /
    /// `client_sharded`): how many cores its protocol work may use. quinn needs no
    /// equivalent: it drives each connection from its own task.
    pub shards: usize,
    /// Shards of each quiver client endpoint: one local port each, so a sharded server
    /// (whose kernel picks the shard by hashing the client's address and port) sees
    /// several clients, as it would in deployment.
    pub client_shards: usize,
}

/// The one cipher-suite provider both stacks get: ring, AES-128-GCM only.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

/// Server TLS: TLS 1.3 only (RFC 9001 §4.2), no 0-RTT, no key log.
pub fn server_tls(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<rustls::ServerConfig> {
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    c.alpn_protocols = vec![ALPN.to_vec()];
    c.max_early_data_size = 0;
    c.send_tls13_tickets = 0;
    c.key_log = Arc::new(rustls::NoKeyLog);
    Ok(c)
}

/// Client TLS trusting exactly the server's self-signed certificate, no key log.
pub fn client_tls(cert: &CertificateDer<'static>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).context("server certificate")?;
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![ALPN.to_vec()];
    c.resumption = rustls::client::Resumption::disabled();
    c.key_log = Arc::new(rustls::NoKeyLog);
    Ok(c)
}

fn quiver_transport(t: Tuning) -> Arc<quiver::TransportConfig> {
    let defaults = quiver::TransportConfig::default();
    let (initial_mtu, mtu_discovery) = if t.pmtud {
        let discovery = quiver::config::MtuDiscoveryConfig {
            upper_bound: t.mtu,
            ..Default::default()
        };
        (defaults.initial_mtu, Some(discovery))
    } else {
        (t.mtu, None)
    };
    Arc::new(quiver::TransportConfig {
        stream_receive_window: t.window,
        receive_window: t.window,
        // Fixed windows like quinn's (which does not auto-tune): like for like.
        max_stream_receive_window: t.window,
        max_receive_window: t.window,
        send_window: t.window,
        initial_mtu,
        mtu_discovery,
        max_idle_timeout: Some(t.idle_timeout),
        ..defaults
    })
}

fn quinn_transport(t: Tuning) -> anyhow::Result<Arc<quinn::TransportConfig>> {
    let window = quinn::VarInt::from_u64(t.window).context("window too large")?;
    let idle = quinn::IdleTimeout::try_from(t.idle_timeout).context("idle timeout too large")?;
    let mut c = quinn::TransportConfig::default();
    c.max_idle_timeout(Some(idle))
        .stream_receive_window(window)
        .receive_window(window)
        .send_window(t.window)
        .congestion_controller_factory(Arc::new(quinn::congestion::NewRenoConfig::default()));
    if t.pmtud {
        // quinn's default initial MTU (1200) stays.
        let mut discovery = quinn::MtuDiscoveryConfig::default();
        discovery.upper_bound(t.mtu);
        c.mtu_discovery_config(Some(discovery));
    } else {
        c.initial_mtu(t.mtu).mtu_discovery_config(None);
    }
    Ok(Arc::new(c))
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

// ---------------------------------------------------------------------------------------
// Servers

/// A running server endpoint of either stack.
pub enum Server {
    /// A quiver endpoint.
    Quiver(quiver::Endpoint),
    /// A quinn endpoint.
    Quinn(quinn::Endpoint),
}

impl Server {
    /// Bind a server of `stack` on 127.0.0.1 (any port). Must run inside a tokio runtime.
    pub fn bind(
        stack: Stack,
        tuning: Tuning,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> anyhow::Result<Self> {
        let tls = server_tls(certs, key)?;
        Ok(match stack {
            Stack::Quiver => {
                let mut config = quiver::ServerConfig::new(Arc::new(tls));
                config.transport = quiver_transport(tuning);
                Server::Quiver(
                    quiver::Endpoint::server_sharded(config, loopback(), tuning.shards)
                        .context("quiver server")?,
                )
            }
            Stack::Quinn => {
                let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
                    .context("quinn server crypto")?;
                let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
                config.transport_config(quinn_transport(tuning)?);
                Server::Quinn(quinn::Endpoint::server(config, loopback()).context("quinn server")?)
            }
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(match self {
            Server::Quiver(ep) => ep.local_addr()?,
            Server::Quinn(ep) => ep.local_addr()?,
        })
    }

    /// Serve the download protocol forever.
    pub async fn serve(self) {
        let data: Arc<[u8]> = (0..WRITE_CHUNK)
            .map(|i| (i.wrapping_mul(31) >> 3) as u8)
            .collect();
        match self {
            Server::Quiver(ep) => {
                while let Some(conn) = ep.accept().await {
                    let data = data.clone();
                    tokio::spawn(async move {
                        while let Ok((send, recv)) = conn.accept_bi().await {
                            tokio::spawn(quiver_respond(send, recv, data.clone()));
                        }
                    });
                }
            }
            Server::Quinn(ep) => {
                while let Some(incoming) = ep.accept().await {
                    let data = data.clone();
                    tokio::spawn(async move {
                        let Ok(conn) = incoming.await else { return };
                        while let Ok((send, recv)) = conn.accept_bi().await {
                            tokio::spawn(quinn_respond(send, recv, data.clone()));
                        }
                    });
                }
            }
        }
    }
}

fn parse_request(req: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(req.try_into().ok()?))
}

async fn quiver_respond(
    mut send: quiver::SendStream,
    mut recv: quiver::RecvStream,
    data: Arc<[u8]>,
) {
    let Some(mut left) = recv
        .read_to_end(8)
        .await
        .ok()
        .as_deref()
        .and_then(parse_request)
    else {
        let _ = send.reset(1u32.into());
        return;
    };
    while left > 0 {
        let n = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
        if send.write_all(&data[..n]).await.is_err() {
            return;
        }
        left -= n as u64;
    }
    let _ = send.finish();
}

async fn quinn_respond(mut send: quinn::SendStream, mut recv: quinn::RecvStream, data: Arc<[u8]>) {
    let Some(mut left) = recv
        .read_to_end(8)
        .await
        .ok()
        .as_deref()
        .and_then(parse_request)
    else {
        let _ = send.reset(1u32.into());
        return;
    };
    while left > 0 {
        let n = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
        if send.write_all(&data[..n]).await.is_err() {
            return;
        }
        left -= n as u64;
    }
    let _ = send.finish();
}

// ---------------------------------------------------------------------------------------
// Clients

/// One timed download.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Bytes received over all streams.
    pub bytes: u64,
    /// From opening the streams to the last stream's FIN (handshake excluded).
    pub duration: Duration,
    /// Handshake time, reported for information.
    pub handshake: Duration,
    /// CPU time of this process (the client) over [`duration`](Self::duration), when
    /// `/proc` could be read.
    pub client_cpu: Option<CpuUse>,
    /// CPU time of the server process over [`duration`](Self::duration), when `/proc`
    /// could be read.
    pub server_cpu: Option<CpuUse>,
    /// Mean UDP payload of the datagrams the client received over the connection's life
    /// (handshake included): shows the MTU the server's packets actually had.
    pub mean_rx_datagram: Option<f64>,
}

/// A client endpoint of either stack with the client settings of [`Tuning`], trusting one
/// server certificate.
pub enum Client {
    /// A quiver endpoint.
    Quiver {
        /// The endpoint (one UDP socket).
        endpoint: quiver::Endpoint,
        /// Settings of every connection it opens.
        config: quiver::ClientConfig,
    },
    /// A quinn endpoint.
    Quinn {
        /// The endpoint (one UDP socket).
        endpoint: quinn::Endpoint,
        /// Settings of every connection it opens.
        config: quinn::ClientConfig,
    },
}

impl Client {
    /// Bind a `stack` client endpoint on 127.0.0.1 (any port). Must run inside a tokio
    /// runtime.
    pub fn bind(
        stack: Stack,
        tuning: Tuning,
        cert: &CertificateDer<'static>,
    ) -> anyhow::Result<Self> {
        let tls = client_tls(cert)?;
        Ok(match stack {
            Stack::Quiver => {
                let mut config = quiver::ClientConfig::new(Arc::new(tls));
                config.transport = quiver_transport(tuning);
                let endpoint = quiver::Endpoint::client_sharded(loopback(), tuning.client_shards)
                    .context("quiver client endpoint")?;
                Client::Quiver { endpoint, config }
            }
            Stack::Quinn => {
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
                    .context("quinn client crypto")?;
                let mut config = quinn::ClientConfig::new(Arc::new(crypto));
                config.transport_config(quinn_transport(tuning)?);
                let endpoint =
                    quinn::Endpoint::client(loopback()).context("quinn client endpoint")?;
                Client::Quinn { endpoint, config }
            }
        })
    }

    /// The stack of this endpoint.
    pub fn stack(&self) -> Stack {
        match self {
            Client::Quiver { .. } => Stack::Quiver,
            Client::Quinn { .. } => Stack::Quinn,
        }
    }

    /// Open a connection to `server` and wait for the handshake to complete.
    pub async fn connect(&self, server: SocketAddr) -> anyhow::Result<ClientConnection> {
        Ok(match self {
            Client::Quiver { endpoint, config } => ClientConnection::Quiver(
                endpoint
                    .connect_with(config.clone(), server, SERVER_NAME)?
                    .await
                    .context("quiver handshake")?,
            ),
            Client::Quinn { endpoint, config } => ClientConnection::Quinn(
                endpoint
                    .connect_with(config.clone(), server, SERVER_NAME)?
                    .await
                    .context("quinn handshake")?,
            ),
        })
    }

    /// Wait until every connection of the endpoint is closed and drained.
    pub async fn wait_idle(&self) {
        match self {
            Client::Quiver { endpoint, .. } => endpoint.wait_idle().await,
            Client::Quinn { endpoint, .. } => endpoint.wait_idle().await,
        }
    }
}

/// An established client connection of either stack (a cheap, clonable handle).
#[derive(Clone)]
pub enum ClientConnection {
    /// A quiver connection.
    Quiver(quiver::Connection),
    /// A quinn connection.
    Quinn(quinn::Connection),
}

impl ClientConnection {
    /// Ask for `size` bytes on a new bidirectional stream and count what arrives until
    /// the server's FIN.
    pub async fn fetch(&self, size: u64) -> anyhow::Result<u64> {
        let mut got = 0u64;
        match self {
            ClientConnection::Quiver(conn) => {
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_all(&size.to_be_bytes()).await?;
                send.finish()?;
                while let Some(chunk) = recv.read_chunk(READ_CHUNK).await? {
                    got += chunk.len() as u64;
                }
            }
            ClientConnection::Quinn(conn) => {
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_all(&size.to_be_bytes()).await?;
                send.finish()?;
                while let Some(chunk) = recv.read_chunk(READ_CHUNK, true).await? {
                    got += chunk.bytes.len() as u64;
                }
            }
        }
        Ok(got)
    }

    /// UDP datagrams received so far and the bytes of their payloads.
    pub fn rx_datagrams(&self) -> (u64, u64) {
        match self {
            ClientConnection::Quiver(conn) => {
                let s = conn.stats();
                (s.udp_rx, s.bytes_rx)
            }
            ClientConnection::Quinn(conn) => {
                let s = conn.stats();
                (s.udp_rx.datagrams, s.udp_rx.bytes)
            }
        }
    }

    /// Whether the connection is still open (not closed by either side or timed out).
    pub fn is_open(&self) -> bool {
        match self {
            ClientConnection::Quiver(conn) => conn.close_reason().is_none(),
            ClientConnection::Quinn(conn) => conn.close_reason().is_none(),
        }
    }

    /// Close the connection with application error code 0 (does not wait).
    pub fn close(&self) {
        match self {
            ClientConnection::Quiver(conn) => conn.close(0u32.into(), b"done"),
            ClientConnection::Quinn(conn) => conn.close(0u32.into(), b"done"),
        }
    }
}

/// Connect to `server` (a process with id `server_pid`) with a fresh `stack` client
/// endpoint, download `sizes[i]` bytes on stream `i` concurrently, close, and report the
/// timing and the CPU time both processes used meanwhile (from opening the streams to the
/// last FIN, like the duration).
pub async fn download(
    stack: Stack,
    tuning: Tuning,
    cert: &CertificateDer<'static>,
    server: SocketAddr,
    server_pid: u32,
    sizes: &[u64],
) -> anyhow::Result<Transfer> {
    let client = Client::bind(stack, tuning, cert)?;
    let t0 = Instant::now();
    let conn = client.connect(server).await?;
    let handshake = t0.elapsed();
    let client_mark = CpuMark::own();
    let server_mark = CpuMark::take(server_pid);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for &size in sizes {
        let conn = conn.clone();
        tasks.spawn(async move { conn.fetch(size).await });
    }
    let bytes = join_all(tasks)
        .await
        .with_context(|| format!("{} download", stack.name()))?;
    let duration = start.elapsed();
    let server_cpu = server_mark.until(&CpuMark::take(server_pid));
    let client_cpu = client_mark.until(&CpuMark::own());
    let (datagrams, datagram_bytes) = conn.rx_datagrams();
    conn.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), client.wait_idle()).await;
    Ok(Transfer {
        bytes,
        duration,
        handshake,
        client_cpu,
        server_cpu,
        mean_rx_datagram: (datagrams > 0).then(|| datagram_bytes as f64 / datagrams as f64),
    })
}

/// Wait for every stream task, summing the bytes; the first error aborts the rest.
async fn join_all(mut tasks: tokio::task::JoinSet<anyhow::Result<u64>>) -> anyhow::Result<u64> {
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => return Err(e),
            Err(e) => bail!("stream task failed: {e}"),
        }
    }
    Ok(total)
}
