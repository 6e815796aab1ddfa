//! `quiver serve backend|frontend`: QoS-aware LLM serving (crate `quiver-serve`).
//!
//! Both print one line `LISTENING <address>` on stdout once they accept connections, so a
//! script (or a test) can bind port 0 and read the port.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use quiver_serve::backend::{Backend, ModelPool};
use quiver_serve::config::ServeConfig;
use quiver_serve::frontend::{BackendTarget, Frontend};
use quiver_serve::model::{opt_family, ModelBackend, SimReplica};
use quiver_serve::router::RouterKind;
use quiver_serve::upstream::OpenAiUpstream;
use rustls::pki_types::CertificateDer;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `quiver serve ...`
#[derive(Subcommand, Debug)]
pub enum ServeCommand {
    /// Model-serving back-end: QUIC server, router, model pool.
    Backend(BackendArgs),
    /// OpenAI-compatible HTTP front-end forwarding to a back-end over one QUIC connection.
    Frontend(FrontendArgs),
}

/// Arguments of `quiver serve backend`.
#[derive(Args, Debug)]
pub struct BackendArgs {
    /// UDP address to listen on.
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// Certificate chain (PEM); with --key. Without, a self-signed certificate for
    /// `localhost` is generated (write it with --cert-out for the front-end).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Write the server certificate (DER) here, for `serve frontend --backend-cert`.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    /// Stream scheduler for the token streams (fcfs, rr, edf, edf-soft, abs, ml, ...).
    #[arg(long, default_value = "ml")]
    scheduler: quiver::SchedulerKind,
    /// Router: largest, smallest, threshold.
    #[arg(long, default_value = "threshold")]
    router: RouterKind,
    /// Simulated models to serve (comma-separated; default: the OPT family).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Replicas per simulated model.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Multiply the simulated models' per-token latency (1 = calibrated speed).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// An OpenAI-compatible upstream as NAME=URL (e.g. llama=http://127.0.0.1:8080);
    /// requests for NAME are sent to URL/v1/completions with model NAME. Repeatable.
    #[arg(long)]
    upstream: Vec<String>,
    /// Concurrent requests of one upstream.
    #[arg(long, default_value_t = 64)]
    upstream_max_batch: usize,
    /// Requests generating at once; more wait (earliest deadline first).
    #[arg(long, default_value_t = 512)]
    max_active: usize,
    /// Requests waiting for admission before the back-end answers "overloaded".
    #[arg(long, default_value_t = 4096)]
    queue: usize,
    /// Classes and limits (TOML; default: the embedded classes.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Arguments of `quiver serve frontend`.
#[derive(Args, Debug)]
pub struct FrontendArgs {
    /// HTTP address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// The back-end's QUIC address.
    #[arg(long, default_value = "127.0.0.1:4433")]
    backend: SocketAddr,
    /// The back-end's certificate (DER), trusted as the only root.
    #[arg(long)]
    backend_cert: PathBuf,
    /// TLS name of the back-end.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Stream scheduler for the request streams.
    #[arg(long, default_value = "ml")]
    scheduler: quiver::SchedulerKind,
    /// Classes, key tiers and limits (TOML; default: the embedded classes.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn load_config(path: &Option<PathBuf>) -> anyhow::Result<ServeConfig> {
    Ok(match path {
        Some(p) => ServeConfig::load(p)?,
        None => ServeConfig::default(),
    })
}

fn announce(addr: SocketAddr) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "LISTENING {addr}")?;
    out.flush()?;
    Ok(())
}

/// Run a `serve` sub-command.
pub fn run(cmd: ServeCommand) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match cmd {
            ServeCommand::Backend(a) => backend(a).await,
            ServeCommand::Frontend(a) => frontend(a).await,
        }
    })?;
    Ok(0)
}

async fn backend(a: BackendArgs) -> anyhow::Result<()> {
    let config = load_config(&a.config)?;
    if !(a.time_scale.is_finite() && a.time_scale >= 0.0) {
        bail!("--time-scale must be a non-negative number");
    }
    if a.replicas == 0 {
        bail!("--replicas must be at least 1");
    }
    let family = opt_family();
    let wanted: Vec<String> = if a.models.is_empty() && a.upstream.is_empty() {
        family.iter().map(|m| m.name.clone()).collect()
    } else {
        a.models.clone()
    };
    let mut pools = Vec::new();
    for name in &wanted {
        let Some(spec) = family.iter().find(|m| &m.name == name) else {
            let known: Vec<&str> = family.iter().map(|m| m.name.as_str()).collect();
            bail!(
                "unknown simulated model {name:?} (known: {})",
                known.join(", ")
            );
        };
        let replicas = (0..a.replicas)
            .map(|_| {
                Arc::new(SimReplica::spawn(spec.clone(), a.time_scale)) as Arc<dyn ModelBackend>
            })
            .collect();
        pools.push(ModelPool {
            name: name.clone(),
            replicas,
        });
    }
    for u in &a.upstream {
        let Some((name, url)) = u.split_once('=') else {
            bail!("--upstream {u:?}: expected NAME=URL");
        };
        let up = OpenAiUpstream::new(name, url, name, a.upstream_max_batch, None)
            .with_context(|| format!("--upstream {u}"))?;
        pools.push(ModelPool {
            name: name.to_string(),
            replicas: vec![Arc::new(up)],
        });
    }
    let (certs, key) = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => quiver::tls::load_pem(c, k)?,
        _ => quiver::tls::self_signed(&["localhost"])?,
    };
    if let (Some(path), Some(cert)) = (&a.cert_out, certs.first()) {
        std::fs::write(path, cert.as_ref()).with_context(|| format!("{}", path.display()))?;
    }
    let endpoint = quiver_serve::net::server_endpoint(a.listen, a.scheduler, certs, key)?;
    announce(endpoint.local_addr()?)?;
    let backend = Backend::new(pools, Arc::new(a.router), config, a.max_active, a.queue);
    backend.serve(&endpoint).await;
    Ok(())
}

async fn frontend(a: FrontendArgs) -> anyhow::Result<()> {
    let config = load_config(&a.config)?;
    let der = std::fs::read(&a.backend_cert)
        .with_context(|| format!("--backend-cert {}", a.backend_cert.display()))?;
    let target = BackendTarget {
        addr: a.backend,
        server_name: a.server_name,
        cert: CertificateDer::from(der),
        scheduler: a.scheduler,
    };
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("--listen {}", a.listen))?;
    let front = Frontend::start(config, target);
    announce(listener.local_addr()?)?;
    front.serve(listener).await?;
    Ok(())
}
