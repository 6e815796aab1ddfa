//! `quiver bench classes` (simulator and, as root, `--emulated`) and `quiver bench
//! sched-ops` end to end.

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

/// Whether `--emulated` can run here: skips (prints why) or, under
/// `QUIVER_REQUIRE_PRIVILEGED`, fails when it cannot.
#[cfg(target_os = "linux")]
fn emulation_available(test: &str) -> bool {
    quiver_netem::emu::privileged_test(test)
}

/// Runs `quiver` and checks that it left no namespace of its own behind.
#[cfg(target_os = "linux")]
fn quiver_emulated(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running quiver");
    let pid = child.id();
    let out = child.wait_with_output().expect("waiting for quiver");
    assert_no_namespaces_of(pid);
    out
}

#[cfg(target_os = "linux")]
fn namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("{}-{pid}-", quiver_netem::emu::PREFIX);
    quiver_netem::emu::list_netns()
        .expect("listing namespaces")
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[cfg(target_os = "linux")]
fn assert_no_namespaces_of(pid: u32) {
    let left = namespaces_of(pid);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// The table rows `(scheme, class, n, done, in-deadline)`.
fn rows(stdout: &str) -> Vec<(String, String, usize, usize, usize)> {
    stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("scheme"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                (*f.first()?).to_owned(),
                (*f.get(1)?).to_owned(),
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
                f.get(4)?.parse().ok()?,
            ))
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn emulated_unimpaired_link_completes_every_request() {
    if !emulation_available("emulated_unimpaired_link_completes_every_request") {
        return;
    }
    let out = quiver_emulated(&[
        "bench",
        "classes",
        "--emulated",
        "--requests",
        "8",
        "--arrival",
        "uniform:50ms",
        "--profile",
        "none",
        "--schemes",
        "edf,tcp-nconn,tcp-1conn",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("# ") && stdout.contains("(emulated"),
        "{stdout}"
    );
    let rows = rows(&stdout);
    for scheme in ["quic-edf", "tcp-nconn", "tcp-1conn"] {
        let of: Vec<_> = rows.iter().filter(|r| r.0 == scheme).collect();
        assert_eq!(of.len(), 3, "{scheme} rows in\n{stdout}");
        assert_eq!(of.iter().map(|r| r.2).sum::<usize>(), 8, "{stdout}");
        for r in of {
            assert!(
                r.2 == r.3 && r.3 == r.4,
                "not all completed: {r:?}\n{stdout}"
            );
        }
    }
    assert!(!stdout.contains("not completed"), "{stdout}");
}

#[cfg(target_os = "linux")]
#[test]
fn emulated_3g_smoke() {
    if !emulation_available("emulated_3g_smoke") {
        return;
    }
    let out = quiver_emulated(&[
        "bench",
        "classes",
        "--emulated",
        "--requests",
        "6",
        "--profile",
        "3g",
        "--schemes",
        "abs,tcp-nconn",
        "--drain",
        "20s",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = rows(&stdout);
    for scheme in ["quic-abs", "tcp-nconn"] {
        assert_eq!(
            rows.iter()
                .filter(|r| r.0 == scheme)
                .map(|r| r.2)
                .sum::<usize>(),
            6,
            "{scheme} in\n{stdout}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn emulated_run_is_torn_down_on_sigint() {
    if !emulation_available("emulated_run_is_torn_down_on_sigint") {
        return;
    }
    let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args([
            "bench",
            "classes",
            "--emulated",
            "--requests",
            "1000",
            "--profile",
            "none",
            "--schemes",
            "fcfs",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running quiver");
    let pid = child.id();
    // Signals are caught before the first namespace exists: wait for one.
    let waited = std::time::Instant::now();
    while namespaces_of(pid).is_empty() {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "no topology came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("waiting for quiver");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert_no_namespaces_of(pid);
}

#[test]
fn emulated_rejects_an_unknown_profile() {
    // Checked before anything touches the system: no privileges needed.
    let out = quiver(&["bench", "classes", "--emulated", "--profile", "bursty"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown profile") && stderr.contains("3g") && stderr.contains("none"),
        "{stderr}"
    );
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
