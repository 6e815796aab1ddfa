//! `quiver ccp check` through the built binary: exit codes and rendered diagnostics.

use std::process::Command;

fn check(path: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["ccp", "check"])
        .args(extra)
        .arg(path)
        .output()
        .expect("run quiver")
}

#[test]
fn check_accepts_golden_programs_and_dumps_them() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../quiver-ccp/programs");
    for name in ["reno.ccp", "aimd.ccp", "bbr.ccp"] {
        let out = check(&dir.join(name), &["--dump"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(": ok: "), "{stdout}");
        assert!(stdout.contains("event 0:"), "{stdout}");
    }
}

#[test]
fn check_reports_errors_with_snippets_and_fails() {
    let file = std::env::temp_dir().join(format!("quiver-ccp-check-{}.ccp", std::process::id()));
    std::fs::write(
        &file,
        "(def (Report (volatile acked 0)))\n(when true\n  (:= Report.acked (+ Report.ackd 1))\n  (:= Flow.rtt_sample_us 0))\n",
    )
    .unwrap();
    let out = check(&file, &[]);
    let _ = std::fs::remove_file(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: undeclared name `Report.ackd`"),
        "{stderr}"
    );
    assert!(stderr.contains(":3:23\n"), "{stderr}");
    assert!(
        stderr.contains("^^^^^^^^^^^ did you mean `Report.acked`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("read-only measurement primitive"),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");

    let missing = check(std::path::Path::new("/nonexistent/prog.ccp"), &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("reading /nonexistent/prog.ccp"));
}
