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
use std::net::SocketAddr;
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
