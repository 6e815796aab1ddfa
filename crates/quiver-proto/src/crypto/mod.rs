//! The TLS 1.3 layer of the QUIC core (RFC 9001), built on [`rustls::quic`] with the
//! `ring` crypto provider.
//!
//! QUIC does not run TLS over a record layer: TLS handshake messages travel in CRYPTO
//! frames, one byte stream per encryption level, and TLS hands QUIC the packet-protection
//! keys for each level as it derives them (RFC 9001 §4). This module is the narrow waist
//! between the connection state machine and rustls:
//!
//! - [`TlsSession`] wraps one rustls QUIC connection (client or server). The connection
//!   feeds it the CRYPTO bytes it receives ([`TlsSession::read_handshake`]) and drains the
//!   bytes to send ([`TlsSession::write_handshake`]). Every [`KeyChange`] returned by
//!   `write_handshake` moves the *sending* level up (Initial → Handshake → 1-RTT); bytes
//!   written before the key change belong to the old level.
//! - [`initial_keys`] derives the Initial keys from the client's first Destination
//!   Connection ID (RFC 9001 §5.2).
//! - [`server_config`], [`client_config`] and [`insecure_client_config`] build rustls
//!   configurations restricted to TLS 1.3 and to QUIC-capable cipher suites, optionally
//!   narrowed by [`CipherSuiteSelection`] and with an optional [`rustls::KeyLog`].
//!
//! With the `deterministic-crypto` feature, `deterministic` builds the same
//! configurations on a seeded provider and a virtual clock, so simulated handshakes
//! replay bit for bit (tests and simulations only).
//!
//! Nothing here performs I/O or reads a clock except what rustls itself does: certificate
//! validation in [`client_config`] uses rustls' own notion of the current time.
//!
//! ## Driving a handshake
//! ```text
//! client.write_handshake(&mut buf)     → ClientHello          (Initial)
//! server.read_handshake(ClientHello)
//! server.write_handshake(&mut buf)     → ServerHello          (Initial)   + KeyChange::Handshake
//! server.write_handshake(&mut buf)     → EE, Cert, CV, Fin    (Handshake) + KeyChange::OneRtt
//! client.read_handshake(...)           (per level)
//! client.write_handshake(&mut buf)     → (nothing)                        + KeyChange::Handshake
//! client.write_handshake(&mut buf)     → Finished             (Handshake) + KeyChange::OneRtt
//! server.read_handshake(Finished)      → handshake complete; tickets follow at 1-RTT
//! ```

mod config;
#[cfg(feature = "deterministic-crypto")]
pub mod deterministic;
mod session;
mod verifier;

#[cfg(test)]
mod tests;

pub use config::{
    client_config, insecure_client_config, server_config, CipherSuiteSelection,
    CLIENT_SESSION_CACHE_SIZE, SERVER_SESSION_CACHE_SIZE, SERVER_TICKETS_PER_CONNECTION,
};
pub use session::{KeyChange, TlsSession};
pub use verifier::AcceptAnyServerCert;

pub use rustls::quic::{DirectionalKeys, HeaderProtectionKey, Keys, PacketKey, PacketKeySet};

use crate::cid::ConnectionId;
use crate::shared::Side;

/// QUIC version 1 (RFC 9000).
pub const QUIC_V1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const QUIC_V2: u32 = 0x6b33_43cf;

/// Errors building TLS configurations, sessions or keys. These are local errors (bad
/// configuration or arguments), never caused by the peer; handshake failures caused by
/// the peer are reported as [`crate::TransportError`] by [`TlsSession::read_handshake`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// rustls rejected the configuration (no usable cipher suite, bad key, ...).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The server name is neither a valid DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// The QUIC version has no known key schedule.
    #[error("unsupported QUIC version {0:#010x}")]
    UnsupportedVersion(u32),
    /// The crypto provider lacks the cipher suite that Initial packets require.
    #[error("crypto provider lacks TLS13_AES_128_GCM_SHA256 for QUIC")]
    MissingInitialSuite,
}

/// The rustls key-schedule variant for a QUIC version number, if known.
///
/// Versions 1 and 2 and the late drafts 29–32 (whose salt rustls calls `V1Draft`) are
/// supported.
pub fn rustls_version(version: u32) -> Option<rustls::quic::Version> {
    match version {
        QUIC_V1 => Some(rustls::quic::Version::V1),
        QUIC_V2 => Some(rustls::quic::Version::V2),
        0xff00_001d..=0xff00_0020 => Some(rustls::quic::Version::V1Draft),
        _ => None,
    }
}

/// Convert our [`Side`] to rustls' equivalent.
pub(crate) fn rustls_side(side: Side) -> rustls::Side {
    match side {
        Side::Client => rustls::Side::Client,
        Side::Server => rustls::Side::Server,
    }
}

/// Derive the Initial packet-protection keys for `side` (RFC 9001 §5.2).
///
/// `dst_cid` is the Destination Connection ID of the client's first Initial packet
/// (after a Retry, the one the client chose in response to it). Initial packets always
/// use `TLS13_AES_128_GCM_SHA256`, whatever suite the handshake later negotiates.
/// `local` keys protect packets we send, `remote` keys those we receive.
pub fn initial_keys(version: u32, dst_cid: &ConnectionId, side: Side) -> Result<Keys, CryptoError> {
    let version = rustls_version(version).ok_or(CryptoError::UnsupportedVersion(version))?;
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .ok_or(CryptoError::MissingInitialSuite)?;
    Ok(suite.keys(dst_cid.as_bytes(), rustls_side(side), version))
}
