//! The server side of `quiver bench throughput`: a child process per stack.
//!
//! Hand-shake with the parent over pipes: the child binds 127.0.0.1 on any port, then
//! prints one line `READY <port> <certificate DER in hex>` on stdout; it serves until its
//! stdin reaches end of file (the parent closed it or died), then exits.

use super::stacks::{Server, Tuning, SERVER_NAME};
use super::ServeArgs;
use anyhow::{bail, Context};
use std::io::{Read, Write};

/// Start the server, announce it, serve until stdin closes.
pub async fn run(args: ServeArgs) -> anyhow::Result<i32> {
    let (certs, key) = quiver::tls::self_signed(&[SERVER_NAME])?;
    let cert_hex = certs.first().map(|c| to_hex(c)).unwrap_or_default();
    let tuning = Tuning {
        window: args.window.0,
        mtu: args.mtu,
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
