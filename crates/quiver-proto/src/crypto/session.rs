//! [`TlsSession`]: one TLS 1.3 handshake carried over QUIC CRYPTO frames (RFC 9001 §4).

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::quic::{self, DirectionalKeys, Keys, PacketKeySet, Secrets};
use rustls::SupportedCipherSuite;

use super::CryptoError;
use crate::error::{TransportError, TransportErrorCode};
use crate::shared::Side;

/// New packet-protection keys produced by the handshake (RFC 9001 §4.1.4).
///
/// Returned by [`TlsSession::write_handshake`]. Bytes written to the buffer *before* the
/// call returned belong to the previous encryption level; everything the session writes
/// afterwards uses the new one. Unlike rustls' `KeyChange`, the 1-RTT variant carries no
/// key-update secrets: the session keeps them and hands out later key generations through
/// [`TlsSession::next_1rtt_keys`], so there is a single source of truth for key phases.
pub enum KeyChange {
    /// Keys for the Handshake packet-number space.
    Handshake {
        /// Header- and packet-protection keys (local: send, remote: receive).
        keys: Keys,
    },
    /// Keys for 1-RTT packets, key phase 0.
    OneRtt {
        /// Header- and packet-protection keys (local: send, remote: receive).
        keys: Keys,
    },
}

impl fmt::Debug for KeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyChange::Handshake { .. } => f.write_str("KeyChange::Handshake"),
            KeyChange::OneRtt { .. } => f.write_str("KeyChange::OneRtt"),
        }
    }
}

/// The TLS side of one QUIC connection, client or server.
///
/// Call contract:
/// 1. Feed the contents of received CRYPTO frames, in stream order and one encryption
///    level at a time, to [`read_handshake`](Self::read_handshake).
/// 2. After creating the session and after every `read_handshake`, call
///    [`write_handshake`](Self::write_handshake) until it returns `None` with nothing
///    written; send what it writes in CRYPTO frames at the current sending level, and
///    switch to the new level whenever it returns a [`KeyChange`].
/// 3. Once [`is_handshaking`](Self::is_handshaking) is false the peer's transport
///    parameters, ALPN and certificates are available; 1-RTT key updates come from
///    [`next_1rtt_keys`](Self::next_1rtt_keys).
pub struct TlsSession {
    conn: quic::Connection,
    /// Secrets for the next 1-RTT key generation (RFC 9001 §6), once 1-RTT keys exist.
    next_secrets: Option<Secrets>,
    /// The name the client asked for (client side only).
    client_server_name: Option<String>,
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("side", &self.side())
            .field("handshaking", &self.is_handshaking())
            .field("has_1rtt_secrets", &self.next_secrets.is_some())
            .finish()
    }
}

impl TlsSession {
    /// Start a client handshake for QUIC version 1 toward `server_name` (a DNS name or an
    /// IP address literal), sending `transport_params` (already encoded, RFC 9000 §18) in
    /// the `quic_transport_parameters` extension.
    pub fn client(
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
        transport_params: Vec<u8>,
    ) -> Result<Self, CryptoError> {
        Self::client_for_version(config, super::QUIC_V1, server_name, transport_params)
    }

    /// Like [`client`](Self::client), for QUIC `version`: the version selects the HKDF
    /// labels of the Handshake, 0-RTT and 1-RTT keys and of key updates ("quic key" in
    /// v1, "quicv2 key" in v2, RFC 9369 §3.3.2).
    pub fn client_for_version(
        config: Arc<rustls::ClientConfig>,
        version: u32,
        server_name: &str,
        transport_params: Vec<u8>,
    ) -> Result<Self, CryptoError> {
        let quic_version =
            super::rustls_version(version).ok_or(CryptoError::UnsupportedVersion(version))?;
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| CryptoError::InvalidServerName(server_name.to_owned()))?;
        let conn = quic::ClientConnection::new(config, quic_version, name, transport_params)?;
        Ok(Self {
            conn: conn.into(),
            next_secrets: None,
            client_server_name: Some(server_name.to_owned()),
        })
    }

    /// Start a server handshake for QUIC version 1, answering with `transport_params`
    /// (already encoded, RFC 9000 §18).
    pub fn server(
        config: Arc<rustls::ServerConfig>,
        transport_params: Vec<u8>,
    ) -> Result<Self, CryptoError> {
        Self::server_for_version(config, super::QUIC_V1, transport_params)
    }

    /// Like [`server`](Self::server), for QUIC `version` (see
    /// [`client_for_version`](Self::client_for_version)).
    pub fn server_for_version(
        config: Arc<rustls::ServerConfig>,
        version: u32,
        transport_params: Vec<u8>,
    ) -> Result<Self, CryptoError> {
        let quic_version =
            super::rustls_version(version).ok_or(CryptoError::UnsupportedVersion(version))?;
        let conn = quic::ServerConnection::new(config, quic_version, transport_params)?;
        Ok(Self {
            conn: conn.into(),
            next_secrets: None,
            client_server_name: None,
        })
    }

    // ---- getters ----

    /// Which end of the connection this session is.
    pub fn side(&self) -> Side {
        match self.conn {
            quic::Connection::Client(_) => Side::Client,
            quic::Connection::Server(_) => Side::Server,
        }
    }

    /// Whether the handshake is still in progress (RFC 9001 §4.1.1: it is complete once
    /// the Finished message has been both sent and received and verified).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The peer's encoded transport parameters (RFC 9001 §8.2), once received. Decoding
    /// and validation belong to [`crate::transport_params`].
    pub fn peer_transport_params(&self) -> Option<&[u8]> {
        self.conn.quic_transport_parameters()
    }

    /// The negotiated application protocol (RFC 9001 §8.1), once known.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// On a client, the name it connected to; on a server, the SNI the client sent (once
    /// received; `None` if the client sent none).
    pub fn server_name(&self) -> Option<String> {
        match &self.conn {
            quic::Connection::Client(_) => self.client_server_name.clone(),
            quic::Connection::Server(s) => s.server_name().map(str::to_owned),
        }
    }

    /// The certificate chain the peer presented, end entity first, once received.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The negotiated cipher suite, once the ServerHello has been processed.
    pub fn negotiated_cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.conn.negotiated_cipher_suite()
    }

    /// 0-RTT keys (RFC 9001 §4.6). A client has them right after [`Self::client`] when
    /// it resumes with a ticket that allows early data and its configuration enables
    /// early data; a server has them after reading a ClientHello whose early data it
    /// accepted (never after [`Self::reject_early_data`]).
    pub fn zero_rtt_keys(&self) -> Option<DirectionalKeys> {
        self.conn.zero_rtt_keys()
    }

    /// Client: whether the server accepted early data (meaningful once the handshake is
    /// complete). Always false on a server.
    pub fn is_early_data_accepted(&self) -> bool {
        match &self.conn {
            quic::Connection::Client(c) => c.is_early_data_accepted(),
            quic::Connection::Server(_) => false,
        }
    }

    /// Server: refuse early data whatever the ticket allows. Must be called before the
    /// ClientHello is read. No effect on a client.
    pub fn reject_early_data(&mut self) {
        if let quic::Connection::Server(s) = &mut self.conn {
            s.reject_early_data();
        }
    }

    /// Whether the handshake resumed an earlier session from a ticket (RFC 8446 §2.2),
    /// once known.
    pub fn is_resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    // ---- handle / poll ----

    /// Process handshake bytes received from the peer in CRYPTO frames of one encryption
    /// level, in order.
    ///
    /// A TLS failure becomes a transport error carrying the TLS alert as CRYPTO_ERROR
    /// `0x100 + alert` (RFC 9001 §4.8); failures without an alert map to
    /// INTERNAL_ERROR (local problems) or PROTOCOL_VIOLATION (anything else).
    pub fn read_handshake(&mut self, data: &[u8]) -> Result<(), TransportError> {
        self.conn
            .read_hs(data)
            .map_err(|e| tls_error(&e, self.conn.alert()))
    }

    /// Append handshake bytes to send to `buf`; returns new keys when the sending
    /// encryption level changes (see [`KeyChange`]).
    pub fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<KeyChange> {
        match self.conn.write_hs(buf)? {
            quic::KeyChange::Handshake { keys } => Some(KeyChange::Handshake { keys }),
            quic::KeyChange::OneRtt { keys, next } => {
                self.next_secrets = Some(next);
                Some(KeyChange::OneRtt { keys })
            }
        }
    }

    /// Packet keys for the next 1-RTT key phase (RFC 9001 §6): the first call yields
    /// generation 1, the next generation 2, and so on. Header-protection keys never
    /// change. `None` until the 1-RTT keys have been handed out by
    /// [`write_handshake`](Self::write_handshake).
    pub fn next_1rtt_keys(&mut self) -> Option<PacketKeySet> {
        Some(self.next_secrets.as_mut()?.next_packet_keys())
    }
}

/// Map a rustls failure to the QUIC error that closes the connection (RFC 9001 §4.8).
fn tls_error(err: &rustls::Error, alert: Option<rustls::AlertDescription>) -> TransportError {
    let code = match alert {
        Some(alert) => TransportErrorCode::crypto(u8::from(alert)),
        None => match err {
            rustls::Error::General(_)
            | rustls::Error::Other(_)
            | rustls::Error::FailedToGetCurrentTime
            | rustls::Error::FailedToGetRandomBytes
            | rustls::Error::EncryptError
            | rustls::Error::InconsistentKeys(_) => TransportErrorCode::INTERNAL_ERROR,
            _ => TransportErrorCode::PROTOCOL_VIOLATION,
        },
    };
    TransportError::new(code, format!("TLS: {err}"))
}
