//! `quiver interop` end to end: the built binary as server (downloaded from by a quinn
//! hq-interop client written here) and as client (downloading from a quinn hq-interop
//! server written here), plus exit codes for unsupported test cases and bad arguments.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const ALPN: &[u8] = b"hq-interop";
const TIMEOUT: Duration = Duration::from_secs(60);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .expect("test step timed out")
}

fn quiver() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.env_remove("TESTCASE")
        .env_remove("REQUESTS")
        .env_remove("SSLKEYLOGFILE")
        .env_remove("QLOGDIR")
        .kill_on_drop(true);
    cmd
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quiver-interop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Deterministic file contents.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed ^ (i >> 8) as u8)
        })
        .collect()
}

/// The files both tests transfer: (name, contents).
fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("small.txt", b"hello interop\n".to_vec()),
        ("one-kib.bin", pattern(1024, 1)),
        ("two-mib.bin", pattern(2 * 1024 * 1024, 2)),
    ]
}

/// Start `quiver interop server` on an ephemeral loopback port; returns the child and the
/// address it reports.
async fn start_server(www: &Path) -> (Child, SocketAddr) {
    start_server_with(www, "transfer").await
}

/// [`start_server`] with `TESTCASE` set.
async fn start_server_with(www: &Path, testcase: &str) -> (Child, SocketAddr) {
    start_server_env(www, testcase, &[]).await
}

/// [`start_server_with`] plus extra environment variables.
async fn start_server_env(
    www: &Path,
    testcase: &str,
    env: &[(&str, &Path)],
) -> (Child, SocketAddr) {
    let mut cmd = quiver();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .env("TESTCASE", testcase)
        .args(["interop", "server", "--listen", "127.0.0.1:0", "--www"])
        .arg(www)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quiver server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = within(async {
        while let Some(line) = lines.next_line().await.expect("server stderr") {
            if let Some((_, addr)) = line.rsplit_once(" on ") {
                if line.starts_with("quiver: serving") {
                    return addr.trim().parse::<SocketAddr>().expect("server address");
                }
            }
        }
        panic!("server exited before listening");
    })
    .await;
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

fn quinn_client_config() -> quinn::ClientConfig {
    let tls = quiver::tls::insecure_client_config(&[ALPN], quiver::tls::CipherSuites::All)
        .expect("client TLS");
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quinn client crypto");
    quinn::ClientConfig::new(Arc::new(crypto))
}

/// `GET path` over hq-interop with quinn.
async fn quinn_get(conn: &quinn::Connection, path: &str) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(format!("GET {path}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    recv.read_to_end(usize::MAX)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn binary_server_serves_quinn_client() {
    let www = temp_dir("www");
    for (name, data) in files() {
        std::fs::write(www.join(name), data).expect("write www file");
    }
    let (mut server, addr) = start_server(&www).await;

    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let conn = within(
        ep.connect_with(quinn_client_config(), addr, "localhost")
            .expect("connect"),
    )
    .await
    .expect("handshake");
    for (name, data) in files() {
        let got = within(quinn_get(&conn, &format!("/{name}")))
            .await
            .expect(name);
        assert!(got == data, "{name}: content differs");
    }
    // Without "\r", as some clients send it.
    {
        let (mut send, mut recv) = within(conn.open_bi()).await.expect("open");
        send.write_all(b"GET /small.txt\n").await.expect("write");
        send.finish().expect("finish");
        let got = within(recv.read_to_end(1024)).await.expect("read");
        assert_eq!(got, b"hello interop\n");
    }
    // Traversal and unknown files are refused with a stream reset.
    for (path, code) in [("/../etc/passwd", 1u32), ("/missing.bin", 2u32)] {
        let err = within(quinn_get(&conn, path)).await.expect_err(path);
        assert!(
            err.contains(&format!("reset by peer: error {code}")),
            "{path}: {err}"
        );
    }
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;
    server.kill().await.expect("kill server");
    let _ = std::fs::remove_dir_all(&www);
}

/// A quinn hq-interop server serving `files()` from memory.
fn spawn_quinn_server() -> SocketAddr {
    spawn_quinn_server_counting().0
}

/// A quinn hq-interop server; the counter holds the connections it accepted.
fn spawn_quinn_server_counting() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let (certs, key) = quiver::tls::self_signed(&["localhost"]).expect("cert");
    let tls = quiver::tls::server_config(certs, key, &[ALPN]).expect("server TLS");
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("quinn server crypto");
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let ep = quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("addr"))
        .expect("quinn server");
    let addr = ep.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let Ok(req) = recv.read_to_end(1024).await else {
                            return;
                        };
                        let req = String::from_utf8_lossy(&req);
                        let path = req
                            .trim_end()
                            .strip_prefix("GET /")
                            .unwrap_or_default()
                            .to_string();
                        match files().into_iter().find(|(n, _)| *n == path) {
                            Some((_, data)) => {
                                let _ = send.write_all(&data).await;
                                let _ = send.finish();
                            }
                            None => {
                                let _ = send.reset(2u32.into());
                            }
                        }
                    });
                }
            });
        }
    });
    (addr, accepted)
}

/// TESTCASE=multiconnect (and handshakeloss, handshakecorruption): one connection per
/// file; the network-side cases are plain transfers, not "unsupported".
#[tokio::test]
async fn binary_client_multiconnect_opens_one_connection_per_file() {
    let (addr, accepted) = spawn_quinn_server_counting();
    let downloads = temp_dir("downloads-multiconnect");
    let urls: Vec<String> = files()
        .iter()
        .map(|(name, _)| format!("https://{addr}/{name}"))
        .collect();
    let status = within(
        quiver()
            .args(["interop", "client", "--downloads"])
            .arg(&downloads)
            .env("TESTCASE", "handshakeloss")
            .args(&urls)
            .status(),
    )
    .await
    .expect("run client");
    assert!(status.success(), "client failed: {status}");
    for (name, data) in files() {
        let got = std::fs::read(downloads.join(name)).expect(name);
        assert!(got == data, "{name}: content differs");
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::Relaxed),
        files().len(),
        "one connection per file"
    );
    for case in ["transferloss", "blackhole", "ipv6", "transfercorruption"] {
        let status = within(
            quiver()
                .args(["interop", "client", "--downloads"])
                .arg(&downloads)
                .env("TESTCASE", case)
                .arg(&urls[0])
                .status(),
        )
        .await
        .expect("run client");
        assert!(status.success(), "{case}: {status}");
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::Relaxed),
        files().len() + 4
    );
    let _ = std::fs::remove_dir_all(&downloads);
}

#[tokio::test]
async fn binary_client_downloads_from_quinn_server() {
    let addr = spawn_quinn_server();
    let downloads = temp_dir("downloads");
    let urls: Vec<String> = files()
        .iter()
        .map(|(name, _)| format!("https://{addr}/{name}"))
        .collect();
    // URLs through $REQUESTS, as the interop runner passes them.
    let status = within(
        quiver()
            .args(["interop", "client", "--downloads"])
            .arg(&downloads)
            .env("TESTCASE", "multiplexing")
            .env("REQUESTS", urls.join(" "))
            .status(),
    )
    .await
    .expect("run client");
    assert!(status.success(), "client failed: {status}");
    for (name, data) in files() {
        let got = std::fs::read(downloads.join(name)).expect(name);
        assert!(got == data, "{name}: content differs");
    }

    // ChaCha20-only client, URL as argument; a missing file makes the exit code 1.
    let status = within(
        quiver()
            .args(["interop", "client", "--downloads"])
            .arg(&downloads)
            .env("TESTCASE", "chacha20")
            .arg(format!("https://{addr}/small.txt"))
            .arg(format!("https://{addr}/nope.bin"))
            .status(),
    )
    .await
    .expect("run client");
    assert_eq!(status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&downloads);
}

/// TESTCASE=keyupdate: the client initiates a key update early and exits 0 only if
/// the update happened (quinn had to follow it for the downloads to complete).
#[tokio::test]
async fn binary_client_keyupdate_against_quinn_server() {
    let addr = spawn_quinn_server();
    let downloads = temp_dir("downloads-keyupdate");
    let urls: Vec<String> = files()
        .iter()
        .map(|(name, _)| format!("https://{addr}/{name}"))
        .collect();
    let status = within(
        quiver()
            .args(["interop", "client", "--downloads"])
            .arg(&downloads)
            .env("TESTCASE", "keyupdate")
            .env("REQUESTS", urls.join(" "))
            .status(),
    )
    .await
    .expect("run client");
    assert!(status.success(), "client failed: {status}");
    for (name, data) in files() {
        let got = std::fs::read(downloads.join(name)).expect(name);
        assert!(got == data, "{name}: content differs");
    }
    let _ = std::fs::remove_dir_all(&downloads);
}

/// TESTCASE=connectionmigration: the client moves to a new local port right after the
/// handshake is confirmed, during the downloads, and exits 0 only if quinn validated and
/// followed the new path (the downloads complete, the PATH_CHALLENGE was answered).
/// TESTCASE=rebind-port is a plain transfer for the client.
#[tokio::test]
async fn binary_client_connectionmigration_against_quinn_server() {
    let addr = spawn_quinn_server();
    for testcase in ["connectionmigration", "rebind-port"] {
        let downloads = temp_dir(&format!("downloads-{testcase}"));
        let urls: Vec<String> = files()
            .iter()
            .map(|(name, _)| format!("https://{addr}/{name}"))
            .collect();
        let status = within(
            quiver()
                .args(["interop", "client", "--downloads"])
                .arg(&downloads)
                .env("TESTCASE", testcase)
                .env("REQUESTS", urls.join(" "))
                .status(),
        )
        .await
        .expect("run client");
        assert!(status.success(), "{testcase}: client failed: {status}");
        for (name, data) in files() {
            let got = std::fs::read(downloads.join(name)).expect(name);
            assert!(got == data, "{testcase} {name}: content differs");
        }
        let _ = std::fs::remove_dir_all(&downloads);
    }
}

/// TESTCASE=resumption and TESTCASE=zerortt: the client fetches the first file, then
/// the rest on a second connection that resumes (and, for zerortt, sends its requests in
/// 0-RTT); it exits 0 only if the session was resumed and the early data accepted.
#[tokio::test]
async fn binary_client_resumption_and_zerortt_against_quinn_server() {
    let addr = spawn_quinn_server();
    for testcase in ["resumption", "zerortt"] {
        let downloads = temp_dir(&format!("downloads-{testcase}"));
        let urls: Vec<String> = files()
            .iter()
            .map(|(name, _)| format!("https://{addr}/{name}"))
            .collect();
        let status = within(
            quiver()
                .args(["interop", "client", "--downloads"])
                .arg(&downloads)
                .env("TESTCASE", testcase)
                .env("REQUESTS", urls.join(" "))
                .status(),
        )
        .await
        .expect("run client");
        assert!(status.success(), "{testcase}: client failed: {status}");
        for (name, data) in files() {
            let got = std::fs::read(downloads.join(name)).expect(name);
            assert!(got == data, "{testcase} {name}: content differs");
        }
        let _ = std::fs::remove_dir_all(&downloads);
    }
}

/// The binary server under TESTCASE=zerortt: a quinn client resumes its session and
/// its 0-RTT requests are accepted and answered.
#[tokio::test]
async fn binary_server_accepts_quinn_0rtt() {
    let www = temp_dir("www-zerortt");
    for (name, data) in files() {
        std::fs::write(www.join(name), data).expect("write www file");
    }
    let (mut server, addr) = start_server_with(&www, "zerortt").await;
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let config = quinn_client_config();
    let first = within(
        ep.connect_with(config.clone(), addr, "localhost")
            .expect("connect"),
    )
    .await
    .expect("handshake");
    let got = within(quinn_get(&first, "/small.txt"))
        .await
        .expect("first");
    assert_eq!(got, b"hello interop\n");
    first.close(0u32.into(), b"done");
    let Ok((conn, accepted)) = ep
        .connect_with(config, addr, "localhost")
        .expect("connect")
        .into_0rtt()
    else {
        panic!("quinn got no 0-RTT ticket from the quiver binary");
    };
    for (name, data) in files() {
        let got = within(quinn_get(&conn, &format!("/{name}")))
            .await
            .expect(name);
        assert!(got == data, "{name}: content differs");
    }
    assert!(within(accepted).await, "0-RTT accepted");
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;
    server.kill().await.expect("kill server");
    let _ = std::fs::remove_dir_all(&www);
}

/// TESTCASE=ecn: a transfer whose packets are ECN-marked both ways; the client reports
/// that it validated ECN with quinn.
#[tokio::test]
async fn binary_client_ecn_testcase_with_quinn_server() {
    let addr = spawn_quinn_server();
    let downloads = temp_dir("downloads-ecn");
    let out = within(
        quiver()
            .args(["interop", "client", "--downloads"])
            .arg(&downloads)
            .env("TESTCASE", "ecn")
            .arg(format!("https://{addr}/two-mib.bin"))
            .output(),
    )
    .await
    .expect("run client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed: {stderr}");
    let (_, data) = files()
        .into_iter()
        .find(|(n, _)| *n == "two-mib.bin")
        .unwrap();
    assert!(std::fs::read(downloads.join("two-mib.bin")).unwrap() == data);
    assert!(stderr.contains("quiver: ECN Capable"), "{stderr}");
    let _ = std::fs::remove_dir_all(&downloads);
}

#[tokio::test]
async fn unknown_testcase_exits_127() {
    for role in ["server", "client"] {
        let status = within(
            quiver()
                .args(["interop", role])
                .env("TESTCASE", "unknown")
                .stderr(Stdio::null())
                .status(),
        )
        .await
        .expect("run");
        assert_eq!(status.code(), Some(127), "{role}");
    }
}

#[tokio::test]
async fn bad_files_exit_1_with_a_message() {
    let www = temp_dir("www-badcert");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--www".into(),
                www.display().to_string(),
                "--cert".into(),
                "/nonexistent/cert.pem".into(),
                "--key".into(),
                "/nonexistent/key.pem".into(),
            ],
            "/nonexistent/cert.pem",
        ),
        (
            vec!["--www".into(), "/nonexistent/www".into()],
            "cannot read www directory /nonexistent/www",
        ),
    ];
    for (args, message) in cases {
        let out = within(
            quiver()
                .args(["interop", "server", "--listen", "127.0.0.1:0"])
                .args(&args)
                .output(),
        )
        .await
        .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    // Usage errors are clap's: exit code 2.
    let out = within(quiver().args(["interop", "server", "--cert", "x"]).output())
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&www);
}

/// A UDP relay on loopback between one client and `server`; counts the Retry packets
/// (QUIC v1 long header, type 3) the server sends.
async fn retry_counting_relay(
    server: SocketAddr,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let sock = Arc::new(
        tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("relay bind"),
    );
    let addr = sock.local_addr().expect("relay addr");
    let retries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = retries.clone();
    tokio::spawn(async move {
        let mut client = None;
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            if from == server {
                if buf[0] & 0xf0 == 0xf0 {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if let Some(c) = client {
                    let _ = sock.send_to(&buf[..n], c).await;
                }
            } else {
                client = Some(from);
                let _ = sock.send_to(&buf[..n], server).await;
            }
        }
    });
    (addr, retries)
}

#[tokio::test]
async fn binary_server_forces_retry_for_testcase_retry() {
    let www = temp_dir("www-retry");
    for (name, data) in files() {
        std::fs::write(www.join(name), data).expect("write www file");
    }
    let (mut server, server_addr) = start_server_with(&www, "retry").await;
    let (relay, retries) = retry_counting_relay(server_addr).await;
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let conn = within(
        ep.connect_with(quinn_client_config(), relay, "localhost")
            .expect("connect"),
    )
    .await
    .expect("handshake");
    let got = within(quinn_get(&conn, "/one-kib.bin")).await.expect("get");
    assert!(got == pattern(1024, 1));
    assert_eq!(
        retries.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "TESTCASE=retry: one Retry"
    );
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;
    server.kill().await.expect("kill server");
    let _ = std::fs::remove_dir_all(&www);
}

/// The one `*_<side>.sqlog` file in `dir` once it holds `connection_closed`.
async fn closed_qlog(dir: &Path, side: &str) -> (String, String) {
    for _ in 0..200 {
        let names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(&format!("_{side}.sqlog")))
                    .collect()
            })
            .unwrap_or_default();
        if let [name] = &names[..] {
            let text = std::fs::read_to_string(dir.join(name)).expect("read qlog");
            if text.contains("connectivity:connection_closed") {
                return (name.clone(), text);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no closed {side} qlog in {}", dir.display());
}

/// Check a JSON-SEQ qlog file: every record starts with RS and is JSON; the header
/// names the vantage point and the ODCID the file is named after.
fn check_qlog(name: &str, text: &str, side: &str) {
    assert!(text.starts_with('\u{1e}'), "{name}: not JSON-SEQ");
    let records: Vec<serde_json::Value> = text
        .split('\u{1e}')
        .skip(1)
        .map(|r| serde_json::from_str(r).expect("JSON record"))
        .collect();
    let header = &records[0];
    assert_eq!(header["qlog_format"], "JSON-SEQ");
    assert_eq!(header["trace"]["vantage_point"]["type"], side);
    let odcid = header["trace"]["common_fields"]["ODCID"].as_str().unwrap();
    assert_eq!(name, format!("{odcid}_{side}.sqlog"));
    for event in ["transport:packet_sent", "transport:packet_received"] {
        assert!(
            records.iter().any(|r| r["name"] == event),
            "{name}: no {event}"
        );
    }
}

#[tokio::test]
async fn qlogdir_and_sslkeylogfile_are_honoured() {
    // Server: QLOGDIR and SSLKEYLOGFILE; a quinn client downloads one file.
    let www = temp_dir("qlog-www");
    std::fs::write(www.join("small.txt"), b"hello").expect("write www file");
    let qlog = temp_dir("qlog-server");
    let keys = qlog.join("server.keys");
    let (mut server, addr) = start_server_env(
        &www,
        "transfer",
        &[("QLOGDIR", &qlog), ("SSLKEYLOGFILE", &keys)],
    )
    .await;
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let conn = within(
        ep.connect_with(quinn_client_config(), addr, "localhost")
            .expect("connect"),
    )
    .await
    .expect("handshake");
    assert_eq!(
        within(quinn_get(&conn, "/small.txt")).await.unwrap(),
        b"hello"
    );
    conn.close(0u32.into(), b"done");
    within(ep.wait_idle()).await;
    let (name, text) = within(closed_qlog(&qlog, "server")).await;
    check_qlog(&name, &text, "server");
    server.kill().await.expect("kill server");
    let secrets = std::fs::read_to_string(&keys).expect("server key log");
    assert!(secrets.contains("SERVER_TRAFFIC_SECRET_0"), "{secrets}");

    // Client: the same variables against a quinn server.
    let addr = spawn_quinn_server();
    let downloads = temp_dir("qlog-downloads");
    let qlog = temp_dir("qlog-client");
    let keys = qlog.join("client.keys");
    let status = within(
        quiver()
            .args(["interop", "client", "--downloads"])
            .arg(&downloads)
            .env("QLOGDIR", &qlog)
            .env("SSLKEYLOGFILE", &keys)
            .arg(format!("https://{addr}/small.txt"))
            .status(),
    )
    .await
    .expect("run client");
    assert!(status.success(), "client failed: {status}");
    let (name, text) = within(closed_qlog(&qlog, "client")).await;
    check_qlog(&name, &text, "client");
    let secrets = std::fs::read_to_string(&keys).expect("client key log");
    assert!(secrets.contains("CLIENT_TRAFFIC_SECRET_0"), "{secrets}");
    for d in [www, qlog, downloads] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// TESTCASE=http3: the binary client downloads over HTTP/3 from the binary server
/// (which offers h3 next to hq-interop), and a quinn + h3-quinn client downloads from
/// the same server; a missing file is a 404 and makes the client exit 1.
#[tokio::test]
async fn http3_testcase_binary_client_and_h3_quinn_client_against_binary_server() {
    use bytes::Buf;
    let www = temp_dir("www-h3");
    for (name, data) in files() {
        std::fs::write(www.join(name), data).expect("write www file");
    }
    let (mut server, addr) = start_server_with(&www, "http3").await;
    let downloads = temp_dir("downloads-h3");
    let urls: Vec<String> = files()
        .iter()
        .map(|(name, _)| format!("https://{addr}/{name}"))
        .collect();
    let status = within(
        quiver()
            .args(["interop", "client", "--downloads"])
            .arg(&downloads)
            .env("TESTCASE", "http3")
            .env("REQUESTS", urls.join(" "))
            .status(),
    )
    .await
    .expect("run client");
    assert!(status.success(), "client failed: {status}");
    for (name, data) in files() {
        let got = std::fs::read(downloads.join(name)).expect(name);
        assert!(got == data, "{name}: content differs");
    }
    let status = within(
        quiver()
            .args(["interop", "client", "--downloads"])
            .arg(&downloads)
            .env("TESTCASE", "http3")
            .arg(format!("https://{addr}/missing.bin"))
            .status(),
    )
    .await
    .expect("run client");
    assert_eq!(status.code(), Some(1));

    // quinn + h3-quinn as the client.
    let tls = quiver::tls::insecure_client_config(&[b"h3"], quiver::tls::CipherSuites::All)
        .expect("client TLS");
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quinn client crypto");
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let conn = within(
        ep.connect_with(
            quinn::ClientConfig::new(Arc::new(crypto)),
            addr,
            "localhost",
        )
        .expect("connect"),
    )
    .await
    .expect("handshake");
    let (mut driver, send) = within(h3::client::new(h3_quinn::Connection::new(conn)))
        .await
        .expect("h3 client");
    tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    for (name, data) in files() {
        let mut send = send.clone();
        let req = http::Request::get(format!("https://{addr}/{name}"))
            .body(())
            .expect("request");
        let mut stream = within(send.send_request(req)).await.expect("send");
        within(stream.finish()).await.expect("finish");
        let resp = within(stream.recv_response()).await.expect("response");
        assert_eq!(resp.status(), 200, "{name}");
        let mut got = Vec::new();
        while let Some(mut c) = within(stream.recv_data()).await.expect("body") {
            got.extend_from_slice(&c.copy_to_bytes(c.remaining()));
        }
        assert!(got == data, "{name}: content differs");
    }
    server.kill().await.expect("kill server");
    let _ = std::fs::remove_dir_all(&www);
    let _ = std::fs::remove_dir_all(&downloads);
}
