//! `quiver bench classes`: QoS request classes over an emulated link, per transport
//! scheme (the seed's "QoS LLM serving" experiment, Figures 7 and 8).
//!
//! A client sends `--requests` echo requests, each drawn from the class mix (default:
//! real-time short 8 KB / 1 s / level 0, free-tier short 8 KB / 2 s / level 1, long
//! 102.4 KB / 7 s / level 1), at times from the arrival process, to an echo server. Every
//! scheme sees the same arrivals and class draws (seeded). For QUIC schemes each request
//! is one bidi stream opened with the job's class (deadline = arrival + class deadline);
//! the server reads the 1-byte class tag at the start of each request and gives its
//! response stream the same class (deadline counted from when it learns the class),
//! using the same scheduler. TLS/TCP schemes use `quiver-tcp-baseline` (smoltcp) with
//! one connection per request (`tcp-nconn`) or all requests on one connection
//! (`tcp-1conn`).
//!
//! Latency is from the request's arrival to its last echoed byte. A request "completes"
//! when its last byte arrives; the completion rate in the table counts only completions
//! within the class deadline. Hard-deadline drops (EDF, ML) and stalled TCP
//! connections count as not completed.
//!
//! With `--emulated` the same workload runs over real sockets instead: the `quiver`
//! tokio runtime for QUIC and the kernel's TCP for TLS/TCP, each scheme on a fresh pair
//! of network namespaces joined by an emulated link (`quiver_netem::emu`, root only);
//! see [`emu`].

use anyhow::Context;
use clap::Args;
use quiver_netem::sim::LinkConfig;
use quiver_proto::sched::SchedulerKind;
use quiver_tcp_baseline::Mode;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

mod arrival;
#[cfg(target_os = "linux")]
mod emu;
#[cfg(target_os = "linux")]
mod emu_quic;
mod mix;
mod plot;
mod quic;
mod tcp;

pub use arrival::{Arrival, Job};
/// Durations on the command line (`100ms`, `1.5s`), shared with the other benchmarks.
pub(super) use mix::parse_duration;
pub use mix::ClassSpec;

/// Arguments of `quiver bench classes`.
#[derive(Args, Debug)]
pub struct ClassesArgs {
    /// Number of requests.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub requests: u32,
    /// Seed of the workload (arrivals, classes) and of the simulated links (emulated
    /// links lose packets at random, unseeded).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Arrival process: poisson:MEAN, burst, or uniform:GAP.
    #[arg(long, default_value = "poisson:100ms")]
    pub arrival: Arrival,
    /// Link profile, installed in both directions: 3g, lossless, lan, wifi, lte,
    /// satellite, bursty (simulator); with --emulated: 3g, lan, wifi, lte, satellite,
    /// none/lossless.
    #[arg(long, default_value = "3g")]
    pub profile: String,
    /// Class mix as TOML (`[[class]]` entries: name, size, deadline, priority, level,
    /// share); default: the seed's three classes.
    #[arg(long, value_name = "FILE.toml")]
    pub mix: Option<PathBuf>,
    /// Comma-separated schemes: any scheduler (fcfs, rr, edf, edf-soft, abs, ml,
    /// ml-soft, pifo, sorted-abs), tcp-nconn, tcp-1conn.
    #[arg(long, default_value = "fcfs,rr,edf,abs,ml,pifo,tcp-nconn,tcp-1conn")]
    pub schemes: String,
    /// Write one CSV row per scheme and request to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw completion rates and latency box plots to this PNG file.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Time allowed after the last arrival before unfinished requests count as timed
    /// out (virtual time; wall-clock time with --emulated).
    #[arg(long, default_value = "60s", value_parser = mix::parse_duration)]
    pub drain: Duration,
    /// Real sockets over `quiver netem` link emulation (network namespaces; needs root)
    /// instead of the simulator: QUIC on the quiver runtime, TLS/TCP on the kernel's TCP.
    #[arg(long)]
    pub emulated: bool,
    /// Congestion controller of the QUIC schemes (both ends) and, with --emulated, of the
    /// kernel TCP under the TLS/TCP schemes (cubic → cubic, newreno → reno; the
    /// simulator's smoltcp TCP is always Reno-like).
    #[arg(long, value_enum, default_value_t = Cc::Cubic)]
    pub cc: Cc,
}

/// Congestion controller of the QUIC schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cc {
    /// NewReno (RFC 9002 §7), the transport's default.
    Newreno,
    /// CUBIC (RFC 9438).
    Cubic,
}

impl Cc {
    /// The Linux TCP congestion control of the same family.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn kernel_name(self) -> &'static str {
        match self {
            Cc::Newreno => "reno",
            Cc::Cubic => "cubic",
        }
    }

    fn factory(self) -> std::sync::Arc<dyn quiver_proto::cc::ControllerFactory> {
        match self {
            Cc::Newreno => std::sync::Arc::new(quiver_proto::cc::NewRenoConfig::default()),
            Cc::Cubic => std::sync::Arc::new(quiver_proto::cc::CubicConfig::default()),
        }
    }
}

impl fmt::Display for Cc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cc::Newreno => "newreno",
            Cc::Cubic => "cubic",
        })
    }
}

/// A transport scheme under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// QUIC (Quiver) with a stream scheduler.
    Quic(SchedulerKind),
    /// TLS/TCP (smoltcp), one connection per request or one shared connection.
    Tcp(Mode),
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp-nconn" | "tcp-n" | "tls-nconn" => Ok(Scheme::Tcp(Mode::NConn)),
            "tcp-1conn" | "tcp-1" | "tls-1conn" => Ok(Scheme::Tcp(Mode::OneConn)),
            other => other
                .parse()
                .map(Scheme::Quic)
                .map_err(|e| format!("{e}; or tcp-nconn, tcp-1conn")),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Quic(k) => write!(f, "quic-{k}"),
            Scheme::Tcp(Mode::NConn) => f.write_str("tcp-nconn"),
            Scheme::Tcp(Mode::OneConn) => f.write_str("tcp-1conn"),
        }
    }
}

/// Why a request did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Dropped by a hard-deadline scheduler (stream reset / expired).
    Dropped,
    /// Echo differs from the request.
    Corrupt,
    /// Not finished when the run ended.
    TimedOut,
    /// The QUIC connection was lost.
    ConnectionLost,
    /// TLS/TCP failure reported by the baseline.
    Tcp(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Dropped => f.write_str("dropped"),
            Failure::Corrupt => f.write_str("corrupt"),
            Failure::TimedOut => f.write_str("timed-out"),
            Failure::ConnectionLost => f.write_str("connection-lost"),
            Failure::Tcp(e) => write!(f, "tcp: {e}"),
        }
    }
}

/// The outcome of one request under one scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestResult {
    /// The request.
    pub job: Job,
    /// Arrival to last echoed byte, when it completed.
    pub latency: Option<Duration>,
    /// Completed or failed (no more progress expected).
    pub finished: bool,
    /// Why it did not complete.
    pub failure: Option<Failure>,
}

impl RequestResult {
    fn new(job: Job) -> Self {
        Self {
            job,
            latency: None,
            finished: false,
            failure: None,
        }
    }
}

/// Per scheme × class summary.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Scheme.
    pub scheme: Scheme,
    /// Class index.
    pub class: usize,
    /// Requests of the class.
    pub n: usize,
    /// Completed at all.
    pub completed: usize,
    /// Completed within the class deadline.
    pub in_deadline: usize,
    /// Latencies of completed requests, sorted.
    pub latencies: Vec<Duration>,
}

impl Summary {
    /// Completion rate within the deadline (0..=1).
    pub fn rate(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.in_deadline as f64 / self.n as f64
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn summarize(scheme: Scheme, mix: &[ClassSpec], results: &[RequestResult]) -> Vec<Summary> {
    mix.iter()
        .enumerate()
        .map(|(k, spec)| {
            let of_class: Vec<&RequestResult> = results
                .iter()
                .filter(|r| usize::from(r.job.class) == k)
                .collect();
            let mut latencies: Vec<Duration> = of_class.iter().filter_map(|r| r.latency).collect();
            latencies.sort();
            Summary {
                scheme,
                class: k,
                n: of_class.len(),
                completed: latencies.len(),
                in_deadline: latencies.iter().filter(|&&l| l <= spec.deadline).count(),
                latencies,
            }
        })
        .collect()
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.0}", d.as_secs_f64() * 1e3),
    )
}

fn table(args: &ClassesArgs, mix: &[ClassSpec], summaries: &[Summary]) -> String {
    let mut out = String::new();
    let mode = if args.emulated {
        "emulated: real sockets; link loss is kernel-random, not seeded"
    } else {
        "simulator"
    };
    let _ = writeln!(
        out,
        "# {} requests, arrival {}, profile {}, seed {}, cc {} ({mode})",
        args.requests, args.arrival, args.profile, args.seed, args.cc
    );
    let _ = writeln!(
        out,
        "{:<15} {:<12} {:>4} {:>6} {:>7} {:>9} {:>8} {:>8} {:>8}",
        "scheme", "class", "n", "done", "in-ddl", "rate(ddl)", "p50 ms", "p90 ms", "p99 ms"
    );
    for s in summaries {
        let _ = writeln!(
            out,
            "{:<15} {:<12} {:>4} {:>6} {:>7} {:>8.1}% {:>8} {:>8} {:>8}",
            s.scheme.to_string(),
            mix[s.class].name,
            s.n,
            s.completed,
            s.in_deadline,
            s.rate() * 100.0,
            ms(percentile(&s.latencies, 50.0)),
            ms(percentile(&s.latencies, 90.0)),
            ms(percentile(&s.latencies, 99.0)),
        );
    }
    out
}

fn write_csv(
    path: &std::path::Path,
    mix: &[ClassSpec],
    runs: &[(Scheme, Vec<RequestResult>)],
) -> anyhow::Result<()> {
    let mut out = String::from(
        "scheme,request,class,size,arrival_ms,deadline_ms,completed,in_deadline,latency_ms,failure\n",
    );
    for (scheme, results) in runs {
        for r in results {
            let spec = &mix[usize::from(r.job.class)];
            let _ = writeln!(
                out,
                "{},{},{},{},{:.3},{},{},{},{},{}",
                scheme,
                r.job.id,
                spec.name,
                r.job.size,
                r.job.at.as_secs_f64() * 1e3,
                spec.deadline.as_millis(),
                r.latency.is_some(),
                r.latency.is_some_and(|l| l <= spec.deadline),
                r.latency
                    .map_or_else(String::new, |l| format!("{:.3}", l.as_secs_f64() * 1e3)),
                r.failure
                    .as_ref()
                    .map_or_else(String::new, |f| f.to_string().replace(',', ";")),
            );
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Where the schemes run.
enum Engine {
    /// The virtual-time simulator, with this link in both directions.
    Sim(LinkConfig),
    /// Real sockets over emulated links.
    #[cfg(target_os = "linux")]
    Emu(emu::Emulator),
}

/// The engine for `args`, or the exit code of a usage (2) or environment (1) error,
/// already reported.
fn engine(args: &ClassesArgs) -> anyhow::Result<Result<Engine, i32>> {
    if !args.emulated {
        return Ok(match LinkConfig::profile(&args.profile) {
            Ok(l) => Ok(Engine::Sim(l)),
            Err(e) => {
                eprintln!("quiver: error: --profile: {e}");
                Err(2)
            }
        });
    }
    #[cfg(target_os = "linux")]
    {
        let params = match emu::link_params(&args.profile) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("quiver: error: --profile: {e}");
                return Ok(Err(2));
            }
        };
        if let Err(e) = emu::check() {
            eprintln!("quiver: error: --emulated needs network namespaces: {e}");
            return Ok(Err(1));
        }
        Ok(Ok(Engine::Emu(emu::Emulator::new(
            params, args.seed, args.cc,
        )?)))
    }
    #[cfg(not(target_os = "linux"))]
    {
        eprintln!("quiver: error: --emulated needs Linux (network namespaces)");
        Ok(Err(1))
    }
}

/// Runs `quiver bench classes`; returns the exit code (2 for invalid input, 1 when
/// `--emulated` cannot run here, 130 when interrupted).
pub fn run(args: ClassesArgs) -> anyhow::Result<i32> {
    let mix = match &args.mix {
        Some(path) => match mix::load_mix(path) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("quiver: error: {e}");
                return Ok(2);
            }
        },
        None => mix::default_mix(),
    };
    let mut schemes = Vec::new();
    for s in args.schemes.split(',').filter(|s| !s.trim().is_empty()) {
        match s.parse::<Scheme>() {
            Ok(x) if !schemes.contains(&x) => schemes.push(x),
            Ok(_) => {}
            Err(e) => {
                eprintln!("quiver: error: --schemes: {e}");
                return Ok(2);
            }
        }
    }
    if schemes.is_empty() {
        eprintln!("quiver: error: --schemes: no scheme given");
        return Ok(2);
    }
    let mut engine = match engine(&args)? {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    let n = usize::try_from(args.requests).unwrap_or(usize::MAX);
    let jobs = arrival::workload(&mix, args.arrival, n, args.seed);
    let budget = jobs.last().map_or(Duration::ZERO, |j| j.at) + args.drain;

    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(schemes.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut runs = Vec::new();
    for scheme in &schemes {
        bar.set_message(scheme.to_string());
        let results = match (&mut engine, *scheme) {
            (Engine::Sim(link), Scheme::Quic(kind)) => {
                quic::run(kind, args.cc, &mix, &jobs, link, args.seed, budget)
            }
            (Engine::Sim(link), Scheme::Tcp(mode)) => {
                tcp::run(mode, &jobs, link, args.seed, budget)
            }
            #[cfg(target_os = "linux")]
            (Engine::Emu(emu), scheme) => match emu.run(scheme, &mix, &jobs, args.drain) {
                Ok(Some(results)) => Ok(results),
                Ok(None) => {
                    bar.finish_and_clear();
                    eprintln!("quiver: interrupted; the emulated links were removed");
                    return Ok(130);
                }
                Err(e) => Err(e),
            },
        }
        .with_context(|| format!("running {scheme}"))?;
        runs.push((*scheme, results));
        bar.inc(1);
    }
    bar.finish_and_clear();

    let summaries: Vec<Summary> = runs
        .iter()
        .flat_map(|(s, r)| summarize(*s, &mix, r))
        .collect();
    print!("{}", table(&args, &mix, &summaries));
    for (scheme, results) in &runs {
        let not_done: Vec<String> = results
            .iter()
            .filter(|r| r.latency.is_none())
            .map(|r| {
                format!(
                    "#{} {}",
                    r.job.id,
                    r.failure.as_ref().map_or("?".into(), ToString::to_string)
                )
            })
            .collect();
        if !not_done.is_empty() {
            println!("# {scheme}: not completed: {}", not_done.join(", "));
        }
    }
    if let Some(path) = &args.csv {
        write_csv(path, &mix, &runs)?;
    }
    if let Some(path) = &args.png {
        plot::draw(path, &mix, &summaries)
            .with_context(|| format!("drawing {}", path.display()))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v[..1], 90.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn schemes_parse() {
        assert_eq!(
            "fcfs".parse::<Scheme>(),
            Ok(Scheme::Quic(SchedulerKind::Fcfs))
        );
        assert_eq!(
            "tcp-1conn".parse::<Scheme>(),
            Ok(Scheme::Tcp(Mode::OneConn))
        );
        assert!("udp".parse::<Scheme>().is_err());
    }
}
