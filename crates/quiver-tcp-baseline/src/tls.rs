//! TLS configurations for the baselines: TLS 1.3 only, `ring` provider, and a matching
//! self-signed server/client pair.
//!
//! The pair uses an Ed25519 certificate: Ed25519 signatures have a fixed length, so every
//! handshake has the same size and a simulated run replays exactly for a given seed
//! (ECDSA signatures vary by a byte or two from run to run). Session tickets and
//! resumption are off, so every n-conn connection pays a full handshake, as a QUIC
//! connection without 0-RTT does.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::BaselineError;

/// A server configuration and a client configuration that trusts it.
#[derive(Debug, Clone)]
pub struct TlsPair {
    /// Server side: the self-signed certificate and its key.
    pub server: Arc<rustls::ServerConfig>,
    /// Client side: trusts exactly the server's certificate.
    pub client: Arc<rustls::ClientConfig>,
}

impl TlsPair {
    /// Generates a self-signed Ed25519 certificate for `names` (DNS names or IP
    /// addresses) and the two configurations.
    pub fn self_signed(names: &[&str]) -> Result<Self, BaselineError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let cert = rcgen::CertificateParams::new(names)?.self_signed(&key)?;
        let der: CertificateDer<'static> = cert.der().clone();
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der.clone())?;
        Ok(Self {
            server: Arc::new(server_config(vec![der], key)?),
            client: Arc::new(client_config(roots)?),
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS 1.3 server configuration without session tickets.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, BaselineError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A TLS 1.3 client configuration trusting `roots`, with resumption disabled.
pub fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, BaselineError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}
