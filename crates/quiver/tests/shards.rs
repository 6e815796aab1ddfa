//! Sharded endpoints: several sockets, core endpoints and driver tasks behind one
//! `Endpoint`, so that connections spread over the cores. Against quiver clients (sharded
//! too) and against quinn clients.

mod common;

use common::*;
use quiver::tls::CipherSuites;
use std::sync::Arc;
use tokio::task::JoinSet;

fn sharded_server(id: &Identity, shards: usize) -> quiver::Endpoint {
    let mut config = quiver::ServerConfig::new(Arc::new(id.server_tls()));
    config.transport = quiver_transport(Windows::Default);
    quiver::Endpoint::server_sharded(config, loopback(), shards).expect("sharded server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_server_and_client_spread_connections() {
    init_tracing();
    let id = Identity::new();
    let server = sharded_server(&id, 2);
    assert_eq!(server.shard_count(), 2);
    let addr = server.local_addr().expect("local addr");
    let _closed = spawn_quiver_server(server.clone());
    // The kernel picks a server shard by hashing the 4-tuple, so what spreads the
    // connections is the number of distinct client ports: one per client shard.
    let client_shards = 24;
    let client =
        quiver::Endpoint::client_sharded(loopback(), client_shards).expect("sharded client");
    client.set_default_client_config(quiver_client_config(
        &id,
        Windows::Default,
        CipherSuites::All,
    ));
    let n = 48;
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let conn = within(client.connect(addr, NAME).expect("connect"))
            .await
            .expect("handshake");
        tasks.spawn(async move {
            let size = 64 * 1024 + i;
            let got = quiver_get(&conn, size).await;
            assert_pattern(&got, size);
            conn
        });
    }
    let mut conns = Vec::new();
    within(async {
        while let Some(c) = tasks.join_next().await {
            conns.push(c.expect("download task"));
        }
    })
    .await;
    // Round robin on the client: 2 per shard. The kernel's hash of 24 client ports
    // leaves no server shard empty (all on one: probability 2^-23).
    assert_eq!(client.shard_connections(), vec![2; client_shards]);
    let per_server_shard = server.shard_connections();
    assert_eq!(per_server_shard.iter().sum::<usize>(), n as usize);
    assert!(
        per_server_shard.iter().all(|&c| c > 0),
        "{per_server_shard:?}"
    );
    drop(conns);
    client.close(0u32.into(), b"done");
    within(client.wait_idle()).await;
    server.close(0u32.into(), b"bye");
    within(server.wait_idle()).await;
    assert!(
        within(server.accept()).await.is_none(),
        "closed: no accepts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quinn_clients_against_a_sharded_server() {
    init_tracing();
    let id = Identity::new();
    let server = sharded_server(&id, 2);
    let addr = server.local_addr().expect("local addr");
    let _closed = spawn_quiver_server(server.clone());
    let mut tasks = JoinSet::new();
    for i in 0..8u64 {
        let config = quinn_client_config(&id, Windows::Default, CipherSuites::All);
        tasks.spawn(async move {
            let mut ep = quinn::Endpoint::client(loopback()).expect("quinn client");
            ep.set_default_client_config(config);
            let conn = ep
                .connect(addr, NAME)
                .expect("connect")
                .await
                .expect("handshake");
            let size = 256 * 1024 + i;
            assert_pattern(&quinn_get(&conn, size).await, size);
            conn.close(0u32.into(), b"done");
            ep.wait_idle().await;
        });
    }
    within(async {
        while let Some(r) = tasks.join_next().await {
            r.expect("quinn client task");
        }
    })
    .await;
}
