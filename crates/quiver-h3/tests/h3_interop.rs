//! HTTP/3 interop through real loopback sockets: quinn + h3-quinn against Quiver's
//! HTTP/3 (quiver-h3) in both directions — GETs of several sizes, concurrent requests,
//! echo bodies, HTTP Datagrams on several request streams, resets and malformed input.

use bytes::{Buf, Bytes, BytesMut};
use h3::ext::Protocol;
use quiver_h3::{Client, Priority, Server};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const NAME: &str = "localhost";
const TIMEOUT: Duration = Duration::from_secs(60);
const SIZES: [usize; 5] = [0, 1, 1_000, 100_000, 1_000_000];

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .expect("test step timed out")
}

fn pattern(n: usize) -> Bytes {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

struct Identity {
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl Identity {
    fn new() -> Self {
        let (certs, key) = quiver::tls::self_signed(&[NAME]).expect("certificate");
        Self { certs, key }
    }
    fn server_tls(&self) -> rustls::ServerConfig {
        quiver::tls::server_config(self.certs.clone(), self.key.clone_key(), &[quiver_h3::ALPN])
            .expect("server tls")
    }
    fn client_tls(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.certs[0].clone()).expect("root");
        quiver::tls::client_config(roots, &[quiver_h3::ALPN], quiver::tls::CipherSuites::All)
            .expect("client tls")
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// What the servers answer (both stacks): `/size/N` → N pattern bytes; `/echo` → the
/// body; `/reset` → RESET_STREAM (H3_REQUEST_REJECTED) after the headers; `/priority`
/// → the urgency the server applied (Quiver server only); a CONNECT (extended, with
/// `:protocol connect-udp`) → 200 and the stream stays open until the client ends it.
fn route(path: &str) -> Route {
    if let Some(n) = path.strip_prefix("/size/") {
        return match n.parse::<usize>() {
            Ok(n) => Route::Size(n),
            Err(_) => Route::BadRequest,
        };
    }
    match path {
        "/echo" => Route::Echo,
        "/reset" => Route::Reset,
        "/priority" => Route::Priority,
        _ => Route::NotFound,
    }
}

enum Route {
    Size(usize),
    Echo,
    Reset,
    Priority,
    BadRequest,
    NotFound,
}

fn status(code: u16) -> http::Response<()> {
    http::Response::builder()
        .status(code)
        .body(())
        .expect("response")
}

// ---------------------------------------------------------------- Quiver server

async fn quiver_server() -> (quiver::Endpoint, SocketAddr, Identity) {
    let id = Identity::new();
    let ep = quiver::Endpoint::server(
        quiver::ServerConfig::new(Arc::new(id.server_tls())),
        loopback(),
    )
    .expect("server endpoint");
    let addr = ep.local_addr().expect("addr");
    let ep2 = ep.clone();
    tokio::spawn(async move {
        while let Some(conn) = ep2.accept().await {
            tokio::spawn(serve_quiver(conn));
        }
    });
    (ep, addr, id)
}

async fn serve_quiver(conn: quiver::Connection) {
    let Ok(mut server) = Server::new(conn).await else {
        return;
    };
    // Echo every HTTP Datagram on the stream it came from.
    let dg = server.datagrams();
    tokio::spawn(async move {
        while let Ok((id, payload)) = dg.recv().await {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&payload);
            let _ = dg.send(id, &reply);
        }
    });
    while let Ok(Some(incoming)) = server.accept().await {
        tokio::spawn(async move {
            let Ok(mut req) = incoming.resolve().await else {
                return;
            };
            if req.head.method() == http::Method::CONNECT {
                let _ = req.stream.send_response(status(200)).await;
                // Hold the stream open until the client finishes it.
                while let Ok(Some(_)) = req.stream.recv_data().await {}
                let _ = req.stream.finish().await;
                return;
            }
            let path = req.head.uri().path().to_string();
            let _ = match route(&path) {
                Route::Size(n) => req.respond(status(200), pattern(n)).await,
                Route::Echo => match req.body(4 << 20).await {
                    Ok(body) => req.respond(status(200), body).await,
                    Err(_) => return,
                },
                Route::Reset => {
                    let _ = req.stream.send_response(status(200)).await;
                    req.stream.stop_stream(h3::error::Code::H3_REQUEST_REJECTED);
                    Ok(())
                }
                Route::Priority => {
                    let body = Bytes::from(format!(
                        "{} {}",
                        req.priority.urgency, req.priority.incremental
                    ));
                    req.respond(status(200), body).await
                }
                Route::BadRequest => req.respond(status(400), Bytes::new()).await,
                Route::NotFound => req.respond(status(404), Bytes::new()).await,
            };
        });
    }
}

// ---------------------------------------------------------------- quinn + h3-quinn

fn quinn_transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.datagram_receive_buffer_size(Some(1 << 20));
    Arc::new(t)
}

async fn quinn_client(id: &Identity, addr: SocketAddr) -> (quinn::Endpoint, quinn::Connection) {
    let ep = quinn::Endpoint::client(loopback()).expect("quinn endpoint");
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(id.client_tls())
        .expect("quinn client crypto");
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(quinn_transport());
    let conn = within(ep.connect_with(cfg, addr, NAME).expect("connect"))
        .await
        .expect("quinn handshake");
    (ep, conn)
}

type QuinnSend = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

async fn h3_quinn_client(conn: quinn::Connection) -> QuinnSend {
    let (mut driver, send) = h3::client::builder()
        .enable_datagram(true)
        .build::<_, _, Bytes>(h3_quinn::Connection::new(conn))
        .await
        .expect("h3 client");
    tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    send
}

async fn quinn_get(send: &QuinnSend, path: &str) -> (http::StatusCode, Bytes) {
    let mut send = send.clone();
    let req = http::Request::get(format!("https://{NAME}{path}"))
        .body(())
        .expect("request");
    let mut stream = send.send_request(req).await.expect("send request");
    stream.finish().await.expect("finish");
    let resp = stream.recv_response().await.expect("response");
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await.expect("body") {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    (resp.status(), body.freeze())
}

async fn quinn_server() -> (quinn::Endpoint, SocketAddr, Identity) {
    let id = Identity::new();
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(id.server_tls()).expect("crypto");
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(quinn_transport());
    let ep = quinn::Endpoint::server(cfg, loopback()).expect("quinn server");
    let addr = ep.local_addr().expect("addr");
    let ep2 = ep.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep2.accept().await {
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    serve_quinn(conn).await;
                }
            });
        }
    });
    (ep, addr, id)
}

async fn serve_quinn(conn: quinn::Connection) {
    // Datagram echo straight on quinn, encoding the quarter stream ID by hand
    // (h3-datagram 0.0.2's sender would send stream 0 for every flow).
    let dconn = conn.clone();
    tokio::spawn(async move {
        while let Ok(d) = dconn.read_datagram().await {
            let Ok((id, payload)) = quiver_h3::datagram::decode(d) else {
                continue;
            };
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&payload);
            let _ = dconn.send_datagram(quiver_h3::datagram::encode(id, &reply));
        }
    });
    let Ok(mut server) = h3::server::builder()
        .enable_datagram(true)
        .enable_extended_connect(true)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await
    else {
        return;
    };
    while let Ok(Some(resolver)) = server.accept().await {
        tokio::spawn(async move {
            let Ok((req, mut stream)) = resolver.resolve_request().await else {
                return;
            };
            if req.method() == http::Method::CONNECT {
                let _ = stream.send_response(status(200)).await;
                while let Ok(Some(_)) = stream.recv_data().await {}
                let _ = stream.finish().await;
                return;
            }
            let (head, body) = match route(req.uri().path()) {
                Route::Size(n) => (status(200), pattern(n)),
                Route::Echo => {
                    let mut body = BytesMut::new();
                    while let Ok(Some(mut c)) = stream.recv_data().await {
                        body.extend_from_slice(&c.copy_to_bytes(c.remaining()));
                    }
                    (status(200), body.freeze())
                }
                Route::Reset => {
                    let _ = stream.send_response(status(200)).await;
                    stream.stop_stream(h3::error::Code::H3_REQUEST_REJECTED);
                    return;
                }
                Route::BadRequest => (status(400), Bytes::new()),
                Route::Priority | Route::NotFound => (status(404), Bytes::new()),
            };
            if stream.send_response(head).await.is_err() {
                return;
            }
            if !body.is_empty() && stream.send_data(body).await.is_err() {
                return;
            }
            let _ = stream.finish().await;
        });
    }
}

// ---------------------------------------------------------------- Quiver client

async fn quiver_client(id: &Identity, addr: SocketAddr) -> (quiver::Endpoint, Client) {
    let ep = quiver::Endpoint::client(loopback()).expect("client endpoint");
    let cfg = quiver::ClientConfig::new(Arc::new(id.client_tls()));
    let conn = within(ep.connect_with(cfg, addr, NAME).expect("connect"))
        .await
        .expect("handshake");
    let client = within(Client::new(conn)).await.expect("h3 client");
    (ep, client)
}

fn uri(path: &str) -> String {
    format!("https://{NAME}{path}")
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn quinn_client_quiver_server_gets_and_echo() {
    let (_ep, addr, id) = quiver_server().await;
    let (_qep, conn) = quinn_client(&id, addr).await;
    let send = within(h3_quinn_client(conn)).await;
    // Several sizes, all at once on one connection.
    let gets = SIZES.map(|n| {
        let send = send.clone();
        tokio::spawn(async move { (n, quinn_get(&send, &format!("/size/{n}")).await) })
    });
    for g in gets {
        let (n, (status, body)) = within(g).await.expect("task");
        assert_eq!(status, 200);
        assert_eq!(body, pattern(n), "size {n}");
    }
    // A POST body comes back.
    let mut s = send.clone();
    let req = http::Request::post(uri("/echo")).body(()).expect("req");
    let mut stream = within(s.send_request(req)).await.expect("send");
    within(stream.send_data(pattern(70_000)))
        .await
        .expect("body");
    within(stream.finish()).await.expect("finish");
    let resp = within(stream.recv_response()).await.expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = BytesMut::new();
    while let Some(mut c) = within(stream.recv_data()).await.expect("data") {
        body.extend_from_slice(&c.copy_to_bytes(c.remaining()));
    }
    assert_eq!(body.freeze(), pattern(70_000));
    // Bad requests get a status, not a dead connection.
    assert_eq!(within(quinn_get(&send, "/size/x")).await.0, 400);
    assert_eq!(within(quinn_get(&send, "/nope")).await.0, 404);
    assert_eq!(within(quinn_get(&send, "/size/3")).await.1, pattern(3));
}

#[tokio::test]
async fn quiver_client_quinn_server_gets_and_echo() {
    let (_ep, addr, id) = quinn_server().await;
    let (_cep, client) = quiver_client(&id, addr).await;
    let gets = SIZES.map(|n| {
        let client = client.clone();
        tokio::spawn(async move { (n, client.get(&uri(&format!("/size/{n}")), 2 << 20).await) })
    });
    for g in gets {
        let (n, resp) = within(g).await.expect("task");
        let resp = resp.expect("get");
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.body, pattern(n), "size {n}");
    }
    let req = http::Request::post(uri("/echo")).body(()).expect("req");
    let resp = within(client.fetch(req, pattern(70_000), 1 << 20))
        .await
        .expect("echo");
    assert_eq!(resp.body, pattern(70_000));
    let resp = within(client.get(&uri("/size/x"), 100)).await.expect("400");
    assert_eq!(resp.head.status(), 400);
    // Over the caller's limit: an error, and the connection goes on.
    let err = within(client.get(&uri("/size/5000"), 100)).await;
    assert!(
        matches!(err, Err(quiver_h3::H3Error::TooLong(100))),
        "{err:?}"
    );
    let resp = within(client.get(&uri("/size/10"), 100))
        .await
        .expect("get");
    assert_eq!(resp.body, pattern(10));
}

#[tokio::test]
async fn quiver_client_quiver_server_and_resets_both_ways() {
    // Quiver ↔ Quiver, and a reset response seen by each client stack.
    let (_ep, addr, id) = quiver_server().await;
    let (_cep, client) = quiver_client(&id, addr).await;
    let resp = within(client.get(&uri("/size/123456"), 1 << 20))
        .await
        .expect("get");
    assert_eq!(resp.body, pattern(123_456));
    let err = within(client.get(&uri("/reset"), 1 << 20)).await;
    assert!(err.is_err(), "reset stream must fail the request: {err:?}");
    let resp = within(client.get(&uri("/size/7"), 100)).await.expect("get");
    assert_eq!(resp.body, pattern(7));

    // A quinn + h3-quinn client sees the Quiver server's reset too.
    let (_qep, conn) = quinn_client(&id, addr).await;
    let send = within(h3_quinn_client(conn)).await;
    let mut s = send.clone();
    let req = http::Request::get(uri("/reset")).body(()).expect("req");
    let mut stream = within(s.send_request(req)).await.expect("send");
    within(stream.finish()).await.expect("finish");
    // The reset may overtake the headers (then the response fails) or follow them
    // (then the body does).
    let mut failed = within(stream.recv_response()).await.is_err();
    while !failed {
        match within(stream.recv_data()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "quinn client must see the reset");
    assert_eq!(within(quinn_get(&send, "/size/9")).await.1, pattern(9));

    // And the Quiver client sees the quinn server's reset.
    let (_qsep, qaddr, qid) = quinn_server().await;
    let (_cep2, client2) = quiver_client(&qid, qaddr).await;
    assert!(within(client2.get(&uri("/reset"), 1 << 20)).await.is_err());
    let resp = within(client2.get(&uri("/size/11"), 100))
        .await
        .expect("get");
    assert_eq!(resp.body, pattern(11));
}

#[tokio::test]
async fn client_reset_and_garbage_do_not_hurt_quiver_server() {
    let (_ep, addr, id) = quiver_server().await;
    // A client that abandons its request body mid-way (RESET_STREAM).
    let (_cep, client) = quiver_client(&id, addr).await;
    let req = http::Request::post(uri("/echo")).body(()).expect("req");
    let mut stream = within(client.send_request(req)).await.expect("send");
    within(stream.send_data(pattern(1000))).await.expect("data");
    stream.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
    let resp = within(client.get(&uri("/size/5"), 100)).await.expect("get");
    assert_eq!(resp.body, pattern(5));

    // A raw quinn connection that writes garbage on a request stream: the server closes
    // that connection with an HTTP/3 error (it must not panic), others are unharmed.
    let (_qep, conn) = quinn_client(&id, addr).await;
    let (mut s, _r) = within(conn.open_bi()).await.expect("open");
    s.write_all(&[0x01, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    s.finish().expect("finish");
    let reason = within(conn.closed()).await;
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert!(c.error_code.into_inner() >= 0x100, "h3 error code: {c:?}");
        }
        other => panic!("expected an HTTP/3 application close, got {other:?}"),
    }
    let resp = within(client.get(&uri("/size/6"), 100)).await.expect("get");
    assert_eq!(resp.body, pattern(6));
}

/// Open `n` extended-CONNECT (connect-udp) request streams with h3-quinn.
async fn quinn_connects(
    send: &QuinnSend,
    n: usize,
) -> Vec<h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>> {
    let mut streams = Vec::new();
    for i in 0..n {
        let mut s = send.clone();
        let mut req = http::Request::connect(uri(&format!("/.well-known/masque/udp/host{i}/443/")))
            .body(())
            .expect("req");
        req.extensions_mut().insert(Protocol::CONNECT_UDP);
        let mut stream = within(s.send_request(req)).await.expect("connect");
        let resp = within(stream.recv_response()).await.expect("response");
        assert_eq!(resp.status(), 200);
        streams.push(stream);
    }
    streams
}

#[tokio::test]
async fn http_datagrams_on_several_streams_quinn_client_quiver_server() {
    let (_ep, addr, id) = quiver_server().await;
    let (_qep, conn) = quinn_client(&id, addr).await;
    let send = within(h3_quinn_client(conn.clone())).await;
    let streams = quinn_connects(&send, 3).await;
    let ids: Vec<u64> = streams.iter().map(|s| s.id().into_inner()).collect();
    assert_eq!(ids, vec![0, 4, 8]);
    // Several rounds: datagrams can be lost even on loopback in theory; resend until
    // every flow got its echo, and check that each echo names its own stream.
    let mut answered = std::collections::HashSet::new();
    within(async {
        while answered.len() < ids.len() {
            for &id in &ids {
                if !answered.contains(&id) {
                    let payload = format!("flow{id}");
                    conn.send_datagram(quiver_h3::datagram::encode(id, payload.as_bytes()))
                        .expect("send datagram");
                }
            }
            let Ok(Ok(d)) =
                tokio::time::timeout(Duration::from_millis(200), conn.read_datagram()).await
            else {
                continue;
            };
            let (id, payload) = quiver_h3::datagram::decode(d).expect("valid datagram");
            assert_eq!(payload, format!("echo:flow{id}").as_bytes(), "stream {id}");
            answered.insert(id);
        }
    })
    .await;
    drop(streams);
}

#[tokio::test]
async fn http_datagrams_on_several_streams_quiver_client_quinn_server() {
    let (_ep, addr, id) = quinn_server().await;
    let (_cep, client) = quiver_client(&id, addr).await;
    let mut streams = Vec::new();
    for i in 0..3 {
        let mut req = http::Request::connect(uri(&format!("/.well-known/masque/udp/host{i}/443/")))
            .body(())
            .expect("req");
        req.extensions_mut().insert(Protocol::CONNECT_UDP);
        let mut stream = within(client.send_request(req)).await.expect("connect");
        let resp = within(stream.recv_response()).await.expect("response");
        assert_eq!(resp.status(), 200);
        streams.push(stream);
    }
    let ids: Vec<_> = streams.iter().map(|s| s.id()).collect();
    let dg = client.datagrams();
    assert!(dg.max_payload(ids[2]).expect("datagrams negotiated") > 1000);
    let mut answered = std::collections::HashSet::new();
    within(async {
        while answered.len() < ids.len() {
            for &id in &ids {
                if !answered.contains(&id.into_inner()) {
                    dg.send(id, format!("flow{}", id.into_inner()).as_bytes())
                        .expect("send");
                }
            }
            let Ok(Ok((id, payload))) =
                tokio::time::timeout(Duration::from_millis(200), dg.recv()).await
            else {
                continue;
            };
            let id = id.into_inner();
            assert_eq!(payload, format!("echo:flow{id}").as_bytes(), "stream {id}");
            answered.insert(id);
        }
    })
    .await;
    for mut s in streams {
        let _ = within(s.finish()).await;
    }
}

#[tokio::test]
async fn priority_header_and_update_reach_quiver_server() {
    let (_ep, addr, id) = quiver_server().await;
    // The header, from a quinn + h3-quinn client.
    let (_qep, conn) = quinn_client(&id, addr).await;
    let send = within(h3_quinn_client(conn)).await;
    let mut s = send.clone();
    let req = http::Request::get(uri("/priority"))
        .header("priority", "u=1, i")
        .body(())
        .expect("req");
    let mut stream = within(s.send_request(req)).await.expect("send");
    within(stream.finish()).await.expect("finish");
    within(stream.recv_response()).await.expect("response");
    let mut body = Vec::new();
    while let Some(mut c) = within(stream.recv_data()).await.expect("data") {
        body.extend_from_slice(&c.copy_to_bytes(c.remaining()));
    }
    assert_eq!(body, b"1 true");
    assert_eq!(within(quinn_get(&send, "/priority")).await.1, "3 false");

    // PRIORITY_UPDATE from the Quiver client before the request is sent: the server
    // keeps it and it overrides the header.
    let (_cep, client) = quiver_client(&id, addr).await;
    let warmup = within(client.get(&uri("/size/1"), 10)).await.expect("get");
    assert_eq!(warmup.body, pattern(1));
    // Request stream 8 will be the third of this client (0 was the warm-up, 4 is the
    // round trip below, which lets the update reach the server first).
    let next = h3::quic::StreamId::try_from(8).expect("id");
    client
        .update_priority(next, Priority::new(6))
        .expect("priority update");
    let rt = within(client.get(&uri("/size/2"), 10)).await.expect("get");
    assert_eq!(rt.body, pattern(2));
    let req = http::Request::get(uri("/priority"))
        .header("priority", "u=2")
        .body(())
        .expect("req");
    let resp = within(client.fetch(req, Bytes::new(), 100))
        .await
        .expect("fetch");
    assert_eq!(resp.body, "6 false");
    assert!(client
        .update_priority(
            h3::quic::StreamId::try_from(2).expect("id"),
            Priority::new(1)
        )
        .is_err());
}
