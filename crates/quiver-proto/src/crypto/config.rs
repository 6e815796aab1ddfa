//! Pure builders for rustls client and server configurations suitable for QUIC.
//!
//! QUIC requires TLS 1.3 (RFC 9001 §4.2), so every builder pins the protocol version to
//! TLS 1.3 and keeps only cipher suites that define QUIC packet protection. None of them
//! touch the file system: certificates, keys and key logs are passed in.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{
    CipherSuite, ClientConfig, KeyLog, RootCertStore, ServerConfig, SupportedCipherSuite,
};

use super::verifier::AcceptAnyServerCert;
use super::CryptoError;

/// Sessions a server built by [`server_config`] remembers for resumption (the oldest are
/// forgotten first).
pub const SERVER_SESSION_CACHE_SIZE: usize = 1024;
/// Session tickets a server built by [`server_config`] sends after each handshake; each
/// can be used once, so two allow two later resumptions.
pub const SERVER_TICKETS_PER_CONNECTION: usize = 2;
/// Server names a client built by [`client_config`] or [`insecure_client_config`] keeps
/// tickets for (the in-memory `rustls::client::Resumption` store).
pub const CLIENT_SESSION_CACHE_SIZE: usize = 256;

/// Which TLS 1.3 cipher suites a configuration offers (client) or accepts (server).
///
/// The interop runner's `chacha20` test case, for instance, needs a handshake that can
/// only end in `TLS13_CHACHA20_POLY1305_SHA256`: use [`CipherSuiteSelection::ChaCha20Only`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CipherSuiteSelection {
    /// Every QUIC-capable TLS 1.3 suite of the provider, in its preference order.
    #[default]
    All,
    /// Only `TLS13_CHACHA20_POLY1305_SHA256`.
    ChaCha20Only,
    /// Only `TLS13_AES_128_GCM_SHA256`.
    Aes128Only,
    /// Only `TLS13_AES_256_GCM_SHA384`.
    Aes256Only,
}

impl CipherSuiteSelection {
    /// Whether `suite` is part of this selection.
    pub fn allows(self, suite: CipherSuite) -> bool {
        match self {
            CipherSuiteSelection::All => true,
            CipherSuiteSelection::ChaCha20Only => {
                suite == CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            }
            CipherSuiteSelection::Aes128Only => suite == CipherSuite::TLS13_AES_128_GCM_SHA256,
            CipherSuiteSelection::Aes256Only => suite == CipherSuite::TLS13_AES_256_GCM_SHA384,
        }
    }
}

/// The ring provider restricted to QUIC-capable TLS 1.3 suites allowed by `selection`.
fn provider(selection: CipherSuiteSelection) -> Arc<CryptoProvider> {
    restrict(rustls::crypto::ring::default_provider(), selection)
}

/// `base` restricted to its QUIC-capable TLS 1.3 suites allowed by `selection`.
pub(super) fn restrict(
    base: CryptoProvider,
    selection: CipherSuiteSelection,
) -> Arc<CryptoProvider> {
    let cipher_suites = base
        .cipher_suites
        .iter()
        .copied()
        .filter(|cs| match cs {
            // RFC 9001 §5.3: a suite is usable only if it defines header protection.
            SupportedCipherSuite::Tls13(s) => s.quic.is_some() && selection.allows(cs.suite()),
            SupportedCipherSuite::Tls12(_) => false,
        })
        .collect();
    Arc::new(CryptoProvider {
        cipher_suites,
        ..base
    })
}

fn alpn_list(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.to_vec()).collect()
}

/// Build a QUIC server configuration: TLS 1.3 only, ring provider, no client
/// authentication, a single certificate chain.
///
/// `alpn` lists the application protocols the server accepts, most preferred first; when
/// it is non-empty, a client offering none of them is refused with the
/// `no_application_protocol` alert (CRYPTO_ERROR 0x178, RFC 9001 §8.1).
/// Session resumption and 0-RTT (RFC 9001 §4.5, §4.6) are on: the server keeps its
/// sessions in an in-memory, stateful store ([`SERVER_SESSION_CACHE_SIZE`] entries) and
/// sends [`SERVER_TICKETS_PER_CONNECTION`] tickets after each handshake, each allowing
/// early data (`max_early_data_size = u32::MAX`, the only non-zero value QUIC permits).
/// Tickets are single-use: see the anti-replay notes in the crate docs. To disable 0-RTT
/// entirely set `max_early_data_size = 0` on the result (tickets then carry no early-data
/// permission), or keep it and set [`crate::config::ServerConfig::zero_rtt`] to false to
/// reject early data per endpoint configuration while still resuming sessions.
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
    suites: CipherSuiteSelection,
    key_log: Option<Arc<dyn KeyLog>>,
) -> Result<ServerConfig, CryptoError> {
    server_config_from(
        ServerConfig::builder_with_provider(provider(suites)),
        cert_chain,
        key,
        alpn,
        key_log,
    )
}

/// [`server_config`] on a given rustls builder (provider and time source chosen).
pub(super) fn server_config_from(
    builder: rustls::ConfigBuilder<ServerConfig, rustls::WantsVersions>,
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
    key_log: Option<Arc<dyn KeyLog>>,
) -> Result<ServerConfig, CryptoError> {
    let mut config = builder
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)?;
    config.alpn_protocols = alpn_list(alpn);
    // RFC 9001 §4.6.1: QUIC servers offering 0-RTT set max_early_data_size to
    // 0xffffffff (rustls accepts only 0 or u32::MAX for QUIC). rustls allows early data
    // only with stateful resumption (RFC 8446 §8.1 single-use tickets), which is why the
    // store is a session cache and no `ticketer` is installed.
    config.max_early_data_size = u32::MAX;
    config.session_storage =
        rustls::server::ServerSessionMemoryCache::new(SERVER_SESSION_CACHE_SIZE);
    config.send_tls13_tickets = SERVER_TICKETS_PER_CONNECTION;
    if let Some(key_log) = key_log {
        config.key_log = key_log;
    }
    Ok(config)
}

/// Build a QUIC client configuration that validates the server's certificate chain
/// against `roots` and its name against the name given to [`super::TlsSession::client`].
///
/// `alpn` lists the offered application protocols, most preferred first. rustls fails the
/// handshake with `no_application_protocol` if ALPN was offered and the server selects none
/// (RFC 9001 §8.1).
pub fn client_config(
    roots: RootCertStore,
    alpn: &[&[u8]],
    suites: CipherSuiteSelection,
    key_log: Option<Arc<dyn KeyLog>>,
) -> Result<ClientConfig, CryptoError> {
    // An empty root store is allowed: every server certificate is then rejected with
    // `unknown_ca`, which is the honest outcome.
    client_config_from(
        ClientConfig::builder_with_provider(provider(suites)),
        roots,
        alpn,
        key_log,
    )
}

/// [`client_config`] on a given rustls builder (provider and time source chosen).
pub(super) fn client_config_from(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVersions>,
    roots: RootCertStore,
    alpn: &[&[u8]],
    key_log: Option<Arc<dyn KeyLog>>,
) -> Result<ClientConfig, CryptoError> {
    let mut config = builder
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    finish_client(&mut config, alpn, key_log);
    Ok(config)
}

/// Build a QUIC client configuration that accepts **any** server certificate.
///
/// # ⚠ Interop testing only
/// This configuration performs **no authentication of the server**: the certificate
/// chain, its issuer, validity period and server name are all ignored. Only the
/// handshake signature is checked (proving the server holds the key of the certificate it
/// sent — *any* certificate). Anyone on the path can impersonate the server. Use it only
/// against test servers with self-signed certificates (e.g. the QUIC interop runner);
/// never in production.
pub fn insecure_client_config(
    alpn: &[&[u8]],
    suites: CipherSuiteSelection,
    key_log: Option<Arc<dyn KeyLog>>,
) -> Result<ClientConfig, CryptoError> {
    insecure_client_config_from(
        ClientConfig::builder_with_provider(provider(suites)),
        alpn,
        key_log,
    )
}

/// [`insecure_client_config`] on a given rustls builder (provider and time source chosen).
pub(super) fn insecure_client_config_from(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::WantsVersions>,
    alpn: &[&[u8]],
    key_log: Option<Arc<dyn KeyLog>>,
) -> Result<ClientConfig, CryptoError> {
    let verifier = Arc::new(AcceptAnyServerCert::new(
        builder.crypto_provider().signature_verification_algorithms,
    ));
    let mut config = builder
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    finish_client(&mut config, alpn, key_log);
    Ok(config)
}

fn finish_client(config: &mut ClientConfig, alpn: &[&[u8]], key_log: Option<Arc<dyn KeyLog>>) {
    config.alpn_protocols = alpn_list(alpn);
    // Session tickets are remembered in memory, per server name, in this configuration:
    // every connection made with (a clone of the `Arc` of) it can resume. The QUIC
    // transport parameters the server sent are stored with each ticket (RFC 9000
    // §7.4.1) and come back when the ticket is used.
    config.resumption = rustls::client::Resumption::in_memory_sessions(CLIENT_SESSION_CACHE_SIZE);
    // Offer 0-RTT when a ticket allows it (RFC 9001 §4.6.1); whether data is actually
    // sent early is the application's choice (it writes before the handshake ends).
    config.enable_early_data = true;
    if let Some(key_log) = key_log {
        config.key_log = key_log;
    }
}
