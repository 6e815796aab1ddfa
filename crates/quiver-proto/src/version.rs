//! Version negotiation: QUIC v1 (RFC 9000) and v2 (RFC 9369), incompatible version
//! negotiation with Version Negotiation packets (RFC 9000 §6) and compatible version
//! negotiation with the `version_information` transport parameter (RFC 9368).
//!
//! How a connection ends up in a version:
//! - The client's first Initial uses its *original version*
//!   ([`crate::config::ClientConfig::version`]); its `version_information` lists that version as
//!   chosen (and available, see below).
//! - A server that does not speak the original version answers with a Version Negotiation
//!   packet listing [`crate::config::EndpointConfig::supported_versions`]. The client starts over in
//!   the first of its versions that the server listed (*incompatible* negotiation), and
//!   later checks the server's `version_information` to detect a forged Version
//!   Negotiation packet (downgrade protection, RFC 9368 §4).
//! - A server that speaks the original version reads the client's `version_information`
//!   from the ClientHello before starting TLS and picks the first version of its own
//!   preference list that the client lists and that is [`compatible`] with the original one
//!   (*compatible* negotiation, RFC 9368 §2.3). From then on it sends in the negotiated
//!   version, and still accepts the client's Initials in the original one.
//! - A Quiver *client* lists only its original version as available: rustls fixes the
//!   HKDF labels of the Handshake and 1-RTT keys ("quic key" / "quicv2 key") when the TLS
//!   session is created, so the client could not follow a switch. To use v2, a Quiver
//!   client starts in v2 ([`crate::config::ClientConfig::version`]) and keeps v1 in
//!   `available_versions` for servers that answer with Version Negotiation. Peers that
//!   derive keys themselves (aioquic) are switched by a Quiver server.
//! - Both sides validate the peer's `version_information` once the handshake completes;
//!   a mismatch closes with VERSION_NEGOTIATION_ERROR (0x11).

use bytes::BufMut;

use crate::error::{TransportError, TransportErrorCode};

pub use crate::packet::{VERSION_1, VERSION_2};

/// The `version_information` transport parameter (RFC 9368 §3): the version the sender
/// uses for this connection and the versions it supports, in its order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInformation {
    /// The version of the sender's packets when it sent the parameter; never 0.
    pub chosen: u32,
    /// Versions the sender would use, preferred first; none is 0.
    pub available: Vec<u32>,
}

impl VersionInformation {
    /// Number of bytes [`Self::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        4 * (1 + self.available.len())
    }

    /// Append the parameter value (without id and length) to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.put_u32(self.chosen);
        for v in &self.available {
            buf.put_u32(*v);
        }
    }

    /// Decode a parameter value. A length that is not a positive multiple of four, or a
    /// zero version in either field, is TRANSPORT_PARAMETER_ERROR (RFC 9368 §3). Never
    /// panics.
    pub fn decode(value: &[u8]) -> Result<Self, TransportError> {
        if value.is_empty() || !value.len().is_multiple_of(4) {
            return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
                "version_information length is not a positive multiple of 4",
            ));
        }
        let mut versions = value
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        let chosen = versions.next().unwrap_or(0);
        let available: Vec<u32> = versions.collect();
        if chosen == 0 || available.contains(&0) {
            return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
                "version_information lists version 0",
            ));
        }
        Ok(Self { chosen, available })
    }
}

/// Whether a connection that started in `from` can be switched to `to` by compatible
/// version negotiation. v1 and v2 are compatible with each other (RFC 9369 §4): the
/// ClientHello means the same in both.
pub fn compatible(from: u32, to: u32) -> bool {
    from == to || matches!((from, to), (VERSION_1, VERSION_2) | (VERSION_2, VERSION_1))
}

/// The version a server negotiates (RFC 9368 §2.3): the first version of the server's
/// preference list `server` that the client listed as available (`client_available`,
/// from its `version_information`) and that is compatible with the `original` version
/// of the client's first Initial. Without a listed version, the original one.
pub fn server_choose(server: &[u32], original: u32, client_available: &[u32]) -> u32 {
    server
        .iter()
        .copied()
        .find(|v| *v == original || (client_available.contains(v) && compatible(original, *v)))
        .unwrap_or(original)
}

/// The version a client starts over with after a Version Negotiation packet listing
/// `offered` (RFC 9000 §6.2): the first of its own versions `client` that the server
/// offers, if any.
pub fn client_choose(client: &[u32], offered: &[u32]) -> Option<u32> {
    client.iter().copied().find(|v| offered.contains(v))
}

/// VERSION_NEGOTIATION_ERROR (0x11, RFC 9368 §4) with a reason.
pub(crate) fn negotiation_error(reason: &'static str) -> TransportError {
    TransportError::new(TransportErrorCode::VERSION_NEGOTIATION_ERROR, reason)
}

/// What a client learned while negotiating, to check the server's `version_information`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientNegotiation {
    /// Every version the client would use, preferred first (original version first).
    pub(crate) versions: Vec<u32>,
    /// The client started over after a Version Negotiation packet.
    pub(crate) reacted_to_vn: bool,
}

impl ClientNegotiation {
    /// Validate the server's `version_information` (RFC 9368 §4) for a connection whose
    /// packets are now in `negotiated`.
    pub(crate) fn validate(
        &self,
        negotiated: u32,
        server: Option<&VersionInformation>,
    ) -> Result<(), TransportError> {
        let Some(info) = server else {
            if self.reacted_to_vn {
                // Without the parameter a forged Version Negotiation cannot be detected.
                return Err(negotiation_error(
                    "server sent no version_information after version negotiation",
                ));
            }
            return Ok(());
        };
        if info.chosen != negotiated {
            return Err(negotiation_error(
                "server's chosen version differs from its packets' version",
            ));
        }
        if self.reacted_to_vn {
            // Downgrade protection: with the server's real list we would have picked the
            // same version that the Version Negotiation packet led us to.
            if client_choose(&self.versions, &info.available) != Some(negotiated) {
                return Err(negotiation_error(
                    "version negotiation was forged (downgrade detected)",
                ));
            }
        }
        Ok(())
    }
}

/// Validate a client's `version_information` at the server (RFC 9368 §4): its chosen
/// version is the version of the client's first Initial (`original`) and one of its
/// available versions.
pub(crate) fn server_validate(
    original: u32,
    client: Option<&VersionInformation>,
) -> Result<(), TransportError> {
    let Some(info) = client else {
        return Ok(());
    };
    if !info.available.is_empty() && !info.available.contains(&info.chosen) {
        return Err(TransportError::TRANSPORT_PARAMETER_ERROR(
            "version_information's chosen version is not among its available versions",
        ));
    }
    if info.chosen != original {
        return Err(negotiation_error(
            "client's chosen version differs from its first Initial's version",
        ));
    }
    Ok(())
}

/// Result of looking for the transport parameters in the start of a ClientHello.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HelloScan<'a> {
    /// The ClientHello is not complete yet.
    NeedMore,
    /// The `quic_transport_parameters` extension's value.
    Found(&'a [u8]),
    /// Not a ClientHello, malformed, or without the extension.
    Absent,
}

/// Largest ClientHello the server buffers before it gives up looking for the transport
/// parameters (and continues in the original version).
pub(crate) const MAX_HELLO_SCAN: usize = 16 * 1024;

/// Find the `quic_transport_parameters` extension (0x39, RFC 9001 §8.2) in the start of the
/// client's Initial CRYPTO stream, before TLS reads it, so the server can choose the
/// version for TLS (RFC 8446 §4.1.2 ClientHello layout). Never panics.
pub(crate) fn scan_client_hello(buf: &[u8]) -> HelloScan<'_> {
    fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if r.len() < n {
            return None;
        }
        let (a, b) = r.split_at(n);
        *r = b;
        Some(a)
    }
    fn len_prefixed<'a>(r: &mut &'a [u8], width: usize) -> Option<&'a [u8]> {
        let len = take(r, width)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        take(r, len)
    }
    if buf.len() < 4 {
        return HelloScan::NeedMore;
    }
    if buf[0] != 1 {
        return HelloScan::Absent; // not a ClientHello
    }
    let len = (usize::from(buf[1]) << 16) | (usize::from(buf[2]) << 8) | usize::from(buf[3]);
    let Some(mut body) = buf.get(4..4 + len) else {
        return HelloScan::NeedMore;
    };
    let mut scan = || -> Option<&[u8]> {
        take(&mut body, 2 + 32)?; // legacy_version, random
        len_prefixed(&mut body, 1)?; // legacy_session_id
        len_prefixed(&mut body, 2)?; // cipher_suites
        len_prefixed(&mut body, 1)?; // legacy_compression_methods
        let mut exts = len_prefixed(&mut body, 2)?;
        while !exts.is_empty() {
            let ty = take(&mut exts, 2)?;
            let value = len_prefixed(&mut exts, 2)?;
            if ty == [0x00, 0x39] {
                return Some(value);
            }
        }
        None
    };
    match scan() {
        Some(v) => HelloScan::Found(v),
        None => HelloScan::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decode_rejects_bad_lengths_and_zero() {
        for bad in [
            &[][..],
            &[0, 0, 0],
            &[0, 0, 0, 1, 0],
            &[0, 0, 0, 0],
            &[0, 0, 0, 1, 0, 0, 0, 0],
        ] {
            let e = VersionInformation::decode(bad).unwrap_err();
            assert_eq!(
                e.code,
                TransportErrorCode::TRANSPORT_PARAMETER_ERROR,
                "{bad:?}"
            );
        }
        let ok = VersionInformation::decode(&[0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf]).unwrap();
        assert_eq!(ok.chosen, VERSION_1);
        assert_eq!(ok.available, vec![VERSION_2]);
    }

    #[test]
    fn server_prefers_its_own_order_among_compatible_versions() {
        // Server prefers v2, client offers v2: upgrade.
        assert_eq!(
            server_choose(&[VERSION_2, VERSION_1], VERSION_1, &[VERSION_1, VERSION_2]),
            VERSION_2
        );
        // Client does not offer v2: stay.
        assert_eq!(
            server_choose(&[VERSION_2, VERSION_1], VERSION_1, &[VERSION_1]),
            VERSION_1
        );
        // Server prefers v1: stay even though the client offers v2.
        assert_eq!(
            server_choose(&[VERSION_1, VERSION_2], VERSION_1, &[VERSION_2]),
            VERSION_1
        );
        // An unknown version is never compatible.
        assert_eq!(
            server_choose(&[0x1234_5678, VERSION_1], VERSION_1, &[0x1234_5678]),
            VERSION_1
        );
    }

    #[test]
    fn downgrade_is_detected() {
        let n = ClientNegotiation {
            versions: vec![VERSION_2, VERSION_1],
            reacted_to_vn: true,
        };
        // A forged VN made us pick v1, but the server supports v2 as well.
        let info = VersionInformation {
            chosen: VERSION_1,
            available: vec![VERSION_1, VERSION_2],
        };
        let e = n.validate(VERSION_1, Some(&info)).unwrap_err();
        assert_eq!(e.code, TransportErrorCode::VERSION_NEGOTIATION_ERROR);
        // A genuine VN: the server only supports v1.
        let info = VersionInformation {
            chosen: VERSION_1,
            available: vec![VERSION_1],
        };
        n.validate(VERSION_1, Some(&info)).unwrap();
        // Missing parameter after VN.
        assert!(n.validate(VERSION_1, None).is_err());
    }

    #[test]
    fn chosen_version_must_match_packets() {
        let n = ClientNegotiation {
            versions: vec![VERSION_1, VERSION_2],
            reacted_to_vn: false,
        };
        let info = VersionInformation {
            chosen: VERSION_1,
            available: vec![VERSION_1, VERSION_2],
        };
        assert_eq!(
            n.validate(VERSION_2, Some(&info)).unwrap_err().code,
            TransportErrorCode::VERSION_NEGOTIATION_ERROR
        );
        n.validate(VERSION_2, None).unwrap();
        assert_eq!(
            server_validate(VERSION_2, Some(&info)).unwrap_err().code,
            TransportErrorCode::VERSION_NEGOTIATION_ERROR
        );
        server_validate(VERSION_1, Some(&info)).unwrap();
        let bad = VersionInformation {
            chosen: VERSION_1,
            available: vec![VERSION_2],
        };
        assert_eq!(
            server_validate(VERSION_1, Some(&bad)).unwrap_err().code,
            TransportErrorCode::TRANSPORT_PARAMETER_ERROR
        );
    }

    fn hello(exts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // compression
        let mut e = Vec::new();
        for (ty, v) in exts {
            e.extend(ty.to_be_bytes());
            e.extend((v.len() as u16).to_be_bytes());
            e.extend(*v);
        }
        body.extend((e.len() as u16).to_be_bytes());
        body.extend(e);
        let mut m = vec![1];
        m.extend(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend(body);
        m
    }

    #[test]
    fn scan_finds_transport_parameters() {
        let m = hello(&[(0x0a, b"xx"), (0x39, b"params"), (0x10, b"h3")]);
        assert_eq!(scan_client_hello(&m), HelloScan::Found(b"params"));
        assert_eq!(scan_client_hello(&m[..m.len() - 1]), HelloScan::NeedMore);
        assert_eq!(scan_client_hello(&m[..2]), HelloScan::NeedMore);
        assert_eq!(
            scan_client_hello(&hello(&[(0x0a, b"xx")])),
            HelloScan::Absent
        );
        let mut not_hello = m.clone();
        not_hello[0] = 2;
        assert_eq!(scan_client_hello(&not_hello), HelloScan::Absent);
    }

    proptest! {
        #[test]
        fn version_information_round_trips(chosen in 1u32.., available in proptest::collection::vec(1u32.., 0..8)) {
            let info = VersionInformation { chosen, available };
            let mut buf = Vec::new();
            info.encode(&mut buf);
            prop_assert_eq!(buf.len(), info.encoded_len());
            prop_assert_eq!(VersionInformation::decode(&buf).unwrap(), info);
        }

        #[test]
        fn version_information_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = VersionInformation::decode(&bytes);
        }

        #[test]
        fn scan_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = scan_client_hello(&bytes);
        }
    }
}
