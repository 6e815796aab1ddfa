//! `quiver bench` — measurements of Quiver against quinn on the same machine, in the same
//! run.
//!
//! `quiver bench throughput` times bulk downloads over loopback for each client ← server
//! pair, in one or more scenarios (stream count, fixed MTU or path MTU discovery). Each
//! server runs in a child process of this binary (the hidden `quiver bench serve`
//! sub-command, one process per stack and server setting, started on first use and reused
//! by every run) so server and client have separate processes, runtimes and allocators, as
//! they would in deployment; the clients run in this process. Each transfer also records
//! the CPU time both processes spent on it ([`procfs::CpuMark`]), and one core's AEAD
//! packet rate ([`aead::packet_ceiling`]) gives the ceiling throughput is set against.
//! Runs are interleaved (every pair once per run and scenario, in an order rotated each
//! run) so that machine noise hits all pairs alike. See [`stacks`] for how the two stacks
//! are configured comparably.
//!
//! `quiver bench handshakes` uses the same server children to measure new connections
//! per second and the server memory of idle connections; `quiver bench aead` measures
//! the packet-protection ceiling of one core (no network).

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

mod aead;
mod classes;
mod fuzz;
mod handshakes;
mod icount;
mod procfs;
mod sched_ops;
mod serve;
mod size;
mod stacks;
mod stats;
mod throughput;

pub use size::ByteSize;
use stacks::Stack;

/// Benchmark sub-commands.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Bulk download throughput over loopback: Quiver vs quinn, side by side, with each
    /// side's CPU time per GiB.
    ///
    /// Without --streams, --mtu and --pmtud, three scenarios are measured, each its own
    /// block of the table: 1 stream with fixed 1452-byte UDP payloads (no path MTU
    /// discovery); 1 stream with path MTU discovery (both stacks start at 1200 bytes and
    /// discover up to 1452); 100 streams with fixed 1452-byte payloads. Passing any of
    /// --streams, --mtu or --pmtud measures just that one scenario (the others at their
    /// defaults: 1 stream, 1452 bytes, no PMTUD).
    ///
    /// Per pair the table gives throughput and duration (min/median/max over runs), the
    /// server's and the client's CPU seconds per GiB downloaded (median; server = its child
    /// process, client = this process, both over the transfer only), and the median
    /// throughput as a fraction of one core's AES-128-GCM packet-protection rate at the
    /// scenario's MTU (measured after the transfers, see `quiver bench aead`).
    Throughput(ThroughputArgs),
    /// New connections per second and server memory per idle connection: Quiver vs
    /// quinn, side by side.
    Handshakes(handshakes::HandshakesArgs),
    /// QUIC packet protection (AES-128-GCM, ChaCha20-Poly1305) on one core: the
    /// throughput ceiling.
    Aead(aead::AeadArgs),
    /// Internal: serve the benchmark protocol for a `throughput` or `handshakes` parent
    /// process.
    #[command(hide = true)]
    Serve(ServeArgs),
    /// QoS request classes (real-time, free-tier, long) over a simulated link (or real
    /// sockets over an emulated one with --emulated): QUIC stream schedulers vs TLS/TCP,
    /// completion within deadline and latency.
    Classes(classes::ClassesArgs),
    /// Cost of the stream schedulers' operations at 1k/10k/100k streams.
    SchedOps(sched_ops::SchedOpsArgs),
    /// Fuzz the transport's decoders and live receive paths for a time budget per target;
    /// failing inputs are saved with a command that replays them.
    Fuzz(fuzz::FuzzArgs),
    /// Instruction counts of the transport's hot paths under valgrind (callgrind):
    /// packet seal/open, ACK processing and encoding, 1 MiB transfers.
    Instructions(icount::InstructionsArgs),
    /// Internal: run one `instructions` workload (under valgrind, for the parent).
    #[command(hide = true)]
    IcountWorker(icount::WorkerArgs),
}

/// Which client ← server pairs to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PairSet {
    /// quiver ← quiver and quinn ← quinn.
    Same,
    /// Also the cross pairs quiver ← quinn and quinn ← quiver.
    All,
}

/// Arguments of `quiver bench throughput`.
#[derive(Args, Debug)]
pub struct ThroughputArgs {
    /// Bytes downloaded per run and pair: plain bytes or with a unit (B, KB, MB, GB, KiB,
    /// MiB, GiB).
    #[arg(long, default_value = "100MiB")]
    pub size: ByteSize,
    /// Number of runs; each run measures every pair once in every scenario.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Concurrent streams the size is split over. Given, --streams/--mtu/--pmtud select a
    /// single scenario; absent, the default scenarios run (1 stream, 1 stream with PMTUD,
    /// 100 streams).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub streams: Option<u32>,
    /// Pairs to measure.
    #[arg(long, value_enum, default_value_t = PairSet::Same)]
    pub pairs: PairSet,
    /// Write one CSV row per run, scenario and pair to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Stream, connection and send window of both stacks.
    #[arg(long, default_value = "16MiB")]
    pub window: ByteSize,
    /// UDP payload size of both stacks, fixed (path MTU discovery off) [single scenario;
    /// 1452 if only --streams or --pmtud is given]. With --pmtud: the upper bound of the
    /// discovery.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1200..=1472))]
    pub mtu: Option<u16>,
    /// Path MTU discovery on for both stacks: start at the default initial MTU (1200) and
    /// probe up to --mtu [single scenario].
    #[arg(long)]
    pub pmtud: bool,
    /// Time spent measuring the AEAD ceiling per MTU, e.g. 500ms; 0 skips it (and the
    /// ceiling column).
    #[arg(long, default_value = "500ms", value_parser = classes::parse_duration)]
    pub ceiling_time: std::time::Duration,
    /// Give up on a single transfer after this many seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// Arguments of the hidden `quiver bench serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Stack to serve with.
    #[arg(long, value_enum)]
    pub stack: Stack,
    /// Stream, connection and send window.
    #[arg(long)]
    pub window: ByteSize,
    /// UDP payload size; with --pmtud the upper bound of path MTU discovery.
    #[arg(long)]
    pub mtu: u16,
    /// Start at the default initial MTU and run path MTU discovery up to --mtu.
    #[arg(long)]
    pub pmtud: bool,
    /// Idle timeout in seconds.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout: u64,
    /// Shards of a quiver server endpoint (ignored for quinn).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub shards: u64,
}

/// Write `report` as CSV to `csv` (if given) with `write_csv`, then print it on stdout as
/// JSON (`json`) or with `print_table`; exit code 0.
pub(crate) fn emit<R: serde::Serialize>(
    report: &R,
    csv: Option<&std::path::Path>,
    json: bool,
    write_csv: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
    print_table: impl FnOnce(&mut std::io::StdoutLock<'static>, &R) -> std::io::Result<()>,
) -> anyhow::Result<i32> {
    use std::io::Write;
    if let Some(path) = csv {
        write_csv(path).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, report)?;
    }
    Ok(0)
}

/// Run a bench sub-command; returns the process exit code.
pub fn run(cmd: BenchCommand) -> anyhow::Result<i32> {
    match cmd {
        BenchCommand::Throughput(args) => throughput::run(args),
        BenchCommand::Classes(args) => classes::run(args),
        BenchCommand::SchedOps(args) => sched_ops::run(args),
        BenchCommand::Fuzz(args) => fuzz::run(args),
        BenchCommand::Handshakes(args) => handshakes::run(args),
        BenchCommand::Aead(args) => aead::run(args),
        BenchCommand::Instructions(args) => icount::run(args),
        BenchCommand::IcountWorker(args) => icount::run_worker(args),
        BenchCommand::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            runtime.block_on(serve::run(args))
        }
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}]") {
        bar.set_style(style);
    }
    bar
}
