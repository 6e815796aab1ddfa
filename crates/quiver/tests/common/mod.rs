//! Shared test harness: certificates, configurations for quiver and quinn, a tiny
//! request/response protocol, and servers for both stacks speaking it.
//!
//! Protocol, one request per bidirectional stream (client → server, then FIN):
//! - `G` + u64 (big endian) `n`: the server answers with `pattern(n)` and FIN;
//! - `C` + u32 `code`: the server closes the connection with `code` and reason `bye`.
//!
//! Servers echo every datagram they receive.

#![allow(dead_code)]

use quiver::tls::{self, CipherSuites};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// ALPN of the test protocol.
pub const ALPN: &[u8] = b"quiver-test";
/// Upper bound for any test step: a hang fails instead of blocking CI.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Server name in the test certificate.
pub const NAME: &str = "localhost";

/// Run `f`, failing the test if it takes longer than [`TIMEOUT`].
pub async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .expect("test step timed out")
}

/// Log to stderr when `RUST_LOG` is set (shown for failing tests).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Loopback, any port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A self-signed certificate for [`NAME`].
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    pub fn new() -> Self {
        let (certs, key) = tls::self_signed(&[NAME]).expect("self-signed certificate");
        Self { certs, key }
    }

    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.certs {
            roots.add(c.clone()).expect("root certificate");
        }
        roots
    }

    pub fn server_tls(&self) -> rustls::ServerConfig {
        tls::server_config(self.certs.clone(), self.key.clone_key(), &[ALPN]).expect("server TLS")
    }

    pub fn client_tls(&self, suites: CipherSuites) -> rustls::ClientConfig {
        tls::client_config(self.roots(), &[ALPN], suites).expect("client TLS")
    }
}

/// Deterministic payload of `n` bytes (a simple LCG; no RNG crate needed).
pub fn pattern(n: u64) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// Assert that `got` is `pattern(n)`, comparing SHA-256 digests (short failure output).
pub fn assert_pattern(got: &[u8], n: u64) {
    assert_eq!(got.len() as u64, n, "length");
    assert_eq!(
        Sha256::digest(got),
        Sha256::digest(pattern(n)),
        "content differs"
    );
}

pub fn get_request(n: u64) -> Vec<u8> {
    let mut r = vec![b'G'];
    r.extend_from_slice(&n.to_be_bytes());
    r
}

pub fn close_request(code: u32) -> Vec<u8> {
    let mut r = vec![b'C'];
    r.extend_from_slice(&code.to_be_bytes());
    r
}

enum Request {
    Get(u64),
    Close(u32),
}

fn parse_request(req: &[u8]) -> Option<Request> {
    match req.split_first()? {
        (b'G', rest) => Some(Request::Get(u64::from_be_bytes(rest.try_into().ok()?))),
        (b'C', rest) => Some(Request::Close(u32::from_be_bytes(rest.try_into().ok()?))),
        _ => None,
    }
}

/// How a server saw a connection end, normalised across stacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The peer's application closed it.
    App { code: u64, reason: Vec<u8> },
    /// Anything else.
    Other(String),
}

/// Flow-control settings of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// Library defaults.
    Default,
    /// Small windows and few concurrent streams, to exercise flow control and
    /// MAX_STREAMS.
    Small,
}

pub const SMALL_STREAM_WINDOW: u32 = 2 * 1024;
pub const SMALL_CONN_WINDOW: u32 = 32 * 1024;
pub const SMALL_MAX_STREAMS: u32 = 50;

// ---------------------------------------------------------------------------------------
// quiver side

pub fn quiver_transport(w: Windows) -> Arc<quiver::TransportConfig> {
    let mut t = quiver::TransportConfig::default();
    if w == Windows::Small {
        t.stream_receive_window = SMALL_STREAM_WINDOW.into();
        t.receive_window = SMALL_CONN_WINDOW.into();
        t.max_concurrent_bidi_streams = SMALL_MAX_STREAMS.into();
    }
    Arc::new(t)
}

pub fn quiver_client_config(
    id: &Identity,
    w: Windows,
    suites: CipherSuites,
) -> quiver::ClientConfig {
    let mut c = quiver::ClientConfig::new(Arc::new(id.client_tls(suites)));
    c.transport = quiver_transport(w);
    c
}

/// A quiver server endpoint on loopback.
pub fn quiver_server_endpoint(id: &Identity, w: Windows) -> quiver::Endpoint {
    let mut config = quiver::ServerConfig::new(Arc::new(id.server_tls()));
    config.transport = quiver_transport(w);
    quiver::Endpoint::server(config, loopback()).expect("quiver server endpoint")
}

/// Serve the test protocol on `ep`; returns how each connection ended.
pub fn spawn_quiver_server(ep: quiver::Endpoint) -> mpsc::UnboundedReceiver<Closed> {
    spawn_quiver_server_with(ep, None)
}

/// [`spawn_quiver_server`], also handing each accepted connection to `conns`.
pub fn spawn_quiver_server_with(
    ep: quiver::Endpoint,
    conns: Option<mpsc::UnboundedSender<quiver::Connection>>,
) -> mpsc::UnboundedReceiver<Closed> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(conn) = ep.accept().await {
            assert_eq!(conn.alpn_protocol().as_deref(), Some(ALPN));
            if let Some(c) = &conns {
                let _ = c.send(conn.clone());
            }
            let tx = tx.clone();
            let echo = conn.clone();
            tokio::spawn(async move {
                while let Ok(d) = echo.read_datagram().await {
                    if echo.send_datagram(d).is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let closed = loop {
                    match conn.accept_bi().await {
                        Ok((send, recv)) => {
                            tokio::spawn(quiver_respond(conn.clone(), send, recv));
                        }
                        Err(quiver::ConnectionError::ApplicationClosed { code, reason }) => {
                            break Closed::App {
                                code: code.into_inner(),
                                reason: reason.to_vec(),
                            }
                        }
                        Err(e) => break Closed::Other(e.to_string()),
                    }
                };
                let _ = tx.send(closed);
            });
        }
    });
    rx
}

/// Answer one request of the test protocol on a stream the peer opened.
pub async fn quiver_respond(
    conn: quiver::Connection,
    mut send: quiver::SendStream,
    mut recv: quiver::RecvStream,
) {
    let Ok(req) = recv.read_to_end(64).await else {
        return;
    };
    match parse_request(&req) {
        Some(Request::Get(n)) => {
            if send.write_all(&pattern(n)).await.is_ok() {
                let _ = send.finish();
            }
        }
        Some(Request::Close(code)) => conn.close(code.into(), b"bye"),
        None => {
            let _ = send.reset(1u32.into());
        }
    }
}

/// Download `n` bytes over a new stream.
pub async fn quiver_get(conn: &quiver::Connection, n: u64) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.expect("open_bi");
    send.write_all(&get_request(n))
        .await
        .expect("write request");
    send.finish().expect("finish");
    recv.read_to_end(usize::MAX).await.expect("read response")
}

/// Ask the server to close the connection with `code`.
pub async fn quiver_request_close(conn: &quiver::Connection, code: u32) {
    let (mut send, _recv) = conn.open_bi().await.expect("open_bi");
    send.write_all(&close_request(code))
        .await
        .expect("write request");
    send.finish().expect("finish");
}

// ---------------------------------------------------------------------------------------
// quinn side

pub fn quinn_transport(w: Windows) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    if w == Windows::Small {
        t.stream_receive_window(SMALL_STREAM_WINDOW.into())
            .receive_window(SMALL_CONN_WINDOW.into())
            .max_concurrent_bidi_streams(SMALL_MAX_STREAMS.into());
    }
    Arc::new(t)
}

/// A quinn server endpoint on loopback.
pub fn quinn_server_endpoint(id: &Identity, w: Windows) -> quinn::Endpoint {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(id.server_tls())
        .expect("quinn server crypto");
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(quinn_transport(w));
    quinn::Endpoint::server(config, loopback()).expect("quinn server endpoint")
}

pub fn quinn_client_config(id: &Identity, w: Windows, suites: CipherSuites) -> quinn::ClientConfig {
    let tls = Arc::new(id.client_tls(suites));
    // Initial packets always use AES-128-GCM (RFC 9001 §5.2), even when TLS may only
    // negotiate ChaCha20; quinn wants that suite named explicitly in that case.
    let initial = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .expect("AES-128-GCM QUIC suite");
    let crypto = quinn::crypto::rustls::QuicClientConfig::with_initial(tls, initial)
        .expect("quinn client crypto");
    let mut c = quinn::ClientConfig::new(Arc::new(crypto));
    c.transport_config(quinn_transport(w));
    c
}

/// Serve the test protocol with quinn; returns how each connection ended.
pub fn spawn_quinn_server(ep: quinn::Endpoint) -> mpsc::UnboundedReceiver<Closed> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else {
                    return;
                };
                let echo = conn.clone();
                tokio::spawn(async move {
                    while let Ok(d) = echo.read_datagram().await {
                        if echo.send_datagram(d).is_err() {
                            break;
                        }
                    }
                });
                let closed = loop {
                    match conn.accept_bi().await {
                        Ok((send, recv)) => {
                            tokio::spawn(quinn_respond(conn.clone(), send, recv));
                        }
                        Err(quinn::ConnectionError::ApplicationClosed(c)) => {
                            break Closed::App {
                                code: c.error_code.into_inner(),
                                reason: c.reason.to_vec(),
                            }
                        }
                        Err(e) => break Closed::Other(e.to_string()),
                    }
                };
                let _ = tx.send(closed);
            });
        }
    });
    rx
}

async fn quinn_respond(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let Ok(req) = recv.read_to_end(64).await else {
        return;
    };
    match parse_request(&req) {
        Some(Request::Get(n)) => {
            if send.write_all(&pattern(n)).await.is_ok() {
                let _ = send.finish();
            }
        }
        Some(Request::Close(code)) => conn.close(code.into(), b"bye"),
        None => {
            let _ = send.reset(1u32.into());
        }
    }
}

pub async fn quinn_get(conn: &quinn::Connection, n: u64) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.expect("open_bi");
    send.write_all(&get_request(n))
        .await
        .expect("write request");
    send.finish().expect("finish");
    recv.read_to_end(usize::MAX).await.expect("read response")
}

pub async fn quinn_request_close(conn: &quinn::Connection, code: u32) {
    let (mut send, _recv) = conn.open_bi().await.expect("open_bi");
    send.write_all(&close_request(code))
        .await
        .expect("write request");
    send.finish().expect("finish");
}

/// The ALPN protocol quinn negotiated.
pub fn quinn_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}
