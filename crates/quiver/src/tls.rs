//! rustls configurations for QUIC (RFC 9001): TLS 1.3 only, `ring` provider, ALPN, key
//! logging, self-signed certificates and PEM loading.
//!
//! The builders delegate to `quiver_proto::crypto` (one implementation of the QUIC TLS
//! policy), adding key logging and certificate helpers that need file access.
//!
//! Every configuration built here installs [`rustls::KeyLogFile`], which writes TLS secrets
//! in the NSS key log format to the file named by the `SSLKEYLOGFILE` environment variable
//! (and does nothing when the variable is unset), so captures can be decrypted in
//! Wireshark.

use quiver_proto::crypto::{self, CryptoError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::Path;
use std::sync::Arc;

pub use quiver_proto::crypto::CipherSuiteSelection as CipherSuites;

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The QUIC TLS builders rejected the configuration (bad key, no usable suite, ...).
    #[error("TLS configuration: {0}")]
    Crypto(#[from] CryptoError),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A PEM file could not be read or parsed.
    #[error("{path}: {source}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// A PEM file held no certificate.
    #[error("{0}: no certificate found")]
    NoCertificate(String),
}

fn key_log() -> Option<Arc<dyn rustls::KeyLog>> {
    Some(Arc::new(rustls::KeyLogFile::new()))
}

/// A server configuration: TLS 1.3 only (RFC 9001 §4.2), given certificate chain and key,
/// ALPN protocols in preference order, key logging. Built by
/// [`quiver_proto::crypto::server_config`].
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    Ok(crypto::server_config(
        cert_chain,
        key,
        alpn,
        CipherSuites::All,
        key_log(),
    )?)
}

/// A client configuration verifying servers against `roots` (WebPKI rules).
pub fn client_config(
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
    suites: CipherSuites,
) -> Result<rustls::ClientConfig, TlsError> {
    Ok(crypto::client_config(roots, alpn, suites, key_log())?)
}

/// **INSECURE, for interop tests only.** A client configuration that accepts *any* server
/// certificate — no chain, name or expiry check — so it offers no protection against an
/// active attacker. It still verifies the server's handshake signature (CertificateVerify)
/// against the presented certificate, so the handshake itself is exercised fully.
///
/// The quic-interop-runner uses self-signed certificates without distributing a root;
/// that is the only reason this exists. Never use it to talk to a real server.
pub fn insecure_client_config(
    alpn: &[&[u8]],
    suites: CipherSuites,
) -> Result<rustls::ClientConfig, TlsError> {
    Ok(crypto::insecure_client_config(alpn, suites, key_log())?)
}

/// A freshly generated self-signed certificate (ECDSA P-256) for `names` and its key.
pub fn self_signed(
    names: &[&str],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names)?;
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    Ok((vec![certified.cert.der().clone()], key.into()))
}

/// Load a certificate chain and a private key from PEM files.
pub fn load_pem(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let pem_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Pem { path, source }
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(pem_err(cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(cert_path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.display().to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(pem_err(key_path))?;
    Ok((certs, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_all_configs() {
        let (certs, key) = self_signed(&["localhost"]).expect("cert");
        let server = server_config(certs.clone(), key, &[b"hq-interop"]).expect("server");
        assert_eq!(server.alpn_protocols, vec![b"hq-interop".to_vec()]);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certs[0].clone()).expect("root");
        client_config(roots, &[b"hq-interop"], CipherSuites::All).expect("client");
        let insecure =
            insecure_client_config(&[b"hq-interop"], CipherSuites::ChaCha20Only).expect("insecure");
        let suites: Vec<_> = insecure
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            suites,
            vec![rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256]
        );
    }

    #[test]
    fn missing_pem_is_a_clean_error() {
        let err = load_pem(
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key"),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
