//! `quiver bench fuzz`: run the transport's fuzz targets (`quiver_proto::fuzz`) for a
//! wall-clock budget each and report executions per target and per second.
//!
//! A failing input (panic or violated invariant) is written to
//! `<out-dir>/fuzz-<target>-<seed>-<exec>.bin` with the command that replays it
//! (`quiver bench fuzz --target <t> --replay <file>`); the run then exits with code 1.

use super::classes::parse_duration;
use anyhow::{bail, Context};
use clap::Args;
use quiver_proto::config::{ClientConfig, ServerConfig};
use quiver_proto::fuzz::{self, codec, live, Target};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `quiver bench fuzz`.
#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// Target name, or `all`: packet, frames, transport-params, token, version-info,
    /// live-handshake, live-1rtt.
    #[arg(long, default_value = "all")]
    pub target: String,
    /// Time per target, e.g. `60s`, `500ms` (no unit = milliseconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub time: Duration,
    /// Seconds per target (overrides --time).
    #[arg(long)]
    pub secs: Option<u64>,
    /// Seed of the mutation sequence (the same seed replays the same inputs, except
    /// where the live targets' TLS randomness changes what the peer answers).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where failing inputs are written.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// Execute this one saved input against --target instead of fuzzing.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
}

fn live_configs() -> anyhow::Result<live::LiveConfigs> {
    const ALPN: &[u8] = b"quiver-fuzz";
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])?.self_signed(&key_pair)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let suites = quiver_proto::crypto::CipherSuiteSelection::All;
    let server =
        quiver_proto::crypto::server_config(vec![cert.der().clone()], key, &[ALPN], suites, None)?;
    let client = quiver_proto::crypto::insecure_client_config(&[ALPN], suites, None)?;
    Ok(live::LiveConfigs::new(
        ServerConfig::new(Arc::new(server)),
        ClientConfig::new(Arc::new(client)),
    ))
}

fn targets(base: Instant) -> anyhow::Result<Vec<Box<dyn Target>>> {
    let configs = live_configs()?;
    let mut all = codec::all();
    all.push(Box::new(live::LiveHandshakeTarget::new(
        configs.clone(),
        base,
    )));
    all.push(Box::new(live::Live1RttTarget::new(configs, base)));
    Ok(all)
}

/// Run `quiver bench fuzz`; exit code 1 when an input failed.
pub fn run(args: FuzzArgs) -> anyhow::Result<i32> {
    let base = Instant::now();
    let mut all = targets(base)?;
    let names: Vec<&'static str> = all.iter().map(|t| t.name()).collect();
    if args.target != "all" && !names.contains(&args.target.as_str()) {
        bail!(
            "unknown fuzz target {:?} (one of: all, {})",
            args.target,
            names.join(", ")
        );
    }
    if let Some(file) = &args.replay {
        if args.target == "all" {
            bail!("--replay needs --target <name>");
        }
        let input = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let mut t = all
            .into_iter()
            .find(|t| t.name() == args.target)
            .context("target")?;
        return match fuzz::replay(&mut *t, &input) {
            Ok(_) => {
                println!("{}: input passes", args.target);
                Ok(0)
            }
            Err(f) => {
                println!("{}: {:?}: {}", args.target, f.kind, f.message);
                Ok(1)
            }
        };
    }
    let budget = args.secs.map_or(args.time, Duration::from_secs);
    // Panics are caught and reported per input; keep stderr for the summary.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<18} {:>12} {:>10} {:>8} {:>10}  result",
        "target", "execs", "execs/s", "corpus", "signatures"
    )?;
    let mut failed = false;
    for t in all.iter_mut() {
        if args.target != "all" && t.name() != args.target {
            continue;
        }
        let start = Instant::now();
        let mut stop = |n: u64| n.is_multiple_of(8) && start.elapsed() >= budget;
        let report = fuzz::run(&mut **t, args.seed, &mut stop);
        let secs = start.elapsed().as_secs_f64();
        let result = match &report.finding {
            None => "ok".to_string(),
            Some(f) => {
                failed = true;
                std::fs::create_dir_all(&args.out_dir)
                    .with_context(|| format!("creating {}", args.out_dir.display()))?;
                let path = args.out_dir.join(format!(
                    "fuzz-{}-{}-{}.bin",
                    report.target, args.seed, f.exec
                ));
                std::fs::write(&path, &f.input)
                    .with_context(|| format!("writing {}", path.display()))?;
                format!(
                    "{:?}: {}\n  saved {}; reproduce: quiver bench fuzz --target {} --replay {}",
                    f.kind,
                    f.message,
                    path.display(),
                    report.target,
                    path.display()
                )
            }
        };
        writeln!(
            out,
            "{:<18} {:>12} {:>10.0} {:>8} {:>10}  {}",
            report.target,
            report.execs,
            report.execs as f64 / secs.max(1e-9),
            report.corpus,
            report.signatures,
            result
        )?;
        out.flush()?;
    }
    std::panic::set_hook(default_hook);
    Ok(i32::from(failed))
}
