//! `quiver interop` against aioquic (the venv of `scripts/install-deps.sh`) for the case
//! quinn lacks: TESTCASE=v2, with the built binary as server and as client.

#[path = "../../quiver/tests/aioquic/mod.rs"]
mod aioquic;

use aioquic::*;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn quiver() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.env_remove("TESTCASE")
        .env_remove("REQUESTS")
        .env_remove("SSLKEYLOGFILE")
        .kill_on_drop(true);
    cmd
}

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![("a.bin", content(5000, 1)), ("b.bin", content(300_000, 2))]
}

/// TESTCASE=v2 server: aioquic starts in v1 offering v2, the binary prefers v2 and
/// switches the connection; both downloads arrive and aioquic reports v2.
#[tokio::test]
async fn binary_server_v2_switches_aioquic_client() {
    let dir = TempDir::new("cli-v2-server");
    let cert = Cert::new(dir.path());
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    for (name, body) in files() {
        std::fs::write(www.join(name), body).unwrap();
    }
    let mut child = quiver()
        .env("TESTCASE", "v2")
        .args(["interop", "server", "--listen", "127.0.0.1:0", "--www"])
        .arg(&www)
        .arg("--cert")
        .arg(&cert.cert_pem)
        .arg("--key")
        .arg(&cert.key_pem)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quiver server");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(STEP, async {
        while let Some(line) = lines.next_line().await.expect("stderr") {
            if line.starts_with("quiver: serving") {
                let (_, a) = line.rsplit_once(" on ").expect("address");
                return a.trim().parse::<std::net::SocketAddr>().expect("address");
            }
        }
        panic!("server exited before listening");
    })
    .await
    .expect("server start");
    let opts = ClientOpts {
        version: "v1",
        offer: "v2",
        ..ClientOpts::default()
    };
    let (mut peer, ok, got) = run_client(&cert, addr, &["/a.bin", "/b.bin"], opts).await;
    assert!(ok, "aioquic client failed: {:?}", peer.log);
    for (name, body) in files() {
        assert!(
            got.get(&format!("/{name}")) == Some(&body),
            "{name} differs"
        );
    }
    let line = peer.expect_line("HANDSHAKE ").await;
    assert_eq!(
        handshake_version(&line),
        quiver_proto::packet::VERSION_2,
        "{line}"
    );
    let _ = child.kill().await;
}

/// TESTCASE=v2 client against an aioquic server speaking v1 and v2: the binary exits 0
/// only if the connection is in v2, and aioquic reports v2 too.
#[tokio::test]
async fn binary_client_v2_against_aioquic_server() {
    let dir = TempDir::new("cli-v2-client");
    let cert = Cert::new(dir.path());
    let mut server = AioquicServer::start(&cert, &files(), ServerOpts::default()).await;
    let downloads = dir.path().join("downloads");
    let urls: Vec<String> = files()
        .iter()
        .map(|(n, _)| format!("https://{}/{n}", server.addr))
        .collect();
    let status = tokio::time::timeout(
        STEP,
        quiver()
            .env("TESTCASE", "v2")
            .env("REQUESTS", urls.join(" "))
            .args(["interop", "client", "--downloads"])
            .arg(&downloads)
            .status(),
    )
    .await
    .expect("client timed out")
    .expect("run client");
    assert!(status.success(), "client failed: {status}");
    for (name, body) in files() {
        let got = std::fs::read(downloads.join(name)).expect(name);
        assert!(got == body, "{name} differs");
    }
    let line = server.peer.expect_line("HANDSHAKE ").await;
    assert_eq!(
        handshake_version(&line),
        quiver_proto::packet::VERSION_2,
        "{line}"
    );
}
