//! aioquic ↔ Quiver through the link emulator (`quiver_netem::emu`), over real sockets:
//! an hq-interop transfer across a 20 Mbit/s link with 20 ms one-way delay and 2 %
//! random loss each way, in both directions (aioquic in the emulated namespace, Quiver
//! in the root namespace). Needs root for the namespaces: `privileged_test` skips it
//! elsewhere and fails it under CI's `QUIVER_REQUIRE_PRIVILEGED=1`.

mod aioquic;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aioquic::*;
use quiver_netem::emu::{privileged_test, LinkParams, Loss, Rate, Shell};
use quiver_proto::packet::VERSION_1;

fn lossy() -> LinkParams {
    LinkParams {
        rate: Rate::from_bits_per_sec(20_000_000),
        delay: Duration::from_millis(20),
        jitter: Duration::ZERO,
        loss: Loss::from_fraction(0.02).unwrap(),
        queue_bytes: None,
    }
}

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("small", content(4096, 7)),
        ("large", content(1024 * 1024, 8)),
    ]
}

/// The aioquic interpreter, started inside the shell's namespace.
fn python_in(shell: &Shell) -> std::process::Command {
    shell
        .command(python().to_str().expect("utf-8 interpreter path"))
        .expect("command in the emulated namespace")
}

/// The wire forwarded traffic both ways and the loss classifier dropped some of it.
fn assert_lossy_wire(shell: Shell) {
    let report = shell.shutdown().expect("shutdown");
    let wire = &report.wires[0];
    assert!(wire.frames[0] > 100 && wire.frames[1] > 100, "{wire:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioquic_client_quiver_server_under_loss_emulated() {
    if !privileged_test("aioquic_client_quiver_server_under_loss_emulated") {
        return;
    }
    let shell = Shell::up(lossy(), lossy(), 0x10c5).expect("emulated link");
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let files = files();
    let server = quiver_hq_server_with(&cert, shell.host_addr(), &[VERSION_1], &files, |_| {});
    let paths = ["/small", "/large"];
    let (peer, ok, got) = run_client_in(
        &cert,
        server.addr,
        &paths,
        ClientOpts::default(),
        Some(python_in(&shell)),
    )
    .await;
    assert!(ok, "aioquic client failed: {:?}", peer.log);
    for (name, body) in &files {
        let g = got.get(&format!("/{name}"));
        assert!(g == Some(body), "{name}: got {:?} bytes", g.map(Vec::len));
    }
    let s = server.conns.lock().unwrap()[0].stats;
    assert!(
        s.packets_lost > 0,
        "2% loss must cost the server some packets: {s:?}"
    );
    server.ep.close(0u32.into(), b"done");
    assert_lossy_wire(shell);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_client_aioquic_server_under_loss_emulated() {
    if !privileged_test("quiver_client_aioquic_server_under_loss_emulated") {
        return;
    }
    let shell = Shell::up(lossy(), lossy(), 0x10c6).expect("emulated link");
    let dir = TempDir::new("cert");
    let cert = Cert::new(dir.path());
    let files = files();
    let server = AioquicServer::start_in(
        &cert,
        &files,
        ServerOpts::default(),
        shell.shell_addr(),
        Some(python_in(&shell)),
    )
    .await;
    let ep =
        quiver::Endpoint::client(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).expect("endpoint");
    let config =
        quiver::ClientConfig::new(Arc::new(cert.client_tls(quiver::tls::CipherSuites::All)));
    let conn = tokio::time::timeout(
        STEP,
        ep.connect_with(config, server.addr, "localhost")
            .expect("connect"),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake");
    for (name, body) in &files {
        let got = tokio::time::timeout(STEP, quiver_hq_get(&conn, name))
            .await
            .expect("download timed out");
        assert!(got == *body, "{name}: {} bytes", got.len());
    }
    conn.close(0u32.into(), b"done");
    drop(server);
    assert_lossy_wire(shell);
}
