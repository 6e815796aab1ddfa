//! Smoke tests of `quiver bench handshakes` and `quiver bench aead` through the built
//! binary. They check the shape of the output, never how fast anything is.

use std::process::{Command, Output};

fn quiver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .output()
        .expect("run quiver")
}

fn stdout_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The table rows whose first column is `label` and second a number, split into columns.
fn rows<'a>(stdout: &'a str, label: &str) -> Vec<Vec<&'a str>> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.first() == Some(&label))
        .filter(|cols| cols.get(1).is_some_and(|c| c.parse::<f64>().is_ok()))
        .collect()
}

#[test]
fn handshakes_smoke() {
    let csv = std::env::temp_dir().join(format!("quiver-hs-smoke-{}.csv", std::process::id()));
    let csv_arg = csv.to_str().expect("utf-8 temp path");
    let stdout = stdout_of(&quiver(&[
        "bench",
        "handshakes",
        "--connections",
        "20",
        "--idle",
        "50",
        "--per-endpoint",
        "30",
        "--runs",
        "1",
        "--timeout",
        "60",
        "--csv",
        csv_arg,
    ]));
    assert!(stdout.contains("new connections: 20 per run"), "{stdout}");
    assert!(
        stdout.contains("idle connections: 50 per stack"),
        "{stdout}"
    );
    assert!(stdout.contains("ratio quiver/quinn (median connections per second)"));
    assert!(stdout.contains("ratio quiver/quinn (server bytes per idle connection)"));
    // Each stack has a rate row and an idle row; the idle row says 50 opened, 50 open.
    for stack in ["quiver", "quinn"] {
        let rows = rows(&stdout, stack);
        assert_eq!(rows.len(), 2, "{stdout}");
        assert!(rows[0][2].parse::<f64>().unwrap() > 0.0, "{stdout}");
        assert_eq!(&rows[1][1..3], ["50", "50"], "{stdout}");
    }
    let rows = std::fs::read_to_string(&csv).expect("csv written");
    let _ = std::fs::remove_file(&csv);
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "header + 2 rate rows + 2 idle rows:\n{rows}"
    );
    assert!(lines[0].starts_with("phase,run,stack,"));
    assert_eq!(lines.iter().filter(|l| l.starts_with("rate,1,")).count(), 2);
    assert_eq!(lines.iter().filter(|l| l.starts_with("idle,,")).count(), 2);
    let width = lines[0].split(',').count();
    assert!(
        lines.iter().all(|l| l.split(',').count() == width),
        "{rows}"
    );
}

#[test]
fn handshakes_json_without_idle_phase() {
    let stdout = stdout_of(&quiver(&[
        "bench",
        "handshakes",
        "--connections",
        "5",
        "--idle",
        "0",
        "--runs",
        "2",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["rate"].as_array().map(Vec::len), Some(2), "{stdout}");
    assert_eq!(v["rate_samples"].as_array().map(Vec::len), Some(4));
    assert_eq!(v["idle_memory"].as_array().map(Vec::len), Some(0));
    assert_eq!(v["rate"][0]["stack"], "quiver");
    assert_eq!(v["rate"][1]["stack"], "quinn");
}

#[test]
fn aead_smoke() {
    let stdout = stdout_of(&quiver(&[
        "bench",
        "aead",
        "--duration",
        "50ms",
        "--runs",
        "1",
    ]));
    assert!(stdout.contains("1 thread"), "{stdout}");
    let rows: Vec<Vec<&str>> = [
        rows(&stdout, "AES-128-GCM"),
        rows(&stdout, "ChaCha20-Poly1305"),
    ]
    .concat();
    // 2 ciphers x 2 sizes x (packet, seal).
    assert_eq!(rows.len(), 8, "{stdout}");
    for r in &rows {
        assert!(matches!(r[1], "1200" | "1452"), "{stdout}");
        assert!(matches!(r[2], "packet" | "seal"), "{stdout}");
        assert!(r[4].parse::<f64>().unwrap() > 0.0, "{stdout}");
    }
}

#[test]
fn aead_json_and_csv() {
    let csv = std::env::temp_dir().join(format!("quiver-aead-smoke-{}.csv", std::process::id()));
    let csv_arg = csv.to_str().expect("utf-8 temp path");
    let stdout = stdout_of(&quiver(&[
        "bench",
        "aead",
        "--duration",
        "20ms",
        "--runs",
        "2",
        "--sizes",
        "1452",
        "--ciphers",
        "aes-128-gcm",
        "--json",
        "--csv",
        csv_arg,
    ]));
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["cases"].as_array().map(Vec::len), Some(2), "{stdout}");
    assert_eq!(v["cases"][0]["cipher"], "AES-128-GCM");
    assert_eq!(v["cases"][0]["op"], "packet");
    let rows = std::fs::read_to_string(&csv).expect("csv written");
    let _ = std::fs::remove_file(&csv);
    assert_eq!(rows.lines().count(), 5, "header + 2 runs x 2 ops:\n{rows}");
}
