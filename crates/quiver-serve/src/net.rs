//! QUIC endpoints of the front-end ↔ back-end connection: ALPN [`ALPN`], a chosen stream
//! scheduler, enough concurrent streams for one request each, and keep-alives so the
//! long-lived connection survives idle periods.

use quiver::{tls, ClientConfig, Endpoint, SchedulerKind, ServerConfig, TransportConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// ALPN of the serving protocol (version 1 of [`crate::wire`]).
pub const ALPN: &[u8] = b"quiver-serve/1";

/// Concurrent request streams a peer may open.
pub const MAX_STREAMS: u64 = 10_000;

/// Errors setting up an endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// TLS configuration.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Socket.
    #[error("socket: {0}")]
    Io(std::io::Error),
    /// Certificate store.
    #[error("certificate: {0}")]
    Cert(rustls::Error),
}

fn transport(scheduler: SchedulerKind) -> Arc<TransportConfig> {
    Arc::new(TransportConfig {
        scheduler: Arc::new(scheduler),
        max_concurrent_bidi_streams: MAX_STREAMS,
        max_idle_timeout: Some(Duration::from_secs(30)),
        keep_alive_interval: Some(Duration::from_secs(5)),
        ..TransportConfig::default()
    })
}

/// A back-end server endpoint on `addr` with `scheduler` for the token streams.
pub fn server_endpoint(
    addr: SocketAddr,
    scheduler: SchedulerKind,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Endpoint, NetError> {
    let crypto = tls::server_config(certs, key, &[ALPN])?;
    let mut config = ServerConfig::new(Arc::new(crypto));
    config.transport = transport(scheduler);
    Ok(Endpoint::server(config, addr)?)
}

/// A front-end client endpoint for a back-end at `server` (its address family), trusting `server_cert`, with `scheduler` for the request
/// streams.
pub fn client_endpoint(
    server: SocketAddr,
    scheduler: SchedulerKind,
    server_cert: CertificateDer<'static>,
) -> Result<Endpoint, NetError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert)?;
    let crypto = tls::client_config(roots, &[ALPN], tls::CipherSuites::All)?;
    let mut config = ClientConfig::new(Arc::new(crypto));
    config.transport = transport(scheduler);
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let ep = Endpoint::client(local)?;
    ep.set_default_client_config(config);
    Ok(ep)
}

impl From<std::io::Error> for NetError {
    fn from(e: std::io::Error) -> Self {
        NetError::Io(e)
    }
}

impl From<rustls::Error> for NetError {
    fn from(e: rustls::Error) -> Self {
        NetError::Cert(e)
    }
}
