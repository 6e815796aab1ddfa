//! Kernel TCP baselines on loopback.

use std::time::Duration;

use quiver_tcp_baseline::kernel::{EchoServer, TcpClient};
use quiver_tcp_baseline::tls::TlsPair;
use quiver_tcp_baseline::{Mode, Request};

fn twenty() -> Vec<Request> {
    (0..20)
        .map(|i| {
            let size = if i % 3 == 2 { 102_400 } else { 8_192 };
            Request::new(i, size, Duration::from_millis(5 * i))
        })
        .collect()
}

#[tokio::test]
async fn loopback_twenty_requests_both_modes_echo_intact() {
    let tls = TlsPair::self_signed(&["localhost"]).unwrap();
    let server = EchoServer::bind("127.0.0.1:0".parse().unwrap(), (*tls.server).clone())
        .await
        .unwrap();
    let client = TcpClient::new(server.local_addr(), "localhost", tls.client.clone()).unwrap();
    for mode in [Mode::NConn, Mode::OneConn] {
        let reqs = twenty();
        let outcomes = client
            .run(&reqs, mode, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(outcomes.len(), reqs.len());
        for (o, r) in outcomes.iter().zip(&reqs) {
            assert_eq!(o.id, r.id);
            // `completed` is only set when every echoed byte matched.
            assert!(o.completed.is_some(), "{mode:?}: {o:?}");
            assert_eq!(o.failure, None);
        }
    }
    server.shutdown();
}

#[tokio::test]
async fn zero_size_and_duplicate_ids() {
    let tls = TlsPair::self_signed(&["localhost"]).unwrap();
    let server = EchoServer::bind("127.0.0.1:0".parse().unwrap(), (*tls.server).clone())
        .await
        .unwrap();
    let client = TcpClient::new(server.local_addr(), "localhost", tls.client.clone()).unwrap();
    let reqs = vec![
        Request::new(1, 0, Duration::ZERO),
        Request::new(2, 10, Duration::ZERO),
    ];
    for mode in [Mode::NConn, Mode::OneConn] {
        let out = client
            .run(&reqs, mode, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(out.iter().all(|o| o.completed.is_some()), "{out:?}");
    }
    let dup = vec![reqs[0], reqs[0]];
    assert!(client
        .run(&dup, Mode::NConn, Duration::from_secs(1))
        .await
        .is_err());
}

/// The congestion control can be pinned on both ends (reno is built into every Linux
/// kernel); an unknown name fails the requests with a clear error instead of running on
/// the default.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn pinned_congestion_control() {
    let tls = TlsPair::self_signed(&["localhost"]).unwrap();
    let server = EchoServer::bind_with_congestion_control(
        "127.0.0.1:0".parse().unwrap(),
        (*tls.server).clone(),
        Some("reno"),
    )
    .await
    .unwrap();
    let client = TcpClient::new(server.local_addr(), "localhost", tls.client.clone())
        .unwrap()
        .with_congestion_control("reno");
    let reqs = twenty();
    let out = client
        .run(&reqs, Mode::OneConn, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(out.iter().all(|o| o.completed.is_some()), "{out:?}");

    let bad = TcpClient::new(server.local_addr(), "localhost", tls.client.clone())
        .unwrap()
        .with_congestion_control("no-such-cc");
    let out = bad
        .run(&reqs[..1], Mode::NConn, Duration::from_secs(10))
        .await
        .unwrap();
    let failure = out[0].failure.as_ref().map(ToString::to_string);
    assert!(
        failure.as_deref().is_some_and(|f| f.contains("no-such-cc")),
        "{failure:?}"
    );
    assert!(EchoServer::bind_with_congestion_control(
        "127.0.0.1:0".parse().unwrap(),
        (*tls.server).clone(),
        Some("no-such-cc"),
    )
    .await
    .is_err());
    server.shutdown();
}
