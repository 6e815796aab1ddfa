//! `quiver bench handshakes`: new connections per second, and the memory an idle
//! connection costs a server — Quiver and quinn side by side in one run.
//!
//! Servers run in child processes of this binary (`quiver bench serve`, see
//! [`super::serve`]), the clients in this process, as in `quiver bench throughput`.
//!
//! 1. **Rate.** Per run and stack, one client endpoint opens `--connections` connections
//!    to the stack's server, at most `--concurrency` at a time; each completes the
//!    handshake, fetches a [`RESPONSE_BYTES`]-byte response on one stream (so the server
//!    has certainly finished its side of the handshake) and closes. Reported: connections
//!    per second (min/median/max over `--runs`), the median and 99th percentile handshake
//!    time (median over runs), and the CPU time per connection of the client (this
//!    process) and of the server child. Runs are interleaved, the stack order rotated
//!    each run.
//! 2. **Idle memory.** Per stack, a fresh server child (so allocations of the rate phase
//!    do not hide in its heap), `--idle` connections opened (at most `--concurrency` at a
//!    time, spread over client endpoints of `--per-endpoint` connections each) and held
//!    open without traffic. The server's `VmRSS` is read before the first and a second
//!    after the last handshake; the difference over the number of connections is the
//!    cost of one idle connection (server state, TLS session, the accept task). Both
//!    stacks' idle timeout is set well beyond the measurement (twice `--timeout` plus a
//!    minute, no keep-alive), and the table reports how many connections were still open
//!    when memory was read.
//!
//! Every handshake is a full TLS 1.3 handshake (no resumption) with the settings of
//! [`super::stacks`]. A phase that does not finish within `--timeout` stops there and
//! reports what it measured, marked as timed out.

use super::serve::ServerProcess;
use super::stacks::{Client, ClientConnection, Stack, Tuning};
use super::stats::{median, percentile, Spread};
use super::{procfs, progress_bar, ByteSize};
use anyhow::Context;
use clap::Args;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes the server sends back on each connection of the rate phase.
pub const RESPONSE_BYTES: u64 = 100;
/// Wait after the last idle connection is up before reading the server's memory, so
/// that the server has processed the final handshake messages and acknowledgements.
const SETTLE: Duration = Duration::from_secs(1);
/// Wait after a server child is ready before its baseline memory is read.
const BASELINE_SETTLE: Duration = Duration::from_millis(300);
/// How long closing a phase's connections may take before it is abandoned.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Arguments of `quiver bench handshakes`.
#[derive(Args, Debug)]
pub struct HandshakesArgs {
    /// New connections per run and stack (rate phase).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub connections: u32,
    /// Most connections being opened at the same time (both phases).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Idle connections held open per stack for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub idle: u32,
    /// Idle connections per client endpoint (UDP socket) of the memory measurement.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub per_endpoint: u32,
    /// Shards of the quiver server endpoint (`Endpoint::server_sharded`), so that its
    /// protocol work uses that many cores; default: the number of cores. Quiver client
    /// endpoints get 4 shards (local ports) per server shard. quinn drives each
    /// connection from its own task instead.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub shards: Option<u64>,
    /// Number of runs of the rate phase; each run measures every stack once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Stream, connection and send window of both stacks.
    #[arg(long, default_value = "1MiB")]
    pub window: ByteSize,
    /// UDP payload size of both stacks (fixed: path MTU discovery is off).
    #[arg(long, default_value_t = 1452, value_parser = clap::value_parser!(u16).range(1200..=1472))]
    pub mtu: u16,
    /// Stop a phase (one rate run of one stack, or opening one stack's idle connections)
    /// after this many seconds and report what was measured until then.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Write one CSV row per rate run and stack, and one per stack's idle measurement.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One shard per core.
fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Client endpoint shards (local ports) per server shard.
const CLIENT_PORTS_PER_SHARD: usize = 4;

impl HandshakesArgs {
    /// Shards of the quiver server endpoint.
    fn server_shards(&self) -> usize {
        self.shards
            .map_or_else(default_shards, |n| usize::try_from(n).unwrap_or(1))
    }

    /// Settings both stacks get: the idle timeout outlasts any phase (twice `--timeout`
    /// plus a minute) so that idle connections stay open while they are measured.
    fn tuning(&self) -> Tuning {
        Tuning {
            window: self.window.0,
            mtu: self.mtu,
            pmtud: false,
            idle_timeout: Duration::from_secs(2 * self.timeout + 60),
            shards: self.server_shards(),
            // Several client ports per server shard: with as many ports as shards, the
            // kernel's hash puts all of them on one server shard about half the time.
            client_shards: CLIENT_PORTS_PER_SHARD * self.server_shards(),
        }
    }
}

/// Number of client endpoints needed for `n` connections at `per_endpoint` each (at
/// least one).
fn endpoint_count(n: u32, per_endpoint: u32) -> u32 {
    n.div_ceil(per_endpoint.max(1)).max(1)
}

/// What a bounded-concurrency batch of operations produced.
#[derive(Debug)]
struct Batch<T> {
    /// Results of the operations that succeeded, in completion order.
    ok: Vec<T>,
    /// Operations that returned an error.
    failed: u32,
    /// The first error, for the report.
    first_error: Option<String>,
    /// From the start to the last completion (or to the deadline).
    elapsed: Duration,
    /// Whether the deadline stopped the batch before every operation ran.
    timed_out: bool,
}

/// Run `op(0)`, …, `op(n - 1)` with at most `concurrency` in flight (each worker task
/// takes the next index when its operation ends); operations still running at
/// `deadline` are abandoned.
async fn run_bounded<T, F, Fut>(n: u32, concurrency: u32, deadline: Instant, op: F) -> Batch<T>
where
    T: Send + 'static,
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (op, next) = (op.clone(), next.clone());
        workers.spawn(async move {
            let mut batch = Batch {
                ok: Vec::new(),
                failed: 0,
                first_error: None,
                elapsed: Duration::ZERO,
                timed_out: false,
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                match tokio::time::timeout_at(deadline.into(), op(i)).await {
                    Ok(Ok(t)) => batch.ok.push(t),
                    Ok(Err(e)) => {
                        batch.failed += 1;
                        batch.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                    Err(_) => {
                        batch.timed_out = true;
                        break;
                    }
                }
            }
            batch.elapsed = start.elapsed();
            batch
        });
    }
    let mut all = Batch {
        ok: Vec::with_capacity(n as usize),
        failed: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        timed_out: false,
    };
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(b) => {
                all.ok.extend(b.ok);
                all.failed += b.failed;
                all.first_error = all.first_error.or(b.first_error);
                all.elapsed = all.elapsed.max(b.elapsed);
                all.timed_out |= b.timed_out;
            }
            Err(e) => {
                all.failed += 1;
                all.first_error
                    .get_or_insert_with(|| format!("worker task: {e}"));
            }
        }
    }
    all
}

/// CPU time of this process and of a server child, and the host's UDP receive-buffer
/// drops, read together.
#[derive(Debug, Clone, Copy)]
struct CpuMark {
    client: Option<Duration>,
    server: Option<Duration>,
    udp_drops: Option<u64>,
}

impl CpuMark {
    fn now(server: &ServerProcess) -> Self {
        Self {
            client: procfs::own_cpu_time().ok(),
            server: server.cpu_time().ok(),
            udp_drops: procfs::udp_rcvbuf_errors().ok(),
        }
    }

    /// UDP datagrams dropped host-wide for full receive buffers since `earlier`.
    fn drops_since(self, earlier: CpuMark) -> Option<u64> {
        Some(self.udp_drops?.saturating_sub(earlier.udp_drops?))
    }

    /// Seconds used by (client, server) since `earlier`.
    fn since(self, earlier: CpuMark) -> (Option<f64>, Option<f64>) {
        let d =
            |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?).as_secs_f64());
        (
            d(self.client, earlier.client),
            d(self.server, earlier.server),
        )
    }
}

/// One rate run of one stack.
#[derive(Debug, Clone, serde::Serialize)]
struct RateSample {
    run: u32,
    stack: Stack,
    connections: u32,
    completed: u32,
    failed: u32,
    timed_out: bool,
    duration_s: f64,
    conns_per_s: f64,
    handshake_median_ms: f64,
    handshake_p99_ms: f64,
    /// Client (this process) CPU seconds during the run, if readable.
    client_cpu_s: Option<f64>,
    /// Server child CPU seconds during the run, if readable.
    server_cpu_s: Option<f64>,
    /// UDP datagrams the host dropped for full receive buffers during the run (each
    /// costs a loss-recovery delay), if readable.
    udp_drops: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

/// The rate phase of one stack over all runs.
#[derive(Debug, Clone, serde::Serialize)]
struct RateSummary {
    stack: Stack,
    conns_per_s: Spread,
    /// Median over runs of each run's median handshake time.
    handshake_median_ms: f64,
    /// Median over runs of each run's 99th-percentile handshake time.
    handshake_p99_ms: f64,
    /// Median over runs of client CPU microseconds per completed connection.
    client_cpu_us_per_conn: f64,
    /// Median over runs of server CPU microseconds per completed connection.
    server_cpu_us_per_conn: f64,
    failed: u32,
    timed_out_runs: u32,
    /// UDP receive-buffer drops over all runs (host-wide).
    udp_drops: u64,
}

/// The idle-memory measurement of one stack.
#[derive(Debug, Clone, serde::Serialize)]
struct IdleSample {
    stack: Stack,
    target: u32,
    opened: u32,
    failed: u32,
    timed_out: bool,
    /// Connections the client still saw open when the server's memory was read.
    still_open: u32,
    client_endpoints: u32,
    open_s: f64,
    conns_per_s: f64,
    /// Opening rate over the first tenth of the connections (few connections open).
    first_tenth_conns_per_s: f64,
    /// Opening rate over the last tenth (nearly all connections open): with per-step
    /// costs that grow with the number of connections, this is the lower one.
    last_tenth_conns_per_s: f64,
    server_rss_before: u64,
    server_rss_after: u64,
    /// `(after - before) / opened`.
    bytes_per_conn: f64,
    client_cpu_s: Option<f64>,
    server_cpu_s: Option<f64>,
    /// UDP receive-buffer drops (host-wide) while the connections were opened.
    udp_drops: Option<u64>,
    /// How long closing all connections took (None if it exceeded the close timeout).
    close_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    cores: usize,
    /// Shards of the quiver server endpoint.
    quiver_shards: usize,
    /// Shards (local ports) of each quiver client endpoint.
    quiver_client_shards: usize,
    server_isolation: &'static str,
    cipher_suite: &'static str,
    handshake: &'static str,
    mtu: u16,
    window: u64,
    idle_timeout_s: u64,
    concurrency: u32,
    connections: u32,
    response_bytes: u64,
    runs: u32,
    idle: u32,
    per_endpoint: u32,
    timeout_s: u64,
    rate: Vec<RateSummary>,
    /// Median connections per second of quiver over that of quinn.
    rate_ratio_quiver_over_quinn: f64,
    idle_memory: Vec<IdleSample>,
    /// Bytes per idle connection of quiver over that of quinn (NaN without the idle phase).
    idle_bytes_ratio_quiver_over_quinn: f64,
    rate_samples: Vec<RateSample>,
}

/// One run of the rate phase for `stack` against `server`.
async fn rate_run(
    run: u32,
    stack: Stack,
    args: &HandshakesArgs,
    server: &ServerProcess,
) -> anyhow::Result<RateSample> {
    let tuning = args.tuning();
    let client = Arc::new(Client::bind(stack, tuning, &server.cert)?);
    let addr = server.addr;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let before = CpuMark::now(server);
    let op_client = client.clone();
    let batch = run_bounded(args.connections, args.concurrency, deadline, move |_| {
        let client = op_client.clone();
        async move { one_request(&client, addr).await }
    })
    .await;
    let after = CpuMark::now(server);
    let (client_cpu_s, server_cpu_s) = after.since(before);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.wait_idle()).await;

    let mut ms: Vec<f64> = batch.ok.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let completed = batch.ok.len() as u32;
    Ok(RateSample {
        run,
        stack,
        connections: args.connections,
        completed,
        failed: batch.failed,
        timed_out: batch.timed_out,
        duration_s: batch.elapsed.as_secs_f64(),
        conns_per_s: per_second(completed, batch.elapsed),
        handshake_median_ms: median(&ms),
        handshake_p99_ms: percentile(&ms, 99.0),
        client_cpu_s,
        server_cpu_s,
        udp_drops: after.drops_since(before),
        first_error: batch.first_error,
    })
}

/// Handshake, one request/response of [`RESPONSE_BYTES`], close; returns the handshake
/// time.
async fn one_request(client: &Client, addr: SocketAddr) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let conn = client.connect(addr).await?;
    let handshake = t0.elapsed();
    let got = conn.fetch(RESPONSE_BYTES).await;
    conn.close();
    let got = got.with_context(|| format!("{} request", client.stack().name()))?;
    anyhow::ensure!(
        got == RESPONSE_BYTES,
        "received {got} bytes, expected {RESPONSE_BYTES}"
    );
    Ok(handshake)
}

/// The idle-memory measurement of `stack` on a fresh server child.
async fn idle_run(stack: Stack, args: &HandshakesArgs) -> anyhow::Result<IdleSample> {
    let tuning = args.tuning();
    let server = ServerProcess::spawn(stack, tuning)?;
    tokio::time::sleep(BASELINE_SETTLE).await;
    let rss_before = server.rss().context("server memory before")?;
    let n_endpoints = endpoint_count(args.idle, args.per_endpoint);
    let clients: Arc<Vec<Client>> = Arc::new(
        (0..n_endpoints)
            .map(|_| Client::bind(stack, tuning, &server.cert))
            .collect::<anyhow::Result<_>>()?,
    );
    let addr = server.addr;
    let per_endpoint = args.per_endpoint;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let before = CpuMark::now(&server);
    let start = Instant::now();
    let op_clients = clients.clone();
    let batch = run_bounded(args.idle, args.concurrency, deadline, move |i| {
        let clients = op_clients.clone();
        async move {
            let client = &clients[(i / per_endpoint) as usize];
            let conn = client.connect(addr).await?;
            Ok((conn, start.elapsed()))
        }
    })
    .await;
    let client_cpu = procfs::own_cpu_time().ok();
    tokio::time::sleep(SETTLE).await;
    let rss_after = server.rss().context("server memory after")?;
    let after = CpuMark::now(&server);
    let (_, server_cpu_s) = after.since(before);
    let client_cpu_s = client_cpu
        .zip(before.client)
        .map(|(a, b)| a.saturating_sub(b).as_secs_f64());
    let (conns, mut done): (Vec<ClientConnection>, Vec<Duration>) = batch.ok.into_iter().unzip();
    done.sort();
    let (first_tenth_conns_per_s, last_tenth_conns_per_s) = tenth_rates(&done);
    let still_open = conns.iter().filter(|c| c.is_open()).count() as u32;
    let opened = conns.len() as u32;

    let close_start = Instant::now();
    for c in &conns {
        c.close();
    }
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
        for c in clients.iter() {
            c.wait_idle().await;
        }
    })
    .await;
    let close_s = closed.ok().map(|()| close_start.elapsed().as_secs_f64());
    drop(conns);
    drop(server);
    Ok(IdleSample {
        stack,
        target: args.idle,
        opened,
        failed: batch.failed,
        timed_out: batch.timed_out,
        still_open,
        client_endpoints: n_endpoints,
        open_s: batch.elapsed.as_secs_f64(),
        conns_per_s: per_second(opened, batch.elapsed),
        first_tenth_conns_per_s,
        last_tenth_conns_per_s,
        server_rss_before: rss_before,
        server_rss_after: rss_after,
        bytes_per_conn: bytes_per_conn(rss_before, rss_after, opened),
        client_cpu_s,
        server_cpu_s,
        udp_drops: after.drops_since(before),
        close_s,
        first_error: batch.first_error,
    })
}

fn per_second(n: u32, d: Duration) -> f64 {
    f64::from(n) / d.as_secs_f64().max(1e-9)
}

/// Connections per second over the first and the last tenth of `done`, the sorted
/// completion times (since the start) of a batch; NaN with fewer than 10 completions.
fn tenth_rates(done: &[Duration]) -> (f64, f64) {
    let n = done.len();
    let k = n / 10;
    if k == 0 {
        return (f64::NAN, f64::NAN);
    }
    let rate = |count: usize, d: Duration| count as f64 / d.as_secs_f64().max(1e-9);
    let first = rate(k, done[k - 1]);
    let last = rate(k, done[n - 1].saturating_sub(done[n - 1 - k]));
    (first, last)
}

/// Memory growth per connection; negative if the process shrank, NaN without connections.
fn bytes_per_conn(before: u64, after: u64, conns: u32) -> f64 {
    if conns == 0 {
        return f64::NAN;
    }
    (after as f64 - before as f64) / f64::from(conns)
}

fn summarize_rate(stack: Stack, samples: &[RateSample]) -> RateSummary {
    let mine: Vec<&RateSample> = samples.iter().filter(|s| s.stack == stack).collect();
    let med = |f: &dyn Fn(&RateSample) -> Option<f64>| {
        let mut v: Vec<f64> = mine.iter().filter_map(|s| f(s)).collect();
        v.sort_by(f64::total_cmp);
        median(&v)
    };
    let per_conn_us = |cpu: Option<f64>, s: &RateSample| {
        (s.completed > 0).then_some(cpu? * 1e6 / f64::from(s.completed))
    };
    RateSummary {
        stack,
        conns_per_s: Spread::of(&mine.iter().map(|s| s.conns_per_s).collect::<Vec<_>>()),
        handshake_median_ms: med(&|s| Some(s.handshake_median_ms)),
        handshake_p99_ms: med(&|s| Some(s.handshake_p99_ms)),
        client_cpu_us_per_conn: med(&|s| per_conn_us(s.client_cpu_s, s)),
        server_cpu_us_per_conn: med(&|s| per_conn_us(s.server_cpu_s, s)),
        failed: mine.iter().map(|s| s.failed).sum(),
        timed_out_runs: mine.iter().filter(|s| s.timed_out).count() as u32,
        udp_drops: mine.iter().filter_map(|s| s.udp_drops).sum(),
    }
}

/// Run the benchmark; exit code 0 on success.
pub fn run(args: HandshakesArgs) -> anyhow::Result<i32> {
    let stacks = [Stack::Quiver, Stack::Quinn];
    let tuning = args.tuning();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let idle_phases = if args.idle > 0 { stacks.len() } else { 0 };
    let bar = progress_bar((args.runs as usize * stacks.len() + idle_phases) as u64);

    // Rate phase: one long-lived server child per stack, runs interleaved.
    let mut rate_samples = Vec::new();
    {
        let quiver_server = ServerProcess::spawn(Stack::Quiver, tuning)?;
        let quinn_server = ServerProcess::spawn(Stack::Quinn, tuning)?;
        let server_of = |s: Stack| match s {
            Stack::Quiver => &quiver_server,
            Stack::Quinn => &quinn_server,
        };
        for run in 1..=args.runs {
            let offset = (run as usize - 1) % stacks.len();
            for &stack in stacks.iter().cycle().skip(offset).take(stacks.len()) {
                bar.set_message(format!("run {run}: {} new connections", stack.name()));
                let sample = runtime
                    .block_on(rate_run(run, stack, &args, server_of(stack)))
                    .with_context(|| format!("run {run}, {}", stack.name()))?;
                warn_incomplete(
                    &format!("run {run}, {}", stack.name()),
                    sample.failed,
                    sample.timed_out,
                    sample.first_error.as_deref(),
                );
                rate_samples.push(sample);
                bar.inc(1);
            }
        }
    }

    // Idle phase: a fresh server child per stack.
    let mut idle_memory = Vec::new();
    if args.idle > 0 {
        for &stack in &stacks {
            bar.set_message(format!("{} idle connections: {}", args.idle, stack.name()));
            let sample = runtime
                .block_on(idle_run(stack, &args))
                .with_context(|| format!("idle connections, {}", stack.name()))?;
            warn_incomplete(
                &format!("idle, {}", stack.name()),
                sample.failed,
                sample.timed_out,
                sample.first_error.as_deref(),
            );
            idle_memory.push(sample);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    drop(runtime);

    let rate: Vec<RateSummary> = stacks
        .iter()
        .map(|&s| summarize_rate(s, &rate_samples))
        .collect();
    let idle_of = |s: Stack| idle_memory.iter().find(|i| i.stack == s);
    let idle_ratio = match (idle_of(Stack::Quiver), idle_of(Stack::Quinn)) {
        (Some(a), Some(b)) => a.bytes_per_conn / b.bytes_per_conn,
        _ => f64::NAN,
    };
    let report = Report {
        cores,
        quiver_shards: args.tuning().shards,
        quiver_client_shards: args.tuning().client_shards,
        server_isolation: "child process per stack",
        cipher_suite: "TLS13_AES_128_GCM_SHA256",
        handshake: "full TLS 1.3 (no resumption), ECDSA P-256 certificate",
        mtu: args.mtu,
        window: args.window.0,
        idle_timeout_s: tuning.idle_timeout.as_secs(),
        concurrency: args.concurrency,
        connections: args.connections,
        response_bytes: RESPONSE_BYTES,
        runs: args.runs,
        idle: args.idle,
        per_endpoint: args.per_endpoint,
        timeout_s: args.timeout,
        rate_ratio_quiver_over_quinn: rate[0].conns_per_s.median / rate[1].conns_per_s.median,
        rate,
        idle_memory,
        idle_bytes_ratio_quiver_over_quinn: idle_ratio,
        rate_samples,
    };
    super::emit(
        &report,
        args.csv.as_deref(),
        args.json,
        |path| write_csv(path, &report),
        print_table,
    )
}

fn warn_incomplete(what: &str, failed: u32, timed_out: bool, first_error: Option<&str>) {
    if timed_out {
        eprintln!("quiver: warning: {what}: timed out; reporting what was measured");
    }
    if failed > 0 {
        eprintln!(
            "quiver: warning: {what}: {failed} connection(s) failed, first: {}",
            first_error.unwrap_or("?")
        );
    }
}

/// `Some(x)` as a number with `prec` decimals, `None` as an empty CSV field.
fn opt(x: Option<f64>, prec: usize) -> String {
    x.map(|v| format!("{v:.prec$}")).unwrap_or_default()
}

fn write_csv(path: &std::path::Path, r: &Report) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "phase,run,stack,connections,completed,failed,timed_out,duration_s,conns_per_s,\
         handshake_median_ms,handshake_p99_ms,client_cpu_s,server_cpu_s,\
         server_rss_before,server_rss_after,bytes_per_conn,still_open,udp_drops,\
         first_tenth_conns_per_s,last_tenth_conns_per_s"
    )?;
    for s in &r.rate_samples {
        writeln!(
            f,
            "rate,{},{},{},{},{},{},{:.6},{:.1},{:.3},{:.3},{},{},,,,,{},,",
            s.run,
            s.stack.name(),
            s.connections,
            s.completed,
            s.failed,
            s.timed_out,
            s.duration_s,
            s.conns_per_s,
            s.handshake_median_ms,
            s.handshake_p99_ms,
            opt(s.client_cpu_s, 2),
            opt(s.server_cpu_s, 2),
            s.udp_drops.map(|d| d.to_string()).unwrap_or_default(),
        )?;
    }
    for s in &r.idle_memory {
        writeln!(
            f,
            "idle,,{},{},{},{},{},{:.6},{:.1},,,{},{},{},{},{:.0},{},{},{:.1},{:.1}",
            s.stack.name(),
            s.target,
            s.opened,
            s.failed,
            s.timed_out,
            s.open_s,
            s.conns_per_s,
            opt(s.client_cpu_s, 2),
            opt(s.server_cpu_s, 2),
            s.server_rss_before,
            s.server_rss_after,
            s.bytes_per_conn,
            s.still_open,
            s.udp_drops.map(|d| d.to_string()).unwrap_or_default(),
            s.first_tenth_conns_per_s,
            s.last_tenth_conns_per_s,
        )?;
    }
    f.flush()
}

/// `x` with `prec` decimals, or `-` when unknown.
fn num(x: f64, prec: usize) -> String {
    if x.is_finite() {
        format!("{x:.prec$}")
    } else {
        "-".to_string()
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1u32 << 20))
}

fn print_table(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "quiver bench handshakes: 127.0.0.1, {} cores, servers in a {}",
        r.cores, r.server_isolation
    )?;
    writeln!(
        out,
        "both stacks: {}, {}, {}-byte UDP payloads (no PMTUD), {} windows, idle timeout {} s",
        r.cipher_suite,
        r.handshake,
        r.mtu,
        ByteSize(r.window),
        r.idle_timeout_s
    )?;
    writeln!(
        out,
        "quiver: server endpoint of {} shard{}, client endpoints of {} (one driver task and \
         socket each); quinn: one endpoint, a task per connection",
        r.quiver_shards,
        if r.quiver_shards == 1 { "" } else { "s" },
        r.quiver_client_shards
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "new connections: {} per run and stack, {} at a time from one client endpoint; \
         handshake + {}-byte request/response + close; {} run{}",
        r.connections,
        r.concurrency,
        r.response_bytes,
        r.runs,
        if r.runs == 1 { "" } else { "s" }
    )?;
    writeln!(
        out,
        "{:<7} {:>10} {:>8} {:>8}   {:>9} {:>8}   {:>11} {:>11}  {:>6} {:>9}",
        "stack",
        "min conn/s",
        "median",
        "max",
        "hs p50 ms",
        "p99 ms",
        "client µs/c",
        "server µs/c",
        "failed",
        "UDP drops"
    )?;
    for s in &r.rate {
        writeln!(
            out,
            "{:<7} {:>10} {:>8} {:>8}   {:>9} {:>8}   {:>11} {:>11}  {:>6} {:>9}{}",
            s.stack.name(),
            num(s.conns_per_s.min, 0),
            num(s.conns_per_s.median, 0),
            num(s.conns_per_s.max, 0),
            num(s.handshake_median_ms, 2),
            num(s.handshake_p99_ms, 2),
            num(s.client_cpu_us_per_conn, 0),
            num(s.server_cpu_us_per_conn, 0),
            s.failed,
            s.udp_drops,
            if s.timed_out_runs > 0 {
                format!("  ({} run(s) timed out)", s.timed_out_runs)
            } else {
                String::new()
            }
        )?;
    }
    writeln!(
        out,
        "(hs = client handshake time; µs/c = CPU µs per connection of the client process \
         and of the server child; UDP drops = host-wide receive-buffer drops, each costs a \
         loss-recovery timeout)"
    )?;
    writeln!(
        out,
        "ratio quiver/quinn (median connections per second): {}x",
        num(r.rate_ratio_quiver_over_quinn, 2)
    )?;
    if r.idle_memory.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "idle connections: {} per stack held open against a fresh server child, {} opening \
         at a time, {} per client endpoint; server VmRSS {} s after the last handshake",
        r.idle,
        r.concurrency,
        r.per_endpoint,
        SETTLE.as_secs()
    )?;
    writeln!(
        out,
        "{:<7} {:>7} {:>7} {:>8} {:>7} {:>8} {:>8} {:>6}   {:>10} {:>10} {:>10}   {:>9} {:>9} {:>8}",
        "stack",
        "opened",
        "open",
        "open s",
        "conn/s",
        "1st 10%",
        "last 10%",
        "drops",
        "RSS MiB",
        "after MiB",
        "bytes/conn",
        "client s",
        "server s",
        "close s"
    )?;
    for s in &r.idle_memory {
        writeln!(
            out,
            "{:<7} {:>7} {:>7} {:>8.2} {:>7.0} {:>8} {:>8} {:>6}   {:>10} {:>10} {:>10}   {:>9} {:>9} {:>8}{}",
            s.stack.name(),
            s.opened,
            s.still_open,
            s.open_s,
            s.conns_per_s,
            num(s.first_tenth_conns_per_s, 0),
            num(s.last_tenth_conns_per_s, 0),
            s.udp_drops.map_or("-".into(), |d| d.to_string()),
            mib(s.server_rss_before),
            mib(s.server_rss_after),
            num(s.bytes_per_conn, 0),
            s.client_cpu_s.map_or("-".into(), |v| format!("{v:.2}")),
            s.server_cpu_s.map_or("-".into(), |v| format!("{v:.2}")),
            s.close_s
                .map_or(format!(">{}", CLOSE_TIMEOUT.as_secs()), |v| format!(
                    "{v:.2}"
                )),
            if s.timed_out {
                format!("  (timed out after {} s)", r.timeout_s)
            } else if s.failed > 0 {
                format!("  ({} failed)", s.failed)
            } else {
                String::new()
            }
        )?;
    }
    writeln!(
        out,
        "(open = still open when memory was read; 1st/last 10% = conn/s opening the first \
         and the last tenth; bytes/conn = server VmRSS growth per \
         connection; client s / server s = CPU seconds while opening; close s = closing \
         and draining all)"
    )?;
    writeln!(
        out,
        "ratio quiver/quinn (server bytes per idle connection): {}x",
        num(r.idle_bytes_ratio_quiver_over_quinn, 2)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: HandshakesArgs,
    }

    #[test]
    fn defaults() {
        let a = Cli::parse_from(["x"]).args;
        assert_eq!(
            (a.connections, a.concurrency, a.idle, a.per_endpoint, a.runs),
            (2000, 32, 10_000, 1000, 3)
        );
        assert_eq!(a.window, ByteSize(1 << 20));
        assert_eq!(a.tuning().idle_timeout, Duration::from_secs(660));
        let a = Cli::parse_from(["x", "--idle", "0", "--timeout", "5"]).args;
        assert_eq!(a.idle, 0);
        assert_eq!(a.tuning().idle_timeout, Duration::from_secs(70));
        assert!(Cli::try_parse_from(["x", "--connections", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--concurrency", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--mtu", "1000"]).is_err());
    }

    #[test]
    fn endpoints_for_connections() {
        assert_eq!(endpoint_count(10_000, 1000), 10);
        assert_eq!(endpoint_count(10_001, 1000), 11);
        assert_eq!(endpoint_count(50, 1000), 1);
        assert_eq!(endpoint_count(0, 1000), 1);
    }

    #[test]
    fn tenths() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        // 20 completions: the first 2 by 100 ms (20/s), the last 2 within 1 s (2/s).
        let mut done = ms(&[50, 100]);
        done.extend(ms(&[200; 16]));
        done.extend(ms(&[1000, 1200]));
        assert_eq!(done.len(), 20);
        let (first, last) = tenth_rates(&done);
        assert_eq!(first, 20.0);
        assert_eq!(last, 2.0);
        assert!(tenth_rates(&ms(&[1, 2, 3])).0.is_nan());
    }

    #[test]
    fn memory_per_connection() {
        assert_eq!(bytes_per_conn(1000, 5000, 4), 1000.0);
        assert_eq!(bytes_per_conn(5000, 1000, 4), -1000.0);
        assert!(bytes_per_conn(1, 2, 0).is_nan());
        assert_eq!(per_second(50, Duration::from_millis(500)), 100.0);
    }

    #[test]
    fn rate_summary_uses_medians() {
        let sample = |run, cps: f64, cpu: Option<f64>| RateSample {
            run,
            stack: Stack::Quinn,
            connections: 100,
            completed: 100,
            failed: u32::from(run == 2),
            timed_out: false,
            duration_s: 1.0,
            conns_per_s: cps,
            handshake_median_ms: cps / 100.0,
            handshake_p99_ms: 1.0,
            client_cpu_s: cpu,
            server_cpu_s: Some(0.01),
            udp_drops: Some(1),
            first_error: None,
        };
        let samples = [
            sample(1, 300.0, Some(0.1)),
            sample(2, 100.0, None),
            sample(3, 200.0, Some(0.3)),
        ];
        let s = summarize_rate(Stack::Quinn, &samples);
        assert_eq!(
            (s.conns_per_s.min, s.conns_per_s.median, s.conns_per_s.max),
            (100.0, 200.0, 300.0)
        );
        assert_eq!(s.handshake_median_ms, 2.0);
        // Unknown CPU readings are left out: median of 1000 and 3000 µs.
        assert_eq!(s.client_cpu_us_per_conn, 2000.0);
        assert_eq!(s.server_cpu_us_per_conn, 100.0);
        assert_eq!(s.failed, 1);
        assert_eq!(s.udp_drops, 3);
        assert!(summarize_rate(Stack::Quiver, &samples)
            .conns_per_s
            .median
            .is_nan());
    }

    #[tokio::test]
    async fn bounded_batch_counts_and_limits() {
        let in_flight = Arc::new(AtomicU32::new(0));
        let peak = Arc::new(AtomicU32::new(0));
        let (f, p) = (in_flight.clone(), peak.clone());
        let batch = run_bounded(40, 4, Instant::now() + Duration::from_secs(30), move |i| {
            let (f, p) = (f.clone(), p.clone());
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                anyhow::ensure!(i % 10 != 3, "op {i} fails");
                Ok(i)
            }
        })
        .await;
        assert_eq!(batch.ok.len(), 36);
        assert_eq!(batch.failed, 4);
        assert!(batch.first_error.unwrap().contains("fails"));
        assert!(!batch.timed_out);
        assert!(peak.load(Ordering::SeqCst) <= 4);
    }

    #[tokio::test]
    async fn bounded_batch_stops_at_deadline() {
        let batch = run_bounded(
            10,
            2,
            Instant::now() + Duration::from_millis(50),
            |i| async move {
                if i >= 2 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok(i)
            },
        )
        .await;
        assert!(batch.timed_out);
        assert_eq!(batch.ok.len(), 2);
        assert!(batch.elapsed < Duration::from_secs(30));
    }
}
