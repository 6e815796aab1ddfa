//! quiver client ↔ quiver server over loopback UDP: the key scenarios of the quinn
//! interop tests, plus runtime API behaviour (stream drop semantics, endpoint close).

mod common;

use common::*;
use quiver::tls::CipherSuites;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

struct Pair {
    server_ep: quiver::Endpoint,
    closed: tokio::sync::mpsc::UnboundedReceiver<Closed>,
    client_ep: quiver::Endpoint,
    conn: quiver::Connection,
}

async fn pair(w: Windows, suites: CipherSuites) -> Pair {
    let id = Identity::new();
    let server_ep = quiver_server_endpoint(&id, w);
    let addr = server_ep.local_addr().expect("local addr");
    let closed = spawn_quiver_server(server_ep.clone());
    let client_ep = quiver::Endpoint::client(loopback()).expect("client endpoint");
    client_ep.set_default_client_config(quiver_client_config(&id, w, suites));
    let conn = within(client_ep.connect(addr, NAME).expect("connect"))
        .await
        .expect("handshake");
    Pair {
        server_ep,
        closed,
        client_ep,
        conn,
    }
}

#[tokio::test]
async fn handshake_and_downloads() {
    init_tracing();
    let p = pair(Windows::Default, CipherSuites::All).await;
    assert_eq!(p.conn.alpn_protocol().as_deref(), Some(ALPN));
    assert_eq!(p.conn.side(), quiver::Side::Client);
    for n in [0, 1024, 10 * 1024 * 1024] {
        let got = within(quiver_get(&p.conn, n)).await;
        assert_pattern(&got, n);
    }
    assert!(p.conn.stats().bytes_rx > 10 * 1024 * 1024);
}

#[tokio::test]
async fn many_streams_small_windows() {
    init_tracing();
    let p = pair(Windows::Small, CipherSuites::All).await;
    let mut tasks = JoinSet::new();
    for _ in 0..1000 {
        let conn = p.conn.clone();
        tasks.spawn(async move { quiver_get(&conn, 2 * SMALL_STREAM_WINDOW as u64).await });
    }
    within(async {
        while let Some(got) = tasks.join_next().await {
            assert_pattern(&got.expect("stream task"), 2 * SMALL_STREAM_WINDOW as u64);
        }
    })
    .await;
}

#[tokio::test]
async fn chacha20_only() {
    init_tracing();
    let p = pair(Windows::Default, CipherSuites::ChaCha20Only).await;
    assert_pattern(&within(quiver_get(&p.conn, 100_000)).await, 100_000);
}

#[tokio::test]
async fn datagrams_echo() {
    init_tracing();
    let p = pair(Windows::Default, CipherSuites::All).await;
    let max = p.conn.max_datagram_size().expect("datagrams supported");
    let too_big = bytes::Bytes::from(vec![0; max + 1]);
    assert_eq!(
        p.conn.send_datagram(too_big),
        Err(quiver::SendDatagramError::TooLarge)
    );
    for i in 0..10u8 {
        let payload = bytes::Bytes::from(vec![i; 200]);
        p.conn.send_datagram(payload.clone()).expect("send");
        assert_eq!(within(p.conn.read_datagram()).await.expect("echo"), payload);
    }
}

#[tokio::test]
async fn application_close_both_ways() {
    init_tracing();
    // Server closes.
    let p = pair(Windows::Default, CipherSuites::All).await;
    within(quiver_request_close(&p.conn, 42)).await;
    match within(p.conn.closed()).await {
        quiver::ConnectionError::ApplicationClosed { code, reason } => {
            assert_eq!(code.into_inner(), 42);
            assert_eq!(&reason[..], b"bye");
        }
        other => panic!("unexpected close: {other}"),
    }
    // Operations on the closed connection fail with the reason.
    assert!(matches!(
        p.conn.open_bi().await,
        Err(quiver::ConnectionError::ApplicationClosed { .. })
    ));

    // Client closes.
    let mut p = pair(Windows::Default, CipherSuites::All).await;
    assert_pattern(&within(quiver_get(&p.conn, 10)).await, 10);
    p.conn.close(7u32.into(), b"client bye");
    assert_eq!(
        within(p.conn.closed()).await,
        quiver::ConnectionError::LocallyClosed
    );
    within(p.client_ep.wait_idle()).await;
    let seen = within(p.closed.recv()).await.expect("server report");
    assert_eq!(
        seen,
        Closed::App {
            code: 7,
            reason: b"client bye".to_vec()
        }
    );
}

#[tokio::test]
async fn async_read_write_and_implicit_finish() {
    init_tracing();
    let p = pair(Windows::Default, CipherSuites::All).await;
    // tokio::io traits: write the request with AsyncWriteExt, drop the stream without
    // finish (implicit FIN), read with AsyncReadExt.
    let (mut send, mut recv) = within(p.conn.open_bi()).await.expect("open_bi");
    AsyncWriteExt::write_all(&mut send, &get_request(5000))
        .await
        .expect("write");
    drop(send);
    let mut got = Vec::new();
    within(AsyncReadExt::read_to_end(&mut recv, &mut got))
        .await
        .expect("read");
    assert_pattern(&got, 5000);
}

#[tokio::test]
async fn stopped_reports_acknowledged_finish() {
    init_tracing();
    let p = pair(Windows::Default, CipherSuites::All).await;
    let (mut send, mut recv) = within(p.conn.open_bi()).await.expect("open_bi");
    send.write_all(&get_request(10)).await.expect("write");
    send.finish().expect("finish");
    assert_pattern(&within(recv.read_to_end(100)).await.expect("read"), 10);
    assert_eq!(within(send.stopped()).await, Ok(None));
}

#[tokio::test]
async fn endpoint_close_ends_accept_and_connections() {
    init_tracing();
    let p = pair(Windows::Default, CipherSuites::All).await;
    p.server_ep.close(3u32.into(), b"shutdown");
    match within(p.conn.closed()).await {
        quiver::ConnectionError::ApplicationClosed { code, .. } => {
            assert_eq!(code.into_inner(), 3)
        }
        other => panic!("unexpected close: {other}"),
    }
    assert!(within(p.server_ep.accept()).await.is_none());
    within(p.server_ep.wait_idle()).await;
}

/// quiver ↔ quiver: the second connection of a client endpoint resumes and sends its
/// requests in 0-RTT; `into_0rtt` is refused when there is no ticket (first connection).
#[tokio::test]
async fn resumption_and_0rtt() {
    init_tracing();
    let p = pair(Windows::Default, CipherSuites::All).await;
    let addr = p.conn.remote_address();
    assert!(!p.conn.is_resumed());
    assert_pattern(&within(quiver_get(&p.conn, 1024)).await, 1024);
    p.conn.close(0u32.into(), b"done");

    // Another client endpoint with a fresh TLS configuration has no ticket.
    let id_less = quiver::Endpoint::client(loopback()).expect("client endpoint");
    let fresh = quiver_client_config(&Identity::new(), Windows::Default, CipherSuites::All);
    let connecting = id_less.connect_with(fresh, addr, NAME).expect("connect");
    let Err(connecting) = connecting.into_0rtt() else {
        panic!("0-RTT without a ticket");
    };
    drop(connecting);

    let connecting = p.client_ep.connect(addr, NAME).expect("connect");
    let Ok((conn, accepted)) = connecting.into_0rtt() else {
        panic!("no 0-RTT on the resumed connection");
    };
    assert_eq!(conn.zero_rtt_status(), quiver::ZeroRttStatus::Pending);
    let n = 256 * 1024;
    assert_pattern(&within(quiver_get(&conn, n)).await, n);
    assert!(within(accepted).await);
    assert!(conn.is_resumed() && conn.is_0rtt());
    let s = conn.stats();
    assert!(s.zero_rtt_packets_sent > 0, "{s:?}");
    assert_eq!(s.zero_rtt_packets_rejected, 0, "{s:?}");
}

/// Server preferred address (RFC 9000 §9.6) through the runtime: the server listens on
/// every address of its port and offers 127.0.0.2; the client connects to 127.0.0.1,
/// probes the preferred address, moves there, and the server answers from it (its
/// `src_ip` follows the address the client's packets arrive at).
#[tokio::test]
async fn client_moves_to_server_preferred_address() {
    init_tracing();
    let id = Identity::new();
    let mut config = quiver::ServerConfig::new(std::sync::Arc::new(id.server_tls()));
    config.transport = quiver_transport(Windows::Default);
    let server_ep = quiver::Endpoint::server(config.clone(), "0.0.0.0:0".parse().unwrap())
        .expect("server endpoint");
    let port = server_ep.local_addr().expect("addr").port();
    let preferred = std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(127, 0, 0, 2), port);
    config.preferred_address = Some(quiver::config::PreferredAddressConfig {
        v4: Some(preferred),
        v6: None,
    });
    server_ep.set_server_config(Some(config));
    let (tx, mut conns) = tokio::sync::mpsc::unbounded_channel();
    let _closed = spawn_quiver_server_with(server_ep.clone(), Some(tx));
    let client_ep = quiver::Endpoint::client(loopback()).expect("client endpoint");
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let conn = within(
        client_ep
            .connect_with(
                quiver_client_config(&id, Windows::Default, CipherSuites::All),
                addr,
                NAME,
            )
            .expect("connect"),
    )
    .await
    .expect("handshake");
    let server_conn = within(conns.recv()).await.expect("accepted");
    let n = 1024 * 1024;
    assert_pattern(&within(quiver_get(&conn, n)).await, n);
    within(async {
        while conn.remote_address() != std::net::SocketAddr::V4(preferred) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(conn.path_state(), quiver::PathState::Validated);
    assert_eq!(conn.stats().migrations, 1);
    // Traffic after the move reaches the server at its preferred address.
    assert_pattern(&within(quiver_get(&conn, n)).await, n);
    assert_eq!(
        server_conn.remote_address(),
        client_ep.local_addr().unwrap()
    );
    assert_eq!(
        server_conn.stats().migrations,
        0,
        "the client's address did not change"
    );
    assert_eq!(
        server_conn.local_ip(),
        Some(std::net::IpAddr::V4(*preferred.ip())),
        "the server sends from its preferred address"
    );
}

#[tokio::test]
async fn poll_based_api_opens_reads_writes_and_reclasses() {
    use std::future::poll_fn;
    init_tracing();
    let p = pair(Windows::Default, CipherSuites::All).await;
    let class = quiver::StreamClass::new();
    let (mut send, mut recv) = within(poll_fn(|cx| p.conn.poll_open_bi(cx, &class)))
        .await
        .expect("poll_open_bi");
    let mut urgent = class;
    urgent.priority = 0;
    p.conn
        .set_stream_class(send.id(), &urgent)
        .expect("set_stream_class on an open stream");
    let req = get_request(5000);
    let mut at = 0;
    while at < req.len() {
        at += within(poll_fn(|cx| send.poll_send(cx, &req[at..])))
            .await
            .expect("poll_send");
    }
    send.finish().expect("finish");
    let mut got = Vec::new();
    while let Some(chunk) = within(poll_fn(|cx| recv.poll_read_chunk(cx, 1000)))
        .await
        .expect("poll_read_chunk")
    {
        assert!(chunk.len() <= 1000);
        got.extend_from_slice(&chunk);
    }
    assert_pattern(&got, 5000);
    // A stream that was never opened cannot be re-classed.
    assert!(p
        .conn
        .set_stream_class(quiver::StreamId(4000), &urgent)
        .is_err());
    // Datagrams through the poll API: the test server echoes them.
    p.conn
        .send_datagram(bytes::Bytes::from_static(b"dg"))
        .expect("send datagram");
    let d = within(poll_fn(|cx| p.conn.poll_read_datagram(cx)))
        .await
        .expect("poll_read_datagram");
    assert_eq!(&d[..], b"dg");
}
