//! Interoperability with quinn 0.11 in both directions: quiver client ↔ quinn server and
//! quinn client ↔ quiver server, over loopback UDP.

mod common;

use common::*;
use quiver::tls::CipherSuites;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

const STREAMS: u64 = 1000;
/// Response size per stream in the many-streams tests: two small stream windows.
const SMALL_RESPONSE: u64 = 2 * SMALL_STREAM_WINDOW as u64;

// ---------------------------------------------------------------------------------------
// quiver client ↔ quinn server

struct QuinnServer {
    _ep: quinn::Endpoint,
    addr: SocketAddr,
    closed: mpsc::UnboundedReceiver<Closed>,
}

fn quinn_server(id: &Identity, w: Windows) -> QuinnServer {
    let ep = quinn_server_endpoint(id, w);
    let addr = ep.local_addr().expect("local addr");
    let closed = spawn_quinn_server(ep.clone());
    QuinnServer {
        _ep: ep,
        addr,
        closed,
    }
}

async fn quiver_connect(
    id: &Identity,
    w: Windows,
    suites: CipherSuites,
    addr: SocketAddr,
) -> (quiver::Endpoint, quiver::Connection) {
    let ep = quiver::Endpoint::client(loopback()).expect("client endpoint");
    let conn = within(
        ep.connect_with(quiver_client_config(id, w, suites), addr, NAME)
            .expect("connect"),
    )
    .await
    .expect("handshake");
    (ep, conn)
}

#[tokio::test]
async fn quiver_client_quinn_server_handshake() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let (ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    assert_eq!(conn.alpn_protocol().as_deref(), Some(ALPN));
    assert_eq!(conn.remote_address(), server.addr);
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;
}

#[tokio::test]
async fn quiver_client_quinn_server_downloads() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let (_ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    for n in [1024, 10 * 1024 * 1024] {
        let got = within(quiver_get(&conn, n)).await;
        assert_pattern(&got, n);
    }
}

#[tokio::test]
async fn quiver_client_quinn_server_many_streams_small_windows() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Small);
    let (_ep, conn) = quiver_connect(&id, Windows::Small, CipherSuites::All, server.addr).await;
    let mut tasks = JoinSet::new();
    for _ in 0..STREAMS {
        let conn = conn.clone();
        tasks.spawn(async move { quiver_get(&conn, SMALL_RESPONSE).await });
    }
    within(async {
        while let Some(got) = tasks.join_next().await {
            assert_pattern(&got.expect("stream task"), SMALL_RESPONSE);
        }
    })
    .await;
}

#[tokio::test]
async fn quiver_client_quinn_server_chacha20() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let (_ep, conn) = quiver_connect(
        &id,
        Windows::Default,
        CipherSuites::ChaCha20Only,
        server.addr,
    )
    .await;
    let got = within(quiver_get(&conn, 64 * 1024)).await;
    assert_pattern(&got, 64 * 1024);
}

#[tokio::test]
async fn quiver_client_quinn_server_datagrams() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let (_ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    assert!(conn.max_datagram_size().is_some_and(|m| m >= 100));
    for i in 0..10u8 {
        let payload = bytes::Bytes::from(vec![i; 100]);
        conn.send_datagram(payload.clone()).expect("send datagram");
        let echoed = within(conn.read_datagram()).await.expect("echo");
        assert_eq!(echoed, payload);
    }
}

#[tokio::test]
async fn quiver_client_sees_quinn_server_application_close() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let (_ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    within(quiver_request_close(&conn, 42)).await;
    match within(conn.closed()).await {
        quiver::ConnectionError::ApplicationClosed { code, reason } => {
            assert_eq!(code.into_inner(), 42);
            assert_eq!(&reason[..], b"bye");
        }
        other => panic!("unexpected close: {other}"),
    }
}

#[tokio::test]
async fn quinn_server_sees_quiver_client_application_close() {
    init_tracing();
    let id = Identity::new();
    let mut server = quinn_server(&id, Windows::Default);
    let (ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    // One round trip first, so the server has surely accepted the connection.
    assert_pattern(&within(quiver_get(&conn, 10)).await, 10);
    conn.close(7u32.into(), b"client bye");
    within(ep.wait_idle()).await;
    let seen = within(server.closed.recv()).await.expect("server report");
    assert_eq!(
        seen,
        Closed::App {
            code: 7,
            reason: b"client bye".to_vec()
        }
    );
}

// ---------------------------------------------------------------------------------------
// quinn client ↔ quiver server

struct QuiverServer {
    _ep: quiver::Endpoint,
    addr: SocketAddr,
    closed: mpsc::UnboundedReceiver<Closed>,
}

fn quiver_server(id: &Identity, w: Windows) -> QuiverServer {
    let ep = quiver_server_endpoint(id, w);
    let addr = ep.local_addr().expect("local addr");
    let closed = spawn_quiver_server(ep.clone());
    QuiverServer {
        _ep: ep,
        addr,
        closed,
    }
}

async fn quinn_connect(
    id: &Identity,
    w: Windows,
    suites: CipherSuites,
    addr: SocketAddr,
) -> (quinn::Endpoint, quinn::Connection) {
    let ep = quinn::Endpoint::client(loopback()).expect("quinn client endpoint");
    let conn = within(
        ep.connect_with(quinn_client_config(id, w, suites), addr, NAME)
            .expect("connect"),
    )
    .await
    .expect("handshake");
    (ep, conn)
}

#[tokio::test]
async fn quinn_client_quiver_server_handshake() {
    init_tracing();
    let id = Identity::new();
    let server = quiver_server(&id, Windows::Default);
    let (ep, conn) = quinn_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    assert_eq!(quinn_alpn(&conn).as_deref(), Some(ALPN));
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;
}

#[tokio::test]
async fn quinn_client_quiver_server_downloads() {
    init_tracing();
    let id = Identity::new();
    let server = quiver_server(&id, Windows::Default);
    let (_ep, conn) = quinn_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    for n in [1024, 10 * 1024 * 1024] {
        let got = within(quinn_get(&conn, n)).await;
        assert_pattern(&got, n);
    }
}

#[tokio::test]
async fn quinn_client_quiver_server_many_streams_small_windows() {
    init_tracing();
    let id = Identity::new();
    let server = quiver_server(&id, Windows::Small);
    let (_ep, conn) = quinn_connect(&id, Windows::Small, CipherSuites::All, server.addr).await;
    let mut tasks = JoinSet::new();
    for _ in 0..STREAMS {
        let conn = conn.clone();
        tasks.spawn(async move { quinn_get(&conn, SMALL_RESPONSE).await });
    }
    within(async {
        while let Some(got) = tasks.join_next().await {
            assert_pattern(&got.expect("stream task"), SMALL_RESPONSE);
        }
    })
    .await;
}

#[tokio::test]
async fn quinn_client_quiver_server_chacha20() {
    init_tracing();
    let id = Identity::new();
    let server = quiver_server(&id, Windows::Default);
    let (_ep, conn) = quinn_connect(
        &id,
        Windows::Default,
        CipherSuites::ChaCha20Only,
        server.addr,
    )
    .await;
    let got = within(quinn_get(&conn, 64 * 1024)).await;
    assert_pattern(&got, 64 * 1024);
}

#[tokio::test]
async fn quinn_client_quiver_server_datagrams() {
    init_tracing();
    let id = Identity::new();
    let server = quiver_server(&id, Windows::Default);
    let (_ep, conn) = quinn_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    for i in 0..10u8 {
        let payload = bytes::Bytes::from(vec![i; 100]);
        conn.send_datagram(payload.clone()).expect("send datagram");
        let echoed = within(conn.read_datagram()).await.expect("echo");
        assert_eq!(echoed, payload);
    }
}

#[tokio::test]
async fn quinn_client_sees_quiver_server_application_close() {
    init_tracing();
    let id = Identity::new();
    let server = quiver_server(&id, Windows::Default);
    let (_ep, conn) = quinn_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    within(quinn_request_close(&conn, 42)).await;
    match within(conn.closed()).await {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code.into_inner(), 42);
            assert_eq!(&c.reason[..], b"bye");
        }
        other => panic!("unexpected close: {other}"),
    }
}

#[tokio::test]
async fn quiver_server_sees_quinn_client_application_close() {
    init_tracing();
    let id = Identity::new();
    let mut server = quiver_server(&id, Windows::Default);
    let (ep, conn) = quinn_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    assert_pattern(&within(quinn_get(&conn, 10)).await, 10);
    conn.close(7u32.into(), b"client bye");
    within(ep.wait_idle()).await;
    let seen = within(server.closed.recv()).await.expect("server report");
    assert_eq!(
        seen,
        Closed::App {
            code: 7,
            reason: b"client bye".to_vec()
        }
    );
}

// ---------------------------------------------------------------------------------------
// The harness itself: quinn ↔ quinn must pass every scenario, so that a failure above
// points at quiver rather than at the test.

#[tokio::test]
async fn harness_quinn_to_quinn() {
    init_tracing();
    let id = Identity::new();
    let mut server = quinn_server(&id, Windows::Small);
    let (ep, conn) =
        quinn_connect(&id, Windows::Small, CipherSuites::ChaCha20Only, server.addr).await;
    assert_eq!(quinn_alpn(&conn).as_deref(), Some(ALPN));
    let mut tasks = JoinSet::new();
    for _ in 0..100 {
        let conn = conn.clone();
        tasks.spawn(async move { quinn_get(&conn, SMALL_RESPONSE).await });
    }
    within(async {
        while let Some(got) = tasks.join_next().await {
            assert_pattern(&got.expect("stream task"), SMALL_RESPONSE);
        }
    })
    .await;
    conn.send_datagram(bytes::Bytes::from_static(b"ping"))
        .expect("datagram");
    assert_eq!(
        &within(conn.read_datagram()).await.expect("echo")[..],
        b"ping"
    );
    conn.close(7u32.into(), b"client bye");
    within(ep.wait_idle()).await;
    let seen = within(server.closed.recv()).await.expect("server report");
    assert_eq!(
        seen,
        Closed::App {
            code: 7,
            reason: b"client bye".to_vec()
        }
    );
}

// ---------------------------------------------------------------------------------------
// path MTU discovery (both stacks probe; each answers the other's probes as ordinary
// packets)

/// Wait until `mtu()` exceeds the 1200-byte base (probes take a round trip or so).
async fn mtu_above_base(mtu: impl Fn() -> u16) -> u16 {
    within(async {
        loop {
            let m = mtu();
            if m > 1200 {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
}

#[tokio::test]
async fn quiver_client_quinn_server_pmtud() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let (_ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    let n = 4 * 1024 * 1024;
    let got = within(quiver_get(&conn, n)).await;
    assert_pattern(&got, n);
    // Our probes were acknowledged by quinn: the default upper bound, 1452 bytes,
    // fits loopback.
    let mtu = mtu_above_base(|| conn.stats().path_mtu).await;
    assert_eq!(mtu, 1452, "{:?}", conn.stats());
    assert_eq!(conn.stats().mtu_black_holes, 0);
}

#[tokio::test]
async fn quinn_client_quiver_server_pmtud() {
    init_tracing();
    let id = Identity::new();
    let ep = quiver_server_endpoint(&id, Windows::Default);
    let addr = ep.local_addr().expect("local addr");
    // A one-connection server that keeps its connection, to read our side's stats.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server_ep = ep.clone();
    tokio::spawn(async move {
        let Some(conn) = server_ep.accept().await else {
            return;
        };
        let _ = tx.send(conn.clone());
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            tokio::spawn(async move {
                let Ok(req) = recv.read_to_end(64).await else {
                    return;
                };
                let Some(n) = req
                    .strip_prefix(b"G")
                    .and_then(|r| <[u8; 8]>::try_from(r).ok())
                    .map(u64::from_be_bytes)
                else {
                    return;
                };
                if send.write_all(&pattern(n)).await.is_ok() {
                    let _ = send.finish();
                }
            });
        }
    });
    let (_qep, conn) = quinn_connect(&id, Windows::Default, CipherSuites::All, addr).await;
    let server_conn = within(rx.recv()).await.expect("accepted");
    let n = 4 * 1024 * 1024;
    let got = within(quinn_get(&conn, n)).await;
    assert_pattern(&got, n);
    // quiver (the sender) raised its MTU after quinn acknowledged its probes ...
    let mtu = mtu_above_base(|| server_conn.stats().path_mtu).await;
    assert_eq!(mtu, 1452, "{:?}", server_conn.stats());
    // ... and quinn's own probes were answered by quiver (bounded by our advertised
    // max_udp_payload_size of 1472).
    let quinn_mtu = mtu_above_base(|| conn.stats().path.current_mtu).await;
    assert!(quinn_mtu <= 1472, "quinn MTU {quinn_mtu}");
    drop(ep);
}

// ---------------------------------------------------------------------------------------
// Key update (RFC 9001 §6), both directions.

/// A quiver client initiates a key update before each of several downloads; quinn
/// follows each one (otherwise it could not open the client's packets and the
/// transfers would stall), and the data arrives intact.
#[tokio::test]
async fn quiver_client_initiates_key_updates_with_quinn_server() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let (_ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    const N: u64 = 1024 * 1024;
    for _ in 0..4 {
        // Performed now, or as soon as the previous phase is acknowledged.
        conn.initiate_key_update();
        let got = within(quiver_get(&conn, N)).await;
        assert_pattern(&got, N);
    }
    let s = conn.stats();
    assert!(s.key_updates_initiated >= 3, "{s:?}");
    assert_eq!(s.auth_failures, 0, "{s:?}");
    assert!(conn.close_reason().is_none());
}

/// A quinn client forces key updates (`force_key_update`) between downloads from a
/// quiver server; the server follows each one and every download arrives intact.
#[tokio::test]
async fn quinn_client_key_updates_followed_by_quiver_server() {
    init_tracing();
    let id = Identity::new();
    let ep = quiver_server_endpoint(&id, Windows::Default);
    let addr = ep.local_addr().expect("local addr");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server_ep = ep.clone();
    tokio::spawn(async move {
        while let Some(conn) = server_ep.accept().await {
            let _ = tx.send(conn.clone());
            tokio::spawn(async move {
                while let Ok((send, recv)) = conn.accept_bi().await {
                    tokio::spawn(quiver_respond(conn.clone(), send, recv));
                }
            });
        }
    });
    let (_cep, conn) = quinn_connect(&id, Windows::Default, CipherSuites::All, addr).await;
    const N: u64 = 1024 * 1024;
    assert_pattern(&within(quinn_get(&conn, N)).await, N);
    let server_conn = within(rx.recv()).await.expect("server connection");
    for target in 1..=3 {
        // quinn ignores a forced update while it still keeps the previous keys (about
        // three PTOs after the last update): retry until the server followed it.
        within(async {
            loop {
                conn.force_key_update();
                assert_pattern(&quinn_get(&conn, N).await, N);
                if server_conn.stats().key_updates_followed >= target {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await;
    }
    let s = server_conn.stats();
    assert_eq!(s.key_updates_followed, 3, "{s:?}");
    assert_eq!(s.key_updates_initiated, 0, "{s:?}");
    assert_eq!(s.auth_failures, 0, "{s:?}");
    assert!(conn.close_reason().is_none());
}

// ---------------------------------------------------------------------------------------
// Session resumption and 0-RTT (RFC 9001 §4.5–§4.6), both directions.

/// A quiver client connects to a quinn server once (receiving tickets), then again with
/// the same configuration: the second handshake resumes and the request goes out in
/// 0-RTT packets, which quinn accepts.
#[tokio::test]
async fn quiver_client_resumes_with_0rtt_to_quinn_server() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let config = quiver_client_config(&id, Windows::Default, CipherSuites::All);
    let ep = quiver::Endpoint::client(loopback()).expect("client endpoint");

    let first = within(
        ep.connect_with(config.clone(), server.addr, NAME)
            .expect("connect"),
    )
    .await
    .expect("handshake");
    assert!(!first.is_resumed());
    assert_pattern(&within(quiver_get(&first, 1024)).await, 1024);
    first.close(0u32.into(), b"done");

    let connecting = ep.connect_with(config, server.addr, NAME).expect("connect");
    let Ok((conn, accepted)) = connecting.into_0rtt() else {
        panic!("no 0-RTT on the second connection (no ticket?)");
    };
    let n = 64 * 1024;
    let got = within(quiver_get(&conn, n)).await;
    assert_pattern(&got, n);
    assert!(within(accepted).await, "quinn accepted the early data");
    assert!(conn.is_resumed());
    assert!(conn.is_0rtt());
    let s = conn.stats();
    assert!(s.zero_rtt_packets_sent > 0, "{s:?}");
    assert_eq!(
        s.zero_rtt_packets_accepted, s.zero_rtt_packets_sent,
        "{s:?}"
    );
    assert_eq!(s.zero_rtt_packets_rejected, 0, "{s:?}");
}

/// The ticket comes from one quinn server, the second connection reaches another one
/// under the same name that never issued it: the early data is rejected, and the quiver
/// client resends it in 1-RTT without the application noticing.
#[tokio::test]
async fn quiver_client_0rtt_rejected_by_quinn_server_is_resent() {
    init_tracing();
    let id = Identity::new();
    let issuer = quinn_server(&id, Windows::Default);
    let other = quinn_server(&id, Windows::Default);
    let config = quiver_client_config(&id, Windows::Default, CipherSuites::All);
    let ep = quiver::Endpoint::client(loopback()).expect("client endpoint");
    let first = within(
        ep.connect_with(config.clone(), issuer.addr, NAME)
            .expect("connect"),
    )
    .await
    .expect("handshake");
    assert_pattern(&within(quiver_get(&first, 1024)).await, 1024);
    first.close(0u32.into(), b"done");

    let connecting = ep.connect_with(config, other.addr, NAME).expect("connect");
    let Ok((conn, accepted)) = connecting.into_0rtt() else {
        panic!("no 0-RTT on the second connection (no ticket?)");
    };
    let n = 64 * 1024;
    let got = within(quiver_get(&conn, n)).await;
    assert_pattern(&got, n);
    assert!(
        !within(accepted).await,
        "the other server cannot accept the ticket"
    );
    assert!(!conn.is_resumed());
    assert_eq!(conn.zero_rtt_status(), quiver::ZeroRttStatus::Rejected);
    let s = conn.stats();
    assert!(s.zero_rtt_packets_sent > 0, "{s:?}");
    assert_eq!(
        s.zero_rtt_packets_rejected, s.zero_rtt_packets_sent,
        "{s:?}"
    );
}

/// Serve the test protocol on a quiver endpoint and hand each accepted connection out.
fn quiver_server_handing_out(ep: quiver::Endpoint) -> mpsc::UnboundedReceiver<quiver::Connection> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(conn) = ep.accept().await {
            let _ = tx.send(conn.clone());
            tokio::spawn(async move {
                while let Ok((send, recv)) = conn.accept_bi().await {
                    tokio::spawn(quiver_respond(conn.clone(), send, recv));
                }
            });
        }
    });
    rx
}

/// A quinn client resumes its session with a quiver server and sends its request in
/// 0-RTT (`Connecting::into_0rtt`); the quiver server accepts and answers it.
#[tokio::test]
async fn quinn_client_resumes_with_0rtt_to_quiver_server() {
    init_tracing();
    let id = Identity::new();
    let ep = quiver_server_endpoint(&id, Windows::Default);
    let addr = ep.local_addr().expect("local addr");
    let mut accepted_conns = quiver_server_handing_out(ep.clone());
    let config = quinn_client_config(&id, Windows::Default, CipherSuites::All);
    let qep = quinn::Endpoint::client(loopback()).expect("quinn client endpoint");

    let first = within(
        qep.connect_with(config.clone(), addr, NAME)
            .expect("connect"),
    )
    .await
    .expect("handshake");
    assert_pattern(&within(quinn_get(&first, 1024)).await, 1024);
    let server_first = within(accepted_conns.recv()).await.expect("accepted");
    assert!(!server_first.is_resumed());
    first.close(0u32.into(), b"done");

    let connecting = qep.connect_with(config, addr, NAME).expect("connect");
    let Ok((conn, accepted)) = connecting.into_0rtt() else {
        panic!("quinn found no 0-RTT ticket from the quiver server");
    };
    let n = 64 * 1024;
    let got = within(quinn_get(&conn, n)).await;
    assert_pattern(&got, n);
    assert!(within(accepted).await, "quiver accepted the early data");
    let server_conn = within(accepted_conns.recv()).await.expect("accepted");
    assert!(server_conn.is_resumed());
    assert!(server_conn.is_0rtt());
    let s = server_conn.stats();
    assert!(s.zero_rtt_packets_accepted > 0, "{s:?}");
    assert_eq!(s.zero_rtt_packets_rejected, 0, "{s:?}");
}

/// A quiver server with `zero_rtt` off still resumes quinn's session but rejects its
/// early data; quinn reports the rejection.
#[tokio::test]
async fn quinn_client_0rtt_rejected_by_quiver_server_without_0rtt() {
    init_tracing();
    let id = Identity::new();
    let mut config = quiver::ServerConfig::new(Arc::new(id.server_tls()));
    config.transport = quiver_transport(Windows::Default);
    config.zero_rtt = false;
    let ep = quiver::Endpoint::server(config, loopback()).expect("quiver server endpoint");
    let addr = ep.local_addr().expect("local addr");
    let mut accepted_conns = quiver_server_handing_out(ep.clone());
    let client_config = quinn_client_config(&id, Windows::Default, CipherSuites::All);
    let qep = quinn::Endpoint::client(loopback()).expect("quinn client endpoint");

    let first = within(
        qep.connect_with(client_config.clone(), addr, NAME)
            .expect("connect"),
    )
    .await
    .expect("handshake");
    assert_pattern(&within(quinn_get(&first, 1024)).await, 1024);
    first.close(0u32.into(), b"done");
    let _ = within(accepted_conns.recv()).await.expect("accepted");

    let connecting = qep
        .connect_with(client_config, addr, NAME)
        .expect("connect");
    let Ok((conn, accepted)) = connecting.into_0rtt() else {
        panic!("quinn found no 0-RTT ticket from the quiver server");
    };
    assert!(!within(accepted).await, "quiver must reject the early data");
    // quinn's own rule after a rejection: streams opened early are gone; new ones work.
    assert_pattern(&within(quinn_get(&conn, 1024)).await, 1024);
    let server_conn = within(accepted_conns.recv()).await.expect("accepted");
    assert!(server_conn.is_resumed());
    assert!(!server_conn.is_0rtt());
}

// ---------------------------------------------------------------------------------------
// Migration (RFC 9000 §9): a client rebinds its socket mid-transfer; the server's
// preferred address (§9.6).

/// Response size of the migration tests; the rebind happens after `REBIND_AFTER` bytes.
const MIGRATION_RESPONSE: u64 = 8 * 1024 * 1024;
const REBIND_AFTER: usize = 1024 * 1024;

fn fresh_socket() -> std::net::UdpSocket {
    std::net::UdpSocket::bind(loopback()).expect("new client socket")
}

#[tokio::test]
async fn quinn_client_rebinds_against_quiver_server() {
    init_tracing();
    let id = Identity::new();
    let ep = quiver_server_endpoint(&id, Windows::Default);
    let addr = ep.local_addr().expect("local addr");
    let (tx, mut conns) = mpsc::unbounded_channel();
    let _closed = spawn_quiver_server_with(ep.clone(), Some(tx));
    let (qep, conn) = quinn_connect(&id, Windows::Default, CipherSuites::All, addr).await;
    let server_conn = within(conns.recv()).await.expect("accepted");
    let old = qep.local_addr().expect("client addr");
    assert_eq!(server_conn.remote_address(), old);
    let got = within(async {
        let (mut send, mut recv) = conn.open_bi().await.expect("open_bi");
        send.write_all(&get_request(MIGRATION_RESPONSE))
            .await
            .expect("request");
        send.finish().expect("finish");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut rebound = false;
        while let Some(n) = recv.read(&mut buf).await.expect("read") {
            got.extend_from_slice(&buf[..n]);
            if !rebound && got.len() >= REBIND_AFTER {
                // Mid-transfer: quinn moves to a new local port.
                qep.rebind(fresh_socket()).expect("rebind");
                rebound = true;
            }
        }
        assert!(rebound, "the response was too short to rebind during it");
        got
    })
    .await;
    assert_pattern(&got, MIGRATION_RESPONSE);
    let new = qep.local_addr().expect("client addr");
    assert_ne!(new, old);
    // The quiver server followed the client to its new address after validating it.
    assert_eq!(server_conn.remote_address(), new);
    let stats = server_conn.stats();
    assert_eq!(stats.migrations, 1, "{stats:?}");
    assert!(stats.paths_validated >= 1, "{stats:?}");
    assert_eq!(
        server_conn.path_state(),
        quiver::PathState::Validated,
        "{stats:?}"
    );
}

#[tokio::test]
async fn quiver_client_rebinds_against_quinn_server() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let (ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    let old = ep.local_addr().expect("client addr");
    let got = within(async {
        let (mut send, mut recv) = conn.open_bi().await.expect("open_bi");
        send.write_all(&get_request(MIGRATION_RESPONSE))
            .await
            .expect("request");
        send.finish().expect("finish");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut rebound = false;
        while let Some(n) = recv.read(&mut buf).await.expect("read") {
            got.extend_from_slice(&buf[..n]);
            if !rebound && got.len() >= REBIND_AFTER {
                ep.rebind(fresh_socket()).expect("rebind");
                rebound = true;
            }
        }
        assert!(rebound, "the response was too short to rebind during it");
        got
    })
    .await;
    assert_pattern(&got, MIGRATION_RESPONSE);
    assert_ne!(ep.local_addr().expect("client addr"), old);
    let stats = conn.stats();
    assert_eq!(stats.migrations, 1, "{stats:?}");
    // quinn answered our PATH_CHALLENGE from the new address.
    assert!(stats.paths_validated >= 1, "{stats:?}");
    assert_eq!(conn.path_state(), quiver::PathState::Validated);
    // And the connection keeps working from there.
    assert_pattern(&within(quiver_get(&conn, 1000)).await, 1000);
}

#[tokio::test]
async fn quiver_client_refuses_rebind_when_quinn_disables_migration() {
    init_tracing();
    let id = Identity::new();
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(id.server_tls())
        .expect("quinn server crypto");
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.migration(false);
    let qep = quinn::Endpoint::server(config, loopback()).expect("quinn server");
    let addr = qep.local_addr().expect("addr");
    let _closed = spawn_quinn_server(qep.clone());
    let (ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, addr).await;
    // Wait for HANDSHAKE_DONE: before it, migration is refused for another reason.
    assert_pattern(&within(quiver_get(&conn, 1000)).await, 1000);
    let old = ep.local_addr().expect("addr");
    let err = ep
        .rebind(fresh_socket())
        .expect_err("peer disabled migration");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert_eq!(ep.local_addr().expect("addr"), old, "socket unchanged");
    assert_pattern(&within(quiver_get(&conn, 1000)).await, 1000);
}

#[tokio::test]
async fn quiver_client_moves_to_quinn_server_preferred_address() {
    init_tracing();
    let id = Identity::new();
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(id.server_tls())
        .expect("quinn server crypto");
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    // The server listens on every loopback address; clients connect to 127.0.0.1 and
    // are offered 127.0.0.2 on the same port.
    let qep = quinn::Endpoint::server(config.clone(), SocketAddr::from(([0, 0, 0, 0], 0)))
        .expect("quinn server");
    let port = qep.local_addr().expect("addr").port();
    let preferred = std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(127, 0, 0, 2), port);
    config.preferred_address_v4(Some(preferred));
    qep.set_server_config(Some(config));
    let _closed = spawn_quinn_server(qep.clone());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (_ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, addr).await;
    // The move happens after the handshake is confirmed and the probe is answered.
    let n = 2 * 1024 * 1024;
    assert_pattern(&within(quiver_get(&conn, n)).await, n);
    within(async {
        while conn.remote_address() != SocketAddr::V4(preferred) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(conn.stats().migrations, 1);
    assert_pattern(&within(quiver_get(&conn, n)).await, n);
}

// ---------------------------------------------------------------------------------------
// Address validation: Retry and NEW_TOKEN (RFC 9000 §8.1)

/// Echo one bidirectional stream (request up to FIN, same bytes back).
async fn quinn_echo_once(conn: &quinn::Connection) -> Option<()> {
    let (mut send, mut recv) = conn.accept_bi().await.ok()?;
    let data = recv.read_to_end(64 * 1024).await.ok()?;
    send.write_all(&data).await.ok()?;
    send.finish().ok()
}

async fn quiver_echo_once(conn: &quiver::Connection) -> Option<()> {
    let (mut send, mut recv) = conn.accept_bi().await.ok()?;
    let data = recv.read_to_end(64 * 1024).await.ok()?;
    send.write_all(&data).await.ok()?;
    send.finish().ok()
}

/// A quiver server that answers every Initial without a valid token with a Retry and
/// reports, per accepted connection, `(retries, address_validated_by_token)`.
fn quiver_retry_server(id: &Identity) -> (quiver::Endpoint, mpsc::UnboundedReceiver<(u64, bool)>) {
    let mut config = quiver::ServerConfig::new(std::sync::Arc::new(id.server_tls()));
    config.validation.retry = true;
    let ep = quiver::Endpoint::server(config, loopback()).expect("quiver server endpoint");
    let (tx, rx) = mpsc::unbounded_channel();
    let accept = ep.clone();
    tokio::spawn(async move {
        while let Some(conn) = accept.accept().await {
            let s = conn.stats();
            let _ = tx.send((s.retries, s.address_validated_by_token));
            tokio::spawn(async move { while quiver_echo_once(&conn).await.is_some() {} });
        }
    });
    (ep, rx)
}

async fn quinn_echo(conn: &quinn::Connection, msg: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.expect("open_bi");
    send.write_all(msg).await.expect("write");
    send.finish().expect("finish");
    recv.read_to_end(64 * 1024).await.expect("read")
}

#[tokio::test]
async fn quinn_client_quiver_server_retry_then_new_token() {
    init_tracing();
    let id = Identity::new();
    let (server, mut accepted) = quiver_retry_server(&id);
    let addr = server.local_addr().expect("addr");
    let ep = quinn::Endpoint::client(loopback()).expect("quinn client endpoint");
    let config = quinn_client_config(&id, Windows::Default, CipherSuites::All);

    // First connection: the server forces a Retry.
    let conn = within(
        ep.connect_with(config.clone(), addr, NAME)
            .expect("connect"),
    )
    .await
    .expect("handshake after Retry");
    assert_eq!(within(quinn_echo(&conn, b"first")).await, b"first");
    assert_eq!(within(accepted.recv()).await, Some((1, true)), "Retry used");
    // The echo round trip above lets the server's NEW_TOKEN arrive.
    assert!(
        conn.stats().frame_rx.new_token >= 1,
        "quinn got a NEW_TOKEN"
    );
    conn.close(0u32.into(), b"done");

    // Second connection from the same quinn endpoint: quinn presents the NEW_TOKEN
    // token, so the quiver server validates the address without a Retry.
    let conn = within(ep.connect_with(config, addr, NAME).expect("connect"))
        .await
        .expect("handshake with token");
    assert_eq!(within(quinn_echo(&conn, b"second")).await, b"second");
    assert_eq!(
        within(accepted.recv()).await,
        Some((0, true)),
        "validated by the NEW_TOKEN token, no Retry"
    );
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;
}

#[tokio::test]
async fn quiver_client_quinn_server_retry() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server_endpoint(&id, Windows::Default);
    let addr = server.local_addr().expect("addr");
    let (tx, mut retried) = mpsc::unbounded_channel();
    let accept = server.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accept.accept().await {
            if !incoming.remote_address_validated() {
                let _ = tx.send(());
                incoming.retry().expect("retry");
                continue;
            }
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while quinn_echo_once(&conn).await.is_some() {}
            });
        }
    });
    let (ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, addr).await;
    assert!(within(retried.recv()).await.is_some(), "quinn sent a Retry");
    assert_eq!(conn.stats().retries, 1, "quiver followed the Retry");
    let (mut send, mut recv) = within(conn.open_bi()).await.expect("open_bi");
    send.write_all(b"after retry").await.expect("write");
    send.finish().expect("finish");
    assert_eq!(
        within(recv.read_to_end(1024)).await.expect("read"),
        b"after retry"
    );
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;
}

// ECN (RFC 9000 §13.4): both stacks mark ECT(0) and echo the other's counts in ACK_ECN
// frames; loopback keeps the marks.

/// Checks one quiver connection after a transfer: it validated ECN with quinn (quinn's
/// ACK_ECN counts matched what we sent), and quinn kept marking what it sent to us —
/// quinn stops marking when our counts fail *its* validation, so nearly every packet
/// we received arriving ECT(0) shows that quinn validated us.
fn assert_ecn_validated_both_ways(stats: &quiver::ConnectionStats) {
    assert_eq!(
        stats.ecn_state,
        quiver_proto::recovery::EcnState::Capable,
        "{stats:?}"
    );
    assert_eq!(stats.ecn_ce_reported, 0, "{stats:?}");
    assert_eq!((stats.ecn_received.ect1, stats.ecn_received.ce), (0, 0));
    assert!(
        stats.ecn_received.ect0 * 10 >= stats.packets_rx * 9,
        "quinn stopped marking: {:?} of {} packets",
        stats.ecn_received,
        stats.packets_rx
    );
}

#[tokio::test]
async fn quiver_client_quinn_server_ecn() {
    init_tracing();
    let id = Identity::new();
    let server = quinn_server(&id, Windows::Default);
    let (_ep, conn) = quiver_connect(&id, Windows::Default, CipherSuites::All, server.addr).await;
    let n = 4 * 1024 * 1024;
    let got = within(quiver_get(&conn, n)).await;
    assert_pattern(&got, n);
    assert_ecn_validated_both_ways(&conn.stats());
}

#[tokio::test]
async fn quinn_client_quiver_server_ecn() {
    init_tracing();
    let id = Identity::new();
    let ep = quiver_server_endpoint(&id, Windows::Default);
    let addr = ep.local_addr().expect("local addr");
    let mut accepted = quiver_server_handing_out(ep.clone());
    let (_qep, conn) = quinn_connect(&id, Windows::Default, CipherSuites::All, addr).await;
    let server_conn = within(accepted.recv()).await.expect("accepted");
    let n = 4 * 1024 * 1024;
    let got = within(quinn_get(&conn, n)).await;
    assert_pattern(&got, n);
    assert_ecn_validated_both_ways(&server_conn.stats());
    drop(ep);
}
