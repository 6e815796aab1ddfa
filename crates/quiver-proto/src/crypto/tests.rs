//! In-memory handshakes between a client and a server [`TlsSession`], plus known-answer
//! tests for Initial keys (RFC 9001 Appendix A).

use std::sync::{Arc, Mutex, OnceLock};

use hex_literal::hex;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{CipherSuite, RootCertStore};

use super::*;
use crate::error::{TransportError, TransportErrorCode};
use crate::shared::Epoch;

const ALPN: &[u8] = b"hq-interop";
const CLIENT_PARAMS: &[u8] = b"client transport parameters";
const SERVER_PARAMS: &[u8] = b"server transport parameters";

/// One self-signed identity for "localhost", generated once (key generation is slow).
fn identity() -> &'static (CertificateDer<'static>, PrivatePkcs8KeyDer<'static>) {
    static ID: OnceLock<(CertificateDer<'static>, PrivatePkcs8KeyDer<'static>)> = OnceLock::new();
    ID.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("rcgen self-signed certificate");
        (
            ck.cert.der().clone(),
            PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()),
        )
    })
}

fn server_cfg(alpn: &[&[u8]], suites: CipherSuiteSelection) -> Arc<rustls::ServerConfig> {
    let (cert, key) = identity();
    let key = PrivateKeyDer::Pkcs8(key.clone_key());
    Arc::new(server_config(vec![cert.clone()], key, alpn, suites, None).expect("server config"))
}

fn insecure_cfg(alpn: &[&[u8]], suites: CipherSuiteSelection) -> Arc<rustls::ClientConfig> {
    Arc::new(insecure_client_config(alpn, suites, None).expect("client config"))
}

fn new_server(cfg: Arc<rustls::ServerConfig>) -> TlsSession {
    TlsSession::server(cfg, SERVER_PARAMS.to_vec()).expect("server session")
}

fn new_client(cfg: Arc<rustls::ClientConfig>, name: &str) -> TlsSession {
    TlsSession::client(cfg, name, CLIENT_PARAMS.to_vec()).expect("client session")
}

/// One endpoint of the simulated connection: what it can decrypt, where it sends, and
/// the CRYPTO bytes waiting per encryption level until it has the keys to read them.
struct Peer {
    tls: TlsSession,
    send_epoch: Epoch,
    can_read: [bool; 3],
    inbox: [Vec<u8>; 3],
    handshake_keys: Option<Keys>,
    one_rtt_keys: Option<Keys>,
    /// Epochs this peer sent handshake bytes at, in order.
    sent: Vec<Epoch>,
}

impl Peer {
    fn new(tls: TlsSession) -> Self {
        Self {
            tls,
            send_epoch: Epoch::Initial,
            can_read: [true, false, false],
            inbox: Default::default(),
            handshake_keys: None,
            one_rtt_keys: None,
            sent: Vec::new(),
        }
    }

    /// Read whatever is readable, then drain outgoing bytes. Returns the bytes to deliver
    /// to the peer, tagged with their encryption level.
    fn step(&mut self) -> Result<Vec<(Epoch, Vec<u8>)>, TransportError> {
        for epoch in Epoch::ALL {
            if self.can_read[epoch.idx()] && !self.inbox[epoch.idx()].is_empty() {
                let data = std::mem::take(&mut self.inbox[epoch.idx()]);
                self.tls.read_handshake(&data)?;
            }
        }
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            let change = self.tls.write_handshake(&mut buf);
            if !buf.is_empty() {
                self.sent.push(self.send_epoch);
                out.push((self.send_epoch, buf));
            }
            match change {
                None => break,
                Some(KeyChange::Handshake { keys }) => {
                    assert_eq!(
                        self.send_epoch,
                        Epoch::Initial,
                        "Handshake keys out of order"
                    );
                    self.send_epoch = Epoch::Handshake;
                    self.can_read[Epoch::Handshake.idx()] = true;
                    self.handshake_keys = Some(keys);
                }
                Some(KeyChange::OneRtt { keys }) => {
                    assert_eq!(self.send_epoch, Epoch::Handshake, "1-RTT keys out of order");
                    self.send_epoch = Epoch::Data;
                    self.can_read[Epoch::Data.idx()] = true;
                    self.one_rtt_keys = Some(keys);
                }
            }
        }
        Ok(out)
    }
}

/// Run a handshake to completion (or failure). The error names the side that failed.
fn handshake(
    client: TlsSession,
    server: TlsSession,
) -> Result<(Peer, Peer), (Side, TransportError)> {
    let mut peers = [Peer::new(client), Peer::new(server)];
    for _round in 0..16 {
        let mut progressed = false;
        for (from, side) in [(0, Side::Client), (1, Side::Server)] {
            let out = peers[from].step().map_err(|e| (side, e))?;
            for (epoch, bytes) in out {
                progressed = true;
                peers[1 - from].inbox[epoch.idx()].extend_from_slice(&bytes);
            }
        }
        let idle = peers.iter().all(|p| p.inbox.iter().all(Vec::is_empty));
        if !progressed && idle {
            break;
        }
    }
    let [client, server] = peers;
    Ok((client, server))
}

fn default_handshake() -> (Peer, Peer) {
    let client = new_client(
        insecure_cfg(&[ALPN], CipherSuiteSelection::All),
        "localhost",
    );
    let server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
    handshake(client, server).expect("handshake")
}

/// Seal with `local`, open with `remote`.
fn packet_roundtrip(local: &dyn PacketKey, remote: &dyn PacketKey, pn: u64) -> bool {
    let header = [0x41, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x07];
    let msg = b"quiver 1-RTT payload";
    let mut payload = msg.to_vec();
    let tag = local
        .encrypt_in_place(pn, &header, &mut payload)
        .expect("seal");
    payload.extend_from_slice(tag.as_ref());
    match remote.decrypt_in_place(pn, &header, &mut payload) {
        Ok(plain) => plain == msg,
        Err(_) => false,
    }
}

/// Header protection applied with `local` is removed by `remote` (RFC 9001 §5.4).
fn header_roundtrip(local: &dyn HeaderProtectionKey, remote: &dyn HeaderProtectionKey) {
    let sample = [0x5a; 16];
    assert_eq!(local.sample_len(), sample.len());
    let (mut first, mut pn) = (0x43u8, [0x00, 0x00, 0x01, 0x02]);
    local
        .encrypt_in_place(&sample, &mut first, &mut pn)
        .expect("protect");
    assert_ne!(
        (first, pn),
        (0x43, [0x00, 0x00, 0x01, 0x02]),
        "mask applied"
    );
    remote
        .decrypt_in_place(&sample, &mut first, &mut pn)
        .expect("unprotect");
    assert_eq!((first, pn), (0x43, [0x00, 0x00, 0x01, 0x02]));
}

fn assert_keys_interoperate(a: &Keys, b: &Keys) {
    assert!(packet_roundtrip(
        a.local.packet.as_ref(),
        b.remote.packet.as_ref(),
        3
    ));
    assert!(packet_roundtrip(
        b.local.packet.as_ref(),
        a.remote.packet.as_ref(),
        4
    ));
    header_roundtrip(a.local.header.as_ref(), b.remote.header.as_ref());
    header_roundtrip(b.local.header.as_ref(), a.remote.header.as_ref());
    // The two directions use different secrets.
    assert!(!packet_roundtrip(
        a.local.packet.as_ref(),
        a.remote.packet.as_ref(),
        3
    ));
}

fn suite_of(s: &TlsSession) -> CipherSuite {
    s.negotiated_cipher_suite()
        .expect("negotiated suite")
        .suite()
}

#[test]
fn full_handshake_completes() {
    let (client, server) = default_handshake();
    assert!(!client.tls.is_handshaking());
    assert!(!server.tls.is_handshaking());
    assert_eq!(client.tls.side(), Side::Client);
    assert_eq!(server.tls.side(), Side::Server);

    // Levels move strictly forward: client Initial then Handshake (Finished); server
    // Initial (ServerHello), Handshake (EE..Finished), then 1-RTT (session tickets).
    assert_eq!(client.sent, [Epoch::Initial, Epoch::Handshake]);
    assert_eq!(&server.sent[..2], [Epoch::Initial, Epoch::Handshake]);
    assert!(server.sent[2..].iter().all(|e| *e == Epoch::Data));
    assert_eq!(client.send_epoch, Epoch::Data);
    assert_eq!(server.send_epoch, Epoch::Data);

    // RFC 9001 §8.2: transport parameters travel in both directions.
    assert_eq!(client.tls.peer_transport_params(), Some(SERVER_PARAMS));
    assert_eq!(server.tls.peer_transport_params(), Some(CLIENT_PARAMS));
    // RFC 9001 §8.1: ALPN agreed.
    assert_eq!(client.tls.alpn_protocol().as_deref(), Some(ALPN));
    assert_eq!(server.tls.alpn_protocol().as_deref(), Some(ALPN));
    assert_eq!(client.tls.server_name().as_deref(), Some("localhost"));
    assert_eq!(server.tls.server_name().as_deref(), Some("localhost"));
    let (cert, _) = identity();
    assert_eq!(
        client.tls.peer_certificates(),
        Some(std::slice::from_ref(cert))
    );
    assert!(server.tls.peer_certificates().is_none(), "no client auth");
    assert!(client.tls.zero_rtt_keys().is_none());
    assert_eq!(suite_of(&client.tls), suite_of(&server.tls));

    let (ch, sh) = (
        client.handshake_keys.as_ref(),
        server.handshake_keys.as_ref(),
    );
    assert_keys_interoperate(ch.expect("client hs keys"), sh.expect("server hs keys"));
    let (c1, s1) = (client.one_rtt_keys.as_ref(), server.one_rtt_keys.as_ref());
    assert_keys_interoperate(
        c1.expect("client 1-RTT keys"),
        s1.expect("server 1-RTT keys"),
    );
}

#[test]
fn key_updates_on_both_sides() {
    let mut fresh = new_client(
        insecure_cfg(&[ALPN], CipherSuiteSelection::All),
        "localhost",
    );
    assert!(
        fresh.next_1rtt_keys().is_none(),
        "no 1-RTT secrets before the handshake"
    );

    let (mut client, mut server) = default_handshake();
    let gen0_client = client.one_rtt_keys.take().expect("client keys");
    let gen0_server = server.one_rtt_keys.take().expect("server keys");
    // RFC 9001 §6: each side derives generation N+1 independently; they must agree.
    let c1 = client.tls.next_1rtt_keys().expect("client gen 1");
    let s1 = server.tls.next_1rtt_keys().expect("server gen 1");
    assert!(packet_roundtrip(c1.local.as_ref(), s1.remote.as_ref(), 10));
    assert!(packet_roundtrip(s1.local.as_ref(), c1.remote.as_ref(), 11));
    // A new generation is not readable with the old keys.
    assert!(!packet_roundtrip(
        c1.local.as_ref(),
        gen0_server.remote.packet.as_ref(),
        10
    ));
    assert!(!packet_roundtrip(
        gen0_client.local.packet.as_ref(),
        s1.remote.as_ref(),
        10
    ));

    let c2 = client.tls.next_1rtt_keys().expect("client gen 2");
    let s2 = server.tls.next_1rtt_keys().expect("server gen 2");
    assert!(packet_roundtrip(c2.local.as_ref(), s2.remote.as_ref(), 12));
    assert!(packet_roundtrip(s2.local.as_ref(), c2.remote.as_ref(), 13));
    assert!(!packet_roundtrip(c2.local.as_ref(), s1.remote.as_ref(), 12));
}

#[test]
fn chacha20_only_client_negotiates_chacha20() {
    let client = new_client(
        insecure_cfg(&[ALPN], CipherSuiteSelection::ChaCha20Only),
        "localhost",
    );
    let server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
    let (client, server) = handshake(client, server).expect("handshake");
    assert!(!client.tls.is_handshaking() && !server.tls.is_handshaking());
    assert_eq!(
        suite_of(&client.tls),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    );
    assert_eq!(
        suite_of(&server.tls),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    );
    assert_keys_interoperate(
        client.one_rtt_keys.as_ref().expect("keys"),
        server.one_rtt_keys.as_ref().expect("keys"),
    );
}

#[test]
fn each_suite_selection_negotiates_its_suite() {
    for (selection, expected) in [
        (
            CipherSuiteSelection::Aes128Only,
            CipherSuite::TLS13_AES_128_GCM_SHA256,
        ),
        (
            CipherSuiteSelection::Aes256Only,
            CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            CipherSuiteSelection::ChaCha20Only,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        ),
    ] {
        // Restrict the server this time; the client offers everything.
        let client = new_client(
            insecure_cfg(&[ALPN], CipherSuiteSelection::All),
            "localhost",
        );
        let server = new_server(server_cfg(&[ALPN], selection));
        let (client, server) = handshake(client, server).expect("handshake");
        assert_eq!(suite_of(&client.tls), expected);
        assert_eq!(suite_of(&server.tls), expected);
        assert_keys_interoperate(
            client.one_rtt_keys.as_ref().expect("keys"),
            server.one_rtt_keys.as_ref().expect("keys"),
        );
    }
}

#[test]
fn disjoint_suites_fail_with_handshake_failure() {
    let client = new_client(
        insecure_cfg(&[ALPN], CipherSuiteSelection::ChaCha20Only),
        "localhost",
    );
    let server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::Aes128Only));
    let (side, err) = handshake(client, server).err().expect("must fail");
    assert_eq!(side, Side::Server);
    // handshake_failure(40)
    assert_eq!(err.code, TransportErrorCode::crypto(40));
}

#[test]
fn alpn_mismatch_is_crypto_error_0x178() {
    let client = new_client(
        insecure_cfg(&[b"h3"], CipherSuiteSelection::All),
        "localhost",
    );
    let server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
    let (side, err) = handshake(client, server).err().expect("must fail");
    assert_eq!(side, Side::Server);
    assert_eq!(err.code, TransportErrorCode(0x178));

    // A client that offers ALPN to a server configured without any is refused as well
    // (RFC 9001 §8.1: QUIC requires a negotiated application protocol).
    let client = new_client(
        insecure_cfg(&[ALPN], CipherSuiteSelection::All),
        "localhost",
    );
    let server = new_server(server_cfg(&[], CipherSuiteSelection::All));
    let (_, err) = handshake(client, server).err().expect("must fail");
    assert_eq!(err.code, TransportErrorCode(0x178));
}

#[test]
fn insecure_verifier_accepts_self_signed_but_empty_roots_reject() {
    // Insecure: any name, self-signed, still completes.
    let client = new_client(
        insecure_cfg(&[ALPN], CipherSuiteSelection::All),
        "example.com",
    );
    let server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
    let (client, _) = handshake(client, server).expect("insecure handshake");
    assert!(!client.tls.is_handshaking());

    // Validating client with no roots: the certificate has no trusted issuer.
    let cfg = client_config(
        RootCertStore::empty(),
        &[ALPN],
        CipherSuiteSelection::All,
        None,
    )
    .expect("client config");
    let client = new_client(Arc::new(cfg), "localhost");
    let server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
    let (side, err) = handshake(client, server).err().expect("must fail");
    assert_eq!(side, Side::Client);
    // unknown_ca(48) or bad_certificate(42)
    assert!(
        [
            TransportErrorCode::crypto(48),
            TransportErrorCode::crypto(42)
        ]
        .contains(&err.code),
        "{err}"
    );
}

#[test]
fn validating_client_accepts_trusted_cert_and_checks_name() {
    let (cert, _) = identity();
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).expect("add root");
    let cfg = Arc::new(
        client_config(roots, &[ALPN], CipherSuiteSelection::All, None).expect("client config"),
    );

    let client = new_client(cfg.clone(), "localhost");
    let server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
    let (client, _) = handshake(client, server).expect("trusted handshake");
    assert!(!client.tls.is_handshaking());

    let client = new_client(cfg, "other.example");
    let server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
    let (side, err) = handshake(client, server)
        .err()
        .expect("wrong name must fail");
    assert_eq!(side, Side::Client);
    assert_eq!(err.code, TransportErrorCode::crypto(42), "{err}"); // bad_certificate
}

#[test]
fn invalid_server_name_is_an_error() {
    let cfg = insecure_cfg(&[ALPN], CipherSuiteSelection::All);
    for name in ["", "not a hostname", "bad..name", "x\0y"] {
        let err = TlsSession::client(cfg.clone(), name, Vec::new()).err();
        assert_eq!(
            err,
            Some(CryptoError::InvalidServerName(name.to_owned())),
            "{name:?}"
        );
    }
    // IP literals are valid server names.
    assert!(TlsSession::client(cfg, "192.0.2.1", Vec::new()).is_ok());
}

#[test]
fn key_log_receives_secrets() {
    #[derive(Debug, Default)]
    struct Labels(Mutex<Vec<String>>);
    impl rustls::KeyLog for Labels {
        fn log(&self, label: &str, _client_random: &[u8], _secret: &[u8]) {
            self.0.lock().expect("lock").push(label.to_owned());
        }
        fn will_log(&self, _label: &str) -> bool {
            true
        }
    }
    let labels = Arc::new(Labels::default());
    let cfg = insecure_client_config(&[ALPN], CipherSuiteSelection::All, Some(labels.clone()))
        .expect("client config");
    let client = new_client(Arc::new(cfg), "localhost");
    let server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
    handshake(client, server).expect("handshake");
    let labels = labels.0.lock().expect("lock");
    for want in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        assert!(
            labels.iter().any(|l| l == want),
            "missing {want} in {labels:?}"
        );
    }
}

// ---- Initial keys: RFC 9001 Appendix A ----

const RFC9001_DCID: [u8; 8] = hex!("8394c8f03e515708");

#[test]
fn initial_keys_client_header_protection_vector() {
    // RFC 9001 §A.2: sample and the protected first byte / packet number.
    let dcid = ConnectionId::new(&RFC9001_DCID).expect("cid");
    let client = initial_keys(QUIC_V1, &dcid, Side::Client).expect("keys");
    let sample = hex!("d1b1c98dd7689fb8ec11d242b123dc9b");
    let (mut first, mut pn) = (0xc3u8, hex!("00000002"));
    client
        .local
        .header
        .encrypt_in_place(&sample, &mut first, &mut pn)
        .expect("protect");
    assert_eq!((first, pn), (0xc0, hex!("7b9aec34")));

    let server = initial_keys(QUIC_V1, &dcid, Side::Server).expect("keys");
    server
        .remote
        .header
        .decrypt_in_place(&sample, &mut first, &mut pn)
        .expect("unprotect");
    assert_eq!((first, pn), (0xc3, hex!("00000002")));
}

#[test]
fn initial_keys_decrypt_rfc9001_server_initial() {
    // RFC 9001 §A.3: the server's Initial packet, protected.
    let mut packet = hex!(
        "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
        "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
        "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
        "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
        "2158407dd074ee"
    );
    let expected_header = hex!("c1000000010008f067a5502a4262b50040750001");
    let expected_payload = hex!(
        "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"
        "88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"
        "0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"
        "020304"
    );
    let dcid = ConnectionId::new(&RFC9001_DCID).expect("cid");
    let keys = initial_keys(QUIC_V1, &dcid, Side::Client).expect("keys");

    // Packet number offset: 1 + 4 + (1+0) + (1+8) + token len (1) + length (2) = 18.
    let pn_offset = 18;
    let sample_at = pn_offset + 4;
    let sample: [u8; 16] = packet[sample_at..sample_at + 16]
        .try_into()
        .expect("sample");
    let (head, rest) = packet.split_at_mut(1);
    keys.remote
        .header
        .decrypt_in_place(
            &sample,
            &mut head[0],
            &mut rest[pn_offset - 1..pn_offset + 1],
        )
        .expect("unprotect");
    // The first byte now says the packet number is 2 bytes long (the RFC's `c1`).
    let pn_len = usize::from(packet[0] & 0x03) + 1;
    assert_eq!(pn_len, 2);
    let (header, payload) = packet.split_at_mut(pn_offset + pn_len);
    assert_eq!(header, &expected_header[..]);
    let plain = keys
        .remote
        .packet
        .decrypt_in_place(1, header, payload)
        .expect("decrypt");
    assert_eq!(plain, &expected_payload[..]);
}

#[test]
fn initial_keys_sides_interoperate_and_versions() {
    let dcid = ConnectionId::new(&hex!("0102030405060708")).expect("cid");
    for version in [QUIC_V1, QUIC_V2, 0xff00_001d] {
        let c = initial_keys(version, &dcid, Side::Client).expect("client");
        let s = initial_keys(version, &dcid, Side::Server).expect("server");
        assert_keys_interoperate(&c, &s);
    }
    // Different versions use different salts.
    let v1 = initial_keys(QUIC_V1, &dcid, Side::Client).expect("v1");
    let v2 = initial_keys(QUIC_V2, &dcid, Side::Server).expect("v2");
    assert!(!packet_roundtrip(
        v1.local.packet.as_ref(),
        v2.remote.packet.as_ref(),
        0
    ));

    assert_eq!(
        initial_keys(0x1a2a_3a4a, &dcid, Side::Client).err(),
        Some(CryptoError::UnsupportedVersion(0x1a2a_3a4a))
    );
}

// ---- Robustness: bytes from the network never panic ----

fn robust_config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        rng_seed: RngSeed::Fixed(0x0071_5e55),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn expect_tls_code(err: &TransportError) {
    let code = err.code;
    assert!(
        (0x100..0x200).contains(&code.0)
            || code == TransportErrorCode::PROTOCOL_VIOLATION
            || code == TransportErrorCode::INTERNAL_ERROR,
        "unexpected code {code:?}"
    );
}

/// The client's real ClientHello, for mutation.
fn client_hello() -> Vec<u8> {
    let mut client = new_client(
        insecure_cfg(&[ALPN], CipherSuiteSelection::All),
        "localhost",
    );
    let mut buf = Vec::new();
    let change = client.write_handshake(&mut buf);
    assert!(change.is_none());
    buf
}

proptest! {
    #![proptest_config(robust_config())]

    #[test]
    fn garbage_to_server_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
        if let Err(e) = server.read_handshake(&data) {
            expect_tls_code(&e);
            // Once failed, it stays failed and still does not panic.
            prop_assert!(server.read_handshake(&data).is_err() || data.is_empty());
        }
        let mut out = Vec::new();
        let _ = server.write_handshake(&mut out);
    }

    #[test]
    fn garbage_to_client_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut client = new_client(insecure_cfg(&[ALPN], CipherSuiteSelection::All), "localhost");
        let mut out = Vec::new();
        let _ = client.write_handshake(&mut out);
        if let Err(e) = client.read_handshake(&data) {
            expect_tls_code(&e);
        }
        let _ = client.write_handshake(&mut out);
        prop_assert!(client.is_handshaking());
    }

    #[test]
    fn mutated_client_hello_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut hello = client_hello();
        for (at, x) in flips {
            let i = at.index(hello.len());
            hello[i] ^= x;
        }
        hello.truncate(cut.index(hello.len() + 1));
        let mut server = new_server(server_cfg(&[ALPN], CipherSuiteSelection::All));
        match server.read_handshake(&hello) {
            Ok(()) => {
                let mut out = Vec::new();
                while server.write_handshake(&mut out).is_some() {}
            }
            Err(e) => expect_tls_code(&e),
        }
    }
}
