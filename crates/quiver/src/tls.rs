//! rustls configurations for QUIC (RFC 9001): TLS 1.3 only, `ring` provider, ALPN, key
//! logging, self-signed certificates and PEM loading.
//!
//! This module is the one place where the runtime builds TLS configurations, so it can be
//! swapped for `quiver_proto::crypto`'s builders without touching anything else.
//!
//! Every configuration built here installs [`rustls::KeyLogFile`], which writes TLS secrets
//! in the NSS key log format to the file named by the `SSLKEYLOGFILE` environment variable
//! (and does nothing when the variable is unset), so captures can be decrypted in
//! Wireshark.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CipherSuite, DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls rejected the configuration (bad key, no usable cipher suite, ...).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
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

/// Which cipher suites a configuration may negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CipherSuites {
    /// All TLS 1.3 suites of the `ring` provider (AES-128-GCM, AES-256-GCM, ChaCha20).
    #[default]
    All,
    /// Only `TLS13_CHACHA20_POLY1305_SHA256` (the interop runner's `chacha20` test).
    ///
    /// Initial packets are still protected with AES-128-GCM as RFC 9001 §5.2 requires;
    /// that suite is derived by the QUIC core, not negotiated by TLS.
    ChaCha20Only,
}

/// The `ring` crypto provider, optionally restricted to ChaCha20-Poly1305.
pub fn provider(suites: CipherSuites) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if suites == CipherSuites::ChaCha20Only {
        provider
            .cipher_suites
            .retain(|s| s.suite() == CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    }
    Arc::new(provider)
}

/// A server configuration: TLS 1.3 only (RFC 9001 §4.2), given certificate chain and key,
/// ALPN protocols in preference order, key logging.
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider(CipherSuites::All))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    // RFC 9001 §4.6.1: a server that does not accept 0-RTT must not advertise early data;
    // rustls' default of 0 does exactly that.
    config.max_early_data_size = 0;
    Ok(config)
}

/// A client configuration verifying servers against `roots` (WebPKI rules).
pub fn client_config(
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
    suites: CipherSuites,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider(suites))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(config)
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
    let provider = provider(suites);
    let verifier = Arc::new(AcceptAnyServerCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(config)
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

/// Accepts every certificate but checks handshake signatures; see
/// [`insecure_client_config`].
#[derive(Debug)]
struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
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
        assert_eq!(suites, vec![CipherSuite::TLS13_CHACHA20_POLY1305_SHA256]);
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
