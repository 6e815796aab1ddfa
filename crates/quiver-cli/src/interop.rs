//! `quiver interop` — client and server following the quic-interop-runner conventions.
//!
//! Both speak `hq-interop` (HTTP/0.9 over QUIC): the client opens one bidirectional
//! stream per file, sends `GET /path\r\n` and FIN; the server answers with the file's
//! bytes and FIN, or resets the stream with one of the [`hq`] error codes.
//!
//! Environment, as set by the runner:
//! - `TESTCASE`: the test being run. Supported: `handshake`, `transfer`, `multiplexing`,
//!   `chacha20` (the client offers only ChaCha20-Poly1305), `longrtt`, `keyupdate` (the
//!   client initiates a 1-RTT key update as soon as RFC 9001 §6.1 allows: right after
//!   the handshake is confirmed and its first 1-RTT packet acknowledged), `resumption`
//!   (the client downloads the first URL on one connection, then the others on a second
//!   connection that resumes the TLS session from a ticket of the first; it fails unless
//!   the second handshake resumed), `zerortt` (like `resumption`, but the second
//!   connection sends its requests in 0-RTT packets before the handshake completes; it
//!   fails unless the server accepted them). The server needs nothing special for either:
//!   it always issues tickets and accepts 0-RTT. `rebind-port` and `rebind-addr` are
//!   plain transfers for both sides (the network rebinds; the server validates the new
//!   address and follows it). `connectionmigration`: the client moves to a new local
//!   port (a new socket, [`Endpoint::rebind`]) as soon as the handshake is confirmed, and
//!   fails unless the server answered the PATH_CHALLENGE of the new path; it also moves to
//!   a server's preferred address when one is offered. The server offers the preferred
//!   address given with `--preferred-address` (it must reach the same socket: the same
//!   port on another address of the listening host); without one it serves a plain
//!   transfer, which is what the runner's current version of the test expects. `v2`
//!   (QUIC v2, RFC 9369): the server prefers v2 and switches a client that offers it
//!   from v1 to v2 (compatible version negotiation, RFC 9368; otherwise it speaks v1 and
//!   v2, preferring v1); the client ends up in v2 and fails otherwise. `retry` (the
//!   server answers every Initial without a valid token with a Retry; the client follows
//!   Retry in every test), `amplificationlimit` (a transfer; the server always keeps the
//!   3× limit before it has validated the client's address). `ecn`: a
//!   transfer; ECN is always on (packets go out ECT(0), ACKs carry ECN counts) and the
//!   client prints the ECN outcome to stderr. `multiconnect`, `handshakeloss` and
//!   `handshakecorruption`: one connection per file, one after the other.
//!   `transferloss`, `transfercorruption`, `blackhole`, `ipv6`, `goodput` and
//!   `crosstraffic`: plain transfers (the network makes them hard). `http3`: the client
//!   downloads every URL over HTTP/3 (ALPN `h3`, [`quiver_h3`]) on one connection; the
//!   server always offers both `hq-interop` and `h3` and serves a connection in the
//!   protocol it negotiated (GET of a file → 200 with its bytes, 404 if absent, 400 for
//!   a path outside the root or another method). Anything else exits with
//!   code 127 ("unsupported"). Unset means a plain transfer.
//! - `REQUESTS`: space-separated URLs, used by the client when none are given as
//!   arguments.
//! - `SSLKEYLOGFILE`: TLS secrets are appended there (both sides).
//! - `QLOGDIR`: each connection writes a qlog 0.3 JSON-SEQ trace
//!   `<odcid>_<client|server>.sqlog` into this directory ([`quiver::qlog::QlogDir`]).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use quiver::tls::{self, CipherSuites};
use quiver::{ClientConfig, Connection, Endpoint, ServerConfig, VarInt};
use quiver_proto::packet::{VERSION_1, VERSION_2};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// ALPN of HTTP/0.9 over QUIC as used by the interop runner.
const ALPN: &[u8] = b"hq-interop";
/// Size of the body chunks the HTTP/3 server sends.
const H3_CHUNK: usize = 64 * 1024;
/// Exit code the runner reads as "test case not supported".
const EXIT_UNSUPPORTED: i32 = 127;
/// Largest request line the server accepts.
const MAX_REQUEST: usize = 8 * 1024;
/// How long the client waits for its CONNECTION_CLOSE to go out before exiting.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The interop runner requires servers to cap concurrent bidirectional streams at 1000
/// or fewer in the `multiplexing` test; the client must cope with the limit.
const SERVER_MAX_BIDI_STREAMS: u64 = 100;

/// Stream reset codes the server uses (hq-interop defines none; these are ours).
pub mod hq {
    /// The request line could not be parsed, or names a path outside the root.
    pub const BAD_REQUEST: u32 = 0x1;
    /// The requested file does not exist.
    pub const NOT_FOUND: u32 = 0x2;
    /// Reading the file failed.
    pub const INTERNAL_ERROR: u32 = 0x3;
}

/// Interop sub-commands.
#[derive(Subcommand, Debug)]
pub enum InteropCommand {
    /// Serve files over hq-interop (HTTP/0.9 over QUIC).
    Server(ServerArgs),
    /// Download URLs over hq-interop, all on one connection.
    ///
    /// WARNING: the client does NOT verify the server's certificate (it still checks
    /// the handshake signature). This is for interop testing with self-signed
    /// certificates only; never use it against a server you need to trust.
    Client(ClientArgs),
}

/// Arguments of `quiver interop server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// UDP address to listen on.
    #[arg(long, default_value = "[::]:443")]
    pub listen: SocketAddr,
    /// Directory whose files are served.
    #[arg(long, default_value = "/www")]
    pub www: PathBuf,
    /// Certificate chain (PEM); a self-signed certificate is generated when omitted.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Server preferred address (RFC 9000 §9.6) offered under
    /// TESTCASE=connectionmigration; it must reach this server's socket (listen on a
    /// wildcard address; same port).
    #[arg(long)]
    pub preferred_address: Option<SocketAddr>,
}

/// Arguments of `quiver interop client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Directory the files are written to (created if missing).
    #[arg(long, default_value = "/downloads")]
    pub downloads: PathBuf,
    /// URLs like https://server:443/file, all on the same server; taken from $REQUESTS
    /// when none are given.
    pub urls: Vec<String>,
}

/// The interop runner test cases we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestCase {
    Handshake,
    Transfer,
    Multiplexing,
    ChaCha20,
    LongRtt,
    KeyUpdate,
    Resumption,
    ZeroRtt,
    RebindPort,
    RebindAddr,
    ConnectionMigration,
    V2,
    Retry,
    AmplificationLimit,
    Ecn,
    /// One connection per file (`multiconnect`, `handshakeloss`, `handshakecorruption`).
    MultiConnect,
    /// A transfer whose difficulty is in the network, not in the endpoints
    /// (`transferloss`, `transfercorruption`, `blackhole`, `ipv6`, `goodput`,
    /// `crosstraffic`).
    NetworkTransfer,
    /// Downloads over HTTP/3 (`http3`).
    Http3,
}

impl TestCase {
    /// From `$TESTCASE`; `Ok(None)` for an unsupported test, `Transfer` when unset.
    fn from_env() -> Option<Self> {
        match std::env::var("TESTCASE") {
            Err(_) => Some(TestCase::Transfer),
            Ok(name) => match name.as_str() {
                "" | "transfer" => Some(TestCase::Transfer),
                "handshake" => Some(TestCase::Handshake),
                "multiplexing" => Some(TestCase::Multiplexing),
                "chacha20" => Some(TestCase::ChaCha20),
                "longrtt" => Some(TestCase::LongRtt),
                "keyupdate" => Some(TestCase::KeyUpdate),
                "resumption" => Some(TestCase::Resumption),
                "zerortt" => Some(TestCase::ZeroRtt),
                "rebind-port" => Some(TestCase::RebindPort),
                "rebind-addr" => Some(TestCase::RebindAddr),
                "connectionmigration" => Some(TestCase::ConnectionMigration),
                "v2" => Some(TestCase::V2),
                "retry" => Some(TestCase::Retry),
                "amplificationlimit" => Some(TestCase::AmplificationLimit),
                "ecn" => Some(TestCase::Ecn),
                "multiconnect" | "handshakeloss" | "handshakecorruption" => {
                    Some(TestCase::MultiConnect)
                }
                "transferloss" | "transfercorruption" | "blackhole" | "ipv6" | "goodput"
                | "crosstraffic" => Some(TestCase::NetworkTransfer),
                "http3" => Some(TestCase::Http3),
                _ => None,
            },
        }
    }
}

/// Run an interop sub-command; returns the process exit code.
pub fn run(cmd: InteropCommand) -> anyhow::Result<i32> {
    let Some(testcase) = TestCase::from_env() else {
        eprintln!(
            "quiver: test case {:?} is not supported",
            std::env::var("TESTCASE").unwrap_or_default()
        );
        return Ok(EXIT_UNSUPPORTED);
    };
    tracing::info!(?testcase, "interop");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cmd {
        InteropCommand::Server(args) => runtime.block_on(server(args, testcase)),
        InteropCommand::Client(args) => runtime.block_on(client(args, testcase)),
    }
}

/// `QLOGDIR` as the runner sets it: one qlog file per connection in that directory.
fn qlog_from_env() -> Option<Arc<dyn quiver::qlog::SubscriberFactory>> {
    let dir = std::env::var_os("QLOGDIR").filter(|d| !d.is_empty())?;
    Some(Arc::new(quiver::qlog::QlogDir::new(PathBuf::from(dir))))
}

// ---------------------------------------------------------------------------------------
// server

async fn server(args: ServerArgs, testcase: TestCase) -> anyhow::Result<i32> {
    std::fs::read_dir(&args.www)
        .with_context(|| format!("cannot read www directory {}", args.www.display()))?;
    let root = args
        .www
        .canonicalize()
        .with_context(|| format!("cannot resolve www directory {}", args.www.display()))?;
    let (certs, key) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => tls::load_pem(cert, key).context("loading --cert/--key")?,
        _ => tls::self_signed(&["localhost"]).context("generating a self-signed certificate")?,
    };
    let crypto =
        tls::server_config(certs, key, &[ALPN, quiver_h3::ALPN]).context("TLS configuration")?;
    let mut config = ServerConfig::new(Arc::new(crypto));
    config.transport = Arc::new(quiver::TransportConfig {
        max_concurrent_bidi_streams: SERVER_MAX_BIDI_STREAMS,
        event_subscriber: qlog_from_env(),
        ..Default::default()
    });
    if let (TestCase::ConnectionMigration, Some(pa)) = (testcase, args.preferred_address) {
        config.preferred_address = Some(match pa {
            SocketAddr::V4(v4) => quiver::config::PreferredAddressConfig {
                v4: Some(v4),
                v6: None,
            },
            SocketAddr::V6(v6) => quiver::config::PreferredAddressConfig {
                v4: None,
                v6: Some(v6),
            },
        });
    }
    // RFC 9000 §8.1.2: validate every client address with a Retry round trip.
    config.validation.retry = testcase == TestCase::Retry;
    // Both versions always; for the v2 test the server prefers v2, so a client that
    // offers it is switched (RFC 9368).
    let versions = if testcase == TestCase::V2 {
        vec![VERSION_2, VERSION_1]
    } else {
        vec![VERSION_1, VERSION_2]
    };
    let endpoint_config = quiver::EndpointConfig {
        supported_versions: versions,
        ..Default::default()
    };
    let endpoint = Endpoint::server_with(endpoint_config, config, args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "quiver: serving {} on {}",
        root.display(),
        endpoint.local_addr()?
    );
    let root = Arc::new(root);
    while let Some(conn) = endpoint.accept().await {
        tracing::info!(remote = %conn.remote_address(), "connection");
        tokio::spawn(serve_connection(conn, root.clone()));
    }
    Ok(0)
}

async fn serve_connection(conn: Connection, root: Arc<PathBuf>) {
    if conn.alpn_protocol().as_deref() == Some(quiver_h3::ALPN) {
        return serve_h3(conn, root).await;
    }
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_request(send, recv, root.clone()));
            }
            Err(e) => {
                tracing::info!(remote = %conn.remote_address(), "connection ended: {e}");
                return;
            }
        }
    }
}

async fn serve_request(
    mut send: quiver::SendStream,
    mut recv: quiver::RecvStream,
    root: Arc<PathBuf>,
) {
    let request = match recv.read_to_end(MAX_REQUEST).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(stream = %send.id(), "bad request: {e}");
            let _ = send.reset(VarInt::from_u32(hq::BAD_REQUEST));
            return;
        }
    };
    let path = match parse_request(&request).and_then(|p| resolve(&root, p)) {
        Ok(p) => p,
        Err(code) => {
            tracing::debug!(stream = %send.id(), code, "rejected request");
            let _ = send.reset(VarInt::from_u32(code));
            return;
        }
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(path = %path.display(), "not found: {e}");
            let _ = send.reset(VarInt::from_u32(hq::NOT_FOUND));
            return;
        }
    };
    match tokio::io::copy(&mut file, &mut send).await {
        Ok(n) => {
            tracing::debug!(path = %path.display(), bytes = n, "served");
            let _ = send.finish();
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), "transfer failed: {e}");
            let _ = send.reset(VarInt::from_u32(hq::INTERNAL_ERROR));
        }
    }
}

/// The path of `GET /path\r\n` (the `\r` is optional, as is the final newline).
/// Serve one HTTP/3 connection: every GET names a file under `root`.
async fn serve_h3(conn: Connection, root: Arc<PathBuf>) {
    let remote = conn.remote_address();
    let mut server = match quiver_h3::Server::new(conn).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(%remote, "HTTP/3 setup failed: {e}");
            return;
        }
    };
    loop {
        match server.accept().await {
            Ok(Some(incoming)) => {
                let root = root.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_h3_request(incoming, &root).await {
                        tracing::debug!("HTTP/3 request failed: {e:#}");
                    }
                });
            }
            Ok(None) => return,
            Err(e) => {
                tracing::info!(%remote, "HTTP/3 connection ended: {e}");
                return;
            }
        }
    }
}

async fn serve_h3_request(incoming: quiver_h3::IncomingRequest, root: &Path) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut req = incoming.resolve().await?;
    let status = |code: u16| {
        http::Response::builder()
            .status(code)
            .body(())
            .context("building a response")
    };
    let path = match (req.head.method(), resolve(root, req.head.uri().path())) {
        (&http::Method::GET, Ok(p)) => p,
        (&http::Method::GET, Err(hq::NOT_FOUND)) => {
            req.respond(status(404)?, bytes::Bytes::new()).await?;
            return Ok(());
        }
        _ => {
            req.respond(status(400)?, bytes::Bytes::new()).await?;
            return Ok(());
        }
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => {
            req.respond(status(404)?, bytes::Bytes::new()).await?;
            return Ok(());
        }
    };
    req.stream.send_response(status(200)?).await?;
    let mut sent = 0usize;
    loop {
        let mut buf = bytes::BytesMut::zeroed(H3_CHUNK);
        let n = file.read(&mut buf).await.context("reading the file")?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        req.stream.send_data(buf.freeze()).await?;
        sent += n;
    }
    req.stream.finish().await?;
    tracing::debug!(path = %path.display(), bytes = sent, "served over HTTP/3");
    Ok(())
}

fn parse_request(request: &[u8]) -> Result<&str, u32> {
    let line = std::str::from_utf8(request).map_err(|_| hq::BAD_REQUEST)?;
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let path = line.strip_prefix("GET ").ok_or(hq::BAD_REQUEST)?.trim();
    if path.is_empty() || path.contains(['\r', '\n']) {
        return Err(hq::BAD_REQUEST);
    }
    Ok(path)
}

/// Map a request path to a file below `root`, refusing anything that could leave it
/// (`..`, absolute components, or a symlink pointing outside).
fn resolve(root: &Path, path: &str) -> Result<PathBuf, u32> {
    let relative = Path::new(path.trim_start_matches('/'));
    if relative.as_os_str().is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(hq::BAD_REQUEST);
    }
    let full = root.join(relative);
    let canonical = full.canonicalize().map_err(|_| hq::NOT_FOUND)?;
    if !canonical.starts_with(root) {
        return Err(hq::BAD_REQUEST);
    }
    if !canonical.is_file() {
        return Err(hq::NOT_FOUND);
    }
    Ok(canonical)
}

// ---------------------------------------------------------------------------------------
// client

/// One parsed `https://authority/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> anyhow::Result<Url> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("{url}: only https:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .with_context(|| format!("{url}: unterminated IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => bail!("{url}: bad authority"),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        bail!("{url}: missing host");
    }
    let port = match port {
        Some(p) => p
            .parse()
            .with_context(|| format!("{url}: bad port {p:?}"))?,
        None => 443,
    };
    Ok(Url {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// Where a download is stored: its path below `downloads`, refusing `..`.
fn download_path(downloads: &Path, url_path: &str) -> anyhow::Result<PathBuf> {
    let relative = Path::new(url_path.trim_start_matches('/'));
    if relative.as_os_str().is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("{url_path}: not a file path");
    }
    Ok(downloads.join(relative))
}

async fn client(args: ClientArgs, testcase: TestCase) -> anyhow::Result<i32> {
    let urls = if args.urls.is_empty() {
        std::env::var("REQUESTS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    } else {
        args.urls
    };
    if urls.is_empty() {
        bail!("no URLs given (as arguments or in $REQUESTS)");
    }
    let urls = urls
        .iter()
        .map(|u| parse_url(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = urls.first().context("no URLs")?.clone();
    if let Some(other) = urls
        .iter()
        .find(|u| u.host != first.host || u.port != first.port)
    {
        bail!(
            "all URLs must be on one server: {}:{} and {}:{}",
            first.host,
            first.port,
            other.host,
            other.port
        );
    }
    std::fs::create_dir_all(&args.downloads)
        .with_context(|| format!("cannot create {}", args.downloads.display()))?;
    let remote = tokio::net::lookup_host((first.host.as_str(), first.port))
        .await
        .with_context(|| format!("cannot resolve {}", first.host))?
        .next()
        .with_context(|| format!("{} has no address", first.host))?;

    let suites = if testcase == TestCase::ChaCha20 {
        CipherSuites::ChaCha20Only
    } else {
        CipherSuites::All
    };
    let alpn = if testcase == TestCase::Http3 {
        quiver_h3::ALPN
    } else {
        ALPN
    };
    let crypto = tls::insecure_client_config(&[alpn], suites).context("TLS configuration")?;
    let bind: SocketAddr = if remote.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = Endpoint::client(bind).context("binding the client socket")?;
    // One TLS configuration for every connection: it holds the session tickets.
    let mut config = ClientConfig::new(Arc::new(crypto));
    if testcase == TestCase::V2 {
        config.version = VERSION_2;
        config.available_versions = vec![VERSION_1];
    }
    config.transport = Arc::new(quiver::TransportConfig {
        event_subscriber: qlog_from_env(),
        ..Default::default()
    });
    let mut failures = 0;
    let mut urls = urls;
    let mut first_round = true;
    // Resumption/0-RTT: the first connection fetches the first file and leaves tickets
    // behind. MultiConnect: every file but the last gets its own connection here.
    while urls.len() > 1
        && (testcase == TestCase::MultiConnect
            || (first_round && matches!(testcase, TestCase::Resumption | TestCase::ZeroRtt)))
    {
        first_round = false;
        let rest = urls.split_off(1);
        let conn = endpoint
            .connect_with(config.clone(), remote, &first.host)
            .with_context(|| format!("connecting to {remote}"))?
            .await
            .with_context(|| format!("handshake with {remote}"))?;
        tracing::info!(%remote, "connected (one file on this connection)");
        failures += download_all(&conn, &args.downloads, urls).await;
        conn.close(VarInt::from_u32(0), b"done");
        drop(conn);
        let _ = tokio::time::timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
        urls = rest;
    }
    let connecting = endpoint
        .connect_with(config, remote, &first.host)
        .with_context(|| format!("connecting to {remote}"))?;
    let (conn, early) = if testcase == TestCase::ZeroRtt {
        match connecting.into_0rtt() {
            Ok((conn, accepted)) => (conn, Some(accepted)),
            Err(connecting) => {
                eprintln!("quiver: no 0-RTT ticket for the second connection");
                failures += 1;
                let conn = connecting
                    .await
                    .with_context(|| format!("handshake with {remote}"))?;
                (conn, None)
            }
        }
    } else {
        let conn = connecting
            .await
            .with_context(|| format!("handshake with {remote}"))?;
        (conn, None)
    };
    tracing::info!(%remote, "connected");
    if testcase == TestCase::KeyUpdate {
        // Queued until the handshake is confirmed and a 1-RTT packet acknowledged, so
        // it happens early in the transfer.
        conn.initiate_key_update();
    }

    // TESTCASE=connectionmigration: move to a new local port once migration is allowed
    // (handshake confirmed), while the downloads run.
    let migration = (testcase == TestCase::ConnectionMigration).then(|| {
        let (conn, endpoint) = (conn.clone(), endpoint.clone());
        tokio::spawn(async move {
            while !conn.is_handshake_confirmed() {
                if conn.close_reason().is_some() {
                    return Err(anyhow::anyhow!("connection closed before migrating"));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let socket = std::net::UdpSocket::bind(bind).context("binding a new socket")?;
            let to = socket.local_addr()?;
            endpoint
                .rebind(socket)
                .context("migrating to the new socket")?;
            tracing::info!(%to, "migrated to a new local address");
            anyhow::Ok(())
        })
    });

    // With 0-RTT the requests are written (and sent) before the handshake completes.
    if testcase == TestCase::Http3 {
        failures += download_all_h3(&conn, &args.downloads, &first, urls).await;
    } else {
        failures += download_all(&conn, &args.downloads, urls).await;
    }
    if let Some(task) = migration {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("quiver: {e:#}");
                failures += 1;
            }
            Err(e) => {
                eprintln!("quiver: migration task failed: {e}");
                failures += 1;
            }
        }
        // The new path must have been validated by the server's PATH_RESPONSE.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while conn.path_state() != quiver::PathState::Validated
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stats = conn.stats();
        tracing::info!(
            migrations = stats.migrations,
            validated = stats.paths_validated,
            "migration"
        );
        if stats.migrations == 0 || conn.path_state() != quiver::PathState::Validated {
            eprintln!("quiver: the migrated path was not validated");
            failures += 1;
        }
    }
    if let Some(accepted) = early {
        let accepted = accepted.await;
        let stats = conn.stats();
        tracing::info!(accepted, sent = stats.zero_rtt_packets_sent, "0-RTT");
        if !accepted {
            eprintln!("quiver: the server rejected the 0-RTT data");
            failures += 1;
        } else if stats.zero_rtt_packets_sent == 0 {
            eprintln!("quiver: no request went out in 0-RTT");
            failures += 1;
        }
    }
    if testcase == TestCase::V2 && conn.version() != Some(VERSION_2) {
        eprintln!("quiver: the connection did not end up in QUIC v2");
        failures += 1;
    }
    if matches!(testcase, TestCase::Resumption | TestCase::ZeroRtt) && !conn.is_resumed() {
        eprintln!("quiver: the second handshake did not resume the session");
        failures += 1;
    }
    if testcase == TestCase::KeyUpdate {
        let stats = conn.stats();
        tracing::info!(
            initiated = stats.key_updates_initiated,
            followed = stats.key_updates_followed,
            "key updates"
        );
        if stats.key_updates_initiated == 0 {
            eprintln!("quiver: the key update did not happen");
            failures += 1;
        }
    }
    if testcase == TestCase::Ecn {
        let s = conn.stats();
        eprintln!(
            "quiver: ECN {:?}; received ECT(0) {}, ECT(1) {}, CE {} of {} packets",
            s.ecn_state, s.ecn_received.ect0, s.ecn_received.ect1, s.ecn_received.ce, s.packets_rx
        );
    }
    conn.close(VarInt::from_u32(0), b"done");
    drop(conn);
    // Let the CONNECTION_CLOSE reach the server, but do not hang on an absent peer.
    let _ = tokio::time::timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
    Ok(if failures == 0 { 0 } else { 1 })
}

/// Download every URL on `conn`, concurrently; returns the number of failures.
async fn download_all(conn: &Connection, downloads: &Path, urls: Vec<Url>) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for url in urls {
        let conn = conn.clone();
        let downloads = downloads.to_path_buf();
        tasks.spawn(async move {
            let result = download(&conn, &downloads, &url.path).await;
            (url.path, result)
        });
    }
    let mut failures = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((path, Err(e))) => {
                failures += 1;
                eprintln!("quiver: download of {path} failed: {e:#}");
            }
            Err(e) => {
                failures += 1;
                eprintln!("quiver: download task failed: {e}");
            }
        }
    }
    failures
}

/// Download every URL over HTTP/3 on `conn`, concurrently; returns the number of
/// failures.
async fn download_all_h3(
    conn: &Connection,
    downloads: &Path,
    server: &Url,
    urls: Vec<Url>,
) -> usize {
    let client = match quiver_h3::Client::new(conn.clone()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("quiver: HTTP/3 setup failed: {e}");
            return urls.len().max(1);
        }
    };
    let authority = if server.host.contains(':') {
        format!("[{}]:{}", server.host, server.port)
    } else {
        format!("{}:{}", server.host, server.port)
    };
    let mut tasks = tokio::task::JoinSet::new();
    for url in urls {
        let client = client.clone();
        let downloads = downloads.to_path_buf();
        let uri = format!("https://{authority}{}", url.path);
        tasks.spawn(async move {
            let result = download_h3(&client, &downloads, &uri, &url.path).await;
            (url.path, result)
        });
    }
    let mut failures = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((path, Err(e))) => {
                failures += 1;
                eprintln!("quiver: HTTP/3 download of {path} failed: {e:#}");
            }
            Err(e) => {
                failures += 1;
                eprintln!("quiver: download task failed: {e}");
            }
        }
    }
    failures
}

async fn download_h3(
    client: &quiver_h3::Client,
    downloads: &Path,
    uri: &str,
    path: &str,
) -> anyhow::Result<()> {
    use bytes::Buf;
    use tokio::io::AsyncWriteExt;
    let target = download_path(downloads, path)?;
    let req = http::Request::get(uri)
        .body(())
        .context("building the request")?;
    let mut stream = client
        .send_request(req)
        .await
        .context("sending the request")?;
    stream.finish().await.context("finishing the request")?;
    let head = stream
        .recv_response()
        .await
        .context("receiving the response")?;
    if head.status() != http::StatusCode::OK {
        bail!("status {}", head.status());
    }
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = tokio::fs::File::create(&target)
        .await
        .with_context(|| format!("creating {}", target.display()))?;
    let mut n = 0usize;
    while let Some(mut chunk) = stream.recv_data().await.context("receiving the body")? {
        while chunk.has_remaining() {
            let c = chunk.chunk();
            file.write_all(c)
                .await
                .with_context(|| format!("writing {}", target.display()))?;
            let len = c.len();
            n += len;
            chunk.advance(len);
        }
    }
    file.flush()
        .await
        .with_context(|| format!("writing {}", target.display()))?;
    tracing::info!(path, bytes = n, "downloaded over HTTP/3");
    Ok(())
}

async fn download(conn: &Connection, downloads: &Path, path: &str) -> anyhow::Result<()> {
    let target = download_path(downloads, path)?;
    let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
    send.write_all(format!("GET {path}\r\n").as_bytes())
        .await
        .context("sending the request")?;
    send.finish().context("finishing the request")?;
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = tokio::fs::File::create(&target)
        .await
        .with_context(|| format!("creating {}", target.display()))?;
    let n = tokio::io::copy(&mut recv, &mut file)
        .await
        .context("receiving the response")?;
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .with_context(|| format!("writing {}", target.display()))?;
    tracing::info!(path, bytes = n, "downloaded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(parse_request(b"GET /a.txt\r\n"), Ok("/a.txt"));
        assert_eq!(parse_request(b"GET /a.txt\n"), Ok("/a.txt"));
        assert_eq!(parse_request(b"GET /a.txt"), Ok("/a.txt"));
        assert_eq!(parse_request(b"POST /a.txt\r\n"), Err(hq::BAD_REQUEST));
        assert_eq!(parse_request(b"GET \r\n"), Err(hq::BAD_REQUEST));
        assert_eq!(parse_request(b"\xff\xfe"), Err(hq::BAD_REQUEST));
    }

    #[test]
    fn refuses_traversal() {
        let root = std::env::temp_dir();
        assert_eq!(resolve(&root, "/../etc/passwd"), Err(hq::BAD_REQUEST));
        assert_eq!(resolve(&root, "/a/../../b"), Err(hq::BAD_REQUEST));
        assert_eq!(resolve(&root, "/"), Err(hq::BAD_REQUEST));
        assert!(download_path(&root, "/../x").is_err());
        assert_eq!(
            download_path(Path::new("/d"), "/x/y.bin").ok(),
            Some(PathBuf::from("/d/x/y.bin"))
        );
    }

    #[test]
    fn parses_urls() {
        let u = parse_url("https://server4:443/file.bin").expect("url");
        assert_eq!(
            u,
            Url {
                host: "server4".into(),
                port: 443,
                path: "/file.bin".into()
            }
        );
        let u = parse_url("https://[::1]:4433/x").expect("v6 url");
        assert_eq!((u.host.as_str(), u.port), ("::1", 4433));
        let u = parse_url("https://example.org").expect("no path");
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
        assert!(parse_url("http://x/y").is_err());
        assert!(parse_url("https://x:notaport/y").is_err());
        assert!(parse_url("https://[::1/y").is_err());
    }
}
