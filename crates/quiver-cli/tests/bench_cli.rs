//! Smoke tests of `quiver bench throughput` through the built binary. They check that it
//! runs and reports both stacks, never how fast anything is. Sizes are tiny: CI has two
//! cores.

use std::process::Command;

fn quiver() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
}

/// Without --streams/--mtu/--pmtud: the three default scenarios, each its own block.
#[test]
fn throughput_smoke() {
    let csv = std::env::temp_dir().join(format!("quiver-bench-smoke-{}.csv", std::process::id()));
    let out = quiver()
        .args([
            "bench",
            "throughput",
            "--size",
            "1MiB",
            "--runs",
            "1",
            "--timeout",
            "60",
            "--ceiling-time",
            "50ms",
        ])
        .arg("--csv")
        .arg(&csv)
        .output()
        .expect("run quiver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("quiver <- quiver"), "{stdout}");
    assert!(stdout.contains("quinn <- quinn"), "{stdout}");
    assert!(stdout.contains("cores"), "{stdout}");
    assert!(stdout.contains("srv s/GiB"), "{stdout}");
    assert!(stdout.contains("of ceiling"), "{stdout}");
    for block in [
        "1 stream, 1452-byte UDP payloads (no PMTUD)",
        "1 stream, PMTUD on",
        "100 streams, 1452-byte UDP payloads (no PMTUD)",
    ] {
        assert!(stdout.contains(block), "{block}:\n{stdout}");
    }
    assert_eq!(
        stdout
            .matches("ratio quiver/quinn (median throughput, same-stack pairs)")
            .count(),
        3,
        "{stdout}"
    );
    let rows = std::fs::read_to_string(&csv).expect("csv written");
    let _ = std::fs::remove_file(&csv);
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(
        lines.len(),
        1 + 3 * 2,
        "header + one row per scenario and pair:\n{rows}"
    );
    assert!(lines[0].contains("server_cpu_s_per_gib"), "{rows}");
    for scenario in ["1s-1452", "1s-pmtud1452", "100s-1452"] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains(&format!(",{scenario},")))
                .count(),
            2,
            "{scenario}:\n{rows}"
        );
    }
}

/// An explicit flag selects one scenario; JSON rows carry CPU time per side.
#[test]
fn json_output_names_both_stacks() {
    let out = quiver()
        .args([
            "bench",
            "throughput",
            "--size",
            "64KiB",
            "--runs",
            "1",
            "--streams",
            "2",
        ])
        .args(["--pairs", "all", "--json", "--timeout", "60"])
        .args(["--ceiling-time", "0"])
        .output()
        .expect("run quiver");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"quiver\""), "{stdout}");
    assert!(stdout.contains("\"quinn\""), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let scenarios = v["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 1, "{stdout}");
    assert_eq!(scenarios[0]["streams"], 2);
    assert_eq!(scenarios[0]["pmtud"], false);
    assert!(
        scenarios[0]["ratio_quiver_over_quinn"].is_number(),
        "{stdout}"
    );
    assert!(
        scenarios[0]["ceiling_mbit_per_s"].is_null(),
        "skipped: {stdout}"
    );
    let pairs = v["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 4, "{stdout}");
    for p in pairs {
        assert!(p.get("median_server_cpu_s_per_gib").is_some(), "{p}");
        assert!(p.get("median_client_cpu_s_per_gib").is_some(), "{p}");
    }
    let samples = v["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 4, "{stdout}");
    if cfg!(target_os = "linux") {
        for s in samples {
            assert!(s["server_cpu_s"].is_number(), "{s}");
            assert!(s["client_cpu_s"].is_number(), "{s}");
        }
    }
}

/// --pmtud alone: one scenario, path MTU discovery up to the default 1452.
#[test]
fn pmtud_flag_is_a_single_scenario() {
    let out = quiver()
        .args(["bench", "throughput", "--size", "256KiB", "--runs", "1"])
        .args(["--pmtud", "--timeout", "60", "--ceiling-time", "20ms"])
        .output()
        .expect("run quiver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "1 stream, PMTUD on: UDP payloads start at 1200 bytes, discovered up to 1452"
        ),
        "{stdout}"
    );
    assert_eq!(stdout.matches("ratio quiver/quinn").count(), 1, "{stdout}");
}

#[test]
fn bad_size_is_a_usage_error() {
    let out = quiver()
        .args(["bench", "throughput", "--size", "banana"])
        .output()
        .expect("run quiver");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("banana"));
}
