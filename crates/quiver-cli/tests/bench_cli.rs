//! Smoke tests of `quiver bench throughput` through the built binary. They check that it
//! runs and reports both stacks, never how fast anything is.

use std::process::Command;

fn quiver() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
}

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
    assert!(stdout.contains("ratio quiver/quinn"), "{stdout}");
    assert!(stdout.contains("cores"), "{stdout}");
    let rows = std::fs::read_to_string(&csv).expect("csv written");
    let _ = std::fs::remove_file(&csv);
    assert_eq!(
        rows.lines().count(),
        3,
        "header + one row per pair:\n{rows}"
    );
}

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
    assert!(stdout.contains("ratio_quiver_over_quinn"), "{stdout}");
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
