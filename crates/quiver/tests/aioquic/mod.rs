//! Harness for running aioquic (Python, from PyPI) as a real peer: the venv that
//! `scripts/install-deps.sh` creates, the hq-interop peers `hq_server.py` / `hq_client.py`
//! next to this file, certificates as PEM files, and a Quiver hq-interop server.
//!
//! The interpreter is `$QUIVER_AIOQUIC_PYTHON`, else `$QUIVER_VENV/bin/python`, else
//! `/opt/quiver-venv/bin/python` (the install script's default). Without it the tests fail and say how to install it:
//! an interop suite that silently skips proves nothing.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// ALPN of hq-interop (HTTP/0.9 over QUIC, as the quic-interop-runner uses it).
pub const HQ_ALPN: &[u8] = b"hq-interop";
/// Upper bound for one step (a peer's start, a download).
pub const STEP: Duration = Duration::from_secs(60);
/// Default venv interpreter, as created by `scripts/install-deps.sh`.
pub const DEFAULT_PYTHON: &str = "/opt/quiver-venv/bin/python";

/// The venv's Python interpreter, checked to import aioquic. Panics with the fix when
/// the venv is missing.
pub fn python() -> PathBuf {
    let python = std::env::var_os("QUIVER_AIOQUIC_PYTHON")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("QUIVER_VENV").map(|v| PathBuf::from(v).join("bin/python")))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PYTHON));
    let ok = std::process::Command::new(&python)
        .args(["-c", "import aioquic"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "aioquic is not installed at {}: run scripts/install-deps.sh (it creates the venv \
         with aioquic from PyPI), or point QUIVER_AIOQUIC_PYTHON at a Python that has aioquic",
        python.display()
    );
    python
}

/// Path of one of the Python peers (in `crates/quiver/tests/aioquic`, whichever crate of
/// the workspace includes this module).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../quiver/tests/aioquic")
        .join(name)
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "quiver-aioquic-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `localhost`, as DER for Quiver and PEM files for aioquic.
pub struct Cert {
    pub der: rustls::pki_types::CertificateDer<'static>,
    pub key_der: Vec<u8>,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl Cert {
    pub fn new(dir: &Path) -> Self {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
        let cert_pem = dir.join("cert.pem");
        let key_pem = dir.join("key.pem");
        std::fs::write(&cert_pem, c.cert.pem()).expect("write cert");
        std::fs::write(&key_pem, c.key_pair.serialize_pem()).expect("write key");
        Self {
            der: c.cert.der().clone(),
            key_der: c.key_pair.serialize_der(),
            cert_pem,
            key_pem,
        }
    }

    /// Quiver server TLS for hq-interop.
    pub fn server_tls(&self) -> rustls::ServerConfig {
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(self.key_der.clone());
        quiver::tls::server_config(vec![self.der.clone()], key.into(), &[HQ_ALPN])
            .expect("server TLS")
    }

    /// Quiver client TLS for hq-interop, trusting this certificate.
    pub fn client_tls(&self, suites: quiver::tls::CipherSuites) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("root");
        quiver::tls::client_config(roots, &[HQ_ALPN], suites).expect("client TLS")
    }
}

/// Deterministic file contents.
pub fn content(n: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x1234_5678u32 ^ u32::from(seed);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// A running Python peer whose stdout lines arrive on a channel; killed on drop.
pub struct Peer {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line read so far.
    pub log: Vec<String>,
}

impl Peer {
    fn spawn(script_name: &str, args: &[String], launcher: Option<std::process::Command>) -> Self {
        // `launcher` runs the interpreter elsewhere (e.g. inside an emulated namespace:
        // `quiver_netem::emu::Shell::command(python)`).
        let mut command = match launcher {
            Some(l) => Command::from(l),
            None => Command::new(python()),
        };
        let mut child = command
            .arg(script(script_name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn aioquic peer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Wait for a line starting with `prefix` (failing after [`STEP`]); returns it.
    pub async fn expect_line(&mut self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if let Some(l) = self.log.iter().find(|l| l.starts_with(prefix)) {
                return l.clone();
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.log.push(line),
                Ok(None) => panic!(
                    "aioquic peer exited without {prefix:?}; output: {:?}",
                    self.log
                ),
                Err(_) => panic!(
                    "no {prefix:?} from aioquic peer within {STEP:?}; output: {:?}",
                    self.log
                ),
            }
        }
    }

    /// Wait until `n` lines starting with `prefix` were read (failing after [`STEP`]);
    /// returns them in order.
    pub async fn expect_lines(&mut self, prefix: &str, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let found: Vec<String> = self
                .log
                .iter()
                .filter(|l| l.starts_with(prefix))
                .cloned()
                .collect();
            if found.len() >= n {
                return found;
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.log.push(line),
                _ => panic!(
                    "fewer than {n} {prefix:?} lines from aioquic peer; output: {:?}",
                    self.log
                ),
            }
        }
    }

    /// Wait for the process to exit; returns whether it succeeded.
    pub async fn wait(&mut self) -> bool {
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .expect("aioquic peer did not exit in time")
            .expect("wait");
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        // Drain what is still buffered in the pipe.
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(200), self.lines.recv()).await
        {
            self.log.push(line);
        }
        status.success()
    }
}

/// The version in a "HANDSHAKE version=0x..." line.
pub fn handshake_version(line: &str) -> u32 {
    let hex = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("version=0x"))
        .unwrap_or_else(|| panic!("no version in {line:?}"));
    u32::from_str_radix(hex, 16).expect("hex version")
}

/// An aioquic hq-interop server serving `files` from a temp dir.
pub struct AioquicServer {
    pub peer: Peer,
    pub addr: SocketAddr,
    _dir: TempDir,
}

/// Options of the aioquic server.
#[derive(Clone, Debug)]
pub struct ServerOpts {
    /// Supported versions, preferred first, as the script takes them ("v1,v2").
    pub versions: &'static str,
    pub session_tickets: bool,
    pub zero_rtt: bool,
    pub retry: bool,
    pub keylog: Option<PathBuf>,
}

impl Default for ServerOpts {
    fn default() -> Self {
        Self {
            versions: "v1,v2",
            session_tickets: false,
            zero_rtt: false,
            retry: false,
            keylog: None,
        }
    }
}

impl AioquicServer {
    pub async fn start(cert: &Cert, files: &[(&str, Vec<u8>)], opts: ServerOpts) -> Self {
        Self::start_in(cert, files, opts, Ipv4Addr::LOCALHOST, None).await
    }

    /// [`AioquicServer::start`] listening on `host`, with the interpreter started by
    /// `launcher` (see [`python`]) when given.
    pub async fn start_in(
        cert: &Cert,
        files: &[(&str, Vec<u8>)],
        opts: ServerOpts,
        host: Ipv4Addr,
        launcher: Option<std::process::Command>,
    ) -> Self {
        let dir = TempDir::new("www");
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).expect("write file");
        }
        let mut args = vec![
            "--host".into(),
            host.to_string(),
            "--certificate".into(),
            cert.cert_pem.display().to_string(),
            "--private-key".into(),
            cert.key_pem.display().to_string(),
            "--www".into(),
            dir.path().display().to_string(),
            "--versions".into(),
            opts.versions.into(),
        ];
        if opts.session_tickets {
            args.push("--session-tickets".into());
        }
        if opts.zero_rtt {
            args.push("--zero-rtt".into());
        }
        if opts.retry {
            args.push("--retry".into());
        }
        if let Some(k) = &opts.keylog {
            args.extend(["--keylog".into(), k.display().to_string()]);
        }
        let mut peer = Peer::spawn("hq_server.py", &args, launcher);
        let line = peer.expect_line("LISTENING ").await;
        let port: u16 = line["LISTENING ".len()..].trim().parse().expect("port");
        Self {
            peer,
            addr: SocketAddr::from((host, port)),
            _dir: dir,
        }
    }
}

/// Options of the aioquic client.
#[derive(Clone, Debug, Default)]
pub struct ClientOpts {
    /// Version of the first Initial ("v1" / "v2"); "v1" when empty.
    pub version: &'static str,
    /// Further versions to offer ("v2").
    pub offer: &'static str,
    /// One cipher suite ("chacha20", "aes128", "aes256").
    pub cipher: Option<&'static str>,
    pub session_ticket: Option<PathBuf>,
    pub zero_rtt: bool,
    pub keylog: Option<PathBuf>,
    /// Initiate a key update once connected (before the requests).
    pub key_update: bool,
}

/// Run the aioquic client against `addr` for `paths`; returns the peer after it exited
/// (its log holds the HANDSHAKE/GOT lines), whether it succeeded, and the downloads.
pub async fn run_client(
    cert: &Cert,
    addr: SocketAddr,
    paths: &[&str],
    opts: ClientOpts,
) -> (Peer, bool, HashMap<String, Vec<u8>>) {
    run_client_in(cert, addr, paths, opts, None).await
}

/// [`run_client`] with the interpreter started by `launcher` (see [`Peer`]).
pub async fn run_client_in(
    cert: &Cert,
    addr: SocketAddr,
    paths: &[&str],
    opts: ClientOpts,
    launcher: Option<std::process::Command>,
) -> (Peer, bool, HashMap<String, Vec<u8>>) {
    let out = TempDir::new("out");
    let mut args = vec![
        "--host".into(),
        addr.ip().to_string(),
        "--port".into(),
        addr.port().to_string(),
        "--ca-file".into(),
        cert.cert_pem.display().to_string(),
        "--output".into(),
        out.path().display().to_string(),
        "--version".into(),
        if opts.version.is_empty() {
            "v1"
        } else {
            opts.version
        }
        .into(),
    ];
    if !opts.offer.is_empty() {
        args.extend(["--offer".into(), opts.offer.into()]);
    }
    if let Some(c) = opts.cipher {
        args.extend(["--cipher".into(), c.into()]);
    }
    if let Some(t) = &opts.session_ticket {
        args.extend(["--session-ticket".into(), t.display().to_string()]);
    }
    if opts.zero_rtt {
        args.push("--zero-rtt".into());
    }
    if opts.key_update {
        args.push("--key-update".into());
    }
    if let Some(k) = &opts.keylog {
        args.extend(["--keylog".into(), k.display().to_string()]);
    }
    args.extend(paths.iter().map(|p| p.to_string()));
    let mut peer = Peer::spawn("hq_client.py", &args, launcher);
    let ok = peer.wait().await;
    let mut got = HashMap::new();
    for p in paths {
        let name = p.trim_start_matches('/');
        if let Ok(body) = std::fs::read(out.path().join(name)) {
            got.insert(p.to_string(), body);
        }
    }
    (peer, ok, got)
}

/// Serve hq-interop on a Quiver endpoint: `GET /name` answers with `files[name]` and FIN,
/// anything else resets the stream with code 1. The version of every accepted
/// connection is pushed to `versions`, what it looks like to `seen` ([`ServerSeen`]).
pub fn spawn_quiver_hq_server(
    ep: quiver::Endpoint,
    files: Arc<HashMap<String, Vec<u8>>>,
    versions: Arc<Mutex<Vec<u32>>>,
    seen: Arc<Mutex<Vec<ServerSeen>>>,
) {
    tokio::spawn(async move {
        while let Some(conn) = ep.accept().await {
            if let Some(v) = conn.version() {
                versions.lock().unwrap().push(v);
            }
            let index = {
                let mut seen = seen.lock().unwrap();
                seen.push(ServerSeen::of(&conn));
                seen.len() - 1
            };
            let files = files.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let files = files.clone();
                    let seen = seen.clone();
                    let conn = conn.clone();
                    tokio::spawn(async move {
                        let Ok(req) = recv.read_to_end(1024).await else {
                            return;
                        };
                        let line = String::from_utf8_lossy(&req);
                        let path = line
                            .strip_prefix("GET /")
                            .map(|p| p.trim_end_matches(['\r', '\n']));
                        match path.and_then(|p| files.get(p)) {
                            Some(body) => {
                                if send.write_all(body).await.is_ok() {
                                    let _ = send.finish();
                                }
                            }
                            None => {
                                let _ = send.reset(1u32.into());
                            }
                        }
                        seen.lock().unwrap()[index] = ServerSeen::of(&conn);
                    });
                }
            });
        }
    });
}

/// What the hq server saw of one accepted connection, copied while the connection lives
/// (a drained connection's accessors read nothing): at accept and after each response.
#[derive(Debug, Clone)]
pub struct ServerSeen {
    pub resumed: bool,
    pub zero_rtt: quiver::ZeroRttStatus,
    pub stats: quiver::ConnectionStats,
}

impl ServerSeen {
    fn of(conn: &quiver::Connection) -> Self {
        Self {
            resumed: conn.is_resumed(),
            zero_rtt: conn.zero_rtt_status(),
            stats: conn.stats(),
        }
    }
}

/// A Quiver hq-interop server on loopback.
pub struct QuiverHqServer {
    pub ep: quiver::Endpoint,
    pub addr: SocketAddr,
    /// Version of each accepted connection.
    pub versions: Arc<Mutex<Vec<u32>>>,
    /// What was seen of each accepted connection (resumption, 0-RTT, statistics).
    pub conns: Arc<Mutex<Vec<ServerSeen>>>,
}

/// A Quiver hq-interop server on loopback speaking `versions` (preferred first).
pub fn quiver_hq_server(
    cert: &Cert,
    versions: &[u32],
    files: &[(&str, Vec<u8>)],
) -> QuiverHqServer {
    quiver_hq_server_with(cert, Ipv4Addr::LOCALHOST, versions, files, |_| {})
}

/// [`quiver_hq_server`] on `host`, with its server configuration adjusted by `tweak`
/// (Retry, ...).
pub fn quiver_hq_server_with(
    cert: &Cert,
    host: Ipv4Addr,
    versions: &[u32],
    files: &[(&str, Vec<u8>)],
    tweak: impl FnOnce(&mut quiver::ServerConfig),
) -> QuiverHqServer {
    let mut config = quiver::ServerConfig::new(Arc::new(cert.server_tls()));
    tweak(&mut config);
    let endpoint_config = quiver::EndpointConfig {
        supported_versions: versions.to_vec(),
        ..quiver::EndpointConfig::default()
    };
    let socket = std::net::UdpSocket::bind((host, 0)).expect("bind");
    let ep = quiver::Endpoint::new(endpoint_config, Some(config), socket).expect("endpoint");
    let addr = ep.local_addr().expect("addr");
    let map = files
        .iter()
        .map(|(n, b)| (n.to_string(), b.clone()))
        .collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let conns = Arc::new(Mutex::new(Vec::new()));
    spawn_quiver_hq_server(ep.clone(), Arc::new(map), seen.clone(), conns.clone());
    QuiverHqServer {
        ep,
        addr,
        versions: seen,
        conns,
    }
}

/// Download `/name` over a new stream of `conn` (hq-interop).
pub async fn quiver_hq_get(conn: &quiver::Connection, name: &str) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.expect("open_bi");
    send.write_all(format!("GET /{name}\r\n").as_bytes())
        .await
        .expect("write request");
    send.finish().expect("finish");
    recv.read_to_end(usize::MAX).await.expect("read response")
}
