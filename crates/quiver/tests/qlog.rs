//! qlog files of real transfers over loopback (quiver ↔ quiver, quiver ↔ quinn 0.11),
//! written by [`quiver::qlog::QlogDir`] and validated against the qlog 0.3 schema
//! (`qlog_schema`: main schema -05 + QUIC events -03, the version qvis loads).

mod common;
mod qlog_schema;

use common::*;
use quiver::qlog::QlogDir;
use quiver::tls::CipherSuites;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quiver-qlog-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn traced(dir: &Path) -> Arc<quiver::TransportConfig> {
    let mut t = (*quiver_transport(Windows::Default)).clone();
    t.event_subscriber = Some(Arc::new(QlogDir::new(dir)));
    Arc::new(t)
}

/// Wait until `dir` holds a trace ending in `connection_closed` for `side`; returns the
/// file name and its validated contents.
async fn closed_trace(dir: &Path, side: &str) -> (String, qlog_schema::Trace) {
    for _ in 0..200 {
        let found = std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.ends_with(&format!("_{side}.sqlog")))
        });
        if let Some(name) = found {
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            let trace = qlog_schema::validate(&bytes)
                .unwrap_or_else(|e| panic!("{name} is not valid qlog: {e}"));
            if trace.named("connectivity:connection_closed").count() > 0 {
                return (name, trace);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no closed {side} trace in {}", dir.display());
}

/// What every trace of a completed download shows.
fn check_common(trace: &qlog_schema::Trace, side: &str) {
    let vp = &trace.header["trace"]["vantage_point"]["type"];
    assert_eq!(vp, side);
    for name in [
        "connectivity:connection_started",
        "connectivity:connection_state_updated",
        "connectivity:connection_closed",
        "transport:parameters_set",
        "transport:packet_sent",
        "transport:packet_received",
        "recovery:metrics_updated",
        "recovery:congestion_state_updated",
        "security:key_updated",
    ] {
        assert!(trace.named(name).count() > 0, "{side}: no {name}");
    }
    let owners: Vec<_> = trace
        .named("transport:parameters_set")
        .map(|e| e["data"]["owner"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(owners, ["local", "remote"], "{side}");
    let states: Vec<_> = trace
        .named("connectivity:connection_state_updated")
        .map(|e| e["data"]["new"].as_str().unwrap().to_string())
        .collect();
    assert!(
        states.iter().any(|s| s == "handshake_confirmed"),
        "{side}: {states:?}"
    );
    let frames: Vec<&str> = trace
        .named("transport:packet_received")
        .chain(trace.named("transport:packet_sent"))
        .flat_map(|e| e["data"]["frames"].as_array().unwrap().iter())
        .map(|f| f["frame_type"].as_str().unwrap())
        .collect();
    for f in ["crypto", "ack", "stream", "padding", "handshake_done"] {
        assert!(frames.contains(&f), "{side}: no {f} frame");
    }
}

#[tokio::test]
async fn quiver_client_and_server_write_valid_qlog() {
    init_tracing();
    let dir = temp_dir("pair");
    let id = Identity::new();
    let mut config = quiver::ServerConfig::new(Arc::new(id.server_tls()));
    config.transport = traced(&dir);
    let server = quiver::Endpoint::server(config, loopback()).expect("server");
    let addr = server.local_addr().unwrap();
    let _closed = spawn_quiver_server(server.clone());

    let ep = quiver::Endpoint::client(loopback()).expect("client endpoint");
    let mut client_config = quiver_client_config(&id, Windows::Default, CipherSuites::All);
    client_config.transport = traced(&dir);
    let conn = within(ep.connect_with(client_config, addr, NAME).unwrap())
        .await
        .expect("handshake");
    for n in [1024, 1 << 20] {
        assert_pattern(&within(quiver_get(&conn, n)).await, n);
        // One key update after the first download: both traces show it.
        conn.initiate_key_update();
    }
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;

    let (client_name, client) = closed_trace(&dir, "client").await;
    let (server_name, server) = closed_trace(&dir, "server").await;
    // Both files are named after the same original destination CID.
    let odcid = client.header["trace"]["common_fields"]["ODCID"]
        .as_str()
        .unwrap();
    assert_eq!(client_name, format!("{odcid}_client.sqlog"));
    assert_eq!(server_name, format!("{odcid}_server.sqlog"));
    check_common(&client, "client");
    check_common(&server, "server");

    // What one side received, the other sent, with the same size.
    for (rx, tx, name) in [(&server, &client, "server"), (&client, &server, "client")] {
        let sent = qlog_schema::packets(tx, "transport:packet_sent");
        let received = qlog_schema::packets(rx, "transport:packet_received");
        assert!(received.len() > 10, "{name} received {}", received.len());
        for (key, len) in &received {
            assert_eq!(sent.get(key), Some(len), "{name} received {key:?}");
        }
    }
    for (trace, trigger) in [(&client, "local_update"), (&server, "remote_update")] {
        let updates: Vec<_> = trace
            .named("security:key_updated")
            .filter(|e| e["data"]["trigger"] == trigger)
            .map(|e| {
                (
                    e["data"]["key_type"].as_str().unwrap().to_string(),
                    e["data"]["generation"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(
            updates.contains(&("client_1rtt_secret".into(), 1))
                && updates.contains(&("server_1rtt_secret".into(), 1)),
            "{trigger}: {updates:?}"
        );
    }
    let closed = &client
        .named("connectivity:connection_closed")
        .next()
        .unwrap()["data"];
    assert_eq!(closed["owner"], "local");
    assert_eq!(closed["trigger"], "application");
    let closed = &server
        .named("connectivity:connection_closed")
        .next()
        .unwrap()["data"];
    assert_eq!(closed["owner"], "remote");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn quiver_client_with_quinn_server_writes_valid_qlog() {
    init_tracing();
    let dir = temp_dir("quinn");
    let id = Identity::new();
    let server = quinn_server_endpoint(&id, Windows::Default);
    let addr = server.local_addr().unwrap();
    let _closed = spawn_quinn_server(server.clone());

    let ep = quiver::Endpoint::client(loopback()).expect("client endpoint");
    let mut client_config = quiver_client_config(&id, Windows::Default, CipherSuites::All);
    client_config.transport = traced(&dir);
    let conn = within(ep.connect_with(client_config, addr, NAME).unwrap())
        .await
        .expect("handshake");
    for n in [1024, 1 << 20] {
        assert_pattern(&within(quiver_get(&conn, n)).await, n);
    }
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;

    let (_, client) = closed_trace(&dir, "client").await;
    check_common(&client, "client");
    // quinn's parameters as the client saw them.
    let remote = client
        .named("transport:parameters_set")
        .find(|e| e["data"]["owner"] == "remote")
        .unwrap();
    assert!(remote["data"]["initial_max_data"].as_u64().unwrap() > 0);
    assert!(remote["data"]["original_destination_connection_id"].is_string());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_validator_rejects_schema_violations() {
    let good = concat!(
        "\x1e{\"qlog_version\":\"0.3\",\"qlog_format\":\"JSON-SEQ\",\"trace\":{",
        "\"common_fields\":{\"ODCID\":\"0102\",\"time_format\":\"relative\",",
        "\"reference_time\":1.0},\"vantage_point\":{\"type\":\"client\"}}}\n",
        "\x1e{\"time\":0.5,\"name\":\"transport:packet_sent\",\"data\":{\"header\":",
        "{\"packet_type\":\"1RTT\",\"packet_number\":3},\"frames\":[{\"frame_type\":",
        "\"ack\",\"acked_ranges\":[[1,2],[0]]}]}}\n"
    );
    qlog_schema::validate(good.as_bytes()).expect("valid");
    for (from, to) in [
        ("\"1RTT\"", "\"1rtt\""),                           // unknown packet type
        ("\"packet_number\":3", "\"packet_number\":\"3\""), // wrong type
        ("[1,2]", "[2,1]"),                                 // from > to
        ("\"acked_ranges\"", "\"acked\""),                  // undefined member
        ("\"JSON-SEQ\"", "\"JSON\""),                       // format
        ("\"time\":0.5", "\"tim\":0.5"),                    // required member
        ("transport:packet_sent", "transport:packet_snt"),  // unknown event
        ("}}\n\x1e", "}}\x1e"),                             // record not terminated
    ] {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good);
        assert!(
            qlog_schema::validate(bad.as_bytes()).is_err(),
            "accepted {from} → {to}"
        );
    }
}
