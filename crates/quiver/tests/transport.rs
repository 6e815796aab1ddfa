//! Quiver connections over transports other than a UDP socket
//! ([`quiver::transport::ChannelTransport`]): two endpoints linked in memory, and two
//! endpoints whose datagrams an application task carries (and loses) itself, as a MASQUE
//! flow does.

mod common;

use bytes::Bytes;
use common::*;
use quiver::tls::CipherSuites;
use quiver::transport::{ChannelPeer, ChannelTransport, DatagramTransport};
use std::net::SocketAddr;
use std::sync::Arc;

const SERVER: &str = "10.0.0.1:4433";
const CLIENT: &str = "10.0.0.2:50000";

fn endpoints(
    id: &Identity,
    server: Arc<dyn DatagramTransport>,
    client: Arc<dyn DatagramTransport>,
) -> (quiver::Endpoint, quiver::Endpoint) {
    let mut config = quiver::ServerConfig::new(Arc::new(id.server_tls()));
    config.transport = quiver_transport(Windows::Default);
    let server_ep = quiver::Endpoint::with_transport(Default::default(), Some(config), server)
        .expect("server endpoint");
    let client_ep =
        quiver::Endpoint::with_transport(Default::default(), None, client).expect("client");
    client_ep.set_default_client_config(quiver_client_config(
        id,
        Windows::Default,
        CipherSuites::All,
    ));
    (server_ep, client_ep)
}

#[tokio::test]
async fn file_over_linked_channels() {
    init_tracing();
    let id = Identity::new();
    let server_addr: SocketAddr = SERVER.parse().expect("addr");
    let (s, c) = ChannelTransport::pair(server_addr, CLIENT.parse().expect("addr"));
    let (server_ep, client_ep) = endpoints(&id, Arc::new(s), Arc::new(c));
    assert_eq!(server_ep.local_addr().expect("addr"), server_addr);
    let _closed = spawn_quiver_server(server_ep.clone());
    let conn = within(client_ep.connect(server_addr, NAME).expect("connect"))
        .await
        .expect("handshake");
    let n = 4 * 1024 * 1024;
    let got = within(quiver_get(&conn, n)).await;
    assert_pattern(&got, n);
    conn.send_datagram(Bytes::from_static(b"ping"))
        .expect("datagram");
    let echo = within(conn.read_datagram()).await.expect("echo");
    assert_eq!(&echo[..], b"ping");
    conn.close(0u32.into(), b"done");
    within(client_ep.wait_idle()).await;
}

/// Carry datagrams from `from` to `to`, dropping every `nth` one.
async fn carry(from: Arc<ChannelPeer>, to: Arc<ChannelPeer>, source: SocketAddr, nth: u64) {
    let mut count = 0u64;
    while let Some(d) = from.recv().await {
        count += 1;
        if count.is_multiple_of(nth) {
            continue;
        }
        to.send(source, d.payload).await;
    }
}

#[tokio::test]
async fn file_over_application_carried_lossy_channel() {
    init_tracing();
    let id = Identity::new();
    let server_addr: SocketAddr = SERVER.parse().expect("addr");
    let client_addr: SocketAddr = CLIENT.parse().expect("addr");
    let (s, s_peer) = ChannelTransport::new(server_addr, 256);
    let (c, c_peer) = ChannelTransport::new(client_addr, 256);
    let (s_peer, c_peer) = (Arc::new(s_peer), Arc::new(c_peer));
    // 1 datagram in 25 lost each way.
    tokio::spawn(carry(c_peer.clone(), s_peer.clone(), client_addr, 25));
    tokio::spawn(carry(s_peer.clone(), c_peer.clone(), server_addr, 25));
    let (server_ep, client_ep) = endpoints(&id, Arc::new(s), Arc::new(c));
    let _closed = spawn_quiver_server(server_ep.clone());
    let conn = within(client_ep.connect(server_addr, NAME).expect("connect"))
        .await
        .expect("handshake");
    let n = 1024 * 1024;
    let got = within(quiver_get(&conn, n)).await;
    assert_pattern(&got, n);
    assert!(conn.stats().packets_lost > 0, "{:?}", conn.stats());
    conn.close(0u32.into(), b"done");
    within(client_ep.wait_idle()).await;
}
