//! The official `openai` Python package (from the venv that `scripts/install-deps.sh`
//! creates, `$QUIVER_VENV`, default `/opt/quiver-venv`; or `$QUIVER_OPENAI_PYTHON`)
//! against `quiver serve frontend` → QUIC → `quiver serve backend`, all real processes
//! on loopback sockets: models, completions and chat completions, streaming and not, and
//! the error cases (unknown model, oversized prompt, unknown and missing key, malformed
//! JSON) with OpenAI-style bodies. The checks are in `serve_openai.py`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `quiver serve ARGS` and read its `LISTENING <addr>` line.
fn start(args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn quiver serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read LISTENING");
    let addr = line
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim()
        .to_string();
    (Proc(child), addr)
}

fn python() -> PathBuf {
    let py = std::env::var_os("QUIVER_OPENAI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let venv = std::env::var_os("QUIVER_VENV").unwrap_or_else(|| "/opt/quiver-venv".into());
            PathBuf::from(venv).join("bin/python")
        });
    let ok = Command::new(&py)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import openai: run scripts/install-deps.sh (it installs the openai package \
         into the venv), or point QUIVER_OPENAI_PYTHON at a Python that has it",
        py.display()
    );
    py
}

#[test]
fn openai_python_client_against_frontend() {
    let py = python();
    let dir = std::env::temp_dir().join(format!("quiver-serve-openai-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("backend.der");
    let config = dir.join("serve.toml");
    let toml = quiver_serve::config::DEFAULT_TOML
        .replace("accept_unknown_keys = true", "accept_unknown_keys = false")
        .replace("\n[keys]\n", "\n[keys]\n\"sk-gold\" = \"latency\"\n");
    std::fs::write(&config, toml).unwrap();
    let config = config.to_str().unwrap();
    let (_backend, baddr) = start(&[
        "backend",
        "--listen",
        "127.0.0.1:0",
        "--cert-out",
        cert.to_str().unwrap(),
        "--time-scale",
        "0.05",
        "--config",
        config,
    ]);
    let (_frontend, faddr) = start(&[
        "frontend",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &baddr,
        "--backend-cert",
        cert.to_str().unwrap(),
        "--config",
        config,
    ]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve_openai.py");
    let out = Command::new(py)
        .arg(script)
        .arg(format!("http://{faddr}"))
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "openai client failed:\n{stdout}\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
