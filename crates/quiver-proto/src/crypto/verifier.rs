//! A server-certificate verifier that skips certificate validation — for interop testing.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// A [`ServerCertVerifier`] that accepts **any** server certificate.
///
/// # ⚠ Interop testing only
/// The chain, its trust anchor, its validity period and the server name are **not**
/// checked, so the server is not authenticated at all. The handshake signature *is*
/// verified with the provider's algorithms, so the peer must still hold the private key
/// of the (arbitrary) certificate it presents and the transcript stays bound to it. This
/// exists so the client can talk to interop-test servers with self-signed certificates;
/// never use it where security matters.
#[derive(Debug)]
pub struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyServerCert {
    /// A verifier that checks handshake signatures with `algorithms` (typically the
    /// crypto provider's `signature_verification_algorithms`).
    pub fn new(algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { algorithms }
    }
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
        // Deliberately no chain, name or time validation (see the type's docs).
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
        // RFC 8446 §4.4.3: CertificateVerify proves possession of the certificate's key.
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
