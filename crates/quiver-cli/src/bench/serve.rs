//! The server child process of `quiver bench throughput` and `quiver bench handshakes`:
//! the child's side ([`run`], the hidden `quiver bench serve`) and the parent's handle on
//! it ([`ServerProcess`]).
//!
//! Hand-shake with the parent over pipes: the child binds 127.0.0.1 on any port, then
//! prints one line `READY <port> <certificate DER in hex>` on stdout; it serves until its
//! stdin reaches end of file (the parent closed it or died), then exits.

use super::procfs;
use super::stacks::{Server, Stack, Tuning, SERVER_NAME};
use super::ServeArgs;
use anyhow::{bail, Context};
use rustls::pki_types::CertificateDer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Start the server, announce it, serve until stdin closes.
pub async fn run(args: ServeArgs) -> anyhow::Result<i32> {
    let (certs, key) = quiver::tls::self_signed(&[SERVER_NAME])?;
    let cert_hex = certs.first().map(|c| to_hex(c)).unwrap_or_default();
    let tuning = Tuning {
        window: args.window.0,
        mtu: args.mtu,
        pmtud: args.pmtud,
        idle_timeout: Duration::from_secs(args.idle_timeout),
        shards: usize::try_from(args.shards).unwrap_or(1),
        client_shards: 1,
    };
    let server = Server::bind(args.stack, tuning, certs, key)?;
    let port = server.local_addr()?.port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY {port} {cert_hex}")?;
        out.flush()?;
    }
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = eof_tx.send(());
    });
    tokio::select! {
        () = server.serve() => {}
        _ = eof_rx => {}
    }
    Ok(0)
}

/// A server child process (`quiver bench serve`) seen from the parent; asked to stop (and
/// killed if it does not) on drop.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The server's self-signed certificate, for the client to trust.
    pub cert: CertificateDer<'static>,
}

impl ServerProcess {
    /// Start a `stack` server with `tuning` in a child process of this binary and wait
    /// until it is ready.
    pub fn spawn(stack: Stack, tuning: Tuning) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the quiver binary")?;
        let mut child = Command::new(exe)
            .args(["bench", "serve", "--stack", stack.name()])
            .args(["--window", &tuning.window.to_string()])
            .args(["--mtu", &tuning.mtu.to_string()])
            .args(["--idle-timeout", &tuning.idle_timeout.as_secs().to_string()])
            .args(tuning.pmtud.then_some("--pmtud"))
            .args(["--shards", &tuning.shards.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the {} server process", stack.name()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let ready = match read {
            Ok(0) => Err(anyhow::anyhow!("server exited before it was ready")),
            Ok(_) => parse_ready(&line),
            Err(e) => Err(e.into()),
        };
        // From here on, dropping `process` stops the child on every error path.
        let mut process = Self {
            child,
            stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert: CertificateDer::from(Vec::new()),
        };
        let (port, cert) = ready.with_context(|| format!("{} server", stack.name()))?;
        process.addr.set_port(port);
        process.cert = CertificateDer::from(cert);
        Ok(process)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's resident set size in bytes (`VmRSS`), Linux only.
    pub fn rss(&self) -> anyhow::Result<u64> {
        procfs::vm_rss(self.pid())
    }

    /// CPU time (user + system, all threads) the child has used so far, Linux only.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        procfs::cpu_time(self.pid())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Closing stdin asks the child to exit; kill it if it does not within a moment.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Inverse of [`to_hex`].
pub fn from_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd-length hex string");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            let pair = s.get(i..i + 2).context("non-ASCII hex string")?;
            u8::from_str_radix(pair, 16).context("bad hex digit")
        })
        .collect()
}

/// Parse the child's `READY <port> <hex>` line.
pub fn parse_ready(line: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut it = line.split_whitespace();
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some("READY"), Some(port), Some(cert), None) => Ok((
            port.parse().context("bad port in READY line")?,
            from_hex(cert)?,
        )),
        _ => bail!("unexpected line from bench server: {line:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_round_trip() {
        let cert = vec![0x30, 0x82, 0x00, 0xff, 0x7a];
        let line = format!("READY 4433 {}\n", to_hex(&cert));
        assert_eq!(parse_ready(&line).unwrap(), (4433, cert));
        assert!(parse_ready("READY 1 abc").is_err());
        assert!(parse_ready("hello").is_err());
        assert!(parse_ready("READY 99999 00").is_err());
    }
}
