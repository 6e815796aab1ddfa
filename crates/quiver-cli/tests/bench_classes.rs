//! `quiver bench classes` and `quiver bench sched-ops` end to end (simulator only).

use std::process::{Command, Output};

fn quiver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .output()
        .expect("running quiver")
}

const SMALL: &[&str] = &[
    "bench",
    "classes",
    "--requests",
    "12",
    "--schemes",
    "fcfs,abs,tcp-1conn",
];

#[test]
fn classes_small_run_prints_the_table() {
    let out = quiver(SMALL);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for scheme in ["quic-fcfs", "quic-abs", "tcp-1conn"] {
        for class in ["rt-short", "free-short", "long"] {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with(scheme) && l.contains(class)),
                "missing {scheme} {class} in\n{stdout}"
            );
        }
    }
}

#[test]
fn classes_is_deterministic_for_a_seed() {
    let mut args = SMALL.to_vec();
    args.extend(["--seed", "5"]);
    let a = quiver(&args);
    let b = quiver(&args);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn classes_rejects_a_bad_mix_file() {
    let dir = std::env::temp_dir().join(format!("quiver-bad-mix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mix.toml");
    std::fs::write(
        &path,
        "[[class]]\nname = \"x\"\nsize = 0\ndeadline = \"1s\"\n",
    )
    .unwrap();
    let out = quiver(&["bench", "classes", "--mix", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid mix file") && stderr.contains("size"),
        "{stderr}"
    );
    let missing = quiver(&["bench", "classes", "--mix", "/nonexistent/mix.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn emulated_is_reported_as_not_implemented() {
    let out = quiver(&["bench", "classes", "--emulated"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not implemented"));
}

#[test]
fn sched_ops_small_run() {
    let out = quiver(&["bench", "sched-ops", "--sizes", "100", "--runs", "1"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("pifo") && stdout.contains("pifo vs sorted-abs"),
        "{stdout}"
    );
}
