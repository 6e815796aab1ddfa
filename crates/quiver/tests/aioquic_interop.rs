//! Interoperability with aioquic (Python, from PyPI; `scripts/install-deps.sh` installs
//! it into a venv) over loopback UDP, speaking hq-interop in both directions: Quiver
//! client → aioquic server and aioquic client → Quiver server. Covers the cases quinn 0.11
//! cannot: QUIC v2 (RFC 9369), compatible version negotiation v1 → v2 (RFC 9368) and
//! Version Negotiation against a server that lacks the client's first version.
//!
//! The aioquic peers print what they negotiated (version, cipher suite), so each test
//! checks both ends. See `aioquic/mod.rs` for the harness.

mod aioquic;

use aioquic::*;
use quiver::tls::CipherSuites;
use quiver_proto::packet::{VERSION_1, VERSION_2};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("small", content(1024, 1)),
        ("medium", content(200 * 1024, 2)),
        ("large", content(3 * 1024 * 1024, 3)),
    ]
}

/// Connect a Quiver client to `addr` with `version` first (and `available` after a
/// Version Negotiation), download every file and check it; returns the connection's
/// version.
async fn quiver_client_downloads(
    cert: &Cert,
    addr: SocketAddr,
    suites: CipherSuites,
    version: u32,
    available: &[u32],
) -> u32 {
    let ep = quiver::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("endpoint");
    let mut config = quiver::ClientConfig::new(Arc::new(cert.client_tls(suites)));
    config.version = version;
    config.available_versions = available.to_vec();
    let conn = tokio::time::timeout(
        STEP,
        ep.connect_with(config, addr, "localhost").expect("connect"),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake");
    assert_eq!(conn.alpn_protocol().as_deref(), Some(HQ_ALPN));
    let mut gets = tokio::task::JoinSet::new();
    for (name, body) in files() {
        let conn = conn.clone();
        gets.spawn(async move {
            let got = tokio::time::timeout(STEP, quiver_hq_get(&conn, name))
                .await
                .expect("download timed out");
            assert!(
                got == body,
                "{name}: {} bytes, expected {}",
                got.len(),
                body.len()
            );
        });
    }
    while let Some(r) = gets.join_next().await {
        r.expect("download task");
    }
    let v = conn.version().expect("version");
    conn.close(0u32.into(), b"done");
    tokio::time::timeout(STEP, ep.wait_idle())
        .await
        .expect("close");
    v
}

/// The version in the aioquic peer's HANDSHAKE line.
async fn peer_version(peer: &mut Peer) -> u32 {
    handshake_version(&peer.expect_line("HANDSHAKE ").await)
}

// ---------------------------------------------------------------------------------------
// Quiver client → aioquic server

#[tokio::test]
async fn quiver_client_aioquic_server_v1_transfer() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let mut server = AioquicServer::start(&cert, &files(), ServerOpts::default()).await;
    let v = quiver_client_downloads(&cert, server.addr, CipherSuites::All, VERSION_1, &[]).await;
    assert_eq!(v, VERSION_1);
    assert_eq!(peer_version(&mut server.peer).await, VERSION_1);
}

#[tokio::test]
async fn quiver_client_aioquic_server_chacha20() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let mut server = AioquicServer::start(&cert, &files(), ServerOpts::default()).await;
    quiver_client_downloads(
        &cert,
        server.addr,
        CipherSuites::ChaCha20Only,
        VERSION_1,
        &[],
    )
    .await;
    let line = server.peer.expect_line("HANDSHAKE ").await;
    assert!(line.contains("cipher=CHACHA20_POLY1305_SHA256"), "{line}");
}

#[tokio::test]
async fn quiver_client_aioquic_server_v2_transfer() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let mut server = AioquicServer::start(&cert, &files(), ServerOpts::default()).await;
    let v = quiver_client_downloads(&cert, server.addr, CipherSuites::All, VERSION_2, &[]).await;
    assert_eq!(v, VERSION_2);
    assert_eq!(peer_version(&mut server.peer).await, VERSION_2);
}

#[tokio::test]
async fn quiver_client_aioquic_server_version_negotiation_to_v2() {
    // aioquic speaks only v2: it answers the v1 Initial with Version Negotiation, and the
    // Quiver client starts over in v2; aioquic's version_information confirms the choice.
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let opts = ServerOpts {
        versions: "v2",
        ..ServerOpts::default()
    };
    let mut server = AioquicServer::start(&cert, &files(), opts).await;
    let v = quiver_client_downloads(
        &cert,
        server.addr,
        CipherSuites::All,
        VERSION_1,
        &[VERSION_2],
    )
    .await;
    assert_eq!(v, VERSION_2);
    assert_eq!(peer_version(&mut server.peer).await, VERSION_2);
}

// ---------------------------------------------------------------------------------------
// aioquic client → Quiver server

/// Run the aioquic client against a Quiver server speaking `versions`; check every
/// download; returns the aioquic client's and the Quiver server's connection version.
async fn aioquic_client_downloads(versions: &[u32], opts: ClientOpts) -> (u32, u32) {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let files = files();
    let server = quiver_hq_server(&cert, versions, &files);
    let paths: Vec<String> = files.iter().map(|(n, _)| format!("/{n}")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (mut peer, ok, got) = run_client(&cert, server.addr, &paths, opts).await;
    assert!(ok, "aioquic client failed: {:?}", peer.log);
    for (name, body) in &files {
        let g = got.get(&format!("/{name}"));
        assert!(g == Some(body), "{name}: got {:?} bytes", g.map(Vec::len));
    }
    let client_version = peer_version(&mut peer).await;
    let server_versions = server.versions.lock().unwrap().clone();
    assert_eq!(server_versions.len(), 1, "one connection expected");
    server.ep.close(0u32.into(), b"done");
    (client_version, server_versions[0])
}

#[tokio::test]
async fn aioquic_client_quiver_server_v1_transfer() {
    let (v, sv) = aioquic_client_downloads(&[VERSION_1], ClientOpts::default()).await;
    assert_eq!((v, sv), (VERSION_1, VERSION_1));
}

#[tokio::test]
async fn aioquic_client_quiver_server_chacha20() {
    let opts = ClientOpts {
        cipher: Some("chacha20"),
        ..ClientOpts::default()
    };
    let (v, sv) = aioquic_client_downloads(&[VERSION_1], opts).await;
    assert_eq!((v, sv), (VERSION_1, VERSION_1));
}

#[tokio::test]
async fn aioquic_client_quiver_server_v2_transfer() {
    let opts = ClientOpts {
        version: "v2",
        ..ClientOpts::default()
    };
    let (v, sv) = aioquic_client_downloads(&[VERSION_1, VERSION_2], opts).await;
    assert_eq!((v, sv), (VERSION_2, VERSION_2));
}

#[tokio::test]
async fn aioquic_client_quiver_server_compatible_upgrade_v1_to_v2() {
    // aioquic starts in v1 and offers v2; the Quiver server prefers v2 and switches the
    // connection (RFC 9368 §2.3): aioquic ends up in v2.
    let opts = ClientOpts {
        version: "v1",
        offer: "v2",
        ..ClientOpts::default()
    };
    let (v, sv) = aioquic_client_downloads(&[VERSION_2, VERSION_1], opts).await;
    assert_eq!((v, sv), (VERSION_2, VERSION_2));
}

#[tokio::test]
async fn aioquic_client_quiver_server_prefers_v1_no_upgrade() {
    // Same offer, but the server prefers v1: no switch.
    let opts = ClientOpts {
        version: "v1",
        offer: "v2",
        ..ClientOpts::default()
    };
    let (v, sv) = aioquic_client_downloads(&[VERSION_1, VERSION_2], opts).await;
    assert_eq!((v, sv), (VERSION_1, VERSION_1));
}

#[tokio::test]
async fn aioquic_client_quiver_server_version_negotiation_to_v2() {
    // The Quiver server speaks only v2: the v1 Initial gets Version Negotiation, aioquic
    // starts over in v2 and checks our version_information.
    let opts = ClientOpts {
        version: "v1",
        offer: "v2",
        ..ClientOpts::default()
    };
    let (v, sv) = aioquic_client_downloads(&[VERSION_2], opts).await;
    assert_eq!((v, sv), (VERSION_2, VERSION_2));
}

// ---------------------------------------------------------------------------------------
// Resumption, 0-RTT, Retry, key update and ECN, both ways where aioquic supports them.
// aioquic neither marks ECN nor reports ECN counts in its ACKs, so the ECN case checks
// the other half of RFC 9000 §13.4.2: Quiver's validation fails and it stops marking,
// without hurting the transfer.

/// Download `name` over `conn` and check it against `files()`.
async fn quiver_get_checked(conn: &quiver::Connection, name: &str) {
    let body = files()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .expect("known file");
    let got = tokio::time::timeout(STEP, quiver_hq_get(conn, name))
        .await
        .expect("download timed out");
    assert!(
        got == body,
        "{name}: {} bytes, expected {}",
        got.len(),
        body.len()
    );
}

/// A Quiver client endpoint and a client configuration trusting `cert`; connections made
/// with clones of the configuration share its ticket cache.
fn quiver_client(cert: &Cert) -> (quiver::Endpoint, quiver::ClientConfig) {
    let ep = quiver::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("endpoint");
    let config = quiver::ClientConfig::new(Arc::new(cert.client_tls(CipherSuites::All)));
    (ep, config)
}

async fn quiver_connect(
    ep: &quiver::Endpoint,
    config: &quiver::ClientConfig,
    addr: SocketAddr,
) -> quiver::Connection {
    tokio::time::timeout(
        STEP,
        ep.connect_with(config.clone(), addr, "localhost")
            .expect("connect"),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake")
}

/// First connection: full handshake and a download (the tickets arrive meanwhile).
async fn quiver_first_connection(
    ep: &quiver::Endpoint,
    config: &quiver::ClientConfig,
    addr: SocketAddr,
) {
    let first = quiver_connect(ep, config, addr).await;
    assert!(!first.is_resumed());
    quiver_get_checked(&first, "small").await;
    // Let the session tickets that follow the handshake arrive.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    first.close(0u32.into(), b"done");
}

#[tokio::test]
async fn quiver_client_aioquic_server_resumption() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let opts = ServerOpts {
        session_tickets: true,
        ..ServerOpts::default()
    };
    let mut server = AioquicServer::start(&cert, &files(), opts).await;
    let (ep, config) = quiver_client(&cert);
    quiver_first_connection(&ep, &config, server.addr).await;
    let second = quiver_connect(&ep, &config, server.addr).await;
    assert!(second.is_resumed(), "the second handshake resumes");
    quiver_get_checked(&second, "medium").await;
    second.close(0u32.into(), b"done");
    let lines = server.peer.expect_lines("HANDSHAKE ", 2).await;
    assert!(lines[0].contains("resumed=0"), "{lines:?}");
    assert!(lines[1].contains("resumed=1"), "{lines:?}");
}

#[tokio::test]
async fn quiver_client_aioquic_server_zerortt() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let opts = ServerOpts {
        zero_rtt: true,
        ..ServerOpts::default()
    };
    let mut server = AioquicServer::start(&cert, &files(), opts).await;
    let (ep, config) = quiver_client(&cert);
    quiver_first_connection(&ep, &config, server.addr).await;
    let connecting = ep
        .connect_with(config.clone(), server.addr, "localhost")
        .expect("connect");
    let Ok((conn, accepted)) = connecting.into_0rtt() else {
        panic!("no 0-RTT on the second connection (no ticket from aioquic?)");
    };
    // The request is written before the handshake completes: it leaves in 0-RTT.
    quiver_get_checked(&conn, "medium").await;
    assert!(
        tokio::time::timeout(STEP, accepted)
            .await
            .expect("0-RTT verdict"),
        "aioquic accepted the early data"
    );
    let s = conn.stats();
    assert!(s.zero_rtt_packets_sent > 0, "{s:?}");
    assert_eq!(
        s.zero_rtt_packets_accepted, s.zero_rtt_packets_sent,
        "{s:?}"
    );
    conn.close(0u32.into(), b"done");
    let lines = server.peer.expect_lines("HANDSHAKE ", 2).await;
    assert!(lines[1].contains("resumed=1 early_data=1"), "{lines:?}");
    // aioquic served the request from 0-RTT data: it logged it before any 1-RTT request.
    server.peer.expect_lines("SERVED /medium", 1).await;
}

#[tokio::test]
async fn quiver_client_aioquic_server_retry() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let opts = ServerOpts {
        retry: true,
        ..ServerOpts::default()
    };
    let server = AioquicServer::start(&cert, &files(), opts).await;
    let (ep, config) = quiver_client(&cert);
    let conn = quiver_connect(&ep, &config, server.addr).await;
    assert_eq!(
        conn.stats().retries,
        1,
        "aioquic sent a Retry and Quiver followed it"
    );
    quiver_get_checked(&conn, "medium").await;
    conn.close(0u32.into(), b"done");
}

#[tokio::test]
async fn quiver_client_aioquic_server_keyupdate() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let server = AioquicServer::start(&cert, &files(), ServerOpts::default()).await;
    let (ep, config) = quiver_client(&cert);
    let conn = quiver_connect(&ep, &config, server.addr).await;
    // Performed as soon as the handshake is confirmed and acknowledged; the downloads
    // after it stall unless aioquic follows.
    conn.initiate_key_update();
    quiver_get_checked(&conn, "small").await;
    quiver_get_checked(&conn, "large").await;
    conn.initiate_key_update();
    quiver_get_checked(&conn, "medium").await;
    let s = conn.stats();
    assert!(s.key_updates_initiated >= 1, "{s:?}");
    assert_eq!(s.auth_failures, 0, "{s:?}");
    conn.close(0u32.into(), b"done");
}

#[tokio::test]
async fn quiver_client_aioquic_server_ecn_validation_fails_cleanly() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let server = AioquicServer::start(&cert, &files(), ServerOpts::default()).await;
    let (ep, config) = quiver_client(&cert);
    let conn = quiver_connect(&ep, &config, server.addr).await;
    quiver_get_checked(&conn, "large").await;
    let s = conn.stats();
    // aioquic's ACKs carry no ECN counts although our packets were marked ECT(0): the
    // validation fails (RFC 9000 §13.4.2.1) and Quiver stops marking.
    assert_eq!(
        s.ecn_state,
        quiver_proto::recovery::EcnState::Failed,
        "{s:?}"
    );
    assert_eq!(s.ecn_ce_reported, 0, "{s:?}");
    conn.close(0u32.into(), b"done");
}

/// Run the aioquic client for all files against `server`; check every download.
async fn aioquic_client_run(cert: &Cert, server: &QuiverHqServer, opts: ClientOpts) -> Peer {
    let files = files();
    let paths: Vec<String> = files.iter().map(|(n, _)| format!("/{n}")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (peer, ok, got) = run_client(cert, server.addr, &paths, opts).await;
    assert!(ok, "aioquic client failed: {:?}", peer.log);
    for (name, body) in &files {
        let g = got.get(&format!("/{name}"));
        assert!(g == Some(body), "{name}: got {:?} bytes", g.map(Vec::len));
    }
    peer
}

fn server_conn(server: &QuiverHqServer, i: usize) -> ServerSeen {
    server.conns.lock().unwrap()[i].clone()
}

#[tokio::test]
async fn aioquic_client_quiver_server_resumption() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let server = quiver_hq_server(&cert, &[VERSION_1], &files());
    let ticket = dir.path().join("ticket.bin");
    let opts = ClientOpts {
        session_ticket: Some(ticket.clone()),
        ..ClientOpts::default()
    };
    let mut first = aioquic_client_run(&cert, &server, opts.clone()).await;
    assert!(first.expect_line("HANDSHAKE ").await.contains("resumed=0"));
    assert!(
        ticket.exists(),
        "aioquic stored a ticket from the Quiver server"
    );
    let mut second = aioquic_client_run(&cert, &server, opts).await;
    let line = second.expect_line("HANDSHAKE ").await;
    // aioquic offers early data whenever the ticket allows it; this client just does not
    // send its requests early (no --zero-rtt).
    assert!(line.contains("resumed=1"), "{line}");
    assert!(server_conn(&server, 1).resumed);
    server.ep.close(0u32.into(), b"done");
}

#[tokio::test]
async fn aioquic_client_quiver_server_zerortt() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let server = quiver_hq_server(&cert, &[VERSION_1], &files());
    let ticket = dir.path().join("ticket.bin");
    let opts = ClientOpts {
        session_ticket: Some(ticket.clone()),
        ..ClientOpts::default()
    };
    aioquic_client_run(&cert, &server, opts.clone()).await;
    let opts = ClientOpts {
        zero_rtt: true,
        ..opts
    };
    let mut second = aioquic_client_run(&cert, &server, opts).await;
    let line = second.expect_line("HANDSHAKE ").await;
    assert!(line.contains("resumed=1 early_data=1"), "{line}");
    let seen = server_conn(&server, 1);
    assert!(seen.resumed, "{seen:?}");
    assert_eq!(seen.zero_rtt, quiver::ZeroRttStatus::Accepted, "{seen:?}");
    server.ep.close(0u32.into(), b"done");
}

#[tokio::test]
async fn aioquic_client_quiver_server_retry() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let server = quiver_hq_server_with(&cert, Ipv4Addr::LOCALHOST, &[VERSION_1], &files(), |c| {
        c.validation.retry = true;
    });
    aioquic_client_run(&cert, &server, ClientOpts::default()).await;
    let s = server_conn(&server, 0).stats;
    assert_eq!(s.retries, 1, "the Quiver server sent a Retry: {s:?}");
    assert!(s.address_validated_by_token, "{s:?}");
    server.ep.close(0u32.into(), b"done");
}

#[tokio::test]
async fn aioquic_client_quiver_server_keyupdate() {
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let server = quiver_hq_server(&cert, &[VERSION_1], &files());
    let opts = ClientOpts {
        key_update: true,
        ..ClientOpts::default()
    };
    aioquic_client_run(&cert, &server, opts).await;
    let s = server_conn(&server, 0).stats;
    assert!(
        s.key_updates_followed >= 1,
        "the Quiver server followed aioquic's key update: {s:?}"
    );
    assert_eq!(s.auth_failures, 0, "{s:?}");
    server.ep.close(0u32.into(), b"done");
}
